//! The Qwen2 text tokenizer against the official one: every case of
//! `tests/fixtures/tokenizer/golden.json` (written by `tools/parity/tokenizer_golden.py` with
//! transformers 4.57.3) must give exactly the same ids and decoded text. The fixture is the real
//! tokenizer of the Qwen3-TTS checkpoints; when it is missing these tests fail, they never skip.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;
use voxkit::error::ErrorKind;
use voxkit::models::tokenizer::{SplitRegex, TextTokenizer};

#[derive(Deserialize)]
struct Golden {
    transformers_version: String,
    len_tokenizer: usize,
    token_ids: std::collections::BTreeMap<String, u32>,
    default: CaseSet,
    mistral_fixed: CaseSet,
    decode_cases: Vec<DecodeCase>,
}

#[derive(Deserialize)]
struct CaseSet {
    split_regex: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    text: String,
    ids: Vec<u32>,
    decoded: String,
    roundtrip: bool,
}

#[derive(Deserialize)]
struct DecodeCase {
    name: String,
    ids: Vec<u32>,
    decoded: String,
}

/// The fixture folder. Its absence is a failure: a skipped parity test proves nothing.
fn fixture() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer");
    for file in ["vocab.json", "merges.txt", "tokenizer_config.json", "golden.json"] {
        assert!(
            dir.join(file).is_file(),
            "tokenizer fixture {} is missing: the parity tests need the real Qwen tokenizer files \
             (see tests/fixtures/tokenizer/PROVENANCE.md)",
            dir.join(file).display()
        );
    }
    dir
}

fn golden() -> &'static Golden {
    static GOLDEN: OnceLock<Golden> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        let text = std::fs::read_to_string(fixture().join("golden.json")).expect("read golden.json");
        serde_json::from_str(&text).expect("parse golden.json")
    })
}

fn tokenizer(regex: SplitRegex) -> &'static TextTokenizer {
    static QWEN2: OnceLock<TextTokenizer> = OnceLock::new();
    static MISTRAL: OnceLock<TextTokenizer> = OnceLock::new();
    let cell = match regex {
        SplitRegex::Qwen2 => &QWEN2,
        SplitRegex::MistralFixed => &MISTRAL,
    };
    cell.get_or_init(|| TextTokenizer::from_dir_with(&fixture(), regex).expect("load the fixture tokenizer"))
}

