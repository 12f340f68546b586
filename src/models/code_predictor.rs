//! The code predictor ("sub-talker"): a small Qwen3 decoder that, per frame, turns the talker's
//! post-norm hidden state and c0 into the remaining codes c1..c{G-1}, one autoregressive pass
//! each, with a fresh cache every frame.
//!
//! Pass 0 sees two rows `[talker hidden, C(c0)]`; pass j ≥ 1 sees `embedding[j-1](c_j)`. Every
//! input goes through `small_to_mtp_projection` (absent when the widths agree, as on 0.6B), and
//! `lm_head[j]` predicts codebook j+1.

use crate::backend::{Cpu, Tensor, Weight};
use crate::error::Result;
use crate::models::qwen3::{KvCache, Qwen3Stack, SeqRows};
use crate::models::tts_config::TtsConfig;
use crate::models::weights::Checkpoint;

pub struct CodePredictor {
    projection: Option<(Weight, Vec<f32>)>,
    pub decoder: Qwen3Stack,
    /// `codec_embedding[j]` embeds codebook j+1 (talker width).
    embeddings: Vec<Weight>,
    /// `lm_head[j]` predicts codebook j+1.
    heads: Vec<Weight>,
}

impl CodePredictor {
    pub fn load(ck: &mut Checkpoint, cfg: &TtsConfig) -> Result<CodePredictor> {
        let t = &cfg.talker_config;
        let p = &t.code_predictor_config;
        let (h, ph) = (t.decoder.hidden_size, p.hidden_size);
        let pre = "talker.code_predictor.";
        let projection = if h != ph {
            Some((
                ck.take(&format!("{pre}small_to_mtp_projection.weight"), &[ph, h])?,
                ck.take_f32(&format!("{pre}small_to_mtp_projection.bias"), &[ph])?,
            ))
        } else {
            None
        };
        let groups = t.decoder.num_code_groups - 1;
        let embeddings = (0..groups)
            .map(|j| ck.take(&format!("{pre}model.codec_embedding.{j}.weight"), &[p.vocab_size, h]))
            .collect::<Result<Vec<_>>>()?;
        let heads = (0..groups)
            .map(|j| ck.take(&format!("{pre}lm_head.{j}.weight"), &[p.vocab_size, ph]))
            .collect::<Result<Vec<_>>>()?;
        Ok(CodePredictor {
            projection,
            decoder: Qwen3Stack::load(ck, &format!("{pre}model."), cfg.predictor_dims())?,
            embeddings,
            heads,
        })
    }

    /// Codes c1.. predicted per frame (the number of heads).
    pub fn groups(&self) -> usize {
        self.heads.len()
    }

    /// `embedding[j](ids)`: the talker-width embedding of codebook j+1.
    pub fn embed(&self, cpu: &Cpu, j: usize, ids: &[u32]) -> Result<Tensor> {
        cpu.embedding(&self.embeddings[j], ids)
    }

    fn project(&self, cpu: &Cpu, x: Tensor) -> Tensor {
        match &self.projection {
            Some((w, b)) => cpu.linear(&x, w, Some(b)),
            None => x,
        }
    }

    /// Predicts c1..c{G-1} for a batch of frames. `hidden` and `c0_embed` are `[B, H]`;
    /// `choose(b, j, logits)` picks codebook j+1 of sequence b from its raw logits. With
    /// `logits_out`, the raw logits of every pass are kept (parity checks).
    pub fn predict(
        &self,
        cpu: &Cpu,
        hidden: &Tensor,
        c0_embed: &Tensor,
        caches: &mut [KvCache],
        choose: &mut dyn FnMut(usize, usize, &mut [f32]) -> u32,
        mut logits_out: Option<&mut Vec<Tensor>>,
    ) -> Result<Vec<Vec<u32>>> {
        let b = hidden.rows;
        assert_eq!(caches.len(), b);
        let mut codes = vec![Vec::with_capacity(self.groups()); b];
        // Pass 0: two rows per sequence.
        let mut rows = Vec::with_capacity(2 * b);
        for i in 0..b {
            rows.push(hidden.row(i));
            rows.push(c0_embed.row(i));
        }
        let mut input = Some(self.project(cpu, Tensor::stack(&rows)));
        let mut per_seq = 2;
        for c in caches.iter_mut() {
            c.clear();
        }
        for j in 0..self.groups() {
            let mut seqs: Vec<SeqRows<'_>> = caches.iter_mut().map(|cache| SeqRows { cache, rows: per_seq }).collect();
            let x = input.take().expect("each pass has its input");
            let y = self.decoder.forward(cpu, x, &mut seqs, None);
            let last: Vec<&[f32]> = (0..b).map(|i| y.row(i * per_seq + per_seq - 1)).collect();
            let mut logits = cpu.linear(&Tensor::stack(&last), &self.heads[j], None);
            if let Some(out) = logits_out.as_deref_mut() {
                out.push(logits.clone());
            }
            let picked: Vec<u32> = (0..b).map(|i| choose(i, j, logits.row_mut(i))).collect();
            for (c, &id) in codes.iter_mut().zip(&picked) {
                c.push(id);
            }
            if j + 1 < self.groups() {
                input = Some(self.project(cpu, self.embed(cpu, j, &picked)?));
                per_seq = 1;
            }
        }
        Ok(codes)
    }
}
