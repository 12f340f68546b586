//! Regressions for what the fuzz targets (fuzz/, `scripts/fuzz.sh`) found: each test replays the
//! input that failed, in the form the library takes it. The raw inputs are also kept in
//! `fuzz/corpus/<target>/` (`crash-*`), which `tests/fuzz_corpus.rs` replays through the harnesses.

use std::path::PathBuf;

use voxkit::models::weights;

/// The CLI's WAV reader (a CLI module, not in the library).
#[allow(dead_code)]
#[path = "../src/bin/voxkit/wav.rs"]
mod wav;

fn file_with(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("voxkit-fuzz-regressions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

/// `safetensors_header`: `weights::check_file` (run at engine create) accepted headers that the
/// safetensors parser of the load (`Checkpoint::open`, the first job) refuses, so a damaged
/// checkpoint passed create and failed its first job. The crash input had a tensor with `shape`
/// twice; a `__metadata__` that is not a map of strings is the same gap.
#[test]
fn check_file_refuses_what_the_load_refuses() {
    let crash: &[u8] = b"p\0\0\0\0\0\0\0{\"e\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsetype\":\"F32\",\"shapdtypo\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}   \0\0\x80?";
    let cases: [(&str, Vec<u8>); 4] = [
        ("crash", crash.to_vec()),
        ("twice", safetensors(r#"{"a":{"dtype":"F32","shape":[2],"shape":[1],"data_offsets":[0,4]}}"#, &[0; 4])),
        (
            "meta-number",
            safetensors(r#"{"__metadata__":5,"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, &[0; 4]),
        ),
        (
            "meta-nested",
            safetensors(r#"{"__metadata__":{"k":[1]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, &[0; 4]),
        ),
    ];
    for (name, bytes) in cases {
        let p = file_with(&format!("{name}.safetensors"), &bytes);
        assert!(weights::Checkpoint::open(&p).is_err(), "{name}: the load accepts it");
        let err = weights::check_file(&p).err().unwrap_or_else(|| panic!("{name}: check_file accepted it"));
        assert_eq!(err.kind, voxkit::ErrorKind::ModelLoad, "{name}");
        assert!(err.message.contains("header"), "{name}: {}", err.message);
    }
    // The same file written properly passes both.
    let good = file_with(
        "good.safetensors",
        &safetensors(r#"{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, &[0; 4]),
    );
    weights::check_file(&good).unwrap();
    weights::Checkpoint::open(&good).unwrap();
}

/// `wav_reader`: a WAVE_FORMAT_EXTENSIBLE header with 16-bit containers but 14 valid bits and no
/// samples was read as `Format::Int(14)`, a format hound can neither read a sample of nor write:
/// `voxkit enhance` accepted the file and failed only when writing its output. The reader now
/// takes the integer depths it can read and write back (8, 16, 24, 32) and refuses the rest.
#[test]
fn wav_depths_the_cli_cannot_write_back_are_refused_when_read() {
    let crash: &[u8] = b"RIFF\xd4\0\0\0WAVEfmt (\0\0\0\xfe\xff\x02\0\"V\0\0\x88X\x01\0\x04\0\x10\0\x16\0\x0e\0\x03\0\0\0\x01\0\0\0\0\0\x10\0\x80\0\0\xaa\08\x9bqdata\0\0\0\0\0\0\0\0";
    let err = wav::read_from(std::io::Cursor::new(crash), "crash").err().expect("a 14-bit file was accepted");
    assert!(err.contains("14-bit"), "{err}");
    // The same header with 16 valid bits reads, and writes back in its format.
    let mut ok = crash.to_vec();
    ok[38] = 16;
    let w = wav::read_from(std::io::Cursor::new(&ok), "ok").unwrap();
    assert_eq!(w.format, wav::Format::Int(16));
    let mut out = std::io::Cursor::new(Vec::new());
    wav::write_to(&mut out, "out", &w.samples, w.rate, w.channels, w.format).unwrap();
}
