//! Fuzzes the OTRv3 SMP message decoders and checks (`hazmat::v3::smp`): the first byte picks
//! the TLV type (2–7), the rest is its value, received by a fresh state and by one that has
//! sent message 1. Never panics; anything refused resets the state with an abort to send.
#![no_main]

use chacha20::ChaCha20Rng;
use libfuzzer_sys::fuzz_target;
use otr4::hazmat::v3::smp::{Smp, SmpContext, SmpEvent};
use otr4::hazmat::v3::tlv::{V3Tlv, V3TlvType};
use rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let Some((&t, value)) = data.split_first() else {
        return;
    };
    let tlv = V3Tlv {
        typ: V3TlvType::from_u16(2 + u16::from(t % 6)),
        value: value.to_vec(),
    };
    let ctx = SmpContext {
        our_fingerprint: [1; 20],
        their_fingerprint: [2; 20],
        ssid: [3; 8],
    };
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let mut started = Smp::new();
    let _ = started.start(&ctx, b"secret", None, &mut rng);
    for mut smp in [Smp::new(), started] {
        let step = smp.receive(&tlv, &mut rng);
        if matches!(step.event, Some(SmpEvent::Failed(_) | SmpEvent::OutOfOrder)) {
            assert!(step.reply.is_some() && !smp.in_progress());
        }
    }
});
