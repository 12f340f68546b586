//! The Qwen3-ASR audio encoder ("AuT", spec §4): log-mel chunks of 100 frames through three
//! stride-2 3×3 convolutions with GELU, a linear flatten, per-chunk sinusoidal positions, a
//! pre-LN transformer whose attention stays inside fixed windows (104 tokens = 8 s), then the
//! projector into the decoder's hidden size.
//!
//! Two details decide parity with the official code:
//! - the tail chunk is zero-padded to the longest chunk of the clip *before* the convolutions
//!   (GELU(bias) of the padding leaks into the last valid frame), and a single short chunk is
//!   convolved unpadded;
//! - attention is windowed, as the official FlashAttention and vLLM paths do (the transformers
//!   sdpa/eager path forgets the mask — QwenLM/Qwen3-ASR issue #213 — and is not followed).
//!
//! Several clips are encoded in one call (their chunks share the convolution products, their
//! tokens the linear layers); each clip's windows stay its own, so a clip's output does not
//! depend on what it is batched with.

use crate::backend::cpu::{self, Cpu};
use crate::backend::{Tensor, Weight};
use crate::error::Result;
use crate::models::asr_config::AudioEncoderConfig;
use crate::models::weights::Checkpoint;

/// LayerNorm epsilon of every encoder norm (`nn.LayerNorm` default).
const LN_EPS: f32 = 1e-5;
/// Most f32 values one im2col block may hold (bounds the scratch memory of long clips).
const IM2COL_BUDGET: usize = 8 << 20;

/// `out_len(n)` of a 3-tap, stride-2, padding-1 convolution.
fn conv_out_len(n: usize) -> usize {
    n.div_ceil(2)
}

/// Tokens the encoder emits for a clip of `frames` mel frames (spec §4.2): 13 per full
/// 100-frame chunk, then the tail's length after three stride-2 convolutions.
pub fn tokens_for_frames(frames: usize, chunk: usize) -> usize {
    let full = frames / chunk;
    let tail = frames % chunk;
    let per_chunk = conv_out_len(conv_out_len(conv_out_len(chunk)));
    let tail_tokens = if tail == 0 { 0 } else { conv_out_len(conv_out_len(conv_out_len(tail))) };
    full * per_chunk + tail_tokens
}

/// A 3×3, stride-2, padding-1 convolution over (frequency, time), with its weight reordered to
/// `[out, (kf, kt, in)]` so that im2col copies whole channel vectors.
struct Conv2d {
    weight: Weight,
    bias: Vec<f32>,
    cin: usize,
}

impl Conv2d {
    fn load(ck: &mut Checkpoint, name: &str, cin: usize, cout: usize) -> Result<Conv2d> {
        let w = ck.take(&format!("{name}.weight"), &[cout, cin, 3, 3])?.to_f32();
        let bias = ck.take_f32(&format!("{name}.bias"), &[cout])?;
        let mut r = vec![0.0f32; cout * 9 * cin];
        for o in 0..cout {
            for c in 0..cin {
                for tap in 0..9 {
                    r[o * 9 * cin + tap * cin + c] = w[(o * cin + c) * 9 + tap];
                }
            }
        }
        Ok(Conv2d { weight: Weight::from_f32(vec![cout, 9 * cin], r), bias, cin })
    }

