//! The engine's job lifecycle, batching, streaming, caps, post stages, model manager and timings,
//! driven through the Rust API with the test doubles of `tests/common`.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use voxkit::engine::job::{FLAG_STREAMING, FLAG_TRUNCATED};
use voxkit::{Engine, EngineConfig, ErrorKind, JobState};

const LONG: Option<Duration> = Some(Duration::from_secs(20));

/// Equal audio, reported by length and first difference rather than by dumping both.
fn assert_same(got: &[f32], want: &[f32]) {
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got.len() == want.len() && first.is_none(),
        "audio differs: {} vs {} samples, first difference at {first:?}",
        got.len(),
        want.len()
    );
}

fn engine(cfg: EngineConfig) -> (Engine, Arc<Knobs>) {
    let (loader, knobs) = FakeLoader::new(100, 100);
    (Engine::with_loader(cfg, loader).unwrap(), knobs)
}

#[test]
fn tts_submit_poll_wait_read_release() {
    let (e, _) = engine(config());
    let id = e.submit_tts(tts("hello world")).unwrap();
    assert!(id > 0);
    let info = e.poll(id).unwrap();
    assert!(matches!(info.state, JobState::Queued | JobState::Running | JobState::Done));
    let info = e.wait(id, LONG).unwrap();
    assert_eq!(info.state, JobState::Done);
    assert_eq!(info.error, None);
    assert_eq!(info.flags & FLAG_TRUNCATED, 0);
    assert_eq!(info.sample_rate, TTS_RATE);
    assert_eq!(info.tokens, 11);
    assert_eq!(info.progress, 1.0);
    assert_eq!(info.max_new_tokens, 2 * 11 + 10, "automatic cap from the model");
    let want = expected_audio("hello world", 11);
    assert_eq!(info.samples_ready as usize, want.len());
    assert_same(&read_all(&e, id), &want);
    assert_eq!(e.poll(id).unwrap().samples_ready, 0, "read advances the cursor");
    assert_eq!(e.poll(id).unwrap().samples_total as usize, want.len());
    e.release(id).unwrap();
    assert_eq!(e.poll(id).unwrap_err().kind, ErrorKind::UnknownJob);
    assert_eq!(e.release(id).unwrap_err().kind, ErrorKind::UnknownJob);
    let s = e.stats();
    assert_eq!((s.jobs_done, s.jobs_failed, s.jobs_cancelled, s.jobs_held), (1, 0, 0, 0));
}

#[test]
fn asr_submit_gives_text_and_language() {
    let (e, _) = engine(config());
    let a = e.submit_asr(asr(16_000)).unwrap();
    let mut forced = asr(3_200);
    forced.language = Some("German".into());
    let b = e.submit_asr(forced).unwrap();
    for id in [a, b] {
        assert_eq!(e.wait(id, LONG).unwrap().state, JobState::Done);
    }
    assert_eq!(e.text(a).unwrap(), format!("{} tokens", asr_tokens(16_000)));
    assert_eq!(e.language(a).unwrap(), "English");
    assert_eq!(e.language(b).unwrap(), "German");
    let t = e.timings(a).unwrap();
    assert!(t.asr_frontend_ms >= 0.0 && t.asr_encode_ms > 0.0 && t.asr_decode_ms > 0.0);
    assert_eq!(t.tts_ms, 0.0);
    assert_eq!(t.tokens, asr_tokens(16_000));
}

#[test]
fn asr_input_is_downmixed_and_resampled() {
    let (e, _) = engine(config());
    // 48 kHz stereo, 0.5 s → 8000 mono samples at 16 kHz after the (fake) resampler.
    let mut r = asr(0);
    r.sample_rate = 48_000;
    r.channels = 2;
    r.audio = vec![0.25; 48_000];
    let id = e.submit_asr(r).unwrap();
    e.wait(id, LONG).unwrap();
    assert_eq!(e.text(id).unwrap(), format!("{} tokens", asr_tokens(8_000)));
    assert!(e.timings(id).unwrap().upsample_ms > 0.0);
}

