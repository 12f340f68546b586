//! The emulator's feature kernels (tests/emugpu/kernels/features.cu) through cudarc: on the emulated
//! device every CI run, and on a GPU by scripts/gpu-check.sh, which also compares the two devices'
//! outputs. The emulator's own C++ tests check the same kernels against the host in more detail;
//! here each output is checked against the host too, so that a GPU run stands on its own.

#[path = "support/gpu.rs"]
mod gpu;

use cudarc::driver::LaunchConfig;
use gpu::*;
use voxkit::backend::cuda::KernelArgs;

const PTX: &str = include_str!("emugpu/ptx/features.ptx");

fn cfg(grid: (u32, u32, u32), block: (u32, u32, u32), smem: u32) -> LaunchConfig {
    LaunchConfig { grid_dim: grid, block_dim: block, shared_mem_bytes: smem }
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn shuffles_at_every_width_and_block_sums() {
    let g = Gpu::new();
    let s = &g.stream;
    let (f, e) = g.kernel_in(PTX, "feat_shuffles");
    let n = 64usize;
    let input: Vec<i32> = (0..n as i32).map(|i| 1000 + i).collect();
    let din = g.upload(&input);
    let dout = g.zeros::<i32>(4 * n);
    for width in [32i32, 16, 8, 4, 2, 1] {
        // delta = width: a butterfly into the previous segment; 33: taken mod 32, as PTX does.
        for (src, delta) in [0i32, 3, 17]
            .into_iter()
            .flat_map(|src| [if src % width == 0 { 1 } else { src % width }, width, 33].map(|d| (src, d)))
        {
            let mut a = KernelArgs::new();
            a.ptr(addr(&din, s)).ptr(addr(&dout, s)).i32(width).i32(src).i32(delta);
            g.run(&f, &e, blocks(1, n as u32, 0), &a);
            let out = g.download(&dout);
            let d = delta & 31;
            for t in 0..n as i32 {
                let (lane, w0) = (t & 31, t & !31);
                let (seg, max_lane) = (lane & !(width - 1), (lane & !(width - 1)) | (width - 1));
                let up = if lane - d >= seg { t - d } else { t };
                let down = if lane + d <= max_lane { t + d } else { t };
                let x = if (lane ^ d) <= max_lane { w0 + (lane ^ d) } else { t };
                let i = t as usize;
                assert_eq!(
                    [out[i], out[n + i], out[2 * n + i], out[3 * n + i]],
                    [
                        input[(w0 + seg + (src & (width - 1))) as usize],
                        input[up as usize],
                        input[down as usize],
                        input[x as usize]
                    ],
                    "width {width} src {src} lane {t}"
                );
            }
            dump_u32(
                &format!("feat_shuffles_w{width}_s{src}_d{delta}"),
                &out.iter().map(|v| *v as u32).collect::<Vec<_>>(),
            );
        }
    }

    let (f, e) = g.kernel_in(PTX, "feat_block_sum");
    let n = 1000usize;
    let input: Vec<i32> = (0..n as i32).map(|i| (i * 7919) % 1001 - 500).collect();
    let (din, dout) = (g.upload(&input), g.zeros::<i32>(4));
    let mut a = KernelArgs::new();
    a.ptr(addr(&din, s)).ptr(addr(&dout, s)).i32(n as i32);
    g.run(&f, &e, blocks(4, 256, 0), &a);
    let want: Vec<i32> = input.chunks(256).map(|c| c.iter().sum()).collect();
    assert_eq!(g.download(&dout), want);
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn votes_warp_reductions_and_atomics() {
    let g = Gpu::new();
    let s = &g.stream;
    let n = 64usize;
    let pred: Vec<i32> = (0..n).map(|i| if i < 32 { (i % 3 == 0) as i32 } else { 1 }).collect();
    let (f, e) = g.kernel_in(PTX, "feat_votes");
    let (dp, db, da, dd, df) =
        (g.upload(&pred), g.zeros::<u32>(4), g.zeros::<i32>(4), g.zeros::<f64>(n), g.zeros::<f32>(n));
    let mut a = KernelArgs::new();
    a.ptr(addr(&dp, s)).ptr(addr(&db, s)).ptr(addr(&da, s)).ptr(addr(&dd, s)).ptr(addr(&df, s));
    g.run(&f, &e, blocks(1, n as u32, 0), &a);
    let b0: u32 = (0..32).filter(|i| i % 3 == 0).map(|i| 1u32 << i).sum();
    assert_eq!(g.download(&db), [b0, b0 & 0xaaaa_aaaa, u32::MAX, 0xaaaa_aaaa]);
    assert_eq!(g.download(&da), [1, 0, 1, 1]);
    let d = g.download(&dd);
    let fl = g.download(&df);
    for i in 0..n {
        assert_eq!(d[i], (i ^ 1) as f64 * 1e10);
        assert_eq!(fl[i], ((i & !31) + 31 - (i & 31)) as f32 + 0.5);
    }

    let (f, e) = g.kernel_in(PTX, "feat_warp_reduce");
    let input: Vec<i32> = (0..n as i32).map(|i| (i * 37) % 23 - 11).collect();
    let (din, dout) = (g.upload(&input), g.zeros::<i32>(6));
    let mut a = KernelArgs::new();
    a.ptr(addr(&din, s)).ptr(addr(&dout, s));
    g.run(&f, &e, blocks(1, n as u32, 0), &a);
    let want: Vec<i32> = input
        .chunks(32)
        .flat_map(|w| [w.iter().sum::<i32>(), *w.iter().min().unwrap(), *w.iter().max().unwrap()])
        .collect();
    assert_eq!(g.download(&dout), want);

    let (f, e) = g.kernel_in(PTX, "feat_histogram");
    let (n, nbins) = (5000usize, 37usize);
    let data: Vec<u32> = (0..n as u32).map(|i| i.wrapping_mul(2_654_435_761) >> 7).collect();
    let mut want = vec![0u32; nbins];
    data.iter().for_each(|v| want[*v as usize % nbins] += 1);
    let (dd, dbins) = (g.upload(&data), g.zeros::<u32>(nbins));
    let mut a = KernelArgs::new();
    a.ptr(addr(&dd, s)).i32(n as i32).ptr(addr(&dbins, s)).i32(nbins as i32);
    g.run(&f, &e, blocks(5, 128, (nbins * 4) as u32), &a);
    assert_eq!(g.download(&dbins), want);

    let (f, e) = g.kernel_in(PTX, "feat_atomics");
    let (dsum, dints, duints) =
        (g.upload(&[0.0f32]), g.upload(&[i32::MIN / 2, i32::MAX / 2, -1, 0]), g.upload(&[0u32, 0]));
    let mut a = KernelArgs::new();
    a.ptr(addr(&dsum, s)).ptr(addr(&dints, s)).ptr(addr(&duints, s));
    g.run(&f, &e, blocks(3, 64, 0), &a);
    let ints = g.download(&dints);
    assert_eq!(g.download(&dsum), [96.0]);
    assert_eq!((ints[0], ints[1], ints[3]), (191, -191, 1));
    assert!((0..192).contains(&ints[2]));
    assert_eq!(g.download(&duints), [u32::MAX, 192 % 10]);
}

#[test]
#[ignore = "needs a CUDA driver: run through scripts/emulated-gpu.sh (or scripts/gpu-check.sh on a GPU)"]
fn tiles_dynamic_shared_memory_vectors_and_conversions() {
    let g = Gpu::new();
    let s = &g.stream;
    let (rows, cols) = (70usize, 45usize);
    let input: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
    let (f, e) = g.kernel_in(PTX, "feat_transpose");
    let (din, dout) = (g.upload(&input), g.zeros::<f32>(rows * cols));
    let mut a = KernelArgs::new();
    a.ptr(addr(&din, s)).ptr(addr(&dout, s)).i32(rows as i32).i32(cols as i32);
    g.run(&f, &e, cfg((cols.div_ceil(32) as u32, rows.div_ceil(32) as u32, 1), (32, 8, 1), 0), &a);
    let out = g.download(&dout);
    for r in 0..rows {
        for c in 0..cols {
            assert_eq!(out[c * rows + r], input[r * cols + c]);
        }
    }

    let (f, e) = g.kernel_in(PTX, "feat_reverse");
    let n = 256usize;
    let (din, dout) = (g.upload(&input[..n]), g.zeros::<f32>(n));
    let mut a = KernelArgs::new();
    a.ptr(addr(&din, s)).ptr(addr(&dout, s)).i32(n as i32);
    g.run(&f, &e, blocks(2, 128, 128 * 4), &a);
    let out = g.download(&dout);
    for i in 0..n {
        assert_eq!(out[i], input[(i / 128) * 128 + 127 - i % 128]);
    }

    let (f, e) = g.kernel_in(PTX, "feat_vectors");
    let total = 2 * 3 * 2 * 4 * 2 * 3;
    let v: Vec<f32> = (0..4 * total).map(|i| i as f32).collect();
    let (din, dout, dids) = (g.upload(&v), g.zeros::<f32>(4 * total), g.zeros::<u32>(4 * total));
    let mut a = KernelArgs::new();
    a.ptr(addr(&din, s)).ptr(addr(&dout, s)).ptr(addr(&dids, s));
    g.run(&f, &e, cfg((2, 3, 2), (4, 2, 3), 0), &a);
    let (out, ids) = (g.download(&dout), g.download(&dids));
    for i in 0..total {
        assert_eq!([out[4 * i], out[4 * i + 3]], [v[4 * i + 3], v[4 * i]]);
    }
    dump_u32("feat_vectors_ids", &ids);

    // Conversions: random bit patterns and specials, compared with the half crate (round to
    // nearest even); NaNs only as NaN.
    let (f, e) = g.kernel_in(PTX, "feat_convert");
    let mut x: Vec<f32> =
        vec![0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, 65504.0, 65520.0, 6.0e-8, 1.0 + 1.0 / 256.0];
    let mut state = 7u32;
    for _ in 0..20000 {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        x.push(f32::from_bits(state));
    }
    let m = x.len();
    let (dx, dbf, dbb, dh, dhb) =
        (g.upload(&x), g.zeros::<u16>(m), g.zeros::<f32>(m), g.zeros::<u16>(m), g.zeros::<f32>(m));
    let mut a = KernelArgs::new();
    a.ptr(addr(&dx, s)).ptr(addr(&dbf, s)).ptr(addr(&dbb, s)).ptr(addr(&dh, s)).ptr(addr(&dhb, s)).i32(m as i32);
    g.run(&f, &e, blocks(m.div_ceil(256) as u32, 256, 0), &a);
    let (bf, h) = (g.download(&dbf), g.download(&dh));
    for i in 0..m {
        if x[i].is_nan() {
            assert!(half::bf16::from_bits(bf[i]).is_nan() && half::f16::from_bits(h[i]).is_nan());
        } else {
            assert_eq!(bf[i], half::bf16::from_f32(x[i]).to_bits(), "bf16 of {:e}", x[i]);
            assert_eq!(h[i], half::f16::from_f32(x[i]).to_bits(), "f16 of {:e}", x[i]);
        }
    }
    let non_nan = |v: &[u16], nan: fn(u16) -> bool| {
        v.iter().map(|b| if nan(*b) { 0x7fff } else { *b as u32 }).collect::<Vec<_>>()
    };
    dump_u32("feat_convert_bf16", &non_nan(&bf, |b| half::bf16::from_bits(b).is_nan()));
    dump_u32("feat_convert_f16", &non_nan(&h, |b| half::f16::from_bits(b).is_nan()));
}
