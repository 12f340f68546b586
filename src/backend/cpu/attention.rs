//! The one attention kernel on the CPU: variable-length sequences, keys from a paged cache or from
//! the call's own rows, grouped-query heads read in place, causal / sliding-window / full masks.
//! One task per (query row, head); each output is a plain softmax-weighted sum in key order.

use super::Cpu;
use super::matmul::{SERIAL_BELOW, axpy, dot};
use crate::backend::scratch::Scratch;
use crate::backend::tensor::Tensor;
use crate::backend::{AttnSeq, AttnShape, Kv, Mask};

/// The keys of query position `i` in a sequence whose call holds keys `0..n`.
#[inline]
fn key_range(mask: Mask, i: usize, n: usize) -> std::ops::Range<usize> {
    match mask {
        Mask::Causal => 0..i + 1,
        Mask::CausalWindow(w) => (i + 1).saturating_sub(w)..i + 1,
        Mask::Full => 0..n,
    }
}

pub(super) fn attention(cpu: &Cpu, q: &Tensor, kv: Kv<'_>, seqs: &[AttnSeq], shape: AttnShape, mask: Mask) -> Tensor {
    let AttnShape { heads, kv_heads, head_dim: hd } = shape;
    assert!(kv_heads > 0 && heads % kv_heads == 0, "attention: {heads} heads over {kv_heads} kv heads");
    assert_eq!(q.cols(), heads * hd, "attention: query rows of {} for {heads} heads of {hd}", q.cols());
    let total: usize = seqs.iter().map(|s| s.rows).sum();
    assert_eq!(total, q.rows(), "attention: the sequences do not cover the query rows");
    if let Kv::Rows { k, v } = &kv {
        assert!(k.rows() == total && v.rows() == total && k.cols() == kv_heads * hd && v.cols() == k.cols());
        assert!(seqs.iter().all(|s| s.past == 0), "attention without a cache has no past keys");
    }
    let group = heads / kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    // Each sequence's first row in the call (a query row's sequence is found by bisection).
    let mut first_row = Vec::with_capacity(seqs.len());
    let mut work = 0usize;
    let mut row = 0;
    for seq in seqs {
        first_row.push(row);
        row += seq.rows;
        work += seq.rows * (seq.past + seq.rows) * heads * hd;
    }
    let kv = &kv;
    let key = |s: usize, j: usize, head: usize| -> &[f32] {
        let kvh = (head / group) * hd;
        match kv {
            Kv::Cache { cache, layer } => &cache.key(*layer, seqs[s].slot, j)[kvh..kvh + hd],
            Kv::Rows { k, .. } => &k.row(first_row[s] + j)[kvh..kvh + hd],
        }
    };
    let value = |s: usize, j: usize, head: usize| -> &[f32] {
        let kvh = (head / group) * hd;
        match kv {
            Kv::Cache { cache, layer } => &cache.value(*layer, seqs[s].slot, j)[kvh..kvh + hd],
            Kv::Rows { v, .. } => &v.row(first_row[s] + j)[kvh..kvh + hd],
        }
    };
    let qd = q.host();
    let attend = |scores: &mut ScratchVec<'_>, (idx, o): (usize, &mut [f32])| {
        let scores = &mut scores.0;
        let (row, head) = (idx / heads, idx % heads);
        let s = first_row.partition_point(|&f| f <= row) - 1;
        let seq = &seqs[s];
        let i = seq.past + row - first_row[s];
        let keys = key_range(mask, i, seq.past + seq.rows);
        let qh = &qd[idx * hd..(idx + 1) * hd];
        scores.clear();
        // A head's keys (and values) of successive positions lie a cache row apart (all the
        // heads of a position together): too far for the hardware prefetcher, so each is
        // requested a few positions ahead.
        scores.extend(keys.clone().map(|j| {
            if j + AHEAD < keys.end {
                prefetch(key(s, j + AHEAD, head));
            }
            dot(qh, key(s, j, head)) * scale
        }));
        let max = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for p in scores.iter_mut() {
            *p = (*p - max).exp();
            sum += *p;
        }
        o.iter_mut().for_each(|x| *x = 0.0);
        for (j, p) in keys.clone().zip(scores.iter()) {
            if j + AHEAD < keys.end {
                prefetch(value(s, j + AHEAD, head));
            }
            axpy(p / sum, value(s, j, head), o);
        }
    };
    let mut out = cpu.output(total, heads * hd);
    // Score buffers from the scratch workspace, as long as the longest key range (its size class
    // lets a sequence growing by a token a step keep reusing the same buffers).
    let longest = seqs.iter().map(|s| s.past + s.rows).max().unwrap_or(0);
    let buffer = || ScratchVec(cpu.scratch.take_dirty(longest), &cpu.scratch);
    if cpu.threads() == 1 || work < SERIAL_BELOW {
        let mut scores = buffer();
        out.host_mut().chunks_mut(hd).enumerate().for_each(|t| attend(&mut scores, t));
    } else {
        // Blocks of (row, head) items, a score buffer each.
        let per = (total * heads).div_ceil(4 * cpu.threads()).max(1);
        cpu.team.chunks(out.host_mut(), per * hd, |c, block| {
            let mut scores = buffer();
            block.chunks_mut(hd).enumerate().for_each(|(i, o)| attend(&mut scores, (c * per + i, o)));
        });
    }
    out
}

/// Positions ahead whose key or value rows are requested while one is read.
const AHEAD: usize = 4;

/// Asks for `v`'s cache lines (a hint: nothing on other CPUs).
#[inline]
fn prefetch(v: &[f32]) {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
    #[cfg(target_arch = "x86_64")]
    for line in (0..v.len()).step_by(16) {
        // SAFETY: a prefetch is a hint that never faults; the address is inside `v`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(v.as_ptr().add(line) as *const i8)
        };
    }
}

/// A scratch buffer that goes back to its workspace when dropped (kept under its capacity's
/// class, whatever length it was left at).
struct ScratchVec<'a>(Vec<f32>, &'a Scratch);

impl Drop for ScratchVec<'_> {
    fn drop(&mut self) {
        self.1.give(std::mem::take(&mut self.0));
    }
}
