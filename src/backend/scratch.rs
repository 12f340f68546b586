//! A backend's scratch workspace: where every op's output and large temporaries come from.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use parking_lot::Mutex;

/// A backend's scratch workspace: buffers of dropped tensors (and kernel temporaries) kept by
/// length and handed out again, so that once a step loop has run, its tensors reuse the same
/// memory every step instead of allocating. Bounded: past `cap_bytes` of idle buffers, returned
/// ones are freed.
pub struct Scratch {
    free: Mutex<HashMap<usize, Vec<Vec<f32>>>>,
    idle_bytes: AtomicUsize,
    misses: AtomicU64,
    cap_bytes: usize,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scratch({} idle bytes, {} misses)", self.idle_bytes(), self.misses())
    }
}

impl Scratch {
    pub fn new(cap_bytes: usize) -> Scratch {
        Scratch {
            free: Mutex::new(HashMap::new()),
            idle_bytes: AtomicUsize::new(0),
            misses: AtomicU64::new(0),
            cap_bytes,
        }
    }

    /// Buffers that had to be allocated because none of their length was idle.
    pub fn misses(&self) -> u64 {
        self.misses.load(Relaxed)
    }

    /// Bytes held by idle buffers.
    pub fn idle_bytes(&self) -> usize {
        self.idle_bytes.load(Relaxed)
    }

    /// A zeroed buffer of `len` elements.
    pub(in crate::backend) fn take(&self, len: usize) -> Vec<f32> {
        let mut v = self.take_dirty(len);
        v.iter_mut().for_each(|x| *x = 0.0);
        v
    }

    /// A buffer of `len` elements holding whatever its last user left (for outputs that are
    /// written whole: no pass to clear them first).
    pub(in crate::backend) fn take_dirty(&self, len: usize) -> Vec<f32> {
        if len == 0 {
            return Vec::new();
        }
        let reused = self.free.lock().get_mut(&len).and_then(|v| v.pop());
        match reused {
            Some(v) => {
                self.idle_bytes.fetch_sub(len * 4, Relaxed);
                v
            }
            None => {
                self.misses.fetch_add(1, Relaxed);
                vec![0.0; len]
            }
        }
    }

    /// Gives a buffer back for reuse.
    pub(in crate::backend) fn give(&self, v: Vec<f32>) {
        let len = v.len();
        if len == 0 || self.idle_bytes() + len * 4 > self.cap_bytes {
            return;
        }
        self.idle_bytes.fetch_add(len * 4, Relaxed);
        self.free.lock().entry(len).or_default().push(v);
    }
}
