//! The wait-free audio path for real-time threads (`Engine::open_ring`, `vox_audio_ring_*`), on
//! a tiny random-weight checkpoint: a ring smaller than one frame read by a simulated audio
//! thread while the worker runs other jobs gives exactly the offline audio, with no allocation on
//! that thread; closing hands the rest back; a released job or a destroyed engine ends the ring.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use voxkit::error::ErrorKind;
#[allow(dead_code)]
#[path = "../src/bin/voxkit/random_checkpoint.rs"]
mod random_checkpoint;
use voxkit::seams::request::{Sampling, TtsRequest};
use voxkit::{Engine, EngineConfig, JobState};

/// Counts the allocations (and frees) of threads marked as real-time.
struct Counting;

thread_local! {
    static REAL_TIME: Cell<bool> = const { Cell::new(false) };
}
static RT_ALLOCS: AtomicU64 = AtomicU64::new(0);

fn note() {
    if REAL_TIME.try_with(Cell::get).unwrap_or(false) {
        RT_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note();
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn checkpoint() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("voxkit-ring-tiny-{}", std::process::id()));
        let tok = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer");
        random_checkpoint::write("tiny-customvoice", &dir, &tok, 11).expect("write tiny checkpoint");
        dir
    })
    .clone()
}

fn engine() -> Engine {
    Engine::new(EngineConfig { tts_model_dir: Some(checkpoint()), max_batch: 4, cpu_threads: 2, ..Default::default() })
        .unwrap()
}

fn request(text: &str, stream: bool, frames: u32) -> TtsRequest {
    TtsRequest {
        text: text.into(),
        speaker: Some("vivian".into()),
        language: Some("English".into()),
        max_new_tokens: frames,
        sampling: Sampling { seed: Some(99), ..Default::default() },
        stream,
        ..Default::default()
    }
}

const TEXT: &str = "An audio thread reads this without a lock.";

fn offline(e: &Engine, frames: u32) -> Vec<f32> {
    let id = e.submit_tts(request(TEXT, false, frames)).unwrap();
    let info = e.wait(id, Some(Duration::from_secs(120))).unwrap();
    assert_eq!(info.state, JobState::Done, "{:?}", info.error);
    let mut a = vec![0f32; info.samples_ready as usize];
    assert_eq!(e.read_audio(id, &mut a).unwrap(), a.len());
    e.release(id).unwrap();
    a
}

fn assert_same(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let d = got.iter().zip(want).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(d <= 1e-5, "{what}: differs by {d:e}");
}

#[test]
fn a_ring_smaller_than_a_frame_gives_the_offline_audio_while_the_worker_is_busy() {
    let e = engine();
    let want = offline(&e, 30);
    let id = e.submit_tts(request(TEXT, true, 30)).unwrap();
    // 600 samples (a ring of 1024) against 1920-sample frames: most of every frame waits in the
    // job and is moved in as the reader drains.
    let reader = e.open_ring(id, 600).unwrap();
    assert_eq!(reader.capacity(), 1024);
    // Other jobs keep the worker stepping (and holding job locks) meanwhile.
    let others: Vec<u64> =
        (0..2).map(|i| e.submit_tts(request(&format!("Busy worker number {i}."), true, 30)).unwrap()).collect();

    let got = std::thread::scope(|s| {
        s.spawn(|| {
            // A simulated audio callback: 256 samples at a time, every millisecond.
            let mut got = Vec::with_capacity(want.len() + 4096);
            let mut block = [0f32; 256];
            let (mut reads, mut empty, mut worst) = (0u64, 0u64, Duration::ZERO);
            let deadline = Instant::now() + Duration::from_secs(120);
            REAL_TIME.set(true);
            // The counter sees this thread's allocations (else the check below proves nothing).
            drop(std::hint::black_box(Box::new(7u8)));
            assert_eq!(RT_ALLOCS.swap(0, Ordering::Relaxed), 2, "an allocation and a free");
            loop {
                let t = Instant::now();
                let (n, ended) = reader.read(&mut block);
                worst = worst.max(t.elapsed());
                reads += 1;
                got.extend_from_slice(&block[..n]);
                if ended {
                    break;
                }
                if n == 0 {
                    empty += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                assert!(Instant::now() < deadline, "the ring never ended");
            }
            REAL_TIME.set(false);
            eprintln!("ring: {reads} reads ({empty} found nothing), the slowest took {worst:?}");
            got
        })
        .join()
        .unwrap()
    });
    assert_eq!(RT_ALLOCS.load(Ordering::Relaxed), 0, "the audio thread allocated or freed memory");
    assert_same("ring", &got, &want);
    let info = e.poll(id).unwrap();
    assert_eq!(info.state, JobState::Done);
    assert_eq!(info.samples_ready, 0);
    assert_eq!(info.samples_total as usize, want.len());
    for o in others {
        e.wait(o, Some(Duration::from_secs(120))).unwrap();
    }
    reader.close();
}

#[test]
fn closing_a_ring_hands_the_unread_audio_back_to_the_job() {
    let e = engine();
    let want = offline(&e, 8);
    let id = e.submit_tts(request(TEXT, false, 8)).unwrap();
    e.wait(id, Some(Duration::from_secs(120))).unwrap();
    let reader = e.open_ring(id, 1000).unwrap();
    // While the ring is open, the job's audio is the ring's alone.
    let err = e.read_audio(id, &mut [0f32; 16]).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument, "{}", err.message);
    assert_eq!(e.open_ring(id, 64).unwrap_err().kind, ErrorKind::InvalidArgument);
    assert_eq!(e.poll(id).unwrap().samples_ready as usize, want.len());
    let mut head = vec![0f32; 300];
    assert_eq!(reader.read(&mut head), (300, false));
    reader.close();
    let mut rest = vec![0f32; want.len()];
    let n = e.read_audio(id, &mut rest).unwrap();
    head.extend_from_slice(&rest[..n]);
    assert_same("ring, then read_audio", &head, &want);
    // A second ring on the same job starts where the reads stopped (here: at the end).
    let again = e.open_ring(id, 64).unwrap();
    assert_eq!(again.read(&mut [0f32; 64]), (0, true));
    again.close();
}

