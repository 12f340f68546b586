//! Voice jobs of the worker: reference audio through a Base checkpoint's encoders, whole, between
//! two steps of the running batch (they hold no slot).

use super::{Pending, Request, Worker, ms};
use crate::engine::job::JobState;
use crate::engine::timings::{Stage, timed};
use crate::error::Error;
use crate::seams::Finish;

impl Worker {
    pub(super) fn make_voices(&mut self, jobs: Vec<Pending>) {
        for p in jobs {
            let Request::Voice { audio, transcript } = &p.request else { unreachable!("voice jobs only") };
            let models = self.manager.tts.clone();
            let mut guard = models.lock();
            let made = match guard.as_mut().and_then(|m| m.voice.as_mut()) {
                Some(encoder) => {
                    let (made, d) = timed(|| encoder.encode(audio, transcript.as_deref()));
                    log::info!("pipeline: voice made in {:.1} ms ({} samples)", ms(d), audio.len());
                    p.job.data.lock().timings.add(Stage::Tts, d);
                    made
                }
                None => Err(Error::invalid("this TTS model cannot clone voices (it is not a Base checkpoint)")),
            };
            drop(guard);
            match made {
                Ok(v) => {
                    p.job.data.lock().voice = Some(std::sync::Arc::new(v));
                    self.complete(&p.job, Finish::Eos);
                }
                Err(e) => self.end_job(&p.job, JobState::Failed, Some(e)),
            }
        }
    }
}
