// Tests of the C# binding against the real library (a console program: exit code 0 = all passed).
//
//   VoxKitTest.exe --emit-c                         C source printing the header's sizes/offsets
//   VoxKitTest.exe TTS_DIR ASR_DIR BASE_DIR [LAYOUT_FILE]
//                                                   the checks (BASE_DIR: a Base checkpoint, for
//                                                   cloned voices); LAYOUT_FILE = that program's output
//
// The tiny random-weight checkpoints speak noise and transcribe nonsense: the checks are on
// structure (statuses, finite audio at the reported rate, UTF-8 text), never on words.
using System;
using System.Collections.Generic;
using System.IO;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using VoxKit;

static unsafe class VoxKitTest
{
    static int passed, failed;
    static string ttsDir, asrDir, baseDir;

    static void Check(bool ok, string what)
    {
        if (ok) { passed++; Console.WriteLine("  ok   " + what); }
        else { failed++; Console.WriteLine("  FAIL " + what); }
    }

    static void Section(string name) { Console.WriteLine("== " + name); }

    // Runs `body`, expecting exception T (and, for VoxException, status `want`).
    static void Throws<T>(string what, Action body, Status want = Status.Ok) where T : Exception
    {
        try { body(); Check(false, what + " (no exception)"); }
        catch (T e)
        {
            var vox = e as VoxException;
            if (vox != null && want != Status.Ok)
                Check(vox.Status == want && vox.Message.Length > 0,
                    what + " -> " + vox.Status + " (want " + want + "): " + vox.Message);
            else Check(true, what + " -> " + typeof(T).Name);
        }
        catch (Exception e) { Check(false, what + ": wrong exception " + e.GetType().Name + ": " + e.Message); }
    }

    static IEnumerable<Type> AbiStructs()
    {
        foreach (var t in typeof(Native).GetNestedTypes())
            if (t.IsValueType && t.Name.StartsWith("Vox")) yield return t;
    }

    static IEnumerable<FieldInfo> Constants()
    {
        foreach (var f in typeof(Native).GetFields(BindingFlags.Public | BindingFlags.Static))
            if (f.IsLiteral && f.Name.StartsWith("VOX_")) yield return f;
    }

    // Field names in Native mirror the header, so a C compiler checks them: an unknown name
    // fails the compile, a wrong offset or size fails the comparison.
    static void EmitC()
    {
        Console.WriteLine("#include <stddef.h>\n#include <stdio.h>\n#include \"voxkit.h\"\nint main(void) {");
        foreach (var t in AbiStructs())
        {
            Console.WriteLine("    printf(\"{0} %zu\\n\", sizeof({0}));", t.Name);
            foreach (var f in t.GetFields(BindingFlags.Public | BindingFlags.Instance))
                Console.WriteLine("    printf(\"{0}.{1} %zu\\n\", offsetof({0}, {1}));", t.Name, f.Name);
        }
        foreach (var c in Constants())
            Console.WriteLine("#ifdef {0}\n    printf(\"{0} %lld\\n\", (long long){0});\n#endif", c.Name);
        Console.WriteLine("    return 0;\n}");
    }

    static void Layout(string file)
    {
        Section("struct layout vs a C compiler (" + file + ")");
        var c = new Dictionary<string, long>();
        foreach (var line in File.ReadAllLines(file))
        {
            var parts = line.Split(' ');
            if (parts.Length == 2) c[parts[0]] = long.Parse(parts[1]);
        }
        int n = 0;
        foreach (var t in AbiStructs())
        {
            long want;
            bool have = c.TryGetValue(t.Name, out want);
            Check(have && want == Marshal.SizeOf(t), "sizeof(" + t.Name + ") C# " + Marshal.SizeOf(t) + " = C " + (have ? want : -1));
            foreach (var f in t.GetFields(BindingFlags.Public | BindingFlags.Instance))
            {
                long off = (long)Marshal.OffsetOf(t, f.Name);
                if (!c.TryGetValue(t.Name + "." + f.Name, out want) || want != off)
                    Check(false, t.Name + "." + f.Name + " at C# " + off + ", C " + want);
                n++;
            }
        }
        Check(n > 100, n + " field offsets equal");
        int k = 0;
        foreach (var f in Constants())
        {
            long want, ours = Convert.ToInt64(f.GetRawConstantValue());
            if (!c.TryGetValue(f.Name, out want)) Check(false, f.Name + " is not in the header");
            else if (want != ours) Check(false, f.Name + " = " + ours + " in C#, " + want + " in C");
            k++;
        }
        Check(k > 40, k + " constants equal");
    }

