//! Jobs: their state, their results (audio, text) and their timings. A job lives in the engine's
//! job table from submit until the host releases it; nothing is dropped before that.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use super::ring::AudioRing;
use super::timings::Timings;
use crate::error::{Error, ErrorKind, Result};
use crate::seams::ModelKind;

/// A job's id: unique for the engine's lifetime, never reused, never 0.
pub type JobId = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Cancelled)
    }
}

/// The generation stopped at its `max_new_tokens` cap (or the ASR repetition guard).
pub const FLAG_TRUNCATED: u32 = 1;
/// The job streams: audio is readable while it is produced.
pub const FLAG_STREAMING: u32 = 2;

/// A snapshot of a job, as `poll` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobInfo {
    pub id: JobId,
    pub kind: ModelKind,
    pub state: JobState,
    /// Why the job failed (`state == Failed`).
    pub error: Option<Error>,
    pub flags: u32,
    /// Samples produced and not yet read.
    pub samples_ready: u64,
    /// Samples produced so far.
    pub samples_total: u64,
    /// Rate of the audio produced (0 until known).
    pub sample_rate: u32,
    /// 0..1; an estimate while running (tokens over the cap), 1 when done.
    pub progress: f32,
    pub tokens: u32,
    /// The effective cap; 0 until the job starts.
    pub max_new_tokens: u32,
}

#[derive(Debug)]
pub(crate) struct JobData {
    pub state: JobState,
    pub error: Option<Error>,
    pub flags: u32,
    pub audio: Vec<f32>,
    pub read_pos: usize,
    /// Samples already read and dropped from the front of `audio` (streaming jobs keep only
    /// what the host has not read yet).
    pub dropped: u64,
    pub sample_rate: u32,
    pub text: String,
    pub language: String,
    pub timings: Timings,
    pub max_new_tokens: u32,
    pub ended: Option<Instant>,
    /// Set when the job's output went wrong while it ran (non-finite audio): the job fails with
    /// it when it ends, instead of becoming `Done`.
    pub fault: Option<Error>,
    /// A voice job's result.
    pub voice: Option<std::sync::Arc<crate::seams::voice::Voice>>,
    /// The host's wait-free reader, when one is open: audio goes there first and waits in
    /// `audio[read_pos..]` only while the ring is full.
    pub ring: Option<std::sync::Arc<AudioRing>>,
}

impl JobData {
    /// A streaming job (or one read through a ring) forgets what was read once it is at least
    /// half of what it holds, so the moves stay amortised: a long stream read as it plays holds
    /// only its unread audio.
    pub(crate) fn compact(&mut self) {
        let queue = self.flags & FLAG_STREAMING != 0 || self.ring.is_some();
        if queue && self.read_pos > 0 && 2 * self.read_pos >= self.audio.len() {
            let read = self.read_pos;
            self.audio.drain(..read);
            self.read_pos = 0;
            self.dropped += read as u64;
            // A stream that produced a burst and is now read down gives the memory back.
            if self.audio.capacity() > 4 * self.audio.len().max(1 << 14) {
                let keep = self.audio.len().max(1 << 14);
                self.audio.shrink_to(keep);
            }
        }
    }
}

/// A job as the engine holds it: shared by the job table, the queue and the worker.
#[derive(Debug)]
pub(crate) struct Job {
    pub id: JobId,
    pub kind: ModelKind,
    pub submitted: Instant,
    /// Set by cancel or release; the worker checks it before every step.
    pub cancel: AtomicBool,
    pub data: Mutex<JobData>,
    pub ended: Condvar,
}

impl Job {
    pub fn new(id: JobId, kind: ModelKind, flags: u32) -> Job {
        Job {
            id,
            kind,
            submitted: Instant::now(),
            cancel: AtomicBool::new(false),
            data: Mutex::new(JobData {
                state: JobState::Queued,
                error: None,
                flags,
                audio: Vec::new(),
                read_pos: 0,
                dropped: 0,
                sample_rate: 0,
                text: String::new(),
                language: String::new(),
                fault: None,
                voice: None,
                ring: None,
                timings: Timings::default(),
                max_new_tokens: 0,
                ended: None,
            }),
            ended: Condvar::new(),
        }
    }

    pub fn cancel_requested(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }

    pub fn request_cancel(&self) {
        self.cancel.store(true, Ordering::Release);
    }

    /// Moves the job to a terminal state exactly once; returns false if it had already ended.
    /// `on_end` runs before waiters wake (so that counters are current when `wait` returns).
    pub fn finish(&self, state: JobState, error: Option<Error>, on_end: impl FnOnce()) -> bool {
        debug_assert!(state.is_terminal());
        let mut d = self.data.lock();
        if d.state.is_terminal() {
            return false;
        }
        let now = Instant::now();
        if d.state == JobState::Queued {
            d.timings.queue_ms = now.duration_since(self.submitted).as_secs_f64() * 1e3;
        }
        d.state = state;
        d.error = error;
        d.ended = Some(now);
        d.timings.total_ms = now.duration_since(self.submitted).as_secs_f64() * 1e3;
        d.feed_ring(); // ends the ring when nothing waits
        on_end();
        drop(d);
        self.ended.notify_all();
        true
    }

    pub fn info(&self) -> JobInfo {
        let d = self.data.lock();
        let progress = match d.state {
            JobState::Done => 1.0,
            _ if d.max_new_tokens > 0 => (d.timings.tokens as f32 / d.max_new_tokens as f32).min(0.99),
            _ => 0.0,
        };
        JobInfo {
            id: self.id,
            kind: self.kind,
            state: d.state,
            error: d.error.clone(),
            flags: d.flags,
            samples_ready: d.unread() as u64,
            samples_total: d.dropped + d.audio.len() as u64,
            sample_rate: d.sample_rate,
            progress,
            tokens: d.timings.tokens,
            max_new_tokens: d.max_new_tokens,
        }
    }

    pub fn timings(&self) -> Timings {
        let d = self.data.lock();
        let mut t = d.timings;
        if d.ended.is_none() {
            let now = Instant::now().duration_since(self.submitted).as_secs_f64() * 1e3;
            t.total_ms = now;
            if d.state == JobState::Queued {
                t.queue_ms = now;
            }
        }
        t
    }

    /// Copies unread samples into `dst`, returning how many. A streaming job then forgets what
    /// was read (see `JobData::compact`). Refused while a ring is open on the job.
    pub fn read_audio(&self, dst: &mut [f32]) -> Result<usize> {
        let mut d = self.data.lock();
        if d.ring.is_some() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("job {} is read through its audio ring; close the ring to read it here", self.id),
            ));
        }
        let n = dst.len().min(d.audio.len() - d.read_pos);
        let start = d.read_pos;
        dst[..n].copy_from_slice(&d.audio[start..start + n]);
        d.read_pos += n;
        d.compact();
        Ok(n)
    }

    /// Bytes of audio this job holds now.
    pub fn audio_bytes(&self) -> u64 {
        (self.data.lock().audio.capacity() * std::mem::size_of::<f32>()) as u64
    }
}

impl Drop for Job {
    /// A job that goes away (released, its engine destroyed) ends its ring: nothing more comes.
    fn drop(&mut self) {
        if let Some(ring) = self.data.get_mut().ring.take() {
            ring.end();
        }
    }
}
