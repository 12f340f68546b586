//! Random-weight Qwen3-TTS checkpoints in the official folder layout, with the released models'
//! exact shapes and config values (spec §1.3–1.6) or a tiny preset for tests. They load through
//! the same code as the real checkpoints; benchmarks and the GPU tests use them where the real
//! weights are not at hand.

use std::borrow::Cow;
use std::path::Path;

use safetensors::Dtype;
use serde_json::json;

use voxkit::backend::Rng;
use voxkit::{Error, ErrorKind, Result};

/// The presets `voxkit make-checkpoint --preset` accepts.
pub const PRESETS: [&str; 12] = [
    "0.6b-customvoice",
    "1.7b-customvoice",
    "1.7b-voicedesign",
    "0.6b-base",
    "1.7b-base",
    "tiny-customvoice",
    "tiny-base",
    "small-customvoice",
    "0.6b-asr",
    "1.7b-asr",
    "tiny-asr",
    "small-asr",
];

struct Shape {
    kind: &'static str,
    size: &'static str,
    hidden: usize,
    intermediate: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    text_hidden: usize,
    p_hidden: usize,
    p_intermediate: usize,
    p_layers: usize,
    p_heads: usize,
    p_kv_heads: usize,
    p_head_dim: usize,
}

fn preset(name: &str) -> Result<Shape> {
    let real = |kind, size, hidden, intermediate| Shape {
        kind,
        size,
        hidden,
        intermediate,
        layers: 28,
        heads: 16,
        kv_heads: 8,
        head_dim: 128,
        text_hidden: 2048,
        p_hidden: 1024,
        p_intermediate: 3072,
        p_layers: 5,
        p_heads: 16,
        p_kv_heads: 8,
        p_head_dim: 128,
    };
    Ok(match name {
        "0.6b-customvoice" => real("custom_voice", "0b6", 1024, 3072),
        "1.7b-customvoice" => real("custom_voice", "1b7", 2048, 6144),
        "1.7b-voicedesign" => real("voice_design", "1b7", 2048, 6144),
        "0.6b-base" => real("base", "0b6", 1024, 3072),
        "1.7b-base" => real("base", "1b7", 2048, 6144),
        "tiny-customvoice" | "tiny-base" => Shape {
            kind: if name == "tiny-base" { "base" } else { "custom_voice" },
            size: "1b7",
            hidden: 64,
            intermediate: 128,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
            text_hidden: 16,
            p_hidden: 32,
            p_intermediate: 64,
            p_layers: 2,
            p_heads: 4,
            p_kv_heads: 2,
            p_head_dim: 16,
        },
        // Small, with every decoder width a multiple of int4's pairs of 32-element groups and a
        // five-layer code predictor like the released ones (quantization gates).
        "small-customvoice" => Shape {
            kind: "custom_voice",
            size: "0b6",
            hidden: 128,
            intermediate: 384,
            layers: 4,
            heads: 4,
            kv_heads: 2,
            head_dim: 32,
            text_hidden: 128,
            p_hidden: 128,
            p_intermediate: 384,
            p_layers: 5,
            p_heads: 4,
            p_kv_heads: 2,
            p_head_dim: 32,
        },
        other => return Err(Error::invalid(format!("unknown preset `{other}` (one of: {})", PRESETS.join(", ")))),
    })
}

