//! Attention on the GPU: the one kernel of kernels/attention.cu over variable-length sequences, with
//! keys from a paged device cache (read in place through a per-call table of block addresses) or
//! from the call's own rows; and the cache writes.

use std::sync::Arc;

use super::args::KernelArgs;
use super::backend::{Cuda, ptr};
use super::memory::{DeviceBuf, OrRaise};
use crate::backend::kv::{KV_BLOCK, KvCache};
use crate::backend::tensor::Tensor;
use crate::backend::{AttnSeq, AttnShape, Kv, Mask};

/// Most f32 scores one launch may hold; longer calls run in parts of query rows.
const SCORES_BUDGET: usize = 32 << 20;
/// Threads per (query row, head).
const ATTN_BLOCK: u32 = 128;
/// Key ranges longer than this, over fewer (row, head) pairs than `SPLIT_BELOW_PAIRS` (a decode
/// step over a long context: too few blocks for the GPU), are split into parts of `SPLIT_CHUNK`
/// keys, each its own block, then combined.
const SPLIT_ABOVE_KEYS: usize = 512;
const SPLIT_BELOW_PAIRS: usize = 1024;
const SPLIT_CHUNK: usize = 256;

impl Cuda {
    /// Per query row: its position in its sequence, the sequence's key count, where its keys
    /// start (rows: its first row; cache: its first entry of the block table) and its first held
    /// block; and, with a cache, the block table (device addresses). The same for every layer of a
    /// step, so both go through the table cache.
    fn layout(&self, cache: Option<&KvCache>, seqs: &[AttnSeq]) -> (Arc<DeviceBuf>, Arc<DeviceBuf>) {
        let rows: usize = seqs.iter().map(|s| s.rows).sum();
        let mut meta: Vec<i32> = Vec::with_capacity(4 * rows);
        let mut tables: Vec<u64> = Vec::new();
        let mut row0 = 0;
        for s in seqs {
            let (base, first) = match cache {
                None => (row0, 0),
                Some(cache) => {
                    let (blocks, first) = cache.slot_blocks(s.slot);
                    let base = tables.len();
                    tables.extend(blocks.iter().map(|&b| cache.device_block(b as usize)));
                    (base, first)
                }
            };
            for r in 0..s.rows {
                meta.extend([(s.past + r) as i32, (s.past + s.rows) as i32, base as i32, first as i32]);
            }
            row0 += s.rows;
        }
        (self.table_cached("attention.meta", &meta), self.table_cached("attention.blocks", &tables))
    }

    pub(super) fn kv_write_op(&self, cache: &mut KvCache, layer: usize, seqs: &[AttnSeq], k: &Tensor, v: &Tensor) {
        assert!(k.rows() == v.rows() && k.cols() == v.cols(), "kv_write: shapes differ");
        assert_eq!(k.cols(), cache.width(), "kv_write: rows of {} into a cache of {}", k.cols(), cache.width());
        let rows: usize = seqs.iter().map(|s| s.rows).sum();
        assert_eq!(rows, k.rows(), "kv_write: the sequences do not cover the rows");
        for s in seqs {
            // Every written position must be inside the slot's blocks (reserved before the call).
            assert!(
                s.rows == 0 || (cache.holds(s.slot, s.past) && cache.holds(s.slot, s.past + s.rows - 1)),
                "kv_write: slot {} is not reserved",
                s.slot
            );
        }
        if rows == 0 {
            return;
        }
        let (meta, blocks) = self.layout(Some(cache), seqs);
        let w = cache.width();
        let mut a = KernelArgs::new();
        a.ptr(ptr(k)).ptr(ptr(v)).ptr(blocks.ptr()).ptr(meta.ptr());
        a.i64((layer * 2 * KV_BLOCK * w) as i64).i64(((layer * 2 + 1) * KV_BLOCK * w) as i64);
        a.i32(w as i32).i32(KV_BLOCK as i32);
        self.map("kv_write_f32", k.len(), &mut a);
    }

