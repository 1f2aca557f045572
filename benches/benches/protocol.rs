//! Criterion benches of otr4's protocol layers: the full interactive DAKE, the
//! non-interactive DAKE (each side and both), Data Message encryption and decryption inside
//! a chain, DH ratchet steps with and without the brace-key DH, and a complete SMP exchange.

// Bench code, like tests: a setup that fails must stop the run loudly.
#![allow(clippy::panic)]

use otr4::hazmat::wire::codec::Codec;
use std::hint::black_box;

use chacha20::ChaCha20Rng;
use criterion::{BatchSize, Criterion, criterion_main};
use otr4::Fingerprint;
use otr4::InstanceTag;
use otr4::PrekeyStore;
use otr4::ValidatedEnsemble;
use otr4::hazmat::crypto::ed448::KeyPair;
use otr4::hazmat::crypto::keys::generate_forging_point;
use otr4::hazmat::dake::non_interactive::{
    NonInteractiveComplete, receive_non_interactive_auth, send_non_interactive_auth,
};
use otr4::hazmat::dake::{self, DakeComplete, LocalParty, PhiPrime};
use otr4::hazmat::profile::client::ClientProfile;
use otr4::hazmat::ratchet::DoubleRatchet;
use otr4::hazmat::smp::{Smp, SmpContext, SmpEvent};
use otr4::hazmat::wire::messages::PrekeyEnsemble;
use otr4::hazmat::wire::messages::{DataMessage, NonInteractiveAuth};
use rand_core::SeedableRng;

const NOW: i64 = 1_780_000_000;
const ALICE: InstanceTag = InstanceTag(0x1111_1111);
const BOB: InstanceTag = InstanceTag(0x2222_2222);

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::from_seed([11; 32])
}

/// A party's long-term key, Client Profile and `phi'`.
struct Identity {
    key: KeyPair,
    profile: ClientProfile,
    phi_prime: PhiPrime,
}

impl Identity {
    fn new(rng: &mut ChaCha20Rng, tag: InstanceTag) -> Identity {
        let key = KeyPair::generate(rng);
        let forging = generate_forging_point(rng);
        let profile = ClientProfile::build_and_sign(tag, &key, &forging, b"4", NOW + 86_400);
        Identity {
            key,
            profile,
            phi_prime: PhiPrime::from_strings(&["alice@example.org", "bob@example.org"]),
        }
    }

    fn local(&self) -> LocalParty<'_> {
        match LocalParty::new(&self.key, &self.profile, &self.phi_prime) {
            Ok(l) => l,
            Err(e) => panic!("local party: {e}"),
        }
    }

    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::otrv4(self.profile.public_key(), self.profile.forging_key())
    }
}

/// Identity → Auth-R → Auth-I: Bob's and Alice's completed DAKEs.
fn run_dake(
    rng: &mut ChaCha20Rng,
    bob: &LocalParty<'_>,
    alice: &LocalParty<'_>,
) -> (DakeComplete, DakeComplete) {
    let (waiting_r, identity) = dake::start(rng, bob, InstanceTag::UNKNOWN);
    let Ok((waiting_i, auth_r)) = dake::receive_identity(rng, alice, &identity, NOW) else {
        panic!("Identity rejected")
    };
    let Ok((bob_done, auth_i)) = waiting_r.receive_auth_r(rng, bob, &auth_r, NOW) else {
        panic!("Auth-R rejected")
    };
    let Ok(alice_done) = waiting_i.receive_auth_i(&auth_i) else {
        panic!("Auth-I rejected")
    };
    (bob_done, alice_done)
}

