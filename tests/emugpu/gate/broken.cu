// A planted compile error for the NVRTC gate's own test (scripts/emulator-check.sh).
#include "common.cuh"
extern "C" __global__ void broken(float* out) { out[threadIdx.x] = undeclared_name; }