    static void LibrarySide()
    {
        Section("library and struct sizes as the library sees them");
        Check(!string.IsNullOrEmpty(Library.Version), "vox_version " + Library.Version);
        Check(Library.AbiVersion >= Library.MinAbiVersion, "vox_abi_version " + Library.AbiVersion + " >= " + Library.MinAbiVersion);
        Check(Library.StatusString(Native.VOX_ERR_STRUCT_SIZE).Length > 0, "vox_status_string(STRUCT_SIZE) = " + Library.StatusString(4));

        // The *_init functions write the library's own struct_size: with a library of the same
        // ABI it must be ours (the scratch is roomy in case it is larger).
        byte* s = stackalloc byte[1024];
        bool same = Library.AbiVersion == Native.VOX_ABI_VERSION;
        Native.vox_engine_config_init((Native.VoxEngineConfig*)s);
        InitSize("VoxEngineConfig", *(uint*)s, sizeof(Native.VoxEngineConfig), same);
        Native.vox_tts_request_init((Native.VoxTtsRequest*)s);
        InitSize("VoxTtsRequest", *(uint*)s, sizeof(Native.VoxTtsRequest), same);
        Native.vox_asr_request_init((Native.VoxAsrRequest*)s);
        InitSize("VoxAsrRequest", *(uint*)s, sizeof(Native.VoxAsrRequest), same);
        Native.vox_voice_request_init((Native.VoxVoiceRequest*)s);
        InitSize("VoxVoiceRequest", *(uint*)s, sizeof(Native.VoxVoiceRequest), same);
    }

    static void InitSize(string name, uint lib, int ours, bool sameAbi)
    {
        Check(sameAbi ? lib == ours : lib >= ours, name + ": library's init says " + lib + ", ours " + ours);
    }

    static EngineConfig Config(bool tts, bool asr)
    {
        return new EngineConfig
        {
            TtsModelDir = tts ? ttsDir : null,
            AsrModelDir = asr ? asrDir : null,
            Device = Device.Cpu,
            CpuThreads = 1,
        };
    }

    static TtsRequest Short(string text, bool stream, uint rate = 0)
    {
        return new TtsRequest { Text = text, Stream = stream, MaxNewTokens = 8, Seed = 7, SampleRate = rate };
    }

    static bool AllFinite(float[] a, int n)
    {
        for (int i = 0; i < n; i++) if (float.IsNaN(a[i]) || float.IsInfinity(a[i])) return false;
        return true;
    }

