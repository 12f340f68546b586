#!/usr/bin/env bash
# Calibrates the emulated device against a real GPU: the same kernel test set (tests/gpu_kernels.rs,
# tests/gpu_features.rs, tests/kernels.rs) on both, the CUDA backend's ops against the CPU backend
# (tests/gpu_ops.rs), each against its host computations, and their outputs against each other.
#
#   scripts/gpu-check.sh --prepare   here, without a GPU: runs the set on the emulated device, keeps its
#                                    outputs (target/gpu-check/emulated/*.f32) and the release test
#                                    binaries and voxkit (target/gpu-check/bin.tar.xz, ≈ 12 MB) so that
#                                    a bare GPU machine needs no cargo
#   scripts/gpu-check.sh [OUT]       on the GPU machine (carry target/gpu-check): records the device,
#                                    runs the set on it (outputs to OUT/gpu), and compares GPU and
#                                    emulator outputs within the stated tolerance; then the model
#                                    parity suites on the GPU, and benchmarks on random checkpoints
#                                    with the real shapes (OUT/bench.txt, for BENCHMARKS.md).
#                                    VOXKIT_GPU_CHECK_BENCH=0 skips the benchmarks.
# Tolerance: 2e-5 relative (floor 1e-3). The emulator computes with exact CPU math (expf, 1/sqrtf,
# no fused multiply-add); the GPU with FMA contraction and rsqrt.approx/ex2.approx (≤ 2 ulp).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
KEEP=$ROOT/target/gpu-check

binaries() {  # the built test binaries of these test targets
    cargo test --release --no-run --message-format=json --test gpu_kernels --test gpu_features --test gpu_ops --test gpu_signal --test gpu_steps --test kernels \
        --test codec_parity --test tts_parity --test asr_parity --test clone_parity --test speaker_encoder_parity \
        --test codec_encoder_parity 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["kind"]==["test"]: print(m["executable"])'
}

if [ "${1:-}" = "--prepare" ]; then
    rm -rf "$KEEP"
    mkdir -p "$KEEP/bin" "$KEEP/emulated"
    for b in $(binaries); do
        dest=$KEEP/bin/$(basename "$b" | sed 's/-[0-9a-f]*$//')
        cp "$b" "$dest" && strip "$dest"
    done
    for t in gpu_kernels gpu_features; do
        VOXKIT_KERNEL_DUMP=$KEEP/emulated scripts/emulated-gpu.sh "$KEEP/bin/$t" --ignored --test-threads=1
    done
    cargo build --release -q
    cp target/release/voxkit "$KEEP/bin/voxkit" && strip "$KEEP/bin/voxkit"
    echo "$ROOT" >"$KEEP/built-in"  # where the test binaries look for tests/fixtures
    # Packed (≈ 12 MB instead of ≈ 85), so that it fits what a device machine is sent.
    tar -C "$KEEP" -cJf "$KEEP/bin.tar.xz" bin && rm -rf "$KEEP/bin"
    echo "prepared $KEEP ($(du -sh "$KEEP" | cut -f1)): carry it to the GPU machine and run scripts/gpu-check.sh there"
    exit 0
fi

if [ -f "$KEEP/bin.tar.xz" ] && [ ! -d "$KEEP/bin" ]; then
    tar -C "$KEEP" -xJf "$KEEP/bin.tar.xz"
fi
OUT=${1:-$ROOT/target/gpu-check/out}
mkdir -p "$OUT/gpu"
{
    echo "date: $(date -u +%FT%TZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi: not found"
} | tee "$OUT/device.txt"

if [ -x "$KEEP/bin/gpu_kernels" ]; then
    run() { "$KEEP/bin/$1" "${@:2}"; }
else
    run() { cargo test --color never --test "$1" -- "${@:2}"; }
fi
status=0
VOXKIT_EXPECT_DRIVER=ready run kernels --test-threads=1 2>&1 | tee "$OUT/kernels.txt" || status=1
for t in gpu_kernels gpu_features; do
    VOXKIT_KERNEL_DUMP=$OUT/gpu run $t --ignored --test-threads=1 --nocapture 2>&1 | tee "$OUT/$t.txt" || status=1
done
run gpu_ops --ignored --test-threads=1 2>&1 | tee "$OUT/gpu_ops.txt" || status=1
run gpu_steps --ignored --test-threads=1 2>&1 | tee "$OUT/gpu_steps.txt" || status=1
run gpu_signal --ignored --test-threads=1 2>&1 | tee "$OUT/gpu_signal.txt" || status=1

if [ -d "$KEEP/emulated" ]; then
    python3 - "$KEEP/emulated" "$OUT/gpu" <<'PY' | tee "$OUT/compare.txt" || status=1
