//! Every op of the compute layer on the CUDA backend against the CPU backend (the numeric
//! reference), on random inputs over the shapes and weight precisions the models use. Runs on the
//! emulated device in CI (scripts/emulator-check.sh) and on a GPU through scripts/gpu-check.sh;
//! ignored in a plain `cargo test`, which has no driver.
//!
//! Tolerances, as the largest |cuda − cpu| / (|cpu| + 1): 1e-6 for copies and exact arithmetic
//! (gathers, sums in the same order), 2e-5 for element-wise math (the GPU's expf/erff/rsqrtf are
//! within 2 ulp; the CPU's erf and sine are polynomial approximations to ~1e-7), 1e-4 for products,
//! convolutions and attention (dot products summed in another order over up to ~2k terms).

#[path = "support/gpu.rs"]
mod gpu;

use gpu::values;
use half::{bf16, f16};
use voxkit::backend::{
    AttnSeq, AttnShape, Compute, Conv1dWeight, Conv2dWeight, ConvTranspose1dWeight, Cuda, DepthwiseConv1dWeight, Kv,
    Mask, Pick, Rng, SamplingParams, Tensor, Weight, WeightData,
};

const EXACT: f64 = 1e-6;
const MATH: f64 = 2e-5;
const PRODUCT: f64 = 1e-4;

struct Pair {
    cpu: Compute,
    gpu: Compute,
}

fn pair() -> Pair {
    Pair { cpu: Compute::cpu(2).unwrap(), gpu: Cuda::new(0).expect("a CUDA device").into() }
}

impl Pair {
    /// The same host values on both backends.
    fn both(&self, data: &[f32], rows: usize, cols: usize) -> (Tensor, Tensor) {
        (self.cpu.upload(data, rows, cols), self.gpu.upload(data, rows, cols))
    }
}

#[track_caller]
fn close(what: &str, gpu: &Tensor, cpu: &Tensor, tol: f64) {
    assert_eq!((gpu.rows(), gpu.cols()), (cpu.rows(), cpu.cols()), "{what}: shapes differ");
    let (g, c) = (gpu.to_host(), cpu.to_host());
    let err = g.iter().zip(&c).map(|(a, b)| (*a as f64 - *b as f64).abs() / (b.abs() as f64 + 1.0)).fold(0.0, f64::max);
    assert!(g.iter().all(|v| v.is_finite()), "{what}: a value is not finite");
    assert!(err <= tol, "{what}: the CUDA result is {err:.2e} from the CPU's (tolerance {tol:.0e})");
}

fn weight(shape: &[usize], dtype: &str, seed: u64) -> Weight {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = values(n, seed).iter().map(|x| x * 0.3).collect();
    let data = match dtype {
        "f32" => WeightData::F32(v.into()),
        "bf16" => WeightData::BF16(v.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>().into()),
        "f16" => WeightData::F16(v.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>().into()),
        _ => unreachable!(),
    };
    Weight::new(shape.to_vec(), data).unwrap()
}

