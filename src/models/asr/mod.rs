//! Qwen3-ASR: audio → (language, text), behind the engine's step-based `AsrModel` seam.
//!
//! One job's path (spec §3–§8):
//! 1. front-end: peak-normalise (only if louder than full scale), split audio longer than the
//!    official per-pass limit (1200 s) at low-energy points, log-mel per pass;
//! 2. prefill: the audio encoder turns the pass's mel frames into `tokens(T)` embeddings, which
//!    replace the `<|audio_pad|>` rows of the chat prompt; the Qwen3 decoder runs the prompt;
//! 3. steps: greedy decoding (tied head) until `<|im_end|>`/`<|endoftext|>`, the cap, or the
//!    repetition guard; then the next pass, if any;
//! 4. transcript: each pass's text parsed as the official `parse_asr_output`, texts joined with
//!    no separator and languages merged, as the official `transcribe`.

mod audio;
mod guard;
mod prompt;

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::backend::{Compute, KvCache, Quantization, Tensor, Weight};
use crate::error::{Error, ErrorKind, Result};
use crate::models::asr_config::{AsrConfig, PreprocessorConfig};
use crate::models::asr_output;
use crate::models::audio_encoder::AudioEncoder;
use crate::models::mel::MelFrontend;
use crate::models::quant_cache::QuantCache;
use crate::models::qwen3::{Qwen3Stack, SeqRows};
use crate::models::tokenizer::{SplitRegex, TextTokenizer};
use crate::models::weights::{Checkpoint, only_on_cpu};
use crate::seams::{AsrFeatures, AsrModel, AsrPrefill, AsrStep, Finish, Transcript};

pub use audio::{MAX_PASS_SECONDS, auto_cap_tokens, normalize_range, split_for_passes};
use audio::{MIN_PASS_SECONDS, SPLIT_SEARCH_SECONDS};

/// Decoder cache tokens each slot holds from the start (the pool grows past it as needed).
const INITIAL_TOKENS_PER_SLOT: usize = 256;

/// One decoding pass of a slot (a whole clip, or one piece of a long one).
struct PassFeatures {
    data: Vec<f32>,
}

/// One clip being transcribed (its keys and values: the model's cache, same slot).
struct Slot {
    /// Passes not started yet.
    pending: VecDeque<PassFeatures>,
    /// Prompt ids before and after the audio pads.
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    forced_language: Option<String>,
    /// The token chosen by the last forward, not yet fed back.
    next: u32,
    /// Ids generated in this pass (stop token excluded).
    generated: Vec<u32>,
    cap: u32,
    /// Finished passes' (language, text).
    done: Vec<(String, String)>,
    truncated: bool,
}

/// Time spent per part, summed over the model's life (for benchmarks).
#[derive(Clone, Copy, Debug, Default)]
pub struct AsrTimes {
    pub frontend: Duration,
    pub encoder: Duration,
    /// The decoder's prompt prefill (the encoder not included).
    pub prefill: Duration,
    pub decode: Duration,
    pub decode_steps: u64,
    pub prompt_tokens: u64,
}

pub struct Qwen3Asr {
    pub config: AsrConfig,
    pub preprocessor: PreprocessorConfig,
    mel: MelFrontend,
    pub encoder: AudioEncoder,
    embed_tokens: Weight,
    /// An untied output head; tied checkpoints use `embed_tokens`.
    lm_head: Option<Weight>,
    pub decoder: Qwen3Stack,
    tokenizer: TextTokenizer,
    cx: Compute,
    stop_ids: Vec<u32>,
    audio_pad: u32,
    slots: Vec<Option<Slot>>,
    /// The decoder's keys and values, a slot per sequence slot.
    cache: KvCache,
    pub times: AsrTimes,
}

fn load_error(msg: String) -> Error {
    Error::new(ErrorKind::ModelLoad, msg)
}

