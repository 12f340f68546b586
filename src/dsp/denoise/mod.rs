//! The spectral denoiser: short-time Fourier analysis, a noise-spectrum tracker, a per-bin
//! suppression gain, and resynthesis by exact overlap-add.
//!
//! Each frame (sqrt-Hann window, the shortest power of two ≥ 20 ms, 75 % overlap):
//! 1. noise PSD by the speech-presence-probability (SPP) tracker of Gerkmann & Hendriks, "Unbiased
//!    MMSE-based noise power estimation with low complexity and low tracking delay" (IEEE TASLP
//!    2012), started from the spectral valleys of the first frame and capped by a minimum-statistics
//!    bound (both below: they keep a stream that starts in speech from taking the speech for noise);
//! 2. a-priori SNR by the decision-directed rule (Ephraim & Malah 1984);
//! 3. the MMSE log-spectral-amplitude gain (Ephraim & Malah 1985), floored at −25 dB: the steady
//!    residual hiss masks the musical tones of isolated gain peaks; `strength` mixes it with 1;
//! 4. inverse FFT and overlap-add, normalised so that gain 1 (strength 0) gives back the input up
//!    to float rounding.
//!
//! The stream is time-aligned with its input: the algorithmic delay (`latency_frames()`, one frame
//! minus one hop: 16 ms at 24 and 48 kHz, 24 ms at 16 kHz) is dropped from the start of the output
//! and flushed from the tail by `finish`, so input and output have the same length and sample i of
//! one is sample i of the other.

use std::sync::Arc;

use rayon::prelude::*;
use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::dsp::AudioStream;
use crate::error::{Error, Result};

pub mod device;

/// The shortest frame; the frame is the next power of two (24 kHz: 512, 48 kHz: 1024 samples).
const MIN_FRAME_S: f64 = 0.020;
/// Frames overlap by 3/4: finer time steps than 1/2 cost twice the work but track onsets better.
const HOPS_PER_FRAME: usize = 4;
/// The time step the smoothing constants below are given for; they are rescaled to the real hop.
const REF_HOP_S: f64 = 0.016;
/// Noise PSD recursive smoothing per reference hop (Gerkmann & Hendriks use 0.8; slower is steadier
/// on stationary noise and measured better here).
const NOISE_SMOOTH: f64 = 0.9;
/// Smoothing of the speech presence probability for the stagnation guard (G & H: 0.9).
const SPP_SMOOTH: f64 = 0.9;
/// Above this smoothed presence a bin's presence is capped, so the noise estimate can still rise.
const SPP_STUCK: f32 = 0.99;
/// The a-priori SNR the SPP detector assumes when speech is present: 15 dB (G & H).
const XI_H1: f32 = 31.622_776;
/// Decision-directed weight of the previous frame's clean estimate per reference hop (Ephraim &
/// Malah's 0.98 lags speech onsets; 0.93 measured better with the gain floor below).
const DD_WEIGHT: f64 = 0.93;
/// Lowest a-priori SNR: −25 dB.
const XI_MIN: f32 = 0.003_162_277_7;
/// Lowest gain: −25 dB.
const GAIN_FLOOR: f32 = 0.056_234_13;
/// Voices start near 70 Hz: bins below this hold only rumble and DC offset, and get the floor gain.
const RUMBLE_HZ: f64 = 40.0;
/// Start-up: the noise PSD of the first frames is this many times the lowest 3-bin average within
/// ±INIT_HALF_HZ. In speech that minimum sits in the valleys between harmonics, in noise a few dB
/// under its level; either way the stream does not start by treating speech as noise.
const INIT_BIAS: f32 = 2.0;
const INIT_HALF_HZ: f64 = 150.0;
/// Minimum statistics: the noise estimate never exceeds MS_BIAS times the minimum, over the last
/// MS_WINDOW_S, of the periodogram smoothed by MS_SMOOTH (per reference hop). The SPP tracker can
/// absorb a slowly rising voice; a voice always has dips within a second, noise does not.
const MS_BIAS: f32 = 6.0;
const MS_SMOOTH: f64 = 0.3;
const MS_WINDOW_S: f64 = 0.8;
/// The minimum is kept per sub-window, so the window slides in steps of a quarter.
const MS_SUBWINDOWS: usize = 4;
/// The noise PSD never drops below −100 dBFS per sample: digital silence must not divide by zero.
const NOISE_FLOOR: f32 = 1e-10;
/// Input samples are read as 0 when not finite and clipped at ±1e6 (120 dB over full scale), so
/// no input can overflow the spectrum and poison the tracker's state.
const SAMPLE_LIMIT: f32 = 1e6;

