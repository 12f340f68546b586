#!/usr/bin/env python3
"""End-to-end text -> waveform fixture for `tests/fixtures/tts/tiny-06b/`, produced by the OFFICIAL package.

Loads the committed tiny CustomVoice checkpoint `tests/fixtures/tts/tiny-06b/` (made by
make_tts_fixtures.py) together with its REAL speech tokenizer: `speech_tokenizer/` is a relative
symlink to `../../codec/tiny` (made by make_codec_fixtures.py; codebook_size 64 = the talker's code
range, 16 quantizers). Nothing is stubbed: `qwen_tts.Qwen3TTSModel.from_pretrained(folder,
dtype=torch.float32, attn_implementation="eager")` loads the talker, the processor and the codec
exactly as for a published checkpoint, and `generate_custom_voice(...)` returns the waveform.

Writes `tests/fixtures/tts/tiny-06b/e2e.json` + `e2e.safetensors` (`case{i}.audio` f32 [samples],
`case{i}.codes` i64 [frames, 16]). Asserts that the codes equal `reference.json` (same model, greedy),
that the audio has 1920 samples per frame and that the waveform is exactly the official codec decode
of those codes. See tools/parity/README.md ("End-to-end fixture").

Usage:
    /tmp/venv-tts/bin/python tools/parity/make_e2e_fixture.py           # writes the two files
    /tmp/venv-tts/bin/python tools/parity/make_e2e_fixture.py --check   # runs every check, writes nothing
"""

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from qwen_tts import Qwen3TTSModel, Qwen3TTSTokenizer

REPO = Path(__file__).resolve().parents[2]
FOLDER = REPO / "tests" / "fixtures" / "tts" / "tiny-06b"
CODEC_DIR = REPO / "tests" / "fixtures" / "codec" / "tiny"
LINK = FOLDER / "speech_tokenizer"
LINK_TARGET = "../../codec/tiny"

# (reference.json case name). Both are mode B (the API default non_streaming_mode=True) and use the
# same max_new_tokens 48: cv_en_B ends on EOS after 4 frames, cv_dialect_zh_B hits the cap (47 frames,
# Eric + Chinese -> sichuan dialect id).
CASES = ["cv_en_B", "cv_dialect_zh_B"]
SAMPLES_PER_FRAME = 1920
SAMPLE_RATE = 24000


def versions():
    import safetensors
    import tokenizers
    import transformers
    from importlib.metadata import version
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "qwen-tts": version("qwen-tts"),
        "accelerate": version("accelerate"),
    }


def ensure_link():
    if LINK.is_symlink():
        assert os.readlink(LINK) == LINK_TARGET, f"{LINK} -> {os.readlink(LINK)}, expected {LINK_TARGET}"
    else:
        assert not LINK.exists(), f"{LINK} exists and is not a symlink"
        LINK.symlink_to(LINK_TARGET)
    for f in ("config.json", "preprocessor_config.json", "model.safetensors"):
        assert (LINK / f).is_file(), f"missing {LINK / f} (run make_codec_fixtures.py first)"


def assert_weights_equal(module, path, what):
    """Every tensor of `path` must be bit-equal to the loaded module (bf16 files upcast exactly)."""
    saved = load_file(str(path))
    state = module.state_dict()
    for name, t in saved.items():
        assert name in state, f"{what}: {name} not in the loaded model"
        assert torch.equal(state[name], t.to(state[name].dtype)), f"{what}: {name} differs from {path}"
    return len(saved)


