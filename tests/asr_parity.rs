//! Qwen3-ASR against the official implementation (`qwen-asr` 0.0.6, transformers 4.57.6).
//!
//! `tools/parity/make_asr_fixtures.py` builds a tiny random-weight Qwen3-ASR checkpoint with the
//! official classes, saves it in the official layout under `tests/fixtures/asr/tiny/` (bf16
//! weights, no stored head: the tied head is the embedding), and records, per clip, the official
//! processor's log-mel features and the audio tower's output (with the official window fix), and
//! per case (context, forced language) the prompt ids, the last-position logits, the greedy ids
//! and what `transcribe` returns. Clips cover one short chunk, a padded tail chunk, two attention
//! windows, and a very short clip. Floats must agree within 1e-4 (max abs), ids exactly. A
//! missing fixture fails the test.

#[path = "support/device.rs"]
mod device;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use voxkit::backend::Cpu;
use voxkit::models::asr::Qwen3Asr;
use voxkit::seams::request::AsrRequest;
use voxkit::seams::{AsrFeatures, AsrModel, AsrPrefill, Finish};
use voxkit::{Engine, EngineConfig, JobState};

const TOL: f32 = 1e-4;
const CLIPS: [&str; 4] = ["A", "B", "C", "D"];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asr/tiny")
}

struct Reference {
    json: Value,
    bytes: Vec<u8>,
}

fn reference() -> Reference {
    let d = dir();
    let text = std::fs::read_to_string(d.join("reference.json")).unwrap_or_else(|e| {
        panic!("missing fixture {}/reference.json ({e}): run tools/parity/make_asr_fixtures.py", d.display())
    });
    let bytes = std::fs::read(d.join("reference.safetensors")).expect("reference.safetensors");
    Reference { json: serde_json::from_str(&text).unwrap(), bytes }
}

impl Reference {
    /// A tensor as f32 values (F32, I16 or I64 in the file) and its shape.
    fn get(&self, name: &str) -> Option<(Vec<f32>, Vec<usize>)> {
        let st = SafeTensors::deserialize(&self.bytes).expect("reference.safetensors parses");
        let t = st.tensor(name).ok()?;
        let b = t.data();
        let v: Vec<f32> = match t.dtype() {
            Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::I16 => b.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as f32).collect(),
            Dtype::I64 => b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            other => panic!("{name}: unexpected dtype {other:?}"),
        };
        Some((v, t.shape().to_vec()))
    }
    fn need(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        self.get(name).unwrap_or_else(|| panic!("reference tensor {name} is missing"))
    }
    /// A clip's float samples (the official code was given i16 / 32768).
    fn audio(&self, clip: &str) -> Vec<f32> {
        self.need(&format!("{clip}.audio_i16")).0.iter().map(|v| v / 32768.0).collect()
    }
    fn cases(&self) -> Vec<Value> {
        self.json["cases"].as_array().expect("cases").clone()
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length {} vs {}", a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    let d = max_diff(got, want);
    eprintln!("{what}: max abs difference {d:e}");
    assert!(d <= TOL, "{what}: max abs difference {d:e} > {TOL:e}");
}

fn model(slots: usize) -> Qwen3Asr {
    Qwen3Asr::load(&dir(), device::compute(2), slots).expect("the tiny ASR checkpoint loads")
}

