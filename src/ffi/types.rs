//! The C ABI's types and constants. Structs are `#[repr(C)]`, start with `struct_size`, and only
//! ever grow by appended fields; enums cross the boundary as fixed-width integers.

use std::ffi::{c_char, c_void};

/// A status code: `VOX_OK` (0) or one of the `VOX_ERR_*` codes.
pub type VoxStatus = i32;
/// A job id: unique in the process (an id kept from a destroyed engine never names a job of a
/// later one), never reused, never 0.
pub type VoxJobId = u64;

/// Version of this C ABI; bindings should check `vox_abi_version()` against it when they load.
pub const VOX_ABI_VERSION: u32 = 6;

/// Success.
pub const VOX_OK: VoxStatus = 0;
/// A required pointer was NULL.
pub const VOX_ERR_NULL_POINTER: VoxStatus = 1;
/// An argument or field is out of range (the message names it).
pub const VOX_ERR_INVALID_ARGUMENT: VoxStatus = 2;
/// A string is not valid UTF-8.
pub const VOX_ERR_INVALID_UTF8: VoxStatus = 3;
/// A struct's `struct_size` is smaller than any version of the struct this library knows.
pub const VOX_ERR_STRUCT_SIZE: VoxStatus = 4;
/// No job with this id in this engine (never submitted, or already released).
pub const VOX_ERR_UNKNOWN_JOB: VoxStatus = 5;
/// The queue already holds `max_queued_jobs` jobs.
pub const VOX_ERR_QUEUE_FULL: VoxStatus = 6;
/// The engine has no model of the kind this job needs (its model folder was not configured).
pub const VOX_ERR_MODEL_NOT_LOADED: VoxStatus = 7;
/// A checkpoint is missing, incomplete or corrupt (the message names what is wrong).
pub const VOX_ERR_MODEL_LOAD: VoxStatus = 8;
/// CUDA was requested but no usable device, driver or backend is present.
pub const VOX_ERR_NO_DEVICE: VoxStatus = 9;
/// A model does not fit in the memory budget, or an allocation failed.
pub const VOX_ERR_OUT_OF_MEMORY: VoxStatus = 10;
/// The caller's buffer is too small (the required size is reported).
pub const VOX_ERR_BUFFER_TOO_SMALL: VoxStatus = 11;
/// `vox_wait` timed out before the job ended.
pub const VOX_ERR_TIMEOUT: VoxStatus = 12;
/// The result asked for is not available yet.
pub const VOX_ERR_NOT_READY: VoxStatus = 13;
/// A file could not be read.
pub const VOX_ERR_IO: VoxStatus = 14;
/// The request asks for something this build or model cannot do.
pub const VOX_ERR_UNSUPPORTED: VoxStatus = 15;
/// The engine is being destroyed.
pub const VOX_ERR_SHUTTING_DOWN: VoxStatus = 16;
/// Inference failed for this job.
pub const VOX_ERR_INFERENCE: VoxStatus = 17;
/// A bug inside voxkit (a caught panic); the message says where.
pub const VOX_ERR_INTERNAL: VoxStatus = 18;

/// `VoxEngineConfig.device`: CUDA when usable, else the CPU.
pub const VOX_DEVICE_AUTO: i32 = 0;
/// `VoxEngineConfig.device`: the CPU.
pub const VOX_DEVICE_CPU: i32 = 1;
/// `VoxEngineConfig.device`: the CUDA device `device_index`; `VOX_ERR_NO_DEVICE` without one.
pub const VOX_DEVICE_CUDA: i32 = 2;

/// `VoxEngineConfig.quantization`: weights as stored (the default).
pub const VOX_QUANT_NONE: u32 = 0;
/// int8 weights (groups of 32, f16 scales) for every decoder projection and head.
pub const VOX_QUANT_INT8: u32 = 1;
/// int4 decoder bodies; int8 heads and the code predictor's first and last layers.
pub const VOX_QUANT_MIXED: u32 = 2;

