//! Quantized weights: the formats of the compute layer's opt-in int8/int4 weights, made at load
//! from a checkpoint's bf16/f16/f32 tensors (`Weight::quantize`), and read back exactly as they
//! multiply (`dequantize`, for the many-row products and for tests).
//!
//! Both formats cut each weight row into groups of `GROUP` (32) elements with one f16 scale `d`
//! per group; an element is `d · q`:
//! - `Q8`: `q` an int8 in −127..=127, `d = max|w| / 127`; one byte per element.
//! - `Q4`: `q` an int4 in −8..=7, `d = m / −8` where `m` is the group's element of largest
//!   magnitude (so `m` itself is exact, as GGML's Q4_0 does); stored as `q + 8` in a nibble, so
//!   `Q4` needs rows of a multiple of `2 · GROUP` elements.
//!
//! Where the values lie in a row's bytes (`q8_at`, `q4_at`): the row's groups go in blocks of
//! `BLOCK` (16), and in a block, one 32-bit lane per group — the layout of the CPU kernels, whose
//! 512-bit integer dot product (`vpdpbusd`) then sums four elements of each of 16 groups in one
//! instruction, and whose 16 integer sums are scaled by one vector of 16 scales:
//! - `Q8`: a block is 8 steps of 64 bytes; step `s` holds elements `4s..4s + 4` of the block's
//!   groups, group after group (element `4s + i` of group `l` at byte `64s + 4l + i`).
//! - `Q4`: a block is 4 pieces of 64 bytes; steps `s` and `s + 4` share piece `s`, in the low and
//!   the high nibbles.
//!
//! A row's last `groups mod BLOCK` groups (none in the models' real shapes) go in order: `Q8`
//! one byte per element, `Q4` two groups per 32 bytes, the first in the low nibbles.
//!
//! Bytes per element, scales included: `Q8` 1.0625, `Q4` 0.5625 (bf16: 2).

use half::f16;
use rayon::prelude::*;

use super::tensor::HostBuf;
use crate::error::{Error, ErrorKind, Result};

/// Elements per scale.
pub const GROUP: usize = 32;

/// Groups interleaved in one block of a row (one 32-bit lane of a 512-bit vector each).
pub(in crate::backend) const BLOCK: usize = 16;

/// Where element `e` of group `g` lies in an int8 row of `groups` groups (and in the activations
/// the CPU quantizes to multiply it, which take the same layout).
#[inline]
pub(in crate::backend) fn q8_at(groups: usize, g: usize, e: usize) -> usize {
    if g < groups / BLOCK * BLOCK {
        g / BLOCK * BLOCK * GROUP + e / 4 * (4 * BLOCK) + g % BLOCK * 4 + e % 4
    } else {
        g * GROUP + e
    }
}

/// Where element `e` of group `g` lies in an int4 row of `groups` groups: the byte and the
/// nibble's shift.
#[inline]
pub(in crate::backend) fn q4_at(groups: usize, g: usize, e: usize) -> (usize, u32) {
    if g < groups / BLOCK * BLOCK {
        let s = e / 4;
        (g / BLOCK * BLOCK * GROUP / 2 + s % 4 * (4 * BLOCK) + g % BLOCK * 4 + e % 4, 4 * (s / 4) as u32)
    } else {
        (g / 2 * GROUP + e, 4 * (g % 2) as u32)
    }
}

/// The integer values of group `g` of a packed row (`format`, `groups` groups).
pub(in crate::backend) fn group_values(format: QuantFormat, packed: &[u8], groups: usize, g: usize) -> [i8; GROUP] {
    std::array::from_fn(|e| match format {
        QuantFormat::Q8 => packed[q8_at(groups, g, e)] as i8,
        QuantFormat::Q4 => {
            let (at, shift) = q4_at(groups, g, e);
            ((packed[at] >> shift) & 0x0f) as i8 - 8
        }
    })
}

/// A quantized element format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantFormat {
    Q8,
    Q4,
}

impl QuantFormat {
    /// Bytes of packed values per group.
    pub fn group_bytes(self) -> usize {
        match self {
            QuantFormat::Q8 => GROUP,
            QuantFormat::Q4 => GROUP / 2,
        }
    }

    /// Whether rows of `cols` elements can take this format.
    pub fn fits(self, cols: usize) -> bool {
        match self {
            QuantFormat::Q8 => cols > 0 && cols.is_multiple_of(GROUP),
            QuantFormat::Q4 => cols > 0 && cols.is_multiple_of(2 * GROUP),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            QuantFormat::Q8 => "int8",
            QuantFormat::Q4 => "int4",
        }
    }
}

