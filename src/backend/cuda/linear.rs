//! Products on the GPU: few rows (decode steps) as a GEMV that streams each weight row once with a
//! warp per output; more rows as a tiled GEMM. Weights stay in their stored precision.

use super::args::KernelArgs;
use super::backend::{BLOCK, Cuda};
use crate::backend::tensor::{Weight, WeightData};

/// Rows the GEMV kernels take at once (`LINEAR_MAX_ROWS` in kernels/linear.cu).
const GEMV_ROWS: usize = 8;
/// The GEMM's output tile (`GEMM_TILE`).
const TILE: usize = 16;
/// Rows this short or shorter take a thread per output (a warp per output would idle its lanes).
const SHORT_IN: usize = 64;

impl Cuda {
    /// `y = x · Wᵀ (+ b)` between device addresses: x `[rows, cols]`, y `[rows, w.rows()]`.
    pub(super) fn linear_into(&self, x: u64, rows: usize, cols: usize, w: &Weight, bias: Option<&Weight>, y: u64) {
        assert_eq!(cols, w.cols(), "linear: rows of {cols} against weights of {:?}", w.shape());
        let out = w.rows();
        if let Some(b) = bias {
            assert_eq!(b.len(), out, "linear: a bias of {} for {out} outputs", b.len());
        }
        if rows == 0 || out == 0 {
            return;
        }
        let suffix = match w.data() {
            WeightData::F32(_) => "f32",
            WeightData::BF16(_) => "bf16",
            WeightData::F16(_) => "f16",
        };
        let (wp, bp) = (self.weight(w), bias.map_or(0, |b| self.weight(b)));
        let args = |x: u64, y: u64, n: usize| {
            let mut a = KernelArgs::new();
            a.ptr(x).ptr(wp).ptr(bp).ptr(y).i32(n as i32).i32(cols as i32).i32(out as i32);
            a
        };
        if cols <= SHORT_IN && rows <= GEMV_ROWS {
            let n = rows * out;
            let grid = n.div_ceil(BLOCK as usize).min(65_535) as u32;
            self.gpu.launch(&format!("linear_short_{suffix}"), (grid, 1, 1), BLOCK, 0, &args(x, y, rows));
            return;
        }
        if rows <= GEMV_ROWS {
            // A warp per output; bf16 rows of even length are read two values at a time.
            let name = if suffix == "bf16" && cols % 2 == 0 {
                "linear_bf16_f32".to_string()
            } else {
                format!("linear_gemv_{suffix}")
            };
            let warps = BLOCK as usize / 32;
            let grid = out.div_ceil(warps) as u32;
            self.gpu.launch(&name, (grid, 1, 1), BLOCK, 0, &args(x, y, rows));
            return;
        }
        // Tiles over (outputs, rows); the grid's y dimension is capped, so long inputs run in parts.
        const MAX_ROW_TILES: usize = 65_535;
        let per_launch = MAX_ROW_TILES * TILE;
        for first in (0..rows).step_by(per_launch) {
            let n = per_launch.min(rows - first);
            let grid = (out.div_ceil(TILE) as u32, n.div_ceil(TILE) as u32, 1);
            let (xs, ys) = (x + (first * cols * 4) as u64, y + (first * out * 4) as u64);
            self.gpu.launch(&format!("linear_gemm_{suffix}"), grid, (TILE * TILE) as u32, 0, &args(xs, ys, n));
        }
    }
}
