#!/usr/bin/env bash
# Engine benchmark: studymake vs ninja vs GNU make on equivalent generated studies of 10, 100
# and 1000 conditions (cold build, no-op, one-condition change). Prints a table of medians.
#
#   bash bench/engine.sh                      # everything (a few minutes on 2 cores)
#   bash bench/engine.sh --sizes 10,100 --runs 3
#   STUDYMAKE=path/to/studymake bash bench/engine.sh   # skip the release build
#
# Needs: python3, GNU make, ninja (installed with apt-get when missing and possible), and a
# release build of studymake (built here unless STUDYMAKE is set). Not part of `cargo test`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

missing=()
command -v python3 >/dev/null || missing+=(python3)
command -v make >/dev/null || missing+=(make)
if ! command -v ninja >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bench: ninja is missing; installing ninja-build with apt-get" >&2
        apt-get update -qq >&2 && apt-get install -y -qq ninja-build >&2 || true
    fi
    command -v ninja >/dev/null || missing+=("ninja (apt-get install ninja-build)")
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: cannot run, missing: ${missing[*]}" >&2
    exit 2
fi

if [ -z "${STUDYMAKE:-}" ]; then
    echo "bench: cargo build --release" >&2
    (cd "$repo" && cargo build --release --quiet)
    STUDYMAKE="$repo/target/release/studymake"
fi
work=${BENCH_DIR:-"${TMPDIR:-/tmp}/studymake-bench"}
mkdir -p "$work"
echo "bench: studymake $("$STUDYMAKE" --version), $(ninja --version | sed 's/^/ninja /'), $(make --version | head -1)" >&2
echo "bench: generated studies under $work" >&2
exec python3 "$here/engine.py" --studymake "$STUDYMAKE" --dir "$work" "$@"
