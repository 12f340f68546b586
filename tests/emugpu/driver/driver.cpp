// The emulated device's driver: a shared library with libcuda's ABI (the cu* entry points cudarc
// reaches), so the real host code runs unchanged against it (scripts/emulated-gpu.sh puts it first on
// the library path). A test double: never shipped.
//
// Device memory is host memory (poisoned at allocation, fenced by canaries that every launch checks);
// PTX handed to cuModuleLoadData is read for its .version, .target and .entry signatures, and a launch
// runs the CPU build of the entry of that name (tests/emugpu/runtime), after checking the launch
// configuration and the pointer arguments. Work runs when it is enqueued, in the calling thread, one
// launch at a time: every stream is trivially in order. Stream capture records the work into a graph
// instead. A kernel that breaks a CUDA rule poisons the context as a real fault does: every later call
// returns the same error (sticky). Every entry point reached is recorded (VOXKIT_EMU_CALLS=file);
// an entry point not emulated is a stub that says so on stderr and returns CUDA_ERROR_NOT_SUPPORTED.
#include <cuda.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "cuda_cpu.h"

#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define EMU_VALGRIND 1
#endif

namespace {

// ---- configuration --------------------------------------------------------------------------
constexpr int CC_MAJOR = 8, CC_MINOR = 0;  // an sm_80-class device
constexpr size_t SMEM_DEFAULT = 48 * 1024, SMEM_OPTIN = 163 * 1024;
constexpr size_t REDZONE = 256;  // canary bytes after each allocation (and the alignment slack)
constexpr unsigned char CANARY = 0xCB, UNINIT = 0xFF;

size_t env_size(const char* name, size_t fallback) {
    const char* s = std::getenv(name);
    return s ? std::strtoull(s, nullptr, 10) : fallback;
}
int driver_version() { return (int)env_size("VOXKIT_EMU_DRIVER_VERSION", 12090); }
size_t total_memory() { return env_size("VOXKIT_EMU_MEMORY_MB", 8192) << 20; }
// The newest PTX ISA a driver of this version reads (CUDA 12.x: ISA 8.x).
int max_ptx_isa(int version) {
    const int major = version / 1000, minor = version % 1000 / 10;
    if (major < 12) return 78;
    static const int table[] = {80, 81, 82, 83, 84, 85, 85, 86, 87, 88};  // 12.0 … 12.9
    return minor < 10 ? table[minor] : 88;
}

// ---- bookkeeping ----------------------------------------------------------------------------
std::recursive_mutex g_mu;
#define LOCK() std::lock_guard<std::recursive_mutex> lock_(g_mu)

std::set<std::string>& calls() {
    static auto* s = new std::set<std::string>;  // never destroyed: written out by an atexit handler
    return *s;
}
void write_calls() {
    LOCK();
    const char* path = std::getenv("VOXKIT_EMU_CALLS");
    if (!path) return;
    if (FILE* f = std::fopen(path, "a")) {
        for (const auto& c : calls()) std::fprintf(f, "%s\n", c.c_str());
        std::fclose(f);
    }
}
bool trace_on() {
    static const bool on = std::getenv("VOXKIT_EMU_TRACE") != nullptr;
    return on;
}
void note_call(const char* name) {
    static bool registered = (std::atexit(write_calls), true);
    (void)registered;
    calls().insert(name);
    if (trace_on()) std::fprintf(stderr, "[emugpu] %s\n", name);
}
void say(const std::string& m) { std::fprintf(stderr, "[emugpu] %s\n", m.c_str()); }

CUresult g_sticky = CUDA_SUCCESS;  // a fault poisons the context for the rest of the process
#define ENTER()                                    \
    LOCK();                                        \
    note_call(__func__);                           \
    if (g_sticky != CUDA_SUCCESS) return g_sticky
#define ENTER_ALWAYS() \
    LOCK();            \
    note_call(__func__)
#define CHECK_PTR(p) \
    if (!(p)) return CUDA_ERROR_INVALID_VALUE

bool g_initialised = false;
#define NEED_INIT() \
    if (!g_initialised) return CUDA_ERROR_NOT_INITIALIZED

struct Allocation {
    size_t size;
    void* raw;  // what to free
    bool host;  // pinned host memory (device-accessible)
};
std::map<uintptr_t, Allocation> g_allocs;
size_t g_device_bytes = 0;

const Allocation* find_alloc(uintptr_t p, uintptr_t* base) {
    auto it = g_allocs.upper_bound(p);
    if (it == g_allocs.begin()) return nullptr;
    --it;
    if (p >= it->first + std::max<size_t>(it->second.size, 1)) return nullptr;
    if (base) *base = it->first;
    return &it->second;
}
CUresult check_range(CUdeviceptr p, size_t n, const char* what) {
    if (n == 0) return CUDA_SUCCESS;
    uintptr_t base = 0;
    const Allocation* a = find_alloc(p, &base);
    if (!a || n > a->size - (p - base)) {
        say(std::string(what) + ": range [" + std::to_string(p) + ", +" + std::to_string(n) + ") is not inside one allocation");
        return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}
// Which allocations a kernel wrote past the end of (their canaries changed).
std::string check_canaries() {
    std::string bad;
#if !defined(__SANITIZE_ADDRESS__)
    for (auto& [base, a] : g_allocs) {
        if (a.host) continue;
        const unsigned char* c = reinterpret_cast<const unsigned char*>(base) + a.size;
        for (size_t i = 0; i < REDZONE; ++i)
            if (c[i] != CANARY) {
                bad += "allocation " + std::to_string(base) + " (" + std::to_string(a.size) + " bytes) was written " +
                       std::to_string(i) + " bytes past its end; ";
                std::memset(const_cast<unsigned char*>(c), CANARY, REDZONE);
                break;
            }
    }
#endif
    return bad;
}

// ---- PTX ------------------------------------------------------------------------------------
struct Entry {
    std::string name;
    std::vector<size_t> param_sizes;
    size_t static_smem = 0;  // bytes of its `.shared` variables (static shared memory)
};
struct Module {
    std::vector<std::unique_ptr<Entry>> entries;
};
struct Function {
    Entry* entry;
    const cudacpu::KernelInfo* cpu;
    size_t max_dynamic_smem = SMEM_DEFAULT;  // less the entry's static shared memory (set at load)
    bool unloaded = false;  // its module was unloaded (kept: a graph may still name it)
};

// `.visible .entry name(.param .u64 .ptr .global .align 1 name_param_0, .param .align 4 .b8 p_1[12], …)`
CUresult parse_ptx(const std::string& s, Module& out) {
    static const std::regex version_re(R"(\.version\s+(\d+)\.(\d+))");
    static const std::regex target_re(R"(\.target\s+sm_(\d+))");
    static const std::regex entry_re(R"(\.entry\s+([A-Za-z_$][\w$]*)\s*\(([^)]*)\))");
    static const std::regex param_re(R"(\.param\s+(?:\.align\s+\d+\s+)?\.([busf])(\d+)\s+(?:\.ptr\s+(?:\.\w+\s+)*)?[\w$]+(?:\[(\d+)\])?)");
    std::smatch m;
    if (!std::regex_search(s, m, version_re)) return CUDA_ERROR_INVALID_PTX;
    const int isa = std::stoi(m[1]) * 10 + std::stoi(m[2]);
    if (isa > max_ptx_isa(driver_version())) {
        say("PTX ISA " + m[1].str() + "." + m[2].str() + " is newer than this driver (" + std::to_string(driver_version()) + ") reads");
        return CUDA_ERROR_UNSUPPORTED_PTX_VERSION;
    }
    if (!std::regex_search(s, m, target_re)) return CUDA_ERROR_INVALID_PTX;
    if (std::stoi(m[1]) > CC_MAJOR * 10 + CC_MINOR) {
        say("PTX targets sm_" + m[1].str() + ", newer than the device");
        return CUDA_ERROR_NO_BINARY_FOR_GPU;
    }
    // `.shared .align 4 .b8 name[128];` inside an entry's body (NVRTC demotes a kernel's static
    // __shared__ variables there); `.extern .shared` (the dynamic buffer) is not counted.
    static const std::regex shared_re(R"(\n\s*\.shared\s+(?:\.align\s+(\d+)\s+)?\.[busf](\d+)\s+[\w$]+(?:\[(\d+)\])?\s*;)");
    for (std::sregex_iterator it(s.begin(), s.end(), entry_re), end; it != end; ++it) {
        auto e = std::make_unique<Entry>();
        e->name = (*it)[1];
        {
            const size_t body_at = (size_t)(it->position(0) + it->length(0));
            size_t body_end = s.find(".entry", body_at);
            if (body_end == std::string::npos) body_end = s.size();
            const std::string body = s.substr(body_at, body_end - body_at);
            for (std::sregex_iterator v(body.begin(), body.end(), shared_re); v != end; ++v) {
                const size_t align = (*v)[1].matched ? std::stoul((*v)[1]) : 1;
                const size_t bytes = std::stoul((*v)[2]) / 8 * ((*v)[3].matched ? std::stoul((*v)[3]) : 1);
                e->static_smem = (e->static_smem + align - 1) / align * align + bytes;
            }
        }
        const std::string params = (*it)[2];
        for (std::sregex_iterator p(params.begin(), params.end(), param_re); p != end; ++p) {
            const size_t bits = std::stoul((*p)[2]);
            const size_t count = (*p)[3].matched ? std::stoul((*p)[3]) : 1;
            e->param_sizes.push_back(bits / 8 * count);
        }
        out.entries.push_back(std::move(e));
    }
    return CUDA_SUCCESS;
}

// ---- streams, events, graphs ---------------------------------------------------------------
enum class NodeKind { Kernel, Copy, Memset, Host, Event, Free };
struct Node {
    NodeKind kind;
    const Function* kernel;  // for kernel nodes
    std::function<CUresult()> run;
};
struct Capture;
struct Stream {
    Capture* capture = nullptr;
};
struct Event {
    std::chrono::steady_clock::time_point time;
    bool recorded = false;
    bool timing = true;  // created without CU_EVENT_DISABLE_TIMING
    Capture* captured_in = nullptr;  // recorded during this capture
};
struct Capture {
    std::vector<Node> nodes;
    bool invalidated = false;
    CUstreamCaptureMode mode = CU_STREAM_CAPTURE_MODE_GLOBAL;
};
struct Graph {
    std::vector<Node> nodes;
};
struct GraphExec {
    std::vector<Node> nodes;
};
Stream g_null_stream;
std::set<Stream*> g_streams;
std::set<Event*> g_events;
std::set<Graph*> g_graphs;
std::set<GraphExec*> g_execs;
Stream* stream_of(CUstream s) { return s ? reinterpret_cast<Stream*>(s) : &g_null_stream; }
bool stream_ok(CUstream s) { return !s || g_streams.count(reinterpret_cast<Stream*>(s)); }

CUresult run_node(const Node& n) {
    const CUresult r = n.run();
    if (r != CUDA_SUCCESS && r != CUDA_ERROR_INVALID_VALUE) g_sticky = r;
    return r;
}
// Work on a stream: run it now, or record it when the stream is capturing.
CUresult enqueue(CUstream hs, Node node) {
    if (!stream_ok(hs)) return CUDA_ERROR_INVALID_HANDLE;
    Stream* s = stream_of(hs);
    if (s->capture) {
        s->capture->nodes.push_back(std::move(node));
        return CUDA_SUCCESS;
    }
    return run_node(node);
}
// A call that synchronises or queries a capturing stream invalidates the capture, as on the GPU.
CUresult refuse_if_capturing(CUstream hs, const char* what) {
    Stream* s = stream_of(hs);
    if (!s->capture) return CUDA_SUCCESS;
    say(std::string(what) + " on a capturing stream: the capture is invalidated");
    s->capture->invalidated = true;
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
}
// Whether a capture that forbids unsafe calls (global or thread-local mode, not relaxed) is active:
// then synchronous copies, frees and context synchronisation are refused and invalidate it.
bool any_capturing() {
    bool strict = false;
    for (Stream* s : g_streams)
        if (s->capture && s->capture->mode != CU_STREAM_CAPTURE_MODE_RELAXED) {
            s->capture->invalidated = true;
            strict = true;
        }
    return strict;
}

int g_primary_refs = 0;
int g_context_tag;
CUcontext primary() { return reinterpret_cast<CUcontext>(&g_context_tag); }
thread_local CUcontext t_current = nullptr;
#define NEED_CONTEXT() \
    if (!t_current) return CUDA_ERROR_INVALID_CONTEXT

std::map<uintptr_t, std::unique_ptr<Module>> g_modules;
std::set<Function*> g_functions;
std::vector<std::unique_ptr<Module>> g_unloaded_modules;

CUresult alloc_device(CUdeviceptr* p, size_t n) {
    CHECK_PTR(p);
    if (n == 0) return CUDA_ERROR_INVALID_VALUE;
    if (n > total_memory() - g_device_bytes) return CUDA_ERROR_OUT_OF_MEMORY;
    void* raw = nullptr;
#if defined(__SANITIZE_ADDRESS__)
    if (posix_memalign(&raw, 256, n) != 0) return CUDA_ERROR_OUT_OF_MEMORY;  // ASan guards the exact size
#else
    if (posix_memalign(&raw, 256, n + REDZONE) != 0) return CUDA_ERROR_OUT_OF_MEMORY;
    std::memset(static_cast<unsigned char*>(raw) + n, CANARY, REDZONE);
#endif
    std::memset(raw, UNINIT, n);  // device memory is not zeroed
#ifdef EMU_VALGRIND
    VALGRIND_MAKE_MEM_UNDEFINED(raw, n);
#endif
    *p = reinterpret_cast<CUdeviceptr>(raw);
    g_allocs[*p] = Allocation{n, raw, false};
    g_device_bytes += n;
    return CUDA_SUCCESS;
}
CUresult free_device(CUdeviceptr p) {
    if (p == 0) return CUDA_SUCCESS;
    auto it = g_allocs.find(p);
    if (it == g_allocs.end() || it->second.host) {
        say("free of " + std::to_string(p) + ", which is not the start of a live device allocation");
        return CUDA_ERROR_INVALID_VALUE;
    }
    const std::string bad = check_canaries();
    g_device_bytes -= it->second.size;
    std::free(it->second.raw);
    g_allocs.erase(it);
    if (!bad.empty()) {
        say("memory corruption found at free: " + bad);
        g_sticky = CUDA_ERROR_ILLEGAL_ADDRESS;
        return g_sticky;
    }
    return CUDA_SUCCESS;
}

struct Launch {
    const Function* f;
    dim3 grid, block;
    size_t smem;
    std::vector<std::vector<unsigned char>> args;
};
CUresult run_launch(const Launch& l) {
    const std::string& name = l.f->entry->name;
    if (l.f->unloaded) {
        say(name + ": its module was unloaded");
        return CUDA_ERROR_INVALID_HANDLE;
    }
    // A pointer argument must be null or point into live memory (or just past an allocation's end:
    // an empty view), checked when the kernel runs: a graph may outlive the memory it was captured with.
    for (size_t i = 0; i < l.args.size(); ++i) {
        if (!l.f->cpu->param_is_pointer[i]) continue;
        uint64_t v = 0;
        std::memcpy(&v, l.args[i].data(), std::min<size_t>(8, l.args[i].size()));
        if (v != 0 && !find_alloc(v, nullptr) && !(v > 0 && find_alloc(v - 1, nullptr))) {
            say(name + ": argument " + std::to_string(i) + " is a pointer (" + std::to_string(v) + ") to no live allocation: the kernel would fault");
            return CUDA_ERROR_ILLEGAL_ADDRESS;
        }
    }
    std::vector<void*> ptrs;
    for (auto& a : l.args) ptrs.push_back(const_cast<unsigned char*>(a.data()));
    try {
        l.f->cpu->launch(l.f->entry->name.c_str(), l.grid, l.block, l.smem, cudacpu::Options::from_env(), ptrs.data());
    } catch (const cudacpu::KernelError& e) {
        say(std::string("kernel fault: ") + e.what());  // sticky (run_node)
        return CUDA_ERROR_LAUNCH_FAILED;
    }
    const std::string bad = check_canaries();
    if (!bad.empty()) {
        say("kernel " + l.f->entry->name + " wrote out of bounds: " + bad);
        return CUDA_ERROR_ILLEGAL_ADDRESS;
    }
    return CUDA_SUCCESS;
}

}  // namespace

extern "C" {

// ---- errors -------------------------------------------------------------------------------------
CUresult cuGetErrorName(CUresult e, const char** s) {
    ENTER_ALWAYS();
    CHECK_PTR(s);
    switch (e) {
#define N(x) \
    case x: *s = #x; return CUDA_SUCCESS;
        N(CUDA_SUCCESS) N(CUDA_ERROR_INVALID_VALUE) N(CUDA_ERROR_OUT_OF_MEMORY) N(CUDA_ERROR_NOT_INITIALIZED)
        N(CUDA_ERROR_NO_DEVICE) N(CUDA_ERROR_INVALID_DEVICE) N(CUDA_ERROR_INVALID_IMAGE) N(CUDA_ERROR_INVALID_CONTEXT)
        N(CUDA_ERROR_NO_BINARY_FOR_GPU) N(CUDA_ERROR_INVALID_PTX) N(CUDA_ERROR_UNSUPPORTED_PTX_VERSION) N(CUDA_ERROR_NOT_FOUND)
        N(CUDA_ERROR_NOT_READY) N(CUDA_ERROR_ILLEGAL_ADDRESS) N(CUDA_ERROR_LAUNCH_FAILED) N(CUDA_ERROR_INVALID_HANDLE)
        N(CUDA_ERROR_NOT_SUPPORTED) N(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED) N(CUDA_ERROR_STREAM_CAPTURE_INVALIDATED)
        N(CUDA_ERROR_STREAM_CAPTURE_ISOLATION) N(CUDA_ERROR_ILLEGAL_STATE) N(CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE)
        N(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES) N(CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD) N(CUDA_ERROR_UNKNOWN)
        N(CUDA_ERROR_STREAM_CAPTURE_UNJOINED)
#undef N
        default: *s = nullptr; return CUDA_ERROR_INVALID_VALUE;
    }
}
CUresult cuGetErrorString(CUresult e, const char** s) {
    ENTER_ALWAYS();
    CHECK_PTR(s);
    if (e == CUDA_SUCCESS) { *s = "no error"; return CUDA_SUCCESS; }
    const char* name = nullptr;
    const CUresult r = cuGetErrorName(e, &name);
    *s = name;  // the emulator's messages go to stderr; the string is the code's name
    return r;
}

// ---- init, device, context ------------------------------------------------------------------------
CUresult cuInit(unsigned int flags) {
    ENTER_ALWAYS();
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    g_initialised = true;
    return CUDA_SUCCESS;
}
CUresult cuDriverGetVersion(int* v) {
    ENTER_ALWAYS();
    CHECK_PTR(v);
    *v = driver_version();
    return CUDA_SUCCESS;
}
CUresult cuDeviceGetCount(int* c) {
    ENTER_ALWAYS();
    NEED_INIT();
    CHECK_PTR(c);
    *c = 1;
    return CUDA_SUCCESS;
}
CUresult cuDeviceGet(CUdevice* d, int ordinal) {
    ENTER_ALWAYS();
    NEED_INIT();
    CHECK_PTR(d);
    if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
    *d = 0;
    return CUDA_SUCCESS;
}
CUresult cuDeviceGetName(char* name, int len, CUdevice d) {
    ENTER_ALWAYS();
    NEED_INIT();
    if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    std::snprintf(name, (size_t)len, "voxkit emulated CUDA device (CPU, sm_%d%d)", CC_MAJOR, CC_MINOR);
    return CUDA_SUCCESS;
}
CUresult cuDeviceGetUuid(CUuuid* u, CUdevice d) {
    ENTER_ALWAYS();
    CHECK_PTR(u);
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    std::memcpy(u->bytes, "voxkit-emulated!", 16);
    return CUDA_SUCCESS;
}
CUresult cuDeviceGetUuid_v2(CUuuid* u, CUdevice d) { return cuDeviceGetUuid(u, d); }
CUresult cuDeviceTotalMem_v2(size_t* b, CUdevice d) {
    ENTER_ALWAYS();
    CHECK_PTR(b);
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    *b = total_memory();
    return CUDA_SUCCESS;
}
CUresult cuDeviceGetAttribute(int* v, CUdevice_attribute a, CUdevice d) {
    ENTER_ALWAYS();
    NEED_INIT();
    CHECK_PTR(v);
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    switch (a) {
        case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *v = CC_MAJOR; break;
        case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *v = CC_MINOR; break;
        case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *v = 1024; break;
        case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X: case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y: *v = 1024; break;
        case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z: *v = 64; break;
        case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: *v = 2147483647; break;
        case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y: case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z: *v = 65535; break;
        case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: *v = (int)SMEM_DEFAULT; break;
        case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: *v = (int)SMEM_OPTIN; break;
        case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *v = 4; break;
        case CU_DEVICE_ATTRIBUTE_WARP_SIZE: *v = 32; break;
        case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR: *v = 2048; break;
        case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK: *v = 65536; break;
        case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED: *v = 1; break;
        case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: *v = 1; break;
        case CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS: *v = 1; break;
        case CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY: *v = 65536; break;
        default: *v = 0;
    }
    return CUDA_SUCCESS;
}
CUresult cuDevicePrimaryCtxRetain(CUcontext* c, CUdevice d) {
    ENTER_ALWAYS();
    NEED_INIT();
    CHECK_PTR(c);
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    ++g_primary_refs;
    *c = primary();
    return CUDA_SUCCESS;
}
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) {
    ENTER_ALWAYS();
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    if (g_primary_refs == 0) return CUDA_ERROR_INVALID_CONTEXT;
    --g_primary_refs;
    return CUDA_SUCCESS;
}
CUresult cuCtxSetCurrent(CUcontext c) {
    ENTER_ALWAYS();
    if (c && (c != primary() || g_primary_refs == 0)) return CUDA_ERROR_INVALID_CONTEXT;
    t_current = c;
    return CUDA_SUCCESS;
}
CUresult cuCtxGetCurrent(CUcontext* c) {
    ENTER_ALWAYS();
    CHECK_PTR(c);
    *c = g_primary_refs > 0 ? t_current : nullptr;
    return CUDA_SUCCESS;
}
CUresult cuCtxGetDevice(CUdevice* d) {
    ENTER();
    NEED_CONTEXT();
    CHECK_PTR(d);
    *d = 0;
    return CUDA_SUCCESS;
}
CUresult cuCtxSynchronize(void) {
    ENTER();
    NEED_CONTEXT();
    if (any_capturing()) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    return CUDA_SUCCESS;
}
CUresult cuCtxGetStreamPriorityRange(int* least, int* greatest) {
    ENTER();
    if (least) *least = 0;
    if (greatest) *greatest = -5;
    return CUDA_SUCCESS;
}
CUresult cuCtxGetLimit(size_t* v, CUlimit limit) {
    ENTER();
    CHECK_PTR(v);
    *v = limit == CU_LIMIT_STACK_SIZE ? 1024 : 0;
    return CUDA_SUCCESS;
}
CUresult cuCtxSetLimit(CUlimit, size_t) {
    ENTER();
    return CUDA_SUCCESS;
}

// ---- memory ---------------------------------------------------------------------------------------
CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t n) {
    ENTER();
    NEED_CONTEXT();
    return alloc_device(p, n);
}
CUresult cuMemAllocAsync(CUdeviceptr* p, size_t n, CUstream s) {
    ENTER();
    NEED_CONTEXT();
    if (!stream_ok(s)) return CUDA_ERROR_INVALID_HANDLE;
    if (stream_of(s)->capture) {
        say("cuMemAllocAsync during stream capture (a graph memory node) is not emulated");
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    return alloc_device(p, n);
}
CUresult cuMemFree_v2(CUdeviceptr p) {
    ENTER();
    if (any_capturing()) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    return free_device(p);
}
CUresult cuMemFreeAsync(CUdeviceptr p, CUstream s) {
    ENTER();
    if (!stream_ok(s)) return CUDA_ERROR_INVALID_HANDLE;
    if (stream_of(s)->capture) {
        say("cuMemFreeAsync during stream capture (a graph memory node) is not emulated");
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    return free_device(p);
}
CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total) {
    ENTER();
    NEED_CONTEXT();
    CHECK_PTR(free_bytes);
    CHECK_PTR(total);
    *total = total_memory();
    *free_bytes = total_memory() - g_device_bytes;
    return CUDA_SUCCESS;
}
CUresult cuMemHostAlloc(void** p, size_t n, unsigned int) {
    ENTER();
    NEED_CONTEXT();
    CHECK_PTR(p);
    if (n == 0) return CUDA_ERROR_INVALID_VALUE;
    void* raw = nullptr;
    if (posix_memalign(&raw, 4096, n) != 0) return CUDA_ERROR_OUT_OF_MEMORY;
    g_allocs[reinterpret_cast<uintptr_t>(raw)] = Allocation{n, raw, true};
    *p = raw;
    return CUDA_SUCCESS;
}
CUresult cuMemAllocHost_v2(void** p, size_t n) { return cuMemHostAlloc(p, n, 0); }
CUresult cuMemFreeHost(void* p) {
    ENTER();
    auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
    if (it == g_allocs.end() || !it->second.host) return CUDA_ERROR_INVALID_VALUE;
    std::free(it->second.raw);
    g_allocs.erase(it);
    return CUDA_SUCCESS;
}
CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr* d, void* p, unsigned int) {
    ENTER();
    CHECK_PTR(d);
    const Allocation* a = find_alloc(reinterpret_cast<uintptr_t>(p), nullptr);
    if (!a || !a->host) return CUDA_ERROR_INVALID_VALUE;
    *d = reinterpret_cast<CUdeviceptr>(p);
    return CUDA_SUCCESS;
}

