//! Sticky scheduling as a pure function: (queue snapshot, resident models, running batch, now,
//! policy) → which jobs to admit. The worker calls it between decode steps; the tests call it
//! directly (see `tests/scheduler.rs`).
//!
//! Rules, in order:
//! 1. A running batch of kind K keeps admitting queued K jobs into its free slots (continuous
//!    batching) — unless a job of the other kind has waited past `max_wait`: then it admits
//!    nothing, so the batch drains and the other kind is served next.
//! 2. With no batch running, a kind with a starved job (waited ≥ `max_wait`) goes first; when
//!    both kinds have one, the kind not served last goes first, so the two alternate.
//! 3. Otherwise serve a resident model's kind (sticky: even when the other group is larger,
//!    because a swap costs far more than a batch). With both or neither resident, the kind of the
//!    oldest job.
//! 4. Within a kind: starved jobs first (oldest first), then higher priority, then first come.
//!    At most `max_batch` sequences run together.
//!
//! So a job waits at most `max_wait`, plus the rest of the batch running at that moment, plus a
//! model load.

use std::cmp::Ordering;
use std::time::{Duration, Instant};

use crate::seams::ModelKind;

/// A job waiting to start, as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuedJob {
    pub id: u64,
    pub kind: ModelKind,
    pub priority: i32,
    pub enqueued: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub max_batch: usize,
    pub max_wait: Duration,
}

/// The batch the worker is running: its kind and how many sequences are active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Running {
    pub kind: ModelKind,
    pub active: usize,
}

/// Which models are loaded right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resident {
    pub tts: bool,
    pub asr: bool,
}

impl Resident {
    pub fn has(self, kind: ModelKind) -> bool {
        match kind {
            ModelKind::Tts => self.tts,
            ModelKind::Asr => self.asr,
        }
    }
}

/// Everything a decision depends on.
#[derive(Clone, Copy, Debug)]
pub struct SchedInput<'a> {
    pub queue: &'a [QueuedJob],
    pub resident: Resident,
    pub running: Option<Running>,
    /// The kind of the last batch served (breaks ties between starved kinds).
    pub last_served: Option<ModelKind>,
    pub now: Instant,
    pub policy: Policy,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to start (the running batch, if any, just keeps stepping).
    Idle,
    /// Admit these jobs, in this order, into a batch of `kind` (the running one, or a new one).
    Admit { kind: ModelKind, jobs: Vec<u64> },
}

fn starved(job: &QueuedJob, now: Instant, policy: &Policy) -> bool {
    now.saturating_duration_since(job.enqueued) >= policy.max_wait
}

/// The order in which jobs of one kind are admitted (rule 4).
fn admission_order(a: &QueuedJob, b: &QueuedJob, now: Instant, policy: &Policy) -> Ordering {
    let (sa, sb) = (starved(a, now, policy), starved(b, now, policy));
    sb.cmp(&sa)
        .then_with(|| if sa && sb { Ordering::Equal } else { b.priority.cmp(&a.priority) })
        .then_with(|| a.enqueued.cmp(&b.enqueued))
        .then_with(|| a.id.cmp(&b.id))
}

fn pick(input: &SchedInput<'_>, kind: ModelKind, room: usize) -> Decision {
    let mut jobs: Vec<&QueuedJob> = input.queue.iter().filter(|j| j.kind == kind).collect();
    jobs.sort_by(|a, b| admission_order(a, b, input.now, &input.policy));
    let ids: Vec<u64> = jobs.iter().take(room).map(|j| j.id).collect();
    if ids.is_empty() { Decision::Idle } else { Decision::Admit { kind, jobs: ids } }
}

/// The scheduling decision (see the module docs for the rules).
pub fn decide(input: &SchedInput<'_>) -> Decision {
    let SchedInput { queue, resident, running, last_served, now, policy } = *input;
    let is_starved = |j: &&QueuedJob| starved(j, now, &policy);

    if let Some(run) = running {
        if queue.iter().filter(is_starved).any(|j| j.kind != run.kind) {
            return Decision::Idle; // drain: the other kind has waited long enough
        }
        return pick(input, run.kind, policy.max_batch.saturating_sub(run.active));
    }

    // Rule 2: starved jobs force their kind, alternating when both kinds starve.
    let starved_kinds: Vec<ModelKind> = queue.iter().filter(is_starved).map(|j| j.kind).collect();
    if let Some(&first) = starved_kinds.first() {
        let kind = match last_served {
            Some(last) if starved_kinds.contains(&last.other()) => last.other(),
            Some(last) if starved_kinds.contains(&last) => last,
            _ => oldest(queue.iter().filter(is_starved)).map(|j| j.kind).unwrap_or(first),
        };
        return pick(input, kind, policy.max_batch);
    }

    // Rule 3: sticky to the resident model.
    let waiting = |k: ModelKind| queue.iter().any(|j| j.kind == k);
    let resident_waiting: Vec<ModelKind> =
        [ModelKind::Tts, ModelKind::Asr].into_iter().filter(|&k| resident.has(k) && waiting(k)).collect();
    let kind = match resident_waiting.as_slice() {
        [only] => *only,
        _ => match oldest(queue.iter()) {
            Some(j) => j.kind,
            None => return Decision::Idle,
        },
    };
    pick(input, kind, policy.max_batch)
}

fn oldest<'a>(jobs: impl Iterator<Item = &'a QueuedJob>) -> Option<&'a QueuedJob> {
    jobs.min_by(|a, b| a.enqueued.cmp(&b.enqueued).then_with(|| a.id.cmp(&b.id)))
}
