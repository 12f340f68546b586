//! The CPU backend, the numeric reference of every op: f32 arithmetic on its own threads
//! (`team.rs`; never rayon's global pool, so a host's pool and ours do not fight), weights widened
//! from their stored precision inside the kernels.

mod attention;
mod conv;
mod direct_conv;
pub mod math;
mod matmul;
mod qdot;
mod team;

use std::sync::Arc;

pub use matmul::{dot, dot_bf16};

use super::conv::{Conv1dWeight, Conv2dWeight, ConvTranspose1dWeight, DepthwiseConv1dWeight};
use super::kv::KvCache;
use super::sampling::{self, Pick};
use super::tensor::{Scratch, Tensor, Weight};
use super::{
    AttnSeq, AttnShape, Backend, Device, Kv, Mask, WEIGHTED_STATS_EPS, gate_row, same_shape, stats_inputs, width,
};
use crate::error::{Error, Result};

/// How far ahead of its reads (bytes) a few-row kernel asks for the weights (packed int8/int4 in
/// `qdot.rs`, bf16 and f32 in `matmul.rs`); the rows are contiguous, so this runs on into the
/// next row. Measured on one thread of the Xeon VM, weights from memory: int4 8.3 → 10.7 GB/s
/// (AVX-512) and 6.5 → 8.8–10.6 (AVX2), int8 10.1 → 11.1 and 8.8 → 11.2, against 11.5–12 for a
/// plain read; 1024 gave less; 4096 made int8 decode slower on two threads.
const PREFETCH: usize = 2048;

/// Deterministic test values in [−1, 1) (the kernels' tests).
#[cfg(test)]
fn test_values(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0).collect()
}

/// Most bytes of idle buffers the CPU backend's scratch workspace keeps for reuse.
const SCRATCH_IDLE_BYTES: usize = 128 << 20;

pub struct Cpu {
    team: team::Team,
    scratch: Arc<Scratch>,
    /// Whether many-row products may round their inputs and weights to bf16 where AMX runs them
    /// (`with_bf16_products`; off by default: f32 products, bit-exact with the reference).
    bf16_products: bool,
}

impl std::fmt::Debug for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cpu({} threads)", self.team.threads())
    }
}

impl Cpu {
    pub fn new(threads: usize) -> Result<Cpu> {
        let team = team::Team::new(threads, |i| format!("voxkit-cpu-{i}"))
            .map_err(|e| Error::internal(format!("cannot start the CPU threads: {e}")))?;
        Ok(Cpu { team, scratch: Arc::new(Scratch::new(SCRATCH_IDLE_BYTES)), bf16_products: false })
    }

    /// Lets many-row matrix products (prompts, the ASR encoder: 32 rows or more) run on AMX in
    /// bf16 — inputs and weights rounded to bf16, sums in f32 — where the CPU has AMX and the
    /// widths are multiples of 32. Lossy, so only for a caller that chose a quantization recipe
    /// (`Compute::for_recipe`); ≈ 4–5× the f32 SGEMM's rate there.
    pub fn with_bf16_products(mut self, on: bool) -> Cpu {
        self.bf16_products = on;
        self
    }

    /// The scratch workspace every op's output and temporaries come from.
    pub fn scratch(&self) -> &Scratch {
        &self.scratch
    }

    /// A zero tensor from the scratch workspace.
    fn tensor(&self, rows: usize, cols: usize) -> Tensor {
        Tensor::scratch(&self.scratch, rows, cols)
    }

    /// A scratch tensor the op writes whole (not cleared first).
    fn output(&self, rows: usize, cols: usize) -> Tensor {
        Tensor::scratch_dirty(&self.scratch, rows, cols)
    }

    pub fn threads(&self) -> usize {
        self.team.threads()
    }

    /// Runs `f(row_index, row)` over the rows of `data` (`width` wide), in parallel when there is
    /// enough work to pay for it.
    fn for_rows(&self, data: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
        if width == 0 {
            return;
        }
        if self.threads() == 1 || data.len() < matmul::SERIAL_BELOW {
            data.chunks_mut(width).enumerate().for_each(|(i, row)| f(i, row));
        } else {
            let rows_per_task = (data.len() / width).div_ceil(4 * self.threads()).max(1);
            self.team.chunks(data, rows_per_task * width, |c, block| {
                for (i, row) in block.chunks_mut(width).enumerate() {
                    f(c * rows_per_task + i, row);
                }
            });
        }
    }
}

impl Backend for Cpu {
    fn device(&self) -> Device {
        Device::Cpu
    }

