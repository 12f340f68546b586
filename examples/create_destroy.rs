//! Creates and destroys engines many times, each running one short job, and prints the resident
//! memory every 100 cycles: `cargo run --release --example create_destroy -- <tts-dir> [cycles]`
//! (docs/RELIABILITY.md records a run). Memory must level off, not grow with the cycles.

use std::time::{Duration, Instant};

use voxkit::{Engine, EngineConfig, JobState, TtsRequest};

/// Resident set size in MB (Linux).
fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    pages * 4096.0 / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).expect("usage: create_destroy <tts-dir> [cycles]");
    let cycles: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let start = Instant::now();
    let mut trace = Vec::new();
    for i in 1..=cycles {
        let e = Engine::new(EngineConfig { tts_model_dir: Some(dir.into()), cpu_threads: 1, ..Default::default() })
            .expect("engine");
        let id = e
            .submit_tts(TtsRequest { text: "One more time.".into(), max_new_tokens: 2, ..Default::default() })
            .unwrap();
        let info = e.wait(id, Some(Duration::from_secs(60))).expect("wait");
        assert_eq!(info.state, JobState::Done, "cycle {i}: {:?}", info.error);
        drop(e);
        if i % 100 == 0 || i == 1 {
            trace.push(format!("{i}: {:.1}", rss_mb()));
        }
    }
    println!(
        "create_destroy: {cycles} cycles (create, one 2-frame job, destroy) in {:.1} s; RSS MB at cycle {}",
        start.elapsed().as_secs_f64(),
        trace.join(", ")
    );
}
