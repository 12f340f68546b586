//! A cloned voice: what a Base checkpoint's encoders make of reference audio (the speaker
//! encoder's x-vector and, for in-context cloning, the reference transcript and the codec's codes
//! of the reference), made once and used by any number of TTS requests. Serialised to bytes so
//! that a host can ship voices as assets; a voice names the checkpoint it was made for.
//!
//! Byte format (little endian), version 1:
//! `b"VOXVOICE"`, u32 version, 32-byte model fingerprint, u32 x-vector length, the x-vector as
//! f32, u8 1 when a reference follows (0: x-vector only), then u32 transcript length + its UTF-8
//! bytes, u32 frames, u32 codes per frame, the codes as u32 (frame-major); finally the SHA-256 of
//! everything before it.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"VOXVOICE";
const VERSION: u32 = 1;
/// Bounds checked before anything is sized by a length read from bytes.
const MAX_XVECTOR: usize = 1 << 16;
/// A minute of speech is well under 2 KB of text.
pub const MAX_TRANSCRIPT_BYTES: usize = 16 << 10;
/// The longest reference accepted (`request::MAX_REFERENCE_SECONDS`, 60 s) at 12.5 frames per
/// second, plus a frame for rounding up.
pub const MAX_REFERENCE_FRAMES: usize = 751;
const MAX_GROUPS: usize = 64;

/// The identity of the checkpoint a voice was made for (a hash of its configs and encoders).
pub type Fingerprint = [u8; 32];

/// The reference part of an in-context (ICL) voice.
#[derive(Clone, Debug, PartialEq)]
pub struct VoiceReference {
    /// What is said in the reference audio.
    pub text: String,
    /// The codec's codes of the reference, one frame per 80 ms, `groups` codes each.
    pub codes: Vec<Vec<u32>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Voice {
    pub model: Fingerprint,
    /// The speaker encoder's output for the reference (`enc_dim` values).
    pub xvector: Vec<f32>,
    /// With a transcript: in-context cloning (the official ICL mode); without: x-vector only.
    pub reference: Option<VoiceReference>,
}

/// What a model's voices look like (`ModelSpec::voice`): checked at submit, before the job queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoiceSpec {
    /// The rate the encoders take (the engine resamples references to it).
    pub rate: u32,
    pub model: Fingerprint,
    /// x-vector length (the talker's hidden size).
    pub xvector: usize,
    /// Codes per reference frame, and the bound on every code (the codebook size).
    pub groups: usize,
    pub codebook: u32,
}

impl VoiceSpec {
    /// Whether `v` was made for this model and fits it (every code inside the codebook, frames
    /// as wide as the model's).
    pub fn check(&self, v: &Voice) -> Result<()> {
        if v.model != self.model {
            return Err(Error::invalid(format!(
                "the voice was made with another checkpoint (model {}; this one is {}): create it again with this model",
                short(&v.model),
                short(&self.model)
            )));
        }
        if v.xvector.len() != self.xvector {
            return Err(invalid(format!(
                "an x-vector of {} values; this model's have {}",
                v.xvector.len(),
                self.xvector
            )));
        }
        if let Some(r) = &v.reference {
            if r.codes.iter().any(|f| f.len() != self.groups) {
                return Err(invalid(format!("reference frames that do not hold {} codes", self.groups)));
            }
            if let Some(c) = r.codes.iter().flatten().find(|&&c| c >= self.codebook) {
                return Err(invalid(format!("a reference code {c} outside the codebook of {}", self.codebook)));
            }
        }
        Ok(())
    }
}

fn invalid(why: impl std::fmt::Display) -> Error {
    Error::invalid(format!("voice data: {why}"))
}

