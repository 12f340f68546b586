//! Matrix products on the CPU: weights widened from their stored precision inside the kernels.
//! Batch-1 matrix-vector products stream each weight row once and split the rows across threads,
//! so they run near memory bandwidth; many-row products run a blocked SGEMM per thread.

use half::bf16;

use super::Cpu;
use super::qdot::{self, QuantRows};
use crate::backend::tensor::{Tensor, Weight, WeightData, widen};

/// Products with at least this many input rows go through the blocked SGEMM (prompts); fewer
/// (decode steps of a batch) read each weight row once for all of them (`dot_rows_weight`,
/// `qdot::dot_block_to`): measured on the 0.6B talker + predictor, a batch of 8 took 2.3× less time
/// per step this way than through the SGEMM, which widens every weight block per call.
const GEMM_MIN_ROWS: usize = 32;

impl Cpu {
    /// `gemm` in bf16 on AMX (`with_bf16_products`): the weights' bf16 bits as stored, or
    /// rounded into the scratch (f32, f16 and quantized weights, a row block per task).
    fn gemm_bf16(&self, x: &Tensor, w: &Weight, bias: Option<&[f32]>) -> Tensor {
        let (n, k, out) = (x.rows(), x.cols(), w.rows());
        let shape = super::direct_conv::ConvShape { rows: n, cin: k, cout: out, kernel: 1, dilation: 1, stride: 1 };
        if let Some(bits) = w.bf16_bits() {
            return super::direct_conv::conv_product_bf16(self, x, bits, bias, shape);
        }
        let mut buf = self.scratch.take_dirty((out * k).div_ceil(2));
        // SAFETY: u16 is valid for every bit pattern and aligns within f32; the view borrows the
        // buffer, which holds at least out·k u16.
        let bits: &mut [u16] = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u16, out * k) };
        self.team.chunks(bits, k * ROWS_PER_TASK, |c, chunk| {
            let mut row = Vec::new();
            for (i, dst) in chunk.chunks_mut(k).enumerate() {
                let j = c * ROWS_PER_TASK + i;
                if let WeightData::Quant(q) = w.data()
                    && qdot::row_bf16(q, j, dst)
                {
                    continue;
                }
                if row.is_empty() {
                    row = self.scratch.take_dirty(k);
                }
                w.row_into(j, &mut row);
                for (d, &v) in dst.iter_mut().zip(row.iter()) {
                    *d = bf16::from_f32(v).to_bits();
                }
            }
            self.scratch.give(row);
        });
        let y = super::direct_conv::conv_product_bf16(self, x, bits, bias, shape);
        self.scratch.give(buf);
        y
    }
}

/// A raw output pointer shared by tasks that write disjoint parts.
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint blocks only.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// Fewest output rows in one parallel task.
const ROWS_PER_TASK: usize = 16;
/// Products smaller than this many multiply-adds run on the calling thread (a pool round trip
/// costs more than they do).
pub(super) const SERIAL_BELOW: usize = 1 << 16;

impl Cpu {
    /// `y = x · Wᵀ (+ b)`: x `[n, in]`, W `[out, in]` → y `[n, out]`.
    pub(super) fn linear_one(&self, x: &Tensor, w: &Weight, bias: Option<&[f32]>) -> Tensor {
        let layers = [(w, bias)];
        check(x, &layers);
        if x.rows() == 0 {
            return self.output(0, w.rows()); // no rows: nothing to compute (and no chunk size)
        }
        if x.rows() >= GEMM_MIN_ROWS {
            return self.gemm(x, w, bias);
        }
        let mut y = [self.output(x.rows(), w.rows())];
        self.gemv(x, &layers, &mut y);
        let [y] = y;
        y
    }

    /// Several linear layers over the same input in one parallel pass (e.g. q, k and v): fewer
    /// thread-pool round trips per layer, which matters at batch 1 where each product is short.
    pub(super) fn linear_rows(&self, x: &Tensor, layers: &[(&Weight, Option<&[f32]>)]) -> Vec<Tensor> {
        check(x, layers);
        if x.rows() == 0 {
            return layers.iter().map(|(w, _)| self.output(0, w.rows())).collect();
        }
        if x.rows() >= GEMM_MIN_ROWS {
            return layers.iter().map(|(w, b)| self.gemm(x, w, *b)).collect();
        }
        let mut ys: Vec<Tensor> = layers.iter().map(|(w, _)| self.output(x.rows(), w.rows())).collect();
        self.gemv(x, layers, &mut ys);
        ys
    }

