//! What this machine offers the engine: the CUDA driver (if any), its devices, and whether this
//! build runs inference on them. For `voxkit devices` and hosts that want to show a choice.

pub use crate::backend::cuda::{DriverStatus, GpuInfo};

#[derive(Clone, Debug)]
pub struct DeviceReport {
    pub driver: DriverStatus,
    pub gpus: Vec<GpuInfo>,
    /// Whether `Device::Auto`/`Device::Cuda` can run inference on a GPU in this build.
    pub cuda_backend: bool,
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
        cuda_backend: crate::backend::CUDA_AVAILABLE,
        required_driver: crate::backend::cuda::kernels::required_driver_version(),
    }
}
