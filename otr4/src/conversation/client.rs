//! The multi-instance router (otrv4.md §"Instance Tags", §"Considerations for Networks that
//! allow Multiple Clients"): one [`Peer`] per bare JID, one [`Conversation`] per instance.
//!
//! [`Client`] takes `(from_bare_jid, text, now, rng)` and the user's actions and returns
//! [`Event`]s; plaintext, query messages and fragments are handled per peer, encoded
//! messages are dispatched by their sender instance tag.

use crate::wire::codec::Codec;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::InstanceTag;
use crate::crypto::fingerprint::Fingerprint;
use crate::dake::{self, PhiPrime, SimultaneousIdentity, WaitingAuthR};
use crate::wire::encoded::{Incoming, classify};
use crate::wire::error_msg::{ErrorCode, build_error};
use crate::wire::fragment::{FragmentError, FragmentKind, Reassembler};
use crate::wire::messages::{
    AuthI, AuthR, DataMessage, FLAG_IGNORE_UNREADABLE, IdentityMessage, Message, NonInteractiveAuth,
};
use crate::wire::query::{Versions, build_query, tag_message};
use crate::wire::tlv::Tlv;

use super::machine::{Ctx, Queued, Stored};
use super::offline::PrekeyLink;
use super::session::identity_digest;
use super::{
    Account, Conversation, ConversationError, ConversationState, Event, NotSentReason, Policy,
    Selection, Warning,
};

/// At most this many instances (devices) per user: a ninth instance of a peer is refused
/// with [`ConversationError::TooManyDevices`]. For our own bare JID the limit counts us, so
/// at most seven other own devices.
pub const MAX_DEVICES_PER_USER: usize = 8;

/// Our Identity message sent to a bare JID without a receiver instance tag (after a query
/// message or whitespace tag, or in the standalone modes): `WAITING_AUTH_R` for whichever
/// instance answers first.
struct Pending {
    dake: WaitingAuthR,
    started_at: i64,
}

/// Everything about one correspondent (bare JID): its conversations by instance tag, the
/// reassembler of its fragments, the untargeted DAKE, messages queued before any instance
/// is known, and whether we still send it whitespace tags.
pub struct Peer {
    pub(crate) jid: String,
    pub(crate) conversations: BTreeMap<InstanceTag, Conversation>,
    pending: Option<Pending>,
    /// Until when an Auth-R from a new instance answers our untargeted Identity message
    /// (another device of the peer answered first): we then start a DAKE with it.
    untargeted_until: Option<i64>,
    pub(crate) queue: Vec<Queued>,
    pub(crate) whitespace_tag: bool,
    query_sent_at: Option<i64>,
    reassembler: Reassembler,
    /// Data messages of a first ratchet (ratchet id 0) from instances without a session,
    /// kept until a Non-Interactive-Auth message from that instance arrives (see
    /// docs/spec-notes.md).
    pub(crate) early: Vec<(InstanceTag, Stored)>,
    /// A Non-Interactive-Auth message decoded by [`Peer::receive`], handled by
    /// [`Client::receive`] (it needs our prekey store mutably).
    pub(crate) deferred: Option<Box<NonInteractiveAuth>>,
    /// The fingerprints the caller accepts, by instance ([`Client::expect_fingerprint`]).
    pub(crate) expected: BTreeMap<InstanceTag, Fingerprint>,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("jid", &self.jid)
            .field("conversations", &self.conversations)
            .field("pending_dake", &self.pending.is_some())
            .field("queued", &self.queue.len())
            .field("whitespace_tag", &self.whitespace_tag)
            .field("reassembler", &self.reassembler)
            .field("early", &self.early.len())
            .finish()
    }
}

impl Peer {
    pub(crate) fn new(jid: &str, policy: &Policy) -> Peer {
        Peer {
            jid: String::from(jid),
            conversations: BTreeMap::new(),
            pending: None,
            untargeted_until: None,
            queue: Vec::new(),
            whitespace_tag: policy.send_whitespace_tag,
            query_sent_at: None,
            reassembler: Reassembler::with_timeout(FragmentKind::Otr, policy.fragment_timeout_secs),
            early: Vec::new(),
            deferred: None,
            expected: BTreeMap::new(),
        }
    }

