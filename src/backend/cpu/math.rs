//! Element-wise and per-row CPU kernels: norms, activations, the fast transcendental functions
//! they use (branch-free, so the loops vectorize), and the column statistics over rows.

#[cfg(target_arch = "x86_64")]
use super::matmul::has_avx2;

/// RMSNorm of each row in place: `x · rsqrt(mean(x²) + eps) · w`.
pub fn rms_norm(x: &mut [f32], w: &[f32], eps: f32) {
    let d = w.len();
    for row in x.chunks_mut(d) {
        let ms = row.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let r = 1.0 / (ms + eps).sqrt();
        for (v, g) in row.iter_mut().zip(w) {
            *v = *v * r * g;
        }
    }
}

/// `gate = silu(gate) · up`, element-wise.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

pub fn silu(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v /= 1.0 + (-*v).exp();
    }
}

/// `x = 1 / (1 + e^−x)`, element-wise.
pub fn sigmoid(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 1.0 / (1.0 + (-*v).exp());
    }
}

/// ELU with α = 1: `x` where `x > 0`, else `eˣ − 1` (`exp_m1`, accurate near 0).
pub fn elu(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = if *v > 0.0 { *v } else { v.exp_m1() };
    }
}

/// The mean of the rows of `x` (`[rows, out.len()]`, at least one row) into `out`: each column
/// summed in f64 in row order, divided by the rows in f64, rounded once.
pub fn mean_rows(x: &[f32], out: &mut [f32]) {
    let cols = out.len();
    let rows = x.len() / cols.max(1);
    let mut sum = vec![0.0f64; cols];
    for row in x.chunks(cols.max(1)) {
        for (s, v) in sum.iter_mut().zip(row) {
            *s += *v as f64;
        }
    }
    for (o, s) in out.iter_mut().zip(&sum) {
        *o = (s / rows as f64) as f32;
    }
}

/// Weighted statistics of the columns of `x` (`[rows, cols]`, at least one row) into `out`
/// (`[mean | std]`, `2·cols`): weights `e^(l − max l)` per column of `logits` (f32), or 1; then
/// `W = Σ w`, `mean = Σ w·x / W`, `std = sqrt(max(Σ w·(x − mean)² / W, eps))` (a NaN variance stays NaN, as
/// `torch.clamp`), the sums in f64 in row order (`Backend::weighted_stats`).
pub fn weighted_stats(x: &[f32], logits: Option<&[f32]>, eps: f32, out: &mut [f32]) {
    let cols = out.len() / 2;
    if cols == 0 {
        return;
    }
    // 1. The largest logit of each column (softmax's shift).
    let mut max = vec![f32::NEG_INFINITY; cols];
    if let Some(l) = logits {
        for row in l.chunks(cols) {
            for (m, v) in max.iter_mut().zip(row) {
                *m = m.max(*v);
            }
        }
    }
    let weight = |r: usize, c: usize| logits.map_or(1.0, |l| (l[r * cols + c] - max[c]).exp());
    // 2. The weights' sum and the weighted sum, hence the mean.
    let (mut sw, mut swx) = (vec![0.0f64; cols], vec![0.0f64; cols]);
    for (r, row) in x.chunks(cols).enumerate() {
        for (c, v) in row.iter().enumerate() {
            let w = weight(r, c) as f64;
            sw[c] += w;
            swx[c] += w * *v as f64;
        }
    }
    let mean: Vec<f64> = swx.iter().zip(&sw).map(|(a, w)| a / w).collect();
    // 3. The weighted variance around that mean.
    let mut sv = vec![0.0f64; cols];
    for (r, row) in x.chunks(cols).enumerate() {
        for (c, v) in row.iter().enumerate() {
            let d = *v as f64 - mean[c];
            sv[c] += weight(r, c) as f64 * d * d;
        }
    }
    let (m, s) = out.split_at_mut(cols);
    for c in 0..cols {
        m[c] = mean[c] as f32;
        let var = sv[c] / sw[c];
        s[c] = if var < eps as f64 { eps as f64 } else { var }.sqrt() as f32; // (NaN stays NaN)
    }
}

