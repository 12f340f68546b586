//! include/voxkit.h must be exactly what cbindgen generates from the code now.
//! `VOXKIT_BLESS=1 cargo test --test header` rewrites it.

use std::path::Path;

#[test]
fn header_is_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    check_prefixes(std::str::from_utf8(&generated).unwrap());
    let path = root.join("include/voxkit.h");
    if std::env::var_os("VOXKIT_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/voxkit.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/voxkit.h is stale or missing: run `VOXKIT_BLESS=1 cargo test --test header` and commit it"
    );
}

/// Every macro, type and function the header declares carries the vox prefix.
fn check_prefixes(header: &str) {
    for line in header.lines() {
        let line = line.trim();
        let name = if let Some(rest) = line.strip_prefix("#define ") {
            rest.split_whitespace().next()
        } else if let Some(rest) = line.strip_prefix("typedef ") {
            match rest.split_once("(*") {
                Some((_, fnptr)) => fnptr.split(')').next(),
                None => rest
                    .trim_end_matches(';')
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .rfind(|s| !s.is_empty()),
            }
        } else if line.contains('(') && !line.starts_with('*') && !line.starts_with('/') && !line.starts_with('#') {
            line.split('(').next().and_then(|s| s.split_whitespace().last()).map(|s| s.trim_start_matches('*'))
        } else {
            None
        };
        if let Some(name) = name {
            if name == "VOXKIT_H" || name.is_empty() {
                continue;
            }
            assert!(
                name.starts_with("vox_") || name.starts_with("Vox") || name.starts_with("VOX_"),
                "the header declares `{name}` without the vox prefix (line: {line})"
            );
        }
    }
}
