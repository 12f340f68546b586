//! Compute backends. The CPU backend is the numeric reference; the CUDA backend (kernels under
//! `kernels/`, driven through cudarc) is a later addition and implements the same operations, so
//! the models are written once against this layer.

pub mod cpu;
pub mod tensor;

pub use cpu::Cpu;
pub use tensor::{DType, Tensor, Weight, WeightData};

use crate::engine::config::Device;
use crate::error::{Error, ErrorKind, Result};

/// Whether this build can drive CUDA devices.
pub const CUDA_AVAILABLE: bool = false;

/// Resolves the requested device to the one inference will use. `Auto` falls back to the CPU when
/// no usable GPU is present; an explicit CUDA request without one fails with `NoDevice`.
pub fn resolve(device: Device) -> Result<Device> {
    match device {
        Device::Cpu => Ok(Device::Cpu),
        Device::Auto => Ok(if CUDA_AVAILABLE { Device::Cuda(0) } else { Device::Cpu }),
        Device::Cuda(index) => Err(Error::new(
            ErrorKind::NoDevice,
            format!("CUDA device {index} was requested, but this build of voxkit has no CUDA backend"),
        )),
    }
}
