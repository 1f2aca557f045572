//! Offline conversations (otrv4.md §"Offline Conversation Initialization"): publishing our
//! Prekey Ensembles through a prekey server, and the non-interactive DAKE on both sides.
//!
//! **Publishing** (otrv4-prekey-server.md §"Publishing Prekey Values"): the [`Account`]
//! keeps a [`PrekeyStore`] with the secrets of every Prekey message it made and its shared
//! prekeys with their Prekey Profiles, persisted with the account. [`Client::set_prekey_server`]
//! names the server; [`Client::prekey_publication`] (or [`Client::prekey_maintenance`], which
//! follows a [`RefillPolicy`]) returns the DAKE-1 to send, [`Client::receive_prekey_server`]
//! takes each answer (DAKE-2 → our DAKE-3 with the Prekey Publication; Success / Failure /
//! Storage Status) and says what to do next ([`PrekeyOutcome`]).
//!
//! **Sending offline** (otrv4.md §"Sending a Data Message to an offline participant"):
//! [`Client::ensemble_query`] asks the server for a peer's Prekey Ensembles;
//! [`Client::send_offline`] takes the answer (or ensembles already validated) and, per
//! chosen instance, sends a Non-Interactive-Auth message and then the data messages on the
//! initial sending chain; the conversation is `ENCRYPTED_MESSAGES`.
//!
//! **Receiving** (otrv4.md §"Receiving a Non-Interactive-Auth Message"):
//! [`Client::receive`] verifies a Non-Interactive-Auth message against the prekey store
//! (the prekey secrets are removed only once the ring signature and the Auth MAC verified),
//! initialises the double ratchet and reads the data messages that follow (or came
//! before it; see docs/spec-notes.md).

use crate::wire::codec::Codec;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::InstanceTag;
use crate::crypto::fingerprint::Fingerprint;
use crate::crypto::kdf::shake256;
use crate::dake::PhiPrime;
use crate::dake::ensemble::{ChosenEnsembles, ValidatedEnsemble, choose_ensembles};
use crate::dake::non_interactive::{
    NonInteractiveComplete, receive_non_interactive_auth, send_non_interactive_auth,
};
use crate::prekey::client::{Retrieved, ServerReply};
use crate::prekey::messages::{EnsembleRetrieval, PrekeyServerMessage};
use crate::prekey::server::DEFAULT_SESSION_TTL;
use crate::prekey::{PrekeyClient, PrekeyError, PrekeyStore, RefillPolicy};
use crate::profile::client::ClientProfile;
use crate::wire::messages::NonInteractiveAuth;
use crate::wire::messages::PrekeyEnsemble;

use super::client::{Peer, with_peer};
use super::machine::{Ctx, Phase, Queued};
use super::session::{IDENTITY_DIGEST_LEN, Session, non_interactive_digest};
use super::{Account, Client, Conversation, ConversationError, DisconnectReason, Event, Warning};

/// Lifetime of a Prekey Profile we sign: one week, the value otrv4.md §"Prekey Profile"
/// recommends.
pub const PREKEY_PROFILE_LIFETIME_SECS: i64 = 7 * 86_400;

/// How long a replaced Client Profile, and a shared prekey whose Prekey Profile expired,
/// are still used to verify delayed Non-Interactive-Auth messages: one day, the "extra
/// validity time" otrv4.md §"Prekey Profile" recommends. Afterwards they are deleted
/// (§"Publishing Prekey Ensembles": "they must be securely deleted").
pub const PROFILE_EXTRA_VALIDITY_SECS: i64 = 86_400;

/// Most previous Client Profiles kept (the oldest is dropped first).
pub const MAX_PREVIOUS_PROFILES: usize = 4;

/// Bytes of the digest by which we remember which profile the server holds.
pub(crate) const PUBLISHED_DIGEST_LEN: usize = 32;

/// The version string of our ensemble queries: version 4 only.
const QUERY_VERSIONS: &[u8] = b"4";

/// `SHAKE-256(profile encoding, 32)`.
pub(crate) fn profile_digest(encoding: &[u8]) -> [u8; PUBLISHED_DIGEST_LEN] {
    let mut d = [0u8; PUBLISHED_DIGEST_LEN];
    shake256(&[encoding], &mut d);
    d
}