/// `[128, T]` (reference layout) → `[T, 128]` (ours).
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("id list").iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn opt_str(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

#[test]
fn mel_features_match_the_official_processor() {
    let r = reference();
    let m = model(1);
    for clip in CLIPS {
        let (want, shape) = r.need(&format!("{clip}.mel"));
        let got = m.mel_features(&r.audio(clip));
        assert_eq!(got.frames, shape[1], "clip {clip}: frame count");
        assert_eq!(got.frames as u64, r.json["clips"][clip]["feature_len"].as_u64().unwrap());
        assert_close(&format!("clip {clip} mel"), &got.data, &transpose(&want, shape[0], shape[1]));
    }
}

#[test]
fn encoder_matches_the_windowed_official_audio_tower() {
    let r = reference();
    let m = model(1);
    for clip in CLIPS {
        let (mel, shape) = r.need(&format!("{clip}.mel"));
        let mel = transpose(&mel, shape[0], shape[1]);
        let (want, wshape) = r.need(&format!("{clip}.enc"));
        let got = m.encoder.forward(&[&mel]).remove(0);
        assert_eq!(got.rows(), wshape[0], "clip {clip}: audio tokens");
        assert_eq!(got.rows() as u64, r.json["clips"][clip]["audio_tokens"].as_u64().unwrap());
        let got = got.to_host();
        assert_close(&format!("clip {clip} encoder"), &got, &want);
        // The clip longer than a window really depends on the windowing.
        if let Some((full, _)) = r.get(&format!("{clip}.enc_full_attention")) {
            assert!(max_diff(&got, &full) > 1e-3, "clip {clip}: windowed output equals full attention");
        }
    }
}

#[test]
fn prompts_logits_and_greedy_ids_match_every_case() {
    let r = reference();
    let mut m = model(1);
    for case in r.cases() {
        let id = case["id"].as_str().unwrap();
        let clip = case["clip"].as_str().unwrap();
        let context = opt_str(&case["context"]);
        let language = opt_str(&case["language"]);
        let f = m.mel_features(&r.audio(clip));
        let (prefix, suffix) = m.prompt_parts(context.as_deref(), language.as_deref()).unwrap();
        let tokens = m.encoder.tokens(f.frames);
        assert_eq!(m.prompt_ids(&prefix, &suffix, tokens), ids(&case["input_ids"]), "case {id}: prompt ids");

        let logits = m.prefill_passes(&[(&f.data, &prefix, &suffix)], &[0]).unwrap().to_host();
        let logits = &logits[..];
        if let Some((want, _)) = r.get(&format!("{id}.logits")) {
            assert_close(&format!("case {id} logits"), logits, &want);
        }
        let (top_ids, _) = r.need(&format!("{id}.topk_ids"));
        let (top_logits, _) = r.need(&format!("{id}.topk_logits"));
        let ours: Vec<f32> = top_ids.iter().map(|&i| logits[i as usize]).collect();
        assert_close(&format!("case {id} top-k logits"), &ours, &top_logits);

        // Greedy decoding through the engine seam, as the worker drives it.
        let req = AsrRequest { context: context.clone(), language: language.clone(), ..Default::default() };
        let cap = case["max_new_tokens"].as_u64().unwrap() as u32;
        let feats = AsrFeatures { passes: Vec::new(), ..f.clone() };
        let res = m.prefill(&[AsrPrefill { slot: 0, features: &feats, request: &req, max_new_tokens: cap }]);
        res.into_iter().next().unwrap().unwrap();
        let mut got = Vec::new();
        let finish = loop {
            let s = m.step(&[0]).unwrap().remove(0);
            got.extend(s.token);
            if let Some(f) = s.finish {
                break f;
            }
        };
        let mut want = ids(&case["generated_ids"]);
        let ended = case["ended"].as_str().unwrap();
        if ended == "eos" {
            let stop = want.pop().unwrap();
            assert!([151645, 151643].contains(&stop), "case {id}: ends with {stop}");
            assert_eq!(finish, Finish::Eos, "case {id}");
        } else {
            assert_eq!(finish, Finish::Cap, "case {id}");
        }
        assert_eq!(got, want, "case {id}: greedy ids");
        let t = m.transcript(0);
        assert_eq!(t.language, case["transcribe"]["language"].as_str().unwrap(), "case {id}: language");
        assert_eq!(t.text, case["transcribe"]["text"].as_str().unwrap(), "case {id}: text");
        m.release(0);
    }
}

/// Several clips of different lengths in one batch (one encoder call, one prefill, shared decode
/// steps) give each clip exactly its single-clip ids and transcript.
#[test]
fn a_batch_gives_each_clip_its_single_clip_result() {
    let r = reference();
    let cases: Vec<Value> = r.cases().into_iter().filter(|c| c["language"].is_null()).collect();
    let mut m = model(cases.len());
    let mut single = Vec::new();
    let run = |m: &mut Qwen3Asr, batch: &[(usize, &Value)]| -> Vec<(Vec<u32>, String)> {
        let feats: Vec<AsrFeatures> =
            batch.iter().map(|(_, c)| m.mel_features(&r.audio(c["clip"].as_str().unwrap()))).collect();
        let reqs: Vec<AsrRequest> =
            batch.iter().map(|(_, c)| AsrRequest { context: opt_str(&c["context"]), ..Default::default() }).collect();
        let seqs: Vec<AsrPrefill<'_>> = batch
            .iter()
            .zip(&feats)
            .zip(&reqs)
            .map(|(((slot, _), f), q)| AsrPrefill { slot: *slot, features: f, request: q, max_new_tokens: 24 })
            .collect();
        for res in m.prefill(&seqs) {
            res.unwrap();
        }
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); batch.len()];
        let mut active: Vec<usize> = (0..batch.len()).collect();
        let mut texts = vec![String::new(); batch.len()];
        while !active.is_empty() {
            let slots: Vec<usize> = active.iter().map(|&i| batch[i].0).collect();
            let steps = m.step(&slots).unwrap();
            let mut still = Vec::new();
            for (&i, s) in active.iter().zip(steps) {
                out[i].extend(s.token);
                if s.finish.is_some() {
                    texts[i] = m.transcript(batch[i].0).text;
                    m.release(batch[i].0);
                } else {
                    still.push(i);
                }
            }
            active = still;
        }
        out.into_iter().zip(texts).collect()
    };
    for c in &cases {
        single.push(run(&mut m, &[(0, c)]).remove(0));
    }
    let batch: Vec<(usize, &Value)> = cases.iter().enumerate().map(|(i, c)| (cases.len() - 1 - i, c)).collect();
    let batched = run(&mut m, &batch);
    for ((c, s), b) in cases.iter().zip(&single).zip(&batched) {
        assert_eq!(s, b, "case {}: batched differs from alone", c["id"]);
        assert_eq!(s.0, {
            let mut w = ids(&c["generated_ids"]);
            if c["ended"] == "eos" {
                w.pop();
            }
            w
        });
    }
}

