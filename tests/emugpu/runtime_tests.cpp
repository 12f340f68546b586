// The emulated device's own tests: each CUDA feature against a host computation, and planted bugs
// that must be caught. Usage: emu_runtime_tests [fwd|rev|rand] [--features-only]
//   --out-of-bounds          for the AddressSanitizer build: a planted out-of-bounds write (must die)
//   --uninitialised-shared   for valgrind: a planted read of uninitialised shared memory (must be reported)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cuda_cpu.h"
#include <cuda_bf16.h>
#include <cuda_fp16.h>

unsigned short official_float2bfloat16_rn(float f);
float official_bfloat162float(unsigned short u);
unsigned short official_float2half_rn(float f);
float official_half2float(unsigned short u);

namespace {

cudacpu::Options g_options;
int g_failures = 0;

template <class... A>
void launch(const char* name, dim3 grid, dim3 block, size_t smem, A... args) {
    const cudacpu::KernelInfo* k = cudacpu::find_kernel(name);
    if (!k) throw std::runtime_error(std::string("no kernel ") + name);
    const std::vector<size_t> sizes{sizeof(A)...};
    if (sizes != k->param_sizes) throw std::runtime_error(std::string("argument sizes differ from ") + name + "'s");
    void* params[] = {static_cast<void*>(&args)...};
    k->launch(name, grid, block, smem, g_options, params);
}

void check(bool ok, const std::string& name, const std::string& detail = "") {
    std::printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", name.c_str(), detail.empty() ? "" : ": ", detail.c_str());
    if (!ok) ++g_failures;
}

void test(const std::string& name, const std::function<void()>& body) {
    try {
        body();
    } catch (const std::exception& e) {
        check(false, name, std::string("threw: ") + e.what());
    }
}

// A planted bug: the launch must throw a KernelError whose message contains `expect`.
void expect_fault(const std::string& name, const std::string& expect, const std::function<void()>& body) {
    try {
        body();
        check(false, name, "no fault reported");
    } catch (const cudacpu::KernelError& e) {
        const std::string m = e.what();
        check(m.find(expect) != std::string::npos, name, "reported: " + m);
    }
}

void features() {
    test("block_sum: shuffles and shared memory", [] {
        const int n = 1000, threads = 256, blocks = (n + threads - 1) / threads;
        std::vector<int> in(n), out(blocks, -1);
        for (int i = 0; i < n; ++i) in[i] = (i * 7919) % 1001 - 500;
        launch("feat_block_sum", dim3(blocks), dim3(threads), 0, in.data(), out.data(), n);
        bool ok = true;
        for (int b = 0; b < blocks; ++b) {
            int s = 0;
            for (int i = b * threads; i < std::min(n, (b + 1) * threads); ++i) s += in[i];
            ok &= out[b] == s;
        }
        check(ok, "block_sum: shuffles and shared memory");
    });
    test("shuffles: idx/up/down/xor at every width", [] {
        const int n = 64;
        std::vector<int> in(n), out(4 * n);
        for (int i = 0; i < n; ++i) in[i] = 1000 + i;
        bool ok = true;
        for (int width : {32, 16, 8, 4, 2, 1})
            for (int src : {0, 3, 17})
              for (int delta : {src % width == 0 ? 1 : src % width, width, 33}) {  // width: bfly into the previous segment; 33: taken mod 32
                launch("feat_shuffles", dim3(1), dim3(n), 0, in.data(), out.data(), width, src, delta);
                for (int t = 0; t < n; ++t) {
                    const int lane = t & 31, w0 = t - lane, seg = lane & ~(width - 1), max_lane = seg | (width - 1);
                    const int d = delta & 31;  // PTX takes the offset mod 32
                    const int up = lane - d >= seg ? t - d : t;
                    const int down = lane + d <= max_lane ? t + d : t;
                    const int x = (lane ^ d) <= max_lane ? w0 + (lane ^ d) : t;  // may read an earlier segment
                    ok &= out[t] == in[w0 + seg + (src & (width - 1))] && out[n + t] == in[up] && out[2 * n + t] == in[down] &&
                          out[3 * n + t] == in[x];
                }
            }
        check(ok, "shuffles: idx/up/down/xor at every width");
    });
    test("votes: ballot/any/all, partial masks, 64-bit and float shuffles", [] {
        const int n = 64;
        std::vector<int> pred(n), any_all(4);
        std::vector<unsigned> ballots(4);
        std::vector<double> d(n);
        std::vector<float> f(n);
        for (int i = 0; i < n; ++i) pred[i] = i < 32 ? (i % 3 == 0) : 1;
        launch("feat_votes", dim3(1), dim3(n), 0, pred.data(), ballots.data(), any_all.data(), d.data(), f.data());
        unsigned b0 = 0;
        for (int i = 0; i < 32; ++i) b0 |= (unsigned)(i % 3 == 0) << i;
        bool ok = ballots[0] == b0 && ballots[1] == (b0 & 0xaaaaaaaau) && ballots[2] == 0xffffffffu && ballots[3] == 0xaaaaaaaau;
        ok &= any_all[0] == 1 && any_all[1] == 0 && any_all[2] == 1 && any_all[3] == 1;
        for (int i = 0; i < n; ++i) ok &= d[i] == (double)(i ^ 1) * 1e10 && f[i] == (float)((i & ~31) + 31 - (i & 31)) + 0.5f;
        check(ok, "votes: ballot/any/all, partial masks, 64-bit and float shuffles");
    });
    test("warp reductions (__reduce_*_sync)", [] {
        const int n = 64;
        std::vector<int> in(n), out(6);
        for (int i = 0; i < n; ++i) in[i] = (i * 37) % 23 - 11;
        launch("feat_warp_reduce", dim3(1), dim3(n), 0, in.data(), out.data());
        bool ok = true;
        for (int w = 0; w < 2; ++w) {
            int s = 0, lo = 1 << 30, hi = -(1 << 30);
            for (int i = 32 * w; i < 32 * w + 32; ++i) s += in[i], lo = std::min(lo, in[i]), hi = std::max(hi, in[i]);
            ok &= out[3 * w] == s && out[3 * w + 1] == lo && out[3 * w + 2] == hi;
        }
        check(ok, "warp reductions (__reduce_*_sync)");
    });
    test("transpose: 2-D blocks and grid, padded shared tile", [] {
        const int rows = 70, cols = 45;
        std::vector<float> in(rows * cols), out(rows * cols, -1.0f);
        for (int i = 0; i < rows * cols; ++i) in[i] = (float)i;
        launch("feat_transpose", dim3((cols + 31) / 32, (rows + 31) / 32), dim3(32, 8), 0, in.data(), out.data(), rows, cols);
        bool ok = true;
        for (int r = 0; r < rows; ++r)
            for (int c = 0; c < cols; ++c) ok &= out[c * rows + r] == in[r * cols + c];
        check(ok, "transpose: 2-D blocks and grid, padded shared tile");
    });
    test("histogram: shared and global atomics, dynamic shared memory", [] {
        const int n = 5000, nbins = 37;
        std::vector<unsigned> data(n), bins(nbins, 0), expect(nbins, 0);
        for (int i = 0; i < n; ++i) data[i] = (unsigned)(i * 2654435761u >> 7), expect[data[i] % nbins]++;
        launch("feat_histogram", dim3(5), dim3(128), nbins * sizeof(unsigned), data.data(), n, bins.data(), nbins);
        check(bins == expect, "histogram: shared and global atomics, dynamic shared memory");
    });
    test("atomics: add/max/min/CAS/or/inc", [] {
        float fsum = 0.0f;
        std::vector<int> ints{-1 << 30, 1 << 30, -1, 0};
        std::vector<unsigned> uints{0, 0};
        launch("feat_atomics", dim3(3), dim3(64), 0, &fsum, ints.data(), uints.data());
        const int threads = 192;
        const bool ok = fsum == 0.5f * threads && ints[0] == threads - 1 && ints[1] == -(threads - 1) && ints[3] == 1 && ints[2] >= 0 &&
                        uints[0] == 0xffffffffu && uints[1] == (unsigned)(threads % 10);
        check(ok, "atomics: add/max/min/CAS/or/inc");
    });
    test("conversions: bf16 and f16, rounding and special values, against CUDA's own", [] {
        std::vector<float> in;
        const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 1.0f, -1.0f, 65504.0f, 65519.99f, 65520.0f, 1e-8f,
                                  5.9604645e-8f, 2.9802322e-8f, 2.98023259e-8f, 6.1035156e-5f, 6.1e-5f, 3.3895314e38f, 3.4028235e38f,
                                  1.0039062f, 1.0117188f, 1.00390625f, 1.01171875f};
        for (float s : specials) in.push_back(s);
        std::mt19937 rng(7);
        for (int i = 0; i < 20000; ++i) {  // random bit patterns, incl. NaN payloads and subnormals
            uint32_t u = rng();
            float f;
            std::memcpy(&f, &u, 4);
            in.push_back(f);
        }
        for (uint32_t u = 0x33000000u; u < 0x39000000u; u += 0x1001u) {  // around the f16 subnormal range
            float f;
            std::memcpy(&f, &u, 4);
            in.push_back(f);
        }
        const int n = (int)in.size();
        std::vector<unsigned short> bf(n), h(n);
        std::vector<float> bf_back(n), h_back(n);
        launch("feat_convert", dim3((n + 255) / 256), dim3(256), 0, in.data(), bf.data(), bf_back.data(), h.data(), h_back.data(), n);
        // Bits must match exactly, but for NaN only NaN-ness: CUDA's host path canonicalises NaNs (bits
        // 0x7fff, 0x7fffffff) while the GPU's cvt instructions may keep payloads (uncalibrated).
        auto same = [](float a, float b) { return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, 4) == 0; };
        auto same16 = [](unsigned short a, unsigned short b, bool bf) {
            const unsigned exp_mask = bf ? 0x7f80u : 0x7c00u, man_mask = bf ? 0x7fu : 0x3ffu;
            auto nan = [&](unsigned short v) { return (v & exp_mask) == exp_mask && (v & man_mask) != 0; };
            return a == b || (nan(a) && nan(b));
        };
        int bad = 0;
        std::string first;
        for (int i = 0; i < n; ++i) {
            const float wb = official_bfloat162float(official_float2bfloat16_rn(in[i]));
            const float wh = official_half2float(official_float2half_rn(in[i]));
            const bool ok = same16(bf[i], official_float2bfloat16_rn(in[i]), true) && same16(h[i], official_float2half_rn(in[i]), false) &&
                            same(bf_back[i], wb) && same(h_back[i], wh);
            if (!ok && bad++ == 0) {
                char buf[160];
                std::snprintf(buf, sizeof buf, "input %a: bf16 %04x (official %04x), f16 %04x (official %04x)", in[i], bf[i],
                              official_float2bfloat16_rn(in[i]), h[i], official_float2half_rn(in[i]));
                first = buf;
            }
        }
        // And every 16-bit pattern widened.
        for (uint32_t u = 0; u < 65536; ++u) {
            const __nv_bfloat16 b{(uint16_t)u};
            const __half hh{(uint16_t)u};
            const float a = __bfloat162float(b), wa = official_bfloat162float((unsigned short)u);
            const float c = __half2float(hh), wc = official_half2float((unsigned short)u);
            if ((!same(a, wa) || !same(c, wc)) && bad++ == 0) first = "widening " + std::to_string(u);
        }
        check(bad == 0, "conversions: bf16 and f16, rounding and special values, against CUDA's own",
              bad ? std::to_string(bad) + " differ, first " + first : "");
    });
    test("dynamic shared memory: block-wise reverse", [] {
        const int n = 300, threads = 128;
        std::vector<float> in(n), out(n, -1.0f);
        for (int i = 0; i < n; ++i) in[i] = (float)i;
        launch("feat_reverse", dim3((n + threads - 1) / threads), dim3(threads), threads * sizeof(float), in.data(), out.data(), n);
        bool ok = true;
        for (int i = 0; i < 256; ++i) ok &= out[i] == in[(i / threads) * threads + threads - 1 - i % threads];
        check(ok, "dynamic shared memory: block-wise reverse");
    });
    test("vector types, 3-D blocks and grids", [] {
        const dim3 grid(2, 3, 2), block(4, 2, 3);
        const int n = 2 * 3 * 2 * 4 * 2 * 3;
        std::vector<float4> in(n), out(n);
        std::vector<uint4> ids(n);
        for (int i = 0; i < n; ++i) in[i] = make_float4((float)i, i + 0.25f, i + 0.5f, i + 0.75f);
        launch("feat_vectors", grid, block, 0, in.data(), out.data(), ids.data());
        bool ok = true;
        int i = 0;
        for (unsigned bz = 0; bz < 2; ++bz)
            for (unsigned by = 0; by < 3; ++by)
                for (unsigned bx = 0; bx < 2; ++bx)
                    for (unsigned tz = 0; tz < 3; ++tz)
                        for (unsigned ty = 0; ty < 2; ++ty)
                            for (unsigned tx = 0; tx < 4; ++tx, ++i)
                                ok &= out[i].x == in[i].w && out[i].w == in[i].x && ids[i].x == tx && ids[i].y == ty && ids[i].z == tz &&
                                      ids[i].w == bx + 100 * by + 10000 * bz;
        check(ok, "vector types, 3-D blocks and grids");
    });
}

