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
    LoadContext {
        device: voxkit::Device::Cpu,
        cpu_threads: 1,
        max_slots: 2,
        quantization: voxkit::backend::Quantization::None,
    }
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
            CheckpointLoader::codec(&dir, &Compute::cpu(1).unwrap(), &ctx()).err()
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

/// Rewrites a safetensors file with every f32 tensor whose name passes `pick` set to NaN.
fn poison(file: &Path, pick: impl Fn(&str) -> bool) -> usize {
    let bytes = std::fs::read(file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut hit = 0;
    for (name, view) in st.tensors() {
        let mut data = view.data().to_vec();
        if pick(&name) && view.dtype() == safetensors::Dtype::F32 {
            data = data.chunks(4).flat_map(|_| f32::NAN.to_le_bytes()).collect();
            hit += 1;
        }
        owned.push((name, view.dtype(), view.shape().to_vec(), data));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(file, safetensors::serialize(views, None).unwrap()).unwrap();
    hit
}

fn tts_engine(dir: &Path) -> voxkit::Result<voxkit::Engine> {
    voxkit::Engine::new(voxkit::EngineConfig {
        tts_model_dir: Some(dir.to_path_buf()),
        max_batch: 2,
        cpu_threads: 1,
        ..Default::default()
    })
}

#[test]
fn nan_weights_fail_the_job_instead_of_handing_out_nan_audio() {
    let dir = fresh("tiny-customvoice", "nan");
    let poisoned = poison(&dir.join("speech_tokenizer/model.safetensors"), |n| {
        n.starts_with("decoder.decoder.") && n.ends_with(".bias")
    });
    assert!(poisoned > 0);
    let e = tts_engine(&dir).unwrap();
    for stream in [false, true] {
        let id = e
            .submit_tts(voxkit::TtsRequest {
                text: "Hello there.".into(),
                speaker: Some("Ryan".into()),
                max_new_tokens: 6,
                sampling: voxkit::Sampling { greedy: true, ..Default::default() },
                stream,
                ..Default::default()
            })
            .unwrap();
        let info = e.wait(id, Some(std::time::Duration::from_secs(120))).unwrap();
        assert_eq!(info.state, voxkit::JobState::Failed, "stream {stream}: {info:?}");
        let err = info.error.expect("the job carries its error");
        assert_eq!(err.kind, ErrorKind::Inference);
        assert!(err.message.contains("non-finite"), "{}", err.message);
        let mut buf = vec![0f32; 4096];
        let n = e.read_audio(id, &mut buf).unwrap_or(0);
        assert!(buf[..n].iter().all(|v| v.is_finite()), "NaN samples were handed out");
    }
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_codec_rate_of_zero_fails_at_create() {
    let dir = fresh("tiny-customvoice", "rate0");
    patch(&dir.join("speech_tokenizer/config.json"), "output_sample_rate", Value::from(0u64));
    let err = tts_engine(&dir).err().expect("an engine with a 0 Hz codec was created");
    assert_eq!(err.kind, ErrorKind::ModelLoad);
    assert!(err.message.contains("output_sample_rate 0"), "{}", err.message);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_speakers_and_languages_fail_at_submit_and_no_speaker_means_the_default() {
    let dir = fresh("tiny-customvoice", "submit");
    let e = tts_engine(&dir).unwrap();
    let req = |speaker: Option<&str>, language: Option<&str>| voxkit::TtsRequest {
        text: "Hello there.".into(),
        speaker: speaker.map(str::to_string),
        language: language.map(str::to_string),
        max_new_tokens: 3,
        sampling: voxkit::Sampling { greedy: true, ..Default::default() },
        ..Default::default()
    };
    let err = e.submit_tts(req(Some("Nobody"), None)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert!(err.message.contains("Nobody") && err.message.contains("ryan"), "{}", err.message);
    let err = e.submit_tts(req(Some("Ryan"), Some("Klingon"))).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert!(err.message.contains("Klingon") && err.message.contains("english"), "{}", err.message);
    // No speaker: the model's default (the first of its speakers), and the job makes audio.
    let id = e.submit_tts(req(None, Some("ENGLISH"))).unwrap();
    let info = e.wait(id, Some(std::time::Duration::from_secs(120))).unwrap();
    assert_eq!(info.state, voxkit::JobState::Done, "{:?}", info.error);
    assert!(info.samples_total > 0);
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The engine checks a checkpoint folder whole at create: a damaged file fails there, naming
/// itself, instead of on the first job.
#[test]
fn damaged_checkpoints_fail_at_create() {
    type Damage = fn(&Path);
    let cases: [(&str, &str, Damage); 5] = [
        ("truncated weights", "model.safetensors", |f| {
            let b = std::fs::read(f).unwrap();
            std::fs::write(f, &b[..b.len() - 1000]).unwrap();
        }),
        ("garbage header", "model.safetensors", |f| {
            let mut b = std::fs::read(f).unwrap();
            b[8..40].copy_from_slice(&[b'#'; 32]);
            std::fs::write(f, b).unwrap();
        }),
        ("truncated codec weights", "speech_tokenizer/model.safetensors", |f| {
            let b = std::fs::read(f).unwrap();
            std::fs::write(f, &b[..b.len() / 2]).unwrap();
        }),
        ("bad vocab.json", "vocab.json", |f| std::fs::write(f, b"{ not json").unwrap()),
        ("bytes no tensor holds", "model.safetensors", |f| {
            let mut b = std::fs::read(f).unwrap();
            b.extend_from_slice(&[0u8; 64]);
            std::fs::write(f, b).unwrap();
        }),
    ];
    for (i, (what, file, damage)) in cases.into_iter().enumerate() {
        let dir = fresh("tiny-customvoice", &format!("damaged{i}"));
        damage(&dir.join(file));
        let err = tts_engine(&dir).err().unwrap_or_else(|| panic!("{what}: the engine was created"));
        assert_eq!(err.kind, ErrorKind::ModelLoad, "{what}: {}", err.message);
        let name = Path::new(file).file_name().unwrap().to_str().unwrap();
        assert!(err.message.contains(name), "{what}: {}", err.message);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A streaming job read as it plays holds only its unread audio; the engine's stats count the
/// audio every held job keeps.
#[test]
fn streaming_jobs_drop_what_was_read_and_stats_count_job_audio() {
    let dir = fresh("tiny-customvoice", "stream-mem");
    let e = tts_engine(&dir).unwrap();
    let req = |stream| voxkit::TtsRequest {
        text: "A sentence that takes a few frames to say.".into(),
        max_new_tokens: 24,
        sampling: voxkit::Sampling { seed: Some(3), ..Default::default() },
        stream,
        ..Default::default()
    };
    let id = e.submit_tts(req(true)).unwrap();
    let mut buf = vec![0f32; 1920];
    let (mut read, mut peak) = (0usize, 0u64);
    loop {
        let info = e.poll(id).unwrap();
        let n = e.read_audio(id, &mut buf).unwrap();
        read += n;
        peak = peak.max(e.stats().audio_bytes);
        if info.state.is_terminal() && n == 0 {
            assert_eq!(info.state, voxkit::JobState::Done, "{:?}", info.error);
            assert_eq!(info.samples_total as usize, read, "every sample was read once");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(read >= 8 * 1920, "only {read} samples");
    let held = e.stats().audio_bytes;
    assert!(held <= (read as u64 * 4) / 2, "a fully read stream still holds {held} of {} bytes", read * 4);
    // An offline job keeps its audio until it is read or released, and the stats show it.
    let id = e.submit_tts(req(false)).unwrap();
    let info = e.wait(id, Some(std::time::Duration::from_secs(120))).unwrap();
    assert!(e.stats().audio_bytes >= info.samples_total * 4);
    e.release(id).unwrap();
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A host can pay the model load at create (a loading screen) and learn what the model offers.
#[test]
fn preload_at_create_and_model_info() {
    let dir = fresh("tiny-customvoice", "preload");
    let e = voxkit::Engine::new(voxkit::EngineConfig {
        tts_model_dir: Some(dir.clone()),
        cpu_threads: 1,
        preload_tts: true,
        ..Default::default()
    })
    .unwrap();
    let s = e.stats();
    assert_eq!(s.model_loads, 1, "the model loaded during create");
    assert!(s.resident.tts && s.memory_in_use > 0);
    let info = e.model_info(voxkit::seams::ModelKind::Tts).unwrap();
    assert_eq!(info.sample_rate, 24_000);
    assert!(info.speakers.contains(&"ryan".to_string()), "{:?}", info.speakers);
    assert_eq!(info.languages.first().map(String::as_str), Some("auto"));
    assert!(info.languages.contains(&"english".to_string()));
    let err = e.model_info(voxkit::seams::ModelKind::Asr).unwrap_err();
    assert_eq!(err.kind, ErrorKind::ModelNotLoaded);
    // A first job pays no load.
    let id = e.submit_tts(voxkit::TtsRequest { text: "Hi.".into(), max_new_tokens: 2, ..Default::default() }).unwrap();
    let done = e.wait(id, Some(std::time::Duration::from_secs(60))).unwrap();
    assert_eq!(done.state, voxkit::JobState::Done, "{:?}", done.error);
    assert_eq!(e.timings(id).unwrap().model_load_ms, 0.0);
    assert_eq!(e.stats().model_loads, 1);
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Preloading both models when they only fit one at a time would load one only to unload it:
/// the create fails and says so. Job ids are unique across engines.
#[test]
fn preloading_two_models_that_do_not_fit_together_fails_and_job_ids_are_process_wide() {
    let tts = fresh("tiny-customvoice", "preload-both");
    let asr = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asr/tiny");
    let c = ctx();
    let tts_bytes = CheckpointLoader.inspect(ModelKind::Tts, &tts, &c).unwrap().host_bytes;
    let asr_bytes = CheckpointLoader.inspect(ModelKind::Asr, &asr, &c).unwrap().host_bytes;
    let config = |preload_asr| voxkit::EngineConfig {
        tts_model_dir: Some(tts.clone()),
        asr_model_dir: Some(asr.clone()),
        device: voxkit::Device::Cpu,
        max_batch: c.max_slots,
        cpu_threads: 1,
        memory_budget: tts_bytes.max(asr_bytes),
        preload_tts: true,
        preload_asr,
        ..Default::default()
    };
    let err = voxkit::Engine::new(config(true)).err().expect("both preloaded in a budget for one");
    assert_eq!(err.kind, ErrorKind::OutOfMemory);
    assert!(err.message.contains("preload"), "{}", err.message);
    let one = voxkit::Engine::new(config(false)).unwrap();
    assert!(one.stats().resident.tts && !one.stats().resident.asr);
    let two = tts_engine(&tts).unwrap();
    let req = || voxkit::TtsRequest { text: "Hi.".into(), max_new_tokens: 2, ..Default::default() };
    let (a, b) = (one.submit_tts(req()).unwrap(), two.submit_tts(req()).unwrap());
    assert_ne!(a, b, "two engines handed out the same job id");
    assert!(two.poll(a).is_err(), "engine two knows engine one's job");
    drop((one, two));
    let _ = std::fs::remove_dir_all(&tts);
}
