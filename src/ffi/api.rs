//! The exported functions. Each one: validate → convert → call the engine → convert back.

use std::ffi::{CString, c_char, c_void};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::types::*;
use super::{boundary, check_out_size, last_error, non_null, null, opt_str, read_sized, write_out_sized};
use crate::engine::Engine;
use crate::engine::EngineStats;
use crate::engine::config::{Device, EngineConfig, LogLevel, LogSink, Quantization};
use crate::engine::job::{JobInfo, JobState};
use crate::engine::timings::Timings;
use crate::error::{Error, ErrorKind, Result};
use crate::seams::ModelKind;
use crate::seams::request::{AsrRequest, Sampling, TtsRequest};

/// An engine: owns the worker thread, the models and every job. Created by `vox_engine_create`,
/// freed by `vox_engine_destroy`.
pub struct VoxEngine {
    engine: Engine,
    /// `vox_engine_model_info`'s strings (speakers, languages) per model kind, made at create.
    info: [Option<(CString, CString)>; 2],
}

/// The addresses of the live engines. A handle is looked up here before it is dereferenced, so a
/// destroyed (or never created) engine is detected without reading freed memory.
static LIVE_ENGINES: parking_lot::Mutex<Vec<usize>> = parking_lot::Mutex::new(Vec::new());

/// # Safety
/// `p` is NULL or any pointer; only one in the live registry is dereferenced, and the caller
/// promises not to destroy it while the reference is in use (the header's rule).
pub(super) unsafe fn engine_ref<'a>(p: *const VoxEngine) -> Result<&'a Engine> {
    let p = non_null(p, "engine")?;
    if !LIVE_ENGINES.lock().contains(&(p as usize)) {
        return Err(Error::invalid("engine is not a live VoxEngine (destroyed, or not from vox_engine_create)"));
    }
    // SAFETY: registered by vox_engine_create and not yet destroyed.
    Ok(unsafe { &(*p).engine })
}

/// Writes `v` into a caller's out-struct whose `struct_size` was checked.
unsafe fn write_out<T>(dst: *mut T, v: T) {
    unsafe { dst.write_unaligned(v) }
}

// ---------------------------------------------------------------------------------------------
// Versions, status strings, last error
// ---------------------------------------------------------------------------------------------

/// The library version, e.g. "0.1.0" (static string; never free it).
///
/// Thread safety: any thread, any time.
#[unsafe(no_mangle)]
pub extern "C" fn vox_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// The C ABI version this library implements (`VOX_ABI_VERSION` of its header). Bindings compare
/// it with the header they were written against when they load the library.
///
/// Thread safety: any thread, any time.
#[unsafe(no_mangle)]
pub extern "C" fn vox_abi_version() -> u32 {
    VOX_ABI_VERSION
}

/// A short English description of a status code (static string; never NULL; never free it).
///
/// Thread safety: any thread, any time.
#[unsafe(no_mangle)]
pub extern "C" fn vox_status_string(status: VoxStatus) -> *const c_char {
    let s: &'static str = match status {
        VOX_OK => "ok\0",
        VOX_ERR_NULL_POINTER => "a required pointer is NULL\0",
        VOX_ERR_INVALID_ARGUMENT => "invalid argument\0",
        VOX_ERR_INVALID_UTF8 => "string is not valid UTF-8\0",
        VOX_ERR_STRUCT_SIZE => "struct_size is wrong\0",
        VOX_ERR_UNKNOWN_JOB => "unknown job id\0",
        VOX_ERR_QUEUE_FULL => "job queue is full\0",
        VOX_ERR_MODEL_NOT_LOADED => "no model of this kind is configured\0",
        VOX_ERR_MODEL_LOAD => "model checkpoint could not be loaded\0",
        VOX_ERR_NO_DEVICE => "no usable compute device\0",
        VOX_ERR_OUT_OF_MEMORY => "out of memory\0",
        VOX_ERR_BUFFER_TOO_SMALL => "buffer too small\0",
        VOX_ERR_TIMEOUT => "timed out\0",
        VOX_ERR_NOT_READY => "result not ready\0",
        VOX_ERR_IO => "I/O error\0",
        VOX_ERR_UNSUPPORTED => "not supported\0",
        VOX_ERR_SHUTTING_DOWN => "engine is shutting down\0",
        VOX_ERR_INFERENCE => "inference failed\0",
        VOX_ERR_INTERNAL => "internal error\0",
        _ => "unknown status code\0",
    };
    s.as_ptr() as *const c_char
}

