//! The voxkit command line: generate codec frames from a checkpoint, write random-weight
//! checkpoints, and benchmark. It only parses arguments and prints; the work is in the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use voxkit::backend::Device;
use voxkit::engine::loader::CheckpointLoader;
mod random_checkpoint;
use voxkit::models::tts::Qwen3Tts;
use voxkit::seams::LoadContext;
use voxkit::seams::request::{Sampling, TtsRequest};
use voxkit::seams::{TtsModel, TtsPrefill};

mod wav;

const USAGE: &str = "usage:
  voxkit say --model DIR [--speaker S] [--language L] [--instruct I] [--seed N] [--greedy]
             [--max-new-tokens N] [--stream] [--text-streaming] [--sample-rate R] [--threads T] -o OUT.wav TEXT
      Speaks TEXT through the engine and writes a 32-bit float WAV; prints the stage timings.
  voxkit codes --model DIR [--speaker S] [--language L] [--instruct I] [--seed N] [--greedy]
               [--max-new-tokens N] [--text-streaming] [--threads T] TEXT
      Generates Qwen3-TTS codec frames (16 codes per 80 ms frame) and prints one frame per line.
  voxkit transcribe --model DIR [--language L] [--context TEXT] [--max-new-tokens N] [--json]
                    [--threads T] IN.wav
      Transcribes a WAV file (16/24/32-bit integer or float, any rate and channel count) with a
      Qwen3-ASR checkpoint; prints the language, the text and the stage timings. With --json,
      stdout is one line of JSON with language, text, truncated and timings.
  voxkit enhance [--denoise STRENGTH] [--sample-rate R] [--threads T] -o OUT.wav IN.wav
      Denoises (STRENGTH in [0, 1]; none without --denoise) and resamples (none without
      --sample-rate or at the input's rate) a WAV file; channels are processed independently,
      as one batch. Writes the input's sample format.
  voxkit make-checkpoint --preset NAME --out DIR [--seed N] [--tokenizer DIR]
      Writes a random-weight checkpoint with the real shapes. Presets: 0.6b-customvoice,
      1.7b-customvoice, 1.7b-voicedesign, tiny-customvoice, 0.6b-asr, 1.7b-asr, tiny-asr
      (ASR presets take the tokenizer files from tests/fixtures/asr/tiny unless --tokenizer).
  voxkit bench tts --model DIR [--frames N] [--threads T] [--speaker S]
      Times the talker and code predictor per frame (greedy, batch 1).
  voxkit bench codec --model DIR [--frames N] [--threads T]
      Times the codec decoder per frame, offline (one pass) and streaming (frame by frame).
  voxkit bench post [--seconds S] [--streams N] [--threads T]
      Times the resampler (24 -> 48 and 24 -> 44.1 kHz, 48 -> 16 kHz) and the denoiser (24 and
      48 kHz): x real time on one thread, and batched over N streams on T threads.
  voxkit bench asr --model DIR [--seconds S] [--tokens N] [--threads T]
      Times the ASR front-end, encoder, prompt prefill and greedy decoding on a synthetic clip
      of S seconds (default 10), decoding N tokens (default 4 per second of audio).";

/// `--name value` options and positional arguments.
struct Args {
    opts: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

const FLAGS: [&str; 5] = ["--greedy", "--text-streaming", "--stream", "--verbose", "--json"];

impl Args {
    fn parse(raw: &[String]) -> Result<Args, String> {
        let (mut opts, mut positional) = (Vec::new(), Vec::new());
        let mut it = raw.iter();
        while let Some(a) = it.next() {
            if FLAGS.contains(&a.as_str()) {
                opts.push((a.clone(), None));
            } else if a.starts_with("--") || a == "-o" {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                opts.push((a.clone(), Some(v.clone())));
            } else {
                positional.push(a.clone());
            }
        }
        Ok(Args { opts, positional })
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.opts.iter().rev().find(|(k, _)| k == name).and_then(|(_, v)| v.as_deref())
    }
    fn flag(&self, name: &str) -> bool {
        self.opts.iter().any(|(k, _)| k == name)
    }
    fn num<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        self.get(name).map(|v| v.parse().map_err(|_| format!("{name}: `{v}` is not a number"))).transpose()
    }
    fn require(&self, name: &str) -> Result<&str, String> {
        self.get(name).ok_or_else(|| format!("{name} is required"))
    }
}

/// The CLI's models: the CPU, one slot (the engine's loader builds them the same way).
fn load_context(threads: usize) -> LoadContext {
    LoadContext { device: Device::Cpu, cpu_threads: threads, max_slots: 1 }
}

fn load(args: &Args) -> Result<Qwen3Tts, String> {
    let dir = PathBuf::from(args.require("--model")?);
    let threads = threads(args)?;
    let ctx = load_context(threads);
    let t = Instant::now();
    let cx = CheckpointLoader::compute(&ctx).map_err(|e| e.message)?;
    let model = CheckpointLoader::tts_generator(&dir, &cx, &ctx).map_err(|e| e.message)?;
    eprintln!("loaded {} in {:.2} s ({} threads)", dir.display(), t.elapsed().as_secs_f64(), threads);
    Ok(model)
}

fn request(args: &Args, text: String) -> Result<TtsRequest, String> {
    Ok(TtsRequest {
        text,
        language: args.get("--language").map(str::to_string),
        speaker: args.get("--speaker").map(str::to_string),
        instruct: args.get("--instruct").map(str::to_string),
        max_new_tokens: args.num("--max-new-tokens")?.unwrap_or(0),
        sampling: Sampling { greedy: args.flag("--greedy"), seed: args.num("--seed")?, ..Default::default() },
        text_streaming: args.flag("--text-streaming"),
        ..Default::default()
    })
}

fn codes(args: &Args) -> Result<(), String> {
    let text = args.positional.join(" ");
    let mut model = load(args)?;
    let req = request(args, text)?;
    req.validate().map_err(|e| e.message)?;
    let cap = voxkit::EngineConfig::default().effective_cap(req.max_new_tokens, || model.auto_max_new_tokens(&req));
    let t = Instant::now();
    model.prefill(&[TtsPrefill { slot: 0, request: &req, max_new_tokens: cap }]).remove(0).map_err(|e| e.message)?;
    let prefill = t.elapsed();
    let mut frames = 0;
    let mut out = std::io::stdout().lock();
    let finish = loop {
        let step = model.step(&[0]).map_err(|e| e.message)?.remove(0);
        if let Some(f) = step.frame {
            frames += 1;
            let line = f.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" ");
            if writeln!(out, "{line}").is_err() {
                return Ok(()); // the reader went away (e.g. `| head`)
            }
        }
        if let Some(f) = step.finish {
            break f;
        }
    };
    let tm = model.times;
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e3 / tm.steps.max(1) as f64;
    eprintln!(
        "{frames} frames ({:.2} s of audio), stop: {finish:?}; prefill {:.1} ms; per frame {:.1} ms (talker {:.1}, code predictor {:.1}); real-time factor {:.2}",
        frames as f64 / 12.5,
        prefill.as_secs_f64() * 1e3,
        per(tm.talker + tm.predictor),
        per(tm.talker),
        per(tm.predictor),
        per(tm.talker + tm.predictor) / 80.0
    );
    Ok(())
}

