#!/usr/bin/env python3
"""Reference fixtures for the Qwen3-TTS talker + code predictor, produced by the OFFICIAL package.

Builds tiny random-weight models with the official classes of `qwen-tts` 0.1.1
(`Qwen3TTSConfig`, `Qwen3TTSForConditionalGeneration`), writes them to disk in the official
folder layout under `tests/fixtures/tts/<preset>/`, loads each folder back with the official
`Qwen3TTSModel.from_pretrained` (float32, eager attention) and records, through the official
`generate_custom_voice` / `generate_voice_design` wrappers, greedy code streams plus per-stage
activations (captured with forward hooks) into `reference.json` + `reference.safetensors`.

See tools/parity/README.md for how to set up the environment and what every tensor means.

Usage:
    /tmp/venv-tts/bin/python tools/parity/make_tts_fixtures.py            # write all presets
    /tmp/venv-tts/bin/python tools/parity/make_tts_fixtures.py --tune 20  # seed search, writes nothing
"""

import argparse
import copy
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

import qwen_tts.core.models.modeling_qwen3_tts as official_modeling
from qwen_tts import Qwen3TTSModel
from qwen_tts.core.models import Qwen3TTSConfig, Qwen3TTSForConditionalGeneration, Qwen3TTSProcessor
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "tts"
TOKENIZER_DIR = REPO / "tests" / "fixtures" / "tokenizer"
TOKENIZER_FILES = ["vocab.json", "merges.txt", "tokenizer_config.json"]

# ----------------------------------------------------------------------------------------------
# Codec id layout: the real checkpoints use codebook ids 0..2047 and control/language/speaker rows
# 2048..3071 (vocab 3072 = 2048 + 1024). The tiny models use a predictor vocab of 64, so the talker
# vocab is 64 + 1024 = 1088 and every real control id r >= 2048 maps to r - 2048 + 64.
# ----------------------------------------------------------------------------------------------
CP_VOCAB = 64
TALKER_VOCAB = CP_VOCAB + 1024


def shift(real_id):
    return real_id - 2048 + CP_VOCAB


REAL_CODEC_IDS = dict(
    codec_pad_id=2148,
    codec_bos_id=2149,
    codec_eos_token_id=2150,
    codec_think_id=2154,
    codec_nothink_id=2155,
    codec_think_bos_id=2156,
    codec_think_eos_id=2157,
)
REAL_LANGUAGES = {
    "chinese": 2055, "english": 2050, "german": 2053, "italian": 2070, "portuguese": 2071,
    "spanish": 2054, "japanese": 2058, "korean": 2064, "french": 2061, "russian": 2069,
}
REAL_DIALECTS = {"beijing_dialect": 2074, "sichuan_dialect": 2062}
REAL_SPEAKERS = {
    "serena": 3066, "vivian": 3065, "uncle_fu": 3010, "ryan": 3061, "aiden": 2861,
    "ono_anna": 2873, "sohee": 2864, "eric": 2875, "dylan": 2878,
}
REAL_SPK_DIALECT = {"eric": "sichuan_dialect", "dylan": "beijing_dialect"}

GENERATION_CONFIG = {
    "do_sample": True,
    "repetition_penalty": 1.05,
    "subtalker_dosample": True,
    "subtalker_temperature": 0.9,
    "subtalker_top_k": 50,
    "subtalker_top_p": 1.0,
    "temperature": 0.9,
    "top_k": 50,
    "top_p": 1.0,
    "max_new_tokens": 8192,
}

