//! Qwen3-TTS (12 Hz) frame generation: prompt construction, the talker and code-predictor step
//! loop, and the official sampling chain, behind the engine's step-based `TtsModel` seam.
//!
//! Per frame k (spec §2.7, §4.2): the code predictor turns the talker's last post-norm hidden
//! state and the pending c0 into c1..c15; frame k = [c0, c1..c15] is emitted; the talker then
//! consumes `C(c0) + Σ cp_embed[j](c_{j+1}) + text_track[k]` and its logits give the next c0.

use std::path::Path;
use std::sync::Arc;

use crate::backend::{Cpu, Tensor};
use crate::engine::model::{Finish, TtsModel, TtsPrefill, TtsStep};
use crate::engine::request::TtsRequest;
use crate::error::{Error, ErrorKind, Result};
use crate::models::code_predictor::CodePredictor;
use crate::models::qwen3::{KvCache, SeqRows};
use crate::models::sampling::{self, Rng, SamplingParams};
use crate::models::talker::Talker;
use crate::models::tokenizer::{SplitRegex, TextTokenizer};
use crate::models::tts_config::{Dialect, GenerationConfig, TtsConfig, TtsKind};
use crate::models::weights::Checkpoint;

/// Frames per second of the 12 Hz codec (80 ms frames).
pub const FRAME_RATE: f32 = 12.5;

/// One prompt row: a text-track token and/or a codec-track token, summed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PromptRow {
    pub text: Option<u32>,
    pub codec: Option<u32>,
}

/// The prefill rows and the text-track tokens fed one per decode step (then `tts_pad`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub rows: Vec<PromptRow>,
    pub trailing: Vec<u32>,
}

/// What the prompt is built from, after the official API's defaults and rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptInput {
    /// Ids of `<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n`.
    pub input_ids: Vec<u32>,
    /// Ids of `<|im_start|>user\n{instruct}<|im_end|>\n`, when an instruction applies.
    pub instruct_ids: Option<Vec<u32>>,
    /// Lower-case language name, or "auto".
    pub language: String,
    /// Lower-case speaker name (CustomVoice).
    pub speaker: Option<String>,
    /// Layout B (whole text in the prompt, the API default) instead of A (one text token per frame).
    pub non_streaming: bool,
}

pub fn target_template(text: &str) -> String {
    format!("<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n")
}

pub fn instruct_template(instruct: &str) -> String {
    format!("<|im_start|>user\n{instruct}<|im_end|>\n")
}

/// Builds the prefill rows exactly as the official `generate` (spec §2.6, layouts A and B).
pub fn build_prompt(cfg: &TtsConfig, p: &PromptInput) -> Result<Prompt> {
    let t = &cfg.talker_config;
    let ids = &p.input_ids;
    if ids.len() < 8 {
        return Err(Error::invalid("the tokenized text is too short for the chat template"));
    }
    let (pad, bos, eos) = (cfg.tts_pad_token_id, cfg.tts_bos_token_id, cfg.tts_eos_token_id);
    let text_tokens = &ids[3..ids.len() - 5];
    if text_tokens.is_empty() {
        return Err(Error::invalid("the text has no tokens"));
    }

    // Language id: "auto" → none, unless the speaker speaks a dialect (Chinese or auto).
    let mut language_id = if p.language == "auto" {
        None
    } else {
        Some(*t.codec_language_id.get(&p.language).ok_or_else(|| {
            Error::invalid(format!(
                "language `{}` is not supported by this model (supported: {})",
                p.language,
                cfg.languages().join(", ")
            ))
        })?)
    };
    let mut speaker_id = None;
    if let Some(s) = &p.speaker {
        speaker_id = Some(
            t.spk_id
                .get(s)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "speaker `{s}` is not supported by this model (supported: {})",
                        cfg.speakers().join(", ")
                    ))
                })?
                .id(),
        );
        if let Some(Dialect::Name(d)) = t.spk_is_dialect.get(s) {
            if p.language == "chinese" || p.language == "auto" {
                language_id = Some(t.codec_language_id[d]);
            }
        }
    }

    // Codec prefix K: think/nothink tags, optional speaker, then pad, bos.
    let mut k: Vec<u32> = match language_id {
        None => vec![t.codec_nothink_id, t.codec_think_bos_id, t.codec_think_eos_id],
        Some(l) => vec![t.codec_think_id, t.codec_think_bos_id, l, t.codec_think_eos_id],
    };
    k.extend(speaker_id);
    k.extend([t.codec_pad_id, t.codec_bos_id]);
    let m = k.len();

    let mut rows = Vec::new();
    if let Some(ins) = &p.instruct_ids {
        rows.extend(ins.iter().map(|&id| PromptRow { text: Some(id), codec: None }));
    }
    rows.extend(ids[..3].iter().map(|&id| PromptRow { text: Some(id), codec: None }));
    for (i, &c) in k[..m - 1].iter().enumerate() {
        rows.push(PromptRow { text: Some(if i < m - 2 { pad } else { bos }), codec: Some(c) });
    }
    let trailing = if p.non_streaming {
        rows.extend(text_tokens.iter().map(|&id| PromptRow { text: Some(id), codec: Some(t.codec_pad_id) }));
        rows.push(PromptRow { text: Some(eos), codec: Some(t.codec_pad_id) });
        rows.push(PromptRow { text: Some(pad), codec: Some(t.codec_bos_id) });
        vec![pad]
    } else {
        rows.push(PromptRow { text: Some(text_tokens[0]), codec: Some(t.codec_bos_id) });
        let mut tr: Vec<u32> = text_tokens[1..].to_vec();
        tr.push(eos);
        tr
    };
    Ok(Prompt { rows, trailing })
}

