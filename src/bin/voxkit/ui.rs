//! What the command line says on stderr besides errors: progress spinners (only on a terminal,
//! never with --quiet), one-line summaries (not with --quiet), stage timings and the engine's
//! log (with --verbose).

use std::fmt::Display;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{Threads, Verbosity};

pub struct Ui {
    quiet: bool,
    verbose: u8,
    /// Spinners are drawn (stderr is a terminal and not --quiet).
    progress: bool,
    /// Every spinner hangs here, and every line printed while one may be drawn goes through it
    /// (so that a log line never lands in the middle of a spinner).
    bars: MultiProgress,
}

impl Ui {
    pub fn new(v: Verbosity) -> Ui {
        let progress = !v.quiet && std::io::stderr().is_terminal();
        let target = if progress { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        Ui { quiet: v.quiet, verbose: v.verbose, progress, bars: MultiProgress::with_draw_target(target) }
    }

    /// A summary line: printed unless --quiet.
    pub fn note(&self, line: impl Display) {
        if !self.quiet {
            self.bars.suspend(|| eprintln!("{line}"));
        }
    }

    /// A detail line (stage timings): printed with --verbose only.
    pub fn detail(&self, line: impl Display) {
        if self.verbose > 0 {
            self.bars.suspend(|| eprintln!("{line}"));
        }
    }

    /// A spinner with `message` and the elapsed time; a no-op one when progress is not shown.
    /// Finish it with `finish_and_clear`.
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let pb = self.bars.add(ProgressBar::new_spinner());
        pb.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("a valid template"));
        pb.set_message(message.into());
        pb.enable_steady_tick(Duration::from_millis(100));
        pb
    }

    /// A byte-count bar for a download; a no-op one when progress is not shown.
    pub fn download_bar(&self, message: impl Into<String>) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let pb = self.bars.add(ProgressBar::new(0));
        pb.set_style(
            ProgressStyle::with_template("{msg}\n{wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .expect("a valid template"),
        );
        pb.set_message(message.into());
        pb
    }

    /// The engine settings the commands share: one job at a time, `--threads`, and the engine's
    /// log on stderr with --verbose only. Without it the log is off: every warning or error it
    /// would print is about the one job, whose outcome the command reports itself (once).
    pub fn engine_config(&self, threads: Threads) -> voxkit::EngineConfig {
        let bars = self.bars.clone();
        let (log_level, log_sink): (voxkit::LogLevel, Option<voxkit::engine::config::LogSink>) = match self.verbose {
            0 => (voxkit::LogLevel::Off, None),
            v => (
                if v == 1 { voxkit::LogLevel::Info } else { voxkit::LogLevel::Debug },
                Some(Arc::new(move |level, msg: &str| {
                    bars.suspend(|| eprintln!("[{}] {msg}", format!("{level:?}").to_lowercase()))
                })),
            ),
        };
        voxkit::EngineConfig {
            cpu_threads: threads.threads.unwrap_or(0),
            device: threads.device,
            quantization: threads.quant,
            max_batch: 1,
            log_level,
            log_sink,
            ..Default::default()
        }
    }
}