fn config_json(s: &Shape) -> serde_json::Value {
    let custom = s.kind == "custom_voice";
    let mut languages = json!({
        "chinese": 2055, "english": 2050, "german": 2053, "italian": 2070, "portuguese": 2071,
        "spanish": 2054, "japanese": 2058, "korean": 2064, "french": 2061, "russian": 2069
    });
    if custom {
        languages["beijing_dialect"] = json!(2074);
        languages["sichuan_dialect"] = json!(2062);
    }
    let (spk_id, spk_is_dialect) = if custom {
        (
            json!({"serena": 3066, "vivian": 3065, "uncle_fu": 3010, "ryan": 3061, "aiden": 2861,
                   "ono_anna": 2873, "sohee": 2864, "eric": 2875, "dylan": 2878}),
            json!({"serena": false, "vivian": false, "uncle_fu": false, "ryan": false, "aiden": false,
                   "ono_anna": false, "sohee": false, "eric": "sichuan_dialect", "dylan": "beijing_dialect"}),
        )
    } else {
        (json!({}), json!({}))
    };
    let predictor = json!({
        "hidden_size": s.p_hidden, "intermediate_size": s.p_intermediate, "num_hidden_layers": s.p_layers,
        "num_attention_heads": s.p_heads, "num_key_value_heads": s.p_kv_heads, "head_dim": s.p_head_dim,
        "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "max_position_embeddings": 65536, "vocab_size": 2048, "num_code_groups": 16
    });
    let section = s.head_dim * 5 / 32;
    let rope_scaling = json!({
        "interleaved": true, "mrope_section": [s.head_dim / 2 - 2 * section, section, section],
        "rope_type": "default", "type": "default"
    });
    let mut talker = json!({
        "hidden_size": s.hidden, "intermediate_size": s.intermediate, "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads, "num_key_value_heads": s.kv_heads, "head_dim": s.head_dim,
        "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "max_position_embeddings": 32768, "vocab_size": 3072, "text_vocab_size": 151936,
        "text_hidden_size": s.text_hidden, "num_code_groups": 16, "position_id_per_seconds": 13,
        "attention_bias": false, "use_sliding_window": false
    });
    let ids = json!({
        "codec_pad_id": 2148, "codec_bos_id": 2149, "codec_eos_token_id": 2150,
        "codec_think_id": 2154, "codec_nothink_id": 2155, "codec_think_bos_id": 2156, "codec_think_eos_id": 2157
    });
    for (k, v) in ids.as_object().expect("object") {
        talker[k] = v.clone();
    }
    talker["rope_scaling"] = rope_scaling;
    talker["codec_language_id"] = languages;
    talker["spk_id"] = spk_id;
    talker["spk_is_dialect"] = spk_is_dialect;
    talker["code_predictor_config"] = predictor;
    let mut top = json!({
        "architectures": ["Qwen3TTSForConditionalGeneration"],
        "model_type": "qwen3_tts",
        "tokenizer_type": "qwen3_tts_tokenizer_12hz",
        "tts_model_type": s.kind,
        "tts_model_size": s.size,
        "im_start_token_id": 151644,
        "im_end_token_id": 151645,
        "tts_pad_token_id": 151671,
        "tts_bos_token_id": 151672,
        "tts_eos_token_id": 151673,
        "assistant_token_id": 77091
    });
    top["talker_config"] = talker;
    if s.kind == "base" {
        // The released Base configs write only these two fields (the rest are the class
        // defaults); the tiny preset writes every field, with small channels.
        top["speaker_encoder_config"] = if s.hidden <= 64 {
            let e = SpeakerShape::of(s);
            json!({
                "enc_dim": s.hidden, "sample_rate": 24000, "enc_channels": e.channels,
                "enc_kernel_sizes": e.kernels, "enc_dilations": e.dilations,
                "enc_attention_channels": e.attention, "enc_se_channels": e.se, "enc_res2net_scale": e.scale
            })
        } else {
            json!({"enc_dim": s.hidden, "sample_rate": 24000})
        };
    }
    top
}

/// The ECAPA-TDNN speaker encoder of Base checkpoints (the official class defaults, or small).
struct SpeakerShape {
    channels: Vec<usize>,
    kernels: Vec<usize>,
    dilations: Vec<usize>,
    attention: usize,
    se: usize,
    scale: usize,
}

impl SpeakerShape {
    fn of(s: &Shape) -> SpeakerShape {
        let small = s.hidden <= 64;
        SpeakerShape {
            channels: if small { vec![32, 32, 32, 32, 96] } else { vec![512, 512, 512, 512, 1536] },
            kernels: vec![5, 3, 3, 3, 1],
            dilations: vec![1, 2, 3, 4, 1],
            attention: if small { 16 } else { 128 },
            se: if small { 16 } else { 128 },
            scale: 8,
        }
    }
}

/// The speaker encoder's tensors (`speaker_encoder.*`, bf16 like the rest of the file).
fn speaker_tensors(t: &mut Vec<(String, OutTensor)>, s: &Shape, rng: &mut Rng) {
    let e = SpeakerShape::of(s);
    let conv = |t: &mut Vec<(String, OutTensor)>, rng: &mut Rng, name: &str, o: usize, i: usize, k: usize| {
        t.push((format!("speaker_encoder.{name}.weight"), random(rng, &[o, i, k], 0.0, 1.7 / ((i * k) as f32).sqrt())));
        t.push((format!("speaker_encoder.{name}.bias"), random(rng, &[o], 0.0, 0.05)));
    };
    let n = e.channels.len();
    conv(t, rng, "blocks.0.conv", e.channels[0], 128, e.kernels[0]);
    for b in 1..n - 1 {
        let (cin, c, w) = (e.channels[b - 1], e.channels[b], e.channels[b] / e.scale);
        conv(t, rng, &format!("blocks.{b}.tdnn1.conv"), c, cin, 1);
        for j in 0..e.scale - 1 {
            conv(t, rng, &format!("blocks.{b}.res2net_block.blocks.{j}.conv"), w, w, e.kernels[b]);
        }
        conv(t, rng, &format!("blocks.{b}.tdnn2.conv"), c, c, 1);
        conv(t, rng, &format!("blocks.{b}.se_block.conv1"), e.se, c, 1);
        conv(t, rng, &format!("blocks.{b}.se_block.conv2"), c, e.se, 1);
    }
    let last = e.channels[n - 1];
    conv(t, rng, "mfa.conv", last, e.channels[1..n - 1].iter().sum(), e.kernels[n - 1]);
    conv(t, rng, "asp.tdnn.conv", e.attention, 3 * last, 1);
    conv(t, rng, "asp.conv", last, e.attention, 1);
    conv(t, rng, "fc", s.hidden, 2 * last, 1);
}

