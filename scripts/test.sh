#!/usr/bin/env bash
# The test command: installs what is missing, builds the shim, starts a private
# containerd with the shim on its PATH, imports a busybox test image and runs
# the Rust tests against it. Extra arguments go to the test binaries
# (after "--"), e.g.  bash scripts/test.sh some_test_name
# Tears everything down on exit; exits with cargo test's status.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"
cd "$REPO"

micrun_install_deps
micrun_cgroup_fix

micrun_log "cargo build --release"
cargo build --release

WORK=$(mktemp -d /tmp/micrun-test.XXXX)
# shellcheck disable=SC2317 # invoked through the trap
cleanup() {
    local rc=$?
    micrun_stop_containerd "$WORK" || true
    if ((rc != 0)); then
        micrun_containerd_log_tail "$WORK" 20
    fi
    rm -rf --one-file-system "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

micrun_start_containerd "$WORK"
micrun_build_busybox_image "$WORK/busybox.tar" "$MICRUN_IMAGE_REF"
micrun_import_image "$WORK" "$MICRUN_TEST_NS" "$WORK/busybox.tar"
micrun_test_env "$WORK"
micrun_log "test env: MICRUN_TEST_ADDRESS=$MICRUN_TEST_ADDRESS MICRUN_TEST_NAMESPACE=$MICRUN_TEST_NAMESPACE MICRUN_TEST_IMAGE=$MICRUN_TEST_IMAGE MICRUN_TEST_STATE=$MICRUN_TEST_STATE MICRUN_SHIM=$MICRUN_SHIM"

status=0
cargo test --release -- --test-threads=1 "$@" || status=$?
micrun_log "cargo test exited with $status"
exit "$status"