/// Which weights a model quantizes at load (the caller's choice; `None` is the default and
/// leaves every weight as stored). The models map a recipe to a format per weight
/// (`Quantization::body`, `head`, `edge`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Quantization {
    /// Weights as stored (bit-exact with an unquantized build).
    #[default]
    None,
    /// Every decoder projection and head int8.
    Int8,
    /// int4 decoder bodies; int8 heads and the first and last layers of small stacks that run
    /// many times per output (the code predictor), which are the most sensitive.
    Mixed,
    /// Every decoder projection int4 (heads int8). Not offered: it fails the code predictor's
    /// quality gate (tests/quant.rs, BENCHMARKS.md); kept to measure why `Mixed` exists.
    Int4,
}

impl Quantization {
    /// The recipes offered to callers (`parse` accepts these names only).
    pub const OFFERED: [Quantization; 3] = [Quantization::None, Quantization::Int8, Quantization::Mixed];

    pub fn name(self) -> &'static str {
        match self {
            Quantization::None => "none",
            Quantization::Int8 => "int8",
            Quantization::Int4 => "int4",
            Quantization::Mixed => "mixed",
        }
    }

    /// An offered recipe by name.
    pub fn parse(s: &str) -> Option<Quantization> {
        Quantization::OFFERED.into_iter().find(|q| q.name() == s)
    }

    /// The format of a decoder layer's projections.
    pub fn body(self) -> Option<QuantFormat> {
        match self {
            Quantization::None => None,
            Quantization::Int8 => Some(QuantFormat::Q8),
            Quantization::Int4 | Quantization::Mixed => Some(QuantFormat::Q4),
        }
    }

    /// The format of output heads and input projections.
    pub fn head(self) -> Option<QuantFormat> {
        match self {
            Quantization::None => None,
            _ => Some(QuantFormat::Q8),
        }
    }

    /// The format of the first and last layers of a sensitive stack (`Mixed`: int8).
    pub fn edge(self) -> Option<QuantFormat> {
        match self {
            Quantization::Mixed => Some(QuantFormat::Q8),
            other => other.body(),
        }
    }
}

/// A quantized weight's storage: `rows × cols / GROUP` scales and the packed values, row after
/// row (a row is `cols / GROUP` groups, laid out as described above).
#[derive(Clone, Debug)]
pub struct QuantData {
    pub(in crate::backend) format: QuantFormat,
    pub(in crate::backend) cols: usize,
    pub(in crate::backend) scales: HostBuf<f16>,
    pub(in crate::backend) packed: HostBuf<u8>,
}

