//! The command line's grammar (clap derive): every command, option, default and help text.
//! Parsing only; the commands are in their own files.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::random_checkpoint::PRESETS;

const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  the work failed: a model did not load, synthesis or transcription failed, a file could not
     be read or written (one line `voxkit: error: ...` on stderr)
  2  the command line is wrong: an unknown option, a missing or malformed value (nothing was done)

Run `voxkit <COMMAND> --help` for a command's options.";

/// A native speech engine: Qwen3-TTS text to speech and Qwen3-ASR speech recognition on the CPU.
///
/// Results go to stdout or to the files named; progress (on a terminal), summaries and errors go
/// to stderr.
#[derive(Parser, Debug)]
#[command(name = "voxkit", version, after_help = EXIT_CODES, arg_required_else_help = true, args_override_self = true)]
pub struct Cli {
    #[command(flatten)]
    pub verbosity: Verbosity,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone, Copy)]
pub struct Verbosity {
    /// Print nothing on stderr but errors: no progress, no summary.
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = "Global options")]
    pub quiet: bool,
    /// Also print the engine's log and the stage timings (-vv: the debug log too).
    #[arg(short, long, global = true, action = ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Say(SayArgs),
    Codes(CodesArgs),
    Transcribe(TranscribeArgs),
    Enhance(EnhanceArgs),
    MakeCheckpoint(MakeCheckpointArgs),
    Download(DownloadArgs),
    /// Show the CUDA driver and GPUs this machine offers, and where inference runs.
    Devices,
    #[command(subcommand)]
    Voice(VoiceCommand),
    #[command(subcommand)]
    Bench(Bench),
}

/// Parses a denoise strength: a number in [0, 1].
fn strength(s: &str) -> Result<f32, String> {
    let v: f32 = s.trim().parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..=1.0).contains(&v) { Ok(v) } else { Err(format!("the denoise strength must be in [0, 1], got {v}")) }
}

/// Parses a thread count: 1..=1024.
fn thread_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(n),
        _ => Err(format!("`{s}` is not a thread count (1 to 1024)")),
    }
}

/// Parses a device: `cpu`, `cuda`, `cuda:N` or `auto`.
fn device(s: &str) -> Result<voxkit::backend::Device, String> {
    use voxkit::backend::Device;
    match s.trim() {
        "auto" => Ok(Device::Auto),
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        other => match other.strip_prefix("cuda:").map(|n| n.parse::<u32>()) {
            Some(Ok(n)) => Ok(Device::Cuda(n)),
            _ => Err(format!("`{s}` is not a device (cpu, cuda, cuda:N or auto)")),
        },
    }
}

/// Where inference runs: the device and the CPU threads.
#[derive(Args, Debug, Clone, Copy)]
pub struct Threads {
    /// CPU threads for inference [default: every core this process may use].
    #[arg(long, value_name = "T", value_parser = thread_count)]
    pub threads: Option<usize>,
    /// Where inference runs: cpu, cuda[:N] (fails without a usable GPU) or auto (GPU 0 when it can
    /// run voxkit, else the CPU).
    #[arg(long, value_name = "DEVICE", value_parser = device, default_value = "auto")]
    pub device: voxkit::backend::Device,
    /// Weights quantized at load, CPU only: none (as stored), int8, or mixed (int4 decoder
    /// bodies, int8 heads and code-predictor edge layers). Applies to the TTS talker and code
    /// predictor and the ASR text decoder, and (on a CPU with AMX) the codec's convolutions and the
    /// many-row products (prompts, the ASR encoder) run in bf16; the quality each keeps:
    /// BENCHMARKS.md.
    #[arg(long, value_name = "Q", value_parser = quantization, default_value = "none")]
    pub quant: voxkit::backend::Quantization,
}

