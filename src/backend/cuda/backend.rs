//! The CUDA backend: every op of the compute layer as one of our kernels (or a few), on one stream.
//! Tensors live in device memory from the pool; weights are copied to the device in their stored
//! precision on first use and stay there. Host data crosses only through `upload`, `to_host`, the
//! small per-call index tables, and the ids `argmax`/`sample` return.

use std::collections::HashMap;
use std::sync::Arc;

use half::{bf16, f16};
use parking_lot::Mutex;

use super::args::KernelArgs;
use super::gpu::Gpu;
use super::memory::{DeviceBuf, OrRaise, Plain, as_bytes};
use crate::backend::conv::{Conv1dWeight, Conv2dWeight, ConvTranspose1dWeight, DepthwiseConv1dWeight};
use crate::backend::kv::KvCache;
use crate::backend::sampling::Pick;
use crate::backend::tensor::{Ids, Tensor, Weight, WeightData};
use crate::backend::{
    AttnSeq, AttnShape, Backend, Device, Kv, Mask, WEIGHTED_STATS_EPS, gate_row, same_shape, stats_inputs, width,
};
use crate::error::{Error, Result};

/// Threads per block of the element-wise and row kernels.
pub(super) const BLOCK: u32 = 256;
/// Threads per block of the column statistics (`norm.cu`): 32 columns × 8 strands of rows.
const STATS_BLOCK: u32 = 256;
/// Why a quantized weight cannot be made resident (the int8/int4 kernels are CPU-only so far).
pub(super) const QUANT_ON_CUDA: &str =
    "quantized weights (int8/int4) run on the CPU backend only; load the model unquantized on a GPU";

pub struct Cuda {
    pub(super) gpu: Gpu,
    /// The last upload of each kind of per-call table (positions, sequence layouts, block tables)
    /// and its host bytes: the layers of one step ask for the same tables, which then cross to the
    /// device once a step instead of once a layer.
    tables: Mutex<HashMap<&'static str, Uploaded>>,
    /// Recorded regions (`regions.rs`), and whether they are captured and replayed as graphs.
    pub(super) regions: Mutex<super::regions::Regions>,
    graphs: std::sync::atomic::AtomicBool,
    /// Recorded regions entered and not yet left (0 or 1: nested ones run as part of theirs).
    pub(super) region_depth: std::sync::atomic::AtomicUsize,
}

/// A table's host bytes and its device copy.
type Uploaded = (Vec<u8>, Arc<DeviceBuf>);

impl std::fmt::Debug for Cuda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cuda({:?})", self.gpu)
    }
}

/// The device address of a tensor of this backend.
pub(super) fn ptr(t: &Tensor) -> u64 {
    t.device_buf().map_or_else(
        || panic!("a host tensor was passed to a CUDA op (tensors of different backends mixed)"),
        |b| b.ptr(),
    )
}

/// Splits `at` into runs of distinct rows, in order (a kernel writing the same row twice would race).
fn distinct_runs(at: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut start = 0;
    for (i, r) in at.iter().enumerate() {
        if !seen.insert(*r) {
            runs.push(start..i);
            seen.clear();
            seen.insert(*r);
            start = i;
        }
    }
    runs.push(start..at.len());
    runs
}

impl Cuda {
    /// The backend on CUDA device `ordinal` (`NoDevice` with the reason when it cannot run voxkit).
    pub fn new(ordinal: u32) -> Result<Cuda> {
        // VOXKIT_CUDA_GRAPHS=0 runs recorded regions eagerly (comparisons, diagnosis).
        let graphs = std::env::var("VOXKIT_CUDA_GRAPHS").map_or(true, |v| v != "0");
        Ok(Cuda {
            gpu: Gpu::open(ordinal)?,
            tables: Mutex::new(HashMap::new()),
            regions: Mutex::new(Default::default()),
            graphs: graphs.into(),
            region_depth: Default::default(),
        })
    }

    /// What the device is.
    pub fn info(&self) -> &super::GpuInfo {
        &self.gpu.info
    }

    /// Device allocations this backend has made (tests: a steady step loop makes none).
    pub fn device_allocations(&self) -> u64 {
        self.gpu.pool.allocations()
    }

