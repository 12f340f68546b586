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
        model: model.voice.expect("a Base checkpoint").model,
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
    // and offline. On CUDA (the emulated device is slow; offline decoding is covered there by
    // `voices_made_…`): the in-context cases, streamed (the codec stream primed on the device).
    let mut jobs = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let icl = case["ref_text"].is_string();
        let modes: &[bool] = match (device::on_cuda(), icl) {
            (false, _) => &[false, true],
            (true, true) => &[true],
            (true, false) => &[],
        };
        for &stream in modes {
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
            .create_voice(
                VoiceRequest {
                    audio: r.floats(&format!("{reference}.audio")),
                    sample_rate: 24_000,
                    channels: 1,
                    transcript: case["ref_text"].as_str().map(str::to_string),
                    denoise: None,
                },
                None,
            )
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

/// Voices that do not fit the model fail at submit, naming what is wrong; a voice job is not
/// held back by a full TTS batch (it takes no slot); `create_voice` gives up at its timeout and
/// the engine goes on.
#[test]
fn hostile_voices_fail_at_submit_and_voice_jobs_need_no_slot() {
    use voxkit::seams::request::VoiceRequest;
    use voxkit::{Engine, EngineConfig, ErrorKind, JobState};
    let r = reference();
    let cases = r.json["cases"].as_array().expect("cases").clone();
    let e = Engine::new(EngineConfig {
        tts_model_dir: Some(folder()),
        max_batch: 1,
        cpu_threads: 2,
        device: device::device(),
        ..Default::default()
    })
    .unwrap();
    let request_of = |v: Voice| TtsRequest { voice: Some(Arc::new(v)), ..request(&cases[2], dummy()) };
    let reference_audio = || VoiceRequest {
        audio: r.floats("ref_b.audio"),
        sample_rate: 24_000,
        channels: 1,
        transcript: Some("Reference.".into()),
        denoise: None,
    };
    // The model loads within the first voice job: 1 ms is too short, and the engine goes on.
    let err = e.create_voice(reference_audio(), Some(std::time::Duration::from_millis(1))).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{}", err.message);
    let good = e.create_voice(reference_audio(), None).unwrap();
    let codes = good.reference.as_ref().unwrap().codes.clone();

    let mut out_of_range = good.clone();
    out_of_range.reference.as_mut().unwrap().codes[0][0] = 64; // the tiny codebook holds 64
    let mut narrow = good.clone();
    narrow.reference.as_mut().unwrap().codes.iter_mut().for_each(|f| {
        f.pop();
    });
    let mut short = good.clone();
    short.xvector.pop();
    let mut foreign = good.clone();
    foreign.model[0] ^= 1;
    for (what, v, needle) in [
        ("a code outside the codebook", out_of_range, "outside the codebook"),
        ("frames of 15 codes", narrow, "16 codes"),
        ("a short x-vector", short, "x-vector"),
        ("another checkpoint's voice", foreign, "another checkpoint"),
    ] {
        let err = e.submit_tts(request_of(v)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument, "{what}: {}", err.message);
        assert!(err.message.contains(needle), "{what}: {}", err.message);
    }

    // A long streaming job fills the only slot; a voice is still made while it runs.
    let long = TtsRequest { max_new_tokens: 400, stream: true, ..request_of(good.clone()) };
    let id = e.submit_tts(long).unwrap();
    while e.poll(id).unwrap().tokens < 2 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let again = e.create_voice(reference_audio(), None).unwrap();
    assert_eq!(e.poll(id).unwrap().state, JobState::Running, "the voice waited for the batch to end");
    assert_eq!(again.reference.unwrap().codes, codes, "the same reference gives the same voice");
    e.cancel(id).unwrap();
    e.release(id).unwrap();
}

fn dummy() -> Voice {
    Voice { model: [0; 32], xvector: vec![0.0], reference: None }
}
