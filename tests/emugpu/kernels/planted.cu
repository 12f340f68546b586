// Kernels with planted bugs that the emulator must catch (runtime_tests.cpp); not for the GPU.
#include "common.cuh"

// The barrier between writing and reading shared memory is missing.
extern "C" __global__ void bug_missing_sync(const float* in, float* out) {
    __shared__ float s[256];
    s[threadIdx.x] = in[threadIdx.x];
    // __syncthreads();  ← the bug
    out[threadIdx.x] = s[blockDim.x - 1 - threadIdx.x];
}

// The upper half-warp leaves before a full-mask shuffle.
extern "C" __global__ void bug_shuffle_exited_lanes(const int* in, int* out) {
    if ((threadIdx.x & 31u) >= 16) return;
    out[threadIdx.x] = __shfl_down_sync(vox::FULL_MASK, in[threadIdx.x], 1);
}

// A full-mask shuffle in a block of 48 threads: the second warp has only 16 lanes.
extern "C" __global__ void bug_shuffle_absent_lanes(const int* in, int* out) {
    out[threadIdx.x] = __shfl_xor_sync(vox::FULL_MASK, in[threadIdx.x], 1);
}

// The lower half-warp shuffles among itself but reads lane 20, outside its mask.
extern "C" __global__ void bug_shuffle_outside_mask(const int* in, int* out) {
    if ((threadIdx.x & 31u) < 16) out[threadIdx.x] = __shfl_sync(0x0000ffffu, in[threadIdx.x], 20);
}

// Half the block returns early, the other half waits at a barrier.
extern "C" __global__ void bug_divergent_barrier(float* out) {
    if (threadIdx.x >= 32) return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}

// Lanes 0–15 wait at a barrier for lanes 16–31, which wait in a shuffle for lanes 0–15.
extern "C" __global__ void bug_deadlock(int* out) {
    int v = threadIdx.x;
    if ((threadIdx.x & 31u) < 16) __syncthreads();
    else v = __shfl_xor_sync(vox::FULL_MASK, v, 1);
    out[threadIdx.x] = v;
}

// Shared memory read before anything wrote it.
extern "C" __global__ void bug_uninitialised_shared(float* out) {
    __shared__ float s[64];
    out[threadIdx.x] = s[threadIdx.x];
}

// One past the end.
extern "C" __global__ void bug_out_of_bounds(float* out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) out[i] = 1.0f;  // should be i < n
}
