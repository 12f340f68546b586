// voxkit on a real-time audio thread, the way a JUCE plug-in or any audio callback would use it,
// without JUCE: a simulated device thread calls processBlock() every block period and pulls
// speech from a voxkit::AudioRing (no allocation, no lock, no exception in that call), while the
// main ("message") thread submits the sentences. At the end it prints the underruns and the
// worst time of a ring read, and writes what the device played to a WAV file.
//
//   g++ -std=c++17 -pthread -I include -I bindings/cpp examples/cpp/audio_thread.cpp
//       -L target/release -lvoxkit -o audio_thread
//   ./audio_thread TTS_MODEL_DIR played.wav [CPU_THREADS [MAX_NEW_TOKENS]]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <thread>
#include <vector>

#include "voxkit.hpp"
#include "wav_writer.hpp"

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kRate = 24000;  // the device's rate; jobs are asked for it (resampled if needed)
constexpr int kBlock = 480;   // 20 ms per callback

// The part that would be a juce::AudioProcessor. The message thread hands it one ring at a time
// through an atomic pointer; the audio thread hands it back (sets `finished_`) once the ring
// reported the end. Only the audio thread ever reads a ring while it is published.
class SpeechPlayer {
public:
    // JUCE: prepareToPlay(sampleRate, samplesPerBlock) is where anything the callback needs is
    // allocated. The ring needs nothing from the callback's side, so this only resets counters.
    void prepareToPlay() {
        underruns_ = 0;
        worst_read_ns_ = 0;
        blocks_ = 0;
    }

    // JUCE: processBlock(AudioBuffer<float>&, MidiBuffer&) -- out = buffer.getWritePointer(0).
    // Real-time: no allocation, no lock, no system call, nothing that can throw.
    void processBlock(float *out, int n) noexcept {
        std::size_t got = 0;
        voxkit::AudioRing *ring = current_.load(std::memory_order_acquire);
        if (ring) {
            const auto t0 = Clock::now();
            voxkit::RingRead r = ring->read(out, static_cast<std::size_t>(n));
            const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0);
            worst_read_ns_.store(std::max<long long>(worst_read_ns_.load(std::memory_order_relaxed),
                                                     ns.count()),
                                 std::memory_order_relaxed);
            got = r.count;
            if (got > 0) speaking_ = true;
            // Short while the sentence is still coming: the listener hears a gap.
            if (got < static_cast<std::size_t>(n) && !r.ended && speaking_)
                underruns_.fetch_add(1, std::memory_order_relaxed);
            if (r.ended || r.status != VOX_OK) {
                speaking_ = false;
                current_.store(nullptr, std::memory_order_relaxed);
                finished_.store(true, std::memory_order_release);  // the ring is ours no more
            }
        }
        std::fill(out + got, out + n, 0.0f);
        blocks_.fetch_add(1, std::memory_order_relaxed);
    }

    // JUCE: releaseResources() runs when playback stops; the audio thread no longer calls
    // processBlock then, so rings can be closed after it (on the message thread: close frees).
    void releaseResources() { current_.store(nullptr, std::memory_order_release); }

    // Message thread: publish a ring (it must stay alive until finished() says so).
    void play(voxkit::AudioRing *ring) {
        finished_.store(false, std::memory_order_relaxed);
        current_.store(ring, std::memory_order_release);
    }
    bool finished() const { return finished_.load(std::memory_order_acquire); }

    long long underruns() const { return underruns_.load(); }
    long long worst_read_ns() const { return worst_read_ns_.load(); }
    long long blocks() const { return blocks_.load(); }

private:
    std::atomic<voxkit::AudioRing *> current_{nullptr};
    std::atomic<bool> finished_{false};
    bool speaking_ = false;  // audio thread only
    std::atomic<long long> underruns_{0}, worst_read_ns_{0}, blocks_{0};
};

// The sound card: calls the processor every block period, sleeping until the next deadline,
// and records what it "plays" into a tape sized up front (no allocation in the loop).
void device_thread(SpeechPlayer &player, std::vector<float> &tape, std::size_t &recorded,
                   const std::atomic<bool> &running) {
    const auto period = std::chrono::nanoseconds(1000000000LL * kBlock / kRate);
    float block[kBlock];
    auto deadline = Clock::now();
    while (running.load(std::memory_order_acquire)) {
        player.processBlock(block, kBlock);
        if (recorded + kBlock <= tape.size()) {
            std::copy(block, block + kBlock, tape.begin() + static_cast<std::ptrdiff_t>(recorded));
            recorded += kBlock;
        }
        deadline += period;
        std::this_thread::sleep_until(deadline);
    }
}

