// voxkit.hpp: a header-only C++17 wrapper over voxkit's C ABI (voxkit.h). It owns exactly what
// the C ABI hands out (an engine, jobs, voices, audio rings) and frees each once, in destructors.
//
// Errors are values, not exceptions: every fallible call returns voxkit::Result<T>, which holds
// either the value or an Error {status, message}. Why:
//  - hosts such as Unreal Engine, console toolchains and many audio plug-ins build with exceptions
//    off; a throwing wrapper would be unusable there, a Result works with exceptions on or off;
//  - the C ABI reports a failure as a status plus a per-thread message, which an Error carries
//    one to one, with nothing translated or lost;
//  - the real-time read (AudioRing::read) may not throw anyway, so one model serves every call.
// Result is [[nodiscard]]: ignoring a failure is a compiler warning. Taking the value of a failed
// Result is a programming error and calls std::abort() (there is no exception to throw).
//
// Lifetimes: an Engine must outlive its Jobs (they release themselves through it). Voices and
// AudioRings are independent of the engine: a ring stays readable after its job and engine are
// gone. Handles are move-only; a moved-from handle is empty: calls on it fail with the status the
// library gives a null handle (VOX_ERR_NULL_POINTER), and releasing or closing it does nothing.
#ifndef VOXKIT_HPP
#define VOXKIT_HPP

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "voxkit.h"

static_assert(VOX_ABI_VERSION >= 6, "voxkit.hpp needs voxkit.h of ABI 6 or newer (audio rings)");

namespace voxkit {

// The C ABI version this wrapper was written for; Engine::create and Voice::load refuse an older
// library, whose missing functions or smaller structs this wrapper would misuse.
inline constexpr std::uint32_t kAbiVersion = 6;

using Status = VoxStatus;

struct Error {
    Status status = VOX_OK;
    std::string message;
    const char *status_name() const noexcept { return vox_status_string(status); }
};

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : value_(std::move(value)) {}
    Result(Error error) : error_(std::move(error)) {}

    bool ok() const noexcept { return value_.has_value(); }
    explicit operator bool() const noexcept { return ok(); }
    Status status() const noexcept { return ok() ? VOX_OK : error_.status; }
    const Error &error() const noexcept { return error_; }

    T &value() & {
        check();
        return *value_;
    }
    const T &value() const & {
        check();
        return *value_;
    }
    T &&value() && {
        check();
        return std::move(*value_);
    }
    T *operator->() { return &value(); }
    const T *operator->() const { return &value(); }
    T &operator*() & { return value(); }
    const T &operator*() const & { return value(); }

private:
    void check() const {
        if (ok()) return;
        std::fprintf(stderr, "voxkit: value() of a failed Result: %s (%s)\n", error_.status_name(),
                     error_.message.c_str());
        std::abort();
    }
    std::optional<T> value_;
    Error error_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)) {}
    bool ok() const noexcept { return error_.status == VOX_OK; }
    explicit operator bool() const noexcept { return ok(); }
    Status status() const noexcept { return error_.status; }
    const Error &error() const noexcept { return error_; }

private:
    Error error_;
};

// The calling thread's last failure message (vox_last_error).
inline std::string last_error() {
    std::string s(vox_last_error(nullptr, 0), '\0');
    vox_last_error(s.data(), s.size());
    s.resize(std::strlen(s.c_str()));
    return s;
}

inline const char *version() noexcept { return vox_version(); }

inline Result<void> check_abi() {
    std::uint32_t have = vox_abi_version();
    if (have >= kAbiVersion) return {};
    return Error{VOX_ERR_UNSUPPORTED, "libvoxkit implements C ABI " + std::to_string(have) +
                                          "; voxkit.hpp needs " + std::to_string(kAbiVersion) +
                                          " or newer: update the library"};
}

