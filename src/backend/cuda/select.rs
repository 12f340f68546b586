//! Selection on the GPU: the greedy argmax and the official sampling chain (kernels/sample.cu), one
//! block per row; only the chosen ids come back, through the pool's page-locked buffer.

use super::args::KernelArgs;
use super::backend::{BLOCK, Cuda, ptr};
use super::memory::OrRaise;
use crate::backend::sampling::{self, Pick};
use crate::backend::tensor::{Ids, Tensor};

/// The widest rows `sample_f32` takes: its dynamic shared memory, `(cols + 2·pow2) · 4` bytes, and
/// its static shared memory (1296 bytes, kernels/RESOURCES.md; 2 KiB allowed here) must share the
/// 48 KiB a launch gets without opting in to more: up to 3584 columns (the talker's 3072 fit).
const SAMPLE_SMEM_BYTES: usize = 46 * 1024;

/// Whether `sample_f32` takes rows of `cols` (wider ones are sampled on the host).
fn sample_on_device(cols: usize) -> bool {
    (cols + 2 * cols.next_power_of_two()) * 4 <= SAMPLE_SMEM_BYTES
}

impl Cuda {
    pub(super) fn argmax_op(&self, logits: &Tensor) -> Vec<u32> {
        let ids = self.argmax_ids_op(logits);
        self.read_ids_op(&[&ids]).pop().expect("one vector")
    }

    /// The ids of `argmax`, left on the device.
    pub(super) fn argmax_ids_op(&self, logits: &Tensor) -> Ids {
        let rows = logits.rows();
        if rows == 0 {
            return Ids::from_host(Vec::new(), logits.cols());
        }
        let ids = self.gpu.pool.take(rows * 4).or_raise();
        let mut a = KernelArgs::new();
        a.ptr(ptr(logits)).ptr(ids.ptr()).i32(logits.cols() as i32);
        self.gpu.launch("argmax_f32", (rows as u32, 1, 1), BLOCK, 0, &a);
        Ids::on_device(ids, rows, logits.cols())
    }

    pub(super) fn sample_op(&self, logits: &Tensor, picks: &mut [Pick<'_>]) -> Vec<u32> {
        let ids = self.sample_ids_op(logits, picks);
        self.read_ids_op(&[&ids]).pop().expect("one vector")
    }

    /// The ids of `sample`, left on the device (or on the host when the rows were too wide).
    pub(super) fn sample_ids_op(&self, logits: &Tensor, picks: &mut [Pick<'_>]) -> Ids {
        assert_eq!(picks.len(), logits.rows(), "sample: one pick per row");
        let (rows, cols) = (logits.rows(), logits.cols());
        if rows == 0 {
            return Ids::from_host(Vec::new(), cols);
        }
        if !sample_on_device(cols) {
            // Wider than the kernel's shared memory holds: the chain runs on the host.
            let host = logits.to_host();
            let ids = picks
                .iter_mut()
                .enumerate()
                .map(|(r, p)| sampling::sample_row(&mut host[r * cols..(r + 1) * cols].to_vec(), p))
                .collect();
            return Ids::from_host(ids, cols);
        }
        // Per row: the knobs, the distinct seen ids, the barred ranges, and the draw — taken from the
        // row's generator exactly when the CPU would take it (only when sampling).
        let (mut params, mut seen, mut ranges): (Vec<i32>, Vec<u32>, Vec<u32>) =
            (Vec::with_capacity(rows * 10), Vec::new(), Vec::new());
        let mut distinct = std::collections::HashSet::new();
        for p in picks.iter_mut() {
            let sp = p.params;
            let seen_at = seen.len();
            if sp.repetition_penalty != 1.0 {
                distinct.clear();
                seen.extend(p.seen.iter().filter(|&&id| distinct.insert(id)));
            }
            let ranges_at = ranges.len() / 2;
            for r in p.suppress {
                ranges.extend([r.start, r.end]);
            }
            let u = if sp.do_sample { p.rng.next_f64() as f32 } else { 0.0 };
            params.extend([
                sp.repetition_penalty.to_bits() as i32,
                sp.temperature.to_bits() as i32,
                sp.top_p.to_bits() as i32,
                u.to_bits() as i32,
                sp.do_sample as i32,
                sp.top_k.min(i32::MAX as u32) as i32,
                seen_at as i32,
                (seen.len() - seen_at) as i32,
                ranges_at as i32,
                p.suppress.len() as i32,
            ]);
        }
        let (params_d, seen_d, ranges_d) = (self.table(&params), self.table(&seen), self.table(&ranges));
        let ids = self.gpu.pool.take(rows * 4).or_raise();
        let pow2 = cols.next_power_of_two();
        let mut a = KernelArgs::new();
        a.ptr(ptr(logits)).ptr(params_d.ptr()).ptr(seen_d.ptr()).ptr(ranges_d.ptr()).ptr(ids.ptr());
        a.i32(cols as i32).i32(pow2 as i32);
        self.gpu.launch("sample_f32", (rows as u32, 1, 1), BLOCK, ((cols + 2 * pow2) * 4) as u32, &a);
        Ids::on_device(ids, rows, cols)
    }

    /// Id vectors read back together: the device ones gathered into one buffer, then one wait.
    pub(super) fn read_ids_op(&self, ids: &[&Ids]) -> Vec<Vec<u32>> {
        let on_device: usize = ids.iter().filter(|i| i.device_buf().is_some()).map(|i| i.len()).sum();
        let mut all = vec![0u32; on_device];
        if on_device > 0 {
            let pool = &self.gpu.pool;
            let gathered = pool.take(on_device * 4).or_raise();
            let mut at = 0;
            for i in ids {
                if let Some(b) = i.device_buf() {
                    pool.copy_dtod(gathered.ptr() + at as u64 * 4, b.ptr(), i.len() * 4).or_raise();
                    at += i.len();
                }
            }
            pool.download_small(&mut all, gathered.ptr()).or_raise();
        }
        let mut at = 0;
        ids.iter()
            .map(|i| match i.host() {
                Some(v) => v.to_vec(),
                None => {
                    at += i.len();
                    all[at - i.len()..at].to_vec()
                }
            })
            .collect()
    }
}
