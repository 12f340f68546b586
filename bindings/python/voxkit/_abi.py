"""The C ABI of include/voxkit.h as ctypes sees it: constants and struct layouts.

Kept apart from the loader so the layout test can read the structs without a library.
Field order, names and types follow the header exactly; tests/test_layout.py compares
every size and offset with what a C compiler makes of the header.
"""

import ctypes
from ctypes import c_char, c_char_p, c_double, c_float, c_int32, c_uint32, c_uint64, c_void_p

# The ABI this binding was written against (VOX_ABI_VERSION of the header); 6 added the ring.
ABI_VERSION = 6

VOX_OK = 0
VOX_ERR_NULL_POINTER = 1
VOX_ERR_INVALID_ARGUMENT = 2
VOX_ERR_INVALID_UTF8 = 3
VOX_ERR_STRUCT_SIZE = 4
VOX_ERR_UNKNOWN_JOB = 5
VOX_ERR_QUEUE_FULL = 6
VOX_ERR_MODEL_NOT_LOADED = 7
VOX_ERR_MODEL_LOAD = 8
VOX_ERR_NO_DEVICE = 9
VOX_ERR_OUT_OF_MEMORY = 10
VOX_ERR_BUFFER_TOO_SMALL = 11
VOX_ERR_TIMEOUT = 12
VOX_ERR_NOT_READY = 13
VOX_ERR_IO = 14
VOX_ERR_UNSUPPORTED = 15
VOX_ERR_SHUTTING_DOWN = 16
VOX_ERR_INFERENCE = 17
VOX_ERR_INTERNAL = 18

# Code -> its name in the header, for VoxError.name.
STATUS_NAMES = {code: name for name, code in globals().items() if name.startswith("VOX_ERR_")}
STATUS_NAMES[VOX_OK] = "VOX_OK"

VOX_DEVICE_AUTO, VOX_DEVICE_CPU, VOX_DEVICE_CUDA = 0, 1, 2
VOX_QUANT_NONE, VOX_QUANT_INT8, VOX_QUANT_MIXED = 0, 1, 2
VOX_LOG_OFF, VOX_LOG_ERROR, VOX_LOG_WARN, VOX_LOG_INFO, VOX_LOG_DEBUG, VOX_LOG_TRACE = range(6)
VOX_JOB_QUEUED, VOX_JOB_RUNNING, VOX_JOB_DONE, VOX_JOB_FAILED, VOX_JOB_CANCELLED = range(5)
VOX_KIND_TTS, VOX_KIND_ASR = 1, 2
VOX_FLAG_TRUNCATED, VOX_FLAG_STREAMING = 1, 2
VOX_MODEL_TTS, VOX_MODEL_ASR = 1, 2
VOX_WAIT_INFINITE = 0xFFFFFFFF
VOX_RING_ENDED = 1

VoxStatus = c_int32
VoxJobId = c_uint64
VoxLogCallback = ctypes.CFUNCTYPE(None, c_int32, c_char_p, c_void_p)


class VoxEngineConfig(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("device", c_int32),
        ("tts_model_dir", c_char_p),
        ("asr_model_dir", c_char_p),
        ("device_index", c_int32),
        ("max_batch", c_uint32),
        ("memory_budget", c_uint64),
        ("max_queued_jobs", c_uint32),
        ("default_max_new_tokens", c_uint32),
        ("hard_max_new_tokens", c_uint32),
        ("max_wait_ms", c_uint32),
        ("cpu_threads", c_uint32),
        ("log_level", c_int32),
        ("log_callback", VoxLogCallback),
        ("log_user_data", c_void_p),
        ("preload", c_uint32),
        ("reserved", c_uint32),
        ("quantization", c_uint32),
    ]


class VoxModelInfo(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("sample_rate", c_uint32),
        ("speakers", c_char_p),
        ("languages", c_char_p),
        ("clones_voices", c_uint32),
    ]


class VoxEngineStats(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("resident", c_uint32),
        ("jobs_done", c_uint64),
        ("jobs_failed", c_uint64),
        ("jobs_cancelled", c_uint64),
        ("batches", c_uint64),
        ("model_loads", c_uint64),
        ("model_load_ms", c_double),
        ("model_swaps", c_uint64),
        ("model_swap_ms", c_double),
        ("queue_depth", c_uint64),
        ("jobs_held", c_uint64),
        ("memory_in_use", c_uint64),
        ("memory_budget", c_uint64),
        ("audio_bytes", c_uint64),
        ("device", c_int32),
        ("device_index", c_uint32),
        ("device_memory", c_uint64),
        ("driver_version", c_int32),
        ("device_name", c_char * 60),
    ]


class VoxTtsRequest(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("priority", c_int32),
        ("text", c_char_p),
        ("language", c_char_p),
        ("speaker", c_char_p),
        ("instruct", c_char_p),
        ("max_new_tokens", c_uint32),
        ("temperature", c_float),
        ("top_k", c_int32),
        ("top_p", c_float),
        ("repetition_penalty", c_float),
        ("greedy", c_uint32),
        ("seed", c_uint64),
        ("use_seed", c_uint32),
        ("sample_rate", c_uint32),
        ("denoise", c_uint32),
        ("denoise_strength", c_float),
        ("stream", c_uint32),
        ("text_streaming", c_uint32),
        # const struct VoxVoice*: cloned voices are not wrapped; always NULL here.
        ("voice", c_void_p),
    ]


class VoxAsrRequest(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("priority", c_int32),
        ("pcm", ctypes.POINTER(c_float)),
        ("frames", c_uint64),
        ("sample_rate", c_uint32),
        ("channels", c_uint32),
        ("language", c_char_p),
        ("context", c_char_p),
        ("max_new_tokens", c_uint32),
        ("denoise", c_uint32),
        ("denoise_strength", c_float),
    ]


class VoxJobInfo(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("state", c_int32),
        ("kind", c_int32),
        ("error", VoxStatus),
        ("flags", c_uint32),
        ("sample_rate", c_uint32),
        ("samples_ready", c_uint64),
        ("samples_total", c_uint64),
        ("progress", c_float),
        ("tokens", c_uint32),
        ("max_new_tokens", c_uint32),
    ]


class VoxTimings(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("batch_size", c_uint32),
        ("queue_ms", c_double),
        ("model_load_ms", c_double),
        ("tts_ms", c_double),
        ("codec_ms", c_double),
        ("denoise_ms", c_double),
        ("upsample_ms", c_double),
        ("asr_frontend_ms", c_double),
        ("asr_encode_ms", c_double),
        ("asr_decode_ms", c_double),
        ("total_ms", c_double),
        ("tokens", c_uint32),
    ]


# Every struct mirrored here, by its C name (the layout test walks this).
STRUCTS = (VoxEngineConfig, VoxModelInfo, VoxEngineStats, VoxTtsRequest, VoxAsrRequest,
           VoxJobInfo, VoxTimings)


def sized(struct_type):
    """A zeroed output struct with struct_size set to this binding's size of it."""
    value = struct_type()
    value.struct_size = ctypes.sizeof(struct_type)
    return value

# `from voxkit._abi import *` (the package does it) gives the header's constants, nothing else.
__all__ = sorted(name for name in list(globals()) if name.startswith("VOX_"))
