//! The library's `ModelLoader`: builds the models and post-processing streams from the official
//! Qwen3-TTS / Qwen3-ASR checkpoint folders, on the compute backend of the resolved device.

use std::path::Path;

use super::fetch;
use crate::backend::{Compute, Device, Quantization};
use crate::dsp::device::DeviceStream;
use crate::error::{Error, ErrorKind, Result};
use crate::models::quant_cache::QuantCache;
use crate::models::tokenizer::{SplitRegex, TextTokenizer};
use crate::models::{asr, asr_config, codec, codec_config, codec_slots, tts, tts_config, weights};
use crate::seams::{AsrModel, AudioStream, LoadContext, ModelKind, ModelLoader, ModelSpec, PostDevice, TtsModels};

/// Loads the official Qwen3-TTS / Qwen3-ASR checkpoint folders.
pub struct CheckpointLoader;

fn load_error(msg: String) -> Error {
    Error::new(ErrorKind::ModelLoad, msg)
}

/// Checks that `dir` is a checkpoint folder with the files every official one has, naming what
/// is missing.
fn check_folder(kind: ModelKind, dir: &Path, files: &[&str]) -> Result<()> {
    if !dir.is_dir() {
        return Err(load_error(format!(
            "{} model folder {} does not exist or is not a folder",
            kind.name(),
            dir.display()
        )));
    }
    for file in files {
        if !dir.join(file).is_file() {
            return Err(load_error(format!("{} model folder {} has no {file}", kind.name(), dir.display())));
        }
    }
    Ok(())
}

const TTS_FILES: [&str; 5] = ["config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer_config.json"];

/// f32 keys and values of one token in every layer (saturating: configs are not trusted).
fn kv_bytes_per_token(layers: usize, kv_heads: usize, head_dim: usize) -> u64 {
    [layers, 2, kv_heads, head_dim, 4].iter().fold(1u64, |a, &b| a.saturating_mul(b as u64))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

impl CheckpointLoader {
    /// Bytes a loaded Qwen3-TTS model needs: its weights (talker, code predictor, codec) as
    /// stored, plus f32 KV caches for `slots` sequences of about 1024 tokens each (the CPU caches
    /// grow with use).
    pub fn tts_memory(dir: &Path, slots: usize) -> Result<u64> {
        let cfg = tts_config::TtsConfig::load(dir)?;
        let d = cfg.talker_dims();
        let kv = kv_bytes_per_token(d.layers, d.kv_heads, d.head_dim);
        Ok(file_len(&dir.join("model.safetensors"))
            .saturating_add(file_len(&dir.join("speech_tokenizer/model.safetensors")))
            .saturating_add((slots as u64).saturating_mul(1024).saturating_mul(kv)))
    }
}

/// The one construction path of every model, for the engine and the CLI's benchmarks alike.
impl CheckpointLoader {
    /// The compute backend of a load context's (resolved) device.
    pub fn compute(ctx: &LoadContext) -> Result<Compute> {
        Compute::for_recipe(ctx.device, ctx.cpu_threads, ctx.quantization)
    }

    /// The Qwen3-TTS talker and code predictor of a checkpoint folder.
    pub fn tts_generator(dir: &Path, cx: &Compute, ctx: &LoadContext) -> Result<tts::Qwen3Tts> {
        check_folder(ModelKind::Tts, dir, &TTS_FILES)?;
        let mut m = tts::Qwen3Tts::load(dir, cx.clone(), ctx.max_slots)?;
        quantized(dir, "tts", ctx, |cache| m.quantize(ctx.quantization, cache))?;
        Ok(m)
    }

    /// The codec decoder of a Qwen3-TTS checkpoint folder (`speech_tokenizer/`), with the
    /// context's quantization recipe applied (`Codec::quantize`).
    pub fn codec(dir: &Path, cx: &Compute, ctx: &LoadContext) -> Result<codec::Codec> {
        check_folder(ModelKind::Tts, dir, &CODEC_FILES)?;
        let mut codec = codec::Codec::load(&dir.join("speech_tokenizer"), cx.clone())?;
        codec.quantize(ctx.quantization)?;
        Ok(codec)
    }

    /// A Qwen3-ASR checkpoint folder.
    pub fn asr(dir: &Path, cx: &Compute, ctx: &LoadContext) -> Result<asr::Qwen3Asr> {
        check_asr_folder(dir)?;
        let mut m = asr::Qwen3Asr::load(dir, cx.clone(), ctx.max_slots)?;
        quantized(dir, "asr", ctx, |cache| m.quantize(ctx.quantization, cache))?;
        Ok(m)
    }
}

/// Runs a model's quantization through the disk cache in its folder (`QuantCache`), when the
/// context asks for one.
fn quantized(
    dir: &Path,
    kind: &str,
    ctx: &LoadContext,
    quantize: impl FnOnce(&mut QuantCache) -> Result<()>,
) -> Result<()> {
    if ctx.quantization == Quantization::None {
        return Ok(());
    }
    let mut cache = QuantCache::open(dir, kind, ctx.quantization);
    quantize(&mut cache)?;
    let (hits, made) = cache.counts();
    log::info!("{kind} weights {}: {hits} from the cache, {made} quantized now", ctx.quantization.name());
    cache.finish();
    Ok(())
}

/// A Qwen3-ASR folder: config, tokenizer, and the weights in one file or in shards.
fn check_asr_folder(dir: &Path) -> Result<()> {
    check_folder(ModelKind::Asr, dir, &["config.json", "vocab.json", "merges.txt", "tokenizer_config.json"])?;
    if !dir.join("model.safetensors").is_file() && !dir.join("model.safetensors.index.json").is_file() {
        return Err(load_error(format!(
            "asr model folder {} has neither model.safetensors nor model.safetensors.index.json",
            dir.display()
        )));
    }
    Ok(())
}

impl CheckpointLoader {
    /// Bytes a loaded Qwen3-ASR model needs: its weights as stored, plus f32 KV caches for
    /// `slots` sequences of a minute of audio each (the caches grow with use).
    pub fn asr_memory(dir: &Path, cfg: &asr_config::AsrConfig, slots: usize) -> u64 {
        let d = cfg.text_dims();
        let kv = kv_bytes_per_token(d.layers, d.kv_heads, d.head_dim);
        let weights = if dir.join("model.safetensors.index.json").is_file() {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .filter(|e| e.file_name().to_string_lossy().ends_with(".safetensors"))
                        .map(|e| file_len(&e.path()))
                        .sum()
                })
                .unwrap_or(0)
        } else {
            file_len(&dir.join("model.safetensors"))
        };
        weights.saturating_add((slots as u64).saturating_mul(15 + 13 * 60 + 256).saturating_mul(kv))
    }
}

