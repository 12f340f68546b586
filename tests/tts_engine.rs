//! Text to audio through the engine and the C ABI, on a random-weight checkpoint written by
//! `make-checkpoint`'s code (tiny preset, with its codec): offline and streaming jobs, audio read
//! while the job runs, the same audio either way, stage timings.

#[path = "support/device.rs"]
mod device;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use voxkit::engine::job::{FLAG_STREAMING, FLAG_TRUNCATED};
/// The checkpoint writer of `voxkit make-checkpoint` (a CLI module, not part of the library).
#[allow(dead_code)]
#[path = "../src/bin/voxkit/random_checkpoint.rs"]
mod random_checkpoint;
use voxkit::seams::request::{Sampling, TtsRequest};
use voxkit::{Engine, EngineConfig, JobState};

fn checkpoint() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("voxkit-e2e-tiny-{}", std::process::id()));
        let tok = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer");
        random_checkpoint::write("tiny-customvoice", &dir, &tok, 11).expect("write tiny checkpoint");
        dir
    })
    .clone()
}

fn engine() -> Engine {
    let device = device::device();
    Engine::new(EngineConfig {
        tts_model_dir: Some(checkpoint()),
        max_batch: 4,
        cpu_threads: 2,
        device,
        ..Default::default()
    })
    .unwrap()
}

fn request(stream: bool) -> TtsRequest {
    TtsRequest {
        text: "Streaming and offline decoding give the same audio.".into(),
        speaker: Some("vivian".into()),
        language: Some("English".into()),
        max_new_tokens: 40,
        sampling: Sampling { seed: Some(99), ..Default::default() },
        stream,
        ..Default::default()
    }
}

