//! `voice create` / `voice show`, and the cloned voice of `say` (--ref-audio or --voice).

use std::sync::Arc;

use voxkit::seams::request::VoiceRequest;
use voxkit::seams::voice::{Voice, short};

use crate::Fail;
use crate::cli::{CloneArgs, VoiceCreateArgs, VoiceShowArgs};
use crate::inout;
use crate::model_arg::{ModelArg, model_dir};
use crate::ui::Ui;

/// Reads a reference WAV and makes a voice with the engine's (Base) TTS model.
fn clone_from(
    engine: &voxkit::Engine,
    ref_audio: &str,
    ref_text: Option<&str>,
    denoise: Option<f32>,
    ui: &Ui,
) -> Result<Voice, Fail> {
    let wav = inout::read_wav(ref_audio)?;
    let progress = ui.spinner("cloning the voice (the model loads first)");
    let voice = engine.create_voice(
        VoiceRequest {
            audio: wav.samples,
            sample_rate: wav.rate,
            channels: wav.channels as u32,
            transcript: ref_text.map(str::to_string),
            denoise,
        },
        None,
    );
    progress.finish_and_clear();
    Ok(voice?)
}

/// Reads a voice file.
fn read_voice(path: &str) -> Result<Voice, Fail> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    Ok(Voice::from_bytes(&bytes).map_err(|e| format!("{path}: {}", e.message))?)
}

impl CloneArgs {
    /// The voice `say` asked for, if any (made now from --ref-audio, or read from --voice).
    pub fn voice(&self, engine: &voxkit::Engine, ui: &Ui) -> Result<Option<Arc<Voice>>, Fail> {
        if let Some(path) = &self.voice {
            return Ok(Some(Arc::new(read_voice(path)?)));
        }
        match &self.ref_audio {
            Some(r) => Ok(Some(Arc::new(clone_from(engine, r, self.ref_text.as_deref(), self.ref_denoise, ui)?))),
            None => Ok(None),
        }
    }
}

pub fn create(a: &VoiceCreateArgs, ui: &Ui) -> Result<(), Fail> {
    // The output's folder must exist before the model loads.
    let out = std::path::Path::new(&a.out);
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        return Err(format!("{}: the folder {} does not exist", a.out, parent.display()).into());
    }
    let dir = model_dir(&a.model, ModelArg::Tts, ui)?;
    let engine = voxkit::Engine::new(voxkit::EngineConfig { tts_model_dir: Some(dir), ..ui.engine_config(a.threads) })?;
    let t = std::time::Instant::now();
    let voice = clone_from(&engine, &a.ref_audio, a.ref_text.as_deref(), a.ref_denoise, ui)?;
    let bytes = voice.to_bytes();
    std::fs::write(out, &bytes).map_err(|e| format!("{}: {e}", a.out))?;
    ui.note(format_args!(
        "wrote {} ({} bytes, {}) in {:.1} s",
        a.out,
        bytes.len(),
        describe(&voice),
        t.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn describe(v: &Voice) -> String {
    match &v.reference {
        None => format!("x-vector only, {} values", v.xvector.len()),
        Some(r) => format!(
            "in-context: {} reference frames ({:.2} s) and their transcript",
            r.codes.len(),
            r.codes.len() as f64 / 12.5
        ),
    }
}

pub fn show(a: &VoiceShowArgs) -> Result<(), Fail> {
    let v = read_voice(&a.file)?;
    println!("kind: {}", describe(&v));
    println!("model: {}", short(&v.model));
    println!("x-vector: {} values", v.xvector.len());
    if let Some(r) = &v.reference {
        println!("transcript: {}", r.text);
    }
    Ok(())
}
