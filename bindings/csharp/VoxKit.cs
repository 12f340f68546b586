// voxkit's friendly C# layer: Engine and Job as IDisposable objects over SafeHandles, errors as
// VoxException, strings and audio as ordinary .NET values. Plain C# 7 with `unsafe` (compile with
// -unsafe / AllowUnsafeBlocks); no UnityEngine or Godot dependency, so one file serves Unity
// (Mono and IL2CPP), Godot C# and any .NET/Mono program.
using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using Microsoft.Win32.SafeHandles;

namespace VoxKit
{
    /// <summary>A VoxStatus code (VOX_OK or VOX_ERR_*).</summary>
    public enum Status
    {
        Ok = 0, NullPointer = 1, InvalidArgument = 2, InvalidUtf8 = 3, StructSize = 4,
        UnknownJob = 5, QueueFull = 6, ModelNotLoaded = 7, ModelLoad = 8, NoDevice = 9,
        OutOfMemory = 10, BufferTooSmall = 11, Timeout = 12, NotReady = 13, Io = 14,
        Unsupported = 15, ShuttingDown = 16, Inference = 17, Internal = 18,
    }

    /// <summary>A failed vox_* call: its status and the library's message for it.</summary>
    public sealed class VoxException : Exception
    {
        public Status Status { get; private set; }

        public VoxException(Status status, string message) : base(message) { Status = status; }

        // Must run on the thread of the failed call, before any other vox_* call: the message is
        // thread-local and replaced by the next failure.
        internal static VoxException FromLastError(int status, string call)
        {
            // The library's message already starts with the function's name.
            string detail = Library.LastError();
            string what = Library.StatusString(status);
            return new VoxException((Status)status, detail.Length > 0 ? detail + " (" + what + ")" : call + ": " + what);
        }
    }

    /// <summary>Library-wide facts, and the one-time ABI check every entry point goes through.</summary>
    public static unsafe class Library
    {
        /// <summary>Oldest ABI this binding works with (everything but AudioRing).</summary>
        public const uint MinAbiVersion = 5;
        /// <summary>The ABI that added vox_audio_ring_*.</summary>
        public const uint RingAbiVersion = 6;

        static volatile bool checkedAbi;
        static uint abi;

        /// <summary>The loaded library's vox_abi_version().</summary>
        public static uint AbiVersion { get { EnsureLoaded(); return abi; } }

        public static string Version { get { EnsureLoaded(); return Utf8.FromNative(Native.vox_version()); } }

        public static string StatusString(int status) { return Utf8.FromNative(Native.vox_status_string(status)); }

        /// <summary>Loads the library (first call) and refuses one older than this binding needs.</summary>
        public static void EnsureLoaded()
        {
            if (checkedAbi) return;
            uint v;
            try { v = Native.vox_abi_version(); }
            catch (DllNotFoundException e)
            {
                throw new DllNotFoundException("voxkit: the native library (libvoxkit.so / voxkit.dll / " +
                    "libvoxkit.dylib) was not found; put it next to the executable, in the Unity " +
                    "project's Assets/Plugins/<arch>/, or on the loader's search path", e);
            }
            if (v < MinAbiVersion)
                throw new VoxException(Status.Unsupported, "voxkit: the library implements C ABI " + v +
                    "; this binding needs " + MinAbiVersion + " or newer (update libvoxkit)");
            abi = v;
            checkedAbi = true;
        }

        internal static void Require(uint version, string feature)
        {
            EnsureLoaded();
            if (abi < version)
                throw new VoxException(Status.Unsupported, "voxkit: " + feature + " needs C ABI " + version +
                    " or newer; the loaded library implements " + abi);
        }

        internal static string LastError()
        {
            int need = (int)Native.vox_last_error(null, UIntPtr.Zero);
            if (need <= 1) return "";
            byte[] buf = new byte[need];
            fixed (byte* p = buf) Native.vox_last_error(p, (UIntPtr)buf.Length);
            return Utf8.Decode(buf, need - 1);
        }

        internal static void Check(int status, string call)
        {
            if (status != Native.VOX_OK) throw VoxException.FromLastError(status, call);
        }
    }

