//! What this machine offers the engine: the CUDA driver (if any), its devices, and whether this
//! build runs inference on them. For `voxkit devices` and hosts that want to show a choice.

pub use crate::backend::cuda::{DriverStatus, GpuInfo};

#[derive(Clone, Debug)]
pub struct DeviceReport {
    pub driver: DriverStatus,
    pub gpus: Vec<GpuInfo>,
    /// Where `Device::Auto` runs inference: the GPU it takes, or why it falls back to the CPU.
    pub auto: std::result::Result<GpuInfo, String>,
    /// The driver version the embedded kernels need (`cuDriverGetVersion`'s number).
    pub required_driver: i32,
}

/// Probes the driver (never panics without one) and lists its devices.
pub fn report() -> DeviceReport {
    let driver = crate::backend::cuda::probe();
    let gpus = crate::backend::cuda::devices(&driver);
    DeviceReport {
        driver,
        gpus,
        auto: crate::backend::cuda::usable(0).map_err(|e| e.message),
        required_driver: crate::backend::cuda::kernels::required_driver_version(),
    }
}