    /// Few-row products of all `layers` into `ys` (`[n, out]` each, written whole), the layers'
    /// rows stacked and split among the tasks in contiguous runs; each task computes a run of one
    /// layer's rows at a time and writes its columns of that layer's output: quantized rows
    /// straight into place, others weight row by weight row (`[len, n]`) and then copied.
    fn gemv(&self, x: &Tensor, layers: &[(&Weight, Option<&[f32]>)], ys: &mut [Tensor]) {
        let (n, k) = (x.rows(), x.cols());
        let total: usize = layers.iter().map(|(w, _)| w.rows()).sum();
        assert!(
            ys.len() == layers.len() && ys.iter().zip(layers).all(|(y, (w, _))| y.rows() == n && y.cols() == w.rows())
        );
        // The outputs' addresses (on the stack for the usual few layers: a decode step makes
        // hundreds of these calls, and steady steps allocate nothing large and little small).
        const ON_STACK: usize = 4;
        let mut stack = [const { SendPtr(std::ptr::null_mut()) }; ON_STACK];
        let heap: Vec<SendPtr>;
        let dst: &[SendPtr] = if ys.len() <= ON_STACK {
            for (p, y) in stack.iter_mut().zip(ys.iter_mut()) {
                *p = SendPtr(y.host_mut().as_mut_ptr());
            }
            &stack[..ys.len()]
        } else {
            heap = ys.iter_mut().map(|y| SendPtr(y.host_mut().as_mut_ptr())).collect();
            &heap
        };
        // Quantized weights multiply int8 activations: the rows are quantized once, here.
        let quantized = |w: &Weight| matches!(w.data(), WeightData::Quant(_));
        let quant_x = layers.iter().any(|(w, _)| quantized(w)).then(|| QuantRows::new(x.host(), k));
        let all_quantized = layers.iter().all(|(w, _)| quantized(w));
        debug_assert!(quant_x.as_ref().is_none_or(|q| q.rows() == n), "activation rows quantized as {n}");
        // One contiguous run of rows per thread: each streams its part of the weights in order,
        // which keeps the hardware prefetchers on (interleaved small chunks measured slower).
        let rows_per_task = total.div_ceil(self.threads()).max(ROWS_PER_TASK);
        let work = |task: usize| {
            let (first, end) = (task * rows_per_task, ((task + 1) * rows_per_task).min(total));
            // Unquantized products of more than one input row: a widened weight row, and the
            // products weight row by weight row (quantized ones are written in place).
            let unquantized = n > 1 && !all_quantized;
            let mut wrow = if unquantized { self.scratch.take_dirty(k) } else { Vec::new() };
            let mut block = if unquantized { self.scratch.take_dirty((end - first) * n) } else { Vec::new() };
            let mut r = first;
            while r < end {
                let (l, j) = layer_row(layers, r);
                let (w, bias) = layers[l];
                let out = w.rows();
                let len = (out - j).min(end - r);
                // Columns j..j + len of the layer's output row i, which no other task writes (the
                // tasks' row ranges are disjoint); `ys` outlives the tasks.
                let out_row = |i: usize| {
                    // SAFETY: as above.
                    unsafe { std::slice::from_raw_parts_mut(dst[l].0.add(i * out + j), len) }
                };
                if let (WeightData::Quant(q), Some(xq)) = (w.data(), &quant_x) {
                    // Straight into place. SAFETY: those columns of each of the n rows, as above.
                    unsafe { qdot::dot_block_to(q, j..j + len, xq, dst[l].0.add(j), 1, out) };
                } else {
                    let run: &mut [f32] = if n == 1 { out_row(0) } else { &mut block[..len * n] };
                    // bf16 and f32 rows through the row kernel; otherwise widened.
                    for (i, ys) in run.chunks_mut(n).enumerate() {
                        if dot_rows_weight(x, w, j + i, ys) {
                            continue;
                        }
                        if n == 1 {
                            ys[0] = dot_weight_row(x.host(), w, j + i);
                        } else {
                            w.row_into(j + i, &mut wrow);
                            for (t, y) in ys.iter_mut().enumerate() {
                                *y = dot(x.row(t), &wrow);
                            }
                        }
                    }
                    if n > 1 {
                        for i in 0..n {
                            out_row(i).iter_mut().enumerate().for_each(|(t, y)| *y = run[t * n + i]);
                        }
                    }
                }
                if let Some(b) = bias {
                    for i in 0..n {
                        out_row(i).iter_mut().zip(&b[j..j + len]).for_each(|(y, b)| *y += b);
                    }
                }
                r += len;
            }
            self.scratch.give(wrow);
            self.scratch.give(block);
        };
        let tasks = total.div_ceil(rows_per_task);
        if self.threads() == 1 || total * n * k < SERIAL_BELOW {
            (0..tasks).for_each(work);
        } else {
            self.team.run(tasks, &work);
        }
    }

