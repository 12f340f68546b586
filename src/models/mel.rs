//! The Qwen3-ASR audio front-end: Whisper's log-mel recipe exactly as `WhisperFeatureExtractor`
//! (transformers 4.57) computes it for one clip (spec §3.2–3.3):
//!
//! 1. reflect-pad `n_fft / 2` samples on each side (`torch.stft(center=True)`);
//! 2. frames every `hop` samples, periodic Hann window of length `n_fft`, power spectrum;
//!    the STFT's last frame is dropped, so a clip of L samples gives `T = L / hop` frames;
//! 3. 128 Slaney-scale, Slaney-normalised triangular mel filters from 0 to 8 kHz;
//! 4. `log10(max(mel, 1e-10))`, floored at the clip's maximum − 8, then `(x + 4) / 4`.
//!
//! Never truncated or padded to 30 s (the Whisper defaults would; several ports had that bug).
//! The transform runs in f64 (the reference runs in f32; the difference is far below the parity
//! tolerance) and the features are stored frame-major, `[T, n_mels]`.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::models::asr_config::PreprocessorConfig;
use crate::seams::AsrFeatures;

/// Upper edge of the mel filterbank; `WhisperFeatureExtractor` fixes it at 8 kHz.
const MEL_FMAX_HZ: f64 = 8000.0;

pub struct MelFrontend {
    n_fft: usize,
    hop: usize,
    n_mels: usize,
    /// Periodic Hann window, `n_fft` long.
    window: Vec<f64>,
    /// Filters `[n_mels, n_fft / 2 + 1]`.
    filters: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
}

/// Slaney mel scale: linear below 1 kHz, logarithmic above.
fn hz_to_mel(f: f64) -> f64 {
    let logstep = 27.0 / 6.4f64.ln();
    if f >= 1000.0 { 15.0 + (f / 1000.0).ln() * logstep } else { 3.0 * f / 200.0 }
}

fn mel_to_hz(m: f64) -> f64 {
    let logstep = 6.4f64.ln() / 27.0;
    if m >= 15.0 { 1000.0 * (logstep * (m - 15.0)).exp() } else { 200.0 * m / 3.0 }
}

/// Triangular mel filters from 0 Hz to `fmax_hz`, `[n_mels, n_fft / 2 + 1]`, Slaney mel scale
/// and Slaney (area) normalisation: the filterbank of
/// `transformers.audio_utils.mel_filter_bank(norm="slaney", mel_scale="slaney")` and of
/// `librosa.filters.mel(htk=False, norm="slaney")` (the same formulas; librosa stores the result
/// in f32, this keeps f64). Used by the Whisper front-end here and the speaker encoder's
/// (`speaker_mel`).
pub(crate) fn slaney_filters(n_fft: usize, n_mels: usize, sample_rate: u32, fmax_hz: f64) -> Vec<f64> {
    let bins = n_fft / 2 + 1;
    let (m0, m1) = (hz_to_mel(0.0), hz_to_mel(fmax_hz));
    // n_mels + 2 band edges equally spaced in mel.
    let edges: Vec<f64> = (0..n_mels + 2).map(|i| mel_to_hz(m0 + (m1 - m0) * i as f64 / (n_mels + 1) as f64)).collect();
    // FFT bin frequencies: linspace(0, sr // 2, bins).
    let nyquist = (sample_rate / 2) as f64;
    let freqs: Vec<f64> = (0..bins).map(|k| nyquist * k as f64 / (bins - 1) as f64).collect();
    let mut f = vec![0.0; n_mels * bins];
    for j in 0..n_mels {
        let (lo, mid, hi) = (edges[j], edges[j + 1], edges[j + 2]);
        let norm = 2.0 / (hi - lo);
        for (k, &fk) in freqs.iter().enumerate() {
            let down = (fk - lo) / (mid - lo);
            let up = (hi - fk) / (hi - mid);
            f[j * bins + k] = down.min(up).max(0.0) * norm;
        }
    }
    f
}