    /// Whether recorded regions become graphs (default: yes, unless VOXKIT_CUDA_GRAPHS=0).
    pub fn set_graphs(&self, on: bool) {
        self.graphs.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn graphs_on(&self) -> bool {
        self.graphs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Graph launches of recorded regions so far (tests: steady frames replay their graphs).
    pub fn graph_launches(&self) -> u64 {
        self.gpu.pool.replays()
    }

    /// Times the host has waited for this backend's device (tests: a TTS frame waits once).
    pub fn host_waits(&self) -> u64 {
        self.gpu.pool.waits()
    }

    /// A pooled tensor the op writes whole.
    pub(super) fn output(&self, rows: usize, cols: usize) -> Tensor {
        let buf = self.gpu.pool.take(rows * cols * 4).or_raise();
        Tensor::on_device(buf, rows, cols)
    }

    fn zeroed(&self, rows: usize, cols: usize) -> Tensor {
        let t = self.output(rows, cols);
        self.gpu.pool.zero(ptr(&t), t.len() * 4).or_raise();
        t
    }

    /// A per-call table of kind `key`, uploaded only when it differs from that kind's last upload.
    pub(super) fn table_cached<T: Plain>(&self, key: &'static str, v: &[T]) -> Arc<DeviceBuf> {
        if self.gpu.pool.in_region() {
            // A recorded region's tables are its own (the graph rewrites them at each launch).
            return Arc::new(self.table(v));
        }
        let bytes = as_bytes(v);
        let mut tables = self.tables.lock();
        if let Some((last, buf)) = tables.get(key)
            && last.as_slice() == bytes
        {
            return buf.clone();
        }
        let buf = Arc::new(self.table(v));
        tables.insert(key, (bytes.to_vec(), buf.clone()));
        buf
    }

    /// A small host table copied to the device for one call (indices, positions, addresses). Its
    /// buffer is rounded up to whole KiB, so that tables growing by an entry a step (block tables,
    /// positions) keep reusing the same pooled buffers.
    pub(super) fn table<T: Copy>(&self, v: &[T]) -> DeviceBuf {
        let bytes = std::mem::size_of_val(v);
        let padded = bytes.next_multiple_of(1024);
        let buf = self.gpu.pool.take(padded).or_raise();
        if self.gpu.pool.in_region() && padded > bytes {
            // A recorded copy has a fixed size: the whole buffer, so that a table that grows by an
            // entry a step (seen ids, block tables) stays the same node.
            let mut all = vec![0u8; padded];
            all[..bytes].copy_from_slice(as_bytes(v));
            self.gpu.pool.upload(buf.ptr(), &all).or_raise();
        } else {
            self.gpu.pool.upload(buf.ptr(), v).or_raise();
        }
        buf
    }

    /// The device copy of a weight, made on first use.
    pub(super) fn weight(&self, w: &Weight) -> u64 {
        self.resident(w).or_raise()
    }

    /// The device copy of a weight, made now if there is none.
    fn resident(&self, w: &Weight) -> Result<u64> {
        let slot = w.device_copy();
        if let Some(b) = slot.get() {
            return Ok(b.ptr());
        }
        let pool = &self.gpu.pool;
        let upload = || -> Result<DeviceBuf> {
            let buf = pool.alloc_owned(w.bytes())?;
            match w.data() {
                WeightData::F32(v) => pool.upload::<f32>(buf.ptr(), v)?,
                WeightData::BF16(v) => pool.upload::<bf16>(buf.ptr(), v)?,
                WeightData::F16(v) => pool.upload::<f16>(buf.ptr(), v)?,
                WeightData::Quant(_) => return Err(Error::invalid(QUANT_ON_CUDA.to_string())),
            }
            Ok(buf)
        };
        let buf = upload()
            .map_err(|e| Error::new(e.kind, format!("copying a weight {:?} to the GPU: {}", w.shape(), e.message)))?;
        let _ = slot.set(buf); // another thread may have won the race: its copy is as good
        Ok(slot.get().expect("set above").ptr())
    }

    /// An element-wise kernel over `n` values: `args` then `n`.
    pub(super) fn map(&self, name: &str, n: usize, args: &mut KernelArgs) {
        if n == 0 {
            return;
        }
        args.i64(n as i64);
        let grid = n.div_ceil(BLOCK as usize).min(65_535) as u32;
        self.gpu.launch(name, (grid, 1, 1), BLOCK, 0, args);
    }

    /// Threads for a one-block-per-row kernel over rows of `cols`.
    pub(super) fn row_block(cols: usize) -> u32 {
        (cols.next_multiple_of(32)).clamp(32, 256) as u32
    }

    fn scatter(&self, dst: &mut Tensor, at: &[usize], src: &Tensor, add: bool) {
        assert_eq!((at.len(), dst.cols()), (src.rows(), src.cols()), "set_rows: shapes differ");
        assert!(at.iter().all(|&r| r < dst.rows()), "set_rows: a row past {}", dst.rows());
        let c = dst.cols();
        for run in distinct_runs(at) {
            let rows: Vec<i32> = at[run.clone()].iter().map(|&r| r as i32).collect();
            let table = self.table(&rows);
            let src_at = ptr(src) + (run.start * c * 4) as u64;
            let mut a = KernelArgs::new();
            a.ptr(ptr(dst)).ptr(table.ptr()).ptr(src_at).i32(c as i32).i32(add as i32);
            self.map("scatter_rows_f32", rows.len() * c, &mut a);
        }
    }

    /// Columns `src_start..src_start + width` of every row of `src` into columns `dst_start..` of
    /// `dst` (the same rows).
    fn copy_cols(&self, src: &Tensor, src_start: usize, dst: &Tensor, dst_start: usize, width: usize) {
        let mut a = KernelArgs::new();
        a.ptr(ptr_or_zero(src)).ptr(ptr_or_zero(dst));
        a.i32(src.cols() as i32).i32(src_start as i32).i32(dst.cols() as i32).i32(dst_start as i32).i32(width as i32);
        self.map("copy_cols_f32", src.rows() * width, &mut a);
    }

    fn per_channel(&self, name: &str, x: &mut Tensor, vectors: &[&Weight], y: Option<&Tensor>) {
        let mut a = KernelArgs::new();
        a.ptr(ptr(x));
        if let Some(y) = y {
            a.ptr(ptr(y));
        }
        for v in vectors {
            a.ptr(self.weight(v));
        }
        a.i32(x.cols() as i32);
        self.map(name, x.len(), &mut a);
    }

    /// Rows `ids` (in device memory, each below the table's rows) of a table.
    fn embedding_at(&self, table: &Weight, ids: u64, n: usize, per_row: usize) -> Tensor {
        let dim = table.cols();
        let y = self.output(n / per_row, dim);
        let name = match table.data() {
            WeightData::F32(_) => "embedding_sum_f32",
            WeightData::BF16(_) => "embedding_sum_bf16",
            WeightData::F16(_) => "embedding_sum_f16",
            WeightData::Quant(_) => panic!("{QUANT_ON_CUDA}"),
        };
        let mut a = KernelArgs::new();
        a.ptr(self.weight(table)).ptr(ids).ptr(ptr(&y)).i32(dim as i32).i32(per_row as i32);
        self.map(name, y.len(), &mut a);
        y
    }

    fn embedding_rows(&self, table: &Weight, ids: &[u32], per_row: usize) -> Result<Tensor> {
        assert!(
            per_row > 0 && ids.len().is_multiple_of(per_row),
            "embedding_sum: {} ids in rows of {per_row}",
            ids.len()
        );
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= table.rows()) {
            return Err(Error::invalid(format!(
                "token id {id} is outside the embedding table of {} rows",
                table.rows()
            )));
        }
        let ids_d = self.table(ids);
        Ok(self.embedding_at(table, ids_d.ptr(), ids.len(), per_row))
    }
}

impl Backend for Cuda {
    fn device(&self) -> Device {
        Device::Cuda(self.gpu.info.ordinal as u32)
    }