void planted_bugs() {
    using cudacpu::Order;
    // A missing barrier shows as a wrong result in some thread orders: at least one must show it.
    test("planted: missing __syncthreads", [] {
        const int n = 256;
        std::vector<float> in(n), out(n);
        for (int i = 0; i < n; ++i) in[i] = (float)i;
        std::string caught;
        const cudacpu::Options saved = g_options;
        for (Order o : {Order::Forward, Order::Reverse, Order::Random}) {
            g_options.order = o;
            std::fill(out.begin(), out.end(), 0.0f);
            launch("bug_missing_sync", dim3(1), dim3(n), 0, in.data(), out.data());
            bool right = true;
            for (int i = 0; i < n; ++i) right &= out[i] == in[n - 1 - i];
            if (!right) caught += o == Order::Forward ? "fwd " : o == Order::Reverse ? "rev " : "rand ";
        }
        g_options = saved;
        check(!caught.empty(), "planted: missing __syncthreads", "wrong results in orders: " + caught);
    });
    std::vector<int> in(64), out(64);
    std::vector<float> fout(64);
    expect_fault("planted: shuffle naming exited lanes", "has exited",
                 [&] { launch("bug_shuffle_exited_lanes", dim3(1), dim3(32), 0, in.data(), out.data()); });
    expect_fault("planted: shuffle naming lanes absent from the block", "does not exist in this block",
                 [&] { launch("bug_shuffle_absent_lanes", dim3(1), dim3(48), 0, in.data(), out.data()); });
    expect_fault("planted: shuffle reading a lane outside its mask", "not in the mask",
                 [&] { launch("bug_shuffle_outside_mask", dim3(1), dim3(32), 0, in.data(), out.data()); });
    expect_fault("planted: barrier in divergent code", "have exited", [&] { launch("bug_divergent_barrier", dim3(1), dim3(64), 0, fout.data()); });
    expect_fault("planted: deadlock between a barrier and a shuffle", "deadlock", [&] { launch("bug_deadlock", dim3(1), dim3(32), 0, out.data()); });
    test("planted: uninitialised shared memory reads as poison", [&] {
        std::fill(fout.begin(), fout.end(), 0.0f);
        launch("bug_uninitialised_shared", dim3(1), dim3(64), 0, fout.data());
        bool poisoned = true;
        for (float f : fout) {
            uint32_t u;
            std::memcpy(&u, &f, 4);
            poisoned &= u == 0xffffffffu;
        }
        check(poisoned, "planted: uninitialised shared memory reads as poison");
    });
    expect_fault("planted: block of 1025 threads", "exceeds the hardware's limits", [&] { launch("bug_uninitialised_shared", dim3(1), dim3(1025), 0, fout.data()); });
    expect_fault("planted: block z of 65", "exceeds the hardware's limits", [&] { launch("bug_uninitialised_shared", dim3(1), dim3(1, 1, 65), 0, fout.data()); });
    expect_fault("planted: grid y of 65536", "exceeds the hardware's limits", [&] { launch("bug_uninitialised_shared", dim3(1, 65536), dim3(32), 0, fout.data()); });
}

}  // namespace

