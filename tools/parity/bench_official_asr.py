#!/usr/bin/env python3
"""Time the OFFICIAL Qwen3-ASR transformers backend (qwen-asr 0.0.6) on a synthetic clip.

Loads a checkpoint folder with `Qwen3ASRModel.from_pretrained(DIR, dtype=...)` (the official loader:
AutoModel + AutoProcessor with fix_mistral_regex=True) and times, on one synthetic speech-like clip:

  front-end   the processor call (chat-template prompt -> ids, log-mel, pad expansion)
  encoder     the audio tower (`thinker.get_audio_features`: conv stem + transformer + projector)
  prefill     one thinker forward over the whole prompt (includes the encoder, as in generate)
  generate    `model.generate(**inputs, max_new_tokens=N)` (encoder + prefill + decode)
  decode      (generate - prefill) / (generated tokens - 1): per-token decode estimate
  transcribe  the whole official `transcribe(audio=(samples, 16000))` call

Each stage runs once as warm-up and then --runs times; the median is printed with the real-time
factor (stage time / audio duration). `torch.set_num_threads(--threads)` applies to everything.

By default generation runs exactly --max-new-tokens tokens (EOS suppressed via min_new_tokens) so
that decode timings are comparable across models/engines; --allow-eos lets it stop early (as the
official transcribe does). The official transformers backend has no encoder attention windows on
sdpa/eager (QwenLM/Qwen3-ASR issue #213); --window-fix applies the PR #103 mask like the fixtures.

Usage:
    /tmp/venv-asr/bin/python tools/parity/bench_official_asr.py --model tests/fixtures/asr/tiny \\
        --seconds 10 --threads 2 --dtype f32
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_asr_fixtures import SR, WindowFix, pcm_to_f32, speech_like  # noqa: E402

from qwen_asr import Qwen3ASRModel  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "f32": torch.float32}


def timed(fn, runs):
    fn()  # warm-up
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint folder in the official layout")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the synthetic clip")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--allow-eos", action="store_true", help="let generation stop at EOS (default: fixed length)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--window-fix", action="store_true", help="apply the encoder window mask (PR #103)")
    ap.add_argument("--attn", default=None, help="attn_implementation for from_pretrained (default: transformers' choice)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the synthetic clip")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    kw = {} if args.attn is None else {"attn_implementation": args.attn}
    t0 = time.perf_counter()
    asr = Qwen3ASRModel.from_pretrained(args.model, dtype=dtype, max_inference_batch_size=32,
                                        max_new_tokens=args.max_new_tokens, **kw)
    load_s = time.perf_counter() - t0
    model, proc = asr.model, asr.processor
    if args.window_fix:
        WindowFix(model).install()
    wav = pcm_to_f32(speech_like(args.seconds, SR, args.seed))
    audio_s = len(wav) / SR
    prompt = asr._build_text_prompt(context="", force_language=None)

    def front_end():
        return proc(text=[prompt], audio=[wav], return_tensors="pt", padding=True).to(model.device).to(model.dtype)

    t_fe, inputs = timed(front_end, args.runs)
    n_prompt = inputs["input_ids"].shape[1]
    n_audio = int((inputs["input_ids"] == model.config.thinker_config.audio_token_id).sum())

    def encoder():
        with torch.no_grad():
            return model.thinker.get_audio_features(inputs["input_features"],
                                                    feature_attention_mask=inputs["feature_attention_mask"])

    t_enc, enc = timed(encoder, args.runs)
    assert enc.shape[0] == n_audio

    def prefill():
        with torch.no_grad():
            return model.thinker(**inputs, use_cache=True)

    t_pre, _ = timed(prefill, args.runs)

    gen_kw = {} if args.allow_eos else {"min_new_tokens": args.max_new_tokens}

    def generate():
        return model.generate(**inputs, max_new_tokens=args.max_new_tokens, **gen_kw)

    t_gen, gen = timed(generate, args.runs)
    n_gen = gen.sequences.shape[1] - n_prompt

    def transcribe():
        return asr.transcribe(audio=(wav, SR))

    t_tr, res = timed(transcribe, args.runs)

    per_tok = (t_gen - t_pre) / max(1, n_gen - 1)
    print(f"model {args.model}  dtype {args.dtype}  threads {args.threads}  attn "
          f"{model.config.thinker_config.text_config._attn_implementation}  window_fix {args.window_fix}  "
          f"torch {torch.__version__}")
    print(f"audio {audio_s:.2f} s  prompt {n_prompt} tokens ({n_audio} audio)  generated {n_gen} tokens "
          f"({'EOS allowed' if args.allow_eos else 'fixed length'})  load {load_s * 1e3:.0f} ms  runs {args.runs} (median)")
    rows = [
        ("front-end", t_fe), ("encoder", t_enc), ("prefill (incl. encoder)", t_pre),
        ("generate (encoder+prefill+decode)", t_gen), ("transcribe (whole)", t_tr),
    ]
    for name, t in rows:
        print(f"  {name:36s} {t * 1e3:10.2f} ms   RTF {t / audio_s:.4f}")
    print(f"  {'decode per token':36s} {per_tok * 1e3:10.2f} ms   ({1.0 / per_tok if per_tok > 0 else float('inf'):.1f} tok/s)")
    print(f"  transcribe -> language {res[0].language!r}, text {res[0].text[:60]!r}")


if __name__ == "__main__":
    main()
