//! Per-job stage timings, measured where the work happens with a monotonic clock.

use std::time::{Duration, Instant};

/// A pipeline stage. Each job accumulates the time of every stage it took part in; a batched stage
/// counts its whole duration for every job in the batch (the job waited for all of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Model load or swap caused by the batch this job was admitted into.
    ModelLoad,
    /// Talker + code predictor: prefill and decode steps.
    Tts,
    /// Codec decoder: codes → waveform.
    Codec,
    Denoise,
    /// Resampling (to the requested output rate for TTS, to the model rate for ASR input).
    Upsample,
    AsrFrontend,
    AsrEncode,
    AsrDecode,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::ModelLoad => "model load",
            Stage::Tts => "tts",
            Stage::Codec => "codec",
            Stage::Denoise => "denoise",
            Stage::Upsample => "upsample",
            Stage::AsrFrontend => "asr front-end",
            Stage::AsrEncode => "asr encode",
            Stage::AsrDecode => "asr decode",
        }
    }
}

/// Durations of one job, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// From submit until the job was admitted into a batch (or ended while queued).
    pub queue_ms: f64,
    pub model_load_ms: f64,
    pub tts_ms: f64,
    pub codec_ms: f64,
    pub denoise_ms: f64,
    pub upsample_ms: f64,
    pub asr_frontend_ms: f64,
    pub asr_encode_ms: f64,
    pub asr_decode_ms: f64,
    /// From submit until the job ended (so far, while it runs).
    pub total_ms: f64,
    /// Largest number of sequences that shared a batch with this job (itself included).
    pub batch_size: u32,
    /// Tokens generated: codec frames for TTS, text tokens for ASR.
    pub tokens: u32,
}

impl Timings {
    pub fn add(&mut self, stage: Stage, d: Duration) {
        let ms = d.as_secs_f64() * 1e3;
        let slot = match stage {
            Stage::ModelLoad => &mut self.model_load_ms,
            Stage::Tts => &mut self.tts_ms,
            Stage::Codec => &mut self.codec_ms,
            Stage::Denoise => &mut self.denoise_ms,
            Stage::Upsample => &mut self.upsample_ms,
            Stage::AsrFrontend => &mut self.asr_frontend_ms,
            Stage::AsrEncode => &mut self.asr_encode_ms,
            Stage::AsrDecode => &mut self.asr_decode_ms,
        };
        *slot += ms;
    }

    /// Sum of all stages, the queue included (never more than `total_ms` for a finished job).
    pub fn stages_sum_ms(&self) -> f64 {
        self.queue_ms
            + self.model_load_ms
            + self.tts_ms
            + self.codec_ms
            + self.denoise_ms
            + self.upsample_ms
            + self.asr_frontend_ms
            + self.asr_encode_ms
            + self.asr_decode_ms
    }
}

/// Runs `f`, returning its value and how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}
