#!/usr/bin/env bash
# The C and C++ bindings, built and run against the prebuilt library and tiny random-weight
# checkpoints (no cargo build here):
#   1. examples/c/*.c with cc -std=c99, examples/cpp/*.cpp and tests/cpp/wrapper_test.cpp with
#      g++ -std=c++17 and -std=c++20 -fno-exceptions -fno-rtti (as Unreal-style hosts build),
#      all -Wall -Wextra -Werror; clang++ -std=c++17/20 too when it is installed (syntax only);
#   2. runs examples/c/tts_stream.c (float WAV out), examples/c/transcribe.c on that audio as a
#      16-bit stereo WAV and on a truncated WAV (refused), examples/cpp/speak.cpp (WAV out) and
#      examples/cpp/audio_thread.cpp (a simulated audio device reading an AudioRing), checking
#      every output file;
#   3. runs wrapper_test: in full under AddressSanitizer/UBSan (leaks included); its model-free
#      part in the C++20 no-exceptions build and under valgrind (loading even a tiny model takes
#      about a minute under valgrind: the full test and the examples were run under valgrind by
#      hand); and --old-abi, with a vox_abi_version() that answers 5 preloaded.
#
# Run from the repository root:  VOXKIT_LIB_DIR=target/debug bash scripts/bindings/cpp.sh
#   VOXKIT_LIB_DIR  folder with libvoxkit.so and the voxkit CLI (default target/debug)
#   CC / CXX        compilers (default cc / g++)
# With CI set, a missing tool (valgrind, python3, a compiler) is a failure; elsewhere valgrind
# may be skipped with a message. clang++ is optional everywhere.
set -uo pipefail

if [[ ! -f include/voxkit.h || ! -f bindings/cpp/voxkit.hpp ]]; then
    echo "cpp.sh: run this from the repository root" >&2
    exit 2
fi
LIB_DIR="$(cd "${VOXKIT_LIB_DIR:-target/debug}" 2>/dev/null && pwd)" || {
    echo "cpp.sh: VOXKIT_LIB_DIR=${VOXKIT_LIB_DIR:-target/debug} is not a folder" >&2
    exit 2
}
CLI="$LIB_DIR/voxkit"
CC="${CC:-cc}"
CXX="${CXX:-g++}"
OUT="target/bindings-cpp"
CK="$OUT/checkpoints"
THREADS=2
START=$SECONDS
failures=0

section() { printf '\n==== %s (%ds) ====\n' "$*" $((SECONDS - START)); }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
# A hung example fails the run instead of hanging CI.
run() { timeout 120 "$@"; }

section "tools and library"
for f in "$LIB_DIR/libvoxkit.so" "$CLI"; do
    [[ -f "$f" ]] || { echo "FAIL: $f is missing (build the crate first)"; exit 1; }
done
for tool in "$CC" "$CXX" python3; do
    command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed"; exit 1; }
done
ok "library $LIB_DIR/libvoxkit.so, $("$CXX" --version | head -1)"
valgrind_ok=0
if command -v valgrind >/dev/null; then
    valgrind_ok=1
elif [[ -n "${CI:-}" ]]; then
    fail "valgrind is not installed (CI must install it: apt-get install -y valgrind)"
else
    echo "skip: valgrind is not installed; the valgrind run is skipped (outside CI only)"
fi
CLANG=""
if command -v clang++ >/dev/null; then CLANG=clang++; else echo "note: clang++ not installed; g++ only"; fi

rm -rf "$OUT"
mkdir -p "$OUT" "$CK"

section "checkpoints and compiles (in parallel)"
INC=(-I include -I bindings/cpp -I examples/cpp)
LINK=(-L "$LIB_DIR" -lvoxkit -Wl,-rpath,"$LIB_DIR")
WARN=(-Wall -Wextra -Werror)
pids=()
names=()
bg() {  # bg NAME COMMAND...: runs it in the background, its output in $OUT/NAME.log
    local name="$1"
    shift
    "$@" >"$OUT/$name.log" 2>&1 &
    pids+=($!)
    names+=("$name")
}
bg ck-tts "$CLI" make-checkpoint --preset tiny-customvoice --out "$CK/tts" --tokenizer tests/fixtures/tokenizer
bg ck-asr "$CLI" make-checkpoint --preset tiny-asr --out "$CK/asr" --tokenizer tests/fixtures/asr/tiny
bg ck-base "$CLI" make-checkpoint --preset tiny-base --out "$CK/base" --tokenizer tests/fixtures/tokenizer
for ex in tts_stream transcribe; do
    bg "c-$ex" "$CC" -std=c99 "${WARN[@]}" -I include "examples/c/$ex.c" "${LINK[@]}" -o "$OUT/$ex"
