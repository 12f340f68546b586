//! The command line as a user runs it: `voxkit transcribe` (text and `--json`) on the tiny ASR
//! fixture, `voxkit enhance` on WAV files of several formats, and `voxkit say` and
//! `make-checkpoint` on a tiny random-weight checkpoint: help and version, usage errors (exit 2)
//! and failures (exit 1) as one line, stdin and stdout, the output checked before the model
//! loads, --denoise, --quiet, a copied binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary, kept off the network: a model named by hub id comes from an empty cache only.
fn voxkit() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_voxkit"));
    c.env("HF_HUB_OFFLINE", "1").env("HF_HOME", tmp("hf-home")).env_remove("HF_HUB_CACHE");
    c
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("voxkit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(p)
}

fn write_wav(path: &Path, samples: &[f32], rate: u32, channels: u16, float: bool) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: if float { 32 } else { 16 },
        sample_format: if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        if float {
            w.write_sample(s).unwrap();
        } else {
            w.write_sample((s * 32768.0).round().clamp(-32768.0, 32767.0) as i16).unwrap();
        }
    }
    w.finalize().unwrap();
}

/// Clip A of the ASR fixture (16 kHz, exactly the official input) and its A1 reference.
fn clip_a() -> (Vec<f32>, serde_json::Value) {
    let dir = fixture("asr/tiny");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("A.audio_i16").unwrap();
    let audio = t.data().chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32768.0).collect();
    let a1 = json["cases"].as_array().unwrap().iter().find(|c| c["id"] == "A1").unwrap().clone();
    (audio, a1)
}

#[test]
fn transcribe_json_is_one_line_with_the_official_result() {
    let (audio, a1) = clip_a();
    let wav = tmp("a.wav");
    write_wav(&wav, &audio, 16_000, 1, false);
    let out = voxkit()
        .args(["transcribe", "--model"])
        .arg(fixture("asr/tiny"))
        .args(["--max-new-tokens", "24", "--threads", "2", "--json"])
        .arg(&wav)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim_end()).unwrap();
    assert_eq!(v["language"], a1["transcribe"]["language"]);
    assert_eq!(v["text"], a1["transcribe"]["text"]);
    assert!(v["timings"]["encode_ms"].as_f64().unwrap() > 0.0);

    // Plain output: the language line, then the text.
    let out = voxkit().args(["transcribe", "--model"]).arg(fixture("asr/tiny")).arg(&wav).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("language: "), "{stdout}");
}

#[test]
fn transcribe_reads_float_stereo_at_any_rate() {
    let (audio, _) = clip_a();
    // 16 kHz → 44.1 kHz stereo float, then back through the engine's resampler.
    let up = voxkit::dsp::resample::resample(&audio, 16_000, 44_100).unwrap();
    let stereo: Vec<f32> = up.iter().flat_map(|&s| [s, s]).collect();
    let wav = tmp("a44.wav");
    write_wav(&wav, &stereo, 44_100, 2, true);
    let out = voxkit()
        .args(["transcribe", "--json", "--max-new-tokens", "8", "--model"])
        .arg(fixture("asr/tiny"))
        .arg(&wav)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim_end()).unwrap();
    assert!(v["text"].is_string() && v["language"].is_string());
    assert!(v["timings"]["resample_ms"].as_f64().unwrap() > 0.0);
}

fn read(path: &Path) -> (Vec<f32>, hound::WavSpec) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let v = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().map(Result::unwrap).collect(),
        hound::SampleFormat::Int => r.samples::<i32>().map(|s| s.unwrap() as f32 / 32768.0).collect(),
    };
    (v, spec)
}

