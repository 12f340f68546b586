// Row normalisations. One block per row (grid.x = rows); blockDim.x a multiple of 32, at most 1024.
#include "common.cuh"

// RMSNorm: y[r, :] = x[r, :] · rsqrt(mean(x[r, :]²) + eps) · w.
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

// RMSNorm in place (Qwen3's per-head q/k norms: the rows are the heads).
extern "C" __global__ void rms_norm_inplace_f32(float* x, const float* __restrict__ w, int cols, float eps) {
    __shared__ float partials[32];
    float* row = x + (size_t)blockIdx.x * cols;
    float sq = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) sq += row[i] * row[i];
    const float scale = rsqrtf(vox::block_sum(sq, partials) / (float)cols + eps);
    for (int i = threadIdx.x; i < cols; i += blockDim.x) row[i] = row[i] * scale * w[i];
}

// LayerNorm: y[r, :] = (x[r, :] − mean) · rsqrt(var + eps) · w + b (two passes over the row).
extern "C" __global__ void layer_norm_f32(const float* __restrict__ x, const float* __restrict__ w,
                                          const float* __restrict__ b, float* __restrict__ y, int cols, float eps) {
    __shared__ float partials[32];
    const float* row = x + (size_t)blockIdx.x * cols;
    float* out = y + (size_t)blockIdx.x * cols;

    // 1. The mean.
    float s = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) s += row[i];
    const float mean = vox::block_sum(s, partials) / (float)cols;

    // 2. The variance around it.
    float sq = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) sq += (row[i] - mean) * (row[i] - mean);
    const float scale = rsqrtf(vox::block_sum(sq, partials) / (float)cols + eps);

    // 3. Normalise, weight, shift.
    for (int i = threadIdx.x; i < cols; i += blockDim.x) out[i] = (row[i] - mean) * scale * w[i] + b[i];
}