/// A model of `bytes` (weights, caches, scratch) on the context's device: all host memory on the
/// CPU; on a GPU all of it but the tokenizer and the host-side bookkeeping lives on the device.
fn spec_on(ctx: &LoadContext, bytes: u64, sample_rate: u32) -> ModelSpec {
    match ctx.device {
        Device::Cpu | Device::Auto => ModelSpec::host(bytes, sample_rate),
        Device::Cuda(_) => ModelSpec { host_bytes: 64 << 20, device_bytes: bytes, ..ModelSpec::host(0, sample_rate) },
    }
}

const CODEC_FILES: [&str; 2] = ["speech_tokenizer/config.json", "speech_tokenizer/model.safetensors"];

/// The files a model's folder must hold (more are checked when it is inspected): what makes a
/// cached hub snapshot complete enough to use without asking the hub.
const ASR_FILES: [&str; 5] =
    ["config.json", "vocab.json", "merges.txt", "tokenizer_config.json", "preprocessor_config.json"];

impl CheckpointLoader {
    pub fn required_files(kind: ModelKind) -> Vec<&'static str> {
        match kind {
            ModelKind::Tts => TTS_FILES.iter().chain(CODEC_FILES.iter()).copied().collect(),
            ModelKind::Asr => ASR_FILES.to_vec(),
        }
    }
}

impl ModelLoader for CheckpointLoader {
    /// A folder as it is; a hub repo id (`Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice[@rev]`) as its
    /// snapshot in the hub cache, fetched there first when the cache lacks it (`fetch`).
    fn locate(&self, kind: ModelKind, spec: &Path) -> Result<std::path::PathBuf> {
        if spec.is_dir() {
            return Ok(spec.to_path_buf());
        }
        if spec.to_str().and_then(fetch::parse_repo_id).is_none() {
            return Err(load_error(format!(
                "{} model folder {} does not exist or is not a folder (a hub id is org/name[@revision])",
                kind.name(),
                spec.display()
            )));
        }
        log::info!("engine: {} model {} from the hub cache (fetched if missing)", kind.name(), spec.display());
        fetch::resolve_model(spec, &CheckpointLoader::required_files(kind), &fetch::HubOptions::from_env())
    }