    /// The bare JID.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// The conversation with one instance.
    pub fn conversation(&self, instance: InstanceTag) -> Option<&Conversation> {
        self.conversations.get(&instance)
    }

    /// The known instances, ascending.
    pub fn instances(&self) -> Vec<InstanceTag> {
        self.conversations.keys().copied().collect()
    }

    /// Messages queued before any instance was known.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Whether an untargeted Identity message waits for an Auth-R.
    pub fn awaiting_any_instance(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether plaintext to this peer still carries a whitespace tag.
    pub fn sends_whitespace_tag(&self) -> bool {
        self.whitespace_tag
    }

    fn device_limit(is_self: bool) -> usize {
        if is_self {
            MAX_DEVICES_PER_USER - 1
        } else {
            MAX_DEVICES_PER_USER
        }
    }

    /// Whether a conversation with `tag` exists or may be created.
    pub(crate) fn admit(
        &self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        tag: InstanceTag,
        is_self: bool,
    ) -> bool {
        if self.conversations.contains_key(&tag)
            || self.conversations.len() < Peer::device_limit(is_self)
        {
            return true;
        }
        ctx.error(
            out,
            Some(tag),
            ConversationError::TooManyDevices {
                peer: self.jid.clone(),
                max: MAX_DEVICES_PER_USER,
            },
        );
        false
    }

    pub(crate) fn conv(&mut self, tag: InstanceTag) -> &mut Conversation {
        let expected = self.expected.get(&tag).copied();
        self.conversations.entry(tag).or_insert_with(|| {
            let mut c = Conversation::new(tag);
            c.expected = expected;
            c
        })
    }

    /// Whether any conversation is encrypted or finished (the peer-level state for
    /// plaintext handling).
    fn any_private(&self) -> bool {
        self.conversations
            .values()
            .any(|c| c.is_encrypted() || c.state() == ConversationState::Finished)
    }

    // -----------------------------------------------------------------------------------
    // Receiving.

    fn receive<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        text: &str,
        is_self: bool,
    ) {
        match classify(text) {
            Err(e) => ctx.error(out, None, ConversationError::Malformed(e)),
            Ok(Incoming::Fragment(f)) => {
                let now = u64::try_from(ctx.now).unwrap_or(0);
                match self.reassembler.push_fragment(&f, ctx.our_tag(), now) {
                    Ok(Some(whole)) => self.receive(ctx, out, rng, &whole, is_self),
                    Ok(None) => {}
                    Err(FragmentError::NotForUs { receiver }) => {
                        ctx.warn(out, Some(f.sender), Warning::NotForUs { receiver });
                    }
                    Err(e) => ctx.warn(out, Some(f.sender), Warning::FragmentDiscarded(e)),
                }
            }
            Ok(Incoming::Encoded(bytes)) => self.receive_encoded(ctx, out, rng, &bytes, is_self),
            Ok(Incoming::Query(v)) => self.on_query(ctx, out, rng, v),
            Ok(Incoming::Error(e)) => {
                // otrv4.md §"Receiving an Error Message": display known codes, ignore the
                // rest; never restart anything.
                if let Some(code) = e.code {
                    out.push(Event::PeerError {
                        peer: self.jid.clone(),
                        code,
                        text: String::from(e.text),
                    });
                }
            }
            Ok(Incoming::Plaintext {
                text,
                whitespace_tag,
            }) => self.on_plaintext(ctx, out, rng, &text, whitespace_tag),
        }
    }