/// The account's offline state (persisted with the account, see `conversation::persist`).
#[derive(Clone)]
pub(crate) struct OfflineState {
    /// Secrets of our Prekey messages and our shared prekeys with their Prekey Profiles.
    pub(crate) prekeys: PrekeyStore,
    /// Replaced Client Profiles still in their extra validity period, oldest first.
    pub(crate) previous_profiles: Vec<ClientProfile>,
    /// Digest of the Client Profile the prekey server last confirmed storing.
    pub(crate) published_client_profile: Option<[u8; PUBLISHED_DIGEST_LEN]>,
    /// Digest of the Prekey Profile the prekey server last confirmed storing.
    pub(crate) published_prekey_profile: Option<[u8; PUBLISHED_DIGEST_LEN]>,
    /// When we last asked the server for its storage status.
    pub(crate) last_status_query: Option<i64>,
}

impl fmt::Debug for OfflineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OfflineState")
            .field("prekeys", &self.prekeys)
            .field("previous_profiles", &self.previous_profiles.len())
            .field("last_status_query", &self.last_status_query)
            .finish_non_exhaustive()
    }
}

impl OfflineState {
    pub(crate) fn new(owner_tag: InstanceTag) -> OfflineState {
        OfflineState {
            prekeys: PrekeyStore::new(owner_tag),
            previous_profiles: Vec::new(),
            published_client_profile: None,
            published_prekey_profile: None,
            last_status_query: None,
        }
    }

    /// Keeps a replaced Client Profile for delayed Non-Interactive-Auth messages.
    pub(crate) fn keep_previous_profile(&mut self, old: ClientProfile, now: i64) {
        self.previous_profiles.push(old);
        self.expire(now);
        while self.previous_profiles.len() > MAX_PREVIOUS_PROFILES {
            self.previous_profiles.remove(0);
        }
    }

    /// Deletes previous Client Profiles and shared prekeys past their extra validity.
    pub(crate) fn expire(&mut self, now: i64) {
        let cutoff = now.saturating_sub(PROFILE_EXTRA_VALIDITY_SECS);
        self.previous_profiles.retain(|p| !p.is_expired(cutoff));
        self.prekeys
            .expire_shared_prekeys(now, PROFILE_EXTRA_VALIDITY_SECS);
    }
}

/// What a DAKE with the prekey server is for.
#[derive(Clone, Copy, Debug)]
struct Inflight {
    started_at: i64,
    /// Digests of the profiles a publication carries.
    client_profile: Option<[u8; PUBLISHED_DIGEST_LEN]>,
    prekey_profile: Option<[u8; PUBLISHED_DIGEST_LEN]>,
}

/// Our link to one prekey server: the publisher/retriever state machine, the refill
/// policy and the exchange under way. Not persisted.
pub(crate) struct PrekeyLink {
    client: PrekeyClient,
    refill: RefillPolicy,
    inflight: Option<Inflight>,
}

impl fmt::Debug for PrekeyLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrekeyLink")
            .field("client", &self.client)
            .field("refill", &self.refill)
            .field("inflight", &self.inflight.is_some())
            .finish()
    }
}

/// What [`Client::receive_prekey_server`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrekeyOutcome {
    /// Send this message to the prekey server (our DAKE-3).
    Send(PrekeyServerMessage),
    /// The server stored our publication (Success, MAC verified).
    Published {
        /// The ids of the published Prekey messages.
        prekey_ids: Vec<u32>,
        /// Whether our Client Profile was published.
        client_profile: bool,
        /// Whether our Prekey Profile was published.
        prekey_profile: bool,
    },
    /// The server refused our publication (Failure, MAC verified) and stored nothing: the
    /// secrets of those Prekey messages were deleted.
    PublicationFailed {
        /// The ids of the Prekey messages that were not published.
        prekey_ids: Vec<u32>,
    },
    /// The server's Storage Status (MAC verified). If the stock is below the refill
    /// policy's watermark, or a profile must be (re)published, `publish` is the DAKE-1 of
    /// the publication that tops it up: send it.
    StorageStatus {
        /// Prekey messages the server holds for this client instance.
        stored: u32,
        /// The DAKE-1 of the refill publication, if one is needed.
        publish: Option<PrekeyServerMessage>,
    },
    /// The server's Prekey Ensembles for `peer`, validated and one chosen per instance
    /// (otrv4-prekey-server.md §"Retrieving Prekey Ensembles"): pass
    /// `OfflineEnsembles::Validated(&ensembles.chosen)` to [`Client::send_offline`].
    Ensembles {
        /// The bare JID the ensembles belong to.
        peer: String,
        /// The chosen ensembles and the discarded ones.
        ensembles: ChosenEnsembles,
    },
    /// The server has no Prekey Ensembles for `peer`: the offline conversation must wait
    /// (otrv4.md §"Receiving Prekey Ensembles").
    NoEnsembles {
        /// The bare JID asked about.
        peer: String,
        /// The server's explanation, to display.
        message: String,
    },
}

