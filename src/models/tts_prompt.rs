//! Qwen3-TTS prompts (spec §2.6): the official API's row layouts A and B, the chat templates,
//! and the automatic frame cap for a text.

use crate::error::{Error, Result};
use crate::models::tts_config::{Dialect, TtsConfig};

/// Frames per second of the 12 Hz codec (80 ms frames).
pub const FRAME_RATE: f32 = 12.5;

/// One prompt row: a text-track token and/or a codec-track token, summed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PromptRow {
    pub text: Option<u32>,
    pub codec: Option<u32>,
}

/// The prefill rows and the text-track tokens fed one per decode step (then `tts_pad`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub rows: Vec<PromptRow>,
    pub trailing: Vec<u32>,
}

/// What the prompt is built from, after the official API's defaults and rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptInput {
    /// Ids of `<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n`.
    pub input_ids: Vec<u32>,
    /// Ids of `<|im_start|>user\n{instruct}<|im_end|>\n`, when an instruction applies.
    pub instruct_ids: Option<Vec<u32>>,
    /// Lower-case language name, or "auto".
    pub language: String,
    /// Lower-case speaker name (CustomVoice).
    pub speaker: Option<String>,
    /// Layout B (whole text in the prompt, the API default) instead of A (one text token per frame).
    pub non_streaming: bool,
}

pub fn target_template(text: &str) -> String {
    format!("<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n")
}

pub fn instruct_template(instruct: &str) -> String {
    format!("<|im_start|>user\n{instruct}<|im_end|>\n")
}

/// Builds the prefill rows exactly as the official `generate` (spec §2.6, layouts A and B).
pub fn build_prompt(cfg: &TtsConfig, p: &PromptInput) -> Result<Prompt> {
    let t = &cfg.talker_config;
    let ids = &p.input_ids;
    if ids.len() < 8 {
        return Err(Error::invalid("the tokenized text is too short for the chat template"));
    }
    let (pad, bos, eos) = (cfg.tts_pad_token_id, cfg.tts_bos_token_id, cfg.tts_eos_token_id);
    let text_tokens = &ids[3..ids.len() - 5];
    if text_tokens.is_empty() {
        return Err(Error::invalid("the text has no tokens"));
    }

    // Language id: "auto" → none, unless the speaker speaks a dialect (Chinese or auto).
    let mut language_id = if p.language == "auto" {
        None
    } else {
        Some(*t.codec_language_id.get(&p.language).ok_or_else(|| {
            Error::invalid(format!(
                "language `{}` is not supported by this model (supported: {})",
                p.language,
                cfg.languages().join(", ")
            ))
        })?)
    };
    let mut speaker_id = None;
    if let Some(s) = &p.speaker {
        speaker_id = Some(
            t.spk_id
                .get(s)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "speaker `{s}` is not supported by this model (supported: {})",
                        cfg.speakers().join(", ")
                    ))
                })?
                .id(),
        );
        if let Some(Dialect::Name(d)) = t.spk_is_dialect.get(s) {
            if p.language == "chinese" || p.language == "auto" {
                language_id = Some(t.codec_language_id[d]);
            }
        }
    }

    // Codec prefix K: think/nothink tags, optional speaker, then pad, bos.
    let mut k: Vec<u32> = match language_id {
        None => vec![t.codec_nothink_id, t.codec_think_bos_id, t.codec_think_eos_id],
        Some(l) => vec![t.codec_think_id, t.codec_think_bos_id, l, t.codec_think_eos_id],
    };
    k.extend(speaker_id);
    k.extend([t.codec_pad_id, t.codec_bos_id]);
    let m = k.len();

    let mut rows = Vec::new();
    if let Some(ins) = &p.instruct_ids {
        rows.extend(ins.iter().map(|&id| PromptRow { text: Some(id), codec: None }));
    }
    rows.extend(ids[..3].iter().map(|&id| PromptRow { text: Some(id), codec: None }));
    for (i, &c) in k[..m - 1].iter().enumerate() {
        rows.push(PromptRow { text: Some(if i < m - 2 { pad } else { bos }), codec: Some(c) });
    }
    let trailing = if p.non_streaming {
        rows.extend(text_tokens.iter().map(|&id| PromptRow { text: Some(id), codec: Some(t.codec_pad_id) }));
        rows.push(PromptRow { text: Some(eos), codec: Some(t.codec_pad_id) });
        rows.push(PromptRow { text: Some(pad), codec: Some(t.codec_bos_id) });
        vec![pad]
    } else {
        rows.push(PromptRow { text: Some(text_tokens[0]), codec: Some(t.codec_bos_id) });
        let mut tr: Vec<u32> = text_tokens[1..].to_vec();
        tr.push(eos);
        tr
    };
    Ok(Prompt { rows, trailing })
}

/// A conservative cap on frames for a text: about 3× its expected spoken duration plus 2 s.
/// Latin-script words take ~0.4 s; CJK characters (each a syllable) ~0.3 s; digits ~0.3 s.
pub fn auto_cap_frames(text: &str) -> u32 {
    let mut seconds = 0.0f32;
    let mut in_word = false;
    for ch in text.chars() {
        let cjk = matches!(ch as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF);
        if cjk || ch.is_ascii_digit() {
            seconds += 0.3;
            in_word = false;
        } else if ch.is_alphanumeric() {
            if !in_word {
                seconds += 0.4;
            }
            in_word = true;
        } else {
            if matches!(ch, ',' | '.' | ';' | ':' | '!' | '?' | '，' | '。' | '！' | '？') {
                seconds += 0.2;
            }
            in_word = false;
        }
    }
    ((3.0 * seconds + 2.0) * FRAME_RATE).ceil() as u32 + 1
}