/// `--threads`, or every core the process may use.
fn threads(args: &Args) -> Result<usize, String> {
    Ok(args
        .num::<usize>("--threads")?
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)))
}

/// The engine settings the CLI commands share: one job at a time, `--threads`, logs to stderr
/// (info with `--verbose`).
fn engine_config(args: &Args) -> Result<voxkit::EngineConfig, String> {
    Ok(voxkit::EngineConfig {
        cpu_threads: args.num("--threads")?.unwrap_or(0),
        max_batch: 1,
        log_level: if args.flag("--verbose") { voxkit::LogLevel::Info } else { voxkit::LogLevel::Warn },
        log_sink: Some(Arc::new(|level, msg: &str| eprintln!("[{level:?}] {msg}"))),
        ..Default::default()
    })
}

fn say(args: &Args) -> Result<(), String> {
    let out = args.get("-o").or_else(|| args.get("--out")).ok_or("-o OUT.wav is required")?.to_string();
    let mut req = request(args, args.positional.join(" "))?;
    req.stream = args.flag("--stream");
    req.sample_rate = args.num("--sample-rate")?.unwrap_or(0);
    let cfg =
        voxkit::EngineConfig { tts_model_dir: Some(PathBuf::from(args.require("--model")?)), ..engine_config(args)? };
    let engine = voxkit::Engine::new(cfg).map_err(|e| e.message)?;
    let t = Instant::now();
    let id = engine.submit_tts(req).map_err(|e| e.message)?;
    let mut audio = Vec::new();
    let mut first_audio = None;
    let mut buf = vec![0f32; 8192];
    let info = loop {
        let info = engine.poll(id).map_err(|e| e.message)?;
        let n = engine.read_audio(id, &mut buf).map_err(|e| e.message)?;
        if n > 0 && first_audio.is_none() {
            first_audio = Some(t.elapsed());
        }
        audio.extend_from_slice(&buf[..n]);
        if info.state.is_terminal() && n == 0 {
            break info;
        }
        if n == 0 {
            let _ = engine.wait(id, Some(std::time::Duration::from_millis(5)));
        }
    };
    if info.state != voxkit::JobState::Done {
        return Err(format!("the job ended {:?}: {}", info.state, info.error.map(|e| e.message).unwrap_or_default()));
    }
    wav::write(std::path::Path::new(&out), &audio, info.sample_rate, 1, wav::Format::Float)?;
    let tm = engine.timings(id).map_err(|e| e.message)?;
    let seconds = audio.len() as f64 / info.sample_rate.max(1) as f64;
    eprintln!(
        "wrote {out}: {:.2} s at {} Hz ({} frames{}); load {:.0} ms, tts {:.0} ms, codec {:.0} ms, denoise {:.0} ms, upsample {:.0} ms, total {:.0} ms; real-time factor {:.2}{}",
        seconds,
        info.sample_rate,
        tm.tokens,
        if info.flags & voxkit::engine::job::FLAG_TRUNCATED != 0 { ", TRUNCATED at the cap" } else { "" },
        tm.model_load_ms,
        tm.tts_ms,
        tm.codec_ms,
        tm.denoise_ms,
        tm.upsample_ms,
        tm.total_ms,
        (tm.total_ms - tm.model_load_ms) / 1e3 / seconds.max(1e-9),
        first_audio.map(|d| format!("; first audio after {:.0} ms", d.as_secs_f64() * 1e3)).unwrap_or_default()
    );
    Ok(())
}

