//! A wait-free path from the worker to a host's real-time audio thread: one ring of samples per
//! job, one producer (whoever holds the job's data lock: the worker as it appends, a host call
//! that opens or tops up) and one consumer (the host's audio thread). The consumer's read takes no
//! lock, allocates nothing and makes no system call: two atomic loads, a copy, an atomic store.
//!
//! Samples that do not fit wait in the job (`JobData::audio`) and are moved in as the reader
//! drains: by the worker after every step and, while any ring waits for room, every few
//! milliseconds when it is idle (`Engine::open_ring` registers the job for that).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use super::job::{Job, JobData};
use crate::error::{Error, ErrorKind, Result};

/// The largest ring a host may ask for, in samples (≈ 11.6 minutes at 24 kHz).
pub const MAX_RING_SAMPLES: usize = 1 << 24;

/// A single-producer, single-consumer ring of f32 samples with a power-of-two capacity.
pub struct AudioRing {
    slots: Box<[UnsafeCell<f32>]>,
    mask: usize,
    /// Samples ever pushed (written by the producer only).
    head: AtomicUsize,
    /// Samples ever popped (written by the consumer only).
    tail: AtomicUsize,
    /// Set by the producer after its last push: nothing more will come.
    ended: AtomicBool,
}

// SAFETY: a slot is written only by the producer while it lies outside [tail, head) and read only
// by the consumer while inside it; `head` is published with Release after the writes and read with
// Acquire before the reads (and `tail` the other way round), so no slot is accessed by both at once.
unsafe impl Sync for AudioRing {}
unsafe impl Send for AudioRing {}

impl std::fmt::Debug for AudioRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioRing")
            .field("capacity", &self.capacity())
            .field("available", &self.available())
            .field("ended", &self.ended.load(Ordering::Relaxed))
            .finish()
    }
}

impl AudioRing {
    /// A ring of at least `capacity` samples (rounded up to a power of two).
    pub fn new(capacity: usize) -> Result<AudioRing> {
        if capacity == 0 || capacity > MAX_RING_SAMPLES {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("a ring holds 1 to {MAX_RING_SAMPLES} samples, not {capacity}"),
            ));
        }
        let size = capacity.next_power_of_two();
        let mut slots = Vec::new();
        slots
            .try_reserve_exact(size)
            .map_err(|_| Error::new(ErrorKind::OutOfMemory, format!("cannot allocate a ring of {size} samples")))?;
        slots.resize_with(size, || UnsafeCell::new(0.0));
        Ok(AudioRing {
            slots: slots.into_boxed_slice(),
            mask: size - 1,
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            ended: AtomicBool::new(false),
        })
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Samples pushed and not yet popped.
    pub fn available(&self) -> usize {
        self.head.load(Ordering::Acquire).wrapping_sub(self.tail.load(Ordering::Acquire))
    }

    /// Producer: copies as many of `src` as fit; returns how many.
    pub(crate) fn push(&self, src: &[f32]) -> usize {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        let n = src.len().min(self.capacity() - head.wrapping_sub(tail));
        for (i, &v) in src[..n].iter().enumerate() {
            // SAFETY: slot head+i is outside [tail, head): the consumer does not read it.
            unsafe { *self.slots[(head.wrapping_add(i)) & self.mask].get() = v };
        }
        self.head.store(head.wrapping_add(n), Ordering::Release);
        n
    }

    /// Producer: no sample will follow the ones pushed so far.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Release);
    }

    /// Consumer: copies up to `dst.len()` samples out; returns how many, and whether the stream is
    /// over (ended, and every sample read). Wait-free: no lock, no allocation, no system call.
    pub fn pop(&self, dst: &mut [f32]) -> (usize, bool) {
        // `ended` first: when it is seen set, every push happened before, so an empty ring after
        // this read means the stream is over.
        let ended = self.ended.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        let n = dst.len().min(head.wrapping_sub(tail));
        let start = tail & self.mask;
        let first = n.min(self.capacity() - start);
        for (i, d) in dst[..first].iter_mut().enumerate() {
            // SAFETY: slots tail..tail+n are inside [tail, head): the producer does not write them.
            *d = unsafe { *self.slots[start + i].get() };
        }
        for (i, d) in dst[first..n].iter_mut().enumerate() {
            // SAFETY: as above (the part that wrapped around to the start).
            *d = unsafe { *self.slots[i].get() };
        }
        self.tail.store(tail.wrapping_add(n), Ordering::Release);
        (n, ended && head.wrapping_sub(tail) == n)
    }
}

/// A host's end of a job's ring: reads wait-free, closes (off the real-time thread) by handing
/// the unread samples back to the job.
#[derive(Debug)]
pub struct RingReader {
    ring: Arc<AudioRing>,
    job: Weak<Job>,
}

impl RingReader {
    pub(crate) fn new(ring: Arc<AudioRing>, job: Weak<Job>) -> RingReader {
        RingReader { ring, job }
    }

    /// See [`AudioRing::pop`]. One thread at a time.
    pub fn read(&self, dst: &mut [f32]) -> (usize, bool) {
        self.ring.pop(dst)
    }

    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Detaches the ring from its job (if the job is still there); its unread samples go back
    /// in front of what waits in the job, so `read_audio` continues where the ring stopped.
    pub fn close(self) {
        let Some(job) = self.job.upgrade() else { return };
        let mut d = job.data.lock();
        if !d.ring.as_ref().is_some_and(|r| Arc::ptr_eq(r, &self.ring)) {
            return;
        }
        d.ring = None;
        let mut unread = vec![0f32; self.ring.available()];
        let (n, _) = self.ring.pop(&mut unread);
        unread.truncate(n);
        let total = d.dropped + d.audio.len() as u64;
        let start = d.read_pos;
        unread.extend_from_slice(&d.audio[start..]);
        d.audio = unread;
        d.read_pos = 0;
        d.dropped = total - d.audio.len() as u64;
    }
}

impl JobData {
    /// Moves waiting samples into the job's ring (if it has one) and ends the ring once the job
    /// has ended and nothing waits. Returns whether samples still wait for room.
    pub(crate) fn feed_ring(&mut self) -> bool {
        let Some(ring) = self.ring.clone() else { return false };
        let start = self.read_pos;
        let n = ring.push(&self.audio[start..]);
        self.read_pos += n;
        self.compact();
        let waiting = self.read_pos < self.audio.len();
        if !waiting && self.state.is_terminal() {
            ring.end();
        }
        waiting
    }

    /// Samples the host has not read: those waiting here and those in the ring.
    pub(crate) fn unread(&self) -> usize {
        self.audio.len() - self.read_pos + self.ring.as_ref().map_or(0, |r| r.available())
    }
}
