//! Models by hub id: `Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice` (optionally `@revision`) names a
//! model on the Hugging Face Hub; this module finds it in the standard cache or fetches it there.
//!
//! - **The cache is the Python tools' one** (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//!   `~/.cache/huggingface/hub`) in their layout: `models--{org}--{name}/blobs/<id>`, the files of
//!   a commit as relative links in `snapshots/<commit>/`, and `refs/<revision>` holding the
//!   commit. A blob is named by the LFS sha256, or by git's blob sha1 for small files, so a
//!   model fetched by `huggingface-cli` is reused and the other way round.
//! - **Cache first**: a revision whose snapshot holds the files a model needs is used without any
//!   network attempt, online or offline (a game starts offline at once; updating is an explicit
//!   `voxkit download`). Offline (`HF_HUB_OFFLINE`) and not cached: one message saying what to
//!   fetch and where it goes.
//! - **Downloads** are resumable (a `blobs/<id>.incomplete` file continues with a `Range`
//!   request), verified (size and sha256 / git sha1 from the hub's metadata, before the blob gets
//!   its name) and atomic (links are made only to verified blobs and `refs/<revision>` is written
//!   last, so a half-done download is never taken for a complete one).
//!
//! The protocol is two endpoints (`/api/models/{repo}/revision/{rev}?blobs=true` for the file
//! list with sizes and hashes, `/{repo}/resolve/{commit}/{file}` for the bytes), written here on
//! `ureq`: the `hf-hub` crate's blocking API verifies no hash and does not resume a partial file.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha1::Digest as _;

use crate::error::{Error, ErrorKind, Result};

/// Where a download stands, for a progress bar.
#[derive(Clone, Debug, Default)]
pub struct DownloadProgress {
    pub repo: String,
    /// The file being fetched.
    pub file: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub files_done: usize,
    pub files_total: usize,
}

pub type ProgressFn = Arc<dyn Fn(&DownloadProgress) + Send + Sync>;

/// How to reach the hub and where its cache is.
#[derive(Clone)]
pub struct HubOptions {
    /// e.g. `https://huggingface.co` (no trailing slash).
    pub endpoint: String,
    /// The hub cache folder (the one holding `models--…` folders).
    pub cache_dir: PathBuf,
    /// Never touch the network.
    pub offline: bool,
    pub token: Option<String>,
    pub progress: Option<ProgressFn>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl HubOptions {
    /// The options the Python `huggingface_hub` would use: `HF_ENDPOINT`, `HF_HUB_CACHE` /
    /// `HF_HOME` / `XDG_CACHE_HOME`, `HF_HUB_OFFLINE`, `HF_TOKEN`.
    pub fn from_env() -> HubOptions {
        let home = || env("HOME").or_else(|| env("USERPROFILE")).map(PathBuf::from).unwrap_or_else(|| ".".into());
        let cache_dir = env("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|| {
            let hf_home = env("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
                env("XDG_CACHE_HOME").map(PathBuf::from).unwrap_or_else(|| home().join(".cache")).join("huggingface")
            });
            hf_home.join("hub")
        });
        let offline = env("HF_HUB_OFFLINE")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        HubOptions {
            endpoint: env("HF_ENDPOINT")
                .unwrap_or_else(|| "https://huggingface.co".into())
                .trim_end_matches('/')
                .into(),
            cache_dir,
            offline,
            token: env("HF_TOKEN"),
            progress: None,
        }
    }
}

