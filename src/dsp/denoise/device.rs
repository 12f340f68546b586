//! The denoiser on a GPU. The wrapped CPU `Denoiser` holds the design (windows, constants) and the
//! stream's counters — samples in the current hop, samples held back, output still to skip, frames
//! analysed, the minimum-statistics position — which follow from the lengths alone, so the host
//! plans each step exactly as `Denoiser::push`/`flush` would run it: which frames, and which samples
//! each frame emits. The frames themselves run on the device, one block per stream: the ring of
//! input samples, the overlap-add and the tracker's per-bin state stay there between steps.

use std::sync::Arc;

use super::{
    Denoiser, GAIN_FLOOR, HOPS_PER_FRAME, INIT_BIAS, MS_BIAS, MS_SUBWINDOWS, SAMPLE_LIMIT, SPP_STUCK, XI_H1, XI_MIN,
};
use crate::backend::cuda::memory::DeviceBuf;
use crate::backend::cuda::signal::{DenoiseDesign, DenoiseStep, denoise_state_len};
use crate::dsp::device::{PostDevice, TableKey};
use crate::error::{Error, Result};

/// A denoised stream whose frames are analysed and resynthesised on a GPU.
pub struct DeviceDenoiser {
    host: Denoiser,
    device: PostDevice,
    design: DenoiseDesign,
    /// The windows and twiddles (shared per rate), and this stream's state.
    _tables: Arc<DeviceBuf>,
    state: DeviceBuf,
    /// Ring index of the current frame's first sample; the oldest minimum-statistics sub-window.
    head: usize,
    ms_ring: usize,
}

impl DeviceDenoiser {
    /// As `Denoiser::new`, on `device`.
    pub fn new(device: &PostDevice, sample_rate: u32, strength: f32) -> Result<DeviceDenoiser> {
        let host = Denoiser::new(sample_rate, strength)?;
        let n = host.n;
        let tables = device.table(TableKey::Frame(sample_rate), |cuda| {
            // window, synth, then e^{−2πij/n} for j < n/2 as cos and −sin (computed in f64).
            let mut t = Vec::with_capacity(3 * n);
            t.extend_from_slice(&host.window);
            t.extend_from_slice(&host.synth);
            let angle = |j: usize| 2.0 * std::f64::consts::PI * j as f64 / n as f64;
            t.extend((0..n / 2).map(|j| angle(j).cos() as f32));
            t.extend((0..n / 2).map(|j| -angle(j).sin() as f32));
            cuda.upload_f32(&t)
        })?;
        let design = DenoiseDesign {
            log2n: n.trailing_zeros(),
            hop: host.hop,
            ms_frames: host.ms_frames,
            subs: MS_SUBWINDOWS,
            start_frames: HOPS_PER_FRAME,
            init_half_bins: host.init_half_bins,
            rumble_bins: host.rumble_bins,
            constants: [
                host.noise_smooth,
                host.spp_smooth,
                host.dd_weight,
                host.ms_smooth,
                host.noise_floor,
                host.strength,
                INIT_BIAS,
                SPP_STUCK,
                XI_H1,
                XI_MIN,
                GAIN_FLOOR,
                MS_BIAS,
            ],
            warmup: host.warmup_scale.clone(),
            tables: tables.ptr(),
        };
        let state = device.cuda().upload_f32(&initial_state(&host))?;
        Ok(DeviceDenoiser { host, device: device.clone(), design, _tables: tables, state, head: 0, ms_ring: 0 })
    }

    /// The CPU stream whose design and counters this one keeps (rate, frame, hop, latency).
    pub fn denoiser(&self) -> &Denoiser {
        &self.host
    }

    pub(crate) fn device(&self) -> &PostDevice {
        &self.device
    }

    /// Forgets the stream (host counters now, device state in stream order).
    fn reset(&mut self) -> Result<()> {
        self.host.reset();
        self.head = 0;
        self.ms_ring = 0;
        self.device.cuda().write_f32(&self.state, &initial_state(&self.host))
    }

    /// One frame's bookkeeping, as `Denoiser::frame` then `emit` (the counters only): returns the
    /// frame's (skip, count) of output.
    fn count_frame(&mut self) -> (usize, usize) {
        let d = &mut self.host;
        d.frames = (d.frames + 1).min(HOPS_PER_FRAME);
        d.ms_count += 1;
        if d.ms_count == d.ms_frames {
            d.ms_count = 0;
            self.ms_ring = (self.ms_ring + 1) % MS_SUBWINDOWS;
        }
        let skip = d.skip.min(d.hop);
        d.skip -= skip;
        let count = (d.hop - skip).min(d.held);
        d.held -= count;
        d.fill = 0;
        self.head = (self.head + d.hop) % d.n;
        (skip, count)
    }
}

