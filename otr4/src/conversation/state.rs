//! The conversation with one peer instance (otrv4.md §"The Protocol State Machine"): its
//! state (`START`, `WAITING_AUTH_R`, `WAITING_AUTH_I`, `ENCRYPTED_MESSAGES`, `FINISHED`).
//!
//! One [`Conversation`] per peer instance tag. The DAKE states hold the typed states of
//! [`crate::dake`]; `ENCRYPTED_MESSAGES` holds a [`Session`] built from a
//! [`crate::dake::DakeComplete`] or a [`crate::dake::non_interactive::NonInteractiveComplete`].
//! While a new DAKE runs over an encrypted session, the old session stays live (see
//! docs/spec-notes.md). The transitions are in `handshake` (the DAKEs) and `messaging`
//! (data messages, SMP, timers).

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::InstanceTag;
use crate::crypto::fingerprint::Fingerprint;
use crate::dake::{self, WaitingAuthI, WaitingAuthR};
use crate::debug::redacted_debug;
use crate::ratchet::SecretBytes;
use crate::wire::codec::{Reader, Writer};
use crate::wire::messages::IdentityMessage;

use super::context::{Queued, Stored};
use super::events::ConversationState;
use super::persisted::{
    Persist, PersistError, persist_all, persist_opt_i64, read_opt_i64, read_tag, restore_all,
    u32_of, usize_of,
};
use super::session::{IDENTITY_DIGEST_LEN, Session, identity_digest};

/// How many completed DAKEs' Identity messages a conversation remembers to ignore replays.
pub const MAX_REMEMBERED_IDENTITIES: usize = 8;

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
/// [`super::client::Client`]; read its state here.
pub struct Conversation {
    pub(crate) their_tag: InstanceTag,
    pub(crate) phase: Phase,
    pub(crate) queue: Vec<Queued>,
    pub(crate) stored: Vec<Stored>,
    pub(crate) seen_identities: Vec<[u8; IDENTITY_DIGEST_LEN]>,
    pub(crate) dake_started_at: i64,
    pub(crate) last_sent: Option<i64>,
    pub(crate) last_received: Option<i64>,
    /// The fingerprint the caller accepts for this instance
    /// ([`super::client::Client::expect_fingerprint`]; not persisted: the caller sets it
    /// again after an import).
    pub(crate) expected: Option<Fingerprint>,
}

redacted_debug!(Conversation {
    their_tag,
    state = |s| s.state(),
    queued = |s| s.queue.len(),
    stored: len,
    session = |s| s.live()
});

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
    /// one the caller accepts ([`super::client::Client::expect_fingerprint`]).
    pub fn key_accepted(&self) -> bool {
        self.their_fingerprint().is_none_or(|f| self.accepts(&f))
    }

    /// Our DAKE role in the live session (for a session made by the non-interactive DAKE:
    /// `Alice` for the sender of the Non-Interactive-Auth message, `Bob` for its receiver,
    /// matching the SSID halves of otrv4.md §"Secure Session ID").
    #[cfg(feature = "hazmat")]
    pub fn role(&self) -> Option<dake::Role> {
        self.live().map(|s| s.role)
    }

    /// Whether the live session was made by the non-interactive DAKE (an offline
    /// conversation), and our side of it.
    pub fn non_interactive_role(&self) -> Option<dake::non_interactive::NonInteractiveRole> {
        self.live().and_then(|s| s.non_interactive)
    }

    /// The live session's ratchet id `i` (grows by one per DH ratchet).
    #[cfg(feature = "hazmat")]
    pub fn ratchet_id(&self) -> Option<u32> {
        self.live().map(|s| s.ratchet.ratchet_id())
    }

    /// The live session's SMP state.
    #[cfg(feature = "hazmat")]
    pub fn smp_state(&self) -> Option<crate::smp::SmpState> {
        self.live().map(|s| s.smp.state())
    }

    /// Messages queued until the session is encrypted.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Data messages stored until the DAKE completes.
    #[cfg(feature = "hazmat")]
    pub fn stored(&self) -> usize {
        self.stored.len()
    }

    /// When we last sent to / received from this instance.
    #[cfg(feature = "hazmat")]
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

    pub(crate) fn remember_identity(&mut self, d: [u8; IDENTITY_DIGEST_LEN]) {
        if self.seen_identities.contains(&d) {
            return;
        }
        if self.seen_identities.len() >= MAX_REMEMBERED_IDENTITIES {
            self.seen_identities.remove(0);
        }
        self.seen_identities.push(d);
    }

    /// Whether `msg` is a replay of the Identity message of a DAKE that completed (or of
    /// the live session's).
    pub(crate) fn is_replayed_identity(&self, msg: &IdentityMessage) -> bool {
        let d = identity_digest(msg);
        self.seen_identities.contains(&d) || self.live().is_some_and(|s| s.identity == d)
    }
}

/// `their tag INT || state BYTE (0 START, 1 ENCRYPTED_MESSAGES, 2 FINISHED) || opt last sent
/// LONG || opt last received LONG || INT n (at most [`MAX_REMEMBERED_IDENTITIES`]) || n ×
/// 32-byte digests of completed DAKEs' Identity messages || queue || session if state is 1`.
/// A DAKE under way is not written: the conversation comes back in `START`, or in
/// `ENCRYPTED_MESSAGES` with the session kept live during the DAKE; stored early data
/// messages are dropped. The context is our instance tag.
impl Persist for Conversation {
    type Context<'a> = InstanceTag;

    fn persist(&self, w: &mut SecretBytes, version: u16) {
        w.u32(self.their_tag.0);
        let live = self.live();
        let state = if live.is_some() {
            1
        } else if matches!(self.phase, Phase::Finished) {
            2
        } else {
            0
        };
        w.u8(state);
        persist_opt_i64(w, self.last_sent);
        persist_opt_i64(w, self.last_received);
        w.u32(u32_of(self.seen_identities.len()));
        for d in &self.seen_identities {
            w.bytes(d);
        }
        persist_all(w, &self.queue, version);
        if let Some(s) = live {
            s.persist(w, version);
        }
    }

    fn restore(
        r: &mut Reader<'_>,
        version: u16,
        our_tag: InstanceTag,
    ) -> Result<Conversation, PersistError> {
        let their_tag = read_tag(r, "conversation tag")?;
        let state = r.u8("conversation state")?;
        let last_sent = read_opt_i64(r, "last sent")?;
        let last_received = read_opt_i64(r, "last received")?;
        let n = r.u32("identity digests")?;
        if usize_of(n) > MAX_REMEMBERED_IDENTITIES {
            return Err(PersistError::Invalid("too many identity digests"));
        }
        let mut seen_identities = Vec::new();
        for _ in 0..n {
            seen_identities.push(r.array::<IDENTITY_DIGEST_LEN>("identity digest")?);
        }
        let queue = restore_all(r, version, (), "queue length")?;
        let phase = match state {
            0 => Phase::Start,
            1 => Phase::Encrypted(Box::new(Session::restore(
                r,
                version,
                (our_tag, their_tag),
            )?)),
            2 => Phase::Finished,
            _ => return Err(PersistError::Invalid("conversation state")),
        };
        Ok(Conversation {
            their_tag,
            phase,
            queue,
            stored: Vec::new(),
            seen_identities,
            dake_started_at: 0,
            last_sent,
            last_received,
            expected: None,
        })
    }
}
