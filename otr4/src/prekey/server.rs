//! The prekey server's protocol core, storage-agnostic and sans-IO (otrv4-prekey-server.md
//! §"Key Exchange", §"State Machine", §"Publishing Prekey Values", §"Retrieving Prekey Ensembles").
//!
//! The caller keeps one [`ServerSession`] per in-flight DAKE (keyed by the publisher's
//! network identity), persists each [`StoreRequest`] and only then turns it into the
//! Success message, answers storage counts, and takes ensembles out of its storage for
//! queries. [`crate::prekey::memory::MemoryStorage`] is a reference storage.

use crate::crypto::CryptoError;
use crate::crypto::ecdh::prekey_ecdh;
use crate::crypto::ed448::{KeyPair, Point};
use crate::crypto::fingerprint::Fingerprint;
use crate::crypto::kdf::PrekeyServer as PrekeyDomain;
use crate::crypto::keys::Ed448PublicKey;
use crate::crypto::rsig::RingSignature;
use crate::debug::redacted_debug;
use crate::instance_tag::InstanceTag;
use crate::prekey::auth::{MacKey, SessionKeys, Transcript, mac_eq, phi, transcript};
use crate::prekey::messages::{
    CompositeIdentity, Dake1, Dake2, Dake3, Dake3Inner, EnsembleQuery, EnsembleRetrieval, Failure,
    NO_PREKEY_ENSEMBLES_TEXT, NoPrekeyEnsembles, PrekeyPublication, PrekeyServerMessage,
    StorageStatus, Success, TYPE_PUBLICATION, TYPE_STORAGE_INFO_REQUEST,
};
use crate::prekey::proofs::{
    EcdhProofKind, ProofContext, ProofError, verify_dh_proof, verify_ecdh_proof,
};
use crate::profile::ProfileError;
use crate::profile::client::ClientProfile;
use crate::profile::prekey::PrekeyProfile;
use crate::wire::codec::Codec;
use crate::wire::codec::DecodeError;
use crate::wire::codec::Reader;
use crate::wire::messages::{PrekeyEnsemble, PrekeyMessage, peek_header};
use alloc::boxed::Box;
use alloc::vec::Vec;

use super::DEFAULT_SESSION_TTL;

/// Why the server rejected a message. Variants marked "Failure" are answered with a
/// Failure message (see [`Dake3Outcome::Rejected`]); the others get no answer at all
/// (the spec's "rejects the message and does not send anything further").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// DAKE-1: the Client Profile is invalid. No answer.
    #[error("invalid client profile in DAKE-1: {0}")]
    InvalidDakeProfile(ProfileError),
    /// DAKE-3 after the session's expiry. No answer.
    #[error("DAKE session expired")]
    SessionExpired,
    /// DAKE-3 from another instance tag than DAKE-1's. No answer.
    #[error("instance tag {found} does not match the DAKE's {expected}")]
    InstanceTagMismatch {
        /// The DAKE-1 sender tag.
        expected: InstanceTag,
        /// The DAKE-3 sender tag.
        found: InstanceTag,
    },
    /// A ring signature failed, the ECDH shared secret was zero, or signing failed. No answer.
    #[error("cryptographic check failed: {0}")]
    Crypto(#[from] CryptoError),
    /// DAKE-3's enclosed message is not version 4 of type 0x08 or 0x09. No answer (the
    /// spec's "Aborts").
    #[error("DAKE-3 carries an unknown message: {0}")]
    UnknownInnerMessage(DecodeError),
    /// Failure: the enclosed message is malformed (e.g. `N`, `K` or `J` do not match the
    /// content).
    #[error("malformed enclosed message: {0}")]
    Malformed(DecodeError),
    /// Failure: the Prekey MAC or Storage Information MAC does not verify.
    #[error("MAC does not verify")]
    BadMac,
    /// Failure: a published value's instance tag is not the DAKE sender's.
    #[error("published value with instance tag {0}, not the publisher's")]
    PublicationTagMismatch(InstanceTag),
    /// Failure: the published Client Profile is invalid.
    #[error("invalid published client profile: {0}")]
    ClientProfile(ProfileError),
    /// Failure: the published Client Profile is for another long-term key than the DAKE's.
    #[error("published client profile is not for the authenticated long-term key")]
    LongTermKeyMismatch,
    /// Failure: the published Prekey Profile is invalid or not signed by the DAKE's key.
    #[error("invalid published prekey profile: {0}")]
    PrekeyProfile(ProfileError),
    /// Failure: two published Prekey messages share an id.
    #[error("duplicate prekey message id {0}")]
    DuplicatePrekeyId(u32),
    /// Failure: a proof does not verify.
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
}

