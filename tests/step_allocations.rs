//! The step loops allocate nothing of size once they run: every tensor and kernel temporary comes
//! from the backend's scratch workspace, KV caches are preallocated pools, the sampling chain
//! keeps its buffers. What remains is small host bookkeeping, bounded per step.
//! A counting allocator sees every allocation of at least 2 KiB, on every thread, while steady
//! steps run (TTS frames with sampling on, codec streaming, ASR decode steps).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use voxkit::backend::Cpu;
use voxkit::models::asr::Qwen3Asr;
use voxkit::models::codec::Codec;
/// The checkpoint writer of `voxkit make-checkpoint` (a CLI module, not part of the library).
#[allow(dead_code)]
#[path = "../src/bin/voxkit/random_checkpoint.rs"]
mod random_checkpoint;
use voxkit::models::tts::Qwen3Tts;
use voxkit::seams::request::{Sampling, TtsRequest};
use voxkit::seams::{AsrModel, TtsModel, TtsPrefill};

/// Allocations of at least this many bytes are counted (above rayon's queue blocks, 1520 bytes,
/// which its injector allocates once per 63 calls into the pool: bookkeeping, not data).
const LARGE: usize = 2048;

struct Counting;

static ARMED: AtomicBool = AtomicBool::new(false);
static LARGE_ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALL_ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

