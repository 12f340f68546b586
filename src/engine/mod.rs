//! The engine: jobs, the scheduler, the worker that owns inference, the model manager and the
//! stage timings. Fully usable from Rust; the C ABI (`crate::ffi`) only converts and validates.

pub mod config;
pub mod devices;
pub mod fetch;
pub mod job;
pub mod loader;
pub mod manager;
pub mod ring;
pub mod scheduler;
pub mod timings;
mod worker;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, ErrorKind, Result};
use crate::logging;
use crate::seams::request::{AsrRequest, TtsRequest, VoiceRequest};
use crate::seams::{AudioStream, LoadContext, ModelKind, ModelLoader, ModelSpec, PostDevice, Voice};
use config::EngineConfig;
use job::{FLAG_STREAMING, Job, JobId, JobInfo, JobState};
use manager::{Configured, ModelManager};
use ring::{AudioRing, RingReader};
use scheduler::Resident;
use timings::{Stage, Timings};
use worker::{Pending, PostStream, Request, Worker};

/// Engine-wide counters, as `vox_engine_stats` reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EngineStats {
    pub jobs_done: u64,
    pub jobs_failed: u64,
    pub jobs_cancelled: u64,
    /// Batches started (a running batch that admits more jobs stays one batch).
    pub batches: u64,
    pub model_loads: u64,
    pub model_load_ms: f64,
    /// Loads that first had to unload the other model.
    pub model_swaps: u64,
    pub model_swap_ms: f64,
    pub resident: Resident,
    pub queue_depth: u64,
    /// Jobs in the job table (not yet released).
    pub jobs_held: u64,
    pub memory_in_use: u64,
    pub memory_budget: u64,
    /// Bytes of audio the held jobs keep (results not yet read or released).
    pub audio_bytes: u64,
}

/// The device an engine runs inference on (`Engine::device`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `Cpu` or `Cuda(n)`, never `Auto`.
    pub device: crate::backend::Device,
    /// The GPU's name, or "CPU".
    pub name: String,
    /// The GPU's memory (0 on the CPU).
    pub memory_bytes: u64,
    /// The CUDA driver's version as `cuDriverGetVersion` reports it (0 on the CPU).
    pub driver_version: i32,
}

impl DeviceInfo {
    fn of(device: crate::backend::Device) -> Result<DeviceInfo> {
        use crate::backend::{Device, cuda};
        match device {
            Device::Cuda(n) => {
                let gpu = cuda::usable(n)?;
                let driver_version = match cuda::probe() {
                    cuda::DriverStatus::Ready { version, .. } => version,
                    _ => 0,
                };
                Ok(DeviceInfo { device, name: gpu.name, memory_bytes: gpu.memory_bytes as u64, driver_version })
            }
            _ => Ok(DeviceInfo { device: Device::Cpu, name: "CPU".into(), memory_bytes: 0, driver_version: 0 }),
        }
    }

    fn describe(&self) -> String {
        match self.device {
            crate::backend::Device::Cuda(n) => format!(
                "cuda:{n} ({}, {:.1} GiB, driver {})",
                self.name,
                self.memory_bytes as f64 / (1u64 << 30) as f64,
                self.driver_version
            ),
            _ => "the CPU".into(),
        }
    }
}

/// What `Engine::model_info` reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelInfo {
    pub sample_rate: u32,
    /// Lower case, sorted; the first is the default (empty: the model takes no speaker).
    pub speakers: Vec<String>,
    /// Lower case, "auto" first (empty: not listed).
    pub languages: Vec<String>,
    /// TTS Base checkpoints: requests need a cloned voice (`create_voice`).
    pub clones_voices: bool,
}

pub(crate) struct QueueState {
    pub entries: VecDeque<Pending>,
    pub shutdown: bool,
}

/// Job ids are unique in the process, not only per engine: an id kept from a destroyed engine
/// never names a job of a later one.
static NEXT_JOB_ID: AtomicU64 = AtomicU64::new(1);

/// State shared by the host-facing calls and the worker. Lock order: queue → jobs → a job's data
/// → stats; no lock is held while logging (the host's callback may call back into the engine).
pub(crate) struct Shared {
    pub config: EngineConfig,
    /// Where inference runs (resolved at create).
    pub device: DeviceInfo,
    pub queue: Mutex<QueueState>,
    pub wake: Condvar,
    pub jobs: Mutex<HashMap<JobId, Arc<Job>>>,
    pub stats: Mutex<EngineStats>,
    pub log_id: u64,
    /// Raised by `Drop`: the worker's loads and steps stop at their next check (`seams::stop`).
    pub stop: Arc<AtomicBool>,
    /// Jobs with an open audio ring, which the worker tops up (taken alone, or after `queue`).
    pub rings: Mutex<Vec<std::sync::Weak<Job>>>,
}

