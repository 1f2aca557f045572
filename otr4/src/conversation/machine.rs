//! The per-instance protocol state machine (otrv4.md §"The Protocol State Machine"):
//! `START`, `WAITING_AUTH_R`, `WAITING_AUTH_I`, `ENCRYPTED_MESSAGES`, `FINISHED`.
//!
//! One [`Conversation`] per peer instance tag. The DAKE states hold the typed states of
//! [`crate::dake`]; `ENCRYPTED_MESSAGES` holds a [`Session`] built from a
//! [`crate::dake::DakeComplete`]. While a new DAKE runs over an encrypted session, the
//! old session stays live (see docs/spec-notes.md).

use crate::wire::codec::Codec;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use zeroize::Zeroize;

use crate::InstanceTag;
use crate::crypto::fingerprint::Fingerprint;
use crate::dake::{
    self, DakeComplete, LocalParty, PhiPrime, SimultaneousIdentity, WaitingAuthI, WaitingAuthR,
};
use crate::ratchet::{Decrypted, ExtraSymmetricKey};
use crate::smp::{SmpEvent, SmpState};
use crate::wire::encoded::encode_otr;
use crate::wire::error_msg::{ErrorCode, build_error};
use crate::wire::fragment::{FragmentKind, fragment};
use crate::wire::messages::{AuthI, AuthR, DataMessage, FLAG_IGNORE_UNREADABLE, IdentityMessage};
use crate::wire::tlv::{Tlv, TlvType, parse_plaintext};

use super::session::{IDENTITY_DIGEST_LEN, Session, identity_digest};
use super::{
    Account, ConversationError, ConversationState, DisconnectReason, Event, NotSentReason,
    SmpUpdate, Warning,
};

/// How many completed DAKEs' Identity messages a conversation remembers to ignore replays.
pub const MAX_REMEMBERED_IDENTITIES: usize = 8;

/// What every step needs: our account, `phi'`, the peer's bare JID and the time.
pub(crate) struct Ctx<'a> {
    pub(crate) account: &'a Account,
    pub(crate) phi: &'a PhiPrime,
    pub(crate) peer: &'a str,
    pub(crate) now: i64,
}

impl Ctx<'_> {
    pub(crate) fn local(&self) -> Result<LocalParty<'_>, ConversationError> {
        LocalParty::new(&self.account.long_term, &self.account.profile, self.phi)
            .map_err(ConversationError::Dake)
    }

    pub(crate) fn our_tag(&self) -> InstanceTag {
        self.account.instance_tag
    }

    pub(crate) fn warn(&self, out: &mut Vec<Event>, instance: Option<InstanceTag>, w: Warning) {
        out.push(Event::Warning {
            peer: String::from(self.peer),
            instance,
            warning: w,
        });
    }

    pub(crate) fn error(
        &self,
        out: &mut Vec<Event>,
        instance: Option<InstanceTag>,
        error: ConversationError,
    ) {
        out.push(Event::Error {
            peer: String::from(self.peer),
            instance,
            error,
        });
    }

    pub(crate) fn send_text(
        &self,
        out: &mut Vec<Event>,
        to_instance: Option<InstanceTag>,
        text: String,
    ) {
        out.push(Event::Send {
            to: String::from(self.peer),
            to_instance,
            text,
        });
    }

    pub(crate) fn not_sent(
        &self,
        out: &mut Vec<Event>,
        instance: Option<InstanceTag>,
        text: &str,
        reason: NotSentReason,
    ) {
        out.push(Event::NotSent {
            peer: String::from(self.peer),
            instance,
            text: String::from(text),
            reason,
        });
    }

    /// Encodes a binary OTR message as `?OTR:…​.` and, if longer than
    /// `Policy::max_message_size`, splits it into fragments (otrv4.md §"Transmitting
    /// Fragments") with a random identifier; each piece is one [`Event::Send`].
    pub(crate) fn send_encoded<R: rand_core::CryptoRng + ?Sized>(
        &self,
        out: &mut Vec<Event>,
        to: InstanceTag,
        bytes: &[u8],
        rng: &mut R,
    ) {
        let text = encode_otr(bytes);
        let max = self.account.policy.max_message_size;
        let to_instance = (to != InstanceTag::UNKNOWN).then_some(to);
        if max == 0 || text.len() <= max {
            self.send_text(out, to_instance, text);
            return;
        }
        match fragment(
            &text,
            max,
            rng.next_u32(),
            self.our_tag(),
            to,
            FragmentKind::Otr,
        ) {
            Ok(pieces) => {
                for p in pieces {
                    self.send_text(out, to_instance, p);
                }
            }
            Err(e) => self.error(out, to_instance, ConversationError::Fragment(e)),
        }
    }
}

