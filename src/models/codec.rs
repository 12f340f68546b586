//! The Qwen3-TTS-Tokenizer-12Hz decoder: codec frames (16 codes per 80 ms) → 24 kHz waveform.
//!
//! Pipeline (spec §5.1; activations are `[time, channels]` rows here, PyTorch uses `[C, T]`):
//! RVQ lookup and projections → causal conv (k=3) → sliding-window transformer with layer scales →
//! 2 × (transposed conv ×2 + ConvNeXt) → causal conv (k=7) → 4 DAC blocks (SnakeBeta, transposed
//! conv ×r, 3 residual units with dilations 1/3/9) → SnakeBeta → causal conv to 1 channel → clamp.
//! Offline decoding reproduces the official `chunked_decode(300, 25)` windowing; streaming runs
//! the same code with each stage's left context carried in a `CodecStream`.

use std::path::Path;

use crate::backend::{
    Compute, Conv1dWeight, ConvTranspose1dWeight, DepthwiseConv1dWeight, KvCache, Quantization, Tensor, Weight,
};
use crate::error::{Error, Result};
pub use crate::models::codec_config::{CHUNK_FRAMES, CodecConfig, CodecDecoderConfig, LEFT_CONTEXT_FRAMES};
use crate::models::codec_transformer::CodecTransformer;
use crate::models::weights::Checkpoint;

/// A causal 1-D convolution: the stream carries its last `context()` input rows (zeros at the
/// start, which is the offline zero padding).
struct CausalConv {
    conv: Conv1dWeight,
}

impl CausalConv {
    fn load(ck: &mut Checkpoint, name: &str, cin: usize, cout: usize, k: usize, dilation: usize) -> Result<CausalConv> {
        // Re-laid out here: the device gets the new layout, not the checkpoint's.
        let w = ck.take_host(&format!("{name}.weight"), &[cout, cin, k])?;
        let b = ck.take_host(&format!("{name}.bias"), &[cout])?;
        let conv = Conv1dWeight::new(&w, &b, dilation)?;
        ck.prepare(&conv.weights())?;
        Ok(CausalConv { conv })
    }

    fn context(&self) -> usize {
        self.conv.context()
    }

    /// `x` `[T, in]` → `[T, out]`, continuing from `history`.
    fn forward(&self, cx: &Compute, history: &mut Tensor, x: &Tensor) -> Tensor {
        let ctx = self.context();
        if ctx == 0 {
            return cx.conv1d(x, &self.conv);
        }
        let joined = cx.concat_rows(&[history, x]);
        *history = cx.slice_rows(&joined, joined.rows() - ctx, ctx);
        cx.conv1d(&joined, &self.conv)
    }

    /// `act(x)` `[T, in]` → `[T, out]`, continuing from `history`, which here holds the input
    /// rows before the activation: the joined rows are activated in place, so `x` is copied once
    /// (SnakeBeta is element-wise and maps the starting zeros to zeros, so the carried rows get
    /// the values they had the first time).
    fn forward_activated(&self, cx: &Compute, history: &mut Tensor, act: &SnakeBeta, x: &Tensor) -> Tensor {
        let ctx = self.context();
        let joined = cx.concat_rows(&[history, x]);
        *history = cx.slice_rows(&joined, joined.rows() - ctx, ctx);
        cx.conv1d(&act.apply(cx, joined), &self.conv)
    }
}

/// A transposed convolution with kernel 2r (or r) and stride r, trimmed on the right to r·T: the
/// rows that spill past r·T are carried to the next call (offline, the last of them is what the
/// official right-only trim drops).
struct CausalTransConv {
    conv: ConvTranspose1dWeight,
    bias: Weight,
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
        let w = ck.take_host(&format!("{name}.weight"), &[cin, cout, k])?;
        let conv = ConvTranspose1dWeight::new(&w, stride)?;
        ck.prepare(&conv.weights())?;
        Ok(CausalTransConv { conv, bias: ck.take_vector(&format!("{name}.bias"), cout)? })
    }

    fn forward(&self, cx: &Compute, tail: &mut Tensor, x: &Tensor) -> Tensor {
        let len = x.rows() * self.conv.stride();
        let overhang = self.conv.overhang();
        let mut y_all = cx.conv_transpose1d(x, &self.conv);
        cx.add_rows(&mut y_all, &(0..overhang).collect::<Vec<_>>(), tail);
        *tail = cx.slice_rows(&y_all, len, overhang);
        let mut y = cx.slice_rows(&y_all, 0, len);
        cx.add_bias(&mut y, &self.bias);
        y
    }
}