fn engine(max_batch: usize) -> Engine {
    let device = device::device();
    Engine::new(EngineConfig { asr_model_dir: Some(dir()), max_batch, cpu_threads: 2, device, ..Default::default() })
        .unwrap()
}

/// `vox_asr_submit`'s engine path: the text and language are what the official `transcribe`
/// returns, for every case, submitted all at once (batched by the worker).
#[test]
fn engine_transcripts_equal_the_official_transcribe() {
    let r = reference();
    let e = engine(8);
    let mut jobs = Vec::new();
    for case in r.cases() {
        let clip = case["clip"].as_str().unwrap();
        let req = AsrRequest {
            audio: r.audio(clip),
            sample_rate: 16_000,
            channels: 1,
            context: opt_str(&case["context"]),
            language: opt_str(&case["language"]),
            max_new_tokens: case["max_new_tokens"].as_u64().unwrap() as u32,
            ..Default::default()
        };
        jobs.push((e.submit_asr(req).unwrap(), case));
    }
    for (id, case) in jobs {
        let info = e.wait(id, Some(Duration::from_secs(120))).unwrap();
        assert_eq!(info.state, JobState::Done, "case {}: {:?}", case["id"], info.error);
        assert_eq!(e.text(id).unwrap(), case["transcribe"]["text"].as_str().unwrap(), "case {}", case["id"]);
        assert_eq!(e.language(id).unwrap(), case["transcribe"]["language"].as_str().unwrap(), "case {}", case["id"]);
        let truncated = info.flags & voxkit::engine::job::FLAG_TRUNCATED != 0;
        assert_eq!(truncated, case["ended"] == "cap", "case {}: TRUNCATED flag", case["id"]);
        let t = e.timings(id).unwrap();
        assert!(t.asr_frontend_ms > 0.0 && t.asr_encode_ms > 0.0 && t.asr_decode_ms > 0.0, "{t:?}");
        e.release(id).unwrap();
    }
}

/// 44.1 kHz stereo input goes through the downmix and the resampler to 16 kHz. The official
/// code resamples with soxr, so only the path and the token count are compared (the samples
/// differ in the last bits).
#[test]
fn stereo_44k_input_is_mixed_down_and_resampled() {
    let r = reference();
    let s = &r.json["stereo_case"];
    let e = engine(1);
    let req = AsrRequest {
        audio: r.audio("S"),
        sample_rate: s["sample_rate"].as_u64().unwrap() as u32,
        channels: s["channels"].as_u64().unwrap() as u32,
        max_new_tokens: 24,
        ..Default::default()
    };
    let id = e.submit_asr(req).unwrap();
    let info = e.wait(id, Some(Duration::from_secs(60))).unwrap();
    assert_eq!(info.state, JobState::Done, "{:?}", info.error);
    assert!(e.timings(id).unwrap().upsample_ms > 0.0, "the resample stage ran");
    // Same resampled length, so the same prompt as the official run.
    let m = model(1);
    let mono: Vec<f32> = r.audio("S").chunks(2).map(|f| (f[0] + f[1]) / 2.0).collect();
    let resampled = voxkit::dsp::resample::resample(&mono, 44_100, 16_000).unwrap();
    assert_eq!(resampled.len() as u64, s["official_resampled_len"].as_u64().unwrap());
    let f = m.mel_features(&resampled);
    assert_eq!(f.frames as u64, s["official_feature_len"].as_u64().unwrap());
    assert_eq!(m.encoder.tokens(f.frames) as u64, s["official_audio_tokens"].as_u64().unwrap());
}

