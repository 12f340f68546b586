#!/usr/bin/env bash
# Tests the Python binding (bindings/python, ctypes + numpy) against a built voxkit library.
#
# Run from the repository root:  bash scripts/bindings/python.sh [pytest args...]
#   VOXKIT_LIB_DIR  folder holding libvoxkit.so and the voxkit CLI (default: target/debug)
#   PYTHON          the interpreter (default: python3); it needs numpy and pytest:
#                   python3 -m pip install numpy pytest
# The package is used from the source tree (PYTHONPATH), not installed. The tests make their
# own tiny checkpoints with the CLI in a temporary folder. With CI=true a missing tool (C
# compiler, CLI) fails the run instead of skipping the tests that need it.
set -euo pipefail

if [[ ! -f include/voxkit.h || ! -d bindings/python/voxkit ]]; then
    echo "bindings/python.sh: run this from the repository root" >&2
    exit 2
fi

lib_dir="${VOXKIT_LIB_DIR:-target/debug}"
lib_dir="$(cd "$lib_dir" 2>/dev/null && pwd)" || { echo "FAIL: no folder $lib_dir" >&2; exit 1; }
python="${PYTHON:-python3}"

export VOXKIT_LIBRARY="$lib_dir/libvoxkit.so"
export VOXKIT_CLI="$lib_dir/voxkit"
for f in "$VOXKIT_LIBRARY" "$VOXKIT_CLI"; do
    [[ -f "$f" ]] || { echo "FAIL: $f is missing (build it, or set VOXKIT_LIB_DIR)" >&2; exit 1; }
done
if ! "$python" -c 'import numpy, pytest' 2>/dev/null; then
    echo "FAIL: $python lacks numpy or pytest: $python -m pip install numpy pytest" >&2
    exit 1
fi

export PYTHONPATH="$PWD/bindings/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1  # keep the source tree clean
echo "python: $("$python" --version 2>&1), numpy $("$python" -c 'import numpy; print(numpy.__version__)')"
echo "library: $VOXKIT_LIBRARY"
echo "cli: $VOXKIT_CLI"

# -v: one line per check; -s: the tests' own notes (sizes, chunks, timings); no cache in the tree.
exec "$python" -m pytest bindings/python/tests -v -s -p no:cacheprovider --durations=5 "$@"
