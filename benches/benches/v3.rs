//! Criterion benches of otr4's OTRv3 (the compatible mode's v3 half, `otr4::hazmat::v3`): the
//! AKE with both sides' work, one 1 KiB data message encrypted and decrypted, and a full SMP
//! exchange over the 1536-bit group. libotr 4.1's figures for the same operations come from
//! `benches/libotr-v3/` (README there).

// Bench code, like tests: a setup that fails must stop the run loudly.
#![allow(clippy::panic)]

use std::hint::black_box;

use chacha20::ChaCha20Rng;
use criterion::{Criterion, criterion_main};
use otr4::InstanceTag;
use otr4::hazmat::v3::ake::{self, AkeComplete};
use otr4::hazmat::v3::messages::Message;
use otr4::hazmat::v3::pubkey::DsaPrivateKey;
use otr4::hazmat::v3::session::Session;
use otr4::hazmat::v3::smp::{Smp, SmpContext, SmpEvent};
use otr4::hazmat::v3::tlv::V3Plaintext;
use rand_core::SeedableRng;

const ALICE: InstanceTag = InstanceTag(0x1111_1111);
const BOB: InstanceTag = InstanceTag(0x2222_2222);

/// Every message goes through its wire encoding, as it would between two clients.
fn wire(m: Message, from: InstanceTag, to: InstanceTag) -> Message {
    match Message::decode(&m.encode(from, to)) {
        Ok((_, m)) => m,
        Err(e) => panic!("decode: {e}"),
    }
}

/// Bob starts (D-H Commit), Alice answers; both sides' work, wire encoding included.
fn ake(
    rng: &mut ChaCha20Rng,
    alice: &DsaPrivateKey,
    bob: &DsaPrivateKey,
) -> (AkeComplete, AkeComplete) {
    let (b, commit) = ake::start(rng);
    let Message::DhCommit(commit) = wire(Message::DhCommit(commit), BOB, ALICE) else {
        panic!("commit")
    };
    let (a, dh_key) = ake::receive_dh_commit(&commit, rng);
    let Message::DhKey(dh_key) = wire(Message::DhKey(dh_key), ALICE, BOB) else {
        panic!("dh key")
    };
    let Ok((b, reveal)) = b.receive_dh_key(&dh_key, bob) else {
        panic!("reveal")
    };
    let Message::RevealSignature(reveal) = wire(Message::RevealSignature(reveal), BOB, ALICE)
    else {
        panic!("reveal")
    };
    let Ok((done_a, sig)) = a.receive_reveal_signature(&reveal, alice) else {
        panic!("signature")
    };
    let Message::Signature(sig) = wire(Message::Signature(sig), ALICE, BOB) else {
        panic!("signature")
    };
    let Ok(done_b) = b.receive_signature(&sig) else {
        panic!("done")
    };
    (done_a, done_b)
}

fn v3_bench(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    let (Ok(alice), Ok(bob)) = (
        DsaPrivateKey::generate(&mut rng),
        DsaPrivateKey::generate(&mut rng),
    ) else {
        panic!("DSA keys")
    };
    let mut g = c.benchmark_group("v3");
    g.sample_size(20);
    g.bench_function("AKE, both sides (D-H Commit to Signature)", |bch| {
        bch.iter(|| black_box(ake(&mut rng, &alice, &bob)))
    });

    let (done_a, done_b) = ake(&mut rng, &alice, &bob);
    let ctx = |ours: &DsaPrivateKey, done: &AkeComplete| SmpContext {
        our_fingerprint: ours.public().fingerprint(),
        their_fingerprint: done.their_public.fingerprint(),
        ssid: done.ssid,
    };
    let (actx, bctx) = (ctx(&alice, &done_a), ctx(&bob, &done_b));
    let mut a = Session::new(done_a, ALICE, BOB, &mut rng);
    let mut b = Session::new(done_b, BOB, ALICE, &mut rng);
    let Ok(pt) = V3Plaintext::encode(&[b'x'; 1024], &[]) else {
        panic!("plaintext")
    };
    g.bench_function("1 KiB: encrypt, then decrypt (keys in place)", |bch| {
        bch.iter(|| {
            let Ok(bytes) = a.encrypt(&pt, 0) else {
                panic!("encrypt")
            };
            let Ok((h, Message::Data(d))) = Message::decode(&bytes) else {
                panic!("decode")
            };
            let Ok(got) = b.decrypt(&h, &d, &mut rng) else {
                panic!("decrypt")
            };
            black_box(got)
        })
    });

    let run = |rng: &mut ChaCha20Rng| -> bool {
        let (mut sa, mut sb) = (Smp::new(), Smp::new());
        let (_, m1) = sa.start(&actx, b"shared secret", None, rng);
        sb.receive(&m1, rng);
        let Ok(m2) = sb.respond(&bctx, b"shared secret", rng) else {
            panic!("respond")
        };
        let Some(m3) = sa.receive(&m2, rng).reply else {
            panic!("no message 3")
        };
        let step = sb.receive(&m3, rng);
        let Some(m4) = step.reply else {
            panic!("no message 4")
        };
        matches!(
            sa.receive(&m4, rng).event,
            Some(SmpEvent::Finished { verified: true })
        )
    };
    assert!(run(&mut rng));
    g.bench_function("SMP, full exchange, both sides (messages 1-4)", |bch| {
        bch.iter(|| run(&mut rng))
    });
    g.finish();
}

mod group {
    use super::v3_bench;
    criterion::criterion_group!(benches, v3_bench);
}
criterion_main!(group::benches);
