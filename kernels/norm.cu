// Row normalisations — one block per row (grid.x = rows); blockDim.x a multiple of 32, at most
// 1024 — and column statistics over the rows (time), 32 columns a block.
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

// Column statistics over the rows of `[rows, cols]` (time × channels). One block of 32 × STRANDS
// threads (blockDim.x = 256) per 32 columns (grid.x = ⌈cols / 32⌉): thread (lane, strand) takes
// column blockIdx.x·32 + lane and the rows strand, strand + STRANDS, …, in order (a warp reads 32
// neighbouring values of a row); the strands' f64 partials are then added in strand order.
namespace {
enum : int { STRANDS = 8 };

// The sum over the strands of each column's `v`, strands in order, returned to every thread of the
// column. `partials` is STRANDS × 32 doubles of shared memory; ends with a barrier (reusable).
__device__ __forceinline__ double strands_sum(double v, double (*partials)[32]) {
    const unsigned lane = threadIdx.x & 31u, strand = threadIdx.x >> 5;
    partials[strand][lane] = v;
    __syncthreads();
    double total = 0.0;
    for (int s = 0; s < STRANDS; ++s) total += partials[s][lane];
    __syncthreads();
    return total;
}

// The largest of each column's `v` over the strands, returned to every thread of the column.
__device__ __forceinline__ float strands_max(float v, double (*partials)[32]) {
    const unsigned lane = threadIdx.x & 31u, strand = threadIdx.x >> 5;
    partials[strand][lane] = v;
    __syncthreads();
    float m = vox::neg_inf();
    for (int s = 0; s < STRANDS; ++s) m = fmaxf(m, (float)partials[s][lane]);
    __syncthreads();
    return m;
}
}  // namespace

// y[0, c] = Σ_r x[r, c] / rows (rows ≥ 1), summed in f64, rounded once.
extern "C" __global__ void mean_rows_f32(const float* __restrict__ x, float* __restrict__ y, int rows, int cols) {
    __shared__ double partials[STRANDS][32];
    const int c = blockIdx.x * 32 + (int)(threadIdx.x & 31u), strand = (int)(threadIdx.x >> 5);
    double acc = 0.0;
    if (c < cols)
        for (long long r = strand; r < rows; r += STRANDS) acc += (double)x[r * cols + c];
    const double total = strands_sum(acc, partials);
    if (strand == 0 && c < cols) y[c] = (float)(total / (double)rows);
}

// Attentive statistics pooling: y = [mean | std] (`[1, 2·cols]`) of each column of x (rows ≥ 1),
// weighted by w_r = e^(logits[r, c] − max_r logits[r, c]) (f32), or 1 when logits is null:
// W = Σ w, mean = Σ w·x / W, std = sqrt(max(Σ w·(x − mean)² / W, eps)) (a NaN variance stays NaN),
// the sums, mean and variance in f64.
extern "C" __global__ void weighted_stats_f32(const float* __restrict__ x, const float* __restrict__ logits,
                                              float* __restrict__ y, int rows, int cols, float eps) {
    __shared__ double partials[STRANDS][32];
    const int c = blockIdx.x * 32 + (int)(threadIdx.x & 31u), strand = (int)(threadIdx.x >> 5);
    const bool live = c < cols, weighted = logits != nullptr;

    // 1. The largest logit of the column (softmax's shift).
    float m = vox::neg_inf();
    if (live && weighted)
        for (long long r = strand; r < rows; r += STRANDS) m = fmaxf(m, logits[r * cols + c]);
    m = strands_max(m, partials);

    // 2. The weights' sum and the weighted sum, hence the mean.
    double sw = 0.0, swx = 0.0;
    if (live)
        for (long long r = strand; r < rows; r += STRANDS) {
            const double w = weighted ? (double)expf(logits[r * cols + c] - m) : 1.0;
            sw += w;
            swx += w * (double)x[r * cols + c];
        }
    sw = strands_sum(sw, partials);
    const double mean = strands_sum(swx, partials) / sw;

    // 3. The weighted variance around that mean.
    double sv = 0.0;
    if (live)
        for (long long r = strand; r < rows; r += STRANDS) {
            const double w = weighted ? (double)expf(logits[r * cols + c] - m) : 1.0;
            const double d = (double)x[r * cols + c] - mean;
            sv += w * d * d;
        }
    const double var = strands_sum(sv, partials) / sw;
    if (strand == 0 && live) {
        y[c] = (float)mean;
        y[cols + c] = (float)sqrt(var < (double)eps ? (double)eps : var);
    }
}
