// cuda_cpu.h — CUDA C++ kernel source compiled for the CPU: voxkit's emulated device (a test double,
// never shipped). Every CUDA thread of a block runs as a fiber on one OS thread; blocks run one
// after another. Fibers run until a rendezvous (__syncthreads, a warp collective, exit), where the
// scheduler checks the CUDA rules and resumes them in the selected order (forward, reverse, random:
// a missing barrier shows in some orders only). What it reports, as a KernelError naming the block,
// the thread and the source line:
//   - deadlock (threads waiting at a barrier or collective that can never complete);
//   - __syncthreads reached while other threads of the block have exited (a divergent barrier);
//   - warp collectives whose mask names exited lanes, lanes beyond the block, or lanes that called a
//     different collective or mask; a calling lane missing from its own mask; a shuffle reading a lane
//     outside the mask;
//   - launch sizes the hardware refuses (checked by launch()).
// Shared memory (static and dynamic) is poisoned (0xFF bytes: NaN floats, -1 ints) at every block
// start and marked undefined for valgrind, so a read before a write shows.
// Force-included (g++ -include) before a kernel file; the kernel source stays plain CUDA.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <source_location>
#include <vector>

// ---- vector types (sizes and alignments as in CUDA's vector_types.h) ----------------------------
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint3 { unsigned x, y, z; };
struct int3 { int x, y, z; };
struct float3 { float x, y, z; };
struct __attribute__((aligned(8))) int2 { int x, y; };
struct __attribute__((aligned(8))) uint2 { unsigned x, y; };
struct __attribute__((aligned(8))) float2 { float x, y; };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; };
struct __attribute__((aligned(16))) uint4 { unsigned x, y, z, w; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct __attribute__((aligned(16))) double2 { double x, y; };
struct __attribute__((aligned(16))) longlong2 { long long x, y; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

namespace cudacpu {

// A CUDA rule broken by a kernel, or a launch the hardware refuses.
struct KernelError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

enum class Order { Forward, Reverse, Random };

// Per-launch knobs; `from_env` reads CUDACPU_ORDER (fwd|rev|rand) and CUDACPU_SEED.
struct Options {
    Order order = Order::Forward;
    uint64_t seed = 12345;
    static Options from_env();
};

struct Where {
    const char* file;
    unsigned line;
};

// The caller's source line (a default argument: evaluated where the built-in is called).
inline Where here(std::source_location l = std::source_location::current()) { return Where{l.file_name(), l.line()}; }

// What the current fiber sees.
struct ThreadView {
    uint3 thread_idx;
    uint3 block_idx;
    dim3 block_dim;
    dim3 grid_dim;
};
extern ThreadView* g_view;  // valid while a fiber runs

enum class Collective { Shuffle, Ballot, SyncWarp, ReduceAdd, ReduceMin, ReduceMax, ReduceAnd, ReduceOr, ReduceXor };
enum class ShuffleMode { Idx, Up, Down, Xor };

// Rendezvous from kernel code; defined in runtime.cpp.
void barrier(Where at);
uint64_t warp_collective(Collective op, unsigned mask, uint64_t value, ShuffleMode mode, int arg, int width, Where at);
unsigned char* dynamic_shared();
// The lanes of the calling thread's warp that exist and have not exited.
unsigned active_lanes();

// Runs `body` once per CUDA thread of every block of the grid; throws KernelError.
// `dynamic_smem` bytes of dynamic shared memory per block.
void launch(const char* name, dim3 grid, dim3 block, size_t dynamic_smem, const Options& options, void (*thunk)(void*), void* env);

template <class T> inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
    uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}
template <class T> inline T from_bits(uint64_t b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}

// Calls a kernel with driver-style parameters (kernelParams: one pointer per argument).
template <class... A, size_t... I>
inline void call_packed(void (*k)(A...), void** p, std::index_sequence<I...>) {
    k(*reinterpret_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(p[I])...);
}
template <class... A> struct Packed {
    void (*kernel)(A...);
    void** params;
};
template <class... A>
inline void launch_packed(const char* name, void (*k)(A...), dim3 grid, dim3 block, size_t smem, const Options& o, void** params) {
    Packed<A...> env{k, params};
    launch(name, grid, block, smem, o, [](void* e) {
        auto* pk = static_cast<Packed<A...>*>(e);
        call_packed(pk->kernel, pk->params, std::index_sequence_for<A...>{});
    }, &env);
}
template <class... A> inline std::vector<size_t> param_sizes(void (*)(A...)) { return {sizeof(A)...}; }
template <class... A> inline std::vector<bool> param_is_pointer(void (*)(A...)) { return {std::is_pointer_v<A>...}; }

// Every kernel compiled into the program, by its extern "C" name (registered by CUDACPU_REGISTER,
// which the build appends to each kernel file's translation unit).
struct KernelInfo {
    std::string name;
    void (*launch)(const char* name, dim3 grid, dim3 block, size_t smem, const Options& o, void** params);
    std::vector<size_t> param_sizes;
    std::vector<bool> param_is_pointer;
};
void register_kernel(KernelInfo info);
const KernelInfo* find_kernel(const std::string& name);
std::vector<std::string> kernel_names();

template <auto Kernel> struct Registered {
    explicit Registered(const char* name) {
        register_kernel(KernelInfo{name,
                                   [](const char* n, dim3 g, dim3 b, size_t s, const Options& o, void** p) { launch_packed(n, Kernel, g, b, s, o, p); },
                                   param_sizes(Kernel), param_is_pointer(Kernel)});
    }
};

}  // namespace cudacpu

// ---- the CUDA built-ins -----------------------------------------------------------------------
#define threadIdx (cudacpu::g_view->thread_idx)
#define blockIdx (cudacpu::g_view->block_idx)
#define blockDim (cudacpu::g_view->block_dim)
#define gridDim (cudacpu::g_view->grid_dim)
#define warpSize 32
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
// Static shared memory: one copy per program (blocks run one at a time), all of it in one section
// that the scheduler poisons at every block start.
#define __shared__ static __attribute__((section("cudacpu_shared")))
#define VOX_DYNAMIC_SMEM(T, name) T* name = reinterpret_cast<T*>(cudacpu::dynamic_shared())
#define CUDACPU_HERE cudacpu::here()
#define CUDACPU_REGISTER(k) static cudacpu::Registered<&k> cudacpu_registered_##k(#k);

inline void __syncthreads(cudacpu::Where at = CUDACPU_HERE) { cudacpu::barrier(at); }
inline void __syncwarp(unsigned mask = 0xffffffffu, cudacpu::Where at = CUDACPU_HERE) {
    cudacpu::warp_collective(cudacpu::Collective::SyncWarp, mask, 0, cudacpu::ShuffleMode::Idx, 0, 32, at);
}
inline void __threadfence() {}
inline void __threadfence_block() {}

// The types CUDA's __shfl_*_sync accept.
template <class T> constexpr bool shuffle_type_ok =
    std::is_same_v<T, int> || std::is_same_v<T, unsigned> || std::is_same_v<T, long> || std::is_same_v<T, unsigned long> ||
    std::is_same_v<T, long long> || std::is_same_v<T, unsigned long long> || std::is_same_v<T, float> || std::is_same_v<T, double>;
template <class T> struct cudacpu_extra_shuffle_type : std::false_type {};
template <class T> inline T cudacpu_shuffle(unsigned mask, T v, cudacpu::ShuffleMode mode, int arg, int width, cudacpu::Where at) {
    static_assert(shuffle_type_ok<T> || cudacpu_extra_shuffle_type<T>::value, "CUDA has no shuffle of this type");
    return cudacpu::from_bits<T>(cudacpu::warp_collective(cudacpu::Collective::Shuffle, mask, cudacpu::to_bits(v), mode, arg, width, at));
}
template <class T> inline T __shfl_sync(unsigned m, T v, int src, int w = 32, cudacpu::Where at = CUDACPU_HERE) {
    return cudacpu_shuffle(m, v, cudacpu::ShuffleMode::Idx, src, w, at);
}
template <class T> inline T __shfl_up_sync(unsigned m, T v, unsigned d, int w = 32, cudacpu::Where at = CUDACPU_HERE) {
    return cudacpu_shuffle(m, v, cudacpu::ShuffleMode::Up, (int)d, w, at);
}
template <class T> inline T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32, cudacpu::Where at = CUDACPU_HERE) {
    return cudacpu_shuffle(m, v, cudacpu::ShuffleMode::Down, (int)d, w, at);
}
template <class T> inline T __shfl_xor_sync(unsigned m, T v, int lane_mask, int w = 32, cudacpu::Where at = CUDACPU_HERE) {
    return cudacpu_shuffle(m, v, cudacpu::ShuffleMode::Xor, lane_mask, w, at);
}
inline unsigned __ballot_sync(unsigned m, int p, cudacpu::Where at = CUDACPU_HERE) {
    return (unsigned)cudacpu::warp_collective(cudacpu::Collective::Ballot, m, p != 0, cudacpu::ShuffleMode::Idx, 0, 32, at);
}
inline int __any_sync(unsigned m, int p, cudacpu::Where at = CUDACPU_HERE) { return __ballot_sync(m, p, at) != 0; }
inline int __all_sync(unsigned m, int p, cudacpu::Where at = CUDACPU_HERE) { return __ballot_sync(m, p, at) == m; }
#define CUDACPU_REDUCE(name, op, T)                                                                          \
    inline T name(unsigned m, T v, cudacpu::Where at = CUDACPU_HERE) {                                       \
        return (T)cudacpu::warp_collective(cudacpu::Collective::op, m, cudacpu::to_bits(v), cudacpu::ShuffleMode::Idx, \
                                           std::is_signed_v<T>, 32, at);                                     \
    }
