// voxkit C ABI as P/Invoke declarations: a one-to-one mirror of include/voxkit.h.
//
// Kept IL2CPP- and old-Mono-safe on purpose: every struct is blittable (no bool, string or
// managed array fields), strings cross as UTF-8 bytes the caller pins, pointers are IntPtr or
// raw pointers, and the only callback (the optional log callback) is a static method marked
// [MonoPInvokeCallback]. The friendly layer (VoxKit.cs) is built on this file; use this one
// directly only when you need something the friendly layer does not expose.
using System;
using System.Runtime.InteropServices;

#if !UNITY_5_3_OR_NEWER
namespace AOT
{
    // Unity ships this attribute in UnityEngine; elsewhere we declare it so the same source
    // compiles. IL2CPP recognises it by name, so a copy with the same name works everywhere.
    [AttributeUsage(AttributeTargets.Method)]
    public sealed class MonoPInvokeCallbackAttribute : Attribute
    {
        public MonoPInvokeCallbackAttribute(Type delegateType) { DelegateType = delegateType; }
        public Type DelegateType { get; private set; }
    }
}
#endif

namespace VoxKit
{
    public static unsafe class Native
    {
        // Resolved by the runtime to libvoxkit.so / voxkit.dll / libvoxkit.dylib.
        public const string Library = "voxkit";

        // The header this file mirrors (the library's own is vox_abi_version()).
        public const uint VOX_ABI_VERSION = 6;

        public const int VOX_DEVICE_AUTO = 0, VOX_DEVICE_CPU = 1, VOX_DEVICE_CUDA = 2;
        public const uint VOX_QUANT_NONE = 0, VOX_QUANT_INT8 = 1, VOX_QUANT_MIXED = 2;
        public const int VOX_LOG_OFF = 0, VOX_LOG_ERROR = 1, VOX_LOG_WARN = 2, VOX_LOG_INFO = 3,
            VOX_LOG_DEBUG = 4, VOX_LOG_TRACE = 5;
        public const int VOX_JOB_QUEUED = 0, VOX_JOB_RUNNING = 1, VOX_JOB_DONE = 2,
            VOX_JOB_FAILED = 3, VOX_JOB_CANCELLED = 4;
        public const int VOX_KIND_TTS = 1, VOX_KIND_ASR = 2;
        public const uint VOX_FLAG_TRUNCATED = 1, VOX_FLAG_STREAMING = 2;
        public const uint VOX_MODEL_TTS = 1, VOX_MODEL_ASR = 2;
        public const uint VOX_WAIT_INFINITE = 4294967295;
        public const uint VOX_RING_ENDED = 1;

        public const int VOX_OK = 0, VOX_ERR_NULL_POINTER = 1, VOX_ERR_INVALID_ARGUMENT = 2,
            VOX_ERR_INVALID_UTF8 = 3, VOX_ERR_STRUCT_SIZE = 4, VOX_ERR_UNKNOWN_JOB = 5,
            VOX_ERR_QUEUE_FULL = 6, VOX_ERR_MODEL_NOT_LOADED = 7, VOX_ERR_MODEL_LOAD = 8,
            VOX_ERR_NO_DEVICE = 9, VOX_ERR_OUT_OF_MEMORY = 10, VOX_ERR_BUFFER_TOO_SMALL = 11,
            VOX_ERR_TIMEOUT = 12, VOX_ERR_NOT_READY = 13, VOX_ERR_IO = 14,
            VOX_ERR_UNSUPPORTED = 15, VOX_ERR_SHUTTING_DOWN = 16, VOX_ERR_INFERENCE = 17,
            VOX_ERR_INTERNAL = 18;

        // Field names are the header's, so tests can check every offset against a C compiler.