    /// `y = x · Wᵀ (+ b)` for many rows: a cache-blocked SGEMM per thread over a block of output
    /// columns (weights widened to f32 one block at a time).
    fn gemm(&self, x: &Tensor, w: &Weight, bias: Option<&[f32]>) -> Tensor {
        let (n, k, out) = (x.rows(), x.cols(), w.rows());
        if self.bf16_products && super::direct_conv::bf16_gemm_runs(n, k, out) {
            return self.gemm_bf16(x, w, bias);
        }
        // Written whole: the SGEMM does not read its destination.
        let mut y = self.output(n, out);
        let yp = SendPtr(y.host_mut().as_mut_ptr());
        // SAFETY (both arms): each task writes a disjoint block of y; the strides describe
        // x [n, k] row-major, Wᵀ [k, out] read through W's rows, and y [n, out] row-major.
        if let (WeightData::F32(wv), true) = (w.data(), n >= 16 * self.threads()) {
            // Many rows and f32 weights (the codec's long time axis): split the rows.
            let rows_per_task = n.div_ceil(self.threads());
            let blocks: Vec<(usize, usize)> =
                (0..n).step_by(rows_per_task).map(|i| (i, (i + rows_per_task).min(n))).collect();
            let run = |&(i0, i1): &(usize, usize)| {
                let yp = &yp;
                unsafe {
                    sgemm_xwt(
                        i1 - i0,
                        k,
                        out,
                        x.host().as_ptr().add(i0 * k),
                        k,
                        wv.as_ptr(),
                        k,
                        yp.0.add(i0 * out),
                        out,
                    )
                }
            };
            if blocks.len() == 1 {
                blocks.iter().for_each(run);
            } else {
                self.team.run(blocks.len(), &|i| run(&blocks[i]));
            }
        } else {
            // Otherwise split the output columns (each task widens only its block of W).
            let cols_per_task = out.div_ceil(self.threads()).max(64);
            let blocks: Vec<(usize, usize)> =
                (0..out).step_by(cols_per_task).map(|j| (j, (j + cols_per_task).min(out))).collect();
            let run = |&(j0, j1): &(usize, usize)| {
                let mut wf = Vec::new();
                let wslice: &[f32] = match w.data() {
                    WeightData::F32(v) => &v[j0 * k..j1 * k],
                    _ => {
                        wf = self.scratch.take_dirty((j1 - j0) * k);
                        widen(w.data(), j0 * k, &mut wf);
                        &wf
                    }
                };
                let yp = &yp;
                unsafe { sgemm_xwt(n, k, j1 - j0, x.host().as_ptr(), k, wslice.as_ptr(), k, yp.0.add(j0), out) }
                self.scratch.give(wf);
            };
            if self.threads() == 1 || blocks.len() == 1 {
                blocks.iter().for_each(run);
            } else {
                self.team.run(blocks.len(), &|i| run(&blocks[i]));
            }
        }
        if let Some(b) = bias {
            for row in y.host_mut().chunks_mut(out) {
                for (v, c) in row.iter_mut().zip(b) {
                    *v += c;
                }
            }
        }
        y
    }
}

/// Checks that every weight takes `x`'s rows and every bias fits its weight.
fn check(x: &Tensor, layers: &[(&Weight, Option<&[f32]>)]) {
    let k = x.cols();
    for (w, b) in layers {
        assert_eq!(w.cols(), k, "linear: input width {k} does not match the weight {:?}", w.shape());
        if let Some(b) = b {
            assert_eq!(b.len(), w.rows(), "linear: a bias of {} for {} outputs", b.len(), w.rows());
        }
    }
}

/// The layer (its index) and its row of row `g` of the layers stacked back to back.
#[inline]
fn layer_row(layers: &[(&Weight, Option<&[f32]>)], mut g: usize) -> (usize, usize) {
    for (l, (w, _)) in layers.iter().enumerate() {
        if g < w.rows() {
            return (l, g);
        }
        g -= w.rows();
    }
    unreachable!("row past the stacked layers")
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
    match w.data() {
        WeightData::F32(v) => dot(x, &v[j * k..(j + 1) * k]),
        WeightData::BF16(v) => dot_bf16(x, &v[j * k..(j + 1) * k]),
        WeightData::F16(_) | WeightData::Quant(_) => {
            let mut row = vec![0.0; k];
            widen(w.data(), j * k, &mut row);
            dot(x, &row)
        }
    }
}