class Spy:
    """Records what the official wrapper hands to the codec and how the codec runs, without changing it."""

    def __init__(self, tts):
        self.model = tts.model
        self.tok = tts.model.speech_tokenizer
        dec = self.tok.model.decoder
        self.orig_generate = self.model.generate
        self.orig_tok_decode = self.tok.decode
        self.orig_chunked = dec.chunked_decode
        self.model.generate = self._generate          # instance attributes shadow the bound methods
        self.tok.decode = self._tok_decode
        dec.chunked_decode = self._chunked
        dec.register_forward_pre_hook(self._dec_pre)
        dec.decoder[-1].register_forward_hook(self._last_conv)
        self.reset()

    def reset(self):
        self.gen_kwargs = None
        self.codes = None
        self.decode_items = None
        self.chunked_calls = 0
        self.windows = []          # frames per decoder forward (one per chunked_decode window)
        self.pre_clamp = []

    def _generate(self, **kwargs):
        self.gen_kwargs = kwargs
        codes, hiddens = self.orig_generate(**kwargs)
        self.codes = [c.detach().clone() for c in codes]
        return codes, hiddens

    def _tok_decode(self, encoded):
        self.decode_items = encoded
        return self.orig_tok_decode(encoded)

    def _chunked(self, codes, *args, **kwargs):
        self.chunked_calls += 1
        return self.orig_chunked(codes, *args, **kwargs)

    def _dec_pre(self, module, args):
        self.windows.append(int(args[0].shape[-1]))

    def _last_conv(self, module, args, out):
        self.pre_clamp.append(out.detach().clone())


def run_case(tts, spy, ref_case):
    spy.reset()
    kw = dict(text=ref_case["text"], speaker=ref_case["speaker"], language=ref_case["language"],
              max_new_tokens=ref_case["max_new_tokens"])
    assert ref_case["non_streaming_mode"] is True  # we rely on the wrapper default
    wavs, sr = tts.generate_custom_voice(**kw, do_sample=False, subtalker_dosample=False)
    assert spy.gen_kwargs["non_streaming_mode"] is True
    assert len(wavs) == 1 and len(spy.codes) == 1 and len(spy.decode_items) == 1
    wav = wavs[0]
    codes = spy.codes[0]
    frames = int(codes.shape[0])
    assert sr == SAMPLE_RATE, sr
    assert isinstance(wav, np.ndarray) and wav.dtype == np.float32 and wav.ndim == 1, (type(wav), wav.dtype)
    assert codes.dtype == torch.long and tuple(codes.shape) == (frames, 16), (codes.dtype, codes.shape)
    assert torch.equal(spy.decode_items[0]["audio_codes"], codes)  # the wrapper decodes exactly these codes
    assert codes.tolist() == ref_case["codes"], f"{ref_case['name']}: codes differ from reference.json"
    assert frames == ref_case["frames"]
    assert wav.shape[0] == frames * SAMPLES_PER_FRAME, (wav.shape, frames)
    assert spy.chunked_calls == 1

    windows = list(spy.windows)
    assert windows == [frames], windows  # <= 300 frames: chunked_decode runs one plain forward
    pre = spy.pre_clamp[0].reshape(-1)   # decoder[6] output of that forward, before clamp(-1, 1)
    assert pre.shape[0] == wav.shape[0]

    # The waveform is the plain official codec decode of the codes: no normalisation, no trimming.
    with torch.inference_mode():
        direct = spy.orig_chunked(codes.T[None]).squeeze(1)[0]
    assert np.array_equal(wav, direct.numpy()), "wrapper output != decoder.chunked_decode(codes)"
    assert np.array_equal(wav, pre.clamp(-1, 1).numpy())
    clamped = int(np.sum(np.abs(wav) >= 1.0))
    return dict(
        wav=torch.from_numpy(wav.copy()),
        codes=codes.clone(),
        info=dict(
            name=ref_case["name"],
            text=ref_case["text"],
            speaker=ref_case["speaker"],
            language=ref_case["language"],
            max_new_tokens=ref_case["max_new_tokens"],
            non_streaming_mode=True,
            frames=frames,
            samples=int(wav.shape[0]),
            sample_rate=sr,
            eos=bool(ref_case["eos"]),
            codes_equal_reference=True,
            decoder_windows=windows,
            peak_abs=round(float(np.max(np.abs(wav))), 6),
            peak_abs_before_clamp=round(float(pre.abs().max()), 6),
            clamped_samples=clamped,
            rms=round(float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))), 6),
        ),
    )


