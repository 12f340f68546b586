"""Speech recognition of the TTS output, and how numpy input is converted or refused."""

import numpy as np
import pytest

import voxkit


def _transcribe(engine, audio, rate):
    with engine.asr(audio, rate, max_new_tokens=6) as job:
        info = job.wait(120)
        return info, job.text, job.language, job.timings()


def test_asr_of_tts_output(engine, offline_audio):
    audio, tts_info = offline_audio
    info, text, language, t = _transcribe(engine, audio, tts_info.sample_rate)
    print(f"asr: {text!r} (language {language!r}), {t.tokens} tokens")
    assert info.state == voxkit.JobState.DONE and info.kind == voxkit.Kind.ASR
    assert isinstance(text, str) and isinstance(language, str)
    assert 0 < t.tokens <= 6 and t.asr_encode_ms > 0 and t.asr_decode_ms > 0
    assert t.upsample_ms > 0  # 24 kHz input resampled to the model's 16 kHz


def test_stereo_float64_strided_input_is_converted(engine, offline_audio):
    audio, _ = offline_audio
    stereo = np.stack([audio, audio * 0.5], axis=1).astype(np.float64)[::2]  # 12 kHz, strided
    assert not stereo.flags.c_contiguous and stereo.shape[1] == 2
    info, text, _, _ = _transcribe(engine, stereo, 12000)
    assert info.state == voxkit.JobState.DONE and isinstance(text, str)


@pytest.mark.parametrize("audio, error", [
    (np.zeros(1600, dtype=np.int16), TypeError),            # integer PCM: scale unknown
    (np.zeros((2, 2, 100), dtype=np.float32), ValueError),  # not mono or (frames, channels)
    (np.zeros((2, 1600), dtype=np.float32), ValueError),    # (channels, frames)
])
def test_input_refused_before_the_library(engine, audio, error):
    with pytest.raises(error):
        engine.asr(audio, 16000)


@pytest.mark.parametrize("audio, rate", [
    (np.zeros(0, dtype=np.float32), 16000),                 # empty
    (np.full(1600, np.nan, dtype=np.float32), 16000),       # NaN samples
    (np.zeros(1600, dtype=np.float32), 0),                  # no rate
])
def test_input_refused_by_the_library(engine, audio, rate):
    with pytest.raises(voxkit.VoxError) as err:
        engine.asr(audio, rate)
    assert err.value.code == voxkit.VOX_ERR_INVALID_ARGUMENT
    assert err.value.message.startswith("vox_asr_submit")
