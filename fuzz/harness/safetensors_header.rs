//! `safetensors_header`: arbitrary bytes as a `model.safetensors` file, through the two readers the
//! engine uses on every checkpoint: `weights::check_file` (the header and range checks run at
//! engine create) and `weights::Checkpoint::open` (the mapped load of the first job).
//!
//! Oracle besides "no panic, no abort, bounded memory": a file `check_file` accepts must open —
//! the engine promises that a damaged checkpoint fails at create, not on the first job.

use voxkit::models::weights;

pub fn run(data: &[u8]) {
    let path = crate::fixtures::scratch("st").join("model.safetensors");
    // A fresh file each time (never rewrite a file a mapping might still see).
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, data).unwrap();
    let checked = weights::check_file(&path);
    let opened = weights::Checkpoint::open(&path);
    if let (Ok(()), Err(e)) = (&checked, &opened) {
        panic!("check_file accepted a file that Checkpoint::open refuses: {}", e.message);
    }
    if let Ok(ck) = opened {
        // Every tensor is readable to its last element.
        for name in ck.remaining() {
            let w = ck.peek(&name).unwrap();
            let n: usize = w.shape().iter().product();
            assert_eq!(w.to_f32().len(), n, "tensor {name}");
        }
    }
}
