//! One correspondent (bare JID) and its instances (otrv4.md §"Instance Tags",
//! §"Considerations for Networks that allow Multiple Clients"): the [`Peer`] holds one
//! [`Conversation`] per instance, the untargeted DAKE, the peer-level queue and early data
//! messages, and chooses the instance(s) a message goes to (multicasting included).
//!
//! Incoming messages are routed in `incoming`; the offline start is in `offline`.

use crate::debug::redacted_debug;
use crate::wire::codec::{Codec, Reader, Writer};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::InstanceTag;
use crate::crypto::fingerprint::Fingerprint;
use crate::dake::{self, WaitingAuthR};
use crate::ratchet::SecretBytes;
use crate::wire::error_msg::{ErrorCode, build_error};
use crate::wire::fragment::{FragmentKind, Reassembler};
use crate::wire::messages::{DataMessage, FLAG_IGNORE_UNREADABLE, KeyMemo};
use crate::wire::query::{build_query, tag_message};
use crate::wire::tlv::Tlv;

use super::context::{Ctx, Queued, Stored};
use super::events::{ConversationError, ConversationState, Event, NotSentReason, Warning};
use super::persisted::{
    Persist, PersistError, persist_all, read_flag, read_string, restore_all, u32_of,
};
use super::policy::{Policy, Selection};
use super::state::Conversation;
#[cfg(feature = "v3")]
use super::v3::V3Link;

/// Our Identity message sent to a bare JID without a receiver instance tag (after a query
/// message or whitespace tag, or in the standalone modes): `WAITING_AUTH_R` for whichever
/// instance answers first.
pub(crate) struct Pending {
    pub(crate) dake: WaitingAuthR,
    pub(crate) started_at: i64,
}

/// Everything about one correspondent (bare JID): its conversations by instance tag, the
/// reassembler of its fragments, the untargeted DAKE, messages queued before any instance
/// is known, and whether we still send it whitespace tags.
pub struct Peer {
    pub(crate) jid: String,
    pub(crate) conversations: BTreeMap<InstanceTag, Conversation>,
    pub(crate) pending: Option<Pending>,
    /// Until when an Auth-R from a new instance answers our untargeted Identity message
    /// (another device of the peer answered first): we then start a DAKE with it.
    pub(crate) untargeted_until: Option<i64>,
    pub(crate) queue: Vec<Queued>,
    pub(crate) whitespace_tag: bool,
    pub(crate) query_sent_at: Option<i64>,
    pub(crate) reassembler: Reassembler,
    /// Data messages of a first ratchet (ratchet id 0) from instances without a session,
    /// kept until a Non-Interactive-Auth message from that instance arrives (see
    /// docs/spec-notes.md).
    pub(crate) early: Vec<(InstanceTag, Stored)>,
    /// The fingerprints the caller accepts, by instance
    /// ([`super::client::Client::expect_fingerprint`]).
    pub(crate) expected: BTreeMap<InstanceTag, Fingerprint>,
    /// The keys of its latest Data messages, already validated (not persisted).
    pub(crate) key_memo: KeyMemo,
    /// The OTRv3 conversation of the compatible mode (not persisted).
    #[cfg(feature = "v3")]
    pub(crate) v3: V3Link,
}