impl Qwen3Asr {
    /// Loads `config.json`, `preprocessor_config.json`, the tokenizer and the weights
    /// (`model.safetensors` or the shards of `model.safetensors.index.json`).
    pub fn load(dir: &Path, cx: impl Into<Compute>, max_slots: usize) -> Result<Qwen3Asr> {
        let cx = cx.into();
        let config = AsrConfig::load(dir)?;
        let preprocessor = PreprocessorConfig::load(dir)?;
        if preprocessor.feature_size != config.audio().num_mel_bins {
            return Err(load_error(format!(
                "{}: preprocessor feature_size {} does not match audio_config.num_mel_bins {}",
                dir.display(),
                preprocessor.feature_size,
                config.audio().num_mel_bins
            )));
        }
        let tokenizer = TextTokenizer::from_dir_with(dir, SplitRegex::for_checkpoint(dir)?)?;
        let mut ck = Checkpoint::open_dir(dir)?.resident_on(&cx);
        let encoder = AudioEncoder::load(&cx, &mut ck, config.audio(), "thinker.audio_tower.")?;
        let dims = config.text_dims();
        let text = &config.thinker_config.text_config;
        let embed_tokens = ck.take("thinker.model.embed_tokens.weight", &[text.decoder.vocab_size, dims.hidden])?;
        let decoder = Qwen3Stack::load(&cx, &mut ck, "thinker.model.", dims.clone())?;
        // Tied: transformers replaces the stored head by the embedding, so the stored copy (if
        // any: save_pretrained omits it) is not used.
        let lm_head = if text.tie_word_embeddings {
            if let Some(w) = ck.take_any("thinker.lm_head.weight")
                && w.shape() != [text.decoder.vocab_size, dims.hidden]
            {
                return Err(load_error(format!(
                    "{}: tensor `thinker.lm_head.weight` has shape {:?}; the config implies {:?}",
                    ck.path().display(),
                    w.shape(),
                    [text.decoder.vocab_size, dims.hidden]
                )));
            }
            None
        } else {
            Some(ck.take("thinker.lm_head.weight", &[text.decoder.vocab_size, dims.hidden])?)
        };
        let unused = ck.remaining();
        if !unused.is_empty() {
            return Err(load_error(format!(
                "{}: unexpected tensors for this config: {}",
                ck.path().display(),
                unused.join(", ")
            )));
        }
        if config.audio().output_dim != dims.hidden {
            return Err(load_error(format!(
                "{}: audio_config.output_dim {} does not match text_config.hidden_size {}",
                dir.display(),
                config.audio().output_dim,
                dims.hidden
            )));
        }
        let id = |t: &str| {
            tokenizer.token_id(t).ok_or_else(|| {
                load_error(format!("{}: the tokenizer has no `{t}` token", dir.join("tokenizer_config.json").display()))
            })
        };
        let stop_ids = vec![id("<|im_end|>")?, id("<|endoftext|>")?];
        let audio_pad = config.thinker_config.audio_token_id;
        if tokenizer.token_id("<|audio_pad|>") != Some(audio_pad) {
            return Err(load_error(format!(
                "{}: thinker_config.audio_token_id {audio_pad} is not the tokenizer's `<|audio_pad|>`",
                dir.display()
            )));
        }
        id("<|audio_start|>")?;
        id("<|audio_end|>")?;
        let cache = decoder.new_cache(max_slots, INITIAL_TOKENS_PER_SLOT)?;
        Ok(Qwen3Asr {
            mel: MelFrontend::new(&preprocessor),
            config,
            preprocessor,
            encoder,
            embed_tokens,
            lm_head,
            decoder,
            tokenizer,
            cx,
            stop_ids,
            audio_pad,
            slots: (0..max_slots).map(|_| None).collect(),
            cache,
            times: AsrTimes::default(),
        })
    }

    /// Quantizes the text decoder's projections (`recipe.body()`) and its head
    /// (`recipe.head()`; a head tied to the embedding gets a quantized copy, the lookups keep
    /// the stored table). The audio encoder runs many-row products and stays as stored. Load
    /// time, CPU only.
    pub fn quantize(&mut self, recipe: Quantization, cache: &mut QuantCache) -> Result<()> {
        if recipe == Quantization::None {
            return Ok(());
        }
        only_on_cpu(&self.cx)?;
        self.decoder.quantize(cache, |_| recipe.body());
        let mut head = self.lm_head.take().unwrap_or_else(|| self.embed_tokens.clone());
        cache.quantize(&mut head, recipe.head(), "thinker.lm_head.weight");
        self.lm_head = Some(head);
        Ok(())
    }

