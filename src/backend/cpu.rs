//! The CPU backend: f32 arithmetic on a private thread pool, weights widened from their stored
//! precision inside the kernels. Batch-1 matrix-vector products stream each weight row once and
//! split the rows across threads, so they run near memory bandwidth.

use half::bf16;
use rayon::prelude::*;

use super::tensor::{Tensor, Weight, WeightData, widen};
use crate::error::{Error, Result};

/// The CPU compute context: its own thread pool (never rayon's global one, so a host's pool and
/// ours do not fight).
pub struct Cpu {
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cpu({} threads)", self.pool.current_num_threads())
    }
}

/// Products with at least this many input rows go through the blocked SGEMM.
const GEMM_MIN_ROWS: usize = 8;

/// A raw output pointer shared by tasks that write disjoint parts.
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint column blocks only.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// Fewest output rows in one parallel task.
const ROWS_PER_TASK: usize = 16;
/// Products smaller than this many multiply-adds run on the calling thread (a pool round trip
/// costs more than they do).
pub(crate) const SERIAL_BELOW: usize = 1 << 16;

impl Cpu {
    pub fn new(threads: usize) -> Result<Cpu> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("voxkit-cpu-{i}"))
            .build()
            .map_err(|e| Error::internal(format!("cannot start the CPU thread pool: {e}")))?;
        Ok(Cpu { pool })
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `f` inside the pool (so nested parallel iterators use our threads).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    /// `y = x · Wᵀ (+ b)`: x `[n, in]`, W `[out, in]` → y `[n, out]`.
    pub fn linear(&self, x: &Tensor, w: &Weight, bias: Option<&[f32]>) -> Tensor {
        self.linear_many(x, &[(w, bias)]).pop().expect("one output")
    }

    /// Several linear layers over the same input in one parallel pass (e.g. q, k and v): fewer
    /// thread-pool round trips per layer, which matters at batch 1 where each product is short.
    pub fn linear_many(&self, x: &Tensor, layers: &[(&Weight, Option<&[f32]>)]) -> Vec<Tensor> {
        let (n, k) = (x.rows, x.cols);
        for (w, b) in layers {
            assert_eq!(w.cols(), k, "linear: input width {k} does not match the weight {:?}", w.shape);
            if let Some(b) = b {
                assert_eq!(b.len(), w.rows());
            }
        }
        if n >= GEMM_MIN_ROWS {
            return layers.iter().map(|(w, b)| self.gemm(x, w, *b)).collect();
        }
        // Outputs transposed per weight row ([out, n]), all layers back to back, so each task
        // writes one contiguous block.
        let offsets: Vec<usize> = layers
            .iter()
            .scan(0, |acc, (w, _)| {
                let o = *acc;
                *acc += w.rows();
                Some(o)
            })
            .collect();
        let total: usize = layers.iter().map(|(w, _)| w.rows()).sum();
        let mut yt = vec![0.0f32; total * n];
        // One contiguous run of rows per thread: each streams its part of the weights in order,
        // which keeps the hardware prefetchers on (interleaved small chunks measured slower).
        let rows_per_task = total.div_ceil(self.threads()).max(ROWS_PER_TASK);
        let work = |chunk: usize, block: &mut [f32], wrow: &mut Vec<f32>| {
            let first = chunk * rows_per_task;
            for (r, ys) in block.chunks_mut(n).enumerate() {
                let g = first + r;
                let li = offsets.partition_point(|&o| o <= g) - 1;
                let (w, bias) = layers[li];
                let j = g - offsets[li];
                if n == 1 {
                    ys[0] = dot_weight_row(&x.data, w, j);
                } else {
                    wrow.resize(k, 0.0);
                    w.row_into(j, wrow);
                    for (i, y) in ys.iter_mut().enumerate() {
                        *y = dot(x.row(i), wrow);
                    }
                }
                if let Some(b) = bias {
                    for y in ys.iter_mut() {
                        *y += b[j];
                    }
                }
            }
        };
        if self.threads() == 1 || total * n * k < SERIAL_BELOW {
            let mut wrow = Vec::new();
            for (chunk, block) in yt.chunks_mut(rows_per_task * n).enumerate() {
                work(chunk, block, &mut wrow);
            }
        } else {
            self.pool.install(|| {
                yt.par_chunks_mut(rows_per_task * n)
                    .enumerate()
                    .for_each_init(Vec::new, |wrow, (chunk, block)| work(chunk, block, wrow))
            });
        }
        layers
            .iter()
            .zip(&offsets)
            .map(|((w, _), &o)| {
                let out = w.rows();
                let part = &yt[o * n..(o + out) * n];
                if n == 1 {
                    return Tensor::from_vec(part.to_vec(), 1, out);
                }
                let mut y = Tensor::zeros(n, out);
                for j in 0..out {
                    for i in 0..n {
                        y.data[i * out + j] = part[j * n + i];
                    }
                }
                y
            })
            .collect()
    }

    /// `y = x · Wᵀ (+ b)` for many rows: a cache-blocked SGEMM per thread over a block of output
    /// columns (weights widened to f32 one block at a time).
    fn gemm(&self, x: &Tensor, w: &Weight, bias: Option<&[f32]>) -> Tensor {
        let (n, k, out) = (x.rows, x.cols, w.rows());
        let mut y = Tensor::zeros(n, out);
        let yp = SendPtr(y.data.as_mut_ptr());
        // SAFETY (both arms): each task writes a disjoint block of y; the strides describe
        // x [n, k] row-major, Wᵀ [k, out] read through W's rows, and y [n, out] row-major.
        if let (WeightData::F32(wv), true) = (&w.data, n >= 16 * self.threads()) {
            // Many rows and f32 weights (the codec's long time axis): split the rows.
            let rows_per_task = n.div_ceil(self.threads());
            let blocks: Vec<(usize, usize)> =
                (0..n).step_by(rows_per_task).map(|i| (i, (i + rows_per_task).min(n))).collect();
            let run = |&(i0, i1): &(usize, usize)| {
                let yp = &yp;
                unsafe {
                    sgemm_xwt(i1 - i0, k, out, x.data.as_ptr().add(i0 * k), k, wv.as_ptr(), k, yp.0.add(i0 * out), out)
                }
            };
            if blocks.len() == 1 {
                blocks.iter().for_each(run);
            } else {
                self.pool.install(|| blocks.par_iter().for_each(run));
            }
        } else {
            // Otherwise split the output columns (each task widens only its block of W).
            let cols_per_task = out.div_ceil(self.threads()).max(64);
            let blocks: Vec<(usize, usize)> =
                (0..out).step_by(cols_per_task).map(|j| (j, (j + cols_per_task).min(out))).collect();
            let run = |&(j0, j1): &(usize, usize)| {
                let wf: Vec<f32>;
                let wslice: &[f32] = match &w.data {
                    WeightData::F32(v) => &v[j0 * k..j1 * k],
                    _ => {
                        let mut buf = vec![0.0; (j1 - j0) * k];
                        widen(&w.data, j0 * k, &mut buf);
                        wf = buf;
                        &wf
                    }
                };
                let yp = &yp;
                unsafe { sgemm_xwt(n, k, j1 - j0, x.data.as_ptr(), k, wslice.as_ptr(), k, yp.0.add(j0), out) }
            };
            if self.threads() == 1 || blocks.len() == 1 {
                blocks.iter().for_each(run);
            } else {
                self.pool.install(|| blocks.par_iter().for_each(run));
            }
        }
        if let Some(b) = bias {
            for row in y.data.chunks_mut(out) {
                for (v, c) in row.iter_mut().zip(b) {
                    *v += c;
                }
            }
        }
        y
    }

    /// Runs `f(row_index, row)` over the rows of `data` (`width` wide), in parallel when there is
    /// enough work to pay for it.
    pub fn for_rows(&self, data: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
        if width == 0 {
            return;
        }
        if self.threads() == 1 || data.len() < SERIAL_BELOW {
            data.chunks_mut(width).enumerate().for_each(|(i, row)| f(i, row));
        } else {
            let rows_per_task = (data.len() / width).div_ceil(4 * self.threads()).max(1);
            self.pool.install(|| {
                data.par_chunks_mut(rows_per_task * width).enumerate().for_each(|(c, block)| {
                    for (i, row) in block.chunks_mut(width).enumerate() {
                        f(c * rows_per_task + i, row);
                    }
                })
            });
        }
    }

    /// Rows `ids` of an embedding table `[vocab, dim]`.
    pub fn embedding(&self, table: &Weight, ids: &[u32]) -> Result<Tensor> {
        let dim = table.cols();
        let mut t = Tensor::zeros(ids.len(), dim);
        for (i, &id) in ids.iter().enumerate() {
            if id as usize >= table.rows() {
                return Err(Error::invalid(format!(
                    "token id {id} is outside the embedding table of {} rows",
                    table.rows()
                )));
            }
            table.row_into(id as usize, t.row_mut(i));
        }
        Ok(t)
    }
}