impl Shared {
    /// Ends a job exactly once, counting it and logging its timings.
    pub fn end_job(&self, job: &Job, state: JobState, error: Option<Error>) {
        // Work stopped by the engine's destroy ends its jobs as cancelled, not failed.
        let (state, error) = match error {
            Some(e) if e.kind == ErrorKind::ShuttingDown => (JobState::Cancelled, None),
            other => (state, other),
        };
        let msg = error.as_ref().map(|e| e.message.clone());
        let count = || {
            let mut s = self.stats.lock();
            match state {
                JobState::Done => s.jobs_done += 1,
                JobState::Failed => s.jobs_failed += 1,
                _ => s.jobs_cancelled += 1,
            }
        };
        if !job.finish(state, error, count) {
            return;
        }
        let t = job.timings();
        let kind = job.kind.name();
        match state {
            JobState::Failed => log::warn!("engine: {kind} job {} failed: {}", job.id, msg.unwrap_or_default()),
            JobState::Cancelled => log::info!("engine: {kind} job {} cancelled after {:.1} ms", job.id, t.total_ms),
            _ => log::info!(
                "pipeline: {kind} job {} done in {:.1} ms: queue {:.1}, load {:.1}, tts {:.1}, codec {:.1}, denoise {:.1}, \
                 upsample {:.1}, asr front-end {:.1}, encode {:.1}, decode {:.1} ms; {} tokens (batch {})",
                job.id,
                t.total_ms,
                t.queue_ms,
                t.model_load_ms,
                t.tts_ms,
                t.codec_ms,
                t.denoise_ms,
                t.upsample_ms,
                t.asr_frontend_ms,
                t.asr_encode_ms,
                t.asr_decode_ms,
                t.tokens,
                t.batch_size
            ),
        }
    }
}

/// A speech engine: submit jobs, poll them, read their results, release them.
///
/// Every method takes `&self` and may be called from any thread at the same time. `poll`,
/// `read_audio`, `text`, `timings` and `stats` take only short internal locks and never wait for
/// inference or for a model. Dropping the engine cancels what is left and joins the worker.
pub struct Engine {
    shared: Arc<Shared>,
    loader: Arc<dyn ModelLoader>,
    tts: Option<ModelSpec>,
    asr: Option<ModelSpec>,
    worker: Option<JoinHandle<()>>,
    /// The GPU the post-processing streams run on when the engine runs on one (opened for the
    /// first job that needs one).
    post_device: parking_lot::Mutex<Option<PostDevice>>,
    _log: Option<logging::SinkGuard>,
}

impl Engine {
    /// Creates an engine that loads the official checkpoint folders named in `config`.
    pub fn new(config: EngineConfig) -> Result<Engine> {
        Engine::with_loader(config, Arc::new(loader::CheckpointLoader))
    }

