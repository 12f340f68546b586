//! Device memory: one stream per backend, and a pool of device buffers kept by size, so that once a
//! step loop has run, its tensors reuse the same device memory every step (as the CPU's `Scratch`).
//! Every operation is ordered on the backend's one stream, so a buffer dropped by one op may be
//! handed to the next at once: the stream runs the old reader before the new writer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use cudarc::driver::result as cu;
use cudarc::driver::{CudaContext, CudaStream, DriverError};
use parking_lot::Mutex;

use super::graph::{Hook, Mode, Node, Recording};
use crate::backend::scratch::size_class;
use crate::error::{Error, ErrorKind, Result};

/// A driver error as the library's error (out of memory becomes `OutOfMemory`).
pub fn driver_error(what: &str, e: DriverError) -> Error {
    let kind = if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
        ErrorKind::OutOfMemory
    } else {
        ErrorKind::Inference
    };
    Error::new(kind, format!("CUDA {what}: {e}"))
}

/// Ends an op that the device failed (out of memory, a faulted context). The ops are infallible, as
/// on the CPU, so the failure unwinds with the `Error` as its payload (no panic message is printed):
/// the engine's worker catches it and fails the batch's jobs with the error's own kind
/// (`OutOfMemory`, `Inference`), then reloads the models.
pub fn raise(e: Error) -> ! {
    std::panic::resume_unwind(Box::new(e))
}

/// `raise` for results.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| raise(e))
    }
}

/// Plain values that cross between host and device as raw bytes (every bit pattern valid, no
/// padding): tables, token ids.
pub trait Plain: Copy {}
impl Plain for i32 {}
impl Plain for u32 {}
impl Plain for u64 {}
impl Plain for f32 {}

/// Host values (integers, floats: no padding) seen as their bytes, for a copy.
pub(super) fn as_bytes<T: Copy>(v: &[T]) -> &[u8] {
    // SAFETY: the callers' element types are plain numbers without padding, so every byte is
    // initialised; the slice covers exactly the elements' bytes.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

/// Bytes of page-locked host memory a pool keeps for reading small results back (token ids).
const PINNED_BYTES: usize = 64 << 10;

/// Page-locked, not write-combined host memory (`cuMemHostAlloc` with no flags): the device copies
/// into it directly, and the host reads it at full speed.
struct Pinned(*mut std::ffi::c_void);
// SAFETY: a plain allocation owned by the pool, used only under the pool's mutex.
unsafe impl Send for Pinned {}

/// The backend's context, its one stream, and its pool of idle buffers.
pub struct Pool {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    pinned: Mutex<Option<Pinned>>,
    free: Mutex<HashMap<usize, Vec<u64>>>,
    idle_bytes: AtomicUsize,
    cap_bytes: usize,
    /// Device allocations made (every `cuMemAllocAsync`): constant once a step loop runs.
    allocations: std::sync::atomic::AtomicU64,
    /// Times the host waited for the stream (downloads, synchronize): one per TTS frame.
    waits: std::sync::atomic::AtomicU64,
    /// Graph launches of recorded regions.
    replays: std::sync::atomic::AtomicU64,
    /// Eager, or recording / replaying a region (`graph.rs`).
    pub(super) mode: Mutex<Mode>,
    /// Held by a thread for a whole recorded region and by every op on the stream: another thread's
    /// ops wait for the region instead of landing in its capture or its replay.
    pub(super) exclusive: parking_lot::ReentrantMutex<()>,
    /// An abandoned region's recording, until the region ends.
    pub(super) spent: Mutex<Option<Box<Recording>>>,
    /// Frees asked for while recording (a free would be captured): done when the region ends.
    pub(super) deferred: Mutex<Vec<u64>>,
    /// Buffers of arenas retired during a region: freed when it ends.
    pub(super) orphans: Mutex<Vec<(u64, usize, bool)>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} idle bytes)", self.idle_bytes.load(Relaxed))
    }
}

/// A device allocation; pooled buffers go back to the pool when dropped, owned ones are freed, a
/// recorded region's (arena) belong to its recording, views own nothing.
pub struct DeviceBuf {
    ptr: u64,
    bytes: usize,
    pool: Arc<Pool>,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Pooled,
    Owned,
    /// Of a recording's arena (which the buffer keeps).
    Arena(Arc<super::graph::Arena>),
    View,
}

