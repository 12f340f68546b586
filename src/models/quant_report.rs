//! How closely a quantized model follows the same checkpoint unquantized: the numbers behind
//! the quality gates of `Quantization` (tests assert them on the fixtures; `voxkit bench quant`
//! prints them for any checkpoint).
//!
//! Both models are driven along the reference's own greedy run (teacher forcing), so every
//! position compares the two distributions over the same context: the top-1 agreement of the
//! logits and the KL divergence `KL(p_ref ‖ p_quant)` of their softmax.

use crate::backend::Tensor;
use crate::error::Result;
use crate::models::asr::Qwen3Asr;
use crate::models::qwen3::SeqRows;
use crate::models::tts::Qwen3Tts;
use crate::models::tts_prompt::build_prompt;
use crate::seams::request::TtsRequest;
use crate::seams::{AsrFeatures, AsrModel, AsrPrefill, TtsModel, TtsPrefill};

/// Agreement of two models' logits over a number of positions.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Agreement {
    pub positions: usize,
    /// Positions where both argmaxes are the same.
    pub top1: usize,
    /// Σ and max of `KL(p_ref ‖ p_quant)` in nats.
    pub kl_sum: f64,
    pub kl_max: f64,
    /// Σ of the reference's logit margin between its first and second choice, in nats (how
    /// close the calls are: random-weight models spread their logits thin, trained ones are
    /// peaked).
    pub gap_sum: f64,
}

impl Agreement {
    /// Adds the rows of two `[n, vocab]` logit tensors.
    pub fn add(&mut self, reference: &[f32], quantized: &[f32], vocab: usize) {
        assert_eq!(reference.len(), quantized.len(), "logits of different shapes");
        for (r, q) in reference.chunks_exact(vocab).zip(quantized.chunks_exact(vocab)) {
            self.positions += 1;
            if argmax(r) == argmax(q) {
                self.top1 += 1;
            }
            let (lp, lq) = (log_softmax(r), log_softmax(q));
            let kl = lp.iter().zip(&lq).map(|(p, q)| p.exp() * (p - q)).sum::<f64>().max(0.0);
            self.kl_sum += kl;
            self.kl_max = self.kl_max.max(kl);
            let (mut l1, mut l2) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
            for &l in &lp {
                if l > l1 {
                    (l1, l2) = (l, l1);
                } else if l > l2 {
                    l2 = l;
                }
            }
            self.gap_sum += l1 - l2;
        }
    }

    /// The share of positions whose argmaxes agree (1 with no positions).
    pub fn top1_rate(&self) -> f64 {
        if self.positions == 0 { 1.0 } else { self.top1 as f64 / self.positions as f64 }
    }

    pub fn kl_mean(&self) -> f64 {
        if self.positions == 0 { 0.0 } else { self.kl_sum / self.positions as f64 }
    }

    /// The reference's mean top-1 − top-2 logit margin.
    pub fn gap_mean(&self) -> f64 {
        if self.positions == 0 { 0.0 } else { self.gap_sum / self.positions as f64 }
    }
}

fn argmax(v: &[f32]) -> usize {
    // The first largest, as torch.argmax.
    v.iter().enumerate().fold(0, |b, (i, &x)| if x > v[b] { i } else { b })
}

/// `log softmax` of a row, in f64.
fn log_softmax(v: &[f32]) -> Vec<f64> {
    let m = v.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let lse = m + v.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
    v.iter().map(|&x| x as f64 - lse).collect()
}

/// A TTS model's agreement: the talker's c0 logits, one position per frame, and the code
/// predictor's logits, one per code after c0.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TtsAgreement {
    pub frames: usize,
    pub talker: Agreement,
    pub predictor: Agreement,
}

/// Runs `reference` greedily on `request` (cache slot 0; at most `frames` frames), then drives
/// it and each of `quantized` along those frames, each fed the reference's codes: the talker
/// frame by frame (with its own text track), the code predictor pass by pass from its own
/// talker's hidden state. One agreement per quantized model.
pub fn tts(
    reference: &mut Qwen3Tts,
    quantized: &[&Qwen3Tts],
    request: &TtsRequest,
    frames: usize,
) -> Result<Vec<TtsAgreement>> {
    let codes = greedy_frames(reference, request, frames)?;
    let (ref_talker, ref_pred) = forced_logits(reference, request, &codes)?;
    let host = |v: &[Tensor]| -> Vec<(Vec<f32>, usize)> { v.iter().map(|t| (t.to_host(), t.cols())).collect() };
    let (ref_talker, ref_pred) = (host(&ref_talker), host(&ref_pred));
    let mut out = Vec::with_capacity(quantized.len());
    for q in quantized {
        let (q_talker, q_pred) = forced_logits(q, request, &codes)?;
        let mut a = TtsAgreement { frames: codes.len(), ..Default::default() };
        for ((r, vocab), q) in ref_talker.iter().zip(&q_talker) {
            a.talker.add(r, &q.to_host(), *vocab);
        }
        for ((r, vocab), q) in ref_pred.iter().zip(&q_pred) {
            a.predictor.add(r, &q.to_host(), *vocab);
        }
        out.push(a);
    }
    Ok(out)
}