    /// `x`: `chunks` images of `f × t` pixels (rows, frequency-major), `cin` wide.
    /// Returns the GELU'd output images of `out_len(f) × out_len(t)` pixels, `cout` wide.
    fn forward(&self, cpu: &Cpu, x: &Tensor, chunks: usize, f: usize, t: usize) -> Tensor {
        let cin = self.cin;
        let (fo, to) = (conv_out_len(f), conv_out_len(t));
        let pixels = fo * to;
        let width = 9 * cin;
        // Images per im2col block, so that long clips do not need one huge scratch matrix.
        let per_block = (IM2COL_BUDGET / (pixels * width).max(1)).clamp(1, chunks.max(1));
        let cout = self.weight.rows();
        let mut y = Tensor { data: Vec::new(), rows: chunks * pixels, cols: cout };
        for first in (0..chunks).step_by(per_block) {
            let n = per_block.min(chunks - first);
            let mut cols = Tensor::zeros(n * pixels, width);
            cpu.for_rows(&mut cols.data, width, |row, out| {
                let (img, p) = (first + row / pixels, row % pixels);
                let (of, ot) = (p / to, p % to);
                for kf in 0..3 {
                    let fi = (2 * of + kf) as isize - 1;
                    for kt in 0..3 {
                        let ti = (2 * ot + kt) as isize - 1;
                        let dst = &mut out[(kf * 3 + kt) * cin..(kf * 3 + kt + 1) * cin];
                        if fi < 0 || ti < 0 || fi as usize >= f || ti as usize >= t {
                            dst.iter_mut().for_each(|v| *v = 0.0);
                        } else {
                            let src = (img * f + fi as usize) * t + ti as usize;
                            dst.copy_from_slice(x.row(src));
                        }
                    }
                }
            });
            let mut block = cpu.linear(&cols, &self.weight, Some(&self.bias));
            cpu::gelu_erf(&mut block.data);
            if n == chunks {
                return block; // one block: no copy
            }
            y.data.extend_from_slice(&block.data);
        }
        y
    }
}

struct EncoderLayer {
    self_attn_layer_norm: (Vec<f32>, Vec<f32>),
    q_proj: (Weight, Vec<f32>),
    k_proj: (Weight, Vec<f32>),
    v_proj: (Weight, Vec<f32>),
    out_proj: (Weight, Vec<f32>),
    final_layer_norm: (Vec<f32>, Vec<f32>),
    fc1: (Weight, Vec<f32>),
    fc2: (Weight, Vec<f32>),
}

fn linear_with_bias(ck: &mut Checkpoint, name: &str, out: usize, inp: usize) -> Result<(Weight, Vec<f32>)> {
    Ok((ck.take(&format!("{name}.weight"), &[out, inp])?, ck.take_f32(&format!("{name}.bias"), &[out])?))
}

fn norm(ck: &mut Checkpoint, name: &str, d: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    Ok((ck.take_f32(&format!("{name}.weight"), &[d])?, ck.take_f32(&format!("{name}.bias"), &[d])?))
}

pub struct AudioEncoder {
    pub cfg: AudioEncoderConfig,
    conv2d1: Conv2d,
    conv2d2: Conv2d,
    conv2d3: Conv2d,
    conv_out: Weight,
    /// Sinusoidal positions for one chunk's tokens, `[tokens per chunk, d_model]`.
    positions: Tensor,
    layers: Vec<EncoderLayer>,
    ln_post: (Vec<f32>, Vec<f32>),
    proj1: (Weight, Vec<f32>),
    proj2: (Weight, Vec<f32>),
}

/// `SinusoidsPositionEmbedding`: `[sin(t·inv), cos(t·inv)]`, `inv[i] = exp(−i·ln(10⁴)/(d/2 − 1))`.
fn sinusoids(rows: usize, d: usize) -> Tensor {
    let half = d / 2;
    let inc = 10_000f64.ln() / (half as f64 - 1.0);
    let mut t = Tensor::zeros(rows, d);
    for r in 0..rows {
        let row = t.row_mut(r);
        for i in 0..half {
            // inv_timescales are f32 in the reference; the product is rounded to f32 too.
            let inv = (-(inc as f32) * i as f32).exp();
            let x = r as f32 * inv;
            row[i] = x.sin();
            row[half + i] = x.cos();
        }
    }
    t
}