/// The Prekey Ensembles [`Client::send_offline`] uses.
#[derive(Debug, Clone, Copy)]
pub enum OfflineEnsembles<'a> {
    /// A Prekey Ensemble Retrieval message from the server: its receiver tag must be ours
    /// and its identity the peer's bare JID; the ensembles are validated at `now` and one
    /// is chosen per instance tag ([`crate::dake::ensemble::choose_ensembles`]).
    Retrieval(&'a EnsembleRetrieval),
    /// Ensembles already validated (e.g. [`PrekeyOutcome::Ensembles`]); each is validated
    /// again at `now` and only the first per instance tag is used.
    Validated(&'a [ValidatedEnsemble]),
}

fn prekey_err(e: PrekeyError) -> ConversationError {
    ConversationError::Prekey(e)
}

/// The ensembles to use, one per instance tag, valid at `now`; discarded ones are
/// reported as warnings.
fn usable_ensembles(
    ensembles: OfflineEnsembles<'_>,
    peer: &str,
    our_tag: InstanceTag,
    now: i64,
    ctx_warn: &mut dyn FnMut(Warning),
) -> Result<Vec<ValidatedEnsemble>, ConversationError> {
    match ensembles {
        OfflineEnsembles::Retrieval(r) => {
            if r.receiver_tag != our_tag || r.identity.as_slice() != peer.as_bytes() {
                return Err(ConversationError::EnsemblesNotForPeer);
            }
            let chosen = choose_ensembles(r.ensembles(), now);
            for (_, e) in chosen.discarded {
                ctx_warn(Warning::EnsembleDiscarded(e));
            }
            Ok(chosen.chosen)
        }
        OfflineEnsembles::Validated(list) => {
            let mut out: Vec<ValidatedEnsemble> = Vec::new();
            for e in list {
                if out.iter().any(|o| o.owner_tag() == e.owner_tag()) {
                    ctx_warn(Warning::EnsembleDiscarded(
                        crate::dake::ensemble::EnsembleError::Duplicate,
                    ));
                    continue;
                }
                let raw = PrekeyEnsemble {
                    client_profile: e.client_profile().clone(),
                    prekey_profile: e.prekey_profile().clone(),
                    prekey_message: e.prekey_message().clone(),
                };
                match ValidatedEnsemble::validate(&raw, now) {
                    Ok(v) => out.push(v),
                    Err(err) => ctx_warn(Warning::EnsembleDiscarded(err)),
                }
            }
            Ok(out)
        }
    }
}

// ---------------------------------------------------------------------------------------
// The conversation side.

impl Conversation {
    /// Our Non-Interactive-Auth message was made (otrv4.md §"Sending a Data Message to an
    /// offline participant"): a live session is ended with a TLV type 1 (§"Starting an
    /// offline conversation after an online one"), any DAKE state is replaced, the
    /// Non-Interactive-Auth message is sent, the ratchet initialised, `ENCRYPTED_MESSAGES`
    /// entered, and the messages queued for this instance are sent.
    fn start_non_interactive<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        nia: &NonInteractiveAuth,
        done: NonInteractiveComplete,
    ) {
        let (_, live) = Conversation::take_live(self.take_phase());
        if let Some(old) = live {
            self.disconnect(ctx, out, rng, old, DisconnectReason::SwitchingDake);
        }
        self.stored.clear();
        ctx.send_encoded(out, self.their_tag, &nia.encode(), rng);
        self.last_sent = Some(ctx.now);
        self.enter(ctx, out, done, non_interactive_digest(nia));
        let queued = core::mem::take(&mut self.queue);
        self.flush(ctx, out, rng, queued);
    }

    /// A Non-Interactive-Auth message from this instance verified (otrv4.md §"Receiving a
    /// Non-Interactive-Auth Message"): any state or key is forgotten, the ratchet
    /// initialised, `ENCRYPTED_MESSAGES` entered; then the stored data messages (`early`
    /// and those stored in `WAITING_AUTH_I`) are tried once each, and the queued messages
    /// are sent.
    fn accept_non_interactive<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        done: NonInteractiveComplete,
        digest: [u8; IDENTITY_DIGEST_LEN],
        early: Vec<super::machine::Stored>,
    ) {
        drop(self.take_phase());
        self.last_received = Some(ctx.now);
        self.enter(ctx, out, done, digest);
        let stored = core::mem::take(&mut self.stored);
        for s in early.into_iter().chain(stored) {
            self.receive_data(ctx, out, rng, &s.msg, true);
        }
        let queued = core::mem::take(&mut self.queue);
        self.flush(ctx, out, rng, queued);
    }

    /// `ENCRYPTED_MESSAGES` with the session of a completed non-interactive DAKE.
    fn enter(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        done: NonInteractiveComplete,
        digest: [u8; IDENTITY_DIGEST_LEN],
    ) {
        let session = Session::establish_non_interactive(done, digest, ctx.now);
        out.push(Event::Secure {
            peer: String::from(ctx.peer),
            instance: self.their_tag,
            ssid: session.ssid,
            bold_half: session.role.ssid_bold_half(),
            their_fingerprint: session.their_fingerprint(),
            key_accepted: self.accepts(&session.their_fingerprint()),
        });
        self.phase = Phase::Encrypted(Box::new(session));
    }
}

