"""Job: one submitted TTS or ASR request, from submit to vox_release."""

import asyncio
import ctypes
import time

import numpy as np

from . import _abi
from ._handle import Closing
from ._lib import lib
from ._pcm import float_ptr, writable_mono
from .errors import VoxError, check
from .info import JobInfo, JobState, Timings

# Longest single vox_wait: a closing engine, or Ctrl-C, never waits longer than this.
_WAIT_SLICE_S = 0.1


def _ms(seconds):
    return max(0, min(int(seconds * 1000), _abi.VOX_WAIT_INFINITE - 1))


class Job(Closing):
    """A submitted request. Release it (context manager, release(), or garbage collection).

    Reads and state queries never block; wait(), audio() and stream() do, and their async
    twins poll instead (see wait_async).
    """

    def __init__(self, engine, job_id, kind):
        self.engine = engine
        self.id = job_id
        self.kind = kind
        self._released = False

    def __repr__(self):
        return f"<voxkit.Job {self.id} {'tts' if self.kind == _abi.VOX_KIND_TTS else 'asr'}>"

    # -- lifetime ---------------------------------------------------------------------------
    def release(self):
        """vox_release once; later calls do nothing. A closed engine already freed its jobs."""
        if self._released:
            return
        self._released = True
        if not self.engine.closed:
            with self.engine._handle.use() as ptr:
                check(lib().vox_release(ptr, self.id))

    _finish = release

    def cancel(self):
        """Stops the job (audio produced so far stays readable); no-op once it ended."""
        with self.engine._handle.use() as ptr:
            check(lib().vox_cancel(ptr, self.id))

    # -- state ------------------------------------------------------------------------------
    def poll(self):
        """The job's state now (never blocks)."""
        info = _abi.sized(_abi.VoxJobInfo)
        with self.engine._handle.use() as ptr:
            check(lib().vox_poll(ptr, self.id, ctypes.byref(info)))
        return JobInfo.from_c(info)

    def _wait_once(self, seconds):
        """One bounded vox_wait: the JobInfo when the job has ended, else None."""
        info = _abi.sized(_abi.VoxJobInfo)
        with self.engine._handle.use() as ptr:
            status = lib().vox_wait(ptr, self.id, _ms(seconds), ctypes.byref(info))
            if status == _abi.VOX_ERR_TIMEOUT:
                return None
            check(status)
        return JobInfo.from_c(info)

    def _ended(self, info):
        """A failed job's end raises its error; done and cancelled return the info."""
        if info.state == JobState.FAILED:
            raise VoxError(info.error, self.error_message or None)
        return info

    def _timeout(self, timeout):
        return VoxError(_abi.VOX_ERR_TIMEOUT, f"job {self.id} did not end within {timeout} s")

    def wait(self, timeout=None):
        """Blocks until the job ends (timeout in seconds, None = no limit); returns its JobInfo.

        Raises VoxError: VOX_ERR_TIMEOUT when the time runs out, the job's own error when it
        failed. A cancelled job returns normally (state CANCELLED).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _WAIT_SLICE_S if deadline is None else deadline - time.monotonic()
            info = self._wait_once(min(max(left, 0), _WAIT_SLICE_S))
            if info is not None:
                return self._ended(info)
            if deadline is not None and time.monotonic() >= deadline:
                raise self._timeout(timeout)

    async def wait_async(self, timeout=None, poll_interval=0.01):
        """wait() for asyncio: polls (never blocks the event loop), sleeping in between."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.poll()
            if info.ended:
                return self._ended(info)
            if deadline is not None and time.monotonic() >= deadline:
                raise self._timeout(timeout)
            await asyncio.sleep(poll_interval)

    # -- audio (TTS) ------------------------------------------------------------------------
    def read_into(self, dst):
        """Copies unread samples into `dst` (1-D float32); returns how many. Never blocks."""
        writable_mono(dst)
        written = ctypes.c_size_t()
        with self.engine._handle.use() as ptr:
            check(lib().vox_read_audio(ptr, self.id, float_ptr(dst), dst.size,
                                       ctypes.byref(written)))
        return written.value

    def _read_ready(self, ready):
        # Called even when nothing is ready, so a job that cannot be read (a ring attached,
        # released) says so instead of looking empty.
        buf = np.empty(ready, dtype=np.float32)
        return buf[:self.read_into(buf)]

    def read(self):
        """The samples produced and not read yet (maybe none), as float32. Never blocks."""
        return self._read_ready(self.poll().samples_ready)

    def audio(self, timeout=None):
        """Waits for the job to end, then returns its audio not read yet (all of it, if none
        was read), mono float32 at poll().sample_rate."""
        self.wait(timeout)
        return self.read()

    def _next_chunk(self):
        """(the samples ready now, whether the job had ended before they were read)."""
        info = self.poll()
        # Polled before reading: when it had ended then, an empty read means nothing is left.
        return self._read_ready(info.samples_ready), info

    def stream(self, poll_interval=0.01):
        """Yields the audio in chunks (float32 arrays) as the engine produces them.

        Between chunks it sleeps in vox_wait (which returns early when the job ends), so the
        loop does not spin. A failed job raises its VoxError after its last chunk.
        """
        while True:
            chunk, info = self._next_chunk()
            if chunk.size:
                yield chunk
            elif info.ended:
                self._ended(info)
                return
            else:
                self._wait_once(poll_interval)

    async def astream(self, poll_interval=0.01):
        """stream() for asyncio: `async for chunk in job.astream()`; never blocks the loop."""
        while True:
            chunk, info = self._next_chunk()
            if chunk.size:
                yield chunk
            elif info.ended:
                self._ended(info)
                return
            else:
                await asyncio.sleep(poll_interval)

    def open_ring(self, capacity):
        """An AudioRing of at least `capacity` samples on this TTS job (see voxkit.AudioRing)."""
        from .ring import AudioRing  # ring.py builds on Job, not the other way round
        return AudioRing(self, capacity)

    # -- results ----------------------------------------------------------------------------
    def _string(self, name):
        fn = getattr(lib(), name)
        required = ctypes.c_size_t()
        with self.engine._handle.use() as ptr:
            while True:
                buf = ctypes.create_string_buffer(max(required.value, 1))
                status = fn(ptr, self.id, buf, len(buf), ctypes.byref(required))
                # It can grow between the two calls (the job ended meanwhile): ask again.
                if status != _abi.VOX_ERR_BUFFER_TOO_SMALL:
                    check(status)
                    return buf.value.decode("utf-8")

    @property
    def text(self):
        """ASR: the transcript ("" until the job is done, and for TTS)."""
        return self._string("vox_get_text")

    @property
    def language(self):
        """ASR: the detected (or forced) language, e.g. "English"; "" when none was detected."""
        return self._string("vox_get_language")

    @property
    def error_message(self):
        """A failed job's error message ("" otherwise)."""
        return self._string("vox_job_error")

    def timings(self):
        """Per-stage durations so far, in ms."""
        timings = _abi.sized(_abi.VoxTimings)
        with self.engine._handle.use() as ptr:
            check(lib().vox_get_timings(ptr, self.id, ctypes.byref(timings)))
        return Timings.from_c(timings)
