//! Band-limited sample-rate conversion: a polyphase windowed-sinc resampler (Kaiser window).
//!
//! The rates reduce by their gcd to `up` = L and `down` = M (`to / from` = L / M). Output sample k
//! sits at input time `t_k = k·M/L` (in input samples) and is
//!
//! ```text
//!     y[k] = Σ_n x[n] · h(t_k − n)
//! ```
//!
//! where `h` is a sinc low-pass at the lower of the two Nyquist rates, windowed by a Kaiser window of
//! half-width H input samples. `h` is symmetric, so the filter has no delay to compensate: output k
//! *is* the band-limited input at time `k·M/L`, and a tone keeps its phase. Every output needs the
//! 2H inputs `x[floor(t_k) − H + 1 ..= floor(t_k) + H]`; inputs before 0 and after the end are zero.
//!
//! Filter design (in f64):
//! - passband to 0.90 × the lower Nyquist, stopband from 1.0 × the lower Nyquist (so nothing that
//!   would alias or image into the output band passes), cutoff in the middle (0.95);
//! - Kaiser's formulas for a 150 dB stopband: β = 0.1102·(150 − 8.7) ≈ 15.57 and a span of
//!   (150 − 7.95) / (2.285 · 2π · transition) input samples, rounded up to a multiple of 8 taps:
//!   200 taps when upsampling, ≈ 200 · from/to when downsampling (600 for 48 → 16 kHz). The
//!   prototype's stopband peaks at −149.4 dB just past the edge;
//! - every phase row is scaled to sum to exactly 1, so DC passes at gain 1 in every phase.
//!
//! Samples come in and go out as f32, but the history, the coefficients and the sums are f64: f32
//! sums of 600 products leave rounding errors near −140 dBc that do not average out when the
//! signal is periodic (a tone at the output Nyquist, 48 → 16 kHz, came out at −141.6 dB that way);
//! in f64 the measured images and aliases sit at −150 dBc and below.
//!
//! The phase of output k is `frac(k·M/L)`, a multiple of 1/L, tracked as an exact integer numerator
//! (no drift, ever). Two ways to get its 2H coefficients:
//! - exact (the usual case, `L · 2H ≤ 2^19` coefficients, at most 4 MiB): one table row per phase,
//!   and each output is one dot product of 2H contiguous f64s (AVX2 + FMA when the CPU has them).
//!   Outputs are computed phase-major in blocks so that a row is reused from L1 across the block
//!   (24 → 44.1 kHz has 147 rows of 200 taps: 235 KiB, more than L1);
//! - interpolated (ratios such as 44101 → 16000, whose 16000 rows of 552 taps would take 70 MB):
//!   rows at P fine phases per input sample (P = 256 · lower rate / input rate, at least 32, plus
//!   one row on each side), and each output is the cubic (4-point Lagrange) interpolation of the
//!   outputs of the 4 rows around its phase — 4 dot products over the same inputs, ≈ 3× the cost.
//!   The interpolation error for a tone at ω rad/sample is at most 0.0234·(ω/P)^4 ≈ −185 dBc at the
//!   band edge, far below the filter's own stopband.
//!
//! Designs are cached process-wide (the last 8 rate pairs, ≤ 16 MiB): one costs a few ms.
//!
//! Length rule: `n` input samples give exactly `ceil(n·L/M)` output samples (the k with `t_k < n`),
//! whether resampled in one call or streamed in chunks of any sizes and then `finish`ed.
//!
//! Latency: output k needs input up to `floor(t_k) + H`, so a stream holds back H input frames
//! (`latency_frames`): after n input frames it has emitted exactly `output_len(n − H)` outputs, and
//! `finish` emits the rest by feeding zeros.

use std::sync::Arc;

use parking_lot::Mutex;
use rayon::prelude::*;

use crate::dsp::AudioStream;
use crate::error::{Error, Result};

pub mod device;

/// The lowest and highest sample rates accepted (Hz).
pub const MIN_RATE: u32 = 4_000;
pub const MAX_RATE: u32 = 384_000;