/// Copies the calling thread's last failure message (UTF-8, NUL-terminated, truncated to fit) into
/// `buf` and returns the size it needs including the NUL (1 when no call has failed on this thread).
/// `buf` may be NULL when `capacity` is 0. Every failing `vox_*` call replaces the message;
/// successful calls leave it.
///
/// Thread safety: any thread; reads only that thread's message.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_last_error(buf: *mut c_char, capacity: usize) -> usize {
    std::panic::catch_unwind(|| {
        let msg = last_error();
        if !buf.is_null() && capacity > 0 {
            let n = msg.len().min(capacity - 1);
            unsafe {
                std::ptr::copy_nonoverlapping(msg.as_ptr(), buf as *mut u8, n);
                *buf.add(n) = 0;
            }
        }
        msg.len() + 1
    })
    .unwrap_or(1)
}

// ---------------------------------------------------------------------------------------------
// Engine
// ---------------------------------------------------------------------------------------------

/// The defaults `vox_engine_config_init` writes (also the values of fields an older, smaller struct lacks).
fn default_config() -> VoxEngineConfig {
    let d = EngineConfig::default();
    VoxEngineConfig {
        struct_size: std::mem::size_of::<VoxEngineConfig>() as u32,
        device: VOX_DEVICE_AUTO,
        tts_model_dir: std::ptr::null(),
        asr_model_dir: std::ptr::null(),
        device_index: 0,
        max_batch: d.max_batch as u32,
        memory_budget: d.memory_budget,
        max_queued_jobs: d.max_queued_jobs as u32,
        default_max_new_tokens: d.default_max_new_tokens,
        hard_max_new_tokens: d.hard_max_new_tokens,
        max_wait_ms: d.max_wait.as_millis() as u32,
        cpu_threads: d.cpu_threads as u32,
        log_level: d.log_level as i32,
        log_callback: None,
        log_user_data: std::ptr::null_mut(),
        preload: 0,
        reserved: 0,
        quantization: VOX_QUANT_NONE,
    }
}

/// Fills `config` with the defaults (and its `struct_size`).
///
/// Thread safety: any thread.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_engine_config_init(config: *mut VoxEngineConfig) -> VoxStatus {
    boundary("vox_engine_config_init", || {
        let p = non_null(config, "config")? as *mut VoxEngineConfig;
        let c = default_config();
        unsafe { write_out(p, c) };
        Ok(())
    })
}

/// The host's `user_data`, passed back to its callback from the worker thread.
struct UserData(*mut c_void);
// SAFETY: the pointer is only handed back to the host's callback, which the header documents as
// being called from other threads.
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

impl UserData {
    // A method, so that closures capture the whole (Send + Sync) wrapper, not the raw field.
    fn get(&self) -> *mut c_void {
        self.0
    }
}

fn engine_config(c: &VoxEngineConfig) -> Result<EngineConfig> {
    let device = match c.device {
        VOX_DEVICE_AUTO => Device::Auto,
        VOX_DEVICE_CPU => Device::Cpu,
        VOX_DEVICE_CUDA => {
            let index = u32::try_from(c.device_index)
                .map_err(|_| Error::invalid(format!("device_index must be >= 0, got {}", c.device_index)))?;
            Device::Cuda(index)
        }
        other => return Err(Error::invalid(format!("device must be a VOX_DEVICE_* value, got {other}"))),
    };
    let log_level = LogLevel::from_i32(c.log_level)
        .ok_or_else(|| Error::invalid(format!("log_level must be a VOX_LOG_* value, got {}", c.log_level)))?;
    let dir = |p: *const c_char, what: &str| -> Result<Option<PathBuf>> {
        Ok(unsafe { opt_str(p, what) }?.map(PathBuf::from))
    };
    let log_sink: Option<LogSink> = c.log_callback.map(|cb| {
        let user = UserData(c.log_user_data);
        let sink: LogSink = Arc::new(move |level: LogLevel, msg: &str| {
            let line: Vec<u8> = msg.bytes().filter(|&b| b != 0).chain(std::iter::once(0)).collect();
            // SAFETY: a host-provided callback, called as the header documents.
            unsafe { cb(level as i32, line.as_ptr() as *const c_char, user.get()) };
        });
        sink
    });
    if c.preload & !(VOX_MODEL_TTS | VOX_MODEL_ASR) != 0 {
        return Err(Error::invalid(format!("preload must be VOX_MODEL_* bits, got {:#x}", c.preload)));
    }
    let quantization = match c.quantization {
        VOX_QUANT_NONE => Quantization::None,
        VOX_QUANT_INT8 => Quantization::Int8,
        VOX_QUANT_MIXED => Quantization::Mixed,
        other => return Err(Error::invalid(format!("quantization must be a VOX_QUANT_* value, got {other}"))),
    };
    Ok(EngineConfig {
        quantization,
        tts_model_dir: dir(c.tts_model_dir, "tts_model_dir")?,
        asr_model_dir: dir(c.asr_model_dir, "asr_model_dir")?,
        device,
        memory_budget: c.memory_budget,
        max_batch: c.max_batch as usize,
        max_queued_jobs: c.max_queued_jobs as usize,
        default_max_new_tokens: c.default_max_new_tokens,
        hard_max_new_tokens: c.hard_max_new_tokens,
        max_wait: Duration::from_millis(c.max_wait_ms as u64),
        cpu_threads: c.cpu_threads as usize,
        log_level,
        log_sink,
        preload_tts: c.preload & VOX_MODEL_TTS != 0,
        preload_asr: c.preload & VOX_MODEL_ASR != 0,
    })
}