namespace detail {

inline Error fail(Status status) { return Error{status, last_error()}; }

inline Result<void> check(Status status) {
    if (status == VOX_OK) return {};
    return fail(status);
}

// Runs a vox_*_init on a scratch buffer and keeps this header's prefix. A newer library's init
// writes its own, larger struct (voxkit.h: "The *_init functions write this library's whole
// struct"), which would overrun ours; structs only grow at the end, so the prefix is ours.
template <class T>
T init_struct(Status (*init)(T *)) {
    union Scratch {
        T value;
        std::max_align_t align;
        unsigned char bytes[4096];
    };
    static_assert(sizeof(T) <= sizeof(Scratch::bytes), "scratch too small");
    Scratch scratch;
    std::memset(&scratch, 0, sizeof scratch);
    init(&scratch.value);
    T out;
    std::memcpy(&out, &scratch, sizeof out);
    out.struct_size = sizeof(T);
    return out;
}

// An output struct with its struct_size set, zeroed so fields an older library leaves alone are 0.
template <class T>
T out_struct() {
    T out;
    std::memset(&out, 0, sizeof out);
    out.struct_size = sizeof(T);
    return out;
}

using GetString = Status (*)(const VoxEngine *, VoxJobId, char *, std::size_t, std::size_t *);

// Size query, then copy; retried when the string grew in between (a job that finished meanwhile).
inline Result<std::string> get_string(GetString get, const VoxEngine *engine, VoxJobId job) {
    std::size_t need = 0;
    Status st = get(engine, job, nullptr, 0, &need);
    for (int attempt = 0; attempt < 4; attempt++) {
        if (st != VOX_OK && st != VOX_ERR_BUFFER_TOO_SMALL) return fail(st);
        std::string s(need ? need : 1, '\0');
        st = get(engine, job, s.data(), s.size(), &need);
        if (st == VOX_OK) {
            s.resize(std::strlen(s.c_str()));
            return s;
        }
    }
    return fail(st);
}

inline const char *c_str_or_null(const std::string &s) { return s.empty() ? nullptr : s.c_str(); }

}  // namespace detail

// Engine settings: the library's defaults, then what you change. Model folders are kept here as
// strings and handed to the library at Engine::create.
class EngineConfig {
public:
    EngineConfig() : raw_(detail::init_struct(&vox_engine_config_init)) {}

    EngineConfig &tts_model(std::string dir) {
        tts_ = std::move(dir);
        return *this;
    }
    EngineConfig &asr_model(std::string dir) {
        asr_ = std::move(dir);
        return *this;
    }
    EngineConfig &device(std::int32_t device, std::int32_t index = 0) {
        raw_.device = device;
        raw_.device_index = index;
        return *this;
    }
    EngineConfig &cpu_threads(std::uint32_t n) {
        raw_.cpu_threads = n;
        return *this;
    }
    EngineConfig &max_batch(std::uint32_t n) {
        raw_.max_batch = n;
        return *this;
    }
    EngineConfig &preload(std::uint32_t models) {
        raw_.preload = models;
        return *this;
    }
    EngineConfig &quantization(std::uint32_t q) {
        raw_.quantization = q;
        return *this;
    }
    // The callback runs on the engine's worker thread; it must not throw (see VoxLogCallback).
    EngineConfig &log(VoxLogCallback callback, void *user_data, std::int32_t level = VOX_LOG_WARN) {
        raw_.log_callback = callback;
        raw_.log_user_data = user_data;
        raw_.log_level = level;
        return *this;
    }
    // Every other field. Its model-folder pointers are replaced by tts_model()/asr_model().
    VoxEngineConfig &raw() noexcept { return raw_; }

    VoxEngineConfig to_c() const {
        VoxEngineConfig c = raw_;
        c.tts_model_dir = detail::c_str_or_null(tts_);
        c.asr_model_dir = detail::c_str_or_null(asr_);
        return c;
    }

private:
    VoxEngineConfig raw_;
    std::string tts_, asr_;
};

