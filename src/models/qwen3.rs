//! The Qwen3 decoder stack, shared by the Qwen3-TTS talker, its code predictor and (later) the
//! Qwen3-ASR text decoder: pre-norm blocks with grouped-query attention, per-head q/k RMSNorm
//! before RoPE, and a SwiGLU MLP.
//!
//! Rows of one forward call belong to one or more sequences; each sequence attends to its own KV
//! cache, so a long prefill, a batch of single-token decode steps, or a mix run through the same
//! code (the linear layers see all rows at once).

use crate::backend::cpu::{self, Cpu};
use crate::backend::{Tensor, Weight};
use crate::error::Result;
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
    input_layernorm: Vec<f32>,
    q_proj: Weight,
    k_proj: Weight,
    v_proj: Weight,
    o_proj: Weight,
    q_norm: Vec<f32>,
    k_norm: Vec<f32>,
    post_attention_layernorm: Vec<f32>,
    gate_proj: Weight,
    up_proj: Weight,
    down_proj: Weight,
}

/// Keys and values of one sequence, per layer: `len` rows of `kv_heads × head_dim`.
/// Cleared (not freed) when its slot is reused.
#[derive(Default, Clone)]
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    len: usize,
}

impl KvCache {
    pub fn new(layers: usize) -> KvCache {
        KvCache { k: vec![Vec::new(); layers], v: vec![Vec::new(); layers], len: 0 }
    }
    /// Tokens held (also the position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn clear(&mut self) {
        self.k.iter_mut().chain(self.v.iter_mut()).for_each(Vec::clear);
        self.len = 0;
    }
}

/// One sequence's share of a forward call: the next `rows` rows of the input, appended to `cache`.
pub struct SeqRows<'a> {
    pub cache: &'a mut KvCache,
    pub rows: usize,
}

pub struct Qwen3Stack {
    pub dims: Qwen3Dims,
    layers: Vec<Qwen3Layer>,
    norm: Vec<f32>,
    /// RoPE inverse frequencies, computed in f32 as the reference does.
    inv_freq: Vec<f32>,
}

