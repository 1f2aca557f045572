//! Fuzzes the SMP message decoders (`SmpMessage1..4::decode`, otrv4.md §"SMP Message 1" …
//! §"SMP Message 4") and the SMP state machine: never panic; whatever decodes re-encodes to
//! the identical bytes; a fresh `Smp` fed the bytes as each SMP TLV ends in a sane state.
#![no_main]

use chacha20::ChaCha20Rng;
use libfuzzer_sys::fuzz_target;
use otr4::hazmat::smp::{SMP_MESSAGE_2_LEN, SMP_MESSAGE_3_LEN, SMP_MESSAGE_4_LEN, Smp, SmpEvent, SmpMessage1, SmpMessage2, SmpMessage3, SmpMessage4, SmpState};
use otr4::hazmat::wire::codec::Codec;
use otr4::{Tlv, TlvType};
use rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SmpMessage1::decode(data) {
        assert_eq!(m.encode(), data);
        assert_eq!(m.to_tlv().map(|t| t.value).as_deref(), Ok(data));
    }
    if let Ok(m) = SmpMessage2::decode(data) {
        assert_eq!(data.len(), SMP_MESSAGE_2_LEN);
        assert_eq!(m.encode(), data);
    }
    if let Ok(m) = SmpMessage3::decode(data) {
        assert_eq!(data.len(), SMP_MESSAGE_3_LEN);
        assert_eq!(m.encode(), data);
    }
    if let Ok(m) = SmpMessage4::decode(data) {
        assert_eq!(data.len(), SMP_MESSAGE_4_LEN);
        assert_eq!(m.encode(), data);
    }
    // A fresh state machine (SMPSTATE_EXPECT1) accepts only a valid message 1; anything
    // else is an abort, and the state stays EXPECT1.
    let mut rng = ChaCha20Rng::from_seed([9; 32]);
    for typ in [
        TlvType::SmpMessage1,
        TlvType::SmpMessage2,
        TlvType::SmpMessage3,
        TlvType::SmpMessage4,
        TlvType::SmpAbort,
    ] {
        let mut smp = Smp::new();
        let ev = smp.receive(&mut rng, &Tlv::new(typ, data.to_vec()));
        assert_eq!(smp.state(), SmpState::Expect1);
        match ev {
            Ok(SmpEvent::AskForSecret { .. }) => {
                assert_eq!(typ, TlvType::SmpMessage1);
                assert!(smp.awaiting_secret());
            }
            Ok(SmpEvent::Aborted { .. }) | Ok(SmpEvent::AbortedByPeer) => {
                assert!(!smp.awaiting_secret());
            }
            other => panic!("unexpected outcome in EXPECT1: {other:?}"),
        }
    }
});