fn make_checkpoint(args: &Args) -> Result<(), String> {
    let preset = args.require("--preset")?;
    let out = PathBuf::from(args.require("--out")?);
    // Qwen3-ASR's tokenizer_config differs from Qwen3-TTS's (audio tokens, `<asr_text>`).
    let default_tok = if preset.ends_with("-asr") { "/tests/fixtures/asr/tiny" } else { "/tests/fixtures/tokenizer" };
    let tok = args
        .get("--tokenizer")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("{}{default_tok}", env!("CARGO_MANIFEST_DIR"))));
    let seed = args.num("--seed")?.unwrap_or(1);
    let t = Instant::now();
    random_checkpoint::write(preset, &out, &tok, seed).map_err(|e| e.message)?;
    eprintln!("wrote {preset} to {} in {:.1} s", out.display(), t.elapsed().as_secs_f64());
    Ok(())
}

fn bench_tts(args: &Args) -> Result<(), String> {
    let frames: u64 = args.num("--frames")?.unwrap_or(32);
    let mut model = load(args)?;
    let speaker = args.get("--speaker").map(str::to_string).or_else(|| model.config.speakers().first().cloned());
    let req = TtsRequest {
        text: "The quick brown fox jumps over the lazy dog, and then it runs far away into the forest.".into(),
        speaker,
        sampling: Sampling { greedy: true, ..Default::default() },
        ..Default::default()
    };
    let cap = 1_000_000;
    let mut prefills = Vec::new();
    let t = Instant::now();
    model.prefill(&[TtsPrefill { slot: 0, request: &req, max_new_tokens: cap }]).remove(0).map_err(|e| e.message)?;
    prefills.push(t.elapsed());
    // Warm-up frame, not timed.
    model.step(&[0]).map_err(|e| e.message)?;
    model.times = Default::default();
    let mut done = 0;
    while done < frames {
        let s = model.step(&[0]).map_err(|e| e.message)?.remove(0);
        done += s.frame.is_some() as u64;
        if s.finish.is_some() {
            model.release(0);
            let t = Instant::now();
            model
                .prefill(&[TtsPrefill { slot: 0, request: &req, max_new_tokens: cap }])
                .remove(0)
                .map_err(|e| e.message)?;
            prefills.push(t.elapsed());
        }
    }
    let tm = model.times;
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e3 / tm.steps.max(1) as f64;
    println!(
        "tts: {} frames, {:.1} ms/frame (talker {:.1}, code predictor {:.1}), real-time factor {:.3} ({:.2}× real time); prefill {:.1} ms; threads {}",
        done,
        per(tm.talker + tm.predictor),
        per(tm.talker),
        per(tm.predictor),
        per(tm.talker + tm.predictor) / 80.0,
        80.0 / per(tm.talker + tm.predictor),
        prefills[0].as_secs_f64() * 1e3,
        threads(args)?
    );
    Ok(())
}

