// The emulated device's stand-in for cuda_fp16.h: IEEE binary16 with the hardware's conversions
// (round to nearest even, subnormals kept, overflow to infinity, any NaN → the canonical 0x7fff).
#pragma once
#include <cstdint>
#include <cstring>

struct __half {
    uint16_t bits;
};
struct __attribute__((aligned(4))) __half2 {
    __half x, y;
};
typedef __half half;
typedef __half2 half2;

inline float __half2float(__half h) {
    const uint32_t sign = (uint32_t)(h.bits & 0x8000u) << 16;
    const uint32_t exp = (h.bits >> 10) & 0x1fu, man = h.bits & 0x3ffu;
    uint32_t u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13);  // inf or NaN (payload kept)
    } else if (exp != 0) {
        u = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        u = sign;
    } else {  // subnormal: value = man · 2^-24
        float f = (float)man * 5.9604644775390625e-8f;
        std::memcpy(&u, &f, 4);
        u |= sign;
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline __half __float2half_rn(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return {0x7fffu};  // NaN: the canonical NaN, as in cuda_fp16.hpp
    if (a >= 0x477ff000u) return {(uint16_t)(sign | 0x7c00u)};  // ≥ 65520 rounds to infinity
    if (a >= 0x38800000u) {  // normal half: rebias, round the 13 dropped bits to nearest even
        uint32_t v = a - 0x38000000u;  // exponent 127 → 15
        v += 0xfffu + ((v >> 13) & 1u);
        return {(uint16_t)(sign | (v >> 13))};
    }
    // Subnormal half (or zero): value / 2^-24, rounded to nearest even in integer arithmetic.
    if (a < 0x33000000u) return {sign};  // below half the smallest subnormal: ±0
    const uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;  // m · 2^(e−150) / 2^−24 = m >> (126 − e)
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return {(uint16_t)(sign | q)};
}
inline __half __float2half(float f) { return __float2half_rn(f); }
inline float2 __half22float2(__half2 h) { return {__half2float(h.x), __half2float(h.y)}; }
inline __half2 __floats2half2_rn(float a, float b) { return {__float2half_rn(a), __float2half_rn(b)}; }
inline __half2 __float22half2_rn(float2 f) { return __floats2half2_rn(f.x, f.y); }
inline float __low2float(__half2 h) { return __half2float(h.x); }
inline float __high2float(__half2 h) { return __half2float(h.y); }
inline __half __ushort_as_half(unsigned short u) { return {u}; }
inline unsigned short __half_as_ushort(__half h) { return h.bits; }
inline __half operator+(__half a, __half b) { return __float2half_rn(__half2float(a) + __half2float(b)); }
inline __half operator-(__half a, __half b) { return __float2half_rn(__half2float(a) - __half2float(b)); }
inline __half operator*(__half a, __half b) { return __float2half_rn(__half2float(a) * __half2float(b)); }
inline __half operator/(__half a, __half b) { return __float2half_rn(__half2float(a) / __half2float(b)); }
template <> struct cudacpu_extra_shuffle_type<__half> : std::true_type {};
template <> struct cudacpu_extra_shuffle_type<__half2> : std::true_type {};
