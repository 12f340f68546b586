#!/usr/bin/env python3
"""Voice-cloning fixtures for a tiny Qwen3-TTS **Base** checkpoint, produced by the OFFICIAL package.

Builds `tests/fixtures/tts/tiny-06b-base/` with the official classes of `qwen-tts` 0.1.1: the talker
and code predictor shaped like the `tiny-06b` preset (make_tts_fixtures.py) plus the ECAPA-TDNN
speaker encoder (`tts_model_type="base"`), every parameter re-randomised, weights rounded to bf16 as
the real Base checkpoints store them. `speech_tokenizer/` is a relative symlink to the tiny codec
(`../../codec/tiny`, make_codec_fixtures.py), whose Mimi encoder turns reference audio into codes.

Then loads the folder back with `Qwen3TTSModel.from_pretrained(folder, dtype=float32,
attn_implementation="eager")` (nothing stubbed: the real codec loads too) and records, for two
synthetic 24 kHz reference clips (parity needs 24 kHz inputs: the official resampler is soxr):

* the speaker-encoder mel (`mel_spectrogram`, spec 6.1), the activations of every speaker-encoder
  block and the x-vector (`extract_speaker_embedding`);
* the codec encoder's codes (`speech_tokenizer.encode`) and its stages (SEANet, transformer,
  downsample);
* for x-vector-only and ICL prompts, streaming and non-streaming text: the prompt rows and trailing
  text vectors the official `generate` builds, the greedy codes, and the waveform
  `generate_voice_clone` returns (reference + generated codes decoded together, the reference part
  cut off).

Writes `reference.json` + `reference.safetensors` in that folder (see `tensors_doc` in the json).

Usage:
    /tmp/venv-tts/bin/python tools/parity/make_clone_fixtures.py           # writes the fixture
    /tmp/venv-tts/bin/python tools/parity/make_clone_fixtures.py --check   # runs everything, writes nothing
"""

import argparse
import copy
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_tts_fixtures as tts_fx  # noqa: E402  (shared config builder, recorder, checks)

import qwen_tts.core.models.modeling_qwen3_tts as official_modeling  # noqa: E402
from qwen_tts import Qwen3TTSModel  # noqa: E402
from qwen_tts.core.models import Qwen3TTSConfig, Qwen3TTSForConditionalGeneration  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NAME = "tiny-06b-base"
FOLDER = REPO / "tests" / "fixtures" / "tts" / NAME
CODEC_LINK_TARGET = "../../codec/tiny"
SAMPLE_RATE = 24000
SAMPLES_PER_FRAME = 1920

PRESET = dict(
    tts_model_type="base", tts_model_size="0b6", dtype="bfloat16",
    hidden=32, inter=96, layers=3, heads=4, kv_heads=2, head_dim=16, mrope=[4, 2, 2],
    cp_hidden=32, cp_inter=64, cp_layers=2, cp_heads=4, cp_kv_heads=2, cp_head_dim=16,
    text_hidden=8, spk_id_as_list=False,
    seed=11, head_scale=2.0, cp_head_scale=2.0, eos_scale=1.0,
)
# Every field written (the real checkpoints write only enc_dim and sample_rate; the rest are the
# class defaults, which the Rust loader must apply itself). Channels divisible by res2net_scale.
SPEAKER_ENCODER = dict(
    mel_dim=128,
    enc_dim=PRESET["hidden"],
    enc_channels=[32, 32, 32, 32, 96],
    enc_kernel_sizes=[5, 3, 3, 3, 1],
    enc_dilations=[1, 2, 3, 4, 1],
    enc_attention_channels=16,
    enc_res2net_scale=8,
    enc_se_channels=16,
    sample_rate=SAMPLE_RATE,
)
SPK_GAIN = 1.4  # conv weights N(0, gain/sqrt(fan_in)): ReLU networks stay alive with ~sqrt(2)

TEXT_EN = "Hello world, this is a small test of the speech engine."
TEXT_SHORT = "Good morning."
TEXT_ZH = "今天天气很好，我们一起去公园散步吧。"
REF_TEXT_A = "This is the reference voice, recorded for cloning."
REF_TEXT_B = "参考音频的文字。"
MAX_NEW = 40