fn generation_json() -> serde_json::Value {
    json!({
        "do_sample": true, "temperature": 0.9, "top_k": 50, "top_p": 1.0, "repetition_penalty": 1.05,
        "subtalker_dosample": true, "subtalker_temperature": 0.9, "subtalker_top_k": 50, "subtalker_top_p": 1.0,
        "max_new_tokens": 8192
    })
}

/// A tensor to write (bf16 for the talker, f32 for the codec, as the released files).
struct OutTensor {
    shape: Vec<usize>,
    bytes: Vec<u8>,
    dtype: Dtype,
}

impl safetensors::View for &OutTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Uniform values in `center ± scale`, as bf16 bytes.
fn random(rng: &mut Rng, shape: &[usize], center: f32, scale: f32) -> OutTensor {
    let n: usize = shape.iter().product();
    let mut bytes = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let u = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
        let v = half::bf16::from_f32(center + scale * (2.0 * u - 1.0));
        bytes.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    OutTensor { shape: shape.to_vec(), bytes, dtype: Dtype::BF16 }
}

/// Uniform values in `center ± scale`, as f32 bytes.
fn random_f32(rng: &mut Rng, shape: &[usize], center: f32, scale: f32) -> OutTensor {
    let n: usize = shape.iter().product();
    let mut bytes = Vec::with_capacity(4 * n);
    for _ in 0..n {
        let u = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        bytes.extend_from_slice(&(center + scale * (2.0 * u - 1.0)).to_le_bytes());
    }
    OutTensor { shape: shape.to_vec(), bytes, dtype: Dtype::F32 }
}

/// Codec decoder shapes: (codebook_size, codebook_dim, latent, hidden, intermediate, layers, heads,
/// head_dim, decoder_dim).
struct CodecShape(usize, usize, usize, usize, usize, usize, usize, usize, usize);

/// The codec's Mimi encoder (voice cloning): SEANet filters, transformer width, layers, heads,
/// FFN, codebook dim, quantizers — the released config's values, or small.
struct EncoderShape {
    filters: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    ffn: usize,
    codebook_dim: usize,
    quantizers: usize,
}

impl EncoderShape {
    fn released() -> EncoderShape {
        EncoderShape { filters: 64, hidden: 512, layers: 8, heads: 8, ffn: 2048, codebook_dim: 256, quantizers: 32 }
    }
    fn small() -> EncoderShape {
        EncoderShape { filters: 4, hidden: 16, layers: 1, heads: 2, ffn: 32, codebook_dim: 8, quantizers: 16 }
    }

    fn config(&self, codebook_size: usize) -> serde_json::Value {
        json!({
            "audio_channels": 1, "sampling_rate": 24000, "num_filters": self.filters, "kernel_size": 7,
            "residual_kernel_size": 3, "last_kernel_size": 3, "num_residual_layers": 1,
            "dilation_growth_rate": 2, "compress": 2, "upsampling_ratios": [8, 6, 5, 4],
            "use_causal_conv": true, "pad_mode": "constant", "use_conv_shortcut": false,
            "hidden_size": self.hidden, "num_hidden_layers": self.layers, "num_attention_heads": self.heads,
            "num_key_value_heads": self.heads, "head_dim": self.hidden / self.heads,
            "intermediate_size": self.ffn, "hidden_act": "gelu", "norm_eps": 1e-5,
            "layer_scale_initial_scale": 0.01, "rope_theta": 10000.0, "max_position_embeddings": 8000,
            "sliding_window": 250, "num_quantizers": self.quantizers, "num_semantic_quantizers": 1,
            "codebook_size": codebook_size, "codebook_dim": self.codebook_dim,
            "vector_quantization_hidden_dimension": self.codebook_dim, "_frame_rate": 12.5
        })
    }