/// Creates an engine and starts its worker thread. Model folders are checked now (a missing or
/// corrupt checkpoint fails here, naming what is wrong); models load on their first job, or here
/// for those named in `preload` (asking for both when they do not fit in the memory budget
/// together fails with `VOX_ERR_OUT_OF_MEMORY`). A config with
/// both model folders NULL gives a working engine whose jobs fail with `VOX_ERR_MODEL_NOT_LOADED`.
/// `VOX_DEVICE_CUDA` without a usable GPU fails with `VOX_ERR_NO_DEVICE`; `VOX_DEVICE_AUTO` falls
/// back to the CPU. On success `*out_engine` receives the engine. A loaded model's weights are
/// memory-mapped from its checkpoint files: do not modify, truncate or replace those files in
/// place while an engine may use them (truncating a mapped file faults the process).
///
/// Thread safety: any thread; engines are independent of each other.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_engine_create(
    config: *const VoxEngineConfig,
    out_engine: *mut *mut VoxEngine,
) -> VoxStatus {
    boundary("vox_engine_create", || {
        let c = unsafe { read_sized(non_null(config, "config")?, "VoxEngineConfig", default_config)? };
        let out = non_null(out_engine, "out_engine")? as *mut *mut VoxEngine;
        let engine = Engine::new(engine_config(&c)?)?;
        let strings = |kind| {
            engine.model_info(kind).ok().map(|i| {
                // The names come from JSON keys; an interior NUL cannot be passed on.
                let join = |v: &[String]| CString::new(v.join(",")).unwrap_or_default();
                (join(&i.speakers), join(&i.languages))
            })
        };
        let info = [strings(ModelKind::Tts), strings(ModelKind::Asr)];
        let boxed = Box::into_raw(Box::new(VoxEngine { engine, info }));
        LIVE_ENGINES.lock().push(boxed as usize);
        unsafe { out.write_unaligned(boxed) };
        Ok(())
    })
}

/// Destroys an engine: cancels its queued and running jobs, joins its worker thread and frees
/// every job, result and model. NULL is a no-op. The engine pointer is invalid afterwards: a call
/// that passes it anyway (a second destroy included) is detected without touching freed memory
/// and fails with `VOX_ERR_INVALID_ARGUMENT` — unless a later `vox_engine_create` returned the
/// same address, which then names the new engine.
///
/// Thread safety: call it once, when no other thread is inside a `vox_*` call on this engine.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_engine_destroy(engine: *mut VoxEngine) {
    let _ = boundary("vox_engine_destroy", || {
        if engine.is_null() {
            return Ok(());
        }
        // Unregister first: a second destroy, or any call after this one, is then caught by the
        // registry rather than reaching freed memory.
        {
            let mut live = LIVE_ENGINES.lock();
            let Some(i) = live.iter().position(|&a| a == engine as usize) else {
                return Err(Error::invalid(
                    "engine is not a live VoxEngine (destroyed, or not from vox_engine_create)",
                ));
            };
            live.swap_remove(i);
        }
        // SAFETY: it was live, so it came from Box::into_raw in vox_engine_create.
        drop(unsafe { Box::from_raw(engine) });
        Ok(())
    });
}