# ----------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------
PRESETS = {
    # 0.6B-like: H == predictor hidden (no small_to_mtp_projection), head_dim != H / heads, BF16 file.
    "tiny-06b": dict(
        tts_model_type="custom_voice", tts_model_size="0b6", dtype="bfloat16",
        hidden=32, inter=96, layers=3, heads=4, kv_heads=2, head_dim=16, mrope=[4, 2, 2],
        cp_hidden=32, cp_inter=64, cp_layers=2, cp_heads=4, cp_kv_heads=2, cp_head_dim=16,
        text_hidden=8, spk_id_as_list=False,
        seed=5, head_scale=2.0, cp_head_scale=2.0, eos_scale=1.0,
    ),
    # 1.7B-like: H != predictor hidden (projection present), head_dim == H / heads, F32 file.
    "tiny-17b": dict(
        tts_model_type="custom_voice", tts_model_size="1b7", dtype="float32",
        hidden=48, inter=144, layers=4, heads=4, kv_heads=2, head_dim=12, mrope=[2, 2, 2],
        cp_hidden=32, cp_inter=64, cp_layers=2, cp_heads=4, cp_kv_heads=2, cp_head_dim=16,
        text_hidden=8, spk_id_as_list=True,
        seed=7, head_scale=2.0, cp_head_scale=2.0, eos_scale=1.0,
    ),
    # VoiceDesign variant of the 1.7B-like shapes: no speakers, no dialects. Parameter names and shapes are
    # those of tiny-17b, so it reuses tiny-17b's weights (model.safetensors is a symlink to them).
    "tiny-17b-vd": dict(
        tts_model_type="voice_design", tts_model_size="1b7", dtype="float32",
        hidden=48, inter=144, layers=4, heads=4, kv_heads=2, head_dim=12, mrope=[2, 2, 2],
        cp_hidden=32, cp_inter=64, cp_layers=2, cp_heads=4, cp_kv_heads=2, cp_head_dim=16,
        text_hidden=8, spk_id_as_list=False,
        share_weights_with="tiny-17b",
    ),
}

TEXT_EN = "Hello world, this is a small test of the speech engine."
TEXT_EN_LONG = "The quick brown fox jumps over the lazy dog, while my iPhone keeps ringing in the kitchen."
TEXT_ZH = "今天天气很好，我们一起去公园散步吧。"
TEXT_ZH_SHORT = "你好，世界！"
TEXT_SHORT = "Good morning."

MAX_NEW = 48  # default cap for the cases (at most MAX_NEW - 1 frames)


def cases_for(preset_name, p):
    """List of (name, kind, kwargs for the official wrapper). language is passed as the user would."""
    cv = []
    if p["tts_model_type"] == "custom_voice":
        cv = [
            ("cv_en_B", dict(text=TEXT_EN, speaker="Vivian", language="English", non_streaming_mode=True)),
            ("cv_en_A", dict(text=TEXT_EN, speaker="Vivian", language="English", non_streaming_mode=False)),
            ("cv_auto_B", dict(text=TEXT_EN_LONG, speaker="ryan", language="Auto", non_streaming_mode=True)),
            ("cv_auto_A", dict(text=TEXT_ZH_SHORT, speaker="serena", language="auto", non_streaming_mode=False)),
            ("cv_dialect_zh_B", dict(text=TEXT_ZH, speaker="Eric", language="Chinese", non_streaming_mode=True)),
            ("cv_dialect_auto_A", dict(text=TEXT_ZH, speaker="dylan", language="Auto", non_streaming_mode=False)),
            ("cv_dialect_en_B", dict(text=TEXT_SHORT, speaker="dylan", language="English", non_streaming_mode=True)),
            ("cv_cap", dict(text=TEXT_EN_LONG, speaker="aiden", language="English", non_streaming_mode=True,
                            max_new_tokens=9)),
            ("cv_instruct_B", dict(text=TEXT_EN, speaker="uncle_fu", language="English", non_streaming_mode=True,
                                   instruct="Speak slowly, in a calm and warm voice.")),
            ("cv_instruct_A", dict(text=TEXT_ZH, speaker="sohee", language="Chinese", non_streaming_mode=False,
                                   instruct="用开心的语气说。")),
        ]
        return [(n, "custom_voice", kw) for n, kw in cv]
    vd = [
        ("vd_instruct_B", dict(text=TEXT_EN, language="English", non_streaming_mode=True,
                               instruct="A cheerful young woman with a bright, fast voice.")),
        ("vd_instruct_A", dict(text=TEXT_ZH, language="Chinese", non_streaming_mode=False,
                               instruct="一个低沉的中年男性声音。")),
        ("vd_auto_B", dict(text=TEXT_EN_LONG, language="Auto", non_streaming_mode=True,
                           instruct="Whispering, very soft.")),
        ("vd_empty_instruct_A", dict(text=TEXT_SHORT, language="English", non_streaming_mode=False, instruct="")),
        ("vd_zh_noinstruct_B", dict(text=TEXT_ZH_SHORT, language="Chinese", non_streaming_mode=True, instruct="")),
        ("vd_cap", dict(text=TEXT_EN, language="auto", non_streaming_mode=True, instruct="Old man.",
                        max_new_tokens=9)),
    ]
    return [(n, "voice_design", kw) for n, kw in vd]


# Batched run: three mode-B cases of different prompt lengths, same max_new_tokens.
BATCHED = {
    "custom_voice": ["cv_en_B", "cv_auto_B", "cv_instruct_B"],
    "voice_design": ["vd_instruct_B", "vd_auto_B", "vd_zh_noinstruct_B"],
}


