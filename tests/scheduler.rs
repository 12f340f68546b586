//! The sticky scheduler: properties of the pure decision function, and a simulation of the
//! worker's loop (decide → load via the real model manager → step) on a virtual clock.

mod common;

use std::time::{Duration, Instant};

use proptest::prelude::*;
use voxkit::engine::manager::{Configured, ModelManager};
use voxkit::engine::scheduler::*;
use voxkit::seams::{LoadContext, ModelKind, ModelSpec};

const KINDS: [ModelKind; 2] = [ModelKind::Tts, ModelKind::Asr];

fn kind_strategy() -> impl Strategy<Value = ModelKind> {
    prop_oneof![Just(ModelKind::Tts), Just(ModelKind::Asr)]
}

#[derive(Clone, Debug)]
struct Scenario {
    /// (kind, priority, age in ms)
    jobs: Vec<(ModelKind, i32, u64)>,
    resident: Resident,
    running: Option<(ModelKind, usize)>,
    last_served: Option<ModelKind>,
    max_batch: usize,
    max_wait_ms: u64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec((kind_strategy(), -3i32..4, 0u64..6000), 0..40),
        any::<(bool, bool)>(),
        prop::option::of((kind_strategy(), 0usize..8)),
        prop::option::of(kind_strategy()),
        1usize..9,
        50u64..4000,
    )
        .prop_map(|(jobs, (tts, asr), running, last_served, max_batch, max_wait_ms)| Scenario {
            jobs,
            resident: Resident { tts, asr },
            running: running.map(|(k, a)| (k, a.min(max_batch))),
            last_served,
            max_batch,
            max_wait_ms,
        })
}

struct Built {
    now: Instant,
    queue: Vec<QueuedJob>,
    policy: Policy,
}

fn build(s: &Scenario) -> Built {
    let now = Instant::now() + Duration::from_secs(10);
    let queue = s
        .jobs
        .iter()
        .enumerate()
        .map(|(i, &(kind, priority, age))| QueuedJob {
            id: i as u64 + 1,
            kind,
            priority,
            enqueued: now - Duration::from_millis(age),
        })
        .collect();
    Built { now, queue, policy: Policy { max_batch: s.max_batch, max_wait: Duration::from_millis(s.max_wait_ms) } }
}

fn decide_for(s: &Scenario, b: &Built) -> Decision {
    decide(&SchedInput {
        queue: &b.queue,
        resident: s.resident,
        running: s.running.map(|(kind, active)| Running { kind, active }),
        last_served: s.last_served,
        now: b.now,
        policy: b.policy,
    })
}

fn starved(j: &QueuedJob, b: &Built) -> bool {
    b.now - j.enqueued >= b.policy.max_wait
}

