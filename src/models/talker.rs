//! The Qwen3-TTS talker: a Qwen3 decoder over the sum of a text track and a codec track, whose
//! head predicts the first code (c0) of each 80 ms frame.
//!
//! Text track: `T(id) = linear_fc2(silu(linear_fc1(text_embedding[id])))`.
//! Codec track: `C(id) = codec_embedding[id]`.

use crate::backend::{Compute, KvCache, Quantization, Tensor, Weight};
use crate::error::Result;
use crate::models::quant_cache::QuantCache;
use crate::models::qwen3::{Qwen3Stack, SeqRows};
use crate::models::tts_config::TtsConfig;
use crate::models::weights::Checkpoint;

pub struct Talker {
    cx: Compute,
    text_embedding: Weight,
    text_fc1: Weight,
    text_fc1_bias: Weight,
    text_fc2: Weight,
    text_fc2_bias: Weight,
    codec_embedding: Weight,
    pub decoder: Qwen3Stack,
    codec_head: Weight,
}

impl Talker {
    pub fn load(cx: &Compute, ck: &mut Checkpoint, cfg: &TtsConfig) -> Result<Talker> {
        let t = &cfg.talker_config;
        let (h, th) = (t.decoder.hidden_size, t.text_hidden_size);
        Ok(Talker {
            cx: cx.clone(),
            text_embedding: ck.take("talker.model.text_embedding.weight", &[t.text_vocab_size, th])?,
            text_fc1: ck.take("talker.text_projection.linear_fc1.weight", &[th, th])?,
            text_fc1_bias: ck.take_vector("talker.text_projection.linear_fc1.bias", th)?,
            text_fc2: ck.take("talker.text_projection.linear_fc2.weight", &[h, th])?,
            text_fc2_bias: ck.take_vector("talker.text_projection.linear_fc2.bias", h)?,
            codec_embedding: ck.take("talker.model.codec_embedding.weight", &[t.decoder.vocab_size, h])?,
            decoder: Qwen3Stack::load(cx, ck, "talker.model.", cfg.talker_dims())?,
            codec_head: ck.take("talker.codec_head.weight", &[t.decoder.vocab_size, h])?,
        })
    }

    /// Quantizes the decoder's projections (`recipe.body()`) and the head and text projection
    /// (`recipe.head()`); the embedding tables stay as stored (a lookup reads one row).
    pub fn quantize(&mut self, recipe: Quantization, cache: &mut QuantCache) {
        self.decoder.quantize(cache, |_| recipe.body());
        cache.quantize(&mut self.codec_head, recipe.head(), "talker.codec_head.weight");
        cache.quantize(&mut self.text_fc1, recipe.head(), "talker.text_projection.linear_fc1.weight");
        cache.quantize(&mut self.text_fc2, recipe.head(), "talker.text_projection.linear_fc2.weight");
    }

    /// Bytes of weights one decode step reads: the decoder and the c0 head (the text track's
    /// projection runs at prefill; an embedding lookup reads one row).
    pub fn step_weight_bytes(&self) -> usize {
        self.decoder.weight_bytes() + self.codec_head.bytes()
    }

    /// Text-track rows `T(ids)`.
    pub fn text(&self, ids: &[u32]) -> Result<Tensor> {
        let cx = &self.cx;
        let e = cx.embedding(&self.text_embedding, ids)?;
        let mut a = cx.linear(&e, &self.text_fc1, Some(&self.text_fc1_bias));
        cx.silu(&mut a);
        Ok(cx.linear(&a, &self.text_fc2, Some(&self.text_fc2_bias)))
    }

    /// Codec-track rows `C(ids)`.
    pub fn codec(&self, ids: &[u32]) -> Result<Tensor> {
        self.cx.embedding(&self.codec_embedding, ids)
    }

    /// Post-norm hidden states for `x`, rows grouped by sequence.
    pub fn forward(
        &self,
        x: Tensor,
        cache: &mut KvCache,
        seqs: &[SeqRows],
        layer_outputs: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        self.decoder.forward(x, cache, seqs, layer_outputs)
    }

    /// c0 logits for post-norm hidden rows.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        self.cx.linear(hidden, &self.codec_head, None)
    }
}
