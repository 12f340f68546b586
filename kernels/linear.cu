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

// The same few-row product for weights of any stored type and any `in` (one weight element per lane
// and step). Launch as linear_bf16_f32.
template <class T>
__device__ __forceinline__ void gemv(const float* __restrict__ x, const T* __restrict__ w,
                                     const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                     int out) {
    const int lane = threadIdx.x & 31;
    const int o = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (o >= out) return;  // whole warps leave together

    // 1. Partial dot products of this lane's columns, for every row.
    float acc[LINEAR_MAX_ROWS];
    for (int r = 0; r < LINEAR_MAX_ROWS; ++r) acc[r] = 0.0f;
    const T* wo = w + (size_t)o * in;
    for (int k = lane; k < in; k += 32) {
        const float wv = vox::to_f32(wo[k]);
        for (int r = 0; r < LINEAR_MAX_ROWS; ++r) {
            if (r >= rows) break;
            acc[r] += x[(size_t)r * in + k] * wv;
        }
    }

    // 2. Reduce across the warp; lane 0 writes.
    for (int r = 0; r < LINEAR_MAX_ROWS; ++r) {
        if (r >= rows) break;
        const float s = vox::warp_sum(acc[r]);
        if (lane == 0) y[(size_t)r * out + o] = s + (bias ? bias[o] : 0.0f);
    }
}

extern "C" __global__ void linear_gemv_f32(const float* __restrict__ x, const float* __restrict__ w,
                                           const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                           int out) {
    gemv(x, w, bias, y, rows, in, out);
}
extern "C" __global__ void linear_gemv_bf16(const float* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                            const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                            int out) {
    gemv(x, w, bias, y, rows, in, out);
}
extern "C" __global__ void linear_gemv_f16(const float* __restrict__ x, const __half* __restrict__ w,
                                           const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                           int out) {
    gemv(x, w, bias, y, rows, in, out);
}

// Many-row products (prefill, the encoders, the codec's convolutions): 16 × 16 output tiles, one
// output per thread, the inputs staged through shared memory 16 columns at a time.
// Launch: blockDim.x = 256, grid = (⌈out/16⌉, ⌈rows/16⌉).
#define GEMM_TILE 16

template <class T>
__device__ __forceinline__ void gemm(const float* __restrict__ x, const T* __restrict__ w,
                                     const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                     int out) {
    __shared__ float xs[GEMM_TILE][GEMM_TILE + 1];
    __shared__ float ws[GEMM_TILE][GEMM_TILE + 1];
    const int tx = threadIdx.x % GEMM_TILE, ty = threadIdx.x / GEMM_TILE;
    const int row0 = blockIdx.y * GEMM_TILE, out0 = blockIdx.x * GEMM_TILE;
    float acc = 0.0f;
    for (int k0 = 0; k0 < in; k0 += GEMM_TILE) {
        // 1. Stage a 16 × 16 block of x (rows) and of w (outputs), zero past the edges.
        const int k = k0 + tx;
        xs[ty][tx] = (row0 + ty < rows && k < in) ? x[(size_t)(row0 + ty) * in + k] : 0.0f;
        ws[ty][tx] = (out0 + ty < out && k < in) ? vox::to_f32(w[(size_t)(out0 + ty) * in + k]) : 0.0f;
        __syncthreads();
        // 2. This thread's output takes the block's 16 products.
        for (int j = 0; j < GEMM_TILE; ++j) acc += xs[ty][j] * ws[tx][j];
        __syncthreads();
    }
    const int r = row0 + ty, o = out0 + tx;
    if (r < rows && o < out) y[(size_t)r * out + o] = acc + (bias ? bias[o] : 0.0f);
}

extern "C" __global__ void linear_gemm_f32(const float* __restrict__ x, const float* __restrict__ w,
                                           const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                           int out) {
    gemm(x, w, bias, y, rows, in, out);
}
extern "C" __global__ void linear_gemm_bf16(const float* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                            const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                            int out) {
    gemm(x, w, bias, y, rows, in, out);
}
extern "C" __global__ void linear_gemm_f16(const float* __restrict__ x, const __half* __restrict__ w,
                                           const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                           int out) {
    gemm(x, w, bias, y, rows, in, out);
}

// Products with short rows (in ≤ LINEAR_SHORT_IN, e.g. a small model's hidden size): a warp per
// output would leave lanes idle, so each thread computes whole outputs (grid-stride over rows · out).
template <class T>
__device__ __forceinline__ void short_rows(const float* __restrict__ x, const T* __restrict__ w,
                                           const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                           int out) {
    const long long n = (long long)rows * out;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / out;
        const int o = (int)(i % out);
        const float* xr = x + r * in;
        const T* wo = w + (size_t)o * in;
        float acc = 0.0f;
        for (int k = 0; k < in; ++k) acc += xr[k] * vox::to_f32(wo[k]);
        y[i] = acc + (bias ? bias[o] : 0.0f);
    }
}

extern "C" __global__ void linear_short_f32(const float* __restrict__ x, const float* __restrict__ w,
                                            const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                            int out) {
    short_rows(x, w, bias, y, rows, in, out);
}
extern "C" __global__ void linear_short_bf16(const float* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                             const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                             int out) {
    short_rows(x, w, bias, y, rows, in, out);
}
extern "C" __global__ void linear_short_f16(const float* __restrict__ x, const __half* __restrict__ w,
                                            const float* __restrict__ bias, float* __restrict__ y, int rows, int in,
                                            int out) {
    short_rows(x, w, bias, y, rows, in, out);
}
