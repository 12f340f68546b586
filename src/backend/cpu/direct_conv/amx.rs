//! The AMX kernel of the direct product (Intel Advanced Matrix Extensions, bf16): tiles of 16
//! rows × 64 bytes in eight tile registers, `tdpbf16ps` multiplying a 16 × 32 bf16 tile by a
//! 32 × 16 one into 16 × 16 f32 sums — 16 384 operations an instruction, ≈ 30 times the
//! AVX-512 f32 kernel's rate on one core here.
//!
//! The product is computed transposed: the weights (`[out, k·in]` rows, bf16) are the left tiles
//! as stored (16 output channels × 32 input values), the input rows are the right tiles, which
//! the instruction wants as pairs of input channels over 16 time steps — so the inputs are
//! rounded to bf16 and laid out pair-major once per call (`pack_pairs`), and each 16 × 16 block of
//! sums is transposed into the output rows. Each block holds 32 channels × 32 time steps (four
//! sum tiles, two weight and two input tiles). Stride-1 products whose channels (in and out)
//! are multiples of 32 only.

use std::arch::asm;
use std::ops::Range;

use super::ConvShape;

/// Output channels and output rows per block.
pub(super) const BLOCK: usize = 32;

/// Whether AMX-BF16 runs here: the CPU has it (CPUID leaf 7: AMX-BF16 and AMX-TILE) and Linux
/// grants this process the tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`,
/// once; a kernel or hypervisor that does not allow it refuses, and the kernel is not used).
pub(super) fn available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            // SAFETY: CPUID leaf 7 exists on every x86-64 CPU that runs AVX-512 BF16 (checked
            // first); the system call changes only this process' permission to use AMX state.
            unsafe {
                if !super::has_avx512_bf16() {
                    return false;
                }
                let leaf = std::arch::x86_64::__cpuid_count(7, 0);
                if leaf.edx & (1 << 22) == 0 || leaf.edx & (1 << 24) == 0 {
                    return false;
                }
                const SYS_ARCH_PRCTL: i64 = 158;
                const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
                const XFEATURE_XTILEDATA: i64 = 18;
                let ret: i64;
                asm!(
                    "syscall",
                    inlateout("rax") SYS_ARCH_PRCTL => ret,
                    in("rdi") ARCH_REQ_XCOMP_PERM,
                    in("rsi") XFEATURE_XTILEDATA,
                    lateout("rcx") _,
                    lateout("r11") _,
                    options(nostack),
                );
                ret == 0
            }
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        false
    })
}

/// Whether the kernel takes the product `s`.
pub(super) fn fits(s: &ConvShape) -> bool {
    s.stride == 1 && s.cin.is_multiple_of(BLOCK) && s.cout.is_multiple_of(BLOCK) && s.cin > 0 && s.cout > 0
}

/// Time steps each pair row of `pack_pairs` holds for a product `s`: the output rows rounded up
/// to whole blocks, plus the taps' reach.
pub(super) fn pair_width(s: &ConvShape) -> usize {
    s.rows.next_multiple_of(BLOCK) + (s.kernel - 1) * s.dilation
}

/// The input rows `x` (`[rows, cin]`, f32) rounded to bf16 and laid out pair-major: value
/// `p·width + t` of `out` holds channels 2p (low half) and 2p + 1 (high half) of row t; rows past
/// `x` are zeros. 16 time steps at a time: two gathers down the channel pair, rounded and
/// interleaved.
///
/// # Safety
/// AVX-512F and AVX-512 BF16 must be present (`available()`).
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn pack_pairs(x: &[f32], cin: usize, width: usize, out: &mut [u32]) {
    use std::arch::x86_64::*;
    let rows = (x.len() / cin).min(width);
    assert_eq!(out.len(), cin / 2 * width, "amx: pair buffer size");
    assert!(width.checked_mul(cin).is_some_and(|n| n < i32::MAX as usize), "amx: input too long to index");
    let steps = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let row = _mm512_set1_epi32(cin as i32);
    for t0 in (0..width).step_by(16) {
        // Lanes of rows that exist; the others stay zero.
        let valid = rows.saturating_sub(t0).min(16);
        let mask: __mmask16 = if valid == 16 { 0xffff } else { (1u16 << valid) - 1 };
        let idx = _mm512_mullo_epi32(_mm512_add_epi32(_mm512_set1_epi32(t0 as i32), steps), row);
        let n = (width - t0).min(16);
        for p in 0..cin / 2 {
            // SAFETY: the masked lanes read rows t0 + lane < rows of `x`, channels 2p and 2p + 1
            // < cin; the store writes `n` values of row p inside `out`.
            unsafe {
                let base = x.as_ptr().add(2 * p);
                let even = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, idx, base);
                let odd = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, idx, base.add(1));
                let even = _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(even)));
                let odd = _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(odd)));
                let pairs = _mm512_or_si512(even, _mm512_slli_epi32::<16>(odd));
                let dst = out.as_mut_ptr().add(p * width + t0);
                if n == 16 {
                    _mm512_storeu_si512(dst as *mut __m512i, pairs);
                } else {
                    _mm512_mask_storeu_epi32(dst as *mut i32, (1u16 << n) - 1, pairs);
                }
            }
        }
    }
}

