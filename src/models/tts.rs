//! Qwen3-TTS (12 Hz) frame generation: the talker and code-predictor step loop and the official
//! sampling chain, behind the engine's step-based `TtsModel` seam (prompts: `tts_prompt`).
//!
//! Per frame k (spec §2.7, §4.2): the code predictor turns the talker's last post-norm hidden
//! state and the pending c0 into c1..c15; frame k = [c0, c1..c15] is emitted; the talker then
//! consumes `C(c0) + Σ cp_embed[j](c_{j+1}) + text_track[k]` and its logits give the next c0.

use std::path::Path;

use crate::backend::{Compute, Ids, KvCache, Pick, Quantization, Rng, SamplingParams, Tensor};
use crate::error::{Error, ErrorKind, Result};
use crate::models::code_predictor::{CodePredictor, CodeSampling};
use crate::models::quant_cache::QuantCache;
use crate::models::qwen3::SeqRows;
use crate::models::talker::Talker;
use crate::models::tokenizer::{SplitRegex, TextTokenizer};
use crate::models::tts_config::{GenerationConfig, TtsConfig, TtsKind};
pub use crate::models::tts_prompt::{
    CodecRow, FRAME_RATE, Prompt, PromptInput, PromptRow, VoicePrompt, auto_cap_frames, build_prompt,
    instruct_template, reference_template, target_template,
};
use crate::models::weights::{Checkpoint, only_on_cpu};
use crate::seams::request::TtsRequest;
use crate::seams::voice::{Voice, VoiceSpec};
use crate::seams::{Finish, TtsModel, TtsPrefill, TtsStep};

/// Talker cache tokens each slot holds from the start (the pool grows past it as needed; the
/// pages of unused blocks are not touched).
const INITIAL_TOKENS_PER_SLOT: usize = 256;

/// A sequence ready to prefill: its slot, prompt rows, trailing text rows, cap and sampling.
struct PrefillSeq {
    slot: usize,
    prompt: Tensor,
    trailing: Tensor,
    cap: u32,
    talker: SamplingParams,
    predictor: SamplingParams,
    rng: Rng,
}

/// One sequence being generated (its keys and values live in the model's caches, same slot).
struct Slot {
    /// Text-track rows for decode steps (then `tts_pad`).
    trailing: Tensor,
    /// Decode steps done (the official `generation_step`).
    step: usize,
    /// The sampled c0 waiting for its acoustic codes.
    c0: u32,
    /// The talker's post-norm hidden state after the last forward (one row).
    hidden: Tensor,
    /// Every c0 sampled so far (repetition penalty, min-new-tokens).
    generated: Vec<u32>,
    cap: u32,
    talker: SamplingParams,
    predictor: SamplingParams,
    rng: Rng,
}

/// Time spent in each half of the decode steps so far (for benchmarks). On a GPU the predictor's
/// passes are only queued when the talker's begin, so the split is the device's only with
/// `split`, which waits for the device between the two (one wait more a frame).
#[derive(Clone, Copy, Debug, Default)]
pub struct StepTimes {
    pub steps: u64,
    pub predictor: std::time::Duration,
    pub talker: std::time::Duration,
    pub split: bool,
}

/// A loaded Qwen3-TTS checkpoint (talker + code predictor) with its slots.
pub struct Qwen3Tts {
    pub config: TtsConfig,
    pub generation: GenerationConfig,
    tokenizer: TextTokenizer,
    cx: Compute,
    pub talker: Talker,
    pub predictor: CodePredictor,
    /// `T(tts_pad)`, the text track once the text is used up.
    pad_row: Tensor,
    slots: Vec<Option<Slot>>,
    /// The talker's keys and values, a slot per sequence slot.
    cache: KvCache,
    /// The code predictor's, emptied every frame.
    predictor_cache: KvCache,
    pub times: StepTimes,
    /// Base checkpoints: what their voices look like (`models::voice::voice_spec`: the
    /// checkpoint's fingerprint, x-vector and frame widths, codebook).
    pub voice: Option<VoiceSpec>,
}