/// A conservative cap on frames for a text: about 3× its expected spoken duration plus 2 s.
/// Latin-script words take ~0.4 s; CJK characters (each a syllable) ~0.3 s; digits ~0.3 s.
pub fn auto_cap_frames(text: &str) -> u32 {
    let mut seconds = 0.0f32;
    let mut in_word = false;
    for ch in text.chars() {
        let cjk = matches!(ch as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF);
        if cjk || ch.is_ascii_digit() {
            seconds += 0.3;
            in_word = false;
        } else if ch.is_alphanumeric() {
            if !in_word {
                seconds += 0.4;
            }
            in_word = true;
        } else {
            if matches!(ch, ',' | '.' | ';' | ':' | '!' | '?' | '，' | '。' | '！' | '？') {
                seconds += 0.2;
            }
            in_word = false;
        }
    }
    ((3.0 * seconds + 2.0) * FRAME_RATE).ceil() as u32 + 1
}

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

/// One sequence being generated.
struct Slot {
    cache: KvCache,
    predictor_cache: KvCache,
    /// Text-track rows for decode steps (then `tts_pad`).
    trailing: Tensor,
    /// Decode steps done (the official `generation_step`).
    step: usize,
    /// The sampled c0 waiting for its acoustic codes.
    c0: u32,
    /// The talker's post-norm hidden state after the last forward.
    hidden: Vec<f32>,
    /// Every c0 sampled so far (repetition penalty, min-new-tokens).
    generated: Vec<u32>,
    cap: u32,
    talker: SamplingParams,
    predictor: SamplingParams,
    rng: Rng,
}

/// Time spent in each half of the decode steps so far (for benchmarks).
#[derive(Clone, Copy, Debug, Default)]
pub struct StepTimes {
    pub steps: u64,
    pub predictor: std::time::Duration,
    pub talker: std::time::Duration,
}

/// A loaded Qwen3-TTS checkpoint (talker + code predictor) with its slots.
pub struct Qwen3Tts {
    pub config: TtsConfig,
    pub generation: GenerationConfig,
    tokenizer: TextTokenizer,
    cpu: Arc<Cpu>,
    pub talker: Talker,
    pub predictor: CodePredictor,
    /// `T(tts_pad)`, the text track once the text is used up.
    pad_row: Vec<f32>,
    slots: Vec<Option<Slot>>,
    /// Caches of released slots, kept so that their memory is reused.
    spare: Vec<(KvCache, KvCache)>,
    pub times: StepTimes,
}

impl Qwen3Tts {
    /// Loads `config.json`, `generation_config.json`, the tokenizer and `model.safetensors`.
    pub fn load(dir: &Path, cpu: Arc<Cpu>, max_slots: usize) -> Result<Qwen3Tts> {
        let config = TtsConfig::load(dir)?;
        let generation = GenerationConfig::load(dir)?;
        let tokenizer = TextTokenizer::from_dir_with(dir, SplitRegex::for_checkpoint(dir)?)?;
        let mut ck = Checkpoint::open(&dir.join("model.safetensors"))?;
        let talker = Talker::load(&mut ck, &config)?;
        let predictor = CodePredictor::load(&mut ck, &config)?;
        let unused: Vec<String> = ck.remaining().into_iter().filter(|n| !n.starts_with("speaker_encoder.")).collect();
        if !unused.is_empty() {
            return Err(Error::new(
                ErrorKind::ModelLoad,
                format!("{}: unexpected tensors for this config: {}", ck.path().display(), unused.join(", ")),
            ));
        }
        let pad_row = talker.text(&cpu, &[config.tts_pad_token_id])?.data;
        Ok(Qwen3Tts {
            config,
            generation,
            tokenizer,
            cpu,
            talker,
            predictor,
            pad_row,
            slots: (0..max_slots).map(|_| None).collect(),
            spare: Vec::new(),
            times: StepTimes::default(),
        })
    }

