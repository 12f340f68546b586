"""Times the official voice-cloning encoders on a Base checkpoint folder (`voxkit make-checkpoint
--preset 0.6b-base|1.7b-base` writes the released shapes with random weights): the speaker
encoder's x-vector (`mel_spectrogram` + `Qwen3TTSSpeakerEncoder`, as `extract_speaker_embedding`)
and the codec encoder's codes (`Qwen3TTSTokenizerV2Model.encode`, transformers' MimiModel), on a
clip of `--seconds` at 24 kHz. The comparison row in BENCHMARKS.md (voxkit's own number:
`voxkit bench voice`).

    /tmp/venv-tts/bin/python tools/parity/bench_official_clone.py --model DIR --seconds 10 --threads 2
"""

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

import qwen_tts.core.models.modeling_qwen3_tts as official
from qwen_tts.core.models.configuration_qwen3_tts import Qwen3TTSSpeakerEncoderConfig
from qwen_tts.core.tokenizer_12hz.configuration_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Config
from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Model


def best_of(f, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return min(times), sorted(times)[len(times) // 2], out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    folder = Path(args.model)
    cfg = json.loads((folder / "config.json").read_text())

    spk = official.Qwen3TTSSpeakerEncoder(Qwen3TTSSpeakerEncoderConfig(**cfg["speaker_encoder_config"])).eval()
    prefix = "speaker_encoder."
    sd = {k[len(prefix):]: v for k, v in load_file(str(folder / "model.safetensors")).items() if k.startswith(prefix)}
    spk.load_state_dict(sd, strict=True)
    spk = spk.to(dtype)

    tcfg = json.loads((folder / "speech_tokenizer" / "config.json").read_text())
    codec = Qwen3TTSTokenizerV2Model(Qwen3TTSTokenizerV2Config(**tcfg)).eval()
    missing, unexpected = codec.load_state_dict(load_file(str(folder / "speech_tokenizer" / "model.safetensors")), strict=False)
    # decoder.quantizer.*.input_proj: encode-side only, not written by make-checkpoint (unused here)
    assert not unexpected and all("inv_freq" in m or m.startswith("decoder.quantizer") for m in missing), (missing[:5], unexpected[:5])
    codec = codec.to(torch.float32)

    g = torch.Generator().manual_seed(1)
    n = int(args.seconds * 24000)
    wav = (0.3 * torch.randn(n, generator=g)).clamp(-1, 1)

    def xvector():
        mels = official.mel_spectrogram(wav[None], n_fft=1024, num_mels=128, sampling_rate=24000, hop_size=256,
                                        win_size=1024, fmin=0, fmax=12000).transpose(1, 2)
        return spk(mels.to(dtype))[0]

    def codes():
        return codec.encode(wav[None], torch.ones(1, n, dtype=torch.long)).audio_codes[0]

    with torch.inference_mode():
        xvector()
        codes()
        x_best, x_med, x = best_of(xvector, args.runs)
        c_best, c_med, c = best_of(codes, args.runs)
    print(f"official (torch {torch.__version__}, {args.threads} threads, speaker encoder {args.dtype}, codec float32): "
          f"{args.seconds:g} s reference; x-vector {x_med * 1e3:.0f} ms (best {x_best * 1e3:.0f}, {x.numel()} values); "
          f"codec encoder {c_med * 1e3:.0f} ms (best {c_best * 1e3:.0f}, {tuple(c.shape)} codes)")


if __name__ == "__main__":
    main()
