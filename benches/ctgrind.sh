#!/usr/bin/env bash
# Constant-time check of otr4's 3072-bit DH exponentiation (the ctgrind technique): the
# secret exponent is marked undefined for valgrind memcheck, which reports any branch or
# memory address that depends on it. Passes when memcheck finds nothing in the DH code
# (benches/ctgrind-dh/ctgrind.supp allows the range check on the public result) AND finds the
# deliberate leak of the negative control.
#
#   benches/ctgrind.sh
#
# benches/ctgrind-dh is its own workspace (it needs valgrind's headers to build), so CI and
# workspace builds never compile it. Needs valgrind >= 3.x with its headers (Debian:
# apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/ctgrind-dh"
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
cargo build --release -q --locked
bin="${CARGO_TARGET_DIR:-target}/release/otr4-ctgrind-dh"
[[ "$bin" = /* ]] || bin="$PWD/$bin"
mc=(valgrind --tool=memcheck --error-exitcode=42 --suppressions=ctgrind.supp)

echo "== negative control: a secret-indexed lookup must be reported"
if "${mc[@]}" -q "$bin" --control >/dev/null 2>&1; then
  echo "FAIL: memcheck did not see the deliberate leak; the check proves nothing" >&2
  exit 1
fi
echo "ok: reported"

echo "== DH: shared secrets (B^r) and key generation (g3^r) with r undefined"
if "${mc[@]}" "$bin" 2>&1 | tail -n 3; then
  echo "ok: no secret-dependent branch or memory index in the DH exponentiation"
else
  echo "FAIL: memcheck reported a secret-dependent branch or index (see above)" >&2
  exit 1
fi
