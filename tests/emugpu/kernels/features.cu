// Kernels that exercise one CUDA feature each, for the emulator's own tests (runtime_tests.cpp).
// Plain CUDA, NVRTC-compilable like kernels/*.cu, so they can run on a real GPU for calibration.
#include "common.cuh"

// Block reduction: shuffles down within warps, shared memory across warps. One sum per block.
extern "C" __global__ void feat_block_sum(const int* in, int* out, int n) {
    __shared__ int warp_sums[32];
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    int v = i < n ? in[i] : 0;
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(vox::FULL_MASK, v, offset);
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (blockDim.x >> 5) ? warp_sums[lane] : 0;
        for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(vox::FULL_MASK, v, offset);
        if (lane == 0) out[blockIdx.x] = v;
    }
}

// Every shuffle mode at a given width; out has 4 · blockDim.x values (idx, up, down, xor).
extern "C" __global__ void feat_shuffles(const int* in, int* out, int width, int src, int delta) {
    const int t = threadIdx.x, n = blockDim.x;
    const int v = in[t];
    out[t] = __shfl_sync(vox::FULL_MASK, v, src, width);
    out[n + t] = __shfl_up_sync(vox::FULL_MASK, v, (unsigned)delta, width);
    out[2 * n + t] = __shfl_down_sync(vox::FULL_MASK, v, (unsigned)delta, width);
    out[3 * n + t] = __shfl_xor_sync(vox::FULL_MASK, v, delta, width);
}

// Votes with the full mask and with the odd lanes only; 64-bit and float shuffles.
extern "C" __global__ void feat_votes(const int* pred, unsigned* ballots, int* any_all, double* d, float* f) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const int p = pred[threadIdx.x];
    const unsigned b = __ballot_sync(vox::FULL_MASK, p);
    const int a = __any_sync(vox::FULL_MASK, p), l = __all_sync(vox::FULL_MASK, p);
    if (lane == 0) { ballots[2 * warp] = b; any_all[2 * warp] = a; any_all[2 * warp + 1] = l; }
    if (lane & 1u) {
        const unsigned odd = 0xaaaaaaaau;
        const unsigned bo = __ballot_sync(odd, p);
        if (lane == 1) ballots[2 * warp + 1] = bo;
    }
    d[threadIdx.x] = __shfl_xor_sync(vox::FULL_MASK, (double)threadIdx.x * 1e10, 1);
    f[threadIdx.x] = __shfl_sync(vox::FULL_MASK, (float)threadIdx.x + 0.5f, 31 - (int)lane);
}

// Warp reductions of sm_80 (__reduce_*_sync) and __syncwarp.
extern "C" __global__ void feat_warp_reduce(const int* in, int* out) {
    const int v = in[threadIdx.x];
    const int s = __reduce_add_sync(vox::FULL_MASK, v);
    const int lo = __reduce_min_sync(vox::FULL_MASK, v);
    const int hi = __reduce_max_sync(vox::FULL_MASK, v);
    __syncwarp();
    if ((threadIdx.x & 31u) == 0) {
        const int w = threadIdx.x >> 5;
        out[3 * w] = s; out[3 * w + 1] = lo; out[3 * w + 2] = hi;
    }
}

// A tiled transpose through a padded 32×33 shared tile: 2-D blocks (32, 8) and a 2-D grid.
extern "C" __global__ void feat_transpose(const float* in, float* out, int rows, int cols) {
    __shared__ float tile[32][33];
    int x = blockIdx.x * 32 + threadIdx.x, y = blockIdx.y * 32 + threadIdx.y;
    for (int j = 0; j < 32; j += blockDim.y)
        if (x < cols && y + j < rows) tile[threadIdx.y + j][threadIdx.x] = in[(size_t)(y + j) * cols + x];
    __syncthreads();
    x = blockIdx.y * 32 + threadIdx.x;
    y = blockIdx.x * 32 + threadIdx.y;
    for (int j = 0; j < 32; j += blockDim.y)
        if (x < rows && y + j < cols) out[(size_t)(y + j) * rows + x] = tile[threadIdx.x][threadIdx.y + j];
}

// A histogram: shared-memory atomics per block, then global atomics.
extern "C" __global__ void feat_histogram(const unsigned* data, int n, unsigned* bins, int nbins) {
    VOX_DYNAMIC_SMEM(unsigned, local);
    for (int b = threadIdx.x; b < nbins; b += blockDim.x) local[b] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) atomicAdd(&local[data[i] % nbins], 1);  // an int literal: the pointer decides the type, as in CUDA
    __syncthreads();
    for (int b = threadIdx.x; b < nbins; b += blockDim.x) atomicAdd(&bins[b], local[b]);
}

// The other atomics, on one set of counters: [add float, max int, min int, CAS claims, exch, or, inc].
extern "C" __global__ void feat_atomics(float* fsum, int* ints, unsigned* uints) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    atomicAdd(fsum, 0.5f);
    atomicMax(&ints[0], t);
    atomicMin(&ints[1], -t);
    if (atomicCAS(&ints[2], -1, t) == -1) atomicAdd(&ints[3], 1);  // exactly one thread claims it
    atomicOr(&uints[0], 1u << (t & 31));
    atomicInc(&uints[1], 9u);  // wraps at 10
}

// Conversions: f32 → bf16 → f32 and f32 → f16 → f32, with the raw bits kept.
extern "C" __global__ void feat_convert(const float* in, unsigned short* bf_bits, float* bf_back, unsigned short* h_bits, float* h_back, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const __nv_bfloat16 b = __float2bfloat16_rn(in[i]);
    bf_bits[i] = __bfloat16_as_ushort(b);
    bf_back[i] = __bfloat162float(b);
    const __half h = __float2half_rn(in[i]);
    h_bits[i] = __half_as_ushort(h);
    h_back[i] = __half2float(h);
}

// Dynamic shared memory: reverse each block's slice through it.
extern "C" __global__ void feat_reverse(const float* in, float* out, int n) {
    VOX_DYNAMIC_SMEM(float, s);
    const int base = blockIdx.x * blockDim.x, t = threadIdx.x;
    if (base + t < n) s[t] = in[base + t];
    __syncthreads();
    const int src = blockDim.x - 1 - t;
    if (base + t < n && base + src < n) out[base + t] = s[src];
}

// Vector types: 16-byte loads and stores, 3-D blocks and grids.
extern "C" __global__ void feat_vectors(const float4* in, float4* out, uint4* ids) {
    const unsigned linear_block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const unsigned linear_thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const unsigned i = linear_block * (blockDim.x * blockDim.y * blockDim.z) + linear_thread;
    const float4 v = in[i];
    out[i] = make_float4(v.w, v.z, v.y, v.x);
    ids[i] = make_uint4(threadIdx.x, threadIdx.y, threadIdx.z, blockIdx.x + 100 * blockIdx.y + 10000 * blockIdx.z);
}
