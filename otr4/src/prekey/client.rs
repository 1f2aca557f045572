//! The publisher/retriever side of the prekey-server protocol as a sans-IO state machine
//! (otrv4-prekey-server.md §"Key Exchange", §"State Machine", §"Publishing Prekey Values",
//! §"Retrieving Prekey Ensembles", §"Query the Prekey Server for its Storage Status").
//!
//! ```text
//! start/publish/request_storage_status ──► Dake1 ─► (server) ─► Dake2
//! receive_dake2 ──► Dake3 { Prekey Publication | Storage Information Request }
//! receive_reply(Success | Failure | Storage Status) ──► ServerReply
//! ensemble_query ──► EnsembleQuery;  receive_ensembles(Retrieval | NoPrekeyEnsembles)
//! ```

use crate::crypto::CryptoError;
use crate::crypto::dh::DhKeyPair;
use crate::crypto::ecdh::prekey_ecdh;
use crate::crypto::ed448::KeyPair;
use crate::crypto::fingerprint::Fingerprint;
use crate::crypto::kdf::PrekeyServer as PrekeyDomain;
use crate::crypto::rsig::RingSignature;
use crate::dake::ensemble::{ChosenEnsembles, choose_ensembles};
use crate::debug::redacted_debug;
use crate::instance_tag::InstanceTag;
use crate::prekey::PrekeyError;
use crate::prekey::auth::{MacKey, SessionKeys, Transcript, mac_eq, phi, transcript};
use crate::prekey::messages::{
    Dake1, Dake2, Dake3, Dake3Inner, EnsembleQuery, MAX_PUBLISHED_PREKEY_MESSAGES,
    PrekeyPublication, PrekeyServerMessage, PublishedPrekeyMessages, StorageInfoRequest,
};
use crate::prekey::proofs::{EcdhProofKind, generate_dh_proof, generate_ecdh_proof};
use crate::profile::client::ClientProfile;
use crate::profile::prekey::PrekeyProfile;
use crate::wire::messages::PrekeyMessage;
use alloc::boxed::Box;
use alloc::vec::Vec;

/// Most retrievals a [`PrekeyClient`] waits for at once; a new query beyond this forgets the
/// oldest outstanding one.
pub const MAX_OUTSTANDING_QUERIES: usize = 16;

/// What to publish in one Prekey Publication message (otrv4-prekey-server.md §"Prekey
/// Publication Message"): optionally a Client Profile, optionally a Prekey Profile with its
/// shared prekey secret, and up to 255 Prekey messages with their secrets (the secrets are
/// needed for the proofs). Built with [`PublishItems::new`] and the `with_*` methods or by
/// [`crate::prekey::PrekeyStore::publish_items`].
#[derive(Clone, Default)]
pub struct PublishItems {
    pub(crate) client_profile: Option<Box<ClientProfile>>,
    pub(crate) prekey_profile: Option<Box<(PrekeyProfile, KeyPair)>>,
    pub(crate) prekey_messages: Vec<(PrekeyMessage, KeyPair, DhKeyPair)>,
}

impl PublishItems {
    /// Nothing to publish yet.
    pub fn new() -> PublishItems {
        PublishItems::default()
    }

    /// Adds the Client Profile (K = 1).
    pub fn with_client_profile(mut self, cp: ClientProfile) -> PublishItems {
        self.client_profile = Some(Box::new(cp));
        self
    }

    /// Adds a Prekey Profile and the secret of its shared prekey `D` (J = 1).
    #[cfg(feature = "hazmat")]
    pub fn with_prekey_profile(mut self, pp: PrekeyProfile, d: KeyPair) -> PublishItems {
        self.prekey_profile = Some(Box::new((pp, d)));
        self
    }

    /// The ids of the Prekey messages to publish, in order.
    pub fn prekey_ids(&self) -> Vec<u32> {
        self.prekey_messages.iter().map(|(m, _, _)| m.id).collect()
    }

    /// Whether a Client Profile is included.
    pub fn has_client_profile(&self) -> bool {
        self.client_profile.is_some()
    }

    /// Whether a Prekey Profile is included.
    pub fn has_prekey_profile(&self) -> bool {
        self.prekey_profile.is_some()
    }
}

