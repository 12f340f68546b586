//! One CUDA device as a backend sees it: its context and stream (in the memory pool), our kernels
//! loaded from the embedded PTX, and checked launches.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaModule, LaunchConfig};

use super::args::{KernelArgs, launch};
use super::graph::{Hook, Launch, Node};
use super::kernels::MODULES;
use super::memory::{OrRaise, Pool, driver_error};
use super::probe::{DriverStatus, GpuInfo, devices, probe};
use super::ptx::Entry;
use crate::error::{Error, ErrorKind, Result};

/// The oldest GPUs voxkit runs on: compute capability 8.0 (Ampere: bf16 arithmetic).
pub const MIN_CAPABILITY: (i32, i32) = (8, 0);

/// Most bytes of idle device buffers a backend keeps for reuse.
const POOL_IDLE_BYTES: usize = 1 << 30;

/// Whether CUDA device `ordinal` can run voxkit, and what it is; the reason when not.
pub fn usable(ordinal: u32) -> Result<GpuInfo> {
    let no = |why: String| Error::new(ErrorKind::NoDevice, format!("CUDA device {ordinal}: {why}"));
    let status = probe();
    match &status {
        DriverStatus::Missing => return Err(no("no CUDA driver (libcuda.so.1) was found".into())),
        DriverStatus::Failed(e) => return Err(no(format!("the CUDA driver failed to start ({e})"))),
        DriverStatus::TooOld { version, required } => {
            return Err(no(format!("the CUDA driver is version {version}; voxkit's kernels need {required} or newer")));
        }
        DriverStatus::Ready { devices, .. } if ordinal as i64 >= *devices as i64 => {
            return Err(no(format!("the driver reports {devices} device(s)")));
        }
        DriverStatus::Ready { .. } => {}
    }
    let info = devices(&status)
        .into_iter()
        .find(|g| g.ordinal as i64 == ordinal as i64)
        .ok_or_else(|| no("the driver could not describe it".into()))?;
    if info.capability < MIN_CAPABILITY {
        return Err(no(format!(
            "{} has compute capability {}.{}; voxkit needs {}.{} or newer",
            info.name, info.capability.0, info.capability.1, MIN_CAPABILITY.0, MIN_CAPABILITY.1
        )));
    }
    Ok(info)
}

pub struct Gpu {
    pub info: GpuInfo,
    pub pool: Arc<Pool>,
    functions: HashMap<String, (CudaFunction, Entry)>,
    _modules: Vec<Arc<CudaModule>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({} {}, {:?})", self.info.ordinal, self.info.name, self.pool)
    }
}

impl Gpu {
    /// Opens device `ordinal` (after `usable` said yes): its primary context, a stream, our kernels.
    pub fn open(ordinal: u32) -> Result<Gpu> {
        let info = usable(ordinal)?;
        let ctx = CudaContext::new(ordinal as usize).map_err(|e| driver_error("context", e))?;
        // One stream per backend, ordered by construction: cudarc's per-buffer events are not
        // needed, and they are illegal while a stream is captured into a graph.
        // SAFETY: before any allocation on this context by this backend; our buffers are raw
        // allocations that cudarc does not track.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(|e| driver_error("stream", e))?;
        let mut functions = HashMap::new();
        let mut modules = Vec::new();
        for m in MODULES {
            // The CUBIN for this GPU's architecture when there is one (no JIT compile at start-up),
            // else — or when the driver refuses it — the PTX, which the driver compiles for any GPU
            // from sm_80 on.
            let cubin = m.cubin_for(info.capability).and_then(|(sm, bytes)| {
                match ctx.load_module(cudarc::nvrtc::Ptx::from_binary(bytes.to_vec())) {
                    Ok(module) => Some(module),
                    Err(e) => {
                        log::debug!("kernels/{}.cu: the sm_{sm} CUBIN did not load ({e}); using the PTX", m.name);
                        None
                    }
                }
            });
            let module = match cubin {
                Some(module) => module,
                None => ctx
                    .load_module(cudarc::nvrtc::Ptx::from_src(m.ptx))
                    .map_err(|e| driver_error(&format!("loading kernels/{}.cu", m.name), e))?,
            };
            for entry in m.entries() {
                let f = module.load_function(&entry.name).map_err(|e| driver_error(&entry.name, e))?;
                functions.insert(entry.name.clone(), (f, entry));
            }
            modules.push(module);
        }
        Ok(Gpu { info, pool: Pool::new(ctx, stream, POOL_IDLE_BYTES), functions, _modules: modules })
    }

    /// Launches kernel `name` with checked arguments. A failure (an argument that does not fit the
    /// kernel, a faulted device) is raised (`memory::raise`): the engine's worker turns it into
    /// failed jobs and a reload.
    pub fn launch(&self, name: &str, grid: (u32, u32, u32), block: u32, smem: u32, args: &KernelArgs) {
        let (f, entry) = self.functions.get(name).unwrap_or_else(|| panic!("no kernel {name} is embedded"));
        let _one = self.pool.exclusive.lock();
        if self.pool.in_region() {
            args.check(entry).or_raise();
            let node =
                Launch { function: f.cu_function(), grid, block: (block, 1, 1), smem, args: args.values().to_vec() };
            if let Hook::Skip = self.pool.region_op(Node::Launch(node)).or_raise() {
                return;
            }
        }
        let config = LaunchConfig { grid_dim: grid, block_dim: (block, 1, 1), shared_mem_bytes: smem };
        // SAFETY: every op sizes its buffers for its launch and keeps them alive until the stream
        // has run it (buffers return to the pool in stream order).
        self.pool.captured(|| unsafe { launch(self.pool.stream(), f, entry, config, args) }).or_raise();
    }
}
