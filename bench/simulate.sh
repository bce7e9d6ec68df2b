#!/usr/bin/env bash
# Benchmark of the simulation: studymake (Rust) vs the same count of FFTs alone vs numpy.
# Usage: bench/simulate.sh [N_PATTERNS]     (default 5000; N = 64, 224 x 224 lines object)
# Env: PROFILE (cargo profile, default release), STUDYMAKE_PYTHON (python with numpy, default python3),
#      RAYON_NUM_THREADS (threads for the Rust side).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-5000}"
PROFILE="${PROFILE:-release}"
PY="${STUDYMAKE_PYTHON:-python3}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

cargo bench -p studymake-science --profile "$PROFILE" --bench simulate --no-run >/dev/null 2>&1 ||
  cargo bench -p studymake-science --profile "$PROFILE" --bench simulate --no-run
echo "== studymake simulate ($N patterns, profile $PROFILE)"
if [ -x /usr/bin/time ]; then
  /usr/bin/time -v -o "$OUT/time.txt" cargo bench -p studymake-science --profile "$PROFILE" --bench simulate -- "$N" "$OUT" | tee "$OUT/rust.txt"
  grep -E "Maximum resident set size" "$OUT/time.txt" | sed 's/^\s*/peak_rss: /'
else
  cargo bench -p studymake-science --profile "$PROFILE" --bench simulate -- "$N" "$OUT" | tee "$OUT/rust.txt"
fi

if "$PY" -c "import numpy" 2>/dev/null; then
  echo "== numpy ($("$PY" -c 'import numpy; print(numpy.__version__)'))"
  "$PY" bench/simulate_numpy.py "$OUT/bench_object.npz" "$OUT/bench_probe.npy" "$N" | tee "$OUT/numpy.txt"
  rs=$(awk '/^simulate_s /{print $2}' "$OUT/rust.txt")
  np=$(awk '/^numpy_s /{print $2}' "$OUT/numpy.txt")
  rc=$(awk '/^simulate_cpu_s /{print $2}' "$OUT/rust.txt")
  nc=$(awk '/^numpy_cpu_s /{print $2}' "$OUT/numpy.txt")
  awk -v r="$rs" -v n="$np" 'BEGIN { printf "speedup_vs_numpy_wall %.1f\n", n / r }'
  awk -v r="$rc" -v n="$nc" 'BEGIN { printf "speedup_vs_numpy_cpu %.1f\n", n / r }'
else
  echo "== numpy: skipped ($PY has no numpy; set STUDYMAKE_PYTHON)"
fi
