//! WAV files for the command line (hound): 16/24/32-bit integer and 32-bit float PCM, any
//! channel count, read as interleaved f32 in [-1, 1]; written back in the input's format.

use std::io::{Read, Seek, Write};

/// The sample format of a WAV file, kept so that `enhance` writes what it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Int(u16),
    Float,
}

pub struct Wav {
    /// Interleaved samples, `frames × channels`.
    pub samples: Vec<f32>,
    pub rate: u32,
    pub channels: u16,
    pub format: Format,
}

/// Reads a whole WAV stream; `name` (a path, or "stdin") prefixes the errors.
pub fn read_from<R: Read>(reader: R, name: &str) -> Result<Wav, String> {
    let mut r = hound::WavReader::new(reader).map_err(|e| format!("{name}: {e}"))?;
    let spec = r.spec();
    let err = |e: hound::Error| format!("{name}: {e}");
    let (samples, format) = match spec.sample_format {
        hound::SampleFormat::Float if spec.bits_per_sample == 32 => {
            (r.samples::<f32>().collect::<Result<Vec<_>, _>>().map_err(err)?, Format::Float)
        }
        // The depths hound reads and writes (any other one, e.g. an extensible header's 14 valid
        // bits, reads no sample and cannot be written back: refused here, not after the work).
        hound::SampleFormat::Int if matches!(spec.bits_per_sample, 8 | 16 | 24 | 32) => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            let v =
                r.samples::<i32>().map(|s| s.map(|x| x as f32 * scale)).collect::<Result<Vec<_>, _>>().map_err(err)?;
            (v, Format::Int(spec.bits_per_sample))
        }
        _ => {
            return Err(format!(
                "{name}: {}-bit {:?} samples are not supported (16/24/32-bit integer or 32-bit float)",
                spec.bits_per_sample, spec.sample_format
            ));
        }
    };
    if spec.channels == 0 {
        return Err(format!("{name}: the file declares no channels"));
    }
    Ok(Wav { samples, rate: spec.sample_rate, channels: spec.channels, format })
}

/// Writes a whole WAV stream; `name` (a path, or "stdout") prefixes the errors.
pub fn write_to<W: Write + Seek>(
    writer: W,
    name: &str,
    samples: &[f32],
    rate: u32,
    channels: u16,
    format: Format,
) -> Result<(), String> {
    if rate == 0 || channels == 0 {
        return Err(format!("{name}: cannot write a WAV file of {rate} Hz and {channels} channels"));
    }
    let (bits, sample_format) = match format {
        Format::Float => (32, hound::SampleFormat::Float),
        Format::Int(b) => (b, hound::SampleFormat::Int),
    };
    let spec = hound::WavSpec { channels, sample_rate: rate, bits_per_sample: bits, sample_format };
    let err = |e: hound::Error| format!("{name}: {e}");
    let mut w = hound::WavWriter::new(writer, spec).map_err(err)?;
    match format {
        Format::Float => {
            for &s in samples {
                w.write_sample(s).map_err(err)?;
            }
        }
        Format::Int(b) => {
            // Round to the nearest step and saturate at full scale.
            let full = (1i64 << (b - 1)) as f32;
            for &s in samples {
                let v = (s * full).round().clamp(-full, full - 1.0) as i32;
                w.write_sample(v).map_err(err)?;
            }
        }
    }
    w.finalize().map_err(err)
}
