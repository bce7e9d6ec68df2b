#!/usr/bin/env bash
# Hashing throughput of `studymake verify` against b3sum (the blake3 crate's CLI) on the same
# files, in the same run. Usage: bench/verify.sh [GIB_TOTAL (default 4)] [FILES (default 8)]
# Builds a study whose targets are large random files, then times a full-rehash verify and
# `b3sum` over exactly those files; both run warm (each is run once untimed first).
set -euo pipefail
cd "$(dirname "$0")/.."
GIB=${1:-4}
FILES=${2:-8}
STUDYMAKE=${STUDYMAKE:-}
if [ -z "$STUDYMAKE" ]; then
  # Hashing runs in the blake3 crate, which every profile builds with opt-level 3.
  cargo build --quiet
  STUDYMAKE=$PWD/target/debug/studymake
fi
if ! command -v b3sum >/dev/null; then
  echo "installing b3sum (cargo install b3sum)..." >&2
  cargo install --quiet b3sum
fi
DIR=${BENCH_DIR:-$(mktemp -d /tmp/studymake-verify-bench.XXXXXX)}
mkdir -p "$DIR"
MIB=$(( GIB * 1024 / FILES ))
cat > "$DIR/big.sh" <<SH
#!/bin/sh
# big.sh OUTPUT INDEX MIB: MIB MiB of random bytes (the bench needs size, not reproducibility)
set -e
head -c \$((\$3 * 1048576)) /dev/urandom > "\$1"
SH
{
  echo '[study]'; echo 'name = "verify-bench"'; echo 'output = "out"'; echo
  for i in $(seq 1 "$FILES"); do
    echo "[objects.blob$i]"
    echo "command = [\"sh\", \"big.sh\", \"{output}\", \"$i\", \"$MIB\"]"
    echo 'output = "bin"'
    echo
  done
} > "$DIR/Studyfile"
echo "== building $FILES files of $MIB MiB in $DIR" >&2
(cd "$DIR" && "$STUDYMAKE" -j2 >/dev/null)
files=("$DIR"/out/*_object.bin)
bytes=$(du -cb "${files[@]}" | tail -1 | cut -f1)

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
(cd "$DIR" && "$STUDYMAKE" verify >/dev/null 2>&1); b3sum "${files[@]}" >/dev/null   # warm up
best_sm=999999; best_b3=999999
for _ in 1 2 3; do
  sm=$(cd "$DIR" && t "$STUDYMAKE" verify)
  b3=$(t b3sum "${files[@]}")
  best_sm=$(echo "if ($sm < $best_sm) $sm else $best_sm" | bc -l)
  best_b3=$(echo "if ($b3 < $best_b3) $b3 else $best_b3" | bc -l)
done
gb=$(echo "$bytes / 1000000000" | bc -l)
printf 'data: %.2f GB in %d files (best of 3, warm page cache, %s cores)\n' "$gb" "$FILES" "$(nproc)"
printf 'studymake verify: %.3f s  %.2f GB/s\n' "$best_sm" "$(echo "$gb / $best_sm" | bc -l)"
printf 'b3sum:            %.3f s  %.2f GB/s\n' "$best_b3" "$(echo "$gb / $best_b3" | bc -l)"
printf 'verify throughput / b3sum throughput: %.2f\n' "$(echo "$best_b3 / $best_sm" | bc -l)"
[ -n "${BENCH_DIR:-}" ] || rm -rf "$DIR"
