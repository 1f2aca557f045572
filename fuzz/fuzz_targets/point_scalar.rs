//! Fuzzes the strict POINT and SCALAR decoders and the typed-key decoders: never panic,
//! and whatever is accepted re-encodes to the identical bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otr4::hazmat::crypto::ed448::{Point, Scalar};
use otr4::hazmat::crypto::keys::{Ed448PublicKey, ForgingPublicKey, SharedPrekeyPublic};
use otr4::hazmat::wire::codec::Codec;

fuzz_target!(|data: &[u8]| {
    if let Some(b) = data.first_chunk::<57>() {
        if let Ok(p) = Point::decode(b) {
            assert_eq!(&p.encode(), b);
        }
        if let Ok(s) = Scalar::decode(b) {
            assert_eq!(&s.encode(), b);
        }
    }
    if let Ok(k) = Ed448PublicKey::decode(data) {
        assert_eq!(k.encode().as_slice(), data);
    }
    if let Ok(k) = SharedPrekeyPublic::decode(data) {
        assert_eq!(k.encode().as_slice(), data);
    }
    if let Ok(k) = ForgingPublicKey::decode(data) {
        assert_eq!(k.encode().as_slice(), data);
    }
});
