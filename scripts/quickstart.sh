#!/usr/bin/env bash
# Quickstart: build micrun, start a private containerd that finds the shim,
# import a busybox image and run a Linux container through micrun (which hands
# it to crun). Stops everything again on exit.
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
# RTOS container: TODO once micrun has an RTOS (MICA) route.
# Run an RTOS image here through the same runtime, e.g.
#   ctr --address "$ADDR" -n "$NS" run --rm --runtime "$RUNTIME" \
#       --annotation <rtos annotation>=<value> <rtos image> qs-rtos
# and show its output / status.
# ---------------------------------------------------------------------------

echo
micrun_log "quickstart done"
