//! The polyphase resampler (work in progress on its branch).