/// One denoised stream at a fixed rate and strength; keeps its state across chunks.
pub struct Denoiser {
    sample_rate: u32,
    strength: f32,
    /// Frame length and hop, in samples.
    n: usize,
    hop: usize,
    /// sqrt-Hann (periodic) analysis window; the synthesis window is the same, divided by the
    /// overlap-added squared windows and by n (the inverse FFT is unnormalised).
    window: Vec<f32>,
    synth: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    ifft: Arc<dyn ComplexToReal<f32>>,
    /// Per-hop smoothing constants, rescaled from the reference hop.
    noise_smooth: f32,
    spp_smooth: f32,
    dd_weight: f32,
    ms_smooth: f32,
    /// Noise floor in periodogram units (NOISE_FLOOR times the window energy).
    noise_floor: f32,
    /// Start-up: for the frames that still reach into the zero padding before the stream, the
    /// factor that scales their periodogram to a full frame's (window energy / energy over the
    /// real samples); the last entry, 1, is the first full frame.
    warmup_scale: Vec<f32>,
    init_half_bins: usize,
    /// Bins below RUMBLE_HZ.
    rumble_bins: usize,
    /// Frames per minimum-statistics sub-window.
    ms_frames: usize,

    /// The last n input samples; the newest hop is being filled (`fill` of them so far).
    buf: Vec<f32>,
    fill: usize,
    /// Overlap-add accumulator; its first hop samples are final after each frame.
    ola: Vec<f32>,
    /// Output samples still to drop (the delay) and input samples not yet given back.
    skip: usize,
    held: usize,
    /// Frames analysed since the start, counted up to HOPS_PER_FRAME (the start-up frames), and
    /// frames into the current minimum-statistics sub-window.
    frames: usize,
    ms_count: usize,
    /// Per bin: periodogram of this frame, noise PSD, smoothed presence, previous frame's clean
    /// power (for the DD rule), and the minimum statistics: smoothed periodogram, minimum in the
    /// current sub-window, minimum over the finished ones (and those, newest first).
    power: Vec<f32>,
    noise: Vec<f32>,
    spp_avg: Vec<f32>,
    clean_prev: Vec<f32>,
    smoothed: Vec<f32>,
    min_now: Vec<f32>,
    min_past: Vec<f32>,
    min_subs: Vec<Vec<f32>>,

    /// Scratch for the transforms.
    time: Vec<f32>,
    spec: Vec<Complex32>,
    scratch: Vec<Complex32>,
}