/// Design stopband attenuation in dB (Kaiser's formulas).
const ATTENUATION_DB: f64 = 150.0;
/// Band edges as fractions of the lower Nyquist frequency.
const PASSBAND_END: f64 = 0.90;
const STOPBAND_BEGIN: f64 = 1.0;
/// Largest exact polyphase table (coefficients, 4 MiB); beyond it the phases are interpolated.
const MAX_EXACT_TABLE: usize = 1 << 19;
/// Fine phases per input sample of the interpolated table when the filter spans the full input band.
const FINE_PHASES_FULL_BAND: f64 = 256.0;
const MIN_FINE_PHASES: u64 = 32;
/// Taps are a multiple of this (the dot product's narrow step; no scalar tail).
const TAP_MULTIPLE: usize = 8;
/// The design cache keeps this many rate pairs, with at most this many bytes of tables.
const CACHE_PAIRS: usize = 8;
const CACHE_BYTES: usize = 16 << 20;
/// `process` widens and consumes its input this many frames at a time.
const PIECE_FRAMES: usize = 16384;
/// `process_batch` goes parallel from this many input frames in all.
const PAR_MIN_FRAMES: usize = 8192;

/// The filter of one rate pair: read-only, shared by the streams cloned from one `Resampler`.
#[derive(Debug)]
struct Filter {
    /// L and M: the rates divided by their gcd.
    up: u64,
    down: u64,
    /// `down = step_int · up + step_frac`: how far the input time moves per output.
    step_int: i64,
    step_frac: u64,
    /// H: half the filter span in input samples; `taps` = 2H coefficients per row.
    half: usize,
    taps: usize,
    /// 0: one row per phase (L rows). P > 0: rows at fine phases q/P for q = −1..=P+1.
    fine: u64,
    /// Rows of `taps` coefficients; row r holds h(offset + H − 1 − i) for i in 0..taps.
    table: Vec<f64>,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Modified Bessel function of the first kind, order 0: Σ ((x/2)^k / k!)².
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let (mut term, mut sum, mut k) = (1.0, 1.0, 1.0);
    while term > sum * 1e-18 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

impl Filter {
    fn design(from: u32, to: u32) -> Filter {
        let g = gcd(from as u64, to as u64);
        let (up, down) = (to as u64 / g, from as u64 / g);
        // Band edges in cycles per input sample.
        let nyquist = 0.5 * from.min(to) as f64 / from as f64;
        let (pass, stop) = (PASSBAND_END * nyquist, STOPBAND_BEGIN * nyquist);
        let cutoff = 0.5 * (pass + stop);
        let beta = 0.1102 * (ATTENUATION_DB - 8.7);
        let span = (ATTENUATION_DB - 7.95) / (2.285 * 2.0 * std::f64::consts::PI * (stop - pass));
        let half = ((span / 2.0).ceil() as usize).next_multiple_of(TAP_MULTIPLE / 2);
        let taps = 2 * half;
        let i0_beta = bessel_i0(beta);
        // The continuous impulse response, t in input samples: 2fc·sinc(2fc·t) · kaiser(t / H).
        let h = |t: f64| -> f64 {
            let r = t / half as f64;
            if r.abs() >= 1.0 {
                return 0.0;
            }
            let x = 2.0 * cutoff * t;
            let sinc = if x == 0.0 { 1.0 } else { (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x) };
            2.0 * cutoff * sinc * bessel_i0(beta * (1.0 - r * r).sqrt()) / i0_beta
        };
        // Exact rows at offsets p/L, or fine rows at q/P for q = −1..=P+1 (cubic interpolation
        // reads one row on each side of the interval).
        let fine = if up as usize * taps <= MAX_EXACT_TABLE {
            0
        } else {
            ((FINE_PHASES_FULL_BAND * 2.0 * nyquist).ceil() as u64).max(MIN_FINE_PHASES)
        };
        let offsets: Vec<f64> = if fine == 0 {
            (0..up).map(|p| p as f64 / up as f64).collect()
        } else {
            (-1..=fine as i64 + 1).map(|q| q as f64 / fine as f64).collect()
        };
        let rows = offsets.len();
        let mut table = vec![0.0f64; rows * taps];
        for (r, off) in offsets.into_iter().enumerate() {
            // h is even, so the row at offset 1 − o is the row at o reversed: compute half the rows.
            let mirror = if fine == 0 { (up as usize - r) % up as usize } else { rows - 1 - r };
            if mirror < r {
                let (done, row) = table.split_at_mut(r * taps);
                row[..taps].copy_from_slice(&done[mirror * taps..(mirror + 1) * taps]);
                row[..taps].reverse();
                continue;
            }
            let row = &mut table[r * taps..(r + 1) * taps];
            for (i, c) in row.iter_mut().enumerate() {
                *c = h(off + half as f64 - 1.0 - i as f64);
            }
            // Unit DC gain in every phase (the sum is already 1 to within the stopband ripple).
            let sum: f64 = row.iter().sum();
            row.iter_mut().for_each(|c| *c /= sum);
        }
        Filter { up, down, step_int: (down / up) as i64, step_frac: down % up, half, taps, fine, table }
    }