    fn inspect(&self, kind: ModelKind, dir: &Path, ctx: &LoadContext) -> Result<ModelSpec> {
        match kind {
            ModelKind::Tts => {
                check_folder(kind, dir, &TTS_FILES)?;
                check_folder(kind, dir, &CODEC_FILES)?;
                let codec = codec_config::CodecConfig::load(&dir.join("speech_tokenizer"))?;
                let cfg = tts_config::TtsConfig::load(dir)?;
                // Fail at create, not on the first job: weights' headers and lengths, tokenizer.
                weights::check_file(&dir.join("model.safetensors"))?;
                weights::check_file(&dir.join("speech_tokenizer/model.safetensors"))?;
                TextTokenizer::from_dir_with(dir, SplitRegex::for_checkpoint(dir)?)?;
                let mut spec =
                    spec_on(ctx, CheckpointLoader::tts_memory(dir, ctx.max_slots)?, codec.output_sample_rate);
                if cfg.kind() == tts_config::TtsKind::CustomVoice {
                    spec.speakers = cfg.speakers();
                }
                spec.languages = cfg.languages();
                if cfg.speaker_encoder().is_some() {
                    let ck = weights::Checkpoint::open(&dir.join("model.safetensors"))?;
                    spec.voice = Some(crate::models::voice::voice_spec(dir, &cfg, &ck)?);
                }
                Ok(spec)
            }
            ModelKind::Asr => {
                check_asr_folder(dir)?;
                let cfg = asr_config::AsrConfig::load(dir)?;
                weights::check_dir(dir)?;
                TextTokenizer::from_dir_with(dir, SplitRegex::for_checkpoint(dir)?)?;
                let pre = asr_config::PreprocessorConfig::load(dir)?;
                Ok(spec_on(ctx, CheckpointLoader::asr_memory(dir, &cfg, ctx.max_slots), pre.sampling_rate))
            }
        }
    }

    fn load_tts(&self, dir: &Path, ctx: &LoadContext) -> Result<TtsModels> {
        let cx = CheckpointLoader::compute(ctx)?;
        let generator = CheckpointLoader::tts_generator(dir, &cx, ctx)?;
        let codec = CheckpointLoader::codec(dir, &cx, ctx)?;
        // Base checkpoints: the encoders that make voices from reference audio. They run exactly
        // (f32 products) whatever the recipe: a recipe's backend would round their many-row
        // products to bf16 on AMX, which no gate covers (the codes a reference gives are
        // discrete). Their own backend then, only when the recipe's differs (idle threads
        // otherwise: one job runs at a time).
        let voice: Option<Box<dyn crate::seams::VoiceEncoder>> = match generator.voice {
            Some(spec) => {
                let exact = if ctx.quantization == Quantization::None {
                    cx.clone()
                } else {
                    Compute::for_device(ctx.device, ctx.cpu_threads)?
                };
                Some(Box::new(crate::models::voice::VoiceEncoders::load(dir, &exact, &generator.config, spec)?))
            }
            None => None,
        };
        Ok(TtsModels { generator: Box::new(generator), codec: Box::new(codec_slots::CodecSlots::new(codec)), voice })
    }

    fn denoiser(&self, sample_rate: u32, strength: f32, device: Option<&PostDevice>) -> Result<Box<dyn AudioStream>> {
        use crate::dsp::denoise::Denoiser;
        Ok(match device {
            Some(d) => Box::new(DeviceStream::denoiser(d, sample_rate, strength)?),
            None => Box::new(Denoiser::new(sample_rate, strength)?),
        })
    }

    fn resampler(&self, from_rate: u32, to_rate: u32, device: Option<&PostDevice>) -> Result<Box<dyn AudioStream>> {
        use crate::dsp::resample::Resampler;
        Ok(match device {
            Some(d) => Box::new(DeviceStream::resampler(d, from_rate, to_rate)?),
            None => Box::new(Resampler::new(from_rate, to_rate)?),
        })
    }

    fn load_asr(&self, dir: &Path, ctx: &LoadContext) -> Result<Box<dyn AsrModel>> {
        let cx = CheckpointLoader::compute(ctx)?;
        Ok(Box::new(CheckpointLoader::asr(dir, &cx, ctx)?))
    }
}
