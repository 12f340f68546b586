//! Hostile checkpoints must never abort the host: a count in a config that no tensor on disk
//! backs is an error at load, named by its field, before anything is sized by it.

use std::path::{Path, PathBuf};

use serde_json::Value;
use voxkit::ErrorKind;
use voxkit::backend::Compute;
use voxkit::engine::loader::CheckpointLoader;
use voxkit::seams::{LoadContext, ModelKind, ModelLoader};

/// The checkpoint writer of `voxkit make-checkpoint` (a CLI module, not part of the library).
#[allow(dead_code)]
#[path = "../src/bin/voxkit/random_checkpoint.rs"]
mod random_checkpoint;

fn fresh(preset: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("voxkit-hostile-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tok = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer");
    random_checkpoint::write(preset, &dir, &tok, 5).expect("write a tiny checkpoint");
    dir
}

/// Sets `path` (keys separated by '/') in a JSON file to `value`.
fn patch(file: &Path, path: &str, value: Value) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let mut at = &mut v;
    for key in path.split('/') {
        at = at.get_mut(key).unwrap_or_else(|| panic!("{} has no {path}", file.display()));
    }
    *at = value;
    std::fs::write(file, serde_json::to_string(&v).unwrap()).unwrap();
}

fn ctx() -> LoadContext {
    LoadContext { device: voxkit::Device::Cpu, cpu_threads: 1, max_slots: 2 }
}

#[test]
fn huge_layer_counts_are_load_errors_not_aborts() {
    let cases: [(&str, &str, &str, &str); 5] = [
        ("tiny-customvoice", "config.json", "talker_config/num_hidden_layers", "num_hidden_layers"),
        (
            "tiny-customvoice",
            "config.json",
            "talker_config/code_predictor_config/num_hidden_layers",
            "num_hidden_layers",
        ),
        ("tiny-customvoice", "speech_tokenizer/config.json", "decoder_config/num_hidden_layers", "num_hidden_layers"),
        ("tiny-asr", "config.json", "thinker_config/audio_config/encoder_layers", "encoder_layers"),
        ("tiny-asr", "config.json", "thinker_config/text_config/num_hidden_layers", "num_hidden_layers"),
    ];
    for (i, (preset, file, key, field)) in cases.into_iter().enumerate() {
        let dir = fresh(preset, &format!("layers{i}"));
        patch(&dir.join(file), key, Value::from(1_000_000_000u64));
        let loader = CheckpointLoader;
        let err = if preset == "tiny-asr" {
            loader.load_asr(&dir, &ctx()).err()
        } else if file.starts_with("speech_tokenizer") {
            CheckpointLoader::codec(&dir, &Compute::cpu(1).unwrap()).err()
        } else {
            loader.load_tts(&dir, &ctx()).err()
        };
        let err = err.unwrap_or_else(|| panic!("{preset} with {key} = 1e9 loaded"));
        assert_eq!(err.kind, ErrorKind::ModelLoad, "{key}: {}", err.message);
        assert!(err.message.contains(field) && err.message.contains("1000000000"), "{key}: {}", err.message);
        // The engine's inspection of the same folder does not abort either.
        let _ = loader.inspect(if preset == "tiny-asr" { ModelKind::Asr } else { ModelKind::Tts }, &dir, &ctx());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_model_with_more_layers_than_its_config_is_an_error() {
    let dir = fresh("tiny-asr", "fewer");
    patch(&dir.join("config.json"), "thinker_config/text_config/num_hidden_layers", Value::from(1u64));
    let err = CheckpointLoader.load_asr(&dir, &ctx()).err().expect("a config with fewer layers than the file loads");
    assert!(err.message.contains("holds"), "{}", err.message);
    let _ = std::fs::remove_dir_all(&dir);
}
