//! The codec's `speech_tokenizer/config.json` (the decoder part), validated.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};
use crate::models::tts_config::read_json;

#[derive(Clone, Debug, Deserialize)]
pub struct CodecDecoderConfig {
    pub codebook_size: usize,
    pub codebook_dim: usize,
    pub num_quantizers: usize,
    pub latent_dim: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: Option<usize>,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub sliding_window: usize,
    pub decoder_dim: usize,
    pub upsample_rates: Vec<usize>,
    pub upsampling_ratios: Vec<usize>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CodecConfig {
    #[serde(default = "default_rate")]
    pub output_sample_rate: u32,
    pub decode_upsample_rate: usize,
    pub decoder_config: CodecDecoderConfig,
}

fn default_rate() -> u32 {
    24_000
}

/// The output rates a codec config may state (the released codec: 24 kHz).
const MIN_OUTPUT_RATE: u32 = 4_000;
const MAX_OUTPUT_RATE: u32 = 384_000;

/// The official offline windowing: windows of this many frames, each with this much left context.
pub const CHUNK_FRAMES: usize = 300;
pub const LEFT_CONTEXT_FRAMES: usize = 25;

impl CodecConfig {
    /// Reads and checks `dir/config.json`.
    pub fn load(dir: &Path) -> Result<CodecConfig> {
        let config: CodecConfig = read_json(&dir.join("config.json"))?;
        let c = &config.decoder_config;
        let total: usize = c.upsample_rates.iter().chain(&c.upsampling_ratios).product();
        if total != config.decode_upsample_rate || c.num_quantizers < 2 || c.codebook_dim % 2 != 0 {
            return Err(Error::new(
                ErrorKind::ModelLoad,
                format!(
                    "{}: decode_upsample_rate {} must equal the product of upsample_rates and upsampling_ratios ({total}), with ≥ 2 quantizers and an even codebook_dim",
                    dir.join("config.json").display(),
                    config.decode_upsample_rate
                ),
            ));
        }
        if !(MIN_OUTPUT_RATE..=MAX_OUTPUT_RATE).contains(&config.output_sample_rate) {
            return Err(Error::new(
                ErrorKind::ModelLoad,
                format!(
                    "{}: output_sample_rate {} is outside {MIN_OUTPUT_RATE}..={MAX_OUTPUT_RATE} Hz",
                    dir.join("config.json").display(),
                    config.output_sample_rate
                ),
            ));
        }
        Ok(config)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        let c = &self.decoder_config;
        c.head_dim.unwrap_or(c.hidden_size / c.num_attention_heads)
    }
}
