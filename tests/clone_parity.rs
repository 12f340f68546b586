//! Voice cloning with a Qwen3-TTS Base checkpoint against the official implementation.
//!
//! `tools/parity/make_clone_fixtures.py` builds a tiny random-weight Base checkpoint with the
//! official classes and records, for two 24 kHz reference clips, the x-vector and the reference
//! codes, and for x-vector-only and in-context (ICL) cloning the prompt rows, the greedy codes and
//! the waveform `generate_voice_clone` returns. Here a voice made of the official x-vector and
//! codes goes through voxkit's prompt builder, generator and codec: prompt rows and waveforms
//! within 1e-4 (max abs), codes exactly. A missing fixture fails the test.

#[path = "support/device.rs"]
mod device;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use voxkit::models::codec::Codec;
use voxkit::models::tts::{Qwen3Tts, build_prompt};
use voxkit::seams::request::{Sampling, TtsRequest};
use voxkit::seams::voice::{Voice, VoiceReference};
use voxkit::seams::{Finish, TtsModel, TtsPrefill};

const TOL: f32 = 1e-4;

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tts/tiny-06b-base")
}

struct Reference {
    json: Value,
    /// `reference.safetensors` (f32 activations, i64 codes).
    bytes: Vec<u8>,
}

fn reference() -> Reference {
    let dir = folder();
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap_or_else(|e| {
        panic!("missing fixture {}/reference.json ({e}): run tools/parity/make_clone_fixtures.py", dir.display())
    });
    let bytes = std::fs::read(dir.join("reference.safetensors")).expect("reference.safetensors");
    Reference { json: serde_json::from_str(&text).unwrap(), bytes }
}

impl Reference {
    fn tensor(&self, name: &str, dtype: Dtype) -> (Vec<usize>, Vec<u8>) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("fixture tensor {name} missing"));
        assert_eq!(t.dtype(), dtype, "{name}");
        (t.shape().to_vec(), t.data().to_vec())
    }

    fn floats(&self, name: &str) -> Vec<f32> {
        let (_, b) = self.tensor(name, Dtype::F32);
        b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }

    /// An i64 `[frames, groups]` tensor of codes.
    fn codes(&self, name: &str) -> Vec<Vec<u32>> {
        let (shape, b) = self.tensor(name, Dtype::I64);
        let raw: Vec<u32> = b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32).collect();
        raw.chunks(shape[1]).map(<[u32]>::to_vec).collect()
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length {} vs {}", a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().map(|a| a.iter().map(|x| x.as_u64().unwrap() as u32).collect()).unwrap_or_default()
}

/// The voice of a case made of the official x-vector and reference codes.
fn voice(model: &Qwen3Tts, r: &Reference, case: &Value) -> Voice {
    let name = case["reference"].as_str().unwrap();
    let reference = case["ref_text"]
        .as_str()
        .map(|text| VoiceReference { text: text.to_string(), codes: r.codes(&format!("{name}.codes")) });
    Voice {
        model: model.fingerprint.expect("a Base checkpoint"),
        xvector: r.floats(&format!("{name}.xvector")),
        reference,
    }
}

fn request(case: &Value, voice: Voice) -> TtsRequest {
    TtsRequest {
        text: case["text"].as_str().unwrap().into(),
        language: case["language"].as_str().map(str::to_string),
        voice: Some(Arc::new(voice)),
        max_new_tokens: case["max_new_tokens"].as_u64().unwrap() as u32,
        sampling: Sampling { greedy: true, seed: Some(0), ..Default::default() },
        text_streaming: !case["non_streaming_mode"].as_bool().unwrap(),
        ..Default::default()
    }
}