fn fetch_error(msg: String) -> Error {
    Error::new(ErrorKind::ModelLoad, msg)
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && !s.starts_with(['-', '.'])
        && !s.contains("..")
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `org/name` or `org/name@revision` → (`org/name`, revision; `main` when none).
pub fn parse_repo_id(spec: &str) -> Option<(String, String)> {
    let (repo, rev) = match spec.split_once('@') {
        Some((r, v)) => (r, v),
        None => (spec, "main"),
    };
    let (org, name) = repo.split_once('/')?;
    if !valid_part(org) || !valid_part(name) {
        return None;
    }
    let rev_ok = !rev.is_empty()
        && rev.len() <= 128
        && !rev.contains("..")
        && !rev.starts_with(['-', '.', '/'])
        && rev.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    rev_ok.then(|| (repo.to_string(), rev.to_string()))
}

fn repo_folder(opts: &HubOptions, repo: &str) -> PathBuf {
    opts.cache_dir.join(format!("models--{}", repo.replace('/', "--")))
}

fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// A revision's snapshot when the cache has it with every `required` file.
fn cached_snapshot(folder: &Path, rev: &str, required: &[&str]) -> Option<PathBuf> {
    let commit = if is_commit(rev) {
        rev.to_string()
    } else {
        std::fs::read_to_string(folder.join("refs").join(rev)).ok()?.trim().to_string()
    };
    if !is_commit(&commit) {
        return None;
    }
    let snap = folder.join("snapshots").join(&commit);
    required.iter().all(|f| snap.join(f).is_file()).then_some(snap)
}

/// The folder a `--model` value or an engine config's model field names: an existing folder as
/// it is; a hub id as its cached snapshot, fetched first when the cache lacks any of `required`.
pub fn resolve_model(spec: &Path, required: &[&str], opts: &HubOptions) -> Result<PathBuf> {
    if spec.is_dir() {
        return Ok(spec.to_path_buf());
    }
    let text = spec.to_str().unwrap_or("");
    let Some((repo, rev)) = parse_repo_id(text) else {
        return Err(fetch_error(format!(
            "model {} is neither a folder nor a hub id (org/name, optionally @revision)",
            spec.display()
        )));
    };
    let folder = repo_folder(opts, &repo);
    if let Some(snap) = cached_snapshot(&folder, &rev, required) {
        return Ok(snap);
    }
    if opts.offline {
        return Err(fetch_error(format!(
            "model {repo} (revision {rev}) is not in the hub cache {} and HF_HUB_OFFLINE is set: fetch it \
             once with `voxkit download {text}` (or `huggingface-cli download {repo}`) while online, \
             or give a checkpoint folder instead",
            opts.cache_dir.display()
        )));
    }
    let snap = download(&repo, &rev, opts)?;
    if let Some(missing) = required.iter().find(|f| !snap.join(f).is_file()) {
        return Err(fetch_error(format!("model {repo} (revision {rev}) has no {missing}: is it the right model?")));
    }
    Ok(snap)
}

#[derive(serde::Deserialize)]
struct RepoInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(serde::Deserialize)]
struct Sibling {
    rfilename: String,
    size: Option<u64>,
    #[serde(rename = "blobId")]
    blob_id: Option<String>,
    lfs: Option<Lfs>,
}

#[derive(serde::Deserialize)]
struct Lfs {
    sha256: String,
    size: u64,
}

/// A file of the revision: where it goes and how to check it.
struct Wanted {
    path: String,
    blob: String,
    size: u64,
    lfs: bool,
}

/// A repository file name that may name a file under the snapshot: relative, no `..`, no
/// backslashes or drive letters.
fn safe_relative(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('\\')
        && !name.contains(':')
        && Path::new(name).components().all(|c| matches!(c, Component::Normal(_)))
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout_read(Duration::from_secs(60))
        .redirects(8)
        .build()
}

fn unreachable(opts: &HubOptions, repo: &str, e: impl std::fmt::Display) -> Error {
    fetch_error(format!(
        "cannot fetch model {repo} from {}: {e} (with the model in the hub cache {}, or a checkpoint \
         folder, HF_HUB_OFFLINE=1 avoids the network)",
        opts.endpoint,
        opts.cache_dir.display()
    ))
}

#[allow(clippy::result_large_err)] // ureq's own error type, matched on at once by the callers
fn get(
    agent: &ureq::Agent,
    url: &str,
    opts: &HubOptions,
    range_from: u64,
) -> std::result::Result<ureq::Response, ureq::Error> {
    let mut req = agent.get(url).set("User-Agent", concat!("voxkit/", env!("CARGO_PKG_VERSION")));
    if let Some(t) = &opts.token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    if range_from > 0 {
        req = req.set("Range", &format!("bytes={range_from}-"));
    }
    req.call()
}

