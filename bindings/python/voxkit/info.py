"""Plain-Python snapshots of the library's output structs (copied out, so they outlive the call)."""

import dataclasses
import enum

from . import _abi


class JobState(enum.IntEnum):
    QUEUED = _abi.VOX_JOB_QUEUED
    RUNNING = _abi.VOX_JOB_RUNNING
    DONE = _abi.VOX_JOB_DONE
    FAILED = _abi.VOX_JOB_FAILED
    CANCELLED = _abi.VOX_JOB_CANCELLED


class Kind(enum.IntEnum):
    TTS = _abi.VOX_KIND_TTS
    ASR = _abi.VOX_KIND_ASR


def _enum(enum_type, value):
    """The enum member, or the plain int for a value a newer library added."""
    try:
        return enum_type(value)
    except ValueError:
        return int(value)


def _copy_fields(cls, struct, **converted):
    """Builds dataclass `cls` from the same-named fields of a ctypes struct."""
    values = {f.name: getattr(struct, f.name) for f in dataclasses.fields(cls)
              if f.name not in converted}
    return cls(**values, **converted)


@dataclasses.dataclass(frozen=True)
class JobInfo:
    """vox_poll / vox_wait: a job's state at one moment."""
    state: JobState
    kind: Kind
    error: int
    flags: int
    sample_rate: int
    samples_ready: int
    samples_total: int
    progress: float
    tokens: int
    max_new_tokens: int

    @property
    def ended(self):
        """Done, failed or cancelled: nothing more will be produced."""
        return self.state >= JobState.DONE

    @property
    def truncated(self):
        return bool(self.flags & _abi.VOX_FLAG_TRUNCATED)

    @property
    def streaming(self):
        return bool(self.flags & _abi.VOX_FLAG_STREAMING)

    @classmethod
    def from_c(cls, s):
        return _copy_fields(cls, s, state=_enum(JobState, s.state),
                            kind=_enum(Kind, s.kind))


@dataclasses.dataclass(frozen=True)
class Timings:
    """vox_get_timings: per-stage milliseconds of one job."""
    batch_size: int
    queue_ms: float
    model_load_ms: float
    tts_ms: float
    codec_ms: float
    denoise_ms: float
    upsample_ms: float
    asr_frontend_ms: float
    asr_encode_ms: float
    asr_decode_ms: float
    total_ms: float
    tokens: int

    @classmethod
    def from_c(cls, s):
        return _copy_fields(cls, s)


def _names(csv):
    text = (csv or b"").decode("utf-8")
    return tuple(name for name in text.split(",") if name)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """vox_engine_model_info: what a configured model offers."""
    sample_rate: int
    speakers: tuple  # the first is the default
    languages: tuple  # "auto" first
    clones_voices: bool

    @classmethod
    def from_c(cls, s):
        return cls(s.sample_rate, _names(s.speakers), _names(s.languages), bool(s.clones_voices))


@dataclasses.dataclass(frozen=True)
class EngineStats:
    """vox_engine_stats: engine-wide counters."""
    resident: int  # VOX_MODEL_* bits
    jobs_done: int
    jobs_failed: int
    jobs_cancelled: int
    batches: int
    model_loads: int
    model_load_ms: float
    model_swaps: int
    model_swap_ms: float
    queue_depth: int
    jobs_held: int
    memory_in_use: int
    memory_budget: int
    audio_bytes: int
    device: int
    device_index: int
    device_memory: int
    driver_version: int
    device_name: str

    @classmethod
    def from_c(cls, s):
        return _copy_fields(cls, s, device_name=s.device_name.decode("utf-8", "replace"))
