/*
 * C ABI conformance test for voxkit: checks every documented status code, the last-error
 * convention and "out-params are written only on success" against include/voxkit.h.
 *
 * Build (see scripts/c-abi-check.sh):
 *   cc -std=c99 -Wall -Wextra -Werror -I include tests/c/abi_test.c \
 *      -L target/debug -lvoxkit -Wl,-rpath,$PWD/target/debug -o tests/c/build/abi_test
 *
 * This build has no models: an engine with both model folders NULL works and its submits fail
 * with VOX_ERR_MODEL_NOT_LOADED, so no job ever exists and every job id is unknown.
 */

#include "voxkit.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Tiny check framework                                                                        */
/* ------------------------------------------------------------------------------------------ */

static int g_passed = 0;
static int g_failed = 0;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (cond) {                                                                 \
            g_passed++;                                                             \
        } else {                                                                    \
            g_failed++;                                                             \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
        }                                                                           \
    } while (0)

/* Like CHECK, with a printf-style note on failure. */
#define CHECK_MSG(cond, ...)                                                        \
    do {                                                                            \
        if (cond) {                                                                 \
            g_passed++;                                                             \
        } else {                                                                    \
            g_failed++;                                                             \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                           \
            fputc('\n', stderr);                                                    \
        }                                                                           \
    } while (0)

/* The calling thread's last error message, copied into a static buffer. */
static const char *last_error(void) {
    static char buf[1024];
    buf[0] = '\0';
    vox_last_error(buf, sizeof buf);
    return buf;
}

/*
 * Evaluates `call` (a VoxStatus expression) once, checks it returned `want` (a VOX_ERR_* code)
 * and that vox_last_error then gives a non-empty message.
 */
#define EXPECT_ERR(call, want) expect_err_impl((call), (want), #call, #want, __FILE__, __LINE__)

static void expect_err_impl(VoxStatus got, VoxStatus want, const char *call, const char *want_name,
                            const char *file, int line) {
    if (got == want) {
        g_passed++;
    } else {
        g_failed++;
        fprintf(stderr, "FAIL %s:%d: %s returned %d (%s), expected %s (%d); last error: \"%s\"\n",
                file, line, call, (int)got, vox_status_string(got), want_name, (int)want,
                last_error());
        return;
    }
    {
        size_t need = vox_last_error(NULL, 0);
        const char *msg = last_error();
        if (need > 1 && msg[0] != '\0' && strlen(msg) + 1 == need) {
            g_passed++;
        } else {
            g_failed++;
            fprintf(stderr, "FAIL %s:%d: %s: last error empty or size mismatch (need %zu, \"%s\")\n",
                    file, line, call, need, msg);
        }
    }
}

#define EXPECT_OK(call)                                                             \
    do {                                                                            \
        VoxStatus st_ = (call);                                                     \
        CHECK_MSG(st_ == VOX_OK, "%s returned %d (%s); last error: \"%s\"", #call,  \
                  (int)st_, vox_status_string(st_), last_error());                 \
    } while (0)

#define SENTINEL_JOB ((VoxJobId)UINT64_C(0xDEADBEEFCAFEF00D))
#define SENTINEL_SIZE ((size_t)0xA5A5A5A5u)

static VoxEngine *sentinel_engine(void) {
    return (VoxEngine *)(uintptr_t)0x5EB7;
}

/* ------------------------------------------------------------------------------------------ */
/* Log callback                                                                                */
/* ------------------------------------------------------------------------------------------ */

typedef struct LogCounter {
    int count;       /* messages received */
    int bad_level;   /* messages with a level outside [VOX_LOG_ERROR, max_level] */
    int bad_message; /* NULL or empty messages */
    int max_level;   /* the config's log_level */
} LogCounter;

static void counter_add(int *p) {
#if defined(__GNUC__) || defined(__clang__)
    __atomic_fetch_add(p, 1, __ATOMIC_SEQ_CST);
#else
    (*p)++;
#endif
}

static void log_cb(int32_t level, const char *message, void *user_data) {
    LogCounter *c = (LogCounter *)user_data;
    counter_add(&c->count);
    if (level < VOX_LOG_ERROR || level > c->max_level) counter_add(&c->bad_level);
    if (message == NULL || message[0] == '\0') counter_add(&c->bad_message);
}

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void test_version_and_status_strings(void) {
    const char *v = vox_version();
    VoxStatus s;
    CHECK(v != NULL);
    CHECK(v != NULL && v[0] != '\0');
    CHECK(vox_abi_version() == VOX_ABI_VERSION);

    for (s = VOX_OK; s <= VOX_ERR_INTERNAL; s++) {
        const char *str = vox_status_string(s);
        CHECK_MSG(str != NULL && str[0] != '\0', "vox_status_string(%d)", (int)s);
    }
    {
        const char *unknown = vox_status_string(9999);
        CHECK(unknown != NULL && unknown[0] != '\0');
        unknown = vox_status_string(-1);
        CHECK(unknown != NULL && unknown[0] != '\0');
        unknown = vox_status_string(INT32_MIN);
        CHECK(unknown != NULL);
        unknown = vox_status_string(INT32_MAX);
        CHECK(unknown != NULL);
    }
    /* Distinct codes have distinct descriptions. */
    CHECK(strcmp(vox_status_string(VOX_ERR_NULL_POINTER), vox_status_string(VOX_ERR_UNKNOWN_JOB)) != 0);
}

