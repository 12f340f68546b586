//! The Qwen3-TTS speaker encoder's front-end: the log-mel spectrogram that the official
//! `extract_speaker_embedding` computes with `mel_spectrogram(n_fft=1024, num_mels=128,
//! sampling_rate=24000, hop_size=256, win_size=1024, fmin=0, fmax=12000)` (spec §6.1):
//!
//! 1. reflect-pad `(n_fft − hop) / 2 = 384` samples on each side (the edge sample is not
//!    repeated, as `F.pad(mode="reflect")`);
//! 2. STFT without centering: frames every `hop` samples, periodic Hann window of `n_fft`, so a
//!    clip of L samples gives `(L + 768 − 1024) / 256 + 1 = ⌊L / 256⌋` frames;
//! 3. magnitude `sqrt(re² + im² + 1e-9)`;
//! 4. 128 Slaney-scale, Slaney-normalised triangular mel filters from 0 to 12 kHz
//!    (`librosa.filters.mel`);
//! 5. `ln(max(mel, 1e-5))`.
//!
//! Reflect padding needs more than 384 samples: a shorter clip is an error naming the minimum
//! (`min_samples`; the engine refuses references shorter than 1920 samples before this). The
//! transform runs in f64 (the reference runs in f32; the difference is far below the parity
//! tolerance) and the features are stored frame-major, `[frames, n_mels]`.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::error::{Error, Result};
use crate::models::mel::slaney_filters;

/// FFT size and window length (`n_fft = win_size`).
pub const N_FFT: usize = 1024;
/// Hop between frames.
pub const HOP: usize = 256;
/// Reflect padding on each side: `(n_fft − hop) / 2`.
pub const PAD: usize = (N_FFT - HOP) / 2;
/// Upper edge of the filterbank (`fmax=12000` in `extract_speaker_embedding`).
const FMAX_HZ: f64 = 12000.0;
/// Added to the power before the square root (`sqrt(re² + im² + 1e-9)`).
const POWER_EPS: f64 = 1e-9;
/// Floor of the mel energies before the log (`dynamic_range_compression_torch`'s `clip_val`).
const LOG_FLOOR: f64 = 1e-5;

pub struct SpeakerMel {
    n_mels: usize,
    /// Periodic Hann window, `N_FFT` long (`torch.hann_window`).
    window: Vec<f64>,
    /// Each filter's first non-zero bin and its weights from there (the rest are zero).
    filters: Vec<(usize, Vec<f64>)>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl SpeakerMel {
    /// The official front-end with `n_mels` filters at `sample_rate` (the speaker-encoder config's
    /// `mel_dim` and `sample_rate`, validated to 128 and 24000).
    pub fn new(n_mels: usize, sample_rate: u32) -> SpeakerMel {
        let n = N_FFT;
        let window = (0..n).map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()).collect();
        let bins = n / 2 + 1;
        let dense = slaney_filters(n, n_mels, sample_rate, FMAX_HZ);
        let filters = dense
            .chunks(bins)
            .map(|row| {
                let first = row.iter().position(|&v| v != 0.0).unwrap_or(bins);
                let last = row.iter().rposition(|&v| v != 0.0).map_or(first, |l| l + 1);
                (first, row[first..last].to_vec())
            })
            .collect();
        SpeakerMel { n_mels, window, filters, fft: RealFftPlanner::<f64>::new().plan_fft_forward(n) }
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Shortest clip the reflect padding can take: `PAD + 1` samples.
    pub fn min_samples(&self) -> usize {
        PAD + 1
    }

    /// Frames a clip of `samples` samples (at least `min_samples()`) gives:
    /// `(samples + 2·PAD − N_FFT) / HOP + 1`.
    pub fn frames(&self, samples: usize) -> usize {
        (samples + 2 * PAD - N_FFT) / HOP + 1
    }

    /// Log-mel features of one mono 24 kHz clip, `[frames, n_mels]` row-major. A clip shorter than
    /// `min_samples()` is an `InvalidArgument` error.
    pub fn features(&self, audio: &[f32]) -> Result<Vec<f32>> {
        let len = audio.len();
        if len < self.min_samples() {
            return Err(Error::invalid(format!(
                "speaker encoder: a reference of {len} samples is too short for the mel front-end \
                 (its reflect padding of {PAD} samples needs at least {} samples)",
                self.min_samples()
            )));
        }
        // Sample i of the padded clip (i in 0..len + 2·PAD) — reflected at both ends.
        let at = |i: usize| -> f64 {
            let j = if i < PAD {
                PAD - i
            } else if i - PAD >= len {
                2 * (len - 1) - (i - PAD)
            } else {
                i - PAD
            };
            audio[j] as f64
        };
        let frames = self.frames(len);
        let mut data = vec![0.0f32; frames * self.n_mels];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut magnitude = vec![0.0f64; N_FFT / 2 + 1];
        for (t, out) in data.chunks_mut(self.n_mels).enumerate() {
            for (i, x) in input.iter_mut().enumerate() {
                *x = at(t * HOP + i) * self.window[i];
            }
            self.fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch).expect("FFT sizes match the plan");
            for (m, c) in magnitude.iter_mut().zip(&spectrum) {
                *m = (c.norm_sqr() + POWER_EPS).sqrt();
            }
            for (o, (first, weights)) in out.iter_mut().zip(&self.filters) {
                let mel: f64 = weights.iter().zip(&magnitude[*first..]).map(|(w, m)| w * m).sum();
                *o = mel.max(LOG_FLOOR).ln() as f32;
            }
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_count_and_minimum_length() {
        let m = SpeakerMel::new(128, 24_000);
        assert_eq!(m.min_samples(), 385);
        assert!(m.features(&[0.1; 384]).is_err());
        for len in [385, 1920, 32_880, 48_000] {
            let clip: Vec<f32> = (0..len).map(|i| (i as f32 * 0.031).sin() * 0.4).collect();
            let f = m.features(&clip).unwrap();
            assert_eq!(m.frames(len), len / HOP);
            assert_eq!(f.len(), m.frames(len) * 128);
            assert!(f.iter().all(|v| v.is_finite() && *v >= (1e-5f64).ln() as f32));
        }
    }

    #[test]
    fn silence_is_the_magnitude_floor_through_the_filters() {
        // All-zero input: every bin's magnitude is sqrt(1e-9), so each mel value is that times the
        // filter's area, floored at 1e-5.
        let m = SpeakerMel::new(128, 24_000);
        let f = m.features(&[0.0; 2048]).unwrap();
        for (j, (_, w)) in m.filters.iter().enumerate() {
            let want = (w.iter().sum::<f64>() * POWER_EPS.sqrt()).max(LOG_FLOOR).ln() as f32;
            assert!((f[j] - want).abs() < 1e-6, "filter {j}");
        }
    }
}
