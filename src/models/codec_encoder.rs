//! The Qwen3-TTS-Tokenizer-12Hz encoder: 24 kHz mono audio → codec frames (16 codes per 80 ms),
//! the codes of a voice-clone reference. The official encoder is transformers' `MimiModel`
//! (`Qwen3TTSTokenizerV2Model.encode`, spec §5.2).
//!
//! Pipeline (activations are `[time, channels]` rows here, PyTorch uses `[C, T]`):
//! SEANet (causal conv, then per ratio: residual blocks, ELU, strided conv; ELU, last conv) →
//! causal transformer with layer scales → downsampling conv (stride 2, replicate padding) →
//! split residual vector quantizer (semantic and acoustic, each from the same input) → the first
//! `encoder_valid_num_quantizers` codes of the first `ceil(samples / encode_downsample_rate)`
//! frames.
//!
//! Every convolution is `MimiConv1d` with `use_causal_conv`: `(k−1)·d + 1 − stride` rows of left
//! padding and, on the right, what makes the padded length a whole number of strides, so an input
//! of `L` rows gives `ceil(L / stride)` rows.

use std::path::Path;

use crate::backend::{Compute, Conv1dWeight, Ids, Tensor, Weight};
use crate::error::{Error, ErrorKind, Result};
use crate::models::codec_config::{CODEBOOK_USAGE_EPS, CodecEncoderConfig, DOWNSAMPLE_STRIDE, MimiConfig};
use crate::models::codec_encoder_transformer::EncoderTransformer;
use crate::models::weights::Checkpoint;

/// How a `MimiConv1d` pads its input.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pad {
    /// `pad_mode = "constant"`: zero rows.
    Zeros,
    /// `pad_mode = "replicate"`: copies of the first row on the left, of the last on the right.
    Replicate,
}

/// `MimiConv1d`, causal.
struct MimiConv {
    conv: Conv1dWeight,
    /// Taps of the kernel (`k`; the im2col width is `k · in`).
    taps: usize,
    /// Rows of left padding: `padding_total = (k−1)·d + 1 − stride`.
    left: usize,
    pad: Pad,
}

impl MimiConv {
    /// `{name}.weight` `[out, in, k]` and, with `bias`, `{name}.bias` (else a zero bias).
    fn load(
        ck: &mut Checkpoint,
        name: &str,
        (cin, cout, k): (usize, usize, usize),
        stride: usize,
        dilation: usize,
        bias: bool,
        pad: Pad,
    ) -> Result<MimiConv> {
        let reach = (k - 1) * dilation + 1;
        if reach < stride {
            return Err(Error::new(
                ErrorKind::ModelLoad,
                format!("{name}: a kernel reach of {reach} is shorter than its stride {stride}"),
            ));
        }
        // Re-laid out here: the device gets the new layout, not the checkpoint's.
        let w = ck.take_host(&format!("{name}.weight"), &[cout, cin, k])?;
        let b = if bias {
            ck.take_host(&format!("{name}.bias"), &[cout])?
        } else {
            Weight::from_f32(vec![cout], vec![0.0; cout])
        };
        let conv = Conv1dWeight::strided(&w, &b, dilation, stride)?;
        ck.prepare(&conv.weights())?;
        Ok(MimiConv { conv, taps: k, left: reach - stride, pad })
    }

    /// `[L, in]` → `[ceil(L / stride), out]`: the input padded on the left with `left` rows and on
    /// the right to `(ceil(L / stride) − 1)·stride + reach` rows, zeros or copies of the edge rows.
    /// Long inputs go through in pieces of output rows, each convolving at most `budget` im2col
    /// values (the padded rows a piece reads gathered from `x`).
    fn forward(&self, cx: &Compute, x: &Tensor, budget: usize) -> Tensor {
        let (l, stride) = (x.rows(), self.conv.stride());
        let out = l.div_ceil(stride);
        let per_piece = (budget / (self.taps * self.conv.in_channels())).max(1);
        let right = out * stride - l;
        if self.left == 0 && right == 0 && (out <= per_piece || self.taps == 1) {
            return cx.conv1d(x, &self.conv);
        }
        let (first, last) = match self.pad {
            Pad::Zeros => (None, None),
            Pad::Replicate => (Some(0), Some(l - 1)),
        };
        // Padded row p is input row p − left, or padding.
        let source = |p: usize| match p.checked_sub(self.left) {
            None => first,
            Some(i) if i < l => Some(i),
            Some(_) => last,
        };
        let reach = self.conv.context() + 1;
        let mut pieces: Vec<Tensor> = (0..out)
            .step_by(per_piece)
            .map(|a| {
                let b = (a + per_piece).min(out);
                let rows: Vec<Option<usize>> = (a * stride..(b - 1) * stride + reach).map(source).collect();
                cx.conv1d(&cx.gather_rows(x, &rows), &self.conv)
            })
            .collect();
        if pieces.len() == 1 {
            pieces.pop().expect("one piece")
        } else {
            cx.concat_rows(&pieces.iter().collect::<Vec<_>>())
        }
    }
}