// Checked when enqueued and again when run: a captured graph may outlive the memory it names.
#define COPY_ASYNC(kind, check, body)                               \
    ENTER();                                                        \
    NEED_CONTEXT();                                                 \
    if (CUresult r_ = (check)) return r_;                           \
    return enqueue(s, Node{kind, nullptr, [=] {                     \
                               if (CUresult r_ = (check)) return r_; \
                               body;                                 \
                               return CUDA_SUCCESS;                  \
                           }})
#define COPY_SYNC(check, body)                                      \
    ENTER();                                                        \
    NEED_CONTEXT();                                                 \
    if (any_capturing()) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED; \
    if (CUresult r_ = (check)) return r_;                           \
    body;                                                           \
    return CUDA_SUCCESS

// A copy between the device and pageable host memory cannot be captured into a graph (the driver
// stages pageable memory when the call is made; a graph node would read it at every launch): the
// real driver refuses it and the capture is invalidated. Page-locked memory (cuMemHostAlloc) is
// read and written at each launch.
CUresult refuse_pageable_in_capture(CUstream hs, const void* h, size_t n, const char* what) {
    if (!n || !stream_ok(hs)) return CUDA_SUCCESS;
    Stream* s = stream_of(hs);
    if (!s->capture) return CUDA_SUCCESS;
    const Allocation* a = find_alloc(reinterpret_cast<uintptr_t>(h), nullptr);
    if (a && a->host) return CUDA_SUCCESS;
    say(std::string(what) + ": pageable host memory on a capturing stream: the capture is invalidated");
    s->capture->invalidated = true;
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
}

