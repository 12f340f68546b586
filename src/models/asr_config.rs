//! The Qwen3-ASR checkpoint's `config.json` and `preprocessor_config.json`. The Python config
//! classes' defaults are Qwen2-Audio/Omni leftovers (spec §2.2), so every field the model needs is
//! read from the file and checked; a missing or out-of-range field is named in the error.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};
use crate::models::qwen3::Qwen3Dims;
use crate::models::tts_config::{DecoderConfig, read_json};

/// `thinker_config.audio_config`: the AuT audio encoder.
#[derive(Clone, Debug, Deserialize)]
pub struct AudioEncoderConfig {
    pub num_mel_bins: usize,
    pub encoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub encoder_ffn_dim: usize,
    pub d_model: usize,
    pub output_dim: usize,
    /// Half the conv chunk: chunks are `2 * n_window` mel frames.
    pub n_window: usize,
    /// The attention window in mel frames (a multiple of the conv chunk).
    pub n_window_infer: usize,
    pub downsample_hidden_size: usize,
    pub max_source_positions: usize,
    #[serde(default = "default_gelu")]
    pub activation_function: String,
}

fn default_gelu() -> String {
    "gelu".into()
}

/// `thinker_config.text_config`: the Qwen3 decoder.
#[derive(Clone, Debug, Deserialize)]
pub struct AsrTextConfig {
    #[serde(flatten)]
    pub decoder: DecoderConfig,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub hidden_act: Option<String>,
}

fn default_true() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize)]
pub struct ThinkerConfig {
    pub audio_config: AudioEncoderConfig,
    pub text_config: AsrTextConfig,
    pub audio_token_id: u32,
    pub audio_start_token_id: u32,
    #[serde(default)]
    pub audio_end_token_id: Option<u32>,
    #[serde(default)]
    pub model_type: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct AsrConfig {
    #[serde(default)]
    pub model_type: Option<String>,
    pub thinker_config: ThinkerConfig,
    /// The languages the model can be forced to (canonical names: "English", "Chinese", …).
    #[serde(default)]
    pub support_languages: Vec<String>,
}

/// The languages of the official `SUPPORTED_LANGUAGES` list, used when a config has none.
pub const OFFICIAL_LANGUAGES: [&str; 30] = [
    "Chinese",
    "English",
    "Cantonese",
    "Arabic",
    "German",
    "French",
    "Spanish",
    "Portuguese",
    "Indonesian",
    "Italian",
    "Korean",
    "Russian",
    "Thai",
    "Vietnamese",
    "Japanese",
    "Turkish",
    "Hindi",
    "Malay",
    "Dutch",
    "Swedish",
    "Danish",
    "Finnish",
    "Polish",
    "Czech",
    "Filipino",
    "Persian",
    "Greek",
    "Romanian",
    "Hungarian",
    "Macedonian",
];

fn config_error(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::ModelLoad, format!("{}: {msg}", path.display()))
}