thread_local! {
    static IN_NOTE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn note(size: usize) {
    if ARMED.load(Ordering::Relaxed) {
        ALL_ALLOCS.fetch_add(1, Ordering::Relaxed);
        if size >= LARGE {
            LARGE_ALLOCS.fetch_add(1, Ordering::Relaxed);
            // VOXKIT_ALLOC_TRACE=1 prints where each large allocation came from.
            if std::env::var_os("VOXKIT_ALLOC_TRACE").is_some() && !IN_NOTE.get() {
                IN_NOTE.set(true);
                eprintln!("large allocation of {size} bytes:\n{}", std::backtrace::Backtrace::force_capture());
                IN_NOTE.set(false);
            }
        }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests share the global counter: one at a time.
static SERIAL: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// Runs `f` with the counter armed; returns (large, all) allocations.
fn counted(f: impl FnOnce()) -> (u64, u64) {
    LARGE_ALLOCS.store(0, Ordering::SeqCst);
    ALL_ALLOCS.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    f();
    ARMED.store(false, Ordering::SeqCst);
    (LARGE_ALLOCS.load(Ordering::SeqCst), ALL_ALLOCS.load(Ordering::SeqCst))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn tts_steps_allocate_no_tensors() {
    let _one = SERIAL.lock();
    let dir = std::env::temp_dir().join(format!("voxkit-alloc-cv-{}", std::process::id()));
    random_checkpoint::write("tiny-customvoice", &dir, &fixtures().join("tokenizer"), 3).unwrap();
    let cpu = Arc::new(Cpu::new(2).unwrap());
    let mut model = Qwen3Tts::load(&dir, cpu.clone(), 2).unwrap();
    let sampled = |seed| TtsRequest {
        text: "A sentence long enough for a few frames of speech.".into(),
        speaker: Some("Ryan".into()),
        language: Some("English".into()),
        sampling: Sampling { seed: Some(seed), repetition_penalty: Some(1.05), ..Default::default() },
        ..Default::default()
    };
    let (a, b) = (sampled(1), sampled(2));
    let seqs = [
        TtsPrefill { slot: 0, request: &a, max_new_tokens: 1000 },
        TtsPrefill { slot: 1, request: &b, max_new_tokens: 1000 },
    ];
    assert!(model.prefill(&seqs).iter().all(|r| r.is_ok()));
    for _ in 0..4 {
        model.step(&[0, 1]).unwrap();
    }
    let misses = cpu.scratch().misses();
    let mut frames = 0;
    let (large, all) = counted(|| {
        for _ in 0..6 {
            let out = model.step(&[0, 1]).unwrap();
            frames += out.iter().filter(|s| s.frame.is_some()).count();
            assert!(out.iter().all(|s| s.finish.is_none()), "the test needs sequences that keep going");
        }
    });
    assert_eq!(frames, 12);
    println!("tts: {all} allocations in 6 steps of 2 sequences, {large} of ≥ {LARGE} bytes");
    assert_eq!(large, 0, "TTS steps allocated {large} buffers of ≥ {LARGE} bytes");
    // What is left is small host bookkeeping (index lists, per-call sequence tables): ≈ 150 per
    // sequence and frame on this model (16 forward passes). A guard, not a goal.
    assert!(all <= 250 * 12, "TTS steps made {all} allocations, more than 250 a sequence and frame");
    assert_eq!(cpu.scratch().misses(), misses, "the scratch workspace had to allocate in steady steps");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn codec_streaming_takes_every_tensor_from_scratch() {
    let _one = SERIAL.lock();
    let cpu = Arc::new(Cpu::new(2).unwrap());
    let codec = Codec::load(&fixtures().join("codec/tiny"), cpu.clone()).unwrap();
    let q = codec.config.decoder_config.num_quantizers;
    let frame = |i: usize| vec![(0..q).map(|j| ((i * 7 + j * 3) % 50) as u32).collect::<Vec<u32>>()];
    let mut st = codec.new_stream().unwrap();
    // Past the transformer's window, so that its cache is in its steady state too.
    let warm = codec.config.decoder_config.sliding_window + 20;
    for i in 0..warm {
        codec.forward_stream(&mut st, &frame(i)).unwrap();
    }
    let misses = cpu.scratch().misses();
    let spf = codec.samples_per_frame();
    let (large, all) = counted(|| {
        for i in warm..warm + 8 {
            assert_eq!(codec.forward_stream(&mut st, &frame(i)).unwrap().len(), spf);
        }
    });
    println!("codec: {all} allocations in 8 streamed frames, {large} of ≥ {LARGE} bytes");
    // Not asserted to be zero: the many-row products (1920 rows a frame at the last stage) run
    // the gemm crate, which allocates its packing buffer on every call. What voxkit allocates —
    // tensors and temporaries — comes from the scratch workspace, and the frame's samples are
    // the one buffer handed out.
    assert!(large >= 8, "each frame hands its samples out in a buffer of its own");
    assert_eq!(cpu.scratch().misses(), misses, "the scratch workspace had to allocate in steady frames");
}

#[test]
fn asr_decode_steps_allocate_no_tensors() {
    let _one = SERIAL.lock();
    let cpu = Arc::new(Cpu::new(2).unwrap());
    let mut m = Qwen3Asr::load(&fixtures().join("asr/tiny"), cpu.clone(), 1).unwrap();
    let audio: Vec<f32> = (0..48_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
    let f = m.frontend(&[&audio]).unwrap().remove(0);
    let (prefix, suffix) = m.prompt_parts(None, None).unwrap();
    // The decode step's compute (the seam's `step` adds the stop rules and text checks).
    let logits = m.prefill_passes(&[(&f.data, &prefix, &suffix)], &[0]).unwrap();
    let cx = m.compute().clone();
    let mut next = cx.argmax(&logits)[0];
    for _ in 0..3 {
        next = cx.argmax(&m.decode_tokens(&[next], &[0]).unwrap())[0];
    }
    let misses = cpu.scratch().misses();
    let ran = 8;
    let (large, all) = counted(|| {
        for _ in 0..ran {
            next = cx.argmax(&m.decode_tokens(&[next], &[0]).unwrap())[0];
        }
    });
    println!("asr: {all} allocations in {ran} decode steps, {large} of ≥ {LARGE} bytes");
    assert_eq!(large, 0, "ASR decode steps allocated {large} buffers of ≥ {LARGE} bytes");
    assert!(all <= 30 * ran, "ASR decode steps made {all} allocations, more than 30 a step");
    assert_eq!(cpu.scratch().misses(), misses, "the scratch workspace had to allocate in steady steps");
}