impl Qwen3Tts {
    /// Loads `config.json`, `generation_config.json`, the tokenizer and `model.safetensors`.
    pub fn load(dir: &Path, cx: impl Into<Compute>, max_slots: usize) -> Result<Qwen3Tts> {
        let cx = cx.into();
        let config = TtsConfig::load(dir)?;
        let generation = GenerationConfig::load(dir)?;
        let tokenizer = TextTokenizer::from_dir_with(dir, SplitRegex::for_checkpoint(dir)?)?;
        let mut ck = Checkpoint::open(&dir.join("model.safetensors"))?.resident_on(&cx);
        let voice = match config.kind() {
            TtsKind::Base => Some(crate::models::voice::voice_spec(dir, &config, &ck)?),
            _ => None,
        };
        let talker = Talker::load(&cx, &mut ck, &config)?;
        let predictor = CodePredictor::load(&cx, &mut ck, &config)?;
        let unused: Vec<String> = ck
            .remaining()
            .into_iter()
            .filter(|n| !n.starts_with(crate::models::voice::SPEAKER_ENCODER_PREFIX))
            .collect();
        if !unused.is_empty() {
            return Err(Error::new(
                ErrorKind::ModelLoad,
                format!("{}: unexpected tensors for this config: {}", ck.path().display(), unused.join(", ")),
            ));
        }
        let pad_row = talker.text(&[config.tts_pad_token_id])?;
        let cache = talker.decoder.new_cache(max_slots, INITIAL_TOKENS_PER_SLOT)?;
        let predictor_cache = predictor.new_cache(max_slots)?;
        Ok(Qwen3Tts {
            config,
            generation,
            tokenizer,
            cx,
            talker,
            predictor,
            pad_row,
            slots: (0..max_slots).map(|_| None).collect(),
            cache,
            predictor_cache,
            times: StepTimes::default(),
            voice,
        })
    }

    /// Quantizes the talker and the code predictor by `recipe` (the codec stays f32), through
    /// `cache`: load time, CPU only (`models::weights::only_on_cpu`).
    pub fn quantize(&mut self, recipe: Quantization, cache: &mut QuantCache) -> Result<()> {
        if recipe == Quantization::None {
            return Ok(());
        }
        only_on_cpu(&self.cx)?;
        self.talker.quantize(recipe, cache);
        self.predictor.quantize(recipe, cache);
        Ok(())
    }

    pub fn compute(&self) -> &Compute {
        &self.cx
    }

