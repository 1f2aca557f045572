//! Server-side checks against a malicious publisher that completes the DAKE honestly (so it
//! knows `prekey_mac_k` and the proofs' context) and then sends crafted publications.

use super::auth::{SessionKeys, Transcript, phi, transcript};
use super::proofs::{EcdhProofKind, ProofError, ProofKind, generate_dh_proof, generate_ecdh_proof};
use super::server::{Dake3Outcome, PrekeyServer, ServerError, ServerSession};
use crate::crypto::dh::DhKeyPair;
use crate::crypto::ecdh::prekey_ecdh;
use crate::crypto::ed448::KeyPair;
use crate::crypto::kdf::PrekeyServer as PrekeyDomain;
use crate::crypto::keys::generate_forging_point;
use crate::crypto::rsig::RingSignature;
use crate::instance_tag::InstanceTag;
use crate::prekey::messages::{
    Dake1, Dake3, Dake3Inner, PrekeyPublication, PublishedPrekeyMessages,
};
use crate::profile::ProfileError;
use crate::profile::client::ClientProfile;
use crate::profile::prekey::PrekeyProfile;
use crate::wire::codec::Codec;
use crate::wire::messages::PrekeyMessage;
use alloc::boxed::Box;
use alloc::vec::Vec;
use rand::SeedableRng;
use rand::rngs::StdRng;

const NOW: i64 = 1_700_000_000;
const TAG: InstanceTag = InstanceTag(0x0100_0001);
const ME: &[u8] = b"mallory@example.org";

struct Mallory {
    rng: StdRng,
    server: PrekeyServer,
    long_term: KeyPair,
    profile: ClientProfile,
}

/// One prekey message with its secrets.
struct Pm {
    msg: PrekeyMessage,
    y: KeyPair,
    b: DhKeyPair,
}

impl Mallory {
    fn new(seed: u64) -> Mallory {
        let mut rng = StdRng::seed_from_u64(seed);
        let server = PrekeyServer::new(b"prekey.example.org".to_vec(), KeyPair::generate(&mut rng));
        let long_term = KeyPair::generate(&mut rng);
        let forging = generate_forging_point(&mut rng);
        let profile = ClientProfile::build_and_sign(TAG, &long_term, &forging, b"4", NOW + 1000);
        Mallory {
            rng,
            server,
            long_term,
            profile,
        }
    }

    fn pm(&mut self, id: u32, tag: InstanceTag) -> Pm {
        let y = KeyPair::generate(&mut self.rng);
        let b = DhKeyPair::generate(&mut self.rng);
        Pm {
            msg: PrekeyMessage {
                id,
                owner_tag: tag,
                y: *y.public(),
                b: b.public().clone(),
            },
            y,
            b,
        }
    }

    /// Runs DAKE-1/DAKE-2 honestly; returns the server session, the keys and the DAKE-3
    /// sigma.
    fn dake(&mut self) -> (ServerSession, SessionKeys, Dake3) {
        let i = KeyPair::generate(&mut self.rng);
        let d1 = Dake1 {
            sender_tag: TAG,
            client_profile: self.profile.clone(),
            i: *i.public(),
        };
        let (session, d2) = self
            .server
            .receive_dake1(&mut self.rng, ME, &d1, NOW)
            .unwrap();
        let phi = phi(ME, b"prekey.example.org");
        let t3 = transcript(
            Transcript::Dake3,
            &self.profile,
            &d2.composite_identity,
            i.public(),
            &d2.s,
            &phi,
        );
        let sigma = RingSignature::sign::<PrekeyDomain, _>(
            &mut self.rng,
            &self.long_term,
            [
                self.long_term.public(),
                d2.composite_identity.public_key.point(),
                &d2.s,
            ],
            &t3,
        )
        .unwrap();
        let keys = SessionKeys::derive(&prekey_ecdh(i.secret(), &d2.s).unwrap());
        let d3 = Dake3 {
            sender_tag: TAG,
            sigma,
            message: Vec::new(),
        };
        (session, keys, d3)
    }

    /// Sends a publication with a correct MAC; `build` makes it from the session keys.
    fn send(
        &mut self,
        build: impl FnOnce(&mut StdRng, &SessionKeys) -> PrekeyPublication,
    ) -> Result<Dake3Outcome, ServerError> {
        let (session, keys, mut d3) = self.dake();
        let mut p = build(&mut self.rng, &keys);
        p.mac = keys.mac_key.publication_mac(&p);
        d3.message = Dake3Inner::Publication(Box::new(p)).encode();
        self.server.receive_dake3(session, &d3, NOW)
    }
}

