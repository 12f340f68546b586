//! Resampler comparison: voxkit's polyphase resampler against rubato 4 (its FFT resampler and its
//! sinc resampler with good parameters) on the same sine tones and rate pairs, for
//! `/tmp/results-resample.md` (tools/bench/resample_soxr.py measures python-soxr VHQ the same way).
//!
//! Per rate pair: the worst image/alias component of in-band tones (0.02–0.9 × the lower Nyquist,
//! dBc), the worst alias of tones above the output band when downsampling (1.0–1.9 × the output
//! Nyquist, dB relative to the input tone), the passband ripple (max − min gain over the in-band
//! tones, dB), and the speed in × real time on one thread (10 s of noise resampled in one call, best
//! of 5). Spectra: 7-term Blackman-Harris window over 65536 steady-state output samples, f64 FFT.
//!
//! `cargo run --release --example resample_compare [-- --quick]`

use std::f64::consts::PI;
use std::time::Instant;

use realfft::RealFftPlanner;
use realfft::num_traits::ToPrimitive;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Sample, SincInterpolationParameters, SincInterpolationType, WindowFunction,
};
use voxkit::dsp::resample::{Resampler, process_batch, resample};

const PAIRS: &[(u32, u32)] = &[
    (24000, 48000),
    (24000, 44100),
    (48000, 16000),
    (44100, 16000),
    (22050, 16000),
    (8000, 16000),
    (11025, 17000),
    (44101, 16000),
];
const IN_BAND: &[f64] = &[0.0217, 0.1113, 0.3079, 0.5471, 0.7193, 0.8411, 0.9];
const ABOVE: &[f64] = &[1.0, 1.013, 1.1, 1.37, 1.9];
const AMP: f64 = 0.9;

#[derive(Clone, Copy, PartialEq)]
enum Impl {
    Voxkit,
    RubatoFft64,
    RubatoSinc64,
    RubatoFft32,
    RubatoSinc32,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Voxkit => "voxkit (f32 in/out, f64 inside)",
            Impl::RubatoFft64 => "rubato Fft, f64",
            Impl::RubatoSinc64 => "rubato sinc 256 taps, BH2, ×256 cubic, f64",
            Impl::RubatoFft32 => "rubato Fft, f32",
            Impl::RubatoSinc32 => "rubato sinc 256 taps, BH2, ×256 cubic, f32",
        }
    }
}

fn rubato_run<T: Sample + ToPrimitive>(which: Impl, from: u32, to: u32, x: &[f64]) -> Vec<f64> {
    let data: Vec<T> = x.iter().map(|&v| T::coerce_from(v)).collect();
    let mut r: Box<dyn rubato::Resampler<T>> = match which {
        Impl::RubatoFft64 | Impl::RubatoFft32 => {
            // One FFT sub-chunk per 1024-frame chunk: the longest (sharpest) filter this chunk allows.
            Box::new(
                Fft::<T>::new_custom(
                    from as usize,
                    to as usize,
                    1024,
                    1,
                    1,
                    WindowFunction::BlackmanHarris2,
                    FixedSync::Input,
                )
                .unwrap(),
            )
        }
        _ => {
            let params = SincInterpolationParameters::new(256, WindowFunction::BlackmanHarris2)
                .oversampling_factor(256)
                .interpolation(SincInterpolationType::Cubic);
            Box::new(Async::<T>::new_sinc(to as f64 / from as f64, 1.0, &params, 1024, 1, FixedAsync::Input).unwrap())
        }
    };
    let input = InterleavedSlice::new(&data[..], 1, data.len()).unwrap();
    let out = r.process_all(&input, data.len(), None).unwrap();
    out.take_data().into_iter().map(|v| v.to_f64().unwrap_or(0.0)).collect()
}

fn run(which: Impl, from: u32, to: u32, x: &[f64]) -> Vec<f64> {
    match which {
        Impl::Voxkit => {
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            resample(&x32, from, to).unwrap().into_iter().map(|v| v as f64).collect()
        }
        Impl::RubatoFft64 | Impl::RubatoSinc64 => rubato_run::<f64>(which, from, to, x),
        Impl::RubatoFft32 | Impl::RubatoSinc32 => rubato_run::<f32>(which, from, to, x),
    }
}

#[path = "../tests/common/window.rs"]
mod window;
use window::bh7;

/// (tone amplitude, largest component more than 9 bins from `freq` relative to `AMP` in dB) over
/// the middle `n` samples of `y`.
fn analyze(y: &[f64], n: usize, freq: f64, window: &[f64]) -> (f64, f64) {
    let start = (y.len() - n) / 2;
    let seg = &y[start..start + n];
    let gain: f64 = window.iter().sum::<f64>() / 2.0;
    let (mut re, mut im) = (0.0, 0.0);
    for (i, (v, w)) in seg.iter().zip(window).enumerate() {
        let a = 2.0 * PI * freq * i as f64;
        re += v * w * a.cos();
        im -= v * w * a.sin();
    }
    let mut x: Vec<f64> = seg.iter().zip(window).map(|(v, w)| v * w).collect();
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
    let mut spec = fft.make_output_vec();
    fft.process(&mut x, &mut spec).unwrap();
    let centre = freq * n as f64;
    let worst = spec
        .iter()
        .enumerate()
        .filter(|(k, _)| (*k as f64 - centre).abs() > 9.0)
        .map(|(k, c)| c.norm() / if k == 0 || k == n / 2 { 2.0 * gain } else { gain })
        .fold(0.0f64, f64::max);
    ((re * re + im * im).sqrt() / gain, 20.0 * (worst / AMP).log10())
}