    /// Applies the official API's rules to a request: default language, speaker and instruct
    /// handling per checkpoint kind, layout choice.
    pub fn prompt_input(&self, r: &TtsRequest) -> Result<PromptInput> {
        let kind = self.config.kind();
        let language = r.language.as_deref().unwrap_or("auto").to_lowercase();
        if !self.config.languages().contains(&language) {
            return Err(Error::invalid(format!(
                "language `{language}` is not supported by this model (supported: {})",
                self.config.languages().join(", ")
            )));
        }
        let speaker = match kind {
            TtsKind::CustomVoice => Some(
                r.speaker
                    .as_deref()
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "this CustomVoice model needs a speaker (one of: {})",
                            self.config.speakers().join(", ")
                        ))
                    })?
                    .to_lowercase(),
            ),
            TtsKind::VoiceDesign => None,
            TtsKind::Base => None,
        };
        let voice = match (kind, r.voice.as_deref()) {
            (TtsKind::Base, Some(v)) => Some(self.voice_prompt(v)?),
            (TtsKind::Base, None) => {
                return Err(Error::invalid(
                    "this Base checkpoint clones a voice: the request needs one (made from reference audio)",
                ));
            }
            (_, Some(_)) => {
                return Err(Error::invalid(
                    "only Base checkpoints take a cloned voice; this one has built-in speakers or a voice description",
                ));
            }
            (_, None) => None,
        };
        if kind == TtsKind::Base && r.instruct.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(Error::invalid("Base checkpoints take no instruction (the voice comes from the reference)"));
        }
        // The official API drops instruct on 0.6B CustomVoice (`tts_model_size in "0b6"`).
        let instruct = match (kind, r.instruct.as_deref()) {
            (TtsKind::CustomVoice, _) if "0b6".contains(self.config.tts_model_size.as_str()) => None,
            (_, Some(s)) if !s.is_empty() => Some(s),
            _ => None,
        };
        let input_ids = self.tokenizer.encode(&target_template(&r.text))?;
        let instruct_ids = instruct.map(|s| self.tokenizer.encode(&instruct_template(s))).transpose()?;
        Ok(PromptInput { input_ids, instruct_ids, language, speaker, non_streaming: !r.text_streaming, voice })
    }

    /// Checks that a voice belongs to this checkpoint and fits it; its part of the prompt.
    fn voice_prompt(&self, v: &Voice) -> Result<VoicePrompt> {
        self.voice.as_ref().expect("Base checkpoints have a voice spec").check(v)?;
        let reference = match &v.reference {
            None => None,
            Some(r) => Some((self.tokenizer.encode(&reference_template(&r.text))?, r.codes.len())),
        };
        Ok(VoicePrompt { reference })
    }

    /// The prompt rows' embeddings `[L, H]` and the trailing text-track rows; `voice` supplies
    /// the speaker and reference rows of a cloned voice's prompt.
    pub fn embed_prompt(&self, prompt: &Prompt, voice: Option<&Voice>) -> Result<(Tensor, Tensor)> {
        let cx = &self.cx;
        // 1. The text track's rows, and every kind of codec row: ids through the codec
        //    embedding, the x-vector as it is, reference frames as their 16 codes' embeddings.
        let text_ids: Vec<u32> = prompt.rows.iter().filter_map(|r| r.text).collect();
        let text = self.talker.text(&text_ids)?;
        let codec_rows: Vec<CodecRow> = prompt.rows.iter().filter_map(|r| r.codec).collect();
        let ids: Vec<u32> =
            codec_rows.iter().filter_map(|c| if let CodecRow::Id(i) = c { Some(*i) } else { None }).collect();
        let mut parts = vec![self.talker.codec(&ids)?];
        let needs_voice = || Error::internal("a cloned voice's prompt was embedded without its voice");
        if codec_rows.contains(&CodecRow::Speaker) {
            let v = voice.ok_or_else(needs_voice)?;
            parts.push(cx.upload(&v.xvector, 1, v.xvector.len()));
        }
        if codec_rows.iter().any(|c| matches!(c, CodecRow::Reference(_))) {
            let r = voice.and_then(|v| v.reference.as_ref()).ok_or_else(needs_voice)?;
            parts.push(self.reference_rows(&r.codes)?);
        }
        let (speaker_at, reference_at) = (ids.len(), ids.len() + usize::from(codec_rows.contains(&CodecRow::Speaker)));
        let mut next_id = 0;
        let codec_at: Vec<Option<usize>> = codec_rows
            .iter()
            .map(|c| {
                Some(match c {
                    CodecRow::Id(_) => {
                        next_id += 1;
                        next_id - 1
                    }
                    CodecRow::Speaker => speaker_at,
                    CodecRow::Reference(f) => reference_at + f,
                })
            })
            .collect();
        let codec = cx.gather_rows(&cx.concat_rows(&parts.iter().collect::<Vec<_>>()), &codec_at);
        // 2. Row i = its text row (or zeros) + its codec row (if any).
        let mut ti = 0;
        let text_at: Vec<Option<usize>> = prompt
            .rows
            .iter()
            .map(|r| {
                r.text.map(|_| {
                    ti += 1;
                    ti - 1
                })
            })
            .collect();
        let rows_with_codec: Vec<usize> = (0..prompt.rows.len()).filter(|&i| prompt.rows[i].codec.is_some()).collect();
        let mut x = cx.gather_rows(&text, &text_at);
        cx.add_rows(&mut x, &rows_with_codec, &codec);
        let trailing = self.talker.text(&prompt.trailing)?;
        Ok((x, trailing))
    }

    /// Reference frames as the talker reads generated ones: `C(c0) + Σ_j cp_embed[j](c_{j+1})`.
    pub fn reference_rows(&self, codes: &[Vec<u32>]) -> Result<Tensor> {
        let column = |j: usize| -> Vec<u32> { codes.iter().map(|f| f[j]).collect() };
        let mut x = self.talker.codec(&column(0))?;
        for j in 1..self.config.talker_config.decoder.num_code_groups {
            self.cx.add(&mut x, &self.predictor.embed_host(j - 1, &column(j))?);
        }
        Ok(x)
    }

    fn params(&self, r: &TtsRequest) -> (SamplingParams, SamplingParams) {
        let g = &self.generation;
        let s = &r.sampling;
        let talker = SamplingParams {
            do_sample: g.do_sample && !s.greedy,
            temperature: s.temperature.unwrap_or(g.temperature),
            top_k: s.top_k.unwrap_or(g.top_k),
            top_p: s.top_p.unwrap_or(g.top_p),
            repetition_penalty: s.repetition_penalty.unwrap_or(g.repetition_penalty),
        };
        let predictor = SamplingParams {
            do_sample: g.subtalker_dosample && !s.greedy,
            temperature: g.subtalker_temperature,
            top_k: g.subtalker_top_k,
            top_p: g.subtalker_top_p,
            repetition_penalty: 1.0,
        };
        (talker, predictor)
    }

    /// Ids the talker may not emit at this step: the top 1024 ids but EOS (suppression), and EOS
    /// itself before two frames (min_new_tokens = 2).
    fn barred(&self, generated: usize) -> Vec<std::ops::Range<u32>> {
        let t = &self.config.talker_config;
        let (eos, vocab) = (t.codec_eos_token_id, t.decoder.vocab_size as u32);
        let start = vocab.saturating_sub(1024);
        let mut r = Vec::with_capacity(3);
        if (start..vocab).contains(&eos) {
            r.extend([start..eos, eos + 1..vocab]);
        } else {
            r.push(start..vocab);
        }
        if generated < 2 {
            r.push(eos..eos + 1);
        }
        r
    }

    /// The official talker logits processors (repetition penalty, min-new-tokens, suppression),
    /// then selection, for each row of `logits`.
    fn choose_c0(&self, logits: &Tensor, seqs: &mut [(&[u32], &SamplingParams, &mut Rng)]) -> Ids {
        let barred: Vec<Vec<std::ops::Range<u32>>> = seqs.iter().map(|(g, _, _)| self.barred(g.len())).collect();
        let mut picks: Vec<Pick<'_>> = seqs
            .iter_mut()
            .zip(&barred)
            .map(|((seen, params, rng), suppress)| Pick { params, seen, suppress, rng })
            .collect();
        self.cx.sample_ids(logits, &mut picks)
    }

    /// Prefills sequences (rows grouped per slot), samples each one's first c0.
    fn prefill_slots(&mut self, seqs: Vec<PrefillSeq>) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let cx = self.cx.clone();
        // 1. All prompts through the talker at once, each into its slot.
        let spans: Vec<SeqRows> = seqs.iter().map(|s| SeqRows { slot: s.slot, rows: s.prompt.rows() }).collect();
        for s in &spans {
            self.cache.clear(s.slot);
        }
        let prompts: Vec<&Tensor> = seqs.iter().map(|s| &s.prompt).collect();
        let hidden = self.talker.forward(cx.concat_rows(&prompts), &mut self.cache, &spans, None);
        let hidden = match hidden {
            Ok(h) => h,
            Err(e) => {
                spans.iter().for_each(|s| self.cache.clear(s.slot));
                return Err(e);
            }
        };
        // 2. Each prompt's last row gives its first c0.
        let mut end = 0;
        let last_rows: Vec<Option<usize>> = spans
            .iter()
            .map(|s| {
                end += s.rows;
                Some(end - 1)
            })
            .collect();
        let last = cx.gather_rows(&hidden, &last_rows);
        let logits = self.talker.logits(&last);
        let mut rngs: Vec<Rng> = seqs.iter().map(|s| s.rng.clone()).collect();
        let c0s = {
            let mut choose: Vec<(&[u32], &SamplingParams, &mut Rng)> =
                seqs.iter().zip(rngs.iter_mut()).map(|(s, rng)| (&[][..], &s.talker, rng)).collect();
            let ids = self.choose_c0(&logits, &mut choose);
            cx.read_ids(&[&ids]).pop().expect("one vector")
        };
        for (i, ((s, rng), c0)) in seqs.into_iter().zip(rngs).zip(c0s).enumerate() {
            self.slots[s.slot] = Some(Slot {
                trailing: s.trailing,
                step: 0,
                c0,
                hidden: cx.slice_rows(&last, i, 1),
                generated: vec![c0],
                cap: s.cap,
                talker: s.talker,
                predictor: s.predictor,
                rng,
            });
        }
        Ok(())
    }

    /// One frame for each of `seqs` (in cache slots `slots`): returns the frames and leaves each
    /// sequence with its next c0 and hidden state.
    fn step_seqs(&mut self, cx: &Compute, slots: &[usize], seqs: &mut [Slot]) -> Result<Vec<Vec<u32>>> {
        // 1. Code predictor: c1..c15 for every sequence's pending c0.
        let t0 = std::time::Instant::now();
        let hiddens: Vec<&Tensor> = seqs.iter().map(|s| &s.hidden).collect();
        let hidden = cx.concat_rows(&hiddens);
        let c0s: Vec<u32> = seqs.iter().map(|s| s.c0).collect();
        let c0_embed = self.talker.codec(&c0s)?;
        let codes = {
            let mut sampling: Vec<CodeSampling<'_>> =
                seqs.iter_mut().map(|s| CodeSampling { params: &s.predictor, rng: &mut s.rng }).collect();
            self.predictor.predict(&hidden, &c0_embed, &mut self.predictor_cache, slots, &mut sampling, None)?
        };
        if self.times.split {
            cx.synchronize();
        }
        let t1 = std::time::Instant::now();

        // 2. Talker input: the sum of the frame's 16 code embeddings plus the text track.
        let mut x = c0_embed;
        for (j, ids) in codes.iter().enumerate() {
            cx.add(&mut x, &self.predictor.embed(j, ids)?);
        }
        let text: Vec<Tensor> =
            seqs.iter()
                .map(|s| {
                    if s.step < s.trailing.rows() {
                        cx.slice_rows(&s.trailing, s.step, 1)
                    } else {
                        self.pad_row.clone()
                    }
                })
                .collect();
        cx.add(&mut x, &cx.concat_rows(&text.iter().collect::<Vec<_>>()));

        // 3. The talker's step and the next c0 (a recorded region, keyed by the slots: a GPU
        //    replays it as one graph until its attention's launches change with the context);
        //    then the frame's codes and the next c0s are read back together (on a GPU, the
        //    frame's one wait).
        let spans: Vec<SeqRows> = slots.iter().map(|&slot| SeqRows { slot, rows: 1 }).collect();
        let mut stepped = None;
        cx.recorded(crate::models::region_key("talker", slots), &[&x], &mut |x| {
            let hidden = self.talker.forward(x[0].clone(), &mut self.cache, &spans, None)?;
            let logits = self.talker.logits(&hidden);
            let mut choose: Vec<(&[u32], &SamplingParams, &mut Rng)> =
                seqs.iter_mut().map(|s| (&s.generated[..], &s.talker, &mut s.rng)).collect();
            stepped = Some((hidden, self.choose_c0(&logits, &mut choose)));
            Ok(())
        })?;
        let (hidden, next) = stepped.expect("the region ran");
        let mut all: Vec<&Ids> = codes.iter().collect();
        all.push(&next);
        let mut read = cx.read_ids(&all);
        let next = read.pop().expect("the next c0s");
        let codes: Vec<Vec<u32>> = (0..seqs.len()).map(|b| read.iter().map(|c| c[b]).collect()).collect();
        self.times.steps += 1;
        self.times.predictor += t1 - t0;
        self.times.talker += t1.elapsed();
        let mut frames = Vec::with_capacity(seqs.len());
        for (b, (s, c)) in seqs.iter_mut().zip(codes).enumerate() {
            let mut frame = Vec::with_capacity(c.len() + 1);
            frame.push(s.c0);
            frame.extend(c);
            frames.push(frame);
            s.generated.push(next[b]);
            s.c0 = next[b];
            s.step += 1;
            s.hidden = cx.slice_rows(&hidden, b, 1);
        }
        Ok(frames)
    }
}

