//! Loading `model.safetensors`: every tensor becomes a `Weight` in its stored precision, and the
//! model loaders take them by their checkpoint names, so a missing or mis-shaped tensor is
//! reported by name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use half::{bf16, f16};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::backend::tensor::Element;
use crate::backend::{HostBuf, SharedBytes, Weight, WeightData};
use crate::error::{Error, ErrorKind, Result};

/// The tensors of one safetensors file, taken out one by one by the model loaders.
pub struct Checkpoint {
    path: PathBuf,
    tensors: HashMap<String, Weight>,
    /// Where taken weights go at once (`resident_on`): a GPU backend copies each to the device as
    /// it is taken, so the copies happen (and can fail with `OutOfMemory`) during the load.
    compute: Option<crate::backend::Compute>,
}

fn load_error(msg: String) -> Error {
    Error::new(ErrorKind::ModelLoad, msg)
}

/// A tensor of a mapped file as a weight: viewed in place when its bytes are aligned for its
/// dtype (the official writer aligns them), else copied.
fn convert(name: &str, path: &Path, file: &SharedBytes, base: usize, view: &TensorView<'_>) -> Result<Weight> {
    let bytes = view.data();
    let offset = bytes.as_ptr() as usize - base;
    let shape = view.shape().to_vec();
    fn host<T: Element>(file: &SharedBytes, offset: usize, bytes: &[u8], from: fn(&[u8]) -> T) -> HostBuf<T> {
        let n = std::mem::size_of::<T>();
        HostBuf::mapped(file.clone(), offset, bytes.len() / n)
            .unwrap_or_else(|| HostBuf::Owned(bytes.chunks_exact(n).map(from).collect()))
    }
    let data = match view.dtype() {
        Dtype::F32 => WeightData::F32(host(file, offset, bytes, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        Dtype::BF16 => {
            WeightData::BF16(host(file, offset, bytes, |b| bf16::from_bits(u16::from_le_bytes([b[0], b[1]]))))
        }
        Dtype::F16 => WeightData::F16(host(file, offset, bytes, |b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])))),
        other => {
            return Err(load_error(format!(
                "{}: tensor `{name}` has dtype {other:?}; voxkit reads F32, BF16 and F16",
                path.display()
            )));
        }
    };
    Weight::new(shape, data)
}

/// The bytes of a checkpoint file, memory-mapped (read-only, shared with the page cache).
struct MappedFile(memmap2::Mmap);

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Maps a file read-only and asks the kernel to start reading it ahead.
pub(crate) fn map_file(path: &Path) -> Result<SharedBytes> {
    let f = std::fs::File::open(path).map_err(|e| load_error(format!("cannot read {}: {e}", path.display())))?;
    // SAFETY: the mapping is read-only. Checkpoint files are not modified while an engine uses
    // them (documented at vox_engine_create): truncating one underneath a running engine is the
    // one thing that can still fault the process, as with every memory-mapped model loader.
    let map =
        unsafe { memmap2::Mmap::map(&f) }.map_err(|e| load_error(format!("cannot map {}: {e}", path.display())))?;
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::WillNeed);
    Ok(Arc::new(MappedFile(map)))
}