import os, struct, sys
emu, gpu = sys.argv[1], sys.argv[2]
worst, bad = 0.0, []
names = sorted(f for f in os.listdir(emu) if f.endswith((".f32", ".u32")))
for name in names:
    p = os.path.join(gpu, name)
    if not os.path.exists(p):
        bad.append(f"{name}: no GPU output"); continue
    a = open(os.path.join(emu, name), "rb").read(); b = open(p, "rb").read()
    if len(a) != len(b):
        bad.append(f"{name}: lengths differ"); continue
    n = len(a) // 4
    if name.endswith(".u32"):  # compared bit for bit
        diff = sum(1 for i in range(0, len(a), 4) if a[i:i + 4] != b[i:i + 4])
        print(f"{name}: {n} values, {diff} differ")
        if diff: bad.append(f"{name}: {diff} of {n} values differ")
        continue
    x = struct.unpack(f"<{n}f", a); y = struct.unpack(f"<{n}f", b)
    e = max((abs(u - v) / (abs(v) + 1e-3) for u, v in zip(x, y)), default=0.0)
    worst = max(worst, e)
    print(f"{name}: {n} values, max relative difference {e:.2e}")
    if e > 2e-5: bad.append(f"{name}: {e:.2e} over 2e-5")
print(f"{len(names)} outputs compared, worst {worst:.2e}")
for b in bad: print("DIFFERS", b)
sys.exit(1 if bad else 0)
PY
else
    echo "no emulator outputs at $KEEP/emulated (run scripts/gpu-check.sh --prepare first): GPU vs host only"
fi
# The models on the GPU: the parity suites through the CUDA backend. The prepared binaries find
# tests/fixtures at the path they were built in: link it to this tree when it differs.
BUILT=$(cat "$KEEP/built-in" 2>/dev/null || echo "$ROOT")
if [ "$BUILT" != "$ROOT" ] && [ ! -e "$BUILT" ]; then
    mkdir -p "$(dirname "$BUILT")" && ln -s "$ROOT" "$BUILT"
fi
for t in codec_parity tts_parity asr_parity clone_parity speaker_encoder_parity codec_encoder_parity; do
    VOXKIT_TEST_DEVICE=cuda run $t 2>&1 | tail -n 40 | tee "$OUT/$t.txt" || status=1
done

# Benchmarks on random-weight checkpoints with the released shapes (bf16 talker, f32 codec).
if [ "${VOXKIT_GPU_CHECK_BENCH:-1}" = 1 ] && [ -x "$KEEP/bin/voxkit" ]; then
    VOX=$KEEP/bin/voxkit
    CK=$OUT/checkpoints
    mkdir -p "$CK"
    {
        echo "== $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
        "$VOX" devices
        for preset in 0.6b-customvoice 1.7b-customvoice; do
            [ -d "$CK/$preset" ] || "$VOX" make-checkpoint --preset "$preset" --tokenizer tests/fixtures/tokenizer --out "$CK/$preset" -q
            for b in 1 8 32 64; do
                timeout 300 "$VOX" bench tts --device cuda --model "$CK/$preset" --frames 64 --batch $b -q || echo "bench tts $preset batch $b failed"
            done
            # The code predictor's frame replayed as a CUDA graph (the default) against eager launches.
            VOXKIT_CUDA_GRAPHS=0 timeout 300 "$VOX" bench tts --device cuda --model "$CK/$preset" --frames 64 --batch 1 -q |
                sed 's/^/graphs off: /' || echo "bench tts $preset without graphs failed"
            timeout 300 "$VOX" bench codec --device cuda --model "$CK/$preset" --frames 100 -q || echo "bench codec failed"
            # Time to first audio through the engine, streaming (the detail line also gives the
            # model load, which the first audio here includes).
            timeout 300 "$VOX" say --device cuda --stream -v --model "$CK/$preset" -o "$OUT/$preset.wav" \
                "The quick brown fox jumps over the lazy dog." 2>&1 | grep -E "first audio|real-time" || echo "say $preset failed"
        done
        # Voice cloning: the speaker encoder and the codec encoder on a 10 s reference.
        [ -d "$CK/0.6b-base" ] || "$VOX" make-checkpoint --preset 0.6b-base --tokenizer tests/fixtures/tokenizer --out "$CK/0.6b-base" -q
        timeout 300 "$VOX" bench voice --device cuda --model "$CK/0.6b-base" --seconds 10 -q || echo "bench voice failed"
        for preset in 0.6b-asr 1.7b-asr; do
            [ -d "$CK/$preset" ] || "$VOX" make-checkpoint --preset "$preset" --tokenizer tests/fixtures/asr/tiny --out "$CK/$preset" -q
            timeout 300 "$VOX" bench asr --device cuda --model "$CK/$preset" --seconds 20 -q || echo "bench asr $preset failed"
        done
        # Post-processing: the CPU's threads and the GPU in one launch per stage, 64 streams.
        timeout 300 "$VOX" bench post --device cuda --seconds 10 --streams 64 -q || echo "bench post failed"
        echo "-- the same on the CPU of this machine (16 threads), for the ratio"
        timeout 300 "$VOX" bench tts --device cpu --model "$CK/0.6b-customvoice" --frames 16 -q || true
    } 2>&1 | tee "$OUT/bench.txt"
fi
[ $status = 0 ] && echo "gpu-check passed" || echo "gpu-check FAILED"
exit $status
