//! The codec encoder (reference audio → codes) against the official Qwen3-TTS-Tokenizer-12Hz
//! encoder (transformers' `MimiModel`). `tools/parity/make_clone_fixtures.py` records, for two
//! 24 kHz clips through the tiny codec's randomised encoder (`tests/fixtures/codec/tiny`, linked as
//! the Base fixture's `speech_tokenizer`), the official codes and the outputs of the SEANet, the
//! transformer and the downsampling conv. Stages within 1e-4 × max(1, max |reference|) (max abs),
//! codes exactly; `ref_b` (32880 samples) is not a whole number of frames. A missing fixture fails
//! the test.

#[path = "support/device.rs"]
mod device;

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use voxkit::models::codec_encoder::CodecEncoder;

const TOL: f32 = 1e-4;

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tts/tiny-06b-base")
}

fn tensor(st: &SafeTensors<'_>, name: &str, dtype: Dtype) -> (Vec<usize>, Vec<u8>) {
    let t = st.tensor(name).unwrap_or_else(|_| panic!("fixture tensor {name} missing"));
    assert_eq!(t.dtype(), dtype, "{name}");
    (t.shape().to_vec(), t.data().to_vec())
}

fn floats(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
    let (shape, b) = tensor(st, name, Dtype::F32);
    (shape, b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
}

fn codes(st: &SafeTensors<'_>, name: &str) -> Vec<Vec<u32>> {
    let (shape, b) = tensor(st, name, Dtype::I64);
    let raw: Vec<u32> = b
        .chunks_exact(8)
        .map(|c| u32::try_from(i64::from_le_bytes(c.try_into().unwrap())).expect("a code in u32"))
        .collect();
    raw.chunks(shape[1]).map(<[u32]>::to_vec).collect()
}

#[test]
fn encoder_matches_the_official_codec_encoder() {
    check_against_the_fixture(None);
}

/// The same with each convolution call limited to 4096 im2col values: the SEANet's long rows go
/// through in pieces (up to 585 output rows each), padding included.
#[test]
fn encoder_in_pieces_matches_the_official_codec_encoder() {
    check_against_the_fixture(Some(4096));
}

fn check_against_the_fixture(conv_budget: Option<usize>) {
    let dir = folder();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap_or_else(|e| {
            panic!("missing fixture {}/reference.json ({e}): run tools/parity/make_clone_fixtures.py", dir.display())
        }))
        .unwrap();
    let bytes = std::fs::read(dir.join("reference.safetensors")).expect("reference.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("reference.safetensors parses");
    let mut encoder = CodecEncoder::load(&dir.join("speech_tokenizer"), device::compute(2))
        .unwrap_or_else(|e| panic!("{}", e.message));
    if let Some(values) = conv_budget {
        encoder = encoder.with_conv_budget(values);
    }
    let label = conv_budget.map_or("whole".to_string(), |v| format!("pieces of {v}"));
    let refs = json["generator"]["references"].as_object().expect("generator.references");
    assert!(refs.contains_key("ref_a") && refs.contains_key("ref_b"), "references {:?}", refs.keys());
    for (name, info) in refs {
        let (_, audio) = floats(&st, &format!("{name}.audio"));
        assert_eq!(audio.len() as u64, info["samples"].as_u64().unwrap(), "{name}: samples");
        let mut taps = Vec::new();
        let got = encoder.encode_with_taps(&audio, &mut taps).unwrap();
        assert_eq!(taps.len(), 3, "{name}: the SEANet, transformer and downsample taps");
        for (stage, tap) in ["seanet", "transformer", "downsample"].iter().zip(&taps) {
            let (shape, want) = floats(&st, &format!("{name}.enc.{stage}"));
            assert_eq!([tap.rows(), tap.cols()], [shape[0], shape[1]], "{name}.enc.{stage}: shape");
            let got = tap.to_host();
            let peak = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            eprintln!("{name}.enc.{stage} {shape:?} ({label}): max abs difference {d:.2e} (peak {peak:.3})");
            assert!(d <= TOL * peak.max(1.0), "{name}.enc.{stage} ({label}): max abs difference {d:e} (peak {peak})");
        }
        let want = codes(&st, &format!("{name}.codes"));
        assert_eq!(want.len() as u64, info["frames"].as_u64().unwrap(), "{name}: frames");
        assert_eq!(got.len(), want.len(), "{name}: {} frames vs {} official", got.len(), want.len());
        for (f, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{name} ({label}): codes of frame {f}");
        }
        eprintln!(
            "{name} ({label}): {} samples → {} frames × {} codes, all equal",
            audio.len(),
            got.len(),
            want[0].len()
        );
        // `encode` gives the same codes as the tapped path.
        assert_eq!(encoder.encode(&audio).unwrap(), got, "{name}: encode vs encode_with_taps");
    }
}

#[test]
fn encoder_refuses_empty_and_non_finite_audio() {
    let encoder = CodecEncoder::load(&folder().join("speech_tokenizer"), device::compute(2))
        .unwrap_or_else(|e| panic!("{}", e.message));
    assert!(encoder.encode(&[]).is_err());
    assert!(encoder.encode(&[0.0, f32::NAN, 0.1]).is_err());
    // A clip shorter than one frame still gives one frame.
    assert_eq!(encoder.encode(&[0.1; 100]).unwrap().len(), 1);
}

#[test]
fn encoder_config_takes_the_class_defaults_and_checks_ranges() {
    use voxkit::models::codec_config::CodecEncoderConfig;
    let dir = std::env::temp_dir().join(format!("voxkit-enc-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let load = |text: &str| {
        std::fs::write(dir.join("config.json"), text).unwrap();
        CodecEncoderConfig::load(&dir)
    };
    // No encoder_config: `MimiConfig()`'s defaults, which are the released codec's (spec §1.5).
    let c = load(r#"{"decoder_config": {}}"#).unwrap_or_else(|e| panic!("{}", e.message));
    let m = &c.encoder_config;
    assert_eq!((c.encoder_valid_num_quantizers, c.encode_downsample_rate, c.input_sample_rate), (16, 1920, 24_000));
    assert_eq!(m.ratios(), [4, 5, 6, 8]);
    assert_eq!(
        (m.hidden_size, m.num_filters, m.num_hidden_layers, m.head_dim(), m.intermediate_size),
        (512, 64, 8, 64, 2048)
    );
    assert_eq!((m.codebook_size, m.codebook_dim(), m.num_quantizers, m.num_semantic_quantizers), (2048, 256, 32, 1));
    assert_eq!((m.frame_rate(), m.encodec_frame_rate(), m.downsample_kernel()), (12.5, 25, 4));
    assert_eq!((m.norm_eps, m.rope_theta, m.sliding_window), (1e-5, 10_000.0, 250));
    // Out of range: refused with the field's name, before anything is sized.
    for (bad, field) in [
        (r#"{"encoder_valid_num_quantizers": 33}"#, "encoder_valid_num_quantizers"),
        (r#"{"encode_downsample_rate": 960}"#, "encode_downsample_rate"),
        (r#"{"encoder_config": {"num_attention_heads": 3}}"#, "attention heads"),
        (r#"{"encoder_config": {"codebook_size": 1000}}"#, "codebook_size"),
        (r#"{"encoder_config": {"num_semantic_quantizers": 32}}"#, "num_semantic_quantizers"),
        (r#"{"encoder_config": {"upsampling_ratios": [8, 0, 5, 4]}}"#, "upsampling_ratios"),
        (r#"{"encoder_config": {"hidden_size": 0}}"#, "hidden_size"),
        (r#"{"encoder_config": {"pad_mode": "reflect"}}"#, "pad_mode"),
        (r#"{"encoder_config": {"_frame_rate": 25.0}}"#, "frame rate"),
    ] {
        let e = load(bad).err().unwrap_or_else(|| panic!("{bad} was accepted"));
        assert!(e.message.contains(field), "{bad}: {}", e.message);
    }
    std::fs::remove_dir_all(&dir).ok();
}