/// The device state of a stream at its start (kernels/signal.cu's layout): empty ring and
/// overlap-add, the noise floor as the noise estimate, no minima yet.
fn initial_state(d: &Denoiser) -> Vec<f32> {
    let (n, bins) = (d.n, d.n / 2 + 1);
    let mut s = vec![0.0f32; denoise_state_len(n.trailing_zeros(), MS_SUBWINDOWS)];
    // ring, ola, re, im, power: 0; then noise, spp_avg, clean_prev, smoothed, min_now, min_past,
    // avg3, subs.
    let track = |i: usize| 4 * n + i * bins;
    s[track(1)..track(2)].fill(d.noise_floor);
    s[track(5)..track(7)].fill(f32::MAX);
    s[track(8)..].fill(f32::MAX);
    s
}

/// One step of many streams on `device`: `inputs[i]` through `streams[i]`, appended to
/// `outputs[i]`, then `finish[i]` flushes that stream (as `Denoiser::flush`) and resets it. The
/// same outputs as the CPU streams, to float rounding (the transforms differ in their order).
pub fn process_batch(
    device: &PostDevice,
    streams: &mut [&mut DeviceDenoiser],
    inputs: &[&[f32]],
    finish: &[bool],
    outputs: &mut [&mut Vec<f32>],
) -> Result<()> {
    let k = streams.len();
    if inputs.len() != k || finish.len() != k || outputs.len() != k {
        return Err(Error::invalid(format!(
            "device denoiser batch: {k} streams, {} inputs, {} finish flags, {} outputs",
            inputs.len(),
            finish.len(),
            outputs.len()
        )));
    }
    // Plan every stream's step: its new samples (sanitised as the CPU does, then the silence a
    // flush pads with), its frames, and what each frame emits where.
    let mut x: Vec<f32> = Vec::new();
    let mut plan: Vec<[usize; 3]> = Vec::new();
    let mut steps: Vec<DenoiseStep> = Vec::with_capacity(k);
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(k);
    let mut total = 0;
    for (i, s) in streams.iter_mut().enumerate() {
        let (in_at, plan_at, out_at) = (x.len(), plan.len(), total);
        let step = DenoiseStep {
            state: s.state.ptr(),
            in_at,
            frames: 0,
            fill: s.host.fill,
            head: s.head,
            seen: s.host.frames,
            ms_count: s.host.ms_count,
            ms_ring: s.ms_ring,
            plan_at,
            leftover: 0,
        };
        x.extend(inputs[i].iter().map(|&v| if v.is_finite() { v.clamp(-SAMPLE_LIMIT, SAMPLE_LIMIT) } else { 0.0 }));
        let hop = s.host.hop;
        let mut rest = inputs[i].len();
        while rest > 0 {
            let take = (hop - s.host.fill).min(rest);
            s.host.fill += take;
            s.host.held += take;
            rest -= take;
            if s.host.fill == hop {
                let (skip, count) = s.count_frame();
                plan.push([skip, count, total]);
                total += count;
            }
        }
        if finish[i] {
            while s.host.held > 0 {
                x.resize(x.len() + hop - s.host.fill, 0.0);
                s.host.fill = hop;
                let (skip, count) = s.count_frame();
                plan.push([skip, count, total]);
                total += count;
            }
        }
        let frames = plan.len() - plan_at;
        let leftover = if frames == 0 { s.host.fill - step.fill } else { s.host.fill };
        steps.push(DenoiseStep { frames, leftover, ..step });
        spans.push((out_at, total));
    }
    if !plan.is_empty() || steps.iter().any(|s| s.leftover > 0) {
        let with_design: Vec<(&DenoiseDesign, DenoiseStep)> =
            streams.iter().zip(&steps).map(|(s, &st)| (&s.design, st)).collect();
        let y = device.cuda().denoise(&x, &with_design, &plan, total)?;
        for (out, &(a, b)) in outputs.iter_mut().zip(&spans) {
            out.extend_from_slice(&y[a..b]);
        }
    }
    for (s, &end) in streams.iter_mut().zip(finish) {
        if end {
            s.reset()?;
        }
    }
    Ok(())
}
