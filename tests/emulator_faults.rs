//! What the emulated device catches that a GPU would not report, or would report only by faulting:
//! out-of-bounds writes, pointers to nothing, broken CUDA rules in a kernel, PTX that is stale or too
//! new for the driver, calls the emulator does not implement, uninitialised device memory. Emulator
//! only (scripts/emulated-gpu.sh sets VOXKIT_EMULATED_GPU); ignored in a plain `cargo test`.
//!
//! A kernel fault poisons the context for the rest of the process (as on a GPU), so each case runs in
//! a child process: the test `child` with EMU_CASE naming the case.

#[path = "support/gpu.rs"]
mod gpu;

use std::process::Command;

use cudarc::driver::sys;
use gpu::*;
use voxkit::backend::cuda::{DriverStatus, KernelArgs, KernelModule, probe};

const IGNORE: &str = "emulator only: run through scripts/emulated-gpu.sh";

struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run_case(case: &str, env: &[(&str, &str)]) -> Outcome {
    assert!(std::env::var("VOXKIT_EMULATED_GPU").is_ok(), "{IGNORE}");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child", "--ignored", "--nocapture", "--test-threads=1"]).env("EMU_CASE", case);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let o = Outcome {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    };
    assert!(o.ok, "case {case} failed:\n{}\n{}", o.stdout, o.stderr);
    o
}

/// Dispatches a case in a child process (does nothing without EMU_CASE).
#[test]
#[ignore = "emulator only: run through scripts/emulated-gpu.sh"]
fn child() {
    let Ok(case) = std::env::var("EMU_CASE") else { return };
    match case.as_str() {
        "out_of_bounds" => out_of_bounds(),
        "dangling_pointer" => dangling_pointer(),
        "broken_rule" => broken_rule(),
        "stale_ptx" => stale_ptx(),
        "ptx_too_new" => ptx_too_new(),
        "unsupported_call" => unsupported_call(),
        "uninitialised_memory" => uninitialised_memory(),
        "graph_outlives_memory" => graph_outlives_memory(),
        "graph_outlives_module" => graph_outlives_module(),
        "sizes_that_wrap" => sizes_that_wrap(),
        "pageable_copy_in_capture" => pageable_copy_in_capture(),
        other => panic!("no case {other}"),
    }
    println!("case {case} done");
}

fn add_args(g: &Gpu, x: &cudarc::driver::CudaSlice<f32>, y: &cudarc::driver::CudaSlice<f32>, n: i64) -> KernelArgs {
    let mut a = KernelArgs::new();
    a.ptr(addr(x, &g.stream)).ptr(addr(y, &g.stream)).i64(n);
    a
}

fn out_of_bounds() {
    let g = Gpu::new();
    let (f, e) = g.kernel("elementwise", "add_f32");
    // (x[64] += 1: a write of the byte values already there would go unseen by the canaries.)
    let (x, y) = (g.zeros::<f32>(64), g.upload(&[1.0f32; 65]));
    let err = g.launch(&f, &e, blocks(1, 128, 0), &add_args(&g, &x, &y, 65)).unwrap_err();
    assert!(err.to_string().contains("CUDA_ERROR_ILLEGAL_ADDRESS"), "{err}");
    // The fault is sticky: the context is unusable afterwards, as on a GPU.
    assert!(g.stream.alloc_zeros::<f32>(4).is_err());
}

fn dangling_pointer() {
    let g = Gpu::new();
    let (f, e) = g.kernel("elementwise", "add_f32");
    let x = g.zeros::<f32>(64);
    let mut a = KernelArgs::new();
    a.ptr(addr(&x, &g.stream)).ptr(0x7000_0000_1000).i64(64);
    let err = g.launch(&f, &e, blocks(1, 64, 0), &a).unwrap_err();
    assert!(err.to_string().contains("CUDA_ERROR_ILLEGAL_ADDRESS"), "{err}");
}

// rms_norm_f32 needs whole warps; 48 threads leave the second warp half empty, and its full-mask
// shuffles name lanes that do not exist: undefined behaviour on a GPU, a fault here.
fn broken_rule() {
    let g = Gpu::new();
    let (f, e) = g.kernel("norm", "rms_norm_f32");
    let (x, w, y) = (g.zeros::<f32>(100), g.zeros::<f32>(100), g.zeros::<f32>(100));
    let s = &g.stream;
    let mut a = KernelArgs::new();
    a.ptr(addr(&x, s)).ptr(addr(&w, s)).ptr(addr(&y, s)).i32(100).f32(1e-6);
    let err = g.launch(&f, &e, blocks(1, 48, 0), &a).unwrap_err();
    assert!(err.to_string().contains("CUDA_ERROR_LAUNCH_FAILED"), "{err}");
}

