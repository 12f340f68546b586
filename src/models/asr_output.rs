//! Turning Qwen3-ASR's generated text into (language, transcript), exactly as the official
//! `parse_asr_output` and `detect_and_fix_repetitions` (qwen_asr/inference/utils.py) do, plus the
//! chunk merge rules of `transcribe` and the repetition guard used while decoding.
//!
//! Python strings index code points, so the ports below work on `char`s.

/// The official clean-up threshold: runs longer than this are collapsed.
pub const REPETITION_THRESHOLD: usize = 20;
/// Longest repeated unit the clean-up looks for, in characters.
const MAX_PATTERN: usize = 20;

const ASR_TEXT_TAG: &str = "<asr_text>";
const LANG_PREFIX: &str = "language ";

/// Python's `str.isspace`: Unicode whitespace plus the ASCII information separators.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

/// Python's `str.splitlines()` (no line ends kept).
fn py_splitlines(s: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}' | '\u{2029}'
        );
        if is_break {
            lines.push(&s[start..i]);
            let mut next = i + c.len_utf8();
            if c == '\r'
                && let Some(&(j, '\n')) = chars.peek()
            {
                chars.next();
                next = j + 1;
            }
            start = next;
        }
    }
    if start < s.len() {
        lines.push(&s[start..]);
    }
    lines
}

/// `normalize_language_name`: first character upper case, the rest lower case ("cHINese" →
/// "Chinese"). `None` for an empty name.
pub fn normalize_language_name(language: &str) -> Option<String> {
    let s = py_strip(language);
    let mut chars = s.chars();
    let first = chars.next()?;
    Some(first.to_uppercase().chain(chars.as_str().to_lowercase().chars()).collect())
}

/// Any character repeated more than `thresh` times in a row becomes one.
fn fix_char_repeats(s: &[char], thresh: usize) -> Vec<char> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let mut count = 1;
        while i + count < s.len() && s[i + count] == s[i] {
            count += 1;
        }
        if count > thresh {
            out.push(s[i]);
        } else {
            out.extend_from_slice(&s[i..i + count]);
        }
        i += count;
    }
    out
}

/// The first run (scanning from the left) of a 1..=20-character unit repeated at least `thresh`
/// times becomes one unit; the rest of the text is cleaned the same way, recursively.
fn fix_pattern_repeats(s: &[char], thresh: usize) -> Vec<char> {
    let n = s.len();
    let min_repeat_chars = thresh * 2;
    if n < min_repeat_chars {
        return s.to_vec();
    }
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while i <= n - min_repeat_chars {
        for k in 1..=MAX_PATTERN {
            if i + k * thresh > n {
                break;
            }
            let pattern = &s[i..i + k];
            if (1..thresh).all(|rep| &s[i + rep * k..i + rep * k + k] == pattern) {
                let mut end = i + thresh * k;
                while end + k <= n && &s[end..end + k] == pattern {
                    end += k;
                }
                out.extend_from_slice(pattern);
                out.extend(fix_pattern_repeats(&s[end..], thresh));
                return out;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out.extend_from_slice(&s[i..]);
    out
}

/// `detect_and_fix_repetitions(text, threshold=20)`.
pub fn fix_repetitions(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let chars = fix_char_repeats(&chars, REPETITION_THRESHOLD);
    fix_pattern_repeats(&chars, REPETITION_THRESHOLD).into_iter().collect()
}

/// `parse_asr_output(raw, user_language)`: (language, text). A forced language is returned as
/// given and the whole output is the text; without the `<asr_text>` tag the whole output is text
/// and the language unknown (""); "language None" (no speech) gives an unknown language.
pub fn parse_asr_output(raw: &str, forced_language: Option<&str>) -> (String, String) {
    let s = py_strip(raw);
    if s.is_empty() {
        return (String::new(), String::new());
    }
    let s = fix_repetitions(s);
    if let Some(lang) = forced_language {
        return (lang.to_string(), s);
    }
    let Some((meta, text)) = s.split_once(ASR_TEXT_TAG) else {
        return (String::new(), py_strip(&s).to_string());
    };
    if meta.to_lowercase().contains("language none") {
        return (String::new(), py_strip(text).to_string());
    }
    let mut language = String::new();
    for line in py_splitlines(meta) {
        let line = py_strip(line);
        if line.is_empty() {
            continue;
        }
        if line.to_lowercase().starts_with(LANG_PREFIX) {
            // The prefix is ASCII, so its byte length is the same in the original line.
            if let Some(v) = normalize_language_name(&line[LANG_PREFIX.len()..]) {
                language = v;
            }
            break;
        }
    }
    (language, py_strip(text).to_string())
}

/// `merge_languages`: per-chunk languages joined by ",", empty ones and consecutive repeats
/// dropped.
pub fn merge_languages<S: AsRef<str>>(langs: &[S]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for l in langs {
        let l = py_strip(l.as_ref());
        if l.is_empty() || out.last() == Some(&l) {
            continue;
        }
        out.push(l);
    }
    out.join(",")
}

/// The repetition guard: true when `text` ends in a unit of 1..=20 characters repeated more than
/// `runs` times back to back. With `runs` past the clean-up threshold, the official clean-up
/// collapses the whole run to one unit however long it grows, so decoding can stop there without
/// changing the cleaned transcript of a runaway loop.
pub fn ends_in_repetition(text: &[char], runs: usize) -> bool {
    let n = text.len();
    for k in 1..=MAX_PATTERN {
        if k * (runs + 1) > n {
            break;
        }
        let unit = &text[n - k..];
        if (1..=runs).all(|r| &text[n - (r + 1) * k..n - r * k] == unit) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_official_formats() {
        assert_eq!(
            parse_asr_output("language English<asr_text>Hello world.", None),
            ("English".into(), "Hello world.".into())
        );
        assert_eq!(parse_asr_output("language None<asr_text>", None), ("".into(), "".into()));
        assert_eq!(parse_asr_output("  just text ", None), ("".into(), "just text".into()));
        assert_eq!(parse_asr_output("Hello", Some("English")), ("English".into(), "Hello".into()));
        assert_eq!(parse_asr_output("language cHINese\n<asr_text> 你好", None), ("Chinese".into(), "你好".into()));
        assert_eq!(parse_asr_output("", None), ("".into(), "".into()));
    }

    #[test]
    fn repetitions_are_collapsed_like_the_official_cleanup() {
        let s = format!("ok {}", "a".repeat(25));
        assert_eq!(fix_repetitions(&s), "ok a");
        // Exactly 20 of one char is kept (the rule is "more than 20").
        let s = "b".repeat(20);
        assert_eq!(fix_repetitions(&s), "b".repeat(20));
        let s = format!("start {} end", "ab ".repeat(20));
        assert_eq!(fix_repetitions(&s), "start ab  end");
        let s = format!("{}tail", "xyz".repeat(19));
        assert_eq!(fix_repetitions(&s), s);
    }

    #[test]
    fn merges_languages() {
        assert_eq!(merge_languages(&["Chinese", "English", "English", ""]), "Chinese,English");
        assert_eq!(merge_languages::<&str>(&[]), "");
    }

    #[test]
    fn guard_sees_runs_at_the_end_only() {
        let t: Vec<char> = format!("hi {}", "la ".repeat(26)).chars().collect();
        assert!(ends_in_repetition(&t, 25));
        assert!(!ends_in_repetition(&t, 26));
        let t: Vec<char> = format!("{}x", "la ".repeat(30)).chars().collect();
        assert!(!ends_in_repetition(&t, 25));
    }
}
