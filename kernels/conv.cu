// The convolutions' data movement: im2col for the 1-D and the 3×3 stride-2 2-D convolutions (the
// products then run as linear_gemm), the transposed convolution's gather of its taps' products, and
// the depthwise convolution, which is direct. Grid-stride loops over n output values.
#include "common.cuh"

// cols[r, tap·cin + i] = x[r·stride + tap·dilation, i] for r < t: n = t · k · cin.
extern "C" __global__ void im2col_1d_f32(const float* __restrict__ x, float* __restrict__ cols, int cin, int k,
                                         int dilation, int stride, long long n) {
    const long long width = (long long)k * cin;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / width;
        const int tap = (int)(i % width) / cin, c = (int)(i % cin);
        cols[i] = x[(r * stride + (long long)tap * dilation) * cin + c];
    }
}

// y[o, c] = Σ over taps in ascending order of part[(o − tap)/stride, tap·cout + c], for the taps with
// o − tap a multiple of stride inside the input's `rows` rows: n = output rows · cout.
extern "C" __global__ void conv_transpose_gather_f32(const float* __restrict__ part, float* __restrict__ y, int rows,
                                                     int k, int stride, int cout, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long o = i / cout;
        const int c = (int)(i % cout);
        float acc = 0.0f;
        for (int tap = 0; tap < k; ++tap) {
            const long long s = o - tap;
            if (s >= 0 && s % stride == 0 && s / stride < rows) acc += part[(s / stride) * k * cout + (long long)tap * cout + c];
        }
        y[i] = acc;
    }
}

// y[t, ch] = bias[ch] + Σ_tap taps[ch, tap] · x[t + tap, ch]: n = t · channels.
extern "C" __global__ void depthwise_conv1d_f32(const float* __restrict__ x, const float* __restrict__ taps,
                                                const float* __restrict__ bias, float* __restrict__ y, int channels,
                                                int k, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long t = i / channels;
        const int ch = (int)(i % channels);
        float acc = bias[ch];
        for (int tap = 0; tap < k; ++tap) acc += taps[ch * k + tap] * x[(t + tap) * channels + ch];
        y[i] = acc;
    }
}

// im2col of the 3×3, stride-2, padding-1 convolution over images of f × t pixels (rows: image-major,
// then frequency, then time; channels as columns): row p of an image is output pixel (of, ot) of
// fo × to, its columns (kf, kt, c). n = images · fo · to · 9 · cin; `x` points at the first image.
extern "C" __global__ void im2col_2d_s2_f32(const float* __restrict__ x, float* __restrict__ cols, int cin, int f,
                                            int t, int fo, int to, long long n) {
    const long long width = 9LL * cin, pixels = (long long)fo * to;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long row = i / width;
        const int col = (int)(i % width);
        const long long img = row / pixels, p = row % pixels;
        const int of = (int)(p / to), ot = (int)(p % to);
        const int tap = col / cin, c = col % cin;
        const int fi = 2 * of + tap / 3 - 1, ti = 2 * ot + tap % 3 - 1;
        cols[i] = (fi < 0 || ti < 0 || fi >= f || ti >= t) ? 0.0f : x[((img * f + fi) * t + ti) * cin + c];
    }
}