impl AudioEncoder {
    pub fn load(ck: &mut Checkpoint, cfg: &AudioEncoderConfig, prefix: &str) -> Result<AudioEncoder> {
        let (d, ffn, ch) = (cfg.d_model, cfg.encoder_ffn_dim, cfg.downsample_hidden_size);
        let p = |n: &str| format!("{prefix}{n}");
        let conv2d1 = Conv2d::load(ck, &p("conv2d1"), 1, ch)?;
        let conv2d2 = Conv2d::load(ck, &p("conv2d2"), ch, ch)?;
        let conv2d3 = Conv2d::load(ck, &p("conv2d3"), ch, ch)?;
        let freq = conv_out_len(conv_out_len(conv_out_len(cfg.num_mel_bins)));
        let conv_out = ck.take(&p("conv_out.weight"), &[d, ch * freq])?;
        let mut layers = Vec::with_capacity(cfg.encoder_layers);
        for l in 0..cfg.encoder_layers {
            let lp = |n: &str| format!("{prefix}layers.{l}.{n}");
            layers.push(EncoderLayer {
                self_attn_layer_norm: norm(ck, &lp("self_attn_layer_norm"), d)?,
                q_proj: linear_with_bias(ck, &lp("self_attn.q_proj"), d, d)?,
                k_proj: linear_with_bias(ck, &lp("self_attn.k_proj"), d, d)?,
                v_proj: linear_with_bias(ck, &lp("self_attn.v_proj"), d, d)?,
                out_proj: linear_with_bias(ck, &lp("self_attn.out_proj"), d, d)?,
                final_layer_norm: norm(ck, &lp("final_layer_norm"), d)?,
                fc1: linear_with_bias(ck, &lp("fc1"), ffn, d)?,
                fc2: linear_with_bias(ck, &lp("fc2"), d, ffn)?,
            });
        }
        let ln_post = norm(ck, &p("ln_post"), d)?;
        let proj1 = linear_with_bias(ck, &p("proj1"), d, d)?;
        let proj2 = linear_with_bias(ck, &p("proj2"), cfg.output_dim, d)?;
        let chunk = 2 * cfg.n_window;
        let tokens_per_chunk = tokens_for_frames(chunk, chunk).min(cfg.max_source_positions);
        Ok(AudioEncoder {
            cfg: cfg.clone(),
            conv2d1,
            conv2d2,
            conv2d3,
            conv_out,
            positions: sinusoids(tokens_per_chunk, d),
            layers,
            ln_post,
            proj1,
            proj2,
        })
    }

    /// Mel frames per convolution chunk (`2 · n_window`).
    pub fn chunk_frames(&self) -> usize {
        2 * self.cfg.n_window
    }

    pub fn tokens(&self, frames: usize) -> usize {
        tokens_for_frames(frames, self.chunk_frames())
    }

