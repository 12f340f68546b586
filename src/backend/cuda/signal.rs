//! Signal-processing launches for the post-processing stages (kernels/signal.cu): a polyphase
//! resampler and a spectral denoiser, each one launch for a whole batch of streams. The backend
//! knows the kernels' argument layouts, not the algorithms' design: the filter tables, windows and
//! constants come from `dsp`, which keeps each stream's counters on the host.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use super::args::KernelArgs;
use super::backend::Cuda;
use super::memory::{DeviceBuf, OrRaise};
use crate::error::{Error, Result};

/// Threads per block of the signal kernels.
const SIGNAL_BLOCK: u32 = 256;

/// One stream's outputs of a `resample` call: `count` outputs at `out_at` in the result; output k
/// is at input time `(phase + k·down) / up` past the window that starts at `x_at` in the input.
#[derive(Clone, Copy, Debug)]
pub struct ResampleRun {
    pub x_at: usize,
    pub count: usize,
    pub out_at: usize,
    pub phase: u64,
    pub up: u64,
    pub down: u64,
    /// Coefficients per table row (2H).
    pub taps: usize,
    /// 0: one row per phase; P > 0: rows at the fine phases q/P, q = −1..=P+1 (cubic interpolation).
    pub fine: u64,
    /// The device table of f64 rows (`Cuda::upload_f64`).
    pub table: u64,
}

/// The per-rate design of a denoised stream (from `dsp::denoise`).
#[derive(Clone, Debug)]
pub struct DenoiseDesign {
    /// Frame length 2^log2n and hop.
    pub log2n: u32,
    pub hop: usize,
    pub ms_frames: usize,
    pub subs: usize,
    pub start_frames: usize,
    pub init_half_bins: usize,
    pub rumble_bins: usize,
    /// noise, SPP, decision-directed and minimum-statistics smoothing; noise floor; strength;
    /// start-up bias; SPP cap; ξ under H1; least ξ; least gain; minimum-statistics bias.
    pub constants: [f32; 12],
    /// The start-up frames' scales (one per start frame, at most 8).
    pub warmup: Vec<f32>,
    /// Device address of window[n], synth[n], cos[n/2], −sin[n/2] (`Cuda::upload_f32`).
    pub tables: u64,
}

/// One stream's step of a `denoise` call.
#[derive(Clone, Copy, Debug)]
pub struct DenoiseStep {
    /// Device address of the stream's state (`denoise_state_len` floats).
    pub state: u64,
    /// Index in the call's input of the step's first new sample.
    pub in_at: usize,
    pub frames: usize,
    pub fill: usize,
    pub head: usize,
    pub seen: usize,
    pub ms_count: usize,
    pub ms_ring: usize,
    /// Index of the step's first frame in the call's plan.
    pub plan_at: usize,
    pub leftover: usize,
}

/// The fields of one stream in `denoise_f32`'s table (kernels/signal.cu: `DenoiseField`).
const DN_FIELDS: usize = 38;
const DN_MAX_WARMUP: usize = 8;

/// Floats of a denoiser's device state for frames of n = 2^log2n samples and `subs` sub-windows
/// (kernels/signal.cu: ring, overlap-add, spectrum, and per-bin tracks).
pub fn denoise_state_len(log2n: u32, subs: usize) -> usize {
    let n = 1usize << log2n;
    let bins = n / 2 + 1;
    4 * n + (8 + subs) * bins
}

/// Runs `f`, turning a device failure that an op raised (`memory::raise`) back into an error.
pub fn caught<T>(f: impl FnOnce() -> T) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Ok(v),
        Err(payload) => match payload.downcast::<Error>() {
            Ok(e) => Err(*e),
            Err(other) => resume_unwind(other),
        },
    }
}

impl Cuda {
    /// A device copy of f64 values (filter tables), owned by the caller.
    pub fn upload_f64(&self, v: &[f64]) -> Result<DeviceBuf> {
        let buf = self.gpu.pool.alloc_owned(std::mem::size_of_val(v))?;
        self.gpu.pool.upload(buf.ptr(), v)?;
        Ok(buf)
    }

    /// A device copy of f32 values (windows, stream state), owned by the caller.
    pub fn upload_f32(&self, v: &[f32]) -> Result<DeviceBuf> {
        let buf = self.gpu.pool.alloc_owned(std::mem::size_of_val(v))?;
        self.gpu.pool.upload(buf.ptr(), v)?;
        Ok(buf)
    }

    /// Overwrites a buffer from `upload_f32` (a stream's state reset).
    pub fn write_f32(&self, buf: &DeviceBuf, v: &[f32]) -> Result<()> {
        assert!(std::mem::size_of_val(v) <= buf.bytes(), "write_f32: {} values into {} bytes", v.len(), buf.bytes());
        self.gpu.pool.upload(buf.ptr(), v)
    }