/// A user message waiting for an encrypted session. The text and TLV values are wiped on
/// drop.
pub(crate) struct Queued {
    pub(crate) text: String,
    pub(crate) tlvs: Vec<Tlv>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.text.zeroize();
        for t in &mut self.tlvs {
            t.value.zeroize();
        }
    }
}

/// A data message that arrived before the DAKE completed (otrv4.md §"Receiving a Data
/// Message": "store this message for a configurable, short amount of time").
pub(crate) struct Stored {
    pub(crate) msg: DataMessage,
    pub(crate) at: i64,
}

/// The protocol state with what each state holds.
pub(crate) enum Phase {
    /// `START`.
    Start,
    /// `WAITING_AUTH_R`; `live` is an encrypted session that continues meanwhile.
    WaitingAuthR {
        dake: WaitingAuthR,
        live: Option<Box<Session>>,
    },
    /// `WAITING_AUTH_I`; `identity` is the digest of the Identity message we answered.
    WaitingAuthI {
        dake: WaitingAuthI,
        live: Option<Box<Session>>,
        identity: [u8; IDENTITY_DIGEST_LEN],
    },
    /// `ENCRYPTED_MESSAGES`.
    Encrypted(Box<Session>),
    /// `FINISHED`.
    Finished,
}

/// The conversation with one instance of a peer (otrv4.md §"The Protocol State Machine":
/// "separate state for every correspondent", per instance tag). Created and driven by
/// [`super::Client`]; read its state here.
pub struct Conversation {
    pub(crate) their_tag: InstanceTag,
    pub(crate) phase: Phase,
    pub(crate) queue: Vec<Queued>,
    pub(crate) stored: Vec<Stored>,
    pub(crate) seen_identities: Vec<[u8; IDENTITY_DIGEST_LEN]>,
    pub(crate) dake_started_at: i64,
    pub(crate) last_sent: Option<i64>,
    pub(crate) last_received: Option<i64>,
    /// The fingerprint the caller accepts for this instance ([`super::Client::expect_fingerprint`];
    /// not persisted: the caller sets it again after an import).
    pub(crate) expected: Option<Fingerprint>,
}

impl fmt::Debug for Conversation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conversation")
            .field("their_tag", &self.their_tag)
            .field("state", &self.state())
            .field("queued", &self.queue.len())
            .field("stored", &self.stored.len())
            .field("session", &self.live())
            .finish()
    }
}

impl Conversation {
    pub(crate) fn new(their_tag: InstanceTag) -> Conversation {
        Conversation {
            their_tag,
            phase: Phase::Start,
            queue: Vec::new(),
            stored: Vec::new(),
            seen_identities: Vec::new(),
            dake_started_at: 0,
            last_sent: None,
            last_received: None,
            expected: None,
        }
    }

    /// A conversation rebuilt from persisted state.
    pub(crate) fn restore(
        their_tag: InstanceTag,
        phase: Phase,
        queue: Vec<Queued>,
        seen_identities: Vec<[u8; IDENTITY_DIGEST_LEN]>,
        last_sent: Option<i64>,
        last_received: Option<i64>,
    ) -> Conversation {
        Conversation {
            their_tag,
            phase,
            queue,
            stored: Vec::new(),
            seen_identities,
            dake_started_at: 0,
            last_sent,
            last_received,
            expected: None,
        }
    }

    /// The peer's instance tag.
    pub fn their_tag(&self) -> InstanceTag {
        self.their_tag
    }

    /// The protocol state.
    pub fn state(&self) -> ConversationState {
        match &self.phase {
            Phase::Start => ConversationState::Start,
            Phase::WaitingAuthR { .. } => ConversationState::WaitingAuthR,
            Phase::WaitingAuthI { .. } => ConversationState::WaitingAuthI,
            Phase::Encrypted(_) => ConversationState::Encrypted,
            Phase::Finished => ConversationState::Finished,
        }
    }

    /// Whether messages can be encrypted now: `ENCRYPTED_MESSAGES`, or a new DAKE running
    /// over a session that stays live until it completes.
    pub fn is_encrypted(&self) -> bool {
        self.live().is_some()
    }

    /// The SSID of the live session.
    pub fn ssid(&self) -> Option<dake::Ssid> {
        self.live().map(|s| s.ssid)
    }

    /// The peer's fingerprint in the live session.
    pub fn their_fingerprint(&self) -> Option<crate::crypto::fingerprint::Fingerprint> {
        self.live().map(Session::their_fingerprint)
    }

    /// Whether `fp` may receive user content: it is the expected fingerprint, or nothing
    /// is expected for this instance.
    pub(crate) fn accepts(&self, fp: &Fingerprint) -> bool {
        self.expected.is_none_or(|e| e == *fp)
    }

    /// Whether the live session may carry user content: no session, or its peer key is the
    /// one the caller accepts ([`super::Client::expect_fingerprint`]).
    pub fn key_accepted(&self) -> bool {
        self.their_fingerprint().is_none_or(|f| self.accepts(&f))
    }

