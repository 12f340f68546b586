// Row movement over `[rows, cols]` f32 tensors: gathers, scatters, column blocks, 4-D permutations
// and embedding lookups. One thread per output value (grid-stride loops over n = output rows · cols).
#include "common.cuh"

// y[i] = x[rows[i]], or a zero row where rows[i] < 0.
extern "C" __global__ void gather_rows_f32(const float* __restrict__ x, const int* __restrict__ rows,
                                           float* __restrict__ y, int cols, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const int r = rows[i / cols];
        y[i] = r < 0 ? 0.0f : x[(long long)r * cols + i % cols];
    }
}

// dst[at[i]] = src[i] (add = 0) or dst[at[i]] += src[i] (add = 1). The rows of `at` are distinct
// (the host splits a call with repeated rows, which would race).
extern "C" __global__ void scatter_rows_f32(float* __restrict__ dst, const int* __restrict__ at,
                                            const float* __restrict__ src, int cols, int add, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float* d = dst + (long long)at[i / cols] * cols + i % cols;
        *d = add ? *d + src[i] : src[i];
    }
}

// A block of columns: y[r, y_start + j] = x[r, x_start + j] for j < width, every row (slice_cols,
// and one part of concat_cols). n = rows · width.
extern "C" __global__ void copy_cols_f32(const float* __restrict__ x, float* __restrict__ y, int x_cols, int x_start,
                                         int y_cols, int y_start, int width, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / width;
        const int j = (int)(i % width);
        y[r * y_cols + y_start + j] = x[r * x_cols + x_start + j];
    }
}

// y = x with its 4 dims reordered: out index (a, b, c, d) over out_dims reads
// x[a·s0 + b·s1 + c·s2 + d·s3], where s_k is the input stride of the dim that lands at k.
extern "C" __global__ void permute4_f32(const float* __restrict__ x, float* __restrict__ y, int o1, int o2,
                                        int o3, long long s0, long long s1, long long s2, long long s3,
                                        long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        long long rest = i;
        const long long d = rest % o3; rest /= o3;
        const long long c = rest % o2; rest /= o2;
        const long long b = rest % o1;
        const long long a = rest / o1;
        y[i] = x[a * s0 + b * s1 + c * s2 + d * s3];
    }
}

// Row i of y is the sum of table rows ids[i·per_row ..][..per_row], added in order (per_row = 1: a
// plain lookup). Ids were range-checked by the host.
template <class T>
__device__ __forceinline__ void embedding_sum(const T* __restrict__ table, const unsigned* __restrict__ ids,
                                              float* __restrict__ y, int dim, int per_row, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long row = i / dim, col = i % dim;
        float acc = 0.0f;
        for (int k = 0; k < per_row; ++k) acc += vox::to_f32(table[(long long)ids[row * per_row + k] * dim + col]);
        y[i] = acc;
    }
}

extern "C" __global__ void embedding_sum_f32(const float* __restrict__ table, const unsigned* __restrict__ ids,
                                             float* __restrict__ y, int dim, int per_row, long long n) {
    embedding_sum(table, ids, y, dim, per_row, n);
}
extern "C" __global__ void embedding_sum_bf16(const __nv_bfloat16* __restrict__ table, const unsigned* __restrict__ ids,
                                              float* __restrict__ y, int dim, int per_row, long long n) {
    embedding_sum(table, ids, y, dim, per_row, n);
}
extern "C" __global__ void embedding_sum_f16(const __half* __restrict__ table, const unsigned* __restrict__ ids,
                                             float* __restrict__ y, int dim, int per_row, long long n) {
    embedding_sum(table, ids, y, dim, per_row, n);
}
