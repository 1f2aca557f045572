//! A live encrypted session (otrv4.md §"Data Exchange"): the double ratchet, the SMP state,
//! the SSID and the peer's profile, plus the heartbeat and session-expiration timers.

use crate::debug::redacted_debug;
use crate::wire::codec::{Codec, Reader, Writer};
use alloc::vec::Vec;

use crate::InstanceTag;
use crate::crypto::fingerprint::Fingerprint;
use crate::crypto::kdf::shake256;
use crate::dake::non_interactive::{NonInteractiveComplete, NonInteractiveRole};
use crate::dake::{DakeComplete, Role, Ssid};
use crate::profile::client::ClientProfile;
use crate::ratchet::{Decrypted, DoubleRatchet, ExtraSymmetricKey, RatchetError, SecretBytes};
use crate::smp::{Smp, SmpContext};
use crate::wire::messages::{DataMessage, IdentityMessage, NonInteractiveAuth};
use crate::wire::tlv::Tlv;

use super::events::ConversationError;
use super::persisted::{Persist, PersistError, persist_opt_i64, read_flag, read_opt_i64, read_tag};
use super::policy::Padding;

/// Bytes of the digest identifying an Identity message's ephemeral keys.
pub const IDENTITY_DIGEST_LEN: usize = 32;

/// `SHAKE-256(POINT(Y) || MPI(B), 32)`: identifies the ephemeral keys of an Identity
/// message, to recognise a replay of the Identity message of a DAKE that already completed.
pub fn identity_digest(msg: &IdentityMessage) -> [u8; IDENTITY_DIGEST_LEN] {
    let mut out = [0u8; IDENTITY_DIGEST_LEN];
    shake256(&[&msg.y.encode(), &msg.b.to_be_bytes()], &mut out);
    out
}

/// `SHAKE-256(POINT(X) || MPI(A), 32)`: identifies the ephemeral keys of a
/// Non-Interactive-Auth message (the DAKE that made an offline session), as
/// [`identity_digest`] does for an Identity message.
pub fn non_interactive_digest(msg: &NonInteractiveAuth) -> [u8; IDENTITY_DIGEST_LEN] {
    let mut out = [0u8; IDENTITY_DIGEST_LEN];
    shake256(&[&msg.x.encode(), &msg.a.to_be_bytes()], &mut out);
    out
}

/// An encrypted session. Created only from a [`DakeComplete`] or a
/// [`NonInteractiveComplete`] (the DAKE's proof that both
/// sides authenticated), or restored from an export of such a session.
pub(crate) struct Session {
    pub(crate) ratchet: DoubleRatchet,
    pub(crate) ssid: Ssid,
    pub(crate) role: Role,
    /// `Some` for a session made by the non-interactive DAKE (our side of it); `role` is
    /// then `Alice` for the sender and `Bob` for the receiver (the same SSID halves).
    pub(crate) non_interactive: Option<NonInteractiveRole>,
    pub(crate) our_tag: InstanceTag,
    pub(crate) their_tag: InstanceTag,
    pub(crate) their_profile: ClientProfile,
    pub(crate) smp: Smp,
    /// The Identity (or Non-Interactive-Auth) message of the DAKE that made this session.
    pub(crate) identity: [u8; IDENTITY_DIGEST_LEN],
    pub(crate) established_at: i64,
    /// When we last sent a data message (initially: when the session was established).
    pub(crate) last_sent: i64,
    /// Whether a data message arrived since we last sent one.
    pub(crate) received_since_send: bool,
    /// When our last new ECDH key was generated, counted from the first data message sent
    /// or received (otrv4.md §"Session Expiration"); `None` before any data message.
    pub(crate) expiry_timer: Option<i64>,
}

redacted_debug!(Session {
    ssid,
    role,
    non_interactive,
    their_tag,
    ratchet,
    ..
});

