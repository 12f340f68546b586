//! Dot products of quantized weight rows (`quant.rs`) with activations quantized to int8 the
//! same way (groups of 32, one f32 scale each, in the weights' block layout): per group an exact
//! integer sum, scaled by the product of the two scales and added in f32. The packed weights are
//! streamed once per row.
//!
//! Kernels, picked once at run time: AVX-512 VNNI (`vpdpbusd`: the integer sums of a block's 16
//! groups in one vector, scaled by one conversion and one FMA), AVX2 (`vpmaddubsw`, 8 groups a
//! vector), and a portable one that defines the arithmetic (the others differ from it only in
//! the order of the f32 additions and in fusing the scaling multiply-add).

use half::f16;

use crate::backend::quant::{BLOCK, GROUP, QuantData, QuantFormat, q4_at, q8_at};

/// Activation rows quantized to int8 in groups of `GROUP`: `d · q` per element, `d = max|x| / 127`
/// per group (f32), `q` rounded to nearest (ties to even), the values laid out as int8 weights
/// are (`quant::q8_at`). A row with a non-finite element gets non-finite scales, so its products
/// are not finite either, as the unquantized ones would be.
pub(super) struct QuantRows {
    cols: usize,
    q: Vec<i8>,
    d: Vec<f32>,
    /// Per group `−8 · Σ q`: the int4 kernels' offset (a nibble u stands for u − 8), the
    /// starting value of the integer sums instead of a second product per group.
    offsets4: Vec<i32>,
    /// The same with `−128 · Σ q`: the AVX-512 int8 kernel multiplies w + 128 (unsigned, the
    /// sign bit flipped), which `vpdpbusd` takes as it is.
    offsets8: Vec<i32>,
}

impl QuantRows {
    /// Quantizes `x` (`rows` rows of `cols`, `cols` a multiple of `GROUP`).
    pub(super) fn new(x: &[f32], cols: usize) -> QuantRows {
        assert!(cols.is_multiple_of(GROUP) && x.len().is_multiple_of(cols.max(1)), "activations of {cols} per row");
        let mut r = QuantRows {
            cols,
            q: vec![0i8; x.len()],
            d: vec![0.0f32; x.len() / GROUP],
            offsets4: vec![0i32; x.len() / GROUP],
            offsets8: vec![0i32; x.len() / GROUP],
        };
        #[cfg(target_arch = "x86_64")]
        if super::matmul::has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { quantize_avx2(x, &mut r) };
            return r;
        }
        quantize_portable(x, &mut r);
        r
    }

    /// Rows held.
    pub(super) fn rows(&self) -> usize {
        self.q.len() / self.cols.max(1)
    }

    /// Row `i`: its scales and values.
    fn row(&self, i: usize) -> (&[f32], &[i8]) {
        let g = self.cols / GROUP;
        (&self.d[i * g..(i + 1) * g], &self.q[i * self.cols..(i + 1) * self.cols])
    }

    /// Row `i`'s offsets (one a group) for weights of `format`.
    fn offsets(&self, i: usize, format: QuantFormat) -> &[i32] {
        let n = self.cols / GROUP;
        let all = if format == QuantFormat::Q4 { &self.offsets4 } else { &self.offsets8 };
        &all[i * n..(i + 1) * n]
    }
}

/// `127 / m` for a group whose largest magnitude is `m`: 0 for an all-zero or non-finite group,
/// and at most `f32::MAX` (for m below ≈ 3.7·10⁻³⁷, where 127 / m overflows and 0 · ∞ would be
/// NaN; every |v| ≤ m then still maps within ±127).
#[inline]
fn inverse_scale(m: f32) -> f32 {
    if m > 0.0 && m.is_finite() { (127.0 / m).min(f32::MAX) } else { 0.0 }
}

/// `QuantRows::new`'s work, one group at a time.
fn quantize_portable(x: &[f32], r: &mut QuantRows) {
    let cols = r.cols.max(1);
    let groups = r.cols / GROUP;
    for (i, (xr, qr)) in x.chunks_exact(cols).zip(r.q.chunks_exact_mut(cols)).enumerate() {
        for (g, xg) in xr.chunks_exact(GROUP).enumerate() {
            let m = xg.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let m = if xg.iter().all(|v| v.is_finite()) { m } else { f32::NAN };
            let inv = inverse_scale(m);
            let qg: [i8; GROUP] = std::array::from_fn(|e| round_even(xg[e] * inv).clamp(-127.0, 127.0) as i8);
            // Four elements (one 32-bit lane) at a time: the block layout keeps them together.
            for e in (0..GROUP).step_by(4) {
                let at = q8_at(groups, g, e);
                qr[at..at + 4].copy_from_slice(&qg[e..e + 4]);
            }
            let sum = qg.iter().map(|&v| v as i32).sum::<i32>();
            let at = i * groups + g;
            r.d[at] = m / 127.0;
            r.offsets4[at] = -8 * sum;
            r.offsets8[at] = -128 * sum;
        }
    }
}