/// Long audio is decoded in passes (the official per-pass limit is 1200 s; here two clips stand
/// for two passes of one job): the transcript is the passes' texts joined with no separator
/// and their languages merged, each pass exactly as it runs alone.
#[test]
fn passes_of_one_job_are_joined_as_the_official_transcribe() {
    let r = reference();
    let mut m = model(1);
    let cases: Vec<Value> = r.cases();
    let a = cases.iter().find(|c| c["id"] == "A2").unwrap();
    let b = cases.iter().find(|c| c["id"] == "B1").unwrap();
    let fa = m.mel_features(&r.audio("A"));
    let fb = m.mel_features(&r.audio("B"));
    let mut data = fa.data.clone();
    data.extend_from_slice(&fb.data);
    let joined = AsrFeatures { data, frames: fa.frames + fb.frames, bins: fa.bins, passes: vec![fa.frames, fb.frames] };
    // Same context for both passes, as the official code gives every chunk the request's context.
    let req = AsrRequest { context: opt_str(&a["context"]), ..Default::default() };
    let b_same_context =
        cases.iter().find(|c| c["clip"] == "B" && c["context"] == a["context"] && c["language"].is_null()).unwrap_or(b);
    m.prefill(&[AsrPrefill { slot: 0, features: &joined, request: &req, max_new_tokens: 24 }]).remove(0).unwrap();
    let mut tokens = Vec::new();
    let finish = loop {
        let s = m.step(&[0]).unwrap().remove(0);
        tokens.extend(s.token);
        if let Some(f) = s.finish {
            break f;
        }
    };
    let strip = |c: &Value| {
        let mut w = ids(&c["generated_ids"]);
        if c["ended"] == "eos" {
            w.pop();
        }
        w
    };
    let mut want = strip(a);
    want.extend(strip(b_same_context));
    assert_eq!(tokens, want);
    // A2 ran into its cap, so the job is TRUNCATED even though the last pass ended on EOS.
    assert_eq!(finish, Finish::Cap);
    let t = m.transcript(0);
    let text = |c: &Value| c["transcribe"]["text"].as_str().unwrap().to_string();
    assert_eq!(t.text, text(a) + &text(b_same_context));
    assert_eq!(t.language, "");
}

/// The repetition guard: a runaway loop (A2 repeats " куда") stops soon after the official
/// clean-up threshold instead of running to a large cap, is reported TRUNCATED, and its cleaned
/// text is what the official code returns for that loop.
#[test]
fn runaway_repetition_stops_early_with_the_official_cleaned_text() {
    let r = reference();
    let a2 = r.cases().into_iter().find(|c| c["id"] == "A2").unwrap();
    let e = engine(1);
    let req = AsrRequest {
        audio: r.audio("A"),
        sample_rate: 16_000,
        channels: 1,
        context: opt_str(&a2["context"]),
        max_new_tokens: 400,
        ..Default::default()
    };
    let id = e.submit_asr(req).unwrap();
    let info = e.wait(id, Some(Duration::from_secs(120))).unwrap();
    assert_eq!(info.state, JobState::Done);
    assert_ne!(info.flags & voxkit::engine::job::FLAG_TRUNCATED, 0);
    assert!(info.tokens < 40, "the guard stopped after {} tokens", info.tokens);
    assert_eq!(e.text(id).unwrap(), a2["transcribe"]["text"].as_str().unwrap());
}

