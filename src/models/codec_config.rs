//! The codec's `speech_tokenizer/config.json`, validated: the decoder part (`CodecConfig`) and the
//! encoder part (`CodecEncoderConfig`, read separately so that decoding never depends on it).

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
        if total != config.decode_upsample_rate || c.num_quantizers < 2 || !c.codebook_dim.is_multiple_of(2) {
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

/// The codec encoder's settings in `speech_tokenizer/config.json`: the top-level
/// `encoder_valid_num_quantizers`, `encode_downsample_rate` and `input_sample_rate`, and
/// `encoder_config` (a transformers `MimiConfig`). A field the file omits takes the Python class
/// default (`Qwen3TTSTokenizerV2Config`, `MimiConfig`), as the official loader does.
#[derive(Clone, Debug, Deserialize)]
pub struct CodecEncoderConfig {
    #[serde(default = "default_rate")]
    pub input_sample_rate: u32,
    #[serde(default = "default_valid_quantizers")]
    pub encoder_valid_num_quantizers: usize,
    #[serde(default = "default_downsample_rate")]
    pub encode_downsample_rate: usize,
    #[serde(default)]
    pub encoder_config: MimiConfig,
}

fn default_valid_quantizers() -> usize {
    16
}

fn default_downsample_rate() -> usize {
    1920
}

/// transformers' `MimiConfig` (4.57.3), the fields the encoder reads, with the class defaults.
/// `upsampling_ratios`, `codebook_dim`, `head_dim` and the frame rate are optional in the class
/// (`None` → `[8, 6, 5, 4]`, `hidden_size`, `hidden_size / num_attention_heads`, computed): the
/// accessors below resolve them.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct MimiConfig {
    pub sampling_rate: u32,
    /// What a saved config holds (`MimiConfig.__init__` stores `frame_rate` here).
    #[serde(rename = "_frame_rate")]
    pub saved_frame_rate: Option<f64>,
    /// The constructor's argument, as a hand-written config may give it.
    pub frame_rate: Option<f64>,
    pub audio_channels: usize,
    pub hidden_size: usize,
    pub num_filters: usize,
    pub num_residual_layers: usize,
    pub upsampling_ratios: Option<Vec<usize>>,
    pub kernel_size: usize,
    pub last_kernel_size: usize,
    pub residual_kernel_size: usize,
    pub dilation_growth_rate: usize,
    pub use_causal_conv: bool,
    pub pad_mode: String,
    pub compress: usize,
    pub codebook_size: usize,
    pub codebook_dim: Option<usize>,
    pub num_quantizers: usize,
    pub use_conv_shortcut: bool,
    pub vector_quantization_hidden_dimension: usize,
    pub num_semantic_quantizers: usize,
    pub num_hidden_layers: usize,
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: Option<usize>,
    pub hidden_act: String,
    pub norm_eps: f64,
    pub rope_theta: f64,
    /// Not applied: with transformers 4.57.3's sdpa/eager attention the encoder transformer is
    /// plain causal (spec §5.2); kept to be reported, not used.
    pub sliding_window: usize,
    pub attention_bias: bool,
}

impl Default for MimiConfig {
    fn default() -> MimiConfig {
        MimiConfig {
            sampling_rate: 24_000,
            saved_frame_rate: None,
            frame_rate: None,
            audio_channels: 1,
            hidden_size: 512,
            num_filters: 64,
            num_residual_layers: 1,
            upsampling_ratios: None,
            kernel_size: 7,
            last_kernel_size: 3,
            residual_kernel_size: 3,
            dilation_growth_rate: 2,
            use_causal_conv: true,
            pad_mode: "constant".into(),
            compress: 2,
            codebook_size: 2048,
            codebook_dim: Some(256),
            num_quantizers: 32,
            use_conv_shortcut: false,
            vector_quantization_hidden_dimension: 256,
            num_semantic_quantizers: 1,
            num_hidden_layers: 8,
            intermediate_size: 2048,
            num_attention_heads: 8,
            num_key_value_heads: 8,
            head_dim: None,
            hidden_act: "gelu".into(),
            norm_eps: 1e-5,
            rope_theta: 10_000.0,
            sliding_window: 250,
            attention_bias: false,
        }
    }
}

/// Bounds on the encoder config's counts and sizes (far above the released codec's), so that a
/// corrupt config fails with a message instead of sizing something absurd.
const MAX_WIDTH: usize = 1 << 16;
const MAX_KERNEL: usize = 1 << 10;
const MAX_LAYERS: usize = 1 << 8;
const MAX_QUANTIZERS: usize = 1 << 10;
const MAX_CODEBOOK: usize = 1 << 20;
const MAX_HOP: usize = 1 << 16;

