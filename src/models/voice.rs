//! The model side of cloned voices (`seams::voice::Voice`): which checkpoint a voice belongs to,
//! and the encoders that make one from reference audio (`speaker_encoder`, `codec_encoder`)
//! behind the engine's `VoiceEncoder` seam.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::backend::Compute;
use crate::error::{Error, ErrorKind, Result};
use crate::models::codec_config::{CodecConfig, CodecEncoderConfig};
use crate::models::codec_encoder::CodecEncoder;
use crate::models::speaker_encoder::SpeakerEncoder;
use crate::models::tts_config::TtsConfig;
use crate::models::weights::Checkpoint;
use crate::seams::VoiceEncoder;
use crate::seams::voice::{Fingerprint, Voice, VoiceReference, VoiceSpec};

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
        let path = dir.join(file);
        let bytes = std::fs::read(&path)
            .map_err(|e| Error::new(ErrorKind::ModelLoad, format!("cannot read {}: {e}", path.display())))?;
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

/// What the Base checkpoint in `dir` makes of references, checked across its parts: the speaker
/// encoder's rate must be the codec encoder's input rate; the codec encoder's frames must be the
/// decoder's (80 ms), its codebook the decoder's and the code predictor's, its kept codes per
/// frame the talker's. A checkpoint whose parts disagree fails at load (engine create).
pub fn voice_spec(dir: &Path, config: &TtsConfig, ck: &Checkpoint) -> Result<VoiceSpec> {
    let bad = |why: String| Error::new(ErrorKind::ModelLoad, format!("{}: voice encoders: {why}", dir.display()));
    let speaker = config.speaker_encoder().ok_or_else(|| bad("only Base checkpoints have voice encoders".into()))?;
    let codec_dir = dir.join("speech_tokenizer");
    let decoder = CodecConfig::load(&codec_dir)?;
    let encoder = CodecEncoderConfig::load(&codec_dir)?;
    let groups = config.talker_config.decoder.num_code_groups;
    let codebook = config.talker_config.code_predictor_config.vocab_size;
    if encoder.input_sample_rate != speaker.sample_rate {
        return Err(bad(format!(
            "the codec encoder takes {} Hz, the speaker encoder {} Hz",
            encoder.input_sample_rate, speaker.sample_rate
        )));
    }
    if encoder.encode_downsample_rate != decoder.decode_upsample_rate {
        return Err(bad(format!(
            "the codec encodes frames of {} samples and decodes frames of {}",
            encoder.encode_downsample_rate, decoder.decode_upsample_rate
        )));
    }
    let sizes = [encoder.encoder_config.codebook_size, decoder.decoder_config.codebook_size, codebook];
    if sizes[0] != sizes[1] || sizes[1] != sizes[2] {
        return Err(bad(format!(
            "codebook sizes differ: codec encoder {}, codec decoder {}, code predictor {}",
            sizes[0], sizes[1], sizes[2]
        )));
    }
    if encoder.encoder_valid_num_quantizers != groups {
        return Err(bad(format!(
            "the codec encoder keeps {} codes per frame; the talker reads {groups}",
            encoder.encoder_valid_num_quantizers
        )));
    }
    Ok(VoiceSpec {
        rate: speaker.sample_rate,
        model: fingerprint(dir, ck)?,
        xvector: config.talker_dims().hidden,
        groups,
        codebook: codebook as u32,
    })
}

/// A Base checkpoint's voice encoders behind the engine's `VoiceEncoder` seam: the speaker
/// encoder (from `model.safetensors`) for the x-vector and the codec's encoder (from
/// `speech_tokenizer/`) for an in-context voice's reference codes.
pub struct VoiceEncoders {
    spec: VoiceSpec,
    speaker: SpeakerEncoder,
    codec: CodecEncoder,
}

impl VoiceEncoders {
    /// Loads both encoders of the Base checkpoint in `dir` onto `cx`'s device; `spec` is the
    /// checkpoint's (`voice_spec`, which the generator has made already at its load).
    pub fn load(dir: &Path, cx: &Compute, config: &TtsConfig, spec: VoiceSpec) -> Result<VoiceEncoders> {
        let cfg = config
            .speaker_encoder()
            .ok_or_else(|| Error::new(ErrorKind::ModelLoad, "only Base checkpoints have voice encoders"))?;
        let mut ck = Checkpoint::open(&dir.join("model.safetensors"))?.resident_on(cx);
        let speaker = SpeakerEncoder::load(cx, &mut ck, &cfg)?;
        let codec = CodecEncoder::load(&dir.join("speech_tokenizer"), cx.clone())?;
        Ok(VoiceEncoders { spec, speaker, codec })
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
        self.spec.rate
    }

    fn encode(&mut self, audio: &[f32], transcript: Option<&str>) -> Result<Voice> {
        // 1. The x-vector (every voice has one: the speaker row of the prompt).
        let xvector = self.speaker.embed(audio)?;
        // 2. In-context voices: the reference's codes, as the official `speech_tokenizer.encode`.
        let reference = match transcript {
            None => None,
            Some(text) => Some(VoiceReference { text: text.to_string(), codes: self.codec.encode(audio)? }),
        };
        let voice = Voice { model: self.spec.model, xvector, reference };
        voice.validate()?;
        self.spec.check(&voice)?;
        Ok(voice)
    }
}
