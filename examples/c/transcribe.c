/*
 * voxkit from C: transcribe a WAV file (16-bit PCM or 32-bit float, any rate and channel count)
 * and print the detected language and the text.
 *
 *   cc -std=c99 -I include examples/c/transcribe.c -L target/release -lvoxkit -o transcribe
 *   ./transcribe ASR_MODEL_DIR speech.wav [CPU_THREADS]
 *
 * The WAV reader is deliberately strict: a file it does not fully understand is refused with a
 * reason instead of being guessed at, since feeding misread bytes to a recognizer gives garbage
 * text that looks like a model problem.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "voxkit.h"

/* Larger files are refused rather than read into memory whole (about 45 min of 48 kHz stereo). */
#define MAX_WAV_BYTES (1024u * 1024u * 1024u)

typedef struct {
    float *pcm; /* interleaved, frames * channels samples */
    uint64_t frames;
    uint32_t rate;
    uint32_t channels;
} Wav;

static uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reads the whole file; returns NULL (and says why) on any error. */
static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    unsigned char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "%s: cannot determine the file size\n", path);
    } else if ((unsigned long)size > MAX_WAV_BYTES) {
        fprintf(stderr, "%s: larger than %u bytes\n", path, MAX_WAV_BYTES);
    } else if ((buf = malloc(size ? (size_t)size : 1)) == NULL) {
        fprintf(stderr, "%s: out of memory\n", path);
    } else if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "%s: short read\n", path);
        free(buf);
        buf = NULL;
    } else {
        *len = (size_t)size;
    }
    fclose(f);
    return buf;
}

/* The format of a "fmt " chunk, with WAVE_FORMAT_EXTENSIBLE resolved to its sub-format. */
static const char *parse_fmt(const unsigned char *p, uint32_t size, uint32_t *tag,
                             uint32_t *channels, uint32_t *rate, uint32_t *bits) {
    /* The GUID tail every KSDATAFORMAT_SUBTYPE_{PCM,IEEE_FLOAT} shares after its 2-byte tag. */
    static const unsigned char guid_tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                                0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71};
    if (size < 16) return "fmt chunk shorter than 16 bytes";
    *tag = le16(p);
    *channels = le16(p + 2);
    *rate = le32(p + 4);
    uint32_t byte_rate = le32(p + 8);
    uint32_t block_align = le16(p + 12);
    *bits = le16(p + 14);
    if (*tag == 0xFFFE) {
        if (size < 40 || le16(p + 16) < 22) return "WAVE_FORMAT_EXTENSIBLE fmt chunk too short";
        if (le16(p + 18) != *bits) return "extensible: valid bits differ from the container size";
        if (memcmp(p + 26, guid_tail, sizeof guid_tail) != 0)
            return "extensible: unknown sub-format";
        *tag = le16(p + 24);
    }
    if (!((*tag == 1 && *bits == 16) || (*tag == 3 && *bits == 32)))
        return "not 16-bit PCM or 32-bit float";
    if (*channels == 0 || *channels > 64) return "channel count outside 1..64";
    if (*rate == 0) return "sample rate is 0";
    if (block_align != *channels * (*bits / 8)) return "block align does not match channels * bits";
    if (byte_rate != *rate * block_align) return "byte rate does not match rate * block align";
    return NULL;
}

/* Parses a RIFF/WAVE image; returns NULL on success, else what is wrong. */
static const char *parse_wav(const unsigned char *buf, size_t len, Wav *out) {
    if (len < 12 || memcmp(buf, "RIFF", 4) != 0 || memcmp(buf + 8, "WAVE", 4) != 0)
        return "not a RIFF/WAVE file";
    uint32_t riff_size = le32(buf + 4);
    if (riff_size < 4 || riff_size > len - 8) return "RIFF size runs past the end of the file";
    size_t end = 8 + (size_t)riff_size;
    size_t pos = 12;
    int have_fmt = 0;
    uint32_t tag = 0, channels = 0, rate = 0, bits = 0;
    while (pos < end) {
        if (end - pos < 8) return "truncated chunk header";
        uint32_t size = le32(buf + pos + 4);
        const unsigned char *body = buf + pos + 8;
        if (size > end - pos - 8) return "chunk runs past the end of the RIFF data";
        if (memcmp(buf + pos, "fmt ", 4) == 0) {
            if (have_fmt) return "two fmt chunks";
            const char *err = parse_fmt(body, size, &tag, &channels, &rate, &bits);
            if (err) return err;
            have_fmt = 1;
        } else if (memcmp(buf + pos, "data", 4) == 0) {
            if (!have_fmt) return "data chunk before the fmt chunk";
            uint32_t block = channels * (bits / 8);
            if (size % block != 0) return "data size is not a whole number of frames";
            if (size == 0) return "no samples";
            uint64_t count = size / (bits / 8);
            float *pcm = malloc(count * sizeof(float));
            if (!pcm) return "out of memory";
            for (uint64_t i = 0; i < count; i++) {
                if (tag == 1) {
                    int32_t v = (int32_t)le16(body + 2 * i);
                    pcm[i] = (float)(v >= 32768 ? v - 65536 : v) / 32768.0f;
                } else {
                    uint32_t u = le32(body + 4 * i);
                    memcpy(&pcm[i], &u, sizeof u); /* the file is little-endian IEEE 754 */
                }
            }
            out->pcm = pcm;
            out->frames = size / block;
            out->rate = rate;
            out->channels = channels;
            return NULL;
        }
        pos += 8 + (size_t)size + (size & 1u); /* chunks are padded to even sizes */
    }
    return have_fmt ? "no data chunk" : "no fmt chunk";
}

