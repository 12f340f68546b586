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

// Qwen3's attention prologue in one pass: each head of q and of k (rows of q_cols and k_cols) gets
// its RMSNorm (weights q_norm / k_norm, head_dim wide) and then its NeoX RoPE at positions[row]. One
// block per (row, head), q's heads first: grid.x = rows · (q_heads + k_heads); blockDim.x a
// multiple of 32; each thread owns pairs (j, j + half), so the rotation needs no second barrier.
extern "C" __global__ void qk_norm_rope_f32(float* q, float* k, const float* __restrict__ q_norm,
                                            const float* __restrict__ k_norm, const int* __restrict__ positions,
                                            const float* __restrict__ inv_freq, int q_heads, int k_heads,
                                            int head_dim, float eps) {
    __shared__ float partials[32];
    const int heads = q_heads + k_heads;
    const int row = blockIdx.x / heads, hi = blockIdx.x % heads;
    const bool is_q = hi < q_heads;
    float* h = is_q ? q + ((size_t)row * q_heads + hi) * head_dim : k + ((size_t)row * k_heads + hi - q_heads) * head_dim;
    const float* w = is_q ? q_norm : k_norm;

    // 1. The head's RMS.
    float sq = 0.0f;
    for (int i = threadIdx.x; i < head_dim; i += blockDim.x) sq += h[i] * h[i];
    const float scale = rsqrtf(vox::block_sum(sq, partials) / (float)head_dim + eps);

    // 2. Normalise and rotate each pair.
    const int half = head_dim / 2;
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        const float a = h[j] * scale * w[j], b = h[j + half] * scale * w[j + half];
        float s, c;
        vox::sincos_exact((float)positions[row] * inv_freq[j], &s, &c);
        h[j] = a * c - b * s;
        h[j + half] = b * c + a * s;
    }
}
