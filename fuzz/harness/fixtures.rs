//! The pristine checkpoints the fuzz harnesses start from: `tiny-customvoice`, `tiny-base` and
//! `tiny-asr` as `voxkit make-checkpoint` writes them (the including crate declares
//! `mod random_checkpoint` from `src/bin/voxkit/random_checkpoint.rs`), written once per machine
//! into the temp dir and reused.
//!
//! One change from the presets, for speed: the tokenizer is cut to the first 512 vocabulary
//! entries (the 256 byte symbols and the merges that build the rest) and the added tokens the
//! models name (`KEEP_ADDED`), renumbered after them, with every token id in the configs that
//! named a kept added token remapped (the others stay: they are embedding rows, not tokenizer ids).
//! Building the full tokenizer costs more than everything else in a load (its vocabulary, and
//! one automaton rebuild per added token); the cut one is the same format through the same code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

/// The repository root (this file is used from `fuzz/` and from the main crate's tests).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    if manifest.join("fuzz_targets").is_dir() {
        manifest.parent().unwrap().to_path_buf()
    } else {
        manifest.to_path_buf()
    }
}

/// Entries of the cut vocabulary (ids 0..KEEP).
const KEEP: u32 = 512;
/// Bump when the fixtures change, so a stale copy in the temp dir is never reused.
const VERSION: u32 = 2;
/// The added tokens kept: those the ASR loader asks the tokenizer for, and the chat/TTS markers.
const KEEP_ADDED: [&str; 9] = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|audio_start|>",
    "<|audio_end|>",
    "<|audio_pad|>",
    "<tts_pad>",
    "<tts_text_bos>",
    "<tts_text_eod>",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, arbitrary::Arbitrary)]
pub enum Preset {
    CustomVoice,
    Base,
    Asr,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::CustomVoice => "tiny-customvoice",
            Preset::Base => "tiny-base",
            Preset::Asr => "tiny-asr",
        }
    }

    pub const ALL: [Preset; 3] = [Preset::CustomVoice, Preset::Base, Preset::Asr];
}

/// The folder of a pristine checkpoint (created on first use).
pub fn checkpoint(p: Preset) -> &'static Path {
    static DIRS: OnceLock<HashMap<Preset, PathBuf>> = OnceLock::new();
    let dirs = DIRS.get_or_init(|| {
        // Never reach the network from a fuzz target: a mutated model field may look like a hub id.
        // SAFETY: set once, before the harness starts any thread of its own.
        unsafe { std::env::set_var("HF_HUB_OFFLINE", "1") };
        Preset::ALL.iter().map(|&p| (p, make(p))).collect()
    });
    &dirs[&p]
}

fn make(p: Preset) -> PathBuf {
    let base = std::env::temp_dir().join(format!("voxkit-fuzz-fixtures-v{VERSION}"));
    let dir = base.join(p.name());
    if dir.join(".complete").is_file() {
        return dir;
    }
    // Written under a private name, then renamed: concurrent harnesses never see half a folder.
    let tmp = base.join(format!("{}.{}.tmp", p.name(), std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let root = repo_root();
    let tok = match p {
        // The ASR preset needs the ASR tokenizer config (its <|audio_pad|> and friends).
        Preset::Asr => root.join("tests/fixtures/asr/tiny"),
        _ => root.join("tests/fixtures/tokenizer"),
    };
    crate::random_checkpoint::write(p.name(), &tmp, &tok, 7).expect("write a tiny checkpoint");
    cut_tokenizer(&tmp);
    std::fs::write(tmp.join(".complete"), b"").unwrap();
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => {}
        // Another process won the race: use its copy.
        Err(_) if dir.join(".complete").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Err(e) => panic!("cannot move {} to {}: {e}", tmp.display(), dir.display()),
    }
    dir
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn write_json(p: &Path, v: &Value) {
    std::fs::write(p, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

/// Cuts the folder's tokenizer to `KEEP` entries and renumbers the added tokens after them.
fn cut_tokenizer(dir: &Path) {
    let vocab = read_json(&dir.join("vocab.json"));
    let kept: serde_json::Map<String, Value> = vocab
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, id)| id.as_u64().unwrap() < KEEP as u64)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let merges = std::fs::read_to_string(dir.join("merges.txt")).unwrap();
    let mut lines = Vec::new();
    for line in merges.lines() {
        let Some((a, b)) = line.split_once(' ') else { continue };
        if kept.contains_key(a) && kept.contains_key(b) && kept.contains_key(&format!("{a}{b}")) {
            lines.push(line.to_string());
        }
    }
    write_json(&dir.join("vocab.json"), &Value::Object(kept));
    std::fs::write(dir.join("merges.txt"), lines.join("\n") + "\n").unwrap();

    let cfg_path = dir.join("tokenizer_config.json");
    let mut cfg = read_json(&cfg_path);
    let added: serde_json::Map<String, Value> = cfg["added_tokens_decoder"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, t)| KEEP_ADDED.contains(&t["content"].as_str().unwrap_or("")))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut ids: Vec<u64> = added.keys().map(|k| k.parse().unwrap()).collect();
    ids.sort_unstable();
    let remap: HashMap<u64, u64> = ids.iter().enumerate().map(|(i, &old)| (old, KEEP as u64 + i as u64)).collect();
    let renumbered: serde_json::Map<String, Value> =
        added.iter().map(|(k, v)| (remap[&k.parse::<u64>().unwrap()].to_string(), v.clone())).collect();
    cfg["added_tokens_decoder"] = Value::Object(renumbered);
    write_json(&cfg_path, &cfg);

    for f in ["config.json", "generation_config.json"] {
        let p = dir.join(f);
        if p.is_file() {
            let mut v = read_json(&p);
            remap_ids(&mut v, &remap);
            write_json(&p, &v);
        }
    }
}

fn remap_ids(v: &mut Value, remap: &HashMap<u64, u64>) {
    match v {
        Value::Number(n) => {
            if let Some(new) = n.as_u64().and_then(|old| remap.get(&old)) {
                *v = Value::from(*new);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| remap_ids(x, remap)),
        Value::Object(o) => o.values_mut().for_each(|x| remap_ids(x, remap)),
        _ => {}
    }
}

/// A scratch folder private to this process (one per harness), emptied by the caller.
pub fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("voxkit-fuzz-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