redacted_debug!(PublishItems {
    client_profile = |s| s.client_profile.is_some(),
    prekey_profile = |s| s.prekey_profile.is_some(),
    prekey_ids = |s| s.prekey_ids(),
});

/// What the DAKE-3 will carry.
#[derive(Clone, Debug)]
pub enum Request {
    /// A Prekey Publication message.
    Publish(PublishItems),
    /// A Storage Information Request message.
    StorageStatus,
}

/// A verified answer of the server (otrv4-prekey-server.md §"Key Exchange", last steps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerReply {
    /// Success: the server stored the publication.
    Published {
        /// The ids of the published Prekey messages.
        prekey_ids: Vec<u32>,
        /// Whether a Client Profile was published.
        client_profile: bool,
        /// Whether a Prekey Profile was published.
        prekey_profile: bool,
    },
    /// Failure: the server rejected the request and stored nothing. For a publication the
    /// caller may drop the secrets of `prekey_ids`.
    Failed {
        /// The ids of the Prekey messages that were not published (empty for a storage
        /// request).
        prekey_ids: Vec<u32>,
    },
    /// Storage Status: how many of our Prekey messages the server holds.
    StorageStatus {
        /// Stored Prekey messages for our long-term key, identity and instance tag.
        stored: u32,
    },
}

/// The result of a retrieval (otrv4-prekey-server.md §"Retrieving Prekey Ensembles").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retrieved {
    /// A Prekey Ensemble Retrieval message, validated and chosen per
    /// [`crate::dake::ensemble::choose_ensembles`].
    Ensembles {
        /// The identity the ensembles belong to.
        identity: Vec<u8>,
        /// The chosen ensembles and the discarded ones.
        ensembles: ChosenEnsembles,
    },
    /// A No Prekey Ensembles in Storage message: the non-interactive DAKE must wait.
    NoEnsembles {
        /// The identity asked about.
        identity: Vec<u8>,
        /// The human-readable explanation, to display.
        message: Vec<u8>,
    },
}

/// What [`PrekeyClient::receive`] produced.
#[derive(Clone, Debug)]
#[cfg(feature = "hazmat")]
pub enum ClientEvent {
    /// Send this DAKE-3 to the server.
    Send(Box<Dake3>),
    /// The server answered a DAKE-3.
    Reply(ServerReply),
    /// The server answered an ensemble query.
    Retrieved(Retrieved),
}

/// The `prekey_mac_k` kept until the server's reply, and what was asked.
struct Awaiting {
    mac_key: MacKey,
    asked: Asked,
}

#[derive(Clone)]
enum Asked {
    Publication {
        prekey_ids: Vec<u32>,
        client_profile: bool,
        prekey_profile: bool,
    },
    Storage,
}

/// The IN_DAKE state: the ephemeral `(i, I)` and what to ask for.
struct InDake {
    i: KeyPair,
    request: Request,
}

enum State {
    /// NOT_IN_DAKE.
    Idle,
    /// IN_DAKE: DAKE-1 sent with ephemeral `i`.
    InDake(Box<InDake>),
    /// DAKE-3 sent; the reply is pending.
    AwaitingReply(Awaiting),
}

/// The publisher/retriever side (otrv4-prekey-server.md §"State Machine"): one client
/// instance talking to one prekey server.
///
/// Configured with our network identity (e.g. bare JID), long-term key pair and Client
/// Profile, and the server's identity and expected fingerprint (obtained out of band, e.g.
/// from XMPP service discovery, and ideally verified by the user).
pub struct PrekeyClient {
    identity: Vec<u8>,
    long_term: KeyPair,
    client_profile: ClientProfile,
    server_identity: Vec<u8>,
    server_fingerprint: Fingerprint,
    state: State,
    queries: Vec<Vec<u8>>,
}

redacted_debug!(PrekeyClient {
    instance_tag = |c| c.instance_tag(),
    server_fingerprint,
    state = |c| match &c.state {
        State::Idle => "Idle",
        State::InDake(_) => "InDake",
        State::AwaitingReply(_) => "AwaitingReply",
    },
    ..
});