impl Peer {
    /// Keeps a data message of a first ratchet from an instance without a session until
    /// a Non-Interactive-Auth message from it arrives (bounded by
    /// `Policy::max_stored_messages` per peer, expired by `tick`).
    pub(crate) fn store_early(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        msg: &crate::wire::messages::DataMessage,
    ) {
        let max = ctx.account.policy.max_stored_messages;
        if max == 0 {
            return;
        }
        if self.early.len() >= max {
            self.early.remove(0);
            ctx.warn(out, Some(msg.sender_tag), Warning::StoredMessagesExpired(1));
        }
        self.early.push((
            msg.sender_tag,
            super::machine::Stored {
                msg: msg.clone(),
                at: ctx.now,
            },
        ));
    }

    /// Sends a Non-Interactive-Auth message and the messages to each ensemble's instance.
    /// Returns whether anything was sent.
    #[allow(clippy::too_many_arguments)]
    fn send_offline<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        ensembles: Vec<ValidatedEnsemble>,
        text: &str,
        is_self: bool,
    ) -> bool {
        let peer_queue: Vec<Queued> = core::mem::take(&mut self.queue);
        let mut sent = false;
        for e in ensembles {
            let x = e.owner_tag();
            if x == ctx.our_tag() {
                // Our own ensemble (when writing to our other devices).
                continue;
            }
            if !self.admit(ctx, out, x, is_self) {
                continue;
            }
            // The server is untrusted: an ensemble whose Client Profile is not the key the
            // caller accepts for this instance is not used (nothing is encrypted to it).
            let offered = e.client_profile().fingerprint();
            if self.expected.get(&x).is_some_and(|f| *f != offered) {
                ctx.error(out, Some(x), ConversationError::KeyNotAccepted);
                continue;
            }
            let made = send_non_interactive_auth(
                rng,
                &e,
                &ctx.account.long_term,
                &ctx.account.profile,
                ctx.phi,
            );
            let (nia, done) = match made {
                Ok(v) => v,
                Err(err) => {
                    ctx.error(out, Some(x), ConversationError::NonInteractive(err));
                    continue;
                }
            };
            let conv = self.conv(x);
            conv.start_non_interactive(ctx, out, rng, &nia, done);
            for q in &peer_queue {
                conv.send_user(ctx, out, rng, &q.text, &q.tlvs);
            }
            if !text.is_empty() {
                conv.send_user(ctx, out, rng, text, &[]);
            }
            sent = true;
        }
        if !sent {
            self.queue = peer_queue;
        }
        sent
    }

    /// Installs the session of a verified Non-Interactive-Auth message from `x`.
    fn accept_non_interactive<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        x: InstanceTag,
        done: NonInteractiveComplete,
        digest: [u8; IDENTITY_DIGEST_LEN],
    ) {
        let (early, rest): (Vec<_>, Vec<_>) = core::mem::take(&mut self.early)
            .into_iter()
            .partition(|(t, _)| *t == x);
        self.early = rest;
        let early = early.into_iter().map(|(_, s)| s).collect();
        self.conv(x)
            .accept_non_interactive(ctx, out, rng, done, digest, early);
        self.flush_peer_queue(ctx, out, rng, x);
    }
}

