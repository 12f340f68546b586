//! Recorded regions (`Backend::recorded`): a run of ops that issues the same launches every time —
//! the same kernels, grids and buffers; only the contents of its uploaded tables and of its staged
//! inputs change — is captured once as a CUDA graph and then replayed by one `cuGraphLaunch`.
//!
//! The host code of a replayed region still runs (cache bookkeeping, generators, the tables'
//! contents), but its ops launch nothing: each one is checked against the recorded node it should
//! be — an allocation of the same size (which hands out the recorded buffer), an upload to the same
//! buffer (its bytes go to the recorded page-locked staging that the graph's copy node reads), the
//! same launch, copy or memset — and the graph is launched at the end. A region that does
//! anything else (a different op, a wait, a new allocation) is *abandoned*: the nodes so far are
//! issued one by one, as they would have been, and the rest runs eagerly; the key is not replayed
//! again. So a wrong key costs speed, never a wrong result.
//!
//! Recording runs under stream capture (relaxed mode: the staging is allocated meanwhile); the
//! buffers a recording takes leave the pool and belong to it (its arena), so replays find them where
//! the graph expects them. What a region returns lives in its arena: valid until the region's next
//! replay; the arena's memory goes back only once the recording is retired and no buffer of it is
//! left (the buffers hold the arena).

use std::collections::HashMap;
use std::ffi::c_void;

use cudarc::driver::result as cu;
use cudarc::driver::sys;

use super::memory::{Pool, driver_error};
use crate::error::Result;

/// One kernel launch as recorded: what the graph's kernel node holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    pub function: sys::CUfunction,
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub smem: u32,
    pub args: Vec<u64>,
}

/// One op of a recorded region.
#[derive(Debug)]
pub(super) enum Node {
    Take { bytes: usize, ptr: u64 },
    Upload { dst: u64, bytes: usize, stage: *mut u8 },
    Launch(Launch),
    Copy { dst: u64, src: u64, bytes: usize },
    Zero { dst: u64, bytes: usize },
}

/// Page-locked host chunks for a recording's uploads (bump-allocated, 8-byte aligned).
#[derive(Debug, Default)]
pub(super) struct Staging {
    chunks: Vec<(*mut c_void, usize, usize)>,
}

const STAGING_CHUNK: usize = 64 << 10;

impl Staging {
    fn alloc(&mut self, bytes: usize) -> Result<*mut u8> {
        let need = bytes.next_multiple_of(8);
        if let Some((p, cap, used)) = self.chunks.last_mut()
            && *cap - *used >= need
        {
            // SAFETY: inside the chunk (checked above).
            let at = unsafe { (*p as *mut u8).add(*used) };
            *used += need;
            return Ok(at);
        }
        let cap = need.max(STAGING_CHUNK);
        // SAFETY: a plain page-locked allocation, freed by `free`.
        let p = unsafe { cu::malloc_host(cap, 0) }.map_err(|e| driver_error("page-locked staging", e))?;
        self.chunks.push((p, cap, need));
        Ok(p as *mut u8)
    }

    /// # Safety
    /// No copy still in flight may read the chunks.
    pub(super) unsafe fn free(&mut self) {
        for (p, _, _) in self.chunks.drain(..) {
            // SAFETY: allocated by malloc_host above (the caller: no reader left).
            let _ = unsafe { cu::free_host(p) };
        }
    }
}

/// The device buffers a recording owns: each with whether it was allocated synchronously (else it
/// came from the pool's idle buffers, where it goes back). Held by the recording and by every
/// buffer handed out of it; the last one to go frees it.
#[derive(Debug)]
pub struct Arena {
    /// Which recording this is (its buffers name it).
    pub(super) id: u64,
    pool: std::sync::Weak<Pool>,
    bufs: parking_lot::Mutex<Vec<(u64, usize, bool)>>,
    /// Buffers handed out and not yet dropped: a replay must not hand one out again.
    live: parking_lot::Mutex<std::collections::HashSet<u64>>,
}

