//! How long `Engine` drop (`vox_engine_destroy`) takes while a model loads and while jobs run,
//! on a real checkpoint: `cargo run --release --example destroy_latency -- <tts-dir> [runs]`.

use std::time::{Duration, Instant};

use voxkit::{Engine, EngineConfig, TtsRequest};

fn engine(dir: &str, preload: bool) -> Engine {
    Engine::new(EngineConfig { tts_model_dir: Some(dir.into()), preload_tts: preload, ..Default::default() })
        .expect("engine")
}

fn request() -> TtsRequest {
    TtsRequest { text: "A long sentence that keeps the engine busy. ".repeat(10), stream: true, ..Default::default() }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).expect("usage: destroy_latency <tts-dir> [runs]");
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    for _ in 0..runs {
        // 1. While the model loads (the job's first use triggers it on the worker).
        let e = engine(dir, false);
        e.submit_tts(request()).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        let t = Instant::now();
        drop(e);
        let during_load = t.elapsed();
        // 2. While four jobs run, after the first audio.
        let e = engine(dir, true);
        let ids: Vec<_> = (0..4).map(|_| e.submit_tts(request()).unwrap()).collect();
        while e.poll(ids[0]).unwrap().samples_total == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        drop(e);
        let during_jobs = t.elapsed();
        // 3. Idle, with the model loaded: the teardown alone.
        let e = engine(dir, true);
        let t = Instant::now();
        drop(e);
        let idle = t.elapsed();
        println!("destroy idle with the model loaded: {:.1} ms", idle.as_secs_f64() * 1e3);
        println!(
            "destroy during load: {:.1} ms, during 4 running jobs: {:.1} ms",
            during_load.as_secs_f64() * 1e3,
            during_jobs.as_secs_f64() * 1e3
        );
    }
}