fn fresh_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    t ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
}

impl TtsModel for Qwen3Tts {
    fn max_slots(&self) -> usize {
        self.slots.len()
    }

    fn auto_max_new_tokens(&self, request: &TtsRequest) -> u32 {
        auto_cap_frames(&request.text)
    }

    fn prefill(&mut self, seqs: &[TtsPrefill<'_>]) -> Vec<Result<()>> {
        // Build each prompt; a bad request fails only its own sequence.
        let mut results: Vec<Result<()>> = Vec::with_capacity(seqs.len());
        let mut ready = Vec::new();
        let mut ready_idx = Vec::new();
        for (i, s) in seqs.iter().enumerate() {
            let built = (|| {
                let input = self.prompt_input(s.request)?;
                let prompt = build_prompt(&self.config, &input)?;
                let (x, trailing) = self.embed_prompt(&prompt, s.request.voice.as_deref())?;
                let (talker, predictor) = self.params(s.request);
                let rng = Rng::new(s.request.sampling.seed.unwrap_or_else(fresh_seed));
                Ok(PrefillSeq {
                    slot: s.slot,
                    prompt: x,
                    trailing,
                    cap: s.max_new_tokens.max(1),
                    talker,
                    predictor,
                    rng,
                })
            })();
            match built {
                Ok(r) => {
                    ready.push(r);
                    ready_idx.push(i);
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if let Err(e) = self.prefill_slots(ready) {
            for i in ready_idx {
                results[i] = Err(e.clone());
            }
        }
        results
    }

    fn step(&mut self, slots: &[usize]) -> Result<Vec<TtsStep>> {
        let cx = self.cx.clone();
        let eos = self.config.talker_config.codec_eos_token_id;
        let mut out: Vec<TtsStep> = vec![TtsStep { frame: None, finish: None }; slots.len()];
        // A cap of 1 allows no frame at all (the one sampled c0 never gets codes).
        let active: Vec<usize> = (0..slots.len())
            .filter(|&i| {
                let s = self.slots[slots[i]].as_ref().expect("stepping a busy slot");
                if s.generated.len() as u32 >= s.cap {
                    out[i].finish = Some(Finish::Cap);
                    false
                } else {
                    true
                }
            })
            .collect();
        if active.is_empty() {
            return Ok(out);
        }
        let ids: Vec<usize> = active.iter().map(|&i| slots[i]).collect();
        let mut seqs: Vec<Slot> = ids.iter().map(|&slot| self.slots[slot].take().unwrap()).collect();
        let result = self.step_seqs(&cx, &ids, &mut seqs);
        for (&slot, s) in ids.iter().zip(seqs) {
            self.slots[slot] = Some(s);
        }
        for (b, frame) in result?.into_iter().enumerate() {
            let i = active[b];
            let s = self.slots[ids[b]].as_ref().expect("busy slot");
            out[i].frame = Some(frame);
            if s.c0 == eos {
                out[i].finish = Some(Finish::Eos);
            } else if s.generated.len() as u32 >= s.cap {
                out[i].finish = Some(Finish::Cap);
            }
        }
        Ok(out)
    }

    fn release(&mut self, slot: usize) {
        self.slots[slot] = None;
        self.cache.clear(slot);
        self.predictor_cache.clear(slot);
    }
}