    /// The encoder's f32 tensors (`encoder.*`, names as the official `MimiModel`).
    fn tensors(&self, t: &mut Vec<(String, OutTensor)>, codebook_size: usize, rng: &mut Rng) {
        let conv =
            |t: &mut Vec<(String, OutTensor)>, rng: &mut Rng, name: &str, o: usize, i: usize, k: usize, bias: bool| {
                t.push((
                    format!("encoder.{name}.weight"),
                    random_f32(rng, &[o, i, k], 0.0, 1.5 / ((i * k) as f32).sqrt()),
                ));
                if bias {
                    t.push((format!("encoder.{name}.bias"), random_f32(rng, &[o], 0.0, 0.02)));
                }
            };
        let f = self.filters;
        conv(t, rng, "encoder.layers.0.conv", f, 1, 7, true);
        for (i, r) in [4usize, 5, 6, 8].into_iter().enumerate() {
            let c = f << i;
            let at = 1 + 3 * i;
            conv(t, rng, &format!("encoder.layers.{at}.block.1.conv"), c / 2, c, 3, true);
            conv(t, rng, &format!("encoder.layers.{at}.block.3.conv"), c, c / 2, 1, true);
            conv(t, rng, &format!("encoder.layers.{}.conv", at + 2), 2 * c, c, 2 * r, true);
        }
        conv(t, rng, "encoder.layers.14.conv", self.hidden, f << 4, 3, true);
        let h = self.hidden;
        let lin = |rng: &mut Rng, o: usize, i: usize| random_f32(rng, &[o, i], 0.0, 1.0 / (i as f32).sqrt());
        for l in 0..self.layers {
            let p = format!("encoder.encoder_transformer.layers.{l}");
            for n in ["q_proj", "k_proj", "v_proj", "o_proj"] {
                t.push((format!("{p}.self_attn.{n}.weight"), lin(rng, h, h)));
            }
            for n in ["input_layernorm", "post_attention_layernorm"] {
                t.push((format!("{p}.{n}.weight"), random_f32(rng, &[h], 1.0, 0.1)));
                t.push((format!("{p}.{n}.bias"), random_f32(rng, &[h], 0.0, 0.05)));
            }
            t.push((format!("{p}.mlp.fc1.weight"), lin(rng, self.ffn, h)));
            t.push((format!("{p}.mlp.fc2.weight"), lin(rng, h, self.ffn)));
            for n in ["self_attn_layer_scale", "mlp_layer_scale"] {
                t.push((format!("{p}.{n}.scale"), random_f32(rng, &[h], 0.1, 0.05)));
            }
        }
        conv(t, rng, "downsample.conv", h, h, 4, false);
        let cd = self.codebook_dim;
        for (part, levels) in [("semantic", 1), ("acoustic", self.quantizers - 1)] {
            let p = format!("quantizer.{part}_residual_vector_quantizer");
            conv(t, rng, &format!("{p}.input_proj"), cd, h, 1, false);
            conv(t, rng, &format!("{p}.output_proj"), h, cd, 1, false);
            for q in 0..levels {
                let c = format!("encoder.{p}.layers.{q}.codebook");
                t.push((format!("{c}.embed_sum"), random_f32(rng, &[codebook_size, cd], 0.0, 1.0)));
                t.push((format!("{c}.cluster_usage"), random_f32(rng, &[codebook_size], 1.25, 0.75)));
                t.push((format!("{c}.initialized"), random_f32(rng, &[1], 1.0, 0.0)));
            }
        }
    }
}

