//! The Qwen3-TTS talker: a Qwen3 decoder over the sum of a text track and a codec track, whose
//! head predicts the first code (c0) of each 80 ms frame.
//!
//! Text track: `T(id) = linear_fc2(silu(linear_fc1(text_embedding[id])))`.
//! Codec track: `C(id) = codec_embedding[id]`.

use crate::backend::cpu::{self, Cpu};
use crate::backend::{Tensor, Weight};
use crate::error::Result;
use crate::models::qwen3::{Qwen3Stack, SeqRows};
use crate::models::tts_config::TtsConfig;
use crate::models::weights::Checkpoint;

pub struct Talker {
    text_embedding: Weight,
    text_fc1: Weight,
    text_fc1_bias: Vec<f32>,
    text_fc2: Weight,
    text_fc2_bias: Vec<f32>,
    codec_embedding: Weight,
    pub decoder: Qwen3Stack,
    codec_head: Weight,
}

impl Talker {
    pub fn load(ck: &mut Checkpoint, cfg: &TtsConfig) -> Result<Talker> {
        let t = &cfg.talker_config;
        let (h, th) = (t.decoder.hidden_size, t.text_hidden_size);
        Ok(Talker {
            text_embedding: ck.take("talker.model.text_embedding.weight", &[t.text_vocab_size, th])?,
            text_fc1: ck.take("talker.text_projection.linear_fc1.weight", &[th, th])?,
            text_fc1_bias: ck.take_f32("talker.text_projection.linear_fc1.bias", &[th])?,
            text_fc2: ck.take("talker.text_projection.linear_fc2.weight", &[h, th])?,
            text_fc2_bias: ck.take_f32("talker.text_projection.linear_fc2.bias", &[h])?,
            codec_embedding: ck.take("talker.model.codec_embedding.weight", &[t.decoder.vocab_size, h])?,
            decoder: Qwen3Stack::load(ck, "talker.model.", cfg.talker_dims())?,
            codec_head: ck.take("talker.codec_head.weight", &[t.decoder.vocab_size, h])?,
        })
    }

    /// Text-track rows `T(ids)`.
    pub fn text(&self, cpu: &Cpu, ids: &[u32]) -> Result<Tensor> {
        let e = cpu.embedding(&self.text_embedding, ids)?;
        let mut a = cpu.linear(&e, &self.text_fc1, Some(&self.text_fc1_bias));
        cpu::silu(&mut a.data);
        Ok(cpu.linear(&a, &self.text_fc2, Some(&self.text_fc2_bias)))
    }

    /// Codec-track rows `C(ids)`.
    pub fn codec(&self, cpu: &Cpu, ids: &[u32]) -> Result<Tensor> {
        cpu.embedding(&self.codec_embedding, ids)
    }

    /// Post-norm hidden states for `x`, rows grouped by sequence.
    pub fn forward(
        &self,
        cpu: &Cpu,
        x: Tensor,
        seqs: &mut [SeqRows<'_>],
        layer_outputs: Option<&mut Vec<Tensor>>,
    ) -> Tensor {
        self.decoder.forward(cpu, x, seqs, layer_outputs)
    }

    /// c0 logits for post-norm hidden rows.
    pub fn logits(&self, cpu: &Cpu, hidden: &Tensor) -> Tensor {
        cpu.linear(hidden, &self.codec_head, None)
    }
}