    /// Every run's outputs over the concatenated inputs `x`: `outputs` samples in all, each run's at
    /// its `out_at` (the runs cover them). Sums in f64.
    pub fn resample(&self, x: &[f32], runs: &[ResampleRun], outputs: usize) -> Result<Vec<f32>> {
        let most = runs.iter().map(|r| r.count).max().unwrap_or(0);
        if most == 0 {
            return Ok(vec![0.0; outputs]);
        }
        for r in runs {
            assert!(r.out_at + r.count <= outputs, "resample: a run past the {outputs} outputs");
            assert!(r.x_at <= x.len() && r.phase < r.up && r.taps > 0, "resample: a run outside its input");
        }
        caught(|| {
            let table: Vec<i64> = runs
                .iter()
                .flat_map(|r| {
                    [
                        r.x_at as i64,
                        r.count as i64,
                        r.out_at as i64,
                        r.phase as i64,
                        r.up as i64,
                        r.down as i64,
                        r.taps as i64,
                        r.fine as i64,
                        r.table as i64,
                    ]
                })
                .collect();
            let (x_d, runs_d) = (self.table(x), self.table(&table));
            let y = self.gpu.pool.take(outputs * 4).or_raise();
            let mut a = KernelArgs::new();
            a.ptr(x_d.ptr()).ptr(runs_d.ptr()).ptr(y.ptr());
            let grid = (most.div_ceil(SIGNAL_BLOCK as usize) as u32, runs.len() as u32, 1);
            self.gpu.launch("resample_f32", grid, SIGNAL_BLOCK, 0, &a);
            let mut out = vec![0.0f32; outputs];
            self.gpu.pool.download(&mut out, y.ptr()).or_raise();
            out
        })
    }

    /// One step of many denoised streams over the concatenated new samples `x`: frame `f` of a
    /// step emits `plan[plan_at + f] = (skip, count, out_at)`: `count` samples of the overlap-add
    /// from `skip` on, to `out_at` in the result of `outputs` samples.
    pub fn denoise(
        &self,
        x: &[f32],
        steps: &[(&DenoiseDesign, DenoiseStep)],
        plan: &[[usize; 3]],
        outputs: usize,
    ) -> Result<Vec<f32>> {
        if steps.is_empty() {
            return Ok(vec![0.0; outputs]);
        }
        let mut table = Vec::with_capacity(steps.len() * DN_FIELDS);
        for (d, s) in steps {
            let consumed = (d.hop - s.fill) * s.frames.min(1) + d.hop * s.frames.saturating_sub(1) + s.leftover;
            assert!(s.in_at + consumed <= x.len(), "denoise: a step past its input");
            assert!(s.plan_at + s.frames <= plan.len(), "denoise: a step past the plan");
            assert!(d.warmup.len() == d.start_frames && d.start_frames <= DN_MAX_WARMUP, "denoise: warm-up scales");
            let bits = |v: f32| v.to_bits() as i32 as i64;
            table.extend([
                s.state as i64,
                d.tables as i64,
                d.log2n as i64,
                d.hop as i64,
                s.in_at as i64,
                s.frames as i64,
                s.fill as i64,
                s.head as i64,
                s.seen as i64,
                s.ms_count as i64,
                s.ms_ring as i64,
                s.plan_at as i64,
                s.leftover as i64,
                d.ms_frames as i64,
                d.subs as i64,
                d.start_frames as i64,
                d.init_half_bins as i64,
                d.rumble_bins as i64,
            ]);
            table.extend(d.constants.iter().map(|&c| bits(c)));
            table.extend((0..DN_MAX_WARMUP).map(|i| d.warmup.get(i).map_or(0, |&w| bits(w))));
        }
        debug_assert_eq!(table.len(), steps.len() * DN_FIELDS);
        for &[_, count, at] in plan {
            assert!(at + count <= outputs, "denoise: a frame past the {outputs} outputs");
        }
        let plan: Vec<i64> = plan.iter().flat_map(|p| p.map(|v| v as i64)).collect();
        caught(|| {
            let (x_d, table_d, plan_d) = (self.table(x), self.table(&table), self.table(&plan));
            let y = self.gpu.pool.take(outputs * 4).or_raise();
            let mut a = KernelArgs::new();
            a.ptr(x_d.ptr()).ptr(table_d.ptr()).ptr(plan_d.ptr()).ptr(y.ptr());
            self.gpu.launch("denoise_f32", (steps.len() as u32, 1, 1), SIGNAL_BLOCK, 0, &a);
            let mut out = vec![0.0f32; outputs];
            self.gpu.pool.download(&mut out, y.ptr()).or_raise();
            out
        })
    }
}
