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

use crate::backend::{AttnSeq, AttnShape, Compute, Conv2dWeight, Kv, Mask, Tensor, Weight};
use crate::error::Result;
use crate::models::asr_config::AudioEncoderConfig;
use crate::models::weights::Checkpoint;

/// LayerNorm epsilon of every encoder norm (`nn.LayerNorm` default).
const LN_EPS: f32 = 1e-5;

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

struct EncoderLayer {
    self_attn_layer_norm: (Weight, Weight),
    q_proj: (Weight, Weight),
    k_proj: (Weight, Weight),
    v_proj: (Weight, Weight),
    out_proj: (Weight, Weight),
    final_layer_norm: (Weight, Weight),
    fc1: (Weight, Weight),
    fc2: (Weight, Weight),
}

fn linear_with_bias(ck: &mut Checkpoint, name: &str, out: usize, inp: usize) -> Result<(Weight, Weight)> {
    Ok((ck.take(&format!("{name}.weight"), &[out, inp])?, ck.take_vector(&format!("{name}.bias"), out)?))
}

fn norm(ck: &mut Checkpoint, name: &str, d: usize) -> Result<(Weight, Weight)> {
    Ok((ck.take_vector(&format!("{name}.weight"), d)?, ck.take_vector(&format!("{name}.bias"), d)?))
}

fn conv2d(ck: &mut Checkpoint, name: &str, cin: usize, cout: usize) -> Result<Conv2dWeight> {
    // Re-laid out below: the checkpoint's layout never goes to the device.
    let w = ck.take_host(&format!("{name}.weight"), &[cout, cin, 3, 3])?;
    let b = ck.take_host(&format!("{name}.bias"), &[cout])?;
    let conv = Conv2dWeight::new(&w, &b)?;
    ck.prepare(&conv.weights())?;
    Ok(conv)
}

pub struct AudioEncoder {
    pub cfg: AudioEncoderConfig,
    cx: Compute,
    conv2d1: Conv2dWeight,
    conv2d2: Conv2dWeight,
    conv2d3: Conv2dWeight,
    conv_out: Weight,
    /// Sinusoidal positions for one chunk's tokens, `[tokens per chunk, d_model]`.
    positions: Tensor,
    layers: Vec<EncoderLayer>,
    ln_post: (Weight, Weight),
    proj1: (Weight, Weight),
    proj2: (Weight, Weight),
}