/// Row `j` of `w` times every row of `x` into `ys`, reading the weight row once for up to four
/// input rows, each sum in `dot`'s order (so a batch gives each row its batch-1 result, bit for
/// bit). `false` when the CPU or the precision has no such kernel (the caller widens the row).
fn dot_rows_weight(x: &Tensor, w: &Weight, j: usize, ys: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        let k = x.cols();
        for (c, chunk) in ys.chunks_mut(4).enumerate() {
            let row = |i: usize| x.row(4 * c + i);
            // SAFETY: the CPU supports AVX2 and FMA (checked above); every row holds k values.
            unsafe {
                match w.data() {
                    WeightData::BF16(v) => rows_kernel(&v[j * k..(j + 1) * k], chunk, row),
                    WeightData::F32(v) => rows_kernel(&v[j * k..(j + 1) * k], chunk, row),
                    _ => return false,
                }
            }
        }
        return true;
    }
    let _ = (x, w, j, ys);
    false
}

/// A weight row's element type, as the row kernel loads it.
#[cfg(target_arch = "x86_64")]
trait RowWeight: Copy {
    /// Elements `at..at + 16` widened to f32, as two vectors of 8.
    ///
    /// # Safety
    /// AVX2; the row holds them.
    unsafe fn load16(w: &[Self], at: usize) -> [std::arch::x86_64::__m256; 2];
    fn widen(self) -> f32;
}

#[cfg(target_arch = "x86_64")]
impl RowWeight for bf16 {
    #[inline(always)]
    unsafe fn load16(w: &[bf16], at: usize) -> [std::arch::x86_64::__m256; 2] {
        use std::arch::x86_64::*;
        // SAFETY: the caller's (AVX2; 16 elements from `at`).
        unsafe {
            let raw = _mm256_loadu_si256(w.as_ptr().add(at) as *const __m256i);
            let widen = |h: __m128i| _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
            [widen(_mm256_castsi256_si128(raw)), widen(_mm256_extracti128_si256(raw, 1))]
        }
    }
    fn widen(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }
}

#[cfg(target_arch = "x86_64")]
impl RowWeight for f32 {
    #[inline(always)]
    unsafe fn load16(w: &[f32], at: usize) -> [std::arch::x86_64::__m256; 2] {
        use std::arch::x86_64::*;
        // SAFETY: the caller's (AVX2; 16 elements from `at`).
        unsafe { [_mm256_loadu_ps(w.as_ptr().add(at)), _mm256_loadu_ps(w.as_ptr().add(at + 8))] }
    }
    fn widen(self) -> f32 {
        self
    }
}

/// One weight row times up to four input rows into `chunk` (`row(i)` the i-th input row).
///
/// # Safety
/// AVX2 and FMA; every row as long as `w`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn rows_kernel<'a, T: RowWeight>(w: &[T], chunk: &mut [f32], row: impl Fn(usize) -> &'a [f32]) {
    // SAFETY: the caller's.
    unsafe {
        match chunk.len() {
            1 => chunk.copy_from_slice(&dot_rows::<T, 1>(w, [row(0)])),
            2 => chunk.copy_from_slice(&dot_rows::<T, 2>(w, [row(0), row(1)])),
            3 => chunk.copy_from_slice(&dot_rows::<T, 3>(w, [row(0), row(1), row(2)])),
            _ => chunk.copy_from_slice(&dot_rows::<T, 4>(w, [row(0), row(1), row(2), row(3)])),
        }
    }
}

