//! Products on the GPU: few rows (decode steps) as a GEMV that streams each weight row once with a
//! warp per output; more rows as a tiled GEMM. Weights stay in their stored precision.

use super::args::KernelArgs;
use super::backend::{BLOCK, Cuda, ptr, ptr_or_zero};
use crate::backend::tensor::Tensor;
use crate::backend::tensor::{Weight, WeightData};

/// Rows the GEMV kernels take at once (`LINEAR_MAX_ROWS` in kernels/linear.cu).
const GEMV_ROWS: usize = 8;
/// The GEMM's output tile (`GEMM_TILE`) and its threads.
const TILE: usize = 64;
const GEMM_THREADS: u32 = 256;
/// Rows this short or shorter take a thread per output (a warp per output would idle its lanes).
const SHORT_IN: usize = 64;

/// One layer of a fused few-row product: its weight, bias and output address.
type Layer<'a> = (&'a Weight, Option<&'a Weight>, u64);

use super::backend::QUANT_ON_CUDA;

/// The kernel name suffix of a weight's stored precision.
fn suffix(w: &Weight) -> &'static str {
    match w.data() {
        WeightData::F32(_) => "f32",
        WeightData::BF16(_) => "bf16",
        WeightData::F16(_) => "f16",
        WeightData::Quant(_) => panic!("{QUANT_ON_CUDA}"),
    }
}

impl Cuda {
    /// Up to three few-row products over the same input in one launch (a warp per output).
    fn gemv(&self, x: u64, rows: usize, cols: usize, layers: &[Layer<'_>], accumulate: bool) {
        assert!((1..=3).contains(&layers.len()) && rows <= GEMV_ROWS);
        let total: usize = layers.iter().map(|(w, _, _)| w.rows()).sum();
        let mut a = KernelArgs::new();
        a.ptr(x);
        for i in 0..3 {
            match layers.get(i) {
                Some((w, b, y)) => a.ptr(self.weight(w)).ptr(b.map_or(0, |b| self.weight(b))).ptr(*y),
                None => a.ptr(0).ptr(0).ptr(0),
            };
        }
        a.i32(rows as i32).i32(cols as i32);
        for i in 0..3 {
            a.i32(layers.get(i).map_or(0, |(w, _, _)| w.rows() as i32));
        }
        a.i32(accumulate as i32);
        let warps = BLOCK as usize / 32;
        let grid = total.div_ceil(warps) as u32;
        self.gpu.launch(&format!("linear_gemv_{}", suffix(layers[0].0)), (grid, 1, 1), BLOCK, 0, &a);
    }

    /// Several products over the same input (q/k/v, gate/up): one launch for decode-sized inputs
    /// whose weights share a precision, else one product each.
    pub(super) fn linear_many_op(&self, x: &Tensor, layers: &[(&Weight, Option<&Weight>)]) -> Vec<Tensor> {
        let outs: Vec<Tensor> = layers.iter().map(|(w, _)| self.output(x.rows(), w.rows())).collect();
        let fused = x.rows() <= GEMV_ROWS
            && x.cols() > SHORT_IN
            && (1..=3).contains(&layers.len())
            && layers.iter().all(|(w, b)| {
                w.cols() == x.cols() && suffix(w) == suffix(layers[0].0) && b.is_none_or(|b| b.len() == w.rows())
            });
        if fused && !x.is_empty() && outs.iter().all(|t| !t.is_empty()) {
            let set: Vec<Layer<'_>> = layers.iter().zip(&outs).map(|((w, b), y)| (*w, *b, ptr(y))).collect();
            self.gemv(ptr(x), x.rows(), x.cols(), &set, false);
        } else {
            for ((w, b), y) in layers.iter().zip(&outs) {
                self.linear_into(ptr_or_zero(x), x.rows(), x.cols(), w, *b, ptr_or_zero(y), false);
            }
        }
        outs
    }

    /// `y = x · Wᵀ (+ b)` between device addresses: x `[rows, cols]`, y `[rows, w.rows()]`.
    /// With `accumulate`, `y += x · Wᵀ (+ b)` (a residual add fused into the product).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn linear_into(
        &self,
        x: u64,
        rows: usize,
        cols: usize,
        w: &Weight,
        bias: Option<&Weight>,
        y: u64,
        accumulate: bool,
    ) {
        assert_eq!(cols, w.cols(), "linear: rows of {cols} against weights of {:?}", w.shape());
        let out = w.rows();
        if let Some(b) = bias {
            assert_eq!(b.len(), out, "linear: a bias of {} for {out} outputs", b.len());
        }
        if rows == 0 || out == 0 {
            return;
        }
        let suffix = suffix(w);
        let (wp, bp) = (self.weight(w), bias.map_or(0, |b| self.weight(b)));
        let args = |x: u64, y: u64, n: usize| {
            let mut a = KernelArgs::new();
            a.ptr(x).ptr(wp).ptr(bp).ptr(y).i32(n as i32).i32(cols as i32).i32(out as i32).i32(accumulate as i32);
            a
        };
        if cols <= SHORT_IN && rows <= GEMV_ROWS {
            let n = rows * out;
            let grid = n.div_ceil(BLOCK as usize).min(65_535) as u32;
            self.gpu.launch(&format!("linear_short_{suffix}"), (grid, 1, 1), BLOCK, 0, &args(x, y, rows));
            return;
        }
        if rows <= GEMV_ROWS {
            self.gemv(x, rows, cols, &[(w, bias, y)], accumulate);
            return;
        }
        // Tiles over (outputs, rows); the grid's y dimension is capped, so long inputs run in parts.
        const MAX_ROW_TILES: usize = 65_535;
        let per_launch = MAX_ROW_TILES * TILE;
        for first in (0..rows).step_by(per_launch) {
            let n = per_launch.min(rows - first);
            let grid = (out.div_ceil(TILE) as u32, n.div_ceil(TILE) as u32, 1);
            let (xs, ys) = (x + (first * cols * 4) as u64, y + (first * out * 4) as u64);
            self.gpu.launch(&format!("linear_gemm_{suffix}"), grid, GEMM_THREADS, 0, &args(xs, ys, n));
        }
    }
}
