//! UniFFI's bindings generator, built from this crate so its version always matches the
//! library's (feature `cli`): `cargo run -p otr4-uniffi --features cli --bin uniffi-bindgen
//! -- generate --library <libotr4_uniffi.so> --language kotlin --out-dir <dir>`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