// A cloned voice (Base checkpoints). Immutable: share it between threads by const reference.
class Voice {
public:
    Voice() noexcept = default;
    Voice(Voice &&o) noexcept : voice_(std::exchange(o.voice_, nullptr)) {}
    Voice &operator=(Voice &&o) noexcept {
        if (this != &o) {
            reset();
            voice_ = std::exchange(o.voice_, nullptr);
        }
        return *this;
    }
    Voice(const Voice &) = delete;
    Voice &operator=(const Voice &) = delete;
    ~Voice() { reset(); }

    // Reads bytes that save() wrote (any engine running the same checkpoint may use the voice).
    static Result<Voice> load(const std::uint8_t *data, std::size_t len) {
        if (auto abi = check_abi(); !abi) return abi.error();
        VoxVoice *v = nullptr;
        Status st = vox_voice_load(data, len, &v);
        if (st != VOX_OK) return detail::fail(st);
        return Voice(v);
    }

    Result<std::vector<std::uint8_t>> save() const {
        std::size_t need = 0;
        Status st = vox_voice_save(voice_, nullptr, 0, &need);
        if (st != VOX_OK && st != VOX_ERR_BUFFER_TOO_SMALL) return detail::fail(st);
        std::vector<std::uint8_t> bytes(need);
        st = vox_voice_save(voice_, bytes.data(), bytes.size(), &need);
        if (st != VOX_OK) return detail::fail(st);
        bytes.resize(need);
        return bytes;
    }

    const VoxVoice *get() const noexcept { return voice_; }
    explicit operator bool() const noexcept { return voice_ != nullptr; }

private:
    friend class Engine;
    explicit Voice(VoxVoice *v) noexcept : voice_(v) {}
    void reset() noexcept {
        if (voice_) vox_voice_release(voice_);
        voice_ = nullptr;
    }
    VoxVoice *voice_ = nullptr;
};

// Reference audio for Engine::create_voice. The samples are not copied here: keep them alive
// until create_voice returns (the library copies them then).
class VoiceRequest {
public:
    VoiceRequest(const float *pcm, std::uint64_t frames, std::uint32_t sample_rate,
                 std::uint32_t channels = 1)
        : raw_(detail::init_struct(&vox_voice_request_init)) {
        raw_.pcm = pcm;
        raw_.frames = frames;
        raw_.sample_rate = sample_rate;
        raw_.channels = channels;
    }
    VoiceRequest &transcript(std::string text) {
        transcript_ = std::move(text);
        return *this;
    }
    VoiceRequest &denoise(float strength) {
        raw_.denoise = 1;
        raw_.denoise_strength = strength;
        return *this;
    }
    VoiceRequest &timeout_ms(std::uint32_t ms) {
        raw_.timeout_ms = ms;
        return *this;
    }
    VoxVoiceRequest &raw() noexcept { return raw_; }

    VoxVoiceRequest to_c() const {
        VoxVoiceRequest c = raw_;
        c.transcript = detail::c_str_or_null(transcript_);
        return c;
    }

private:
    VoxVoiceRequest raw_;
    std::string transcript_;
};

// A text-to-speech request; everything in it is copied at submit.
class TtsRequest {
public:
    explicit TtsRequest(std::string text)
        : raw_(detail::init_struct(&vox_tts_request_init)), text_(std::move(text)) {}

    TtsRequest &language(std::string s) {

        language_ = std::move(s);

        return *this;

    }
    TtsRequest &speaker(std::string s) {
        speaker_ = std::move(s);
        return *this;
    }
    TtsRequest &instruct(std::string s) {
        instruct_ = std::move(s);
        return *this;
    }
    TtsRequest &stream(bool on = true) {
        raw_.stream = on ? 1 : 0;
        return *this;
    }
    TtsRequest &max_new_tokens(std::uint32_t n) {
        raw_.max_new_tokens = n;
        return *this;
    }
    TtsRequest &sample_rate(std::uint32_t hz) {
        raw_.sample_rate = hz;
        return *this;
    }
    TtsRequest &priority(std::int32_t p) {
        raw_.priority = p;
        return *this;
    }
    TtsRequest &seed(std::uint64_t seed) {
        raw_.seed = seed;
        raw_.use_seed = 1;
        return *this;
    }
    // Not owned: the voice must stay alive until the submit returns (the job then holds its own).
    TtsRequest &voice(const Voice &v) {
        raw_.voice = v.get();
        return *this;
    }
    // Sampling, denoise and the rest. Its string pointers are replaced by the setters' strings.
    VoxTtsRequest &raw() noexcept { return raw_; }