/// Fills `*info` with what the engine's model of `kind` (`VOX_KIND_TTS` or `VOX_KIND_ASR`)
/// offers: its rate, and for TTS the speakers and languages a request may name. Known from
/// create on (no model load). A kind with no model configured fails with
/// `VOX_ERR_MODEL_NOT_LOADED`.
///
/// Thread safety: any thread, concurrently with every call but `vox_engine_destroy`.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_engine_model_info(
    engine: *const VoxEngine,
    kind: i32,
    info: *mut VoxModelInfo,
) -> VoxStatus {
    boundary("vox_engine_model_info", || {
        let e = unsafe { engine_ref(engine)? };
        let p = non_null(info, "info")? as *mut VoxModelInfo;
        let size = unsafe { check_out_size(p, "VoxModelInfo")? };
        let (k, slot) = match kind {
            VOX_KIND_TTS => (ModelKind::Tts, 0),
            VOX_KIND_ASR => (ModelKind::Asr, 1),
            other => return Err(Error::invalid(format!("kind {other} is not VOX_KIND_TTS or VOX_KIND_ASR"))),
        };
        let i = e.model_info(k)?;
        // SAFETY: the engine is live (checked above); its strings live as long as it does.
        let strings = unsafe { &(*engine).info[slot] };
        let (speakers, languages) = strings.as_ref().ok_or_else(|| Error::internal("model info strings missing"))?;
        let out = VoxModelInfo {
            struct_size: std::mem::size_of::<VoxModelInfo>() as u32,
            sample_rate: i.sample_rate,
            speakers: speakers.as_ptr(),
            languages: languages.as_ptr(),
            clones_voices: i.clones_voices as u32,
        };
        unsafe { write_out_sized(p, out, size) };
        Ok(())
    })
}

/// A name as a fixed NUL-terminated field, cut at a UTF-8 character boundary.
fn c_name<const N: usize>(name: &str) -> [std::ffi::c_char; N] {
    let mut out = [0; N];
    let mut end = name.len().min(N - 1);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    for (o, b) in out.iter_mut().zip(&name.as_bytes()[..end]) {
        *o = *b as std::ffi::c_char;
    }
    out
}

/// Fills `*stats` (set `stats->struct_size = sizeof(VoxEngineStats)` first).
///
/// Thread safety: any thread, concurrently with every call but `vox_engine_destroy`; never waits
/// for inference.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_engine_stats(engine: *const VoxEngine, stats: *mut VoxEngineStats) -> VoxStatus {
    boundary("vox_engine_stats", || {
        let e = unsafe { engine_ref(engine)? };
        let p = non_null(stats, "stats")? as *mut VoxEngineStats;
        let size = unsafe { check_out_size(p, "VoxEngineStats")? };
        let s: EngineStats = e.stats();
        let d = e.device();
        let out = VoxEngineStats {
            struct_size: std::mem::size_of::<VoxEngineStats>() as u32,
            resident: (if s.resident.tts { VOX_MODEL_TTS } else { 0 })
                | (if s.resident.asr { VOX_MODEL_ASR } else { 0 }),
            jobs_done: s.jobs_done,
            jobs_failed: s.jobs_failed,
            jobs_cancelled: s.jobs_cancelled,
            batches: s.batches,
            model_loads: s.model_loads,
            model_load_ms: s.model_load_ms,
            model_swaps: s.model_swaps,
            model_swap_ms: s.model_swap_ms,
            queue_depth: s.queue_depth,
            jobs_held: s.jobs_held,
            memory_in_use: s.memory_in_use,
            memory_budget: s.memory_budget,
            audio_bytes: s.audio_bytes,
            device: match d.device {
                crate::backend::Device::Cuda(_) => VOX_DEVICE_CUDA,
                _ => VOX_DEVICE_CPU,
            },
            device_index: match d.device {
                crate::backend::Device::Cuda(n) => n,
                _ => 0,
            },
            device_memory: d.memory_bytes,
            driver_version: d.driver_version,
            device_name: c_name(&d.name),
        };
        unsafe { write_out_sized(p, out, size) };
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Submitting
// ---------------------------------------------------------------------------------------------

/// The defaults `vox_tts_request_init` writes (also the values of fields an older, smaller struct lacks).
fn default_tts_request() -> VoxTtsRequest {
    VoxTtsRequest {
        struct_size: std::mem::size_of::<VoxTtsRequest>() as u32,
        priority: 0,
        text: std::ptr::null(),
        language: std::ptr::null(),
        speaker: std::ptr::null(),
        instruct: std::ptr::null(),
        max_new_tokens: 0,
        temperature: 0.0,
        top_k: 0,
        top_p: 0.0,
        repetition_penalty: 0.0,
        greedy: 0,
        seed: 0,
        use_seed: 0,
        sample_rate: 0,
        denoise: 0,
        denoise_strength: 1.0,
        stream: 0,
        text_streaming: 0,
        voice: std::ptr::null(),
    }
}

/// Fills `request` with the defaults (and its `struct_size`); set `text` afterwards.
///
/// Thread safety: any thread.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_tts_request_init(request: *mut VoxTtsRequest) -> VoxStatus {
    boundary("vox_tts_request_init", || {
        let p = non_null(request, "request")? as *mut VoxTtsRequest;
        let r = default_tts_request();
        unsafe { write_out(p, r) };
        Ok(())
    })
}

/// The defaults `vox_asr_request_init` writes (also the values of fields an older, smaller struct lacks).
fn default_asr_request() -> VoxAsrRequest {
    VoxAsrRequest {
        struct_size: std::mem::size_of::<VoxAsrRequest>() as u32,
        priority: 0,
        pcm: std::ptr::null(),
        frames: 0,
        sample_rate: 0,
        channels: 1,
        language: std::ptr::null(),
        context: std::ptr::null(),
        max_new_tokens: 0,
        denoise: 0,
        denoise_strength: 1.0,
    }
}

/// Fills `request` with the defaults (and its `struct_size`); set the audio afterwards.
///
/// Thread safety: any thread.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_asr_request_init(request: *mut VoxAsrRequest) -> VoxStatus {
    boundary("vox_asr_request_init", || {
        let p = non_null(request, "request")? as *mut VoxAsrRequest;
        let r = default_asr_request();
        unsafe { write_out(p, r) };
        Ok(())
    })
}

