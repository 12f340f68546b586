//! The codec decoder's `pre_transformer`: a sliding-window causal transformer (RoPE without q/k
//! norms, layer scales on both residual branches) between `input_proj` and `output_proj`. Its
//! keys and values live in the stream's KV cache; blocks that fall out of the window go back.

use crate::backend::{AttnSeq, AttnShape, Compute, Kv, KvCache, Mask, Tensor, Weight};
use crate::error::Result;
use crate::models::codec_config::CodecConfig;
use crate::models::weights::Checkpoint;

/// Most window tokens a stream's cache holds from the start (the official window is 72; a larger
/// one from a config grows the pool as it fills instead of sizing it up front).
const MAX_WINDOW_RESERVE: usize = 4096;

struct TransformerLayer {
    input_layernorm: Weight,
    q_proj: Weight,
    k_proj: Weight,
    v_proj: Weight,
    o_proj: Weight,
    self_attn_layer_scale: Weight,
    post_attention_layernorm: Weight,
    gate_proj: Weight,
    up_proj: Weight,
    down_proj: Weight,
    mlp_layer_scale: Weight,
}

pub struct CodecTransformer {
    cx: Compute,
    input_proj: Weight,
    input_proj_b: Weight,
    layers: Vec<TransformerLayer>,
    norm: Weight,
    output_proj: Weight,
    output_proj_b: Weight,
    inv_freq: Vec<f32>,
    shape: AttnShape,
    window: usize,
    eps: f32,
}

