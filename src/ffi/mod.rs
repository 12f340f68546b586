//! The C ABI. Every export checks its pointers, sizes and strings, converts to the engine's Rust
//! types, calls the engine, and converts back; it holds no logic of its own. Panics are caught at
//! this boundary and become `VOX_ERR_INTERNAL`; out-params are written only on success; the
//! calling thread's last failure message is kept for `vox_last_error`.

mod api;
mod ring;
pub mod types;
mod voice;

pub use api::*;
pub use ring::*;
pub use types::*;
pub use voice::*;

use std::cell::RefCell;
use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{Error, ErrorKind, Result};

thread_local! {
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn set_last_error(msg: &str) {
    let _ = LAST_ERROR.try_with(|e| {
        let mut e = e.borrow_mut();
        e.clear();
        e.extend(msg.bytes().filter(|&b| b != 0));
    });
}

/// The calling thread's last failure message (without NUL).
pub(crate) fn last_error() -> Vec<u8> {
    LAST_ERROR.try_with(|e| e.borrow().clone()).unwrap_or_default()
}

/// The status code of each error kind.
pub fn status_of(kind: ErrorKind) -> VoxStatus {
    match kind {
        ErrorKind::NullPointer => VOX_ERR_NULL_POINTER,
        ErrorKind::InvalidArgument => VOX_ERR_INVALID_ARGUMENT,
        ErrorKind::InvalidUtf8 => VOX_ERR_INVALID_UTF8,
        ErrorKind::StructSize => VOX_ERR_STRUCT_SIZE,
        ErrorKind::UnknownJob => VOX_ERR_UNKNOWN_JOB,
        ErrorKind::QueueFull => VOX_ERR_QUEUE_FULL,
        ErrorKind::ModelNotLoaded => VOX_ERR_MODEL_NOT_LOADED,
        ErrorKind::ModelLoad => VOX_ERR_MODEL_LOAD,
        ErrorKind::NoDevice => VOX_ERR_NO_DEVICE,
        ErrorKind::OutOfMemory => VOX_ERR_OUT_OF_MEMORY,
        ErrorKind::BufferTooSmall => VOX_ERR_BUFFER_TOO_SMALL,
        ErrorKind::Timeout => VOX_ERR_TIMEOUT,
        ErrorKind::NotReady => VOX_ERR_NOT_READY,
        ErrorKind::Io => VOX_ERR_IO,
        ErrorKind::Unsupported => VOX_ERR_UNSUPPORTED,
        ErrorKind::ShuttingDown => VOX_ERR_SHUTTING_DOWN,
        ErrorKind::Inference => VOX_ERR_INFERENCE,
        ErrorKind::Internal => VOX_ERR_INTERNAL,
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs an export's body: maps its error to a status code and records the message, and turns a
/// panic into `VOX_ERR_INTERNAL`.
pub(crate) fn boundary(func: &str, body: impl FnOnce() -> Result<()>) -> VoxStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => VOX_OK,
        Ok(Err(e)) => {
            set_last_error(&format!("{func}: {}", e.message));
            status_of(e.kind)
        }
        Err(p) => match p.downcast_ref::<Error>() {
            // A device failure the compute layer raised (out of device memory, a faulted GPU).
            Some(e) => {
                set_last_error(&format!("{func}: {}", e.message));
                status_of(e.kind)
            }
            None => {
                let msg = panic_message(p.as_ref());
                set_last_error(&format!("{func}: internal error (panic): {msg}"));
                VOX_ERR_INTERNAL
            }
        },
    }
}

pub(crate) fn null(what: &str) -> Error {
    Error::new(ErrorKind::NullPointer, format!("{what} is NULL"))
}

/// A required pointer, or `VOX_ERR_NULL_POINTER` naming it.
pub(crate) fn non_null<T>(p: *const T, what: &str) -> Result<*const T> {
    if p.is_null() { Err(null(what)) } else { Ok(p) }
}

/// An optional NUL-terminated UTF-8 string; NULL and "" give `None`.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string.
pub(crate) unsafe fn opt_str(p: *const c_char, what: &str) -> Result<Option<String>> {
    if p.is_null() {
        return Ok(None);
    }
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    let s = std::str::from_utf8(bytes)
        .map_err(|e| Error::new(ErrorKind::InvalidUtf8, format!("{what} is not valid UTF-8 ({e})")))?;
    Ok(if s.is_empty() { None } else { Some(s.to_owned()) })
}

/// A `#[repr(C)]` struct of the ABI: it starts with `struct_size` and only grows at the end, so
/// the library accepts every size from its first version's (`MIN_SIZE`) on.
pub(crate) trait AbiStruct: Copy {
    /// `sizeof` of the struct in the first ABI version that had it.
    const MIN_SIZE: usize;
    /// `sizeof` of its later versions before this one, if it grew more than once.
    const OLDER_SIZES: &'static [usize] = &[];
}

/// Reads a size-prefixed input struct: `struct_size` must be one of its earlier versions' sizes
/// (`MIN_SIZE`, `OLDER_SIZES`; the later fields keep the values of `defaults`) or at least this
/// version's (any other size would cut a field).
///
/// # Safety
/// `p` is non-NULL and points to at least `struct_size` readable bytes.
pub(crate) unsafe fn read_sized<T: AbiStruct>(p: *const T, what: &str, defaults: impl FnOnce() -> T) -> Result<T> {
    let size = unsafe { (p as *const u32).read_unaligned() } as usize;
    if size < T::MIN_SIZE {
        return Err(Error::new(
            ErrorKind::StructSize,
            format!(
                "{what}.struct_size is {size}; this library needs at least {} (use the init function)",
                T::MIN_SIZE
            ),
        ));
    }
    if size >= std::mem::size_of::<T>() {
        return Ok(unsafe { p.read_unaligned() });
    }
    if size != T::MIN_SIZE && !T::OLDER_SIZES.contains(&size) {
        // Between the layouts: it would cut a field in two.
        return Err(Error::new(
            ErrorKind::StructSize,
            format!(
                "{what}.struct_size is {size}: neither this library's size ({}) nor an earlier version's ({}{})",
                std::mem::size_of::<T>(),
                T::MIN_SIZE,
                T::OLDER_SIZES.iter().map(|s| format!(", {s}")).collect::<String>()
            ),
        ));
    }
    let mut v = defaults();
    // SAFETY: `size` < sizeof(T) bytes are readable at `p` and writable in `v`; the fields of an
    // older layout are a prefix of this one's, each valid for any bit pattern.
    unsafe { std::ptr::copy_nonoverlapping(p as *const u8, &mut v as *mut T as *mut u8, size) };
    Ok(v)
}

/// Checks an output struct's caller-set `struct_size` and returns how many bytes of it may be
/// written: all of this version's, or an older program's smaller struct.
///
/// # Safety
/// `p` is non-NULL and points to at least 4 readable bytes.
pub(crate) unsafe fn check_out_size<T: AbiStruct>(p: *const T, what: &str) -> Result<usize> {
    let size = unsafe { (p as *const u32).read_unaligned() } as usize;
    if size < T::MIN_SIZE {
        return Err(Error::new(
            ErrorKind::StructSize,
            format!("{what}.struct_size is {size}; set it to sizeof({what}) ({})", std::mem::size_of::<T>()),
        ));
    }
    Ok(size.min(std::mem::size_of::<T>()))
}

/// Writes the first `size` bytes of `v` (see `check_out_size`) into a caller's out-struct and
/// sets its `struct_size` to the bytes written.
///
/// # Safety
/// `dst` points to at least `size` writable bytes.
pub(crate) unsafe fn write_out_sized<T: AbiStruct>(dst: *mut T, v: T, size: usize) {
    let size = size.min(std::mem::size_of::<T>());
    unsafe {
        std::ptr::copy_nonoverlapping(&v as *const T as *const u8, dst as *mut u8, size);
        (dst as *mut u32).write_unaligned(size as u32);
    }
}
