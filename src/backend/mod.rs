//! The compute layer. Models hold a `Compute` handle (one per component, so components may sit on
//! different devices) and call its named ops; tensors and weights own their storage privately and
//! cross to the host only through `upload` and `to_host`. Every op has one CPU implementation, the
//! numeric reference (`cpu/`); the CUDA backend implements the same `Backend` trait.

pub mod conv;
pub mod cpu;
pub mod cuda;
pub mod device;
pub mod kv;
pub mod quant;
pub mod sampling;
pub mod scratch;
pub mod tensor;

use std::sync::Arc;

pub use conv::{Conv1dWeight, Conv2dWeight, ConvTranspose1dWeight, DepthwiseConv1dWeight};
pub use cpu::Cpu;
pub use cuda::Cuda;
pub use device::{Device, resolve};
pub use kv::{KV_BLOCK, KvCache};
pub use quant::{QuantData, QuantFormat, Quantization};
pub use sampling::{Pick, Rng, SamplingParams};
pub use tensor::{DType, HostBuf, Ids, SharedBytes, Tensor, Weight, WeightData};

use crate::error::Result;

/// Attention heads: query heads, key/value heads (grouped-query when fewer) and their width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// Which keys a query row sees, by absolute position (query `i` of a sequence is at `past + i`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mask {
    /// Keys `0..=i` (decoders).
    Causal,
    /// Keys `i − window < j ≤ i` (the codec's sliding window).
    CausalWindow(usize),
    /// Every key of the sequence (bidirectional: the ASR encoder's windows).
    Full,
}

/// One sequence of an attention call: its next `rows` query rows, at positions `past..`.
/// With a cache, `slot` names its keys (`past` of them already held); without, its keys are its
/// own rows of `k`/`v` and `past` is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnSeq {
    pub slot: usize,
    pub rows: usize,
    pub past: usize,
}

/// Where the keys and values of an attention call are.
pub enum Kv<'a> {
    /// A layer of a backend-owned cache (written by `kv_write` before the call).
    Cache { cache: &'a KvCache, layer: usize },
    /// The call's own key/value rows, sequence by sequence (no cache).
    Rows { k: &'a Tensor, v: &'a Tensor },
}