/// The tile configuration: palette 1, all eight tiles 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn new() -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1;
        for t in 0..8 {
            c[16 + 2 * t] = 64; // bytes per row (u16, little endian)
            c[48 + t] = 16; // rows
        }
        TileConfig(c)
    }
}

/// 16 × 16 f32 sums, as a tile is stored.
#[repr(C, align(64))]
struct Sums([[f32; 16]; 16]);

/// Output rows `rows` × channels `chans` (both starting on a block; the rows may run past
/// `s.rows`, whose outputs are dropped) of the product into `y` (`[s.rows, s.cout]`).
///
/// # Safety
/// `available()` and `fits(&s)`; `xp` from `pack_pairs` with `pair_width(&s)`; `w` bf16 bits of
/// `[s.cout, s.kernel·s.cin]`; `y` valid for `[s.rows, s.cout]` with no other writer of this
/// rectangle.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn rect(
    xp: &[u32],
    w: &[u16],
    bias: Option<&[f32]>,
    s: ConvShape,
    y: *mut f32,
    rows: Range<usize>,
    chans: Range<usize>,
) {
    let k = s.kernel * s.cin;
    let width = pair_width(&s);
    assert!(xp.len() >= s.cin / 2 * width && w.len() >= s.cout * k);
    assert!(rows.start.is_multiple_of(BLOCK) && chans.start.is_multiple_of(BLOCK) && chans.end <= s.cout);
    // The last row block reads pairs up to its start + 32 + (k − 1)·d ≤ `pair_width`.
    assert!(rows.end <= s.rows, "amx: rows {rows:?} past the product's {}", s.rows);
    let cfg = TileConfig::new();
    let (wstride, xstride) = (k * 2, width * 4);
    let mut sums = [Sums([[0.0; 16]; 16]), Sums([[0.0; 16]; 16]), Sums([[0.0; 16]; 16]), Sums([[0.0; 16]; 16])];
    // SAFETY: AMX is available and this thread's tile state is configured before any tile
    // instruction and released after; every tile load reads 16 rows of 64 bytes inside `w`
    // (channels o..o + 32 of `cout`, values tap·cin + i.. + 32 of a row) or inside `xp` (pairs
    // i/2.. + 16 of cin/2, time steps up to t + (k − 1)·d + 32 ≤ width); the stores go to `sums`.
    unsafe {
        asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
        for o in chans.clone().step_by(BLOCK) {
            for t in rows.clone().step_by(BLOCK) {
                asm!("tilezero tmm4", "tilezero tmm5", "tilezero tmm6", "tilezero tmm7", options(nostack, nomem));
                for tap in 0..s.kernel {
                    for i in (0..s.cin).step_by(32) {
                        let a0 = w.as_ptr().add(o * k + tap * s.cin + i);
                        let a1 = a0.add(16 * k);
                        let b0 = xp.as_ptr().add(i / 2 * width + t + tap * s.dilation);
                        let b1 = b0.add(16);
                        asm!(
                            "tileloadd tmm0, [{a0} + {sa}*1]",
                            "tileloadd tmm1, [{a1} + {sa}*1]",
                            "tileloadd tmm2, [{b0} + {sb}*1]",
                            "tileloadd tmm3, [{b1} + {sb}*1]",
                            "tdpbf16ps tmm4, tmm0, tmm2",
                            "tdpbf16ps tmm5, tmm0, tmm3",
                            "tdpbf16ps tmm6, tmm1, tmm2",
                            "tdpbf16ps tmm7, tmm1, tmm3",
                            a0 = in(reg) a0,
                            a1 = in(reg) a1,
                            b0 = in(reg) b0,
                            b1 = in(reg) b1,
                            sa = in(reg) wstride,
                            sb = in(reg) xstride,
                            options(nostack, readonly),
                        );
                    }
                }
                asm!(
                    "tilestored [{s0} + {st}*1], tmm4",
                    "tilestored [{s1} + {st}*1], tmm5",
                    "tilestored [{s2} + {st}*1], tmm6",
                    "tilestored [{s3} + {st}*1], tmm7",
                    s0 = in(reg) sums[0].0.as_mut_ptr(),
                    s1 = in(reg) sums[1].0.as_mut_ptr(),
                    s2 = in(reg) sums[2].0.as_mut_ptr(),
                    s3 = in(reg) sums[3].0.as_mut_ptr(),
                    st = in(reg) 64usize,
                    options(nostack),
                );
                // Tile (a, b) holds channels o + 16a + m (rows) × time steps t + 16b + n.
                for r in t..(t + BLOCK).min(rows.end).min(s.rows) {
                    let (b, n) = ((r - t) / 16, (r - t) % 16);
                    let out = y.add(r * s.cout + o);
                    for c in 0..BLOCK {
                        let (a, m) = (c / 16, c % 16);
                        *out.add(c) = sums[2 * a + b].0[m][n] + bias.map_or(0.0, |bs| bs[o + c]);
                    }
                }
            }
        }
        asm!("tilerelease", options(nostack, nomem));
    }
}
