//! Convolution weights, laid out once at load for the backend's kernels from PyTorch's layouts
//! (the models hand over the checkpoint tensors as stored).

use super::tensor::Weight;
use crate::error::{Error, ErrorKind, Result};

fn shape_error(what: &str, got: &[usize], want: String) -> Error {
    Error::new(ErrorKind::ModelLoad, format!("{what}: weight shape {got:?}, expected {want}"))
}

/// A 1-D convolution as one matrix `[out, k·in]` over the taps' shifted inputs (im2col): column
/// `t·in + i` multiplies input channel i at tap t. Output row r reads input rows
/// `r·stride + t·dilation`.
///
/// A convolution without a bias (`nn.Conv1d(bias=False)`, e.g. Mimi's downsampling conv) takes a
/// zero bias built by the caller: `Weight::from_f32(vec![out], vec![0.0; out])` (adding 0 changes
/// no value).
#[derive(Clone, Debug)]
pub struct Conv1dWeight {
    pub(in crate::backend) matrix: Weight,
    pub(in crate::backend) bias: Weight,
    pub(in crate::backend) kernel: usize,
    pub(in crate::backend) dilation: usize,
    pub(in crate::backend) stride: usize,
    pub(in crate::backend) cin: usize,
}

impl Conv1dWeight {
    /// From `nn.Conv1d`'s `[out, in, k]` weight and `[out]` bias (a zero bias for `bias=False`),
    /// stride 1.
    pub fn new(weight: &Weight, bias: &Weight, dilation: usize) -> Result<Conv1dWeight> {
        Conv1dWeight::strided(weight, bias, dilation, 1)
    }

    /// `new` with a stride (`nn.Conv1d(stride=s)`; the caller pads the input as PyTorch would).
    pub fn strided(weight: &Weight, bias: &Weight, dilation: usize, stride: usize) -> Result<Conv1dWeight> {
        let &[cout, cin, k] = weight.shape() else {
            return Err(shape_error("conv1d", weight.shape(), "[out, in, k]".into()));
        };
        if bias.len() != cout || dilation == 0 || k == 0 {
            return Err(shape_error("conv1d bias", bias.shape(), format!("[{cout}]")));
        }
        if stride == 0 {
            return Err(Error::new(ErrorKind::ModelLoad, "conv1d: a stride of 0".to_string()));
        }
        let w = weight.to_f32();
        let mut m = vec![0.0; cout * k * cin];
        for o in 0..cout {
            for i in 0..cin {
                for t in 0..k {
                    m[o * k * cin + t * cin + i] = w[(o * cin + i) * k + t];
                }
            }
        }
        Ok(Conv1dWeight {
            matrix: Weight::from_f32(vec![cout, k * cin], m),
            bias: Weight::from_f32(vec![cout], bias.to_f32()),
            kernel: k,
            dilation,
            stride,
            cin,
        })
    }

    /// The weights the kernels read (the re-laid matrix, the bias), for `Backend::prepare`.
    pub fn weights(&self) -> Vec<&Weight> {
        vec![&self.matrix, &self.bias]
    }

    /// The same convolution with its weights stored as bf16 (rounded to nearest; the bias stays
    /// f32): the backends multiply the inputs rounded to bf16 and sum in f32. Lossy, so a model
    /// does it only when its caller asked for it (a quantization recipe), and where it runs faster
    /// (`Backend::fast_bf16_products`).
    pub fn to_bf16(&self) -> Conv1dWeight {
        Conv1dWeight { matrix: self.matrix.to_bf16(), ..self.clone() }
    }

    /// Rows of left context the convolution needs: `(k−1)·dilation`.
    pub fn context(&self) -> usize {
        (self.kernel - 1) * self.dilation
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Output rows of an input of `rows` rows (at least `context()`): `(rows − context − 1) /
    /// stride + 1`, 0 when `rows = context`.
    pub fn out_rows(&self, rows: usize) -> usize {
        let ctx = self.context();
        assert!(rows >= ctx, "conv1d: {rows} rows are fewer than the context {ctx}");
        if rows == ctx { 0 } else { (rows - ctx - 1) / self.stride + 1 }
    }

    pub fn out_channels(&self) -> usize {
        self.matrix.rows()
    }

    pub fn in_channels(&self) -> usize {
        self.cin
    }
}

/// A transposed 1-D convolution with stride r: all taps stacked, row `t·out + o` is tap t's
/// output channel o (one product per call, then a gather).
#[derive(Clone, Debug)]
pub struct ConvTranspose1dWeight {
    pub(in crate::backend) taps: Weight,
    pub(in crate::backend) kernel: usize,
    pub(in crate::backend) stride: usize,
    pub(in crate::backend) cout: usize,
}

impl ConvTranspose1dWeight {
    /// From `nn.ConvTranspose1d`'s `[in, out, k]` weight.
    pub fn new(weight: &Weight, stride: usize) -> Result<ConvTranspose1dWeight> {
        let &[cin, cout, k] = weight.shape() else {
            return Err(shape_error("conv_transpose1d", weight.shape(), "[in, out, k]".into()));
        };
        if stride == 0 || k < stride {
            return Err(shape_error("conv_transpose1d", weight.shape(), format!("a kernel of at least {stride}")));
        }
        let w = weight.to_f32();
        let mut m = vec![0.0; k * cout * cin];
        // m[t, o, i] = w[i, o, t], a tile of input channels at a time: each (o, i) reads its k
        // taps together and each (t, o) writes a run of the tile, where a plain loop over i
        // strides through the whole weight (slow at load for the wide layers).
        const TILE: usize = 64;
        for i0 in (0..cin).step_by(TILE) {
            let i1 = (i0 + TILE).min(cin);
            for o in 0..cout {
                for i in i0..i1 {
                    let taps = &w[(i * cout + o) * k..(i * cout + o + 1) * k];
                    for (t, &v) in taps.iter().enumerate() {
                        m[(t * cout + o) * cin + i] = v;
                    }
                }
            }
        }
        Ok(ConvTranspose1dWeight { taps: Weight::from_f32(vec![k * cout, cin], m), kernel: k, stride, cout })
    }