fn positive_or_default(v: f32, what: &str) -> Result<Option<f32>> {
    if v == 0.0 {
        Ok(None)
    } else if v.is_nan() {
        Err(Error::invalid(format!("{what} is NaN")))
    } else {
        Ok(Some(v))
    }
}

fn tts_request(r: &VoxTtsRequest) -> Result<TtsRequest> {
    let text = unsafe { opt_str(non_null(r.text, "request.text")?, "request.text")? }.unwrap_or_default();
    let top_k = match r.top_k {
        0 => None,
        -1 => Some(0),
        k if k > 0 => Some(k as u32),
        k => return Err(Error::invalid(format!("top_k must be >= -1, got {k}"))),
    };
    Ok(TtsRequest {
        text,
        language: unsafe { opt_str(r.language, "request.language")? },
        speaker: unsafe { opt_str(r.speaker, "request.speaker")? },
        instruct: unsafe { opt_str(r.instruct, "request.instruct")? },
        voice: unsafe { super::voice::voice_of(r.voice)? },
        max_new_tokens: r.max_new_tokens,
        sampling: Sampling {
            temperature: positive_or_default(r.temperature, "temperature")?,
            top_k,
            top_p: positive_or_default(r.top_p, "top_p")?,
            repetition_penalty: positive_or_default(r.repetition_penalty, "repetition_penalty")?,
            greedy: r.greedy != 0,
            seed: (r.use_seed != 0).then_some(r.seed),
        },
        sample_rate: r.sample_rate,
        denoise: (r.denoise != 0).then_some(r.denoise_strength),
        stream: r.stream != 0,
        text_streaming: r.text_streaming != 0,
        priority: r.priority,
    })
}

/// Submits a text-to-speech job and returns at once; `*out_job` receives its id. The request and
/// its strings are copied. Bad requests fail here: `VOX_ERR_INVALID_ARGUMENT` (empty text, values
/// out of range), `VOX_ERR_INVALID_UTF8`, `VOX_ERR_STRUCT_SIZE`, `VOX_ERR_MODEL_NOT_LOADED` (no TTS
/// model configured), `VOX_ERR_UNSUPPORTED` (an output rate or denoising this build cannot do),
/// `VOX_ERR_QUEUE_FULL`.
///
/// Thread safety: any thread, concurrently with every call but `vox_engine_destroy`; never waits
/// for inference.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_tts_submit(
    engine: *const VoxEngine,
    request: *const VoxTtsRequest,
    out_job: *mut VoxJobId,
) -> VoxStatus {
    boundary("vox_tts_submit", || {
        let e = unsafe { engine_ref(engine)? };
        let r = unsafe { read_sized(non_null(request, "request")?, "VoxTtsRequest", default_tts_request)? };
        let out = non_null(out_job, "out_job")? as *mut VoxJobId;
        let id = e.submit_tts(tts_request(&r)?)?;
        unsafe { out.write_unaligned(id) };
        Ok(())
    })
}