done
cxx_targets=(examples/cpp/speak.cpp examples/cpp/audio_thread.cpp tests/cpp/wrapper_test.cpp)
for src in "${cxx_targets[@]}"; do
    name="$(basename "$src" .cpp)"
    bg "$name-17" "$CXX" -std=c++17 "${WARN[@]}" -pthread "${INC[@]}" "$src" "${LINK[@]}" -o "$OUT/$name"
    # What no step runs is only compiled (-fsyntax-only: the same front-end checks and warnings,
    # no code generation, which two cores cannot spare).
    built=(-fsyntax-only)
    [[ "$name" == wrapper_test ]] && built=("${LINK[@]}" -o "$OUT/$name-20")
    bg "$name-20" "$CXX" -std=c++20 -fno-exceptions -fno-rtti "${WARN[@]}" -pthread "${INC[@]}" "$src" \
        "${built[@]}"
    if [[ -n "$CLANG" ]]; then
        for std in 17 20; do
            bg "$name-clang$std" "$CLANG" -std=c++$std "${WARN[@]}" -pthread "${INC[@]}" "$src" \
                -fsyntax-only
        done
    fi
done
# The "older library" of wrapper_test --old-abi: only vox_abi_version, preloaded over the real one.
printf '#include <stdint.h>\nuint32_t vox_abi_version(void) { return 5; }\n' >"$OUT/abi5.c"
bg abi5-shim "$CC" -shared -fPIC "$OUT/abi5.c" -o "$OUT/abi5.so"
bg wrapper_test-asan "$CXX" -std=c++17 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
    -fno-sanitize-recover=undefined "${WARN[@]}" "${INC[@]}" tests/cpp/wrapper_test.cpp "${LINK[@]}" \
    -o "$OUT/wrapper_test-asan"
for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then
        ok "${names[$i]}"
    else
        fail "${names[$i]}:"
        sed 's/^/    /' "$OUT/${names[$i]}.log"
    fi
done
if [[ "$failures" -ne 0 ]]; then
    echo "cpp.sh: $failures failure(s) before anything ran"
    exit 1
fi

section "C: tts_stream (streaming reads, float WAV out)"
if run "$OUT/tts_stream" "$CK/tts" "Hi." "$OUT/hi.wav" >"$OUT/tts_stream.out" 2>"$OUT/tts_stream.err"; then
    cat "$OUT/tts_stream.out"
    rate="$(sed -n 's/.* at \([0-9]*\) Hz.*/\1/p' "$OUT/tts_stream.out")"
    python3 tests/cpp/audio_files.py check-wav "$OUT/hi.wav" "${rate:-24000}" || fail "tts_stream's WAV"
    tail -c +45 "$OUT/hi.wav" >"$OUT/hi.f32" # the samples after the 44-byte header
    python3 tests/cpp/audio_files.py check-f32 "$OUT/hi.f32" || fail "tts_stream wrote no usable audio"
    python3 tests/cpp/audio_files.py f32-to-wav16 "$OUT/hi.f32" "$OUT/hi16.wav" "${rate:-24000}" ||
        fail "converting tts_stream's audio to a WAV"
else
    fail "tts_stream exited with $?"
    tail -5 "$OUT/tts_stream.err"
fi

section "C: transcribe (tts_stream's float WAV in)"
if run "$OUT/transcribe" "$CK/asr" "$OUT/hi.wav" "$THREADS" >"$OUT/transcribe_f32.out"; then
    grep -q '^text: ' "$OUT/transcribe_f32.out" && ok "transcribe read the float WAV" ||
        fail "transcribe printed no text for the float WAV"
