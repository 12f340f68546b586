//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/*`) through the harness its fuzz
//! target runs (`fuzz/harness/<target>.rs`, included here as it is there), on stable Rust, so that
//! every input a fuzzer ever kept — the crashes it found included — runs in every `cargo test`.
//! A panic in any of them fails the test, naming the files.
//!
//! `VOXKIT_FUZZ_SEEDS=1 cargo test --test fuzz_corpus -- --ignored write_voice_seeds` writes the
//! `voice_bytes` seeds (voices saved from the tiny Base checkpoint).

use std::path::PathBuf;

#[allow(dead_code)]
#[path = "../src/bin/voxkit/random_checkpoint.rs"]
mod random_checkpoint;
#[allow(dead_code)]
#[path = "../src/bin/voxkit/wav.rs"]
mod wav;

#[allow(dead_code)]
#[path = "../fuzz/harness/fixtures.rs"]
mod fixtures;

#[path = "../fuzz/harness/abi_requests.rs"]
mod abi_requests;
#[path = "../fuzz/harness/checkpoint_folder.rs"]
mod checkpoint_folder;
#[path = "../fuzz/harness/safetensors_header.rs"]
mod safetensors_header;
#[path = "../fuzz/harness/voice_bytes.rs"]
mod voice_bytes;
#[path = "../fuzz/harness/wav_reader.rs"]
mod wav_reader;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = fixtures::repo_root().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no corpus", dir.display());
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let mut failed = Vec::new();
    let files = corpus(target);
    for f in &files {
        let data = std::fs::read(f).unwrap();
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            failed.push(f.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(failed.is_empty(), "{target}: {} of {} corpus files fail: {failed:?}", failed.len(), files.len());
}

#[test]
fn safetensors_header_corpus() {
    replay("safetensors_header", safetensors_header::run);
}

#[test]
fn wav_reader_corpus() {
    replay("wav_reader", wav_reader::run);
}

#[test]
fn voice_bytes_corpus() {
    replay("voice_bytes", voice_bytes::run);
}

#[test]
fn checkpoint_folder_corpus() {
    replay("checkpoint_folder", checkpoint_folder::run);
}

#[test]
fn abi_requests_corpus() {
    replay("abi_requests", abi_requests::run);
}

/// Writes real saved voices (x-vector only, and in-context with a transcript) from the tiny Base
/// checkpoint into `fuzz/corpus/voice_bytes/`, the seeds of that target.
#[test]
#[ignore = "writes fuzz seeds; run with VOXKIT_FUZZ_SEEDS=1"]
fn write_voice_seeds() {
    if std::env::var_os("VOXKIT_FUZZ_SEEDS").is_none() {
        return;
    }
    use voxkit::ffi::*;
    let dir = fixtures::checkpoint(fixtures::Preset::Base);
    let path = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
    let mut c: VoxEngineConfig = unsafe { std::mem::zeroed() };
    unsafe { vox_engine_config_init(&mut c) };
    c.device = VOX_DEVICE_CPU;
    c.cpu_threads = 1;
    c.tts_model_dir = path.as_ptr();
    let mut e: *mut VoxEngine = std::ptr::null_mut();
    assert_eq!(unsafe { vox_engine_create(&c, &mut e) }, VOX_OK);
    let out = fixtures::repo_root().join("fuzz/corpus/voice_bytes");
    std::fs::create_dir_all(&out).unwrap();
    let pcm: Vec<f32> = (0..24_000).map(|i| 0.3 * (i as f32 * 0.0576).sin() * (i as f32 * 0.0011).cos()).collect();
    for (name, transcript) in [("seed-xvector", None), ("seed-icl", Some(c"Hello there, this is a test."))] {
        let mut q: VoxVoiceRequest = unsafe { std::mem::zeroed() };
        unsafe { vox_voice_request_init(&mut q) };
        q.pcm = pcm.as_ptr();
        q.frames = pcm.len() as u64;
        q.sample_rate = 24_000;
        q.transcript = transcript.map_or(std::ptr::null(), |t| t.as_ptr());
        let mut v: *mut VoxVoice = std::ptr::null_mut();
        assert_eq!(unsafe { vox_voice_create(e, &q, &mut v) }, VOX_OK);
        let mut need = 0usize;
        unsafe { vox_voice_save(v, std::ptr::null_mut(), 0, &mut need) };
        let mut buf = vec![0u8; need];
        assert_eq!(unsafe { vox_voice_save(v, buf.as_mut_ptr(), need, &mut need) }, VOX_OK);
        std::fs::write(out.join(name), &buf).unwrap();
        unsafe { vox_voice_release(v) };
    }
    unsafe { vox_engine_destroy(e) };
}

/// The harnesses start from working inputs: each pristine fixture checkpoint passes the loader
/// the `checkpoint_folder` target drives (else every execution would only reach its first error).
#[test]
fn pristine_fixtures_load() {
    for p in fixtures::Preset::ALL {
        let dir = fixtures::scratch("pristine").join(p.name());
        checkpoint_folder::build(&checkpoint_folder::Input { preset: p, edits: vec![] }, &dir);
        checkpoint_folder::load(p, &dir).unwrap_or_else(|e| panic!("{}: {}", p.name(), e.message));
    }
}