/// Writes a random codec (`speech_tokenizer/`): config and f32 tensors with the official names —
/// the decoder, and with `encoder` (Base checkpoints, voice cloning) the Mimi encoder too.
fn write_codec(out: &Path, s: &CodecShape, encoder: Option<&EncoderShape>, rng: &mut Rng) -> Result<()> {
    let CodecShape(cb, cd, ld, h, inter, layers, heads, hd, dd) = *s;
    std::fs::create_dir_all(out)?;
    let mut cfg = json!({
        "architectures": ["Qwen3TTSTokenizerV2Model"], "model_type": "qwen3_tts_tokenizer_12hz",
        "encoder_valid_num_quantizers": 16, "input_sample_rate": 24000, "output_sample_rate": 24000,
        "decode_upsample_rate": 1920, "encode_downsample_rate": 1920,
        "decoder_config": {
            "codebook_size": cb, "codebook_dim": cd, "num_quantizers": 16, "num_semantic_quantizers": 1,
            "latent_dim": ld, "hidden_size": h, "intermediate_size": inter, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": heads, "head_dim": hd, "hidden_act": "silu",
            "rms_norm_eps": 1e-5, "rope_theta": 10000, "max_position_embeddings": 8000, "sliding_window": 72,
            "layer_scale_initial_scale": 0.01, "decoder_dim": dd, "upsample_rates": [8, 5, 4, 3],
            "upsampling_ratios": [2, 2], "attention_bias": false
        }
    });
    if let Some(e) = encoder {
        cfg["encoder_config"] = e.config(cb);
    }
    let p = out.join("config.json");
    std::fs::write(&p, serde_json::to_string_pretty(&cfg).expect("json"))?;
    let lin = |rng: &mut Rng, shape: &[usize], fan_in: usize| random_f32(rng, shape, 0.0, 1.0 / (fan_in as f32).sqrt());
    let mut t: Vec<(String, OutTensor)> = Vec::new();
    let vq = cd / 2;
    for q in 0..16 {
        let pre = if q == 0 {
            "decoder.quantizer.rvq_first.vq.layers.0._codebook".to_string()
        } else {
            format!("decoder.quantizer.rvq_rest.vq.layers.{}._codebook", q - 1)
        };
        t.push((format!("{pre}.embedding_sum"), random_f32(rng, &[cb, vq], 0.0, 0.5)));
        t.push((format!("{pre}.cluster_usage"), random_f32(rng, &[cb], 1.25, 0.75)));
    }
    for part in ["rvq_first", "rvq_rest"] {
        t.push((format!("decoder.quantizer.{part}.output_proj.weight"), lin(rng, &[cd, vq, 1], vq)));
    }
    t.push(("decoder.pre_conv.conv.weight".into(), lin(rng, &[ld, cd, 3], 3 * cd)));
    t.push(("decoder.pre_conv.conv.bias".into(), random_f32(rng, &[ld], 0.0, 0.02)));
    let pt = "decoder.pre_transformer";
    t.push((format!("{pt}.input_proj.weight"), lin(rng, &[h, ld], ld)));
    t.push((format!("{pt}.input_proj.bias"), random_f32(rng, &[h], 0.0, 0.02)));
    t.push((format!("{pt}.output_proj.weight"), lin(rng, &[ld, h], h)));
    t.push((format!("{pt}.output_proj.bias"), random_f32(rng, &[ld], 0.0, 0.02)));
    t.push((format!("{pt}.norm.weight"), random_f32(rng, &[h], 1.0, 0.1)));
    for l in 0..layers {
        let p = format!("{pt}.layers.{l}");
        for n in ["q_proj", "k_proj", "v_proj"] {
            t.push((format!("{p}.self_attn.{n}.weight"), lin(rng, &[heads * hd, h], h)));
        }
        t.push((format!("{p}.self_attn.o_proj.weight"), lin(rng, &[h, heads * hd], heads * hd)));
        t.push((format!("{p}.mlp.gate_proj.weight"), lin(rng, &[inter, h], h)));
        t.push((format!("{p}.mlp.up_proj.weight"), lin(rng, &[inter, h], h)));
        t.push((format!("{p}.mlp.down_proj.weight"), lin(rng, &[h, inter], inter)));
        for n in ["input_layernorm", "post_attention_layernorm"] {
            t.push((format!("{p}.{n}.weight"), random_f32(rng, &[h], 1.0, 0.1)));
        }
        for n in ["self_attn_layer_scale", "mlp_layer_scale"] {
            t.push((format!("{p}.{n}.scale"), random_f32(rng, &[h], 0.1, 0.05)));
        }
    }
    for i in 0..2 {
        let p = format!("decoder.upsample.{i}");
        t.push((format!("{p}.0.conv.weight"), lin(rng, &[ld, ld, 2], ld)));
        t.push((format!("{p}.0.conv.bias"), random_f32(rng, &[ld], 0.0, 0.02)));
        t.push((format!("{p}.1.dwconv.conv.weight"), lin(rng, &[ld, 1, 7], 7)));
        t.push((format!("{p}.1.dwconv.conv.bias"), random_f32(rng, &[ld], 0.0, 0.02)));
        t.push((format!("{p}.1.norm.weight"), random_f32(rng, &[ld], 1.0, 0.1)));
        t.push((format!("{p}.1.norm.bias"), random_f32(rng, &[ld], 0.0, 0.02)));
        t.push((format!("{p}.1.pwconv1.weight"), lin(rng, &[4 * ld, ld], ld)));
        t.push((format!("{p}.1.pwconv1.bias"), random_f32(rng, &[4 * ld], 0.0, 0.02)));
        t.push((format!("{p}.1.pwconv2.weight"), lin(rng, &[ld, 4 * ld], 4 * ld)));
        t.push((format!("{p}.1.pwconv2.bias"), random_f32(rng, &[ld], 0.0, 0.02)));
        t.push((format!("{p}.1.gamma"), random_f32(rng, &[ld], 0.3, 0.2)));
    }
    t.push(("decoder.decoder.0.conv.weight".into(), lin(rng, &[dd, ld, 7], 7 * ld)));
    t.push(("decoder.decoder.0.conv.bias".into(), random_f32(rng, &[dd], 0.0, 0.02)));
    for (i, r) in [8usize, 5, 4, 3].into_iter().enumerate() {
        let (cin, cout) = (dd >> i, dd >> (i + 1));
        let p = format!("decoder.decoder.{}.block", i + 1);
        t.push((format!("{p}.0.alpha"), random_f32(rng, &[cin], 0.0, 0.3)));
        t.push((format!("{p}.0.beta"), random_f32(rng, &[cin], 0.0, 0.3)));
        t.push((format!("{p}.1.conv.weight"), lin(rng, &[cin, cout, 2 * r], cin)));
        t.push((format!("{p}.1.conv.bias"), random_f32(rng, &[cout], 0.0, 0.02)));
        for u in 2..5 {
            for a in ["act1", "act2"] {
                t.push((format!("{p}.{u}.{a}.alpha"), random_f32(rng, &[cout], 0.0, 0.3)));
                t.push((format!("{p}.{u}.{a}.beta"), random_f32(rng, &[cout], 0.0, 0.3)));
            }
            t.push((format!("{p}.{u}.conv1.conv.weight"), lin(rng, &[cout, cout, 7], 7 * cout)));
            t.push((format!("{p}.{u}.conv1.conv.bias"), random_f32(rng, &[cout], 0.0, 0.02)));
            t.push((format!("{p}.{u}.conv2.conv.weight"), lin(rng, &[cout, cout, 1], cout)));
            t.push((format!("{p}.{u}.conv2.conv.bias"), random_f32(rng, &[cout], 0.0, 0.02)));
        }
    }
    let od = dd >> 4;
    t.push(("decoder.decoder.5.alpha".into(), random_f32(rng, &[od], 0.0, 0.3)));
    t.push(("decoder.decoder.5.beta".into(), random_f32(rng, &[od], 0.0, 0.3)));
    t.push(("decoder.decoder.6.conv.weight".into(), lin(rng, &[1, od, 7], 7 * od)));
    t.push(("decoder.decoder.6.conv.bias".into(), random_f32(rng, &[1], 0.0, 0.01)));
    if let Some(e) = encoder {
        e.tensors(&mut t, cb, rng);
    }
    let path = out.join("model.safetensors");
    safetensors::serialize_to_file(t.iter().map(|(n, v)| (n.as_str(), v)), None, &path)
        .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", path.display())))
}