impl MelFrontend {
    pub fn new(cfg: &PreprocessorConfig) -> MelFrontend {
        let n = cfg.n_fft;
        let window = (0..n).map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()).collect();
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
        MelFrontend {
            n_fft: n,
            hop: cfg.hop_length,
            n_mels: cfg.feature_size,
            window,
            filters: slaney_filters(n, cfg.feature_size, cfg.sampling_rate, MEL_FMAX_HZ),
            fft,
        }
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Frames a clip of `samples` samples gives.
    pub fn frames(&self, samples: usize) -> usize {
        samples / self.hop
    }

    /// Shortest clip the centred STFT can take (reflect padding needs more than `n_fft / 2`
    /// samples); the model pads shorter ones first.
    pub fn min_samples(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Log-mel features of one mono clip, `[T, n_mels]`. The clip must hold at least
    /// `min_samples()` samples.
    pub fn features(&self, clip: &[f32]) -> AsrFeatures {
        let (n, hop, pad) = (self.n_fft, self.hop, self.n_fft / 2);
        assert!(clip.len() >= self.min_samples(), "clip shorter than the front-end's minimum");
        let len = clip.len();
        // Reflect padding (the edge sample is not repeated), as torch's "reflect" mode.
        let at = |i: isize| -> f64 {
            let j = if i < 0 {
                (-i) as usize
            } else if i as usize >= len {
                2 * (len - 1) - i as usize
            } else {
                i as usize
            };
            clip[j] as f64
        };
        let frames = self.frames(len);
        let bins = n / 2 + 1;
        let mut data = vec![0.0f32; frames * self.n_mels];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f64; bins];
        let mut max = f64::NEG_INFINITY;
        for t in 0..frames {
            let start = (t * hop) as isize - pad as isize;
            for (i, x) in input.iter_mut().enumerate() {
                *x = at(start + i as isize) * self.window[i];
            }
            self.fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch).expect("FFT sizes match the plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for (j, out) in data[t * self.n_mels..(t + 1) * self.n_mels].iter_mut().enumerate() {
                let filter = &self.filters[j * bins..(j + 1) * bins];
                let mel: f64 = filter.iter().zip(&power).map(|(a, b)| a * b).sum();
                let v = mel.max(1e-10).log10();
                max = max.max(v);
                *out = v as f32;
            }
        }
        // Dynamic range: at most 8 decades below the clip's loudest bin, then scaled.
        let floor = (max - 8.0) as f32;
        for v in data.iter_mut() {
            *v = (v.max(floor) + 4.0) / 4.0;
        }
        AsrFeatures { data, frames, bins: self.n_mels, passes: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_scale_round_trips_and_filters_are_area_normalised() {
        for f in [0.0, 500.0, 999.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(f)) - f).abs() < 1e-9);
        }
        assert!((hz_to_mel(8000.0) - 45.245_640_471_924_965).abs() < 1e-9);
        let f = slaney_filters(400, 128, 16_000, MEL_FMAX_HZ);
        // Every filter is a non-negative triangle with some weight.
        for j in 0..128 {
            let row = &f[j * 201..(j + 1) * 201];
            assert!(row.iter().all(|&v| v >= 0.0));
            assert!(row.iter().any(|&v| v > 0.0), "filter {j} is empty");
        }
    }

    #[test]
    fn frame_count_is_len_over_hop() {
        let m = MelFrontend::new(&PreprocessorConfig::default());
        let clip: Vec<f32> = (0..16_080).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let f = m.features(&clip);
        assert_eq!(f.frames, 100);
        assert_eq!(f.data.len(), 100 * 128);
        let max = f.data.iter().cloned().fold(f32::MIN, f32::max);
        let min = f.data.iter().cloned().fold(f32::MAX, f32::min);
        assert!(min >= max - 2.0 - 1e-6, "floor at max − 8 decades is (max−8+4)/4");
    }
}