    VoxTtsRequest to_c() const {
        VoxTtsRequest c = raw_;
        c.text = text_.c_str();  // "" stays "" so that the library reports the empty text
        c.language = detail::c_str_or_null(language_);
        c.speaker = detail::c_str_or_null(speaker_);
        c.instruct = detail::c_str_or_null(instruct_);
        return c;
    }

private:
    VoxTtsRequest raw_;
    std::string text_, language_, speaker_, instruct_;
};

// A speech-recognition request. The samples are not copied here: keep them alive until the
// submit returns (the library copies them then).
class AsrRequest {
public:
    AsrRequest(const float *pcm, std::uint64_t frames, std::uint32_t sample_rate,
               std::uint32_t channels = 1)
        : raw_(detail::init_struct(&vox_asr_request_init)) {
        raw_.pcm = pcm;
        raw_.frames = frames;
        raw_.sample_rate = sample_rate;
        raw_.channels = channels;
    }
    AsrRequest &language(std::string s) {
        language_ = std::move(s);
        return *this;
    }
    AsrRequest &context(std::string s) {
        context_ = std::move(s);
        return *this;
    }
    AsrRequest &max_new_tokens(std::uint32_t n) {
        raw_.max_new_tokens = n;
        return *this;
    }
    AsrRequest &priority(std::int32_t p) {
        raw_.priority = p;
        return *this;
    }
    VoxAsrRequest &raw() noexcept { return raw_; }

    VoxAsrRequest to_c() const {
        VoxAsrRequest c = raw_;
        c.language = detail::c_str_or_null(language_);
        c.context = detail::c_str_or_null(context_);
        return c;
    }

private:
    VoxAsrRequest raw_;
    std::string language_, context_;
};

// One job of an engine; released (cancelled first if still running) when destroyed.
class Job {
public:
    Job() noexcept = default;
    Job(Job &&o) noexcept
        : engine_(std::exchange(o.engine_, nullptr)), id_(std::exchange(o.id_, 0)) {}
    Job &operator=(Job &&o) noexcept {
        if (this != &o) {
            reset();
            engine_ = std::exchange(o.engine_, nullptr);
            id_ = std::exchange(o.id_, 0);
        }
        return *this;
    }
    Job(const Job &) = delete;
    Job &operator=(const Job &) = delete;
    ~Job() { reset(); }

    // Takes ownership of a job submitted through the C API (it will be vox_release'd).
    static Job adopt(const VoxEngine *engine, VoxJobId id) noexcept { return Job(engine, id); }

    VoxJobId id() const noexcept { return id_; }
    explicit operator bool() const noexcept { return engine_ != nullptr; }

    // Never waits for inference: callable every frame.
    Result<VoxJobInfo> poll() const {
        VoxJobInfo info = detail::out_struct<VoxJobInfo>();
        Status st = vox_poll(engine_, id_, &info);
        if (st != VOX_OK) return detail::fail(st);
        return info;
    }

    // Blocks until the job ended (its state says how) or the timeout passed (VOX_ERR_TIMEOUT).
    Result<VoxJobInfo> wait(std::uint32_t timeout_ms = VOX_WAIT_INFINITE) const {
        VoxJobInfo info = detail::out_struct<VoxJobInfo>();
        Status st = vox_wait(engine_, id_, timeout_ms, &info);
        if (st != VOX_OK) return detail::fail(st);
        return info;
    }

