// A Unity component that speaks text through its AudioSource, streamed while it is generated.
// Needs the binding (bindings/csharp/*.cs) and the native library in the project, and
// "Allow 'unsafe' Code" (Player Settings, or the binding's .asmdef).
using System.Threading;
using UnityEngine;
using VoxKit;

[RequireComponent(typeof(AudioSource))]
public class VoxKitSpeaker : MonoBehaviour
{
    [Tooltip("A Qwen3-TTS checkpoint folder, or a Hugging Face id fetched once into its cache")]
    public string modelDir = "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice";
    [TextArea] public string speakOnStart = "Hello from voxkit.";

    Engine engine;
    Job job;                    // main thread only
    int outputRate;             // AudioSettings may not be read on the audio thread

    // Rings pass between threads without a lock: the main thread offers the next one in `next`;
    // the audio thread moves it to `playing` and hands the ring it stops reading back in
    // `retired`, which the main thread closes (closing frees memory: never on the audio thread).
    AudioRing next;
    AudioRing playing;
    AudioRing retired;
    readonly float[] mono = new float[4096];   // preallocated: OnAudioFilterRead must not allocate

    void Start()
    {
        outputRate = AudioSettings.outputSampleRate;
        // Create checks the model folder (a hub id not yet cached is downloaded here, once):
        // behind a loading screen in a real game. The model itself loads on the first job.
        engine = new Engine(new EngineConfig { TtsModelDir = modelDir });
        GetComponent<AudioSource>().Play();   // no clip: this component's filter is the generator
        if (!string.IsNullOrEmpty(speakOnStart)) Speak(speakOnStart);
    }

    /// <summary>Speaks `text`, interrupting what is being said. Main thread.</summary>
    public void Speak(string text)
    {
        // Unity mixes at AudioSettings.outputSampleRate (often 48000) and the model speaks at
        // 24000: ask the engine to resample, or the voice would play at the wrong pitch and speed.
        var request = new TtsRequest { Text = text, Stream = true, SampleRate = (uint)outputRate };
        Job started = engine.Speak(request);
        AudioRing ring = started.OpenRing(outputRate);   // 1 s; the rest waits in the job
        AudioRing unplayed = Interlocked.Exchange(ref next, ring);
        if (unplayed != null) unplayed.Dispose();        // the audio thread never saw it
        if (job != null) job.Dispose();                  // its ring keeps what it already holds
        job = started;
    }

    void Update()
    {
        AudioRing done = Interlocked.Exchange(ref retired, null);
        if (done != null) done.Dispose();
    }

    // Audio thread: wait-free ring reads into a preallocated buffer; no allocation, no lock.
    void OnAudioFilterRead(float[] data, int channels)
    {
        if (Volatile.Read(ref retired) == null)   // only then is there room to hand a ring back
        {
            AudioRing incoming = Interlocked.Exchange(ref next, null);
            if (incoming != null) Volatile.Write(ref retired, Interlocked.Exchange(ref playing, incoming));
        }
        AudioRing ring = Volatile.Read(ref playing);   // a ring disposed meanwhile reads as ended
        if (ring == null) return;

        // `data` is interleaved: frame f, channel c at data[f * channels + c]. The speech is mono.
        int frames = data.Length / channels, done = 0;
        while (done < frames)
        {
            bool ended;
            int n = ring.Read(mono, 0, Mathf.Min(mono.Length, frames - done), out ended);
            if (n == 0) break;   // not generated yet, or finished: the rest stays silent
            for (int i = 0; i < n; i++)
            {
                int at = (done + i) * channels;
                for (int c = 0; c < channels; c++) data[at + c] = mono[i];
            }
            done += n;
        }
    }

    void OnDestroy()
    {
        // Unity may still be inside OnAudioFilterRead: a ring's handle defers its close until a
        // read in flight returns, and rings stay valid after their job and engine are gone. (A
        // ring the audio thread is moving between slots at this instant is closed by its
        // SafeHandle's finalizer instead.)
        Close(ref next);
        Close(ref playing);
        Close(ref retired);
        if (job != null) job.Dispose();
        if (engine != null) engine.Dispose();
        job = null;
        engine = null;
    }

    static void Close(ref AudioRing slot)
    {
        AudioRing r = Interlocked.Exchange(ref slot, null);
        if (r != null) r.Dispose();
    }
}