#[test]
fn enhance_keeps_the_format_and_processes_channels_independently() {
    let (speech, spec) = read(&fixture("audio/en_m_24k.wav"));
    assert_eq!(spec.sample_rate, 24_000);
    // Stereo 16-bit: left = speech, right = silence.
    let stereo: Vec<f32> = speech.iter().flat_map(|&s| [s, 0.0]).collect();
    let input = tmp("in16.wav");
    write_wav(&input, &stereo, 24_000, 2, false);
    let output = tmp("out16.wav");
    let run = |args: &[&str], out: &Path, inp: &Path| {
        let o = voxkit().arg("enhance").args(args).arg("-o").arg(out).arg(inp).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run(&["--denoise", "1.0", "--sample-rate", "48000"], &output, &input);
    let (out, ospec) = read(&output);
    assert_eq!((ospec.channels, ospec.sample_rate, ospec.bits_per_sample), (2, 48_000, 16));
    assert_eq!(ospec.sample_format, hound::SampleFormat::Int);
    assert_eq!(out.len(), 2 * 2 * speech.len(), "ceil(n · 48/24) frames of 2 channels");
    let right_peak = out.iter().skip(1).step_by(2).fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(right_peak < 1e-3, "the silent channel stays silent: {right_peak}");
    let left_energy: f32 = out.iter().step_by(2).map(|x| x * x).sum();
    assert!(left_energy > 1.0, "the speech channel keeps its speech");

    // Float mono with no options: written back unchanged.
    let fin = tmp("inf.wav");
    write_wav(&fin, &speech, 24_000, 1, true);
    let fout = tmp("outf.wav");
    run(&[], &fout, &fin);
    let (same, fspec) = read(&fout);
    assert_eq!(fspec.sample_format, hound::SampleFormat::Float);
    assert_eq!(same, speech);
    // Denoise strength 0 at the input's rate: transparent.
    run(&["--denoise", "0", "--sample-rate", "24000"], &fout, &fin);
    let (zero, _) = read(&fout);
    let d = zero.iter().zip(&speech).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(d < 1e-6, "strength 0 changed the audio by {d}");
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let o = voxkit()
        .args(["enhance", "--denoise", "2", "-o"])
        .arg(tmp("x.wav"))
        .arg(fixture("audio/en_m_24k.wav"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("strength"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = voxkit().args(["transcribe", "--model", "/nonexistent", "x.wav"]).output().unwrap();
    assert!(!o.status.success());
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `cmd` with `input` on its stdin.
fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// The failure contract: the exit status, and exactly one line `voxkit: error: ...` on stderr.
fn assert_fails_once(o: &Output, code: i32) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("voxkit: error: "), "{err:?}");
    assert!(!err.contains("Usage"), "no usage dump: {err:?}");
    err
}

/// A tiny random-weight TTS checkpoint, written once by `voxkit make-checkpoint`.
fn tiny_tts() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tmp("tiny-tts");
        let _ = std::fs::remove_dir_all(&dir);
        let o = voxkit()
            .args(["make-checkpoint", "--preset", "tiny-customvoice", "--seed", "11", "--out"])
            .arg(&dir)
            .arg("--tokenizer")
            .arg(fixture("tokenizer"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        dir
    })
    .clone()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// `voxkit say` on the tiny checkpoint: a short, seeded utterance.
fn say() -> Command {
    let mut c = voxkit();
    c.args(["say", "--speaker", "vivian", "--seed", "5", "--max-new-tokens", "6", "--threads", "2", "--model"])
        .arg(tiny_tts());
    c
}

fn wav_bytes(bytes: &[u8]) -> (Vec<f32>, hound::WavSpec) {
    let mut r = hound::WavReader::new(std::io::Cursor::new(bytes)).expect("a valid WAV");
    let spec = r.spec();
    (r.samples::<f32>().map(Result::unwrap).collect(), spec)
}

const TEXT: &str = "Hello from the command line.";

#[test]
fn help_and_version_work() {
    let o = voxkit().arg("--help").output().unwrap();
    assert!(o.status.success());
    let help = String::from_utf8(o.stdout).unwrap();
    for word in ["say", "codes", "transcribe", "enhance", "make-checkpoint", "bench", "--quiet", "--verbose"] {
        assert!(help.contains(word), "`{word}` missing from --help:\n{help}");
    }
    assert!(help.contains("Exit status") && help.contains("  2  "), "exit codes documented:\n{help}");

    let o = voxkit().args(["say", "--help"]).output().unwrap();
    assert!(o.status.success());
    let help = String::from_utf8(o.stdout).unwrap();
    for word in ["--model", "--denoise", "--sample-rate", "--out", "stdin", "stdout"] {
        assert!(help.contains(word), "`{word}` missing from say --help:\n{help}");
    }
    let o = voxkit().args(["bench", "asr", "--help"]).output().unwrap();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("--seconds"));

    let o = voxkit().arg("--version").output().unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8(o.stdout).unwrap().trim(), format!("voxkit {}", env!("CARGO_PKG_VERSION")));

    // No command: the help, on stderr, and a usage error.
    let o = voxkit().output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("Commands:"));
}

