//! Token selection, as the official generation does it (transformers 4.57 logits processors, in
//! this order): repetition penalty over the generated tokens, min-new-tokens (EOS barred), token
//! suppression, then temperature, top-k and top-p, and a draw — or the argmax when greedy. The sums
//! behind softmax, top-p and the draw run in a blocked order (`SUM_CHUNKS`) that a GPU reproduces
//! exactly, so a seed gives the same tokens on every backend.

/// One row's share of a `Backend::sample` call: its chain's knobs, the ids generated so far
/// (repetition penalty), the id ranges barred at this step (min-new-tokens, suppression) and its
/// generator.
pub struct Pick<'a> {
    pub params: &'a SamplingParams,
    pub seen: &'a [u32],
    pub suppress: &'a [std::ops::Range<u32>],
    pub rng: &'a mut Rng,
}

/// The whole chain on one row of logits (the reference for every backend).
pub fn sample_row(logits: &mut [f32], pick: &mut Pick<'_>) -> u32 {
    apply_repetition_penalty(logits, pick.seen, pick.params.repetition_penalty);
    for r in pick.suppress {
        let end = (r.end as usize).min(logits.len());
        for v in logits[(r.start as usize).min(end)..end].iter_mut() {
            *v = f32::NEG_INFINITY;
        }
    }
    select(logits, pick.params, pick.rng)
}

/// The knobs of one sampling chain.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    pub do_sample: bool,
    pub temperature: f32,
    /// 0 = no top-k filtering.
    pub top_k: u32,
    pub top_p: f32,
    /// 1.0 = none.
    pub repetition_penalty: f32,
}

/// A small, seedable generator (SplitMix64): the same seed gives the same draws on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Per-thread buffers of the chain, kept between calls so that a step allocates nothing once
/// the first one has run.
#[derive(Default)]
struct Work {
    seen: Vec<u64>,
    sorted: Vec<f32>,
    order: Vec<usize>,
    dropped: Vec<usize>,
    probs: Vec<f32>,
}

thread_local! {
    static WORK: std::cell::RefCell<Work> = std::cell::RefCell::new(Work::default());
}

/// HF `RepetitionPenaltyLogitsProcessor`: every id seen once is penalised once.
pub fn apply_repetition_penalty(logits: &mut [f32], seen: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    WORK.with_borrow_mut(|w| {
        // One bit per id of the vocabulary: penalised already.
        w.seen.clear();
        w.seen.resize(logits.len().div_ceil(64), 0);
        for &id in seen {
            let i = id as usize;
            if i < logits.len() && w.seen[i / 64] & (1 << (i % 64)) == 0 {
                w.seen[i / 64] |= 1 << (i % 64);
                let s = &mut logits[i];
                *s = if *s < 0.0 { *s * penalty } else { *s / penalty };
            }
        }
    })
}

/// The index of the largest value (the first one on ties, as `torch.argmax`).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Temperature, top-k, top-p, softmax and a draw (or the argmax when not sampling).
pub fn select(logits: &mut [f32], p: &SamplingParams, rng: &mut Rng) -> u32 {
    if !p.do_sample {
        return argmax(logits);
    }
    WORK.with_borrow_mut(|w| select_with(logits, p, rng, w))
}

fn select_with(logits: &mut [f32], p: &SamplingParams, rng: &mut Rng, w: &mut Work) -> u32 {
    if p.temperature != 1.0 {
        for v in logits.iter_mut() {
            *v /= p.temperature;
        }
    }
    let n = logits.len();
    if p.top_k > 0 && (p.top_k as usize) < n {
        // Keep every logit ≥ the k-th largest (ties kept, as HF).
        w.sorted.clear();
        w.sorted.extend_from_slice(logits);
        let k = p.top_k as usize;
        w.sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        let kth = w.sorted[k - 1];
        for v in logits.iter_mut() {
            if *v < kth {
                *v = f32::NEG_INFINITY;
            }
        }
    }
    if p.top_p < 1.0 {
        // HF TopP: drop the lowest-probability tokens whose cumulative mass is ≤ 1 − top_p,
        // always keeping the most likely one. Ascending by value, ties in id order.
        w.order.clear();
        w.order.extend(0..n);
        w.order.sort_unstable_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(a.cmp(&b)));
        softmax_into(logits, &mut w.probs);
        let drop = 1.0 - p.top_p;
        let probs = &w.probs;
        let order = &w.order;
        let dropped = &mut w.dropped;
        dropped.clear();
        blocked_scan(
            n,
            |rank| probs[order[rank]],
            |rank, cum| {
                if cum <= drop && rank + 1 < n {
                    dropped.push(order[rank]);
                }
            },
        );
        for &i in dropped.iter() {
            logits[i] = f32::NEG_INFINITY;
        }
    }
    softmax_into(logits, &mut w.probs);
    let probs = &w.probs;
    let r = rng.next_f64() as f32;
    // The first id whose cumulative probability passes r; past the end, the last id with any
    // probability (or the argmax when none has).
    let mut chosen = None;
    let mut last = None;
    blocked_scan(
        n,
        |i| probs[i],
        |i, cum| {
            if probs[i] > 0.0 {
                last = Some(i);
                if chosen.is_none() && r < cum {
                    chosen = Some(i);
                }
            }
        },
    );
    chosen.or(last).map_or_else(|| argmax(probs), |i| i as u32)
}

