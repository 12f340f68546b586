//! `make-checkpoint`: a random-weight checkpoint into a new (or empty) folder, with the
//! tokenizer files taken from `--tokenizer` (nothing is read from the source tree).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::Fail;
use crate::cli::MakeCheckpointArgs;
use crate::random_checkpoint;
use crate::ui::Ui;

/// The files every preset copies from the tokenizer folder.
const TOKENIZER_FILES: [&str; 3] = ["vocab.json", "merges.txt", "tokenizer_config.json"];

/// Bytes of the files under `dir` (what has been written so far).
fn folder_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// The tokenizer folder holds the three files, and an ASR preset gets an ASR tokenizer (its
/// tokenizer_config.json declares the audio tokens and `<asr_text>`).
fn check_tokenizer(dir: &Path, preset: &str) -> Result<(), Fail> {
    let shown = dir.display();
    if !dir.is_dir() {
        return Err(format!(
            "--tokenizer {shown}: no such folder (it takes a folder holding {})",
            TOKENIZER_FILES.join(", ")
        )
        .into());
    }
    for f in TOKENIZER_FILES {
        if !dir.join(f).is_file() {
            return Err(format!("--tokenizer {shown}: no {f} in it (it needs {})", TOKENIZER_FILES.join(", ")).into());
        }
    }
    if preset.ends_with("-asr") {
        let path = dir.join("tokenizer_config.json");
        let config = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !config.contains("<asr_text>") {
            return Err(format!(
                "--tokenizer {shown}: not a Qwen3-ASR tokenizer (its tokenizer_config.json has no `<asr_text>` \
                 token); {preset} needs one, e.g. an official Qwen3-ASR folder or tests/fixtures/asr/tiny"
            )
            .into());
        }
    }
    Ok(())
}

pub fn make_checkpoint(a: &MakeCheckpointArgs, ui: &Ui) -> Result<(), Fail> {
    let (preset, out) = (a.preset.as_str(), a.out.as_path());
    check_tokenizer(&a.tokenizer, preset)?;
    // A new or empty folder only: writing into a checkpoint would mix two models' files.
    let created = match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(format!(
                    "{}: the folder is not empty; make-checkpoint writes only into a new or empty \
                     folder (give a new one as --out; nothing was changed)",
                    out.display()
                )
                .into());
            }
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(out).map_err(|e| format!("{}: cannot create the folder: {e}", out.display()))?;
            true
        }
        Err(_) if out.exists() && !out.is_dir() => {
            return Err(format!("{}: not a folder (--out takes a folder)", out.display()).into());
        }
        Err(e) => return Err(format!("{}: {e}", out.display()).into()),
    };
    let progress = ui.spinner(format!("writing {preset}"));
    let t = Instant::now();
    let result = std::thread::scope(|s| {
        let job = s.spawn(|| random_checkpoint::write(preset, out, &a.tokenizer, a.seed));
        while !job.is_finished() {
            progress.set_message(format!("writing {preset}: {:.1} MB", folder_bytes(out) as f64 / 1e6));
            std::thread::sleep(Duration::from_millis(200));
        }
        job.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    progress.finish_and_clear();
    if let Err(e) = result {
        // Leave the folder as it was: gone if it was made here, empty otherwise.
        let _ = std::fs::remove_dir_all(out);
        if !created {
            let _ = std::fs::create_dir(out);
        }
        return Err(e.into());
    }
    ui.note(format_args!(
        "wrote {preset} to {} in {:.1} s ({:.1} MB)",
        out.display(),
        t.elapsed().as_secs_f64(),
        folder_bytes(out) as f64 / 1e6
    ));
    Ok(())
}
