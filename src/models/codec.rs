//! The Qwen3-TTS-Tokenizer-12Hz decoder: codec frames (16 codes per 80 ms) → 24 kHz waveform.
//!
//! Pipeline (spec §5.1; activations are `[time, channels]` rows here, PyTorch uses `[C, T]`):
//! RVQ lookup and projections → causal conv (k=3) → sliding-window transformer with layer scales →
//! 2 × (transposed conv ×2 + ConvNeXt) → causal conv (k=7) → 4 DAC blocks (SnakeBeta, transposed
//! conv ×r, 3 residual units with dilations 1/3/9) → SnakeBeta → causal conv to 1 channel → clamp.
//! Offline decoding reproduces the official `chunked_decode(300, 25)` windowing.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::backend::cpu::{self, Cpu};
use crate::backend::{Tensor, Weight};
use crate::error::{Error, ErrorKind, Result};
use crate::models::qwen3::rope;
use crate::models::tts_config::read_json;
use crate::models::weights::Checkpoint;

#[derive(Clone, Debug, Deserialize)]
pub struct CodecDecoderConfig {
    pub codebook_size: usize,
    pub codebook_dim: usize,
    pub num_quantizers: usize,
    pub latent_dim: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: Option<usize>,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub sliding_window: usize,
    pub decoder_dim: usize,
    pub upsample_rates: Vec<usize>,
    pub upsampling_ratios: Vec<usize>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CodecConfig {
    #[serde(default = "default_rate")]
    pub output_sample_rate: u32,
    pub decode_upsample_rate: usize,
    pub decoder_config: CodecDecoderConfig,
}

fn default_rate() -> u32 {
    24_000
}

/// The official offline windowing: windows of this many frames, each with this much left context.
pub const CHUNK_FRAMES: usize = 300;
pub const LEFT_CONTEXT_FRAMES: usize = 25;

/// A causal 1-D convolution as one matrix `[out, k·in]` over the taps' shifted inputs
/// (im2col): a single matrix product per call instead of one per tap.
struct CausalConv {
    weight: Weight,
    bias: Vec<f32>,
    kernel: usize,
    dilation: usize,
}

impl CausalConv {
    fn load(ck: &mut Checkpoint, name: &str, cin: usize, cout: usize, k: usize, dilation: usize) -> Result<CausalConv> {
        let w = ck.take(&format!("{name}.weight"), &[cout, cin, k])?.to_f32();
        // [out, in, k] → [out, k, in]: column t·in + i multiplies input channel i at tap t.
        let mut m = vec![0.0; cout * k * cin];
        for o in 0..cout {
            for i in 0..cin {
                for t in 0..k {
                    m[o * k * cin + t * cin + i] = w[(o * cin + i) * k + t];
                }
            }
        }
        Ok(CausalConv {
            weight: Weight::from_f32(vec![cout, k * cin], m),
            bias: ck.take_f32(&format!("{name}.bias"), &[cout])?,
            kernel: k,
            dilation,
        })
    }

    /// `x`: `[T, in]` → `[T, out]`, left-padded with `(k−1)·dilation` zero rows.
    fn forward(&self, cpu: &Cpu, x: &Tensor) -> Tensor {
        let (k, cin) = (self.kernel, x.cols);
        let pad = (k - 1) * self.dilation;
        let mut cols = Tensor::zeros(x.rows, k * cin);
        cpu.for_rows(&mut cols.data, k * cin, |r, row| {
            for t in 0..k {
                // Tap t reads input row r + t·d − pad (zeros before the start).
                if let Some(src) = (r + t * self.dilation).checked_sub(pad) {
                    row[t * cin..(t + 1) * cin].copy_from_slice(x.row(src));
                }
            }
        });
        cpu.linear(&cols, &self.weight, Some(&self.bias))
    }
}

impl CausalConv {
    /// Rows of left context this conv needs: `(k−1)·dilation`.
    fn context(&self) -> usize {
        (self.kernel - 1) * self.dilation
    }

