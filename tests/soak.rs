//! Soak: 8 host threads submit TTS and ASR jobs against tiny random-weight checkpoints, poll,
//! stream reads (plain and through audio rings), cancel and release, for a bounded time
//! (`VOXKIT_SOAK_SECS`, default 20; longer runs are recorded in docs/RELIABILITY.md).
//! `VOXKIT_SOAK_FIXED_TEXT=1` gives every TTS job the same text (the tokenizer's word cache then
//! stays at one entry: what memory still grows is something else).
//!
//! Checked: every job ends exactly once (a terminal state, then one release; a second release
//! is refused); no audio is lost or duplicated (what a thread read equals the job's
//! `samples_total`, which is 1920 per frame for a TTS job that finished); the engine's counters
//! add up; resident memory stays flat after the warm-up; a watchdog fails the test if no
//! operation completes for 60 s (a deadlock).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "support/device.rs"]
mod device;
#[allow(dead_code)]
#[path = "../src/bin/voxkit/random_checkpoint.rs"]
mod random_checkpoint;
use voxkit::error::ErrorKind;
use voxkit::seams::request::{AsrRequest, Sampling, TtsRequest};
use voxkit::{Engine, EngineConfig, JobState};

const THREADS: usize = 8;

fn checkpoints() -> (PathBuf, PathBuf) {
    let root = std::env::temp_dir().join(format!("voxkit-soak-{}", std::process::id()));
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (tts, asr) = (root.join("tts"), root.join("asr"));
    random_checkpoint::write("tiny-customvoice", &tts, &fixtures.join("tokenizer"), 11).unwrap();
    random_checkpoint::write("tiny-asr", &asr, &fixtures.join("asr/tiny"), 11).unwrap();
    (tts, asr)
}

/// Resident set size in bytes (Linux; 0 elsewhere).
/// The system allocator, counting the bytes the process holds on its heap (allocated, not yet
/// freed): unlike RSS, no allocator slack or fragmentation in it, so growth here is memory kept.
struct Counting;
static HEAP: AtomicI64 = AtomicI64::new(0);
// SAFETY: every call goes to the system allocator; the counter only observes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            HEAP.fetch_add(l.size() as i64, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            HEAP.fetch_add(l.size() as i64, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        HEAP.fetch_sub(l.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            HEAP.fetch_add(new as i64 - l.size() as i64, Ordering::Relaxed);
        }
        q
    }
}
#[global_allocator]
static GLOBAL: Counting = Counting;

fn heap() -> u64 {
    HEAP.load(Ordering::Relaxed).max(0) as u64
}

fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// A small deterministic generator per thread.
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

#[derive(Default)]
struct Tally {
    submitted: u64,
    done: u64,
    failed: u64,
    cancelled: u64,
    samples: u64,
}

/// Reads a TTS job to its end (plainly or through a ring), maybe cancelling it on the way;
/// returns the samples read.
fn drain_tts(e: &Engine, id: u64, rng: &mut Rng, progress: &AtomicU64) -> u64 {
    let cancel_after = if rng.below(5) == 0 { Some(rng.below(4000)) } else { None };
    let mut buf = vec![0f32; 64 + rng.below(3000) as usize];
    let mut read = 0u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    let ring = if rng.below(3) == 0 { Some(e.open_ring(id, 256 + rng.below(8192) as usize).unwrap()) } else { None };
    loop {
        assert!(Instant::now() < deadline, "job {id} never ended");
        if cancel_after.is_some_and(|at| read >= at) {
            e.cancel(id).unwrap();
        }
        let (n, over) = match &ring {
            Some(r) => r.read(&mut buf),
            None => {
                let state = e.poll(id).unwrap().state;
                let n = e.read_audio(id, &mut buf).unwrap();
                (n, n == 0 && state.is_terminal())
            }
        };
        assert!(buf[..n].iter().all(|v| v.is_finite()), "job {id}: non-finite audio handed out");
        read += n as u64;
        progress.fetch_add(1, Ordering::Relaxed);
        if over {
            break;
        }
        if n == 0 {
            let _ = e.wait(id, Some(Duration::from_millis(2))); // Timeout: not ended yet
        }
    }
    if let Some(r) = ring {
        r.close();
        // The ring gave everything: nothing is left for read_audio.
        assert_eq!(e.read_audio(id, &mut buf).unwrap(), 0, "job {id}: samples left after the ring ended");
    }
    read
}

