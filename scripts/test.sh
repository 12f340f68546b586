#!/usr/bin/env bash
# voxkit's whole test suite, as CI runs it (.ci/run): the Rust tests (engine, scheduler properties,
# concurrency, header freshness) and the C ABI check (export list, C and C++ compile, the C test
# program under valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==== cargo test ===="
cargo test --all-targets --color never 2>&1

echo "==== C ABI ===="
bash scripts/c-abi-check.sh