def cross_check_standalone_codec(results):
    """Decoding the same codes with the codec loaded on its own gives the same waveform, bit for bit."""
    tok = Qwen3TTSTokenizer.from_pretrained(str(CODEC_DIR), dtype=torch.float32)
    out = []
    for r in results:
        wavs, sr = tok.decode([{"audio_codes": r["codes"]}])
        out.append(float(np.max(np.abs(wavs[0] - r["wav"].numpy()))))
        assert sr == SAMPLE_RATE
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="run everything, write nothing")
    args = ap.parse_args()
    torch.set_num_threads(1)

    ensure_link()
    ref = json.load(open(FOLDER / "reference.json", encoding="utf-8"))
    by_name = {c["name"]: c for c in ref["cases"]}

    tts = Qwen3TTSModel.from_pretrained(str(FOLDER), dtype=torch.float32, attn_implementation="eager")
    tok = tts.model.speech_tokenizer
    assert type(tok).__name__ == "Qwen3TTSTokenizer", type(tok)  # the real one, not a stub
    assert tok.model.dtype == torch.float32
    n_talker = assert_weights_equal(tts.model, FOLDER / "model.safetensors", "talker")
    n_codec = assert_weights_equal(tok.model, LINK / "model.safetensors", "codec")
    codec_attn = tok.model.config._attn_implementation

    spy = Spy(tts)
    results = []
    for name in CASES:
        r = run_case(tts, spy, by_name[name])
        i = r["info"]
        print(f"{name}: frames {i['frames']} ({'EOS' if i['eos'] else 'cap'}), samples {i['samples']}, "
              f"peak {i['peak_abs']:.4f} (pre-clamp {i['peak_abs_before_clamp']:.4f}, "
              f"{i['clamped_samples']} clamped), rms {i['rms']:.4f}", file=sys.stderr)
        results.append(r)

    standalone = cross_check_standalone_codec(results)
    assert all(d == 0.0 for d in standalone), standalone

    doc = dict(
        generator=dict(
            script="tools/parity/make_e2e_fixture.py",
            preset="tiny-06b",
            versions=versions(),
            loaded_with="qwen_tts.Qwen3TTSModel.from_pretrained(folder, dtype=float32, attn_implementation='eager'); "
                        "real speech tokenizer from speech_tokenizer/ (symlink to ../../codec/tiny), nothing stubbed",
            called_with="generate_custom_voice(text, speaker, language, max_new_tokens, do_sample=False, "
                        "subtalker_dosample=False); non_streaming_mode left at its default (True)",
            talker_attn_implementation="eager",
            codec_attn_implementation=codec_attn,
            compute_dtype="float32",
            torch_threads=1,
            weight_tensors=dict(talker=n_talker, codec=n_codec),
            decode_path="Qwen3TTSTokenizer.decode([{'audio_codes': codes}]) -> pad_sequence(-1) -> "
                        "Qwen3TTSTokenizerV2Model.decode -> decoder.chunked_decode(chunk 300, left context 25) "
                        "-> cut to 1920*frames -> float32 numpy; no normalisation",
            audio_equals_chunked_decode_of_codes=True,
            audio_equals_standalone_codec_decode=True,
        ),
        tensors_doc={
            "case{i}.audio": "f32 [samples]: the waveform returned by generate_custom_voice (24 kHz)",
            "case{i}.codes": "i64 [frames, 16]: the codes the wrapper decoded (== reference.json codes)",
        },
        cases=[r["info"] for r in results],
    )
    tensors = {}
    for i, r in enumerate(results):
        tensors[f"case{i}.audio"] = r["wav"].contiguous()
        tensors[f"case{i}.codes"] = r["codes"].to(torch.int64).contiguous()

    if args.check:
        print("check: ok (nothing written)", file=sys.stderr)
        return
    with open(FOLDER / "e2e.json", "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    save_file(tensors, str(FOLDER / "e2e.safetensors"))
    print(f"wrote {FOLDER / 'e2e.json'} and {FOLDER / 'e2e.safetensors'}", file=sys.stderr)


if __name__ == "__main__":
    main()