fn generate(model: &mut Qwen3Tts, req: &TtsRequest) -> (Vec<Vec<u32>>, Finish) {
    let seqs = [TtsPrefill { slot: 0, request: req, max_new_tokens: req.max_new_tokens }];
    model.prefill(&seqs).remove(0).unwrap_or_else(|e| panic!("prefill: {}", e.message));
    let mut frames = Vec::new();
    loop {
        let step = model.step(&[0]).unwrap().remove(0);
        frames.extend(step.frame);
        if let Some(f) = step.finish {
            model.release(0);
            return (frames, f);
        }
    }
}

#[test]
fn cloned_voices_give_the_official_prompts_codes_and_waveforms() {
    let dir = folder();
    let mut model = Qwen3Tts::load(&dir, device::compute(2), 2).unwrap_or_else(|e| panic!("{}", e.message));
    let codec = Codec::load(&dir.join("speech_tokenizer"), device::compute(2)).unwrap();
    let r = reference();
    let cases = r.json["cases"].as_array().expect("cases").clone();
    assert_eq!(cases.len(), 5);
    for (i, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let v = voice(&model, &r, case);
        let req = request(case, v.clone());

        // 1. Tokens and the prompt rows (speaker row = the x-vector; ICL tails C and D).
        let input = model.prompt_input(&req).unwrap_or_else(|e| panic!("{name}: {}", e.message));
        assert_eq!(input.input_ids, ids(&case["input_ids"]), "{name}: input_ids");
        if let Some(want) = case["ref_ids"].as_array() {
            let want: Vec<u32> = want.iter().map(|x| x.as_u64().unwrap() as u32).collect();
            assert_eq!(input.voice.as_ref().unwrap().reference.as_ref().unwrap().0, want, "{name}: ref_ids");
        }
        let prompt = build_prompt(&model.config, &input).unwrap();
        assert_eq!(prompt.rows.len() as u64, case["prompt_len"].as_u64().unwrap(), "{name}: prompt length");
        assert_eq!(prompt.trailing.len() as u64, case["trailing_len"].as_u64().unwrap(), "{name}: trailing length");
        let (x, trailing) = model.embed_prompt(&prompt, Some(&v)).unwrap();
        let d = max_diff(&x.to_host(), &r.floats(&format!("case{i}.prompt_embeds")));
        assert!(d <= TOL, "{name}: prompt rows differ by {d:e}");
        let d = max_diff(&trailing.to_host(), &r.floats(&format!("case{i}.trailing_text")));
        assert!(d <= TOL, "{name}: trailing text rows differ by {d:e}");

        // 2. Greedy codes, frame for frame.
        let want: Vec<Vec<u32>> = case["codes"].as_array().unwrap().iter().map(ids).collect();
        let (got, finish) = generate(&mut model, &req);
        let first = got.iter().zip(&want).position(|(a, b)| a != b);
        assert!(
            got.len() == want.len() && first.is_none(),
            "{name}: {} frames vs {}, first difference at {first:?}",
            got.len(),
            want.len()
        );
        assert_eq!(finish == Finish::Eos, case["eos"].as_bool().unwrap(), "{name}: EOS vs cap");

        // 3. The waveform: reference and generated codes decoded together, the reference cut off.
        let context = v.reference.as_ref().map_or(&[][..], |r| &r.codes[..]);
        let all: Vec<Vec<u32>> = context.iter().chain(&got).cloned().collect();
        let audio = codec.decode(&all).unwrap();
        let cut = context.len() * codec.samples_per_frame();
        assert_eq!(cut as u64, case["cut_samples"].as_u64().unwrap(), "{name}: samples cut");
        let d = max_diff(&audio[cut..], &r.floats(&format!("case{i}.audio")));
        assert!(d <= TOL, "{name}: waveform differs by {d:e}");
        eprintln!(
            "{name}: {} rows, {} frames identical ({finish:?}), waveform within {d:e}",
            prompt.rows.len(),
            got.len()
        );
    }
}

