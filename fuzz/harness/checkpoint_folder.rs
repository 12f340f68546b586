//! `checkpoint_folder`: a tiny checkpoint folder (`fixtures::checkpoint`) with a few structured
//! edits — JSON values set to huge, negative, fractional, NaN-like, wrong-typed values, keys
//! removed or renamed, raw bytes, truncated or bit-flipped files, odd merges lines, safetensors
//! headers with other dtypes, overflowing shapes, shifted or overlapping ranges, a bad header
//! length, shards — then loaded the way the engine does: `CheckpointLoader::inspect` (what
//! `vox_engine_create` runs) and, when that passes, `load_tts` / `load_asr` (the first job's load).
//! Every outcome must be a `Result`; a panic, an abort or an allocation past libFuzzer's limits is a
//! finding.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use serde_json::Value;
use voxkit::engine::loader::CheckpointLoader;
use voxkit::seams::{LoadContext, ModelKind, ModelLoader};

use crate::fixtures::{self, Preset};

/// Edits applied per input (more rarely find more: one broken file already fails the load).
const MAX_EDITS: usize = 4;

#[derive(Arbitrary, Debug)]
pub struct Input {
    pub preset: Preset,
    pub edits: Vec<Edit>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum JsonFile {
    Config,
    GenerationConfig,
    CodecConfig,
    TokenizerConfig,
    Vocab,
    Preprocessor,
}

impl JsonFile {
    fn path(self) -> &'static str {
        match self {
            JsonFile::Config => "config.json",
            JsonFile::GenerationConfig => "generation_config.json",
            JsonFile::CodecConfig => "speech_tokenizer/config.json",
            JsonFile::TokenizerConfig => "tokenizer_config.json",
            JsonFile::Vocab => "vocab.json",
            JsonFile::Preprocessor => "preprocessor_config.json",
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum StFile {
    Model,
    Codec,
}

impl StFile {
    fn path(self) -> &'static str {
        match self {
            StFile::Model => "model.safetensors",
            StFile::Codec => "speech_tokenizer/model.safetensors",
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum AnyFile {
    Json(JsonFile),
    Merges,
    Weights(StFile),
}

impl AnyFile {
    fn path(self) -> &'static str {
        match self {
            AnyFile::Json(j) => j.path(),
            AnyFile::Merges => "merges.txt",
            AnyFile::Weights(s) => s.path(),
        }
    }
}

/// A JSON value a config field may be set to.
#[derive(Arbitrary, Debug, Clone)]
pub enum Val {
    Zero,
    One,
    U64Max,
    I64Min,
    Billion,
    Pow2(u8),
    Negative(u32),
    Int(i64),
    U64(u64),
    /// Only finite values exist in JSON; NaN and infinities come as strings (`NanLike`).
    Float(f64),
    NanLike(u8),
    Str(String),
    Bool(bool),
    Null,
    EmptyArray,
    EmptyObject,
    IntArray(Vec<i32>),
}

impl Val {
    fn to_json(&self) -> Value {
        match self {
            Val::Zero => Value::from(0),
            Val::One => Value::from(1),
            Val::U64Max => Value::from(u64::MAX),
            Val::I64Min => Value::from(i64::MIN),
            Val::Billion => Value::from(1_000_000_000u64),
            Val::Pow2(k) => Value::from(1u64 << (k % 64)),
            Val::Negative(n) => Value::from(-(*n as i64) - 1),
            Val::Int(i) => Value::from(*i),
            Val::U64(u) => Value::from(*u),
            Val::Float(f) => Value::from(*f),
            Val::NanLike(k) => {
                Value::from(["NaN", "nan", "Infinity", "-Infinity", "inf", "1e999", "-0", "0x10", ""][*k as usize % 9])
            }
            Val::Str(s) => Value::from(s.clone()),
            Val::Bool(b) => Value::from(*b),
            Val::Null => Value::Null,
            Val::EmptyArray => Value::Array(vec![]),
            Val::EmptyObject => Value::Object(Default::default()),
            Val::IntArray(v) => Value::from(v.clone()),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum DtypeSel {
    F32,
    BF16,
    F16,
    F64,
    I64,
    I32,
    U8,
    Bool,
    F8E4M3,
    Other(String),
}

impl DtypeSel {
    fn name(&self) -> String {
        match self {
            DtypeSel::F32 => "F32",
            DtypeSel::BF16 => "BF16",
            DtypeSel::F16 => "F16",
            DtypeSel::F64 => "F64",
            DtypeSel::I64 => "I64",
            DtypeSel::I32 => "I32",
            DtypeSel::U8 => "U8",
            DtypeSel::Bool => "BOOL",
            DtypeSel::F8E4M3 => "F8_E4M3",
            DtypeSel::Other(s) => return s.clone(),
        }
        .to_string()
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum TensorChange {
    Dtype(DtypeSel),
    Shape(Vec<u64>),
    Dim {
        dim: u8,
        value: u64,
    },
    /// Both dims of a matrix swapped (same byte count, wrong layout).
    Transpose,
    Offsets(u64, u64),
    /// Both offsets moved by the same amount (wrapping): overlaps and gaps.
    Shift(i32),
    /// Takes another tensor's range (two tensors over the same bytes).
    SameRangeAs(u16),
    Remove,
    Rename(String),
    /// A second entry under another name with the same range.
    Duplicate(String),
    Field {
        key: String,
        value: Val,
    },
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Edit {
    /// Sets the node reached by walking `path` (each step picks a child by index) to `value`.
    Set {
        file: JsonFile,
        path: Vec<u16>,
        value: Val,
    },
    Remove {
        file: JsonFile,
        path: Vec<u16>,
    },
    Rename {
        file: JsonFile,
        path: Vec<u16>,
        name: String,
    },
    Raw {
        file: AnyFile,
        bytes: Vec<u8>,
    },
    Truncate {
        file: AnyFile,
        keep: u32,
    },
    Flip {
        file: AnyFile,
        at: u32,
        xor: u8,
    },
    Delete {
        file: AnyFile,
    },
    MergeLine {
        at: u16,
        line: Vec<u8>,
        insert: bool,
    },
    Tensor {
        file: StFile,
        pick: u16,
        change: TensorChange,
    },
    HeaderLen {
        file: StFile,
        value: u64,
    },
    /// ASR: the weights as shards under `model.safetensors.index.json`.
    Shard {
        split: u16,
        rename: Option<String>,
        extra: Option<(String, String)>,
    },
}

/// The pristine files of a checkpoint, relative paths.
fn files(p: Preset) -> &'static [PathBuf] {
    static FILES: OnceLock<HashMap<Preset, Vec<PathBuf>>> = OnceLock::new();
    &FILES.get_or_init(|| {
        Preset::ALL
            .iter()
            .map(|&p| {
                let root = fixtures::checkpoint(p);
                let mut out = Vec::new();
                let mut stack = vec![root.to_path_buf()];
                while let Some(d) = stack.pop() {
                    for e in std::fs::read_dir(&d).unwrap().flatten() {
                        let path = e.path();
                        if path.is_dir() {
                            stack.push(path);
                        } else {
                            out.push(path.strip_prefix(root).unwrap().to_path_buf());
                        }
                    }
                }
                out.sort();
                (p, out)
            })
            .collect()
    })[&p]
}

/// The folder being built: edited files in memory, the rest linked to the pristine copy.
struct Folder {
    preset: Preset,
    edited: HashMap<PathBuf, Option<Vec<u8>>>,
}

impl Folder {
    fn bytes(&mut self, rel: &str) -> Option<&mut Vec<u8>> {
        let key = PathBuf::from(rel);
        if !self.edited.contains_key(&key) {
            let pristine = fixtures::checkpoint(self.preset).join(rel);
            let b = std::fs::read(&pristine).ok();
            self.edited.insert(key.clone(), b);
        }
        self.edited.get_mut(&key).unwrap().as_mut()
    }

    fn set(&mut self, rel: &str, b: Option<Vec<u8>>) {
        self.edited.insert(PathBuf::from(rel), b);
    }

    fn json(&mut self, f: JsonFile, edit: impl FnOnce(&mut Value)) {
        let Some(b) = self.bytes(f.path()) else { return };
        let Ok(mut v) = serde_json::from_slice::<Value>(b) else { return };
        edit(&mut v);
        *b = serde_json::to_vec_pretty(&v).unwrap();
    }

    fn write(&self, dir: &Path) {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir.join("speech_tokenizer")).unwrap();
        let root = fixtures::checkpoint(self.preset);
        for rel in files(self.preset) {
            if !self.edited.contains_key(rel) {
                std::fs::create_dir_all(dir.join(rel).parent().unwrap()).unwrap();
                std::os::unix::fs::symlink(root.join(rel), dir.join(rel)).unwrap();
            }
        }
        for (rel, b) in &self.edited {
            if let Some(b) = b {
                std::fs::create_dir_all(dir.join(rel).parent().unwrap()).unwrap();
                std::fs::write(dir.join(rel), b).unwrap();
            }
        }
    }
}

/// Walks `path` from `v`: each step picks a child of an object or array by index (mod its
/// length); stops above a leaf. Returns the node reached and the key (or index) its last step
/// picks in it.
fn walk<'a>(v: &'a mut Value, path: &[u16]) -> Option<(&'a mut Value, Key)> {
    let (&last, init) = path.split_last()?;
    let mut at = v;
    for &step in init {
        let Some(k) = child_key(at, step) else { break };
        // Do not descend into a leaf: the leaf's parent is where the edit lands.
        if !matches!(child_ref(at, &k), Value::Object(_) | Value::Array(_)) {
            break;
        }
        at = child_mut(at, &k);
    }
    let key = child_key(at, last)?;
    Some((at, key))
}

fn child_key(v: &Value, step: u16) -> Option<Key> {
    match v {
        Value::Object(o) if !o.is_empty() => Some(Key::Name(o.keys().nth(step as usize % o.len())?.clone())),
        Value::Array(a) if !a.is_empty() => Some(Key::Index(step as usize % a.len())),
        _ => None,
    }
}

fn child_ref<'a>(v: &'a Value, k: &Key) -> &'a Value {
    match k {
        Key::Name(n) => &v[n.as_str()],
        Key::Index(i) => &v[*i],
    }
}

fn child_mut<'a>(v: &'a mut Value, k: &Key) -> &'a mut Value {
    match k {
        Key::Name(n) => &mut v[n.as_str()],
        Key::Index(i) => &mut v[*i],
    }
}

enum Key {
    Name(String),
    Index(usize),
}

fn split_safetensors(b: &[u8]) -> Option<(serde_json::Map<String, Value>, &[u8])> {
    let n = u64::from_le_bytes(b.get(..8)?.try_into().unwrap());
    let end = 8usize.checked_add(usize::try_from(n).ok()?)?;
    let header = serde_json::from_slice::<Value>(b.get(8..end)?).ok()?;
    Some((header.as_object()?.clone(), &b[end..]))
}

fn join_safetensors(header: &serde_json::Map<String, Value>, data: &[u8]) -> Vec<u8> {
    let h = serde_json::to_vec(header).unwrap();
    let mut out = Vec::with_capacity(8 + h.len() + data.len());
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

fn tensor_names(h: &serde_json::Map<String, Value>) -> Vec<String> {
    h.keys().filter(|k| *k != "__metadata__").cloned().collect()
}

fn change_tensor(b: &mut Vec<u8>, pick: u16, change: &TensorChange) {
    let Some((mut h, data)) = split_safetensors(b) else { return };
    let data = data.to_vec();
    let names = tensor_names(&h);
    if names.is_empty() {
        return;
    }
    let name = names[pick as usize % names.len()].clone();
    let t = h.get_mut(&name).unwrap();
    match change {
        TensorChange::Dtype(d) => t["dtype"] = Value::from(d.name()),
        TensorChange::Shape(s) => t["shape"] = Value::from(s.iter().take(8).copied().collect::<Vec<u64>>()),
        TensorChange::Dim { dim, value } => {
            if let Some(a) = t["shape"].as_array_mut().filter(|a| !a.is_empty()) {
                let n = a.len();
                a[*dim as usize % n] = Value::from(*value);
            }
        }
        TensorChange::Transpose => {
            if let Some(a) = t["shape"].as_array_mut().filter(|a| a.len() == 2) {
                a.swap(0, 1);
            }
        }
        TensorChange::Offsets(a, b) => t["data_offsets"] = Value::from(vec![*a, *b]),
        TensorChange::Shift(by) => {
            if let Some(a) = t["data_offsets"].as_array_mut() {
                for o in a.iter_mut() {
                    if let Some(u) = o.as_u64() {
                        *o = Value::from(u.wrapping_add(*by as i64 as u64));
                    }
                }
            }
        }
        TensorChange::SameRangeAs(other) => {
            let other = names[*other as usize % names.len()].clone();
            let r = h[&other]["data_offsets"].clone();
            h.get_mut(&name).unwrap()["data_offsets"] = r;
        }
        TensorChange::Remove => {
            h.remove(&name);
        }
        TensorChange::Rename(new) => {
            let t = h.remove(&name).unwrap();
            h.insert(new.clone(), t);
        }
        TensorChange::Duplicate(new) => {
            let t = t.clone();
            h.insert(new.clone(), t);
        }
        TensorChange::Field { key, value } => {
            if let Some(o) = t.as_object_mut() {
                o.insert(key.clone(), value.to_json());
            }
        }
    }
    *b = join_safetensors(&h, &data);
}

/// The ASR weights split in two shards (`split` picks where) under an index; `rename` names
/// the second shard (a path, a dot file…), `extra` adds a weight_map entry.
fn shard(f: &mut Folder, split: u16, rename: &Option<String>, extra: &Option<(String, String)>) {
    let Some(b) = f.bytes("model.safetensors").cloned() else { return };
    let Some((h, data)) = split_safetensors(&b) else { return };
    let names = tensor_names(&h);
    if names.is_empty() {
        return;
    }
    let cut = split as usize % names.len();
    let second = rename.clone().unwrap_or_else(|| "model-00002-of-00002.safetensors".into());
    let mut weight_map = serde_json::Map::new();
    let mut parts: [serde_json::Map<String, Value>; 2] = Default::default();
    for (i, n) in names.iter().enumerate() {
        let part = usize::from(i >= cut);
        parts[part].insert(n.clone(), h[n].clone());
        weight_map.insert(n.clone(), Value::from(if part == 0 { "model-00001-of-00002.safetensors" } else { &second }));
    }
    if let Some((k, v)) = extra {
        weight_map.insert(k.clone(), Value::from(v.clone()));
    }
    // Each shard gets its own data, its ranges rebased to start at 0.
    for (i, part) in parts.iter_mut().enumerate() {
        let mut bytes = Vec::new();
        for t in part.values_mut() {
            let (Some(a), Some(z)) = (t["data_offsets"][0].as_u64(), t["data_offsets"][1].as_u64()) else { return };
            let Some(src) = data.get(a as usize..z as usize) else { return };
            let at = bytes.len() as u64;
            bytes.extend_from_slice(src);
            t["data_offsets"] = Value::from(vec![at, bytes.len() as u64]);
        }
        let name = if i == 0 { "model-00001-of-00002.safetensors".to_string() } else { second.clone() };
        if name.contains('/') || name.contains('\0') || name.is_empty() || name.starts_with('.') {
            // Only the index names it: the loader must refuse the name, never open it.
            continue;
        }
        f.set(&name, Some(join_safetensors(part, &bytes)));
    }
    f.set("model.safetensors", None);
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    f.set("model.safetensors.index.json", Some(serde_json::to_vec_pretty(&index).unwrap()));
}

fn apply(f: &mut Folder, e: &Edit) {
    match e {
        Edit::Set { file, path, value } => f.json(*file, |v| {
            let done = match walk(v, path) {
                Some((Value::Object(o), Key::Name(k))) => {
                    o.insert(k, value.to_json());
                    true
                }
                Some((Value::Array(a), Key::Index(i))) => {
                    a[i] = value.to_json();
                    true
                }
                _ => false,
            };
            if !done {
                *v = value.to_json();
            }
        }),
        Edit::Remove { file, path } => f.json(*file, |v| match walk(v, path) {
            Some((Value::Object(o), Key::Name(k))) => {
                o.remove(&k);
            }
            Some((Value::Array(a), Key::Index(i))) => {
                a.remove(i);
            }
            _ => {}
        }),
        Edit::Rename { file, path, name } => f.json(*file, |v| {
            if let Some((Value::Object(o), Key::Name(k))) = walk(v, path) {
                let x = o.remove(&k).unwrap();
                o.insert(name.clone(), x);
            }
        }),
        Edit::Raw { file, bytes } => f.set(file.path(), Some(bytes.clone())),
        Edit::Truncate { file, keep } => {
            if let Some(b) = f.bytes(file.path()) {
                let n = *keep as usize % (b.len() + 1);
                b.truncate(n);
            }
        }
        Edit::Flip { file, at, xor } => {
            if let Some(b) = f.bytes(file.path()).filter(|b| !b.is_empty()) {
                let n = b.len();
                b[*at as usize % n] ^= xor;
            }
        }
        Edit::Delete { file } => f.set(file.path(), None),
        Edit::MergeLine { at, line, insert } => {
            if let Some(b) = f.bytes("merges.txt") {
                let mut lines: Vec<Vec<u8>> = b.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
                let i = *at as usize % (lines.len() + 1);
                if *insert || i == lines.len() {
                    lines.insert(i, line.clone());
                } else {
                    lines[i] = line.clone();
                }
                *b = lines.join(&b'\n');
            }
        }
        Edit::Tensor { file, pick, change } => {
            if let Some(b) = f.bytes(file.path()) {
                change_tensor(b, *pick, change);
            }
        }
        Edit::HeaderLen { file, value } => {
            if let Some(b) = f.bytes(file.path()).filter(|b| b.len() >= 8) {
                b[..8].copy_from_slice(&value.to_le_bytes());
            }
        }
        Edit::Shard { split, rename, extra } => {
            if f.preset == Preset::Asr {
                shard(f, *split, rename, extra);
            }
        }
    }
}

pub fn ctx() -> LoadContext {
    LoadContext {
        device: voxkit::Device::Cpu,
        cpu_threads: 1,
        max_slots: 1,
        quantization: voxkit::backend::Quantization::None,
    }
}

/// Builds the folder an input describes into `dir`.
pub fn build(input: &Input, dir: &Path) {
    let mut f = Folder { preset: input.preset, edited: HashMap::new() };
    for e in input.edits.iter().take(MAX_EDITS) {
        apply(&mut f, e);
    }
    f.write(dir);
}

/// Loads a folder as the engine would: inspected at create, loaded at the first job.
pub fn load(preset: Preset, dir: &Path) -> voxkit::Result<()> {
    let kind = if preset == Preset::Asr { ModelKind::Asr } else { ModelKind::Tts };
    let loader = CheckpointLoader;
    loader.inspect(kind, dir, &ctx())?;
    match kind {
        ModelKind::Tts => loader.load_tts(dir, &ctx()).map(drop),
        ModelKind::Asr => loader.load_asr(dir, &ctx()).map(drop),
    }
}

pub fn run(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let dir = fixtures::scratch("ck").join("m");
    build(&input, &dir);
    let _ = load(input.preset, &dir);
}