fn bench_codec(args: &Args) -> Result<(), String> {
    let frames: usize = args.num("--frames")?.unwrap_or(50);
    let dir = PathBuf::from(args.require("--model")?);
    let threads = threads(args)?;
    let cx = CheckpointLoader::compute(&load_context(threads)).map_err(|e| e.message)?;
    let codec = CheckpointLoader::codec(&dir, &cx).map_err(|e| e.message)?;
    let mut rng = voxkit::backend::Rng::new(1);
    let size = codec.config.decoder_config.codebook_size as u64;
    let codes: Vec<Vec<u32>> = (0..frames)
        .map(|_| (0..codec.config.decoder_config.num_quantizers).map(|_| (rng.next_u64() % size) as u32).collect())
        .collect();
    codec.decode(&codes[..2.min(frames)]).map_err(|e| e.message)?; // warm-up
    let t = Instant::now();
    codec.decode(&codes).map_err(|e| e.message)?;
    let offline = t.elapsed().as_secs_f64() * 1e3 / frames as f64;
    let mut st = codec.new_stream().map_err(|e| e.message)?;
    let t = Instant::now();
    for f in codes.chunks(1) {
        codec.forward_stream(&mut st, f).map_err(|e| e.message)?;
    }
    let streaming = t.elapsed().as_secs_f64() * 1e3 / frames as f64;
    println!(
        "codec: {frames} frames, offline {offline:.1} ms/frame, streaming {streaming:.1} ms/frame (80 ms of audio per frame); threads {threads}"
    );
    Ok(())
}

/// A JSON string literal (serde_json's escaping).
fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn transcribe(args: &Args) -> Result<(), String> {
    let [input] = args.positional.as_slice() else { return Err("transcribe takes one input WAV file".into()) };
    let w = wav::read(std::path::Path::new(input))?;
    let req = voxkit::AsrRequest {
        audio: w.samples,
        sample_rate: w.rate,
        channels: w.channels as u32,
        language: args.get("--language").map(str::to_string),
        context: args.get("--context").map(str::to_string),
        max_new_tokens: args.num("--max-new-tokens")?.unwrap_or(0),
        ..Default::default()
    };
    let cfg =
        voxkit::EngineConfig { asr_model_dir: Some(PathBuf::from(args.require("--model")?)), ..engine_config(args)? };
    let seconds = req.duration_seconds();
    let engine = voxkit::Engine::new(cfg).map_err(|e| e.message)?;
    let id = engine.submit_asr(req).map_err(|e| e.message)?;
    let info = engine.wait(id, None).map_err(|e| e.message)?;
    if info.state != voxkit::JobState::Done {
        return Err(format!("the job ended {:?}: {}", info.state, info.error.map(|e| e.message).unwrap_or_default()));
    }
    let text = engine.text(id).map_err(|e| e.message)?;
    let language = engine.language(id).map_err(|e| e.message)?;
    let tm = engine.timings(id).map_err(|e| e.message)?;
    let truncated = info.flags & voxkit::engine::job::FLAG_TRUNCATED != 0;
    if args.flag("--json") {
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
        let work = tm.total_ms - tm.model_load_ms - tm.queue_ms;
        eprintln!(
            "{:.2} s of audio, {} tokens{}; load {:.0} ms, resample {:.0} ms, denoise {:.0} ms, front-end {:.0} ms, encode+prefill {:.0} ms, decode {:.0} ms, total {:.0} ms; {:.2}× real time",
            seconds,
            tm.tokens,
            if truncated { " (TRUNCATED at the cap)" } else { "" },
            tm.model_load_ms,
            tm.upsample_ms,
            tm.denoise_ms,
            tm.asr_frontend_ms,
            tm.asr_encode_ms,
            tm.asr_decode_ms,
            tm.total_ms,
            seconds * 1e3 / work.max(1e-9)
        );
    }
    Ok(())
}