// PTX whose entry has a parameter more than the kernel source (a stale kernels/ptx file).
fn stale_ptx() {
    let g = Gpu::new();
    let m = KernelModule::named("norm").unwrap();
    let stale = m.ptx.replacen(
        ".param .f32 rms_norm_f32_param_4",
        ".param .f32 rms_norm_f32_param_4,\n\t.param .u32 rms_norm_f32_param_5",
        1,
    );
    assert_ne!(stale, m.ptx);
    let module = g.ctx.load_module(cudarc::nvrtc::Ptx::from_src(stale)).unwrap();
    let err = module.load_function("rms_norm_f32").unwrap_err();
    assert!(format!("{err:?}").contains("CUDA_ERROR_INVALID_IMAGE"), "{err:?}");
}

// Our PTX (ISA 8.2, NVRTC 12.2) on a 12.1 driver.
fn ptx_too_new() {
    assert_eq!(probe(), DriverStatus::TooOld { version: 12010, required: 12020 });
    let g = Gpu::new();
    let err = g.ctx.load_module(cudarc::nvrtc::Ptx::from_src(KernelModule::named("argmax").unwrap().ptx)).unwrap_err();
    assert!(format!("{err:?}").contains("CUDA_ERROR_UNSUPPORTED_PTX_VERSION"), "{err:?}");
}

fn unsupported_call() {
    let _g = Gpu::new();
    let mut p = 0u64;
    // SAFETY: a valid out-parameter; the emulator does not implement managed memory.
    let r = unsafe { sys::cuMemAllocManaged(&mut p, 1024, 1) };
    assert_eq!(r, sys::CUresult::CUDA_ERROR_NOT_SUPPORTED);
}

fn uninitialised_memory() {
    let g = Gpu::new();
    // SAFETY: read back as raw bits only.
    let d = unsafe { g.stream.alloc::<u32>(16) }.unwrap();
    assert!(g.download(&d).iter().all(|v| *v == 0xffff_ffff), "fresh device memory is poisoned");
}

// A graph replayed after the buffer its kernel writes was freed: a fault, never a write into freed
// host memory (the pointer is checked when the node runs, not only when it was captured).
fn graph_outlives_memory() {
    let g = Gpu::new();
    let (f, e) = g.kernel("elementwise", "add_f32");
    let x = g.zeros::<f32>(64);
    let y = g.upload(&[1.0f32; 64]);
    let s = &g.stream;
    s.begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).unwrap();
    g.launch(&f, &e, blocks(1, 64, 0), &add_args(&g, &x, &y, 64)).unwrap();
    let graph = s.end_capture(sys::CUgraphInstantiate_flags(0)).unwrap().unwrap();
    drop(x);
    s.synchronize().unwrap();
    let err = graph.launch().unwrap_err();
    assert!(format!("{err:?}").contains("CUDA_ERROR_ILLEGAL_ADDRESS"), "{err:?}");
}

// A graph whose kernel's module was unloaded: an error, not a crash.
fn graph_outlives_module() {
    let g = Gpu::new();
    let x = g.zeros::<f32>(64);
    let y = g.upload(&[1.0f32; 64]);
    let s = &g.stream;
    let graph = {
        let (f, e) = g.kernel("elementwise", "add_f32");
        s.begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).unwrap();
        g.launch(&f, &e, blocks(1, 64, 0), &add_args(&g, &x, &y, 64)).unwrap();
        s.end_capture(sys::CUgraphInstantiate_flags(0)).unwrap().unwrap()
    }; // the function and its module are dropped here: cuModuleUnload
    let err = graph.launch().unwrap_err();
    assert!(format!("{err:?}").contains("CUDA_ERROR_INVALID_HANDLE"), "{err:?}");
}

// A graph's copy node reads its host memory at every launch, so only page-locked memory can be
// captured: a copy from pageable memory is refused and invalidates the capture, as on a GPU; one
// from page-locked memory is replayed with what the memory holds at launch.
fn pageable_copy_in_capture() {
    let g = Gpu::new();
    let x = g.zeros::<f32>(4);
    let s = &g.stream;
    let dst = addr(&x, s);
    let host = [1.0f32; 4];
    s.begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED).unwrap();
    // SAFETY: a capture on our stream; `x` holds 16 bytes.
    let err = unsafe { cudarc::driver::result::memcpy_htod_async(dst, &host, s.cu_stream()) }.unwrap_err();
    assert!(format!("{err:?}").contains("STREAM_CAPTURE_UNSUPPORTED"), "{err:?}");
    assert!(s.end_capture(sys::CUgraphInstantiate_flags(0)).is_err(), "the capture was not invalidated");
    // Page-locked: captured, and the launch copies what the memory holds then.
    let pinned = unsafe { cudarc::driver::result::malloc_host(16, 0) }.unwrap() as *mut f32;
    s.begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED).unwrap();
    // SAFETY: 16 page-locked bytes, alive until freed below, after the launch has been waited for.
    unsafe {
        let src = std::slice::from_raw_parts(pinned as *const f32, 4);
        cudarc::driver::result::memcpy_htod_async(dst, src, s.cu_stream()).unwrap();
    }
    let graph = s.end_capture(sys::CUgraphInstantiate_flags(0)).unwrap().unwrap();
    unsafe { std::slice::from_raw_parts_mut(pinned, 4).copy_from_slice(&[7.0; 4]) };
    graph.launch().unwrap();
    assert_eq!(s.clone_dtoh(&x).unwrap(), vec![7.0; 4]);
    unsafe { cudarc::driver::result::free_host(pinned as *mut std::ffi::c_void) }.unwrap();
}

