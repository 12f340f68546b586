// Helpers shared by voxkit's kernels. Every kernel file is plain CUDA C++ compiled two ways: by
// NVRTC to PTX for the GPU (scripts/kernels.sh, embedded in the crate), and unchanged by the C++
// compiler for the CPU inside the emulated device (tests/emugpu), which supplies its own
// definitions of the CUDA built-ins. So: no inline PTX, no CUDA-only headers beyond cuda_bf16.h
// and cuda_fp16.h, and dynamic shared memory only through VOX_DYNAMIC_SMEM.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

// `VOX_DYNAMIC_SMEM(float, buf);` declares `buf` as the block's dynamic shared memory (the launch's
// shared_mem_bytes). The emulator defines this macro before including this header.
#ifndef VOX_DYNAMIC_SMEM
#define VOX_DYNAMIC_SMEM(T, name)                                                                  \
    extern __shared__ __align__(16) unsigned char vox_dynamic_smem_[];                             \
    T* name = reinterpret_cast<T*>(vox_dynamic_smem_)
#endif

namespace vox {

// Every lane of a warp (an enumerator, not a variable: NVRTC would emit a variable as a module global).
enum : unsigned { FULL_MASK = 0xffffffffu };

// −∞ (NVRTC has no INFINITY macro).
__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000u); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(FULL_MASK, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, offset));
    return v;
}

// The sum of `v` over a 1-D block whose size is a multiple of 32 (at most 1024), returned to every
// thread. `partials` is 32 floats of shared memory; the call ends with a barrier, so it may be reused
// by the next reduction.
__device__ __forceinline__ float block_sum(float v, float* partials) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const unsigned warps = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) partials[warp] = v;
    __syncthreads();
    float total = lane < warps ? partials[lane] : 0.0f;
    total = warp_sum(total);
    __syncthreads();
    return total;
}

}  // namespace vox
