#!/usr/bin/env bash
# The Python package (issue 12 item 4) and the Kotlin/Swift bindings (items 7-8):
#  1. a venv (default: .venv at the repository root, git-ignored) with maturin and pytest,
#  2. `maturin develop --features sim`: builds otr4-uniffi and installs `otr4` into it
#     (maturin runs the crate's own uniffi-bindgen binary for the Python module),
#  3. pytest: tests/python/ and the Python quick start of docs/bindings.md (a doctest),
#  4. Kotlin and Swift generated from the same library into
#     $CARGO_TARGET_DIR/bindings/{kotlin,swift} (CI artefacts, not committed; no Kotlin or
#     Swift compiler here to build them).
# Uses CARGO_TARGET_DIR if set, OTR4_VENV for another venv. Run from anywhere.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
crate="$(cd "$here/../.." && pwd)"
root="$(dirname "$crate")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
venv="${OTR4_VENV:-$root/.venv}"

if [ ! -x "$venv/bin/python" ]; then
  echo "-- venv $venv"
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q "maturin==1.16.*" "pytest==9.*"
# shellcheck disable=SC1091
source "$venv/bin/activate"

echo "-- maturin develop --features sim"
start=$(date +%s)
(cd "$crate" && maturin develop --locked --features sim 2>&1 | grep -vE '^\s+(Compiling|Fresh|Checking)' | tail -n 5)
echo "   built and installed in $(( $(date +%s) - start ))s"

echo "-- pytest"
start=$(date +%s)
(cd "$root" && python -m pytest -q -p no:cacheprovider "$here" --doctest-glob=bindings.md docs/bindings.md)
echo "   pytest: $(( $(date +%s) - start ))s"

echo "-- Kotlin and Swift bindings (uniffi-bindgen, library mode)"
lib="$CARGO_TARGET_DIR/debug/libotr4_uniffi.so"
out="$CARGO_TARGET_DIR/bindings"
rm -rf "$out"
for lang in kotlin swift; do
  # The same binary maturin built above (feature `cli`), so nothing is rebuilt.
  cargo run -q --locked -p otr4-uniffi --features cli --bin uniffi-bindgen -- \
    generate --no-format --library "$lib" --language "$lang" --out-dir "$out/$lang" >/dev/null
done
(cd "$out" && find . -type f | sort | while read -r f; do printf '   %-40s %6d lines\n' "$f" "$(wc -l < "$f")"; done)
