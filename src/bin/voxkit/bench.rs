//! `bench tts|codec|post|asr`: time the engine's parts on the CPU; results on stdout.

use std::time::{Duration, Instant};

use voxkit::engine::loader::CheckpointLoader;
use voxkit::seams::request::{Sampling, TtsRequest};
use voxkit::seams::{TtsModel, TtsPrefill};

use crate::Fail;
use crate::cli::{BenchAsrArgs, BenchCodecArgs, BenchPostArgs, BenchTtsArgs, BenchVoiceArgs};
use crate::model_arg::{ModelArg, model_dir};
use crate::say::{load_context, load_generator_slots, load_timed};
use crate::ui::Ui;

pub fn tts(a: &BenchTtsArgs, ui: &Ui) -> Result<(), Fail> {
    let batch = a.batch as usize;
    let mut model = load_generator_slots(&a.model, a.threads, batch, ui)?;
    let speaker = a.speaker.clone().or_else(|| model.config.speakers().first().cloned());
    let req = TtsRequest {
        text: "The quick brown fox jumps over the lazy dog, and then it runs far away into the forest.".into(),
        speaker,
        sampling: Sampling { greedy: true, ..Default::default() },
        ..Default::default()
    };
    let cap = 1_000_000;
    let slots: Vec<usize> = (0..batch).collect();
    let prefill = |model: &mut voxkit::models::tts::Qwen3Tts, slots: &[usize]| -> Result<Duration, Fail> {
        let t = Instant::now();
        let reqs: Vec<TtsPrefill<'_>> =
            slots.iter().map(|&slot| TtsPrefill { slot, request: &req, max_new_tokens: cap }).collect();
        for r in model.prefill(&reqs) {
            r?;
        }
        Ok(t.elapsed())
    };
    let progress = ui.spinner("timing the talker and the code predictor");
    let mut prefills = vec![prefill(&mut model, &slots)?];
    // Warm-up step, not timed.
    model.step(&slots)?;
    model.times = voxkit::models::tts::StepTimes { split: true, ..Default::default() };
    let mut done = 0;
    let t = Instant::now();
    while done < a.frames * a.batch {
        let steps = model.step(&slots)?;
        done += steps.iter().filter(|s| s.frame.is_some()).count() as u64;
        progress.set_message(format!("timing the talker and the code predictor: {done}/{} frames", a.frames * a.batch));
        let ended: Vec<usize> =
            slots.iter().zip(&steps).filter(|(_, s)| s.finish.is_some()).map(|(&slot, _)| slot).collect();
        if !ended.is_empty() {
            for &slot in &ended {
                model.release(slot);
            }
            prefills.push(prefill(&mut model, &ended)?);
        }
    }
    let wall = t.elapsed().as_secs_f64();
    progress.set_message("measuring the memory's read bandwidth");
    let (talker_bytes, predictor_bytes) = (model.talker.step_weight_bytes(), model.predictor.frame_weight_bytes());
    let bandwidth = read_bandwidth(a.threads.count());
    progress.finish_and_clear();
    let tm = model.times;
    let per = |d: Duration| d.as_secs_f64() * 1e3 / tm.steps.max(1) as f64;
    let on = match model.compute().device() {
        voxkit::backend::Device::Cuda(n) => format!("cuda:{n}"),
        _ => format!("threads {}", a.threads.count()),
    };
    println!(
        "tts: batch {batch}, {done} frames, {:.1} ms/step (talker {:.1}, code predictor {:.1}), real-time factor {:.3} ({:.2}× real time per sequence); {:.1} audio-s/s in all; prefill {:.1} ms; {on}",
        per(tm.talker + tm.predictor),
        per(tm.talker),
        per(tm.predictor),
        per(tm.talker + tm.predictor) / 80.0,
        80.0 / per(tm.talker + tm.predictor),
        done as f64 * 0.08 / wall,
        prefills[0].as_secs_f64() * 1e3,
    );
    println!(
        "tts: weights read per step: talker {:.0} MB, code predictor {:.0} MB ({} passes); at the {:.1} GB/s this machine reads with {} threads, a step cannot take less than {:.1} ms",
        talker_bytes as f64 / 1e6,
        predictor_bytes as f64 / 1e6,
        model.predictor.groups(),
        bandwidth / 1e9,
        a.threads.count(),
        (talker_bytes + predictor_bytes) as f64 / bandwidth * 1e3,
    );
    Ok(())
}

