// Cloned voices (Base checkpoints): made from reference audio, saved as bytes, loaded back.
using System;
using System.Runtime.InteropServices;

namespace VoxKit
{
    /// <summary>Owns a VoxVoice*; vox_voice_release once no call that uses it is in flight.</summary>
    public sealed class VoiceHandle : SafeHandle
    {
        internal VoiceHandle(IntPtr voice) : base(IntPtr.Zero, true) { SetHandle(voice); }

        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        protected override bool ReleaseHandle() { return Native.vox_voice_release(handle) == Native.VOX_OK; }
    }

    /// <summary>Reference audio to clone a voice from (VoxVoiceRequest).</summary>
    public sealed class VoiceRequest
    {
        internal Native.VoxVoiceRequest Raw;

        public VoiceRequest()
        {
            Library.EnsureLoaded();
            Raw = Defaults.VoiceRequest();
        }

        /// <summary>Interleaved float PCM, 0.08 to 60 s; copied.</summary>
        public float[] Pcm { get; set; }
        /// <summary>What the reference says (in-context cloning); null: speaker embedding only.</summary>
        public string Transcript { get; set; }

        public uint SampleRate { get { return Raw.sample_rate; } set { Raw.sample_rate = value; } }
        public uint Channels { get { return Raw.channels; } set { Raw.channels = value; } }
        public bool Denoise { get { return Raw.denoise != 0; } set { Raw.denoise = value ? 1u : 0u; } }
        public float DenoiseStrength { get { return Raw.denoise_strength; } set { Raw.denoise_strength = value; } }
        public uint TimeoutMs { get { return Raw.timeout_ms; } set { Raw.timeout_ms = value; } }
    }

    /// <summary>An immutable cloned voice; any thread may use it. Dispose releases it.</summary>
    public sealed unsafe class Voice : IDisposable
    {
        readonly VoiceHandle handle;

        Voice(IntPtr voice) { handle = new VoiceHandle(voice); }

        /// <summary>Makes a voice with the engine's Base model. Blocks: call it from a loading thread.</summary>
        public static Voice Create(Engine engine, VoiceRequest request)
        {
            if (engine == null) throw new ArgumentNullException("engine");
            if (request == null || request.Pcm == null) throw new ArgumentNullException("request.Pcm");
            Native.VoxVoiceRequest raw = request.Raw;
            raw.frames = (ulong)(request.Pcm.Length / (int)Math.Max(1u, request.Channels));
            byte[] transcript = Utf8.Encode(request.Transcript);
            IntPtr e = engine.Enter();
            try
            {
                fixed (float* pcm = request.Pcm)
                fixed (byte* t = transcript)
                {
                    raw.pcm = (IntPtr)pcm;
                    raw.transcript = (IntPtr)t;
                    IntPtr voice;
                    Library.Check(Native.vox_voice_create(e, ref raw, out voice), "vox_voice_create");
                    return new Voice(voice);
                }
            }
            finally { engine.Exit(); }
        }

        /// <summary>Reads bytes Save wrote (e.g. a shipped asset).</summary>
        public static Voice Load(byte[] data)
        {
            Library.EnsureLoaded();
            if (data == null) throw new ArgumentNullException("data");
            IntPtr voice;
            fixed (byte* p = data)
                Library.Check(Native.vox_voice_load(p, (UIntPtr)data.Length, out voice), "vox_voice_load");
            return new Voice(voice);
        }

        /// <summary>The voice as versioned, checksummed bytes.</summary>
        public byte[] Save()
        {
            IntPtr v = Enter();
            try
            {
                UIntPtr need;
                int st = Native.vox_voice_save(v, null, UIntPtr.Zero, out need);
                if (st != Native.VOX_OK && st != Native.VOX_ERR_BUFFER_TOO_SMALL)
                    throw VoxException.FromLastError(st, "vox_voice_save");
                var buf = new byte[(int)need];
                fixed (byte* p = buf)
                    Library.Check(Native.vox_voice_save(v, p, (UIntPtr)buf.Length, out need), "vox_voice_save");
                return buf;
            }
            finally { Exit(); }
        }

        internal IntPtr Enter()
        {
            bool added = false;
            handle.DangerousAddRef(ref added);
            return handle.DangerousGetHandle();
        }

        internal void Exit() { handle.DangerousRelease(); }

        public void Dispose() { handle.Dispose(); }
    }
}
