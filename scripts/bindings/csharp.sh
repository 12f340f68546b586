#!/usr/bin/env bash
# Checks the C# binding (bindings/csharp) against the built library:
#   1. compiles the binding as VoxKit.dll and tests/csharp/VoxKitTest.cs against it (mcs, C# 7,
#      -unsafe -warnaserror: what older Unity/Mono accept),
#   2. compiles and runs a C program the test emits, so a C compiler reports every struct's size
#      and field offsets from include/voxkit.h,
#   3. makes tiny random-weight checkpoints and runs the test with mono,
#   4. builds examples/unity/VoxKitSpeaker.cs against a stand-in for UnityEngine and drives it as
#      Unity would (tests/csharp/UnityHarness.cs).
#
# Run from the repository root:  bash scripts/bindings/csharp.sh
#   VOXKIT_LIB_DIR  folder holding libvoxkit.so and the voxkit CLI (default target/debug)
#   Needs mcs + mono (Debian: apt-get install -y --no-install-recommends mono-mcs) and cc.
#   A missing tool fails under CI=true and skips (exit 0) otherwise.
set -euo pipefail

if [[ ! -f include/voxkit.h || ! -d bindings/csharp ]]; then
    echo "csharp: run this from the repository root" >&2
    exit 2
fi
LIB_DIR="$(cd "${VOXKIT_LIB_DIR:-target/debug}" && pwd)"
OUT="target/bindings-csharp"

missing() {
    if [[ "${CI:-}" == true ]]; then
        echo "FAIL: $1 is not installed (apt-get install -y --no-install-recommends mono-mcs)" >&2
        exit 1
    fi
    echo "SKIP: $1 is not installed (apt-get install -y --no-install-recommends mono-mcs)"
    exit 0
}
command -v mcs >/dev/null || missing mcs
command -v mono >/dev/null || missing mono
for f in libvoxkit.so voxkit; do
    [[ -f "$LIB_DIR/$f" ]] || { echo "FAIL: $LIB_DIR/$f is missing (build the crate first)" >&2; exit 1; }
done

rm -rf "$OUT"
mkdir -p "$OUT"

echo "== compile (mcs $(mcs --version | awk '{print $NF}'))"
mcs -nologo -unsafe -warnaserror -warn:4 -target:library -out:"$OUT/VoxKit.dll" bindings/csharp/*.cs
mcs -nologo -unsafe -warnaserror -warn:4 -r:"$OUT/VoxKit.dll" -out:"$OUT/VoxKitTest.exe" tests/csharp/VoxKitTest.cs
# Mono tries the bare name "voxkit" on the search path before "libvoxkit.so", which finds the
# CLI executable in the same folder (dlopen refuses it, so it only costs a probe). The dllmap
# makes mono go straight to the library; Unity and .NET ignore this file.
cat > "$OUT/VoxKit.dll.config" <<'EOF'
<configuration>
  <dllmap dll="voxkit" target="libvoxkit.so" os="linux" />
</configuration>
EOF

echo "== every function and constant of include/voxkit.h is in VoxKit.Native.cs"
names() { grep -oE "$1" "$2" | grep -oE "$3" | sort -u; }
absent="$(comm -23 \
    <({ names '^[A-Za-z].*[ *]vox_[a-z_0-9]+\(' include/voxkit.h 'vox_[a-z_0-9]+'
        names '^#define VOX_[A-Z_0-9]+' include/voxkit.h 'VOX_[A-Z_0-9]+'; } | sort) \
    <({ names 'extern [^(]* vox_[a-z_0-9]+\(' bindings/csharp/VoxKit.Native.cs 'vox_[a-z_0-9]+'
        names '\bVOX_[A-Z_0-9]+ =' bindings/csharp/VoxKit.Native.cs 'VOX_[A-Z_0-9]+'; } | sort))"
if [[ -n "$absent" ]]; then
    echo "FAIL: not in bindings/csharp/VoxKit.Native.cs:" $absent >&2
    exit 1
fi
echo "all $(names '^[A-Za-z].*[ *]vox_[a-z_0-9]+\(' include/voxkit.h 'vox_[a-z_0-9]+' | wc -l) functions and $(names '^#define VOX_[A-Z_0-9]+' include/voxkit.h 'VOX_[A-Z_0-9]+' | wc -l) constants"

layout=()
if command -v "${CC:-cc}" >/dev/null; then
    echo "== struct layout from include/voxkit.h (${CC:-cc})"
    mono "$OUT/VoxKitTest.exe" --emit-c > "$OUT/layout.c"
    "${CC:-cc}" -std=c99 -Wall -Werror -I include "$OUT/layout.c" -o "$OUT/layout"
    "$OUT/layout" > "$OUT/layout.txt"
    layout=("$OUT/layout.txt")
elif [[ "${CI:-}" == true ]]; then
    echo "FAIL: no C compiler (${CC:-cc}) for the struct layout check" >&2
    exit 1
else
    echo "SKIP: struct layout vs C (no ${CC:-cc})"
fi

echo "== tiny checkpoints"
"$LIB_DIR/voxkit" make-checkpoint --preset tiny-customvoice --out "$OUT/tts" --tokenizer tests/fixtures/tokenizer
"$LIB_DIR/voxkit" make-checkpoint --preset tiny-asr --out "$OUT/asr" --tokenizer tests/fixtures/asr/tiny
"$LIB_DIR/voxkit" make-checkpoint --preset tiny-base --out "$OUT/base" --tokenizer tests/fixtures/tokenizer

echo "== VoxKitTest (mono $(mono --version | head -1 | awk '{print $5}'), library $LIB_DIR)"
LD_LIBRARY_PATH="$LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    mono --debug "$OUT/VoxKitTest.exe" "$OUT/tts" "$OUT/asr" "$OUT/base" "${layout[@]}"

echo "== examples/unity/VoxKitSpeaker.cs in a stand-in Unity host (binding built with UNITY_5_3_OR_NEWER)"
mcs -nologo -unsafe -warnaserror -warn:4 -define:UNITY_5_3_OR_NEWER -out:"$OUT/UnityHarness.exe" \
    bindings/csharp/*.cs examples/unity/VoxKitSpeaker.cs tests/csharp/UnityHarness.cs
cp "$OUT/VoxKit.dll.config" "$OUT/UnityHarness.exe.config"
LD_LIBRARY_PATH="$LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" mono --debug "$OUT/UnityHarness.exe" "$OUT/tts"