    // Copies up to `capacity` unread samples into dst; returns how many (0: none new yet).
    Result<std::size_t> read_audio(float *dst, std::size_t capacity) {
        std::size_t n = 0;
        Status st = vox_read_audio(engine_, id_, dst, capacity, &n);
        if (st != VOX_OK) return detail::fail(st);
        return n;
    }

    // Appends every sample readable now to `out`; returns how many were appended.
    Result<std::size_t> read_audio(std::vector<float> &out) {
        std::size_t total = 0, chunk = 4096;
        for (;;) {
            std::size_t old = out.size();
            out.resize(old + chunk);
            std::size_t n = 0;
            Status st = vox_read_audio(engine_, id_, out.data() + old, chunk, &n);
            out.resize(old + n);
            if (st != VOX_OK) return detail::fail(st);
            total += n;
            if (n < chunk) return total;
            chunk *= 2;
        }
    }

    // ASR: the transcript and language (empty until done); any job: why it failed.
    Result<std::string> text() const { return string_of(&vox_get_text); }
    Result<std::string> language() const { return string_of(&vox_get_language); }
    Result<std::string> error_message() const { return string_of(&vox_job_error); }

    Result<VoxTimings> timings() const {
        VoxTimings t = detail::out_struct<VoxTimings>();
        Status st = vox_get_timings(engine_, id_, &t);
        if (st != VOX_OK) return detail::fail(st);
        return t;
    }

    Result<void> cancel() { return detail::check(vox_cancel(engine_, id_)); }

    // Releases now (the destructor would otherwise); the Job is empty afterwards.
    Result<void> release() {
        if (!engine_) return {};
        Status st = vox_release(engine_, id_);
        engine_ = nullptr;
        id_ = 0;
        return detail::check(st);
    }

    const VoxEngine *engine() const noexcept { return engine_; }

private:
    friend class Engine;
    Job(const VoxEngine *engine, VoxJobId id) noexcept : engine_(engine), id_(id) {}
    Result<std::string> string_of(detail::GetString get) const {
        return detail::get_string(get, engine_, id_);
    }
    void reset() noexcept {
        if (engine_) vox_release(engine_, id_);  // its status is moot: nothing is left to free
        engine_ = nullptr;
        id_ = 0;
    }
    const VoxEngine *engine_ = nullptr;
    VoxJobId id_ = 0;
};

// What one AudioRing::read delivered. `status` is VOX_OK unless the ring handle is empty.
struct RingRead {
    std::size_t count;
    bool ended;  // the job ended and everything it produced has been read: nothing more comes
    Status status;
};

// A wait-free reader of one TTS job's audio, for a real-time (audio) thread. Open and close it
// on another thread (both allocate); read() is the only call meant for the audio thread.
class AudioRing {
public:
    AudioRing() noexcept = default;
    AudioRing(AudioRing &&o) noexcept : ring_(std::exchange(o.ring_, nullptr)) {}
    AudioRing &operator=(AudioRing &&o) noexcept {
        if (this != &o) {
            reset();
            ring_ = std::exchange(o.ring_, nullptr);
        }
        return *this;
    }
    AudioRing(const AudioRing &) = delete;
    AudioRing &operator=(const AudioRing &) = delete;
    ~AudioRing() { reset(); }

    // From now on the job's audio comes only through the ring (Job::read_audio fails until it
    // is closed). `capacity` samples (1 .. 1<<24) bound what the ring holds at once.
    static Result<AudioRing> open(const Job &job, std::size_t capacity) {
        VoxAudioRing *r = nullptr;
        Status st = vox_audio_ring_open(job.engine(), job.id(), capacity, &r);
        if (st != VOX_OK) return detail::fail(st);
        return AudioRing(r);
    }

