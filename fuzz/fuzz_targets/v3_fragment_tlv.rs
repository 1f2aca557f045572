//! Fuzzes the OTRv3 text decoders (`hazmat::v3`): fragments and their reassembly (each
//! input line is one fragment) and the v3 plaintext/TLV parser. Never panics; parsed
//! fragments re-encode; the reassembled message stays within its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otr4::InstanceTag;
use otr4::hazmat::v3::fragment::{MAX_REASSEMBLED, Reassembler, V3Fragment};
use otr4::hazmat::v3::tlv::V3Plaintext;

fuzz_target!(|data: &[u8]| {
    let p = V3Plaintext::parse(data);
    assert!(!p.message.contains(&0));
    if !p.truncated && (!p.tlvs.is_empty() || !data.contains(&0)) {
        assert_eq!(
            V3Plaintext::encode(&p.message, &p.tlvs).as_deref(),
            Ok(data)
        );
    }
    let s = String::from_utf8_lossy(data);
    let mut r = Reassembler::default();
    for line in s.split('\n') {
        if let Ok(f) = V3Fragment::parse(line) {
            assert_eq!(
                V3Fragment::parse(&f.encode()).map(|g| (
                    g.sender,
                    g.receiver,
                    g.index,
                    g.total,
                    g.piece.to_string()
                )),
                Ok((f.sender, f.receiver, f.index, f.total, f.piece.to_string()))
            );
            if let Some(msg) = r.push(&f, InstanceTag(0x100)) {
                assert!(!msg.is_empty() && msg.len() <= MAX_REASSEMBLED + f.piece.len());
            }
        }
    }
});
