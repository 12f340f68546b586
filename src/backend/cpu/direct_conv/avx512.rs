//! The AVX-512 kernels of the direct product: blocks of up to 4 output rows × 4 output channels
//! (16 sums of 16 lanes in registers); a full block's 16 sums are reduced together by one
//! transposing shuffle tree. Two operand types share the blocking: f32 (16 input channels per
//! step, fused multiply-adds) and bf16 (32 per step, `vdpbf16ps`: pairs of bf16 products added
//! into f32 lanes, twice the f32 rate, where the CPU has AVX-512 BF16).

use std::arch::x86_64::*;
use std::ops::Range;

use super::{ConvShape, NR, ROW_TILE};

/// Output rows per register block.
pub(super) const MR: usize = 4;
/// Where a block's sums go: `y` (`[·, cout]` rows) and the bias, if any.
#[derive(Clone, Copy)]
struct Dest<'a> {
    y: *mut f32,
    cout: usize,
    bias: Option<&'a [f32]>,
}

/// An operand element of the products: how a vector of input channels is loaded and multiplied
/// into 16 f32 sums. Its functions run inlined into a kernel compiled with the instructions they
/// use (`rect`, `rect_bf16`).
pub(super) trait Operand: Copy {
    /// Input channels per vector.
    const STEP: usize;
    type V: Copy;
    /// # Safety
    /// `STEP` elements readable at `p`; the CPU has the kernel's instructions.
    unsafe fn load(p: *const Self) -> Self::V;
    /// `acc + a·b`, lane sums of the products.
    /// # Safety
    /// The CPU has the kernel's instructions.
    unsafe fn madd(acc: __m512, a: Self::V, b: Self::V) -> __m512;
}

impl Operand for f32 {
    const STEP: usize = 16;
    type V = __m512;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: the caller's (16 readable values, AVX-512F).
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn madd(acc: __m512, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F (the caller's).
        unsafe { _mm512_fmadd_ps(a, b, acc) }
    }
}

/// A bf16 value's bits (the top half of the f32 it stands for).
impl Operand for u16 {
    const STEP: usize = 32;
    type V = __m512bh;
    #[inline(always)]
    unsafe fn load(p: *const u16) -> __m512bh {
        // SAFETY: the caller's (32 readable values); any 64 bytes are 32 bf16.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(p as *const __m512i)) }
    }
    #[inline(always)]
    unsafe fn madd(acc: __m512, a: __m512bh, b: __m512bh) -> __m512 {
        // SAFETY: AVX-512 BF16 (the caller's).
        unsafe { _mm512_dpbf16_ps(acc, a, b) }
    }
}

/// Output rows `rows` × channels `chans` of the product into `y` (`[s.rows, s.cout]`), f32.
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
    // SAFETY: the caller's.
    unsafe { rect_of(x, w, bias, s, y, rows, chans) }
}

/// `rect` on bf16 inputs and weights (their bits), sums in f32.
///
/// # Safety
/// AVX-512F and AVX-512 BF16 must be present; as `rect`, with `s.cin` a multiple of 32.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn rect_bf16(
    x: &[u16],
    w: &[u16],
    bias: Option<&[f32]>,
    s: ConvShape,
    y: *mut f32,
    rows: Range<usize>,
    chans: Range<usize>,
) {
    // SAFETY: the caller's.
    unsafe { rect_of(x, w, bias, s, y, rows, chans) }
}

/// Rounds `src` to bf16 (to nearest, ties to even) into `dst`, 32 values per instruction.
///
/// # Safety
/// AVX-512F and AVX-512 BF16 must be present.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn round_to_bf16(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len());
    let whole = src.len() / 32 * 32;
    for i in (0..whole).step_by(32) {
        // SAFETY: 32 values from i are inside both slices.
        unsafe {
            let lo = _mm512_loadu_ps(src.as_ptr().add(i));
            let hi = _mm512_loadu_ps(src.as_ptr().add(i + 16));
            let v = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo));
            _mm512_storeu_si512(dst.as_mut_ptr().add(i) as *mut __m512i, v);
        }
    }
    for (d, &v) in dst[whole..].iter_mut().zip(&src[whole..]) {
        *d = half::bf16::from_f32(v).to_bits();
    }
}

/// The blocking of `rect` for either operand; inlined into the kernel that has its instructions.
///
/// # Safety
/// As `rect`, with `s.cin` a multiple of `E::STEP` and the CPU running `E`'s instructions.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn rect_of<E: Operand>(
    x: &[E],
    w: &[E],
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
                        (4, NR) => block::<4, NR, E>(xr, wr, s, d),
                        (3, NR) => block::<3, NR, E>(xr, wr, s, d),
                        (2, NR) => block::<2, NR, E>(xr, wr, s, d),
                        (1, NR) => block::<1, NR, E>(xr, wr, s, d),
                        (4, _) => block::<4, 1, E>(xr, wr, s, d),
                        (3, _) => block::<3, 1, E>(xr, wr, s, d),
                        (2, _) => block::<2, 1, E>(xr, wr, s, d),
                        _ => block::<1, 1, E>(xr, wr, s, d),
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
/// The CPU runs `E`'s instructions; the rows, weight rows and outputs must be in bounds for `s`
/// (see `rect`).
#[inline(always)]
unsafe fn block<const M: usize, const N: usize, E: Operand>(x: *const E, w: *const E, s: ConvShape, d: Dest) {
    let k = s.kernel * s.cin;
    let row_step = s.stride * s.cin;
    // SAFETY: AVX-512F (the caller's).
    let mut acc = [[unsafe { _mm512_setzero_ps() }; N]; M];
    for tap in 0..s.kernel {
        // SAFETY: every pointer below stays inside its row (cin a multiple of E::STEP) and the
        // caller's bounds.
        unsafe {
            let xt = x.add(tap * s.dilation * s.cin);
            let wt = w.add(tap * s.cin);
            let mut i = 0;
            while i < s.cin {
                let a: [E::V; M] = std::array::from_fn(|mi| E::load(xt.add(mi * row_step + i)));
                for ni in 0..N {
                    let b = E::load(wt.add(ni * k + i));
                    for (row, &av) in acc.iter_mut().zip(&a) {
                        row[ni] = E::madd(row[ni], av, b);
                    }
                }
                i += E::STEP;
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
