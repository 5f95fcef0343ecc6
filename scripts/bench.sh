#!/usr/bin/env bash
# Plan-time benchmark for BENCHMARKS.md: one process per size, so peak memory is per size.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench plan --no-run --quiet
for n in "${@:-10000 100000 1000000}"; do
  for size in $n; do
    cargo bench --bench plan --quiet -- "$size"
  done
done
