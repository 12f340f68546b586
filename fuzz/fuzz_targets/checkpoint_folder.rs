#![no_main]
//! The `checkpoint_folder` fuzz target: see fuzz/harness/checkpoint_folder.rs (shared with the corpus replay in
//! tests/fuzz_corpus.rs).

#[path = "../harness/checkpoint_folder.rs"]
mod checkpoint_folder;
#[allow(dead_code)]
#[path = "../harness/fixtures.rs"]
mod fixtures;
#[allow(dead_code)]
#[path = "../../src/bin/voxkit/random_checkpoint.rs"]
mod random_checkpoint;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checkpoint_folder::run(data));
