//! The C ABI of cloned voices: make one from reference audio, save it as bytes, load it back,
//! release it. A `VoxVoice*` is never dereferenced: it is a number this library handed out
//! (from a counter, never reused), looked up in a registry of live voices, so a released, stale
//! or foreign pointer is refused — even when the host keeps a copy of a released one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::api::{VoxEngine, engine_ref};
use super::types::*;
use super::{boundary, non_null, opt_str, read_sized};
use crate::error::{Error, ErrorKind, Result};
use crate::seams::request::VoiceRequest;
use crate::seams::voice::Voice;

/// The live voices by handle value.
static LIVE_VOICES: parking_lot::Mutex<Option<HashMap<usize, Arc<Voice>>>> = parking_lot::Mutex::new(None);
/// The next handle value: aligned like a pointer, far from address 0, never reused.
static NEXT_HANDLE: AtomicUsize = AtomicUsize::new(0x1000);

fn register(v: Voice) -> *mut VoxVoice {
    let h = NEXT_HANDLE.fetch_add(16, Ordering::Relaxed);
    LIVE_VOICES.lock().get_or_insert_with(HashMap::new).insert(h, Arc::new(v));
    h as *mut VoxVoice
}

/// The voice behind a live handle (NULL: none).
///
/// # Safety
/// `p` is NULL or a pointer the caller got from this library and has not released since —
/// anything else is detected by the registry and refused.
pub(super) unsafe fn voice_of(p: *const VoxVoice) -> Result<Option<Arc<Voice>>> {
    if p.is_null() {
        return Ok(None);
    }
    LIVE_VOICES
        .lock()
        .as_ref()
        .and_then(|m| m.get(&(p as usize)).cloned())
        .map(Some)
        .ok_or_else(|| Error::invalid("voice is not a live VoxVoice (released, or not from vox_voice_create/load)"))
}

fn default_voice_request() -> VoxVoiceRequest {
    VoxVoiceRequest {
        struct_size: std::mem::size_of::<VoxVoiceRequest>() as u32,
        channels: 1,
        pcm: std::ptr::null(),
        frames: 0,
        sample_rate: 0,
        denoise: 0,
        denoise_strength: 1.0,
        transcript: std::ptr::null(),
        timeout_ms: 0,
    }
}

/// Fills `request` with the defaults (and its `struct_size`); set the audio afterwards.
///
/// Thread safety: any thread.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_voice_request_init(request: *mut VoxVoiceRequest) -> VoxStatus {
    boundary("vox_voice_request_init", || {
        let p = non_null(request, "request")? as *mut VoxVoiceRequest;
        unsafe { p.write_unaligned(default_voice_request()) };
        Ok(())
    })
}

fn voice_request(r: &VoxVoiceRequest) -> Result<VoiceRequest> {
    if r.frames == 0 || r.channels == 0 {
        return Err(Error::invalid("request.frames and request.channels must be > 0"));
    }
    let pcm = non_null(r.pcm, "request.pcm")?;
    // Bounded before the copy by the request's own rate and channels (the other checks are
    // `VoiceRequest::validate`'s, after it).
    use crate::seams::request::{MAX_CHANNELS, MAX_REFERENCE_SECONDS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&r.sample_rate) || r.channels > MAX_CHANNELS {
        return Err(Error::invalid(format!(
            "request.sample_rate must be in {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} and channels in 1..={MAX_CHANNELS} (got {} Hz, {})",
            r.sample_rate, r.channels
        )));
    }
    if r.frames as f64 / r.sample_rate as f64 > MAX_REFERENCE_SECONDS {
        return Err(Error::invalid(format!(
            "request.frames is {} at {} Hz: a reference is at most {MAX_REFERENCE_SECONDS} s",
            r.frames, r.sample_rate
        )));
    }
    let samples = r.frames as usize * r.channels as usize;
    // SAFETY: the caller promises `pcm` holds frames × channels floats.
    let src = unsafe { std::slice::from_raw_parts(pcm, samples) };
    let mut audio = Vec::new();
    audio
        .try_reserve_exact(samples)
        .map_err(|_| Error::new(ErrorKind::OutOfMemory, format!("cannot copy {samples} samples of audio")))?;
    audio.extend_from_slice(src);
    Ok(VoiceRequest {
        audio,
        sample_rate: r.sample_rate,
        channels: r.channels,
        transcript: unsafe { opt_str(r.transcript, "request.transcript")? },
        denoise: (r.denoise != 0).then_some(r.denoise_strength),
    })
}

