//! Our kernels through cudarc on a CUDA driver, against host computations: the same test set runs on
//! the emulated device (scripts/emulated-gpu.sh, every CI run) and on a real GPU (scripts/gpu-check.sh).
//! Ignored in a plain `cargo test`, which has no driver; scripts/test.sh runs them with --ignored.

#[path = "support/gpu.rs"]
mod gpu;

use cudarc::driver::LaunchConfig;
use cudarc::driver::sys;
use gpu::*;
use half::bf16;
use voxkit::backend::cuda::{DriverStatus, KernelArgs, MODULES, probe};

// Host references in f64. The GPU may use fused multiply-adds and approximate rsqrt/exp
// (2 ulp); the emulator uses exact CPU math: both agree with these to ~1e-6 relative.
const TOLERANCE: f64 = 2e-5;

fn rms_norm_host(x: &[f32], w: &[f32], cols: usize, eps: f32) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(cols) {
        let ms = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / cols as f64;
        let scale = 1.0 / (ms + eps as f64).sqrt();
        out.extend(row.iter().zip(w).map(|(v, w)| *v as f64 * scale * *w as f64));
    }
    out
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn the_driver_probe_finds_the_device() {
    match probe() {
        DriverStatus::Ready { version, devices } => assert!(version >= 12000 && devices >= 1),
        other => panic!("{other:?}"),
    }
}

