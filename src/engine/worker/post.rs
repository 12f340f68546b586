//! Post-processing in the worker: each job's chain of streams (denoise, resample), timed per
//! stage, and several jobs' chains run as one batch: the GPU streams of a stage in one launch per
//! kind, the CPU streams in parallel on the post pool.

use crate::dsp::device::{DeviceItem, process_batch};
use crate::engine::job::Job;
use crate::engine::timings::{Stage, timed};
use crate::error::{Error, ErrorKind};
use crate::seams::AudioStream;

/// A post-processing stage of one job's stream, with the stage it is timed as.
pub(crate) struct PostStream {
    pub stage: Stage,
    pub stream: Box<dyn AudioStream>,
}

/// Adds a stage's time to the job; at the end of the job, logs the stage's total.
fn account(job: &Job, stage: Stage, d: std::time::Duration, flush: bool) {
    let total_ms = {
        let mut data = job.data.lock();
        data.timings.add(stage, d);
        match stage {
            Stage::Denoise => data.timings.denoise_ms,
            _ => data.timings.upsample_ms,
        }
    };
    if flush {
        log::info!("pipeline: job {} {} stage done in {:.2} ms", job.id, stage.name(), total_ms);
    }
}

/// One job's audio through one stage on the CPU. `flush` ends the stream.
fn run_stage(job: &Job, p: &mut PostStream, audio: &[f32], flush: bool) -> Vec<f32> {
    let (out, d) = timed(|| {
        let mut out = Vec::with_capacity(audio.len() * 2);
        p.stream.process(audio, &mut out);
        if flush {
            p.stream.finish(&mut out);
        }
        out
    });
    account(job, p.stage, d, flush);
    out
}

/// One job's audio through its post chain, as part of a batch.
pub(super) struct PostItem<'a> {
    pub job: &'a Job,
    pub chain: &'a mut [PostStream],
    pub audio: Vec<f32>,
    pub flush: bool,
}

/// Runs several jobs' post chains as one batch, stage after stage: at each stage, the streams on a
/// GPU as one batch (one launch per kind: `dsp::device::process_batch`, timed as a whole for each
/// of its jobs), the CPU streams in parallel on the post pool (one task per job). Returns each
/// job's output, in order. A device failure is raised (`resume_unwind` with the error), as a
/// model's is: the worker fails the batch's jobs with its kind.
pub(super) fn run_posts(pool: Option<&rayon::ThreadPool>, mut items: Vec<PostItem<'_>>) -> Vec<Vec<f32>> {
    use rayon::prelude::*;
    let depth = items.iter().map(|it| it.chain.len()).max().unwrap_or(0);
    for stage in 0..depth {
        let on_device = |it: &mut PostItem<'_>| it.chain.get_mut(stage).is_some_and(|p| p.stream.on_device().is_some());
        // 1. The GPU streams of this stage.
        let gpu: Vec<usize> = (0..items.len()).filter(|&i| on_device(&mut items[i])).collect();
        if !gpu.is_empty() {
            let mut outs = vec![Vec::new(); gpu.len()];
            let (result, d) = timed(|| {
                let mut batch: Vec<DeviceItem<'_>> = items
                    .iter_mut()
                    .enumerate()
                    .filter(|(i, _)| gpu.contains(i))
                    .zip(outs.iter_mut())
                    .map(|((_, it), output)| DeviceItem {
                        stream: it.chain[stage].stream.on_device().expect("chosen as a GPU stream"),
                        input: &it.audio,
                        finish: it.flush,
                        output,
                    })
                    .collect();
                process_batch(&mut batch)
            });
            if let Err(e) = result {
                std::panic::resume_unwind(Box::new(e));
            }
            for (&i, out) in gpu.iter().zip(outs) {
                let it = &mut items[i];
                account(it.job, it.chain[stage].stage, d, it.flush);
                it.audio = out;
            }
        }
        // 2. The CPU streams of this stage.
        let run = |it: &mut PostItem<'_>| {
            if let Some(p) = it.chain.get_mut(stage)
                && p.stream.on_device().is_none()
            {
                it.audio = run_stage(it.job, p, &it.audio, it.flush);
            }
        };
        let cpu = items.len() - gpu.len();
        match pool {
            Some(pool) if cpu > 1 => pool.install(|| items.par_iter_mut().for_each(run)),
            _ => items.iter_mut().for_each(run),
        }
    }
    items.into_iter().map(|it| it.audio).collect()
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
    data.feed_ring();
}

/// Averages interleaved channels to mono.
pub(super) fn downmix(audio: &[f32], channels: u32) -> Vec<f32> {
    if channels <= 1 {
        return audio.to_vec();
    }
    let c = channels as usize;
    audio.chunks_exact(c).map(|f| f.iter().sum::<f32>() / c as f32).collect()
}