impl Drop for Arena {
    fn drop(&mut self) {
        let Some(pool) = self.pool.upgrade() else { return }; // the context's end reclaims it
        let _one = pool.exclusive.lock();
        let bufs = std::mem::take(&mut *self.bufs.lock());
        if pool.in_region() {
            // Not while another region records (a wait would end its capture): when it ends.
            pool.orphans.lock().extend(bufs);
            return;
        }
        pool.free_arena(bufs);
    }
}

impl Pool {
    /// Frees a retired arena's buffers (the synchronous ones after a wait for the stream).
    pub(super) fn free_arena(&self, bufs: Vec<(u64, usize, bool)>) {
        if bufs.iter().any(|&(_, _, sync)| sync) && self.synchronize_quietly().is_err() {
            return;
        }
        for (p, bytes, sync) in bufs {
            if sync {
                // SAFETY: from malloc_sync; the stream has run every use (synchronized above).
                let _ = unsafe { cu::free_sync(p) };
            } else {
                self.give(p, bytes);
            }
        }
    }
}

/// A region's recording: its nodes, the buffers and staging they name, its graph.
#[derive(Debug)]
pub struct Recording {
    pub(super) arena: std::sync::Arc<Arena>,
    pub(super) nodes: Vec<Node>,
    /// Arena buffers free during the recording (reused by its later allocations, as the pool would).
    pub(super) free: HashMap<usize, Vec<u64>>,
    pub(super) staging: Staging,
    /// The staged inputs' buffers (from the pool; theirs until retired).
    pub(super) inputs: Vec<super::memory::DeviceBuf>,
    pub(super) exec: Option<sys::CUgraphExec>,
    /// Recorded after each launch of the graph: its staging may be rewritten once it has passed.
    pub(super) done: Option<sys::CUevent>,
}

// SAFETY: the raw handles and host pointers are owned by the recording and used only by the
// backend that made it, under its pool's lock.
unsafe impl Send for Recording {}

/// What a pool does with its ops now.
#[derive(Debug, Default)]
pub(super) enum Mode {
    #[default]
    Eager,
    Recording(Box<Recording>),
    /// Replaying: the node the next op must be.
    Replaying(Box<Recording>, usize),
}

/// What an op hook decided.
pub(super) enum Hook {
    /// Issue the op (eager, or captured while recording).
    Issue,
    /// Replayed: the graph does it.
    Skip,
}

impl Pool {
    /// The recorded node an allocation of `bytes` is (recording: taken from the recording's free
    /// buffers or the pool's idle ones, into the arena). `None`: allocate as usual.
    pub(super) fn region_take(&self, bytes: usize) -> Result<Option<(u64, std::sync::Arc<Arena>)>> {
        let mut mode = self.mode.lock();
        match &mut *mode {
            Mode::Eager => return Ok(None),
            Mode::Recording(r) => {
                let reused = r.free.get_mut(&bytes).and_then(|v| v.pop());
                let own = |p: u64, sync: bool| r.arena.bufs.lock().push((p, bytes, sync));
                let ptr = match reused.or_else(|| self.pop_idle(bytes).inspect(|&p| own(p, false))) {
                    Some(p) => Some(p),
                    // None idle: a synchronous allocation, which relaxed capture leaves out of the
                    // graph (a stream-ordered one would become a graph memory node).
                    None => self.alloc_outside_capture(bytes).ok().inspect(|&p| own(p, true)),
                };
                if let Some(ptr) = ptr {
                    r.nodes.push(Node::Take { bytes, ptr });
                    r.arena.live.lock().insert(ptr);
                    return Ok(Some((ptr, r.arena.clone())));
                }
            }
            Mode::Replaying(r, at) => {
                if let Some(&Node::Take { bytes: b, ptr }) = r.nodes.get(*at)
                    && b == bytes
                    && r.arena.live.lock().insert(ptr)
                {
                    *at += 1;
                    return Ok(Some((ptr, r.arena.clone())));
                }
            }
        }
        drop(mode);
        // (Or the recorded buffer is still held: an output of the last replay kept past it.)
        self.abandon("an allocation the recording does not have")?;
        Ok(None)
    }

