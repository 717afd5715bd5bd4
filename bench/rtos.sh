#!/usr/bin/env bash
# RTOS container latency: the whole life of an RTOS container through containerd
# and micrun against the raw micad protocol time of the same steps, in one run.
#
#  (1) through containerd: `ctr run -d` (create + start), `ctr task kill`,
#      `ctr task rm`, `ctr c rm` of an RTOS container whose firmware is /bin/cat
#      (runs until stopped), against `micrun sim` (bare metal).
#  (2) raw: create message, start, stop, rm on micad's sockets of the same
#      simulator, through the library's MicadClient (examples/micad_latency.rs).
#
#   bash bench/rtos.sh
#
# Knobs (environment): BENCH_RUNS (10), BENCH_NO_BUILD=1 to skip scripts/build.sh.
# Both columns include the simulator's own work (forking the firmware on a pty);
# the ratio is what containerd, ctr and the shim add. Read the ratio, not the ms.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"
cd "$REPO"

RUNS="${BENCH_RUNS:-10}"
NS=micrun-bench-rtos
RTOS_IMG=localhost/micrun-bench/rtos-cat:1

MICRUN_NO_BUILD=${BENCH_NO_BUILD:-0} micrun_private_containerd bench-rtos "$NS"
CTR=(ctr --address "$ADDR" -n "$NS")
cargo build --release --example micad_latency

# Our own simulator; micrun__teardown stops it after containerd (and keeps the
# script's exit status).
SIM_DIR="$WORK/sim"
micrun_start_sim "$SIM_DIR" baremetal
CONFIG="$WORK/micrun-sim.toml"
printf '[mica]\nsocket_dir = "%s"\ntty_dir = "%s"\nstatus_interval_ms = 100\n' "$SIM_DIR/sock" "$SIM_DIR/tty" >"$CONFIG"

"$MICRUN_REPO/target/release/micrun" image build /bin/cat --tag "$RTOS_IMG" --output "$WORK/rtos-cat.tar"
micrun_import_image "$WORK" "$NS" "$WORK/rtos-cat.tar"

# Bare metal with no cpuset: the shim takes the highest online CPU; so does the raw client.
CPU=$(tr ',-' '\n\n' </sys/devices/system/cpu/online | tail -n 1)

now_ns() { date +%s%N; }
# mean and median of the numbers (ms) on stdin: "MEAN MEDIAN"
stats() { sort -n | awk '{ a[NR] = $1; s += $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.2f %.2f\n", s / NR, m }'; }

life() {
    local id=$1
    "${CTR[@]}" run -d --runtime "$MICRUN_RUNTIME" --runtime-config-path "$CONFIG" \
        --annotation org.openeuler.micran.container.os=zephyr "$RTOS_IMG" "$id" >/dev/null
    "${CTR[@]}" task kill "$id"
    "${CTR[@]}" task rm "$id" >/dev/null 2>&1 # warns about the expected 143
    "${CTR[@]}" c rm "$id"
}

micrun_log "(1) through containerd: 1 warm-up + $RUNS runs"
life bench-rtos-warm
: >"$WORK/ctr.ms"
for i in $(seq "$RUNS"); do
    t0=$(now_ns)
    life "bench-rtos-$i"
    t1=$(now_ns)
    echo "scale=2; ($t1 - $t0) / 1000000" | bc >>"$WORK/ctr.ms"
done
read -r CTR_MEAN CTR_MEDIAN < <(stats <"$WORK/ctr.ms")
if ls "$SIM_DIR/sock" | grep -q '^bench-rtos'; then
    micrun_die "micad clients left behind: $(ls "$SIM_DIR/sock")"
fi

micrun_log "(2) raw protocol: 1 warm-up + $RUNS runs"
"$REPO/target/release/examples/micad_latency" --socket-dir "$SIM_DIR/sock" --firmware /bin/cat --cpu "$CPU" --runs 1 >/dev/null
"$REPO/target/release/examples/micad_latency" --socket-dir "$SIM_DIR/sock" --firmware /bin/cat --cpu "$CPU" --runs "$RUNS" \
    | tee "$WORK/raw.out"
grep -o 'run [0-9]*: [0-9.]*' "$WORK/raw.out" | awk '{ print $3 }' >"$WORK/raw.ms"
read -r RAW_MEAN RAW_MEDIAN < <(stats <"$WORK/raw.ms")

echo
echo "RTOS container life (create, start, stop, remove), $RUNS runs, simulator on CPU $CPU"
printf '| %-62s | %10s | %10s |\n' "path" "mean" "median"
printf '|%s|%s|%s|\n' "----------------------------------------------------------------" "------------" "------------"
printf '| %-62s | %7s ms | %7s ms |\n' "ctr run -d, task kill, task rm, c rm (containerd + micrun)" "$CTR_MEAN" "$CTR_MEDIAN"
printf '| %-62s | %7s ms | %7s ms |\n' "raw micad protocol: create, start, stop, rm (MicadClient)" "$RAW_MEAN" "$RAW_MEDIAN"
printf '| %-62s | %9sx | %9sx |\n' "containerd overhead (ratio)" \
    "$(echo "scale=1; $CTR_MEAN / $RAW_MEAN" | bc)" "$(echo "scale=1; $CTR_MEDIAN / $RAW_MEDIAN" | bc)"