static int fail(const char *what, VoxStatus st) {
    char msg[512];
    vox_last_error(msg, sizeof msg);
    fprintf(stderr, "%s failed: %s (%s)\n", what, vox_status_string(st), msg);
    return 1;
}

/* Prints one of the job's strings (vox_get_text or vox_get_language), sized by a first call. */
static int print_string(VoxEngine *engine, VoxJobId job, const char *label,
                        VoxStatus (*get)(const VoxEngine *, VoxJobId, char *, size_t, size_t *)) {
    size_t need = 0;
    VoxStatus st = get(engine, job, NULL, 0, &need);
    if (st != VOX_OK && st != VOX_ERR_BUFFER_TOO_SMALL) return fail(label, st);
    char *s = malloc(need ? need : 1);
    if (!s) return 1;
    st = get(engine, job, s, need, NULL);
    if (st == VOX_OK) printf("%s: %s\n", label, s[0] ? s : "(none)");
    free(s);
    return st == VOX_OK ? 0 : fail(label, st);
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s ASR_MODEL_DIR IN.wav [CPU_THREADS]\n", argv[0]);
        return 2;
    }
    if (vox_abi_version() < VOX_ABI_VERSION) {
        fprintf(stderr, "libvoxkit ABI %u is older than this program's %d\n",
                (unsigned)vox_abi_version(), VOX_ABI_VERSION);
        return 1;
    }
    size_t len = 0;
    unsigned char *file = read_file(argv[2], &len);
    if (!file) return 1;
    Wav wav = {NULL, 0, 0, 0};
    const char *err = parse_wav(file, len, &wav);
    free(file);
    if (err) {
        fprintf(stderr, "%s: %s\n", argv[2], err);
        return 1;
    }

    VoxEngineConfig cfg;
    vox_engine_config_init(&cfg);
    cfg.asr_model_dir = argv[1];
    cfg.device = VOX_DEVICE_CPU;
    if (argc == 4) cfg.cpu_threads = (uint32_t)strtoul(argv[3], NULL, 10);
    VoxEngine *engine = NULL;
    VoxStatus st = vox_engine_create(&cfg, &engine);
    if (st != VOX_OK) {
        free(wav.pcm);
        return fail("vox_engine_create", st);
    }

    VoxAsrRequest req;
    vox_asr_request_init(&req);
    req.pcm = wav.pcm;
    req.frames = wav.frames;
    req.sample_rate = wav.rate;
    req.channels = wav.channels;
    VoxJobId job = 0;
    st = vox_asr_submit(engine, &req, &job);
    free(wav.pcm); /* the submit copied the audio */
    if (st != VOX_OK) {
        fail("vox_asr_submit", st);
        vox_engine_destroy(engine);
        return 1;
    }

    VoxJobInfo info;
    info.struct_size = sizeof info;
    int rc = 1;
    st = vox_wait(engine, job, VOX_WAIT_INFINITE, &info);
    if (st != VOX_OK) {
        fail("vox_wait", st);
    } else if (info.state != VOX_JOB_DONE) {
        char msg[512];
        vox_job_error(engine, job, msg, sizeof msg, NULL);
        fprintf(stderr, "job ended in state %d: %s (%s)\n", (int)info.state,
                vox_status_string(info.error), msg);
    } else {
        printf("audio: %llu frames, %u channel(s) at %u Hz\n", (unsigned long long)wav.frames,
               (unsigned)wav.channels, (unsigned)wav.rate);
        rc = print_string(engine, job, "language", vox_get_language);
        if (rc == 0) rc = print_string(engine, job, "text", vox_get_text);
    }
    vox_release(engine, job);
    vox_engine_destroy(engine);
    return rc;
}
