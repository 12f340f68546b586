//! The AVX-512 kernel of the direct product: blocks of up to 4 output rows × 4 output channels
//! (16 sums of 16 lanes in registers), 16 input channels per step; a full block's 16 sums are
//! reduced together by one transposing shuffle tree.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{ConvShape, NR, ROW_TILE};

/// Output rows per register block.
pub(super) const MR: usize = 4;
/// f32 lanes per vector.
const LANES: usize = 16;

/// Where a block's sums go: `y` (`[·, cout]` rows) and the bias, if any.
#[derive(Clone, Copy)]
struct Dest<'a> {
    y: *mut f32,
    cout: usize,
    bias: Option<&'a [f32]>,
}

/// Output rows `rows` × channels `chans` of the product into `y` (`[s.rows, s.cout]`).
///
/// # Safety
/// AVX-512F must be present; `x` must hold every input row the rows read, `w` be
/// `[s.cout, s.kernel·s.cin]`, `s.cin` a multiple of 16, and `y` valid for `[s.rows, s.cout]`
/// with no other writer of this rectangle.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn rect(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    s: ConvShape,
    y: *mut f32,
    rows: Range<usize>,
    chans: Range<usize>,
) {
    let k = s.kernel * s.cin;
    for t0 in rows.clone().step_by(ROW_TILE) {
        let t1 = (t0 + ROW_TILE).min(rows.end);
        let mut o = chans.start;
        while o < chans.end {
            let n = if chans.end - o >= NR { NR } else { 1 };
            let mut r = t0;
            while r < t1 {
                let m = (t1 - r).min(MR);
                // SAFETY: the caller's bounds; `m` rows and `n` channels from (r, o) are in
                // range of x, w and y.
                unsafe {
                    let xr = x.as_ptr().add(r * s.stride * s.cin);
                    let wr = w.as_ptr().add(o * k);
                    let d = Dest { y: y.add(r * s.cout + o), cout: s.cout, bias: bias.map(|b| &b[o..]) };
                    match (m, n) {
                        (4, NR) => block::<4, NR>(xr, wr, s, d),
                        (3, NR) => block::<3, NR>(xr, wr, s, d),
                        (2, NR) => block::<2, NR>(xr, wr, s, d),
                        (1, NR) => block::<1, NR>(xr, wr, s, d),
                        (4, _) => block::<4, 1>(xr, wr, s, d),
                        (3, _) => block::<3, 1>(xr, wr, s, d),
                        (2, _) => block::<2, 1>(xr, wr, s, d),
                        _ => block::<1, 1>(xr, wr, s, d),
                    }
                }
                r += m;
            }
            o += n;
        }
    }
}

/// `M` output rows (input rows `x`, `x + stride·cin`, …) × `N` channels (weight rows `w`,
/// `w + k·cin`, …), summed over every tap and input channel, plus the bias, into `d`.
///
/// # Safety
/// AVX-512F; the rows, weight rows and outputs must be in bounds for `s` (see `rect`).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn block<const M: usize, const N: usize>(x: *const f32, w: *const f32, s: ConvShape, d: Dest) {
    let k = s.kernel * s.cin;
    let row_step = s.stride * s.cin;
    let mut acc = [[_mm512_setzero_ps(); N]; M];
    for tap in 0..s.kernel {
        // SAFETY: every pointer below stays inside its row (cin a multiple of 16) and the
        // caller's bounds.
        unsafe {
            let xt = x.add(tap * s.dilation * s.cin);
            let wt = w.add(tap * s.cin);
            let mut i = 0;
            while i < s.cin {
                let mut a = [_mm512_setzero_ps(); M];
                for (mi, v) in a.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(xt.add(mi * row_step + i));
                }
                for ni in 0..N {
                    let b = _mm512_loadu_ps(wt.add(ni * k + i));
                    for (row, &av) in acc.iter_mut().zip(&a) {
                        row[ni] = _mm512_fmadd_ps(av, b, row[ni]);
                    }
                }
                i += LANES;
            }
        }
    }
    // SAFETY: M rows × N channels of d are in bounds (the caller's).
    unsafe {
        if M == 4 && N == 4 {
            // The 16 sums at once: lane 4·m + n of `sums` is acc[m][n]'s total.
            let v: [__m512; 16] = std::array::from_fn(|i| acc[i / 4][i % 4]);
            let sums = transpose_sum(&v);
            let parts = [
                _mm512_extractf32x4_ps::<0>(sums),
                _mm512_extractf32x4_ps::<1>(sums),
                _mm512_extractf32x4_ps::<2>(sums),
                _mm512_extractf32x4_ps::<3>(sums),
            ];
            for (mi, mut p) in parts.into_iter().enumerate() {
                if let Some(b) = d.bias {
                    p = _mm_add_ps(p, _mm_loadu_ps(b.as_ptr()));
                }
                _mm_storeu_ps(d.y.add(mi * d.cout), p);
            }
        } else {
            for (mi, row) in acc.iter().enumerate() {
                for (ni, v) in row.iter().enumerate() {
                    *d.y.add(mi * d.cout + ni) = _mm512_reduce_add_ps(*v) + d.bias.map_or(0.0, |b| b[ni]);
                }
            }
        }
    }
}

/// The lane sums of 16 vectors as one vector (lane i = Σ v[i]), by pairwise shuffles and adds.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose_sum(v: &[__m512; 16]) -> __m512 {
    // Pairs: per 128-bit lane [a0+a2, b0+b2, a1+a3, b1+b3].
    let p: [__m512; 8] = std::array::from_fn(|j| {
        _mm512_add_ps(_mm512_unpacklo_ps(v[2 * j], v[2 * j + 1]), _mm512_unpackhi_ps(v[2 * j], v[2 * j + 1]))
    });
    // Quads: per 128-bit lane [a, b, c, d], partial over that lane.
    let q: [__m512; 4] = std::array::from_fn(|j| {
        let (a, b) = (_mm512_castps_pd(p[2 * j]), _mm512_castps_pd(p[2 * j + 1]));
        _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)))
    });
    // Across the 128-bit lanes: two levels of lane shuffles.
    let fold = |a: __m512, b: __m512| {
        _mm512_add_ps(_mm512_shuffle_f32x4::<0b10_00_10_00>(a, b), _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b))
    };
    fold(fold(q[0], q[1]), fold(q[2], q[3]))
}
