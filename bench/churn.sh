#!/usr/bin/env bash
# Churn: N container lifecycles through containerd and micrun, then a count of
# everything a lifecycle could leave behind, against the same count taken after
# a warm-up. Fails on any growth beyond the bounds below.
#
#   bash bench/churn.sh [CYCLES]     # default 1000; CI runs 200
#
# One cycle, on one private containerd with `micrun sim` (bare metal):
#  - in the long-lived group "churn" (one shim, started by an anchor container
#    that lives through the whole run, so that shim sees every cycle):
#      a Linux container (crun, busybox sleep) with four execs: plain, `-t`
#      (under script(1) for a terminal), fed on stdin (its echo is checked),
#      and a missing binary (must fail);
#      an RTOS container run detached (no console client), killed, removed;
#      an RTOS container run in the foreground (console attached): the demo
#      firmware answers a typed `echo`, then `halt 0` ends it;
#  - a pod-grouped pair of Linux containers in a group of their own (a shim
#    started and ended every cycle).
#
# Counted per shim (the long-lived one): fds by kind (fifo, pty, socket, pipe,
# anon inode, file), RSS and PSS, threads, child processes. Counted for this
# run's containerd (not the whole machine, which others may share):
# processes and zombies under it and the simulator, mounts, cgroup dirs, our
# state dirs and the delegates', shim sockets in /run/containerd/s for this
# run's ids, micad clients, RTOS ttys.
#
# Bounds: every count back to its warm-up value, but RSS, PSS and the heap in
# use within 64 KB (CHURN_RSS_BOUND_KB). Knobs: CHURN_WARMUP (20 cycles),
# CHURN_STEPS (a subset of "linux rtos console pod"), CHURN_NS, BENCH_NO_BUILD=1.
#
# The allocator: glibc keeps up to 7 freed blocks of each of 64 sizes per
# thread (its tcache, up to about 230 KB), which the allocator reports as in
# use and which fills over hundreds of cycles. That is a bounded cache, not a
# leak, but it hides small leaks in both RSS and the heap count, so the run
# turns it off for containerd and the shims it starts
# (GLIBC_TUNABLES=glibc.malloc.tcache_count=0); CHURN_GLIBC_DEFAULTS=1 keeps
# glibc's defaults (README, "Reliability", has figures for both).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"
cd "$REPO"

CYCLES="${1:-1000}"
WARMUP="${CHURN_WARMUP:-20}"
RSS_BOUND_KB="${CHURN_RSS_BOUND_KB:-64}"
# A namespace of its own: the shim's state (/run/micrun/<namespace>/...) of two
# runs at once would otherwise be one directory, and their counts each other's.
NS="${CHURN_NS:-micrun-churn-$$}"
export MICRUN_TEARDOWN_RM="/run/micrun/$NS"
GROUP_KEY=io.containerd.mica.v2.group
OS_KEY=org.openeuler.micran.container.os=zephyr
DEMO_IMG=localhost/micrun-churn/demo-rtos:1

if [[ ${CHURN_GLIBC_DEFAULTS:-0} != 1 ]]; then
    export GLIBC_TUNABLES=glibc.malloc.tcache_count=0
fi
MICRUN_NO_BUILD=${BENCH_NO_BUILD:-0} micrun_private_containerd churn "$NS"
CTR=(ctr --address "$ADDR" -n "$NS")
SIM_DIR="$WORK/sim"
micrun_start_sim "$SIM_DIR" baremetal
CONFIG="$SIM_DIR/micrun.toml"
RUN=(run --runtime "$MICRUN_RUNTIME" --runtime-config-path "$CONFIG")

make -s -C "$MICRUN_REPO/examples/demo-firmware" OUT="$WORK/demo.elf"
"$MICRUN_REPO/target/release/micrun" image build --os zephyr --tag "$DEMO_IMG" --output "$WORK/demo.tar" "$WORK/demo.elf"
micrun_import_image "$WORK" "$NS" "$WORK/demo.tar"

fail() {
    echo "churn: FAILED: $*" >&2
    exit 1
}

# --- one cycle ---------------------------------------------------------------

# Removes a task (killed first) and its container record.
remove() {
    "${CTR[@]}" task kill -s SIGKILL "$1" >/dev/null 2>&1 || true
    "${CTR[@]}" task rm -f "$1" >/dev/null 2>&1 || true
    "${CTR[@]}" containers rm "$1" >/dev/null || fail "ctr c rm $1"
}

linux_with_execs() {
    local id=$1 out
    "${CTR[@]}" "${RUN[@]}" -d --annotation "$GROUP_KEY=churn" "$MICRUN_IMAGE_REF" "$id" sleep 1000 >/dev/null ||
        fail "run $id"
    "${CTR[@]}" task exec --exec-id plain "$id" true || fail "exec plain in $id"
    script -qec "${CTR[*]} task exec -t --exec-id tty $id true" /dev/null </dev/null >/dev/null ||
        fail "exec -t in $id"
    # ctr never closes an exec's stdin, so the exec reads one line, not to EOF.
    out=$(echo "churn $id" | "${CTR[@]}" task exec --exec-id stdin "$id" sh -c 'read -r l; echo "$l"') ||
        fail "exec stdin in $id"
    [[ $out == "churn $id" ]] || fail "exec stdin in $id echoed [$out]"
    if "${CTR[@]}" task exec --exec-id missing "$id" /no/such/binary >/dev/null 2>&1; then
        fail "exec of a missing binary in $id succeeded"
    fi
    remove "$id"
}

