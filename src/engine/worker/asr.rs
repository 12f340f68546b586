//! The ASR pipeline of the worker: input chains and the front-end at admission, encoder and
//! prompt prefill, decode steps, transcripts.

use super::post::{PostItem, downmix, run_posts};
use super::{Batch, Pending, Request, Seq, Worker, ms};
use crate::engine::job::JobState;
use crate::engine::timings::{Stage, timed};
use crate::error::{Error, Result};
use crate::seams::AsrPrefill;

impl Worker {
    pub(super) fn prefill_asr(&mut self, jobs: Vec<Pending>) {
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
                    context: None,
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

    pub(super) fn step_asr(&mut self, batch: &mut Batch) -> Result<()> {
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
}
