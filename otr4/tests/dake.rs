//! Two-party runs of the interactive DAKE (otrv4.md §"Interactive DAKE Overview") with
//! seeded RNGs: agreement on `K`/SSID, the simultaneous-start tie-break, and every
//! tampering and replay case rejected with its specific error and the state kept.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use otr4::DakeError;
use otr4::InstanceTag;
use otr4::ProfileError;
use otr4::hazmat::crypto::ed448::KeyPair;
use otr4::hazmat::crypto::kdf::Otrv4;
use otr4::hazmat::crypto::keys::ForgingPublicKey;
use otr4::hazmat::dake::transcript::Transcript;
use otr4::hazmat::dake::{
    DakeComplete, LocalParty, PhiParty, PhiPrime, Rejected, Role, SimultaneousIdentity,
    WaitingAuthI, WaitingAuthR, phi, receive_identity, start, tie_break_hash,
};
use otr4::hazmat::profile::client::ClientProfile;
use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::messages::{AuthI, AuthR, IdentityMessage};
use rand::SeedableRng;
use rand::rngs::StdRng;

const NOW: i64 = 1_700_000_000;
const EXP: i64 = NOW + 7 * 86_400;
const ALICE_JID: &str = "alice@jabber.net";
const BOB_JID: &str = "bob@jabber.net";

struct Account {
    long_term: KeyPair,
    profile: ClientProfile,
    phi_prime: PhiPrime,
}

impl Account {
    fn new(seed: u64, tag: u32, jids: &[&str]) -> Account {
        Account::with_expiry(seed, tag, jids, EXP)
    }

    fn with_expiry(seed: u64, tag: u32, jids: &[&str], exp: i64) -> Account {
        let mut rng = StdRng::seed_from_u64(seed);
        let long_term = KeyPair::generate(&mut rng);
        let forging = KeyPair::generate(&mut rng);
        let profile = ClientProfile::build_and_sign(
            InstanceTag(tag),
            &long_term,
            &ForgingPublicKey(*forging.public()),
            b"4",
            exp,
        );
        Account {
            long_term,
            profile,
            phi_prime: PhiPrime::from_strings(jids),
        }
    }

    fn local(&self) -> LocalParty<'_> {
        LocalParty::new(&self.long_term, &self.profile, &self.phi_prime).unwrap()
    }
}

/// Bob (tag 0x100) and Alice (tag 0x200), each listing the bare JIDs in their own order.
fn pair() -> (Account, Account) {
    (
        Account::new(1, 0x100, &[BOB_JID, ALICE_JID]),
        Account::new(2, 0x200, &[ALICE_JID, BOB_JID]),
    )
}

