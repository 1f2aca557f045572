#!/bin/sh
# otr4's OTRv3 next to libotr 4.1's, in one run on one machine: builds bench.c against the
# system libotr (Debian libotr5-dev), runs it, then otr4's `v3` criterion bench.
# Usage: benches/libotr-v3/compare.sh   (from the workspace root)
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
gcc -O2 -Wall -Wextra -Werror -o "$dir/bench" "$(dirname "$0")/bench.c" $(pkg-config --cflags --libs libotr)
echo "== libotr $(pkg-config --modversion libotr) (median of the runs)"
"$dir/bench" "$dir"
echo "== otr4 (criterion: [low estimate, median, high estimate])"
cargo bench -q -p otr4-benches --bench v3 -- --noplot 2>/dev/null | grep -E '^v3/|time:'
