// Runs examples/unity/VoxKitSpeaker.cs outside Unity: a stand-in for the few UnityEngine members
// it uses, and a host that calls its messages the way Unity does (Start and Update on the main
// thread, OnAudioFilterRead on an audio thread with interleaved stereo, OnDestroy while the audio
// thread still runs). Compiled with -define:UNITY_5_3_OR_NEWER, so the binding also builds the
// way Unity sees it (AOT.MonoPInvokeCallbackAttribute from "UnityEngine", not its own copy).
//
//   UnityHarness.exe TTS_DIR    exit code 0 = the component played speech and shut down cleanly
using System;
using System.Reflection;
using System.Threading;

namespace AOT
{
    [AttributeUsage(AttributeTargets.Method)]
    public sealed class MonoPInvokeCallbackAttribute : Attribute
    {
        public MonoPInvokeCallbackAttribute(Type type) { }
    }
}

namespace UnityEngine
{
    public class Component { }
    public sealed class AudioSource : Component { public void Play() { } }

    public class MonoBehaviour : Component
    {
        public T GetComponent<T>() where T : Component, new() { return new T(); }
    }

    public static class AudioSettings { public static int outputSampleRate { get { return 48000; } } }
    public static class Mathf { public static int Min(int a, int b) { return a < b ? a : b; } }

    [AttributeUsage(AttributeTargets.Class)]
    public sealed class RequireComponent : Attribute { public RequireComponent(Type t) { } }
    [AttributeUsage(AttributeTargets.Field)]
    public sealed class TooltipAttribute : Attribute { public TooltipAttribute(string s) { } }
    [AttributeUsage(AttributeTargets.Field)]
    public sealed class TextAreaAttribute : Attribute { }
}

static class UnityHarness
{
    static int failed;

    static void Check(bool ok, string what)
    {
        Console.WriteLine((ok ? "  ok   " : "  FAIL ") + what);
        if (!ok) failed++;
    }

    static Action<object[]> Message(object target, string name)
    {
        var m = target.GetType().GetMethod(name, BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public);
        return args => m.Invoke(target, args);
    }

    static int Main(string[] args)
    {
        if (VoxKit.Library.AbiVersion < VoxKit.Library.RingAbiVersion)
        {
            Console.WriteLine("harness skipped: the component streams through AudioRing (ABI " +
                VoxKit.Library.RingAbiVersion + "); this library implements " + VoxKit.Library.AbiVersion);
            return 0;
        }
        var speaker = new VoxKitSpeaker { modelDir = args[0], speakOnStart = "Hello from the harness." };
        var start = Message(speaker, "Start");
        var update = Message(speaker, "Update");
        var destroy = Message(speaker, "OnDestroy");
        var filter = speaker.GetType().GetMethod("OnAudioFilterRead", BindingFlags.Instance | BindingFlags.NonPublic);
        // Called directly, not through reflection, so the allocation count is the component's own.
        var onAudio = (Action<float[], int>)Delegate.CreateDelegate(typeof(Action<float[], int>), speaker, filter);

        start(null);
        long audible = 0, allocated = 0, mismatched = 0, callbacks = 0;
        Exception audioError = null;
        bool stop = false;
        var audio = new Thread(() =>
        {
            var data = new float[1024 * 2];
            try
            {
                while (!Volatile.Read(ref stop))
                {
                    Array.Clear(data, 0, data.Length);
                    long before = GC.GetAllocatedBytesForCurrentThread();
                    onAudio(data, 2);
                    long after = GC.GetAllocatedBytesForCurrentThread();
                    if (callbacks++ > 0) allocated += after - before;   // the first call JIT-compiles
                    long loud = 0;
                    for (int i = 0; i < data.Length; i += 2)
                    {
                        if (data[i] != 0) loud++;
                        if (data[i] != data[i + 1]) mismatched++;
                    }
                    Interlocked.Add(ref audible, loud);
                    Thread.Sleep(5);
                }
            }
            catch (Exception e) { audioError = e; }
        });
        audio.Start();

        var deadline = DateTime.UtcNow.AddSeconds(20);
        bool interrupted = false;
        long heardBefore = 0;
        while (DateTime.UtcNow < deadline)
        {
            update(null);
            Thread.Sleep(16);
            long heard = Interlocked.Read(ref audible);
            if (!interrupted && heard > 4800)
            {
                speaker.Speak("Interrupted by a second line.");   // what a game does mid-sentence
                interrupted = true;
                heardBefore = heard;
            }
            else if (interrupted && heard > heardBefore + 4800) break;
        }
        destroy(null);            // while the audio thread keeps calling in
        Thread.Sleep(50);
        Volatile.Write(ref stop, true);
        audio.Join();

        Check(audioError == null, "no exception on the audio thread" + (audioError != null ? ": " + audioError : ""));
        Check(interrupted && audible > heardBefore + 4800, audible + " audible frames, before and after Speak interrupted the first line");
        Check(mismatched == 0, "mono speech copied to both interleaved channels");
        Check(allocated == 0, "OnAudioFilterRead allocated " + allocated + " bytes in " + callbacks + " calls");
        Console.WriteLine(failed == 0 ? "harness passed" : "harness: " + failed + " failed");
        return failed == 0 ? 0 : 1;
    }
}