/// `vox_asr_submit` → `vox_get_text` / `vox_get_language` through the C ABI, with the official
/// transcript of case C4 (context and forced language).
#[test]
fn asr_through_the_c_abi() {
    use std::ffi::{CStr, CString};
    use voxkit::ffi::*;
    let r = reference();
    let case = r.cases().into_iter().find(|c| c["id"] == "C4").unwrap();
    let audio = r.audio("C");
    let dir = CString::new(dir().to_str().unwrap()).unwrap();
    let context = CString::new(case["context"].as_str().unwrap()).unwrap();
    let language = CString::new(case["language"].as_str().unwrap().to_lowercase()).unwrap();
    unsafe {
        let mut cfg = std::mem::zeroed::<VoxEngineConfig>();
        assert_eq!(vox_engine_config_init(&mut cfg), VOX_OK);
        cfg.asr_model_dir = dir.as_ptr();
        cfg.cpu_threads = 2;
        let mut engine = std::ptr::null_mut();
        assert_eq!(vox_engine_create(&cfg, &mut engine), VOX_OK);
        let mut req = std::mem::zeroed::<VoxAsrRequest>();
        assert_eq!(vox_asr_request_init(&mut req), VOX_OK);
        req.pcm = audio.as_ptr();
        req.frames = audio.len() as u64;
        req.sample_rate = 16_000;
        req.channels = 1;
        req.context = context.as_ptr();
        req.language = language.as_ptr(); // "english": normalised as the official code does
        req.max_new_tokens = 24;
        let mut job = 0;
        assert_eq!(vox_asr_submit(engine, &req, &mut job), VOX_OK);
        let mut info = VoxJobInfo { struct_size: std::mem::size_of::<VoxJobInfo>() as u32, ..Default::default() };
        assert_eq!(vox_wait(engine, job, 120_000, &mut info), VOX_OK);
        assert_eq!(info.state, VOX_JOB_DONE);
        let mut buf = vec![0 as std::ffi::c_char; 4096];
        let mut need = 0usize;
        assert_eq!(vox_get_text(engine, job, buf.as_mut_ptr(), buf.len(), &mut need), VOX_OK);
        assert_eq!(CStr::from_ptr(buf.as_ptr()).to_str().unwrap(), case["transcribe"]["text"].as_str().unwrap());
        assert_eq!(vox_get_language(engine, job, buf.as_mut_ptr(), buf.len(), &mut need), VOX_OK);
        assert_eq!(CStr::from_ptr(buf.as_ptr()).to_str().unwrap(), "English");
        let mut t = VoxTimings { struct_size: std::mem::size_of::<VoxTimings>() as u32, ..Default::default() };
        assert_eq!(vox_get_timings(engine, job, &mut t), VOX_OK);
        assert!(t.asr_encode_ms > 0.0 && t.asr_decode_ms > 0.0);
        assert_eq!(vox_release(engine, job), VOX_OK);

        // An unsupported forced language fails the job with a message naming it.
        let bad = CString::new("Klingon").unwrap();
        req.language = bad.as_ptr();
        assert_eq!(vox_asr_submit(engine, &req, &mut job), VOX_OK);
        assert_eq!(vox_wait(engine, job, 120_000, &mut info), VOX_OK);
        assert_eq!(info.state, VOX_JOB_FAILED);
        assert_eq!(vox_job_error(engine, job, buf.as_mut_ptr(), buf.len(), &mut need), VOX_OK);
        assert!(CStr::from_ptr(buf.as_ptr()).to_str().unwrap().contains("Klingon"));
        vox_engine_destroy(engine);
    }
}

