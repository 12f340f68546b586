#![no_main]
//! The `safetensors_header` fuzz target: see fuzz/harness/safetensors_header.rs (shared with the corpus replay in
//! tests/fuzz_corpus.rs).

#[allow(dead_code)]
#[path = "../harness/fixtures.rs"]
mod fixtures;
#[allow(dead_code)]
#[path = "../../src/bin/voxkit/random_checkpoint.rs"]
mod random_checkpoint;
#[path = "../harness/safetensors_header.rs"]
mod safetensors_header;

libfuzzer_sys::fuzz_target!(|data: &[u8]| safetensors_header::run(data));