/// Fetches every file of `repo` at `rev` into the cache (what is there already is kept) and
/// returns the snapshot folder. Always asks the hub which commit the revision is.
pub fn download(repo: &str, rev: &str, opts: &HubOptions) -> Result<PathBuf> {
    if opts.offline {
        return Err(fetch_error(format!("cannot fetch model {repo}: HF_HUB_OFFLINE is set")));
    }
    let agent = agent();
    // 1. The revision's commit and files, with sizes and hashes.
    // A revision such as `refs/pr/1` is one path segment: its slashes are encoded.
    let url = format!("{}/api/models/{repo}/revision/{}?blobs=true", opts.endpoint, rev.replace('/', "%2F"));
    let info: RepoInfo = match get(&agent, &url, opts, 0) {
        Ok(r) => {
            let mut body = Vec::new();
            r.into_reader().take(64 << 20).read_to_end(&mut body).map_err(|e| unreachable(opts, repo, e))?;
            serde_json::from_slice(&body)
                .map_err(|e| fetch_error(format!("the hub's answer about {repo} is not what voxkit expects: {e}")))?
        }
        Err(ureq::Error::Status(code, _)) => {
            return Err(fetch_error(format!(
                "the hub at {} has no model {repo} at revision {rev} (HTTP {code}; a private or gated model \
                 needs HF_TOKEN)",
                opts.endpoint
            )));
        }
        Err(e) => return Err(unreachable(opts, repo, e)),
    };
    if !is_commit(&info.sha) {
        return Err(fetch_error(format!("the hub named commit {:?} for {repo}@{rev}, not a commit hash", info.sha)));
    }
    let mut wanted = Vec::with_capacity(info.siblings.len());
    for s in &info.siblings {
        if !safe_relative(&s.rfilename) {
            return Err(fetch_error(format!(
                "the hub lists a file {:?} in {repo}, which is not a safe path",
                s.rfilename
            )));
        }
        let (blob, size, lfs) = match (&s.lfs, &s.blob_id, s.size) {
            (Some(l), _, _) => (l.sha256.to_ascii_lowercase(), l.size, true),
            (None, Some(b), Some(size)) => (b.to_ascii_lowercase(), size, false),
            _ => return Err(fetch_error(format!("the hub gave no size or hash for {} in {repo}", s.rfilename))),
        };
        let hex_len = if lfs { 64 } else { 40 };
        if blob.len() != hex_len || !blob.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(fetch_error(format!("the hub gave a malformed hash {blob:?} for {} in {repo}", s.rfilename)));
        }
        wanted.push(Wanted { path: s.rfilename.clone(), blob, size, lfs });
    }
    // 2. Each blob, verified, then its link in the snapshot.
    let folder = repo_folder(opts, repo);
    let blobs = folder.join("blobs");
    let snap = folder.join("snapshots").join(&info.sha);
    let io = |what: &str, p: &Path, e: std::io::Error| fetch_error(format!("cannot {what} {}: {e}", p.display()));
    std::fs::create_dir_all(&blobs).map_err(|e| io("create", &blobs, e))?;
    let mut progress = DownloadProgress { repo: repo.into(), files_total: wanted.len(), ..Default::default() };
    for w in &wanted {
        progress.file = w.path.clone();
        progress.bytes_total = w.size;
        progress.bytes_done = 0;
        let blob = blobs.join(&w.blob);
        let complete = std::fs::metadata(&blob).is_ok_and(|m| m.len() == w.size);
        if !complete {
            let url = format!("{}/{repo}/resolve/{}/{}", opts.endpoint, info.sha, w.path);
            fetch_blob(&agent, &url, w, &blob, opts, &mut progress)?;
        }
        link(&snap, &w.path, &w.blob).map_err(|e| io("link", &snap.join(&w.path), e))?;
        progress.files_done += 1;
        progress.bytes_done = w.size;
        if let Some(p) = &opts.progress {
            p(&progress);
        }
    }
    std::fs::create_dir_all(&snap).map_err(|e| io("create", &snap, e))?;
    // 3. The ref last: only now is the revision complete in the cache.
    if rev != info.sha {
        let refs = folder.join("refs");
        let target = refs.join(rev);
        let parent = target.parent().unwrap_or(&refs).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|e| io("create", &parent, e))?;
        let tmp = parent.join(format!(
            ".{}.tmp{}",
            target.file_name().and_then(|n| n.to_str()).unwrap_or("ref"),
            std::process::id()
        ));
        std::fs::write(&tmp, &info.sha).map_err(|e| io("write", &tmp, e))?;
        std::fs::rename(&tmp, &target).map_err(|e| io("write", &target, e))?;
    }
    Ok(snap)
}

/// The hash a blob is named by: sha256 for LFS files, git's `sha1("blob <len>\0" + bytes)`.
enum Hasher {
    Sha256(sha2::Sha256),
    GitSha1(sha1::Sha1),
}

