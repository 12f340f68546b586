//! The voxkit command line: generate codec frames from a checkpoint, write random-weight
//! checkpoints, and benchmark. It only parses arguments and prints; the work is in the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use voxkit::backend::Cpu;
use voxkit::engine::model::{TtsModel, TtsPrefill};
use voxkit::engine::request::{Sampling, TtsRequest};
use voxkit::models::random_checkpoint;
use voxkit::models::tts::Qwen3Tts;

const USAGE: &str = "usage:
  voxkit say --model DIR [--speaker S] [--language L] [--instruct I] [--seed N] [--greedy]
             [--max-new-tokens N] [--stream] [--text-streaming] [--sample-rate R] [--threads T] -o OUT.wav TEXT
      Speaks TEXT through the engine and writes a 32-bit float WAV; prints the stage timings.
  voxkit codes --model DIR [--speaker S] [--language L] [--instruct I] [--seed N] [--greedy]
               [--max-new-tokens N] [--text-streaming] [--threads T] TEXT
      Generates Qwen3-TTS codec frames (16 codes per 80 ms frame) and prints one frame per line.
  voxkit make-checkpoint --preset NAME --out DIR [--seed N] [--tokenizer DIR]
      Writes a random-weight checkpoint with the real shapes. Presets: 0.6b-customvoice,
      1.7b-customvoice, 1.7b-voicedesign, tiny-customvoice.
  voxkit bench tts --model DIR [--frames N] [--threads T] [--speaker S]
      Times the talker and code predictor per frame (greedy, batch 1).
  voxkit bench codec --model DIR [--frames N] [--threads T]
      Times the codec decoder per frame, offline (one pass) and streaming (frame by frame).";

/// `--name value` options and positional arguments.
struct Args {
    opts: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

const FLAGS: [&str; 4] = ["--greedy", "--text-streaming", "--stream", "--verbose"];

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

fn load(args: &Args) -> Result<Qwen3Tts, String> {
    let dir = PathBuf::from(args.require("--model")?);
    let threads = args
        .num::<usize>("--threads")?
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let cpu = Arc::new(Cpu::new(threads).map_err(|e| e.message)?);
    let t = Instant::now();
    let model = Qwen3Tts::load(&dir, cpu, 1).map_err(|e| e.message)?;
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
    let cap = if req.max_new_tokens > 0 { req.max_new_tokens } else { model.auto_max_new_tokens(&req) };
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

/// Writes mono 32-bit IEEE-float PCM as a WAV file.
fn write_wav(path: &str, rate: u32, samples: &[f32]) -> Result<(), String> {
    let data_len = (samples.len() * 4) as u32;
    let mut b = Vec::with_capacity(44 + samples.len() * 4);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 4).to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&32u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, b).map_err(|e| format!("{path}: {e}"))
}

fn say(args: &Args) -> Result<(), String> {
    let out = args.get("-o").or_else(|| args.get("--out")).ok_or("-o OUT.wav is required")?.to_string();
    let mut req = request(args, args.positional.join(" "))?;
    req.stream = args.flag("--stream");
    req.sample_rate = args.num("--sample-rate")?.unwrap_or(0);
    let cfg = voxkit::EngineConfig {
        tts_model_dir: Some(PathBuf::from(args.require("--model")?)),
        cpu_threads: args.num("--threads")?.unwrap_or(0),
        max_batch: 1,
        log_level: if args.flag("--verbose") { voxkit::LogLevel::Info } else { voxkit::LogLevel::Warn },
        log_sink: Some(Arc::new(|level, msg: &str| eprintln!("[{level:?}] {msg}"))),
        ..Default::default()
    };
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
    write_wav(&out, info.sample_rate, &audio)?;
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
    let tok = args
        .get("--tokenizer")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tokenizer")));
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
        model.cpu().threads()
    );
    Ok(())
}

fn bench_codec(args: &Args) -> Result<(), String> {
    use voxkit::models::codec::Codec;
    let frames: usize = args.num("--frames")?.unwrap_or(50);
    let dir = PathBuf::from(args.require("--model")?).join("speech_tokenizer");
    let threads = args
        .num::<usize>("--threads")?
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let codec = Codec::load(&dir, Arc::new(Cpu::new(threads).map_err(|e| e.message)?)).map_err(|e| e.message)?;
    let mut rng = voxkit::models::sampling::Rng::new(1);
    let size = codec.config.decoder_config.codebook_size as u64;
    let codes: Vec<Vec<u32>> = (0..frames)
        .map(|_| (0..codec.config.decoder_config.num_quantizers).map(|_| (rng.next_u64() % size) as u32).collect())
        .collect();
    codec.decode(&codes[..2.min(frames)]).map_err(|e| e.message)?; // warm-up
    let t = Instant::now();
    codec.decode(&codes).map_err(|e| e.message)?;
    let offline = t.elapsed().as_secs_f64() * 1e3 / frames as f64;
    let mut st = codec.new_stream();
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
        "make-checkpoint" => make_checkpoint(&Args::parse(rest)?),
        "bench" => match rest.first().map(String::as_str) {
            Some("tts") => bench_tts(&Args::parse(&rest[1..])?),
            Some("codec") => bench_codec(&Args::parse(&rest[1..])?),
            _ => Err("bench: expected `tts` or `codec`".to_string()),
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