impl QuantData {
    /// Quantizes `rows` rows of `cols` elements, each widened into f32 by `row(r, out)`.
    /// Fails when the format does not fit the rows, or when an element is not finite or a scale
    /// does not fit an f16 (|w| above ≈ 5·10⁵): such a weight stays as stored.
    pub fn quantize(
        format: QuantFormat,
        rows: usize,
        cols: usize,
        row: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) -> Result<QuantData> {
        let bad = |why: String| Error::new(ErrorKind::ModelLoad, why);
        if !format.fits(cols) {
            return Err(bad(format!("rows of {cols} elements cannot be {} (groups of {GROUP})", format.name())));
        }
        let groups = cols / GROUP;
        let row_bytes = groups * format.group_bytes();
        let mut scales = vec![f16::ZERO; rows * groups];
        let mut packed = vec![0u8; rows * row_bytes];
        let failed = std::sync::atomic::AtomicBool::new(false);
        scales.par_chunks_mut(groups).zip(packed.par_chunks_mut(row_bytes)).enumerate().for_each_init(
            || vec![0.0f32; cols],
            |buf, (r, (s, p))| {
                row(r, buf);
                if !quantize_row(format, buf, s, p) {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            },
        );
        if failed.into_inner() {
            return Err(bad(format!(
                "a weight with a non-finite element or one too large for {} scales",
                format.name()
            )));
        }
        Ok(QuantData { format, cols, scales: scales.into(), packed: packed.into() })
    }

    /// A quantized weight from stored parts (a disk cache): `rows` rows of `cols` elements, the
    /// scales and packed values as `quantize` lays them out. Every length is checked: parts that
    /// do not fit are an error, never a short read later.
    pub fn from_parts(
        format: QuantFormat,
        rows: usize,
        cols: usize,
        scales: HostBuf<f16>,
        packed: HostBuf<u8>,
    ) -> Result<QuantData> {
        let bad = |why: String| Error::new(ErrorKind::ModelLoad, why);
        if !format.fits(cols) {
            return Err(bad(format!("rows of {cols} elements cannot be {}", format.name())));
        }
        let groups = rows.checked_mul(cols / GROUP);
        let bytes = groups.and_then(|g| g.checked_mul(format.group_bytes()));
        if groups != Some(scales.len()) || bytes != Some(packed.len()) {
            return Err(bad(format!(
                "{} weight [{rows}, {cols}] with {} scales and {} bytes",
                format.name(),
                scales.len(),
                packed.len()
            )));
        }
        Ok(QuantData { format, cols, scales, packed })
    }

    pub fn format(&self) -> QuantFormat {
        self.format
    }

    /// Elements per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The scales (f16, little endian) and the packed values, as stored.
    pub fn parts(&self) -> (&[f16], &[u8]) {
        (&self.scales, &self.packed)
    }

    /// Elements held.
    pub fn len(&self) -> usize {
        self.scales.len() * GROUP
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    /// Bytes held (values and scales).
    pub fn bytes(&self) -> usize {
        self.packed.len() + 2 * self.scales.len()
    }

    /// Groups per row.
    pub(in crate::backend) fn groups(&self) -> usize {
        self.cols / GROUP
    }

    /// Row `r`'s scales and packed values.
    #[inline]
    pub(in crate::backend) fn row(&self, r: usize) -> (&[f16], &[u8]) {
        let g = self.groups();
        let b = g * self.format.group_bytes();
        (&self.scales[r * g..(r + 1) * g], &self.packed[r * b..(r + 1) * b])
    }

    /// Elements `start..start + out.len()` (row-major over all rows) as the f32 values they
    /// stand for.
    pub fn dequantize(&self, start: usize, out: &mut [f32]) {
        let mut at = start;
        let mut o = 0;
        while o < out.len() {
            // A piece of one group at a time: its values are unpacked once.
            let (r, c) = (at / self.cols, at % self.cols);
            let (s, p) = self.row(r);
            let (g, i) = (c / GROUP, c % GROUP);
            let n = (GROUP - i).min(out.len() - o);
            let d = s[g].to_f32();
            let q = group_values(self.format, p, self.groups(), g);
            for (v, &q) in out[o..o + n].iter_mut().zip(&q[i..i + n]) {
                *v = d * q as f32;
            }
            at += n;
            o += n;
        }
    }
}

/// Quantizes one row into its scales and packed bytes; `false` when it cannot be.
fn quantize_row(format: QuantFormat, w: &[f32], scales: &mut [f16], packed: &mut [u8]) -> bool {
    let groups = scales.len();
    packed.fill(0);
    for (g, (x, s)) in w.chunks_exact(GROUP).zip(scales.iter_mut()).enumerate() {
        if x.iter().any(|v| !v.is_finite()) {
            return false;
        }
        // The element of largest magnitude (the first, on ties).
        let m = x.iter().fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        let d = match format {
            QuantFormat::Q8 => m.abs() / 127.0,
            QuantFormat::Q4 => m / -8.0,
        };
        let dh = f16::from_f32(d);
        if !dh.is_finite() {
            return false;
        }
        *s = dh;
        let d = dh.to_f32();
        let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
        for (e, &v) in x.iter().enumerate() {
            match format {
                QuantFormat::Q8 => packed[q8_at(groups, g, e)] = ((v * inv).round().clamp(-127.0, 127.0) as i8) as u8,
                QuantFormat::Q4 => {
                    let (at, shift) = q4_at(groups, g, e);
                    packed[at] |= (((v * inv).round().clamp(-8.0, 7.0) as i32 + 8) as u8) << shift;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(rows: usize, cols: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..rows * cols)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    fn round_trip(format: QuantFormat, w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        let q = QuantData::quantize(format, rows, cols, &|r, out| out.copy_from_slice(&w[r * cols..(r + 1) * cols]))
            .unwrap();
        let mut back = vec![0.0; rows * cols];
        q.dequantize(0, &mut back);
        back
    }

    #[test]
    fn layouts_place_every_element_once() {
        for groups in [2, 16, 34, 64] {
            let mut seen8 = vec![false; groups * GROUP];
            let mut seen4 = vec![false; groups * GROUP];
            for g in 0..groups {
                for e in 0..GROUP {
                    let at = q8_at(groups, g, e);
                    assert!(!std::mem::replace(&mut seen8[at], true), "int8 byte {at} twice ({groups} groups)");
                    let (at, shift) = q4_at(groups, g, e);
                    assert!(shift == 0 || shift == 4);
                    let nibble = 2 * at + shift as usize / 4;
                    assert!(
                        !std::mem::replace(&mut seen4[nibble], true),
                        "int4 nibble {nibble} twice ({groups} groups)"
                    );
                }
            }
            assert!(seen8.iter().all(|&v| v) && seen4.iter().all(|&v| v));
        }
        // In a block, a 32-bit lane per group: four consecutive elements of one group.
        assert_eq!((0..4).map(|e| q8_at(32, 5, 4 + e)).collect::<Vec<_>>(), [84, 85, 86, 87]);
        assert_eq!(q4_at(32, 5, 17), (21, 4), "elements 16..32 in the high nibbles of 0..16");
    }

    #[test]
    fn round_trip_error_is_within_half_a_step() {
        let (rows, cols) = (7, 1088); // blocks and a tail
        let w = data(rows, cols, 1);
        for (format, levels) in [(QuantFormat::Q8, 127.0), (QuantFormat::Q4, 8.0)] {
            let back = round_trip(format, &w, rows, cols);
            for (g, (a, b)) in w.chunks(GROUP).zip(back.chunks(GROUP)).enumerate() {
                let m = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let step = m / levels;
                for (x, y) in a.iter().zip(b) {
                    // Half a step, plus the f16 rounding of the scale carried to the largest
                    // value; int4 reaches only 7 steps on the side opposite the extreme element.
                    let beyond = if format == QuantFormat::Q4 { x.abs() - 7.0 * step } else { 0.0 };
                    let tol = (step * 0.5).max(beyond) + m * 1e-3;
                    assert!((x - y).abs() <= tol, "{format:?} group {g}: {x} -> {y} (tolerance {tol})");
                }
            }
        }
    }

    #[test]
    fn the_extreme_element_of_a_q4_group_is_nearly_exact_and_zeros_stay_zero() {
        let mut w = vec![0.0f32; 64];
        w[3] = -0.75;
        w[40] = 0.5;
        let back = round_trip(QuantFormat::Q4, &w, 1, 64);
        assert!((back[3] + 0.75).abs() < 1e-6, "{}", back[3]);
        assert!((back[40] - 0.5).abs() < 1e-3, "{}", back[40]);
        assert!(back.iter().enumerate().all(|(i, v)| i == 3 || i == 40 || *v == 0.0));
    }

    #[test]
    fn partial_ranges_dequantize_as_the_whole() {
        let (rows, cols) = (3, 1088);
        let w = data(rows, cols, 9);
        for format in [QuantFormat::Q8, QuantFormat::Q4] {
            let q =
                QuantData::quantize(format, rows, cols, &|r, out| out.copy_from_slice(&w[r * cols..(r + 1) * cols]))
                    .unwrap();
            let mut all = vec![0.0; rows * cols];
            q.dequantize(0, &mut all);
            let mut part = vec![0.0; 77];
            q.dequantize(1050, &mut part); // across a row boundary
            assert_eq!(&all[1050..1127], &part[..]);
        }
    }

    #[test]
    fn unfit_and_non_finite_weights_are_refused() {
        let w = [1.0f32; 48];
        assert!(QuantData::quantize(QuantFormat::Q8, 1, 48, &|_, o| o.copy_from_slice(&w)).is_err());
        assert!(QuantData::quantize(QuantFormat::Q4, 1, 32, &|_, o| o.copy_from_slice(&w[..32])).is_err());
        let mut w = [0.5f32; 32];
        w[7] = f32::NAN;
        assert!(QuantData::quantize(QuantFormat::Q8, 1, 32, &|_, o| o.copy_from_slice(&w)).is_err());
        let w = [1.0e6f32; 32];
        assert!(
            QuantData::quantize(QuantFormat::Q4, 1, 64, &|_, o| {
                o[..32].copy_from_slice(&w);
                o[32..].copy_from_slice(&w);
            })
            .is_err()
        );
    }

    #[test]
    fn recipes_parse_by_name() {
        for q in Quantization::OFFERED {
            assert_eq!(Quantization::parse(q.name()), Some(q));
        }
        assert_eq!(Quantization::parse("int3"), None);
        assert_eq!(Quantization::parse("int4"), None, "int4 fails its gate: not offered");
        assert_eq!(Quantization::Mixed.edge(), Some(QuantFormat::Q8));
        assert_eq!(Quantization::Int4.edge(), Some(QuantFormat::Q4));
        assert_eq!(Quantization::None.head(), None);
    }
}
