#!/usr/bin/env bash
# RTOS container latency, in one run on one private containerd:
#
#  (1) the life of an RTOS container through containerd and micrun against the
#      life of a Linux container through micrun and crun, the same ctr steps in
#      the same io mode (`ctr run -d`, `task kill -s SIGKILL`, `task rm -f`,
#      `c rm`). The RTOS's firmware is /bin/cat on `micrun sim` (bare metal,
#      runs until stopped); the Linux container runs busybox `sleep`.
#  (2) the shim's own share of each RTOS step: from the shim's debug log, the
#      time from request in to reply out (`answered us=`) minus the micad
#      requests made inside it (`micad ok ... us=`), per Task request.
#  (3) the raw micad protocol for the same steps (create, start, stop, rm)
#      through the library's MicadClient (examples/micad_latency.rs).
#
#   bash bench/rtos.sh
#
# Knobs (environment): BENCH_RUNS (10), BENCH_NO_BUILD=1 to skip scripts/build.sh.
# Goals (issue 9): RTOS life <= 0.85 x Linux life; the shim's share of
# create+start and of kill+delete <= 2 ms each. The script prints both and
# exits 1 when a goal is missed (BENCH_NO_GOALS=1 only prints).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"
cd "$REPO"

RUNS="${BENCH_RUNS:-10}"
NS=micrun-bench-rtos
RTOS_IMG=localhost/micrun-bench/rtos-cat:1

# The shim reads its log level and the simulator's sockets from MICRUN_CONFIG,
# which it inherits from containerd: written before containerd starts, filled
# in once the simulator runs.
CONFIG=$(mktemp /tmp/micrun-bench-rtos-config.XXXX)
export MICRUN_CONFIG=$CONFIG
MICRUN_NO_BUILD=${BENCH_NO_BUILD:-0} micrun_private_containerd bench-rtos "$NS"
trap 'rm -f "$CONFIG"; micrun__teardown' EXIT
CTR=(ctr --address "$ADDR" -n "$NS")
cargo build --release --example micad_latency

SIM_DIR="$WORK/sim"
micrun_start_sim "$SIM_DIR" baremetal
printf 'log_level = "debug"\n[mica]\nsocket_dir = "%s"\ntty_dir = "%s"\n' "$SIM_DIR/sock" "$SIM_DIR/tty" >"$CONFIG"

"$MICRUN_REPO/target/release/micrun" image build /bin/cat --tag "$RTOS_IMG" --output "$WORK/rtos-cat.tar"
micrun_import_image "$WORK" "$NS" "$WORK/rtos-cat.tar"

# Bare metal with no cpuset: the shim takes the highest online CPU; so does the raw client.
CPU=$(tr ',-' '\n\n' </sys/devices/system/cpu/online | tail -n 1)

now_ns() { date +%s%N; }
# mean and median of the numbers on stdin: "MEAN MEDIAN"
stats() { sort -n | awk '{ a[NR] = $1; s += $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.2f %.2f\n", s / NR, m }'; }

STEPS=(run kill rm crm)
# life KIND ID: one life, each step's ms appended to $WORK/KIND.STEP
life() {
    local kind=$1 id=$2 t0 t1 step
    local -a run_args
    if [[ $kind == rtos ]]; then
        run_args=(--annotation org.openeuler.micran.container.os=zephyr "$RTOS_IMG" "$id")
    else
        run_args=("$MICRUN_IMAGE_REF" "$id" sleep 1000)
    fi
    for step in "${STEPS[@]}"; do
        t0=$(now_ns)
        case $step in
        run) "${CTR[@]}" run -d --runtime "$MICRUN_RUNTIME" "${run_args[@]}" >/dev/null ;;
        kill) "${CTR[@]}" task kill -s SIGKILL "$id" ;;
        rm) "${CTR[@]}" task rm -f "$id" >/dev/null 2>&1 ;; # warns about the expected 137
        crm) "${CTR[@]}" c rm "$id" ;;
        esac
        t1=$(now_ns)
        echo "scale=3; ($t1 - $t0) / 1000000" | bc >>"$WORK/$kind.$step"
    done
}

micrun_log "(1) RTOS and Linux lives, alternating: 1 warm-up each + $RUNS runs each"
life rtos bench-rtos-warm
life linux bench-linux-warm
rm -f "$WORK"/rtos.* "$WORK"/linux.*
for i in $(seq "$RUNS"); do
    life rtos "bench-rtos-$i"
    life linux "bench-linux-$i"
done
if ls "$SIM_DIR/sock" | grep -q '^bench-rtos'; then
    micrun_die "micad clients left behind: $(ls "$SIM_DIR/sock")"
fi
for kind in rtos linux; do
    paste -d+ "$WORK/$kind.run" "$WORK/$kind.kill" "$WORK/$kind.rm" "$WORK/$kind.crm" | bc >"$WORK/$kind.life"
done

micrun_log "(3) raw protocol: 1 warm-up + $RUNS runs"
"$REPO/target/release/examples/micad_latency" --socket-dir "$SIM_DIR/sock" --firmware /bin/cat --cpu "$CPU" --runs 1 >/dev/null
"$REPO/target/release/examples/micad_latency" --socket-dir "$SIM_DIR/sock" --firmware /bin/cat --cpu "$CPU" --runs "$RUNS" >"$WORK/raw.out"
grep -o 'run [0-9]*: [0-9.]*' "$WORK/raw.out" | awk '{ print $3 }' >"$WORK/raw.ms"
read -r RAW_MEAN RAW_MEDIAN < <(stats <"$WORK/raw.ms")

