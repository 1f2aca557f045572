//! Fuzzes the Data Message plaintext parser (`wire::tlv::parse_plaintext`): never panics,
//! and a plaintext without corrupted TLVs re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otr4::hazmat::wire::tlv::{encode_plaintext, parse_plaintext};

fuzz_target!(|data: &[u8]| {
    let p = parse_plaintext(data);
    assert!(!p.message.contains(&0));
    let stored: usize = p.message.len() + p.tlvs.iter().map(|t| 4 + t.value.len()).sum::<usize>();
    assert!(stored <= data.len());
    if !p.corrupted && (!p.tlvs.is_empty() || !data.contains(&0)) {
        assert_eq!(encode_plaintext(&p.message, &p.tlvs).as_deref(), Ok(data));
    }
    for (_, t) in p.known_tlvs() {
        let _ = t.extra_symmetric_key_use();
    }
});
