#!/usr/bin/env bash
# Checks voxkit's C ABI from the outside, as a C/C++ host sees it:
#   1. builds the cdylib (debug),
#   2. checks that it exports only `vox_*` symbols and every function the header declares,
#   3. compiles tests/c/abi_test.c (C99), tests/c/header_cpp.cpp (C++17) and examples/c/*.c
#      warning-free,
#   4. runs both, the C test under valgrind when it is installed,
#   5. writes a tiny checkpoint and hostile copies of it, runs tests/c/checkpoint_test.c on them,
#      (under valgrind too), tests/c/voice_test.c on two tiny Base checkpoints (cloned voices
#      through the ABI; natively), and compiles and runs the README's C example against it.
#
# Run from the repository root:  bash scripts/c-abi-check.sh [--skip-build] [--no-valgrind]
#   --skip-build   (or VOXKIT_SKIP_BUILD=1) reuse target/debug/libvoxkit.so if it exists
#   --no-valgrind  (or VOXKIT_NO_VALGRIND=1) run the C test without valgrind
#   CC / CXX pick the compilers (default: cc / g++).
set -euo pipefail

skip_build="${VOXKIT_SKIP_BUILD:-0}"
no_valgrind="${VOXKIT_NO_VALGRIND:-0}"
for arg in "$@"; do
    case "$arg" in
        --skip-build) skip_build=1 ;;
        --no-valgrind) no_valgrind=1 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "c-abi-check: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

if [[ ! -f Cargo.toml || ! -f include/voxkit.h ]]; then
    echo "c-abi-check: run this from the repository root (Cargo.toml, include/voxkit.h)" >&2
    exit 2
fi

CC="${CC:-cc}"
CXX="${CXX:-g++}"
LIB_DIR="$PWD/target/debug"
LIB="$LIB_DIR/libvoxkit.so"
BUILD_DIR="tests/c/build"
failures=0

