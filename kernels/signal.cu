// Post-processing on the device: src/dsp's polyphase resampler and spectral denoiser, batched
// over streams (one launch per step for all the streams of a kind). The host keeps each stream's
// counters (input positions, phases, fill levels, ring offsets: they follow from the lengths alone)
// and passes them per launch; the samples, the filter tables and the denoiser's spectral state are
// on the device. The arithmetic is the CPU's, in the same order where it matters (f64 sums for the
// resampler; the denoiser's tracker and gain per bin in f32).
#include "common.cuh"

// ---- resampler ----------------------------------------------------------------------------------

// One stream's run of outputs (fields of `runs`, 9 per stream).
enum ResampleRun : int {
    RS_X_AT = 0,   // index in x of the window of output 0
    RS_COUNT,      // outputs
    RS_OUT_AT,     // index in y of output 0
    RS_PHASE,      // phase numerator of output 0 (in 0..up)
    RS_UP,         // L
    RS_DOWN,       // M
    RS_TAPS,       // coefficients per row (2H)
    RS_FINE,       // 0: one row per phase; P > 0: rows at fine phases q/P, q = −1..=P+1
    RS_TABLE,      // device address of the f64 rows
    RS_FIELDS
};

__device__ __forceinline__ double dot_f64(const double* __restrict__ row, const float* __restrict__ x, int taps) {
    double acc = 0.0;
    for (int i = 0; i < taps; ++i) acc += row[i] * (double)x[i];
    return acc;
}

// y[out_at + k] for k < count of every run (grid: (⌈max count / block⌉, runs)): output k sits at
// input time (phase + k·down)/up past the window of output 0; its value is the dot product of the
// table row of its phase with its 2H inputs (exact table), or the cubic Lagrange interpolation of
// the 4 fine rows around its phase (interpolated table), in f64 as on the CPU.
extern "C" __global__ void resample_f32(const float* __restrict__ x, const long long* __restrict__ runs,
                                        float* __restrict__ y) {
    const long long* r = runs + (long long)blockIdx.y * RS_FIELDS;
    const long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (k >= r[RS_COUNT]) return;
    const unsigned long long up = r[RS_UP], down = r[RS_DOWN], fine = r[RS_FINE];
    const int taps = (int)r[RS_TAPS];
    const double* table = reinterpret_cast<const double*>(r[RS_TABLE]);
    const unsigned long long t = (unsigned long long)r[RS_PHASE] + (unsigned long long)k * down;
    const float* window = x + r[RS_X_AT] + (long long)(t / up);
    const unsigned long long phase = t % up;
    double out;
    if (fine == 0) {
        out = dot_f64(table + phase * taps, window, taps);
    } else {
        // Fine position j + d of the phase (exact: phase·P / L); rows j..j+3 are phases j−1..j+2.
        const unsigned long long num = phase * fine;
        const unsigned long long j = num / up;
        const double d = (double)(num % up) / (double)up;
        double a[4];
        for (int q = 0; q < 4; ++q) a[q] = dot_f64(table + (j + q) * taps, window, taps);
        const double w0 = -d * (d - 1.0) * (d - 2.0) / 6.0;
        const double w1 = (d + 1.0) * (d - 1.0) * (d - 2.0) / 2.0;
        const double w2 = -(d + 1.0) * d * (d - 2.0) / 2.0;
        const double w3 = (d + 1.0) * d * (d - 1.0) / 6.0;
        out = w0 * a[0] + w1 * a[1] + w2 * a[2] + w3 * a[3];
    }
    y[r[RS_OUT_AT] + k] = (float)out;
}

// ---- denoiser -----------------------------------------------------------------------------------