        [StructLayout(LayoutKind.Sequential)]
        public struct VoxEngineConfig
        {
            public uint struct_size;
            public int device;
            public IntPtr tts_model_dir;        // const char*, UTF-8
            public IntPtr asr_model_dir;        // const char*, UTF-8
            public int device_index;
            public uint max_batch;
            public ulong memory_budget;
            public uint max_queued_jobs;
            public uint default_max_new_tokens;
            public uint hard_max_new_tokens;
            public uint max_wait_ms;
            public uint cpu_threads;
            public int log_level;
            public IntPtr log_callback;         // VoxLogCallback, from GetFunctionPointerForDelegate
            public IntPtr log_user_data;
            public uint preload;
            public uint reserved;
            public uint quantization;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct VoxModelInfo
        {
            public uint struct_size;
            public uint sample_rate;
            public IntPtr speakers;             // owned by the engine
            public IntPtr languages;            // owned by the engine
            public uint clones_voices;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct VoxEngineStats
        {
            public uint struct_size;
            public uint resident;
            public ulong jobs_done;
            public ulong jobs_failed;
            public ulong jobs_cancelled;
            public ulong batches;
            public ulong model_loads;
            public double model_load_ms;
            public ulong model_swaps;
            public double model_swap_ms;
            public ulong queue_depth;
            public ulong jobs_held;
            public ulong memory_in_use;
            public ulong memory_budget;
            public ulong audio_bytes;
            public int device;
            public uint device_index;
            public ulong device_memory;
            public int driver_version;
            public fixed byte device_name[60];  // NUL-terminated UTF-8; a fixed buffer stays blittable
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct VoxTtsRequest
        {
            public uint struct_size;
            public int priority;
            public IntPtr text;
            public IntPtr language;
            public IntPtr speaker;
            public IntPtr instruct;
            public uint max_new_tokens;
            public float temperature;
            public int top_k;
            public float top_p;
            public float repetition_penalty;
            public uint greedy;
            public ulong seed;
            public uint use_seed;
            public uint sample_rate;
            public uint denoise;
            public float denoise_strength;
            public uint stream;
            public uint text_streaming;
            public IntPtr voice;                // const VoxVoice*
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct VoxAsrRequest
        {
            public uint struct_size;
            public int priority;
            public IntPtr pcm;                  // const float*, frames * channels samples
            public ulong frames;
            public uint sample_rate;
            public uint channels;
            public IntPtr language;
            public IntPtr context;
            public uint max_new_tokens;
            public uint denoise;
            public float denoise_strength;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct VoxJobInfo
        {
            public uint struct_size;
            public int state;
            public int kind;
            public int error;
            public uint flags;
            public uint sample_rate;
            public ulong samples_ready;
            public ulong samples_total;
            public float progress;
            public uint tokens;
            public uint max_new_tokens;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct VoxTimings
        {
            public uint struct_size;
            public uint batch_size;
            public double queue_ms;
            public double model_load_ms;
            public double tts_ms;
            public double codec_ms;
            public double denoise_ms;
            public double upsample_ms;
            public double asr_frontend_ms;
            public double asr_encode_ms;
            public double asr_decode_ms;
            public double total_ms;
            public uint tokens;
        }

        [StructLayout(LayoutKind.Sequential)]
        public struct VoxVoiceRequest
        {
            public uint struct_size;
            public uint channels;
            public IntPtr pcm;
            public ulong frames;
            public uint sample_rate;
            public uint denoise;
            public float denoise_strength;
            public IntPtr transcript;
            public uint timeout_ms;
        }

        // (level, message: UTF-8 valid only during the call, user_data)
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        public delegate void VoxLogCallback(int level, IntPtr message, IntPtr userData);

        // size_t is UIntPtr throughout: C# 7 (mcs, older Unity) has no nuint.

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr vox_version();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern uint vox_abi_version();

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr vox_status_string(int status);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern UIntPtr vox_last_error(byte* buf, UIntPtr capacity);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_engine_config_init(VoxEngineConfig* config);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_engine_create(ref VoxEngineConfig config, out IntPtr engine);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern void vox_engine_destroy(IntPtr engine);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_engine_model_info(IntPtr engine, int kind, ref VoxModelInfo info);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_engine_stats(IntPtr engine, ref VoxEngineStats stats);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_tts_request_init(VoxTtsRequest* request);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_asr_request_init(VoxAsrRequest* request);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_tts_submit(IntPtr engine, ref VoxTtsRequest request, out ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_asr_submit(IntPtr engine, ref VoxAsrRequest request, out ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_poll(IntPtr engine, ulong job, ref VoxJobInfo info);

        // info may be NULL.
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_wait(IntPtr engine, ulong job, uint timeoutMs, VoxJobInfo* info);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_read_audio(IntPtr engine, ulong job, float* dst, UIntPtr capacity,
            out UIntPtr written);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_get_text(IntPtr engine, ulong job, byte* dst, UIntPtr capacity,
            out UIntPtr required);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_get_language(IntPtr engine, ulong job, byte* dst, UIntPtr capacity,
            out UIntPtr required);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_job_error(IntPtr engine, ulong job, byte* dst, UIntPtr capacity,
            out UIntPtr required);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_get_timings(IntPtr engine, ulong job, ref VoxTimings timings);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_cancel(IntPtr engine, ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_release(IntPtr engine, ulong job);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_voice_request_init(VoxVoiceRequest* request);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_voice_create(IntPtr engine, ref VoxVoiceRequest request, out IntPtr voice);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_voice_release(IntPtr voice);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_voice_save(IntPtr voice, byte* dst, UIntPtr capacity, out UIntPtr required);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_voice_load(byte* data, UIntPtr len, out IntPtr voice);

        // ABI 6: the wait-free audio ring. Absent from an ABI-5 library (EntryPointNotFoundException
        // on first call), so the friendly layer checks the version before calling these.

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_audio_ring_open(IntPtr engine, ulong job, UIntPtr capacity, out IntPtr ring);

        // flags may be NULL; wait-free.
        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_audio_ring_read(IntPtr ring, float* dst, UIntPtr capacity,
            out UIntPtr written, uint* flags);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl)]
        public static extern int vox_audio_ring_close(IntPtr ring);
    }
}
