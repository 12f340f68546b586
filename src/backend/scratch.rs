//! A backend's scratch workspace: where every op's output and large temporaries come from.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use parking_lot::Mutex;

/// A backend's scratch workspace: buffers of dropped tensors (and kernel temporaries) kept by
/// length and handed out again, so that once a step loop has run, its tensors reuse the same
/// memory every step instead of allocating. Bounded: past `cap_bytes` of idle buffers, a returned
/// buffer makes room by freeing idle ones of the largest other lengths (a finished pass's big
/// buffers go, the running loop's stay: a streamed codec frame after an offline decode otherwise
/// allocates, and faults in fresh pages for, most of its tensors every frame); one larger than
/// the cap is freed.
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
        if len == 0 || len * 4 > self.cap_bytes {
            return;
        }
        let mut free = self.free.lock();
        while self.idle_bytes() + len * 4 > self.cap_bytes {
            let largest = free.iter().filter(|&(&l, bufs)| l != len && !bufs.is_empty()).map(|(&l, _)| l).max();
            let Some(largest) = largest else {
                return; // only buffers of this length are idle: enough of them
            };
            let bufs = free.get_mut(&largest).expect("an idle length");
            bufs.pop();
            if bufs.is_empty() {
                free.remove(&largest);
            }
            self.idle_bytes.fetch_sub(largest * 4, Relaxed);
        }
        self.idle_bytes.fetch_add(len * 4, Relaxed);
        free.entry(len).or_default().push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::Scratch;

    /// Past the cap, a returned buffer frees idle ones of the largest other lengths; one of a
    /// length that alone fills the cap is freed itself.
    #[test]
    fn a_full_scratch_makes_room_for_the_returned_buffer() {
        let s = Scratch::new(100 * 4);
        s.give(vec![0.0; 60]);
        s.give(vec![0.0; 30]);
        assert_eq!(s.idle_bytes(), 90 * 4);
        s.give(vec![0.0; 20]); // frees the 60
        assert_eq!(s.idle_bytes(), 50 * 4);
        let misses = s.misses();
        assert_eq!((s.take_dirty(20).len(), s.take_dirty(30).len()), (20, 30));
        assert_eq!(s.misses(), misses);
        s.take_dirty(60);
        assert_eq!(s.misses(), misses + 1);
        s.give(vec![0.0; 50]);
        s.give(vec![0.0; 50]);
        s.give(vec![0.0; 50]); // only 50s idle: this one is freed
        assert_eq!(s.idle_bytes(), 100 * 4);
        s.give(vec![0.0; 101]);
        assert_eq!(s.idle_bytes(), 100 * 4);
    }
}