/// The ops of the compute layer. Shapes are checked at the boundary (a mismatch is a programming
/// error and panics with the shapes); tensors are `[rows, cols]` f32.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The device the ops run on.
    fn device(&self) -> Device;

    /// Makes a weight resident where the ops read it (a GPU copies it to device memory once; the
    /// CPU reads weights in place). Ops do it on first use anyway; loading calls it so that the
    /// copy is part of the load and running out of memory is a load error, not a failed step.
    fn prepare(&self, w: &Weight) -> Result<()> {
        let _ = w;
        Ok(())
    }

    /// Whether this backend multiplies bf16 inputs by bf16 weights natively, at a higher rate
    /// than f32 (the CPU with AVX-512 BF16). Convolution weights made with `to_bf16` run in any
    /// case; only here do they run faster than f32.
    fn fast_bf16_products(&self) -> bool {
        false
    }

    // --- data movement -----------------------------------------------------------------------
    /// Host data `[rows, cols]` → a tensor on this backend's device.
    fn upload(&self, data: &[f32], rows: usize, cols: usize) -> Tensor;
    /// A zero tensor on this backend's device.
    fn zeros(&self, rows: usize, cols: usize) -> Tensor;
    /// Rows of several tensors of equal width, one after another.
    fn concat_rows(&self, parts: &[&Tensor]) -> Tensor;
    /// `y[i] = x[rows[i]]`; `None` gives a zero row.
    fn gather_rows(&self, x: &Tensor, rows: &[Option<usize>]) -> Tensor;
    /// Rows `start..start + n` of `x`.
    fn slice_rows(&self, x: &Tensor, start: usize, n: usize) -> Tensor;
    /// Columns `start..start + n` of every row: `[T, C]` → `[T, n]`.
    fn slice_cols(&self, x: &Tensor, start: usize, n: usize) -> Tensor;
    /// Tensors of equal rows, their columns side by side: `[T, c₀], [T, c₁], …` → `[T, c₀ + c₁ + …]`
    /// (no parts: `[0, 0]`).
    fn concat_cols(&self, parts: &[&Tensor]) -> Tensor;
    /// `dst[at[i]] = src[i]`.
    fn set_rows(&self, dst: &mut Tensor, at: &[usize], src: &Tensor);
    /// `dst[at[i]] += src[i]`.
    fn add_rows(&self, dst: &mut Tensor, at: &[usize], src: &Tensor);
    /// A 4-D permutation: `x` holds `[d0, d1, d2, d3]` row-major; the result holds the dims in
    /// `order`, with the last one as its columns.
    fn permute(&self, x: &Tensor, dims: [usize; 4], order: [usize; 4]) -> Tensor;

    // --- products ----------------------------------------------------------------------------
    /// `y = x · Wᵀ (+ b)`: x `[n, in]`, W `[out, in]` in its stored precision → `[n, out]`.
    fn linear(&self, x: &Tensor, w: &Weight, bias: Option<&Weight>) -> Tensor;
    /// Several linear layers over the same input in one pass (fused q/k/v, gate/up).
    fn linear_many(&self, x: &Tensor, layers: &[(&Weight, Option<&Weight>)]) -> Vec<Tensor>;
    /// `x += a · Wᵀ`: a projection with the residual add fused (a GPU writes the sum directly).
    fn linear_add(&self, x: &mut Tensor, a: &Tensor, w: &Weight) {
        let t = self.linear(a, w, None);
        self.add(x, &t);
    }
    /// Rows `ids` of a table `[vocab, dim]`; an id outside the table is an error.
    fn embedding(&self, table: &Weight, ids: &[u32]) -> Result<Tensor>;
    /// Row `i` is the sum of table rows `ids[i·per_row .. (i+1)·per_row]`, added in order (the
    /// RVQ codebook lookup-and-sum).
    fn embedding_sum(&self, table: &Weight, ids: &[u32], per_row: usize) -> Result<Tensor>;

    // --- normalisation -----------------------------------------------------------------------
    /// RMSNorm of each row: `x · rsqrt(mean(x²) + eps) · w`.
    fn rms_norm(&self, x: &Tensor, w: &Weight, eps: f32) -> Tensor;
    /// RMSNorm of each `w.len()`-wide head of each row, in place (Qwen3's q/k norms).
    fn rms_norm_heads(&self, x: &mut Tensor, w: &Weight, eps: f32);
    /// LayerNorm of each row: `(x − mean) / sqrt(var + eps) · w + b`.
    fn layer_norm(&self, x: &Tensor, w: &Weight, b: &Weight, eps: f32) -> Tensor;

    // --- element-wise ------------------------------------------------------------------------
    /// NeoX ("rotate half") RoPE of every `head_dim`-wide head of row `r` of each tensor, at
    /// `positions[r]`, with `inv_freq` (`head_dim / 2` values). Angles are computed once per row.
    fn rope(&self, xs: &mut [&mut Tensor], head_dim: usize, positions: &[usize], inv_freq: &[f32]);
    /// Qwen3's attention prologue: the per-head RMSNorm of q and of k (each with its own
    /// `head_dim`-wide weight), then RoPE of both — one pass on a GPU.
    #[allow(clippy::too_many_arguments)]
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
        self.rms_norm_heads(q, norms.0, eps);
        self.rms_norm_heads(k, norms.1, eps);
        self.rope(&mut [q, k], head_dim, positions, inv_freq);
    }
    fn silu(&self, x: &mut Tensor);
    /// `gate = silu(gate) · up`.
    fn silu_mul(&self, gate: &mut Tensor, up: &Tensor);
    /// GELU, exact (erf) form.
    fn gelu_erf(&self, x: &mut Tensor);
    /// SnakeBeta per channel: `x + sin²(x·α) · inv_beta`.
    fn snake_beta(&self, x: &mut Tensor, alpha: &Weight, inv_beta: &Weight);
    /// `x += y`.
    fn add(&self, x: &mut Tensor, y: &Tensor);
    /// `x += scale ⊙ y`, per channel (layer scales).
    fn add_scaled(&self, x: &mut Tensor, y: &Tensor, scale: &Weight);
    /// `x += b` on every row.
    fn add_bias(&self, x: &mut Tensor, b: &Weight);
    fn clamp(&self, x: &mut Tensor, lo: f32, hi: f32);
    /// `x = 1 / (1 + e^−x)`, element-wise, any shape.
    fn sigmoid(&self, x: &mut Tensor);
    /// `x = tanh(x)`, element-wise, any shape.
    fn tanh(&self, x: &mut Tensor);
    /// ELU with α = 1: `x` where `x > 0`, else `eˣ − 1` (as `expm1`), element-wise, any shape.
    fn elu(&self, x: &mut Tensor);
    /// `x[r, c] *= v[0, c]`: `x` `[T, C]` gated per channel by `v` `[1, C]` (squeeze-excitation).
    fn mul_row(&self, x: &mut Tensor, v: &Tensor);

    // --- reductions over rows (time), per column (channel) -----------------------------------
    /// The mean of the rows: `[T, C]` → `[1, C]`, `T ≥ 1`. Each column is summed in f64 (the CPU in
    /// row order; a GPU in 8 interleaved strands of rows, each in order, then the strands in order),
    /// divided by `T` in f64 and rounded once to f32.
    fn mean_rows(&self, x: &Tensor) -> Tensor;
    /// Attentive statistics pooling (ECAPA-TDNN, as speechbrain and Qwen3-TTS compute it): `x`
    /// `[T, C]`, `T ≥ 1`, and optional `logits` `[T, C]` → `[1, 2C]` = `[mean | std]` per column.
    /// The weights of a column are `w_t = e^(l_t − max_t l_t)` (its softmax over the rows, before
    /// the division), or 1 without logits (uniform); with `W = Σ_t w_t`,
    /// `mean = Σ_t w_t·x_t / W` and `std = sqrt(max(Σ_t w_t·(x_t − mean)² / W, WEIGHTED_STATS_EPS))`
    /// — the variance around the weighted mean computed first. The weights are f32 (`exp` of an f32
    /// difference), the sums, the mean and the variance f64, rounded once to f32 at the end.
    fn weighted_stats(&self, x: &Tensor, logits: Option<&Tensor>) -> Tensor;

    // --- convolutions over rows (time); the caller supplies the left context -----------------
    /// Valid 1-D convolution with dilation d and stride s (`Conv1dWeight`; the caller supplies all
    /// padding; weights made with `to_bf16` multiply the inputs rounded to bf16, summed in f32): `x` `[L, in]`, `L ≥ (k−1)·d` → `[(L − (k−1)·d − 1) / s + 1, out]` (no rows when
    /// `L = (k−1)·d`); output row t reads input rows `t·s + tap·d`. Stride 1: `[T + (k−1)·d, in]` →
    /// `[T, out]`.
    fn conv1d(&self, x: &Tensor, w: &Conv1dWeight) -> Tensor;
    /// Transposed 1-D convolution with stride r, no bias: `[T, in]` → `[r·T + k − r, out]`
    /// (the last `k − r` rows spill into the next call's first rows).
    fn conv_transpose1d(&self, x: &Tensor, w: &ConvTranspose1dWeight) -> Tensor;
    /// Valid depthwise 1-D convolution: `[T + k − 1, C]` → `[T, C]`.
    fn depthwise_conv1d(&self, x: &Tensor, w: &DepthwiseConv1dWeight) -> Tensor;
    /// 3×3, stride 2, padding 1 convolution of `images` images of `f × t` pixels (rows,
    /// frequency-major, channels as columns) → `images` × `⌈f/2⌉ × ⌈t/2⌉` pixels.
    fn conv2d_s2(&self, x: &Tensor, w: &Conv2dWeight, images: usize, f: usize, t: usize) -> Tensor;

    // --- attention ---------------------------------------------------------------------------
    /// A paged KV cache in this backend's memory (`KvCache::new`'s arguments).
    fn kv_cache(&self, layers: usize, width: usize, slots: usize, tokens_per_slot: usize) -> Result<KvCache>;
    /// Writes each sequence's new key/value rows into its cache slot at positions `past..`.
    fn kv_write(&self, cache: &mut KvCache, layer: usize, seqs: &[AttnSeq], k: &Tensor, v: &Tensor);
    /// Scaled dot-product attention for variable-length sequences, grouped-query heads read in
    /// place; `q` holds the sequences' rows in order. Returns `[q.rows, heads · head_dim]`.
    fn attention(&self, q: &Tensor, kv: Kv<'_>, seqs: &[AttnSeq], shape: AttnShape, mask: Mask) -> Tensor;

    // --- selection ---------------------------------------------------------------------------
    /// The first largest value of each row (as `torch.argmax`).
    fn argmax(&self, logits: &Tensor) -> Vec<u32>;
    /// The official sampling chain per row (penalty, suppression, temperature, top-k/top-p, a
    /// seeded draw); only the chosen ids leave the device.
    fn sample(&self, logits: &Tensor, picks: &mut [Pick<'_>]) -> Vec<u32>;
    /// `argmax`, with the ids left where they were chosen (as `sample_ids`).
    fn argmax_ids(&self, logits: &Tensor) -> Ids {
        Ids::from_host(self.argmax(logits), logits.cols())
    }
    /// `sample`, with the ids left where they were chosen: no wait for the device, so a chain of
    /// passes (the code predictor's) runs without a round trip per pass.
    fn sample_ids(&self, logits: &Tensor, picks: &mut [Pick<'_>]) -> Ids {
        Ids::from_host(self.sample(logits, picks), logits.cols())
    }
    /// `embedding` of ids chosen on this backend (the table must have `ids.bound()` rows or more).
    fn embedding_ids(&self, table: &Weight, ids: &Ids) -> Result<Tensor> {
        match ids.host() {
            Some(v) => self.embedding(table, v),
            None => unreachable!("device ids on a backend without a device"),
        }
    }
    /// Runs `body` over `inputs` as a recorded region under `key`. A GPU backend captures the
    /// region's launches the second time a key comes and from then on replays them as one CUDA
    /// graph (the body still runs for its host-side work; its ops only check that they are the
    /// recorded ones, and anything else makes the region run eagerly from there, so results never
    /// differ). The key must name what the region's shapes depend on (the batch's slots); the body
    /// must read only `inputs` (staged at fixed addresses), weights and caches, and must not wait
    /// for the device; what it returns is valid until the next `recorded` call. The CPU runs it.
    fn recorded(&self, key: u64, inputs: &[&Tensor], body: &mut dyn FnMut(&[&Tensor]) -> Result<()>) -> Result<()> {
        let _ = key;
        body(inputs)
    }
    /// Waits until the device has run every op issued so far (timing; the CPU's ops are done).
    fn synchronize(&self) {}
    /// Several id vectors, read back with one wait.
    fn read_ids(&self, ids: &[&Ids]) -> Vec<Vec<u32>> {
        ids.iter().map(|i| i.host().expect("host ids on a backend without a device").to_vec()).collect()
    }
}

/// The floor of `weighted_stats`' variance before its square root (speechbrain's `clamp(eps)`).
pub const WEIGHTED_STATS_EPS: f32 = 1e-12;

/// Every backend's shape check of a two-tensor op (a mismatch is a programming error).
pub(crate) fn same_shape(op: &str, a: &Tensor, b: &Tensor) {
    assert!(
        a.rows() == b.rows() && a.cols() == b.cols(),
        "{op}: shapes [{}, {}] and [{}, {}] differ",
        a.rows(),
        a.cols(),
        b.rows(),
        b.cols()
    );
}

/// Every backend's check of `mul_row`'s gate `[1, C]` against rows of C.
pub(crate) fn gate_row(x: &Tensor, v: &Tensor) {
    assert!(
        v.rows() == 1 && v.cols() == x.cols(),
        "mul_row: rows of {} gated by [{}, {}]",
        x.cols(),
        v.rows(),
        v.cols()
    );
}

/// Every backend's check of `weighted_stats`' inputs (rows to pool, logits of the same shape).
pub(crate) fn stats_inputs(x: &Tensor, logits: Option<&Tensor>) {
    assert!(x.rows() > 0, "weighted_stats: no rows to pool");
    if let Some(l) = logits {
        same_shape("weighted_stats", x, l);
    }
}

/// Every backend's check of a per-channel vector against rows.
pub(crate) fn width(op: &str, x: &Tensor, w: &Weight) {
    assert_eq!(x.cols(), w.len(), "{op}: rows of {} against a vector of {}", x.cols(), w.len());
}

/// A handle to a backend, cheap to clone; what every model component holds.
#[derive(Clone, Debug)]
pub struct Compute(Arc<dyn Backend>);

impl Compute {
    pub fn new(backend: Arc<dyn Backend>) -> Compute {
        Compute(backend)
    }

    /// The backend for a device: `Cuda(n)` fails with `NoDevice` and the reason when that GPU
    /// cannot run voxkit; `Auto` takes GPU 0 when it can and the CPU otherwise.
    pub fn for_device(device: Device, cpu_threads: usize) -> Result<Compute> {
        match resolve(device)? {
            Device::Cpu => Compute::cpu(cpu_threads),
            Device::Cuda(n) => Ok(Compute(Arc::new(cuda::Cuda::new(n)?))),
            Device::Auto => unreachable!("resolve never returns Auto"),
        }
    }

    /// `for_device` for a model loaded under quantization recipe `q`: on the CPU, every recipe
    /// but `None` also lets many-row products run in bf16 where AMX does them
    /// (`Cpu::with_bf16_products`); a GPU takes no recipe (the engine refuses one).
    pub fn for_recipe(device: Device, cpu_threads: usize, q: Quantization) -> Result<Compute> {
        match resolve(device)? {
            Device::Cpu => Ok(Compute(Arc::new(Cpu::new(cpu_threads)?.with_bf16_products(q != Quantization::None)))),
            _ => Compute::for_device(device, cpu_threads),
        }
    }

    /// The CPU backend on its own pool of `threads` threads.
    pub fn cpu(threads: usize) -> Result<Compute> {
        Ok(Compute(Arc::new(Cpu::new(threads)?)))
    }
}

impl std::ops::Deref for Compute {
    type Target = dyn Backend;
    fn deref(&self) -> &(dyn Backend + 'static) {
        &*self.0
    }
}

impl From<Arc<Cpu>> for Compute {
    fn from(cpu: Arc<Cpu>) -> Compute {
        Compute(cpu)
    }
}

impl From<Cpu> for Compute {
    fn from(cpu: Cpu) -> Compute {
        Compute(Arc::new(cpu))
    }
}