static void test_last_error(void) {
    char small[4];
    char big[512];
    size_t need, got;

    /* Nothing has failed on this thread yet. */
    CHECK(vox_last_error(NULL, 0) == 1);
    memset(small, 'X', sizeof small);
    CHECK(vox_last_error(small, sizeof small) == 1);
    CHECK(small[0] == '\0');

    /* Make a call fail to get a message. */
    EXPECT_ERR(vox_engine_config_init(NULL), VOX_ERR_NULL_POINTER);

    need = vox_last_error(NULL, 0);
    CHECK(need > 1);

    /* The full message fits into a large buffer and returns the same size. */
    memset(big, 'X', sizeof big);
    got = vox_last_error(big, sizeof big);
    CHECK(got == need);
    CHECK(need <= sizeof big && strlen(big) + 1 == need);

    /* Truncation into a small buffer stays NUL-terminated and still reports the full size. */
    if (need > sizeof small) {
        memset(small, 'X', sizeof small);
        got = vox_last_error(small, sizeof small);
        CHECK(got == need);
        CHECK(small[sizeof small - 1] == '\0');
        CHECK(strlen(small) == sizeof small - 1);
        CHECK(strncmp(small, big, sizeof small - 1) == 0);
    } else {
        CHECK_MSG(0, "message too short to test truncation: \"%s\"", big);
    }

    /* Capacity 1: just the NUL. */
    {
        char one = 'X';
        got = vox_last_error(&one, 1);
        CHECK(got == need);
        CHECK(one == '\0');
    }

    /* NULL buffer with capacity 0 writes nothing and returns the size. */
    CHECK(vox_last_error(NULL, 0) == need);

    /* Successful calls leave the message unchanged. */
    {
        VoxEngineConfig cfg;
        char after[512];
        EXPECT_OK(vox_engine_config_init(&cfg));
        (void)vox_version();
        (void)vox_status_string(VOX_OK);
        vox_last_error(after, sizeof after);
        CHECK(strcmp(after, big) == 0);
    }

    /* Every failing call replaces the message. */
    {
        VoxEngineConfig cfg;
        VoxEngine *eng = NULL;
        char first[512];
        EXPECT_OK(vox_engine_config_init(&cfg));
        cfg.struct_size = 0;
        EXPECT_ERR(vox_engine_create(&cfg, &eng), VOX_ERR_STRUCT_SIZE);
        vox_last_error(first, sizeof first);
        CHECK(strcmp(first, big) != 0);
        CHECK(eng == NULL);
    }
}

static void test_config_and_request_init(void) {
    VoxEngineConfig cfg;
    VoxTtsRequest tts;
    VoxAsrRequest asr;

    EXPECT_ERR(vox_engine_config_init(NULL), VOX_ERR_NULL_POINTER);
    EXPECT_ERR(vox_tts_request_init(NULL), VOX_ERR_NULL_POINTER);
    EXPECT_ERR(vox_asr_request_init(NULL), VOX_ERR_NULL_POINTER);

    memset(&cfg, 0xCD, sizeof cfg);
    EXPECT_OK(vox_engine_config_init(&cfg));
    CHECK(cfg.struct_size == sizeof(VoxEngineConfig));
    CHECK(cfg.device == VOX_DEVICE_AUTO);
    CHECK(cfg.tts_model_dir == NULL);
    CHECK(cfg.asr_model_dir == NULL);
    CHECK(cfg.device_index == 0);
    CHECK(cfg.max_batch == 16);
    CHECK(cfg.memory_budget == 0);
    CHECK(cfg.max_queued_jobs == 1024);
    CHECK(cfg.default_max_new_tokens == 0);
    CHECK(cfg.hard_max_new_tokens == 8192);
    CHECK(cfg.max_wait_ms == 2000);
    CHECK(cfg.cpu_threads == 0);
    CHECK(cfg.log_level == VOX_LOG_WARN);
    CHECK(cfg.log_callback == NULL);
    CHECK(cfg.log_user_data == NULL);

    memset(&tts, 0xCD, sizeof tts);
    EXPECT_OK(vox_tts_request_init(&tts));
    CHECK(tts.struct_size == sizeof(VoxTtsRequest));
    CHECK(tts.priority == 0);
    CHECK(tts.text == NULL);
    CHECK(tts.language == NULL);
    CHECK(tts.speaker == NULL);
    CHECK(tts.instruct == NULL);
    CHECK(tts.max_new_tokens == 0);
    CHECK(tts.greedy == 0);
    CHECK(tts.use_seed == 0);
    CHECK(tts.sample_rate == 0);
    CHECK(tts.denoise == 0);
    CHECK(tts.denoise_strength == 1.0f);
    CHECK(tts.stream == 0);

    memset(&asr, 0xCD, sizeof asr);
    EXPECT_OK(vox_asr_request_init(&asr));
    CHECK(asr.struct_size == sizeof(VoxAsrRequest));
    CHECK(asr.priority == 0);
    CHECK(asr.pcm == NULL);
    CHECK(asr.frames == 0);
    CHECK(asr.language == NULL);
    CHECK(asr.context == NULL);
    CHECK(asr.max_new_tokens == 0);
    CHECK(asr.denoise == 0);
    CHECK(asr.denoise_strength == 1.0f);
}

/* Expects vox_engine_create(cfg) to fail with `want` and leave the out-param untouched. */
#define EXPECT_CREATE_FAILS(cfgp, want)                                             \
    do {                                                                            \
        VoxEngine *eng_ = sentinel_engine();                                        \
        EXPECT_ERR(vox_engine_create((cfgp), &eng_), (want));                       \
        CHECK(eng_ == sentinel_engine());                                           \
        if (eng_ != sentinel_engine() && eng_ != NULL) vox_engine_destroy(eng_);   \
    } while (0)