/// Checks every case, then reports all mismatches at once.
fn check_cases(regex: SplitRegex, set: &CaseSet) {
    assert_eq!(set.split_regex, regex.pattern(), "golden.json was made with another split regex");
    let tok = tokenizer(regex);
    let mut failures = Vec::new();
    for case in &set.cases {
        let ids = tok.encode(&case.text).unwrap_or_else(|e| panic!("{}: encode failed: {e}", case.name));
        if ids != case.ids {
            failures.push(format!("{}: encode({:?})\n   got {ids:?}\n  want {:?}", case.name, case.text, case.ids));
        }
        let decoded = tok.decode(&case.ids).unwrap_or_else(|e| panic!("{}: decode failed: {e}", case.name));
        if decoded != case.decoded {
            failures.push(format!("{}: decode gave {decoded:?}, want {:?}", case.name, case.decoded));
        }
        if case.roundtrip && decoded != case.text {
            failures.push(format!("{}: round trip gave {decoded:?}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from transformers:\n{}",
        failures.len(),
        set.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn golden_is_from_the_pinned_transformers() {
    let g = golden();
    assert_eq!(g.transformers_version, "4.57.3");
    assert!(g.default.cases.len() >= 80, "golden.json lost cases");
    // The cases the spec calls out are present.
    for name in ["empty", "starts_with_newline", "target_english", "instruct", "camel_case", "contractions", "url"] {
        assert!(g.default.cases.iter().any(|c| c.name == name), "golden.json has no case {name}");
    }
}

#[test]
fn encodes_and_decodes_like_transformers_with_the_qwen2_regex() {
    check_cases(SplitRegex::Qwen2, &golden().default);
}

#[test]
fn encodes_and_decodes_like_transformers_with_the_mistral_fixed_regex() {
    check_cases(SplitRegex::MistralFixed, &golden().mistral_fixed);
}

#[test]
fn the_two_regexes_differ_where_expected() {
    let g = golden();
    let differ: Vec<&str> = g
        .default
        .cases
        .iter()
        .zip(&g.mistral_fixed.cases)
        .filter(|(a, b)| a.ids != b.ids)
        .map(|(a, _)| a.name.as_str())
        .collect();
    assert!(differ.contains(&"camel_case"), "{differ:?}");
    assert!(!differ.contains(&"english"), "{differ:?}");
}

#[test]
fn decodes_partial_and_special_id_lists_like_transformers() {
    let tok = tokenizer(SplitRegex::Qwen2);
    for case in &golden().decode_cases {
        assert_eq!(tok.decode(&case.ids).unwrap(), case.decoded, "{}", case.name);
    }
}

#[test]
fn vocab_size_and_special_ids() {
    let tok = tokenizer(SplitRegex::Qwen2);
    assert_eq!(tok.vocab_size(), golden().len_tokenizer);
    assert_eq!(tok.vocab_size(), 151_676);
    for (token, id) in &golden().token_ids {
        assert_eq!(tok.token_id(token), Some(*id), "{token:?}");
    }
    // Spec §2.4: the ids the Qwen3-TTS prompt is built from.
    assert_eq!(tok.token_id("<|im_start|>"), Some(151_644));
    assert_eq!(tok.token_id("<|im_end|>"), Some(151_645));
    assert_eq!(tok.token_id("assistant"), Some(77_091));
    assert_eq!(tok.token_id("user"), Some(872));
    assert_eq!(tok.token_id("\u{10a}"), Some(198)); // "\n" in byte-level spelling
    assert_eq!(tok.token_id("<tts_pad>"), Some(151_671));
    assert_eq!(tok.token_id("<tts_text_bos>"), Some(151_672));
    assert_eq!(tok.token_id("<tts_text_eod>"), Some(151_673));
    assert_eq!(tok.token_id("<no such token>"), None);
    // The §2.5 slicing: role prefix and suffix of the target template.
    let ids = tok.encode("<|im_start|>assistant\nHi.<|im_end|>\n<|im_start|>assistant\n").unwrap();
    assert_eq!(ids[..3], [151_644, 77_091, 198]);
    assert_eq!(ids[ids.len() - 5..], [151_645, 198, 151_644, 77_091, 198]);
}

#[test]
fn decode_rejects_an_id_outside_the_vocabulary() {
    let tok = tokenizer(SplitRegex::Qwen2);
    let err = tok.decode(&[9707, 151_676]).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert!(err.message.contains("151676"), "{}", err.message);
}

#[test]
fn long_and_pathological_inputs() {
    let tok = tokenizer(SplitRegex::Qwen2);
    // Long whitespace runs exercise the `\s+(?!\S)` backtracking.
    let spaces = format!("{}a", " ".repeat(20_000));
    let ids = tok.encode(&spaces).unwrap();
    assert_eq!(tok.decode(&ids).unwrap(), spaces);
    let newlines = "\n".repeat(5_000);
    assert_eq!(tok.decode(&tok.encode(&newlines).unwrap()).unwrap(), newlines);
    let digits = "7".repeat(10_000);
    assert_eq!(tok.encode(&digits).unwrap().len(), 10_000); // one token per digit
}

#[test]
fn concurrent_encoding_agrees() {
    let tok = tokenizer(SplitRegex::Qwen2);
    let cases = &golden().default.cases;
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for case in cases.iter().skip(t).step_by(2) {
                    assert_eq!(tok.encode(&case.text).unwrap(), case.ids, "{}", case.name);
                }
            });
        }
    });
}

