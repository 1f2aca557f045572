#!/usr/bin/env bash
# Instruction counts (valgrind callgrind) of the scenario's phases and of otr4's primitives.
# They do not change with machine load: compare two versions by these, not by seconds.
#
#   benches/callgrind.sh              build the release binaries, then count
#   BIN_DIR=dir benches/callgrind.sh  count prebuilt `scenario` and `primitives` in dir
#   CHAIN=0 benches/callgrind.sh      skip the catch-up count (default: 1000 messages)
#
# Prints, per scenario phase (accounts / DAKE / data), the instructions and how often it
# called the functions named in COUNT_PATTERNS: 3072-bit modexps (otr4's `dh::pow_*`),
# DH group checks, Ed448 scalar multiplications, point decodes and signatures (set
# COUNT_PATTERNS when that code changes); then instructions per call of each primitive.
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
# a trailing `$` anchors it at the end of the name). Symbols read `otr4::hazmat::crypto::…`
# (the re-export path), so the patterns leave out the crate prefix.
# modexp: every 3072-bit exponentiation by a secret (g3^r is dh::pow_g3_secret, counted
# also as fixed_base; B^r is dh::pow_secret). Ed448: G·s (mul_base), P·s (mul), the
# variable-time multi-scalar multiplications (straus: EdDSA and ring-signature verification),
# point decodes and subgroup checks of received points.
COUNT_PATTERNS="${COUNT_PATTERNS:-modexp=::crypto::dh::pow_,fixed_base=::crypto::dh::pow_g3,dh_check=::crypto::dh::jacobi_vartime,ed448_mul_base=edwards::EdwardsPoint::mul_base,ed448_mul=edwards::EdwardsPoint::mul$,ed448_vartime_msm=edwards::straus_vartime,point_decode=edwards::EdwardsPoint::decode_unchecked,subgroup_check=edwards::EdwardsPoint::is_torsion_free_decoded_vartime,eddsa_sign=crypto::eddsa::sign,eddsa_verify=crypto::eddsa::verify,rsig_sign=rsig::RingSignature::sign}"

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

# Catch-up: CHAIN messages sent in one chain, then read (`scenario --chain`); only that
# phase is counted. CHAIN=0 skips it.
CHAIN="${CHAIN:-1000}"
if [[ "$CHAIN" -gt 0 ]]; then
  rm -f "$OUT_DIR"/chain.out*
  valgrind --tool=callgrind -q --callgrind-out-file="$OUT_DIR/chain.out" \
    --toggle-collect='*phase_chain*' "$BIN_DIR/scenario" --chain "$CHAIN" >/dev/null
  echo "== $CHAIN messages in one chain (scenario --chain $CHAIN, that phase only)"
  python3 benches/callgrind_calls.py phases "$COUNT_PATTERNS" "$OUT_DIR/chain.out"
fi

valgrind --tool=callgrind -q --callgrind-out-file="$OUT_DIR/primitives.out" \
  "$BIN_DIR/primitives" --iters 1 >/dev/null
echo "== primitives"
python3 benches/callgrind_calls.py prims "$OUT_DIR/primitives.out"
