// The emulated device's scheduler: CUDA threads as ucontext fibers, rendezvous checked against the
// CUDA rules. See cuda_cpu.h for what it reports.
#include "cuda_cpu.h"

#include <setjmp.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <thread>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define CUDACPU_ASAN 1
#endif
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define CUDACPU_VALGRIND 1
#endif

// The static shared memory of every kernel linked in (weak: a program may have none).
extern "C" {
extern unsigned char __start_cudacpu_shared[] __attribute__((weak));
extern unsigned char __stop_cudacpu_shared[] __attribute__((weak));
}

namespace cudacpu {

ThreadView* g_view = nullptr;

Options Options::from_env() {
    Options o;
    if (const char* s = std::getenv("CUDACPU_ORDER")) {
        const std::string v = s;
        if (v == "rev") o.order = Order::Reverse;
        else if (v == "rand") o.order = Order::Random;
        else o.order = Order::Forward;
    }
    if (const char* s = std::getenv("CUDACPU_SEED")) o.seed = std::strtoull(s, nullptr, 10);
    return o;
}

namespace {

constexpr unsigned POISON = 0xff;

enum class State { Ready, AtBarrier, InCollective, Exited };

// One CUDA thread of the running block.
struct Fiber {
    State state = State::Ready;
    ThreadView view;
    unsigned linear = 0;
    Where at{"", 0};
    // the pending collective
    Collective op = Collective::SyncWarp;
    unsigned mask = 0;
    uint64_t value = 0;
    ShuffleMode mode = ShuffleMode::Idx;
    int arg = 0, width = 32;
    uint64_t result = 0;
};

// A fiber's stack, and the execution context living on it. The context outlives its block: after
// a thread exits, its fiber waits in fiber_main's loop and runs the next block's thread with the
// same index (no new context per thread per block). Switches use _setjmp/_longjmp: swapcontext
// saves and restores the signal mask, two system calls a switch, and a fiber needs only its
// registers. (The AddressSanitizer build keeps swapcontext and a fresh context per thread.)
struct Stack {
    unsigned char* base = nullptr;  // guard page first, then usable
    size_t size = 0;               // usable bytes
    ucontext_t start;               // fiber_main on this stack
    jmp_buf resume;                 // where the fiber yielded
    bool resumable = false;         // `resume` is valid: the fiber waits at a rendezvous or at its loop's end
    std::thread::id owner;          // the OS thread it last ran on (never resumed from another)
};

size_t stack_bytes() {
    static const size_t bytes = [] {
        size_t kib = 256;  // CUDA allows up to 512 KiB of local memory a thread; raise with CUDACPU_STACK_KIB
#ifdef CUDACPU_ASAN
        // ASan's redzones make frames larger, but its swapcontext clears the shadow of the whole
        // target stack at every switch: 512 KiB made the ASan runs of tests/gpu_*.rs 12x slower
        // than 128 KiB (370 s against 32 s), which they all fit in. An overflow hits the guard page.
        kib = 128;
#endif
        if (const char* s = std::getenv("CUDACPU_STACK_KIB")) kib = std::max<size_t>(16, std::strtoull(s, nullptr, 10));
        return kib * 1024;
    }();
    return bytes;
}

// All state of the block being run. Launches are serialised (one block at a time in the process:
// the static shared memory section is global).
struct Run {
    const char* kernel = "";
    dim3 grid, block;
    uint3 bid{};
    std::vector<Fiber> fibers;
    std::vector<Stack> stacks;
    std::vector<unsigned char> dynamic_smem;
    ucontext_t scheduler;
    jmp_buf scheduler_jb;
    size_t current_index = 0;
    Fiber* current = nullptr;
    std::string error;
    void (*thunk)(void*) = nullptr;
    void* env = nullptr;
#ifdef CUDACPU_ASAN
    void* scheduler_fake_stack = nullptr;
    const void* scheduler_stack_bottom = nullptr;
    size_t scheduler_stack_size = 0;
#endif
};
Run g_run;
std::mutex g_launch_mutex;

std::string dims(uint3 v) { return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")"; }
std::string dims(dim3 v) { return dims(uint3{v.x, v.y, v.z}); }
std::string at_str(Where w) { return std::string(w.file) + ":" + std::to_string(w.line); }

Stack make_stack() {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t usable = (stack_bytes() + page - 1) / page * page;
    void* m = mmap(nullptr, usable + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    mprotect(m, page, PROT_NONE);  // a fiber overflowing its stack faults instead of corrupting memory
    return Stack{static_cast<unsigned char*>(m) + page, usable};
}

// Switches from the running fiber to the scheduler. `exiting`: the fiber's thread has finished
// (it will run the next block's thread when resumed) or failed (it is abandoned).
void to_scheduler(bool exiting, bool abandon = false) {
#ifdef CUDACPU_ASAN
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(exiting ? nullptr : &fake, g_run.scheduler_stack_bottom, g_run.scheduler_stack_size);
    swapcontext(&g_run.stacks[g_run.current_index].start, &g_run.scheduler);
    __sanitizer_finish_switch_fiber(fake, &g_run.scheduler_stack_bottom, &g_run.scheduler_stack_size);
#else
    (void)exiting;
    Stack& st = g_run.stacks[g_run.current_index];
    if (abandon) {
        st.resumable = false;
        _longjmp(g_run.scheduler_jb, 1);
    }
    if (_setjmp(st.resume) == 0) {
        st.resumable = true;
        _longjmp(g_run.scheduler_jb, 1);
    }
#endif
}

void fiber_main();

// Prepares stack k's context to start fiber_main (when it cannot be resumed).
void prepare(size_t k) {
    static ucontext_t model = [] {
        ucontext_t c;
        getcontext(&c);
        return c;
    }();
    Stack& st = g_run.stacks[k];
    st.start = model;
    st.start.uc_stack.ss_sp = st.base;
    st.start.uc_stack.ss_size = st.size;
    st.start.uc_link = nullptr;
    makecontext(&st.start, fiber_main, 0);
}

// Switches from the scheduler to fiber k.
void to_fiber(size_t k) {
    g_run.current = &g_run.fibers[k];
    g_run.current_index = k;
    g_view = &g_run.current->view;
    Stack& st = g_run.stacks[k];
#ifdef CUDACPU_ASAN
    __sanitizer_start_switch_fiber(&g_run.scheduler_fake_stack, st.base, st.size);
    swapcontext(&g_run.scheduler, &st.start);
    __sanitizer_finish_switch_fiber(g_run.scheduler_fake_stack, nullptr, nullptr);
#else
    if (_setjmp(g_run.scheduler_jb) == 0) {
        if (st.resumable && st.owner == std::this_thread::get_id()) _longjmp(st.resume, 1);
        st.owner = std::this_thread::get_id();
        st.resumable = false;
        prepare(k);
        setcontext(&st.start);
    }
#endif
}

[[noreturn]] void fail_in_fiber(const std::string& message) {
    g_run.error = message;
    to_scheduler(true, true);
    std::abort();  // never resumed
}

void fiber_main() {
    for (;;) {
#ifdef CUDACPU_ASAN
        __sanitizer_finish_switch_fiber(nullptr, &g_run.scheduler_stack_bottom, &g_run.scheduler_stack_size);
#endif
        g_run.thunk(g_run.env);
        g_run.current->state = State::Exited;
        to_scheduler(true);
#ifdef CUDACPU_ASAN
        std::abort();  // the ASan build starts a fresh context per thread
#endif
    }
}

std::string thread_name(const Fiber& f) { return "thread " + dims(f.view.thread_idx); }

const char* op_name(Collective op) {
    switch (op) {
        case Collective::Shuffle: return "__shfl_*_sync";
        case Collective::Ballot: return "__ballot/any/all_sync";
        case Collective::SyncWarp: return "__syncwarp";
        case Collective::ReduceAdd: return "__reduce_add_sync";
        case Collective::ReduceMin: return "__reduce_min_sync";
        case Collective::ReduceMax: return "__reduce_max_sync";
        case Collective::ReduceAnd: return "__reduce_and_sync";
        case Collective::ReduceOr: return "__reduce_or_sync";
        case Collective::ReduceXor: return "__reduce_xor_sync";
    }
    return "?";
}

// Completes every warp collective whose named lanes have all arrived. Returns whether any did;
// sets g_run.error on a broken rule.
bool resolve_collectives() {
    auto& fs = g_run.fibers;
    const size_t n = fs.size();
    bool progress = false;
    for (size_t w0 = 0; w0 < n; w0 += 32) {
        const size_t lanes_here = std::min<size_t>(32, n - w0);
        for (size_t l0 = 0; l0 < lanes_here; ++l0) {
            Fiber& first = fs[w0 + l0];
            if (first.state != State::InCollective) continue;
            const unsigned mask = first.mask;
            bool all_arrived = true;
            for (unsigned l = 0; l < 32; ++l) {
                if (!(mask >> l & 1u)) continue;
                if (l >= lanes_here) {
                    g_run.error = thread_name(first) + ": " + op_name(first.op) + " at " + at_str(first.at) + " names lane " +
                                  std::to_string(l) + ", which does not exist in this block (mask " + std::to_string(mask) + ")";
                    return false;
                }
                Fiber& o = fs[w0 + l];
                if (o.state == State::Exited) {
                    g_run.error = thread_name(first) + ": " + op_name(first.op) + " at " + at_str(first.at) + " names lane " +
                                  std::to_string(l) + ", which has exited";
                    return false;
                }
                // A lane in another collective (or none yet) has not arrived: it may finish that one
                // first (independent thread scheduling); if it never comes, the deadlock check reports it.
                if (o.state != State::InCollective || o.op != first.op || o.mask != mask) { all_arrived = false; continue; }
                if (first.op == Collective::Shuffle && o.width != first.width) {
                    g_run.error = thread_name(first) + " at " + at_str(first.at) + " and " + thread_name(o) + " at " + at_str(o.at) +
                                  " shuffle with different widths";
                    return false;
                }
            }
            if (!all_arrived) continue;
            // Everyone named is here: compute each lane's result.
            uint64_t acc = 0;
            bool have = false;
            const bool is_signed = first.arg != 0;
            for (unsigned l = 0; l < 32; ++l) {
                if (!(mask >> l & 1u)) continue;
                const uint64_t v = fs[w0 + l].value;
                switch (first.op) {
                    case Collective::Ballot: acc |= (uint64_t)(v != 0) << l; break;
                    case Collective::ReduceAdd: acc = (uint32_t)(acc + v); break;
                    case Collective::ReduceMin:
                    case Collective::ReduceMax: {
                        const bool less = is_signed ? (int32_t)v < (int32_t)acc : (uint32_t)v < (uint32_t)acc;
                        if (!have || (first.op == Collective::ReduceMin ? less : (!less && v != acc))) acc = v;
                        break;
                    }
                    case Collective::ReduceAnd: acc = have ? (acc & v) : v; break;
                    case Collective::ReduceOr: acc |= v; break;
                    case Collective::ReduceXor: acc ^= v; break;
                    default: break;
                }
                have = true;
            }
            for (unsigned l = 0; l < 32; ++l) {
                if (!(mask >> l & 1u)) continue;
                Fiber& me = fs[w0 + l];
                if (me.op == Collective::Shuffle) {
                    // PTX shfl.sync: b is taken mod 32; lanes are absolute; a segment of width w
                    // spans [seg, seg | (w − 1)]; bfly may read an earlier segment.
                    const int w = me.width, a = me.arg & 31, lane = (int)l, seg = lane & ~(w - 1), max_lane = seg | (w - 1);
                    int j = lane;
                    bool in_range = true;
                    switch (me.mode) {
                        case ShuffleMode::Idx: j = seg | (a & (w - 1)); break;
                        case ShuffleMode::Up: j = lane - a; in_range = j >= seg; break;
                        case ShuffleMode::Down: j = lane + a; in_range = j <= max_lane; break;
                        case ShuffleMode::Xor: j = lane ^ a; in_range = j <= max_lane; break;
                    }
                    const unsigned src = in_range ? (unsigned)j : l;  // out of range: its own value
                    if (!(mask >> src & 1u)) {
                        g_run.error = thread_name(me) + ": shuffle at " + at_str(me.at) + " reads lane " + std::to_string(src) +
                                      ", which is not in the mask " + std::to_string(mask) + " (undefined on the GPU)";
                        return false;
                    }
                    me.result = fs[w0 + src].value;
                } else {
                    me.result = acc;
                }
                me.state = State::Ready;
            }
            progress = true;
        }
    }
    return progress;
}

void poison(unsigned char* p, size_t n) {
    if (!p || n == 0) return;
    std::memset(p, POISON, n);
#ifdef CUDACPU_VALGRIND
    VALGRIND_MAKE_MEM_UNDEFINED(p, n);
#endif
}

void run_block(uint3 bid, const Options& options, std::mt19937_64& rng) {
    Run& r = g_run;
    r.bid = bid;
    r.error.clear();
    poison(__start_cudacpu_shared, (size_t)(__stop_cudacpu_shared - __start_cudacpu_shared));
    poison(r.dynamic_smem.data(), r.dynamic_smem.size());
    const size_t n = (size_t)r.block.x * r.block.y * r.block.z;
    r.fibers.assign(n, Fiber{});
    while (r.stacks.size() < n) r.stacks.push_back(make_stack());
    for (size_t i = 0; i < n; ++i) {
        Fiber& f = r.fibers[i];
        f.linear = (unsigned)i;
        f.view = ThreadView{uint3{(unsigned)(i % r.block.x), (unsigned)(i / r.block.x % r.block.y), (unsigned)(i / ((size_t)r.block.x * r.block.y))},
                            bid, r.block, r.grid};
#ifdef CUDACPU_ASAN
        prepare(i);
#endif
    }
    std::vector<size_t> order(n);
    const std::string where = "kernel " + std::string(r.kernel) + " block " + dims(bid) + ": ";
    for (;;) {
        for (size_t i = 0; i < n; ++i) order[i] = options.order == Order::Reverse ? n - 1 - i : i;
        if (options.order == Order::Random) std::shuffle(order.begin(), order.end(), rng);
        bool ran = false;
        for (size_t k : order) {
            if (r.fibers[k].state != State::Ready) continue;
            to_fiber(k);
            g_view = nullptr;
            ran = true;
            if (!r.error.empty()) throw KernelError(where + r.error);
        }
        if (resolve_collectives()) continue;
        if (!r.error.empty()) throw KernelError(where + r.error);
        size_t exited = 0, at_barrier = 0, in_collective = 0;
        const Fiber* barrier_thread = nullptr;
        const Fiber* collective_thread = nullptr;
        const Fiber* exited_thread = nullptr;
        for (const Fiber& f : r.fibers) {
            if (f.state == State::Exited) { ++exited; exited_thread = &f; }
            if (f.state == State::AtBarrier) { ++at_barrier; barrier_thread = &f; }
            if (f.state == State::InCollective) { ++in_collective; collective_thread = &f; }
        }
        if (exited == n) return;
        if (at_barrier > 0 && exited > 0)
            throw KernelError(where + "__syncthreads at " + at_str(barrier_thread->at) + " reached by " + std::to_string(at_barrier) +
                              " threads while " + std::to_string(exited) + " have exited (e.g. " + thread_name(*exited_thread) +
                              "): a barrier in divergent code");
        if (at_barrier == n) {
            for (Fiber& f : r.fibers) f.state = State::Ready;
            continue;
        }
        if (!ran) {
            std::string msg = where + "deadlock: " + std::to_string(at_barrier) + " threads at __syncthreads";
            if (barrier_thread) msg += " (e.g. " + thread_name(*barrier_thread) + " at " + at_str(barrier_thread->at) + ")";
            msg += ", " + std::to_string(in_collective) + " in warp collectives";
            if (in_collective > 0) msg += " (waiting for lanes that are elsewhere: exited, at a barrier, or in a different collective or mask)";
            if (collective_thread)
                msg += " (e.g. " + thread_name(*collective_thread) + " in " + op_name(collective_thread->op) + " at " + at_str(collective_thread->at) + ")";
            throw KernelError(msg);
        }
    }
}

}  // namespace

void barrier(Where at) {
    Fiber* me = g_run.current;
    me->state = State::AtBarrier;
    me->at = at;
    to_scheduler(false);  // resumed by to_fiber, which restores g_view
}

uint64_t warp_collective(Collective op, unsigned mask, uint64_t value, ShuffleMode mode, int arg, int width, Where at) {
    Fiber* me = g_run.current;
    const unsigned lane = me->linear & 31u;
    if (!(mask >> lane & 1u))
        fail_in_fiber(thread_name(*me) + ": " + op_name(op) + " at " + at_str(at) + " is called by lane " + std::to_string(lane) +
                      ", which is not in its own mask " + std::to_string(mask));
    if (op == Collective::Shuffle && (width < 1 || width > 32 || (width & (width - 1)) != 0))
        fail_in_fiber(thread_name(*me) + ": shuffle at " + at_str(at) + " with width " + std::to_string(width) + " (must be a power of 2 ≤ 32)");
    me->state = State::InCollective;
    me->op = op;
    me->mask = mask;
    me->value = value;
    me->mode = mode;
    me->arg = arg;
    me->width = width;
    me->at = at;
    to_scheduler(false);  // resumed by to_fiber, which restores g_view
    return me->result;
}

namespace {
std::vector<KernelInfo>& registry() {
    static std::vector<KernelInfo> kernels;
    return kernels;
}
}  // namespace

void register_kernel(KernelInfo info) {
    if (find_kernel(info.name)) {
        std::fprintf(stderr, "[emugpu] kernel %s is defined twice\n", info.name.c_str());
        std::abort();
    }
    registry().push_back(std::move(info));
}

const KernelInfo* find_kernel(const std::string& name) {
    for (const KernelInfo& k : registry())
        if (k.name == name) return &k;
    return nullptr;
}

std::vector<std::string> kernel_names() {
    std::vector<std::string> names;
    for (const KernelInfo& k : registry()) names.push_back(k.name);
    return names;
}

unsigned active_lanes() {
    const size_t w0 = g_run.current->linear & ~31u, n = g_run.fibers.size();
    unsigned mask = 0;
    for (size_t l = 0; l < 32 && w0 + l < n; ++l)
        if (g_run.fibers[w0 + l].state != State::Exited) mask |= 1u << l;
    return mask;
}

unsigned char* dynamic_shared() { return g_run.dynamic_smem.empty() ? nullptr : g_run.dynamic_smem.data(); }

void launch(const char* name, dim3 grid, dim3 block, size_t dynamic_smem, const Options& options, void (*thunk)(void*), void* env) {
    const size_t threads = (size_t)block.x * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || threads == 0)
        throw KernelError(std::string("kernel ") + name + ": empty grid " + dims(grid) + " or block " + dims(block));
    if (threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64)
        throw KernelError(std::string("kernel ") + name + ": block " + dims(block) + " exceeds the hardware's limits (1024 threads; 1024, 1024, 64)");
    if (grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
        throw KernelError(std::string("kernel ") + name + ": grid " + dims(grid) + " exceeds the hardware's limits (2^31−1, 65535, 65535)");
    std::lock_guard<std::mutex> lock(g_launch_mutex);
    Run& r = g_run;
    r.kernel = name;
    r.grid = grid;
    r.block = block;
    r.thunk = thunk;
    r.env = env;
    r.dynamic_smem.assign(dynamic_smem, 0);
    std::mt19937_64 rng(options.seed);
    try {
        for (unsigned z = 0; z < grid.z; ++z)
            for (unsigned y = 0; y < grid.y; ++y)
                for (unsigned x = 0; x < grid.x; ++x) run_block(uint3{x, y, z}, options, rng);
    } catch (...) {
        // Fibers stopped mid-kernel must start afresh next time.
        for (Stack& st : r.stacks) st.resumable = false;
        throw;
    }
}

}  // namespace cudacpu