/// Log levels (`VoxEngineConfig.log_level` and the callback's `level`).
pub const VOX_LOG_OFF: i32 = 0;
pub const VOX_LOG_ERROR: i32 = 1;
pub const VOX_LOG_WARN: i32 = 2;
pub const VOX_LOG_INFO: i32 = 3;
pub const VOX_LOG_DEBUG: i32 = 4;
pub const VOX_LOG_TRACE: i32 = 5;

/// `VoxJobInfo.state`: waiting in the queue.
pub const VOX_JOB_QUEUED: i32 = 0;
/// `VoxJobInfo.state`: admitted into a batch.
pub const VOX_JOB_RUNNING: i32 = 1;
/// `VoxJobInfo.state`: finished; all results are readable.
pub const VOX_JOB_DONE: i32 = 2;
/// `VoxJobInfo.state`: failed; `VoxJobInfo.error` holds the status code.
pub const VOX_JOB_FAILED: i32 = 3;
/// `VoxJobInfo.state`: cancelled; audio produced before the cancel stays readable.
pub const VOX_JOB_CANCELLED: i32 = 4;

/// `VoxJobInfo.kind`.
pub const VOX_KIND_TTS: i32 = 1;
pub const VOX_KIND_ASR: i32 = 2;

/// `VoxJobInfo.flags`: the generation was cut short: it reached its `max_new_tokens` cap, or (ASR)
/// the repetition guard stopped a runaway loop (the transcript is then the official clean-up of it).
pub const VOX_FLAG_TRUNCATED: u32 = 1;
/// `VoxJobInfo.flags`: the job streams (audio readable while it is produced).
pub const VOX_FLAG_STREAMING: u32 = 2;

/// `VoxEngineStats.resident` bits.
pub const VOX_MODEL_TTS: u32 = 1;
pub const VOX_MODEL_ASR: u32 = 2;

/// `vox_wait`'s timeout meaning "no limit".
pub const VOX_WAIT_INFINITE: u32 = 0xFFFF_FFFF;

/// `vox_audio_ring_read`'s `*flags`: nothing more will come — the job ended and all its audio
/// was read through the ring (or the job is gone and the ring is drained). (ABI 6.)
pub const VOX_RING_ENDED: u32 = 1;

/// Receives log lines: `level` is a `VOX_LOG_*` value, `message` a NUL-terminated UTF-8 line valid
/// only during the call. Runs on the engine's worker thread or on the thread of the `vox_*` call
/// that logged; it must return quickly, must not throw or longjmp, and must not destroy the engine.
pub type VoxLogCallback = Option<unsafe extern "C" fn(level: i32, message: *const c_char, user_data: *mut c_void)>;