#[test]
fn an_unknown_flag_is_a_usage_error_that_takes_no_value() {
    let out = tmp("unknown-flag.wav");
    let _ = std::fs::remove_file(&out);
    // The old parser took `-o` as --bogus's value and then failed on two inputs.
    let o = voxkit().args(["enhance", "--bogus", "-o"]).arg(&out).arg(fixture("audio/en_m_24k.wav")).output().unwrap();
    let err = assert_fails_once(&o, 2);
    assert!(err.contains("'--bogus'") && err.contains("voxkit enhance --help"), "{err}");
    assert!(!out.exists(), "nothing was written");
    // A misspelt option: clap's suggestion, still one line.
    let o = voxkit().args(["say", "--sed", "3", "--model", "m", "-o", "x.wav", "hi"]).output().unwrap();
    let err = assert_fails_once(&o, 2);
    assert!(err.contains("--seed"), "{err}");
    // A missing value and a malformed one.
    // No --model: the default id, which an offline machine without it in the cache cannot have.
    let err = assert_fails_once(&voxkit().args(["say", "-o"]).arg(tmp("nomodel.wav")).arg("hi").output().unwrap(), 1);
    assert!(err.contains("Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice") && err.contains("voxkit download"), "{err}");
    let o = voxkit().args(["bench", "tts", "--model", "m", "--frames", "many"]).output().unwrap();
    assert!(assert_fails_once(&o, 2).contains("voxkit bench tts --help"));
}

#[test]
fn a_failure_is_printed_once_with_exit_1() {
    // A folder that is not a checkpoint.
    let empty = tmp("not-a-checkpoint");
    std::fs::create_dir_all(&empty).unwrap();
    let o = voxkit().args(["say", "-o"]).arg(tmp("never.wav")).arg("--model").arg(&empty).arg("hi").output().unwrap();
    assert_fails_once(&o, 1);
    assert!(!tmp("never.wav").exists(), "a failed run leaves no output file behind");
    // A model that fails to load inside the job: the engine's own report of it stays quiet.
    let broken = tmp("broken-tts");
    let _ = std::fs::remove_dir_all(&broken);
    copy_dir(&tiny_tts(), &broken);
    std::fs::copy(fixture("asr/tiny/model.safetensors"), broken.join("model.safetensors")).unwrap();
    let o = voxkit().args(["say", "-o"]).arg(tmp("never.wav")).arg("--model").arg(&broken).arg("hi").output().unwrap();
    assert!(assert_fails_once(&o, 1).contains("has no tensor"));
    let _ = std::fs::remove_dir_all(&broken);
    // A model that does not exist: the path is named.
    let o = voxkit().args(["transcribe", "--model", "/nonexistent/asr"]).arg(fixture("audio/en_m_24k.wav")).output();
    assert!(assert_fails_once(&o.unwrap(), 1).contains("/nonexistent/asr"));
    // A request the engine refuses.
    let o = say().args(["--speaker", "nobody", "-o"]).arg(tmp("nobody.wav")).arg(TEXT).output().unwrap();
    assert!(assert_fails_once(&o, 1).contains("nobody"));
    // An input file that does not exist.
    let o = voxkit().args(["enhance", "-o"]).arg(tmp("e.wav")).arg("/nonexistent/in.wav").output().unwrap();
    assert!(assert_fails_once(&o, 1).contains("/nonexistent/in.wav"));
}

