#!/usr/bin/env bash
# otr4's scenario and primitives next to OpenSSL's Ed448 in the same run, as ratios in
# "OpenSSL-sign units" (time / the time of one `openssl speed ed448` signature). The
# machines are shared and noisy: quote these ratios, not absolute times. Both sides are
# CPU time (`openssl speed` divides by CPU time; otr4's binaries read the thread's CPU
# clock), so load from other processes inflates neither.
#
#   benches/compare.sh                 build the release binaries, then measure
#   BIN_DIR=dir benches/compare.sh     measure prebuilt `scenario` and `primitives` in dir
#   RUNS=41 ITERS=50 benches/compare.sh   more scenario runs / primitive iterations
#   CHAIN=1000 benches/compare.sh      also time 1000 messages read in one chain (catch-up)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v openssl >/dev/null || { echo "openssl is not installed" >&2; exit 2; }
target="${CARGO_TARGET_DIR:-target}"
if [[ -z "${BIN_DIR:-}" ]]; then
  cargo build --release -q -p otr4-benches --bins
  BIN_DIR="$target/release"
fi
RUNS="${RUNS:-11}"
ITERS="${ITERS:-20}"
CHAIN="${CHAIN:-0}"

ossl() {
  # "456 bits EdDSA (Ed448)   0.0002s   0.0002s   4602.1   4317.3": sign/s and verify/s
  openssl speed -seconds 2 ed448 2>/dev/null | awk '/EdDSA \(Ed448\)/ {print $(NF-1), $NF}'
}
read -r sign_s verify_s < <(ossl)
chain_args=()
[[ "$CHAIN" -gt 0 ]] && chain_args=(--chain "$CHAIN")
scen="$("$BIN_DIR/scenario" --runs "$RUNS" "${chain_args[@]}")"
prim="$("$BIN_DIR/primitives" --iters "$ITERS")"
# OpenSSL again after ours: the unit is the mean of both runs, so drift shows less.
read -r sign_s2 verify_s2 < <(ossl)

awk -v s1="$sign_s" -v s2="$sign_s2" -v v1="$verify_s" -v v2="$verify_s2" \
    -v scen="$scen" -v prim="$prim" 'BEGIN {
  sign_us = 1e6 / ((s1 + s2) / 2); verify_us = 1e6 / ((v1 + v2) / 2)
  printf "OpenSSL Ed448 sign %.1f us (%.1f / %.1f), verify %.1f us\n", sign_us, 1e6 / s1, 1e6 / s2, verify_us
  printf "%-22s %12s %14s\n", "what", "time", "OpenSSL signs"
  n = split(scen, l, "\n")
  for (i = 1; i <= n; i++) {
    split(l[i], f, " ")
    if (f[1] == "runs") { printf "scenario: %s runs, medians of CPU time\n", f[2]; continue }
    printf "%-22s %9.2f ms %14.1f\n", "scenario " f[1], f[2], f[2] * 1000 / sign_us
  }
  n = split(prim, l, "\n")
  for (i = 1; i <= n; i++) {
    split(l[i], f, " ")
    printf "%-22s %9.1f us %14.2f\n", f[1], f[2], f[2] / sign_us
  }
}'