    /// Bytes of weights one decode token reads: the text decoder and the output head.
    pub fn decode_weight_bytes(&self) -> usize {
        self.decoder.weight_bytes() + self.lm_head.as_ref().unwrap_or(&self.embed_tokens).bytes()
    }

    pub fn compute(&self) -> &Compute {
        &self.cx
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Log-mel features of one mono clip at the model's rate, exactly as the official
    /// processor (no splitting, no normalisation): `[T, n_mels]`.
    pub fn mel_features(&self, clip: &[f32]) -> AsrFeatures {
        if clip.len() < self.mel.min_samples() {
            // Too short for the centred STFT (the official code raises here): zero-padded.
            let mut c = clip.to_vec();
            c.resize(
                ((MIN_PASS_SECONDS * self.preprocessor.sampling_rate as f64) as usize).max(self.mel.min_samples()),
                0.0,
            );
            return self.mel.features(&c);
        }
        self.mel.features(clip)
    }

    /// Prompt embeddings with the audio rows spliced in at the pad positions, in order.
    pub fn embed_prompt(&self, ids: &[u32], audio: &Tensor) -> Result<Tensor> {
        let mut x = self.cx.embedding(&self.embed_tokens, ids)?;
        let pads: Vec<usize> = (0..ids.len()).filter(|&i| ids[i] == self.audio_pad).collect();
        if pads.len() != audio.rows() {
            return Err(Error::internal(format!("{} audio embeddings for {} pads", audio.rows(), pads.len())));
        }
        self.cx.set_rows(&mut x, &pads, audio);
        Ok(x)
    }

    /// Logits `[rows, vocab]` of post-norm hidden states.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        self.cx.linear(hidden, self.lm_head.as_ref().unwrap_or(&self.embed_tokens), None)
    }

    /// Encodes passes and prefills their prompts into the given cache slots (emptied first);
    /// returns the logits of each prompt's last position.
    pub fn prefill_passes(&mut self, passes: &[(&[f32], &[u32], &[u32])], slots: &[usize]) -> Result<Tensor> {
        let cx = self.cx.clone();
        // 1. The audio encoder over every pass at once.
        crate::seams::stop::check()?;
        let t0 = Instant::now();
        let mels: Vec<&[f32]> = passes.iter().map(|p| p.0).collect();
        let audio = self.encoder.forward(&mels);
        let t1 = Instant::now();
        crate::seams::stop::check()?;
        // 2. Each prompt with its audio spliced in.
        let mut spans = Vec::with_capacity(passes.len());
        let mut embeds = Vec::with_capacity(passes.len());
        for (((_, prefix, suffix), a), &slot) in passes.iter().zip(&audio).zip(slots) {
            let ids = self.prompt_ids(prefix, suffix, a.rows());
            embeds.push(self.embed_prompt(&ids, a)?);
            spans.push(SeqRows { slot, rows: ids.len() });
            self.cache.clear(slot);
        }
        // 3. The decoder over all prompts; each prompt's last row gives its first logits.
        let x = cx.concat_rows(&embeds.iter().collect::<Vec<_>>());
        let hidden = self.decoder.forward(x, &mut self.cache, &spans, None)?;
        let mut end = 0;
        let last: Vec<Option<usize>> = spans
            .iter()
            .map(|s| {
                end += s.rows;
                Some(end - 1)
            })
            .collect();
        let logits = self.logits(&cx.gather_rows(&hidden, &last));
        self.times.encoder += t1 - t0;
        self.times.prefill += t1.elapsed();
        self.times.prompt_tokens += spans.iter().map(|s| s.rows).sum::<usize>() as u64;
        Ok(logits)
    }

    /// Feeds one token per slot; returns the next logits `[n, vocab]`.
    pub fn decode_tokens(&mut self, tokens: &[u32], slots: &[usize]) -> Result<Tensor> {
        let t0 = Instant::now();
        let x = self.cx.embedding(&self.embed_tokens, tokens)?;
        let spans: Vec<SeqRows> = slots.iter().map(|&slot| SeqRows { slot, rows: 1 }).collect();
        let hidden = self.decoder.forward(x, &mut self.cache, &spans, None)?;
        let logits = self.logits(&hidden);
        self.times.decode += t0.elapsed();
        self.times.decode_steps += 1;
        Ok(logits)
    }