/// A speech-like synthetic clip: a gliding harmonic voice with a syllable-rate envelope and a
/// little noise (what the encoder sees does not change its cost; the content only matters for
/// the text, which random weights make meaningless anyway).
pub fn synthetic_speech(seconds: f64, rate: u32, seed: u64) -> Vec<f32> {
    let mut rng = voxkit::backend::sampling::Rng::new(seed);
    let n = (seconds * rate as f64) as usize;
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            let f0 = 120.0 + 30.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
            phase += 2.0 * std::f64::consts::PI * f0 / rate as f64;
            let env = 0.5 + 0.5 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
            let voice: f64 = (1..=8).map(|h| (h as f64 * phase).sin() / h as f64).sum();
            let noise = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            (0.2 * env * voice + 0.01 * noise) as f32
        })
        .collect()
}

fn bench_asr(args: &Args) -> Result<(), String> {
    use voxkit::models::asr::{Qwen3Asr, argmax};
    use voxkit::seams::AsrModel;
    let seconds: f64 = args.num("--seconds")?.unwrap_or(10.0);
    let tokens: usize = args.num("--tokens")?.unwrap_or((seconds * 4.0).ceil() as usize);
    let dir = PathBuf::from(args.require("--model")?);
    let threads = threads(args)?;
    let ctx = load_context(threads);
    let t = Instant::now();
    let cx = CheckpointLoader::compute(&ctx).map_err(|e| e.message)?;
    let mut model = CheckpointLoader::asr(&dir, &cx, &ctx).map_err(|e| e.message)?;
    eprintln!("loaded {} in {:.2} s ({} threads)", dir.display(), t.elapsed().as_secs_f64(), threads);
    let clip = synthetic_speech(seconds, model.sample_rate(), 7);
    let (prefix, suffix) = model.prompt_parts(None, None).map_err(|e| e.message)?;
    let run = |model: &mut Qwen3Asr, decode: usize| -> Result<(f64, f64, f64, f64, usize), String> {
        model.times = Default::default();
        let t = Instant::now();
        let f = model.frontend(&[&clip]).map_err(|e| e.message)?.remove(0);
        let frontend = t.elapsed().as_secs_f64() * 1e3;
        let logits = model.prefill_passes(&[(&f.data, &prefix, &suffix)], &[0]).map_err(|e| e.message)?;
        let mut next = argmax(&logits.to_host());
        for _ in 0..decode {
            let l = model.decode_tokens(&[next], &[0]).map_err(|e| e.message)?;
            next = argmax(&l.to_host());
        }
        let tm = model.times;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        Ok((frontend, ms(tm.encoder), ms(tm.prefill), ms(tm.decode), tm.prompt_tokens as usize))
    };
    run(&mut model, 1)?; // warm-up
    let (frontend, encoder, prefill, decode, prompt) = run(&mut model, tokens)?;
    let total = frontend + encoder + prefill + decode;
    println!(
        "asr: {seconds:.1} s clip, {prompt} prompt tokens, {tokens} decoded; front-end {frontend:.1} ms, encoder {encoder:.1} ms, prefill {prefill:.1} ms, decode {decode:.1} ms ({:.1} ms/token); total {total:.1} ms = {:.2}× real time; threads {threads}",
        decode / tokens.max(1) as f64,
        seconds * 1e3 / total
    );
    Ok(())
}

