//! What a job asks for. The C ABI converts its structs into these; the engine validates them at
//! submit so that a bad request fails at once, with a message naming the field.

use std::sync::Arc;

use super::voice::Voice;
use crate::error::{Error, Result};

/// Longest text accepted in one request, in bytes (about an hour of speech).
pub const MAX_TEXT_BYTES: usize = 1 << 20;
/// Lowest and highest sample rates accepted anywhere (input audio, requested output).
pub const MIN_SAMPLE_RATE: u32 = 4_000;
pub const MAX_SAMPLE_RATE: u32 = 384_000;
/// Most interleaved channels accepted for ASR input.
pub const MAX_CHANNELS: u32 = 64;

/// Sampling knobs. `None` means "the checkpoint's `generation_config.json` value".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sampling {
    pub temperature: Option<f32>,
    pub top_k: Option<u32>,
    pub top_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    /// Argmax decoding (the official `do_sample=False, subtalker_dosample=False`).
    pub greedy: bool,
    /// Same seed and inputs give the same output; `None` draws a fresh seed.
    pub seed: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TtsRequest {
    pub text: String,
    pub language: Option<String>,
    pub speaker: Option<String>,
    pub instruct: Option<String>,
    /// A cloned voice (Base checkpoints, which need one; the others refuse it).
    pub voice: Option<Arc<Voice>>,
    /// 0 = automatic (engine default, else the model's cap from the text length).
    pub max_new_tokens: u32,
    pub sampling: Sampling,
    /// Output rate in Hz; 0 = the model's own rate.
    pub sample_rate: u32,
    /// Denoise strength in [0, 1]; `None` = no denoising.
    pub denoise: Option<f32>,
    /// Make audio readable frame by frame while the job runs.
    pub stream: bool,
    /// Feed the text one token per generated frame (the official `non_streaming_mode=False`,
    /// prompt layout A) instead of the whole text in the prompt (layout B, the API default).
    pub text_streaming: bool,
    /// Higher runs first among queued jobs of the same kind.
    pub priority: i32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AsrRequest {
    /// Interleaved PCM, `frames * channels` samples.
    pub audio: Vec<f32>,
    pub sample_rate: u32,
    pub channels: u32,
    /// Force the transcript's language (skips detection).
    pub language: Option<String>,
    /// Context text given to the decoder (names, terms).
    pub context: Option<String>,
    /// 0 = automatic (engine default, else scaled with the audio length).
    pub max_new_tokens: u32,
    /// Denoise strength in [0, 1] applied before the front-end; `None` = none.
    pub denoise: Option<f32>,
    pub priority: i32,
}

/// Reference audio to clone a voice from (Base checkpoints).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VoiceRequest {
    /// Interleaved PCM, `frames * channels` samples, any rate (resampled to the encoders').
    pub audio: Vec<f32>,
    pub sample_rate: u32,
    pub channels: u32,
    /// What is said in the reference: in-context cloning (closer to the reference's voice and
    /// manner); `None` clones from the speaker embedding alone.
    pub transcript: Option<String>,
    /// Denoise strength in [0, 1] applied to the reference first (noise in the reference is
    /// copied into the clone); `None` = none.
    pub denoise: Option<f32>,
}

/// Longest reference accepted, in seconds (the official examples use 3 to 15 s; every second
/// adds 12.5 prompt rows to in-context requests).
pub const MAX_REFERENCE_SECONDS: f64 = 60.0;
/// Shortest reference accepted: one codec frame (80 ms).
pub const MIN_REFERENCE_SECONDS: f64 = 0.08;

impl AsrRequest {
    pub fn frames(&self) -> usize {
        if self.channels == 0 { 0 } else { self.audio.len() / self.channels as usize }
    }
    pub fn duration_seconds(&self) -> f64 {
        if self.sample_rate == 0 { 0.0 } else { self.frames() as f64 / self.sample_rate as f64 }
    }
}

fn check_text(field: &str, v: Option<&str>) -> Result<()> {
    if let Some(s) = v {
        if s.len() > MAX_TEXT_BYTES {
            return Err(Error::invalid(format!("{field} is {} bytes; the limit is {MAX_TEXT_BYTES}", s.len())));
        }
        if s.contains('\0') {
            return Err(Error::invalid(format!("{field} contains a NUL character")));
        }
    }
    Ok(())
}