struct Quality {
    spur_db: f64,
    alias_db: Option<f64>,
    ripple_db: f64,
}

fn quality(which: Impl, from: u32, to: u32, n: usize, window: &[f64]) -> Quality {
    // Enough input for n steady output samples plus generous margins for every implementation.
    let n_in = ((n + 40_000) as u64 * from as u64).div_ceil(to as u64) as usize;
    let tone =
        |f: f64| -> Vec<f64> { (0..n_in).map(|i| AMP * (2.0 * PI * f * i as f64 / from as f64 + 0.3).sin()).collect() };
    let nyq = from.min(to) as f64 / 2.0;
    let (mut spur, mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &frac in IN_BAND {
        let f = frac * nyq;
        let (amp, s) = analyze(&run(which, from, to, &tone(f)), n, f / to as f64, window);
        let g = 20.0 * (amp / AMP).log10();
        spur = spur.max(s);
        lo = lo.min(g);
        hi = hi.max(g);
    }
    let alias_db = (from > to).then(|| {
        ABOVE
            .iter()
            .map(|frac| frac * to as f64 / 2.0)
            .filter(|&f| f < 0.49 * from as f64)
            .map(|f| analyze(&run(which, from, to, &tone(f)), n, 2.0, window).1)
            .fold(f64::NEG_INFINITY, f64::max)
    });
    Quality { spur_db: spur, alias_db, ripple_db: hi - lo }
}

/// × real time on one thread: `secs` seconds of noise, best of `reps`.
fn speed(which: Impl, from: u32, to: u32, secs: usize, reps: usize) -> f64 {
    let n = secs * from as usize;
    let mut s = 12345u64;
    let x: Vec<f64> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f64 / (1u64 << 24) as f64) - 0.5
        })
        .collect();
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        let len = match which {
            Impl::Voxkit => resample(&x32, from, to).unwrap().len(),
            _ => run(which, from, to, &x).len(),
        };
        best = best.min(t.elapsed().as_secs_f64());
        assert!(len > 0);
    }
    secs as f64 / best
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 16384 } else { 65536 };
    let (secs, reps) = if quick { (2, 2) } else { (10, 5) };
    let window = bh7(n);
    let impls = [Impl::Voxkit, Impl::RubatoFft64, Impl::RubatoSinc64, Impl::RubatoFft32, Impl::RubatoSinc32];
    println!(
        "| rate pair | implementation | worst image/alias, in-band tones (dBc) | worst alias, tones above the output band (dB) | passband ripple to 0.9 × Nyquist (dB) | × real time, 1 thread |"
    );
    println!("|---|---|---|---|---|---|");
    for &(from, to) in PAIRS {
        for &which in &impls {
            let q = quality(which, from, to, n, &window);
            let x = speed(which, from, to, secs, reps);
            let alias = q.alias_db.map_or("–".to_string(), |a| format!("{a:.1}"));
            println!(
                "| {from} → {to} | {} | {:.1} | {alias} | {:.1e} | {x:.0} |",
                which.name(),
                q.spur_db,
                q.ripple_db
            );
        }
    }

    // Streaming in 1024-frame chunks (the engine's way) and many streams batched.
    let (from, to) = (24000u32, 48000u32);
    let frames = secs * from as usize;
    let x: Vec<f32> = (0..frames).map(|i| (0.5 * (i as f64 * 0.0123).sin()) as f32).collect();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let mut r = Resampler::new(from, to).unwrap();
        let mut y = Vec::new();
        let t = Instant::now();
        for c in x.chunks(1024) {
            r.process(c, &mut y);
        }
        r.finish(&mut y);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("\nvoxkit 24000 → 48000 streamed in 1024-frame chunks, 1 thread: {:.0} × real time", secs as f64 / best);
    let streams = 8;
    let threads = rayon::current_num_threads();
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let mut rs: Vec<Resampler> = (0..streams).map(|_| Resampler::new(from, to).unwrap()).collect();
        let mut outs = vec![Vec::new(); streams];
        let t = Instant::now();
        for c in x.chunks(4096) {
            let mut refs: Vec<&mut Resampler> = rs.iter_mut().collect();
            let inputs = vec![c; streams];
            process_batch(&mut refs, &inputs, &mut outs).unwrap();
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "voxkit 24000 → 48000, {streams} streams through process_batch in 4096-frame chunks, {threads} threads: \
         {:.0} × real time in all",
        (streams * secs) as f64 / best
    );
}
