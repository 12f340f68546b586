// voxkit's settings, requests and result records: managed views of the ABI structs, with the
// library's own defaults (its *_init functions) and .NET names.
using System;

namespace VoxKit
{
    public enum Device { Auto = 0, Cpu = 1, Cuda = 2 }
    public enum Quantization { None = 0, Int8 = 1, Mixed = 2 }
    public enum LogLevel { Off = 0, Error = 1, Warn = 2, Info = 3, Debug = 4, Trace = 5 }
    public enum JobState { Queued = 0, Running = 1, Done = 2, Failed = 3, Cancelled = 4 }
    public enum JobKind { Tts = 1, Asr = 2 }

    [Flags] public enum JobFlags : uint { None = 0, Truncated = 1, Streaming = 2 }
    [Flags] public enum Models : uint { None = 0, Tts = 1, Asr = 2 }

    /// <summary>The library's defaults for the input structs.</summary>
    internal static unsafe class Defaults
    {
        // A library newer than this binding writes its whole, larger struct in *_init (see the
        // header's conventions): init into a roomy zeroed scratch, keep our prefix, and give the
        // library our own size, which it accepts as an older program's.
        const int Scratch = 1024;

        static void Zero(byte* p) { for (int i = 0; i < Scratch; i++) p[i] = 0; }

        public static Native.VoxEngineConfig EngineConfig()
        {
            byte* s = stackalloc byte[Scratch];
            Zero(s);
            Library.Check(Native.vox_engine_config_init((Native.VoxEngineConfig*)s), "vox_engine_config_init");
            var v = *(Native.VoxEngineConfig*)s;
            v.struct_size = (uint)sizeof(Native.VoxEngineConfig);
            return v;
        }

        public static Native.VoxTtsRequest TtsRequest()
        {
            byte* s = stackalloc byte[Scratch];
            Zero(s);
            Library.Check(Native.vox_tts_request_init((Native.VoxTtsRequest*)s), "vox_tts_request_init");
            var v = *(Native.VoxTtsRequest*)s;
            v.struct_size = (uint)sizeof(Native.VoxTtsRequest);
            return v;
        }

        public static Native.VoxAsrRequest AsrRequest()
        {
            byte* s = stackalloc byte[Scratch];
            Zero(s);
            Library.Check(Native.vox_asr_request_init((Native.VoxAsrRequest*)s), "vox_asr_request_init");
            var v = *(Native.VoxAsrRequest*)s;
            v.struct_size = (uint)sizeof(Native.VoxAsrRequest);
            return v;
        }

        public static Native.VoxVoiceRequest VoiceRequest()
        {
            byte* s = stackalloc byte[Scratch];
            Zero(s);
            Library.Check(Native.vox_voice_request_init((Native.VoxVoiceRequest*)s), "vox_voice_request_init");
            var v = *(Native.VoxVoiceRequest*)s;
            v.struct_size = (uint)sizeof(Native.VoxVoiceRequest);
            return v;
        }
    }

    /// <summary>Engine settings (VoxEngineConfig); starts with the library's defaults.</summary>
    public sealed class EngineConfig
    {
        internal Native.VoxEngineConfig Raw;

        public EngineConfig()
        {
            Library.EnsureLoaded();
            Raw = Defaults.EngineConfig();
        }

        /// <summary>A Qwen3-TTS checkpoint folder or hub id; null: no TTS.</summary>
        public string TtsModelDir { get; set; }
        /// <summary>A Qwen3-ASR checkpoint folder or hub id; null: no ASR.</summary>
        public string AsrModelDir { get; set; }
        /// <summary>Receives the engine's log on its worker thread: return quickly.</summary>
        public Action<LogLevel, string> Log { get; set; }