    fn prepare(&self, w: &Weight) -> Result<()> {
        self.resident(w).map(|_| ())
    }

    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Tensor {
        assert_eq!(data.len(), rows * cols, "upload: {} values for [{rows}, {cols}]", data.len());
        let t = self.output(rows, cols);
        self.gpu.pool.upload(ptr(&t), data).or_raise();
        t
    }

    fn zeros(&self, rows: usize, cols: usize) -> Tensor {
        self.zeroed(rows, cols)
    }

    fn concat_rows(&self, parts: &[&Tensor]) -> Tensor {
        let cols = parts.first().map_or(0, |t| t.cols());
        let rows = parts.iter().map(|t| t.rows()).sum();
        let y = self.output(rows, cols);
        let mut at = 0;
        for t in parts {
            assert_eq!(t.cols(), cols, "concat_rows: widths {} and {cols} differ", t.cols());
            self.gpu.pool.copy_dtod(ptr(&y) + at as u64, ptr(t), t.len() * 4).or_raise();
            at += t.len() * 4;
        }
        y
    }

    fn gather_rows(&self, x: &Tensor, rows: &[Option<usize>]) -> Tensor {
        assert!(rows.iter().flatten().all(|&r| r < x.rows()), "gather_rows: a row past {}", x.rows());
        let y = self.output(rows.len(), x.cols());
        if y.is_empty() {
            return y;
        }
        let idx: Vec<i32> = rows.iter().map(|r| r.map_or(-1, |r| r as i32)).collect();
        let table = self.table(&idx);
        let mut a = KernelArgs::new();
        a.ptr(if x.is_empty() { 0 } else { ptr(x) }).ptr(table.ptr()).ptr(ptr(&y)).i32(x.cols() as i32);
        self.map("gather_rows_f32", y.len(), &mut a);
        y
    }

