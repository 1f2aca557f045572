#!/usr/bin/env bash
# Builds the npm package in pkg/: the engine for wasm32-unknown-unknown (cargo, release
# profile unless OTR4_WASM_PROFILE says otherwise), then wasm-bindgen's JS glue and
# TypeScript types for Node (pkg/node, CommonJS) and browsers/bundlers (pkg/web, ES module
# with an async `init`). wasm-bindgen-cli must be the exact version of the `wasm-bindgen`
# crate (Cargo.lock); set WASM_BINDGEN to its path if it is not on PATH. With WASM_OPT set
# to a wasm-opt binary (e.g. npm's `binaryen`), the modules are then shrunk with -Oz.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
profile=${OTR4_WASM_PROFILE:-release}
target=${CARGO_TARGET_DIR:-$root/target}
bindgen=${WASM_BINDGEN:-wasm-bindgen}

want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$root/Cargo.lock")
have=$("$bindgen" --version | awk '{ print $2 }')
if [[ "$want" != "$have" ]]; then
  echo "build.sh: wasm-bindgen-cli is $have, the crate is $want:" >&2
  echo "  cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi

(cd "$root" && cargo build -p otr4-wasm --lib --target wasm32-unknown-unknown --profile "$profile" --locked)
dir=$profile
[[ "$profile" == dev ]] && dir=debug
wasm="$target/wasm32-unknown-unknown/$dir/otr4_wasm.wasm"

rm -rf "$here/pkg/node" "$here/pkg/web"
"$bindgen" --target nodejs --out-dir "$here/pkg/node" "$wasm"
"$bindgen" --target web --out-dir "$here/pkg/web" "$wasm"
if [[ -n "${WASM_OPT:-}" ]]; then
  for m in "$here"/pkg/{node,web}/otr4_wasm_bg.wasm; do
    "$WASM_OPT" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
      --enable-mutable-globals -o "$m.opt" "$m"
    mv "$m.opt" "$m"
  done
fi
ls -l "$here"/pkg/node/otr4_wasm_bg.wasm
