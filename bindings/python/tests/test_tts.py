"""Text to speech: offline, streamed, seeded, cancelled."""

import numpy as np
import pytest

import voxkit
from conftest import GREEDY, assert_speech


def test_offline_audio(engine, offline_audio):
    audio, info = offline_audio
    print(f"offline: {audio.size} samples at {info.sample_rate} Hz, {info.tokens} frames")
    assert info.state == voxkit.JobState.DONE and info.kind == voxkit.Kind.TTS
    assert info.sample_rate == engine.model_info("tts").sample_rate == 24000
    assert info.samples_total == audio.size == info.tokens * 1920
    assert not info.streaming
    assert_speech(audio)


def test_results_of_a_tts_job(engine):
    with engine.tts("Timings.", greedy=True, max_new_tokens=4) as job:
        job.wait(60)
        t = job.timings()
        assert t.tokens == job.poll().tokens > 0 and t.batch_size >= 1
        assert t.total_ms >= t.tts_ms > 0 and t.codec_ms > 0
        assert job.text == "" and job.language == "" and job.error_message == ""
        job.audio()
        assert job.read().size == 0  # everything was read


def test_streamed_chunks_equal_the_offline_audio(engine, offline_audio):
    audio, offline = offline_audio
    with engine.tts(**GREEDY, stream=True) as job:
        chunks = list(job.stream())
        info = job.poll()
    print(f"streamed: {len(chunks)} chunks, sizes {[c.size for c in chunks]}")
    assert info.state == voxkit.JobState.DONE and info.streaming
    assert len(chunks) > 1, "audio came in one piece: not streamed"
    assert all(c.dtype == np.float32 and c.ndim == 1 and c.size for c in chunks)
    streamed = np.concatenate(chunks)
    assert streamed.size == audio.size and info.truncated == offline.truncated
    # Same codes (greedy); the codec decodes frame by frame instead of all at once, which
    # moves the last bits of a float (the engine's own test allows 1e-5 too).
    np.testing.assert_allclose(streamed, audio, rtol=0, atol=1e-5)


def test_a_seed_repeats_the_same_audio(engine):
    def render():
        with engine.tts("Seeded.", seed=1234, max_new_tokens=4) as job:
            return job.audio(60)
    first, second = render(), render()
    assert_speech(first)
    np.testing.assert_array_equal(first, second)


def test_wait_timeout_then_cancel(engine):
    with engine.tts("A long text to be cut short. " * 4, max_new_tokens=400) as job:
        with pytest.raises(voxkit.VoxError) as err:
            job.wait(timeout=0)
        assert err.value.code == voxkit.VOX_ERR_TIMEOUT and err.value.name == "VOX_ERR_TIMEOUT"
        job.cancel()
        info = job.wait(30)
        assert info.state == voxkit.JobState.CANCELLED
        job.cancel()  # a no-op once ended
        partial = job.audio()
        assert partial.dtype == np.float32 and np.isfinite(partial).all()