        public Device Device { get { return (Device)Raw.device; } set { Raw.device = (int)value; } }
        public int DeviceIndex { get { return Raw.device_index; } set { Raw.device_index = value; } }
        public uint MaxBatch { get { return Raw.max_batch; } set { Raw.max_batch = value; } }
        public ulong MemoryBudget { get { return Raw.memory_budget; } set { Raw.memory_budget = value; } }
        public uint MaxQueuedJobs { get { return Raw.max_queued_jobs; } set { Raw.max_queued_jobs = value; } }
        public uint DefaultMaxNewTokens { get { return Raw.default_max_new_tokens; } set { Raw.default_max_new_tokens = value; } }
        public uint HardMaxNewTokens { get { return Raw.hard_max_new_tokens; } set { Raw.hard_max_new_tokens = value; } }
        public uint MaxWaitMs { get { return Raw.max_wait_ms; } set { Raw.max_wait_ms = value; } }
        public uint CpuThreads { get { return Raw.cpu_threads; } set { Raw.cpu_threads = value; } }
        public LogLevel LogLevel { get { return (LogLevel)Raw.log_level; } set { Raw.log_level = (int)value; } }
        public Models Preload { get { return (Models)Raw.preload; } set { Raw.preload = (uint)value; } }
        public Quantization Quantization { get { return (Quantization)Raw.quantization; } set { Raw.quantization = (uint)value; } }
    }

    /// <summary>A text-to-speech request (VoxTtsRequest); starts with the library's defaults.</summary>
    public sealed class TtsRequest
    {
        internal Native.VoxTtsRequest Raw;

        public TtsRequest()
        {
            Library.EnsureLoaded();
            Raw = Defaults.TtsRequest();
        }

        public string Text { get; set; }
        /// <summary>e.g. "English"; null: automatic.</summary>
        public string Language { get; set; }
        /// <summary>null: the model's default speaker.</summary>
        public string Speaker { get; set; }
        public string Instruct { get; set; }
        /// <summary>A cloned voice (Base checkpoints); may be disposed once Speak returns.</summary>
        public Voice Voice { get; set; }

        public int Priority { get { return Raw.priority; } set { Raw.priority = value; } }
        public uint MaxNewTokens { get { return Raw.max_new_tokens; } set { Raw.max_new_tokens = value; } }
        public float Temperature { get { return Raw.temperature; } set { Raw.temperature = value; } }
        public int TopK { get { return Raw.top_k; } set { Raw.top_k = value; } }
        public float TopP { get { return Raw.top_p; } set { Raw.top_p = value; } }
        public float RepetitionPenalty { get { return Raw.repetition_penalty; } set { Raw.repetition_penalty = value; } }
        public bool Greedy { get { return Raw.greedy != 0; } set { Raw.greedy = value ? 1u : 0u; } }
        /// <summary>A fixed seed (same seed and inputs, same audio); null: a fresh one per job.</summary>
        public ulong? Seed
        {
            get { return Raw.use_seed != 0 ? (ulong?)Raw.seed : null; }
            set { Raw.use_seed = value.HasValue ? 1u : 0u; Raw.seed = value.GetValueOrDefault(); }
        }
        /// <summary>Output rate in Hz (the library resamples); 0: the model's own.</summary>
        public uint SampleRate { get { return Raw.sample_rate; } set { Raw.sample_rate = value; } }
        public bool Denoise { get { return Raw.denoise != 0; } set { Raw.denoise = value ? 1u : 0u; } }
        public float DenoiseStrength { get { return Raw.denoise_strength; } set { Raw.denoise_strength = value; } }
        /// <summary>Audio readable frame by frame while the job runs.</summary>
        public bool Stream { get { return Raw.stream != 0; } set { Raw.stream = value ? 1u : 0u; } }
        public bool TextStreaming { get { return Raw.text_streaming != 0; } set { Raw.text_streaming = value ? 1u : 0u; } }
    }

    /// <summary>A speech-recognition request (VoxAsrRequest); starts with the library's defaults.</summary>
    public sealed class AsrRequest
    {
        internal Native.VoxAsrRequest Raw;

        public AsrRequest()
        {
            Library.EnsureLoaded();
            Raw = Defaults.AsrRequest();
        }

        /// <summary>Interleaved float PCM in [-1, 1]; copied at submit.</summary>
        public float[] Pcm { get; set; }
        public string Language { get; set; }
        public string Context { get; set; }

        public int Priority { get { return Raw.priority; } set { Raw.priority = value; } }
        public uint SampleRate { get { return Raw.sample_rate; } set { Raw.sample_rate = value; } }
        public uint Channels { get { return Raw.channels; } set { Raw.channels = value; } }
        public uint MaxNewTokens { get { return Raw.max_new_tokens; } set { Raw.max_new_tokens = value; } }
        public bool Denoise { get { return Raw.denoise != 0; } set { Raw.denoise = value ? 1u : 0u; } }
        public float DenoiseStrength { get { return Raw.denoise_strength; } set { Raw.denoise_strength = value; } }
    }

