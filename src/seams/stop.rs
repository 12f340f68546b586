//! Stopping long work early. An engine's worker thread runs every load, prefill and step inside
//! the engine's stop scope; destroying the engine raises the flag, and the models check it
//! between tensors (loading) and between layers and passes (inference), so a destroy waits for
//! at most one layer of work instead of a whole model load or generation step.
//!
//! The flag is per thread (the worker's), so model code checks it without a parameter on every
//! call; a thread outside any scope (a CLI, a test, `Engine::new`'s preload) never stops early.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, ErrorKind, Result};

thread_local! {
    static CURRENT: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// While alive, `check` on this thread fails once `flag` is raised.
pub struct StopScope {
    previous: Option<Arc<AtomicBool>>,
}

/// Enters a stop scope on the calling thread.
pub fn scope(flag: Arc<AtomicBool>) -> StopScope {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(flag));
    StopScope { previous }
}

impl Drop for StopScope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// `Err(ShuttingDown)` when this thread's scope was asked to stop.
#[inline]
pub fn check() -> Result<()> {
    let stop = CURRENT.with(|c| c.borrow().as_ref().is_some_and(|f| f.load(Ordering::Relaxed)));
    if stop {
        return Err(Error::new(ErrorKind::ShuttingDown, "the engine is shutting down"));
    }
    Ok(())
}
