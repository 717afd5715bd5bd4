#!/usr/bin/env bash
# Load, the way containerd measures it: containerd-stress (containerd v2.3.7's,
# built from the Go module proxy, see scripts/lib-peers.sh) against a private
# containerd 2.3.7, for both runtimes side by side in one run:
#
#   micrun     --runtime io.containerd.mica.v2 (its default delegate, crun)
#   reference  --runtime io.containerd.runc.v2 (containerd 2.3.7's Go runc shim)
#              with crun as its OCI runtime
#
# in two modes: plain (-c workers each loop create, start, wait for `true`,
# delete) and --exec (the same, plus -c more workers that each exec `true` in a
# long-running container of their own, in a loop). Printed: containers per
# second, failures, execs per second, and the ratios micrun/reference.
#
#   STRESS_CRUN=/path/to/crun-1.21 bash bench/stress.sh
#
# crun: containerd 2.3 writes OCI spec version 1.3.0, which Debian 12's crun
# 1.8.1 refuses ("unknown version specified") under any shim, so every container
# would fail. The script probes crun first and stops with that message. Name a
# newer crun with STRESS_CRUN=PATH, or run both shims on runc 1.1.5 (which takes
# 1.3.0) with STRESS_OCI_RUNTIME=runc. crun 1.21 builds on Debian 12 from
# Debian's source (trixie's crun_1.21.orig.tar.gz; apt-get install libyajl-dev
# libseccomp-dev libcap-dev libsystemd-dev gperf; ./configure --disable-criu &&
# make).
#
# containerd-stress passes no runtime options (only --runtime), so it cannot
# name the Go shim's OCI runtime (BinaryName): that shim runs the `runc` on its
# PATH. The script puts a directory first on the private containerd's PATH that
# holds `runc` -> the chosen crun (this is what moves the reference off runc)
# and `crun` -> the same binary (micrun's delegate is found as `crun` on PATH).
# micrun's delegate is named in a micrun config (MICRUN_CONFIG on containerd's
# environment, inherited by the shims).
#
# Image: containerd-stress pulls it (--image). The script starts a loopback
# registry (scripts/lib-registry.sh) and pushes a static busybox image holding
# the `games` user that containerd-stress's containers run as.
#
# containerd-stress raises RLIMIT_NOFILE to 100000 at start and panics when it
# cannot. Where the hard limit is lower and cannot be raised (no
# CAP_SYS_RESOURCE, e.g. in a container), the script builds a copy whose only
# change is to raise the soft limit to the hard limit instead (`go build
# -overlay`; the module's files stay untouched), cached beside the peers.
#
# Knobs (environment): STRESS_CONCURRENCY (4), STRESS_DURATION (60s),
# STRESS_MODES ("plain exec"), STRESS_CRUN (a crun binary; default: crun on
# PATH), STRESS_OCI_RUNTIME (crun, or runc), STRESS_NO_BUILD=1 to skip
# scripts/build.sh, STRESS_LOGS=DIR to keep each run's containerd-stress log
# and containerd's log. Quick smoke run:
#   STRESS_DURATION=5s STRESS_CONCURRENCY=2 STRESS_CRUN=... bash bench/stress.sh
# The two halves of a mode run one after the other (plain: micrun first; exec:
# reference first), so read the ratios with the load printed beside each run:
# on a small, shared machine other work moves them.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"
cd "$REPO"

CONCURRENCY="${STRESS_CONCURRENCY:-4}"
DURATION="${STRESS_DURATION:-60s}"
read -r -a MODES <<<"${STRESS_MODES:-plain exec}"
OURS_RUNTIME="$MICRUN_RUNTIME"
REF_RUNTIME=io.containerd.runc.v2
SERIES=2.3

micrun_install_deps
micrun_cgroup_fix
if [[ ${STRESS_NO_BUILD:-0} != 1 ]]; then
    micrun_log "build (scripts/build.sh)"
    bash "$REPO/scripts/build.sh"
fi
BINDIR=$(micrun_containerd_bindir "$SERIES")

# The OCI runtime under both shims: crun (the default), or runc. containerd 2.3
# writes ociVersion 1.3.0 into every spec; crun refuses versions it does not know
# ("unknown version specified": Debian 12's crun 1.8.1 takes 1.0 and 1.1 only),
# for both shims alike. Probe it before the run rather than count failures.
OCI="${STRESS_OCI_RUNTIME:-crun}"
case $OCI in
    crun | runc) ;;
    *) micrun_die "STRESS_OCI_RUNTIME must be crun or runc, not '$OCI'" ;;
esac
if [[ $OCI == crun && -n ${STRESS_CRUN:-} ]]; then
    OCI_BIN=$STRESS_CRUN
    [[ -x $OCI_BIN ]] || micrun_die "STRESS_CRUN=$OCI_BIN is not an executable"
