//! The model manager: which models are resident, whether both fit, loads and swaps.
//!
//! Each model sits behind its own mutex; the worker holds a model's mutex for one batch step at a
//! time, and the manager takes it to load or unload. When both models fit in the memory budget
//! they both stay resident and no swap ever happens; otherwise the idle one is unloaded before the
//! other is loaded.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::scheduler::Resident;
use crate::error::{Error, ErrorKind, Result};
use crate::seams::{AsrModel, LoadContext, ModelKind, ModelLoader, ModelSpec, TtsModels};

/// A configured model: its folder and what inspecting it told us.
#[derive(Clone, Debug)]
pub struct Configured {
    pub dir: PathBuf,
    pub spec: ModelSpec,
}

/// What one `ensure` call did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoadEvent {
    /// Time spent unloading and loading.
    pub duration: Duration,
    /// The other model had to be unloaded first.
    pub swapped: bool,
}

/// What the resident models may use together, host and device memory separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub host: u64,
    pub device: u64,
}

impl Budget {
    fn admits(&self, host: u64, device: u64) -> bool {
        host <= self.host && device <= self.device
    }
}

pub struct ModelManager {
    loader: Arc<dyn ModelLoader>,
    ctx: LoadContext,
    budget: Budget,
    tts_cfg: Option<Configured>,
    asr_cfg: Option<Configured>,
    pub tts: Arc<Mutex<Option<TtsModels>>>,
    pub asr: Arc<Mutex<Option<Box<dyn AsrModel>>>>,
    resident: Resident,
}

impl ModelManager {
    pub fn new(
        loader: Arc<dyn ModelLoader>,
        ctx: LoadContext,
        budget: Budget,
        tts_cfg: Option<Configured>,
        asr_cfg: Option<Configured>,
    ) -> Result<ModelManager> {
        for c in [&tts_cfg, &asr_cfg].into_iter().flatten() {
            if !budget.admits(c.spec.host_bytes, c.spec.device_bytes) {
                return Err(Error::new(
                    ErrorKind::OutOfMemory,
                    format!(
                        "the model in {} needs {} bytes of host and {} bytes of device memory; the memory budget is {} and {} bytes",
                        c.dir.display(),
                        c.spec.host_bytes,
                        c.spec.device_bytes,
                        budget.host,
                        budget.device
                    ),
                ));
            }
        }
        Ok(ModelManager {
            loader,
            ctx,
            budget,
            tts_cfg,
            asr_cfg,
            tts: Arc::new(Mutex::new(None)),
            asr: Arc::new(Mutex::new(None)),
            resident: Resident::default(),
        })
    }

    fn configured(&self, kind: ModelKind) -> Option<&Configured> {
        match kind {
            ModelKind::Tts => self.tts_cfg.as_ref(),
            ModelKind::Asr => self.asr_cfg.as_ref(),
        }
    }

    /// Whether a model of this kind is configured.
    pub fn configured_kind(&self, kind: ModelKind) -> bool {
        self.configured(kind).is_some()
    }

    pub fn resident(&self) -> Resident {
        self.resident
    }

    /// True when both configured models fit in the budget together (then no swap ever happens).
    pub fn both_fit(&self) -> bool {
        let both = [&self.tts_cfg, &self.asr_cfg];
        let host: u64 = both.into_iter().flatten().map(|c| c.spec.host_bytes).sum();
        let device: u64 = both.into_iter().flatten().map(|c| c.spec.device_bytes).sum();
        self.budget.admits(host, device)
    }

    /// Bytes (host and device together) used by the resident models.
    pub fn memory_in_use(&self) -> u64 {
        [ModelKind::Tts, ModelKind::Asr]
            .into_iter()
            .filter(|&k| self.resident.has(k))
            .filter_map(|k| self.configured(k))
            .map(|c| c.spec.host_bytes + c.spec.device_bytes)
            .sum()
    }

    fn set_resident(&mut self, kind: ModelKind, on: bool) {
        match kind {
            ModelKind::Tts => self.resident.tts = on,
            ModelKind::Asr => self.resident.asr = on,
        }
    }

    /// Drops a model (it is loaded again on next use).
    pub fn unload(&mut self, kind: ModelKind) {
        match kind {
            ModelKind::Tts => *self.tts.lock() = None,
            ModelKind::Asr => *self.asr.lock() = None,
        }
        self.set_resident(kind, false);
    }

    /// Makes `kind` resident; `None` when it already was.
    pub fn ensure(&mut self, kind: ModelKind) -> Result<Option<LoadEvent>> {
        if self.resident.has(kind) {
            return Ok(None);
        }
        let cfg = self
            .configured(kind)
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::ModelNotLoaded, format!("no {} model is configured", kind.name())))?;
        let start = Instant::now();
        let other = kind.other();
        let mut swapped = false;
        if self.resident.has(other) && !self.both_fit() {
            log::info!("engine: unloading the {} model to make room for {}", other.name(), kind.name());
            self.unload(other);
            swapped = true;
        }
        log::info!("engine: loading the {} model from {}", kind.name(), cfg.dir.display());
        match kind {
            ModelKind::Tts => {
                let m = self.loader.load_tts(&cfg.dir, &self.ctx)?;
                *self.tts.lock() = Some(m);
            }
            ModelKind::Asr => {
                let m = self.loader.load_asr(&cfg.dir, &self.ctx)?;
                *self.asr.lock() = Some(m);
            }
        }
        self.set_resident(kind, true);
        let duration = start.elapsed();
        log::info!(
            "engine: {} model {} in {:.1} ms",
            kind.name(),
            if swapped { "swapped in" } else { "loaded" },
            duration.as_secs_f64() * 1e3
        );
        Ok(Some(LoadEvent { duration, swapped }))
    }
}

/// The budget used when the config says 0: 80 % of physical memory on the CPU (unknown: no limit).
pub fn auto_budget() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        })
        .map(|kb| kb * 1024 / 10 * 8)
        .unwrap_or(u64::MAX)
}
