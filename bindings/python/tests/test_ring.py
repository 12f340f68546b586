"""AudioRing (ABI 6): the wait-free read path, against the same greedy request's offline audio."""

import time

import numpy as np
import pytest

import voxkit
from conftest import GREEDY


def _drain(ring, block=1000, deadline_s=120):
    """Reads until the ring says the job ended and everything was read."""
    buf = np.empty(block, dtype=np.float32)
    out, deadline = [], time.monotonic() + deadline_s
    while True:
        n, ended = ring.read_into(buf)
        out.append(buf[:n].copy())
        if ended:
            return np.concatenate(out)
        if n == 0:
            assert time.monotonic() < deadline, "the ring never ended"
            time.sleep(0.005)


def test_ring_reads_the_whole_stream(engine, offline_audio):
    audio, _ = offline_audio
    with engine.tts(**GREEDY, stream=True) as job, job.open_ring(4096) as ring:
        with pytest.raises(voxkit.VoxError) as err:
            job.read()  # the audio goes only through the ring now
        assert err.value.code == voxkit.VOX_ERR_INVALID_ARGUMENT
        with pytest.raises(voxkit.VoxError):
            job.open_ring(4096)  # one ring per job
        got = _drain(ring)
        assert job.poll().state == voxkit.JobState.DONE
    print(f"ring: {got.size} samples")
    np.testing.assert_allclose(got, audio, rtol=0, atol=1e-5)


def test_close_gives_unread_samples_back(engine, offline_audio):
    audio, _ = offline_audio
    with engine.tts(**GREEDY) as job:
        job.wait(120)
        ring = voxkit.AudioRing.open(job, 1000)
        head = np.empty(700, dtype=np.float32)
        n, ended = ring.read_into(head)
        assert (n, ended) == (700, False)
        ring.close()
        ring.close()  # idempotent
        rest = job.read()  # vox_read_audio works again and gets what the ring did not deliver
    np.testing.assert_allclose(np.concatenate([head, rest]), audio, rtol=0, atol=1e-5)
    with pytest.raises(voxkit.VoxError):
        ring.read_into(head)


def test_ring_outlives_its_job(engine, offline_audio):
    audio, _ = offline_audio
    job = engine.tts(**GREEDY)
    job.wait(120)
    with job.open_ring(1 << 16) as ring:  # a ring on an ended job holds all its audio
        job.release()  # the ring stays readable until it is closed
        got = _drain(ring)
    np.testing.assert_allclose(got, audio, rtol=0, atol=1e-5)


def test_ring_arguments(engine):
    with engine.asr(np.zeros(1600, np.float32), 16000, max_new_tokens=1) as job:
        with pytest.raises(voxkit.VoxError) as err:
            job.open_ring(1024)  # TTS jobs only
        assert err.value.code == voxkit.VOX_ERR_INVALID_ARGUMENT
    with engine.tts("Ring.", max_new_tokens=2) as job:
        for capacity in (0, (1 << 24) + 1):
            with pytest.raises(voxkit.VoxError) as err:
                job.open_ring(capacity)
            assert err.value.code == voxkit.VOX_ERR_INVALID_ARGUMENT
        with pytest.raises(ValueError):
            job.open_ring(-1)
        with job.open_ring(16) as ring:
            for bad in (np.empty(8, np.float64), np.empty((2, 8), np.float32),
                        np.empty(16, np.float32)[::2]):
                with pytest.raises(ValueError):
                    ring.read_into(bad)
