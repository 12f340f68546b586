//! Quantized weights cached on disk next to the model, so that a quantized model loads as fast
//! as an unquantized one: `<model folder>/.voxkit-cache/quant-<kind>-<recipe>.bin`, written once
//! (atomically: a temporary file renamed into place) when the folder is writable, memory-mapped
//! on later loads.
//!
//! The file is keyed by the checkpoint: a SHA-256 of the recipe, the quantizer's version and, for
//! every `*.safetensors`, `*.safetensors.index.json` and `config.json` of the folder, its name,
//! length, modification time and safetensors header (not the weights' bytes: hashing gigabytes
//! would cost more than quantizing), checked again before a write; and each cached weight is
//! taken only when three of its rows are what quantizing the checkpoint's rows gives. A cache whose key differs, or that fails any check — magic, version, the SHA-256
//! of its index and data, every entry's range, shape and format — is ignored (and rewritten).
//!
//! Layout: `VOXQUANT`, version (u32 LE), 4 zero bytes, index length (u64 LE), SHA-256 of
//! everything after these 56 bytes; the index (JSON: the key and per weight its name, format,
//! shape and the byte ranges of its scales and packed values, relative to the data); zero
//! padding to a multiple of 64; the data.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use half::f16;
use sha2::{Digest, Sha256};

use crate::backend::{HostBuf, QuantData, QuantFormat, Quantization, SharedBytes, Weight, WeightData};
use crate::error::{Error, ErrorKind, Result};
use crate::models::weights::map_file;

const MAGIC: &[u8; 8] = b"VOXQUANT";
const VERSION: u32 = 1;
/// Changes whenever `QuantData::quantize` would make other bytes (part of the key): 2 since the
/// values are laid out in blocks of 16 groups.
const QUANTIZER: u32 = 2;
const HEADER: usize = 56;
const ALIGN: usize = 64;
/// The folder the cache files live in, inside the model folder.
pub const CACHE_DIR: &str = ".voxkit-cache";

/// Where a model's quantized weights come from and go: a disk cache, or none (`memory`).
pub struct QuantCache {
    /// The cache file (None: no disk cache).
    path: Option<PathBuf>,
    /// The checkpoint folder and recipe the key was made from (checked again before a write).
    source: Option<(PathBuf, Quantization)>,
    key: [u8; 32],
    /// Weights read from a valid cache file, by checkpoint name.
    cached: HashMap<String, Weight>,
    /// Every weight quantized through this cache, in order (what a new file holds).
    made: Vec<(String, Weight)>,
    /// Weights taken from the file / quantized now.
    hits: usize,
    misses: usize,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::ModelLoad, format!("{}: {why}", path.display()))
}

impl QuantCache {
    /// No disk cache: every weight is quantized at load.
    pub fn memory() -> QuantCache {
        QuantCache {
            path: None,
            source: None,
            key: [0; 32],
            cached: HashMap::new(),
            made: Vec::new(),
            hits: 0,
            misses: 0,
        }
    }

    /// The cache of `kind` ("tts", "asr") quantized by `recipe` for the checkpoint in `dir`:
    /// its weights when the file is there and valid for this checkpoint; otherwise empty, to
    /// be written by `finish`.
    pub fn open(dir: &Path, kind: &str, recipe: Quantization) -> QuantCache {
        let path = dir.join(CACHE_DIR).join(format!("quant-{kind}-{}.bin", recipe.name()));
        let mut cache =
            QuantCache { path: Some(path.clone()), source: Some((dir.to_path_buf(), recipe)), ..QuantCache::memory() };
        match checkpoint_key(dir, recipe) {
            Ok(key) => cache.key = key,
            Err(e) => {
                log::info!("quantized weights are not cached: {}", e.message);
                cache.path = None;
                return cache;
            }
        }
        if path.is_file() {
            match read(&path, &cache.key) {
                Ok(weights) => cache.cached = weights,
                Err(e) => log::warn!("ignoring the quantized-weight cache: {}", e.message),
            }
        }
        cache
    }

