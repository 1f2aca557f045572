//! The OTRv3 half of the OTRv3-compatible mode (otrv4.md §"OTRv3-compatible mode", §"OTRv3
//! Protocol State Machine"): one OTRv3 conversation per correspondent, its AKE and session.
//!
//! [`V3Link`] holds v3's `authstate` and `msgstate` (Protocol-v3.html §"The protocol state
//! machine") over the AKE typestates of [`crate::v3::ake`], a [`Session`] and the v3 SMP. The
//! peer's incoming path (`incoming`) hands it v3 fragments and messages and starts its AKE on
//! a query message or whitespace tag that offers only version 3; `Peer` routes the user's
//! sends, ends and SMP to it while the peer has no OTRv4 session. Nothing of it is exported
//! (like libotr, a v3 session does not outlive the process; docs/spec-notes.md).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::InstanceTag;
use crate::smp::SmpError;
use crate::v3::ake::{
    self, AkeComplete, AwaitingDhKey, AwaitingRevealSig, AwaitingSig, CommitCollision,
};
use crate::v3::fragment::{Reassembler, V3Fragment, fragment};
use crate::v3::messages::{FLAG_IGNORE_UNREADABLE, Header, Message};
use crate::v3::pubkey::{DsaPrivateKey, V3Fingerprint};
use crate::v3::session::Session;
use crate::v3::smp::{Smp, SmpContext, SmpError as V3SmpError, SmpEvent};
use crate::v3::tlv::{V3Plaintext, V3Tlv, V3TlvType};
use crate::wire::encoded::encode_otr;
use crate::wire::error_msg::{ErrorCode, build_error};
use crate::wire::fragment::FragmentError;
use crate::wire::tlv::Tlv;

use super::context::{Ctx, Queued};
use super::events::{
    ConversationError, ConversationState, DisconnectReason, Event, NotSentReason, SmpUpdate,
    Warning,
};

/// The protocol version in the first two bytes of every OTRv3 message.
const V3_VERSION_BYTES: [u8; 2] = [0x00, 0x03];

/// Whether `bytes` (a decoded `?OTR:…​.` message) is an OTRv3 message.
pub(crate) fn is_v3_message(bytes: &[u8]) -> bool {
    bytes.first_chunk::<2>() == Some(&V3_VERSION_BYTES)
}

/// `authstate` (Protocol-v3.html §"Authentication state"), with the peer instance the AKE
/// runs with once it is known.
#[allow(clippy::large_enum_variant)] // one per contact, replaced in place
enum Auth {
    /// `AUTHSTATE_NONE`.
    None,
    /// `AUTHSTATE_AWAITING_DHKEY`: we sent a D-H Commit.
    AwaitingDhKey(AwaitingDhKey),
    /// `AUTHSTATE_AWAITING_REVEALSIG`: we answered `their` D-H Commit with a D-H Key.
    AwaitingRevealSig {
        state: AwaitingRevealSig,
        their: InstanceTag,
    },
    /// `AUTHSTATE_AWAITING_SIG`: we answered `their` D-H Key with a Reveal Signature.
    AwaitingSig {
        state: AwaitingSig,
        their: InstanceTag,
    },
}

/// An encrypted v3 session and its SMP.
struct Live {
    session: Session,
    smp: Smp,
    smp_ctx: SmpContext,
}

/// `msgstate` (Protocol-v3.html §"Message state").
enum Msg {
    /// `MSGSTATE_PLAINTEXT`.
    Plaintext,
    /// `MSGSTATE_ENCRYPTED`.
    Encrypted(Box<Live>),
    /// `MSGSTATE_FINISHED`: the peer ended the session.
    Finished,
}

/// The OTRv3 conversation with one correspondent: its AKE, its session (with the instance
/// it is bound to) and the reassembly of its v3 fragments.
pub(crate) struct V3Link {
    auth: Auth,
    /// When the AKE under way started (for `Policy::dake_timeout_secs`).
    auth_since: i64,
    msg: Msg,
    /// The peer instance of the encrypted or finished session.
    their_tag: InstanceTag,
    reassembler: Reassembler,
}

