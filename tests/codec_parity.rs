//! The codec decoder against the official Qwen3-TTS-Tokenizer-12Hz (`tools/parity/make_codec_fixtures.py`
//! records official `decode` outputs of a tiny random codec in `tests/fixtures/codec/tiny/`).
//! Offline decoding (the official `chunked_decode(300, 25)`) must match within 1e-4 max abs,
//! including a sequence longer than one 300-frame window. A missing fixture fails the test.

#[path = "support/device.rs"]
mod device;

use std::path::Path;

use voxkit::models::codec::Codec;

#[test]
fn offline_decode_matches_the_official_codec() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codec/tiny");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reference.json"))
            .expect("missing fixture tests/fixtures/codec/tiny/reference.json"),
    )
    .unwrap();
    let bytes = std::fs::read(dir.join("reference.safetensors")).expect("reference.safetensors");
    let refs = safetensors::SafeTensors::deserialize(&bytes).expect("reference.safetensors parses");
    let audio = |i: usize| -> Vec<f32> {
        let t = refs.tensor(&format!("case{i}.audio")).expect("case audio");
        assert_eq!(t.dtype(), safetensors::Dtype::F32);
        t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    };
    let codec = Codec::load(&dir, device::compute(2)).unwrap_or_else(|e| panic!("{}", e.message));
    let cases = json["cases"].as_array().expect("cases");
    let mut longest = 0;
    for (i, case) in cases.iter().enumerate() {
        let frames: Vec<Vec<u32>> = case["codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_array().unwrap().iter().map(|c| c.as_u64().unwrap() as u32).collect())
            .collect();
        let want = audio(i);
        let got = codec.decode(&frames).unwrap();
        assert_eq!(got.len(), want.len(), "case {i}: {} samples vs {} official", got.len(), want.len());
        let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(d <= 1e-4, "case {i} ({} frames): max abs difference {d:e}", frames.len());
        eprintln!("codec case {i}: {} frames, max abs difference {d:.2e}", frames.len());
        // Streaming, in chunks of 1, 3 and 7 frames, equals the offline decode (≤ 300 frames:
        // beyond that the official windowing restarts the context).
        if frames.len() <= voxkit::models::codec::CHUNK_FRAMES {
            for chunk in [1, 3, 7] {
                let mut st = codec.new_stream().unwrap();
                let mut streamed = Vec::new();
                for part in frames.chunks(chunk) {
                    let s = codec.forward_stream(&mut st, part).unwrap();
                    assert_eq!(s.len(), part.len() * codec.samples_per_frame());
                    streamed.extend(s);
                }
                let d = streamed.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(
                    streamed.len() == got.len() && d <= 1e-5,
                    "case {i}, chunks of {chunk}: streaming differs by {d:e}"
                );
            }
        }
        longest = longest.max(frames.len());
    }
    assert!(longest >= 330, "the fixtures must cover the 300-frame window seam");
}

/// Skipping a stream over a reference (`skip_stream`: the DAC only over the last
/// `tail_frames()`) leaves the state decoding it would: what follows decodes the same, and
/// `decode_after` equals the joint decode with the reference's samples cut (within one window;
/// past it, `decode_after` is the joint decode itself). Compared with the official joint decode in `tests/clone_parity.rs`.
#[test]
fn skipping_a_reference_leaves_the_state_decoding_it_would() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codec/tiny");
    let codec = Codec::load(&dir, device::compute(2)).unwrap();
    let c = &codec.config.decoder_config;
    let mut rng = voxkit::backend::Rng::new(5);
    let mut frames = |n: usize| -> Vec<Vec<u32>> {
        (0..n)
            .map(|_| (0..c.num_quantizers).map(|_| (rng.next_u64() % c.codebook_size as u64) as u32).collect())
            .collect()
    };
    let (context, after) = (frames(40), frames(6));
    let tail = codec.tail_frames();
    assert!((3..40).contains(&tail), "tail of {tail} frames");
    let max_diff = |a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
    };
    let mut full = codec.new_stream().unwrap();
    codec.forward_stream(&mut full, &context).unwrap();
    let want = codec.forward_stream(&mut full, &after).unwrap();
    let mut skipped = codec.new_stream().unwrap();
    codec.skip_stream(&mut skipped, &context).unwrap();
    let got = codec.forward_stream(&mut skipped, &after).unwrap();
    let d = max_diff(&got, &want);
    assert!(d <= 1e-5, "after a skipped reference: {d:e}");
    let offline: Vec<Vec<u32>> = context.iter().chain(&after).cloned().collect();
    let joint = codec.decode(&offline).unwrap();
    let cut = context.len() * codec.samples_per_frame();
    let d = max_diff(&codec.decode_after(&context, &after).unwrap(), &joint[cut..]);
    assert!(d <= 1e-5, "decode_after vs the joint decode: {d:e}");
}