fn quantization(s: &str) -> Result<voxkit::backend::Quantization, String> {
    voxkit::backend::Quantization::parse(s).ok_or_else(|| {
        if s == "int4" {
            "int4 everywhere fails the code predictor's quality gate; use mixed (int4 bodies, int8 where it matters)"
                .into()
        } else {
            format!("`{s}` is not a quantization (none, int8 or mixed)")
        }
    })
}

impl Threads {
    /// The GPU the post-processing DSP runs on: `cuda[:N]` that GPU (or the reason it cannot),
    /// `auto` GPU 0 when it can run voxkit, `cpu` none.
    pub fn post_device(self) -> voxkit::Result<Option<voxkit::dsp::device::PostDevice>> {
        match voxkit::backend::resolve(self.device)? {
            voxkit::backend::Device::Cuda(n) => Ok(Some(voxkit::dsp::device::PostDevice::open(n)?)),
            _ => Ok(None),
        }
    }

    /// `--threads`, or every core the process may use.
    pub fn count(self) -> usize {
        self.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    }
}

/// What `say` and `codes` share: the model, the voice, the sampling, the text.
#[derive(Args, Debug)]
pub struct Voice {
    /// Qwen3-TTS model: a checkpoint folder (an official model folder — config.json,
    /// model.safetensors, the tokenizer files, speech_tokenizer/ — or one `make-checkpoint`
    /// wrote), or a hub id (org/name[@revision]) fetched once into the hub cache (HF_HOME;
    /// HF_HUB_OFFLINE=1: the cache only).
    #[arg(long, value_name = "DIR|ID", default_value = crate::model_arg::DEFAULT_TTS)]
    pub model: String,
    /// Speaker (CustomVoice models) [default: the model's first speaker].
    #[arg(long, value_name = "NAME")]
    pub speaker: Option<String>,
    /// Language of the text, e.g. English, Chinese [default: auto].
    #[arg(long, value_name = "LANG")]
    pub language: Option<String>,
    /// A style instruction, e.g. "whisper, slowly" (VoiceDesign models: the voice's description;
    /// ignored by the 0.6B CustomVoice model, as in the official API).
    #[arg(long, value_name = "TEXT")]
    pub instruct: Option<String>,
    /// Seed of the sampler: the same seed, text and options give the same audio [default: a
    /// fresh seed each run].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Greedy (argmax) decoding instead of sampling.
    #[arg(long)]
    pub greedy: bool,
    /// Most codec frames to generate (12.5 frames per second of audio); 0 = automatic, from the
    /// text's length.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_new_tokens: u32,
    /// Feed the text one token per generated frame (the official non_streaming_mode=False)
    /// instead of the whole text in the prompt.
    #[arg(long)]
    pub text_streaming: bool,
    #[command(flatten)]
    pub threads: Threads,
    /// The text to speak (several words are joined with spaces); `-`, or none while stdin is not
    /// a terminal: read the text from stdin (UTF-8).
    #[arg(value_name = "TEXT")]
    pub text: Vec<String>,
}

/// Speak text through the engine and write a 32-bit float WAV file.
///
/// The output is mono at the model's rate (24 kHz) unless --sample-rate says otherwise. The
/// output path is checked before the model loads. With `-o -` the WAV goes to stdout and nothing
/// else does.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    voxkit say --model /models/Qwen3-TTS-12Hz-0.6B-CustomVoice --speaker Ryan -o hello.wav \"Hello.\"\n  \
    echo \"Hello.\" | voxkit say --model DIR -o - - | aplay")]
pub struct SayArgs {
    #[command(flatten)]
    pub voice: Voice,
    #[command(flatten)]
    pub clone: CloneArgs,
    /// Output WAV file; `-` writes it to stdout.
    #[arg(short, long = "out", value_name = "OUT.wav")]
    pub out: String,
    /// Output sample rate in Hz (4000 to 384000), resampled from the model's [default: the
    /// model's rate, 24000].
    #[arg(long, value_name = "HZ")]
    pub sample_rate: Option<u32>,
    /// Denoise the speech, strength 0 (off) to 1 (full) [default: no denoising].
    #[arg(long, value_name = "STRENGTH", value_parser = strength)]
    pub denoise: Option<f32>,
    /// Stream: the engine hands out audio frame by frame while it generates (the summary then
    /// tells when the first audio came); the file is the same.
    #[arg(long)]
    pub stream: bool,
}

