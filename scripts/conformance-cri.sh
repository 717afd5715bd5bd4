# shellcheck shell=bash
# `scripts/conformance.sh cri` (sourced by scripts/conformance.sh, which holds
# the shared expectations and image code): critest, cri-tools' CRI validation
# suite, against a private CRI containerd once per runtime handler, side by side.
#
#   scripts/conformance.sh cri [--handler runc|mica|mica-shim]... [--focus REGEX] [--containerd 1.6|2.3]
#
# Handlers (default runc and mica): `runc` is containerd's own
# io.containerd.runc.v2 shim running crun, the reference; `mica` is micrun
# (io.containerd.mica.v2, registered from examples/containerd-config*.toml),
# its Linux containers run by its delegate crun and the pod's sandbox by its
# holder; `mica-shim` (containerd 2.x) is micrun on the Sandbox API, no pause
# container at all. containerd 2.3.7 by default, or Debian's 1.6.20. Each
# handler gets a fresh containerd; both micrun handlers are judged by the
# same expectations.
#
# Everything runs inside a network namespace made for the run (containerd, its
# CNI bridge and pods, the registry, critest), removed on exit. The images
# critest pulls are built here from Debian's busybox package and small files
# (web servers are busybox httpd behind the names the specs look for), pushed
# to a loopback registry under their original paths and served under their
# original names (registry.k8s.io/..., gcr.io/...) through containerd's
# certs.d/_default/hosts.toml.
#
# Expectations: tests/conformance/cri-v2.3.txt (cri-v1.6.txt), one line per
# spec: "SPEC | reason" (SPEC@mica limits it to one handler). Exit status is
# non-zero when a spec passes on runc (or runc was not run) and fails on a
# micrun handler without an entry, also on a second try in a fresh containerd.
#
# Environment: MICRUN_CRITEST_TIMEOUT bounds each handler's run in seconds
# (default 3600); MICRUN_CONFORMANCE_KEEP=DIR keeps the run's files there.

CRI_SERIES=2.3
HANDLERS=()
FOCUS=""
while (($#)); do
    case $1 in
        --handler) HANDLERS+=("${2:?--handler runc|mica|mica-shim}"); shift 2 ;;
        --focus) FOCUS=${2:?--focus REGEX}; shift 2 ;;
        --containerd) CRI_SERIES=$(micrun_containerd_series "${2:?--containerd 1.6|2.3}"); shift 2 ;;
        *) usage ;;
    esac
done
((${#HANDLERS[@]})) || HANDLERS=(runc mica)
for h in "${HANDLERS[@]}"; do
    case $h in runc | mica | mica-shim) ;; *) micrun_die "unknown handler '$h' (runc, mica, mica-shim)"; exit 2 ;; esac
done
if [[ " ${HANDLERS[*]} " == *" mica-shim "* && $CRI_SERIES != 2.* ]]; then
    micrun_die "mica-shim is containerd 2.x's Sandbox API: run it with --containerd 2.3"
    exit 2
fi
[[ $CRI_SERIES == 1.7 ]] && { micrun_die "critest runs on containerd 2.3 or 1.6"; exit 2; }
CONF_EXPECT="$MICRUN_REPO/tests/conformance/cri-v$CRI_SERIES.txt"
CONF_SEP="|"
# the sandbox (pause) image; registry.k8s.io/pause:3.9 is one critest removes
CRI_SANDBOX_IMAGE=registry.k8s.io/pause:3.10.1
CRI_TIMEOUT=${MICRUN_CRITEST_TIMEOUT:-3600}

# --------------------------------------------------------------------------
# images (cri-tools v1.37.0: pkg/framework/util.go, pkg/validate/consts*.go,
# security_context_linux.go, multi_container_linux.go, images/build)

# Debian's busybox has no ipcs and no pgrep, which the specs run
cri_missing_applets() {
    local root=$1
    cat >"$root/bin/ipcs" <<'EOF'
#!/bin/sh
# ipcs stand-in (micrun): the System V shared memory segments of this IPC
# namespace, from /proc/sysvipc/shm
echo "------ Shared Memory Segments --------"
echo "key        shmid      owner      perms      bytes      nattch"
[ -r /proc/sysvipc/shm ] || exit 0
tail -n +2 /proc/sysvipc/shm | while read -r key id perms size cpid lpid nattch uid rest; do
    echo "$key $id $uid $perms $size $nattch"
done
EOF
    cat >"$root/bin/pgrep" <<'EOF'
#!/bin/sh
# pgrep PATTERN stand-in (micrun): the pids whose command name matches
[ $# -eq 1 ] || { echo "usage: pgrep PATTERN" >&2; exit 2; }
rc=1
for d in /proc/[0-9]*; do
    { read -r comm <"$d/comm"; } 2>/dev/null || continue
    if echo "$comm" | grep -q -- "$1"; then echo "${d#/proc/}"; rc=0; fi
done
exit $rc
EOF
    chmod 755 "$root/bin/ipcs" "$root/bin/pgrep"
}

# busybox httpd behind the names critest's specs look for: comm "nginx"
# (pidof), "master process" on the command line (ContainerPID), the pid in
# /var/run/nginx.pid (HostPID); it ends on SIGTERM like nginx
cri_nginx_layer() {
    local dir=$1
    mkdir -p "$dir/usr/sbin" "$dir/usr/share/nginx/html" "$dir/var/run"
    echo '<html><body>Welcome to nginx (busybox httpd)</body></html>' >"$dir/usr/share/nginx/html/index.html"
    cat >"$dir/usr/sbin/nginx" <<'EOF'
#!/bin/sh
# nginx stand-in (micrun): busybox httpd serving /usr/share/nginx/html
case $1 in
"nginx: master process") shift ;;
*) exec "$0" "nginx: master process" "$@" ;;
esac
echo $$ >/var/run/nginx.pid
httpd -f -p "${NGINX_PORT:-80}" -h /usr/share/nginx/html &
trap 'kill $! 2>/dev/null; exit 0' TERM INT QUIT
wait
EOF
    chmod 755 "$dir/usr/sbin/nginx"
}

