//! Destroying an engine never waits for a model load or a generation to finish: the worker's
//! loads and steps check the engine's stop flag between tensors and between layers.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::FakeLoader;

use voxkit::models::weights::Checkpoint;
use voxkit::{Engine, EngineConfig, ErrorKind, JobState, TtsRequest};

/// The checkpoint writer of `voxkit make-checkpoint` (a CLI module, not part of the library).
#[allow(dead_code)]
#[path = "../src/bin/voxkit/random_checkpoint.rs"]
mod random_checkpoint;

/// What a game can afford when it quits or unloads a scene (the test allows for a loaded CI).
const DESTROY_BUDGET: Duration = Duration::from_millis(300);

fn fake_engine(load_ms: u64) -> (Engine, std::sync::Arc<common::Knobs>) {
    let (loader, knobs) = FakeLoader::new(1 << 20, 1 << 20);
    knobs.load_delay_ms.store(load_ms, Ordering::Relaxed);
    let config = EngineConfig { tts_model_dir: Some("fake-tts".into()), ..Default::default() };
    (Engine::with_loader(config, loader).unwrap(), knobs)
}

#[test]
fn destroy_during_a_model_load_returns_at_once() {
    let (e, knobs) = fake_engine(20_000);
    let id = e.submit_tts(TtsRequest { text: "frames:4".into(), ..Default::default() }).unwrap();
    // The worker is inside the 20 s load now.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(e.poll(id).unwrap().state, JobState::Queued);
    let t = Instant::now();
    drop(e);
    let took = t.elapsed();
    assert!(took < DESTROY_BUDGET, "destroy waited {took:?} for a model load");
    assert_eq!(knobs.tts_loads.load(Ordering::Relaxed), 0, "the load was not stopped");
}

#[test]
fn destroy_while_a_long_job_runs_returns_at_once() {
    let dir = std::env::temp_dir().join(format!("voxkit-destroy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tok = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer");
    random_checkpoint::write("tiny-customvoice", &dir, &tok, 5).unwrap();
    let e = Engine::new(EngineConfig {
        tts_model_dir: Some(dir.clone()),
        cpu_threads: 1,
        preload_tts: true,
        ..Default::default()
    })
    .unwrap();
    let req = || TtsRequest {
        text: "A long text that keeps the model busy for a good while. ".repeat(20),
        max_new_tokens: 8000,
        stream: true,
        ..Default::default()
    };
    let ids: Vec<_> = (0..4).map(|_| e.submit_tts(req()).unwrap()).collect();
    let started = Instant::now();
    while e.poll(ids[0]).unwrap().samples_total < 4 * 1920 {
        assert!(started.elapsed() < Duration::from_secs(60), "the job never produced audio");
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    drop(e);
    let took = t.elapsed();
    assert!(took < DESTROY_BUDGET, "destroy waited {took:?} for running jobs");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The real loader stops between tensors: with the stop raised, taking a tensor fails.
#[test]
fn a_raised_stop_fails_the_next_tensor_take() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asr/tiny");
    let mut ck = Checkpoint::open(&dir.join("model.safetensors")).unwrap();
    let name = ck.remaining()[0].clone();
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _scope = voxkit::seams::stop::scope(flag.clone());
    let shape = ck.take_any(&name).unwrap().shape().to_vec();
    let mut ck = Checkpoint::open(&dir.join("model.safetensors")).unwrap();
    flag.store(true, Ordering::Relaxed);
    let err = ck.take(&name, &shape).unwrap_err();
    assert_eq!(err.kind, ErrorKind::ShuttingDown);
    flag.store(false, Ordering::Relaxed);
    assert!(ck.take(&name, &shape).is_ok());
}