    /// The design for a rate pair, shared through a small process-wide cache: the engine builds a
    /// resampler per job, and a design costs milliseconds (one Bessel series per coefficient).
    fn cached(from: u32, to: u32) -> Arc<Filter> {
        type Entry = ((u32, u32), Arc<Filter>);
        static CACHE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
        {
            let mut cache = CACHE.lock();
            if let Some(i) = cache.iter().position(|(k, _)| *k == (from, to)) {
                // Most recently used last.
                let hit = cache.remove(i);
                cache.push(hit.clone());
                return hit.1;
            }
        }
        // Designed outside the lock (another thread may design the same pair meanwhile: harmless).
        let filter = Arc::new(Filter::design(from, to));
        let mut cache = CACHE.lock();
        cache.push(((from, to), filter.clone()));
        // Keep the last few pairs, and at most CACHE_BYTES of tables.
        while cache.len() > CACHE_PAIRS || cache.iter().map(|(_, f)| f.table.len() * 8).sum::<usize>() > CACHE_BYTES {
            cache.remove(0);
        }
        filter
    }

    fn row(&self, r: usize) -> &[f64] {
        &self.table[r * self.taps..(r + 1) * self.taps]
    }
}

/// A streaming resampler for one mono stream: feed chunks of any size with `process`, end with
/// `finish`. The concatenated output equals `resample` of the whole input (same length, same
/// samples). Clones share the filter table and copy the stream state.
#[derive(Clone, Debug)]
pub struct Resampler {
    filter: Arc<Filter>,
    from_rate: u32,
    to_rate: u32,
    /// Input history, widened to f64: `buf[0]` is input frame `start` (negative indices are the
    /// zeros before 0).
    buf: Vec<f64>,
    start: i64,
    /// The next output's input time is `pos + phase / L`.
    pos: i64,
    phase: u64,
    /// Input frames received and output frames emitted since the stream began.
    frames_in: u64,
    frames_out: u64,
}

impl Resampler {
    /// A resampler from `from_rate` to `to_rate` Hz, both in [`MIN_RATE`, `MAX_RATE`]. Equal rates
    /// give the identity (no filtering, no latency).
    pub fn new(from_rate: u32, to_rate: u32) -> Result<Resampler> {
        for (name, rate) in [("input", from_rate), ("output", to_rate)] {
            if !(MIN_RATE..=MAX_RATE).contains(&rate) {
                return Err(Error::invalid(format!(
                    "resampler: {name} rate {rate} Hz is outside [{MIN_RATE}, {MAX_RATE}] Hz"
                )));
            }
        }
        let filter = Filter::cached(from_rate, to_rate);
        let mut r = Resampler {
            filter,
            from_rate,
            to_rate,
            buf: Vec::new(),
            start: 0,
            pos: 0,
            phase: 0,
            frames_in: 0,
            frames_out: 0,
        };
        r.reset();
        Ok(r)
    }

    pub fn from_rate(&self) -> u32 {
        self.from_rate
    }

