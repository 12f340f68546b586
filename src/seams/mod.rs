//! The seams between the engine and the models (both import this module; it imports neither). The engine drives every model one step at a time
//! (prefill new sequences into free slots, step the active slots, release finished ones), so the
//! worker — not the model — decides who runs, and continuous batching falls out of it.
//!
//! The real implementations live in `crate::models` (Qwen3-TTS talker + code predictor, codec,
//! Qwen3-ASR) and `crate::dsp` (denoise, resample); the engine's tests plug doubles in under
//! `tests/`.

use std::path::Path;

pub mod request;
pub mod stop;
pub mod voice;

use crate::backend::{Device, Quantization};
pub use crate::dsp::AudioStream;
pub use crate::dsp::device::PostDevice;
use crate::error::{Error, ErrorKind, Result};
use request::{AsrRequest, TtsRequest};
pub use voice::Voice;

/// The two kinds of model the engine serves. Each has its own mutex, slots and queue group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelKind {
    Tts,
    Asr,
}

impl ModelKind {
    pub fn other(self) -> ModelKind {
        match self {
            ModelKind::Tts => ModelKind::Asr,
            ModelKind::Asr => ModelKind::Tts,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Tts => "tts",
            ModelKind::Asr => "asr",
        }
    }
}

/// Where and how a model is loaded.
#[derive(Clone, Debug)]
pub struct LoadContext {
    /// The resolved device (never `Auto`).
    pub device: Device,
    pub cpu_threads: usize,
    /// Sequence slots to preallocate (the engine's max batch).
    pub max_slots: usize,
    /// Weight quantization of the TTS generator and the ASR decoder (CPU only).
    pub quantization: Quantization,
}

/// What the engine learns about a checkpoint without loading it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSpec {
    /// Host memory the loaded model occupies (on the CPU backend: weights, KV caches for all
    /// slots, scratch; on a GPU: what stays on the host, e.g. the tokenizer).
    pub host_bytes: u64,
    /// Device memory it occupies (0 on the CPU backend).
    pub device_bytes: u64,
    /// TTS: the rate of the decoded waveform; ASR: the rate the front-end expects (mono).
    pub sample_rate: u32,
    /// TTS: the speakers a request may name, lower case, sorted (empty: the model takes none);
    /// the first is the default for a request that names none.
    pub speakers: Vec<String>,
    /// TTS: the languages a request may name, lower case, "auto" first (empty: not checked).
    pub languages: Vec<String>,
    /// TTS Base checkpoints: they clone voices (requests need one) — what the voices look like
    /// and the rate references are encoded at; `None`: the model takes no voice.
    pub voice: Option<voice::VoiceSpec>,
}

impl ModelSpec {
    /// A spec whose memory is all on the host (the CPU backend, test doubles).
    pub fn host(bytes: u64, sample_rate: u32) -> ModelSpec {
        ModelSpec {
            host_bytes: bytes,
            device_bytes: 0,
            sample_rate,
            speakers: Vec::new(),
            languages: Vec::new(),
            voice: None,
        }
    }
}

/// Why a sequence stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// The model emitted its end token.
    Eos,
    /// The generation reached its `max_new_tokens` cap (the job carries TRUNCATED).
    Cap,
}

/// A sequence to admit into a TTS slot.
pub struct TtsPrefill<'a> {
    pub slot: usize,
    pub request: &'a TtsRequest,
    /// The effective cap (request → engine default → model's automatic cap → hard limit).
    pub max_new_tokens: u32,
}

/// What one decode step produced for one slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TtsStep {
    /// The new codec frame (one code per codebook), if the step produced one.
    pub frame: Option<Vec<u32>>,
    /// Set when the sequence ended at this step; the slot is then released by the engine.
    pub finish: Option<Finish>,
}