/// Engine settings. Fill with `vox_engine_config_init`, then change what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VoxEngineConfig {
    /// `sizeof(VoxEngineConfig)`; set by `vox_engine_config_init`.
    pub struct_size: u32,
    /// Device: `VOX_DEVICE_AUTO` (default), `VOX_DEVICE_CPU` or `VOX_DEVICE_CUDA`.
    pub device: i32,
    /// Folder of a Qwen3-TTS checkpoint (UTF-8 path), or a Hugging Face Hub id
    /// `org/name[@revision]`: its copy in the hub cache (`HF_HOME`), fetched there during
    /// `vox_engine_create` when missing (never with `HF_HUB_OFFLINE=1`). NULL: TTS jobs fail with
    /// `VOX_ERR_MODEL_NOT_LOADED`.
    pub tts_model_dir: *const c_char,
    /// Folder of a Qwen3-ASR checkpoint (UTF-8 path) or a hub id, as `tts_model_dir`. NULL: ASR
    /// jobs fail with `VOX_ERR_MODEL_NOT_LOADED`.
    pub asr_model_dir: *const c_char,
    /// CUDA device ordinal for `VOX_DEVICE_CUDA` (default 0).
    pub device_index: i32,
    /// Most sequences advanced together in one batch (default 16).
    pub max_batch: u32,
    /// Bytes the resident models may use together; 0 = automatic (default).
    pub memory_budget: u64,
    /// Most jobs waiting to start; more submits fail with `VOX_ERR_QUEUE_FULL` (default 1024).
    pub max_queued_jobs: u32,
    /// Cap for requests that give `max_new_tokens = 0`; 0 = the model's automatic cap (default).
    pub default_max_new_tokens: u32,
    /// No generation ever exceeds this many new tokens (default 8192).
    pub hard_max_new_tokens: u32,
    /// A job queued this long forces its model kind to be served next, in ms (default 2000).
    pub max_wait_ms: u32,
    /// CPU threads for inference; 0 = all cores (default).
    pub cpu_threads: u32,
    /// Lowest level passed to `log_callback` (`VOX_LOG_*`, default `VOX_LOG_WARN`).
    pub log_level: i32,
    /// Optional log callback (default NULL: the library prints nothing).
    pub log_callback: VoxLogCallback,
    /// Passed unchanged to `log_callback`.
    pub log_user_data: *mut c_void,
    /// `VOX_MODEL_*` bits of the models to load while `vox_engine_create` runs (a loading
    /// screen) instead of on their first job; a failed load fails the create. Default 0.
    pub preload: u32,
    /// Ignored (where ABI 4's struct ended in padding; keeps `quantization` out of it).
    pub reserved: u32,
    /// Weights quantized at load, CPU only: `VOX_QUANT_NONE` (default: as stored, bit-exact),
    /// `VOX_QUANT_INT8` or `VOX_QUANT_MIXED` (int4 decoder bodies, int8 heads and code-predictor
    /// edge layers). Applies to the TTS talker and code predictor and the
    /// ASR text decoder; on a CPU with AMX the codec's convolutions and the many-row products
    /// (prompts, the ASR audio encoder) also run in bf16 (about half their time; elsewhere they
    /// stay f32). Any value but
    /// `VOX_QUANT_NONE` with a device that resolves to a GPU fails with
    /// `VOX_ERR_INVALID_ARGUMENT`. The quality each recipe keeps is stated in BENCHMARKS.md.
    /// The quantized weights are cached in the model folder, in `.voxkit-cache/` (written once
    /// when the folder is writable, checked and memory-mapped on later loads; delete it at any
    /// time); a read-only folder only costs each load the quantization (a few seconds).
    pub quantization: u32,
}