impl AsrConfig {
    pub fn load(dir: &Path) -> Result<AsrConfig> {
        let path = dir.join("config.json");
        let c: AsrConfig = read_json(&path)?;
        c.validate(&path)?;
        Ok(c)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let t = &self.thinker_config;
        if let Some(mt) = &t.model_type
            && mt == "qwen3_forced_aligner"
        {
            return Err(config_error(path, "this is a Qwen3-ForcedAligner checkpoint, not a Qwen3-ASR one"));
        }
        let a = &t.audio_config;
        let positive = [
            ("audio_config.num_mel_bins", a.num_mel_bins),
            ("audio_config.encoder_layers", a.encoder_layers),
            ("audio_config.encoder_attention_heads", a.encoder_attention_heads),
            ("audio_config.encoder_ffn_dim", a.encoder_ffn_dim),
            ("audio_config.d_model", a.d_model),
            ("audio_config.output_dim", a.output_dim),
            ("audio_config.n_window", a.n_window),
            ("audio_config.n_window_infer", a.n_window_infer),
            ("audio_config.downsample_hidden_size", a.downsample_hidden_size),
            ("audio_config.max_source_positions", a.max_source_positions),
            ("text_config.vocab_size", t.text_config.decoder.vocab_size),
            ("text_config.hidden_size", t.text_config.decoder.hidden_size),
            ("text_config.intermediate_size", t.text_config.decoder.intermediate_size),
            ("text_config.num_hidden_layers", t.text_config.decoder.num_hidden_layers),
            ("text_config.num_attention_heads", t.text_config.decoder.num_attention_heads),
            ("text_config.num_key_value_heads", t.text_config.decoder.num_key_value_heads),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(config_error(path, format!("thinker_config.{name} must be > 0")));
            }
        }
        if !a.d_model.is_multiple_of(a.encoder_attention_heads) || (a.d_model / 2) < 2 || !a.d_model.is_multiple_of(2) {
            return Err(config_error(
                path,
                format!(
                    "audio_config.d_model ({}) must be even and divisible by encoder_attention_heads ({})",
                    a.d_model, a.encoder_attention_heads
                ),
            ));
        }
        // The processor and the encoder's length rule hard-code 100-frame chunks of 13 tokens.
        if a.n_window != 50 {
            return Err(config_error(
                path,
                format!("audio_config.n_window is {}; Qwen3-ASR's length rule requires 50", a.n_window),
            ));
        }
        if !a.n_window_infer.is_multiple_of(2 * a.n_window) {
            return Err(config_error(
                path,
                format!("audio_config.n_window_infer ({}) must be a multiple of 2 * n_window", a.n_window_infer),
            ));
        }
        if a.max_source_positions < 13 {
            return Err(config_error(path, "audio_config.max_source_positions must be at least 13"));
        }
        if a.activation_function != "gelu" {
            return Err(config_error(
                path,
                format!("audio_config.activation_function `{}` is not supported (gelu)", a.activation_function),
            ));
        }
        let tc = &t.text_config.decoder;
        if let Some(act) = &t.text_config.hidden_act
            && act != "silu"
        {
            return Err(config_error(path, format!("text_config.hidden_act `{act}` is not supported (silu)")));
        }
        if !tc.num_attention_heads.is_multiple_of(tc.num_key_value_heads) {
            return Err(config_error(
                path,
                "text_config.num_attention_heads must be a multiple of num_key_value_heads",
            ));
        }
        let hd = self.text_dims().head_dim;
        if hd == 0 || !hd.is_multiple_of(2) {
            return Err(config_error(path, format!("text_config.head_dim ({hd}) must be even and > 0")));
        }
        if !(tc.rms_norm_eps > 0.0 && tc.rope_theta > 0.0) {
            return Err(config_error(path, "text_config.rms_norm_eps and rope_theta must be > 0"));
        }
        for (name, id) in [("audio_token_id", t.audio_token_id), ("audio_start_token_id", t.audio_start_token_id)] {
            if id as usize >= tc.vocab_size {
                return Err(config_error(path, format!("thinker_config.{name} {id} is outside the vocabulary")));
            }
        }
        Ok(())
    }

    pub fn text_dims(&self) -> Qwen3Dims {
        self.thinker_config.text_config.decoder.dims()
    }

    pub fn audio(&self) -> &AudioEncoderConfig {
        &self.thinker_config.audio_config
    }

    /// The languages a request may force, canonical spelling.
    pub fn languages(&self) -> Vec<String> {
        if self.support_languages.is_empty() {
            OFFICIAL_LANGUAGES.iter().map(|s| s.to_string()).collect()
        } else {
            self.support_languages.clone()
        }
    }
}

/// `preprocessor_config.json` (WhisperFeatureExtractor). Absent file or fields: the values every
/// released Qwen3-ASR checkpoint ships. `chunk_length`/`n_samples` are Whisper leftovers and are
/// deliberately not read: the front-end never truncates (spec §3.6).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct PreprocessorConfig {
    pub feature_size: usize,
    pub hop_length: usize,
    pub n_fft: usize,
    pub sampling_rate: u32,
    pub dither: f64,
}

impl Default for PreprocessorConfig {
    fn default() -> Self {
        PreprocessorConfig { feature_size: 128, hop_length: 160, n_fft: 400, sampling_rate: 16_000, dither: 0.0 }
    }
}

impl PreprocessorConfig {
    pub fn load(dir: &Path) -> Result<PreprocessorConfig> {
        let path = dir.join("preprocessor_config.json");
        if !path.is_file() {
            return Ok(PreprocessorConfig::default());
        }
        let c: PreprocessorConfig = read_json(&path)?;
        if c.hop_length == 0 || c.n_fft < 2 || c.feature_size == 0 || c.sampling_rate == 0 {
            return Err(config_error(&path, "feature_size, hop_length, n_fft and sampling_rate must be > 0"));
        }
        if c.dither != 0.0 {
            return Err(config_error(&path, "dither must be 0 (a dithered front-end is not deterministic)"));
        }
        Ok(c)
    }
}