// Sizes chosen so that pointer + size wraps around: INVALID_VALUE, not a copy over the heap.
fn sizes_that_wrap() {
    let g = Gpu::new();
    let x = g.zeros::<u8>(64);
    let p = addr(&x, &g.stream);
    let host = [0u8; 64];
    let mut back = [0u8; 64];
    // SAFETY: the driver must refuse these sizes before touching either pointer.
    unsafe {
        assert_eq!(sys::cuMemcpyHtoD_v2(p, host.as_ptr().cast(), usize::MAX), sys::CUresult::CUDA_ERROR_INVALID_VALUE);
        assert_eq!(
            sys::cuMemcpyDtoH_v2(back.as_mut_ptr().cast(), p, usize::MAX - p as usize + 8),
            sys::CUresult::CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(sys::cuMemsetD32_v2(p, 0, (1usize << 62) + 1), sys::CUresult::CUDA_ERROR_INVALID_VALUE);
    }
    // An empty view just past the end is a valid argument (nothing is dereferenced).
    let (f, e) = g.kernel("elementwise", "add_f32");
    let mut a = KernelArgs::new();
    a.ptr(p + 64).ptr(p + 64).i64(0);
    g.run(&f, &e, blocks(1, 32, 0), &a);
}

#[test]
#[ignore = "emulator only: run through scripts/emulated-gpu.sh"]
fn a_graph_replayed_after_its_memory_was_freed_faults() {
    run_case("graph_outlives_memory", &[]);
}

#[test]
#[ignore = "emulator only: run through scripts/emulated-gpu.sh"]
fn a_graph_replayed_after_its_module_was_unloaded_is_an_error() {
    run_case("graph_outlives_module", &[]);
}

#[test]
#[ignore = "emulator only: run through scripts/emulated-gpu.sh"]
fn a_copy_from_pageable_memory_cannot_be_captured() {
    run_case("pageable_copy_in_capture", &[]);
}

#[test]
#[ignore = "emulator only: run through scripts/emulated-gpu.sh"]
fn sizes_that_wrap_around_are_refused() {
    run_case("sizes_that_wrap", &[]);
}

#[test]
#[ignore = "emulator only: run through scripts/emulated-gpu.sh"]
fn an_out_of_bounds_write_faults() {
    let o = run_case("out_of_bounds", &[]);
    assert!(o.stderr.contains("wrote out of bounds") && o.stderr.contains("0 bytes past its end"), "{}", o.stderr);
}

#[test]
#[ignore = "emulator only: run through scripts/emulated-gpu.sh"]
fn a_pointer_to_no_allocation_faults() {
    let o = run_case("dangling_pointer", &[]);
    assert!(o.stderr.contains("argument 1 is a pointer"), "{}", o.stderr);
}

#[test]
#[ignore = "emulator only: run through scripts/emulated-gpu.sh"]
fn a_kernel_breaking_a_cuda_rule_faults() {
    let o = run_case("broken_rule", &[]);
    assert!(o.stderr.contains("does not exist in this block") && o.stderr.contains("common.cuh"), "{}", o.stderr);
}

#[test]
#[ignore = "emulator only: run through scripts/emulated-gpu.sh"]
fn stale_ptx_is_refused() {
    let o = run_case("stale_ptx", &[]);
    assert!(o.stderr.contains("differ from the CPU build"), "{}", o.stderr);
}

#[test]
#[ignore = "emulator only: run through scripts/emulated-gpu.sh"]
fn ptx_newer_than_the_driver_is_refused() {
    let o = run_case("ptx_too_new", &[("VOXKIT_EMU_DRIVER_VERSION", "12010")]);
    assert!(o.stderr.contains("newer than this driver"), "{}", o.stderr);
}

#[test]
#[ignore = "emulator only: run through scripts/emulated-gpu.sh"]
fn a_call_not_emulated_is_an_error_not_a_crash() {
    // Its own calls file: the suite's list must show no unsupported call.
    let o = run_case("unsupported_call", &[("VOXKIT_EMU_CALLS", "/dev/null")]);
    assert!(o.stderr.contains("cuMemAllocManaged is not emulated"), "{}", o.stderr);
}

#[test]
#[ignore = "emulator only: run through scripts/emulated-gpu.sh"]
fn device_memory_starts_poisoned() {
    run_case("uninitialised_memory", &[]);
}