// ---------------------------------------------------------------------------------------
// The client side.

impl Client {
    fn check_offline(&self) -> Result<(), ConversationError> {
        if !self.account.policy.mode.allows_offline() {
            return Err(ConversationError::OfflineNotAllowed);
        }
        if !self.account.policy.versions.has_v4() {
            return Err(ConversationError::VersionNotAllowed);
        }
        Ok(())
    }

    /// Configures the prekey server we publish to and retrieve from
    /// (otrv4-prekey-server.md §"Prekey Server Composite Identity"): its network identity
    /// (e.g. its JID) and the fingerprint its long-term key must have
    /// ([`Fingerprint::prekey_server`], obtained out of band and ideally verified), and when
    /// to refill the server's stock of our Prekey messages. Abandons any exchange with a
    /// previous server. Not persisted: call it again after [`Client::import`]. Fails in
    /// [`super::Mode::InteractiveOnly`] ([`ConversationError::OfflineNotAllowed`]).
    pub fn set_prekey_server(
        &mut self,
        identity: &[u8],
        fingerprint: Fingerprint,
        refill: RefillPolicy,
    ) -> Result<(), ConversationError> {
        self.check_offline()?;
        let client = PrekeyClient::new(
            self.own_jid.as_bytes().to_vec(),
            self.account.long_term.clone(),
            self.account.profile.clone(),
            identity.to_vec(),
            fingerprint,
        )
        .map_err(prekey_err)?;
        self.prekey_link = Some(PrekeyLink {
            client,
            refill,
            inflight: None,
        });
        Ok(())
    }

    /// Whether an exchange with the prekey server is under way (a DAKE-1 was sent and
    /// the final answer has not arrived, for less than the server's session lifetime).
    pub fn prekey_exchange_pending(&self, now: i64) -> bool {
        self.prekey_link.as_ref().is_some_and(|l| {
            l.inflight
                .is_some_and(|i| now.saturating_sub(i.started_at) < DEFAULT_SESSION_TTL)
        })
    }

