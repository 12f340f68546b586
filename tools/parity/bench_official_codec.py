"""Times the official Qwen3-TTS-Tokenizer-12Hz decoder per frame on a checkpoint's
`speech_tokenizer/` (decoder weights only, as `voxkit make-checkpoint` writes them), for the
comparison row in BENCHMARKS.md (voxkit's own number: `voxkit bench codec`).

    /tmp/venv-tts/bin/python tools/parity/bench_official_codec.py --model DIR --frames 50 --threads 2
"""

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from qwen_tts.core.tokenizer_12hz.configuration_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2DecoderConfig
from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Decoder


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    folder = Path(args.model) / "speech_tokenizer"
    cfg = json.loads((folder / "config.json").read_text())
    dec = Qwen3TTSTokenizerV2Decoder(Qwen3TTSTokenizerV2DecoderConfig(**cfg["decoder_config"])).eval()
    sd = {k[len("decoder."):]: v for k, v in load_file(str(folder / "model.safetensors")).items() if k.startswith("decoder.")}
    missing, unexpected = dec.load_state_dict(sd, strict=False)
    assert not unexpected and all("inv_freq" in m or "input_proj" in m for m in missing), (missing, unexpected)  # input_proj: encode only
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, cfg["decoder_config"]["codebook_size"], (1, 16, args.frames), generator=g)
    with torch.inference_mode():
        dec.chunked_decode(codes[..., :2])
        t = time.perf_counter()
        wav = dec.chunked_decode(codes)
        dt = time.perf_counter() - t
    print(f"official codec decoder (f32, {args.threads} threads, torch {torch.__version__}): {args.frames} frames, "
          f"{dt * 1e3 / args.frames:.1f} ms/frame, {wav.shape[-1]} samples")


if __name__ == "__main__":
    main()