/// `e^v` for `v ≤ 0`, branch-free so that loops over it vectorize: `v = n·ln2 + r` with
/// |r| ≤ ln2/2 (two-part ln2), a degree-7 Taylor polynomial for `e^r` (error < 1e-8 relative),
/// then `2^n` through the exponent bits. Inputs below −87 give `e^−87` (no denormals).
#[inline(always)]
fn exp_neg(v: f32) -> f32 {
    let v = v.clamp(-87.0, 0.0);
    let n = (v * std::f32::consts::LOG2_E + 0.5).floor();
    let r = n.mul_add(-0.693_145_75, v);
    let r = n.mul_add(-1.428_606_8e-6, r);
    let mut p: f32 = 1.0 / 5040.0;
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p.mul_add(r, c);
    }
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `erf(x)` to 6e-7 absolute (the formula's 1.5e-7 plus f32 rounding): Abramowitz & Stegun 7.1.26,
/// `1 − (a₁t + … + a₅t⁵)·e^(−x²)` with `t = 1/(1 + p|x|)`, sign restored. Branch-free.
#[inline(always)]
pub fn erf_fast(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / 0.327_591_1f32.mul_add(a, 1.0);
    let mut poly = 1.061_405_4f32;
    for c in [-1.453_152_1, 1.421_413_8, -0.284_496_72, 0.254_829_6] {
        poly = poly.mul_add(t, c);
    }
    let y = 1.0 - poly * t * exp_neg(-a * a);
    y.copysign(x)
}

fn gelu_body(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf_fast(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(x: &mut [f32]) {
    gelu_body(x)
}

/// GELU with the exact erf form (PyTorch's default `nn.GELU()`), erf to 6e-7.
pub fn gelu_erf(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked).
        return unsafe { gelu_avx2(x) };
    }
    gelu_body(x)
}

/// LayerNorm of each row in place: `(x − mean) / sqrt(var + eps) · w + b`.
pub fn layer_norm(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let d = w.len();
    for row in x.chunks_mut(d) {
        let mean = row.iter().sum::<f32>() / d as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let r = 1.0 / (var + eps).sqrt();
        for ((v, g), c) in row.iter_mut().zip(w).zip(b) {
            *v = (*v - mean) * r * g + c;
        }
    }
}

/// `sin(x)` to ≈1e-7: reduction by π (three-part Cody–Waite), then the degree-11 Taylor polynomial
/// on [−π/2, π/2]; branch-free so that loops over it vectorize.
#[inline(always)]
pub fn sin_fast(x: f32) -> f32 {
    const INV_PI: f32 = std::f32::consts::FRAC_1_PI;
    const PI_A: f32 = 3.140_625;
    const PI_B: f32 = 9.670_258e-4;
    const PI_C: f32 = 6.278_329_e-7;
    let k = (x * INV_PI + 0.5).floor();
    let r = ((x - k * PI_A) - k * PI_B) - k * PI_C;
    let r2 = r * r;
    let p = r + r
        * r2
        * (-1.0 / 6.0 + r2 * (1.0 / 120.0 + r2 * (-1.0 / 5040.0 + r2 * (1.0 / 362_880.0 - r2 / 39_916_800.0))));
    // (−1)^k without a branch.
    let odd = k - 2.0 * (k * 0.5).floor();
    p * (1.0 - 2.0 * odd)
}

#[inline(always)]
fn snake_body(x: &mut [f32], alpha: &[f32], inv_beta: &[f32]) {
    for row in x.chunks_mut(alpha.len()) {
        for ((v, a), ib) in row.iter_mut().zip(alpha).zip(inv_beta) {
            let s = sin_fast(*v * a);
            *v += ib * s * s;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn snake_avx2(x: &mut [f32], alpha: &[f32], inv_beta: &[f32]) {
    snake_body(x, alpha, inv_beta)
}

/// The same arithmetic in 16 lanes (element-wise, so the results are the AVX2 path's).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn snake_avx512(x: &mut [f32], alpha: &[f32], inv_beta: &[f32]) {
    snake_body(x, alpha, inv_beta)
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| std::is_x86_feature_detected!("avx512f"))
}

/// SnakeBeta in place over `[rows, channels]`: `x + sin²(x·α) · inv_beta` (α and 1/β per channel).
pub fn snake_beta(x: &mut [f32], alpha: &[f32], inv_beta: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU supports AVX-512F (checked).
        return unsafe { snake_avx512(x, alpha, inv_beta) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked).
        return unsafe { snake_avx2(x, alpha, inv_beta) };
    }
    snake_body(x, alpha, inv_beta)
}

#[cfg(test)]
mod erf_tests {
    #[test]
    fn erf_fast_is_accurate() {
        let mut worst = 0.0f64;
        for i in -1_000_000..1_000_000 {
            let x = i as f32 * 1e-5;
            let d = (super::erf_fast(x) as f64 - libm::erf(x as f64)).abs();
            worst = worst.max(d);
        }
        for x in [-100.0f32, -9.0, 9.0, 50.0, f32::MAX] {
            assert!((super::erf_fast(x) - x.signum()).abs() < 1e-7);
        }
        assert!(worst < 6e-7, "erf_fast error {worst:e}");
        let mut g = vec![-3.0f32, -0.5, 0.0, 0.5, 3.0];
        super::gelu_erf(&mut g);
        for (x, y) in [-3.0f64, -0.5, 0.0, 0.5, 3.0].iter().zip(&g) {
            let want = 0.5 * x * (1.0 + libm::erf(x / 2f64.sqrt()));
            assert!((want - *y as f64).abs() < 1e-6, "gelu({x}) = {y}, want {want}");
        }
    }
}

#[cfg(test)]
mod sin_tests {
    #[test]
    fn sin_fast_is_accurate() {
        let mut worst = 0.0f64;
        for i in -200_000..200_000 {
            let x = i as f32 * 1e-3;
            let d = (super::sin_fast(x) as f64 - (x as f64).sin()).abs();
            worst = worst.max(d);
        }
        assert!(worst < 5e-7, "sin_fast error {worst:e}");
    }
}

#[cfg(test)]
mod stats_tests {
    /// `weighted_stats` against speechbrain's formula in f64 (softmax weights first, then
    /// `Σ w·x` and `Σ w·(x − mean)²` clamped at eps), and `mean_rows` against the plain mean.
    #[test]
    fn weighted_stats_is_speechbrains_pooling() {
        let (rows, cols) = (23, 5);
        let x: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 101) as f32 / 25.0 - 2.0) * 1.5).collect();
        let l: Vec<f32> = (0..rows * cols).map(|i| (i * 53 % 97) as f32 / 8.0 - 6.0).collect();
        for logits in [None, Some(&l[..])] {
            let mut out = vec![0.0; 2 * cols];
            super::weighted_stats(&x, logits, 1e-12, &mut out);
            for c in 0..cols {
                let w: Vec<f64> = (0..rows).map(|r| logits.map_or(0.0, |l| l[r * cols + c] as f64).exp()).collect();
                let total: f64 = w.iter().sum();
                let xs: Vec<f64> = (0..rows).map(|r| x[r * cols + c] as f64).collect();
                let mean: f64 = w.iter().zip(&xs).map(|(w, x)| w / total * x).sum();
                let var: f64 = w.iter().zip(&xs).map(|(w, x)| w / total * (x - mean) * (x - mean)).sum();
                assert!((out[c] as f64 - mean).abs() < 1e-6 * (1.0 + mean.abs()), "mean of column {c}");
                assert!((out[cols + c] as f64 - var.max(1e-12).sqrt()).abs() < 1e-6, "std of column {c}");
            }
        }
        let mut mean = vec![0.0; cols];
        super::mean_rows(&x, &mut mean);
        for (c, m) in mean.iter().enumerate() {
            let want = (0..rows).map(|r| x[r * cols + c] as f64).sum::<f64>() / rows as f64;
            assert_eq!(*m, want as f32, "mean_rows of column {c}");
        }
        // One row, or a constant column: the variance is floored.
        let mut out = vec![0.0; 4];
        super::weighted_stats(&[3.0, -1.0], None, 1e-12, &mut out);
        assert_eq!(out, [3.0, -1.0, (1e-12f32 as f64).sqrt() as f32, (1e-12f32 as f64).sqrt() as f32]);
        let mut nan = vec![0.0; 2];
        super::weighted_stats(&[f32::NAN, 1.0], None, 1e-12, &mut nan);
        assert!(nan[1].is_nan(), "a NaN variance is not floored away");
    }

    #[test]
    fn elu_and_sigmoid_are_accurate() {
        let x = [-30.0f32, -3.0, -1e-6, -0.0, 0.0, 2e-7, 0.5, 4.0, 90.0, -90.0];
        let (mut e, mut s) = (x, x);
        super::elu(&mut e);
        super::sigmoid(&mut s);
        for ((v, e), s) in x.iter().zip(e).zip(s) {
            let v64 = *v as f64;
            let want = if v64 > 0.0 { v64 } else { v64.exp_m1() };
            assert!((e as f64 - want).abs() <= 1.2e-7 * want.abs(), "elu({v}) = {e}, want {want}");
            let want = 1.0 / (1.0 + (-v64).exp());
            // (Below x ≈ −88.7, e^−x overflows f32: 0 for a true value under 1e−38.)
            assert!((s as f64 - want).abs() <= 1.2e-7 * want + 1e-38, "sigmoid({v}) = {s}, want {want}");
        }
    }
}
