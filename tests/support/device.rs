//! The backend the model tests run on: the CPU (the reference), or CUDA device 0 when
//! VOXKIT_TEST_DEVICE=cuda — the emulated device in CI (scripts/emulator-check.sh), a GPU through
//! scripts/gpu-check.sh. The same parity fixtures then check the CUDA backend end to end.
#![allow(dead_code)]

use voxkit::backend::{Compute, Cuda, Device};

/// Whether the model tests were asked to run on CUDA.
pub fn on_cuda() -> bool {
    std::env::var("VOXKIT_TEST_DEVICE").is_ok_and(|d| d == "cuda")
}

pub fn compute(cpu_threads: usize) -> Compute {
    if on_cuda() {
        Cuda::new(0).unwrap_or_else(|e| panic!("VOXKIT_TEST_DEVICE=cuda: {}", e.message)).into()
    } else {
        Compute::cpu(cpu_threads).unwrap()
    }
}

/// The engine device of the same choice.
pub fn device() -> Device {
    if on_cuda() { Device::Cuda(0) } else { Device::Cpu }
}