/// Checks a safetensors file without reading its tensors: the header parses, every tensor has a
/// dtype voxkit reads, its shape matches its byte range, and the file is long enough to hold
/// every range (a truncated or corrupt file is an error naming it, at engine create).
pub fn check_file(path: &Path) -> Result<()> {
    use std::io::Read;
    let bad = |what: String| load_error(format!("{} is not a valid safetensors file: {what}", path.display()));
    let mut f = std::fs::File::open(path).map_err(|e| load_error(format!("cannot open {}: {e}", path.display())))?;
    let len = f.metadata().map_err(|e| load_error(format!("cannot read {}: {e}", path.display())))?.len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|_| bad("shorter than its 8-byte header length".into()))?;
    let n = u64::from_le_bytes(n);
    // The limit of the safetensors parser that opens the file at load (`MAX_HEADER_SIZE`).
    if n > len.saturating_sub(8) || n > 100_000_000 {
        return Err(bad(format!("a header of {n} bytes in a file of {len}")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|_| bad("truncated header".into()))?;
    // The header as the load will parse it (`Checkpoint::open` → `SafeTensors::deserialize`),
    // which also checks that every shape matches its byte range and that the ranges tile the
    // data in order. Its rules are stricter than a JSON map's — a tensor with a field twice, a
    // `__metadata__` that is not a map of strings — and a header only the load refused would
    // pass the engine's create and fail its first job instead (found by fuzz/ `safetensors_header`).
    let header: safetensors::tensor::Metadata =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
    let data = len - 8 - n;
    for (name, t) in header.tensors() {
        use safetensors::Dtype;
        if !matches!(t.dtype, Dtype::F32 | Dtype::BF16 | Dtype::F16) {
            return Err(bad(format!("tensor `{name}` has dtype {:?}; voxkit reads F32, BF16 and F16", t.dtype)));
        }
        let end = t.data_offsets.1 as u64;
        if end > data {
            return Err(bad(format!(
                "tensor `{name}` ends at byte {end} of the data, which holds {data} (truncated?)"
            )));
        }
    }
    let covered = header.data_len() as u64;
    if covered != data {
        return Err(bad(format!("the tensors cover {covered} bytes of data, the file holds {data}")));
    }
    Ok(())
}

/// `check_file` for a checkpoint folder's weights: the shards of `model.safetensors.index.json`
/// when there is one, else `model.safetensors`.
pub fn check_dir(dir: &Path) -> Result<()> {
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        return check_file(&dir.join("model.safetensors"));
    }
    let text =
        std::fs::read_to_string(&index).map_err(|e| load_error(format!("cannot read {}: {e}", index.display())))?;
    let idx: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| load_error(format!("{} is not a safetensors index: {e}", index.display())))?;
    let mut shards: Vec<&str> = idx
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| load_error(format!("{} has no weight_map", index.display())))?
        .values()
        .filter_map(|v| v.as_str())
        .collect();
    shards.sort_unstable();
    shards.dedup();
    if shards.is_empty() {
        return Err(load_error(format!("{} lists no weights", index.display())));
    }
    for shard in shards {
        if shard.contains('/') || shard.contains('\\') || shard.starts_with('.') {
            return Err(load_error(format!("{}: shard name {shard:?} is not a file name", index.display())));
        }
        check_file(&dir.join(shard))?;
    }
    Ok(())
}