#[test]
fn say_reads_stdin_and_writes_the_wav_to_stdout() {
    let file = tmp("say-file.wav");
    let o = say().arg("-o").arg(&file).arg(TEXT).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let from_file = std::fs::read(&file).unwrap();
    let (samples, spec) = wav_bytes(&from_file);
    assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (1, 24_000, 32));
    assert!(!samples.is_empty() && samples.len() % 1920 == 0, "whole 80 ms frames: {}", samples.len());

    // `-` reads the text from stdin (trimmed); `-o -` writes the WAV, and nothing else, to stdout.
    let o = run_with_stdin(say().args(["-o", "-", "-"]), format!("  {TEXT}\n").as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, from_file, "the same WAV, byte for byte");
    assert!(stderr(&o).contains("stdout"), "the summary goes to stderr: {}", stderr(&o));
    // No TEXT while stdin is a pipe: the text comes from stdin too.
    let o = run_with_stdin(say().args(["-o", "-"]), TEXT.as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, from_file);
    // An empty stdin is an error, not silence.
    let o = run_with_stdin(say().args(["-o", "-", "-"]), b"  \n");
    assert!(assert_fails_once(&o, 1).contains("stdin"));
    assert!(o.stdout.is_empty());
}

#[test]
fn say_checks_the_output_path_before_loading_the_model() {
    // --verbose shows the engine's log, which names the model load: it must not get that far.
    let bad = tmp("no-such-folder").join("x.wav");
    let o = say().args(["--verbose", "-o"]).arg(&bad).arg(TEXT).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&bad.parent().unwrap().display().to_string()), "names the path: {err}");
    assert!(!err.contains("loading"), "failed before the model loads: {err}");
    assert!(err.starts_with("voxkit: error: "), "{err}");
    // A folder is not an output file.
    let o = say().arg("-o").arg(std::env::temp_dir()).arg(TEXT).output().unwrap();
    assert!(assert_fails_once(&o, 1).contains("folder"));
    // An existing file is left as it was when the run fails.
    let keep = tmp("keep.wav");
    std::fs::write(&keep, b"not yet").unwrap();
    let o = say().args(["--speaker", "nobody", "-o"]).arg(&keep).arg(TEXT).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(&keep).unwrap(), b"not yet");
    // ... and replaced whole when it succeeds (a longer old file leaves no tail).
    std::fs::write(&keep, vec![7u8; 1 << 20]).unwrap();
    let o = say().arg("-o").arg(&keep).arg(TEXT).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let fresh = tmp("fresh.wav");
    let _ = std::fs::remove_file(&fresh);
    assert!(say().arg("-o").arg(&fresh).arg(TEXT).output().unwrap().status.success());
    assert_eq!(std::fs::read(&keep).unwrap(), std::fs::read(&fresh).unwrap());
}

#[test]
fn denoise_changes_the_speech() {
    let run = |extra: &[&str], name: &str| {
        let path = tmp(name);
        let o = say().args(extra).arg("-o").arg(&path).arg(TEXT).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        wav_bytes(&std::fs::read(&path).unwrap()).0
    };
    let plain = run(&[], "plain.wav");
    let zero = run(&["--denoise", "0"], "denoise0.wav");
    let full = run(&["--denoise", "1"], "denoise1.wav");
    assert_eq!(plain.len(), full.len(), "the denoiser keeps the length (delay compensated)");
    let diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(diff(&plain, &zero) < 1e-5, "strength 0 is transparent: {}", diff(&plain, &zero));
    assert!(diff(&plain, &full) > 1e-3, "strength 1 changes the audio: {}", diff(&plain, &full));
    let o = say().args(["--denoise", "1.5", "-o"]).arg(tmp("d.wav")).arg(TEXT).output().unwrap();
    assert!(assert_fails_once(&o, 2).contains("strength"));
}

#[test]
fn transcribe_reads_stdin_and_denoises() {
    let (audio, a1) = clip_a();
    let wav = tmp("a-stdin.wav");
    write_wav(&wav, &audio, 16_000, 1, false);
    let bytes = std::fs::read(&wav).unwrap();
    let json = |extra: &[&str]| {
        let mut c = voxkit();
        c.args(["transcribe", "--json", "--max-new-tokens", "24", "--threads", "2", "--model"])
            .arg(fixture("asr/tiny"))
            .args(extra)
            .arg("-");
        let o = run_with_stdin(&mut c, &bytes);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(String::from_utf8(o.stdout).unwrap().trim_end()).unwrap()
    };
    let v = json(&[]);
    assert_eq!(v["text"], a1["transcribe"]["text"], "stdin gives what the file gives");
    assert_eq!(v["timings"]["denoise_ms"].as_f64().unwrap(), 0.0);
    let v = json(&["--denoise", "1"]);
    assert!(v["timings"]["denoise_ms"].as_f64().unwrap() > 0.0, "the denoiser ran: {v}");
}