    static void Errors()
    {
        Section("error paths");
        string missing = Path.Combine(Path.GetTempPath(), "voxkit-no-such-model-" + Guid.NewGuid());
        try
        {
            using (new Engine(new EngineConfig { TtsModelDir = missing, Device = Device.Cpu })) { }
            Check(false, "engine on a missing folder");
        }
        catch (VoxException e)
        {
            Check(e.Status == Status.ModelLoad || e.Status == Status.Io,
                "missing model folder -> " + e.Status + ": " + e.Message);
            Check(e.Message.Contains(Path.GetFileName(missing)), "the message names the folder");
        }

        using (var engine = new Engine(Config(false, false)))
        {
            Throws<VoxException>("TTS with no TTS model", () => engine.Speak("hi"), Status.ModelNotLoaded);
            Throws<VoxException>("model info with no ASR model", () => engine.GetModelInfo(JobKind.Asr), Status.ModelNotLoaded);
        }
        using (var engine = new Engine(Config(true, true)))
        {
            Throws<VoxException>("empty text", () => engine.Speak(""), Status.InvalidArgument);
            Throws<VoxException>("unknown speaker",
                () => engine.Speak(new TtsRequest { Text = "hi", Speaker = "nobody-at-all" }), Status.InvalidArgument);
            Throws<VoxException>("NaN audio",
                () => engine.Transcribe(new[] { 0f, float.NaN, 0f }, 16000), Status.InvalidArgument);
            Throws<ArgumentOutOfRangeException>("read past the buffer", () =>
            {
                using (var j = engine.Speak(Short("hi", true))) j.ReadAudio(new float[4], 2, 3);
            });

            var job = engine.Speak(Short("hi", false));
            ulong id = job.Id;
            job.Dispose();
            job.Dispose();   // a second Dispose is harmless
            Throws<ObjectDisposedException>("poll a disposed job", () => job.Poll());
            Throws<ObjectDisposedException>("read a disposed job", () => job.ReadAudio(new float[8], 0, 8));
            var info = new Native.VoxJobInfo { struct_size = (uint)sizeof(Native.VoxJobInfo) };
            IntPtr e = engine.Handle.DangerousGetHandle();
            Check(Native.vox_poll(e, id, ref info) == Native.VOX_ERR_UNKNOWN_JOB, "vox_poll on a released id -> UNKNOWN_JOB");

            // Strings cross as raw UTF-8: bytes that are not UTF-8 reach the library and are refused.
            byte* scratch = stackalloc byte[1024];
            Native.vox_tts_request_init((Native.VoxTtsRequest*)scratch);
            var raw = *(Native.VoxTtsRequest*)scratch;
            raw.struct_size = (uint)sizeof(Native.VoxTtsRequest);
            byte[] bad = { 0xff, 0xfe, 0 };
            ulong jid;
            fixed (byte* p = bad)
            {
                raw.text = (IntPtr)p;
                Check(Native.vox_tts_submit(e, ref raw, out jid) == Native.VOX_ERR_INVALID_UTF8, "invalid UTF-8 text -> INVALID_UTF8");
            }
            raw.struct_size = 4;
            Check(Native.vox_tts_submit(e, ref raw, out jid) == Native.VOX_ERR_STRUCT_SIZE, "VoxTtsRequest.struct_size 4 -> STRUCT_SIZE");
            raw.struct_size = (uint)sizeof(Native.VoxTtsRequest) - 4;
            Check(Native.vox_tts_submit(e, ref raw, out jid) == Native.VOX_ERR_STRUCT_SIZE, "VoxTtsRequest.struct_size sizeof-4 -> STRUCT_SIZE");
            info.struct_size = 4;
            Check(Native.vox_poll(e, 1, ref info) == Native.VOX_ERR_STRUCT_SIZE, "VoxJobInfo.struct_size 4 -> STRUCT_SIZE");

            Throws<VoxException>("voice from garbage bytes", () => Voice.Load(new byte[] { 1, 2, 3, 4 }), Status.InvalidArgument);
        }
        var gone = new Engine(Config(false, false));
        gone.Dispose();
        Throws<ObjectDisposedException>("speak on a disposed engine", () => gone.Speak("hi"));
    }

