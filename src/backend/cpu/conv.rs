//! Convolutions on the CPU: 1-D ones as direct products over the input rows (`direct_conv`, where
//! the CPU has AVX2 or AVX-512 and the channels fill whole vectors) or im2col into one matrix product, the
//! 3×3 stride-2 2-D one by im2col, the transposed convolution as one product and a gather, and
//! the depthwise convolution directly.

use super::Cpu;
use super::direct_conv::{self, ConvShape};
use crate::backend::conv::{Conv1dWeight, Conv2dWeight, ConvTranspose1dWeight, DepthwiseConv1dWeight};
use crate::backend::tensor::Tensor;

/// Most f32 values one 2-D im2col block may hold (bounds the scratch memory of long inputs).
const IM2COL_BUDGET: usize = 8 << 20;
/// Inputs at least this wide over at least `SGEMM_ROWS` output rows go through im2col and the
/// packed, cache-blocked SGEMM, which outruns the AVX2 direct kernel there (measured on the codec's
/// 768-channel convolutions: ≈ 92 against 77 GFLOP/s a core) and matches the AVX-512 one (86–104
/// against 89–108 on 256–2400 rows, loaded machine); the direct kernels win on narrower inputs and
/// on few rows.
const SGEMM_CHANNELS: usize = 768;
const SGEMM_ROWS: usize = 256;

pub(super) fn conv1d(cpu: &Cpu, x: &Tensor, w: &Conv1dWeight) -> Tensor {
    let (k, d, s, cin) = (w.kernel, w.dilation, w.stride, w.cin);
    assert_eq!(x.cols(), cin, "conv1d: input rows of {} for {cin} channels", x.cols());
    let t = w.out_rows(x.rows());
    let shape = ConvShape { rows: t, cin, cout: w.out_channels(), kernel: k, dilation: d, stride: s };
    if let Some(bits) = w.matrix.bf16_bits() {
        if direct_conv::bf16_available(cin) {
            return direct_conv::conv_product_bf16(cpu, x, bits, Some(w.bias.f32s()), shape);
        }
        // No bf16 kernel here: the same products from the inputs rounded to bf16 (the widened
        // weights and the rounded inputs multiply exactly in f32) by im2col and the product.
        return im2col_conv1d(cpu, &rounded_to_bf16(cpu, x), w, t);
    }
    if direct_conv::available(cin) && (cin < SGEMM_CHANNELS || t < SGEMM_ROWS) {
        return direct_conv::conv_product(cpu, x, w.matrix.f32s(), Some(w.bias.f32s()), shape);
    }
    im2col_conv1d(cpu, x, w, t)
}

/// `x` with every value rounded to bf16 (to nearest, ties to even), as f32.
fn rounded_to_bf16(cpu: &Cpu, x: &Tensor) -> Tensor {
    let mut r = cpu.output(x.rows(), x.cols());
    for (o, &v) in r.host_mut().iter_mut().zip(x.host()) {
        *o = half::bf16::from_f32(v).to_f32();
    }
    r
}

/// `conv1d` as one product over the taps' shifted input rows (im2col), `t` output rows.
fn im2col_conv1d(cpu: &Cpu, x: &Tensor, w: &Conv1dWeight, t: usize) -> Tensor {
    let (k, d, s, cin) = (w.kernel, w.dilation, w.stride, w.cin);
    if k == 1 && s == 1 {
        return cpu.linear_one(x, &w.matrix, Some(w.bias.f32s()));
    }
    // Row r of the im2col matrix: input rows r·s + tap·d, tap after tap.
    let mut cols = cpu.output(t, k * cin);
    cpu.for_rows(cols.host_mut(), k * cin, |r, row| {
        for tap in 0..k {
            row[tap * cin..(tap + 1) * cin].copy_from_slice(x.row(r * s + tap * d));
        }
    });
    cpu.linear_one(&cols, &w.matrix, Some(w.bias.f32s()))
}

