// Element-wise ops over n values; any 1-D launch covers n (grid-stride loops).
#include "common.cuh"

// x += y
extern "C" __global__ void add_f32(float* __restrict__ x, const float* __restrict__ y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        x[i] += y[i];
}

// gate = silu(gate) · up
extern "C" __global__ void silu_mul_f32(float* __restrict__ gate, const float* __restrict__ up, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

// Widening and narrowing copies (round to nearest even, NaN kept).
extern "C" __global__ void bf16_to_f32(const __nv_bfloat16* __restrict__ x, float* __restrict__ y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = __bfloat162float(x[i]);
}

extern "C" __global__ void f32_to_bf16(const float* __restrict__ x, __nv_bfloat16* __restrict__ y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16(x[i]);
}

extern "C" __global__ void f16_to_f32(const __half* __restrict__ x, float* __restrict__ y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = __half2float(x[i]);
}

// x = silu(x)
extern "C" __global__ void silu_f32(float* __restrict__ x, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const float v = x[i];
        x[i] = v / (1.0f + expf(-v));
    }
}

// x = x · ½(1 + erf(x/√2)), the exact GELU.
extern "C" __global__ void gelu_erf_f32(float* __restrict__ x, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const float v = x[i];
        x[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    }
}

// x = clamp(x, lo, hi)
extern "C" __global__ void clamp_f32(float* __restrict__ x, float lo, float hi, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        x[i] = fminf(fmaxf(x[i], lo), hi);
}

// x = 1 / (1 + e^−x)
extern "C" __global__ void sigmoid_f32(float* __restrict__ x, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        x[i] = 1.0f / (1.0f + expf(-x[i]));
}

// x = tanh(x)
extern "C" __global__ void tanh_f32(float* __restrict__ x, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        x[i] = tanhf(x[i]);
}

// ELU (α = 1): x where x > 0, else e^x − 1 (expm1f: accurate near 0; NaN stays NaN).
extern "C" __global__ void elu_f32(float* __restrict__ x, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const float v = x[i];
        x[i] = v > 0.0f ? v : expm1f(v);
    }
}

// Per-channel ops over rows of `cols`: x[i] += b[i mod cols]
extern "C" __global__ void add_bias_f32(float* __restrict__ x, const float* __restrict__ b, int cols, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        x[i] += b[i % cols];
}

// x[i] += scale[i mod cols] · y[i] (layer scales)
extern "C" __global__ void add_scaled_f32(float* __restrict__ x, const float* __restrict__ y,
                                          const float* __restrict__ scale, int cols, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        x[i] += scale[i % cols] * y[i];
}

// x[i] *= v[i mod cols]: a per-channel gate row (squeeze-excitation), v a [1, cols] tensor.
extern "C" __global__ void mul_row_f32(float* __restrict__ x, const float* __restrict__ v, int cols, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        x[i] *= v[i % cols];
}

// SnakeBeta: x += sin²(x · α[c]) · inv_beta[c]
extern "C" __global__ void snake_beta_f32(float* __restrict__ x, const float* __restrict__ alpha,
                                          const float* __restrict__ inv_beta, int cols, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const int c = (int)(i % cols);
        const float v = x[i], s = vox::sin_fast(v * alpha[c]);
        x[i] = v + s * s * inv_beta[c];
    }
}

// NeoX RoPE of every head of every row: for row r at positions[r], pair (j, j + half) of each head
// is rotated by positions[r] · inv_freq[j]. One thread per (row, head, j); n = rows · heads · half.
extern "C" __global__ void rope_f32(float* __restrict__ x, const int* __restrict__ positions,
                                    const float* __restrict__ inv_freq, int cols, int half, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const int j = (int)(i % half);
        const long long head = i / half;  // over all rows: heads per row = cols / (2·half)
        const long long per_row = cols / (2 * half);
        const long long r = head / per_row;
        float s, c;
        vox::sincos_exact((float)positions[r] * inv_freq[j], &s, &c);
        float* h = x + r * cols + (head % per_row) * 2 * half;
        const float a = h[j], b = h[j + half];
        h[j] = a * c - b * s;
        h[j + half] = b * c + a * s;
    }
}