fn read_all(e: &Engine, id: u64) -> Vec<f32> {
    let mut out = Vec::new();
    let mut buf = vec![0f32; 4096];
    loop {
        let n = e.read_audio(id, &mut buf).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn offline_and_streaming_jobs_give_the_same_audio() {
    let e = engine();
    let offline = e.submit_tts(request(false)).unwrap();
    let info = e.wait(offline, Some(Duration::from_secs(120))).unwrap();
    assert_eq!(info.state, JobState::Done, "{:?}", info.error);
    assert_eq!(info.sample_rate, 24_000);
    let a = read_all(&e, offline);
    assert_eq!(a.len() as u32, info.tokens * 1920, "1920 samples per frame");
    assert!(a.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
    let t = e.timings(offline).unwrap();
    assert!(t.tts_ms > 0.0 && t.codec_ms > 0.0 && t.model_load_ms > 0.0, "{t:?}");

    let streaming = e.submit_tts(request(true)).unwrap();
    let mut b = Vec::new();
    let mut buf = vec![0f32; 1920];
    let mut before_done = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let info = e.poll(streaming).unwrap();
        assert_ne!(info.flags & FLAG_STREAMING, 0);
        let n = e.read_audio(streaming, &mut buf).unwrap();
        before_done |= n > 0 && !info.state.is_terminal();
        b.extend_from_slice(&buf[..n]);
        if info.state.is_terminal() && n == 0 {
            assert_eq!(info.state, JobState::Done);
            break;
        }
        assert!(Instant::now() < deadline);
    }
    assert!(before_done, "streamed audio is readable before the job ends");
    assert_eq!(a.len(), b.len());
    let d = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(d <= 1e-5, "streaming differs from offline by {d:e}");
    assert_eq!(e.poll(offline).unwrap().flags & FLAG_TRUNCATED, e.poll(streaming).unwrap().flags & FLAG_TRUNCATED);
}

#[test]
fn tts_through_the_c_abi() {
    use std::ffi::CString;
    use voxkit::ffi::*;
    let dir = CString::new(checkpoint().to_str().unwrap()).unwrap();
    let text = CString::new("Hello from the C interface.").unwrap();
    let speaker = CString::new("Ryan").unwrap();
    unsafe {
        let mut cfg = std::mem::zeroed::<VoxEngineConfig>();
        assert_eq!(vox_engine_config_init(&mut cfg), VOX_OK);
        cfg.tts_model_dir = dir.as_ptr();
        cfg.cpu_threads = 2;
        let mut engine = std::ptr::null_mut();
        assert_eq!(vox_engine_create(&cfg, &mut engine), VOX_OK);
        let mut req = std::mem::zeroed::<VoxTtsRequest>();
        assert_eq!(vox_tts_request_init(&mut req), VOX_OK);
        req.text = text.as_ptr();
        req.speaker = speaker.as_ptr();
        req.max_new_tokens = 12;
        req.use_seed = 1;
        req.seed = 5;
        let mut job = 0;
        assert_eq!(vox_tts_submit(engine, &req, &mut job), VOX_OK);
        let mut info = VoxJobInfo { struct_size: std::mem::size_of::<VoxJobInfo>() as u32, ..Default::default() };
        assert_eq!(vox_wait(engine, job, 120_000, &mut info), VOX_OK);
        assert_eq!(info.state, VOX_JOB_DONE);
        assert_eq!(info.sample_rate, 24_000);
        assert!(info.samples_ready > 0 && info.samples_ready == info.tokens as u64 * 1920);
        let mut pcm = vec![0f32; info.samples_ready as usize];
        let mut written = 0usize;
        assert_eq!(vox_read_audio(engine, job, pcm.as_mut_ptr(), pcm.len(), &mut written), VOX_OK);
        assert_eq!(written, pcm.len());
        let mut t = VoxTimings { struct_size: std::mem::size_of::<VoxTimings>() as u32, ..Default::default() };
        assert_eq!(vox_get_timings(engine, job, &mut t), VOX_OK);
        assert!(t.tts_ms > 0.0 && t.codec_ms > 0.0 && t.total_ms >= t.tts_ms + t.codec_ms);
        assert_eq!(vox_release(engine, job), VOX_OK);
        vox_engine_destroy(engine);
    }
}

/// The official `generate_custom_voice` waveform (greedy, tiny 0.6B-like checkpoint with its
/// codec; `tools/parity/make_e2e_fixture.py`) equals voxkit's engine output within 1e-4.
#[test]
fn engine_audio_matches_the_official_generate_custom_voice() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tts/tiny-06b");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("e2e.json")).expect("missing fixture e2e.json"))
            .unwrap();
    let bytes = std::fs::read(dir.join("e2e.safetensors")).expect("missing fixture e2e.safetensors");
    let refs = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let e = Engine::new(EngineConfig {
        tts_model_dir: Some(dir.clone()),
        cpu_threads: 2,
        device: device::device(),
        ..Default::default()
    })
    .unwrap();
    for (i, case) in json["cases"].as_array().unwrap().iter().enumerate() {
        let s = |k: &str| case[k].as_str().map(str::to_string);
        for stream in [false, true] {
            let req = TtsRequest {
                text: s("text").unwrap(),
                speaker: s("speaker"),
                language: s("language"),
                max_new_tokens: case["max_new_tokens"].as_u64().unwrap() as u32,
                sampling: Sampling { greedy: true, ..Default::default() },
                text_streaming: !case["non_streaming_mode"].as_bool().unwrap(),
                stream,
                ..Default::default()
            };
            let id = e.submit_tts(req).unwrap();
            let info = e.wait(id, Some(Duration::from_secs(120))).unwrap();
            assert_eq!(info.state, JobState::Done, "{:?}", info.error);
            let got = read_all(&e, id);
            let want: Vec<f32> = refs
                .tensor(&format!("case{i}.audio"))
                .unwrap()
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            assert_eq!(
                got.len(),
                want.len(),
                "case {i} (stream {stream}): {} samples vs {} official",
                got.len(),
                want.len()
            );
            let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(d <= 1e-4, "case {i} (stream {stream}): max abs difference {d:e}");
            eprintln!("e2e case {i} (stream {stream}): {} samples, max abs difference {d:.2e}", got.len());
        }
    }
}

/// A requested output rate runs the `upsample` stage: offline and streaming jobs both give
/// exactly the one-shot resampling of the model's 24 kHz audio (the resampler is
/// chunking-invariant), of length ceil(n · 48/24).
#[test]
fn output_rate_is_resampled_in_the_pipeline() {
    let e = engine();
    let native = e.submit_tts(request(false)).unwrap();
    assert_eq!(e.wait(native, Some(Duration::from_secs(120))).unwrap().state, JobState::Done);
    let a = read_all(&e, native);
    let want = voxkit::dsp::resample::resample(&a, 24_000, 48_000).unwrap();
    assert_eq!(want.len(), 2 * a.len());
    for stream in [false, true] {
        let mut r = request(stream);
        r.sample_rate = 48_000;
        let id = e.submit_tts(r).unwrap();
        let info = e.wait(id, Some(Duration::from_secs(120))).unwrap();
        assert_eq!(info.state, JobState::Done, "{:?}", info.error);
        assert_eq!(info.sample_rate, 48_000);
        let b = read_all(&e, id);
        assert_eq!(b.len(), want.len(), "stream {stream}");
        let diff = b.iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff <= 1e-6, "stream {stream}: max diff {diff}");
        assert!(e.timings(id).unwrap().upsample_ms > 0.0);
    }
}

/// Jobs that run together have their post chains (denoise, resample) run as one batch; each
/// job's audio is exactly what it gets alone.
#[test]
fn batched_post_processing_equals_each_job_alone() {
    let e = engine();
    let make = |seed: u64, stream: bool| {
        let mut r = request(stream);
        r.sampling.seed = Some(seed);
        r.sample_rate = 44_100;
        r.denoise = Some(0.8);
        r
    };
    let specs = [(1, false), (2, true), (3, false), (4, true)];
    let mut alone = Vec::new();
    for &(seed, stream) in &specs {
        let id = e.submit_tts(make(seed, stream)).unwrap();
        assert_eq!(e.wait(id, Some(Duration::from_secs(120))).unwrap().state, JobState::Done);
        alone.push(read_all(&e, id));
    }
    let ids: Vec<u64> = specs.iter().map(|&(seed, stream)| e.submit_tts(make(seed, stream)).unwrap()).collect();
    for (id, want) in ids.into_iter().zip(alone) {
        let info = e.wait(id, Some(Duration::from_secs(120))).unwrap();
        assert_eq!(info.state, JobState::Done);
        assert!(info.sample_rate == 44_100);
        let got = read_all(&e, id);
        assert_eq!(got.len(), want.len());
        let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(d <= 1e-5, "job {id}: {d}");
        let t = e.timings(id).unwrap();
        assert!(t.denoise_ms > 0.0 && t.upsample_ms > 0.0);
    }
}
