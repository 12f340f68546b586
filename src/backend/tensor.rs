//! Tensors of the compute layer: weights in their stored precision, activations in f32. Both own
//! their storage privately (host memory today; device memory is another `Storage` variant), so a
//! model never indexes elements: it calls ops, uploads inputs and reads results back with
//! `to_host`.

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use half::{bf16, f16};

use super::cuda::memory::{DeviceBuf, OrRaise};
use super::quant::{QuantData, QuantFormat};
pub use super::scratch::Scratch;
use crate::error::{Error, ErrorKind, Result};

/// Element type of a stored weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    BF16,
    F16,
    /// Quantized at load (`quant::QuantFormat`).
    Q8,
    Q4,
}

/// Bytes that outlive every weight borrowing from them: a memory-mapped checkpoint file (the
/// model layer maps it; the backend only needs the bytes to stay put).
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Element types a weight may be stored in: plain little-endian numbers valid for every bit
/// pattern, so a suitably aligned byte range of a checkpoint can be viewed as them in place.
pub trait Element: Copy + Send + Sync + 'static {}
impl Element for f32 {}
impl Element for bf16 {}
impl Element for f16 {}
impl Element for u8 {}

/// A weight's host elements: owned, or viewed in place in a memory-mapped checkpoint (the
/// safetensors layout is already what the CPU kernels read, so loading copies nothing).
#[derive(Clone)]
pub enum HostBuf<T: Element> {
    Owned(Vec<T>),
    Mapped { bytes: SharedBytes, offset: usize, len: usize, _t: PhantomData<T> },
}

impl<T: Element> HostBuf<T> {
    /// A view of `len` elements at byte `offset` of `bytes`, when the range is inside and
    /// aligned for `T` and the machine is little-endian; `None` otherwise (the caller copies).
    pub fn mapped(bytes: SharedBytes, offset: usize, len: usize) -> Option<HostBuf<T>> {
        let size = len.checked_mul(std::mem::size_of::<T>())?;
        let end = offset.checked_add(size)?;
        let all = (*bytes).as_ref();
        if cfg!(target_endian = "big") || end > all.len() {
            return None;
        }
        if !(all.as_ptr() as usize + offset).is_multiple_of(std::mem::align_of::<T>()) {
            return None;
        }
        Some(HostBuf::Mapped { bytes, offset, len, _t: PhantomData })
    }
}

impl<T: Element> From<Vec<T>> for HostBuf<T> {
    fn from(v: Vec<T>) -> Self {
        HostBuf::Owned(v)
    }
}

impl<T: Element> std::ops::Deref for HostBuf<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        match self {
            HostBuf::Owned(v) => v,
            HostBuf::Mapped { bytes, offset, len, .. } => {
                let all = (**bytes).as_ref();
                // SAFETY: `mapped` checked that the range lies inside the bytes and is aligned
                // for `T`; `T` is valid for every bit pattern (`Element`); the bytes are shared
                // and never written while weights view them.
                unsafe { std::slice::from_raw_parts(all.as_ptr().add(*offset) as *const T, *len) }
            }
        }
    }
}

impl<T: Element> std::fmt::Debug for HostBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if matches!(self, HostBuf::Owned(_)) { "owned" } else { "mapped" };
        write!(f, "HostBuf({kind}, {} elements)", self.len())
    }
}

/// A weight's elements, kept in the checkpoint's precision (widened to f32 inside the kernels).
#[derive(Clone, Debug)]
pub enum WeightData {
    F32(HostBuf<f32>),
    BF16(HostBuf<bf16>),
    F16(HostBuf<f16>),
    /// Quantized at load from one of the above (`Weight::quantize`; the CPU backend reads it);
    /// shared, so clones (a cache's record of what it wrote) copy nothing.
    Quant(Arc<QuantData>),
}