    /// A buffer of `arena` dropped: no longer held; free again for the rest of its recording
    /// while that is being recorded; otherwise the arena keeps it.
    pub(super) fn region_give(&self, ptr: u64, bytes: usize, arena: &Arena) {
        arena.live.lock().remove(&ptr);
        if let Mode::Recording(r) = &mut *self.mode.lock()
            && r.arena.id == arena.id
        {
            r.free.entry(bytes).or_default().push(ptr);
        }
    }

    /// An upload of `src` to `dst`: recording stages it (the graph's copy node reads the staging at
    /// each launch); replaying writes the staging. Returns `Skip` when that was all.
    pub(super) fn region_upload(&self, dst: u64, src: &[u8]) -> Result<Hook> {
        let mut mode = self.mode.lock();
        match &mut *mode {
            Mode::Eager => return Ok(Hook::Issue),
            Mode::Recording(r) => {
                let stage = match r.staging.alloc(src.len()) {
                    Ok(p) => p,
                    Err(_) => {
                        drop(mode);
                        self.abandon("no page-locked staging")?;
                        return Ok(Hook::Issue);
                    }
                };
                // SAFETY: `stage` holds src.len() bytes (just allocated).
                unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), stage, src.len()) };
                r.nodes.push(Node::Upload { dst, bytes: src.len(), stage });
                drop(mode);
                // SAFETY: `dst` holds the bytes (the caller's); the staging lives as long as the graph.
                let staged = unsafe { std::slice::from_raw_parts(stage as *const u8, src.len()) };
                self.captured(|| {
                    self.bind()?;
                    unsafe { cu::memcpy_htod_async(dst, staged, self.stream().cu_stream()) }
                        .map_err(|e| driver_error("upload", e))
                })?;
                return Ok(Hook::Skip);
            }
            Mode::Replaying(r, at) => {
                if let Some(&Node::Upload { dst: d, bytes, stage }) = r.nodes.get(*at)
                    && d == dst
                    && bytes == src.len()
                {
                    // SAFETY: the staging holds `bytes`; the graph's last launch has passed it
                    // (`Cuda::recorded` waited for its event before the replay began).
                    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), stage, bytes) };
                    *at += 1;
                    return Ok(Hook::Skip);
                }
            }
        }
        drop(mode);
        self.abandon("an upload the recording does not have")?;
        Ok(Hook::Issue)
    }

    /// A launch, copy or memset: recorded (then issued into the capture) or checked against the
    /// replay.
    pub(super) fn region_op(&self, op: Node) -> Result<Hook> {
        let mut mode = self.mode.lock();
        match &mut *mode {
            Mode::Eager => return Ok(Hook::Issue),
            Mode::Recording(r) => {
                r.nodes.push(op);
                return Ok(Hook::Issue);
            }
            Mode::Replaying(r, at) => {
                let same = match (r.nodes.get(*at), &op) {
                    (Some(Node::Launch(a)), Node::Launch(b)) => a == b,
                    (Some(Node::Copy { dst, src, bytes }), Node::Copy { dst: d, src: s, bytes: b }) => {
                        (dst, src, bytes) == (d, s, b)
                    }
                    (Some(Node::Zero { dst, bytes }), Node::Zero { dst: d, bytes: b }) => (dst, bytes) == (d, b),
                    _ => false,
                };
                if same {
                    *at += 1;
                    return Ok(Hook::Skip);
                }
            }
        }
        drop(mode);
        self.abandon("an op the recording does not have")?;
        Ok(Hook::Issue)
    }

    /// Whether a region is being recorded or replayed (per-call tables bypass their cache then).
    pub(super) fn in_region(&self) -> bool {
        !matches!(*self.mode.lock(), Mode::Eager)
    }

    /// Something only eager execution can do (a wait, a new device allocation): ends a region.
    pub(super) fn leave_region(&self, why: &str) -> Result<()> {
        if self.in_region() { self.abandon(why) } else { Ok(()) }
    }

    /// Gives up the region: the capture (if recording) is discarded, the nodes so far are issued
    /// one by one, and ops run eagerly from here. The recording is kept (`spent`): its buffers may
    /// be in use.
    pub(super) fn abandon(&self, why: &str) -> Result<()> {
        // (The mode's lock is released before anything below can drop a recording.)
        let mode = std::mem::take(&mut *self.mode.lock());
        let (mut r, upto) = match mode {
            Mode::Eager => return Ok(()),
            Mode::Recording(r) => {
                self.end_capture_discarding();
                let n = r.nodes.len();
                (r, n)
            }
            Mode::Replaying(r, at) => (r, at),
        };
        log::debug!("cuda: a recorded region runs eagerly: {why}");
        let issued = self.issue(&r.nodes[..upto]).and_then(|()| self.mark_done(&mut r));
        let previous = self.spent.lock().replace(r);
        debug_assert!(previous.is_none(), "regions do not nest");
        issued
    }

    /// Ends the stream's capture and throws the graph away (abandoning, or a failed region).
    fn end_capture_discarding(&self) {
        let _ = self.bind();
        // SAFETY: our stream, capturing since `begin_recording`.
        if let Ok(g) = unsafe { cu::stream::end_capture(self.stream().cu_stream()) }
            && !g.is_null()
        {
            // SAFETY: a graph we own, never instantiated.
            let _ = unsafe { cu::graph::destroy(g) };
        }
    }

    /// Records the recording's event after what the stream has now (its staging is read until
    /// then: a graph launch, or nodes issued one by one).
    fn mark_done(&self, r: &mut Recording) -> Result<()> {
        if r.done.is_none() {
            r.done = Some(
                cu::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING).map_err(|e| driver_error("event", e))?,
            );
        }
        // SAFETY: our event and stream.
        unsafe { cu::event::record(r.done.expect("made above"), self.stream().cu_stream()) }
            .map_err(|e| driver_error("event", e))
    }

    /// Runs a captured op's driver call (`f`); when the driver refuses it while recording (a
    /// capture it cannot take), the region is abandoned instead — which issues the op, already
    /// among the nodes, eagerly — so the work goes on.
    pub(super) fn captured(&self, f: impl FnOnce() -> Result<()>) -> Result<()> {
        match f() {
            Err(e) if matches!(*self.mode.lock(), Mode::Recording(_)) => self.abandon(&e.message),
            other => other,
        }
    }

    /// Issues recorded nodes one by one (eager).
    fn issue(&self, nodes: &[Node]) -> Result<()> {
        self.bind()?;
        let stream = self.stream().cu_stream();
        for n in nodes {
            // SAFETY: every node names live buffers (the arena, weights, caches) and staging of the
            // recording, which the caller keeps; the launch arguments are those checked when recorded.
            unsafe {
                match n {
                    Node::Take { .. } => Ok(()),
                    Node::Upload { dst, bytes, stage } => {
                        cu::memcpy_htod_async(*dst, std::slice::from_raw_parts(*stage as *const u8, *bytes), stream)
                    }
                    Node::Launch(l) => {
                        let mut p: Vec<*mut c_void> = l.args.iter().map(|v| v as *const u64 as *mut c_void).collect();
                        cu::launch_kernel(l.function, l.grid, l.block, l.smem, stream, &mut p)
                    }
                    Node::Copy { dst, src, bytes } => cu::memcpy_dtod_async(*dst, *src, *bytes, stream),
                    Node::Zero { dst, bytes } => cu::memset_d8_async(*dst, 0, *bytes, stream),
                }
            }
            .map_err(|e| driver_error("replaying a recorded op", e))?;
        }
        Ok(())
    }

    /// Starts recording (capture on the stream).
    pub(super) fn begin_recording(self: &std::sync::Arc<Self>, inputs: Vec<super::memory::DeviceBuf>) -> Result<()> {
        self.bind()?;
        // SAFETY: our stream, not capturing (regions do not nest: `Cuda::recorded`).
        unsafe {
            cu::stream::begin_capture(
                self.stream().cu_stream(),
                sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED,
            )
        }
        .map_err(|e| driver_error("stream capture", e))?;
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let arena =
            Arena { id, pool: std::sync::Arc::downgrade(self), bufs: Default::default(), live: Default::default() };
        *self.mode.lock() = Mode::Recording(Box::new(Recording {
            arena: std::sync::Arc::new(arena),
            nodes: Vec::new(),
            free: HashMap::new(),
            staging: Staging::default(),
            inputs,
            exec: None,
            done: None,
        }));
        Ok(())
    }

    /// Starts replaying `r`.
    pub(super) fn begin_replay(&self, r: Box<Recording>) {
        *self.mode.lock() = Mode::Replaying(r, 0);
    }

    /// Ends the region: a finished recording becomes a graph and runs; a finished replay launches
    /// its graph. Returns the recording and whether it can be replayed; `failed` (the body's error
    /// or panic) abandons the region first.
    pub(super) fn end_region(&self, failed: bool) -> Result<(Box<Recording>, bool)> {
        let ended = self.end_region_inner(failed);
        for p in std::mem::take(&mut *self.deferred.lock()) {
            self.release(p);
        }
        let orphans = std::mem::take(&mut *self.orphans.lock());
        if !orphans.is_empty() {
            self.free_arena(orphans);
        }
        ended
    }

    fn end_region_inner(&self, failed: bool) -> Result<(Box<Recording>, bool)> {
        if failed {
            self.abandon("the region failed")?;
        }
        let mode = std::mem::take(&mut *self.mode.lock());
        match mode {
            Mode::Eager => {
                let r = self.spent.lock().take().expect("an abandoned region leaves its recording");
                Ok((r, false))
            }
            Mode::Recording(mut r) => {
                self.bind()?;
                let stream = self.stream().cu_stream();
                // SAFETY: our stream, capturing since `begin_recording`.
                let graph = unsafe { cu::stream::end_capture(stream) };
                let exec = graph.and_then(|g| {
                    // SAFETY: the graph just captured; destroyed once instantiated (the exec is
                    // independent of it).
                    let e = unsafe { cu::graph::instantiate(g, sys::CUgraphInstantiate_flags(0)) };
                    let _ = unsafe { cu::graph::destroy(g) };
                    e
                });
                match exec {
                    Ok(e) => {
                        r.exec = Some(e);
                        self.launch_graph(&mut r)?;
                        Ok((r, true))
                    }
                    Err(err) => {
                        log::debug!("cuda: a recorded region did not become a graph ({err}); it runs eagerly");
                        let n = r.nodes.len();
                        self.issue(&r.nodes[..n])?;
                        Ok((r, false))
                    }
                }
            }
            Mode::Replaying(mut r, at) => {
                if at == r.nodes.len() {
                    self.launch_graph(&mut r)?;
                    Ok((r, true))
                } else {
                    log::debug!("cuda: a replayed region ended early ({at} of {} ops)", r.nodes.len());
                    self.issue(&r.nodes[..at])?;
                    Ok((r, false))
                }
            }
        }
    }

    fn launch_graph(&self, r: &mut Recording) -> Result<()> {
        let exec = r.exec.expect("a graph to launch");
        // SAFETY: an instantiated graph of this context, naming the recording's live buffers.
        unsafe { cu::graph::launch(exec, self.stream().cu_stream()) }.map_err(|e| driver_error("graph launch", e))?;
        self.mark_done(r)?;
        self.count_replay();
        Ok(())
    }

    /// Waits (only if it has not yet) for the graph's last launch, before its staging is rewritten.
    pub(super) fn wait_for_graph(&self, r: &Recording) -> Result<()> {
        let Some(done) = r.done else { return Ok(()) };
        self.bind()?;
        // SAFETY: our event.
        if unsafe { cu::event::query(done) }.is_ok() {
            return Ok(());
        }
        self.count_wait();
        // SAFETY: our event.
        unsafe { cu::event::synchronize(done) }.map_err(|e| driver_error("event", e))
    }

    /// Frees a recording: waits for the stream (its staging may still be read), then its graph,
    /// event and staging; its arena goes once no buffer of it is left.
    pub(super) fn retire(&self, mut r: Recording) {
        let _one = self.exclusive.lock();
        if self.bind().is_err() {
            return; // a dead context: its end reclaims everything
        }
        let _ = self.synchronize_quietly();
        // SAFETY: the stream has run every use of the recording (synchronized above).
        unsafe {
            if let Some(e) = r.exec.take() {
                let _ = cu::graph::exec_destroy(e);
            }
            if let Some(e) = r.done.take() {
                let _ = cu::event::destroy(e);
            }
            r.staging.free();
        }
        drop(r);
    }
}