/// `MimiResnetBlock`: `x + conv2(ELU(conv1(ELU(x))))` (identity shortcut).
struct ResBlock {
    conv1: MimiConv,
    conv2: MimiConv,
}

impl ResBlock {
    fn forward(&self, cx: &Compute, x: &Tensor, budget: usize) -> Tensor {
        let mut a = x.clone();
        cx.elu(&mut a);
        let mut a = self.conv1.forward(cx, &a, budget);
        cx.elu(&mut a);
        let mut y = self.conv2.forward(cx, &a, budget);
        cx.add(&mut y, x);
        y
    }
}

/// One SEANet stage: residual blocks, ELU, strided conv (channels ×2).
struct Stage {
    blocks: Vec<ResBlock>,
    down: MimiConv,
}

/// One level of a residual vector quantizer: the codebook `E` and what the nearest-entry search
/// reads.
struct Level {
    /// `E = embed_sum / clamp(cluster_usage, 1e-5)`, `[codebook_size, dim]`.
    embed: Weight,
    /// `−‖E_j‖²` per entry.
    neg_norms: Weight,
}

/// `MimiResidualVectorQuantizer` (the levels used).
struct Rvq {
    /// The 1×1 input projection `[dim, hidden]` (none when the widths agree).
    input_proj: Option<Weight>,
    levels: Vec<Level>,
}

impl Rvq {
    fn load(ck: &mut Checkpoint, prefix: &str, c: &MimiConfig, held: usize, used: usize) -> Result<Rvq> {
        let (size, dim) = (c.codebook_size, c.codebook_dim());
        ck.expect_layers(&format!("{prefix}.layers."), held, "encoder_config.num_quantizers")?;
        let input_proj = if c.vector_quantization_hidden_dimension != c.hidden_size {
            let w = ck.take(&format!("{prefix}.input_proj.weight"), &[dim, c.hidden_size, 1])?;
            Some(w.reshape(vec![dim, c.hidden_size])?)
        } else {
            None
        };
        let mut levels = Vec::with_capacity(used);
        for q in 0..used {
            let p = format!("{prefix}.layers.{q}.codebook");
            let sum = ck.take_f32(&format!("{p}.embed_sum"), &[size, dim])?;
            let usage = ck.take_f32(&format!("{p}.cluster_usage"), &[size])?;
            let embed: Vec<f32> = sum
                .chunks(dim)
                .zip(&usage)
                .flat_map(|(row, u)| row.iter().map(move |v| v / u.max(CODEBOOK_USAGE_EPS)))
                .collect();
            let neg_norms =
                embed.chunks(dim).map(|e| -(e.iter().map(|&v| v as f64 * v as f64).sum::<f64>() as f32)).collect();
            let level = Level {
                embed: Weight::from_f32(vec![size, dim], embed),
                neg_norms: Weight::from_f32(vec![size], neg_norms),
            };
            ck.prepare(&[&level.embed, &level.neg_norms])?;
            levels.push(level);
        }
        Ok(Rvq { input_proj, levels })
    }