impl std::fmt::Debug for DeviceBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceBuf({:#x}, {} bytes)", self.ptr, self.bytes)
    }
}

impl Drop for DeviceBuf {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        match &self.kind {
            Kind::Pooled => self.pool.give(self.ptr, self.bytes),
            Kind::Owned => self.pool.release(self.ptr),
            Kind::Arena(a) => self.pool.region_give(self.ptr, self.bytes, a),
            Kind::View => {}
        }
    }
}

impl DeviceBuf {
    /// The device address (0 for an empty buffer).
    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// A handle to the same memory that frees nothing (a region's staged input, seen by its body).
    pub fn view(&self) -> DeviceBuf {
        DeviceBuf { ptr: self.ptr, bytes: self.bytes, pool: self.pool.clone(), kind: Kind::View }
    }

    /// A copy in a new pooled buffer (ordered on the stream).
    pub fn duplicate(&self) -> Result<DeviceBuf> {
        let copy = self.pool.take(self.bytes)?;
        self.pool.copy_dtod(copy.ptr, self.ptr, self.bytes)?;
        Ok(copy)
    }

    /// The buffer's f32 values (waits for the stream).
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let mut v = vec![0.0f32; self.bytes / 4];
        self.pool.download(&mut v, self.ptr)?;
        Ok(v)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.trim();
        if let Some(Pinned(p)) = self.pinned.get_mut().take()
            && self.bind().is_ok()
        {
            // SAFETY: allocated by malloc_host in `download_small`, no longer referenced.
            let _ = unsafe { cu::free_host(p) };
        }
    }
}

impl Pool {
    pub fn new(ctx: Arc<CudaContext>, stream: Arc<CudaStream>, cap_bytes: usize) -> Arc<Pool> {
        Arc::new(Pool {
            ctx,
            stream,
            pinned: Mutex::new(None),
            free: Mutex::new(HashMap::new()),
            idle_bytes: AtomicUsize::new(0),
            cap_bytes,
            allocations: Default::default(),
            waits: Default::default(),
            replays: Default::default(),
            mode: Mutex::new(Mode::Eager),
            exclusive: parking_lot::ReentrantMutex::new(()),
            spent: Mutex::new(None),
            deferred: Mutex::new(Vec::new()),
            orphans: Mutex::new(Vec::new()),
        })
    }

    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    pub fn bind(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(|e| driver_error("context", e))
    }

    /// A pooled buffer of `bytes` (contents undefined; the allocation behind it is `bytes` rounded
    /// up to its size class).
    pub fn take(self: &Arc<Self>, bytes: usize) -> Result<DeviceBuf> {
        let _one = self.exclusive.lock();
        if bytes == 0 {
            return Ok(DeviceBuf { ptr: 0, bytes: 0, pool: self.clone(), kind: Kind::Pooled });
        }
        if let Some((ptr, arena)) = self.region_take(bytes)? {
            return Ok(DeviceBuf { ptr, bytes, pool: self.clone(), kind: Kind::Arena(arena) });
        }
        if let Some(ptr) = self.pop_idle(bytes) {
            return Ok(DeviceBuf { ptr, bytes, pool: self.clone(), kind: Kind::Pooled });
        }
        let ptr = self.alloc(size_class(bytes))?;
        Ok(DeviceBuf { ptr, bytes, pool: self.clone(), kind: Kind::Pooled })
    }

    /// An idle buffer of `bytes`' size class, out of the pool.
    pub(super) fn pop_idle(&self, bytes: usize) -> Option<u64> {
        let class = size_class(bytes);
        let ptr = self.free.lock().get_mut(&class).and_then(|v| v.pop())?;
        self.idle_bytes.fetch_sub(class, Relaxed);
        Some(ptr)
    }

    /// A buffer of its own (weights, cache blocks), freed when dropped.
    pub fn alloc_owned(self: &Arc<Self>, bytes: usize) -> Result<DeviceBuf> {
        let ptr = if bytes == 0 { 0 } else { self.alloc(bytes)? };
        Ok(DeviceBuf { ptr, bytes, pool: self.clone(), kind: Kind::Owned })
    }

