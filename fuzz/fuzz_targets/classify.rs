//! Fuzzes the classifier of incoming text (`wire::encoded::classify`, `classify_prekey`):
//! never panics; what it decodes re-encodes to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otr4::hazmat::wire::encoded::{Incoming, IncomingPrekey, classify, classify_prekey, encode_otr, encode_prekey};
use otr4::hazmat::wire::fragment::Fragment;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    match classify(&s) {
        Ok(Incoming::Encoded(bin)) => assert_eq!(encode_otr(&bin), s),
        Ok(Incoming::Fragment(f)) => assert_eq!(Fragment::parse(&f.encode()), Ok(f)),
        Ok(Incoming::Plaintext {
            text,
            whitespace_tag,
        }) => {
            if whitespace_tag.is_none() {
                assert_eq!(text, s);
            } else {
                assert!(text.len() + 16 <= s.len());
            }
        }
        _ => {}
    }
    match classify_prekey(&s) {
        Ok(IncomingPrekey::Encoded(bin)) => assert_eq!(encode_prekey(&bin), s),
        Ok(IncomingPrekey::Fragment(f)) => assert_eq!(Fragment::parse(&f.encode()), Ok(f)),
        Err(_) => {}
    }
});