    pub fn cpu(&self) -> &Cpu {
        &self.cpu
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
            TtsKind::Base => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "Base (voice clone) checkpoints need a reference voice; voice cloning is not supported yet",
                ));
            }
        };
        // The official API drops instruct on 0.6B CustomVoice (`tts_model_size in "0b6"`).
        let instruct = match (kind, r.instruct.as_deref()) {
            (TtsKind::CustomVoice, _) if "0b6".contains(self.config.tts_model_size.as_str()) => None,
            (_, Some(s)) if !s.is_empty() => Some(s),
            _ => None,
        };
        let input_ids = self.tokenizer.encode(&target_template(&r.text))?;
        let instruct_ids = instruct.map(|s| self.tokenizer.encode(&instruct_template(s))).transpose()?;
        Ok(PromptInput { input_ids, instruct_ids, language, speaker, non_streaming: !r.text_streaming })
    }

    /// The prompt rows' embeddings `[L, H]` and the trailing text-track rows.
    pub fn embed_prompt(&self, prompt: &Prompt) -> Result<(Tensor, Tensor)> {
        let cpu = &*self.cpu;
        let h = self.config.talker_config.decoder.hidden_size;
        let text_ids: Vec<u32> = prompt.rows.iter().filter_map(|r| r.text).collect();
        let codec_ids: Vec<u32> = prompt.rows.iter().filter_map(|r| r.codec).collect();
        let text = self.talker.text(cpu, &text_ids)?;
        let codec = self.talker.codec(cpu, &codec_ids)?;
        let mut x = Tensor::zeros(prompt.rows.len(), h);
        let (mut ti, mut ci) = (0, 0);
        for (i, r) in prompt.rows.iter().enumerate() {
            let row = x.row_mut(i);
            if r.text.is_some() {
                row.copy_from_slice(text.row(ti));
                ti += 1;
            }
            if r.codec.is_some() {
                for (a, b) in row.iter_mut().zip(codec.row(ci)) {
                    *a += b;
                }
                ci += 1;
            }
        }
        let trailing = self.talker.text(cpu, &prompt.trailing)?;
        Ok((x, trailing))
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

    /// The official talker logits processors, then selection.
    fn choose_c0(&self, logits: &mut [f32], generated: &[u32], params: &SamplingParams, rng: &mut Rng) -> u32 {
        let t = &self.config.talker_config;
        let eos = t.codec_eos_token_id as usize;
        sampling::apply_repetition_penalty(logits, generated, params.repetition_penalty);
        if generated.len() < 2 {
            logits[eos] = f32::NEG_INFINITY; // min_new_tokens = 2
        }
        for (id, v) in logits.iter_mut().enumerate().skip(t.decoder.vocab_size - 1024) {
            if id != eos {
                *v = f32::NEG_INFINITY;
            }
        }
        sampling::select(logits, params, rng)
    }

    /// Prefills sequences (rows grouped per slot), samples each one's first c0.
    fn prefill_slots(&mut self, seqs: Vec<PrefillSeq>) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let cpu = self.cpu.clone();
        let mut caches: Vec<(KvCache, KvCache)> = seqs
            .iter()
            .map(|_| {
                self.spare
                    .pop()
                    .unwrap_or_else(|| (self.talker.decoder.new_cache(), self.predictor.decoder.new_cache()))
            })
            .collect();
        for (c, _) in caches.iter_mut() {
            c.clear();
        }
        let rows: Vec<&[f32]> = seqs.iter().flat_map(|s| (0..s.prompt.rows).map(move |i| s.prompt.row(i))).collect();
        let x = Tensor::stack(&rows);
        let mut spans: Vec<SeqRows<'_>> =
            caches.iter_mut().zip(&seqs).map(|((cache, _), s)| SeqRows { cache, rows: s.prompt.rows }).collect();
        let hidden = self.talker.forward(&cpu, x, &mut spans, None);
        drop(spans);
        let mut end = 0;
        let last_rows: Vec<usize> = seqs
            .iter()
            .map(|s| {
                end += s.prompt.rows;
                end - 1
            })
            .collect();
        let last: Vec<&[f32]> = last_rows.iter().map(|&r| hidden.row(r)).collect();
        let last = Tensor::stack(&last);
        let mut logits = self.talker.logits(&cpu, &last);
        for (i, (s, (cache, predictor_cache))) in seqs.into_iter().zip(caches).enumerate() {
            let mut rng = s.rng;
            let c0 = self.choose_c0(logits.row_mut(i), &[], &s.talker, &mut rng);
            self.slots[s.slot] = Some(Slot {
                cache,
                predictor_cache,
                trailing: s.trailing,
                step: 0,
                c0,
                hidden: last.row(i).to_vec(),
                generated: vec![c0],
                cap: s.cap,
                talker: s.talker,
                predictor: s.predictor,
                rng,
            });
        }
        Ok(())
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
                let (x, trailing) = self.embed_prompt(&prompt)?;
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
        let cpu = self.cpu.clone();
        let h = self.config.talker_config.decoder.hidden_size;
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
        let mut seqs: Vec<Slot> = active.iter().map(|&i| self.slots[slots[i]].take().unwrap()).collect();

        // Code predictor: c1..c15 for every active sequence's pending c0.
        let t0 = std::time::Instant::now();
        let hidden = Tensor::from_vec(seqs.iter().flat_map(|s| s.hidden.iter().copied()).collect(), seqs.len(), h);
        let c0s: Vec<u32> = seqs.iter().map(|s| s.c0).collect();
        let c0_embed = self.talker.codec(&cpu, &c0s)?;
        let mut pcaches: Vec<KvCache> = seqs.iter_mut().map(|s| std::mem::take(&mut s.predictor_cache)).collect();
        let codes = {
            let seqs_ref = &mut seqs;
            let mut choose = |b: usize, _j: usize, logits: &mut [f32]| {
                let s = &mut seqs_ref[b];
                sampling::select(logits, &s.predictor, &mut s.rng)
            };
            self.predictor.predict(&cpu, &hidden, &c0_embed, &mut pcaches, &mut choose, None)
        };
        for (s, c) in seqs.iter_mut().zip(pcaches) {
            s.predictor_cache = c;
        }
        let codes = codes?;
        let t1 = std::time::Instant::now();

        // Talker input: the sum of the frame's 16 code embeddings plus the text track.
        let mut x = c0_embed;
        for j in 0..self.predictor.groups() {
            let ids: Vec<u32> = codes.iter().map(|c| c[j]).collect();
            x.add_assign(&self.predictor.embed(&cpu, j, &ids)?);
        }
        for (b, s) in seqs.iter().enumerate() {
            let text: &[f32] = if s.step < s.trailing.rows { s.trailing.row(s.step) } else { &self.pad_row };
            for (a, t) in x.row_mut(b).iter_mut().zip(text) {
                *a += t;
            }
        }
        let hidden = {
            let mut spans: Vec<SeqRows<'_>> =
                seqs.iter_mut().map(|s| SeqRows { cache: &mut s.cache, rows: 1 }).collect();
            self.talker.forward(&cpu, x, &mut spans, None)
        };
        let mut logits = self.talker.logits(&cpu, &hidden);
        self.times.steps += 1;
        self.times.predictor += t1 - t0;
        self.times.talker += t1.elapsed();
        for (b, (mut s, c)) in seqs.into_iter().zip(codes).enumerate() {
            let i = active[b];
            let mut frame = Vec::with_capacity(c.len() + 1);
            frame.push(s.c0);
            frame.extend(c);
            out[i].frame = Some(frame);
            let (generated, params, rng) = (&s.generated, &s.talker, &mut s.rng);
            let next = self.choose_c0(logits.row_mut(b), generated, params, rng);
            s.generated.push(next);
            s.c0 = next;
            s.step += 1;
            s.hidden = hidden.row(b).to_vec();
            if next == eos {
                out[i].finish = Some(Finish::Eos);
            } else if s.generated.len() as u32 >= s.cap {
                out[i].finish = Some(Finish::Cap);
            }
            self.slots[slots[i]] = Some(s);
        }
        Ok(out)
    }

    fn release(&mut self, slot: usize) {
        if let Some(mut s) = self.slots[slot].take() {
            s.cache.clear();
            self.spare.push((s.cache, s.predictor_cache));
        }
    }
}