section() { printf '\n==== %s ====\n' "$*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# ---------------------------------------------------------------------------------------------
section "cargo build (debug)"
if [[ "$skip_build" == 1 && -f "$LIB" ]]; then
    echo "skipped (--skip-build); using $LIB"
else
    [[ "$skip_build" == 1 ]] && echo "$LIB is missing: building anyway"
    cargo build
fi
if [[ ! -f "$LIB" ]]; then
    echo "FAIL: $LIB was not built" >&2
    exit 1
fi
echo "library: $LIB"

# ---------------------------------------------------------------------------------------------
section "exported symbols (nm -D --defined-only)"
symbols="$(nm -D --defined-only "$LIB")"
# Defined global symbols: text, data, bss, read-only data, weak, unique, indirect.
exported="$(awk 'NF >= 3 && $2 ~ /^[TDBRGSVWui]$/ { print $3 }' <<<"$symbols" | sed 's/@.*//' | sort -u)"
offenders="$(grep -Ev '^(vox_.*|_init|_fini|rust_eh_personality)$' <<<"$exported" || true)"
count="$(grep -c '^vox_' <<<"$exported" || true)"
if [[ -n "$offenders" ]]; then
    fail "exported symbols without the vox_ prefix:"
    sed 's/^/    /' <<<"$offenders"
else
    echo "ok: all $count exported functions/data start with vox_"
fi

# Every function the header declares must be exported (and nothing vox_ the header lacks).
declared="$(grep -oE '\bvox_[a-z0-9_]+\(' include/voxkit.h | tr -d '(' | sort -u)"
exported_vox="$(grep '^vox_' <<<"$exported" | sort -u || true)"
missing="$(comm -23 <(echo "$declared") <(echo "$exported_vox"))"
extra="$(comm -13 <(echo "$declared") <(echo "$exported_vox"))"
if [[ -n "$missing" ]]; then
    fail "declared in include/voxkit.h but not exported:"
    sed 's/^/    /' <<<"$missing"
fi
if [[ -n "$extra" ]]; then
    fail "exported but not declared in include/voxkit.h:"
    sed 's/^/    /' <<<"$extra"
fi
if [[ -z "$missing" && -z "$extra" ]]; then
    echo "ok: the $(wc -l <<<"$declared") functions declared in include/voxkit.h are exactly the vox_ exports"
fi

# ---------------------------------------------------------------------------------------------
section "compile tests/c/abi_test.c (C99)"
mkdir -p "$BUILD_DIR"
c_built=0
if "$CC" -std=c99 -Wall -Wextra -Werror -I include tests/c/abi_test.c \
        -L target/debug -lvoxkit -Wl,-rpath,"$LIB_DIR" -o "$BUILD_DIR/abi_test"; then
    echo "ok: $BUILD_DIR/abi_test"
    c_built=1
else
    fail "tests/c/abi_test.c does not compile"
fi

# ---------------------------------------------------------------------------------------------
section "compile tests/c/header_cpp.cpp (C++17)"
if "$CXX" -std=c++17 -Wall -Wextra -Werror -I include tests/c/header_cpp.cpp \
        -L target/debug -lvoxkit -Wl,-rpath,"$LIB_DIR" -o "$BUILD_DIR/header_cpp"; then
    echo "ok: $BUILD_DIR/header_cpp"
    if "$BUILD_DIR/header_cpp"; then
        echo "ok: header_cpp runs (exit 0)"
    else
        fail "header_cpp exited with $?"
    fi
else
    fail "tests/c/header_cpp.cpp does not compile"
fi

# ---------------------------------------------------------------------------------------------
section "compile examples/c/*.c (C99)"
for ex in examples/c/*.c; do
    if "$CC" -std=c99 -Wall -Wextra -Werror -I include "$ex" \
            -L target/debug -lvoxkit -Wl,-rpath,"$LIB_DIR" -o "$BUILD_DIR/$(basename "$ex" .c)"; then
        echo "ok: $ex"
    else
        fail "$ex does not compile"
    fi
done

# ---------------------------------------------------------------------------------------------
if [[ "$c_built" == 1 ]]; then
    if [[ "$no_valgrind" != 1 ]] && command -v valgrind >/dev/null 2>&1; then
        section "run abi_test under valgrind"
        runner=(valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite)
    else
        section "run abi_test (no valgrind)"
        runner=()
    fi
    if ${runner[@]+"${runner[@]}"} "$BUILD_DIR/abi_test"; then
        echo "ok: abi_test passed"
    else
        fail "abi_test exited with $?"
    fi
fi

# ---------------------------------------------------------------------------------------------
section "checkpoint cases: tests/c/checkpoint_test.c and the README's C example"
# A tiny random-weight checkpoint (the real layout, small shapes) and hostile copies of it.
CK_DIR="$BUILD_DIR/checkpoints"
rm -rf "$CK_DIR"
mkdir -p "$CK_DIR"
ck_ready=0
if ! target/debug/voxkit make-checkpoint --preset tiny-customvoice --out "$CK_DIR/tiny" \
        --tokenizer tests/fixtures/tokenizer >/dev/null; then
    fail "voxkit make-checkpoint (tiny-customvoice) failed"
elif ! python3 tests/c/prepare_checkpoints.py "$CK_DIR/tiny" "$CK_DIR"; then
    fail "tests/c/prepare_checkpoints.py failed"
else
    ck_ready=1
fi
if [[ "$ck_ready" == 1 ]]; then
    if "$CC" -std=c99 -Wall -Wextra -Werror -I include tests/c/checkpoint_test.c -lm \
            -L target/debug -lvoxkit -Wl,-rpath,"$LIB_DIR" -o "$BUILD_DIR/checkpoint_test"; then
        if ${runner[@]+"${runner[@]}"} "$BUILD_DIR/checkpoint_test" "$CK_DIR/tiny" "$CK_DIR/huge" "$CK_DIR/nan"; then
            echo "ok: checkpoint_test passed"
        else
            fail "checkpoint_test exited with $?"
        fi
    else
        fail "tests/c/checkpoint_test.c does not compile"
    fi
    # Cloned voices: two Base checkpoints (different weights) and the CustomVoice one.
    if ! target/debug/voxkit make-checkpoint --preset tiny-base --out "$CK_DIR/base" \
            --tokenizer tests/fixtures/tokenizer >/dev/null ||
        ! target/debug/voxkit make-checkpoint --preset tiny-base --seed 8 --out "$CK_DIR/base2" \
            --tokenizer tests/fixtures/tokenizer >/dev/null; then
        fail "voxkit make-checkpoint (tiny-base) failed"
    elif "$CC" -std=c99 -Wall -Wextra -Werror -I include tests/c/voice_test.c -lm \
            -L target/debug -lvoxkit -Wl,-rpath,"$LIB_DIR" -o "$BUILD_DIR/voice_test"; then
        # Natively: under valgrind its model work takes ~3 minutes of CI (run by hand with
        # valgrind on 2026-12-06: 0 errors, 0 bytes definitely lost).
        if "$BUILD_DIR/voice_test" "$CK_DIR/base" "$CK_DIR/base2" "$CK_DIR/tiny"; then
            echo "ok: voice_test passed"
        else
            fail "voice_test exited with $?"
        fi
    else
        fail "tests/c/voice_test.c does not compile"
    fi
    # The README's C example, exactly as written there, compiled and run as its text says.
    awk '/^## A short example \(C\)/ { inside = 1 } inside && /^```c$/ { code = 1; next }
         code && /^```$/ { exit } code { print }' README.md > "$BUILD_DIR/hello.c"
    if [[ ! -s "$BUILD_DIR/hello.c" ]]; then
        fail "README.md has no C example under '## A short example (C)'"
    elif "$CC" -std=c99 -Wall -Wextra -Werror "$BUILD_DIR/hello.c" -I include -L target/debug -lvoxkit \
            -Wl,-rpath,"$LIB_DIR" -o "$BUILD_DIR/hello"; then
        rm -f "$BUILD_DIR/hello.f32"
        if (cd "$BUILD_DIR" && ./hello "checkpoints/tiny") && [[ -s "$BUILD_DIR/hello.f32" ]]; then
            echo "ok: the README example wrote $(($(stat -c %s "$BUILD_DIR/hello.f32") / 4)) samples"
        else
            fail "the README example did not produce audio"
        fi
    else
        fail "the README's C example does not compile"
    fi
fi

# ---------------------------------------------------------------------------------------------
# The C test programs again, built with AddressSanitizer (its LeakSanitizer on at exit): the C
# side's every access checked, and every heap block of the process — the library's included —
# accounted for at exit; voice_test, too slow for valgrind in CI, runs here at native speed.
# allocator_may_return_null: a huge request must fail as glibc's malloc does (the tests ask for
# absurd sizes on purpose: the library turns the failure into VOX_ERR_OUT_OF_MEMORY).
if [[ "$c_built" == 1 && "$ck_ready" == 1 && "${VOXKIT_NO_ASAN:-0}" != 1 ]]; then
    section "the C tests under AddressSanitizer + LeakSanitizer"
    asan_run() { # name, args...
        local name=$1
        shift
        if ! "$CC" -std=c99 -g -fsanitize=address -fno-omit-frame-pointer -I include "tests/c/$name.c" -lm \
                -L target/debug -lvoxkit -Wl,-rpath,"$LIB_DIR" -o "$BUILD_DIR/$name-asan"; then
            fail "tests/c/$name.c does not compile with -fsanitize=address"
        elif ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 "$BUILD_DIR/$name-asan" "$@" >"$BUILD_DIR/$name-asan.log" 2>&1; then
            echo "ok: $name: $(grep -E "passed, [0-9]+ failed" "$BUILD_DIR/$name-asan.log" | tail -1), no ASan or leak report"
        else
            tail -n 40 "$BUILD_DIR/$name-asan.log"
            fail "$name under AddressSanitizer"
        fi
    }
    asan_run abi_test
    asan_run checkpoint_test "$CK_DIR/tiny" "$CK_DIR/huge" "$CK_DIR/nan"
    asan_run voice_test "$CK_DIR/base" "$CK_DIR/base2" "$CK_DIR/tiny"
fi

# ---------------------------------------------------------------------------------------------
section "summary"
if [[ "$failures" -ne 0 ]]; then
    echo "c-abi-check: $failures failure(s)"
    exit 1
fi
echo "c-abi-check: all checks passed"