// One stream's step (fields of `streams`, DN_FIELDS per stream). Floats travel as their bits.
enum DenoiseField : int {
    DN_STATE = 0,     // device address of the stream's state (layout below)
    DN_DESIGN,        // device address of window[n], synth[n], twiddle cos[n/2], −sin[n/2]
    DN_LOG2N,         // frame length n = 2^log2n
    DN_HOP,
    DN_IN_AT,         // index in x of the step's first new sample
    DN_FRAMES,        // frames to analyse this step
    DN_FILL,          // samples of the current hop already in the ring
    DN_HEAD,          // ring index of the current frame's first sample
    DN_SEEN,          // frames analysed so far, counted up to DN_START_FRAMES
    DN_MS_COUNT,      // frames into the current minimum-statistics sub-window
    DN_MS_RING,       // the oldest sub-window minimum
    DN_PLAN_AT,       // index in `plan` of this step's first frame (skip, count, out_at per frame)
    DN_LEFTOVER,      // samples after the last frame, kept in the ring for the next step
    DN_MS_FRAMES,     // frames per sub-window
    DN_SUBS,          // sub-windows
    DN_START_FRAMES,  // frames that start the noise estimate (and have a warm-up scale each)
    DN_INIT_HALF,     // half-width of the start-up minimum, in bins
    DN_RUMBLE,        // bins below the rumble cut
    DN_NOISE_SMOOTH,  // f32 constants from here on
    DN_SPP_SMOOTH,
    DN_DD_WEIGHT,
    DN_MS_SMOOTH,
    DN_NOISE_FLOOR,
    DN_STRENGTH,
    DN_INIT_BIAS,
    DN_SPP_STUCK,
    DN_XI_H1,
    DN_XI_MIN,
    DN_GAIN_FLOOR,
    DN_MS_BIAS,
    DN_WARMUP,        // DN_START_FRAMES warm-up scales (at most 8)
    DN_FIELDS = DN_WARMUP + 8
};

__device__ __forceinline__ float field_f32(const long long* p, int i) { return __int_as_float((int)p[i]); }

__device__ __forceinline__ unsigned bit_reverse(unsigned i, int bits) {
    unsigned r = 0;
    for (int b = 0; b < bits; ++b) r |= ((i >> b) & 1u) << (bits - 1 - b);
    return r;
}

// In-place radix-2 FFT of (re, im), n = 2^bits, forward (e^{−2πi·jk/n}): decimation in time from
// bit-reversed input to natural output (dit) or in frequency from natural input to bit-reversed
// output (dif). `tw` holds cos and −sin of 2πj/n for j < n/2. Ends with a barrier.
__device__ void fft_dit(float* re, float* im, const float* tw_c, const float* tw_s, int bits) {
    const int n = 1 << bits;
    for (int len = 2; len <= n; len <<= 1) {
        const int half = len >> 1, step = n / len;
        for (int b = threadIdx.x; b < n / 2; b += blockDim.x) {
            const int j = b % half, i0 = (b / half) * len + j, i1 = i0 + half;
            const float wc = tw_c[j * step], ws = tw_s[j * step];
            const float tr = wc * re[i1] - ws * im[i1], ti = wc * im[i1] + ws * re[i1];
            re[i1] = re[i0] - tr;
            im[i1] = im[i0] - ti;
            re[i0] += tr;
            im[i0] += ti;
        }
        __syncthreads();
    }
}

__device__ void fft_dif(float* re, float* im, const float* tw_c, const float* tw_s, int bits) {
    const int n = 1 << bits;
    for (int len = n; len >= 2; len >>= 1) {
        const int half = len >> 1, step = n / len;
        for (int b = threadIdx.x; b < n / 2; b += blockDim.x) {
            const int j = b % half, i0 = (b / half) * len + j, i1 = i0 + half;
            const float wc = tw_c[j * step], ws = tw_s[j * step];
            const float ur = re[i0], ui = im[i0], vr = re[i1], vi = im[i1];
            re[i0] = ur + vr;
            im[i0] = ui + vi;
            const float dr = ur - vr, di = ui - vi;
            re[i1] = wc * dr - ws * di;
            im[i1] = wc * di + ws * dr;
        }
        __syncthreads();
    }
}

// E1(x) for x > 0, as dsp::denoise::exp_int (Abramowitz & Stegun 5.1.53 and 5.1.56).
__device__ __forceinline__ float exp_int(float x) {
    if (x <= 1.0f) {
        const float poly = -0.5772157f +
            x * (0.99999193f + x * (-0.24991055f + x * (0.05519968f + x * (-0.00976004f + x * 0.00107857f))));
        return poly - logf(x);
    }
    if (x < 40.0f) {
        const float num = x * x + 2.334733f * x + 0.250621f;
        const float den = x * x + 3.330657f * x + 1.681534f;
        return expf(-x) / x * num / den;
    }
    return 0.0f;
}

