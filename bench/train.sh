#!/usr/bin/env bash
# Training throughput of the PINN (N = 64, batch 16, forward + backward + Adam) for gridsize 1
# and 2 at n_filters_scale 1 (the CPU default) and 2 (the reference), on RAYON_NUM_THREADS
# threads (default 2). Prints groups/s, a per-stage breakdown, CPU time and peak RSS per case.
# BENCH_CONV=im2col runs every convolution by im2col + gemm (the algorithm before Winograd) in
# the same binary, for a same-session comparison.
# Usage: bench/train.sh [batches per case, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}"
batches="${1:-10}"
cargo bench -p studymake-pinn --bench train --no-run
for gs in 1 2; do
  for f in 1 2; do
    cargo bench -p studymake-pinn --bench train -- "$gs" "$f" "$batches" 2>/dev/null | grep '^gridsize'
  done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
