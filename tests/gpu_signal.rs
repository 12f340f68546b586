//! Post-processing on the GPU (src/dsp/device.rs, kernels/signal.cu) against the CPU streams (the
//! reference): the resampler and the denoiser, streamed in uneven chunks, batched across streams of
//! different rates, flushed and reused. Runs on the emulated device in CI
//! (scripts/emulator-check.sh) and on a GPU through scripts/gpu-check.sh; ignored in a plain
//! `cargo test`, which has no driver.
//!
//! Tolerances, as the largest |gpu − cpu| relative to the signal's peak: resampler 3e-7 (f64 sums
//! in another order, rounded once to f32: an ulp or two; 0 measured on the emulated device);
//! denoiser 2e-5 (f32 transforms in another order, through the tracker's exponentials; 3e-7
//! measured on the emulated device, and a gain 0.1 % off shows as 3e-4).

use voxkit::dsp::AudioStream;
use voxkit::dsp::denoise::Denoiser;
use voxkit::dsp::device::{DeviceItem, DeviceStream, PostDevice, process_batch};
use voxkit::dsp::resample::Resampler;

const RESAMPLE_TOL: f32 = 3e-7;
const DENOISE_TOL: f32 = 2e-5;

fn device() -> PostDevice {
    PostDevice::open(0).expect("a CUDA device")
}

/// A voiced tone with harmonics over noise, then a quiet gap and a burst: something for the
/// tracker to follow.
fn signal(n: usize, rate: u32, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    };
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let voiced = if (t * 3.0).fract() < 0.6 { 1.0 } else { 0.05 };
            let tone: f32 = (1..5).map(|h| (2.0 * std::f32::consts::PI * 180.0 * h as f32 * t).sin() / h as f32).sum();
            0.3 * voiced * tone + 0.05 * noise()
        })
        .collect()
}

/// Uneven chunk lengths covering `n`, some empty.
fn chunks(n: usize, seed: usize) -> Vec<std::ops::Range<usize>> {
    let sizes = [0, 1, 97, 480, 1920, 7, 3000, 255, 0, 1023];
    let mut out = Vec::new();
    let (mut at, mut i) = (0, seed);
    while at < n {
        let len = sizes[i % sizes.len()].min(n - at);
        out.push(at..at + len);
        at += len;
        i += 1;
    }
    out
}

fn streamed(stream: &mut dyn AudioStream, x: &[f32], seed: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for r in chunks(x.len(), seed) {
        stream.process(&x[r], &mut out);
    }
    stream.finish(&mut out);
    out
}

#[track_caller]
fn close(what: &str, gpu: &[f32], cpu: &[f32], tol: f32) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
    assert!(!cpu.is_empty(), "{what}: nothing to compare");
    let peak = cpu.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
    let err = gpu.iter().zip(cpu).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(gpu.iter().all(|v| v.is_finite()), "{what}: a value is not finite");
    assert!(
        err <= tol * peak,
        "{what}: the GPU output is {err:.2e} from the CPU's (peak {peak:.2}, tolerance {tol:.0e})"
    );
}

#[test]
#[ignore = "needs a CUDA device (scripts/emulator-check.sh)"]
fn the_resampler_gives_the_cpus_outputs() {
    let dev = device();
    // Up, fractional up, down, the interpolated table, and the identity.
    // The extremes of the accepted rates too.
    for (from, to) in
        [(24000, 48000), (24000, 44100), (48000, 16000), (44101, 16000), (16000, 16000), (4000, 384000), (384000, 4000)]
    {
        let x = signal(9000, from, from as u64);
        let cpu = streamed(&mut Resampler::new(from, to).unwrap(), &x, 0);
        let mut gpu = DeviceStream::resampler(&dev, from, to).unwrap();
        let out = streamed(&mut gpu, &x, 3);
        close(&format!("{from} → {to}"), &out, &cpu, RESAMPLE_TOL);
        // The stream was reset by its end: a second one gives the same.
        assert_eq!(streamed(&mut gpu, &x, 5), out, "{from} → {to}: a reused stream differs");
    }
}