/// A text-to-speech request. Fill with `vox_tts_request_init`, then set `text` and what you need.
/// Strings are NUL-terminated UTF-8; NULL or "" means "the default". Everything is copied at submit.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VoxTtsRequest {
    /// `sizeof(VoxTtsRequest)`; set by `vox_tts_request_init`.
    pub struct_size: u32,
    /// Queue priority: higher runs first among queued TTS jobs (default 0).
    pub priority: i32,
    /// The text to speak (required, non-empty).
    pub text: *const c_char,
    /// Language name, e.g. "English", "Chinese" (any case); NULL = automatic. A language the
    /// model does not know fails at submit with `VOX_ERR_INVALID_ARGUMENT`, listing the known ones.
    pub language: *const c_char,
    /// Speaker name (CustomVoice checkpoints, any case); NULL = the model's default: the first of
    /// its speakers in alphabetical order (`aiden` for the released CustomVoice models). A speaker
    /// the model does not know fails at submit with `VOX_ERR_INVALID_ARGUMENT`, listing them.
    pub speaker: *const c_char,
    /// Style instruction (VoiceDesign, 1.7B CustomVoice); NULL = none.
    pub instruct: *const c_char,
    /// Cap on generated codec frames + 1 (as the official `max_new_tokens`); 0 = automatic.
    pub max_new_tokens: u32,
    /// Sampling temperature; 0 = the checkpoint's default.
    pub temperature: f32,
    /// Top-k; 0 = the checkpoint's default, -1 = no top-k filtering.
    pub top_k: i32,
    /// Top-p in (0, 1]; 0 = the checkpoint's default.
    pub top_p: f32,
    /// Repetition penalty; 0 = the checkpoint's default.
    pub repetition_penalty: f32,
    /// Non-zero: greedy (argmax) decoding.
    pub greedy: u32,
    /// Random seed, used when `use_seed` is non-zero: same seed and inputs, same audio.
    pub seed: u64,
    /// Non-zero: use `seed`; 0: a fresh seed per job.
    pub use_seed: u32,
    /// Output sample rate in Hz; 0 = the model's own rate (24000 for Qwen3-TTS).
    pub sample_rate: u32,
    /// Non-zero: denoise the output with `denoise_strength`.
    pub denoise: u32,
    /// Denoise strength in [0, 1] (default 1).
    pub denoise_strength: f32,
    /// Non-zero: audio becomes readable frame by frame while the job runs.
    pub stream: u32,
    /// Non-zero: feed the text to the model one token per generated frame (the official
    /// `non_streaming_mode=False`); 0 (default): the whole text in the prompt, as the official API.
    pub text_streaming: u32,
    /// A cloned voice from `vox_voice_create` or `vox_voice_load` (Base checkpoints need one; the
    /// others refuse one); NULL = none. The job keeps its own reference: the voice may be
    /// released as soon as the submit returns. (ABI 4.)
    pub voice: *const VoxVoice,
}

/// A cloned voice (opaque): made once from reference audio (`vox_voice_create`) or loaded from
/// bytes (`vox_voice_load`), used by any number of TTS requests, freed with `vox_voice_release`.
/// Immutable: any thread may use it concurrently.
pub struct VoxVoice {
    _opaque: (),
}

/// Reference audio to clone a voice from. Fill with `vox_voice_request_init`, then set the audio.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VoxVoiceRequest {
    /// `sizeof(VoxVoiceRequest)`; set by `vox_voice_request_init`.
    pub struct_size: u32,
    /// Channels in `pcm` (mixed down to mono inside); default 1.
    pub channels: u32,
    /// Interleaved float PCM in [-1, 1], `frames * channels` samples, 0.08 to 60 seconds; copied.
    pub pcm: *const f32,
    /// Number of frames (samples per channel).
    pub frames: u64,
    /// Rate of `pcm` in Hz, 4000 to 384000 (resampled to the model's 24000 inside).
    pub sample_rate: u32,
    /// Non-zero: denoise the reference first with `denoise_strength` (noise in the reference is
    /// copied into the clone).
    pub denoise: u32,
    /// Denoise strength in [0, 1] (default 1).
    pub denoise_strength: f32,
    /// What is said in the reference (UTF-8, at most 16 KiB): in-context cloning, the closest to
    /// the reference's voice and manner. NULL or "": the voice comes from the speaker embedding
    /// alone.
    pub transcript: *const c_char,
    /// Most milliseconds `vox_voice_create` waits (then `VOX_ERR_TIMEOUT`, the work cancelled);
    /// 0 = no limit.
    pub timeout_ms: u32,
}

/// A speech-recognition request. Fill with `vox_asr_request_init`, then set the audio.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VoxAsrRequest {
    /// `sizeof(VoxAsrRequest)`; set by `vox_asr_request_init`.
    pub struct_size: u32,
    /// Queue priority: higher runs first among queued ASR jobs (default 0).
    pub priority: i32,
    /// Interleaved float PCM in [-1, 1], `frames * channels` samples; copied at submit.
    pub pcm: *const f32,
    /// Number of frames (samples per channel); must be > 0.
    pub frames: u64,
    /// Rate of `pcm` in Hz (resampled to the model's rate inside).
    pub sample_rate: u32,
    /// Channels in `pcm` (mixed down to mono inside).
    pub channels: u32,
    /// Force this language (e.g. "English"); NULL = detect.
    pub language: *const c_char,
    /// Context text for the decoder (names, terms); NULL = none.
    pub context: *const c_char,
    /// Cap on generated text tokens; 0 = automatic (scaled with the audio length).
    pub max_new_tokens: u32,
    /// Non-zero: denoise the input before the front-end with `denoise_strength`.
    pub denoise: u32,
    /// Denoise strength in [0, 1] (default 1).
    pub denoise_strength: f32,
}