    /// Encodes clips given as log-mel features `[T, n_mels]` (frame-major); one `[tokens(T),
    /// output_dim]` tensor per clip.
    pub fn forward(&self, cpu: &Cpu, clips: &[&[f32]]) -> Vec<Tensor> {
        let mels = self.cfg.num_mel_bins;
        let chunk = self.chunk_frames();
        let d = self.cfg.d_model;

        // 1. Cut every clip into chunks; all chunks of a clip are padded to its longest chunk.
        //    Chunks of equal padded length run through the convolutions together.
        struct Piece {
            clip: usize,
            start: usize,
            len: usize,
            padded: usize,
        }
        let mut pieces = Vec::new();
        let mut frames_of = Vec::with_capacity(clips.len());
        for (c, feats) in clips.iter().enumerate() {
            let frames = feats.len() / mels;
            frames_of.push(frames);
            let n = frames.div_ceil(chunk);
            let padded = if n >= 2 { chunk } else { frames };
            for i in 0..n {
                let start = i * chunk;
                pieces.push(Piece { clip: c, start, len: (frames - start).min(chunk), padded });
            }
        }
        let mut tokens: Vec<Tensor> = frames_of.iter().map(|&f| Tensor::zeros(self.tokens(f), d)).collect();
        let mut lengths: Vec<usize> = pieces.iter().map(|p| p.padded).collect();
        lengths.sort_unstable();
        lengths.dedup();
        for padded in lengths {
            let group: Vec<&Piece> = pieces.iter().filter(|p| p.padded == padded).collect();
            // Input images: [chunk][freq][time], one channel; zeros past each chunk's end.
            let mut x = Tensor::zeros(group.len() * mels * padded, 1);
            for (g, p) in group.iter().enumerate() {
                let feats = clips[p.clip];
                for t in 0..p.len {
                    let frame = &feats[(p.start + t) * mels..(p.start + t + 1) * mels];
                    for (f, &v) in frame.iter().enumerate() {
                        x.data[(g * mels + f) * padded + t] = v;
                    }
                }
            }
            let (f1, t1) = (conv_out_len(mels), conv_out_len(padded));
            let h = self.conv2d1.forward(cpu, &x, group.len(), mels, padded);
            let (f2, t2) = (conv_out_len(f1), conv_out_len(t1));
            let h = self.conv2d2.forward(cpu, &h, group.len(), f1, t1);
            let (f3, t3) = (conv_out_len(f2), conv_out_len(t2));
            let h = self.conv2d3.forward(cpu, &h, group.len(), f2, t2);
            // Flatten each time step's (channel, frequency) plane, channel-major, as the
            // reference's permute(0, 3, 1, 2).view(b, t, c·f).
            let ch = self.conv2d3.weight.rows();
            let mut flat = Tensor::zeros(group.len() * t3, ch * f3);
            cpu.for_rows(&mut flat.data, ch * f3, |row, out| {
                let (g, t) = (row / t3, row % t3);
                for f in 0..f3 {
                    let px = h.row((g * f3 + f) * t3 + t);
                    for c in 0..ch {
                        out[c * f3 + f] = px[c];
                    }
                }
            });
            let mut e = cpu.linear(&flat, &self.conv_out, None);
            // Positions restart in every chunk; keep each chunk's valid tokens, in clip order.
            for (g, p) in group.iter().enumerate() {
                let valid = self.tokens(p.len).min(t3);
                let dst = &mut tokens[p.clip];
                let first = p.start / chunk * self.tokens(chunk);
                for t in 0..valid {
                    let row = e.row_mut(g * t3 + t);
                    for (v, pe) in row.iter_mut().zip(self.positions.row(t)) {
                        *v += pe;
                    }
                    dst.row_mut(first + t).copy_from_slice(row);
                }
            }
        }

        // 2. The transformer over all clips' tokens at once; attention windows per clip.
        let mut windows: Vec<(usize, usize)> = Vec::new();
        let mut offset = 0;
        let windows_per_attention = self.cfg.n_window_infer / chunk;
        for (c, t) in tokens.iter().enumerate() {
            // The official window is (tokens of the clip's longest chunk) × (n_window_infer / chunk).
            let longest = if frames_of[c] >= chunk { self.tokens(chunk) } else { t.rows };
            let w = (longest * windows_per_attention).max(1);
            let mut s = 0;
            while s < t.rows {
                let e = (s + w).min(t.rows);
                windows.push((offset + s, offset + e));
                s = e;
            }
            offset += t.rows;
        }
        let rows: Vec<&[f32]> = tokens.iter().flat_map(|t| (0..t.rows).map(move |r| t.row(r))).collect();
        let mut x = if rows.is_empty() { Tensor::zeros(0, d) } else { Tensor::stack(&rows) };
        for layer in &self.layers {
            let mut h = x.clone();
            cpu::layer_norm(&mut h.data, &layer.self_attn_layer_norm.0, &layer.self_attn_layer_norm.1, LN_EPS);
            let attn = self.attention(cpu, layer, &h, &windows);
            x.add_assign(&cpu.linear(&attn, &layer.out_proj.0, Some(&layer.out_proj.1)));
            let mut h = x.clone();
            cpu::layer_norm(&mut h.data, &layer.final_layer_norm.0, &layer.final_layer_norm.1, LN_EPS);
            let mut h = cpu.linear(&h, &layer.fc1.0, Some(&layer.fc1.1));
            cpu::gelu_erf(&mut h.data);
            x.add_assign(&cpu.linear(&h, &layer.fc2.0, Some(&layer.fc2.1)));
        }
        cpu::layer_norm(&mut x.data, &self.ln_post.0, &self.ln_post.1, LN_EPS);
        let mut h = cpu.linear(&x, &self.proj1.0, Some(&self.proj1.1));
        cpu::gelu_erf(&mut h.data);
        let y = cpu.linear(&h, &self.proj2.0, Some(&self.proj2.1));

        // 3. Back to one tensor per clip.
        let out_dim = self.cfg.output_dim;
        let mut out = Vec::with_capacity(clips.len());
        let mut r = 0;
        for t in &tokens {
            out.push(Tensor::from_vec(y.data[r * out_dim..(r + t.rows) * out_dim].to_vec(), t.rows, out_dim));
            r += t.rows;
        }
        out
    }

