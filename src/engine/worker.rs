//! The worker: the one thread that runs inference. Each turn of its loop asks the scheduler what
//! to admit, loads a model if needed, prefills the admitted sequences, and advances the running
//! batch by one step; results are published to the jobs as they appear.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use super::job::{FLAG_TRUNCATED, Job, JobState};
use super::manager::ModelManager;
use super::scheduler::{Decision, Policy, QueuedJob, Running, SchedInput, decide};
use super::timings::{Stage, timed};
use crate::error::{Error, Result};
use crate::seams::request::{AsrRequest, TtsRequest};
use crate::seams::{AsrPrefill, AudioStream, Finish, ModelKind, TtsPrefill};

/// A post-processing stage of one job's stream, with the stage it is timed as.
pub(crate) struct PostStream {
    pub stage: Stage,
    pub stream: Box<dyn AudioStream>,
}

pub(crate) enum Request {
    Tts(TtsRequest),
    Asr(AsrRequest),
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
}

struct Batch {
    kind: ModelKind,
    seqs: Vec<Seq>,
    free_slots: Vec<usize>,
}

impl Batch {
    fn new(kind: ModelKind, slots: usize) -> Batch {
        Batch { kind, seqs: Vec::new(), free_slots: (0..slots).rev().collect() }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `chain` over `input`, timing each stage into the job. `flush` ends the streams.
fn run_post(job: &Job, chain: &mut [PostStream], mut audio: Vec<f32>, flush: bool) -> Vec<f32> {
    for p in chain.iter_mut() {
        let (out, d) = timed(|| {
            let mut out = Vec::with_capacity(audio.len() * 2);
            p.stream.process(&audio, &mut out);
            if flush {
                p.stream.finish(&mut out);
            }
            out
        });
        let total_ms = {
            let mut data = job.data.lock();
            data.timings.add(p.stage, d);
            match p.stage {
                Stage::Denoise => data.timings.denoise_ms,
                _ => data.timings.upsample_ms,
            }
        };
        if flush {
            log::info!("pipeline: job {} {} stage done in {:.2} ms", job.id, p.stage.name(), total_ms);
        }
        audio = out;
    }
    audio
}

/// One job's audio through its post chain, as part of a batch.
struct PostItem<'a> {
    job: &'a Job,
    chain: &'a mut [PostStream],
    audio: Vec<f32>,
    flush: bool,
}

/// Runs several jobs' post chains as one batch: in parallel on the post pool (one task per job),
/// each job's streams in order. Returns each job's output, in order.
fn run_posts(pool: Option<&rayon::ThreadPool>, items: Vec<PostItem<'_>>) -> Vec<Vec<f32>> {
    use rayon::prelude::*;
    let run = |it: PostItem<'_>| run_post(it.job, it.chain, it.audio, it.flush);
    match pool {
        Some(pool) if items.len() > 1 => pool.install(|| items.into_par_iter().map(run).collect()),
        _ => items.into_iter().map(run).collect(),
    }
}

fn append_audio(job: &Job, audio: &[f32]) {
    if !audio.is_empty() {
        job.data.lock().audio.extend_from_slice(audio);
    }
}

/// Averages interleaved channels to mono.
fn downmix(audio: &[f32], channels: u32) -> Vec<f32> {
    if channels <= 1 {
        return audio.to_vec();
    }
    let c = channels as usize;
    audio.chunks_exact(c).map(|f| f.iter().sum::<f32>() / c as f32).collect()
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
}

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
        Worker { shared, post_pool, manager, batch: None, last_served: None, in_flight: Vec::new() }
    }

    pub fn run(mut self) {
        let _mark = crate::logging::enter(self.shared.log_id);
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
            }));
            if let Err(panic) = turn {
                self.recover(panic);
            }
        }
        self.shutdown();
    }

    fn recover(&mut self, panic: Box<dyn std::any::Any + Send>) {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        log::error!("engine: internal error (panic) during inference: {what}");
        let err = Error::internal(format!("internal error during inference: {what}"));
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
                log::error!("engine: cannot load the {} model: {}", kind.name(), e.message);
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
        let cfg = &self.shared.config;
        let cap = if requested > 0 {
            requested
        } else if cfg.default_max_new_tokens > 0 {
            cfg.default_max_new_tokens
        } else {
            automatic()
        };
        cap.clamp(1, cfg.hard_max_new_tokens)
    }

    fn prefill_tts(&mut self, jobs: Vec<Pending>) {
        let slots = self.take_slots(jobs.len());
        let models = self.manager.tts.clone();
        let mut guard = models.lock();
        let m = guard.as_mut().expect("the TTS model is resident after ensure");
        let sample_rate_native = m.codec.sample_rate();
        let mut caps = Vec::with_capacity(jobs.len());
        for p in &jobs {
            let Request::Tts(r) = &p.request else { unreachable!("TTS batch holds TTS jobs") };
            caps.push(self.effective_cap(r.max_new_tokens, || m.generator.auto_max_new_tokens(r)));
        }
        let (results, d) = timed(|| {
            let seqs: Vec<TtsPrefill<'_>> = jobs
                .iter()
                .zip(&slots)
                .zip(&caps)
                .map(|((p, &slot), &cap)| {
                    let Request::Tts(r) = &p.request else { unreachable!() };
                    TtsPrefill { slot, request: r, max_new_tokens: cap }
                })
                .collect();
            m.generator.prefill(&seqs)
        });
        drop(guard);
        log::info!("pipeline: tts prefill done in {:.1} ms (batch {})", ms(d), jobs.len());
        for (((p, slot), cap), res) in jobs.into_iter().zip(slots).zip(caps).zip(results) {
            let Request::Tts(r) = &p.request else { unreachable!() };
            {
                let mut dd = p.job.data.lock();
                dd.timings.add(Stage::Tts, d);
                dd.max_new_tokens = cap;
                dd.sample_rate = if r.sample_rate == 0 { sample_rate_native } else { r.sample_rate };
            }
            match res {
                Ok(()) => self.batch.as_mut().unwrap().seqs.push(Seq {
                    job: p.job,
                    slot,
                    post: p.post,
                    stream: r.stream,
                    frames: Vec::new(),
                    decoded: 0,
                }),
                Err(e) => {
                    if let Some(m) = self.manager.tts.lock().as_mut() {
                        m.generator.release(slot);
                    }
                    self.batch.as_mut().unwrap().free_slots.push(slot);
                    self.end_job(&p.job, JobState::Failed, Some(e));
                }
            }
        }
    }

    fn prefill_asr(&mut self, jobs: Vec<Pending>) {
        let slots = self.take_slots(jobs.len());
        let models = self.manager.asr.clone();
        let mut guard = models.lock();
        let m = guard.as_mut().expect("the ASR model is resident after ensure");
        // Front-end input: mono at the model's rate, through the job's resample/denoise chain.
        let mut jobs = jobs;
        // All admitted clips through their input chains as one batch.
        let items: Vec<PostItem<'_>> = jobs
            .iter_mut()
            .map(|p| {
                let Request::Asr(r) = &p.request else { unreachable!("ASR batch holds ASR jobs") };
                let audio = downmix(&r.audio, r.channels);
                PostItem { job: &p.job, chain: &mut p.post, audio, flush: true }
            })
            .collect();
        let clips = run_posts(self.post_pool.as_ref(), items);
        let clip_refs: Vec<&[f32]> = clips.iter().map(|c| c.as_slice()).collect();
        let (features, d_front) = timed(|| m.frontend(&clip_refs));
        let features = match features {
            Ok(f) if f.len() == jobs.len() => f,
            other => {
                let e = other
                    .err()
                    .unwrap_or_else(|| Error::internal("the ASR front-end returned the wrong number of feature sets"));
                drop(guard);
                self.fail_admitted(jobs, slots, e);
                return;
            }
        };
        let mut caps = Vec::with_capacity(jobs.len());
        for (p, c) in jobs.iter().zip(&clips) {
            let Request::Asr(r) = &p.request else { unreachable!() };
            let seconds = c.len() as f64 / m.sample_rate() as f64;
            caps.push(self.effective_cap(r.max_new_tokens, || m.auto_max_new_tokens(seconds)));
        }
        let (results, d_enc) = timed(|| {
            let seqs: Vec<AsrPrefill<'_>> = jobs
                .iter()
                .zip(&slots)
                .zip(&caps)
                .zip(&features)
                .map(|(((p, &slot), &cap), f)| {
                    let Request::Asr(r) = &p.request else { unreachable!() };
                    AsrPrefill { slot, features: f, request: r, max_new_tokens: cap }
                })
                .collect();
            m.prefill(&seqs)
        });
        drop(guard);
        for (((p, slot), cap), res) in jobs.into_iter().zip(slots).zip(caps).zip(results) {
            {
                let mut dd = p.job.data.lock();
                dd.timings.add(Stage::AsrFrontend, d_front);
                dd.timings.add(Stage::AsrEncode, d_enc);
                dd.max_new_tokens = cap;
            }
            match res {
                Ok(()) => self.batch.as_mut().unwrap().seqs.push(Seq {
                    job: p.job,
                    slot,
                    post: Vec::new(),
                    stream: false,
                    frames: Vec::new(),
                    decoded: 0,
                }),
                Err(e) => {
                    if let Some(m) = self.manager.asr.lock().as_mut() {
                        m.release(slot);
                    }
                    self.batch.as_mut().unwrap().free_slots.push(slot);
                    self.end_job(&p.job, JobState::Failed, Some(e));
                }
            }
        }
        log::info!("pipeline: asr front-end {:.1} ms, encode {:.1} ms (batch {})", ms(d_front), ms(d_enc), clips.len());
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
        let (cancelled, active): (Vec<Seq>, Vec<Seq>) = batch.seqs.drain(..).partition(|s| s.job.cancel_requested());
        batch.seqs = active;
        for s in cancelled {
            self.release_slot(batch.kind, &mut batch, s.slot);
            self.end_job(&s.job, JobState::Cancelled, None);
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

    fn step_tts(&mut self, batch: &mut Batch) -> Result<()> {
        let models = self.manager.tts.clone();
        let mut guard = models.lock();
        let m = guard.as_mut().ok_or_else(|| Error::internal("TTS model unloaded during a batch"))?;
        let slots: Vec<usize> = batch.seqs.iter().map(|s| s.slot).collect();
        let (outs, d) = timed(|| m.generator.step(&slots));
        let outs = outs?;
        if outs.len() != slots.len() {
            return Err(Error::internal(format!("TTS step returned {} results for {} slots", outs.len(), slots.len())));
        }
        log::trace!("pipeline: tts step done in {:.2} ms (batch {})", ms(d), slots.len());
        let mut finished = Vec::new();
        for (i, (s, out)) in batch.seqs.iter_mut().zip(outs).enumerate() {
            let mut dd = s.job.data.lock();
            dd.timings.add(Stage::Tts, d);
            if let Some(f) = out.frame {
                s.frames.push(f);
                dd.timings.tokens += 1;
            }
            drop(dd);
            if let Some(f) = out.finish {
                finished.push((i, f));
            }
        }

        // Streaming sequences: decode their new frames now, batched.
        let streaming: Vec<usize> = (0..batch.seqs.len())
            .filter(|&i| batch.seqs[i].stream && batch.seqs[i].frames.len() > batch.seqs[i].decoded)
            .collect();
        if !streaming.is_empty() {
            let items: Vec<(usize, &[Vec<u32>])> = streaming
                .iter()
                .map(|&i| (batch.seqs[i].slot, &batch.seqs[i].frames[batch.seqs[i].decoded..]))
                .collect();
            let (audio, d) = timed(|| m.codec.decode_stream(&items));
            let audio = audio?;
            log::trace!("pipeline: codec stream step done in {:.2} ms (batch {})", ms(d), items.len());
            let mut chunks: Vec<Option<Vec<f32>>> = vec![None; batch.seqs.len()];
            for (&i, chunk) in streaming.iter().zip(audio) {
                let s = &mut batch.seqs[i];
                s.decoded = s.frames.len();
                s.job.data.lock().timings.add(Stage::Codec, d);
                chunks[i] = Some(chunk);
            }
            // Every streaming job's new audio through its post chain, as one batch (`streaming`
            // is in seq order, as the items).
            let jobs: Vec<Arc<Job>> = streaming.iter().map(|&i| batch.seqs[i].job.clone()).collect();
            let items: Vec<PostItem<'_>> = batch
                .seqs
                .iter_mut()
                .zip(chunks)
                .filter_map(|(s, c)| c.map(|audio| PostItem { job: &s.job, chain: &mut s.post, audio, flush: false }))
                .collect();
            for (job, out) in jobs.iter().zip(run_posts(self.post_pool.as_ref(), items)) {
                append_audio(job, &out);
            }
        }

        // Finished sequences: decode whole utterances (non-streaming), flush, publish.
        if !finished.is_empty() {
            let offline: Vec<usize> = finished.iter().map(|&(i, _)| i).filter(|&i| !batch.seqs[i].stream).collect();
            let mut decoded: Vec<Option<Vec<f32>>> = vec![None; batch.seqs.len()];
            if !offline.is_empty() {
                let utts: Vec<&[Vec<u32>]> = offline.iter().map(|&i| batch.seqs[i].frames.as_slice()).collect();
                let (audio, d) = timed(|| m.codec.decode(&utts));
                let audio = audio?;
                log::info!("pipeline: codec stage done in {:.1} ms (batch {})", ms(d), utts.len());
                for (&i, a) in offline.iter().zip(audio) {
                    batch.seqs[i].job.data.lock().timings.add(Stage::Codec, d);
                    decoded[i] = Some(a);
                }
            }
            for &(i, _) in &finished {
                m.generator.release(batch.seqs[i].slot);
                m.codec.end_stream(batch.seqs[i].slot);
            }
            drop(guard);
            let mut idx: Vec<usize> = finished.iter().map(|&(i, _)| i).collect();
            idx.sort_unstable_by(|a, b| b.cmp(a));
            let reasons: std::collections::HashMap<usize, Finish> = finished.into_iter().collect();
            let mut ended: Vec<(Seq, Finish, Vec<f32>)> = Vec::with_capacity(idx.len());
            for i in idx {
                let s = batch.seqs.remove(i);
                batch.free_slots.push(s.slot);
                let audio = decoded[i].take().unwrap_or_default();
                ended.push((s, reasons[&i], audio));
            }
            // The ended jobs' last audio through their post chains (flushed), as one batch.
            let items: Vec<PostItem<'_>> = ended
                .iter_mut()
                .map(|(s, _, audio)| PostItem {
                    job: &s.job,
                    chain: &mut s.post,
                    audio: std::mem::take(audio),
                    flush: true,
                })
                .collect();
            let outs = run_posts(self.post_pool.as_ref(), items);
            for ((s, finish, _), out) in ended.iter().zip(outs) {
                append_audio(&s.job, &out);
                self.complete(&s.job, *finish);
            }
        }
        Ok(())
    }

    fn step_asr(&mut self, batch: &mut Batch) -> Result<()> {
        let models = self.manager.asr.clone();
        let mut guard = models.lock();
        let m = guard.as_mut().ok_or_else(|| Error::internal("ASR model unloaded during a batch"))?;
        let slots: Vec<usize> = batch.seqs.iter().map(|s| s.slot).collect();
        let (outs, d) = timed(|| m.step(&slots));
        let outs = outs?;
        if outs.len() != slots.len() {
            return Err(Error::internal(format!("ASR step returned {} results for {} slots", outs.len(), slots.len())));
        }
        log::trace!("pipeline: asr decode step done in {:.2} ms (batch {})", ms(d), slots.len());
        let mut finished = Vec::new();
        for (i, (s, out)) in batch.seqs.iter().zip(outs).enumerate() {
            let mut dd = s.job.data.lock();
            dd.timings.add(Stage::AsrDecode, d);
            if out.token.is_some() {
                dd.timings.tokens += 1;
            }
            if let Some(f) = out.finish {
                finished.push((i, f));
            }
        }
        let mut results = Vec::new();
        for &(i, f) in finished.iter().rev() {
            let s = batch.seqs.remove(i);
            let t = m.transcript(s.slot);
            m.release(s.slot);
            batch.free_slots.push(s.slot);
            results.push((s, t, f));
        }
        drop(guard);
        for (s, t, f) in results {
            {
                let mut dd = s.job.data.lock();
                dd.text = t.text;
                dd.language = t.language;
            }
            self.complete(&s.job, f);
        }
        Ok(())
    }

    /// A sequence ended normally: Done, TRUNCATED if it hit its cap.
    fn complete(&self, job: &Job, finish: Finish) {
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