fn dake_bench(c: &mut Criterion) {
    let mut rng = rng();
    let (alice, bob) = (Identity::new(&mut rng, ALICE), Identity::new(&mut rng, BOB));
    let (a, b) = (alice.local(), bob.local());
    let mut g = c.benchmark_group("dake");
    g.sample_size(10);
    g.bench_function(
        "interactive, both sides (Identity, Auth-R, Auth-I)",
        |bch| bch.iter(|| run_dake(&mut rng, black_box(&b), black_box(&a))),
    );
    g.finish();

    // Each step alone; a step whose state is consumed gets a fresh state per iteration
    // (built in setup, not measured).
    let mut g = c.benchmark_group("dake step");
    g.sample_size(10);
    g.bench_function("1 Bob: start, build Identity", |bch| {
        bch.iter(|| dake::start(&mut rng, black_box(&b), InstanceTag::UNKNOWN))
    });
    let (_, identity) = dake::start(&mut rng, &b, InstanceTag::UNKNOWN);
    g.bench_function("2 Alice: receive Identity, build Auth-R", |bch| {
        bch.iter(|| dake::receive_identity(&mut rng, black_box(&a), black_box(&identity), NOW))
    });
    let mut rng2 = ChaCha20Rng::from_seed([13; 32]);
    g.bench_function("3 Bob: receive Auth-R, build Auth-I", |bch| {
        bch.iter_batched(
            || {
                let (waiting_r, identity) = dake::start(&mut rng2, &b, InstanceTag::UNKNOWN);
                match dake::receive_identity(&mut rng2, &a, &identity, NOW) {
                    Ok((_, auth_r)) => (waiting_r, auth_r),
                    Err(_) => panic!("Identity rejected"),
                }
            },
            |(waiting_r, auth_r)| waiting_r.receive_auth_r(&mut rng, &b, &auth_r, NOW),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("4 Alice: receive Auth-I", |bch| {
        bch.iter_batched(
            || {
                let (waiting_r, identity) = dake::start(&mut rng2, &b, InstanceTag::UNKNOWN);
                let Ok((waiting_i, auth_r)) = dake::receive_identity(&mut rng2, &a, &identity, NOW)
                else {
                    panic!("Identity rejected")
                };
                match waiting_r.receive_auth_r(&mut rng2, &b, &auth_r, NOW) {
                    Ok((_, auth_i)) => (waiting_i, auth_i),
                    Err(_) => panic!("Auth-R rejected"),
                }
            },
            |(waiting_i, auth_i)| waiting_i.receive_auth_i(&auth_i),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("5 either side: double ratchet from the DAKE", |bch| {
        bch.iter_batched(
            || run_dake(&mut rng2, &b, &a).0,
            |done| done.into_ratchet_init().into_double_ratchet(&mut rng),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Bob's published side of the non-interactive DAKE: his prekey secrets (one Prekey message
/// and a Prekey Profile) and the Prekey Ensemble Alice retrieves.
struct Published {
    store: PrekeyStore,
    ensemble: PrekeyEnsemble,
}

fn publish_one(rng: &mut ChaCha20Rng, bob: &Identity) -> Published {
    let mut store = PrekeyStore::new(BOB);
    let prekey_profile = store.new_prekey_profile(rng, &bob.key, NOW + 86_400);
    let Ok(mut messages) = store.generate_prekey_messages(rng, 1, NOW) else {
        panic!("prekey message")
    };
    let Some(prekey_message) = messages.pop() else {
        panic!("no prekey message")
    };
    Published {
        store,
        ensemble: PrekeyEnsemble {
            client_profile: bob.profile.clone(),
            prekey_profile,
            prekey_message,
        },
    }
}

/// Alice's side: validates the retrieved ensemble, builds the Non-Interactive-Auth message
/// and encodes it for sending.
fn ni_send(
    rng: &mut ChaCha20Rng,
    alice: &Identity,
    ensemble: &PrekeyEnsemble,
) -> (Vec<u8>, NonInteractiveComplete) {
    let Ok(validated) = ValidatedEnsemble::validate(ensemble, NOW) else {
        panic!("ensemble rejected")
    };
    match send_non_interactive_auth(
        rng,
        &validated,
        &alice.key,
        &alice.profile,
        &alice.phi_prime,
    ) {
        Ok((m, done)) => (m.encode(), done),
        Err(e) => panic!("send: {e}"),
    }
}

/// Bob's side: decodes the message, verifies it against his prekey secrets (which removes
/// the used prekey from `store`) and derives `K`, the SSID and the ratchet's first keys.
fn ni_receive(bob: &Identity, store: &mut PrekeyStore, bytes: &[u8]) -> NonInteractiveComplete {
    let Ok(m) = NonInteractiveAuth::decode(bytes) else {
        panic!("decode")
    };
    match receive_non_interactive_auth(
        &m,
        &bob.key,
        core::slice::from_ref(&bob.profile),
        store,
        &bob.phi_prime,
        NOW,
    ) {
        Ok(done) => done,
        Err(e) => panic!("receive: {e}"),
    }
}

fn non_interactive_bench(c: &mut Criterion) {
    let mut rng = rng();
    let (alice, bob) = (Identity::new(&mut rng, ALICE), Identity::new(&mut rng, BOB));
    let published = publish_one(&mut rng, &bob);
    let (bytes, alice_done) = ni_send(&mut rng, &alice, &published.ensemble);
    let mut store = published.store.clone();
    let bob_done = ni_receive(&bob, &mut store, &bytes);
    assert_eq!(alice_done.ssid(), bob_done.ssid());
    assert!(store.is_empty(), "the used prekey is removed");

    let mut g = c.benchmark_group("dake");
    g.sample_size(10);
    g.bench_function(
        "non-interactive, Alice: validate ensemble + build Non-Interactive-Auth",
        |bch| bch.iter(|| ni_send(&mut rng, &alice, black_box(&published.ensemble))),
    );
    // Each receive consumes the prekey: a fresh copy of Bob's secrets per iteration
    // (the copy is setup, not measured).
    g.bench_function(
        "non-interactive, Bob: decode + verify Non-Interactive-Auth + derive",
        |bch| {
            bch.iter_batched(
                || published.store.clone(),
                |mut s| ni_receive(&bob, &mut s, black_box(&bytes)),
                BatchSize::SmallInput,
            )
        },
    );
    g.bench_function("non-interactive, both sides", |bch| {
        bch.iter_batched(
            || published.store.clone(),
            |mut s| {
                let (b, a) = ni_send(&mut rng, &alice, black_box(&published.ensemble));
                (a, ni_receive(&bob, &mut s, &b))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Both double ratchets after a DAKE: (Alice, Bob).
fn ratchets(rng: &mut ChaCha20Rng) -> (DoubleRatchet, DoubleRatchet) {
    let (alice, bob) = (Identity::new(rng, ALICE), Identity::new(rng, BOB));
    let (bob_done, alice_done) = run_dake(rng, &bob.local(), &alice.local());
    let init = |d: DakeComplete, rng: &mut ChaCha20Rng| match d
        .into_ratchet_init()
        .into_double_ratchet(rng)
    {
        Ok(r) => r,
        Err(e) => panic!("ratchet init: {e}"),
    };
    let b = init(bob_done, rng);
    (init(alice_done, rng), b)
}

fn send(
    rng: &mut ChaCha20Rng,
    from: &mut DoubleRatchet,
    tags: (InstanceTag, InstanceTag),
    text: &[u8],
) -> DataMessage {
    match from.encrypt(tags.0, tags.1, 0, text, rng) {
        Ok(e) => e.message,
        Err(e) => panic!("encrypt: {e}"),
    }
}

fn deliver(to: &mut DoubleRatchet, m: &DataMessage) {
    if let Err(e) = to.decrypt(m) {
        panic!("decrypt: {e}")
    }
}

fn import(bytes: &[u8]) -> DoubleRatchet {
    match DoubleRatchet::import(bytes) {
        Ok(r) => r,
        Err(e) => panic!("import: {e}"),
    }
}

fn ratchet_bench(c: &mut Criterion) {
    let mut rng = rng();
    let (mut alice, mut bob) = ratchets(&mut rng);
    let kib = vec![0x61u8; 1024];
    let mut g = c.benchmark_group("ratchet");

    // Inside a chain: Alice's first chain, established by a first message.
    let m = send(&mut rng, &mut alice, (ALICE, BOB), b"first");
    deliver(&mut bob, &m);
    let snapshot = alice.export();
    g.bench_function("encrypt 1 KiB inside a chain", |bch| {
        bch.iter(|| alice.encrypt(ALICE, BOB, 0, black_box(&kib), &mut rng))
    });
    let mut alice = import(&snapshot);
    let mut rng2 = ChaCha20Rng::from_seed([12; 32]);
    g.bench_function("decrypt 1 KiB inside a chain", |bch| {
        bch.iter_batched(
            || send(&mut rng2, &mut alice, (ALICE, BOB), &kib),
            |m| bob.decrypt(black_box(&m)),
            BatchSize::SmallInput,
        )
    });
    let mut alice = import(&snapshot);

    // Ratchet steps: Bob answers (his first chain, id 0); Alice's reply is then a new
    // ratchet with id 1 (brace key hashed forward). After Bob's reply (id 2), Alice's next
    // one has id 3 (a new 3072-bit DH key pair and DH).
    let m = send(&mut rng, &mut bob, (BOB, ALICE), b"bob, chain id 0");
    deliver(&mut alice, &m);
    for (label, want_id) in [("id 1, no DH", 1u32), ("id 3, brace-key DH", 3)] {
        if want_id == 3 {
            let m = send(&mut rng, &mut alice, (ALICE, BOB), b"id 1");
            deliver(&mut bob, &m);
            let m = send(&mut rng, &mut bob, (BOB, ALICE), b"id 2");
            deliver(&mut alice, &m);
        }
        assert!(alice.needs_sending_ratchet());
        let (alice_before, bob_before) = (alice.export(), bob.export());
        let probe = send(&mut rng, &mut import(&alice_before), (ALICE, BOB), b"probe");
        assert_eq!((probe.i, probe.dh.is_some()), (want_id, want_id % 3 == 0));
        g.bench_function(
            format!("ratchet step: encrypt first message of a new ratchet ({label})"),
            |bch| {
                bch.iter_batched(
                    || import(&alice_before),
                    |mut a| a.encrypt(ALICE, BOB, 0, black_box(&kib), &mut rng),
                    BatchSize::SmallInput,
                )
            },
        );
        let first = send(&mut rng, &mut alice, (ALICE, BOB), &kib);
        g.bench_function(
            format!("ratchet step: decrypt first message of a new ratchet ({label})"),
            |bch| {
                bch.iter_batched(
                    || import(&bob_before),
                    |mut b| b.decrypt(black_box(&first)),
                    BatchSize::SmallInput,
                )
            },
        );
        deliver(&mut bob, &first);
    }
    g.finish();
}

fn smp_bench(c: &mut Criterion) {
    let mut rng = rng();
    let (alice, bob) = (Identity::new(&mut rng, ALICE), Identity::new(&mut rng, BOB));
    let ssid = [5u8; 8];
    let actx = SmpContext {
        our_fingerprint: alice.fingerprint(),
        their_fingerprint: bob.fingerprint(),
        ssid,
    };
    let bctx = SmpContext {
        our_fingerprint: bob.fingerprint(),
        their_fingerprint: alice.fingerprint(),
        ssid,
    };
    let run = |rng: &mut ChaCha20Rng| -> bool {
        let (mut a, mut b) = (Smp::new(), Smp::new());
        let step = |r: Result<SmpEvent, _>| match r {
            Ok(e) => e,
            Err(e) => panic!("smp: {e}"),
        };
        let Ok(m1) = a.start(rng, &actx, b"shared secret", None) else {
            panic!("start")
        };
        step(b.receive(rng, &m1));
        let Ok(m2) = b.respond(rng, &bctx, b"shared secret") else {
            panic!("respond")
        };
        let SmpEvent::SendTlv(m3) = step(a.receive(rng, &m2)) else {
            panic!("no message 3")
        };
        let SmpEvent::Succeeded { reply: Some(m4) } = step(b.receive(rng, &m3)) else {
            panic!("bob: no success")
        };
        matches!(
            step(a.receive(rng, &m4)),
            SmpEvent::Succeeded { reply: None }
        )
    };
    assert!(run(&mut rng));
    let mut g = c.benchmark_group("smp");
    g.sample_size(20);
    g.bench_function("full exchange, both sides (messages 1-4)", |bch| {
        bch.iter(|| run(&mut rng))
    });
    g.finish();
}

mod group {
    use super::{dake_bench, non_interactive_bench, ratchet_bench, smp_bench};
    criterion::criterion_group!(
        benches,
        dake_bench,
        non_interactive_bench,
        ratchet_bench,
        smp_bench
    );
}
criterion_main!(group::benches);
