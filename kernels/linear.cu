// Few-row products against bf16 weights (the decode step's GEMV):
// y[r, o] = Σ_k x[r, k] · w[o, k] (+ bias[o]), with w `[out, in]` row-major as stored.
// One warp per output column o (all rows at once, at most LINEAR_MAX_ROWS of them): the warp streams
// the weight row once, two bf16 at a time, and reduces with shuffles. Launch: blockDim.x a multiple
// of 32; grid.x · (blockDim.x / 32) ≥ out. `in` must be even.
#include "common.cuh"

#define LINEAR_MAX_ROWS 8

extern "C" __global__ void linear_bf16_f32(const float* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                           const float* __restrict__ bias, float* __restrict__ y, int rows,
                                           int in, int out) {
    const int lane = threadIdx.x & 31;
    const int o = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (o >= out) return;  // whole warps leave together: o is uniform across a warp

    // 1. Partial dot products of this lane's pairs of columns, for every row.
    float acc[LINEAR_MAX_ROWS];
    for (int r = 0; r < LINEAR_MAX_ROWS; ++r) acc[r] = 0.0f;
    const __nv_bfloat162* w2 = reinterpret_cast<const __nv_bfloat162*>(w + (size_t)o * in);
    for (int k2 = lane; k2 < in / 2; k2 += 32) {
        const float2 wv = __bfloat1622float2(__ldg(&w2[k2]));
        for (int r = 0; r < LINEAR_MAX_ROWS; ++r) {
            if (r >= rows) break;
            const float2 xv = reinterpret_cast<const float2*>(x + (size_t)r * in)[k2];
            acc[r] += xv.x * wv.x + xv.y * wv.y;
        }
    }

    // 2. Reduce across the warp; lane 0 writes.
    for (int r = 0; r < LINEAR_MAX_ROWS; ++r) {
        if (r >= rows) break;
        const float s = vox::warp_sum(acc[r]);
        if (lane == 0) y[(size_t)r * out + o] = s + (bias ? bias[o] : 0.0f);
    }
}