#[test]
fn rings_refuse_what_they_cannot_be() {
    let e = engine();
    assert_eq!(e.open_ring(999_999_999, 64).unwrap_err().kind, ErrorKind::UnknownJob);
    let id = e.submit_tts(request(TEXT, false, 2)).unwrap();
    assert_eq!(e.open_ring(id, 0).unwrap_err().kind, ErrorKind::InvalidArgument);
    assert_eq!(e.open_ring(id, (1 << 24) + 1).unwrap_err().kind, ErrorKind::InvalidArgument);
    e.release(id).unwrap();
}

#[test]
fn a_ring_ends_when_its_job_is_released_or_its_engine_destroyed() {
    let e = engine();
    let id = e.submit_tts(request(TEXT, true, 200)).unwrap();
    let released = e.open_ring(id, 4096).unwrap();
    e.release(id).unwrap();
    let id2 = e.submit_tts(request(TEXT, true, 200)).unwrap();
    let orphan = e.open_ring(id2, 4096).unwrap();
    drop(e);
    let mut buf = vec![0f32; 8192];
    for (what, ring) in [("released", &released), ("engine destroyed", &orphan)] {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ring.read(&mut buf).1 {
            assert!(Instant::now() < deadline, "{what}: the ring never ended");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    released.close();
    orphan.close();
}

#[test]
fn the_c_abi_checks_every_ring_pointer() {
    use std::ffi::CString;
    use voxkit::ffi::*;
    let dir = CString::new(checkpoint().to_str().unwrap()).unwrap();
    let text = CString::new(TEXT).unwrap();
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
        req.max_new_tokens = 6;
        req.stream = 1;
        let mut job = 0;
        assert_eq!(vox_tts_submit(engine, &req, &mut job), VOX_OK);

        let mut ring = std::ptr::null_mut();
        assert_eq!(vox_audio_ring_open(engine, job, 4096, std::ptr::null_mut()), VOX_ERR_NULL_POINTER);
        assert_eq!(vox_audio_ring_open(std::ptr::null(), job, 4096, &mut ring), VOX_ERR_NULL_POINTER);
        assert_eq!(vox_audio_ring_open(engine, job + 1000, 4096, &mut ring), VOX_ERR_UNKNOWN_JOB);
        assert!(ring.is_null(), "out-params are written only on success");
        assert_eq!(vox_audio_ring_open(engine, job, 4096, &mut ring), VOX_OK);
        let mut buf = [0f32; 512];
        let (mut written, mut flags) = (usize::MAX, u32::MAX);
        assert_eq!(
            vox_audio_ring_read(std::ptr::null_mut(), buf.as_mut_ptr(), 512, &mut written, &mut flags),
            VOX_ERR_NULL_POINTER
        );
        assert_eq!(
            vox_audio_ring_read(ring, buf.as_mut_ptr(), 512, std::ptr::null_mut(), &mut flags),
            VOX_ERR_NULL_POINTER
        );
        assert_eq!(
            vox_audio_ring_read(ring, std::ptr::null_mut(), 512, &mut written, &mut flags),
            VOX_ERR_NULL_POINTER
        );
        assert_eq!((written, flags), (usize::MAX, u32::MAX));
        assert_eq!(vox_audio_ring_read(ring, std::ptr::null_mut(), 0, &mut written, std::ptr::null_mut()), VOX_OK);
        assert_eq!(written, 0);
        let mut total = 0usize;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert_eq!(vox_audio_ring_read(ring, buf.as_mut_ptr(), buf.len(), &mut written, &mut flags), VOX_OK);
            total += written;
            if flags & VOX_RING_ENDED != 0 {
                break;
            }
            assert_eq!(flags, 0);
            assert!(Instant::now() < deadline);
            if written == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let mut info = VoxJobInfo { struct_size: std::mem::size_of::<VoxJobInfo>() as u32, ..Default::default() };
        assert_eq!(vox_poll(engine, job, &mut info), VOX_OK);
        assert_eq!(info.state, VOX_JOB_DONE);
        assert_eq!(total as u64, info.samples_total);
        assert!(total > 0);
        // vox_read_audio is refused while the ring is open, and works again after the close.
        assert_eq!(vox_read_audio(engine, job, buf.as_mut_ptr(), buf.len(), &mut written), VOX_ERR_INVALID_ARGUMENT);
        assert_eq!(vox_audio_ring_close(ring), VOX_OK);
        assert_eq!(vox_audio_ring_close(ring), VOX_ERR_INVALID_ARGUMENT, "a double close is refused");
        assert_eq!(vox_audio_ring_close(std::ptr::null_mut()), VOX_ERR_NULL_POINTER);
        assert_eq!(vox_read_audio(engine, job, buf.as_mut_ptr(), buf.len(), &mut written), VOX_OK);
        assert_eq!(written, 0);
        assert_eq!(vox_release(engine, job), VOX_OK);
        vox_engine_destroy(engine);
    }
}