    /// The weights the kernels read (the stacked taps), for `Backend::prepare`.
    pub fn weights(&self) -> Vec<&Weight> {
        vec![&self.taps]
    }

    /// The same convolution with its taps stored as bf16 (see `Conv1dWeight::to_bf16`).
    pub fn to_bf16(&self) -> ConvTranspose1dWeight {
        ConvTranspose1dWeight { taps: self.taps.to_bf16(), ..self.clone() }
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Rows each call spills into the next one's first outputs: `k − r`.
    pub fn overhang(&self) -> usize {
        self.kernel - self.stride
    }

    pub fn out_channels(&self) -> usize {
        self.cout
    }
}

/// A depthwise 1-D convolution: `[C, k]` taps and a bias.
#[derive(Clone, Debug)]
pub struct DepthwiseConv1dWeight {
    pub(in crate::backend) taps: Weight,
    pub(in crate::backend) bias: Weight,
    pub(in crate::backend) kernel: usize,
}

impl DepthwiseConv1dWeight {
    /// From `nn.Conv1d(groups = C)`'s `[C, 1, k]` weight and `[C]` bias.
    pub fn new(weight: &Weight, bias: &Weight) -> Result<DepthwiseConv1dWeight> {
        let &[c, 1, k] = weight.shape() else {
            return Err(shape_error("depthwise conv1d", weight.shape(), "[C, 1, k]".into()));
        };
        if bias.len() != c || k == 0 {
            return Err(shape_error("depthwise conv1d bias", bias.shape(), format!("[{c}]")));
        }
        Ok(DepthwiseConv1dWeight {
            taps: Weight::from_f32(vec![c, k], weight.to_f32()),
            bias: Weight::from_f32(vec![c], bias.to_f32()),
            kernel: k,
        })
    }

    /// The weights the kernels read (taps, bias), for `Backend::prepare`.
    pub fn weights(&self) -> Vec<&Weight> {
        vec![&self.taps, &self.bias]
    }

    /// Rows of left context: `k − 1`.
    pub fn context(&self) -> usize {
        self.kernel - 1
    }
}

/// A 3×3 2-D convolution as a matrix `[out, (kf, kt, in)]`, so that im2col copies whole channel
/// vectors.
#[derive(Clone, Debug)]
pub struct Conv2dWeight {
    pub(in crate::backend) matrix: Weight,
    pub(in crate::backend) bias: Weight,
    pub(in crate::backend) cin: usize,
}

impl Conv2dWeight {
    /// The weights the kernels read (the re-laid matrix, the bias), for `Backend::prepare`.
    pub fn weights(&self) -> Vec<&Weight> {
        vec![&self.matrix, &self.bias]
    }

    /// From `nn.Conv2d`'s `[out, in, 3, 3]` weight and `[out]` bias.
    pub fn new(weight: &Weight, bias: &Weight) -> Result<Conv2dWeight> {
        let &[cout, cin, 3, 3] = weight.shape() else {
            return Err(shape_error("conv2d", weight.shape(), "[out, in, 3, 3]".into()));
        };
        if bias.len() != cout {
            return Err(shape_error("conv2d bias", bias.shape(), format!("[{cout}]")));
        }
        let w = weight.to_f32();
        let mut r = vec![0.0f32; cout * 9 * cin];
        for o in 0..cout {
            for c in 0..cin {
                for tap in 0..9 {
                    r[o * 9 * cin + tap * cin + c] = w[(o * cin + c) * 9 + tap];
                }
            }
        }
        Ok(Conv2dWeight {
            matrix: Weight::from_f32(vec![cout, 9 * cin], r),
            bias: Weight::from_f32(vec![cout], bias.to_f32()),
            cin,
        })
    }

    pub fn out_channels(&self) -> usize {
        self.matrix.rows()
    }
}