/// Where a cloned voice comes from (Qwen3-TTS Base models, which need one).
#[derive(Args, Debug, Default)]
pub struct CloneArgs {
    /// Reference audio to clone the voice of (Base models): a WAV of any rate and channel count,
    /// 0.08 to 60 s (3 to 15 s of clean speech work best).
    #[arg(long, value_name = "REF.wav", conflicts_with = "voice_file")]
    pub ref_audio: Option<String>,
    /// What is said in the reference: in-context cloning, closer to the reference's voice and
    /// manner [default: none: the voice comes from the speaker embedding alone].
    #[arg(long, value_name = "TEXT", requires = "ref_audio")]
    pub ref_text: Option<String>,
    /// Denoise the reference first, strength 0 to 1 (noise in the reference is copied into the
    /// clone) [default: no denoising].
    #[arg(long, value_name = "STRENGTH", value_parser = strength, requires = "ref_audio")]
    pub ref_denoise: Option<f32>,
    /// A voice file written by `voxkit voice create` (made with the same model).
    #[arg(long = "voice", id = "voice_file", value_name = "VOICE.bin")]
    pub voice: Option<String>,
}

/// Cloned voices (Qwen3-TTS Base models): make one from reference audio, or show one.
#[derive(Subcommand, Debug)]
#[command(arg_required_else_help = true)]
pub enum VoiceCommand {
    Create(VoiceCreateArgs),
    Show(VoiceShowArgs),
}

/// Clone a voice from reference audio and write it to a file, for `say --voice`.
#[derive(Args, Debug)]
#[command(after_help = "Example:\n  \
    voxkit voice create --model /models/Qwen3-TTS-12Hz-0.6B-Base --ref-audio me.wav \\\n    \
    --ref-text \"What I say in me.wav.\" -o me.voice\n  \
    voxkit say --model /models/Qwen3-TTS-12Hz-0.6B-Base --voice me.voice -o out.wav \"Hello.\"")]
pub struct VoiceCreateArgs {
    /// Qwen3-TTS Base model: a checkpoint folder or a hub id.
    #[arg(long, value_name = "DIR|ID")]
    pub model: String,
    /// Reference audio: a WAV of any rate and channel count, 0.08 to 60 s.
    #[arg(long, value_name = "REF.wav")]
    pub ref_audio: String,
    /// What is said in the reference: in-context cloning [default: none: x-vector only].
    #[arg(long, value_name = "TEXT")]
    pub ref_text: Option<String>,
    /// Denoise the reference first, strength 0 to 1 [default: no denoising].
    #[arg(long, value_name = "STRENGTH", value_parser = strength)]
    pub ref_denoise: Option<f32>,
    #[command(flatten)]
    pub threads: Threads,
    /// The voice file to write.
    #[arg(short, long = "out", value_name = "VOICE.bin")]
    pub out: String,
}

/// Print what a voice file holds: its kind, reference length and transcript, and the model it
/// was made with.
#[derive(Args, Debug)]
pub struct VoiceShowArgs {
    /// The voice file.
    #[arg(value_name = "VOICE.bin")]
    pub file: String,
}

/// Generate Qwen3-TTS codec frames and print them, one frame (16 codes, 80 ms) per line.
#[derive(Args, Debug)]
pub struct CodesArgs {
    #[command(flatten)]
    pub voice: Voice,
}