impl Voice {
    /// Checks the voice's own consistency (sizes, finite values, one frame width).
    pub fn validate(&self) -> Result<()> {
        if self.xvector.is_empty() || self.xvector.len() > MAX_XVECTOR {
            return Err(invalid(format!("x-vector of {} values", self.xvector.len())));
        }
        if self.xvector.iter().any(|v| !v.is_finite()) {
            return Err(invalid("the x-vector has a value that is not finite"));
        }
        if let Some(r) = &self.reference {
            if r.text.trim().is_empty() || r.text.len() > MAX_TRANSCRIPT_BYTES || r.text.contains('\0') {
                return Err(invalid("the reference transcript is empty, too long or holds a NUL"));
            }
            let groups = r.codes.first().map_or(0, |f| f.len());
            if r.codes.is_empty() || r.codes.len() > MAX_REFERENCE_FRAMES {
                return Err(invalid(format!("{} reference frames (1..={MAX_REFERENCE_FRAMES})", r.codes.len())));
            }
            if groups == 0 || groups > MAX_GROUPS || r.codes.iter().any(|f| f.len() != groups) {
                return Err(invalid("reference frames of unequal or impossible widths"));
            }
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64 + 4 * self.xvector.len());
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&self.model);
        b.extend_from_slice(&(self.xvector.len() as u32).to_le_bytes());
        for v in &self.xvector {
            b.extend_from_slice(&v.to_le_bytes());
        }
        match &self.reference {
            None => b.push(0),
            Some(r) => {
                b.push(1);
                b.extend_from_slice(&(r.text.len() as u32).to_le_bytes());
                b.extend_from_slice(r.text.as_bytes());
                let groups = r.codes.first().map_or(0, |f| f.len());
                b.extend_from_slice(&(r.codes.len() as u32).to_le_bytes());
                b.extend_from_slice(&(groups as u32).to_le_bytes());
                for c in r.codes.iter().flatten() {
                    b.extend_from_slice(&c.to_le_bytes());
                }
            }
        }
        let digest = Sha256::digest(&b);
        b.extend_from_slice(&digest);
        b
    }

    /// Reads what `to_bytes` wrote; anything else (another version, a truncated or altered
    /// file) is an `InvalidArgument` naming what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Voice> {
        if bytes.len() < MAGIC.len() + 4 + 32 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(invalid("not a voxkit voice (no VOXVOICE header)"));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(invalid(format!("format version {version}; this library reads version {VERSION}")));
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != digest {
            return Err(invalid("checksum mismatch (truncated or altered)"));
        }
        let mut r = Reader { b: body, at: 12 };
        let model: Fingerprint = r.take(32)?.try_into().expect("32 bytes");
        let n = r.len(MAX_XVECTOR, "x-vector length")?;
        let xvector = r.take(4 * n)?.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let reference = match r.take(1)?[0] {
            0 => None,
            1 => {
                let len = r.len(MAX_TRANSCRIPT_BYTES, "transcript length")?;
                let text = std::str::from_utf8(r.take(len)?).map_err(|_| invalid("the transcript is not UTF-8"))?;
                let frames = r.len(MAX_REFERENCE_FRAMES, "reference frames")?;
                let groups = r.len(MAX_GROUPS, "codes per frame")?;
                let codes: Vec<u32> = r
                    .take(4 * frames * groups)?
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                let codes = if groups == 0 { Vec::new() } else { codes.chunks(groups).map(<[u32]>::to_vec).collect() };
                Some(VoiceReference { text: text.to_string(), codes })
            }
            f => return Err(invalid(format!("reference flag {f}"))),
        };
        if r.at != body.len() {
            return Err(invalid(format!("{} bytes after the end", body.len() - r.at)));
        }
        let v = Voice { model, xvector, reference };
        v.validate()?;
        Ok(v)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| invalid("truncated"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn len(&mut self, max: usize, what: &str) -> Result<usize> {
        let v = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        if v > max {
            return Err(invalid(format!("{what} {v} is over the limit {max}")));
        }
        Ok(v)
    }
}

/// Hex of a fingerprint's first bytes, for messages.
pub fn short(f: &Fingerprint) -> String {
    f[..6].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn icl() -> Voice {
        Voice {
            model: [7; 32],
            xvector: vec![0.5, -1.25, 3.0],
            reference: Some(VoiceReference { text: "hello".into(), codes: vec![vec![1, 2, 3], vec![4, 5, 6]] }),
        }
    }

    #[test]
    fn bytes_round_trip_and_damage_is_refused() {
        for v in [icl(), Voice { reference: None, ..icl() }] {
            let b = v.to_bytes();
            assert_eq!(Voice::from_bytes(&b).unwrap(), v);
            for cut in [0, 10, b.len() - 1] {
                assert!(Voice::from_bytes(&b[..cut]).is_err(), "truncated at {cut}");
            }
            for i in [9, 20, 50, b.len() - 40] {
                let mut d = b.clone();
                d[i] ^= 0x10;
                assert!(Voice::from_bytes(&d).is_err(), "byte {i} flipped");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any voice round-trips; any damage to its bytes (a flipped byte, a cut, bytes appended,
        /// a length field rewritten with a valid checksum) is an error, never a panic.
        #[test]
        fn bytes_survive_any_damage(
            xvector in proptest::collection::vec(-1e3f32..1e3, 1..40),
            frames in 0usize..12,
            groups in 1usize..20,
            text in "[a-zA-Z ,.]{1,40}",
            flip in 0usize..4096,
            bit in 0u8..8,
            cut in 0usize..4096,
            field in 0usize..64,
            value in proptest::num::u32::ANY,
        ) {
            let reference = (frames > 0).then(|| VoiceReference {
                text: format!("x{text}"),
                codes: (0..frames).map(|f| (0..groups).map(|g| (f * 31 + g) as u32).collect()).collect(),
            });
            let v = Voice { model: [3; 32], xvector, reference };
            let b = v.to_bytes();
            proptest::prop_assert_eq!(Voice::from_bytes(&b).unwrap(), v);
            let mut d = b.clone();
            let i = flip % d.len();
            d[i] ^= 1 << bit;
            proptest::prop_assert!(Voice::from_bytes(&d).is_err());
            proptest::prop_assert!(Voice::from_bytes(&b[..cut % b.len()]).is_err());
            let mut longer = b.clone();
            longer.push(0);
            proptest::prop_assert!(Voice::from_bytes(&longer).is_err());
            // A rewritten field with a fresh checksum: parsed, bounded, refused or accepted — no panic.
            let mut body = b[..b.len() - 32].to_vec();
            let at = 44 + 4 * (field % 16).min(body.len().saturating_sub(48) / 4);
            if at + 4 <= body.len() {
                body[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
            let digest = Sha256::digest(&body);
            body.extend_from_slice(&digest);
            let _ = Voice::from_bytes(&body);
        }
    }

    #[test]
    fn inconsistent_voices_are_refused() {
        let mut v = icl();
        v.xvector[1] = f32::NAN;
        assert!(v.validate().is_err());
        let mut v = icl();
        v.reference.as_mut().unwrap().codes[1].pop();
        assert!(v.validate().is_err());
        let mut v = icl();
        v.reference.as_mut().unwrap().text = " ".into();
        assert!(v.validate().is_err());
    }
}
