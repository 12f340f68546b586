//! The CUDA backend of the compute layer, driven through cudarc's driver API (loaded at run time, so
//! voxkit builds and runs without a CUDA toolkit or driver).
//!
//! - `kernels`: our kernels' PTX, embedded; `ptx`: their entry signatures read back from it;
//!   `args`: kernel arguments checked against them before every launch; `probe`: the driver probe.
//! - `memory`: the backend's stream and its pool of device buffers; `gpu`: one device, its loaded
//!   kernels and checked launches; `backend`: `Cuda`, every op of `Backend` as our kernels, with
//!   `linear`, `conv`, `attention` and `select` (argmax, sampling) in their own files; `signal`: the
//!   post-processing launches (resampler, denoiser) that `dsp` drives.
//! - `regions` (`Backend::recorded`: which keys are recorded, replayed or given up) and `graph`
//!   (the pool's side: each op recorded under stream capture or checked against the recording,
//!   page-locked staging, arenas): steps replayed as CUDA graphs.
//!
//! None of it knows a model. Without a GPU, all of this runs against the emulated device
//! (`scripts/emulated-gpu.sh`, built from `tests/emugpu`), which executes the same kernel source on
//! the CPU.

pub mod args;
mod attention;
mod backend;
mod conv;
pub mod gpu;
mod graph;
pub mod kernels;
mod linear;
pub mod memory;
pub mod probe;
pub mod ptx;
mod regions;
mod select;
pub mod signal;

pub use args::{KernelArgs, launch};
pub use backend::Cuda;
pub use gpu::{MIN_CAPABILITY, usable};
pub use kernels::{KernelModule, MODULES};
pub use probe::{DriverStatus, GpuInfo, devices, probe};
pub use ptx::{Entry, Param, ParamClass};
