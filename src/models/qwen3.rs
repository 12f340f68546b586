//! The Qwen3 decoder stack, shared by the Qwen3-TTS talker, its code predictor and the Qwen3-ASR
//! text decoder: pre-norm blocks with grouped-query attention, per-head q/k RMSNorm before RoPE,
//! and a SwiGLU MLP.
//!
//! Rows of one forward call belong to one or more sequences, each in a slot of a backend-owned
//! KV cache, so a long prefill, a batch of single-token decode steps, or a mix run through the
//! same code (the linear layers see all rows at once).

use crate::backend::{AttnSeq, AttnShape, Compute, Kv, KvCache, Mask, QuantFormat, Tensor, Weight};
use crate::error::Result;
use crate::models::quant_cache::QuantCache;
use crate::models::weights::Checkpoint;

/// Shapes of a Qwen3 decoder, from the checkpoint's config.
#[derive(Clone, Debug, PartialEq)]
pub struct Qwen3Dims {
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub rms_eps: f32,
    pub rope_theta: f32,
}

pub struct Qwen3Layer {
    input_layernorm: Weight,
    q_proj: Weight,
    k_proj: Weight,
    v_proj: Weight,
    o_proj: Weight,
    q_norm: Weight,
    k_norm: Weight,
    post_attention_layernorm: Weight,
    gate_proj: Weight,
    up_proj: Weight,
    down_proj: Weight,
}

/// One sequence's share of a forward call: its cache slot and its next `rows` input rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqRows {
    pub slot: usize,
    pub rows: usize,
}

pub struct Qwen3Stack {
    pub dims: Qwen3Dims,
    cx: Compute,
    layers: Vec<Qwen3Layer>,
    norm: Weight,
    /// The checkpoint name prefix of the stack (`talker.model.`).
    prefix: String,
    /// RoPE inverse frequencies, computed in f32 as the reference does.
    inv_freq: Vec<f32>,
}

impl Qwen3Stack {
    /// Loads `{prefix}layers.{i}.…` and `{prefix}norm.weight`.
    pub fn load(cx: &Compute, ck: &mut Checkpoint, prefix: &str, dims: Qwen3Dims) -> Result<Qwen3Stack> {
        let (h, i, hd) = (dims.hidden, dims.intermediate, dims.head_dim);
        let (q, kv) = (dims.heads * hd, dims.kv_heads * hd);
        ck.expect_layers(&format!("{prefix}layers."), dims.layers, "num_hidden_layers")?;
        let mut layers = Vec::with_capacity(dims.layers);
        for l in 0..dims.layers {
            let p = format!("{prefix}layers.{l}.");
            layers.push(Qwen3Layer {
                input_layernorm: ck.take_vector(&format!("{p}input_layernorm.weight"), h)?,
                q_proj: ck.take(&format!("{p}self_attn.q_proj.weight"), &[q, h])?,
                k_proj: ck.take(&format!("{p}self_attn.k_proj.weight"), &[kv, h])?,
                v_proj: ck.take(&format!("{p}self_attn.v_proj.weight"), &[kv, h])?,
                o_proj: ck.take(&format!("{p}self_attn.o_proj.weight"), &[h, q])?,
                q_norm: ck.take_vector(&format!("{p}self_attn.q_norm.weight"), hd)?,
                k_norm: ck.take_vector(&format!("{p}self_attn.k_norm.weight"), hd)?,
                post_attention_layernorm: ck.take_vector(&format!("{p}post_attention_layernorm.weight"), h)?,
                gate_proj: ck.take(&format!("{p}mlp.gate_proj.weight"), &[i, h])?,
                up_proj: ck.take(&format!("{p}mlp.up_proj.weight"), &[i, h])?,
                down_proj: ck.take(&format!("{p}mlp.down_proj.weight"), &[h, i])?,
            });
        }
        let norm = ck.take_vector(&format!("{prefix}norm.weight"), h)?;
        // inv_freq[i] = 1 / theta^(2i / head_dim), in f32.
        let inv_freq = (0..hd / 2).map(|j| 1.0 / dims.rope_theta.powf((2 * j) as f32 / hd as f32)).collect();
        Ok(Qwen3Stack { dims, cx: cx.clone(), layers, norm, inv_freq, prefix: prefix.to_string() })
    }