pub(super) fn conv_transpose1d(cpu: &Cpu, x: &Tensor, w: &ConvTranspose1dWeight) -> Tensor {
    let (r, kernel, cout) = (w.stride, w.kernel, w.cout);
    // [T, k·out]
    let shape = ConvShape { rows: x.rows(), cin: x.cols(), cout: kernel * cout, kernel: 1, dilation: 1, stride: 1 };
    let part = match w.taps.bf16_bits() {
        Some(bits) if direct_conv::bf16_available(x.cols()) => {
            direct_conv::conv_product_bf16(cpu, x, bits, None, shape)
        }
        Some(_) => cpu.linear_one(&rounded_to_bf16(cpu, x), &w.taps, None),
        None if direct_conv::available(x.cols()) => direct_conv::conv_product(cpu, x, w.taps.f32s(), None, shape),
        None => cpu.linear_one(x, &w.taps, None),
    };
    let mut y = cpu.tensor(x.rows() * r + w.overhang(), cout);
    // Output row o gathers tap k of input row (o − k)/r, taps in ascending order.
    let rows = x.rows();
    cpu.for_rows(y.host_mut(), cout, |o, row| {
        for k in 0..kernel {
            if o >= k && (o - k) % r == 0 && (o - k) / r < rows {
                let src = &part.row((o - k) / r)[k * cout..(k + 1) * cout];
                for (a, b) in row.iter_mut().zip(src) {
                    *a += b;
                }
            }
        }
    });
    y
}

pub(super) fn depthwise_conv1d(cpu: &Cpu, x: &Tensor, w: &DepthwiseConv1dWeight) -> Tensor {
    let (c, k) = (x.cols(), w.kernel);
    assert_eq!(c, w.bias.len(), "depthwise conv1d: rows of {c} for {} channels", w.bias.len());
    assert!(x.rows() >= k - 1, "depthwise conv1d: fewer rows than the context");
    let t = x.rows() + 1 - k;
    let (taps, bias) = (w.taps.f32s(), w.bias.f32s());
    let mut h = cpu.output(t, c);
    for i in 0..t {
        let out = h.row_mut(i);
        out.copy_from_slice(bias);
        for tap in 0..k {
            let src = x.row(i + tap);
            for ch in 0..c {
                out[ch] += taps[ch * k + tap] * src[ch];
            }
        }
    }
    h
}

fn conv_out_len(n: usize) -> usize {
    n.div_ceil(2)
}

pub(super) fn conv2d_s2(cpu: &Cpu, x: &Tensor, w: &Conv2dWeight, images: usize, f: usize, t: usize) -> Tensor {
    let cin = w.cin;
    assert_eq!((x.rows(), x.cols()), (images * f * t, cin), "conv2d: input does not hold {images} images");
    let (fo, to) = (conv_out_len(f), conv_out_len(t));
    let pixels = fo * to;
    let width = 9 * cin;
    // Images per im2col block, so that long inputs do not need one huge scratch matrix.
    let per_block = (IM2COL_BUDGET / (pixels * width).max(1)).clamp(1, images.max(1));
    let cout = w.out_channels();
    let mut y = cpu.output(images * pixels, cout);
    for first in (0..images).step_by(per_block) {
        let n = per_block.min(images - first);
        let mut cols = cpu.output(n * pixels, width);
        cpu.for_rows(cols.host_mut(), width, |row, out| {
            let (img, p) = (first + row / pixels, row % pixels);
            let (of, ot) = (p / to, p % to);
            for kf in 0..3 {
                let fi = (2 * of + kf) as isize - 1;
                for kt in 0..3 {
                    let ti = (2 * ot + kt) as isize - 1;
                    let dst = &mut out[(kf * 3 + kt) * cin..(kf * 3 + kt + 1) * cin];
                    if fi < 0 || ti < 0 || fi as usize >= f || ti as usize >= t {
                        dst.iter_mut().for_each(|v| *v = 0.0);
                    } else {
                        let src = (img * f + fi as usize) * t + ti as usize;
                        dst.copy_from_slice(x.row(src));
                    }
                }
            }
        });
        let block = cpu.linear_one(&cols, &w.matrix, Some(w.bias.f32s()));
        if n == images {
            return block; // one block: no copy
        }
        y.host_mut()[first * pixels * cout..(first + n) * pixels * cout].copy_from_slice(block.host());
    }
    y
}

