//! What a `--model` value names. Every command resolves its `--model` here, and only here.
//!
//! Today a value is a checkpoint folder that must exist. A value that names a model by id (a hub
//! repository such as `Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice`) and a default model for a missing
//! `--model` belong here too.

use std::path::{Path, PathBuf};

/// The kind of model a command's `--model` must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelArg {
    /// A Qwen3-TTS checkpoint (`say`, `codes`, `bench tts`, `bench codec`).
    Tts,
    /// A Qwen3-ASR checkpoint (`transcribe`, `bench asr`).
    Asr,
}

impl ModelArg {
    fn example(self) -> &'static str {
        match self {
            ModelArg::Tts => "/models/Qwen3-TTS-12Hz-0.6B-CustomVoice",
            ModelArg::Asr => "/models/Qwen3-ASR-0.6B",
        }
    }
    fn family(self) -> &'static str {
        match self {
            ModelArg::Tts => "Qwen3-TTS",
            ModelArg::Asr => "Qwen3-ASR",
        }
    }
}

/// The checkpoint folder that `spec` (a `--model` value) names; an error naming the value when
/// it is not an existing folder. Whether the folder holds a usable checkpoint is the loader's
/// question.
pub fn model_dir(spec: &str, kind: ModelArg) -> Result<PathBuf, String> {
    let path = Path::new(spec);
    let want = format!("--model takes a {} checkpoint folder, e.g. {}", kind.family(), kind.example());
    if spec.is_empty() {
        return Err(format!("--model is empty ({want})"));
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(path.to_path_buf()),
        Ok(_) => Err(format!("--model {spec}: not a folder ({want})")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!("--model {spec}: no such folder ({want})")),
        Err(e) => Err(format!("--model {spec}: {e}")),
    }
}
