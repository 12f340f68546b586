//! A loopback stand-in for the Hugging Face Hub: the two endpoints voxkit uses, in the hub's URL
//! layout, with knobs to break transfers. Tests point `HubOptions.endpoint` (or `HF_ENDPOINT`)
//! at it; nothing touches the internet.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sha1::Digest as _;

/// One file of a served repository.
#[derive(Clone)]
pub struct HubFile {
    pub path: String,
    pub bytes: Vec<u8>,
    /// Served as an LFS file: its hash is sha256 and its bytes come through a redirect.
    pub lfs: bool,
}

impl HubFile {
    pub fn sha256(&self) -> String {
        hex(&sha2::Sha256::digest(&self.bytes))
    }
    pub fn git_sha1(&self) -> String {
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {}\0", self.bytes.len()).as_bytes());
        h.update(&self.bytes);
        hex(&h.finalize())
    }
    pub fn blob_id(&self) -> String {
        if self.lfs { self.sha256() } else { self.git_sha1() }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every file of a checkpoint folder; the `.safetensors` ones as LFS files.
pub fn files_of(dir: &Path) -> Vec<HubFile> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<HubFile>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let path = p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                let lfs = path.ends_with(".safetensors");
                out.push(HubFile { path, bytes: std::fs::read(&p).unwrap(), lfs });
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

#[derive(Default)]
pub struct Knobs {
    /// Connections accepted.
    pub connections: AtomicUsize,
    /// Body bytes sent for file downloads.
    pub file_bytes_sent: AtomicU64,
    /// Requests that carried a `Range` header.
    pub range_requests: AtomicUsize,
    /// Requests that carried an `Authorization` header to the redirect target.
    pub auth_on_redirect: AtomicUsize,
    /// Cut the next LFS body after this many bytes (0: off; one-shot).
    pub cut_next_after: AtomicU64,
    /// Serve LFS bodies with their first byte flipped.
    pub corrupt: AtomicBool,
    /// Answer every Range request with the whole file (200), as some servers do.
    pub ignore_range: AtomicBool,
}

struct Repo {
    commit: String,
    files: Vec<HubFile>,
}

pub struct HubServer {
    pub endpoint: String,
    pub knobs: Arc<Knobs>,
    repos: Arc<Mutex<HashMap<String, Repo>>>,
}

impl HubServer {
    pub fn start() -> HubServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let knobs = Arc::new(Knobs::default());
        let repos: Arc<Mutex<HashMap<String, Repo>>> = Arc::default();
        let (k, r) = (knobs.clone(), repos.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                k.connections.fetch_add(1, Ordering::SeqCst);
                let (k, r) = (k.clone(), r.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &k, &r);
                });
            }
        });
        HubServer { endpoint, knobs, repos }
    }

    /// Serves `files` as `repo` at revision `main` (and at its commit).
    pub fn add_repo(&self, repo: &str, commit: &str, files: Vec<HubFile>) {
        self.repos.lock().unwrap().insert(repo.to_string(), Repo { commit: commit.to_string(), files });
    }
}

fn respond(s: &mut TcpStream, status: &str, headers: &[(String, String)], body: &[u8]) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)
}

fn serve(mut stream: TcpStream, k: &Knobs, repos: &Mutex<HashMap<String, Repo>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let repos = repos.lock().unwrap();
    let not_found = |s: &mut TcpStream| respond(s, "404 Not Found", &[], b"{\"error\":\"not found\"}");

    // The file list: /api/models/{org}/{name}/revision/{rev}?blobs=true
    if let Some(rest) = target.strip_prefix("/api/models/") {
        let path = rest.split('?').next().unwrap_or("");
        let Some((repo, rev)) = path.split_once("/revision/") else { return not_found(&mut stream) };
        let Some(r) = repos.get(repo) else { return not_found(&mut stream) };
        if rev != "main" && rev != r.commit {
            return not_found(&mut stream);
        }
        let siblings: Vec<serde_json::Value> = r
            .files
            .iter()
            .map(|f| {
                let mut v = serde_json::json!({
                    "rfilename": f.path, "size": f.bytes.len(), "blobId": f.git_sha1(),
                });
                if f.lfs {
                    v["lfs"] = serde_json::json!({"sha256": f.sha256(), "size": f.bytes.len(), "pointerSize": 134});
                }
                v
            })
            .collect();
        let body = serde_json::json!({"id": repo, "sha": r.commit, "siblings": siblings}).to_string();
        return respond(&mut stream, "200 OK", &[("Content-Type".into(), "application/json".into())], body.as_bytes());
    }
    // The bytes of an LFS file, after the redirect: /cdn/{sha256}
    if let Some(sha) = target.strip_prefix("/cdn/") {
        if headers.contains_key("authorization") {
            k.auth_on_redirect.fetch_add(1, Ordering::SeqCst);
        }
        let Some(f) = repos.values().flat_map(|r| r.files.iter()).find(|f| f.lfs && f.sha256() == sha) else {
            return not_found(&mut stream);
        };
        let mut bytes = f.bytes.clone();
        if k.corrupt.load(Ordering::SeqCst) {
            bytes[0] ^= 0xFF;
        }
        return send_file(&mut stream, k, &headers, &bytes, true);
    }
    // A file: /{org}/{name}/resolve/{commit}/{path}
    let Some((repo, rest)) = target.trim_start_matches('/').split_once("/resolve/") else {
        return not_found(&mut stream);
    };
    let Some(r) = repos.get(repo) else { return not_found(&mut stream) };
    let Some((commit, path)) = rest.split_once('/') else { return not_found(&mut stream) };
    if commit != r.commit && commit != "main" {
        return not_found(&mut stream);
    }
    let Some(f) = r.files.iter().find(|f| f.path == path) else { return not_found(&mut stream) };
    if f.lfs {
        let location = format!("/cdn/{}", f.sha256());
        return respond(&mut stream, "302 Found", &[("Location".into(), location)], b"");
    }
    let bytes = f.bytes.clone();
    drop(repos);
    send_file(&mut stream, k, &headers, &bytes, false)
}

fn send_file(
    stream: &mut TcpStream,
    k: &Knobs,
    headers: &HashMap<String, String>,
    bytes: &[u8],
    lfs: bool,
) -> std::io::Result<()> {
    let mut start = 0usize;
    let mut status = "200 OK";
    let mut extra = Vec::new();
    if let Some(range) = headers.get("range") {
        k.range_requests.fetch_add(1, Ordering::SeqCst);
        if !k.ignore_range.load(Ordering::SeqCst) {
            let from: usize = range.trim_start_matches("bytes=").trim_end_matches('-').parse().unwrap_or(0);
            if from < bytes.len() {
                start = from;
                status = "206 Partial Content";
                extra.push(("Content-Range".to_string(), format!("bytes {from}-{}/{}", bytes.len() - 1, bytes.len())));
            }
        }
    }
    let body = &bytes[start..];
    let cut = if lfs { k.cut_next_after.swap(0, Ordering::SeqCst) as usize } else { 0 };
    if cut > 0 && cut < body.len() {
        // Promise the whole body, send a part, hang up: an interrupted transfer.
        let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        stream.write_all(head.as_bytes())?;
        stream.write_all(&body[..cut])?;
        k.file_bytes_sent.fetch_add(cut as u64, Ordering::SeqCst);
        stream.flush()?;
        return stream.shutdown(std::net::Shutdown::Both);
    }
    k.file_bytes_sent.fetch_add(body.len() as u64, Ordering::SeqCst);
    respond(stream, status, &extra, body)
}