    // Real-time safe: no allocation, lock, system call or exception; one reader thread at a time.
    RingRead read(float *dst, std::size_t capacity) noexcept {
        std::size_t n = 0;
        std::uint32_t flags = 0;
        Status st = vox_audio_ring_read(ring_, dst, capacity, &n, &flags);
        return RingRead{st == VOX_OK ? n : 0, st == VOX_OK && (flags & VOX_RING_ENDED) != 0, st};
    }

    // Closes now (the destructor would otherwise); unread samples go back to the job.
    Result<void> close() {
        if (!ring_) return {};
        Status st = vox_audio_ring_close(std::exchange(ring_, nullptr));
        return detail::check(st);
    }

    explicit operator bool() const noexcept { return ring_ != nullptr; }

private:
    explicit AudioRing(VoxAudioRing *r) noexcept : ring_(r) {}
    void reset() noexcept {
        if (ring_) vox_audio_ring_close(ring_);
        ring_ = nullptr;
    }
    VoxAudioRing *ring_ = nullptr;
};

// An engine: its worker thread, models and jobs. Destroyed (jobs cancelled, worker joined) by
// the destructor, which must run when no other thread uses the engine and after its Jobs.
class Engine {
public:
    Engine() noexcept = default;
    Engine(Engine &&o) noexcept : engine_(std::exchange(o.engine_, nullptr)) {}
    Engine &operator=(Engine &&o) noexcept {
        if (this != &o) {
            reset();
            engine_ = std::exchange(o.engine_, nullptr);
        }
        return *this;
    }
    Engine(const Engine &) = delete;
    Engine &operator=(const Engine &) = delete;
    ~Engine() { reset(); }

    static Result<Engine> create(const EngineConfig &config) {
        if (auto abi = check_abi(); !abi) return abi.error();
        VoxEngineConfig c = config.to_c();
        VoxEngine *e = nullptr;
        Status st = vox_engine_create(&c, &e);
        if (st != VOX_OK) return detail::fail(st);
        return Engine(e);
    }

    // Both return at once; the job runs on the engine's worker.
    Result<Job> submit(const TtsRequest &request) const {
        VoxTtsRequest c = request.to_c();
        VoxJobId id = 0;
        Status st = vox_tts_submit(engine_, &c, &id);
        if (st != VOX_OK) return detail::fail(st);
        return Job(engine_, id);
    }
    Result<Job> submit(const AsrRequest &request) const {
        VoxAsrRequest c = request.to_c();
        VoxJobId id = 0;
        Status st = vox_asr_submit(engine_, &c, &id);
        if (st != VOX_OK) return detail::fail(st);
        return Job(engine_, id);
    }

    // Blocks while the model's encoders run: call it from a loading thread.
    Result<Voice> create_voice(const VoiceRequest &request) const {
        VoxVoiceRequest c = request.to_c();
        VoxVoice *v = nullptr;
        Status st = vox_voice_create(engine_, &c, &v);
        if (st != VOX_OK) return detail::fail(st);
        return Voice(v);
    }

    // `kind` is VOX_KIND_TTS or VOX_KIND_ASR. Its strings live as long as the engine.
    Result<VoxModelInfo> model_info(std::int32_t kind) const {
        VoxModelInfo info = detail::out_struct<VoxModelInfo>();
        Status st = vox_engine_model_info(engine_, kind, &info);
        if (st != VOX_OK) return detail::fail(st);
        return info;
    }

    Result<VoxEngineStats> stats() const {
        VoxEngineStats s = detail::out_struct<VoxEngineStats>();
        Status st = vox_engine_stats(engine_, &s);
        if (st != VOX_OK) return detail::fail(st);
        return s;
    }

    VoxEngine *get() const noexcept { return engine_; }
    explicit operator bool() const noexcept { return engine_ != nullptr; }

private:
    explicit Engine(VoxEngine *e) noexcept : engine_(e) {}
    void reset() noexcept {
        vox_engine_destroy(engine_);  // NULL is a no-op
        engine_ = nullptr;
    }
    VoxEngine *engine_ = nullptr;
};

}  // namespace voxkit

#endif  // VOXKIT_HPP
