//! The models: loaders for the official checkpoint folders and the forward passes (one file per
//! component: talker, code predictor, codec, audio encoder, …), written against the backend.

pub mod asr;
pub mod asr_config;
pub mod asr_output;
pub mod audio_encoder;
pub mod code_predictor;
pub mod codec;
pub mod codec_config;
pub mod codec_encoder;
pub mod codec_encoder_transformer;
pub mod codec_slots;
pub mod codec_transformer;
pub mod mel;
pub mod quant_cache;
pub mod quant_report;
pub mod qwen3;
pub mod speaker_encoder;
pub mod speaker_mel;
pub mod talker;
pub mod tokenizer;
pub mod tts;
pub mod tts_config;
pub mod tts_prompt;
pub mod voice;
pub mod weights;

/// The key of a recorded region (`Backend::recorded`) of a model's step: the region's name and the
/// batch's slots, which is what its launches depend on (the rest changes only the tables' contents).
pub(crate) fn region_key(name: &str, slots: &[usize]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (name, slots).hash(&mut h);
    h.finish()
}