/// Transcribe a WAV file with a Qwen3-ASR model.
///
/// Prints the language line and the text on stdout (or one line of JSON with --json). Any WAV:
/// 16/24/32-bit integer or 32-bit float, any rate, any channel count.
#[derive(Args, Debug)]
pub struct TranscribeArgs {
    /// Qwen3-ASR model: a checkpoint folder (an official model folder or one
    /// `make-checkpoint` wrote), or a hub id (org/name[@revision]) fetched once into the hub
    /// cache (HF_HOME; HF_HUB_OFFLINE=1: the cache only).
    #[arg(long, value_name = "DIR|ID", default_value = crate::model_arg::DEFAULT_ASR)]
    pub model: String,
    /// Force the transcript's language, e.g. English [default: detected].
    #[arg(long, value_name = "LANG")]
    pub language: Option<String>,
    /// Context for the decoder: names and terms the audio may contain.
    #[arg(long, value_name = "TEXT")]
    pub context: Option<String>,
    /// Most tokens to decode; 0 = automatic, from the audio's length.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_new_tokens: u32,
    /// Denoise the audio before recognition, strength 0 (off) to 1 (full) [default: no
    /// denoising].
    #[arg(long, value_name = "STRENGTH", value_parser = strength)]
    pub denoise: Option<f32>,
    /// Print one line of JSON: language, text, truncated and the stage timings (ms).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub threads: Threads,
    /// Input WAV file; `-` reads it from stdin.
    #[arg(value_name = "IN.wav")]
    pub input: String,
}

/// Denoise and/or resample a WAV file.
///
/// Channels are processed independently, as one batch (on the CPU's threads, or on the GPU in one
/// launch per stage with --device cuda, or auto when a GPU can run voxkit); the output keeps the
/// input's sample format. Without --denoise and --sample-rate the audio is copied unchanged.
#[derive(Args, Debug)]
pub struct EnhanceArgs {
    /// Denoise, strength 0 (off) to 1 (full) [default: no denoising].
    #[arg(long, value_name = "STRENGTH", value_parser = strength)]
    pub denoise: Option<f32>,
    /// Resample to this rate in Hz [default: the input's rate].
    #[arg(long, value_name = "HZ")]
    pub sample_rate: Option<u32>,
    #[command(flatten)]
    pub threads: Threads,
    /// Output WAV file; `-` writes it to stdout.
    #[arg(short, long = "out", value_name = "OUT.wav")]
    pub out: String,
    /// Input WAV file; `-` reads it from stdin.
    #[arg(value_name = "IN.wav")]
    pub input: String,
}

/// Write a random-weight checkpoint with the real shapes, in the official folder layout.
///
/// For benchmarks and tests where the real weights are not at hand: it loads through the same
/// code as a real checkpoint, but speaks and transcribes nonsense. The output folder must be new
/// or empty.
#[derive(Args, Debug)]
#[command(after_help = "Examples (from the source tree):\n  \
    voxkit make-checkpoint --preset tiny-customvoice --tokenizer tests/fixtures/tokenizer \\\n      \
    --out /tmp/tiny-tts\n  \
    voxkit make-checkpoint --preset 0.6b-asr --tokenizer tests/fixtures/asr/tiny \\\n      \
    --out /tmp/qwen3-asr-0.6b")]
pub struct MakeCheckpointArgs {
    /// Model shapes: the released models' (0.6b-*, 1.7b-*) or tiny ones for tests.
    #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(PRESETS))]
    pub preset: String,
    /// Output folder; created, and refused when it exists and is not empty.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Folder holding the tokenizer files copied into the checkpoint: vocab.json, merges.txt and
    /// tokenizer_config.json (an official model folder of the same family; in the source tree:
    /// tests/fixtures/tokenizer for TTS presets, tests/fixtures/asr/tiny for ASR presets).
    #[arg(long, value_name = "DIR", required = true)]
    pub tokenizer: PathBuf,
    /// Seed of the random weights.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
}

