#!/usr/bin/env bash
# RunPodSandbox side by side, through containerd's CRI and crictl, for the
# ways of holding a pod's sandbox:
#
#   (1) micrun, [sandbox] mode = "holder" (the default): the shim's holder process
#   (2) micrun, [sandbox] mode = "delegate": the pause image run by crun
#   (3) containerd's own runc shim (io.containerd.runc.v2) with BinaryName crun
#       (behind micrun_crun_wrapper, scripts/lib.sh)
#   (4) containerd 2.x only: micrun on the Sandbox API (handler mica-shim,
#       sandboxer = "shim"): no pause container, the holder from CreateSandbox
#
# For each: `crictl runp` latency (BENCH_PODS pods, one after another, each
# stopped and removed before the next), and the memory of one running pod: the
# PSS and RSS of its shim and everything under it (holder or pause). Prints the
# medians and the ratios against (3) measured in the same run.
#
#   bash bench/pod.sh                       # containerd 2.3 (MICRUN_CONTAINERD picks)
#
# Knobs: BENCH_PODS (20), BENCH_NO_BUILD=1 to skip scripts/build.sh. The pause
# image is the tests' (a static busybox `sleep`, about the size of pause).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"
cd "$REPO"

PODS="${BENCH_PODS:-20}"
export MICRUN_CONTAINERD="${MICRUN_CONTAINERD:-2.3}"
MICRUN_NO_BUILD=${BENCH_NO_BUILD:-0} micrun_private_containerd pod-bench micrun-bench
SERIES=$(micrun_containerd_series)
BINDIR=$(micrun_containerd_bindir "$SERIES")
CRICTL=$(micrun_crictl)
DIR="$WORK/cri"
mkdir -p "$DIR"

# micrun's configs for the two micrun handlers: private state, crun for Linux
for mode in holder delegate; do
    printf 'state_root = "%s"\n\n[delegate]\ndefault = "crun"\n\n[sandbox]\nmode = "%s"\n' \
        "$DIR/micrun-state" "$mode" >"$DIR/micrun-$mode.toml"
done
micrun__cni_setup "$DIR"
micrun_crun_wrapper "$DIR/crunwrap"
{
    micrun__containerd_config "$DIR" "$SERIES" plain \
        | grep -v '"io.containerd.grpc.v1.cri"\|"io.containerd.cri.v1.runtime"\|"io.containerd.cri.v1.images"\|"io.containerd.podsandbox.controller.v1.podsandbox"'
    micrun__cri_settings "$SERIES" "$DIR" "$DIR/cni/bin" "$MICRUN_PAUSE_REF" ""
    micrun__cri_handlers "$SERIES" "$DIR/micrun-holder.toml" mica runc
    # the same handler again as `micadel`, its config in delegate mode
    micrun__cri_handlers "$SERIES" "$DIR/micrun-delegate.toml" mica \
        | awk '/^ *\[/ { keep = /runtimes\.mica[].]/ } keep' \
        | sed 's/runtimes\.mica\([].]\)/runtimes.micadel\1/g'
    if [[ $SERIES == 2.* ]]; then
        echo '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]'
    else
        echo '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]'
    fi
    # Debian's crun 1.8 refuses containerd 2.3's ociVersion 1.3.0: the Go
    # shim runs it behind the wrapper that lowers it, as micrun's crun
    # profile does itself
    echo "  BinaryName = \"$DIR/crunwrap/crun\""
} >"$DIR/config.toml"
mkdir -p "$DIR/root" "$DIR/state"
: >"$DIR/containerd.log"
PATH="$REPO/target/shim:$BINDIR:$PATH" "$BINDIR/containerd" --config "$DIR/config.toml" \
    </dev/null >>"$DIR/containerd.log" 2>&1 &
echo "$!" >"$DIR/containerd.pid"
micrun_wait_containerd "$DIR" "$BINDIR/ctr"
micrun_build_busybox_image "$WORK/pause.tar" "$MICRUN_PAUSE_REF" '"sleep","2147483647"'
micrun_import_image "$DIR" "$MICRUN_CRI_NS" "$WORK/pause.tar"
CRI=("$CRICTL" --runtime-endpoint "unix://$DIR/containerd.sock" --timeout 30s)