    /// otrv4.md §"Receiving a Query Message".
    fn on_query<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        offered: Versions,
    ) {
        let policy = ctx.account.policy;
        if !policy.mode.handles_plaintext() {
            return ctx.warn(out, None, Warning::QueryIgnored);
        }
        if offered.has_v4() && policy.versions.has_v4() {
            self.start_untargeted(ctx, out, rng);
        } else if offered.has_v3() {
            // The OTRv3 seam: a version 3 DAKE would start here.
            ctx.warn(out, None, Warning::Otrv3Unsupported);
        }
    }

    /// otrv4.md §"Receiving plaintext without the whitespace tag" and §"… with the
    /// whitespace tag".
    fn on_plaintext<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        text: &str,
        tag: Option<Versions>,
    ) {
        let policy = ctx.account.policy;
        // "If Alice receives a plaintext message from Bob (rather than an initiation of
        // the AKE or DAKE), she should stop sending him a whitespace tag."
        self.whitespace_tag = false;
        let private = self.any_private();
        if !text.is_empty() {
            out.push(Event::Received {
                from: self.jid.clone(),
                from_instance: None,
                text: String::from(text),
                tlvs: Vec::new(),
                encrypted: false,
            });
            if private {
                ctx.warn(out, None, Warning::UnencryptedWhileEncrypted);
            } else if !policy.allows_plaintext() {
                ctx.warn(out, None, Warning::Unencrypted);
            }
        }
        let Some(offered) = tag else { return };
        if !policy.mode.handles_plaintext() {
            return ctx.warn(out, None, Warning::QueryIgnored);
        }
        if private {
            return;
        }
        if offered.has_v4() && policy.versions.has_v4() {
            if policy.whitespace_start_dake && self.pending.is_none() {
                self.start_untargeted(ctx, out, rng);
            }
        } else if offered.has_v3() {
            // The OTRv3 seam: a version 3 AKE would start here.
            ctx.warn(out, None, Warning::Otrv3Unsupported);
        }
    }

    fn receive_encoded<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        bytes: &[u8],
        is_self: bool,
    ) {
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(e) => return ctx.error(out, None, ConversationError::Malformed(e)),
        };
        if !ctx.account.policy.versions.has_v4() {
            return ctx.warn(out, None, Warning::VersionNotAllowed);
        }
        let (sender, receiver) = match &msg {
            Message::Identity(m) => (m.sender_tag, m.receiver_tag),
            Message::AuthR(m) => (m.sender_tag, m.receiver_tag),
            Message::AuthI(m) => (m.sender_tag, m.receiver_tag),
            Message::Data(m) => (m.sender_tag, m.receiver_tag),
            Message::NonInteractiveAuth(m) => (m.sender_tag, m.receiver_tag),
            Message::Prekey(m) => (m.owner_tag, InstanceTag::UNKNOWN),
        };
        if is_self && sender == ctx.our_tag() {
            // Our own message echoed back to us by the network.
            return;
        }
        // otrv4.md §"Protocol Events": discard a message whose receiver tag is set and is
        // not ours.
        if receiver != InstanceTag::UNKNOWN && receiver != ctx.our_tag() {
            return ctx.warn(out, Some(sender), Warning::NotForUs { receiver });
        }
        match msg {
            Message::Identity(m) => self.on_identity(ctx, out, rng, &m, is_self),
            Message::AuthR(m) => self.on_auth_r(ctx, out, rng, &m, is_self),
            Message::AuthI(m) => self.on_auth_i(ctx, out, rng, &m),
            Message::Data(m) => self.on_data(ctx, out, rng, &m),
            _ if !ctx.account.policy.mode.allows_offline() => {
                // NonInteractiveAuth or Prekey: "a request for an offline conversation".
                ctx.warn(out, Some(sender), Warning::OfflineRejected);
            }
            // Handled by `Client::receive`, which can reach our prekey store.
            Message::NonInteractiveAuth(m) => self.deferred = Some(Box::new(m)),
            // Prekey messages only go to a prekey server.
            Message::Prekey(_) => ctx.error(
                out,
                Some(sender),
                ConversationError::NonInteractiveUnsupported,
            ),
        }
    }

    /// otrv4.md §"Receiving an Identity Message". If we sent an untargeted Identity message
    /// and this instance has no DAKE of its own running, ours is `WAITING_AUTH_R` for it:
    /// the tie-break decides.
    fn on_identity<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        m: &IdentityMessage,
        is_self: bool,
    ) {
        let x = m.sender_tag;
        if let Some(c) = self.conversations.get(&x) {
            if c.is_replayed_identity(m) {
                return ctx.warn(out, Some(x), Warning::ReplayedIdentity);
            }
        }
        let state = self.conversations.get(&x).map(Conversation::state);
        let no_own_dake = !matches!(
            state,
            Some(ConversationState::WaitingAuthR | ConversationState::WaitingAuthI)
        );
        if no_own_dake && self.pending.is_some() {
            if !self.admit(ctx, out, x, is_self) {
                return;
            }
            let local = match ctx.local() {
                Ok(l) => l,
                Err(e) => return ctx.error(out, Some(x), e),
            };
            let Some(Pending { dake, started_at }) = self.pending.take() else {
                return;
            };
            match dake.receive_identity(rng, &local, m, ctx.now) {
                Ok(SimultaneousIdentity::KeepOurs { state, resend }) => {
                    self.pending = Some(Pending {
                        dake: state,
                        started_at,
                    });
                    ctx.send_encoded(out, InstanceTag::UNKNOWN, &resend.encode(), rng);
                }
                Ok(SimultaneousIdentity::BecameResponder { state, auth_r }) => {
                    let conv = self.conv(x);
                    conv.adopt_responder(ctx, out, rng, state, &auth_r, identity_digest(m));
                }
                Err(rejected) => {
                    let (dake, e) = rejected.into_parts();
                    self.pending = Some(Pending { dake, started_at });
                    ctx.warn(out, Some(x), Warning::DakeMessageIgnored(e));
                }
            }
            return;
        }
        if !self.admit(ctx, out, x, is_self) {
            return;
        }
        let created = !self.conversations.contains_key(&x);
        let conv = self.conv(x);
        conv.receive_identity(ctx, out, rng, m);
        if created && conv.state() == ConversationState::Start {
            // Validation failed: keep no state for an unknown instance.
            self.conversations.remove(&x);
        }
    }

    /// otrv4.md §"Receiving an Auth-R Message".
    fn on_auth_r<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        m: &AuthR,
        is_self: bool,
    ) {
        let x = m.sender_tag;
        if let Some(conv) = self.conversations.get_mut(&x) {
            if conv.waits_for_auth_r() {
                if conv.receive_auth_r(ctx, out, rng, m) {
                    self.flush_peer_queue(ctx, out, rng, x);
                }
                return;
            }
        }
        if self.pending.is_some() {
            if !self.admit(ctx, out, x, is_self) {
                return;
            }
            let local = match ctx.local() {
                Ok(l) => l,
                Err(e) => return ctx.error(out, Some(x), e),
            };
            let Some(Pending { dake, started_at }) = self.pending.take() else {
                return;
            };
            let identity = identity_digest(dake.identity_message());
            match dake.receive_auth_r(rng, &local, m, ctx.now) {
                Ok((done, auth_i)) => {
                    ctx.send_encoded(out, x, &auth_i.encode(), rng);
                    let conv = self.conv(x);
                    if conv.establish(ctx, out, rng, done, identity) {
                        self.flush_peer_queue(ctx, out, rng, x);
                        self.untargeted_until =
                            Some(ctx.now.saturating_add(ctx.account.policy.dake_timeout_secs));
                    }
                }
                Err(rejected) => {
                    let (dake, e) = rejected.into_parts();
                    self.pending = Some(Pending { dake, started_at });
                    ctx.warn(out, Some(x), Warning::DakeMessageIgnored(e));
                }
            }
            return;
        }
        let fresh = self.conversations.get(&x).is_none_or(|c| {
            matches!(
                c.state(),
                ConversationState::Start | ConversationState::Finished
            )
        });
        if fresh && self.untargeted_until.is_some_and(|t| ctx.now < t) {
            // Another device of the peer answered our untargeted Identity message first:
            // run a DAKE with this one too.
            if self.admit(ctx, out, x, is_self) {
                self.conv(x).start_dake(ctx, out, rng);
            }
            return;
        }
        ctx.warn(out, Some(x), Warning::UnexpectedDakeMessage("Auth-R"));
    }

    /// otrv4.md §"Receiving an Auth-I Message".
    fn on_auth_i<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        m: &AuthI,
    ) {
        let x = m.sender_tag;
        match self.conversations.get_mut(&x) {
            Some(conv) => {
                if conv.receive_auth_i(ctx, out, rng, m) {
                    self.flush_peer_queue(ctx, out, rng, x);
                }
            }
            None => ctx.warn(out, Some(x), Warning::UnexpectedDakeMessage("Auth-I")),
        }
    }

    /// otrv4.md §"Receiving a Data Message".
    fn on_data<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        m: &DataMessage,
    ) {
        let x = m.sender_tag;
        if m.receiver_tag != ctx.our_tag() {
            return ctx.warn(
                out,
                Some(x),
                Warning::NotForUs {
                    receiver: m.receiver_tag,
                },
            );
        }
        // The first ratchet of an offline session may arrive before its
        // Non-Interactive-Auth message: kept at the peer (no conversation is created).
        let early = m.i == 0
            && ctx.account.policy.mode.allows_offline()
            && self
                .conversations
                .get(&x)
                .is_none_or(|c| c.live().is_none() && c.state() != ConversationState::WaitingAuthI);
        if early {
            return self.store_early(ctx, out, m);
        }
        match self.conversations.get_mut(&x) {
            Some(conv) => conv.receive_data(ctx, out, rng, m, false),
            // IGNORE_UNREADABLE: no error message and no notification.
            None if m.flags & FLAG_IGNORE_UNREADABLE != 0 => {}
            None => {
                ctx.send_text(out, Some(x), build_error(ErrorCode::NotInPrivateState));
                ctx.error(out, Some(x), ConversationError::NotInPrivateState);
            }
        }
    }

    pub(crate) fn flush_peer_queue<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        tag: InstanceTag,
    ) {
        let queued = core::mem::take(&mut self.queue);
        self.query_sent_at = None;
        if let Some(conv) = self.conversations.get_mut(&tag) {
            conv.flush(ctx, out, rng, queued);
        }
    }

    // -----------------------------------------------------------------------------------
    // Starting.

    /// Sends an Identity message without a receiver instance tag.
    fn start_untargeted<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
    ) {
        let local = match ctx.local() {
            Ok(l) => l,
            Err(e) => return ctx.error(out, None, e),
        };
        let (dake, identity) = dake::start(rng, &local, InstanceTag::UNKNOWN);
        self.pending = Some(Pending {
            dake,
            started_at: ctx.now,
        });
        self.untargeted_until = None;
        ctx.send_encoded(out, InstanceTag::UNKNOWN, &identity.encode(), rng);
    }

    fn send_query(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Event>) {
        self.query_sent_at = Some(ctx.now);
        ctx.send_text(out, None, build_query(Versions::V4));
    }

    /// Starts a DAKE for a queued message unless one is under way.
    fn begin_dake<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        instance: Option<InstanceTag>,
    ) {
        if ctx.account.policy.mode.handles_plaintext() {
            if self.query_sent_at.is_none() {
                self.send_query(ctx, out);
            }
            return;
        }
        match instance {
            Some(tag) => self.conv(tag).start_dake(ctx, out, rng),
            None if self.pending.is_none() => self.start_untargeted(ctx, out, rng),
            None => {}
        }
    }

    fn start<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
    ) {
        let encrypted: Vec<InstanceTag> = self
            .conversations
            .iter()
            .filter(|(_, c)| c.is_encrypted())
            .map(|(t, _)| *t)
            .collect();
        if !encrypted.is_empty() {
            // Query messages are not allowed in ENCRYPTED_MESSAGES: refresh each session
            // with a new DAKE instead (the sessions stay live meanwhile).
            for t in encrypted {
                self.conv(t).start_dake(ctx, out, rng);
            }
        } else if ctx.account.policy.mode.handles_plaintext() {
            self.send_query(ctx, out);
        } else {
            self.start_untargeted(ctx, out, rng);
        }
    }

    // -----------------------------------------------------------------------------------
    // Sending.

    fn rank(c: &Conversation) -> u8 {
        if c.is_encrypted() {
            return 4;
        }
        match c.state() {
            ConversationState::WaitingAuthR | ConversationState::WaitingAuthI => 3,
            ConversationState::Finished => 2,
            ConversationState::Start | ConversationState::Encrypted => 1,
        }
    }

    /// The instances a message goes to under `selection`.
    fn select(&self, selection: Selection) -> Vec<InstanceTag> {
        type Key = (u8, Option<i64>, Option<i64>);
        let pick = |key: fn(&Conversation) -> Key| {
            self.conversations
                .iter()
                .max_by_key(|(t, c)| (key(c), **t))
                .map(|(t, _)| *t)
        };
        let chosen = match selection {
            Selection::Multicasting => return self.instances(),
            Selection::Best => pick(|c| (Peer::rank(c), c.last_received, c.last_sent)),
            Selection::Recent => pick(|c| (0, c.last_sent.max(c.last_received), None)),
            Selection::RecentReceived => pick(|c| (0, c.last_received, c.last_sent)),
            Selection::RecentSent => pick(|c| (0, c.last_sent, c.last_received)),
        };
        chosen.into_iter().collect()
    }

    fn send_plaintext(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Event>, text: &str) {
        let policy = ctx.account.policy;
        let text = if policy.send_whitespace_tag && self.whitespace_tag && policy.versions.has_v4()
        {
            tag_message(text, Versions::V4)
        } else {
            String::from(text)
        };
        ctx.send_text(out, None, text);
    }

    /// otrv4.md §"Sending a Data Message", for one instance.
    fn send_to_instance<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        tag: InstanceTag,
        text: &str,
        tlvs: &[Tlv],
    ) {
        let policy = ctx.account.policy;
        let Some(conv) = self.conversations.get_mut(&tag) else {
            return ctx.error(out, Some(tag), ConversationError::NoSuchConversation(tag));
        };
        if conv.is_encrypted() {
            conv.send_user(ctx, out, rng, text, tlvs);
            return;
        }
        match conv.state() {
            ConversationState::Finished => {
                ctx.not_sent(out, Some(tag), text, NotSentReason::Finished);
            }
            ConversationState::WaitingAuthR | ConversationState::WaitingAuthI => {
                conv.queue(ctx, out, text, tlvs);
            }
            ConversationState::Start | ConversationState::Encrypted => {
                if policy.allows_plaintext() {
                    self.send_plaintext(ctx, out, text);
                } else if !policy.versions.has_v4() {
                    ctx.not_sent(out, Some(tag), text, NotSentReason::EncryptionUnavailable);
                } else {
                    conv.queue(ctx, out, text, tlvs);
                    self.begin_dake(ctx, out, rng, Some(tag));
                }
            }
        }
    }

    /// Sending when no instance is known.
    fn send_any<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        text: &str,
        tlvs: &[Tlv],
    ) {
        let policy = ctx.account.policy;
        if policy.allows_plaintext() {
            return self.send_plaintext(ctx, out, text);
        }
        if !policy.versions.has_v4() {
            return ctx.not_sent(out, None, text, NotSentReason::EncryptionUnavailable);
        }
        if self.queue.len() >= policy.max_queued_messages {
            return ctx.not_sent(out, None, text, NotSentReason::QueueFull);
        }
        self.queue.push(Queued {
            text: String::from(text),
            tlvs: tlvs.to_vec(),
        });
        ctx.not_sent(out, None, text, NotSentReason::Queued);
        self.begin_dake(ctx, out, rng, None);
    }

    fn end<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        instance: Option<InstanceTag>,
    ) {
        match instance {
            Some(tag) => match self.conversations.get_mut(&tag) {
                Some(c) => c.end(ctx, out, rng),
                None => ctx.error(out, Some(tag), ConversationError::NoSuchConversation(tag)),
            },
            None => {
                for c in self.conversations.values_mut() {
                    c.end(ctx, out, rng);
                }
                self.pending = None;
                self.untargeted_until = None;
                self.query_sent_at = None;
                for q in core::mem::take(&mut self.queue) {
                    ctx.not_sent(out, None, &q.text, NotSentReason::Discarded);
                }
            }
        }
    }

    fn tick<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
    ) {
        let policy = ctx.account.policy;
        self.reassembler.expire(u64::try_from(ctx.now).unwrap_or(0));
        let timed_out = |t: i64| {
            policy.dake_timeout_secs > 0 && ctx.now.saturating_sub(t) >= policy.dake_timeout_secs
        };
        if self
            .pending
            .as_ref()
            .is_some_and(|p| timed_out(p.started_at))
        {
            self.pending = None;
            ctx.warn(out, None, Warning::DakeTimedOut);
        }
        if self.untargeted_until.is_some_and(|t| ctx.now >= t) {
            self.untargeted_until = None;
        }
        if self.query_sent_at.is_some_and(timed_out) {
            self.query_sent_at = None;
        }
        // Early data messages whose Non-Interactive-Auth message never came: unreadable
        // after all, so `ERROR_2` now (otrv4.md §"Receiving a Data Message").
        let (expired, kept): (Vec<_>, Vec<_>) = core::mem::take(&mut self.early)
            .into_iter()
            .partition(|(_, s)| ctx.now.saturating_sub(s.at) >= policy.stored_message_secs);
        self.early = kept;
        if !expired.is_empty() {
            ctx.warn(out, None, Warning::StoredMessagesExpired(expired.len()));
        }
        for (tag, s) in expired {
            if s.msg.flags & FLAG_IGNORE_UNREADABLE == 0 {
                ctx.send_text(out, Some(tag), build_error(ErrorCode::NotInPrivateState));
                ctx.error(out, Some(tag), ConversationError::NotInPrivateState);
            }
        }
        for c in self.conversations.values_mut() {
            c.tick(ctx, out, rng);
        }
    }
}

