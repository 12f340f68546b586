//! The model side of cloned voices (`seams::voice::Voice`): which checkpoint a voice belongs to,
//! and the encoders that make one from reference audio (`speaker_encoder`, `codec_encoder`)
//! behind the engine's `VoiceEncoder` seam.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::backend::Compute;
use crate::error::{Error, ErrorKind, Result};
use crate::models::codec_encoder::CodecEncoder;
use crate::models::speaker_encoder::SpeakerEncoder;
use crate::models::tts_config::TtsConfig;
use crate::models::weights::Checkpoint;
use crate::seams::VoiceEncoder;
use crate::seams::voice::{Fingerprint, Voice, VoiceReference};

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

/// A Base checkpoint's voice encoders behind the engine's `VoiceEncoder` seam: the speaker
/// encoder (from `model.safetensors`) for the x-vector and the codec's encoder (from
/// `speech_tokenizer/`) for an in-context voice's reference codes.
pub struct VoiceEncoders {
    fingerprint: Fingerprint,
    speaker: SpeakerEncoder,
    codec: CodecEncoder,
    sample_rate: u32,
    /// Codes per frame the talker reads (the reference's frames must have as many).
    groups: usize,
}

impl VoiceEncoders {
    /// Loads both encoders of the Base checkpoint in `dir` onto `cx`'s device.
    pub fn load(dir: &Path, cx: &Compute, config: &TtsConfig) -> Result<VoiceEncoders> {
        let cfg = config
            .speaker_encoder()
            .ok_or_else(|| Error::new(ErrorKind::ModelLoad, "only Base checkpoints have voice encoders"))?;
        let mut ck = Checkpoint::open(&dir.join("model.safetensors"))?.resident_on(cx);
        let fingerprint = fingerprint(dir, &ck)?;
        let speaker = SpeakerEncoder::load(cx, &mut ck, &cfg)?;
        let codec = CodecEncoder::load(&dir.join("speech_tokenizer"), cx.clone())?;
        let groups = config.talker_config.decoder.num_code_groups;
        if codec.config.encoder_valid_num_quantizers != groups {
            return Err(Error::new(
                ErrorKind::ModelLoad,
                format!(
                    "the codec encoder keeps {} codes per frame; the talker reads {groups}",
                    codec.config.encoder_valid_num_quantizers
                ),
            ));
        }
        Ok(VoiceEncoders { fingerprint, speaker, codec, sample_rate: cfg.sample_rate, groups })
    }

    pub fn speaker(&self) -> &SpeakerEncoder {
        &self.speaker
    }

    pub fn codec(&self) -> &CodecEncoder {
        &self.codec
    }
}

impl VoiceEncoder for VoiceEncoders {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn encode(&mut self, audio: &[f32], transcript: Option<&str>) -> Result<Voice> {
        // 1. The x-vector (every voice has one: the speaker row of the prompt).
        let xvector = self.speaker.embed(audio)?;
        // 2. In-context voices: the reference's codes, as the official `speech_tokenizer.encode`.
        let reference = match transcript {
            None => None,
            Some(text) => {
                let codes = self.codec.encode(audio)?;
                debug_assert!(codes.iter().all(|f| f.len() == self.groups));
                Some(VoiceReference { text: text.to_string(), codes })
            }
        };
        let voice = Voice { model: self.fingerprint, xvector, reference };
        voice.validate()?;
        Ok(voice)
    }
}