# ----------------------------------------------------------------------------------------------
# config.json
# ----------------------------------------------------------------------------------------------
def make_config(p):
    langs = {k: shift(v) for k, v in REAL_LANGUAGES.items()}
    if p["tts_model_type"] == "custom_voice":
        langs.update({k: shift(v) for k, v in REAL_DIALECTS.items()})
        spk_id = {k: ([shift(v)] if p["spk_id_as_list"] else shift(v)) for k, v in REAL_SPEAKERS.items()}
        spk_is_dialect = {k: REAL_SPK_DIALECT.get(k, False) for k in REAL_SPEAKERS}
    else:
        spk_id, spk_is_dialect = {}, {}
    cp = dict(
        model_type="qwen3_tts_talker_code_predictor",
        attention_bias=False,
        attention_dropout=0.0,
        head_dim=p["cp_head_dim"],
        hidden_act="silu",
        hidden_size=p["cp_hidden"],
        initializer_range=0.02,
        intermediate_size=p["cp_inter"],
        layer_types=["full_attention"] * p["cp_layers"],
        max_position_embeddings=65536,
        max_window_layers=p["cp_layers"],
        num_attention_heads=p["cp_heads"],
        num_code_groups=16,
        num_hidden_layers=p["cp_layers"],
        num_key_value_heads=p["cp_kv_heads"],
        rms_norm_eps=1e-06,
        rope_scaling=None,
        rope_theta=1000000,
        sliding_window=None,
        use_cache=True,
        use_sliding_window=False,
        vocab_size=CP_VOCAB,
    )
    talker = dict(
        model_type="qwen3_tts_talker",
        attention_bias=False,
        attention_dropout=0.0,
        code_predictor_config=cp,
        codec_language_id=langs,
        head_dim=p["head_dim"],
        hidden_act="silu",
        hidden_size=p["hidden"],
        initializer_range=0.02,
        intermediate_size=p["inter"],
        max_position_embeddings=32768,
        num_attention_heads=p["heads"],
        num_code_groups=16,
        num_hidden_layers=p["layers"],
        num_key_value_heads=p["kv_heads"],
        position_id_per_seconds=13,
        rms_norm_eps=1e-06,
        rope_scaling={"interleaved": True, "mrope_section": list(p["mrope"]), "rope_type": "default",
                      "type": "default"},
        rope_theta=1000000,
        sliding_window=None,
        spk_id=spk_id,
        spk_is_dialect=spk_is_dialect,
        text_hidden_size=p["text_hidden"],
        text_vocab_size=151936,
        use_cache=True,
        use_sliding_window=False,
        vocab_size=TALKER_VOCAB,
        **{k: shift(v) for k, v in REAL_CODEC_IDS.items()},
    )
    assert sum(p["mrope"]) == p["head_dim"] // 2
    return dict(
        architectures=["Qwen3TTSForConditionalGeneration"],
        assistant_token_id=77091,
        im_end_token_id=151645,
        im_start_token_id=151644,
        model_type="qwen3_tts",
        talker_config=talker,
        tokenizer_type="qwen3_tts_tokenizer_12hz",
        tts_bos_token_id=151672,
        tts_eos_token_id=151673,
        tts_model_size=p["tts_model_size"],
        tts_model_type=p["tts_model_type"],
        tts_pad_token_id=151671,
    )


def check_codec_layout(cfg):
    t = cfg["talker_config"]
    ids = [t[k] for k in REAL_CODEC_IDS]
    ids += list(t["codec_language_id"].values())
    for v in t["spk_id"].values():
        ids += v if isinstance(v, list) else [v]
    for i in ids:
        assert CP_VOCAB <= i < TALKER_VOCAB, i
    assert TALKER_VOCAB - 1024 >= CP_VOCAB