/// `x + sin²(x·e^α) / (e^β + 1e-9)`, per channel (α, β stored as logs).
struct SnakeBeta {
    alpha: Weight,
    inv_beta: Weight,
}

impl SnakeBeta {
    fn load(ck: &mut Checkpoint, name: &str, c: usize) -> Result<SnakeBeta> {
        let alpha = ck.take_f32(&format!("{name}.alpha"), &[c])?.iter().map(|a| a.exp()).collect();
        let inv_beta = ck.take_f32(&format!("{name}.beta"), &[c])?.iter().map(|b| 1.0 / (b.exp() + 1e-9)).collect();
        Ok(SnakeBeta { alpha: Weight::from_f32(vec![c], alpha), inv_beta: Weight::from_f32(vec![c], inv_beta) })
    }

    /// In place on `x` (no copy).
    fn apply(&self, cx: &Compute, mut x: Tensor) -> Tensor {
        cx.snake_beta(&mut x, &self.alpha, &self.inv_beta);
        x
    }

    fn channels(&self) -> usize {
        self.alpha.len()
    }
}

struct ResidualUnit {
    act1: SnakeBeta,
    conv1: CausalConv,
    act2: SnakeBeta,
    conv2: CausalConv,
}

impl ResidualUnit {
    fn forward(&self, cx: &Compute, history: &mut Tensor, x: &Tensor) -> Tensor {
        let h = self.conv1.forward_activated(cx, history, &self.act1, x);
        let mut y = self.conv2.forward(cx, &mut Tensor::default(), &self.act2.apply(cx, h));
        cx.add(&mut y, x);
        y
    }
}

struct DecoderBlock {
    snake: SnakeBeta,
    upsample: CausalTransConv,
    units: Vec<ResidualUnit>,
}

struct ConvNeXt {
    dwconv: DepthwiseConv1dWeight,
    norm_w: Weight,
    norm_b: Weight,
    /// The pointwise layers (`nn.Linear` in the checkpoint) as convolutions of one tap: the
    /// backends' convolution kernels take the time axis' rows directly.
    pwconv1: Conv1dWeight,
    pwconv2: Conv1dWeight,
    gamma: Weight,
}

impl ConvNeXt {
    fn load(ck: &mut Checkpoint, name: &str, c: usize) -> Result<ConvNeXt> {
        let dw = ck.take_host(&format!("{name}.dwconv.conv.weight"), &[c, 1, 7])?;
        let dwb = ck.take_host(&format!("{name}.dwconv.conv.bias"), &[c])?;
        let dwconv = DepthwiseConv1dWeight::new(&dw, &dwb)?;
        ck.prepare(&dwconv.weights())?;
        let pointwise = |ck: &mut Checkpoint, layer: &str, cin: usize, cout: usize| -> Result<Conv1dWeight> {
            let w = ck.take_host(&format!("{name}.{layer}.weight"), &[cout, cin])?.reshape(vec![cout, cin, 1])?;
            let b = ck.take_host(&format!("{name}.{layer}.bias"), &[cout])?;
            let conv = Conv1dWeight::new(&w, &b, 1)?;
            ck.prepare(&conv.weights())?;
            Ok(conv)
        };
        Ok(ConvNeXt {
            dwconv,
            norm_w: ck.take_vector(&format!("{name}.norm.weight"), c)?,
            norm_b: ck.take_vector(&format!("{name}.norm.bias"), c)?,
            pwconv1: pointwise(ck, "pwconv1", c, 4 * c)?,
            pwconv2: pointwise(ck, "pwconv2", 4 * c, c)?,
            gamma: ck.take_vector(&format!("{name}.gamma"), c)?,
        })
    }

    /// `history`: the last 6 input rows (zeros at the start) for the causal depthwise conv.
    fn forward(&self, cx: &Compute, history: &mut Tensor, x: &Tensor) -> Tensor {
        let ctx = self.dwconv.context();
        let joined = cx.concat_rows(&[history, x]);
        *history = cx.slice_rows(&joined, joined.rows() - ctx, ctx);
        let h = cx.depthwise_conv1d(&joined, &self.dwconv);
        let h = cx.layer_norm(&h, &self.norm_w, &self.norm_b, 1e-6);
        let mut a = cx.conv1d(&h, &self.pwconv1);
        cx.gelu_erf(&mut a);
        let b = cx.conv1d(&a, &self.pwconv2);
        let mut y = x.clone();
        cx.add_scaled(&mut y, &b, &self.gamma);
        y
    }
}

