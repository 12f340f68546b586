//! Loading: checkpoint weights are memory-mapped and viewed in place (not copied), with a copy
//! only where a tensor's bytes are not aligned for its dtype.

use std::path::{Path, PathBuf};

use voxkit::models::weights::Checkpoint;

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("voxkit-loading-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn checkpoint_weights_are_mapped_not_copied() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asr/tiny");
    let mut ck = Checkpoint::open(&dir.join("model.safetensors")).unwrap();
    let names = ck.remaining();
    assert!(names.len() > 20, "{} tensors", names.len());
    for name in names {
        let w = ck.take_any(&name).unwrap();
        assert!(w.is_mapped(), "`{name}` ({:?}, {:?}) was copied", w.dtype(), w.shape());
    }
}

/// A hand-written file whose f32 tensor starts 2 bytes into the data (after a 1-element bf16
/// one): it cannot be viewed as f32 in place, so it is copied, with the same values.
#[test]
fn a_misaligned_tensor_is_copied_with_the_same_values() {
    let dir = temp("misaligned");
    let header = r#"{"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}}"#;
    let mut header = header.as_bytes().to_vec();
    while !(8 + header.len()).is_multiple_of(8) {
        header.push(b' ');
    }
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&header);
    file.extend_from_slice(&half::bf16::from_f32(1.5).to_bits().to_le_bytes());
    file.extend_from_slice(&2.25f32.to_le_bytes());
    file.extend_from_slice(&(-7.0f32).to_le_bytes());
    let path = dir.join("model.safetensors");
    std::fs::write(&path, file).unwrap();
    let mut ck = Checkpoint::open(&path).unwrap();
    let a = ck.take_any("a").unwrap();
    let b = ck.take_any("b").unwrap();
    assert!(a.is_mapped(), "the bf16 tensor is aligned and viewed in place");
    assert!(!b.is_mapped(), "the misaligned f32 tensor must be copied");
    assert_eq!(a.to_f32(), vec![1.5]);
    assert_eq!(b.to_f32(), vec![2.25, -7.0]);
    drop(ck);
    let _ = std::fs::remove_dir_all(&dir);
}