    /// Our DAKE role in the live session (for a session made by the non-interactive DAKE:
    /// `Alice` for the sender of the Non-Interactive-Auth message, `Bob` for its receiver,
    /// matching the SSID halves of otrv4.md §"Secure Session ID").
    pub fn role(&self) -> Option<dake::Role> {
        self.live().map(|s| s.role)
    }

    /// Whether the live session was made by the non-interactive DAKE (an offline
    /// conversation), and our side of it.
    pub fn non_interactive_role(&self) -> Option<dake::non_interactive::NonInteractiveRole> {
        self.live().and_then(|s| s.non_interactive)
    }

    /// The live session's ratchet id `i` (grows by one per DH ratchet).
    pub fn ratchet_id(&self) -> Option<u32> {
        self.live().map(|s| s.ratchet.ratchet_id())
    }

    /// The live session's SMP state.
    pub fn smp_state(&self) -> Option<SmpState> {
        self.live().map(|s| s.smp.state())
    }

    /// Messages queued until the session is encrypted.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Data messages stored until the DAKE completes.
    pub fn stored(&self) -> usize {
        self.stored.len()
    }

    /// When we last sent to / received from this instance.
    pub fn last_activity(&self) -> (Option<i64>, Option<i64>) {
        (self.last_sent, self.last_received)
    }

    pub(crate) fn live(&self) -> Option<&Session> {
        match &self.phase {
            Phase::Encrypted(s) => Some(s),
            Phase::WaitingAuthR { live, .. } | Phase::WaitingAuthI { live, .. } => live.as_deref(),
            Phase::Start | Phase::Finished => None,
        }
    }

    pub(crate) fn live_mut(&mut self) -> Option<&mut Session> {
        match &mut self.phase {
            Phase::Encrypted(s) => Some(s),
            Phase::WaitingAuthR { live, .. } | Phase::WaitingAuthI { live, .. } => {
                live.as_deref_mut()
            }
            Phase::Start | Phase::Finished => None,
        }
    }

    pub(crate) fn take_phase(&mut self) -> Phase {
        core::mem::replace(&mut self.phase, Phase::Start)
    }

    /// Takes the live session out of the current phase, leaving the DAKE part.
    pub(crate) fn take_live(phase: Phase) -> (Phase, Option<Box<Session>>) {
        match phase {
            Phase::Encrypted(s) => (Phase::Start, Some(s)),
            Phase::WaitingAuthR { dake, live } => (Phase::WaitingAuthR { dake, live: None }, live),
            Phase::WaitingAuthI {
                dake,
                live,
                identity,
            } => (
                Phase::WaitingAuthI {
                    dake,
                    live: None,
                    identity,
                },
                live,
            ),
            p @ (Phase::Start | Phase::Finished) => (p, None),
        }
    }

    fn remember_identity(&mut self, d: [u8; IDENTITY_DIGEST_LEN]) {
        if self.seen_identities.contains(&d) {
            return;
        }
        if self.seen_identities.len() >= MAX_REMEMBERED_IDENTITIES {
            self.seen_identities.remove(0);
        }
        self.seen_identities.push(d);
    }

    // -----------------------------------------------------------------------------------
    // DAKE.