#[allow(clippy::too_many_arguments)] // one argument per config field of the stack
fn decoder_tensors(
    out: &mut Vec<(String, OutTensor)>,
    rng: &mut Rng,
    prefix: &str,
    hidden: usize,
    inter: usize,
    layers: usize,
    heads: usize,
    kv: usize,
    hd: usize,
) {
    let lin = |rng: &mut Rng, o: usize, i: usize| random(rng, &[o, i], 0.0, 1.0 / (i as f32).sqrt());
    for l in 0..layers {
        let p = format!("{prefix}layers.{l}.");
        out.push((format!("{p}input_layernorm.weight"), random(rng, &[hidden], 1.0, 0.1)));
        out.push((format!("{p}self_attn.q_proj.weight"), lin(rng, heads * hd, hidden)));
        out.push((format!("{p}self_attn.k_proj.weight"), lin(rng, kv * hd, hidden)));
        out.push((format!("{p}self_attn.v_proj.weight"), lin(rng, kv * hd, hidden)));
        out.push((format!("{p}self_attn.o_proj.weight"), lin(rng, hidden, heads * hd)));
        out.push((format!("{p}self_attn.q_norm.weight"), random(rng, &[hd], 1.0, 0.1)));
        out.push((format!("{p}self_attn.k_norm.weight"), random(rng, &[hd], 1.0, 0.1)));
        out.push((format!("{p}post_attention_layernorm.weight"), random(rng, &[hidden], 1.0, 0.1)));
        out.push((format!("{p}mlp.gate_proj.weight"), lin(rng, inter, hidden)));
        out.push((format!("{p}mlp.up_proj.weight"), lin(rng, inter, hidden)));
        out.push((format!("{p}mlp.down_proj.weight"), lin(rng, hidden, inter)));
    }
    out.push((format!("{prefix}norm.weight"), random(rng, &[hidden], 1.0, 0.1)));
}

fn io_error(e: std::io::Error, what: &Path) -> Error {
    Error::new(ErrorKind::Io, format!("{}: {e}", what.display()))
}

/// Creates the checkpoint folder and copies the tokenizer files into it.
fn start_folder(out: &Path, tokenizer_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| io_error(e, out))?;
    for f in ["vocab.json", "merges.txt", "tokenizer_config.json"] {
        let from = tokenizer_dir.join(f);
        std::fs::copy(&from, out.join(f)).map_err(|e| io_error(e, &from))?;
    }
    Ok(())
}

/// Writes `value` as pretty JSON to `dir/name`.
fn write_json(dir: &Path, name: &str, value: serde_json::Value) -> Result<()> {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(&value).expect("json")).map_err(|e| io_error(e, &p))
}

