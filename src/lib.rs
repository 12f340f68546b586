//! voxkit: a native speech engine — Qwen3-TTS and Qwen3-ASR behind one C ABI.
//!
//! Layers, each using only the ones below it:
//! - `ffi`: the C ABI (`vox_*`): converts and validates, holds no logic;
//! - `engine`: jobs, the sticky scheduler, the worker that owns inference, the model manager,
//!   stage timings;
//! - `models`: checkpoint loaders and forward passes, written once against `backend`;
//! - `seams`: the traits and request types the engine and the models share;
//! - `dsp`: the resampler and the denoiser (post-processing and ASR input stages);
//! - `backend`: devices, tensors, KV caches and the ops (CPU; CUDA later).
//!
//! See `docs/ARCHITECTURE.md` for the path of one job through them.

pub mod backend;
pub mod dsp;
pub mod engine;
pub mod error;
pub mod ffi;
mod logging;
pub mod models;
pub mod seams;

pub use engine::Engine;
pub use engine::config::{Device, EngineConfig, LogLevel};
pub use engine::job::{JobId, JobInfo, JobState};
pub use error::{Error, ErrorKind, Result};
pub use seams::request::{AsrRequest, Sampling, TtsRequest};