    /// Starts a publication to the prekey server (otrv4.md §"Non-Interactive DAKE
    /// Overview", Bob's steps 1–4; otrv4-prekey-server.md §"Publishing Prekey Values") and
    /// returns its DAKE-1, or `None` when there is nothing to publish:
    /// - our Client Profile is re-signed if it expires within the refill policy's
    ///   `renew_before`, and included unless the server already confirmed storing it;
    /// - a Prekey Profile (a new shared prekey, valid [`PREKEY_PROFILE_LIFETIME_SECS`]) is
    ///   made if there is none or it expires within `renew_before`, and included unless
    ///   already confirmed;
    /// - new Prekey messages: a full batch (`refill.batch`, at most 255) when `stored` is
    ///   `None` (first publication, or the stock is unknown), else what
    ///   [`RefillPolicy::prekeys_to_publish`] says for the server's `stored` count. Their
    ///   secrets go into [`Account::prekey_store`].
    ///
    /// Previous Client Profiles and shared prekeys past their extra validity are deleted.
    /// Any exchange under way is abandoned. Then pass every answer of the server to
    /// [`Client::receive_prekey_server`].
    pub fn prekey_publication<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        stored: Option<u32>,
        now: i64,
        rng: &mut R,
    ) -> Result<Option<PrekeyServerMessage>, ConversationError> {
        self.check_offline()?;
        let refill = self
            .prekey_link
            .as_ref()
            .ok_or(ConversationError::NoPrekeyServer)?
            .refill;
        let n = match stored {
            None => refill
                .batch
                .min(crate::prekey::messages::MAX_PUBLISHED_PREKEY_MESSAGES),
            Some(s) => refill.prekeys_to_publish(s),
        };
        self.publish(n, now, rng)
    }

    /// Prepares the profiles and starts a publication of `n` new Prekey messages (and the
    /// profiles the server does not hold yet); `None` if there is nothing to publish.
    fn publish<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        n: usize,
        now: i64,
        rng: &mut R,
    ) -> Result<Option<PrekeyServerMessage>, ConversationError> {
        let Client {
            account,
            prekey_link,
            ..
        } = self;
        let link = prekey_link
            .as_mut()
            .ok_or(ConversationError::NoPrekeyServer)?;
        let refill = link.refill;
        account.refresh_profile(now);
        let lifetime = account.policy.profile_lifetime_secs;
        let cp_exp = account.profile.expiration();
        if refill.needs_renewal(cp_exp, now) && cp_exp < now.saturating_add(lifetime) {
            account.resign_profile(now);
        }
        account.offline.expire(now);
        let pp_due = account
            .offline
            .prekeys
            .current_shared_prekey()
            .is_none_or(|s| {
                let exp = s.profile().expiration;
                refill.needs_renewal(exp, now)
                    && exp < now.saturating_add(PREKEY_PROFILE_LIFETIME_SECS)
            });
        if pp_due {
            account.offline.prekeys.new_prekey_profile(
                rng,
                &account.long_term,
                now.saturating_add(PREKEY_PROFILE_LIFETIME_SECS),
            );
        }
        let cp_digest = profile_digest(&account.profile.encode());
        let include_cp = account.offline.published_client_profile != Some(cp_digest);
        let pp_digest = account
            .offline
            .prekeys
            .current_shared_prekey()
            .map(|s| profile_digest(&s.profile().encode()));
        let include_pp =
            pp_digest.is_some() && account.offline.published_prekey_profile != pp_digest;
        if n == 0 && !include_cp && !include_pp {
            return Ok(None);
        }
        let store = &mut account.offline.prekeys;
        let ids: Vec<u32> = if n == 0 {
            Vec::new()
        } else {
            store
                .generate_prekey_messages(rng, n, now)
                .map_err(prekey_err)?
                .iter()
                .map(|m| m.id)
                .collect()
        };
        let started = store
            .publish_items(&ids, include_pp)
            .map(|items| {
                if include_cp {
                    items.with_client_profile(account.profile.clone())
                } else {
                    items
                }
            })
            .and_then(|items| {
                link.client.set_client_profile(account.profile.clone())?;
                link.client.publish(rng, items)
            });
        let dake1 = match started {
            Ok(d) => d,
            Err(e) => {
                for id in ids {
                    drop(store.remove(id));
                }
                return Err(prekey_err(e));
            }
        };
        link.inflight = Some(Inflight {
            started_at: now,
            client_profile: include_cp.then_some(cp_digest),
            prekey_profile: if include_pp { pp_digest } else { None },
        });
        Ok(Some(PrekeyServerMessage::Dake1(dake1)))
    }

    /// Starts a storage information request (otrv4-prekey-server.md §"Query the Prekey
    /// Server for its Storage Status") and returns its DAKE-1. The answer, passed to
    /// [`Client::receive_prekey_server`], gives [`PrekeyOutcome::StorageStatus`] with the
    /// refill publication if one is needed. Any exchange under way is abandoned.
    pub fn prekey_storage_status<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        now: i64,
        rng: &mut R,
    ) -> Result<PrekeyServerMessage, ConversationError> {
        self.check_offline()?;
        let Client {
            account,
            prekey_link,
            ..
        } = self;
        let link = prekey_link
            .as_mut()
            .ok_or(ConversationError::NoPrekeyServer)?;
        account.refresh_profile(now);
        link.client
            .set_client_profile(account.profile.clone())
            .map_err(prekey_err)?;
        let dake1 = link
            .client
            .request_storage_status(rng)
            .map_err(prekey_err)?;
        link.inflight = Some(Inflight {
            started_at: now,
            client_profile: None,
            prekey_profile: None,
        });
        account.offline.last_status_query = Some(now);
        Ok(PrekeyServerMessage::Dake1(dake1))
    }

    /// The refill policy's schedule (otrv4.md §"Publishing Prekey Messages": publish
    /// "once the server store of prekeys messages gets low"): unless an exchange is under
    /// way, a storage status request when [`RefillPolicy::should_query_status`] says so
    /// (its answer triggers the refill), else a publication of our profiles if one must be
    /// renewed or was never confirmed. Call it from time to time while online (e.g. with
    /// [`Client::tick`]); `None` when nothing is due.
    pub fn prekey_maintenance<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        now: i64,
        rng: &mut R,
    ) -> Result<Option<PrekeyServerMessage>, ConversationError> {
        self.check_offline()?;
        let link = self
            .prekey_link
            .as_ref()
            .ok_or(ConversationError::NoPrekeyServer)?;
        if self.prekey_exchange_pending(now) {
            return Ok(None);
        }
        if link
            .refill
            .should_query_status(self.account.offline.last_status_query, now)
        {
            return self.prekey_storage_status(now, rng).map(Some);
        }
        self.publish(0, now, rng)
    }

    /// A Prekey Ensemble Query Retrieval message for `peer`'s ensembles (version 4;
    /// otrv4-prekey-server.md §"Retrieving Prekey Ensembles"). The answer goes to
    /// [`Client::receive_prekey_server`].
    pub fn ensemble_query(&mut self, peer: &str) -> Result<PrekeyServerMessage, ConversationError> {
        self.check_offline()?;
        let link = self
            .prekey_link
            .as_mut()
            .ok_or(ConversationError::NoPrekeyServer)?;
        Ok(PrekeyServerMessage::EnsembleQuery(
            link.client.ensemble_query(peer.as_bytes(), QUERY_VERSIONS),
        ))
    }

    /// A message from the prekey server (otrv4-prekey-server.md §"Key Exchange",
    /// §"Retrieving Prekey Ensembles"):
    /// - DAKE-2 → [`PrekeyOutcome::Send`] with our DAKE-3 (the Prekey Publication or the
    ///   Storage Information Request);
    /// - Success → the published profiles are remembered → [`PrekeyOutcome::Published`];
    /// - Failure → the unpublished prekey secrets are deleted →
    ///   [`PrekeyOutcome::PublicationFailed`];
    /// - Storage Status → [`PrekeyOutcome::StorageStatus`], with the refill publication's
    ///   DAKE-1 if the refill policy asks for one;
    /// - Prekey Ensemble Retrieval / No Prekey Ensembles (for a query we made) →
    ///   [`PrekeyOutcome::Ensembles`] / [`PrekeyOutcome::NoEnsembles`].
    ///
    /// A message that fails a check (wrong receiver tag, bad MAC, bad signature, not
    /// expected now) is ignored with [`ConversationError::Prekey`]; the exchange goes on.
    pub fn receive_prekey_server<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        msg: &PrekeyServerMessage,
        now: i64,
        rng: &mut R,
    ) -> Result<PrekeyOutcome, ConversationError> {
        self.check_offline()?;
        let link = self
            .prekey_link
            .as_mut()
            .ok_or(ConversationError::NoPrekeyServer)?;
        match msg {
            PrekeyServerMessage::Dake2(m) => {
                let d3 = link.client.receive_dake2(rng, m).map_err(prekey_err)?;
                Ok(PrekeyOutcome::Send(PrekeyServerMessage::Dake3(d3)))
            }
            PrekeyServerMessage::Success(_)
            | PrekeyServerMessage::Failure(_)
            | PrekeyServerMessage::StorageStatus(_) => {
                let reply = link.client.receive_reply(msg).map_err(prekey_err)?;
                let inflight = link.inflight.take();
                let refill = link.refill;
                let offline = &mut self.account.offline;
                match reply {
                    ServerReply::Published {
                        prekey_ids,
                        client_profile,
                        prekey_profile,
                    } => {
                        if let Some(i) = inflight {
                            if client_profile && i.client_profile.is_some() {
                                offline.published_client_profile = i.client_profile;
                            }
                            if prekey_profile && i.prekey_profile.is_some() {
                                offline.published_prekey_profile = i.prekey_profile;
                            }
                        }
                        Ok(PrekeyOutcome::Published {
                            prekey_ids,
                            client_profile,
                            prekey_profile,
                        })
                    }
                    ServerReply::Failed { prekey_ids } => {
                        for id in &prekey_ids {
                            drop(offline.prekeys.remove(*id));
                        }
                        Ok(PrekeyOutcome::PublicationFailed { prekey_ids })
                    }
                    ServerReply::StorageStatus { stored } => {
                        let n = refill.prekeys_to_publish(stored);
                        let publish = self.publish(n, now, rng)?;
                        Ok(PrekeyOutcome::StorageStatus { stored, publish })
                    }
                }
            }
            PrekeyServerMessage::EnsembleRetrieval(_)
            | PrekeyServerMessage::NoPrekeyEnsembles(_) => {
                match link
                    .client
                    .receive_ensembles(msg, now)
                    .map_err(prekey_err)?
                {
                    Retrieved::Ensembles {
                        identity,
                        ensembles,
                    } => Ok(PrekeyOutcome::Ensembles {
                        peer: String::from_utf8_lossy(&identity).into_owned(),
                        ensembles,
                    }),
                    Retrieved::NoEnsembles { identity, message } => {
                        Ok(PrekeyOutcome::NoEnsembles {
                            peer: String::from_utf8_lossy(&identity).into_owned(),
                            message: String::from_utf8_lossy(&message).into_owned(),
                        })
                    }
                }
            }
            _ => Err(prekey_err(PrekeyError::UnexpectedMessage)),
        }
    }

    /// Starts an offline conversation with `peer` (otrv4.md §"Sending a Data Message to an
    /// offline participant", §"Non-Interactive DAKE Overview", Alice): for each usable
    /// ensemble (one per instance tag, valid at `now`; our own instance is skipped), a
    /// Non-Interactive-Auth message is sent ([`Event::Send`] addressed to that instance),
    /// the conversation enters `ENCRYPTED_MESSAGES` ([`Event::Secure`]), and the messages
    /// queued for the instance or the peer, then `text` (unless empty), are sent as data
    /// messages on the initial sending chain. A live session with that instance is ended
    /// first with a TLV type 1 (§"Starting an offline conversation after an online one");
    /// any DAKE under way with it is replaced.
    ///
    /// Errors (as [`Event::Error`]): [`ConversationError::OfflineNotAllowed`] in
    /// [`super::Mode::InteractiveOnly`], [`ConversationError::EnsemblesNotForPeer`],
    /// [`ConversationError::NoPrekeyEnsembles`] when nothing was sent. Discarded ensembles
    /// give [`Warning::EnsembleDiscarded`].
    pub fn send_offline<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        peer: &str,
        ensembles: OfflineEnsembles<'_>,
        text: &str,
        now: i64,
        rng: &mut R,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        with_peer(self, peer, now, |p, ctx, is_self| {
            if !ctx.account.policy.mode.allows_offline() {
                return ctx.error(&mut out, None, ConversationError::OfflineNotAllowed);
            }
            if !ctx.account.policy.versions.has_v4() {
                return ctx.error(&mut out, None, ConversationError::VersionNotAllowed);
            }
            let mut warnings = Vec::new();
            let usable = usable_ensembles(ensembles, peer, ctx.our_tag(), now, &mut |w| {
                warnings.push(w);
            });
            for w in warnings {
                ctx.warn(&mut out, None, w);
            }
            match usable {
                Ok(list) => {
                    if !p.send_offline(ctx, &mut out, rng, list, text, is_self) {
                        ctx.error(&mut out, None, ConversationError::NoPrekeyEnsembles);
                    }
                }
                Err(e) => ctx.error(&mut out, None, e),
            }
        });
        out
    }

    /// A Non-Interactive-Auth message arrived (otrv4.md §"Receiving a Non-Interactive-Auth
    /// Message"); the receiver tag was checked by [`Peer::receive`] (and again here).
    /// Verified against our prekey store and Client Profiles (current and previous); on
    /// success the prekey secrets are gone and the conversation is `ENCRYPTED_MESSAGES`,
    /// on failure nothing changed ([`Warning::NonInteractiveAuthIgnored`]).
    pub(crate) fn receive_non_interactive_auth<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        from: &str,
        msg: &NonInteractiveAuth,
        now: i64,
        rng: &mut R,
        out: &mut Vec<Event>,
    ) {
        let x = msg.sender_tag;
        let admitted = with_peer(self, from, now, |p, ctx, is_self| {
            p.admit(ctx, out, x, is_self)
        });
        if !admitted {
            return;
        }
        let phi = PhiPrime::from_strings(&[self.own_jid.as_str(), from]);
        let profiles = self.account.our_profiles();
        let Account {
            long_term, offline, ..
        } = &mut self.account;
        offline.expire(now);
        let result = receive_non_interactive_auth(
            msg,
            long_term,
            &profiles,
            &mut offline.prekeys,
            &phi,
            now,
        );
        let digest = non_interactive_digest(msg);
        with_peer(self, from, now, |p, ctx, _| match result {
            Ok(done) => p.accept_non_interactive(ctx, out, rng, x, done, digest),
            Err(e) => ctx.warn(out, Some(x), Warning::NonInteractiveAuthIgnored(e)),
        });
    }
}