fn asr_request(r: &VoxAsrRequest) -> Result<AsrRequest> {
    if r.frames == 0 {
        return Err(Error::invalid("request.frames is 0 (no audio)"));
    }
    if r.channels == 0 {
        return Err(Error::invalid("request.channels is 0"));
    }
    let pcm = non_null(r.pcm, "request.pcm")?;
    let samples = usize::try_from(r.frames)
        .ok()
        .and_then(|f| f.checked_mul(r.channels as usize))
        .filter(|&n| n <= (isize::MAX as usize) / std::mem::size_of::<f32>())
        .ok_or_else(|| {
            Error::invalid(format!("request.frames ({}) × channels ({}) is too large", r.frames, r.channels))
        })?;
    // SAFETY: the caller promises `pcm` holds frames × channels floats.
    let src = unsafe { std::slice::from_raw_parts(pcm, samples) };
    let mut audio = Vec::new();
    audio.try_reserve_exact(samples).map_err(|_| {
        Error::new(ErrorKind::OutOfMemory, format!("cannot copy {samples} samples of audio ({} bytes)", samples * 4))
    })?;
    audio.extend_from_slice(src);
    Ok(AsrRequest {
        audio,
        sample_rate: r.sample_rate,
        channels: r.channels,
        language: unsafe { opt_str(r.language, "request.language")? },
        context: unsafe { opt_str(r.context, "request.context")? },
        max_new_tokens: r.max_new_tokens,
        denoise: (r.denoise != 0).then_some(r.denoise_strength),
        priority: r.priority,
    })
}

