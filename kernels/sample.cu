// The official sampling chain on the device, one block per row, giving the CPU reference's tokens
// (src/backend/sampling.rs) for the same draws: repetition penalty over the distinct seen ids,
// suppressed id ranges, then greedy argmax, or temperature, top-k (ties kept), top-p (ascending by
// value, ties in id order, the most likely always kept), softmax and the draw `u` (made on the host
// from the row's SplitMix64 generator). The sums that decide a token run in the reference's blocked
// order (256 chunks, a thread each), so the probabilities and the draw are the CPU's bit for bit
// where expf is.
//
// Launch: grid.x = rows, blockDim.x a multiple of 32 (≤ 1024), dynamic shared memory
// (cols + 2·pow2) · 4 bytes where pow2 is cols rounded up to a power of two; with the static shared
// memory (≈ 1.3 KiB) it must fit the 48 KiB a launch gets without opting in (cols ≤ 3584).
#include "common.cuh"

namespace {
// The per-row knobs (a table of rows × SAMPLE_PARAMS floats/ints, see sample_f32).
struct RowParams {
    float penalty, temperature, top_p, u;
    int do_sample, top_k, seen_at, seen_len, ranges_at, ranges_len;
};

__device__ __forceinline__ RowParams row_params(const int* p) {
    RowParams r;
    r.penalty = __int_as_float(p[0]);
    r.temperature = __int_as_float(p[1]);
    r.top_p = __int_as_float(p[2]);
    r.u = __int_as_float(p[3]);
    r.do_sample = p[4];
    r.top_k = p[5];
    r.seen_at = p[6];
    r.seen_len = p[7];
    r.ranges_at = p[8];
    r.ranges_len = p[9];
    return r;
}

// Chunks of the blocked sums (SUM_CHUNKS in src/backend/sampling.rs).
enum : int { SUM_CHUNKS = 256 };

// The largest of l[0..n) over the block (every thread gets it).
__device__ __forceinline__ float block_max_row(const float* l, int n, float* partials) {
    float m = vox::neg_inf();
    for (int i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, l[i]);
    return vox::block_max(m, partials);
}

// The blocked sum of value(0..n): each chunk of `size` values summed in order from 0 (a thread per
// chunk), then the chunks' sums in order, leaving prefix[j] = the sum of the chunks before j (the
// start of chunk j's running sum). Every thread gets the total.
template <class F>
__device__ __forceinline__ float blocked_prefix(int n, int size, F value, float* prefix) {
    for (int j = threadIdx.x; j < SUM_CHUNKS; j += blockDim.x) {
        float s = 0.0f;
        for (int i = j * size; i < n && i < (j + 1) * size; ++i) s += value(i);
        prefix[j + 1] = s;  // the chunk's own sum, for now
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float run = 0.0f;
        prefix[0] = 0.0f;
        for (int j = 0; j < SUM_CHUNKS; ++j) {
            run += prefix[j + 1];
            prefix[j + 1] = run;
        }
    }
    __syncthreads();
    const float total = prefix[SUM_CHUNKS];
    // Every thread has read the total before any thread leaves: the next call's first pass
    // overwrites prefix[SUM_CHUNKS] (the last chunk's own sum) at once.
    __syncthreads();
    return total;
}

// The smallest (MAX = false) or largest int over the block, to every thread.
template <bool MAX>
__device__ __forceinline__ int block_extreme_int(int v, int* ints) {
    const auto pick = [](int a, int b) { return MAX ? (a > b ? a : b) : (a < b ? a : b); };
    for (int o = 16; o > 0; o >>= 1) v = pick(v, __shfl_xor_sync(vox::FULL_MASK, v, o));
    if ((threadIdx.x & 31) == 0) ints[threadIdx.x >> 5] = v;
    __syncthreads();
    v = ints[0];
    for (int w = 1; w < (int)(blockDim.x >> 5); ++w) v = pick(v, ints[w]);
    __syncthreads();
    return v;
}

// A float's place in IEEE 754 total order as an int (Rust's f32::total_cmp, which the CPU sorts
// with: −0.0 before +0.0, NaNs ordered by sign and payload).
__device__ __forceinline__ int total_key(float v) {
    const int b = __float_as_int(v);
    return b ^ (int)((unsigned)(b >> 31) >> 1);
}

// a before b in ascending (total order of the value, index) order.
__device__ __forceinline__ bool before(float va, int ia, float vb, int ib) {
    const int ka = total_key(va), kb = total_key(vb);
    return ka < kb || (ka == kb && ia < ib);
}
}  // namespace

