#!/usr/bin/env bash
# Benchmark micrun's shim against containerd's Go runc shim, side by side in one
# run, on a private containerd (see scripts/lib.sh):
#
#  (a) start-up latency: hyperfine of `ctr run --rm --null-io IMG ID true` via
#      (1) micrun (io.containerd.mica.v2, default delegate crun)
#      (2) Go runc shim + crun   (io.containerd.runc.v2 --runc-binary crun)
#      (3) Go runc shim + runc   (io.containerd.runc.v2)
#  (b) memory (RSS, PSS from /proc/PID/smaps_rollup) of the shim process that
#      holds one running `sleep` container, and the shim binaries' sizes.
#
#   bash bench/run.sh
#
# Knobs (environment): BENCH_WARMUP (3), BENCH_RUNS (15), BENCH_OURS (the ctr
# arguments that select our shim; default "--runtime io.containerd.mica.v2",
# e.g. set it to "--runtime io.containerd.runc.v2 --runc-binary crun" to try the
# script without micrun), BENCH_NO_BUILD=1 to skip scripts/build.sh.
# Absolute times vary a lot between machines and runs: read the ratios.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"
cd "$REPO"

WARMUP="${BENCH_WARMUP:-3}"
RUNS="${BENCH_RUNS:-15}"
OURS="${BENCH_OURS:---runtime $MICRUN_RUNTIME}"
NS=micrun-bench
IMG="$MICRUN_IMAGE_REF"
OUR_SHIM_BIN="$REPO/target/shim/$MICRUN_SHIM_NAME"

MICRUN_NO_BUILD=${BENCH_NO_BUILD:-0} micrun_private_containerd bench "$NS"
CTR=(ctr --address "$ADDR" -n "$NS")
CTR_S="${CTR[*]}" # for hyperfine's command strings (no spaces in these paths)
read -r -a OURS_ARGS <<<"$OURS"

# --------------------------------------------------------------------------
# (a) latency. hyperfine runs each command through `sh -c`, so "$$" (that
# shell's pid) gives every run its own container id.
micrun_log "(a) hyperfine: warmup $WARMUP, runs $RUNS"
hyperfine --style basic --warmup "$WARMUP" --runs "$RUNS" \
    --export-json "$WORK/hyperfine.json" \
    -n "micrun ($OURS)" "$CTR_S run --rm --null-io $OURS $IMG bm1-\$\$ true" \
    -n "Go runc shim + crun" "$CTR_S run --rm --null-io --runtime io.containerd.runc.v2 --runc-binary crun $IMG bm2-\$\$ true" \
    -n "Go runc shim + runc" "$CTR_S run --rm --null-io --runtime io.containerd.runc.v2 $IMG bm3-\$\$ true"

# --------------------------------------------------------------------------
# (b) memory of the shim holding one running container

# prints "RSS_KB PSS_KB SHIM_PID" for the shim holding container $1
shim_memory() {
    local id=$1 task_pid shim_pid
    task_pid=$("${CTR[@]}" tasks ls | awk -v id="$id" '$1 == id { print $2 }')
    [[ -n $task_pid ]] || { micrun_die "no task pid for $id"; return 1; }
    shim_pid=$(awk '/^PPid:/ { print $2 }' "/proc/$task_pid/status")
    local cmd
    cmd=$(micrun__cmdline "$shim_pid")
    if [[ $cmd != *containerd-shim* ]]; then
        micrun_log "warning: parent $shim_pid of $id's pid $task_pid is not a shim: $cmd"
    fi
    awk -v pid="$shim_pid" '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } END { print r, p, pid }' \
        "/proc/$shim_pid/smaps_rollup"
}