redacted_debug!(Peer {
    jid,
    conversations,
    pending_dake = |s| s.pending.is_some(),
    queued = |s| s.queue.len(),
    whitespace_tag,
    reassembler,
    early: len
});

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
            expected: BTreeMap::new(),
            key_memo: KeyMemo::default(),
            #[cfg(feature = "v3")]
            v3: V3Link::default(),
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

    /// The OTRv3 session's state (otrv4.md §"OTRv3 Protocol State Machine", `msgstate`):
    /// `Start` (plaintext), `Encrypted` or `Finished`, and the peer instance it is with. A
    /// v3 session is announced by [`Event::SecureV3`]; while it is encrypted and no OTRv4
    /// session is, [`super::Client::send`] uses it.
    #[cfg(feature = "v3")]
    pub fn v3_session(&self) -> (ConversationState, Option<InstanceTag>) {
        (self.v3.state(), self.v3.instance())
    }

    /// The fingerprint of the peer's OTRv3 key while the OTRv3 session is encrypted (what
    /// [`Event::SecureV3`] announced).
    #[cfg(feature = "v3")]
    pub fn v3_fingerprint(&self) -> Option<crate::otrv3::V3Fingerprint> {
        self.v3.their_fingerprint()
    }

    /// Whether plaintext to this peer still carries a whitespace tag.
    pub fn sends_whitespace_tag(&self) -> bool {
        self.whitespace_tag
    }

    /// How many instances this peer may have: the client's limit, one less for our own
    /// bare JID (the limit counts us).
    fn device_limit(ctx: &Ctx<'_>, is_self: bool) -> usize {
        if is_self {
            ctx.max_instances.saturating_sub(1)
        } else {
            ctx.max_instances
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
            || self.conversations.len() < Peer::device_limit(ctx, is_self)
        {
            return true;
        }
        ctx.error(
            out,
            Some(tag),
            ConversationError::TooManyDevices {
                peer: self.jid.clone(),
                max: ctx.max_instances,
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
    pub(crate) fn any_private(&self) -> bool {
        #[cfg(feature = "v3")]
        if self.v3.is_private() {
            return true;
        }
        self.conversations
            .values()
            .any(|c| c.is_encrypted() || c.state() == ConversationState::Finished)
    }

    /// Whether messages go to the OTRv3 session: it is encrypted or finished and no OTRv4
    /// session is encrypted (OTRv4 is preferred whenever both exist).
    #[cfg(feature = "v3")]
    pub(crate) fn v3_takes_sends(&self) -> bool {
        self.v3.is_private() && !self.conversations.values().any(Conversation::is_encrypted)
    }

    /// Whether `tag` names the OTRv3 session's instance and no OTRv4 conversation.
    #[cfg(feature = "v3")]
    pub(crate) fn is_v3_instance(&self, tag: InstanceTag) -> bool {
        self.v3.instance() == Some(tag) && !self.conversations.contains_key(&tag)
    }

    /// The OTRv3 session became encrypted: the messages queued for the peer go to it.
    #[cfg(feature = "v3")]
    pub(crate) fn flush_to_v3(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Event>) {
        let queued = core::mem::take(&mut self.queue);
        self.query_sent_at = None;
        self.v3.flush(ctx, out, queued);
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

    /// Keeps a data message of a first ratchet from an instance without a session until
    /// a Non-Interactive-Auth message from it arrives (bounded by
    /// `Policy::max_stored_messages` per peer, expired by `tick`).
    pub(crate) fn store_early(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Event>, msg: &DataMessage) {
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
            Stored {
                msg: msg.clone(),
                at: ctx.now,
            },
        ));
    }

    /// Sends an Identity message without a receiver instance tag.
    pub(crate) fn start_untargeted<R: rand_core::CryptoRng + ?Sized>(
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
        ctx.send_text(out, None, build_query(ctx.account.offered_versions()));
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

    pub(crate) fn start<R: rand_core::CryptoRng + ?Sized>(
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
        #[cfg(feature = "v3")]
        if encrypted.is_empty()
            && self.v3.state() == ConversationState::Encrypted
            && ctx.account.v3_usable().is_some()
        {
            // Refresh the OTRv3 session with a new AKE (it stays live meanwhile).
            return self.v3.start_ake(ctx, out, rng);
        }
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
    pub(crate) fn select(&self, selection: Selection) -> Vec<InstanceTag> {
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
        let offered = ctx.account.offered_versions();
        let text = if policy.send_whitespace_tag && self.whitespace_tag && !offered.is_empty() {
            tag_message(text, offered)
        } else {
            String::from(text)
        };
        ctx.send_text(out, None, text);
    }

    /// otrv4.md §"Sending a Data Message", for one instance.
    pub(crate) fn send_to_instance<R: rand_core::CryptoRng + ?Sized>(
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
    pub(crate) fn send_any<R: rand_core::CryptoRng + ?Sized>(
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

    pub(crate) fn end<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        instance: Option<InstanceTag>,
    ) {
        match instance {
            #[cfg(feature = "v3")]
            Some(tag) if self.is_v3_instance(tag) => self.v3.end(ctx, out),
            Some(tag) => match self.conversations.get_mut(&tag) {
                Some(c) => c.end(ctx, out, rng),
                None => ctx.error(out, Some(tag), ConversationError::NoSuchConversation(tag)),
            },
            None => {
                for c in self.conversations.values_mut() {
                    c.end(ctx, out, rng);
                }
                #[cfg(feature = "v3")]
                self.v3.end(ctx, out);
                self.pending = None;
                self.untargeted_until = None;
                self.query_sent_at = None;
                for q in core::mem::take(&mut self.queue) {
                    ctx.not_sent(out, None, &q.text, NotSentReason::Discarded);
                }
            }
        }
    }

    pub(crate) fn tick<R: rand_core::CryptoRng + ?Sized>(
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
        #[cfg(feature = "v3")]
        self.v3.tick(ctx, out);
    }
}

/// `DATA(bare JID) || whitespace-tag BYTE || queue || INT count || conversations`. The
/// context is our instance tag and the account's policy (for what a new peer starts with);
/// two conversations with one instance are rejected. The untargeted DAKE, partial fragments
/// and early data messages are not written.
impl Persist for Peer {
    type Context<'a> = (InstanceTag, &'a Policy);

    fn persist(&self, w: &mut SecretBytes, version: u16) {
        w.data(self.jid.as_bytes());
        w.u8(u8::from(self.whitespace_tag));
        persist_all(w, &self.queue, version);
        w.u32(u32_of(self.conversations.len()));
        for c in self.conversations.values() {
            c.persist(w, version);
        }
    }

    fn restore(
        r: &mut Reader<'_>,
        version: u16,
        (our_tag, policy): (InstanceTag, &Policy),
    ) -> Result<Peer, PersistError> {
        let jid = read_string(r, "peer JID")?;
        let mut peer = Peer::new(&jid, policy);
        peer.whitespace_tag = read_flag(r, "whitespace tag")?;
        peer.queue = restore_all(r, version, (), "queue length")?;
        let k = r.u32("conversation count")?;
        for _ in 0..k {
            let c = Conversation::restore(r, version, our_tag)?;
            if peer.conversations.insert(c.their_tag, c).is_some() {
                return Err(PersistError::Invalid("duplicate instance"));
            }
        }
        Ok(peer)
    }
}
