//! The model side of cloned voices (`seams::voice::Voice`): which checkpoint a voice belongs to.
//! (The encoders that make a voice from reference audio are `speaker_encoder` and
//! `codec_encoder`.)

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::models::weights::Checkpoint;
use crate::seams::voice::Fingerprint;

/// Prefix of the speaker encoder's tensors in a Base checkpoint.
pub const SPEAKER_ENCODER_PREFIX: &str = "speaker_encoder.";

/// The identity of a Base checkpoint as far as its voices are concerned: its `config.json`, its
/// codec's `config.json` and the speaker encoder's weights (what an x-vector and the reference
/// codes mean). Hashing the speaker encoder reads its tensors once (≈ 12 MB at 0.6B and 1.7B);
/// the codec is identified by its config only (one codec serves the whole 12 Hz family).
pub fn fingerprint(dir: &Path, ck: &Checkpoint) -> Result<Fingerprint> {
    let mut h = Sha256::new();
    h.update(b"voxkit voice fingerprint 1\0");
    for file in ["config.json", "speech_tokenizer/config.json"] {
        let bytes = std::fs::read(dir.join(file)).unwrap_or_default();
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    let mut names: Vec<String> = ck.remaining().into_iter().filter(|n| n.starts_with(SPEAKER_ENCODER_PREFIX)).collect();
    names.sort();
    for name in names {
        let w = ck.peek(&name).expect("listed by remaining");
        h.update(name.as_bytes());
        h.update(format!("{:?}{:?}", w.dtype(), w.shape()).as_bytes());
        h.update(w.stored_bytes());
    }
    Ok(h.finalize().into())
}
