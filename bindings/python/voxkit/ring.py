"""AudioRing: the wait-free reader of one TTS job's audio (vox_audio_ring_*, ABI 6)."""

import ctypes
import operator
import threading

from . import _abi
from ._handle import Closing
from ._lib import lib
from ._pcm import float_ptr, writable_mono
from .errors import VoxError, check


class AudioRing(Closing):
    """A ring attached to a TTS job: from then on the job's audio comes only through it.

    read_into() is the real-time path (no allocation in the library; call it from one thread
    at a time). close() hands unread samples back to the job. The ring stays readable after the
    job is released or the engine closed, until close() (or garbage collection).
    """

    def __init__(self, job, capacity):
        self._ptr = None
        # The header forbids closing while a read of the same ring runs: the lock keeps the
        # two apart (uncontended in normal use, so reads stay cheap).
        self._lock = threading.Lock()
        capacity = operator.index(capacity)
        if capacity < 0:  # ctypes would wrap it into a huge size_t
            raise ValueError(f"capacity={capacity} is negative")
        ring = ctypes.c_void_p()
        with job.engine._handle.use() as engine:
            check(lib().vox_audio_ring_open(engine, job.id, capacity, ctypes.byref(ring)))
        self._ptr = ring

    @classmethod
    def open(cls, job, capacity):
        """Attaches a ring of at least `capacity` samples (1 .. 1<<24) to `job`."""
        return cls(job, capacity)

    def read_into(self, dst):
        """Copies up to len(dst) unread samples into `dst` (1-D float32).

        Returns (n, ended): ended is True once the job has ended and every sample it produced
        was read, so nothing more will come.
        """
        writable_mono(dst)
        written = ctypes.c_size_t()
        flags = ctypes.c_uint32()
        with self._lock:
            if self._ptr is None:
                raise VoxError(_abi.VOX_ERR_INVALID_ARGUMENT, "the ring was closed")
            status = lib().vox_audio_ring_read(self._ptr, float_ptr(dst), dst.size,
                                               ctypes.byref(written), ctypes.byref(flags))
        # Ring read errors leave no vox_last_error message: the status says it all.
        if status != _abi.VOX_OK:
            raise VoxError(status)
        return written.value, bool(flags.value & _abi.VOX_RING_ENDED)

    def close(self):
        """Detaches and frees the ring; unread samples go back to the job. Idempotent."""
        with self._lock:
            ptr, self._ptr = self._ptr, None
        if ptr is not None:
            check(lib().vox_audio_ring_close(ptr))

    _finish = close

    @property
    def closed(self):
        return self._ptr is None
