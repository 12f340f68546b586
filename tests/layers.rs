//! The import rule of docs/ARCHITECTURE.md: each layer of `src/` names only the layers below it.
//! Every `crate::<module>` path in a file's code (comments excluded) must be an allowed edge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Layer → the crate modules its files may name (besides their own).
const ALLOWED: &[(&str, &[&str])] = &[
    ("backend", &["error"]),
    ("dsp", &["backend", "error"]),
    ("error", &[]),
    ("logging", &["error"]),
    ("seams", &["backend", "dsp", "error"]),
    ("models", &["backend", "seams", "error"]),
    ("engine", &["models", "dsp", "seams", "backend", "error", "logging"]),
    ("ffi", &["engine", "seams", "backend", "error"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The layer of a file under `src/` (`src/engine/worker.rs` → `engine`, `src/error.rs` → `error`).
fn layer_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    Some(first.trim_end_matches(".rs").to_string())
}

/// The `crate::<module>` names used by a file's code, with line numbers.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.push((n + 1, name));
            }
            rest = after;
        }
        if code.contains("super::super") {
            out.push((n + 1, "super::super".into()));
        }
    }
    out
}

#[test]
fn no_layer_imports_an_upper_one() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut bad = Vec::new();
    let mut checked = 0;
    for f in files {
        let Some(layer) = layer_of(&src, &f) else { continue };
        if layer == "lib" || layer == "bin" {
            continue; // the crate root re-exports; the CLI sits on top
        }
        let Some(ok) = allowed.get(layer.as_str()) else {
            bad.push(format!("{}: layer `{layer}` is not in the import rule", f.display()));
            continue;
        };
        checked += 1;
        for (line, name) in crate_paths(&std::fs::read_to_string(&f).unwrap()) {
            if name != layer && !ok.contains(&name.as_str()) {
                bad.push(format!("{}:{line}: `{layer}` names `{name}`", f.display()));
            }
        }
    }
    assert!(checked > 30, "only {checked} files checked");
    assert!(bad.is_empty(), "imports against the layering:\n{}", bad.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_import() {
    let found = crate_paths("use crate::engine::model::AudioStream; // crate::ffi in a comment\n");
    assert_eq!(found, vec![(1, "engine".to_string())]);
}