/// Bytes per second `threads` threads read from a buffer far larger than the caches (best of
/// five passes): the floor for a decode step that streams its weights once.
fn read_bandwidth(threads: usize) -> f64 {
    const BYTES: usize = 1 << 30;
    let threads = threads.max(1);
    let buf: Vec<u64> = (0..BYTES / 8).map(|i| i as u64).collect();
    let chunk = buf.len().div_ceil(threads);
    let mut best = f64::INFINITY;
    let mut sink = 0u64;
    for _ in 0..5 {
        let t = Instant::now();
        sink = sink.wrapping_add(std::thread::scope(|s| {
            let parts: Vec<_> = buf
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        let mut acc = [0u64; 8];
                        for block in part.chunks_exact(8) {
                            for (a, v) in acc.iter_mut().zip(block) {
                                *a = a.wrapping_add(*v);
                            }
                        }
                        acc.iter().fold(0u64, |x, y| x.wrapping_add(*y))
                    })
                })
                .collect();
            parts.into_iter().map(|h| h.join().unwrap_or(0)).fold(0u64, u64::wrapping_add)
        }));
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    BYTES as f64 / best
}

pub fn codec(a: &BenchCodecArgs, ui: &Ui) -> Result<(), Fail> {
    let frames = a.frames;
    let dir = model_dir(&a.model, ModelArg::Tts, ui)?;
    let threads = a.threads.count();
    let progress = ui.spinner(format!("loading {}", dir.display()));
    let ctx = load_context(a.threads)?;
    let cx = CheckpointLoader::compute(&ctx)?;
    let codec = CheckpointLoader::codec(&dir, &cx, &ctx)?;
    progress.set_message("timing the codec decoder");
    let mut rng = voxkit::backend::Rng::new(1);
    let size = codec.config.decoder_config.codebook_size as u64;
    let codes: Vec<Vec<u32>> = (0..frames)
        .map(|_| (0..codec.config.decoder_config.num_quantizers).map(|_| (rng.next_u64() % size) as u32).collect())
        .collect();
    codec.decode(&codes[..2.min(frames)])?; // warm-up
    let t = Instant::now();
    codec.decode(&codes)?;
    let offline = t.elapsed().as_secs_f64() * 1e3 / frames as f64;
    let mut st = codec.new_stream()?;
    let t = Instant::now();
    for f in codes.chunks(1) {
        codec.forward_stream(&mut st, f)?;
    }
    let streaming = t.elapsed().as_secs_f64() * 1e3 / frames as f64;
    progress.finish_and_clear();
    println!(
        "codec: {frames} frames, offline {offline:.1} ms/frame, streaming {streaming:.1} ms/frame (80 ms of audio per frame); threads {threads}"
    );
    Ok(())
}

/// The median of `runs` timings of `f`, in ms (after one warm-up call).
fn median_ms<T>(runs: usize, mut f: impl FnMut() -> voxkit::Result<T>) -> Result<f64, Fail> {
    f()?;
    let mut ms = Vec::with_capacity(runs.max(1));
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        f()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms[ms.len() / 2])
}