    /// <summary>A job's state (VoxJobInfo).</summary>
    public struct JobInfo
    {
        public readonly JobState State;
        public readonly JobKind Kind;
        public readonly Status Error;
        public readonly JobFlags Flags;
        public readonly int SampleRate;
        public readonly ulong SamplesReady;
        public readonly ulong SamplesTotal;
        public readonly float Progress;
        public readonly uint Tokens;
        public readonly uint MaxNewTokens;
        /// <summary>The struct size the library wrote back.</summary>
        public readonly uint StructSize;

        internal JobInfo(Native.VoxJobInfo i)
        {
            State = (JobState)i.state;
            Kind = (JobKind)i.kind;
            Error = (Status)i.error;
            Flags = (JobFlags)i.flags;
            SampleRate = (int)i.sample_rate;
            SamplesReady = i.samples_ready;
            SamplesTotal = i.samples_total;
            Progress = i.progress;
            Tokens = i.tokens;
            MaxNewTokens = i.max_new_tokens;
            StructSize = i.struct_size;
        }

        /// <summary>Done, failed or cancelled.</summary>
        public bool Ended { get { return State >= JobState.Done; } }
    }

    /// <summary>Per-stage durations of a job in ms (VoxTimings).</summary>
    public struct Timings
    {
        public readonly uint BatchSize;
        public readonly double QueueMs, ModelLoadMs, TtsMs, CodecMs, DenoiseMs, UpsampleMs;
        public readonly double AsrFrontendMs, AsrEncodeMs, AsrDecodeMs, TotalMs;
        public readonly uint Tokens;

        internal Timings(Native.VoxTimings t)
        {
            BatchSize = t.batch_size;
            QueueMs = t.queue_ms;
            ModelLoadMs = t.model_load_ms;
            TtsMs = t.tts_ms;
            CodecMs = t.codec_ms;
            DenoiseMs = t.denoise_ms;
            UpsampleMs = t.upsample_ms;
            AsrFrontendMs = t.asr_frontend_ms;
            AsrEncodeMs = t.asr_encode_ms;
            AsrDecodeMs = t.asr_decode_ms;
            TotalMs = t.total_ms;
            Tokens = t.tokens;
        }
    }

    /// <summary>What a configured model offers (VoxModelInfo), copied out of the engine.</summary>
    public sealed class ModelInfo
    {
        public readonly int SampleRate;
        /// <summary>TTS: the speakers a request may name, the default first.</summary>
        public readonly string[] Speakers;
        /// <summary>TTS: the languages a request may name, "auto" first.</summary>
        public readonly string[] Languages;
        public readonly bool ClonesVoices;

        internal ModelInfo(Native.VoxModelInfo i)
        {
            SampleRate = (int)i.sample_rate;
            Speakers = Split(Utf8.FromNative(i.speakers));
            Languages = Split(Utf8.FromNative(i.languages));
            ClonesVoices = i.clones_voices != 0;
        }

        static string[] Split(string s)
        {
            return string.IsNullOrEmpty(s) ? new string[0] : s.Split(',');
        }
    }

    /// <summary>Engine-wide counters (VoxEngineStats); Raw holds every field.</summary>
    public sealed unsafe class EngineStats
    {
        public readonly Native.VoxEngineStats Raw;
        public readonly string DeviceName;

        internal EngineStats(Native.VoxEngineStats s)
        {
            Raw = s;
            int n = 0;
            while (n < 60 && s.device_name[n] != 0) n++;
            var b = new byte[n];
            for (int i = 0; i < n; i++) b[i] = s.device_name[i];
            DeviceName = Utf8.Decode(b, n);
        }

        public Models Resident { get { return (Models)Raw.resident; } }
        public Device Device { get { return (Device)Raw.device; } }
        public ulong JobsDone { get { return Raw.jobs_done; } }
        public ulong JobsFailed { get { return Raw.jobs_failed; } }
        public ulong JobsCancelled { get { return Raw.jobs_cancelled; } }
        public ulong JobsHeld { get { return Raw.jobs_held; } }
        public ulong QueueDepth { get { return Raw.queue_depth; } }
        public ulong MemoryInUse { get { return Raw.memory_in_use; } }
        public ulong AudioBytes { get { return Raw.audio_bytes; } }
    }
}