pod_json() {
    cat <<EOF
{"metadata": {"name": "bench-$1", "namespace": "default", "uid": "bench-$1-$$", "attempt": 0},
 "log_directory": "$WORK/logs", "linux": {"security_context": {"namespace_options": {"network": 0, "pid": 1, "ipc": 0}}}}
EOF
}
mkdir -p "$WORK/logs"

# the shim serving pod $1: the process started with `-id $1`, and its descendants
pod_pids() {
    local shim p
    shim=$(pgrep -f -- "-id $1 " | head -n1) || true
    [[ -n $shim ]] || return 0
    echo "$shim"
    micrun__descendants "$shim"
}

# "PSS_KB RSS_KB NPROC" summed over pod $1's processes
pod_memory() {
    local pss=0 rss=0 n=0 p r s
    for p in $(pod_pids "$1"); do
        read -r r s < <(awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } END { print r, p }' "/proc/$p/smaps_rollup" 2>/dev/null) || continue
        rss=$((rss + r)) pss=$((pss + s)) n=$((n + 1))
    done
    echo "$pss $rss $n"
}

RESULTS="$WORK/results"
: >"$RESULTS"
HANDLERS=(runc micadel mica)
[[ $SERIES != 2.* ]] || HANDLERS+=(mica-shim)
for h in "${HANDLERS[@]}"; do
    micrun_log "[$h] $PODS pods"
    # one warm-up pod, not counted
    pod_json "warm-$h" >"$WORK/pod.json"
    id=$("${CRI[@]}" runp --runtime "$h" "$WORK/pod.json")
    "${CRI[@]}" stopp "$id" >/dev/null && "${CRI[@]}" rmp "$id" >/dev/null
    for ((i = 0; i < PODS; i++)); do
        pod_json "$h-$i" >"$WORK/pod.json"
        t0=$(date +%s%N)
        id=$("${CRI[@]}" runp --runtime "$h" "$WORK/pod.json")
        t1=$(date +%s%N)
        sleep 0.3 # let the shim settle before reading its memory
        read -r pss rss n < <(pod_memory "$id")
        printf '%s %d %d %d %d\n' "$h" $(((t1 - t0) / 1000)) "$pss" "$rss" "$n" >>"$RESULTS"
        "${CRI[@]}" stopp "$id" >/dev/null
        "${CRI[@]}" rmp "$id" >/dev/null
    done
done

python3 - "$RESULTS" "$SERIES" "$(micrun_containerd_version_of "$SERIES")" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
names = {"mica": "(1) micrun, holder", "micadel": "(2) micrun, delegate (crun + pause)", "runc": "(3) Go runc shim + crun + pause",
         "mica-shim": "(4) micrun, Sandbox API (no pause)"}
order = [h for h in ("mica", "micadel", "runc", "mica-shim") if any(x[0] == h for x in rows)]
med = {}
for h in order:
    r = [x for x in rows if x[0] == h]
    med[h] = (statistics.median(int(x[1]) for x in r) / 1000, statistics.median(int(x[2]) for x in r) / 1024,
              statistics.median(int(x[3]) for x in r) / 1024, statistics.median(int(x[4]) for x in r), len(r))
print()
print("== RunPodSandbox through CRI (containerd %s), crictl runp, medians of %d pods each ==" % (sys.argv[3], med["mica"][4]))
print("%-38s %12s %12s %12s %6s" % ("sandbox", "runp ms", "pod PSS MB", "pod RSS MB", "procs"))
for h in order:
    ms, pss, rss, n, _ = med[h]
    print("%-38s %12.1f %12.2f %12.2f %6d" % (names[h], ms, pss, rss, n))
print()
for h in [h for h in order if h != "runc"]:
    print("ratio %s / (3): runp %.2f, PSS %.2f, RSS %.2f" % (names[h][:3], med[h][0] / med["runc"][0], med[h][1] / med["runc"][1], med[h][2] / med["runc"][2]))
print("ratio (1) / (2): runp %.2f, PSS %.2f" % (med["mica"][0] / med["micadel"][0], med["mica"][1] / med["micadel"][1]))
print("(below 1.00: smaller or faster than the other)")
PY
