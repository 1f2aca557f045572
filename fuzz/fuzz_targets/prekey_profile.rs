//! Fuzzes the Prekey Profile parser and validation: never panics; a decoded profile
//! re-serializes to the identical bytes and validation (any outcome) does not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otr4::hazmat::crypto::ed448::Point;
use otr4::hazmat::crypto::keys::Ed448PublicKey;
use otr4::hazmat::profile::prekey::PrekeyProfile;
use otr4::hazmat::wire::codec::Codec;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = PrekeyProfile::decode(data) {
        assert_eq!(p.encode(), data);
        assert_eq!(
            data.get(..p.signed_bytes().len()),
            Some(p.signed_bytes().as_slice())
        );
        let h = Ed448PublicKey(Point::generator());
        let _ = p.validate(p.owner_tag, p.expiration.saturating_sub(1), &h);
        let _ = p.validate(p.owner_tag, i64::MAX, &h);
    }
});