/// The reference's greedy frames for `request` (its sampling is replaced by argmax).
fn greedy_frames(model: &mut Qwen3Tts, request: &TtsRequest, frames: usize) -> Result<Vec<Vec<u32>>> {
    let mut req = request.clone();
    req.sampling.greedy = true;
    req.max_new_tokens = frames as u32;
    let cap = model.auto_max_new_tokens(&req).min(frames as u32).max(1);
    for r in model.prefill(&[TtsPrefill { slot: 0, request: &req, max_new_tokens: cap }]) {
        r?;
    }
    let mut out = Vec::new();
    loop {
        let step = model.step(&[0]);
        let step = match step {
            Ok(mut s) => s.remove(0),
            Err(e) => {
                model.release(0);
                return Err(e);
            }
        };
        out.extend(step.frame);
        if step.finish.is_some() {
            model.release(0);
            return Ok(out);
        }
    }
}

/// One model's talker logits (one `[1, vocab]` per frame: the logits that chose its c0) and
/// code-predictor logits (one per further code) along forced frames.
fn forced_logits(m: &Qwen3Tts, request: &TtsRequest, frames: &[Vec<u32>]) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
    let cx = m.compute();
    let prompt = build_prompt(&m.config, &m.prompt_input(request)?)?;
    let (x, trailing) = m.embed_prompt(&prompt, request.voice.as_deref())?;
    let pad = m.talker.text(&[m.config.tts_pad_token_id])?;
    let mut cache = m.talker.decoder.new_cache(1, 0)?;
    let mut predictor_cache = m.predictor.new_cache(1)?;
    let (mut talker, mut predictor) = (Vec::new(), Vec::new());
    // The prompt, then each frame's code embeddings plus the text track, as `step` builds them.
    let rows = x.rows();
    let hidden = m.talker.forward(x, &mut cache, &[SeqRows { slot: 0, rows }], None)?;
    let mut last = cx.slice_rows(&hidden, rows - 1, 1);
    for (t, frame) in frames.iter().enumerate() {
        talker.push(m.talker.logits(&last));
        let c0e = m.talker.codec(&frame[..1])?;
        let rest: Vec<Vec<u32>> = frame[1..].iter().map(|&c| vec![c]).collect();
        predictor.extend(m.predictor.forced_logits(&last, &c0e, &mut predictor_cache, &[0], &rest)?);
        let mut next = m.reference_rows(std::slice::from_ref(frame))?;
        cx.add(&mut next, &if t < trailing.rows() { cx.slice_rows(&trailing, t, 1) } else { pad.clone() });
        last = m.talker.forward(next, &mut cache, &[SeqRows { slot: 0, rows: 1 }], None)?;
    }
    Ok((talker, predictor))
}

/// ASR agreement of the text decoder's logits over the reference's greedy tokens for one clip
/// (features from `AsrModel::frontend`), both models teacher-forced (cache slot 0).
pub fn asr(
    reference: &mut Qwen3Asr,
    quantized: &mut Qwen3Asr,
    features: &AsrFeatures,
    tokens: usize,
) -> Result<Agreement> {
    let request = crate::seams::request::AsrRequest::default();
    let feats = AsrFeatures { passes: Vec::new(), ..features.clone() };
    // The reference's greedy tokens (the model's own decoding rules).
    for r in
        reference.prefill(&[AsrPrefill { slot: 0, features: &feats, request: &request, max_new_tokens: tokens as u32 }])
    {
        r?;
    }
    let mut ids = Vec::new();
    loop {
        let s = reference.step(&[0]);
        let s = match s {
            Ok(mut s) => s.remove(0),
            Err(e) => {
                reference.release(0);
                return Err(e);
            }
        };
        ids.extend(s.token);
        if s.finish.is_some() {
            reference.release(0);
            break;
        }
    }
    let (prefix, suffix) = reference.prompt_parts(None, None)?;
    let mut out = Agreement::default();
    let mut logits = Vec::new();
    for m in [reference, quantized] {
        let mut l = vec![m.prefill_passes(&[(&features.data, &prefix, &suffix)], &[0])?.to_host()];
        for &id in &ids {
            l.push(m.decode_tokens(&[id], &[0])?.to_host());
        }
        logits.push(l);
    }
    let vocab = logits[0][0].len();
    for (r, q) in logits[0].iter().zip(&logits[1]) {
        out.add(r, q, vocab);
    }
    Ok(out)
}
