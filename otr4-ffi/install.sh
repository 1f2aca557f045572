#!/usr/bin/env bash
# Installs the otr4 C library: PREFIX/include/otr4.h, PREFIX/lib/libotr4.{so,a} and
# PREFIX/lib/pkgconfig/otr4.pc, so `cc app.c $(pkg-config --cflags --libs otr4)` works
# (with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig if PREFIX is not a system prefix).
# Usage: otr4-ffi/install.sh PREFIX   (builds with `cargo build --release -p otr4-ffi`;
# set CARGO_TARGET_DIR to reuse a build; OTR4_FFI_FEATURES adds features, for tests only).
set -euo pipefail
prefix="${1:?usage: install.sh PREFIX}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
target="${CARGO_TARGET_DIR:-$root/target}"
features="${OTR4_FFI_FEATURES:-}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)"

(cd "$root" && cargo build --release --locked -p otr4-ffi ${features:+--features "$features"})

mkdir -p "$prefix/include" "$prefix/lib/pkgconfig"
install -m 0644 "$here/include/otr4.h" "$prefix/include/otr4.h"
install -m 0755 "$target/release/libotr4_ffi.so" "$prefix/lib/libotr4.so"
install -m 0644 "$target/release/libotr4_ffi.a" "$prefix/lib/libotr4.a"
cat > "$prefix/lib/pkgconfig/otr4.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: otr4
Description: OTRv4 and OTRv4 over XMPP (C ABI of the otr4 Rust library)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lotr4
Libs.private: -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
PC
echo "installed otr4 $version into $prefix"
