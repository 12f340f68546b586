//! The Qwen3-TTS Base speaker encoder (ECAPA-TDNN x-vector) and its mel front-end against the
//! official implementation.
//!
//! `tools/parity/make_clone_fixtures.py` builds a tiny random-weight Base checkpoint with the
//! official classes (f32 compute) and records, for two 24 kHz reference clips, the clip, the mel
//! `extract_speaker_embedding` computes, each speaker-encoder block's output, the aggregation's
//! output, the pooled statistics and the x-vector. Here, for each clip: voxkit's mel of the clip
//! against the official mel; the network run on the official mel and on voxkit's mel, every tap
//! and the x-vector against the official ones; `embed` against the forward on voxkit's mel.
//!
//! Tolerance: max abs difference ≤ 1e-4 × max(1, max |reference|) per tensor (the activations
//! reach ≈ 50; the reference runs in f32, voxkit's front-end in f64 and its sums in other orders).
//! A missing fixture fails the test. `VOXKIT_TEST_DEVICE=cuda` runs the network on CUDA device 0.

#[path = "support/device.rs"]
mod device;

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use voxkit::backend::Tensor;
use voxkit::models::speaker_encoder::SpeakerEncoder;
use voxkit::models::tts_config::TtsConfig;
use voxkit::models::weights::Checkpoint;

const TOL: f32 = 1e-4;
const REFERENCES: [&str; 2] = ["ref_a", "ref_b"];

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tts/tiny-06b-base")
}

struct Reference {
    json: Value,
    /// `reference.safetensors` (f32 activations; the file also holds i64 codes).
    bytes: Vec<u8>,
}

fn reference() -> Reference {
    let dir = folder();
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap_or_else(|e| {
        panic!("missing fixture {}/reference.json ({e}): run tools/parity/make_clone_fixtures.py", dir.display())
    });
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap_or_else(|e| {
        panic!("missing fixture {}/reference.safetensors ({e}): run tools/parity/make_clone_fixtures.py", dir.display())
    });
    Reference { json: serde_json::from_str(&text).unwrap(), bytes }
}

impl Reference {
    /// An f32 tensor: its shape and values.
    fn floats(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("fixture tensor {name} missing"));
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        let v = t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        (t.shape().to_vec(), v)
    }
}

/// Compares a result with the reference tensor `name` (shape `[rows, cols]`, or `[n]` for a
/// single row) and returns the max abs difference; fails beyond the tolerance.
fn check(r: &Reference, name: &str, got: &Tensor, what: &str) -> f32 {
    let (shape, want) = r.floats(name);
    let (rows, cols) = match shape[..] {
        [n] => (1, n),
        [rows, cols] => (rows, cols),
        _ => panic!("{name}: unexpected shape {shape:?}"),
    };
    assert_eq!((got.rows(), got.cols()), (rows, cols), "{name} ({what}): shape");
    let got = got.to_host();
    let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let peak = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let limit = TOL * peak.max(1.0);
    println!("{name:<16} {what:<12} max |ref| {peak:>9.4}  max diff {diff:.3e}  (limit {limit:.1e})");
    assert!(diff.is_finite() && diff <= limit, "{name} ({what}): max diff {diff} > {limit}");
    diff
}

fn load() -> (SpeakerEncoder, voxkit::backend::Compute) {
    let dir = folder();
    let cfg = TtsConfig::load(&dir).unwrap_or_else(|e| panic!("{}", e.message));
    let se = cfg.speaker_encoder().expect("a Base checkpoint has a speaker encoder");
    let cx = device::compute(2);
    let mut ck = Checkpoint::open(&dir.join("model.safetensors")).unwrap().resident_on(&cx);
    let enc = SpeakerEncoder::load(&cx, &mut ck, &se).unwrap_or_else(|e| panic!("{}", e.message));
    (enc, cx)
}

#[test]
fn mel_taps_and_xvectors_match_the_official_encoder() {
    let r = reference();
    let (enc, cx) = load();
    for name in REFERENCES {
        assert!(r.json["generator"]["references"][name].is_object(), "reference.json lists no {name}");
        let (_, audio) = r.floats(&format!("{name}.audio"));
        // 1. The front-end.
        let mel = enc.mel(&audio).unwrap();
        check(&r, &format!("{name}.mel"), &mel, "front-end");
        // 2. The network, from the official mel and from ours.
        let (shape, official) = r.floats(&format!("{name}.mel"));
        let official = cx.upload(&official, shape[0], shape[1]);
        for (input, what) in [(&official, "official mel"), (&mel, "our mel")] {
            let mut taps = Vec::new();
            let x = enc.forward(input, Some(&mut taps)).unwrap();
            assert!(taps.len() >= 3, "taps: blocks, mfa, asp");
            let blocks = taps.len() - 2;
            for (i, t) in taps[..blocks].iter().enumerate() {
                check(&r, &format!("{name}.spk.block{i}"), t, what);
            }
            check(&r, &format!("{name}.spk.mfa"), &taps[blocks], what);
            check(&r, &format!("{name}.spk.asp"), &taps[blocks + 1], what);
            check(&r, &format!("{name}.xvector"), &x, what);
            if what == "our mel" {
                // `embed` is the front-end and this forward.
                assert_eq!(enc.embed(&audio).unwrap(), x.to_host(), "{name}: embed");
            }
        }
    }
}

#[test]
fn clips_too_short_for_the_reflect_padding_are_refused() {
    let (enc, _) = load();
    // The fixture's dilations [1, 2, 3, 4, 1] with kernels [5, 3, 3, 3, 1]: 4 reflected frames
    // each side at most, so 5 frames, 5 · 256 samples.
    assert_eq!(enc.min_samples(), 1280);
    let clip: Vec<f32> = (0..1280).map(|i| (i as f32 * 0.07).sin() * 0.3).collect();
    let e = enc.embed(&clip[..1279]).unwrap_err();
    assert!(e.message.contains("1280"), "{}", e.message);
    assert_eq!(enc.embed(&clip).unwrap().len(), enc.dim());
    // The front-end alone refuses what its own reflect padding cannot take.
    let e = enc.mel(&clip[..384]).unwrap_err();
    assert!(e.message.contains("385"), "{}", e.message);
    assert_eq!(enc.mel(&clip[..385]).unwrap().rows(), 1);
}
