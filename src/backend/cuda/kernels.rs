//! Our kernels, compiled by NVRTC to PTX for `compute_80` (`scripts/kernels.sh`; the PTX under
//! `kernels/ptx/` is committed and CI fails when it is stale) and embedded here. A driver JIT-compiles
//! PTX for the GPU it loads on, so one PTX serves sm_80 and every newer architecture.

use super::ptx;

/// One `kernels/<name>.cu` file, as PTX and as CUBINs for the architectures NVRTC compiled it for.
#[derive(Clone, Copy, Debug)]
pub struct KernelModule {
    /// The file's stem.
    pub name: &'static str,
    pub ptx: &'static str,
    /// (sm_XY as XY, the CUBIN) for sm_80, sm_86, sm_89, sm_90.
    pub cubins: &'static [(i32, &'static [u8])],
}

macro_rules! module {
    ($name:literal) => {
        KernelModule {
            name: $name,
            ptx: include_str!(concat!("../../../kernels/ptx/", $name, ".ptx")),
            cubins: &[
                (80, include_bytes!(concat!("../../../kernels/cubin/", $name, ".sm_80.cubin"))),
                (86, include_bytes!(concat!("../../../kernels/cubin/", $name, ".sm_86.cubin"))),
                (89, include_bytes!(concat!("../../../kernels/cubin/", $name, ".sm_89.cubin"))),
                (90, include_bytes!(concat!("../../../kernels/cubin/", $name, ".sm_90.cubin"))),
            ],
        }
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
    module!("signal"),
];

impl KernelModule {
    /// The module of this name.
    pub fn named(name: &str) -> Option<&'static KernelModule> {
        MODULES.iter().find(|m| m.name == name)
    }

    /// The CUBIN a GPU of compute capability (major, minor) runs: the newest one of the same major
    /// version not newer than the GPU (a CUBIN runs on later minor versions of its major only).
    pub fn cubin_for(&self, capability: (i32, i32)) -> Option<(i32, &'static [u8])> {
        let (major, minor) = capability;
        self.cubins.iter().copied().filter(|&(sm, _)| sm / 10 == major && sm % 10 <= minor).max_by_key(|&(sm, _)| sm)
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