    /// Device allocations made so far (pooled buffers, weights, cache blocks).
    pub fn allocations(&self) -> u64 {
        self.allocations.load(Relaxed)
    }

    /// Times the host has waited for the stream so far.
    pub fn waits(&self) -> u64 {
        self.waits.load(Relaxed)
    }

    pub(super) fn count_wait(&self) {
        self.waits.fetch_add(1, Relaxed);
    }

    /// Graph launches of recorded regions so far.
    pub fn replays(&self) -> u64 {
        self.replays.load(Relaxed)
    }

    pub(super) fn count_replay(&self) {
        self.replays.fetch_add(1, Relaxed);
    }

    /// A device allocation made while the stream captures (synchronous: not part of the graph).
    pub(super) fn alloc_outside_capture(&self, bytes: usize) -> Result<u64> {
        self.allocations.fetch_add(1, Relaxed);
        self.bind()?;
        // SAFETY: a plain allocation; the recording that takes it frees it with free_sync.
        unsafe { cu::malloc_sync(bytes) }.map_err(|e| driver_error(&format!("allocation of {bytes} bytes"), e))
    }

    fn alloc(&self, bytes: usize) -> Result<u64> {
        let _one = self.exclusive.lock();
        self.leave_region("a new device allocation")?;
        self.allocations.fetch_add(1, Relaxed);
        self.bind()?;
        // SAFETY: a plain allocation on our stream; the result is owned by the DeviceBuf made from it.
        match unsafe { cu::malloc_async(self.stream.cu_stream(), bytes) } {
            Ok(p) => Ok(p),
            Err(_) => {
                // Idle buffers may be what fills the device: free them and try once more.
                self.trim();
                // SAFETY: as above.
                unsafe { cu::malloc_async(self.stream.cu_stream(), bytes) }
                    .map_err(|e| driver_error(&format!("allocation of {bytes} bytes"), e))
            }
        }
    }

    /// A pooled buffer of `bytes` (allocated as its size class) back to the idle ones, or freed
    /// past the cap.
    pub(super) fn give(&self, ptr: u64, bytes: usize) {
        let class = size_class(bytes);
        if self.idle_bytes.load(Relaxed) + class > self.cap_bytes {
            self.release(ptr);
            return;
        }
        self.idle_bytes.fetch_add(class, Relaxed);
        self.free.lock().entry(class).or_default().push(ptr);
    }

    pub(super) fn release(&self, ptr: u64) {
        let _one = self.exclusive.lock();
        if self.in_region() {
            // (A free while recording would be captured; while replaying, skipped ops may still
            // name the buffer until the graph or the abandoned nodes are issued.)
            self.deferred.lock().push(ptr);
            return;
        }
        if self.bind().is_ok() {
            // SAFETY: `ptr` came from malloc_async and is no longer referenced by any buffer; the
            // free is ordered after every use already on the stream. An error (a dead context)
            // leaks the buffer, which the context's end reclaims.
            let _ = unsafe { cu::free_async(ptr, self.stream.cu_stream()) };
        }
    }

    /// Frees every idle buffer.
    pub fn trim(&self) {
        let all: Vec<u64> = self.free.lock().drain().flat_map(|(_, v)| v).collect();
        self.idle_bytes.store(0, Relaxed);
        for p in all {
            self.release(p);
        }
    }

