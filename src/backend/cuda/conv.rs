//! Convolutions on the GPU, as on the CPU: im2col then one product (1-D and the 3×3 stride-2 2-D),
//! the transposed convolution as one product and a gather of its taps, the depthwise one directly.

use super::args::KernelArgs;
use super::backend::{Cuda, ptr};
use crate::backend::conv::{Conv1dWeight, Conv2dWeight, ConvTranspose1dWeight, DepthwiseConv1dWeight};
use crate::backend::tensor::Tensor;

/// Most f32 values one 2-D im2col block may hold (bounds the device memory of long inputs).
const IM2COL_BUDGET: usize = 32 << 20;

impl Cuda {
    pub(super) fn conv1d_op(&self, x: &Tensor, w: &Conv1dWeight) -> Tensor {
        let (k, d, s, cin) = (w.kernel, w.dilation, w.stride, w.cin);
        assert_eq!(x.cols(), cin, "conv1d: input rows of {} for {cin} channels", x.cols());
        let t = w.out_rows(x.rows());
        let y = self.output(t, w.out_channels());
        if k == 1 && s == 1 {
            self.linear_into(ptr(x), t, cin, &w.matrix, Some(&w.bias), ptr(&y), false);
            return y;
        }
        // Row r of the im2col matrix: input rows r·s + tap·d, tap after tap.
        let cols = self.output(t, k * cin);
        let mut a = KernelArgs::new();
        a.ptr(ptr(x)).ptr(ptr(&cols)).i32(cin as i32).i32(k as i32).i32(d as i32).i32(s as i32);
        self.map("im2col_1d_f32", cols.len(), &mut a);
        self.linear_into(ptr(&cols), t, k * cin, &w.matrix, Some(&w.bias), ptr(&y), false);
        y
    }

    pub(super) fn conv_transpose1d_op(&self, x: &Tensor, w: &ConvTranspose1dWeight) -> Tensor {
        let (r, kernel, cout) = (w.stride, w.kernel, w.cout);
        let part = self.output(x.rows(), kernel * cout); // [T, k·out]
        self.linear_into(ptr(x), x.rows(), x.cols(), &w.taps, None, ptr(&part), false);
        let y = self.output(x.rows() * r + w.overhang(), cout);
        let mut a = KernelArgs::new();
        a.ptr(ptr(&part)).ptr(ptr(&y)).i32(x.rows() as i32).i32(kernel as i32).i32(r as i32).i32(cout as i32);
        self.map("conv_transpose_gather_f32", y.len(), &mut a);
        y
    }

    pub(super) fn depthwise_conv1d_op(&self, x: &Tensor, w: &DepthwiseConv1dWeight) -> Tensor {
        let (c, k) = (x.cols(), w.kernel);
        assert_eq!(c, w.bias.len(), "depthwise conv1d: rows of {c} for {} channels", w.bias.len());
        assert!(x.rows() >= k - 1, "depthwise conv1d: fewer rows than the context");
        let y = self.output(x.rows() + 1 - k, c);
        let mut a = KernelArgs::new();
        a.ptr(ptr(x)).ptr(self.weight(&w.taps)).ptr(self.weight(&w.bias)).ptr(ptr(&y)).i32(c as i32).i32(k as i32);
        self.map("depthwise_conv1d_f32", y.len(), &mut a);
        y
    }

    pub(super) fn conv2d_s2_op(&self, x: &Tensor, w: &Conv2dWeight, images: usize, f: usize, t: usize) -> Tensor {
        let cin = w.cin;
        assert_eq!((x.rows(), x.cols()), (images * f * t, cin), "conv2d: input does not hold {images} images");
        let (fo, to) = (f.div_ceil(2), t.div_ceil(2));
        let (pixels, width, cout) = (fo * to, 9 * cin, w.out_channels());
        let y = self.output(images * pixels, cout);
        let per_block = (IM2COL_BUDGET / (pixels * width).max(1)).clamp(1, images.max(1));
        for first in (0..images).step_by(per_block) {
            let n = per_block.min(images - first);
            let cols = self.output(n * pixels, width);
            let mut a = KernelArgs::new();
            a.ptr(ptr(x) + (first * f * t * cin * 4) as u64).ptr(ptr(&cols));
            a.i32(cin as i32).i32(f as i32).i32(t as i32).i32(fo as i32).i32(to as i32);
            self.map("im2col_2d_s2_f32", cols.len(), &mut a);
            let out = ptr(&y) + (first * pixels * cout * 4) as u64;
            self.linear_into(ptr(&cols), n * pixels, width, &w.matrix, Some(&w.bias), out, false);
        }
        y
    }
}