    /// Streaming: `history` holds the last `context()` input rows (zeros at the start, which is
    /// the offline zero padding), so the output for `x` equals the offline output for those rows.
    fn forward_stream(&self, cpu: &Cpu, history: &mut Tensor, x: &Tensor) -> Tensor {
        let pad = self.context();
        if pad == 0 {
            return self.forward(cpu, x);
        }
        let joined = concat_rows(history, x);
        let y = self.forward(cpu, &joined);
        *history = last_rows(&joined, pad);
        last_rows(&y, x.rows)
    }
}

/// `[a; b]` (same width).
fn concat_rows(a: &Tensor, b: &Tensor) -> Tensor {
    let mut data = Vec::with_capacity(a.data.len() + b.data.len());
    data.extend_from_slice(&a.data);
    data.extend_from_slice(&b.data);
    Tensor::from_vec(data, a.rows + b.rows, b.cols)
}

/// The last `n` rows of `t`.
fn last_rows(t: &Tensor, n: usize) -> Tensor {
    Tensor::from_vec(t.data[(t.rows - n) * t.cols..].to_vec(), n, t.cols)
}

/// A transposed convolution with kernel 2r (or r) and stride r, trimmed on the right to r·T.
struct CausalTransConv {
    /// All taps stacked: row `k·out + o` is tap k's output channel o (one product per call).
    taps: Weight,
    kernel: usize,
    out: usize,
    bias: Vec<f32>,
    stride: usize,
}

impl CausalTransConv {
    fn load(
        ck: &mut Checkpoint,
        name: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
    ) -> Result<CausalTransConv> {
        // PyTorch ConvTranspose1d weight: [in, out, k].
        let w = ck.take(&format!("{name}.weight"), &[cin, cout, k])?.to_f32();
        let mut m = vec![0.0; k * cout * cin];
        for t in 0..k {
            for o in 0..cout {
                for i in 0..cin {
                    m[(t * cout + o) * cin + i] = w[(i * cout + o) * k + t];
                }
            }
        }
        Ok(CausalTransConv {
            taps: Weight::from_f32(vec![k * cout, cin], m),
            kernel: k,
            out: cout,
            bias: ck.take_f32(&format!("{name}.bias"), &[cout])?,
            stride,
        })
    }

    /// Rows each input row spills into the next one's outputs: `k − r`.
    fn overhang(&self) -> usize {
        self.kernel - self.stride
    }

    /// `[T, in]` → `[r·T, out]`: input row t adds tap k into output row t·r + k. The rows that
    /// spill past r·T go to `tail` (added to the next call's first rows); offline, the final tail
    /// is what the official right-only trim drops.
    fn forward_stream(&self, cpu: &Cpu, tail: &mut Tensor, x: &Tensor) -> Tensor {
        let (r, kernel, cout) = (self.stride, self.kernel, self.out);
        let len = x.rows * r;
        let part = cpu.linear(x, &self.taps, None); // [T, k·out]
        let mut y = Tensor::zeros(len + self.overhang(), cout);
        // Output row o gathers tap k of input row (o − k)/r, taps in ascending order.
        let gather = |o: usize, row: &mut [f32]| {
            for k in 0..kernel {
                if o >= k && (o - k) % r == 0 && (o - k) / r < x.rows {
                    let src = &part.row((o - k) / r)[k * cout..(k + 1) * cout];
                    for (a, b) in row.iter_mut().zip(src) {
                        *a += b;
                    }
                }
            }
        };
        cpu.for_rows(&mut y.data, cout, gather);
        for (a, b) in y.data.iter_mut().zip(&tail.data) {
            *a += b;
        }
        *tail = last_rows(&y, self.overhang());
        y.data.truncate(len * cout);
        y.rows = len;
        for row in y.data.chunks_mut(cout) {
            for (v, b) in row.iter_mut().zip(&self.bias) {
                *v += b;
            }
        }
        y
    }
}

/// `x + sin²(x·e^α) / (e^β + 1e-9)`, per channel (α, β stored as logs).
struct SnakeBeta {
    alpha: Vec<f32>,
    inv_beta: Vec<f32>,
}

impl SnakeBeta {
    fn load(ck: &mut Checkpoint, name: &str, c: usize) -> Result<SnakeBeta> {
        let alpha = ck.take_f32(&format!("{name}.alpha"), &[c])?.iter().map(|a| a.exp()).collect();
        let inv_beta = ck.take_f32(&format!("{name}.beta"), &[c])?.iter().map(|b| 1.0 / (b.exp() + 1e-9)).collect();
        Ok(SnakeBeta { alpha, inv_beta })
    }

