//! The CUDA side of the compute layer, driven through cudarc's driver API (loaded at run time, so
//! voxkit builds and runs without a CUDA toolkit or driver).
//!
//! What is here so far: our kernels' PTX, embedded (`kernels`); their entry signatures read back
//! from that PTX (`ptx`); kernel arguments checked against them before every launch (`args`); and
//! the driver probe (`probe`). The backend's ops on top of these are the next step. None of it
//! knows a model.
//!
//! Without a GPU, all of this runs against the emulated device (`scripts/emulated-gpu.sh`, built
//! from `tests/emugpu`), which executes the same kernel source on the CPU.

pub mod args;
pub mod kernels;
pub mod probe;
pub mod ptx;

pub use args::{KernelArgs, launch};
pub use kernels::{KernelModule, MODULES};
pub use probe::{DriverStatus, GpuInfo, devices, probe};
pub use ptx::{Entry, Param, ParamClass};
