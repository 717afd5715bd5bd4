#!/usr/bin/env bash
# Quickstart: build micrun, start a private containerd that finds the shim,
# import a busybox image and run a Linux container through micrun (which hands
# it to crun); then build the demo RTOS firmware into an image and run it as an
# RTOS container through micrun against `micrun sim`. Stops everything again on
# exit.
#
#   bash scripts/quickstart.sh
#
# MICRUN_QS_RUNTIME overrides the runtime (e.g. io.containerd.runc.v2 to check
# the set-up without micrun).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"
cd "$REPO"

RUNTIME="${MICRUN_QS_RUNTIME:-$MICRUN_RUNTIME}"
NS=micrun

micrun_private_containerd qs "$NS"
echo
echo "== Linux container through $RUNTIME =="
echo "\$ ctr --address $ADDR -n $NS run --rm --runtime $RUNTIME $MICRUN_IMAGE_REF qs-linux echo \"hello from crun via micrun\""
timeout -s KILL 60 ctr --address "$ADDR" -n "$NS" run --rm --runtime "$RUNTIME" \
    "$MICRUN_IMAGE_REF" qs-linux echo "hello from crun via micrun"

# ---------------------------------------------------------------------------
# RTOS container: the demo firmware (examples/demo-firmware) packed into an OCI
# image by `micrun image build`, run against `micrun sim`, a simulator of
# openEuler MICA's micad (real micad needs MICA hardware). The shim finds the
# simulator through a micrun config ([mica] socket_dir, tty_dir) given with
# --runtime-config-path. Not a tty: the firmware reads its console lines from
# ctr's stdin, so `help` is answered and `halt 0` ends it.
if [[ $RUNTIME == "$MICRUN_RUNTIME" ]]; then
    RTOS_REF=localhost/micrun/demo-rtos:quickstart
    mkdir -p "$WORK/rtos"
    micrun_log "build the demo firmware and its image"
    make -s -C examples/demo-firmware OUT="$WORK/rtos/demo-firmware.elf"
    target/release/micrun image build --tag "$RTOS_REF" --output "$WORK/rtos/demo-rtos.tar" \
        "$WORK/rtos/demo-firmware.elf" >/dev/null
    micrun_import_image "$WORK" "$NS" "$WORK/rtos/demo-rtos.tar"
    micrun_start_sim "$WORK/sim" baremetal # stopped by the exit trap (micrun__teardown)

    echo
    echo "== RTOS container through $RUNTIME (micrun sim as micad) =="
    printf '%s\n' "\$ printf 'help\\nhalt 0\\n' | ctr --address $ADDR -n $NS run --rm --runtime $RUNTIME \\"
    echo "    --runtime-config-path $WORK/sim/micrun.toml \\"
    echo "    --annotation org.openeuler.micran.container.os=zephyr $RTOS_REF qs-rtos"
    printf 'help\nhalt 0\n' | timeout -s KILL 60 ctr --address "$ADDR" -n "$NS" run --rm --runtime "$RUNTIME" \
        --runtime-config-path "$WORK/sim/micrun.toml" \
        --annotation org.openeuler.micran.container.os=zephyr "$RTOS_REF" qs-rtos
    micrun_log "the RTOS halted with code 0 and its container is gone"
else
    micrun_log "skipping the RTOS container: it needs $MICRUN_RUNTIME, not $RUNTIME"
fi

echo
micrun_log "quickstart done"
