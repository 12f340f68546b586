"""Errors: VoxError's code, name and message; arguments refused in Python or by the library."""

import numpy as np
import pytest

import voxkit


def test_missing_model_folder(tmp_path):
    with pytest.raises(voxkit.VoxError) as err:
        voxkit.Engine(tts_model=tmp_path / "no-such-model", device="cpu")
    e = err.value
    print(f"missing folder: {e}")
    assert e.code == voxkit.VOX_ERR_MODEL_LOAD and e.name == "VOX_ERR_MODEL_LOAD"
    assert "no-such-model" in e.message and str(e).startswith("VOX_ERR_MODEL_LOAD (8): ")


def test_no_model_configured(native):
    with voxkit.Engine(device="cpu") as engine:
        for submit in (lambda: engine.tts("Hello."),
                       lambda: engine.asr(np.zeros(1600, np.float32), 16000)):
            with pytest.raises(voxkit.VoxError) as err:
                submit()
            assert err.value.code == voxkit.VOX_ERR_MODEL_NOT_LOADED
        with pytest.raises(voxkit.VoxError) as err:
            engine.model_info("tts")
        assert err.value.code == voxkit.VOX_ERR_MODEL_NOT_LOADED


@pytest.mark.parametrize("kwargs, words", [
    (dict(text=""), "text is empty"),
    (dict(text="Hi.", speaker="nobody"), "aiden"),       # the message lists the speakers
    (dict(text="Hi.", language="Klingon"), "english"),
    (dict(text="Hi.", top_p=2.0), "top_p"),
])
def test_bad_tts_request(engine, kwargs, words):
    with pytest.raises(voxkit.VoxError) as err:
        engine.tts(**kwargs)
    assert err.value.code == voxkit.VOX_ERR_INVALID_ARGUMENT and words in err.value.message


@pytest.mark.parametrize("kwargs, error", [
    (dict(text="a\0b"), ValueError),            # C would cut the text at the NUL
    (dict(text=b"bytes"), TypeError),
    (dict(text="Hi.", max_new_tokens=-1), ValueError),  # ctypes would wrap it to 2^32 - 1
    (dict(text="Hi.", seed=1 << 64), ValueError),
    (dict(text="Hi.", max_new_tokens=1.5), TypeError),
])
def test_arguments_refused_in_python(engine, kwargs, error):
    with pytest.raises(error):
        engine.tts(**kwargs)


def test_bad_engine_arguments(checkpoints):
    with pytest.raises(ValueError):
        voxkit.Engine(device="tpu")
    with pytest.raises(ValueError):
        voxkit.Engine(device="cpu", quantization="int3")
    with pytest.raises(ValueError):
        voxkit.Engine(device="cpu", preload="video")
    with pytest.raises(voxkit.VoxError) as err:  # in range for ctypes, refused by the library
        voxkit.Engine(checkpoints[0], device="cpu", max_batch=0)
    assert err.value.code == voxkit.VOX_ERR_INVALID_ARGUMENT


def test_status_strings(native):
    assert voxkit.status_string(voxkit.VOX_ERR_UNKNOWN_JOB) != voxkit.status_string(voxkit.VOX_OK)
    assert voxkit.VoxError(voxkit.VOX_ERR_TIMEOUT).message == voxkit.status_string(12)
    assert voxkit.abi_version() >= voxkit.ABI_VERSION
    assert voxkit.library_version()
