//! The Qwen2 byte-level BPE text tokenizer shared by Qwen3-TTS and Qwen3-ASR.
//!
//! Official checkpoint folders ship `vocab.json`, `merges.txt` and `tokenizer_config.json` but no
//! `tokenizer.json`: transformers builds its fast tokenizer from those files with
//! `convert_slow_tokenizer.Qwen2Converter`. [`TextTokenizer`] builds the same pipeline with the
//! `tokenizers` crate (the library behind transformers' fast tokenizers), piece by piece:
//!
//! 1. added tokens from `tokenizer_config.json`'s `added_tokens_decoder` (`<|im_start|>`,
//!    `<tts_pad>`, …) are matched verbatim in the raw text first, special or not, and keep the
//!    ids the config gives them;
//! 2. the rest is NFC-normalized;
//! 3. split by the Qwen2 regex (pieces kept, "isolated"), then mapped to byte-level symbols
//!    (`ByteLevel`, no prefix space, no regex of its own);
//! 4. each piece is BPE-merged by `merges.txt` rank; there is no unknown token and no byte
//!    fallback, since all 256 byte symbols are in the vocabulary.
//!
//! Decoding joins the tokens and maps the byte symbols back to bytes (`ByteLevel` decoder);
//! invalid UTF-8 (a multi-byte character cut between ids) becomes U+FFFD, as in transformers.
//!
//! Spec: `qwen3-tts.md` §2.5 and §2.8. Golden ids from the official tokenizer:
//! `tests/fixtures/tokenizer/golden.json`, made by `tools/parity/tokenizer_golden.py`.

use std::collections::HashMap;
use std::fmt::Display;
use std::path::Path;

use serde::Deserialize;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::error::{Error, ErrorKind, Result};

/// The pre-tokenizer's split regex (`tokenization_qwen2.py::PRETOKENIZE_REGEX`).
pub const QWEN2_SPLIT_REGEX: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The regex transformers 4.57.3 substitutes when a tokenizer is loaded with
/// `fix_mistral_regex=True` from a local folder whose `config.json` has no `transformers_version`
/// or one in (4.57.2, 5.0.0) (`PreTrainedTokenizerBase._patch_mistral_regex`). qwen-tts passes
/// that flag, so such a local checkpoint is tokenized with this regex instead.
pub const MISTRAL_FIXED_SPLIT_REGEX: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Which split regex the pre-tokenizer uses. The two differ on mixed-case words (the fixed one
/// splits CamelCase and "McDonald's"), on some letters with combining marks (Thai) and on a `/`
/// after punctuation; 4 of the 92 golden cases tokenize differently.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SplitRegex {
    /// The Qwen2 regex: what the official tokenizer uses loaded by Hub id, or from a folder whose
    /// config.json does not trigger transformers' mistral patch.
    #[default]
    Qwen2,
    /// The "fixed mistral" regex (see [`MISTRAL_FIXED_SPLIT_REGEX`]).
    MistralFixed,
}

impl SplitRegex {
    /// The regex the official packages end up using for a checkpoint loaded from the folder
    /// `dir`: qwen-tts / qwen-asr load their processor from a local path with
    /// `fix_mistral_regex=True`, and transformers 4.57 then swaps in the mistral-fixed regex unless
    /// the folder's `config.json` shows a transformers version ≥ 5.0.0, or one ≤ 4.57.2 together
    /// with a non-mistral `model_type` (`_patch_mistral_regex`). No `config.json`: no swap.
    pub fn for_checkpoint(dir: &Path) -> Result<SplitRegex> {
        let path = dir.join("config.json");
        let Ok(text) = std::fs::read_to_string(&path) else { return Ok(SplitRegex::Qwen2) };
        let cfg: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::new(ErrorKind::ModelLoad, format!("{}: {e}", path.display())))?;
        let version = cfg.get("transformers_version").and_then(|v| v.as_str()).map(version_key);
        let model_type = cfg.get("model_type").and_then(|v| v.as_str());
        const MISTRAL_TYPES: [&str; 5] = ["mistral", "mistral3", "voxtral", "ministral", "pixtral"];
        Ok(match version {
            Some(v) if v <= version_key("4.57.2") => match model_type {
                Some(t) if !MISTRAL_TYPES.contains(&t) => SplitRegex::Qwen2,
                _ => SplitRegex::MistralFixed,
            },
            Some(v) if v >= version_key("5.0.0") => SplitRegex::Qwen2,
            _ => SplitRegex::MistralFixed,
        })
    }

    pub fn pattern(self) -> &'static str {
        match self {
            SplitRegex::Qwen2 => QWEN2_SPLIT_REGEX,
            SplitRegex::MistralFixed => MISTRAL_FIXED_SPLIT_REGEX,
        }
    }
}

