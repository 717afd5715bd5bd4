#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for N seconds each (default 60), one
# after another on one core, starting from a copy of the committed corpus so
# a run never rewrites fuzz/corpus/.
#
#     bash scripts/fuzz.sh            # every target, 60 s each
#     bash scripts/fuzz.sh 600        # every target, 10 minutes each
#     bash scripts/fuzz.sh 60 annotations runtime_options   # some targets
#
# Installs cargo-fuzz (pinned below) into ~/.cargo/bin when missing and needs
# a nightly toolchain (libFuzzer's sanitizer flags are nightly-only): the
# installed one, else `rustup toolchain install nightly --profile minimal`.
# Prints one line per target; on a crash prints the tail of libFuzzer's log and
# the crash file (kept in fuzz/artifacts/<target>/) and exits non-zero. Each
# run's log and grown corpus stay in fuzz/target/fuzz-run/<target>/.
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2
SECS="${1:-60}"
shift || true

REPO="$(cd "$(dirname "$0")/.." && pwd)"
FUZZ="$REPO/fuzz"
export PATH="$HOME/.cargo/bin:$PATH"

die() { echo "fuzz: $*" >&2; exit 1; }

[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || die "seconds per target must be a positive whole number, got '$SECS'"
command -v rustup >/dev/null || die "rustup is not installed: cargo-fuzz needs a nightly Rust toolchain, which this script gets through rustup"

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz: no nightly toolchain; installing one (minimal profile)"
    rustup toolchain install nightly --profile minimal >/dev/null 2>&1 \
        || die "no nightly toolchain and 'rustup toolchain install nightly --profile minimal' failed: libFuzzer needs nightly's -Zsanitizer"
fi

if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" >/dev/null 2>&1 \
        || die "'cargo install cargo-fuzz --locked --version $CARGO_FUZZ_VERSION' failed"
fi

cd "$FUZZ"
if [ $# -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi
[ ${#TARGETS[@]} -gt 0 ] || die "no fuzz targets found in fuzz/"

# The instrumented build (every dependency under the address sanitizer) takes
# many minutes cold, so it is kept per machine, like the peers' builds.
TARGET_DIR="${MICRUN_FUZZ_TARGET_DIR:-/var/cache/micrun/fuzz-target}"
mkdir -p "$TARGET_DIR"

# -a: debug assertions, so an integer overflow is a crash and not a wrong value.
start=$(date +%s)
build_log="$FUZZ/target/fuzz-build.log"
mkdir -p "$FUZZ/target"
if ! cargo +nightly fuzz build -a --target-dir "$TARGET_DIR" >"$build_log" 2>&1; then
    tail -n 30 "$build_log" >&2
    die "building the fuzz targets failed (log: fuzz/target/fuzz-build.log)"
fi
echo "fuzz: targets built in $(( $(date +%s) - start )) s"

failed=0
for t in "${TARGETS[@]}"; do
    [ -d "corpus/$t" ] || die "no committed corpus fuzz/corpus/$t for target $t"
    run="$FUZZ/target/fuzz-run/$t"
    rm -rf "$run"
    mkdir -p "$run/corpus" "$FUZZ/artifacts/$t"
    cp -r "corpus/$t/." "$run/corpus/"
    # One process, no -jobs/-workers: the fuzz run must leave the other core free.
    if cargo +nightly fuzz run -a --target-dir "$TARGET_DIR" "$t" "$run/corpus" -- \
        -max_total_time="$SECS" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$FUZZ/artifacts/$t/" >"$run/log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run/log" | tail -n 1)
        n=$(find "$run/corpus" -type f | wc -l)
        echo "fuzz $t: ${runs:-?} runs in $SECS s, corpus $n inputs, no crash"
    else
        failed=1
        echo "fuzz $t: FAILED; from fuzz/target/fuzz-run/$t/log:" >&2
        # The panic message and libFuzzer's verdict; the backtrace stays in the log.
        grep -m 1 -A 6 'panicked at' "$run/log" >&2 || true
        grep -E '^(==[0-9]+== ?ERROR|SUMMARY|artifact_prefix|Test unit written)' "$run/log" >&2 || tail -n 20 "$run/log" >&2
        crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$run/log" | tail -n 1)
        if [ -n "$crash" ] && [ -f "$crash" ]; then
            echo "fuzz $t: crash input ${crash#"$REPO/"} (replay: cd fuzz && cargo +nightly fuzz run -a $t ${crash#"$FUZZ/"}):" >&2
            od -c "$crash" | head -n 20 >&2
        fi
    fi
done
exit $failed