CUresult first_error(CUresult a, CUresult b) { return a != CUDA_SUCCESS ? a : b; }

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void* h, size_t n, CUstream s) {
    COPY_ASYNC(NodeKind::Copy,
               !h && n ? CUDA_ERROR_INVALID_VALUE
                       : first_error(refuse_pageable_in_capture(s, h, n, __func__), check_range(d, n, __func__)),
               std::memcpy(reinterpret_cast<void*>(d), h, n));
}
CUresult cuMemcpyDtoHAsync_v2(void* h, CUdeviceptr d, size_t n, CUstream s) {
    COPY_ASYNC(NodeKind::Copy,
               !h && n ? CUDA_ERROR_INVALID_VALUE
                       : first_error(refuse_pageable_in_capture(s, h, n, __func__), check_range(d, n, __func__)),
               std::memcpy(h, reinterpret_cast<void*>(d), n));
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr src, size_t n, CUstream s) {
    COPY_ASYNC(NodeKind::Copy, check_range(d, n, __func__) ? CUDA_ERROR_INVALID_VALUE : check_range(src, n, __func__),
               std::memmove(reinterpret_cast<void*>(d), reinterpret_cast<void*>(src), n));
}
CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void* h, size_t n) {
    COPY_SYNC(!h && n ? CUDA_ERROR_INVALID_VALUE : check_range(d, n, __func__), std::memcpy(reinterpret_cast<void*>(d), h, n));
}
CUresult cuMemcpyDtoH_v2(void* h, CUdeviceptr d, size_t n) {
    COPY_SYNC(!h && n ? CUDA_ERROR_INVALID_VALUE : check_range(d, n, __func__), std::memcpy(h, reinterpret_cast<void*>(d), n));
}
CUresult cuMemcpyDtoD_v2(CUdeviceptr d, CUdeviceptr src, size_t n) {
    COPY_SYNC(check_range(d, n, __func__) ? CUDA_ERROR_INVALID_VALUE : check_range(src, n, __func__),
              std::memmove(reinterpret_cast<void*>(d), reinterpret_cast<void*>(src), n));
}
CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, CUstream s) {
    COPY_ASYNC(NodeKind::Memset, check_range(d, n, __func__), std::memset(reinterpret_cast<void*>(d), v, n));
}
CUresult cuMemsetD32Async(CUdeviceptr d, unsigned int v, size_t n, CUstream s) {
    COPY_ASYNC(NodeKind::Memset, n > SIZE_MAX / 4 ? CUDA_ERROR_INVALID_VALUE : check_range(d, n * 4, __func__), for (size_t i = 0; i < n; ++i) reinterpret_cast<unsigned*>(d)[i] = v);
}
CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n) {
    COPY_SYNC(check_range(d, n, __func__), std::memset(reinterpret_cast<void*>(d), v, n));
}
CUresult cuMemsetD32_v2(CUdeviceptr d, unsigned int v, size_t n) {
    COPY_SYNC(n > SIZE_MAX / 4 ? CUDA_ERROR_INVALID_VALUE : check_range(d, n * 4, __func__), for (size_t i = 0; i < n; ++i) reinterpret_cast<unsigned*>(d)[i] = v);
}
CUresult cuPointerGetAttribute(void* data, CUpointer_attribute a, CUdeviceptr p) {
    ENTER();
    CHECK_PTR(data);
    const Allocation* alloc = find_alloc(p, nullptr);
    if (!alloc) return CUDA_ERROR_INVALID_VALUE;
    switch (a) {
        case CU_POINTER_ATTRIBUTE_CONTEXT: *static_cast<CUcontext*>(data) = primary(); return CUDA_SUCCESS;
        case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: *static_cast<int*>(data) = 0; return CUDA_SUCCESS;
        case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
            *static_cast<unsigned*>(data) = alloc->host ? CU_MEMORYTYPE_HOST : CU_MEMORYTYPE_DEVICE;
            return CUDA_SUCCESS;
        default: return CUDA_ERROR_NOT_SUPPORTED;
    }
}