# Debian's busybox-static is a standalone shell: its sh runs `ls` in-process
# even where /bin/ls is masked (MaskedPaths). Debian's `busybox` package, the
# dynamic one, execs /bin/ls as the public image's does. Both packages cannot
# be installed together: the .deb is fetched with apt-get download and
# unpacked once per version under /var/cache/micrun/debs (CRI_BUSYBOX).
cri_fetch_busybox() {
    local ver tmp
    ver=$(apt-cache policy busybox 2>/dev/null | sed -n 's/^ *Candidate: //p')
    [[ -n $ver && $ver != "(none)" ]] || { apt-get update -qq; ver=$(apt-cache policy busybox | sed -n 's/^ *Candidate: //p'); }
    [[ -n $ver && $ver != "(none)" ]] || { micrun_die "apt knows no busybox package"; return 1; }
    CRI_BUSYBOX="/var/cache/micrun/debs/busybox-${ver//[:\/]/_}"
    [[ -x $CRI_BUSYBOX/bin/busybox ]] && return 0
    tmp=$(mktemp -d /tmp/micrun-deb.XXXX)
    micrun_log "apt-get download busybox $ver (the critest images' shell)"
    # apt's sandbox user cannot write the temp dir: it warns and downloads as
    # root. Stale package lists may name a version the mirror no longer has.
    if ! (cd "$tmp" && apt-get download "busybox=$ver" >"$tmp/log" 2>&1); then
        apt-get update -qq
        (cd "$tmp" && apt-get download busybox >>"$tmp/log" 2>&1)
    fi
    if ! dpkg-deb -x "$tmp"/busybox_*.deb "$tmp/x"; then
        cat "$tmp/log" >&2
        rm -rf "$tmp"
        micrun_die "could not fetch Debian's busybox package"
        return 1
    fi
    ver=$(dpkg-deb -f "$tmp"/busybox_*.deb Version)
    CRI_BUSYBOX="/var/cache/micrun/debs/busybox-${ver//[:\/]/_}"
    mkdir -p "$(dirname "$CRI_BUSYBOX")"
    rm -rf "$CRI_BUSYBOX"
    mv "$tmp/x" "$CRI_BUSYBOX"
    rm -rf "$tmp"
}

