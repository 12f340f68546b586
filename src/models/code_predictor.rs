//! The code predictor ("sub-talker"): a small Qwen3 decoder that, per frame, turns the talker's
//! post-norm hidden state and c0 into the remaining codes c1..c{G-1}, one autoregressive pass
//! each, with its cache slot emptied every frame.
//!
//! Pass 0 sees two rows `[talker hidden, C(c0)]`; pass j ≥ 1 sees `embedding[j-1](c_j)`. Every
//! input goes through `small_to_mtp_projection` (absent when the widths agree, as on 0.6B), and
//! `lm_head[j]` predicts codebook j+1.

use crate::backend::{Compute, Ids, KvCache, Pick, Quantization, Rng, SamplingParams, Tensor, Weight};
use crate::error::Result;
use crate::models::quant_cache::QuantCache;
use crate::models::qwen3::{Qwen3Stack, SeqRows};
use crate::models::tts_config::TtsConfig;
use crate::models::weights::Checkpoint;

/// How one sequence's codes are chosen: its sampling chain and generator.
pub struct CodeSampling<'a> {
    pub params: &'a SamplingParams,
    pub rng: &'a mut Rng,
}

pub struct CodePredictor {
    cx: Compute,
    projection: Option<(Weight, Weight)>,
    pub decoder: Qwen3Stack,
    /// `codec_embedding[j]` embeds codebook j+1 (talker width).
    embeddings: Vec<Weight>,
    /// `lm_head[j]` predicts codebook j+1.
    heads: Vec<Weight>,
}