rtos_detached() {
    local id=$1
    "${CTR[@]}" "${RUN[@]}" -d --annotation "$GROUP_KEY=churn" --annotation "$OS_KEY" "$DEMO_IMG" "$id" >/dev/null ||
        fail "run RTOS $id"
    remove "$id"
}

rtos_console() {
    local id=$1 out
    out=$(printf 'echo churn %s\nhalt 0\n' "$id" |
        timeout 30 "${CTR[@]}" "${RUN[@]}" --rm --annotation "$GROUP_KEY=churn" --annotation "$OS_KEY" "$DEMO_IMG" "$id") ||
        fail "RTOS $id with its console attached: ctr exited $? [$out]"
    [[ $out == *"churn $id"* ]] || fail "RTOS $id did not answer on its console: [$out]"
}

pod_pair() {
    local group=$1 id
    for id in "$group-a" "$group-b"; do
        "${CTR[@]}" "${RUN[@]}" -d --annotation "$GROUP_KEY=$group" "$MICRUN_IMAGE_REF" "$id" sleep 1000 >/dev/null ||
            fail "run $id"
    done
    remove "$group-a"
    remove "$group-b"
}

# CHURN_STEPS narrows a cycle to some of its steps, to find which one leaks.
STEPS="${CHURN_STEPS:-linux rtos console pod}"
cycle() {
    local c="churn-$1"
    [[ " $STEPS " != *" linux "* ]] || linux_with_execs "$c-linux"
    [[ " $STEPS " != *" rtos "* ]] || rtos_detached "$c-rtos"
    [[ " $STEPS " != *" console "* ]] || rtos_console "$c-console"
    [[ " $STEPS " != *" pod "* ]] || pod_pair "$c-pod"
}

# --- counting ----------------------------------------------------------------

# Every pid under the given roots (themselves included), one per line.
descendants() {
    ps -e -o pid=,ppid= | awk -v roots="$*" '
        { parent[$1] = $2 }
        END {
            n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1
            do { grew = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 } } while (grew)
            for (p in keep) print p
        }'
}