int main(int argc, char** argv) {
    g_options = cudacpu::Options::from_env();
    bool features_only = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "fwd") g_options.order = cudacpu::Order::Forward;
        else if (a == "rev") g_options.order = cudacpu::Order::Reverse;
        else if (a == "rand") g_options.order = cudacpu::Order::Random;
        else if (a == "--features-only") features_only = true;
        else if (a == "--bench") {
            // The emulator's speed: CUDA threads per second through a kernel with barriers and
            // shuffles (feat_block_sum: 10 shuffles and 1 barrier a thread) and one without (feat_convert).
            const int n = 1 << 20;
            std::vector<int> in(n, 1), out(n / 256);
            auto t0 = std::chrono::steady_clock::now();
            launch("feat_block_sum", dim3(n / 256), dim3(256), 0, in.data(), out.data(), n);
            const double s1 = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::vector<float> f(n, 1.5f), bb(n), hb(n);
            std::vector<unsigned short> bf(n), h(n);
            t0 = std::chrono::steady_clock::now();
            launch("feat_convert", dim3(n / 256), dim3(256), 0, f.data(), bf.data(), bb.data(), h.data(), hb.data(), n);
            const double s2 = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::printf("block_sum: %d threads in %.3f s (%.2f M threads/s, %.2f M rendezvous/s)\n", n, s1, n / s1 / 1e6, 11.0 * n / s1 / 1e6);
            std::printf("convert:   %d threads in %.3f s (%.2f M threads/s)\n", n, s2, n / s2 / 1e6);
            return 0;
        } else if (a == "--uninitialised-shared") {
            std::vector<float> out(64);
            launch("bug_uninitialised_shared", dim3(1), dim3(64), 0, out.data());
            int negative = 0;
            for (float f : out) negative += f < 0.0f;  // a branch on the value read: valgrind reports it
            std::printf("%d\n", negative);
            return 0;
        } else if (a == "--out-of-bounds") {
            // For the AddressSanitizer build: an exact-size heap buffer written one past its end.
            const int n = 100;
            float* out = new float[n];
            launch("bug_out_of_bounds", dim3(1), dim3(128), 0, out, n);
            std::printf("no out-of-bounds write was reported\n");
            delete[] out;
            return 3;
        } else {
            std::fprintf(stderr, "usage: %s [fwd|rev|rand] [--features-only] | --out-of-bounds | --uninitialised-shared\n", argv[0]);
            return 2;
        }
    }
    const char* order = g_options.order == cudacpu::Order::Forward ? "fwd" : g_options.order == cudacpu::Order::Reverse ? "rev" : "rand";
    std::printf("emulated-device runtime tests, thread order %s, %zu kernels registered\n", order, cudacpu::kernel_names().size());
    features();
    if (!features_only) planted_bugs();
    std::printf("%s: %d failed\n", g_failures ? "FAILED" : "passed", g_failures);
    return g_failures ? 1 : 0;
}
