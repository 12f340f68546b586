#!/usr/bin/env python3
"""Golden token ids for voxkit's Qwen2 text tokenizer, produced by the official tokenizer.

Loads tests/fixtures/tokenizer/ (vocab.json, merges.txt, tokenizer_config.json; no tokenizer.json,
exactly like an official Qwen3-TTS checkpoint folder) with transformers' AutoTokenizer, which builds
Qwen2TokenizerFast through convert_slow_tokenizer.Qwen2Converter, and writes
tests/fixtures/tokenizer/golden.json:

  default        ids and decoded text for every case with the tokenizer as loaded from the fixture
                 folder (that folder has no config.json, so transformers' fix_mistral_regex patch
                 cannot apply: the default Qwen2 split regex);
  mistral_fixed  the same cases with the split regex transformers 4.57.3 substitutes when a local
                 checkpoint is loaded with fix_mistral_regex=True (what qwen-tts does) and its
                 config.json has no transformers_version or one in (4.57.2, 5.0.0). Obtained
                 through the real code path: a temporary copy of the folder plus such a config.json;
  decode_cases   decode() of id lists that are not whole encodings (split UTF-8 sequences, bare
                 special tokens).

Run with the versions qwen-tts 0.1.1 pins:

  python3 -m venv /tmp/venv-tok && /tmp/venv-tok/bin/pip install transformers==4.57.3
  /tmp/venv-tok/bin/python tools/parity/tokenizer_golden.py          # writes golden.json
  /tmp/venv-tok/bin/python tools/parity/tokenizer_golden.py --check  # compares, writes nothing

No network access is needed (local_files_only).
"""

import argparse
import hashlib
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "tokenizer"
GOLDEN = FIXTURE / "golden.json"
TRANSFORMERS_PIN = "4.57.3"

QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
MISTRAL_FIXED_REGEX = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def target(text):
    """Qwen3-TTS target-text template (qwen_tts/inference/qwen3_tts_model.py)."""
    return f"<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n"


def instruct(text):
    """Qwen3-TTS instruct template."""
    return f"<|im_start|>user\n{text}<|im_end|>\n"


def ref_text(text):
    """Qwen3-TTS ICL reference-text template."""
    return f"<|im_start|>assistant\n{text}<|im_end|>\n"


LONG_EN = (
    "The quick brown fox jumps over the lazy dog. Meanwhile, 42 engineers shipped version 3.7.1 "
    "of the speech engine on 2025-01-15, reducing latency by 37.5% (from 120ms to 75ms)."
)

