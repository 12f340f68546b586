//! The Qwen3-TTS Base speaker encoder: an ECAPA-TDNN that turns a 24 kHz reference clip into the
//! x-vector the talker's prompt carries as the speaker row (spec §5.3; the official
//! `Qwen3TTSSpeakerEncoder` and `extract_speaker_embedding`).
//!
//! Pipeline (activations are `[time, channels]` rows here, PyTorch uses `[C, T]`):
//! log-mel front-end (`speaker_mel`, `[T, 128]`) → TDNN (k5) → SE-Res2Net blocks (dilated k3
//! Res2Net over `scale` channel groups, squeeze-excitation, residual) → multi-layer feature
//! aggregation (a TDNN over the SE-Res2Net blocks' outputs side by side) → attentive statistics
//! pooling (mean and std under per-channel softmax weights over time) → fc → `[1, enc_dim]`.
//!
//! Every `nn.Conv1d` of the official module uses `padding="same", padding_mode="reflect"`: left
//! `⌊d(k−1)/2⌋` rows, right the rest, mirrored at the clip's ends without repeating the edge row.
//! Here the padded input is a `gather_rows` of reflected row indices, then a valid `conv1d`; a
//! k = 1 conv needs none. A TDNN is such a conv followed by ReLU. Weights are widened to f32 at
//! load (the official path runs the encoder in the model's dtype; the parity fixture uses f32).

use crate::backend::{Compute, Conv1dWeight, Tensor};
use crate::error::{Error, ErrorKind, Result};
use crate::models::speaker_mel::{HOP, SpeakerMel};
use crate::models::tts_config::SpeakerEncoderConfig;
use crate::models::voice::SPEAKER_ENCODER_PREFIX;
use crate::models::weights::Checkpoint;

/// An `nn.Conv1d(padding="same", padding_mode="reflect")` (with its bias).
struct SameConv {
    conv: Conv1dWeight,
    /// Reflected rows before and after the input: `⌊d(k−1)/2⌋` and the rest of `d(k−1)`.
    left: usize,
    right: usize,
}

impl SameConv {
    fn load(ck: &mut Checkpoint, name: &str, cin: usize, cout: usize, k: usize, dilation: usize) -> Result<SameConv> {
        // Re-laid out here: the device gets the new layout, not the checkpoint's.
        let w = ck.take_host(&format!("{name}.weight"), &[cout, cin, k])?;
        let b = ck.take_host(&format!("{name}.bias"), &[cout])?;
        let conv = Conv1dWeight::new(&w, &b, dilation)?;
        ck.prepare(&conv.weights())?;
        let total = conv.context();
        Ok(SameConv { conv, left: total / 2, right: total - total / 2 })
    }

    /// Fewest input rows the reflect padding can mirror (PyTorch requires padding < length).
    fn min_rows(&self) -> usize {
        self.left.max(self.right) + 1
    }

    /// `x` `[T, in]` → `[T, out]`; `T ≥ min_rows()`.
    fn forward(&self, cx: &Compute, x: &Tensor) -> Tensor {
        if self.left + self.right == 0 {
            return cx.conv1d(x, &self.conv);
        }
        let padded = cx.gather_rows(x, &reflect_rows(x.rows(), self.left, self.right));
        cx.conv1d(&padded, &self.conv)
    }
}

/// The rows of a reflect-padded input of `rows` rows: `left` mirrored rows, the rows themselves,
/// `right` mirrored rows (the edge row is not repeated: `F.pad(mode="reflect")`).
fn reflect_rows(rows: usize, left: usize, right: usize) -> Vec<Option<usize>> {
    debug_assert!(left < rows && right < rows, "reflect padding of {left}/{right} over {rows} rows");
    let before = (1..=left).rev();
    let after = (1..=right).map(|i| rows - 1 - i);
    before.chain(0..rows).chain(after).map(Some).collect()
}

/// `TimeDelayNetBlock`: a same-padded conv, then ReLU.
struct Tdnn {
    conv: SameConv,
}

impl Tdnn {
    fn load(ck: &mut Checkpoint, name: &str, cin: usize, cout: usize, k: usize, dilation: usize) -> Result<Tdnn> {
        Ok(Tdnn { conv: SameConv::load(ck, &format!("{name}.conv"), cin, cout, k, dilation)? })
    }

