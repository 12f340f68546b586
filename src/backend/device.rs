//! Devices and their selection.

use crate::error::Result;

/// Where inference runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// CUDA device 0 when it can run voxkit (a driver, compute capability 8.0 or newer), otherwise
    /// the CPU.
    Auto,
    Cpu,
    /// The CUDA device with this ordinal; creating the engine fails with `NoDevice` without one.
    Cuda(u32),
}

/// Resolves the requested device to the one inference will use. `Auto` falls back to the CPU (with
/// an info log saying why) when no usable GPU is present; an explicit CUDA request without one
/// fails with `NoDevice` and the reason. Never panics without a driver.
pub fn resolve(device: Device) -> Result<Device> {
    match device {
        Device::Cpu => Ok(Device::Cpu),
        // Usable, and it opens (a context, our kernels loaded): a GPU that passes the probe but
        // fails there still leaves the CPU.
        Device::Auto => match gpu0_opens() {
            Ok(()) => Ok(Device::Cuda(0)),
            Err(why) => {
                log::info!("running on the CPU: {why}");
                Ok(Device::Cpu)
            }
        },
        Device::Cuda(index) => super::cuda::usable(index).map(|_| Device::Cuda(index)),
    }
}

/// Whether GPU 0 passes the probe and opens (a context, our kernels loaded), asked once per process:
/// a full open costs the kernels' load (a JIT compile where no CUBIN fits), and its answer does not
/// change while the process runs.
fn gpu0_opens() -> std::result::Result<(), String> {
    static OPENS: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    OPENS
        .get_or_init(|| {
            super::cuda::usable(0).and_then(|_| super::cuda::Cuda::new(0)).map(|_| ()).map_err(|e| e.message)
        })
        .clone()
}