/// The prekey server's identity and long-term key (§"Prekey Server Composite Identity").
pub struct PrekeyServer {
    identity: Vec<u8>,
    key: KeyPair,
    session_ttl: i64,
}

redacted_debug!(PrekeyServer {
    identity,
    key,
    session_ttl
});

/// The server's state for one in-flight DAKE, created by DAKE-1 and consumed by DAKE-3
/// (§"State Machine": IN_DAKE). Holds only public values, the expected DAKE-3 transcript and
/// the keys derived from `SK`; the ephemeral secret `s` is erased when DAKE-2 is made.
pub struct ServerSession {
    publisher: Vec<u8>,
    tag: InstanceTag,
    publisher_key: Ed448PublicKey,
    s: Point,
    t3: Vec<u8>,
    keys: SessionKeys,
    expires_at: i64,
}

redacted_debug!(ServerSession {
    publisher,
    tag,
    expires_at,
    ..
});

impl ServerSession {
    /// The publisher's network identity (bare JID) this DAKE is with.
    pub fn publisher(&self) -> &[u8] {
        &self.publisher
    }

    /// The publisher's instance tag (DAKE-1 sender tag).
    pub fn instance_tag(&self) -> InstanceTag {
        self.tag
    }

    /// When the session stops accepting DAKE-3 (seconds since the Unix epoch).
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// Whether the session has expired at `now`.
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }
}

/// What to persist for a verified Prekey Publication (§"Publishing Prekey Values"): the
/// values by publisher identity and instance tag. All values are verified: the profiles
/// are valid at the time of the DAKE-3 and carry `owner_tag`, every Prekey message carries
/// `owner_tag` and has a unique id, and the proofs hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreRequest {
    /// The publisher's network identity.
    pub publisher: Vec<u8>,
    /// The publisher's instance tag.
    pub owner_tag: InstanceTag,
    /// The long-term key authenticated by the DAKE.
    pub long_term_key: Ed448PublicKey,
    /// A Client Profile to store (replacing the stored one for `owner_tag`).
    pub client_profile: Option<ClientProfile>,
    /// A Prekey Profile to store (replacing the stored one for `owner_tag`).
    pub prekey_profile: Option<PrekeyProfile>,
    /// Prekey messages to add (a storage should skip ids it already holds for the tag).
    pub prekey_messages: Vec<PrekeyMessage>,
}

/// `prekey_mac_k` and the receiver tag, for the one reply a DAKE-3 gets.
struct Reply {
    mac_key: MacKey,
    tag: InstanceTag,
}

impl Reply {
    fn success(&self) -> Success {
        Success {
            receiver_tag: self.tag,
            mac: self.mac_key.success_mac(self.tag),
        }
    }

    fn failure(&self) -> Failure {
        Failure {
            receiver_tag: self.tag,
            mac: self.mac_key.failure_mac(self.tag),
        }
    }
}

/// A verified publication waiting for the caller's storage.
pub struct PendingPublication {
    request: StoreRequest,
    reply: Reply,
}

redacted_debug!(PendingPublication { request, .. });

impl PendingPublication {
    /// What to store.
    pub fn request(&self) -> &StoreRequest {
        &self.request
    }

    /// The Success message, to send once the request is durably stored (the acknowledgment
    /// must not precede durability).
    pub fn stored(self) -> Success {
        self.reply.success()
    }

    /// The Failure message, to send when the storage refused the request (full, I/O
    /// error): "If not, aborts the DAKE and sends a Failure message".
    pub fn failed(self) -> Failure {
        self.reply.failure()
    }
}

/// A verified Storage Information Request waiting for the stored count.
pub struct PendingStatus {
    publisher: Vec<u8>,
    long_term_key: Ed448PublicKey,
    reply: Reply,
}

redacted_debug!(PendingStatus { publisher, tag = |s| s.reply.tag, .. });

impl PendingStatus {
    /// The publisher's network identity.
    pub fn publisher(&self) -> &[u8] {
        &self.publisher
    }

    /// The publisher's instance tag.
    pub fn instance_tag(&self) -> InstanceTag {
        self.reply.tag
    }