// ---- modules, functions, launches --------------------------------------------------------------
CUresult cuModuleLoadData(CUmodule* m, const void* image) {
    ENTER();
    NEED_CONTEXT();
    CHECK_PTR(m);
    CHECK_PTR(image);
    const char* img = static_cast<const char*>(image);
    // A CUBIN is machine code for a real GPU: refused as a driver refuses a CUBIN of another
    // architecture, so that the caller falls back to the PTX (which is what runs here).
    if (std::memcmp(img, "\x7f" "ELF", 4) == 0) return CUDA_ERROR_NO_BINARY_FOR_GPU;
    auto mod = std::make_unique<Module>();
    if (CUresult r = parse_ptx(img, *mod)) return r;
    *m = reinterpret_cast<CUmodule>(mod.get());
    g_modules[reinterpret_cast<uintptr_t>(mod.get())] = std::move(mod);
    return CUDA_SUCCESS;
}
CUresult cuModuleLoadDataEx(CUmodule* m, const void* image, unsigned int, CUjit_option*, void**) { return cuModuleLoadData(m, image); }
CUresult cuModuleUnload(CUmodule m) {
    ENTER_ALWAYS();
    auto it = g_modules.find(reinterpret_cast<uintptr_t>(m));
    if (it == g_modules.end()) return CUDA_ERROR_INVALID_HANDLE;
    // Its functions (and their entries) stay allocated, marked unloaded: a graph may still name them.
    for (auto f = g_functions.begin(); f != g_functions.end();) {
        bool mine = false;
        for (auto& e : it->second->entries) mine |= (*f)->entry == e.get();
        if (mine) { (*f)->unloaded = true; f = g_functions.erase(f); } else ++f;
    }
    g_unloaded_modules.push_back(std::move(it->second));
    g_modules.erase(it);
    return CUDA_SUCCESS;
}
CUresult cuModuleGetFunction(CUfunction* f, CUmodule hm, const char* name) {
    ENTER();
    CHECK_PTR(f);
    CHECK_PTR(name);
    auto it = g_modules.find(reinterpret_cast<uintptr_t>(hm));
    if (it == g_modules.end()) return CUDA_ERROR_INVALID_HANDLE;
    for (auto& e : it->second->entries) {
        if (e->name != name) continue;
        const cudacpu::KernelInfo* cpu = cudacpu::find_kernel(name);
        if (!cpu) {
            say(std::string("PTX entry ") + name + " has no CPU build in the emulator (is its file in kernels/?)");
            return CUDA_ERROR_NOT_FOUND;
        }
        if (cpu->param_sizes != e->param_sizes) {
            say(std::string(name) + ": the PTX's parameters differ from the CPU build's (stale PTX? run scripts/kernels.sh)");
            return CUDA_ERROR_INVALID_IMAGE;
        }
        auto* fn = new Function{e.get(), cpu};
        // As the driver: without an opt-in, static and dynamic shared memory share 48 KiB.
        fn->max_dynamic_smem = e->static_smem >= SMEM_DEFAULT ? 0 : SMEM_DEFAULT - e->static_smem;
        g_functions.insert(fn);
        *f = reinterpret_cast<CUfunction>(fn);
        return CUDA_SUCCESS;
    }
    return CUDA_ERROR_NOT_FOUND;
}
CUresult cuFuncSetAttribute(CUfunction hf, CUfunction_attribute a, int v) {
    ENTER();
    auto* f = reinterpret_cast<Function*>(hf);
    if (!g_functions.count(f)) return CUDA_ERROR_INVALID_HANDLE;
    if (a == CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) {
        if (v < 0 || (size_t)v + f->entry->static_smem > SMEM_OPTIN) return CUDA_ERROR_INVALID_VALUE;
        f->max_dynamic_smem = (size_t)v;
    }
    return CUDA_SUCCESS;
}
CUresult cuFuncGetAttribute(int* v, CUfunction_attribute a, CUfunction hf) {
    ENTER();
    CHECK_PTR(v);
    auto* f = reinterpret_cast<Function*>(hf);
    if (!g_functions.count(f)) return CUDA_ERROR_INVALID_HANDLE;
    switch (a) {
        case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *v = 1024; break;
        case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: *v = (int)f->max_dynamic_smem; break;
        case CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: *v = (int)f->entry->static_smem; break;
        case CU_FUNC_ATTRIBUTE_PTX_VERSION: case CU_FUNC_ATTRIBUTE_BINARY_VERSION: *v = CC_MAJOR * 10 + CC_MINOR; break;
        default: *v = 0;
    }
    return CUDA_SUCCESS;
}
CUresult cuLaunchKernel(CUfunction hf, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem,
                        CUstream s, void** params, void** extra) {
    ENTER();
    NEED_CONTEXT();
    auto* f = reinterpret_cast<Function*>(hf);
    if (!g_functions.count(f)) return CUDA_ERROR_INVALID_HANDLE;
    const std::string& name = f->entry->name;
    if (extra) {
        say(name + ": kernel arguments through `extra` are not emulated (use kernelParams)");
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    const size_t threads = (size_t)bx * by * bz;
    if (!gx || !gy || !gz || !threads || threads > 1024 || bx > 1024 || by > 1024 || bz > 64 || gy > 65535 || gz > 65535 || gx > 2147483647u) {
        say(name + ": launch of grid (" + std::to_string(gx) + "," + std::to_string(gy) + "," + std::to_string(gz) + ") block (" +
            std::to_string(bx) + "," + std::to_string(by) + "," + std::to_string(bz) + ") is beyond the hardware's limits");
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (smem > f->max_dynamic_smem) {
        say(name + ": " + std::to_string(smem) + " bytes of dynamic shared memory, over the function's limit of " +
            std::to_string(f->max_dynamic_smem) + " (raise it with CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)");
        return CUDA_ERROR_INVALID_VALUE;
    }
    const auto& sizes = f->entry->param_sizes;
    if (!sizes.empty() && !params) return CUDA_ERROR_INVALID_VALUE;
    // Copy the argument values now, as the driver does: later changes on the host do not leak in.
    Launch l{f, dim3(gx, gy, gz), dim3(bx, by, bz), smem, {}};
    for (size_t i = 0; i < sizes.size(); ++i) {
        if (!params[i]) return CUDA_ERROR_INVALID_VALUE;
        auto* p = static_cast<unsigned char*>(params[i]);
        l.args.emplace_back(p, p + sizes[i]);
    }
    return enqueue(s, Node{NodeKind::Kernel, f, [l = std::move(l)] { return run_launch(l); }});
}
CUresult cuLaunchHostFunc(CUstream s, CUhostFn fn, void* data) {
    ENTER();
    CHECK_PTR(fn);
    return enqueue(s, Node{NodeKind::Host, nullptr, [fn, data] { fn(data); return CUDA_SUCCESS; }});
}

// ---- streams and events ---------------------------------------------------------------------------
CUresult cuStreamCreate(CUstream* s, unsigned int) {
    ENTER();
    NEED_CONTEXT();
    CHECK_PTR(s);
    auto* st = new Stream;
    g_streams.insert(st);
    *s = reinterpret_cast<CUstream>(st);
    return CUDA_SUCCESS;
}
CUresult cuStreamCreateWithPriority(CUstream* s, unsigned int flags, int) { return cuStreamCreate(s, flags); }
CUresult cuStreamDestroy_v2(CUstream s) {
    ENTER_ALWAYS();
    auto* st = reinterpret_cast<Stream*>(s);
    if (!s || !g_streams.count(st)) return CUDA_ERROR_INVALID_HANDLE;
    if (st->capture) {
        for (Event* e : g_events)
            if (e->captured_in == st->capture) e->captured_in = nullptr;
        delete st->capture;
    }
    g_streams.erase(st);
    delete st;
    return CUDA_SUCCESS;
}
CUresult cuStreamSynchronize(CUstream s) {
    ENTER();
    if (!stream_ok(s)) return CUDA_ERROR_INVALID_HANDLE;
    return refuse_if_capturing(s, __func__);
}
CUresult cuStreamQuery(CUstream s) {
    ENTER();
    if (!stream_ok(s)) return CUDA_ERROR_INVALID_HANDLE;
    return refuse_if_capturing(s, __func__);
}
CUresult cuStreamWaitEvent(CUstream s, CUevent he, unsigned int) {
    ENTER();
    auto* e = reinterpret_cast<Event*>(he);
    if (!stream_ok(s) || !g_events.count(e)) return CUDA_ERROR_INVALID_HANDLE;
    Stream* st = stream_of(s);
    if (!st->capture && e->captured_in) {
        say("cuStreamWaitEvent: a stream joining an active capture (fork/join capture) is not emulated");
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    if (st->capture && e->captured_in != st->capture) {
        // Joining work from outside the capture: the real driver refuses it.
        say("cuStreamWaitEvent on a capturing stream, for an event not recorded in that capture");
        st->capture->invalidated = true;
        return CUDA_ERROR_STREAM_CAPTURE_ISOLATION;
    }
    return CUDA_SUCCESS;  // work already ran in order
}
CUresult cuEventCreate(CUevent* e, unsigned int flags) {
    ENTER();
    NEED_CONTEXT();
    CHECK_PTR(e);
    auto* ev = new Event;
    ev->timing = !(flags & CU_EVENT_DISABLE_TIMING);
    g_events.insert(ev);
    *e = reinterpret_cast<CUevent>(ev);
    return CUDA_SUCCESS;
}
CUresult cuEventDestroy_v2(CUevent he) {
    ENTER_ALWAYS();
    auto* e = reinterpret_cast<Event*>(he);
    if (!g_events.erase(e)) return CUDA_ERROR_INVALID_HANDLE;
    delete e;
    return CUDA_SUCCESS;
}
CUresult cuEventRecord(CUevent he, CUstream s) {
    ENTER();
    auto* e = reinterpret_cast<Event*>(he);
    if (!g_events.count(e) || !stream_ok(s)) return CUDA_ERROR_INVALID_HANDLE;
    if (Capture* c = stream_of(s)->capture) e->captured_in = c;
    return enqueue(s, Node{NodeKind::Event, nullptr, [e] {
                               if (!g_events.count(e)) return CUDA_SUCCESS;  // destroyed since the capture
                               e->time = std::chrono::steady_clock::now();
                               e->recorded = true;
                               return CUDA_SUCCESS;
                           }});
}
CUresult cuEventRecordWithFlags(CUevent e, CUstream s, unsigned int) { return cuEventRecord(e, s); }
CUresult cuEventSynchronize(CUevent he) {
    ENTER();
    if (!g_events.count(reinterpret_cast<Event*>(he))) return CUDA_ERROR_INVALID_HANDLE;
    return CUDA_SUCCESS;
}
CUresult cuEventQuery(CUevent he) {
    ENTER();
    if (!g_events.count(reinterpret_cast<Event*>(he))) return CUDA_ERROR_INVALID_HANDLE;
    return CUDA_SUCCESS;
}
CUresult cuEventElapsedTime(float* ms, CUevent a, CUevent b) {
    ENTER();
    CHECK_PTR(ms);
    auto *ea = reinterpret_cast<Event*>(a), *eb = reinterpret_cast<Event*>(b);
    if (!g_events.count(ea) || !g_events.count(eb)) return CUDA_ERROR_INVALID_HANDLE;
    if (!ea->recorded || !eb->recorded || !ea->timing || !eb->timing) return CUDA_ERROR_INVALID_HANDLE;
    *ms = std::chrono::duration<float, std::milli>(eb->time - ea->time).count();
    return CUDA_SUCCESS;
}
CUresult cuEventElapsedTime_v2(float* ms, CUevent a, CUevent b) { return cuEventElapsedTime(ms, a, b); }

// ---- stream capture and graphs ---------------------------------------------------------------------
CUresult cuStreamBeginCapture_v2(CUstream s, CUstreamCaptureMode mode) {
    ENTER();
    if (!s) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;  // the legacy NULL stream cannot capture
    if (!stream_ok(s)) return CUDA_ERROR_INVALID_HANDLE;
    Stream* st = stream_of(s);
    if (st->capture) return CUDA_ERROR_ILLEGAL_STATE;
    st->capture = new Capture;
    st->capture->mode = mode;
    return CUDA_SUCCESS;
}
CUresult cuStreamEndCapture(CUstream s, CUgraph* g) {
    ENTER();
    CHECK_PTR(g);
    if (!stream_ok(s)) return CUDA_ERROR_INVALID_HANDLE;
    Stream* st = stream_of(s);
    if (!st->capture) return CUDA_ERROR_ILLEGAL_STATE;
    std::unique_ptr<Capture> c(st->capture);
    st->capture = nullptr;
    for (Event* e : g_events)
        if (e->captured_in == c.get()) e->captured_in = nullptr;
    if (c->invalidated) {
        *g = nullptr;
        return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    }
    auto* graph = new Graph{std::move(c->nodes)};
    g_graphs.insert(graph);
    *g = reinterpret_cast<CUgraph>(graph);
    return CUDA_SUCCESS;
}
CUresult cuStreamIsCapturing(CUstream s, CUstreamCaptureStatus* status) {
    ENTER();
    CHECK_PTR(status);
    if (!stream_ok(s)) return CUDA_ERROR_INVALID_HANDLE;
    Capture* c = stream_of(s)->capture;
    *status = !c ? CU_STREAM_CAPTURE_STATUS_NONE : c->invalidated ? CU_STREAM_CAPTURE_STATUS_INVALIDATED : CU_STREAM_CAPTURE_STATUS_ACTIVE;
    return CUDA_SUCCESS;
}
CUresult cuGraphInstantiateWithFlags(CUgraphExec* e, CUgraph g, unsigned long long) {
    ENTER();
    CHECK_PTR(e);
    auto* graph = reinterpret_cast<Graph*>(g);
    if (!g_graphs.count(graph)) return CUDA_ERROR_INVALID_HANDLE;
    auto* exec = new GraphExec{graph->nodes};
    g_execs.insert(exec);
    *e = reinterpret_cast<CUgraphExec>(exec);
    return CUDA_SUCCESS;
}
CUresult cuGraphUpload(CUgraphExec e, CUstream s) {
    ENTER();
    if (!g_execs.count(reinterpret_cast<GraphExec*>(e)) || !stream_ok(s)) return CUDA_ERROR_INVALID_HANDLE;
    return CUDA_SUCCESS;
}
CUresult cuGraphLaunch(CUgraphExec he, CUstream s) {
    ENTER();
    auto* e = reinterpret_cast<GraphExec*>(he);
    if (!g_execs.count(e) || !stream_ok(s)) return CUDA_ERROR_INVALID_HANDLE;
    if (stream_of(s)->capture) {
        say("launching a graph into a capturing stream (a child graph node) is not emulated");
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    for (const Node& n : e->nodes)
        if (CUresult r = run_node(n)) return r;
    return CUDA_SUCCESS;
}
// Whole-graph update: the new graph must have the same shape (the same kernels in the same order);
// its parameters then replace the old ones.
CUresult cuGraphExecUpdate_v2(CUgraphExec he, CUgraph hg, CUgraphExecUpdateResultInfo* info) {
    ENTER();
    auto* e = reinterpret_cast<GraphExec*>(he);
    auto* g = reinterpret_cast<Graph*>(hg);
    if (!g_execs.count(e) || !g_graphs.count(g)) return CUDA_ERROR_INVALID_HANDLE;
    bool same = e->nodes.size() == g->nodes.size();
    for (size_t i = 0; same && i < g->nodes.size(); ++i)
        same = e->nodes[i].kind == g->nodes[i].kind && e->nodes[i].kernel == g->nodes[i].kernel;
    if (info) {
        std::memset(info, 0, sizeof *info);
        info->result = same ? CU_GRAPH_EXEC_UPDATE_SUCCESS : CU_GRAPH_EXEC_UPDATE_ERROR_TOPOLOGY_CHANGED;
    }
    if (!same) return CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE;
    e->nodes = g->nodes;
    return CUDA_SUCCESS;
}
CUresult cuGraphDestroy(CUgraph g) {
    ENTER_ALWAYS();
    if (!g_graphs.erase(reinterpret_cast<Graph*>(g))) return CUDA_ERROR_INVALID_HANDLE;
    delete reinterpret_cast<Graph*>(g);
    return CUDA_SUCCESS;
}
CUresult cuGraphExecDestroy(CUgraphExec e) {
    ENTER_ALWAYS();
    if (!g_execs.erase(reinterpret_cast<GraphExec*>(e))) return CUDA_ERROR_INVALID_HANDLE;
    delete reinterpret_cast<GraphExec*>(e);
    return CUDA_SUCCESS;
}

// ---- the stubs' common body (driver_stubs.c, generated) -----------------------------------------
CUresult voxkit_emu_unsupported(const char* name) {
    LOCK();
    calls().insert(std::string("UNSUPPORTED ") + name);
    say(std::string(name) + " is not emulated: CUDA_ERROR_NOT_SUPPORTED");
    return CUDA_ERROR_NOT_SUPPORTED;
}

}  // extern "C"
