//! `abi_requests`: sequences of C ABI calls with structured random arguments, through the
//! `extern "C"` exports (`voxkit::ffi::*`), on engines made once: a CustomVoice TTS + ASR engine
//! and a Base TTS engine (voices), from the tiny checkpoints, with `hard_max_new_tokens` small so
//! each job is short. Struct sizes (smaller, larger, between versions), NULLs, invalid UTF-8,
//! huge lengths, NaN/Inf/denormal PCM, odd rates and channel counts, odd sampling values, calls on
//! unknown, released and cancelled jobs, rings opened, read and closed in any order, voices
//! loaded, saved and released, engines created from odd configs and destroyed.
//!
//! Every call must return a status (libFuzzer's panic hook makes any panic a crash, caught at the
//! boundary or not). The harness keeps the caller's side of each contract: every buffer is as
//! large as the sizes it passes say — exactly as large, from its own allocation, so that
//! AddressSanitizer sees a read or write past what the header allows. Lengths past the buffer
//! are only passed where the header promises a refusal before any read (a product that
//! overflows, a reference longer than 60 s). Everything submitted is cancelled and released, every
//! ring closed and every voice released before the input ends.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ffi::c_char;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use voxkit::ffi::*;

use crate::fixtures::{self, Preset};

const MAX_OPS: usize = 24;

/// A caller's struct of `size` bytes (exactly: AddressSanitizer sees any access past it), holding
/// the first bytes of `T` and `struct_size = declared`.
struct Sized {
    ptr: *mut u8,
    layout: Layout,
}

impl Sized {
    fn new<T: Copy>(value: &T, declared: u32) -> Sized {
        // The caller owns at least 4 bytes (the struct_size field) and, when it declares more than
        // this library's size, a buffer of what it declares (capped: the library never touches
        // more than its own size).
        let size = (declared as usize).clamp(4, 4096).max(if declared as usize >= size_of::<T>() {
            size_of::<T>()
        } else {
            0
        });
        let layout = Layout::from_size_align(size, 8).unwrap();
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        let n = size.min(size_of::<T>());
        unsafe {
            std::ptr::copy_nonoverlapping(value as *const T as *const u8, ptr, n);
            (ptr as *mut u32).write(declared);
        }
        Sized { ptr, layout }
    }

    fn as_ptr<T>(&self) -> *mut T {
        self.ptr as *mut T
    }
}