fn worker(e: &Engine, seed: u64, stop: &AtomicBool, progress: &AtomicU64) -> Tally {
    let mut rng = Rng(seed | 1);
    let mut t = Tally::default();
    let fixed_text = std::env::var_os("VOXKIT_SOAK_FIXED_TEXT").is_some_and(|v| v == "1");
    while !stop.load(Ordering::Relaxed) {
        let tts = rng.below(3) != 0;
        let id = if tts {
            e.submit_tts(TtsRequest {
                text: match rng.below(1000) {
                    _ if fixed_text => "Soak test sentence with some words.".to_string(),
                    n => format!("Soak test sentence {n} with some words."),
                },
                max_new_tokens: 1 + rng.below(12) as u32,
                sampling: Sampling { seed: Some(rng.next()), ..Default::default() },
                stream: rng.below(2) == 0,
                priority: rng.below(3) as i32 - 1,
                ..Default::default()
            })
        } else {
            let frames = 1600 + rng.below(16_000) as usize;
            let rate = [16_000, 22_050, 44_100][rng.below(3) as usize];
            let channels = 1 + rng.below(2) as u32;
            let audio = (0..frames * channels as usize).map(|i| ((i as f32) * 0.01).sin() * 0.3).collect();
            e.submit_asr(AsrRequest { audio, sample_rate: rate, channels, max_new_tokens: 8, ..Default::default() })
        };
        let id = match id {
            Ok(id) => id,
            Err(err) if err.kind == ErrorKind::QueueFull => continue,
            Err(err) => panic!("submit failed: {err:?}"),
        };
        t.submitted += 1;
        let read = if tts {
            drain_tts(e, id, &mut rng, progress)
        } else {
            if rng.below(6) == 0 {
                e.cancel(id).unwrap();
            }
            e.wait(id, Some(Duration::from_secs(300))).unwrap();
            assert!(e.text(id).unwrap().len() < 1 << 20);
            0
        };
        let info = e.wait(id, Some(Duration::from_secs(300))).unwrap();
        assert!(info.state.is_terminal(), "job {id} still {:?}", info.state);
        match info.state {
            JobState::Done => t.done += 1,
            JobState::Failed => t.failed += 1,
            _ => t.cancelled += 1,
        }
        if tts {
            assert_eq!(read, info.samples_total, "job {id}: read {read} of {} samples", info.samples_total);
            if info.state == JobState::Done {
                assert_eq!(info.samples_total, info.tokens as u64 * 1920, "job {id}: whole frames");
            }
            t.samples += read;
        }
        e.release(id).unwrap();
        assert_eq!(e.release(id).unwrap_err().kind, ErrorKind::UnknownJob, "a job is released once");
        progress.fetch_add(1, Ordering::Relaxed);
    }
    t
}

#[test]
fn eight_threads_for_a_while_lose_nothing_and_hold_memory_flat() {
    let secs: u64 = std::env::var("VOXKIT_SOAK_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let (tts, asr) = checkpoints();
    let e = Engine::new(EngineConfig {
        device: device::device(),
        tts_model_dir: Some(tts),
        asr_model_dir: Some(asr),
        max_batch: 4,
        cpu_threads: 2,
        max_queued_jobs: 16,
        ..Default::default()
    })
    .unwrap();
    let stop = AtomicBool::new(false);
    let progress = AtomicU64::new(0);
    let start = Instant::now();
    let (tallies, rss_trace) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                s.spawn({
                    let (e, stop, progress) = (&e, &stop, &progress);
                    move || worker(e, 0x9E37 * (i as u64 + 1), stop, progress)
                })
            })
            .collect();
        // Watchdog and memory sampler: RSS after a third of the run (warm-up: both models
        // loaded, pools and caches grown), then every second.
        let mut rss_trace = Vec::new();
        let mut last = (0, Instant::now());
        let mut next_sample = Duration::from_secs(secs / 3);
        while start.elapsed() < Duration::from_secs(secs) {
            std::thread::sleep(Duration::from_millis(200));
            let p = progress.load(Ordering::Relaxed);
            if p != last.0 {
                last = (p, Instant::now());
            }
            assert!(last.1.elapsed() < Duration::from_secs(60), "no operation completed for 60 s: a deadlock?");
            if start.elapsed() >= next_sample {
                rss_trace.push((rss(), heap()));
                next_sample += Duration::from_secs(1);
            }
        }
        stop.store(true, Ordering::Relaxed);
        let tallies: Vec<Tally> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        rss_trace.push((rss(), heap()));
        (tallies, rss_trace)
    });
    let sum = |f: fn(&Tally) -> u64| tallies.iter().map(f).sum::<u64>();
    let (submitted, done, failed, cancelled) =
        (sum(|t| t.submitted), sum(|t| t.done), sum(|t| t.failed), sum(|t| t.cancelled));
    let stats = e.stats();
    let mb = |b: u64| b as f64 / 1e6;
    let ((first, heap_first), (end, heap_end)) = (rss_trace[0], *rss_trace.last().unwrap());
    let peak = rss_trace.iter().map(|s| s.0).max().unwrap_or(0);
    eprintln!(
        "soak: {secs} s, {THREADS} threads: {submitted} jobs ({done} done, {failed} failed, {cancelled} cancelled), {} samples read, {} operations; RSS {:.1} MB after warm-up, peak {:.1}, {:.1} MB at the end; heap {:.2} -> {:.2} MB",
        sum(|t| t.samples),
        progress.load(Ordering::Relaxed),
        mb(first),
        mb(peak),
        mb(end),
        mb(heap_first),
        mb(heap_end)
    );
    let trace: Vec<String> = rss_trace.iter().step_by(10).map(|&(r, h)| format!("{:.0}/{:.2}", mb(r), mb(h))).collect();
    eprintln!("soak: RSS/heap every 10 s after the warm-up (MB): {}", trace.join(" "));
    assert!(submitted >= THREADS as u64, "too few jobs ran to mean anything");
    assert_eq!(failed, 0, "no job of this mix should fail");
    assert_eq!(done + cancelled, submitted);
    assert_eq!((stats.jobs_done, stats.jobs_cancelled, stats.jobs_failed), (done, cancelled, failed));
    assert_eq!(stats.jobs_held, 0, "every job was released");
    assert_eq!(stats.queue_depth, 0);
    // Flat: allow allocator slack, not growth with the number of jobs.
    let growth = end.saturating_sub(first);
    assert!(growth < 48 << 20, "resident memory grew by {:.1} MB after the warm-up", growth as f64 / 1e6);
    // The heap, without the allocator's slack: flat since the CPU scratch keeps its idle buffers
    // under size classes (before, it kept one of every length a job used, and grew by 10 MB in
    // 90 s towards its 128 MB cap: docs/RELIABILITY.md).
    let heap_growth = heap_end.saturating_sub(heap_first);
    assert!(heap_growth < 16 << 20, "the heap grew by {:.2} MB after the warm-up", mb(heap_growth));
}