    fn forward(&self, cx: &Compute, x: &Tensor) -> Tensor {
        let mut y = self.conv.forward(cx, x);
        cx.clamp(&mut y, 0.0, f32::INFINITY);
        y
    }
}

/// `SqueezeExcitationRes2NetBlock`: TDNN (k1) → Res2Net → TDNN (k1) → squeeze-excitation, plus
/// the block's input.
struct SeRes2NetBlock {
    tdnn1: Tdnn,
    /// `res2net_block.blocks`: one TDNN per channel group after the first (`scale − 1`).
    res2net: Vec<Tdnn>,
    tdnn2: Tdnn,
    se_conv1: SameConv,
    se_conv2: SameConv,
}

impl SeRes2NetBlock {
    #[allow(clippy::too_many_arguments)]
    fn load(
        ck: &mut Checkpoint,
        name: &str,
        cin: usize,
        c: usize,
        scale: usize,
        se: usize,
        k: usize,
        dilation: usize,
    ) -> Result<SeRes2NetBlock> {
        let group = c / scale;
        ck.expect_layers(&format!("{name}.res2net_block.blocks."), scale - 1, "enc_res2net_scale − 1")?;
        let res2net = (0..scale - 1)
            .map(|j| Tdnn::load(ck, &format!("{name}.res2net_block.blocks.{j}"), group, group, k, dilation))
            .collect::<Result<Vec<_>>>()?;
        Ok(SeRes2NetBlock {
            tdnn1: Tdnn::load(ck, &format!("{name}.tdnn1"), cin, c, 1, 1)?,
            res2net,
            tdnn2: Tdnn::load(ck, &format!("{name}.tdnn2"), c, c, 1, 1)?,
            se_conv1: SameConv::load(ck, &format!("{name}.se_block.conv1"), c, se, 1, 1)?,
            se_conv2: SameConv::load(ck, &format!("{name}.se_block.conv2"), se, c, 1, 1)?,
        })
    }

    fn min_rows(&self) -> usize {
        self.res2net.iter().map(|t| t.conv.min_rows()).max().unwrap_or(1)
    }

    fn forward(&self, cx: &Compute, x: &Tensor) -> Tensor {
        // 1. tdnn1 (k1).
        let y = self.tdnn1.forward(cx, x);
        // 2. Res2Net: `scale` column groups; z0 = y0, z1 = tdnn(y1), z_i = tdnn(y_i + z_{i−1}).
        let group = y.cols() / (self.res2net.len() + 1);
        let mut z = vec![cx.slice_cols(&y, 0, group)];
        for (j, tdnn) in self.res2net.iter().enumerate() {
            let mut part = cx.slice_cols(&y, (j + 1) * group, group);
            if j > 0 {
                cx.add(&mut part, &z[j]);
            }
            z.push(tdnn.forward(cx, &part));
        }
        let y = cx.concat_cols(&z.iter().collect::<Vec<_>>());
        // 3. tdnn2 (k1).
        let mut y = self.tdnn2.forward(cx, &y);
        // 4. Squeeze-excitation: the mean over time → conv1 → ReLU → conv2 → sigmoid, a gate per
        //    channel.
        let mut s = self.se_conv1.forward(cx, &cx.mean_rows(&y));
        cx.clamp(&mut s, 0.0, f32::INFINITY);
        let mut gate = self.se_conv2.forward(cx, &s);
        cx.sigmoid(&mut gate);
        cx.mul_row(&mut y, &gate);
        // 5. The residual.
        cx.add(&mut y, x);
        y
    }
}

/// `AttentiveStatisticsPooling`: per-channel attention over time from the frames and the
/// clip's global statistics, then the weighted mean and std.
struct Asp {
    tdnn: Tdnn,
    conv: SameConv,
}