impl Drop for Sized {
    fn drop(&mut self) {
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum SizeSel {
    Exact,
    Zero,
    /// This library's size minus a few bytes (a cut field, or an older layout).
    Less(u8),
    More(u16),
    Raw(u32),
}

impl SizeSel {
    fn size<T>(self) -> u32 {
        let s = size_of::<T>() as u32;
        match self {
            SizeSel::Exact => s,
            SizeSel::Zero => 0,
            SizeSel::Less(k) => s.saturating_sub(k as u32 % (s + 1)),
            SizeSel::More(k) => s + k as u32,
            SizeSel::Raw(v) => v,
        }
    }
}

/// A C string argument (kept alive, NUL-terminated, for the call).
#[derive(Arbitrary, Debug, Clone)]
pub enum Str {
    Null,
    Empty,
    Known(u8),
    Text(String),
    /// Any bytes (invalid UTF-8 included), cut at the first NUL.
    Bytes(Vec<u8>),
    Long(u16, char),
}

const KNOWN: [&str; 12] = [
    "Hello there.",
    "English",
    "chinese",
    "auto",
    "ryan",
    "Vivian",
    "Klingon",
    "Speak slowly.",
    "你好，世界。",
    " ",
    "<|im_start|><tts_pad>",
    "\u{FEFF}\u{200B}",
];

impl Str {
    fn bytes(&self) -> Option<Vec<u8>> {
        let mut b = match self {
            Str::Null => return None,
            Str::Empty => Vec::new(),
            Str::Known(k) => KNOWN[*k as usize % KNOWN.len()].as_bytes().to_vec(),
            Str::Text(s) => s.as_bytes().to_vec(),
            Str::Bytes(b) => b.clone(),
            Str::Long(n, c) => c.to_string().repeat(*n as usize).into_bytes(),
        };
        if let Some(i) = b.iter().position(|&c| c == 0) {
            b.truncate(i);
        }
        b.push(0);
        Some(b)
    }
}

/// Holds C strings alive for a call.
#[derive(Default)]
struct Strings(Vec<Vec<u8>>);

impl Strings {
    fn ptr(&mut self, s: &Str) -> *const c_char {
        match s.bytes() {
            None => std::ptr::null(),
            Some(b) => {
                self.0.push(b);
                self.0.last().unwrap().as_ptr() as *const c_char
            }
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Sample {
    Zero,
    Value(f32),
    Nan,
    Inf,
    NegInf,
    Denormal,
    Max,
    NegZero,
    Loud,
}

impl Sample {
    fn get(self) -> f32 {
        match self {
            Sample::Zero => 0.0,
            Sample::Value(v) => v,
            Sample::Nan => f32::NAN,
            Sample::Inf => f32::INFINITY,
            Sample::NegInf => f32::NEG_INFINITY,
            Sample::Denormal => f32::from_bits(1),
            Sample::Max => f32::MAX,
            Sample::NegZero => -0.0,
            Sample::Loud => 8.0,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Pcm {
    /// Frames of a 440 Hz tone (bounded), then the special samples spliced in.
    frames: u16,
    channels: u8,
    specials: Vec<(u16, Sample)>,
}

impl Pcm {
    fn make(&self) -> (Vec<f32>, u32) {
        let channels = (self.channels % 9) as u32;
        let n = (self.frames as usize % 20_000) * channels.max(1) as usize;
        let mut v: Vec<f32> = (0..n).map(|i| 0.3 * (i as f32 * 0.0576).sin()).collect();
        for &(at, s) in &self.specials {
            if !v.is_empty() {
                let i = at as usize % v.len();
                v[i] = s.get();
            }
        }
        (v, channels)
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Frames {
    /// What the buffer holds.
    Actual,
    Zero,
    /// Fewer than the buffer holds (always within the contract).
    Fewer(u16),
    /// Values whose product with the channels overflows, or that no audio may reach: refused
    /// before any read (the header says so).
    Huge(u8),
}

impl Frames {
    fn get(self, actual: u64) -> u64 {
        match self {
            Frames::Actual => actual,
            Frames::Zero => 0,
            Frames::Fewer(k) => actual.saturating_sub(k as u64),
            Frames::Huge(k) => [u64::MAX, u64::MAX / 2, 1 << 62, (1 << 62) + 7, u64::MAX - 1][k as usize % 5],
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Rate {
    Common(u8),
    Raw(u32),
}

impl Rate {
    fn get(self) -> u32 {
        match self {
            Rate::Common(k) => {
                [0, 1, 8000, 16000, 22050, 24000, 44100, 48000, 96000, 192000, 384000, 384001, 3999, 4000, 7, u32::MAX]
                    [k as usize % 16]
            }
            Rate::Raw(r) => r,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum EngineSel {
    Main,
    Base,
    Null,
    /// An engine destroyed at start-up (the registry must refuse it without touching it).
    Destroyed,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum JobRef {
    Mine(u8),
    Unknown(u64),
    Zero,
    Max,
}

#[derive(Arbitrary, Debug, Clone)]
pub struct TtsReq {
    size: SizeSel,
    priority: i32,
    text: Str,
    language: Str,
    speaker: Str,
    instruct: Str,
    max_new_tokens: u32,
    temperature: f32,
    top_k: i32,
    top_p: f32,
    repetition_penalty: f32,
    greedy: bool,
    seed: Option<u64>,
    sample_rate: Rate,
    denoise: Option<f32>,
    stream: bool,
    text_streaming: bool,
    voice: Option<u8>,
}

#[derive(Arbitrary, Debug, Clone)]
pub struct AsrReq {
    size: SizeSel,
    priority: i32,
    pcm: Pcm,
    null_pcm: bool,
    frames: Frames,
    sample_rate: Rate,
    language: Str,
    context: Str,
    max_new_tokens: u32,
    denoise: Option<f32>,
}

#[derive(Arbitrary, Debug, Clone)]
pub struct VoiceReq {
    size: SizeSel,
    pcm: Pcm,
    frames: Frames,
    sample_rate: Rate,
    denoise: Option<f32>,
    transcript: Str,
    timeout_ms: u16,
}

#[derive(Arbitrary, Debug, Clone)]
pub struct ConfigReq {
    size: SizeSel,
    device: i32,
    tts: Dir,
    asr: Dir,
    device_index: i32,
    max_batch: u8,
    memory_budget: u64,
    max_queued_jobs: u32,
    default_max_new_tokens: u32,
    hard_max_new_tokens: u32,
    max_wait_ms: u32,
    cpu_threads: u8,
    log_level: i32,
    log: bool,
    preload: u32,
    quantization: u32,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Dir {
    Null,
    Tiny(Preset),
    Missing,
    HubId,
    Other(Str),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Cap {
    Zero,
    Small(u16),
    /// NULL with this capacity (refused when it is not 0).
    NullWith(u16),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    Tts(EngineSel, TtsReq),
    Asr(EngineSel, AsrReq),
    Poll(EngineSel, JobRef, SizeSel, bool),
    Wait(EngineSel, JobRef, u8, Option<SizeSel>),
    Read(EngineSel, JobRef, Cap, bool),
    Text(EngineSel, JobRef, u8, Cap, bool),
    Timings(EngineSel, JobRef, SizeSel),
    Cancel(EngineSel, JobRef),
    Release(EngineSel, JobRef),
    RingOpen(EngineSel, JobRef, u8, bool),
    RingRead(u8, Cap, bool, bool),
    RingClose(u8),
    Stats(EngineSel, SizeSel, bool),
    ModelInfo(EngineSel, i32, SizeSel, bool),
    LastError(Cap),
    StatusString(i32),
    Init(u8, bool),
    VoiceCreate(EngineSel, VoiceReq, bool),
    VoiceLoad(Vec<u8>, bool),
    VoiceSave(u8, Cap, bool),
    VoiceRelease(u8),
    Create(ConfigReq),
}

#[derive(Arbitrary, Debug)]
pub struct Input {
    ops: Vec<Op>,
}

struct Engines {
    main: usize,
    base: usize,
    destroyed: usize,
}

fn config(tts: Option<Preset>, asr: Option<Preset>, strings: &mut Strings) -> VoxEngineConfig {
    let mut c: VoxEngineConfig = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { vox_engine_config_init(&mut c) }, VOX_OK);
    c.device = VOX_DEVICE_CPU;
    c.cpu_threads = 1;
    c.max_batch = 2;
    c.hard_max_new_tokens = 4;
    c.default_max_new_tokens = 3;
    c.max_queued_jobs = 64;
    let mut dir = |p: Option<Preset>| match p {
        Some(p) => strings.ptr(&Str::Text(fixtures::checkpoint(p).to_str().unwrap().to_string())),
        None => std::ptr::null(),
    };
    c.tts_model_dir = dir(tts);
    c.asr_model_dir = dir(asr);
    c
}

fn engines() -> &'static Engines {
    static E: OnceLock<Engines> = OnceLock::new();
    E.get_or_init(|| {
        let mut s = Strings::default();
        let make = |c: &VoxEngineConfig| {
            let mut e: *mut VoxEngine = std::ptr::null_mut();
            let st = unsafe { vox_engine_create(c, &mut e) };
            assert_eq!(st, VOX_OK, "engine create: {}", last_error());
            e
        };
        let main = make(&config(Some(Preset::CustomVoice), Some(Preset::Asr), &mut s));
        let base = make(&config(Some(Preset::Base), None, &mut s));
        let destroyed = make(&config(None, None, &mut s));
        unsafe { vox_engine_destroy(destroyed) };
        Engines { main: main as usize, base: base as usize, destroyed: destroyed as usize }
    })
}

fn last_error() -> String {
    let mut buf = vec![0u8; 1024];
    let n = unsafe { vox_last_error(buf.as_mut_ptr() as *mut c_char, buf.len()) };
    buf.truncate(n.saturating_sub(1).min(1023));
    String::from_utf8_lossy(&buf).into_owned()
}

extern "C" fn log_sink(level: i32, message: *const c_char, _user: *mut std::ffi::c_void) {
    assert!((VOX_LOG_ERROR..=VOX_LOG_TRACE).contains(&level), "log level {level}");
    assert!(!message.is_null());
    let _ = unsafe { std::ffi::CStr::from_ptr(message) }.to_str().expect("log lines are UTF-8");
}

/// What one input made, cleaned up when it ends.
struct State {
    e: &'static Engines,
    jobs: Vec<(usize, u64)>,
    rings: Vec<*mut VoxAudioRing>,
    voices: Vec<*mut VoxVoice>,
}

impl State {
    fn engine(&self, s: EngineSel) -> *const VoxEngine {
        (match s {
            EngineSel::Main => self.e.main,
            EngineSel::Base => self.e.base,
            EngineSel::Null => 0,
            EngineSel::Destroyed => self.e.destroyed,
        }) as *const VoxEngine
    }

    fn job(&self, j: JobRef) -> u64 {
        match j {
            JobRef::Mine(i) if !self.jobs.is_empty() => self.jobs[i as usize % self.jobs.len()].1,
            JobRef::Mine(_) | JobRef::Zero => 0,
            JobRef::Unknown(id) => id,
            JobRef::Max => u64::MAX,
        }
    }

    fn voice(&self, i: Option<u8>) -> *const VoxVoice {
        match i {
            Some(i) if !self.voices.is_empty() => self.voices[i as usize % self.voices.len()],
            _ => std::ptr::null(),
        }
    }
}

/// A status the header allows, or a finding.
fn check(call: &str, st: VoxStatus) {
    assert!((VOX_OK..=VOX_ERR_INTERNAL).contains(&st), "{call}: status {st} is not a VoxStatus");
    assert_ne!(st, VOX_ERR_INTERNAL, "{call}: internal error: {}", last_error());
}

fn cap_ptr<T: Default + Clone>(c: Cap, store: &mut Vec<T>) -> (*mut T, usize) {
    match c {
        Cap::Zero => (std::ptr::null_mut(), 0),
        Cap::Small(n) => {
            *store = vec![T::default(); n as usize % 8192 + 1];
            (store.as_mut_ptr(), store.len())
        }
        Cap::NullWith(n) => (std::ptr::null_mut(), n as usize),
    }
}

fn op(s: &mut State, o: &Op) {
    let mut strings = Strings::default();
    match o {
        Op::Tts(e, r) => {
            let mut q: VoxTtsRequest = unsafe { std::mem::zeroed() };
            check("init", unsafe { vox_tts_request_init(&mut q) });
            q.priority = r.priority;
            q.text = strings.ptr(&r.text);
            q.language = strings.ptr(&r.language);
            q.speaker = strings.ptr(&r.speaker);
            q.instruct = strings.ptr(&r.instruct);
            q.max_new_tokens = r.max_new_tokens;
            q.temperature = r.temperature;
            q.top_k = r.top_k;
            q.top_p = r.top_p;
            q.repetition_penalty = r.repetition_penalty;
            q.greedy = r.greedy as u32;
            q.use_seed = r.seed.is_some() as u32;
            q.seed = r.seed.unwrap_or(0);
            q.sample_rate = r.sample_rate.get();
            q.denoise = r.denoise.is_some() as u32;
            q.denoise_strength = r.denoise.unwrap_or(1.0);
            q.stream = r.stream as u32;
            q.text_streaming = r.text_streaming as u32;
            q.voice = s.voice(r.voice);
            let b = Sized::new(&q, r.size.size::<VoxTtsRequest>());
            let mut id = 0u64;
            let eng = s.engine(*e);
            let st = unsafe { vox_tts_submit(eng, b.as_ptr(), &mut id) };
            check("vox_tts_submit", st);
            if st == VOX_OK {
                assert_ne!(id, 0);
                s.jobs.push((eng as usize, id));
            } else {
                assert_eq!(id, 0, "out-param written on failure");
            }
        }
        Op::Asr(e, r) => {
            let (pcm, channels) = r.pcm.make();
            let mut q: VoxAsrRequest = unsafe { std::mem::zeroed() };
            check("init", unsafe { vox_asr_request_init(&mut q) });
            q.priority = r.priority;
            q.pcm = if r.null_pcm { std::ptr::null() } else { pcm.as_ptr() };
            q.channels = channels;
            q.frames = r.frames.get(pcm.len() as u64 / channels.max(1) as u64);
            q.sample_rate = r.sample_rate.get();
            q.language = strings.ptr(&r.language);
            q.context = strings.ptr(&r.context);
            q.max_new_tokens = r.max_new_tokens;
            q.denoise = r.denoise.is_some() as u32;
            q.denoise_strength = r.denoise.unwrap_or(1.0);
            let b = Sized::new(&q, r.size.size::<VoxAsrRequest>());
            let mut id = 0u64;
            let eng = s.engine(*e);
            let st = unsafe { vox_asr_submit(eng, b.as_ptr(), &mut id) };
            check("vox_asr_submit", st);
            if st == VOX_OK {
                s.jobs.push((eng as usize, id));
            }
        }
        Op::Poll(e, j, size, null) => {
            let info: VoxJobInfo = unsafe { std::mem::zeroed() };
            let b = Sized::new(&info, size.size::<VoxJobInfo>());
            let p = if *null { std::ptr::null_mut() } else { b.as_ptr() };
            check("vox_poll", unsafe { vox_poll(s.engine(*e), s.job(*j), p) });
        }
        Op::Wait(e, j, ms, size) => {
            let info: VoxJobInfo = unsafe { std::mem::zeroed() };
            let b = size.map(|z| Sized::new(&info, z.size::<VoxJobInfo>()));
            let p = b.as_ref().map_or(std::ptr::null_mut(), |b| b.as_ptr());
            let st = unsafe { vox_wait(s.engine(*e), s.job(*j), *ms as u32 % 200, p) };
            check("vox_wait", st);
        }
        Op::Read(e, j, cap, null_written) => {
            let mut store = Vec::<f32>::new();
            let (dst, n) = cap_ptr(*cap, &mut store);
            let mut written = usize::MAX;
            let w = if *null_written { std::ptr::null_mut() } else { &mut written as *mut usize };
            let st = unsafe { vox_read_audio(s.engine(*e), s.job(*j), dst, n, w) };
            check("vox_read_audio", st);
            if st == VOX_OK {
                assert!(written <= n, "{written} samples written into {n}");
                assert!(store[..written].iter().all(|v| v.is_finite()), "non-finite audio handed out");
            }
        }
        Op::Text(e, j, which, cap, null_required) => {
            let mut store = Vec::<u8>::new();
            let (dst, n) = cap_ptr(*cap, &mut store);
            let mut required = 0usize;
            let r = if *null_required { std::ptr::null_mut() } else { &mut required as *mut usize };
            let (eng, job, dst) = (s.engine(*e), s.job(*j), dst as *mut c_char);
            let st = unsafe {
                match which % 3 {
                    0 => vox_get_text(eng, job, dst, n, r),
                    1 => vox_get_language(eng, job, dst, n, r),
                    _ => vox_job_error(eng, job, dst, n, r),
                }
            };
            check("vox_get_text", st);
            if st == VOX_OK {
                let end = store.iter().position(|&c| c == 0).expect("NUL-terminated");
                std::str::from_utf8(&store[..end]).expect("UTF-8 text");
            }
        }
        Op::Timings(e, j, size) => {
            let t: VoxTimings = unsafe { std::mem::zeroed() };
            let b = Sized::new(&t, size.size::<VoxTimings>());
            check("vox_get_timings", unsafe { vox_get_timings(s.engine(*e), s.job(*j), b.as_ptr()) });
        }
        Op::Cancel(e, j) => check("vox_cancel", unsafe { vox_cancel(s.engine(*e), s.job(*j)) }),
        Op::Release(e, j) => {
            let (eng, job) = (s.engine(*e), s.job(*j));
            let st = unsafe { vox_release(eng, job) };
            check("vox_release", st);
            if st == VOX_OK {
                s.jobs.retain(|&(en, id)| !(en == eng as usize && id == job));
            }
        }
        Op::RingOpen(e, j, cap, null_out) => {
            let capacity = [0usize, 1, 2, 3, 480, 1 << 12, 1 << 24, (1 << 24) + 1, usize::MAX][*cap as usize % 9];
            let mut ring: *mut VoxAudioRing = std::ptr::null_mut();
            let out = if *null_out { std::ptr::null_mut() } else { &mut ring as *mut _ };
            let st = unsafe { vox_audio_ring_open(s.engine(*e), s.job(*j), capacity, out) };
            check("vox_audio_ring_open", st);
            if st == VOX_OK && !ring.is_null() {
                s.rings.push(ring);
            }
        }
        Op::RingRead(i, cap, null_written, null_flags) => {
            let Some(&ring) = (!s.rings.is_empty()).then(|| &s.rings[*i as usize % s.rings.len()]) else { return };
            let mut store = Vec::<f32>::new();
            let (dst, n) = cap_ptr(*cap, &mut store);
            let (mut written, mut flags) = (usize::MAX, u32::MAX);
            let w = if *null_written { std::ptr::null_mut() } else { &mut written as *mut usize };
            let f = if *null_flags { std::ptr::null_mut() } else { &mut flags as *mut u32 };
            let st = unsafe { vox_audio_ring_read(ring, dst, n, w, f) };
            check("vox_audio_ring_read", st);
            if st == VOX_OK {
                assert!(written <= n);
                assert!(*null_flags || flags & !VOX_RING_ENDED == 0, "flags {flags:#x}");
            }
        }
        Op::RingClose(i) => {
            if s.rings.is_empty() {
                check("vox_audio_ring_close", unsafe { vox_audio_ring_close(std::ptr::null_mut()) });
                return;
            }
            let i = *i as usize % s.rings.len();
            let st = unsafe { vox_audio_ring_close(s.rings[i]) };
            assert_eq!(st, VOX_OK, "closing an open ring: {}", last_error());
            // A closed ring stays safe to read (ended) and to close again (refused).
            let (mut w, mut f) = (1usize, 0u32);
            assert_eq!(unsafe { vox_audio_ring_read(s.rings[i], std::ptr::null_mut(), 0, &mut w, &mut f) }, VOX_OK);
            assert_eq!((w, f), (0, VOX_RING_ENDED));
            assert_eq!(unsafe { vox_audio_ring_close(s.rings[i]) }, VOX_ERR_INVALID_ARGUMENT);
            s.rings.swap_remove(i);
        }
        Op::Stats(e, size, null) => {
            let t: VoxEngineStats = unsafe { std::mem::zeroed() };
            let b = Sized::new(&t, size.size::<VoxEngineStats>());
            let p = if *null { std::ptr::null_mut() } else { b.as_ptr() };
            check("vox_engine_stats", unsafe { vox_engine_stats(s.engine(*e), p) });
        }
        Op::ModelInfo(e, kind, size, null) => {
            let t: VoxModelInfo = unsafe { std::mem::zeroed() };
            let b = Sized::new(&t, size.size::<VoxModelInfo>());
            let p = if *null { std::ptr::null_mut() } else { b.as_ptr() };
            let st = unsafe { vox_engine_model_info(s.engine(*e), *kind % 4, p) };
            check("vox_engine_model_info", st);
            if st == VOX_OK && size.size::<VoxModelInfo>() as usize >= size_of::<VoxModelInfo>() {
                let i = unsafe { b.as_ptr::<VoxModelInfo>().read() };
                for p in [i.speakers, i.languages] {
                    assert!(!p.is_null());
                    unsafe { std::ffi::CStr::from_ptr(p) }.to_str().expect("UTF-8");
                }
            }
        }
        Op::LastError(cap) => {
            let mut store = Vec::<u8>::new();
            let (dst, n) = cap_ptr(*cap, &mut store);
            // NULL with a capacity is not in the contract of vox_last_error ("NULL when 0").
            let n = if dst.is_null() { 0 } else { n };
            let need = unsafe { vox_last_error(dst as *mut c_char, n) };
            assert!(need >= 1);
            if n > 0 {
                assert_eq!(store[need.min(n) - 1], 0, "not NUL-terminated");
            }
        }
        Op::StatusString(st) => {
            let p = vox_status_string(*st);
            assert!(!p.is_null());
            unsafe { std::ffi::CStr::from_ptr(p) }.to_str().unwrap();
        }
        Op::Init(which, null) => {
            let st = unsafe {
                match (which % 4, *null) {
                    (_, true) => [
                        vox_engine_config_init(std::ptr::null_mut()),
                        vox_tts_request_init(std::ptr::null_mut()),
                        vox_asr_request_init(std::ptr::null_mut()),
                        vox_voice_request_init(std::ptr::null_mut()),
                    ][*which as usize % 4],
                    (0, _) => vox_engine_config_init(&mut std::mem::zeroed()),
                    (1, _) => vox_tts_request_init(&mut std::mem::zeroed()),
                    (2, _) => vox_asr_request_init(&mut std::mem::zeroed()),
                    _ => vox_voice_request_init(&mut std::mem::zeroed()),
                }
            };
            check("init", st);
            assert_eq!(st == VOX_OK, !*null);
        }
        Op::VoiceCreate(e, r, null_out) => {
            let (pcm, channels) = r.pcm.make();
            let mut q: VoxVoiceRequest = unsafe { std::mem::zeroed() };
            check("init", unsafe { vox_voice_request_init(&mut q) });
            q.channels = channels;
            q.pcm = pcm.as_ptr();
            q.frames = r.frames.get(pcm.len() as u64 / channels.max(1) as u64);
            q.sample_rate = r.sample_rate.get();
            q.denoise = r.denoise.is_some() as u32;
            q.denoise_strength = r.denoise.unwrap_or(1.0);
            q.transcript = strings.ptr(&r.transcript);
            q.timeout_ms = r.timeout_ms as u32;
            let b = Sized::new(&q, r.size.size::<VoxVoiceRequest>());
            let mut v: *mut VoxVoice = std::ptr::null_mut();
            let out = if *null_out { std::ptr::null_mut() } else { &mut v as *mut _ };
            let st = unsafe { vox_voice_create(s.engine(*e), b.as_ptr(), out) };
            check("vox_voice_create", st);
            if st == VOX_OK {
                s.voices.push(v);
            }
        }
        Op::VoiceLoad(bytes, null_out) => {
            let mut v: *mut VoxVoice = std::ptr::null_mut();
            let out = if *null_out { std::ptr::null_mut() } else { &mut v as *mut _ };
            let st = unsafe { vox_voice_load(bytes.as_ptr(), bytes.len(), out) };
            check("vox_voice_load", st);
            if st == VOX_OK {
                s.voices.push(v);
            }
        }
        Op::VoiceSave(i, cap, null_required) => {
            let Some(&v) = (!s.voices.is_empty()).then(|| &s.voices[*i as usize % s.voices.len()]) else { return };
            let mut store = Vec::<u8>::new();
            let (dst, n) = cap_ptr(*cap, &mut store);
            let mut required = 0usize;
            let r = if *null_required { std::ptr::null_mut() } else { &mut required as *mut usize };
            check("vox_voice_save", unsafe { vox_voice_save(v, dst, n, r) });
        }
        Op::VoiceRelease(i) => {
            if s.voices.is_empty() {
                check("vox_voice_release", unsafe { vox_voice_release(std::ptr::null_mut()) });
                return;
            }
            let v = s.voices.swap_remove(*i as usize % s.voices.len());
            assert_eq!(unsafe { vox_voice_release(v) }, VOX_OK);
            assert_eq!(unsafe { vox_voice_release(v) }, VOX_ERR_INVALID_ARGUMENT);
        }
        Op::Create(r) => create(r, &mut strings),
    }
}

fn create(r: &ConfigReq, strings: &mut Strings) {
    let mut c = config(None, None, strings);
    c.device = r.device % 4;
    let mut dir = |d: &Dir| match d {
        Dir::Null => std::ptr::null(),
        Dir::Tiny(p) => strings.ptr(&Str::Text(fixtures::checkpoint(*p).to_str().unwrap().to_string())),
        Dir::Missing => strings.ptr(&Str::Known(9)),
        Dir::HubId => strings.ptr(&Str::Text("voxkit-fuzz/not-a-model@main".into())),
        Dir::Other(s) => strings.ptr(s),
    };
    c.tts_model_dir = dir(&r.tts);
    c.asr_model_dir = dir(&r.asr);
    c.device_index = r.device_index;
    // Bounded so one execution stays short: real loads with a few slots and threads.
    c.max_batch = r.max_batch as u32 % 5;
    c.memory_budget = r.memory_budget;
    c.max_queued_jobs = r.max_queued_jobs;
    c.default_max_new_tokens = r.default_max_new_tokens;
    c.hard_max_new_tokens = r.hard_max_new_tokens;
    c.max_wait_ms = r.max_wait_ms;
    c.cpu_threads = r.cpu_threads as u32 % 3;
    c.log_level = r.log_level;
    if r.log {
        c.log_callback = Some(log_sink);
    }
    c.preload = r.preload;
    c.quantization = r.quantization;
    let b = Sized::new(&c, r.size.size::<VoxEngineConfig>());
    let mut e: *mut VoxEngine = std::ptr::null_mut();
    let st = unsafe { vox_engine_create(b.as_ptr(), &mut e) };
    check("vox_engine_create", st);
    if st == VOX_OK {
        assert!(!e.is_null());
        unsafe { vox_engine_destroy(e) };
        // Destroyed: every call with it is refused, a second destroy included.
        let mut info: VoxJobInfo = unsafe { std::mem::zeroed() };
        info.struct_size = size_of::<VoxJobInfo>() as u32;
        assert_eq!(unsafe { vox_poll(e, 1, &mut info) }, VOX_ERR_INVALID_ARGUMENT);
        unsafe { vox_engine_destroy(e) };
    } else {
        assert!(e.is_null(), "out-param written on failure");
    }
}

pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let mut s = State { e: engines(), jobs: Vec::new(), rings: Vec::new(), voices: Vec::new() };
    for o in input.ops.iter().take(MAX_OPS) {
        op(&mut s, o);
    }
    // Clean up in an order a host might use: rings first (valid until closed), then jobs.
    for r in s.rings.drain(..) {
        assert_eq!(unsafe { vox_audio_ring_close(r) }, VOX_OK);
    }
    for (e, id) in s.jobs.drain(..) {
        let e = e as *const VoxEngine;
        check("vox_cancel", unsafe { vox_cancel(e, id) });
        assert_eq!(unsafe { vox_release(e, id) }, VOX_OK, "{}", last_error());
        assert_eq!(unsafe { vox_release(e, id) }, VOX_ERR_UNKNOWN_JOB);
    }
    for v in s.voices.drain(..) {
        assert_eq!(unsafe { vox_voice_release(v) }, VOX_OK);
    }
}
