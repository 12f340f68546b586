//! Post-processing in the worker: each job's chain of streams (denoise, resample), timed per
//! stage, and several jobs' chains run as one batch on the post pool.

use crate::engine::job::Job;
use crate::engine::timings::{Stage, timed};
use crate::error::{Error, ErrorKind};
use crate::seams::AudioStream;

/// A post-processing stage of one job's stream, with the stage it is timed as.
pub(crate) struct PostStream {
    pub stage: Stage,
    pub stream: Box<dyn AudioStream>,
}

/// Runs `chain` over `input`, timing each stage into the job. `flush` ends the streams.
pub(super) fn run_post(job: &Job, chain: &mut [PostStream], mut audio: Vec<f32>, flush: bool) -> Vec<f32> {
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
pub(super) struct PostItem<'a> {
    pub job: &'a Job,
    pub chain: &'a mut [PostStream],
    pub audio: Vec<f32>,
    pub flush: bool,
}

/// Runs several jobs' post chains as one batch: in parallel on the post pool (one task per job),
/// each job's streams in order. Returns each job's output, in order.
pub(super) fn run_posts(pool: Option<&rayon::ThreadPool>, items: Vec<PostItem<'_>>) -> Vec<Vec<f32>> {
    use rayon::prelude::*;
    let run = |it: PostItem<'_>| run_post(it.job, it.chain, it.audio, it.flush);
    match pool {
        Some(pool) if items.len() > 1 => pool.install(|| items.into_par_iter().map(run).collect()),
        _ => items.into_iter().map(run).collect(),
    }
}

/// Publishes a job's new samples. Audio that is not finite (a model with NaN weights, an
/// overflow) is never handed out: the job keeps what it had and fails when it ends.
pub(super) fn append_audio(job: &Job, audio: &[f32]) {
    if audio.is_empty() {
        return;
    }
    let mut data = job.data.lock();
    if data.fault.is_some() {
        return;
    }
    if let Some(i) = audio.iter().position(|v| !v.is_finite()) {
        let sample = data.dropped + (data.audio.len() + i) as u64;
        data.fault = Some(Error::new(
            ErrorKind::Inference,
            format!("the model produced non-finite audio (sample {sample} is {}); the job failed", audio[i]),
        ));
        drop(data);
        log::error!("engine: job {} produced non-finite audio at sample {sample}", job.id);
        return;
    }
    data.audio.extend_from_slice(audio);
}

/// Averages interleaved channels to mono.
pub(super) fn downmix(audio: &[f32], channels: u32) -> Vec<f32> {
    if channels <= 1 {
        return audio.to_vec();
    }
    let c = channels as usize;
    audio.chunks_exact(c).map(|f| f.iter().sum::<f32>() / c as f32).collect()
}
