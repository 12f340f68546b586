//! Engine configuration: what the host chooses when it creates an engine.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

pub use crate::backend::{Device, Quantization};

pub use crate::logging::{LogLevel, LogSink};

/// Everything an engine is created with. `Default` gives the documented defaults.
#[derive(Clone)]
pub struct EngineConfig {
    /// Folder of a Qwen3-TTS checkpoint, or a hub id `org/name[@revision]` (its copy in the hub
    /// cache, fetched there at create when missing: `engine::fetch`). None: TTS jobs fail with
    /// `ModelNotLoaded`.
    pub tts_model_dir: Option<PathBuf>,
    /// Folder of a Qwen3-ASR checkpoint or a hub id, as `tts_model_dir`. None: ASR jobs fail
    /// with `ModelNotLoaded`.
    pub asr_model_dir: Option<PathBuf>,
    pub device: Device,
    /// Bytes the resident models may use together in the memory their weights live in (host
    /// memory on the CPU, device memory on a GPU); 0 = automatic (see `ModelManager`).
    pub memory_budget: u64,
    /// Most sequences advanced together in one batch.
    pub max_batch: usize,
    /// Most jobs waiting to start; a submit beyond it fails with `QueueFull`.
    pub max_queued_jobs: usize,
    /// Cap used when a request gives `max_new_tokens = 0`; 0 = the model's automatic cap.
    pub default_max_new_tokens: u32,
    /// No generation ever exceeds this many new tokens.
    pub hard_max_new_tokens: u32,
    /// A queued job that has waited this long forces its model kind to be served next.
    pub max_wait: Duration,
    /// CPU threads for inference; 0 = all available cores.
    pub cpu_threads: usize,
    pub log_level: LogLevel,
    pub log_sink: Option<LogSink>,
    /// Load these models while the engine is created (a game's loading screen) instead of on
    /// their first job; a failed load fails the create.
    pub preload_tts: bool,
    pub preload_asr: bool,
    /// Weights of the TTS talker and code predictor and of the ASR decoder quantized at load
    /// (`Quantization`; CPU only). `None`, the default, keeps them as stored.
    pub quantization: Quantization,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            tts_model_dir: None,
            asr_model_dir: None,
            device: Device::Auto,
            memory_budget: 0,
            max_batch: 16,
            max_queued_jobs: 1024,
            default_max_new_tokens: 0,
            hard_max_new_tokens: 8192,
            max_wait: Duration::from_millis(2000),
            cpu_threads: 0,
            log_level: LogLevel::Warn,
            log_sink: None,
            preload_tts: false,
            preload_asr: false,
            quantization: Quantization::None,
        }
    }
}

impl EngineConfig {
    /// Checks ranges; the message names the offending field.
    pub fn validate(&self) -> Result<()> {
        if self.max_batch == 0 || self.max_batch > 4096 {
            return Err(Error::invalid(format!("max_batch must be in 1..=4096, got {}", self.max_batch)));
        }
        if self.max_queued_jobs == 0 {
            return Err(Error::invalid("max_queued_jobs must be at least 1"));
        }
        if self.hard_max_new_tokens == 0 {
            return Err(Error::invalid("hard_max_new_tokens must be at least 1"));
        }
        if self.default_max_new_tokens > self.hard_max_new_tokens {
            return Err(Error::invalid(format!(
                "default_max_new_tokens ({}) exceeds hard_max_new_tokens ({})",
                self.default_max_new_tokens, self.hard_max_new_tokens
            )));
        }
        if self.cpu_threads > 1024 {
            return Err(Error::invalid(format!("cpu_threads must be at most 1024, got {}", self.cpu_threads)));
        }
        Ok(())
    }

    /// The cap of a generation: the request's, else this config's default, else the model's
    /// automatic one; never above the hard limit.
    pub fn effective_cap(&self, requested: u32, automatic: impl FnOnce() -> u32) -> u32 {
        let cap = if requested > 0 {
            requested
        } else if self.default_max_new_tokens > 0 {
            self.default_max_new_tokens
        } else {
            automatic()
        };
        cap.clamp(1, self.hard_max_new_tokens)
    }

    /// The thread count actually used for CPU inference.
    pub fn effective_cpu_threads(&self) -> usize {
        if self.cpu_threads > 0 {
            self.cpu_threads
        } else {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        }
    }
}
