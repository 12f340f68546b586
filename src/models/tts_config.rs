//! The Qwen3-TTS checkpoint's `config.json` and `generation_config.json`. The Python classes'
//! defaults are not the released checkpoints' values, so every field the model needs is read from
//! the file, and a missing or out-of-range field is named in the error.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};
use crate::models::qwen3::Qwen3Dims;

/// An id written either as `3066` or as `[3066]` (both occur in released configs).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum IdOrList {
    Id(u32),
    List([u32; 1]),
}

impl IdOrList {
    pub fn id(self) -> u32 {
        match self {
            IdOrList::Id(v) | IdOrList::List([v]) => v,
        }
    }
}

/// `spk_is_dialect` values: `false`, or the dialect's language key.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Dialect {
    Flag(bool),
    Name(String),
}

/// The Qwen3 decoder fields shared by the talker, the code predictor and the Qwen3-ASR text
/// configs.
#[derive(Clone, Debug, Deserialize)]
pub struct DecoderConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: Option<usize>,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub vocab_size: usize,
    /// Codebooks per frame (Qwen3-TTS only; 0 when absent, which the TTS check refuses).
    #[serde(default)]
    pub num_code_groups: usize,
}

impl DecoderConfig {
    /// The stack's shapes (an absent `head_dim` means hidden / heads, as the Python class).
    pub fn dims(&self) -> Qwen3Dims {
        Qwen3Dims {
            hidden: self.hidden_size,
            intermediate: self.intermediate_size,
            layers: self.num_hidden_layers,
            heads: self.num_attention_heads,
            kv_heads: self.num_key_value_heads,
            head_dim: self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1)),
            rms_eps: self.rms_norm_eps as f32,
            rope_theta: self.rope_theta as f32,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct TalkerConfig {
    #[serde(flatten)]
    pub decoder: DecoderConfig,
    pub text_vocab_size: usize,
    pub text_hidden_size: usize,
    pub codec_pad_id: u32,
    pub codec_bos_id: u32,
    pub codec_eos_token_id: u32,
    pub codec_think_id: u32,
    pub codec_nothink_id: u32,
    pub codec_think_bos_id: u32,
    pub codec_think_eos_id: u32,
    #[serde(default)]
    pub codec_language_id: HashMap<String, u32>,
    #[serde(default)]
    pub spk_id: HashMap<String, IdOrList>,
    #[serde(default)]
    pub spk_is_dialect: HashMap<String, Dialect>,
    pub code_predictor_config: DecoderConfig,
}

#[derive(Clone, Debug, Deserialize)]
pub struct TtsConfig {
    pub tts_model_type: String,
    #[serde(default)]
    pub tts_model_size: String,
    pub tts_pad_token_id: u32,
    pub tts_bos_token_id: u32,
    pub tts_eos_token_id: u32,
    pub talker_config: TalkerConfig,
    /// The ECAPA-TDNN speaker encoder of Base checkpoints (absent elsewhere).
    #[serde(default)]
    pub speaker_encoder_config: Option<SpeakerEncoderConfig>,
}

/// `speaker_encoder_config`. The released Base checkpoints write only `enc_dim` and
/// `sample_rate`; every other field takes the official class's default, as here.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct SpeakerEncoderConfig {
    pub mel_dim: usize,
    pub enc_dim: usize,
    pub enc_channels: Vec<usize>,
    pub enc_kernel_sizes: Vec<usize>,
    pub enc_dilations: Vec<usize>,
    pub enc_attention_channels: usize,
    pub enc_res2net_scale: usize,
    pub enc_se_channels: usize,
    pub sample_rate: u32,
}

impl Default for SpeakerEncoderConfig {
    fn default() -> Self {
        SpeakerEncoderConfig {
            mel_dim: 128,
            enc_dim: 1024,
            enc_channels: vec![512, 512, 512, 512, 1536],
            enc_kernel_sizes: vec![5, 3, 3, 3, 1],
            enc_dilations: vec![1, 2, 3, 4, 1],
            enc_attention_channels: 128,
            enc_res2net_scale: 8,
            enc_se_channels: 128,
            sample_rate: 24000,
        }
    }
}

/// Largest channel count, kernel or dilation accepted from a speaker-encoder config (the
/// released ones use 1536, 5 and 4): a bound before anything is sized by them.
const MAX_SPEAKER_CHANNELS: usize = 1 << 14;
const MAX_SPEAKER_KERNEL: usize = 64;

impl SpeakerEncoderConfig {
    /// `check`, and the x-vector must be as wide as the talker's rows it joins.
    fn validate(&self, talker_hidden: usize) -> std::result::Result<(), String> {
        self.check()?;
        if self.enc_dim != talker_hidden {
            return Err(format!("enc_dim {} must equal the talker's hidden_size {talker_hidden}", self.enc_dim));
        }
        Ok(())
    }