/// Writes a random-weight checkpoint for `preset` into `out` (created if needed), copying the
/// tokenizer files from `tokenizer_dir`.
pub fn write(preset_name: &str, out: &Path, tokenizer_dir: &Path, seed: u64) -> Result<()> {
    if let Some(a) = asr_preset(preset_name) {
        return write_asr(preset_name, &a, out, tokenizer_dir, seed);
    }
    let s = preset(preset_name)?;
    start_folder(out, tokenizer_dir)?;
    write_json(out, "config.json", config_json(&s))?;
    write_json(out, "generation_config.json", generation_json())?;

    let mut rng = Rng::new(seed);
    let mut t: Vec<(String, OutTensor)> = Vec::new();
    let (h, th, ph) = (s.hidden, s.text_hidden, s.p_hidden);
    t.push(("talker.model.text_embedding.weight".into(), random(&mut rng, &[151936, th], 0.0, 0.05)));
    t.push(("talker.model.codec_embedding.weight".into(), random(&mut rng, &[3072, h], 0.0, 0.05)));
    t.push((
        "talker.text_projection.linear_fc1.weight".into(),
        random(&mut rng, &[th, th], 0.0, 1.0 / (th as f32).sqrt()),
    ));
    t.push(("talker.text_projection.linear_fc1.bias".into(), random(&mut rng, &[th], 0.0, 0.02)));
    t.push((
        "talker.text_projection.linear_fc2.weight".into(),
        random(&mut rng, &[h, th], 0.0, 1.0 / (th as f32).sqrt()),
    ));
    t.push(("talker.text_projection.linear_fc2.bias".into(), random(&mut rng, &[h], 0.0, 0.02)));
    t.push(("talker.codec_head.weight".into(), random(&mut rng, &[3072, h], 0.0, 1.0 / (h as f32).sqrt())));
    decoder_tensors(&mut t, &mut rng, "talker.model.", h, s.intermediate, s.layers, s.heads, s.kv_heads, s.head_dim);
    let cp = "talker.code_predictor.";
    decoder_tensors(
        &mut t,
        &mut rng,
        &format!("{cp}model."),
        ph,
        s.p_intermediate,
        s.p_layers,
        s.p_heads,
        s.p_kv_heads,
        s.p_head_dim,
    );
    for j in 0..15 {
        t.push((format!("{cp}model.codec_embedding.{j}.weight"), random(&mut rng, &[2048, h], 0.0, 0.05)));
        t.push((format!("{cp}lm_head.{j}.weight"), random(&mut rng, &[2048, ph], 0.0, 1.0 / (ph as f32).sqrt())));
    }
    if h != ph {
        t.push((
            format!("{cp}small_to_mtp_projection.weight"),
            random(&mut rng, &[ph, h], 0.0, 1.0 / (h as f32).sqrt()),
        ));
        t.push((format!("{cp}small_to_mtp_projection.bias"), random(&mut rng, &[ph], 0.0, 0.02)));
    }
    // The released codec with the released shapes; a small one with the test presets.
    let released = s.layers == 28;
    let codec = if !released {
        CodecShape(2048, 16, 32, 32, 64, 2, 4, 8, 64)
    } else {
        CodecShape(2048, 512, 1024, 512, 1024, 8, 16, 64, 1536)
    };
    let encoder = match (s.kind, released) {
        ("base", false) => Some(EncoderShape::small()),
        ("base", true) => Some(EncoderShape::released()),
        _ => None,
    };
    if s.kind == "base" {
        speaker_tensors(&mut t, &s, &mut rng);
    }
    write_codec(&out.join("speech_tokenizer"), &codec, encoder.as_ref(), &mut rng)?;
    let path = out.join("model.safetensors");
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert("voxkit_random_preset".to_string(), preset_name.to_string());
    safetensors::serialize_to_file(t.iter().map(|(n, v)| (n.as_str(), v)), Some(meta), &path)
        .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", path.display())))?;
    Ok(())
}