/// What a configured model offers, as `vox_engine_model_info` reports it. Set `struct_size`
/// before the call. The strings belong to the engine and stay valid until it is destroyed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VoxModelInfo {
    /// Set by the caller to `sizeof(VoxModelInfo)`.
    pub struct_size: u32,
    /// TTS: the rate of the model's audio (before any requested resampling); ASR: the rate its
    /// front-end takes (input of any rate is resampled to it).
    pub sample_rate: u32,
    /// TTS: the speakers a request may name, comma-separated, lower case; the first is the
    /// default. "" when the model takes no speaker (VoiceDesign) and for ASR.
    pub speakers: *const c_char,
    /// TTS: the languages a request may name, comma-separated, lower case, "auto" first. "" for
    /// ASR.
    pub languages: *const c_char,
    /// TTS: 1 when the model is a Base checkpoint — it clones voices, and every request needs one
    /// (`vox_voice_create`, `VoxTtsRequest.voice`); 0 otherwise. (ABI 4.)
    pub clones_voices: u32,
}

/// A job's state, as `vox_poll` and `vox_wait` report it. Set `struct_size` before the call.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VoxJobInfo {
    /// Set by the caller to `sizeof(VoxJobInfo)`; the library writes its own size back.
    pub struct_size: u32,
    /// `VOX_JOB_*`.
    pub state: i32,
    /// `VOX_KIND_TTS` or `VOX_KIND_ASR`.
    pub kind: i32,
    /// Why the job failed (`VOX_ERR_*`), `VOX_OK` otherwise.
    pub error: VoxStatus,
    /// `VOX_FLAG_*` bits.
    pub flags: u32,
    /// Rate of the job's audio in Hz (0 until known).
    pub sample_rate: u32,
    /// Samples produced and not yet read with `vox_read_audio`.
    pub samples_ready: u64,
    /// Samples produced so far.
    pub samples_total: u64,
    /// 0..1: an estimate while running, 1 when done.
    pub progress: f32,
    /// Tokens generated so far (codec frames for TTS, text tokens for ASR).
    pub tokens: u32,
    /// The effective generation cap (0 until the job starts).
    pub max_new_tokens: u32,
}

/// Per-stage durations of a job in milliseconds. Set `struct_size` before the call.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VoxTimings {
    /// Set by the caller to `sizeof(VoxTimings)`; the library writes its own size back.
    pub struct_size: u32,
    /// Largest batch this job ran in.
    pub batch_size: u32,
    /// Submit → admitted into a batch.
    pub queue_ms: f64,
    /// Model load or swap caused by this job's batch.
    pub model_load_ms: f64,
    /// Talker + code predictor (prefill and decode).
    pub tts_ms: f64,
    /// Codec decoder.
    pub codec_ms: f64,
    pub denoise_ms: f64,
    /// Resampling (TTS output, or ASR input to the model's rate).
    pub upsample_ms: f64,
    pub asr_frontend_ms: f64,
    pub asr_encode_ms: f64,
    pub asr_decode_ms: f64,
    /// Submit → end (→ now while the job runs). The stages above never sum to more.
    pub total_ms: f64,
    /// Tokens generated (codec frames for TTS, text tokens for ASR).
    pub tokens: u32,
}