    pub fn upload<T: Copy>(&self, dst: u64, src: &[T]) -> Result<()> {
        let _one = self.exclusive.lock();
        if src.is_empty() {
            return Ok(());
        }
        let bytes = as_bytes(src);
        if let Hook::Skip = self.region_upload(dst, bytes)? {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: the caller's `dst` holds at least size_of_val(src) bytes; a pageable source is
        // staged before the call returns, so `src` may be dropped afterwards.
        unsafe { cu::memcpy_htod_async(dst, src, self.stream.cu_stream()) }.map_err(|e| driver_error("upload", e))
    }

    /// Copies device memory to the host and waits for it.
    pub fn download<T: Copy>(&self, dst: &mut [T], src: u64) -> Result<()> {
        let _one = self.exclusive.lock();
        if dst.is_empty() {
            return Ok(());
        }
        self.leave_region("a download")?;
        self.bind()?;
        // SAFETY: `src` holds at least size_of_val(dst) bytes; the wait below ends the copy before
        // `dst` is read.
        unsafe { cu::memcpy_dtoh_async(dst, src, self.stream.cu_stream()) }.map_err(|e| driver_error("download", e))?;
        self.waits.fetch_add(1, Relaxed);
        self.stream.synchronize().map_err(|e| driver_error("download", e))
    }

    /// `download` for small results (token ids): through the pool's page-locked buffer, a direct
    /// copy, when it fits; else (or when no page-locked memory can be had) as `download`.
    pub fn download_small<T: Plain>(&self, dst: &mut [T], src: u64) -> Result<()> {
        let _one = self.exclusive.lock();
        let bytes = std::mem::size_of_val(dst);
        if bytes == 0 || bytes > PINNED_BYTES {
            return self.download(dst, src);
        }
        self.leave_region("a download")?;
        let mut pinned = self.pinned.lock();
        if pinned.is_none() {
            self.bind()?;
            // SAFETY: a plain page-locked allocation, freed when the pool is dropped.
            match unsafe { cu::malloc_host(PINNED_BYTES, 0) } {
                Ok(p) => *pinned = Some(Pinned(p)),
                Err(_) => {
                    drop(pinned);
                    return self.download(dst, src);
                }
            }
        }
        let Some(Pinned(p)) = *pinned else { unreachable!("allocated above") };
        self.bind()?;
        // SAFETY: `p` holds PINNED_BYTES ≥ bytes; the wait below ends the copy before it is read,
        // and the mutex keeps other downloads out meanwhile; `src` holds `bytes` (the caller's);
        // any bytes are a valid `T` (`Plain`).
        unsafe {
            let stage = std::slice::from_raw_parts_mut(p as *mut u8, bytes);
            cu::memcpy_dtoh_async(stage, src, self.stream.cu_stream()).map_err(|e| driver_error("download", e))?;
            self.waits.fetch_add(1, Relaxed);
            self.stream.synchronize().map_err(|e| driver_error("download", e))?;
            std::ptr::copy_nonoverlapping(p as *const u8, dst.as_mut_ptr() as *mut u8, bytes);
        }
        Ok(())
    }

    /// Waits for the stream without counting it as a wait of the work (freeing a recording).
    pub(super) fn synchronize_quietly(&self) -> Result<()> {
        self.bind()?;
        self.stream.synchronize().map_err(|e| driver_error("synchronize", e))
    }

    /// Waits for every operation on the stream.
    pub fn synchronize(&self) -> Result<()> {
        let _one = self.exclusive.lock();
        self.leave_region("a wait")?;
        self.bind()?;
        self.waits.fetch_add(1, Relaxed);
        self.stream.synchronize().map_err(|e| driver_error("synchronize", e))
    }

    pub fn copy_dtod(&self, dst: u64, src: u64, bytes: usize) -> Result<()> {
        let _one = self.exclusive.lock();
        if bytes == 0 {
            return Ok(());
        }
        if let Hook::Skip = self.region_op(Node::Copy { dst, src, bytes })? {
            return Ok(());
        }
        self.captured(|| {
            self.bind()?;
            // SAFETY: both ranges are live allocations of at least `bytes` (the callers' invariant).
            unsafe { cu::memcpy_dtod_async(dst, src, bytes, self.stream.cu_stream()) }
                .map_err(|e| driver_error("copy", e))
        })
    }

    pub fn zero(&self, dst: u64, bytes: usize) -> Result<()> {
        let _one = self.exclusive.lock();
        if bytes == 0 {
            return Ok(());
        }
        if let Hook::Skip = self.region_op(Node::Zero { dst, bytes })? {
            return Ok(());
        }
        self.captured(|| {
            self.bind()?;
            // SAFETY: `dst` holds at least `bytes` bytes.
            unsafe { cu::memset_d8_async(dst, 0, bytes, self.stream.cu_stream()) }
                .map_err(|e| driver_error("memset", e))
        })
    }
}