# ----------------------------------------------------------------------------------------------
# Random weights
# ----------------------------------------------------------------------------------------------
def randomize(model, p):
    """Re-randomise every parameter (and persistent buffer) deterministically.

    * RMSNorm weights (input/post-attention/q/k/final norms): 1 + 0.1 N(0,1)
    * Linear weights [out, in]: N(0, 1/sqrt(in)); codec_head N(0, head_scale/sqrt(in)), predictor lm_heads
      N(0, cp_head_scale/sqrt(in)). Scaling a head does not change greedy codes nor the *relative* argmax
      margins; the seeds were chosen (--tune) for utterance lengths and for min margins >= 1e-4;
      the EOS row of codec_head gets an extra factor eos_scale (the knob that sets utterance lengths)
    * biases: N(0, 0.1)
    * embeddings: N(0, 1) (text, talker codec); predictor codec embeddings N(0, 0.5)
    """
    gen = torch.Generator().manual_seed(p["seed"])
    eos = shift(REAL_CODEC_IDS["codec_eos_token_id"])
    names = sorted(n for n, _ in model.named_parameters())
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in names:
            t = params[name]
            shape = tuple(t.shape)
            noise = torch.randn(shape, generator=gen, dtype=torch.float32)
            if name.endswith("norm.weight"):
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
            if p["dtype"] == "bfloat16":
                val = val.to(torch.bfloat16).to(torch.float32)
            t.copy_(val)
        for name, b in model.named_buffers():
            # only rotary inv_freq buffers exist; they are not persistent and are derived from config
            assert name.endswith("inv_freq"), name