impl Denoiser {
    /// A stream at `sample_rate` (4000..=384000 Hz) with `strength` in [0, 1]: 0 passes the input
    /// through unchanged, 1 applies the full suppression gain.
    pub fn new(sample_rate: u32, strength: f32) -> Result<Self> {
        if !(4000..=384_000).contains(&sample_rate) {
            return Err(Error::invalid(format!("denoiser sample rate must be in 4000..=384000 Hz, got {sample_rate}")));
        }
        if !(0.0..=1.0).contains(&strength) {
            return Err(Error::invalid(format!("denoise strength must be in [0, 1], got {strength}")));
        }
        let rate = sample_rate as f64;
        let n = ((rate * MIN_FRAME_S).ceil() as usize).next_power_of_two();
        let hop = n / HOPS_PER_FRAME;
        let bins = n / 2 + 1;
        let bin_hz = rate / n as f64;

        let window: Vec<f32> = (0..n)
            .map(|t| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * t as f64 / n as f64).cos()).sqrt() as f32)
            .collect();
        // Exact overlap-add normalisation: at each position, the sum of the squared windows of
        // all the frames that cover it (2 for sqrt-Hann at 75 %, up to rounding).
        let synth = (0..n)
            .map(|t| {
                let cover: f32 = (0..HOPS_PER_FRAME).map(|j| window[(t + j * hop) % n].powi(2)).sum();
                window[t] / (cover * n as f32)
            })
            .collect();
        let energy: f32 = window.iter().map(|w| w * w).sum();
        let warmup_scale =
            (1..=HOPS_PER_FRAME).map(|f| energy / window[n - f * hop..].iter().map(|w| w * w).sum::<f32>()).collect();

        let mut planner = RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(n);
        let ifft = planner.plan_fft_inverse(n);
        let scratch_len = fft.get_scratch_len().max(ifft.get_scratch_len());
        let per_ref_hop = hop as f64 / rate / REF_HOP_S;
        let ms_frames = ((MS_WINDOW_S * rate / hop as f64) / MS_SUBWINDOWS as f64).ceil() as usize;

        let mut d = Denoiser {
            sample_rate,
            strength,
            n,
            hop,
            window,
            synth,
            fft,
            ifft,
            noise_smooth: NOISE_SMOOTH.powf(per_ref_hop) as f32,
            spp_smooth: SPP_SMOOTH.powf(per_ref_hop) as f32,
            dd_weight: DD_WEIGHT.powf(per_ref_hop) as f32,
            ms_smooth: MS_SMOOTH.powf(per_ref_hop) as f32,
            // The periodogram of white noise of unit variance is the window energy.
            noise_floor: NOISE_FLOOR * energy,
            warmup_scale,
            init_half_bins: (INIT_HALF_HZ / bin_hz).round() as usize,
            rumble_bins: (RUMBLE_HZ / bin_hz).ceil() as usize,
            ms_frames,
            buf: vec![0.0; n],
            fill: 0,
            ola: vec![0.0; n],
            skip: 0,
            held: 0,
            frames: 0,
            ms_count: 0,
            power: vec![0.0; bins],
            noise: vec![0.0; bins],
            spp_avg: vec![0.0; bins],
            clean_prev: vec![0.0; bins],
            smoothed: vec![0.0; bins],
            min_now: vec![0.0; bins],
            min_past: vec![0.0; bins],
            min_subs: vec![vec![0.0; bins]; MS_SUBWINDOWS],
            time: vec![0.0; n],
            spec: vec![Complex32::new(0.0, 0.0); bins],
            scratch: vec![Complex32::new(0.0, 0.0); scratch_len],
        };
        d.reset();
        Ok(d)
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    pub fn strength(&self) -> f32 {
        self.strength
    }

    /// STFT frame length in samples.
    pub fn frame_len(&self) -> usize {
        self.n
    }

    /// STFT hop in samples: output comes in steps of this size.
    pub fn hop_len(&self) -> usize {
        self.hop
    }

    /// The algorithmic delay in samples (frame − hop), which the stream compensates. A sample's
    /// output is given back at most `latency_frames() + hop_len() - 1` input samples after it.
    pub fn latency_frames(&self) -> usize {
        self.n - self.hop
    }

    /// Forgets the stream: the next sample is the first of a new one.
    pub fn reset(&mut self) {
        // The first frame sees n − hop zeros before the input: every input sample is then
        // covered by all the frames that overlap it, and the delay is exactly n − hop.
        self.buf.fill(0.0);
        self.fill = 0;
        self.ola.fill(0.0);
        self.skip = self.n - self.hop;
        self.held = 0;
        self.frames = 0;
        self.ms_count = 0;
        self.noise.fill(self.noise_floor);
        self.spp_avg.fill(0.0);
        self.clean_prev.fill(0.0);
        self.smoothed.fill(0.0);
        self.min_now.fill(f32::MAX);
        self.min_past.fill(f32::MAX);
        for m in &mut self.min_subs {
            m.fill(f32::MAX);
        }
    }

    /// Denoises the next chunk, appending the output that is ready (whole hops, delay removed).
    pub fn push(&mut self, input: &[f32], output: &mut Vec<f32>) {
        let mut rest = input;
        while !rest.is_empty() {
            let take = (self.hop - self.fill).min(rest.len());
            let at = self.n - self.hop + self.fill;
            for (d, &s) in self.buf[at..at + take].iter_mut().zip(&rest[..take]) {
                *d = if s.is_finite() { s.clamp(-SAMPLE_LIMIT, SAMPLE_LIMIT) } else { 0.0 };
            }
            self.fill += take;
            self.held += take;
            rest = &rest[take..];
            if self.fill == self.hop {
                self.frame();
                self.emit(output);
            }
        }
    }

    /// Ends the stream: pads with silence until every input sample has its output, appends that
    /// tail, and resets for a new stream. The stream's total output has the input's length.
    pub fn flush(&mut self, output: &mut Vec<f32>) {
        while self.held > 0 {
            let at = self.n - self.hop + self.fill;
            self.buf[at..].fill(0.0);
            self.fill = self.hop;
            self.frame();
            self.emit(output);
        }
        self.reset();
    }

    /// Gives back the first hop of the overlap-add (less what is still to skip) and shifts it out.
    fn emit(&mut self, output: &mut Vec<f32>) {
        let skip = self.skip.min(self.hop);
        self.skip -= skip;
        let count = (self.hop - skip).min(self.held);
        output.extend_from_slice(&self.ola[skip..skip + count]);
        self.held -= count;
        let n = self.n;
        self.ola.copy_within(self.hop.., 0);
        self.ola[n - self.hop..].fill(0.0);
        self.buf.copy_within(self.hop.., 0);
        self.fill = 0;
    }

    /// Analyses the frame in `buf`, applies the gain, and overlap-adds the result into `ola`.
    fn frame(&mut self) {
        for ((t, b), w) in self.time.iter_mut().zip(&self.buf).zip(&self.window) {
            *t = b * w;
        }
        // Lengths are fixed at construction, the only way these transforms can fail.
        self.fft.process_with_scratch(&mut self.time, &mut self.spec, &mut self.scratch).expect("STFT sizes");
        for (p, c) in self.power.iter_mut().zip(&self.spec) {
            *p = c.norm_sqr();
        }

        if self.frames < HOPS_PER_FRAME {
            self.start_noise(self.warmup_scale[self.frames]);
        } else {
            self.track_noise();
        }
        self.cap_noise();
        self.apply_gain();
        self.frames = (self.frames + 1).min(HOPS_PER_FRAME);

        // The DC and Nyquist bins of a real signal are real; the inverse transform insists.
        let last = self.spec.len() - 1;
        self.spec[0].im = 0.0;
        self.spec[last].im = 0.0;
        self.ifft.process_with_scratch(&mut self.spec, &mut self.time, &mut self.scratch).expect("STFT sizes");
        for ((o, t), w) in self.ola.iter_mut().zip(&self.time).zip(&self.synth) {
            *o += t * w;
        }
    }

    /// The noise PSD of a start-up frame: INIT_BIAS times the local minimum of the 3-bin-averaged
    /// periodogram, with `scale` making up for the zero padding the frame still holds.
    fn start_noise(&mut self, scale: f32) {
        let bins = self.power.len();
        let p = &self.power;
        let avg3 = |k: usize| (p[k.saturating_sub(1)] + p[k] + p[(k + 1).min(bins - 1)]) / 3.0;
        let w = self.init_half_bins;
        for k in 0..bins {
            let low = (k.saturating_sub(w)..=(k + w).min(bins - 1)).map(avg3).fold(f32::MAX, f32::min);
            self.noise[k] = (INIT_BIAS * scale * low).max(self.noise_floor);
            self.smoothed[k] = self.noise[k];
        }
    }

    /// One step of the SPP noise tracker (Gerkmann & Hendriks 2012).
    fn track_noise(&mut self) {
        let (a_noise, a_spp, a_ms) = (self.noise_smooth, self.spp_smooth, self.ms_smooth);
        let odds = 1.0 + XI_H1;
        let slope = XI_H1 / (1.0 + XI_H1);
        for k in 0..self.power.len() {
            let (p, prev) = (self.power[k], self.noise[k]);
            // Posterior probability of speech in this bin, given the previous noise PSD.
            let mut spp = 1.0 / (1.0 + odds * (-(p / prev) * slope).exp());
            // A bin that has looked like speech for long is more likely rising noise: cap it.
            self.spp_avg[k] = a_spp * self.spp_avg[k] + (1.0 - a_spp) * spp;
            if self.spp_avg[k] > SPP_STUCK {
                spp = spp.min(SPP_STUCK);
            }
            // MMSE estimate of this frame's noise power, smoothed over time.
            let e_noise = (1.0 - spp) * p + spp * prev;
            self.noise[k] = (a_noise * prev + (1.0 - a_noise) * e_noise).max(self.noise_floor);
            self.smoothed[k] = a_ms * self.smoothed[k] + (1.0 - a_ms) * p;
        }
    }

    /// Minimum statistics: caps the noise PSD at MS_BIAS times the lowest smoothed periodogram of
    /// the last MS_WINDOW_S, which slides by sub-windows.
    fn cap_noise(&mut self) {
        for k in 0..self.noise.len() {
            self.min_now[k] = self.min_now[k].min(self.smoothed[k]);
            let cap = MS_BIAS * self.min_now[k].min(self.min_past[k]);
            self.noise[k] = self.noise[k].min(cap).max(self.noise_floor);
        }
        self.ms_count += 1;
        if self.ms_count == self.ms_frames {
            self.ms_count = 0;
            self.min_subs.rotate_right(1);
            std::mem::swap(&mut self.min_subs[0], &mut self.min_now);
            self.min_now.fill(f32::MAX);
            for k in 0..self.min_past.len() {
                self.min_past[k] = self.min_subs.iter().map(|m| m[k]).fold(f32::MAX, f32::min);
            }
        }
    }

    /// Decision-directed a-priori SNR, log-spectral-amplitude gain, floor, strength.
    fn apply_gain(&mut self) {
        let (dd, s) = (self.dd_weight, self.strength);
        for k in 0..self.spec.len() {
            let (p, noise) = (self.power[k], self.noise[k]);
            let gamma = p / noise;
            let xi = (dd * self.clean_prev[k] / noise + (1.0 - dd) * (gamma - 1.0).max(0.0)).max(XI_MIN);
            let r = xi / (1.0 + xi);
            let v = (r * gamma).max(1e-10);
            let g = (r * (0.5 * exp_int(v)).exp()).min(1.0);
            self.clean_prev[k] = g * g * p;
            let g = if k < self.rumble_bins { GAIN_FLOOR } else { g.max(GAIN_FLOOR) };
            self.spec[k] *= 1.0 - s * (1.0 - g);
        }
    }
}

