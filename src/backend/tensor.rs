//! Tensors of the compute layer: weights in their stored precision, activations in f32.

use half::{bf16, f16};

/// Element type of a stored weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    BF16,
    F16,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::BF16 | DType::F16 => 2,
        }
    }
}

/// A weight's elements, kept in the checkpoint's precision (widened to f32 inside the kernels).
#[derive(Clone, Debug)]
pub enum WeightData {
    F32(Vec<f32>),
    BF16(Vec<bf16>),
    F16(Vec<f16>),
}

/// A resident weight: row-major elements and their shape (PyTorch order, e.g. `[out, in]`).
#[derive(Clone, Debug)]
pub struct Weight {
    pub shape: Vec<usize>,
    pub data: WeightData,
}

impl Weight {
    pub fn dtype(&self) -> DType {
        match self.data {
            WeightData::F32(_) => DType::F32,
            WeightData::BF16(_) => DType::BF16,
            WeightData::F16(_) => DType::F16,
        }
    }

    pub fn len(&self) -> usize {
        match &self.data {
            WeightData::F32(v) => v.len(),
            WeightData::BF16(v) => v.len(),
            WeightData::F16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> usize {
        self.len() * self.dtype().size()
    }

    /// Rows of a 2-D weight `[rows, cols]`.
    pub fn rows(&self) -> usize {
        self.shape[0]
    }

    /// Elements per row (the product of all but the first dimension).
    pub fn cols(&self) -> usize {
        self.shape[1..].iter().product()
    }

    /// Widens row `r` (of a weight seen as `[rows, cols]`) into `out`.
    #[inline]
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        let c = self.cols();
        widen(&self.data, r * c, out);
    }

    /// All elements as f32 (for small weights: norms, biases).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut v = vec![0.0; self.len()];
        widen(&self.data, 0, &mut v);
        v
    }

    pub fn from_f32(shape: Vec<usize>, data: Vec<f32>) -> Weight {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Weight { shape, data: WeightData::F32(data) }
    }
}

/// Copies `out.len()` elements starting at `start`, widened to f32.
#[inline]
pub fn widen(data: &WeightData, start: usize, out: &mut [f32]) {
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
    }
}

/// An activation: f32 rows of equal width (`rows × cols`, row-major).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    pub data: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
}

impl Tensor {
    pub fn zeros(rows: usize, cols: usize) -> Tensor {
        Tensor { data: vec![0.0; rows * cols], rows, cols }
    }

    pub fn from_vec(data: Vec<f32>, rows: usize, cols: usize) -> Tensor {
        assert_eq!(data.len(), rows * cols, "tensor data does not match its shape");
        Tensor { data, rows, cols }
    }

    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    pub fn row_mut(&mut self, r: usize) -> &mut [f32] {
        let c = self.cols;
        &mut self.data[r * c..(r + 1) * c]
    }

    /// Stacks rows of the same width.
    pub fn stack(rows: &[&[f32]]) -> Tensor {
        let cols = rows.first().map_or(0, |r| r.len());
        let mut data = Vec::with_capacity(rows.len() * cols);
        for r in rows {
            assert_eq!(r.len(), cols);
            data.extend_from_slice(r);
        }
        Tensor { data, rows: rows.len(), cols }
    }

    /// Element-wise `self += other`.
    pub fn add_assign(&mut self, other: &Tensor) {
        assert_eq!((self.rows, self.cols), (other.rows, other.cols));
        for (a, b) in self.data.iter_mut().zip(&other.data) {
            *a += b;
        }
    }
}
