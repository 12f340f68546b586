#!/usr/bin/env bash
# Runs CMD… with the emulated CUDA device as the CUDA driver: builds the stand-in libcuda
# (tests/emugpu/build.sh, only when its sources changed) and puts it first on the library path, so
# that any voxkit command, test or benchmark finds it where it would find NVIDIA's driver.
#   scripts/emulated-gpu.sh cargo test --test gpu_kernels -- --ignored
#   CUDACPU_ORDER=rev scripts/emulated-gpu.sh target/release/voxkit devices
# Environment: CUDACPU_ORDER=fwd|rev|rand (thread order, default fwd), CUDACPU_SEED (for rand),
# VOXKIT_EMU_ASAN=1 (the AddressSanitizer build, preloaded), VOXKIT_EMU_CALLS=FILE (append the
# driver calls reached), VOXKIT_EMU_TRACE=1 (print every call), VOXKIT_EMU_DRIVER_VERSION (default
# 12090), VOXKIT_EMU_MEMORY_MB (default 8192).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -eq 0 ]; then
    echo "usage: scripts/emulated-gpu.sh CMD [ARGS…]" >&2
    exit 2
fi
if [ "${VOXKIT_EMU_ASAN:-0}" = 1 ]; then
    OUT=$ROOT/target/emugpu-asan
    bash "$ROOT/tests/emugpu/build.sh" --asan "$OUT"
    export LD_PRELOAD="$(g++ -print-file-name=libasan.so)${LD_PRELOAD:+:$LD_PRELOAD}"
    # Rust's own allocations are not ASan's business here; fibers make stack checks noisy.
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:detect_stack_use_after_return=0}"
else
    OUT=$ROOT/target/emugpu
    bash "$ROOT/tests/emugpu/build.sh" "$OUT"
fi
export LD_LIBRARY_PATH="$OUT${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export VOXKIT_EMULATED_GPU=1
exec "$@"