#[test]
fn no_model_configured_fails_at_submit() {
    let e = Engine::new(EngineConfig::default()).unwrap();
    let err = e.submit_tts(tts("hi")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::ModelNotLoaded);
    assert!(err.message.contains("tts_model_dir"), "{}", err.message);
    assert_eq!(e.submit_asr(asr(100)).unwrap_err().kind, ErrorKind::ModelNotLoaded);
}

#[test]
fn real_loader_names_what_is_missing() {
    let cfg = EngineConfig { tts_model_dir: Some("/nonexistent/voxkit-model".into()), ..Default::default() };
    let err = Engine::new(cfg).err().unwrap();
    assert_eq!(err.kind, ErrorKind::ModelLoad);
    assert!(err.message.contains("/nonexistent/voxkit-model"), "{}", err.message);
    let dir = std::env::temp_dir().join(format!("voxkit-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = Engine::new(EngineConfig { asr_model_dir: Some(dir.clone()), ..Default::default() }).err().unwrap();
    assert_eq!(err.kind, ErrorKind::ModelLoad);
    assert!(err.message.contains("config.json"), "{}", err.message);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cuda_demanded_without_backend_is_no_device() {
    let cfg = EngineConfig { device: voxkit::Device::Cuda(0), ..Default::default() };
    assert_eq!(Engine::new(cfg).err().unwrap().kind, ErrorKind::NoDevice);
    let cfg = EngineConfig { device: voxkit::Device::Auto, ..Default::default() };
    assert!(Engine::new(cfg).is_ok(), "auto falls back to the CPU");
}

#[test]
fn invalid_requests_fail_at_submit() {
    let (e, _) = engine(config());
    let bad = |r: voxkit::TtsRequest| e.submit_tts(r).unwrap_err().kind;
    assert_eq!(bad(tts("")), ErrorKind::InvalidArgument);
    assert_eq!(bad(tts("   ")), ErrorKind::InvalidArgument);
    let mut r = tts("x");
    r.sampling.temperature = Some(f32::NAN);
    assert_eq!(bad(r), ErrorKind::InvalidArgument);
    let mut r = tts("x");
    r.sampling.top_p = Some(1.5);
    assert_eq!(bad(r), ErrorKind::InvalidArgument);
    let mut r = tts("x");
    r.sample_rate = 100;
    assert_eq!(bad(r), ErrorKind::InvalidArgument);
    let mut r = tts("x");
    r.denoise = Some(2.0);
    assert_eq!(bad(r), ErrorKind::InvalidArgument);
    let mut r = tts("x");
    r.sample_rate = 44_100; // the fake resampler only does integer ratios
    assert_eq!(bad(r), ErrorKind::Unsupported);

    let bad = |r: voxkit::AsrRequest| e.submit_asr(r).unwrap_err().kind;
    assert_eq!(bad(asr(0)), ErrorKind::InvalidArgument);
    let mut r = asr(100);
    r.audio[50] = f32::NAN;
    assert_eq!(bad(r), ErrorKind::InvalidArgument);
    let mut r = asr(100);
    r.audio[0] = f32::INFINITY;
    assert_eq!(bad(r), ErrorKind::InvalidArgument);
    let mut r = asr(101);
    r.channels = 2;
    assert_eq!(bad(r), ErrorKind::InvalidArgument);
    let mut r = asr(100);
    r.sample_rate = 0;
    assert_eq!(bad(r), ErrorKind::InvalidArgument);
    assert_eq!(e.stats().jobs_held, 0, "rejected submits leave nothing behind");
}

#[test]
fn streaming_audio_is_readable_before_the_job_ends() {
    let (e, knobs) = engine(config());
    knobs.step_delay_us.store(2_000, Ordering::Relaxed);
    let mut r = tts("frames:200 streaming");
    r.stream = true;
    r.max_new_tokens = 1000;
    let id = e.submit_tts(r).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0f32; 64];
    let mut read_while_running = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = e.poll(id).unwrap();
        assert_ne!(info.flags & FLAG_STREAMING, 0);
        let n = e.read_audio(id, &mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
        if n > 0 && !info.state.is_terminal() {
            read_while_running = true;
        }
        if info.state.is_terminal() && n == 0 {
            assert_eq!(info.state, JobState::Done);
            assert_eq!(info.flags & FLAG_TRUNCATED, 0);
            break;
        }
        assert!(Instant::now() < deadline, "streaming job did not finish");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(read_while_running, "audio must be readable while the job runs");
    assert_same(&got, &expected_audio("frames:200 streaming", 200));
}

#[test]
fn cap_truncates_and_reports() {
    let (e, _) = engine(config());
    let mut r = tts("frames:50 long");
    r.max_new_tokens = 10;
    let id = e.submit_tts(r).unwrap();
    let info = e.wait(id, LONG).unwrap();
    assert_eq!(info.state, JobState::Done);
    assert_ne!(info.flags & FLAG_TRUNCATED, 0);
    assert_eq!(info.max_new_tokens, 10);
    assert_eq!(info.tokens, 9, "max_new_tokens - 1 frames, as the official generate");
    // Hard limit beats the request; the engine default fills in for 0.
    let cfg = EngineConfig { hard_max_new_tokens: 5, default_max_new_tokens: 4, ..config() };
    let (e, _) = engine(cfg);
    let mut r = tts("frames:50 long");
    r.max_new_tokens = 1000;
    let a = e.submit_tts(r).unwrap();
    let b = e.submit_tts(tts("frames:50 long")).unwrap();
    assert_eq!(e.wait(a, LONG).unwrap().max_new_tokens, 5);
    assert_eq!(e.wait(b, LONG).unwrap().max_new_tokens, 4);
}

#[test]
fn batched_results_equal_single_results() {
    let texts = ["frames:3 a", "frames:17 bb", "frames:9 ccc", "frames:30 dddd", "frames:1 e", "frames:12 f"];
    let (e, knobs) = engine(config());
    knobs.step_delay_us.store(500, Ordering::Relaxed);
    let ids: Vec<u64> = texts.iter().map(|t| e.submit_tts(tts(t)).unwrap()).collect();
    for (t, id) in texts.iter().zip(&ids) {
        e.wait(*id, LONG).unwrap();
        assert_same(&read_all(&e, *id), &expected_audio(t, frames_for(t)));
    }
    let m = knobs.max_step_batch.load(Ordering::Relaxed);
    assert!(m > 1 && m <= 4, "batched, within max_batch: {m}");
    assert!(ids.iter().any(|&id| e.timings(id).unwrap().batch_size > 1));
}

#[test]
fn post_stages_run_and_are_timed() {
    let (e, _) = engine(config());
    let mut r = tts("frames:5 post");
    r.sample_rate = 48_000;
    r.denoise = Some(1.0);
    let id = e.submit_tts(r).unwrap();
    let info = e.wait(id, LONG).unwrap();
    assert_eq!(info.sample_rate, 48_000);
    let want: Vec<f32> = expected_audio("frames:5 post", 5).iter().flat_map(|&x| [x * 0.5, x * 0.5]).collect();
    assert_eq!(read_all(&e, id), want);
    let t = e.timings(id).unwrap();
    assert!(t.denoise_ms > 0.0 && t.upsample_ms > 0.0 && t.codec_ms > 0.0 && t.tts_ms > 0.0);
}

#[test]
fn cancel_queued_and_running_jobs() {
    let cfg = EngineConfig { max_batch: 1, ..config() };
    let (e, knobs) = engine(cfg);
    knobs.step_delay_us.store(5_000, Ordering::Relaxed);
    let mut r = tts("frames:100000 running");
    r.stream = true;
    let running = e.submit_tts(r).unwrap();
    let queued = e.submit_tts(tts("frames:5 queued")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while e.poll(running).unwrap().samples_total == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(e.poll(queued).unwrap().state, JobState::Queued, "max_batch 1 keeps it queued");
    e.cancel(queued).unwrap();
    assert_eq!(e.poll(queued).unwrap().state, JobState::Cancelled, "a queued job ends at once");
    e.cancel(running).unwrap();
    let info = e.wait(running, LONG).unwrap();
    assert_eq!(info.state, JobState::Cancelled);
    assert!(info.samples_ready > 0, "audio produced before the cancel stays readable");
    e.cancel(running).unwrap(); // idempotent
    assert_eq!(e.wait(running, LONG).unwrap().state, JobState::Cancelled);
    let s = e.stats();
    assert_eq!((s.jobs_cancelled, s.jobs_done), (2, 0));
    // The engine keeps working afterwards.
    let id = e.submit_tts(tts("frames:2 after")).unwrap();
    assert_eq!(e.wait(id, LONG).unwrap().state, JobState::Done);
}

#[test]
fn queue_full_is_reported() {
    let cfg = EngineConfig { max_batch: 1, max_queued_jobs: 3, ..config() };
    let (e, knobs) = engine(cfg);
    knobs.step_delay_us.store(20_000, Ordering::Relaxed);
    let blocker = e.submit_tts(tts("frames:1000 blocker")).unwrap();
    while e.poll(blocker).unwrap().state == JobState::Queued {
        std::thread::sleep(Duration::from_millis(1));
    }
    let ids: Vec<u64> = (0..3).map(|i| e.submit_tts(tts(&format!("frames:1 q{i}"))).unwrap()).collect();
    let err = e.submit_tts(tts("one too many")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::QueueFull);
    assert_eq!(e.stats().queue_depth, 3);
    e.release(ids[0]).unwrap();
    assert!(e.submit_tts(tts("fits again")).is_ok());
}

#[test]
fn wait_times_out_and_unknown_ids_fail() {
    let (e, knobs) = engine(config());
    knobs.step_delay_us.store(10_000, Ordering::Relaxed);
    let id = e.submit_tts(tts("frames:500 slow")).unwrap();
    assert_eq!(e.wait(id, Some(Duration::from_millis(20))).unwrap_err().kind, ErrorKind::Timeout);
    for bad in [0, id + 1000] {
        assert_eq!(e.poll(bad).unwrap_err().kind, ErrorKind::UnknownJob);
        assert_eq!(e.cancel(bad).unwrap_err().kind, ErrorKind::UnknownJob);
        assert_eq!(e.release(bad).unwrap_err().kind, ErrorKind::UnknownJob);
        assert_eq!(e.timings(bad).unwrap_err().kind, ErrorKind::UnknownJob);
        assert_eq!(e.text(bad).unwrap_err().kind, ErrorKind::UnknownJob);
        assert_eq!(e.read_audio(bad, &mut [0.0; 4]).unwrap_err().kind, ErrorKind::UnknownJob);
        assert_eq!(e.wait(bad, Some(Duration::ZERO)).unwrap_err().kind, ErrorKind::UnknownJob);
    }
    e.release(id).unwrap(); // releasing a running job cancels it
    assert_eq!(e.poll(id).unwrap_err().kind, ErrorKind::UnknownJob);
}

#[test]
fn timings_are_consistent() {
    let (e, knobs) = engine(config());
    knobs.load_delay_ms.store(30, Ordering::Relaxed);
    knobs.step_delay_us.store(200, Ordering::Relaxed);
    let a = e.submit_tts(tts("frames:20 timing")).unwrap();
    let b = e.submit_asr(asr(8_000)).unwrap();
    for id in [a, b] {
        e.wait(id, LONG).unwrap();
        let t = e.timings(id).unwrap();
        for v in [
            t.queue_ms,
            t.model_load_ms,
            t.tts_ms,
            t.codec_ms,
            t.denoise_ms,
            t.upsample_ms,
            t.asr_frontend_ms,
            t.asr_encode_ms,
            t.asr_decode_ms,
            t.total_ms,
        ] {
            assert!(v >= 0.0 && v.is_finite());
        }
        assert!(t.stages_sum_ms() <= t.total_ms + 1e-6, "{t:?}");
        assert!(t.model_load_ms >= 30.0, "the first batch of each kind loads its model: {t:?}");
        assert!(t.batch_size >= 1);
        assert!(t.total_ms > 0.0);
    }
}

#[test]
fn both_models_fit_means_no_swaps() {
    let (loader, knobs) = FakeLoader::new(400, 500);
    let e = Engine::with_loader(EngineConfig { memory_budget: 1000, ..config() }, loader).unwrap();
    for i in 0..6 {
        let id = if i % 2 == 0 { e.submit_tts(tts("frames:3 x")).unwrap() } else { e.submit_asr(asr(1600)).unwrap() };
        e.wait(id, LONG).unwrap();
    }
    let s = e.stats();
    assert_eq!((s.model_loads, s.model_swaps), (2, 0));
    assert!(s.resident.tts && s.resident.asr);
    assert_eq!(s.memory_in_use, 900);
    assert_eq!(knobs.tts_loads.load(Ordering::Relaxed) + knobs.asr_loads.load(Ordering::Relaxed), 2);
}

#[test]
fn models_that_do_not_fit_together_swap() {
    let (loader, _) = FakeLoader::new(600, 500);
    let e = Engine::with_loader(EngineConfig { memory_budget: 1000, ..config() }, loader).unwrap();
    for i in 0..4 {
        let id = if i % 2 == 0 { e.submit_tts(tts("frames:3 x")).unwrap() } else { e.submit_asr(asr(1600)).unwrap() };
        e.wait(id, LONG).unwrap();
    }
    let s = e.stats();
    assert_eq!((s.model_loads, s.model_swaps), (4, 3));
    assert!(s.resident.tts != s.resident.asr, "only one model resident");
    assert!(s.memory_in_use <= 1000);
    // A model larger than the whole budget is refused at create.
    let (loader, _) = FakeLoader::new(2000, 10);
    let err = Engine::with_loader(EngineConfig { memory_budget: 1000, ..config() }, loader).err().unwrap();
    assert_eq!(err.kind, ErrorKind::OutOfMemory);
}

#[test]
fn sticky_scheduling_serves_the_resident_model_first() {
    let (loader, knobs) = FakeLoader::new(600, 500);
    let cfg = EngineConfig { memory_budget: 1000, max_batch: 2, max_wait: Duration::from_secs(30), ..config() };
    let e = Engine::with_loader(cfg, loader).unwrap();
    knobs.step_delay_us.store(1_000, Ordering::Relaxed);
    let first = e.submit_tts(tts("frames:30 first")).unwrap();
    while e.poll(first).unwrap().state == JobState::Queued {
        std::thread::sleep(Duration::from_millis(1));
    }
    // While TTS runs: more ASR jobs than TTS jobs arrive; TTS (resident) is still served first.
    let asr_ids: Vec<u64> = (0..4).map(|_| e.submit_asr(asr(1600)).unwrap()).collect();
    let tts_ids: Vec<u64> =
        (0..2).map(|i| e.submit_tts(tts(&format!("frames:5 t{i}")))).collect::<Result<_, _>>().unwrap();
    for id in asr_ids.iter().chain(&tts_ids) {
        e.wait(*id, LONG).unwrap();
    }
    let log: String = knobs.step_log.lock().iter().collect();
    let first_a = log.find('A').unwrap();
    assert!(!log[first_a..].contains('T'), "all TTS work before the swap to ASR: {log}");
    assert_eq!(e.stats().model_swaps, 1);
}

#[test]
fn the_other_kind_is_served_within_the_wait_bound() {
    let (loader, knobs) = FakeLoader::new(600, 500);
    let cfg = EngineConfig { memory_budget: 1000, max_batch: 2, max_wait: Duration::from_millis(50), ..config() };
    let e = Engine::with_loader(cfg, loader).unwrap();
    knobs.step_delay_us.store(1_000, Ordering::Relaxed);
    // A stream of TTS work that alone would keep the TTS model busy for seconds.
    let mut tts_ids: Vec<u64> = (0..4).map(|i| e.submit_tts(tts(&format!("frames:40 t{i}"))).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(5));
    let a = e.submit_asr(asr(1600)).unwrap();
    let submitted = Instant::now();
    tts_ids.extend((0..4).map(|i| e.submit_tts(tts(&format!("frames:40 u{i}"))).unwrap()));
    e.wait(a, LONG).unwrap();
    let t = e.timings(a).unwrap();
    // Bound 50 ms + the rest of one TTS batch (≤ 40 steps of ≥ 1 ms) + loads; generous slack for CI.
    assert!(t.queue_ms < 50.0 + 1000.0, "ASR waited {:.1} ms", t.queue_ms);
    assert!(submitted.elapsed() < Duration::from_secs(10));
    for id in tts_ids {
        assert_eq!(e.wait(id, LONG).unwrap().state, JobState::Done, "TTS continues after");
    }
}

#[test]
fn priority_orders_jobs_within_a_kind() {
    let cfg = EngineConfig { max_batch: 1, ..config() };
    let (e, knobs) = engine(cfg);
    knobs.step_delay_us.store(2_000, Ordering::Relaxed);
    let blocker = e.submit_tts(tts("frames:20 blocker")).unwrap();
    while e.poll(blocker).unwrap().state == JobState::Queued {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut low = tts("frames:2 low");
    low.priority = -1;
    let mut high = tts("frames:2 high");
    high.priority = 5;
    let l = e.submit_tts(low).unwrap();
    let h = e.submit_tts(high).unwrap();
    e.wait(l, LONG).unwrap();
    e.wait(h, LONG).unwrap();
    assert!(e.timings(h).unwrap().queue_ms < e.timings(l).unwrap().queue_ms, "high priority started first");
}

#[test]
fn a_failing_sequence_fails_only_its_job() {
    let (e, _) = engine(config());
    let mut bad = tts("frames:3 bad");
    bad.speaker = Some("nobody".into());
    let b = e.submit_tts(bad).unwrap();
    let g = e.submit_tts(tts("frames:3 good")).unwrap();
    let info = e.wait(b, LONG).unwrap();
    assert_eq!(info.state, JobState::Failed);
    let err = info.error.unwrap();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert!(err.message.contains("nobody"));
    assert_eq!(e.wait(g, LONG).unwrap().state, JobState::Done);
}

#[test]
fn a_panicking_model_fails_its_batch_and_the_engine_recovers() {
    let (e, knobs) = engine(config());
    let p = e.submit_tts(tts("frames:3 panic")).unwrap();
    let info = e.wait(p, LONG).unwrap();
    assert_eq!(info.state, JobState::Failed);
    assert_eq!(info.error.unwrap().kind, ErrorKind::Internal);
    let ok = e.submit_tts(tts("frames:3 fine")).unwrap();
    assert_eq!(e.wait(ok, LONG).unwrap().state, JobState::Done);
    assert_eq!(knobs.tts_loads.load(Ordering::Relaxed), 2, "the model is reloaded after a panic");
}

#[test]
fn drop_cancels_outstanding_jobs_and_joins() {
    for _ in 0..10 {
        let (e, knobs) = engine(config());
        knobs.step_delay_us.store(1_000, Ordering::Relaxed);
        for i in 0..8 {
            e.submit_tts(tts(&format!("frames:1000 j{i}"))).unwrap();
        }
        let t = Instant::now();
        drop(e);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn log_sink_receives_stage_lines() {
    let lines = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let sink_lines = lines.clone();
    let cfg = EngineConfig {
        log_level: voxkit::LogLevel::Info,
        log_sink: Some(Arc::new(move |_level, msg: &str| sink_lines.lock().push(msg.to_string()))),
        ..config()
    };
    let (e, _) = engine(cfg);
    let id = e.submit_tts(tts("frames:4 logged")).unwrap();
    e.wait(id, LONG).unwrap();
    drop(e);
    let lines = lines.lock();
    assert!(lines.iter().any(|l| l.starts_with("pipeline: codec stage done in")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with(&format!("pipeline: tts job {id} done in"))), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("tts model loaded")), "{lines:?}");
}
