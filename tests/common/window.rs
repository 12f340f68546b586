//! The 7-term minimum-sidelobe Blackman-Harris window, shared by `tests/resample.rs` and
//! `examples/resample_compare.rs` (both include this file with `#[path]`).

use std::f64::consts::PI;

/// 7-term minimum-sidelobe Blackman-Harris window (Albrecht; sidelobes ≈ −180 dB), periodic.
pub fn bh7(n: usize) -> Vec<f64> {
    const A: [f64; 7] = [
        0.271_051_400_693_42,
        0.433_297_939_234_48,
        0.218_122_999_543_11,
        0.065_925_446_388_03,
        0.010_811_742_098_37,
        0.000_776_584_825_22,
        0.000_013_887_217_35,
    ];
    (0..n)
        .map(|i| {
            let x = 2.0 * PI * i as f64 / n as f64;
            A.iter().enumerate().map(|(k, &a)| if k % 2 == 0 { a } else { -a } * (k as f64 * x).cos()).sum()
        })
        .collect()
}