/// `y = x · Wᵀ` for row-major `x [m, k]` (row stride `ldx`), `W [n, k]` (row stride `ldw`) and
/// `y [m, n]` (row stride `ldy`), single-threaded (the caller splits the work).
///
/// # Safety
/// The pointers must be valid for those shapes and strides; `y` must not overlap `x` or `W`.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_xwt(
    m: usize,
    k: usize,
    n: usize,
    x: *const f32,
    ldx: usize,
    w: *const f32,
    ldw: usize,
    y: *mut f32,
    ldy: usize,
) {
    // gemm computes dst = alpha·dst + beta·lhs·rhs with explicit column/row strides; Wᵀ is W read
    // with its strides swapped.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            y,
            1,
            ldy as isize,
            false,
            x,
            1,
            ldx as isize,
            w,
            ldw as isize,
            1,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Dot product of `x` with row `j` of `w`, widening on the fly (batch 1: no row buffer).
#[inline]
fn dot_weight_row(x: &[f32], w: &Weight, j: usize) -> f32 {
    let k = x.len();
    match &w.data {
        WeightData::F32(v) => dot(x, &v[j * k..(j + 1) * k]),
        WeightData::BF16(v) => dot_bf16(x, &v[j * k..(j + 1) * k]),
        WeightData::F16(_) => {
            let mut row = vec![0.0; k];
            widen(&w.data, j * k, &mut row);
            dot(x, &row)
        }
    }
}

const LANES: usize = 16;

#[inline(always)]
fn dot_body(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ac, at) = a.split_at(a.len() / LANES * LANES);
    let (bc, bt) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(LANES).zip(bc.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    let mut s = 0.0;
    for (x, y) in at.iter().zip(bt) {
        s = x.mul_add(*y, s);
    }
    acc.iter().sum::<f32>() + s
}

#[inline(always)]
fn dot_bf16_body(a: &[f32], b: &[bf16]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ac, at) = a.split_at(a.len() / LANES * LANES);
    let (bc, bt) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(LANES).zip(bc.chunks_exact(LANES)) {
        for l in 0..LANES {
            let w = f32::from_bits((y[l].to_bits() as u32) << 16);
            acc[l] = x[l].mul_add(w, acc[l]);
        }
    }
    let mut s = 0.0;
    for (x, y) in at.iter().zip(bt) {
        s = x.mul_add(f32::from_bits((y.to_bits() as u32) << 16), s);
    }
    acc.iter().sum::<f32>() + s
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_body(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_bf16_avx2(a: &[f32], b: &[bf16]) -> f32 {
    dot_bf16_body(a, b)
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"))
}

/// `Σ a[i]·b[i]` in f32 (16 fused multiply-add lanes, then the tail).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe { dot_avx2(a, b) };
    }
    dot_body(a, b)
}

/// `Σ a[i]·b[i]` with `b` in bf16, widened exactly on the fly.
#[inline]
pub fn dot_bf16(a: &[f32], b: &[bf16]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe { dot_bf16_avx2(a, b) };
    }
    dot_bf16_body(a, b)
}

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

/// SnakeBeta in place over `[rows, channels]`: `x + sin²(x·α) · inv_beta` (α and 1/β per channel).
pub fn snake_beta(x: &mut [f32], alpha: &[f32], inv_beta: &[f32]) {
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
