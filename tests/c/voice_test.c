/*
 * Cloned voices through the C ABI (scripts/c-abi-check.sh writes the checkpoints with
 * `voxkit make-checkpoint`):
 *
 *   voice_test BASE_DIR OTHER_BASE_DIR CUSTOMVOICE_DIR
 *
 * - a voice from 16 kHz stereo reference audio (x-vector only, and in-context with a transcript),
 *   saved to bytes and loaded back, drives a Base model's jobs; the same seed gives the same
 *   audio every render, and a saved-and-loaded voice gives the same audio as the original;
 * - the voice handle may be released right after submit (the job keeps its own reference);
 * - refusals, each a status and never an abort: a Base request without a voice, a voice for a
 *   CustomVoice model, a voice made with another checkpoint, altered or truncated voice bytes,
 *   a released or foreign handle, references too short, NaN samples; an older program's
 *   request struct without the `voice` field is still read.
 */
#include "voxkit.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#define EXPECT(call, want)                                                                     \
    do {                                                                                       \
        VoxStatus got_ = (call);                                                               \
        if (got_ == (want)) {                                                                  \
            g_passed++;                                                                        \
        } else {                                                                               \
            g_failed++;                                                                        \
            fprintf(stderr, "%s:%d: %s returned %d, expected %s (%s)\n", __FILE__, __LINE__, #call, \
                    (int)got_, #want, last_error());                                           \
        }                                                                                      \
    } while (0)

static VoxEngine *create(const char *dir) {
    VoxEngineConfig cfg;
    VoxEngine *eng = NULL;
    vox_engine_config_init(&cfg);
    cfg.device = VOX_DEVICE_CPU;
    cfg.tts_model_dir = dir;
    cfg.cpu_threads = 1;
    cfg.max_batch = 4;
    EXPECT(vox_engine_create(&cfg, &eng), VOX_OK);
    return eng;
}

/* 0.6 s of a voiced-sounding 16 kHz stereo clip (left and right slightly different); short, so
 * that the test stays quick under valgrind. */
#define REF_RATE 16000
#define REF_FRAMES 9600
static float g_ref[REF_FRAMES * 2];

static void make_reference(void) {
    const double pi = 3.14159265358979;
    for (int i = 0; i < REF_FRAMES; i++) {
        double t = (double)i / REF_RATE, f0 = 140.0 + 30.0 * sin(2 * pi * 0.8 * t), v = 0.0;
        for (int h = 1; h <= 8; h++) v += pow(0.7, h) * sin(2 * pi * h * f0 * t);
        double env = 0.5 - 0.5 * cos(2 * pi * 3.0 * t);
        g_ref[2 * i] = (float)(0.3 * v * env);
        g_ref[2 * i + 1] = (float)(0.28 * v * env);
    }
}

static VoxVoiceRequest reference(const char *transcript) {
    VoxVoiceRequest r;
    vox_voice_request_init(&r);
    r.pcm = g_ref;
    r.frames = REF_FRAMES;
    r.channels = 2;
    r.sample_rate = REF_RATE;
    r.transcript = transcript;
    return r;
}

/* Synthesizes with `voice` (greedy off, a fixed seed) and returns the samples (malloc'd). */
static float *render(VoxEngine *eng, const VoxVoice *voice, uint64_t seed, size_t *n, int release_early,
                     VoxVoice *to_release) {
    VoxTtsRequest req;
    VoxJobId job = 0;
    VoxJobInfo info;
    vox_tts_request_init(&req);
    req.text = "Cloned voices speak what they are given.";
    req.voice = voice;
    req.use_seed = 1;
    req.seed = seed;
    req.max_new_tokens = 5;
    *n = 0;
    if (vox_tts_submit(eng, &req, &job) != VOX_OK) {
        fprintf(stderr, "submit: %s\n", last_error());
        g_failed++;
        return NULL;
    }
    if (release_early) EXPECT(vox_voice_release(to_release), VOX_OK);
    info.struct_size = sizeof info;
    EXPECT(vox_wait(eng, job, 120000, &info), VOX_OK);
    CHECK(info.state == VOX_JOB_DONE);
    float *out = malloc(sizeof(float) * 1920 * 16);
    size_t got = 0;
    EXPECT(vox_read_audio(eng, job, out, 1920 * 16, &got), VOX_OK);
    for (size_t i = 0; i < got; i++) CHECK(isfinite(out[i]) && fabsf(out[i]) <= 1.0f);
    EXPECT(vox_release(eng, job), VOX_OK);
    *n = got;
    return out;
}

static int same(const float *a, size_t na, const float *b, size_t nb) {
    return a != NULL && b != NULL && na == nb && na > 0 && memcmp(a, b, na * sizeof(float)) == 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: voice_test BASE_DIR OTHER_BASE_DIR CUSTOMVOICE_DIR\n");
        return 2;
    }
    make_reference();
    VoxEngine *eng = create(argv[1]);
    if (eng == NULL) return 1;

    /* The model says it clones voices (a CustomVoice model, below, says it does not). */
    VoxModelInfo mi;
    mi.struct_size = sizeof mi;
    EXPECT(vox_engine_model_info(eng, VOX_KIND_TTS, &mi), VOX_OK);
    CHECK(mi.clones_voices == 1);

    /* Voices: x-vector only and in-context. */
    VoxVoice *xvec = NULL, *icl = NULL, *loaded = NULL;
    VoxVoiceRequest r = reference(NULL);
    EXPECT(vox_voice_create(eng, &r, &xvec), VOX_OK);
    r = reference("A short reference sentence.");
    EXPECT(vox_voice_create(eng, &r, &icl), VOX_OK);
    CHECK(xvec != NULL && icl != NULL);

    /* Save (size query first), load back. */
    size_t need = 0;
    EXPECT(vox_voice_save(icl, NULL, 0, &need), VOX_ERR_BUFFER_TOO_SMALL);
    CHECK(need > 100);
    uint8_t *bytes = malloc(need);
    size_t again = 0;
    EXPECT(vox_voice_save(icl, bytes, need - 1, &again), VOX_ERR_BUFFER_TOO_SMALL);
    EXPECT(vox_voice_save(icl, bytes, need, &again), VOX_OK);
    CHECK(again == need);
    EXPECT(vox_voice_load(bytes, need, &loaded), VOX_OK);

    /* Same seed, same audio (sampled, not greedy); the loaded voice renders as the original,
     * also when its handle is released right after submit (the job keeps its own reference). */
    size_t n1, n2, n3, n4;
    float *a = render(eng, icl, 7, &n1, 0, NULL);
    float *b = render(eng, loaded, 7, &n2, 1, loaded);
    float *c = render(eng, xvec, 7, &n3, 0, NULL);
    float *d = render(eng, xvec, 7, &n4, 0, NULL);
    CHECK(same(a, n1, b, n2));
    CHECK(same(c, n3, d, n4));
    free(a);
    free(b);
    free(c);
    free(d);
    /* ... and the handle is gone: a second release and a submit with it are refused — also after
     * a new voice was made (handles are never reused, so the stale one cannot free the new one). */
    VoxVoice *fresh = NULL;
    EXPECT(vox_voice_load(bytes, need, &fresh), VOX_OK);
    CHECK(fresh != loaded);
    EXPECT(vox_voice_release(loaded), VOX_ERR_INVALID_ARGUMENT);
    EXPECT(vox_voice_save(fresh, bytes, need, &again), VOX_OK);
    EXPECT(vox_voice_release(fresh), VOX_OK);
    {
        VoxTtsRequest req;
        VoxJobId job = 0;
        vox_tts_request_init(&req);
        req.text = "Hello.";
        req.voice = loaded;
        EXPECT(vox_tts_submit(eng, &req, &job), VOX_ERR_INVALID_ARGUMENT);
        req.voice = (const VoxVoice *)g_ref; /* not a voice at all */
        EXPECT(vox_tts_submit(eng, &req, &job), VOX_ERR_INVALID_ARGUMENT);
        req.voice = NULL; /* a Base model needs one */
        EXPECT(vox_tts_submit(eng, &req, &job), VOX_ERR_INVALID_ARGUMENT);
        /* An older program's struct, without the voice field: read, and refused the same way. */
        req.voice = icl;
        req.struct_size = (uint32_t)offsetof(VoxTtsRequest, voice);
        EXPECT(vox_tts_submit(eng, &req, &job), VOX_ERR_INVALID_ARGUMENT);
    }
    EXPECT(vox_voice_release(NULL), VOX_OK);

    /* Altered and truncated bytes are refused, by name. */
    VoxVoice *bad = NULL;
    bytes[need / 2] ^= 0x40;
    EXPECT(vox_voice_load(bytes, need, &bad), VOX_ERR_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "checksum") != NULL);
    bytes[need / 2] ^= 0x40;
    EXPECT(vox_voice_load(bytes, need - 3, &bad), VOX_ERR_INVALID_ARGUMENT);
    EXPECT(vox_voice_load(bytes, 4, &bad), VOX_ERR_INVALID_ARGUMENT);
    EXPECT(vox_voice_load(NULL, need, &bad), VOX_ERR_NULL_POINTER);
    CHECK(bad == NULL);

    /* Bad references: too short, NaN, no audio. */
    VoxVoice *none = NULL;
    r = reference(NULL);
    r.frames = 100;
    EXPECT(vox_voice_create(eng, &r, &none), VOX_ERR_INVALID_ARGUMENT);
    r = reference(NULL);
    g_ref[10] = NAN;
    EXPECT(vox_voice_create(eng, &r, &none), VOX_ERR_INVALID_ARGUMENT);
    g_ref[10] = 0.0f;
    r.pcm = NULL;
    EXPECT(vox_voice_create(eng, &r, &none), VOX_ERR_NULL_POINTER);
    r = reference("");
    r.struct_size = 8;
    EXPECT(vox_voice_create(eng, &r, &none), VOX_ERR_STRUCT_SIZE);
    CHECK(none == NULL);
    vox_engine_destroy(eng);

    /* Another Base checkpoint refuses this voice at submit, naming both models. */
    VoxEngine *other = create(argv[2]);
    if (other != NULL) {
        VoxTtsRequest req;
        VoxJobId job = 0;
        vox_tts_request_init(&req);
        req.text = "Hello.";
        req.voice = icl;
        EXPECT(vox_tts_submit(other, &req, &job), VOX_ERR_INVALID_ARGUMENT);
        CHECK(strstr(last_error(), "another checkpoint") != NULL);
        vox_engine_destroy(other);
    }

    /* A CustomVoice model takes no voice and cannot make one. */
    VoxEngine *cv = create(argv[3]);
    if (cv != NULL) {
        VoxTtsRequest req;
        VoxJobId job = 0;
        vox_tts_request_init(&req);
        req.text = "Hello.";
        req.voice = xvec;
        EXPECT(vox_tts_submit(cv, &req, &job), VOX_ERR_INVALID_ARGUMENT);
        mi.struct_size = sizeof mi;
        EXPECT(vox_engine_model_info(cv, VOX_KIND_TTS, &mi), VOX_OK);
        CHECK(mi.clones_voices == 0);
        r = reference(NULL);
        EXPECT(vox_voice_create(cv, &r, &none), VOX_ERR_INVALID_ARGUMENT);
        vox_engine_destroy(cv);
    }

    EXPECT(vox_voice_release(xvec), VOX_OK);
    EXPECT(vox_voice_release(icl), VOX_OK);
    free(bytes);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
