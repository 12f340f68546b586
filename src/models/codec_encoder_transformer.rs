//! The codec encoder's transformer (`encoder.encoder_transformer`, transformers'
//! `MimiTransformerModel`): pre-LayerNorm layers (LayerNorm with bias), self-attention with RoPE
//! (the "rotate half" layout of our `rope` op) and no q/k norms, a GELU (erf) MLP without biases,
//! and a learnt layer scale on both residual branches; no final norm.
//!
//! The mask is plain causal over the whole clip: with transformers 4.57.3's sdpa and eager
//! attention (what the official codec runs) `sliding_window` is not applied (spec §5.2); the two
//! differ only for clips longer than the window (250 rows = 10 s).

use crate::backend::{AttnSeq, AttnShape, Compute, Kv, Mask, Tensor, Weight};
use crate::error::Result;
use crate::models::codec_config::MimiConfig;
use crate::models::weights::Checkpoint;

/// A projection: weight and, with `attention_bias`, its bias.
type Proj = (Weight, Option<Weight>);

struct Layer {
    input_layernorm: (Weight, Weight),
    q_proj: Proj,
    k_proj: Proj,
    v_proj: Proj,
    o_proj: Proj,
    self_attn_layer_scale: Weight,
    post_attention_layernorm: (Weight, Weight),
    fc1: Weight,
    fc2: Weight,
    mlp_layer_scale: Weight,
}

pub struct EncoderTransformer {
    cx: Compute,
    layers: Vec<Layer>,
    inv_freq: Vec<f32>,
    shape: AttnShape,
    eps: f32,
}

impl EncoderTransformer {
    /// Loads `{prefix}.layers.*` (`prefix` = `encoder.encoder_transformer`).
    pub fn load(cx: &Compute, ck: &mut Checkpoint, c: &MimiConfig, prefix: &str) -> Result<EncoderTransformer> {
        let (h, hd) = (c.hidden_size, c.head_dim());
        let (qw, kvw) = (c.num_attention_heads * hd, c.num_key_value_heads * hd);
        ck.expect_layers(&format!("{prefix}.layers."), c.num_hidden_layers, "encoder_config.num_hidden_layers")?;
        let proj = |ck: &mut Checkpoint, name: &str, out: usize, inp: usize| -> Result<Proj> {
            let w = ck.take(&format!("{name}.weight"), &[out, inp])?;
            let b = if c.attention_bias { Some(ck.take_vector(&format!("{name}.bias"), out)?) } else { None };
            Ok((w, b))
        };
        let norm = |ck: &mut Checkpoint, name: &str| -> Result<(Weight, Weight)> {
            Ok((ck.take_vector(&format!("{name}.weight"), h)?, ck.take_vector(&format!("{name}.bias"), h)?))
        };
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let p = format!("{prefix}.layers.{l}");
            layers.push(Layer {
                input_layernorm: norm(ck, &format!("{p}.input_layernorm"))?,
                q_proj: proj(ck, &format!("{p}.self_attn.q_proj"), qw, h)?,
                k_proj: proj(ck, &format!("{p}.self_attn.k_proj"), kvw, h)?,
                v_proj: proj(ck, &format!("{p}.self_attn.v_proj"), kvw, h)?,
                o_proj: proj(ck, &format!("{p}.self_attn.o_proj"), h, qw)?,
                self_attn_layer_scale: ck.take_vector(&format!("{p}.self_attn_layer_scale.scale"), h)?,
                post_attention_layernorm: norm(ck, &format!("{p}.post_attention_layernorm"))?,
                fc1: ck.take(&format!("{p}.mlp.fc1.weight"), &[c.intermediate_size, h])?,
                fc2: ck.take(&format!("{p}.mlp.fc2.weight"), &[h, c.intermediate_size])?,
                mlp_layer_scale: ck.take_vector(&format!("{p}.mlp_layer_scale.scale"), h)?,
            });
        }
        // The default RoPE: inv_freq_j = 1 / θ^(2j / head_dim), in f32 as transformers computes it.
        let theta = c.rope_theta as f32;
        Ok(EncoderTransformer {
            cx: cx.clone(),
            layers,
            inv_freq: (0..hd / 2).map(|j| 1.0 / theta.powf((2 * j) as f32 / hd as f32)).collect(),
            shape: AttnShape { heads: c.num_attention_heads, kv_heads: c.num_key_value_heads, head_dim: hd },
            eps: c.norm_eps as f32,
        })
    }

    /// `[T, hidden]` (positions 0..T, one clip) → `[T, hidden]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let cx = &self.cx;
        let t = x.rows();
        let seqs = [AttnSeq { slot: 0, rows: t, past: 0 }];
        let positions: Vec<usize> = (0..t).collect();
        let mut h = x.clone();
        for layer in &self.layers {
            crate::seams::stop::check()?;
            // 1. Causal self-attention with RoPE, scaled residual.
            let a = cx.layer_norm(&h, &layer.input_layernorm.0, &layer.input_layernorm.1, self.eps);
            let [q, k, v] = [&layer.q_proj, &layer.k_proj, &layer.v_proj].map(|(w, b)| (w, b.as_ref()));
            let mut qkv = cx.linear_many(&a, &[q, k, v]);
            let v = qkv.pop().expect("v");
            let mut k = qkv.pop().expect("k");
            let mut q = qkv.pop().expect("q");
            cx.rope(&mut [&mut q, &mut k], self.shape.head_dim, &positions, &self.inv_freq);
            let o = cx.attention(&q, Kv::Rows { k: &k, v: &v }, &seqs, self.shape, Mask::Causal);
            let o = cx.linear(&o, &layer.o_proj.0, layer.o_proj.1.as_ref());
            cx.add_scaled(&mut h, &o, &layer.self_attn_layer_scale);
            // 2. GELU MLP, scaled residual.
            let m = cx.layer_norm(&h, &layer.post_attention_layernorm.0, &layer.post_attention_layernorm.1, self.eps);
            let mut f = cx.linear(&m, &layer.fc1, None);
            cx.gelu_erf(&mut f);
            let f = cx.linear(&f, &layer.fc2, None);
            cx.add_scaled(&mut h, &f, &layer.mlp_layer_scale);
        }
        Ok(h)
    }
}
