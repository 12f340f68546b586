/*
 * The C-side hardening cases that need a checkpoint (scripts/c-abi-check.sh writes them with
 * `voxkit make-checkpoint --preset tiny-customvoice` and tests/c/prepare_checkpoints.py):
 *
 *   checkpoint_test TINY_DIR HUGE_DIR NAN_DIR
 *
 * - a config claiming 1e9 layers: an error at load, never an abort of this process;
 * - NaN weights: the job fails with VOX_ERR_INFERENCE and hands out no NaN sample;
 * - an unknown speaker or language fails at submit, naming the known ones; NULL speaker works;
 * - an audio ring (ABI 6) gives every sample of its job and says when it ended; one left open
 *   while the engine is destroyed stays readable, ends, and closes once;
 * - destroying an engine while jobs run returns quickly.
 */
#define _POSIX_C_SOURCE 199309L

#include "voxkit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int g_passed = 0;
static int g_failed = 0;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (cond) {                                                                 \
            g_passed++;                                                             \
        } else {                                                                    \
            g_failed++;                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                           \
    } while (0)

static char g_msg[2048];

static const char *last_error(void) {
    vox_last_error(g_msg, sizeof g_msg);
    return g_msg;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static VoxEngine *create(const char *dir, uint32_t preload, VoxStatus *status) {
    VoxEngineConfig cfg;
    VoxEngine *eng = NULL;
    vox_engine_config_init(&cfg);
    cfg.device = VOX_DEVICE_CPU;
    cfg.tts_model_dir = dir;
    cfg.cpu_threads = 1;
    cfg.max_batch = 4;
    cfg.preload = preload;
    *status = vox_engine_create(&cfg, &eng);
    return *status == VOX_OK ? eng : NULL;
}

static VoxJobInfo wait_job(VoxEngine *eng, VoxJobId job) {
    VoxJobInfo info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK(vox_wait(eng, job, 600000, &info) == VOX_OK);
    return info;
}

static void test_huge_config(const char *dir) {
    VoxStatus st;
    VoxEngine *eng = create(dir, VOX_MODEL_TTS, &st);
    /* Preloaded: the load error fails the create. */
    CHECK(eng == NULL && st == VOX_ERR_MODEL_LOAD);
    CHECK(strstr(last_error(), "1000000000") != NULL);
    /* Loaded on the first job instead: the job fails, the process lives on. */
    eng = create(dir, 0, &st);
    CHECK(eng != NULL);
    if (eng) {
        VoxTtsRequest req;
        VoxJobId job = 0;
        vox_tts_request_init(&req);
        req.text = "Hello.";
        req.max_new_tokens = 4;
        CHECK(vox_tts_submit(eng, &req, &job) == VOX_OK);
        VoxJobInfo info = wait_job(eng, job);
        CHECK(info.state == VOX_JOB_FAILED && info.error == VOX_ERR_MODEL_LOAD);
        vox_engine_destroy(eng);
    }
}

static void test_nan_output(const char *dir) {
    VoxStatus st;
    VoxEngine *eng = create(dir, 0, &st);
    CHECK(eng != NULL);
    if (!eng) return;
    for (int stream = 0; stream < 2; stream++) {
        VoxTtsRequest req;
        VoxJobId job = 0;
        float buf[8192];
        size_t n = 0, i;
        int finite = 1;
        char msg[512];
        size_t need = 0;
        vox_tts_request_init(&req);
        req.text = "Hello there.";
        req.max_new_tokens = 6;
        req.greedy = 1;
        req.stream = (uint32_t)stream;
        CHECK(vox_tts_submit(eng, &req, &job) == VOX_OK);
        VoxJobInfo info = wait_job(eng, job);
        CHECK(info.state == VOX_JOB_FAILED && info.error == VOX_ERR_INFERENCE);
        CHECK(vox_job_error(eng, job, msg, sizeof msg, &need) == VOX_OK);
        CHECK(strstr(msg, "non-finite") != NULL);
        if (vox_read_audio(eng, job, buf, sizeof buf / sizeof buf[0], &n) == VOX_OK) {
            for (i = 0; i < n; i++) {
                if (!isfinite(buf[i])) finite = 0;
            }
        }
        CHECK(finite);
        vox_release(eng, job);
    }
    vox_engine_destroy(eng);
}

static void test_speakers_and_languages(VoxEngine *eng) {
    VoxTtsRequest req;
    VoxJobId job = 12345;
    vox_tts_request_init(&req);
    req.text = "Hello.";
    req.max_new_tokens = 3;
    req.speaker = "nobody-by-this-name";
    CHECK(vox_tts_submit(eng, &req, &job) == VOX_ERR_INVALID_ARGUMENT);
    CHECK(job == 12345);
    CHECK(strstr(last_error(), "ryan") != NULL); /* the message lists the model's speakers */
    req.speaker = "Ryan";
    req.language = "Klingon";
    CHECK(vox_tts_submit(eng, &req, &job) == VOX_ERR_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "english") != NULL);
    /* NULL speaker and language: the model's default speaker, automatic language, real audio. */
    req.speaker = NULL;
    req.language = NULL;
    CHECK(vox_tts_submit(eng, &req, &job) == VOX_OK);
    VoxJobInfo info = wait_job(eng, job);
    CHECK(info.state == VOX_JOB_DONE && info.samples_total > 0);
    vox_release(eng, job);
}