# key=value lines: what the long-lived shim holds, and what this run left.
snapshot() {
    local shim=$1 f link kind cpid spid
    declare -A fd=([fifo]=0 [pty]=0 [socket]=0 [pipe]=0 [anon]=0 [file]=0)
    for f in /proc/"$shim"/fd/*; do
        link=$(readlink "$f" 2>/dev/null) || continue
        case $link in
        pipe:*) kind=pipe ;;
        socket:*) kind=socket ;;
        anon_inode:*) kind=anon ;;
        /dev/pts/* | /dev/ptmx) kind=pty ;;
        *) if [[ $(stat -L -c %F "$f" 2>/dev/null) == fifo ]]; then kind=fifo; else kind=file; fi ;;
        esac
        fd[$kind]=$((fd[$kind] + 1))
    done
    for kind in fifo pty socket pipe anon file; do
        echo "shim_fd_$kind=${fd[$kind]}"
    done
    awk '/^Rss:/ { print "shim_rss_kb=" $2 } /^Pss:/ { print "shim_pss_kb=" $2 }' /proc/"$shim"/smaps_rollup
    awk '/^Threads:/ { print "shim_threads=" $2 }' /proc/"$shim"/status
    echo "shim_children=$(ps -o pid= --ppid "$shim" | wc -l)"
    # The shim logs its runtime's live tasks at each Delete; the last Delete
    # of a container of the long-lived group tells that shim's count.
    local deleted
    deleted=$(grep -a ' deleted id=churn-[0-9warm-]*-\(linux\|rtos\|console\) ' "$WORK/containerd.log" | tail -n 1)
    echo "shim_runtime_tasks=$(sed -n 's/.* runtime_tasks=\([0-9]*\).*/\1/p' <<<"$deleted")"
    echo "shim_heap_bytes=$(sed -n 's/.* heap_bytes=\([0-9]*\).*/\1/p' <<<"$deleted")"
    cpid=$(cat "$WORK/containerd.pid")
    spid=$(cat "$SIM_DIR/sim.pid")
    local pids shims
    # Shims leave containerd's tree at start (they are reparented); they are
    # found by the containerd address on their command line.
    shims=$(pgrep -f -- "-address $ADDR" || true)
    echo "shims=$(wc -w <<<"$shims")"
    # shellcheck disable=SC2086 # one pid per word
    pids=$(descendants "$cpid" "$spid" $shims)
    echo "processes=$(wc -l <<<"$pids")"
    echo "zombies=$(for p in $pids; do awk '{ print $3 }' /proc/"$p"/stat 2>/dev/null; done | grep -c '^Z$' || true)"
    echo "mounts=$(grep -c -e "$WORK" -e "/run/micrun/$NS/" /proc/self/mountinfo || true)"
    echo "cgroup_dirs=$(find /sys/fs/cgroup -type d -path "*/$NS/*" 2>/dev/null | wc -l)"
    echo "state_entries=$(find "/run/micrun/$NS" -mindepth 1 -not -path "*/delegates/*" 2>/dev/null | wc -l)"
    echo "delegate_state_entries=$(find "/run/micrun/$NS/delegates" -mindepth 2 2>/dev/null | wc -l)"
    local tasks
    tasks=$(find "$WORK" -maxdepth 4 -type d -name io.containerd.runtime.v2.task | head -n 1)
    echo "bundles=$(find "$tasks/$NS" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
    echo "shim_sockets=$(shim_sockets | wc -l)"
    echo "micad_clients=$(find "$SIM_DIR/sock" -type s -not -name mica-create.socket | wc -l)"
    echo "rtos_ttys=$(find "$SIM_DIR/tty" -mindepth 1 | wc -l)"
}

# The sockets in /run/containerd/s of the shims this run started: the shim
# socket is named by sha256 of "<containerd address>/<namespace>/<group or id>".
SHIM_KEYS="$WORK/shim-keys"
echo churn >"$SHIM_KEYS"
shim_sockets() {
    local key hash
    while read -r key; do
        hash=$(printf '%s' "$ADDR/$NS/$key" | sha256sum | cut -d' ' -f1)
        [[ -S /run/containerd/s/$hash ]] && echo "$key"
    done <"$SHIM_KEYS"
    return 0
}
note_keys() {
    local c="churn-$1"
    printf '%s\n' "$c-linux" "$c-rtos" "$c-console" "$c-pod" >>"$SHIM_KEYS"
}

# tokio ends idle blocking threads after 10 s; counts are taken after that.
settle() { sleep 12; }

# --- the run -----------------------------------------------------------------

"${CTR[@]}" "${RUN[@]}" -d --annotation "$GROUP_KEY=churn" "$MICRUN_IMAGE_REF" churn-anchor sleep 100000 >/dev/null
SHIM=$("${CTR[@]}" task ls | awk '$1 == "churn-anchor" { print $2 }')
SHIM=$(ps -o ppid= -p "$SHIM" | tr -d ' ')
[[ $(cat /proc/"$SHIM"/comm) == containerd-shim* ]] || fail "pid $SHIM is not the anchor's shim"
micrun_log "anchor's shim: pid $SHIM; warm-up: $WARMUP cycles"
for ((i = 0; i < WARMUP; i++)); do
    note_keys "warm-$i"
    cycle "warm-$i"
done
settle
snapshot "$SHIM" >"$WORK/before"

micrun_log "churn: $CYCLES cycles ($STEPS)"
t0=$(date +%s)
for ((i = 0; i < CYCLES; i++)); do
    note_keys "$i"
    cycle "$i"
    if (((i + 1) % 100 == 0)); then
        micrun_log "churn: $((i + 1))/$CYCLES cycles, $(($(date +%s) - t0)) s, shim RSS $(awk '/^Rss:/ { print $2 }' /proc/"$SHIM"/smaps_rollup) KB"
    fi
done
elapsed=$(($(date +%s) - t0))
settle
snapshot "$SHIM" >"$WORK/after"

# --- verdict -----------------------------------------------------------------

status=0
printf '%-24s %10s %10s %8s  %s\n' counter warm-up end delta bound
while IFS='=' read -r key before; do
    after=$(awk -F= -v k="$key" '$1 == k { print $2 }' "$WORK/after")
    delta=$((after - before))
    case $key in
    shim_rss_kb | shim_pss_kb) bound=$RSS_BOUND_KB ;;
    shim_heap_bytes) bound=$((RSS_BOUND_KB * 1024)) ;;
    *) bound=0 ;;
    esac
    verdict=ok
    ((delta <= bound)) || { verdict=GREW; status=1; }
    printf '%-24s %10s %10s %8s  <= %-4s %s\n' "$key" "$before" "$after" "$delta" "$bound" "$verdict"
done <"$WORK/before"

# After the anchor leaves, its shim must end and take its socket with it.
remove churn-anchor
echo churn-anchor >>"$SHIM_KEYS"
for ((i = 0; i < 100; i++)); do
    [[ -d /proc/$SHIM ]] || break
    sleep 0.1
done
[[ ! -d /proc/$SHIM ]] || { echo "the group's shim $SHIM outlived its last container"; status=1; }
left=$(shim_sockets)
[[ -z $left ]] || { echo "shim sockets left: $left"; status=1; }
state=$(find "/run/micrun/$NS" -mindepth 2 -path "*/containers/*" 2>/dev/null)
[[ -z $state ]] || { echo "state left: $state"; status=1; }

allocator=$([[ -n ${GLIBC_TUNABLES:-} ]] && echo "glibc tcache off" || echo "glibc defaults")
echo "churn: $CYCLES cycles ($STEPS) in $elapsed s, warm-up $WARMUP, $allocator; $([[ $status == 0 ]] && echo "nothing grew beyond its bound" || echo FAILED)"
exit "$status"