    /// Quantizes every layer's projections to `format(layer)` (load time; norms stay f32).
    pub fn quantize(&mut self, cache: &mut QuantCache, format: impl Fn(usize) -> Option<QuantFormat>) {
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let f = format(l);
            let p = format!("{}layers.{l}.", self.prefix);
            for (w, name) in [
                (&mut layer.q_proj, "self_attn.q_proj"),
                (&mut layer.k_proj, "self_attn.k_proj"),
                (&mut layer.v_proj, "self_attn.v_proj"),
                (&mut layer.o_proj, "self_attn.o_proj"),
                (&mut layer.gate_proj, "mlp.gate_proj"),
                (&mut layer.up_proj, "mlp.up_proj"),
                (&mut layer.down_proj, "mlp.down_proj"),
            ] {
                cache.quantize(w, f, &format!("{p}{name}.weight"));
            }
        }
    }

    /// Bytes of weights one forward pass reads (every layer's projections and norms, the final
    /// norm), as stored or quantized: what a decode step streams from memory.
    pub fn weight_bytes(&self) -> usize {
        let layer = |l: &Qwen3Layer| {
            [
                &l.input_layernorm,
                &l.q_proj,
                &l.k_proj,
                &l.v_proj,
                &l.o_proj,
                &l.q_norm,
                &l.k_norm,
                &l.post_attention_layernorm,
                &l.gate_proj,
                &l.up_proj,
                &l.down_proj,
            ]
            .iter()
            .map(|w| w.bytes())
            .sum::<usize>()
        };
        self.layers.iter().map(layer).sum::<usize>() + self.norm.bytes()
    }

    /// A KV cache for `slots` sequences, with room for `tokens` tokens each from the start.
    pub fn new_cache(&self, slots: usize, tokens: usize) -> Result<KvCache> {
        self.cx.kv_cache(self.dims.layers, self.dims.kv_heads * self.dims.head_dim, slots, tokens)
    }

    /// Bytes one token of one sequence takes in the cache.
    pub fn cache_bytes_per_token(&self) -> usize {
        KvCache::bytes_per_token(self.dims.layers, self.dims.kv_heads * self.dims.head_dim)
    }

    fn attn_shape(&self) -> AttnShape {
        AttnShape { heads: self.dims.heads, kv_heads: self.dims.kv_heads, head_dim: self.dims.head_dim }
    }

    /// Runs all layers and the final norm over `x` (rows grouped by `seqs`, in order), appending
    /// each sequence's keys and values to its cache slot. Returns the post-norm hidden states;
    /// with `layer_outputs`, also each layer's output (for parity checks).
    pub fn forward(
        &self,
        mut x: Tensor,
        cache: &mut KvCache,
        seqs: &[SeqRows],
        mut layer_outputs: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let cx = &self.cx;
        let eps = self.dims.rms_eps;
        assert_eq!(seqs.iter().map(|s| s.rows).sum::<usize>(), x.rows(), "rows do not match the sequences");
        assert_eq!(x.cols(), self.dims.hidden);
        // 0. Room in each slot, the sequences' positions.
        let mut attn = Vec::with_capacity(seqs.len());
        let mut positions = Vec::with_capacity(x.rows());
        for s in seqs {
            cache.reserve(s.slot, s.rows)?;
            let past = cache.len(s.slot);
            attn.push(AttnSeq { slot: s.slot, rows: s.rows, past });
            positions.extend(past..past + s.rows);
        }
        for (l, layer) in self.layers.iter().enumerate() {
            crate::seams::stop::check()?;
            // 1. Self-attention: q/k/v, per-head q/k RMSNorm and RoPE, cache, attention, o_proj
            //    added to the residual.
            let h = cx.rms_norm(&x, &layer.input_layernorm, eps);
            let mut qkv = cx.linear_many(&h, &[(&layer.q_proj, None), (&layer.k_proj, None), (&layer.v_proj, None)]);
            let v = qkv.pop().expect("v");
            let mut k = qkv.pop().expect("k");
            let mut q = qkv.pop().expect("q");
            let norms = (&layer.q_norm, &layer.k_norm);
            cx.qk_norm_rope(&mut q, &mut k, norms, eps, self.dims.head_dim, &positions, &self.inv_freq);
            cx.kv_write(cache, l, &attn, &k, &v);
            let a = cx.attention(&q, Kv::Cache { cache, layer: l }, &attn, self.attn_shape(), Mask::Causal);
            cx.linear_add(&mut x, &a, &layer.o_proj);

            // 2. SwiGLU MLP.
            let h = cx.rms_norm(&x, &layer.post_attention_layernorm, eps);
            let mut gu = cx.linear_many(&h, &[(&layer.gate_proj, None), (&layer.up_proj, None)]);
            let up = gu.pop().expect("up");
            let mut gate = gu.pop().expect("gate");
            cx.silu_mul(&mut gate, &up);
            cx.linear_add(&mut x, &gate, &layer.down_proj);
            if let Some(out) = layer_outputs.as_deref_mut() {
                out.push(x.clone());
            }
        }
        // 3. The new tokens are held; the final norm.
        for s in seqs {
            cache.advance(s.slot, s.rows);
        }
        Ok(cx.rms_norm(&x, &self.norm, eps))
    }
}