pub fn voice(a: &BenchVoiceArgs, ui: &Ui) -> Result<(), Fail> {
    let dir = model_dir(&a.model, ModelArg::Tts, ui)?;
    let threads = a.threads.count();
    let progress = ui.spinner(format!("loading {}", dir.display()));
    let cx = CheckpointLoader::compute(&load_context(a.threads)?)?;
    let config = voxkit::models::tts_config::TtsConfig::load(&dir)?;
    let ck = voxkit::models::weights::Checkpoint::open(&dir.join("model.safetensors"))?;
    let spec = voxkit::models::voice::voice_spec(&dir, &config, &ck)?;
    let encoders = voxkit::models::voice::VoiceEncoders::load(&dir, &cx, &config, spec)?;
    let audio = synthetic_speech(a.seconds, 24_000, 3);
    progress.set_message("timing the speaker encoder");
    let speaker = median_ms(a.runs, || encoders.speaker().embed(&audio))?;
    progress.set_message("timing the codec encoder");
    let codec = median_ms(a.runs, || encoders.codec().encode(&audio))?;
    progress.finish_and_clear();
    println!(
        "voice: {:.1} s reference; speaker encoder (mel + x-vector) {speaker:.0} ms, codec encoder {codec:.0} ms (median of {}); threads {threads}",
        a.seconds, a.runs
    );
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

pub fn asr(a: &BenchAsrArgs, ui: &Ui) -> Result<(), Fail> {
    use voxkit::models::asr::{Qwen3Asr, argmax};
    use voxkit::seams::AsrModel;
    let seconds = a.seconds;
    let tokens = a.tokens.unwrap_or((seconds * 4.0).ceil() as usize);
    let mut model = load_timed(&a.model, ModelArg::Asr, a.threads, ui, CheckpointLoader::asr)?;
    let threads = a.threads.count();
    let progress = ui.spinner(format!("timing the recognizer on {seconds:.1} s of audio"));
    let clip = synthetic_speech(seconds, model.sample_rate(), 7);
    let (prefix, suffix) = model.prompt_parts(None, None)?;
    let run = |model: &mut Qwen3Asr, decode: usize| -> Result<(f64, f64, f64, f64, usize), Fail> {
        model.times = Default::default();
        let t = Instant::now();
        let f = model.frontend(&[&clip])?.remove(0);
        let frontend = t.elapsed().as_secs_f64() * 1e3;
        let logits = model.prefill_passes(&[(&f.data, &prefix, &suffix)], &[0])?;
        let mut next = argmax(&logits.to_host());
        for _ in 0..decode {
            let l = model.decode_tokens(&[next], &[0])?;
            next = argmax(&l.to_host());
        }
        let tm = model.times;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        Ok((frontend, ms(tm.encoder), ms(tm.prefill), ms(tm.decode), tm.prompt_tokens as usize))
    };
    run(&mut model, 1)?; // warm-up
    let (frontend, encoder, prefill, decode, prompt) = run(&mut model, tokens)?;
    progress.set_message("measuring the memory's read bandwidth");
    let bandwidth = read_bandwidth(threads);
    progress.finish_and_clear();
    let total = frontend + encoder + prefill + decode;
    println!(
        "asr: {seconds:.1} s clip, {prompt} prompt tokens, {tokens} decoded; front-end {frontend:.1} ms, encoder {encoder:.1} ms, prefill {prefill:.1} ms, decode {decode:.1} ms ({:.1} ms/token); total {total:.1} ms = {:.2}× real time; threads {threads}",
        decode / tokens.max(1) as f64,
        seconds * 1e3 / total
    );
    let bytes = model.decode_weight_bytes();
    println!(
        "asr: weights read per decoded token: {:.0} MB; at the {:.1} GB/s this machine reads with {threads} threads, a token cannot take less than {:.1} ms",
        bytes as f64 / 1e6,
        bandwidth / 1e9,
        bytes as f64 / bandwidth * 1e3,
    );
    Ok(())
}

pub fn post(a: &BenchPostArgs, ui: &Ui) -> Result<(), Fail> {
    use voxkit::dsp::device::{DeviceStream, PostDevice, process_whole};
    use voxkit::dsp::{denoise, resample};
    let gpu = a.threads.post_device()?;
    let (seconds, streams) = (a.seconds, a.streams.max(1));
    let threads = a.threads.count();
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
    let best = |pool: &rayon::ThreadPool, n: usize, f: &(dyn Fn(usize) -> Result<(), Fail> + Sync)| {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            pool.install(|| f(n))?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        Ok::<f64, Fail>(n as f64 * seconds / best)
    };
    // The same on the GPU: `n` streams made by `make`, one batch, ended; best of three.
    let best_gpu = |dev: &PostDevice,
                    inputs: &[Vec<f32>],
                    n: usize,
                    make: &dyn Fn(&PostDevice) -> voxkit::Result<DeviceStream>| {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let mut st: Vec<DeviceStream> = (0..n).map(|_| make(dev)).collect::<Result<_, _>>()?;
            let t = Instant::now();
            process_whole(&mut st, &inputs[..n])?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        Ok::<f64, Fail>(n as f64 * seconds / best)
    };
    println!("post: {seconds} s of audio per stream; batched = {streams} streams on {threads} threads");
    if let Some(dev) = &gpu {
        println!("GPU: {} (the same streams, one launch per stage; host transfers included)", dev.name());
    }
    let progress = ui.spinner("timing the resampler");
    for (from, to) in [(24_000u32, 48_000u32), (24_000, 44_100), (48_000, 16_000)] {
        progress.set_message(format!("timing the resampler, {from} -> {to} Hz"));
        let inputs: Vec<Vec<f32>> = (0..streams).map(|i| noise(from, i as u64)).collect();
        let run = |n: usize| -> Result<(), Fail> {
            let mut st: Vec<resample::Resampler> =
                (0..n).map(|_| resample::Resampler::new(from, to)).collect::<Result<_, _>>()?;
            let mut refs: Vec<&mut resample::Resampler> = st.iter_mut().collect();
            let ins: Vec<&[f32]> = inputs[..n].iter().map(|v| v.as_slice()).collect();
            let mut outs = vec![Vec::new(); n];
            resample::process_batch(&mut refs, &ins, &mut outs)?;
            Ok(resample::finish_batch(&mut refs, &mut outs)?)
        };
        run(1)?; // designs the filter once (cached)
        let single = best(&one, 1, &run)?;
        let batched = best(&many, streams, &run)?;
        progress.suspend(|| {
            println!("resample {from} -> {to} Hz: {single:.0}x real time on 1 thread; batched {batched:.0}x in total")
        });
        if let Some(dev) = &gpu {
            let make = |d: &PostDevice| DeviceStream::resampler(d, from, to);
            let (single, batched) = (best_gpu(dev, &inputs, 1, &make)?, best_gpu(dev, &inputs, streams, &make)?);
            progress.suspend(|| {
                println!("resample {from} -> {to} Hz on the GPU: {single:.0}x real time alone; batched {batched:.0}x in total")
            });
        }
    }
    for rate in [24_000u32, 48_000] {
        progress.set_message(format!("timing the denoiser at {rate} Hz"));
        let inputs: Vec<Vec<f32>> = (0..streams).map(|i| noise(rate, 100 + i as u64)).collect();
        let run = |n: usize| -> Result<(), Fail> {
            let mut st: Vec<denoise::Denoiser> =
                (0..n).map(|_| denoise::Denoiser::new(rate, 1.0)).collect::<Result<_, _>>()?;
            let mut refs: Vec<&mut denoise::Denoiser> = st.iter_mut().collect();
            let ins: Vec<&[f32]> = inputs[..n].iter().map(|v| v.as_slice()).collect();
            let mut outs = vec![Vec::new(); n];
            denoise::process_batch(&mut refs, &ins, &mut outs)?;
            for (s, o) in refs.iter_mut().zip(outs.iter_mut()) {
                s.flush(o);
            }
            Ok(())
        };
        let single = best(&one, 1, &run)?;
        let batched = best(&many, streams, &run)?;
        progress.suspend(|| {
            println!("denoise {rate} Hz: {single:.0}x real time on 1 thread; batched {batched:.0}x in total")
        });
        if let Some(dev) = &gpu {
            let make = |d: &PostDevice| DeviceStream::denoiser(d, rate, 1.0);
            let (single, batched) = (best_gpu(dev, &inputs, 1, &make)?, best_gpu(dev, &inputs, streams, &make)?);
            progress.suspend(|| {
                println!("denoise {rate} Hz on the GPU: {single:.0}x real time alone; batched {batched:.0}x in total")
            });
        }
    }
    progress.finish_and_clear();
    Ok(())
}
