//! The client: the sans-IO entry point of the conversation layer. A [`Client`] owns the
//! [`Account`] and one [`Peer`] per bare JID, routes every input to the right peer, and
//! drives the prekey server link; the caller keeps the [`PrekeyStore`] and passes it in.
//!
//! [`Client`] takes `(from_bare_jid, text, prekeys, now, rng)` and the user's actions and
//! returns [`Event`]s; plaintext, query messages and fragments are handled per peer, encoded
//! messages are dispatched by their sender instance tag.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::InstanceTag;
use crate::crypto::fingerprint::Fingerprint;
use crate::dake::PhiPrime;
use crate::debug::redacted_debug;
use crate::prekey::messages::PrekeyServerMessage;
use crate::prekey::{PrekeyStore, RefillPolicy};
use crate::ratchet::SecretBytes;
use crate::wire::codec::{Reader, Writer};
use crate::wire::tlv::Tlv;

use super::account::{Account, PROFILE_EXTRA_VALIDITY_SECS};
use super::context::Ctx;
use super::events::{ConversationError, Event};
use super::offline::{OfflineEnsembles, usable_ensembles};
use super::peer::Peer;
use super::persisted::{Persist, PersistError, read_string, u32_of};
use super::policy::{Policy, Selection};
use super::prekey_link::{PrekeyLink, PrekeyOutcome};
use super::state::Conversation;

/// The default of [`Client::set_max_instances`]: at most this many instances (devices) per
/// peer; a ninth instance is refused with [`ConversationError::TooManyDevices`]. For our
/// own bare JID the limit counts us, so at most seven other own devices.
pub const DEFAULT_MAX_INSTANCES: usize = 8;

/// A local account and its correspondents: the sans-IO entry point of the protocol.
///
/// Every method takes the current time `now` (seconds since the Unix epoch) and an RNG,
/// and returns the [`Event`]s to act on, in order. Nothing inside reads a clock, a socket
/// or a global RNG. Call [`Client::tick`] regularly (e.g. every few seconds) for
/// heartbeats, session expiry and timeouts.
///
/// The secrets of our published Prekey messages are in a [`PrekeyStore`] the caller keeps
/// (`PrekeyStore::new(account.instance_tag())` for a new account, or the one
/// [`Client::import`] returned) and passes to the calls that use or change it:
/// [`Client::receive`] (a Non-Interactive-Auth message consumes a prekey),
/// [`Client::tick`], the prekey-server calls and [`Client::export`]. Export after each of
/// them, so a used prekey is never restored.
pub struct Client {
    pub(crate) account: Account,
    pub(crate) own_jid: String,
    pub(crate) peers: BTreeMap<String, Peer>,
    /// The prekey server we publish to and retrieve from (not persisted).
    pub(crate) prekey_link: Option<PrekeyLink>,
    /// At most this many instances per peer (not persisted).
    pub(crate) max_instances: usize,
}

redacted_debug!(Client {
    own_jid,
    account,
    peers,
    prekey_link,
    max_instances
});

