// A planted spill for the NVRTC gate's own test (scripts/emulator-check.sh): 96 live accumulators
// under a 32-register budget (__launch_bounds__(1024, 2)).
#include "common.cuh"
extern "C" __global__ void __launch_bounds__(1024, 2) spiller(float* out, const float* in) {
    float acc[96];
#pragma unroll
    for (int i = 0; i < 96; ++i) acc[i] = in[i * 1024 + threadIdx.x];
#pragma unroll
    for (int k = 0; k < 8; ++k)
#pragma unroll
        for (int i = 0; i < 96; ++i) acc[i] = acc[i] * acc[(i + k) % 96] + 1.0f;
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < 96; ++i) s += acc[i];
    out[threadIdx.x] = s;
}
