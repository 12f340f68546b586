//! Backend-owned key/value caches: one pool of fixed-size blocks per model, handed out to slots.
//!
//! Why paged: the engine's limits (16 slots × 8192 new tokens by default) would need ≈ 30 GB of
//! f32 keys and values per model if every slot were preallocated to the hard limit, while real
//! sequences are short. Blocks of `KV_BLOCK` tokens are allocated once and never move (stable
//! addresses, what a captured GPU graph needs); a slot's block table maps its positions to
//! blocks. Blocks return to the pool's free list when a slot is cleared, so steady-state steps
//! take blocks from the free list and never allocate; the pool grows (fallibly) only when it runs
//! dry. A sliding-window user (the codec) gives back the blocks that fell out of its window.

use std::sync::Arc;

use super::cuda::memory::{DeviceBuf, Pool};
use crate::error::{Error, ErrorKind, Result};

/// Tokens per block.
pub const KV_BLOCK: usize = 16;

/// Most blocks a pool allocates at creation.
const MAX_INITIAL_BLOCKS: usize = 256;

#[derive(Clone, Debug, Default)]
struct SlotTable {
    /// Blocks holding positions `first_block·KV_BLOCK ..`, in order.
    blocks: Vec<u32>,
    /// Blocks dropped from the front (sliding window).
    first_block: usize,
    /// Tokens held (also the position of the next token).
    len: usize,
}

/// Where a pool's blocks live.
enum Blocks {
    Host(Vec<Box<[f32]>>),
    /// Device buffers of a CUDA backend (each block its own allocation: stable addresses).
    Device(Vec<DeviceBuf>, Arc<Pool>),
}

impl Blocks {
    fn len(&self) -> usize {
        match self {
            Blocks::Host(b) => b.len(),
            Blocks::Device(b, _) => b.len(),
        }
    }

    fn host(&self) -> &[Box<[f32]>] {
        match self {
            Blocks::Host(b) => b,
            Blocks::Device(..) => panic!("a CUDA KV cache was passed to the CPU backend"),
        }
    }
}

/// Keys and values of `slots` sequences for `layers` layers, `width = kv_heads × head_dim` wide.
/// Each block holds `[layers][k, v][KV_BLOCK][width]`.
pub struct KvCache {
    layers: usize,
    width: usize,
    blocks: Blocks,
    free: Vec<u32>,
    slots: Vec<SlotTable>,
    /// Blocks allocated after creation (the pool ran dry).
    grown: usize,
}

impl std::fmt::Debug for KvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (n, on) = (self.blocks.len(), if matches!(self.blocks, Blocks::Device(..)) { "device" } else { "host" });
        write!(f, "KvCache({} slots, {n} {on} blocks, {} free)", self.slots.len(), self.free.len())
    }
}

/// A zeroed block, fallibly: large blocks come from the allocator's zeroed pages (mapped lazily
/// by the OS), so a pool sized for many slots costs address space until it is written.
fn alloc_block(len: usize) -> Result<Box<[f32]>> {
    let oom = || Error::new(ErrorKind::OutOfMemory, format!("cannot allocate a KV cache block of {} bytes", len * 4));
    if len == 0 {
        return Ok(Box::new([]));
    }
    let layout = std::alloc::Layout::array::<f32>(len).map_err(|_| oom())?;
    // SAFETY: the layout is non-zero-sized; a non-null result is a zeroed allocation of `len`
    // f32s (all-zero bits are 0.0), owned by the Box, which frees it with the same layout.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout) as *mut f32;
        if ptr.is_null() {
            return Err(oom());
        }
        Ok(Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)))
    }
}

impl KvCache {
    /// A pool in host memory for `slots` sequences with room for `tokens_per_slot` tokens each from
    /// the start.
    pub fn new(layers: usize, width: usize, slots: usize, tokens_per_slot: usize) -> Result<KvCache> {
        KvCache::with_blocks(layers, width, slots, tokens_per_slot, Blocks::Host(Vec::new()))
    }

    /// The same pool in a CUDA backend's device memory.
    pub(in crate::backend) fn on_device(
        layers: usize,
        width: usize,
        slots: usize,
        tokens_per_slot: usize,
        pool: Arc<Pool>,
    ) -> Result<KvCache> {
        KvCache::with_blocks(layers, width, slots, tokens_per_slot, Blocks::Device(Vec::new(), pool))
    }