CUDACPU_REDUCE(__reduce_add_sync, ReduceAdd, unsigned)
CUDACPU_REDUCE(__reduce_add_sync, ReduceAdd, int)
CUDACPU_REDUCE(__reduce_min_sync, ReduceMin, unsigned)
CUDACPU_REDUCE(__reduce_min_sync, ReduceMin, int)
CUDACPU_REDUCE(__reduce_max_sync, ReduceMax, unsigned)
CUDACPU_REDUCE(__reduce_max_sync, ReduceMax, int)
CUDACPU_REDUCE(__reduce_and_sync, ReduceAnd, unsigned)
CUDACPU_REDUCE(__reduce_or_sync, ReduceOr, unsigned)
CUDACPU_REDUCE(__reduce_xor_sync, ReduceXor, unsigned)
#undef CUDACPU_REDUCE
// Approximate: the warp's lanes that exist and have not exited (not only those converged here).
inline unsigned __activemask() { return cudacpu::active_lanes(); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}

// ---- math and reinterpretation (exact CPU math where the GPU may approximate) -----------------
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __powf(float a, float b) { return std::pow(a, b); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __saturatef(float x) { return x != x ? 0.0f : std::min(1.0f, std::max(0.0f, x)); }
inline float __int_as_float(int i) { return cudacpu::from_bits<float>((uint32_t)i); }
inline int __float_as_int(float f) { return (int)(uint32_t)cudacpu::to_bits(f); }
inline unsigned __float_as_uint(float f) { return (uint32_t)cudacpu::to_bits(f); }
inline float __uint_as_float(unsigned u) { return cudacpu::from_bits<float>(u); }
template <class T> inline T __ldg(const T* p) { return *p; }
// CUDA's integer min/max, mixed signedness included (crt/math_functions.hpp: the usual arithmetic
// conversions), and the floating-point ones.
template <class A, class B, class = std::enable_if_t<std::is_integral_v<A> && std::is_integral_v<B>>>
inline std::common_type_t<A, B> min(A a, B b) {
    using C = std::common_type_t<A, B>;
    return (C)a < (C)b ? (C)a : (C)b;
}
template <class A, class B, class = std::enable_if_t<std::is_integral_v<A> && std::is_integral_v<B>>>
inline std::common_type_t<A, B> max(A a, B b) {
    using C = std::common_type_t<A, B>;
    return (C)a > (C)b ? (C)a : (C)b;
}
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

// ---- atomics: fibers switch only at rendezvous points, so a read-modify-write is indivisible. The
// value's type follows the pointer (atomicAdd(unsigned*, 1), atomicAdd(float*, 1.0) as in CUDA).
// Not emulated: spinning on a value another thread of the block will write (no rendezvous, so the
// other thread never runs: it hangs).
template <class T> using cudacpu_same = std::type_identity_t<T>;
template <class T> inline T atomicAdd(T* p, cudacpu_same<T> v) { T o = *p; *p = o + v; return o; }
template <class T> inline T atomicSub(T* p, cudacpu_same<T> v) { T o = *p; *p = o - v; return o; }
template <class T> inline T atomicMax(T* p, cudacpu_same<T> v) { T o = *p; *p = o > v ? o : v; return o; }
template <class T> inline T atomicMin(T* p, cudacpu_same<T> v) { T o = *p; *p = o < v ? o : v; return o; }
template <class T> inline T atomicExch(T* p, cudacpu_same<T> v) { T o = *p; *p = v; return o; }
template <class T> inline T atomicCAS(T* p, cudacpu_same<T> c, cudacpu_same<T> v) { T o = *p; if (o == c) *p = v; return o; }
template <class T> inline T atomicAnd(T* p, cudacpu_same<T> v) { T o = *p; *p = o & v; return o; }
template <class T> inline T atomicOr(T* p, cudacpu_same<T> v) { T o = *p; *p = o | v; return o; }
template <class T> inline T atomicXor(T* p, cudacpu_same<T> v) { T o = *p; *p = o ^ v; return o; }
inline unsigned atomicInc(unsigned* p, unsigned limit) { unsigned o = *p; *p = o >= limit ? 0 : o + 1; return o; }
inline unsigned atomicDec(unsigned* p, unsigned limit) { unsigned o = *p; *p = (o == 0 || o > limit) ? limit : o - 1; return o; }