/* Reads a short job through a ring smaller than a frame. */
static void test_audio_ring(VoxEngine *eng) {
    VoxTtsRequest req;
    VoxJobId job;
    VoxAudioRing *ring = NULL, *second = NULL;
    VoxJobInfo info;
    float buf[300];
    size_t written = 0, total = 0;
    uint32_t flags = 0;
    int reads = 0;
    double start = now_ms();
    vox_tts_request_init(&req);
    req.text = "Read by an audio thread.";
    req.max_new_tokens = 3;
    req.stream = 1;
    CHECK(vox_tts_submit(eng, &req, &job) == VOX_OK);
    CHECK(vox_audio_ring_open(eng, job, 1000, &ring) == VOX_OK);
    CHECK(vox_audio_ring_open(eng, job, 1000, &second) == VOX_ERR_INVALID_ARGUMENT);
    CHECK(second == NULL);
    if (!ring) return;
    do {
        reads++;
        if (vox_audio_ring_read(ring, buf, 300, &written, &flags) != VOX_OK) break;
        total += written;
        if (written == 0 && !(flags & VOX_RING_ENDED)) {
            /* An audio callback's period; the worker tops the ring up meanwhile. */
            struct timespec pause = {0, 3000000};
            nanosleep(&pause, NULL);
        }
    } while (!(flags & VOX_RING_ENDED) && now_ms() - start < 600000);
    CHECK(flags == VOX_RING_ENDED);
    info = wait_job(eng, job);
    CHECK(info.state == VOX_JOB_DONE);
    CHECK(total > 0 && total == info.samples_total);
    printf("a ring of 1024 read a %zu-sample job in %d reads\n", total, reads);
    CHECK(vox_read_audio(eng, job, buf, 300, &written) == VOX_ERR_INVALID_ARGUMENT);
    CHECK(vox_audio_ring_close(ring) == VOX_OK);
    CHECK(vox_audio_ring_close(ring) == VOX_ERR_INVALID_ARGUMENT);
    CHECK(vox_release(eng, job) == VOX_OK);
}

/* Destroys the engine; returns a ring left open on one of its running jobs. */
static VoxAudioRing *test_destroy_latency(VoxEngine *eng) {
    VoxTtsRequest req;
    VoxJobId jobs[4];
    VoxJobInfo info;
    VoxAudioRing *ring = NULL;
    char text[2048];
    double start, took;
    int i;
    text[0] = '\0';
    for (i = 0; i < 30; i++) strcat(text, "A long text that keeps the model busy. ");
    vox_tts_request_init(&req);
    req.text = text;
    req.max_new_tokens = 8000;
    req.stream = 1;
    for (i = 0; i < 4; i++) CHECK(vox_tts_submit(eng, &req, &jobs[i]) == VOX_OK);
    start = now_ms();
    do {
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        CHECK(vox_poll(eng, jobs[0], &info) == VOX_OK);
        if (info.samples_total > 0) break;
        vox_wait(eng, jobs[0], 5, NULL);
    } while (now_ms() - start < 600000);
    CHECK(info.state == VOX_JOB_RUNNING);
    CHECK(vox_audio_ring_open(eng, jobs[0], 512, &ring) == VOX_OK);
    start = now_ms();
    vox_engine_destroy(eng);
    took = now_ms() - start;
    printf("destroy with 4 running jobs took %.1f ms\n", took);
    /* Generous: this runs under valgrind, which slows one model layer by ~50x. */
    CHECK(took < 2000.0);
    return ring;
}

int main(int argc, char **argv) {
    VoxStatus st;
    VoxEngine *eng;
    if (argc != 4) {
        fprintf(stderr, "usage: %s TINY_DIR HUGE_DIR NAN_DIR\n", argv[0]);
        return 2;
    }
    test_huge_config(argv[2]);
    test_nan_output(argv[3]);
    eng = create(argv[1], VOX_MODEL_TTS, &st);
    CHECK(eng != NULL);
    if (eng) {
        VoxAudioRing *orphan;
        test_speakers_and_languages(eng);
        test_audio_ring(eng);
        orphan = test_destroy_latency(eng); /* destroys it */
        if (orphan) {
            float buf[512];
            size_t written = 0;
            uint32_t flags = 0;
            int reads = 0;
            /* The job went with its engine: what the ring holds, then the end. */
            do {
                CHECK(vox_audio_ring_read(orphan, buf, 512, &written, &flags) == VOX_OK);
            } while (!(flags & VOX_RING_ENDED) && ++reads < 100);
            CHECK(flags == VOX_RING_ENDED);
            CHECK(vox_audio_ring_close(orphan) == VOX_OK);
        }
    }
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
