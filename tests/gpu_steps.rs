//! The CUDA backend's step loops make no device allocation once they run: activations and
//! temporaries come from the device buffer pool, KV caches are block pools, per-step tables reuse
//! their buffers; and a TTS frame waits for the device once. What the GPU needs stable stays stable (the precondition of capturing a step as a
//! graph). Runs on the emulated device in CI (scripts/emulator-check.sh), ignored without a driver.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use voxkit::backend::{Compute, Cuda};
use voxkit::models::asr::Qwen3Asr;
/// The checkpoint writer of `voxkit make-checkpoint` (a CLI module, not part of the library).
#[allow(dead_code)]
#[path = "../src/bin/voxkit/random_checkpoint.rs"]
mod random_checkpoint;
use voxkit::models::tts::Qwen3Tts;
use voxkit::seams::request::{Sampling, TtsRequest};
use voxkit::seams::{AsrModel, TtsModel, TtsPrefill};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn gpu() -> (Arc<Cuda>, Compute) {
    let cuda = Arc::new(Cuda::new(0).expect("a CUDA device"));
    (cuda.clone(), Compute::new(cuda))
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn tts_steps_allocate_no_device_memory() {
    let dir = std::env::temp_dir().join(format!("voxkit-gpu-steps-{}", std::process::id()));
    random_checkpoint::write("tiny-customvoice", &dir, &fixtures().join("tokenizer"), 3).unwrap();
    let (cuda, cx) = gpu();
    let mut model = Qwen3Tts::load(&dir, cx, 2).unwrap();
    let sampled = |seed| TtsRequest {
        text: "A sentence long enough for a few frames of speech.".into(),
        speaker: Some("Ryan".into()),
        language: Some("English".into()),
        sampling: Sampling { seed: Some(seed), repetition_penalty: Some(1.05), ..Default::default() },
        ..Default::default()
    };
    let (a, b) = (sampled(1), sampled(2));
    let seqs = [
        TtsPrefill { slot: 0, request: &a, max_new_tokens: 1000 },
        TtsPrefill { slot: 1, request: &b, max_new_tokens: 1000 },
    ];
    assert!(model.prefill(&seqs).iter().all(|r| r.is_ok()));
    for _ in 0..3 {
        model.step(&[0, 1]).unwrap();
    }
    let (before, waits, graphs) = (cuda.device_allocations(), cuda.host_waits(), cuda.graph_launches());
    // Across a KV block boundary of the talker's cache (16 tokens), so that growing tables are seen.
    for _ in 0..20 {
        let out = model.step(&[0, 1]).unwrap();
        assert!(out.iter().all(|s| s.finish.is_none()), "the test needs sequences that keep going");
    }
    let made = cuda.device_allocations() - before;
    assert_eq!(made, 0, "20 TTS steps of 2 sequences made {made} device allocations");
    // The frame's 15 predictor passes and the talker's step run without a wait: the codes stay on
    // the device, feeding the next pass, and the frame is read back once.
    let waited = cuda.host_waits() - waits;
    assert_eq!(waited, 20, "20 TTS steps waited for the device {waited} times");
    // Each frame is two graph launches, recorded in the warm-up steps: the predictor's 15 passes
    // and the talker's step (whose launches stay the same below 512 keys).
    let launched = cuda.graph_launches() - graphs;
    assert_eq!(launched, 40, "20 TTS steps launched {launched} graphs");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn asr_decode_steps_allocate_no_device_memory() {
    let (cuda, cx) = gpu();
    let mut m = Qwen3Asr::load(&fixtures().join("asr/tiny"), cx, 1).unwrap();
    let audio: Vec<f32> = (0..48_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
    let f = m.frontend(&[&audio]).unwrap().remove(0);
    let (prefix, suffix) = m.prompt_parts(None, None).unwrap();
    let logits = m.prefill_passes(&[(&f.data, &prefix, &suffix)], &[0]).unwrap();
    let cx = m.compute().clone();
    let mut next = cx.argmax(&logits)[0];
    for _ in 0..3 {
        next = cx.argmax(&m.decode_tokens(&[next], &[0]).unwrap())[0];
    }
    let before = cuda.device_allocations();
    for _ in 0..20 {
        next = cx.argmax(&m.decode_tokens(&[next], &[0]).unwrap())[0];
    }
    let made = cuda.device_allocations() - before;
    assert_eq!(made, 0, "20 ASR decode steps made {made} device allocations");
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn codec_streaming_allocates_no_device_memory() {
    let (cuda, cx) = gpu();
    let codec = voxkit::models::codec::Codec::load(&fixtures().join("codec/tiny"), cx).unwrap();
    let q = codec.config.decoder_config.num_quantizers;
    let frame = |i: usize| vec![(0..q).map(|j| ((i * 7 + j * 3) % 50) as u32).collect::<Vec<u32>>()];
    let mut st = codec.new_stream().unwrap();
    // Past the transformer's window, so that its cache is in its steady state too.
    let warm = codec.config.decoder_config.sliding_window + 20;
    for i in 0..warm {
        codec.forward_stream(&mut st, &frame(i)).unwrap();
    }
    let before = cuda.device_allocations();
    for i in warm..warm + 20 {
        codec.forward_stream(&mut st, &frame(i)).unwrap();
    }
    let made = cuda.device_allocations() - before;
    assert_eq!(made, 0, "20 streamed codec frames made {made} device allocations");
}

/// The code predictor's frame and the talker's step are recorded regions: replayed as CUDA graphs,
/// they give exactly the frames eager launches give — across a change of the batch (a new key), a sequence that leaves
/// and one that joins (the old key's graph replayed with new sequences in its slots).
#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn graph_replay_gives_the_eager_frames() {
    let dir = std::env::temp_dir().join(format!("voxkit-gpu-graphs-{}", std::process::id()));
    random_checkpoint::write("tiny-customvoice", &dir, &fixtures().join("tokenizer"), 5).unwrap();
    let (cuda, cx) = gpu();
    let mut model = Qwen3Tts::load(&dir, cx, 2).unwrap();
    let request = |seed| TtsRequest {
        text: "Graphs replay what eager launches do, frame for frame.".into(),
        speaker: Some("Ryan".into()),
        language: Some("English".into()),
        sampling: Sampling { seed: Some(seed), ..Default::default() },
        ..Default::default()
    };
    let (a, b, c) = (request(1), request(2), request(3));
    let mut run = |graphs: bool| -> (Vec<Vec<Vec<u32>>>, u64) {
        cuda.set_graphs(graphs);
        let launches = cuda.graph_launches();
        let mut frames = vec![Vec::new(); 3];
        let mut step = |model: &mut Qwen3Tts, slots: &[usize], who: &[usize], n: usize| {
            for _ in 0..n {
                for (s, &w) in model.step(slots).unwrap().into_iter().zip(who) {
                    frames[w].push(s.frame.expect("a frame"));
                }
            }
        };
        let prefill = |model: &mut Qwen3Tts, slot: usize, r: &TtsRequest| {
            let seqs = [TtsPrefill { slot, request: r, max_new_tokens: 1000 }];
            assert!(model.prefill(&seqs).iter().all(|r| r.is_ok()));
        };
        prefill(&mut model, 0, &a);
        prefill(&mut model, 1, &b);
        step(&mut model, &[0, 1], &[0, 1], 8);
        model.release(1);
        step(&mut model, &[0], &[0], 5);
        prefill(&mut model, 1, &c);
        step(&mut model, &[0, 1], &[0, 2], 5);
        model.release(0);
        model.release(1);
        (frames, cuda.graph_launches() - launches)
    };
    let (eager, none) = run(false);
    let (replayed, launched) = run(true);
    assert_eq!(none, 0, "graphs were launched with graphs off");
    // Per region (predictor, talker) — [0, 1]: eager, recorded, 6 replays; [0]: eager, recorded,
    // 3 replays; [0, 1] again: 5 replays.
    assert_eq!(launched, 2 * (7 + 4 + 5), "graph launches");
    assert!(eager.iter().all(|f| f.len() >= 5));
    assert_eq!(replayed, eager, "frames from replayed graphs differ from eager launches");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A region whose launches change with the context — attention over a cache that grows past the
/// length where the kernel splits its keys (512) and then by another split part (256 keys) — is
/// abandoned when they change and recorded again: every step's output equals eager launches', and
/// graphs still run most steps.
#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn a_region_whose_launches_change_is_recorded_again() {
    use voxkit::backend::{AttnSeq, AttnShape, Kv, Mask};
    let (cuda, cx) = gpu();
    let shape = AttnShape { heads: 2, kv_heads: 1, head_dim: 8 };
    let steps = 800;
    let row =
        |i: usize, n: usize| -> Vec<f32> { (0..n).map(|j| ((i * 31 + j * 7) % 23) as f32 / 23.0 - 0.5).collect() };
    let run = |graphs: bool| -> (Vec<Vec<f32>>, u64) {
        cuda.set_graphs(graphs);
        let launches = cuda.graph_launches();
        let mut cache = cx.kv_cache(1, 8, 1, steps).unwrap();
        let mut outs = Vec::with_capacity(steps);
        for i in 0..steps {
            let (q, k, v) =
                (cx.upload(&row(i, 16), 1, 16), cx.upload(&row(i + 1, 8), 1, 8), cx.upload(&row(i + 2, 8), 1, 8));
            let mut out = None;
            cx.recorded(7, &[&q, &k, &v], &mut |x| {
                cache.reserve(0, 1)?;
                let seqs = [AttnSeq { slot: 0, rows: 1, past: cache.len(0) }];
                cx.kv_write(&mut cache, 0, &seqs, x[1], x[2]);
                out = Some(cx.attention(x[0], Kv::Cache { cache: &cache, layer: 0 }, &seqs, shape, Mask::Causal));
                cache.advance(0, 1);
                Ok(())
            })
            .unwrap();
            outs.push(out.unwrap().to_host());
        }
        (outs, cuda.graph_launches() - launches)
    };
    let (eager, _) = run(false);
    let (replayed, launched) = run(true);
    assert_eq!(replayed, eager, "replayed attention differs from eager launches");
    // Re-recorded where the launches change (513, 769 keys): at most a few steps per change eager.
    assert!(launched > steps as u64 - 12, "only {launched} of {steps} steps ran as graphs");
}

/// The ASR decoder's step (forward, head, greedy choice) is a recorded region too: steady decode
/// steps through `AsrModel::step` are one graph launch and one wait each, and the transcript is
/// the one eager launches give.
#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn asr_steps_replay_their_graph() {
    use voxkit::seams::AsrPrefill;
    use voxkit::seams::request::AsrRequest;
    // Random weights: a pass that does not stop early (seed chosen so).
    let dir = std::env::temp_dir().join(format!("voxkit-gpu-asr-steps-{}", std::process::id()));
    random_checkpoint::write("tiny-asr", &dir, &fixtures().join("asr/tiny"), 11).unwrap();
    let (cuda, cx) = gpu();
    let mut m = Qwen3Asr::load(&dir, cx, 1).unwrap();
    let audio: Vec<f32> = (0..32_000).map(|i| (i as f32 * 0.031).sin() * 0.3).collect();
    let request = AsrRequest { audio: audio.clone(), sample_rate: 16_000, channels: 1, ..Default::default() };
    let mut run = |graphs: bool| -> (Vec<Option<u32>>, u64, u64) {
        cuda.set_graphs(graphs);
        let f = m.frontend(&[&audio]).unwrap().remove(0);
        let seqs = [AsrPrefill { slot: 0, features: &f, request: &request, max_new_tokens: 40 }];
        assert!(m.prefill(&seqs).iter().all(|r| r.is_ok()));
        let mut tokens = Vec::new();
        for _ in 0..3 {
            tokens.push(m.step(&[0]).unwrap()[0].token);
        }
        let (launches, waits) = (cuda.graph_launches(), cuda.host_waits());
        for _ in 0..20 {
            let s = m.step(&[0]).unwrap().remove(0);
            assert!(s.finish.is_none(), "the test needs a pass that keeps going");
            tokens.push(s.token);
        }
        let counts = (cuda.graph_launches() - launches, cuda.host_waits() - waits);
        m.release(0);
        (tokens, counts.0, counts.1)
    };
    let (eager, _, _) = run(false);
    let (replayed, launched, waited) = run(true);
    assert_eq!(replayed, eager, "replayed decode steps chose other tokens");
    assert_eq!((launched, waited), (20, 20), "graph launches and waits in 20 decode steps");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What could make a replay differ from eager launches is caught, not replayed: an output of the
/// last replay still held when the next one would hand its buffer out again; another thread using
/// the backend meanwhile (its ops wait for the region); a region inside a region that was abandoned
/// (it runs as part of the outer one).
#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn held_outputs_threads_and_nesting_never_change_results() {
    let (cuda, cx) = gpu();
    let ones = cx.upload(&[1.0; 64], 1, 64);
    let plus_one = |x: &voxkit::backend::Tensor| {
        let mut y = x.clone();
        cx.add(&mut y, &ones);
        y
    };
    // Held outputs: each region's result kept, then all read.
    let mut held = Vec::new();
    for i in 0..6 {
        let x = cx.upload(&[i as f32; 64], 1, 64);
        let mut out = None;
        cx.recorded(21, &[&x], &mut |x| {
            out = Some(plus_one(x[0]));
            Ok(())
        })
        .unwrap();
        held.push(out.unwrap());
    }
    let got: Vec<f32> = held.iter().map(|t| t.to_host()[0]).collect();
    assert_eq!(got, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "a held output was overwritten by a replay");

    // Another thread's eager ops while this one records and replays.
    std::thread::scope(|s| {
        let other = s.spawn(|| {
            for i in 0..40 {
                let x = cx.upload(&[i as f32; 64], 1, 64);
                assert_eq!(plus_one(&x).to_host()[5], i as f32 + 1.0, "another thread's op went wrong");
            }
        });
        for i in 0..40 {
            let x = cx.upload(&[i as f32 * 2.0; 64], 1, 64);
            let mut out = None;
            cx.recorded(22, &[&x], &mut |x| {
                out = Some(plus_one(x[0]).to_host()[7]); // a read: the region runs eagerly from here
                Ok(())
            })
            .unwrap();
            assert_eq!(out.unwrap(), i as f32 * 2.0 + 1.0);
        }
        other.join().unwrap();
    });

    // A region inside an abandoned region.
    for i in 0..4 {
        let x = cx.upload(&[i as f32; 64], 1, 64);
        let mut out = 0.0;
        cx.recorded(23, &[&x], &mut |x| {
            let y = plus_one(x[0]).to_host()[0]; // abandons the outer region
            cx.recorded(24, &[x[0]], &mut |x| {
                out = y + plus_one(x[0]).to_host()[0];
                Ok(())
            })
        })
        .unwrap();
        assert_eq!(out, 2.0 * i as f32 + 2.0);
    }
    let _ = cuda.graph_launches();
}
