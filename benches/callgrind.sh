#!/usr/bin/env bash
# Instruction counts (valgrind callgrind) of the scenario's phases and of otr4's primitives.
# They do not change with machine load: compare two versions by these, not by seconds.
#
#   benches/callgrind.sh              build the release binaries, then count
#   BIN_DIR=dir benches/callgrind.sh  count prebuilt `scenario` and `primitives` in dir
#
# Prints, per scenario phase (accounts / DAKE / data), the instructions and how often it
# called the functions named in COUNT_PATTERNS: 3072-bit modexps (otr4's `dh::pow_*`),
# DH group checks, Ed448 scalar multiplications (otr4's `crypto::edwards`; set COUNT_PATTERNS
# when that code changes); then instructions per call of each primitive.
# Output files stay in OUT_DIR (default target/callgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
target="${CARGO_TARGET_DIR:-target}"
if [[ -z "${BIN_DIR:-}" ]]; then
  cargo build --release -q -p otr4-benches --bins
  BIN_DIR="$target/release"
fi
OUT_DIR="${OUT_DIR:-$target/callgrind}"
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/scenario.out* "$OUT_DIR"/primitives.out*
# What counts as a modexp and as a scalar multiplication (label=substring of the function;
# a trailing `$` matches the end of the name). Paths are matched without the crate prefix,
# so they hold whether `crypto` sits under `otr4::hazmat` or not.
# modexp: every 3072-bit exponentiation by a secret (g3^r through dh::pow_g3_secret is also
# counted as dh_fixed_base); Ed448: variable-base P·s, fixed-base G·s, and the variable-time
# multi-scalar multiplications of verification (Straus).
COUNT_PATTERNS="${COUNT_PATTERNS:-modexp=crypto::dh::pow_,dh_fixed_base=crypto::dh::pow_g3,dh_check=crypto::dh::jacobi_vartime,ed448_mul=edwards::EdwardsPoint::mul$,ed448_mul_base=edwards::EdwardsPoint::mul_base$,ed448_vartime=edwards::straus_vartime$}"

valgrind --tool=callgrind -q --callgrind-out-file="$OUT_DIR/scenario.out" \
  --dump-after='*phase_accounts*' --dump-after='*phase_dake*' --dump-after='*phase_data*' \
  "$BIN_DIR/scenario" >/dev/null
echo "== scenario (parts 1-3: accounts, DAKE, data; part 1 includes process start-up)"
python3 benches/callgrind_calls.py phases "$COUNT_PATTERNS" \
  "$OUT_DIR/scenario.out.1" "$OUT_DIR/scenario.out.2" "$OUT_DIR/scenario.out.3"
total=0
for f in "$OUT_DIR"/scenario.out.{1,2,3} "$OUT_DIR/scenario.out"; do
  total=$((total + $(awk '/^(summary|totals):/ {print $2; exit}' "$f")))
done
echo "whole process Ir $total"

valgrind --tool=callgrind -q --callgrind-out-file="$OUT_DIR/primitives.out" \
  "$BIN_DIR/primitives" --iters 1 >/dev/null
echo "== primitives"
python3 benches/callgrind_calls.py prims "$OUT_DIR/primitives.out"
