//! A backend's scratch workspace: where every op's output and large temporaries come from.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use parking_lot::Mutex;

/// A backend's scratch workspace: buffers of dropped tensors (and kernel temporaries) kept idle
/// under size classes (see [`size_class`]) and handed out again, so that once a step loop has run,
/// its tensors reuse the same memory every step instead of allocating. A buffer is allocated with
/// its class's capacity and handed out at the length asked for; activations sized by sequence
/// lengths that differ from job to job then share classes instead of each leaving an idle buffer
/// of a length no later job asks for (the soak's heap crept up to the cap that way). Bounded:
/// past `cap_bytes` of idle buffers, a returned buffer makes room by freeing idle ones of the
/// largest other classes (a finished pass's big buffers go, the running loop's stay: a streamed
/// codec frame after an offline decode otherwise allocates, and faults in fresh pages for, most
/// of its tensors every frame); one larger than the cap is freed.
pub struct Scratch {
    /// Idle buffers by class (in elements); each one's capacity is at least its class.
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

/// The size a pooled buffer of `bytes` is allocated with and kept idle under: `bytes` rounded up
/// to a quarter of its power of two (at least 256 bytes), so at most 25 % more. Four classes a
/// doubling give later jobs buffers to reuse where exact sizes would each be a one-off. Shared by
/// the CPU scratch and the CUDA pool.
pub(in crate::backend) fn size_class(bytes: usize) -> usize {
    let step = class_step(bytes);
    bytes.div_ceil(step).checked_mul(step).unwrap_or(bytes)
}

/// The largest class that is not above `bytes` (what a buffer of that capacity can serve).
fn class_floor(bytes: usize) -> usize {
    let step = class_step(bytes);
    bytes / step * step
}

/// The spacing of the classes around `bytes`: a quarter of its power of two, at least 256.
fn class_step(bytes: usize) -> usize {
    const MIN_STEP: usize = 256;
    match bytes.checked_ilog2() {
        Some(top) if top >= 2 => (1usize << (top - 2)).max(MIN_STEP),
        _ => MIN_STEP,
    }
}

/// The class of a buffer of `len` elements, in elements.
fn class_len(len: usize) -> usize {
    len.checked_mul(4).map_or(len, |b| size_class(b) / 4)
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

    /// Buffers that had to be allocated because none of their class was idle.
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
        let class = class_len(len);
        let reused = self.free.lock().get_mut(&class).and_then(|v| v.pop());
        let mut v = match reused {
            Some(v) => {
                self.idle_bytes.fetch_sub(class * 4, Relaxed);
                v
            }
            None => {
                self.misses.fetch_add(1, Relaxed);
                Vec::with_capacity(class)
            }
        };
        // Within the capacity: a step loop taking the same length gets it back as it gave it.
        if v.len() > len {
            v.truncate(len);
        } else {
            v.resize(len, 0.0);
        }
        v
    }

    /// Gives a buffer back for reuse (kept under the largest class its capacity serves).
    pub(in crate::backend) fn give(&self, v: Vec<f32>) {
        let class = v.capacity().checked_mul(4).map_or(0, class_floor) / 4;
        if class == 0 || class * 4 > self.cap_bytes {
            return;
        }
        let mut free = self.free.lock();
        while self.idle_bytes() + class * 4 > self.cap_bytes {
            let largest = free.iter().filter(|&(&c, bufs)| c != class && !bufs.is_empty()).map(|(&c, _)| c).max();
            let Some(largest) = largest else {
                return; // only buffers of this class are idle: enough of them
            };
            let bufs = free.get_mut(&largest).expect("an idle class");
            bufs.pop();
            if bufs.is_empty() {
                free.remove(&largest);
            }
            self.idle_bytes.fetch_sub(largest * 4, Relaxed);
        }
        self.idle_bytes.fetch_add(class * 4, Relaxed);
        free.entry(class).or_default().push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::{Scratch, size_class};

    #[test]
    fn size_classes_cover_their_request_within_a_quarter() {
        assert_eq!(size_class(0), 0);
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(256), 256);
        assert_eq!(size_class(1000), 1024);
        assert_eq!(size_class(4096), 4096);
        assert_eq!(size_class(4097), 5120);
        let mut classes = std::collections::BTreeSet::new();
        for b in (1..(1 << 20)).step_by(97) {
            let c = size_class(b);
            assert!(c >= b && (c - b) * 4 <= b.max(1024), "{b} -> {c}");
            assert_eq!(size_class(c), c, "a class is its own class");
            classes.insert(c);
        }
        // Four classes a doubling, not one a length.
        assert!(classes.len() < 60, "{} classes", classes.len());
        assert_eq!(size_class(usize::MAX), usize::MAX);
    }

    /// Lengths within a class share its buffers; another class does not.
    #[test]
    fn lengths_of_one_class_share_its_buffers() {
        let s = Scratch::new(1 << 20);
        let v = s.take_dirty(1000);
        assert_eq!((v.len(), v.capacity(), s.misses()), (1000, 1024, 1));
        s.give(v);
        let v = s.take_dirty(900); // same class (1024): reused
        assert_eq!((v.len(), s.misses()), (900, 1));
        s.give(v);
        let v = s.take(1024); // grows within the capacity, zeroed
        assert!(v.iter().all(|&x| x == 0.0));
        assert_eq!((v.len(), s.misses()), (1024, 1));
        s.give(v);
        assert_eq!(s.take_dirty(700).capacity(), 768); // another class: allocated
        assert_eq!(s.misses(), 2);
        // A buffer made elsewhere is kept under the largest class its capacity serves.
        s.give(Vec::with_capacity(1000));
        let v = s.take_dirty(896);
        assert_eq!((v.len(), s.misses()), (896, 2));
        assert!(v.capacity() >= 1000);
        // One too small for any class is not kept.
        s.give(vec![0.0; 10]);
        assert_eq!(s.idle_bytes(), 1024 * 4);
    }

    /// Past the cap, a returned buffer frees idle ones of the largest other classes; one of a
    /// class that alone fills the cap is freed itself.
    #[test]
    fn a_full_scratch_makes_room_for_the_returned_buffer() {
        let s = Scratch::new(2048 * 4);
        let (a, b, c) = (s.take_dirty(1024), s.take_dirty(512), s.take_dirty(768));
        s.give(a);
        s.give(b);
        assert_eq!(s.idle_bytes(), 1536 * 4);
        s.give(c); // frees the 1024
        assert_eq!(s.idle_bytes(), 1280 * 4);
        let misses = s.misses();
        assert_eq!((s.take_dirty(500).len(), s.take_dirty(760).len()), (500, 760));
        assert_eq!(s.misses(), misses);
        s.take_dirty(1024);
        assert_eq!(s.misses(), misses + 1);
        assert_eq!(s.idle_bytes(), 0);
        s.give(vec![0.0; 1024]);
        s.give(vec![0.0; 1024]);
        s.give(vec![0.0; 1024]); // only 1024s idle: this one is freed
        assert_eq!(s.idle_bytes(), 2048 * 4);
        s.give(vec![0.0; 4096]);
        assert_eq!(s.idle_bytes(), 2048 * 4);
    }
}
