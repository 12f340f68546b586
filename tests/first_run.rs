//! The README's first run, on a fresh machine, against a loopback hub that serves a tiny
//! checkpoint under the default model's id: `voxkit say "Hello" -o hello.wav` with no `--model`
//! fetches the model into the hub cache and speaks; the second run, offline, uses the cache
//! without a connection; `voxkit download` and the offline message without a cache.

#[path = "support/hub_server.rs"]
mod hub_server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;

use hub_server::HubServer;

const DEFAULT_TTS: &str = "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice";
const COMMIT: &str = "feedfacefeedfacefeedfacefeedfacefeedface";

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("voxkit-first-run-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `voxkit` with a clean hub environment: this cache, this endpoint, nothing from the caller's.
fn voxkit(hf_home: &Path, endpoint: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_voxkit"));
    for var in ["HF_HUB_CACHE", "HF_TOKEN", "HF_HUB_OFFLINE", "XDG_CACHE_HOME"] {
        c.env_remove(var);
    }
    c.env("HF_HOME", hf_home).env("HF_ENDPOINT", endpoint);
    c
}

fn tiny_checkpoint(root: &Path) -> PathBuf {
    let dir = root.join("tiny");
    let tok = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer");
    let out = Command::new(env!("CARGO_BIN_EXE_voxkit"))
        .args(["-q", "make-checkpoint", "--preset", "tiny-customvoice", "--seed", "3", "--out"])
        .arg(&dir)
        .arg("--tokenizer")
        .arg(tok)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir
}

#[test]
fn the_readme_first_run_fetches_the_default_model_and_then_runs_offline() {
    let root = temp("say");
    let server = HubServer::start();
    server.add_repo(DEFAULT_TTS, COMMIT, hub_server::files_of(&tiny_checkpoint(&root)));
    let home = root.join("hf-home");
    let wav = root.join("hello.wav");
    // The README's command, as written: no --model.
    let out = voxkit(&home, &server.endpoint).args(["say", "Hello"]).arg("-o").arg(&wav).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let samples = hound::WavReader::open(&wav).unwrap().len();
    assert!(samples > 0);
    let snapshot = home.join("hub/models--Qwen--Qwen3-TTS-12Hz-0.6B-CustomVoice/snapshots").join(COMMIT);
    assert!(snapshot.join("model.safetensors").is_file(), "the model is not in the hub cache layout");
    // Offline, again: from the cache, no connection.
    let connections = server.knobs.connections.load(Ordering::SeqCst);
    let wav2 = root.join("hello2.wav");
    let out = voxkit(&home, &server.endpoint)
        .env("HF_HUB_OFFLINE", "1")
        .args(["say", "Hello"])
        .arg("-o")
        .arg(&wav2)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(server.knobs.connections.load(Ordering::SeqCst), connections, "the cached run used the network");
    // The engine config's model field takes the id too (no network: it is cached).
    let e = {
        // SAFETY-free: the library reads the cache from HubOptions::from_env, so run it in a child.
        let out = voxkit(&home, "http://127.0.0.1:9")
            .env("HF_HUB_OFFLINE", "1")
            .args(["codes", "--model", DEFAULT_TTS, "--max-new-tokens", "3", "Hi."])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(!e.trim().is_empty());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn download_prints_the_folder_and_offline_without_a_cache_says_what_to_do() {
    let root = temp("download");
    let server = HubServer::start();
    server.add_repo("Qwen/Tiny", COMMIT, hub_server::files_of(&tiny_checkpoint(&root)));
    let home = root.join("hf-home");
    let out = voxkit(&home, &server.endpoint).args(["download", "Qwen/Tiny"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let folder = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(folder.ends_with(COMMIT) && folder.join("config.json").is_file(), "{folder:?}");
    // Offline with nothing cached: one line naming the model, the cache and the command.
    let empty = root.join("empty-home");
    let out = voxkit(&empty, &server.endpoint)
        .env("HF_HUB_OFFLINE", "1")
        .args(["say", "Hi"])
        .arg("-o")
        .arg(root.join("x.wav"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(DEFAULT_TTS) && err.contains("voxkit download") && err.contains("empty-home"), "{err}");
    // A value that is neither a folder nor an id.
    let out = voxkit(&home, &server.endpoint)
        .args(["say", "--model", "/no/such/dir", "Hi", "-o"])
        .arg(root.join("y.wav"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/dir"));
    let _ = std::fs::remove_dir_all(&root);
}

/// Runs in a child process of `the_engine_config_takes_a_hub_id` (which sets the hub environment
/// for it alone); a no-op in the normal run.
#[test]
fn engine_child() {
    let Ok(id) = std::env::var("VOXKIT_FIRST_RUN_CHILD") else { return };
    let e = voxkit::Engine::new(voxkit::EngineConfig {
        tts_model_dir: Some(id.into()),
        cpu_threads: 1,
        max_batch: 1,
        ..Default::default()
    })
    .unwrap();
    let job =
        e.submit_tts(voxkit::TtsRequest { text: "Hello.".into(), max_new_tokens: 4, ..Default::default() }).unwrap();
    let info = e.wait(job, Some(std::time::Duration::from_secs(120))).unwrap();
    assert_eq!(info.state, voxkit::JobState::Done, "{:?}", info.error);
    assert!(info.samples_total > 0);
}

#[test]
fn the_engine_config_takes_a_hub_id() {
    let root = temp("engine");
    let server = HubServer::start();
    server.add_repo(DEFAULT_TTS, COMMIT, hub_server::files_of(&tiny_checkpoint(&root)));
    let home = root.join("hf-home");
    let run = |endpoint: &str, offline: bool| {
        let mut c = Command::new(std::env::current_exe().unwrap());
        for var in ["HF_HUB_CACHE", "HF_TOKEN", "HF_HUB_OFFLINE", "XDG_CACHE_HOME"] {
            c.env_remove(var);
        }
        if offline {
            c.env("HF_HUB_OFFLINE", "1");
        }
        let out = c
            .env("HF_HOME", &home)
            .env("HF_ENDPOINT", endpoint)
            .env("VOXKIT_FIRST_RUN_CHILD", DEFAULT_TTS)
            .args(["engine_child", "--exact", "--test-threads=1"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    };
    run(&server.endpoint, false);
    assert!(server.knobs.connections.load(Ordering::SeqCst) > 0);
    let connections = server.knobs.connections.load(Ordering::SeqCst);
    run("http://127.0.0.1:9", true);
    assert_eq!(server.knobs.connections.load(Ordering::SeqCst), connections);
    let _ = std::fs::remove_dir_all(&root);
}