/// The exponential integral E1(x) for x > 0 (Abramowitz & Stegun 5.1.53 and 5.1.56: absolute
/// error below 2e-7 under 1, relative below 5e-5 above).
fn exp_int(x: f32) -> f32 {
    if x <= 1.0 {
        let poly = -0.577_215_7
            + x * (0.999_991_93 + x * (-0.249_910_55 + x * (0.055_199_68 + x * (-0.009_760_04 + x * 0.001_078_57))));
        poly - x.ln()
    } else if x < 40.0 {
        let num = x * x + 2.334_733 * x + 0.250_621;
        let den = x * x + 3.330_657 * x + 1.681_534;
        (-x).exp() / x * num / den
    } else {
        0.0
    }
}

impl AudioStream for Denoiser {
    fn process(&mut self, input: &[f32], output: &mut Vec<f32>) {
        self.push(input, output);
    }

    fn finish(&mut self, output: &mut Vec<f32>) {
        self.flush(output);
    }
}

/// Below this many input samples in all, a batch runs on the calling thread: splitting it over
/// threads would cost more than it saves.
const PARALLEL_MIN_SAMPLES: usize = 16_384;

/// Runs one chunk through each of many streams: `inputs[i]` through `streams[i]`, appended to
/// `outputs[i]`. In parallel on the current rayon pool when there is enough work.
pub fn process_batch(streams: &mut [&mut Denoiser], inputs: &[&[f32]], outputs: &mut [Vec<f32>]) -> Result<()> {
    if inputs.len() != streams.len() || outputs.len() != streams.len() {
        return Err(Error::invalid(format!(
            "denoise batch: {} streams, {} inputs, {} outputs",
            streams.len(),
            inputs.len(),
            outputs.len()
        )));
    }
    let total: usize = inputs.iter().map(|i| i.len()).sum();
    if streams.len() > 1 && total >= PARALLEL_MIN_SAMPLES {
        streams.par_iter_mut().zip(inputs.par_iter()).zip(outputs.par_iter_mut()).for_each(|((d, i), o)| d.push(i, o));
    } else {
        for ((d, i), o) in streams.iter_mut().zip(inputs).zip(outputs.iter_mut()) {
            d.push(i, o);
        }
    }
    Ok(())
}

/// Denoises a whole signal at once; the output has the input's length and timing.
pub fn denoise(samples: &[f32], sample_rate: u32, strength: f32) -> Result<Vec<f32>> {
    let mut d = Denoiser::new(sample_rate, strength)?;
    let mut out = Vec::with_capacity(samples.len());
    d.push(samples, &mut out);
    d.flush(&mut out);
    Ok(out)
}