/// Checks that `cp` belongs to `long_term` and has a valid sender tag.
fn check_profile(cp: &ClientProfile, long_term: &KeyPair) -> Result<(), PrekeyError> {
    if cp.public_key().point() != long_term.public() {
        return Err(PrekeyError::BadRequest(
            "client profile is not for our long-term key",
        ));
    }
    if !cp.owner_tag().is_valid_sender() {
        return Err(PrekeyError::BadRequest("client profile instance tag"));
    }
    Ok(())
}

impl PrekeyClient {
    /// A client for `identity` (our bare JID, the first half of `phi`) with `long_term` and
    /// its `client_profile` (whose owner tag is our instance tag), talking to the server
    /// `server_identity` whose long-term key must have `server_fingerprint`
    /// ([`Fingerprint::prekey_server`]).
    pub fn new(
        identity: Vec<u8>,
        long_term: KeyPair,
        client_profile: ClientProfile,
        server_identity: Vec<u8>,
        server_fingerprint: Fingerprint,
    ) -> Result<PrekeyClient, PrekeyError> {
        check_profile(&client_profile, &long_term)?;
        Ok(PrekeyClient {
            identity,
            long_term,
            client_profile,
            server_identity,
            server_fingerprint,
            state: State::Idle,
            queries: Vec::new(),
        })
    }

    /// Whether this client talks to `server_identity` with `server_fingerprint`.
    pub(crate) fn serves(&self, server_identity: &[u8], server_fingerprint: &Fingerprint) -> bool {
        self.server_identity == server_identity && &self.server_fingerprint == server_fingerprint
    }

    /// Our instance tag (the Client Profile's owner tag).
    pub fn instance_tag(&self) -> InstanceTag {
        self.client_profile.owner_tag()
    }

    /// Our Client Profile.
    #[cfg(feature = "hazmat")]
    pub fn client_profile(&self) -> &ClientProfile {
        &self.client_profile
    }

    /// Replaces our Client Profile (after renewal); it must be for the same long-term key
    /// and instance tag. Takes effect for the next DAKE.
    pub fn set_client_profile(&mut self, cp: ClientProfile) -> Result<(), PrekeyError> {
        check_profile(&cp, &self.long_term)?;
        if cp.owner_tag() != self.instance_tag() {
            return Err(PrekeyError::BadRequest("client profile instance tag"));
        }
        self.client_profile = cp;
        Ok(())
    }

    /// Whether a DAKE-1 was sent and no DAKE-2 processed yet (IN_DAKE).
    #[cfg(feature = "hazmat")]
    pub fn is_in_dake(&self) -> bool {
        matches!(self.state, State::InDake(_))
    }

    /// Whether a DAKE-3 was sent and the server's reply is pending.
    #[cfg(feature = "hazmat")]
    pub fn is_awaiting_reply(&self) -> bool {
        matches!(self.state, State::AwaitingReply(_))
    }

    /// Abandons any DAKE in progress (NOT_IN_DAKE), erasing its secrets.
    #[cfg(feature = "hazmat")]
    pub fn reset(&mut self) {
        self.state = State::Idle;
    }