    /// The official front-end is fixed (128 mels at 24 kHz); the blocks' shapes must chain as the
    /// official module's forward chains them: every SE-Res2Net block adds its input back (its
    /// channels equal the previous block's), and the aggregation TDNN, built for
    /// `enc_channels[-1]` inputs, reads the SE-Res2Net blocks' outputs side by side.
    pub fn check(&self) -> std::result::Result<(), String> {
        let n = self.enc_channels.len();
        if n < 3 || self.enc_kernel_sizes.len() != n || self.enc_dilations.len() != n {
            return Err(format!(
                "enc_channels, enc_kernel_sizes and enc_dilations must have one equal length ≥ 3 (got {}, {}, {})",
                n,
                self.enc_kernel_sizes.len(),
                self.enc_dilations.len()
            ));
        }
        if self.mel_dim != 128 || self.sample_rate != 24000 {
            return Err(format!(
                "mel_dim {} and sample_rate {}: the official front-end computes 128 mels at 24000 Hz",
                self.mel_dim, self.sample_rate
            ));
        }
        let sizes =
            self.enc_channels.iter().chain([&self.enc_attention_channels, &self.enc_se_channels, &self.enc_dim]);
        if sizes.into_iter().any(|&c| c == 0 || c > MAX_SPEAKER_CHANNELS) {
            return Err(format!("channel counts must be in 1..={MAX_SPEAKER_CHANNELS}"));
        }
        let taps = self.enc_kernel_sizes.iter().chain(&self.enc_dilations);
        if taps.into_iter().any(|&k| k == 0 || k > MAX_SPEAKER_KERNEL) {
            return Err(format!("kernel sizes and dilations must be in 1..={MAX_SPEAKER_KERNEL}"));
        }
        let scale = self.enc_res2net_scale;
        if scale < 2 || self.enc_channels[..n - 1].iter().any(|&c| c % scale != 0) {
            return Err(format!("enc_res2net_scale {scale} must be ≥ 2 and divide every block's channels"));
        }
        let c = &self.enc_channels;
        if let Some(i) = (1..n - 1).find(|&i| c[i] != c[i - 1]) {
            return Err(format!(
                "enc_channels[{i}] = {} must equal enc_channels[{}] = {} (the SE-Res2Net block adds its input back)",
                c[i],
                i - 1,
                c[i - 1]
            ));
        }
        let aggregated: usize = c[1..n - 1].iter().sum();
        if aggregated != c[n - 1] {
            return Err(format!(
                "enc_channels[{}] = {} must be the sum of the SE-Res2Net blocks' channels ({aggregated}), which the \
                 aggregation TDNN reads",
                n - 1,
                c[n - 1]
            ));
        }
        Ok(())
    }
}

/// Sampling defaults of `generation_config.json` (missing keys: the official hard defaults).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct GenerationConfig {
    pub do_sample: bool,
    pub temperature: f32,
    pub top_k: u32,
    pub top_p: f32,
    pub repetition_penalty: f32,
    pub subtalker_dosample: bool,
    pub subtalker_temperature: f32,
    pub subtalker_top_k: u32,
    pub subtalker_top_p: f32,
    pub max_new_tokens: u32,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            do_sample: true,
            temperature: 0.9,
            top_k: 50,
            top_p: 1.0,
            repetition_penalty: 1.05,
            subtalker_dosample: true,
            subtalker_temperature: 0.9,
            subtalker_top_k: 50,
            subtalker_top_p: 1.0,
            max_new_tokens: 2048,
        }
    }
}

fn config_error(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::ModelLoad, format!("{}: {msg}", path.display()))
}

/// Reads and parses a JSON file; serde's message names the missing or mistyped field.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| config_error(path, format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| config_error(path, e))
}

/// The kinds of Qwen3-TTS checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtsKind {
    CustomVoice,
    VoiceDesign,
    Base,
}

impl TtsConfig {
    pub fn load(dir: &Path) -> Result<TtsConfig> {
        let path = dir.join("config.json");
        let c: TtsConfig = read_json(&path)?;
        c.validate(&path)?;
        Ok(c)
    }

