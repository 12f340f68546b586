//! Models by hub id against a loopback hub (tests/support/hub_server.rs): download into the
//! Python tools' cache layout, resume, checksum mismatch, offline with and without the cache.

#[path = "support/hub_server.rs"]
mod hub_server;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use hub_server::{HubFile, HubServer};
use voxkit::engine::fetch::{HubOptions, parse_repo_id, resolve_model};

const REPO: &str = "Qwen/Tiny-Model";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const REQUIRED: [&str; 3] = ["config.json", "model.safetensors", "speech_tokenizer/config.json"];

fn files() -> Vec<HubFile> {
    // Pseudo-random bytes (xorshift), so a corrupted or misplaced byte changes the hash.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let big: Vec<u8> = (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    vec![
        HubFile { path: "config.json".into(), bytes: br#"{"model_type": "tiny"}"#.to_vec(), lfs: false },
        HubFile { path: "merges.txt".into(), bytes: b"#version: 0.2\na b\n".to_vec(), lfs: false },
        HubFile { path: "model.safetensors".into(), bytes: big, lfs: true },
        HubFile { path: "speech_tokenizer/config.json".into(), bytes: br#"{"rate": 24000}"#.to_vec(), lfs: false },
    ]
}

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("voxkit-fetch-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn options(endpoint: &str, cache: &Path) -> HubOptions {
    HubOptions { endpoint: endpoint.into(), cache_dir: cache.into(), offline: false, token: None, progress: None }
}

fn served() -> HubServer {
    let s = HubServer::start();
    s.add_repo(REPO, COMMIT, files());
    s
}

/// A closed port: any attempt to connect fails.
fn nowhere() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

fn assert_files_match(snap: &Path) {
    for f in files() {
        assert_eq!(std::fs::read(snap.join(&f.path)).unwrap(), f.bytes, "{}", f.path);
    }
}

#[test]
fn downloads_into_the_python_cache_layout() {
    let server = served();
    let cache = temp("fresh");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut opts = options(&server.endpoint, &cache);
    let s = seen.clone();
    opts.progress = Some(std::sync::Arc::new(move |p: &voxkit::engine::fetch::DownloadProgress| {
        s.lock().unwrap().push((p.files_done, p.files_total))
    }));
    let snap = resolve_model(Path::new(REPO), &REQUIRED, &opts).unwrap();
    let folder = cache.join("models--Qwen--Tiny-Model");
    assert_eq!(snap, folder.join("snapshots").join(COMMIT));
    assert_files_match(&snap);
    assert_eq!(std::fs::read_to_string(folder.join("refs/main")).unwrap(), COMMIT);
    for f in files() {
        let link = snap.join(&f.path);
        let target = std::fs::read_link(&link).expect("the snapshot holds links, as the Python tools make them");
        assert!(target.is_relative(), "{target:?}");
        assert!(target.ends_with(Path::new("blobs").join(f.blob_id())), "{target:?}");
        assert!(folder.join("blobs").join(f.blob_id()).is_file());
    }
    assert_eq!(seen.lock().unwrap().last(), Some(&(4, 4)), "the progress reached every file");
    // Second time: from the cache, without a single connection.
    let before = server.knobs.connections.load(Ordering::SeqCst);
    assert_eq!(resolve_model(Path::new(REPO), &REQUIRED, &opts).unwrap(), snap);
    assert_eq!(server.knobs.connections.load(Ordering::SeqCst), before);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_revision_and_a_commit_are_honoured() {
    let server = served();
    let cache = temp("rev");
    let opts = options(&server.endpoint, &cache);
    let snap = resolve_model(Path::new(&format!("{REPO}@{COMMIT}")), &REQUIRED, &opts).unwrap();
    assert!(snap.ends_with(COMMIT));
    assert_files_match(&snap);
    // A commit needs no ref; a revision the hub does not know is an error naming it.
    assert!(!cache.join("models--Qwen--Tiny-Model/refs").join(COMMIT).exists());
    let err = resolve_model(Path::new(&format!("{REPO}@v9")), &REQUIRED, &opts).unwrap_err();
    assert!(err.message.contains("v9") && err.message.contains("404"), "{}", err.message);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn an_interrupted_transfer_resumes_where_it_stopped() {
    let server = served();
    let cache = temp("resume");
    let opts = options(&server.endpoint, &cache);
    server.knobs.cut_next_after.store(100_000, Ordering::SeqCst);
    let err = resolve_model(Path::new(REPO), &REQUIRED, &opts).unwrap_err();
    assert!(err.message.contains("resume"), "{}", err.message);
    assert!(!cache.join("models--Qwen--Tiny-Model/refs/main").exists(), "a half-done download has no ref");
    let sent_first = server.knobs.file_bytes_sent.load(Ordering::SeqCst);
    let snap = resolve_model(Path::new(REPO), &REQUIRED, &opts).unwrap();
    assert_files_match(&snap);
    let sent_second = server.knobs.file_bytes_sent.load(Ordering::SeqCst) - sent_first;
    assert!(server.knobs.range_requests.load(Ordering::SeqCst) >= 1, "the second run sent no Range");
    assert!(sent_second < 300_000, "the second run fetched {sent_second} bytes: the whole file again");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_server_that_ignores_range_still_gives_a_correct_file() {
    let server = served();
    let cache = temp("norange");
    let opts = options(&server.endpoint, &cache);
    server.knobs.cut_next_after.store(50_000, Ordering::SeqCst);
    assert!(resolve_model(Path::new(REPO), &REQUIRED, &opts).is_err());
    server.knobs.ignore_range.store(true, Ordering::SeqCst);
    let snap = resolve_model(Path::new(REPO), &REQUIRED, &opts).unwrap();
    assert_files_match(&snap);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_checksum_mismatch_is_an_error_and_nothing_is_kept() {
    let server = served();
    let cache = temp("corrupt");
    let opts = options(&server.endpoint, &cache);
    server.knobs.corrupt.store(true, Ordering::SeqCst);
    let err = resolve_model(Path::new(REPO), &REQUIRED, &opts).unwrap_err();
    assert!(err.message.contains("sha256") && err.message.contains("model.safetensors"), "{}", err.message);
    let folder = cache.join("models--Qwen--Tiny-Model");
    assert!(!folder.join("refs/main").exists());
    assert!(!folder.join("snapshots").join(COMMIT).join("model.safetensors").exists());
    let leftovers: Vec<_> = std::fs::read_dir(folder.join("blobs")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(leftovers.iter().all(|n| !n.to_string_lossy().contains(&files()[2].sha256())), "{leftovers:?}");
    // Offline afterwards: still not a model.
    let off = HubOptions { offline: true, ..opts.clone() };
    assert!(resolve_model(Path::new(REPO), &REQUIRED, &off).is_err());
    // Fixed server: it downloads.
    server.knobs.corrupt.store(false, Ordering::SeqCst);
    assert_files_match(&resolve_model(Path::new(REPO), &REQUIRED, &opts).unwrap());
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn offline_uses_the_cache_and_says_what_to_fetch_without_it() {
    let server = served();
    let cache = temp("offline");
    let opts = options(&server.endpoint, &cache);
    let snap = resolve_model(Path::new(REPO), &REQUIRED, &opts).unwrap();
    let connections = server.knobs.connections.load(Ordering::SeqCst);
    for endpoint in [server.endpoint.clone(), nowhere()] {
        let off = HubOptions { offline: true, endpoint, ..opts.clone() };
        assert_eq!(resolve_model(Path::new(REPO), &REQUIRED, &off).unwrap(), snap);
        // Online with the cache complete: no connection either.
        let on = HubOptions { offline: false, ..off };
        assert_eq!(resolve_model(Path::new(REPO), &REQUIRED, &on).unwrap(), snap);
    }
    assert_eq!(server.knobs.connections.load(Ordering::SeqCst), connections, "the cache was not enough");
    let empty = temp("offline-empty");
    let off = HubOptions { offline: true, ..options(&server.endpoint, &empty) };
    let err = resolve_model(Path::new(REPO), &REQUIRED, &off).unwrap_err();
    assert!(err.message.contains(REPO) && err.message.contains(&empty.display().to_string()), "{}", err.message);
    assert!(err.message.contains("voxkit download"), "{}", err.message);
    assert_eq!(server.knobs.connections.load(Ordering::SeqCst), connections);
    // Online, the hub unreachable: one message naming the endpoint and the way around it.
    let err = resolve_model(Path::new(REPO), &REQUIRED, &options(&nowhere(), &empty)).unwrap_err();
    assert!(err.message.contains("HF_HUB_OFFLINE"), "{}", err.message);
    let _ = std::fs::remove_dir_all(&cache);
    let _ = std::fs::remove_dir_all(&empty);
}

/// A cache the Python tools wrote (blobs, relative links, a ref) is used as it is.
#[test]
fn a_cache_laid_out_by_the_python_tools_is_reused() {
    let cache = temp("python");
    let folder = cache.join("models--Qwen--Tiny-Model");
    let snap = folder.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(folder.join("blobs")).unwrap();
    std::fs::create_dir_all(folder.join("refs")).unwrap();
    std::fs::write(folder.join("refs/main"), COMMIT).unwrap();
    for f in files() {
        std::fs::write(folder.join("blobs").join(f.blob_id()), &f.bytes).unwrap();
        let link = snap.join(&f.path);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        let up = "../".repeat(f.path.matches('/').count() + 2);
        std::os::unix::fs::symlink(format!("{up}blobs/{}", f.blob_id()), &link).unwrap();
    }
    let opts = options(&nowhere(), &cache);
    assert_eq!(resolve_model(Path::new(REPO), &REQUIRED, &opts).unwrap(), snap);
    assert_files_match(&snap);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn folders_pass_through_and_bad_ids_and_paths_are_refused() {
    let dir = temp("folder");
    let opts = options(&nowhere(), &dir.join("cache"));
    assert_eq!(resolve_model(&dir, &REQUIRED, &opts).unwrap(), dir);
    for bad in ["a/b/c", "../x", "/abs/x", "org/..", "-o/x", "org/na me", "org/x@", "org/x@../main", "noslash"] {
        assert!(parse_repo_id(bad).is_none(), "{bad} parsed");
    }
    assert_eq!(parse_repo_id("Qwen/Qwen3-ASR-0.6B"), Some(("Qwen/Qwen3-ASR-0.6B".into(), "main".into())));
    assert_eq!(parse_repo_id("Qwen/x@v1.0"), Some(("Qwen/x".into(), "v1.0".into())));
    let err = resolve_model(Path::new("/no/such/folder"), &REQUIRED, &opts).unwrap_err();
    assert!(err.message.contains("/no/such/folder"), "{}", err.message);
    // A hub that lists a file outside the snapshot is refused before anything is written.
    let server = HubServer::start();
    let mut evil = files();
    evil.push(HubFile { path: "../../escape.txt".into(), bytes: b"x".to_vec(), lfs: false });
    server.add_repo("Evil/Model", COMMIT, evil);
    let cache = dir.join("evil-cache");
    let err = resolve_model(Path::new("Evil/Model"), &REQUIRED, &options(&server.endpoint, &cache)).unwrap_err();
    assert!(err.message.contains("escape.txt"), "{}", err.message);
    assert!(!dir.join("escape.txt").exists() && !cache.join("escape.txt").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_authorization_header_follows_a_redirect() {
    let server = served();
    let cache = temp("auth");
    let opts = HubOptions { token: Some("secret".into()), ..options(&server.endpoint, &cache) };
    resolve_model(Path::new(REPO), &REQUIRED, &opts).unwrap();
    assert_eq!(server.knobs.auth_on_redirect.load(Ordering::SeqCst), 0);
    let _ = std::fs::remove_dir_all(&cache);
}