impl WeightData {
    /// Whether the elements are viewed in place in a mapped file (not copied).
    pub fn is_mapped(&self) -> bool {
        match self {
            WeightData::F32(b) => matches!(b, HostBuf::Mapped { .. }),
            WeightData::BF16(b) => matches!(b, HostBuf::Mapped { .. }),
            WeightData::F16(b) => matches!(b, HostBuf::Mapped { .. }),
            WeightData::Quant(q) => matches!(q.packed, HostBuf::Mapped { .. }),
        }
    }
}

impl WeightData {
    fn len(&self) -> usize {
        match self {
            WeightData::F32(v) => v.len(),
            WeightData::BF16(v) => v.len(),
            WeightData::F16(v) => v.len(),
            WeightData::Quant(q) => q.len(),
        }
    }
}

/// A resident weight: row-major elements and their shape (PyTorch order, e.g. `[out, in]`); on a
/// CUDA backend also a device copy in the stored precision, made on first use and shared by clones.
#[derive(Clone, Debug)]
pub struct Weight {
    shape: Vec<usize>,
    data: WeightData,
    device: Arc<OnceLock<DeviceBuf>>,
}

impl Weight {
    /// A weight from stored elements; the shape must account for every element.
    pub fn new(shape: Vec<usize>, data: WeightData) -> Result<Weight> {
        if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(data.len()) {
            return Err(Error::new(
                ErrorKind::ModelLoad,
                format!("a weight of shape {shape:?} cannot hold {} elements", data.len()),
            ));
        }
        // A quantized weight's rows are its groups' rows: the shape must not cut them otherwise.
        if let WeightData::Quant(q) = &data
            && shape.iter().skip(1).product::<usize>() != q.cols()
        {
            return Err(Error::new(
                ErrorKind::ModelLoad,
                format!("a quantized weight of rows of {} cannot have shape {shape:?}", q.cols()),
            ));
        }
        Ok(Weight { shape, data, device: Arc::default() })
    }

