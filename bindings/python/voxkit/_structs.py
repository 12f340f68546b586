"""Input structs filled with the library's defaults, and the strings they point to."""

import ctypes
import operator
import os

from . import _abi
from ._lib import lib
from .errors import VoxError, check

# Room for the library's own struct in *_init (see init_struct).
_SCRATCH_WORDS = 512  # 4 KiB, 8-byte aligned


def init_struct(struct_type, init_name):
    """A `struct_type` holding the library's defaults, struct_size = this binding's size.

    The *_init functions write the library's whole struct, which is larger than ours when the
    library is newer (structs only grow at the end). So the library writes into a scratch
    buffer far larger than any of its structs, and we keep our prefix of it: the defaults stay
    the library's, and one code path serves equal and newer libraries alike.
    """
    scratch = (ctypes.c_uint64 * _SCRATCH_WORDS)()
    check(getattr(lib(), init_name)(ctypes.byref(scratch)))
    theirs = ctypes.c_uint32.from_buffer(scratch).value
    ours = ctypes.sizeof(struct_type)
    if not ours <= theirs <= ctypes.sizeof(scratch):
        raise VoxError(_abi.VOX_ERR_STRUCT_SIZE,
                       f"{init_name} wrote a {theirs}-byte struct; this binding's is {ours} "
                       f"bytes and it allows at most {ctypes.sizeof(scratch)}")
    value = struct_type.from_buffer_copy(bytes(scratch)[:ours])
    value.struct_size = ours
    return value


def utf8(name, value):
    """A str (or path) argument as NUL-terminated UTF-8 for a `const char*`; None stays NULL."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    value = os.fspath(value)
    data = value if isinstance(value, bytes) else value.encode("utf-8")
    if b"\0" in data:
        # C would see the string end there and silently drop the rest.
        raise ValueError(f"{name} contains a NUL character")
    return data


_INT_BOUNDS = {
    ctypes.c_int32: (-(1 << 31), (1 << 31) - 1),
    ctypes.c_uint32: (0, (1 << 32) - 1),
    ctypes.c_uint64: (0, (1 << 64) - 1),
}


def set_fields(struct, **fields):
    """Sets the fields given a value (None keeps the library's default).

    ctypes wraps an out-of-range int silently (-1 into a uint32_t field becomes 4294967295),
    so integer fields are range-checked here.
    """
    types = dict(struct._fields_)
    for name, value in fields.items():
        if value is None:
            continue
        bounds = _INT_BOUNDS.get(types[name])
        if bounds is not None:
            value = operator.index(value)
            if not bounds[0] <= value <= bounds[1]:
                raise ValueError(f"{name}={value} is out of range {bounds[0]}..{bounds[1]}")
        setattr(struct, name, value)