    static float[] TtsOffline(Engine engine)
    {
        Section("TTS, offline");
        var model = engine.GetModelInfo(JobKind.Tts);
        Check(model.SampleRate > 0 && model.Speakers.Length > 0 && model.Languages.Length > 0 && model.Languages[0] == "auto",
            "model info: " + model.SampleRate + " Hz, speakers " + string.Join(",", model.Speakers) + ", languages " + model.Languages.Length);
        using (var job = engine.Speak(Short("Grüße aus voxkit, 你好.", false)))
        {
            var info = job.Wait();
            Check(info.State == JobState.Done, "state " + info.State + " " + job.ErrorMessage);
            Check(info.Kind == JobKind.Tts && info.SampleRate == model.SampleRate, "TTS job at " + info.SampleRate + " Hz");
            Check(info.StructSize == sizeof(Native.VoxJobInfo), "vox_wait wrote back struct_size " + info.StructSize);
            float[] audio = job.ReadAudio();
            Check(audio.Length > 0 && (ulong)audio.Length == info.SamplesTotal, audio.Length + " samples = samples_total " + info.SamplesTotal);
            Check(AllFinite(audio, audio.Length), "every sample finite");
            Check(job.ReadAudio().Length == 0, "a second read gives nothing new");
            Check(job.Text == "" && job.ErrorMessage == "", "no transcript or error for a TTS job");
            var t = job.GetTimings();
            Check(t.TotalMs > 0 && t.Tokens > 0 && t.TtsMs >= 0, "timings: total " + t.TotalMs.ToString("F1") + " ms, " + t.Tokens + " tokens");
            return audio;
        }
    }

    static void TtsStreamed(Engine engine)
    {
        Section("TTS, streamed at 48 kHz through ReadAudio(buffer, offset, count)");
        var all = new float[1 << 20];
        int got = 0;
        using (var job = engine.Speak(Short("Streaming, piece by piece.", true, 48000)))
        {
            JobInfo info;
            long allocated = 0;
            for (;;)
            {
                info = job.Poll();
                long before = GC.GetAllocatedBytesForCurrentThread();
                int n = job.ReadAudio(all, got, Math.Min(960, all.Length - got));
                allocated += GC.GetAllocatedBytesForCurrentThread() - before;
                got += n;
                if (info.Ended && n == 0) break;
                if (n == 0) job.Wait(10, out info);
            }
            Check(info.State == JobState.Done && (info.Flags & JobFlags.Streaming) != 0, "state " + info.State + ", flags " + info.Flags);
            Check(info.SampleRate == 48000, "resampled to " + info.SampleRate + " Hz");
            Check(got > 0 && (ulong)got == info.SamplesTotal && AllFinite(all, got), got + " finite samples = samples_total " + info.SamplesTotal);
            Check(allocated == 0, "ReadAudio(buffer, offset, count) allocated " + allocated + " bytes");
        }
    }

    static void Asr(Engine engine, float[] speech, int rate)
    {
        Section("ASR on synthesized audio");
        var stereo = new float[speech.Length * 2];
        for (int i = 0; i < speech.Length; i++) { stereo[2 * i] = speech[i]; stereo[2 * i + 1] = -speech[i]; }
        using (var mono = engine.Transcribe(new AsrRequest { Pcm = speech, SampleRate = (uint)rate, MaxNewTokens = 8 }))
        using (var two = engine.Transcribe(new AsrRequest { Pcm = stereo, SampleRate = (uint)rate, Channels = 2, MaxNewTokens = 4, Context = "voxkit, Qwen" }))
        {
            foreach (var job in new[] { mono, two })
            {
                var info = job.Wait();
                Check(info.State == JobState.Done && info.Kind == JobKind.Asr, "state " + info.State + " " + job.ErrorMessage);
                string text = job.Text, lang = job.Language;   // the strict decoder throws on bad UTF-8
                Check(text != null && lang != null, "transcript (" + Encoding.UTF8.GetByteCount(text) + " UTF-8 bytes): \"" + text + "\", language \"" + lang + "\"");
                Check(info.Tokens > 0 && job.GetTimings().AsrDecodeMs > 0, info.Tokens + " tokens, decode timed");
            }
        }
    }

