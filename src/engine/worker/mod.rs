//! The worker: the one thread that runs inference. Each turn of its loop asks the scheduler what
//! to admit, loads a model if needed, prefills the admitted sequences, and advances the running
//! batch by one step; results are published to the jobs as they appear.

mod asr;
mod post;
mod tts;
mod voice;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use post::PostStream;

use super::Shared;
use super::job::{FLAG_TRUNCATED, Job, JobState};
use super::manager::ModelManager;
use super::scheduler::{Decision, Policy, QueuedJob, Running, SchedInput, decide};
use super::timings::Stage;
use crate::error::{Error, ErrorKind};
use crate::seams::request::{AsrRequest, TtsRequest};
use crate::seams::{Finish, ModelKind};

pub(crate) enum Request {
    Tts(TtsRequest),
    Asr(AsrRequest),
    /// Making a cloned voice (queued as a TTS job: it needs the TTS model): mono reference
    /// audio at the model's voice rate, and its transcript.
    Voice {
        audio: Vec<f32>,
        transcript: Option<String>,
    },
}

/// A submitted job waiting in the queue.
pub(crate) struct Pending {
    pub job: Arc<Job>,
    pub request: Request,
    pub priority: i32,
    /// The job's post-processing chain, built at submit (so unsupported options fail there).
    pub post: Vec<PostStream>,
}

impl Pending {
    fn queued(&self) -> QueuedJob {
        QueuedJob { id: self.job.id, kind: self.job.kind, priority: self.priority, enqueued: self.job.submitted }
    }
}

/// One active sequence of the running batch.
struct Seq {
    job: Arc<Job>,
    slot: usize,
    post: Vec<PostStream>,
    stream: bool,
    /// TTS: frames generated so far, and how many the codec has already decoded.
    frames: Vec<Vec<u32>>,
    decoded: usize,
    /// TTS with an in-context cloned voice: the reference's codes, which the codec decodes
    /// before the generated frames (their audio is not the job's).
    context: Option<Arc<crate::seams::voice::Voice>>,
}

impl Seq {
    /// The codec context of an in-context voice (empty otherwise).
    fn context(&self) -> &[Vec<u32>] {
        self.context.as_ref().and_then(|v| v.reference.as_ref()).map_or(&[], |r| &r.codes)
    }
}