    pub(super) fn attention_op(
        &self,
        q: &Tensor,
        kv: Kv<'_>,
        seqs: &[AttnSeq],
        shape: AttnShape,
        mask: Mask,
    ) -> Tensor {
        let AttnShape { heads, kv_heads, head_dim: hd } = shape;
        assert!(kv_heads > 0 && heads % kv_heads == 0, "attention: {heads} heads over {kv_heads} kv heads");
        assert_eq!(q.cols(), heads * hd, "attention: query rows of {} for {heads} heads of {hd}", q.cols());
        let total: usize = seqs.iter().map(|s| s.rows).sum();
        assert_eq!(total, q.rows(), "attention: the sequences do not cover the query rows");

        // 1. Where each query row's keys are.
        let (k_ptr, v_ptr, width, layer_k, layer_v, cache) = match &kv {
            Kv::Rows { k, v } => {
                assert!(k.rows() == total && v.rows() == total && k.cols() == kv_heads * hd && v.cols() == k.cols());
                assert!(seqs.iter().all(|s| s.past == 0), "attention without a cache has no past keys");
                (ptr(k), ptr(v), k.cols(), 0, 0, None)
            }
            Kv::Cache { cache, layer } => {
                assert_eq!(cache.width(), kv_heads * hd, "attention: a cache of width {}", cache.width());
                for s in seqs.iter().filter(|s| s.rows > 0) {
                    // The kernel reads the block table without bounds: every key any row of the
                    // sequence sees must be in a block the slot holds (not given back by a window).
                    let first_key = match mask {
                        Mask::CausalWindow(w) => (s.past + 1).saturating_sub(w),
                        Mask::Causal | Mask::Full => 0,
                    };
                    assert!(
                        cache.holds(s.slot, first_key) && cache.holds(s.slot, s.past + s.rows - 1),
                        "attention: slot {} does not hold keys {first_key}..{}",
                        s.slot,
                        s.past + s.rows
                    );
                }
                let w = cache.width();
                (0, 0, w, (layer * 2 * KV_BLOCK * w) as i64, ((layer * 2 + 1) * KV_BLOCK * w) as i64, Some(*cache))
            }
        };
        let out = self.output(total, heads * hd);
        if total == 0 {
            return out;
        }
        let (mask_kind, window) = match mask {
            Mask::Causal => (0, 0),
            // (Wider than i32 holds sees as much as i32::MAX: positions are i32 on the device.)
            Mask::CausalWindow(w) => (1, w.min(i32::MAX as usize) as i32),
            Mask::Full => (2, 0),
        };
        // The scores' row stride: the longest key range, rounded up so that a sequence growing by a
        // token a step keeps reusing the same buffer.
        let max_keys = seqs.iter().map(|s| s.past + s.rows).max().unwrap_or(0).max(1).next_multiple_of(1024);
        let (meta_d, tables_d) = self.layout(cache, seqs);
        let tables_ptr = if cache.is_some() { tables_d.ptr() } else { 0 };

        // 2. Long key ranges with few (row, head) pairs to spread over the GPU: split over the keys.
        let longest = seqs.iter().map(|s| s.past + s.rows).max().unwrap_or(0);
        if longest > SPLIT_ABOVE_KEYS && total * heads < SPLIT_BELOW_PAIRS {
            let splits = longest.div_ceil(SPLIT_CHUNK);
            let parts = self.gpu.pool.take(total * heads * splits * (hd + 2) * 4).or_raise();
            let scale = 1.0 / (hd as f32).sqrt();
            let mut a = KernelArgs::new();
            a.ptr(ptr(q)).ptr(parts.ptr()).ptr(k_ptr).ptr(v_ptr).ptr(tables_ptr).ptr(meta_d.ptr());
            a.i32(heads as i32).i32(kv_heads as i32).i32(hd as i32).i32(mask_kind).i32(window);
            a.i64(layer_k).i64(layer_v).i32(width as i32).i32(KV_BLOCK as i32);
            a.i32(splits as i32).i32(SPLIT_CHUNK as i32).f32(scale);
            let smem = ((hd + SPLIT_CHUNK) * 4) as u32;
            self.gpu.launch("attention_split_f32", ((total * heads * splits) as u32, 1, 1), ATTN_BLOCK, smem, &a);
            let mut c = KernelArgs::new();
            c.ptr(parts.ptr()).ptr(ptr(&out)).i32(hd as i32).i32(splits as i32);
            self.gpu.launch("attention_combine_f32", ((total * heads) as u32, 1, 1), Cuda::row_block(hd), 0, &c);
            return out;
        }

        // 3. One block per (row, head), in parts of rows whose scores fit the budget.
        let rows_per_launch = (SCORES_BUDGET / (heads * max_keys)).clamp(1, total);
        let scores = self.gpu.pool.take(rows_per_launch * heads * max_keys * 4).or_raise();
        let scale = 1.0 / (hd as f32).sqrt();
        for first in (0..total).step_by(rows_per_launch) {
            let n = rows_per_launch.min(total - first);
            let mut a = KernelArgs::new();
            a.ptr(ptr(q) + (first * heads * hd * 4) as u64).ptr(ptr(&out) + (first * heads * hd * 4) as u64);
            a.ptr(k_ptr).ptr(v_ptr).ptr(tables_ptr).ptr(meta_d.ptr() + (first * 16) as u64).ptr(scores.ptr());
            a.i32(heads as i32).i32(kv_heads as i32).i32(hd as i32).i32(mask_kind).i32(window);
            a.i64(layer_k).i64(layer_v).i32(width as i32).i32(KV_BLOCK as i32).i64(max_keys as i64).f32(scale);
            self.gpu.launch("attention_f32", ((n * heads) as u32, 1, 1), ATTN_BLOCK, (hd * 4) as u32, &a);
        }
        out
    }
}