/// Every message crosses the wire: encode, then decode strictly.
fn wire_id(m: &IdentityMessage) -> IdentityMessage {
    IdentityMessage::decode(&m.encode()).unwrap()
}
fn wire_r(m: &AuthR) -> AuthR {
    AuthR::decode(&m.encode()).unwrap()
}
fn wire_i(m: &AuthI) -> AuthI {
    AuthI::decode(&m.encode()).unwrap()
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn err<S>(r: Result<impl Sized, Rejected<S>>) -> (S, DakeError) {
    match r {
        Ok(_) => panic!("message was accepted"),
        Err(rej) => rej.into_parts(),
    }
}

fn assert_agree(bob: &DakeComplete, alice: &DakeComplete) {
    assert_eq!(bob.role(), Role::Bob);
    assert_eq!(alice.role(), Role::Alice);
    assert_eq!(
        bob.shared_secret().as_bytes(),
        alice.shared_secret().as_bytes()
    );
    assert_eq!(bob.ssid(), alice.ssid());
    assert_eq!(bob.our_tag(), alice.their_tag());
    assert_eq!(bob.their_tag(), alice.our_tag());
    assert_eq!(bob.our_ecdh_first().public(), alice.their_ecdh_first());
    assert_eq!(alice.our_ecdh_first().public(), bob.their_ecdh_first());
    assert_eq!(bob.our_dh_first().public(), alice.their_dh_first());
    assert_eq!(alice.our_dh_first().public(), bob.their_dh_first());
}

/// A full run; returns (Bob's, Alice's) outcome.
fn run(bob: &Account, alice: &Account, seed: u64) -> (DakeComplete, DakeComplete) {
    let mut rb = rng(seed);
    let mut ra = rng(seed + 1000);
    let (waiting_r, identity) = start(&mut rb, &bob.local(), InstanceTag::UNKNOWN);
    let (waiting_i, auth_r) =
        receive_identity(&mut ra, &alice.local(), &wire_id(&identity), NOW).unwrap();
    let (bob_done, auth_i) = waiting_r
        .receive_auth_r(&mut rb, &bob.local(), &wire_r(&auth_r), NOW)
        .unwrap();
    let alice_done = waiting_i.receive_auth_i(&wire_i(&auth_i)).unwrap();
    (bob_done, alice_done)
}

#[test]
fn full_dake_agrees_on_k_and_ssid() {
    let (bob, alice) = pair();
    let (b, a) = run(&bob, &alice, 10);
    assert_agree(&b, &a);
    assert_eq!(b.our_tag(), InstanceTag(0x100));
    assert_eq!(a.our_tag(), InstanceTag(0x200));
    assert_eq!(b.their_profile().profile(), &alice.profile);
    assert_eq!(a.their_profile().profile(), &bob.profile);
    // SSID display: Alice (Auth-R sender) bolds the first half, Bob the second.
    assert_eq!(a.role().ssid_bold_half(), 0);
    assert_eq!(b.role().ssid_bold_half(), 1);

    // Fresh ephemerals give a fresh K.
    let (b2, a2) = run(&bob, &alice, 11);
    assert_agree(&b2, &a2);
    assert_ne!(b.shared_secret().as_bytes(), b2.shared_secret().as_bytes());
    assert_ne!(b.ssid(), b2.ssid());

    // The ratchet record carries the same values.
    let ssid = a.ssid();
    let k = *a.shared_secret().as_bytes();
    let init = a.into_ratchet_init();
    assert_eq!(init.role, Role::Alice);
    assert_eq!(init.ssid, ssid);
    assert_eq!(init.shared_secret.as_bytes(), &k);
    assert_eq!(&init.their_ecdh, b.our_ecdh_first().public());
    assert_eq!(&init.their_dh, b.our_dh_first().public());
}

#[test]
fn full_dake_the_other_way_round() {
    let (bob, alice) = pair();
    // Alice's account initiates this time, so it plays Bob.
    let (a_as_bob, b_as_alice) = run(&alice, &bob, 20);
    assert_agree(&a_as_bob, &b_as_alice);
    assert_eq!(a_as_bob.our_tag(), InstanceTag(0x200));
}

#[test]
fn ring_signatures_use_the_spec_rings_and_transcripts() {
    let (bob, alice) = pair();
    let (_waiting_r, identity) = start(&mut rng(30), &bob.local(), InstanceTag::UNKNOWN);
    let (_waiting_i, auth_r) =
        receive_identity(&mut rng(31), &alice.local(), &identity, NOW).unwrap();
    let phi_bytes = phi(
        PhiParty {
            tag: InstanceTag(0x100),
            ecdh_first: &identity.our_ecdh_first,
            dh_first: &identity.our_dh_first,
        },
        PhiParty {
            tag: InstanceTag(0x200),
            ecdh_first: &auth_r.our_ecdh_first,
            dh_first: &auth_r.our_dh_first,
        },
        &PhiPrime::from_strings(&[ALICE_JID, BOB_JID]),
    );
    let t = Transcript {
        bob_profile: &bob.profile,
        alice_profile: &alice.profile,
        y: &identity.y,
        x: &auth_r.x,
        b: &identity.b,
        a: &auth_r.a,
        phi: &phi_bytes,
    };
    // RVrf({F_b, H_a, Y}, sigma, t) for Auth-R …
    auth_r
        .sigma
        .verify::<Otrv4>(
            [
                bob.profile.forging_key().point(),
                alice.profile.public_key().point(),
                &identity.y,
            ],
            &t.auth_r(),
        )
        .unwrap();
    // … and not over the Auth-I transcript or another ring order.
    assert!(
        auth_r
            .sigma
            .verify::<Otrv4>(
                [
                    bob.profile.forging_key().point(),
                    alice.profile.public_key().point(),
                    &identity.y
                ],
                &t.auth_i()
            )
            .is_err()
    );
    assert!(
        auth_r
            .sigma
            .verify::<Otrv4>(
                [
                    alice.profile.public_key().point(),
                    bob.profile.forging_key().point(),
                    &identity.y
                ],
                &t.auth_r()
            )
            .is_err()
    );
    assert_eq!(auth_r.receiver_tag, InstanceTag(0x100));
    assert_eq!(auth_r.sender_tag, InstanceTag(0x200));

    // RVrf({H_b, F_a, X}, sigma, t) for Auth-I.
    let (waiting_r, identity) = start(&mut rng(32), &bob.local(), InstanceTag::UNKNOWN);
    let (_w, auth_r) = receive_identity(&mut rng(33), &alice.local(), &identity, NOW).unwrap();
    let (_done, auth_i) = waiting_r
        .receive_auth_r(&mut rng(34), &bob.local(), &auth_r, NOW)
        .unwrap();
    let phi_bytes = phi(
        PhiParty {
            tag: InstanceTag(0x200),
            ecdh_first: &auth_r.our_ecdh_first,
            dh_first: &auth_r.our_dh_first,
        },
        PhiParty {
            tag: InstanceTag(0x100),
            ecdh_first: &identity.our_ecdh_first,
            dh_first: &identity.our_dh_first,
        },
        &PhiPrime::from_strings(&[BOB_JID, ALICE_JID]),
    );
    let t = Transcript {
        bob_profile: &bob.profile,
        alice_profile: &alice.profile,
        y: &identity.y,
        x: &auth_r.x,
        b: &identity.b,
        a: &auth_r.a,
        phi: &phi_bytes,
    };
    auth_i
        .sigma
        .verify::<Otrv4>(
            [
                bob.profile.public_key().point(),
                alice.profile.forging_key().point(),
                &auth_r.x,
            ],
            &t.auth_i(),
        )
        .unwrap();
    assert_eq!(
        (auth_i.sender_tag, auth_i.receiver_tag),
        (InstanceTag(0x100), InstanceTag(0x200))
    );
}

// ---------------------------------------------------------------------------------------
// Simultaneous Identity messages.

#[test]
fn simultaneous_identity_exactly_one_side_yields_and_the_dake_completes() {
    let (p, q) = pair();
    let mut winners = [0usize; 2];
    for seed in 0..8u64 {
        let (mut rp, mut rq) = (rng(100 + seed), rng(200 + seed));
        let (p_wait, p_id) = start(&mut rp, &p.local(), InstanceTag::UNKNOWN);
        let (q_wait, q_id) = start(&mut rq, &q.local(), InstanceTag::UNKNOWN);
        let p_higher = tie_break_hash(&p_id.b) > tie_break_hash(&q_id.b);

        let p_out = p_wait
            .receive_identity(&mut rp, &p.local(), &wire_id(&q_id), NOW)
            .unwrap();
        let q_out = q_wait
            .receive_identity(&mut rq, &q.local(), &wire_id(&p_id), NOW)
            .unwrap();
        let ((keep, keep_acct, mut keep_rng, resend), (resp, resp_acct, auth_r)) =
            match (p_out, q_out) {
                (
                    SimultaneousIdentity::KeepOurs { state, resend },
                    SimultaneousIdentity::BecameResponder { state: r, auth_r },
                ) => {
                    assert!(p_higher);
                    winners[0] += 1;
                    ((state, &p, rp, resend), (r, &q, auth_r))
                }
                (
                    SimultaneousIdentity::BecameResponder { state: r, auth_r },
                    SimultaneousIdentity::KeepOurs { state, resend },
                ) => {
                    assert!(!p_higher);
                    winners[1] += 1;
                    ((state, &q, rq, resend), (r, &p, auth_r))
                }
                other => panic!("both sides chose the same way: {other:?}"),
            };
        // The resent Identity is byte-identical to the first one.
        assert_eq!(resend.encode(), keep.identity_message().encode());
        // It reaches the responder in WAITING_AUTH_I with receiver tag 0: ignored.
        let (resp, e) =
            err(resp.receive_identity(&mut rng(1), &resp_acct.local(), &wire_id(&resend), NOW));
        assert_eq!(
            e,
            DakeError::WrongReceiverTag {
                expected: resp_acct.profile.owner_tag(),
                found: InstanceTag::UNKNOWN
            }
        );
        let (keep_done, auth_i) = keep
            .receive_auth_r(&mut keep_rng, &keep_acct.local(), &wire_r(&auth_r), NOW)
            .unwrap();
        let resp_done = resp.receive_auth_i(&wire_i(&auth_i)).unwrap();
        assert_agree(&keep_done, &resp_done);
    }
    // Both outcomes occurred across the seeds.
    assert!(winners[0] > 0 && winners[1] > 0, "{winners:?}");
}

#[test]
fn reflected_identity_is_rejected_and_state_kept() {
    let (bob, alice) = pair();
    let (waiting, identity) = start(&mut rng(40), &bob.local(), InstanceTag::UNKNOWN);
    let (waiting, e) =
        err(waiting.receive_identity(&mut rng(41), &bob.local(), &wire_id(&identity), NOW));
    assert_eq!(e, DakeError::ReflectedIdentity);
    // Still usable.
    let (_w, auth_r) = receive_identity(&mut rng(42), &alice.local(), &identity, NOW).unwrap();
    waiting
        .receive_auth_r(&mut rng(43), &bob.local(), &auth_r, NOW)
        .unwrap();
}

#[test]
fn invalid_simultaneous_identity_is_ignored() {
    let (bob, _alice) = pair();
    let mallory = Account::with_expiry(3, 0x300, &[], NOW - 1);
    let (waiting, _identity) = start(&mut rng(44), &bob.local(), InstanceTag::UNKNOWN);
    let (_mw, m_id) = start(&mut rng(45), &mallory.local(), InstanceTag::UNKNOWN);
    let (waiting, e) = err(waiting.receive_identity(&mut rng(46), &bob.local(), &m_id, NOW));
    assert_eq!(
        e,
        DakeError::Profile(ProfileError::Expired {
            expiration: NOW - 1,
            now: NOW
        })
    );
    assert_eq!(waiting.our_tag(), InstanceTag(0x100));
}

// ---------------------------------------------------------------------------------------
// Tampering.

/// Bob's WAITING_AUTH_R state, the Identity message, Alice's WAITING_AUTH_I and Auth-R.
fn half_run(
    bob: &Account,
    alice: &Account,
    seed: u64,
) -> (WaitingAuthR, IdentityMessage, WaitingAuthI, AuthR) {
    let (wr, id) = start(&mut rng(seed), &bob.local(), InstanceTag::UNKNOWN);
    let (wi, ar) =
        receive_identity(&mut rng(seed + 1), &alice.local(), &wire_id(&id), NOW).unwrap();
    (wr, id, wi, ar)
}

/// Delivers `bad` to Bob, expects `want`, then proves the state survived by completing.
fn auth_r_rejected(
    bob: &Account,
    wr: WaitingAuthR,
    wi: WaitingAuthI,
    good: &AuthR,
    bad: &AuthR,
    want: DakeError,
) {
    let (wr, e) = err(wr.receive_auth_r(&mut rng(7), &bob.local(), &wire_r(bad), NOW));
    assert_eq!(e, want);
    let (b, ai) = wr
        .receive_auth_r(&mut rng(8), &bob.local(), &wire_r(good), NOW)
        .unwrap();
    let a = wi.receive_auth_i(&wire_i(&ai)).unwrap();
    assert_agree(&b, &a);
}

#[test]
fn auth_r_with_a_wrong_ring_signature_is_rejected() {
    let (bob, alice) = pair();
    let (wr, _id, wi, ar) = half_run(&bob, &alice, 50);
    // A valid signature from another run (other Y, X, phi).
    let (_wr2, _id2, _wi2, other) = half_run(&bob, &alice, 52);
    let mut bad = ar.clone();
    bad.sigma = other.sigma.clone();
    auth_r_rejected(&bob, wr, wi, &ar, &bad, DakeError::BadRingSignature);
}

#[test]
fn auth_r_with_tampered_keys_fails_the_ring_signature() {
    let (bob, alice) = pair();
    let fresh = KeyPair::generate(&mut rng(60));
    let swap_x = |m: &mut AuthR| m.x = *fresh.public();
    // The first ratchet keys are bound through phi.
    let swap_first = |m: &mut AuthR| m.our_ecdh_first = *fresh.public();
    let swaps: [&dyn Fn(&mut AuthR); 2] = [&swap_x, &swap_first];
    for (i, swap) in swaps.iter().enumerate() {
        let (wr, _id, wi, ar) = half_run(&bob, &alice, 61 + 2 * i as u64);
        let mut bad = ar.clone();
        swap(&mut bad);
        auth_r_rejected(&bob, wr, wi, &ar, &bad, DakeError::BadRingSignature);
    }
    // A swapped DH value (A or our_dh_first) too.
    let (wr, id, wi, ar) = half_run(&bob, &alice, 70);
    let mut bad = ar.clone();
    bad.a = id.our_dh_first.clone();
    bad.our_dh_first = id.b.clone();
    auth_r_rejected(&bob, wr, wi, &ar, &bad, DakeError::BadRingSignature);
}

#[test]
fn auth_r_with_a_profile_signed_by_another_key_is_rejected() {
    let (bob, alice) = pair();
    let (wr, _id, wi, ar) = half_run(&bob, &alice, 80);
    // Alice's profile bytes with the signature of a different key over other content.
    let other = Account::new(9, 0x200, &[]);
    let mut bytes = alice.profile.encode();
    let sig_at = bytes.len() - 114;
    bytes[sig_at..].copy_from_slice(&other.profile.encode()[other.profile.encode().len() - 114..]);
    let mut bad = ar.clone();
    bad.client_profile = ClientProfile::decode(&bytes).unwrap();
    auth_r_rejected(
        &bob,
        wr,
        wi,
        &ar,
        &bad,
        DakeError::Profile(ProfileError::BadSignature),
    );
}

#[test]
fn auth_r_from_an_impostor_with_a_valid_profile_fails_the_ring_signature() {
    let (bob, alice) = pair();
    let (wr, _id, wi, ar) = half_run(&bob, &alice, 90);
    // Mallory presents her own valid profile (same tag) but reuses Alice's sigma.
    let mallory = Account::new(4, 0x200, &[]);
    let mut bad = ar.clone();
    bad.client_profile = mallory.profile.clone();
    auth_r_rejected(&bob, wr, wi, &ar, &bad, DakeError::BadRingSignature);
}

#[test]
fn expired_profiles_are_rejected() {
    let (bob, _alice) = pair();
    let alice = Account::with_expiry(2, 0x200, &[ALICE_JID, BOB_JID], NOW + 60);
    // Auth-R: Bob's clock is past Alice's expiry.
    let (wr, id) = start(&mut rng(100), &bob.local(), InstanceTag::UNKNOWN);
    let (wi, ar) = receive_identity(&mut rng(101), &alice.local(), &id, NOW).unwrap();
    let (wr, e) = err(wr.receive_auth_r(&mut rng(102), &bob.local(), &ar, NOW + 60));
    assert_eq!(
        e,
        DakeError::Profile(ProfileError::Expired {
            expiration: NOW + 60,
            now: NOW + 60
        })
    );
    let (b, ai) = wr
        .receive_auth_r(&mut rng(103), &bob.local(), &ar, NOW + 59)
        .unwrap();
    assert_agree(&b, &wi.receive_auth_i(&ai).unwrap());
    // Identity: Bob's profile expired at Alice's `now`.
    let e = receive_identity(&mut rng(104), &alice.local(), &id, EXP).unwrap_err();
    assert_eq!(
        e,
        DakeError::Profile(ProfileError::Expired {
            expiration: EXP,
            now: EXP
        })
    );
}

#[test]
fn wrong_instance_tags_are_rejected() {
    let (bob, alice) = pair();
    // Auth-R addressed to another instance.
    let (wr, _id, wi, ar) = half_run(&bob, &alice, 110);
    let mut bad = ar.clone();
    bad.receiver_tag = InstanceTag(0x101);
    auth_r_rejected(
        &bob,
        wr,
        wi,
        &ar,
        &bad,
        DakeError::WrongReceiverTag {
            expected: InstanceTag(0x100),
            found: InstanceTag(0x101),
        },
    );
    // Auth-R with receiver tag 0.
    let (wr, _id, wi, ar) = half_run(&bob, &alice, 112);
    let mut bad = ar.clone();
    bad.receiver_tag = InstanceTag::UNKNOWN;
    auth_r_rejected(
        &bob,
        wr,
        wi,
        &ar,
        &bad,
        DakeError::WrongReceiverTag {
            expected: InstanceTag(0x100),
            found: InstanceTag::UNKNOWN,
        },
    );
    // Auth-R's profile owner tag differs from its sender tag.
    let (wr, _id, wi, ar) = half_run(&bob, &alice, 114);
    let mut bad = ar.clone();
    bad.sender_tag = InstanceTag(0x201);
    auth_r_rejected(
        &bob,
        wr,
        wi,
        &ar,
        &bad,
        DakeError::Profile(ProfileError::InstanceTagMismatch {
            profile: InstanceTag(0x200),
            sender: InstanceTag(0x201),
        }),
    );
    // Bob addressed Alice's instance 0x200; another instance (0x300) answers.
    let carol = Account::new(5, 0x300, &[ALICE_JID, BOB_JID]);
    let (wr, id) = start(&mut rng(116), &bob.local(), InstanceTag(0x200));
    let mut id_any = id.clone();
    id_any.receiver_tag = InstanceTag::UNKNOWN;
    let (_wc, ar_c) = receive_identity(&mut rng(117), &carol.local(), &id_any, NOW).unwrap();
    let (wr, e) = err(wr.receive_auth_r(&mut rng(118), &bob.local(), &ar_c, NOW));
    assert_eq!(
        e,
        DakeError::WrongSenderTag {
            expected: InstanceTag(0x200),
            found: InstanceTag(0x300)
        }
    );
    let (wi, ar) = receive_identity(&mut rng(119), &alice.local(), &id, NOW).unwrap();
    let (b, ai) = wr
        .receive_auth_r(&mut rng(120), &bob.local(), &ar, NOW)
        .unwrap();
    assert_agree(&b, &wi.receive_auth_i(&ai).unwrap());

    // Identity addressed to another instance, and one whose profile belongs to another tag.
    let (_w, mut id) = start(&mut rng(121), &bob.local(), InstanceTag(0x201));
    assert_eq!(
        receive_identity(&mut rng(122), &alice.local(), &id, NOW).unwrap_err(),
        DakeError::WrongReceiverTag {
            expected: InstanceTag(0x200),
            found: InstanceTag(0x201)
        }
    );
    id.receiver_tag = InstanceTag::UNKNOWN;
    id.sender_tag = InstanceTag(0x999);
    assert_eq!(
        receive_identity(&mut rng(123), &alice.local(), &id, NOW).unwrap_err(),
        DakeError::Profile(ProfileError::InstanceTagMismatch {
            profile: InstanceTag(0x100),
            sender: InstanceTag(0x999)
        })
    );

    // Auth-I with a wrong receiver or sender tag.
    let (wr, _id, wi, ar) = half_run(&bob, &alice, 124);
    let (b, ai) = wr
        .receive_auth_r(&mut rng(125), &bob.local(), &ar, NOW)
        .unwrap();
    let mut bad = ai.clone();
    bad.receiver_tag = InstanceTag(0x201);
    let (wi, e) = err(wi.receive_auth_i(&wire_i(&bad)));
    assert_eq!(
        e,
        DakeError::WrongReceiverTag {
            expected: InstanceTag(0x200),
            found: InstanceTag(0x201)
        }
    );
    let mut bad = ai.clone();
    bad.sender_tag = InstanceTag(0x101);
    let (wi, e) = err(wi.receive_auth_i(&wire_i(&bad)));
    assert_eq!(
        e,
        DakeError::WrongSenderTag {
            expected: InstanceTag(0x100),
            found: InstanceTag(0x101)
        }
    );
    assert_agree(&b, &wi.receive_auth_i(&ai).unwrap());
}

#[test]
fn phi_mismatch_fails_the_ring_signature() {
    // Bob thinks he talks to carol@jabber.net.
    let bob = Account::new(1, 0x100, &[BOB_JID, "carol@jabber.net"]);
    let alice = Account::new(2, 0x200, &[ALICE_JID, BOB_JID]);
    let (wr, id) = start(&mut rng(130), &bob.local(), InstanceTag::UNKNOWN);
    let (_wi, ar) = receive_identity(&mut rng(131), &alice.local(), &id, NOW).unwrap();
    let (_wr, e) = err(wr.receive_auth_r(&mut rng(132), &bob.local(), &ar, NOW));
    assert_eq!(e, DakeError::BadRingSignature);

    // Opaque phi' (e.g. a shared password) must match too.
    let pw_a = PhiPrime::from_opaque(b"hunter2");
    let pw_b = PhiPrime::from_opaque(b"hunter3");
    let bob_l = LocalParty::new(&bob.long_term, &bob.profile, &pw_b).unwrap();
    let alice_l = LocalParty::new(&alice.long_term, &alice.profile, &pw_a).unwrap();
    let (wr, id) = start(&mut rng(133), &bob_l, InstanceTag::UNKNOWN);
    let (_wi, ar) = receive_identity(&mut rng(134), &alice_l, &id, NOW).unwrap();
    let (wr, e) = err(wr.receive_auth_r(&mut rng(135), &bob_l, &ar, NOW));
    assert_eq!(e, DakeError::BadRingSignature);
    // With the same password it completes.
    let bob_ok = LocalParty::new(&bob.long_term, &bob.profile, &pw_a).unwrap();
    wr.receive_auth_r(&mut rng(136), &bob_ok, &ar, NOW).unwrap();
}

#[test]
fn identity_tampered_in_transit_is_caught_by_bob() {
    let (bob, alice) = pair();
    let (wr, id) = start(&mut rng(140), &bob.local(), InstanceTag::UNKNOWN);
    let mut bad = id.clone();
    bad.y = *KeyPair::generate(&mut rng(141)).public();
    // Alice cannot tell (nothing is signed yet) and answers …
    let (_wi, ar) = receive_identity(&mut rng(142), &alice.local(), &wire_id(&bad), NOW).unwrap();
    // … but her signature covers the Y she saw, not Bob's.
    let (_wr, e) = err(wr.receive_auth_r(&mut rng(143), &bob.local(), &ar, NOW));
    assert_eq!(e, DakeError::BadRingSignature);
}

#[test]
fn auth_i_with_a_wrong_signature_is_rejected() {
    let (bob, alice) = pair();
    let (wr, _id, wi, ar) = half_run(&bob, &alice, 150);
    let (b, ai) = wr
        .receive_auth_r(&mut rng(151), &bob.local(), &ar, NOW)
        .unwrap();
    // Auth-I from another run.
    let (b2, a2) = run(&bob, &alice, 152);
    assert_agree(&b2, &a2);
    let (wr3, _id3, _wi3, ar3) = half_run(&bob, &alice, 154);
    let (_b3, ai3) = wr3
        .receive_auth_r(&mut rng(155), &bob.local(), &ar3, NOW)
        .unwrap();
    let mut bad = ai.clone();
    bad.sigma = ai3.sigma.clone();
    let (wi, e) = err(wi.receive_auth_i(&wire_i(&bad)));
    assert_eq!(e, DakeError::BadRingSignature);
    // Alice's own Auth-R signature reflected as an Auth-I.
    let mut bad = ai.clone();
    bad.sigma = ar.sigma.clone();
    let (wi, e) = err(wi.receive_auth_i(&wire_i(&bad)));
    assert_eq!(e, DakeError::BadRingSignature);
    assert_agree(&b, &wi.receive_auth_i(&ai).unwrap());
}

// ---------------------------------------------------------------------------------------
// Replays.

#[test]
fn replayed_identity_in_waiting_auth_i() {
    let (bob, alice) = pair();
    // Bob already knows Alice's instance tag, so his Identity names it.
    let (wr, id) = start(&mut rng(160), &bob.local(), InstanceTag(0x200));
    let (wi, ar) = receive_identity(&mut rng(161), &alice.local(), &wire_id(&id), NOW).unwrap();
    // The same Identity again: the same Auth-R again, state unchanged.
    let (wi, ar_again) = wi
        .receive_identity(&mut rng(162), &alice.local(), &wire_id(&id), NOW)
        .unwrap();
    assert_eq!(ar_again.encode(), ar.encode());
    assert_eq!(wi.auth_r().encode(), ar.encode());
    let (b, ai) = wr
        .receive_auth_r(&mut rng(163), &bob.local(), &ar, NOW)
        .unwrap();
    assert_agree(&b, &wi.receive_auth_i(&ai).unwrap());

    // A replay with receiver tag 0 is ignored in WAITING_AUTH_I.
    let (wr, id) = start(&mut rng(164), &bob.local(), InstanceTag::UNKNOWN);
    let (wi, ar) = receive_identity(&mut rng(165), &alice.local(), &id, NOW).unwrap();
    let (wi, e) = err(wi.receive_identity(&mut rng(166), &alice.local(), &id, NOW));
    assert_eq!(
        e,
        DakeError::WrongReceiverTag {
            expected: InstanceTag(0x200),
            found: InstanceTag::UNKNOWN
        }
    );
    let (b, ai) = wr
        .receive_auth_r(&mut rng(167), &bob.local(), &ar, NOW)
        .unwrap();
    assert_agree(&b, &wi.receive_auth_i(&ai).unwrap());
}

#[test]
fn new_identity_in_waiting_auth_i_restarts_with_fresh_keys() {
    let (bob, alice) = pair();
    let (wr_old, id_old) = start(&mut rng(170), &bob.local(), InstanceTag::UNKNOWN);
    let (wi, ar_old) = receive_identity(&mut rng(171), &alice.local(), &id_old, NOW).unwrap();
    // Bob restarts (now knowing Alice's tag).
    let (wr_new, id_new) = start(&mut rng(172), &bob.local(), InstanceTag(0x200));
    let (wi, ar_new) = wi
        .receive_identity(&mut rng(173), &alice.local(), &wire_id(&id_new), NOW)
        .unwrap();
    assert_ne!(ar_new.x, ar_old.x);
    assert_ne!(ar_new.our_ecdh_first, ar_old.our_ecdh_first);
    // The old exchange can no longer complete on Alice's side.
    let (_b_old, ai_old) = wr_old
        .receive_auth_r(&mut rng(174), &bob.local(), &ar_old, NOW)
        .unwrap();
    let (wi, e) = err(wi.receive_auth_i(&ai_old));
    assert_eq!(e, DakeError::BadRingSignature);
    // The old Auth-R is useless for the new exchange; the new one completes.
    let (wr_new, e) = err(wr_new.receive_auth_r(&mut rng(175), &bob.local(), &ar_old, NOW));
    assert_eq!(e, DakeError::BadRingSignature);
    let (b, ai) = wr_new
        .receive_auth_r(&mut rng(176), &bob.local(), &ar_new, NOW)
        .unwrap();
    assert_agree(&b, &wi.receive_auth_i(&ai).unwrap());
}

#[test]
fn replayed_auth_r_and_auth_i_from_an_earlier_dake_are_rejected() {
    let (bob, alice) = pair();
    let (wr1, _id1, _wi1, ar1) = half_run(&bob, &alice, 180);
    let (_b1, ai1) = wr1
        .receive_auth_r(&mut rng(181), &bob.local(), &ar1, NOW)
        .unwrap();
    // A second DAKE between the same parties.
    let (wr2, _id2, wi2, ar2) = half_run(&bob, &alice, 182);
    let (wr2, e) = err(wr2.receive_auth_r(&mut rng(183), &bob.local(), &wire_r(&ar1), NOW));
    assert_eq!(e, DakeError::BadRingSignature);
    let (b2, ai2) = wr2
        .receive_auth_r(&mut rng(184), &bob.local(), &ar2, NOW)
        .unwrap();
    let (wi2, e) = err(wi2.receive_auth_i(&wire_i(&ai1)));
    assert_eq!(e, DakeError::BadRingSignature);
    assert_agree(&b2, &wi2.receive_auth_i(&ai2).unwrap());
}

// ---------------------------------------------------------------------------------------
// Misc.

#[test]
fn local_party_requires_the_profile_key() {
    let (bob, alice) = pair();
    assert_eq!(
        LocalParty::new(&alice.long_term, &bob.profile, &bob.phi_prime).unwrap_err(),
        DakeError::OwnProfileKeyMismatch
    );
}

#[test]
fn debug_output_reveals_no_secrets() {
    let (bob, alice) = pair();
    let (b, a) = run(&bob, &alice, 190);
    let k_hex: String = b.shared_secret().as_bytes()[..8]
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    let sk_hex: String = b.our_ecdh_first().secret().encode()[..8]
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    for s in [
        format!("{b:?}"),
        format!("{a:?}"),
        format!("{:?}", bob.local()),
    ] {
        assert!(!s.contains(&k_hex), "{s}");
        assert!(!s.contains(&sk_hex), "{s}");
        assert!(s.contains(".."), "{s}");
    }
}

#[test]
fn invalid_points_and_dh_values_are_rejected_before_the_dake() {
    use otr4::DecodeError;
    let (bob, _alice) = pair();
    let (_w, id) = start(&mut rng(200), &bob.local(), InstanceTag::UNKNOWN);
    let bytes = id.encode();
    let y_at = 3 + 8 + bob.profile.encode().len();
    // Y := the identity element (y = 1, x = 0).
    let mut bad = bytes.clone();
    bad[y_at..y_at + 57].copy_from_slice(&{
        let mut e = [0u8; 57];
        e[0] = 1;
        e
    });
    assert_eq!(
        IdentityMessage::decode(&bad).unwrap_err(),
        DecodeError::BadPoint("Y")
    );
    // B := all ones (> dh_p), keeping its length.
    let b_len = u32::from_be_bytes(bytes[y_at + 57..y_at + 61].try_into().unwrap()) as usize;
    let mut bad = bytes.clone();
    bad[y_at + 61..y_at + 61 + b_len].fill(0xff);
    assert_eq!(
        IdentityMessage::decode(&bad).unwrap_err(),
        DecodeError::BadDhValue("B")
    );
}

#[test]
fn completed_dake_initialises_working_double_ratchets() {
    use otr4::hazmat::wire::messages::DataMessage;
    let (bob, alice) = pair();
    let (b, a) = run(&bob, &alice, 210);
    let (b_tag, a_tag) = (b.our_tag(), a.our_tag());
    let mut rb = b
        .into_ratchet_init()
        .into_double_ratchet(&mut rng(211))
        .unwrap();
    let mut ra = a
        .into_ratchet_init()
        .into_double_ratchet(&mut rng(212))
        .unwrap();
    // Bob may send at once; Alice decrypts.
    let m = rb
        .encrypt(b_tag, a_tag, 0, b"hi alice", &mut rng(213))
        .unwrap();
    let m = DataMessage::decode(&m.message.encode()).unwrap();
    assert_eq!(ra.decrypt(&m).unwrap().plaintext.as_slice(), b"hi alice");
    // Alice answers (a new DH ratchet); Bob decrypts.
    let m = ra
        .encrypt(a_tag, b_tag, 0, b"hi bob", &mut rng(214))
        .unwrap();
    assert_eq!(
        rb.decrypt(&m.message).unwrap().plaintext.as_slice(),
        b"hi bob"
    );
}