    /// <summary>UTF-8 both ways, without relying on LPUTF8Str (absent from older Mono/Unity).</summary>
    internal static class Utf8
    {
        static readonly UTF8Encoding Strict = new UTF8Encoding(false, true);

        /// <summary>NUL-terminated bytes, or null for a null string (the header's "default").</summary>
        public static byte[] Encode(string s)
        {
            if (s == null) return null;
            byte[] b = new byte[Strict.GetByteCount(s) + 1];
            Strict.GetBytes(s, 0, s.Length, b, 0);
            return b;
        }

        public static string Decode(byte[] b, int length) { return Strict.GetString(b, 0, length); }

        /// <summary>Copies a NUL-terminated UTF-8 string the library owns.</summary>
        public static unsafe string FromNative(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            byte* s = (byte*)p;
            int n = 0;
            while (s[n] != 0) n++;
            byte[] b = new byte[n];
            Marshal.Copy(p, b, 0, n);
            return Decode(b, n);
        }
    }

    /// <summary>Owns a VoxEngine*: destroys it when the last reference (Engine, Jobs, calls in flight) goes.</summary>
    public sealed class EngineHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        GCHandle logSink;   // the managed log delegate; freed only after destroy, when no log call can come

        internal EngineHandle(IntPtr engine, GCHandle logSink) : base(true)
        {
            SetHandle(engine);
            this.logSink = logSink;
        }

