# shellcheck shell=bash
# Shared helpers for micrun's test, quickstart and benchmark scripts.
#
# Source it from bash (it does not change shell options itself):
#     . "$(cd "$(dirname "$0")/.." && pwd)/scripts/lib.sh"
#
# Functions:
#   micrun_install_deps               install what the tests need (idempotent)
#   micrun_cgroup_fix                 move cgroup2 controllers to v1 (for crun)
#   micrun_start_containerd DIR [cri] private containerd, everything under DIR
#                                     (cri: with its CRI plugin, see micrun__cri_config)
#   micrun_stop_containerd DIR        stop it, its shims, containers and mounts
#   micrun_containerd_log_tail DIR [N]  warnings/errors from its log
#   micrun_build_busybox_image TAR REF  OCI image archive with a static busybox
#   micrun_import_image DIR NS TAR    import an archive into the private containerd
#   micrun_test_env DIR               export the MICRUN_TEST_* variables
#   micrun_ctr DIR ARGS...            ctr against the private containerd
#   micrun_start_sim DIR [PEDESTAL]   `micrun sim` under DIR, config in DIR/micrun.toml
#   micrun_stop_sim DIR               stop it and the firmware it runs
#   micrun_private_cri                a second, CRI-enabled containerd in WORK/cri
#                                     (scripts/lib-cri.sh, sourced below)
#   micrun_containerd_bindir SERIES   containerd 1.6 (Debian), 1.7 or 2.3 (built from
#                                     the Go module proxy; scripts/lib-peers.sh)
#   micrun_registry_start DIR         a loopback OCI registry (crane), MICRUN_REGISTRY=
#                                     127.0.0.1:PORT; micrun_registry_push TAR REF,
#                                     micrun_registry_stop DIR (scripts/lib-registry.sh)
#   micrun_critest                    critest (cri-tools), built from the Go module proxy,
#                                     and the network namespace, CNI and CRI config
#                                     scripts/conformance-cri.sh runs it in (scripts/lib-critest.sh)

MICRUN_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034 # used by the scripts that source this file
MICRUN_RUNTIME="io.containerd.mica.v2"
MICRUN_SHIM_NAME="containerd-shim-mica-v2"
MICRUN_TEST_NS="micrun-test"
# fully qualified ("localhost" is a domain to reference parsers), so nothing
# normalises it to some registry's name
MICRUN_IMAGE_REF="${MICRUN_IMAGE_REF:-localhost/micrun/busybox:test}"
# the namespace CRI keeps its pods and images in
MICRUN_CRI_NS="k8s.io"
# where Debian's containernetworking-plugins puts it
MICRUN_CNI_LOOPBACK=/usr/lib/cni/loopback
MICRUN_YOUKI_VERSION="${MICRUN_YOUKI_VERSION:-0.7.0}"

