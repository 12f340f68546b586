//! The Qwen3-TTS frame generator on a random-weight checkpoint written by `make-checkpoint`'s code
//! (tiny preset): seeding, continuous batching, caps, request errors and checkpoint errors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use voxkit::ErrorKind;
use voxkit::backend::Cpu;
/// The checkpoint writer of `voxkit make-checkpoint` (a CLI module, not part of the library).
#[allow(dead_code)]
#[path = "../src/bin/voxkit/random_checkpoint.rs"]
mod random_checkpoint;
use voxkit::models::tts::Qwen3Tts;
use voxkit::seams::request::{Sampling, TtsRequest};
use voxkit::seams::{Finish, TtsModel, TtsPrefill};

fn checkpoint() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("voxkit-tiny-cv-{}", std::process::id()));
        let tok = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer");
        random_checkpoint::write("tiny-customvoice", &dir, &tok, 7).expect("write tiny checkpoint");
        dir
    })
    .clone()
}

fn load(dir: &Path) -> voxkit::Result<Qwen3Tts> {
    Qwen3Tts::load(dir, Arc::new(Cpu::new(2).unwrap()), 4)
}

fn req(text: &str, seed: Option<u64>, greedy: bool, cap: u32) -> TtsRequest {
    TtsRequest {
        text: text.into(),
        speaker: Some("Ryan".into()),
        language: Some("English".into()),
        max_new_tokens: cap,
        sampling: Sampling { greedy, seed, ..Default::default() },
        ..Default::default()
    }
}

/// Runs sequences to the end; `join_after[i]` = number of steps before sequence i is admitted.
fn run(model: &mut Qwen3Tts, reqs: &[TtsRequest], join_after: &[usize]) -> Vec<(Vec<Vec<u32>>, Finish)> {
    let mut out: Vec<(Vec<Vec<u32>>, Option<Finish>, bool)> = vec![(Vec::new(), None, false); reqs.len()];
    let mut steps = 0;
    loop {
        for i in 0..reqs.len() {
            if !out[i].2 && join_after[i] <= steps {
                model
                    .prefill(&[TtsPrefill { slot: i, request: &reqs[i], max_new_tokens: reqs[i].max_new_tokens }])
                    .remove(0)
                    .unwrap();
                out[i].2 = true;
            }
        }
        let active: Vec<usize> = (0..reqs.len()).filter(|&i| out[i].2 && out[i].1.is_none()).collect();
        if active.is_empty() && out.iter().all(|o| o.2) {
            break;
        }
        if !active.is_empty() {
            for (&i, s) in active.iter().zip(model.step(&active).unwrap()) {
                out[i].0.extend(s.frame);
                if s.finish.is_some() {
                    out[i].1 = s.finish;
                    model.release(i);
                }
            }
        }
        steps += 1;
    }
    out.into_iter().map(|(f, e, _)| (f, e.unwrap())).collect()
}

#[test]
fn same_seed_same_codes_other_seed_other_codes() {
    let mut m = load(&checkpoint()).unwrap();
    let a = run(&mut m, &[req("Hello there, how are you?", Some(42), false, 30)], &[0]);
    let b = run(&mut m, &[req("Hello there, how are you?", Some(42), false, 30)], &[0]);
    let c = run(&mut m, &[req("Hello there, how are you?", Some(43), false, 30)], &[0]);
    assert_eq!(a, b);
    assert_ne!(a[0].0, c[0].0);
    assert!(a[0].0.iter().all(|f| f.len() == 16 && f.iter().all(|&x| x < 2048)), "16 real codes per frame");
}

#[test]
fn joining_a_running_batch_gives_the_same_codes_as_alone() {
    let mut m = load(&checkpoint()).unwrap();
    let reqs = [
        req("The first sentence is a little longer than the others.", Some(1), false, 40),
        req("Short one.", Some(2), false, 25),
        req("Ein deutscher Satz.", Some(3), true, 30),
    ];
    let alone: Vec<_> = reqs.iter().map(|r| run(&mut m, std::slice::from_ref(r), &[0]).remove(0)).collect();
    let together = run(&mut m, &reqs, &[0, 3, 7]);
    assert_eq!(alone, together);
}

#[test]
fn the_cap_counts_sampled_c0_tokens() {
    let mut m = load(&checkpoint()).unwrap();
    for cap in [1, 2, 5] {
        let (frames, finish) =
            run(&mut m, &[req("A sentence that would go on for quite a while.", Some(5), true, cap)], &[0]).remove(0);
        if finish == Finish::Cap {
            assert_eq!(frames.len() as u32, cap - 1, "at most max_new_tokens - 1 frames");
        } else {
            assert!((frames.len() as u32) < cap);
        }
    }
}

#[test]
fn bad_requests_fail_with_a_clear_message() {
    let mut m = load(&checkpoint()).unwrap();
    let mut bad = req("Hi", None, true, 10);
    bad.speaker = Some("nobody".into());
    let e = m.prefill(&[TtsPrefill { slot: 0, request: &bad, max_new_tokens: 10 }]).remove(0).unwrap_err();
    assert!(e.message.contains("nobody") && e.message.contains("ryan"), "{}", e.message);
    let mut bad = req("Hi", None, true, 10);
    bad.language = Some("Klingon".into());
    let e = m.prefill(&[TtsPrefill { slot: 0, request: &bad, max_new_tokens: 10 }]).remove(0).unwrap_err();
    assert!(e.message.contains("klingon"), "{}", e.message);
    let mut bad = req("Hi", None, true, 10);
    bad.speaker = None;
    let e = m.prefill(&[TtsPrefill { slot: 0, request: &bad, max_new_tokens: 10 }]).remove(0).unwrap_err();
    assert!(e.message.contains("speaker"), "{}", e.message);
    // Names are case-insensitive, as in the official API.
    let mut ok = req("Hi", None, true, 3);
    ok.speaker = Some("RYAN".into());
    ok.language = Some("eNgLiSh".into());
    m.prefill(&[TtsPrefill { slot: 0, request: &ok, max_new_tokens: 3 }]).remove(0).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn broken_checkpoints_name_what_is_wrong() {
    let base = checkpoint();
    let dir = std::env::temp_dir().join(format!("voxkit-broken-{}", std::process::id()));

    // A truncated weights file.
    copy_dir(&base, &dir);
    let st = dir.join("model.safetensors");
    let len = std::fs::metadata(&st).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&st).unwrap().set_len(len / 2).unwrap();
    let e = load(&dir).err().unwrap();
    assert_eq!(e.kind, ErrorKind::ModelLoad);
    assert!(e.message.contains("model.safetensors"), "{}", e.message);

    // A config whose sizes do not match the tensors: the tensor is named.
    copy_dir(&base, &dir);
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap().replacen(
        "\"intermediate_size\": 128",
        "\"intermediate_size\": 96",
        1,
    );
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    let e = load(&dir).err().unwrap();
    assert!(e.message.contains("talker.model.layers.0.mlp.gate_proj.weight"), "{}", e.message);

    // A config missing a field: the field is named.
    copy_dir(&base, &dir);
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap().replacen(
        "\"codec_bos_id\"",
        "\"codec_bos_id_renamed\"",
        1,
    );
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    let e = load(&dir).err().unwrap();
    assert!(e.message.contains("codec_bos_id"), "{}", e.message);

    // No tokenizer.
    copy_dir(&base, &dir);
    std::fs::remove_file(dir.join("merges.txt")).unwrap();
    let e = load(&dir).err().unwrap();
    assert!(e.message.contains("merges.txt"), "{}", e.message);
    std::fs::remove_dir_all(&dir).unwrap();
}
