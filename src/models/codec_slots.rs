//! The codec behind the engine's `CodecDecoder` seam: whole utterances offline, and one streaming
//! state per slot.

use std::collections::HashMap;

use crate::error::Result;
use crate::models::codec::{Codec, CodecStream};
use crate::seams::CodecDecoder;

pub struct CodecSlots {
    pub codec: Codec,
    streams: HashMap<usize, CodecStream>,
}

impl CodecSlots {
    pub fn new(codec: Codec) -> CodecSlots {
        CodecSlots { codec, streams: HashMap::new() }
    }
}

impl CodecDecoder for CodecSlots {
    fn sample_rate(&self) -> u32 {
        self.codec.sample_rate()
    }

    fn decode(&mut self, utterances: &[&[Vec<u32>]]) -> Result<Vec<Vec<f32>>> {
        utterances.iter().map(|u| self.codec.decode(u)).collect()
    }

    fn decode_stream(&mut self, items: &[(usize, &[Vec<u32>])]) -> Result<Vec<Vec<f32>>> {
        items
            .iter()
            .map(|&(slot, frames)| {
                if !self.streams.contains_key(&slot) {
                    self.streams.insert(slot, self.codec.new_stream()?);
                }
                let st = self.streams.get_mut(&slot).expect("inserted");
                self.codec.forward_stream(st, frames)
            })
            .collect()
    }

    fn end_stream(&mut self, slot: usize) {
        self.streams.remove(&slot);
    }

    /// The reference skipped through a fresh stream (`Codec::skip_stream`: the DAC only over its
    /// last frames), not decoded.
    fn prime_stream(&mut self, slot: usize, context: &[Vec<u32>]) -> Result<()> {
        let mut st = self.codec.new_stream()?;
        self.codec.skip_stream(&mut st, context)?;
        self.streams.insert(slot, st);
        Ok(())
    }

    fn decode_after(&mut self, context: &[Vec<u32>], frames: &[Vec<u32>]) -> Result<Vec<f32>> {
        self.codec.decode_after(context, frames)
    }
}