    pub fn from_f32(shape: Vec<usize>, data: Vec<f32>) -> Weight {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "weight data does not match its shape");
        Weight { shape, data: WeightData::F32(data.into()), device: Arc::default() }
    }

    /// The same elements seen with another shape of equal size (e.g. `[out, in, 1]` → `[out, in]`);
    /// a device copy is the same bytes and is kept.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Weight> {
        let device = self.device.clone();
        Ok(Weight { device, ..Weight::new(shape, self.data)? })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        match &self.data {
            WeightData::F32(_) => DType::F32,
            WeightData::BF16(_) => DType::BF16,
            WeightData::F16(_) => DType::F16,
            WeightData::Quant(q) => match q.format() {
                QuantFormat::Q8 => DType::Q8,
                QuantFormat::Q4 => DType::Q4,
            },
        }
    }

    /// The quantized data of a quantized weight.
    pub fn quant_data(&self) -> Option<&QuantData> {
        match &self.data {
            WeightData::Quant(q) => Some(q),
            _ => None,
        }
    }

    /// Whether rows `rows` of this stored weight quantize to exactly those rows of `q` (a
    /// quantized copy read from a cache: a cheap check that it was made from these weights).
    pub fn quantizes_to(&self, q: &Weight, rows: &[usize]) -> bool {
        let (Some(qd), None) = (q.quant_data(), self.quant_data()) else { return false };
        if self.shape != q.shape {
            return false;
        }
        let cols = self.cols();
        rows.iter().filter(|&&r| r < self.rows()).all(|&r| {
            match QuantData::quantize(qd.format(), 1, cols, &|_, out| widen(&self.data, r * cols, out)) {
                Ok(one) => one.row(0) == qd.row(r),
                Err(_) => false,
            }
        })
    }

    /// The same weight quantized to `format` (load time; rows of `cols()` elements). Fails when
    /// the format does not fit the rows or the values (`QuantData::quantize`); the weight is
    /// then used as stored. A weight already quantized is refused.
    pub fn quantize(&self, format: QuantFormat) -> Result<Weight> {
        if matches!(self.data, WeightData::Quant(_)) {
            return Err(Error::new(ErrorKind::ModelLoad, "a weight is quantized once".to_string()));
        }
        let cols = self.cols();
        let q = QuantData::quantize(format, self.rows(), cols, &|r, out| widen(&self.data, r * cols, out))?;
        Weight::new(self.shape.clone(), WeightData::Quant(Arc::new(q)))
    }

    /// The same weight stored as bf16 (each value rounded to nearest, ties to even; load time).
    pub fn to_bf16(&self) -> Weight {
        let data = self.to_f32().into_iter().map(bf16::from_f32).collect::<Vec<_>>();
        Weight { shape: self.shape.clone(), data: WeightData::BF16(data.into()), device: Arc::default() }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the stored elements (scales included for quantized weights).
    pub fn bytes(&self) -> usize {
        match &self.data {
            WeightData::F32(v) => 4 * v.len(),
            WeightData::BF16(v) => 2 * v.len(),
            WeightData::F16(v) => 2 * v.len(),
            WeightData::Quant(q) => q.bytes(),
        }
    }

    /// Rows of a weight seen as `[rows, cols]`.
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Elements per row (the product of all but the first dimension).
    pub fn cols(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The elements as stored, seen as bytes (little endian; fingerprints of checkpoints).
    pub fn stored_bytes(&self) -> &[u8] {
        fn bytes<T: Element>(v: &[T]) -> &[u8] {
            // SAFETY: `Element` types are plain numbers without padding; any initialised value
            // may be read as bytes, and the view borrows the elements.
            unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
        }
        match &self.data {
            WeightData::F32(v) => bytes(v),
            WeightData::BF16(v) => bytes(v),
            WeightData::F16(v) => bytes(v),
            WeightData::Quant(q) => bytes(&q.packed),
        }
    }

    /// All elements widened to f32, on the host (load-time preparation, reference data).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut v = vec![0.0; self.len()];
        widen(&self.data, 0, &mut v);
        v
    }

    /// The raw little-endian bytes in the stored precision (writing checkpoints).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match &self.data {
            WeightData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            WeightData::BF16(v) => v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
            WeightData::F16(v) => v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
            // Checkpoints hold stored precisions only: a quantized weight is written as the f32
            // values it stands for.
            WeightData::Quant(_) => self.to_f32().iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// Whether the elements are viewed in place in a memory-mapped checkpoint.
    pub fn is_mapped(&self) -> bool {
        self.data.is_mapped()
    }

    pub(in crate::backend) fn data(&self) -> &WeightData {
        &self.data
    }

    /// The device copy's slot (filled by the CUDA backend on first use).
    pub(in crate::backend) fn device_copy(&self) -> &OnceLock<DeviceBuf> {
        &self.device
    }

    /// The elements of an f32 weight (the small per-channel vectors: norms, biases, scales).
    pub(in crate::backend) fn f32s(&self) -> &[f32] {
        match &self.data {
            WeightData::F32(v) => v,
            _ => panic!("expected an f32 weight (norms and biases are widened at load)"),
        }
    }

    /// The bits of a bf16 weight, `None` for other storage.
    pub(in crate::backend) fn bf16_bits(&self) -> Option<&[u16]> {
        match &self.data {
            WeightData::BF16(v) => Some(half::slice::HalfFloatSliceExt::reinterpret_cast(&v[..])),
            _ => None,
        }
    }

    /// Widens row `r` (of the weight seen as `[rows, cols]`) into `out`.
    #[inline]
    pub(in crate::backend) fn row_into(&self, r: usize, out: &mut [f32]) {
        let c = self.cols();
        widen(&self.data, r * c, out);
    }
}

