//! The models: loaders for the official checkpoint folders and the forward passes (one file per
//! component: talker, code predictor, codec, audio encoder, …), written against the backend.

pub mod code_predictor;
pub mod codec;
pub mod qwen3;
pub mod random_checkpoint;
pub mod sampling;
pub mod talker;
pub mod tokenizer;
pub mod tts;
pub mod tts_config;
pub mod weights;

use std::path::Path;

use crate::engine::model::{AsrModel, LoadContext, ModelKind, ModelLoader, ModelSpec, TtsModels};
use crate::error::{Error, ErrorKind, Result};

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
        let kv_per_token = (d.layers * 2 * d.kv_heads * d.head_dim * 4) as u64;
        Ok(file_len(&dir.join("model.safetensors"))
            + file_len(&dir.join("speech_tokenizer/model.safetensors"))
            + slots as u64 * 1024 * kv_per_token)
    }
}

const CODEC_FILES: [&str; 2] = ["speech_tokenizer/config.json", "speech_tokenizer/model.safetensors"];

impl ModelLoader for CheckpointLoader {
    fn inspect(&self, kind: ModelKind, dir: &Path, ctx: &LoadContext) -> Result<ModelSpec> {
        match kind {
            ModelKind::Tts => {
                check_folder(kind, dir, &TTS_FILES)?;
                check_folder(kind, dir, &CODEC_FILES)?;
                let codec: codec::CodecConfig = tts_config::read_json(&dir.join("speech_tokenizer/config.json"))?;
                Ok(ModelSpec {
                    memory_bytes: CheckpointLoader::tts_memory(dir, ctx.max_slots)?,
                    sample_rate: codec.output_sample_rate,
                })
            }
            ModelKind::Asr => {
                check_folder(kind, dir, &["config.json", "model.safetensors"])?;
                Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("{}: this version of voxkit cannot run Qwen3-ASR checkpoints yet", dir.display()),
                ))
            }
        }
    }

    fn load_tts(&self, dir: &Path, ctx: &LoadContext) -> Result<TtsModels> {
        check_folder(ModelKind::Tts, dir, &TTS_FILES)?;
        check_folder(ModelKind::Tts, dir, &CODEC_FILES)?;
        let cpu = std::sync::Arc::new(crate::backend::Cpu::new(ctx.cpu_threads)?);
        let generator = tts::Qwen3Tts::load(dir, cpu.clone(), ctx.max_slots)?;
        let codec = codec::Codec::load(&dir.join("speech_tokenizer"), cpu)?;
        Ok(TtsModels { generator: Box::new(generator), codec: Box::new(codec::CodecSlots::new(codec)) })
    }

    fn load_asr(&self, dir: &Path, _ctx: &LoadContext) -> Result<Box<dyn AsrModel>> {
        check_folder(ModelKind::Asr, dir, &["config.json", "model.safetensors"])?;
        Err(Error::new(
            ErrorKind::Unsupported,
            format!("{}: this version of voxkit cannot run Qwen3-ASR checkpoints yet", dir.display()),
        ))
    }
}
