"""Engine: one vox_engine, its configuration, and the submits that make Jobs."""

import atexit
import ctypes
import weakref

from . import _abi
from ._handle import Closing, EngineHandle
from ._lib import lib
from ._pcm import float_ptr, interleaved
from ._structs import init_struct, set_fields, utf8
from .errors import check
from .info import EngineStats, ModelInfo
from .job import Job

_DEVICES = {"auto": _abi.VOX_DEVICE_AUTO, "cpu": _abi.VOX_DEVICE_CPU, "cuda": _abi.VOX_DEVICE_CUDA}
_QUANT = {"none": _abi.VOX_QUANT_NONE, "int8": _abi.VOX_QUANT_INT8, "mixed": _abi.VOX_QUANT_MIXED}
_MODELS = {"tts": _abi.VOX_MODEL_TTS, "asr": _abi.VOX_MODEL_ASR}
_KINDS = {"tts": _abi.VOX_KIND_TTS, "asr": _abi.VOX_KIND_ASR}

# Engines still open at interpreter exit are closed while Python can still run a log callback
# (the worker thread calls it; after finalization that would kill the thread mid-call).
_open_engines = weakref.WeakSet()


@atexit.register
def _close_all():
    for engine in list(_open_engines):
        engine.close()


def _lookup(table, what, value):
    try:
        return table[value.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"{what} must be one of {', '.join(table)}, got {value!r}") from None


def _denoise(value):
    """denoise=None/False: off; True: the default strength; a number: that strength."""
    if value is None or value is False:
        return None, None
    return 1, (None if value is True else float(value))


class Engine(Closing):
    """A voxkit engine (vox_engine_create .. vox_engine_destroy). Thread-safe, like the library.

    Use it as a context manager, or call close(); an engine never closed is destroyed when it
    is garbage-collected or at interpreter exit. Arguments left None take the library's defaults.
    log(level, message), if given, receives the library's log lines (VOX_LOG_* levels, from
    log_level up) on the engine's worker thread: keep it quick; an exception in it is printed
    and dropped by ctypes, never raised into the library.
    """

    def __init__(self, tts_model=None, asr_model=None, *, device=None, device_index=None,
                 cpu_threads=None, max_batch=None, memory_budget=None, max_queued_jobs=None,
                 default_max_new_tokens=None, hard_max_new_tokens=None, max_wait_ms=None,
                 preload=(), quantization=None, log=None, log_level=None):
        self._handle = None
        config = init_struct(_abi.VoxEngineConfig, "vox_engine_config_init")
        if device is not None:  # "cpu", "cuda", "cuda:1" or "auto" (the library's default)
            device, _, index = str(device).partition(":")
            device = _lookup(_DEVICES, "device", device)
            device_index = int(index) if index else device_index
        if quantization is not None:
            quantization = _lookup(_QUANT, "quantization", quantization)
        set_fields(config, device=device, device_index=device_index,
                   tts_model_dir=utf8("tts_model", tts_model),
                   asr_model_dir=utf8("asr_model", asr_model),
                   cpu_threads=cpu_threads, max_batch=max_batch, memory_budget=memory_budget,
                   max_queued_jobs=max_queued_jobs,
                   default_max_new_tokens=default_max_new_tokens,
                   hard_max_new_tokens=hard_max_new_tokens, max_wait_ms=max_wait_ms,
                   log_level=log_level, quantization=quantization)
        if isinstance(preload, str):
            preload = (preload,)
        for model in preload:
            config.preload |= _lookup(_MODELS, "preload", model)
        # The engine calls back until it is destroyed: keep the C thunk alive as long.
        self._log_thunk = None
        if log is not None:
            self._log_thunk = _abi.VoxLogCallback(
                lambda level, message, _user: log(level, message.decode("utf-8", "replace")))
            config.log_callback = self._log_thunk
        ptr = ctypes.c_void_p()
        check(lib().vox_engine_create(ctypes.byref(config), ctypes.byref(ptr)))
        self._handle = EngineHandle(ptr)
        _open_engines.add(self)

    # -- lifetime ---------------------------------------------------------------------------
    def close(self):
        """Destroys the engine (its jobs too); later calls on it or its jobs raise VoxError."""
        if self._handle is not None and self._handle.close():
            _open_engines.discard(self)

    _finish = close

    @property
    def closed(self):
        return self._handle is None or self._handle.closed

    # -- queries ----------------------------------------------------------------------------
    def model_info(self, kind):
        """What the configured "tts" or "asr" model offers (rate, speakers, languages)."""
        info = _abi.sized(_abi.VoxModelInfo)
        with self._handle.use() as ptr:
            check(lib().vox_engine_model_info(ptr, _lookup(_KINDS, "kind", kind),
                                              ctypes.byref(info)))
            # The strings belong to the engine: copy them while it surely lives.
            return ModelInfo.from_c(info)

    def stats(self):
        stats = _abi.sized(_abi.VoxEngineStats)
        with self._handle.use() as ptr:
            check(lib().vox_engine_stats(ptr, ctypes.byref(stats)))
        return EngineStats.from_c(stats)

    # -- submits ----------------------------------------------------------------------------
    def tts(self, text, *, speaker=None, language=None, instruct=None, stream=False,
            greedy=False, seed=None, max_new_tokens=None, temperature=None, top_k=None,
            top_p=None, repetition_penalty=None, sample_rate=None, denoise=None,
            text_streaming=False, priority=None):
        """Submits text-to-speech; returns at once with a Job.

        seed: an int for reproducible sampling (None: a fresh seed per job). greedy=True decodes
        by argmax (deterministic without a seed). stream=True makes audio readable while the
        job runs (job.stream()). denoise: True or a strength in [0, 1].
        """
        req = init_struct(_abi.VoxTtsRequest, "vox_tts_request_init")
        on, strength = _denoise(denoise)
        set_fields(req, text=utf8("text", text), speaker=utf8("speaker", speaker),
                   language=utf8("language", language), instruct=utf8("instruct", instruct),
                   stream=int(bool(stream)), greedy=int(bool(greedy)),
                   text_streaming=int(bool(text_streaming)),
                   use_seed=None if seed is None else 1, seed=seed,
                   max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                   top_p=top_p, repetition_penalty=repetition_penalty, sample_rate=sample_rate,
                   denoise=on, denoise_strength=strength, priority=priority)
        job_id = _abi.VoxJobId()
        with self._handle.use() as ptr:
            check(lib().vox_tts_submit(ptr, ctypes.byref(req), ctypes.byref(job_id)))
        return Job(self, job_id.value, _abi.VOX_KIND_TTS)

    def asr(self, audio, sample_rate, *, language=None, context=None, max_new_tokens=None,
            denoise=None, priority=None):
        """Submits speech recognition of float PCM, shape (frames,) or (frames, channels)."""
        pcm, frames, channels = interleaved(audio)
        req = init_struct(_abi.VoxAsrRequest, "vox_asr_request_init")
        on, strength = _denoise(denoise)
        set_fields(req, pcm=float_ptr(pcm), frames=frames, channels=channels,
                   sample_rate=sample_rate, language=utf8("language", language),
                   context=utf8("context", context), max_new_tokens=max_new_tokens,
                   denoise=on, denoise_strength=strength, priority=priority)
        job_id = _abi.VoxJobId()
        with self._handle.use() as ptr:
            # `pcm` stays referenced until here: the library copies it during the submit.
            check(lib().vox_asr_submit(ptr, ctypes.byref(req), ctypes.byref(job_id)))
        return Job(self, job_id.value, _abi.VOX_KIND_ASR)
