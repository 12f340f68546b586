//! `enhance`: denoise and/or resample a WAV file with the library's DSP, channels as one batch (on
//! the CPU's threads, or on a GPU in one launch per stage).

use std::time::Instant;

use voxkit::dsp::device::{DeviceStream, PostDevice, process_whole};
use voxkit::dsp::{denoise, resample};

use crate::Fail;
use crate::cli::EnhanceArgs;
use crate::inout::{self, Output};
use crate::ui::Ui;

pub fn enhance(a: &EnhanceArgs, ui: &Ui) -> Result<(), Fail> {
    let gpu = a.threads.post_device()?;
    let mut out = Output::prepare(&a.out)?;
    let w = inout::read_wav(&a.input)?;
    let strength = a.denoise;
    let to_rate = a.sample_rate.unwrap_or(w.rate);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(a.threads.count()).build().map_err(|e| e.to_string())?;
    // De-interleave: each channel is its own stream; all channels form one batch.
    let c = w.channels as usize;
    let mut chans: Vec<Vec<f32>> = (0..c).map(|ch| w.samples.iter().skip(ch).step_by(c).copied().collect()).collect();
    let frames = chans[0].len();
    let (mut denoise_ms, mut resample_ms) = (0.0, 0.0);
    let progress = ui.spinner("enhancing");
    if let Some(s) = strength {
        progress.set_message("denoising");
        let t = Instant::now();
        if let Some(dev) = &gpu {
            chans = on_gpu(dev, &chans, |d| DeviceStream::denoiser(d, w.rate, s))?;
            denoise_ms = t.elapsed().as_secs_f64() * 1e3;
        } else {
            let mut streams: Vec<denoise::Denoiser> =
                (0..c).map(|_| denoise::Denoiser::new(w.rate, s)).collect::<Result<_, _>>()?;
            let mut outs = vec![Vec::new(); c];
            pool.install(|| {
                let mut refs: Vec<&mut denoise::Denoiser> = streams.iter_mut().collect();
                let inputs: Vec<&[f32]> = chans.iter().map(|v| v.as_slice()).collect();
                denoise::process_batch(&mut refs, &inputs, &mut outs)
            })?;
            for (st, o) in streams.iter_mut().zip(outs.iter_mut()) {
                st.flush(o);
            }
            chans = outs;
            denoise_ms = t.elapsed().as_secs_f64() * 1e3;
        }
    }
    if to_rate != w.rate {
        progress.set_message("resampling");
        let t = Instant::now();
        if let Some(dev) = &gpu {
            chans = on_gpu(dev, &chans, |d| DeviceStream::resampler(d, w.rate, to_rate))?;
            resample_ms = t.elapsed().as_secs_f64() * 1e3;
        } else {
            let mut streams: Vec<resample::Resampler> =
                (0..c).map(|_| resample::Resampler::new(w.rate, to_rate)).collect::<Result<_, _>>()?;
            let mut outs = vec![Vec::new(); c];
            pool.install(|| {
                let mut refs: Vec<&mut resample::Resampler> = streams.iter_mut().collect();
                let inputs: Vec<&[f32]> = chans.iter().map(|v| v.as_slice()).collect();
                resample::process_batch(&mut refs, &inputs, &mut outs)?;
                resample::finish_batch(&mut refs, &mut outs)
            })?;
            chans = outs;
            resample_ms = t.elapsed().as_secs_f64() * 1e3;
        }
    }
    progress.finish_and_clear();
    let n = chans[0].len();
    let mut interleaved = Vec::with_capacity(n * c);
    for i in 0..n {
        interleaved.extend(chans.iter().map(|ch| ch[i]));
    }
    out.write_wav(&interleaved, to_rate, w.channels, w.format)?;
    let seconds = frames as f64 / w.rate as f64;
    ui.note(format_args!(
        "wrote {}: {seconds:.2} s, {c} channel(s), {} Hz -> {to_rate} Hz, {:?}; denoise {denoise_ms:.1} ms{}, resample {resample_ms:.1} ms ({})",
        out.name(),
        w.rate,
        w.format,
        strength.map(|s| format!(" (strength {s})")).unwrap_or_else(|| " (off)".into()),
        if gpu.is_some() { "GPU" } else { "CPU" },
    ));
    Ok(())
}

/// Every channel through a stream made by `make` on the GPU, as one batch, ended.
fn on_gpu(
    dev: &PostDevice,
    chans: &[Vec<f32>],
    make: impl Fn(&PostDevice) -> voxkit::Result<DeviceStream>,
) -> Result<Vec<Vec<f32>>, Fail> {
    let mut streams: Vec<DeviceStream> = chans.iter().map(|_| make(dev)).collect::<Result<_, _>>()?;
    Ok(process_whole(&mut streams, chans)?)
}