/// Copies `out.len()` elements starting at `start`, widened to f32.
#[inline]
pub(in crate::backend) fn widen(data: &WeightData, start: usize, out: &mut [f32]) {
    let n = out.len();
    match data {
        WeightData::F32(v) => out.copy_from_slice(&v[start..start + n]),
        // bf16 is the top half of an f32: widening is a shift, exact.
        WeightData::BF16(v) => {
            for (o, x) in out.iter_mut().zip(&v[start..start + n]) {
                *o = f32::from_bits((x.to_bits() as u32) << 16);
            }
        }
        WeightData::F16(v) => {
            for (o, x) in out.iter_mut().zip(&v[start..start + n]) {
                *o = x.to_f32();
            }
        }
        WeightData::Quant(q) => q.dequantize(start, out),
    }
}

/// Where a tensor's elements live (and, for scratch tensors, where they go back on drop).
#[derive(Debug)]
enum Storage {
    Host(Vec<f32>, Option<std::sync::Arc<Scratch>>),
    /// `rows × cols` f32 in device memory (a CUDA backend's pooled buffer).
    Device(DeviceBuf),
}

const ON_DEVICE: &str = "a CUDA tensor was passed to a host operation (tensors of different backends mixed)";

/// An activation: f32 rows of equal width (`rows × cols`, row-major), owned by the backend that
/// made it.
#[derive(Debug)]
pub struct Tensor {
    storage: Storage,
    rows: usize,
    cols: usize,
}

impl Default for Tensor {
    fn default() -> Tensor {
        Tensor::zeros(0, 0)
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        if let Storage::Host(v, pool) = &mut self.storage
            && let Some(pool) = pool.take()
        {
            pool.give(std::mem::take(v));
        }
    }
}

impl Clone for Tensor {
    fn clone(&self) -> Tensor {
        let (v, pool) = match &self.storage {
            Storage::Host(v, pool) => (v, pool),
            Storage::Device(buf) => {
                let copy = buf.duplicate().or_raise();
                return Tensor { storage: Storage::Device(copy), rows: self.rows, cols: self.cols };
            }
        };
        let data = match pool {
            Some(p) => {
                let mut d = p.take_dirty(v.len());
                d.copy_from_slice(v);
                d
            }
            None => v.clone(),
        };
        Tensor { storage: Storage::Host(data, pool.clone()), rows: self.rows, cols: self.cols }
    }
}

impl PartialEq for Tensor {
    fn eq(&self, other: &Tensor) -> bool {
        self.rows == other.rows && self.cols == other.cols && self.to_host() == other.to_host()
    }
}

impl Tensor {
    /// Host zeros (the CPU backend's allocation; a device backend makes its own).
    pub fn zeros(rows: usize, cols: usize) -> Tensor {
        Tensor { storage: Storage::Host(vec![0.0; rows * cols], None), rows, cols }
    }

    /// Zeros from a scratch workspace (the buffer goes back to it when the tensor is dropped).
    pub(in crate::backend) fn scratch(pool: &std::sync::Arc<Scratch>, rows: usize, cols: usize) -> Tensor {
        Tensor { storage: Storage::Host(pool.take(rows * cols), Some(pool.clone())), rows, cols }
    }

    /// A scratch tensor the caller writes whole (its old contents are not cleared).
    pub(in crate::backend) fn scratch_dirty(pool: &std::sync::Arc<Scratch>, rows: usize, cols: usize) -> Tensor {
        Tensor { storage: Storage::Host(pool.take_dirty(rows * cols), Some(pool.clone())), rows, cols }
    }