# name -> (samples, seed): ref_a is a whole number of frames (25), ref_b is not (17.1 -> 18 frames).
REFS = {"ref_a": (48000, 1), "ref_b": (32880, 2)}

CASES = [
    # (name, ref, kwargs of generate_voice_clone besides ref_audio)
    ("xvec_A", "ref_a", dict(text=TEXT_EN, language="English", x_vector_only_mode=True, non_streaming_mode=False)),
    ("xvec_B", "ref_b", dict(text=TEXT_SHORT, language="Auto", x_vector_only_mode=True, non_streaming_mode=True)),
    # ICL, streaming text: ref text + text + eos (13 + 15 + 1 rows) longer than ref_b's 18 + 1 codec rows
    ("icl_C_long", "ref_b", dict(text=TEXT_EN, language="English", ref_text=REF_TEXT_A, non_streaming_mode=False)),
    # ICL, streaming text shorter than ref_a's 25 + 1 codec rows: padded with tts_pad
    ("icl_C_pad", "ref_a", dict(text=TEXT_SHORT, language="English", ref_text=REF_TEXT_B, non_streaming_mode=False)),
    ("icl_D", "ref_b", dict(text=TEXT_ZH, language="Chinese", ref_text=REF_TEXT_B, non_streaming_mode=True)),
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Reference audio: deterministic voiced-sounding clips (harmonics under a gliding f0, a syllable
# envelope, a little noise), peak 0.6
# ----------------------------------------------------------------------------------------------
def make_reference(samples, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(samples, dtype=np.float64) / SAMPLE_RATE
    f0 = 110.0 + 40.0 * seed + 30.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    y = sum((0.7 ** h) * np.sin(h * phase + rng.uniform(0, 2 * np.pi)) for h in range(1, 11))
    env = 0.5 - 0.5 * np.cos(2 * np.pi * (2.5 + seed) * t)
    y = y * (0.15 + 0.85 * env) + 0.02 * rng.standard_normal(samples)
    y = 0.6 * y / np.max(np.abs(y))
    return y.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------
def make_config():
    cfg = tts_fx.make_config(PRESET)
    tts_fx.check_codec_layout(cfg)
    cfg["speaker_encoder_config"] = dict(SPEAKER_ENCODER)
    return cfg


def randomize(model):
    """The talker/predictor rules of make_tts_fixtures.randomize (same seed stream layout), then the
    speaker encoder: conv weights N(0, SPK_GAIN/sqrt(in*k)), biases N(0, 0.1)."""
    p = PRESET
    gen = torch.Generator().manual_seed(p["seed"])
    eos = tts_fx.shift(tts_fx.REAL_CODEC_IDS["codec_eos_token_id"])
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            t = params[name]
            shape = tuple(t.shape)
            noise = torch.randn(shape, generator=gen, dtype=torch.float32)
            if name.startswith("speaker_encoder."):
                if name.endswith(".bias"):
                    val = 0.1 * noise
                else:
                    assert t.dim() == 3, name
                    val = noise * (SPK_GAIN / math.sqrt(shape[1] * shape[2]))
            elif name.endswith("norm.weight"):
                val = 1.0 + 0.1 * noise
            elif name.endswith(".bias"):
                val = 0.1 * noise
            elif "text_embedding" in name or name == "talker.model.codec_embedding.weight":
                val = noise
            elif "code_predictor.model.codec_embedding" in name:
                val = 0.5 * noise
            elif name == "talker.codec_head.weight":
                val = noise * (p["head_scale"] / shape[1] ** 0.5)
                val[eos] *= p["eos_scale"]
            elif ".lm_head." in name:
                val = noise * (p["cp_head_scale"] / shape[1] ** 0.5)
            else:
                assert t.dim() == 2 and name.endswith(".weight"), name
                val = noise / shape[1] ** 0.5
            t.copy_(val.to(torch.bfloat16).to(torch.float32))
        for name, _ in model.named_buffers():
            assert name.endswith("inv_freq"), name


def build_and_save(cfg):
    torch.manual_seed(PRESET["seed"])
    model = Qwen3TTSForConditionalGeneration(Qwen3TTSConfig(**copy.deepcopy(cfg))).to(torch.float32).eval()
    assert model.speaker_encoder is not None
    randomize(model)
    sd = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(FOLDER / "model.safetensors"), metadata={"format": "pt"})
    return sd


def ensure_codec_link():
    link = FOLDER / "speech_tokenizer"
    if link.is_symlink():
        assert os.readlink(link) == CODEC_LINK_TARGET, os.readlink(link)
    else:
        assert not link.exists(), f"{link} exists and is not a symlink"
        link.symlink_to(CODEC_LINK_TARGET)
    for f in ("config.json", "preprocessor_config.json", "model.safetensors"):
        assert (link / f).is_file(), f"missing {link / f} (run make_codec_fixtures.py first)"


# ----------------------------------------------------------------------------------------------
# Capture
# ----------------------------------------------------------------------------------------------
class Taps:
    """Forward hooks on the speaker encoder's blocks and the codec encoder's stages."""

    def __init__(self, model):
        self.out = {}
        spk = model.speaker_encoder
        for i, block in enumerate(spk.blocks):
            block.register_forward_hook(self._hook(f"spk.block{i}", channels_first=True))
        spk.mfa.register_forward_hook(self._hook("spk.mfa", channels_first=True))
        spk.asp.register_forward_hook(self._hook("spk.asp", channels_first=True))
        enc = model.speech_tokenizer.model.encoder
        enc.encoder.register_forward_hook(self._hook("enc.seanet", channels_first=True))
        enc.encoder_transformer.register_forward_hook(self._hook("enc.transformer", channels_first=False))
        enc.downsample.register_forward_hook(self._hook("enc.downsample", channels_first=True))

    def _hook(self, name, channels_first):
        def hook(module, args, out):
            x = out[0] if isinstance(out, (tuple, list)) else getattr(out, "last_hidden_state", out)
            x = x.detach()[0]
            self.out[name] = (x.transpose(0, 1) if channels_first else x).contiguous().clone()  # [T, C]
        return hook


def record_reference(tts, taps, wav):
    taps.out.clear()
    mel = official_modeling.mel_spectrogram(
        torch.from_numpy(wav).unsqueeze(0), n_fft=1024, num_mels=128, sampling_rate=SAMPLE_RATE,
        hop_size=256, win_size=1024, fmin=0, fmax=12000).transpose(1, 2)[0]
    xvec = tts.model.extract_speaker_embedding(audio=wav, sr=SAMPLE_RATE)
    spk = {k: v for k, v in taps.out.items() if k.startswith("spk.")}
    taps.out.clear()
    codes = tts.model.speech_tokenizer.encode(wav, sr=SAMPLE_RATE).audio_codes[0]
    enc = dict(taps.out)
    frames = -(-wav.shape[0] // SAMPLES_PER_FRAME)
    assert tuple(codes.shape) == (frames, 16), (codes.shape, frames)
    # the pieces a port needs to match: not degenerate
    assert torch.isfinite(xvec).all() and float(xvec.std()) > 1e-3, xvec
    assert len(set(codes[:, 0].tolist())) > 3 and len(set(codes[:, 15].tolist())) > 3, codes
    return dict(mel=mel.contiguous(), xvec=xvec.reshape(-1).clone(), codes=codes.clone(), spk=spk, enc=enc)


class Spy:
    """What the wrapper hands to `generate` and to the codec decoder."""

    def __init__(self, tts):
        self.model = tts.model
        self.tok = tts.model.speech_tokenizer
        self.orig_generate = self.model.generate
        self.orig_decode = self.tok.decode
        self.model.generate = self._generate
        self.tok.decode = self._decode
        self.gen_kwargs = self.decode_items = self.codes = None

    def _generate(self, **kwargs):
        self.gen_kwargs = kwargs
        codes, hiddens = self.orig_generate(**kwargs)
        self.codes = [c.detach().clone() for c in codes]
        return codes, hiddens

    def _decode(self, items):
        self.decode_items = items
        return self.orig_decode(items)


def run_case(tts, rec, spy, refs, name, ref, kw):
    rec.reset()
    wav = refs[ref]["wav"]
    wavs, sr = tts.generate_voice_clone(ref_audio=(wav, SAMPLE_RATE), max_new_tokens=MAX_NEW, do_sample=False,
                                        subtalker_dosample=False, **kw)
    assert sr == SAMPLE_RATE and len(wavs) == 1
    g = spy.gen_kwargs
    codes = spy.codes[0]
    icl = not kw.get("x_vector_only_mode", False)
    decoded = spy.decode_items[0]["audio_codes"]
    ref_codes = refs[ref]["codes"]
    if icl:
        assert torch.equal(decoded, torch.cat([ref_codes, codes], 0))
    else:
        assert torch.equal(decoded, codes)
    full_samples = decoded.shape[0] * SAMPLES_PER_FRAME
    cut = int(ref_codes.shape[0] / max(decoded.shape[0], 1) * full_samples) if icl else 0
    audio = wavs[0]
    assert audio.shape[0] == full_samples - cut, (audio.shape, full_samples, cut)
    # the speaker vector in the prompt is the x-vector of the reference
    assert torch.equal(g["voice_clone_prompt"]["ref_spk_embedding"][0].reshape(-1), refs[ref]["xvec"])
    eos, last, t_margin, cp_margin = tts_fx.eos_of(
        dict(step_logits=torch.stack([x[0] for x in rec.step_logits]), codes=codes.tolist(),
             cp_logits=torch.stack([x[0] for x in rec.cp_logits]) if rec.cp_logits else None),
        tts.model.config.talker_config.codec_eos_token_id, tts.model.config.talker_config.vocab_size)
    ref_ids = g.get("ref_ids")
    return dict(
        info=dict(
            name=name,
            reference=ref,
            text=kw["text"],
            language=kw["language"],
            ref_text=kw.get("ref_text"),
            x_vector_only_mode=not icl,
            non_streaming_mode=kw["non_streaming_mode"],
            max_new_tokens=MAX_NEW,
            input_ids=g["input_ids"][0][0].tolist(),
            ref_ids=ref_ids[0][0].tolist() if icl else None,
            prompt_len=int(rec.prefill_embeds.shape[1]),
            trailing_len=int(rec.trailing.shape[1]),
            frames=int(codes.shape[0]),
            eos=bool(eos),
            min_greedy_margin=dict(talker=round(t_margin, 6), predictor=round(cp_margin, 6)),
            decoded_frames=int(decoded.shape[0]),
            cut_samples=cut,
            samples=int(audio.shape[0]),
            codes=codes.tolist(),
        ),
        tensors=dict(
            prompt_embeds=rec.prefill_embeds[0],
            trailing_text=rec.trailing[0],
            prefill_logits=rec.prefill_logits[0][-1:],
            audio=torch.from_numpy(np.ascontiguousarray(audio)),
        ),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="run everything, write nothing")
    args = ap.parse_args()
    torch.set_num_threads(1)

    cfg = make_config()
    FOLDER.mkdir(parents=True, exist_ok=True)
    tts_fx.write_folder(FOLDER, cfg)
    ensure_codec_link()
    saved = build_and_save(cfg)

    tts = Qwen3TTSModel.from_pretrained(str(FOLDER), dtype=torch.float32, attn_implementation="eager")
    assert type(tts.model.speech_tokenizer).__name__ == "Qwen3TTSTokenizer"
    n_tensors = tts_fx.verify_loaded(tts, saved)
    taps = Taps(tts.model)
    rec = tts_fx.Recorder(tts.model)
    spy = Spy(tts)  # wraps rec's generate wrapper: both see every call

    refs, tensors = {}, {}
    for ref, (samples, seed) in REFS.items():
        wav = make_reference(samples, seed)
        r = record_reference(tts, taps, wav)
        r["wav"] = wav
        refs[ref] = r
        tensors[f"{ref}.audio"] = torch.from_numpy(wav)
        tensors[f"{ref}.mel"] = r["mel"]
        tensors[f"{ref}.xvector"] = r["xvec"]
        tensors[f"{ref}.codes"] = r["codes"].to(torch.int64)
        for k, v in {**r["spk"], **r["enc"]}.items():
            tensors[f"{ref}.{k}"] = v
        log(f"{ref}: {samples} samples, mel {tuple(r['mel'].shape)}, codes {tuple(r['codes'].shape)}, "
            f"x-vector |.|={float(r['xvec'].norm()):.3f}")

    cases = []
    for i, (name, ref, kw) in enumerate(CASES):
        res = run_case(tts, rec, spy, refs, name, ref, kw)
        cases.append(res["info"])
        for k, v in res["tensors"].items():
            tensors[f"case{i}.{k}"] = v
        c = res["info"]
        log(f"{name}: L={c['prompt_len']} trailing={c['trailing_len']} frames={c['frames']} "
            f"{'EOS' if c['eos'] else 'cap'} samples={c['samples']} (cut {c['cut_samples']}) "
            f"margins {c['min_greedy_margin']}")

    tcfg = tts.model.config.talker_config
    doc = dict(
        generator=dict(
            script="tools/parity/make_clone_fixtures.py",
            preset=NAME,
            versions=tts_fx.versions(),
            seed=PRESET["seed"],
            weights_dtype="bfloat16",
            weight_tensors=n_tensors,
            weight_scales=dict(talker="as make_tts_fixtures.py (tiny-06b rules)",
                               speaker_encoder_conv=f"N(0, {SPK_GAIN}/sqrt(in*k))", speaker_encoder_bias="N(0,0.1)"),
            speaker_encoder_config=SPEAKER_ENCODER,
            compute_dtype="float32",
            attn_implementation="eager (talker); the codec's default (sdpa)",
            loaded_with="qwen_tts.Qwen3TTSModel.from_pretrained(folder, dtype=float32, attn_implementation='eager');"
                        " real speech tokenizer from speech_tokenizer/ (symlink to ../../codec/tiny), nothing stubbed",
            called_with="generate_voice_clone(text, language, ref_audio=(wav, 24000), ref_text | x_vector_only_mode,"
                        " non_streaming_mode, max_new_tokens, do_sample=False, subtalker_dosample=False)",
            torch_threads=1,
            references={k: dict(samples=v[0], seed=v[1], frames=int(refs[k]["codes"].shape[0])) for k, v in REFS.items()},
            codec_ids=dict(eos=tcfg.codec_eos_token_id, pad=tcfg.codec_pad_id, bos=tcfg.codec_bos_id),
        ),
        tensors_doc={
            "{ref}.audio": "f32 [samples] the 24 kHz reference clip",
            "{ref}.mel": "f32 [frames, 128] mel_spectrogram(...) as extract_speaker_embedding computes it (spec 6.1)",
            "{ref}.spk.block{i}": "f32 [frames, C] output of speaker_encoder.blocks[i] (0: TDNN, 1..3: SE-Res2Net)",
            "{ref}.spk.mfa": "f32 [frames, C] after the multi-layer feature aggregation TDNN",
            "{ref}.spk.asp": "f32 [1, 2C] attentive statistics pooling (mean | std)",
            "{ref}.xvector": "f32 [enc_dim] extract_speaker_embedding(audio, 24000)",
            "{ref}.codes": "i64 [frames, 16] speech_tokenizer.encode(audio, sr=24000).audio_codes[0]",
            "{ref}.enc.seanet": "f32 [T25, C] codec encoder SEANet output",
            "{ref}.enc.transformer": "f32 [T25, C] codec encoder transformer output",
            "{ref}.enc.downsample": "f32 [T12, C] after the downsample conv (what the quantizer reads)",
            "case{i}.prompt_embeds": "f32 [L, H] prefill rows built by the official generate (spec 2.6, tails A-D)",
            "case{i}.trailing_text": "f32 [n, H] trailing text-track vectors",
            "case{i}.prefill_logits": "f32 [1, V] raw talker logits of the last prefill row",
            "case{i}.audio": "f32 [samples] the waveform generate_voice_clone returns",
        },
        cases=cases,
    )
    if args.check:
        log("check: ok (the fixture folder was rewritten with the same weights; reference files untouched)")
        return
    with open(FOLDER / "reference.json", "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    save_file(tensors, str(FOLDER / "reference.safetensors"), metadata={"format": "pt"})
    assert set(load_file(str(FOLDER / "reference.safetensors"))) == set(tensors)
    log(f"wrote {FOLDER}")


if __name__ == "__main__":
    main()
