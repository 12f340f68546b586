#![no_main]
//! The `abi_requests` fuzz target: see fuzz/harness/abi_requests.rs (shared with the corpus replay in
//! tests/fuzz_corpus.rs).

#[path = "../harness/abi_requests.rs"]
mod abi_requests;
#[allow(dead_code)]
#[path = "../harness/fixtures.rs"]
mod fixtures;
#[allow(dead_code)]
#[path = "../../src/bin/voxkit/random_checkpoint.rs"]
mod random_checkpoint;

libfuzzer_sys::fuzz_target!(|data: &[u8]| abi_requests::run(data));