int fail(const char *what, const voxkit::Error &e) {
    std::fprintf(stderr, "%s failed: %s (%s)\n", what, e.status_name(), e.message.c_str());
    return 1;
}

// Message thread: a job and its ring, ready to hand to the player. JUCE: this runs on the message
// thread (a button handler, a Timer), never in processBlock: submitting and opening allocate.
struct Utterance {
    voxkit::Job job;
    voxkit::AudioRing ring;
};

voxkit::Result<Utterance> prepare(const voxkit::Engine &engine, const char *text,
                                  std::uint32_t max_new_tokens) {
    auto job = engine.submit(
        voxkit::TtsRequest(text).stream().sample_rate(kRate).max_new_tokens(max_new_tokens));
    if (!job) return job.error();
    // Half a second of audio: more than the longest gap between two inference steps.
    auto ring = voxkit::AudioRing::open(*job, kRate / 2);
    if (!ring) return ring.error();
    return Utterance{std::move(*job), std::move(*ring)};
}

}  // namespace

std::uint32_t number(const char *arg) {
    return static_cast<std::uint32_t>(std::strtoul(arg, nullptr, 10));
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 5) {
        std::fprintf(stderr, "usage: %s TTS_MODEL_DIR OUT.wav [CPU_THREADS [MAX_NEW_TOKENS]]\n",
                     argv[0]);
        return 2;
    }
    voxkit::EngineConfig config;
    config.tts_model(argv[1]).device(VOX_DEVICE_CPU).preload(VOX_MODEL_TTS);  // load before playing
    if (argc >= 4) config.cpu_threads(number(argv[3]));
    const std::uint32_t max_new_tokens = argc == 5 ? number(argv[4]) : 0;  // 0: automatic
    auto engine = voxkit::Engine::create(config);
    if (!engine) return fail("creating the engine", engine.error());

    const char *sentences[] = {"Hello from the audio thread.", "A second sentence follows."};
    SpeechPlayer player;
    player.prepareToPlay();
    std::vector<float> tape(static_cast<std::size_t>(kRate) * 120);
    std::size_t recorded = 0;
    std::atomic<bool> running{true};
    std::thread device(device_thread, std::ref(player), std::ref(tape), std::ref(recorded),
                       std::cref(running));

    // Each sentence is submitted while the previous one plays, so the next is ready in time.
    int rc = 0;
    auto next = prepare(*engine, sentences[0], max_new_tokens);
    for (std::size_t i = 0; i < std::size(sentences) && rc == 0; i++) {
        if (!next) {
            rc = fail("preparing a sentence", next.error());
            break;
        }
        Utterance now = std::move(*next);
        player.play(&now.ring);
        if (i + 1 < std::size(sentences)) next = prepare(*engine, sentences[i + 1], max_new_tokens);
        while (!player.finished()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        auto info = now.job.poll();
        if (!info || info->state != VOX_JOB_DONE) {
            std::fprintf(stderr, "sentence %zu did not finish\n", i + 1);
            rc = 1;
        }
        std::printf("sentence %zu played (%llu samples)\n", i + 1,
                    info ? static_cast<unsigned long long>(info->samples_total) : 0ULL);
    }  // `now` goes out of scope only after the player gave its ring back

    running.store(false, std::memory_order_release);
    device.join();
    player.releaseResources();

    std::size_t audible = 0;
    for (std::size_t i = 0; i < recorded; i++) audible += tape[i] != 0.0f;
    std::printf("device: %lld blocks of %d samples at %d Hz, %lld underruns, "
                "worst ring read %.1f us, %zu audible samples\n",
                player.blocks(), kBlock, kRate, player.underruns(),
                static_cast<double>(player.worst_read_ns()) / 1000.0, audible);

    WavWriter wav;
    wav.set_rate(kRate);
    if (!wav.open(argv[2]) || !wav.write(tape.data(), recorded) || !wav.close()) {
        std::perror(argv[2]);
        return 1;
    }
    std::printf("wrote what the device played to %s\n", argv[2]);
    return rc;
}
