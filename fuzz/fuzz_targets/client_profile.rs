//! Fuzzes the Client Profile parser and validation: never panics; a decoded profile
//! re-serializes to the identical bytes, its signed bytes are exactly the part before the
//! signature, and validation (any outcome) does not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otr4::hazmat::profile::client::ClientProfile;
use otr4::hazmat::wire::codec::Codec;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ClientProfile::decode(data) {
        assert_eq!(p.encode(), data);
        assert_eq!(p.signed_bytes().len() + 114, data.len());
        assert_eq!(data.get(..p.signed_bytes().len()), Some(p.signed_bytes()));
        let _ = p.validate(p.owner_tag(), p.expiration().saturating_sub(1));
        let _ = p.transitional_signed_bytes();
        if let Ok(v) = p.validate(p.owner_tag(), i64::MIN) {
            assert!(v.supports(b'4'));
        }
    }
});
