//! Direct convolution products: `y[r, o] = b[o] + Σ_tap Σ_i x[r·s + tap·d, i] · W[o, tap·in + i]`,
//! read straight from the input rows (no im2col copy) and from the `[out, k·in]` matrix the other
//! paths use (a plain product `x · Wᵀ` is the case k = 1).
//!
//! This file picks the kernel and splits the work; `avx2.rs` (AVX2/FMA, 3 rows × 4 channels of
//! 8 lanes) and `avx512.rs` (AVX-512F, 4 rows × 4 channels of 16 lanes) compute blocks of it. A
//! block keeps its sums in registers over the whole reduction, then adds each sum's lanes once.
//! The weights are read in their stored layout, so a few-row product (a streamed frame) reads each
//! weight row once per block of rows: few rows split the output channels across threads (each
//! thread streams its share of the weights once), many rows split the rows. A few parts per
//! thread, so that a thread slowed by other work on its core leaves the rest to the others.

use rayon::prelude::*;

use super::Cpu;
use crate::backend::tensor::Tensor;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

/// Output channels per register block, both kernels (the horizontal sums take them four at a
/// time).
const NR: usize = 4;
/// Parts of the work per thread.
const TASKS_PER_THREAD: usize = 4;
/// Output rows one task walks through for each block of channels: their input rows stay in
/// cache while the weights of the channels stream past.
const ROW_TILE: usize = 64;

/// The shape of one direct product: `rows` outputs of `cout` channels from input rows of `cin`
/// values, `kernel` taps `dilation` rows apart, output row r starting at input row `r·stride`.
#[derive(Clone, Copy, Debug)]
pub(super) struct ConvShape {
    pub rows: usize,
    pub cin: usize,
    pub cout: usize,
    pub kernel: usize,
    pub dilation: usize,
    pub stride: usize,
}

/// The kernels, each a register-blocked product over whole vectors of input channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// AVX2 and FMA, 8 lanes: input channels a multiple of 8.
    Avx2,
    /// AVX-512F, 16 lanes: input channels a multiple of 16.
    Avx512,
}

impl Kernel {
    /// Output rows per register block.
    fn rows(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => avx2::MR,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => avx512::MR,
            #[cfg(not(target_arch = "x86_64"))]
            _ => 1,
        }
    }

    /// Whether this CPU runs the kernel for inputs of `cin` channels.
    fn runs(self, cin: usize) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Kernel::Avx2 => cin > 0 && cin.is_multiple_of(8) && super::matmul::has_avx2(),
                Kernel::Avx512 => cin > 0 && cin.is_multiple_of(16) && has_avx512(),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = cin;
            false
        }
    }

    /// The kernel for inputs of `cin` channels: AVX-512 where the CPU has it and the channels
    /// fill its vectors (it measured faster on every shape of the codec), else AVX2.
    fn pick(cin: usize) -> Option<Kernel> {
        [Kernel::Avx512, Kernel::Avx2].into_iter().find(|k| k.runs(cin))
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| std::is_x86_feature_detected!("avx512f"))
}

/// Whether this CPU runs a direct kernel for inputs of `cin` channels (AVX2 and FMA or AVX-512F,
/// whole vectors); otherwise the convolutions take im2col and the SGEMM.
pub(super) fn available(cin: usize) -> bool {
    Kernel::pick(cin).is_some()
}

/// A raw output pointer shared by tasks that write disjoint blocks.
struct OutPtr(*mut f32);
// SAFETY: every task writes its own rectangle of the output only.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// `[rows, cout]` = the direct product of `x` (`[·, cin]` rows) and `w` (`[cout, kernel·cin]`),
/// plus `bias` when given. Only when `available(cin)`.
pub(super) fn conv_product(cpu: &Cpu, x: &Tensor, w: &[f32], bias: Option<&[f32]>, s: ConvShape) -> Tensor {
    let kernel = Kernel::pick(s.cin);
    let kernel = kernel.unwrap_or_else(|| panic!("direct conv: no kernel for {} input channels", s.cin));
    product_with(kernel, cpu, x, w, bias, s)
}

/// `conv_product` on the given kernel, which must run here for `s.cin`.
fn product_with(kernel: Kernel, cpu: &Cpu, x: &Tensor, w: &[f32], bias: Option<&[f32]>, s: ConvShape) -> Tensor {
    assert!(kernel.runs(s.cin), "direct conv: no {kernel:?} kernel for {} input channels", s.cin);
    assert_eq!(w.len(), s.cout * s.kernel * s.cin, "direct conv: weight size");
    if s.rows > 0 {
        let last = (s.rows - 1) * s.stride + (s.kernel - 1) * s.dilation;
        assert!(last < x.rows(), "direct conv: output row {} reads past the input", s.rows - 1);
    }
    if let Some(b) = bias {
        assert_eq!(b.len(), s.cout, "direct conv: a bias of {} for {} outputs", b.len(), s.cout);
    }
    let mut y = cpu.output(s.rows, s.cout);
    if s.rows == 0 || s.cout == 0 {
        return y;
    }
    let threads = cpu.threads();
    // Split whichever operand is larger, so that each thread reads its share of it once: the
    // weights (output channels, in whole register blocks) or the rows.
    let parts = if threads == 1 { 1 } else { TASKS_PER_THREAD * threads };
    let tasks: Vec<(usize, usize, usize, usize)> = if s.rows < s.cout {
        let per = s.cout.div_ceil(parts).next_multiple_of(NR);
        (0..s.cout).step_by(per).map(|o| (0, s.rows, o, (o + per).min(s.cout))).collect()
    } else {
        let per = s.rows.div_ceil(parts).next_multiple_of(kernel.rows());
        (0..s.rows).step_by(per).map(|r| (r, (r + per).min(s.rows), 0, s.cout)).collect()
    };
    let out = OutPtr(y.host_mut().as_mut_ptr());
    let run = |&(r0, r1, o0, o1): &(usize, usize, usize, usize)| {
        let out = &out;
        // SAFETY: the kernel's instructions are present and the channels fill its vectors
        // (`runs`, asserted above); the rows and channels are in range (checked above) and each
        // task writes its own rectangle of y.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            match kernel {
                Kernel::Avx2 => avx2::rect(x.host(), w, bias, s, out.0, r0..r1, o0..o1),
                Kernel::Avx512 => avx512::rect(x.host(), w, bias, s, out.0, r0..r1, o0..o1),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (out, r0, r1, o0, o1);
    };
    if tasks.len() == 1 || threads == 1 {
        tasks.iter().for_each(run);
    } else {
        cpu.pool.install(|| tasks.par_iter().for_each(run));
    }
    y
}