static void test_engine_create_errors(void) {
    VoxEngineConfig cfg;

    /* NULL config / NULL out. */
    EXPECT_CREATE_FAILS(NULL, VOX_ERR_NULL_POINTER);
    vox_engine_config_init(&cfg);
    EXPECT_ERR(vox_engine_create(&cfg, NULL), VOX_ERR_NULL_POINTER);

    /* struct_size too small. */
    vox_engine_config_init(&cfg);
    cfg.struct_size = 0;
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_STRUCT_SIZE);
    cfg.struct_size = (uint32_t)offsetof(VoxEngineConfig, preload) - 1;
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_STRUCT_SIZE);
    cfg.struct_size = 4;
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_STRUCT_SIZE);

    /* Bad device values. */
    vox_engine_config_init(&cfg);
    cfg.device = 77;
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_INVALID_ARGUMENT);
    cfg.device = -1;
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_INVALID_ARGUMENT);

    /* Bad log levels. */
    vox_engine_config_init(&cfg);
    cfg.log_level = 77;
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_INVALID_ARGUMENT);
    cfg.log_level = -1;
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_INVALID_ARGUMENT);
    cfg.log_level = VOX_LOG_TRACE + 1;
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_INVALID_ARGUMENT);

    /* max_batch 0. */
    vox_engine_config_init(&cfg);
    cfg.max_batch = 0;
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_INVALID_ARGUMENT);

    /* CUDA without a usable device. */
    vox_engine_config_init(&cfg);
    cfg.device = VOX_DEVICE_CUDA;
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_NO_DEVICE);

    /* A model folder that does not exist. */
    vox_engine_config_init(&cfg);
    cfg.tts_model_dir = "/nonexistent/voxkit-abi-test/no-such-tts-model";
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_MODEL_LOAD);
    vox_engine_config_init(&cfg);
    cfg.asr_model_dir = "/nonexistent/voxkit-abi-test/no-such-asr-model";
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_MODEL_LOAD);

    /* Model folder strings that are not UTF-8. */
    vox_engine_config_init(&cfg);
    cfg.tts_model_dir = "\xff\xfe";
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_INVALID_UTF8);
    vox_engine_config_init(&cfg);
    cfg.asr_model_dir = "/tmp/\xc3\x28";
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_INVALID_UTF8);
}

static void test_engine_create_destroy_cycles(void) {
    VoxEngineConfig cfg;
    int i;

    /* A larger struct_size (a newer header's config) is accepted: structs only grow. */
    {
        union {
            VoxEngineConfig c;
            unsigned char raw[sizeof(VoxEngineConfig) + 32];
        } big;
        VoxEngine *eng = NULL;
        memset(&big, 0, sizeof big);
        EXPECT_OK(vox_engine_config_init(&big.c));
        big.c.struct_size = (uint32_t)sizeof big;
        EXPECT_OK(vox_engine_create(&big.c, &eng));
        CHECK(eng != NULL);
        vox_engine_destroy(eng);
    }

    /*
     * A program built against ABI 1 passes the config without `preload`: accepted, and the
     * bytes after its struct (here garbage) are not read: nothing is preloaded.
     */
    {
        union {
            VoxEngineConfig c;
            unsigned char raw[sizeof(VoxEngineConfig)];
        } old;
        VoxEngine *eng = NULL;
        EXPECT_OK(vox_engine_config_init(&old.c));
        memset(old.raw + offsetof(VoxEngineConfig, preload), 0xFF,
               sizeof old.raw - offsetof(VoxEngineConfig, preload));
        old.c.struct_size = (uint32_t)offsetof(VoxEngineConfig, preload);
        EXPECT_OK(vox_engine_create(&old.c, &eng));
        CHECK(eng != NULL);
        vox_engine_destroy(eng);
    }

    /*
     * A program built against ABI 2-4 passes the config up to `preload` (its padding where
     * `reserved` now is): accepted, and the bytes after it (garbage) are not read as
     * `quantization`.
     */
    {
        union {
            VoxEngineConfig c;
            unsigned char raw[sizeof(VoxEngineConfig)];
        } old;
        VoxEngine *eng = NULL;
        EXPECT_OK(vox_engine_config_init(&old.c));
        memset(old.raw + offsetof(VoxEngineConfig, reserved), 0xFF,
               sizeof old.raw - offsetof(VoxEngineConfig, reserved));
        old.c.struct_size = (uint32_t)offsetof(VoxEngineConfig, quantization);
        EXPECT_OK(vox_engine_create(&old.c, &eng));
        CHECK(eng != NULL);
        vox_engine_destroy(eng);
        /* A size between the layouts would cut a field: refused. */
        old.c.struct_size = (uint32_t)offsetof(VoxEngineConfig, quantization) + 2;
        EXPECT_CREATE_FAILS(&old.c, VOX_ERR_STRUCT_SIZE);
    }

    /* Quantization: the default keeps weights as stored; an unknown recipe is an error; a
       recipe on the CPU is accepted (models load on their first job). */
    vox_engine_config_init(&cfg);
    CHECK(cfg.quantization == VOX_QUANT_NONE);
    cfg.quantization = 7;
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_INVALID_ARGUMENT);
    {
        VoxEngine *eng = NULL;
        vox_engine_config_init(&cfg);
        cfg.device = VOX_DEVICE_CPU;
        cfg.quantization = VOX_QUANT_MIXED;
        EXPECT_OK(vox_engine_create(&cfg, &eng));
        vox_engine_destroy(eng);
    }

    /* Unknown preload bits are an error, not ignored. */
    vox_engine_config_init(&cfg);
    cfg.preload = 0x100;
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_INVALID_ARGUMENT);

    /* "" for a model folder means "none", like NULL. */
    {
        VoxEngine *eng = NULL;
        vox_engine_config_init(&cfg);
        cfg.tts_model_dir = "";
        cfg.asr_model_dir = "";
        EXPECT_OK(vox_engine_create(&cfg, &eng));
        CHECK(eng != NULL);
        vox_engine_destroy(eng);
    }

    vox_engine_destroy(NULL); /* no-op */
    CHECK(1);

    for (i = 0; i < 20; i++) {
        VoxEngine *eng = NULL;
        vox_engine_config_init(&cfg);
        cfg.device = (i % 2 == 0) ? VOX_DEVICE_CPU : VOX_DEVICE_AUTO;
        EXPECT_OK(vox_engine_create(&cfg, &eng));
        CHECK(eng != NULL);
        vox_engine_destroy(eng);
    }

    /* Several engines alive at the same time are independent. */
    {
        VoxEngine *a = NULL, *b = NULL;
        vox_engine_config_init(&cfg);
        EXPECT_OK(vox_engine_create(&cfg, &a));
        EXPECT_OK(vox_engine_create(&cfg, &b));
        CHECK(a != NULL && b != NULL && a != b);
        vox_engine_destroy(b);
        vox_engine_destroy(a);
    }
}