/// One entry of `added_tokens_decoder`. Missing flags take the defaults transformers gives an
/// `AddedToken`.
#[derive(Deserialize)]
struct AddedTokenEntry {
    content: String,
    #[serde(default)]
    special: bool,
    #[serde(default)]
    lstrip: bool,
    #[serde(default)]
    rstrip: bool,
    #[serde(default)]
    single_word: bool,
    normalized: Option<bool>,
}

#[derive(Deserialize)]
struct TokenizerConfig {
    #[serde(default)]
    added_tokens_decoder: HashMap<String, AddedTokenEntry>,
}

/// The Qwen2 text tokenizer of a checkpoint folder. Cheap to share: encoding and decoding take
/// `&self` and may run on several threads at once.
pub struct TextTokenizer {
    inner: Tokenizer,
}

/// A version string as a comparable key: `4.57.3` → (4, 57, 3, 1); a pre-release such as
/// `4.57.0.dev0` or `5.0.0rc1` sorts just below its release (last element 0).
fn version_key(v: &str) -> (u32, u32, u32, u32) {
    let mut nums = [0u32; 3];
    let mut release = 1;
    for (i, part) in v.split('.').enumerate() {
        let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
        if i < 3 {
            nums[i] = digits.parse().unwrap_or(0);
        }
        if digits.len() != part.len() || i >= 3 {
            release = 0;
        }
    }
    (nums[0], nums[1], nums[2], release)
}

impl TextTokenizer {
    /// Builds the tokenizer from `dir/vocab.json`, `dir/merges.txt` and
    /// `dir/tokenizer_config.json`, with the Qwen2 split regex.
    pub fn from_dir(dir: &Path) -> Result<TextTokenizer> {
        TextTokenizer::from_dir_with(dir, SplitRegex::Qwen2)
    }

    /// As [`TextTokenizer::from_dir`], with the chosen split regex.
    pub fn from_dir_with(dir: &Path, regex: SplitRegex) -> Result<TextTokenizer> {
        let (vocab_path, merges_path, config_path) =
            (dir.join("vocab.json"), dir.join("merges.txt"), dir.join("tokenizer_config.json"));
        let vocab = read_vocab(&vocab_path)?;
        let merges = read_merges(&merges_path)?;
        let added = read_added_tokens(&config_path)?;

        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| load_error(&merges_path, format!("does not fit vocab.json: {e}")))?;

        let split = Split::new(SplitPattern::Regex(regex.pattern().into()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| Error::internal(format!("the {regex:?} split regex does not compile: {e}")))?;
        // One `ByteLevel` plays three parts, as in the converter: the byte → symbol mapping after the
        // split, a post-processor that only adjusts offsets (it adds no token), and the decoder.
        let byte_level = ByteLevel::default().add_prefix_space(false).use_regex(false);

        let mut inner = Tokenizer::new(bpe);
        inner
            .with_normalizer(Some(NFC))
            .with_pre_tokenizer(Some(Sequence::new(vec![split.into(), byte_level.into()])))
            .with_post_processor(Some(byte_level.trim_offsets(false)))
            .with_decoder(Some(byte_level));

        // Added in id order, as transformers does; each must land on the id the config gives it.
        // A gap in the ids would silently shift every later token (transformers gives an added
        // token the next free id), so it is refused instead.
        for (id, entry) in added {
            let token = AddedToken::from(entry.content.clone(), entry.special)
                .single_word(entry.single_word)
                .lstrip(entry.lstrip)
                .rstrip(entry.rstrip)
                .normalized(entry.normalized.unwrap_or(!entry.special));
            if entry.special {
                inner.add_special_tokens(&[token]);
            } else {
                inner.add_tokens(&[token]);
            }
            let got = inner.token_to_id(&entry.content);
            if got != Some(id) {
                return Err(load_error(
                    &config_path,
                    format!(
                        "added token {:?} is declared with id {id} but would get {got:?}; added token ids must \
                         follow the vocabulary without gaps",
                        entry.content
                    ),
                ));
            }
        }
        Ok(TextTokenizer { inner })
    }

