//! The library's one error type: a kind (which the C ABI maps to a status code) and a message
//! that names what went wrong.

use std::fmt;

/// What kind of failure happened. Each kind has exactly one C status code (`ffi::status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    NullPointer,
    InvalidArgument,
    InvalidUtf8,
    StructSize,
    UnknownJob,
    QueueFull,
    ModelNotLoaded,
    ModelLoad,
    NoDevice,
    OutOfMemory,
    BufferTooSmall,
    Timeout,
    NotReady,
    Io,
    Unsupported,
    ShuttingDown,
    Inference,
    Internal,
}

/// A failure with its kind and a human-readable message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }
    pub fn unknown_job(id: u64) -> Self {
        Error::new(ErrorKind::UnknownJob, format!("no job with id {id} (never submitted, or already released)"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(ErrorKind::Io, e.to_string())
    }
}
