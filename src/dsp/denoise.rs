//! The spectral denoiser (work in progress on its branch).