impl CodecTransformer {
    /// Loads `decoder.pre_transformer.*`.
    pub fn load(cx: &Compute, ck: &mut Checkpoint, config: &CodecConfig) -> Result<CodecTransformer> {
        let c = &config.decoder_config;
        let (h, hd, ld) = (c.hidden_size, config.head_dim(), c.latent_dim);
        let (qw, kvw) = (c.num_attention_heads * hd, c.num_key_value_heads * hd);
        let pt = "decoder.pre_transformer";
        ck.expect_layers(&format!("{pt}.layers."), c.num_hidden_layers, "decoder_config.num_hidden_layers")?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let p = format!("{pt}.layers.{l}");
            layers.push(TransformerLayer {
                input_layernorm: ck.take_vector(&format!("{p}.input_layernorm.weight"), h)?,
                q_proj: ck.take(&format!("{p}.self_attn.q_proj.weight"), &[qw, h])?,
                k_proj: ck.take(&format!("{p}.self_attn.k_proj.weight"), &[kvw, h])?,
                v_proj: ck.take(&format!("{p}.self_attn.v_proj.weight"), &[kvw, h])?,
                o_proj: ck.take(&format!("{p}.self_attn.o_proj.weight"), &[h, qw])?,
                self_attn_layer_scale: ck.take_vector(&format!("{p}.self_attn_layer_scale.scale"), h)?,
                post_attention_layernorm: ck.take_vector(&format!("{p}.post_attention_layernorm.weight"), h)?,
                gate_proj: ck.take(&format!("{p}.mlp.gate_proj.weight"), &[c.intermediate_size, h])?,
                up_proj: ck.take(&format!("{p}.mlp.up_proj.weight"), &[c.intermediate_size, h])?,
                down_proj: ck.take(&format!("{p}.mlp.down_proj.weight"), &[h, c.intermediate_size])?,
                mlp_layer_scale: ck.take_vector(&format!("{p}.mlp_layer_scale.scale"), h)?,
            });
        }
        Ok(CodecTransformer {
            cx: cx.clone(),
            input_proj: ck.take(&format!("{pt}.input_proj.weight"), &[h, ld])?,
            input_proj_b: ck.take_vector(&format!("{pt}.input_proj.bias"), h)?,
            layers,
            norm: ck.take_vector(&format!("{pt}.norm.weight"), h)?,
            output_proj: ck.take(&format!("{pt}.output_proj.weight"), &[ld, h])?,
            output_proj_b: ck.take_vector(&format!("{pt}.output_proj.bias"), ld)?,
            inv_freq: (0..hd / 2).map(|j| 1.0 / (c.rope_theta as f32).powf((2 * j) as f32 / hd as f32)).collect(),
            shape: AttnShape { heads: c.num_attention_heads, kv_heads: c.num_key_value_heads, head_dim: hd },
            window: c.sliding_window,
            eps: c.rms_norm_eps as f32,
        })
    }

    /// Stores the projections (every matrix product's weights; not the norms, biases and layer
    /// scales) as bf16: half the bytes a streamed frame reads, products still summed in f32.
    pub fn use_bf16_weights(&mut self) -> Result<()> {
        let cx = self.cx.clone();
        let to = |w: &mut Weight| -> Result<()> {
            *w = w.to_bf16();
            cx.prepare(w)
        };
        to(&mut self.input_proj)?;
        to(&mut self.output_proj)?;
        for l in &mut self.layers {
            for w in [
                &mut l.q_proj,
                &mut l.k_proj,
                &mut l.v_proj,
                &mut l.o_proj,
                &mut l.gate_proj,
                &mut l.up_proj,
                &mut l.down_proj,
            ] {
                to(w)?;
            }
        }
        Ok(())
    }

    /// A one-stream cache for this transformer's keys and values.
    pub fn new_cache(&self) -> Result<KvCache> {
        // The window plus the block being filled: a stream fed a few frames at a time never grows
        // the pool (an offline window of 325 frames grows it once).
        let tokens = self.window.min(MAX_WINDOW_RESERVE) + crate::backend::KV_BLOCK;
        self.cx.kv_cache(self.layers.len(), self.shape.kv_heads * self.shape.head_dim, 1, tokens)
    }

    /// New `[T, latent]` rows at positions `cache.len(0)..` → `[T, latent]`.
    pub fn forward(&self, x: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let cx = &self.cx;
        let t = x.rows();
        cache.reserve(0, t)?;
        let p0 = cache.len(0);
        let seqs = [AttnSeq { slot: 0, rows: t, past: p0 }];
        let positions: Vec<usize> = (p0..p0 + t).collect();
        // 1. Into the transformer's width.
        let mut h = cx.linear(x, &self.input_proj, Some(&self.input_proj_b));
        for (l, layer) in self.layers.iter().enumerate() {
            crate::seams::stop::check()?;
            // 2. Sliding-window self-attention, scaled residual.
            let a = cx.rms_norm(&h, &layer.input_layernorm, self.eps);
            let mut qkv = cx.linear_many(&a, &[(&layer.q_proj, None), (&layer.k_proj, None), (&layer.v_proj, None)]);
            let v = qkv.pop().expect("v");
            let mut k = qkv.pop().expect("k");
            let mut q = qkv.pop().expect("q");
            cx.rope(&mut [&mut q, &mut k], self.shape.head_dim, &positions, &self.inv_freq);
            cx.kv_write(cache, l, &seqs, &k, &v);
            let o = cx.attention(&q, Kv::Cache { cache, layer: l }, &seqs, self.shape, Mask::CausalWindow(self.window));
            cx.add_scaled(&mut h, &cx.linear(&o, &layer.o_proj, None), &layer.self_attn_layer_scale);
            // 3. SwiGLU MLP, scaled residual.
            let m = cx.rms_norm(&h, &layer.post_attention_layernorm, self.eps);
            let mut gu = cx.linear_many(&m, &[(&layer.gate_proj, None), (&layer.up_proj, None)]);
            let up = gu.pop().expect("up");
            let mut gate = gu.pop().expect("gate");
            cx.silu_mul(&mut gate, &up);
            cx.add_scaled(&mut h, &cx.linear(&gate, &layer.down_proj, None), &layer.mlp_layer_scale);
        }
        // 4. The window moves on: keys no later query can see go back to the pool.
        cache.advance(0, t);
        cache.forget_before(0, (p0 + t + 1).saturating_sub(self.window));
        let h = cx.rms_norm(&h, &self.norm, self.eps);
        Ok(cx.linear(&h, &self.output_proj, Some(&self.output_proj_b)))
    }
}