    static void Threads(Engine engine)
    {
        Section("4 threads submitting and streaming at once");
        var errors = new List<string>();
        var threads = new List<Thread>();
        for (int k = 0; k < 4; k++)
        {
            int me = k;
            var th = new Thread(() =>
            {
                try
                {
                    var buf = new float[512];
                    using (var job = engine.Speak(Short("Thread " + me + " speaking.", true)))
                    {
                        long got = 0;
                        JobInfo info;
                        for (;;)
                        {
                            info = job.Poll();
                            int n = job.ReadAudio(buf, 0, buf.Length);
                            got += n;
                            if (info.Ended && n == 0) break;
                            if (n == 0) job.Wait(5, out info);
                        }
                        if (info.State != JobState.Done || got == 0 || (ulong)got != info.SamplesTotal)
                            lock (errors) errors.Add("thread " + me + ": " + info.State + ", " + got + " of " + info.SamplesTotal);
                    }
                }
                catch (Exception e) { lock (errors) errors.Add("thread " + me + ": " + e); }
            });
            threads.Add(th);
            th.Start();
        }
        foreach (var th in threads) th.Join();
        Check(errors.Count == 0, "every thread's job done, all samples read" + (errors.Count > 0 ? ": " + string.Join("; ", errors.ToArray()) : ""));
        var stats = engine.GetStats();
        Check(stats.Device == Device.Cpu && stats.DeviceName.Length > 0 && stats.JobsDone >= 4,
            "stats: " + stats.JobsDone + " done on " + stats.DeviceName + ", " + stats.JobsHeld + " held");
    }

    static void Voices(float[] reference, int rate)
    {
        Section("cloned voices (Base checkpoint)");
        using (var engine = new Engine(new EngineConfig { TtsModelDir = baseDir, Device = Device.Cpu, CpuThreads = 1 }))
        {
            Check(engine.GetModelInfo(JobKind.Tts).ClonesVoices, "the Base model clones voices");
            Throws<VoxException>("a Base model without a voice", () => engine.Speak(Short("hi", false)), Status.InvalidArgument);
            byte[] saved;
            using (var made = Voice.Create(engine, new VoiceRequest { Pcm = reference, SampleRate = (uint)rate }))
                saved = made.Save();
            Check(saved.Length > 0, "voice saved as " + saved.Length + " bytes");
            var voice = Voice.Load(saved);
            var job = engine.Speak(new TtsRequest { Text = "In a borrowed voice.", Voice = voice, MaxNewTokens = 4, Seed = 3 });
            voice.Dispose();   // the job keeps its own reference
            using (job)
            {
                var info = job.Wait();
                Check(info.State == JobState.Done && job.ReadAudio().Length > 0, "speech with a loaded voice: " + info.State);
            }
            Throws<ObjectDisposedException>("a disposed voice", () => voice.Save());
        }
    }

    static void CancelAndDispose()
    {
        Section("cancel, log callback, engine Dispose with a job in flight");
        int lines = 0;
        var config = Config(true, false);
        config.LogLevel = LogLevel.Debug;
        config.Log = (level, msg) => { if (msg != null) Interlocked.Increment(ref lines); };
        var engine = new Engine(config);
        using (var job = engine.Speak(new TtsRequest { Text = "A long sentence that would take a while.", MaxNewTokens = 2000 }))
        {
            job.Cancel();
            var info = job.Wait();
            Check(info.State == JobState.Cancelled || info.State == JobState.Done, "after Cancel: " + info.State);
        }
        Check(lines > 0, lines + " log lines through the callback");

        // Dispose must cancel a job another thread is blocked on, then destroy once that wait returns.
        var waiting = engine.Speak(new TtsRequest { Text = "Another long one.", MaxNewTokens = 2000 });
        Exception waitError = null;
        JobInfo waited = default(JobInfo);
        var waiter = new Thread(() => { try { waited = waiting.Wait(); } catch (Exception e) { waitError = e; } });
        waiter.Start();
        Thread.Sleep(50);
        engine.Dispose();
        bool joined = waiter.Join(10000);
        Check(joined && (waitError != null || waited.State == JobState.Cancelled || waited.State == JobState.Done),
            "a blocked Wait returned after engine Dispose (" + (waitError != null ? waitError.GetType().Name : waited.State.ToString()) + ")");
        Throws<ObjectDisposedException>("a job after its engine's Dispose", () => waiting.Poll());
    }