pub struct SpeakerEncoder {
    cx: Compute,
    front: SpeakerMel,
    /// `blocks.0`: the input TDNN.
    tdnn0: Tdnn,
    /// `blocks.1..`: the SE-Res2Net blocks.
    blocks: Vec<SeRes2NetBlock>,
    mfa: Tdnn,
    asp: Asp,
    fc: SameConv,
    /// Fewest mel frames every reflect padding can take.
    min_frames: usize,
    enc_dim: usize,
}

impl SpeakerEncoder {
    /// Takes the `speaker_encoder.` tensors of a Base checkpoint, sized by `cfg` (checked first:
    /// `SpeakerEncoderConfig::check`; every tensor's shape by `Checkpoint::take`).
    pub fn load(cx: &Compute, ck: &mut Checkpoint, cfg: &SpeakerEncoderConfig) -> Result<SpeakerEncoder> {
        cfg.check().map_err(|e| {
            Error::new(ErrorKind::ModelLoad, format!("{}: speaker_encoder_config: {e}", ck.path().display()))
        })?;
        let p = SPEAKER_ENCODER_PREFIX;
        let (ch, ks, ds) = (&cfg.enc_channels, &cfg.enc_kernel_sizes, &cfg.enc_dilations);
        let n = ch.len();
        let (c_last, att) = (ch[n - 1], cfg.enc_attention_channels);
        ck.expect_layers(&format!("{p}blocks."), n - 1, "speaker_encoder_config.enc_channels (its length − 1)")?;
        // 1. The input TDNN, mel bins → enc_channels[0].
        let tdnn0 = Tdnn::load(ck, &format!("{p}blocks.0"), cfg.mel_dim, ch[0], ks[0], ds[0])?;
        // 2. The SE-Res2Net blocks.
        let blocks = (1..n - 1)
            .map(|i| {
                let name = format!("{p}blocks.{i}");
                SeRes2NetBlock::load(
                    ck,
                    &name,
                    ch[i - 1],
                    ch[i],
                    cfg.enc_res2net_scale,
                    cfg.enc_se_channels,
                    ks[i],
                    ds[i],
                )
            })
            .collect::<Result<Vec<_>>>()?;
        // 3. Aggregation, pooling, the final projection.
        let mfa = Tdnn::load(ck, &format!("{p}mfa"), c_last, c_last, ks[n - 1], ds[n - 1])?;
        let asp = Asp {
            tdnn: Tdnn::load(ck, &format!("{p}asp.tdnn"), 3 * c_last, att, 1, 1)?,
            conv: SameConv::load(ck, &format!("{p}asp.conv"), att, c_last, 1, 1)?,
        };
        let fc = SameConv::load(ck, &format!("{p}fc"), 2 * c_last, cfg.enc_dim, 1, 1)?;
        let min_frames = blocks
            .iter()
            .map(SeRes2NetBlock::min_rows)
            .chain([tdnn0.conv.min_rows(), mfa.conv.min_rows()])
            .max()
            .unwrap_or(1);
        Ok(SpeakerEncoder {
            cx: cx.clone(),
            front: SpeakerMel::new(cfg.mel_dim, cfg.sample_rate),
            tdnn0,
            blocks,
            mfa,
            asp,
            fc,
            min_frames,
            enc_dim: cfg.enc_dim,
        })
    }

    /// Width of the x-vector (`enc_dim`).
    pub fn dim(&self) -> usize {
        self.enc_dim
    }

    /// Fewest 24 kHz samples `embed` takes: enough mel frames for every reflect padding of the
    /// network (5 frames = 1280 samples with the released configs) and more than the front-end's
    /// own padding.
    pub fn min_samples(&self) -> usize {
        // The front-end gives ⌊L / hop⌋ frames.
        (self.min_frames * HOP).max(self.front.min_samples())
    }

    /// The front-end: log-mel features of a mono 24 kHz clip, `[frames, mel_dim]`, uploaded.
    pub fn mel(&self, audio: &[f32]) -> Result<Tensor> {
        let data = self.front.features(audio)?;
        let frames = data.len() / self.front.n_mels();
        Ok(self.cx.upload(&data, frames, self.front.n_mels()))
    }

