//! The CPU backend's threads: a calling thread and `threads − 1` helpers that split the tasks of
//! one parallel region between them, claiming task indices from a shared counter.
//!
//! Built for decode steps, which are hundreds of short regions (a few hundred microseconds of
//! weight streaming each) separated by a few microseconds of serial work. A pool whose threads
//! sleep between regions pays two wake-ups a region (the helpers', then the caller's): measured on
//! the 2-vCPU VM with rayon, ≈ 2 000 context switches per TTS step and 15 % of the run in the
//! kernel. Here the caller works on its own region and then spins for the helpers, and a helper
//! spins for the next region for `SPIN` before it sleeps, so back-to-back regions wake nobody.
//!
//! A region the team cannot take — called from inside a task, or while another thread's region
//! runs on the same team — runs on the calling thread alone: same results, less parallel.

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// How long an idle helper polls for the next region before it sleeps: longer than the serial
/// gaps of a decode step (norms, attention of one token, sampling), short enough that an idle
/// engine holds no core for long.
const SPIN: Duration = Duration::from_millis(2);

thread_local! {
    /// Set while this thread runs a task of some team: a region started from there runs inline.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

/// One region: the tasks, who is claiming them, and the first panic of any.
struct Region<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    tasks: usize,
    next: AtomicUsize,
    done: AtomicUsize,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Region<'_> {
    /// Claims and runs tasks until none is left.
    fn work(&self) {
        let was = IN_TASK.with(|t| t.replace(true));
        loop {
            let i = self.next.fetch_add(1, Relaxed);
            if i >= self.tasks {
                break;
            }
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| (self.f)(i))) {
                self.panic.lock().get_or_insert(p);
            }
            self.done.fetch_add(1, Release);
        }
        IN_TASK.with(|t| t.set(was));
    }
}

/// What the caller and the helpers share.
struct Shared {
    /// The region running now (null between regions); its lifetime is the caller's `run`.
    region: AtomicPtr<Region<'static>>,
    /// Helpers that may hold `region` (registered before they read it).
    holders: AtomicUsize,
    /// Bumped for each new region and to stop: a helper waits for it to change.
    epoch: AtomicU64,
    quit: AtomicBool,
    sleepers: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
}

pub(super) struct Team {
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<()>>,
    /// Held by the thread whose region runs on the helpers.
    busy: Mutex<()>,
}

