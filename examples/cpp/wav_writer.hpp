// A streaming writer of 32-bit float mono WAV files for the C++ examples: samples are appended as
// they arrive and the sizes in the header are filled in by close(), so a long synthesis never has
// to be held in memory.
#ifndef VOXKIT_EXAMPLES_WAV_WRITER_HPP
#define VOXKIT_EXAMPLES_WAV_WRITER_HPP

#include <cstdint>
#include <cstdio>
#include <cstring>

class WavWriter {
public:
    WavWriter() = default;
    WavWriter(const WavWriter &) = delete;
    WavWriter &operator=(const WavWriter &) = delete;
    ~WavWriter() {
        if (file_) std::fclose(file_);
    }

    // Writes a placeholder header; close() rewrites it with the real rate and sizes.
    bool open(const char *path) {
        file_ = std::fopen(path, "wb");
        return file_ && write_header(0);
    }

    bool write(const float *samples, std::size_t count) {
        for (std::size_t i = 0; i < count; i++) {
            std::uint32_t bits;
            std::memcpy(&bits, &samples[i], sizeof bits);
            if (!put32(bits)) return false;
        }
        frames_ += count;
        return true;
    }

    bool close() {
        if (!file_) return false;
        bool ok = std::fseek(file_, 0, SEEK_SET) == 0 && write_header(rate_);
        ok = std::fclose(file_) == 0 && ok;
        file_ = nullptr;
        return ok;
    }

    void set_rate(std::uint32_t rate) { rate_ = rate; }
    std::uint64_t frames() const { return frames_; }

private:
    // WAVE_FORMAT_IEEE_FLOAT: an 18-byte fmt chunk and a fact chunk, as the format asks of
    // non-PCM data.
    bool write_header(std::uint32_t rate) {
        std::uint32_t data = static_cast<std::uint32_t>(frames_ * 4);
        return std::fwrite("RIFF", 1, 4, file_) == 4 && put32(4 + 26 + 12 + 8 + data) &&
               std::fwrite("WAVEfmt ", 1, 8, file_) == 8 && put32(18) && put16(3) && put16(1) &&
               put32(rate) && put32(rate * 4) && put16(4) && put16(32) && put16(0) &&
               std::fwrite("fact", 1, 4, file_) == 4 && put32(4) &&
               put32(static_cast<std::uint32_t>(frames_)) &&
               std::fwrite("data", 1, 4, file_) == 4 && put32(data);
    }
    bool put16(std::uint32_t v) {
        unsigned char b[2] = {static_cast<unsigned char>(v), static_cast<unsigned char>(v >> 8)};
        return std::fwrite(b, 1, 2, file_) == 2;
    }
    bool put32(std::uint32_t v) { return put16(v & 0xFFFF) && put16(v >> 16); }

    std::FILE *file_ = nullptr;
    std::uint64_t frames_ = 0;
    std::uint32_t rate_ = 0;
};

#endif  // VOXKIT_EXAMPLES_WAV_WRITER_HPP