fn vector(n: usize, seed: u64) -> Weight {
    Weight::from_f32(vec![n], values(n, seed))
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn data_movement_matches_the_cpu() {
    let p = pair();
    let x = values(7 * 12, 1);
    let (xc, xg) = p.both(&x, 7, 12);
    assert_eq!(xg.to_host(), x, "upload and read back");
    close("zeros", &p.gpu.zeros(3, 5), &p.cpu.zeros(3, 5), 0.0);
    let (yc, yg) = p.both(&values(2 * 12, 2), 2, 12);
    close("concat_rows", &p.gpu.concat_rows(&[&xg, &yg, &xg]), &p.cpu.concat_rows(&[&xc, &yc, &xc]), 0.0);
    let rows = [Some(3), None, Some(0), Some(6), Some(3)];
    close("gather_rows", &p.gpu.gather_rows(&xg, &rows), &p.cpu.gather_rows(&xc, &rows), 0.0);
    close("gather_rows (none)", &p.gpu.gather_rows(&xg, &[]), &p.cpu.gather_rows(&xc, &[]), 0.0);
    close("slice_rows", &p.gpu.slice_rows(&xg, 2, 4), &p.cpu.slice_rows(&xc, 2, 4), 0.0);
    close("clone", &xg.clone(), &xc, 0.0);
    // Repeated rows: set keeps the last, add adds each.
    let at = [5, 1, 5, 0];
    let (sc, sg) = p.both(&values(4 * 12, 3), 4, 12);
    let (mut dc, mut dg) = (xc.clone(), xg.clone());
    p.cpu.set_rows(&mut dc, &at, &sc);
    p.gpu.set_rows(&mut dg, &at, &sg);
    close("set_rows", &dg, &dc, 0.0);
    p.cpu.add_rows(&mut dc, &at, &sc);
    p.gpu.add_rows(&mut dg, &at, &sg);
    close("add_rows", &dg, &dc, EXACT);
    let (pc, pg) = p.both(&values(2 * 3 * 4 * 5, 4), 24, 5);
    for order in [[0, 2, 1, 3], [1, 0, 2, 3], [0, 1, 3, 2], [3, 2, 1, 0]] {
        let dims = [2, 3, 4, 5];
        close(&format!("permute {order:?}"), &p.gpu.permute(&pg, dims, order), &p.cpu.permute(&pc, dims, order), 0.0);
    }
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn products_match_the_cpu_in_every_precision() {
    let p = pair();
    for dtype in ["f32", "bf16", "f16"] {
        for (rows, cin, out) in [
            (1, 64, 48),
            (3, 33, 17),
            (1, 96, 40),
            (8, 130, 40),
            (2, 129, 33),
            (5, 264, 70),
            (9, 64, 48),
            (37, 50, 70),
            (130, 100, 150),
        ] {
            let w = weight(&[out, cin], dtype, 10 + rows as u64);
            let b = vector(out, 11);
            let (xc, xg) = p.both(&values(rows * cin, 12), rows, cin);
            let what = format!("linear {dtype} [{rows}, {cin}] → {out}");
            close(&what, &p.gpu.linear(&xg, &w, Some(&b)), &p.cpu.linear(&xc, &w, Some(&b)), PRODUCT);
            close(&what, &p.gpu.linear(&xg, &w, None), &p.cpu.linear(&xc, &w, None), PRODUCT);
        }
        // Fused (decode rows, wide inputs, up to three layers) and not (short rows, many rows).
        for (rows, cin) in [(2, 64), (3, 96), (1, 130), (2, 131), (4, 136), (12, 96)] {
            let (wq, wk, wv) =
                (weight(&[24, cin], dtype, 13), weight(&[8, cin], dtype, 14), weight(&[8, cin], dtype, 17));
            let (bq, bv) = (vector(24, 18), vector(8, 19));
            let layers = [(&wq, Some(&bq)), (&wk, None), (&wv, Some(&bv))];
            let (xc, xg) = p.both(&values(rows * cin, 15), rows, cin);
            for n in [2, 3] {
                let (gc, gg) = (p.cpu.linear_many(&xc, &layers[..n]), p.gpu.linear_many(&xg, &layers[..n]));
                for (i, (g, c)) in gg.iter().zip(&gc).enumerate() {
                    close(&format!("linear_many {dtype} [{rows}, {cin}] layer {i} of {n}"), g, c, PRODUCT);
                }
            }
        }
        // The residual add fused into a projection, over every product path (short rows, GEMV, GEMM).
        for (rows, cin, out) in [(2, 40, 24), (3, 136, 24), (20, 96, 40)] {
            let w = weight(&[out, cin], dtype, 21);
            let (ac, ag) = p.both(&values(rows * cin, 22), rows, cin);
            let (mut xc, mut xg) = p.both(&values(rows * out, 23), rows, out);
            p.cpu.linear_add(&mut xc, &ac, &w);
            p.gpu.linear_add(&mut xg, &ag, &w);
            close(&format!("linear_add {dtype} [{rows}, {cin}] → {out}"), &xg, &xc, PRODUCT);
        }
        let table = weight(&[50, 24], dtype, 16);
        let ids = [3u32, 49, 0, 3, 17, 22];
        close("embedding", &p.gpu.embedding(&table, &ids).unwrap(), &p.cpu.embedding(&table, &ids).unwrap(), 0.0);
        close(
            "embedding_sum",
            &p.gpu.embedding_sum(&table, &ids, 3).unwrap(),
            &p.cpu.embedding_sum(&table, &ids, 3).unwrap(),
            EXACT,
        );
        assert!(p.gpu.embedding(&table, &[50]).is_err(), "an id outside the table is an error");
    }
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn normalisation_and_element_wise_ops_match_the_cpu() {
    let p = pair();
    let (rows, cols) = (5, 96);
    let x = values(rows * cols, 20);
    let (xc, xg) = p.both(&x, rows, cols);
    let (w, b) = (vector(cols, 21), vector(cols, 22));
    close("rms_norm", &p.gpu.rms_norm(&xg, &w, 1e-6), &p.cpu.rms_norm(&xc, &w, 1e-6), MATH);
    close("layer_norm", &p.gpu.layer_norm(&xg, &w, &b, 1e-5), &p.cpu.layer_norm(&xc, &w, &b, 1e-5), MATH);
    let hw = vector(32, 23);
    let (mut hc, mut hg) = (xc.clone(), xg.clone());
    p.cpu.rms_norm_heads(&mut hc, &hw, 1e-6);
    p.gpu.rms_norm_heads(&mut hg, &hw, 1e-6);
    close("rms_norm_heads", &hg, &hc, MATH);

    // RoPE at positions up to the engine's hard limit, two tensors at once.
    let inv_freq: Vec<f32> = (0..16).map(|j| 1.0 / 1e6f32.powf(2.0 * j as f32 / 32.0)).collect();
    let positions = [0, 1, 17, 4000, 8191];
    let (mut ac, mut ag) = p.both(&values(5 * 96, 24), 5, 96);
    let (mut bc, mut bg) = p.both(&values(5 * 32, 25), 5, 32);
    p.cpu.rope(&mut [&mut ac, &mut bc], 32, &positions, &inv_freq);
    p.gpu.rope(&mut [&mut ag, &mut bg], 32, &positions, &inv_freq);
    close("rope q", &ag, &ac, MATH);
    close("rope k", &bg, &bc, MATH);

    // Per-head q/k norms and RoPE in one op (grouped-query: k has fewer heads than q).
    let (qn, kn) = (vector(32, 30), vector(32, 31));
    let (mut qc, mut qg) = p.both(&values(5 * 128, 32), 5, 128);
    let (mut kc, mut kg) = p.both(&values(5 * 64, 33), 5, 64);
    p.cpu.qk_norm_rope(&mut qc, &mut kc, (&qn, &kn), 1e-6, 32, &positions, &inv_freq);
    p.gpu.qk_norm_rope(&mut qg, &mut kg, (&qn, &kn), 1e-6, 32, &positions, &inv_freq);
    close("qk_norm_rope q", &qg, &qc, MATH);
    close("qk_norm_rope k", &kg, &kc, MATH);

    type InPlace = fn(&Compute, &mut Tensor);
    let unary: [(&str, InPlace); 3] =
        [("silu", |c, x| c.silu(x)), ("gelu_erf", |c, x| c.gelu_erf(x)), ("clamp", |c, x| c.clamp(x, -0.5, 0.7))];
    for (name, f) in unary {
        let (mut c, mut g) = (xc.clone(), xg.clone());
        f(&p.cpu, &mut c);
        f(&p.gpu, &mut g);
        close(name, &g, &c, MATH);
    }
    let (yc, yg) = p.both(&values(rows * cols, 26), rows, cols);
    let (mut c, mut g) = (xc.clone(), xg.clone());
    p.cpu.silu_mul(&mut c, &yc);
    p.gpu.silu_mul(&mut g, &yg);
    close("silu_mul", &g, &c, MATH);
    p.cpu.add(&mut c, &yc);
    p.gpu.add(&mut g, &yg);
    close("add", &g, &c, MATH);
    p.cpu.add_scaled(&mut c, &yc, &w);
    p.gpu.add_scaled(&mut g, &yg, &w);
    close("add_scaled", &g, &c, MATH);
    p.cpu.add_bias(&mut c, &b);
    p.gpu.add_bias(&mut g, &b);
    close("add_bias", &g, &c, MATH);
    // SnakeBeta over large arguments too (the codec's activations reach tens).
    let big: Vec<f32> = values(rows * cols, 27).iter().map(|v| v * 20.0).collect();
    let (mut c, mut g) = p.both(&big, rows, cols);
    let alpha = Weight::from_f32(vec![cols], values(cols, 28).iter().map(|v| v.abs() + 0.2).collect());
    let inv_beta = Weight::from_f32(vec![cols], values(cols, 29).iter().map(|v| 1.0 / (v.abs() + 0.2)).collect());
    p.cpu.snake_beta(&mut c, &alpha, &inv_beta);
    p.gpu.snake_beta(&mut g, &alpha, &inv_beta);
    close("snake_beta", &g, &c, MATH);
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn convolutions_match_the_cpu() {
    let p = pair();
    for (k, d) in [(1, 1), (3, 2), (7, 1)] {
        let w = Conv1dWeight::new(&weight(&[12, 8, k], "f32", 30), &vector(12, 31), d).unwrap();
        let rows = 20 + w.context();
        let (xc, xg) = p.both(&values(rows * 8, 32), rows, 8);
        close(&format!("conv1d k={k} d={d}"), &p.gpu.conv1d(&xg, &w), &p.cpu.conv1d(&xc, &w), PRODUCT);
    }
    for (stride, k) in [(2, 4), (3, 3), (5, 10)] {
        let w = ConvTranspose1dWeight::new(&weight(&[8, 6, k], "f32", 33), stride).unwrap();
        let (xc, xg) = p.both(&values(11 * 8, 34), 11, 8);
        let what = format!("conv_transpose1d r={stride} k={k}");
        close(&what, &p.gpu.conv_transpose1d(&xg, &w), &p.cpu.conv_transpose1d(&xc, &w), PRODUCT);
    }
    let w = DepthwiseConv1dWeight::new(&weight(&[16, 1, 7], "f32", 35), &vector(16, 36)).unwrap();
    let (xc, xg) = p.both(&values(30 * 16, 37), 30, 16);
    close("depthwise_conv1d", &p.gpu.depthwise_conv1d(&xg, &w), &p.cpu.depthwise_conv1d(&xc, &w), PRODUCT);
    // The ASR stem: 3×3 stride 2 over images of odd and even sizes.
    for (cin, images, f, t) in [(1, 3, 16, 9), (4, 2, 7, 6)] {
        let w = Conv2dWeight::new(&weight(&[5, cin, 3, 3], "f32", 38), &vector(5, 39)).unwrap();
        let (xc, xg) = p.both(&values(images * f * t * cin, 40), images * f * t, cin);
        let what = format!("conv2d_s2 {cin} × {images} × {f} × {t}");
        close(&what, &p.gpu.conv2d_s2(&xg, &w, images, f, t), &p.cpu.conv2d_s2(&xc, &w, images, f, t), PRODUCT);
    }
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn strided_convolutions_match_the_cpu() {
    let p = pair();
    // The SEANet encoder's downsampling convs (kernel 2·stride), over inputs that give one output
    // row, a whole number of strides, and a remainder the convolution leaves out.
    for stride in [2, 4, 5, 6, 8] {
        let k = 2 * stride;
        let (cin, cout) = (24, 40);
        let w =
            Conv1dWeight::strided(&weight(&[cout, cin, k], "f32", 300 + stride as u64), &vector(cout, 301), 1, stride)
                .unwrap();
        for rows in [k, k + 7 * stride, k + 9 * stride + stride - 1, 200] {
            let (xc, xg) = p.both(&values(rows * cin, 302 + rows as u64), rows, cin);
            let (yc, yg) = (p.cpu.conv1d(&xc, &w), p.gpu.conv1d(&xg, &w));
            assert_eq!(yc.rows(), (rows - k) / stride + 1, "conv1d s={stride} k={k} over {rows} rows");
            assert_eq!(yc.rows(), w.out_rows(rows));
            close(&format!("conv1d s={stride} k={k} over {rows} rows"), &yg, &yc, PRODUCT);
        }
    }
    // Dilated and pointwise convs with a stride, wider channels, odd sizes.
    for (k, d, s, cin, cout, rows) in
        [(3, 2, 2, 33, 17, 41), (1, 1, 3, 40, 24, 22), (7, 3, 4, 16, 64, 60), (4, 1, 2, 128, 96, 9)]
    {
        let w =
            Conv1dWeight::strided(&weight(&[cout, cin, k], "f32", 310 + k as u64), &vector(cout, 311), d, s).unwrap();
        let (xc, xg) = p.both(&values(rows * cin, 312), rows, cin);
        let (yc, yg) = (p.cpu.conv1d(&xc, &w), p.gpu.conv1d(&xg, &w));
        assert_eq!(yc.rows(), (rows - (k - 1) * d - 1) / s + 1);
        close(&format!("conv1d k={k} d={d} s={s} {cin} → {cout} over {rows} rows"), &yg, &yc, PRODUCT);
    }
    // Stride 1 through `strided` is `new`, bit for bit on each backend (dilated, and pointwise).
    for (k, d) in [(3, 3), (1, 1), (5, 1)] {
        let (wt, b) = (weight(&[20, 12, k], "f32", 320), vector(20, 321));
        let (plain, one) = (Conv1dWeight::new(&wt, &b, d).unwrap(), Conv1dWeight::strided(&wt, &b, d, 1).unwrap());
        let rows = 50 + plain.context();
        let (xc, xg) = p.both(&values(rows * 12, 322), rows, 12);
        close(
            &format!("conv1d k={k} d={d}: stride 1 = new (CPU)"),
            &p.cpu.conv1d(&xc, &one),
            &p.cpu.conv1d(&xc, &plain),
            0.0,
        );
        close(
            &format!("conv1d k={k} d={d}: stride 1 = new (CUDA)"),
            &p.gpu.conv1d(&xg, &one),
            &p.gpu.conv1d(&xg, &plain),
            0.0,
        );
        close(&format!("conv1d k={k} d={d} s=1"), &p.gpu.conv1d(&xg, &one), &p.cpu.conv1d(&xc, &one), PRODUCT);
    }
    // No bias (Mimi's downsampling conv, `bias=False`): a zero bias.
    let zero = Weight::from_f32(vec![32], vec![0.0; 32]);
    let w = Conv1dWeight::strided(&weight(&[32, 16, 4], "f32", 330), &zero, 1, 2).unwrap();
    let (xc, xg) = p.both(&values(31 * 16, 331), 31, 16);
    close("conv1d without a bias, s=2", &p.gpu.conv1d(&xg, &w), &p.cpu.conv1d(&xc, &w), PRODUCT);
    // Only the context: no rows, as for stride 1.
    let w = Conv1dWeight::strided(&weight(&[8, 4, 4], "f32", 332), &vector(8, 333), 1, 2).unwrap();
    let (_, xg) = p.both(&values(3 * 4, 334), 3, 4);
    let y = p.gpu.conv1d(&xg, &w);
    assert_eq!((y.rows(), y.cols()), (0, 8), "strided conv1d of only context");
    assert!(Conv1dWeight::strided(&weight(&[8, 4, 4], "f32", 332), &vector(8, 333), 1, 0).is_err(), "stride 0");
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn activations_match_the_cpu() {
    let p = pair();
    type InPlace = fn(&Compute, &mut Tensor);
    let ops: [(&str, InPlace); 3] =
        [("sigmoid", |c, x| c.sigmoid(x)), ("tanh", |c, x| c.tanh(x)), ("elu", |c, x| c.elu(x))];
    for (rows, cols) in [(1, 1536), (200, 1536), (37, 13), (3, 1)] {
        // Up to ±12, so that sigmoid and tanh saturate; a few values near 0 (ELU's expm1 side) and
        // far out.
        let mut x: Vec<f32> = values(rows * cols, 340 + rows as u64).iter().map(|v| v * 6.0).collect();
        for (i, v) in [1e-7f32, -1e-7, -3e-4, 0.0, -0.0, -100.0, 100.0, -20.0].into_iter().enumerate() {
            if i < x.len() {
                x[i] = v;
            }
        }
        let (xc, xg) = p.both(&x, rows, cols);
        for (name, f) in ops {
            let (mut c, mut g) = (xc.clone(), xg.clone());
            f(&p.cpu, &mut c);
            f(&p.gpu, &mut g);
            close(&format!("{name} [{rows}, {cols}]"), &g, &c, MATH);
        }
    }
    // The CPU reference against f64 math.
    let x = [-3.0f32, -1e-6, 0.0, 2e-7, 0.5, 4.0];
    let mut t = p.cpu.upload(&x, 1, 6);
    p.cpu.elu(&mut t);
    for (v, y) in x.iter().zip(t.to_host()) {
        let want = if *v > 0.0 { *v as f64 } else { (*v as f64).exp_m1() };
        assert!((y as f64 - want).abs() <= 1e-7 * want.abs().max(1e-30) + 1e-12, "elu({v}) = {y}, want {want}");
    }
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn column_ops_match_the_cpu() {
    let p = pair();
    for (rows, cols) in [(1, 1536), (200, 1536), (37, 13)] {
        let (xc, xg) = p.both(&values(rows * cols, 350 + rows as u64), rows, cols);
        for (start, n) in [(0, cols), (3, 5), (cols - 1, 1), (cols / 2, cols - cols / 2), (cols / 3, 0)] {
            let what = format!("slice_cols {start}+{n} of [{rows}, {cols}]");
            close(&what, &p.gpu.slice_cols(&xg, start, n), &p.cpu.slice_cols(&xc, start, n), 0.0);
        }
        let (yc, yg) = p.both(&values(rows * 7, 351), rows, 7);
        let (zc, zg) = p.both(&values(rows, 352), rows, 1);
        let (c, g) = (p.cpu.concat_cols(&[&xc, &yc, &zc, &xc]), p.gpu.concat_cols(&[&xg, &yg, &zg, &xg]));
        assert_eq!((c.rows(), c.cols()), (rows, 2 * cols + 8));
        close(&format!("concat_cols of [{rows}, {cols}]"), &g, &c, 0.0);
        // Halves sliced off and put back together are the tensor.
        let a = cols / 3;
        let back = p.gpu.concat_cols(&[&p.gpu.slice_cols(&xg, 0, a), &p.gpu.slice_cols(&xg, a, cols - a)]);
        close(&format!("slices of [{rows}, {cols}] concatenated"), &back, &xc, 0.0);
        // Squeeze-excitation's gate.
        let (vc, vg) = p.both(&values(cols, 353), 1, cols);
        let (mut c, mut g) = (xc.clone(), xg.clone());
        p.cpu.mul_row(&mut c, &vc);
        p.gpu.mul_row(&mut g, &vg);
        close(&format!("mul_row [{rows}, {cols}]"), &g, &c, MATH);
    }
    let (ec, eg) = p.both(&[], 0, 5);
    close("concat_cols of no rows", &p.gpu.concat_cols(&[&eg, &eg]), &p.cpu.concat_cols(&[&ec, &ec]), 0.0);
    close("concat_cols of nothing", &p.gpu.concat_cols(&[]), &p.cpu.concat_cols(&[]), 0.0);
    close("slice_cols of no rows", &p.gpu.slice_cols(&eg, 1, 3), &p.cpu.slice_cols(&ec, 1, 3), 0.0);
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn row_statistics_match_the_cpu() {
    let p = pair();
    for (rows, cols) in [(1, 1536), (200, 1536), (37, 13), (1, 7), (9, 40)] {
        let mut x: Vec<f32> = values(rows * cols, 360 + rows as u64).iter().map(|v| v * 3.0 + 0.5).collect();
        // A constant column: its variance is (about) 0, floored at WEIGHTED_STATS_EPS.
        for r in 0..rows {
            x[r * cols + 1] = 0.75;
        }
        let (xc, xg) = p.both(&x, rows, cols);
        close(&format!("mean_rows [{rows}, {cols}]"), &p.gpu.mean_rows(&xg), &p.cpu.mean_rows(&xc), PRODUCT);
        // Peaky attention logits (softmax over up to 200 rows of values up to ±16).
        let logits: Vec<f32> = values(rows * cols, 361).iter().map(|v| v * 8.0).collect();
        let (lc, lg) = p.both(&logits, rows, cols);
        let (zc, zg) = p.both(&vec![0.0; rows * cols], rows, cols);
        for (what, c, g) in [
            ("uniform", p.cpu.weighted_stats(&xc, None), p.gpu.weighted_stats(&xg, None)),
            ("attentive", p.cpu.weighted_stats(&xc, Some(&lc)), p.gpu.weighted_stats(&xg, Some(&lg))),
        ] {
            assert_eq!((c.rows(), c.cols()), (1, 2 * cols));
            close(&format!("weighted_stats {what} [{rows}, {cols}]"), &g, &c, PRODUCT);
        }
        // Zero logits weigh the rows equally: the uniform statistics, bit for bit.
        close(
            "weighted_stats, zero logits (CPU)",
            &p.cpu.weighted_stats(&xc, Some(&zc)),
            &p.cpu.weighted_stats(&xc, None),
            0.0,
        );
        close(
            "weighted_stats, zero logits (CUDA)",
            &p.gpu.weighted_stats(&xg, Some(&zg)),
            &p.gpu.weighted_stats(&xg, None),
            0.0,
        );
        // The CPU reference against speechbrain's formula in f64 (softmax first, then the sums).
        let stats = p.cpu.weighted_stats(&xc, Some(&lc)).to_host();
        let mean = p.cpu.mean_rows(&xc).to_host();
        for c in 0..cols {
            let col = |v: &[f32]| (0..rows).map(|r| v[r * cols + c] as f64).collect::<Vec<f64>>();
            let (xs, ls) = (col(&x), col(&logits));
            let m = ls.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = ls.iter().map(|l| (l - m).exp()).collect();
            let w: Vec<f64> = e.iter().map(|v| v / e.iter().sum::<f64>()).collect();
            let mu: f64 = w.iter().zip(&xs).map(|(w, x)| w * x).sum();
            let var: f64 = w.iter().zip(&xs).map(|(w, x)| w * (x - mu) * (x - mu)).sum();
            let sd = var.max(voxkit::backend::WEIGHTED_STATS_EPS as f64).sqrt();
            let plain = xs.iter().sum::<f64>() / rows as f64;
            for (got, want, what) in
                [(stats[c], mu, "mean"), (stats[cols + c], sd, "std"), (mean[c], plain, "mean_rows")]
            {
                assert!(
                    (got as f64 - want).abs() <= 1e-5 * (want.abs() + 1.0),
                    "{what} of column {c}: {got}, want {want}"
                );
            }
        }
        let floor = (voxkit::backend::WEIGHTED_STATS_EPS as f64).sqrt() as f32;
        assert_eq!(stats[cols + 1], floor, "a constant column's std is the floor's square root");
    }
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn attention_matches_the_cpu_with_and_without_a_cache() {
    let p = pair();
    let shape = AttnShape { heads: 4, kv_heads: 2, head_dim: 16 };
    let (qw, kw) = (shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim);

    // Without a cache: two sequences' own rows, bidirectional (the ASR encoder's windows).
    let seqs = [AttnSeq { slot: 0, rows: 5, past: 0 }, AttnSeq { slot: 0, rows: 3, past: 0 }];
    let (qc, qg) = p.both(&values(8 * qw, 50), 8, qw);
    let (kc, kg) = p.both(&values(8 * kw, 51), 8, kw);
    let (vc, vg) = p.both(&values(8 * kw, 52), 8, kw);
    for mask in [Mask::Full, Mask::Causal] {
        let c = p.cpu.attention(&qc, Kv::Rows { k: &kc, v: &vc }, &seqs, shape, mask);
        let g = p.gpu.attention(&qg, Kv::Rows { k: &kg, v: &vg }, &seqs, shape, mask);
        close(&format!("attention over rows, {mask:?}"), &g, &c, PRODUCT);
    }

    // With a paged cache: prefill two slots (one across a block boundary), then a decode step of
    // both, then a sliding window that has given blocks back.
    let (mut cc, mut cg) = (p.cpu.kv_cache(2, kw, 3, 16).unwrap(), p.gpu.kv_cache(2, kw, 3, 16).unwrap());
    let step = |seqs: &[AttnSeq],
                seed: u64,
                mask: Mask,
                cc: &mut voxkit::backend::KvCache,
                cg: &mut voxkit::backend::KvCache| {
        let rows: usize = seqs.iter().map(|s| s.rows).sum();
        for s in seqs {
            cc.reserve(s.slot, s.rows).unwrap();
            cg.reserve(s.slot, s.rows).unwrap();
        }
        let (qc, qg) = p.both(&values(rows * qw, seed), rows, qw);
        for layer in 0..2 {
            let (kc, kg) = p.both(&values(rows * kw, seed + 1 + layer as u64), rows, kw);
            let (vc, vg) = p.both(&values(rows * kw, seed + 3 + layer as u64), rows, kw);
            p.cpu.kv_write(cc, layer, seqs, &kc, &vc);
            p.gpu.kv_write(cg, layer, seqs, &kg, &vg);
            let c = p.cpu.attention(&qc, Kv::Cache { cache: cc, layer }, seqs, shape, mask);
            let g = p.gpu.attention(&qg, Kv::Cache { cache: cg, layer }, seqs, shape, mask);
            close(&format!("attention over the cache, layer {layer}, {mask:?}, {seqs:?}"), &g, &c, PRODUCT);
        }
        for s in seqs {
            cc.advance(s.slot, s.rows);
            cg.advance(s.slot, s.rows);
        }
    };
    step(
        &[AttnSeq { slot: 2, rows: 21, past: 0 }, AttnSeq { slot: 0, rows: 4, past: 0 }],
        60,
        Mask::Causal,
        &mut cc,
        &mut cg,
    );
    step(
        &[AttnSeq { slot: 0, rows: 1, past: 4 }, AttnSeq { slot: 2, rows: 1, past: 21 }],
        70,
        Mask::Causal,
        &mut cc,
        &mut cg,
    );
    cc.forget_before(2, 17);
    cg.forget_before(2, 17);
    step(&[AttnSeq { slot: 2, rows: 2, past: 22 }], 80, Mask::CausalWindow(6), &mut cc, &mut cg);
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn selection_gives_the_cpus_tokens() {
    let p = pair();
    let mut logits = values(4 * 300, 90);
    logits[300 + 7] = 9.0; // a clear winner
    logits[2 * 300 + 5] = 9.0;
    logits[2 * 300 + 6] = 9.0; // a tie: the first wins
    let (lc, lg) = p.both(&logits, 4, 300);
    assert_eq!(p.gpu.argmax(&lg), p.cpu.argmax(&lc));

    // The sampling chain on the device: every knob, rows with different knobs in one call, the
    // talker's and the predictor's vocabulary sizes (3072 needs padding to 4096 for the sort) and
    // one wider than the kernel takes (the host path).
    let chains = [
        SamplingParams { do_sample: true, temperature: 0.9, top_k: 50, top_p: 0.95, repetition_penalty: 1.05 },
        SamplingParams { do_sample: true, temperature: 1.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0 },
        SamplingParams { do_sample: true, temperature: 0.7, top_k: 0, top_p: 0.8, repetition_penalty: 1.3 },
        SamplingParams { do_sample: false, temperature: 0.9, top_k: 50, top_p: 0.9, repetition_penalty: 1.1 },
        SamplingParams { do_sample: true, temperature: 1.3, top_k: 3, top_p: 1.0, repetition_penalty: 1.0 },
    ];
    let seen = [1u32, 7, 7, 250, 1, 2999];
    let suppress = [250u32..260, 290..300];
    for cols in [300, 2048, 3072, 5000] {
        // Scaled so that top-k/top-p cut at different places; a few ties.
        let mut v: Vec<f32> = values(chains.len() * cols, 91 + cols as u64).iter().map(|x| x * 3.0).collect();
        v[3] = v[4];
        let (lc, lg) = p.both(&v, chains.len(), cols);
        let draw = |c: &Compute, l: &Tensor| {
            let mut rngs: Vec<Rng> = (0..chains.len() as u64).map(|i| Rng::new(1234 + i)).collect();
            let mut picks: Vec<Pick<'_>> = rngs
                .iter_mut()
                .zip(&chains)
                .map(|(rng, params)| Pick { params, seen: &seen, suppress: &suppress, rng })
                .collect();
            (0..20).map(|_| c.sample(l, &mut picks)).collect::<Vec<_>>()
        };
        let (g, c) = (draw(&p.gpu, &lg), draw(&p.cpu, &lc));
        assert_eq!(g, c, "seeded draws over {cols} columns");
        let distinct: std::collections::HashSet<u32> = c.iter().map(|ids| ids[1]).collect();
        assert!(distinct.len() > 3, "the unfiltered chain draws different tokens: {distinct:?}");
    }
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn suppressed_ranges_near_the_top_of_u32_bar_only_themselves() {
    // A barred range that starts past the vocabulary (near u32::MAX) bars nothing on the CPU; on the
    // device `lo + threadIdx.x` must not wrap around to small ids.
    let p = pair();
    let mut logits = values(300, 100);
    logits[10] = 9.0;
    let (lc, lg) = p.both(&logits, 1, 300);
    let greedy = SamplingParams { do_sample: false, temperature: 1.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0 };
    let suppress = [u32::MAX - 100..u32::MAX, 5..5];
    let draw = |c: &Compute, l: &Tensor| {
        let mut rng = Rng::new(5);
        c.sample(l, &mut [Pick { params: &greedy, seen: &[], suppress: &suppress, rng: &mut rng }])
    };
    assert_eq!(draw(&p.cpu, &lc), vec![10]);
    assert_eq!(draw(&p.gpu, &lg), draw(&p.cpu, &lc), "a range past the vocabulary barred real ids");
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn top_p_orders_signed_zeros_as_the_cpu() {
    // The CPU sorts for top-p with total_cmp (−0.0 before +0.0, whatever their ids); the device's
    // sort must give the same order, or a different id falls out of the nucleus.
    let p = pair();
    let logits = [0.0f32, -0.0, 5.0, 5.0];
    let (lc, lg) = p.both(&logits, 1, 4);
    let params = SamplingParams { do_sample: true, temperature: 1.0, top_k: 0, top_p: 0.995, repetition_penalty: 1.0 };
    // A seed whose draw falls in the first kept id's share.
    let seed = (0..100_000u64).find(|&s| Rng::new(s).next_f64() < 0.002).expect("a small draw");
    let draw = |c: &Compute, l: &Tensor| {
        let mut rng = Rng::new(seed);
        c.sample(l, &mut [Pick { params: &params, seen: &[], suppress: &[], rng: &mut rng }])
    };
    assert_eq!(draw(&p.gpu, &lg), draw(&p.cpu, &lc), "seed {seed}");
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn sampling_at_the_widest_device_row() {
    // sample_f32's dynamic shared memory, (cols + 2·pow2) · 4 bytes, and its static shared memory
    // share the 48 KiB a launch gets: 3584 columns is the widest row it takes; wider ones (4096: 48
    // KiB of dynamic memory alone) must go to the host, not fail the launch.
    let p = pair();
    for cols in [3584, 3585, 4096] {
        let v: Vec<f32> = values(cols, 120).iter().map(|x| x * 3.0).collect();
        let (lc, lg) = p.both(&v, 1, cols);
        let params =
            SamplingParams { do_sample: true, temperature: 0.9, top_k: 50, top_p: 0.95, repetition_penalty: 1.0 };
        let draw = |c: &Compute, l: &Tensor| {
            let mut rng = Rng::new(3);
            (0..5)
                .map(|_| c.sample(l, &mut [Pick { params: &params, seen: &[], suppress: &[], rng: &mut rng }]))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(&p.gpu, &lg), draw(&p.cpu, &lc), "{cols} columns");
    }
}

/// Ids left on the device (`sample_ids`) feed `embedding_ids` in place and are read back together
/// (`read_ids`, device and host ids mixed): the CPU's ids and embeddings; a table smaller than the
/// ids' bound is an error, not a read past it.
#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn ids_chosen_on_the_device_feed_embeddings_in_place() {
    let p = pair();
    let (rows, cols) = (3, 40);
    let (lc, lg) = p.both(&values(rows * cols, 130), rows, cols);
    let params = SamplingParams { do_sample: true, temperature: 0.8, top_k: 10, top_p: 0.9, repetition_penalty: 1.0 };
    let table = weight(&[cols, 16], "bf16", 131);
    let run = |c: &Compute, l: &Tensor| {
        let mut rngs: Vec<Rng> = (0..rows as u64).map(Rng::new).collect();
        let mut picks: Vec<Pick<'_>> =
            rngs.iter_mut().map(|rng| Pick { params: &params, seen: &[], suppress: &[], rng }).collect();
        let ids = c.sample_ids(l, &mut picks);
        assert_eq!((ids.len(), ids.bound()), (rows, cols));
        let e = c.embedding_ids(&table, &ids).unwrap();
        let small = weight(&[cols - 1, 16], "f32", 132);
        assert!(c.embedding_ids(&small, &ids).is_err() || ids.host().is_some_and(|v| v.iter().all(|&i| i < 39)));
        let host = voxkit::backend::Ids::from_host(vec![7, 1], cols);
        (c.read_ids(&[&ids, &host, &ids]), e)
    };
    let ((ic, ec), (ig, eg)) = (run(&p.cpu, &lc), run(&p.gpu, &lg));
    assert_eq!(ig, ic);
    assert_eq!(ig[1], vec![7, 1]);
    close("embedding of sampled ids", &eg, &ec, EXACT);
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn a_window_wider_than_i32_sees_every_earlier_key() {
    let p = pair();
    let shape = AttnShape { heads: 2, kv_heads: 1, head_dim: 8 };
    let seqs = [AttnSeq { slot: 0, rows: 5, past: 0 }];
    let (qc, qg) = p.both(&values(5 * 16, 110), 5, 16);
    let (kc, kg) = p.both(&values(5 * 8, 111), 5, 8);
    let (vc, vg) = p.both(&values(5 * 8, 112), 5, 8);
    for w in [1usize << 32, (1usize << 31) + 3] {
        let mask = Mask::CausalWindow(w);
        let c = p.cpu.attention(&qc, Kv::Rows { k: &kc, v: &vc }, &seqs, shape, mask);
        let g = p.gpu.attention(&qg, Kv::Rows { k: &kg, v: &vg }, &seqs, shape, mask);
        close(&format!("attention, {mask:?}"), &g, &c, PRODUCT);
    }
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn empty_tensors_match_the_cpu() {
    let p = pair();
    let (ec, eg) = p.both(&[], 0, 8);
    let w = weight(&[6, 8], "bf16", 130);
    let b = vector(6, 131);
    let n = vector(8, 132);
    let y = p.gpu.linear(&eg, &w, Some(&b));
    assert_eq!((y.rows(), y.cols()), (0, 6), "linear of no rows");
    close("rms_norm of no rows", &p.gpu.rms_norm(&eg, &n, 1e-6), &p.cpu.rms_norm(&ec, &n, 1e-6), 0.0);
    close("layer_norm of no rows", &p.gpu.layer_norm(&eg, &n, &n, 1e-6), &p.cpu.layer_norm(&ec, &n, &n, 1e-6), 0.0);
    close("concat of nothing", &p.gpu.concat_rows(&[&eg, &eg]), &p.cpu.concat_rows(&[&ec, &ec]), 0.0);
    close("gather none", &p.gpu.gather_rows(&eg, &[None, None]), &p.cpu.gather_rows(&ec, &[None, None]), 0.0);
    close("slice", &p.gpu.slice_rows(&eg, 0, 0), &p.cpu.slice_rows(&ec, 0, 0), 0.0);
    let (mut dc, mut dg) = (ec.clone(), eg.clone());
    p.cpu.set_rows(&mut dc, &[], &ec);
    p.gpu.set_rows(&mut dg, &[], &eg);
    p.cpu.rope(&mut [&mut dc], 8, &[], &[1.0, 0.5, 0.25, 0.125]);
    p.gpu.rope(&mut [&mut dg], 8, &[], &[1.0, 0.5, 0.25, 0.125]);
    p.cpu.rms_norm_heads(&mut dc, &vector(4, 133), 1e-6);
    p.gpu.rms_norm_heads(&mut dg, &vector(4, 133), 1e-6);
    p.gpu.silu(&mut dg);
    p.gpu.add_bias(&mut dg, &n);
    p.gpu.sigmoid(&mut dg);
    p.gpu.tanh(&mut dg);
    p.gpu.elu(&mut dg);
    p.gpu.mul_row(&mut dg, &p.gpu.zeros(1, 8));
    close("in place ops on no rows", &dg, &dc, 0.0);
    close("embedding of no ids", &p.gpu.embedding(&w, &[]).unwrap(), &p.cpu.embedding(&w, &[]).unwrap(), 0.0);
    close(
        "permute of nothing",
        &p.gpu.permute(&eg, [0, 2, 1, 4], [0, 2, 1, 3]),
        &p.cpu.permute(&ec, [0, 2, 1, 4], [0, 2, 1, 3]),
        0.0,
    );
    assert_eq!(p.gpu.argmax(&eg), p.cpu.argmax(&ec));
    let (zc, zg) = p.both(&[], 3, 0);
    assert_eq!(p.gpu.argmax(&zg), p.cpu.argmax(&zc), "argmax of rows of no columns");
    let shape = AttnShape { heads: 2, kv_heads: 1, head_dim: 4 };
    let (qc, qg) = p.both(&[], 0, 8);
    let (kc, kg) = p.both(&[], 0, 4);
    let c = p.cpu.attention(&qc, Kv::Rows { k: &kc, v: &kc }, &[], shape, Mask::Causal);
    let g = p.gpu.attention(&qg, Kv::Rows { k: &kg, v: &kg }, &[], shape, Mask::Causal);
    close("attention of no rows", &g, &c, 0.0);
    let wt = ConvTranspose1dWeight::new(&weight(&[8, 6, 4], "f32", 134), 2).unwrap();
    // (The CPU reference panics on a product of no rows: compared with the expected zeros instead.)
    let y = p.gpu.conv_transpose1d(&eg, &wt);
    assert_eq!((y.rows(), y.cols(), y.to_host()), (2, 6, vec![0.0; 12]), "conv_transpose1d of no rows");
    let wc = Conv1dWeight::new(&weight(&[12, 8, 3], "f32", 135), &vector(12, 136), 1).unwrap();
    let (xc, xg) = p.both(&values(2 * 8, 137), 2, 8);
    let _ = xc;
    let y = p.gpu.conv1d(&xg, &wc);
    assert_eq!((y.rows(), y.cols()), (0, 12), "conv1d of only context");
    let w2 = Conv2dWeight::new(&weight(&[5, 8, 3, 3], "f32", 138), &vector(5, 139)).unwrap();
    let y = p.gpu.conv2d_s2(&eg, &w2, 0, 4, 4);
    assert_eq!((y.rows(), y.cols()), (0, 5), "conv2d of no images");
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
#[should_panic(expected = "is not reserved")]
fn kv_write_refuses_positions_a_window_gave_back() {
    // kv_write's kernel indexes the block table without bounds: every written position, the first
    // as well as the last, must be in a block the slot still holds (the CPU panics on its index).
    let p = pair();
    let width = 8;
    let mut cache = p.gpu.kv_cache(1, width, 1, 64).unwrap();
    cache.reserve(0, 48).unwrap();
    cache.advance(0, 40);
    cache.forget_before(0, 32); // blocks 0 and 1 (positions 0..32) go back
    let (_, k) = p.both(&values(24 * width, 130), 24, width);
    let (_, v) = p.both(&values(24 * width, 131), 24, width);
    // Positions 16..40: the last is held, the first is in a block given back.
    p.gpu.kv_write(&mut cache, 0, &[AttnSeq { slot: 0, rows: 24, past: 16 }], &k, &v);
    let _ = k.to_host();
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn attention_over_a_long_context_matches_the_cpu() {
    // A decode step over ~700 cached keys: few (row, head) pairs, so the CUDA backend splits the keys
    // into parts and combines them; then the same under a sliding window that gave blocks back.
    let p = pair();
    let shape = AttnShape { heads: 4, kv_heads: 2, head_dim: 16 };
    let (qw, kw) = (shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim);
    let (mut cc, mut cg) = (p.cpu.kv_cache(1, kw, 2, 16).unwrap(), p.gpu.kv_cache(1, kw, 2, 16).unwrap());
    let past = 700;
    for c in [&mut cc, &mut cg] {
        c.reserve(1, past + 4).unwrap();
    }
    let seqs = [AttnSeq { slot: 1, rows: past, past: 0 }];
    let (kc, kg) = p.both(&values(past * kw, 140), past, kw);
    let (vc, vg) = p.both(&values(past * kw, 141), past, kw);
    p.cpu.kv_write(&mut cc, 0, &seqs, &kc, &vc);
    p.gpu.kv_write(&mut cg, 0, &seqs, &kg, &vg);
    cc.advance(1, past);
    cg.advance(1, past);
    for (step, mask) in [Mask::Causal, Mask::CausalWindow(600)].into_iter().enumerate() {
        if step == 1 {
            cc.forget_before(1, 100);
            cg.forget_before(1, 100);
        }
        let seqs = [AttnSeq { slot: 1, rows: 1, past: past + step }];
        let (qc, qg) = p.both(&values(qw, 142 + step as u64), 1, qw);
        let (kc, kg) = p.both(&values(kw, 150 + step as u64), 1, kw);
        let (vc, vg) = p.both(&values(kw, 160 + step as u64), 1, kw);
        p.cpu.kv_write(&mut cc, 0, &seqs, &kc, &vc);
        p.gpu.kv_write(&mut cg, 0, &seqs, &kg, &vg);
        let c = p.cpu.attention(&qc, Kv::Cache { cache: &cc, layer: 0 }, &seqs, shape, mask);
        let g = p.gpu.attention(&qg, Kv::Cache { cache: &cg, layer: 0 }, &seqs, shape, mask);
        close(&format!("attention over {} keys, {mask:?}", past + step + 1), &g, &c, PRODUCT);
        cc.advance(1, 1);
        cg.advance(1, 1);
    }
}