impl Hasher {
    fn new(w: &Wanted) -> Hasher {
        if w.lfs {
            Hasher::Sha256(sha2::Sha256::new())
        } else {
            let mut h = sha1::Sha1::new();
            h.update(format!("blob {}\0", w.size).as_bytes());
            Hasher::GitSha1(h)
        }
    }
    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::GitSha1(h) => h.update(b),
        }
    }
    /// Feeds a whole file (the part of a blob an earlier run fetched).
    fn update_from_file(&mut self, path: &Path) -> std::io::Result<()> {
        let mut f = std::fs::File::open(path)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            self.update(&buf[..n]);
        }
    }
    fn hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::GitSha1(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Downloads one blob to `<blob>.incomplete` (continuing what is there), checks size and hash,
/// and gives it its name.
fn fetch_blob(
    agent: &ureq::Agent,
    url: &str,
    w: &Wanted,
    blob: &Path,
    opts: &HubOptions,
    progress: &mut DownloadProgress,
) -> Result<()> {
    let part = blob.with_extension("incomplete");
    let io = |what: &str, e: std::io::Error| fetch_error(format!("cannot {what} {}: {e}", part.display()));
    let mut have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    if have > w.size {
        std::fs::remove_file(&part).map_err(|e| io("remove", e))?;
        have = 0;
    }
    let mut hasher = Hasher::new(w);
    if have < w.size {
        let resp = match get(agent, url, opts, have) {
            Ok(r) => r,
            Err(ureq::Error::Status(code, _)) => {
                return Err(fetch_error(format!("the hub answered HTTP {code} for {} of {}", w.path, progress.repo)));
            }
            Err(e) => return Err(unreachable(opts, &progress.repo, e)),
        };
        // 206: the server continues at `have`; 200: it sends the whole file again.
        let resumed = have > 0 && resp.status() == 206;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(resumed)
            .write(true)
            .truncate(!resumed)
            .open(&part)
            .map_err(|e| io("write", e))?;
        if resumed {
            hasher.update_from_file(&part).map_err(|e| io("read", e))?;
        } else {
            have = 0;
        }
        let mut reader = resp.into_reader().take(w.size - have);
        let mut buf = vec![0u8; 1 << 16];
        let mut last = Instant::now();
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = file.flush();
                    return Err(unreachable(
                        opts,
                        &progress.repo,
                        format!("{} broke off after {have} bytes ({e}); run again to resume", w.path),
                    ));
                }
            };
            file.write_all(&buf[..n]).map_err(|e| io("write", e))?;
            hasher.update(&buf[..n]);
            have += n as u64;
            if let Some(p) = &opts.progress
                && last.elapsed() >= Duration::from_millis(100)
            {
                progress.bytes_done = have;
                p(progress);
                last = Instant::now();
            }
        }
        file.sync_all().map_err(|e| io("write", e))?;
        if have < w.size {
            return Err(unreachable(
                opts,
                &progress.repo,
                format!("{} ended after {have} of {} bytes; run again to resume", w.path, w.size),
            ));
        }
    } else {
        // A complete partial file from an earlier run: only the check is left.
        hasher.update_from_file(&part).map_err(|e| io("read", e))?;
    }
    let got = hasher.hex();
    if got != w.blob {
        let _ = std::fs::remove_file(&part);
        return Err(fetch_error(format!(
            "{} of {} does not match the hub's {}: expected {}, got {got} (the partial file was removed; run \
             again to fetch it anew)",
            w.path,
            progress.repo,
            if w.lfs { "sha256" } else { "git sha1" },
            w.blob
        )));
    }
    std::fs::rename(&part, blob).map_err(|e| io("rename", e))
}

/// `snapshots/<commit>/<path>` → the blob: a relative link as the Python tools make (a copy where
/// links are not available).
fn link(snap: &Path, path: &str, blob: &str) -> std::io::Result<()> {
    let dst = snap.join(path);
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let depth = Path::new(path).components().count() + 1; // up through the path and the commit
    let mut rel = PathBuf::new();
    for _ in 0..depth {
        rel.push("..");
    }
    rel.push("blobs");
    rel.push(blob);
    if std::fs::symlink_metadata(&dst).is_ok() {
        std::fs::remove_file(&dst)?;
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&rel, &dst)
    }
    #[cfg(not(unix))]
    {
        std::fs::copy(dst.parent().unwrap_or(snap).join(&rel), &dst).map(|_| ())
    }
}
