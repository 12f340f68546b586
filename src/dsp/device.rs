//! Post-processing on a GPU: the resampler and the denoiser of this module run as one kernel launch
//! per step for a whole batch of streams (kernels/signal.cu through `backend::cuda::signal`). Each
//! stream keeps its counters on the host, in the CPU stream it wraps (so lengths, latencies and
//! phases are the CPU's by construction), and its samples and spectral state on the device.
//!
//! `PostDevice` is the GPU and the tables its streams share (filter designs per rate pair, windows
//! per rate); `DeviceStream` is one stream of either kind; `process_batch` runs a step of many.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::backend::cuda::Cuda;
use crate::backend::cuda::memory::DeviceBuf;
use crate::dsp::AudioStream;
use crate::dsp::denoise::device::{self as denoise_device, DeviceDenoiser};
use crate::dsp::resample::device::{self as resample_device, DeviceResampler};
use crate::error::Result;

/// Shared tables a device keeps (the last few of each kind; streams hold theirs while they live).
const KEPT_TABLES: usize = 8;

/// A GPU for post-processing, cheap to clone.
#[derive(Clone)]
pub struct PostDevice(Arc<Inner>);

struct Inner {
    cuda: Cuda,
    tables: Mutex<Vec<(TableKey, Arc<DeviceBuf>)>>,
}

/// What a shared device table is the table of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TableKey {
    /// The resampler's filter rows for (from, to) Hz.
    Filter(u32, u32),
    /// The denoiser's windows and twiddles at a rate.
    Frame(u32),
}

impl std::fmt::Debug for PostDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostDevice({:?})", self.0.cuda)
    }
}

impl PostDevice {
    /// CUDA device `ordinal` (`NoDevice` with the reason when it cannot run voxkit).
    pub fn open(ordinal: u32) -> Result<PostDevice> {
        Ok(PostDevice(Arc::new(Inner { cuda: Cuda::new(ordinal)?, tables: Mutex::new(Vec::new()) })))
    }

    /// `cuda:N <name>`.
    pub fn name(&self) -> String {
        let info = self.0.cuda.info();
        format!("cuda:{} {}", info.ordinal, info.name)
    }

    pub(crate) fn cuda(&self) -> &Cuda {
        &self.0.cuda
    }

    /// The shared table `key`, made by `make` (and uploaded) when the device has none.
    pub(crate) fn table(&self, key: TableKey, make: impl FnOnce(&Cuda) -> Result<DeviceBuf>) -> Result<Arc<DeviceBuf>> {
        if let Some((_, t)) = self.0.tables.lock().iter().find(|(k, _)| *k == key) {
            return Ok(t.clone());
        }
        let t = Arc::new(make(&self.0.cuda)?);
        let mut tables = self.0.tables.lock();
        tables.push((key, t.clone()));
        if tables.len() > KEPT_TABLES {
            tables.remove(0);
        }
        Ok(t)
    }

    fn same(&self, other: &PostDevice) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// One post-processing stream on a GPU.
pub enum DeviceStream {
    Denoise(Box<DeviceDenoiser>),
    Resample(DeviceResampler),
}

impl DeviceStream {
    /// A denoiser on `device` (as `Denoiser::new`).
    pub fn denoiser(device: &PostDevice, sample_rate: u32, strength: f32) -> Result<DeviceStream> {
        Ok(DeviceStream::Denoise(Box::new(DeviceDenoiser::new(device, sample_rate, strength)?)))
    }

    /// A resampler on `device` (as `Resampler::new`).
    pub fn resampler(device: &PostDevice, from_rate: u32, to_rate: u32) -> Result<DeviceStream> {
        Ok(DeviceStream::Resample(DeviceResampler::new(device, from_rate, to_rate)?))
    }

    fn device(&self) -> &PostDevice {
        match self {
            DeviceStream::Denoise(d) => d.device(),
            DeviceStream::Resample(r) => r.device(),
        }
    }
}

/// One stream's part of a batch: `input` through `stream`, appended to `output`; `finish` ends the
/// stream after it (its held-back tail appended, then reset for a new stream).
pub struct DeviceItem<'a> {
    pub stream: &'a mut DeviceStream,
    pub input: &'a [f32],
    pub finish: bool,
    pub output: &'a mut Vec<f32>,
}

/// A step of many device streams: one launch per kind and device. Each stream's output is what it
/// would give alone.
pub fn process_batch(items: &mut [DeviceItem<'_>]) -> Result<()> {
    let mut done = vec![false; items.len()];
    for first in 0..items.len() {
        if done[first] {
            continue;
        }
        // The streams of this item's kind on this item's device.
        let device = items[first].stream.device().clone();
        let denoise = matches!(items[first].stream, DeviceStream::Denoise(_));
        let group: Vec<usize> = (first..items.len())
            .filter(|&i| {
                !done[i]
                    && items[i].stream.device().same(&device)
                    && matches!(items[i].stream, DeviceStream::Denoise(_)) == denoise
            })
            .collect();
        let mut denoisers = Vec::new();
        let mut resamplers = Vec::new();
        let (mut inputs, mut finish, mut outputs) = (Vec::new(), Vec::new(), Vec::new());
        for (i, item) in items.iter_mut().enumerate() {
            if !group.contains(&i) {
                continue;
            }
            done[i] = true;
            match &mut *item.stream {
                DeviceStream::Denoise(d) => denoisers.push(&mut **d),
                DeviceStream::Resample(r) => resamplers.push(r),
            }
            inputs.push(item.input);
            finish.push(item.finish);
            outputs.push(&mut *item.output);
        }
        if denoise {
            denoise_device::process_batch(&device, &mut denoisers, &inputs, &finish, &mut outputs)?;
        } else {
            resample_device::process_batch(&device, &mut resamplers, &inputs, &finish, &mut outputs)?;
        }
    }
    Ok(())
}

/// Whole signals, each through its stream and ended, as one batch: `streams[i]` gives output `i`.
pub fn process_whole(streams: &mut [DeviceStream], inputs: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
    if streams.len() != inputs.len() {
        return Err(crate::error::Error::invalid(format!(
            "device batch: {} streams for {} signals",
            streams.len(),
            inputs.len()
        )));
    }
    let mut outs = vec![Vec::new(); inputs.len()];
    let mut items: Vec<DeviceItem<'_>> = streams
        .iter_mut()
        .zip(inputs)
        .zip(outs.iter_mut())
        .map(|((stream, input), output)| DeviceItem { stream, input, finish: true, output })
        .collect();
    process_batch(&mut items)?;
    drop(items);
    Ok(outs)
}

impl AudioStream for DeviceStream {
    fn process(&mut self, input: &[f32], output: &mut Vec<f32>) {
        let mut items = [DeviceItem { stream: self, input, finish: false, output }];
        process_batch(&mut items).unwrap_or_else(|e| std::panic::resume_unwind(Box::new(e)));
    }

    fn finish(&mut self, output: &mut Vec<f32>) {
        let mut items = [DeviceItem { stream: self, input: &[], finish: true, output }];
        process_batch(&mut items).unwrap_or_else(|e| std::panic::resume_unwind(Box::new(e)));
    }

    fn on_device(&mut self) -> Option<&mut DeviceStream> {
        Some(self)
    }
}
