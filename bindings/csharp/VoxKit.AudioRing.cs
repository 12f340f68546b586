// The wait-free audio path (ABI 6): one TTS job's samples for a real-time audio thread.
using System;
using System.Runtime.InteropServices;

namespace VoxKit
{
    /// <summary>Owns a VoxAudioRing*; closes it once no read is in flight.</summary>
    public sealed class AudioRingHandle : SafeHandle
    {
        internal AudioRingHandle(IntPtr ring) : base(IntPtr.Zero, true) { SetHandle(ring); }

        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        protected override bool ReleaseHandle() { return Native.vox_audio_ring_close(handle) == Native.VOX_OK; }
    }

    /// <summary>
    /// A single-reader ring of one TTS job's audio (Job.OpenRing). Read is wait-free and
    /// allocation-free: call it from OnAudioFilterRead / an audio callback. It stays readable after
    /// the job is disposed or the engine destroyed. Dispose (not from the audio thread) gives
    /// unread samples back to the job.
    /// </summary>
    public sealed unsafe class AudioRing : IDisposable
    {
        readonly AudioRingHandle handle;

        internal AudioRing(IntPtr ring) { handle = new AudioRingHandle(ring); }

        /// <summary>
        /// Copies up to `count` samples (mono, at the job's rate) into buffer[offset..] and returns
        /// how many; `ended` is true once the job has ended and everything it produced was read
        /// (and after Dispose).
        /// </summary>
        public int Read(float[] buffer, int offset, int count, out bool ended)
        {
            Job.CheckRange(buffer, offset, count);
            // After Dispose, a read finds nothing and says so instead of throwing on the audio
            // thread. A Dispose racing a read is deferred by the handle's reference until the read
            // returns (the close then runs here, once); only a Dispose landing between the IsClosed
            // check and the AddRef costs an exception, caught below.
            ended = true;
            if (handle.IsClosed) return 0;
            bool added = false;
            try { handle.DangerousAddRef(ref added); }
            catch (ObjectDisposedException) { return 0; }
            try
            {
                UIntPtr written;
                uint flags = 0;
                int st;
                fixed (float* p = buffer)
                    st = Native.vox_audio_ring_read(handle.DangerousGetHandle(), count == 0 ? null : p + offset,
                        (UIntPtr)count, out written, &flags);
                // Read errors set no vox_last_error: the status alone says it.
                if (st != Native.VOX_OK)
                    throw new VoxException((Status)st, "vox_audio_ring_read: " + Library.StatusString(st));
                ended = (flags & Native.VOX_RING_ENDED) != 0;
                return (int)written;
            }
            finally { handle.DangerousRelease(); }
        }

        public int Read(float[] buffer, int offset, int count)
        {
            bool ended;
            return Read(buffer, offset, count, out ended);
        }

        public void Dispose() { handle.Dispose(); }
    }
}