impl Session {
    /// Enters `ENCRYPTED_MESSAGES` from a completed DAKE (otrv4.md §"Sending an Auth-I
    /// Message", §"Receiving an Auth-I Message": "Initialize the double ratcheting").
    pub(crate) fn establish<R: rand_core::CryptoRng + ?Sized>(
        done: DakeComplete,
        identity: [u8; IDENTITY_DIGEST_LEN],
        now: i64,
        rng: &mut R,
    ) -> Result<Session, ConversationError> {
        let init = done.into_ratchet_init();
        let ssid = init.ssid;
        let role = init.role;
        let our_tag = init.our_tag;
        let their_tag = init.their_tag;
        let their_profile = init.their_profile.profile().clone();
        let ratchet = init
            .into_double_ratchet(rng)
            .map_err(ConversationError::Ratchet)?;
        Ok(Session {
            ratchet,
            ssid,
            role,
            non_interactive: None,
            our_tag,
            their_tag,
            their_profile,
            smp: Smp::new(),
            identity,
            established_at: now,
            last_sent: now,
            received_since_send: false,
            expiry_timer: None,
        })
    }

    /// Enters `ENCRYPTED_MESSAGES` from a completed non-interactive DAKE (otrv4.md
    /// §"Non-Interactive DAKE Overview": "Initializes the double-ratchet"; §"Sending a Data
    /// Message to an offline participant", §"Receiving a Non-Interactive-Auth Message").
    /// `digest` is [`non_interactive_digest`] of the message.
    pub(crate) fn establish_non_interactive(
        done: NonInteractiveComplete,
        digest: [u8; IDENTITY_DIGEST_LEN],
        now: i64,
    ) -> Session {
        let kind = done.role();
        let role = match kind {
            NonInteractiveRole::Sender => Role::Alice,
            NonInteractiveRole::Receiver => Role::Bob,
        };
        let ssid = done.ssid();
        let our_tag = done.our_tag();
        let their_tag = done.their_tag();
        let their_profile = done.their_profile().profile().clone();
        let ratchet = done.into_double_ratchet();
        Session {
            ratchet,
            ssid,
            role,
            non_interactive: Some(kind),
            our_tag,
            their_tag,
            their_profile,
            smp: Smp::new(),
            identity: digest,
            established_at: now,
            last_sent: now,
            received_since_send: false,
            expiry_timer: None,
        }
    }

    /// The peer's fingerprint.
    pub(crate) fn their_fingerprint(&self) -> Fingerprint {
        Fingerprint::otrv4(
            self.their_profile.public_key(),
            self.their_profile.forging_key(),
        )
    }

    /// The SMP inputs of this session.
    pub(crate) fn smp_context(&self, our_fingerprint: Fingerprint) -> SmpContext {
        SmpContext {
            our_fingerprint,
            their_fingerprint: self.their_fingerprint(),
            ssid: self.ssid.0,
        }
    }

    /// Encrypts `text` and `tlvs`, padded as `padding` says (a Padding TLV appended last),
    /// into an encoded Data Message (otrv4.md §"Sending a Data Message"). With
    /// `reveal_all`, every MAC key still held is revealed (otrv4.md §"Session
    /// Expiration"). Returns the message bytes and its extra symmetric key.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn encrypt<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        text: &[u8],
        tlvs: &[Tlv],
        padding: Padding,
        flags: u8,
        reveal_all: bool,
        now: i64,
        rng: &mut R,
    ) -> Result<(Vec<u8>, ExtraSymmetricKey), ConversationError> {
        let encoded = padding.encode_plaintext(text, tlvs);
        let plaintext = SecretBytes::new(encoded.map_err(ConversationError::Encoding)?);
        let new_key = self.ratchet.needs_sending_ratchet();
        let enc = if reveal_all {
            self.ratchet
                .encrypt_revealing_all(self.our_tag, self.their_tag, flags, &plaintext, rng)
        } else {
            self.ratchet
                .encrypt(self.our_tag, self.their_tag, flags, &plaintext, rng)
        }
        .map_err(ConversationError::Ratchet)?;
        if new_key || self.expiry_timer.is_none() {
            self.expiry_timer = Some(now);
        }
        self.last_sent = now;
        self.received_since_send = false;
        Ok((enc.message.encode(), enc.extra_symm_key))
    }

    /// Verifies and decrypts a Data Message; on error the ratchet is unchanged.
    pub(crate) fn decrypt(
        &mut self,
        msg: &DataMessage,
        now: i64,
    ) -> Result<Decrypted, RatchetError> {
        let d = self.ratchet.decrypt(msg)?;
        self.received_since_send = true;
        if self.expiry_timer.is_none() {
            self.expiry_timer = Some(now);
        }
        Ok(d)
    }

    /// Whether the session expired at `now` (0 disables expiry).
    pub(crate) fn expired(&self, now: i64, expiry_secs: i64) -> bool {
        expiry_secs > 0
            && self
                .expiry_timer
                .is_some_and(|t| now.saturating_sub(t) >= expiry_secs)
    }

    /// Whether a heartbeat is due at `now` (0 disables heartbeats).
    pub(crate) fn heartbeat_due(&self, now: i64, heartbeat_secs: i64) -> bool {
        heartbeat_secs > 0 && now.saturating_sub(self.last_sent) >= heartbeat_secs
    }
}

