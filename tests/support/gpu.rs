//! Helpers for the tests that run our kernels through cudarc on a CUDA driver: the emulated device
//! (`scripts/emulated-gpu.sh`) or a real GPU (`scripts/gpu-check.sh`).
#![allow(dead_code)]

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig};
use voxkit::backend::cuda::{Entry, KernelArgs, KernelModule};

pub const NEEDS_DRIVER: &str =
    "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)";

pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
}

impl Gpu {
    /// The device's primary context with cudarc's cross-stream event tracking off (as the backend
    /// runs it: one stream per engine, ordered by construction; tracking is illegal during capture).
    pub fn new() -> Gpu {
        let ctx = CudaContext::new(0).expect("a CUDA device");
        // SAFETY: before any allocation; every test uses one stream.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().expect("a stream");
        Gpu { ctx, stream }
    }

    /// The function `entry` of our embedded module `module`, and its PTX signature.
    pub fn kernel(&self, module: &str, entry: &str) -> (CudaFunction, Entry) {
        let m = KernelModule::named(module).unwrap_or_else(|| panic!("no kernel module {module}"));
        self.kernel_in(m.ptx, entry)
    }

    /// The function `entry` of a PTX module given as text (the emulator's feature kernels).
    pub fn kernel_in(&self, ptx: &str, entry: &str) -> (CudaFunction, Entry) {
        let loaded = self.ctx.load_module(cudarc::nvrtc::Ptx::from_src(ptx)).expect("the PTX loads");
        let f = loaded.load_function(entry).unwrap_or_else(|e| panic!("{entry}: {e}"));
        let e = voxkit::backend::cuda::ptx::entries(ptx).into_iter().find(|e| e.name == entry).expect("the entry");
        (f, e)
    }

    pub fn upload<T: DeviceRepr>(&self, v: &[T]) -> CudaSlice<T> {
        self.stream.clone_htod(v).expect("upload")
    }

    pub fn download<T: DeviceRepr + Default + Clone>(&self, d: &CudaSlice<T>) -> Vec<T> {
        self.stream.clone_dtoh(d).expect("download")
    }

    pub fn zeros<T: DeviceRepr + cudarc::driver::ValidAsZeroBits>(&self, n: usize) -> CudaSlice<T> {
        self.stream.alloc_zeros(n).expect("alloc")
    }

    /// Launches with checked arguments and waits for the result.
    pub fn run(&self, f: &CudaFunction, e: &Entry, config: LaunchConfig, args: &KernelArgs) {
        self.launch(f, e, config, args).unwrap_or_else(|err| panic!("{}: {err}", e.name));
        self.stream.synchronize().unwrap_or_else(|err| panic!("{}: {err}", e.name));
    }

    pub fn launch(&self, f: &CudaFunction, e: &Entry, config: LaunchConfig, args: &KernelArgs) -> voxkit::Result<()> {
        // SAFETY: every test sizes its buffers for its launch.
        unsafe { voxkit::backend::cuda::launch(&self.stream, f, e, config, args) }
    }
}

pub fn addr<T>(s: &CudaSlice<T>, stream: &CudaStream) -> u64 {
    s.device_ptr(stream).0
}

pub fn blocks(grid: u32, block: u32, smem: u32) -> LaunchConfig {
    LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (block, 1, 1), shared_mem_bytes: smem }
}

/// Writes `values` to `$VOXKIT_KERNEL_DUMP/<name>.f32` when that is set, so that scripts/gpu-check.sh
/// can compare the emulator's outputs with a GPU's.
pub fn dump(name: &str, values: &[f32]) {
    if let Ok(dir) = std::env::var("VOXKIT_KERNEL_DUMP") {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.f32")), bytes).unwrap();
    }
}

/// Like `dump`, for values compared bit for bit (`<name>.u32`).
pub fn dump_u32(name: &str, values: &[u32]) {
    if let Ok(dir) = std::env::var("VOXKIT_KERNEL_DUMP") {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.u32")), bytes).unwrap();
    }
}

/// Deterministic test values in about [-2, 2].
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

/// The largest |a − b| / (|b| + floor) over two equally long slices.
pub fn max_rel_err(a: &[f32], b: &[f64], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs() / (y.abs() + floor)).fold(0.0, f64::max)
}