/// `quantize_portable` with AVX2: a group's 32 values in four vectors, converted with the
/// default rounding (to nearest, ties to even, as `round_even`), packed to bytes and stored a
/// 32-bit lane (four elements) at a time where the block layout puts them. The same values and
/// scales, bit for bit (`quantize_paths_agree`).
///
/// # Safety
/// AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_avx2(x: &[f32], r: &mut QuantRows) {
    use std::arch::x86_64::*;
    let cols = r.cols.max(1);
    let groups = r.cols / GROUP;
    unsafe {
        let sign = _mm256_set1_ps(-0.0);
        let (lo, hi) = (_mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
        let zero = _mm256_setzero_ps();
        // After the two packs, 32-bit lane k holds elements 4·ORDER[k]..4·ORDER[k] + 4.
        const ORDER: [usize; 8] = [0, 2, 4, 6, 1, 3, 5, 7];
        for (i, (xr, qr)) in x.chunks_exact(cols).zip(r.q.chunks_exact_mut(cols)).enumerate() {
            for (g, xg) in xr.chunks_exact(GROUP).enumerate() {
                let v: [__m256; 4] = std::array::from_fn(|k| _mm256_loadu_ps(xg.as_ptr().add(8 * k)));
                let a: [__m256; 4] = std::array::from_fn(|k| _mm256_andnot_ps(sign, v[k]));
                let most = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
                let most = _mm_max_ps(_mm256_castps256_ps128(most), _mm256_extractf128_ps(most, 1));
                let most = _mm_max_ps(most, _mm_movehl_ps(most, most));
                let m = _mm_cvtss_f32(_mm_max_ss(most, _mm_movehdup_ps(most)));
                // v · 0 is ±0 for finite v and NaN otherwise.
                let z = _mm256_add_ps(
                    _mm256_add_ps(_mm256_mul_ps(v[0], zero), _mm256_mul_ps(v[1], zero)),
                    _mm256_add_ps(_mm256_mul_ps(v[2], zero), _mm256_mul_ps(v[3], zero)),
                );
                let finite = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(z, z)) == 0;
                let m = if finite { m } else { f32::NAN };
                let inv = _mm256_set1_ps(inverse_scale(m));
                // A non-finite group's values are 0, as the portable path's NaN · 0 casts give.
                let q: [__m256i; 4] = std::array::from_fn(|k| {
                    let t = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v[k], inv), lo), hi);
                    if finite { _mm256_cvtps_epi32(t) } else { _mm256_setzero_si256() }
                });
                let bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
                let mut lanes = [0u32; 8];
                _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, bytes);
                for (k, &lane) in lanes.iter().enumerate() {
                    let at = q8_at(groups, g, 4 * ORDER[k]);
                    qr[at..at + 4].copy_from_slice(&lane.to_ne_bytes().map(|b| b as i8));
                }
                let s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
                let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
                let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
                let sum = _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s)));
                let at = i * groups + g;
                r.d[at] = m / 127.0;
                r.offsets4[at] = -8 * sum;
                r.offsets8[at] = -128 * sum;
            }
        }
    }
}

/// `v` rounded to the nearest integer, ties to even, for |v| ≤ 2²² (and NaN as NaN): by adding
/// and removing 1.5 · 2²³, whose ulp is 1 — two additions the compiler vectorises, where
/// `f32::round` is a library call per element on baseline x86-64.
#[inline]
fn round_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// Instruction sets a kernel can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
}

impl Isa {
    /// The best this CPU runs (detected once).
    pub(super) fn best() -> Isa {
        static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::is_x86_feature_detected as has;
                let avx2 = has!("avx2") && has!("fma") && has!("f16c");
                if avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vnni") {
                    return Isa::Avx512Vnni;
                }
                if avx2 {
                    return Isa::Avx2;
                }
            }
            Isa::Portable
        })
    }

    /// Activation rows a kernel takes per read of a weight row: as many as its accumulators fit
    /// in the vector registers (32 with AVX-512, 16 otherwise).
    fn rows_per_call(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => 8,
            _ => 4,
        }
    }

    /// Every kernel this CPU can run (tests compare them).
    #[cfg(test)]
    fn available() -> Vec<Isa> {
        let mut v = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if Isa::best() != Isa::Portable {
                v.push(Isa::Avx2);
            }
            if Isa::best() == Isa::Avx512Vnni {
                v.push(Isa::Avx512Vnni);
            }
        }
        v
    }
}

/// Weight rows `rows` of `w` times every row of `x`, row `j` times activation row `i` written to
/// `out.add((j − rows.start) · row_step + i · col_step)`: straight into a batch's outputs, with no
/// block to copy out of.
///
/// # Safety
/// Every one of those addresses lies in one allocation with `out` and is valid for a write of
/// an `f32`; nothing else reads or writes them during the call (no other thread, and no live
/// reference on this one).
pub(super) unsafe fn dot_block_to(
    w: &QuantData,
    rows: std::ops::Range<usize>,
    x: &QuantRows,
    out: *mut f32,
    row_step: usize,
    col_step: usize,
) {
    // SAFETY: the caller's promise.
    unsafe { products(Isa::best(), w, rows, x, 0..x.rows(), Sink { out, row_step, col_step }) }
}

/// Where `products` writes: weight row `j` (from the first) times activation row `i` (from the
/// first) at `out + j · row_step + i · col_step`.
#[derive(Clone, Copy)]
struct Sink {
    out: *mut f32,
    row_step: usize,
    col_step: usize,
}

/// Weight rows a tile: the rows of one tile are multiplied by every chunk of activation rows
/// before the next tile, so that a batch wider than `Isa::rows_per_call` reads them from the
/// cache, and each chunk's activation slices are looked up once a tile, not once a row.
const TILE: usize = 16;

/// Rows `rows` of `w` times every row of `x`, into `out` (weight row by weight row, `x.rows()`
/// values each; the tests' entry).
#[cfg(test)]
fn dot_block_with(isa: Isa, w: &QuantData, rows: std::ops::Range<usize>, x: &QuantRows, out: &mut [f32]) {
    let n = x.rows();
    assert_eq!(out.len(), rows.len() * n, "quantized product: {} outputs for {} rows × {n}", out.len(), rows.len());
    // SAFETY: `out` holds rows.len() × n values, row by row.
    unsafe { products(isa, w, rows, x, 0..n, Sink { out: out.as_mut_ptr(), row_step: n, col_step: 1 }) }
}

/// Row `r` of `w` times rows `first..first + out.len()` of `x` alone.
#[cfg(test)]
fn dot_rows_with(isa: Isa, w: &QuantData, r: usize, x: &QuantRows, first: usize, out: &mut [f32]) {
    // SAFETY: one weight row's out.len() values.
    unsafe {
        products(
            isa,
            w,
            r..r + 1,
            x,
            first..first + out.len(),
            Sink { out: out.as_mut_ptr(), row_step: 0, col_step: 1 },
        )
    }
}

