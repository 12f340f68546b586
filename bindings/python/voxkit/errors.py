"""VoxError: a failed vox_* call, with its status code, the code's name and the message."""

import ctypes

from . import _abi
from ._lib import lib


class VoxError(Exception):
    """A vox_* call failed.

    code: the VoxStatus (compare with voxkit.VOX_ERR_*); name: its name in the header
    ("VOX_ERR_UNKNOWN_JOB"); message: what vox_last_error said (or the code's description).
    """

    def __init__(self, code, message=None):
        self.code = int(code)
        self.name = _abi.STATUS_NAMES.get(self.code, f"VOX_ERR_{self.code}")
        self.message = message or status_string(self.code)
        super().__init__(f"{self.name} ({self.code}): {self.message}")


def status_string(code):
    """The library's short English description of a status code."""
    return lib().vox_status_string(code).decode("utf-8", "replace")


def last_error():
    """The calling thread's last failure message (must run on the thread that failed)."""
    native = lib()
    needed = native.vox_last_error(None, 0)
    buf = ctypes.create_string_buffer(needed)
    native.vox_last_error(buf, needed)
    return buf.value.decode("utf-8", "replace")


def check(status):
    """Raises VoxError for a failed status, with the message of the same thread's failure."""
    if status != _abi.VOX_OK:
        raise VoxError(status, last_error())
