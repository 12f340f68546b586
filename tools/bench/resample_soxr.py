#!/usr/bin/env python3
"""python-soxr VHQ on the tones and rate pairs of examples/resample_compare.rs, measured the same way.

Per rate pair: the worst image/alias component of in-band tones (0.02-0.9 x the lower Nyquist, dBc),
the worst alias of tones above the output band when downsampling (1.0-1.9 x the output Nyquist, dB
relative to the input tone), the passband ripple (max - min gain over the in-band tones, dB) and the
speed in x real time on one thread (10 s of noise resampled in one call, best of 5). Spectra: 7-term
Blackman-Harris window over 65536 steady-state output samples (the middle of the output), f64 FFT.

Setup (a throwaway venv):
    python3 -m venv /tmp/soxr-venv && /tmp/soxr-venv/bin/pip install soxr numpy
    /tmp/soxr-venv/bin/python tools/bench/resample_soxr.py [--quick]
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import soxr  # noqa: E402

PAIRS = [
    (24000, 48000),
    (24000, 44100),
    (48000, 16000),
    (44100, 16000),
    (22050, 16000),
    (8000, 16000),
    (11025, 17000),
    (44101, 16000),
]
IN_BAND = [0.0217, 0.1113, 0.3079, 0.5471, 0.7193, 0.8411, 0.9]
ABOVE = [1.0, 1.013, 1.1, 1.37, 1.9]
AMP = 0.9

# 7-term minimum-sidelobe Blackman-Harris (Albrecht), sidelobes about -180 dB.
BH7 = [
    0.27105140069342,
    0.43329793923448,
    0.21812299954311,
    0.06592544638803,
    0.01081174209837,
    0.00077658482522,
    0.00001388721735,
]


def bh7(n):
    x = 2 * np.pi * np.arange(n) / n
    return sum((a if k % 2 == 0 else -a) * np.cos(k * x) for k, a in enumerate(BH7))


def analyze(y, n, freq, window):
    """(tone amplitude, largest component more than 9 bins from freq, dB re AMP) of y's middle n."""
    start = (len(y) - n) // 2
    seg = y[start : start + n].astype(np.float64)
    gain = window.sum() / 2
    i = np.arange(n)
    amp = abs(np.sum(seg * window * np.exp(-2j * np.pi * freq * i))) / gain
    spec = np.abs(np.fft.rfft(seg * window)) / gain
    spec[0] /= 2
    spec[-1] /= 2  # a real tone at DC or Nyquist puts both halves in one bin
    k = np.arange(len(spec))
    spec[np.abs(k - freq * n) <= 9] = 0
    return amp, 20 * np.log10(max(spec.max(), 1e-300) / AMP)


def quality(dtype, src, dst, n, window):
    n_in = -(-(n + 40000) * src // dst)
    t = np.arange(n_in)

    def run(f):
        x = (AMP * np.sin(2 * np.pi * f * t / src + 0.3)).astype(dtype)
        return soxr.resample(x, src, dst, quality="VHQ")

    nyq = min(src, dst) / 2
    spur, gains = -np.inf, []
    for frac in IN_BAND:
        f = frac * nyq
        amp, s = analyze(run(f), n, f / dst, window)
        spur = max(spur, s)
        gains.append(20 * np.log10(amp / AMP))
    alias = None
    if src > dst:
        alias = max(analyze(run(f), n, 2.0, window)[1] for f in (a * dst / 2 for a in ABOVE) if f < 0.49 * src)
    return spur, alias, max(gains) - min(gains)


def speed(dtype, src, dst, secs, reps):
    rng = np.random.default_rng(12345)
    x = (rng.random(secs * src) - 0.5).astype(dtype)
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        y = soxr.resample(x, src, dst, quality="VHQ")
        best = min(best, time.perf_counter() - t0)
        assert len(y) > 0
    return secs / best


def main():
    quick = "--quick" in sys.argv
    n = 16384 if quick else 65536
    secs, reps = (2, 2) if quick else (10, 5)
    window = bh7(n)
    print(f"python-soxr {soxr.__version__}, numpy {np.__version__}")
    print(
        "| rate pair | implementation | worst image/alias, in-band tones (dBc) | worst alias, tones above the "
        "output band (dB) | passband ripple to 0.9 × Nyquist (dB) | × real time, 1 thread |"
    )
    print("|---|---|---|---|---|---|")
    for src, dst in PAIRS:
        for dtype in (np.float64, np.float32):
            spur, alias, ripple = quality(dtype, src, dst, n, window)
            x = speed(dtype, src, dst, secs, reps)
            a = "–" if alias is None else f"{alias:.1f}"
            name = f"python-soxr VHQ, {np.dtype(dtype).name}"
            print(f"| {src} → {dst} | {name} | {spur:.1f} | {a} | {ripple:.1e} | {x:.0f} |")


if __name__ == "__main__":
    main()