    /// Creates an engine whose models come from `loader`.
    pub fn with_loader(config: EngineConfig, loader: Arc<dyn ModelLoader>) -> Result<Engine> {
        config.validate()?;
        let log_guard = config.log_sink.clone().map(|sink| logging::register(config.log_level, sink));
        let log_id = log_guard.as_ref().map_or(0, |g| g.id());
        let _mark = logging::enter(log_id);

        let device = crate::backend::resolve(config.device)?;
        if config.quantization != crate::backend::Quantization::None && device != crate::backend::Device::Cpu {
            return Err(Error::invalid(format!(
                "quantization {} runs on the CPU only, and the engine resolved its device to {device:?} \
                 (set the device to the CPU, or the quantization to none)",
                config.quantization.name()
            )));
        }
        let ctx = LoadContext {
            device,
            cpu_threads: config.effective_cpu_threads(),
            max_slots: config.max_batch,
            quantization: config.quantization,
        };
        let inspect = |kind: ModelKind, dir: &Option<std::path::PathBuf>| -> Result<Option<Configured>> {
            let Some(dir) = dir else { return Ok(None) };
            let dir = loader.locate(kind, dir)?;
            let spec = loader.inspect(kind, &dir, &ctx)?;
            Ok(Some(Configured { dir, spec }))
        };
        let tts_cfg = inspect(ModelKind::Tts, &config.tts_model_dir)?;
        let asr_cfg = inspect(ModelKind::Asr, &config.asr_model_dir)?;
        // The configured budget is for the memory the weights live in: host memory on the CPU,
        // device memory on a GPU (whose automatic size the CUDA backend will report).
        let configured = |auto: u64| if config.memory_budget > 0 { config.memory_budget } else { auto };
        let device_info = DeviceInfo::of(device)?;
        let budget = match device {
            crate::backend::Device::Cpu => manager::Budget { host: configured(manager::auto_budget()), device: 0 },
            // A GPU: 90 % of its memory by default (the rest for the driver, scratch and caches).
            _ => {
                manager::Budget { host: manager::auto_budget(), device: configured(device_info.memory_bytes / 10 * 9) }
            }
        };
        let (tts, asr) = (tts_cfg.as_ref().map(|c| c.spec.clone()), asr_cfg.as_ref().map(|c| c.spec.clone()));
        let mut manager = ModelManager::new(loader.clone(), ctx, budget, tts_cfg, asr_cfg)?;
        // Models asked for at create load now, on this thread (the worker does not run yet).
        let mut stats = EngineStats { memory_budget: budget.host.max(budget.device), ..Default::default() };
        if config.preload_tts && config.preload_asr && !manager.both_fit() {
            // Loading the second would unload the first: a wasted load the host did not ask for.
            return Err(Error::new(
                ErrorKind::OutOfMemory,
                "preload asks for both models, but they do not fit in the memory budget together; \
                 preload one (the other loads on its first job, swapping the first out)",
            ));
        }
        for (kind, wanted) in [(ModelKind::Tts, config.preload_tts), (ModelKind::Asr, config.preload_asr)] {
            if !wanted {
                continue;
            }
            if !manager.configured_kind(kind) {
                return Err(Engine::not_configured(kind));
            }
            if let Some(ev) = manager.ensure(kind)? {
                stats.model_loads += 1;
                stats.model_load_ms += ev.duration.as_secs_f64() * 1e3;
                if ev.swapped {
                    stats.model_swaps += 1;
                    stats.model_swap_ms += ev.duration.as_secs_f64() * 1e3;
                }
            }
        }
        stats.resident = manager.resident();
        stats.memory_in_use = manager.memory_in_use();

        log::info!("engine: inference on {}", device_info.describe());
        let shared = Arc::new(Shared {
            device: device_info,
            config,
            queue: Mutex::new(QueueState { entries: VecDeque::new(), shutdown: false }),
            wake: Condvar::new(),
            jobs: Mutex::new(HashMap::new()),
            stats: Mutex::new(stats),
            log_id,
            stop: Arc::new(AtomicBool::new(false)),
            rings: Mutex::new(Vec::new()),
        });
        let w = Worker::new(shared.clone(), manager);
        let worker = std::thread::Builder::new()
            .name("voxkit-worker".into())
            .spawn(move || w.run())
            .map_err(|e| Error::internal(format!("cannot start the worker thread: {e}")))?;
        log::info!(
            "engine: created (device {:?}, tts {}, asr {}, budget {:?} bytes, max batch {})",
            device,
            if tts.is_some() { "configured" } else { "none" },
            if asr.is_some() { "configured" } else { "none" },
            budget,
            shared.config.max_batch
        );
        Ok(Engine {
            shared,
            loader,
            tts,
            asr,
            worker: Some(worker),
            post_device: parking_lot::Mutex::new(None),
            _log: log_guard,
        })
    }

    /// What a configured model offers: its output (TTS) or input (ASR) rate, and the speakers
    /// and languages a TTS request may name. Known from create on; no load needed.
    pub fn model_info(&self, kind: ModelKind) -> Result<ModelInfo> {
        let spec = match kind {
            ModelKind::Tts => self.tts.as_ref(),
            ModelKind::Asr => self.asr.as_ref(),
        }
        .ok_or_else(|| Engine::not_configured(kind))?;
        Ok(ModelInfo {
            sample_rate: spec.sample_rate,
            speakers: spec.speakers.clone(),
            languages: spec.languages.clone(),
            clones_voices: spec.voice.is_some(),
        })
    }

    fn mark(&self) -> logging::ThreadMark {
        logging::enter(self.shared.log_id)
    }

    fn job(&self, id: JobId) -> Result<Arc<Job>> {
        self.shared.jobs.lock().get(&id).cloned().ok_or_else(|| Error::unknown_job(id))
    }