extern "C" __global__ void sample_f32(const float* __restrict__ logits, const int* __restrict__ params,
                                      const unsigned* __restrict__ seen, const unsigned* __restrict__ ranges,
                                      unsigned* __restrict__ ids, int cols, int pow2) {
    VOX_DYNAMIC_SMEM(float, l);  // [cols] the row as it is processed
    float* sv = l + cols;        // [pow2] values, sorted
    int* si = reinterpret_cast<int*>(sv + pow2);  // [pow2] their ids
    __shared__ float partials[32];
    __shared__ float prefix[SUM_CHUNKS + 1];
    __shared__ int ints[32];
    unsigned char* marks = reinterpret_cast<unsigned char*>(sv);  // [cols] top-p's drops (after the sort)
    const RowParams p = row_params(params + blockIdx.x * 10);
    const float* row = logits + (size_t)blockIdx.x * cols;

    // 1. The row, penalised once per distinct seen id, with the barred ranges at −∞.
    for (int i = threadIdx.x; i < cols; i += blockDim.x) l[i] = row[i];
    __syncthreads();
    if (p.penalty != 1.0f) {
        for (int k = threadIdx.x; k < p.seen_len; k += blockDim.x) {
            const unsigned id = seen[p.seen_at + k];
            if (id < (unsigned)cols) l[id] = l[id] < 0.0f ? l[id] * p.penalty : l[id] / p.penalty;
        }
        __syncthreads();
    }
    for (int r = 0; r < p.ranges_len; ++r) {
        // Clipped to the row first: `lo + threadIdx.x` must not wrap past u32::MAX to small ids.
        unsigned hi = ranges[2 * (p.ranges_at + r) + 1], lo = ranges[2 * (p.ranges_at + r)];
        if (hi > (unsigned)cols) hi = (unsigned)cols;
        if (lo > hi) lo = hi;
        for (unsigned i = lo + threadIdx.x; i < hi; i += blockDim.x) l[i] = vox::neg_inf();
    }
    __syncthreads();

    // 2. Greedy: the first largest value.
    if (!p.do_sample) {
        if (threadIdx.x == 0) {
            int best = 0;
            for (int i = 1; i < cols; ++i)
                if (l[i] > l[best]) best = i;
            ids[blockIdx.x] = (unsigned)best;
        }
        return;
    }

    // 3. Temperature.
    if (p.temperature != 1.0f) {
        for (int i = threadIdx.x; i < cols; i += blockDim.x) l[i] /= p.temperature;
        __syncthreads();
    }

    // 4. Top-k and top-p need the values in ascending (value, id) order: a bitonic sort, padded
    //    past the row with the last value of the total order (a NaN of the largest payload: padding
    //    sorts after every value of the row, +∞ and NaNs included, as its ids are past the row's).
    const bool top_k = p.top_k > 0 && p.top_k < cols, top_p = p.top_p < 1.0f;
    if (top_k || top_p) {
        for (int i = threadIdx.x; i < pow2; i += blockDim.x) {
            sv[i] = i < cols ? l[i] : __int_as_float(0x7fffffff);
            si[i] = i;
        }
        __syncthreads();
        for (int k = 2; k <= pow2; k <<= 1) {
            for (int j = k >> 1; j > 0; j >>= 1) {
                for (int i = threadIdx.x; i < pow2; i += blockDim.x) {
                    const int o = i ^ j;
                    if (o > i) {
                        const bool ascending = (i & k) == 0;
                        if (before(sv[o], si[o], sv[i], si[i]) == ascending) {
                            const float tv = sv[i];
                            sv[i] = sv[o];
                            sv[o] = tv;
                            const int ti = si[i];
                            si[i] = si[o];
                            si[o] = ti;
                        }
                    }
                }
                __syncthreads();
            }
        }
    }
    if (top_k) {
        // Keep every value ≥ the k-th largest (ties kept). The sorted order stays valid: only the
        // smallest values become −∞, and their order no longer matters (their probability is 0).
        const float kth = sv[cols - p.top_k];
        for (int i = threadIdx.x; i < cols; i += blockDim.x)
            if (l[i] < kth) l[i] = vox::neg_inf();
        __syncthreads();
    }

    // 5. Softmax, top-p and the draw, with every sum in the reference's blocked order
    //    (sampling.rs: SUM_CHUNKS chunks of ⌈cols/SUM_CHUNKS⌉ values, each summed in order from 0,
    //    the chunks' sums added in order), so the values that decide the token are the CPU's.
    const int size = (cols + SUM_CHUNKS - 1) / SUM_CHUNKS;
    float max = block_max_row(l, cols, partials);
    if (top_p) {
        // Drop the least likely whose cumulative mass in ascending order stays ≤ 1 − top_p,
        // keeping the last (most likely) one. The probabilities are those before any drop.
        const float sum = blocked_prefix(cols, size, [&](int i) { return expf(l[i] - max); }, prefix);
        blocked_prefix(cols, size, [&](int rank) { return expf(l[si[rank]] - max) / sum; }, prefix);
        const float drop = 1.0f - p.top_p;
        for (int j = threadIdx.x; j < SUM_CHUNKS; j += blockDim.x) {
            float cum = prefix[j];
            for (int rank = j * size; rank < cols && rank < (j + 1) * size; ++rank) {
                cum += expf(l[si[rank]] - max) / sum;
                marks[rank] = cum <= drop && rank + 1 < cols;
            }
        }
        __syncthreads();
        for (int rank = threadIdx.x; rank < cols; rank += blockDim.x)
            if (marks[rank]) l[si[rank]] = vox::neg_inf();
        __syncthreads();
        max = block_max_row(l, cols, partials);
    }
    // The draw: the first id whose cumulative probability passes u; past the end, the last id with
    // any probability, or the first largest when none has.
    const float sum = blocked_prefix(cols, size, [&](int i) { return expf(l[i] - max); }, prefix);
    blocked_prefix(cols, size, [&](int i) { return expf(l[i] - max) / sum; }, prefix);
    int first = cols, last = -1;
    for (int j = threadIdx.x; j < SUM_CHUNKS; j += blockDim.x) {
        float cum = prefix[j];
        for (int i = j * size; i < cols && i < (j + 1) * size; ++i) {
            const float q = expf(l[i] - max) / sum;
            cum += q;
            if (q > 0.0f) {
                last = i;
                if (first == cols && p.u < cum) first = i;
            }
        }
    }
    first = block_extreme_int<false>(first, ints);
    last = block_extreme_int<true>(last, ints);
    if (threadIdx.x == 0) {
        int chosen = first < cols ? first : last;
        if (chosen < 0) {
            // No probability anywhere (NaN): the first largest, as the CPU's argmax of the probabilities.
            chosen = 0;
            float best = expf(l[0] - max) / sum;
            for (int i = 1; i < cols; ++i) {
                const float q = expf(l[i] - max) / sum;
                if (q > best) { best = q; chosen = i; }
            }
        }
        ids[blockIdx.x] = (unsigned)chosen;
    }
}