    pub fn to_rate(&self) -> u32 {
        self.to_rate
    }

    /// (L, M): the rates divided by their gcd; `to / from = L / M`.
    pub fn ratio(&self) -> (u64, u64) {
        (self.filter.up, self.filter.down)
    }

    /// Filter taps per output (2H, a span of 2H input samples); 0 for the identity.
    pub fn taps(&self) -> usize {
        if self.is_identity() { 0 } else { self.filter.taps }
    }

    /// True when the phase coefficients are interpolated from a fine table (very large L).
    pub fn is_interpolated(&self) -> bool {
        self.filter.fine != 0
    }

    /// The streaming latency H, in input frames (H / `from_rate` seconds): output k (input time
    /// k·M/L) is emitted once input frame floor(k·M/L) + H has arrived, so after n input frames
    /// exactly `output_len(n − H)` outputs are out. The signal itself is not delayed: output k is the
    /// input at time k·M/L. 0 for the identity.
    pub fn latency_frames(&self) -> usize {
        if self.is_identity() { 0 } else { self.filter.half }
    }

    /// The length rule: `n` input frames resample to exactly `ceil(n·L/M)` output frames.
    pub fn output_len(&self, n: u64) -> u64 {
        let (l, m) = (self.filter.up as u128, self.filter.down as u128);
        ((n as u128 * l).div_ceil(m)) as u64
    }

    /// Forgets the stream: the next `process` starts a new one.
    pub fn reset(&mut self) {
        let h = self.filter.half;
        // The zeros before input frame 0 that the first outputs' windows reach back into.
        self.buf.clear();
        self.buf.resize(h.saturating_sub(1), 0.0);
        self.start = 1 - h as i64;
        self.pos = 0;
        self.phase = 0;
        self.frames_in = 0;
        self.frames_out = 0;
    }

    fn is_identity(&self) -> bool {
        self.filter.up == self.filter.down
    }

    /// Resamples the next chunk of the stream, appending every output whose inputs have arrived.
    pub fn process(&mut self, input: &[f32], output: &mut Vec<f32>) {
        self.frames_in += input.len() as u64;
        if self.is_identity() {
            output.extend_from_slice(input);
            self.frames_out += input.len() as u64;
            return;
        }
        // A piece at a time, so the f64 history stays small however long the input.
        for piece in input.chunks(PIECE_FRAMES) {
            self.buf.extend(piece.iter().map(|&v| v as f64));
            self.produce(output, u64::MAX);
        }
    }

    /// Ends the stream: appends the outputs still held back (feeding zeros past the end) so that the
    /// stream's total is exactly `output_len(frames in)`, then resets for a new stream.
    pub fn finish(&mut self, output: &mut Vec<f32>) {
        if !self.is_identity() {
            let total = self.output_len(self.frames_in);
            // The last output sits before input frame n, so H zeros cover every window.
            self.buf.resize(self.buf.len() + self.filter.half, 0.0);
            self.produce(output, total);
        }
        self.reset();
    }

    /// Emits outputs while their windows are in `buf` and fewer than `limit` have been emitted.
    fn produce(&mut self, out: &mut Vec<f32>, limit: u64) {
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            // SAFETY: the CPU supports AVX2 and FMA (checked above).
            return unsafe { self.produce_avx2(out, limit) };
        }
        self.produce_with(out, limit, dot, dot4)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn produce_avx2(&mut self, out: &mut Vec<f32>, limit: u64) {
        // SAFETY (both kernels): AVX2 and FMA are enabled here, and the lengths are multiples of 8.
        self.produce_with(out, limit, |a, b| unsafe { avx2::dot(a, b) }, |r, x| unsafe { avx2::dot4(r, x) })
    }

