#![no_main]
//! The `voice_bytes` fuzz target: see fuzz/harness/voice_bytes.rs (shared with the corpus replay in
//! tests/fuzz_corpus.rs).

#[path = "../harness/voice_bytes.rs"]
mod voice_bytes;

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_bytes::run(data));
