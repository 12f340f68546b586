//! Qwen3-ASR prompts (spec §7): the system turn with the context, the user turn with the audio
//! pads, the assistant turn with an optional forced language.

use super::Qwen3Asr;
use crate::error::{Error, Result};
use crate::models::asr_output;

impl Qwen3Asr {
    /// The canonical name of a forced language, or an error naming the supported ones.
    pub fn check_language(&self, language: &str) -> Result<String> {
        let supported = self.config.languages();
        match asr_output::normalize_language_name(language) {
            Some(l) if supported.contains(&l) => Ok(l),
            _ => Err(Error::invalid(format!(
                "language `{language}` is not supported by this model (supported: {})",
                supported.join(", ")
            ))),
        }
    }

    /// Prompt ids before and after the audio pads (spec §7): the system turn (always present,
    /// holding the context), the user turn with the audio, the assistant turn, and for a forced
    /// language `language X<asr_text>`.
    pub fn prompt_parts(&self, context: Option<&str>, language: Option<&str>) -> Result<(Vec<u32>, Vec<u32>)> {
        let context = context.unwrap_or("");
        for tag in ["<|audio_pad|>", "<|audio_start|>", "<|audio_end|>"] {
            if context.contains(tag) {
                return Err(Error::invalid(format!("context must not contain the audio token {tag}")));
            }
        }
        let prefix = format!("<|im_start|>system\n{context}<|im_end|>\n<|im_start|>user\n<|audio_start|>");
        let mut suffix = "<|audio_end|><|im_end|>\n<|im_start|>assistant\n".to_string();
        if let Some(l) = language {
            suffix.push_str(&format!("language {l}<asr_text>"));
        }
        Ok((self.tokenizer.encode(&prefix)?, self.tokenizer.encode(&suffix)?))
    }

    /// The full prompt ids for a pass whose audio gives `audio_tokens` embeddings.
    pub fn prompt_ids(&self, prefix: &[u32], suffix: &[u32], audio_tokens: usize) -> Vec<u32> {
        let mut ids = prefix.to_vec();
        ids.extend(std::iter::repeat_n(self.audio_pad, audio_tokens));
        ids.extend_from_slice(suffix);
        ids
    }
}
