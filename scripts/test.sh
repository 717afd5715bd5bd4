#!/usr/bin/env bash
# The test command: installs what is missing, builds the shim, starts a private
# containerd with the shim on its PATH (and a second one with CRI for the pod
# test), imports a busybox test image and runs the Rust tests against them.
# Extra arguments go to the test binaries (after "--"), e.g.
#     bash scripts/test.sh some_test_name
# Tears everything down on exit; exits with cargo test's status.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"
cd "$REPO"

micrun_private_containerd test "$MICRUN_TEST_NS"
# a second containerd, with CRI, for tests/cri_pod.rs
micrun_private_cri
micrun_test_env "$WORK"
micrun_log "test env: MICRUN_TEST_ADDRESS=$MICRUN_TEST_ADDRESS MICRUN_TEST_NAMESPACE=$MICRUN_TEST_NAMESPACE MICRUN_TEST_IMAGE=$MICRUN_TEST_IMAGE MICRUN_TEST_STATE=$MICRUN_TEST_STATE MICRUN_SHIM=$MICRUN_SHIM"
micrun_log "CRI test env: MICRUN_TEST_CRI_ADDRESS=$MICRUN_TEST_CRI_ADDRESS MICRUN_TEST_CRI_CONFIG=$MICRUN_TEST_CRI_CONFIG"

status=0
cargo test --release --no-fail-fast -- --test-threads=1 "$@" || status=$?
micrun_log "cargo test exited with $status"
exit "$status"