/// Text → codec frames: the talker and code predictor, stepped one frame at a time.
pub trait TtsModel: Send {
    /// Sequences this instance can hold at once (its preallocated slots).
    fn max_slots(&self) -> usize;
    /// The automatic cap for a request that gives none: a conservative bound from the text.
    fn auto_max_new_tokens(&self, request: &TtsRequest) -> u32;
    /// Admits sequences into free slots; one result per sequence (a bad speaker fails only its job).
    fn prefill(&mut self, seqs: &[TtsPrefill<'_>]) -> Vec<Result<()>>;
    /// Advances every listed slot by one frame. One result per slot, in order.
    fn step(&mut self, slots: &[usize]) -> Result<Vec<TtsStep>>;
    /// Frees a slot (finished, cancelled or failed) for reuse.
    fn release(&mut self, slot: usize);
}

/// Codec frames → waveform.
pub trait CodecDecoder: Send {
    /// Rate of the decoded waveform in Hz.
    fn sample_rate(&self) -> u32;
    /// Decodes whole utterances (offline), batched.
    fn decode(&mut self, utterances: &[&[Vec<u32>]]) -> Result<Vec<Vec<f32>>>;
    /// Streaming: decodes the new frames of each slot's stream, keeping per-slot state.
    fn decode_stream(&mut self, items: &[(usize, &[Vec<u32>])]) -> Result<Vec<Vec<f32>>>;
    /// Forgets a slot's streaming state.
    fn end_stream(&mut self, slot: usize);
    /// Streaming: starts a slot's stream as if `context` (an in-context voice's reference) had
    /// been decoded through it, without its audio.
    fn prime_stream(&mut self, slot: usize, context: &[Vec<u32>]) -> Result<()> {
        self.end_stream(slot);
        for piece in context.chunks(300) {
            self.decode_stream(&[(slot, piece)])?;
        }
        Ok(())
    }
    /// Offline: decodes `frames` as the continuation of `context` (decoded together, as the
    /// official does, the context's share of the samples cut off).
    fn decode_after(&mut self, context: &[Vec<u32>], frames: &[Vec<u32>]) -> Result<Vec<f32>> {
        let joined: Vec<Vec<u32>> = context.iter().chain(frames).cloned().collect();
        let mut audio = self.decode(&[&joined])?.pop().unwrap_or_default();
        let cut = (audio.len() as u64 * context.len() as u64 / joined.len().max(1) as u64) as usize;
        audio.drain(..cut);
        Ok(audio)
    }
}

/// Reference audio → a cloned voice: a Base checkpoint's speaker encoder (the x-vector) and its
/// codec's encoder (the reference codes of in-context cloning).
pub trait VoiceEncoder: Send {
    /// The rate the encoders take (mono); the engine resamples the reference to it.
    fn sample_rate(&self) -> u32;
    /// A voice from mono audio at `sample_rate()`: in-context when a transcript is given, else
    /// x-vector only.
    fn encode(&mut self, audio: &[f32], transcript: Option<&str>) -> Result<voice::Voice>;
}

/// A loaded TTS model: the frame generator and its codec, held together behind one mutex; Base
/// checkpoints also have the encoders that make voices.
pub struct TtsModels {
    pub generator: Box<dyn TtsModel>,
    pub codec: Box<dyn CodecDecoder>,
    pub voice: Option<Box<dyn VoiceEncoder>>,
}

/// Log-mel (or other) features of one mono clip, frames × bins, row-major.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AsrFeatures {
    pub data: Vec<f32>,
    pub frames: usize,
    pub bins: usize,
    /// Frames of each decoding pass when a long clip was split (they add up to `frames`);
    /// empty: one pass.
    pub passes: Vec<usize>,
}

/// A sequence to admit into an ASR slot.
pub struct AsrPrefill<'a> {
    pub slot: usize,
    pub features: &'a AsrFeatures,
    pub request: &'a AsrRequest,
    pub max_new_tokens: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsrStep {
    /// The token generated at this step, if any.
    pub token: Option<u32>,
    pub finish: Option<Finish>,
}

/// A transcript: detected (or forced) language and text, as the official `transcribe` returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    pub language: String,
    pub text: String,
}

/// Audio → text: front-end, encoder (run in prefill) and decoder steps.
pub trait AsrModel: Send {
    fn max_slots(&self) -> usize;
    /// Rate the front-end expects (mono); the engine resamples to it.
    fn sample_rate(&self) -> u32;
    /// The automatic cap for a clip of this length.
    fn auto_max_new_tokens(&self, seconds: f64) -> u32;
    /// Features for a batch of mono clips at `sample_rate()`.
    fn frontend(&mut self, clips: &[&[f32]]) -> Result<Vec<AsrFeatures>>;
    /// Encodes the audio and prefills the prompt; one result per sequence.
    fn prefill(&mut self, seqs: &[AsrPrefill<'_>]) -> Vec<Result<()>>;
    /// Advances every listed slot by one token. One result per slot, in order.
    fn step(&mut self, slots: &[usize]) -> Result<Vec<AsrStep>>;
    /// The transcript of a slot so far (final once the slot finished).
    fn transcript(&self, slot: usize) -> Transcript;
    fn release(&mut self, slot: usize);
}

/// Builds models and post-processing streams. The library's `CheckpointLoader` reads the official
/// checkpoint folders; tests provide doubles.
pub trait ModelLoader: Send + Sync {
    /// The folder a configured model's files are in: `spec` itself when it is a folder; a
    /// loader may also accept other names (the checkpoint loader: a hub repo id, fetched into
    /// the cache if it is not there yet). Called once per model, at engine create.
    fn locate(&self, kind: ModelKind, spec: &Path) -> Result<std::path::PathBuf> {
        let _ = kind;
        Ok(spec.to_path_buf())
    }
    /// Reads what the engine must know of a checkpoint (memory need, rate) without loading it.
    fn inspect(&self, kind: ModelKind, dir: &Path, ctx: &LoadContext) -> Result<ModelSpec>;
    fn load_tts(&self, dir: &Path, ctx: &LoadContext) -> Result<TtsModels>;
    fn load_asr(&self, dir: &Path, ctx: &LoadContext) -> Result<Box<dyn AsrModel>>;
    /// A denoiser stream at `sample_rate` with `strength` in [0, 1]; on `device` when given (the
    /// engine's GPU), else on the CPU.
    fn denoiser(&self, sample_rate: u32, strength: f32, device: Option<&PostDevice>) -> Result<Box<dyn AudioStream>> {
        let _ = (sample_rate, strength, device);
        Err(Error::new(ErrorKind::Unsupported, "denoising is not available in this build"))
    }
    /// A resampler stream from one rate to another; on `device` when given, else on the CPU.
    fn resampler(&self, from_rate: u32, to_rate: u32, device: Option<&PostDevice>) -> Result<Box<dyn AudioStream>> {
        let _ = device;
        Err(Error::new(
            ErrorKind::Unsupported,
            format!("resampling ({from_rate} Hz → {to_rate} Hz) is not available in this build"),
        ))
    }
}
