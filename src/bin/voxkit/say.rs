//! `say` (text to a WAV file through the engine) and `codes` (the generator's codec frames).

use std::io::Write;
use std::time::{Duration, Instant};

use voxkit::engine::job::FLAG_TRUNCATED;
use voxkit::engine::loader::CheckpointLoader;
use voxkit::models::tts_prompt::FRAME_RATE;
use voxkit::seams::request::{Sampling, TtsRequest};
use voxkit::seams::{LoadContext, TtsModel, TtsPrefill};
use voxkit::{JobInfo, JobState};

use crate::cli::{CodesArgs, SayArgs, Voice};
use crate::inout::{self, Output};
use crate::model_arg::{ModelArg, model_dir};
use crate::ui::Ui;
use crate::{Fail, wav};

impl Voice {
    fn request(&self, text: String) -> TtsRequest {
        TtsRequest {
            text,
            language: self.language.clone(),
            speaker: self.speaker.clone(),
            instruct: self.instruct.clone(),
            max_new_tokens: self.max_new_tokens,
            sampling: Sampling { greedy: self.greedy, seed: self.seed, ..Default::default() },
            text_streaming: self.text_streaming,
            ..Default::default()
        }
    }
}

/// The error of a job that did not end Done.
pub fn job_failed(info: JobInfo) -> Fail {
    match (info.state, info.error) {
        (_, Some(e)) => e.into(),
        (JobState::Cancelled, None) => "the job was cancelled".into(),
        (state, None) => format!("the job ended {state:?}").into(),
    }
}

pub fn say(a: &SayArgs, ui: &Ui) -> Result<(), Fail> {
    let text = inout::read_text(&a.voice.text)?;
    // Everything that can be checked without the model is, before it loads.
    let mut out = Output::prepare(&a.out)?;
    let dir = model_dir(&a.voice.model, ModelArg::Tts, ui)?;
    let mut req = a.voice.request(text);
    req.stream = a.stream;
    req.sample_rate = a.sample_rate.unwrap_or(0);
    req.denoise = a.denoise;
    let cfg = voxkit::EngineConfig { tts_model_dir: Some(dir), ..ui.engine_config(a.voice.threads) };
    let engine = voxkit::Engine::new(cfg)?;
    let t = Instant::now();
    req.voice = a.clone.voice(&engine, ui)?;
    // The request is checked at submit (speaker, language, ranges); the model loads in the job.
    let id = engine.submit_tts(req)?;
    let progress = ui.spinner("loading the TTS model");
    let mut audio = Vec::new();
    let mut first_audio = None;
    let mut buf = vec![0f32; 8192];
    let info = loop {
        let info = engine.poll(id)?;
        let n = engine.read_audio(id, &mut buf)?;
        if n > 0 && first_audio.is_none() {
            first_audio = Some(t.elapsed());
        }
        audio.extend_from_slice(&buf[..n]);
        if info.state.is_terminal() && n == 0 {
            break info;
        }
        if info.state == JobState::Running {
            progress.set_message(format!(
                "synthesizing: {:.1} s of audio ({} frames)",
                info.tokens as f32 / FRAME_RATE,
                info.tokens
            ));
        }
        if n == 0 {
            let _ = engine.wait(id, Some(Duration::from_millis(5)));
        }
    };
    progress.finish_and_clear();
    if info.state != JobState::Done {
        return Err(job_failed(info));
    }
    out.write_wav(&audio, info.sample_rate, 1, wav::Format::Float)?;
    let tm = engine.timings(id)?;
    let seconds = audio.len() as f64 / info.sample_rate.max(1) as f64;
    let truncated = info.flags & FLAG_TRUNCATED != 0;
    ui.note(format_args!(
        "wrote {seconds:.2} s of audio at {} Hz to {} in {:.1} s{}",
        info.sample_rate,
        out.name(),
        t.elapsed().as_secs_f64(),
        if truncated { " (TRUNCATED: the speech reached its --max-new-tokens cap)" } else { "" }
    ));
    ui.detail(format_args!(
        "{} frames; load {:.0} ms, tts {:.0} ms, codec {:.0} ms, denoise {:.0} ms, upsample {:.0} ms, total {:.0} ms; real-time factor {:.2}{}",
        tm.tokens,
        tm.model_load_ms,
        tm.tts_ms,
        tm.codec_ms,
        tm.denoise_ms,
        tm.upsample_ms,
        tm.total_ms,
        (tm.total_ms - tm.model_load_ms) / 1e3 / seconds.max(1e-9),
        first_audio.map(|d| format!("; first audio after {:.0} ms", d.as_secs_f64() * 1e3)).unwrap_or_default()
    ));
    Ok(())
}

