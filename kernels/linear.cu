// The products of the compute layer: y[r, o] = Σ_k x[r, k] · w[o, k] (+ bias[o]), w `[out, in]`
// row-major in its stored precision (f32, bf16, f16), widened as it is read, f32 accumulation.
// With `accumulate`, every kernel here adds to y instead of writing it (a residual add fused into a
// projection).
#include "common.cuh"

#define LINEAR_MAX_ROWS 8

// Few-row products (the decode step's GEMV), up to three layers over the same input in one launch
// (fused q/k/v, gate/up): warp o takes output o of the layers' outputs laid end to end, streams
// that weight row once and reduces with shuffles. At most LINEAR_MAX_ROWS rows. Launch: blockDim.x
// a multiple of 32, grid.x · (blockDim.x / 32) ≥ out0 + out1 + out2; unused layers have out = 0.

// This lane's partial dot products of weight row `wo` with every row of x.
template <class T>
__device__ __forceinline__ void lane_dots(const float* __restrict__ x, const T* __restrict__ wo, int rows, int in,
                                          int lane, float* acc) {
    for (int k = lane; k < in; k += 32) {
        const float wv = vox::to_f32(wo[k]);
        for (int r = 0; r < LINEAR_MAX_ROWS; ++r) {
            if (r >= rows) break;
            acc[r] += x[(size_t)r * in + k] * wv;
        }
    }
}