    fn fast_bf16_products(&self) -> bool {
        direct_conv::has_bf16_products()
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Tensor {
        assert_eq!(data.len(), rows * cols, "upload: {} values for [{rows}, {cols}]", data.len());
        let mut t = self.output(rows, cols);
        t.host_mut().copy_from_slice(data);
        t
    }

    fn zeros(&self, rows: usize, cols: usize) -> Tensor {
        self.tensor(rows, cols)
    }

    fn concat_rows(&self, parts: &[&Tensor]) -> Tensor {
        let cols = parts.first().map_or(0, |t| t.cols());
        let rows = parts.iter().map(|t| t.rows()).sum();
        let mut y = self.output(rows, cols);
        let mut at = 0;
        for t in parts {
            assert_eq!(t.cols(), cols, "concat_rows: widths {} and {cols} differ", t.cols());
            y.host_mut()[at..at + t.len()].copy_from_slice(t.host());
            at += t.len();
        }
        y
    }

    fn gather_rows(&self, x: &Tensor, rows: &[Option<usize>]) -> Tensor {
        let mut y = self.tensor(rows.len(), x.cols());
        for (i, r) in rows.iter().enumerate() {
            if let Some(r) = *r {
                y.row_mut(i).copy_from_slice(x.row(r));
            }
        }
        y
    }

    fn slice_rows(&self, x: &Tensor, start: usize, n: usize) -> Tensor {
        assert!(start + n <= x.rows(), "slice_rows: {start}+{n} past {} rows", x.rows());
        let c = x.cols();
        let mut y = self.output(n, c);
        y.host_mut().copy_from_slice(&x.host()[start * c..(start + n) * c]);
        y
    }

    fn slice_cols(&self, x: &Tensor, start: usize, n: usize) -> Tensor {
        assert!(start + n <= x.cols(), "slice_cols: {start}+{n} past {} columns", x.cols());
        let mut y = self.output(x.rows(), n);
        self.for_rows(y.host_mut(), n, |r, row| row.copy_from_slice(&x.row(r)[start..start + n]));
        y
    }

    fn concat_cols(&self, parts: &[&Tensor]) -> Tensor {
        let rows = parts.first().map_or(0, |t| t.rows());
        let cols = parts.iter().map(|t| t.cols()).sum();
        for t in parts {
            assert_eq!(t.rows(), rows, "concat_cols: heights {} and {rows} differ", t.rows());
        }
        let mut y = self.output(rows, cols);
        self.for_rows(y.host_mut(), cols, |r, row| {
            let mut at = 0;
            for t in parts {
                row[at..at + t.cols()].copy_from_slice(t.row(r));
                at += t.cols();
            }
        });
        y
    }

    fn set_rows(&self, dst: &mut Tensor, at: &[usize], src: &Tensor) {
        assert_eq!((at.len(), dst.cols()), (src.rows(), src.cols()), "set_rows: shapes differ");
        for (i, &r) in at.iter().enumerate() {
            dst.row_mut(r).copy_from_slice(src.row(i));
        }
    }

    fn add_rows(&self, dst: &mut Tensor, at: &[usize], src: &Tensor) {
        assert_eq!((at.len(), dst.cols()), (src.rows(), src.cols()), "add_rows: shapes differ");
        for (i, &r) in at.iter().enumerate() {
            for (a, b) in dst.row_mut(r).iter_mut().zip(src.row(i)) {
                *a += b;
            }
        }
    }

    fn permute(&self, x: &Tensor, dims: [usize; 4], order: [usize; 4]) -> Tensor {
        assert_eq!(dims.iter().product::<usize>(), x.len(), "permute: dims {dims:?} do not match the tensor");
        let out_dims = order.map(|o| dims[o]);
        let strides = [dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1];
        let src = x.host();
        let mut y = self.output(out_dims[0] * out_dims[1] * out_dims[2], out_dims[3]);
        let yd = y.host_mut();
        let mut i = 0;
        for a in 0..out_dims[0] {
            for b in 0..out_dims[1] {
                for c in 0..out_dims[2] {
                    let base = a * strides[order[0]] + b * strides[order[1]] + c * strides[order[2]];
                    for d in 0..out_dims[3] {
                        yd[i] = src[base + d * strides[order[3]]];
                        i += 1;
                    }
                }
            }
        }
        y
    }

    fn linear(&self, x: &Tensor, w: &Weight, bias: Option<&Weight>) -> Tensor {
        self.linear_one(x, w, bias.map(|b| b.f32s()))
    }

    fn linear_many(&self, x: &Tensor, layers: &[(&Weight, Option<&Weight>)]) -> Vec<Tensor> {
        let layers: Vec<(&Weight, Option<&[f32]>)> = layers.iter().map(|(w, b)| (*w, b.map(|b| b.f32s()))).collect();
        self.linear_rows(x, &layers)
    }

    fn embedding(&self, table: &Weight, ids: &[u32]) -> Result<Tensor> {
        self.embedding_sum(table, ids, 1)
    }

    fn embedding_sum(&self, table: &Weight, ids: &[u32], per_row: usize) -> Result<Tensor> {
        assert!(
            per_row > 0 && ids.len().is_multiple_of(per_row),
            "embedding_sum: {} ids in rows of {per_row}",
            ids.len()
        );
        let dim = table.cols();
        let mut t = self.tensor(ids.len() / per_row, dim);
        let mut buf = self.scratch.take(if per_row > 1 { dim } else { 0 });
        for (i, group) in ids.chunks(per_row).enumerate() {
            for &id in group {
                if id as usize >= table.rows() {
                    return Err(Error::invalid(format!(
                        "token id {id} is outside the embedding table of {} rows",
                        table.rows()
                    )));
                }
            }
            if per_row == 1 {
                table.row_into(group[0] as usize, t.row_mut(i));
                continue;
            }
            let row = t.row_mut(i);
            for &id in group {
                table.row_into(id as usize, &mut buf);
                for (a, b) in row.iter_mut().zip(&buf) {
                    *a += b;
                }
            }
        }
        self.scratch.give(buf);
        Ok(t)
    }

    fn rms_norm(&self, x: &Tensor, w: &Weight, eps: f32) -> Tensor {
        width("rms_norm", x, w);
        let mut y = x.clone();
        math::rms_norm(y.host_mut(), w.f32s(), eps);
        y
    }

    fn rms_norm_heads(&self, x: &mut Tensor, w: &Weight, eps: f32) {
        assert_eq!(x.cols() % w.len(), 0, "rms_norm_heads: rows of {} in heads of {}", x.cols(), w.len());
        math::rms_norm(x.host_mut(), w.f32s(), eps);
    }

    fn layer_norm(&self, x: &Tensor, w: &Weight, b: &Weight, eps: f32) -> Tensor {
        width("layer_norm", x, w);
        let mut y = x.clone();
        math::layer_norm(y.host_mut(), w.f32s(), b.f32s(), eps);
        y
    }

    fn rope(&self, xs: &mut [&mut Tensor], head_dim: usize, positions: &[usize], inv_freq: &[f32]) {
        let half = inv_freq.len();
        assert_eq!(2 * half, head_dim, "rope: {half} frequencies for heads of {head_dim}");
        let mut cos = self.scratch.take_dirty(half);
        let mut sin = self.scratch.take_dirty(half);
        for (r, &pos) in positions.iter().enumerate() {
            for (j, &f) in inv_freq.iter().enumerate() {
                (sin[j], cos[j]) = (pos as f32 * f).sin_cos();
            }
            for x in xs.iter_mut() {
                assert_eq!(x.rows(), positions.len(), "rope: one position per row");
                for head in x.row_mut(r).chunks_mut(head_dim) {
                    for j in 0..half {
                        let (a, b) = (head[j], head[j + half]);
                        head[j] = a * cos[j] - b * sin[j];
                        head[j + half] = b * cos[j] + a * sin[j];
                    }
                }
            }
        }
        self.scratch.give(cos);
        self.scratch.give(sin);
    }

    fn silu(&self, x: &mut Tensor) {
        math::silu(x.host_mut());
    }

    fn silu_mul(&self, gate: &mut Tensor, up: &Tensor) {
        same_shape("silu_mul", gate, up);
        math::silu_mul(gate.host_mut(), up.host());
    }

    fn gelu_erf(&self, x: &mut Tensor) {
        math::gelu_erf(x.host_mut());
    }

    fn snake_beta(&self, x: &mut Tensor, alpha: &Weight, inv_beta: &Weight) {
        width("snake_beta", x, alpha);
        let (a, b) = (alpha.f32s(), inv_beta.f32s());
        let c = x.cols();
        self.for_rows(x.host_mut(), c, |_, row| math::snake_beta(row, a, b));
    }

    fn add(&self, x: &mut Tensor, y: &Tensor) {
        same_shape("add", x, y);
        for (a, b) in x.host_mut().iter_mut().zip(y.host()) {
            *a += b;
        }
    }

    fn add_scaled(&self, x: &mut Tensor, y: &Tensor, scale: &Weight) {
        same_shape("add_scaled", x, y);
        width("add_scaled", x, scale);
        let (c, s) = (x.cols(), scale.f32s());
        for (row_x, row_y) in x.host_mut().chunks_mut(c).zip(y.host().chunks(c)) {
            for ((v, d), g) in row_x.iter_mut().zip(row_y).zip(s) {
                *v += g * d;
            }
        }
    }

    fn add_bias(&self, x: &mut Tensor, b: &Weight) {
        width("add_bias", x, b);
        let (c, b) = (x.cols(), b.f32s());
        for row in x.host_mut().chunks_mut(c) {
            for (v, b) in row.iter_mut().zip(b) {
                *v += b;
            }
        }
    }

    fn clamp(&self, x: &mut Tensor, lo: f32, hi: f32) {
        x.host_mut().iter_mut().for_each(|v| *v = v.clamp(lo, hi));
    }

    fn sigmoid(&self, x: &mut Tensor) {
        let c = x.cols();
        self.for_rows(x.host_mut(), c, |_, row| math::sigmoid(row));
    }

    fn tanh(&self, x: &mut Tensor) {
        let c = x.cols();
        self.for_rows(x.host_mut(), c, |_, row| row.iter_mut().for_each(|v| *v = v.tanh()));
    }

    fn elu(&self, x: &mut Tensor) {
        let c = x.cols();
        self.for_rows(x.host_mut(), c, |_, row| math::elu(row));
    }

    fn mul_row(&self, x: &mut Tensor, v: &Tensor) {
        gate_row(x, v);
        let (c, g) = (x.cols(), v.host());
        self.for_rows(x.host_mut(), c, |_, row| {
            for (a, b) in row.iter_mut().zip(g) {
                *a *= b;
            }
        });
    }

    fn mean_rows(&self, x: &Tensor) -> Tensor {
        assert!(x.rows() > 0, "mean_rows: no rows");
        let mut y = self.output(1, x.cols());
        math::mean_rows(x.host(), y.host_mut());
        y
    }

    fn weighted_stats(&self, x: &Tensor, logits: Option<&Tensor>) -> Tensor {
        stats_inputs(x, logits);
        let mut y = self.output(1, 2 * x.cols());
        math::weighted_stats(x.host(), logits.map(|l| l.host()), WEIGHTED_STATS_EPS, y.host_mut());
        y
    }

    fn conv1d(&self, x: &Tensor, w: &Conv1dWeight) -> Tensor {
        conv::conv1d(self, x, w)
    }

    fn conv_transpose1d(&self, x: &Tensor, w: &ConvTranspose1dWeight) -> Tensor {
        conv::conv_transpose1d(self, x, w)
    }

    fn depthwise_conv1d(&self, x: &Tensor, w: &DepthwiseConv1dWeight) -> Tensor {
        conv::depthwise_conv1d(self, x, w)
    }

    fn conv2d_s2(&self, x: &Tensor, w: &Conv2dWeight, images: usize, f: usize, t: usize) -> Tensor {
        conv::conv2d_s2(self, x, w, images, f, t)
    }

    fn kv_cache(&self, layers: usize, width: usize, slots: usize, tokens_per_slot: usize) -> Result<KvCache> {
        KvCache::new(layers, width, slots, tokens_per_slot)
    }

    fn kv_write(&self, cache: &mut KvCache, layer: usize, seqs: &[AttnSeq], k: &Tensor, v: &Tensor) {
        same_shape("kv_write", k, v);
        assert_eq!(k.cols(), cache.width(), "kv_write: rows of {} into a cache of {}", k.cols(), cache.width());
        let mut row = 0;
        for s in seqs {
            for r in 0..s.rows {
                cache.write(layer, s.slot, s.past + r, k.row(row + r), v.row(row + r));
            }
            row += s.rows;
        }
        assert_eq!(row, k.rows(), "kv_write: the sequences do not cover the rows");
    }

    fn attention(&self, q: &Tensor, kv: Kv<'_>, seqs: &[AttnSeq], shape: AttnShape, mask: Mask) -> Tensor {
        attention::attention(self, q, kv, seqs, shape, mask)
    }

    fn argmax(&self, logits: &Tensor) -> Vec<u32> {
        (0..logits.rows()).map(|r| sampling::argmax(logits.row(r))).collect()
    }

    fn sample(&self, logits: &Tensor, picks: &mut [Pick<'_>]) -> Vec<u32> {
        assert_eq!(picks.len(), logits.rows(), "sample: one pick per row");
        let mut row = self.scratch.take(logits.cols());
        let ids = picks
            .iter_mut()
            .enumerate()
            .map(|(r, p)| {
                row.copy_from_slice(logits.row(r));
                sampling::sample_row(&mut row, p)
            })
            .collect();
        self.scratch.give(row);
        ids
    }
}