    /// The long-term key authenticated by the DAKE.
    pub fn long_term_key(&self) -> &Ed448PublicKey {
        &self.long_term_key
    }

    /// The Storage Status message for `stored` Prekey messages held for this publisher,
    /// instance tag (and long-term key) (§"Storage Status Message").
    pub fn respond(self, stored: u32) -> StorageStatus {
        StorageStatus {
            receiver_tag: self.reply.tag,
            stored_prekey_messages: stored,
            mac: self.reply.mac_key.status_mac(self.reply.tag, stored),
        }
    }

    /// The Failure message, if the count cannot be obtained.
    pub fn failed(self) -> Failure {
        self.reply.failure()
    }
}

/// What a verified DAKE-3 asks for.
#[derive(Debug)]
pub enum Dake3Outcome {
    /// A valid Prekey Publication: store it, then send [`PendingPublication::stored`].
    Publication(Box<PendingPublication>),
    /// A valid Storage Information Request: count, then send [`PendingStatus::respond`].
    StorageStatus(Box<PendingStatus>),
    /// The enclosed message was rejected: send `reply`; nothing is to be stored.
    Rejected {
        /// The Failure message (with its MAC) to send.
        reply: Failure,
        /// Why.
        reason: ServerError,
    },
}

/// What an ensemble query needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryOutcome {
    /// Look up ensembles for `identity` and answer with [`RetrievalRequest::respond`].
    Lookup(RetrievalRequest),
    /// Answer right away (no version we serve was asked for).
    Reply(NoPrekeyEnsembles),
}

/// A Prekey Ensemble Query Retrieval to answer from storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrievalRequest {
    /// The identity whose ensembles are asked for.
    pub identity: Vec<u8>,
    /// The retriever's instance tag (the answer's receiver tag).
    pub receiver_tag: InstanceTag,
}

impl RetrievalRequest {
    /// The answer: a Prekey Ensemble Retrieval message with `ensembles` (one per instance
    /// tag, each with one Prekey message the storage has removed), or No Prekey Ensembles
    /// in Storage if there are none (§"Retrieving Prekey Ensembles", steps 2–5).
    pub fn respond(self, ensembles: Vec<PrekeyEnsemble>) -> PrekeyServerMessage {
        let no = NoPrekeyEnsembles {
            receiver_tag: self.receiver_tag,
            identity: self.identity.clone(),
            message: NO_PREKEY_ENSEMBLES_TEXT.to_vec(),
        };
        match EnsembleRetrieval::new(self.receiver_tag, self.identity, ensembles) {
            Ok(m) => PrekeyServerMessage::EnsembleRetrieval(m),
            Err(_) => PrekeyServerMessage::NoPrekeyEnsembles(no),
        }
    }
}

impl PrekeyServer {
    /// A server with network identity `identity` (e.g. its bare JID) and long-term key.
    pub fn new(identity: Vec<u8>, key: KeyPair) -> PrekeyServer {
        PrekeyServer {
            identity,
            key,
            session_ttl: DEFAULT_SESSION_TTL,
        }
    }

    /// Sets how long a [`ServerSession`] accepts DAKE-3, in seconds.
    pub fn with_session_ttl(mut self, secs: i64) -> PrekeyServer {
        self.session_ttl = secs;
        self
    }

    /// The Prekey Server Composite Identity `DATA(identity) || ED448-PUBKEY`.
    pub fn composite_identity(&self) -> CompositeIdentity {
        CompositeIdentity {
            identity: self.identity.clone(),
            public_key: Ed448PublicKey(*self.key.public()),
        }
    }