    /// Replaces `w` with its quantized form in `format` (none: kept as stored), from the cache
    /// when it holds `name` in that format and shape. A weight the format cannot hold (rows not
    /// a whole number of groups, non-finite or huge values) stays as stored, with a warning
    /// naming it: the caller chose quantization, so it is never skipped silently.
    pub fn quantize(&mut self, w: &mut Weight, format: Option<QuantFormat>, name: &str) {
        let Some(format) = format else { return };
        // A cached weight is taken when its shape and format are this one's and its first,
        // middle and last rows are what quantizing these weights gives (a stale cache that
        // the key missed — a checkpoint rewritten with the same sizes and times — is not used).
        let rows = [0, w.rows() / 2, w.rows().saturating_sub(1)];
        if let Some(c) = self.cached.get(name)
            && c.quant_data().map(|q| q.format()) == Some(format)
            && w.quantizes_to(c, &rows)
        {
            *w = c.clone();
            self.hits += 1;
            self.made.push((name.to_string(), c.clone()));
            return;
        }
        match w.quantize(format) {
            Ok(q) => {
                self.misses += 1;
                self.made.push((name.to_string(), q.clone()));
                *w = q;
            }
            Err(e) => log::warn!("{name} {:?} stays as stored, not {}: {}", w.shape(), format.name(), e.message),
        }
    }

    /// Weights taken from the cache file and weights quantized now.
    pub fn counts(&self) -> (usize, usize) {
        (self.hits, self.misses)
    }

    /// Writes the cache file when weights were quantized now (a missing, stale or damaged
    /// file); a folder that cannot take it only costs the next load the quantization.
    pub fn finish(self) {
        let Some(path) = &self.path else { return };
        if self.misses == 0 {
            return;
        }
        // The checkpoint must still be the one the key was made from when it was opened.
        if let Some((dir, recipe)) = &self.source
            && checkpoint_key(dir, *recipe).ok() != Some(self.key)
        {
            log::info!("quantized weights are not cached: {} changed while it loaded", dir.display());
            return;
        }
        match write(path, &self.key, &self.made) {
            Ok(bytes) => {
                log::info!("cached {} quantized weights ({bytes} bytes) in {}", self.made.len(), path.display())
            }
            Err(e) => log::info!("quantized weights are not cached: {}", e.message),
        }
    }
}

/// The key of a checkpoint folder and recipe (module docs).
fn checkpoint_key(dir: &Path, recipe: Quantization) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(b"voxkit quantized weights\0");
    h.update(VERSION.to_le_bytes());
    h.update(QUANTIZER.to_le_bytes());
    h.update(recipe.name().as_bytes());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| bad(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.ends_with(".safetensors") || n.ends_with(".safetensors.index.json") || n == "config.json"
        })
        .collect();
    files.sort();
    for f in files {
        let meta = std::fs::metadata(&f).map_err(|e| bad(&f, e))?;
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        h.update(f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default().as_bytes());
        h.update(meta.len().to_le_bytes());
        h.update(mtime.map_or(0, |d| d.as_nanos()).to_le_bytes());
        if f.extension().is_some_and(|e| e == "safetensors") {
            h.update(safetensors_header(&f)?);
        }
    }
    Ok(h.finalize().into())
}