    /// Bidirectional multi-head attention inside each window `[start, end)` of rows.
    fn attention(&self, cpu: &Cpu, layer: &EncoderLayer, h: &Tensor, windows: &[(usize, usize)]) -> Tensor {
        let d = self.cfg.d_model;
        let heads = self.cfg.encoder_attention_heads;
        let hd = d / heads;
        let qkv = cpu.linear_many(
            h,
            &[
                (&layer.q_proj.0, Some(&layer.q_proj.1)),
                (&layer.k_proj.0, Some(&layer.k_proj.1)),
                (&layer.v_proj.0, Some(&layer.v_proj.1)),
            ],
        );
        let (q, k, v) = (&qkv[0], &qkv[1], &qkv[2]);
        let scale = 1.0 / (hd as f32).sqrt();
        // Window of each row (windows are consecutive and cover all rows).
        let mut window_of = vec![0usize; h.rows];
        for (i, &(s, e)) in windows.iter().enumerate() {
            window_of[s..e].iter_mut().for_each(|w| *w = i);
        }
        let mut out = Tensor::zeros(h.rows, d);
        cpu.for_rows(&mut out.data, d, |row, o| {
            let (s, e) = windows[window_of[row]];
            let mut scores = vec![0.0f32; e - s];
            for head in 0..heads {
                let qh = &q.row(row)[head * hd..(head + 1) * hd];
                let mut max = f32::NEG_INFINITY;
                for (j, sc) in scores.iter_mut().enumerate() {
                    *sc = cpu::dot(qh, &k.row(s + j)[head * hd..(head + 1) * hd]) * scale;
                    max = max.max(*sc);
                }
                let mut sum = 0.0;
                for sc in scores.iter_mut() {
                    *sc = (*sc - max).exp();
                    sum += *sc;
                }
                let oh = &mut o[head * hd..(head + 1) * hd];
                for (j, &p) in scores.iter().enumerate() {
                    let w = p / sum;
                    for (a, b) in oh.iter_mut().zip(&v.row(s + j)[head * hd..(head + 1) * hd]) {
                        *a += w * b;
                    }
                }
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts_match_the_official_rule() {
        // Verified against the official encoder (spec §4.2).
        for (t, n) in [(30, 4), (99, 13), (100, 13), (101, 14), (230, 30), (799, 104), (800, 104), (801, 105)] {
            assert_eq!(tokens_for_frames(t, 100), n, "T = {t}");
        }
        for (t, n) in [(1000, 130), (2030, 264), (3000, 390), (0, 0), (1, 1)] {
            assert_eq!(tokens_for_frames(t, 100), n, "T = {t}");
        }
    }
}
