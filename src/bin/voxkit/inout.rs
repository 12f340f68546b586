//! Where a command's input comes from and its output goes: files, or stdin and stdout for `-`
//! (as piper users expect). An output file is checked, and opened, before any work starts.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Cursor, IsTerminal, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::Fail;
use crate::wav;

/// The text to speak: the TEXT words joined with spaces, or stdin (UTF-8, trimmed) for `-` or
/// for no TEXT while stdin is not a terminal.
pub fn read_text(words: &[String]) -> Result<String, Fail> {
    let stdin = std::io::stdin();
    match words {
        [w] if w == "-" => {}
        [] if stdin.is_terminal() => {
            return Err(Fail::usage("no text to speak: give TEXT, or `-` to read it from stdin"));
        }
        [] => {}
        _ => return Ok(words.join(" ")),
    }
    let mut bytes = Vec::new();
    stdin.lock().read_to_end(&mut bytes).map_err(|e| format!("stdin: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|e| format!("stdin: the text is not UTF-8 ({e})"))?;
    let text = text.trim();
    if text.is_empty() {
        return Err("no text to speak: stdin was empty".into());
    }
    Ok(text.to_string())
}

/// A WAV file, or stdin for `-`.
pub fn read_wav(input: &str) -> Result<wav::Wav, Fail> {
    if input == "-" {
        return Ok(wav::read_from(std::io::stdin().lock(), "stdin")?);
    }
    let file = File::open(input).map_err(|e| format!("{input}: {e}"))?;
    Ok(wav::read_from(std::io::BufReader::new(file), input)?)
}

/// An output WAV checked before the work: stdout, or a file that can be written.
pub struct Output {
    target: Target,
    /// The file did not exist and was created by `prepare`: removed again unless written.
    created: bool,
    written: bool,
}

enum Target {
    Stdout,
    /// A regular file, open for writing (not truncated yet).
    File(PathBuf, File),
    /// Something else that exists and is not a folder (`/dev/null`, a FIFO): opened at the end.
    Special(PathBuf),
}

impl Output {
    /// `-` is stdout. A path must not be a folder, and its folder must exist; a new file is
    /// created now (empty; removed if the command fails), an existing one is opened for writing
    /// without changing it, so that a path that cannot be written fails before the work starts.
    pub fn prepare(spec: &str) -> Result<Output, Fail> {
        if spec == "-" {
            return Ok(Output { target: Target::Stdout, created: false, written: false });
        }
        if spec.is_empty() {
            return Err(Fail::usage("the output path is empty (-o OUT.wav, or -o - for stdout)"));
        }
        let path = PathBuf::from(spec);
        let open_err = |e: std::io::Error| format!("{spec}: cannot write the output: {e}");
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => Err(format!("{spec}: is a folder; -o takes a file name").into()),
            Ok(m) if m.is_file() => {
                let file = OpenOptions::new().write(true).open(&path).map_err(open_err)?;
                Ok(Output { target: Target::File(path, file), created: false, written: false })
            }
            Ok(_) => Ok(Output { target: Target::Special(path), created: false, written: false }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let parent = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                match std::fs::metadata(parent) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Err(format!("{spec}: {} is not a folder", parent.display()).into()),
                    Err(_) => return Err(format!("{spec}: the folder {} does not exist", parent.display()).into()),
                }
                let file = OpenOptions::new().write(true).create_new(true).open(&path).map_err(open_err)?;
                Ok(Output { target: Target::File(path, file), created: true, written: false })
            }
            Err(e) => Err(format!("{spec}: {e}").into()),
        }
    }

    /// The output's name in messages: the path, or "stdout".
    pub fn name(&self) -> String {
        match &self.target {
            Target::Stdout => "stdout".into(),
            Target::File(p, _) | Target::Special(p) => p.display().to_string(),
        }
    }

    /// Writes the WAV (replacing what an existing file held).
    pub fn write_wav(&mut self, samples: &[f32], rate: u32, channels: u16, format: wav::Format) -> Result<(), Fail> {
        let name = self.name();
        let in_memory = |samples: &[f32]| -> Result<Vec<u8>, String> {
            let mut buf = Cursor::new(Vec::new());
            wav::write_to(&mut buf, &name, samples, rate, channels, format)?;
            Ok(buf.into_inner())
        };
        match &mut self.target {
            Target::Stdout => {
                let bytes = in_memory(samples)?;
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes).and_then(|()| out.flush()).map_err(|e| format!("stdout: {e}"))?;
            }
            Target::File(_, file) => {
                let err = |e: std::io::Error| format!("{name}: {e}");
                file.set_len(0).map_err(err)?;
                file.rewind().map_err(err)?;
                wav::write_to(BufWriter::new(&mut *file), &name, samples, rate, channels, format)?;
            }
            Target::Special(path) => {
                let bytes = in_memory(samples)?;
                std::fs::write(&*path, bytes).map_err(|e| format!("{name}: {e}"))?;
            }
        }
        self.written = true;
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let (true, false, Target::File(path, _)) = (self.created, self.written, &self.target) {
            let _ = std::fs::remove_file(path);
        }
    }
}