impl Checkpoint {
    /// Maps and parses a safetensors file (a truncated or corrupt file is reported by path); the
    /// weights view the mapped bytes in place.
    pub fn open(path: &Path) -> Result<Checkpoint> {
        let file = map_file(path)?;
        let all: &[u8] = (*file).as_ref();
        let st = SafeTensors::deserialize(all).map_err(|e| {
            load_error(format!("{} is not a valid safetensors file (truncated or corrupt?): {e}", path.display()))
        })?;
        let base = all.as_ptr() as usize;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let w = convert(&name, path, &file, base, &view)?;
            tensors.insert(name, w);
        }
        Ok(Checkpoint { path: path.to_path_buf(), tensors, compute: None })
    }

    /// Opens a checkpoint folder's weights: the shards listed in `model.safetensors.index.json`
    /// when there is one (larger checkpoints), else `model.safetensors`.
    pub fn open_dir(dir: &Path) -> Result<Checkpoint> {
        let index = dir.join("model.safetensors.index.json");
        if !index.is_file() {
            return Checkpoint::open(&dir.join("model.safetensors"));
        }
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: HashMap<String, String>,
        }
        let text =
            std::fs::read_to_string(&index).map_err(|e| load_error(format!("cannot read {}: {e}", index.display())))?;
        let idx: Index = serde_json::from_str(&text)
            .map_err(|e| load_error(format!("{} is not a safetensors index: {e}", index.display())))?;
        let mut shards: Vec<&String> = idx.weight_map.values().collect();
        shards.sort();
        shards.dedup();
        if shards.is_empty() {
            return Err(load_error(format!("{} lists no weights", index.display())));
        }
        let mut all = Checkpoint { path: index.clone(), tensors: HashMap::new(), compute: None };
        for shard in shards {
            if shard.contains('/') || shard.contains('\\') || shard.starts_with('.') {
                return Err(load_error(format!("{}: shard name {shard:?} is not a file name", index.display())));
            }
            let part = Checkpoint::open(&dir.join(shard))?;
            all.tensors.extend(part.tensors);
        }
        for name in idx.weight_map.keys() {
            if !all.tensors.contains_key(name) {
                return Err(load_error(format!(
                    "{} maps tensor `{name}` to {}, which does not hold it",
                    index.display(),
                    idx.weight_map[name]
                )));
            }
        }
        Ok(all)
    }

    /// Makes every weight taken from now on resident on `cx`'s device as it is taken (a no-op on
    /// the CPU, where weights are used in place).
    pub fn resident_on(mut self, cx: &crate::backend::Compute) -> Checkpoint {
        self.compute = Some(cx.clone());
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes weights built at load from taken ones (re-laid convolutions) resident on the
    /// checkpoint's device, as `take` does for the ones it returns.
    pub fn prepare(&self, weights: &[&Weight]) -> Result<()> {
        if let Some(cx) = &self.compute {
            for w in weights {
                cx.prepare(w)?;
            }
        }
        Ok(())
    }

    /// A tensor still in the checkpoint, without taking it.
    pub fn peek(&self, name: &str) -> Option<&Weight> {
        self.tensors.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Takes a tensor, checking its shape (resident on the checkpoint's device, if it has one).
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Weight> {
        let w = self.take_host(name, shape)?;
        if let Some(cx) = &self.compute {
            cx.prepare(&w)?;
        }
        Ok(w)
    }

    /// Takes a tensor, checking its shape, without a device copy: for load-time math and weights
    /// re-laid out at load (convolutions), whose new layout is what the device gets.
    pub fn take_host(&mut self, name: &str, shape: &[usize]) -> Result<Weight> {
        // A load is stopped between tensors when its engine is destroyed.
        crate::seams::stop::check()?;
        let w = self.tensors.remove(name).ok_or_else(|| {
            load_error(format!("{} has no tensor `{name}` (expected shape {shape:?})", self.path.display()))
        })?;
        if w.shape() != shape {
            return Err(load_error(format!(
                "{}: tensor `{name}` has shape {:?}; the config implies {shape:?}",
                self.path.display(),
                w.shape()
            )));
        }
        Ok(w)
    }

    /// Takes a tensor with whatever shape it has (reference data in tests, tools).
    pub fn take_any(&mut self, name: &str) -> Option<Weight> {
        self.tensors.remove(name)
    }

    /// Takes a small tensor (norm, bias) widened to f32, as a host vector (load-time math).
    pub fn take_f32(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        Ok(self.take_host(name, shape)?.to_f32())
    }

    /// Takes a small tensor (norm, bias, scale) widened to an f32 weight, as the kernels read them.
    pub fn take_vector(&mut self, name: &str, len: usize) -> Result<Weight> {
        let v = self.take_f32(name, &[len])?;
        let w = Weight::from_f32(vec![len], v);
        if let Some(cx) = &self.compute {
            cx.prepare(&w)?;
        }
        Ok(w)
    }

    /// Checks that the checkpoint holds exactly `layers` numbered layers under `prefix`
    /// (`{prefix}0.…` to `{prefix}{layers-1}.…`), before anything is sized by the count: a config
    /// that claims more (or fewer) layers than the file has is an error naming `field`.
    pub fn expect_layers(&self, prefix: &str, layers: usize, field: &str) -> Result<()> {
        let held = self
            .tensors
            .keys()
            .filter_map(|n| n.strip_prefix(prefix))
            .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
            .max()
            .map_or(0, |m| m.saturating_add(1));
        if held != layers {
            return Err(load_error(format!(
                "{}: {field} is {layers}, but the checkpoint holds {held} layers under `{prefix}`",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Names not taken by the loader, sorted (to warn about, or to fail on, unexpected tensors).
    pub fn remaining(&self) -> Vec<String> {
        let mut v: Vec<String> = self.tensors.keys().cloned().collect();
        v.sort();
        v
    }
}

/// Quantized weights run on the CPU backend only (the CUDA formats are a later step): a model
/// on a GPU refuses a recipe instead of loading unquantized.
pub fn only_on_cpu(cx: &crate::backend::Compute) -> Result<()> {
    match cx.device() {
        crate::backend::Device::Cpu => Ok(()),
        other => Err(Error::invalid(format!(
            "quantized weights run on the CPU only; this model is on {other:?} (set the device to the CPU, or the quantization to none)"
        ))),
    }
}
