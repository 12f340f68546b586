//! What a `--model` value names. Every command resolves its `--model` here, and only here: a
//! checkpoint folder as it is, or a hub repo id (`Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice`,
//! optionally `@revision`) as its snapshot in the hub cache, fetched there first (with a
//! progress bar) when the cache lacks it. `voxkit download` fetches one explicitly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use voxkit::engine::fetch::{self, DownloadProgress, HubOptions};
use voxkit::engine::loader::CheckpointLoader;
use voxkit::seams::ModelKind;

use crate::Fail;
use crate::cli::DownloadArgs;
use crate::ui::Ui;

/// The model `say` and `codes` use without `--model`.
pub const DEFAULT_TTS: &str = "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice";
/// The model `transcribe` uses without `--model`.
pub const DEFAULT_ASR: &str = "Qwen/Qwen3-ASR-0.6B";

/// The kind of model a command's `--model` must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelArg {
    /// A Qwen3-TTS checkpoint (`say`, `codes`, `bench tts`, `bench codec`).
    Tts,
    /// A Qwen3-ASR checkpoint (`transcribe`, `bench asr`).
    Asr,
}

impl ModelArg {
    fn kind(self) -> ModelKind {
        match self {
            ModelArg::Tts => ModelKind::Tts,
            ModelArg::Asr => ModelKind::Asr,
        }
    }
    fn example(self) -> &'static str {
        match self {
            ModelArg::Tts => DEFAULT_TTS,
            ModelArg::Asr => DEFAULT_ASR,
        }
    }
}

/// The hub options of the environment, with a download bar drawn by `ui`.
fn hub_options(ui: &Ui, what: &str) -> (HubOptions, indicatif::ProgressBar) {
    let mut opts = HubOptions::from_env();
    let bar = ui.download_bar(format!("fetching {what}"));
    let b = bar.clone();
    opts.progress = Some(Arc::new(move |p: &DownloadProgress| {
        b.set_length(p.bytes_total);
        b.set_position(p.bytes_done);
        b.set_message(format!("{} ({}/{} files): {}", p.repo, p.files_done, p.files_total, p.file));
    }));
    (opts, bar)
}

/// The checkpoint folder that `spec` (a `--model` value) names; an error naming the value when
/// it is neither a folder nor a hub id, or when the hub id cannot be had. Whether the folder
/// holds a usable checkpoint is the loader's question.
pub fn model_dir(spec: &str, kind: ModelArg, ui: &Ui) -> Result<PathBuf, String> {
    if spec.is_empty() {
        return Err(format!("--model is empty (a checkpoint folder or a hub id such as {})", kind.example()));
    }
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if fetch::parse_repo_id(spec).is_none() {
        return Err(format!(
            "--model {spec}: no such folder, and not a hub id either (org/name[@revision], e.g. {})",
            kind.example()
        ));
    }
    let (opts, bar) = hub_options(ui, spec);
    let result = fetch::resolve_model(path, &CheckpointLoader::required_files(kind.kind()), &opts);
    bar.finish_and_clear();
    result.map_err(|e| e.message)
}

/// `voxkit download ID[@REV]`: fetches (or completes, or checks against the hub) a model in the
/// hub cache and prints its folder.
pub fn download(a: &DownloadArgs, ui: &Ui) -> Result<(), Fail> {
    let Some((repo, rev)) = fetch::parse_repo_id(&a.id) else {
        return Err(Fail::usage(format!("`{}` is not a hub id (org/name[@revision], e.g. {DEFAULT_TTS})", a.id)));
    };
    let (opts, bar) = hub_options(ui, &a.id);
    let snap = fetch::download(&repo, &rev, &opts);
    bar.finish_and_clear();
    let snap = snap?;
    ui.note(format!("{} is in {}", a.id, opts.cache_dir.display()));
    println!("{}", snap.display());
    Ok(())
}