    fn not_configured(kind: ModelKind) -> Error {
        let field = match kind {
            ModelKind::Tts => "tts_model_dir",
            ModelKind::Asr => "asr_model_dir",
        };
        Error::new(
            ErrorKind::ModelNotLoaded,
            format!("no {} model is configured in this engine ({field} was not set)", kind.name()),
        )
    }

    /// Submits a text-to-speech job; returns its id at once.
    pub fn submit_tts(&self, mut request: TtsRequest) -> Result<JobId> {
        let _m = self.mark();
        request.validate()?;
        let spec = self.tts.as_ref().ok_or_else(|| Engine::not_configured(ModelKind::Tts))?;
        // A Base model needs a voice made for it; the others take none.
        match (&spec.voice, &request.voice) {
            (Some(vs), Some(v)) => vs.check(v)?,
            (Some(_), None) => {
                return Err(Error::invalid(
                    "this Base checkpoint clones voices: the request needs a voice made from reference audio",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "only Base checkpoints take a cloned voice; this model has built-in speakers or a voice description",
                ));
            }
            (None, None) => {}
        }
        if spec.voice.is_some() && request.instruct.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(Error::invalid("Base checkpoints take no instruction (the voice comes from the reference)"));
        }
        // Speaker and language are known since create: a bad one fails here, not in the job.
        if let Some(first) = spec.speakers.first() {
            match request.speaker.as_deref() {
                None => request.speaker = Some(first.clone()),
                Some(s) if !spec.speakers.contains(&s.to_lowercase()) => {
                    return Err(Error::invalid(format!(
                        "speaker `{s}` is not one of this model's: {}",
                        spec.speakers.join(", ")
                    )));
                }
                Some(_) => {}
            }
        }
        if let Some(l) = request.language.as_deref()
            && !spec.languages.is_empty()
            && !spec.languages.contains(&l.to_lowercase())
        {
            return Err(Error::invalid(format!(
                "language `{l}` is not one of this model's: {}",
                spec.languages.join(", ")
            )));
        }
        let mut post = Vec::new();
        let on = if request.denoise.is_some() || (request.sample_rate != 0 && request.sample_rate != spec.sample_rate) {
            self.post_device()?
        } else {
            None
        };
        if let Some(strength) = request.denoise {
            let stream = self.loader.denoiser(spec.sample_rate, strength, on.as_ref())?;
            post.push(PostStream { stage: Stage::Denoise, stream });
        }
        if request.sample_rate != 0 && request.sample_rate != spec.sample_rate {
            let stream = self.loader.resampler(spec.sample_rate, request.sample_rate, on.as_ref())?;
            post.push(PostStream { stage: Stage::Upsample, stream });
        }
        let flags = if request.stream { FLAG_STREAMING } else { 0 };
        let priority = request.priority;
        self.enqueue(ModelKind::Tts, flags, Request::Tts(request), priority, post)
    }

    /// Makes a cloned voice from reference audio with the Base TTS model (loading it if needed):
    /// the reference is mixed to mono, denoised if asked, resampled to the encoders' rate here on
    /// the caller's thread, then encoded by the worker between two steps of the running batch —
    /// at once while no batch runs, a TTS batch runs or both models fit in memory; while an ASR
    /// batch runs that a model swap would have to wait for, when the scheduler serves TTS. Blocks
    /// until the voice is made, or fails with `Timeout` after `timeout` (the work is then
    /// cancelled).
    pub fn create_voice(&self, request: VoiceRequest, timeout: Option<Duration>) -> Result<Voice> {
        let _m = self.mark();
        request.validate()?;
        let spec = self.tts.as_ref().ok_or_else(|| Engine::not_configured(ModelKind::Tts))?;
        let rate = spec.voice.map(|v| v.rate).ok_or_else(|| {
            Error::invalid("the TTS model is not a Base checkpoint: it has no encoders to clone a voice with")
        })?;
        // 1. Mono, denoised, at the encoders' rate (the CPU streams: one short clip).
        let channels = request.channels as usize;
        let mut audio: Vec<f32> =
            request.audio.chunks_exact(channels).map(|f| f.iter().sum::<f32>() / channels as f32).collect();
        let mut stages: Vec<Box<dyn AudioStream>> = Vec::new();
        if let Some(strength) = request.denoise {
            stages.push(self.loader.denoiser(request.sample_rate, strength, None)?);
        }
        if request.sample_rate != rate {
            stages.push(self.loader.resampler(request.sample_rate, rate, None)?);
        }
        for mut stage in stages {
            let mut out = Vec::with_capacity(audio.len());
            stage.process(&audio, &mut out);
            stage.finish(&mut out);
            audio = out;
        }
        // 2. The encoders, on the worker (they need the model).
        let id =
            self.enqueue(ModelKind::Tts, 0, Request::Voice { audio, transcript: request.transcript }, 0, Vec::new())?;
        let info = self.wait(id, timeout);
        let job = self.job(id);
        let _ = self.release(id);
        let info = info.map_err(|e| match e.kind {
            ErrorKind::Timeout => Error::new(
                ErrorKind::Timeout,
                format!("the voice was not made within {:.1} s (cancelled)", timeout.unwrap_or_default().as_secs_f64()),
            ),
            _ => e,
        })?;
        match info.state {
            JobState::Done => job?
                .data
                .lock()
                .voice
                .take()
                .map(Arc::unwrap_or_clone)
                .ok_or_else(|| Error::internal("a voice job ended without its voice")),
            JobState::Cancelled if self.shared.queue.lock().shutdown => {
                Err(Error::new(ErrorKind::ShuttingDown, "the engine shut down before the voice was made"))
            }
            JobState::Cancelled => {
                Err(Error::invalid("the voice job was cancelled (vox_cancel or vox_release on its id)"))
            }
            _ => Err(info.error.unwrap_or_else(|| Error::internal("the voice job failed without an error"))),
        }
    }

    /// Submits a speech-recognition job; the audio is owned by the job from here on.
    pub fn submit_asr(&self, request: AsrRequest) -> Result<JobId> {
        let _m = self.mark();
        request.validate()?;
        let spec = self.asr.as_ref().ok_or_else(|| Engine::not_configured(ModelKind::Asr))?;
        let mut post = Vec::new();
        let on = if request.denoise.is_some() || request.sample_rate != spec.sample_rate {
            self.post_device()?
        } else {
            None
        };
        if request.sample_rate != spec.sample_rate {
            let stream = self.loader.resampler(request.sample_rate, spec.sample_rate, on.as_ref())?;
            post.push(PostStream { stage: Stage::Upsample, stream });
        }
        if let Some(strength) = request.denoise {
            let stream = self.loader.denoiser(spec.sample_rate, strength, on.as_ref())?;
            post.push(PostStream { stage: Stage::Denoise, stream });
        }
        let priority = request.priority;
        self.enqueue(ModelKind::Asr, 0, Request::Asr(request), priority, post)
    }

    fn enqueue(
        &self,
        kind: ModelKind,
        flags: u32,
        request: Request,
        priority: i32,
        post: Vec<PostStream>,
    ) -> Result<JobId> {
        let mut q = self.shared.queue.lock();
        if q.shutdown {
            return Err(Error::new(ErrorKind::ShuttingDown, "the engine is shutting down"));
        }
        let limit = self.shared.config.max_queued_jobs;
        if q.entries.len() >= limit {
            return Err(Error::new(ErrorKind::QueueFull, format!("the queue is full ({limit} jobs waiting)")));
        }
        let id = NEXT_JOB_ID.fetch_add(1, Ordering::Relaxed);
        let job = Arc::new(Job::new(id, kind, flags));
        self.shared.jobs.lock().insert(id, job.clone());
        q.entries.push_back(Pending { job, request, priority, post });
        drop(q);
        self.shared.wake.notify_one();
        log::debug!("engine: {} job {id} queued", kind.name());
        Ok(id)
    }

    /// A snapshot of the job. Never waits for inference.
    pub fn poll(&self, id: JobId) -> Result<JobInfo> {
        Ok(self.job(id)?.info())
    }

    /// Blocks until the job has ended (done, failed or cancelled) or `timeout` passes
    /// (`None` = no limit); `Timeout` when it has not ended in time.
    pub fn wait(&self, id: JobId, timeout: Option<Duration>) -> Result<JobInfo> {
        let job = self.job(id)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        {
            let mut d = job.data.lock();
            while !d.state.is_terminal() {
                match deadline {
                    Some(dl) => {
                        if job.ended.wait_until(&mut d, dl).timed_out() && !d.state.is_terminal() {
                            return Err(Error::new(
                                ErrorKind::Timeout,
                                format!("job {id} did not end within the timeout"),
                            ));
                        }
                    }
                    None => job.ended.wait(&mut d),
                }
            }
        }
        Ok(job.info())
    }

    /// Copies audio not read before into `dst`; returns the number of samples copied. Works while
    /// the job runs (streaming) and after it ended.
    pub fn read_audio(&self, id: JobId, dst: &mut [f32]) -> Result<usize> {
        self.job(id)?.read_audio(dst)
    }

    /// Opens a wait-free reader of a TTS job's audio with room for at least `capacity` samples
    /// (see `ring`). The job's audio goes only through the ring until the reader is closed; the
    /// samples already produced and unread are the first it gives. One ring per job.
    pub fn open_ring(&self, id: JobId, capacity: usize) -> Result<RingReader> {
        let job = self.job(id)?;
        if job.kind != ModelKind::Tts {
            return Err(Error::new(ErrorKind::InvalidArgument, format!("job {id} is not a TTS job: it has no audio")));
        }
        let ring = Arc::new(AudioRing::new(capacity)?);
        {
            let mut d = job.data.lock();
            if d.ring.is_some() {
                return Err(Error::new(ErrorKind::InvalidArgument, format!("job {id} already has an audio ring")));
            }
            d.ring = Some(ring.clone());
            d.feed_ring();
        }
        self.shared.rings.lock().push(Arc::downgrade(&job));
        // An idle worker sleeps until told: it now has samples to move as the reader drains.
        let _q = self.shared.queue.lock();
        self.shared.wake.notify_one();
        Ok(RingReader::new(ring, Arc::downgrade(&job)))
    }

    /// The transcript of an ASR job (empty for TTS jobs and until the job is done).
    pub fn text(&self, id: JobId) -> Result<String> {
        Ok(self.job(id)?.data.lock().text.clone())
    }

    /// The language of an ASR job's transcript (detected or forced; empty when none).
    pub fn language(&self, id: JobId) -> Result<String> {
        Ok(self.job(id)?.data.lock().language.clone())
    }

    pub fn timings(&self, id: JobId) -> Result<Timings> {
        Ok(self.job(id)?.timings())
    }

    /// Cancels a queued or running job (a running one stops before its next step). Cancelling a
    /// job that already ended changes nothing.
    pub fn cancel(&self, id: JobId) -> Result<()> {
        let _m = self.mark();
        let job = self.job(id)?;
        self.cancel_job(&job);
        Ok(())
    }

    fn cancel_job(&self, job: &Arc<Job>) {
        if job.data.lock().state.is_terminal() {
            return;
        }
        job.request_cancel();
        let removed = {
            let mut q = self.shared.queue.lock();
            q.entries.iter().position(|p| p.job.id == job.id).and_then(|i| q.entries.remove(i))
        };
        if removed.is_some() {
            self.shared.end_job(job, JobState::Cancelled, None);
        }
        self.shared.wake.notify_one();
    }

    /// Frees a job and its results; a job still queued or running is cancelled first. The id is
    /// unknown afterwards.
    pub fn release(&self, id: JobId) -> Result<()> {
        let _m = self.mark();
        let job = self.shared.jobs.lock().remove(&id).ok_or_else(|| Error::unknown_job(id))?;
        self.cancel_job(&job);
        Ok(())
    }

    /// Where this engine runs inference.
    pub fn device(&self) -> &DeviceInfo {
        &self.shared.device
    }

    /// Where a job's post-processing streams run: the engine's GPU, or the CPU (`None`).
    fn post_device(&self) -> Result<Option<PostDevice>> {
        let crate::backend::Device::Cuda(n) = self.shared.device.device else { return Ok(None) };
        let mut slot = self.post_device.lock();
        if slot.is_none() {
            *slot = Some(PostDevice::open(n)?);
        }
        Ok(slot.clone())
    }

    pub fn stats(&self) -> EngineStats {
        let queue_depth = self.shared.queue.lock().entries.len() as u64;
        let (jobs_held, audio_bytes) = {
            let jobs = self.shared.jobs.lock();
            (jobs.len() as u64, jobs.values().map(|j| j.audio_bytes()).sum())
        };
        let mut s = *self.shared.stats.lock();
        s.queue_depth = queue_depth;
        s.jobs_held = jobs_held;
        s.audio_bytes = audio_bytes;
        s
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _m = self.mark();
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.queue.lock().shutdown = true;
        self.shared.wake.notify_all();
        if let Some(w) = self.worker.take()
            && w.join().is_err()
        {
            log::error!("engine: the worker thread panicked");
        }
        log::info!("engine: destroyed");
    }
}
