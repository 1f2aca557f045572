//! The `ENCRYPTED_MESSAGES` side of a [`Conversation`] (otrv4.md §"Data Exchange",
//! §"Socialist Millionaires Protocol (SMP)", §"Session Expiration"): sending and queueing
//! user messages behind the key gate, receiving data messages, SMP, extra keys, timers.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::InstanceTag;
use crate::crypto::fingerprint::Fingerprint;
use crate::ratchet::{Decrypted, ExtraSymmetricKey};
use crate::smp::SmpEvent;
use crate::wire::error_msg::{ErrorCode, build_error};
use crate::wire::messages::{DataMessage, FLAG_IGNORE_UNREADABLE};
use crate::wire::tlv::{Tlv, TlvType, parse_plaintext};

use super::context::{Ctx, Queued, Stored};
use super::events::{
    ConversationError, DisconnectReason, Event, NotSentReason, SmpUpdate, Warning,
};
use super::session::Session;
use super::state::{Conversation, Phase};

impl Conversation {
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
        match session.encrypt(
            text.as_bytes(),
            tlvs,
            ctx.account.policy.padding,
            flags,
            false,
            ctx.now,
            rng,
        ) {
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
        match session.encrypt(
            b"",
            &tlv,
            ctx.account.policy.padding,
            FLAG_IGNORE_UNREADABLE,
            true,
            ctx.now,
            rng,
        ) {
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
                // Padding is stripped: never shown, whatever its length.
                tlvs: pt
                    .tlvs
                    .iter()
                    .filter(|t| t.typ != TlvType::Padding)
                    .cloned()
                    .collect(),
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