    fn slice_rows(&self, x: &Tensor, start: usize, n: usize) -> Tensor {
        assert!(start + n <= x.rows(), "slice_rows: {start}+{n} past {} rows", x.rows());
        let c = x.cols();
        let y = self.output(n, c);
        if n * c > 0 {
            let src = ptr(x) + (start * c * 4) as u64;
            self.gpu.pool.copy_dtod(ptr(&y), src, n * c * 4).or_raise();
        }
        y
    }

    fn slice_cols(&self, x: &Tensor, start: usize, n: usize) -> Tensor {
        assert!(start + n <= x.cols(), "slice_cols: {start}+{n} past {} columns", x.cols());
        let y = self.output(x.rows(), n);
        self.copy_cols(x, start, &y, 0, n);
        y
    }

    fn concat_cols(&self, parts: &[&Tensor]) -> Tensor {
        let rows = parts.first().map_or(0, |t| t.rows());
        let cols = parts.iter().map(|t| t.cols()).sum();
        for t in parts {
            assert_eq!(t.rows(), rows, "concat_cols: heights {} and {rows} differ", t.rows());
        }
        let y = self.output(rows, cols);
        let mut at = 0;
        for t in parts {
            self.copy_cols(t, 0, &y, at, t.cols());
            at += t.cols();
        }
        y
    }

    fn set_rows(&self, dst: &mut Tensor, at: &[usize], src: &Tensor) {
        self.scatter(dst, at, src, false);
    }

    fn add_rows(&self, dst: &mut Tensor, at: &[usize], src: &Tensor) {
        self.scatter(dst, at, src, true);
    }

    fn permute(&self, x: &Tensor, dims: [usize; 4], order: [usize; 4]) -> Tensor {
        assert_eq!(dims.iter().product::<usize>(), x.len(), "permute: dims {dims:?} do not match the tensor");
        let out = order.map(|o| dims[o]);
        let strides = [dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1];
        let s = order.map(|o| strides[o] as i64);
        let y = self.output(out[0] * out[1] * out[2], out[3]);
        let mut a = KernelArgs::new();
        a.ptr(ptr(x)).ptr(ptr(&y)).i32(out[1] as i32).i32(out[2] as i32).i32(out[3] as i32);
        a.i64(s[0]).i64(s[1]).i64(s[2]).i64(s[3]);
        self.map("permute4_f32", y.len(), &mut a);
        y
    }

    fn linear(&self, x: &Tensor, w: &Weight, bias: Option<&Weight>) -> Tensor {
        let y = self.output(x.rows(), w.rows());
        self.linear_into(ptr_or_zero(x), x.rows(), x.cols(), w, bias, ptr_or_zero(&y), false);
        y
    }

    fn linear_many(&self, x: &Tensor, layers: &[(&Weight, Option<&Weight>)]) -> Vec<Tensor> {
        self.linear_many_op(x, layers)
    }

