// Greedy selection: ids[r] = the first index of the largest value of row r (NaN never wins, as in
// the CPU reference, except that a NaN at index 0 is kept: nothing compares greater than it).
// One block per row; blockDim.x a multiple of 32, at most 1024.
#include "common.cuh"

namespace {
// (value, index) with the larger value winning, and on equal values the lower index.
__device__ __forceinline__ void better(float& v, int& i, float ov, int oi) {
    if (ov > v || (ov == v && oi < i)) { v = ov; i = oi; }
}
}  // namespace

extern "C" __global__ void argmax_f32(const float* __restrict__ logits, unsigned* __restrict__ ids, int cols) {
    __shared__ float best_v[32];
    __shared__ int best_i[32];
    const float* row = logits + (size_t)blockIdx.x * cols;
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;

    // 1. Each thread's best over its strided columns (NaN skipped: `>` is false for it).
    float v = vox::neg_inf();
    int i = cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) better(v, i, row[c], c);

    // 2. Over the warp, then over the warps' winners.
    for (int offset = 16; offset > 0; offset >>= 1)
        better(v, i, __shfl_xor_sync(vox::FULL_MASK, v, offset), __shfl_xor_sync(vox::FULL_MASK, i, offset));
    if (lane == 0) { best_v[warp] = v; best_i[warp] = i; }
    __syncthreads();
    if (warp == 0) {
        const unsigned warps = blockDim.x >> 5;
        v = lane < warps ? best_v[lane] : vox::neg_inf();
        i = lane < warps ? best_i[lane] : cols;
        for (int offset = 16; offset > 0; offset >>= 1)
            better(v, i, __shfl_xor_sync(vox::FULL_MASK, v, offset), __shfl_xor_sync(vox::FULL_MASK, i, offset));
        if (lane == 0) ids[blockIdx.x] = (i >= cols || row[0] != row[0]) ? 0u : (unsigned)i;
    }
}
