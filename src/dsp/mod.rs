//! Digital signal processing: the band-limited resampler and the spectral denoiser. Both are
//! streaming (state kept across chunks) and batched (one call, many jobs' buffers), on the CPU
//! (`denoise`, `resample`: the reference) and on a GPU (`device`: one launch per step for a whole
//! batch); the engine runs them as the `upsample`/`resample` and `denoise` stages of a job.

pub mod denoise;
pub mod device;
pub mod resample;

/// One stream through a post-processing stage (denoiser, resampler); keeps its state across chunks.
pub trait AudioStream: Send {
    fn process(&mut self, input: &[f32], output: &mut Vec<f32>);
    /// Flushes what the stage still holds (its latency) at the end of the stream.
    fn finish(&mut self, output: &mut Vec<f32>);
    /// The stream as a GPU stream, which batches with others of its kind (`device::process_batch`).
    fn on_device(&mut self) -> Option<&mut device::DeviceStream> {
        None
    }
}
