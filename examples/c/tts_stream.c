/*
 * voxkit from C: speak a text with streaming, reading audio while it is generated, and write it
 * to a WAV file (32-bit float mono) as it comes.
 *
 *   cc -I include examples/c/tts_stream.c -L target/release -lvoxkit -o tts_stream
 *   ./tts_stream MODEL_DIR "Hello from voxkit." out.wav
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "voxkit.h"

static void on_log(int32_t level, const char *message, void *user_data) {
    (void)user_data;
    fprintf(stderr, "[voxkit %d] %s\n", (int)level, message);
}

static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* A 44-byte WAV header for `samples` float mono samples at `rate` (little-endian fields). */
static void wav_header(unsigned char h[44], uint32_t rate, uint32_t samples) {
    memcpy(h, "RIFF\0\0\0\0WAVEfmt \20\0\0\0\3\0\1\0", 24); /* format 3: IEEE float, 1 channel */
    put_u32(h + 4, 36 + 4 * samples);
    put_u32(h + 24, rate);
    put_u32(h + 28, 4 * rate);
    memcpy(h + 32, "\4\0\40\0data", 8); /* 4 bytes a frame, 32 bits a sample */
    put_u32(h + 40, 4 * samples);
}

static int fail(const char *what, VoxStatus st) {
    char msg[512];
    vox_last_error(msg, sizeof msg);
    fprintf(stderr, "%s failed: %s (%s)\n", what, vox_status_string(st), msg);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL_DIR TEXT OUT.wav\n", argv[0]);
        return 2;
    }
    VoxEngineConfig cfg;
    vox_engine_config_init(&cfg);
    cfg.tts_model_dir = argv[1];
    cfg.log_callback = on_log;
    cfg.log_level = VOX_LOG_INFO;

    VoxEngine *engine = NULL;
    VoxStatus st = vox_engine_create(&cfg, &engine);
    if (st != VOX_OK) return fail("vox_engine_create", st);

    VoxTtsRequest req;
    vox_tts_request_init(&req);
    req.text = argv[2];
    req.stream = 1;
    VoxJobId job = 0;
    st = vox_tts_submit(engine, &req, &job);
    if (st != VOX_OK) {
        vox_engine_destroy(engine);
        return fail("vox_tts_submit", st);
    }

    FILE *out = fopen(argv[3], "wb");
    unsigned char header[44];
    uint32_t written = 0;
    float buf[4096];
    VoxJobInfo info;
    if (out) {
        wav_header(header, 0, 0); /* sizes and rate are filled in at the end */
        fwrite(header, 1, sizeof header, out);
    }
    for (;;) {
        info.struct_size = sizeof info;
        vox_poll(engine, job, &info); /* never blocks: a game would call this once per frame */
        size_t n = 0;
        vox_read_audio(engine, job, buf, sizeof buf / sizeof buf[0], &n);
        if (out && n) written += (uint32_t)fwrite(buf, sizeof(float), n, out);
        if (info.state >= VOX_JOB_DONE && n == 0) break;
        if (n == 0) vox_wait(engine, job, 10, NULL); /* sleep up to 10 ms or until it ends */
    }
    if (out) {
        wav_header(header, info.sample_rate, written);
        fseek(out, 0, SEEK_SET);
        fwrite(header, 1, sizeof header, out);
        fclose(out);
    }

    VoxTimings t;
    t.struct_size = sizeof t;
    vox_get_timings(engine, job, &t);
    printf("state %d, %llu samples at %u Hz, total %.1f ms (tts %.1f, codec %.1f)\n", (int)info.state,
           (unsigned long long)info.samples_total, info.sample_rate, t.total_ms, t.tts_ms, t.codec_ms);
    vox_release(engine, job);
    vox_engine_destroy(engine);
    return info.state == VOX_JOB_DONE ? 0 : 1;
}
