#!/usr/bin/env bash
# The test command: installs what is missing, builds the shim, and runs the
# Rust tests against private containerds: for each containerd series one with
# the shim on its PATH (for the ctr-driven tests) and a second one with CRI
# (for the pod test), with that series' ctr and containerd-shim-runc-v2 first
# on the tests' PATH.
#
#     bash scripts/test.sh                       # containerd 1.6, then 2.3
#     MICRUN_CONTAINERD=2.3 bash scripts/test.sh # one series: 1.6, 1.7 or 2.3
#     bash scripts/test.sh some_test_name        # extra arguments go to the
#                                                # test binaries (after "--")
#
# The full run (no series, no arguments) then runs containerd's own integration
# suite against micrun beside containerd's runc shim (scripts/conformance.sh
# containerd, judged by tests/conformance/containerd-v2.3.txt) and critest
# against micrun's CRI handlers on containerd 2.3 (scripts/conformance.sh cri
# --handler mica --handler mica-shim, judged by tests/conformance/cri-v2.3.txt); MICRUN_CONFORMANCE=0
# leaves both out, =1 adds them to any run.
#
# 1.6 is Debian's containerd 1.6.20; 1.7 and 2.3 are built once per machine
# from the Go module proxy (scripts/lib-peers.sh). Prints one summary line per
# series and ends with the line "N passed, N failed" (all series). Tears
# everything down on exit; exits non-zero if any series failed.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"
cd "$REPO"

# One series, inside the run below: its own private containerds, torn down
# when this process exits.
if [[ -n ${MICRUN__TEST_SERIES:-} ]]; then
    export MICRUN_CONTAINERD=$MICRUN__TEST_SERIES
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
fi

if [[ -n ${MICRUN_CONTAINERD:-} ]]; then
    s=$(micrun_containerd_series "$MICRUN_CONTAINERD")
    series=("$s")
else
    series=(1.6 2.3)
fi

# What every series shares is done once: packages, the cgroup fix, the shim's
# build, the peers' build (once per machine), and cargo builds the test
# binaries in the first series only (the later ones find them up to date).
micrun_install_deps
micrun_cgroup_fix
if [[ ${MICRUN_NO_BUILD:-0} != 1 ]]; then
    micrun_log "build (scripts/build.sh)"
    bash "$MICRUN_REPO/scripts/build.sh"
fi
for s in "${series[@]}"; do
    bindir=$(micrun_containerd_bindir "$s")
    micrun_log "containerd $s: $("$bindir/containerd" --version) ($bindir)"
done

out=$(mktemp /tmp/micrun-test-out.XXXX)
trap 'rm -f "$out"' EXIT
summary=()
total_passed=0 total_failed=0 rc=0
for s in "${series[@]}"; do
    micrun_log "=== the test suite against containerd $s ==="
    set +e
    MICRUN__TEST_SERIES=$s MICRUN_NO_BUILD=1 bash "$0" "$@" 2>&1 | tee "$out"
    status=${PIPESTATUS[0]}
    set -e
    # cargo test: one "test result: ok. N passed; M failed; ..." per test binary
    read -r passed failed < <(awk '/^test result: / {
            for (i = 1; i < NF; i++) {
                if ($(i + 1) ~ /^passed;?$/) p += $i
                if ($(i + 1) ~ /^failed;?$/) f += $i
            }
        } END { print p + 0, f + 0 }' "$out")
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    bindir=$(micrun_containerd_bindir "$s")
    version=$("$bindir/containerd" --version | awk '{ print $3 }')
    if ((status == 0)); then
        verdict=ok
    else
        verdict="FAILED (exit $status)"
        rc=1
    fi
    summary+=("containerd $s ($version): $passed passed, $failed failed: $verdict")
done