/// Runs `f` on the peer `jid` (created if new) with a context for it.
fn with_peer<T>(
    client: &mut Client,
    jid: &str,
    now: i64,
    f: impl FnOnce(&mut Peer, &Ctx<'_>, bool) -> T,
) -> T {
    let Client {
        account,
        own_jid,
        peers,
        max_instances,
        ..
    } = client;
    account.refresh_profile(now);
    let is_self = jid == own_jid.as_str();
    let phi = PhiPrime::from_strings(&[own_jid.as_str(), jid]);
    let peer = peers
        .entry(String::from(jid))
        .or_insert_with(|| Peer::new(jid, &account.policy));
    let ctx = Ctx {
        account,
        phi: &phi,
        peer: jid,
        now,
        max_instances: *max_instances,
    };
    f(peer, &ctx, is_self)
}

impl Client {
    /// A client for `account`, logged in as `own_jid` (a bare JID). The shared session state
    /// `phi'` of every DAKE is built from both parties' bare JIDs (otrv4.md §"Shared Session
    /// State").
    pub fn new(account: Account, own_jid: &str) -> Client {
        Client {
            account,
            own_jid: String::from(own_jid),
            peers: BTreeMap::new(),
            prekey_link: None,
            max_instances: DEFAULT_MAX_INSTANCES,
        }
    }

    /// Sets how many instances (devices) a peer may have (default
    /// [`DEFAULT_MAX_INSTANCES`]; the transport's rule, e.g. XMPP's device limit): a
    /// conversation with one more is refused with [`ConversationError::TooManyDevices`];
    /// for our own bare JID the limit counts us. Existing conversations are kept. Not
    /// persisted: set it again after [`Client::import`].
    pub fn set_max_instances(&mut self, max: usize) {
        self.max_instances = max;
    }

    /// How many instances a peer may have ([`Client::set_max_instances`]).
    pub fn max_instances(&self) -> usize {
        self.max_instances
    }

    /// The account.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// Replaces the policy (checked).
    pub fn set_policy(&mut self, policy: Policy) -> Result<(), ConversationError> {
        self.account.set_policy(policy)
    }

    /// Gives the account an OTRv3 key ([`Account::set_v3_key`]); with the policy's
    /// [`super::Mode::Otrv3Compatible`] and version 3, OTRv3 is offered and accepted.
    #[cfg(feature = "v3")]
    pub fn set_v3_key(&mut self, key: crate::otrv3::DsaPrivateKey) {
        self.account.set_v3_key(key);
    }

    /// Our bare JID.
    pub fn own_jid(&self) -> &str {
        &self.own_jid
    }

    /// A correspondent.
    pub fn peer(&self, jid: &str) -> Option<&Peer> {
        self.peers.get(jid)
    }

    /// The conversation with one instance of a correspondent.
    pub fn conversation(&self, jid: &str, instance: InstanceTag) -> Option<&Conversation> {
        self.peers.get(jid)?.conversations.get(&instance)
    }

    /// The known instances of a correspondent.
    pub fn instances(&self, jid: &str) -> Vec<InstanceTag> {
        self.peers.get(jid).map(Peer::instances).unwrap_or_default()
    }

    /// Forgets a conversation (its keys are wiped) to free a device slot. Returns whether
    /// it existed. Send nothing: call [`Client::end`] first to tell the peer.
    pub fn forget_instance(&mut self, jid: &str, instance: InstanceTag) -> bool {
        self.peers
            .get_mut(jid)
            .is_some_and(|p| p.conversations.remove(&instance).is_some())
    }

    /// Sets the fingerprint the caller accepts for instance `instance` of `jid` (e.g. the
    /// pinned or verified key of that device), or `None` for no expectation (every
    /// authenticated key is used: the default). While a session's key differs from it,
    /// nothing with user content is encrypted in that session: messages are kept queued
    /// ([`super::events::NotSentReason::KeyNotAccepted`]), SMP and extra symmetric keys are
    /// refused ([`ConversationError::KeyNotAccepted`]), and an offline start skips a prekey
    /// ensemble whose Client Profile has another key. [`Event::Secure`] says whether the
    /// new session's key was accepted. Calling it with the session's fingerprint (the user
    /// accepted the new key) sends what was held. Not persisted: set it again after
    /// [`Client::import`].
    pub fn expect_fingerprint<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        jid: &str,
        instance: InstanceTag,
        fingerprint: Option<Fingerprint>,
        now: i64,
        rng: &mut R,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        with_peer(self, jid, now, |p, ctx, _| {
            match fingerprint {
                Some(f) => p.expected.insert(instance, f),
                None => p.expected.remove(&instance),
            };
            if let Some(c) = p.conversations.get_mut(&instance) {
                c.expect(ctx, &mut out, rng, fingerprint);
            }
        });
        out
    }

    /// A message arrived from `from` (a bare JID): a fragment, an encoded OTR message
    /// (including a Non-Interactive-Auth message starting an offline conversation, verified
    /// against `prekeys`, whose used prekey is then deleted), a query message, an error
    /// message or plaintext (otrv4.md §"Protocol Events"). Previous Client Profiles past
    /// their extra validity are deleted afterwards.
    pub fn receive<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        from: &str,
        text: &str,
        prekeys: &mut PrekeyStore,
        now: i64,
        rng: &mut R,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        with_peer(self, from, now, |p, ctx, is_self| {
            p.receive(ctx, &mut out, rng, prekeys, text, is_self);
        });
        self.account.expire_previous_profiles(now);
        out
    }

    /// The user asks for a private conversation (otrv4.md §"User requests to start an OTR
    /// conversation"): in [`super::policy::Mode::Otrv3Compatible`] a query message; in the
    /// standalone modes an Identity message without a receiver tag (otrv4.md §"Starting a
    /// conversation interactively"). Encrypted sessions with the peer are refreshed by a new
    /// DAKE instead.
    pub fn start<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        peer: &str,
        now: i64,
        rng: &mut R,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        with_peer(self, peer, now, |p, ctx, _| {
            if !ctx.account.policy.versions.has_v4() && ctx.account.offered_versions().is_empty() {
                return ctx.error(&mut out, None, ConversationError::VersionNotAllowed);
            }
            p.start(ctx, &mut out, rng);
        });
        out
    }

    /// Sends an Identity message directly (otrv4.md §"Starting a conversation
    /// interactively"): to `instance`, or without a receiver tag. An encrypted session with
    /// the instance stays usable until the new DAKE completes.
    pub fn start_dake<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        peer: &str,
        instance: Option<InstanceTag>,
        now: i64,
        rng: &mut R,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        with_peer(self, peer, now, |p, ctx, is_self| {
            if !ctx.account.policy.versions.has_v4() {
                return ctx.error(&mut out, None, ConversationError::VersionNotAllowed);
            }
            match instance {
                Some(tag) if tag.is_valid_sender() => {
                    if p.admit(ctx, &mut out, tag, is_self) {
                        p.conv(tag).start_dake(ctx, &mut out, rng);
                    }
                }
                Some(tag) => {
                    ctx.error(&mut out, None, ConversationError::NoSuchConversation(tag));
                }
                None => p.start_untargeted(ctx, &mut out, rng),
            }
        });
        out
    }

    /// The user sends `text` (and `tlvs`) to `peer`, to the instance(s) chosen by
    /// `Policy::selection` (otrv4.md §"Sending a Data Message"): encrypted where a session
    /// is, queued while a DAKE runs (a DAKE is started if needed), refused when `FINISHED`,
    /// plaintext only where the policy allows it. With [`Selection::Multicasting`] it also
    /// goes to our other devices holding an encrypted session with us.
    pub fn send<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        peer: &str,
        text: &str,
        tlvs: &[Tlv],
        now: i64,
        rng: &mut R,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        let selection = self.account.policy.selection;
        with_peer(self, peer, now, |p, ctx, _| {
            #[cfg(feature = "v3")]
            if p.v3_takes_sends() {
                return p.v3.send_user(ctx, &mut out, text, tlvs);
            }
            let targets = p.select(selection);
            if targets.is_empty() {
                p.send_any(ctx, &mut out, rng, text, tlvs);
            }
            for t in targets {
                p.send_to_instance(ctx, &mut out, rng, t, text, tlvs);
            }
        });
        let own = self.own_jid.clone();
        if selection == Selection::Multicasting && peer != own {
            with_peer(self, &own, now, |p, ctx, _| {
                let ours: Vec<InstanceTag> = p
                    .conversations
                    .iter()
                    .filter(|(t, c)| c.is_encrypted() && **t != ctx.our_tag())
                    .map(|(t, _)| *t)
                    .collect();
                for t in ours {
                    p.send_to_instance(ctx, &mut out, rng, t, text, tlvs);
                }
            });
        }
        out
    }

    /// Sends to one instance of `peer`, whatever the selection policy.
    pub fn send_to<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        peer: &str,
        instance: InstanceTag,
        text: &str,
        tlvs: &[Tlv],
        now: i64,
        rng: &mut R,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        with_peer(self, peer, now, |p, ctx, _| {
            #[cfg(feature = "v3")]
            if p.is_v3_instance(instance) {
                return p.v3.send_user(ctx, &mut out, text, tlvs);
            }
            p.send_to_instance(ctx, &mut out, rng, instance, text, tlvs);
        });
        out
    }

    /// The user ends the conversation with one instance, or with every instance and any
    /// DAKE under way when `instance` is `None` (otrv4.md §"User requests to end an OTRv4
    /// Conversation").
    pub fn end<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        peer: &str,
        instance: Option<InstanceTag>,
        now: i64,
        rng: &mut R,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        with_peer(self, peer, now, |p, ctx, _| {
            p.end(ctx, &mut out, rng, instance)
        });
        out
    }

    /// Runs `f` on the peer's OTRv3 conversation when `instance` is its instance and no
    /// OTRv4 conversation has that tag; `None` otherwise.
    #[cfg(feature = "v3")]
    fn with_v3(
        &mut self,
        peer: &str,
        instance: InstanceTag,
        now: i64,
        f: impl FnOnce(&mut super::v3::V3Link, &Ctx<'_>, &mut Vec<Event>),
    ) -> Option<Vec<Event>> {
        if !self
            .peers
            .get(peer)
            .is_some_and(|p| p.is_v3_instance(instance))
        {
            return None;
        }
        let mut out = Vec::new();
        with_peer(self, peer, now, |p, ctx, _| f(&mut p.v3, ctx, &mut out));
        Some(out)
    }

    fn with_conversation<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        peer: &str,
        instance: InstanceTag,
        now: i64,
        rng: &mut R,
        f: impl FnOnce(&mut Conversation, &Ctx<'_>, &mut Vec<Event>, &mut R),
    ) -> Vec<Event> {
        let mut out = Vec::new();
        with_peer(self, peer, now, |p, ctx, _| {
            match p.conversations.get_mut(&instance) {
                Some(c) => f(c, ctx, &mut out, rng),
                None => ctx.error(
                    &mut out,
                    Some(instance),
                    ConversationError::NoSuchConversation(instance),
                ),
            }
        });
        out
    }

    /// The user starts SMP with `instance` (otrv4.md §"User requests to begin SMP").
    pub fn smp_start<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        peer: &str,
        instance: InstanceTag,
        secret: &[u8],
        question: Option<&str>,
        now: i64,
        rng: &mut R,
    ) -> Vec<Event> {
        #[cfg(feature = "v3")]
        if let Some(out) = self.with_v3(peer, instance, now, |v3, ctx, out| {
            v3.smp_start(ctx, out, rng, secret, question)
        }) {
            return out;
        }
        self.with_conversation(peer, instance, now, rng, |c, ctx, out, rng| {
            c.smp_start(ctx, out, rng, secret, question);
        })
    }

    /// The user answers the peer's SMP question (after [`super::events::SmpUpdate::AskForSecret`]).
    pub fn smp_respond<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        peer: &str,
        instance: InstanceTag,
        secret: &[u8],
        now: i64,
        rng: &mut R,
    ) -> Vec<Event> {
        #[cfg(feature = "v3")]
        if let Some(out) = self.with_v3(peer, instance, now, |v3, ctx, out| {
            v3.smp_respond(ctx, out, rng, secret)
        }) {
            return out;
        }
        self.with_conversation(peer, instance, now, rng, |c, ctx, out, rng| {
            c.smp_respond(ctx, out, rng, secret);
        })
    }

    /// The user aborts SMP (otrv4.md §"User requests to abort SMP").
    pub fn smp_abort<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        peer: &str,
        instance: InstanceTag,
        now: i64,
        rng: &mut R,
    ) -> Vec<Event> {
        #[cfg(feature = "v3")]
        if let Some(out) = self.with_v3(peer, instance, now, |v3, ctx, out| v3.smp_abort(ctx, out))
        {
            return out;
        }
        self.with_conversation(peer, instance, now, rng, |c, ctx, out, rng| {
            c.smp_abort(ctx, out, rng);
        })
    }

    /// Sends a type 7 TLV announcing the use of the extra symmetric key for `context` and
    /// `data` (otrv4.md §"Extra Symmetric Key"); the key is reported in an
    /// [`Event::ExtraSymmetricKey`] (the peer gets the same key in the same event).
    pub fn use_extra_symmetric_key<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        peer: &str,
        instance: InstanceTag,
        context: [u8; 4],
        data: &[u8],
        now: i64,
        rng: &mut R,
    ) -> Vec<Event> {
        self.with_conversation(peer, instance, now, rng, |c, ctx, out, rng| {
            c.use_extra_key(ctx, out, rng, context, data);
        })
    }

    /// Time passes: renews our Client Profile, drops stale fragments, abandons stalled
    /// DAKEs, expires stored early data messages, expires sessions (sending TLV type 1),
    /// sends heartbeats, and deletes previous Client Profiles and the shared prekeys of
    /// `prekeys` past their extra validity (otrv4.md §"Publishing Prekey Ensembles").
    pub fn tick<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        prekeys: &mut PrekeyStore,
        now: i64,
        rng: &mut R,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        let jids: Vec<String> = self.peers.keys().cloned().collect();
        for jid in jids {
            with_peer(self, &jid, now, |p, ctx, _| p.tick(ctx, &mut out, rng));
        }
        self.account.refresh_profile(now);
        self.account.expire_previous_profiles(now);
        prekeys.expire_shared_prekeys(now, PROFILE_EXTRA_VALIDITY_SECS);
        out
    }

    // -----------------------------------------------------------------------------------
    // Offline conversations (otrv4.md §"Offline Conversation Initialization").

    fn check_offline(&self) -> Result<(), ConversationError> {
        if !self.account.policy.mode.allows_offline() {
            return Err(ConversationError::OfflineNotAllowed);
        }
        if !self.account.policy.versions.has_v4() {
            return Err(ConversationError::VersionNotAllowed);
        }
        Ok(())
    }

    /// The prekey server link, after checking the mode allows offline conversations.
    fn link(&mut self) -> Result<(&mut PrekeyLink, &mut Account), ConversationError> {
        self.check_offline()?;
        let Client {
            account,
            prekey_link,
            ..
        } = self;
        let link = prekey_link
            .as_mut()
            .ok_or(ConversationError::NoPrekeyServer)?;
        Ok((link, account))
    }

    /// Configures the prekey server we publish to and retrieve from
    /// (otrv4-prekey-server.md §"Prekey Server Composite Identity"): its network identity
    /// (e.g. its JID) and the fingerprint its long-term key must have
    /// (`Fingerprint::prekey_server`, obtained out of band and ideally verified), and when
    /// to refill the server's stock of our Prekey messages. Abandons any exchange with a
    /// previous server. Not persisted: call it again after [`Client::import`]. Fails in
    /// [`super::policy::Mode::InteractiveOnly`] ([`ConversationError::OfflineNotAllowed`]).
    pub fn set_prekey_server(
        &mut self,
        identity: &[u8],
        fingerprint: Fingerprint,
        refill: RefillPolicy,
    ) -> Result<(), ConversationError> {
        self.check_offline()?;
        // The same server again (e.g. its key re-confirmed on a new connection): keep the
        // exchanges in flight, whose answers would otherwise arrive unsolicited.
        if let Some(link) = self
            .prekey_link
            .as_mut()
            .filter(|l| l.serves(identity, &fingerprint))
        {
            link.set_refill(refill);
            return Ok(());
        }
        let link = PrekeyLink::new(&self.own_jid, &self.account, identity, fingerprint, refill)?;
        self.prekey_link = Some(link);
        Ok(())
    }

    /// Whether an exchange with the prekey server is under way (a DAKE-1 was sent and
    /// the final answer has not arrived, for less than the server's session lifetime).
    pub fn prekey_exchange_pending(&self, now: i64) -> bool {
        self.prekey_link.as_ref().is_some_and(|l| l.pending(now))
    }

    /// Starts a publication to the prekey server (otrv4.md §"Non-Interactive DAKE
    /// Overview", Bob's steps 1–4; otrv4-prekey-server.md §"Publishing Prekey Values") and
    /// returns its DAKE-1, or `None` when there is nothing to publish:
    /// - our Client Profile is re-signed if it expires within the refill policy's
    ///   `renew_before`, and included unless the server already confirmed storing it;
    /// - a Prekey Profile (a new shared prekey in `prekeys`, valid
    ///   `super::prekey_link::PREKEY_PROFILE_LIFETIME_SECS`) is made if there is none or
    ///   it expires within `renew_before`, and included unless already confirmed;
    /// - new Prekey messages: a full batch (`refill.batch`, at most 255) when `stored` is
    ///   `None` (first publication, or the stock is unknown), else what
    ///   `RefillPolicy::prekeys_to_publish` says for the server's `stored` count. Their
    ///   secrets go into `prekeys`.
    ///
    /// Previous Client Profiles and shared prekeys past their extra validity are deleted.
    /// Any exchange under way is abandoned. Then pass every answer of the server to
    /// [`Client::receive_prekey_server`]. Fails with [`ConversationError::InvalidKeys`] if
    /// `prekeys` is not the store of our instance tag.
    pub fn prekey_publication<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        prekeys: &mut PrekeyStore,
        stored: Option<u32>,
        now: i64,
        rng: &mut R,
    ) -> Result<Option<PrekeyServerMessage>, ConversationError> {
        let (link, account) = self.link()?;
        link.publication(account, prekeys, stored, now, rng)
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
        let (link, account) = self.link()?;
        link.storage_status(account, now, rng)
    }

    /// The refill policy's schedule (otrv4.md §"Publishing Prekey Messages": publish
    /// "once the server store of prekeys messages gets low"): unless an exchange is under
    /// way, a storage status request when `RefillPolicy::should_query_status` says so
    /// (its answer triggers the refill), else a publication of our profiles if one must be
    /// renewed or was never confirmed. Call it from time to time while online (e.g. with
    /// [`Client::tick`]); `None` when nothing is due.
    pub fn prekey_maintenance<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        prekeys: &mut PrekeyStore,
        now: i64,
        rng: &mut R,
    ) -> Result<Option<PrekeyServerMessage>, ConversationError> {
        let (link, account) = self.link()?;
        link.maintenance(account, prekeys, now, rng)
    }

    /// A Prekey Ensemble Query Retrieval message for `peer`'s ensembles (version 4;
    /// otrv4-prekey-server.md §"Retrieving Prekey Ensembles"). The answer goes to
    /// [`Client::receive_prekey_server`].
    pub fn ensemble_query(&mut self, peer: &str) -> Result<PrekeyServerMessage, ConversationError> {
        let (link, _) = self.link()?;
        Ok(link.ensemble_query(peer))
    }

    /// A message from the prekey server (otrv4-prekey-server.md §"Key Exchange",
    /// §"Retrieving Prekey Ensembles"):
    /// - DAKE-2 → [`PrekeyOutcome::Send`] with our DAKE-3 (the Prekey Publication or the
    ///   Storage Information Request);
    /// - Success → the published profiles are remembered → [`PrekeyOutcome::Published`];
    /// - Failure → the unpublished prekey secrets are deleted from `prekeys` →
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
        prekeys: &mut PrekeyStore,
        msg: &PrekeyServerMessage,
        now: i64,
        rng: &mut R,
    ) -> Result<PrekeyOutcome, ConversationError> {
        let (link, account) = self.link()?;
        link.receive(account, prekeys, msg, now, rng)
    }

    /// Starts an offline conversation with `peer` (otrv4.md §"Sending a Data Message to an
    /// offline participant", §"Non-Interactive DAKE Overview", Alice): for each usable
    /// ensemble (one per instance tag, valid at `now`; our own instance is skipped), a
    /// Non-Interactive-Auth message is sent ([`Event::Send`] addressed to that instance),
    /// the conversation enters `ENCRYPTED_MESSAGES` ([`Event::Secure`]), and the messages
    /// queued for the instance or the peer, then `text` (unless empty), are sent as data
    /// messages on the initial sending chain. A live session with that instance is ended
    /// first with a TLV type 1 (§"Starting an offline conversation after an online one");
    /// any DAKE under way with it is replaced. An ensemble whose Client Profile is not the
    /// key [`Client::expect_fingerprint`] set for its instance is skipped
    /// ([`ConversationError::KeyNotAccepted`]).
    ///
    /// Errors (as [`Event::Error`]): [`ConversationError::OfflineNotAllowed`] in
    /// [`super::policy::Mode::InteractiveOnly`], [`ConversationError::EnsemblesNotForPeer`],
    /// [`ConversationError::NoPrekeyEnsembles`] when nothing was sent. Discarded ensembles
    /// give [`super::events::Warning::EnsembleDiscarded`].
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
}