/// Inputs the official code cannot take (shorter than the STFT's reflect padding) and silence
/// still give a transcript; a broken checkpoint is refused with the file and tensor named.
#[test]
fn tiny_inputs_and_broken_checkpoints() {
    let e = engine(2);
    for audio in [vec![0.1f32; 100], vec![0.0f32; 16_000], vec![3.0f32; 4000]] {
        let n = audio.len();
        let id = e
            .submit_asr(AsrRequest { audio, sample_rate: 16_000, channels: 1, max_new_tokens: 4, ..Default::default() })
            .unwrap();
        let info = e.wait(id, Some(Duration::from_secs(60))).unwrap();
        assert_eq!(info.state, JobState::Done, "{n} samples: {:?}", info.error);
    }

    // A checkpoint without one encoder tensor, and one with a mis-shaped decoder tensor.
    let src = dir();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for (what, drop, reshape) in [
        ("missing", Some("thinker.audio_tower.layers.1.fc2.bias"), None),
        ("mis-shaped", None, Some("thinker.model.layers.0.mlp.up_proj.weight")),
    ] {
        let out = std::env::temp_dir().join(format!("voxkit-asr-broken-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        for f in std::fs::read_dir(&src).unwrap() {
            let f = f.unwrap();
            let name = f.file_name();
            if name != "model.safetensors" && !name.to_string_lossy().starts_with("reference") {
                std::fs::copy(f.path(), out.join(&name)).unwrap();
            }
        }
        let tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
            .tensors()
            .into_iter()
            .filter(|(n, _)| Some(n.as_str()) != drop)
            .map(|(n, v)| {
                if Some(n.as_str()) == reshape {
                    let s = v.shape();
                    let shape = vec![s[1], s[0]];
                    (n, safetensors::tensor::TensorView::new(v.dtype(), shape, v.data()).unwrap())
                } else {
                    (n, v)
                }
            })
            .collect();
        safetensors::serialize_to_file(tensors, None, &out.join("model.safetensors")).unwrap();
        let err = match Qwen3Asr::load(&out, Arc::new(Cpu::new(1).unwrap()), 1) {
            Ok(_) => panic!("a {what} tensor was accepted"),
            Err(e) => e,
        };
        let name = drop.or(reshape).unwrap();
        assert!(err.message.contains(name), "{what}: {}", err.message);
        assert!(err.message.contains("model.safetensors"), "{what}: {}", err.message);
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// Audio longer than Whisper's 30 s window is never truncated: 35 s give 3500 frames and
/// 13 · 35 audio tokens; the ASR input chain can denoise before the front-end.
#[test]
fn long_clips_are_not_truncated_and_input_can_be_denoised() {
    let r = reference();
    let m = model(1);
    let clip: Vec<f32> = r.audio("C").iter().cycle().take(35 * 16_000).copied().collect();
    let f = m.mel_features(&clip);
    assert_eq!(f.frames, 3500);
    assert_eq!(m.encoder.tokens(f.frames), 455);
    let out = m.encoder.forward(&[&f.data]).remove(0);
    assert_eq!(out.rows(), 455);
    assert!(out.to_host().iter().all(|v| v.is_finite()));

    let e = engine(1);
    let id = e
        .submit_asr(AsrRequest {
            audio: r.audio("B"),
            sample_rate: 16_000,
            channels: 1,
            denoise: Some(1.0),
            max_new_tokens: 4,
            ..Default::default()
        })
        .unwrap();
    let info = e.wait(id, Some(Duration::from_secs(60))).unwrap();
    assert_eq!(info.state, JobState::Done, "{:?}", info.error);
    assert!(e.timings(id).unwrap().denoise_ms > 0.0);
}

/// A GPU that runs out of memory fails the job with `OutOfMemory` (not an internal error, not an
/// abort), and the engine goes on. Run by scripts/emulator-check.sh on an emulated device with
/// almost no memory (VOXKIT_EMU_MEMORY_MB=2: the tiny model's embedding table alone is ~5 MB).
#[test]
#[ignore = "needs the emulated device with VOXKIT_EMU_MEMORY_MB=2 (scripts/emulator-check.sh)"]
fn a_full_gpu_fails_the_job_with_out_of_memory() {
    assert_eq!(std::env::var("VOXKIT_EMU_MEMORY_MB").as_deref(), Ok("2"), "run on a 2 MB emulated device");
    assert!(device::on_cuda(), "run with VOXKIT_TEST_DEVICE=cuda");
    let r = reference();
    // A budget larger than the device, so that the engine admits the model and the device itself
    // runs out (with the automatic budget, create refuses the model up front: also checked).
    let cfg = |memory_budget| EngineConfig {
        asr_model_dir: Some(dir()),
        device: device::device(),
        memory_budget,
        ..Default::default()
    };
    let refused = Engine::new(cfg(0)).err().expect("the automatic budget refuses the model");
    assert_eq!(refused.kind, voxkit::error::ErrorKind::OutOfMemory, "{}", refused.message);
    let e = Engine::new(cfg(1 << 30)).unwrap();
    for _ in 0..2 {
        let req = AsrRequest { audio: r.audio("A"), sample_rate: 16_000, channels: 1, ..Default::default() };
        let id = e.submit_asr(req).unwrap();
        let info = e.wait(id, Some(Duration::from_secs(120))).unwrap();
        assert_eq!(info.state, JobState::Failed);
        let err = info.error.expect("the failure's error");
        assert_eq!(err.kind, voxkit::error::ErrorKind::OutOfMemory, "{}", err.message);
        e.release(id).unwrap();
    }
}
