//! voxkit: a native speech engine — Qwen3-TTS and Qwen3-ASR behind one C ABI.
//!
//! Layers, each using only the ones below it:
//! - `ffi`: the C ABI (`vox_*`): converts and validates, holds no logic;
//! - `engine`: jobs, the sticky scheduler, the worker that owns inference, the model manager,
//!   stage timings;
//! - `models`: checkpoint loaders and forward passes;
//! - `dsp`: the resampler and the denoiser (post-processing and ASR input stages);
//! - `backend`: devices, tensors and operations (CPU; CUDA later).
//!
//! See `docs/ARCHITECTURE.md` for the path of one job through them.

pub mod backend;
pub mod dsp;
pub mod engine;
pub mod error;
pub mod ffi;
mod logging;
pub mod models;

pub use engine::Engine;
pub use engine::config::{Device, EngineConfig, LogLevel};
pub use engine::job::{JobId, JobInfo, JobState};
pub use engine::request::{AsrRequest, Sampling, TtsRequest};
pub use error::{Error, ErrorKind, Result};
