# shellcheck shell=bash
# `scripts/conformance.sh containerd` (sourced by scripts/conformance.sh, which
# holds the shared expectations and image code): containerd v2.3.7's client
# integration suite against micrun and containerd's runc shim, side by side.
#
#   scripts/conformance.sh containerd [--delegate NAME]... [--run REGEX] [--timeout SECONDS]
#
# containerd: containerd v2.3.7's client integration suite (integration/client,
# built from the Go module proxy, cached per version) against a private
# containerd 2.3.7. The reference run is containerd's own io.containerd.runc.v2
# shim with crun as its OCI runtime; each micrun run is io.containerd.mica.v2
# with the named delegate (default crun; --delegate may repeat: crun, runc,
# youki), chosen through a micrun config named by MICRUN_CONFIG in containerd's
# environment (nothing under /etc is touched). Images the suite pulls are built
# from Debian's busybox-static and pushed to a loopback registry.
#
# Expectations: tests/conformance/containerd-v2.3.txt. Exit status is non-zero
# when a test passes on the reference and fails on micrun without an entry there.
#
# Environment: MICRUN_NO_BUILD=1 skips scripts/build.sh;
# MICRUN_CONFORMANCE_TIMEOUT per-test bound in seconds (default 60).

CONF_SERIES=2.3
CONF_EXPECT="$MICRUN_REPO/tests/conformance/containerd-v2.3.txt"
# paths the suite itself hard-codes (integration/client/client_unix.go): some
# tests read the shim's files under the state dir; the tests that restart
# containerd start their own daemon with this root and state
CONF_SUITE_ROOT=/var/lib/containerd-test
CONF_SUITE_STATE=/run/containerd-test
# the suite's namespace (integration/client/client.go, testNamespace)
CONF_SUITE_NS=testing

DELEGATES=()
RUN_RE=""
TEST_TIMEOUT=${MICRUN_CONFORMANCE_TIMEOUT:-60}
while (($#)); do
    case $1 in
        --delegate) DELEGATES+=("${2:?--delegate NAME}"); shift 2 ;;
        --run) RUN_RE=${2:?--run REGEX}; shift 2 ;;
        --timeout) TEST_TIMEOUT=${2:?--timeout SECONDS}; shift 2 ;;
        *) usage ;;
    esac