// The two bf16 values in a 32-bit word (element 2i in the low half), widened exactly.
__device__ __forceinline__ float bf16_lo(unsigned w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(unsigned w) { return __uint_as_float(w & 0xffff0000u); }

// bf16 rows: 16 bytes (eight values) per lane and step when the length is a multiple of 8 (the
// released models' widths: each warp streams 512 contiguous bytes of the weight row per step), else
// two values at a time for even lengths, else one.
__device__ __forceinline__ void lane_dots(const float* __restrict__ x, const __nv_bfloat16* __restrict__ wo, int rows,
                                          int in, int lane, float* acc) {
    if (in % 8 == 0) {
        const uint4* w8 = reinterpret_cast<const uint4*>(wo);
        for (int k8 = lane; k8 < in / 8; k8 += 32) {
            const uint4 q = w8[k8];
            for (int r = 0; r < LINEAR_MAX_ROWS; ++r) {
                if (r >= rows) break;
                const float4* xr = reinterpret_cast<const float4*>(x + (size_t)r * in) + 2 * k8;
                const float4 a = xr[0], b = xr[1];
                acc[r] += a.x * bf16_lo(q.x) + a.y * bf16_hi(q.x) + a.z * bf16_lo(q.y) + a.w * bf16_hi(q.y) +
                          b.x * bf16_lo(q.z) + b.y * bf16_hi(q.z) + b.z * bf16_lo(q.w) + b.w * bf16_hi(q.w);
            }
        }
        return;
    }
    if (in % 2 != 0) {
        for (int k = lane; k < in; k += 32) {
            const float wv = __bfloat162float(wo[k]);
            for (int r = 0; r < LINEAR_MAX_ROWS; ++r) {
                if (r >= rows) break;
                acc[r] += x[(size_t)r * in + k] * wv;
            }
        }
        return;
    }
    const __nv_bfloat162* w2 = reinterpret_cast<const __nv_bfloat162*>(wo);
    for (int k2 = lane; k2 < in / 2; k2 += 32) {
        const float2 wv = __bfloat1622float2(w2[k2]);
        for (int r = 0; r < LINEAR_MAX_ROWS; ++r) {
            if (r >= rows) break;
            const float2 xv = reinterpret_cast<const float2*>(x + (size_t)r * in)[k2];
            acc[r] += xv.x * wv.x + xv.y * wv.y;
        }
    }
}

template <class T>
__device__ __forceinline__ void gemv_many(const float* __restrict__ x, const T* w0, const float* b0, float* y0,
                                          const T* w1, const float* b1, float* y1, const T* w2, const float* b2,
                                          float* y2, int rows, int in, int out0, int out1, int out2,
                                          int accumulate) {
    const int lane = threadIdx.x & 31;
    int o = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    // 1. Which layer's output this warp computes (o is uniform across the warp: whole warps leave).
    const T* w = w0;
    const float* bias = b0;
    float* y = y0;
    int out = out0;
    if (o >= out0) {
        o -= out0;
        w = w1, bias = b1, y = y1, out = out1;
        if (o >= out1) {
            o -= out1;
            w = w2, bias = b2, y = y2, out = out2;
            if (o >= out2) return;
        }
    }

    // 2. Partial dot products of this lane's columns, for every row.
    float acc[LINEAR_MAX_ROWS];
    for (int r = 0; r < LINEAR_MAX_ROWS; ++r) acc[r] = 0.0f;
    lane_dots(x, w + (size_t)o * in, rows, in, lane, acc);

    // 3. Reduce across the warp; lane 0 writes.
    for (int r = 0; r < LINEAR_MAX_ROWS; ++r) {
        if (r >= rows) break;
        const float s = vox::warp_sum(acc[r]);
        if (lane == 0) {
            float* yo = y + (size_t)r * out + o;
            *yo = (accumulate ? *yo : 0.0f) + s + (bias ? bias[o] : 0.0f);
        }
    }
}

extern "C" __global__ void linear_gemv_f32(const float* __restrict__ x, const float* w0, const float* b0, float* y0,
                                           const float* w1, const float* b1, float* y1, const float* w2,
                                           const float* b2, float* y2, int rows, int in, int out0, int out1,
                                           int out2, int accumulate) {
    gemv_many(x, w0, b0, y0, w1, b1, y1, w2, b2, y2, rows, in, out0, out1, out2, accumulate);
}
extern "C" __global__ void linear_gemv_bf16(const float* __restrict__ x, const __nv_bfloat16* w0, const float* b0,
                                            float* y0, const __nv_bfloat16* w1, const float* b1, float* y1,
                                            const __nv_bfloat16* w2, const float* b2, float* y2, int rows, int in,
                                            int out0, int out1, int out2, int accumulate) {
    gemv_many(x, w0, b0, y0, w1, b1, y1, w2, b2, y2, rows, in, out0, out1, out2, accumulate);
}
extern "C" __global__ void linear_gemv_f16(const float* __restrict__ x, const __half* w0, const float* b0, float* y0,
                                           const __half* w1, const float* b1, float* y1, const __half* w2,
                                           const float* b2, float* y2, int rows, int in, int out0, int out1,
                                           int out2, int accumulate) {
    gemv_many(x, w0, b0, y0, w1, b1, y1, w2, b2, y2, rows, in, out0, out1, out2, accumulate);
}

// Many-row products (prefill, the encoders, the codec's convolutions): 64 × 64 output tiles, each of
// the 256 threads computing a 4 × 4 block of them from registers; x and w staged through shared
// memory 16 columns at a time (transposed, so the inner loop reads four consecutive rows and outputs).
// Launch: blockDim.x = 256, grid = (⌈out/64⌉, ⌈rows/64⌉).
#define GEMM_TILE 64
#define GEMM_K 16
#define GEMM_PER 4

template <class T>
__device__ __forceinline__ void gemm(const float* __restrict__ x, const T* __restrict__ w,
                                     const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                     int out, int accumulate) {
    __shared__ float xs[GEMM_K][GEMM_TILE + 4];
    __shared__ float ws[GEMM_K][GEMM_TILE + 4];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;  // this thread's 4 outputs, 4 rows
    const int row0 = blockIdx.y * GEMM_TILE, out0 = blockIdx.x * GEMM_TILE;
    float acc[GEMM_PER][GEMM_PER];
    for (int i = 0; i < GEMM_PER; ++i)
        for (int j = 0; j < GEMM_PER; ++j) acc[i][j] = 0.0f;
    for (int k0 = 0; k0 < in; k0 += GEMM_K) {
        // 1. Stage 64 rows of x and 64 rows of w, 16 columns each (zeros past the edges): four
        //    values per thread, 16 consecutive columns of a row per 16 threads.
        for (int e = threadIdx.x; e < GEMM_TILE * GEMM_K; e += blockDim.x) {
            const int r = e / GEMM_K, k = e % GEMM_K;
            const bool in_k = k0 + k < in;
            xs[k][r] = (row0 + r < rows && in_k) ? x[(size_t)(row0 + r) * in + k0 + k] : 0.0f;
            ws[k][r] = (out0 + r < out && in_k) ? vox::to_f32(w[(size_t)(out0 + r) * in + k0 + k]) : 0.0f;
        }
        __syncthreads();
        // 2. Outer products of this thread's 4 rows and 4 outputs, column by column.
        for (int k = 0; k < GEMM_K; ++k) {
            float a[GEMM_PER], b[GEMM_PER];
            for (int i = 0; i < GEMM_PER; ++i) a[i] = xs[k][ty * GEMM_PER + i];
            for (int j = 0; j < GEMM_PER; ++j) b[j] = ws[k][tx * GEMM_PER + j];
            for (int i = 0; i < GEMM_PER; ++i)
                for (int j = 0; j < GEMM_PER; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
    // 3. Write the 4 × 4 block (with the bias), inside the edges.
    for (int i = 0; i < GEMM_PER; ++i) {
        const int r = row0 + ty * GEMM_PER + i;
        if (r >= rows) break;
        for (int j = 0; j < GEMM_PER; ++j) {
            const int o = out0 + tx * GEMM_PER + j;
            if (o >= out) continue;
            float* yo = y + (size_t)r * out + o;
            *yo = (accumulate ? *yo : 0.0f) + acc[i][j] + (bias ? bias[o] : 0.0f);
        }
    }
}

extern "C" __global__ void linear_gemm_f32(const float* __restrict__ x, const float* __restrict__ w,
                                           const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                           int out, int accumulate) {
    gemm(x, w, bias, y, rows, in, out, accumulate);
}
extern "C" __global__ void linear_gemm_bf16(const float* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                            const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                            int out, int accumulate) {
    gemm(x, w, bias, y, rows, in, out, accumulate);
}
extern "C" __global__ void linear_gemm_f16(const float* __restrict__ x, const __half* __restrict__ w,
                                           const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                           int out, int accumulate) {
    gemm(x, w, bias, y, rows, in, out, accumulate);
}

// Products with short rows (in ≤ LINEAR_SHORT_IN, e.g. a small model's hidden size): a warp per
// output would leave lanes idle, so each thread computes whole outputs (grid-stride over rows · out).
template <class T>
__device__ __forceinline__ void short_rows(const float* __restrict__ x, const T* __restrict__ w,
                                           const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                           int out, int accumulate) {
    const long long n = (long long)rows * out;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / out;
        const int o = (int)(i % out);
        const float* xr = x + r * in;
        const T* wo = w + (size_t)o * in;
        float acc = 0.0f;
        for (int k = 0; k < in; ++k) acc += xr[k] * vox::to_f32(wo[k]);
        y[i] = (accumulate ? y[i] : 0.0f) + acc + (bias ? bias[o] : 0.0f);
    }
}

extern "C" __global__ void linear_short_f32(const float* __restrict__ x, const float* __restrict__ w,
                                            const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                            int out, int accumulate) {
    short_rows(x, w, bias, y, rows, in, out, accumulate);
}
extern "C" __global__ void linear_short_bf16(const float* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                             const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                             int out, int accumulate) {
    short_rows(x, w, bias, y, rows, in, out, accumulate);
}
extern "C" __global__ void linear_short_f16(const float* __restrict__ x, const __half* __restrict__ w,
                                            const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                            int out, int accumulate) {
    short_rows(x, w, bias, y, rows, in, out, accumulate);
}
