//! Our kernels, compiled by NVRTC to PTX for `compute_80` (`scripts/kernels.sh`; the PTX under
//! `kernels/ptx/` is committed and CI fails when it is stale) and embedded here. A driver JIT-compiles
//! PTX for the GPU it loads on, so one PTX serves sm_80 and every newer architecture.

use super::ptx;

/// One `kernels/<name>.cu` file, as PTX.
#[derive(Clone, Copy, Debug)]
pub struct KernelModule {
    /// The file's stem.
    pub name: &'static str,
    pub ptx: &'static str,
}

macro_rules! module {
    ($name:literal) => {
        KernelModule { name: $name, ptx: include_str!(concat!("../../../kernels/ptx/", $name, ".ptx")) }
    };
}

/// Every kernel file (a test checks this against `kernels/*.cu`).
pub const MODULES: &[KernelModule] = &[
    module!("argmax"),
    module!("attention"),
    module!("conv"),
    module!("elementwise"),
    module!("linear"),
    module!("norm"),
    module!("rows"),
    module!("sample"),
];

impl KernelModule {
    /// The module of this name.
    pub fn named(name: &str) -> Option<&'static KernelModule> {
        MODULES.iter().find(|m| m.name == name)
    }

    /// The entry points and their parameters, read from the PTX.
    pub fn entries(&self) -> Vec<ptx::Entry> {
        ptx::entries(self.ptx)
    }

    /// The entry of this name.
    pub fn entry(&self, name: &str) -> Option<ptx::Entry> {
        self.entries().into_iter().find(|e| e.name == name)
    }
}

/// The oldest driver (as `cuDriverGetVersion` reports it, e.g. 12090) that reads every embedded
/// module's PTX ISA version.
pub fn required_driver_version() -> i32 {
    MODULES.iter().filter_map(|m| ptx::isa_version(m.ptx)).map(ptx::driver_for_isa).max().unwrap_or(0)
}