# containerd's own integration suite against micrun (crun) beside containerd's
# runc shim, judged by tests/conformance/containerd-v2.3.txt, then critest:
# with the full matrix only (no series named, no test filter), or when
# MICRUN_CONFORMANCE=1.
if [[ ${MICRUN_CONFORMANCE:-} == 1 || (-z ${MICRUN_CONFORMANCE:-} && -z ${MICRUN_CONTAINERD:-} && $# -eq 0) ]]; then
    micrun_log "=== containerd's integration suite (scripts/conformance.sh containerd) ==="
    set +e
    MICRUN_NO_BUILD=1 bash "$MICRUN_REPO/scripts/conformance.sh" containerd 2>&1 | tee "$out"
    status=${PIPESTATUS[0]}
    set -e
    counts=$(grep -a 'integration/client: ' "$out" | tail -n 1 || true)
    if ((status == 0)); then
        summary+=("${counts:-containerd integration suite: no counts printed}: ok")
    else
        summary+=("${counts:-containerd integration suite: no counts printed}: FAILED (exit $status; UNEXPECTED lines above)")
        rc=1
    fi
    # critest (Kubernetes' CRI validation suite) against the handlers `mica`
    # (the holder as the pod's sandbox) and `mica-shim` (the Sandbox API) on
    # containerd 2.3, judged by tests/conformance/cri-v2.3.txt
    micrun_log "=== critest, handlers mica and mica-shim (scripts/conformance.sh cri --handler mica --handler mica-shim) ==="
    set +e
    MICRUN_NO_BUILD=1 bash "$MICRUN_REPO/scripts/conformance.sh" cri --handler mica --handler mica-shim 2>&1 | tee "$out"
    status=${PIPESTATUS[0]}
    set -e
    counts=$(grep -a '^critest .* on containerd ' "$out" | tail -n 1 || true)
    if ((status == 0)); then
        summary+=("${counts:-critest: no counts printed}: ok")
    else
        summary+=("${counts:-critest: no counts printed}: FAILED (exit $status; UNEXPECTED lines above)")
        rc=1
    fi
fi

# Reliability: 200 lifecycles with nothing left growing (bench/churn.sh), and
# every fuzz target for 60 s (scripts/fuzz.sh): with the full matrix only, or
# when MICRUN_RELIABILITY=1.
if [[ ${MICRUN_RELIABILITY:-} == 1 || (-z ${MICRUN_RELIABILITY:-} && -z ${MICRUN_CONTAINERD:-} && $# -eq 0) ]]; then
    micrun_log "=== churn: 200 lifecycles (bench/churn.sh 200) ==="
    set +e
    BENCH_NO_BUILD=1 bash "$MICRUN_REPO/bench/churn.sh" 200 2>&1 | tee "$out"
    status=${PIPESTATUS[0]}
    set -e
    counts=$(grep -a '^churn: [0-9]* cycles' "$out" | tail -n 1 || true)
    if ((status == 0)); then
        summary+=("${counts:-churn: no counts printed}: ok")
    else
        summary+=("${counts:-churn: no counts printed}: FAILED (exit $status; the GREW lines above)")
        rc=1
    fi
fi

if [[ ${MICRUN_RELIABILITY:-} == 1 || (-z ${MICRUN_RELIABILITY:-} && -z ${MICRUN_CONTAINERD:-} && $# -eq 0) ]]; then
    micrun_log "=== fuzzing: every target 60 s (scripts/fuzz.sh 60) ==="
    set +e
    bash "$MICRUN_REPO/scripts/fuzz.sh" 60 2>&1 | tee "$out"
    status=${PIPESTATUS[0]}
    set -e
    targets=$(grep -ac '^fuzz .*: .* runs in .*no crash$' "$out" || true)
    if ((status == 0)); then
        summary+=("fuzz: $targets targets, 60 s each, no crash: ok")
    else
        summary+=("fuzz: $targets targets without a crash: FAILED (exit $status; the crash is above)")
        rc=1
    fi
fi

for line in "${summary[@]}"; do
    echo "$line"
done
echo "$total_passed passed, $total_failed failed"
exit "$rc"
