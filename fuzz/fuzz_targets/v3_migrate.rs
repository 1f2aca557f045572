//! Fuzzes the readers of libotr's files (`hazmat::v3::migrate`, key migration): the
//! S-expression reader, `otr.private_key` and `otr.fingerprints`. Never panics; a file is
//! imported whole or refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otr4::hazmat::v3::migrate::{read_fingerprints, read_private_keys};
use otr4::hazmat::v3::sexp;

fuzz_target!(|data: &[u8]| {
    let parsed = sexp::parse(data);
    // Every imported key is a checked key pair; a file that imports is an S-expression.
    if let Ok(keys) = read_private_keys(data) {
        assert!(parsed.is_ok());
        for k in &keys {
            let sig = k.key.sign(&[1; 32]).ok();
            assert!(sig.is_none_or(|s| k.key.public().verify(&[1; 32], &s)));
        }
    }
    if let Ok(fps) = read_fingerprints(data) {
        // At most one entry per non-empty line.
        assert!(fps.len() <= data.split(|&b| b == b'\n').count());
    }
});
