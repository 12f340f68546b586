// The one attention kernel: variable-length sequences, keys and values from a paged cache or from
// the call's own rows, grouped-query heads read in place, causal / sliding-window / full masks.
//
// One block per (query row, head): grid.x = rows · heads, blockDim.x a multiple of 32, dynamic shared
// memory = head_dim floats. meta holds 4 ints per query row: its position i in its sequence, the
// sequence's key count, the base (rows mode: the sequence's first row of k/v; cache mode: its first
// entry in `tables`) and, in cache mode, the sequence's first held block (a sliding window drops
// blocks from the front). `tables` holds device addresses of cache blocks laid out
// [layers][k, v][block_tokens][width]; rows mode passes tables = 0. `scores` has max_keys floats per
// (row, head). Each output is a plain softmax-weighted sum over the keys in order, as on the CPU.
#include "common.cuh"

namespace {
enum : int { MASK_CAUSAL = 0, MASK_WINDOW = 1, MASK_FULL = 2 };

struct Keys {
    const float* k;
    const float* v;
    const unsigned long long* tables;
    long long layer_k, layer_v;
    int base, first, width, block_tokens, offset;

    __device__ __forceinline__ const float* row(const float* rows, long long layer, int j) const {
        if (!tables) return rows + (long long)(base + j) * width + offset;
        const float* block = reinterpret_cast<const float*>(tables[base + j / block_tokens - first]);
        return block + layer + (long long)(j % block_tokens) * width + offset;
    }
    __device__ __forceinline__ const float* key(int j) const { return row(k, layer_k, j); }
    __device__ __forceinline__ const float* value(int j) const { return row(v, layer_v, j); }
};

// Row `row`'s keys for head `head` (meta's 4 ints: position, key count, base, first held block).
__device__ __forceinline__ Keys row_keys(const float* k, const float* v, const unsigned long long* tables,
                                         const int* meta, int row, int head, int heads, int kv_heads, int head_dim,
                                         long long layer_k, long long layer_v, int width, int block_tokens) {
    return Keys{k, v, tables, layer_k, layer_v, meta[4 * row + 2], meta[4 * row + 3], width, block_tokens,
                (head / (heads / kv_heads)) * head_dim};
}

// The keys [lo, hi) that position i of a sequence of n keys sees under the mask.
__device__ __forceinline__ void key_range(int mask, int window, int i, int n, int& lo, int& hi) {
    lo = 0, hi = i + 1;
    if (mask == MASK_WINDOW) lo = i + 1 - window > 0 ? i + 1 - window : 0;
    if (mask == MASK_FULL) hi = n;
}

// q's head (q_head) into shared qs; the scores q·k · scale of keys [a, b), a warp per key (lanes
// across the head, reading the key row coalesced); then exp(s − m) into sc[0, b − a) with m their
// maximum (written to *max). Returns the sum of the exps (an empty range: m = −∞, sum 0). Every
// thread gets both; the last barrier publishes sc.
__device__ __forceinline__ float softmax_part(const float* q_head, float* qs, const Keys& keys, int head_dim, int a,
                                              int b, float scale, float* sc, float* partials, float* max) {
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) qs[d] = q_head[d];
    __syncthreads();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    float m = vox::neg_inf();
    for (int j = a + warp; j < b; j += warps) {
        const float* kr = keys.key(j);
        float s = 0.0f;
        for (int d = lane; d < head_dim; d += 32) s += qs[d] * kr[d];
        s = vox::warp_sum(s) * scale;
        if (lane == 0) sc[j - a] = s;
        m = fmaxf(m, s);
    }
    m = vox::block_max(m, partials);  // (its barrier also publishes every score)
    float sum = 0.0f;
    for (int j = a + threadIdx.x; j < b; j += blockDim.x) {
        const float p = expf(sc[j - a] - m);
        sc[j - a] = p;
        sum += p;
    }
    *max = m;
    return vox::block_sum(sum, partials);
}
}  // namespace

extern "C" __global__ void attention_f32(const float* __restrict__ q, float* __restrict__ out,
                                         const float* __restrict__ k, const float* __restrict__ v,
                                         const unsigned long long* __restrict__ tables, const int* __restrict__ meta,
                                         float* __restrict__ scores, int heads, int kv_heads, int head_dim, int mask,
                                         int window, long long layer_k, long long layer_v, int width,
                                         int block_tokens, long long max_keys, float scale) {
    VOX_DYNAMIC_SMEM(float, qs);
    __shared__ float partials[32];
    const long long idx = blockIdx.x;
    const int row = (int)(idx / heads), head = (int)(idx % heads);
    const Keys keys =
        row_keys(k, v, tables, meta, row, head, heads, kv_heads, head_dim, layer_k, layer_v, width, block_tokens);

    // 1. The keys this row sees.
    int lo, hi;
    key_range(mask, window, meta[4 * row], meta[4 * row + 1], lo, hi);

    // 2. exp(s − max) of the scores, and their sum.
    float* sc = scores + idx * max_keys;
    float m;
    const float sum = softmax_part(q + idx * head_dim, qs, keys, head_dim, lo, hi, scale, sc, partials, &m);

    // 3. The weights p / sum (as the CPU forms them), once per key.
    for (int j = lo + threadIdx.x; j < hi; j += blockDim.x) sc[j - lo] /= sum;
    __syncthreads();

    // 4. The weighted sum of the values, one output column per thread (rows read coalesced).
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float o = 0.0f;
        for (int j = lo; j < hi; ++j) o += sc[j - lo] * keys.value(j)[d];
        out[idx * head_dim + d] = o;
    }
}