/// The state of one decoding stream: each stage's left context, the transformer's keys and
/// values, and the transposed convolutions' overhangs.
pub struct CodecStream {
    /// Frames decoded so far (the next frame's position).
    pub frames: usize,
    pre_conv: Tensor,
    kv: KvCache,
    upsample: Vec<(Tensor, Tensor)>,
    conv_in: Tensor,
    blocks: Vec<(Tensor, Vec<Tensor>)>,
    conv_out: Tensor,
}

/// The codec decoder, loaded from `speech_tokenizer/`.
pub struct Codec {
    pub config: CodecConfig,
    cx: Compute,
    /// Codebook tables `embedding_sum / clamp(cluster_usage, 1e-5)`, stacked: quantizer q's
    /// code c is row `q·codebook_size + c`.
    codebooks: Weight,
    out_first: Weight,
    out_rest: Weight,
    pre_conv: CausalConv,
    transformer: CodecTransformer,
    upsample: Vec<(CausalTransConv, ConvNeXt)>,
    conv_in: CausalConv,
    blocks: Vec<DecoderBlock>,
    final_snake: SnakeBeta,
    conv_out: CausalConv,
}

impl Codec {
    /// Loads `dir/config.json` and `dir/model.safetensors` (the decoder part; the encoder is only
    /// needed for voice cloning).
    pub fn load(dir: &Path, cx: impl Into<Compute>) -> Result<Codec> {
        let cx = cx.into();
        let config = CodecConfig::load(dir)?;
        let c = &config.decoder_config;
        let mut ck = Checkpoint::open(&dir.join("model.safetensors"))?.resident_on(&cx);
        // 1. RVQ: the codebooks and the two output projections.
        let vq = c.codebook_dim / 2;
        let mut codebooks = Vec::new();
        for q in 0..c.num_quantizers {
            let prefix = if q == 0 {
                "decoder.quantizer.rvq_first.vq.layers.0._codebook".to_string()
            } else {
                format!("decoder.quantizer.rvq_rest.vq.layers.{}._codebook", q - 1)
            };
            let sum = ck.take_f32(&format!("{prefix}.embedding_sum"), &[c.codebook_size, vq])?;
            let usage = ck.take_f32(&format!("{prefix}.cluster_usage"), &[c.codebook_size])?;
            codebooks.extend(sum.chunks(vq).zip(&usage).flat_map(|(row, u)| row.iter().map(move |v| v / u.max(1e-5))));
        }
        let codebooks = Weight::from_f32(vec![c.num_quantizers * c.codebook_size, vq], codebooks);
        let proj = |ck: &mut Checkpoint, name: &str| -> Result<Weight> {
            ck.take(name, &[c.codebook_dim, vq, 1])?.reshape(vec![c.codebook_dim, vq])
        };
        let out_first = proj(&mut ck, "decoder.quantizer.rvq_first.output_proj.weight")?;
        let out_rest = proj(&mut ck, "decoder.quantizer.rvq_rest.output_proj.weight")?;
        // 2. Pre-conv and transformer.
        let pre_conv = CausalConv::load(&mut ck, "decoder.pre_conv.conv", c.codebook_dim, c.latent_dim, 3, 1)?;
        let transformer = CodecTransformer::load(&cx, &mut ck, &config)?;
        // 3. Upsampling stages and the DAC decoder.
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
            transformer,
            upsample,
            conv_in,
            blocks,
            final_snake: SnakeBeta::load(&mut ck, &format!("decoder.decoder.{}", n + 1), out_dim)?,
            conv_out: CausalConv::load(&mut ck, &format!("decoder.decoder.{}.conv", n + 2), out_dim, 1, 7, 1)?,
            config,
            cx,
        })
    }

    /// Applies a quantization recipe (`Quantization`; the caller's choice at load). Every recipe
    /// but `None` stores the decoder's convolutions as bf16 — inputs rounded to bf16, sums in f32 —
    /// and its transformer's projections as bf16 (f32 inputs: half the bytes a streamed frame
    /// reads) where the backend multiplies bf16 well above its f32 rate (`fast_bf16_products`: the
    /// CPU with AMX); elsewhere the codec stays as stored. The quality this
    /// keeps: the waveform's SNR against the f32 decoder, `tests/quant.rs` and BENCHMARKS.md.
    pub fn quantize(&mut self, q: Quantization) -> Result<()> {
        if q != Quantization::None && self.cx.fast_bf16_products() {
            self.use_bf16_convs()?;
            self.transformer.use_bf16_weights()?;
        }
        Ok(())
    }

    /// Stores every convolution of the decoder but the last (the one to the waveform, one output
    /// channel) as bf16 (`Conv1dWeight::to_bf16`), whatever the backend's speed.
    pub fn use_bf16_convs(&mut self) -> Result<()> {
        let cx = self.cx.clone();
        let conv = |c: &mut Conv1dWeight| -> Result<()> {
            *c = c.to_bf16();
            c.weights().into_iter().try_for_each(|w| cx.prepare(w))
        };
        let trans = |c: &mut CausalTransConv| -> Result<()> {
            c.conv = c.conv.to_bf16();
            c.conv.weights().into_iter().try_for_each(|w| cx.prepare(w))
        };
        conv(&mut self.pre_conv.conv)?;
        for (up, next) in &mut self.upsample {
            trans(up)?;
            conv(&mut next.pwconv1)?;
            conv(&mut next.pwconv2)?;
        }
        conv(&mut self.conv_in.conv)?;
        for block in &mut self.blocks {
            trans(&mut block.upsample)?;
            for unit in &mut block.units {
                conv(&mut unit.conv1.conv)?;
                conv(&mut unit.conv2.conv)?;
            }
        }
        Ok(())
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
        self.forward_stream(&mut self.new_stream()?, frames)
    }

    /// A fresh streaming state (zeros: the offline zero padding).
    pub fn new_stream(&self) -> Result<CodecStream> {
        let c = &self.config.decoder_config;
        let zeros = |rows: usize, cols: usize| self.cx.zeros(rows, cols);
        Ok(CodecStream {
            frames: 0,
            pre_conv: zeros(self.pre_conv.context(), c.codebook_dim),
            kv: self.transformer.new_cache()?,
            upsample: self
                .upsample
                .iter()
                .map(|(up, nx)| (zeros(up.conv.overhang(), c.latent_dim), zeros(nx.dwconv.context(), c.latent_dim)))
                .collect(),
            conv_in: zeros(self.conv_in.context(), c.latent_dim),
            blocks: self
                .blocks
                .iter()
                .map(|b| {
                    let cout = b.upsample.conv.out_channels();
                    (
                        zeros(b.upsample.conv.overhang(), cout),
                        b.units.iter().map(|u| zeros(u.conv1.context(), cout)).collect(),
                    )
                })
                .collect(),
            conv_out: zeros(self.conv_out.context(), self.final_snake.channels()),
        })
    }

    /// The codebook rows of each frame: quantizer 0's alone, and the rest's (offset into the
    /// stacked table), after checking every frame and code.
    fn code_rows(&self, frames: &[Vec<u32>]) -> Result<(Vec<u32>, Vec<u32>)> {
        let c = &self.config.decoder_config;
        let mut first = Vec::with_capacity(frames.len());
        let mut rest = Vec::with_capacity(frames.len() * (c.num_quantizers - 1));
        for (i, f) in frames.iter().enumerate() {
            if f.len() != c.num_quantizers {
                return Err(Error::invalid(format!(
                    "frame {i} has {} codes; the codec expects {}",
                    f.len(),
                    c.num_quantizers
                )));
            }
            for (q, &code) in f.iter().enumerate() {
                if code as usize >= c.codebook_size {
                    return Err(Error::invalid(format!(
                        "code {code} in frame {i} is outside the codebook of {}",
                        c.codebook_size
                    )));
                }
                let row = (q * c.codebook_size) as u32 + code;
                if q == 0 { first.push(row) } else { rest.push(row) }
            }
        }
        Ok((first, rest))
    }

    /// Frames back that the upsampling and DAC stages' state can depend on: each stage carries
    /// `c` rows of left context (or transposed-conv overhang) at its own rate of `r` rows per
    /// frame, so the stages together reach `Σ c / r` frames back (plus two for rounding). The
    /// RVQ, pre-conv and transformer are not counted: `skip_stream` runs them over every frame.
    pub fn tail_frames(&self) -> usize {
        let c = &self.config.decoder_config;
        let mut rate = 1usize;
        let mut back = 0.0f64;
        for (ratio, (up, nx)) in c.upsampling_ratios.iter().zip(&self.upsample) {
            rate *= ratio;
            back += (up.conv.overhang() + nx.dwconv.context()) as f64 / rate as f64;
        }
        back += self.conv_in.context() as f64 / rate as f64;
        for (r, b) in c.upsample_rates.iter().zip(&self.blocks) {
            rate *= r;
            let units: usize = b.units.iter().map(|u| u.conv1.context() + u.conv2.context()).sum();
            back += (b.upsample.conv.overhang() + units) as f64 / rate as f64;
        }
        back += self.conv_out.context() as f64 / rate as f64;
        back.ceil() as usize + 2
    }

    /// Advances a stream over frames whose audio is not wanted (an in-context voice's
    /// reference), ending in the state decoding them would leave: the RVQ, pre-conv and
    /// transformer run over all of them (the transformer's keys and values reach back over its
    /// window), the upsampling and DAC stages only over the last `tail_frames()` — their state
    /// depends on no earlier frame. A fraction of decoding them: the DAC is most of the work.
    pub fn skip_stream(&self, st: &mut CodecStream, frames: &[Vec<u32>]) -> Result<()> {
        let tail = self.tail_frames().min(frames.len());
        let (head, last) = frames.split_at(frames.len() - tail);
        for piece in head.chunks(CHUNK_FRAMES) {
            crate::seams::stop::check()?;
            // `forward_stream` without the stages whose state the tail rebuilds.
            self.front(st, piece)?;
            st.frames += piece.len();
        }
        self.forward_stream(st, last).map(|_| ())
    }

    /// Decodes `frames` as the continuation of `context` (an in-context voice's reference and
    /// the codes generated after it): the official decodes both together and cuts the
    /// context's samples off. Up to one offline window (300 frames) together that is one pass,
    /// which a stream skipped over the context (`skip_stream`) and then decoding `frames`
    /// reproduces; longer ones go through `decode`'s windows whole, as the official does.
    pub fn decode_after(&self, context: &[Vec<u32>], frames: &[Vec<u32>]) -> Result<Vec<f32>> {
        if context.is_empty() {
            return self.decode(frames);
        }
        if context.len() + frames.len() <= CHUNK_FRAMES {
            let mut st = self.new_stream()?;
            self.skip_stream(&mut st, context)?;
            return self.forward_stream(&mut st, frames);
        }
        let joined: Vec<Vec<u32>> = context.iter().chain(frames).cloned().collect();
        let mut audio = self.decode(&joined)?;
        audio.drain(..context.len() * self.samples_per_frame());
        Ok(audio)
    }

    /// Steps 1 and 2 of a stream's frames: the RVQ (the first quantizer and the sum of the rest,
    /// each through its own projection), the pre-conv and the sliding-window transformer. The
    /// transformer's cache room is reserved first: a failure leaves the stream untouched.
    fn front(&self, st: &mut CodecStream, frames: &[Vec<u32>]) -> Result<Tensor> {
        let cx = &self.cx;
        let q = self.config.decoder_config.num_quantizers;
        let (first, rest) = self.code_rows(frames)?;
        st.kv.reserve(0, frames.len())?;
        let first = cx.embedding(&self.codebooks, &first)?;
        let rest = cx.embedding_sum(&self.codebooks, &rest, q - 1)?;
        let mut x = cx.linear(&first, &self.out_first, None);
        cx.add(&mut x, &cx.linear(&rest, &self.out_rest, None));
        let x = self.pre_conv.forward(cx, &mut st.pre_conv, &x);
        self.transformer.forward(&x, &mut st.kv)
    }

    /// Decodes the next frames of a stream: the samples equal those of decoding the whole stream
    /// at once with `forward` (every stage is causal; the state carries each stage's context).
    pub fn forward_stream(&self, st: &mut CodecStream, frames: &[Vec<u32>]) -> Result<Vec<f32>> {
        crate::seams::stop::check()?;
        let cx = &self.cx;
        if frames.is_empty() {
            return Ok(Vec::new());
        }
        // 1–2. RVQ, pre-conv and transformer.
        let mut h = self.front(st, frames)?;
        // 3. Upsampling: transposed conv + ConvNeXt per stage.
        for ((up, block), (tail, hist)) in self.upsample.iter().zip(st.upsample.iter_mut()) {
            h = block.forward(cx, hist, &up.forward(cx, tail, &h));
        }
        // 4. The DAC decoder: conv in, blocks of SnakeBeta + transposed conv + residual units.
        let mut w = self.conv_in.forward(cx, &mut st.conv_in, &h);
        for (b, (tail, hists)) in self.blocks.iter().zip(st.blocks.iter_mut()) {
            crate::seams::stop::check()?;
            w = b.upsample.forward(cx, tail, &b.snake.apply(cx, w));
            for (u, hist) in b.units.iter().zip(hists.iter_mut()) {
                w = u.forward(cx, hist, &w);
            }
        }
        // 5. Final SnakeBeta, conv to one channel, clamp to [-1, 1].
        let mut w = self.conv_out.forward(cx, &mut st.conv_out, &self.final_snake.apply(cx, w));
        cx.clamp(&mut w, -1.0, 1.0);
        st.frames += frames.len();
        Ok(w.to_host())
    }
}
