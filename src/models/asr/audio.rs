//! The signal side of Qwen3-ASR's front-end, as the official `transcribe`: range normalisation,
//! splitting long audio into passes at quiet points, and the automatic token cap for a pass.

/// The official per-pass limit (`MAX_ASR_INPUT_SECONDS`): longer audio is split.
pub const MAX_PASS_SECONDS: f64 = 1200.0;
/// Split points are searched this far either side of the limit (`search_expand_sec`).
pub(super) const SPLIT_SEARCH_SECONDS: f64 = 5.0;
/// Energy window of the split search (`min_window_ms`).
const SPLIT_WINDOW_SECONDS: f64 = 0.1;
/// Pieces of a split clip shorter than this are zero-padded (`MIN_ASR_INPUT_SECONDS`).
pub(super) const MIN_PASS_SECONDS: f64 = 0.5;
/// `float_range_normalize`: audio louder than full scale is divided by its peak, then clipped.
pub fn normalize_range(audio: &mut [f32]) {
    let peak = audio.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if peak > 1.0 {
        audio.iter_mut().for_each(|x| *x /= peak);
    }
    audio.iter_mut().for_each(|x| *x = x.clamp(-1.0, 1.0));
}

/// `split_audio_into_chunks`: pieces of at most `max_seconds` (plus the search range), cut at the
/// quietest 100 ms window near each limit, contiguous and covering the clip. Only a clip that
/// is split has its short pieces padded to 0.5 s.
pub fn split_for_passes(wav: &[f32], rate: u32, max_seconds: f64) -> Vec<Vec<f32>> {
    let total = wav.len();
    let sr = rate as f64;
    if total as f64 / sr <= max_seconds {
        return vec![wav.to_vec()];
    }
    let max_len = (max_seconds * sr) as usize;
    let expand = (SPLIT_SEARCH_SECONDS * sr) as usize;
    let win = ((SPLIT_WINDOW_SECONDS * sr) as usize).max(4);
    let mut pieces = Vec::new();
    let mut start = 0;
    while total - start > max_len {
        let cut = start + max_len;
        let (left, right) = (cut.saturating_sub(expand).max(start), (cut + expand).min(total));
        let mut boundary = cut;
        if right - left > win {
            let seg: Vec<f32> = wav[left..right].iter().map(|x| x.abs()).collect();
            // Moving sums of |x| over `win` samples (np.convolve "valid"), first minimum.
            let mut sum: f32 = seg[..win].iter().sum();
            let (mut best, mut best_at) = (sum, 0);
            for i in 1..=seg.len() - win {
                sum += seg[i + win - 1] - seg[i - 1];
                if sum < best {
                    best = sum;
                    best_at = i;
                }
            }
            let local = &seg[best_at..best_at + win];
            let inner = local.iter().enumerate().fold(0, |b, (i, &v)| if v < local[b] { i } else { b });
            boundary = left + best_at + inner;
        }
        let boundary = boundary.max(start + 1).min(total);
        pieces.push(wav[start..boundary].to_vec());
        start = boundary;
    }
    pieces.push(wav[start..].to_vec());
    let min_len = (MIN_PASS_SECONDS * sr) as usize;
    for p in pieces.iter_mut() {
        if p.len() < min_len {
            p.resize(min_len, 0.0);
        }
    }
    pieces
}

/// A conservative cap for a pass of `seconds` of audio: fast speech stays under ~8 tokens a
/// second; 12 plus room for the language tag leaves margin.
pub fn auto_cap_tokens(seconds: f64) -> u32 {
    (32.0 + 12.0 * seconds.max(0.0)).ceil().min(u32::MAX as f64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_audio_is_one_pass_and_long_audio_splits_at_quiet_points() {
        let rate = 1000;
        let loud: Vec<f32> = (0..30_000).map(|i| if (i / 7) % 2 == 0 { 0.5 } else { -0.5 }).collect();
        assert_eq!(split_for_passes(&loud[..5000], rate, 10.0).len(), 1);
        // 30 s with a silent stretch at 12 s: a 10 s limit cuts there (within ±5 s of 10 s),
        // then again near 22 s.
        let mut wav = loud.clone();
        wav[12_000..12_300].iter_mut().for_each(|x| *x = 0.0);
        let pieces = split_for_passes(&wav, rate, 10.0);
        assert!(pieces.len() >= 3);
        assert!((12_000..12_300).contains(&pieces[0].len()), "cut at {}", pieces[0].len());
        assert_eq!(pieces.iter().map(|p| p.len()).sum::<usize>(), wav.len());
    }

    #[test]
    fn range_normalisation_only_touches_loud_audio() {
        let mut a = vec![0.5, -0.25];
        normalize_range(&mut a);
        assert_eq!(a, vec![0.5, -0.25]);
        let mut a = vec![2.0, -1.0];
        normalize_range(&mut a);
        assert_eq!(a, vec![1.0, -0.5]);
    }
}