/// Chunks of a blocked sum: the reference order of every sum that decides a token, chosen so that a
/// GPU block of `SUM_CHUNKS` threads reproduces it exactly (kernels/sample.cu) — each chunk summed
/// in index order from 0, the chunks' sums added in order.
pub(crate) const SUM_CHUNKS: usize = 256;

/// Runs `visit(i, cum_i)` for i in 0..n in order, where cum_i is the blocked inclusive prefix sum of
/// `value` (chunk j's values start from the sum of chunks before j). Returns the total.
fn blocked_scan(n: usize, value: impl Fn(usize) -> f32, mut visit: impl FnMut(usize, f32)) -> f32 {
    let size = n.div_ceil(SUM_CHUNKS).max(1);
    let mut prefix = 0.0f32;
    for start in (0..n).step_by(size) {
        let end = (start + size).min(n);
        let mut partial = 0.0f32;
        for i in start..end {
            partial += value(i);
        }
        let mut cum = prefix;
        for i in start..end {
            cum += value(i);
            visit(i, cum);
        }
        prefix += partial;
    }
    prefix
}

/// Softmax with the blocked sum (`blocked_scan`'s order).
fn softmax_into(logits: &[f32], e: &mut Vec<f32>) {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    e.clear();
    e.extend(logits.iter().map(|&v| (v - max).exp()));
    let sum = blocked_scan(e.len(), |i| e[i], |_, _| {});
    for v in e.iter_mut() {
        *v /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalty_divides_positive_and_multiplies_negative_once() {
        let mut l = vec![2.0, -2.0, 1.0];
        apply_repetition_penalty(&mut l, &[0, 1, 0], 2.0);
        assert_eq!(l, vec![1.0, -4.0, 1.0]);
    }

    #[test]
    fn greedy_is_first_argmax() {
        let mut l = vec![1.0, 3.0, 3.0];
        let p = SamplingParams { do_sample: false, temperature: 0.9, top_k: 50, top_p: 1.0, repetition_penalty: 1.0 };
        assert_eq!(select(&mut l, &p, &mut Rng::new(1)), 1);
    }

    #[test]
    fn top_k_one_is_argmax_and_seeds_repeat() {
        let p = SamplingParams { do_sample: true, temperature: 0.7, top_k: 1, top_p: 1.0, repetition_penalty: 1.0 };
        let l = vec![0.1, 0.5, 2.0, -1.0];
        assert_eq!(select(&mut l.clone(), &p, &mut Rng::new(7)), 2);
        let p = SamplingParams { top_k: 0, ..p };
        let a: Vec<u32> = (0..20).map(|i| select(&mut l.clone(), &p, &mut Rng::new(i))).collect();
        let b: Vec<u32> = (0..20).map(|i| select(&mut l.clone(), &p, &mut Rng::new(i))).collect();
        assert_eq!(a, b);
        assert!(a.iter().any(|&x| x != a[0]), "sampling draws different tokens for different seeds");
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        let p = SamplingParams { do_sample: true, temperature: 1.0, top_k: 0, top_p: 0.5, repetition_penalty: 1.0 };
        // Probabilities ≈ [0.64, 0.24, 0.09, 0.03]: a 0.5 nucleus is the first token alone.
        let l = vec![3.0, 2.0, 1.0, 0.0];
        for s in 0..50 {
            assert_eq!(select(&mut l.clone(), &p, &mut Rng::new(s)), 0);
        }
    }
}
