//! The repetition guard: a pass whose text ends in a unit repeated far past the official clean-up
//! threshold is stopped (the cleaned text no longer changes as the loop goes on).

use super::Qwen3Asr;
use crate::models::asr_output::{self, REPETITION_THRESHOLD};

/// The repetition guard stops a pass whose text ends in a unit repeated this many times more
/// than the clean-up threshold (the cleaned text no longer changes as the loop goes on).
const GUARD_MARGIN: usize = 5;
/// Generated ids decoded for the guard's check (enough for 26 repeats of a 20-char unit).
const GUARD_TAIL_IDS: usize = 640;

impl Qwen3Asr {
    /// True when the pass's text so far ends in a runaway repetition (see `GUARD_MARGIN`).
    pub(super) fn runaway(&self, generated: &[u32]) -> bool {
        let runs = REPETITION_THRESHOLD + GUARD_MARGIN;
        if generated.len() < runs || !generated.len().is_multiple_of(4) {
            return false;
        }
        let tail = &generated[generated.len().saturating_sub(GUARD_TAIL_IDS)..];
        let Ok(text) = self.tokenizer.decode_skip_special(tail) else { return false };
        let chars: Vec<char> = text.chars().collect();
        asr_output::ends_in_repetition(&chars, runs)
    }
}
