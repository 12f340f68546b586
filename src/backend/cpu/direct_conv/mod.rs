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

use super::Cpu;
use crate::backend::tensor::Tensor;

#[cfg(target_arch = "x86_64")]
mod amx;
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

/// Products of at least this many rows, each summing at least `AMX_MIN_DEPTH` values, take the
/// AMX kernel; it loses to AVX-512 BF16 on fewer rows (its blocks are 32 rows, and a few-row
/// product is bound by reading the weights) and on shallow sums (its per-call input packing and
/// output transposition weigh more). Measured (`direct_kernel_speed`, one core) on the codec's
/// shapes, GFLOP/s AMX against AVX-512 BF16 / f32: many rows and k = 7, 477–522 against 97–105 /
/// 101–119; 1920 rows of 96 values (k = 1) 123 against 77 / 87; 4 rows 57–92 against 78–96.
const AMX_MIN_ROWS: usize = 32;
const AMX_MIN_DEPTH: usize = 64;

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
    /// AVX-512 BF16: bf16 weights and inputs (rounded to bf16 first), f32 sums, 32 input
    /// channels a step: input channels a multiple of 32.
    Avx512Bf16,
}

impl Kernel {
    /// Output rows per register block.
    fn rows(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => avx2::MR,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 | Kernel::Avx512Bf16 => avx512::MR,
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
                Kernel::Avx512Bf16 => cin > 0 && cin.is_multiple_of(32) && has_avx512_bf16(),
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

#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx512_bf16() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| has_avx512() && std::is_x86_feature_detected!("avx512bf16"))
}

/// Whether this CPU multiplies bf16 inputs and weights (`conv_product_bf16`) well above its f32
/// rate: with AMX. AVX-512 BF16 alone measured level with f32 on the codec's many-row shapes
/// (its dot-product instruction issues at half the rate of two f32 FMAs) and ≈ 1.5× on the
/// few-row, memory-bound ones.
pub(super) fn has_bf16_products() -> bool {
    #[cfg(target_arch = "x86_64")]
    return amx::available();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Whether a many-row matrix product (`rows` × `k` by `out` × `k`) runs on AMX here
/// (`conv_product_bf16` with one tap).
pub(super) fn bf16_gemm_runs(rows: usize, k: usize, out: usize) -> bool {
    takes_amx(&ConvShape { rows, cin: k, cout: out, kernel: 1, dilation: 1, stride: 1 })
}

/// Whether `conv_product_bf16` runs `s` on the AMX kernel: AMX here, a shape it takes, and
/// enough rows and depth for it to win (`AMX_MIN_ROWS`, `AMX_MIN_DEPTH`).
fn takes_amx(s: &ConvShape) -> bool {
    #[cfg(target_arch = "x86_64")]
    return amx::available() && amx::fits(s) && s.rows >= AMX_MIN_ROWS && s.kernel * s.cin >= AMX_MIN_DEPTH;
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = s;
        false
    }
}

/// Whether `conv_product_bf16` runs here for inputs of `cin` channels.
pub(super) fn bf16_available(cin: usize) -> bool {
    Kernel::Avx512Bf16.runs(cin)
}

/// The weights of a product, in the kernel's operand type.
#[derive(Clone, Copy)]
enum Weights<'a> {
    F32(&'a [f32]),
    /// bf16 bits.
    Bf16(&'a [u16]),
}

impl Weights<'_> {
    fn len(self) -> usize {
        match self {
            Weights::F32(w) => w.len(),
            Weights::Bf16(w) => w.len(),
        }
    }
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
    product_with(kernel, cpu, x, Weights::F32(w), bias, s)
}

/// `conv_product` with bf16 weights (`w`: their bits): the inputs are rounded to bf16 (to
/// nearest, ties to even), the products summed in f32. Only when `bf16_available(cin)`.
pub(super) fn conv_product_bf16(cpu: &Cpu, x: &Tensor, w: &[u16], bias: Option<&[f32]>, s: ConvShape) -> Tensor {
    #[cfg(target_arch = "x86_64")]
    if takes_amx(&s) {
        return product_amx(cpu, x, w, bias, s);
    }
    product_with(Kernel::Avx512Bf16, cpu, x, Weights::Bf16(w), bias, s)
}

/// `conv_product_bf16` on the AMX kernel (`amx::available()` and `amx::fits(&s)`).
#[cfg(target_arch = "x86_64")]
fn product_amx(cpu: &Cpu, x: &Tensor, w: &[u16], bias: Option<&[f32]>, s: ConvShape) -> Tensor {
    assert!(amx::available() && amx::fits(&s), "direct conv: no AMX kernel for {s:?}");
    check_shape(x, w.len(), bias, s);
    let mut y = cpu.output(s.rows, s.cout);
    if s.rows == 0 {
        return y;
    }
    let width = amx::pair_width(&s);
    let mut pairs = cpu.scratch.take_dirty(s.cin / 2 * width);
    // SAFETY: u32 and f32 have the same size and alignment and u32 is valid for every bit
    // pattern; the view borrows the buffer.
    let xp: &mut [u32] = unsafe { std::slice::from_raw_parts_mut(pairs.as_mut_ptr() as *mut u32, pairs.len()) };
    let used = ((s.rows - 1) + (s.kernel - 1) * s.dilation + 1) * s.cin;
    // SAFETY: AMX runs here (asserted above), so AVX-512 BF16 does.
    unsafe { amx::pack_pairs(&x.host()[..used], s.cin, width, xp) };
    let xp: &[u32] = xp;
    let tasks = split(cpu, s, amx::BLOCK, amx::BLOCK);
    let out = OutPtr(y.host_mut().as_mut_ptr());
    let run = |&(r0, r1, o0, o1): &(usize, usize, usize, usize)| {
        let out = &out;
        // SAFETY: AMX runs here and takes `s` (asserted above); `xp` was packed for `s`, `w`
        // holds the product's weights (checked above); each task writes its own rectangle of y,
        // starting on blocks (`split`).
        unsafe { amx::rect(xp, w, bias, s, out.0, r0..r1, o0..o1) }
    };
    run_tasks(cpu, &tasks, run);
    cpu.scratch.give(pairs);
    y
}

/// The shape checks every product makes: the weights' size, the input rows, the bias.
fn check_shape(x: &Tensor, weights: usize, bias: Option<&[f32]>, s: ConvShape) {
    assert_eq!(weights, s.cout * s.kernel * s.cin, "direct conv: weight size");
    if s.rows > 0 {
        let last = (s.rows - 1) * s.stride + (s.kernel - 1) * s.dilation;
        assert!(last < x.rows(), "direct conv: output row {} reads past the input", s.rows - 1);
    }
    if let Some(b) = bias {
        assert_eq!(b.len(), s.cout, "direct conv: a bias of {} for {} outputs", b.len(), s.cout);
    }
}

/// The tasks of a product: whichever operand is larger is split, so that each thread reads its
/// share of it once — the weights (output channels, in blocks of `chan_block`) or the rows (in
/// blocks of `row_block`). Each is (first row, end row, first channel, end channel).
fn split(cpu: &Cpu, s: ConvShape, row_block: usize, chan_block: usize) -> Vec<(usize, usize, usize, usize)> {
    let threads = cpu.threads();
    let parts = if threads == 1 { 1 } else { TASKS_PER_THREAD * threads };
    if s.rows < s.cout {
        let per = s.cout.div_ceil(parts).next_multiple_of(chan_block);
        (0..s.cout).step_by(per).map(|o| (0, s.rows, o, (o + per).min(s.cout))).collect()
    } else {
        let per = s.rows.div_ceil(parts).next_multiple_of(row_block);
        (0..s.rows).step_by(per).map(|r| (r, (r + per).min(s.rows), 0, s.cout)).collect()
    }
}

/// Runs the tasks, on the backend's threads when there are several.
fn run_tasks(
    cpu: &Cpu,
    tasks: &[(usize, usize, usize, usize)],
    run: impl Fn(&(usize, usize, usize, usize)) + Sync + Send,
) {
    if tasks.len() == 1 || cpu.threads() == 1 {
        tasks.iter().for_each(run);
    } else {
        cpu.team.run(tasks.len(), &|i| run(&tasks[i]));
    }
}

/// `conv_product` on the given kernel, which must run here for `s.cin` and take `w`'s type.
fn product_with(kernel: Kernel, cpu: &Cpu, x: &Tensor, w: Weights, bias: Option<&[f32]>, s: ConvShape) -> Tensor {
    assert!(kernel.runs(s.cin), "direct conv: no {kernel:?} kernel for {} input channels", s.cin);
    assert_eq!(matches!(w, Weights::Bf16(_)), kernel == Kernel::Avx512Bf16, "direct conv: {kernel:?} weights");
    check_shape(x, w.len(), bias, s);
    let mut y = cpu.output(s.rows, s.cout);
    if s.rows == 0 || s.cout == 0 {
        return y;
    }
    let tasks = split(cpu, s, kernel.rows(), NR);
    // bf16 operands: the input rows rounded once (two bf16 to each f32 slot of a scratch buffer).
    let bf16 = matches!(w, Weights::Bf16(_));
    let used = if bf16 { ((s.rows - 1) * s.stride + (s.kernel - 1) * s.dilation + 1) * s.cin } else { 0 };
    let mut rounded = cpu.scratch.take_dirty(used.div_ceil(2));
    // SAFETY: u16 is valid for every bit pattern and aligns within f32; the view borrows the
    // buffer, which holds at least `used` u16.
    let xb: &mut [u16] = unsafe { std::slice::from_raw_parts_mut(rounded.as_mut_ptr() as *mut u16, used) };
    if bf16 {
        // SAFETY: the kernel runs here (asserted above), so AVX-512 BF16 is present.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx512::round_to_bf16(&x.host()[..used], xb)
        };
    }
    let xb: &[u16] = xb;
    let out = OutPtr(y.host_mut().as_mut_ptr());
    let run = |&(r0, r1, o0, o1): &(usize, usize, usize, usize)| {
        let out = &out;
        // SAFETY: the kernel's instructions are present and the channels fill its vectors
        // (`runs`, asserted above), the weights are its type (asserted above); the rows and
        // channels are in range (checked above) and each task writes its own rectangle of y.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            match (kernel, w) {
                (Kernel::Avx2, Weights::F32(w)) => avx2::rect(x.host(), w, bias, s, out.0, r0..r1, o0..o1),
                (Kernel::Avx512, Weights::F32(w)) => avx512::rect(x.host(), w, bias, s, out.0, r0..r1, o0..o1),
                (Kernel::Avx512Bf16, Weights::Bf16(w)) => avx512::rect_bf16(xb, w, bias, s, out.0, r0..r1, o0..o1),
                _ => unreachable!("checked above"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (out, r0, r1, o0, o1, xb);
    };
    run_tasks(cpu, &tasks, run);
    cpu.scratch.give(rounded);
    y
}

#[cfg(test)]
mod tests {
    use super::{ConvShape, Kernel, Weights, product_with};
    use crate::backend::Cpu;
    use crate::backend::cpu::test_values as values;
    use crate::backend::tensor::Tensor;

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
                    let y =
                        product_with(kern, &cpu, &Tensor::from_vec(x.clone(), input, cin), Weights::F32(&w), b, shape);
                    check_definition(&y.to_host(), &x, &w, b, shape, |v| v as f64, &format!("{kern:?}"));
                }
            }
        }
    }

    /// The bf16 kernel, where the CPU has AVX-512 BF16 (asserted there, so that the test cannot
    /// pass without it): the definition over the inputs and weights rounded to bf16, in f64.
    #[test]
    fn bf16_product_is_the_definition_on_rounded_values() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(super::bf16_available(32), std::is_x86_feature_detected!("avx512bf16"));
        if !super::bf16_available(32) {
            eprintln!("no AVX-512 BF16: the bf16 kernel is not used on this CPU");
            return;
        }
        // AMX wherever Linux reports it, so that its shapes below cannot pass on another kernel.
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            assert_eq!(super::amx::available(), cpuinfo.contains(" amx_bf16"), "AMX-BF16 in /proc/cpuinfo");
        }
        let bf = |v: f32| half::bf16::from_f32(v);
        for threads in [1, 2] {
            let cpu = Cpu::new(threads).unwrap();
            // The AVX-512 BF16 kernel's shapes, then the AMX kernel's (stride 1, channels in 32s),
            // where the CPU has AMX (32 rows or more, sums of 256 values or more): row and channel
            // blocks whole and cut, split by rows and by channels.
            for (rows, cin, cout, kernel, dilation, stride) in [
                (1, 32, 4, 1, 1, 1),
                (3, 64, 9, 3, 1, 1),
                (70, 32, 6, 7, 9, 1),
                (13, 96, 40, 2, 1, 2),
                (9, 64, 1, 4, 2, 3),
                (1, 32, 32, 1, 1, 1),
                (70, 64, 64, 7, 9, 1),
                (33, 96, 96, 7, 3, 1),
                (100, 96, 160, 3, 1, 1),
                (40, 128, 256, 7, 1, 1),
            ] {
                let (w, bias) = (values(cout * kernel * cin, 1), values(cout, 2));
                let wb: Vec<u16> = w.iter().map(|&v| bf(v).to_bits()).collect();
                let input = (rows - 1) * stride + (kernel - 1) * dilation + 1;
                // Values that bf16 rounds, so that skipping the inputs' rounding would show.
                let x: Vec<f32> = values(input * cin, 3).iter().map(|v| v * 1.001 + 1e-4).collect();
                let shape = ConvShape { rows, cin, cout, kernel, dilation, stride };
                let y =
                    super::conv_product_bf16(&cpu, &Tensor::from_vec(x.clone(), input, cin), &wb, Some(&bias), shape);
                check_definition(&y.to_host(), &x, &w, Some(&bias), shape, |v| bf(v).to_f64(), "bf16");
            }
        }
    }

    /// `y` against the definition over the inputs and weights mapped by `exact` (in f64).
    fn check_definition(
        y: &[f32],
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        s: ConvShape,
        exact: impl Fn(f32) -> f64,
        what: &str,
    ) {
        assert_eq!(y.len(), s.rows * s.cout);
        for r in 0..s.rows {
            for o in 0..s.cout {
                let mut want = bias.map_or(0.0, |b| b[o] as f64);
                for tap in 0..s.kernel {
                    for i in 0..s.cin {
                        let xi = exact(x[(r * s.stride + tap * s.dilation) * s.cin + i]);
                        want += xi * exact(w[o * s.kernel * s.cin + tap * s.cin + i]);
                    }
                }
                let got = y[r * s.cout + o] as f64;
                assert!((got - want).abs() < 1e-4, "{what} {s:?}: y[{r}, {o}] = {got}, want {want}");
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
            let wb: Vec<u16> = w.iter().map(|&v| half::bf16::from_f32(v).to_bits()).collect();
            let mut runs: Vec<(Kernel, Weights)> = kernels().into_iter().map(|k| (k, Weights::F32(&w))).collect();
            if Kernel::Avx512Bf16.runs(cin) {
                runs.push((Kernel::Avx512Bf16, Weights::Bf16(&wb)));
            }
            #[cfg(target_arch = "x86_64")]
            if super::amx::available() && super::amx::fits(&shape) {
                let reps = (2e10 / flops).clamp(3.0, 2000.0) as usize;
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    std::hint::black_box(super::product_amx(&cpu, &x, &wb, None, shape));
                }
                line += &format!("  AMX {:6.1}", flops / (t.elapsed().as_secs_f64() / reps as f64) / 1e9);
            }
            for (k, w) in runs {
                let reps = (2e9 / flops).clamp(3.0, 200.0) as usize;
                let mut best = f64::MAX;
                for _ in 0..3 {
                    let t = std::time::Instant::now();
                    for _ in 0..reps {
                        std::hint::black_box(product_with(k, &cpu, &x, w, None, shape));
                    }
                    best = best.min(t.elapsed().as_secs_f64() / reps as f64);
                }
                line += &format!("  {k:?} {:6.1}", flops / best / 1e9);
            }
            eprintln!("{line}");
        }
    }
}