    fn forward(&self, cpu: &Cpu, x: &Tensor) -> Tensor {
        let mut y = x.clone();
        cpu.for_rows(&mut y.data, x.cols, |_, row| cpu::snake_beta(row, &self.alpha, &self.inv_beta));
        y
    }
}

struct ResidualUnit {
    act1: SnakeBeta,
    conv1: CausalConv,
    act2: SnakeBeta,
    conv2: CausalConv,
}

impl ResidualUnit {
    fn forward_stream(&self, cpu: &Cpu, history: &mut Tensor, x: &Tensor) -> Tensor {
        let h = self.conv1.forward_stream(cpu, history, &self.act1.forward(cpu, x));
        let mut y = self.conv2.forward(cpu, &self.act2.forward(cpu, &h));
        y.add_assign(x);
        y
    }
}

struct DecoderBlock {
    snake: SnakeBeta,
    upsample: CausalTransConv,
    units: Vec<ResidualUnit>,
}

struct ConvNeXt {
    dwconv: Vec<f32>, // [C, 7]
    dwconv_bias: Vec<f32>,
    norm_w: Vec<f32>,
    norm_b: Vec<f32>,
    pwconv1: Weight,
    pwconv1_b: Vec<f32>,
    pwconv2: Weight,
    pwconv2_b: Vec<f32>,
    gamma: Vec<f32>,
}

impl ConvNeXt {
    fn load(ck: &mut Checkpoint, name: &str, c: usize) -> Result<ConvNeXt> {
        Ok(ConvNeXt {
            dwconv: ck.take_f32(&format!("{name}.dwconv.conv.weight"), &[c, 1, 7])?,
            dwconv_bias: ck.take_f32(&format!("{name}.dwconv.conv.bias"), &[c])?,
            norm_w: ck.take_f32(&format!("{name}.norm.weight"), &[c])?,
            norm_b: ck.take_f32(&format!("{name}.norm.bias"), &[c])?,
            pwconv1: ck.take(&format!("{name}.pwconv1.weight"), &[4 * c, c])?,
            pwconv1_b: ck.take_f32(&format!("{name}.pwconv1.bias"), &[4 * c])?,
            pwconv2: ck.take(&format!("{name}.pwconv2.weight"), &[c, 4 * c])?,
            pwconv2_b: ck.take_f32(&format!("{name}.pwconv2.bias"), &[c])?,
            gamma: ck.take_f32(&format!("{name}.gamma"), &[c])?,
        })
    }