    /// Ends a slot's current pass: parses its text, and starts the next pass if there is one.
    /// Returns true when the slot has no pass left.
    fn end_pass(&mut self, slot: usize) -> Result<bool> {
        let s = self.slots[slot].as_mut().expect("ending a pass of a busy slot");
        let raw = self.tokenizer.decode_skip_special(&s.generated)?;
        s.done.push(asr_output::parse_asr_output(&raw, s.forced_language.as_deref()));
        s.generated.clear();
        let Some(pass) = s.pending.pop_front() else { return Ok(true) };
        let (prefix, suffix) = (s.prefix.clone(), s.suffix.clone());
        let logits = self.prefill_passes(&[(&pass.data, &prefix, &suffix)], &[slot])?;
        let s = self.slots[slot].as_mut().expect("busy slot");
        s.next = self.cx.argmax(&logits)[0];
        Ok(false)
    }
}

/// Greedy choice: the first largest logit, as `torch.argmax`.
pub use crate::backend::sampling::argmax;

impl AsrModel for Qwen3Asr {
    fn max_slots(&self) -> usize {
        self.slots.len()
    }

    fn sample_rate(&self) -> u32 {
        self.preprocessor.sampling_rate
    }

    fn auto_max_new_tokens(&self, seconds: f64) -> u32 {
        auto_cap_tokens(seconds.min(MAX_PASS_SECONDS + SPLIT_SEARCH_SECONDS))
    }

    fn frontend(&mut self, clips: &[&[f32]]) -> Result<Vec<AsrFeatures>> {
        let t0 = Instant::now();
        let rate = self.sample_rate();
        let out = clips
            .iter()
            .map(|clip| {
                let mut wav = clip.to_vec();
                normalize_range(&mut wav);
                let pieces = split_for_passes(&wav, rate, MAX_PASS_SECONDS);
                let mut all = AsrFeatures { data: Vec::new(), frames: 0, bins: self.mel.n_mels(), passes: Vec::new() };
                for p in &pieces {
                    let f = self.mel_features(p);
                    all.data.extend_from_slice(&f.data);
                    all.frames += f.frames;
                    all.passes.push(f.frames);
                }
                all
            })
            .collect();
        self.times.frontend += t0.elapsed();
        Ok(out)
    }