/// The admission order key: smaller goes first.
fn rank(j: &QueuedJob, b: &Built) -> (bool, i64, Instant, u64) {
    let s = starved(j, b);
    (!s, if s { 0 } else { -(j.priority as i64) }, j.enqueued, j.id)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn decisions_obey_the_rules(s in scenario()) {
        let b = build(&s);
        let d = decide_for(&s, &b);
        let (kind, ids) = match &d {
            Decision::Idle => {
                // Never idle with work waiting and nothing running; with a batch running, idle
                // only when it has no room, nothing of its kind waits, or the other kind starved.
                match s.running {
                    None => prop_assert!(b.queue.is_empty()),
                    Some((rk, active)) => {
                        let room = active < s.max_batch;
                        let same_waiting = b.queue.iter().any(|j| j.kind == rk);
                        let other_starved = b.queue.iter().any(|j| j.kind != rk && starved(j, &b));
                        prop_assert!(!room || !same_waiting || other_starved);
                    }
                }
                return Ok(());
            }
            Decision::Admit { kind, jobs } => (*kind, jobs.clone()),
        };
        let admitted: Vec<&QueuedJob> = ids.iter().map(|id| b.queue.iter().find(|j| j.id == *id).unwrap()).collect();
        // Batch size limit, no duplicates, one kind.
        let room = s.max_batch - s.running.map_or(0, |(_, a)| a);
        prop_assert!(!admitted.is_empty() && admitted.len() <= room);
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), ids.len());
        prop_assert!(admitted.iter().all(|j| j.kind == kind));
        // A running batch only admits its own kind, and not while the other kind starves.
        if let Some((rk, _)) = s.running {
            prop_assert_eq!(kind, rk);
            prop_assert!(!b.queue.iter().any(|j| j.kind != rk && starved(j, &b)));
        } else {
            let any_starved = b.queue.iter().any(|j| starved(j, &b));
            if any_starved {
                // Rule 2: a starved kind goes first; the kind not served last when both starve.
                prop_assert!(b.queue.iter().any(|j| j.kind == kind && starved(j, &b)));
                let both = KINDS.iter().all(|&k| b.queue.iter().any(|j| j.kind == k && starved(j, &b)));
                if let (true, Some(last)) = (both, s.last_served) {
                    prop_assert_eq!(kind, last.other());
                }
            } else {
                // Rule 3: sticky — the resident kind wins even against a larger other group.
                let resident_waiting: Vec<ModelKind> =
                    KINDS.iter().copied().filter(|&k| s.resident.has(k) && b.queue.iter().any(|j| j.kind == k)).collect();
                if resident_waiting.len() == 1 {
                    prop_assert_eq!(kind, resident_waiting[0]);
                } else {
                    let oldest = b.queue.iter().min_by_key(|j| (j.enqueued, j.id)).unwrap();
                    prop_assert_eq!(kind, oldest.kind);
                }
            }
        }
        // Rule 4: admitted in rank order, and no left-out job of the kind outranks an admitted one.
        for w in admitted.windows(2) {
            prop_assert!(rank(w[0], &b) <= rank(w[1], &b));
        }
        let worst = admitted.iter().map(|j| rank(j, &b)).max().unwrap();
        for j in b.queue.iter().filter(|j| j.kind == kind && !ids.contains(&j.id)) {
            prop_assert!(rank(j, &b) > worst, "job {} left out but ranks before an admitted one", j.id);
        }
        // Priority order among the non-starved admitted jobs.
        let prios: Vec<i32> = admitted.iter().filter(|j| !starved(j, &b)).map(|j| j.priority).collect();
        prop_assert!(prios.windows(2).all(|w| w[0] >= w[1]));
    }
}

#[test]
fn resident_kind_is_served_even_when_the_other_group_is_larger() {
    let now = Instant::now() + Duration::from_secs(1);
    let mut queue: Vec<QueuedJob> = (0..10)
        .map(|i| QueuedJob { id: i, kind: ModelKind::Asr, priority: 9, enqueued: now - Duration::from_millis(100) })
        .collect();
    queue.push(QueuedJob { id: 99, kind: ModelKind::Tts, priority: 0, enqueued: now });
    let d = decide(&SchedInput {
        queue: &queue,
        resident: Resident { tts: true, asr: false },
        running: None,
        last_served: Some(ModelKind::Tts),
        now,
        policy: Policy { max_batch: 4, max_wait: Duration::from_secs(2) },
    });
    assert_eq!(d, Decision::Admit { kind: ModelKind::Tts, jobs: vec![99] });
}

// ------------------------------------------------------------------------------------------------
// Simulation: the worker's loop on a virtual clock, with the real model manager.
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct SimJob {
    arrival: u64,
    kind: ModelKind,
    priority: i32,
    steps: u64,
}

struct SimResult {
    waits: Vec<u64>,
    swaps: u64,
    loads: u64,
    end: u64,
}