/* A destroyed engine is detected without touching its freed memory (valgrind checks the
   "without"): every call on it fails with VOX_ERR_INVALID_ARGUMENT, and a second destroy is a
   no-op. */
static void test_use_after_destroy(void) {
    VoxEngineConfig cfg;
    VoxEngine *eng = NULL;
    VoxJobInfo info;
    VoxEngineStats stats;

    vox_engine_config_init(&cfg);
    cfg.device = VOX_DEVICE_CPU;
    EXPECT_OK(vox_engine_create(&cfg, &eng));
    CHECK(eng != NULL);
    vox_engine_destroy(eng);
    memset(&info, 0, sizeof info);
    info.struct_size = (uint32_t)sizeof info;
    EXPECT_ERR(vox_poll(eng, 1, &info), VOX_ERR_INVALID_ARGUMENT);
    memset(&stats, 0, sizeof stats);
    stats.struct_size = (uint32_t)sizeof stats;
    EXPECT_ERR(vox_engine_stats(eng, &stats), VOX_ERR_INVALID_ARGUMENT);
    EXPECT_ERR(vox_cancel(eng, 1), VOX_ERR_INVALID_ARGUMENT);
    vox_engine_destroy(eng); /* a second destroy: caught, nothing freed twice */
    /* A pointer that never was an engine. */
    EXPECT_ERR(vox_poll(sentinel_engine(), 1, &info), VOX_ERR_INVALID_ARGUMENT);
}

/* Model info and preloading on an engine without models. */
static void test_model_info_and_preload_without_models(void) {
    VoxEngineConfig cfg;
    VoxEngine *eng = NULL;
    VoxModelInfo info;

    vox_engine_config_init(&cfg);
    CHECK(cfg.preload == 0);
    cfg.device = VOX_DEVICE_CPU;
    EXPECT_OK(vox_engine_create(&cfg, &eng));
    memset(&info, 0, sizeof info);
    info.struct_size = (uint32_t)sizeof info;
    EXPECT_ERR(vox_engine_model_info(eng, VOX_KIND_TTS, &info), VOX_ERR_MODEL_NOT_LOADED);
    EXPECT_ERR(vox_engine_model_info(eng, VOX_KIND_ASR, &info), VOX_ERR_MODEL_NOT_LOADED);
    EXPECT_ERR(vox_engine_model_info(eng, 7, &info), VOX_ERR_INVALID_ARGUMENT);
    EXPECT_ERR(vox_engine_model_info(eng, VOX_KIND_TTS, NULL), VOX_ERR_NULL_POINTER);
    info.struct_size = 4;
    EXPECT_ERR(vox_engine_model_info(eng, VOX_KIND_TTS, &info), VOX_ERR_STRUCT_SIZE);
    vox_engine_destroy(eng);

    /* Preloading a model that is not configured fails the create. */
    vox_engine_config_init(&cfg);
    cfg.preload = VOX_MODEL_TTS;
    EXPECT_CREATE_FAILS(&cfg, VOX_ERR_MODEL_NOT_LOADED);
}

static void test_log_callback(void) {
    VoxEngineConfig cfg;
    VoxEngine *eng = NULL;
    LogCounter info_counter = {0, 0, 0, VOX_LOG_INFO};
    LogCounter off_counter = {0, 0, 0, VOX_LOG_OFF};

    vox_engine_config_init(&cfg);
    cfg.log_level = VOX_LOG_INFO;
    cfg.log_callback = log_cb;
    cfg.log_user_data = &info_counter;
    EXPECT_OK(vox_engine_create(&cfg, &eng));
    CHECK(eng != NULL);
    vox_engine_destroy(eng); /* joins the worker: its writes are visible after this */
    CHECK_MSG(info_counter.count >= 1, "log callback got %d messages", info_counter.count);
    CHECK_MSG(info_counter.bad_level == 0, "%d messages above VOX_LOG_INFO or below ERROR",
              info_counter.bad_level);
    CHECK(info_counter.bad_message == 0);

    /* VOX_LOG_OFF: the callback never runs. */
    eng = NULL;
    vox_engine_config_init(&cfg);
    cfg.log_level = VOX_LOG_OFF;
    cfg.log_callback = log_cb;
    cfg.log_user_data = &off_counter;
    EXPECT_OK(vox_engine_create(&cfg, &eng));
    CHECK(eng != NULL);
    vox_engine_destroy(eng);
    CHECK_MSG(off_counter.count == 0, "VOX_LOG_OFF callback got %d messages", off_counter.count);

    /* A verbose level without a callback is fine. */
    eng = NULL;
    vox_engine_config_init(&cfg);
    cfg.log_level = VOX_LOG_TRACE;
    EXPECT_OK(vox_engine_create(&cfg, &eng));
    vox_engine_destroy(eng);
}