#[cfg(test)]
mod tests {
    use crate::backend::conv::{Conv1dWeight, ConvTranspose1dWeight};
    use crate::backend::cpu::test_values as values;
    use crate::backend::tensor::{Tensor, Weight};
    use crate::backend::{Backend, Cpu};

    /// Strided and dilated convolutions against the definition, from PyTorch's `[out, in, k]`
    /// layout: `y[t, o] = b[o] + Σ_i Σ_tap w[o, i, tap] · x[t·s + tap·d, i]`; with the weights in
    /// bf16 (`to_bf16`) the same over the inputs and weights rounded to bf16 — on the bf16 kernels
    /// (channels in 32s; AMX from 32 rows where the CPU has it) and on the portable fallback.
    #[test]
    fn strided_conv1d_is_the_definition() {
        let cpu = Cpu::new(2).unwrap();
        let bf = |v: f32| half::bf16::from_f32(v).to_f64();
        for (k, d, s, cin, cout, rows) in [
            (4, 1, 2, 3, 5, 17),
            (10, 1, 5, 4, 6, 40),
            (3, 2, 3, 2, 3, 20),
            (1, 1, 4, 3, 2, 9),
            (3, 2, 1, 64, 8, 12),
            (7, 3, 1, 64, 64, 80),
        ] {
            let w = values(cout * cin * k, 1);
            let b = values(cout, 2);
            // Values that bf16 rounds, so that a kernel skipping the inputs' rounding would show.
            let x: Vec<f32> = values(rows * cin, 3).iter().map(|v| v * 1.001 + 1e-4).collect();
            let conv = Conv1dWeight::strided(
                &Weight::from_f32(vec![cout, cin, k], w.clone()),
                &Weight::from_f32(vec![cout], b.clone()),
                d,
                s,
            )
            .unwrap();
            let exact_f32 = |v: f32| v as f64;
            for (conv, exact, tol) in
                [(conv.clone(), &exact_f32 as &dyn Fn(f32) -> f64, 1e-5), (conv.to_bf16(), &bf, 1e-4)]
            {
                let y = cpu.conv1d(&Tensor::from_vec(x.clone(), rows, cin), &conv);
                let t = (rows - (k - 1) * d - 1) / s + 1;
                assert_eq!((y.rows(), y.cols()), (t, cout));
                let y = y.to_host();
                for r in 0..t {
                    for o in 0..cout {
                        let mut want = b[o] as f64;
                        for i in 0..cin {
                            for tap in 0..k {
                                want += exact(w[(o * cin + i) * k + tap]) * exact(x[(r * s + tap * d) * cin + i]);
                            }
                        }
                        let got = y[r * cout + o] as f64;
                        assert!(
                            (got - want).abs() < tol,
                            "k={k} d={d} s={s} cin={cin}: y[{r}, {o}] = {got}, want {want}"
                        );
                    }
                }
            }
        }
    }

    /// A transposed convolution in bf16 is the f32 one over the inputs and weights rounded to
    /// bf16, on a kernel (channels in 32s) and on the fallback.
    #[test]
    fn bf16_transposed_conv_is_the_rounded_f32_one() {
        let cpu = Cpu::new(2).unwrap();
        let round = |v: &[f32]| v.iter().map(|&x| half::bf16::from_f32(x).to_f32()).collect::<Vec<_>>();
        for (cin, cout, k, r, rows) in [(64, 32, 4, 2, 40), (6, 4, 6, 3, 7)] {
            let w = values(cin * cout * k, 4);
            let x: Vec<f32> = values(rows * cin, 5).iter().map(|v| v * 1.001 + 1e-4).collect();
            let exact = ConvTranspose1dWeight::new(&Weight::from_f32(vec![cin, cout, k], round(&w)), r).unwrap();
            let want = cpu.conv_transpose1d(&Tensor::from_vec(round(&x), rows, cin), &exact).to_host();
            let conv = ConvTranspose1dWeight::new(&Weight::from_f32(vec![cin, cout, k], w), r).unwrap().to_bf16();
            let got = cpu.conv_transpose1d(&Tensor::from_vec(x, rows, cin), &conv).to_host();
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() < 1e-4, "cin={cin}: value {i}: {g} against {w}");
            }
        }
    }
}