    /// Sends an Identity message to this instance and moves to `WAITING_AUTH_R`
    /// (otrv4.md §"Starting a conversation interactively"). A live session from an
    /// interactive DAKE stays usable; one from the non-interactive DAKE is ended first with
    /// a TLV type 1 (otrv4.md §"Starting an online conversation after an offline one").
    pub(crate) fn start_dake<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
    ) {
        let local = match ctx.local() {
            Ok(l) => l,
            Err(e) => return ctx.error(out, Some(self.their_tag), e),
        };
        let (dake, identity) = dake::start(rng, &local, self.their_tag);
        let (_, mut live) = Conversation::take_live(self.take_phase());
        if live.as_ref().is_some_and(|s| s.non_interactive.is_some()) {
            if let Some(session) = live.take() {
                self.disconnect(ctx, out, rng, session, DisconnectReason::SwitchingDake);
            }
        }
        self.phase = Phase::WaitingAuthR { dake, live };
        self.dake_started_at = ctx.now;
        self.last_sent = Some(ctx.now);
        ctx.send_encoded(out, self.their_tag, &identity.encode(), rng);
    }

    /// Whether `msg` is a replay of the Identity message of a DAKE that completed (or of
    /// the live session's).
    pub(crate) fn is_replayed_identity(&self, msg: &IdentityMessage) -> bool {
        let d = identity_digest(msg);
        self.seen_identities.contains(&d) || self.live().is_some_and(|s| s.identity == d)
    }

    /// An Identity message from this instance (otrv4.md §"Receiving an Identity Message").
    pub(crate) fn receive_identity<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        msg: &IdentityMessage,
    ) {
        let tag = Some(self.their_tag);
        if self.is_replayed_identity(msg) {
            return ctx.warn(out, tag, Warning::ReplayedIdentity);
        }
        let local = match ctx.local() {
            Ok(l) => l,
            Err(e) => return ctx.error(out, tag, e),
        };
        let digest = identity_digest(msg);
        match self.take_phase() {
            // START, ENCRYPTED_MESSAGES, FINISHED: validate, reply with Auth-R, move to
            // WAITING_AUTH_I. An encrypted session stays live until the new DAKE completes.
            phase @ (Phase::Start | Phase::Finished | Phase::Encrypted(_)) => {
                match dake::receive_identity(rng, &local, msg, ctx.now) {
                    Ok((dake, auth_r)) => {
                        let (_, live) = Conversation::take_live(phase);
                        self.phase = Phase::WaitingAuthI {
                            dake,
                            live,
                            identity: digest,
                        };
                        self.dake_started_at = ctx.now;
                        self.last_sent = Some(ctx.now);
                        ctx.send_encoded(out, self.their_tag, &auth_r.encode(), rng);
                    }
                    Err(e) => {
                        self.phase = phase;
                        ctx.warn(out, tag, Warning::DakeMessageIgnored(e));
                    }
                }
            }
            // Both sides sent Identity messages: the hashed B values decide.
            Phase::WaitingAuthR { dake, live } => {
                match dake.receive_identity(rng, &local, msg, ctx.now) {
                    Ok(SimultaneousIdentity::KeepOurs { state, resend }) => {
                        self.phase = Phase::WaitingAuthR { dake: state, live };
                        ctx.send_encoded(out, self.their_tag, &resend.encode(), rng);
                    }
                    Ok(SimultaneousIdentity::BecameResponder { state, auth_r }) => {
                        self.phase = Phase::WaitingAuthI {
                            dake: state,
                            live,
                            identity: digest,
                        };
                        self.dake_started_at = ctx.now;
                        ctx.send_encoded(out, self.their_tag, &auth_r.encode(), rng);
                    }
                    Err(rejected) => {
                        let (dake, e) = rejected.into_parts();
                        self.phase = Phase::WaitingAuthR { dake, live };
                        ctx.warn(out, tag, Warning::DakeMessageIgnored(e));
                    }
                }
            }
            // A retransmission (answered with the same Auth-R) or a new DAKE.
            Phase::WaitingAuthI {
                dake,
                live,
                identity: answered,
            } => match dake.receive_identity(rng, &local, msg, ctx.now) {
                Ok((dake, auth_r)) => {
                    self.phase = Phase::WaitingAuthI {
                        dake,
                        live,
                        identity: digest,
                    };
                    ctx.send_encoded(out, self.their_tag, &auth_r.encode(), rng);
                }
                Err(rejected) => {
                    let (dake, e) = rejected.into_parts();
                    self.phase = Phase::WaitingAuthI {
                        dake,
                        live,
                        identity: answered,
                    };
                    ctx.warn(out, tag, Warning::DakeMessageIgnored(e));
                }
            },
        }
    }

    /// Becomes the responder of a DAKE that started from the peer-level Identity message
    /// (the tie-break of an untargeted Identity message went to the peer).
    pub(crate) fn adopt_responder<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        dake: WaitingAuthI,
        auth_r: &AuthR,
        identity: [u8; IDENTITY_DIGEST_LEN],
    ) {
        let (_, live) = Conversation::take_live(self.take_phase());
        self.phase = Phase::WaitingAuthI {
            dake,
            live,
            identity,
        };
        self.dake_started_at = ctx.now;
        self.last_sent = Some(ctx.now);
        ctx.send_encoded(out, self.their_tag, &auth_r.encode(), rng);
    }

    /// Whether this conversation waits for an Auth-R message.
    pub(crate) fn waits_for_auth_r(&self) -> bool {
        matches!(self.phase, Phase::WaitingAuthR { .. })
    }

    /// An Auth-R message (otrv4.md §"Receiving an Auth-R Message"). Returns whether the
    /// session became encrypted (the caller then flushes the peer-level queue).
    pub(crate) fn receive_auth_r<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        msg: &AuthR,
    ) -> bool {
        let tag = Some(self.their_tag);
        let local = match ctx.local() {
            Ok(l) => l,
            Err(e) => {
                ctx.error(out, tag, e);
                return false;
            }
        };
        match self.take_phase() {
            Phase::WaitingAuthR { dake, live } => {
                let identity = identity_digest(dake.identity_message());
                match dake.receive_auth_r(rng, &local, msg, ctx.now) {
                    Ok((done, auth_i)) => {
                        drop(live);
                        ctx.send_encoded(out, self.their_tag, &auth_i.encode(), rng);
                        self.establish(ctx, out, rng, done, identity)
                    }
                    Err(rejected) => {
                        let (dake, e) = rejected.into_parts();
                        self.phase = Phase::WaitingAuthR { dake, live };
                        ctx.warn(out, tag, Warning::DakeMessageIgnored(e));
                        false
                    }
                }
            }
            other => {
                self.phase = other;
                ctx.warn(out, tag, Warning::UnexpectedDakeMessage("Auth-R"));
                false
            }
        }
    }

    /// An Auth-I message (otrv4.md §"Receiving an Auth-I Message"). Returns whether the
    /// session became encrypted.
    pub(crate) fn receive_auth_i<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        msg: &AuthI,
    ) -> bool {
        let tag = Some(self.their_tag);
        match self.take_phase() {
            Phase::WaitingAuthI {
                dake,
                live,
                identity,
            } => match dake.receive_auth_i(msg) {
                Ok(done) => {
                    drop(live);
                    self.establish(ctx, out, rng, done, identity)
                }
                Err(rejected) => {
                    let (dake, e) = rejected.into_parts();
                    self.phase = Phase::WaitingAuthI {
                        dake,
                        live,
                        identity,
                    };
                    ctx.warn(out, tag, Warning::DakeMessageIgnored(e));
                    false
                }
            },
            other => {
                self.phase = other;
                ctx.warn(out, tag, Warning::UnexpectedDakeMessage("Auth-I"));
                false
            }
        }
    }

    /// Enters `ENCRYPTED_MESSAGES` with a completed DAKE: initialises the double ratchet,
    /// reports [`Event::Secure`], sends the queued messages, then processes the stored
    /// early data messages. Any previous session was already dropped (keys wiped) by the
    /// caller. Returns whether it succeeded.
    pub(crate) fn establish<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        done: DakeComplete,
        identity: [u8; IDENTITY_DIGEST_LEN],
    ) -> bool {
        let session = match Session::establish(done, identity, ctx.now, rng) {
            Ok(s) => s,
            Err(e) => {
                self.phase = Phase::Start;
                ctx.error(out, Some(self.their_tag), e);
                return false;
            }
        };
        out.push(Event::Secure {
            peer: String::from(ctx.peer),
            instance: self.their_tag,
            ssid: session.ssid,
            bold_half: session.role.ssid_bold_half(),
            their_fingerprint: session.their_fingerprint(),
            key_accepted: self.accepts(&session.their_fingerprint()),
        });
        self.remember_identity(identity);
        self.phase = Phase::Encrypted(Box::new(session));
        let queued = core::mem::take(&mut self.queue);
        self.flush(ctx, out, rng, queued);
        let stored = core::mem::take(&mut self.stored);
        for s in stored {
            self.receive_data(ctx, out, rng, &s.msg, true);
        }
        true
    }

    /// Sends queued messages through the live session — unless its key is not the
    /// accepted one: then they stay queued ([`NotSentReason::KeyNotAccepted`]).
    pub(crate) fn flush<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        queued: Vec<Queued>,
    ) {
        for q in queued {
            self.send_user(ctx, out, rng, &q.text, &q.tlvs);
        }
    }

    /// Sends user content (text and TLVs) in the live session if its key is accepted;
    /// otherwise queues it with [`NotSentReason::KeyNotAccepted`]. Every path that
    /// encrypts what the user wrote goes through here (send, flushes after a DAKE, the
    /// offline start), so nothing reaches a key the caller has not accepted.
    pub(crate) fn send_user<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        text: &str,
        tlvs: &[Tlv],
    ) {
        if self.key_accepted() {
            self.send_encrypted(ctx, out, rng, text, tlvs);
        } else {
            self.queue_as(ctx, out, text, tlvs, NotSentReason::KeyNotAccepted);
        }
    }

    /// The caller accepts `fp` for this instance; queued messages go out if the live
    /// session now qualifies.
    pub(crate) fn expect<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        fp: Option<Fingerprint>,
    ) {
        self.expected = fp;
        if self.is_encrypted() && self.key_accepted() && !self.queue.is_empty() {
            let queued = core::mem::take(&mut self.queue);
            self.flush(ctx, out, rng, queued);
        }
    }

    // -----------------------------------------------------------------------------------
    // Sending.

    /// Queues a message until the session is encrypted (bounded).
    pub(crate) fn queue(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Event>, text: &str, tlvs: &[Tlv]) {
        self.queue_as(ctx, out, text, tlvs, NotSentReason::Queued);
    }

    /// Queues a message (bounded), reporting it as not sent for `why`.
    fn queue_as(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        text: &str,
        tlvs: &[Tlv],
        why: NotSentReason,
    ) {
        let reason = if self.queue.len() >= ctx.account.policy.max_queued_messages {
            NotSentReason::QueueFull
        } else {
            self.queue.push(Queued {
                text: String::from(text),
                tlvs: tlvs.to_vec(),
            });
            why
        };
        ctx.not_sent(out, Some(self.their_tag), text, reason);
    }

    /// Encrypts and sends a message in the live session (otrv4.md §"Sending a Data
    /// Message"). Messages with an empty text (heartbeats, control TLVs) carry
    /// `IGNORE_UNREADABLE`. Type 7 TLVs yield [`Event::ExtraSymmetricKey`]s. Returns whether
    /// it was sent.
    pub(crate) fn send_encrypted<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        text: &str,
        tlvs: &[Tlv],
    ) -> bool {
        let tag = self.their_tag;
        let flags = if text.is_empty() {
            FLAG_IGNORE_UNREADABLE
        } else {
            0
        };
        let Some(session) = self.live_mut() else {
            ctx.error(out, Some(tag), ConversationError::NotEncrypted);
            return false;
        };
        match session.encrypt(text.as_bytes(), tlvs, flags, false, ctx.now, rng) {
            Ok((bytes, extra)) => {
                self.last_sent = Some(ctx.now);
                ctx.send_encoded(out, tag, &bytes, rng);
                report_extra_keys(ctx, out, tag, &extra, tlvs);
                true
            }
            Err(e) => {
                ctx.error(out, Some(tag), e);
                false
            }
        }
    }

    /// Sends TLVs with an empty text (SMP, heartbeat).
    fn send_control<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        tlvs: &[Tlv],
    ) {
        self.send_encrypted(ctx, out, rng, "", tlvs);
    }

    /// Sends a TLV type 1 revealing every MAC key still held, then drops the session
    /// (otrv4.md §"Session Expiration", §"User requests to end an OTRv4 Conversation").
    pub(crate) fn disconnect<R: rand_core::CryptoRng + ?Sized>(
        &self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        mut session: Box<Session>,
        reason: DisconnectReason,
    ) {
        let tlv = [Tlv::disconnected()];
        match session.encrypt(b"", &tlv, FLAG_IGNORE_UNREADABLE, true, ctx.now, rng) {
            Ok((bytes, _)) => ctx.send_encoded(out, self.their_tag, &bytes, rng),
            Err(e) => ctx.error(out, Some(self.their_tag), e),
        }
        drop(session);
        out.push(Event::Disconnected {
            peer: String::from(ctx.peer),
            instance: self.their_tag,
            reason,
        });
    }

    /// The user ends the conversation (otrv4.md §"User requests to end an OTRv4
    /// Conversation"): from `ENCRYPTED_MESSAGES` send a TLV type 1 and forget the keys; from
    /// any state go to `START`. Queued and stored messages are dropped.
    pub(crate) fn end<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
    ) {
        let (_, live) = Conversation::take_live(self.take_phase());
        if let Some(session) = live {
            self.disconnect(ctx, out, rng, session, DisconnectReason::UserEnded);
        }
        self.phase = Phase::Start;
        self.stored.clear();
        for q in core::mem::take(&mut self.queue) {
            ctx.not_sent(out, Some(self.their_tag), &q.text, NotSentReason::Discarded);
        }
    }

    // -----------------------------------------------------------------------------------
    // Receiving data.

    /// A Data Message from this instance (otrv4.md §"Receiving a Data Message").
    /// `from_storage` marks a stored early message being retried after the DAKE: if it
    /// still cannot be read it is dropped without an error message.
    pub(crate) fn receive_data<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        msg: &DataMessage,
        from_storage: bool,
    ) {
        let tag = self.their_tag;
        let ignore_unreadable = msg.flags & FLAG_IGNORE_UNREADABLE != 0;
        let waiting_auth_i = matches!(self.phase, Phase::WaitingAuthI { .. });
        // The first DH ratchet after a DAKE has ratchet id 0; in WAITING_AUTH_I the peer may
        // already be encrypted, so such a message is kept until Auth-I arrives.
        let storable = waiting_auth_i && msg.i == 0 && !from_storage;
        let result = self.live_mut().map(|s| s.decrypt(msg, ctx.now));
        match result {
            Some(Ok(d)) => {
                self.last_received = Some(ctx.now);
                self.handle_decrypted(ctx, out, rng, d);
            }
            Some(Err(_)) | None if storable => self.store(ctx, out, msg),
            Some(Err(e)) => {
                // IGNORE_UNREADABLE: "ignore it instead of producing an error or a
                // notification to the participant".
                if from_storage || ignore_unreadable {
                    return;
                }
                ctx.send_text(out, Some(tag), build_error(ErrorCode::UnreadableMessage));
                ctx.error(out, Some(tag), ConversationError::Unreadable(e));
            }
            None => {
                if from_storage || ignore_unreadable {
                    return;
                }
                ctx.send_text(out, Some(tag), build_error(ErrorCode::NotInPrivateState));
                ctx.error(out, Some(tag), ConversationError::NotInPrivateState);
            }
        }
    }

    fn store(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Event>, msg: &DataMessage) {
        let max = ctx.account.policy.max_stored_messages;
        if max == 0 {
            return;
        }
        if self.stored.len() >= max {
            self.stored.remove(0);
            ctx.warn(out, Some(self.their_tag), Warning::StoredMessagesExpired(1));
        }
        self.stored.push(Stored {
            msg: msg.clone(),
            at: ctx.now,
        });
    }

    /// Acts on a decrypted message: TLV 1 → `FINISHED`; TLVs 2–6 → SMP; TLV 7 → extra
    /// symmetric keys; the text → [`Event::Received`]; then a heartbeat if one is due.
    fn handle_decrypted<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        d: Decrypted,
    ) {
        let tag = self.their_tag;
        let pt = parse_plaintext(&d.plaintext);
        let text = String::from_utf8_lossy(&pt.message).into_owned();
        if pt.corrupted {
            ctx.warn(out, Some(tag), Warning::CorruptedTlv);
        }
        let mut disconnected = false;
        let mut replies: Vec<Tlv> = Vec::new();
        report_extra_keys(ctx, out, tag, &d.extra_symm_key, &pt.tlvs);
        for tlv in &pt.tlvs {
            match tlv.typ {
                TlvType::Disconnected => disconnected = true,
                TlvType::SmpMessage1
                | TlvType::SmpMessage2
                | TlvType::SmpMessage3
                | TlvType::SmpMessage4
                | TlvType::SmpAbort => {
                    if let Some(s) = self.live_mut() {
                        let r = s.smp.receive(rng, tlv);
                        smp_outcome(ctx, out, tag, r, &mut replies);
                    }
                }
                _ => {}
            }
        }
        if !text.is_empty() {
            out.push(Event::Received {
                from: String::from(ctx.peer),
                from_instance: Some(tag),
                text,
                tlvs: pt.tlvs.clone(),
                encrypted: true,
            });
        }
        if disconnected {
            // "Forget any state variables and key variables for this correspondent and
            // transition the state to FINISHED."
            self.phase = Phase::Finished;
            self.stored.clear();
            out.push(Event::Finished {
                peer: String::from(ctx.peer),
                instance: tag,
            });
            return;
        }
        if !replies.is_empty() {
            self.send_control(ctx, out, rng, &replies);
        }
        let policy = &ctx.account.policy;
        if self
            .live()
            .is_some_and(|s| s.heartbeat_due(ctx.now, policy.heartbeat_secs))
        {
            self.send_control(ctx, out, rng, &[]);
        }
    }

    // -----------------------------------------------------------------------------------
    // SMP.

    /// The user starts SMP (otrv4.md §"User requests to begin SMP").
    pub(crate) fn smp_start<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        secret: &[u8],
        question: Option<&str>,
    ) {
        let tag = self.their_tag;
        if !self.key_accepted() {
            return ctx.error(out, Some(tag), ConversationError::KeyNotAccepted);
        }
        let our_fp = ctx.account.fingerprint();
        let Some(s) = self.live_mut() else {
            return ctx.error(out, Some(tag), ConversationError::NotEncrypted);
        };
        let sctx = s.smp_context(our_fp);
        match s.smp.start(rng, &sctx, secret, question.map(str::as_bytes)) {
            Ok(tlv) => {
                self.send_control(ctx, out, rng, &[tlv]);
                smp_event(ctx, out, tag, SmpUpdate::InProgress);
            }
            Err(e) => ctx.error(out, Some(tag), ConversationError::Smp(e)),
        }
    }

    /// The user answers the peer's SMP request.
    pub(crate) fn smp_respond<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        secret: &[u8],
    ) {
        let tag = self.their_tag;
        if !self.key_accepted() {
            return ctx.error(out, Some(tag), ConversationError::KeyNotAccepted);
        }
        let our_fp = ctx.account.fingerprint();
        let Some(s) = self.live_mut() else {
            return ctx.error(out, Some(tag), ConversationError::NotEncrypted);
        };
        let sctx = s.smp_context(our_fp);
        match s.smp.respond(rng, &sctx, secret) {
            Ok(tlv) => {
                self.send_control(ctx, out, rng, &[tlv]);
                smp_event(ctx, out, tag, SmpUpdate::InProgress);
            }
            Err(e) => {
                // The SMP state is back to EXPECT1; tell the peer if an exchange was on.
                if !matches!(e, crate::smp::SmpError::NoPendingRequest) {
                    let abort = s.smp.abort();
                    self.send_control(ctx, out, rng, &[abort]);
                }
                ctx.error(out, Some(tag), ConversationError::Smp(e));
            }
        }
    }

    /// The user aborts SMP (otrv4.md §"User requests to abort SMP").
    pub(crate) fn smp_abort<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
    ) {
        let tag = self.their_tag;
        let Some(s) = self.live_mut() else {
            return ctx.error(out, Some(tag), ConversationError::NotEncrypted);
        };
        let tlv = s.smp.abort();
        self.send_control(ctx, out, rng, &[tlv]);
        smp_event(ctx, out, tag, SmpUpdate::Aborted { reason: None });
    }

    /// Sends a type 7 TLV and reports the extra symmetric key (otrv4.md §"Extra Symmetric
    /// Key").
    pub(crate) fn use_extra_key<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        context: [u8; 4],
        data: &[u8],
    ) {
        if !self.key_accepted() {
            return ctx.error(out, Some(self.their_tag), ConversationError::KeyNotAccepted);
        }
        self.send_control(ctx, out, rng, &[Tlv::extra_symmetric_key(context, data)]);
    }

    // -----------------------------------------------------------------------------------
    // Timers.

    /// Expires stored messages, abandons a stalled DAKE, expires the session and sends a
    /// heartbeat when due.
    pub(crate) fn tick<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
    ) {
        let tag = Some(self.their_tag);
        let policy = ctx.account.policy;
        let before = self.stored.len();
        self.stored
            .retain(|s| ctx.now.saturating_sub(s.at) < policy.stored_message_secs);
        if self.stored.len() < before {
            ctx.warn(
                out,
                tag,
                Warning::StoredMessagesExpired(before - self.stored.len()),
            );
        }
        let in_dake = matches!(
            self.phase,
            Phase::WaitingAuthR { .. } | Phase::WaitingAuthI { .. }
        );
        if in_dake
            && policy.dake_timeout_secs > 0
            && ctx.now.saturating_sub(self.dake_started_at) >= policy.dake_timeout_secs
        {
            let (_, live) = Conversation::take_live(self.take_phase());
            self.phase = match live {
                Some(s) => Phase::Encrypted(s),
                None => Phase::Start,
            };
            self.stored.clear();
            ctx.warn(out, tag, Warning::DakeTimedOut);
        }
        if self
            .live()
            .is_some_and(|s| s.expired(ctx.now, policy.session_expiry_secs))
        {
            let (_, live) = Conversation::take_live(self.take_phase());
            if let Some(session) = live {
                self.disconnect(ctx, out, rng, session, DisconnectReason::Expired);
            }
            self.phase = Phase::Finished;
            self.stored.clear();
            return;
        }
        if self.live().is_some_and(|s| {
            s.received_since_send && s.heartbeat_due(ctx.now, policy.heartbeat_secs)
        }) {
            self.send_control(ctx, out, rng, &[]);
        }
    }
}