    fn with_blocks(
        layers: usize,
        width: usize,
        slots: usize,
        tokens_per_slot: usize,
        blocks: Blocks,
    ) -> Result<KvCache> {
        if layers.checked_mul(2 * KV_BLOCK).and_then(|n| n.checked_mul(width)).and_then(|n| n.checked_mul(4)).is_none()
        {
            return Err(Error::new(
                ErrorKind::OutOfMemory,
                format!("a KV cache of {layers} layers × {width} values per token cannot be addressed"),
            ));
        }
        let mut c =
            KvCache { layers, width, blocks, free: Vec::new(), slots: vec![SlotTable::default(); slots], grown: 0 };
        // Up front at most MAX_INITIAL_BLOCKS blocks, however many slots: more slots take
        // blocks as they fill (each block is its own mapping; thousands of slots must load).
        let n = slots.saturating_mul(tokens_per_slot.div_ceil(KV_BLOCK)).min(MAX_INITIAL_BLOCKS);
        for _ in 0..n {
            c.add_block()?;
        }
        c.grown = 0;
        Ok(c)
    }

    fn block_len(&self) -> usize {
        self.layers * 2 * KV_BLOCK * self.width
    }

    fn add_block(&mut self) -> Result<()> {
        let len = self.block_len();
        let index = self.blocks.len() as u32;
        match &mut self.blocks {
            Blocks::Host(b) => b.push(alloc_block(len)?),
            Blocks::Device(b, pool) => {
                let buf = pool.alloc_owned(len * 4)?;
                pool.zero(buf.ptr(), len * 4)?;
                b.push(buf);
            }
        }
        self.free.push(index);
        self.grown += 1;
        Ok(())
    }

    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    pub fn layers(&self) -> usize {
        self.layers
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// Tokens held by a slot (also the position of its next token).
    pub fn len(&self, slot: usize) -> usize {
        self.slots[slot].len
    }

    pub fn is_empty(&self, slot: usize) -> bool {
        self.len(slot) == 0
    }

    /// Bytes the pool holds.
    pub fn bytes(&self) -> usize {
        self.blocks.len() * self.block_len() * 4
    }

    /// Blocks allocated since creation because the free list was empty.
    pub fn grown_blocks(&self) -> usize {
        self.grown
    }

    /// Bytes one token takes in every layer (keys and values).
    pub fn bytes_per_token(layers: usize, width: usize) -> usize {
        layers * 2 * width * 4
    }

    /// Empties a slot; its blocks go back to the pool.
    pub fn clear(&mut self, slot: usize) {
        let t = &mut self.slots[slot];
        self.free.extend(t.blocks.drain(..).rev());
        t.first_block = 0;
        t.len = 0;
    }

    /// Makes room for `tokens` more tokens in a slot (from the free list; the pool grows only
    /// when it is empty, and an allocation failure is `OutOfMemory`).
    pub fn reserve(&mut self, slot: usize, tokens: usize) -> Result<()> {
        let t = &self.slots[slot];
        let need = (t.len + tokens).div_ceil(KV_BLOCK).saturating_sub(t.first_block);
        let have = t.blocks.len();
        for _ in have..need {
            if self.free.is_empty() {
                self.add_block()?;
            }
            let b = self.free.pop().expect("a free block");
            self.slots[slot].blocks.push(b);
        }
        Ok(())
    }

    /// Gives back the blocks whose positions are all before `pos` (a sliding window's past).
    pub fn forget_before(&mut self, slot: usize, pos: usize) {
        let t = &mut self.slots[slot];
        let drop = (pos / KV_BLOCK).saturating_sub(t.first_block).min(t.blocks.len());
        if drop > 0 {
            self.free.extend(t.blocks.drain(..drop));
            t.first_block += drop;
        }
    }

    /// Counts `n` tokens written to every layer of a slot (after the forward pass wrote them).
    pub fn advance(&mut self, slot: usize, n: usize) {
        let t = &mut self.slots[slot];
        assert!(
            (t.len + n).div_ceil(KV_BLOCK) <= t.first_block + t.blocks.len(),
            "KV cache slot {slot}: {n} tokens advanced past the reserved blocks"
        );
        t.len += n;
    }

    #[inline]
    fn locate(&self, layer: usize, slot: usize, pos: usize, value: bool) -> (usize, usize) {
        let t = &self.slots[slot];
        let b = t.blocks[pos / KV_BLOCK - t.first_block] as usize;
        let off = ((layer * 2 + value as usize) * KV_BLOCK + pos % KV_BLOCK) * self.width;
        (b, off)
    }

    /// The key row of `pos` (must be held or reserved).
    #[inline]
    pub(in crate::backend) fn key(&self, layer: usize, slot: usize, pos: usize) -> &[f32] {
        let (b, off) = self.locate(layer, slot, pos, false);
        &self.blocks.host()[b][off..off + self.width]
    }

    #[inline]
    pub(in crate::backend) fn value(&self, layer: usize, slot: usize, pos: usize) -> &[f32] {
        let (b, off) = self.locate(layer, slot, pos, true);
        &self.blocks.host()[b][off..off + self.width]
    }

    pub(in crate::backend) fn write(&mut self, layer: usize, slot: usize, pos: usize, k: &[f32], v: &[f32]) {
        let w = self.width;
        let (kb, koff) = self.locate(layer, slot, pos, false);
        let (vb, voff) = self.locate(layer, slot, pos, true);
        let Blocks::Host(blocks) = &mut self.blocks else { panic!("a CUDA KV cache was passed to the CPU backend") };
        blocks[kb][koff..koff + w].copy_from_slice(k);
        blocks[vb][voff..voff + w].copy_from_slice(v);
    }

    /// Whether position `pos` of a slot lies in a block the slot holds (reserved, not given back).
    pub(in crate::backend) fn holds(&self, slot: usize, pos: usize) -> bool {
        let t = &self.slots[slot];
        pos / KV_BLOCK >= t.first_block && pos / KV_BLOCK - t.first_block < t.blocks.len()
    }

    /// The device address of block `b` (device pools only).
    pub(in crate::backend) fn device_block(&self, b: usize) -> u64 {
        let Blocks::Device(blocks, _) = &self.blocks else { panic!("a host KV cache was passed to a CUDA backend") };
        blocks[b].ptr()
    }

    /// A slot's blocks, in position order, and the index of the first one's block in position terms
    /// (blocks before it were given back by a sliding window).
    pub(in crate::backend) fn slot_blocks(&self, slot: usize) -> (&[u32], usize) {
        let t = &self.slots[slot];
        (&t.blocks, t.first_block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_reused_and_windows_give_blocks_back() {
        let mut c = KvCache::new(2, 4, 2, 32).unwrap();
        assert_eq!(c.blocks.len(), 4);
        c.reserve(0, 40).unwrap();
        assert_eq!(c.grown_blocks(), 0, "40 tokens take 3 of the 4 free blocks");
        c.reserve(1, 32).unwrap();
        assert_eq!(c.grown_blocks(), 1, "the pool grows when it runs dry");
        for p in 0..40 {
            c.write(1, 0, p, &[p as f32; 4], &[-(p as f32); 4]);
        }
        c.advance(0, 40);
        assert_eq!(c.key(1, 0, 33), &[33.0; 4]);
        assert_eq!(c.value(1, 0, 17), &[-17.0; 4]);
        c.forget_before(0, 35);
        assert_eq!(c.key(1, 0, 35), &[35.0; 4]);
        c.clear(0);
        c.reserve(1, 64).unwrap();
        assert_eq!(c.grown_blocks(), 1, "cleared blocks are reused before the pool grows");
        assert_eq!(c.free.len(), 1);
    }

    #[test]
    fn impossible_sizes_are_errors_not_aborts() {
        let e = KvCache::new(1 << 20, 1 << 40, 1, 16).unwrap_err();
        assert_eq!(e.kind, ErrorKind::OutOfMemory);
        let e = KvCache::new(64, 1 << 36, 1, 16).unwrap_err();
        assert_eq!(e.kind, ErrorKind::OutOfMemory, "{}", e.message);
    }
}
