"""Finds and loads the voxkit shared library once, checks its ABI and declares every function.

Every function the binding calls is declared here with argtypes and restype: ctypes would
otherwise pass Python ints as C int and read every result as C int, truncating pointers and
64-bit job ids without a word.
"""

import ctypes
import os
import sys
import threading
from ctypes import POINTER, c_char_p, c_float, c_int32, c_size_t, c_uint32, c_void_p

from . import _abi
from ._abi import VoxJobId, VoxStatus

_ENGINE = c_void_p  # struct VoxEngine* (opaque)

# name: (restype, argtypes). The *_init functions take void*: they fill a scratch buffer
# (see _structs.init_struct).
_FUNCTIONS = {
    "vox_version": (c_char_p, []),
    "vox_abi_version": (c_uint32, []),
    "vox_status_string": (c_char_p, [VoxStatus]),
    "vox_last_error": (c_size_t, [c_char_p, c_size_t]),
    "vox_engine_config_init": (VoxStatus, [c_void_p]),
    "vox_engine_create": (VoxStatus, [POINTER(_abi.VoxEngineConfig), POINTER(_ENGINE)]),
    "vox_engine_destroy": (None, [_ENGINE]),
    "vox_engine_model_info": (VoxStatus, [_ENGINE, c_int32, POINTER(_abi.VoxModelInfo)]),
    "vox_engine_stats": (VoxStatus, [_ENGINE, POINTER(_abi.VoxEngineStats)]),
    "vox_tts_request_init": (VoxStatus, [c_void_p]),
    "vox_asr_request_init": (VoxStatus, [c_void_p]),
    "vox_tts_submit": (VoxStatus, [_ENGINE, POINTER(_abi.VoxTtsRequest), POINTER(VoxJobId)]),
    "vox_asr_submit": (VoxStatus, [_ENGINE, POINTER(_abi.VoxAsrRequest), POINTER(VoxJobId)]),
    "vox_poll": (VoxStatus, [_ENGINE, VoxJobId, POINTER(_abi.VoxJobInfo)]),
    "vox_wait": (VoxStatus, [_ENGINE, VoxJobId, c_uint32, POINTER(_abi.VoxJobInfo)]),
    "vox_read_audio": (VoxStatus, [_ENGINE, VoxJobId, POINTER(c_float), c_size_t,
                                   POINTER(c_size_t)]),
    "vox_get_text": (VoxStatus, [_ENGINE, VoxJobId, c_char_p, c_size_t, POINTER(c_size_t)]),
    "vox_get_language": (VoxStatus, [_ENGINE, VoxJobId, c_char_p, c_size_t, POINTER(c_size_t)]),
    "vox_job_error": (VoxStatus, [_ENGINE, VoxJobId, c_char_p, c_size_t, POINTER(c_size_t)]),
    "vox_get_timings": (VoxStatus, [_ENGINE, VoxJobId, POINTER(_abi.VoxTimings)]),
    "vox_cancel": (VoxStatus, [_ENGINE, VoxJobId]),
    "vox_release": (VoxStatus, [_ENGINE, VoxJobId]),
    # struct VoxAudioRing* is opaque too.
    "vox_audio_ring_open": (VoxStatus, [_ENGINE, VoxJobId, c_size_t, POINTER(c_void_p)]),
    "vox_audio_ring_read": (VoxStatus, [c_void_p, POINTER(c_float), c_size_t, POINTER(c_size_t),
                                        POINTER(c_uint32)]),
    "vox_audio_ring_close": (VoxStatus, [c_void_p]),
}

_lock = threading.Lock()
_lib = None


def _candidates():
    """Where to look, in order: $VOXKIT_LIBRARY, next to the package, the system's search."""
    override = os.environ.get("VOXKIT_LIBRARY")
    if override:
        # An explicit path is final: falling back elsewhere would hide a typo.
        return [override], True
    if sys.platform == "win32":
        name = "voxkit.dll"
    elif sys.platform == "darwin":
        name = "libvoxkit.dylib"
    else:
        name = "libvoxkit.so"
    here = os.path.dirname(os.path.abspath(__file__))
    bundled = [os.path.join(here, name), os.path.join(os.path.dirname(here), name)]
    # A bare name makes dlopen/LoadLibrary use the platform's search path.
    return [p for p in bundled if os.path.isfile(p)] + [name], False


def _open():
    paths, explicit = _candidates()
    errors = []
    for path in paths:
        if explicit and not os.path.isfile(path):
            raise OSError(f"VOXKIT_LIBRARY={path!r}: no such file")
        try:
            return ctypes.CDLL(path), path
        except OSError as exc:
            errors.append(f"{path}: {exc}")
    raise OSError("voxkit: cannot load the voxkit library (set VOXKIT_LIBRARY to its path); tried "
                  + "; ".join(errors))


def _declare(lib, functions):
    for name, (restype, argtypes) in functions.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def lib():
    """The loaded library (loaded, checked and declared on first use)."""
    global _lib
    with _lock:
        if _lib is None:
            handle, path = _open()
            handle.vox_abi_version.restype = c_uint32
            handle.vox_abi_version.argtypes = []
            found = handle.vox_abi_version()
            if found < _abi.ABI_VERSION:
                raise OSError(f"voxkit: {path} implements C ABI {found}; this binding needs "
                              f"{_abi.ABI_VERSION} or newer (a library built from the same "
                              "voxkit checkout as the binding)")
            _declare(handle, _FUNCTIONS)
            _lib = handle
        return _lib


def abi_version():
    """The C ABI version the loaded library implements."""
    return lib().vox_abi_version()


def library_version():
    """The library's own version string, e.g. "0.1.0"."""
    return lib().vox_version().decode("utf-8")
