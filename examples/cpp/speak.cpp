// voxkit from C++: speak a text with streaming and write the audio to a WAV file as it arrives.
//
//   g++ -std=c++17 -I include -I bindings/cpp examples/cpp/speak.cpp
//       -L target/release -lvoxkit -o speak
//   ./speak TTS_MODEL_DIR "Hello from voxkit." out.wav [CPU_THREADS]
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "voxkit.hpp"
#include "wav_writer.hpp"

namespace {

int fail(const char *what, const voxkit::Error &e) {
    std::fprintf(stderr, "%s failed: %s (%s)\n", what, e.status_name(), e.message.c_str());
    return 1;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        std::fprintf(stderr, "usage: %s TTS_MODEL_DIR TEXT OUT.wav [CPU_THREADS]\n", argv[0]);
        return 2;
    }
    voxkit::EngineConfig config;
    config.tts_model(argv[1]).device(VOX_DEVICE_CPU);
    if (argc == 5) config.cpu_threads(std::uint32_t(std::strtoul(argv[4], nullptr, 10)));
    auto engine = voxkit::Engine::create(config);
    if (!engine) return fail("creating the engine", engine.error());

    WavWriter wav;
    if (!wav.open(argv[3])) {
        std::perror(argv[3]);
        return 1;
    }
    const auto start = std::chrono::steady_clock::now();
    auto job = engine->submit(voxkit::TtsRequest(argv[2]).stream());
    if (!job) return fail("submitting", job.error());

    double first_audio_ms = -1;
    VoxJobInfo info{};
    for (;;) {
        auto polled = job->poll();  // never blocks: a game would call this once per frame
        if (!polled) return fail("polling", polled.error());
        info = *polled;
        float buf[4096];
        auto n = job->read_audio(buf, 4096);
        if (!n) return fail("reading audio", n.error());
        if (*n > 0 && first_audio_ms < 0) {
            first_audio_ms = std::chrono::duration<double, std::milli>(
                                 std::chrono::steady_clock::now() - start).count();
        }
        if (!wav.write(buf, *n)) {
            std::perror(argv[3]);
            return 1;
        }
        if (info.state >= VOX_JOB_DONE && *n == 0) break;  // ended, and everything read
        if (*n == 0) (void)job->wait(10);  // nothing new: sleep up to 10 ms or until it ends
    }
    wav.set_rate(info.sample_rate);
    if (!wav.close()) {
        std::perror(argv[3]);
        return 1;
    }

    if (info.state != VOX_JOB_DONE) {
        auto why = job->error_message();
        std::fprintf(stderr, "the job ended in state %d: %s\n", info.state,
                     why ? why->c_str() : why.error().message.c_str());
        return 1;
    }
    auto t = job->timings();
    std::printf("wrote %llu samples at %u Hz to %s; first audio after %.1f ms, total %.1f ms\n",
                static_cast<unsigned long long>(wav.frames()), info.sample_rate, argv[3],
                first_audio_ms, t ? t->total_ms : 0.0);
    return 0;
}
