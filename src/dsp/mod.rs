//! Digital signal processing on the CPU: the band-limited resampler and the spectral denoiser.
//! Both are streaming (state kept across chunks) and batched (one call, many jobs' buffers); the
//! engine runs them as the `upsample`/`resample` and `denoise` stages of a job.

pub mod denoise;
pub mod resample;
