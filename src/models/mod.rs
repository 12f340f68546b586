//! The models: loaders for the official checkpoint folders and the forward passes (one file per
//! component: talker, code predictor, codec, audio encoder, …), written against the backend.

pub mod asr;
pub mod asr_config;
pub mod asr_output;
pub mod audio_encoder;
pub mod code_predictor;
pub mod codec;
pub mod codec_config;
pub mod codec_slots;
pub mod codec_transformer;
pub mod mel;
pub mod qwen3;
pub mod talker;
pub mod tokenizer;
pub mod tts;
pub mod tts_config;
pub mod tts_prompt;
pub mod weights;