#[cfg(test)]
mod tests {
    use super::{ConvShape, Kernel, product_with};
    use crate::backend::Cpu;
    use crate::backend::tensor::Tensor;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    /// The kernels this CPU runs; AVX-512 wherever the CPU reports AVX-512F, so that the test
    /// cannot pass without it there.
    fn kernels() -> Vec<Kernel> {
        let kernels: Vec<Kernel> = [Kernel::Avx2, Kernel::Avx512].into_iter().filter(|k| k.runs(16)).collect();
        #[cfg(target_arch = "x86_64")]
        assert_eq!(kernels.contains(&Kernel::Avx512), std::is_x86_feature_detected!("avx512f"));
        if kernels.is_empty() {
            eprintln!("no AVX2: the direct kernels are not used on this CPU");
        }
        kernels
    }

    /// Each kernel: every block shape (row and channel tails), both ways of splitting the work,
    /// taps, dilation and stride against the definition in f64.
    #[test]
    fn direct_product_is_the_definition() {
        for (kern, threads) in kernels().into_iter().flat_map(|k| [(k, 1), (k, 2)]) {
            let cpu = Cpu::new(threads).unwrap();
            for (rows, cin, cout, kernel, dilation, stride) in [
                (1, 16, 4, 1, 1, 1),
                (3, 32, 9, 3, 1, 1),
                (7, 48, 5, 7, 3, 1),
                (13, 16, 40, 2, 1, 2),
                (70, 32, 6, 7, 9, 1),
                (9, 64, 1, 4, 2, 3),
                (6, 16, 8, 3, 2, 1),
            ] {
                let (w, bias) = (values(cout * kernel * cin, 1), values(cout, 2));
                let input = (rows - 1) * stride + (kernel - 1) * dilation + 1;
                let x = values(input * cin, 3);
                let shape = ConvShape { rows, cin, cout, kernel, dilation, stride };
                for with_bias in [false, true] {
                    let b = with_bias.then_some(bias.as_slice());
                    let y = product_with(kern, &cpu, &Tensor::from_vec(x.clone(), input, cin), &w, b, shape);
                    let y = y.to_host();
                    assert_eq!(y.len(), rows * cout);
                    for r in 0..rows {
                        for o in 0..cout {
                            let mut want = if with_bias { bias[o] as f64 } else { 0.0 };
                            for tap in 0..kernel {
                                for i in 0..cin {
                                    let xi = x[(r * stride + tap * dilation) * cin + i] as f64;
                                    want += xi * w[o * kernel * cin + tap * cin + i] as f64;
                                }
                            }
                            let got = y[r * cout + o] as f64;
                            assert!((got - want).abs() < 1e-4, "{kern:?} {shape:?}: y[{r}, {o}] = {got}, want {want}");
                        }
                    }
                }
            }
        }
    }

    /// Each kernel's GFLOP/s on the codec decoder's convolution shapes, one thread (not a test:
    /// `cargo test --release --lib direct_kernel_speed -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn direct_kernel_speed() {
        let cpu = Cpu::new(1).unwrap();
        // (rows, cin, cout, kernel): residual units k=7 and 1×1 per DAC block, a streamed frame
        // and an offline window; the transposed convolutions' products; ConvNeXt's pointwise.
        for (rows, cin, cout, kernel) in [
            (32, 768, 768, 7),
            (32, 768, 768, 1),
            (160, 384, 384, 7),
            (640, 192, 192, 7),
            (1920, 96, 96, 7),
            (1920, 96, 96, 1),
            (600, 768, 768, 7),
            (4, 1536, 16 * 768, 1),
            (32, 768, 10 * 384, 1),
            (4, 1024, 4096, 1),
            (4, 4096, 1024, 1),
            (4, 1024, 1536, 7),
        ] {
            let shape = ConvShape { rows, cin, cout, kernel, dilation: 1, stride: 1 };
            let input = rows + kernel - 1;
            let (x, w) = (Tensor::from_vec(values(input * cin, 3), input, cin), values(cout * kernel * cin, 1));
            let flops = 2.0 * (rows * cout * kernel * cin) as f64;
            let mut line = format!("{rows:5} × {cin:4} → {cout:5}, k {kernel}:");
            for k in kernels() {
                let reps = (2e9 / flops).clamp(3.0, 200.0) as usize;
                let mut best = f64::MAX;
                for _ in 0..3 {
                    let t = std::time::Instant::now();
                    for _ in 0..reps {
                        std::hint::black_box(product_with(k, &cpu, &x, &w, None, shape));
                    }
                    best = best.min(t.elapsed().as_secs_f64() / reps as f64);
                }
                line += &format!("  {k:?} {:6.1}", flops / best / 1e9);
            }
            eprintln!("{line}");
        }
    }
}