else
    OCI_BIN=$(command -v "$OCI") || micrun_die "$OCI not found on PATH"
fi
oci_takes_spec_1_3() {
    local dir out
    dir=$(mktemp -d /tmp/micrun-stress-probe.XXXX)
    mkdir -p "$dir/bundle/rootfs"
    (cd "$dir/bundle" && "$OCI_BIN" spec) || { rm -rf "$dir"; return 1; }
    sed -i 's/"ociVersion": *"[^"]*"/"ociVersion": "1.3.0"/' "$dir/bundle/config.json"
    out=$("$OCI_BIN" --root "$dir/state" create --bundle "$dir/bundle" "micrun-stress-probe-$$" 2>&1 </dev/null) || true
    "$OCI_BIN" --root "$dir/state" delete -f "micrun-stress-probe-$$" >/dev/null 2>&1 || true
    rm -rf "$dir"
    [[ $out != *"unknown version"* ]]
}
if ! oci_takes_spec_1_3; then
    micrun_die "$OCI_BIN ($("$OCI_BIN" --version | head -n 1)) refuses OCI spec version 1.3.0, which containerd 2.3 writes: every container would fail under both shims. Name a newer crun with STRESS_CRUN=PATH, or use STRESS_OCI_RUNTIME=runc"
fi

# containerd-stress that can start here: the stock one where RLIMIT_NOFILE can
# reach 100000, else the capped copy described above.
stress_binary() {
    if (ulimit -n 100000) 2>/dev/null; then
        echo "$BINDIR/containerd-stress"
        return 0
    fi
    local ver src out file
    ver=$(micrun_containerd_version_of "$SERIES")
    out="$MICRUN_PEERS_DIR/containerd-$ver/stress-nofile-capped"
    if [[ ! -x $out/containerd-stress ]]; then
        src=$(micrun_containerd_source "$SERIES") || return 1
        file="$src/cmd/containerd-stress/rlimit_unix.go"
        micrun_log "RLIMIT_NOFILE cannot reach 100000 (hard limit $(ulimit -Hn)): building containerd-stress capped at the hard limit into $out"
        rm -rf "$out.tmp"
        mkdir -p "$out.tmp"
        sed 's/^\t\t\tlimit\.Max = limit\.Cur$/\t\t\tlimit.Cur = limit.Max/' "$file" >"$out.tmp/rlimit_unix.go"
        if cmp -s "$file" "$out.tmp/rlimit_unix.go"; then
            micrun_die "$file changed: the rlimit patch no longer applies"
            return 1
        fi
        printf '{"Replace":{"%s":"%s"}}\n' "$file" "$out.tmp/rlimit_unix.go" >"$out.tmp/overlay.json"
        (cd "$src" && micrun__go build -mod=mod -overlay "$out.tmp/overlay.json" \
            -ldflags "-X github.com/containerd/containerd/v2/version.Version=$ver" \
            -o "$out.tmp/containerd-stress" ./cmd/containerd-stress) >&2 || return 1
        rm -rf "$out"
        mv "$out.tmp" "$out"
    fi
    echo "$out/containerd-stress"
}
STRESS=$(stress_binary)