# how many processes other than $2 run the binary $1 (they share its pages)
same_exe_count() {
    local n=0 e p
    for e in /proc/[0-9]*/exe; do
        p=${e#/proc/}
        p=${p%/exe}
        [[ $p != "$2" && $(readlink "$e" 2>/dev/null) == "$1" ]] && n=$((n + 1))
    done
    echo "$n"
}

stop_container() {
    timeout -s KILL 10 "${CTR[@]}" tasks kill -s SIGKILL "$1" >/dev/null 2>&1 || true
    local i
    for ((i = 0; i < 50; i++)); do
        timeout -s KILL 10 "${CTR[@]}" tasks delete "$1" >/dev/null 2>&1 && break
        sleep 0.1
    done
    timeout -s KILL 10 "${CTR[@]}" containers delete "$1" >/dev/null 2>&1 || true
}

micrun_log "(b) shim memory with one running sleep container"
timeout -s KILL 30 "${CTR[@]}" run -d --null-io "${OURS_ARGS[@]}" "$IMG" mem-ours sleep 1000
timeout -s KILL 30 "${CTR[@]}" run -d --null-io --runtime io.containerd.runc.v2 "$IMG" mem-go sleep 1000
sleep 1 # let both shims settle
read -r OURS_RSS OURS_PSS OURS_PID < <(shim_memory mem-ours)
read -r GO_RSS GO_PSS GO_PID < <(shim_memory mem-go)
OURS_EXE=$(readlink "/proc/$OURS_PID/exe" || echo "$OUR_SHIM_BIN")
GO_EXE=$(readlink "/proc/$GO_PID/exe" || command -v containerd-shim-runc-v2)
OURS_SAME=$(same_exe_count "$OURS_EXE" "$OURS_PID")
GO_SAME=$(same_exe_count "$GO_EXE" "$GO_PID")
stop_container mem-ours
stop_container mem-go

# --------------------------------------------------------------------------
# report
python3 - "$WORK/hyperfine.json" "$OURS_RSS" "$OURS_PSS" "$OURS_EXE" "$OURS_SAME" \
    "$GO_RSS" "$GO_PSS" "$GO_EXE" "$GO_SAME" <<'PY'
import json, os, sys

path, o_rss, o_pss, o_exe, o_same, g_rss, g_pss, g_exe, g_same = sys.argv[1:]
res = json.load(open(path))["results"]
ms = [r["mean"] * 1000 for r in res]

print()
print("== (a) ctr run --rm --null-io IMG ID true (%d runs each, side by side) ==" % len(res[0]["times"]))
w = max(len("runtime"), *(len(r["command"]) for r in res))
print("%-4s %-*s %9s %9s %9s %9s" % ("", w, "runtime", "mean ms", "stddev", "min ms", "max ms"))
for i, r in enumerate(res, 1):
    print("%-4s %-*s %9.1f %9.1f %9.1f %9.1f" % (
        "(%d)" % i, w, r["command"], r["mean"] * 1000, (r["stddev"] or 0) * 1000,
        r["min"] * 1000, r["max"] * 1000))
print()
print("ratio (1)/(2) micrun vs Go shim + crun: %.2f" % (ms[0] / ms[1]))
print("ratio (1)/(3) micrun vs Go shim + runc: %.2f" % (ms[0] / ms[2]))
print("(below 1.00 means micrun is faster)")

def mb(kb):
    return "%.1f" % (int(kb) / 1024.0)

def size(p):
    try:
        return "%.1f" % (os.stat(p).st_size / 1048576.0)
    except OSError:
        return "n/a"

print()
print("== (b) shim process holding one running container ==")
w = max(len("binary"), len(o_exe), len(g_exe))
print("%-8s %-*s %7s %7s %10s" % ("shim", w, "binary", "RSS MB", "PSS MB", "binary MB"))
print("%-8s %-*s %7s %7s %10s" % ("micrun", w, o_exe, mb(o_rss), mb(o_pss), size(o_exe)))
print("%-8s %-*s %7s %7s %10s" % ("Go runc", w, g_exe, mb(g_rss), mb(g_pss), size(g_exe)))
print()
print("ratio micrun/Go: RSS %.2f, PSS %.2f" % (int(o_rss) / int(g_rss), int(o_pss) / int(g_pss)))

for name, n in (("micrun", o_same), ("Go runc", g_same)):
    if int(n):
        print("note: %s other process(es) ran the %s shim binary during the measurement; "
              "PSS splits shared pages with them" % (n, name))
PY
