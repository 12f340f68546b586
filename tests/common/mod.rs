//! Test doubles for the engine's own tests: deterministic stand-ins for the models, so that the
//! engine's scheduling, batching, streaming and bookkeeping can be checked without weights.
//! They live here, under tests/, and nowhere in the library.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use voxkit::error::{Error, ErrorKind, Result};
use voxkit::seams::request::TtsRequest;
use voxkit::seams::*;

pub const CODEBOOKS: usize = 4;
pub const SAMPLES_PER_FRAME: usize = 8;
pub const TTS_RATE: u32 = 24_000;
pub const ASR_RATE: u32 = 16_000;

/// How many frames the fake TTS makes for a text: the number after "frames:" if present,
/// otherwise one per byte.
pub fn frames_for(text: &str) -> u32 {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("frames:").and_then(|n| n.parse().ok()))
        .unwrap_or(text.len() as u32)
}

/// The code the fake TTS emits for frame `i` of a text (the same alone or batched).
pub fn code(text: &str, i: u32, book: usize) -> u32 {
    (text.bytes().map(|b| b as u32).sum::<u32>() + 7 * i + book as u32) % 2048
}

/// Shared knobs and counters of the doubles.
#[derive(Default)]
pub struct Knobs {
    /// Sleep inside every step (lets tests observe and cancel running jobs).
    pub step_delay_us: AtomicU64,
    /// Sleep inside every model load.
    pub load_delay_ms: AtomicU64,
    pub tts_loads: AtomicUsize,
    pub asr_loads: AtomicUsize,
    /// Largest number of slots stepped together.
    pub max_step_batch: AtomicUsize,
    /// Every (kind, batch) stepped, in order: 'T' or 'A'.
    pub step_log: Mutex<Vec<char>>,
}

pub struct FakeLoader {
    pub knobs: Arc<Knobs>,
    pub tts_bytes: u64,
    pub asr_bytes: u64,
}

impl FakeLoader {
    pub fn new(tts_bytes: u64, asr_bytes: u64) -> (Arc<FakeLoader>, Arc<Knobs>) {
        let knobs = Arc::new(Knobs::default());
        (Arc::new(FakeLoader { knobs: knobs.clone(), tts_bytes, asr_bytes }), knobs)
    }
}