    fn linear_add(&self, x: &mut Tensor, a: &Tensor, w: &Weight) {
        assert_eq!(
            (x.rows(), x.cols()),
            (a.rows(), w.rows()),
            "linear_add: [{}, {}] += [{}, ..] · {:?}ᵀ",
            x.rows(),
            x.cols(),
            a.rows(),
            w.shape()
        );
        self.linear_into(ptr_or_zero(a), a.rows(), a.cols(), w, None, ptr_or_zero(x), true);
    }

    fn embedding(&self, table: &Weight, ids: &[u32]) -> Result<Tensor> {
        self.embedding_rows(table, ids, 1)
    }

    fn embedding_sum(&self, table: &Weight, ids: &[u32], per_row: usize) -> Result<Tensor> {
        self.embedding_rows(table, ids, per_row)
    }

    fn rms_norm(&self, x: &Tensor, w: &Weight, eps: f32) -> Tensor {
        width("rms_norm", x, w);
        let y = self.output(x.rows(), x.cols());
        if !y.is_empty() {
            let mut a = KernelArgs::new();
            a.ptr(ptr(x)).ptr(self.weight(w)).ptr(ptr(&y)).i32(x.cols() as i32).f32(eps);
            self.gpu.launch("rms_norm_f32", (x.rows() as u32, 1, 1), Cuda::row_block(x.cols()), 0, &a);
        }
        y
    }

    fn rms_norm_heads(&self, x: &mut Tensor, w: &Weight, eps: f32) {
        assert_eq!(x.cols() % w.len(), 0, "rms_norm_heads: rows of {} in heads of {}", x.cols(), w.len());
        let heads = x.len() / w.len();
        if heads > 0 {
            let mut a = KernelArgs::new();
            a.ptr(ptr(x)).ptr(self.weight(w)).i32(w.len() as i32).f32(eps);
            self.gpu.launch("rms_norm_inplace_f32", (heads as u32, 1, 1), Cuda::row_block(w.len()), 0, &a);
        }
    }

    fn layer_norm(&self, x: &Tensor, w: &Weight, b: &Weight, eps: f32) -> Tensor {
        width("layer_norm", x, w);
        let y = self.output(x.rows(), x.cols());
        if !y.is_empty() {
            let mut a = KernelArgs::new();
            a.ptr(ptr(x)).ptr(self.weight(w)).ptr(self.weight(b)).ptr(ptr(&y)).i32(x.cols() as i32).f32(eps);
            self.gpu.launch("layer_norm_f32", (x.rows() as u32, 1, 1), Cuda::row_block(x.cols()), 0, &a);
        }
        y
    }

    fn rope(&self, xs: &mut [&mut Tensor], head_dim: usize, positions: &[usize], inv_freq: &[f32]) {
        let half = inv_freq.len();
        assert_eq!(2 * half, head_dim, "rope: {half} frequencies for heads of {head_dim}");
        let pos: Vec<i32> = positions.iter().map(|&p| p as i32).collect();
        let (pos_d, freq_d) = (self.table_cached("rope.positions", &pos), self.table_cached("rope.inv_freq", inv_freq));
        for x in xs.iter_mut() {
            assert_eq!(x.rows(), positions.len(), "rope: one position per row");
            assert_eq!(x.cols() % head_dim, 0, "rope: rows of {} in heads of {head_dim}", x.cols());
            let mut a = KernelArgs::new();
            a.ptr(ptr(x)).ptr(pos_d.ptr()).ptr(freq_d.ptr()).i32(x.cols() as i32).i32(half as i32);
            self.map("rope_f32", x.len() / 2, &mut a);
        }
    }