    pub fn kind(&self) -> TtsKind {
        match self.tts_model_type.as_str() {
            "custom_voice" => TtsKind::CustomVoice,
            "voice_design" => TtsKind::VoiceDesign,
            _ => TtsKind::Base,
        }
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let t = &self.talker_config;
        let (td, p) = (&t.decoder, &t.code_predictor_config);
        if !matches!(self.tts_model_type.as_str(), "custom_voice" | "voice_design" | "base") {
            return Err(config_error(
                path,
                format!("tts_model_type `{}` is not custom_voice, voice_design or base", self.tts_model_type),
            ));
        }
        for (name, d) in [("talker_config", self.talker_dims()), ("code_predictor_config", self.predictor_dims())] {
            if d.hidden == 0 || d.intermediate == 0 || d.layers == 0 || d.heads == 0 || d.kv_heads == 0 {
                return Err(config_error(path, format!("{name}: sizes must be positive")));
            }
            if d.heads % d.kv_heads != 0 {
                return Err(config_error(
                    path,
                    format!(
                        "{name}: num_attention_heads {} is not a multiple of num_key_value_heads {}",
                        d.heads, d.kv_heads
                    ),
                ));
            }
            if d.head_dim == 0 || d.head_dim % 2 != 0 {
                return Err(config_error(path, format!("{name}: head_dim {} must be even and positive", d.head_dim)));
            }
            if !(d.rms_eps > 0.0 && d.rope_theta > 0.0) {
                return Err(config_error(path, format!("{name}: rms_norm_eps and rope_theta must be positive")));
            }
        }
        if td.num_code_groups < 2 || p.num_code_groups != td.num_code_groups {
            return Err(config_error(
                path,
                format!(
                    "num_code_groups must be ≥ 2 and equal in talker ({}) and code predictor ({})",
                    td.num_code_groups, p.num_code_groups
                ),
            ));
        }
        if td.vocab_size < 1024 || td.vocab_size - 1024 < p.vocab_size {
            return Err(config_error(
                path,
                format!(
                    "talker vocab_size {} must leave its top 1024 ids for control tokens above the code predictor's vocab {}",
                    td.vocab_size, p.vocab_size
                ),
            ));
        }
        let codec_ids = [
            ("codec_pad_id", t.codec_pad_id),
            ("codec_bos_id", t.codec_bos_id),
            ("codec_eos_token_id", t.codec_eos_token_id),
            ("codec_think_id", t.codec_think_id),
            ("codec_nothink_id", t.codec_nothink_id),
            ("codec_think_bos_id", t.codec_think_bos_id),
            ("codec_think_eos_id", t.codec_think_eos_id),
        ];
        let langs = t.codec_language_id.iter().map(|(k, v)| (k.as_str(), *v));
        let spks = t.spk_id.iter().map(|(k, v)| (k.as_str(), v.id()));
        for (name, id) in codec_ids.into_iter().chain(langs).chain(spks) {
            if id as usize >= td.vocab_size {
                return Err(config_error(
                    path,
                    format!("codec id {name} = {id} is outside the codec vocab of {}", td.vocab_size),
                ));
            }
        }
        for (name, id) in [
            ("tts_pad_token_id", self.tts_pad_token_id),
            ("tts_bos_token_id", self.tts_bos_token_id),
            ("tts_eos_token_id", self.tts_eos_token_id),
        ] {
            if id as usize >= t.text_vocab_size {
                return Err(config_error(
                    path,
                    format!("{name} = {id} is outside the text vocab of {}", t.text_vocab_size),
                ));
            }
        }
        if let Some(s) = self.speaker_encoder() {
            s.validate(td.hidden_size).map_err(|e| config_error(path, format!("speaker_encoder_config: {e}")))?;
        }
        for (spk, d) in &t.spk_is_dialect {
            if let Dialect::Name(lang) = d
                && !t.codec_language_id.contains_key(lang)
            {
                return Err(config_error(
                    path,
                    format!("spk_is_dialect[{spk}] = `{lang}` is not in codec_language_id"),
                ));
            }
        }
        Ok(())
    }

    /// The speaker encoder's config on a Base checkpoint (the class defaults when the file has
    /// none, as the official model builds it); `None` on the other kinds, which have no encoder.
    pub fn speaker_encoder(&self) -> Option<SpeakerEncoderConfig> {
        (self.kind() == TtsKind::Base).then(|| self.speaker_encoder_config.clone().unwrap_or_default())
    }

    pub fn talker_dims(&self) -> Qwen3Dims {
        self.talker_config.decoder.dims()
    }

    pub fn predictor_dims(&self) -> Qwen3Dims {
        self.talker_config.code_predictor_config.dims()
    }

    /// Languages accepted by name (lower case), "auto" included, as the official API lists them.
    pub fn languages(&self) -> Vec<String> {
        let mut v: Vec<String> =
            self.talker_config.codec_language_id.keys().filter(|k| !k.contains("dialect")).cloned().collect();
        v.sort();
        v.insert(0, "auto".into());
        v
    }

    pub fn speakers(&self) -> Vec<String> {
        let mut v: Vec<String> = self.talker_config.spk_id.keys().cloned().collect();
        v.sort();
        v
    }
}

impl GenerationConfig {
    /// `generation_config.json` if present, else the official hard defaults.
    pub fn load(dir: &Path) -> Result<GenerationConfig> {
        let path = dir.join("generation_config.json");
        if !path.exists() {
            return Ok(GenerationConfig::default());
        }
        read_json(&path)
    }
}