impl FakeLoader {
    /// Takes `load_delay_ms`, in 1 ms "tensors" with the stop check between them, as the real
    /// loader does (`Checkpoint::take`).
    fn slow_load(&self) -> Result<()> {
        for _ in 0..self.knobs.load_delay_ms.load(Ordering::Relaxed) {
            voxkit::seams::stop::check()?;
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

impl ModelLoader for FakeLoader {
    fn inspect(&self, kind: ModelKind, _dir: &Path, _ctx: &LoadContext) -> Result<ModelSpec> {
        Ok(match kind {
            ModelKind::Tts => ModelSpec::host(self.tts_bytes, TTS_RATE),
            ModelKind::Asr => ModelSpec::host(self.asr_bytes, ASR_RATE),
        })
    }
    fn load_tts(&self, _dir: &Path, ctx: &LoadContext) -> Result<TtsModels> {
        self.slow_load()?;
        self.knobs.tts_loads.fetch_add(1, Ordering::Relaxed);
        Ok(TtsModels {
            generator: Box::new(FakeTts {
                knobs: self.knobs.clone(),
                slots: (0..ctx.max_slots).map(|_| None).collect(),
            }),
            codec: Box::new(FakeCodec),
            voice: None,
        })
    }
    fn load_asr(&self, _dir: &Path, ctx: &LoadContext) -> Result<Box<dyn AsrModel>> {
        self.slow_load()?;
        self.knobs.asr_loads.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(FakeAsr { knobs: self.knobs.clone(), slots: (0..ctx.max_slots).map(|_| None).collect() }))
    }
    fn denoiser(&self, _rate: u32, strength: f32, _on: Option<&PostDevice>) -> Result<Box<dyn AudioStream>> {
        Ok(Box::new(Gain(1.0 - 0.5 * strength)))
    }
    fn resampler(&self, from: u32, to: u32, _on: Option<&PostDevice>) -> Result<Box<dyn AudioStream>> {
        if !to.is_multiple_of(from) && !from.is_multiple_of(to) {
            return Err(Error::new(ErrorKind::Unsupported, "fake resampler: integer ratios only"));
        }
        Ok(Box::new(Repeat { up: (to / from).max(1) as usize, down: (from / to).max(1) as usize, phase: 0 }))
    }
}

/// Fake denoiser: a gain.
pub struct Gain(pub f32);
impl AudioStream for Gain {
    fn process(&mut self, input: &[f32], output: &mut Vec<f32>) {
        output.extend(input.iter().map(|x| x * self.0));
    }
    fn finish(&mut self, _output: &mut Vec<f32>) {}
}

/// Fake resampler: repeats samples (up) or keeps every n-th (down), across chunks.
pub struct Repeat {
    up: usize,
    down: usize,
    phase: usize,
}
impl AudioStream for Repeat {
    fn process(&mut self, input: &[f32], output: &mut Vec<f32>) {
        for &x in input {
            if self.phase.is_multiple_of(self.down) {
                output.extend(std::iter::repeat_n(x, self.up));
            }
            self.phase += 1;
        }
    }
    fn finish(&mut self, _output: &mut Vec<f32>) {}
}

struct TtsSlot {
    text: String,
    target: u32,
    cap: u32,
    emitted: u32,
}

pub struct FakeTts {
    knobs: Arc<Knobs>,
    slots: Vec<Option<TtsSlot>>,
}

impl TtsModel for FakeTts {
    fn max_slots(&self) -> usize {
        self.slots.len()
    }
    fn auto_max_new_tokens(&self, request: &TtsRequest) -> u32 {
        2 * request.text.len() as u32 + 10
    }
    fn prefill(&mut self, seqs: &[TtsPrefill<'_>]) -> Vec<Result<()>> {
        seqs.iter()
            .map(|s| {
                if s.request.speaker.as_deref() == Some("nobody") {
                    return Err(Error::invalid("unknown speaker 'nobody'"));
                }
                assert!(self.slots[s.slot].is_none(), "slot {} reused while busy", s.slot);
                self.slots[s.slot] = Some(TtsSlot {
                    text: s.request.text.clone(),
                    target: frames_for(&s.request.text),
                    cap: s.max_new_tokens,
                    emitted: 0,
                });
                Ok(())
            })
            .collect()
    }
    fn step(&mut self, slots: &[usize]) -> Result<Vec<TtsStep>> {
        self.knobs.max_step_batch.fetch_max(slots.len(), Ordering::Relaxed);
        self.knobs.step_log.lock().push('T');
        std::thread::sleep(Duration::from_micros(self.knobs.step_delay_us.load(Ordering::Relaxed)));
        slots
            .iter()
            .map(|&i| {
                let s = self.slots[i].as_mut().expect("stepping a busy slot");
                if s.text.contains("panic") {
                    panic!("fake TTS asked to panic");
                }
                if s.emitted >= s.target {
                    return Ok(TtsStep { frame: None, finish: Some(Finish::Eos) });
                }
                let frame: Vec<u32> = (0..CODEBOOKS).map(|b| code(&s.text, s.emitted, b)).collect();
                s.emitted += 1;
                // As the official generate: at most max_new_tokens - 1 frames.
                let finish = (s.emitted + 1 >= s.cap && s.emitted < s.target).then_some(Finish::Cap);
                Ok(TtsStep { frame: Some(frame), finish })
            })
            .collect()
    }
    fn release(&mut self, slot: usize) {
        self.slots[slot] = None;
    }
}

/// Fake codec: every frame becomes SAMPLES_PER_FRAME samples, sample j = (code0 + j) / 4096.
pub struct FakeCodec;
pub fn frame_audio(frame: &[u32]) -> Vec<f32> {
    (0..SAMPLES_PER_FRAME).map(|j| (frame[0] as f32 + j as f32) / 4096.0).collect()
}
impl CodecDecoder for FakeCodec {
    fn sample_rate(&self) -> u32 {
        TTS_RATE
    }
    fn decode(&mut self, utterances: &[&[Vec<u32>]]) -> Result<Vec<Vec<f32>>> {
        Ok(utterances.iter().map(|u| u.iter().flat_map(|f| frame_audio(f)).collect()).collect())
    }
    fn decode_stream(&mut self, items: &[(usize, &[Vec<u32>])]) -> Result<Vec<Vec<f32>>> {
        Ok(items.iter().map(|(_, frames)| frames.iter().flat_map(|f| frame_audio(f)).collect()).collect())
    }
    fn end_stream(&mut self, _slot: usize) {}
}

struct AsrSlot {
    target: u32,
    cap: u32,
    emitted: u32,
    language: String,
}

pub struct FakeAsr {
    knobs: Arc<Knobs>,
    slots: Vec<Option<AsrSlot>>,
}

/// Tokens the fake ASR emits for a clip of `samples` mono samples at 16 kHz.
pub fn asr_tokens(samples: usize) -> u32 {
    (samples / 1600) as u32 + 1
}

impl AsrModel for FakeAsr {
    fn max_slots(&self) -> usize {
        self.slots.len()
    }
    fn sample_rate(&self) -> u32 {
        ASR_RATE
    }
    fn auto_max_new_tokens(&self, seconds: f64) -> u32 {
        (seconds * 20.0) as u32 + 16
    }
    fn frontend(&mut self, clips: &[&[f32]]) -> Result<Vec<AsrFeatures>> {
        Ok(clips
            .iter()
            .map(|c| AsrFeatures { data: c.to_vec(), frames: c.len(), bins: 1, passes: Vec::new() })
            .collect())
    }
    fn prefill(&mut self, seqs: &[AsrPrefill<'_>]) -> Vec<Result<()>> {
        seqs.iter()
            .map(|s| {
                assert!(self.slots[s.slot].is_none());
                self.slots[s.slot] = Some(AsrSlot {
                    target: asr_tokens(s.features.frames),
                    cap: s.max_new_tokens,
                    emitted: 0,
                    language: s.request.language.clone().unwrap_or_else(|| "English".into()),
                });
                Ok(())
            })
            .collect()
    }
    fn step(&mut self, slots: &[usize]) -> Result<Vec<AsrStep>> {
        self.knobs.max_step_batch.fetch_max(slots.len(), Ordering::Relaxed);
        self.knobs.step_log.lock().push('A');
        std::thread::sleep(Duration::from_micros(self.knobs.step_delay_us.load(Ordering::Relaxed)));
        Ok(slots
            .iter()
            .map(|&i| {
                let s = self.slots[i].as_mut().unwrap();
                s.emitted += 1;
                let finish = if s.emitted >= s.target {
                    Some(Finish::Eos)
                } else if s.emitted >= s.cap {
                    Some(Finish::Cap)
                } else {
                    None
                };
                AsrStep { token: Some(s.emitted), finish }
            })
            .collect())
    }
    fn transcript(&self, slot: usize) -> Transcript {
        let s = self.slots[slot].as_ref().unwrap();
        Transcript { language: s.language.clone(), text: format!("{} tokens", s.emitted) }
    }
    fn release(&mut self, slot: usize) {
        self.slots[slot] = None;
    }
}

/// An engine config with both (fake) models configured.
pub fn config() -> voxkit::EngineConfig {
    voxkit::EngineConfig {
        tts_model_dir: Some("fake-tts".into()),
        asr_model_dir: Some("fake-asr".into()),
        memory_budget: 1 << 30,
        max_batch: 4,
        ..Default::default()
    }
}

pub fn tts(text: &str) -> TtsRequest {
    TtsRequest { text: text.into(), ..Default::default() }
}

pub fn asr(samples: usize) -> voxkit::AsrRequest {
    voxkit::AsrRequest {
        audio: (0..samples).map(|i| ((i as f32) * 0.01).sin() * 0.1).collect(),
        sample_rate: ASR_RATE,
        channels: 1,
        ..Default::default()
    }
}

/// The audio the fake pipeline produces for `text` with no post-processing.
pub fn expected_audio(text: &str, frames: u32) -> Vec<f32> {
    (0..frames).flat_map(|i| frame_audio(&[code(text, i, 0)])).collect()
}

/// Reads everything a finished job produced.
pub fn read_all(engine: &voxkit::Engine, id: u64) -> Vec<f32> {
    let mut out = Vec::new();
    let mut buf = [0f32; 37];
    loop {
        let n = engine.read_audio(id, &mut buf).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}
