#!/usr/bin/env bash
# voxkit's whole test suite, as CI runs it (.ci/run): the Rust tests (engine, scheduler properties,
# concurrency, header freshness), the C ABI check (export list, C and C++ compile, the C test
# program under valgrind), and the CUDA path on the emulated device (kernel compile/spill gate,
# the emulator's own tests, our kernels through cudarc on the stand-in driver); between them, the
# bindings (C++, Python, C#) tested against the same debug library; last, a short run of every
# fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

# CI machines have no GPU: the driver probe must say so (a developer's GPU machine need not).
# Their disk is shared and can run short (a run once died of ENOSPC at the C tests): keep the
# build small there. Full debug info made each of the ~40 test binaries ≈ 200 MB (≈ 12 GB in
# all); line tables keep file:line in backtraces and valgrind reports at a fraction of that, and
# a one-off build has no use for incremental state.
if [ -n "${CI:-}" ]; then
    export VOXKIT_EXPECT_DRIVER=missing
    export CARGO_PROFILE_DEV_DEBUG=line-tables-only CARGO_INCREMENTAL=0
fi
disk() { echo "disk: $(du -sh target 2>/dev/null | cut -f1) in target, $(df -h . | awk 'NR==2 {print $4}') free ($1)"; }
disk "start"

echo "==== cargo test ===="
cargo test --all-targets --color never 2>&1

# The fuzz targets' build (nightly, instrumented: ≈ 4.5 min of two cores) goes on in the
# background, at low priority, while the suites below leave a core idle (valgrind, the emulator).
mkdir -p target
nice -n 10 bash scripts/fuzz.sh --build-only > target/fuzz-build.log 2>&1 &
FUZZ_BUILD=$!

disk "after cargo test"
echo "==== C ABI ===="
# `cargo test` has just built the cdylib (target/debug/deps/libvoxkit.so) but does not copy it up;
# a plain `cargo build` would rebuild ~60 crates for the features the dev-dependencies no longer
# unify (two minutes on two cores). Check the library the tests were linked from instead.
cp -f target/debug/deps/libvoxkit.so target/debug/libvoxkit.so
bash scripts/c-abi-check.sh --skip-build

echo "==== bindings (C++, Python, C#) against the same library ===="
export VOXKIT_LIB_DIR=target/debug
for b in cpp python csharp; do
    if [ -f "scripts/bindings/$b.sh" ]; then
        echo "---- $b ($(date +%T))"
        bash "scripts/bindings/$b.sh"
    fi
done

echo "==== CUDA on the emulated device ===="
bash scripts/emulator-check.sh

echo "==== fuzzing, short (every target ${VOXKIT_CI_FUZZ_SECS:-10} s; the long runs are in docs/RELIABILITY.md) ===="
# cargo test has replayed every committed corpus input on stable (tests/fuzz_corpus.rs); the
# libFuzzer targets (nightly, AddressSanitizer) built in the background now look for new inputs.
if ! wait "$FUZZ_BUILD"; then
    tail -n 60 target/fuzz-build.log
    echo "the fuzz targets did not build"
    exit 1
fi
grep "fuzz.sh: build took" target/fuzz-build.log
bash scripts/fuzz.sh --no-build "${VOXKIT_CI_FUZZ_SECS:-10}"
disk "end"