# The public busybox image's layout under ROOT: busybox with its applets as
# hard links in /bin (a masked /bin/ls hides that name only), the shared
# libraries it needs, the users and groups of conf_busybox_root, ipcs and pgrep.
cri_busybox_root() {
    local root=$1 bb="$CRI_BUSYBOX/bin/busybox" a lib
    conf_busybox_root "$root" critest
    find "$root/bin" -mindepth 1 -delete
    install -m 755 "$bb" "$root/bin/busybox"
    while read -r a; do
        [[ -n $a && $a != busybox && $a != */* ]] && ln "$root/bin/busybox" "$root/bin/$a"
    done < <("$bb" --list)
    # its libraries at the paths the loader looks for them (ldd: "x => /path"
    # and the loader itself)
    for lib in $(ldd "$bb" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
    cri_missing_applets "$root"
}

# A static program from C source $1 at $2 (what busybox has no stand-in for).
cri_cc() {
    gcc -static -Os -o "$2" "$1" || { micrun_die "gcc -static $1 failed (needs gcc and libc6-dev)"; return 1; }
}

# Builds the images and pushes them to MICRUN_REGISTRY under their paths.
cri_images() {
    local reg=$MICRUN_REGISTRY img="$WORK/img" e2e k8s arch t
    e2e="$reg/e2e-test-images"
    k8s="$reg/k8s-staging-cri-tools"
    arch=$(micrun__oci_arch)
    rm -rf "$img"
    mkdir -p "$img"
    # one base layer for all: busybox, the public busybox image's users
    cri_busybox_root "$img/base"
    cri_push() { # TAR REF...
        local tar=$1 ref
        shift
        for ref in "$@"; do micrun_registry_push "$tar" "$ref" || return 1; done
    }
    # the default container image
    conf_pack_layers "$img/busybox.tar" busybox '"sh"' "$img/base"
    cri_push "$img/busybox.tar" "$e2e/busybox:1.29-2"
    # web servers
    cri_nginx_layer "$img/nginx"
    CONF_IMAGE_EXTRA='"ExposedPorts":{"80/tcp":{}}' \
        conf_pack_layers "$img/nginx.tar" nginx '"nginx","-g","daemon off;"' "$img/base" "$img/nginx"
    cri_push "$img/nginx.tar" "$e2e/nginx:1.14-2"
    # cri-tools' hostnet-nginx: nginx on port 12003 in the host's network
    CONF_IMAGE_EXTRA='"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","NGINX_PORT=12003"]' \
        conf_pack_layers "$img/hostnet.tar" hostnet '"nginx","-g","daemon off;"' "$img/base" "$img/nginx"
    cri_push "$img/hostnet.tar" "$k8s/hostnet-nginx-$arch:latest"
    mkdir -p "$img/httpd/usr/local/bin" "$img/httpd/usr/local/apache2/htdocs"
    echo '<html><body>It works! (busybox httpd)</body></html>' >"$img/httpd/usr/local/apache2/htdocs/index.html"
    cat >"$img/httpd/usr/local/bin/httpd-foreground" <<'EOF'
#!/bin/sh
# httpd stand-in (micrun): busybox httpd serving /usr/local/apache2/htdocs
echo "httpd (busybox httpd) serving /usr/local/apache2/htdocs on port 80"
httpd -f -p 80 -h /usr/local/apache2/htdocs &
trap 'kill $! 2>/dev/null; exit 0' TERM INT QUIT
wait
EOF
    chmod 755 "$img/httpd/usr/local/bin/httpd-foreground"
    conf_pack_layers "$img/httpd.tar" httpd '"httpd-foreground"' "$img/base" "$img/httpd"
    cri_push "$img/httpd.tar" "$e2e/httpd:2.4.39-4"
    # nonewprivs: a setuid-root program that prints its effective uid
    mkdir -p "$img/nnp/usr/local/bin"
    printf '%s\n' '#include <stdio.h>' '#include <unistd.h>' \
        'int main(void) { printf("Effective uid: %d\n", (int)geteuid()); return 0; }' >"$img/nnp.c"
    cri_cc "$img/nnp.c" "$img/nnp/usr/local/bin/nnp" || return 1
    chmod 4755 "$img/nnp/usr/local/bin/nnp"
    CONF_IMAGE_EXTRA='"Entrypoint":["/usr/local/bin/nnp"]' \
        conf_pack_layers "$img/nnp.tar" nonewprivs '' "$img/base" "$img/nnp"
    cri_push "$img/nnp.tar" "$e2e/nonewprivs:1.3"
    # cri-tools' image-user images: busybox with USER set
    local u users=(test-image-user-uid=1002 test-image-user-username=www-data
        test-image-user-uid-group=1003:1004 test-image-user-username-group=www-data:1004)
    for u in "${users[@]}"; do
        CONF_IMAGE_EXTRA="\"User\":\"${u#*=}\"" conf_pack_layers "$img/user.tar" "${u%%=*}" '"sh"' "$img/base"
        cri_push "$img/user.tar" "$k8s/${u%%=*}:latest"
    done
    # image-predefined-group: default-user (1000) in group 50000 of /etc/group
    mkdir -p "$img/group/etc" "$img/group/home/default-user"
    cp "$img/base/etc/passwd" "$img/base/etc/group" "$img/group/etc/"
    echo 'default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh' >>"$img/group/etc/passwd"
    printf 'default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n' >>"$img/group/etc/group"
    chown 1000:1000 "$img/group/home/default-user"
    CONF_IMAGE_EXTRA='"User":"1000"' conf_pack_layers "$img/group.tar" group '"sh"' "$img/base" "$img/group"
    cri_push "$img/group.tar" "$k8s/test-image-predefined-group:latest"
    # image-test images: busybox and one file named after the image
    for t in test-image-latest test-image-1 test-image-2 test-image-3 test all same-image; do
        mkdir -p "$img/t-$t"
        : >"$img/t-$t/$t"
        conf_pack_layers "$img/t-$t.tar" "$t" '"sh"' "$img/base" "$img/t-$t"
    done
    cri_push "$img/t-test-image-latest.tar" "$k8s/test-image-latest:latest"
    for t in 1 2 3; do cri_push "$img/t-test-image-$t.tar" "$k8s/test-image-$t:latest"; done
    cri_push "$img/t-test.tar" "$k8s/test-image-tag:test"
    cri_push "$img/t-all.tar" "$k8s/test-image-tag:all"
    cri_push "$img/t-same-image.tar" "$k8s/test-image-tags:1" "$k8s/test-image-tags:2" "$k8s/test-image-tags:3"
    # pause images: a process named "pause" (containers share the pod's PID
    # namespace by default, and a spec greps their processes for "sleep")
    # that ends on SIGTERM and reaps orphans. registry.k8s.io/pause:3.9 and
    # k8s.gcr.io/pause:3.9 are one path on the one registry; the sandbox
    # image differs from it.
    mkdir -p "$img/p39" "$img/psb"
    cat >"$img/pause.c" <<'EOF'
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction q = {.sa_handler = quit}, r = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGINT, &q, 0);
    sigaction(SIGTERM, &q, 0);
    sigaction(SIGCHLD, &r, 0);
    for (;;) pause();
}
EOF
    cri_cc "$img/pause.c" "$img/p39/pause" || return 1
    cp "$img/p39/pause" "$img/psb/pause"
    echo 3.9 >"$img/p39/version"
    echo sandbox >"$img/psb/version"
    CONF_IMAGE_EXTRA='"Entrypoint":["/pause"]' conf_pack_layers "$img/p39.tar" pause '' "$img/p39"
    cri_push "$img/p39.tar" "$reg/pause:3.9"
    CONF_IMAGE_EXTRA='"Entrypoint":["/pause"]' conf_pack_layers "$img/psb.tar" pause '' "$img/psb"
    cri_push "$img/psb.tar" "$reg/${CRI_SANDBOX_IMAGE#*/}"
    rm -rf "$img"
}

# --------------------------------------------------------------------------
# one run: HANDLER [LABEL [FOCUS]]; writes WORK/LABEL/results
# ("RESULT<TAB>spec<TAB>message"); LABEL defaults to HANDLER

# ginkgo's regular expressions take spec names literally this way
cri_re_escape() {
    sed 's/[][\\.*^$(){}?+|/]/\\&/g' <<<"$1"
}

cri_run_one() {
    local h=$1 dir="$WORK/${2:-$1}" focus=${3:-$FOCUS} sock rc=0 start args=()
    mkdir -p "$dir"
    sock="$dir/containerd.sock"
    micrun_critest_cni "$dir"
    micrun_critest_hosts "$dir" "$MICRUN_REGISTRY"
    # micrun's own config for the mica handler: a private state root
    mkdir -p "$dir/micrun-state"
    printf 'state_root = "%s"\n\n[delegate]\ndefault = "crun"\n' "$dir/micrun-state" >"$dir/micrun.toml"
    micrun_critest_config "$dir" "$CRI_SERIES" "$CRI_SANDBOX_IMAGE" "$WORK/crun/crun" >"$dir/config.toml"
    mkdir -p "$dir/root" "$dir/state" "$dir/opt"
    : >"$dir/containerd.log"
    micrun_log "[$h] containerd $(micrun_containerd_version_of "$CRI_SERIES"), critest -runtime-handler $h"
    PATH="$SHIM_DIR:$BINDIR:$PATH" "$BINDIR/containerd" --config "$dir/config.toml" \
        </dev/null >>"$dir/containerd.log" 2>&1 &
    echo "$!" >"$dir/containerd.pid"
    micrun_wait_containerd "$dir" "$BINDIR/ctr" || return 1
    args=(-runtime-endpoint "unix://$sock" -image-endpoint "unix://$sock" -runtime-handler "$h"
        -ginkgo.json-report "$dir/report.json" -ginkgo.no-color -ginkgo.timeout "${CRI_TIMEOUT}s")
    # NRI's specs where containerd has NRI (2.x; 1.6's is the older, other API)
    [[ $CRI_SERIES == 2.* ]] && args+=(-nri-socket "$dir/nri.sock")
    [[ -n $focus ]] && args+=(-ginkgo.focus "$focus")
    [[ -n $CRI_SKIP_RE ]] && args+=(-ginkgo.skip "$CRI_SKIP_RE")
    start=$(date +%s)
    # --foreground: timeout kills critest only, not this script's process
    # group. TMPDIR: the pod log directories critest makes (and leaves behind
    # when a spec fails early) go with the run's directory.
    mkdir -p "$dir/tmp"
    (cd "$dir" && TMPDIR="$dir/tmp" timeout --foreground -s KILL "$((CRI_TIMEOUT + 120))" "$CRITEST" "${args[@]}") \
        >"$dir/critest.log" 2>&1 || rc=$?
    echo "$(($(date +%s) - start))" >"$dir/seconds"
    micrun_log "[$h] critest exited with $rc after $(cat "$dir/seconds") s (log: $dir/critest.log)"
    micrun_stop_containerd "$dir" >/dev/null 2>&1 || true
    if [[ ! -s $dir/report.json ]]; then
        tail -n 30 "$dir/critest.log" >&2
        micrun_die "[$h] critest wrote no report"
        return 1
    fi
    # ginkgo's JSON report: one entry per spec ("It"), skipped ones included;
    # critest itself always skips its benchmarks (-ginkgo.skip benchmark)
    python3 - "$dir/report.json" >"$dir/results" <<'EOF'
import json, sys
states = {"passed": "PASS", "skipped": "SKIP", "pending": "SKIP"}
for suite in json.load(open(sys.argv[1])):
    for s in suite.get("SpecReports") or []:
        name = " ".join((s.get("ContainerHierarchyTexts") or []) + [s.get("LeafNodeText", "")])
        if s.get("LeafNodeType") != "It" or "benchmark" in name:
            continue
        msg = " ".join(((s.get("Failure") or {}).get("Message") or "").split())
        print("%s\t%s\t%s" % (states.get(s["State"], "FAIL"), name, msg[:300]))
EOF
}

# What this mode needs of Debian (not all of micrun_install_deps: no youki,
# no Python API bindings): containerd 1.6 and its runc shim, crun, the static
# busybox, CNI's plugins, iptables (portmap), gcc and a static libc (the
# nonewprivs image), nsenter, ip, python3 (reading ginkgo's report).
cri_install_deps() {
    local missing=()
    command -v containerd >/dev/null 2>&1 && command -v containerd-shim-runc-v2 >/dev/null 2>&1 || missing+=(containerd)
    command -v crun >/dev/null 2>&1 || missing+=(crun)
    micrun__pkg_installed busybox-static || missing+=(busybox-static)
    [[ -x $MICRUN_CNI_BIN_DIR/bridge && -x $MICRUN_CNI_BIN_DIR/portmap ]] || missing+=(containernetworking-plugins)
    command -v iptables >/dev/null 2>&1 || missing+=(iptables)
    command -v gcc >/dev/null 2>&1 || missing+=(gcc)
    [[ -f /usr/include/stdio.h ]] || missing+=(libc6-dev)
    command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
    command -v ip >/dev/null 2>&1 || missing+=(iproute2)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    if ((${#missing[@]})); then
        micrun_log "apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# shellcheck disable=SC2317 # invoked through the trap
cri_teardown() {
    local rc=$? d
    set +e
    for d in "$WORK"/*/; do
        [[ -f $d/containerd.pid ]] && micrun_stop_containerd "$d" >/dev/null 2>&1
    done
    micrun_registry_stop "$WORK/registry"
    [[ -n ${MICRUN_CONFORMANCE_KEEP:-} ]] && cp -a "$WORK" "$MICRUN_CONFORMANCE_KEEP"
    rm -rf --one-file-system "$WORK"
    exit "$rc"
}

# --------------------------------------------------------------------------
# outside the network namespace: build what is needed (the Go module proxy is
# not reachable from inside), make the namespace, run this mode inside it

conf_load_expectations
if [[ -z ${MICRUN__CRI_NETNS:-} ]]; then
    cri_install_deps
    micrun_cgroup_fix
    if [[ ${MICRUN_NO_BUILD:-0} != 1 ]]; then
        micrun_log "build (scripts/build.sh)"
        bash "$MICRUN_REPO/scripts/build.sh"
    fi
    cri_fetch_busybox
    micrun_containerd_bindir "$CRI_SERIES" >/dev/null
    micrun_critest >/dev/null
    micrun_crane >/dev/null
    CRI_NETNS="micrun-critest-$$"
    micrun_critest_netns_add "$CRI_NETNS"
    trap 'micrun_critest_netns_del "$CRI_NETNS"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    micrun_log "network namespace $CRI_NETNS: containerd, CNI, registry and critest run inside it"
    rc=0
    args=()
    for h in "${HANDLERS[@]}"; do args+=(--handler "$h"); done
    [[ -n $FOCUS ]] && args+=(--focus "$FOCUS")
    CRI_BUSYBOX=$CRI_BUSYBOX MICRUN__CRI_NETNS=$CRI_NETNS MICRUN_NO_BUILD=1 nsenter --net="/run/netns/$CRI_NETNS" \
        bash "$MICRUN_REPO/scripts/conformance.sh" cri --containerd "$CRI_SERIES" "${args[@]}" || rc=$?
    exit "$rc"
fi

SHIM_DIR="${MICRUN_CONFORMANCE_SHIM_DIR:-$MICRUN_REPO/target/shim}"
if [[ " ${HANDLERS[*]} " == *" mica"* && ! -x $SHIM_DIR/$MICRUN_SHIM_NAME ]]; then
    micrun_die "no shim at $SHIM_DIR/$MICRUN_SHIM_NAME"
    exit 1
fi
BINDIR=$(micrun_containerd_bindir "$CRI_SERIES")
CRITEST=$(micrun_critest)
WORK=$(mktemp -d /tmp/micrun-cri.XXXX)
trap cri_teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[[ $CRI_SERIES == 2.* ]] && export CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1

# specs not run at all: their names, escaped, as one ginkgo -skip expression
CRI_SKIP_RE=""
for t in "${!NOT_RUN[@]}"; do
    CRI_SKIP_RE+="${CRI_SKIP_RE:+|}$(cri_re_escape "$t")"
done

micrun_registry_start "$WORK/registry"
cri_images
micrun_crun_wrapper "$WORK/crun"
for h in "${HANDLERS[@]}"; do
    cri_run_one "$h"
done

# One second try, in a fresh containerd, for the specs that failed on a micrun
# handler without an entry where runc passed them (or runc was not run): on a
# loaded 2-core machine a spec sometimes misses its time bound whatever the
# runtime. The table notes each spec that passed only on the second try.
cri_second_try() {
    local m=$1 res name msg re t retry=()
    while IFS=$'\t' read -r res name _; do
        [[ $res == FAIL && -z $(conf_expected "$name" mica) ]] || continue
        [[ ! -f $WORK/runc/results ]] || grep -qxF "PASS	$name" <(cut -f1,2 "$WORK/runc/results") || continue
        retry+=("$name")
    done <"$WORK/$m/results"
    ((${#retry[@]} > 0 && ${#retry[@]} <= 10)) || return 0
    re=""
    for t in "${retry[@]}"; do re+="${re:+|}$(cri_re_escape "$t")"; done
    micrun_log "[$m] a second try for the ${#retry[@]} spec(s) that failed"
    cri_run_one "$m" "$m-retry" "$re"
    local -A again=()
    while IFS=$'\t' read -r res name _; do
        [[ $res == PASS ]] && again[$name]=1
    done <"$WORK/$m-retry/results"
    while IFS=$'\t' read -r res name msg; do
        if [[ $res == FAIL && -n ${again[$name]:-} ]]; then
            printf 'PASS\t%s\t\n' "$name"
            echo "$name" >>"$WORK/$m/second-try"
        else
            printf '%s\t%s\t%s\n' "$res" "$name" "$msg"
        fi
    done <"$WORK/$m/results" >"$WORK/$m/results.merged"
    mv "$WORK/$m/results.merged" "$WORK/$m/results"
}
MICRUN_HANDLERS=()
for h in "${HANDLERS[@]}"; do [[ $h == runc ]] || MICRUN_HANDLERS+=("$h"); done
for m in ${MICRUN_HANDLERS[@]+"${MICRUN_HANDLERS[@]}"}; do
    [[ ! -f $WORK/$m/results ]] || cri_second_try "$m"
done

# --------------------------------------------------------------------------
# the table: one line per spec, a column per handler, then the totals

declare -A R=() MSG=()
for h in "${HANDLERS[@]}"; do
    [[ -f $WORK/$h/results ]] || continue
    while IFS=$'\t' read -r res name msg; do
        R[$h/$name]=$res
        MSG[$h/$name]=$msg
    done <"$WORK/$h/results"
done
mapfile -t SPECS < <(for h in "${HANDLERS[@]}"; do cat "$WORK/$h/results" 2>/dev/null; done | cut -f2 | sort -u)
have_runc=0
[[ " ${HANDLERS[*]} " == *" runc "* ]] && have_runc=1
echo
header=""
for h in "${HANDLERS[@]}"; do header+=$(printf '%-5s ' "$h"); done
echo "${header}SPEC"
declare -A NT=() NP=() NF=() NS=()
notes=()
unexpected=0
for t in "${SPECS[@]}"; do
    line=""
    for h in "${HANDLERS[@]}"; do
        res=${R[$h/$t]:-FAIL}
        line+=$(printf '%-5s ' "$res")
        NT[$h]=$((${NT[$h]:-0} + 1))
        case $res in PASS) NP[$h]=$((${NP[$h]:-0} + 1)) ;; SKIP) NS[$h]=$((${NS[$h]:-0} + 1)) ;; *) NF[$h]=$((${NF[$h]:-0} + 1)) ;; esac
    done
    echo "$line$t"
    for h in ${MICRUN_HANDLERS[@]+"${MICRUN_HANDLERS[@]}"}; do
        [[ -n ${R[$h/$t]:-} ]] || continue
        m=${R[$h/$t]} r=${R[runc/$t]:-}
        reason=$(conf_expected "$t" mica)
        if [[ $m == FAIL && -z $reason && ($r == PASS || $have_runc == 0) ]]; then
            notes+=("UNEXPECTED $t: fails on $h${r:+, $r on runc}: ${MSG[$h/$t]}")
            unexpected=1
        elif [[ -n $r && $m != "$r" ]]; then
            notes+=("differs: $t: runc $r, $h $m: ${reason:-${MSG[$h/$t]:-${MSG[runc/$t]}}}")
        elif [[ $m == PASS && -n $reason && $reason != "not run:"* ]]; then
            notes+=("note $t passes on $h now; its entry says: $reason")
        fi
    done
done
for h in ${MICRUN_HANDLERS[@]+"${MICRUN_HANDLERS[@]}"}; do
    [[ -f $WORK/$h/second-try ]] || continue
    while IFS= read -r t; do notes+=("note $t failed on $h once and passed on a second try"); done <"$WORK/$h/second-try"
done
echo
printf '%s\n' ${notes[@]+"${notes[@]}"}
counts=""
for h in "${HANDLERS[@]}"; do
    counts+="${counts:+; }$h: total ${NT[$h]:-0}, passed ${NP[$h]:-0}, failed ${NF[$h]:-0}, skipped ${NS[$h]:-0} ($(cat "$WORK/$h/seconds" 2>/dev/null || echo ?) s)"
done
echo "critest $MICRUN_CRI_TOOLS_VERSION on containerd $(micrun_containerd_version_of "$CRI_SERIES"): $counts; $(($(date +%s) - T0)) s"
exit "$unexpected"