static void check_idle_stats(const VoxEngine *eng) {
    VoxEngineStats stats;
    memset(&stats, 0xCD, sizeof stats);
    stats.struct_size = sizeof stats;
    EXPECT_OK(vox_engine_stats(eng, &stats));
    CHECK(stats.struct_size == sizeof(VoxEngineStats));
    CHECK(stats.resident == 0);
    CHECK(stats.jobs_done == 0);
    CHECK(stats.jobs_failed == 0);
    CHECK(stats.jobs_cancelled == 0);
    CHECK(stats.batches == 0);
    CHECK(stats.model_loads == 0);
    CHECK(stats.model_swaps == 0);
    CHECK(stats.queue_depth == 0);
    CHECK(stats.jobs_held == 0);
    CHECK(stats.memory_in_use == 0);
    /* Where inference runs: resolved (never AUTO), named, NUL-terminated. */
    CHECK(stats.device == VOX_DEVICE_CPU || stats.device == VOX_DEVICE_CUDA);
    CHECK(stats.device_name[0] != 0 && memchr(stats.device_name, 0, sizeof stats.device_name) != NULL);
    CHECK(stats.device != VOX_DEVICE_CPU || (stats.device_memory == 0 && strcmp(stats.device_name, "CPU") == 0));
}

static void test_engine_stats(VoxEngine *eng) {
    VoxEngineStats stats, before;

    check_idle_stats(eng);

    /*
     * A caller built against a newer header passes a larger struct: the library fills its own
     * version, writes its own size back and leaves the bytes after it alone.
     */
    {
        union {
            VoxEngineStats s;
            unsigned char raw[sizeof(VoxEngineStats) + 16];
        } big;
        size_t i;
        int tail_ok = 1;
        memset(&big, 0xCD, sizeof big);
        big.s.struct_size = (uint32_t)sizeof big;
        EXPECT_OK(vox_engine_stats(eng, &big.s));
        CHECK(big.s.struct_size == sizeof(VoxEngineStats));
        CHECK(big.s.jobs_done == 0 && big.s.queue_depth == 0);
        for (i = sizeof(VoxEngineStats); i < sizeof big.raw; i++) {
            if (big.raw[i] != 0xCD) tail_ok = 0;
        }
        CHECK(tail_ok);
    }

    /* An ABI-1 program's stats struct (no `audio_bytes`): only its bytes are written. */
    {
        size_t old_size = offsetof(VoxEngineStats, audio_bytes);
        size_t i;
        int tail_ok = 1;
        memset(&stats, 0xCD, sizeof stats);
        stats.struct_size = (uint32_t)old_size;
        EXPECT_OK(vox_engine_stats(eng, &stats));
        CHECK(stats.struct_size == old_size);
        CHECK(stats.jobs_done == 0 && stats.queue_depth == 0);
        for (i = old_size; i < sizeof stats; i++) {
            if (((unsigned char *)&stats)[i] != 0xCD) tail_ok = 0;
        }
        CHECK(tail_ok);
    }

    memset(&stats, 0xCD, sizeof stats);
    stats.struct_size = sizeof stats;
    EXPECT_ERR(vox_engine_stats(NULL, &stats), VOX_ERR_NULL_POINTER);
    EXPECT_ERR(vox_engine_stats(eng, NULL), VOX_ERR_NULL_POINTER);

    memset(&stats, 0xCD, sizeof stats);
    stats.struct_size = 0;
    before = stats;
    EXPECT_ERR(vox_engine_stats(eng, &stats), VOX_ERR_STRUCT_SIZE);
    CHECK(memcmp(&stats, &before, sizeof stats) == 0);

    stats.struct_size = 4;
    before = stats;
    EXPECT_ERR(vox_engine_stats(eng, &stats), VOX_ERR_STRUCT_SIZE);
    CHECK(memcmp(&stats, &before, sizeof stats) == 0);
}

/* Expects a submit to fail with `want`, leaving the job id untouched. */
#define EXPECT_SUBMIT_FAILS(fn, eng, req, want)                                     \
    do {                                                                            \
        VoxJobId job_ = SENTINEL_JOB;                                               \
        EXPECT_ERR(fn((eng), (req), &job_), (want));                                \
        CHECK(job_ == SENTINEL_JOB);                                                \
    } while (0)