/// The end-to-end path: context, allocation, copies, a kernel with shared memory and
/// shuffles from our embedded PTX, a stream, events, graph capture, replay and update.
#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn end_to_end_context_copies_kernel_events_graph() {
    let g = Gpu::new();
    let name = g.ctx.name().unwrap();
    let (major, minor) = g.ctx.compute_capability().unwrap();
    eprintln!("device: {name}, compute capability {major}.{minor}");
    assert!(major >= 8, "our PTX targets compute_80");

    let (rms, rms_entry) = g.kernel("norm", "rms_norm_f32");
    let (add, add_entry) = g.kernel("elementwise", "add_f32");
    let (rows, cols, eps) = (5usize, 777usize, 1e-6f32);
    let x = values(rows * cols, 1);
    let w = values(cols, 2);
    let dx = g.upload(&x);
    let dw = g.upload(&w);
    let dy = g.zeros::<f32>(rows * cols);
    let s = &g.stream;
    let rms_args = {
        let mut a = KernelArgs::new();
        a.ptr(addr(&dx, s)).ptr(addr(&dw, s)).ptr(addr(&dy, s)).i32(cols as i32).f32(eps);
        a
    };
    let cfg = blocks(rows as u32, 256, 0);

    // 1. One launch, timed with events.
    let start = g.ctx.new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT)).unwrap();
    let end = g.ctx.new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT)).unwrap();
    start.record(s).unwrap();
    g.launch(&rms, &rms_entry, cfg, &rms_args).unwrap();
    end.record(s).unwrap();
    end.synchronize().unwrap();
    let ms = start.elapsed_ms(&end).unwrap();
    let y = g.download(&dy);
    let err = max_rel_err(&y, &rms_norm_host(&x, &w, cols, eps), 1e-3);
    eprintln!("rms_norm_f32 {rows}×{cols}: max relative error {err:.2e}, {ms:.3} ms");
    assert!(err < TOLERANCE, "{err}");
    dump("e2e_rms_norm", &y);

    // 2. Capture y = rms_norm(x); y += x into a graph, replay it after changing x.
    let add_args = {
        let mut a = KernelArgs::new();
        a.ptr(addr(&dy, s)).ptr(addr(&dx, s)).i64((rows * cols) as i64);
        a
    };
    let add_cfg = blocks(((rows * cols) as u32).div_ceil(256), 256, 0);
    s.begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).unwrap();
    g.launch(&rms, &rms_entry, cfg, &rms_args).unwrap();
    g.launch(&add, &add_entry, add_cfg, &add_args).unwrap();
    let graph = s.end_capture(sys::CUgraphInstantiate_flags(0)).unwrap().expect("a graph");
    let host =
        |x: &[f32]| -> Vec<f64> { rms_norm_host(x, &w, cols, eps).iter().zip(x).map(|(a, b)| a + *b as f64).collect() };
    let mut dx = dx;
    for round in 0..3 {
        let x2 = values(rows * cols, 10 + round);
        s.memcpy_htod(&x2, &mut dx).unwrap();
        graph.launch().unwrap();
        s.synchronize().unwrap();
        let err = max_rel_err(&g.download(&dy), &host(&x2), 1.0);
        assert!(err < TOLERANCE, "replay {round}: {err}");
    }

    // 3. Update the instantiated graph from a capture with other pointers (same shape).
    let dx3 = g.upload(&values(rows * cols, 99));
    let dy3 = g.zeros::<f32>(rows * cols);
    let mut a3 = KernelArgs::new();
    a3.ptr(addr(&dx3, s)).ptr(addr(&dw, s)).ptr(addr(&dy3, s)).i32(cols as i32).f32(eps);
    let mut add3 = KernelArgs::new();
    add3.ptr(addr(&dy3, s)).ptr(addr(&dx3, s)).i64((rows * cols) as i64);
    s.begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).unwrap();
    g.launch(&rms, &rms_entry, cfg, &a3).unwrap();
    g.launch(&add, &add_entry, add_cfg, &add3).unwrap();
    let graph3 = s.end_capture(sys::CUgraphInstantiate_flags(0)).unwrap().expect("a graph");
    let mut info: sys::CUgraphExecUpdateResultInfo = unsafe { std::mem::zeroed() };
    // SAFETY: both handles are live; info is a valid out-parameter.
    let r = unsafe { sys::cuGraphExecUpdate_v2(graph.cu_graph_exec(), graph3.cu_graph(), &mut info) };
    assert_eq!(r, sys::CUresult::CUDA_SUCCESS);
    graph.launch().unwrap();
    s.synchronize().unwrap();
    let err = max_rel_err(&g.download(&dy3), &host(&values(rows * cols, 99)), 1.0);
    assert!(err < TOLERANCE, "updated graph: {err}");
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn every_embedded_entry_loads() {
    let g = Gpu::new();
    let mut n = 0;
    for m in MODULES {
        for e in m.entries() {
            g.kernel(m.name, &e.name);
            n += 1;
        }
    }
    assert!(n >= 7, "{n} entries");
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn rms_norm_over_shapes_and_block_sizes() {
    let g = Gpu::new();
    let (f, e) = g.kernel("norm", "rms_norm_f32");
    for (rows, cols) in [(1usize, 1usize), (3, 31), (2, 1024), (4, 2048), (1, 3000)] {
        for block in [32u32, 128, 1024] {
            let x = values(rows * cols, (rows * cols) as u64);
            let w = values(cols, 5);
            let (dx, dw, dy) = (g.upload(&x), g.upload(&w), g.zeros::<f32>(rows * cols));
            let mut a = KernelArgs::new();
            let s = &g.stream;
            a.ptr(addr(&dx, s)).ptr(addr(&dw, s)).ptr(addr(&dy, s)).i32(cols as i32).f32(1e-6);
            g.run(&f, &e, blocks(rows as u32, block, 0), &a);
            let y = g.download(&dy);
            let err = max_rel_err(&y, &rms_norm_host(&x, &w, cols, 1e-6), 1e-3);
            assert!(err < TOLERANCE, "{rows}×{cols} block {block}: {err}");
            dump(&format!("rms_norm_{rows}x{cols}_b{block}"), &y);
        }
    }
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn linear_bf16_against_the_host() {
    let g = Gpu::new();
    // The decode GEMV (one layer of the three it can fuse): rows of 1024 take the 16-byte path,
    // even ones the pair path, odd ones the scalar path.
    let (f, e) = g.kernel("linear", "linear_gemv_bf16");
    for (rows, inp, out, bias) in
        [(1usize, 64usize, 10usize, false), (3, 1024, 77, true), (8, 2, 33, true), (2, 33, 9, true)]
    {
        let x = values(rows * inp, 3);
        let w: Vec<bf16> = values(out * inp, 4).into_iter().map(bf16::from_f32).collect();
        let b = values(out, 6);
        let w_bits: Vec<u16> = w.iter().map(|v| v.to_bits()).collect();
        let (dx, dw, db, dy) = (g.upload(&x), g.upload(&w_bits), g.upload(&b), g.zeros::<f32>(rows * out));
        let s = &g.stream;
        let mut a = KernelArgs::new();
        a.ptr(addr(&dx, s)).ptr(addr(&dw, s)).ptr(if bias { addr(&db, s) } else { 0 }).ptr(addr(&dy, s));
        a.ptr(0).ptr(0).ptr(0).ptr(0).ptr(0).ptr(0); // no second or third layer
        a.i32(rows as i32).i32(inp as i32).i32(out as i32).i32(0).i32(0).i32(0); // outputs, no accumulate
        let warps_per_block = 4;
        g.run(&f, &e, blocks((out as u32).div_ceil(warps_per_block), 32 * warps_per_block, 0), &a);
        let y = g.download(&dy);
        let mut expect = vec![0f64; rows * out];
        for r in 0..rows {
            for o in 0..out {
                let dot: f64 = (0..inp).map(|k| x[r * inp + k] as f64 * w[o * inp + k].to_f64()).sum();
                expect[r * out + o] = dot + if bias { b[o] as f64 } else { 0.0 };
            }
        }
        let err = max_rel_err(&y, &expect, 1.0);
        assert!(err < 1e-5, "{rows}×{inp}→{out}: {err}");
        dump(&format!("linear_{rows}x{inp}x{out}"), &y);
    }
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn argmax_matches_the_cpu_reference_including_ties_and_nan() {
    let g = Gpu::new();
    let (f, e) = g.kernel("argmax", "argmax_f32");
    let cols = 3001;
    let mut rows: Vec<Vec<f32>> = Vec::new();
    rows.push(values(cols, 7));
    let mut tie = vec![1.0f32; cols];
    tie[5] = 3.0;
    tie[2900] = 3.0;
    rows.push(tie);
    let mut nan_first = values(cols, 8);
    nan_first[0] = f32::NAN;
    rows.push(nan_first);
    let mut nans = values(cols, 9);
    nans[17] = f32::NAN;
    nans[2000] = 50.0;
    rows.push(nans);
    rows.push(vec![f32::NEG_INFINITY; cols]);
    let flat: Vec<f32> = rows.concat();
    let (dl, dids) = (g.upload(&flat), g.zeros::<u32>(rows.len()));
    for block in [32u32, 256, 1024] {
        let s = &g.stream;
        let mut a = KernelArgs::new();
        a.ptr(addr(&dl, s)).ptr(addr(&dids, s)).i32(cols as i32);
        g.run(&f, &e, blocks(rows.len() as u32, block, 0), &a);
        let ids = g.download(&dids);
        let expect: Vec<u32> = rows.iter().map(|r| voxkit::backend::sampling::argmax(r)).collect();
        assert_eq!(ids, expect, "block {block}");
    }
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn elementwise_and_conversions() {
    let g = Gpu::new();
    let s = &g.stream;
    let n = 10_000usize;
    let (x, y) = (values(n, 11), values(n, 12));
    let cfg = blocks(7, 256, 0); // fewer threads than values: the grid-stride loops cover the rest

    let (add, add_e) = g.kernel("elementwise", "add_f32");
    let (dx, dy) = (g.upload(&x), g.upload(&y));
    let mut a = KernelArgs::new();
    a.ptr(addr(&dx, s)).ptr(addr(&dy, s)).i64(n as i64);
    g.run(&add, &add_e, cfg, &a);
    assert_eq!(g.download(&dx), x.iter().zip(&y).map(|(a, b)| a + b).collect::<Vec<_>>());

    let (silu, silu_e) = g.kernel("elementwise", "silu_mul_f32");
    let dg = g.upload(&x);
    let mut a = KernelArgs::new();
    a.ptr(addr(&dg, s)).ptr(addr(&dy, s)).i64(n as i64);
    g.run(&silu, &silu_e, cfg, &a);
    let expect: Vec<f64> = x.iter().zip(&y).map(|(g, u)| *g as f64 / (1.0 + (-*g as f64).exp()) * *u as f64).collect();
    let got = g.download(&dg);
    assert!(max_rel_err(&got, &expect, 1e-3) < TOLERANCE);
    dump("silu_mul", &got);

    // f32 → bf16 rounds to nearest even, as the half crate does; bf16 → f32 is exact.
    let mut special = vec![
        0.0f32,
        -0.0,
        1.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1.0 + 1.0 / 256.0, // a tie between two bf16 values: rounds to even (down)
        1.0 + 3.0 / 256.0, // a tie: rounds to even (up)
        3.3895314e38,
        f32::MIN_POSITIVE / 3.0,
    ];
    special.extend(values(1000, 13).iter().map(|v| v * 1e-3));
    let m = special.len();
    let (to_bf, to_bf_e) = g.kernel("elementwise", "f32_to_bf16");
    let (from_bf, from_bf_e) = g.kernel("elementwise", "bf16_to_f32");
    let dsrc = g.upload(&special);
    let dbf = g.zeros::<u16>(m);
    let dback = g.zeros::<f32>(m);
    let mut a = KernelArgs::new();
    a.ptr(addr(&dsrc, s)).ptr(addr(&dbf, s)).i64(m as i64);
    g.run(&to_bf, &to_bf_e, cfg, &a);
    let bits = g.download(&dbf);
    for (v, b) in special.iter().zip(&bits) {
        assert_eq!(*b, bf16::from_f32(*v).to_bits(), "{v:e}");
    }
    let mut a = KernelArgs::new();
    a.ptr(addr(&dbf, s)).ptr(addr(&dback, s)).i64(m as i64);
    g.run(&from_bf, &from_bf_e, cfg, &a);
    for (b, back) in bits.iter().zip(g.download(&dback)) {
        assert_eq!(back.to_bits(), bf16::from_bits(*b).to_f32().to_bits());
    }

    let (from_h, from_h_e) = g.kernel("elementwise", "f16_to_f32");
    let all: Vec<u16> = (0..=u16::MAX).filter(|b| !half::f16::from_bits(*b).is_nan()).collect();
    let dh = g.upload(&all);
    let dout = g.zeros::<f32>(all.len());
    let mut a = KernelArgs::new();
    a.ptr(addr(&dh, s)).ptr(addr(&dout, s)).i64(all.len() as i64);
    g.run(&from_h, &from_h_e, blocks(64, 256, 0), &a);
    for (b, f) in all.iter().zip(g.download(&dout)) {
        assert_eq!(f.to_bits(), half::f16::from_bits(*b).to_f32().to_bits(), "f16 {b:#06x}");
    }
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn launches_the_hardware_refuses_are_errors() {
    let g = Gpu::new();
    let (f, e) = g.kernel("elementwise", "add_f32");
    let d = g.zeros::<f32>(64);
    let s = &g.stream;
    let mut a = KernelArgs::new();
    a.ptr(addr(&d, s)).ptr(addr(&d, s)).i64(64);
    let too_big = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (1025, 1, 1), shared_mem_bytes: 0 };
    assert!(g.launch(&f, &e, too_big, &a).is_err());
    let deep = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (1, 1, 65), shared_mem_bytes: 0 };
    assert!(g.launch(&f, &e, deep, &a).is_err());
    let smem = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (32, 1, 1), shared_mem_bytes: 300 * 1024 };
    assert!(g.launch(&f, &e, smem, &a).is_err());
    // The context survives refused launches.
    g.run(&f, &e, blocks(1, 64, 0), &a);
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn synchronising_a_capturing_stream_invalidates_the_capture() {
    let g = Gpu::new();
    let s = &g.stream;
    s.begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).unwrap();
    assert!(s.synchronize().is_err());
    assert!(s.end_capture(sys::CUgraphInstantiate_flags(0)).is_err());
    // And the stream works afterwards.
    let d = g.upload(&[1.0f32, 2.0]);
    assert_eq!(g.download(&d), vec![1.0, 2.0]);
}

/// Pinned (page-locked) host memory both ways, as the audio read-back will use it.
#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn pinned_host_memory_round_trip() {
    let g = Gpu::new();
    let s = &g.stream;
    let n = 4096;
    // SAFETY: written before it is read; flags 0 (not write-combined: the host reads it back).
    let mut host = unsafe { g.ctx.alloc_pinned_with_flags::<f32>(n, 0) }.unwrap();
    host.as_mut_slice().unwrap().copy_from_slice(&values(n, 21));
    let mut dev = g.zeros::<f32>(n);
    s.memcpy_htod(&host, &mut dev).unwrap();
    let (f, e) = g.kernel("elementwise", "add_f32");
    let mut a = KernelArgs::new();
    a.ptr(addr(&dev, s)).ptr(addr(&dev, s)).i64(n as i64);
    g.run(&f, &e, blocks(16, 256, 0), &a);
    s.memcpy_dtoh(&dev, &mut host).unwrap();
    s.synchronize().unwrap();
    let want: Vec<f32> = values(n, 21).iter().map(|v| v + v).collect();
    assert_eq!(host.as_slice().unwrap(), &want[..]);
}