#[test]
fn make_checkpoint_refuses_a_non_empty_folder() {
    let dir = tmp("not-empty");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), b"{\"mine\": true}").unwrap();
    let o = voxkit()
        .args(["make-checkpoint", "--preset", "tiny-customvoice", "--out"])
        .arg(&dir)
        .arg("--tokenizer")
        .arg(fixture("tokenizer"))
        .output()
        .unwrap();
    assert!(assert_fails_once(&o, 1).contains("not empty"));
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["config.json"], "nothing added");
    assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), b"{\"mine\": true}", "nothing overwritten");

    // An ASR preset over a TTS checkpoint: refused, the TTS config stays.
    let tts = tiny_tts();
    let before = std::fs::read(tts.join("config.json")).unwrap();
    let o = voxkit()
        .args(["make-checkpoint", "--preset", "tiny-asr", "--out"])
        .arg(&tts)
        .arg("--tokenizer")
        .arg(fixture("asr/tiny"))
        .output()
        .unwrap();
    assert_fails_once(&o, 1);
    assert_eq!(std::fs::read(tts.join("config.json")).unwrap(), before);

    // An empty folder is fine.
    let empty = tmp("empty-out");
    let _ = std::fs::remove_dir_all(&empty);
    std::fs::create_dir_all(&empty).unwrap();
    let o = voxkit()
        .args(["make-checkpoint", "--preset", "tiny-asr", "--out"])
        .arg(&empty)
        .arg("--tokenizer")
        .arg(fixture("asr/tiny"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(empty.join("model.safetensors").is_file() && empty.join("preprocessor_config.json").is_file());
    let _ = std::fs::remove_dir_all(&empty);
}

#[test]
fn make_checkpoint_works_from_a_copied_binary() {
    let root = tmp("copied");
    let _ = std::fs::remove_dir_all(&root);
    let (bin_dir, work) = (root.join("bin"), root.join("work"));
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let bin = bin_dir.join("voxkit");
    std::fs::copy(env!("CARGO_BIN_EXE_voxkit"), &bin).unwrap();
    // Nothing from the source tree but the tokenizer folder given on the command line.
    let o = Command::new(&bin)
        .current_dir(&work)
        .args(["make-checkpoint", "--preset", "tiny-customvoice", "--out", "ck", "--tokenizer"])
        .arg(fixture("tokenizer"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["config.json", "model.safetensors", "vocab.json", "merges.txt", "speech_tokenizer/config.json"] {
        assert!(work.join("ck").join(f).is_file(), "{f} missing");
    }
    // The checkpoint speaks.
    let o = Command::new(&bin)
        .current_dir(&work)
        .args(["say", "--model", "ck", "--max-new-tokens", "3", "--seed", "1", "-o", "out.wav", "Hi."])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!wav_bytes(&std::fs::read(work.join("out.wav")).unwrap()).0.is_empty());
    // Without --tokenizer: a usage error that names it.
    let o = Command::new(&bin)
        .current_dir(&work)
        .args(["make-checkpoint", "--preset", "tiny-customvoice", "--out", "ck2"])
        .output()
        .unwrap();
    assert!(assert_fails_once(&o, 2).contains("--tokenizer"));
    assert!(!work.join("ck2").exists());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn quiet_prints_nothing_on_stderr() {
    let out = tmp("quiet.wav");
    // Without --quiet a summary is printed, with it nothing.
    let o = say().arg("-o").arg(&out).arg(TEXT).output().unwrap();
    assert!(o.status.success() && !o.stderr.is_empty(), "{}", stderr(&o));
    let o = say().args(["--quiet", "-o"]).arg(&out).arg(TEXT).output().unwrap();
    assert!(o.status.success());
    assert_eq!(stderr(&o), "");
    let o =
        voxkit().args(["-q", "enhance", "--denoise", "1", "-o"]).arg(&out).arg(fixture("audio/en_m_24k.wav")).output();
    let o = o.unwrap();
    assert!(o.status.success());
    assert_eq!(stderr(&o), "");
    let dir = tmp("quiet-ck");
    let _ = std::fs::remove_dir_all(&dir);
    let o = voxkit()
        .args(["make-checkpoint", "-q", "--preset", "tiny-customvoice", "--out"])
        .arg(&dir)
        .arg("--tokenizer")
        .arg(fixture("tokenizer"))
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(stderr(&o), "");
    let _ = std::fs::remove_dir_all(&dir);
    // --verbose adds the stage timings.
    let o = say().args(["--verbose", "-o"]).arg(&out).arg(TEXT).output().unwrap();
    assert!(o.status.success() && stderr(&o).contains("codec"), "{}", stderr(&o));
}

/// `voxkit devices` says what it finds; on the emulated device (scripts/emulator-check.sh runs this
/// test there too) it lists that device.
#[test]
fn devices_reports_the_driver_and_where_inference_runs() {
    let o = voxkit().arg("devices").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("CUDA driver:")
            && out.contains("needs CUDA driver 12.2 or newer")
            && out.contains("inference (--device auto):"),
        "{out}"
    );
    match std::env::var("VOXKIT_EXPECT_DRIVER").as_deref() {
        Ok("missing") => {
            assert!(out.contains("none found") && out.contains("inference (--device auto): the CPU"), "{out}")
        }
        Ok("ready") if std::env::var("VOXKIT_EMULATED_GPU").is_ok() => {
            assert!(out.contains("cuda:0  voxkit emulated CUDA device"), "{out}");
            assert!(out.contains("inference (--device auto): cuda:0"), "{out}");
        }
        _ => {}
    }
}

/// `--device`: a bad value is a usage error; `cuda` without a usable GPU fails with the reason (no
/// driver in CI), for the post-processing commands too.
#[test]
fn the_device_option_is_checked() {
    let o = voxkit().args(["transcribe", "--device", "tpu", "x.wav"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a device"), "{}", stderr(&o));
    let o = voxkit()
        .args(["enhance", "--device", "cuda:1", "--denoise", "0.5", "in.wav", "-o", "out.wav"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("CUDA device 1:"), "{}", stderr(&o));
    if std::env::var("VOXKIT_EXPECT_DRIVER").as_deref() == Ok("missing") {
        let out = tmp("device-cuda.wav");
        let o = say().args(["--device", "cuda", "-o"]).arg(&out).arg("hello").output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("no CUDA driver"), "{}", stderr(&o));
    }
}

/// `enhance --device cuda` (the denoiser and the resampler on the GPU, channels as one batch) writes
/// what the CPU writes, to float rounding.
#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh"]
fn enhance_on_the_gpu_writes_what_the_cpu_writes() {
    let inp = tmp("gpu-enhance-in.wav");
    let x: Vec<f32> = (0..24000).map(|i| (i as f32 * 0.07).sin() * 0.4 + ((i * 7919) % 113) as f32 / 1130.0).collect();
    write_wav(&inp, &x, 24000, 2, true);
    let mut outs = Vec::new();
    for device in ["cpu", "cuda"] {
        let out = tmp(&format!("gpu-enhance-{device}.wav"));
        let o = voxkit()
            .args(["enhance", "--device", device, "--denoise", "0.8", "--sample-rate", "44100", "-o"])
            .arg(&out)
            .arg(&inp)
            .output()
            .unwrap();
        assert!(o.status.success(), "{device}: {}", stderr(&o));
        assert!(stderr(&o).contains(if device == "cpu" { "(CPU)" } else { "(GPU)" }), "{}", stderr(&o));
        outs.push(read(&out));
    }
    let ((cpu, cspec), (gpu, gspec)) = (&outs[0], &outs[1]);
    assert_eq!((gspec.sample_rate, gspec.channels, gpu.len()), (cspec.sample_rate, cspec.channels, cpu.len()));
    let err = cpu.iter().zip(gpu).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(err < 1e-5, "the GPU's output is {err:e} from the CPU's");
}

/// A device failure inside an op (out of GPU memory at a weight's first use) is one error line and
/// exit 1, not a silent exit 101: the library raises it as an unwind with no panic message.
#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (a 1 MB emulated device)"]
fn a_device_out_of_memory_is_reported() {
    let o = voxkit()
        .env("VOXKIT_EMU_MEMORY_MB", "1")
        .args(["bench", "codec", "--device", "cuda", "--frames", "2", "--model"])
        .arg(tiny_tts())
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("voxkit: error:") && err.contains("OUT_OF_MEMORY"), "{err}");
}

/// `voice create` writes a voice file from a reference WAV (any rate, stereo); `voice show`
/// describes it; `say --voice FILE` and `say --ref-audio` speak with it, and the same seed gives
/// the same audio either way. A Base model without a voice, or a voice file that is not one,
/// fails with a message.
#[test]
fn voices_are_created_shown_and_spoken_with() {
    let base = fixture("tts/tiny-06b-base");
    let reference = tmp("ref.wav");
    let stereo: Vec<f32> =
        (0..16_000 * 2).map(|i| 0.3 * ((i / 2) as f32 * 2.0 * std::f32::consts::PI * 170.0 / 16_000.0).sin()).collect();
    write_wav(&reference, &stereo, 16_000, 2, false);
    let voice = tmp("me.voice");
    let o = voxkit()
        .args(["voice", "create", "--device", "cpu", "--threads", "2", "--model"])
        .arg(&base)
        .arg("--ref-audio")
        .arg(&reference)
        .args(["--ref-text", "This is the reference voice.", "-o"])
        .arg(&voice)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = voxkit().args(["voice", "show"]).arg(&voice).output().unwrap();
    let shown = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success() && shown.contains("in-context") && shown.contains("This is the reference voice."),
        "{shown}"
    );

    let speak = |with: &[&str], out: &Path| {
        let o = voxkit()
            .args(["say", "--device", "cpu", "--threads", "2", "--seed", "3", "--max-new-tokens", "6", "--model"])
            .arg(&base)
            .args(with)
            .arg("-o")
            .arg(out)
            .arg("Hello from a cloned voice.")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        read(out).0
    };
    let from_file = speak(&["--voice", voice.to_str().unwrap()], &tmp("a.wav"));
    let from_ref = speak(
        &["--ref-audio", reference.to_str().unwrap(), "--ref-text", "This is the reference voice."],
        &tmp("b.wav"),
    );
    assert!(!from_file.is_empty());
    assert_eq!(from_file, from_ref, "a saved voice speaks as the one made on the spot");

    let o = voxkit()
        .args(["say", "--device", "cpu", "--model"])
        .arg(&base)
        .args(["-o"])
        .arg(tmp("c.wav"))
        .arg("Hi.")
        .output()
        .unwrap();
    assert!(assert_fails_once(&o, 1).contains("needs a voice"));
    let o = voxkit().args(["voice", "show"]).arg(&reference).output().unwrap();
    assert!(assert_fails_once(&o, 1).contains("not a voxkit voice"));
}

/// `--quant mixed` on the CPU: speech from quantized weights, which the first run caches next to
/// the model and the second maps (the same WAV, byte for byte); int4 everywhere is refused.
#[test]
fn say_with_quantized_weights_caches_them_and_refuses_int4() {
    let model = tmp("tiny-tts-quant");
    let _ = std::fs::remove_dir_all(&model);
    copy_dir(&tiny_tts(), &model);
    let run = |quant: &str, out: &Path| {
        voxkit()
            .args(["say", "--speaker", "vivian", "--seed", "5", "--max-new-tokens", "6", "--threads", "2"])
            .args(["--device", "cpu", "--quant", quant, "--model"])
            .arg(&model)
            .arg("-o")
            .arg(out)
            .arg(TEXT)
            .output()
            .unwrap()
    };
    let (a, b) = (tmp("quant-a.wav"), tmp("quant-b.wav"));
    let o = run("mixed", &a);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(model.join(".voxkit-cache/quant-tts-mixed.bin").is_file(), "the quantized weights were cached");
    let o = run("mixed", &b);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let (samples, _) = wav_bytes(&std::fs::read(&a).unwrap());
    assert!(!samples.is_empty() && samples.iter().all(|s| s.is_finite()));
    let o = run("int4", &b);
    assert!(assert_fails_once(&o, 2).contains("mixed"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&model);
}