impl Team {
    /// A team of `threads` (the caller and `threads − 1` helpers named `name(i)`).
    pub(super) fn new(threads: usize, name: impl Fn(usize) -> String) -> std::io::Result<Team> {
        let shared = Arc::new(Shared {
            region: AtomicPtr::new(std::ptr::null_mut()),
            holders: AtomicUsize::new(0),
            epoch: AtomicU64::new(0),
            quit: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut team = Team { shared, helpers: Vec::new(), busy: Mutex::new(()) };
        for i in 1..threads.max(1) {
            let shared = team.shared.clone();
            // On failure `team` drops here and stops the helpers already started.
            team.helpers.push(std::thread::Builder::new().name(name(i)).spawn(move || helper(&shared))?);
        }
        Ok(team)
    }

    /// Threads that run a region (the caller included).
    pub(super) fn threads(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Runs `f(i)` for every `i < tasks`, on the team's threads, and returns when all are done.
    /// A task's panic is raised again here, after every other task has finished.
    pub(super) fn run(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        let guard = if tasks > 1 && !self.helpers.is_empty() && !IN_TASK.with(|t| t.get()) {
            self.busy.try_lock()
        } else {
            None
        };
        let Some(_guard) = guard else {
            (0..tasks).for_each(f);
            return;
        };
        let region = Region { f, tasks, next: AtomicUsize::new(0), done: AtomicUsize::new(0), panic: Mutex::new(None) };
        let s = &*self.shared;
        // The helpers see `region` only between these two stores, and this function does not
        // return while one may still hold it (`holders`).
        s.region.store(&region as *const Region<'_> as *mut Region<'static>, SeqCst);
        s.epoch.fetch_add(1, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            let _g = s.sleep.lock();
            s.wake.notify_all();
        }
        region.work();
        wait_until(|| region.done.load(Acquire) >= tasks);
        s.region.store(std::ptr::null_mut(), SeqCst);
        wait_until(|| s.holders.load(SeqCst) == 0);
        if let Some(p) = region.panic.into_inner() {
            resume_unwind(p);
        }
    }

    /// `f(i, chunk)` over `data` cut into chunks of `len` elements (the last may be shorter).
    pub(super) fn chunks<T: Send>(&self, data: &mut [T], len: usize, f: impl Fn(usize, &mut [T]) + Sync) {
        assert!(len > 0, "chunks of no elements");
        let n = data.len();
        let base = SendPtr(data.as_mut_ptr());
        self.run(n.div_ceil(len), &|i| {
            let start = i * len;
            let end = (start + len).min(n);
            // SAFETY: every index runs once, so the chunks handed out are disjoint parts of
            // `data`, which `run` borrows until every task has finished.
            let chunk = unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) };
            f(i, chunk)
        });
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.quit.store(true, SeqCst);
        s.epoch.fetch_add(1, SeqCst);
        {
            let _g = s.sleep.lock();
            s.wake.notify_all();
        }
        for h in self.helpers.drain(..) {
            let _ = h.join();
        }
    }
}

/// A helper: waits for a region, takes part in it, and again, until the team stops.
fn helper(s: &Shared) {
    let mut seen = 0;
    while next_epoch(s, &mut seen) {
        s.holders.fetch_add(1, SeqCst);
        let p = s.region.load(SeqCst);
        if !p.is_null() {
            // SAFETY: registered in `holders` before reading a non-null `region`, so its caller
            // is still inside `run` and the region alive (see `Team::run`).
            unsafe { &*p }.work();
        }
        s.holders.fetch_sub(1, SeqCst);
    }
}

/// Waits for the epoch to move past `seen` (polling for `SPIN`, then asleep); false once the
/// team stops.
fn next_epoch(s: &Shared, seen: &mut u64) -> bool {
    let start = Instant::now();
    let mut polls = 0u32;
    loop {
        let e = s.epoch.load(Acquire);
        if e != *seen {
            *seen = e;
            return !s.quit.load(SeqCst);
        }
        polls = polls.wrapping_add(1);
        if polls < 256 {
            std::hint::spin_loop();
            continue;
        }
        if start.elapsed() > SPIN {
            break;
        }
        // Past the first few microseconds, poll between yields: a thread waiting for this
        // core (another pool's, the host's) gets it, and an idle core returns at once.
        std::thread::yield_now();
    }
    let mut g = s.sleep.lock();
    s.sleepers.fetch_add(1, SeqCst);
    loop {
        let e = s.epoch.load(SeqCst);
        if e != *seen {
            s.sleepers.fetch_sub(1, SeqCst);
            *seen = e;
            return !s.quit.load(SeqCst);
        }
        s.wake.wait(&mut g);
    }
}

/// Polls `done` until it holds, yielding the core now and then (a helper descheduled in the
/// middle of a task must get it back).
fn wait_until(done: impl Fn() -> bool) {
    let mut polls = 0u32;
    while !done() {
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(1024) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// A pointer into data that tasks write in disjoint parts.
struct SendPtr<T>(*mut T);
// SAFETY: only used by `Team::chunks`, whose tasks touch disjoint chunks.
unsafe impl<T: Send> Send for SendPtr<T> {}
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_on_every_team_size() {
        for threads in 1..=4 {
            let team = Team::new(threads, |i| format!("t{i}")).unwrap();
            assert_eq!(team.threads(), threads);
            for tasks in [0, 1, 2, 3, 17, 1000] {
                let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                team.run(tasks, &|i| {
                    hits[i].fetch_add(1, Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Relaxed) == 1), "{threads} threads, {tasks} tasks");
            }
        }
    }

    #[test]
    fn chunks_cover_the_data_once() {
        let team = Team::new(3, |i| format!("t{i}")).unwrap();
        let mut data = vec![0usize; 1003];
        team.chunks(&mut data, 10, |c, chunk| {
            for (j, v) in chunk.iter_mut().enumerate() {
                *v += c * 10 + j + 1;
            }
        });
        assert!(data.iter().enumerate().all(|(i, &v)| v == i + 1));
    }

    #[test]
    fn nested_and_concurrent_regions_run_inline() {
        let team = Arc::new(Team::new(2, |i| format!("t{i}")).unwrap());
        let total = AtomicUsize::new(0);
        team.run(8, &|_| {
            team.run(4, &|_| {
                total.fetch_add(1, Relaxed);
            })
        });
        assert_eq!(total.load(Relaxed), 32);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let team = team.clone();
                std::thread::spawn(move || {
                    let sum = AtomicUsize::new(0);
                    for _ in 0..200 {
                        team.run(16, &|i| {
                            sum.fetch_add(i, Relaxed);
                        });
                    }
                    sum.load(Relaxed)
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), 200 * 120);
        }
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_after_the_others_finish() {
        let team = Team::new(2, |i| format!("t{i}")).unwrap();
        let done = AtomicUsize::new(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            team.run(64, &|i| {
                if i == 5 {
                    panic!("task five");
                }
                std::thread::sleep(Duration::from_micros(50));
                done.fetch_add(1, Relaxed);
            })
        }));
        assert!(r.is_err());
        assert_eq!(done.load(Relaxed), 63);
        // The team still works.
        let n = AtomicUsize::new(0);
        team.run(10, &|_| {
            n.fetch_add(1, Relaxed);
        });
        assert_eq!(n.load(Relaxed), 10);
    }

    #[test]
    fn sleeping_helpers_wake_for_the_next_region() {
        let team = Team::new(2, |i| format!("t{i}")).unwrap();
        std::thread::sleep(SPIN * 3);
        let by_helper = AtomicBool::new(false);
        let caller = std::thread::current().id();
        // Tasks long enough that the helper, once woken, takes some.
        team.run(200, &|_| {
            if std::thread::current().id() != caller {
                by_helper.store(true, Relaxed);
            }
            std::thread::sleep(Duration::from_micros(100));
        });
        assert!(by_helper.load(Relaxed), "the sleeping helper never took a task");
    }
}
