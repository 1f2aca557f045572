//! Fuzzes the prekey-server message decoders: `PrekeyServerMessage::decode` (DAKE-1/2/3,
//! Storage Status, Success, Failure, Ensemble Query/Retrieval, No Prekey Ensembles) and
//! `Dake3Inner::decode` (Prekey Publication, Storage Information Request). Never panics;
//! whatever decodes re-encodes to the identical bytes, including a DAKE-3's inner message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otr4::PrekeyServerMessage;
use otr4::hazmat::prekey::messages::Dake3Inner;
use otr4::hazmat::wire::codec::Codec;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = PrekeyServerMessage::decode(data) {
        assert_eq!(m.encode(), data);
        if let PrekeyServerMessage::Dake3(d) = &m {
            if let Ok(inner) = d.inner() {
                assert_eq!(inner.encode(), d.message);
            }
        }
    }
    if let Ok(m) = Dake3Inner::decode(data) {
        assert_eq!(m.encode(), data);
        if let Dake3Inner::Publication(p) = &m {
            assert_eq!(
                usize::from(p.n()),
                p.prekey_messages.as_ref().map_or(0, |x| x.messages().len())
            );
        }
    }
});
