// RMSNorm over rows: y[r, :] = x[r, :] · rsqrt(mean(x[r, :]²) + eps) · w.
// One block per row (grid.x = rows); blockDim.x a multiple of 32, at most 1024.
#include "common.cuh"

extern "C" __global__ void rms_norm_f32(const float* __restrict__ x, const float* __restrict__ w,
                                        float* __restrict__ y, int cols, float eps) {
    __shared__ float partials[32];
    const float* row = x + (size_t)blockIdx.x * cols;
    float* out = y + (size_t)blockIdx.x * cols;

    // 1. The sum of squares, strided over the row, then over the block.
    float sq = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) sq += row[i] * row[i];
    const float total = vox::block_sum(sq, partials);

    // 2. Scale and weight.
    const float scale = rsqrtf(total / (float)cols + eps);
    for (int i = threadIdx.x; i < cols; i += blockDim.x) out[i] = row[i] * scale * w[i];
}