/// Honest proofs over `pms` (with the secrets given, possibly not matching).
fn published(rng: &mut StdRng, keys: &SessionKeys, pms: &[Pm]) -> PublishedPrekeyMessages {
    let ys: Vec<&KeyPair> = pms.iter().map(|p| &p.y).collect();
    let bs: Vec<&DhKeyPair> = pms.iter().map(|p| &p.b).collect();
    let m = &keys.proof_context;
    PublishedPrekeyMessages::new(
        pms.iter().map(|p| p.msg.clone()).collect(),
        generate_ecdh_proof(rng, EcdhProofKind::PrekeyMessages, &ys, m).unwrap(),
        generate_dh_proof(rng, &bs, m).unwrap(),
    )
    .unwrap()
}

fn rejected(r: Result<Dake3Outcome, ServerError>) -> ServerError {
    match r.unwrap() {
        Dake3Outcome::Rejected { reason, .. } => reason,
        other => panic!("not rejected: {other:?}"),
    }
}

#[test]
fn crafted_publication_baseline_is_accepted() {
    let mut m = Mallory::new(1);
    let pms = [m.pm(1, TAG), m.pm(2, TAG)];
    let lt = m.long_term.clone();
    let d = KeyPair::generate(&mut m.rng);
    let pp = PrekeyProfile::build_and_sign(TAG, NOW + 500, &d, &lt);
    let cp = m.profile.clone();
    let out = m
        .send(|rng, keys| PrekeyPublication {
            prekey_messages: Some(published(rng, keys, &pms)),
            client_profile: Some(cp),
            prekey_profile: Some((
                pp,
                generate_ecdh_proof(rng, EcdhProofKind::SharedPrekey, &[&d], &keys.proof_context)
                    .unwrap(),
            )),
            mac: [0; 64],
        })
        .unwrap();
    let Dake3Outcome::Publication(p) = out else {
        panic!()
    };
    assert_eq!(p.request().prekey_messages.len(), 2);
    assert_eq!(p.request().owner_tag, TAG);
    assert_eq!(p.request().publisher, ME);
}

#[test]
fn wrong_instance_tags_are_rejected() {
    let mut m = Mallory::new(2);
    let other = InstanceTag(0x0100_0002);
    let pms = [m.pm(1, TAG), m.pm(2, other)];
    assert_eq!(
        rejected(m.send(|rng, keys| PrekeyPublication {
            prekey_messages: Some(published(rng, keys, &pms)),
            client_profile: None,
            prekey_profile: None,
            mac: [0; 64],
        })),
        ServerError::PublicationTagMismatch(other)
    );
    let lt = m.long_term.clone();
    let d = KeyPair::generate(&mut m.rng);
    let pp = PrekeyProfile::build_and_sign(other, NOW + 500, &d, &lt);
    assert_eq!(
        rejected(m.send(|rng, keys| {
            PrekeyPublication {
                prekey_messages: None,
                client_profile: None,
                prekey_profile: Some((
                    pp,
                    generate_ecdh_proof(
                        rng,
                        EcdhProofKind::SharedPrekey,
                        &[&d],
                        &keys.proof_context,
                    )
                    .unwrap(),
                )),
                mac: [0; 64],
            }
        })),
        ServerError::PublicationTagMismatch(other)
    );
    let f = generate_forging_point(&mut m.rng);
    let cp = ClientProfile::build_and_sign(other, &lt, &f, b"4", NOW + 1000);
    assert_eq!(
        rejected(m.send(|_, _| PrekeyPublication {
            prekey_messages: None,
            client_profile: Some(cp),
            prekey_profile: None,
            mac: [0; 64],
        })),
        ServerError::PublicationTagMismatch(other)
    );
}

