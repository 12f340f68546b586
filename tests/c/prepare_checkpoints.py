#!/usr/bin/env python3
"""Derives the hostile checkpoints of tests/c/checkpoint_test.c from a tiny random-weight one
(`voxkit make-checkpoint --preset tiny-customvoice`), with the standard library only:

    prepare_checkpoints.py TINY_DIR OUT_ROOT   ->  OUT_ROOT/huge, OUT_ROOT/nan

huge: the code predictor claims 1e9 layers (once an abort of the host; now a load error).
nan:  the codec decoder's f32 biases are NaN (once a DONE job full of NaN samples).
"""
import json
import shutil
import struct
import sys
from pathlib import Path


def copy(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def main() -> None:
    tiny, root = Path(sys.argv[1]), Path(sys.argv[2])
    root.mkdir(parents=True, exist_ok=True)

    huge = copy(tiny, root / "huge")
    cfg_path = huge / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["talker_config"]["code_predictor_config"]["num_hidden_layers"] = 1_000_000_000
    cfg_path.write_text(json.dumps(cfg))

    nan = copy(tiny, root / "nan")
    weights = nan / "speech_tokenizer" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8 : 8 + n])
    poisoned = 0
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32":
            continue
        if name.startswith("decoder.decoder.") and name.endswith(".bias"):
            begin, end = t["data_offsets"]
            start = 8 + n + begin
            data[start : 8 + n + end] = struct.pack("<I", 0x7FC00000) * ((end - begin) // 4)
            poisoned += 1
    if poisoned == 0:
        sys.exit("prepare_checkpoints: no codec decoder bias to poison (did the tensor names change?)")
    weights.write_bytes(bytes(data))


if __name__ == "__main__":
    main()