    /// The fingerprint publishers should expect ([`Fingerprint::prekey_server`]).
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::prekey_server(&Ed448PublicKey(*self.key.public()))
    }

    /// Handles DAKE-1 from `publisher` (its network identity, as authenticated by the
    /// transport) (§"Key Exchange", Prekey Server's first part; §"DAKE-1 Message"):
    /// validates the Client Profile against the sender tag at `now` (`I` was validated when
    /// decoded), generates `(s, S)`, signs DAKE-2's `t` with `{H_a, H_s, I}`, derives `SK`
    /// from `ECDH(s, I)` and erases `s`. Returns the session to keep and the DAKE-2 to send.
    pub fn receive_dake1<R: rand_core::CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        publisher: &[u8],
        msg: &Dake1,
        now: i64,
    ) -> Result<(ServerSession, Dake2), ServerError> {
        let cp = msg
            .client_profile
            .validate(msg.sender_tag, now)
            .map_err(ServerError::InvalidDakeProfile)?;
        let s = KeyPair::generate(rng);
        let comp = self.composite_identity();
        let phi = phi(publisher, &self.identity);
        let h_a = cp.public_key().point();
        let t2 = transcript(Transcript::Dake2, &cp, &comp, &msg.i, s.public(), &phi);
        let sigma = RingSignature::sign::<PrekeyDomain, R>(
            rng,
            &self.key,
            [h_a, self.key.public(), &msg.i],
            &t2,
        )?;
        let keys = SessionKeys::derive(&prekey_ecdh(s.secret(), &msg.i)?);
        let t3 = transcript(Transcript::Dake3, &cp, &comp, &msg.i, s.public(), &phi);
        let session = ServerSession {
            publisher: publisher.to_vec(),
            tag: msg.sender_tag,
            publisher_key: *cp.public_key(),
            s: *s.public(),
            t3,
            keys,
            expires_at: now.saturating_add(self.session_ttl),
        };
        let dake2 = Dake2 {
            receiver_tag: msg.sender_tag,
            composite_identity: comp,
            s: *s.public(),
            sigma,
        };
        Ok((session, dake2))
    }

    /// Handles DAKE-3 for `session` (§"Key Exchange", Prekey Server's second part;
    /// §"DAKE-3 Message"). The session is consumed (IN_DAKE → NOT_IN_DAKE) whatever the
    /// result. In order:
    /// 1. not expired at `now` — [`ServerError::SessionExpired`];
    /// 2. sender tag equals DAKE-1's — [`ServerError::InstanceTagMismatch`];
    /// 3. `RVrf({H_a, H_s, S}, sigma, t)` — `Crypto(BadRingSignature)`;
    /// 4. the enclosed message has version 0x0004 and type 0x08 or 0x09 —
    ///    [`ServerError::UnknownInnerMessage`];
    ///
    /// (errors so far get no answer), then the enclosed message is checked
    /// ([`Dake3Outcome::Rejected`] with a Failure message for every failed check):
    /// - Prekey Publication: decodes (N, K, J consistent) — `Malformed`; Prekey MAC —
    ///   `BadMac`; every instance tag is the sender's — `PublicationTagMismatch`; the Client
    ///   Profile is valid and for the DAKE's key — `ClientProfile`, `LongTermKeyMismatch`;
    ///   the Prekey Profile is valid and signed by the DAKE's key — `PrekeyProfile`; Prekey
    ///   message ids are unique — `DuplicatePrekeyId`; the three proofs — `Proof`;
    /// - Storage Information Request: decodes — `Malformed`; its MAC — `BadMac`.
    pub fn receive_dake3(
        &self,
        session: ServerSession,
        msg: &Dake3,
        now: i64,
    ) -> Result<Dake3Outcome, ServerError> {
        if session.is_expired(now) {
            return Err(ServerError::SessionExpired);
        }
        if msg.sender_tag != session.tag {
            return Err(ServerError::InstanceTagMismatch {
                expected: session.tag,
                found: msg.sender_tag,
            });
        }
        msg.sigma.verify::<PrekeyDomain>(
            [session.publisher_key.point(), self.key.public(), &session.s],
            &session.t3,
        )?;
        check_inner_header(&msg.message).map_err(ServerError::UnknownInnerMessage)?;
        let reply = Reply {
            mac_key: session.keys.mac_key.clone(),
            tag: session.tag,
        };
        Ok(match check_inner(&session, &msg.message, now) {
            Ok(Inner::Publication(p)) => Dake3Outcome::Publication(Box::new(PendingPublication {
                request: StoreRequest {
                    publisher: session.publisher,
                    owner_tag: session.tag,
                    long_term_key: session.publisher_key,
                    client_profile: p.client_profile,
                    prekey_profile: p.prekey_profile.map(|(pp, _)| pp),
                    prekey_messages: p
                        .prekey_messages
                        .map(|m| m.messages().to_vec())
                        .unwrap_or_default(),
                },
                reply,
            })),
            Ok(Inner::Storage) => Dake3Outcome::StorageStatus(Box::new(PendingStatus {
                publisher: session.publisher,
                long_term_key: session.publisher_key,
                reply,
            })),
            Err(reason) => Dake3Outcome::Rejected {
                reply: reply.failure(),
                reason,
            },
        })
    }

    /// Handles a Prekey Ensemble Query Retrieval message (§"Retrieving Prekey Ensembles",
    /// step 2): if its version string contains "4" (the only version served; unknown ones
    /// are ignored) the caller looks up ensembles, else the answer is No Prekey Ensembles.
    /// Queries are not authenticated.
    pub fn receive_query(&self, q: &EnsembleQuery) -> QueryOutcome {
        let req = RetrievalRequest {
            identity: q.identity.clone(),
            receiver_tag: q.sender_tag,
        };
        if q.versions.contains(&b'4') {
            QueryOutcome::Lookup(req)
        } else {
            QueryOutcome::Reply(NoPrekeyEnsembles {
                receiver_tag: req.receiver_tag,
                identity: req.identity,
                message: NO_PREKEY_ENSEMBLES_TEXT.to_vec(),
            })
        }
    }
}