/// Submits a speech-recognition job and returns at once; `*out_job` receives its id. The audio is
/// copied: the caller may free its buffer as soon as this returns. Empty audio, NaN or infinite
/// samples, a zero rate or channel count fail with `VOX_ERR_INVALID_ARGUMENT`; no ASR model
/// configured with `VOX_ERR_MODEL_NOT_LOADED`.
///
/// Thread safety: any thread, concurrently with every call but `vox_engine_destroy`; never waits
/// for inference.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_asr_submit(
    engine: *const VoxEngine,
    request: *const VoxAsrRequest,
    out_job: *mut VoxJobId,
) -> VoxStatus {
    boundary("vox_asr_submit", || {
        let e = unsafe { engine_ref(engine)? };
        let r = unsafe { read_sized(non_null(request, "request")?, "VoxAsrRequest", default_asr_request)? };
        let out = non_null(out_job, "out_job")? as *mut VoxJobId;
        let id = e.submit_asr(asr_request(&r)?)?;
        unsafe { out.write_unaligned(id) };
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------------

fn job_info(i: &JobInfo) -> VoxJobInfo {
    VoxJobInfo {
        struct_size: std::mem::size_of::<VoxJobInfo>() as u32,
        state: match i.state {
            JobState::Queued => VOX_JOB_QUEUED,
            JobState::Running => VOX_JOB_RUNNING,
            JobState::Done => VOX_JOB_DONE,
            JobState::Failed => VOX_JOB_FAILED,
            JobState::Cancelled => VOX_JOB_CANCELLED,
        },
        kind: match i.kind {
            ModelKind::Tts => VOX_KIND_TTS,
            ModelKind::Asr => VOX_KIND_ASR,
        },
        error: i.error.as_ref().map_or(VOX_OK, |e| super::status_of(e.kind)),
        flags: i.flags,
        sample_rate: i.sample_rate,
        samples_ready: i.samples_ready,
        samples_total: i.samples_total,
        progress: i.progress,
        tokens: i.tokens,
        max_new_tokens: i.max_new_tokens,
    }
}

/// Fills `*info` with the job's state (set `info->struct_size = sizeof(VoxJobInfo)` first). For a
/// failed job, `info->error` holds the code; `vox_job_error` gives its message.
///
/// Thread safety: any thread, concurrently with every call but `vox_engine_destroy`. It never
/// waits for inference or a model lock (only for short internal locks), so a game's main thread
/// may call it every frame.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_poll(engine: *const VoxEngine, job: VoxJobId, info: *mut VoxJobInfo) -> VoxStatus {
    boundary("vox_poll", || {
        let e = unsafe { engine_ref(engine)? };
        let p = non_null(info, "info")? as *mut VoxJobInfo;
        let size = unsafe { check_out_size(p, "VoxJobInfo")? };
        let i = e.poll(job)?;
        unsafe { write_out_sized(p, job_info(&i), size) };
        Ok(())
    })
}

/// Blocks until the job has ended (done, failed or cancelled) or `timeout_ms` passes
/// (`VOX_WAIT_INFINITE`: no limit). Returns `VOX_OK` and fills `*info` (optional, may be NULL;
/// set its `struct_size` first) when the job has ended, `VOX_ERR_TIMEOUT` otherwise.
///
/// Thread safety: any thread that may block, concurrently with every call but
/// `vox_engine_destroy` (never destroy an engine while a thread waits on it).
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_wait(
    engine: *const VoxEngine,
    job: VoxJobId,
    timeout_ms: u32,
    info: *mut VoxJobInfo,
) -> VoxStatus {
    boundary("vox_wait", || {
        let e = unsafe { engine_ref(engine)? };
        let size = if info.is_null() { 0 } else { unsafe { check_out_size(info, "VoxJobInfo")? } };
        let timeout = (timeout_ms != VOX_WAIT_INFINITE).then(|| Duration::from_millis(timeout_ms as u64));
        let i = e.wait(job, timeout)?;
        if !info.is_null() {
            unsafe { write_out_sized(info, job_info(&i), size) };
        }
        Ok(())
    })
}

/// Copies up to `capacity` samples of the job's audio that were not read before into `dst` (mono
/// float at `VoxJobInfo.sample_rate`) and sets `*written` to their number (0 when nothing new).
/// The same call reads a streaming job while it runs and any job after it ended. `dst` may be
/// NULL when `capacity` is 0. While an audio ring is open on the job (`vox_audio_ring_open`) it
/// fails with `VOX_ERR_INVALID_ARGUMENT`: the ring has the audio.
///
/// Thread safety: any thread, concurrently with every call but `vox_engine_destroy`; one reader
/// per job (two threads reading the same job split its samples between them). Never waits for
/// inference, but takes a lock the worker also takes: a real-time audio thread reads through
/// `vox_audio_ring_read` instead.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_read_audio(
    engine: *const VoxEngine,
    job: VoxJobId,
    dst: *mut f32,
    capacity: usize,
    written: *mut usize,
) -> VoxStatus {
    boundary("vox_read_audio", || {
        let e = unsafe { engine_ref(engine)? };
        let out = non_null(written, "written")? as *mut usize;
        if capacity > 0 && dst.is_null() {
            return Err(null("dst (with capacity > 0)"));
        }
        let buf: &mut [f32] =
            if capacity == 0 { &mut [] } else { unsafe { std::slice::from_raw_parts_mut(dst, capacity) } };
        let n = e.read_audio(job, buf)?;
        unsafe { out.write_unaligned(n) };
        Ok(())
    })
}

/// Checks a caller's text buffer before anything else is looked at.
fn check_text_buffer(dst: *mut c_char, capacity: usize) -> Result<()> {
    if capacity > 0 && dst.is_null() { Err(null("dst (with capacity > 0)")) } else { Ok(()) }
}

/// Copies `s` NUL-terminated into `dst` (checked by `check_text_buffer`); `*required` (if not
/// NULL) gets its size with the NUL.
fn copy_text(s: &str, dst: *mut c_char, capacity: usize, required: *mut usize) -> Result<()> {
    let need = s.len() + 1;
    if !required.is_null() {
        unsafe { required.write_unaligned(need) };
    }
    if capacity < need {
        return Err(Error::new(
            ErrorKind::BufferTooSmall,
            format!("the text needs {need} bytes with its NUL; the buffer holds {capacity}"),
        ));
    }
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), dst as *mut u8, s.len());
        *dst.add(s.len()) = 0;
    }
    Ok(())
}

