#!/usr/bin/env bash
# Interleaved A/B of training-bench binaries: on a machine whose speed drifts by 30-40% within
# minutes, only runs taken in turn compare two builds. Each round runs every contender once
# (6 batches, 2 threads); the medians are printed, and for each later contender the median of
# its per-round ratios to the first (runs of one round are seconds apart, so the ratio
# cancels most of the drift).
#
# Usage: bench/ab.sh ROUNDS "GRIDSIZE N_FILTERS_SCALE" LABEL=COMMAND [LABEL=COMMAND ...]
#   COMMAND is a bench binary (copy target/release/deps/train-* aside between builds), with
#   environment assignments in front if wanted, e.g.
#   bench/ab.sh 3 "1 2" old=/tmp/train-old new=/tmp/train-new "serial=BENCH_ADAM=serial /tmp/train-new"
set -euo pipefail
rounds="$1"; shift
case_="$1"; shift
declare -A results
for _ in $(seq "$rounds"); do
  for spec in "$@"; do
    label="${spec%%=*}"
    cmd="${spec#*=}"
    # shellcheck disable=SC2086 # the command and its environment assignments split on spaces
    v=$(env RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}" $cmd --bench $case_ 6 2>/dev/null \
      | grep -o '[0-9.]* groups/s' | cut -d' ' -f1)
    results[$label]="${results[$label]:-} $v"
  done
done
first="${1%%=*}"
for spec in "$@"; do
  label="${spec%%=*}"
  ratio=""
  if [ "$label" != "$first" ]; then
    ratio=$(paste <(tr ' ' '\n' <<<"${results[$label]}" | grep .) \
      <(tr ' ' '\n' <<<"${results[$first]}" | grep .) | awk '{print $1 / $2}' | sort -n \
      | awk '{a[NR] = $1} END {printf "; median ratio to '"$first"' %.3f", a[int((NR + 1) / 2)]}')
  fi
  median=$(tr ' ' '\n' <<<"${results[$label]}" | grep . | sort -n \
    | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  echo "$label:${results[$label]} groups/s; median $median$ratio"
done