fn smp_event(ctx: &Ctx<'_>, out: &mut Vec<Event>, tag: InstanceTag, update: SmpUpdate) {
    out.push(Event::Smp {
        peer: String::from(ctx.peer),
        instance: tag,
        update,
    });
}

/// Maps the SMP state machine's outcome to events and TLVs to send.
fn smp_outcome(
    ctx: &Ctx<'_>,
    out: &mut Vec<Event>,
    tag: InstanceTag,
    result: Result<SmpEvent, crate::smp::SmpError>,
    replies: &mut Vec<Tlv>,
) {
    let update = match result {
        Ok(SmpEvent::AskForSecret { question }) => SmpUpdate::AskForSecret {
            question: question.map(|q| String::from_utf8_lossy(&q).into_owned()),
        },
        Ok(SmpEvent::SendTlv(t)) => {
            replies.push(t);
            SmpUpdate::InProgress
        }
        Ok(SmpEvent::Succeeded { reply }) => {
            replies.extend(reply);
            SmpUpdate::Succeeded
        }
        Ok(SmpEvent::Failed { reply }) => {
            replies.extend(reply);
            SmpUpdate::Failed
        }
        Ok(SmpEvent::AbortedByPeer) => SmpUpdate::Aborted { reason: None },
        Ok(SmpEvent::Aborted { send, reason }) => {
            replies.push(send);
            SmpUpdate::Aborted {
                reason: Some(reason),
            }
        }
        Err(e) => {
            return ctx.error(out, Some(tag), ConversationError::Smp(e));
        }
    };
    smp_event(ctx, out, tag, update);
}

/// One [`Event::ExtraSymmetricKey`] per type 7 TLV, keys derived as in otrv4.md §"Extra
/// Symmetric Key" from the message's extra symmetric key.
fn report_extra_keys(
    ctx: &Ctx<'_>,
    out: &mut Vec<Event>,
    tag: InstanceTag,
    base: &ExtraSymmetricKey,
    tlvs: &[Tlv],
) {
    for k in base.derive_for_tlvs(tlvs) {
        let data = tlvs
            .get(k.index)
            .and_then(|t| t.value.get(4..))
            .unwrap_or(&[])
            .to_vec();
        out.push(Event::ExtraSymmetricKey {
            peer: String::from(ctx.peer),
            instance: tag,
            key: k.key,
            context: k.context,
            data,
        });
    }
}