#[test]
fn bad_profiles_are_rejected() {
    let mut m = Mallory::new(3);
    let lt = m.long_term.clone();
    let f = generate_forging_point(&mut m.rng);
    // Expired client profile.
    let cp = ClientProfile::build_and_sign(TAG, &lt, &f, b"4", NOW);
    assert!(matches!(
        rejected(m.send(|_, _| PrekeyPublication {
            prekey_messages: None,
            client_profile: Some(cp),
            prekey_profile: None,
            mac: [0; 64],
        })),
        ServerError::ClientProfile(ProfileError::Expired { .. })
    ));
    // A valid profile of someone else's long-term key.
    let k = KeyPair::generate(&mut m.rng);
    let cp = ClientProfile::build_and_sign(TAG, &k, &f, b"4", NOW + 1000);
    assert_eq!(
        rejected(m.send(|_, _| PrekeyPublication {
            prekey_messages: None,
            client_profile: Some(cp),
            prekey_profile: None,
            mac: [0; 64],
        })),
        ServerError::LongTermKeyMismatch
    );
    // Prekey profile signed by another key, and an expired one.
    let d = KeyPair::generate(&mut m.rng);
    for (pp, expect) in [
        (
            PrekeyProfile::build_and_sign(TAG, NOW + 500, &d, &k),
            ProfileError::BadSignature,
        ),
        (
            PrekeyProfile::build_and_sign(TAG, NOW, &d, &lt),
            ProfileError::Expired {
                expiration: NOW,
                now: NOW,
            },
        ),
    ] {
        let d2 = d.clone();
        assert_eq!(
            rejected(m.send(|rng, keys| {
                PrekeyPublication {
                    prekey_messages: None,
                    client_profile: None,
                    prekey_profile: Some((
                        pp,
                        generate_ecdh_proof(
                            rng,
                            EcdhProofKind::SharedPrekey,
                            &[&d2],
                            &keys.proof_context,
                        )
                        .unwrap(),
                    )),
                    mac: [0; 64],
                }
            })),
            ServerError::PrekeyProfile(expect)
        );
    }
}

#[test]
fn duplicate_ids_are_rejected() {
    let mut m = Mallory::new(4);
    let pms = [m.pm(7, TAG), m.pm(9, TAG), m.pm(7, TAG)];
    assert_eq!(
        rejected(m.send(|rng, keys| PrekeyPublication {
            prekey_messages: Some(published(rng, keys, &pms)),
            client_profile: None,
            prekey_profile: None,
            mac: [0; 64],
        })),
        ServerError::DuplicatePrekeyId(7)
    );
}

#[test]
fn proofs_without_the_secrets_are_rejected() {
    let mut m = Mallory::new(5);
    // ECDH: one y is not the secret of its Y.
    let mut pms = [m.pm(1, TAG), m.pm(2, TAG)];
    pms[1].y = KeyPair::generate(&mut m.rng);
    assert_eq!(
        rejected(m.send(|rng, keys| PrekeyPublication {
            prekey_messages: Some(published(rng, keys, &pms)),
            client_profile: None,
            prekey_profile: None,
            mac: [0; 64],
        })),
        ServerError::Proof(ProofError::Invalid(ProofKind::PrekeyMessagesEcdh))
    );
    // DH: one b is not the secret of its B.
    let mut pms = [m.pm(1, TAG), m.pm(2, TAG)];
    pms[0].b = DhKeyPair::generate(&mut m.rng);
    assert_eq!(
        rejected(m.send(|rng, keys| PrekeyPublication {
            prekey_messages: Some(published(rng, keys, &pms)),
            client_profile: None,
            prekey_profile: None,
            mac: [0; 64],
        })),
        ServerError::Proof(ProofError::Invalid(ProofKind::PrekeyMessagesDh))
    );
    // Shared prekey: proof for another D.
    let lt = m.long_term.clone();
    let d = KeyPair::generate(&mut m.rng);
    let not_d = KeyPair::generate(&mut m.rng);
    let pp = PrekeyProfile::build_and_sign(TAG, NOW + 500, &d, &lt);
    assert_eq!(
        rejected(m.send(|rng, keys| {
            PrekeyPublication {
                prekey_messages: None,
                client_profile: None,
                prekey_profile: Some((
                    pp,
                    generate_ecdh_proof(
                        rng,
                        EcdhProofKind::SharedPrekey,
                        &[&not_d],
                        &keys.proof_context,
                    )
                    .unwrap(),
                )),
                mac: [0; 64],
            }
        })),
        ServerError::Proof(ProofError::Invalid(ProofKind::SharedPrekey))
    );
    // Proofs replayed from another DAKE (another context m), with a fresh valid MAC.
    let pms = [m.pm(1, TAG)];
    let (_, old_keys, _) = m.dake();
    let mut rng2 = StdRng::seed_from_u64(99);
    let old = published(&mut rng2, &old_keys, &pms);
    assert_eq!(
        rejected(m.send(|_, _| PrekeyPublication {
            prekey_messages: Some(old),
            client_profile: None,
            prekey_profile: None,
            mac: [0; 64],
        })),
        ServerError::Proof(ProofError::Invalid(ProofKind::PrekeyMessagesEcdh))
    );
}
