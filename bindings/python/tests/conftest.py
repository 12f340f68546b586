"""Shared fixtures: the library, tiny random-weight checkpoints, one engine for the session.

The checkpoints come from the voxkit CLI (`make-checkpoint`), found as $VOXKIT_CLI or next to
$VOXKIT_LIBRARY. Outside CI a missing library, CLI or compiler skips what needs it; in CI
(CI=true) it fails instead, so a broken setup can never pass quietly.
"""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import voxkit

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what):
    """A tool the tests need is absent: fail in CI, skip (with the reason) elsewhere."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: missing tools fail instead of skipping)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def native():
    try:
        return voxkit._lib.lib()
    except OSError as exc:
        missing(f"the voxkit library cannot be loaded: {exc}")


def _cli():
    explicit = os.environ.get("VOXKIT_CLI")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("VOXKIT_LIBRARY", "target/debug/libvoxkit.so")).parent / "voxkit"


@pytest.fixture(scope="session")
def checkpoints(native, tmp_path_factory):
    """(tts folder, asr folder): tiny random-weight checkpoints with the real layout."""
    cli = _cli()
    if not cli.is_file():
        missing(f"the voxkit CLI is not at {cli} (set VOXKIT_CLI)")
    root = tmp_path_factory.mktemp("checkpoints")
    made = []
    for preset, tokenizer, name in (("tiny-customvoice", "tokenizer", "tts"),
                                    ("tiny-asr", "asr/tiny", "asr")):
        out = root / name
        subprocess.run([str(cli), "make-checkpoint", "--preset", preset, "--out", str(out),
                        "--tokenizer", str(FIXTURES / tokenizer)],
                       check=True, capture_output=True, cwd=REPO)
        made.append(out)
    return tuple(made)


@pytest.fixture(scope="session")
def engine(checkpoints):
    """One CPU engine with both models, shared by the tests (the engine is thread-safe)."""
    tts, asr = checkpoints
    with voxkit.Engine(tts, asr, device="cpu", cpu_threads=2) as eng:
        yield eng


# One greedy request, so streamed and ring-read audio can be compared with its offline audio.
GREEDY = dict(text="Hello from Python.", greedy=True, max_new_tokens=24)


@pytest.fixture(scope="session")
def offline_audio(engine):
    with engine.tts(**GREEDY) as job:
        audio = job.audio(timeout=120)
        return audio, job.poll()


def assert_speech(audio, sample_rate=24000):
    assert isinstance(audio, np.ndarray) and audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size > 0 and audio.size % (sample_rate * 2 // 25) == 0  # whole 80 ms frames
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