done
((${#DELEGATES[@]})) || DELEGATES=(crun)
for d in "${DELEGATES[@]}"; do
    case $d in crun | runc | youki) ;; *) micrun_die "unknown delegate '$d' (crun, runc, youki)"; exit 2 ;; esac
done
conf_install_deps() {
    micrun_install_deps
    # youki maps user namespaces with more than one range through
    # newuidmap/newgidmap (TestUserNamespaces); crun and runc write the maps
    # themselves
    if [[ " ${DELEGATES[*]} " == *" youki "* ]] && ! command -v newuidmap >/dev/null 2>&1; then
        micrun_log "apt-get install uidmap (for youki)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq uidmap >/dev/null
    fi
}

# --------------------------------------------------------------------------
# the suite binary, cached per version

conf_build_suite() {
    local ver src out
    ver=$(micrun_containerd_version_of "$CONF_SERIES")
    out="$MICRUN_PEERS_DIR/containerd-$ver/test/client.test"
    if [[ ! -x $out ]]; then
        src=$(micrun_containerd_source "$CONF_SERIES") || return 1
        mkdir -p "$(dirname "$out")"
        micrun_log "building containerd $ver integration/client test binary (once per machine)"
        # The client suite resolves its image names while the package
        # initialises, before TestMain parses -image-list: built with an
        # overlay (the module stays as it is) whose -image-list defaults to
        # $CONTAINERD_TEST_IMAGE_LIST
        local list="$src/integration/images/image_list.go"
        grep -q 'flag.String("image-list", "",' "$list" \
            || { micrun_die "$list changed: no -image-list flag to give a default"; return 1; }
        sed 's|flag.String("image-list", "",|flag.String("image-list", os.Getenv("CONTAINERD_TEST_IMAGE_LIST"),|' \
            "$list" >"$(dirname "$out")/image_list.go"
        printf '{"Replace":{"%s":"%s"}}' "$list" "$(dirname "$out")/image_list.go" >"$(dirname "$out")/overlay.json"
        (cd "$src" && micrun__go test -c -mod=mod -overlay "$(dirname "$out")/overlay.json" \
            -o "$out.tmp" ./integration/client) >&2 \
            || { micrun_die "building the containerd $ver integration suite failed"; return 1; }
        mv "$out.tmp" "$out"
    fi
    echo "$out"
}

# Top-level tests of the suite for linux, from its sources (listing them with
# the binary would run TestMain, which pulls images and needs a daemon).
conf_list_tests() {
    local src f
    src=$(micrun_containerd_source "$CONF_SERIES") || return 1
    for f in "$src"/integration/client/*_test.go; do
        [[ $f == *_windows_test.go ]] && continue
        sed -n 's/^func \(Test[A-Za-z0-9_]*\)(t \*testing\.T) {$/\1/p' "$f"
    done | grep -vx TestMain | sort -u
}

# Builds and pushes the suite's images; writes WORK/images.toml for -image-list.
conf_images() {
    local reg=$MICRUN_REGISTRY img="$WORK/img" digest
    rm -rf "$img"
    mkdir -p "$img"
    # busybox:1.36 (the seed image) and, by digest, the same image
    conf_busybox_root "$img/bb" busybox
    conf_pack_layers "$img/busybox.tar" "$reg/containerd/busybox:1.36" '"sh"' "$img/bb"
    micrun_registry_push "$img/busybox.tar" "$reg/containerd/busybox:1.36"
    digest=$(tar -xOf "$img/busybox.tar" index.json | sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p')
    # pause: busybox whose command sleeps
    conf_busybox_root "$img/pause" pause
    conf_pack_layers "$img/pause.tar" "$reg/pause:3.10.2" '"sleep","inf"' "$img/pause"
    micrun_registry_push "$img/pause.tar" "$reg/pause:3.10.2"
    # volume-copy-up: two layers, the second a directory owned by www-data (33)
    conf_busybox_root "$img/vcu1" volume-copy-up
    mkdir -p "$img/vcu/test_dir"
    echo test_content >"$img/vcu/test_dir/test_file"
    chown -R 33:33 "$img/vcu/test_dir"
    conf_pack_layers "$img/vcu.tar" "$reg/containerd/volume-copy-up:2.2" '"sh"' "$img/vcu1" "$img/vcu"
    micrun_registry_push "$img/vcu.tar" "$reg/containerd/volume-copy-up:2.2"
    # volume-ownership: bash (busybox has no such applet: a script running
    # its sh) and a setuid /usr/bin/passwd
    conf_busybox_root "$img/vo1" volume-ownership
    mkdir -p "$img/vo/usr/bin" "$img/vo/bin"
    cp /bin/busybox "$img/vo/usr/bin/passwd"
    chmod 4755 "$img/vo/usr/bin/passwd"
    printf '#!/bin/sh\nexec /bin/sh "$@"\n' >"$img/vo/bin/bash"
    chmod 755 "$img/vo/bin/bash"
    conf_pack_layers "$img/vo.tar" "$reg/containerd/volume-ownership:2.1" '"sh"' "$img/vo1" "$img/vo"
    micrun_registry_push "$img/vo.tar" "$reg/containerd/volume-ownership:2.1"
    # whiteout-test: a layer adds a file and a directory, the next deletes both
    conf_busybox_root "$img/wo0" whiteout
    mkdir -p "$img/wo1/dir-to-delete" "$img/wo2"
    echo x >"$img/wo1/file-to-delete"
    echo y >"$img/wo1/dir-to-delete/f"
    : >"$img/wo2/.wh.file-to-delete"
    : >"$img/wo2/.wh.dir-to-delete"
    conf_pack_layers "$img/wo.tar" "$reg/containerd/whiteout-test:1.0" '"sh"' "$img/wo0" "$img/wo1" "$img/wo2"
    micrun_registry_push "$img/wo.tar" "$reg/containerd/whiteout-test:1.0"
    cat >"$WORK/images.toml" <<EOF
BusyBox = "$reg/containerd/busybox:1.36"
BusyBoxByDigest = "$reg/containerd/busybox@$digest"
Alpine = "$reg/containerd/busybox:1.36"
Pause = "$reg/pause:3.10.2"
ResourceConsumer = "$reg/containerd/busybox:1.36"
VolumeCopyUp = "$reg/containerd/volume-copy-up:2.2"
VolumeOwnership = "$reg/containerd/volume-ownership:2.1"
ArgsEscaped = "$reg/containerd/busybox:1.36"
Nginx = "$reg/containerd/busybox:1.36"
Whiteout = "$reg/containerd/whiteout-test:1.0"
EOF
    rm -rf "$img"
}

# --------------------------------------------------------------------------
# a private containerd 2.3 for one run (config version 3)

# Starts containerd with everything under DIR but the state dir the suite
# hard-codes. $2: extra PATH entries first; rest: VAR=VALUE for its environment.
conf_start_containerd() {
    local dir=$1 extra_path=$2
    shift 2
    local sock="$dir/containerd.sock"
    mkdir -p "$dir/root"
    cat >"$dir/config.toml" <<EOF
version = 3
root = "$dir/root"
state = "$CONF_SUITE_STATE"
# CRI stays: the client fails when any loaded plugin failed (the sandbox
# controllers need it). The snapshotters cannot work on this host.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.erofs",
]

[grpc]
  address = "$sock"

[ttrpc]
  # the suite dials its address + ".ttrpc"
  address = "$sock.ttrpc"

[debug]
  level = "info"
EOF
    : >"$dir/containerd.log"
    env "$@" PATH="$extra_path:$PATH" "$BINDIR/containerd" --config "$dir/config.toml" \
        </dev/null >>"$dir/containerd.log" 2>&1 &
    echo "$!" >"$dir/containerd.pid"
    micrun_wait_containerd "$dir" "$BINDIR/ctr"
}

# Kills every process whose command line names DIR (daemons and shims the
# suite started with its temp dirs, which TMPDIR puts under DIR).
conf_kill_work_procs() {
    local dir=$1 f pid cmd victims=()
    for f in /proc/[0-9]*/cmdline; do
        pid=${f#/proc/}
        pid=${pid%/cmdline}
        cmd=$(tr '\0' ' ' 2>/dev/null <"$f") || continue
        if [[ $cmd == *"$dir/"* ]]; then
            victims+=("$pid")
            mapfile -t -O "${#victims[@]}" victims < <(micrun__descendants "$pid")
        fi
    done
    if ((${#victims[@]})); then
        micrun_log "killing leftovers of the suite: ${victims[*]}"
        kill -KILL "${victims[@]}" 2>/dev/null || true
        sleep 0.2
    fi
}

# Removes what the suite leaves in its hard-coded root and state dirs.
conf_clean_suite_dirs() {
    local m mnts=()
    mapfile -t mnts < <(awk -v a="$CONF_SUITE_STATE/" -v b="$CONF_SUITE_ROOT/" \
        'index($5, a) == 1 || index($5, b) == 1 { print length($5) " " $5 }' /proc/self/mountinfo | sort -rn | cut -d' ' -f2-)
    for m in "${mnts[@]}"; do
        umount "$(printf '%b' "$m")" 2>/dev/null || umount -l "$(printf '%b' "$m")" 2>/dev/null || true
    done
    rm -rf --one-file-system "$CONF_SUITE_STATE" "$CONF_SUITE_ROOT"
}

# Leftovers of a test killed at its timeout: its tasks and containers.
conf_reap_namespace() {
    local sock=$1 id
    for id in $(timeout -s KILL 5 "$BINDIR/ctr" --address "$sock" -n "$CONF_SUITE_NS" tasks ls -q 2>/dev/null); do
        timeout -s KILL 5 "$BINDIR/ctr" --address "$sock" -n "$CONF_SUITE_NS" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
        sleep 0.1
        timeout -s KILL 5 "$BINDIR/ctr" --address "$sock" -n "$CONF_SUITE_NS" tasks delete -f "$id" >/dev/null 2>&1 || true
    done
    for id in $(timeout -s KILL 5 "$BINDIR/ctr" --address "$sock" -n "$CONF_SUITE_NS" containers ls -q 2>/dev/null); do
        timeout -s KILL 5 "$BINDIR/ctr" --address "$sock" -n "$CONF_SUITE_NS" containers delete "$id" >/dev/null 2>&1 || true
    done
}

# --------------------------------------------------------------------------
# one run of the suite: LABEL RUNTIME FLAVOR EXTRA_PATH [VAR=VALUE...]
# Writes WORK/LABEL/results (test result seconds) and WORK/LABEL/logs/TEST.log.

# tests that restart containerd need the daemon the suite starts itself
# (they call its Restart); all others run against our private containerd
CONF_OWN_DAEMON_RE='^(TestDaemonRestart|TestDaemonRestartWithRunningShim|TestDaemonReconnectsToShimIOPipesOnRestart|TestShimDoesNotLeakPipes|TestShimOOMScore)$'

conf_run_one() {
    local label=$1 runtime=$2 flavor=$3 extra_path=$4
    shift 4
    local dir="$WORK/$label" t res secs start rc own=0 args
    mkdir -p "$dir/logs" "$dir/tmp"
    : >"$dir/results"
    conf_clean_suite_dirs
    micrun_log "[$label] containerd $(micrun_containerd_version_of $CONF_SERIES), TEST_RUNTIME=$runtime RUNC_FLAVOR=$flavor"
    conf_start_containerd "$dir" "$extra_path" "$@"
    local sock="$dir/containerd.sock"
    local pass=(${TESTS_PRIVATE[@]+"${TESTS_PRIVATE[@]}"}) own_tests=(${TESTS_OWN[@]+"${TESTS_OWN[@]}"})
    local all=("${pass[@]}" "${own_tests[@]}") i=0
    for t in "${all[@]}"; do
        i=$((i + 1))
        if ((own == 0 && i > ${#pass[@]})); then
            # the rest start their own daemon: ours goes first (one state dir)
            conf_reap_namespace "$sock"
            micrun_stop_containerd "$dir" >/dev/null 2>&1
            conf_clean_suite_dirs
            own=1
        fi
        args=(-test.root -test.v -test.run "^$t\$" -no-criu -address "$sock")
        if ((own)); then
            # its own daemon: another socket, so ours (stopped) is never reused
            args=(-test.root -test.v -test.run "^$t\$" -no-criu -address "$dir/suite.sock")
        else
            args+=(-no-daemon)
        fi
        local attempt
        for attempt in 1 2; do
            start=$(date +%s%N)
            rc=0
            # --foreground: timeout kills the test binary only, not its own
            # process group (this script); what the test started is cleaned
            # up below
            (cd "$dir/tmp" && env "$@" TMPDIR="$dir/tmp" PATH="$extra_path:$PATH" \
                TEST_RUNTIME="$runtime" RUNC_FLAVOR="$flavor" CONTAINERD_TEST_IMAGE_LIST="$WORK/images.toml" \
                timeout --foreground -s KILL "$TEST_TIMEOUT" "$SUITE" "${args[@]}") >"$dir/logs/$t.log" 2>&1 || rc=$?
            ((rc == 124)) && rc=137
            secs=$(( ($(date +%s%N) - start) / 1000000 ))
            if grep -q "^--- FAIL: $t " "$dir/logs/$t.log"; then
                res=FAIL
            elif grep -q "^--- PASS: $t " "$dir/logs/$t.log"; then
                res=PASS
            elif grep -q "^--- SKIP: $t " "$dir/logs/$t.log"; then
                res=SKIP
            else
                res=FAIL
                ((rc == 137)) && echo "conformance.sh: killed after ${TEST_TIMEOUT}s" >>"$dir/logs/$t.log"
            fi
            printf '  %-55s %s (%d.%ds)\n' "$t" "$res" $((secs / 1000)) $((secs % 1000 / 100)) >&2
            # a failed test may leave its task running (its deferred deletes do
            # not kill); later tests would count it (TestContainerList, the ps
            # checks of TestContainerKillInit*): remove it
            if ((own && rc == 137)); then
                conf_kill_work_procs "$dir"
                conf_clean_suite_dirs
            elif ((!own)) && [[ $res == FAIL ]]; then
                conf_reap_namespace "$sock"
            fi
            # One second try where micrun fails a test the reference passed:
            # some tests race on a loaded 2-core machine whatever the runtime
            # (TestContentClient's ingest cleanup); the first log is kept.
            if ((attempt == 1)) && [[ $res == FAIL && $label != reference ]] \
                && grep -qx "$t PASS" "$WORK/reference/results" 2>/dev/null; then
                mv "$dir/logs/$t.log" "$dir/logs/$t.first.log"
                continue
            fi
            if ((attempt == 2)) && [[ $res == PASS ]]; then
                echo "$t" >>"$dir/second-try"
            fi
            break
        done
        printf '%s %s\n' "$t" "$res" >>"$dir/results"
    done
    if ((own == 0)); then
        conf_reap_namespace "$sock"
        micrun_stop_containerd "$dir" >/dev/null 2>&1
    fi
    conf_kill_work_procs "$dir"
    conf_clean_suite_dirs
}

# shellcheck disable=SC2317 # invoked through the trap
conf_teardown() {
    local rc=$? d
    set +e
    for d in "$WORK"/*/; do
        [[ -f $d/containerd.pid ]] && micrun_stop_containerd "$d" >/dev/null 2>&1
        [[ $d == "$WORK/registry/" ]] || conf_kill_work_procs "${d%/}"
    done
    conf_clean_suite_dirs
    micrun_registry_stop "$WORK/registry"
    rm -rf --one-file-system "$WORK"
    exec 9>&-
    exit "$rc"
}

# --------------------------------------------------------------------------

conf_load_expectations
conf_install_deps
micrun_cgroup_fix
if [[ ${MICRUN_NO_BUILD:-0} != 1 ]]; then
    micrun_log "build (scripts/build.sh)"
    bash "$MICRUN_REPO/scripts/build.sh"
fi
SHIM_DIR="${MICRUN_CONFORMANCE_SHIM_DIR:-$MICRUN_REPO/target/shim}"
[[ -x $SHIM_DIR/$MICRUN_SHIM_NAME ]] || { micrun_die "no shim at $SHIM_DIR/$MICRUN_SHIM_NAME"; exit 1; }
BINDIR=$(micrun_containerd_bindir "$CONF_SERIES")
SUITE=$(conf_build_suite)

# one run at a time: the suite's state and root dirs are fixed paths
exec 9>/run/micrun-conformance.lock
flock -n 9 || { micrun_die "another conformance run holds /run/micrun-conformance.lock"; exit 1; }

WORK=$(mktemp -d /tmp/micrun-conf.XXXX)
trap conf_teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mapfile -t ALL_TESTS < <(conf_list_tests)
TESTS_PRIVATE=()
TESTS_OWN=()
declare -A SKIPPED=()
for t in "${ALL_TESTS[@]}"; do
    [[ -n $RUN_RE && ! $t =~ $RUN_RE ]] && continue
    if [[ -n ${NOT_RUN[$t]:-} ]]; then
        SKIPPED[$t]=1
        continue
    fi
    if [[ $t =~ $CONF_OWN_DAEMON_RE ]]; then TESTS_OWN+=("$t"); else TESTS_PRIVATE+=("$t"); fi
done

micrun_registry_start "$WORK/registry"
conf_images

# crun as the reference's OCI runtime: containerd-shim-runc-v2 runs "runc"
# from PATH, so a directory holding runc -> crun goes first on PATH
micrun_crun_wrapper "$WORK/crun"
mkdir -p "$WORK/crun-as-runc"
ln -s "$WORK/crun/crun" "$WORK/crun-as-runc/runc"
conf_run_one reference io.containerd.runc.v2 crun "$WORK/crun-as-runc:$BINDIR"

# RUNC_FLAVOR gates three tests that drive runc itself (its failpoint build
# runc-fp, or runc deleting a container under the Go shim's runc root): they
# are about containerd's runc shim, not the runtime under test, and skip
# unless it says "runc"
for d in "${DELEGATES[@]}"; do
    command -v "$d" >/dev/null 2>&1 || { micrun_die "delegate $d not on PATH"; exit 1; }
    # the shim reads MICRUN_CONFIG from containerd's environment: a private
    # state root and the delegate under test, nothing under /etc
    mkdir -p "$WORK/micrun-$d/state"
    printf 'state_root = "%s"\n\n[delegate]\ndefault = "%s"\n' "$WORK/micrun-$d/state" "$d" >"$WORK/micrun-$d.toml"
    extra="$SHIM_DIR:$BINDIR"
    conf_run_one "micrun-$d" "$MICRUN_RUNTIME" "micrun-$d" "$extra" MICRUN_CONFIG="$WORK/micrun-$d.toml"
done

# --------------------------------------------------------------------------
# the table

declare -A R=()
for f in "$WORK"/*/results; do
    label=$(basename "$(dirname "$f")")
    while read -r t res _; do R[$label/$t]=$res; done <"$f"
done

header=$(printf '%-52s %-9s' TEST reference)
for d in "${DELEGATES[@]}"; do header+=$(printf ' %-11s' "micrun-$d"); done
echo
echo "$header"
unexpected=0
declare -A NPASS=() NBOTHSKIP=()
notes=()
for t in "${ALL_TESTS[@]}"; do
    [[ -n $RUN_RE && ! $t =~ $RUN_RE ]] && continue
    if [[ -n ${SKIPPED[$t]:-} ]]; then
        ref=SKIP
    else
        ref=${R[reference/$t]:-FAIL}
    fi
    [[ $ref == PASS ]] && NPASS[reference]=$((${NPASS[reference]:-0} + 1))
    line=$(printf '%-52s %-9s' "$t" "$ref")
    for d in "${DELEGATES[@]}"; do
        if [[ -n ${SKIPPED[$t]:-} ]]; then m=SKIP; else m=${R[micrun-$d/$t]:-FAIL}; fi
        line+=$(printf ' %-11s' "$m")
        [[ $m == PASS ]] && NPASS[$d]=$((${NPASS[$d]:-0} + 1))
        [[ $m == SKIP && $ref == SKIP ]] && NBOTHSKIP[$d]=$((${NBOTHSKIP[$d]:-0} + 1))
        reason=$(conf_expected "$t" "$d")
        if [[ $m != PASS && -z $reason ]]; then
            if [[ $ref == PASS && $m == FAIL ]]; then
                notes+=("UNEXPECTED [$d] $t: passes on the reference, fails on micrun (log: kept below)")
                unexpected=1
            else
                notes+=("note [$d] $t: $m on micrun ($ref on the reference) and not in $(basename "$CONF_EXPECT")")
            fi
        fi
        if [[ $m == PASS && -n $reason && -z ${SKIPPED[$t]:-} ]]; then
            notes+=("note [$d] $t passes now; its entry says: $reason")
        fi
    done
    echo "$line"
done
for d in "${DELEGATES[@]}"; do
    [[ -f $WORK/micrun-$d/second-try ]] || continue
    while read -r t; do
        notes+=("note [$d] $t failed once and passed on a second try")
    done <"$WORK/micrun-$d/second-try"
done
echo
printf '%s\n' ${notes[@]+"${notes[@]}"}
if ((unexpected)); then
    # keep the logs of the unexpected failures where they can be read
    keep=$(mktemp -d /tmp/micrun-conf-logs.XXXX)
    for d in "${DELEGATES[@]}"; do
        for t in "${ALL_TESTS[@]}"; do
            [[ -f $WORK/micrun-$d/logs/$t.log ]] || continue
            if [[ ${R[micrun-$d/$t]:-} == FAIL && ${R[reference/$t]:-} == PASS && -z $(conf_expected "$t" "$d") ]]; then
                mkdir -p "$keep/micrun-$d" "$keep/reference"
                cp "$WORK/micrun-$d/logs/$t.log" "$keep/micrun-$d/"
                cp "$WORK/reference/logs/$t.log" "$keep/reference/"
            fi
        done
    done
    micrun_log "logs of the unexpected failures: $keep"
fi
[[ -n ${MICRUN_CONFORMANCE_KEEP:-} ]] && cp -a "$WORK" "$MICRUN_CONFORMANCE_KEEP"
counts="reference pass ${NPASS[reference]:-0}/${#ALL_TESTS[@]}"
for d in "${DELEGATES[@]}"; do
    counts+=", micrun-$d pass ${NPASS[$d]:-0}, both skip ${NBOTHSKIP[$d]:-0}"
done
echo "containerd $(micrun_containerd_version_of $CONF_SERIES) integration/client: $counts; $(($(date +%s) - T0)) s"
exit "$unexpected"