    /// Starts the DAKE with the server for `request` (§"Starting the DAKE", §"DAKE-1
    /// Message"): generates the ephemeral `(i, I)` and returns the DAKE-1 to send. Any DAKE
    /// in progress is abandoned. A publication is checked first: every Prekey message and
    /// the Prekey Profile must carry our instance tag, a Client Profile must be for our
    /// long-term key and tag, and at most 255 Prekey messages fit
    /// ([`PrekeyError::BadRequest`]).
    pub fn start<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        request: Request,
    ) -> Result<Dake1, PrekeyError> {
        if let Request::Publish(items) = &request {
            self.check_items(items)?;
        }
        let i = KeyPair::generate(rng);
        let dake1 = Dake1 {
            sender_tag: self.instance_tag(),
            client_profile: self.client_profile.clone(),
            i: *i.public(),
        };
        self.state = State::InDake(Box::new(InDake { i, request }));
        Ok(dake1)
    }

    /// [`PrekeyClient::start`] with a publication (§"Publishing Prekey Values").
    pub fn publish<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        items: PublishItems,
    ) -> Result<Dake1, PrekeyError> {
        self.start(rng, Request::Publish(items))
    }

    /// [`PrekeyClient::start`] with a storage information request (§"Query the Prekey
    /// Server for its Storage Status").
    pub fn request_storage_status<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<Dake1, PrekeyError> {
        self.start(rng, Request::StorageStatus)
    }

    fn check_items(&self, items: &PublishItems) -> Result<(), PrekeyError> {
        let tag = self.instance_tag();
        if items.prekey_messages.len() > MAX_PUBLISHED_PREKEY_MESSAGES {
            return Err(PrekeyError::BadRequest("more than 255 prekey messages"));
        }
        if items
            .prekey_messages
            .iter()
            .any(|(m, _, _)| m.owner_tag != tag)
        {
            return Err(PrekeyError::BadRequest("prekey message instance tag"));
        }
        if let Some(b) = &items.prekey_profile {
            let (pp, d) = b.as_ref();
            if pp.owner_tag != tag {
                return Err(PrekeyError::BadRequest("prekey profile instance tag"));
            }
            if pp.shared_prekey.point() != d.public() {
                return Err(PrekeyError::BadRequest(
                    "shared prekey secret does not match",
                ));
            }
        }
        if let Some(cp) = items.client_profile.as_deref() {
            check_profile(cp, &self.long_term)?;
            if cp.owner_tag() != tag {
                return Err(PrekeyError::BadRequest("client profile instance tag"));
            }
        }
        Ok(())
    }

    /// Handles DAKE-2 (§"Key Exchange", Alice's second part; §"DAKE-2 Message"
    /// verification) and returns the DAKE-3 to send:
    /// 1. only in IN_DAKE, else [`PrekeyError::UnexpectedMessage`] (ignored);
    /// 2. the receiver tag is ours — [`PrekeyError::InstanceTagMismatch`];
    /// 3. `S` is valid (decoding); the composite identity's key has the configured
    ///    fingerprint — [`PrekeyError::ServerFingerprintMismatch`] — and its identity is the
    ///    configured one — [`PrekeyError::ServerIdentityMismatch`];
    /// 4. `RVrf({H_a, H_s, I}, sigma, t)` over DAKE-2's `t` — `Crypto(BadRingSignature)`;
    /// 5. signs DAKE-3's `t` with `{H_a, H_s, S}`, derives `SK` from `ECDH(i, S)` and erases
    ///    `i`, derives `prekey_mac_k` and the proofs' context, and attaches the Prekey
    ///    Publication (proofs and Prekey MAC) or Storage Information Request.
    ///
    /// On any error the state is unchanged, so a forged DAKE-2 does not end the DAKE.
    pub fn receive_dake2<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        msg: &Dake2,
    ) -> Result<Dake3, PrekeyError> {
        let State::InDake(dake) = &self.state else {
            return Err(PrekeyError::UnexpectedMessage);
        };
        let InDake { i, request } = dake.as_ref();
        let ours = self.instance_tag();
        if msg.receiver_tag != ours {
            return Err(PrekeyError::InstanceTagMismatch {
                expected: ours,
                found: msg.receiver_tag,
            });
        }
        let comp = &msg.composite_identity;
        if Fingerprint::prekey_server(&comp.public_key) != self.server_fingerprint {
            return Err(PrekeyError::ServerFingerprintMismatch);
        }
        if comp.identity != self.server_identity {
            return Err(PrekeyError::ServerIdentityMismatch);
        }
        let phi = phi(&self.identity, &self.server_identity);
        let h_a = self.long_term.public();
        let h_s = comp.public_key.point();
        let t2 = transcript(
            Transcript::Dake2,
            &self.client_profile,
            comp,
            i.public(),
            &msg.s,
            &phi,
        );
        msg.sigma
            .verify::<PrekeyDomain>([h_a, h_s, i.public()], &t2)?;
        let t3 = transcript(
            Transcript::Dake3,
            &self.client_profile,
            comp,
            i.public(),
            &msg.s,
            &phi,
        );
        let sigma =
            RingSignature::sign::<PrekeyDomain, R>(rng, &self.long_term, [h_a, h_s, &msg.s], &t3)?;
        let keys = SessionKeys::derive(&prekey_ecdh(i.secret(), &msg.s)?);
        let (inner, asked) = match request {
            Request::Publish(items) => {
                let publication = build_publication(rng, items, &keys)?;
                (
                    Dake3Inner::Publication(Box::new(publication)),
                    Asked::Publication {
                        prekey_ids: items.prekey_ids(),
                        client_profile: items.has_client_profile(),
                        prekey_profile: items.has_prekey_profile(),
                    },
                )
            }
            Request::StorageStatus => (
                Dake3Inner::StorageInfoRequest(StorageInfoRequest {
                    mac: keys.mac_key.storage_info_mac(),
                }),
                Asked::Storage,
            ),
        };
        let dake3 = Dake3::new(ours, sigma, &inner);
        self.state = State::AwaitingReply(Awaiting {
            mac_key: keys.mac_key.clone(),
            asked,
        });
        Ok(dake3)
    }

    /// Handles the server's answer to DAKE-3 (§"Key Exchange", Alice's last part): a Storage
    /// Status (to a storage request) or Success (to a publication) or Failure (to either).
    /// The receiver tag must be ours and the MAC must verify; otherwise the message is
    /// ignored — an error is returned and the reply is still awaited (the spec's "ignores
    /// the message"). A verified reply erases `prekey_mac_k` and ends the exchange.
    pub fn receive_reply(&mut self, msg: &PrekeyServerMessage) -> Result<ServerReply, PrekeyError> {
        let State::AwaitingReply(aw) = &self.state else {
            return Err(PrekeyError::UnexpectedMessage);
        };
        let keys = &aw.mac_key;
        let ours = self.instance_tag();
        let check_tag = |t: InstanceTag| {
            if t == ours {
                Ok(())
            } else {
                Err(PrekeyError::InstanceTagMismatch {
                    expected: ours,
                    found: t,
                })
            }
        };
        let reply = match (msg, &aw.asked) {
            (PrekeyServerMessage::StorageStatus(m), Asked::Storage) => {
                check_tag(m.receiver_tag)?;
                if !mac_eq(
                    &keys.status_mac(m.receiver_tag, m.stored_prekey_messages),
                    &m.mac,
                ) {
                    return Err(CryptoError::BadMac.into());
                }
                ServerReply::StorageStatus {
                    stored: m.stored_prekey_messages,
                }
            }
            (
                PrekeyServerMessage::Success(m),
                Asked::Publication {
                    prekey_ids,
                    client_profile,
                    prekey_profile,
                },
            ) => {
                check_tag(m.receiver_tag)?;
                if !mac_eq(&keys.success_mac(m.receiver_tag), &m.mac) {
                    return Err(CryptoError::BadMac.into());
                }
                ServerReply::Published {
                    prekey_ids: prekey_ids.clone(),
                    client_profile: *client_profile,
                    prekey_profile: *prekey_profile,
                }
            }
            (PrekeyServerMessage::Failure(m), asked) => {
                check_tag(m.receiver_tag)?;
                if !mac_eq(&keys.failure_mac(m.receiver_tag), &m.mac) {
                    return Err(CryptoError::BadMac.into());
                }
                ServerReply::Failed {
                    prekey_ids: match asked {
                        Asked::Publication { prekey_ids, .. } => prekey_ids.clone(),
                        Asked::Storage => Vec::new(),
                    },
                }
            }
            _ => return Err(PrekeyError::UnexpectedMessage),
        };
        self.state = State::Idle;
        Ok(reply)
    }

    /// Builds a Prekey Ensemble Query Retrieval message for `identity` and the version
    /// string `versions` (e.g. `b"4"`), and remembers the query so the answer is accepted
    /// (§"Retrieving Prekey Ensembles", step 1).
    pub fn ensemble_query(&mut self, identity: &[u8], versions: &[u8]) -> EnsembleQuery {
        if !self.queries.iter().any(|q| q.as_slice() == identity) {
            if self.queries.len() >= MAX_OUTSTANDING_QUERIES && !self.queries.is_empty() {
                self.queries.remove(0);
            }
            self.queries.push(identity.to_vec());
        }
        EnsembleQuery {
            sender_tag: self.instance_tag(),
            identity: identity.to_vec(),
            versions: versions.to_vec(),
        }
    }

    /// Handles the answer to an ensemble query (§"Retrieving Prekey Ensembles"): the
    /// receiver tag must be ours ([`PrekeyError::InstanceTagMismatch`]) and the identity
    /// one we asked about ([`PrekeyError::UnsolicitedRetrieval`]); then every ensemble is
    /// validated at `now` and one per instance tag is chosen
    /// ([`crate::dake::ensemble::choose_ensembles`]). Other messages →
    /// [`PrekeyError::UnexpectedMessage`].
    pub fn receive_ensembles(
        &mut self,
        msg: &PrekeyServerMessage,
        now: i64,
    ) -> Result<Retrieved, PrekeyError> {
        let (tag, identity) = match msg {
            PrekeyServerMessage::EnsembleRetrieval(m) => (m.receiver_tag, &m.identity),
            PrekeyServerMessage::NoPrekeyEnsembles(m) => (m.receiver_tag, &m.identity),
            _ => return Err(PrekeyError::UnexpectedMessage),
        };
        let ours = self.instance_tag();
        if tag != ours {
            return Err(PrekeyError::InstanceTagMismatch {
                expected: ours,
                found: tag,
            });
        }
        let pos = self
            .queries
            .iter()
            .position(|q| q == identity)
            .ok_or(PrekeyError::UnsolicitedRetrieval)?;
        self.queries.remove(pos);
        Ok(match msg {
            PrekeyServerMessage::EnsembleRetrieval(m) => Retrieved::Ensembles {
                identity: m.identity.clone(),
                ensembles: choose_ensembles(m.ensembles(), now),
            },
            PrekeyServerMessage::NoPrekeyEnsembles(m) => Retrieved::NoEnsembles {
                identity: m.identity.clone(),
                message: m.message.clone(),
            },
            _ => return Err(PrekeyError::UnexpectedMessage),
        })
    }

    /// Dispatches any message from the server to the matching handler above.
    #[cfg(feature = "hazmat")]
    pub fn receive<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        msg: &PrekeyServerMessage,
        now: i64,
    ) -> Result<ClientEvent, PrekeyError> {
        match msg {
            PrekeyServerMessage::Dake2(m) => self
                .receive_dake2(rng, m)
                .map(|d| ClientEvent::Send(Box::new(d))),
            PrekeyServerMessage::Success(_)
            | PrekeyServerMessage::Failure(_)
            | PrekeyServerMessage::StorageStatus(_) => {
                self.receive_reply(msg).map(ClientEvent::Reply)
            }
            PrekeyServerMessage::EnsembleRetrieval(_)
            | PrekeyServerMessage::NoPrekeyEnsembles(_) => {
                self.receive_ensembles(msg, now).map(ClientEvent::Retrieved)
            }
            _ => Err(PrekeyError::UnexpectedMessage),
        }
    }
}