# ----------------------------------------------------------------------------------------------
# Official loading with a stub speech tokenizer (only codes are needed, never audio)
# ----------------------------------------------------------------------------------------------
class StubSpeechTokenizer:
    """Stands in for Qwen3TTSTokenizer: the talker path never touches it; decode returns silence."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        return cls()

    def decode(self, items):
        return [np.zeros(1, dtype=np.float32) for _ in items], 24000


_orig_cached_file = official_modeling.cached_file


def _cached_file(path, filename, *args, **kwargs):
    if filename == "speech_tokenizer/config.json":
        return os.path.join(str(path), filename)  # never opened: the stub ignores it
    return _orig_cached_file(path, filename, *args, **kwargs)


def install_stubs():
    official_modeling.Qwen3TTSTokenizer = StubSpeechTokenizer
    official_modeling.cached_file = _cached_file


def load_official(folder):
    install_stubs()
    return Qwen3TTSModel.from_pretrained(str(folder), dtype=torch.float32, attn_implementation="eager")


def wrap_in_memory(model, folder_for_tokenizer):
    """For --tune: the same wrapper around an in-memory model (tokenizer from the fixture folder)."""
    from transformers import AutoProcessor, AutoConfig, AutoModel
    AutoConfig.register("qwen3_tts", Qwen3TTSConfig, exist_ok=True)
    AutoModel.register(Qwen3TTSConfig, Qwen3TTSForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(Qwen3TTSConfig, Qwen3TTSProcessor, exist_ok=True)
    processor = AutoProcessor.from_pretrained(str(folder_for_tokenizer), fix_mistral_regex=True)
    model.load_speech_tokenizer(StubSpeechTokenizer())
    model.load_generate_config(dict(GENERATION_CONFIG))
    return Qwen3TTSModel(model=model, processor=processor, generate_defaults=model.generate_config)


# ----------------------------------------------------------------------------------------------
# Capture
# ----------------------------------------------------------------------------------------------
class Recorder:
    def __init__(self, model):
        self.talker = model.talker
        self.handles = []
        self.reset()
        t = self.talker
        self.handles.append(t.register_forward_pre_hook(self._talker_pre, with_kwargs=True))
        self.handles.append(t.register_forward_hook(self._talker_post, with_kwargs=True))
        self.handles.append(t.model.register_forward_pre_hook(self._tmodel_pre, with_kwargs=True))
        self.handles.append(t.model.register_forward_hook(self._tmodel_post, with_kwargs=True))
        for i, layer in enumerate(t.model.layers):
            self.handles.append(layer.register_forward_hook(self._make_layer_hook(i)))
        self.handles.append(t.code_predictor.register_forward_hook(self._cp_post, with_kwargs=True))
        self.orig_generate = model.generate
        self.model = model
        model.generate = self._generate  # instance attribute: the wrapper calls self.model.generate

    def reset(self):
        self.in_prefill = False
        self.prefill_embeds = None
        self.trailing = None
        self.pad_embed = None
        self.attention_mask = None
        self.layer_out = {}
        self.final_hidden = None
        self.prefill_logits = None
        self.step_logits = []
        self.step_embeds = []
        self.cp_logits = []
        self.gen_kwargs = None
        self.codes = None

    def _generate(self, **kwargs):
        self.gen_kwargs = kwargs
        codes, hiddens = self.orig_generate(**kwargs)
        self.codes = codes
        return codes, hiddens

    def _talker_pre(self, module, args, kwargs):
        emb = kwargs.get("inputs_embeds")
        if emb is not None and emb.shape[1] > 1:
            self.in_prefill = True
            self.prefill_embeds = emb.detach().clone()
            self.trailing = kwargs["trailing_text_hidden"].detach().clone()
            self.pad_embed = kwargs["tts_pad_embed"].detach().clone()
            self.attention_mask = kwargs.get("attention_mask")
        return None

    def _talker_post(self, module, args, kwargs, out):
        logits = out.logits.detach()
        if self.in_prefill:
            self.prefill_logits = logits.clone()
        self.step_logits.append(logits[:, -1, :].clone())
        self.in_prefill = False

    def _tmodel_pre(self, module, args, kwargs):
        emb = kwargs.get("inputs_embeds")
        if emb is not None and emb.shape[1] == 1:
            self.step_embeds.append(emb.detach()[:, 0, :].clone())

    def _tmodel_post(self, module, args, kwargs, out):
        if self.in_prefill:
            self.final_hidden = out.last_hidden_state.detach().clone()

    def _make_layer_hook(self, idx):
        def hook(module, args, out):
            if self.in_prefill:
                self.layer_out[idx] = out[0].detach().clone()
        return hook

    def _cp_post(self, module, args, kwargs, out):
        self.cp_logits.append(out.logits.detach()[:, -1, :].clone())


# ----------------------------------------------------------------------------------------------
# Greedy self-check: re-derive every c0 from the raw logits with the official processor chain
# ----------------------------------------------------------------------------------------------
def greedy_replay(step_logits, codes, eos_id, vocab, penalty=1.05, min_new=2):
    """Returns the list of sampled c0 tokens (frames + last). Raises if it disagrees with codes."""
    seen = []
    sampled = []
    margins = []
    for k in range(step_logits.shape[0]):
        s = step_logits[k].clone().double()
        for tok in set(seen):
            s[tok] = s[tok] * penalty if s[tok] < 0 else s[tok] / penalty
        if len(seen) < min_new:
            s[eos_id] = -float("inf")
        for i in range(vocab - 1024, vocab):
            if i != eos_id:
                s[i] = -float("inf")
        tok = int(torch.argmax(s))
        top2 = torch.topk(s, 2).values
        margins.append(float(top2[0] - top2[1]))
        sampled.append(tok)
        seen.append(tok)
    frames = len(codes)
    assert len(sampled) == frames + 1, (len(sampled), frames)
    for k in range(frames):
        assert sampled[k] == codes[k][0], (k, sampled[k], codes[k][0])
    return sampled, min(margins)


# ----------------------------------------------------------------------------------------------
# Running cases
# ----------------------------------------------------------------------------------------------
def call_api(tts, kind, kw, max_new):
    kw = dict(kw)
    kw.setdefault("max_new_tokens", max_new)
    common = dict(do_sample=False, subtalker_dosample=False)
    if kind == "custom_voice":
        return tts.generate_custom_voice(**kw, **common)
    return tts.generate_voice_design(**kw, **common)


def run_case(tts, rec, kind, kw):
    rec.reset()
    call_api(tts, kind, kw, MAX_NEW)
    g = rec.gen_kwargs
    codes = rec.codes[0].tolist()
    ins = g.get("instruct_ids")
    ins0 = ins[0] if ins is not None else None
    return dict(
        codes=codes,
        input_ids=g["input_ids"][0][0].tolist(),
        instruct_ids=None if ins0 is None else ins0[0].tolist(),
        prompt_embeds=rec.prefill_embeds[0],
        trailing=rec.trailing[0],
        pad_embed=rec.pad_embed.reshape(-1),
        hidden=[rec.layer_out[i][0] for i in range(len(rec.layer_out))],
        final_hidden=rec.final_hidden[0],
        prefill_logits=rec.prefill_logits[0],
        step_logits=torch.stack([x[0] for x in rec.step_logits]),
        step_embeds=torch.stack([x[0] for x in rec.step_embeds]) if rec.step_embeds else None,
        cp_logits=torch.stack([x[0] for x in rec.cp_logits]) if rec.cp_logits else None,
        max_new_tokens=kw.get("max_new_tokens", MAX_NEW),
    )


def run_batched(tts, rec, kind, cases, names):
    by_name = {n: kw for n, _, kw in cases}
    kws = [by_name[n] for n in names]
    assert len({kw.get("max_new_tokens", MAX_NEW) for kw in kws}) == 1
    assert len({kw["non_streaming_mode"] for kw in kws}) == 1
    merged = dict(
        text=[kw["text"] for kw in kws],
        language=[kw["language"] for kw in kws],
        non_streaming_mode=kws[0]["non_streaming_mode"],
        max_new_tokens=kws[0].get("max_new_tokens", MAX_NEW),
    )
    if kind == "custom_voice":
        merged["speaker"] = [kw["speaker"] for kw in kws]
        if any(kw.get("instruct") for kw in kws):
            merged["instruct"] = [kw.get("instruct") or "" for kw in kws]
    else:
        merged["instruct"] = [kw["instruct"] for kw in kws]
    rec.reset()
    call_api(tts, kind, merged, MAX_NEW)
    return [c.tolist() for c in rec.codes], merged, rec.attention_mask


def eos_of(res, eos_id, vocab):
    sampled, talker_margin = greedy_replay(res["step_logits"], res["codes"], eos_id, vocab)
    last = sampled[-1]
    # predictor: greedy = argmax of raw logits, lm_head[j] predicts codebook j+1 (15 calls per frame)
    cp_margin = float("inf")
    if res["codes"]:
        cp = res["cp_logits"]
        assert cp.shape[0] == 15 * len(res["codes"]), (cp.shape, len(res["codes"]))
        for f, frame in enumerate(res["codes"]):
            for j in range(15):
                row = cp[15 * f + j]
                assert int(torch.argmax(row)) == frame[j + 1], ("predictor", f, j)
                top2 = torch.topk(row, 2).values
                cp_margin = min(cp_margin, float(top2[0] - top2[1]))
    return last == eos_id, last, talker_margin, cp_margin


# ----------------------------------------------------------------------------------------------
# Writing a preset
# ----------------------------------------------------------------------------------------------
_PLAIN_TOKENIZER = None


def plain_ids(text):
    """Target-template ids with the default Qwen2 split regex (tokenizer folder has no config.json, so
    transformers does not apply the fix_mistral_regex patch there)."""
    global _PLAIN_TOKENIZER
    if _PLAIN_TOKENIZER is None:
        from transformers import AutoTokenizer
        _PLAIN_TOKENIZER = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR), fix_mistral_regex=True)
    return _PLAIN_TOKENIZER(f"<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n")["input_ids"]


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


def write_folder(folder, cfg):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "config.json", "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(folder / "generation_config.json", "w", encoding="utf-8") as f:
        json.dump(GENERATION_CONFIG, f, indent=2)
        f.write("\n")
    for name in TOKENIZER_FILES:
        link = folder / name
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(os.path.join("..", "..", "tokenizer", name), link)
        assert link.resolve().is_file(), f"missing tokenizer file {link.resolve()}"


def build_model(cfg, p):
    torch.manual_seed(p["seed"])
    config = Qwen3TTSConfig(**copy.deepcopy(cfg))
    model = Qwen3TTSForConditionalGeneration(config).to(torch.float32).eval()
    randomize(model, p)
    return model


def save_weights(model, folder, p):
    dtype = torch.bfloat16 if p["dtype"] == "bfloat16" else torch.float32
    sd = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return sd


def link_weights(model, folder, p):
    """Reuse the weights file of another preset: same names/shapes/seed, so same tensors (checked)."""
    target = FIXTURES / p["share_weights_with"] / "model.safetensors"
    if not target.is_file():
        sys.exit(f"{target} missing: generate preset {p['share_weights_with']} first")
    dtype = torch.bfloat16 if p["dtype"] == "bfloat16" else torch.float32
    sd = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    other = load_file(str(target))
    assert set(other) == set(sd), set(other) ^ set(sd)
    for k, v in sd.items():
        assert torch.equal(other[k], v), k
    link = folder / "model.safetensors"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(os.path.join("..", p["share_weights_with"], "model.safetensors"), link)
    return sd


def verify_loaded(tts, saved):
    loaded = tts.model.state_dict()
    assert set(loaded) == set(saved), (set(loaded) ^ set(saved))
    for k, v in saved.items():
        assert loaded[k].dtype == torch.float32, (k, loaded[k].dtype)
        assert torch.equal(loaded[k], v.to(torch.float32)), k
    return len(saved)


def generate_preset(name, p):
    folder = FIXTURES / name
    cfg = make_config(p)
    check_codec_layout(cfg)
    write_folder(folder, cfg)
    model = build_model(cfg, p)
    if p.get("share_weights_with"):
        saved = link_weights(model, folder, p)
    else:
        saved = save_weights(model, folder, p)
    del model

    tts = load_official(folder)
    n_tensors = verify_loaded(tts, saved)
    tcfg = tts.model.config.talker_config
    eos_id, vocab = tcfg.codec_eos_token_id, tcfg.vocab_size
    rec = Recorder(tts.model)

    cases = cases_for(name, p)
    out_cases, tensors, results = [], {}, {}
    for i, (cname, kind, kw) in enumerate(cases):
        res = run_case(tts, rec, kind, kw)
        eos, last, t_margin, cp_margin = eos_of(res, eos_id, vocab)
        results[cname] = res
        L = res["prompt_embeds"].shape[0]
        assert res["final_hidden"].shape[0] == L and len(res["hidden"]) == tcfg.num_hidden_layers
        out_cases.append(dict(
            name=cname,
            kind=kind,
            text=kw["text"],
            speaker=kw.get("speaker"),
            language=kw["language"],
            instruct=kw.get("instruct"),
            non_streaming_mode=kw["non_streaming_mode"],
            max_new_tokens=res["max_new_tokens"],
            input_ids=res["input_ids"],
            instruct_ids=res["instruct_ids"],
            prompt_len=L,
            trailing_len=int(res["trailing"].shape[0]),
            frames=len(res["codes"]),
            eos=bool(eos),
            last_sampled_c0=int(last),
            min_greedy_margin=dict(talker=round(t_margin, 6), predictor=round(cp_margin, 6)),
            input_ids_regex_sensitive=res["input_ids"] != plain_ids(kw["text"]),
            codes=res["codes"],
        ))
        tensors[f"case{i}.prompt_embeds"] = res["prompt_embeds"]
        tensors[f"case{i}.trailing_text"] = res["trailing"]
        for l, h in enumerate(res["hidden"]):
            tensors[f"case{i}.hidden.{l}"] = h
        tensors[f"case{i}.final_hidden"] = res["final_hidden"]
        tensors[f"case{i}.prefill_logits"] = res["prefill_logits"][-1:]
        tensors[f"case{i}.step_logits"] = res["step_logits"]
        if res["step_embeds"] is not None:
            tensors[f"case{i}.step_embeds"] = res["step_embeds"]
        if res["codes"]:
            tensors[f"case{i}.predictor_logits"] = res["cp_logits"][:15]
        if i == 0:
            tensors["tts_pad_embed"] = res["pad_embed"]

    kind = cases[0][1]
    bnames = BATCHED[kind]
    bcodes, bargs, bmask = run_batched(tts, rec, kind, cases, bnames)
    batched = dict(
        case_names=bnames,
        case_indices=[[c[0] for c in cases].index(n) for n in bnames],
        non_streaming_mode=bargs["non_streaming_mode"],
        max_new_tokens=bargs["max_new_tokens"],
        prompt_lens=[int(x) for x in bmask.sum(dim=1).tolist()],
        padded_len=int(bmask.shape[1]),
        frames=[len(c) for c in bcodes],
        codes=bcodes,
        matches_single=[bcodes[j] == results[n]["codes"] for j, n in enumerate(bnames)],
    )

    tok = tts.processor.tokenizer
    ref = dict(
        generator=dict(
            script="tools/parity/make_tts_fixtures.py",
            preset=name,
            versions=versions(),
            seed=p["seed"],
            weights_shared_with=p.get("share_weights_with"),
            weight_scales=dict(head_scale=p["head_scale"], cp_head_scale=p["cp_head_scale"],
                               eos_scale=p["eos_scale"],
                               norms="1+0.1*N(0,1)", linear="N(0,1/sqrt(fan_in))", bias="N(0,0.1)",
                               text_embedding="N(0,1)", codec_embedding="N(0,1)",
                               predictor_codec_embedding="N(0,0.5)"),
            weights_dtype=p["dtype"],
            weight_tensors=n_tensors,
            compute_dtype="float32",
            attn_implementation="eager",
            loaded_with="qwen_tts.Qwen3TTSModel.from_pretrained(folder, dtype=float32, attn_implementation='eager')"
                        " with speech tokenizer stubbed",
            tokenizer_fix_mistral_regex=bool(getattr(tok, "fix_mistral_regex", False)),
            torch_threads=torch.get_num_threads(),
            greedy="do_sample=False, subtalker_dosample=False; repetition_penalty=1.05 from generation_config.json;"
                   " min_new_tokens=2; suppress [vocab-1024, vocab) except EOS",
            codec_ids=dict(eos=eos_id, pad=tcfg.codec_pad_id, bos=tcfg.codec_bos_id,
                           think=tcfg.codec_think_id, nothink=tcfg.codec_nothink_id,
                           think_bos=tcfg.codec_think_bos_id, think_eos=tcfg.codec_think_eos_id),
        ),
        tensors_doc={
            "case{i}.prompt_embeds": "[L,H] prefill input rows built by official generate (spec 2.6)",
            "case{i}.trailing_text": "[n,H] trailing text-track vectors (trailing_text_hidden)",
            "case{i}.hidden.{l}": "[L,H] output of talker decoder layer l during prefill (pre final norm)",
            "case{i}.final_hidden": "[L,H] after talker.model.norm",
            "case{i}.prefill_logits": "[1,V] raw codec_head logits of the last prefill row",
            "case{i}.step_logits": "[frames+1,V] raw talker logits of every forward (row 0 = prefill last row;"
                                   " row k gives c0 of frame k; the last row gives EOS or the discarded cap token)",
            "case{i}.step_embeds": "[frames,H] decode-step talker inputs (16-code embedding sum + text track)",
            "case{i}.predictor_logits": "[15,cp_vocab] raw predictor logits for frame 0 (row j -> codebook j+1)",
            "tts_pad_embed": "[H] text_projection(text_embedding(tts_pad))",
        },
        cases=out_cases,
        batched=batched,
    )
    with open(folder / "reference.json", "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False, indent=1)
        f.write("\n")
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}
    save_file(tensors, str(folder / "reference.safetensors"), metadata={"format": "pt"})
    # sanity: read back
    back = load_file(str(folder / "reference.safetensors"))
    assert set(back) == set(tensors)
    return ref


def resolve(name):
    p = dict(PRESETS[name])
    src = p.get("share_weights_with")
    if src:
        for k in ("dtype", "seed", "head_scale", "cp_head_scale", "eos_scale"):
            p[k] = PRESETS[src][k]
    return p


def tune(name, p, seeds, eos_scales, head_scales):
    cfg = make_config(p)
    tmp = Path("/tmp") / f"tts-tune-{name}"
    write_folder_tmp(tmp, cfg)
    cases = cases_for(name, p)
    for hs in head_scales:
        for es in eos_scales:
            for seed in seeds:
                q = dict(p, seed=seed, eos_scale=es, head_scale=hs)
                model = build_model(cfg, q)
                tts = wrap_in_memory(model, tmp)
                rec = Recorder(model)
                row, margins = [], []
                for cname, kind, kw in cases:
                    res = run_case(tts, rec, kind, kw)
                    eos, _, tm, cm = eos_of(res, cfg["talker_config"]["codec_eos_token_id"], TALKER_VOCAB)
                    row.append(f"{len(res['codes'])}{'e' if eos else 'c'}")
                    margins.append((tm, cm))
                print(f"{name} seed={seed} eos={es} head={hs}: {' '.join(row)}  "
                      f"margin talker={min(m[0] for m in margins):.1e} predictor={min(m[1] for m in margins):.1e}",
                      flush=True)


def write_folder_tmp(tmp, cfg):
    tmp.mkdir(parents=True, exist_ok=True)
    with open(tmp / "config.json", "w") as f:
        json.dump(cfg, f)
    for n in TOKENIZER_FILES:
        link = tmp / n
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(TOKENIZER_DIR / n, link)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", action="append", choices=sorted(PRESETS), help="default: all")
    ap.add_argument("--tune", type=int, default=0, help="try this many seeds, print frame counts, write nothing")
    ap.add_argument("--seed0", type=int, default=0)
    ap.add_argument("--eos-scale", type=float, action="append")
    ap.add_argument("--head-scale", type=float, action="append")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for n in TOKENIZER_FILES:
        if not (TOKENIZER_DIR / n).is_file():
            sys.exit(f"{TOKENIZER_DIR / n} missing: the tokenizer fixture must exist first")
    names = args.preset or list(PRESETS)
    for name in names:
        p = resolve(name)
        if args.tune:
            tune(name, p, range(args.seed0, args.seed0 + args.tune), args.eos_scale or [p["eos_scale"]],
                 args.head_scale or [p["head_scale"]])
            continue
        ref = generate_preset(name, p)
        print(f"== {name}")
        for c in ref["cases"]:
            print(f"  {c['name']:<22} L={c['prompt_len']:<3} n={c['trailing_len']:<3} frames={c['frames']:<3} "
                  f"{'EOS' if c['eos'] else 'cap'}")
        b = ref["batched"]
        print(f"  batched {b['case_names']} frames={b['frames']} matches_single={b['matches_single']}")


if __name__ == "__main__":
    main()