/// Rows `rows` of `w` times rows `xs` of `x`, written through `out`.
///
/// # Safety
/// As `dot_block_to`, for `out`'s addresses of these rows.
unsafe fn products(
    isa: Isa,
    w: &QuantData,
    rows: std::ops::Range<usize>,
    x: &QuantRows,
    xs: std::ops::Range<usize>,
    out: Sink,
) {
    let n = xs.len();
    assert!(xs.end <= x.rows(), "quantized product: activation rows {xs:?} of {}", x.rows());
    // The kernels size their reads by the weight's rows: the activations must be as wide.
    assert_eq!(w.cols, x.cols, "quantized product: rows of {} against activations of {}", w.cols, x.cols);
    let most = isa.rows_per_call();
    for tile in rows.clone().step_by(TILE) {
        let tile_rows = tile..(tile + TILE).min(rows.end);
        let mut col = 0;
        while col < n {
            let m = (n - col).min(most);
            // The tile's first output row (`tile − rows.start`), from column `col`.
            let corner = (tile - rows.start) * out.row_step + col * out.col_step;
            let (r, first, o) = (tile_rows.clone(), xs.start + col, Sink { out: out.out.wrapping_add(corner), ..out });
            // SAFETY: `o` addresses the rows of this tile and the columns from `col`.
            unsafe {
                match m {
                    1 => tile_products::<1>(isa, w, r, x, first, o),
                    2 => tile_products::<2>(isa, w, r, x, first, o),
                    3 => tile_products::<3>(isa, w, r, x, first, o),
                    4 => tile_products::<4>(isa, w, r, x, first, o),
                    5 => tile_products::<5>(isa, w, r, x, first, o),
                    6 => tile_products::<6>(isa, w, r, x, first, o),
                    7 => tile_products::<7>(isa, w, r, x, first, o),
                    8 => tile_products::<8>(isa, w, r, x, first, o),
                    _ => unreachable!("{m} rows a call: the kernels take at most 8"),
                }
            }
            col += m;
        }
    }
}

/// Weight rows `rows` times the `R` activation rows from `first`, each row's `R` sums written
/// through `out`. A kernel writes its sums into a local array, a float at a time, and they are
/// copied out a float at a time: returned as an array and copied 16 bytes at a time, they were
/// read back in a shape no store forwards (≈ 9 % of a batch-8 step went there).
///
/// # Safety
/// As `products`.
#[inline]
unsafe fn tile_products<const R: usize>(
    isa: Isa,
    w: &QuantData,
    rows: std::ops::Range<usize>,
    x: &QuantRows,
    first: usize,
    out: Sink,
) {
    let xd: [&[f32]; R] = std::array::from_fn(|k| x.row(first + k).0);
    let xq: [&[i8]; R] = std::array::from_fn(|k| x.row(first + k).1);
    let xo: [&[i32]; R] = std::array::from_fn(|k| x.offsets(first + k, w.format));
    for (t, r) in rows.enumerate() {
        let (ws, wq) = w.row(r);
        let mut o = [0.0f32; R];
        match (isa, w.format) {
            (Isa::Portable, QuantFormat::Q8) => (0..R).for_each(|k| o[k] = q8_portable(ws, wq, xd[k], xq[k], 0)),
            (Isa::Portable, QuantFormat::Q4) => (0..R).for_each(|k| o[k] = q4_portable(ws, wq, xd[k], xq[k], 0)),
            // SAFETY (below): `Isa::best` found the instruction sets; every slice holds
            // `ws.len()` groups (the rows and the activations have the same width).
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, QuantFormat::Q8) => unsafe { x86::q8_avx2::<R>(ws, wq, &xd, &xq, &mut o) },
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2, QuantFormat::Q4) => unsafe { x86::q4_avx2::<R>(ws, wq, &xd, &xq, &xo, &mut o) },
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Vnni, QuantFormat::Q8) => unsafe { x86::q8_avx512::<R>(ws, wq, &xd, &xq, &xo, &mut o) },
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Vnni, QuantFormat::Q4) => unsafe { x86::q4_avx512::<R>(ws, wq, &xd, &xq, &xo, &mut o) },
        }
        for (k, v) in o.into_iter().enumerate() {
            // SAFETY: weight row `t` times activation row `k` of this call: an address the
            // caller made valid and its own (`dot_block_to`).
            unsafe { *out.out.add(t * out.row_step + k * out.col_step) = v };
        }
    }
}

/// Row `r` of `w` as bf16 bits (the values `dequantize` gives, rounded to nearest even), for the
/// many-row products on AMX, with AVX-512 BF16 (every CPU with AMX has it); `false`, nothing
/// written, where the CPU lacks it (the caller widens the row instead).
pub(super) fn row_bf16(w: &QuantData, r: usize, out: &mut [u16]) -> bool {
    assert_eq!(out.len(), w.cols, "a row of {} values into {}", w.cols, out.len());
    #[cfg(target_arch = "x86_64")]
    if super::direct_conv::has_avx512_bf16() && Isa::best() == Isa::Avx512Vnni {
        let (ws, wq) = w.row(r);
        // SAFETY: the CPU has AVX-512 F, BW and BF16 (checked above); `out` holds the row.
        unsafe { x86::row_bf16_avx512(w.format, ws, wq, out) };
        return true;
    }
    false
}

/// The groups past a row's last whole block (`from..`; none in the models' real shapes, and then
/// no call) through the portable kernel: the vector kernels' tail.
#[inline(always)]
fn tail(format: QuantFormat, ws: &[f16], wq: &[u8], xd: &[f32], xq: &[i8], from: usize) -> f32 {
    match format {
        _ if from == ws.len() => 0.0,
        QuantFormat::Q8 => q8_portable(ws, wq, xd, xq, from),
        QuantFormat::Q4 => q4_portable(ws, wq, xd, xq, from),
    }
}

