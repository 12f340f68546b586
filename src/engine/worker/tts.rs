//! The TTS pipeline of the worker: admitting jobs into generator slots, stepping the frames,
//! streaming them through the codec and post chains, and finishing utterances.

use super::post::{PostItem, append_audio, run_posts};
use super::{Batch, Pending, Request, Seq, Worker, ms};
use std::sync::Arc;

use crate::engine::job::{Job, JobState};
use crate::engine::timings::{Stage, timed};
use crate::error::{Error, Result};
use crate::seams::{Finish, TtsPrefill};

impl Worker {
    pub(super) fn prefill_tts(&mut self, jobs: Vec<Pending>) {
        // Voice jobs run now, whole, and take no slot.
        let (voices, jobs): (Vec<Pending>, Vec<Pending>) =
            jobs.into_iter().partition(|p| matches!(p.request, Request::Voice { .. }));
        self.make_voices(voices);
        if jobs.is_empty() {
            return;
        }
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
            // A streaming in-context voice: the codec's stream decodes the reference first, so
            // that the generated frames continue it (as the official joint decode).
            let context = r.voice.clone().filter(|v| v.reference.is_some());
            let res = match (res, &context) {
                (Ok(()), Some(v)) if r.stream => self.prime_codec(&p.job, slot, v),
                (res, _) => res,
            };
            match res {
                Ok(()) => self.batch.as_mut().unwrap().seqs.push(Seq {
                    job: p.job,
                    slot,
                    post: p.post,
                    stream: r.stream,
                    frames: Vec::new(),
                    decoded: 0,
                    context,
                }),
                Err(e) => {
                    if let Some(m) = self.manager.tts.lock().as_mut() {
                        m.generator.release(slot);
                        m.codec.end_stream(slot);
                    }
                    self.batch.as_mut().unwrap().free_slots.push(slot);
                    self.end_job(&p.job, JobState::Failed, Some(e));
                }
            }
        }
    }

    /// Starts a slot's codec stream after an in-context voice's reference, skipped through it
    /// rather than decoded (`CodecDecoder::prime_stream`; timed as the job's codec stage).
    fn prime_codec(&self, job: &Arc<Job>, slot: usize, voice: &crate::seams::voice::Voice) -> Result<()> {
        let codes = voice.reference.as_ref().map_or(&[][..], |r| &r.codes[..]);
        let mut guard = self.manager.tts.lock();
        let m = guard.as_mut().ok_or_else(|| Error::internal("TTS model unloaded during a prefill"))?;
        let (res, d) = timed(|| m.codec.prime_stream(slot, codes));
        job.data.lock().timings.add(Stage::Codec, d);
        res
    }

    pub(super) fn step_tts(&mut self, batch: &mut Batch) -> Result<()> {
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
                // One utterance at a time (a failure is that job's alone). In-context voices
                // decode theirs as the continuation of the reference (the official joint decode,
                // the reference's samples cut off).
                let started = std::time::Instant::now();
                for &i in &offline {
                    let s = &batch.seqs[i];
                    let (audio, d) = timed(|| m.codec.decode_after(s.context(), &s.frames));
                    s.job.data.lock().timings.add(Stage::Codec, d);
                    match audio {
                        Ok(a) => decoded[i] = Some(a),
                        Err(e) => {
                            s.job.data.lock().fault.get_or_insert(e);
                        }
                    }
                }
                log::info!("pipeline: codec stage done in {:.1} ms (batch {})", ms(started.elapsed()), offline.len());
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
}
