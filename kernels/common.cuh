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

// The sum (MAX = false) or the maximum of `v` over a 1-D block whose size is a multiple of 32 (at
// most 1024), returned to every thread. `partials` is 32 floats of shared memory; the call ends
// with a barrier, so it may be reused by the next reduction.
template <bool MAX>
__device__ __forceinline__ float block_reduce(float v, float* partials) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const unsigned warps = blockDim.x >> 5;
    v = MAX ? warp_max(v) : warp_sum(v);
    if (lane == 0) partials[warp] = v;
    __syncthreads();
    float total = lane < warps ? partials[lane] : (MAX ? neg_inf() : 0.0f);
    total = MAX ? warp_max(total) : warp_sum(total);
    __syncthreads();
    return total;
}

__device__ __forceinline__ float block_sum(float v, float* partials) { return block_reduce<false>(v, partials); }
__device__ __forceinline__ float block_max(float v, float* partials) { return block_reduce<true>(v, partials); }


// A stored weight element widened to f32 (bf16 widening is exact).
__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }


// sin(x) to ≈1e-7 with no slow path (the CUDA library's sinf keeps a stack frame for its large-argument
// reduction): reduction by π in three parts (Cody–Waite), then the degree-11 Taylor polynomial on
// [−π/2, π/2] — the CPU reference's algorithm (SnakeBeta).
__device__ __forceinline__ float sin_fast(float x) {
    const float k = floorf(x * 0.318309886f + 0.5f);
    const float r = ((x - k * 3.140625f) - k * 9.670258e-4f) - k * 6.278329e-7f;
    const float r2 = r * r;
    const float p = r + r * r2 * (-1.0f / 6.0f + r2 * (1.0f / 120.0f + r2 * (-1.0f / 5040.0f +
                                                                               r2 * (1.0f / 362880.0f - r2 / 39916800.0f))));
    const float odd = k - 2.0f * floorf(k * 0.5f);
    return p * (1.0f - 2.0f * odd);
}

// sin and cos of an f32 angle (RoPE's position · frequency, up to ~1e5), rounded once to f32: the
// reduction by π and the Taylor polynomials (degrees 17 and 18 on [−π/2, π/2], error < 1e-13) in f64.
__device__ __forceinline__ void sincos_exact(float angle, float* s, float* c) {
    const double k = rint((double)angle * 0.31830988618379067154);
    const double r = (double)angle - k * 3.14159265358979323846;
    const double r2 = r * r;
    double sp = 1.0 / 355687428096000.0, cp = -1.0 / 6402373705728000.0;  // 1/17!, −1/18!
    // Horner from the top: sin = r·Σ (−1)^n r^2n/(2n+1)!, cos = Σ (−1)^n r^2n/(2n)!.
    const double sin_c[8] = {-1.0 / 1307674368000.0, 1.0 / 6227020800.0, -1.0 / 39916800.0, 1.0 / 362880.0,
                             -1.0 / 5040.0,          1.0 / 120.0,        -1.0 / 6.0,        1.0};
    const double cos_c[9] = {1.0 / 20922789888000.0, -1.0 / 87178291200.0, 1.0 / 479001600.0,
                             -1.0 / 3628800.0,       1.0 / 40320.0,        -1.0 / 720.0,
                             1.0 / 24.0,             -1.0 / 2.0,           1.0};
    for (int n = 0; n < 8; ++n) sp = sp * r2 + sin_c[n];
    for (int n = 0; n < 9; ++n) cp = cp * r2 + cos_c[n];
    const double sign = ((long long)k & 1) ? -1.0 : 1.0;
    *s = (float)(sign * sp * r);
    *c = (float)(sign * cp);
}

}  // namespace vox
