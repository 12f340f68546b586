// NVIDIA's own host implementations of the f32 → bf16/f16 conversions (cuda_bf16.hpp and
// cuda_fp16.hpp from the CUDA headers, compiled for the host), to check the emulator's stand-ins
// bit for bit. Its own translation unit: the real headers and the stand-ins define the same types.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

unsigned short official_float2bfloat16_rn(float f) {
    __nv_bfloat16 b = __float2bfloat16_rn(f);
    unsigned short u;
    __builtin_memcpy(&u, &b, 2);
    return u;
}
float official_bfloat162float(unsigned short u) {
    __nv_bfloat16 b;
    __builtin_memcpy(static_cast<void*>(&b), &u, 2);
    return __bfloat162float(b);
}
unsigned short official_float2half_rn(float f) {
    __half h = __float2half_rn(f);
    unsigned short u;
    __builtin_memcpy(&u, &h, 2);
    return u;
}
float official_half2float(unsigned short u) {
    __half h;
    __builtin_memcpy(static_cast<void*>(&h), &u, 2);
    return __half2float(h);
}
