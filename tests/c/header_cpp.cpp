// Checks that include/voxkit.h is usable from C++: it compiles warning-free, its functions have C
// linkage (this file links against the cdylib) and its declarations have the expected types.
//
//   g++ -std=c++17 -Wall -Wextra -Werror -I include tests/c/header_cpp.cpp
//       -L target/debug -lvoxkit -Wl,-rpath,$PWD/target/debug -o tests/c/build/header_cpp

#include "voxkit.h"
#include "voxkit.h"  // include guard

#include <cstddef>
#include <cstdint>
#include <type_traits>

static_assert(VOX_ABI_VERSION >= 1, "VOX_ABI_VERSION");
static_assert(VOX_OK == 0, "VOX_OK is 0");
static_assert(static_cast<std::uint32_t>(VOX_WAIT_INFINITE) == UINT32_MAX, "VOX_WAIT_INFINITE");
static_assert(std::is_same<VoxStatus, std::int32_t>::value, "VoxStatus is int32_t");
static_assert(std::is_same<VoxJobId, std::uint64_t>::value, "VoxJobId is uint64_t");
static_assert(std::is_standard_layout<VoxJobInfo>::value, "VoxJobInfo is standard layout");
static_assert(std::is_trivially_copyable<VoxEngineConfig>::value, "VoxEngineConfig is POD-like");
static_assert(offsetof(VoxJobInfo, struct_size) == 0, "struct_size comes first");
static_assert(offsetof(VoxEngineConfig, struct_size) == 0, "struct_size comes first");
static_assert(offsetof(VoxTtsRequest, struct_size) == 0, "struct_size comes first");
static_assert(offsetof(VoxAsrRequest, struct_size) == 0, "struct_size comes first");
static_assert(offsetof(VoxTimings, struct_size) == 0, "struct_size comes first");
static_assert(offsetof(VoxEngineStats, struct_size) == 0, "struct_size comes first");

using PollFn = VoxStatus (*)(const VoxEngine *, VoxJobId, VoxJobInfo *);
static_assert(std::is_same<decltype(&vox_poll), PollFn>::value, "vox_poll signature");
static_assert(std::is_same<decltype(&vox_last_error), std::size_t (*)(char *, std::size_t)>::value,
              "vox_last_error signature");

namespace {

void log_sink(std::int32_t level, const char *message, void *user_data) noexcept {
    (void)level;
    (void)message;
    (void)user_data;
}

}  // namespace

int main() {
    PollFn poll = &vox_poll;
    VoxStatus (*wait)(const VoxEngine *, VoxJobId, std::uint32_t, VoxJobInfo *) = &vox_wait;

    VoxJobInfo info{};
    info.struct_size = sizeof info;

    VoxEngineConfig config{};
    VoxLogCallback cb = &log_sink;
    config.log_callback = cb;

    VoxTimings timings{};
    timings.struct_size = sizeof timings;

    const bool ok = poll != nullptr && wait != nullptr && info.struct_size == sizeof(VoxJobInfo) &&
                    config.log_callback != nullptr && timings.struct_size == sizeof(VoxTimings) &&
                    vox_abi_version() == VOX_ABI_VERSION;
    return ok ? 0 : 1;
}