#[test]
fn fixture_files_are_the_official_sizes() {
    let dir = fixture();
    let size = |f: &str| std::fs::metadata(dir.join(f)).unwrap().len();
    assert_eq!(size("vocab.json"), 2_776_833);
    assert_eq!(size("merges.txt"), 1_671_839); // LF line ends, no "#version" header
    let merges = std::fs::read(dir.join("merges.txt")).unwrap();
    assert!(!merges.contains(&b'\r'), "merges.txt must have LF line ends");
}

// --- errors, on small synthetic folders ---

/// A temporary folder with the given files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str, files: &[(&str, &str)]) -> TempDir {
        let dir = std::env::temp_dir().join(format!("voxkit-tokenizer-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, text) in files {
            std::fs::write(dir.join(file), text).unwrap();
        }
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const TINY_VOCAB: &str = r#"{"a": 0, "b": 1, "ab": 2, "\u0120": 3}"#;
const TINY_MERGES: &str = "#version: 0.2\na b\n";
const TINY_CONFIG: &str = r#"{"added_tokens_decoder": {"4": {"content": "<x>", "special": true}}}"#;

fn load_error(dir: &TempDir) -> voxkit::Error {
    match TextTokenizer::from_dir(&dir.0) {
        Ok(_) => panic!("loading {} should fail", dir.0.display()),
        Err(e) => e,
    }
}

#[test]
fn a_tiny_folder_loads() {
    let dir = TempDir::new(
        "tiny",
        &[("vocab.json", TINY_VOCAB), ("merges.txt", TINY_MERGES), ("tokenizer_config.json", TINY_CONFIG)],
    );
    let tok = TextTokenizer::from_dir(&dir.0).unwrap();
    assert_eq!(tok.encode("ab<x>a").unwrap(), [2, 4, 0]);
    assert_eq!(tok.vocab_size(), 5);
    assert_eq!(tok.decode(&[2, 4]).unwrap(), "ab<x>");
}

#[test]
fn a_missing_file_is_named() {
    for missing in ["vocab.json", "merges.txt", "tokenizer_config.json"] {
        let files: Vec<(&str, &str)> =
            [("vocab.json", TINY_VOCAB), ("merges.txt", TINY_MERGES), ("tokenizer_config.json", TINY_CONFIG)]
                .into_iter()
                .filter(|(f, _)| *f != missing)
                .collect();
        let dir = TempDir::new(&format!("missing-{missing}"), &files);
        let err = load_error(&dir);
        assert_eq!(err.kind, ErrorKind::ModelLoad, "{missing}: {err}");
        assert!(err.message.contains(missing), "{missing}: {}", err.message);
    }
}

#[test]
fn a_folder_without_merges_names_merges_txt() {
    // The real vocabulary and config, no merges.txt.
    let real = fixture();
    let vocab = std::fs::read_to_string(real.join("vocab.json")).unwrap();
    let config = std::fs::read_to_string(real.join("tokenizer_config.json")).unwrap();
    let dir = TempDir::new("no-merges", &[("vocab.json", &vocab), ("tokenizer_config.json", &config)]);
    let err = load_error(&dir);
    assert_eq!(err.kind, ErrorKind::ModelLoad);
    assert!(err.message.contains("merges.txt"), "{}", err.message);
}

/// Loads a folder of the given vocab.json, merges.txt and tokenizer_config.json and expects a
/// `ModelLoad` error naming `file`.
fn expect_error_naming(name: &str, vocab: &str, merges: &str, config: &str, file: &str) {
    let dir = TempDir::new(name, &[("vocab.json", vocab), ("merges.txt", merges), ("tokenizer_config.json", config)]);
    let err = load_error(&dir);
    assert_eq!(err.kind, ErrorKind::ModelLoad, "{name}: {err}");
    assert!(err.message.contains(file), "{name}: {}", err.message);
}

#[test]
fn corrupt_files_are_named() {
    expect_error_naming("bad-vocab", "{not json", TINY_MERGES, TINY_CONFIG, "vocab.json");
    expect_error_naming("empty-vocab", "{}", TINY_MERGES, TINY_CONFIG, "vocab.json");
    expect_error_naming("bad-merge-line", TINY_VOCAB, "a b\nab\n", TINY_CONFIG, "merges.txt");
    expect_error_naming("merge-out-of-vocab", TINY_VOCAB, "a c\n", TINY_CONFIG, "merges.txt");
    expect_error_naming("bad-config", TINY_VOCAB, TINY_MERGES, "[1, 2]", "tokenizer_config.json");
    expect_error_naming(
        "bad-added-id",
        TINY_VOCAB,
        TINY_MERGES,
        r#"{"added_tokens_decoder": {"x": {"content": "<x>"}}}"#,
        "tokenizer_config.json",
    );
    // Id 5 leaves a gap after the vocabulary (ids 0..=3): transformers would give the token id 4.
    let gap = r#"{"added_tokens_decoder": {"5": {"content": "<x>"}}}"#;
    expect_error_naming("added-id-gap", TINY_VOCAB, TINY_MERGES, gap, "tokenizer_config.json");
}

/// The split regex follows transformers' rule for checkpoints loaded from a local folder with
/// `fix_mistral_regex=True` (as qwen-tts and qwen-asr load them).
#[test]
fn split_regex_follows_the_official_local_folder_rule() {
    use voxkit::models::tokenizer::SplitRegex;
    let dir = std::env::temp_dir().join(format!("voxkit-regex-rule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let case = |config: Option<&str>| {
        let path = dir.join("config.json");
        match config {
            Some(c) => std::fs::write(&path, c).unwrap(),
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
        SplitRegex::for_checkpoint(&dir).unwrap()
    };
    assert_eq!(case(None), SplitRegex::Qwen2, "no config.json: no patch");
    assert_eq!(case(Some(r#"{"model_type": "qwen3_tts"}"#)), SplitRegex::MistralFixed, "no version: patched");
    assert_eq!(
        case(Some(r#"{"model_type": "qwen3_tts", "transformers_version": "4.57.3"}"#)),
        SplitRegex::MistralFixed
    );
    assert_eq!(case(Some(r#"{"model_type": "qwen3_tts", "transformers_version": "4.57.1"}"#)), SplitRegex::Qwen2);
    assert_eq!(
        case(Some(r#"{"transformers_version": "4.57.1"}"#)),
        SplitRegex::MistralFixed,
        "old version, no model_type"
    );
    assert_eq!(case(Some(r#"{"model_type": "mistral", "transformers_version": "4.50.0"}"#)), SplitRegex::MistralFixed);
    assert_eq!(case(Some(r#"{"model_type": "qwen3_tts", "transformers_version": "5.0.0"}"#)), SplitRegex::Qwen2);
    assert_eq!(
        case(Some(r#"{"model_type": "qwen3_tts", "transformers_version": "5.0.0rc1"}"#)),
        SplitRegex::MistralFixed,
        "a 5.0 pre-release is below 5.0.0"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Generated ids past the tokenizer's vocabulary (the model's embedding has more rows) are
/// skipped when decoding a transcript, as the official tokenizer does.
#[test]
fn transcript_decoding_skips_ids_past_the_vocabulary() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asr/tiny");
    let t = voxkit::models::tokenizer::TextTokenizer::from_dir(&dir).unwrap();
    let hello = t.encode("Hello").unwrap();
    let mut ids = hello.clone();
    ids.extend([151_900, 151_645]);
    ids.extend(&hello);
    assert_eq!(t.decode_skip_special(&ids).unwrap(), "HelloHello");
    let tag = t.token_id("<asr_text>").unwrap();
    assert_eq!(t.decode_skip_special(&[tag]).unwrap(), "<asr_text>");
}