    /// The output loop, with the dot-product kernels as parameters (portable or AVX2).
    #[inline(always)]
    fn produce_with(
        &mut self,
        out: &mut Vec<f32>,
        limit: u64,
        dot: impl Fn(&[f64], &[f64]) -> f64,
        dot4: impl Fn([&[f64]; 4], &[f64]) -> [f64; 4],
    ) {
        let count = self.ready(limit);
        let f = &*self.filter;
        let (h, l, m) = (f.half as i64, f.up, f.down);
        let first = out.len();
        out.resize(first + count, 0.0);
        let dst = &mut out[first..];
        // The window of the output at (pos, phase), as an index into `buf`.
        let window = |pos: i64| (pos - h + 1 - self.start) as usize;
        if f.fine == 0 {
            // Phase-major in blocks: outputs r, r + L, r + 2L, ... of a block share one table row, so
            // the row stays in L1 while the block's inputs (≈ 16 KiB) do too, however large the table.
            let block = ((2048 * l / m) as usize).max(l as usize);
            for b in (0..count).step_by(block) {
                let n = block.min(count - b);
                let t = self.phase as u128 + b as u128 * m as u128;
                let (pos_b, phase_b) = (self.pos + (t / l as u128) as i64, (t % l as u128) as u64);
                for r in 0..n.min(l as usize) {
                    let t = phase_b + r as u64 * m;
                    let row = f.row((t % l) as usize);
                    let mut lo = window(pos_b + (t / l) as i64);
                    for y in dst[b + r..b + n].iter_mut().step_by(l as usize) {
                        *y = dot(row, &self.buf[lo..lo + f.taps]) as f32;
                        lo += m as usize;
                    }
                }
            }
        } else {
            let (mut pos, mut phase) = (self.pos, self.phase);
            for y in dst.iter_mut() {
                let lo = window(pos);
                // Fine position j + d (d in [0, 1)) of the phase, exactly: phase·P / L.
                let num = phase * f.fine;
                let (j, d) = ((num / l) as usize, (num % l) as f64 / l as f64);
                // Rows j..j+3 are the fine phases j−1, j, j+1, j+2 (row 0 is phase −1).
                let a = dot4([f.row(j), f.row(j + 1), f.row(j + 2), f.row(j + 3)], &self.buf[lo..lo + f.taps]);
                // 4-point Lagrange weights at −1, 0, 1, 2.
                let w = [
                    -d * (d - 1.0) * (d - 2.0) / 6.0,
                    (d + 1.0) * (d - 1.0) * (d - 2.0) / 2.0,
                    -(d + 1.0) * d * (d - 2.0) / 2.0,
                    (d + 1.0) * d * (d - 1.0) / 6.0,
                ];
                *y = (w[0] * a[0] + w[1] * a[1] + w[2] * a[2] + w[3] * a[3]) as f32;
                pos += f.step_int;
                phase += f.step_frac;
                if phase >= l {
                    phase -= l;
                    pos += 1;
                }
            }
        }
        self.advance(count);
    }

    /// Outputs whose windows are in `buf`, at most `limit` in the stream's total.
    fn ready(&self, limit: u64) -> usize {
        let (h, l, m) = (self.filter.half as i64, self.filter.up, self.filter.down);
        // Output j from now sits at input time pos + (phase + j·M)/L and is ready when its window's
        // last input, pos + floor((phase + j·M)/L) + H, has arrived: j < (R·L − phase)/M.
        let ready = self.start + self.buf.len() as i64 - h - self.pos;
        let count = if ready <= 0 { 0 } else { (ready as u128 * l as u128 - self.phase as u128).div_ceil(m as u128) };
        count.min(limit.saturating_sub(self.frames_out) as u128) as usize
    }

    /// The index in `buf` of the next output's window.
    fn window_start(&self) -> usize {
        (self.pos - self.filter.half as i64 + 1 - self.start) as usize
    }