/// The persisted client: `account || DATA(own bare JID) || INT peer count || peers`. Not
/// [`Persist`]: the caller's prekey store is written inside the account and read back beside
/// the client. The prekey-server link and the device limit are not written.
impl Client {
    /// Appends the client in format `version`, with `prekeys` as its prekey store.
    pub(crate) fn persist(&self, prekeys: &PrekeyStore, w: &mut SecretBytes, version: u16) {
        self.account.persist(prekeys, w, version);
        w.data(self.own_jid.as_bytes());
        w.u32(u32_of(self.peers.len()));
        for p in self.peers.values() {
            p.persist(w, version);
        }
    }

    /// Reads a client and its prekey store written in format `version`; two peers with
    /// one bare JID are rejected. The device limit is [`DEFAULT_MAX_INSTANCES`] again.
    pub(crate) fn restore(
        r: &mut Reader<'_>,
        version: u16,
    ) -> Result<(Client, PrekeyStore), PersistError> {
        let (account, prekeys) = Account::restore(r, version)?;
        let own_jid = read_string(r, "own JID")?;
        let n = r.u32("peer count")?;
        let mut peers = BTreeMap::new();
        for _ in 0..n {
            let peer = Peer::restore(r, version, (account.instance_tag, &account.policy))?;
            if peers.insert(peer.jid.clone(), peer).is_some() {
                return Err(PersistError::Invalid("duplicate peer"));
            }
        }
        let client = Client {
            account,
            own_jid,
            peers,
            prekey_link: None,
            max_instances: DEFAULT_MAX_INSTANCES,
        };
        Ok((client, prekeys))
    }
}
