//! Devices and their selection.

use crate::error::{Error, ErrorKind, Result};

/// Where inference runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// CUDA when a usable GPU and driver are present, otherwise the CPU.
    Auto,
    Cpu,
    /// The CUDA device with this ordinal; creating the engine fails with `NoDevice` without one.
    Cuda(u32),
}

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