    /// Host data as a tensor (what `Backend::upload` does for the CPU).
    pub fn from_vec(data: Vec<f32>, rows: usize, cols: usize) -> Tensor {
        assert_eq!(data.len(), rows * cols, "tensor data does not match its shape");
        Tensor { storage: Storage::Host(data, None), rows, cols }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The same elements seen as `[rows, cols]` (no copy).
    pub fn reshape(mut self, rows: usize, cols: usize) -> Tensor {
        assert_eq!(rows * cols, self.len(), "reshape: [{}, {}] to [{rows}, {cols}]", self.rows, self.cols);
        self.rows = rows;
        self.cols = cols;
        self
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A tensor in device memory (a CUDA backend's output).
    pub(in crate::backend) fn on_device(buf: DeviceBuf, rows: usize, cols: usize) -> Tensor {
        assert!(buf.bytes() >= rows * cols * 4, "a device buffer of {} bytes for [{rows}, {cols}]", buf.bytes());
        Tensor { storage: Storage::Device(buf), rows, cols }
    }

    /// The device buffer of a CUDA tensor (`None` on the host).
    pub(in crate::backend) fn device_buf(&self) -> Option<&DeviceBuf> {
        match &self.storage {
            Storage::Device(b) => Some(b),
            Storage::Host(..) => None,
        }
    }

    /// The elements, copied to the host (results, logits for sampling, tests). A device tensor
    /// waits for its stream; a device failure there (a lost GPU) is raised (`cuda::memory::raise`).
    pub fn to_host(&self) -> Vec<f32> {
        match &self.storage {
            Storage::Host(v, _) => v.to_vec(),
            Storage::Device(b) => {
                let mut v = b.to_f32().or_raise();
                v.truncate(self.len());
                v
            }
        }
    }

    /// The elements, moved to the host.
    pub fn into_host(mut self) -> Vec<f32> {
        match &mut self.storage {
            Storage::Host(v, pool) => {
                *pool = None;
                std::mem::take(v)
            }
            Storage::Device(_) => self.to_host(),
        }
    }

    pub(in crate::backend) fn host(&self) -> &[f32] {
        match &self.storage {
            Storage::Host(v, _) => v,
            Storage::Device(_) => panic!("{ON_DEVICE}"),
        }
    }

    pub(in crate::backend) fn host_mut(&mut self) -> &mut [f32] {
        match &mut self.storage {
            Storage::Host(v, _) => v,
            Storage::Device(_) => panic!("{ON_DEVICE}"),
        }
    }

    pub(in crate::backend) fn row(&self, r: usize) -> &[f32] {
        &self.host()[r * self.cols..(r + 1) * self.cols]
    }

    pub(in crate::backend) fn row_mut(&mut self, r: usize) -> &mut [f32] {
        let c = self.cols;
        &mut self.host_mut()[r * c..(r + 1) * c]
    }
}

/// Token ids chosen on a backend (`Backend::sample_ids`): in host memory, or in device memory
/// where a GPU chose them, so that they can feed the next embedding lookup (`embedding_ids`)
/// without a wait, and be read back together once a frame (`Backend::read_ids`).
#[derive(Debug)]
pub struct Ids {
    storage: IdStorage,
    len: usize,
    /// Every id is below this (the width of the logits they were chosen from).
    bound: usize,
}

#[derive(Debug)]
enum IdStorage {
    Host(Vec<u32>),
    Device(DeviceBuf),
}

impl Ids {
    /// Host ids, each below `bound`.
    pub fn from_host(ids: Vec<u32>, bound: usize) -> Ids {
        debug_assert!(ids.iter().all(|&i| (i as usize) < bound));
        Ids { len: ids.len(), storage: IdStorage::Host(ids), bound }
    }

    /// `len` ids in a device buffer, each below `bound` (a CUDA backend's sampling output).
    pub(in crate::backend) fn on_device(buf: DeviceBuf, len: usize, bound: usize) -> Ids {
        assert!(buf.bytes() >= len * 4, "a device buffer of {} bytes for {len} ids", buf.bytes());
        Ids { storage: IdStorage::Device(buf), len, bound }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// An exclusive upper bound of the ids (embedding tables must have at least this many rows).
    pub fn bound(&self) -> usize {
        self.bound
    }

    /// The host ids (`None` for device ids: read those with `Backend::read_ids`).
    pub fn host(&self) -> Option<&[u32]> {
        match &self.storage {
            IdStorage::Host(v) => Some(v),
            IdStorage::Device(_) => None,
        }
    }

    pub(in crate::backend) fn device_buf(&self) -> Option<&DeviceBuf> {
        match &self.storage {
            IdStorage::Device(b) => Some(b),
            IdStorage::Host(_) => None,
        }
    }
}