/// `SinusoidsPositionEmbedding`: `[sin(t·inv), cos(t·inv)]`, `inv[i] = exp(−i·ln(10⁴)/(d/2 − 1))`.
fn sinusoids(rows: usize, d: usize) -> Vec<f32> {
    let half = d / 2;
    let inc = 10_000f64.ln() / (half as f64 - 1.0);
    let mut t = vec![0.0f32; rows * d];
    for (r, row) in t.chunks_mut(d).enumerate() {
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

/// A piece of a clip convolved on its own: frames `start..start + len`, zero-padded to `padded`.
struct Piece {
    clip: usize,
    start: usize,
    len: usize,
    padded: usize,
}

impl AudioEncoder {
    pub fn load(cx: &Compute, ck: &mut Checkpoint, cfg: &AudioEncoderConfig, prefix: &str) -> Result<AudioEncoder> {
        let (d, ffn, ch) = (cfg.d_model, cfg.encoder_ffn_dim, cfg.downsample_hidden_size);
        let p = |n: &str| format!("{prefix}{n}");
        let conv2d1 = conv2d(ck, &p("conv2d1"), 1, ch)?;
        let conv2d2 = conv2d(ck, &p("conv2d2"), ch, ch)?;
        let conv2d3 = conv2d(ck, &p("conv2d3"), ch, ch)?;
        let freq = conv_out_len(conv_out_len(conv_out_len(cfg.num_mel_bins)));
        let conv_out = ck.take(&p("conv_out.weight"), &[d, ch * freq])?;
        ck.expect_layers(&format!("{prefix}layers."), cfg.encoder_layers, "audio_config.encoder_layers")?;
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
            cx: cx.clone(),
            conv2d1,
            conv2d2,
            conv2d3,
            conv_out,
            positions: cx.upload(&sinusoids(tokens_per_chunk, d), tokens_per_chunk, d),
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

    /// Encodes clips given as log-mel features `[T, n_mels]` (frame-major, host memory); one
    /// `[tokens(T), output_dim]` tensor per clip.
    pub fn forward(&self, clips: &[&[f32]]) -> Vec<Tensor> {
        let cx = &self.cx;
        let mels = self.cfg.num_mel_bins;
        let chunk = self.chunk_frames();
        let d = self.cfg.d_model;

        // 1. Cut every clip into chunks; all chunks of a clip are padded to its longest chunk.
        //    Chunks of equal padded length run through the convolutions together.
        let mut pieces = Vec::new();
        let mut frames_of = Vec::with_capacity(clips.len());
        let mut first_frame = Vec::with_capacity(clips.len());
        for (c, feats) in clips.iter().enumerate() {
            let frames = feats.len() / mels;
            first_frame.push(frames_of.iter().sum::<usize>());
            frames_of.push(frames);
            let n = frames.div_ceil(chunk);
            let padded = if n >= 2 { chunk } else { frames };
            for i in 0..n {
                let start = i * chunk;
                pieces.push(Piece { clip: c, start, len: (frames - start).min(chunk), padded });
            }
        }
        // Whole frames only (a trailing partial frame is ignored).
        let all: Vec<f32> = clips.iter().zip(&frames_of).flat_map(|(c, &f)| c[..f * mels].iter().copied()).collect();
        let mel = cx.upload(&all, frames_of.iter().sum(), mels);
        let token_counts: Vec<usize> = frames_of.iter().map(|&f| self.tokens(f)).collect();
        let first_token: Vec<usize> = token_counts.iter().scan(0, |a, &n| Some(std::mem::replace(a, *a + n))).collect();
        let mut x = cx.zeros(token_counts.iter().sum(), d);
        let mut lengths: Vec<usize> = pieces.iter().map(|p| p.padded).collect();
        lengths.sort_unstable();
        lengths.dedup();
        for padded in lengths {
            let group: Vec<&Piece> = pieces.iter().filter(|p| p.padded == padded).collect();
            let g = group.len();
            // 2. Images [chunk][freq][time], one channel; zeros past each chunk's end.
            let rows: Vec<Option<usize>> = group
                .iter()
                .flat_map(|p| {
                    let first = first_frame[p.clip] + p.start;
                    (0..padded).map(move |t| (t < p.len).then_some(first + t))
                })
                .collect();
            let images = cx.permute(&cx.gather_rows(&mel, &rows), [g, padded, mels, 1], [0, 2, 1, 3]);
            // 3. The conv stem: three 3×3 stride-2 convolutions with GELU.
            let (f1, t1) = (conv_out_len(mels), conv_out_len(padded));
            let mut h = cx.conv2d_s2(&images, &self.conv2d1, g, mels, padded);
            cx.gelu_erf(&mut h);
            let (f2, t2) = (conv_out_len(f1), conv_out_len(t1));
            let mut h = cx.conv2d_s2(&h, &self.conv2d2, g, f1, t1);
            cx.gelu_erf(&mut h);
            let (f3, t3) = (conv_out_len(f2), conv_out_len(t2));
            let mut h = cx.conv2d_s2(&h, &self.conv2d3, g, f2, t2);
            cx.gelu_erf(&mut h);
            // 4. Flatten each time step's (channel, frequency) plane, channel-major, as the
            //    reference's permute(0, 3, 1, 2).view(b, t, c·f); project.
            let ch = self.conv2d3.out_channels();
            let flat = cx.permute(&h, [g, f3, t3, ch], [0, 2, 3, 1]).reshape(g * t3, ch * f3);
            let e = cx.linear(&flat, &self.conv_out, None);
            // 5. Positions restart in every chunk; each chunk's valid tokens go to their clip.
            let mut src = Vec::new();
            let mut pos = Vec::new();
            let mut dst = Vec::new();
            for (gi, p) in group.iter().enumerate() {
                let valid = self.tokens(p.len).min(t3);
                let first = first_token[p.clip] + p.start / chunk * self.tokens(chunk);
                for t in 0..valid {
                    src.push(Some(gi * t3 + t));
                    pos.push(Some(t));
                    dst.push(first + t);
                }
            }
            let mut tokens = cx.gather_rows(&e, &src);
            cx.add(&mut tokens, &cx.gather_rows(&self.positions, &pos));
            cx.set_rows(&mut x, &dst, &tokens);
        }

        // 6. The transformer over all clips' tokens at once; attention within each clip's
        //    windows of (tokens of its longest chunk) × (n_window_infer / chunk).
        let mut windows = Vec::new();
        let per_attention = self.cfg.n_window_infer / chunk;
        for (c, &n) in token_counts.iter().enumerate() {
            let longest = if frames_of[c] >= chunk { self.tokens(chunk) } else { n };
            let w = (longest * per_attention).max(1);
            let mut s = 0;
            while s < n {
                let e = (s + w).min(n);
                windows.push(AttnSeq { slot: 0, rows: e - s, past: 0 });
                s = e;
            }
        }
        let heads = self.cfg.encoder_attention_heads;
        let shape = AttnShape { heads, kv_heads: heads, head_dim: d / heads };
        for layer in &self.layers {
            let h = cx.layer_norm(&x, &layer.self_attn_layer_norm.0, &layer.self_attn_layer_norm.1, LN_EPS);
            let qkv = cx.linear_many(
                &h,
                &[
                    (&layer.q_proj.0, Some(&layer.q_proj.1)),
                    (&layer.k_proj.0, Some(&layer.k_proj.1)),
                    (&layer.v_proj.0, Some(&layer.v_proj.1)),
                ],
            );
            let kv = Kv::Rows { k: &qkv[1], v: &qkv[2] };
            let a = cx.attention(&qkv[0], kv, &windows, shape, Mask::Full);
            cx.add(&mut x, &cx.linear(&a, &layer.out_proj.0, Some(&layer.out_proj.1)));
            let h = cx.layer_norm(&x, &layer.final_layer_norm.0, &layer.final_layer_norm.1, LN_EPS);
            let mut h = cx.linear(&h, &layer.fc1.0, Some(&layer.fc1.1));
            cx.gelu_erf(&mut h);
            cx.add(&mut x, &cx.linear(&h, &layer.fc2.0, Some(&layer.fc2.1)));
        }
        // 7. The projector into the decoder's width.
        let x = cx.layer_norm(&x, &self.ln_post.0, &self.ln_post.1, LN_EPS);
        let mut h = cx.linear(&x, &self.proj1.0, Some(&self.proj1.1));
        cx.gelu_erf(&mut h);
        let y = cx.linear(&h, &self.proj2.0, Some(&self.proj2.1));

        // 8. Back to one tensor per clip.
        token_counts.iter().zip(&first_token).map(|(&n, &r)| cx.slice_rows(&y, r, n)).collect()
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