CASES = [
    # --- scripts and languages ---
    ("english", "Hello, world! This is a test of the Qwen3 text-to-speech tokenizer."),
    ("english_long", LONG_EN),
    ("chinese", "你好，世界！今天天气很好，我们去公园散步吧。"),
    ("chinese_traditional", "語音合成技術讓機器開口說話。"),
    ("japanese", "こんにちは、世界。今日はいい天気ですね。カタカナも混ぜます。"),
    ("korean", "안녕하세요, 세계! 오늘 날씨가 좋네요."),
    ("german", "Grüße aus München! Die Straße ist schön, äöüß ÄÖÜ."),
    ("french_spanish", "Ça va? ¿Dónde está el niño? Élève naïve, café crème."),
    ("russian", "Привет, мир! Как дела? Ёлка и щётка."),
    ("arabic", "مرحبا بالعالم! كيف حالك اليوم؟"),
    ("greek", "Καλημέρα κόσμε"),
    ("vietnamese", "Tiếng Việt có dấu rất đẹp."),
    ("thai", "สวัสดีครับ ยินดีต้อนรับ"),
    ("hindi", "नमस्ते दुनिया, आप कैसे हैं?"),
    ("mixed_script", "Qwen3-TTS支持10种语言，包括English和日本語。"),
    # --- emoji ---
    ("emoji", "I love 🍕 and 🎉!"),
    ("emoji_zwj_skin", "👨‍👩‍👧‍👦 family 👍🏽 ok"),
    ("emoji_only", "😀😃😄"),
    # --- digits ---
    ("digits", "12345"),
    ("digits_long", "98765432109876543210"),
    ("digits_mixed", "In 2024, 1,000,000 people paid $1,234.56 (≈€1.100)."),
    ("decimal", "3.14159"),
    ("fullwidth_digits", "１２３ 全角"),
    # --- whitespace ---
    ("spaces_runs", "a  b   c    d"),
    ("spaces_leading", "   leading"),
    ("spaces_trailing", "trailing   "),
    ("spaces_only", "     "),
    ("single_space", " "),
    ("space_newline", "word \n next"),
    ("newlines", "line1\nline2\n\nline3\n\n\n"),
    ("newline_only", "\n"),
    ("newlines_only", "\n\n\n"),
    ("starts_with_newline", "\nHello"),
    ("starts_with_two_newlines", "\n\nHello there"),
    ("crlf", "a\r\nb\rc\r\n\r\n"),
    ("tabs", "\tindented\t\ttext\t"),
    ("tab_columns", "col1\tcol2\tcol3"),
    ("nbsp", "a\u00a0b"),
    ("ideographic_space", "\u3000全角スペース"),
    ("em_space", "a\u2003b"),
    ("zero_width_space", "a\u200bb"),
    ("vertical_tab_form_feed", "a\x0bb\x0cc"),
    ("nel_line_para_sep", "a\x85b\u2028c\u2029d"),
    ("info_separators", "a\x1cb\x1fc"),
    ("control_chars", "x\x00y\x01z\x7f"),
    ("mixed_whitespace_runs", "a \t \n \t b\n \n"),
    ("long_space_run", " " * 300 + "a"),
    ("long_newline_space_run", "\n \n" * 50 + "end"),
    # --- other number and letter classes (regex engines must agree on \p{L} and \p{N}) ---
    ("numbers_other", "Ⅻ ½ ² ٣ ௫ ⑦"),
    ("cjk_ext_b", "𠀀𠀁 𪜀"),
    ("recent_unicode", "𑼀𑼁 𛄲 🫨"),
    # --- case and contractions (the two split regexes differ here) ---
    ("camel_case", "CamelCaseWord HTTPServer iPhone XMLHttpRequest"),
    ("mixed_case", "ALLCAPS lowercase MiXeD Title Case"),
    ("contractions", "I'm, you're, he's, we've, they'll, I'd, don't, can't"),
    ("contractions_upper", "I'M YOU'RE HE'S WE'VE THEY'LL I'D DON'T"),
    ("apostrophes_other", "rock 'n' roll, McDonald's, O'Brien, it’s"),
    # --- slashes and punctuation ---
    ("url", "https://www.example.com/path/to/page?query=1&b=2#frag"),
    ("paths", "a/b/c ./run.sh --flag=/usr/local/bin/ C:\\Windows\\System32"),
    ("abbrev_slashes", "e.g./i.e./etc. and/or +/-"),
    ("punctuation_runs", "Wait... what?!?! -- yes!!!"),
    ("brackets", "(parenthesized) [brackets] {braces} <angle>"),
    ("punct_newline", "End.\nNext!\n\n"),
    ("code", "def f(x):\n    return x**2  # square\n"),
    ("email", "contact: user.name+tag@example.co.uk"),
    # --- normalization (NFC) ---
    ("nfc_decomposed_e", "e\u0301te\u0301"),
    ("nfc_angstrom", "A\u030angstro\u0308m"),
    ("nfc_hangul_jamo", "\u1100\u1161\u11a8"),
    ("nfc_ligature", "\ufb01ne"),
    # --- added (special) tokens ---
    ("chat_turn", "<|im_start|>assistant\nHello there.<|im_end|>\n"),
    ("tts_tokens", "<tts_pad><tts_text_bos><tts_text_eod><tts_text_bos_single>"),
    ("audio_tokens", "<|audio_start|><|audio_pad|><|audio_end|>"),
    ("endoftext", "<|endoftext|>"),
    ("think_tokens", "<think>\n\n</think>\n\n"),
    ("special_inside_text", "text<|im_end|>more text<tts_pad> tail"),
    ("special_spaces", " <|im_start|> spaced <|im_end|> "),
    ("partial_special", "<|im_start| and <tts_pad"),
    ("special_wrong_case", "<|IM_START|>"),
    ("fim_tool_tokens", "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|><tool_call>x</tool_call>"),
    ("vision_tokens", "<|vision_start|><|image_pad|><|vision_end|>"),
    # --- Qwen3-TTS templates ---
    ("target_english", target("Hello, this is a test.")),
    ("target_chinese", target("今天天气真不错。")),
    ("target_mixed_case", target("OpenAI's GPT and McDonald's HTTPServer.")),
    ("target_leading_newline", target("\nStarts with a newline.")),
    ("target_empty", target("")),
    ("ref_text", ref_text("This is the reference transcript.")),
    ("instruct", instruct("Speak in a warm, friendly tone, slightly faster than normal.")),
    ("instruct_chinese", instruct("用温柔的语气慢慢地说。")),
    ("instruct_empty", instruct("")),
    # --- edge cases ---
    ("empty", ""),
    ("single_char", "a"),
    ("single_cjk", "你"),
    ("replacement_char", "bad \ufffd byte"),
]


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def split_regex_of(tok):
    """The Regex pattern of the fast tokenizer's first pre-tokenizer (the Split), from its JSON."""
    spec = json.loads(tok.backend_tokenizer.to_str())
    pre = spec["pre_tokenizer"]
    assert pre["type"] == "Sequence", pre
    split = pre["pretokenizers"][0]
    assert split["type"] == "Split" and split["behavior"] == "Isolated", split
    return split["pattern"]["Regex"], spec


