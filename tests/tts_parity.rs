//! Qwen3-TTS talker and code predictor against the official implementation.
//!
//! `tools/parity/make_tts_fixtures.py` builds tiny random-weight checkpoints with the official
//! `qwen-tts` classes, saves them in the official folder layout under `tests/fixtures/tts/`, and
//! records the official prompt rows, per-layer prefill activations, logits and greedy codes. Here
//! the same folders are loaded through voxkit's own loader and every stage is compared: floats
//! within 1e-4 (max abs), token ids and codes exactly. A missing fixture fails the test.

#[path = "support/device.rs"]
mod device;

use std::path::{Path, PathBuf};

use serde_json::Value;
use voxkit::backend::{Rng, SamplingParams};
use voxkit::models::code_predictor::CodeSampling;
use voxkit::models::qwen3::SeqRows;
use voxkit::models::tts::{Qwen3Tts, build_prompt};
use voxkit::models::weights::Checkpoint;
use voxkit::seams::request::{Sampling, TtsRequest};
use voxkit::seams::{Finish, TtsModel, TtsPrefill};

const TOL: f32 = 1e-4;
const PRESETS: [&str; 3] = ["tiny-06b", "tiny-17b", "tiny-17b-vd"];

fn fixture(preset: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tts").join(preset)
}

struct Reference {
    json: Value,
    tensors: Checkpoint,
}

fn reference(preset: &str) -> Reference {
    let dir = fixture(preset);
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap_or_else(|e| {
        panic!("missing fixture {}/reference.json ({e}): run tools/parity/make_tts_fixtures.py", dir.display())
    });
    let tensors = Checkpoint::open(&dir.join("reference.safetensors")).expect("reference.safetensors");
    Reference { json: serde_json::from_str(&text).unwrap(), tensors }
}

