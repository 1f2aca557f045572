//! The incoming path (otrv4.md §"Protocol Events", §"Receiving Messages"): text from a
//! peer is classified (fragment, encoded message, query, error, plaintext), decoded,
//! checked (version, receiver tag, device limit) and handed to the [`Conversation`] of its
//! sender instance, or to the peer's untargeted DAKE; a Non-Interactive-Auth message is
//! verified against the caller's [`PrekeyStore`] here too. Wire → validate → state → events.

use crate::wire::codec::Codec;
use alloc::string::String;
use alloc::vec::Vec;

use crate::InstanceTag;
use crate::dake::SimultaneousIdentity;
use crate::dake::non_interactive::{NonInteractiveComplete, receive_non_interactive_auth};
use crate::prekey::PrekeyStore;
use crate::wire::encoded::{Incoming, classify};
use crate::wire::error_msg::{ErrorCode, build_error};
use crate::wire::fragment::FragmentError;
use crate::wire::messages::{
    AuthI, AuthR, DataMessage, FLAG_IGNORE_UNREADABLE, IdentityMessage, Message, NonInteractiveAuth,
};
use crate::wire::query::Versions;

use super::account::PROFILE_EXTRA_VALIDITY_SECS;
use super::context::Ctx;
use super::events::{ConversationError, ConversationState, Event, Warning};
use super::peer::{Peer, Pending};
use super::session::{IDENTITY_DIGEST_LEN, identity_digest, non_interactive_digest};
use super::state::Conversation;
#[cfg(feature = "v3")]
use super::v3::is_v3_message;
#[cfg(feature = "v3")]
use crate::v3::fragment::V3Fragment;
#[cfg(feature = "v3")]
use crate::wire::fragment::FragmentKind;

impl Peer {
    /// A message from this peer: `prekeys` is the caller's prekey store, which a
    /// Non-Interactive-Auth message is verified against.
    pub(crate) fn receive<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        prekeys: &mut PrekeyStore,
        text: &str,
        is_self: bool,
    ) {
        // An OTRv3 fragment (`?OTR|sender|receiver,k,n,piece,`) has no identifier, so the
        // strict OTRv4 parser refuses it: try it first (the two layouts never both match).
        #[cfg(feature = "v3")]
        if text.starts_with(FragmentKind::Otr.prefix())
            && let Ok(f) = V3Fragment::parse(text)
        {
            if let Some(whole) = self.v3.push_fragment(ctx, &f) {
                self.receive(ctx, out, rng, prekeys, &whole, is_self);
            }
            return;
        }
        match classify(text) {
            Err(e) => ctx.error(out, None, ConversationError::Malformed(e)),
            Ok(Incoming::Fragment(f)) => {
                let now = u64::try_from(ctx.now).unwrap_or(0);
                match self.reassembler.push_fragment(&f, ctx.our_tag(), now) {
                    Ok(Some(whole)) => self.receive(ctx, out, rng, prekeys, &whole, is_self),
                    Ok(None) => {}
                    Err(FragmentError::NotForUs { receiver }) => {
                        ctx.warn(out, Some(f.sender), Warning::NotForUs { receiver });
                    }
                    Err(e) => ctx.warn(out, Some(f.sender), Warning::FragmentDiscarded(e)),
                }
            }
            Ok(Incoming::Encoded(bytes)) => {
                self.receive_encoded(ctx, out, rng, prekeys, &bytes, is_self);
            }
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
            self.start_v3(ctx, out, rng);
        }
    }

    /// The peer offered only OTR version 3 (otrv4.md §"Receiving a Query Message", "…
    /// with the whitespace tag"): a v3 D-H Commit if version 3 is usable, else a warning.
    fn start_v3<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
    ) {
        #[cfg(feature = "v3")]
        if ctx.account.v3_usable().is_some() {
            return self.v3.start_ake(ctx, out, rng);
        }
        let _ = rng;
        ctx.warn(out, None, Warning::Otrv3Unsupported);
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
        } else if offered.has_v3() && policy.whitespace_start_dake {
            // "if WHITESPACE_START_AKE is set: Send a version 3 D-H Commit Message."
            self.start_v3(ctx, out, rng);
        }
    }

    fn receive_encoded<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        prekeys: &mut PrekeyStore,
        bytes: &[u8],
        is_self: bool,
    ) {
        #[cfg(feature = "v3")]
        if is_v3_message(bytes) {
            if self.v3.receive(ctx, out, rng, bytes) {
                // "If there is a recent stored message, encrypt it and send it."
                self.flush_to_v3(ctx, out);
            }
            return;
        }
        let msg = match Message::decode_memo(bytes, &mut self.key_memo) {
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
            Message::NonInteractiveAuth(m) => {
                self.on_non_interactive_auth(ctx, out, rng, prekeys, &m, is_self);
            }
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
        if let Some(c) = self.conversations.get(&x)
            && c.is_replayed_identity(m)
        {
            return ctx.warn(out, Some(x), Warning::ReplayedIdentity);
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
        if let Some(conv) = self.conversations.get_mut(&x)
            && conv.waits_for_auth_r()
        {
            if conv.receive_auth_r(ctx, out, rng, m) {
                self.flush_peer_queue(ctx, out, rng, x);
            }
            return;
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

    /// otrv4.md §"Receiving a Non-Interactive-Auth Message" (the receiver tag was checked
    /// above): verified against `prekeys` and our Client Profiles (current and previous);
    /// on success the prekey secrets are gone from `prekeys` and the conversation is
    /// `ENCRYPTED_MESSAGES`, on failure nothing changed
    /// ([`Warning::NonInteractiveAuthIgnored`]).
    fn on_non_interactive_auth<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        prekeys: &mut PrekeyStore,
        msg: &NonInteractiveAuth,
        is_self: bool,
    ) {
        let x = msg.sender_tag;
        if !self.admit(ctx, out, x, is_self) {
            return;
        }
        prekeys.expire_shared_prekeys(ctx.now, PROFILE_EXTRA_VALIDITY_SECS);
        let result = receive_non_interactive_auth(
            msg,
            &ctx.account.long_term,
            &ctx.account.our_profiles(),
            prekeys,
            ctx.phi,
            ctx.now,
        );
        match result {
            Ok(done) => {
                let digest = non_interactive_digest(msg);
                self.accept_non_interactive(ctx, out, rng, x, done, digest);
            }
            Err(e) => ctx.warn(out, Some(x), Warning::NonInteractiveAuthIgnored(e)),
        }
    }

    /// Installs the session of a verified Non-Interactive-Auth message from `x`, with the
    /// early data messages kept from it.
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
