#!/usr/bin/env bash
# bench/build_times.sh [REV...]: how long studymake takes to build, rebuild and test, per git
# revision, in clean clones that share nothing but cargo's package cache (~/.cargo/registry).
#
# For each REV (default: the workspace's parent 20a87d5, then HEAD) it clones this repository
# into a fresh temporary directory (its own target/), checks REV out, fetches the dependencies
# (not timed), and times, one after the other:
#
#   clean      `cargo build --release` from nothing
#   engine     `cargo build --release` after touching one engine file: the build loop
#              (crates/engine/src/build/mod.rs; src/scheduler.rs before the workspace)
#   kernel     `cargo build --release` after touching one network kernel file: the Winograd
#              convolution (crates/pinn/src/winograd.rs; src/science/model/winograd.rs before)
#   test-build `cargo test --no-run` (the tests' build, test profile)
#   test       `cargo test`, the README's test command, run after the test build
#
# and prints one table: a row per measurement, a column of seconds per revision, and the ratio
# of the last revision to the first. The machine's load changes the figures: run it on a quiet
# machine, and more than once.
#
#   BUILD_TIMES_QUICK=1   `cargo check` instead of the release builds, no tests: a few minutes,
#                         to see that the script works, not to measure
#   BUILD_TIMES_KEEP=1    keep the clones (their paths are printed)
#   BUILD_TIMES_JOBS=N    cargo -j N (default: cargo's own)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
revs=("$@")
if [ ${#revs[@]} -eq 0 ]; then
  revs=(20a87d5 HEAD)
fi
quick=${BUILD_TIMES_QUICK:-0}
jobs=()
if [ -n "${BUILD_TIMES_JOBS:-}" ]; then
  jobs=(-j "$BUILD_TIMES_JOBS")
fi
unset CARGO_TARGET_DIR

work=$(mktemp -d /tmp/studymake-build-times.XXXXXX)
if [ "${BUILD_TIMES_KEEP:-0}" != 1 ]; then
  trap 'rm -rf "$work"' EXIT
fi

# Seconds (wall clock, two decimals) that a command takes; its output goes to $log.
timed() {
  local log=$1
  shift
  local t0 t1
  t0=$(date +%s.%N)
  if ! "$@" >>"$log" 2>&1; then
    echo "build_times: \`$*\` failed; see $log" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}

# The engine and kernel files of a checkout, by its layout.
engine_file() {
  if [ -d "$1/crates/engine" ]; then echo crates/engine/src/build/mod.rs; else echo src/scheduler.rs; fi
}
kernel_file() {
  if [ -d "$1/crates/pinn" ]; then echo crates/pinn/src/winograd.rs; else echo src/science/model/winograd.rs; fi
}

declare -A result
names=(clean engine kernel test-build test)
for rev in "${revs[@]}"; do
  dir="$work/$(echo "$rev" | tr '/~^' '___')"
  git clone --quiet --no-local "$repo" "$dir"
  git -C "$dir" checkout --quiet "$(git -C "$repo" rev-parse "$rev")"
  log="$dir/build-times.log"
  echo "== $rev ($(git -C "$dir" log -1 --format='%h %s' | cut -c1-70)) in $dir" >&2
  (cd "$dir" && cargo fetch --quiet)
  if [ "$quick" = 1 ]; then
    build=(cargo check "${jobs[@]}" --all-targets)
  else
    build=(cargo build --release "${jobs[@]}")
  fi
  result[$rev,clean]=$(cd "$dir" && timed "$log" "${build[@]}")
  touch "$dir/$(engine_file "$dir")"
  result[$rev,engine]=$(cd "$dir" && timed "$log" "${build[@]}")
  touch "$dir/$(kernel_file "$dir")"
  result[$rev,kernel]=$(cd "$dir" && timed "$log" "${build[@]}")
  if [ "$quick" = 1 ]; then
    result[$rev,test-build]=-
    result[$rev,test]=-
  else
    result[$rev,test-build]=$(cd "$dir" && timed "$log" cargo test "${jobs[@]}" --no-run)
    result[$rev,test]=$(cd "$dir" && timed "$log" cargo test "${jobs[@]}")
  fi
  echo "   clean ${result[$rev,clean]} s, engine ${result[$rev,engine]} s, kernel ${result[$rev,kernel]} s, test build ${result[$rev,test-build]} s, test ${result[$rev,test]} s" >&2
done

first=${revs[0]}
last=${revs[${#revs[@]}-1]}
printf '%-12s' "seconds"
for rev in "${revs[@]}"; do printf ' %12s' "$rev"; done
printf ' %12s\n' "last/first"
for n in "${names[@]}"; do
  printf '%-12s' "$n"
  for rev in "${revs[@]}"; do printf ' %12s' "${result[$rev,$n]}"; done
  a=${result[$first,$n]}
  b=${result[$last,$n]}
  if [ "$a" != - ] && [ "$b" != - ]; then
    printf ' %12s\n' "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }')"
  else
    printf ' %12s\n' -
  fi
done
echo "(engine: $(engine_file "$work/$(echo "$last" | tr '/~^' '___')") touched; kernel: $(kernel_file "$work/$(echo "$last" | tr '/~^' '___')") touched; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
