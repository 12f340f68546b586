//! Runaway generation: adversarial prompts (long repeats, counting, mixed scripts, text that
//! looks empty, only punctuation, emoji) on tiny random-weight checkpoints — whose models never
//! stop on their own, the worst case — never exceed their cap, report TRUNCATED when they hit it,
//! and a normal job submitted beside them still finishes with its own cap. ASR on pathological
//! audio (silence, a pure tone, clipped noise) stays within its cap too.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "support/device.rs"]
mod device;
#[allow(dead_code)]
#[path = "../src/bin/voxkit/random_checkpoint.rs"]
mod random_checkpoint;
use voxkit::engine::job::FLAG_TRUNCATED;
use voxkit::seams::request::{AsrRequest, TtsRequest};
use voxkit::{Engine, EngineConfig, JobState};

fn checkpoints() -> (PathBuf, PathBuf) {
    let root = std::env::temp_dir().join(format!("voxkit-runaway-{}", std::process::id()));
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (tts, asr) = (root.join("tts"), root.join("asr"));
    random_checkpoint::write("tiny-customvoice", &tts, &fixtures.join("tokenizer"), 3).unwrap();
    random_checkpoint::write("tiny-asr", &asr, &fixtures.join("asr/tiny"), 3).unwrap();
    (tts, asr)
}

fn prompts() -> Vec<(&'static str, String)> {
    vec![
        ("long repeat", "la ".repeat(600)),
        ("counting", (1..=400).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")),
        ("mixed scripts", "Hello 你好 こんにちは مرحبا Привет שלום नमस्ते 안녕하세요 ".repeat(20)),
        ("looks empty", "\u{200B}\u{200C}\u{200D}\u{FEFF} \t \u{00A0}\u{2060}".repeat(30)),
        ("only punctuation", "?!... ;;; --- !!! ??? ... ,,, ".repeat(40)),
        ("emoji", "😀🎉🔥👍🏽🧑‍🚀 ".repeat(60)),
        ("one huge word", "a".repeat(3000)),
    ]
}

#[test]
fn adversarial_prompts_stop_at_their_cap_and_say_so() {
    let (tts, asr) = checkpoints();
    const DEFAULT_CAP: u32 = 20;
    let e = Engine::new(EngineConfig {
        device: device::device(),
        tts_model_dir: Some(tts),
        asr_model_dir: Some(asr),
        max_batch: 8,
        cpu_threads: 2,
        default_max_new_tokens: DEFAULT_CAP,
        ..Default::default()
    })
    .unwrap();
    // Every prompt with the engine's default cap, two once more with a request cap above the
    // default (streamed); a plain job goes in with them and waits only for the capped ones.
    let mut jobs = Vec::new();
    for (what, text) in prompts() {
        let caps: &[u32] = if what == "long repeat" || what == "emoji" { &[0, DEFAULT_CAP + 7] } else { &[0] };
        for &cap in caps {
            let id = e.submit_tts(TtsRequest {
                text: text.clone(),
                max_new_tokens: cap,
                stream: cap > 0,
                ..Default::default()
            });
            jobs.push((what, cap, id.unwrap_or_else(|err| panic!("{what}: refused at submit: {err:?}"))));
        }
    }
    let started = Instant::now();
    let plain = e
        .submit_tts(TtsRequest { text: "A normal sentence.".into(), max_new_tokens: 6, ..Default::default() })
        .unwrap();
    let info = e.wait(plain, Some(Duration::from_secs(300))).unwrap();
    assert_eq!(info.state, JobState::Done, "{:?}", info.error);
    assert!(info.tokens <= 6);
    eprintln!("runaway: the plain job beside {} adversarial ones took {:?}", jobs.len(), started.elapsed());
    for (what, cap, id) in jobs {
        let info = e.wait(id, Some(Duration::from_secs(300))).unwrap();
        assert_eq!(info.state, JobState::Done, "{what}: {:?}", info.error);
        let want_cap = if cap == 0 { DEFAULT_CAP } else { cap };
        assert_eq!(info.max_new_tokens, want_cap, "{what}: the effective cap");
        // The cap counts sampled c0 tokens, as the official generate() does: the last one sampled
        // at the cap gets no codes, so a job cut short has cap - 1 frames.
        assert!(info.tokens < want_cap, "{what}: {} frames against the cap {want_cap}", info.tokens);
        if info.flags & FLAG_TRUNCATED != 0 {
            assert_eq!(info.tokens, want_cap - 1, "{what}: TRUNCATED only at the cap");
        }
        assert_eq!(info.samples_total, info.tokens as u64 * 1920, "{what}: whole frames only");
        e.release(id).unwrap();
    }
    // ASR on audio that gives a model nothing to hold on to.
    let rate = 16_000;
    let clips: Vec<(&str, Vec<f32>)> = vec![
        ("silence", vec![0.0; rate * 3]),
        ("pure tone", (0..rate * 3).map(|i| (i as f32 * 0.2).sin() * 0.5).collect()),
        ("clipped noise", (0..rate * 3).map(|i| if (i * 7919) % 13 < 6 { 1.0 } else { -1.0 }).collect()),
    ];
    for (what, audio) in clips {
        let id = e
            .submit_asr(AsrRequest {
                audio,
                sample_rate: rate as u32,
                channels: 1,
                max_new_tokens: 12,
                ..Default::default()
            })
            .unwrap();
        let info = e.wait(id, Some(Duration::from_secs(300))).unwrap();
        assert_eq!(info.state, JobState::Done, "{what}: {:?}", info.error);
        assert!(info.tokens <= 12, "{what}: {} tokens past the cap", info.tokens);
        e.release(id).unwrap();
    }
}
