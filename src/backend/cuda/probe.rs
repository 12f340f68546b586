//! Whether a usable CUDA driver is present, asked without touching anything that panics when it is
//! not (cudarc resolves the library and each symbol lazily and panics on a missing one).

use cudarc::driver::sys;

use super::kernels;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriverStatus {
    /// No `libcuda` on the library path.
    Missing,
    /// The driver failed to initialise (no device, a broken install): the `CUresult`'s name.
    Failed(String),
    /// A driver too old for the embedded PTX (`cuDriverGetVersion`'s number, and the one needed).
    TooOld {
        version: i32,
        required: i32,
    },
    Ready {
        version: i32,
        devices: i32,
    },
}

/// Loads and initialises the driver if it is there, and says what it found.
pub fn probe() -> DriverStatus {
    // SAFETY: probing opens the library by name and reports whether it could; nothing else.
    if !unsafe { sys::is_culib_present() } {
        return DriverStatus::Missing;
    }
    let mut version = 0;
    // SAFETY: the library is present; cuDriverGetVersion exists in every driver and writes one int.
    let r = unsafe { sys::cuDriverGetVersion(&mut version) };
    if r != sys::CUresult::CUDA_SUCCESS {
        return DriverStatus::Failed(format!("{r:?}"));
    }
    let required = kernels::required_driver_version();
    if version < required {
        return DriverStatus::TooOld { version, required };
    }
    if let Err(e) = cudarc::driver::result::init() {
        return DriverStatus::Failed(format!("{:?}", e.0));
    }
    match cudarc::driver::result::device::get_count() {
        Ok(0) => DriverStatus::Failed("CUDA_ERROR_NO_DEVICE".into()),
        Ok(devices) => DriverStatus::Ready { version, devices },
        Err(e) => DriverStatus::Failed(format!("{:?}", e.0)),
    }
}

/// One CUDA device as the driver describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuInfo {
    pub ordinal: i32,
    pub name: String,
    /// Compute capability (major, minor).
    pub capability: (i32, i32),
    pub memory_bytes: usize,
}

/// The devices of a ready driver (after `probe` said `Ready`); empty on any error.
pub fn devices(status: &DriverStatus) -> Vec<GpuInfo> {
    use cudarc::driver::result::device;
    use sys::CUdevice_attribute::{
        CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR as MAJOR, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR as MINOR,
    };
    let DriverStatus::Ready { devices, .. } = status else { return Vec::new() };
    (0..*devices)
        .filter_map(|ordinal| {
            let d = device::get(ordinal).ok()?;
            // SAFETY: `d` is a device handle of an initialised driver.
            let (major, minor, memory_bytes) = unsafe {
                (
                    device::get_attribute(d, MAJOR).ok()?,
                    device::get_attribute(d, MINOR).ok()?,
                    device::total_mem(d).ok()?,
                )
            };
            Some(GpuInfo { ordinal, name: device::get_name(d).ok()?, capability: (major, minor), memory_bytes })
        })
        .collect()
}