// Long key ranges (decode over a long context: few (row, head) pairs, many keys) in parts of
// `chunk` keys ("split-K"): block (row, head, part) writes its part's maximum score m, the sum of
// exp(s − m) and the exp-weighted sum of the values to `parts` ([head_dim + 2] floats each);
// attention_combine_f32 rescales and adds the parts. grid.x = rows · heads · splits; blockDim.x a
// multiple of 32; dynamic shared memory = (head_dim + chunk) floats.
extern "C" __global__ void attention_split_f32(const float* __restrict__ q, float* __restrict__ parts,
                                               const float* __restrict__ k, const float* __restrict__ v,
                                               const unsigned long long* __restrict__ tables,
                                               const int* __restrict__ meta, int heads, int kv_heads, int head_dim,
                                               int mask, int window, long long layer_k, long long layer_v, int width,
                                               int block_tokens, int splits, int chunk, float scale) {
    VOX_DYNAMIC_SMEM(float, qs);
    float* sc = qs + head_dim;  // [chunk]
    __shared__ float partials[32];
    const long long idx = blockIdx.x / splits;  // (row, head)
    const int part = (int)(blockIdx.x % splits);
    const int row = (int)(idx / heads), head = (int)(idx % heads);
    const Keys keys =
        row_keys(k, v, tables, meta, row, head, heads, kv_heads, head_dim, layer_k, layer_v, width, block_tokens);
    float* out = parts + ((long long)idx * splits + part) * (head_dim + 2);

    // 1. This part's keys: [a, b) of the row's range.
    int lo, hi;
    key_range(mask, window, meta[4 * row], meta[4 * row + 1], lo, hi);
    const int a = lo + part * chunk, b = hi < a + chunk ? hi : a + chunk;

    // 2. exp(s − m) of this part's scores and their sum (an empty part: m = −∞, sum 0, values 0).
    float m;
    const float sum = softmax_part(q + idx * head_dim, qs, keys, head_dim, a, b, scale, sc, partials, &m);

    // 3. The exp-weighted sum of this part's values.
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float o = 0.0f;
        for (int j = a; j < b; ++j) o += sc[j - a] * keys.value(j)[d];
        out[d] = o;
    }
    if (threadIdx.x == 0) {
        out[head_dim] = m;
        out[head_dim + 1] = sum;
    }
}

// Adds the parts of attention_split_f32: out = Σ acc_s · e^(m_s − M) / Σ l_s · e^(m_s − M), M the
// largest m_s. grid.x = rows · heads; a thread per output column.
extern "C" __global__ void attention_combine_f32(const float* __restrict__ parts, float* __restrict__ out,
                                                 int head_dim, int splits) {
    const long long idx = blockIdx.x;
    const float* p = parts + idx * splits * (head_dim + 2);
    float big = vox::neg_inf();
    for (int s = 0; s < splits; ++s) big = fmaxf(big, p[s * (head_dim + 2) + head_dim]);
    float total = 0.0f;
    for (int s = 0; s < splits; ++s) {
        const float ms = p[s * (head_dim + 2) + head_dim];
        if (ms != vox::neg_inf()) total += p[s * (head_dim + 2) + head_dim + 1] * expf(ms - big);
    }
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float o = 0.0f;
        for (int s = 0; s < splits; ++s) {
            const float ms = p[s * (head_dim + 2) + head_dim];
            if (ms != vox::neg_inf()) o += p[s * (head_dim + 2) + d] * expf(ms - big);
        }
        out[idx * head_dim + d] = o / total;
    }
}

// Writes the call's key and value rows into the cache: row r goes to position meta[4r] of its
// sequence, whose block table starts at tables[meta[4r + 2]] (first held block meta[4r + 3]) — the
// layout attention_f32 reads. n = rows · width.
extern "C" __global__ void kv_write_f32(const float* __restrict__ k, const float* __restrict__ v,
                                        const unsigned long long* __restrict__ tables, const int* __restrict__ meta,
                                        long long layer_k, long long layer_v, int width, int block_tokens,
                                        long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / width;
        const int c = (int)(i % width);
        const int pos = meta[4 * r], base = meta[4 * r + 2], first = meta[4 * r + 3];
        float* block = reinterpret_cast<float*>(tables[base + pos / block_tokens - first]);
        const long long at = (long long)(pos % block_tokens) * width + c;
        block[layer_k + at] = k[i];
        block[layer_v + at] = v[i];
    }
}