impl MimiConfig {
    /// The SEANet strides, first layer first (`reversed(upsampling_ratios)`).
    pub fn ratios(&self) -> Vec<usize> {
        let r = self.upsampling_ratios.clone().unwrap_or_else(|| vec![8, 6, 5, 4]);
        r.into_iter().rev().collect()
    }

    /// Width of the codebook entries (`codebook_dim`, or `hidden_size` when null).
    pub fn codebook_dim(&self) -> usize {
        self.codebook_dim.unwrap_or(self.hidden_size)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Audio samples per SEANet output row: the product of the ratios (`np.prod(upsampling_ratios)`).
    pub fn hop_length(&self) -> usize {
        self.ratios().iter().product()
    }

    /// `MimiConfig.frame_rate`: the saved `_frame_rate` (or the `frame_rate` argument), else the
    /// sampling rate over `frame_size` (the hop times the downsampling stride 2).
    pub fn frame_rate(&self) -> f64 {
        self.saved_frame_rate
            .or(self.frame_rate)
            .unwrap_or_else(|| self.sampling_rate as f64 / (self.hop_length() * DOWNSAMPLE_STRIDE) as f64)
    }

    /// `MimiConfig.encodec_frame_rate`: `ceil(sampling_rate / hop)`, the SEANet output rate.
    pub fn encodec_frame_rate(&self) -> usize {
        (self.sampling_rate as usize).div_ceil(self.hop_length())
    }

    /// The downsampling conv's kernel: `2 · int(encodec_frame_rate / frame_rate)` (stride 2).
    pub fn downsample_kernel(&self) -> usize {
        2 * (self.encodec_frame_rate() as f64 / self.frame_rate()) as usize
    }
}

/// The stride of `MimiModel.downsample` (fixed in the class).
pub const DOWNSAMPLE_STRIDE: usize = 2;

/// `MimiEuclideanCodebook`'s epsilon: codebook = `embed_sum / clamp(cluster_usage, min = eps)`.
pub const CODEBOOK_USAGE_EPS: f32 = 1e-5;

impl CodecEncoderConfig {
    /// Reads and checks the encoder part of `dir/config.json` (before anything is sized by it).
    pub fn load(dir: &Path) -> Result<CodecEncoderConfig> {
        let path = dir.join("config.json");
        let config: CodecEncoderConfig = read_json(&path)?;
        config.validate().map_err(|msg| Error::new(ErrorKind::ModelLoad, format!("{}: {msg}", path.display())))?;
        Ok(config)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let c = &self.encoder_config;
        let in_range = |name: &str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("encoder_config.{name} {v} is outside {lo}..={hi}"))
            }
        };
        // What the encoder supports: the released codec's structure.
        if c.audio_channels != 1 {
            return Err(format!("encoder_config.audio_channels {} is not supported (mono only)", c.audio_channels));
        }
        if !c.use_causal_conv || c.pad_mode != "constant" || c.use_conv_shortcut {
            return Err(format!(
                "encoder_config: use_causal_conv {}, pad_mode {:?}, use_conv_shortcut {} are not supported \
                 (causal convolutions with zero padding and identity shortcuts only)",
                c.use_causal_conv, c.pad_mode, c.use_conv_shortcut
            ));
        }
        if c.hidden_act != "gelu" {
            return Err(format!("encoder_config.hidden_act {:?} is not supported (gelu only)", c.hidden_act));
        }
        // Sizes and counts.
        for (name, v) in [
            ("hidden_size", c.hidden_size),
            ("num_filters", c.num_filters),
            ("intermediate_size", c.intermediate_size),
            ("vector_quantization_hidden_dimension", c.vector_quantization_hidden_dimension),
            ("codebook_dim", c.codebook_dim()),
        ] {
            in_range(name, v, 1, MAX_WIDTH)?;
        }
        for (name, v) in [
            ("kernel_size", c.kernel_size),
            ("last_kernel_size", c.last_kernel_size),
            ("residual_kernel_size", c.residual_kernel_size),
            ("dilation_growth_rate", c.dilation_growth_rate),
        ] {
            in_range(name, v, 1, MAX_KERNEL)?;
        }
        in_range("num_hidden_layers", c.num_hidden_layers, 0, MAX_LAYERS)?;
        in_range("num_quantizers", c.num_quantizers, 2, MAX_QUANTIZERS)?;
        in_range("num_semantic_quantizers", c.num_semantic_quantizers, 1, c.num_quantizers - 1)?;
        in_range("codebook_size", c.codebook_size, 1, MAX_CODEBOOK)?;
        if !c.codebook_size.is_power_of_two() {
            return Err(format!("encoder_config.codebook_size {} must be a power of 2", c.codebook_size));
        }
        let ratios = c.ratios();
        let hop = ratios.iter().try_fold(1usize, |a, &r| a.checked_mul(r)).unwrap_or(usize::MAX);
        if ratios.is_empty() || ratios.len() > 16 || ratios.contains(&0) || hop > MAX_HOP {
            return Err(format!(
                "encoder_config.upsampling_ratios {ratios:?}: 1 to 16 ratios, none 0, product at most {MAX_HOP}"
            ));
        }
        // Channels double at each ratio; the residual blocks compress them.
        let top = (c.num_filters as u128) << ratios.len();
        if top > MAX_WIDTH as u128 {
            return Err(format!(
                "encoder_config: num_filters {} doubled {} times is too wide",
                c.num_filters,
                ratios.len()
            ));
        }
        // The residual blocks' width is `dim // compress` (at least one channel), their first
        // conv's dilation `dilation_growth_rate ** j` for block j.
        in_range("compress", c.compress, 1, c.num_filters)?;
        in_range("num_residual_layers", c.num_residual_layers, 0, 16)?;
        let widest = (c.num_residual_layers.max(1) - 1) as u32;
        let reach = c.dilation_growth_rate.checked_pow(widest).and_then(|d| d.checked_mul(c.residual_kernel_size));
        if reach.is_none_or(|r| r > MAX_KERNEL * 64) {
            return Err(format!(
                "encoder_config: dilation_growth_rate {} over {} residual layers is too wide",
                c.dilation_growth_rate, c.num_residual_layers
            ));
        }
        // Attention heads.
        let (h, hd) = (c.num_attention_heads, c.head_dim());
        if h == 0
            || !c.hidden_size.is_multiple_of(h)
            || c.num_key_value_heads == 0
            || h % c.num_key_value_heads != 0
            || hd == 0
            || hd % 2 != 0
        {
            return Err(format!(
                "encoder_config: {h} attention heads over {} key/value heads of width {hd} (heads must divide \
                 hidden_size and be a multiple of the key/value heads, the width even)",
                c.num_key_value_heads
            ));
        }
        in_range("num_attention_heads * head_dim", h * hd, 1, MAX_WIDTH)?;
        if !(c.norm_eps.is_finite() && c.norm_eps > 0.0 && c.rope_theta.is_finite() && c.rope_theta > 1.0) {
            return Err(format!(
                "encoder_config: norm_eps {} and rope_theta {} out of range",
                c.norm_eps, c.rope_theta
            ));
        }
        // The quantizer works in the codebook's width: the input projection's, or the model's
        // when there is none (vector_quantization_hidden_dimension = hidden_size).
        if c.codebook_dim() != c.vector_quantization_hidden_dimension {
            return Err(format!(
                "encoder_config.codebook_dim {} differs from vector_quantization_hidden_dimension {}",
                c.codebook_dim(),
                c.vector_quantization_hidden_dimension
            ));
        }
        // Rates: the downsampling conv exists (frame_rate ≠ encodec_frame_rate) and halves the
        // SEANet rate, and encode_downsample_rate is the samples per code frame.
        if !(MIN_OUTPUT_RATE..=MAX_OUTPUT_RATE).contains(&c.sampling_rate) || c.sampling_rate != self.input_sample_rate
        {
            return Err(format!(
                "encoder_config.sampling_rate {} must equal input_sample_rate {} and lie in {MIN_OUTPUT_RATE}..={MAX_OUTPUT_RATE} Hz",
                c.sampling_rate, self.input_sample_rate
            ));
        }
        let fr = c.frame_rate();
        let kernel = c.downsample_kernel();
        if !(fr.is_finite() && fr > 0.0)
            || fr == c.encodec_frame_rate() as f64
            || !(DOWNSAMPLE_STRIDE..=MAX_KERNEL).contains(&kernel)
        {
            return Err(format!(
                "encoder_config: frame rate {fr} against the SEANet rate {} gives no downsampling conv of stride \
                 {DOWNSAMPLE_STRIDE} (kernel {kernel})",
                c.encodec_frame_rate()
            ));
        }
        let per_frame = c.hop_length() * DOWNSAMPLE_STRIDE;
        if self.encode_downsample_rate != per_frame {
            return Err(format!(
                "encode_downsample_rate {} must equal the product of encoder_config.upsampling_ratios times \
                 {DOWNSAMPLE_STRIDE} ({per_frame})",
                self.encode_downsample_rate
            ));
        }
        if !(1..=c.num_quantizers).contains(&self.encoder_valid_num_quantizers) {
            return Err(format!(
                "encoder_valid_num_quantizers {} is outside 1..={} (encoder_config.num_quantizers)",
                self.encoder_valid_num_quantizers, c.num_quantizers
            ));
        }
        Ok(())
    }
}