impl core::fmt::Debug for V3Link {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("V3Link")
            .field("state", &self.state())
            .field("their_tag", &self.their_tag)
            .field("ake_running", &!matches!(self.auth, Auth::None))
            .finish_non_exhaustive()
    }
}

impl Default for V3Link {
    fn default() -> V3Link {
        V3Link {
            auth: Auth::None,
            auth_since: 0,
            msg: Msg::Plaintext,
            their_tag: InstanceTag::UNKNOWN,
            reassembler: Reassembler::default(),
        }
    }
}

/// Maps the v3 SMP's refusal onto the layer's [`SmpError`] (reported in
/// [`SmpUpdate::Aborted`]).
fn smp_error(e: V3SmpError) -> SmpError {
    match e {
        V3SmpError::Decode(d) => SmpError::Decode(d),
        V3SmpError::BadGroupElement => SmpError::Degenerate("OTRv3 group element out of range"),
        V3SmpError::BadExponent => SmpError::BadProof("OTRv3 exponent out of range"),
        V3SmpError::NothingToAnswer => SmpError::NoPendingRequest,
        _ => SmpError::BadProof("OTRv3 zero-knowledge proof"),
    }
}

impl V3Link {
    /// `msgstate` as the layer's states: `Start` (plaintext), `Encrypted` or `Finished`.
    pub(crate) fn state(&self) -> ConversationState {
        match self.msg {
            Msg::Plaintext => ConversationState::Start,
            Msg::Encrypted(_) => ConversationState::Encrypted,
            Msg::Finished => ConversationState::Finished,
        }
    }

    /// Whether the session is encrypted or finished (no plaintext may go out).
    pub(crate) fn is_private(&self) -> bool {
        !matches!(self.msg, Msg::Plaintext)
    }

    /// The fingerprint of the peer's DSA key in the encrypted session.
    pub(crate) fn their_fingerprint(&self) -> Option<V3Fingerprint> {
        match &self.msg {
            Msg::Encrypted(live) => Some(V3Fingerprint(live.smp_ctx.their_fingerprint)),
            _ => None,
        }
    }

    /// The peer instance of the encrypted or finished session.
    pub(crate) fn instance(&self) -> Option<InstanceTag> {
        self.is_private().then_some(self.their_tag)
    }

    /// Sends `bytes` encoded, in v3 fragments (Protocol-v3.html §"Fragmentation") when
    /// longer than `Policy::max_message_size`.
    fn send(ctx: &Ctx<'_>, out: &mut Vec<Event>, to: InstanceTag, bytes: &[u8]) {
        let text = encode_otr(bytes);
        let max = ctx.account.policy.max_message_size;
        let to_instance = (to != InstanceTag::UNKNOWN).then_some(to);
        if max == 0 || text.len() <= max {
            return ctx.send_text(out, to_instance, text);
        }
        match fragment(&text, max, ctx.our_tag(), to) {
            Some(pieces) => {
                for p in pieces {
                    ctx.send_text(out, to_instance, p);
                }
            }
            None => ctx.error(
                out,
                to_instance,
                ConversationError::Fragment(FragmentError::MessageTooLarge),
            ),
        }
    }