/// The 8-byte length and JSON header of a safetensors file (its names, dtypes, shapes, offsets).
fn safetensors_header(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| bad(path, e))?;
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|e| bad(path, e))?;
    let len = u64::from_le_bytes(n).min(100 << 20) as usize;
    let mut header = vec![0u8; len];
    f.read_exact(&mut header).map_err(|e| bad(path, e))?;
    header.extend_from_slice(&n);
    Ok(header)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Index {
    key: String,
    weights: Vec<Entry>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    name: String,
    format: String,
    shape: Vec<usize>,
    /// Byte ranges `[start, end)` in the data.
    scales: [usize; 2],
    packed: [usize; 2],
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn format_named(name: &str) -> Option<QuantFormat> {
    [QuantFormat::Q8, QuantFormat::Q4].into_iter().find(|f| f.name() == name)
}

/// The weights of a cache file, when it is valid for `key`.
fn read(path: &Path, key: &[u8; 32]) -> Result<HashMap<String, Weight>> {
    let bytes: SharedBytes = map_file(path)?;
    let all: &[u8] = (*bytes).as_ref();
    if all.len() < HEADER || &all[..8] != MAGIC {
        return Err(bad(path, "not a voxkit quantized-weight cache"));
    }
    let version = u32::from_le_bytes(all[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(bad(path, format!("cache version {version}, this library writes {VERSION}")));
    }
    let index_len = u64::from_le_bytes(all[16..24].try_into().expect("8 bytes"));
    let index_end = (HEADER as u64).checked_add(index_len).filter(|&e| e <= all.len() as u64);
    let Some(index_end) = index_end.map(|e| e as usize) else {
        return Err(bad(path, "truncated index"));
    };
    let index: Index = serde_json::from_slice(&all[HEADER..index_end]).map_err(|e| bad(path, format!("index: {e}")))?;
    if index.key != hex(key) {
        return Err(bad(path, "made from another checkpoint or recipe"));
    }
    if Sha256::digest(&all[HEADER..])[..] != all[24..56] {
        return Err(bad(path, "damaged (checksum mismatch)"));
    }
    let data_start = index_end.next_multiple_of(ALIGN);
    let data_len = all.len().saturating_sub(data_start);
    let mut out = HashMap::new();
    for e in index.weights {
        let what = |why: &str| bad(path, format!("entry `{}`: {why}", e.name));
        let format = format_named(&e.format).ok_or_else(|| what("unknown format"))?;
        let (rows, cols) = match e.shape.first() {
            Some(&r) => {
                (r, e.shape[1..].iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| what("shape"))?)
            }
            None => return Err(what("no shape")),
        };
        for [s, t] in [e.scales, e.packed] {
            if s > t || t > data_len || s % 2 != 0 {
                return Err(what("byte range outside the data"));
            }
        }
        let scales = HostBuf::<f16>::mapped(bytes.clone(), data_start + e.scales[0], (e.scales[1] - e.scales[0]) / 2)
            .ok_or_else(|| what("scales not aligned"))?;
        let packed = HostBuf::<u8>::mapped(bytes.clone(), data_start + e.packed[0], e.packed[1] - e.packed[0])
            .ok_or_else(|| what("values out of range"))?;
        let q = QuantData::from_parts(format, rows, cols, scales, packed).map_err(|x| what(&x.message))?;
        let w = Weight::new(e.shape, WeightData::Quant(std::sync::Arc::new(q))).map_err(|x| what(&x.message))?;
        out.insert(e.name, w);
    }
    Ok(out)
}

/// Writes a cache file of `weights` (all quantized) atomically; returns its size.
fn write(path: &Path, key: &[u8; 32], weights: &[(String, Weight)]) -> Result<u64> {
    let dir = path.parent().expect("a cache file has a folder");
    std::fs::create_dir_all(dir).map_err(|e| bad(dir, e))?;
    let mut entries = Vec::with_capacity(weights.len());
    let mut at = 0usize;
    let mut parts: Vec<(&[u8], usize)> = Vec::new();
    for (name, w) in weights {
        let q = w.quant_data().expect("the cache holds quantized weights");
        let (scales, packed) = q.parts();
        // SAFETY: f16 is two plain bytes; the view borrows the scales.
        let scales: &[u8] = unsafe { std::slice::from_raw_parts(scales.as_ptr() as *const u8, scales.len() * 2) };
        let s = at;
        at = (s + scales.len()).next_multiple_of(ALIGN);
        let p = at;
        at = (p + packed.len()).next_multiple_of(ALIGN);
        parts.push((scales, s));
        parts.push((packed, p));
        entries.push(Entry {
            name: name.clone(),
            format: q.format().name().to_string(),
            shape: w.shape().to_vec(),
            scales: [s, s + scales.len()],
            packed: [p, p + packed.len()],
        });
    }
    let index = serde_json::to_vec(&Index { key: hex(key), weights: entries }).map_err(|e| bad(path, e))?;
    let data_start = (HEADER + index.len()).next_multiple_of(ALIGN);
    // The checksum covers the index, the padding and the data, in file order.
    let mut sum = Sha256::new();
    sum.update(&index);
    sum.update(vec![0u8; data_start - HEADER - index.len()]);
    let mut end = 0;
    for (b, off) in &parts {
        sum.update(vec![0u8; off - end]);
        sum.update(b);
        end = off + b.len();
    }
    sum.update(vec![0u8; at - end]);
    let tmp = dir.join(format!(".quant-{}-{:x}.tmp", std::process::id(), rand_suffix()));
    let result = (|| -> std::io::Result<u64> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(MAGIC)?;
        f.write_all(&VERSION.to_le_bytes())?;
        f.write_all(&[0; 4])?;
        f.write_all(&(index.len() as u64).to_le_bytes())?;
        f.write_all(&sum.finalize())?;
        f.write_all(&index)?;
        f.write_all(&vec![0u8; data_start - HEADER - index.len()])?;
        let mut end = 0;
        for (b, off) in &parts {
            f.write_all(&vec![0u8; off - end])?;
            f.write_all(b)?;
            end = off + b.len();
        }
        f.write_all(&vec![0u8; at - end])?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok((data_start + at) as u64)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        bad(path, e)
    })
}

/// A per-write suffix for temporary names (two writers never share one).
fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}
