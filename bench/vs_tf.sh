#!/usr/bin/env bash
# Training throughput of studymake's PINN against TensorFlow's (bench/train_tf.py: the same
# network, physics and loss as PtychoPINN trains them, in Keras on TensorFlow's oneDNN CPU
# kernels), measured in the same run: for each case the two run in turn, ROUNDS times; printed
# are both medians and the median of the per-round ratios (studymake / TensorFlow; the two runs
# of a round are seconds apart). This VM's speed drifts by 30-40% within minutes, so only
# back-to-back runs compare.
#
# Usage: bench/vs_tf.sh [ROUNDS, default 3] [BATCHES, default 8] [CASES, default "1:1 1:2 2:1 2:2"]
#   CASES are GRIDSIZE:N_FILTERS_SCALE pairs.
# Needs python3 with venv and network access to PyPI the first time: TensorFlow (CPU build,
# pinned below) is installed into target/tf-venv. STUDYMAKE_BENCH_BIN names a prebuilt
# `train` bench binary (else `cargo bench -p studymake-pinn --bench train --no-run` builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
batches="${2:-8}"
cases="${3:-1:1 1:2 2:1 2:2}"
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}"
tf_version=2.18.0
venv=target/tf-venv
if ! "$venv/bin/python" -c "import tensorflow" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "tensorflow-cpu==$tf_version"
fi
bin="${STUDYMAKE_BENCH_BIN:-}"
if [ -z "$bin" ]; then
  bin=$(cargo bench -p studymake-pinn --bench train --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "train" and m.get("executable"):
        print(m["executable"])')
fi
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
echo "case | studymake groups/s | TensorFlow $tf_version groups/s | median of per-round ratios"
for c in $cases; do
  gs="${c%%:*}"
  f="${c##*:}"
  ours=""
  theirs=""
  rss_ours=""
  rss_theirs=""
  ratios=""
  for _ in $(seq "$rounds"); do
    line=$("$bin" --bench "$gs" "$f" "$batches" 2>/dev/null | grep groups/s)
    ours="$ours $(grep -o '[0-9.]* groups/s' <<<"$line" | cut -d' ' -f1)"
    rss_ours=$(grep -o 'peak RSS [0-9]*' <<<"$line" | cut -d' ' -f3)
    line=$("$venv/bin/python" bench/train_tf.py "$gs" "$f" "$batches" 2>/dev/null | grep groups/s)
    theirs="$theirs $(grep -o '[0-9.]* groups/s' <<<"$line" | cut -d' ' -f1)"
    rss_theirs=$(grep -o 'peak RSS [0-9]*' <<<"$line" | cut -d' ' -f3)
    ratios="$ratios $(awk -v a="${ours##* }" -v b="${theirs##* }" 'BEGIN {printf "%.3f", a / b}')"
  done
  mo=$(median <<<"$ours")
  mt=$(median <<<"$theirs")
  ratio=$(median <<<"$ratios")
  echo "gridsize $gs scale $f | $ours (median $mo; peak RSS $rss_ours MiB) |$theirs (median $mt; peak RSS $rss_theirs MiB) | ${ratio}x (rounds:$ratios)"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
