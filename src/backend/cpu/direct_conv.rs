//! Direct convolution products on AVX2/FMA: `y[r, o] = b[o] + Σ_tap Σ_i x[r·s + tap·d, i] ·
//! W[o, tap·in + i]`, read straight from the input rows (no im2col copy) and from the `[out, k·in]`
//! matrix the other paths use (a plain product `x · Wᵀ` is the case k = 1).
//!
//! A block of up to 3 output rows × 4 output channels keeps its 12 sums in registers, 8 input
//! channels per step, over the whole reduction, then adds each sum's lanes once. The weights are
//! read in their stored layout, so a few-row product (a streamed frame) reads each weight row once
//! per block of rows: few rows split the output channels across threads (each thread streams its
//! share of the weights once), many rows split the rows. A few parts per thread, so that a thread
//! slowed by other work on its core leaves the rest to the others.
//!
//! (An AVX-512 kernel with 4 × 4 blocks of 16 lanes measured up to 25 % faster on the wide
//! channels of this project's EPYC, but its intrinsics need Rust 1.89; the crate's minimum is 1.85.)

use rayon::prelude::*;

use super::Cpu;
use crate::backend::tensor::Tensor;

/// Output rows per register block.
const MR: usize = 3;
/// Output channels per register block (the horizontal sums take them four at a time).
const NR: usize = 4;
/// f32 lanes per vector.
const LANES: usize = 8;
/// Parts of the work per thread.
const TASKS_PER_THREAD: usize = 4;
/// Output rows one task walks through for each block of channels: their input rows stay in
/// cache while the weights of the channels stream past.
const ROW_TILE: usize = 64;

/// The shape of one direct product: `rows` outputs of `cout` channels from input rows of `cin`
/// values, `kernel` taps `dilation` rows apart, output row r starting at input row `r·stride`.
#[derive(Clone, Copy, Debug)]
pub(super) struct ConvShape {
    pub rows: usize,
    pub cin: usize,
    pub cout: usize,
    pub kernel: usize,
    pub dilation: usize,
    pub stride: usize,
}

/// Whether this CPU runs the direct kernel for inputs of `cin` channels (AVX2 and FMA, whole
/// vectors); otherwise the convolutions take im2col and the SGEMM.
pub(super) fn available(cin: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        cin > 0 && cin.is_multiple_of(LANES) && super::matmul::has_avx2()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = cin;
        false
    }
}

/// A raw output pointer shared by tasks that write disjoint blocks.
struct OutPtr(*mut f32);
// SAFETY: every task writes its own rectangle of the output only.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// `[rows, cout]` = the direct product of `x` (`[·, cin]` rows) and `w` (`[cout, kernel·cin]`),
/// plus `bias` when given. Only when `available(cin)`.
pub(super) fn conv_product(cpu: &Cpu, x: &Tensor, w: &[f32], bias: Option<&[f32]>, s: ConvShape) -> Tensor {
    assert!(available(s.cin), "direct conv: no AVX2 kernel for {} input channels", s.cin);
    assert_eq!(w.len(), s.cout * s.kernel * s.cin, "direct conv: weight size");
    if s.rows > 0 {
        let last = (s.rows - 1) * s.stride + (s.kernel - 1) * s.dilation;
        assert!(last < x.rows(), "direct conv: output row {} reads past the input", s.rows - 1);
    }
    if let Some(b) = bias {
        assert_eq!(b.len(), s.cout, "direct conv: a bias of {} for {} outputs", b.len(), s.cout);
    }
    let mut y = cpu.output(s.rows, s.cout);
    if s.rows == 0 || s.cout == 0 {
        return y;
    }
    let threads = cpu.threads();
    // Split whichever operand is larger, so that each thread reads its share of it once: the
    // weights (output channels, in whole register blocks) or the rows.
    let parts = if threads == 1 { 1 } else { TASKS_PER_THREAD * threads };
    let tasks: Vec<(usize, usize, usize, usize)> = if s.rows < s.cout {
        let per = s.cout.div_ceil(parts).next_multiple_of(NR);
        (0..s.cout).step_by(per).map(|o| (0, s.rows, o, (o + per).min(s.cout))).collect()
    } else {
        let per = s.rows.div_ceil(parts).next_multiple_of(MR);
        (0..s.rows).step_by(per).map(|r| (r, (r + per).min(s.rows), 0, s.cout)).collect()
    };
    let out = OutPtr(y.host_mut().as_mut_ptr());
    let run = |&(r0, r1, o0, o1): &(usize, usize, usize, usize)| {
        let out = &out;
        // SAFETY: AVX2 and FMA are present (`available`); the rows and channels are in range (checked
        // above) and each task writes its own rectangle of y.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx2::rect(x.host(), w, bias, s, out.0, r0..r1, o0..o1)
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (out, r0, r1, o0, o1);
    };
    if tasks.len() == 1 || threads == 1 {
        tasks.iter().for_each(run);
    } else {
        cpu.pool.install(|| tasks.par_iter().for_each(run));
    }
    y
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::{ConvShape, LANES, MR, NR, ROW_TILE};

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
}

#[cfg(test)]
mod tests {
    use super::{ConvShape, available, conv_product};
    use crate::backend::Cpu;
    use crate::backend::tensor::Tensor;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    /// Every block shape (row and channel tails), both ways of splitting the work, taps, dilation
    /// and stride against the definition in f64.
    #[test]
    fn direct_product_is_the_definition() {
        if !available(16) {
            eprintln!("no AVX2: the direct kernel is not used on this CPU");
            return;
        }
        for threads in [1, 2] {
            let cpu = Cpu::new(threads).unwrap();
            for (rows, cin, cout, kernel, dilation, stride) in [
                (1, 16, 4, 1, 1, 1),
                (3, 32, 9, 3, 1, 1),
                (7, 48, 5, 7, 3, 1),
                (13, 16, 40, 2, 1, 2),
                (70, 32, 6, 7, 9, 1),
                (9, 64, 1, 4, 2, 3),
            ] {
                let (w, bias) = (values(cout * kernel * cin, 1), values(cout, 2));
                let input = (rows - 1) * stride + (kernel - 1) * dilation + 1;
                let x = values(input * cin, 3);
                let shape = ConvShape { rows, cin, cout, kernel, dilation, stride };
                for with_bias in [false, true] {
                    let b = with_bias.then_some(bias.as_slice());
                    let y = conv_product(&cpu, &Tensor::from_vec(x.clone(), input, cin), &w, b, shape).to_host();
                    assert_eq!(y.len(), rows * cout);
                    for r in 0..rows {
                        for o in 0..cout {
                            let mut want = if with_bias { bias[o] as f64 } else { 0.0 };
                            for tap in 0..kernel {
                                for i in 0..cin {
                                    let xi = x[(r * stride + tap * dilation) * cin + i] as f64;
                                    want += xi * w[o * kernel * cin + tap * cin + i] as f64;
                                }
                            }
                            let got = y[r * cout + o] as f64;
                            assert!((got - want).abs() < 1e-4, "{shape:?}: y[{r}, {o}] = {got}, want {want}");
                        }
                    }
                }
            }
        }
    }
}
