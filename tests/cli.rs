//! The command line as a user runs it: `voxkit transcribe` (text and `--json`) on the tiny ASR
//! fixture, and `voxkit enhance` on WAV files of several formats.

use std::path::{Path, PathBuf};
use std::process::Command;

fn voxkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_voxkit"))
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