    /// Codes of each level for the rows of `x` `[T, hidden]`, left on the device.
    fn encode(&self, cx: &Compute, x: &Tensor, minus_one: &Weight) -> Result<Vec<Ids>> {
        if self.levels.is_empty() {
            return Ok(Vec::new());
        }
        let mut r = match &self.input_proj {
            Some(w) => cx.linear(x, w, None),
            None => x.clone(),
        };
        let mut codes = Vec::with_capacity(self.levels.len());
        for (i, level) in self.levels.iter().enumerate() {
            // The nearest entry: argmin_j ‖r − E_j‖² = argmax_j (2r·E_j − ‖E_j‖²) (‖r‖² is the
            // same for every j; 2r = r + r exactly; ‖E_j‖² summed in f64 at load). A tie goes to
            // the lower index, as torch's `cdist(...).argmin`; entries closer than the rounding of
            // the distances (measure zero on real audio) could be chosen differently.
            let mut r2 = r.clone();
            cx.add(&mut r2, &r);
            let ids = cx.argmax_ids(&cx.linear(&r2, &level.embed, Some(&level.neg_norms)));
            // The residual for the next level: r − E[c].
            if i + 1 < self.levels.len() {
                cx.add_scaled(&mut r, &cx.embedding_ids(&level.embed, &ids)?, minus_one);
            }
            codes.push(ids);
        }
        Ok(codes)
    }
}

/// The codec encoder, loaded from `speech_tokenizer/`.
pub struct CodecEncoder {
    pub config: CodecEncoderConfig,
    cx: Compute,
    first: MimiConv,
    stages: Vec<Stage>,
    last: MimiConv,
    transformer: EncoderTransformer,
    downsample: MimiConv,
    semantic: Rvq,
    acoustic: Rvq,
    /// `−1` per codebook channel (the residual subtraction as `add_scaled`).
    minus_one: Weight,
    /// Most im2col values one convolution call reads.
    conv_budget: usize,
}

/// The default `CodecEncoder::with_conv_budget`: 8 Mi values (32 MiB) a convolution call, so a
/// long reference is convolved in pieces instead of in one `[samples, k·channels]` matrix (the
/// released codec's first residual block alone would read 192 values a sample).
pub const CONV_BUDGET: usize = 8 << 20;

impl CodecEncoder {
    /// Loads `dir/config.json` (the encoder part) and the `encoder.*` tensors of
    /// `dir/model.safetensors`.
    pub fn load(dir: &Path, cx: impl Into<Compute>) -> Result<CodecEncoder> {
        let cx = cx.into();
        let config = CodecEncoderConfig::load(dir)?;
        let c = &config.encoder_config;
        let mut ck = Checkpoint::open(&dir.join("model.safetensors"))?.resident_on(&cx);
        // 1. SEANet: numbered as `MimiEncoder.layers` (ELUs hold no tensors but take a number).
        let ratios = c.ratios();
        let seanet = "encoder.encoder.layers";
        let modules = 1 + ratios.len() * (c.num_residual_layers + 2) + 2;
        ck.expect_layers(&format!("{seanet}."), modules, "encoder_config (SEANet layers)")?;
        let conv = |ck: &mut Checkpoint, i: usize, shape, stride, dilation| {
            MimiConv::load(ck, &format!("{seanet}.{i}.conv"), shape, stride, dilation, true, Pad::Zeros)
        };
        let first = conv(&mut ck, 0, (c.audio_channels, c.num_filters, c.kernel_size), 1, 1)?;
        let mut at = 1;
        let mut stages = Vec::with_capacity(ratios.len());
        let mut dim = c.num_filters;
        for &r in &ratios {
            let hidden = dim / c.compress;
            let mut blocks = Vec::with_capacity(c.num_residual_layers);
            for j in 0..c.num_residual_layers {
                let d = c.dilation_growth_rate.pow(j as u32);
                let b = |k: usize| format!("{seanet}.{at}.block.{k}.conv");
                blocks.push(ResBlock {
                    conv1: MimiConv::load(
                        &mut ck,
                        &b(1),
                        (dim, hidden, c.residual_kernel_size),
                        1,
                        d,
                        true,
                        Pad::Zeros,
                    )?,
                    conv2: MimiConv::load(&mut ck, &b(3), (hidden, dim, 1), 1, 1, true, Pad::Zeros)?,
                });
                at += 1;
            }
            let down = conv(&mut ck, at + 1, (dim, 2 * dim, 2 * r), r, 1)?;
            stages.push(Stage { blocks, down });
            at += 2;
            dim *= 2;
        }
        let last = conv(&mut ck, at + 1, (dim, c.hidden_size, c.last_kernel_size), 1, 1)?;
        // 2. Transformer.
        let transformer = EncoderTransformer::load(&cx, &mut ck, c, "encoder.encoder_transformer")?;
        // 3. Downsampling conv: no bias, replicate padding.
        let h = c.hidden_size;
        let k = c.downsample_kernel();
        let downsample =
            MimiConv::load(&mut ck, "encoder.downsample.conv", (h, h, k), DOWNSAMPLE_STRIDE, 1, false, Pad::Replicate)?;
        // 4. Quantizers: the levels the kept codes need (semantic first, then acoustic).
        let valid = config.encoder_valid_num_quantizers;
        let n_sem = c.num_semantic_quantizers;
        let q = "encoder.quantizer";
        let semantic =
            Rvq::load(&mut ck, &format!("{q}.semantic_residual_vector_quantizer"), c, n_sem, valid.min(n_sem))?;
        let acoustic = Rvq::load(
            &mut ck,
            &format!("{q}.acoustic_residual_vector_quantizer"),
            c,
            c.num_quantizers - n_sem,
            valid.saturating_sub(n_sem),
        )?;
        let minus_one = Weight::from_f32(vec![c.codebook_dim()], vec![-1.0; c.codebook_dim()]);
        ck.prepare(&[&minus_one])?;
        Ok(CodecEncoder {
            first,
            stages,
            last,
            transformer,
            downsample,
            semantic,
            acoustic,
            minus_one,
            conv_budget: CONV_BUDGET,
            config,
            cx,
        })
    }