struct Batch {
    kind: ModelKind,
    seqs: Vec<Seq>,
    free_slots: Vec<usize>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Batch {
    fn new(kind: ModelKind, slots: usize) -> Batch {
        Batch { kind, seqs: Vec::new(), free_slots: (0..slots).rev().collect() }
    }
}

pub(crate) struct Worker {
    shared: Arc<Shared>,
    /// Runs the post-processing chains of several jobs at once (one task per job); `None` when
    /// the engine has one CPU thread or the pool could not start (the chains then run in turn).
    post_pool: Option<rayon::ThreadPool>,
    manager: ModelManager,
    batch: Option<Batch>,
    last_served: Option<ModelKind>,
    /// Jobs inside the admission or step running now (failed if it panics).
    in_flight: Vec<Arc<Job>>,
    /// Some audio ring had samples waiting for room at the last top-up: the worker must not
    /// sleep without a timeout.
    ring_backlog: bool,
}

/// How often an idle worker moves waiting samples into rings that have room again.
const RING_TOP_UP: Duration = Duration::from_millis(4);

impl Worker {
    pub fn new(shared: Arc<Shared>, manager: ModelManager) -> Worker {
        let threads = shared.config.effective_cpu_threads();
        let post_pool = (threads > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("voxkit-post-{i}"))
                    .build()
                    .ok()
            })
            .flatten();
        Worker {
            shared,
            post_pool,
            manager,
            batch: None,
            last_served: None,
            in_flight: Vec::new(),
            ring_backlog: false,
        }
    }

    pub fn run(mut self) {
        let _mark = crate::logging::enter(self.shared.log_id);
        let _stop = crate::seams::stop::scope(self.shared.stop.clone());
        loop {
            let Some(admitted) = self.next_admissions() else { break };
            // A panic inside a model must not kill the worker (every job would then hang): the
            // jobs it touched fail with an internal error and the model is reloaded on next use.
            let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if let Some((kind, jobs)) = admitted {
                    self.in_flight = jobs.iter().map(|p| p.job.clone()).collect();
                    self.admit(kind, jobs);
                    self.in_flight.clear();
                }
                self.publish_stats();
                if self.batch.is_some() {
                    self.step();
                }
                self.top_up_rings();
            }));
            if let Err(panic) = turn {
                self.recover(panic);
            }
        }
        self.shutdown();
    }

    /// Moves waiting samples into the rings that have room; forgets rings that were closed,
    /// ended, or whose job is gone.
    fn top_up_rings(&mut self) {
        let rings = std::mem::take(&mut *self.shared.rings.lock());
        if rings.is_empty() {
            self.ring_backlog = false;
            return;
        }
        let mut backlog = false;
        let mut keep = Vec::with_capacity(rings.len());
        for weak in rings {
            let Some(job) = weak.upgrade() else { continue };
            let mut d = job.data.lock();
            if d.ring.is_none() {
                continue;
            }
            backlog |= d.feed_ring();
            let over = d.state.is_terminal() && d.read_pos == d.audio.len();
            drop(d);
            if !over {
                keep.push(weak);
            }
        }
        self.ring_backlog = backlog;
        self.shared.rings.lock().extend(keep);
    }

    fn recover(&mut self, panic: Box<dyn std::any::Any + Send>) {
        let err = if let Some(e) = panic.downcast_ref::<Error>() {
            // A device failure raised by the compute layer (out of device memory, a faulted GPU).
            log::error!("engine: the device failed during inference: {}", e.message);
            Error::new(e.kind, format!("the device failed during inference: {}", e.message))
        } else {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            log::error!("engine: internal error (panic) during inference: {what}");
            Error::internal(format!("internal error during inference: {what}"))
        };
        let mut jobs: Vec<Arc<Job>> = std::mem::take(&mut self.in_flight);
        if let Some(b) = self.batch.take() {
            jobs.extend(b.seqs.into_iter().map(|s| s.job));
        }
        // The model's slots may be inconsistent now: drop both; they reload on next use.
        self.manager.unload(ModelKind::Tts);
        self.manager.unload(ModelKind::Asr);
        for job in jobs {
            self.end_job(&job, JobState::Failed, Some(err.clone()));
        }
        self.publish_stats();
    }

    /// Waits until there is something to do; `None` on shutdown.
    fn next_admissions(&mut self) -> Option<Option<(ModelKind, Vec<Pending>)>> {
        let mut q = self.shared.queue.lock();
        loop {
            if q.shutdown {
                return None;
            }
            // Voice jobs take no slot: they run at once whenever the TTS model can be used
            // without draining the running batch (none runs, it is a TTS batch, or both models
            // fit); otherwise they wait for the scheduler like any TTS job.
            let voice_now = match &self.batch {
                None => true,
                Some(b) => b.kind == ModelKind::Tts || self.manager.both_fit(),
            };
            if voice_now && q.entries.iter().any(|p| matches!(p.request, Request::Voice { .. })) {
                let (voices, rest): (std::collections::VecDeque<Pending>, std::collections::VecDeque<Pending>) =
                    q.entries.drain(..).partition(|p| matches!(p.request, Request::Voice { .. }));
                q.entries = rest;
                return Some(Some((ModelKind::Tts, voices.into())));
            }
            let snapshot: Vec<QueuedJob> = q.entries.iter().map(Pending::queued).collect();
            let input = SchedInput {
                queue: &snapshot,
                resident: self.manager.resident(),
                running: self.batch.as_ref().map(|b| Running { kind: b.kind, active: b.seqs.len() }),
                last_served: self.last_served,
                now: Instant::now(),
                policy: Policy { max_batch: self.shared.config.max_batch, max_wait: self.shared.config.max_wait },
            };
            match decide(&input) {
                Decision::Admit { kind, jobs } => {
                    let mut taken = Vec::with_capacity(jobs.len());
                    for id in jobs {
                        if let Some(pos) = q.entries.iter().position(|p| p.job.id == id) {
                            taken.extend(q.entries.remove(pos));
                        }
                    }
                    return Some(Some((kind, taken)));
                }
                Decision::Idle if self.batch.is_some() => return Some(None),
                Decision::Idle if self.ring_backlog => {
                    // Nothing runs, but a reader drains a ring that has samples waiting.
                    self.shared.wake.wait_for(&mut q, RING_TOP_UP);
                    return Some(None);
                }
                Decision::Idle => {
                    // Nothing runs and nothing can start: sleep until a submit, a cancel or shutdown.
                    self.shared.wake.wait(&mut q);
                }
            }
        }
    }

    fn admit(&mut self, kind: ModelKind, jobs: Vec<Pending>) {
        // Jobs cancelled or released while queued never start.
        let jobs: Vec<Pending> = jobs
            .into_iter()
            .filter(|p| {
                if p.job.cancel_requested() {
                    self.end_job(&p.job, JobState::Cancelled, None);
                    false
                } else {
                    true
                }
            })
            .collect();
        if jobs.is_empty() {
            return;
        }
        let admitted_at = Instant::now();
        let load = match self.manager.ensure(kind) {
            Ok(ev) => ev,
            Err(e) => {
                if e.kind != ErrorKind::ShuttingDown {
                    log::error!("engine: cannot load the {} model: {}", kind.name(), e.message);
                }
                for p in &jobs {
                    self.end_job(&p.job, JobState::Failed, Some(e.clone()));
                }
                return;
            }
        };
        if let Some(ev) = load {
            let mut s = self.shared.stats.lock();
            s.model_loads += 1;
            s.model_load_ms += ms(ev.duration);
            if ev.swapped {
                s.model_swaps += 1;
                s.model_swap_ms += ms(ev.duration);
            }
        }
        for p in &jobs {
            let mut d = p.job.data.lock();
            d.state = JobState::Running;
            d.timings.queue_ms = ms(admitted_at.duration_since(p.job.submitted));
            if let Some(ev) = load {
                d.timings.add(Stage::ModelLoad, ev.duration);
            }
        }
        // Voice jobs alone (admitted ahead of the scheduler): no batch is started or switched.
        if jobs.iter().all(|p| matches!(p.request, Request::Voice { .. })) {
            self.make_voices(jobs);
            return;
        }
        if self.batch.as_ref().is_none_or(|b| b.kind != kind) {
            self.batch = Some(Batch::new(kind, self.shared.config.max_batch));
            self.shared.stats.lock().batches += 1;
        }
        self.last_served = Some(kind);
        log::debug!("engine: in_flight {} {} job(s)", jobs.len(), kind.name());
        match kind {
            ModelKind::Tts => self.prefill_tts(jobs),
            ModelKind::Asr => self.prefill_asr(jobs),
        }
        self.note_batch_size();
    }

    fn take_slots(&mut self, n: usize) -> Vec<usize> {
        let b = self.batch.as_mut().expect("batch exists during admission");
        (0..n).map(|_| b.free_slots.pop().expect("scheduler admits at most the free slots")).collect()
    }

    fn effective_cap(&self, requested: u32, automatic: impl FnOnce() -> u32) -> u32 {
        self.shared.config.effective_cap(requested, automatic)
    }

    fn fail_admitted(&mut self, jobs: Vec<Pending>, slots: Vec<usize>, e: Error) {
        let b = self.batch.as_mut().unwrap();
        b.free_slots.extend(slots);
        for p in jobs {
            self.end_job(&p.job, JobState::Failed, Some(e.clone()));
        }
    }

    fn note_batch_size(&self) {
        if let Some(b) = &self.batch {
            let n = b.seqs.len() as u32;
            for s in &b.seqs {
                let mut d = s.job.data.lock();
                d.timings.batch_size = d.timings.batch_size.max(n);
            }
        }
    }

    /// Ends cancelled sequences, then advances the rest by one step.
    fn step(&mut self) {
        let mut batch = self.batch.take().expect("step runs with a batch");
        // A sequence whose output already faulted (non-finite audio) ends now, failed, rather than
        // generating audio nobody gets.
        let (cancelled, active): (Vec<Seq>, Vec<Seq>) =
            batch.seqs.drain(..).partition(|s| s.job.cancel_requested() || s.job.data.lock().fault.is_some());
        batch.seqs = active;
        for s in cancelled {
            self.release_slot(batch.kind, &mut batch, s.slot);
            let fault = s.job.data.lock().fault.take();
            match fault {
                Some(e) => self.end_job(&s.job, JobState::Failed, Some(e)),
                None => self.end_job(&s.job, JobState::Cancelled, None),
            }
        }
        if !batch.seqs.is_empty() {
            self.in_flight = batch.seqs.iter().map(|s| s.job.clone()).collect();
            let kind = batch.kind;
            let result = match kind {
                ModelKind::Tts => self.step_tts(&mut batch),
                ModelKind::Asr => self.step_asr(&mut batch),
            };
            self.in_flight.clear();
            if let Err(e) = result {
                log::error!("engine: {} step failed: {}", batch.kind.name(), e.message);
                for s in std::mem::take(&mut batch.seqs) {
                    self.release_slot(batch.kind, &mut batch, s.slot);
                    self.end_job(&s.job, JobState::Failed, Some(e.clone()));
                }
            }
        }
        if !batch.seqs.is_empty() {
            self.batch = Some(batch);
        }
    }

    fn release_slot(&self, kind: ModelKind, batch: &mut Batch, slot: usize) {
        match kind {
            ModelKind::Tts => {
                if let Some(m) = self.manager.tts.lock().as_mut() {
                    m.generator.release(slot);
                    m.codec.end_stream(slot);
                }
            }
            ModelKind::Asr => {
                if let Some(m) = self.manager.asr.lock().as_mut() {
                    m.release(slot);
                }
            }
        }
        batch.free_slots.push(slot);
    }

    /// A sequence ended normally: Done, TRUNCATED if it hit its cap.
    fn complete(&self, job: &Job, finish: Finish) {
        let fault = job.data.lock().fault.take();
        if let Some(e) = fault {
            self.end_job(job, JobState::Failed, Some(e));
            return;
        }
        if finish == Finish::Cap {
            job.data.lock().flags |= FLAG_TRUNCATED;
            log::warn!(
                "engine: job {} was cut short (its max_new_tokens cap, or the ASR repetition guard): TRUNCATED",
                job.id
            );
        }
        self.end_job(job, JobState::Done, None);
    }

    fn end_job(&self, job: &Job, state: JobState, error: Option<Error>) {
        self.shared.end_job(job, state, error);
    }

    fn publish_stats(&self) {
        let resident = self.manager.resident();
        let mem = self.manager.memory_in_use();
        let mut s = self.shared.stats.lock();
        s.resident = resident;
        s.memory_in_use = mem;
    }

    /// On shutdown every job still queued or running ends as cancelled.
    fn shutdown(&mut self) {
        if let Some(mut b) = self.batch.take() {
            for s in std::mem::take(&mut b.seqs) {
                self.end_job(&s.job, JobState::Cancelled, None);
            }
        }
        let pending: Vec<Pending> = self.shared.queue.lock().entries.drain(..).collect();
        for p in pending {
            self.end_job(&p.job, JobState::Cancelled, None);
        }
    }
}