impl CodePredictor {
    pub fn load(cx: &Compute, ck: &mut Checkpoint, cfg: &TtsConfig) -> Result<CodePredictor> {
        let t = &cfg.talker_config;
        let p = &t.code_predictor_config;
        let (h, ph) = (t.decoder.hidden_size, p.hidden_size);
        let pre = "talker.code_predictor.";
        let projection = if h != ph {
            Some((
                ck.take(&format!("{pre}small_to_mtp_projection.weight"), &[ph, h])?,
                ck.take_vector(&format!("{pre}small_to_mtp_projection.bias"), ph)?,
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
            cx: cx.clone(),
            projection,
            decoder: Qwen3Stack::load(cx, ck, &format!("{pre}model."), cfg.predictor_dims())?,
            embeddings,
            heads,
        })
    }

    /// Quantizes the decoder (its first and last layers `recipe.edge()`, the others
    /// `recipe.body()`: the predictor runs 15 times a frame and its errors compound along the
    /// codes), the heads and the input projection (`recipe.head()`); embeddings stay as stored.
    pub fn quantize(&mut self, recipe: Quantization, cache: &mut QuantCache) {
        let last = self.decoder.dims.layers.saturating_sub(1);
        self.decoder.quantize(cache, |l| if l == 0 || l == last { recipe.edge() } else { recipe.body() });
        for (j, head) in self.heads.iter_mut().enumerate() {
            cache.quantize(head, recipe.head(), &format!("talker.code_predictor.lm_head.{j}.weight"));
        }
        if let Some((w, _)) = &mut self.projection {
            cache.quantize(w, recipe.head(), "talker.code_predictor.small_to_mtp_projection.weight");
        }
    }

    /// Bytes of weights one frame's passes read: the decoder (and input projection) once per
    /// pass, each head once.
    pub fn frame_weight_bytes(&self) -> usize {
        let projection = self.projection.as_ref().map_or(0, |(w, b)| w.bytes() + b.bytes());
        self.groups() * (self.decoder.weight_bytes() + projection) + self.heads.iter().map(Weight::bytes).sum::<usize>()
    }

    /// Codes c1.. predicted per frame (the number of heads).
    pub fn groups(&self) -> usize {
        self.heads.len()
    }

    /// Tokens one frame's passes hold in a cache slot: two, then one per further code.
    pub fn tokens_per_frame(&self) -> usize {
        self.groups() + 1
    }

    /// A cache with a slot per sequence, sized for one frame's passes.
    pub fn new_cache(&self, slots: usize) -> Result<KvCache> {
        self.decoder.new_cache(slots, self.tokens_per_frame())
    }

    /// `embedding[j](ids)`: the talker-width embedding of codebook j+1 (ids as chosen on the
    /// backend, read in place).
    pub fn embed(&self, j: usize, ids: &Ids) -> Result<Tensor> {
        self.cx.embedding_ids(&self.embeddings[j], ids)
    }

    /// `embedding[j](ids)` for ids on the host (reference frames of a cloned voice).
    pub fn embed_host(&self, j: usize, ids: &[u32]) -> Result<Tensor> {
        self.cx.embedding(&self.embeddings[j], ids)
    }

    fn project(&self, x: Tensor) -> Tensor {
        match &self.projection {
            Some((w, b)) => self.cx.linear(&x, w, Some(b)),
            None => x,
        }
    }

    /// Predicts c1..c{G-1} for a batch of frames. `hidden` and `c0_embed` are `[B, H]`; sequence
    /// b uses cache slot `slots[b]` (emptied first) and chooses its codes with `sampling[b]`.
    /// Returns the codes per codebook (`[j][b]` is c{j+1} of sequence b), left where they were
    /// chosen: on a GPU the passes run without a wait, each fed the last pass's ids in place, and
    /// the caller reads the frame back once (`Backend::read_ids`); the frame's passes are a
    /// recorded region (`Backend::recorded`, keyed by the slots), which a GPU replays as one graph.
    /// With `logits_out`, the raw logits of every pass are kept (parity checks; not recorded).
    pub fn predict(
        &self,
        hidden: &Tensor,
        c0_embed: &Tensor,
        cache: &mut KvCache,
        slots: &[usize],
        sampling: &mut [CodeSampling<'_>],
        logits_out: Option<&mut Vec<Tensor>>,
    ) -> Result<Vec<Ids>> {
        if logits_out.is_some() {
            return self.passes(hidden, c0_embed, cache, slots, sampling, None, logits_out);
        }
        let mut codes = Vec::new();
        self.cx.recorded(crate::models::region_key("code_predictor", slots), &[hidden, c0_embed], &mut |x| {
            codes = self.passes(x[0], x[1], cache, slots, sampling, None, None)?;
            Ok(())
        })?;
        Ok(codes)
    }

    /// The logits of every pass when each is fed the given codes (`codes[j][b]` = c{j+1} of
    /// sequence b) instead of its own choice: teacher forcing (`models::quant_report`).
    pub fn forced_logits(
        &self,
        hidden: &Tensor,
        c0_embed: &Tensor,
        cache: &mut KvCache,
        slots: &[usize],
        codes: &[Vec<u32>],
    ) -> Result<Vec<Tensor>> {
        assert_eq!(codes.len(), self.groups(), "one code per further codebook");
        let greedy =
            SamplingParams { do_sample: false, temperature: 1.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0 };
        let mut rngs: Vec<Rng> = slots.iter().map(|_| Rng::new(0)).collect();
        let mut sampling: Vec<CodeSampling<'_>> =
            rngs.iter_mut().map(|rng| CodeSampling { params: &greedy, rng }).collect();
        let mut logits = Vec::new();
        self.passes(hidden, c0_embed, cache, slots, &mut sampling, Some(codes), Some(&mut logits))?;
        Ok(logits)
    }

    /// The frame's passes (`predict`; with `forced`, each pass is fed those codes).
    #[allow(clippy::too_many_arguments)]
    fn passes(
        &self,
        hidden: &Tensor,
        c0_embed: &Tensor,
        cache: &mut KvCache,
        slots: &[usize],
        sampling: &mut [CodeSampling<'_>],
        forced: Option<&[Vec<u32>]>,
        mut logits_out: Option<&mut Vec<Tensor>>,
    ) -> Result<Vec<Ids>> {
        let cx = &self.cx;
        let b = hidden.rows();
        assert!(slots.len() == b && sampling.len() == b, "one slot and one sampler per sequence");
        let mut codes = Vec::with_capacity(self.groups());
        for &s in slots {
            cache.clear(s);
        }
        // 1. Pass 0: two rows per sequence, [hidden, C(c0)].
        let both = cx.concat_rows(&[hidden, c0_embed]);
        let order: Vec<Option<usize>> = (0..b).flat_map(|i| [Some(i), Some(b + i)]).collect();
        let mut input = Some(self.project(cx.gather_rows(&both, &order)));
        let mut per_seq = 2;
        // 2. One pass per further codebook, each fed the code just chosen.
        for j in 0..self.groups() {
            let seqs: Vec<SeqRows> = slots.iter().map(|&slot| SeqRows { slot, rows: per_seq }).collect();
            let x = input.take().expect("each pass has its input");
            let y = self.decoder.forward(x, cache, &seqs, None)?;
            let last: Vec<Option<usize>> = (0..b).map(|i| Some(i * per_seq + per_seq - 1)).collect();
            let logits = cx.linear(&cx.gather_rows(&y, &last), &self.heads[j], None);
            if let Some(out) = logits_out.as_deref_mut() {
                out.push(logits.clone());
            }
            let mut picks: Vec<Pick<'_>> = sampling
                .iter_mut()
                .map(|s| Pick { params: s.params, seen: &[], suppress: &[], rng: &mut *s.rng })
                .collect();
            let picked = match forced {
                Some(codes) => Ids::from_host(codes[j].clone(), logits.cols()),
                None => cx.sample_ids(&logits, &mut picks),
            };
            if j + 1 < self.groups() {
                input = Some(self.project(self.embed(j, &picked)?));
                per_seq = 1;
            }
            codes.push(picked);
        }
        Ok(codes)
    }
}
