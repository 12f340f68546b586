#![no_main]
//! The `wav_reader` fuzz target: see fuzz/harness/wav_reader.rs (shared with the corpus replay in
//! tests/fuzz_corpus.rs).

#[path = "../../src/bin/voxkit/wav.rs"]
mod wav;
#[path = "../harness/wav_reader.rs"]
mod wav_reader;

libfuzzer_sys::fuzz_target!(|data: &[u8]| wav_reader::run(data));
