//! The AVX2/FMA kernel of the direct product: blocks of up to 3 output rows × 4 output channels
//! (12 sums of 8 lanes in registers), 8 input channels per step.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{ConvShape, NR, ROW_TILE};

/// Output rows per register block.
pub(super) const MR: usize = 3;
/// f32 lanes per vector.
const LANES: usize = 8;

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
/// AVX2 and FMA must be present; `x` must hold every input row the rows read, `w` be
/// `[s.cout, s.kernel·s.cin]`, `s.cin` a multiple of 8, and `y` valid for `[s.rows, s.cout]`
/// with no other writer of this rectangle.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
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
                        (3, NR) => block::<3, NR>(xr, wr, s, d),
                        (2, NR) => block::<2, NR>(xr, wr, s, d),
                        (1, NR) => block::<1, NR>(xr, wr, s, d),
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
/// AVX2 and FMA; the rows, weight rows and outputs must be in bounds for `s` (see `rect`).
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn block<const M: usize, const N: usize>(x: *const f32, w: *const f32, s: ConvShape, d: Dest) {
    let k = s.kernel * s.cin;
    let row_step = s.stride * s.cin;
    let mut acc = [[_mm256_setzero_ps(); N]; M];
    for tap in 0..s.kernel {
        // SAFETY: every pointer below stays inside its row (cin a multiple of 8) and the
        // caller's bounds.
        unsafe {
            let xt = x.add(tap * s.dilation * s.cin);
            let wt = w.add(tap * s.cin);
            let mut i = 0;
            while i < s.cin {
                let mut a = [_mm256_setzero_ps(); M];
                for (mi, v) in a.iter_mut().enumerate() {
                    *v = _mm256_loadu_ps(xt.add(mi * row_step + i));
                }
                for ni in 0..N {
                    let b = _mm256_loadu_ps(wt.add(ni * k + i));
                    for (row, &av) in acc.iter_mut().zip(&a) {
                        row[ni] = _mm256_fmadd_ps(av, b, row[ni]);
                    }
                }
                i += LANES;
            }
        }
    }
    // SAFETY: M rows × N channels of d are in bounds (the caller's).
    unsafe {
        for (mi, row) in acc.iter().enumerate() {
            let dst = d.y.add(mi * d.cout);
            if N == NR {
                // The row's 4 sums at once: pairwise horizontal adds, then the two halves.
                let h = _mm256_hadd_ps(_mm256_hadd_ps(row[0], row[1]), _mm256_hadd_ps(row[2], row[3]));
                let mut sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
                if let Some(b) = d.bias {
                    sums = _mm_add_ps(sums, _mm_loadu_ps(b.as_ptr()));
                }
                _mm_storeu_ps(dst, sums);
            } else {
                for (ni, &v) in row.iter().enumerate() {
                    *dst.add(ni) = sum_lanes(v) + d.bias.map_or(0.0, |b| b[ni]);
                }
            }
        }
    }
}

/// The sum of a vector's 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn sum_lanes(v: __m256) -> f32 {
    let h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps::<1>(h, h)))
}
