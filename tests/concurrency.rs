//! Many host threads against one engine: submitting, polling, reading, waiting, cancelling and
//! releasing at once. Every job must end exactly once, no audio may be lost or duplicated, and
//! nothing may deadlock (a watchdog aborts the test process if it hangs).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use voxkit::{Engine, EngineConfig, ErrorKind, JobState};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Owned {
    text: Option<String>,
    read: Vec<f32>,
    cancelled: bool,
}

#[test]
fn eight_threads_hammer_one_engine() {
    let done = Arc::new(AtomicBool::new(false));
    let watchdog_done = done.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        while !watchdog_done.load(Ordering::Relaxed) {
            if start.elapsed() > Duration::from_secs(120) {
                eprintln!("concurrency test hung for 120 s: deadlock");
                std::process::abort();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });

    let (loader, knobs) = FakeLoader::new(600, 500);
    knobs.step_delay_us.store(300, Ordering::Relaxed);
    // Budget for one model at a time: swaps happen under load too.
    let cfg = EngineConfig {
        memory_budget: 1000,
        max_batch: 4,
        max_queued_jobs: 48,
        max_wait: Duration::from_millis(30),
        ..config()
    };
    let engine = Arc::new(Engine::with_loader(cfg, loader).unwrap());
    let submitted = Arc::new(AtomicU64::new(0));
    let run_for = Duration::from_secs(3);

    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let e = engine.clone();
            let submitted = submitted.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t + 1) * 0x1234_5678));
                let mut mine: HashMap<u64, Owned> = HashMap::new();
                let start = Instant::now();
                let mut buf = vec![0f32; 50];
                while start.elapsed() < run_for {
                    let ids: Vec<u64> = mine.keys().copied().collect();
                    let pick = |rng: &mut Rng| (!ids.is_empty()).then(|| ids[rng.below(ids.len() as u64) as usize]);
                    match rng.below(10) {
                        0..=2 => {
                            let r = if rng.below(3) == 0 {
                                e.submit_asr(asr(800 + rng.below(4000) as usize)).map(|id| (id, None))
                            } else {
                                let text = format!("frames:{} t{t} n{}", 1 + rng.below(30), rng.below(1000));
                                let mut req = tts(&text);
                                req.stream = rng.below(2) == 0;
                                req.max_new_tokens = 100;
                                e.submit_tts(req).map(|id| (id, Some(text)))
                            };
                            match r {
                                Ok((id, text)) => {
                                    submitted.fetch_add(1, Ordering::Relaxed);
                                    mine.insert(id, Owned { text, read: Vec::new(), cancelled: false });
                                }
                                Err(err) => assert_eq!(err.kind, ErrorKind::QueueFull, "{err}"),
                            }
                        }
                        3..=4 => {
                            if let Some(id) = pick(&mut rng) {
                                let info = e.poll(id).unwrap();
                                assert!(info.samples_ready <= info.samples_total);
                            }
                        }
                        5 => {
                            if let Some(id) = pick(&mut rng) {
                                let n = e.read_audio(id, &mut buf).unwrap();
                                mine.get_mut(&id).unwrap().read.extend_from_slice(&buf[..n]);
                            }
                        }
                        6 => {
                            if let Some(id) = pick(&mut rng)
                                && rng.below(4) == 0
                            {
                                e.cancel(id).unwrap();
                                mine.get_mut(&id).unwrap().cancelled = true;
                            }
                        }
                        7 => {
                            if let Some(id) = pick(&mut rng)
                                && rng.below(3) == 0
                            {
                                e.release(id).unwrap();
                                mine.remove(&id);
                                assert_eq!(e.poll(id).unwrap_err().kind, ErrorKind::UnknownJob);
                            }
                        }
                        8 => {
                            if let Some(id) = pick(&mut rng) {
                                match e.wait(id, Some(Duration::from_millis(rng.below(5)))) {
                                    Ok(info) => assert!(info.state.is_terminal()),
                                    Err(err) => assert_eq!(err.kind, ErrorKind::Timeout),
                                }
                            }
                        }
                        _ => {
                            let s = e.stats();
                            assert!(s.memory_in_use <= 1000);
                            let _ = e.timings(pick(&mut rng).unwrap_or(0));
                        }
                    }
                }
                // Drain: every job this thread still holds ends, and its audio is complete.
                for (id, mut o) in mine {
                    let info = e.wait(id, Some(Duration::from_secs(60))).expect("job ends");
                    loop {
                        let n = e.read_audio(id, &mut buf).unwrap();
                        if n == 0 {
                            break;
                        }
                        o.read.extend_from_slice(&buf[..n]);
                    }
                    assert_eq!(o.read.len() as u64, info.samples_total, "every sample read exactly once");
                    match info.state {
                        JobState::Done => {
                            if let Some(text) = &o.text {
                                assert_eq!(o.read, expected_audio(text, frames_for(text)), "job {id} audio");
                            } else {
                                assert!(!e.text(id).unwrap().is_empty());
                            }
                        }
                        JobState::Cancelled => {
                            assert!(o.cancelled, "only cancelled jobs end cancelled");
                            if let Some(text) = &o.text {
                                let want = expected_audio(text, frames_for(text));
                                assert!(want.starts_with(&o.read), "a cancelled job's audio is a prefix");
                            }
                        }
                        other => panic!("job {id} ended {other:?}"),
                    }
                    e.release(id).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("worker thread of the test panicked");
    }
    // Released-while-running jobs end at the worker's next step.
    let total = submitted.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = engine.stats();
        let ended = s.jobs_done + s.jobs_failed + s.jobs_cancelled;
        assert!(ended <= total, "a job ended twice: {ended} ended of {total}");
        if ended == total {
            assert_eq!(s.jobs_failed, 0);
            assert_eq!(s.jobs_held, 0);
            assert_eq!(s.queue_depth, 0);
            assert!(s.jobs_done > 0 && s.jobs_cancelled > 0, "{s:?}");
            break;
        }
        assert!(Instant::now() < deadline, "jobs never ended: {s:?}, submitted {total}");
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("concurrency: {total} jobs, stats {:?}", engine.stats());
    drop(engine);
    done.store(true, Ordering::Relaxed);
}
