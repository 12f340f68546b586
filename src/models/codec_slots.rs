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
}