    /// Starts the AKE: a D-H Commit without a receiver instance (otrv4.md §"Receiving a
    /// Query Message": "If the Query message offers OTR version 3 and version 3 is allowed:
    /// Send a version 3 D-H Commit Message. Transition authstate to
    /// AUTHSTATE_AWAITING_DHKEY"). A live session stays usable until the new AKE completes.
    pub(crate) fn start_ake<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
    ) {
        let (state, commit) = ake::start(rng);
        self.auth = Auth::AwaitingDhKey(state);
        self.auth_since = ctx.now;
        let to = if self.is_private() {
            self.their_tag
        } else {
            InstanceTag::UNKNOWN
        };
        Self::send(
            ctx,
            out,
            to,
            &Message::DhCommit(commit).encode(ctx.our_tag(), to),
        );
    }

    /// A v3 fragment (Protocol-v3.html §"Receiving Fragments"): the whole message once the
    /// last piece arrived.
    pub(crate) fn push_fragment(&mut self, ctx: &Ctx<'_>, f: &V3Fragment<'_>) -> Option<String> {
        self.reassembler.push(f, ctx.our_tag())
    }

    /// An OTRv3 message (the bytes of `?OTR:…​.`, starting with version 3). Returns whether
    /// the session just became encrypted (the caller then sends what it queued).
    pub(crate) fn receive<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        bytes: &[u8],
    ) -> bool {
        let (header, msg) = match Message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                ctx.error(out, None, ConversationError::Malformed(e));
                return false;
            }
        };
        let sender = header.sender;
        // otrv4.md §"Protocol Events" and the v3 receiving sections: a message for another
        // instance of ours is ignored; only a D-H Commit may leave the receiver unset.
        let for_us = header.receiver == ctx.our_tag()
            || (header.receiver == InstanceTag::UNKNOWN && matches!(msg, Message::DhCommit(_)));
        if !for_us {
            ctx.warn(
                out,
                Some(sender),
                Warning::NotForUs {
                    receiver: header.receiver,
                },
            );
            return false;
        }
        // "If the message is version 3 and version 3 is not allowed: Ignore the message."
        let Some(key) = ctx.account.v3_usable() else {
            ctx.warn(out, Some(sender), Warning::Otrv3Unsupported);
            return false;
        };
        match msg {
            Message::DhCommit(c) => {
                self.on_dh_commit(ctx, out, rng, sender, &c);
                false
            }
            Message::DhKey(k) => {
                self.on_dh_key(ctx, out, key, sender, &k);
                false
            }
            Message::RevealSignature(m) => {
                match core::mem::replace(&mut self.auth, Auth::None) {
                    Auth::AwaitingRevealSig { state, their } if their == sender => {
                        match state.receive_reveal_signature(&m, key) {
                            Ok((done, sig)) => {
                                let to = ctx.our_tag();
                                Self::send(
                                    ctx,
                                    out,
                                    sender,
                                    &Message::Signature(sig).encode(to, sender),
                                );
                                self.secure(ctx, out, rng, key, done, sender);
                                return true;
                            }
                            Err(rejected) => {
                                self.auth = Auth::AwaitingRevealSig {
                                    state: rejected.state,
                                    their,
                                };
                                ctx.warn(
                                    out,
                                    Some(sender),
                                    Warning::Otrv3MessageIgnored(rejected.error),
                                );
                            }
                        }
                    }
                    other => {
                        self.auth = other;
                        ctx.warn(
                            out,
                            Some(sender),
                            Warning::UnexpectedDakeMessage("OTRv3 Reveal Signature"),
                        );
                    }
                }
                false
            }
            Message::Signature(m) => {
                match core::mem::replace(&mut self.auth, Auth::None) {
                    Auth::AwaitingSig { state, their } if their == sender => {
                        match state.receive_signature(&m) {
                            Ok(done) => {
                                self.secure(ctx, out, rng, key, done, sender);
                                return true;
                            }
                            Err(rejected) => {
                                self.auth = Auth::AwaitingSig {
                                    state: rejected.state,
                                    their,
                                };
                                ctx.warn(
                                    out,
                                    Some(sender),
                                    Warning::Otrv3MessageIgnored(rejected.error),
                                );
                            }
                        }
                    }
                    other => {
                        self.auth = other;
                        ctx.warn(
                            out,
                            Some(sender),
                            Warning::UnexpectedDakeMessage("OTRv3 Signature"),
                        );
                    }
                }
                false
            }
            Message::Data(d) => {
                self.on_data(ctx, out, rng, &header, &d);
                false
            }
        }
    }

    /// otrv4.md §"Receiving a D-H Commit Message".
    fn on_dh_commit<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        sender: InstanceTag,
        commit: &crate::v3::messages::DhCommit,
    ) {
        let our = ctx.our_tag();
        let (state, reply) = match core::mem::replace(&mut self.auth, Auth::None) {
            // Both sent a D-H Commit: the higher hashed g^x keeps its own and resends it.
            Auth::AwaitingDhKey(ours) => match ours.receive_dh_commit(commit, rng) {
                CommitCollision::KeepOurs(ours, c) => {
                    self.auth = Auth::AwaitingDhKey(ours);
                    Self::send(ctx, out, sender, &Message::DhCommit(c).encode(our, sender));
                    return;
                }
                CommitCollision::TakeTheirs(state, key) => (state, key),
            },
            // Retransmit the same D-H Key; use the new commit.
            Auth::AwaitingRevealSig { state, .. } => state.receive_dh_commit(commit),
            // AUTHSTATE_NONE and AUTHSTATE_AWAITING_SIG: a new D-H Key.
            Auth::None | Auth::AwaitingSig { .. } => ake::receive_dh_commit(commit, rng),
        };
        self.auth = Auth::AwaitingRevealSig {
            state,
            their: sender,
        };
        self.auth_since = ctx.now;
        Self::send(ctx, out, sender, &Message::DhKey(reply).encode(our, sender));
    }

    /// otrv4.md §"Receiving a D-H Key Message".
    fn on_dh_key(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        key: &DsaPrivateKey,
        sender: InstanceTag,
        msg: &crate::v3::messages::DhKey,
    ) {
        let our = ctx.our_tag();
        match core::mem::replace(&mut self.auth, Auth::None) {
            Auth::AwaitingDhKey(state) => match state.receive_dh_key(msg, key) {
                Ok((state, reveal)) => {
                    self.auth = Auth::AwaitingSig {
                        state,
                        their: sender,
                    };
                    Self::send(
                        ctx,
                        out,
                        sender,
                        &Message::RevealSignature(reveal).encode(our, sender),
                    );
                }
                Err(rejected) => {
                    self.auth = Auth::AwaitingDhKey(rejected.state);
                    ctx.warn(
                        out,
                        Some(sender),
                        Warning::Otrv3MessageIgnored(rejected.error),
                    );
                }
            },
            Auth::AwaitingSig { state, their } if their == sender => {
                // The same D-H Key again: retransmit the Reveal Signature; another: ignore.
                match state.receive_dh_key(msg) {
                    Ok(reveal) => Self::send(
                        ctx,
                        out,
                        sender,
                        &Message::RevealSignature(reveal).encode(our, sender),
                    ),
                    Err(e) => ctx.warn(out, Some(sender), Warning::Otrv3MessageIgnored(e)),
                }
                self.auth = Auth::AwaitingSig { state, their };
            }
            other => {
                self.auth = other;
                ctx.warn(
                    out,
                    Some(sender),
                    Warning::UnexpectedDakeMessage("OTRv3 D-H Key"),
                );
            }
        }
    }

    /// The AKE completed: `MSGSTATE_ENCRYPTED` with `their` (Protocol-v3.html §"Receiving a
    /// Reveal Signature Message", §"Receiving a Signature Message"). A session before it is
    /// replaced.
    fn secure<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        key: &DsaPrivateKey,
        done: AkeComplete,
        their: InstanceTag,
    ) {
        let ssid = done.ssid;
        // The side that sent the Reveal Signature shows the first half in bold.
        let bold_half = usize::from(!done.sent_reveal_signature);
        let their_fingerprint = V3Fingerprint(done.their_public.fingerprint());
        let smp_ctx = SmpContext {
            our_fingerprint: key.public().fingerprint(),
            their_fingerprint: their_fingerprint.0,
            ssid,
        };
        let session = Session::new(done, ctx.our_tag(), their, rng);
        self.msg = Msg::Encrypted(Box::new(Live {
            session,
            smp: Smp::new(),
            smp_ctx,
        }));
        self.auth = Auth::None;
        self.their_tag = their;
        out.push(Event::SecureV3 {
            peer: String::from(ctx.peer),
            instance: their,
            ssid,
            bold_half,
            their_fingerprint,
        });
    }

    /// Protocol-v3.html §"Receiving a Data Message" (and the v3 notes of otrv4.md
    /// §"Receiving plaintext …"): decrypt, act on the TLVs, report the text.
    fn on_data<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        header: &Header,
        msg: &crate::v3::messages::DataMessage,
    ) {
        let sender = header.sender;
        let quiet = msg.flags & FLAG_IGNORE_UNREADABLE != 0;
        let Msg::Encrypted(live) = &mut self.msg else {
            if !quiet {
                ctx.send_text(out, Some(sender), build_error(ErrorCode::NotInPrivateState));
                ctx.error(out, Some(sender), ConversationError::NotInPrivateState);
            }
            return;
        };
        let decrypted = match live.session.decrypt(header, msg, rng) {
            Ok(d) => d,
            Err(e) => {
                if !quiet {
                    ctx.send_text(out, Some(sender), build_error(ErrorCode::UnreadableMessage));
                    ctx.error(out, Some(sender), ConversationError::Otrv3(e));
                }
                return;
            }
        };
        let plaintext = V3Plaintext::parse(&decrypted.plaintext);
        let mut replies = Vec::new();
        let mut finished = false;
        for tlv in &plaintext.tlvs {
            match tlv.typ {
                V3TlvType::Disconnected => finished = true,
                V3TlvType::Smp1
                | V3TlvType::Smp1Q
                | V3TlvType::Smp2
                | V3TlvType::Smp3
                | V3TlvType::Smp4
                | V3TlvType::SmpAbort => {
                    let step = live.smp.receive(tlv, rng);
                    replies.extend(step.reply);
                    if let Some(e) = step.event {
                        Self::smp_event(ctx, out, sender, e);
                    }
                }
                // Padding is dropped; the extra symmetric key (type 8) is not offered in
                // the compatible mode (docs/spec-notes.md); unknown types are ignored.
                _ => {}
            }
        }
        if !replies.is_empty() {
            Self::send_control(ctx, out, live, sender, &replies);
        }
        if !plaintext.message.is_empty() {
            out.push(Event::Received {
                from: String::from(ctx.peer),
                from_instance: Some(sender),
                text: String::from_utf8_lossy(&plaintext.message).into_owned(),
                tlvs: Vec::new(),
                encrypted: true,
            });
        }
        if finished {
            // Protocol-v3.html: a Disconnected TLV moves msgstate to MSGSTATE_FINISHED.
            self.msg = Msg::Finished;
            out.push(Event::Finished {
                peer: String::from(ctx.peer),
                instance: sender,
            });
        }
    }

    fn smp_event(ctx: &Ctx<'_>, out: &mut Vec<Event>, tag: InstanceTag, e: SmpEvent) {
        let update = match e {
            SmpEvent::SecretRequested { question } => SmpUpdate::AskForSecret {
                question: question.map(|q| String::from_utf8_lossy(&q).into_owned()),
            },
            SmpEvent::Finished { verified: true } => SmpUpdate::Succeeded,
            SmpEvent::Finished { verified: false } => SmpUpdate::Failed,
            SmpEvent::AbortedByPeer => SmpUpdate::Aborted { reason: None },
            SmpEvent::OutOfOrder => SmpUpdate::Aborted {
                reason: Some(SmpError::BadProof("OTRv3 SMP message out of order")),
            },
            SmpEvent::Failed(e) => SmpUpdate::Aborted {
                reason: Some(smp_error(e)),
            },
        };
        out.push(Event::Smp {
            peer: String::from(ctx.peer),
            instance: tag,
            update,
        });
    }

    /// A data message of TLVs only, flagged `IGNORE_UNREADABLE` (as libotr sends SMP and
    /// Disconnected records).
    fn send_control(
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        live: &mut Live,
        to: InstanceTag,
        tlvs: &[V3Tlv],
    ) {
        let sent = V3Plaintext::encode(b"", tlvs)
            .map_err(ConversationError::Encoding)
            .and_then(|p| {
                live.session
                    .encrypt(&p, FLAG_IGNORE_UNREADABLE)
                    .map_err(ConversationError::Otrv3)
            });
        match sent {
            Ok(bytes) => Self::send(ctx, out, to, &bytes),
            Err(e) => ctx.error(out, Some(to), e),
        }
    }

    /// The user's message (Protocol-v3.html §"When you send a Data Message"): encrypted and
    /// padded as the policy says; refused when `FINISHED`.
    pub(crate) fn send_user(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        text: &str,
        tlvs: &[Tlv],
    ) {
        let tag = self.their_tag;
        let live = match &mut self.msg {
            Msg::Encrypted(live) => live,
            Msg::Finished => return ctx.not_sent(out, Some(tag), text, NotSentReason::Finished),
            Msg::Plaintext => {
                return ctx.error(out, Some(tag), ConversationError::NotEncrypted);
            }
        };
        // The v3 plaintext has the v4 layout (text, NUL, TLVs) and the same Padding type 0.
        let sent = ctx
            .account
            .policy
            .padding
            .encode_plaintext(text.as_bytes(), tlvs)
            .map_err(ConversationError::Encoding)
            .and_then(|p| {
                let p = zeroize::Zeroizing::new(p);
                live.session
                    .encrypt(&p, 0)
                    .map_err(ConversationError::Otrv3)
            });
        match sent {
            Ok(bytes) => Self::send(ctx, out, tag, &bytes),
            Err(e) => ctx.error(out, Some(tag), e),
        }
    }

    /// Sends what was queued before the session, in order.
    pub(crate) fn flush(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Event>, queued: Vec<Queued>) {
        for q in queued {
            self.send_user(ctx, out, &q.text, &q.tlvs);
        }
    }

    /// The user ends the v3 conversation: a Disconnected TLV if encrypted, then
    /// `MSGSTATE_PLAINTEXT`; any AKE under way is dropped.
    pub(crate) fn end(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Event>) {
        self.auth = Auth::None;
        let tag = self.their_tag;
        if let Msg::Encrypted(mut live) = core::mem::replace(&mut self.msg, Msg::Plaintext) {
            let disconnect = V3Tlv {
                typ: V3TlvType::Disconnected,
                value: Vec::new(),
            };
            Self::send_control(ctx, out, &mut live, tag, &[disconnect]);
            out.push(Event::Disconnected {
                peer: String::from(ctx.peer),
                instance: tag,
                reason: DisconnectReason::UserEnded,
            });
        }
    }

    fn live(&mut self) -> Result<&mut Live, ConversationError> {
        match &mut self.msg {
            Msg::Encrypted(live) => Ok(live),
            _ => Err(ConversationError::NotEncrypted),
        }
    }

    /// The user starts SMP (Protocol-v3.html §"Socialist Millionaires' Protocol").
    pub(crate) fn smp_start<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        secret: &[u8],
        question: Option<&str>,
    ) {
        let tag = self.their_tag;
        let live = match self.live() {
            Ok(l) => l,
            Err(e) => return ctx.error(out, Some(tag), e),
        };
        let sctx = live.smp_ctx;
        let (restart, first) = live
            .smp
            .start(&sctx, secret, question.map(str::as_bytes), rng);
        let tlvs: Vec<V3Tlv> = restart.into_iter().chain([first]).collect();
        Self::send_control(ctx, out, live, tag, &tlvs);
        Self::smp_update(ctx, out, tag, SmpUpdate::InProgress);
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
        let live = match self.live() {
            Ok(l) => l,
            Err(e) => return ctx.error(out, Some(tag), e),
        };
        let sctx = live.smp_ctx;
        match live.smp.respond(&sctx, secret, rng) {
            Ok(tlv) => {
                Self::send_control(ctx, out, live, tag, &[tlv]);
                Self::smp_update(ctx, out, tag, SmpUpdate::InProgress);
            }
            Err(e) => ctx.error(out, Some(tag), ConversationError::Smp(smp_error(e))),
        }
    }

    /// The user aborts SMP.
    pub(crate) fn smp_abort(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Event>) {
        let tag = self.their_tag;
        let live = match self.live() {
            Ok(l) => l,
            Err(e) => return ctx.error(out, Some(tag), e),
        };
        let abort = live.smp.abort();
        Self::send_control(ctx, out, live, tag, &[abort]);
        Self::smp_update(ctx, out, tag, SmpUpdate::Aborted { reason: None });
    }

    fn smp_update(ctx: &Ctx<'_>, out: &mut Vec<Event>, tag: InstanceTag, update: SmpUpdate) {
        out.push(Event::Smp {
            peer: String::from(ctx.peer),
            instance: tag,
            update,
        });
    }

    /// Time passes: an AKE older than `Policy::dake_timeout_secs` is abandoned.
    pub(crate) fn tick(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Event>) {
        let timeout = ctx.account.policy.dake_timeout_secs;
        if !matches!(self.auth, Auth::None)
            && timeout > 0
            && ctx.now.saturating_sub(self.auth_since) >= timeout
        {
            self.auth = Auth::None;
            ctx.warn(out, None, Warning::DakeTimedOut);
        }
    }
}