/// Engine-wide counters and the device inference runs on. Set `struct_size` before the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VoxEngineStats {
    /// Set by the caller to `sizeof(VoxEngineStats)`; the library writes its own size back.
    pub struct_size: u32,
    /// `VOX_MODEL_*` bits of the models loaded now.
    pub resident: u32,
    pub jobs_done: u64,
    pub jobs_failed: u64,
    pub jobs_cancelled: u64,
    /// Batches started.
    pub batches: u64,
    pub model_loads: u64,
    /// Total time of all loads (swaps included), in ms.
    pub model_load_ms: f64,
    /// Loads that had to unload the other model first.
    pub model_swaps: u64,
    pub model_swap_ms: f64,
    /// Jobs waiting to start.
    pub queue_depth: u64,
    /// Jobs not yet released.
    pub jobs_held: u64,
    /// Bytes used by the resident models.
    pub memory_in_use: u64,
    /// The memory budget in effect, in bytes.
    pub memory_budget: u64,
    /// Bytes of audio held by jobs not yet released (a streaming job holds only what was not
    /// read yet).
    pub audio_bytes: u64,
    /// Where inference runs: `VOX_DEVICE_CPU` or `VOX_DEVICE_CUDA` (never `VOX_DEVICE_AUTO`).
    pub device: i32,
    /// The CUDA device ordinal (0 on the CPU).
    pub device_index: u32,
    /// The GPU's memory in bytes (0 on the CPU).
    pub device_memory: u64,
    /// The CUDA driver version as `cuDriverGetVersion` reports it, e.g. 12040 (0 on the CPU).
    pub driver_version: i32,
    /// The device's name, NUL-terminated UTF-8 (cut at a character boundary): the GPU's, or "CPU".
    pub device_name: [c_char; 60],
}

impl Default for VoxEngineStats {
    fn default() -> VoxEngineStats {
        // SAFETY: every field is an integer, a float or an array of them: all-zero bits are zeros.
        unsafe { std::mem::zeroed() }
    }
}

// The first ABI version's size of each struct: a program built against an older header passes
// (and receives) only that prefix. ABI 2 appended `preload` to the config and `audio_bytes` to
// the stats; `VoxModelInfo` is new in 2. ABI 3 appended the device fields to the stats. ABI 4
// appended `voice` to the TTS request and `clones_voices` to the model info; `VoxVoiceRequest` is
// new in 4.
impl super::AbiStruct for VoxEngineConfig {
    const MIN_SIZE: usize = std::mem::offset_of!(VoxEngineConfig, preload);
    // ABI 2–4: up to `preload`, padded to the alignment (`reserved` is that padding).
    // (`sizeof` was `offset_of!(reserved)` where a u64 aligns to 4, as on i386 System V.)
    const OLDER_SIZES: &'static [usize] =
        &[std::mem::offset_of!(VoxEngineConfig, reserved), std::mem::offset_of!(VoxEngineConfig, quantization)];
}
impl super::AbiStruct for VoxEngineStats {
    const MIN_SIZE: usize = std::mem::offset_of!(VoxEngineStats, audio_bytes);
}
impl super::AbiStruct for VoxModelInfo {
    const MIN_SIZE: usize = std::mem::offset_of!(VoxModelInfo, clones_voices);
}
impl super::AbiStruct for VoxTtsRequest {
    const MIN_SIZE: usize = std::mem::offset_of!(VoxTtsRequest, voice);
}
impl super::AbiStruct for VoxVoiceRequest {
    const MIN_SIZE: usize = std::mem::size_of::<VoxVoiceRequest>();
}
impl super::AbiStruct for VoxAsrRequest {
    const MIN_SIZE: usize = std::mem::size_of::<VoxAsrRequest>();
}
impl super::AbiStruct for VoxJobInfo {
    const MIN_SIZE: usize = std::mem::size_of::<VoxJobInfo>();
}
impl super::AbiStruct for VoxTimings {
    const MIN_SIZE: usize = std::mem::size_of::<VoxTimings>();
}