else
    fail "transcribe refused tts_stream's float WAV"
fi

section "C: transcribe (16-bit stereo WAV in, language and text out)"
if run "$OUT/transcribe" "$CK/asr" "$OUT/hi16.wav" "$THREADS" >"$OUT/transcribe.out"; then
    cat "$OUT/transcribe.out"
    if grep -q '^language: ' "$OUT/transcribe.out" && grep -q '^text: ' "$OUT/transcribe.out" &&
        python3 -c 'import sys; open(sys.argv[1], encoding="utf-8", errors="strict").read()' \
            "$OUT/transcribe.out"; then
        ok "transcribe printed a UTF-8 language and text"
    else
        fail "transcribe did not print 'language:' and 'text:' lines in UTF-8"
    fi
else
    fail "transcribe exited with $?"
fi
head -c 1000 "$OUT/hi16.wav" >"$OUT/truncated.wav"
if run "$OUT/transcribe" "$CK/asr" "$OUT/truncated.wav" 2>"$OUT/truncated.err"; then
    fail "transcribe accepted a truncated WAV"
else
    ok "truncated WAV refused: $(cat "$OUT/truncated.err")"
fi

section "C++: speak (streaming, WAV out)"
if run "$OUT/speak" "$CK/tts" "Hi." "$OUT/speak.wav" "$THREADS"; then
    python3 tests/cpp/audio_files.py check-wav "$OUT/speak.wav" 24000 || fail "speak's WAV"
else
    fail "speak exited with $?"
fi

# The model-free checks run meanwhile: the simulated device mostly sleeps.
quick_log="$OUT/model-free.log"
(
    status=0
    section "wrapper_test --old-abi (vox_abi_version() answers 5)"
    LD_PRELOAD="$PWD/$OUT/abi5.so" run "$OUT/wrapper_test" --old-abi ||
        { echo "FAIL: wrapper_test --old-abi exited with $?"; status=1; }
    section "wrapper_test, model-free part (C++20, -fno-exceptions -fno-rtti)"
    run "$OUT/wrapper_test-20" || { echo "FAIL: wrapper_test-20 exited with $?"; status=1; }
    if [[ "$valgrind_ok" == 1 ]]; then
        section "wrapper_test, model-free part (C++17), under valgrind"
        run valgrind -q --error-exitcode=1 --leak-check=full "$OUT/wrapper_test" ||
            { echo "FAIL: wrapper_test under valgrind exited with $?"; status=1; }
    else
        section "wrapper_test, model-free part (C++17)"
        run "$OUT/wrapper_test" || { echo "FAIL: wrapper_test exited with $?"; status=1; }
    fi
    exit $status
) >"$quick_log" 2>&1 &
quick_pid=$!

section "C++: audio_thread (a simulated device pulling from an AudioRing)"
if run "$OUT/audio_thread" "$CK/tts" "$OUT/played.wav" "$THREADS" 20 >"$OUT/audio_thread.out"; then
    cat "$OUT/audio_thread.out"
    grep -q 'underruns, worst ring read' "$OUT/audio_thread.out" || fail "audio_thread printed no device summary"
    grep -Eq ' [1-9][0-9]* audible samples' "$OUT/audio_thread.out" || fail "the device played only silence"
    python3 tests/cpp/audio_files.py check-wav "$OUT/played.wav" 24000 || fail "audio_thread's WAV"
else
    fail "audio_thread exited with $?"
    cat "$OUT/audio_thread.out"
fi

wait "$quick_pid" || fail "the model-free checks (log below)"
cat "$quick_log"

# The full test runs once, in its sanitized C++17 build (the plain build ran under valgrind above).
section "wrapper_test, full, under AddressSanitizer + UBSan (leaks included)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 run "$OUT/wrapper_test-asan" "$CK/tts" "$CK/asr" "$CK/base" ||
    fail "wrapper_test-asan exited with $?"

section "summary"
if [[ "$failures" -ne 0 ]]; then
    echo "cpp.sh: $failures failure(s)"
    exit 1
fi
echo "cpp.sh: all checks passed in $((SECONDS - START)) s"