/// Runs the jobs to completion: each decode step takes 1 ms, each model load `load_ms`.
fn simulate(
    jobs: &[SimJob],
    max_batch: usize,
    max_wait_ms: u64,
    load_ms: u64,
    sizes: (u64, u64),
    budget: u64,
) -> SimResult {
    let (loader, _) = common::FakeLoader::new(sizes.0, sizes.1);
    let ctx = LoadContext {
        device: voxkit::Device::Cpu,
        cpu_threads: 1,
        max_slots: max_batch,
        quantization: voxkit::backend::Quantization::None,
    };
    let cfg = |bytes| Some(Configured { dir: "sim".into(), spec: ModelSpec::host(bytes, 16_000) });
    let budget = voxkit::engine::manager::Budget { host: budget, device: 0 };
    let mut manager = ModelManager::new(loader, ctx, budget, cfg(sizes.0), cfg(sizes.1)).unwrap();
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let policy = Policy { max_batch, max_wait: Duration::from_millis(max_wait_ms) };

    let mut t = 0u64;
    let mut next = 0usize; // next arrival
    let mut queue: Vec<QueuedJob> = Vec::new();
    let mut batch: Option<(ModelKind, Vec<(usize, u64)>)> = None; // (job, steps left)
    let mut last_served = None;
    let mut waits = vec![u64::MAX; jobs.len()];
    let (mut swaps, mut loads) = (0, 0);
    loop {
        while next < jobs.len() && jobs[next].arrival <= t {
            let j = &jobs[next];
            queue.push(QueuedJob { id: next as u64, kind: j.kind, priority: j.priority, enqueued: at(j.arrival) });
            next += 1;
        }
        let d = decide(&SchedInput {
            queue: &queue,
            resident: manager.resident(),
            running: batch.as_ref().map(|(k, seqs)| Running { kind: *k, active: seqs.len() }),
            last_served,
            now: at(t),
            policy,
        });
        if let Decision::Admit { kind, jobs: ids } = d {
            if let Some(ev) = manager.ensure(kind).unwrap() {
                loads += 1;
                swaps += ev.swapped as u64;
                t += load_ms;
            }
            let seqs = &mut batch.get_or_insert_with(|| (kind, Vec::new())).1;
            for id in ids {
                let i = id as usize;
                waits[i] = t - jobs[i].arrival;
                queue.retain(|q| q.id != id);
                seqs.push((i, jobs[i].steps));
            }
            last_served = Some(kind);
        }
        match &mut batch {
            Some((_, seqs)) => {
                t += 1;
                seqs.iter_mut().for_each(|s| s.1 -= 1);
                seqs.retain(|s| s.1 > 0);
                if seqs.is_empty() {
                    batch = None;
                }
            }
            None if queue.is_empty() => {
                if next == jobs.len() {
                    break;
                }
                t = t.max(jobs[next].arrival);
            }
            None => unreachable!("idle with work queued and nothing running"),
        }
    }
    SimResult { waits, swaps, loads, end: t }
}

fn sim_jobs() -> impl Strategy<Value = Vec<SimJob>> {
    prop::collection::vec((0u64..3000, kind_strategy(), -2i32..3, 1u64..60), 1..60).prop_map(|mut v| {
        v.sort_by_key(|j| j.0);
        v.into_iter().map(|(arrival, kind, priority, steps)| SimJob { arrival, kind, priority, steps }).collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    /// Every job runs; when both models fit in the budget no swap ever happens and each model
    /// loads once.
    #[test]
    fn all_jobs_run_and_no_swaps_when_both_fit(jobs in sim_jobs(), max_batch in 1usize..8, wait in 10u64..500) {
        let r = simulate(&jobs, max_batch, wait, 20, (400, 500), 1000);
        prop_assert!(r.waits.iter().all(|&w| w != u64::MAX));
        prop_assert_eq!(r.swaps, 0);
        let kinds = KINDS.iter().filter(|&&k| jobs.iter().any(|j| j.kind == k)).count() as u64;
        prop_assert_eq!(r.loads, kinds);
        let work: u64 = jobs.iter().map(|j| j.steps).sum();
        prop_assert!(r.end <= jobs.last().unwrap().arrival + work + 2 * 20);
    }

    /// A flood of one kind cannot hold back a job of the other kind past the bound plus the rest
    /// of one batch (and one model swap), even when the models must swap.
    #[test]
    fn no_job_waits_past_the_bound_plus_one_batch(
        flood_kind in kind_strategy(),
        flood in prop::collection::vec((0u64..4000, -2i32..3, 1u64..40), 20..120),
        sparse_count in 1usize..6,
        max_batch in 1usize..6,
        wait in 20u64..300,
    ) {
        let max_steps = 40;
        let load_ms = 15;
        let mut jobs: Vec<SimJob> = flood.iter().map(|&(arrival, priority, steps)| SimJob { arrival, kind: flood_kind, priority, steps }).collect();
        // Sparse jobs of the other kind, far enough apart that they never queue behind each other.
        let gap = wait + 2 * (max_steps + 2 * load_ms) + 10;
        jobs.extend((0..sparse_count).map(|i| SimJob { arrival: 100 + i as u64 * gap, kind: flood_kind.other(), priority: -5, steps: 5 }));
        jobs.sort_by_key(|j| j.arrival);
        let r = simulate(&jobs, max_batch, wait, load_ms, (600, 500), 1000);
        for (j, w) in jobs.iter().zip(&r.waits) {
            if j.kind != flood_kind {
                prop_assert!(*w <= wait + max_steps + 2 * load_ms + 1, "waited {} ms (bound {} + batch {} + load {})", w, wait, max_steps, load_ms);
            }
        }
    }
}
