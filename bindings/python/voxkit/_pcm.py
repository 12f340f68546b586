"""numpy in and out: what the C ABI's float PCM buffers look like on the Python side."""

import ctypes

import numpy as np

# A 2-D array wider than this is almost surely (channels, frames) given the wrong way round.
_MAX_CHANNELS = 64


def interleaved(audio):
    """Turns ASR input into (C-contiguous float32 samples, frames, channels).

    Mono: shape (frames,). Several channels: shape (frames, channels), which in C order is
    exactly the interleaved layout the header asks for. Floating input of another precision
    is converted; integer PCM is refused because its full scale (16-bit? 24-in-32?) is a guess.
    """
    a = np.asarray(audio)
    if a.dtype.kind != "f":
        raise TypeError(f"audio must be floating-point PCM in [-1, 1], got dtype {a.dtype}; "
                        "scale integer PCM first, e.g. pcm16.astype(np.float32) / 32768")
    if a.ndim == 1:
        channels = 1
    elif a.ndim == 2:
        channels = a.shape[1]
        if channels > _MAX_CHANNELS:
            raise ValueError(f"audio of shape {a.shape}: expected (frames, channels) with at most "
                             f"{_MAX_CHANNELS} channels; transpose a (channels, frames) array")
    else:
        raise ValueError(f"audio must be 1-D (mono) or 2-D (frames, channels), got shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    return a, a.shape[0], channels


def float_ptr(array):
    """A float* to a float32 array's first sample (the array must outlive its use)."""
    return array.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def writable_mono(dst):
    """Checks that `dst` can receive samples in place: 1-D, float32, C-contiguous, writable."""
    if not isinstance(dst, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(dst).__name__}")
    if dst.dtype != np.float32 or dst.ndim != 1 or not dst.flags.c_contiguous:
        raise ValueError("expected a 1-D C-contiguous float32 array to read samples into, got "
                         f"dtype {dst.dtype}, shape {dst.shape}")
    if not dst.flags.writeable:
        raise ValueError("the array to read samples into is read-only")
    return dst