/// Time the engine's parts; results on stdout.
#[derive(Subcommand, Debug)]
#[command(arg_required_else_help = true)]
pub enum Bench {
    Tts(BenchTtsArgs),
    Codec(BenchCodecArgs),
    Post(BenchPostArgs),
    Asr(BenchAsrArgs),
    Voice(BenchVoiceArgs),
}

/// Time the talker and the code predictor per frame (greedy, batch 1).
#[derive(Args, Debug)]
pub struct BenchTtsArgs {
    /// Qwen3-TTS checkpoint folder or hub id.
    #[arg(long, value_name = "DIR|ID")]
    pub model: String,
    /// Frames to time (80 ms of audio each).
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub frames: u64,
    /// Speaker [default: the model's first].
    #[arg(long, value_name = "NAME")]
    pub speaker: Option<String>,
    /// Sequences stepped together (each the same text): the aggregate audio seconds per second.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub batch: u64,
    #[command(flatten)]
    pub threads: Threads,
}

/// Time the codec decoder per frame, offline (one pass) and streaming (frame by frame).
#[derive(Args, Debug)]
pub struct BenchCodecArgs {
    /// Qwen3-TTS checkpoint folder or hub id (its speech_tokenizer/ is timed).
    #[arg(long, value_name = "DIR|ID")]
    pub model: String,
    /// Frames of random codes to decode (80 ms of audio each).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub frames: usize,
    #[command(flatten)]
    pub threads: Threads,
}

/// Time the voice-cloning encoders of a Base checkpoint on a synthetic reference: the speaker
/// encoder (mel + x-vector) and the codec encoder (the reference codes of in-context voices).
#[derive(Args, Debug)]
pub struct BenchVoiceArgs {
    /// Qwen3-TTS Base checkpoint folder or hub id.
    #[arg(long, value_name = "DIR|ID")]
    pub model: String,
    /// Seconds of reference audio (24 kHz).
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub seconds: f64,
    /// Timed runs of each encoder (the median is reported).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub runs: usize,
    #[command(flatten)]
    pub threads: Threads,
}

/// Time the resampler (24 -> 48 and 24 -> 44.1 kHz, 48 -> 16 kHz) and the denoiser (24 and
/// 48 kHz): times real time on one thread, and batched over --streams streams on --threads.
#[derive(Args, Debug)]
pub struct BenchPostArgs {
    /// Seconds of audio per stream.
    #[arg(long, value_name = "S", default_value_t = 20.0)]
    pub seconds: f64,
    /// Streams in the batched runs.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub streams: usize,
    #[command(flatten)]
    pub threads: Threads,
}

/// Time the ASR front-end, encoder, prompt prefill and greedy decoding on a synthetic clip.
#[derive(Args, Debug)]
pub struct BenchAsrArgs {
    /// Qwen3-ASR checkpoint folder or hub id.
    #[arg(long, value_name = "DIR|ID")]
    pub model: String,
    /// Length of the synthetic clip in seconds.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub seconds: f64,
    /// Tokens to decode [default: 4 per second of audio].
    #[arg(long, value_name = "N")]
    pub tokens: Option<usize>,
    #[command(flatten)]
    pub threads: Threads,
}

/// Fetch a model from the Hugging Face Hub into the hub cache (or complete and check a copy
/// there), and print its folder.
///
/// The cache is the Python tools' (HF_HUB_CACHE, else $HF_HOME/hub, else
/// ~/.cache/huggingface/hub), so models fetched by either are shared. Transfers resume where
/// they stopped and every file is checked against the hub's sha256 before it is used. HF_ENDPOINT
/// names another hub; HF_TOKEN authenticates.
#[derive(Args, Debug)]
#[command(after_help = "Example:\n  voxkit download Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice")]
pub struct DownloadArgs {
    /// The model's hub id, org/name, optionally @revision (a branch, tag or commit).
    #[arg(value_name = "ID")]
    pub id: String,
}