    fn qk_norm_rope(
        &self,
        q: &mut Tensor,
        k: &mut Tensor,
        norms: (&Weight, &Weight),
        eps: f32,
        head_dim: usize,
        positions: &[usize],
        inv_freq: &[f32],
    ) {
        let half = inv_freq.len();
        assert_eq!(2 * half, head_dim, "qk_norm_rope: {half} frequencies for heads of {head_dim}");
        assert!(norms.0.len() == head_dim && norms.1.len() == head_dim, "qk_norm_rope: norms of {head_dim}");
        assert!(
            q.cols().is_multiple_of(head_dim) && k.cols().is_multiple_of(head_dim),
            "qk_norm_rope: rows in heads of {head_dim}"
        );
        assert!(q.rows() == positions.len() && k.rows() == positions.len(), "qk_norm_rope: one position per row");
        let (q_heads, k_heads) = (q.cols() / head_dim, k.cols() / head_dim);
        let blocks = positions.len() * (q_heads + k_heads);
        if blocks == 0 {
            return;
        }
        let pos: Vec<i32> = positions.iter().map(|&p| p as i32).collect();
        let (pos_d, freq_d) = (self.table_cached("rope.positions", &pos), self.table_cached("rope.inv_freq", inv_freq));
        let mut a = KernelArgs::new();
        a.ptr(ptr(q))
            .ptr(ptr(k))
            .ptr(self.weight(norms.0))
            .ptr(self.weight(norms.1))
            .ptr(pos_d.ptr())
            .ptr(freq_d.ptr());
        a.i32(q_heads as i32).i32(k_heads as i32).i32(head_dim as i32).f32(eps);
        self.gpu.launch("qk_norm_rope_f32", (blocks as u32, 1, 1), Cuda::row_block(half), 0, &a);
    }

    fn silu(&self, x: &mut Tensor) {
        self.map("silu_f32", x.len(), KernelArgs::new().ptr(ptr_or_zero(x)));
    }

    fn silu_mul(&self, gate: &mut Tensor, up: &Tensor) {
        same_shape("silu_mul", gate, up);
        self.map("silu_mul_f32", gate.len(), KernelArgs::new().ptr(ptr_or_zero(gate)).ptr(ptr_or_zero(up)));
    }

    fn gelu_erf(&self, x: &mut Tensor) {
        self.map("gelu_erf_f32", x.len(), KernelArgs::new().ptr(ptr_or_zero(x)));
    }

    fn snake_beta(&self, x: &mut Tensor, alpha: &Weight, inv_beta: &Weight) {
        width("snake_beta", x, alpha);
        width("snake_beta", x, inv_beta);
        self.per_channel("snake_beta_f32", x, &[alpha, inv_beta], None);
    }

    fn add(&self, x: &mut Tensor, y: &Tensor) {
        same_shape("add", x, y);
        self.map("add_f32", x.len(), KernelArgs::new().ptr(ptr_or_zero(x)).ptr(ptr_or_zero(y)));
    }

    fn add_scaled(&self, x: &mut Tensor, y: &Tensor, scale: &Weight) {
        same_shape("add_scaled", x, y);
        width("add_scaled", x, scale);
        self.per_channel("add_scaled_f32", x, &[scale], Some(y));
    }

    fn add_bias(&self, x: &mut Tensor, b: &Weight) {
        width("add_bias", x, b);
        self.per_channel("add_bias_f32", x, &[b], None);
    }

    fn clamp(&self, x: &mut Tensor, lo: f32, hi: f32) {
        self.map("clamp_f32", x.len(), KernelArgs::new().ptr(ptr_or_zero(x)).f32(lo).f32(hi));
    }

    fn sigmoid(&self, x: &mut Tensor) {
        self.map("sigmoid_f32", x.len(), KernelArgs::new().ptr(ptr_or_zero(x)));
    }

    fn tanh(&self, x: &mut Tensor) {
        self.map("tanh_f32", x.len(), KernelArgs::new().ptr(ptr_or_zero(x)));
    }

    fn elu(&self, x: &mut Tensor) {
        self.map("elu_f32", x.len(), KernelArgs::new().ptr(ptr_or_zero(x)));
    }

    fn mul_row(&self, x: &mut Tensor, v: &Tensor) {
        gate_row(x, v);
        let mut a = KernelArgs::new();
        a.ptr(ptr_or_zero(x)).ptr(ptr_or_zero(v)).i32(x.cols() as i32);
        self.map("mul_row_f32", x.len(), &mut a);
    }

    fn mean_rows(&self, x: &Tensor) -> Tensor {
        assert!(x.rows() > 0, "mean_rows: no rows");
        let y = self.output(1, x.cols());
        if !y.is_empty() {
            let mut a = KernelArgs::new();
            a.ptr(ptr(x)).ptr(ptr(&y)).i32(x.rows() as i32).i32(x.cols() as i32);
            self.gpu.launch("mean_rows_f32", (x.cols().div_ceil(32) as u32, 1, 1), STATS_BLOCK, 0, &a);
        }
        y
    }