    /// Token ids of `text`, added tokens recognised; no BOS/EOS is added (Qwen adds none).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode_fast(text, true)
            .map_err(|e| Error::invalid(format!("text could not be tokenized: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`, added tokens included verbatim. An id outside the vocabulary is an
    /// error (transformers would drop it silently; here it can only be a bug upstream).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        if let Some(&bad) = ids.iter().find(|&&id| self.inner.id_to_token(id).is_none()) {
            return Err(Error::invalid(format!("token id {bad} is not in the vocabulary ({} ids)", self.vocab_size())));
        }
        self.inner.decode(ids, false).map_err(|e| Error::internal(format!("decoding failed: {e}")))
    }

    /// The text of generated `ids` without the special added tokens (`<|im_end|>`,
    /// `<|audio_pad|>`, …), as transformers' `decode(skip_special_tokens=True,
    /// clean_up_tokenization_spaces=False)`; non-special added tokens such as `<asr_text>` stay.
    /// Ids past the tokenizer (the embedding has 151,936 rows, the tokenizer fewer) are skipped,
    /// as the official tokenizer skips them.
    pub fn decode_skip_special(&self, ids: &[u32]) -> Result<String> {
        let known: Vec<u32> = ids.iter().copied().filter(|&id| self.inner.id_to_token(id).is_some()).collect();
        self.inner.decode(&known, true).map_err(|e| Error::internal(format!("decoding failed: {e}")))
    }

    /// The id of one token: an added token's content (`<tts_pad>`) or a vocabulary entry in its
    /// byte-level spelling (`"Ċ"` for "\n", `"Ġthe"` for " the").
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Number of ids, added tokens included (transformers' `len(tokenizer)`: 151,676 for
    /// Qwen3-TTS; the model's embedding has more rows, 151,936).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

fn load_error(file: &Path, what: impl Display) -> Error {
    Error::new(ErrorKind::ModelLoad, format!("tokenizer file {}: {what}", file.display()))
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| load_error(path, format!("cannot be read: {e}")))
}

/// `vocab.json`: token (byte-level spelling) → id.
fn read_vocab(path: &Path) -> Result<Vocab> {
    let map: HashMap<String, u32> = serde_json::from_str(&read_text(path)?)
        .map_err(|e| load_error(path, format!("is not a token → id map: {e}")))?;
    if map.is_empty() {
        return Err(load_error(path, "is empty"));
    }
    Ok(map.into_iter().collect())
}

/// `merges.txt`: one "left right" pair per line, highest priority first. As transformers reads
/// it: an optional `#version:` first line and blank lines are skipped (the official Qwen3-TTS
/// file has no header; other Qwen releases have one), CRLF line ends are accepted.
fn read_merges(path: &Path) -> Result<Merges> {
    let text = read_text(path)?;
    let mut merges = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (i == 0 && line.starts_with("#version:")) {
            continue;
        }
        match line.split_once(' ') {
            Some((left, right)) if !left.is_empty() && !right.is_empty() && !right.contains(' ') => {
                merges.push((left.to_owned(), right.to_owned()));
            }
            _ => {
                return Err(load_error(path, format!("line {} is not a \"left right\" pair: {line:?}", i + 1)));
            }
        }
    }
    if merges.is_empty() {
        return Err(load_error(path, "has no merges"));
    }
    Ok(merges)
}

/// `tokenizer_config.json`'s `added_tokens_decoder`, sorted by id.
fn read_added_tokens(path: &Path) -> Result<Vec<(u32, AddedTokenEntry)>> {
    let config: TokenizerConfig =
        serde_json::from_str(&read_text(path)?).map_err(|e| load_error(path, format!("is not valid: {e}")))?;
    let mut added = Vec::with_capacity(config.added_tokens_decoder.len());
    for (key, entry) in config.added_tokens_decoder {
        let id = key
            .parse::<u32>()
            .map_err(|_| load_error(path, format!("added_tokens_decoder key {key:?} is not a token id")))?;
        added.push((id, entry));
    }
    added.sort_by_key(|(id, _)| *id);
    Ok(added)
}
