//! Allocation failure of a KV cache in the middle of a job, through the engine: a test allocator
//! refuses every zeroed allocation of exactly one KV block's size (computed from the fixture's
//! config, as the cache sizes it) while armed. A TTS job that has to grow its talker cache past
//! what the engine allocated up front, and an ASR job whose prompt needs more blocks than that,
//! each fail with `OutOfMemory` naming the KV cache — not an abort — and once the allocator is
//! disarmed the same engine runs the same jobs to the end.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use voxkit::backend::{KV_BLOCK, KvCache};
use voxkit::{AsrRequest, Device, Engine, EngineConfig, ErrorKind, JobState, Sampling, TtsRequest};

/// The system allocator, except that while `ARMED` a zeroed allocation of `FAIL_SIZE` bytes fails.
struct Limit;

static ARMED: AtomicBool = AtomicBool::new(false);
static FAIL_SIZE: AtomicUsize = AtomicUsize::new(0);
static REFUSED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes to the system allocator, or returns null (a failed allocation).
unsafe impl GlobalAlloc for Limit {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::SeqCst) && layout.size() == FAIL_SIZE.load(Ordering::SeqCst) {
            REFUSED.fetch_add(1, Ordering::SeqCst);
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Limit = Limit;

/// Bytes of one KV block of the decoder described by `text_config` (layers × K and V × width).
fn block_bytes(cfg: &serde_json::Value) -> usize {
    let n = |k: &str| cfg[k].as_u64().unwrap_or_else(|| panic!("{k} in {cfg}")) as usize;
    KvCache::bytes_per_token(n("num_hidden_layers"), n("num_key_value_heads") * n("head_dim")) * KV_BLOCK
}

fn config(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap()
}

// Both cases in one test: the allocator's switch is process-wide.
#[test]
fn a_kv_cache_that_cannot_grow_fails_its_job_and_the_engine_goes_on() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (tts, asr) = (fixtures.join("tts/tiny-06b"), fixtures.join("asr/tiny"));
    let talker_block = block_bytes(&config(&tts)["talker_config"]);
    let asr_block = block_bytes(&config(&asr)["thinker_config"]["text_config"]);
    let e = Engine::new(EngineConfig {
        tts_model_dir: Some(tts),
        asr_model_dir: Some(asr),
        // The host's KV cache (on a GPU, `emulator_faults` fills the device instead).
        device: Device::Cpu,
        max_batch: 1,
        cpu_threads: 2,
        ..Default::default()
    })
    .unwrap();

    // TTS: 256 tokens a slot are allocated up front (one slot: max_batch 1). The fixture's model
    // stops after a few dozen frames, so the prompt takes most of them: ≈ 230 tokens of text,
    // and the cache has to grow a few frames into the decode.
    let text = "la ".repeat(220);
    let tts_job = |e: &Engine, frames: u32| {
        // Sampled with a fixed seed: the same run every time, one that goes on past the growth.
        let sampling = Sampling { seed: Some(7), ..Default::default() };
        let id =
            e.submit_tts(TtsRequest { text: text.clone(), max_new_tokens: frames, sampling, ..Default::default() });
        let id = id.unwrap();
        e.wait(id, Some(Duration::from_secs(600))).unwrap()
    };
    // ASR: ≈ 13 audio tokens a second of audio in the prompt.
    let asr_job = |e: &Engine, seconds: usize| {
        let audio: Vec<f32> = (0..16_000 * seconds).map(|i| 0.1 * (i as f32 * 0.05).sin()).collect();
        let id = e
            .submit_asr(AsrRequest { audio, sample_rate: 16_000, channels: 1, max_new_tokens: 8, ..Default::default() })
            .unwrap();
        e.wait(id, Some(Duration::from_secs(600))).unwrap()
    };

    // Warm-up, unarmed: the models load with their first job (allocating their caches), and the
    // compute layer's scratch keeps buffers of the shapes these jobs use, so that the armed runs
    // allocate nothing new of the block's size but the cache's blocks. The TTS warm-up stays
    // within the cache's first 256 tokens; the ASR one (30 s) grows it, the armed one (60 s)
    // must grow it further.
    assert_eq!(tts_job(&e, 2).state, JobState::Done);
    assert_eq!(asr_job(&e, 30).state, JobState::Done);
    let runs: [(&str, usize, &dyn Fn() -> voxkit::JobInfo); 2] =
        [("tts", talker_block, &|| tts_job(&e, 400)), ("asr", asr_block, &|| asr_job(&e, 60))];

    for (what, block, run) in runs {
        FAIL_SIZE.store(block, Ordering::SeqCst);
        REFUSED.store(0, Ordering::SeqCst);
        ARMED.store(true, Ordering::SeqCst);
        let failed = run();
        ARMED.store(false, Ordering::SeqCst);
        assert!(REFUSED.load(Ordering::SeqCst) > 0, "{what}: no KV block of {block} bytes was asked for: {failed:?}");
        assert_eq!(failed.state, JobState::Failed, "{what}: {failed:?}");
        let err = failed.error.as_ref().expect("an error");
        assert_eq!(err.kind, ErrorKind::OutOfMemory, "{what}: {err:?}");
        assert!(err.message.contains("KV cache"), "{what}: {}", err.message);
        if what == "tts" {
            assert!(failed.tokens > 0, "the TTS job should fail while growing, not at its start: {failed:?}");
        }

        let ok = run();
        assert_eq!(ok.state, JobState::Done, "{what} after the failure: {:?}", ok.error);
        if what == "tts" {
            assert!(ok.tokens > failed.tokens, "{what}: the second job went past where the first failed: {ok:?}");
        }
        eprintln!("{what}: failed at {} tokens ({}), then done with {}", failed.tokens, err.message, ok.tokens);
    }
}