    /// The network: mel `[T, mel_dim]` → x-vector `[1, enc_dim]`. With `taps`, pushes each block's
    /// output (`blocks.0`, then the SE-Res2Net blocks), the aggregation's output and the pooled
    /// statistics `[1, 2C]`. `T` must be at least the network's reflect-padding minimum.
    pub fn forward(&self, mel: &Tensor, mut taps: Option<&mut Vec<Tensor>>) -> Result<Tensor> {
        let cx = &self.cx;
        if mel.cols() != self.front.n_mels() {
            return Err(Error::invalid(format!(
                "speaker encoder: mel features of {} bins, expected {}",
                mel.cols(),
                self.front.n_mels()
            )));
        }
        if mel.rows() < self.min_frames {
            return Err(Error::invalid(format!(
                "speaker encoder: {} mel frames are too few for its reflect padding (at least {} frames, \
                 {} samples at 24 kHz)",
                mel.rows(),
                self.min_frames,
                self.min_samples()
            )));
        }
        let mut tap = |t: &Tensor| {
            if let Some(v) = taps.as_deref_mut() {
                v.push(t.clone());
            }
        };
        // 1. The input TDNN.
        let h0 = self.tdnn0.forward(cx, mel);
        tap(&h0);
        // 2. The SE-Res2Net blocks, each reading the previous one's output; all kept for the
        //    aggregation.
        let mut outs: Vec<Tensor> = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            crate::seams::stop::check()?;
            let h = block.forward(cx, outs.last().unwrap_or(&h0));
            tap(&h);
            outs.push(h);
        }
        // 3. Multi-layer feature aggregation: a TDNN over the blocks' outputs side by side.
        let m = self.mfa.forward(cx, &cx.concat_cols(&outs.iter().collect::<Vec<_>>()));
        tap(&m);
        // 4. Attentive statistics pooling. The clip's mean and std per channel (uniform weights),
        //    repeated on every frame next to the frame's own channels …
        let global = cx.weighted_stats(&m, None);
        let global = cx.gather_rows(&global, &vec![Some(0); m.rows()]);
        let context = cx.concat_cols(&[&m, &global]);
        // … give per-channel attention logits over time: tdnn (k1) → tanh → conv (k1) …
        let mut a = self.asp.tdnn.forward(cx, &context);
        cx.tanh(&mut a);
        let logits = self.asp.conv.forward(cx, &a);
        // … whose softmax over time weighs the mean and std: `[1, 2C]` = mean | std.
        let pooled = cx.weighted_stats(&m, Some(&logits));
        tap(&pooled);
        // 5. The final projection (a k1 conv on the one row): the x-vector.
        Ok(self.fc.forward(cx, &pooled))
    }

    /// The x-vector of a mono 24 kHz clip (at least `min_samples()`), on the host.
    pub fn embed(&self, audio: &[f32]) -> Result<Vec<f32>> {
        if audio.len() < self.min_samples() {
            return Err(Error::invalid(format!(
                "speaker encoder: a reference of {} samples is too short (at least {} samples at 24 kHz)",
                audio.len(),
                self.min_samples()
            )));
        }
        let mel = self.mel(audio)?;
        Ok(self.forward(&mel, None)?.into_host())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_rows_mirror_without_repeating_the_edge() {
        let r = |rows, l, r| reflect_rows(rows, l, r).into_iter().map(Option::unwrap).collect::<Vec<_>>();
        assert_eq!(r(5, 2, 2), [2, 1, 0, 1, 2, 3, 4, 3, 2]);
        assert_eq!(r(5, 4, 4), [4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0]);
        assert_eq!(r(3, 1, 1), [1, 0, 1, 2, 1]);
        assert_eq!(r(2, 0, 0), [0, 1]);
    }

    #[test]
    fn configs_whose_blocks_do_not_chain_are_refused() {
        assert!(SpeakerEncoderConfig::default().check().is_ok());
        let with = |channels: Vec<usize>| SpeakerEncoderConfig { enc_channels: channels, ..Default::default() };
        let e = with(vec![512, 512, 256, 512, 1536]).check().unwrap_err();
        assert!(e.contains("enc_channels[2]"), "{e}");
        let e = with(vec![512, 512, 512, 512, 1024]).check().unwrap_err();
        assert!(e.contains("enc_channels[4]") && e.contains("1536"), "{e}");
    }
}