    fn weighted_stats(&self, x: &Tensor, logits: Option<&Tensor>) -> Tensor {
        stats_inputs(x, logits);
        let y = self.output(1, 2 * x.cols());
        if !y.is_empty() {
            let mut a = KernelArgs::new();
            a.ptr(ptr(x)).ptr(logits.map_or(0, ptr)).ptr(ptr(&y));
            a.i32(x.rows() as i32).i32(x.cols() as i32).f32(WEIGHTED_STATS_EPS);
            self.gpu.launch("weighted_stats_f32", (x.cols().div_ceil(32) as u32, 1, 1), STATS_BLOCK, 0, &a);
        }
        y
    }

    fn conv1d(&self, x: &Tensor, w: &Conv1dWeight) -> Tensor {
        self.conv1d_op(x, w)
    }

    fn conv_transpose1d(&self, x: &Tensor, w: &ConvTranspose1dWeight) -> Tensor {
        self.conv_transpose1d_op(x, w)
    }

    fn depthwise_conv1d(&self, x: &Tensor, w: &DepthwiseConv1dWeight) -> Tensor {
        self.depthwise_conv1d_op(x, w)
    }

    fn conv2d_s2(&self, x: &Tensor, w: &Conv2dWeight, images: usize, f: usize, t: usize) -> Tensor {
        self.conv2d_s2_op(x, w, images, f, t)
    }

    fn kv_cache(&self, layers: usize, width: usize, slots: usize, tokens_per_slot: usize) -> Result<KvCache> {
        KvCache::on_device(layers, width, slots, tokens_per_slot, self.gpu.pool.clone())
    }

    fn kv_write(&self, cache: &mut KvCache, layer: usize, seqs: &[AttnSeq], k: &Tensor, v: &Tensor) {
        self.kv_write_op(cache, layer, seqs, k, v)
    }

    fn attention(&self, q: &Tensor, kv: Kv<'_>, seqs: &[AttnSeq], shape: AttnShape, mask: Mask) -> Tensor {
        self.attention_op(q, kv, seqs, shape, mask)
    }

    fn argmax(&self, logits: &Tensor) -> Vec<u32> {
        self.argmax_op(logits)
    }

    fn argmax_ids(&self, logits: &Tensor) -> Ids {
        self.argmax_ids_op(logits)
    }

    fn sample_ids(&self, logits: &Tensor, picks: &mut [Pick<'_>]) -> Ids {
        self.sample_ids_op(logits, picks)
    }

    fn embedding_ids(&self, table: &Weight, ids: &Ids) -> Result<Tensor> {
        if ids.bound() > table.rows() {
            return Err(Error::invalid(format!(
                "ids below {} index an embedding table of {} rows",
                ids.bound(),
                table.rows()
            )));
        }
        match (ids.host(), ids.device_buf()) {
            (Some(v), _) => self.embedding(table, v),
            (None, Some(b)) => Ok(self.embedding_at(table, b.ptr(), ids.len(), 1)),
            (None, None) => unreachable!("ids are on the host or the device"),
        }
    }

    fn read_ids(&self, ids: &[&Ids]) -> Vec<Vec<u32>> {
        self.read_ids_op(ids)
    }

    fn recorded(&self, key: u64, inputs: &[&Tensor], body: &mut dyn FnMut(&[&Tensor]) -> Result<()>) -> Result<()> {
        self.recorded_op(key, inputs, body)
    }

    fn synchronize(&self) {
        self.gpu.pool.synchronize().or_raise();
    }

    fn sample(&self, logits: &Tensor, picks: &mut [Pick<'_>]) -> Vec<u32> {
        self.sample_op(logits, picks)
    }
}

/// A tensor's address, or 0 for an empty one (which may have no buffer behind it).
pub(super) fn ptr_or_zero(t: &Tensor) -> u64 {
    if t.is_empty() { 0 } else { ptr(t) }
}

impl From<Cuda> for crate::backend::Compute {
    fn from(c: Cuda) -> crate::backend::Compute {
        crate::backend::Compute::new(Arc::new(c))
    }
}
