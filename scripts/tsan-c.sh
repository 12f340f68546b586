#!/usr/bin/env bash
# The C test programs (tests/c/*.c) under ThreadSanitizer, against a TSan-instrumented
# libvoxkit.so: nightly Rust, -Zsanitizer=thread with -Zbuild-std (≈ 4-8 min to build, which is
# why CI does not run it; the results are recorded in docs/RELIABILITY.md). The C programs are
# compiled with gcc -fsanitize=thread and linked against Rust's own TSan runtime (the instrumented
# library calls entry points, e.g. __tsan_memcpy, that gcc's older libtsan lacks), so the library
# and the C code share one runtime. Exits non-zero on a failed check or any TSan report.
#
#   scripts/tsan-c.sh            # needs the checkpoints scripts/c-abi-check.sh writes
#                                # (tests/c/build/checkpoints/); run that first
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=x86_64-unknown-linux-gnu
LIB_DIR="$PWD/target/tsan/$TARGET/debug"
CK=tests/c/build/checkpoints
OUT=tests/c/build/tsan
for d in tiny huge nan base base2; do
    [[ -d "$CK/$d" ]] || { echo "tsan-c.sh: $CK/$d is missing: run scripts/c-abi-check.sh first" >&2; exit 2; }
done
RUSTFLAGS="-Zsanitizer=thread -Cforce-frame-pointers" \
    cargo +nightly build --lib -Zbuild-std --target "$TARGET" --target-dir target/tsan
sysroot="$(rustc +nightly --print sysroot)"
rt="$sysroot/lib/rustlib/$TARGET/lib/librustc-nightly_rt.tsan.a"
[[ -f "$rt" ]] || { echo "tsan-c.sh: no TSan runtime at $rt" >&2; exit 2; }
mkdir -p "$OUT"
status=0
run() { # name, args...
    local name="$1"
    shift
    gcc -std=c99 -g -fsanitize=thread -I include -c "tests/c/$name.c" -o "$OUT/$name.o"
    gcc -o "$OUT/$name" "$OUT/$name.o" -Wl,--whole-archive "$rt" -Wl,--no-whole-archive \
        -L "$LIB_DIR" -lvoxkit -Wl,-rpath,"$LIB_DIR" -lpthread -ldl -lm -lstdc++ -rdynamic
    local t0=$SECONDS
    if TSAN_OPTIONS=allocator_may_return_null=1:halt_on_error=0 "$OUT/$name" "$@" >"$OUT/$name.log" 2>&1 \
            && ! grep -q "WARNING: ThreadSanitizer" "$OUT/$name.log"; then
        echo "ok: $name: $(grep -E "passed, [0-9]+ failed" "$OUT/$name.log" | tail -1), no TSan report ($((SECONDS - t0)) s)"
    else
        echo "FAIL: $name ($(grep -c "WARNING: ThreadSanitizer" "$OUT/$name.log" || true) TSan reports; $OUT/$name.log)"
        tail -n 40 "$OUT/$name.log"
        status=1
    fi
}
run abi_test
run checkpoint_test "$CK/tiny" "$CK/huge" "$CK/nan"
run voice_test "$CK/base" "$CK/base2" "$CK/tiny"
exit $status