    /// `history`: the last 6 input rows (zeros at the start) for the causal depthwise conv.
    fn forward_stream(&self, cpu: &Cpu, history: &mut Tensor, x: &Tensor) -> Tensor {
        let c = x.cols;
        let joined = concat_rows(history, x);
        *history = last_rows(&joined, 6);
        // Depthwise causal conv, kernel 7: output row t reads joined rows t..t+6.
        let mut h = Tensor::zeros(x.rows, c);
        for t in 0..x.rows {
            let out = &mut h.data[t * c..(t + 1) * c];
            out.copy_from_slice(&self.dwconv_bias);
            for k in 0..7 {
                let src = joined.row(t + k);
                for ch in 0..c {
                    out[ch] += self.dwconv[ch * 7 + k] * src[ch];
                }
            }
        }
        cpu::layer_norm(&mut h.data, &self.norm_w, &self.norm_b, 1e-6);
        let mut a = cpu.linear(&h, &self.pwconv1, Some(&self.pwconv1_b));
        cpu::gelu_erf(&mut a.data);
        let b = cpu.linear(&a, &self.pwconv2, Some(&self.pwconv2_b));
        let mut y = x.clone();
        for (row_y, row_b) in y.data.chunks_mut(c).zip(b.data.chunks(c)) {
            for ((v, d), g) in row_y.iter_mut().zip(row_b).zip(&self.gamma) {
                *v += g * d;
            }
        }
        y
    }
}

struct TransformerLayer {
    input_layernorm: Vec<f32>,
    q_proj: Weight,
    k_proj: Weight,
    v_proj: Weight,
    o_proj: Weight,
    attn_scale: Vec<f32>,
    post_attention_layernorm: Vec<f32>,
    gate_proj: Weight,
    up_proj: Weight,
    down_proj: Weight,
    mlp_scale: Vec<f32>,
}

/// The state of one decoding stream: each stage's left context, the transformer's keys and
/// values, and the transposed convolutions' overhangs.
pub struct CodecStream {
    /// Frames decoded so far (the next frame's position).
    pub frames: usize,
    pre_conv: Tensor,
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    upsample: Vec<(Tensor, Tensor)>,
    conv_in: Tensor,
    blocks: Vec<(Tensor, Vec<Tensor>)>,
    conv_out: Tensor,
}

/// The codec decoder, loaded from `speech_tokenizer/`.
pub struct Codec {
    pub config: CodecConfig,
    cpu: Arc<Cpu>,
    /// Codebook tables `embedding_sum / clamp(cluster_usage, 1e-5)`, one per quantizer.
    codebooks: Vec<Vec<f32>>,
    out_first: Weight,
    out_rest: Weight,
    pre_conv: CausalConv,
    input_proj: Weight,
    input_proj_b: Vec<f32>,
    layers: Vec<TransformerLayer>,
    norm: Vec<f32>,
    output_proj: Weight,
    output_proj_b: Vec<f32>,
    inv_freq: Vec<f32>,
    upsample: Vec<(CausalTransConv, ConvNeXt)>,
    conv_in: CausalConv,
    blocks: Vec<DecoderBlock>,
    final_snake: SnakeBeta,
    conv_out: CausalConv,
}

impl Codec {
    /// Loads `dir/config.json` and `dir/model.safetensors` (the decoder part; the encoder is only
    /// needed for voice cloning).
    pub fn load(dir: &Path, cpu: Arc<Cpu>) -> Result<Codec> {
        let config: CodecConfig = read_json(&dir.join("config.json"))?;
        let c = &config.decoder_config;
        let total: usize = c.upsample_rates.iter().chain(&c.upsampling_ratios).product();
        if total != config.decode_upsample_rate || c.num_quantizers < 2 || c.codebook_dim % 2 != 0 {
            return Err(Error::new(
                ErrorKind::ModelLoad,
                format!(
                    "{}: decode_upsample_rate {} must equal the product of upsample_rates and upsampling_ratios ({total}), with ≥ 2 quantizers and an even codebook_dim",
                    dir.join("config.json").display(),
                    config.decode_upsample_rate
                ),
            ));
        }
        let mut ck = Checkpoint::open(&dir.join("model.safetensors"))?;
        let vq = c.codebook_dim / 2;
        let mut codebooks = Vec::with_capacity(c.num_quantizers);
        for q in 0..c.num_quantizers {
            let prefix = if q == 0 {
                "decoder.quantizer.rvq_first.vq.layers.0._codebook".to_string()
            } else {
                format!("decoder.quantizer.rvq_rest.vq.layers.{}._codebook", q - 1)
            };
            let sum = ck.take_f32(&format!("{prefix}.embedding_sum"), &[c.codebook_size, vq])?;
            let usage = ck.take_f32(&format!("{prefix}.cluster_usage"), &[c.codebook_size])?;
            let table =
                sum.chunks(vq).zip(&usage).flat_map(|(row, u)| row.iter().map(move |v| v / u.max(1e-5))).collect();
            codebooks.push(table);
        }
        let proj = |ck: &mut Checkpoint, name: &str| -> Result<Weight> {
            let w = ck.take(name, &[c.codebook_dim, vq, 1])?;
            Ok(Weight { shape: vec![c.codebook_dim, vq], data: w.data })
        };
        let out_first = proj(&mut ck, "decoder.quantizer.rvq_first.output_proj.weight")?;
        let out_rest = proj(&mut ck, "decoder.quantizer.rvq_rest.output_proj.weight")?;
        let pre_conv = CausalConv::load(&mut ck, "decoder.pre_conv.conv", c.codebook_dim, c.latent_dim, 3, 1)?;
        let (h, hd) = (c.hidden_size, c.head_dim.unwrap_or(c.hidden_size / c.num_attention_heads));
        let (qw, kvw) = (c.num_attention_heads * hd, c.num_key_value_heads * hd);
        let pt = "decoder.pre_transformer";
        let mut layers = Vec::new();
        for l in 0..c.num_hidden_layers {
            let p = format!("{pt}.layers.{l}");
            layers.push(TransformerLayer {
                input_layernorm: ck.take_f32(&format!("{p}.input_layernorm.weight"), &[h])?,
                q_proj: ck.take(&format!("{p}.self_attn.q_proj.weight"), &[qw, h])?,
                k_proj: ck.take(&format!("{p}.self_attn.k_proj.weight"), &[kvw, h])?,
                v_proj: ck.take(&format!("{p}.self_attn.v_proj.weight"), &[kvw, h])?,
                o_proj: ck.take(&format!("{p}.self_attn.o_proj.weight"), &[h, qw])?,
                attn_scale: ck.take_f32(&format!("{p}.self_attn_layer_scale.scale"), &[h])?,
                post_attention_layernorm: ck.take_f32(&format!("{p}.post_attention_layernorm.weight"), &[h])?,
                gate_proj: ck.take(&format!("{p}.mlp.gate_proj.weight"), &[c.intermediate_size, h])?,
                up_proj: ck.take(&format!("{p}.mlp.up_proj.weight"), &[c.intermediate_size, h])?,
                down_proj: ck.take(&format!("{p}.mlp.down_proj.weight"), &[h, c.intermediate_size])?,
                mlp_scale: ck.take_f32(&format!("{p}.mlp_layer_scale.scale"), &[h])?,
            });
        }
        let inv_freq = (0..hd / 2).map(|j| 1.0 / (c.rope_theta as f32).powf((2 * j) as f32 / hd as f32)).collect();
        let ld = c.latent_dim;
        let mut upsample = Vec::new();
        for (i, &f) in c.upsampling_ratios.iter().enumerate() {
            upsample.push((
                CausalTransConv::load(&mut ck, &format!("decoder.upsample.{i}.0.conv"), ld, ld, f, f)?,
                ConvNeXt::load(&mut ck, &format!("decoder.upsample.{i}.1"), ld)?,
            ));
        }
        let conv_in = CausalConv::load(&mut ck, "decoder.decoder.0.conv", ld, c.decoder_dim, 7, 1)?;
        let mut blocks = Vec::new();
        for (i, &r) in c.upsample_rates.iter().enumerate() {
            let (cin, cout) = (c.decoder_dim >> i, c.decoder_dim >> (i + 1));
            let p = format!("decoder.decoder.{}.block", i + 1);
            let mut units = Vec::new();
            for (u, d) in [1, 3, 9].into_iter().enumerate() {
                let q = format!("{p}.{}", u + 2);
                units.push(ResidualUnit {
                    act1: SnakeBeta::load(&mut ck, &format!("{q}.act1"), cout)?,
                    conv1: CausalConv::load(&mut ck, &format!("{q}.conv1.conv"), cout, cout, 7, d)?,
                    act2: SnakeBeta::load(&mut ck, &format!("{q}.act2"), cout)?,
                    conv2: CausalConv::load(&mut ck, &format!("{q}.conv2.conv"), cout, cout, 1, 1)?,
                });
            }
            blocks.push(DecoderBlock {
                snake: SnakeBeta::load(&mut ck, &format!("{p}.0"), cin)?,
                upsample: CausalTransConv::load(&mut ck, &format!("{p}.1.conv"), cin, cout, 2 * r, r)?,
                units,
            });
        }
        let out_dim = c.decoder_dim >> c.upsample_rates.len();
        let n = c.upsample_rates.len();
        Ok(Codec {
            codebooks,
            out_first,
            out_rest,
            pre_conv,
            input_proj: ck.take(&format!("{pt}.input_proj.weight"), &[h, ld])?,
            input_proj_b: ck.take_f32(&format!("{pt}.input_proj.bias"), &[h])?,
            layers,
            norm: ck.take_f32(&format!("{pt}.norm.weight"), &[h])?,
            output_proj: ck.take(&format!("{pt}.output_proj.weight"), &[ld, h])?,
            output_proj_b: ck.take_f32(&format!("{pt}.output_proj.bias"), &[ld])?,
            inv_freq,
            upsample,
            conv_in,
            blocks,
            final_snake: SnakeBeta::load(&mut ck, &format!("decoder.decoder.{}", n + 1), out_dim)?,
            conv_out: CausalConv::load(&mut ck, &format!("decoder.decoder.{}.conv", n + 2), out_dim, 1, 7, 1)?,
            config,
            cpu,
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.config.output_sample_rate
    }

    pub fn samples_per_frame(&self) -> usize {
        self.config.decode_upsample_rate
    }

    /// Decodes a whole utterance as the official `chunked_decode(300, 25)`: windows of up to 300
    /// frames, each decoded afresh with up to 25 frames of left context that are then dropped.
    pub fn decode(&self, frames: &[Vec<u32>]) -> Result<Vec<f32>> {
        let spf = self.samples_per_frame();
        let mut out = Vec::with_capacity(frames.len() * spf);
        let mut start = 0;
        while start < frames.len() {
            let end = (start + CHUNK_FRAMES).min(frames.len());
            let context = if start > LEFT_CONTEXT_FRAMES { LEFT_CONTEXT_FRAMES } else { start };
            let wav = self.forward(&frames[start - context..end])?;
            out.extend_from_slice(&wav[context * spf..]);
            start = end;
        }
        Ok(out)
    }

    /// One pass over a window of frames (the official `Qwen3TTSTokenizerV2Decoder.forward`).
    pub fn forward(&self, frames: &[Vec<u32>]) -> Result<Vec<f32>> {
        self.forward_stream(&mut self.new_stream(), frames)
    }

    /// A fresh streaming state (zeros: the offline zero padding).
    pub fn new_stream(&self) -> CodecStream {
        let c = &self.config.decoder_config;
        let zeros = |rows: usize, cols: usize| Tensor::zeros(rows, cols);
        CodecStream {
            frames: 0,
            pre_conv: zeros(self.pre_conv.context(), c.codebook_dim),
            keys: vec![Vec::new(); self.layers.len()],
            values: vec![Vec::new(); self.layers.len()],
            upsample: self
                .upsample
                .iter()
                .map(|(up, _)| (zeros(up.overhang(), c.latent_dim), zeros(6, c.latent_dim)))
                .collect(),
            conv_in: zeros(self.conv_in.context(), c.latent_dim),
            blocks: self
                .blocks
                .iter()
                .map(|b| {
                    let cout = b.upsample.out;
                    (
                        zeros(b.upsample.overhang(), cout),
                        b.units.iter().map(|u| zeros(u.conv1.context(), cout)).collect(),
                    )
                })
                .collect(),
            conv_out: zeros(self.conv_out.context(), self.final_snake.alpha.len()),
        }
    }

    /// Decodes the next frames of a stream: the samples equal those of decoding the whole stream
    /// at once with `forward` (every stage is causal; the state carries each stage's context).
    pub fn forward_stream(&self, st: &mut CodecStream, frames: &[Vec<u32>]) -> Result<Vec<f32>> {
        let cpu = &*self.cpu;
        let c = &self.config.decoder_config;
        let t = frames.len();
        if t == 0 {
            return Ok(Vec::new());
        }
        let vq = c.codebook_dim / 2;
        // RVQ: first quantizer and the sum of the rest, each through its own 1×1 projection.
        let mut first = Tensor::zeros(t, vq);
        let mut rest = Tensor::zeros(t, vq);
        for (i, f) in frames.iter().enumerate() {
            if f.len() != c.num_quantizers {
                return Err(Error::invalid(format!(
                    "frame {i} has {} codes; the codec expects {}",
                    f.len(),
                    c.num_quantizers
                )));
            }
            for (q, &code) in f.iter().enumerate() {
                let code = code as usize;
                if code >= c.codebook_size {
                    return Err(Error::invalid(format!(
                        "code {code} in frame {i} is outside the codebook of {}",
                        c.codebook_size
                    )));
                }
                let row = &self.codebooks[q][code * vq..(code + 1) * vq];
                let dst = if q == 0 { first.row_mut(i) } else { rest.row_mut(i) };
                for (a, b) in dst.iter_mut().zip(row) {
                    *a += b;
                }
            }
        }
        let mut x = cpu.linear(&first, &self.out_first, None);
        x.add_assign(&cpu.linear(&rest, &self.out_rest, None));
        let x = self.pre_conv.forward_stream(cpu, &mut st.pre_conv, &x);
        let mut h = self.transformer(st, &x);
        for ((up, block), (tail, hist)) in self.upsample.iter().zip(st.upsample.iter_mut()) {
            h = block.forward_stream(cpu, hist, &up.forward_stream(cpu, tail, &h));
        }
        let mut w = self.conv_in.forward_stream(cpu, &mut st.conv_in, &h);
        for (b, (tail, hists)) in self.blocks.iter().zip(st.blocks.iter_mut()) {
            w = b.upsample.forward_stream(cpu, tail, &b.snake.forward(cpu, &w));
            for (u, hist) in b.units.iter().zip(hists.iter_mut()) {
                w = u.forward_stream(cpu, hist, &w);
            }
        }
        let w = self.conv_out.forward_stream(cpu, &mut st.conv_out, &self.final_snake.forward(cpu, &w));
        st.frames += t;
        Ok(w.data.iter().map(|v| v.clamp(-1.0, 1.0)).collect())
    }

    /// The sliding-window transformer over new `[T, latent]` rows at positions `st.frames..`; each
    /// layer's keys and values stay in the stream state.
    fn transformer(&self, st: &mut CodecStream, x: &Tensor) -> Tensor {
        let cpu = &*self.cpu;
        let c = &self.config.decoder_config;
        let eps = c.rms_norm_eps as f32;
        let hd = c.head_dim.unwrap_or(c.hidden_size / c.num_attention_heads);
        let (heads, kvh) = (c.num_attention_heads, c.num_key_value_heads);
        let (group, kvw) = (heads / kvh, kvh * hd);
        let scale = 1.0 / (hd as f32).sqrt();
        let mut h = cpu.linear(x, &self.input_proj, Some(&self.input_proj_b));
        let (t, p0) = (h.rows, st.frames);
        for (li, l) in self.layers.iter().enumerate() {
            let mut a = h.clone();
            cpu::rms_norm(&mut a.data, &l.input_layernorm, eps);
            let mut qkv = cpu.linear_many(&a, &[(&l.q_proj, None), (&l.k_proj, None), (&l.v_proj, None)]);
            let v = qkv.pop().unwrap();
            let mut k = qkv.pop().unwrap();
            let mut q = qkv.pop().unwrap();
            for r in 0..t {
                for head in q.row_mut(r).chunks_mut(hd) {
                    rope(head, p0 + r, &self.inv_freq);
                }
                for head in k.row_mut(r).chunks_mut(hd) {
                    rope(head, p0 + r, &self.inv_freq);
                }
            }
            let (keys, values) = (&mut st.keys[li], &mut st.values[li]);
            keys.extend_from_slice(&k.data);
            values.extend_from_slice(&v.data);
            // Query at position i sees keys j with i − window < j ≤ i.
            let mut o = Tensor::zeros(t, heads * hd);
            for r in 0..t {
                let i = p0 + r;
                let lo = (i + 1).saturating_sub(c.sliding_window);
                for hh in 0..heads {
                    let qh = &q.row(r)[hh * hd..(hh + 1) * hd];
                    let kv = (hh / group) * hd;
                    let scores: Vec<f32> =
                        (lo..=i).map(|j| cpu::dot(qh, &keys[j * kvw + kv..j * kvw + kv + hd]) * scale).collect();
                    let max = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let e: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                    let sum: f32 = e.iter().sum();
                    let out = &mut o.row_mut(r)[hh * hd..(hh + 1) * hd];
                    for (j, p) in (lo..=i).zip(&e) {
                        for (a, b) in out.iter_mut().zip(&values[j * kvw + kv..j * kvw + kv + hd]) {
                            *a += p / sum * b;
                        }
                    }
                }
            }
            let attn = cpu.linear(&o, &l.o_proj, None);
            for (row_h, row_a) in h.data.chunks_mut(c.hidden_size).zip(attn.data.chunks(c.hidden_size)) {
                for ((v, d), s) in row_h.iter_mut().zip(row_a).zip(&l.attn_scale) {
                    *v += s * d;
                }
            }
            let mut m = h.clone();
            cpu::rms_norm(&mut m.data, &l.post_attention_layernorm, eps);
            let mut gu = cpu.linear_many(&m, &[(&l.gate_proj, None), (&l.up_proj, None)]);
            let up = gu.pop().unwrap();
            let mut gate = gu.pop().unwrap();
            cpu::silu_mul(&mut gate.data, &up.data);
            let mlp = cpu.linear(&gate, &l.down_proj, None);
            for (row_h, row_m) in h.data.chunks_mut(c.hidden_size).zip(mlp.data.chunks(c.hidden_size)) {
                for ((v, d), s) in row_h.iter_mut().zip(row_m).zip(&l.mlp_scale) {
                    *v += s * d;
                }
            }
        }
        cpu::rms_norm(&mut h.data, &self.norm, eps);
        cpu.linear(&h, &self.output_proj, Some(&self.output_proj_b))
    }
}

/// The codec behind the engine's `CodecDecoder` seam: whole utterances offline, and one
/// streaming state per slot.
pub struct CodecSlots {
    pub codec: Codec,
    streams: std::collections::HashMap<usize, CodecStream>,
}

impl CodecSlots {
    pub fn new(codec: Codec) -> CodecSlots {
        CodecSlots { codec, streams: std::collections::HashMap::new() }
    }
}

impl crate::engine::model::CodecDecoder for CodecSlots {
    fn sample_rate(&self) -> u32 {
        self.codec.sample_rate()
    }

    fn decode(&mut self, utterances: &[&[Vec<u32>]]) -> Result<Vec<Vec<f32>>> {
        utterances.iter().map(|u| self.codec.decode(u)).collect()
    }

    fn decode_stream(&mut self, items: &[(usize, &[Vec<u32>])]) -> Result<Vec<Vec<f32>>> {
        items
            .iter()
            .map(|&(slot, frames)| {
                let st = self.streams.entry(slot).or_insert_with(|| self.codec.new_stream());
                self.codec.forward_stream(st, frames)
            })
            .collect()
    }

    fn end_stream(&mut self, slot: usize) {
        self.streams.remove(&slot);
    }
}
