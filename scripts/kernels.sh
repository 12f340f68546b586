#!/usr/bin/env bash
# Compiles kernels/*.cu with NVRTC: writes kernels/ptx/*.ptx (embedded in the crate) and
# kernels/RESOURCES.md (registers, spills, shared memory per entry for sm_80/86/89/90). Fails on a
# compile error or a spill. --check writes nothing and also fails when those files are stale (CI).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/scripts/cuda-tools.sh" >/dev/null
exec "$VOXKIT_CUDA_PYTHON" "$ROOT/tools/kernels/nvrtc_build.py" --root "$ROOT" "$@"