    fn prefill(&mut self, seqs: &[AsrPrefill<'_>]) -> Vec<Result<()>> {
        let mut results: Vec<Result<()>> = Vec::with_capacity(seqs.len());
        let mut ready = Vec::new();
        for (i, s) in seqs.iter().enumerate() {
            let built = (|| {
                let f = s.features;
                if f.bins != self.mel.n_mels() || f.data.len() != f.frames * f.bins || f.frames == 0 {
                    return Err(Error::invalid("ASR features do not match this model's front-end"));
                }
                let forced = s.request.language.as_deref().filter(|l| !l.trim().is_empty());
                let forced = forced.map(|l| self.check_language(l)).transpose()?;
                let (prefix, suffix) = self.prompt_parts(s.request.context.as_deref(), forced.as_deref())?;
                let lens: Vec<usize> = if f.passes.is_empty() { vec![f.frames] } else { f.passes.clone() };
                if lens.iter().sum::<usize>() != f.frames {
                    return Err(Error::invalid("ASR feature passes do not add up to the frames"));
                }
                let mut pending = VecDeque::new();
                let mut at = 0;
                for n in lens {
                    pending.push_back(PassFeatures { data: f.data[at * f.bins..(at + n) * f.bins].to_vec() });
                    at += n;
                }
                Ok((prefix, suffix, forced, pending))
            })();
            match built {
                Ok(b) => {
                    ready.push((i, b));
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if ready.is_empty() {
            return results;
        }
        let mut firsts: Vec<PassFeatures> = Vec::with_capacity(ready.len());
        for (_, b) in ready.iter_mut() {
            firsts.push(b.3.pop_front().expect("at least one pass"));
        }
        let passes: Vec<(&[f32], &[u32], &[u32])> =
            ready.iter().zip(&firsts).map(|((_, b), p)| (p.data.as_slice(), b.0.as_slice(), b.1.as_slice())).collect();
        let slots: Vec<usize> = ready.iter().map(|(i, _)| seqs[*i].slot).collect();
        let logits = self.prefill_passes(&passes, &slots);
        drop(passes);
        match logits {
            Ok(logits) => {
                let next = self.cx.argmax(&logits);
                for (k, (i, (prefix, suffix, forced, pending))) in ready.into_iter().enumerate() {
                    self.slots[seqs[i].slot] = Some(Slot {
                        pending,
                        prefix,
                        suffix,
                        forced_language: forced,
                        next: next[k],
                        generated: Vec::new(),
                        cap: seqs[i].max_new_tokens.max(1),
                        done: Vec::new(),
                        truncated: false,
                    });
                }
            }
            Err(e) => {
                for (i, _) in ready {
                    results[i] = Err(e.clone());
                    self.cache.clear(seqs[i].slot);
                }
            }
        }
        results
    }

    fn step(&mut self, slots: &[usize]) -> Result<Vec<AsrStep>> {
        let mut out = vec![AsrStep { token: None, finish: None }; slots.len()];
        // Per slot, the pending token either ends the pass (a stop id; or, once emitted, the cap
        // or a runaway loop: those make the job TRUNCATED) or is emitted and fed back.
        let mut feed: Vec<usize> = Vec::new();
        for (i, &slot) in slots.iter().enumerate() {
            let s = self.slots[slot].as_mut().expect("stepping a busy slot");
            let tok = s.next;
            let pass_over = if self.stop_ids.contains(&tok) {
                Some(false)
            } else {
                s.generated.push(tok);
                out[i].token = Some(tok);
                (s.generated.len() as u32 >= s.cap).then_some(true)
            };
            let pass_over = pass_over.or_else(|| {
                let generated = &self.slots[slot].as_ref().expect("busy slot").generated;
                self.runaway(generated).then(|| {
                    log::warn!("asr: stopping a runaway repetition after {} tokens", generated.len());
                    true
                })
            });
            match pass_over {
                None => feed.push(i),
                Some(truncated) => {
                    self.slots[slot].as_mut().unwrap().truncated |= truncated;
                    if self.end_pass(slot)? {
                        let s = self.slots[slot].as_ref().unwrap();
                        out[i].finish = Some(if s.truncated { Finish::Cap } else { Finish::Eos });
                    }
                }
            }
        }
        if feed.is_empty() {
            return Ok(out);
        }
        let tokens: Vec<u32> = feed.iter().map(|&i| self.slots[slots[i]].as_ref().unwrap().next).collect();
        let fed: Vec<usize> = feed.iter().map(|&i| slots[i]).collect();
        // The decoder's step and the greedy choice: a recorded region keyed by the slots (a GPU
        // replays it as one graph until its attention's launches change with the context).
        let cx = self.cx.clone();
        let mut picked = None;
        cx.recorded(crate::models::region_key("asr_decoder", &fed), &[], &mut |_| {
            let logits = self.decode_tokens(&tokens, &fed)?;
            picked = Some(cx.argmax_ids(&logits));
            Ok(())
        })?;
        let next = cx.read_ids(&[&picked.expect("the region ran")]).pop().expect("one vector");
        for (&slot, next) in fed.iter().zip(next) {
            self.slots[slot].as_mut().expect("busy slot").next = next;
        }
        Ok(out)
    }

    fn transcript(&self, slot: usize) -> Transcript {
        let Some(s) = self.slots[slot].as_ref() else { return Transcript::default() };
        let mut texts: Vec<String> = s.done.iter().map(|(_, t)| t.clone()).collect();
        let mut langs: Vec<String> = s.done.iter().map(|(l, _)| l.clone()).collect();
        if !s.generated.is_empty() {
            // A pass still running: its text so far.
            if let Ok(raw) = self.tokenizer.decode_skip_special(&s.generated) {
                let (l, t) = asr_output::parse_asr_output(&raw, s.forced_language.as_deref());
                texts.push(t);
                langs.push(l);
            }
        }
        Transcript { language: asr_output::merge_languages(&langs), text: texts.concat() }
    }

    fn release(&mut self, slot: usize) {
        self.slots[slot] = None;
        self.cache.clear(slot);
    }
}