WORK=$(mktemp -d /tmp/micrun-stress.XXXX)
CG=""
# shellcheck disable=SC2317 # invoked through the trap
stress__teardown() {
    local rc=$?
    if [[ -n ${STRESS_LOGS:-} ]]; then
        mkdir -p "$STRESS_LOGS"
        cp "$WORK"/*-*.{json,log,load,left,cpu} "$WORK/containerd.log" "$STRESS_LOGS/" 2>/dev/null || true
    fi
    micrun_stop_containerd "$WORK" || true
    [[ -n $CG && -d $CG ]] && { rmdir "$CG" 2>/dev/null || micrun_log "could not remove $CG"; }
    micrun_registry_stop "$WORK/registry" || true
    # the runtimes' state roots for containerd-stress's namespace, if empty
    local d
    for d in /run/micrun/stress /run/containerd/runc/stress; do
        [[ -d $d ]] && find "$d" -depth -type d -empty -delete 2>/dev/null
    done
    ((rc == 0)) || micrun_containerd_log_tail "$WORK" 20
    rm -rf --one-file-system "$WORK"
    exit "$rc"
}
trap stress__teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The reference's `runc` is crun (see the header); micrun's default delegate is
# crun already, and runc where asked for, through its config (MICRUN_CONFIG, on
# containerd's environment, which the shims inherit).
mkdir -p "$WORK/oci-bin"
if [[ $OCI == crun ]]; then
    ln -s "$OCI_BIN" "$WORK/oci-bin/runc"
    ln -s "$OCI_BIN" "$WORK/oci-bin/crun"
fi
printf '[delegate]\ndefault = "%s"\n' "$OCI" >"$WORK/micrun.toml"
PATH="$WORK/oci-bin:$PATH" MICRUN_CONFIG="$WORK/micrun.toml" MICRUN_CONTAINERD=$SERIES \
    micrun_start_containerd "$WORK"
ADDR="$WORK/containerd.sock"

# CPU time of containerd, the shims and the OCI runtime processes they run (not
# the containers' own processes, which the runtime moves to their cgroups):
# containerd goes into a cgroup v1 cpuacct group of its own, which the shims and
# runtimes it starts inherit. Less moved by other load than containers per
# second. Skipped where there is no v1 cpuacct hierarchy.
if [[ -d /sys/fs/cgroup/cpuacct ]] && mkdir "/sys/fs/cgroup/cpuacct/micrun-stress-$$" 2>/dev/null; then
    CG="/sys/fs/cgroup/cpuacct/micrun-stress-$$"
    echo "$(cat "$WORK/containerd.pid")" >"$CG/cgroup.procs"
fi
cpu_ns() {
    if [[ -n $CG ]]; then cat "$CG/cpuacct.usage"; else echo 0; fi
}

# The image: static busybox, and the `games` user (uid 5) that containerd-stress
# asks for with oci.WithUsername.
stress_image() {
    local out=$1 ref=$2 work root
    work=$(mktemp -d "$WORK/img.XXXX")
    root="$work/rootfs"
    micrun_busybox_root "$root"
    printf 'root:x:0:0:root:/root:/bin/sh\ngames:x:5:60:games:/usr/games:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\ngames:x:60:\n' >"$root/etc/group"
    micrun__pack_image "$root" "$work" "$out" "$ref" "micrun bench/stress.sh: static busybox, user games" '"sh"'
    rm -rf "$work"
}
micrun_registry_start "$WORK/registry"
IMG="$MICRUN_REGISTRY/micrun/busybox:stress"
stress_image "$WORK/busybox.tar" "$IMG"
micrun_registry_push "$WORK/busybox.tar" "$IMG"

# Shim processes of our containerd still running: their command lines name its
# socket (one grep pass over /proc; containerd-stress, which names it too, has
# exited by the time this runs).
shim_pids() {
    local f
    grep -lsF -- "$ADDR" /proc/[0-9]*/cmdline 2>/dev/null | while read -r f; do
        grep -qsF containerd-shim "$f" && { f=${f#/proc/}; echo "${f%/cmdline}"; }
    done
    return 0
}

# run_stress NAME RUNTIME MODE: one containerd-stress run; results in
# WORK/NAME-MODE.{json,log,load,left,cpu}.
run_stress() {
    local name=$1 runtime=$2 mode=$3 base extra=() secs
    base="$WORK/$name-$mode"
    [[ $mode == exec ]] && extra=(--exec)
    # the run's own bound: its duration plus two minutes to pull and wind down
    secs=$(python3 -c 'import sys, re
m = re.fullmatch(r"(\d+)(ms|s|m)", sys.argv[1])
print(int(int(m[1]) * {"ms": 0.001, "s": 1, "m": 60}[m[2]]) + 120 if m else 600)' "$DURATION")
    micrun_log "containerd-stress: $name ($runtime), $mode, -c $CONCURRENCY -d $DURATION; load $(cut -d' ' -f1-3 /proc/loadavg)"
    cut -d' ' -f1-3 /proc/loadavg >"$base.load"
    cpu_ns >"$base.cpu"
    # --json for the totals; --debug because --json alone silences the info line
    # that carries the failure count, and logs each exec (the JSON counts the
    # execs of the last exec worker only)
    if ! timeout -s KILL "$secs" "$STRESS" --address "$ADDR" --runtime "$runtime" --image "$IMG" \
        -c "$CONCURRENCY" -d "$DURATION" --json --debug "${extra[@]}" >"$base.json" 2>"$base.log"; then
        tail -n 20 "$base.log" >&2
        micrun_die "containerd-stress failed ($name, $mode; log above)"
        return 1
    fi
    cut -d' ' -f1-3 /proc/loadavg >>"$base.load"
    cpu_ns >>"$base.cpu"
    local tasks shims=() i
    tasks=$(timeout -s KILL 10 "$BINDIR/ctr" --address "$ADDR" -n stress tasks ls -q | wc -l)
    # shims exit a moment after their last container's delete
    for ((i = 0; i < 50; i++)); do
        mapfile -t shims < <(shim_pids)
        ((${#shims[@]} == 0)) && break
        sleep 0.1
    done
    echo "$tasks ${#shims[@]}" >"$base.left"
    if ((tasks + ${#shims[@]})); then
        # containerd-stress reuses its container ids run after run: a shim left
        # behind would answer for the next run's container of the same id
        micrun_log "warning: $name $mode left $tasks task(s) and ${#shims[@]} shim(s) behind; killing the shims"
        kill -KILL "${shims[@]}" 2>/dev/null || true
    fi
}

for mode in "${MODES[@]}"; do
    case $mode in
        plain)
            run_stress micrun "$OURS_RUNTIME" plain
            run_stress reference "$REF_RUNTIME" plain
            ;;
        exec)
            run_stress reference "$REF_RUNTIME" exec
            run_stress micrun "$OURS_RUNTIME" exec
            ;;
        *) micrun_die "unknown mode '$mode' (plain, exec)" ;;
    esac
done

# --------------------------------------------------------------------------
# report
python3 - "$WORK" "$CONCURRENCY" "$DURATION" "$(nproc)" "$OCI ($("$OCI_BIN" --version | head -n 1))" "${MODES[@]}" <<'PY'
import json, re, sys

work, conc, duration, ncpu, oci, *modes = sys.argv[1:]

def result(name, mode):
    base = "%s/%s-%s" % (work, name, mode)
    r = json.loads(open(base + ".json").read().strip().splitlines()[-1])
    log = open(base + ".log", errors="replace").read()
    # "create/start/delete N containers in S seconds (...)" failures=F
    m = re.search(r'msg="create/start/delete \d+ containers[^"]*" failures=(\d+)', log)
    r["failures"] = int(m[1]) if m else None
    r["execStarted"] = len(re.findall(r'msg="starting exec ', log))
    r["execErrors"] = len(re.findall(r'level=error msg="running exec ', log))
    r["errors"] = len(re.findall(r"level=error", log))
    r["load"] = open(base + ".load").read().split("\n")[:2]
    r["left"] = open(base + ".left").read().split()
    a, b = (int(x) for x in open(base + ".cpu").read().split())
    r["cpu"] = (b - a) / 1e9 if b else None
    return r

print()
print("== containerd-stress -c %s -d %s, containerd 2.3.7, OCI runtime %s, %s CPUs ==" % (conc, duration, oci, ncpu))
for mode in modes:
    ours, ref = result("micrun", mode), result("reference", mode)
    print()
    print("-- %s --" % ("plain" if mode == "plain" else "--exec"))
    print("%-30s %10s %7s %8s %6s %7s %7s %8s  %s" % (
        "runtime", "containers", "c/s", "failures", "execs", "exec/s", "CPU s", "CPU ms/op",
        "load 1/5/15 before -> after"))
    for label, r in (("micrun (mica.v2)", ours),
                     ("reference (Go runc.v2)", ref)):
        execs = "%d" % r["execStarted"] if mode == "exec" else "-"
        eps = "%.2f" % (r["execStarted"] / r["seconds"]) if mode == "exec" else "-"
        fails = "?" if r["failures"] is None else "%d" % r["failures"]
        if mode == "exec":
            fails += "+%d" % r["execErrors"]
        ops = r["total"] + (r["execStarted"] if mode == "exec" else 0)
        cpu = "%.1f" % r["cpu"] if r["cpu"] is not None else "n/a"
        per = "%.1f" % (r["cpu"] * 1000 / ops) if r["cpu"] is not None and ops else "n/a"
        print("%-30s %10d %7.2f %8s %6s %7s %7s %8s  %s -> %s" % (
            label, r["total"], r["containersPerSecond"], fails, execs, eps, cpu, per, r["load"][0], r["load"][1]))
    print("ratio micrun/reference, containers per second: %.2f" % (
        ours["containersPerSecond"] / ref["containersPerSecond"]))
    if ours["cpu"] and ref["cpu"]:
        po = ours["cpu"] / (ours["total"] + (ours["execStarted"] if mode == "exec" else 0))
        pr = ref["cpu"] / (ref["total"] + (ref["execStarted"] if mode == "exec" else 0))
        print("ratio micrun/reference, CPU per op:            %.2f" % (po / pr))
    if mode == "exec" and ref["execStarted"]:
        print("ratio micrun/reference, execs per second:      %.2f" % (
            (ours["execStarted"] / ours["seconds"]) / (ref["execStarted"] / ref["seconds"])))
    for label, r in (("micrun", ours), ("reference", ref)):
        if r["errors"]:
            print("note: %s logged %d error line(s); see its log" % (label, r["errors"]))
        if r["left"] != ["0", "0"]:
            print("note: %s left %s task(s) and %s shim process(es) behind" % (label, *r["left"]))
print()
print("(failures: containers, +execs in --exec mode; execs counted from the debug log")
print(" of every exec worker; containers/s over the container workers; CPU: containerd,")
print(" shims and OCI runtime processes, per op = per container, + per exec in --exec mode)")
PY
