//! Fuzzes the OTRv3 decoders (`hazmat::v3`): the binary messages (D-H Commit, D-H Key,
//! Reveal Signature, Signature, Data) and the AKE's decrypted signature structure `X`
//! (with the DSA PUBKEY inside). Never panics; what decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otr4::InstanceTag;
use otr4::hazmat::v3::messages::{Message, SignedKey};

fuzz_target!(|data: &[u8]| {
    if let Ok((h, m)) = Message::decode(data) {
        assert_eq!(h.message_type, m.message_type());
        assert_eq!(m.encode(h.sender, h.receiver), data);
        assert!(h.sender != InstanceTag(0));
    }
    if let Ok(x) = SignedKey::decode(data) {
        assert_eq!(x.encode(), data);
    }
});