/// Qwen3-ASR shapes (spec §1, §2.2): encoder layers, d_model, heads, FFN, LM hidden,
/// intermediate, layers.
struct AsrShape {
    enc_layers: usize,
    d_model: usize,
    enc_heads: usize,
    enc_ffn: usize,
    conv: usize,
    hidden: usize,
    intermediate: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

fn asr_preset(name: &str) -> Option<AsrShape> {
    let real = |enc_layers, d_model, enc_heads, enc_ffn, hidden, intermediate| AsrShape {
        enc_layers,
        d_model,
        enc_heads,
        enc_ffn,
        conv: 480,
        hidden,
        intermediate,
        layers: 28,
        heads: 16,
        kv_heads: 8,
        head_dim: 128,
    };
    Some(match name {
        "0.6b-asr" => real(18, 896, 14, 3584, 1024, 3072),
        "1.7b-asr" => real(24, 1024, 16, 4096, 2048, 6144),
        "tiny-asr" => AsrShape {
            enc_layers: 2,
            d_model: 32,
            enc_heads: 2,
            enc_ffn: 64,
            conv: 8,
            hidden: 16,
            intermediate: 32,
            layers: 2,
            heads: 2,
            kv_heads: 1,
            head_dim: 8,
        },
        // Tiny, but with decoder widths that take int4 groups (quantization gates).
        "small-asr" => AsrShape {
            enc_layers: 2,
            d_model: 32,
            enc_heads: 2,
            enc_ffn: 64,
            conv: 8,
            hidden: 64,
            intermediate: 128,
            layers: 2,
            heads: 2,
            kv_heads: 1,
            head_dim: 32,
        },
        _ => return None,
    })
}

fn asr_config_json(a: &AsrShape) -> serde_json::Value {
    let languages: Vec<&str> = voxkit::models::asr_config::OFFICIAL_LANGUAGES.to_vec();
    let half = a.head_dim / 2;
    let section = half * 5 / 16;
    json!({
        "architectures": ["Qwen3ASRForConditionalGeneration"],
        "model_type": "qwen3_asr",
        "support_languages": languages,
        "thinker_config": {
            "model_type": "qwen3_asr_thinker",
            "audio_token_id": 151676, "audio_start_token_id": 151669, "audio_end_token_id": 151670,
            "user_token_id": 872, "initializer_range": 0.02,
            "audio_config": {
                "model_type": "qwen3_asr_audio_encoder", "num_mel_bins": 128,
                "encoder_layers": a.enc_layers, "encoder_attention_heads": a.enc_heads,
                "encoder_ffn_dim": a.enc_ffn, "d_model": a.d_model, "output_dim": a.hidden,
                "n_window": 50, "n_window_infer": 800, "conv_chunksize": 500,
                "downsample_hidden_size": a.conv, "max_source_positions": 1500,
                "activation_function": "gelu", "scale_embedding": false,
                "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0
            },
            "text_config": {
                "model_type": "qwen3_asr_text", "vocab_size": 151936, "hidden_size": a.hidden,
                "intermediate_size": a.intermediate, "num_hidden_layers": a.layers,
                "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads, "head_dim": a.head_dim,
                "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
                "max_position_embeddings": 65536, "attention_bias": false, "tie_word_embeddings": true,
                "rope_scaling": {
                    "rope_type": "default", "mrope_section": [half - 2 * section, section, section],
                    "interleaved": true, "mrope_interleaved": true
                }
            }
        },
        "tie_word_embeddings": true
    })
}

/// Writes a random Qwen3-ASR checkpoint: bf16 tensors with the official `thinker.*` names,
/// the tied head stored too (as the released files do).
fn write_asr(preset_name: &str, a: &AsrShape, out: &Path, tokenizer_dir: &Path, seed: u64) -> Result<()> {
    start_folder(out, tokenizer_dir)?;
    // The official processor needs the chat template (voxkit builds the prompt itself).
    let template = tokenizer_dir.join("chat_template.json");
    if template.is_file() {
        std::fs::copy(&template, out.join("chat_template.json")).map_err(|e| io_error(e, &template))?;
    }
    write_json(out, "config.json", asr_config_json(a))?;
    write_json(
        out,
        "preprocessor_config.json",
        json!({
            "chunk_length": 30, "dither": 0.0, "feature_extractor_type": "WhisperFeatureExtractor",
            "feature_size": 128, "hop_length": 160, "n_fft": 400, "n_samples": 480000, "nb_max_frames": 3000,
            "padding_side": "right", "padding_value": 0.0, "processor_class": "Qwen3ASRProcessor",
            "return_attention_mask": true
        }),
    )?;
    write_json(out, "generation_config.json", json!({"eos_token_id": [151645, 151643], "pad_token_id": 151643}))?;

    let mut rng = Rng::new(seed);
    let mut t: Vec<(String, OutTensor)> = Vec::new();
    let lin = |rng: &mut Rng, o: usize, i: usize| random(rng, &[o, i], 0.0, 1.0 / (i as f32).sqrt());
    let bias = |rng: &mut Rng, n: usize| random(rng, &[n], 0.0, 0.02);
    let at = "thinker.audio_tower.";
    let (d, c) = (a.d_model, a.conv);
    t.push((format!("{at}conv2d1.weight"), random(&mut rng, &[c, 1, 3, 3], 0.0, 1.0 / 3.0)));
    t.push((format!("{at}conv2d1.bias"), bias(&mut rng, c)));
    for n in ["conv2d2", "conv2d3"] {
        t.push((format!("{at}{n}.weight"), random(&mut rng, &[c, c, 3, 3], 0.0, 1.0 / ((9 * c) as f32).sqrt())));
        t.push((format!("{at}{n}.bias"), bias(&mut rng, c)));
    }
    t.push((format!("{at}conv_out.weight"), lin(&mut rng, d, c * 16)));
    for l in 0..a.enc_layers {
        let p = format!("{at}layers.{l}.");
        for n in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            t.push((format!("{p}self_attn.{n}.weight"), lin(&mut rng, d, d)));
            t.push((format!("{p}self_attn.{n}.bias"), bias(&mut rng, d)));
        }
        for n in ["self_attn_layer_norm", "final_layer_norm"] {
            t.push((format!("{p}{n}.weight"), random(&mut rng, &[d], 1.0, 0.1)));
            t.push((format!("{p}{n}.bias"), bias(&mut rng, d)));
        }
        t.push((format!("{p}fc1.weight"), lin(&mut rng, a.enc_ffn, d)));
        t.push((format!("{p}fc1.bias"), bias(&mut rng, a.enc_ffn)));
        t.push((format!("{p}fc2.weight"), lin(&mut rng, d, a.enc_ffn)));
        t.push((format!("{p}fc2.bias"), bias(&mut rng, d)));
    }
    t.push((format!("{at}ln_post.weight"), random(&mut rng, &[d], 1.0, 0.1)));
    t.push((format!("{at}ln_post.bias"), bias(&mut rng, d)));
    t.push((format!("{at}proj1.weight"), lin(&mut rng, d, d)));
    t.push((format!("{at}proj1.bias"), bias(&mut rng, d)));
    t.push((format!("{at}proj2.weight"), lin(&mut rng, a.hidden, d)));
    t.push((format!("{at}proj2.bias"), bias(&mut rng, a.hidden)));
    let embed = random(&mut rng, &[151936, a.hidden], 0.0, 0.05);
    let head = OutTensor { shape: embed.shape.clone(), bytes: embed.bytes.clone(), dtype: embed.dtype };
    t.push(("thinker.model.embed_tokens.weight".into(), embed));
    t.push(("thinker.lm_head.weight".into(), head));
    decoder_tensors(
        &mut t,
        &mut rng,
        "thinker.model.",
        a.hidden,
        a.intermediate,
        a.layers,
        a.heads,
        a.kv_heads,
        a.head_dim,
    );
    let path = out.join("model.safetensors");
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert("voxkit_random_preset".to_string(), preset_name.to_string());
    safetensors::serialize_to_file(t.iter().map(|(n, v)| (n.as_str(), v)), Some(meta), &path)
        .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", path.display())))
}
