//! The resampler on a GPU: the wrapped CPU `Resampler` keeps the stream's history and its exact
//! input time (so which outputs are ready, and where each one's window starts, are the CPU's), and
//! a batch's outputs are computed in one launch: each a dot product of its phase's table row (or
//! the cubic interpolation of four fine rows) with its window, in f64 as on the CPU.

use std::sync::Arc;

use super::Resampler;
use crate::backend::cuda::memory::DeviceBuf;
use crate::backend::cuda::signal::ResampleRun;
use crate::dsp::device::{PostDevice, TableKey};
use crate::error::{Error, Result};

/// Input frames per stream per launch at most (a long input goes in pieces, as on the CPU).
const PIECE_FRAMES: usize = 1 << 20;

/// A streaming resampler whose outputs are computed on a GPU.
pub struct DeviceResampler {
    host: Resampler,
    device: PostDevice,
    table: Arc<DeviceBuf>,
}

impl DeviceResampler {
    /// As `Resampler::new`, on `device`.
    pub fn new(device: &PostDevice, from_rate: u32, to_rate: u32) -> Result<DeviceResampler> {
        let host = Resampler::new(from_rate, to_rate)?;
        let filter = host.filter.clone();
        let table = device.table(TableKey::Filter(from_rate, to_rate), |cuda| cuda.upload_f64(&filter.table))?;
        Ok(DeviceResampler { host, device: device.clone(), table })
    }

    /// The CPU stream whose state this one keeps (rates, latency, the length rule).
    pub fn resampler(&self) -> &Resampler {
        &self.host
    }

    pub(crate) fn device(&self) -> &PostDevice {
        &self.device
    }
}

fn check(streams: usize, inputs: usize, finish: usize, outputs: usize) -> Result<()> {
    if inputs != streams || finish != streams || outputs != streams {
        return Err(Error::invalid(format!(
            "device resampler batch: {streams} streams, {inputs} inputs, {finish} finish flags, {outputs} outputs"
        )));
    }
    Ok(())
}

/// One step of many streams on `device`: `inputs[i]` through `streams[i]`, appended to
/// `outputs[i]`, then `finish[i]` ends that stream (as `Resampler::finish`). The same outputs as
/// the CPU streams, to f64 rounding.
pub fn process_batch(
    device: &PostDevice,
    streams: &mut [&mut DeviceResampler],
    inputs: &[&[f32]],
    finish: &[bool],
    outputs: &mut [&mut Vec<f32>],
) -> Result<()> {
    check(streams.len(), inputs.len(), finish.len(), outputs.len())?;
    let rounds = inputs.iter().map(|x| x.len().div_ceil(PIECE_FRAMES)).max().unwrap_or(0).max(1);
    for round in 0..rounds {
        let last = round + 1 == rounds;
        let mut x: Vec<f32> = Vec::new();
        let mut runs: Vec<(usize, ResampleRun)> = Vec::new();
        let mut total = 0;
        for (i, s) in streams.iter_mut().enumerate() {
            let piece = inputs[i].get(round * PIECE_FRAMES..).unwrap_or(&[]);
            let piece = &piece[..piece.len().min(PIECE_FRAMES)];
            let r = &mut s.host;
            r.frames_in += piece.len() as u64;
            if r.is_identity() {
                outputs[i].extend_from_slice(piece);
                r.frames_out += piece.len() as u64;
                continue;
            }
            r.buf.extend(piece.iter().map(|&v| v as f64));
            let limit = if last && finish[i] {
                // The last output sits before input frame n, so H zeros cover every window.
                r.buf.resize(r.buf.len() + r.filter.half, 0.0);
                r.output_len(r.frames_in)
            } else {
                u64::MAX
            };
            let count = r.ready(limit);
            if count == 0 {
                continue;
            }
            // The history from the first window on (exact: it holds widened f32 samples).
            let at = x.len();
            x.extend(r.buf[r.window_start()..].iter().map(|&v| v as f32));
            let f = &*r.filter;
            runs.push((
                i,
                ResampleRun {
                    x_at: at,
                    count,
                    out_at: total,
                    phase: r.phase,
                    up: f.up,
                    down: f.down,
                    taps: f.taps,
                    fine: f.fine,
                    table: s.table.ptr(),
                },
            ));
            total += count;
        }
        if !runs.is_empty() {
            let plain: Vec<ResampleRun> = runs.iter().map(|&(_, r)| r).collect();
            let y = device.cuda().resample(&x, &plain, total)?;
            for (i, run) in runs {
                outputs[i].extend_from_slice(&y[run.out_at..run.out_at + run.count]);
                streams[i].host.advance(run.count);
            }
        }
    }
    for (s, &end) in streams.iter_mut().zip(finish) {
        if end {
            s.host.reset();
        }
    }
    Ok(())
}