/// Makes a cloned voice from reference audio with the engine's TTS model, which must be a Qwen3-TTS
/// Base checkpoint (loaded now if it is not yet). **Blocks** until the voice is made: the
/// speaker encoder (and, with a transcript, the codec encoder) run once on the engine's worker —
/// right away when no batch runs, a TTS batch runs (between two of its steps; a voice takes no
/// batch slot) or both models fit in memory; after the running ASR batch otherwise. Call it from
/// a loading thread, not an audio or render thread; `request->timeout_ms` bounds the wait.
/// `*out_voice` receives a handle to release with `vox_voice_release`. Errors:
/// `VOX_ERR_INVALID_ARGUMENT` (no audio, NaN samples, a rate outside 4000..384000 Hz, more than 64
/// channels, a reference shorter than 0.08 s or longer than 60 s, a transcript over 16 KiB, a
/// model that is not a Base checkpoint), `VOX_ERR_NULL_POINTER`, `VOX_ERR_STRUCT_SIZE`,
/// `VOX_ERR_INVALID_UTF8`, `VOX_ERR_MODEL_NOT_LOADED` (no TTS model configured),
/// `VOX_ERR_MODEL_LOAD`, `VOX_ERR_QUEUE_FULL`, `VOX_ERR_TIMEOUT`, `VOX_ERR_OUT_OF_MEMORY`,
/// `VOX_ERR_SHUTTING_DOWN`.
///
/// Thread safety: any thread, concurrently with every call but `vox_engine_destroy`.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states; strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_voice_create(
    engine: *const VoxEngine,
    request: *const VoxVoiceRequest,
    out_voice: *mut *mut VoxVoice,
) -> VoxStatus {
    boundary("vox_voice_create", || {
        let e = unsafe { engine_ref(engine)? };
        let r = unsafe { read_sized(non_null(request, "request")?, "VoxVoiceRequest", default_voice_request)? };
        let out = non_null(out_voice, "out_voice")? as *mut *mut VoxVoice;
        let timeout = (r.timeout_ms > 0).then(|| std::time::Duration::from_millis(r.timeout_ms as u64));
        let voice = e.create_voice(voice_request(&r)?, timeout)?;
        unsafe { out.write_unaligned(register(voice)) };
        Ok(())
    })
}

/// Frees a voice. Jobs submitted with it keep their own reference and are unaffected. NULL is a
/// no-op; a pointer released already (or not from this library) fails with
/// `VOX_ERR_INVALID_ARGUMENT`: handles are never reused, and are looked up, never dereferenced.
///
/// Thread safety: any thread, once per voice, when no other thread uses this handle.
///
/// # Safety
/// `voice` is NULL or a pointer from `vox_voice_create` / `vox_voice_load`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_voice_release(voice: *mut VoxVoice) -> VoxStatus {
    boundary("vox_voice_release", || {
        if voice.is_null() {
            return Ok(());
        }
        let gone = LIVE_VOICES.lock().as_mut().and_then(|m| m.remove(&(voice as usize)));
        // Dropped outside the lock (the last reference frees the voice).
        gone.map(drop).ok_or_else(|| {
            Error::invalid("voice is not a live VoxVoice (released already, or not from vox_voice_create/load)")
        })
    })
}

/// Writes a voice as bytes (a versioned, checksummed format that names the checkpoint it was
/// made for): ship it as an asset and `vox_voice_load` it later, with any engine running the same
/// checkpoint. `*required` (may be NULL) receives the byte count — also when the call fails with
/// `VOX_ERR_BUFFER_TOO_SMALL`, so a first call with `dst = NULL, capacity = 0` asks for the size.
///
/// Thread safety: any thread, concurrently with every call on the same voice but its release.
///
/// # Safety
/// `voice` is live; `dst` is NULL or valid for `capacity` bytes; `required` is NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_voice_save(
    voice: *const VoxVoice,
    dst: *mut u8,
    capacity: usize,
    required: *mut usize,
) -> VoxStatus {
    boundary("vox_voice_save", || {
        let v = unsafe { voice_of(non_null(voice, "voice")?)? }.expect("non-null");
        if dst.is_null() && capacity > 0 {
            return Err(super::null("dst (with a non-zero capacity)"));
        }
        let bytes = v.to_bytes();
        if !required.is_null() {
            unsafe { required.write_unaligned(bytes.len()) };
        }
        if capacity < bytes.len() {
            return Err(Error::new(
                ErrorKind::BufferTooSmall,
                format!("the voice needs {} bytes; the buffer holds {capacity}", bytes.len()),
            ));
        }
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        Ok(())
    })
}

/// Reads a voice `vox_voice_save` wrote. Another format version, a truncated or altered buffer
/// fails with `VOX_ERR_INVALID_ARGUMENT` naming what is wrong; a voice made with another
/// checkpoint loads, and is refused when a request using it is submitted (with both
/// checkpoints' identities in the message). `*out_voice` receives a handle to release.
///
/// Thread safety: any thread.
///
/// # Safety
/// `data` is valid for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_voice_load(data: *const u8, len: usize, out_voice: *mut *mut VoxVoice) -> VoxStatus {
    boundary("vox_voice_load", || {
        let data = non_null(data, "data")?;
        let out = non_null(out_voice, "out_voice")? as *mut *mut VoxVoice;
        if len > 64 << 20 {
            return Err(Error::invalid(format!("{len} bytes is larger than any voice")));
        }
        // SAFETY: the caller promises `len` readable bytes at `data`.
        let bytes = unsafe { std::slice::from_raw_parts(data, len) };
        let voice = Voice::from_bytes(bytes)?;
        unsafe { out.write_unaligned(register(voice)) };
        Ok(())
    })
}
