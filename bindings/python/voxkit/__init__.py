"""voxkit for Python: text-to-speech and speech recognition through the voxkit C library.

A thin ctypes layer over include/voxkit.h (no compiled extension): Engine submits jobs, Job
reads their audio/text as numpy arrays/str, failures raise VoxError.
"""

from ._abi import *  # noqa: F401,F403 - the header's VOX_* constants
from ._abi import ABI_VERSION
from ._lib import abi_version, library_version
from .engine import Engine
from .errors import VoxError, status_string
from .info import EngineStats, JobInfo, JobState, Kind, ModelInfo, Timings
from .job import Job
from .ring import AudioRing

__all__ = [
    "ABI_VERSION", "AudioRing", "Engine", "EngineStats", "Job", "JobInfo", "JobState", "Kind",
    "ModelInfo", "Timings", "VoxError", "abi_version", "library_version",
    "status_string",
]