/// Checks that DAKE-3's enclosed message has version 0x0004 and type 0x08 or 0x09
/// (§"Key Exchange": "Verifies that the message type is either 0x08 or 0x09", "Verifies
/// that the protocol version … Aborts if it is not").
fn check_inner_header(message: &[u8]) -> Result<(), DecodeError> {
    match peek_header(&Reader::new(message))? {
        TYPE_PUBLICATION | TYPE_STORAGE_INFO_REQUEST => Ok(()),
        t => Err(DecodeError::BadMessageType(t)),
    }
}

/// A verified enclosed message.
enum Inner {
    Publication(Box<PrekeyPublication>),
    Storage,
}

/// Decodes and checks DAKE-3's enclosed message (its header already checked).
fn check_inner(session: &ServerSession, message: &[u8], now: i64) -> Result<Inner, ServerError> {
    match Dake3Inner::decode(message).map_err(ServerError::Malformed)? {
        Dake3Inner::Publication(p) => {
            check_publication(session, &p, now)?;
            Ok(Inner::Publication(p))
        }
        Dake3Inner::StorageInfoRequest(r) => {
            if mac_eq(&session.keys.mac_key.storage_info_mac(), &r.mac) {
                Ok(Inner::Storage)
            } else {
                Err(ServerError::BadMac)
            }
        }
    }
}

/// The checks of a Prekey Publication after decoding (see [`PrekeyServer::receive_dake3`]).
fn check_publication(
    session: &ServerSession,
    p: &PrekeyPublication,
    now: i64,
) -> Result<(), ServerError> {
    if !mac_eq(&session.keys.mac_key.publication_mac(p), &p.mac) {
        return Err(ServerError::BadMac);
    }
    let tag = session.tag;
    let tags = p
        .client_profile
        .iter()
        .map(ClientProfile::owner_tag)
        .chain(p.prekey_profile.iter().map(|(pp, _)| pp.owner_tag))
        .chain(
            p.prekey_messages
                .iter()
                .flat_map(|m| m.messages().iter().map(|pm| pm.owner_tag)),
        );
    for t in tags {
        if t != tag {
            return Err(ServerError::PublicationTagMismatch(t));
        }
    }
    if let Some(cp) = &p.client_profile {
        cp.validate(tag, now).map_err(ServerError::ClientProfile)?;
        if *cp.public_key() != session.publisher_key {
            return Err(ServerError::LongTermKeyMismatch);
        }
    }
    if let Some((pp, _)) = &p.prekey_profile {
        pp.validate(tag, now, &session.publisher_key)
            .map_err(ServerError::PrekeyProfile)?;
    }
    let m: &ProofContext = &session.keys.proof_context;
    if let Some(pms) = &p.prekey_messages {
        let msgs = pms.messages();
        let mut ids: Vec<u32> = msgs.iter().map(|pm| pm.id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w.first() == w.get(1)) {
            return Err(ServerError::DuplicatePrekeyId(
                w.first().copied().unwrap_or_default(),
            ));
        }
        let ys: Vec<&Point> = msgs.iter().map(|pm| &pm.y).collect();
        verify_ecdh_proof(&pms.ecdh_proof, EcdhProofKind::PrekeyMessages, &ys, m)?;
        let bs: Vec<_> = msgs.iter().map(|pm| &pm.b).collect();
        verify_dh_proof(&pms.dh_proof, &bs, m)?;
    }
    if let Some((pp, proof)) = &p.prekey_profile {
        verify_ecdh_proof(
            proof,
            EcdhProofKind::SharedPrekey,
            &[pp.shared_prekey.point()],
            m,
        )?;
    }
    Ok(())
}
