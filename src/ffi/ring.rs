//! The C ABI of the wait-free audio path (`engine::ring`): open a ring on a TTS job, read it from
//! a real-time thread, close it. Unlike every other handle, a `VoxAudioRing*` is a real pointer:
//! looking it up in a registry would take a lock in the read. `vox_audio_ring_close` still checks
//! it against the live rings (a lock there is fine), so a double close is refused, not a crash.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::api::{VoxEngine, engine_ref};
use super::types::*;
use super::{boundary, non_null, null};
use crate::engine::ring::RingReader;
use crate::error::Error;

/// A wait-free reader of one TTS job's audio (opaque). See `vox_audio_ring_open`.
pub struct VoxAudioRing {
    reader: RingReader,
}

/// The rings opened and not yet closed, by address.
static LIVE_RINGS: parking_lot::Mutex<Option<HashSet<usize>>> = parking_lot::Mutex::new(None);

/// Attaches a wait-free reader to a TTS job (queued, running or ended), for a real-time audio
/// thread: a ring of at least `capacity` samples (1 to 16777216; rounded up to a power of two).
/// From then on the job's audio goes only through the ring, starting with the samples already
/// produced and unread: `vox_read_audio` on the job fails with `VOX_ERR_INVALID_ARGUMENT` until
/// the ring is closed. Samples that do not fit wait in the job; the engine moves them in as the
/// reader drains — after each inference step, and every few milliseconds while it is idle — so
/// size the ring for the longest gap between steps (half a second of audio is plenty on a CPU).
/// One ring per job (a second open fails with `VOX_ERR_INVALID_ARGUMENT`, as does an ASR job).
///
/// Thread safety: any thread, concurrently with every call but `vox_engine_destroy`. Not a
/// real-time call: it allocates the ring.
///
/// # Safety
/// Every pointer is NULL or valid for the sizes this comment states.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_audio_ring_open(
    engine: *const VoxEngine,
    job: VoxJobId,
    capacity: usize,
    out_ring: *mut *mut VoxAudioRing,
) -> VoxStatus {
    boundary("vox_audio_ring_open", || {
        let e = unsafe { engine_ref(engine)? };
        let out = non_null(out_ring, "out_ring")? as *mut *mut VoxAudioRing;
        let reader = e.open_ring(job, capacity)?;
        let p = Box::into_raw(Box::new(VoxAudioRing { reader }));
        LIVE_RINGS.lock().get_or_insert_with(HashSet::new).insert(p as usize);
        unsafe { out.write_unaligned(p) };
        Ok(())
    })
}

/// Copies up to `capacity` unread samples of the ring's job into `dst` (mono float at the job's
/// `VoxJobInfo.sample_rate`) and sets `*written` to their number (0 when none is ready: an
/// underrun while the job runs). `*flags` (may be NULL) gets `VOX_RING_ENDED` once the job has
/// ended (done, failed, cancelled, released, or its engine destroyed) and every sample it
/// produced has been read: nothing more will come. Ask `vox_poll` (off the audio thread) how it
/// ended. `dst` may be NULL when `capacity` is 0.
///
/// Real-time safe: wait-free — no lock, no allocation, no system call, no logging; its time is
/// the copy of at most `capacity` samples. Errors (`VOX_ERR_NULL_POINTER`) do not set
/// `vox_last_error` (that would allocate).
///
/// Thread safety: one thread at a time per ring (the audio thread), concurrently with every other
/// call, `vox_engine_destroy` and `vox_release` of its job included: the ring stays valid until
/// `vox_audio_ring_close`.
///
/// # Safety
/// `ring` is NULL or a ring from `vox_audio_ring_open` not yet closed (a closed or foreign pointer
/// cannot be detected here); the other pointers are NULL or valid for the sizes this comment states.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_audio_ring_read(
    ring: *mut VoxAudioRing,
    dst: *mut f32,
    capacity: usize,
    written: *mut usize,
    flags: *mut u32,
) -> VoxStatus {
    if ring.is_null() || written.is_null() || (capacity > 0 && dst.is_null()) {
        return VOX_ERR_NULL_POINTER;
    }
    // Nothing below can panic; the guard costs nothing unless it does.
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller passes a live ring (see above) and a buffer of `capacity` floats.
        let r = unsafe { &*ring };
        let buf: &mut [f32] =
            if capacity == 0 { &mut [] } else { unsafe { std::slice::from_raw_parts_mut(dst, capacity) } };
        let (n, ended) = r.reader.read(buf);
        unsafe { written.write_unaligned(n) };
        if !flags.is_null() {
            unsafe { flags.write_unaligned(if ended { VOX_RING_ENDED } else { 0 }) };
        }
        VOX_OK
    }))
    .unwrap_or(VOX_ERR_INTERNAL)
}

/// Detaches the ring from its job and frees it. Its unread samples go back to the job, so
/// `vox_read_audio` continues exactly where the ring stopped (unless the job was released).
/// A pointer that is not a live ring (NULL, closed before, foreign) is refused.
///
/// Thread safety: any thread but concurrently with a `vox_audio_ring_read` of the same ring;
/// not from a real-time thread (it frees memory and takes locks).
///
/// # Safety
/// `ring` is any pointer value; it is only dereferenced when it is a live ring.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vox_audio_ring_close(ring: *mut VoxAudioRing) -> VoxStatus {
    boundary("vox_audio_ring_close", || {
        if ring.is_null() {
            return Err(null("ring"));
        }
        let live = LIVE_RINGS.lock().as_mut().is_some_and(|set| set.remove(&(ring as usize)));
        if !live {
            return Err(Error::invalid("ring is not a live VoxAudioRing (closed, or not from vox_audio_ring_open)"));
        }
        // SAFETY: registered by vox_audio_ring_open and not closed since (removed just now).
        let boxed = unsafe { Box::from_raw(ring) };
        boxed.reader.close();
        Ok(())
    })
}
