#!/usr/bin/env python3
"""Audio-file helpers for scripts/bindings/cpp.sh (standard library only):

    audio_files.py check-f32 FILE                  raw f32 mono: non-empty, whole, finite
    audio_files.py check-wav FILE RATE             a 32-bit float mono WAV at RATE: same checks
    audio_files.py f32-to-wav16 IN.f32 OUT.wav RATE   raw f32 mono -> 16-bit PCM stereo WAV

The 16-bit stereo WAV feeds examples/c/transcribe.c the other half of what its reader accepts
(16-bit PCM, more than one channel); the examples themselves write float.
Prints what it checked; exits 1 with a reason otherwise.
"""
import array
import math
import struct
import sys
import wave


def fail(msg: str) -> None:
    print(f"audio_files: {msg}", file=sys.stderr)
    sys.exit(1)


def check_samples(name: str, raw: bytes) -> array.array:
    if not raw:
        fail(f"{name}: no samples")
    if len(raw) % 4:
        fail(f"{name}: {len(raw)} bytes is not a whole number of f32 samples")
    pcm = array.array("f")
    pcm.frombytes(raw)
    if sys.byteorder != "little":
        pcm.byteswap()
    bad = sum(1 for x in pcm if not math.isfinite(x))
    if bad:
        fail(f"{name}: {bad} non-finite samples")
    return pcm


def check_f32(path: str) -> None:
    with open(path, "rb") as f:
        pcm = check_samples(path, f.read())
    print(f"ok: {path}: {len(pcm)} finite f32 samples, peak {max(abs(x) for x in pcm):.3f}")


def check_wav(path: str, rate: int) -> None:
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        fail(f"{path}: not RIFF/WAVE")
    if struct.unpack_from("<I", data, 4)[0] + 8 != len(data):
        fail(f"{path}: RIFF size does not match the file size")
    pos, fmt, samples = 12, None, None
    while pos + 8 <= len(data):
        tag, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8:pos + 8 + size]
        if len(body) != size:
            fail(f"{path}: chunk {tag!r} runs past the end")
        if tag == b"fmt ":
            fmt = struct.unpack_from("<HHIIHH", body)
        elif tag == b"data":
            samples = body
        pos += 8 + size + (size & 1)
    if fmt is None or samples is None:
        fail(f"{path}: missing fmt or data chunk")
    tag, channels, got_rate, _, _, bits = fmt
    if (tag, channels, bits) != (3, 1, 32) or got_rate != rate:
        fail(f"{path}: format {tag}, {channels} ch, {bits} bit, {got_rate} Hz; "
             f"expected float mono 32-bit at {rate} Hz")
    pcm = check_samples(path, samples)
    print(f"ok: {path}: {len(pcm)} finite samples ({len(pcm) / rate:.2f} s at {rate} Hz), "
          f"{sum(1 for x in pcm if x != 0.0)} non-zero")


def f32_to_wav16(src: str, dst: str, rate: int) -> None:
    with open(src, "rb") as f:
        pcm = check_samples(src, f.read())
    frames = bytearray()
    for x in pcm:
        v = max(-32768, min(32767, round(x * 32767)))
        frames += struct.pack("<hh", v, v)
    with wave.open(dst, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    print(f"ok: wrote {dst}: {len(pcm)} frames of 16-bit stereo at {rate} Hz")


def main() -> None:
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "check-f32":
        check_f32(args[1])
    elif len(args) == 3 and args[0] == "check-wav":
        check_wav(args[1], int(args[2]))
    elif len(args) == 4 and args[0] == "f32-to-wav16":
        f32_to_wav16(args[1], args[2], int(args[3]))
    else:
        fail(__doc__)


if __name__ == "__main__":
    main()
