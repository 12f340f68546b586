//! `transcribe`: a WAV file (or stdin) to text through the engine.

use std::time::{Duration, Instant};

use voxkit::JobState;
use voxkit::engine::job::FLAG_TRUNCATED;

use crate::Fail;
use crate::cli::TranscribeArgs;
use crate::inout;
use crate::model_arg::{ModelArg, model_dir};
use crate::say::job_failed;
use crate::ui::Ui;

/// A JSON string literal (serde_json's escaping).
fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

pub fn transcribe(a: &TranscribeArgs, ui: &Ui) -> Result<(), Fail> {
    let w = inout::read_wav(&a.input)?;
    let dir = model_dir(&a.model, ModelArg::Asr, ui)?;
    let req = voxkit::AsrRequest {
        audio: w.samples,
        sample_rate: w.rate,
        channels: w.channels as u32,
        language: a.language.clone(),
        context: a.context.clone(),
        max_new_tokens: a.max_new_tokens,
        denoise: a.denoise,
        ..Default::default()
    };
    let cfg = voxkit::EngineConfig { asr_model_dir: Some(dir), ..ui.engine_config(a.threads) };
    let seconds = req.duration_seconds();
    let engine = voxkit::Engine::new(cfg)?;
    let t = Instant::now();
    let id = engine.submit_asr(req)?;
    let progress = ui.spinner("loading the ASR model");
    let info = loop {
        let info = match engine.wait(id, Some(Duration::from_millis(100))) {
            Ok(info) => info,
            Err(e) if e.kind == voxkit::ErrorKind::Timeout => engine.poll(id)?,
            Err(e) => return Err(e.into()),
        };
        if info.state.is_terminal() {
            break info;
        }
        if info.state == JobState::Running {
            progress.set_message(format!("transcribing {seconds:.1} s of audio ({} tokens)", info.tokens));
        }
    };
    progress.finish_and_clear();
    if info.state != JobState::Done {
        return Err(job_failed(info));
    }
    let text = engine.text(id)?;
    let language = engine.language(id)?;
    let tm = engine.timings(id)?;
    let truncated = info.flags & FLAG_TRUNCATED != 0;
    if a.json {
        println!(
            "{{\"language\":{},\"text\":{},\"truncated\":{truncated},\"timings\":{{\"queue_ms\":{:.3},\"model_load_ms\":{:.3},\"resample_ms\":{:.3},\"denoise_ms\":{:.3},\"frontend_ms\":{:.3},\"encode_ms\":{:.3},\"decode_ms\":{:.3},\"total_ms\":{:.3},\"tokens\":{},\"audio_seconds\":{:.3}}}}}",
            json_str(&language),
            json_str(&text),
            tm.queue_ms,
            tm.model_load_ms,
            tm.upsample_ms,
            tm.denoise_ms,
            tm.asr_frontend_ms,
            tm.asr_encode_ms,
            tm.asr_decode_ms,
            tm.total_ms,
            tm.tokens,
            seconds
        );
    } else {
        println!("language: {}", if language.is_empty() { "(none detected)" } else { &language });
        println!("{text}");
    }
    ui.note(format_args!(
        "transcribed {seconds:.2} s of audio in {:.1} s, {} tokens{}",
        t.elapsed().as_secs_f64(),
        tm.tokens,
        if truncated { " (TRUNCATED: the cap or the repetition guard stopped it)" } else { "" }
    ));
    let work = tm.total_ms - tm.model_load_ms - tm.queue_ms;
    ui.detail(format_args!(
        "load {:.0} ms, resample {:.0} ms, denoise {:.0} ms, front-end {:.0} ms, encode+prefill {:.0} ms, decode {:.0} ms, total {:.0} ms; {:.2}× real time",
        tm.model_load_ms,
        tm.upsample_ms,
        tm.denoise_ms,
        tm.asr_frontend_ms,
        tm.asr_encode_ms,
        tm.asr_decode_ms,
        tm.total_ms,
        seconds * 1e3 / work.max(1e-9)
    ));
    Ok(())
}