#[test]
#[ignore = "needs a CUDA device (scripts/emulator-check.sh)"]
fn the_denoiser_gives_the_cpus_outputs() {
    let dev = device();
    // The extremes of the accepted rates too (frames of 128 and 8192 samples).
    for (rate, strength) in [(24000, 1.0), (48000, 0.7), (16000, 1.0), (24000, 0.0), (4000, 1.0), (384000, 1.0)] {
        let x = signal((rate as usize / 4).min(32_768), rate, rate as u64 + 1);
        let cpu = streamed(&mut Denoiser::new(rate, strength).unwrap(), &x, 0);
        let mut gpu = DeviceStream::denoiser(&dev, rate, strength).unwrap();
        let out = streamed(&mut gpu, &x, 2);
        close(&format!("{rate} Hz, strength {strength}"), &out, &cpu, DENOISE_TOL);
        assert_eq!(streamed(&mut gpu, &x, 7), out, "{rate} Hz: a reused stream differs");
    }
}

#[test]
#[ignore = "needs a CUDA device (scripts/emulator-check.sh)"]
fn samples_that_are_not_finite_are_read_as_the_cpu_reads_them() {
    let dev = device();
    let mut x = signal(4000, 24000, 9);
    for (i, v) in [(100, f32::NAN), (2000, f32::INFINITY), (2001, -f32::INFINITY), (3000, f32::NAN)] {
        x[i] = v;
    }
    let cpu = streamed(&mut Denoiser::new(24000, 1.0).unwrap(), &x, 0);
    let out = streamed(&mut DeviceStream::denoiser(&dev, 24000, 1.0).unwrap(), &x, 1);
    close("non-finite input", &out, &cpu, DENOISE_TOL);
}

/// Several streams of both kinds and different rates, in one batch per step, each given its own
/// chunking; every stream's output is what it gives alone, bit for bit.
#[test]
#[ignore = "needs a CUDA device (scripts/emulator-check.sh)"]
fn a_batch_gives_each_stream_what_it_gives_alone() {
    let dev = device();
    let make = |k: usize| -> DeviceStream {
        match k % 4 {
            0 => DeviceStream::denoiser(&dev, 24000, 1.0).unwrap(),
            1 => DeviceStream::resampler(&dev, 24000, 48000).unwrap(),
            2 => DeviceStream::denoiser(&dev, 48000, 0.5).unwrap(),
            _ => DeviceStream::resampler(&dev, 16000, 44100).unwrap(),
        }
    };
    let inputs: Vec<Vec<f32>> = (0..6).map(|k| signal(7000 + 900 * k, 24000, k as u64)).collect();
    let alone: Vec<Vec<f32>> = (0..6).map(|k| streamed(&mut make(k), &inputs[k], k)).collect();

    let mut streams: Vec<DeviceStream> = (0..6).map(make).collect();
    let plans: Vec<Vec<std::ops::Range<usize>>> = (0..6).map(|k| chunks(inputs[k].len(), k)).collect();
    let mut outs = vec![Vec::new(); 6];
    let steps = plans.iter().map(|p| p.len()).max().unwrap();
    for step in 0..=steps {
        let mut items: Vec<DeviceItem<'_>> = streams
            .iter_mut()
            .zip(outs.iter_mut())
            .enumerate()
            .filter(|(k, _)| step <= plans[*k].len())
            .map(|(k, (stream, output))| {
                let (input, finish) = match plans[k].get(step) {
                    Some(r) => (&inputs[k][r.clone()], false),
                    None => (&[][..], true),
                };
                DeviceItem { stream, input, finish, output }
            })
            .collect();
        process_batch(&mut items).unwrap();
    }
    for k in 0..6 {
        assert_eq!(outs[k], alone[k], "stream {k}: batched differs from alone");
    }
}