        // SafeHandle's reference count delays this until no other thread is inside a call that
        // holds a reference: exactly vox_engine_destroy's rule ("the last call on that engine").
        protected override bool ReleaseHandle()
        {
            Native.vox_engine_destroy(handle);
            if (logSink.IsAllocated) logSink.Free();
            return true;
        }
    }

    /// <summary>Holds one job of one engine; releases the job, then its reference to the engine.</summary>
    public sealed class JobHandle : SafeHandle
    {
        readonly EngineHandle engine;
        public readonly ulong Id;

        // Called while the caller holds a reference to `engine`, so the AddRef cannot fail.
        internal JobHandle(EngineHandle engine, ulong id) : base(IntPtr.Zero, true)
        {
            bool added = false;
            engine.DangerousAddRef(ref added);
            this.engine = engine;
            Id = id;
            SetHandle(engine.DangerousGetHandle());
        }

        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        // The job keeps the engine alive, so vox_release always precedes vox_engine_destroy (a
        // release after destroy could hit a new engine created at the same address).
        protected override bool ReleaseHandle()
        {
            Native.vox_release(handle, Id);
            engine.DangerousRelease();
            return true;
        }
    }

    /// <summary>A voxkit engine: its models, worker thread and jobs. Thread-safe.</summary>
    public sealed unsafe class Engine : IDisposable
    {
        readonly EngineHandle handle;
        readonly HashSet<JobHandle> live = new HashSet<JobHandle>();

        // One delegate for the whole process, so the function pointer the library holds never dies.
        static readonly Native.VoxLogCallback LogThunk = OnLog;
        static readonly IntPtr LogThunkPtr = Marshal.GetFunctionPointerForDelegate(LogThunk);

        public Engine(EngineConfig config)
        {
            Library.EnsureLoaded();
            if (config == null) throw new ArgumentNullException("config");
            Native.VoxEngineConfig raw = config.Raw;
            GCHandle sink = default(GCHandle);
            if (config.Log != null)
            {
                sink = GCHandle.Alloc(config.Log);
                raw.log_callback = LogThunkPtr;
                raw.log_user_data = GCHandle.ToIntPtr(sink);
            }
            byte[] tts = Utf8.Encode(config.TtsModelDir), asr = Utf8.Encode(config.AsrModelDir);
            IntPtr engine;
            int st;
            fixed (byte* t = tts)
            fixed (byte* a = asr)
            {
                raw.tts_model_dir = (IntPtr)t;
                raw.asr_model_dir = (IntPtr)a;
                st = Native.vox_engine_create(ref raw, out engine);
            }
            if (st != Native.VOX_OK)
            {
                VoxException e = VoxException.FromLastError(st, "vox_engine_create");
                if (sink.IsAllocated) sink.Free();
                throw e;
            }
            handle = new EngineHandle(engine, sink);
        }

        /// <summary>The native handle, for calls through <see cref="Native"/>.</summary>
        public EngineHandle Handle { get { return handle; } }

        [AOT.MonoPInvokeCallback(typeof(Native.VoxLogCallback))]
        static void OnLog(int level, IntPtr message, IntPtr userData)
        {
            // An exception must never unwind into native code: a failing sink loses one line.
            try
            {
                var sink = GCHandle.FromIntPtr(userData).Target as Action<LogLevel, string>;
                if (sink != null) sink((LogLevel)level, Utf8.FromNative(message));
            }
            catch (Exception) { }
        }

        // Every call holds a reference for its duration: a concurrent Dispose then waits for it.
        internal IntPtr Enter()
        {
            bool added = false;
            handle.DangerousAddRef(ref added);   // throws ObjectDisposedException after Dispose
            return handle.DangerousGetHandle();
        }

        internal void Exit() { handle.DangerousRelease(); }

        /// <summary>Submits a text-to-speech job; returns at once.</summary>
        public Job Speak(TtsRequest request)
        {
            if (request == null) throw new ArgumentNullException("request");
            Native.VoxTtsRequest raw = request.Raw;
            byte[] text = Utf8.Encode(request.Text), lang = Utf8.Encode(request.Language),
                spk = Utf8.Encode(request.Speaker), ins = Utf8.Encode(request.Instruct);
            Voice voice = request.Voice;
            IntPtr e = Enter();
            IntPtr v = voice != null ? voice.Enter() : IntPtr.Zero;
            try
            {
                fixed (byte* pt = text)
                fixed (byte* pl = lang)
                fixed (byte* ps = spk)
                fixed (byte* pi = ins)
                {
                    raw.text = (IntPtr)pt;
                    raw.language = (IntPtr)pl;
                    raw.speaker = (IntPtr)ps;
                    raw.instruct = (IntPtr)pi;
                    raw.voice = v;
                    ulong id;
                    Library.Check(Native.vox_tts_submit(e, ref raw, out id), "vox_tts_submit");
                    return Track(id);
                }
            }
            finally
            {
                if (voice != null) voice.Exit();
                Exit();
            }
        }

        /// <summary>Speaks `text` with the model's defaults (offline unless `stream`).</summary>
        public Job Speak(string text, bool stream = false)
        {
            return Speak(new TtsRequest { Text = text, Stream = stream });
        }

        /// <summary>Submits a speech-recognition job; the audio is copied, so `request.Pcm` may be reused.</summary>
        public Job Transcribe(AsrRequest request)
        {
            if (request == null) throw new ArgumentNullException("request");
            if (request.Pcm == null) throw new ArgumentNullException("request.Pcm");
            int channels = (int)Math.Max(1u, request.Channels);
            Native.VoxAsrRequest raw = request.Raw;
            raw.frames = (ulong)(request.Pcm.Length / channels);
            byte[] lang = Utf8.Encode(request.Language), ctx = Utf8.Encode(request.Context);
            IntPtr e = Enter();
            try
            {
                fixed (float* pcm = request.Pcm)
                fixed (byte* pl = lang)
                fixed (byte* pc = ctx)
                {
                    raw.pcm = (IntPtr)pcm;
                    raw.language = (IntPtr)pl;
                    raw.context = (IntPtr)pc;
                    ulong id;
                    Library.Check(Native.vox_asr_submit(e, ref raw, out id), "vox_asr_submit");
                    return Track(id);
                }
            }
            finally { Exit(); }
        }

        /// <summary>Transcribes interleaved float PCM.</summary>
        public Job Transcribe(float[] pcm, int sampleRate, int channels = 1)
        {
            return Transcribe(new AsrRequest { Pcm = pcm, SampleRate = (uint)sampleRate, Channels = (uint)channels });
        }

        // Runs under Enter(): the new JobHandle's engine reference cannot fail.
        Job Track(ulong id)
        {
            var job = new JobHandle(handle, id);
            lock (live) live.Add(job);
            return new Job(this, job);
        }

        internal void Forget(JobHandle job)
        {
            lock (live) live.Remove(job);
        }

        /// <summary>What the configured model of `kind` offers (no model load).</summary>
        public ModelInfo GetModelInfo(JobKind kind)
        {
            var info = new Native.VoxModelInfo { struct_size = (uint)sizeof(Native.VoxModelInfo) };
            IntPtr e = Enter();
            try
            {
                Library.Check(Native.vox_engine_model_info(e, (int)kind, ref info), "vox_engine_model_info");
                return new ModelInfo(info);   // copies the engine's strings while it is surely alive
            }
            finally { Exit(); }
        }

        public EngineStats GetStats()
        {
            var stats = new Native.VoxEngineStats { struct_size = (uint)sizeof(Native.VoxEngineStats) };
            IntPtr e = Enter();
            try
            {
                Library.Check(Native.vox_engine_stats(e, ref stats), "vox_engine_stats");
                return new EngineStats(stats);
            }
            finally { Exit(); }
        }

        /// <summary>
        /// Cancels and releases the jobs not yet disposed, then destroys the engine (once no
        /// other thread is inside a call on it). Audio rings stay readable.
        /// </summary>
        public void Dispose()
        {
            JobHandle[] jobs;
            lock (live)
            {
                jobs = new JobHandle[live.Count];
                live.CopyTo(jobs);
                live.Clear();
            }
            // Cancel first so a thread blocked in Job.Wait returns and drops its reference.
            foreach (var j in jobs)
                if (!j.IsClosed) Native.vox_cancel(j.DangerousGetHandle(), j.Id);
            foreach (var j in jobs) j.Dispose();
            handle.Dispose();
        }
    }

    /// <summary>One TTS or ASR job. Dispose releases it (cancelling it if it still runs).</summary>
    public sealed unsafe class Job : IDisposable
    {
        readonly Engine engine;
        readonly JobHandle handle;

        internal Job(Engine engine, JobHandle handle)
        {
            this.engine = engine;
            this.handle = handle;
        }

        public ulong Id { get { return handle.Id; } }
        public Engine Engine { get { return engine; } }
        public JobHandle Handle { get { return handle; } }

        IntPtr Enter()
        {
            bool added = false;
            handle.DangerousAddRef(ref added);   // throws ObjectDisposedException after Dispose
            return handle.DangerousGetHandle();
        }

        void Exit() { handle.DangerousRelease(); }

        /// <summary>The job's state now; never waits for inference.</summary>
        public JobInfo Poll()
        {
            var info = new Native.VoxJobInfo { struct_size = (uint)sizeof(Native.VoxJobInfo) };
            IntPtr e = Enter();
            try { Library.Check(Native.vox_poll(e, Id, ref info), "vox_poll"); }
            finally { Exit(); }
            return new JobInfo(info);
        }

        /// <summary>Blocks until the job ends (true) or `timeoutMs` passes (false; -1: no limit).</summary>
        public bool Wait(int timeoutMs, out JobInfo result)
        {
            var info = new Native.VoxJobInfo { struct_size = (uint)sizeof(Native.VoxJobInfo) };
            uint t = timeoutMs < 0 ? Native.VOX_WAIT_INFINITE : (uint)timeoutMs;
            IntPtr e = Enter();
            int st;
            try { st = Native.vox_wait(e, Id, t, &info); }
            finally { Exit(); }
            if (st == Native.VOX_ERR_TIMEOUT)
            {
                result = Poll();
                return false;
            }
            Library.Check(st, "vox_wait");
            result = new JobInfo(info);
            return true;
        }

        /// <summary>Blocks until the job ends (true) or `timeoutMs` passes (false; -1: no limit).</summary>
        public bool Wait(int timeoutMs)
        {
            JobInfo ignored;
            return Wait(timeoutMs, out ignored);
        }

        /// <summary>Blocks until the job ends and returns its final state.</summary>
        public JobInfo Wait()
        {
            JobInfo info;
            Wait(-1, out info);
            return info;
        }

        /// <summary>
        /// Copies up to `count` new samples (mono, at JobInfo.SampleRate) into
        /// buffer[offset..]; returns how many. Allocates nothing: fine from a game loop.
        /// </summary>
        public int ReadAudio(float[] buffer, int offset, int count)
        {
            CheckRange(buffer, offset, count);
            IntPtr e = Enter();
            try
            {
                UIntPtr written;
                fixed (float* p = buffer)
                    Library.Check(Native.vox_read_audio(e, Id, count == 0 ? null : p + offset,
                        (UIntPtr)count, out written), "vox_read_audio");
                return (int)written;
            }
            finally { Exit(); }
        }

        /// <summary>Every sample produced and not read yet (an empty array when none). Allocates.</summary>
        public float[] ReadAudio()
        {
            long ready = (long)Poll().SamplesReady;
            var buf = new float[Math.Min(ready, int.MaxValue / 4)];
            if (buf.Length == 0) return buf;
            int n = ReadAudio(buf, 0, buf.Length);   // more may arrive meanwhile: left for the next read
            if (n < buf.Length) Array.Resize(ref buf, n);
            return buf;
        }

        internal static void CheckRange(float[] buffer, int offset, int count)
        {
            if (buffer == null) throw new ArgumentNullException("buffer");
            if (offset < 0 || count < 0 || offset > buffer.Length - count)
                throw new ArgumentOutOfRangeException("count", "offset/count outside the buffer");
        }

        delegate int StringGetter(IntPtr engine, ulong job, byte* dst, UIntPtr capacity, out UIntPtr required);

        string GetString(StringGetter get, string call)
        {
            IntPtr e = Enter();
            try
            {
                UIntPtr need;
                int st = get(e, Id, null, UIntPtr.Zero, out need);
                // The size query answers BUFFER_TOO_SMALL with the size for any non-empty string.
                for (;;)
                {
                    if (st != Native.VOX_OK && st != Native.VOX_ERR_BUFFER_TOO_SMALL)
                        throw VoxException.FromLastError(st, call);
                    var buf = new byte[Math.Max(1, (int)need)];
                    fixed (byte* p = buf) st = get(e, Id, p, (UIntPtr)buf.Length, out need);
                    if (st == Native.VOX_OK) return Utf8.Decode(buf, Math.Max(0, (int)need - 1));
                }
            }
            finally { Exit(); }
        }

        /// <summary>An ASR job's transcript ("" until done, and for TTS).</summary>
        public string Text { get { return GetString(Native.vox_get_text, "vox_get_text"); } }

        /// <summary>An ASR job's language (detected or forced; "" when none).</summary>
        public string Language { get { return GetString(Native.vox_get_language, "vox_get_language"); } }

        /// <summary>Why the job failed ("" when it did not).</summary>
        public string ErrorMessage { get { return GetString(Native.vox_job_error, "vox_job_error"); } }

        public Timings GetTimings()
        {
            var t = new Native.VoxTimings { struct_size = (uint)sizeof(Native.VoxTimings) };
            IntPtr e = Enter();
            try { Library.Check(Native.vox_get_timings(e, Id, ref t), "vox_get_timings"); }
            finally { Exit(); }
            return new Timings(t);
        }

        /// <summary>Stops the job; what it produced stays readable until Dispose.</summary>
        public void Cancel()
        {
            IntPtr e = Enter();
            try { Library.Check(Native.vox_cancel(e, Id), "vox_cancel"); }
            finally { Exit(); }
        }

        /// <summary>
        /// Attaches a wait-free ring of at least `capacity` samples (ABI 6): from then on the
        /// job's audio comes only through the ring, for a real-time audio thread to read.
        /// </summary>
        public AudioRing OpenRing(int capacity)
        {
            Library.Require(Library.RingAbiVersion, "AudioRing");
            if (capacity <= 0) throw new ArgumentOutOfRangeException("capacity");
            IntPtr e = Enter();
            try
            {
                IntPtr ring;
                Library.Check(Native.vox_audio_ring_open(e, Id, (UIntPtr)capacity, out ring), "vox_audio_ring_open");
                return new AudioRing(ring);
            }
            finally { Exit(); }
        }

        /// <summary>Releases the job (once every call in flight on it has returned).</summary>
        public void Dispose()
        {
            engine.Forget(handle);
            handle.Dispose();
        }
    }
}
