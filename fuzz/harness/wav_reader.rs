//! `wav_reader`: arbitrary bytes through the CLI's WAV reader (`src/bin/voxkit/wav.rs`, which the
//! including crate declares as `mod wav`; the library itself reads no WAV). Whatever it accepts
//! must be consistent (whole frames, finite samples in [-1, 1], a rate and channels) and survive
//! the CLI's own round trip: written back in its format and read again, the same samples.

use std::io::Cursor;

use crate::wav;

pub fn run(data: &[u8]) {
    let Ok(w) = wav::read_from(Cursor::new(data), "fuzz") else { return };
    assert!(w.channels > 0);
    assert_eq!(w.samples.len() % w.channels as usize, 0, "a partial frame was returned");
    assert!(w.samples.iter().all(|s| s.is_finite() || matches!(w.format, wav::Format::Float)));
    if let wav::Format::Int(_) = w.format {
        assert!(w.samples.iter().all(|s| (-1.0..=1.0).contains(s)), "an integer sample outside [-1, 1]");
    }
    if w.rate == 0 {
        return; // the writer refuses 0 Hz, as it should
    }
    let mut out = Cursor::new(Vec::new());
    wav::write_to(&mut out, "fuzz-out", &w.samples, w.rate, w.channels, w.format).expect("write back");
    let again = wav::read_from(Cursor::new(out.into_inner()), "fuzz-again").expect("read back");
    assert_eq!((again.rate, again.channels, again.format), (w.rate, w.channels, w.format));
    assert_eq!(again.samples.len(), w.samples.len());
    let step = match w.format {
        wav::Format::Int(b) => 1.0 / (1u64 << (b - 1)) as f32,
        wav::Format::Float => 0.0,
    };
    for (a, b) in w.samples.iter().zip(&again.samples) {
        let same = a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()) || (a - b).abs() <= step * 1.0001;
        assert!(same, "{a} became {b}");
    }
}
