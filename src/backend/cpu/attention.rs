//! The one attention kernel on the CPU: variable-length sequences, keys from a paged cache or from
//! the call's own rows, grouped-query heads read in place, causal / sliding-window / full masks.
//! One task per (query row, kv head); each head's output is a plain softmax-weighted sum in key
//! order.

use super::Cpu;
use super::matmul::{SERIAL_BELOW, axpy, dot};
use crate::backend::scratch::{Scratch, size_class};
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
    // One task per (query row, kv head): the `group` query heads that share a kv head read each
    // key and value row once between them (a head's rows of successive positions are 4 KiB
    // apart, so they share a few L1 sets, and a second pass over them, by the next task, came
    // from L2). Each head's scores and sums are the same, in the same order, as on its own.
    let attend = |scores: &mut ScratchVec<'_>, (idx, o): (usize, &mut [f32])| {
        let (row, kvh) = (idx / kv_heads, idx % kv_heads);
        let head = kvh * group;
        let s = first_row.partition_point(|&f| f <= row) - 1;
        let seq = &seqs[s];
        let i = seq.past + row - first_row[s];
        let keys = key_range(mask, i, seq.past + seq.rows);
        let n = keys.len();
        let qh = |g: usize| &qd[(row * heads + head + g) * hd..(row * heads + head + g + 1) * hd];
        // Each head's n scores, then their weights (the same quotients the sum gives later).
        let scores = &mut scores.0;
        scores.clear();
        scores.resize(group * n, 0.0);
        // A head's keys (and values) of successive positions lie a cache row apart (all the
        // heads of a position together): too far for the hardware prefetcher, so each is
        // requested a few positions ahead.
        for (t, j) in keys.clone().enumerate() {
            if j + AHEAD < keys.end {
                prefetch(key(s, j + AHEAD, head));
            }
            let k = key(s, j, head);
            for g in 0..group {
                scores[g * n + t] = dot(qh(g), k) * scale;
            }
        }
        for g in scores.chunks_mut(n.max(1)) {
            let max = g.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for p in g.iter_mut() {
                *p = (*p - max).exp();
                sum += *p;
            }
            g.iter_mut().for_each(|p| *p /= sum);
        }
        o.iter_mut().for_each(|x| *x = 0.0);
        for (t, j) in keys.clone().enumerate() {
            if j + AHEAD < keys.end {
                prefetch(value(s, j + AHEAD, head));
            }
            let v = value(s, j, head);
            for (g, o) in o.chunks_mut(hd).enumerate() {
                axpy(scores[g * n + t], v, o);
            }
        }
    };
    let mut out = cpu.output(total, heads * hd);
    // Score buffers from the scratch workspace, for the group's heads over the longest key range
    // rounded up to its size class: a sequence growing by a token a step keeps reusing the same
    // buffers until that class is passed, as with one head's scores.
    let longest = seqs.iter().map(|s| s.past + s.rows).max().unwrap_or(0);
    let room = group * (size_class(longest * 4) / 4);
    let buffer = || ScratchVec(cpu.scratch.take_dirty(room), &cpu.scratch);
    let item = group * hd;
    if cpu.threads() == 1 || work < SERIAL_BELOW {
        let mut scores = buffer();
        out.host_mut().chunks_mut(item).enumerate().for_each(|t| attend(&mut scores, t));
    } else {
        // Blocks of (row, kv head) items, a score buffer each.
        let per = (total * kv_heads).div_ceil(4 * cpu.threads()).max(1);
        cpu.team.chunks(out.host_mut(), per * item, |c, block| {
            let mut scores = buffer();
            block.chunks_mut(item).enumerate().for_each(|(i, o)| attend(&mut scores, (c * per + i, o)));
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

#[cfg(test)]
mod tests {
    use crate::backend::cpu::test_values as values;
    use crate::backend::tensor::Tensor;
    use crate::backend::{AttnSeq, AttnShape, Backend, Cpu, Kv, Mask};

    /// The definition, in f64: each query row's softmax over its keys, per head, the kv head
    /// shared by `heads / kv_heads` query heads.
    fn naive(q: &[f32], k: &[f32], v: &[f32], rows: &[usize], shape: AttnShape, mask: Mask) -> Vec<f32> {
        let AttnShape { heads, kv_heads, head_dim: hd } = shape;
        let (qw, kw) = (heads * hd, kv_heads * hd);
        let mut out = vec![0.0f32; q.len()];
        let mut first = 0;
        for &n in rows {
            for i in 0..n {
                let keys = super::key_range(mask, i, n);
                for h in 0..heads {
                    let kvh = h / (heads / kv_heads);
                    let qh = &q[(first + i) * qw + h * hd..][..hd];
                    let key = |j: usize| &k[(first + j) * kw + kvh * hd..][..hd];
                    let s: Vec<f64> = keys
                        .clone()
                        .map(|j| {
                            qh.iter().zip(key(j)).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() / (hd as f64).sqrt()
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for d in 0..hd {
                        let o: f64 = keys
                            .clone()
                            .zip(&e)
                            .map(|(j, p)| p / sum * v[(first + j) * kw + kvh * hd + d] as f64)
                            .sum();
                        out[(first + i) * qw + h * hd + d] = o as f32;
                    }
                }
            }
            first += n;
        }
        out
    }

    /// Grouped-query heads (1, 2 and 4 query heads a kv head) under each mask, over two
    /// sequences of different lengths, on one thread and on two: the definition within f32
    /// rounding, and the same bits on both teams.
    #[test]
    fn grouped_heads_match_the_definition() {
        // Large enough for the team (past `SERIAL_BELOW`).
        let hd = 64;
        let rows = [20usize, 37];
        let total: usize = rows.iter().sum();
        for (heads, kv_heads) in [(4, 4), (4, 2), (8, 2)] {
            let shape = AttnShape { heads, kv_heads, head_dim: hd };
            let q = values(total * heads * hd, 1);
            let k = values(total * kv_heads * hd, 2);
            let v = values(total * kv_heads * hd, 3);
            let seqs: Vec<AttnSeq> =
                rows.iter().enumerate().map(|(slot, &n)| AttnSeq { slot, rows: n, past: 0 }).collect();
            for mask in [Mask::Causal, Mask::CausalWindow(3), Mask::Full] {
                let want = naive(&q, &k, &v, &rows, shape, mask);
                let mut bits = Vec::new();
                for threads in [1, 2] {
                    let cpu = Cpu::new(threads).unwrap();
                    let (qt, kt, vt) = (
                        Tensor::from_vec(q.clone(), total, heads * hd),
                        Tensor::from_vec(k.clone(), total, kv_heads * hd),
                        Tensor::from_vec(v.clone(), total, kv_heads * hd),
                    );
                    let got = cpu.attention(&qt, Kv::Rows { k: &kt, v: &vt }, &seqs, shape, mask).to_host();
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                            "{heads}/{kv_heads} heads, {mask:?}, value {i}: {g} vs {w}"
                        );
                    }
                    bits.push(got.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
                }
                assert_eq!(bits[0], bits[1], "{heads}/{kv_heads} heads, {mask:?}: one thread and two differ");
                // Each query head alone, its kv head copied out: the same bits as in its group.
                let group = heads / kv_heads;
                let spread = |m: &[f32]| -> Vec<f32> {
                    m.chunks(kv_heads * hd)
                        .flat_map(|r| (0..heads).flat_map(move |h| r[(h / group) * hd..][..hd].to_vec()))
                        .collect()
                };
                let alone = AttnShape { heads, kv_heads: heads, head_dim: hd };
                let (qt, kt, vt) = (
                    Tensor::from_vec(q.clone(), total, heads * hd),
                    Tensor::from_vec(spread(&k), total, heads * hd),
                    Tensor::from_vec(spread(&v), total, heads * hd),
                );
                let one =
                    Cpu::new(2).unwrap().attention(&qt, Kv::Rows { k: &kt, v: &vt }, &seqs, alone, mask).to_host();
                assert_eq!(
                    one.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    bits[1],
                    "{heads}/{kv_heads} heads, {mask:?}: grouped and alone differ"
                );
            }
        }
    }
}