// Every stream's frames of this step (one block per stream; frames in order, bins and samples over
// the block's threads). Per frame, as dsp::denoise::Denoiser::frame: the hop's new samples into the
// ring; the windowed frame's spectrum; the noise estimate (start-up minimum, or the SPP tracker);
// the minimum-statistics cap; the decision-directed LSA gain; the inverse transform overlap-added;
// the first hop of the overlap-add emitted (the plan's skip and count) and cleared.
//
// State layout (f32), bins = n/2 + 1: ring[n], ola[n], re[n], im[n], power, noise, spp_avg,
// clean_prev, smoothed, min_now, min_past, avg3 (bins each), subs (DN_SUBS × bins).
extern "C" __global__ void denoise_f32(const float* __restrict__ x, const long long* __restrict__ streams,
                                       const long long* __restrict__ plan, float* __restrict__ y) {
    const long long* p = streams + (long long)blockIdx.x * DN_FIELDS;
    const int bits = (int)p[DN_LOG2N];
    const int n = 1 << bits, mask = n - 1, hop = (int)p[DN_HOP], bins = n / 2 + 1;
    float* ring = reinterpret_cast<float*>(p[DN_STATE]);
    float* ola = ring + n;
    float* re = ola + n;
    float* im = re + n;
    float* power = im + n;
    float* noise = power + bins;
    float* spp_avg = noise + bins;
    float* clean_prev = spp_avg + bins;
    float* smoothed = clean_prev + bins;
    float* min_now = smoothed + bins;
    float* min_past = min_now + bins;
    float* avg3 = min_past + bins;
    float* subs = avg3 + bins;
    const float* window = reinterpret_cast<const float*>(p[DN_DESIGN]);
    const float* synth = window + n;
    const float* tw_c = synth + n;
    const float* tw_s = tw_c + n / 2;

    const int frames = (int)p[DN_FRAMES], n_subs = (int)p[DN_SUBS], start_frames = (int)p[DN_START_FRAMES];
    const int ms_frames = (int)p[DN_MS_FRAMES], init_half = (int)p[DN_INIT_HALF], rumble = (int)p[DN_RUMBLE];
    const float a_noise = field_f32(p, DN_NOISE_SMOOTH), a_spp = field_f32(p, DN_SPP_SMOOTH);
    const float dd = field_f32(p, DN_DD_WEIGHT), a_ms = field_f32(p, DN_MS_SMOOTH);
    const float floor_ = field_f32(p, DN_NOISE_FLOOR), strength = field_f32(p, DN_STRENGTH);
    const float init_bias = field_f32(p, DN_INIT_BIAS), spp_stuck = field_f32(p, DN_SPP_STUCK);
    const float xi_h1 = field_f32(p, DN_XI_H1), xi_min = field_f32(p, DN_XI_MIN);
    const float gain_floor = field_f32(p, DN_GAIN_FLOOR), ms_bias = field_f32(p, DN_MS_BIAS);
    const float big = 3.40282347e38f;  // f32::MAX, the minima's start

    const float* in = x + p[DN_IN_AT];
    const long long* steps = plan + p[DN_PLAN_AT] * 3;
    int fill = (int)p[DN_FILL], head = (int)p[DN_HEAD], seen = (int)p[DN_SEEN];
    int ms_count = (int)p[DN_MS_COUNT], ms_ring = (int)p[DN_MS_RING];

    for (int f = 0; f < frames; ++f) {
        // 1. The rest of the hop into the ring (frame positions n − hop + fill ..< n).
        const int take = hop - fill;
        for (int i = threadIdx.x; i < take; i += blockDim.x) ring[(head + n - hop + fill + i) & mask] = in[i];
        in += take;
        fill = 0;
        __syncthreads();
        // 2. The windowed frame, in bit-reversed order, and its spectrum.
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const unsigned at = bit_reverse((unsigned)i, bits);
            re[at] = ring[(head + i) & mask] * window[i];
            im[at] = 0.0f;
        }
        __syncthreads();
        fft_dit(re, im, tw_c, tw_s, bits);
        for (int k = threadIdx.x; k < bins; k += blockDim.x) power[k] = re[k] * re[k] + im[k] * im[k];
        __syncthreads();
        // 3. Noise: the start-up minimum, or one step of the SPP tracker.
        if (seen < start_frames) {
            const float scale = field_f32(p, DN_WARMUP + seen);
            for (int k = threadIdx.x; k < bins; k += blockDim.x) {
                const int lo = k > 0 ? k - 1 : 0, hi = k + 1 < bins ? k + 1 : bins - 1;
                avg3[k] = (power[lo] + power[k] + power[hi]) / 3.0f;
            }
            __syncthreads();
            for (int k = threadIdx.x; k < bins; k += blockDim.x) {
                const int lo = k > init_half ? k - init_half : 0, hi = k + init_half < bins ? k + init_half : bins - 1;
                float low = big;
                for (int j = lo; j <= hi; ++j) low = fminf(low, avg3[j]);
                noise[k] = fmaxf(init_bias * scale * low, floor_);
                smoothed[k] = noise[k];
            }
        } else {
            const float odds = 1.0f + xi_h1, slope = xi_h1 / (1.0f + xi_h1);
            for (int k = threadIdx.x; k < bins; k += blockDim.x) {
                const float pk = power[k], prev = noise[k];
                float spp = 1.0f / (1.0f + odds * expf(-(pk / prev) * slope));
                spp_avg[k] = a_spp * spp_avg[k] + (1.0f - a_spp) * spp;
                if (spp_avg[k] > spp_stuck) spp = fminf(spp, spp_stuck);
                const float e_noise = (1.0f - spp) * pk + spp * prev;
                noise[k] = fmaxf(a_noise * prev + (1.0f - a_noise) * e_noise, floor_);
                smoothed[k] = a_ms * smoothed[k] + (1.0f - a_ms) * pk;
            }
        }
        // 4. The minimum-statistics cap; a finished sub-window replaces the oldest.
        const bool rotate = ms_count + 1 == ms_frames;
        for (int k = threadIdx.x; k < bins; k += blockDim.x) {
            min_now[k] = fminf(min_now[k], smoothed[k]);
            const float cap = ms_bias * fminf(min_now[k], min_past[k]);
            noise[k] = fmaxf(fminf(noise[k], cap), floor_);
            if (rotate) {
                subs[ms_ring * bins + k] = min_now[k];
                min_now[k] = big;
                float m = big;
                for (int s = 0; s < n_subs; ++s) m = fminf(m, subs[s * bins + k]);
                min_past[k] = m;
            }
        }
        ms_count = rotate ? 0 : ms_count + 1;
        if (rotate) ms_ring = (ms_ring + 1) % n_subs;
        // 5. Decision-directed a-priori SNR, log-spectral-amplitude gain, floor, strength.
        for (int k = threadIdx.x; k < bins; k += blockDim.x) {
            const float pk = power[k], nk = noise[k];
            const float gamma = pk / nk;
            const float xi = fmaxf(dd * clean_prev[k] / nk + (1.0f - dd) * fmaxf(gamma - 1.0f, 0.0f), xi_min);
            const float r = xi / (1.0f + xi);
            const float v = fmaxf(r * gamma, 1e-10f);
            float g = fminf(r * expf(0.5f * exp_int(v)), 1.0f);
            clean_prev[k] = g * g * pk;
            g = k < rumble ? gain_floor : fmaxf(g, gain_floor);
            const float m = 1.0f - strength * (1.0f - g);
            re[k] *= m;
            im[k] *= m;
        }
        seen = seen + 1 < start_frames ? seen + 1 : start_frames;
        __syncthreads();
        // 6. The inverse transform as the forward one of the conjugate Hermitian spectrum (the DC
        //    and Nyquist bins of a real signal are real); its real part is the frame, bit-reversed.
        for (int k = bins + threadIdx.x; k < n; k += blockDim.x) {
            re[k] = re[n - k];
            im[k] = im[n - k];
        }
        __syncthreads();
        for (int k = threadIdx.x; k < bins; k += blockDim.x) im[k] = (k == 0 || k == bins - 1) ? 0.0f : -im[k];
        __syncthreads();
        fft_dif(re, im, tw_c, tw_s, bits);
        for (int t = threadIdx.x; t < n; t += blockDim.x) ola[(head + t) & mask] += re[bit_reverse((unsigned)t, bits)] * synth[t];
        __syncthreads();
        // 7. Emit the first hop (less what is still skipped), clear it, move on a hop.
        const int skip = (int)steps[3 * f], count = (int)steps[3 * f + 1];
        float* out = y + steps[3 * f + 2];
        for (int i = threadIdx.x; i < count; i += blockDim.x) out[i] = ola[(head + skip + i) & mask];
        __syncthreads();
        for (int i = threadIdx.x; i < hop; i += blockDim.x) ola[(head + i) & mask] = 0.0f;
        head = (head + hop) & mask;
        __syncthreads();
    }
    // 8. What is left of the input waits in the ring for the next step's first frame.
    const int left = (int)p[DN_LEFTOVER];
    for (int i = threadIdx.x; i < left; i += blockDim.x) ring[(head + n - hop + fill + i) & mask] = in[i];
}