    /// Moves the input time on by `count` outputs, exactly, and drops the history no later output
    /// reaches back to.
    fn advance(&mut self, count: usize) {
        let (h, l, m) = (self.filter.half as i64, self.filter.up, self.filter.down);
        let t = self.phase as u128 + count as u128 * m as u128;
        self.pos += (t / l as u128) as i64;
        self.phase = (t % l as u128) as u64;
        self.frames_out += count as u64;
        // (When downsampling hard, the next window may start past what has arrived; what arrives
        // before it is dropped next time.)
        let drop = (self.pos - h + 1 - self.start).clamp(0, self.buf.len() as i64);
        self.buf.drain(..drop as usize);
        self.start += drop;
    }
}

/// `Σ a[i]·b[i]` (portable): 8 independent lanes, then a fixed-order reduction.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Four dot products of four rows with the same `x` (portable), reading `x` once.
fn dot4(rows: [&[f64]; 4], x: &[f64]) -> [f64; 4] {
    let mut acc = [[0.0f64; 4]; 4];
    for (i, xs) in x.chunks_exact(4).enumerate() {
        for (r, row) in rows.iter().enumerate() {
            for l in 0..4 {
                acc[r][l] += row[i * 4 + l] * xs[l];
            }
        }
    }
    acc.map(|a| (a[0] + a[2]) + (a[1] + a[3]))
}

/// The same kernels with AVX2 + FMA (LLVM's own vectorisation of the portable ones picks 128-bit
/// registers for f64 on the generic x86-64 target).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    pub fn available() -> bool {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"))
    }

    /// `Σ a[i]·b[i]` over lengths that are equal multiples of 8: four 4-lane accumulators so that
    /// four FMAs are in flight.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; `a.len() == b.len()`, a multiple of 8.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub unsafe fn dot(a: &[f64], b: &[f64]) -> f64 {
        debug_assert!(a.len() == b.len() && a.len().is_multiple_of(8));
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        unsafe {
            let mut acc = [_mm256_setzero_pd(); 4];
            let mut i = 0;
            while i + 16 <= n {
                for (j, s) in acc.iter_mut().enumerate() {
                    *s = _mm256_fmadd_pd(_mm256_loadu_pd(pa.add(i + 4 * j)), _mm256_loadu_pd(pb.add(i + 4 * j)), *s);
                }
                i += 16;
            }
            if i < n {
                // The remaining 8.
                acc[0] = _mm256_fmadd_pd(_mm256_loadu_pd(pa.add(i)), _mm256_loadu_pd(pb.add(i)), acc[0]);
                acc[1] = _mm256_fmadd_pd(_mm256_loadu_pd(pa.add(i + 4)), _mm256_loadu_pd(pb.add(i + 4)), acc[1]);
            }
            hsum(_mm256_add_pd(_mm256_add_pd(acc[0], acc[1]), _mm256_add_pd(acc[2], acc[3])))
        }
    }

    /// Four dot products of four rows with the same `x` (length a multiple of 4).
    ///
    /// # Safety
    /// AVX2 and FMA must be available; every row as long as `x`, a multiple of 4.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub unsafe fn dot4(rows: [&[f64]; 4], x: &[f64]) -> [f64; 4] {
        debug_assert!(rows.iter().all(|r| r.len() == x.len()) && x.len().is_multiple_of(4));
        let p = rows.map(|r| r.as_ptr());
        let px = x.as_ptr();
        unsafe {
            let mut acc = [_mm256_setzero_pd(); 4];
            let mut i = 0;
            while i < x.len() {
                let xv = _mm256_loadu_pd(px.add(i));
                for (s, r) in acc.iter_mut().zip(p) {
                    *s = _mm256_fmadd_pd(_mm256_loadu_pd(r.add(i)), xv, *s);
                }
                i += 4;
            }
            acc.map(|a| hsum(a))
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn hsum(v: __m256d) -> f64 {
        let s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
        _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)))
    }
}

impl AudioStream for Resampler {
    fn process(&mut self, input: &[f32], output: &mut Vec<f32>) {
        Resampler::process(self, input, output)
    }
    fn finish(&mut self, output: &mut Vec<f32>) {
        Resampler::finish(self, output)
    }
}

/// Resamples a whole signal at once: exactly `ceil(n·L/M)` samples.
pub fn resample(input: &[f32], from_rate: u32, to_rate: u32) -> Result<Vec<f32>> {
    let mut r = Resampler::new(from_rate, to_rate)?;
    let mut out = Vec::with_capacity(r.output_len(input.len() as u64) as usize);
    r.process(input, &mut out);
    r.finish(&mut out);
    Ok(out)
}

