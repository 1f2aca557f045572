//! The `prekey-server` binary.
fn main() {}