/// `R` sums of a weight row (bf16 or f32) with f32 rows, each in `dot_body`'s order: 16 lanes of
/// fused multiply-adds, the lanes added in order, then the tail — so each equals `dot` or
/// `dot_bf16` of the same rows bit for bit. The row's bytes `PREFETCH` ahead are requested as it
/// goes (rows are contiguous: past the end of this one, the next).
///
/// # Safety
/// AVX2 and FMA; every `xs` row is as long as `w`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_rows<T: RowWeight, const R: usize>(w: &[T], xs: [&[f32]; R]) -> [f32; R] {
    use std::arch::x86_64::*;
    let k = w.len();
    let body = k / LANES * LANES;
    let step = 64 / std::mem::size_of::<T>(); // elements in a cache line
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let mut i = 0;
    unsafe {
        while i < body {
            if i % step == 0 {
                let ahead = (w.as_ptr() as *const i8).wrapping_add(i * std::mem::size_of::<T>() + super::PREFETCH);
                _mm_prefetch::<_MM_HINT_T0>(ahead);
            }
            let [lo, hi] = T::load16(w, i);
            for r in 0..R {
                let x = xs[r].as_ptr().add(i);
                acc[r][0] = _mm256_fmadd_ps(_mm256_loadu_ps(x), lo, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(8)), hi, acc[r][1]);
            }
            i += LANES;
        }
    }
    std::array::from_fn(|r| {
        let mut lanes = [0.0f32; LANES];
        // SAFETY: 16 floats of room for the two vectors.
        unsafe {
            _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r][0]);
            _mm256_storeu_ps(lanes.as_mut_ptr().add(8), acc[r][1]);
        }
        let mut s = 0.0;
        for (x, y) in xs[r][body..].iter().zip(&w[body..]) {
            s = x.mul_add(y.widen(), s);
        }
        lanes.iter().sum::<f32>() + s
    })
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
pub(super) fn has_avx2() -> bool {
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

#[inline(always)]
fn axpy_body(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = a.mul_add(*x, *y);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_avx2(a: f32, x: &[f32], y: &mut [f32]) {
    axpy_body(a, x, y)
}

/// `y[i] += a·x[i]`, each a fused multiply-add (the same sums with and without AVX2).
#[inline]
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe { axpy_avx2(a, x, y) };
    }
    axpy_body(a, x, y)
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

#[cfg(test)]
mod tests {
    use crate::backend::cpu::test_values as values;
    use crate::backend::tensor::{Tensor, Weight};
    use crate::backend::{Backend, Cpu, QuantFormat};

    /// Rows of bf16 and f32 weights through the row kernel (prefetching) are `dot_bf16`'s and
    /// `dot`'s sums bit for bit, with and without a tail past the 16 lanes.
    #[test]
    fn row_kernel_sums_as_dot() {
        for k in [16, 1024, 1040, 1037] {
            let w: Vec<half::bf16> = values(3 * k, 5).into_iter().map(half::bf16::from_f32).collect();
            let x = values(k, 9);
            for j in 0..3 {
                let row = &w[j * k..(j + 1) * k];
                #[cfg(target_arch = "x86_64")]
                if super::has_avx2() {
                    // SAFETY: AVX2 and FMA checked; the row and x hold k values.
                    let got = unsafe { super::dot_rows::<half::bf16, 1>(row, [&x]) }[0];
                    assert_eq!(got.to_bits(), super::dot_bf16(&x, row).to_bits(), "k {k}, row {j}");
                    let wf: Vec<f32> = row.iter().map(|v| v.to_f32()).collect();
                    let got = unsafe { super::dot_rows::<f32, 1>(&wf, [&x]) }[0];
                    assert_eq!(got.to_bits(), super::dot(&x, &wf).to_bits(), "f32, k {k}, row {j}");
                }
            }
        }
    }

    /// A many-row product with bf16 products allowed is the definition over the inputs and
    /// weights rounded to bf16 where AMX runs it, the f32 product elsewhere; not allowed (the
    /// default), always the f32 product — for f32, bf16 and int8 weights.
    #[test]
    fn many_row_products_round_to_bf16_only_when_allowed_and_on_amx() {
        let (n, k, out) = (48, 96, 64);
        let x: Vec<f32> = values(n * k, 1).iter().map(|v| v * 1.001 + 1e-4).collect();
        let stored = Weight::from_f32(vec![out, k], values(out * k, 2));
        let weights = [stored.clone(), stored.to_bf16(), stored.quantize(QuantFormat::Q8).unwrap()];
        let amx = crate::backend::cpu::direct_conv::bf16_gemm_runs(n, k, out);
        let round = |v: f32| half::bf16::from_f32(v).to_f64();
        let xt = Tensor::from_vec(x.clone(), n, k);
        for w in weights {
            let wf = w.to_f32();
            let plain = Cpu::new(2).unwrap().linear(&xt, &w, None).to_host();
            let bf = Cpu::new(2).unwrap().with_bf16_products(true).linear(&xt, &w, None).to_host();
            for r in 0..n {
                for o in 0..out {
                    let dot = |f: &dyn Fn(f32) -> f64| (0..k).map(|i| f(x[r * k + i]) * f(wf[o * k + i])).sum::<f64>();
                    let exact = dot(&|v| v as f64);
                    let want_bf = if amx { dot(&round) } else { exact };
                    let (p, b) = (plain[r * out + o] as f64, bf[r * out + o] as f64);
                    assert!((p - exact).abs() < 1e-4, "{:?} f32: y[{r}, {o}] = {p}, want {exact}", w.dtype());
                    assert!((b - want_bf).abs() < 1e-4, "{:?} bf16: y[{r}, {o}] = {b}, want {want_bf}", w.dtype());
                }
            }
        }
    }
}
