//! Routes the `log` crate's records to the hosts' callbacks.
//!
//! The `log` facade has one global logger per process, while a process may hold several engines,
//! each with its own callback and level. So voxkit installs one dispatcher (once), and every engine
//! registers a sink. A thread that works for one engine (its worker, or a host thread inside one of
//! its calls) marks itself with that engine's sink, and its records go to that sink only; records
//! from unmarked threads go to every sink. If the host process already installed another `log`
//! logger, voxkit's records go to that logger instead.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

/// Log verbosity, ordered from silent to chatty (the C ABI uses the same numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Off = 0,
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl LogLevel {
    pub fn from_i32(v: i32) -> Option<LogLevel> {
        Some(match v {
            0 => LogLevel::Off,
            1 => LogLevel::Error,
            2 => LogLevel::Warn,
            3 => LogLevel::Info,
            4 => LogLevel::Debug,
            5 => LogLevel::Trace,
            _ => return None,
        })
    }
    pub fn to_filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// Receives the engine's log lines (level, message). Called on whichever thread logged — usually
/// the engine's worker — never while the engine holds one of its own locks.
pub type LogSink = std::sync::Arc<dyn Fn(LogLevel, &str) + Send + Sync>;

struct Sink {
    id: u64,
    level: LogLevel,
    sink: LogSink,
}

static SINKS: RwLock<Vec<Arc<Sink>>> = RwLock::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static INSTALLED: OnceLock<bool> = OnceLock::new();

thread_local! {
    static CURRENT: Cell<u64> = const { Cell::new(0) };
}

struct Dispatch;

fn level_of(l: log::Level) -> LogLevel {
    match l {
        log::Level::Error => LogLevel::Error,
        log::Level::Warn => LogLevel::Warn,
        log::Level::Info => LogLevel::Info,
        log::Level::Debug => LogLevel::Debug,
        log::Level::Trace => LogLevel::Trace,
    }
}

impl log::Log for Dispatch {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.target().starts_with("voxkit")
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = level_of(record.level());
        let current = CURRENT.with(|c| c.get());
        // Clone the sinks out so that no lock is held while host code runs.
        let targets: Vec<Arc<Sink>> =
            SINKS.read().iter().filter(|s| (current == 0 || s.id == current) && level <= s.level).cloned().collect();
        if targets.is_empty() {
            return;
        }
        let msg = record.args().to_string();
        for s in targets {
            (s.sink)(level, &msg);
        }
    }

    fn flush(&self) {}
}

static DISPATCH: Dispatch = Dispatch;

fn refresh_max_level() {
    if INSTALLED.get() != Some(&true) {
        return;
    }
    let max = SINKS.read().iter().map(|s| s.level).max().unwrap_or(LogLevel::Off);
    log::set_max_level(max.to_filter());
}

/// A registered sink; unregisters itself when dropped.
pub struct SinkGuard {
    id: u64,
}

impl SinkGuard {
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        SINKS.write().retain(|s| s.id != self.id);
        refresh_max_level();
    }
}

/// Registers a sink for records at `level` and above.
pub fn register(level: LogLevel, sink: LogSink) -> SinkGuard {
    INSTALLED.get_or_init(|| log::set_logger(&DISPATCH).is_ok());
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    SINKS.write().push(Arc::new(Sink { id, level, sink }));
    refresh_max_level();
    SinkGuard { id }
}

/// Marks the calling thread as working for the sink `id` (0 = none) until the guard drops.
pub fn enter(id: u64) -> ThreadMark {
    let prev = CURRENT.with(|c| c.replace(id));
    ThreadMark { prev }
}

pub struct ThreadMark {
    prev: u64,
}

impl Drop for ThreadMark {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.prev));
    }
}
