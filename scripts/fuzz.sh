#!/usr/bin/env bash
# Coverage-guided fuzzing of voxkit (fuzz/, libFuzzer through libfuzzer-sys, nightly Rust):
# builds every target once, then runs each for SECONDS_PER_TARGET seconds (default 20), one at a
# time, on the committed corpus (fuzz/corpus/<target>/, read only: new inputs go to a temp dir).
# Exits non-zero on any crash, hang (-timeout), or allocation past the limits; the crashing input
# is kept in fuzz/artifacts/<target>/ and its reproduction command printed.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#   FUZZ_TARGETS="voice_bytes wav_reader" scripts/fuzz.sh 300   # a subset, longer
#   FUZZ_KEEP=1 scripts/fuzz.sh 600     # also merge what the run found into fuzz/corpus/
#   FUZZ_NO_ASAN=1 scripts/fuzz.sh      # without AddressSanitizer (faster build and runs)
#   scripts/fuzz.sh --build-only         # build the targets, run nothing (CI builds them in the
#   scripts/fuzz.sh --no-build 10        #  background while other suites run, then runs them)
#
# The same flags as `cargo fuzz build` (sancov, -Zsanitizer=address, --cfg fuzzing, debug
# assertions), without needing cargo-fuzz installed: `cargo fuzz run <target>` works as well.
set -euo pipefail

BUILD=1 RUN=1
case "${1:-}" in
  --build-only) RUN=0; shift ;;
  --no-build) BUILD=0; shift ;;
esac
SECONDS_PER_TARGET="${1:-20}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FUZZ="$ROOT/fuzz"
TRIPLE="$(rustc +nightly -vV | sed -n 's/^host: //p')"
ALL_TARGETS="safetensors_header wav_reader voice_bytes checkpoint_folder abi_requests"
TARGETS="${FUZZ_TARGETS:-$ALL_TARGETS}"

RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
RUSTFLAGS+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
RUSTFLAGS+=" -Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth"
RUSTFLAGS+=" --cfg fuzzing -Cforce-frame-pointers"
[[ -z "${FUZZ_NO_ASAN:-}" ]] && RUSTFLAGS+=" -Zsanitizer=address"
export RUSTFLAGS
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$FUZZ/target}"

start=$(date +%s)
bins=()
for t in $TARGETS; do bins+=(--bin "$t"); done
if [[ $BUILD == 1 ]]; then
  # --target keeps the instrumentation off build scripts and proc macros.
  (cd "$FUZZ" && cargo +nightly build --release --target "$TRIPLE" "${bins[@]}")
  echo "fuzz.sh: build took $(($(date +%s) - start)) s"
fi
[[ $RUN == 1 ]] || exit 0

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
for t in $TARGETS; do
  mkdir -p "$work/$t" "$FUZZ/artifacts/$t"
  bin="$CARGO_TARGET_DIR/$TRIPLE/release/$t"
  [[ -x "$bin" ]] || { echo "fuzz.sh: $bin is not built (scripts/fuzz.sh --build-only)"; exit 1; }
  log="$FUZZ/artifacts/$t.log"   # kept: the run's numbers (cov, exec/s) for the record
  echo "fuzz.sh: $t for ${SECONDS_PER_TARGET}s"
  # rss/malloc limits: any single allocation over 512 MB, or 2 GB resident, is a finding (the
  # largest legitimate allocation of a harness is a 64 MB audio ring). -timeout: a hang.
  if ! "$bin" "$work/$t" "$FUZZ/corpus/$t" \
      -max_total_time="$SECONDS_PER_TARGET" -timeout=30 -rss_limit_mb=2048 -malloc_limit_mb=512 \
      -artifact_prefix="$FUZZ/artifacts/$t/" -print_final_stats=1 2>&1 | tee "$log" | grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|ERROR|SUMMARY|panicked|Test unit written" ; then
    :
  fi
  if grep -qE "ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|SUMMARY: |deadly signal|panicked at" "$log"; then
    echo "fuzz.sh: $t FAILED; input in $FUZZ/artifacts/$t/ (replay: $bin <file>)"
    tail -n 60 "$log"
    status=1
  fi
  if [[ -n "${FUZZ_KEEP:-}" ]]; then
    "$bin" -merge=1 "$FUZZ/corpus/$t" "$work/$t" >/dev/null 2>&1 || true
  fi
done
echo "fuzz.sh: total $(($(date +%s) - start)) s"
exit $status
