//! `Backend::recorded` on the GPU: which keys have been seen, recorded or given up, and the record
//! and replay of one region (the pool's side, node by node, is `graph.rs`).
//!
//! A key's first region runs eagerly (it also warms the pool, so that the recording finds most
//! buffers it needs idle); the second is recorded and launched as a graph; the later ones replay
//! it. A region abandoned while recorded or replayed (its launches changed: the talker's attention
//! grid after 256 more tokens) is recorded again the next time; a key abandoned `MAX_MISSES` times
//! in a row runs eagerly from then on. At most `MAX_REGIONS` keys are kept, the least recently used
//! retired first.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use super::backend::{Cuda, ptr};
use super::graph::Recording;
use super::memory::{DeviceBuf, OrRaise};
use crate::backend::tensor::Tensor;
use crate::error::Result;

/// Keys a backend remembers.
const MAX_REGIONS: usize = 16;
/// Abandoned regions in a row after which a key runs eagerly for good.
const MAX_MISSES: u8 = 3;

#[derive(Debug)]
pub(super) enum Entry {
    /// Ran eagerly (first, or after `misses` abandoned regions in a row): recorded next time.
    Seen {
        misses: u8,
    },
    Ready {
        r: Box<Recording>,
        misses: u8,
    },
    /// Abandoned too often: runs eagerly.
    Failed,
}

/// The keys, least recently used first.
#[derive(Debug, Default)]
pub(super) struct Regions {
    entries: Vec<(u64, Entry)>,
    /// Recordings to free at the next region (their outputs may be in use until then).
    retiring: Vec<Recording>,
}

type Body<'a> = &'a mut dyn FnMut(&[&Tensor]) -> Result<()>;

/// Leaves a region's depth when dropped (also on a panic).
struct Depth<'a>(&'a AtomicUsize);

impl Drop for Depth<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Cuda {
    pub(super) fn recorded_op(&self, key: u64, inputs: &[&Tensor], body: Body<'_>) -> Result<()> {
        // The stream is this thread's for the whole region (other threads' ops wait), and a region
        // inside a region runs as part of it.
        let _one = self.gpu.pool.exclusive.lock();
        if !self.graphs_on() || self.region_depth.load(Relaxed) > 0 {
            return body(inputs);
        }
        self.region_depth.fetch_add(1, Relaxed);
        let _depth = Depth(&self.region_depth);
        let (entry, retiring) = {
            let mut regions = self.regions.lock();
            let at = regions.entries.iter().position(|(k, _)| *k == key);
            (at.map(|i| regions.entries.remove(i).1), std::mem::take(&mut regions.retiring))
        };
        for r in retiring {
            self.gpu.pool.retire(r);
        }
        match entry {
            None => {
                self.remember(key, Entry::Seen { misses: 0 });
                body(inputs)
            }
            Some(Entry::Failed) => {
                self.remember(key, Entry::Failed);
                body(inputs)
            }
            Some(Entry::Seen { misses }) => self.record(key, misses, inputs, body),
            Some(Entry::Ready { r, misses }) => self.replay(key, r, misses, inputs, body),
        }
    }

    /// Puts a key last (most recently used); retires the least recently used past the limit.
    fn remember(&self, key: u64, entry: Entry) {
        let mut regions = self.regions.lock();
        regions.entries.push((key, entry));
        while regions.entries.len() > MAX_REGIONS {
            if let Entry::Ready { r, .. } = regions.entries.remove(0).1 {
                regions.retiring.push(*r);
            }
        }
    }

    /// Copies of the inputs in buffers of their own (eager; the region reads them there).
    fn stage(&self, inputs: &[&Tensor]) -> Result<Vec<DeviceBuf>> {
        let pool = &self.gpu.pool;
        inputs
            .iter()
            .map(|t| {
                let buf = pool.take(t.len() * 4)?;
                pool.copy_dtod(buf.ptr(), ptr(t), t.len() * 4)?;
                Ok(buf)
            })
            .collect()
    }

    fn views(bufs: &[DeviceBuf], inputs: &[&Tensor]) -> Vec<Tensor> {
        bufs.iter().zip(inputs).map(|(b, t)| Tensor::on_device(b.view(), t.rows(), t.cols())).collect()
    }

    /// A region abandoned: its recording retired, its key recorded again next time (or given up).
    fn missed(&self, key: u64, r: Recording, misses: u8) {
        self.regions.lock().retiring.push(r);
        let misses = misses + 1;
        self.remember(key, if misses >= MAX_MISSES { Entry::Failed } else { Entry::Seen { misses } });
    }

    fn record(&self, key: u64, misses: u8, inputs: &[&Tensor], body: Body<'_>) -> Result<()> {
        let bufs = self.stage(inputs)?;
        let views = Self::views(&bufs, inputs);
        let refs: Vec<&Tensor> = views.iter().collect();
        self.gpu.pool.begin_recording(bufs)?;
        let out = catch_unwind(AssertUnwindSafe(|| body(&refs)));
        let failed = !matches!(out, Ok(Ok(())));
        let (r, ok) = self.gpu.pool.end_region(failed).or_raise();
        if ok {
            self.remember(key, Entry::Ready { r, misses });
        } else if failed {
            // The body's own failure: record it another time.
            self.regions.lock().retiring.push(*r);
            self.remember(key, Entry::Seen { misses });
        } else {
            self.missed(key, *r, misses);
        }
        drop(views);
        out.unwrap_or_else(|p| resume_unwind(p))
    }

    fn replay(&self, key: u64, r: Box<Recording>, misses: u8, inputs: &[&Tensor], body: Body<'_>) -> Result<()> {
        let pool = &self.gpu.pool;
        let fits = r.inputs.len() == inputs.len() && r.inputs.iter().zip(inputs).all(|(b, t)| b.bytes() == t.len() * 4);
        if !fits {
            self.missed(key, *r, misses);
            return body(inputs);
        }
        pool.wait_for_graph(&r)?;
        for (b, t) in r.inputs.iter().zip(inputs) {
            pool.copy_dtod(b.ptr(), ptr(t), b.bytes())?;
        }
        let views = Self::views(&r.inputs, inputs);
        let refs: Vec<&Tensor> = views.iter().collect();
        pool.begin_replay(r);
        let out = catch_unwind(AssertUnwindSafe(|| body(&refs)));
        let failed = !matches!(out, Ok(Ok(())));
        // Still replaying when the body failed: its own error, not the recording's.
        let intact = pool.in_region();
        let (r, ok) = pool.end_region(failed).or_raise();
        if ok {
            self.remember(key, Entry::Ready { r, misses: 0 });
        } else if failed && intact {
            self.remember(key, Entry::Ready { r, misses });
        } else {
            self.missed(key, *r, misses);
        }
        drop(views);
        out.unwrap_or_else(|p| resume_unwind(p))
    }
}

impl Drop for Cuda {
    /// Frees every recording (graphs, staging, arenas) with the backend.
    fn drop(&mut self) {
        let regions = std::mem::take(&mut *self.regions.lock());
        let recordings = regions.entries.into_iter().filter_map(|(_, e)| match e {
            Entry::Ready { r, .. } => Some(*r),
            Entry::Seen { .. } | Entry::Failed => None,
        });
        for r in recordings.chain(regions.retiring) {
            self.gpu.pool.retire(r);
        }
    }
}