def run_cases(tok):
    out = []
    for name, text in CASES:
        ids = tok(text)["input_ids"]
        assert ids == tok.encode(text), name
        decoded = tok.decode(ids)
        out.append({"name": name, "text": text, "ids": ids, "decoded": decoded,
                    "roundtrip": decoded == text})
    return out


def load(path, **kwargs):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True, **kwargs)


def build():
    import tokenizers
    import transformers

    if transformers.__version__ != TRANSFORMERS_PIN:
        sys.exit(f"transformers {transformers.__version__} found; qwen-tts 0.1.1 pins {TRANSFORMERS_PIN}")

    # 1. The fixture folder as it is, loaded the way qwen-tts loads a checkpoint (with
    #    fix_mistral_regex=True). The folder has no config.json, so the patch does not apply.
    tok = load(FIXTURE, fix_mistral_regex=True)
    regex, spec = split_regex_of(tok)
    assert regex == QWEN2_REGEX, regex
    assert type(tok).__name__ == "Qwen2TokenizerFast", type(tok).__name__
    assert spec["normalizer"] == {"type": "NFC"}, spec["normalizer"]
    byte_level = spec["pre_tokenizer"]["pretokenizers"][1]
    assert byte_level["type"] == "ByteLevel" and not byte_level["add_prefix_space"]
    assert not byte_level["use_regex"], byte_level
    model = spec["model"]
    assert model["type"] == "BPE" and model["unk_token"] is None and not model["byte_fallback"]
    assert spec["decoder"]["type"] == "ByteLevel", spec["decoder"]
    default_cases = run_cases(tok)
    plain = load(FIXTURE)
    assert run_cases(plain) == default_cases, "fix_mistral_regex changed a folder without config.json"

    # 2. The same files next to a config.json that triggers the patch (model_type qwen3_tts, no
    #    transformers_version), loaded with fix_mistral_regex=True: transformers' own code path.
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
            shutil.copy(FIXTURE / name, tmp / name)
        (tmp / "config.json").write_text(json.dumps({"model_type": "qwen3_tts"}), encoding="utf-8")
        fixed = load(tmp, fix_mistral_regex=True)
        fixed_regex, _ = split_regex_of(fixed)
        assert fixed_regex == MISTRAL_FIXED_REGEX, fixed_regex
        assert getattr(fixed, "fix_mistral_regex", False) is True
        mistral_cases = run_cases(fixed)
        # Without the flag the same folder keeps the default regex (transformers only warns).
        unfixed = load(tmp)
        assert split_regex_of(unfixed)[0] == QWEN2_REGEX

    # 3. decode() of id lists that are not the encoding of any text.
    party = tok.encode(" 🎉")  # a space-merged first byte, then single-byte tokens
    assert len(party) >= 3, party
    ni = tok.encode("你")
    decode_ids = [
        ("partial_utf8_head", party[:-1]),
        ("partial_utf8_tail", party[-1:]),
        ("specials_only", [151644, 151671, 151672, 151673, 151645]),
        ("special_between_words", tok.encode("Hello") + [151671] + tok.encode(" world")),
        ("empty", []),
        ("cjk_single", ni),
    ]
    decode_cases = [{"name": n, "ids": ids, "decoded": tok.decode(ids)} for n, ids in decode_ids]

    names = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_start|>", "<|audio_end|>",
             "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>", "<tts_text_bos_single>", "<|audio_pad|>",
             "<think>", "</think>", "assistant", "user", "\u010a"]
    special_ids = {n: tok.convert_tokens_to_ids(n) for n in names}

    return {
        "generator": "tools/parity/tokenizer_golden.py",
        "transformers_version": transformers.__version__,
        "tokenizers_version": tokenizers.__version__,
        "python_tokenizer_class": type(tok).__name__,
        "fixture_sha256": {n: sha256(FIXTURE / n)
                           for n in ("vocab.json", "merges.txt", "tokenizer_config.json")},
        "len_tokenizer": len(tok),
        "base_vocab_size": tok.vocab_size,
        "token_ids": special_ids,
        "default": {
            "split_regex": regex,
            "how_loaded": "AutoTokenizer.from_pretrained(tests/fixtures/tokenizer, fix_mistral_regex=True)"
                          " -- the folder has no config.json, so the mistral patch is not applied",
            "cases": default_cases,
        },
        "mistral_fixed": {
            "split_regex": fixed_regex,
            "how_loaded": "AutoTokenizer.from_pretrained(<copy of the folder + config.json "
                          "{\"model_type\": \"qwen3_tts\"}>, fix_mistral_regex=True) -- patch applied",
            "cases": mistral_cases,
        },
        "decode_cases": decode_cases,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with golden.json instead of writing it")
    args = ap.parse_args()
    golden = build()
    text = json.dumps(golden, ensure_ascii=False, indent=1) + "\n"
    # One line per id list, so that a diff shows which case changed. Only arrays spread over lines
    # match (a JSON string holds no raw newline), so no text value is touched.
    text = re.sub(r"\[\n\s*(\d+(?:,\n\s*\d+)*)\n\s*\]",
                  lambda m: "[" + ", ".join(re.findall(r"\d+", m.group(1))) + "]", text)
    if args.check:
        if GOLDEN.read_text(encoding="utf-8") != text:
            sys.exit(f"{GOLDEN} differs from what the official tokenizer produces now")
        print(f"{GOLDEN} is up to date")
        return
    GOLDEN.write_text(text, encoding="utf-8")
    d, m = golden["default"]["cases"], golden["mistral_fixed"]["cases"]
    differ = [a["name"] for a, b in zip(d, m) if a["ids"] != b["ids"]]
    print(f"wrote {GOLDEN}: {len(d)} cases; the mistral-fixed regex differs on {len(differ)}: {differ}")


if __name__ == "__main__":
    main()
