//! Fuzzes the OTRv4 message decoder (`wire::messages::Message::decode`, dispatching to
//! every conversation message): never panics, and whatever decodes re-encodes to the
//! identical bytes (decoders are strict: minimal MPIs, no trailing bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::encoded::{decode_otr, encode_otr};
use otr4::hazmat::wire::messages::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        assert_eq!(m.encode(), data);
        assert_eq!(data.get(2).copied(), Some(m.message_type()));
        let text = encode_otr(data);
        assert_eq!(decode_otr(&text).as_deref(), Ok(data));
        if let Message::Data(d) = &m {
            assert!(d.authenticated_bytes().len() < data.len());
            assert_eq!(d.revealed_keys().count() * 64, d.revealed_mac_keys.len());
        }
    }
});