fn check_denoise(v: Option<f32>) -> Result<()> {
    match v {
        Some(s) if !(0.0..=1.0).contains(&s) => {
            Err(Error::invalid(format!("denoise strength must be in [0, 1], got {s}")))
        }
        _ => Ok(()),
    }
}

impl Sampling {
    pub fn validate(&self) -> Result<()> {
        if let Some(t) = self.temperature
            && (!t.is_finite() || t <= 0.0)
        {
            return Err(Error::invalid(format!("temperature must be finite and > 0, got {t}")));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(Error::invalid(format!("top_p must be in (0, 1], got {p}")));
        }
        if let Some(r) = self.repetition_penalty
            && (!r.is_finite() || r <= 0.0)
        {
            return Err(Error::invalid(format!("repetition_penalty must be finite and > 0, got {r}")));
        }
        Ok(())
    }
}

impl TtsRequest {
    pub fn validate(&self) -> Result<()> {
        if self.text.trim().is_empty() {
            return Err(Error::invalid("text is empty"));
        }
        check_text("text", Some(&self.text))?;
        check_text("language", self.language.as_deref())?;
        check_text("speaker", self.speaker.as_deref())?;
        check_text("instruct", self.instruct.as_deref())?;
        if let Some(v) = &self.voice {
            v.validate()?;
        }
        self.sampling.validate()?;
        if self.sample_rate != 0 && !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&self.sample_rate) {
            return Err(Error::invalid(format!(
                "sample_rate must be 0 (model rate) or in {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE}, got {}",
                self.sample_rate
            )));
        }
        check_denoise(self.denoise)
    }
}

/// Interleaved PCM: channel count and rate in range, whole frames, every sample finite.
fn check_pcm(audio: &[f32], sample_rate: u32, channels: u32) -> Result<()> {
    if !(1..=MAX_CHANNELS).contains(&channels) {
        return Err(Error::invalid(format!("channels must be in 1..={MAX_CHANNELS}, got {channels}")));
    }
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
        return Err(Error::invalid(format!(
            "sample_rate must be in {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE}, got {sample_rate}"
        )));
    }
    if !audio.len().is_multiple_of(channels as usize) {
        return Err(Error::invalid(format!(
            "audio holds {} samples, not a whole number of {channels}-channel frames",
            audio.len()
        )));
    }
    if let Some(i) = audio.iter().position(|x| !x.is_finite()) {
        return Err(Error::invalid(format!("audio sample {i} is not finite ({})", audio[i])));
    }
    Ok(())
}

impl VoiceRequest {
    pub fn validate(&self) -> Result<()> {
        check_pcm(&self.audio, self.sample_rate, self.channels)?;
        let seconds = (self.audio.len() / self.channels as usize) as f64 / self.sample_rate as f64;
        if !(MIN_REFERENCE_SECONDS..=MAX_REFERENCE_SECONDS).contains(&seconds) {
            return Err(Error::invalid(format!(
                "the reference is {seconds:.2} s long; it must be {MIN_REFERENCE_SECONDS} to {MAX_REFERENCE_SECONDS} s"
            )));
        }
        if let Some(t) = &self.transcript
            && t.trim().is_empty()
        {
            return Err(Error::invalid("transcript is empty (omit it to clone from the speaker embedding alone)"));
        }
        if let Some(t) = &self.transcript {
            let max = crate::seams::voice::MAX_TRANSCRIPT_BYTES;
            if t.len() > max {
                return Err(Error::invalid(format!("transcript is {} bytes; the limit is {max}", t.len())));
            }
        }
        check_text("transcript", self.transcript.as_deref())?;
        check_denoise(self.denoise)
    }
}

impl AsrRequest {
    pub fn validate(&self) -> Result<()> {
        check_pcm(&self.audio, self.sample_rate, self.channels)?;
        if self.audio.is_empty() {
            return Err(Error::invalid("audio is empty (0 frames)"));
        }
        check_text("language", self.language.as_deref())?;
        check_text("context", self.context.as_deref())?;
        check_denoise(self.denoise)
    }
}