/// The CLI's own models: the chosen device, one slot (the engine's loader builds them the same way).
pub fn load_context(threads: crate::cli::Threads) -> voxkit::Result<LoadContext> {
    Ok(LoadContext {
        device: voxkit::backend::resolve(threads.device)?,
        cpu_threads: threads.count(),
        max_slots: 1,
        quantization: threads.quant,
    })
}

/// `load_timed` for a TTS generator with `slots` sequence slots (batched benchmarks).
pub fn load_generator_slots(
    model: &str,
    threads: crate::cli::Threads,
    slots: usize,
    ui: &Ui,
) -> Result<voxkit::models::tts::Qwen3Tts, Fail> {
    load_timed(model, ModelArg::Tts, threads, ui, |dir, cx, ctx| {
        CheckpointLoader::tts_generator(dir, cx, &LoadContext { max_slots: slots, ..*ctx })
    })
}

/// Loads a model straight from the folder `model` names, with a spinner and a "loaded" line.
pub fn load_timed<T>(
    model: &str,
    kind: ModelArg,
    threads: crate::cli::Threads,
    ui: &Ui,
    load: impl FnOnce(&std::path::Path, &voxkit::backend::Compute, &LoadContext) -> voxkit::Result<T>,
) -> Result<T, Fail> {
    let dir = model_dir(model, kind, ui)?;
    let ctx = load_context(threads)?;
    let threads = threads.count();
    let progress = ui.spinner(format!("loading {}", dir.display()));
    let t = Instant::now();
    let model = CheckpointLoader::compute(&ctx).and_then(|cx| load(&dir, &cx, &ctx));
    progress.finish_and_clear();
    let model = model?;
    let on = match ctx.device {
        voxkit::backend::Device::Cuda(n) => format!("cuda:{n}"),
        _ => format!("{threads} CPU threads"),
    };
    ui.note(format_args!("loaded {} in {:.2} s ({on})", dir.display(), t.elapsed().as_secs_f64()));
    Ok(model)
}

/// Loads a TTS generator (talker and code predictor) straight from its folder.
pub fn load_generator(
    model: &str,
    threads: crate::cli::Threads,
    ui: &Ui,
) -> Result<voxkit::models::tts::Qwen3Tts, Fail> {
    load_timed(model, ModelArg::Tts, threads, ui, CheckpointLoader::tts_generator)
}

pub fn codes(a: &CodesArgs, ui: &Ui) -> Result<(), Fail> {
    let v = &a.voice;
    let text = inout::read_text(&v.text)?;
    let mut model = load_generator(&v.model, v.threads, ui)?;
    let mut req = v.request(text);
    if req.speaker.is_none() {
        req.speaker = model.config.speakers().first().cloned();
    }
    req.validate()?;
    let cap = voxkit::EngineConfig::default().effective_cap(req.max_new_tokens, || model.auto_max_new_tokens(&req));
    let progress = ui.spinner("generating");
    let t = Instant::now();
    model.prefill(&[TtsPrefill { slot: 0, request: &req, max_new_tokens: cap }]).remove(0)?;
    let prefill = t.elapsed();
    let mut frames = 0;
    let mut out = std::io::stdout().lock();
    let finish = loop {
        let step = model.step(&[0])?.remove(0);
        if let Some(f) = step.frame {
            frames += 1;
            progress.set_message(format!("generating: {frames} frames"));
            let line = f.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" ");
            if writeln!(out, "{line}").is_err() {
                return Ok(()); // the reader went away (e.g. `| head`)
            }
        }
        if let Some(f) = step.finish {
            break f;
        }
    };
    progress.finish_and_clear();
    let tm = model.times;
    let per = |d: Duration| d.as_secs_f64() * 1e3 / tm.steps.max(1) as f64;
    ui.note(format_args!("{frames} frames ({:.2} s of audio), stop: {finish:?}", frames as f32 / FRAME_RATE));
    ui.detail(format_args!(
        "prefill {:.1} ms; per frame {:.1} ms (talker {:.1}, code predictor {:.1}); real-time factor {:.2}",
        prefill.as_secs_f64() * 1e3,
        per(tm.talker + tm.predictor),
        per(tm.talker),
        per(tm.predictor),
        per(tm.talker + tm.predictor) / 80.0
    ));
    Ok(())
}
