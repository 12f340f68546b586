//! The models: loaders for the official checkpoint folders and the forward passes (one file per
//! component: talker, code predictor, codec, audio encoder, …), written against the backend.

use std::path::Path;

use crate::engine::model::{AsrModel, LoadContext, ModelKind, ModelLoader, ModelSpec, TtsModels};
use crate::error::{Error, ErrorKind, Result};

/// Loads the official Qwen3-TTS / Qwen3-ASR checkpoint folders.
pub struct CheckpointLoader;

/// Checks that `dir` is a checkpoint folder with the files every official one has, naming what
/// is missing.
fn check_folder(kind: ModelKind, dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Err(Error::new(
            ErrorKind::ModelLoad,
            format!("{} model folder {} does not exist or is not a folder", kind.name(), dir.display()),
        ));
    }
    for file in ["config.json", "model.safetensors"] {
        if !dir.join(file).is_file() {
            return Err(Error::new(
                ErrorKind::ModelLoad,
                format!("{} model folder {} has no {file}", kind.name(), dir.display()),
            ));
        }
    }
    Ok(())
}

fn not_yet(kind: ModelKind, dir: &Path) -> Error {
    let family = match kind {
        ModelKind::Tts => "Qwen3-TTS",
        ModelKind::Asr => "Qwen3-ASR",
    };
    Error::new(
        ErrorKind::Unsupported,
        format!("{}: this version of voxkit cannot run {family} checkpoints yet", dir.display()),
    )
}

impl ModelLoader for CheckpointLoader {
    fn inspect(&self, kind: ModelKind, dir: &Path, _ctx: &LoadContext) -> Result<ModelSpec> {
        check_folder(kind, dir)?;
        Err(not_yet(kind, dir))
    }

    fn load_tts(&self, dir: &Path, _ctx: &LoadContext) -> Result<TtsModels> {
        check_folder(ModelKind::Tts, dir)?;
        Err(not_yet(ModelKind::Tts, dir))
    }

    fn load_asr(&self, dir: &Path, _ctx: &LoadContext) -> Result<Box<dyn AsrModel>> {
        check_folder(ModelKind::Asr, dir)?;
        Err(not_yet(ModelKind::Asr, dir))
    }
}