impl Qwen3Stack {
    /// Loads `{prefix}layers.{i}.…` and `{prefix}norm.weight`.
    pub fn load(ck: &mut Checkpoint, prefix: &str, dims: Qwen3Dims) -> Result<Qwen3Stack> {
        let (h, i, hd) = (dims.hidden, dims.intermediate, dims.head_dim);
        let (q, kv) = (dims.heads * hd, dims.kv_heads * hd);
        let mut layers = Vec::with_capacity(dims.layers);
        for l in 0..dims.layers {
            let p = format!("{prefix}layers.{l}.");
            layers.push(Qwen3Layer {
                input_layernorm: ck.take_f32(&format!("{p}input_layernorm.weight"), &[h])?,
                q_proj: ck.take(&format!("{p}self_attn.q_proj.weight"), &[q, h])?,
                k_proj: ck.take(&format!("{p}self_attn.k_proj.weight"), &[kv, h])?,
                v_proj: ck.take(&format!("{p}self_attn.v_proj.weight"), &[kv, h])?,
                o_proj: ck.take(&format!("{p}self_attn.o_proj.weight"), &[h, q])?,
                q_norm: ck.take_f32(&format!("{p}self_attn.q_norm.weight"), &[hd])?,
                k_norm: ck.take_f32(&format!("{p}self_attn.k_norm.weight"), &[hd])?,
                post_attention_layernorm: ck.take_f32(&format!("{p}post_attention_layernorm.weight"), &[h])?,
                gate_proj: ck.take(&format!("{p}mlp.gate_proj.weight"), &[i, h])?,
                up_proj: ck.take(&format!("{p}mlp.up_proj.weight"), &[i, h])?,
                down_proj: ck.take(&format!("{p}mlp.down_proj.weight"), &[h, i])?,
            });
        }
        let norm = ck.take_f32(&format!("{prefix}norm.weight"), &[h])?;
        // inv_freq[i] = 1 / theta^(2i / head_dim), in f32.
        let inv_freq = (0..hd / 2).map(|j| 1.0 / dims.rope_theta.powf((2 * j) as f32 / hd as f32)).collect();
        Ok(Qwen3Stack { dims, layers, norm, inv_freq })
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.dims.layers)
    }

    /// Runs all layers and the final norm over `x` (rows grouped by `seqs`, in order), appending
    /// each sequence's keys and values to its cache. Returns the post-norm hidden states; with
    /// `layer_outputs`, also each layer's output (for parity checks).
    pub fn forward(
        &self,
        cpu: &Cpu,
        mut x: Tensor,
        seqs: &mut [SeqRows<'_>],
        mut layer_outputs: Option<&mut Vec<Tensor>>,
    ) -> Tensor {
        assert_eq!(seqs.iter().map(|s| s.rows).sum::<usize>(), x.rows, "rows do not match the sequences");
        assert_eq!(x.cols, self.dims.hidden);
        let starts: Vec<usize> = seqs.iter().map(|s| s.cache.len).collect();
        for (l, layer) in self.layers.iter().enumerate() {
            let mut h = x.clone();
            cpu::rms_norm(&mut h.data, &layer.input_layernorm, self.dims.rms_eps);
            let attn = self.attention(cpu, l, layer, &h, seqs, &starts);
            x.add_assign(&cpu.linear(&attn, &layer.o_proj, None));

            let mut h = x.clone();
            cpu::rms_norm(&mut h.data, &layer.post_attention_layernorm, self.dims.rms_eps);
            let mut gu = cpu.linear_many(&h, &[(&layer.gate_proj, None), (&layer.up_proj, None)]);
            let up = gu.pop().expect("up");
            let mut gate = gu.pop().expect("gate");
            cpu::silu_mul(&mut gate.data, &up.data);
            x.add_assign(&cpu.linear(&gate, &layer.down_proj, None));
            if let Some(out) = layer_outputs.as_deref_mut() {
                out.push(x.clone());
            }
        }
        for s in seqs.iter_mut() {
            s.cache.len += s.rows;
        }
        cpu::rms_norm(&mut x.data, &self.norm, self.dims.rms_eps);
        x
    }

    fn attention(
        &self,
        cpu: &Cpu,
        l: usize,
        layer: &Qwen3Layer,
        h: &Tensor,
        seqs: &mut [SeqRows<'_>],
        starts: &[usize],
    ) -> Tensor {
        let d = &self.dims;
        let hd = d.head_dim;
        let mut qkv = cpu.linear_many(h, &[(&layer.q_proj, None), (&layer.k_proj, None), (&layer.v_proj, None)]);
        let v = qkv.pop().expect("v");
        let mut k = qkv.pop().expect("k");
        let mut q = qkv.pop().expect("q");
        // Per-head RMSNorm, then RoPE, at each row's absolute position in its sequence.
        let mut row = 0;
        for (s, seq) in seqs.iter().enumerate() {
            for r in 0..seq.rows {
                let pos = starts[s] + r;
                for head in q.row_mut(row + r).chunks_mut(hd) {
                    cpu::rms_norm(head, &layer.q_norm, d.rms_eps);
                    rope(head, pos, &self.inv_freq);
                }
                for head in k.row_mut(row + r).chunks_mut(hd) {
                    cpu::rms_norm(head, &layer.k_norm, d.rms_eps);
                    rope(head, pos, &self.inv_freq);
                }
            }
            row += seq.rows;
        }
        // Append to the caches, then attend causally: row r of a sequence sees keys 0..=start+r.
        let mut out = Tensor::zeros(h.rows, d.heads * hd);
        let scale = 1.0 / (hd as f32).sqrt();
        let group = d.heads / d.kv_heads;
        let mut row = 0;
        for (s, seq) in seqs.iter_mut().enumerate() {
            let kc = &mut seq.cache.k[l];
            let vc = &mut seq.cache.v[l];
            for r in 0..seq.rows {
                kc.extend_from_slice(k.row(row + r));
                vc.extend_from_slice(v.row(row + r));
            }
            let (kc, vc) = (&*kc, &*vc);
            let kvw = d.kv_heads * hd;
            let block = &mut out.data[row * d.heads * hd..(row + seq.rows) * d.heads * hd];
            let qrows = &q.data[row * d.heads * hd..(row + seq.rows) * d.heads * hd];
            let start = starts[s];
            // One task per (row, head): independent outputs.
            let attend = |(idx, o): (usize, &mut [f32])| {
                let (r, head) = (idx / d.heads, idx % d.heads);
                let qh = &qrows[idx * hd..(idx + 1) * hd];
                let kvh = head / group;
                let n = start + r + 1;
                let mut scores: Vec<f32> =
                    (0..n).map(|t| cpu::dot(qh, &kc[t * kvw + kvh * hd..t * kvw + (kvh + 1) * hd]) * scale).collect();
                let max = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                o.iter_mut().for_each(|x| *x = 0.0);
                for (t, p) in scores.iter().enumerate() {
                    let w = p / sum;
                    let vt = &vc[t * kvw + kvh * hd..t * kvw + (kvh + 1) * hd];
                    for (x, y) in o.iter_mut().zip(vt) {
                        *x += w * y;
                    }
                }
            };
            let work = seq.rows * (start + seq.rows) * d.heads * hd;
            if cpu.threads() == 1 || work < cpu::SERIAL_BELOW {
                block.chunks_mut(hd).enumerate().for_each(attend);
            } else {
                cpu.install(|| {
                    use rayon::prelude::*;
                    block.par_chunks_mut(hd).enumerate().for_each(attend);
                });
            }
            row += seq.rows;
        }
        out
    }
}

/// Rotates one head in place for position `pos` (NeoX "rotate half" layout): pairs (j, j + d/2)
/// turn by `pos · inv_freq[j]`.
pub fn rope(v: &mut [f32], pos: usize, inv_freq: &[f32]) {
    let half = inv_freq.len();
    for (j, &f) in inv_freq.iter().enumerate() {
        let (sin, cos) = (pos as f32 * f).sin_cos();
        let (a, b) = (v[j], v[j + half]);
        v[j] = a * cos - b * sin;
        v[j + half] = b * cos + a * sin;
    }
}
