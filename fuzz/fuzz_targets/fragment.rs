//! Fuzzes fragment parsing and reassembly: each line of the input is a fragment pushed
//! into `?OTR|` and `?OTRP|` reassemblers; never panics, parsed fragments re-encode, and
//! the reassemblers' memory stays within their documented bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otr4::InstanceTag;
use otr4::hazmat::wire::fragment::{Fragment, FragmentKind, MAX_BUFFERED_BYTES, MAX_PENDING_MESSAGES, Reassembler};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let mut otr = Reassembler::with_timeout(FragmentKind::Otr, 10);
    let mut prekey = Reassembler::new(FragmentKind::Prekey);
    let our = InstanceTag(0x100);
    for (now, line) in s.split('\n').enumerate() {
        let now = now as u64;
        if let Ok(f) = Fragment::parse(line) {
            assert_eq!(Fragment::parse(&f.encode()), Ok(f));
            assert!(f.index >= 1 && f.index <= f.total && !f.piece.is_empty());
        }
        for r in [&mut otr, &mut prekey] {
            let tag = if r.kind() == FragmentKind::Otr {
                our
            } else {
                InstanceTag(0)
            };
            if let Ok(Some(msg)) = r.push(line, tag, now) {
                assert!(!msg.is_empty());
            }
            assert!(r.pending() <= MAX_PENDING_MESSAGES);
            assert!(r.buffered_bytes() <= MAX_BUFFERED_BYTES);
        }
    }
    otr.expire(u64::MAX);
    assert_eq!(otr.pending(), 0);
});