fn read_all(e: &voxkit::Engine, id: u64) -> Vec<f32> {
    let mut out = Vec::new();
    let mut buf = vec![0f32; 4096];
    loop {
        let n = e.read_audio(id, &mut buf).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Through the engine, offline and streaming: an in-context voice's job gives the official
/// waveform (the codec decodes the reference first, its audio is not the job's).
#[test]
fn engine_jobs_with_cloned_voices_give_the_official_waveforms() {
    use voxkit::{Engine, EngineConfig, JobState};
    let dir = folder();
    let model = Qwen3Tts::load(&dir, device::compute(1), 1).unwrap();
    let r = reference();
    let cases = r.json["cases"].as_array().expect("cases").clone();
    let e = Engine::new(EngineConfig {
        tts_model_dir: Some(dir.clone()),
        max_batch: 4,
        cpu_threads: 2,
        device: device::device(),
        ..Default::default()
    })
    .unwrap();
    // Every case at once (one batch: x-vector-only and ICL voices side by side), each streamed
    // and offline.
    let mut jobs = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        for stream in [false, true] {
            let req = TtsRequest { stream, ..request(case, voice(&model, &r, case)) };
            jobs.push((i, stream, e.submit_tts(req).unwrap()));
        }
    }
    for (i, stream, id) in jobs {
        let info = e.wait(id, Some(std::time::Duration::from_secs(300))).unwrap();
        assert_eq!(info.state, JobState::Done, "{:?}", info.error);
        let got = read_all(&e, id);
        let want = r.floats(&format!("case{i}.audio"));
        let d = max_diff(&got, &want);
        let name = cases[i]["name"].as_str().unwrap();
        assert!(d <= TOL, "{name} (stream {stream}): waveform differs by {d:e}");
        e.release(id).unwrap();
    }
}

/// The whole path from reference audio: `Engine::create_voice` on the official reference clip
/// gives the official x-vector and codes, and jobs with that voice the official waveforms.
#[test]
fn voices_made_from_reference_audio_give_the_official_waveforms() {
    use voxkit::seams::request::VoiceRequest;
    use voxkit::{Engine, EngineConfig, JobState};
    let r = reference();
    let cases = r.json["cases"].as_array().expect("cases").clone();
    let e = Engine::new(EngineConfig {
        tts_model_dir: Some(folder()),
        max_batch: 4,
        cpu_threads: 2,
        device: device::device(),
        ..Default::default()
    })
    .unwrap();
    for (i, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let reference = case["reference"].as_str().unwrap();
        let voice = e
            .create_voice(VoiceRequest {
                audio: r.floats(&format!("{reference}.audio")),
                sample_rate: 24_000,
                channels: 1,
                transcript: case["ref_text"].as_str().map(str::to_string),
                denoise: None,
            })
            .unwrap_or_else(|err| panic!("{name}: {}", err.message));
        let want = r.floats(&format!("{reference}.xvector"));
        let peak = want.iter().fold(1f32, |m, v| m.max(v.abs()));
        let d = max_diff(&voice.xvector, &want);
        assert!(d <= TOL * peak, "{name}: x-vector differs by {d:e} (peak {peak})");
        match (&voice.reference, case["ref_text"].as_str()) {
            (Some(v), Some(_)) => {
                assert_eq!(v.codes, r.codes(&format!("{reference}.codes")), "{name}: reference codes")
            }
            (None, None) => {}
            _ => panic!("{name}: in-context iff a transcript was given"),
        }
        let req = TtsRequest {
            voice: Some(Arc::new(voice)),
            ..request(case, Voice { model: [0; 32], xvector: vec![0.0], reference: None })
        };
        let id = e.submit_tts(req).unwrap();
        let info = e.wait(id, Some(std::time::Duration::from_secs(300))).unwrap();
        assert_eq!(info.state, JobState::Done, "{:?}", info.error);
        let d = max_diff(&read_all(&e, id), &r.floats(&format!("case{i}.audio")));
        assert!(d <= TOL, "{name}: waveform from the reference audio differs by {d:e}");
        e.release(id).unwrap();
    }
}