/// Builds the Prekey Publication (§"Prekey Publication Message", generation): the proofs
/// for the values present, then the Prekey MAC over everything.
fn build_publication<R: rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
    items: &PublishItems,
    keys: &SessionKeys,
) -> Result<PrekeyPublication, PrekeyError> {
    let m = &keys.proof_context;
    let prekey_messages = if items.prekey_messages.is_empty() {
        None
    } else {
        let ys: Vec<&KeyPair> = items.prekey_messages.iter().map(|(_, y, _)| y).collect();
        let bs: Vec<&DhKeyPair> = items.prekey_messages.iter().map(|(_, _, b)| b).collect();
        let ecdh_proof = generate_ecdh_proof(rng, EcdhProofKind::PrekeyMessages, &ys, m)?;
        let dh_proof = generate_dh_proof(rng, &bs, m)?;
        let msgs = items
            .prekey_messages
            .iter()
            .map(|(pm, _, _)| pm.clone())
            .collect();
        Some(PublishedPrekeyMessages::new(msgs, ecdh_proof, dh_proof)?)
    };
    let prekey_profile = match items.prekey_profile.as_deref() {
        Some((pp, d)) => Some((
            pp.clone(),
            generate_ecdh_proof(rng, EcdhProofKind::SharedPrekey, &[d], m)?,
        )),
        None => None,
    };
    let mut publication = PrekeyPublication {
        prekey_messages,
        client_profile: items.client_profile.as_deref().cloned(),
        prekey_profile,
        mac: [0u8; 64],
    };
    publication.mac = keys.mac_key.publication_mac(&publication);
    Ok(publication)
}