micrun_log() {
    printf '[micrun %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

micrun_die() {
    micrun_log "ERROR: $*"
    return 1
}

# --------------------------------------------------------------------------
# dependencies

micrun__pkg_installed() {
    dpkg -s "$1" >/dev/null 2>&1
}

micrun__python_api_ok() {
    PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python python3 -c \
        'import grpc; from containerd.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc' \
        >/dev/null 2>&1
}

micrun_install_deps() {
    local missing=()
    command -v containerd >/dev/null 2>&1 && command -v ctr >/dev/null 2>&1 \
        && command -v containerd-shim-runc-v2 >/dev/null 2>&1 || missing+=(containerd)
    command -v runc >/dev/null 2>&1 || missing+=(runc)
    command -v crun >/dev/null 2>&1 || missing+=(crun)
    # the image needs the static busybox, not any busybox on PATH
    micrun__pkg_installed busybox-static || missing+=(busybox-static)
    command -v hyperfine >/dev/null 2>&1 || missing+=(hyperfine)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
    command -v findmnt >/dev/null 2>&1 || missing+=(util-linux)
    # the CRI test's client (k8s-cri crate) compiles CRI's protobuf at build time
    command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
    # CRI's pods need CNI's loopback plugin (the test's own plugin does the rest)
    [[ -x $MICRUN_CNI_LOOPBACK ]] || missing+=(containernetworking-plugins)
    if ((${#missing[@]})); then
        micrun_log "apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi

    case ":$PATH:" in
        *":$HOME/.cargo/bin:"*) ;;
        *) export PATH="$HOME/.cargo/bin:$PATH" ;;
    esac
    if ! command -v youki >/dev/null 2>&1; then
        # the default build lacks cgroup v1 support, which this host needs
        micrun_log "cargo install youki $MICRUN_YOUKI_VERSION --features v1 (takes a few minutes)"
        cargo install youki --version "$MICRUN_YOUKI_VERSION" --features v1 --locked
    fi

    if ! micrun__python_api_ok; then
        micrun_log "pip install containerd grpcio"
        # Debian's own python3 refuses plain pip installs (PEP 668); its refusal
        # is expected there and not worth printing.
        python3 -m pip install -q --root-user-action=ignore containerd grpcio 2>/dev/null \
            || python3 -m pip install -q --root-user-action=ignore --break-system-packages containerd grpcio
        micrun__python_api_ok || micrun_die "python containerd API bindings unusable after pip install"
    fi
}

# --------------------------------------------------------------------------
# cgroups: crun refuses a hybrid layout whose cgroup2 hierarchy holds controllers

micrun__is_mountpoint_of_type() {
    # $1 = path, $2 = fstype (mountinfo: field 5 is the mount point, the
    # fstype follows the "-" separator)
    awk -v mp="$1" -v t="$2" '
        { for (i = 7; i <= NF; i++) if ($i == "-") { if ($5 == mp && $(i + 1) == t) found = 1; break } }
        END { exit !found }' /proc/self/mountinfo
}

micrun_cgroup_fix() {
    local file=/sys/fs/cgroup/unified/cgroup.controllers ctrl ctrls=()
    [[ -r $file ]] || return 0
    read -r -a ctrls <"$file" || true
    for ctrl in "${ctrls[@]}"; do
        if micrun__is_mountpoint_of_type "/sys/fs/cgroup/$ctrl" cgroup; then
            continue
        fi
        micrun_log "moving cgroup controller $ctrl from cgroup2 to v1 at /sys/fs/cgroup/$ctrl"
        mkdir -p "/sys/fs/cgroup/$ctrl"
        mount -t cgroup -o "$ctrl" cgroup "/sys/fs/cgroup/$ctrl"
    done
}

# --------------------------------------------------------------------------
# private containerd

micrun_ctr() {
    local dir=$1
    shift
    ctr --address "$dir/containerd.sock" "$@"
}

# DIR's containerd config for SERIES (1.6, 1.7 or 2.3), on stdout; MODE cri
# turns its CRI plugin on (micrun__cri_config adds CRI's settings).
micrun__containerd_config() {
    local dir=$1 series=$2 mode=$3 version=2 level=info disabled=() p
    [[ $series == 2.* ]] && version=3
    # CRI only where asked for (micrun_private_cri): the ctr-driven tests and
    # the benchmarks need none of its watchers and its streaming server. In 2.x
    # CRI is several plugins.
    if [[ $mode != cri ]]; then
        if [[ $version == 3 ]]; then
            disabled+=(io.containerd.grpc.v1.cri io.containerd.cri.v1.runtime io.containerd.cri.v1.images
                io.containerd.podsandbox.controller.v1.podsandbox)
        else
            disabled+=(io.containerd.grpc.v1.cri)
        fi
    elif [[ $version == 3 ]]; then
        # CRI logs at debug what it learnt from each runtime handler's `-info`
        level=debug
    fi
    # the snapshotters that cannot work on this host (no aufs module, no
    # btrfs/zfs file system, devmapper and blockfile unconfigured) and only log
    # noise; 2.x has no aufs, 1.6 no blockfile
    [[ $series == 1.* ]] && disabled+=(io.containerd.snapshotter.v1.aufs)
    [[ $series != 1.6 ]] && disabled+=(io.containerd.snapshotter.v1.blockfile)
    disabled+=(io.containerd.snapshotter.v1.btrfs io.containerd.snapshotter.v1.devmapper io.containerd.snapshotter.v1.zfs)
    printf '# containerd %s, written by scripts/lib.sh\nversion = %s\n' "$series" "$version"
    cat <<EOF
root = "$dir/root"
state = "$dir/state"
disabled_plugins = [
EOF
    for p in "${disabled[@]}"; do
        printf '  "%s",\n' "$p"
    done
    cat <<EOF
]

[grpc]
  address = "$dir/containerd.sock"

[ttrpc]
  address = "$dir/containerd-ttrpc.sock"

[debug]
  address = "$dir/debug.sock"
  level = "$level"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
EOF
    if [[ $mode == cri ]]; then
        micrun__cri_config "$dir" "$series" || return 1
    fi
}

micrun_start_containerd() {
    local dir=${1:?usage: micrun_start_containerd DIR [cri]} mode=${2:-}
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    local sock="$dir/containerd.sock"
    if ((${#sock} > 100)); then
        micrun_die "socket path too long for a unix socket: $sock"
        return 1
    fi
    # the containerd series (MICRUN_CONTAINERD, default 1.6) decides the binaries
    # and the config format: version 2 for 1.6/1.7, version 3 for 2.x
    local series bindir
    series=$(micrun_containerd_series) || return 1
    bindir=$(micrun_containerd_bindir "$series") || return 1
    mkdir -p "$dir/root" "$dir/state" "$dir/opt"
    micrun__containerd_config "$dir" "$series" "$mode" >"$dir/config.toml" || return 1
    : >"$dir/containerd.log"
    micrun_log "starting containerd $series ($bindir/containerd) in $dir"
    # our shim first on its PATH, then the series' own containerd-shim-runc-v2
    # (MICRUN__CONTAINERD_PATH replaces it all: a containerd without OCI runtimes)
    PATH="${MICRUN__CONTAINERD_PATH:-$MICRUN_REPO/target/shim:$MICRUN_REPO/target/release:$bindir:$PATH}" \
        "$bindir/containerd" --config "$dir/config.toml" </dev/null >>"$dir/containerd.log" 2>&1 &
    echo "$!" >"$dir/containerd.pid"
    micrun_wait_containerd "$dir" "$bindir/ctr"
}

# Waits up to 10 s for the containerd started in DIR (pid in DIR/containerd.pid,
# log in DIR/containerd.log) to answer CTR on DIR/containerd.sock.
micrun_wait_containerd() {
    local dir=$1 ctr=$2 pid start=$SECONDS
    pid=$(cat "$dir/containerd.pid")
    # 30 s: on a loaded 2-core machine a containerd 2.x start with CRI and
    # NRI was seen to take over 10 s
    while ((SECONDS - start < 30)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$dir/containerd.log" >&2
            micrun_die "containerd exited during start-up (log: $dir/containerd.log)"
            return 1
        fi
        if [[ -S $dir/containerd.sock ]] && timeout -s KILL 2 "$ctr" --address "$dir/containerd.sock" version >/dev/null 2>&1; then
            micrun_log "containerd ready (pid $pid) after ~$((SECONDS - start)) s"
            return 0
        fi
        sleep 0.1
    done
    tail -n 30 "$dir/containerd.log" >&2
    micrun_die "containerd did not answer within 30 s (log: $dir/containerd.log)"
    return 1
}

# Command line of pid $1, arguments separated by spaces ("" if gone).
micrun__cmdline() {
    tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true
}

# Direct children of pid $1.
micrun__children() {
    cat "/proc/$1/task/"*/children 2>/dev/null | tr ' ' '\n' | grep -v '^$' || true
}

# Warnings and errors at the end of DIR's containerd log (for failure reports).
micrun_containerd_log_tail() {
    local dir=${1:?usage: micrun_containerd_log_tail DIR [LINES]} n=${2:-20}
    [[ -f $dir/containerd.log ]] || return 0
    micrun_log "containerd log ($dir/containerd.log), last $n lines above level info:"
    grep -av 'level=info\|level=debug' "$dir/containerd.log" | tail -n "$n" >&2 || true
}

# Pids of the processes in the subtree under $1, deepest last (not $1 itself).
micrun__descendants() {
    local parent=$1 child
    for child in $(micrun__children "$parent"); do
        echo "$child"
        micrun__descendants "$child"
    done
}

# Pids of shims started by the containerd serving $1 (the grpc socket path).
micrun__shims_of() {
    local sock=$1 cmdline_file pid cmd
    for cmdline_file in /proc/[0-9]*/cmdline; do
        pid=${cmdline_file#/proc/}
        pid=${pid%/cmdline}
        cmd=$(tr '\0' '\n' 2>/dev/null <"$cmdline_file") || continue
        [[ $cmd == *containerd-shim* ]] || continue
        # "-address SOCK" as two consecutive argv entries
        if grep -qxF -- "-address" <<<"$cmd" && grep -qxF -- "$sock" <<<"$cmd"; then
            echo "$pid"
        fi
    done
}

micrun__kill_wait() {
    # $1 = timeout in tenths of a second, rest = pids; TERM, then KILL
    local bound=$1 pid i alive
    shift
    (($#)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    for ((i = 0; i < bound; i++)); do
        alive=0
        for pid in "$@"; do
            if kill -0 "$pid" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]; then
                alive=1
            fi
        done
        ((alive)) || return 0
        sleep 0.1
    done
    kill -KILL "$@" 2>/dev/null || true
    sleep 0.1
}

micrun_stop_containerd() {
    local dir=${1:?usage: micrun_stop_containerd DIR}
    [[ -d $dir ]] || return 0
    dir="$(cd "$dir" && pwd)"
    local sock="$dir/containerd.sock" pid="" ns id namespaces=()

    if [[ -f $dir/containerd.pid ]]; then
        pid=$(cat "$dir/containerd.pid")
        # only ever our own containerd, never a recycled pid
        if [[ $(micrun__cmdline "$pid") != *"$dir/config.toml"* ]]; then
            pid=""
        fi
    fi

    # Politely remove what is left, while containerd still answers.
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && [[ -S $sock ]]; then
        mapfile -t namespaces < <(timeout -s KILL 5 ctr --address "$sock" namespaces ls -q 2>/dev/null || true)
        for ns in "${namespaces[@]}"; do
            for id in $(timeout -s KILL 5 ctr --address "$sock" -n "$ns" tasks ls -q 2>/dev/null); do
                timeout -s KILL 5 ctr --address "$sock" -n "$ns" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
                timeout -s KILL 5 ctr --address "$sock" -n "$ns" tasks delete -f "$id" >/dev/null 2>&1 || true
            done
            for id in $(timeout -s KILL 5 ctr --address "$sock" -n "$ns" containers ls -q 2>/dev/null); do
                timeout -s KILL 5 ctr --address "$sock" -n "$ns" containers delete "$id" >/dev/null 2>&1 || true
            done
        done
    fi

    # Shims started by this containerd: identified by "-address SOCK", or by
    # being a child of our containerd pid.
    local shims=() p
    mapfile -t shims < <(micrun__shims_of "$sock")
    if [[ -n $pid ]] && [[ -d /proc/$pid ]]; then
        for p in $(micrun__children "$pid"); do
            if [[ $(micrun__cmdline "$p") == *containerd-shim* ]]; then
                shims+=("$p")
            fi
        done
    fi

    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        micrun_log "stopping containerd (pid $pid)"
        micrun__kill_wait 50 "$pid"
        wait "$pid" 2>/dev/null || true
    fi

    if ((${#shims[@]})); then
        # kill each shim's containers (its descendants) together with it
        local victims=() s
        for s in $(printf '%s\n' "${shims[@]}" | sort -un); do
            victims+=("$s")
            mapfile -t -O "${#victims[@]}" victims < <(micrun__descendants "$s")
        done
        micrun_log "killing leftover shims and their containers: ${victims[*]}"
        kill -KILL "${victims[@]}" 2>/dev/null || true
        sleep 0.2
    fi

    # Unmount whatever is still mounted under DIR, deepest first.
    local mnts=() m
    mapfile -t mnts < <(awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo \
        | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-)
    for m in "${mnts[@]}"; do
        m=$(printf '%b' "$m") # mountinfo escapes spaces as \040
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || micrun_log "could not unmount $m"
    done

    # ctr's default cgroups path is /<namespace>/<id>: the per-namespace parents
    # stay behind. rmdir only removes empty ones that nothing else uses.
    # (Namespaces that held tasks also show in the v2 runtime's state dir.)
    local cg
    for cg in "$dir"/state/io.containerd.runtime.v2.task/*/; do
        [[ -d $cg ]] && namespaces+=("$(basename "$cg")")
    done
    for ns in $(printf '%s\n' "${namespaces[@]}" | sort -u); do
        [[ -n $ns && $ns != */* && $ns != . && $ns != .. ]] || continue
        for cg in /sys/fs/cgroup/*/"$ns" /sys/fs/cgroup/"$ns"; do
            [[ -d $cg ]] || continue
            find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
        done
    done
    rm -f "$dir/containerd.pid"
}

# --------------------------------------------------------------------------
# micad simulator

# Starts `micrun sim` (MICRUN_BIN, default target/release/micrun) with
# everything under DIR: DIR/sock (micad's socket dir), DIR/tty, DIR/sim.pid,
# DIR/sim.log. Writes DIR/micrun.toml, a micrun config that points the shim at
# it (for `ctr run --runtime-config-path`).
micrun_start_sim() {
    local dir=${1:?usage: micrun_start_sim DIR [PEDESTAL]} pedestal=${2:-baremetal}
    local bin=${MICRUN_BIN:-$MICRUN_REPO/target/release/micrun}
    mkdir -p "$dir/sock" "$dir/tty"
    dir="$(cd "$dir" && pwd)"
    micrun_log "starting micrun sim ($pedestal) in $dir"
    "$bin" sim --pedestal "$pedestal" --socket-dir "$dir/sock" --tty-dir "$dir/tty" \
        --pid-file "$dir/sim.pid" </dev/null >>"$dir/sim.log" 2>&1 &
    local i
    for ((i = 0; i < 100; i++)); do
        if [[ -S $dir/sock/mica-create.socket && -s $dir/sim.pid ]]; then
            printf '[mica]\nsocket_dir = "%s"\ntty_dir = "%s"\n' "$dir/sock" "$dir/tty" >"$dir/micrun.toml"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$dir/sim.log" >&2
    micrun_die "micrun sim did not start within 10 s (log: $dir/sim.log)"
}

# Stops the simulator started in DIR (by its pid file) and the firmware it runs.
micrun_stop_sim() {
    local dir=${1:?usage: micrun_stop_sim DIR} pid victims=()
    [[ -f $dir/sim.pid ]] || return 0
    dir="$(cd "$dir" && pwd)"
    pid=$(cat "$dir/sim.pid")
    # only ever our own simulator, never a recycled pid
    if [[ $pid =~ ^[0-9]+$ && $(micrun__cmdline "$pid") == *" sim "*"$dir/sock"* ]]; then
        mapfile -t victims < <(micrun__descendants "$pid")
        micrun_log "stopping micrun sim (pid $pid)"
        micrun__kill_wait 30 "$pid"
        if ((${#victims[@]})); then
            kill -KILL "${victims[@]}" 2>/dev/null || true
        fi
    fi
    rm -f "$dir/sim.pid"
}

# --------------------------------------------------------------------------
# images

micrun__oci_arch() {
    local a
    a=$(dpkg --print-architecture 2>/dev/null || uname -m)
    case $a in
        x86_64) echo amd64 ;;
        aarch64) echo arm64 ;;
        *) echo "$a" ;;
    esac
}

# Moves FILE into LAYOUT's blob store under its sha256; prints "DIGEST SIZE".
micrun__put_blob() {
    local file=$1 layout=$2 digest size
    digest=$(sha256sum "$file" | cut -d' ' -f1)
    size=$(stat -c %s "$file")
    mv "$file" "$layout/blobs/sha256/$digest"
    echo "$digest $size"
}

# Packs directory ROOT as a one-layer OCI image archive OUT named REF (WORK is
# scratch space). CMD_JSON is the image's Cmd as JSON list items.
micrun__pack_image() {
    local root=$1 work=$2 out=$3 ref=$4 note=$5 cmd=${6:-'"sh"'}
    local layout="$work/layout"
    mkdir -p "$layout/blobs/sha256"
    # layer: reproducible tar, then gzip
    tar -C "$root" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
        -cf "$work/layer.tar" .
    local diff_id layer_digest layer_size
    diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
    gzip -n -9 <"$work/layer.tar" >"$work/layer.tar.gz"
    read -r layer_digest layer_size < <(micrun__put_blob "$work/layer.tar.gz" "$layout")

    local arch
    arch=$(micrun__oci_arch)
    printf '%s' "{\"architecture\":\"$arch\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],\"Cmd\":[$cmd],\"WorkingDir\":\"/\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$diff_id\"]},\"history\":[{\"created_by\":\"$note\"}]}" \
        >"$work/config.json"
    local config_digest config_size
    read -r config_digest config_size < <(micrun__put_blob "$work/config.json" "$layout")

    printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$config_digest\",\"size\":$config_size},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$layer_digest\",\"size\":$layer_size}]}" \
        >"$work/manifest.json"
    local manifest_digest manifest_size
    read -r manifest_digest manifest_size < <(micrun__put_blob "$work/manifest.json" "$layout")

    printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
    printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$manifest_digest\",\"size\":$manifest_size,\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"},\"annotations\":{\"io.containerd.image.name\":\"$ref\",\"org.opencontainers.image.ref.name\":\"$ref\"}}]}" \
        >"$layout/index.json"

    local out_abs
    out_abs="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
    tar -C "$layout" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
        -cf "$out_abs" oci-layout index.json blobs
    micrun_log "built image $ref -> $out ($(stat -c %s "$out_abs") bytes)"
}

# A root file system under ROOT with the static busybox and a link for each
# of its applets in /bin (no /etc/passwd: each image writes its own users).
micrun_busybox_root() {
    local root=${1:?usage: micrun_busybox_root ROOT} applet
    mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,root}
    chmod 1777 "$root/tmp"
    chmod 700 "$root/root"
    install -m 755 /bin/busybox "$root/bin/busybox"
    while read -r applet; do
        [[ -n $applet && $applet != busybox && $applet != */* ]] || continue
        ln -sf busybox "$root/bin/$applet"
    done < <(/bin/busybox --list)
}

# CMD_JSON (optional) is the image's Cmd as JSON list items; default "sh".
micrun_build_busybox_image() {
    local out=${1:?usage: micrun_build_busybox_image OUT_TAR REF [CMD_JSON]} ref=${2:?usage: micrun_build_busybox_image OUT_TAR REF [CMD_JSON]}
    local cmd=${3:-'"sh"'}
    local bb=/bin/busybox
    [[ -x $bb ]] || { micrun_die "$bb missing (apt-get install busybox-static)"; return 1; }
    if [[ $(LC_ALL=C readelf -d "$bb" 2>/dev/null || true) == *NEEDED* ]]; then
        micrun_die "$bb is dynamically linked; install busybox-static"
        return 1
    fi

    local work
    work=$(mktemp -d /tmp/micrun-img.XXXXXX)
    local root="$work/rootfs"
    micrun_busybox_root "$root"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    # Names an image may hold that the RTOS firmware lookup must resolve inside
    # the rootfs or refuse (tests/mica_firmware_paths.rs): an absolute link, an
    # absolute link to a file only the host has, a FIFO.
    mkdir -p "$root/firmware-paths"
    ln -s /bin/busybox "$root/firmware-paths/absolute-link"
    ln -s /usr/bin/env "$root/firmware-paths/host-only-link"
    mkfifo "$root/firmware-paths/fifo"

    micrun__pack_image "$root" "$work" "$out" "$ref" "micrun scripts/lib.sh: static busybox" "$cmd" || return 1
    rm -rf "$work"
}

micrun_import_image() {
    local dir=${1:?usage: micrun_import_image DIR NS TAR} ns=${2:?} tar=${3:?}
    micrun_ctr "$dir" -n "$ns" images import "$tar" >/dev/null
}

# DIR/crun: crun with the bundle's ociVersion lowered to 1.1.0 where it is
# higher, for containerd's runc shim
# (the conformance reference, the benchmarks). Debian 12's crun 1.8.1 refuses any spec above 1.1
# ("unknown version specified") and containerd 2.3 writes 1.3.0; crun 1.8
# reads the same content either way. micrun does the same itself (its crun
# profile's oci_version_max) and runs the plain crun.
micrun_crun_wrapper() {
    local dir=$1 crun
    crun=$(command -v crun) || { micrun_die "crun not on PATH"; return 1; }
    mkdir -p "$dir"
    cat >"$dir/crun" <<EOF
#!/bin/bash
bundle="" prev="" sub=""
for a in "\$@"; do
    case \$prev in --bundle | -b) bundle=\$a ;; esac
    case \$a in
        --bundle=*) bundle=\${a#--bundle=} ;;
        create | run) [[ -z \$sub ]] && sub=\$a ;;
    esac
    prev=\$a
done
if [[ -n \$sub && -n \$bundle && -f \$bundle/config.json ]]; then
    sed -i -E 's/"ociVersion"( *): *"1\.([2-9]|[1-9][0-9])\.[^"]*"/"ociVersion"\1:"1.1.0"/' "\$bundle/config.json"
fi
exec $crun "\$@"
EOF
    chmod 755 "$dir/crun"
}

# --------------------------------------------------------------------------
# environment for the Rust integration tests

micrun_test_env() {
    local dir=${1:?usage: micrun_test_env DIR}
    dir="$(cd "$dir" && pwd)"
    export MICRUN_TEST_ADDRESS="$dir/containerd.sock"
    export MICRUN_TEST_NAMESPACE="$MICRUN_TEST_NS"
    export MICRUN_TEST_IMAGE="$MICRUN_IMAGE_REF"
    export MICRUN_TEST_STATE="$dir"
    export MICRUN_SHIM="$MICRUN_REPO/target/shim/$MICRUN_SHIM_NAME"
    # nerdctl 2.x for tests/nerdctl*.rs (built once per machine); empty when it cannot be built, which they report
    export MICRUN_NERDCTL="$(micrun_nerdctl || true)"
    if [[ -d $dir/cri ]]; then
        export MICRUN_TEST_CRI_ADDRESS="$dir/cri/containerd.sock"
        export MICRUN_TEST_CRI_STATE="$dir/cri"
        export MICRUN_TEST_CRI_NAMESPACE="$MICRUN_CRI_NS"
        export MICRUN_TEST_CRI_CONFIG="$dir/cri/micrun-cri.toml"
        # crictl for tests/crictl_example.rs (built once per machine); empty when it cannot be built, which that test reports
        export MICRUN_CRICTL="$(micrun_crictl || true)"
    fi
    if [[ -d $dir/cri-bare ]]; then
        export MICRUN_TEST_CRI_BARE_ADDRESS="$dir/cri-bare/containerd.sock"
        export MICRUN_TEST_CRI_BARE_STATE="$dir/cri-bare"
        export MICRUN_TEST_CRI_BARE_CONFIG="$dir/cri-bare/micrun-cri.toml"
    fi
}

# Puts the ctr and containerd-shim-runc-v2 of the containerd series
# MICRUN_CONTAINERD (default 1.6; built first if missing) first on PATH, for the
# scripts and the tests they run, and logs `containerd --version`.
micrun_use_containerd() {
    local series bindir
    series=$(micrun_containerd_series) || return 1
    bindir=$(micrun_containerd_bindir "$series") || return 1
    if [[ $bindir == /usr/bin ]]; then
        # Debian's; /usr/bin is not put first, which would shadow pyenv's or
        # /usr/local's python3 and cargo
        local b
        for b in ctr containerd-shim-runc-v2; do
            [[ $(command -v "$b") == "$bindir/$b" ]] || {
                micrun_die "$b on PATH is $(command -v "$b"), not containerd $series's $bindir/$b"
                return 1
            }
        done
    else
        case ":$PATH:" in
            ":$bindir:"*) ;;
            *) export PATH="$bindir:$PATH" ;;
        esac
    fi
    export MICRUN_CONTAINERD=$series
    # ctr 2.2+ asks containerd for deprecation notices before every command and
    # prints them on stderr; on this cgroup v1 host that is the same line every
    # time, which would fill every ctr error the tests check
    [[ $series == 2.* ]] && export CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1
    micrun_log "containerd $series: $("$bindir/containerd" --version) ($bindir)"
}

# The set-up every entry script shares: install what is missing, build (unless
# MICRUN_NO_BUILD=1), start a private containerd in a fresh temp dir and import
# the busybox image into namespace NS. Sets WORK and ADDR; tears everything
# down when the calling script exits.
micrun_private_containerd() {
    local name=${1:?usage: micrun_private_containerd NAME NS} ns=${2:?usage: micrun_private_containerd NAME NS}
    micrun_install_deps
    micrun_cgroup_fix
    if [[ ${MICRUN_NO_BUILD:-0} != 1 ]]; then
        micrun_log "build (scripts/build.sh)"
        bash "$MICRUN_REPO/scripts/build.sh"
    fi
    micrun_use_containerd || return 1
    WORK=$(mktemp -d "/tmp/micrun-$name.XXXX")
    trap micrun__teardown EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    micrun_start_containerd "$WORK"
    micrun_build_busybox_image "$WORK/busybox.tar" "$MICRUN_IMAGE_REF"
    micrun_import_image "$WORK" "$ns" "$WORK/busybox.tar"
    ADDR="$WORK/containerd.sock"
}

# shellcheck disable=SC2317 # invoked through the trap
micrun__teardown() {
    local rc=$?
    micrun_stop_containerd "$WORK/cri" || true
    micrun_stop_containerd "$WORK/cri-bare" || true
    micrun_stop_containerd "$WORK" || true
    # after containerd: its shims removed their micad clients while the simulator still answered
    micrun_stop_sim "$WORK/sim" || true
    if ((rc != 0)); then
        micrun_containerd_log_tail "$WORK" 20
        micrun_containerd_log_tail "$WORK/cri" 20
    fi
    # MICRUN_KEEP_WORK=1 keeps the logs and state for a look afterwards
    [[ -n ${MICRUN_KEEP_WORK:-} ]] || rm -rf --one-file-system "$WORK"
    # state a run made outside WORK (e.g. the shim's /run/micrun/<namespace>)
    [[ -z ${MICRUN_TEARDOWN_RM:-} ]] || rm -rf --one-file-system "$MICRUN_TEARDOWN_RM"
    exit "$rc"
}

# shellcheck source=scripts/lib-cri.sh
. "$MICRUN_REPO/scripts/lib-cri.sh"

# shellcheck source=scripts/lib-peers.sh
. "$MICRUN_REPO/scripts/lib-peers.sh"

# shellcheck source=scripts/lib-registry.sh
. "$MICRUN_REPO/scripts/lib-registry.sh"

# shellcheck source=scripts/lib-critest.sh
. "$MICRUN_REPO/scripts/lib-critest.sh"

# shellcheck source=scripts/lib-nerdctl.sh
. "$MICRUN_REPO/scripts/lib-nerdctl.sh"