static void test_tts_submit(VoxEngine *eng) {
    VoxTtsRequest req;

    /* A valid request: no TTS model configured. */
    vox_tts_request_init(&req);
    req.text = "Hello, world.";
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_MODEL_NOT_LOADED);

    /* The same with every optional field set to something valid. */
    vox_tts_request_init(&req);
    req.text = "Hello again.";
    req.language = "English";
    req.speaker = "Vivian";
    req.instruct = "Speak softly.";
    req.temperature = 0.7f;
    req.top_k = 50;
    req.top_p = 0.9f;
    req.repetition_penalty = 1.05f;
    req.use_seed = 1;
    req.seed = 42;
    req.max_new_tokens = 100;
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_MODEL_NOT_LOADED);

    /* NULL pointers. */
    vox_tts_request_init(&req);
    req.text = "Hello.";
    EXPECT_SUBMIT_FAILS(vox_tts_submit, NULL, &req, VOX_ERR_NULL_POINTER);
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, NULL, VOX_ERR_NULL_POINTER);
    EXPECT_ERR(vox_tts_submit(eng, &req, NULL), VOX_ERR_NULL_POINTER);

    /* A larger struct_size (a newer header's request) is accepted. */
    {
        union {
            VoxTtsRequest r;
            unsigned char raw[sizeof(VoxTtsRequest) + 32];
        } big;
        memset(&big, 0, sizeof big);
        vox_tts_request_init(&big.r);
        big.r.struct_size = (uint32_t)sizeof big;
        big.r.text = "Hello.";
        EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &big.r, VOX_ERR_MODEL_NOT_LOADED);
    }

    /* Wrong struct_size. */
    req.struct_size = 0;
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_STRUCT_SIZE);
    req.struct_size = (uint32_t)sizeof(VoxTtsRequest) - 1;
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_STRUCT_SIZE);

    /* Text: NULL, empty, not UTF-8. */
    vox_tts_request_init(&req);
    req.text = NULL;
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_NULL_POINTER);
    req.text = "";
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);
    req.text = "bad \xff\xfe text";
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_INVALID_UTF8);
    req.text = "\xc3\x28";
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_INVALID_UTF8);

    /* Optional strings that are not UTF-8. */
    vox_tts_request_init(&req);
    req.text = "Hello.";
    req.language = "\xff";
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_INVALID_UTF8);
    vox_tts_request_init(&req);
    req.text = "Hello.";
    req.speaker = "\xfe";
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_INVALID_UTF8);
    vox_tts_request_init(&req);
    req.text = "Hello.";
    req.instruct = "\x80";
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_INVALID_UTF8);

    /* Sampling values out of range. */
    vox_tts_request_init(&req);
    req.text = "Hello.";
    req.temperature = NAN;
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);
    req.temperature = INFINITY;
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);
    req.temperature = -1.0f;
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);

    vox_tts_request_init(&req);
    req.text = "Hello.";
    req.top_p = 1.5f;
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);
    req.top_p = -0.5f;
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);
    req.top_p = NAN;
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);

    vox_tts_request_init(&req);
    req.text = "Hello.";
    req.top_k = -2;
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);

    vox_tts_request_init(&req);
    req.text = "Hello.";
    req.repetition_penalty = NAN;
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);

    vox_tts_request_init(&req);
    req.text = "Hello.";
    req.denoise_strength = 2.0f;
    req.denoise = 1;
    EXPECT_SUBMIT_FAILS(vox_tts_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);

    /* No job was created by any of the failures above. */
    check_idle_stats(eng);
}

static void test_asr_submit(VoxEngine *eng) {
    float pcm[1600];
    float bad[8];
    VoxAsrRequest req;
    size_t i;

    for (i = 0; i < sizeof pcm / sizeof pcm[0]; i++) pcm[i] = (float)((i % 64) - 32) / 64.0f;

    /* A valid request: no ASR model configured. */
    vox_asr_request_init(&req);
    req.pcm = pcm;
    req.frames = sizeof pcm / sizeof pcm[0];
    req.sample_rate = 16000;
    req.channels = 1;
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, &req, VOX_ERR_MODEL_NOT_LOADED);

    /* A frame count no buffer holds: the copy at submit cannot be allocated, and that is
       VOX_ERR_OUT_OF_MEMORY, not an abort (the samples are never read). */
    req.frames = (uint64_t)1 << 40;
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, &req, VOX_ERR_OUT_OF_MEMORY);

    /* Stereo, with language and context. */
    req.frames = sizeof pcm / sizeof pcm[0] / 2;
    req.channels = 2;
    req.sample_rate = 44100;
    req.language = "English";
    req.context = "voxkit";
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, &req, VOX_ERR_MODEL_NOT_LOADED);

    /* NULL pointers. */
    vox_asr_request_init(&req);
    req.pcm = pcm;
    req.frames = 16;
    req.sample_rate = 16000;
    req.channels = 1;
    EXPECT_SUBMIT_FAILS(vox_asr_submit, NULL, &req, VOX_ERR_NULL_POINTER);
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, NULL, VOX_ERR_NULL_POINTER);
    EXPECT_ERR(vox_asr_submit(eng, &req, NULL), VOX_ERR_NULL_POINTER);

    /* Wrong struct_size. */
    req.struct_size = 0;
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, &req, VOX_ERR_STRUCT_SIZE);
    req.struct_size = (uint32_t)sizeof(VoxAsrRequest) - 1;
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, &req, VOX_ERR_STRUCT_SIZE);

    /* Empty audio. */
    vox_asr_request_init(&req);
    req.pcm = pcm;
    req.frames = 0;
    req.sample_rate = 16000;
    req.channels = 1;
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);

    /* NULL pcm with frames > 0. */
    req.pcm = NULL;
    req.frames = 16;
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, &req, VOX_ERR_NULL_POINTER);

    /* NaN / infinite samples. */
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) bad[i] = 0.25f;
    bad[5] = NAN;
    vox_asr_request_init(&req);
    req.pcm = bad;
    req.frames = sizeof bad / sizeof bad[0];
    req.sample_rate = 16000;
    req.channels = 1;
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);
    bad[5] = INFINITY;
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);
    bad[5] = -INFINITY;
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);
    bad[5] = 0.25f;

    /* The last sample of the buffer (frames * channels) is checked too. */
    bad[7] = NAN;
    req.frames = 4;
    req.channels = 2;
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);
    bad[7] = 0.25f;

    /* Zero channels / zero rate. */
    vox_asr_request_init(&req);
    req.pcm = pcm;
    req.frames = 16;
    req.sample_rate = 16000;
    req.channels = 0;
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);
    req.channels = 1;
    req.sample_rate = 0;
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);

    /* Optional strings that are not UTF-8. */
    vox_asr_request_init(&req);
    req.pcm = pcm;
    req.frames = 16;
    req.sample_rate = 16000;
    req.channels = 1;
    req.language = "\xff\xfe";
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, &req, VOX_ERR_INVALID_UTF8);
    req.language = NULL;
    req.context = "\xc3\x28";
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, &req, VOX_ERR_INVALID_UTF8);

    /* Denoise strength out of [0, 1]. */
    vox_asr_request_init(&req);
    req.pcm = pcm;
    req.frames = 16;
    req.sample_rate = 16000;
    req.channels = 1;
    req.denoise = 1;
    req.denoise_strength = -0.5f;
    EXPECT_SUBMIT_FAILS(vox_asr_submit, eng, &req, VOX_ERR_INVALID_ARGUMENT);

    check_idle_stats(eng);
}

