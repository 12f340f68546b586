#!/usr/bin/env bash
# NVIDIA's CUDA compiler pieces from PyPI, for building and checking our kernels without a GPU or a
# CUDA toolkit: NVRTC (compiles kernels/*.cu to PTX and CUBIN), the runtime's headers (cuda.h,
# cuda_bf16.h, cuda_fp16.h) and, for compiling NVIDIA's own bf16/f16 conversions for the host in
# the emulator's tests, the crt/ and nv/ headers of the nvcc and cccl wheels. Installed once into a
# virtual environment (VOXKIT_CUDA_TOOLS, default target/cuda-tools); needs the network only then.
#
# Pinned to CUDA 12.2: its NVRTC writes PTX ISA 8.2, which every driver since 12.2 (R535) loads.
# (cccl 12.2 ships no headers; 12.3's nv/target serves the 12.2 fp16/bf16 headers.)
#
#   source scripts/cuda-tools.sh   exports VOXKIT_CUDA_PYTHON, VOXKIT_CUDA_INCLUDE, VOXKIT_NVRTC_LIB_DIR
#   bash scripts/cuda-tools.sh     prints them
# (No `set -e` here: it would leak into the shell that sources this file.)
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_tools=${VOXKIT_CUDA_TOOLS:-$_root/target/cuda-tools}
_wheels="nvidia-cuda-nvrtc-cu12==12.2.140 nvidia-cuda-runtime-cu12==12.2.140 nvidia-cuda-nvcc-cu12==12.2.140 nvidia-cuda-cccl-cu12==12.3.101.post1"
if [ ! -f "$_tools/.installed" ] || [ "$(cat "$_tools/.installed")" != "$_wheels" ]; then
    echo "cuda-tools: installing $_wheels into $_tools" >&2
    rm -rf "$_tools"
    if ! python3 -m venv "$_tools"; then
        echo "cuda-tools: python3 -m venv failed" >&2
        return 1 2>/dev/null || exit 1
    fi
    # shellcheck disable=SC2086
    if ! "$_tools/bin/python" -m pip install -q --disable-pip-version-check --no-deps $_wheels >"$_tools.log" 2>&1; then
        echo "cuda-tools: pip could not install the CUDA wheels (see $_tools.log)" >&2
        return 1 2>/dev/null || exit 1
    fi
    echo "$_wheels" >"$_tools/.installed"
fi
_site=$("$_tools/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia
export VOXKIT_CUDA_PYTHON=$_tools/bin/python
export VOXKIT_CUDA_INCLUDE=$_site/cuda_runtime/include
export VOXKIT_NVRTC_LIB_DIR=$_site/cuda_nvrtc/lib
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "VOXKIT_CUDA_PYTHON=$VOXKIT_CUDA_PYTHON"
    echo "VOXKIT_CUDA_INCLUDE=$VOXKIT_CUDA_INCLUDE"
    echo "VOXKIT_NVRTC_LIB_DIR=$VOXKIT_NVRTC_LIB_DIR"
fi
