//! The DAKE transitions of a [`Conversation`] (otrv4.md §"Interactive DAKE", §"Receiving
//! an Identity/Auth-R/Auth-I Message", §"Non-Interactive DAKE"): into `WAITING_AUTH_R`,
//! `WAITING_AUTH_I` and `ENCRYPTED_MESSAGES`.

use crate::wire::codec::Codec;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use crate::dake::non_interactive::NonInteractiveComplete;
use crate::dake::{self, DakeComplete, SimultaneousIdentity, WaitingAuthI};
use crate::wire::messages::{AuthI, AuthR, IdentityMessage, NonInteractiveAuth};

use super::context::{Ctx, Stored};
use super::events::{DisconnectReason, Event, Warning};
use super::session::{IDENTITY_DIGEST_LEN, Session, identity_digest, non_interactive_digest};
use super::state::{Conversation, Phase};

impl Conversation {
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
        if live.as_ref().is_some_and(|s| s.non_interactive.is_some())
            && let Some(session) = live.take()
        {
            self.disconnect(ctx, out, rng, session, DisconnectReason::SwitchingDake);
        }
        self.phase = Phase::WaitingAuthR { dake, live };
        self.dake_started_at = ctx.now;
        self.last_sent = Some(ctx.now);
        ctx.send_encoded(out, self.their_tag, &identity.encode(), rng);
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

    // -----------------------------------------------------------------------------------
    // Non-interactive DAKE.

    /// Our Non-Interactive-Auth message was made (otrv4.md §"Sending a Data Message to an
    /// offline participant"): a live session is ended with a TLV type 1 (§"Starting an
    /// offline conversation after an online one"), any DAKE state is replaced, the
    /// Non-Interactive-Auth message is sent, the ratchet initialised, `ENCRYPTED_MESSAGES`
    /// entered, and the messages queued for this instance are sent.
    pub(crate) fn start_non_interactive<R: rand_core::CryptoRng + ?Sized>(
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
        self.enter_non_interactive(ctx, out, done, non_interactive_digest(nia));
        let queued = core::mem::take(&mut self.queue);
        self.flush(ctx, out, rng, queued);
    }

    /// A Non-Interactive-Auth message from this instance verified (otrv4.md §"Receiving a
    /// Non-Interactive-Auth Message"): any state or key is forgotten, the ratchet
    /// initialised, `ENCRYPTED_MESSAGES` entered; then the stored data messages (`early`
    /// and those stored in `WAITING_AUTH_I`) are tried once each, and the queued messages
    /// are sent.
    pub(crate) fn accept_non_interactive<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        done: NonInteractiveComplete,
        digest: [u8; IDENTITY_DIGEST_LEN],
        early: Vec<Stored>,
    ) {
        drop(self.take_phase());
        self.last_received = Some(ctx.now);
        self.enter_non_interactive(ctx, out, done, digest);
        let stored = core::mem::take(&mut self.stored);
        for s in early.into_iter().chain(stored) {
            self.receive_data(ctx, out, rng, &s.msg, true);
        }
        let queued = core::mem::take(&mut self.queue);
        self.flush(ctx, out, rng, queued);
    }

    /// `ENCRYPTED_MESSAGES` with the session of a completed non-interactive DAKE.
    fn enter_non_interactive(
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