    /// Sets the most im2col values one convolution call reads (at least one output row a call):
    /// memory against the number of calls. The result does not depend on it beyond the rounding
    /// of the products.
    pub fn with_conv_budget(mut self, values: usize) -> CodecEncoder {
        self.conv_budget = values;
        self
    }

    pub fn sample_rate(&self) -> u32 {
        self.config.input_sample_rate
    }

    /// Audio samples per code frame (`encode_downsample_rate`).
    pub fn samples_per_frame(&self) -> usize {
        self.config.encode_downsample_rate
    }

    /// Codes of a mono clip at `sample_rate()`: `ceil(samples / samples_per_frame())` frames of
    /// `encoder_valid_num_quantizers` codes (as the official `encode` returns them).
    pub fn encode(&self, audio: &[f32]) -> Result<Vec<Vec<u32>>> {
        self.encode_with_taps(audio, &mut Vec::new())
    }

    /// `encode`, also handing out the stages' outputs, in order: the SEANet's `[T25, hidden]`, the
    /// transformer's `[T25, hidden]` and the downsampling conv's `[T12, hidden]` (what the
    /// quantizers read). For tests.
    pub fn encode_with_taps(&self, audio: &[f32], taps: &mut Vec<Tensor>) -> Result<Vec<Vec<u32>>> {
        if audio.is_empty() {
            return Err(Error::invalid("the codec encoder got no audio samples"));
        }
        if let Some(i) = audio.iter().position(|s| !s.is_finite()) {
            return Err(Error::invalid(format!("audio sample {i} is not finite")));
        }
        crate::seams::stop::check()?;
        let cx = &self.cx;
        // 1. SEANet: first conv; per stage residual blocks, ELU, strided conv; ELU, last conv.
        let budget = self.conv_budget;
        let mut h = self.first.forward(cx, &cx.upload(audio, audio.len(), 1), budget);
        for stage in &self.stages {
            crate::seams::stop::check()?;
            for block in &stage.blocks {
                h = block.forward(cx, &h, budget);
            }
            cx.elu(&mut h);
            h = stage.down.forward(cx, &h, budget);
        }
        cx.elu(&mut h);
        let h = self.last.forward(cx, &h, budget);
        // 2. The causal transformer.
        let t = self.transformer.forward(&h)?;
        // 3. Downsampling to the code frame rate.
        let x = self.downsample.forward(cx, &t, budget);
        // 4. Split RVQ: the semantic and the acoustic quantizer each start from `x`.
        let mut ids = self.semantic.encode(cx, &x, &self.minus_one)?;
        ids.extend(self.acoustic.encode(cx, &x, &self.minus_one)?);
        let levels = cx.read_ids(&ids.iter().collect::<Vec<_>>());
        // 5. `[frames][quantizers]`, trimmed to the clip's frames.
        let frames = audio.len().div_ceil(self.samples_per_frame()).min(x.rows());
        taps.extend([h, t, x]);
        Ok((0..frames).map(|f| levels.iter().map(|l| l[f]).collect()).collect())
    }
}
