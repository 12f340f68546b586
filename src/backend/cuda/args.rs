//! Kernel arguments, checked against the entry's PTX parameters before every launch. The driver
//! takes one untyped pointer per argument and reads as many bytes as the kernel declares, so an
//! argument of the wrong size or kind (an `i64` for an `int`, an `i32` for a `float`) is silent
//! undefined behaviour on a GPU; here it is an error naming the kernel and the argument.

use cudarc::driver::{CudaFunction, CudaStream, DriverError, LaunchConfig};
use std::ffi::c_void;

use super::ptx::{Entry, Param, ParamClass};
use crate::error::{Error, ErrorKind, Result};

/// The values of one launch's arguments, in order.
#[derive(Clone, Debug, Default)]
pub struct KernelArgs {
    values: Vec<u64>,
    params: Vec<Param>,
}

impl KernelArgs {
    pub fn new() -> KernelArgs {
        KernelArgs::default()
    }

    fn push(&mut self, bits: u64, class: ParamClass, bytes: usize) -> &mut Self {
        self.values.push(bits);
        self.params.push(Param { class, bytes });
        self
    }

    /// A device address (a `T*` parameter).
    pub fn ptr(&mut self, address: u64) -> &mut Self {
        self.push(address, ParamClass::Integer, 8)
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.push(v as u32 as u64, ParamClass::Integer, 4)
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.push(v as u64, ParamClass::Integer, 4)
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.push(v as u64, ParamClass::Integer, 8)
    }
    pub fn f32(&mut self, v: f32) -> &mut Self {
        self.push(v.to_bits() as u64, ParamClass::Float, 4)
    }

    /// The arguments' values (each widened to 64 bits), in order.
    pub fn values(&self) -> &[u64] {
        &self.values
    }

    /// Whether these arguments fit the entry: the same count, and each the size and kind PTX declares.
    pub fn check(&self, entry: &Entry) -> Result<()> {
        if self.params.len() != entry.params.len() {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "kernel {}: {} arguments given, its PTX declares {}",
                    entry.name,
                    self.params.len(),
                    entry.params.len()
                ),
            ));
        }
        for (i, (given, declared)) in self.params.iter().zip(&entry.params).enumerate() {
            if given != declared {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!(
                        "kernel {}: argument {i} is {} bytes ({:?}), its PTX declares {} bytes ({:?})",
                        entry.name, given.bytes, given.class, declared.bytes, declared.class
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Launches `function` (the entry `entry`) on `stream` with `args`, after checking them.
///
/// # Safety
/// The kernel reads and writes device memory through the pointers among `args`: they must be live
/// allocations of the sizes the kernel expects for `config`, not in use by the host meanwhile.
pub unsafe fn launch(
    stream: &CudaStream,
    function: &CudaFunction,
    entry: &Entry,
    config: LaunchConfig,
    args: &KernelArgs,
) -> Result<()> {
    args.check(entry)?;
    // (The driver only reads through these pointers: it copies the values before returning.)
    let mut pointers: Vec<*mut c_void> = args.values.iter().map(|v| v as *const u64 as *mut c_void).collect();
    let driver = |e: DriverError| Error::new(ErrorKind::Inference, format!("kernel {}: {e}", entry.name));
    stream.context().bind_to_thread().map_err(driver)?;
    // SAFETY: the arguments match the entry's parameters (checked above); the caller guarantees
    // the memory they point to. The driver copies the values before returning.
    unsafe {
        cudarc::driver::result::launch_kernel(
            function.cu_function(),
            config.grid_dim,
            config.block_dim,
            config.shared_mem_bytes,
            stream.cu_stream(),
            &mut pointers,
        )
    }
    .map_err(driver)
}