fn enhance(args: &Args) -> Result<(), String> {
    use voxkit::dsp::{denoise, resample};
    let [input] = args.positional.as_slice() else { return Err("enhance takes one input WAV file".into()) };
    let out = args.get("-o").or_else(|| args.get("--out")).ok_or("-o OUT.wav is required")?;
    let w = wav::read(std::path::Path::new(input))?;
    let strength: Option<f32> = args.num("--denoise")?;
    let to_rate: u32 = args.num("--sample-rate")?.unwrap_or(w.rate);
    let threads = threads(args)?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| e.to_string())?;
    // De-interleave: each channel is its own stream; all channels form one batch.
    let c = w.channels as usize;
    let mut chans: Vec<Vec<f32>> = (0..c).map(|ch| w.samples.iter().skip(ch).step_by(c).copied().collect()).collect();
    let frames = chans[0].len();
    let (mut denoise_ms, mut resample_ms) = (0.0, 0.0);
    if let Some(s) = strength {
        let t = Instant::now();
        let mut streams: Vec<denoise::Denoiser> =
            (0..c).map(|_| denoise::Denoiser::new(w.rate, s)).collect::<Result<_, _>>().map_err(|e| e.message)?;
        let mut outs = vec![Vec::new(); c];
        pool.install(|| {
            let mut refs: Vec<&mut denoise::Denoiser> = streams.iter_mut().collect();
            let inputs: Vec<&[f32]> = chans.iter().map(|v| v.as_slice()).collect();
            denoise::process_batch(&mut refs, &inputs, &mut outs)
        })
        .map_err(|e| e.message)?;
        for (st, o) in streams.iter_mut().zip(outs.iter_mut()) {
            st.flush(o);
        }
        chans = outs;
        denoise_ms = t.elapsed().as_secs_f64() * 1e3;
    }
    if to_rate != w.rate {
        let t = Instant::now();
        let mut streams: Vec<resample::Resampler> = (0..c)
            .map(|_| resample::Resampler::new(w.rate, to_rate))
            .collect::<Result<_, _>>()
            .map_err(|e| e.message)?;
        let mut outs = vec![Vec::new(); c];
        pool.install(|| {
            let mut refs: Vec<&mut resample::Resampler> = streams.iter_mut().collect();
            let inputs: Vec<&[f32]> = chans.iter().map(|v| v.as_slice()).collect();
            resample::process_batch(&mut refs, &inputs, &mut outs)?;
            resample::finish_batch(&mut refs, &mut outs)
        })
        .map_err(|e| e.message)?;
        chans = outs;
        resample_ms = t.elapsed().as_secs_f64() * 1e3;
    }
    let n = chans[0].len();
    let mut interleaved = Vec::with_capacity(n * c);
    for i in 0..n {
        interleaved.extend(chans.iter().map(|ch| ch[i]));
    }
    wav::write(std::path::Path::new(out), &interleaved, to_rate, w.channels, w.format)?;
    let seconds = frames as f64 / w.rate as f64;
    eprintln!(
        "wrote {out}: {:.2} s, {c} channel(s), {} Hz -> {to_rate} Hz, {:?}; denoise {denoise_ms:.1} ms{}, resample {resample_ms:.1} ms",
        seconds,
        w.rate,
        w.format,
        strength.map(|s| format!(" (strength {s})")).unwrap_or_else(|| " (off)".into()),
    );
    Ok(())
}

