//! Fuzzes the DH group-membership check (`DhPublic::from_be_bytes`, a Legendre-symbol
//! test) against the literal `x^q mod p == 1` check: never panics, always agrees, and an
//! accepted value re-encodes to its minimal big-endian form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otr4::crypto::dh::{DhPublic, is_in_group_literal};
use otr4::wire::codec::{Reader, Writer};

fuzz_target!(|data: &[u8]| {
    let fast = DhPublic::from_be_bytes(data);
    assert_eq!(fast.is_ok(), is_in_group_literal(data), "checks disagree");
    if let Ok(x) = fast {
        let start = data.iter().position(|b| *b != 0).unwrap_or(data.len());
        assert_eq!(x.to_be_bytes(), data[start..]);
        let mut w = Writer::new();
        x.write(&mut w);
        let bytes = w.into_bytes();
        assert_eq!(DhPublic::read(&mut Reader::new(&bytes), "x"), Ok(x));
    }
    let _ = DhPublic::read(&mut Reader::new(data), "x");
});