    static void Ring()
    {
        Section("AudioRing (ABI " + Library.RingAbiVersion + ")");
        var engine = new Engine(Config(true, false));
        if (Library.AbiVersion < Library.RingAbiVersion)
        {
            using (var j = engine.Speak(Short("hi", true)))
                Throws<VoxException>("OpenRing on an ABI " + Library.AbiVersion + " library", () => j.OpenRing(4096), Status.Unsupported);
            engine.Dispose();
            return;
        }
        var job = engine.Speak(Short("Ring buffered speech.", true));
        var ring = job.OpenRing(2048);
        Throws<VoxException>("ReadAudio while a ring is attached", () => job.ReadAudio(new float[16], 0, 16), Status.InvalidArgument);
        Throws<VoxException>("a second ring on the job", () => job.OpenRing(2048), Status.InvalidArgument);
        var buf = new float[1 << 20];
        int got = 0;
        long allocated = 0;
        bool ended = false;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!ended && DateTime.UtcNow < deadline)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            int n = ring.Read(buf, got, Math.Min(256, buf.Length - got), out ended);
            allocated += GC.GetAllocatedBytesForCurrentThread() - before;
            got += n;
            if (n == 0 && !ended) Thread.Sleep(2);
        }
        var info = job.Poll();
        Check(ended && info.State == JobState.Done, "ring ended, job " + info.State);
        Check(got > 0 && (ulong)got == info.SamplesTotal && AllFinite(buf, got), got + " finite samples = samples_total " + info.SamplesTotal);
        Check(allocated == 0, "AudioRing.Read allocated " + allocated + " bytes");

        // Closing gives unread samples back to the job; a ring outlives its job and engine.
        var job2 = engine.Speak(Short("Given back.", false));
        var ring2 = job2.OpenRing(1 << 16);
        job2.Wait();
        ring2.Dispose();
        Check(job2.ReadAudio().Length > 0, "after the ring's Dispose, ReadAudio has the unread samples");
        var job3 = engine.Speak(Short("Outlives.", false));
        var ring3 = job3.OpenRing(1 << 16);
        job3.Wait();
        engine.Dispose();
        int total3 = 0;
        bool ended3 = false;
        for (int i = 0; i < 1000 && !ended3; i++) total3 += ring3.Read(buf, 0, 4096, out ended3);
        Check(total3 > 0 && ended3, "read " + total3 + " samples after the engine was destroyed, then ended");
        ring3.Dispose();
        ring.Dispose();
        job.Dispose();
    }

    static int Main(string[] args)
    {
        if (args.Length == 1 && args[0] == "--emit-c") { EmitC(); return 0; }
        if (args.Length < 3) { Console.Error.WriteLine("usage: VoxKitTest.exe TTS_DIR ASR_DIR BASE_DIR [LAYOUT_FILE] | --emit-c"); return 2; }
        ttsDir = args[0];
        asrDir = args[1];
        baseDir = args[2];
        try
        {
            if (args.Length > 3) Layout(args[3]);
            else Console.WriteLine("== struct layout vs C: skipped (no layout file given)");
            LibrarySide();
            Errors();
            using (var engine = new Engine(Config(true, true)))
            {
                float[] speech = TtsOffline(engine);
                TtsStreamed(engine);
                Asr(engine, speech, engine.GetModelInfo(JobKind.Tts).SampleRate);
                Threads(engine);
                Voices(speech, engine.GetModelInfo(JobKind.Tts).SampleRate);
            }
            CancelAndDispose();
            Ring();
        }
        catch (Exception e) { Check(false, "unexpected " + e); }
        Console.WriteLine("{0} passed, {1} failed", passed, failed);
        return failed == 0 ? 0 : 1;
    }
}