impl Reference {
    fn tensor(&mut self, name: &str) -> Option<Vec<f32>> {
        Some(self.tensors.take_any(name)?.to_f32())
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length {} vs {}", a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    let d = max_diff(got, want);
    assert!(d <= TOL, "{what}: max abs difference {d:e} > {TOL:e}");
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().map(|a| a.iter().map(|x| x.as_u64().unwrap() as u32).collect()).unwrap_or_default()
}

fn request(case: &Value) -> TtsRequest {
    let s = |k: &str| case[k].as_str().map(str::to_string);
    TtsRequest {
        text: s("text").unwrap(),
        language: s("language"),
        speaker: s("speaker"),
        instruct: s("instruct"),
        max_new_tokens: case["max_new_tokens"].as_u64().unwrap() as u32,
        sampling: Sampling { greedy: true, seed: Some(0), ..Default::default() },
        text_streaming: !case["non_streaming_mode"].as_bool().unwrap(),
        ..Default::default()
    }
}

fn load(preset: &str) -> Qwen3Tts {
    let cpu = device::compute(2);
    Qwen3Tts::load(&fixture(preset), cpu, 4).unwrap_or_else(|e| panic!("{preset}: {}", e.message))
}

/// Greedy generation through the engine's step interface; returns the frames and how it ended.
fn generate(model: &mut Qwen3Tts, reqs: &[TtsRequest]) -> Vec<(Vec<Vec<u32>>, Finish)> {
    let seqs: Vec<TtsPrefill<'_>> = reqs
        .iter()
        .enumerate()
        .map(|(i, r)| TtsPrefill { slot: i, request: r, max_new_tokens: r.max_new_tokens })
        .collect();
    for r in model.prefill(&seqs) {
        r.unwrap();
    }
    let mut out: Vec<(Vec<Vec<u32>>, Option<Finish>)> = vec![(Vec::new(), None); reqs.len()];
    loop {
        let active: Vec<usize> = (0..reqs.len()).filter(|&i| out[i].1.is_none()).collect();
        if active.is_empty() {
            break;
        }
        for (&i, step) in active.iter().zip(model.step(&active).unwrap()) {
            out[i].0.extend(step.frame);
            if step.finish.is_some() {
                out[i].1 = step.finish;
                model.release(i);
            }
        }
    }
    out.into_iter().map(|(f, e)| (f, e.unwrap())).collect()
}

fn check_preset(preset: &str) {
    let mut model = load(preset);
    let mut reference = reference(preset);
    let cases = reference.json["cases"].as_array().expect("cases").clone();
    assert!(!cases.is_empty());
    for (i, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap_or("?");
        let what = |s: &str| format!("{preset}/{name}: {s}");
        let req = request(case);

        // Tokens and prompt rows.
        let input = model.prompt_input(&req).unwrap_or_else(|e| panic!("{}", what(&e.message)));
        assert_eq!(input.input_ids, ids(&case["input_ids"]), "{}", what("input_ids"));
        assert_eq!(
            input.instruct_ids.clone().unwrap_or_default(),
            ids(&case["instruct_ids"]),
            "{}",
            what("instruct_ids")
        );
        let prompt = build_prompt(&model.config, &input).unwrap();
        assert_eq!(prompt.rows.len() as u64, case["prompt_len"].as_u64().unwrap(), "{}", what("prompt length"));
        let (x, trailing) = model.embed_prompt(&prompt, None).unwrap();
        let want = reference.tensor(&format!("case{i}.prompt_embeds")).expect("prompt_embeds");
        assert_close(&what("prompt rows"), &x.to_host(), &want);
        if let Some(want) = reference.tensor(&format!("case{i}.trailing_text")) {
            assert_close(&what("trailing text rows"), &trailing.to_host(), &want);
        }

        // Prefill activations, layer by layer, and the first logits.
        let mut cache = model.talker.decoder.new_cache(1, 0).unwrap();
        let mut layers = Vec::new();
        let rows = x.rows();
        let hidden =
            model.talker.forward(x, &mut cache, &[SeqRows { slot: 0, rows }], Some(&mut layers)).unwrap().to_host();
        for (l, got) in layers.iter().enumerate() {
            let want = reference
                .tensor(&format!("case{i}.hidden.{l}"))
                .unwrap_or_else(|| panic!("{}", what(&format!("hidden.{l} missing"))));
            assert_close(&what(&format!("talker layer {l} output")), &got.to_host(), &want);
        }
        let want = reference.tensor(&format!("case{i}.final_hidden")).expect("final_hidden");
        assert_close(&what("final hidden"), &hidden, &want);
        let width = hidden.len() / rows;
        let last = model.compute().upload(&hidden[(rows - 1) * width..], 1, width);
        let logits = model.talker.logits(&last);
        let want = reference.tensor(&format!("case{i}.prefill_logits")).expect("prefill_logits");
        assert_close(&what("prefill logits"), &logits.to_host(), &want);

        // Code predictor logits of frame 0 (greedy).
        if let Some(want) = reference.tensor(&format!("case{i}.predictor_logits")) {
            let c0 = ids(&case["codes"][0])[0];
            let c0e = model.talker.codec(&[c0]).unwrap();
            let mut cache = model.predictor.new_cache(1).unwrap();
            let mut got = Vec::new();
            let greedy =
                SamplingParams { do_sample: false, temperature: 1.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0 };
            let mut rng = Rng::new(0);
            let mut sampling = [CodeSampling { params: &greedy, rng: &mut rng }];
            model.predictor.predict(&last, &c0e, &mut cache, &[0], &mut sampling, Some(&mut got)).unwrap();
            let got: Vec<f32> = got.iter().flat_map(|t| t.to_host()).collect();
            assert_close(&what("code predictor logits, frame 0"), &got, &want);
        }

        // Greedy codes, frame for frame, and how the generation ended.
        let want_codes: Vec<Vec<u32>> = case["codes"].as_array().unwrap().iter().map(ids).collect();
        let (got, finish) = generate(&mut model, std::slice::from_ref(&req)).remove(0);
        let first_diff = got.iter().zip(&want_codes).position(|(a, b)| a != b);
        assert!(
            got.len() == want_codes.len() && first_diff.is_none(),
            "{}: {} frames vs {} official, first difference at frame {first_diff:?}",
            what("greedy codes"),
            got.len(),
            want_codes.len()
        );
        let eos = case["eos"].as_bool().unwrap();
        assert_eq!(finish == Finish::Eos, eos, "{}", what("EOS vs cap"));
        eprintln!("{preset}/{name}: {} frames identical ({finish:?})", got.len());
    }

    // A batch of different lengths: each row equals the official batched (and single) run.
    if let Some(b) = reference.json.get("batched").filter(|b| !b.is_null()) {
        let names: Vec<&str> = b["case_names"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let reqs: Vec<TtsRequest> = names
            .iter()
            .map(|n| request(cases.iter().find(|c| c["name"].as_str() == Some(n)).expect("batched case")))
            .collect();
        let got = generate(&mut model, &reqs);
        for ((n, (frames, _)), want) in names.iter().zip(&got).zip(b["codes"].as_array().unwrap()) {
            let want: Vec<Vec<u32>> = want.as_array().unwrap().iter().map(ids).collect();
            assert_eq!(frames, &want, "{preset}: batched codes of {n}");
        }
        eprintln!("{preset}: batch of {} identical", names.len());
    }
}

#[test]
fn tiny_06b_matches_the_official_implementation() {
    check_preset(PRESETS[0]);
}

#[test]
fn tiny_17b_matches_the_official_implementation() {
    check_preset(PRESETS[1]);
}

#[test]
fn tiny_17b_voicedesign_matches_the_official_implementation() {
    check_preset(PRESETS[2]);
}
