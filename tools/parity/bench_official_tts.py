"""Times the official qwen-tts talker + code predictor per frame on a checkpoint folder, for the
comparison row in BENCHMARKS.md (voxkit's own number: `voxkit bench tts`).

    /tmp/venv-tts/bin/python tools/parity/bench_official_tts.py --model DIR --threads 2 \
        --dtype bfloat16 --frames 16

Greedy decoding (do_sample=False, subtalker_dosample=False), batch 1, eager attention. The
speech tokenizer is stubbed (only codes are generated, as `voxkit bench tts` does). Per-frame time
= (time of a run - time of a 2-token run, i.e. prefill + one frame) / the frames beyond the first. Random-weight
checkpoints may stop early on EOS, so runs repeat until --frames frames were timed.
"""

import argparse
import time

import torch

from make_tts_fixtures import load_official


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--speaker", default="ryan")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    tts = load_official(args.model)
    tts.model.to(getattr(torch, args.dtype))
    text = "The quick brown fox jumps over the lazy dog, and then it runs far away into the forest."
    kw = dict(language="English", speaker=args.speaker, do_sample=False, subtalker_dosample=False)

    def run(max_new):
        t = time.perf_counter()
        codes, _ = tts.model.generate(
            input_ids=tts._tokenize_texts([tts._build_assistant_text(text)]),
            instruct_ids=[None], languages=["English"], speakers=[args.speaker], non_streaming_mode=True,
            max_new_tokens=max_new, do_sample=False, subtalker_dosample=False,
        )
        return time.perf_counter() - t, codes[0].shape[0]

    with torch.inference_mode():
        run(2)  # warm-up
        # A 2-token run is the prefill plus one frame; frames beyond it are what is timed.
        base = min(run(2)[0] for _ in range(2))
        timed, frames = 0.0, 0
        while frames < args.frames:
            dt, n = run(args.frames - frames + 2)
            if n <= 1:
                break
            timed += dt - base
            frames += n - 1
        prefill = base
    per = timed / max(frames, 1) * 1e3
    print(f"official qwen-tts ({args.dtype}, {args.threads} threads, torch {torch.__version__}): "
          f"{frames} frames, {per:.1f} ms/frame, prefill + first frame {prefill * 1e3:.1f} ms, real-time factor {per / 80:.3f}")


if __name__ == "__main__":
    main()