static void test_job_functions(VoxEngine *eng) {
    static const VoxJobId ids[] = {0, 12345, SENTINEL_JOB};
    size_t k;

    for (k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        VoxJobId id = ids[k];
        VoxJobInfo info, info_before;
        VoxTimings tim, tim_before;
        float audio[8];
        char text[16];
        size_t n;
        int i;

        /* vox_poll */
        memset(&info, 0xCD, sizeof info);
        info.struct_size = sizeof info;
        info_before = info;
        EXPECT_ERR(vox_poll(eng, id, &info), VOX_ERR_UNKNOWN_JOB);
        CHECK(memcmp(&info, &info_before, sizeof info) == 0);

        /* vox_wait (timeout 0, with and without info) */
        EXPECT_ERR(vox_wait(eng, id, 0, &info), VOX_ERR_UNKNOWN_JOB);
        CHECK(memcmp(&info, &info_before, sizeof info) == 0);
        EXPECT_ERR(vox_wait(eng, id, 0, NULL), VOX_ERR_UNKNOWN_JOB);
        EXPECT_ERR(vox_wait(eng, id, 10, NULL), VOX_ERR_UNKNOWN_JOB);
        /* An unknown id fails at once, also without a time limit. */
        EXPECT_ERR(vox_wait(eng, id, VOX_WAIT_INFINITE, &info), VOX_ERR_UNKNOWN_JOB);
        CHECK(memcmp(&info, &info_before, sizeof info) == 0);

        /* vox_read_audio */
        for (i = 0; i < 8; i++) audio[i] = 7.0f;
        n = SENTINEL_SIZE;
        EXPECT_ERR(vox_read_audio(eng, id, audio, 8, &n), VOX_ERR_UNKNOWN_JOB);
        CHECK(n == SENTINEL_SIZE);
        for (i = 0; i < 8; i++) CHECK(audio[i] == 7.0f);
        EXPECT_ERR(vox_read_audio(eng, id, NULL, 0, &n), VOX_ERR_UNKNOWN_JOB);
        CHECK(n == SENTINEL_SIZE);

        /* vox_get_text, vox_get_language, vox_job_error */
        memset(text, 'Z', sizeof text);
        n = SENTINEL_SIZE;
        EXPECT_ERR(vox_get_text(eng, id, text, sizeof text, &n), VOX_ERR_UNKNOWN_JOB);
        CHECK(n == SENTINEL_SIZE);
        CHECK(text[0] == 'Z' && text[sizeof text - 1] == 'Z');
        EXPECT_ERR(vox_get_text(eng, id, NULL, 0, &n), VOX_ERR_UNKNOWN_JOB);
        CHECK(n == SENTINEL_SIZE);
        EXPECT_ERR(vox_get_text(eng, id, NULL, 0, NULL), VOX_ERR_UNKNOWN_JOB);

        EXPECT_ERR(vox_get_language(eng, id, text, sizeof text, &n), VOX_ERR_UNKNOWN_JOB);
        CHECK(n == SENTINEL_SIZE);
        CHECK(text[0] == 'Z' && text[sizeof text - 1] == 'Z');
        EXPECT_ERR(vox_get_language(eng, id, NULL, 0, &n), VOX_ERR_UNKNOWN_JOB);
        CHECK(n == SENTINEL_SIZE);

        EXPECT_ERR(vox_job_error(eng, id, text, sizeof text, &n), VOX_ERR_UNKNOWN_JOB);
        CHECK(n == SENTINEL_SIZE);
        CHECK(text[0] == 'Z' && text[sizeof text - 1] == 'Z');
        EXPECT_ERR(vox_job_error(eng, id, NULL, 0, &n), VOX_ERR_UNKNOWN_JOB);
        CHECK(n == SENTINEL_SIZE);

        /* vox_get_timings */
        memset(&tim, 0xCD, sizeof tim);
        tim.struct_size = sizeof tim;
        tim_before = tim;
        EXPECT_ERR(vox_get_timings(eng, id, &tim), VOX_ERR_UNKNOWN_JOB);
        CHECK(memcmp(&tim, &tim_before, sizeof tim) == 0);

        /* vox_cancel, vox_release */
        EXPECT_ERR(vox_cancel(eng, id), VOX_ERR_UNKNOWN_JOB);
        EXPECT_ERR(vox_release(eng, id), VOX_ERR_UNKNOWN_JOB);
    }

    /* NULL engine. */
    {
        VoxJobInfo info;
        VoxTimings tim;
        float audio[4];
        char text[8];
        size_t n = SENTINEL_SIZE;
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        memset(&tim, 0, sizeof tim);
        tim.struct_size = sizeof tim;
        EXPECT_ERR(vox_poll(NULL, 1, &info), VOX_ERR_NULL_POINTER);
        EXPECT_ERR(vox_wait(NULL, 1, 0, &info), VOX_ERR_NULL_POINTER);
        EXPECT_ERR(vox_wait(NULL, 1, 0, NULL), VOX_ERR_NULL_POINTER);
        EXPECT_ERR(vox_read_audio(NULL, 1, audio, 4, &n), VOX_ERR_NULL_POINTER);
        EXPECT_ERR(vox_get_text(NULL, 1, text, sizeof text, &n), VOX_ERR_NULL_POINTER);
        EXPECT_ERR(vox_get_language(NULL, 1, text, sizeof text, &n), VOX_ERR_NULL_POINTER);
        EXPECT_ERR(vox_job_error(NULL, 1, text, sizeof text, &n), VOX_ERR_NULL_POINTER);
        EXPECT_ERR(vox_get_timings(NULL, 1, &tim), VOX_ERR_NULL_POINTER);
        EXPECT_ERR(vox_cancel(NULL, 1), VOX_ERR_NULL_POINTER);
        EXPECT_ERR(vox_release(NULL, 1), VOX_ERR_NULL_POINTER);
        CHECK(n == SENTINEL_SIZE);
    }

    /* NULL out pointers (required ones). */
    {
        float audio[4];
        char text[8];
        size_t n = SENTINEL_SIZE;
        EXPECT_ERR(vox_poll(eng, 12345, NULL), VOX_ERR_NULL_POINTER);
        EXPECT_ERR(vox_get_timings(eng, 12345, NULL), VOX_ERR_NULL_POINTER);
        /* written is required */
        EXPECT_ERR(vox_read_audio(eng, 12345, audio, 4, NULL), VOX_ERR_NULL_POINTER);
        EXPECT_ERR(vox_read_audio(eng, 12345, NULL, 0, NULL), VOX_ERR_NULL_POINTER);
        /* dst may be NULL only when capacity is 0 */
        EXPECT_ERR(vox_read_audio(eng, 12345, NULL, 4, &n), VOX_ERR_NULL_POINTER);
        CHECK(n == SENTINEL_SIZE);
        /* The same rule for the text getters: the buffer is checked before the job id. */
        EXPECT_ERR(vox_get_text(eng, 12345, NULL, 8, &n), VOX_ERR_NULL_POINTER);
        CHECK(n == SENTINEL_SIZE);
        EXPECT_ERR(vox_get_language(eng, 12345, NULL, 8, &n), VOX_ERR_NULL_POINTER);
        CHECK(n == SENTINEL_SIZE);
        EXPECT_ERR(vox_job_error(eng, 12345, NULL, 8, &n), VOX_ERR_NULL_POINTER);
        CHECK(n == SENTINEL_SIZE);
        (void)text;
    }

    /* struct_size too small. */
    {
        VoxJobInfo info, before;
        VoxTimings tim, tim_before;

        memset(&info, 0xCD, sizeof info);
        info.struct_size = 0;
        before = info;
        EXPECT_ERR(vox_poll(eng, 12345, &info), VOX_ERR_STRUCT_SIZE);
        CHECK(memcmp(&info, &before, sizeof info) == 0);
        EXPECT_ERR(vox_wait(eng, 12345, 0, &info), VOX_ERR_STRUCT_SIZE);
        CHECK(memcmp(&info, &before, sizeof info) == 0);
        info.struct_size = 4;
        before = info;
        EXPECT_ERR(vox_poll(eng, 12345, &info), VOX_ERR_STRUCT_SIZE);
        CHECK(memcmp(&info, &before, sizeof info) == 0);

        memset(&tim, 0xCD, sizeof tim);
        tim.struct_size = 0;
        tim_before = tim;
        EXPECT_ERR(vox_get_timings(eng, 12345, &tim), VOX_ERR_STRUCT_SIZE);
        CHECK(memcmp(&tim, &tim_before, sizeof tim) == 0);
    }

    /* Still idle after all of that. */
    check_idle_stats(eng);
}

int main(void) {
    VoxEngineConfig cfg;
    VoxEngine *eng = NULL;

    /* Must run first: it checks vox_last_error before anything failed on this thread. */
    test_last_error();

    test_version_and_status_strings();
    test_config_and_request_init();
    test_engine_create_errors();
    test_engine_create_destroy_cycles();
    test_use_after_destroy();
    test_model_info_and_preload_without_models();
    test_log_callback();

    /* A working engine with no models. */
    vox_engine_config_init(&cfg);
    cfg.device = VOX_DEVICE_CPU;
    EXPECT_OK(vox_engine_create(&cfg, &eng));
    CHECK(eng != NULL);
    if (eng != NULL) {
        test_engine_stats(eng);
        test_tts_submit(eng);
        test_asr_submit(eng);
        test_job_functions(eng);
        vox_engine_destroy(eng);
    }

    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