# (2) The shim's lines arrive in containerd's log as the shim wrote them:
#   ... DEBUG task{method="create" id="bench-rtos-3"}: micad ok request=... us=812
#   ... DEBUG task{method="create" id="bench-rtos-3"}: answered us=1907 ok=true
# Per answered RTOS request: "method id total_ms micad_ms", the micad requests
# made inside it summed. A request that failed (`task rm -f` sends a kill to
# the stopped RTOS) is left out.
awk '
    match($0, /task\{method="[a-z_]+" id="bench-rtos-[0-9]+"\}: /) {
        split(substr($0, RSTART, RLENGTH), f, "\"")
        key = f[2] " " f[4]
        if (!match($0, / us=[0-9]+/)) next
        us = substr($0, RSTART + 4, RLENGTH - 4)
        if ($0 ~ /: micad (ok|failed) /) micad[key] += us
        else if ($0 ~ /: answered /) {
            if ($0 ~ / ok=true/) printf "%s %.3f %.3f\n", key, us / 1000, micad[key] / 1000
            delete micad[key]
        }
    }
' "$WORK/containerd.log" >"$WORK/shim.share"
for m in create start kill delete; do
    awk -v m="$m" '$1 == m { print $3 - $4 }' "$WORK/shim.share" >"$WORK/share.$m"
    awk -v m="$m" '$1 == m { print $4 }' "$WORK/shim.share" >"$WORK/micad.$m"
    [[ -s $WORK/share.$m ]] || micrun_die "no '$m' timings of bench-rtos-* in the shim's log ($WORK/containerd.log): is the shim logging at debug?"
done
paste -d+ "$WORK/share.create" "$WORK/share.start" | bc >"$WORK/share.up"
paste -d+ "$WORK/share.kill" "$WORK/share.delete" | bc >"$WORK/share.down"

row() { printf '| %-58s | %9s | %9s |\n' "$1" "$2" "$3"; }
rule() { printf '|%s|%s|%s|\n' "------------------------------------------------------------" "-----------" "-----------"; }
ms_row() { local a b; read -r a b < <(stats <"$2"); row "$1" "$a ms" "$b ms"; }

echo
echo "(1) one life, $RUNS runs each, alternating; simulator on CPU $CPU, delegate crun"
row "step" "mean" "median"
rule
for step in "${STEPS[@]}"; do
    case $step in run) what="ctr run -d" ;; kill) what="ctr task kill -s SIGKILL" ;; rm) what="ctr task rm -f" ;; crm) what="ctr c rm" ;; esac
    ms_row "RTOS  $what" "$WORK/rtos.$step"
    ms_row "Linux $what" "$WORK/linux.$step"
done
ms_row "RTOS life (4 steps)" "$WORK/rtos.life"
ms_row "Linux life (4 steps)" "$WORK/linux.life"
read -r RTOS_MEAN RTOS_MEDIAN < <(stats <"$WORK/rtos.life")
read -r LINUX_MEAN LINUX_MEDIAN < <(stats <"$WORK/linux.life")
RATIO_MEAN=$(echo "scale=3; $RTOS_MEAN / $LINUX_MEAN" | bc)
RATIO_MEDIAN=$(echo "scale=3; $RTOS_MEDIAN / $LINUX_MEDIAN" | bc)
row "RTOS life / Linux life (goal <= 0.85)" "${RATIO_MEAN}x" "${RATIO_MEDIAN}x"

echo
echo "(2) the shim's own share of each RTOS step (request in to reply out, minus micad)"
row "Task request" "mean" "median"
rule
for m in create start kill delete; do
    ms_row "$m: shim" "$WORK/share.$m"
    ms_row "$m: micad requests inside it" "$WORK/micad.$m"
done
ms_row "create + start: shim (goal <= 2 ms)" "$WORK/share.up"
ms_row "kill + delete: shim (goal <= 2 ms)" "$WORK/share.down"

echo
echo "(3) raw micad protocol, $RUNS runs"
row "create, start, stop, rm (MicadClient)" "$RAW_MEAN ms" "$RAW_MEDIAN ms"

read -r _ UP_MEDIAN < <(stats <"$WORK/share.up")
read -r _ DOWN_MEDIAN < <(stats <"$WORK/share.down")
missed=()
(($(echo "$RATIO_MEDIAN > 0.85" | bc))) && missed+=("RTOS/Linux life $RATIO_MEDIAN > 0.85")
(($(echo "$UP_MEDIAN > 2" | bc))) && missed+=("shim share of create+start $UP_MEDIAN ms > 2 ms")
(($(echo "$DOWN_MEDIAN > 2" | bc))) && missed+=("shim share of kill+delete $DOWN_MEDIAN ms > 2 ms")
if ((${#missed[@]})); then
    printf 'goal missed: %s\n' "${missed[@]}"
    [[ ${BENCH_NO_GOALS:-0} == 1 ]] || exit 1
else
    echo "goals met (medians): RTOS/Linux life ${RATIO_MEDIAN}x, shim share create+start ${UP_MEDIAN} ms, kill+delete ${DOWN_MEDIAN} ms"
fi
