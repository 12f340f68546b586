// Exercises every class of bindings/cpp/voxkit.hpp against the real library and tiny
// random-weight checkpoints (scripts/bindings/cpp.sh writes them):
//
//   wrapper_test [TTS_DIR ASR_DIR [BASE_DIR]]
//
// Without arguments only the model-free part runs (error paths, empty and moved-from handles),
// quick enough for valgrind in CI; loading even a tiny model takes about a minute under valgrind.
// `wrapper_test --old-abi` checks the refusal of an older library (see test_old_abi).
// The tiny models speak noise and transcribe to arbitrary text, so the checks are on structure:
// statuses, finite audio at the reported rate, UTF-8 strings. Generations are a few tokens long
// so that the whole test stays quick under valgrind. BASE_DIR (a tiny Base checkpoint) adds the
// cloned-voice round trip.
#include "voxkit.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

const auto g_start = std::chrono::steady_clock::now();
int g_passed = 0;
int g_failed = 0;

void check(bool ok, const char *what, int line) {
    if (ok) {
        g_passed++;
    } else {
        g_failed++;
        std::fprintf(stderr, "FAIL line %d: %s\n", line, what);
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

// Section headers carry the elapsed time: under valgrind they show where the time goes.
void section(const char *name) {
    std::chrono::duration<double> t = std::chrono::steady_clock::now() - g_start;
    std::printf("[%6.2f s] -- %s\n", t.count(), name);
    std::fflush(stdout);
}

// A result must have failed with `want` and carried the library's message.
template <class R>
void expect_status(const R &r, voxkit::Status want, const char *what, int line) {
    bool ok = r.status() == want && (want == VOX_OK || !r.error().message.empty());
    if (!ok) {
        std::fprintf(stderr, "  got %d (%s): \"%s\"\n", static_cast<int>(r.status()),
                     vox_status_string(r.status()), r.error().message.c_str());
    }
    check(ok, what, line);
}
#define EXPECT_STATUS(expr, want) expect_status((expr), (want), #expr " -> " #want, __LINE__)

// Move-only handles: no copies, and moves that cannot throw (safe in containers and destructors).
template <class T>
constexpr bool move_only = !std::is_copy_constructible_v<T> && !std::is_copy_assignable_v<T> &&
                           std::is_nothrow_move_constructible_v<T> &&
                           std::is_nothrow_move_assignable_v<T>;
static_assert(move_only<voxkit::Engine>);
static_assert(move_only<voxkit::Job>);
static_assert(move_only<voxkit::AudioRing>);
static_assert(move_only<voxkit::Voice>);
static_assert(noexcept(std::declval<voxkit::AudioRing &>().read(nullptr, 0)),
              "the real-time read must be noexcept");

bool valid_utf8(const std::string &s) {
    std::size_t i = 0;
    while (i < s.size()) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        std::size_t len = c < 0x80           ? 1
                          : (c >> 5) == 0x06 ? 2
                          : (c >> 4) == 0x0E ? 3
                          : (c >> 3) == 0x1E ? 4
                                             : 0;
        if (len == 0 || i + len > s.size()) return false;
        for (std::size_t k = 1; k < len; k++)
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
        i += len;
    }
    return true;
}

bool all_finite(const std::vector<float> &v) {
    for (float x : v)
        if (!std::isfinite(x)) return false;
    return true;
}

voxkit::TtsRequest short_tts(const char *text, std::uint32_t tokens) {
    voxkit::TtsRequest r(text);
    r.max_new_tokens(tokens).seed(7);
    return r;
}

void test_errors_without_models() {
    section("create errors, empty engine");
    EXPECT_STATUS(voxkit::check_abi(), VOX_OK);
    CHECK(vox_abi_version() >= voxkit::kAbiVersion);
    CHECK(std::string(voxkit::version()).size() > 0);

    voxkit::EngineConfig missing;
    missing.tts_model("/nonexistent/voxkit-model").device(VOX_DEVICE_CPU);
    auto bad = voxkit::Engine::create(missing);
    EXPECT_STATUS(bad, VOX_ERR_MODEL_LOAD);

    voxkit::EngineConfig none;
    none.device(VOX_DEVICE_CPU).cpu_threads(1);
    CHECK(none.raw().struct_size == sizeof(VoxEngineConfig));
    auto engine = voxkit::Engine::create(none);
    EXPECT_STATUS(engine, VOX_OK);
    if (!engine) return;
    EXPECT_STATUS(engine->submit(voxkit::TtsRequest("hello")), VOX_ERR_MODEL_NOT_LOADED);
    EXPECT_STATUS(engine->model_info(VOX_KIND_ASR), VOX_ERR_MODEL_NOT_LOADED);
    auto stats = engine->stats();
    CHECK(stats && stats->device == VOX_DEVICE_CPU && stats->jobs_held == 0);

    // An id the engine never gave out.
    voxkit::Job stranger = voxkit::Job::adopt(engine->get(), 424242);
    EXPECT_STATUS(stranger.poll(), VOX_ERR_UNKNOWN_JOB);
    EXPECT_STATUS(stranger.text(), VOX_ERR_UNKNOWN_JOB);
    EXPECT_STATUS(stranger.cancel(), VOX_ERR_UNKNOWN_JOB);
    EXPECT_STATUS(stranger.release(), VOX_ERR_UNKNOWN_JOB);
    CHECK(!stranger);

    // A moved-from engine is empty; destroying it and calling it are safe.
    voxkit::Engine moved = std::move(*engine);
    CHECK(moved && !*engine);
    EXPECT_STATUS(engine->stats(), VOX_ERR_NULL_POINTER);
    EXPECT_STATUS(engine->submit(voxkit::TtsRequest("hello")), VOX_ERR_NULL_POINTER);

    const std::uint8_t junk[16] = {1, 2, 3};
    EXPECT_STATUS(voxkit::Voice::load(junk, sizeof junk), VOX_ERR_INVALID_ARGUMENT);
    voxkit::Voice empty;
    EXPECT_STATUS(empty.save(), VOX_ERR_NULL_POINTER);
    voxkit::AudioRing no_ring;
    voxkit::RingRead r = no_ring.read(nullptr, 0);
    CHECK(r.status == VOX_ERR_NULL_POINTER && r.count == 0 && !r.ended);
    EXPECT_STATUS(no_ring.close(), VOX_OK);  // closing an empty handle does nothing
    EXPECT_STATUS(voxkit::AudioRing::open(stranger, 64), VOX_ERR_NULL_POINTER);  // released above
}

// Run with a preloaded vox_abi_version() that answers 5 (cpp.sh builds that shim): the wrapper
// must refuse the library with a clear error instead of calling functions it lacks.
void test_old_abi() {
    section("a library older than the wrapper is refused");
    auto abi = voxkit::check_abi();
    EXPECT_STATUS(abi, VOX_ERR_UNSUPPORTED);
    CHECK(abi.error().message.find("ABI 5") != std::string::npos);
    EXPECT_STATUS(voxkit::Engine::create(voxkit::EngineConfig()), VOX_ERR_UNSUPPORTED);
    const std::uint8_t bytes[4] = {0, 0, 0, 0};
    EXPECT_STATUS(voxkit::Voice::load(bytes, sizeof bytes), VOX_ERR_UNSUPPORTED);
}

void test_tts(const voxkit::Engine &engine) {
    section("TTS job: wait, read into a vector, timings, moves");
    auto info = engine.model_info(VOX_KIND_TTS);
    EXPECT_STATUS(info, VOX_OK);
    CHECK(info && info->sample_rate > 0 && std::string(info->speakers).size() > 0);

    auto job = engine.submit(short_tts("A short line.", 3));
    EXPECT_STATUS(job, VOX_OK);
    if (!job) return;
    auto done = job->wait(60000);
    CHECK(done && done->state == VOX_JOB_DONE && done->kind == VOX_KIND_TTS);
    CHECK(done && info && done->sample_rate == info->sample_rate);
    std::vector<float> audio;
    auto n = job->read_audio(audio);
    CHECK(n && *n > 0 && *n == audio.size() && all_finite(audio));
    CHECK(done && audio.size() == done->samples_total);
    auto again = job->read_audio(audio);
    CHECK(again && *again == 0);  // everything was read
    auto t = job->timings();
    CHECK(t && t->total_ms > 0 && t->tokens > 0);
    auto text = job->text();
    CHECK(text && text->empty());  // TTS jobs have no text
    auto err = job->error_message();
    CHECK(err && err->empty());

    voxkit::Job moved = std::move(*job);
    CHECK(moved && !*job);
    EXPECT_STATUS(job->poll(), VOX_ERR_NULL_POINTER);
    EXPECT_STATUS(job->release(), VOX_OK);  // releasing an empty handle does nothing
    auto held = engine.stats();
    CHECK(held && held->jobs_held == 1);
    moved = voxkit::Job();  // move-assignment releases the job it held
    held = engine.stats();
    CHECK(held && held->jobs_held == 0);

    section("TTS errors and cancel");
    EXPECT_STATUS(engine.submit(voxkit::TtsRequest("")), VOX_ERR_INVALID_ARGUMENT);
    voxkit::TtsRequest bad_speaker("hello");
    bad_speaker.speaker("nobody-by-this-name");
    EXPECT_STATUS(engine.submit(bad_speaker), VOX_ERR_INVALID_ARGUMENT);

    auto longer = engine.submit(short_tts("This one is cancelled.", 2000));
    EXPECT_STATUS(longer, VOX_OK);
    if (longer) {
        EXPECT_STATUS(longer->cancel(), VOX_OK);
        auto end = longer->wait(60000);
        CHECK(end && end->state == VOX_JOB_CANCELLED);
        float buf[64];
        auto r = longer->read_audio(buf, 64);  // audio before the cancel stays readable
        CHECK(r.ok());
    }
}

void test_ring(const voxkit::Engine &engine) {
    section("AudioRing: streaming job read through a ring");
    auto job = engine.submit(short_tts("Through the ring.", 4).stream());
    EXPECT_STATUS(job, VOX_OK);
    if (!job) return;
    EXPECT_STATUS(voxkit::AudioRing::open(*job, 0), VOX_ERR_INVALID_ARGUMENT);
    auto ring = voxkit::AudioRing::open(*job, 512);
    EXPECT_STATUS(ring, VOX_OK);
    if (!ring) return;
    EXPECT_STATUS(voxkit::AudioRing::open(*job, 512), VOX_ERR_INVALID_ARGUMENT);  // one per job
    float probe[8];
    EXPECT_STATUS(job->read_audio(probe, 8), VOX_ERR_INVALID_ARGUMENT);  // the ring has the audio

    std::vector<float> got;
    float block[300];  // smaller than the ring: the job refills it as we drain
    voxkit::RingRead r{0, false, VOX_OK};
    // As an audio thread would: read, and when nothing is there, come back a little later (the
    // engine refills the ring after each step, and every few ms once the job has ended).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!r.ended && std::chrono::steady_clock::now() < deadline) {
        r = ring->read(block, 300);
        if (r.status != VOX_OK) break;
        got.insert(got.end(), block, block + r.count);
        if (r.count == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(r.status == VOX_OK && r.ended);
    auto info = job->poll();
    CHECK(info && info->state == VOX_JOB_DONE && got.size() == info->samples_total);
    CHECK(!got.empty() && all_finite(got));
    r = ring->read(block, 300);
    CHECK(r.status == VOX_OK && r.count == 0 && r.ended);  // stays ended

    // Moved-from ring: empty and safe; the moved-to one still reads after its job is released.
    voxkit::AudioRing moved = std::move(*ring);
    r = ring->read(block, 300);
    CHECK(r.status == VOX_ERR_NULL_POINTER && r.count == 0 && !r.ended);
    EXPECT_STATUS(ring->close(), VOX_OK);
    EXPECT_STATUS(job->release(), VOX_OK);
    r = moved.read(block, 300);
    CHECK(r.status == VOX_OK && r.ended);
    EXPECT_STATUS(moved.close(), VOX_OK);
    CHECK(!moved);

    section("AudioRing closed early: the rest comes back to Job::read_audio");
    auto job2 = engine.submit(short_tts("Closed early.", 3).stream());
    EXPECT_STATUS(job2, VOX_OK);
    if (!job2) return;
    {
        auto ring2 = voxkit::AudioRing::open(*job2, 1 << 16);
        EXPECT_STATUS(ring2, VOX_OK);
        auto end = job2->wait(60000);
        CHECK(end && end->state == VOX_JOB_DONE);
    }  // closed unread by its destructor
    std::vector<float> rest;
    auto n = job2->read_audio(rest);
    CHECK(n && *n > 0 && all_finite(rest));
}

void test_asr(const voxkit::Engine &engine) {
    section("ASR job: text and language");
    const std::uint32_t rate = 16000;
    std::vector<float> pcm(rate / 2 * 2);  // 0.5 s, stereo, a tone switched on and off
    for (std::size_t i = 0; i < pcm.size(); i++) {
        float gate = (i / 2) % 800 < 400 ? 1.0f : 0.2f;
        pcm[i] = 0.3f * gate * std::sin(0.05f * static_cast<float>(i));
    }
    voxkit::AsrRequest request(pcm.data(), pcm.size() / 2, rate, 2);
    auto job = engine.submit(request.max_new_tokens(4));
    EXPECT_STATUS(job, VOX_OK);
    if (job) {
        auto done = job->wait(60000);
        CHECK(done && done->state == VOX_JOB_DONE && done->kind == VOX_KIND_ASR);
        auto text = job->text();
        auto lang = job->language();
        CHECK(text && valid_utf8(*text));
        CHECK(lang && valid_utf8(*lang));
        auto t = job->timings();
        CHECK(t && t->asr_encode_ms > 0);
    }
    EXPECT_STATUS(engine.submit(voxkit::AsrRequest(pcm.data(), 0, rate)), VOX_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(engine.submit(voxkit::AsrRequest(pcm.data(), 10, 0)), VOX_ERR_INVALID_ARGUMENT);
}

void test_voice_errors(const voxkit::Engine &customvoice) {
    section("Voice errors");
    std::vector<float> ref(4800, 0.1f);
    EXPECT_STATUS(customvoice.create_voice(voxkit::VoiceRequest(ref.data(), ref.size(), 24000)),
                  VOX_ERR_INVALID_ARGUMENT);  // a CustomVoice model does not clone
}

void test_voice(const char *base_dir) {
    section("Voice: create, save, load, speak with it");
    auto engine = voxkit::Engine::create(
        voxkit::EngineConfig().tts_model(base_dir).device(VOX_DEVICE_CPU).cpu_threads(1));
    EXPECT_STATUS(engine, VOX_OK);
    if (!engine) return;
    const std::uint32_t rate = 16000;
    std::vector<float> ref(rate * 6 / 10);
    for (std::size_t i = 0; i < ref.size(); i++)
        ref[i] = 0.3f * std::sin(2.0f * 3.14159f * 150.0f * static_cast<float>(i) / rate);
    auto voice = engine->create_voice(voxkit::VoiceRequest(ref.data(), ref.size(), rate));
    EXPECT_STATUS(voice, VOX_OK);
    if (!voice) return;
    auto bytes = voice->save();
    CHECK(bytes && !bytes->empty());
    if (!bytes) return;
    auto loaded = voxkit::Voice::load(bytes->data(), bytes->size());
    EXPECT_STATUS(loaded, VOX_OK);
    if (!loaded) return;
    voxkit::Voice moved = std::move(*loaded);
    CHECK(moved && !*loaded);
    auto job = engine->submit(short_tts("Cloned.", 2).voice(moved));
    EXPECT_STATUS(job, VOX_OK);
    moved = voxkit::Voice();  // the job holds its own reference
    if (job) {
        auto done = job->wait(60000);
        CHECK(done && done->state == VOX_JOB_DONE && done->samples_total > 0);
    }
    EXPECT_STATUS(engine->submit(short_tts("No voice.", 2)), VOX_ERR_INVALID_ARGUMENT);
}

}  // namespace

int main(int argc, char **argv) {
    if (argc == 2 && std::string(argv[1]) == "--old-abi") {
        test_old_abi();
    } else if (argc != 1 && argc != 3 && argc != 4) {
        std::fprintf(stderr, "usage: %s [--old-abi | TTS_DIR ASR_DIR [BASE_DIR]]\n", argv[0]);
        return 2;
    } else {
        test_errors_without_models();
    }
    if (argc > 2) {
        voxkit::EngineConfig config;
        config.tts_model(argv[1]).asr_model(argv[2]).device(VOX_DEVICE_CPU).cpu_threads(1);
        auto engine = voxkit::Engine::create(config);
        EXPECT_STATUS(engine, VOX_OK);
        if (engine) {
            test_tts(*engine);
            test_ring(*engine);
            test_asr(*engine);
            test_voice_errors(*engine);
        }
    }
    if (argc == 4) test_voice(argv[3]);
    std::printf("wrapper_test: %d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