/// Copies an ASR job's transcript (UTF-8, NUL-terminated) into `dst`. `*required` (may be NULL)
/// receives the size needed including the NUL — also when the call fails with
/// `VOX_ERR_BUFFER_TOO_SMALL`, so a first call with `dst = NULL, capacity = 0` asks for the size.
/// The text is empty until the job is done (and for TTS jobs).
///
/// Thread safety: any thread, concurrently with every call but `vox_engine_destroy`.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_get_text(
    engine: *const VoxEngine,
    job: VoxJobId,
    dst: *mut c_char,
    capacity: usize,
    required: *mut usize,
) -> VoxStatus {
    boundary("vox_get_text", || {
        let e = unsafe { engine_ref(engine)? };
        check_text_buffer(dst, capacity)?;
        copy_text(&e.text(job)?, dst, capacity, required)
    })
}

/// Copies an ASR job's language (detected, or the forced one; e.g. "English"; empty when none was
/// detected) into `dst`, with the same conventions as `vox_get_text`.
///
/// Thread safety: any thread, concurrently with every call but `vox_engine_destroy`.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_get_language(
    engine: *const VoxEngine,
    job: VoxJobId,
    dst: *mut c_char,
    capacity: usize,
    required: *mut usize,
) -> VoxStatus {
    boundary("vox_get_language", || {
        let e = unsafe { engine_ref(engine)? };
        check_text_buffer(dst, capacity)?;
        copy_text(&e.language(job)?, dst, capacity, required)
    })
}

/// Copies the message of a failed job's error (empty when it did not fail), with the same
/// conventions as `vox_get_text`.
///
/// Thread safety: any thread, concurrently with every call but `vox_engine_destroy`.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_job_error(
    engine: *const VoxEngine,
    job: VoxJobId,
    dst: *mut c_char,
    capacity: usize,
    required: *mut usize,
) -> VoxStatus {
    boundary("vox_job_error", || {
        let e = unsafe { engine_ref(engine)? };
        check_text_buffer(dst, capacity)?;
        let msg = e.poll(job)?.error.map(|e| e.message).unwrap_or_default();
        copy_text(&msg, dst, capacity, required)
    })
}

/// Fills `*timings` with the job's per-stage durations so far (set `timings->struct_size` first).
///
/// Thread safety: any thread, concurrently with every call but `vox_engine_destroy`; never waits
/// for inference.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_get_timings(
    engine: *const VoxEngine,
    job: VoxJobId,
    timings: *mut VoxTimings,
) -> VoxStatus {
    boundary("vox_get_timings", || {
        let e = unsafe { engine_ref(engine)? };
        let p = non_null(timings, "timings")? as *mut VoxTimings;
        let size = unsafe { check_out_size(p, "VoxTimings")? };
        let t: Timings = e.timings(job)?;
        let out = VoxTimings {
            struct_size: std::mem::size_of::<VoxTimings>() as u32,
            batch_size: t.batch_size,
            queue_ms: t.queue_ms,
            model_load_ms: t.model_load_ms,
            tts_ms: t.tts_ms,
            codec_ms: t.codec_ms,
            denoise_ms: t.denoise_ms,
            upsample_ms: t.upsample_ms,
            asr_frontend_ms: t.asr_frontend_ms,
            asr_encode_ms: t.asr_encode_ms,
            asr_decode_ms: t.asr_decode_ms,
            total_ms: t.total_ms,
            tokens: t.tokens,
        };
        unsafe { write_out_sized(p, out, size) };
        Ok(())
    })
}

/// Cancels a job: a queued job ends at once, a running one before its next decode step. Its
/// results so far stay readable until `vox_release`. Cancelling a job that already ended does
/// nothing and returns `VOX_OK`.
///
/// Thread safety: any thread, concurrently with every call but `vox_engine_destroy`; never waits
/// for inference.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_cancel(engine: *const VoxEngine, job: VoxJobId) -> VoxStatus {
    boundary("vox_cancel", || unsafe { engine_ref(engine)? }.cancel(job))
}

/// Frees a job and all its results (cancelling it first if it is still queued or running). Its id
/// is unknown afterwards (`VOX_ERR_UNKNOWN_JOB`). Every job should be released once.
///
/// Thread safety: any thread, concurrently with every call but `vox_engine_destroy`; never waits
/// for inference.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_release(engine: *const VoxEngine, job: VoxJobId) -> VoxStatus {
    boundary("vox_release", || unsafe { engine_ref(engine)? }.release(job))
}
