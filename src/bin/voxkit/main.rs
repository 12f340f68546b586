//! The voxkit command line: speak, transcribe, enhance, write random-weight checkpoints, and
//! benchmark. It parses arguments (clap, `cli.rs`), calls the library and prints; the work is in
//! the library.
//!
//! Exit status: 0 success, 1 the work failed, 2 the command line is wrong. Every error is one
//! line `voxkit: error: ...` on stderr, printed once, here.

use std::process::ExitCode;

use clap::Parser;

mod bench;
mod cli;
mod devices;
mod enhance;
mod inout;
mod make_checkpoint;
mod model_arg;
mod random_checkpoint;
mod say;
mod transcribe;
mod ui;
mod voice;
mod wav;

/// Why a command failed: a message for the one error line, and whether the command line was
/// at fault (exit 2) or the work (exit 1).
#[derive(Debug)]
pub struct Fail {
    pub message: String,
    pub usage: bool,
}

impl Fail {
    /// A command-line error that clap cannot see (e.g. no TEXT and no stdin): exit 2.
    pub fn usage(message: impl Into<String>) -> Fail {
        Fail { message: message.into(), usage: true }
    }
}

impl From<String> for Fail {
    fn from(message: String) -> Fail {
        Fail { message, usage: false }
    }
}

impl From<&str> for Fail {
    fn from(message: &str) -> Fail {
        Fail { message: message.to_string(), usage: false }
    }
}

impl From<voxkit::Error> for Fail {
    fn from(e: voxkit::Error) -> Fail {
        Fail { message: e.message, usage: false }
    }
}

/// Exit status 1: the work failed.
const EXIT_FAILED: u8 = 1;
/// Exit status 2: the command line is wrong (clap's own code for its errors).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    let ui = ui::Ui::new(cli.verbosity);
    use cli::{Bench, Command, VoiceCommand};
    // A device failure inside an op (a GPU out of memory) unwinds with the library's Error as its
    // payload and no panic message (voxkit's cuda::memory::raise): report it as a failed command,
    // not a silent exit 101. Real panics go on unwinding as before.
    let run = || match &cli.command {
        Command::Say(a) => say::say(a, &ui),
        Command::Codes(a) => say::codes(a, &ui),
        Command::Transcribe(a) => transcribe::transcribe(a, &ui),
        Command::Enhance(a) => enhance::enhance(a, &ui),
        Command::MakeCheckpoint(a) => make_checkpoint::make_checkpoint(a, &ui),
        Command::Download(a) => model_arg::download(a, &ui),
        Command::Devices => devices::devices(&ui),
        Command::Voice(VoiceCommand::Create(a)) => voice::create(a, &ui),
        Command::Voice(VoiceCommand::Show(a)) => voice::show(a),
        Command::Bench(Bench::Tts(a)) => bench::tts(a, &ui),
        Command::Bench(Bench::Codec(a)) => bench::codec(a, &ui),
        Command::Bench(Bench::Post(a)) => bench::post(a, &ui),
        Command::Bench(Bench::Asr(a)) => bench::asr(a, &ui),
        Command::Bench(Bench::Voice(a)) => bench::voice(a, &ui),
    };
    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(result) => result,
        Err(payload) => match payload.downcast::<voxkit::Error>() {
            Ok(e) => Err(Fail::from(*e)),
            Err(payload) => std::panic::resume_unwind(payload),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("voxkit: error: {}", one_line(&f.message));
            ExitCode::from(if f.usage { EXIT_USAGE } else { EXIT_FAILED })
        }
    }
}

/// Help and version go to stdout (exit 0); a bare `voxkit` or `voxkit bench` prints the help
/// on stderr (exit 2); a parse error becomes one line, with clap's tip (a similar option) kept
/// and the command's `--help` named instead of the usage.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind as K;
    if matches!(e.kind(), K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand) {
        let _ = e.print();
        return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
    }
    let text = e.render().to_string();
    let (mut message, mut tips) = (String::new(), Vec::new());
    let mut in_message = true;
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            in_message = false;
        } else if let Some(m) = line.strip_prefix("error: ") {
            message.push_str(m);
        } else if let Some(t) = line.strip_prefix("tip: ") {
            tips.push(t.to_string());
        } else if line.starts_with("Usage: ") || line.starts_with("For more information") {
            in_message = false;
        } else if in_message {
            message.push(' ');
            message.push_str(line);
        }
    }
    let tips = if tips.is_empty() { String::new() } else { format!(" ({})", tips.join("; ")) };
    eprintln!("voxkit: error: {}{tips}; see `{} --help`", message.trim(), command_path());
    ExitCode::from(EXIT_USAGE)
}

/// The (sub)command the arguments name, e.g. `voxkit bench tts`: the leading words that are
/// subcommand names (before them only flags without values can stand).
fn command_path() -> String {
    use clap::CommandFactory;
    let mut command = cli::Cli::command();
    let mut path = vec!["voxkit".to_string()];
    for arg in std::env::args().skip(1) {
        if arg.starts_with('-') {
            continue;
        }
        let Some(sub) = command.find_subcommand(&arg).cloned() else { break };
        path.push(sub.get_name().to_string());
        command = sub;
    }
    path.join(" ")
}

/// A message on one line (a multi-line error from below is joined with "; ").
fn one_line(message: &str) -> String {
    message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}