fn check_batch(streams: usize, inputs: usize, outputs: usize) -> Result<()> {
    if streams != inputs || streams != outputs {
        return Err(Error::invalid(format!(
            "resampler batch: {streams} streams, {inputs} inputs and {outputs} outputs must match"
        )));
    }
    Ok(())
}

/// One step of many streams: `streams[i].process(inputs[i], &mut outputs[i])` for every i (any
/// lengths, any rates), in parallel over the streams on the current rayon pool when the batch has
/// at least two streams and enough frames to be worth it. Identical to calling each stream alone.
pub fn process_batch(streams: &mut [&mut Resampler], inputs: &[&[f32]], outputs: &mut [Vec<f32>]) -> Result<()> {
    check_batch(streams.len(), inputs.len(), outputs.len())?;
    let frames: usize = inputs.iter().map(|x| x.len()).sum();
    if streams.len() >= 2 && frames >= PAR_MIN_FRAMES {
        streams
            .par_iter_mut()
            .zip(inputs.par_iter())
            .zip(outputs.par_iter_mut())
            .for_each(|((s, x), y)| s.process(x, y));
    } else {
        streams.iter_mut().zip(inputs).zip(outputs.iter_mut()).for_each(|((s, x), y)| s.process(x, y));
    }
    Ok(())
}

/// Ends many streams at once: `streams[i].finish(&mut outputs[i])` for every i.
pub fn finish_batch(streams: &mut [&mut Resampler], outputs: &mut [Vec<f32>]) -> Result<()> {
    check_batch(streams.len(), streams.len(), outputs.len())?;
    streams.par_iter_mut().zip(outputs.par_iter_mut()).for_each(|(s, y)| s.finish(y));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portable kernels give what the AVX2 ones give (the tests under `tests/` run whichever
    /// the machine has), through the whole output loop, for an exact and an interpolated table.
    #[test]
    fn portable_and_avx2_paths_agree() {
        let x: Vec<f32> = (0..5000).map(|i| ((i as f64 * 0.731).sin() * 0.8) as f32).collect();
        for (from, to) in [(24000, 44100), (44101, 16000)] {
            let mut fast = Resampler::new(from, to).unwrap();
            let mut portable = fast.clone();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            fast.process(&x, &mut a);
            portable.buf.extend(x.iter().map(|&v| v as f64));
            portable.frames_in += x.len() as u64;
            portable.produce_with(&mut b, u64::MAX, dot, dot4);
            assert_eq!(a.len(), b.len());
            assert!(a.len() > 1000);
            let diff = a.iter().zip(&b).fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(diff < 1e-6, "{from}→{to}: {diff}");
        }
    }

    #[test]
    fn kaiser_design_follows_the_formulas() {
        // 24 → 48 kHz: transition 0.45–0.5 cycles/input sample, 150 dB → 197.9 samples → 200 taps.
        let f = Filter::design(24000, 48000);
        assert_eq!((f.up, f.down, f.taps, f.fine), (2, 1, 200, 0));
        // 48 → 16 kHz spans three times as many input samples.
        assert_eq!(Filter::design(48000, 16000).taps, 600);
        // Every row (computed or mirrored) sums to 1 and is centred on its phase: h is even, so
        // Σ c_i · t_i = 0 where t_i = p/L + H − 1 − i is the time of tap i.
        for f in [Filter::design(24000, 44100), Filter::design(44101, 16000)] {
            let (rows, step) =
                if f.fine == 0 { (f.up as usize, f.up as f64) } else { (f.fine as usize + 3, f.fine as f64) };
            let shift = if f.fine == 0 { 0.0 } else { -1.0 };
            for r in 0..rows {
                let row = f.row(r);
                assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
                let t0 = (r as f64 + shift) / step + f.half as f64 - 1.0;
                let moment: f64 = row.iter().enumerate().map(|(i, c)| c * (t0 - i as f64)).sum();
                assert!(moment.abs() < 1e-6, "row {r}: {moment}");
            }
        }
    }
}