/// `DATA(double-ratchet export) || SSID (8) || role BYTE (0 Bob, 1 Alice) || kind BYTE
/// (version 2 only: 0 interactive DAKE, 1 non-interactive DAKE sender, 2 non-interactive DAKE
/// receiver; version 1 sessions are interactive) || our tag INT || their tag INT ||
/// DATA(their Client Profile) || Identity digest (32) || established LONG || last sent LONG
/// || received-since-sent BYTE || opt expiry timer LONG`. The context is (our tag, their
/// tag), which the stored tags must equal. SMP state is not persisted.
impl Persist for Session {
    type Context<'a> = (InstanceTag, InstanceTag);

    fn persist(&self, w: &mut SecretBytes, version: u16) {
        w.data(&self.ratchet.export());
        w.bytes(&self.ssid.0);
        w.u8(match self.role {
            Role::Bob => 0,
            Role::Alice => 1,
        });
        if version >= 2 {
            w.u8(match self.non_interactive {
                None => 0,
                Some(NonInteractiveRole::Sender) => 1,
                Some(NonInteractiveRole::Receiver) => 2,
            });
        }
        w.u32(self.our_tag.0).u32(self.their_tag.0);
        w.data(&self.their_profile.encode());
        w.bytes(&self.identity);
        w.i64(self.established_at).i64(self.last_sent);
        w.u8(u8::from(self.received_since_send));
        persist_opt_i64(w, self.expiry_timer);
    }

    fn restore(
        r: &mut Reader<'_>,
        version: u16,
        (our_tag, their_tag): (InstanceTag, InstanceTag),
    ) -> Result<Session, PersistError> {
        let ratchet = DoubleRatchet::import(r.data("ratchet")?)?;
        let ssid = Ssid(r.array("SSID")?);
        let role = match r.u8("role")? {
            0 => Role::Bob,
            1 => Role::Alice,
            _ => return Err(PersistError::Invalid("role")),
        };
        let non_interactive = if version >= 2 {
            match (r.u8("session kind")?, role) {
                (0, _) => None,
                (1, Role::Alice) => Some(NonInteractiveRole::Sender),
                (2, Role::Bob) => Some(NonInteractiveRole::Receiver),
                _ => return Err(PersistError::Invalid("session kind")),
            }
        } else {
            None
        };
        if read_tag(r, "session our tag")? != our_tag
            || read_tag(r, "session their tag")? != their_tag
        {
            return Err(PersistError::Invalid("session instance tags"));
        }
        let their_profile = ClientProfile::decode(r.data("peer profile")?)?;
        if their_profile.owner_tag() != their_tag
            || their_profile.validate(their_tag, i64::MIN).is_err()
        {
            return Err(PersistError::Invalid("peer profile"));
        }
        let identity: [u8; IDENTITY_DIGEST_LEN] = r.array("identity digest")?;
        let established_at = r.i64("established")?;
        let last_sent = r.i64("last sent")?;
        let received_since_send = read_flag(r, "received since send")?;
        let expiry_timer = read_opt_i64(r, "expiry timer")?;
        Ok(Session {
            ratchet,
            ssid,
            role,
            non_interactive,
            our_tag,
            their_tag,
            their_profile,
            smp: Smp::new(),
            identity,
            established_at,
            last_sent,
            received_since_send,
            expiry_timer,
        })
    }
}