fn bench_post(args: &Args) -> Result<(), String> {
    use voxkit::dsp::{denoise, resample};
    let seconds: f64 = args.num("--seconds")?.unwrap_or(20.0);
    let streams: usize = args.num("--streams")?.unwrap_or(8);
    let threads = threads(args)?;
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().map_err(|e| e.to_string())?;
    let many = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| e.to_string())?;
    let noise = |rate: u32, seed: u64| {
        let mut s = synthetic_speech(seconds, rate, seed);
        let mut rng = voxkit::backend::sampling::Rng::new(seed ^ 0x5eed);
        for x in s.iter_mut() {
            *x += 0.05 * ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32;
        }
        s
    };
    // Best of three runs of `f` over `n` streams; returns × real time (audio seconds / wall seconds).
    let best =
        |pool: &rayon::ThreadPool, n: usize, f: &(dyn Fn(usize) -> Result<(), String> + Sync)| -> Result<f64, String> {
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let t = Instant::now();
                pool.install(|| f(n))?;
                best = best.min(t.elapsed().as_secs_f64());
            }
            Ok(n as f64 * seconds / best)
        };
    println!("post: {seconds} s of audio per stream; batched = {streams} streams on {threads} threads");
    for (from, to) in [(24_000u32, 48_000u32), (24_000, 44_100), (48_000, 16_000)] {
        let inputs: Vec<Vec<f32>> = (0..streams).map(|i| noise(from, i as u64)).collect();
        let run = |n: usize| -> Result<(), String> {
            let mut st: Vec<resample::Resampler> =
                (0..n).map(|_| resample::Resampler::new(from, to)).collect::<Result<_, _>>().map_err(|e| e.message)?;
            let mut refs: Vec<&mut resample::Resampler> = st.iter_mut().collect();
            let ins: Vec<&[f32]> = inputs[..n].iter().map(|v| v.as_slice()).collect();
            let mut outs = vec![Vec::new(); n];
            resample::process_batch(&mut refs, &ins, &mut outs).map_err(|e| e.message)?;
            resample::finish_batch(&mut refs, &mut outs).map_err(|e| e.message)
        };
        run(1)?; // designs the filter once (cached)
        let single = best(&one, 1, &run)?;
        let batched = best(&many, streams, &run)?;
        println!("resample {from} -> {to} Hz: {single:.0}x real time on 1 thread; batched {batched:.0}x in total");
    }
    for rate in [24_000u32, 48_000] {
        let inputs: Vec<Vec<f32>> = (0..streams).map(|i| noise(rate, 100 + i as u64)).collect();
        let run = |n: usize| -> Result<(), String> {
            let mut st: Vec<denoise::Denoiser> =
                (0..n).map(|_| denoise::Denoiser::new(rate, 1.0)).collect::<Result<_, _>>().map_err(|e| e.message)?;
            let mut refs: Vec<&mut denoise::Denoiser> = st.iter_mut().collect();
            let ins: Vec<&[f32]> = inputs[..n].iter().map(|v| v.as_slice()).collect();
            let mut outs = vec![Vec::new(); n];
            denoise::process_batch(&mut refs, &ins, &mut outs).map_err(|e| e.message)?;
            for (s, o) in refs.iter_mut().zip(outs.iter_mut()) {
                s.flush(o);
            }
            Ok(())
        };
        let single = best(&one, 1, &run)?;
        let batched = best(&many, streams, &run)?;
        println!("denoise {rate} Hz: {single:.0}x real time on 1 thread; batched {batched:.0}x in total");
    }
    Ok(())
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = raw.first().cloned() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &raw[1..];
    let result = (|| match cmd.as_str() {
        "codes" => codes(&Args::parse(rest)?),
        "say" => say(&Args::parse(rest)?),
        "transcribe" => transcribe(&Args::parse(rest)?),
        "enhance" => enhance(&Args::parse(rest)?),
        "make-checkpoint" => make_checkpoint(&Args::parse(rest)?),
        "bench" => match rest.first().map(String::as_str) {
            Some("tts") => bench_tts(&Args::parse(&rest[1..])?),
            Some("codec") => bench_codec(&Args::parse(&rest[1..])?),
            Some("asr") => bench_asr(&Args::parse(&rest[1..])?),
            Some("post") => bench_post(&Args::parse(&rest[1..])?),
            _ => Err("bench: expected `tts`, `codec`, `asr` or `post`".to_string()),
        },
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`")),
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voxkit: {e}\n\n{USAGE}");
            ExitCode::from(1)
        }
    }
}
