//! Qwen3-TTS prompts (spec §2.6): the official API's row layouts — A and B, and for cloned voices
//! the in-context tails C and D — the chat templates, and the automatic frame cap for a text.

use crate::error::{Error, Result};
use crate::models::tts_config::{Dialect, TtsConfig};

/// Frames per second of the 12 Hz codec (80 ms frames).
pub const FRAME_RATE: f32 = 12.5;

/// What a prompt row's codec track holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodecRow {
    /// The talker's codec embedding of an id (control tokens, speakers, languages).
    Id(u32),
    /// The cloned voice's x-vector, as it is (Base checkpoints).
    Speaker,
    /// The sum of the 16 code embeddings of reference frame k (in-context cloning).
    Reference(usize),
}

/// One prompt row: a text-track token and/or a codec-track row, summed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PromptRow {
    pub text: Option<u32>,
    pub codec: Option<CodecRow>,
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
    /// A cloned voice: its x-vector takes the speaker's place.
    pub voice: Option<VoicePrompt>,
}

/// What a cloned voice adds to a prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoicePrompt {
    /// In-context cloning: ids of `<|im_start|>assistant\n{ref_text}<|im_end|>\n` and the
    /// reference's frame count; `None` for x-vector-only cloning.
    pub reference: Option<(Vec<u32>, usize)>,
}

pub fn target_template(text: &str) -> String {
    format!("<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n")
}

pub fn reference_template(ref_text: &str) -> String {
    format!("<|im_start|>assistant\n{ref_text}<|im_end|>\n")
}

pub fn instruct_template(instruct: &str) -> String {
    format!("<|im_start|>user\n{instruct}<|im_end|>\n")
}

/// Builds the prefill rows exactly as the official `generate` (spec §2.6, layouts A to D).
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
        if let Some(Dialect::Name(d)) = t.spk_is_dialect.get(s)
            && (p.language == "chinese" || p.language == "auto")
        {
            language_id = Some(t.codec_language_id[d]);
        }
    }

    // Codec prefix K: think/nothink tags, optional speaker, then pad, bos.
    let id = CodecRow::Id;
    let mut k: Vec<CodecRow> = match language_id {
        None => vec![id(t.codec_nothink_id), id(t.codec_think_bos_id), id(t.codec_think_eos_id)],
        Some(l) => vec![id(t.codec_think_id), id(t.codec_think_bos_id), id(l), id(t.codec_think_eos_id)],
    };
    k.extend(speaker_id.map(id));
    if p.voice.is_some() {
        k.push(CodecRow::Speaker);
    }
    k.extend([id(t.codec_pad_id), id(t.codec_bos_id)]);
    let m = k.len();

    let mut rows = Vec::new();
    if let Some(ins) = &p.instruct_ids {
        rows.extend(ins.iter().map(|&id| PromptRow { text: Some(id), codec: None }));
    }
    rows.extend(ids[..3].iter().map(|&id| PromptRow { text: Some(id), codec: None }));
    for (i, &c) in k[..m - 1].iter().enumerate() {
        rows.push(PromptRow { text: Some(if i < m - 2 { pad } else { bos }), codec: Some(c) });
    }
    let (codec_pad, codec_bos) = (Some(id(t.codec_pad_id)), Some(id(t.codec_bos_id)));
    if let Some((ref_ids, frames)) = p.voice.as_ref().and_then(|v| v.reference.as_ref()) {
        // In-context cloning (tails C and D): the text track X is the reference transcript, the
        // text and tts_eos; the codec track Y is codec_bos and the reference frames.
        if ref_ids.len() < 6 {
            return Err(Error::invalid("the reference transcript has no tokens"));
        }
        let x: Vec<u32> = ref_ids[3..ref_ids.len() - 2].iter().chain(text_tokens).copied().chain([eos]).collect();
        let y: Vec<Option<CodecRow>> =
            std::iter::once(codec_bos).chain((0..*frames).map(|f| Some(CodecRow::Reference(f)))).collect();
        let trailing = if p.non_streaming {
            rows.extend(x.iter().map(|&id| PromptRow { text: Some(id), codec: codec_pad }));
            rows.extend(y.iter().map(|&c| PromptRow { text: Some(pad), codec: c }));
            vec![pad]
        } else {
            let text_at = |i: usize| Some(x.get(i).copied().unwrap_or(pad));
            rows.extend(y.iter().enumerate().map(|(i, &c)| PromptRow { text: text_at(i), codec: c }));
            if x.len() > y.len() { x[y.len()..].to_vec() } else { vec![pad] }
        };
        return Ok(Prompt { rows, trailing });
    }
    let trailing = if p.non_streaming {
        rows.extend(text_tokens.iter().map(|&id| PromptRow { text: Some(id), codec: codec_pad }));
        rows.push(PromptRow { text: Some(eos), codec: codec_pad });
        rows.push(PromptRow { text: Some(pad), codec: codec_bos });
        vec![pad]
    } else {
        rows.push(PromptRow { text: Some(text_tokens[0]), codec: codec_bos });
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
