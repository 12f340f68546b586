"""The engine pointer, guarded so that vox_engine_destroy is the last call on it.

The header requires that no other thread is inside a vox_* call on an engine while it is
destroyed, and a destroyed pointer must never be passed again (a later engine may get the same
address, and its jobs would answer). Python code can hold a Job on another thread while the
engine closes, so every call registers here and close() waits for the calls in flight; waits are
cut into short slices (see job.py), so it never waits long.
"""

import contextlib
import threading

from . import _abi
from ._lib import lib
from .errors import VoxError


class Closing:
    """`with` blocks and garbage collection end the object as `_finish` says (close or release)."""

    def _finish(self):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._finish()

    def __del__(self):
        try:
            self._finish()
        except Exception:  # noqa: BLE001 - nothing may escape a finalizer
            pass


class EngineHandle:
    def __init__(self, ptr):
        self._ptr = ptr
        self._cond = threading.Condition()
        self._calls = 0
        self._closed = False

    @property
    def closed(self):
        return self._closed

    @contextlib.contextmanager
    def use(self):
        """Yields the engine pointer for one vox_* call; VoxError once the engine is closed."""
        with self._cond:
            if self._closed:
                # The library answers a destroyed engine with the same code.
                raise VoxError(_abi.VOX_ERR_INVALID_ARGUMENT, "the engine was closed")
            self._calls += 1
        try:
            yield self._ptr
        finally:
            with self._cond:
                self._calls -= 1
                if self._calls == 0:
                    self._cond.notify_all()

    def close(self):
        """Destroys the engine once, after the calls in flight return. False if already closed."""
        with self._cond:
            if self._closed:
                return False
            self._closed = True
            while self._calls:
                self._cond.wait()
        lib().vox_engine_destroy(self._ptr)
        self._ptr = None
        return True