/// A local account and its correspondents: the sans-IO entry point of the protocol.
///
/// Every method takes the current time `now` (seconds since the Unix epoch) and an RNG,
/// and returns the [`Event`]s to act on, in order. Nothing inside reads a clock, a socket
/// or a global RNG. Call [`Client::tick`] regularly (e.g. every few seconds) for
/// heartbeats, session expiry and timeouts.
pub struct Client {
    pub(crate) account: Account,
    pub(crate) own_jid: String,
    pub(crate) peers: BTreeMap<String, Peer>,
    /// The prekey server we publish to and retrieve from (not persisted).
    pub(crate) prekey_link: Option<PrekeyLink>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("own_jid", &self.own_jid)
            .field("account", &self.account)
            .field("peers", &self.peers)
            .field("prekey_link", &self.prekey_link)
            .finish()
    }
}

/// Runs `f` on the peer `jid` (created if new) with a context for it.
pub(crate) fn with_peer<T>(
    client: &mut Client,
    jid: &str,
    now: i64,
    f: impl FnOnce(&mut Peer, &Ctx<'_>, bool) -> T,
) -> T {
    let Client {
        account,
        own_jid,
        peers,
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
        }
    }

    /// The account.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// Replaces the policy (checked).
    pub fn set_policy(&mut self, policy: Policy) -> Result<(), ConversationError> {
        self.account.set_policy(policy)
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
    /// ([`NotSentReason::KeyNotAccepted`]), SMP and extra symmetric keys are refused
    /// ([`ConversationError::KeyNotAccepted`]), and an offline start skips a prekey
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
    /// (including a Non-Interactive-Auth message starting an offline conversation), a
    /// query message, an error message or plaintext (otrv4.md §"Protocol Events").
    pub fn receive<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        from: &str,
        text: &str,
        now: i64,
        rng: &mut R,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        let deferred = with_peer(self, from, now, |p, ctx, is_self| {
            p.receive(ctx, &mut out, rng, text, is_self);
            p.deferred.take()
        });
        if let Some(m) = deferred {
            self.receive_non_interactive_auth(from, &m, now, rng, &mut out);
        }
        out
    }

    /// The user asks for a private conversation (otrv4.md §"User requests to start an OTR
    /// conversation"): in [`super::Mode::Otrv3Compatible`] a query message; in the standalone modes
    /// an Identity message without a receiver tag (otrv4.md §"Starting a conversation
    /// interactively"). Encrypted sessions with the peer are refreshed by a new DAKE instead.
    pub fn start<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        peer: &str,
        now: i64,
        rng: &mut R,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        with_peer(self, peer, now, |p, ctx, _| {
            if !ctx.account.policy.versions.has_v4() {
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
        self.with_conversation(peer, instance, now, rng, |c, ctx, out, rng| {
            c.smp_start(ctx, out, rng, secret, question);
        })
    }

    /// The user answers the peer's SMP question (after [`super::SmpUpdate::AskForSecret`]).
    pub fn smp_respond<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        peer: &str,
        instance: InstanceTag,
        secret: &[u8],
        now: i64,
        rng: &mut R,
    ) -> Vec<Event> {
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
    /// sends heartbeats, and deletes previous Client Profiles and shared prekeys past their
    /// extra validity (otrv4.md §"Publishing Prekey Ensembles").
    pub fn tick<R: rand_core::CryptoRng + ?Sized>(&mut self, now: i64, rng: &mut R) -> Vec<Event> {
        let mut out = Vec::new();
        let jids: Vec<String> = self.peers.keys().cloned().collect();
        for jid in jids {
            with_peer(self, &jid, now, |p, ctx, _| p.tick(ctx, &mut out, rng));
        }
        self.account.refresh_profile(now);
        self.account.offline.expire(now);
        out
    }
}