/// int8 weights, groups `from..`: `Σ_g ws_g·xd_g · Σ_i wq_i·xq_i`.
fn q8_portable(ws: &[f16], wq: &[u8], xd: &[f32], xq: &[i8], from: usize) -> f32 {
    let groups = ws.len();
    let mut acc = 0.0f32;
    for g in from..groups {
        let s: i32 = (0..GROUP)
            .map(|e| {
                let at = q8_at(groups, g, e);
                (wq[at] as i8 as i32) * xq[at] as i32
            })
            .sum();
        acc += ws[g].to_f32() * xd[g] * s as f32;
    }
    acc
}

/// int4 weights (nibble `u`, value `u − 8`), groups `from..`.
fn q4_portable(ws: &[f16], wq: &[u8], xd: &[f32], xq: &[i8], from: usize) -> f32 {
    let groups = ws.len();
    let mut acc = 0.0f32;
    for g in from..groups {
        let s: i32 = (0..GROUP)
            .map(|e| {
                let (at, shift) = q4_at(groups, g, e);
                (((wq[at] >> shift) & 15) as i32 - 8) * xq[q8_at(groups, g, e)] as i32
            })
            .sum();
        acc += ws[g].to_f32() * xd[g] * s as f32;
    }
    acc
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{BLOCK, GROUP, QuantFormat, tail};

    /// Bytes of one step of a block (4 elements of each of its groups).
    const STEP: usize = 4 * BLOCK;

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn hsum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// The 8 weight scales (f16) from group `g` times the 8 activation scales there.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn scales8(ws: &[f16], xd: &[f32], g: usize) -> __m256 {
        // SAFETY: the caller has at least 8 groups from `g`.
        unsafe {
            let w = _mm256_cvtph_ps(_mm_loadu_si128(ws.as_ptr().add(g) as *const __m128i));
            _mm256_mul_ps(w, _mm256_loadu_ps(xd.as_ptr().add(g)))
        }
    }

    /// Four-element sums of `u · x` (u unsigned, x signed bytes) in the i32 lanes: pairs summed
    /// in i16 by `vpmaddubsw`, exact here as `u ≤ 128` (`|w|` from `_mm256_sign_epi8`, 128 only
    /// for a −128 byte no quantizer writes, or a nibble) and `|x| ≤ 127`, so `|u·x + u·x| ≤
    /// 32 512`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn quads(u: __m256i, x: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1))
    }

    /// # Safety
    /// AVX2, FMA and F16C; `wq` and every `xq` hold `GROUP · ws.len()` values, every `xd`
    /// `ws.len()` scales.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn q8_avx2<const R: usize>(
        ws: &[f16],
        wq: &[u8],
        xd: &[&[f32]; R],
        xq: &[&[i8]; R],
        out: &mut [f32; R],
    ) {
        let blocks = ws.len() / BLOCK;
        let mut acc = [_mm256_setzero_ps(); R];
        unsafe {
            let pf = crate::backend::cpu::PREFETCH;
            for b in 0..blocks {
                let base = b * BLOCK * GROUP;
                // Lanes of groups 0–7 of the block in the first 32 bytes of a step, 8–15 in the
                // second.
                for h in 0..2 {
                    let mut sum = [_mm256_setzero_si256(); R];
                    for s in 0..8 {
                        let at = base + s * STEP + h * 32;
                        if h == 0 {
                            _mm_prefetch::<_MM_HINT_T0>(wq.as_ptr().wrapping_add(at + pf) as *const i8);
                        }
                        // |w| · (x with w's sign): unsigned times signed, as `vpmaddubsw` takes.
                        let wv = _mm256_loadu_si256(wq.as_ptr().add(at) as *const __m256i);
                        let aw = _mm256_sign_epi8(wv, wv);
                        for k in 0..R {
                            let xv = _mm256_loadu_si256(xq[k].as_ptr().add(at) as *const __m256i);
                            sum[k] = _mm256_add_epi32(sum[k], quads(aw, _mm256_sign_epi8(xv, wv)));
                        }
                    }
                    let g = b * BLOCK + 8 * h;
                    for k in 0..R {
                        acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[k]), scales8(ws, xd[k], g), acc[k]);
                    }
                }
            }
            for k in 0..R {
                out[k] = hsum256(acc[k]) + tail(QuantFormat::Q8, ws, wq, xd[k], xq[k], blocks * BLOCK);
            }
        }
    }

    /// # Safety
    /// As `q8_avx2`, with `GROUP / 2 · ws.len()` packed bytes, an even number of groups and every
    /// `xo` holding `ws.len()` offsets (the `−8 · Σ x` ones).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn q4_avx2<const R: usize>(
        ws: &[f16],
        wq: &[u8],
        xd: &[&[f32]; R],
        xq: &[&[i8]; R],
        xo: &[&[i32]; R],
        out: &mut [f32; R],
    ) {
        let blocks = ws.len() / BLOCK;
        let mut acc = [_mm256_setzero_ps(); R];
        unsafe {
            let low = _mm256_set1_epi8(0x0f);
            let pf = crate::backend::cpu::PREFETCH;
            for b in 0..blocks {
                let (wbase, xbase) = (b * BLOCK * GROUP / 2, b * BLOCK * GROUP);
                for h in 0..2 {
                    let g = b * BLOCK + 8 * h;
                    // Σ u·x started from −8·Σ x, per group.
                    let mut sum: [__m256i; R] =
                        std::array::from_fn(|k| _mm256_loadu_si256(xo[k].as_ptr().add(g) as *const __m256i));
                    for t in 0..4 {
                        let at = wbase + t * STEP + h * 32;
                        if h == 0 {
                            _mm_prefetch::<_MM_HINT_T0>(wq.as_ptr().wrapping_add(at + pf) as *const i8);
                        }
                        let bv = _mm256_loadu_si256(wq.as_ptr().add(at) as *const __m256i);
                        let lo = _mm256_and_si256(bv, low);
                        let hi = _mm256_and_si256(_mm256_srli_epi16(bv, 4), low);
                        for k in 0..R {
                            let x = xq[k].as_ptr().add(xbase + h * 32);
                            let x0 = _mm256_loadu_si256(x.add(t * STEP) as *const __m256i);
                            let x1 = _mm256_loadu_si256(x.add((t + 4) * STEP) as *const __m256i);
                            sum[k] = _mm256_add_epi32(sum[k], _mm256_add_epi32(quads(lo, x0), quads(hi, x1)));
                        }
                    }
                    for k in 0..R {
                        acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[k]), scales8(ws, xd[k], g), acc[k]);
                    }
                }
            }
            for k in 0..R {
                out[k] = hsum256(acc[k]) + tail(QuantFormat::Q4, ws, wq, xd[k], xq[k], blocks * BLOCK);
            }
        }
    }

    /// The products of the 16 weight scales and the 16 activation scales of a block from group `g`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn scales16(w: __m512, xd: &[f32], g: usize) -> __m512 {
        // SAFETY: the caller has at least 16 groups from `g`.
        unsafe { _mm512_mul_ps(w, _mm512_loadu_ps(xd.as_ptr().add(g))) }
    }

    /// # Safety
    /// AVX-512 F/BW/DQ/VNNI and F16C; shapes as `q8_avx2`, every `xo` holding `ws.len()`
    /// offsets (the `−128 · Σ x` ones).
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn q8_avx512<const R: usize>(
        ws: &[f16],
        wq: &[u8],
        xd: &[&[f32]; R],
        xq: &[&[i8]; R],
        xo: &[&[i32]; R],
        out: &mut [f32; R],
    ) {
        let blocks = ws.len() / BLOCK;
        let mut acc = [_mm512_setzero_ps(); R];
        unsafe {
            let sign = _mm512_set1_epi8(-128);
            let pf = crate::backend::cpu::PREFETCH;
            for b in 0..blocks {
                let (g, base) = (b * BLOCK, b * BLOCK * GROUP);
                // w + 128 as unsigned bytes (the sign bit flipped: vpdpbusd takes unsigned ×
                // signed); the sums start from −128·Σ x. Two chains (even and odd steps).
                let mut even: [__m512i; R] =
                    std::array::from_fn(|k| _mm512_loadu_si512(xo[k].as_ptr().add(g) as *const _));
                let mut odd = [_mm512_setzero_si512(); R];
                for s in 0..8 {
                    let at = base + s * STEP;
                    _mm_prefetch::<_MM_HINT_T0>(wq.as_ptr().wrapping_add(at + pf) as *const i8);
                    let uw = _mm512_xor_si512(_mm512_loadu_si512(wq.as_ptr().add(at) as *const _), sign);
                    for k in 0..R {
                        let xv = _mm512_loadu_si512(xq[k].as_ptr().add(at) as *const _);
                        if s % 2 == 0 || R >= 4 {
                            even[k] = _mm512_dpbusd_epi32(even[k], uw, xv);
                        } else {
                            odd[k] = _mm512_dpbusd_epi32(odd[k], uw, xv);
                        }
                    }
                }
                let w = _mm512_cvtph_ps(_mm256_loadu_si256(ws.as_ptr().add(g) as *const __m256i));
                for k in 0..R {
                    let sum = _mm512_add_epi32(even[k], odd[k]);
                    acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scales16(w, xd[k], g), acc[k]);
                }
            }
            for k in 0..R {
                out[k] = _mm512_reduce_add_ps(acc[k]) + tail(QuantFormat::Q8, ws, wq, xd[k], xq[k], blocks * BLOCK);
            }
        }
    }

    /// # Safety
    /// As `q8_avx512`, with the int4 shapes of `q4_avx2` (the `−8 · Σ x` offsets).
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn q4_avx512<const R: usize>(
        ws: &[f16],
        wq: &[u8],
        xd: &[&[f32]; R],
        xq: &[&[i8]; R],
        xo: &[&[i32]; R],
        out: &mut [f32; R],
    ) {
        let blocks = ws.len() / BLOCK;
        let mut acc = [_mm512_setzero_ps(); R];
        unsafe {
            let low = _mm512_set1_epi8(0x0f);
            let pf = crate::backend::cpu::PREFETCH;
            for b in 0..blocks {
                let (g, wbase, xbase) = (b * BLOCK, b * BLOCK * GROUP / 2, b * BLOCK * GROUP);
                // Σ u·x started from −8·Σ x; steps 0–3 (low nibbles) and 4–7 (high) in two chains.
                let mut lo_sum: [__m512i; R] =
                    std::array::from_fn(|k| _mm512_loadu_si512(xo[k].as_ptr().add(g) as *const _));
                let mut hi_sum = [_mm512_setzero_si512(); R];
                for t in 0..4 {
                    let at = wbase + t * STEP;
                    _mm_prefetch::<_MM_HINT_T0>(wq.as_ptr().wrapping_add(at + pf) as *const i8);
                    let bv = _mm512_loadu_si512(wq.as_ptr().add(at) as *const _);
                    let lo = _mm512_and_si512(bv, low);
                    let hi = _mm512_and_si512(_mm512_srli_epi16(bv, 4), low);
                    for k in 0..R {
                        let x = xq[k].as_ptr().add(xbase);
                        lo_sum[k] = _mm512_dpbusd_epi32(lo_sum[k], lo, _mm512_loadu_si512(x.add(t * STEP) as *const _));
                        let other = if R < 4 { &mut hi_sum[k] } else { &mut lo_sum[k] };
                        *other = _mm512_dpbusd_epi32(*other, hi, _mm512_loadu_si512(x.add((t + 4) * STEP) as *const _));
                    }
                }
                let w = _mm512_cvtph_ps(_mm256_loadu_si256(ws.as_ptr().add(g) as *const __m256i));
                for k in 0..R {
                    let sum = _mm512_add_epi32(lo_sum[k], hi_sum[k]);
                    acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), scales16(w, xd[k], g), acc[k]);
                }
            }
            for k in 0..R {
                out[k] = _mm512_reduce_add_ps(acc[k]) + tail(QuantFormat::Q4, ws, wq, xd[k], xq[k], blocks * BLOCK);
            }
        }
    }

    /// The 16 groups of block `b` as int8 values, each group's 32 in order: the block's steps
    /// unpacked into `steps`, then each group's lanes gathered from them.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw")]
    unsafe fn block_values(
        format: QuantFormat,
        wq: &[u8],
        b: usize,
        steps: &mut [u8; BLOCK * GROUP],
    ) -> [__m256i; BLOCK] {
        unsafe {
            match format {
                QuantFormat::Q8 => steps.copy_from_slice(&wq[b * BLOCK * GROUP..(b + 1) * BLOCK * GROUP]),
                QuantFormat::Q4 => {
                    let (low, eight) = (_mm512_set1_epi8(0x0f), _mm512_set1_epi8(8));
                    for t in 0..4 {
                        let bv = _mm512_loadu_si512(wq.as_ptr().add(b * BLOCK * GROUP / 2 + t * STEP) as *const _);
                        let lo = _mm512_sub_epi8(_mm512_and_si512(bv, low), eight);
                        let hi = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(bv, 4), low), eight);
                        _mm512_storeu_si512(steps.as_mut_ptr().add(t * STEP) as *mut _, lo);
                        _mm512_storeu_si512(steps.as_mut_ptr().add((t + 4) * STEP) as *mut _, hi);
                    }
                }
            }
            // Group l's lane in step s is 32-bit word 16s + l.
            let idx = _mm256_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112);
            let words = steps.as_ptr() as *const i32;
            std::array::from_fn(|l| _mm256_i32gather_epi32::<4>(words.add(l), idx))
        }
    }

    /// 32 int8 values times `d`, rounded to bf16 into `dst`.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bf16")]
    unsafe fn scaled_bf16(q: __m256i, d: f16, dst: &mut [u16]) {
        unsafe {
            let d = _mm512_set1_ps(d.to_f32());
            let lo = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q))));
            let hi = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1))));
            let dst = dst[..GROUP].as_mut_ptr();
            _mm256_storeu_si256(dst as *mut __m256i, std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(lo)));
            _mm256_storeu_si256(
                dst.add(16) as *mut __m256i,
                std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(hi)),
            );
        }
    }

    /// `row_bf16` on AVX-512: a group at a time, its 32 values widened to f32, scaled, and
    /// rounded to bf16 by `vcvtneps2bf16` (nearest even, as `bf16::from_f32`; the values are
    /// never subnormal: an f16 scale times a nonzero integer is a normal f32).
    ///
    /// # Safety
    /// AVX-512 F, BW and BF16; `wq` and `out` hold `ws.len()` groups.
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn row_bf16_avx512(format: QuantFormat, ws: &[f16], wq: &[u8], out: &mut [u16]) {
        let groups = ws.len();
        let blocks = groups / BLOCK;
        let mut steps = [0u8; BLOCK * GROUP];
        unsafe {
            for b in 0..blocks {
                let values = block_values(format, wq, b, &mut steps);
                for (l, q) in values.into_iter().enumerate() {
                    let g = b * BLOCK + l;
                    scaled_bf16(q, ws[g], &mut out[g * GROUP..]);
                }
            }
            // The tail groups, in order.
            let low = _mm256_set1_epi8(0x0f);
            let eight = _mm256_set1_epi8(8);
            for g in blocks * BLOCK..groups {
                let q: __m256i = match format {
                    QuantFormat::Q8 => _mm256_loadu_si256(wq.as_ptr().add(g * GROUP) as *const __m256i),
                    QuantFormat::Q4 => {
                        let b = _mm256_loadu_si256(wq.as_ptr().add((g / 2) * GROUP) as *const __m256i);
                        let n = if g % 2 == 0 { b } else { _mm256_srli_epi16(b, 4) };
                        _mm256_sub_epi8(_mm256_and_si256(n, low), eight)
                    }
                };
                scaled_bf16(q, ws[g], &mut out[g * GROUP..]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32, scale: f32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                ((s >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    /// Every kernel gives the integer-exact reference (as f64 sums) within f32 rounding, for
    /// widths with and without a whole vector's worth of groups.
    #[test]
    fn kernels_agree_with_the_exact_sums() {
        for cols in [64, 128, 512, 576, 1024, 1088, 3072] {
            let rows = 3;
            let w = data(rows * cols, 7, 0.05);
            let x = data(2 * cols, 11, 3.0);
            let xr = QuantRows::new(&x, cols);
            for format in [QuantFormat::Q8, QuantFormat::Q4] {
                let q =
                    QuantData::quantize(format, rows, cols, &|r, o| o.copy_from_slice(&w[r * cols..(r + 1) * cols]))
                        .unwrap();
                for r in 0..rows {
                    for i in 0..2 {
                        // Exact: dequantized weights and activations, products summed in f64.
                        let mut wr = vec![0.0; cols];
                        q.dequantize(r * cols, &mut wr);
                        let (xd, xq) = xr.row(i);
                        let xv = |c: usize| xd[c / GROUP] as f64 * xq[q8_at(cols / GROUP, c / GROUP, c % GROUP)] as f64;
                        let exact: f64 = (0..cols).map(|c| wr[c] as f64 * xv(c)).sum();
                        let mag: f64 = (0..cols).map(|c| (wr[c] as f64 * xv(c)).abs()).sum();
                        for isa in Isa::available() {
                            let mut one = [0.0];
                            dot_rows_with(isa, &q, r, &xr, i, &mut one);
                            let got = one[0] as f64;
                            assert!(
                                (got - exact).abs() <= 1e-5 * mag + 1e-30,
                                "{format:?} {isa:?} cols {cols} row {r}.{i}: {got} vs {exact}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Several activation rows at once give each row's single-row result, bit for bit.
    #[test]
    fn row_blocks_equal_single_rows() {
        let (rows, cols) = (2, 1024);
        let w = data(rows * cols, 5, 0.05);
        let x = data(7 * cols, 6, 1.0);
        let xr = QuantRows::new(&x, cols);
        for format in [QuantFormat::Q8, QuantFormat::Q4] {
            let q = QuantData::quantize(format, rows, cols, &|r, o| o.copy_from_slice(&w[r * cols..(r + 1) * cols]))
                .unwrap();
            for isa in Isa::available() {
                for r in 0..rows {
                    let mut all = [0.0; 7];
                    dot_rows_with(isa, &q, r, &xr, 0, &mut all);
                    for (i, v) in all.iter().enumerate() {
                        let mut one = [0.0];
                        dot_rows_with(isa, &q, r, &xr, i, &mut one);
                        assert_eq!(*v, one[0], "{format:?} {isa:?} row {r}, input {i}");
                    }
                }
            }
        }
    }

    /// Blocks of weight rows give each row's own result, bit for bit, at batch 1 and above.
    #[test]
    fn weight_row_blocks_equal_single_rows() {
        // 34 groups: a tail past the vectors of 16; 40 rows: ranges across tiles of 16; 9 and
        // 17 inputs: several calls of up to 4 or 8 rows.
        let (rows, cols) = (40, 1088);
        let w = data(rows * cols, 9, 0.05);
        for n in [1, 3, 9, 17] {
            let x = data(n * cols, 4, 1.0);
            let xr = QuantRows::new(&x, cols);
            for format in [QuantFormat::Q8, QuantFormat::Q4] {
                let q =
                    QuantData::quantize(format, rows, cols, &|r, o| o.copy_from_slice(&w[r * cols..(r + 1) * cols]))
                        .unwrap();
                for isa in Isa::available() {
                    for (a, b) in [(0, 40), (3, 37), (15, 17), (3, 4)] {
                        let mut block = vec![0.0; (b - a) * n];
                        dot_block_with(isa, &q, a..b, &xr, &mut block);
                        for j in a..b {
                            let mut one = vec![0.0; n];
                            dot_rows_with(isa, &q, j, &xr, 0, &mut one);
                            assert_eq!(
                                &block[(j - a) * n..(j - a + 1) * n],
                                &one[..],
                                "{format:?} {isa:?} row {j}, n {n}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// `dot_block_to` writes each product at its row and column step and nowhere else: a batch's
    /// outputs (`[n, out]`, weight rows as columns) inside a larger buffer of NaNs.
    #[test]
    fn products_land_at_their_steps_and_nowhere_else() {
        let (rows, cols, n) = (37, 1024, 9);
        let w = data(rows * cols, 13, 0.05);
        let x = data(n * cols, 14, 1.0);
        let xr = QuantRows::new(&x, cols);
        for format in [QuantFormat::Q8, QuantFormat::Q4] {
            let q = QuantData::quantize(format, rows, cols, &|r, o| o.copy_from_slice(&w[r * cols..(r + 1) * cols]))
                .unwrap();
            let mut want = vec![0.0; rows * n];
            dot_block_with(Isa::best(), &q, 0..rows, &xr, &mut want);
            // Rows 5..30 into columns 5..30 of an [n, rows] output, which sits 3 values into the buffer.
            let (a, b, at) = (5, 30, 3);
            let mut buf = vec![f32::NAN; at + n * rows + 2];
            // SAFETY: row j (a ≤ j < b) times input i goes to at + i · rows + j, inside `buf`.
            unsafe { dot_block_to(&q, a..b, &xr, buf.as_mut_ptr().add(at + a), 1, rows) };
            for (p, v) in buf.iter().enumerate() {
                let inside = p >= at && p < at + n * rows && ((p - at) % rows) >= a && ((p - at) % rows) < b;
                if inside {
                    let (i, j) = ((p - at) / rows, (p - at) % rows);
                    assert_eq!(v.to_bits(), want[j * n + i].to_bits(), "{format:?}: row {j}, input {i}");
                } else {
                    assert!(v.is_nan(), "{format:?}: value {p} written outside the outputs");
                }
            }
        }
    }

    /// bf16 rows are the dequantized values rounded to nearest even (where the CPU reads them).
    #[test]
    fn bf16_rows_round_the_dequantized_values() {
        let (rows, cols) = (3, 1088); // a block of 16 groups and a tail
        let w = data(rows * cols, 12, 0.3);
        for format in [QuantFormat::Q8, QuantFormat::Q4] {
            let q = QuantData::quantize(format, rows, cols, &|r, o| o.copy_from_slice(&w[r * cols..(r + 1) * cols]))
                .unwrap();
            for r in 0..rows {
                let mut f = vec![0.0; cols];
                q.dequantize(r * cols, &mut f);
                let mut bits = vec![0u16; cols];
                if row_bf16(&q, r, &mut bits) {
                    let want: Vec<u16> = f.iter().map(|&v| half::bf16::from_f32(v).to_bits()).collect();
                    assert_eq!(bits, want, "{format:?} row {r}");
                }
            }
        }
    }

    /// The vectorised activation quantization gives the portable one's values, bit for bit
    /// (ties, zeros, non-finite groups included).
    #[test]
    fn quantize_paths_agree() {
        let cols = 1088;
        let mut x = data(3 * cols, 21, 4.0);
        // A group whose scale is 1: its halves are ties.
        x[..4].copy_from_slice(&[127.0, 2.5, -3.5, 0.5]);
        x[100..132].fill(0.0);
        x[200] = f32::INFINITY;
        x[300] = f32::NAN;
        // A group too small for 127 / m, with a zero.
        for (i, v) in x[416..448].iter_mut().enumerate() {
            *v = 1e-38 * (i as f32 - 12.0);
        }
        let new = |f: &dyn Fn(&[f32], &mut QuantRows)| {
            let mut r = QuantRows {
                cols,
                q: vec![0; x.len()],
                d: vec![0.0; x.len() / GROUP],
                offsets4: vec![0; x.len() / GROUP],
                offsets8: vec![0; x.len() / GROUP],
            };
            f(&x, &mut r);
            r
        };
        let a = new(&quantize_portable);
        assert_eq!(&a.q[..4], &[127, 2, -4, 0], "ties to even");
        #[cfg(target_arch = "x86_64")]
        if crate::backend::cpu::matmul::has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            let b = new(&|x, r| unsafe { quantize_avx2(x, r) });
            for g in 0..a.d.len() {
                assert_eq!(a.d[g].to_bits(), b.d[g].to_bits(), "scale of group {g}");
                assert_eq!(a.offsets4[g], b.offsets4[g], "group {g}");
                assert_eq!(a.offsets8[g], b.offsets8[g], "group {g}");
            }
            let groups = cols / GROUP;
            for (i, (qa, qb)) in a.q.chunks(cols).zip(b.q.chunks(cols)).enumerate() {
                for g in 0..groups {
                    for e in 0..GROUP {
                        let at = q8_at(groups, g, e);
                        assert_eq!(qa[at], qb[at], "row {i} group {g} element {e}");
                    }
                }
            }
        }
    }

    #[test]
    fn rounding_is_to_nearest_with_ties_to_even() {
        for (v, r) in
            [(2.5, 2.0), (3.5, 4.0), (-2.5, -2.0), (0.49, 0.0), (-0.51, -1.0), (126.6, 127.0), (-127.4, -127.0)]
        {
            assert_eq!(round_even(v), r, "{v}");
        }
        assert!(round_even(f32::NAN).is_nan());
    }

    #[test]
    fn activation_quantization_is_within_half_a_step_and_non_finite_spreads() {
        let cols = 1088; // a block of 16 groups and a tail of 18
        let x = data(2 * cols, 3, 2.0);
        let q = QuantRows::new(&x, cols);
        for (i, xr) in x.chunks(cols).enumerate() {
            let (d, qs) = q.row(i);
            for (g, xs) in xr.chunks(GROUP).enumerate() {
                for (e, v) in xs.iter().enumerate() {
                    let back = d[g] * qs[q8_at(cols / GROUP, g, e)] as f32;
                    assert!((back - v).abs() <= d[g] * 0.5 + 1e-6, "row {i} group {g}: {v} -> {back}");
                }
            }
        }
        let x = data(64, 3, 2.0);
        let mut bad = x.clone();
        bad[5] = f32::INFINITY;
        let w = QuantData::quantize(QuantFormat::Q8, 1, 64, &|_, o| o.copy_from_slice(&x)).unwrap();
        let qb = QuantRows::new(&bad, 64);
        for isa in Isa::available() {
            let mut one = [0.0];
            dot_rows_with(isa, &w, 0, &qb, 0, &mut one);
            assert!(!one[0].is_finite(), "{isa:?}");
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// Few-row product speed, weights from memory, on `THREADS` threads (default 1) each
    /// streaming its own matrices, against a plain read of the same bytes, with `BATCH`
    /// activation rows (default 1; from 4 the products are compute-bound). Run by hand:
    /// `cargo test --release --lib quant_kernel_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn quant_kernel_speed() {
        let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
        let (threads, reps, batch) = (env("THREADS", 1), env("REPS", 64), env("BATCH", 1));
        let isa = if std::env::var("AVX2").is_ok() { Isa::Avx2 } else { Isa::best() };
        for (rows, cols) in [(3072usize, 1024usize), (1024, 3072)] {
            let x: Vec<f32> = (0..batch * cols).map(|i| ((i * 7919) % 113) as f32 / 50.0 - 1.0).collect();
            let xr = QuantRows::new(&x, cols);
            for format in [QuantFormat::Q8, QuantFormat::Q4] {
                let ws: Vec<QuantData> = (0..reps)
                    .map(|s| {
                        QuantData::quantize(format, rows, cols, &|r, o| {
                            for (c, v) in o.iter_mut().enumerate() {
                                *v = (((r * 31 + c * 17 + s) % 97) as f32 - 48.0) / 100.0;
                            }
                        })
                        .unwrap()
                    })
                    .collect();
                let bytes: usize = ws.iter().map(|w| w.bytes()).sum();
                let per = ws.len().div_ceil(threads);
                let time = |f: &(dyn Fn(&QuantData) + Sync)| {
                    (0..5)
                        .map(|_| {
                            let t = std::time::Instant::now();
                            std::thread::scope(|sc| {
                                for part in ws.chunks(per) {
                                    sc.spawn(move || part.iter().for_each(f));
                                }
                            });
                            t.elapsed().as_secs_f64()
                        })
                        .fold(f64::MAX, f64::min)
                };
                let kernel = time(&|w| {
                    let mut out = vec![0.0f32; rows * batch];
                    dot_block_with(isa, w, 0..rows, &xr, &mut out);
                    std::hint::black_box(&out);
                });
                let read = time(&|w| {
                    let p = w.parts().1;
                    std::hint::black_box(p.chunks_exact(64).fold([0u64; 8], |mut a, c| {
                        for (a, b) in a.iter_mut().zip(c.chunks_exact(8)) {
                            *a ^= u64::from_le_bytes(b.try_into().unwrap());
                        }
                        a
                    }));
                });
                println!(
                    "{format:?} [{rows}, {cols}], batch {batch}, {threads} thread(s): kernel {:.1} GB/s, plain read {:.1} GB/s",
                    bytes as f64 / kernel / 1e9,
                    bytes as f64 / read / 1e9
                );
            }
        }
    }
}
