//! Conversation policy (otrv4.md §"OTRv4 Modes", §"The Protocol State Machine"): the mode,
//! the allowed versions, encryption requirements, instance selection, sizes and timers.

use alloc::vec::Vec;

use crate::ratchet::SecretBytes;
use crate::wire::codec::{DecodeError, Reader, Writer};
use crate::wire::query::Versions;
use crate::wire::tlv::{Tlv, TlvType, encode_plaintext};

use super::events::ConversationError;
use super::persisted::{Persist, PersistError, u32_of, usize_of};

/// The OTRv4 modes of otrv4.md §"OTRv4 Modes" (and the `modes/` documents of the spec
/// repository). The state machine consults the mode on every decision about plaintext,
/// query messages, whitespace tags and offline conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The OTRv3-compatible mode (otrv4.md §"OTRv3-compatible mode"): plaintext, query
    /// messages and whitespace tags are handled; version 4 is used whenever the peer offers
    /// it, and with version 3 in [`Policy::versions`] and an OTRv3 key in the account
    /// ([`super::Account::set_v3_key`], feature `v3`) a peer that offers only version 3 gets
    /// an OTRv3 session ([`super::Event::SecureV3`]). Without the key or the version, a
    /// request for version 3 is answered with [`super::Warning::Otrv3Unsupported`] and nothing
    /// is sent. Offline conversations (version 4) are supported.
    Otrv3Compatible,
    /// OTRv4-standalone (modes/otrv4-standalone-mode.md): always encrypted, version 4 only.
    /// Query messages and whitespace tags are neither sent nor answered; conversations start
    /// with an Identity message; plaintext is never sent (it is queued until encrypted) and a
    /// received one is handed to the application with a warning. Offline conversations
    /// (the non-interactive DAKE, [`super::Client::send_offline`]) are supported.
    Standalone,
    /// OTRv4-interactive-only (modes/otrv4-interactive-only-mode.md): like
    /// [`Mode::Standalone`], and any request for an offline conversation (Prekey or
    /// Non-Interactive-Auth message) is rejected with [`super::Warning::OfflineRejected`].
    InteractiveOnly,
}

impl Mode {
    /// Whether the mode handles plaintext, query messages and whitespace tags.
    pub(crate) fn handles_plaintext(self) -> bool {
        matches!(self, Mode::Otrv3Compatible)
    }

    /// Whether the mode allows offline conversations (the non-interactive DAKE): every mode
    /// but [`Mode::InteractiveOnly`] (otrv4.md §"OTRv4 Modes").
    pub(crate) fn allows_offline(self) -> bool {
        !matches!(self, Mode::InteractiveOnly)
    }
}

/// Which conversation(s) a message to a bare JID goes to when the peer has several
/// instances (OTRv3's `OTRL_INSTAG_*` selection policies; otrv4.md §"Considerations for
/// Networks that allow Multiple Clients").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Selection {
    /// The most secure instance: one holding an encrypted session (most recently received
    /// from, then most recently sent to), else one running a DAKE, else a `FINISHED` one
    /// (so nothing leaks as plaintext), else one in `START`.
    Best,
    /// The instance with the most recent activity (sent or received), any state.
    Recent,
    /// The instance we most recently received from.
    RecentReceived,
    /// The instance we most recently sent to.
    RecentSent,
    /// Every known instance of the peer, each through its own session, and every other
    /// device of our own bare JID that holds an encrypted session with us.
    Multicasting,
}

/// The bucket of [`Padding::Buckets`]: plaintexts are padded to the next multiple of 256
/// bytes, as Chatterbox does (a "yes" and a 250-byte sentence look the same on the wire).
pub const DEFAULT_PADDING_BUCKET: u16 = 256;

/// Bytes a padding record adds besides its value: the NUL that ends the human-readable part
/// and the TLV header (type and length, two SHORTs). otrv4.md §"Data Message".
const PADDING_FRAMING: usize = 1 + 4;

/// How the plaintext of every data message we send is padded with a Padding TLV (type 0,
/// otrv4.md §"TLV Record Types": "can be used to disguise the length of a plaintext
/// message"), so that message lengths do not reveal what was said. The receiver drops the
/// padding whatever its length; it is never shown.
///
/// With a bucket of `n` bytes, the content of the plaintext (the text and any other TLVs,
/// with their NUL) is counted in whole buckets (at least one, so heartbeats look like
/// short messages) and a padding record fills it up: every plaintext whose content fits in
/// `k` buckets is `k·n + 5` bytes long (the 5 being the NUL and the padding record's header,
/// see `docs/spec-notes.md` §"Text framing").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Padding {
    /// No padding: the ciphertext is as long as the plaintext.
    None,
    /// The fixed buckets (the default): the next multiple of [`DEFAULT_PADDING_BUCKET`].
    Buckets,
    /// Custom buckets: the next multiple of this many bytes.
    Custom(core::num::NonZeroU16),
}

impl Padding {
    /// The bucket size in bytes, or `None` without padding.
    pub fn bucket(self) -> Option<usize> {
        match self {
            Padding::None => None,
            Padding::Buckets => Some(usize::from(DEFAULT_PADDING_BUCKET)),
            Padding::Custom(n) => Some(usize::from(n.get())),
        }
    }

    /// The value length of the padding record for a plaintext whose encoding without
    /// padding is `content` bytes and which `has_nul` (it already carries TLVs, so the NUL
    /// is counted in `content`); `None` without padding. At most the bucket size, so a
    /// single record of at most `MAX_TLV_VALUE_LEN` bytes always suffices.
    fn value_len(self, content: usize, has_nul: bool) -> Option<usize> {
        let n = self.bucket()?;
        let buckets = content.div_ceil(n).max(1);
        let target = buckets.saturating_mul(n).saturating_add(PADDING_FRAMING);
        let framing = if has_nul { 4 } else { PADDING_FRAMING };
        Some(target.saturating_sub(content).saturating_sub(framing))
    }

    /// The plaintext of a data message (otrv4.md §"Data Message": `text`, then a NUL and
    /// `tlvs` if any), padded as `self` says with one Padding record appended last; encoded
    /// in one allocation of its exact size, so no copy of it is left behind by a
    /// reallocation.
    pub(crate) fn encode_plaintext(
        self,
        text: &[u8],
        tlvs: &[Tlv],
    ) -> Result<Vec<u8>, DecodeError> {
        let content = if tlvs.is_empty() {
            text.len()
        } else {
            text.len() + 1 + tlvs.iter().map(|t| 4 + t.value.len()).sum::<usize>()
        };
        match self.value_len(content, !tlvs.is_empty()) {
            Some(len) => {
                let mut padded = Vec::with_capacity(tlvs.len() + 1);
                padded.extend_from_slice(tlvs);
                padded.push(Tlv::new(TlvType::Padding, alloc::vec![0u8; len]));
                encode_plaintext(text, &padded)
            }
            None => encode_plaintext(text, tlvs),
        }
    }
}

/// Default heartbeat interval: 60 s, libotr-ng's `HEARTBEAT_INTERVAL`.
pub const DEFAULT_HEARTBEAT_SECS: i64 = 60;
/// Default session expiration: 2 hours, the example of otrv4.md §"Session Expiration".
pub const DEFAULT_SESSION_EXPIRY_SECS: i64 = 2 * 60 * 60;
/// Default lifetime of a data message stored before the DAKE completed: 10 minutes, the low
/// end of the "10-60 minutes" otrv4.md §"Receiving a Data Message" recommends.
pub const DEFAULT_STORED_MESSAGE_SECS: i64 = 10 * 60;
/// Default bound on stored early data messages per conversation.
pub const DEFAULT_MAX_STORED_MESSAGES: usize = 32;
/// Default bound on messages queued while a DAKE runs, per conversation and per peer.
pub const DEFAULT_MAX_QUEUED_MESSAGES: usize = 64;
/// Default time a DAKE may take before it is abandoned (the mode documents recommend a
/// timeout "if a DAKE message is lost and never delivered").
pub const DEFAULT_DAKE_TIMEOUT_SECS: i64 = 10 * 60;
/// Default Client Profile lifetime: two weeks, libotr-ng's `CLIENT_PROFILE_EXPIRATION_SECONDS`.
pub const DEFAULT_PROFILE_LIFETIME_SECS: i64 = 14 * 24 * 60 * 60;
/// Default renewal margin: a profile is re-signed when it expires within one hour
/// (otrv4.md §"Client Profile Expiration and Renewal": renew before it expires).
pub const DEFAULT_PROFILE_RENEW_MARGIN_SECS: i64 = 60 * 60;

/// How an [`super::Account`] behaves in its conversations. All times are in seconds; a timer
/// of 0 is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The mode (otrv4.md §"OTRv4 Modes").
    pub mode: Mode,
    /// The allowed versions (otrv4.md §"Query Messages": "enabling users to choose whether
    /// they want to allow or disallow a version is required"). Without version 4 no OTRv4
    /// message is sent or accepted. Version 3 is allowed in [`Mode::Otrv3Compatible`] only,
    /// and offered only when the account has an OTRv3 key.
    pub versions: Versions,
    /// Never send plaintext: messages wait in a queue until a session is encrypted
    /// (always on in the standalone and interactive-only modes).
    pub require_encryption: bool,
    /// Append the version 4 whitespace tag to plaintext we send, until the peer sends us
    /// plaintext (otrv4.md §"Whitespace Tags").
    pub send_whitespace_tag: bool,
    /// Start a DAKE when a plaintext message with a version 4 whitespace tag arrives
    /// (otrv4.md §"Receiving plaintext with the whitespace tag").
    pub whitespace_start_dake: bool,
    /// The instance selection policy of [`super::Client::send`].
    pub selection: Selection,
    /// The network's maximum message size: longer encoded messages are fragmented
    /// (otrv4.md §"Transmitting Fragments"); 0 = never fragment.
    pub max_message_size: usize,
    /// Send a heartbeat (an empty data message with `IGNORE_UNREADABLE`) when a data message
    /// arrives and we have sent nothing for this long (otrv4.md §"Data Exchange").
    pub heartbeat_secs: i64,
    /// Expire a session whose last new ECDH key of ours is this old (otrv4.md §"Session
    /// Expiration").
    pub session_expiry_secs: i64,
    /// How long a data message received before the DAKE completed is kept
    /// (otrv4.md §"Receiving a Data Message").
    pub stored_message_secs: i64,
    /// Most data messages stored per conversation while the DAKE completes.
    pub max_stored_messages: usize,
    /// Most messages queued per conversation (and per peer) while no session is encrypted.
    pub max_queued_messages: usize,
    /// How long a DAKE may run before [`super::Client::tick`] abandons it.
    pub dake_timeout_secs: i64,
    /// Reassembly timeout for fragments (otrv4.md §"Receiving Fragments").
    pub fragment_timeout_secs: u64,
    /// Lifetime of our Client Profile when (re-)signed.
    pub profile_lifetime_secs: i64,
    /// Re-sign our Client Profile when it expires within this margin.
    pub profile_renew_margin_secs: i64,
    /// How the plaintext of every data message we send is padded ([`Padding::Buckets`]
    /// in every preset).
    pub padding: Padding,
}

impl Default for Policy {
    /// [`Mode::Otrv3Compatible`] with version 4: opportunistic (whitespace tags, DAKE on a
    /// tag or query), plaintext allowed, [`Selection::Best`], no fragmentation, the
    /// documented default timers, and [`Padding::Buckets`].
    fn default() -> Policy {
        Policy {
            mode: Mode::Otrv3Compatible,
            versions: Versions::V4,
            require_encryption: false,
            send_whitespace_tag: true,
            whitespace_start_dake: true,
            selection: Selection::Best,
            max_message_size: 0,
            heartbeat_secs: DEFAULT_HEARTBEAT_SECS,
            session_expiry_secs: DEFAULT_SESSION_EXPIRY_SECS,
            stored_message_secs: DEFAULT_STORED_MESSAGE_SECS,
            max_stored_messages: DEFAULT_MAX_STORED_MESSAGES,
            max_queued_messages: DEFAULT_MAX_QUEUED_MESSAGES,
            dake_timeout_secs: DEFAULT_DAKE_TIMEOUT_SECS,
            fragment_timeout_secs: crate::wire::fragment::DEFAULT_FRAGMENT_TIMEOUT_SECS,
            profile_lifetime_secs: DEFAULT_PROFILE_LIFETIME_SECS,
            profile_renew_margin_secs: DEFAULT_PROFILE_RENEW_MARGIN_SECS,
            padding: Padding::Buckets,
        }
    }
}

impl Policy {
    /// The OTRv4-standalone mode: always encrypted, no whitespace tags.
    pub fn standalone() -> Policy {
        Policy {
            mode: Mode::Standalone,
            require_encryption: true,
            send_whitespace_tag: false,
            whitespace_start_dake: false,
            ..Policy::default()
        }
    }

    /// The OTRv4-interactive-only mode: always encrypted, interactive DAKE only.
    pub fn interactive_only() -> Policy {
        Policy {
            mode: Mode::InteractiveOnly,
            ..Policy::standalone()
        }
    }

    /// Whether plaintext may be sent: only in [`Mode::Otrv3Compatible`] without
    /// [`Policy::require_encryption`].
    pub(crate) fn allows_plaintext(&self) -> bool {
        self.mode.handles_plaintext() && !self.require_encryption
    }

    /// Checks the policy is consistent: version 3 only in [`Mode::Otrv3Compatible`],
    /// `require_encryption` set in the always-encrypted modes, non-negative timers, and a
    /// maximum message size of 0 or large enough for one fragment.
    pub fn check(&self) -> Result<(), ConversationError> {
        if self.versions.has_v3() && !self.mode.handles_plaintext() {
            return Err(ConversationError::InvalidPolicy(
                "version 3 is not allowed in the standalone and interactive-only modes",
            ));
        }
        if !self.mode.handles_plaintext() && !self.require_encryption {
            return Err(ConversationError::InvalidPolicy(
                "the standalone and interactive-only modes always require encryption",
            ));
        }
        let timers = [
            self.heartbeat_secs,
            self.session_expiry_secs,
            self.stored_message_secs,
            self.dake_timeout_secs,
            self.profile_lifetime_secs,
            self.profile_renew_margin_secs,
        ];
        if timers.iter().any(|&t| t < 0) {
            return Err(ConversationError::InvalidPolicy("negative timer"));
        }
        if self.profile_lifetime_secs <= self.profile_renew_margin_secs {
            return Err(ConversationError::InvalidPolicy(
                "profile lifetime must exceed the renewal margin",
            ));
        }
        let min = crate::wire::fragment::FragmentKind::Otr.overhead() + 1;
        if self.max_message_size != 0 && self.max_message_size < min {
            return Err(ConversationError::InvalidPolicy(
                "maximum message size is too small for a fragment",
            ));
        }
        Ok(())
    }
}

/// `mode BYTE || versions BYTE (bit 0: v3, bit 1: v4) || flags BYTE (bit 0 require
/// encryption, bit 1 send whitespace tag, bit 2 whitespace starts DAKE, bit 3 padded) ||
/// selection BYTE || max message size INT || heartbeat, session expiry, stored message
/// lifetime (LONG each) || max stored, max queued (INT each) || DAKE timeout, fragment
/// timeout, profile lifetime, renewal margin (LONG each) || (only with bit 3) padding bucket
/// SHORT (non-zero)`; the same in every format version. Bit 3 clear is [`Padding::None`],
/// so a policy without padding is written byte for byte as before padding existed, and
/// exports made before read back unpadded, as they were saved (an older reader rejects bit
/// 3 as invalid flags). Read back, the policy must pass [`Policy::check`].
impl Persist for Policy {
    type Context<'a> = ();

    fn persist(&self, w: &mut SecretBytes, _version: u16) {
        let mode = match self.mode {
            Mode::Otrv3Compatible => 0,
            Mode::Standalone => 1,
            Mode::InteractiveOnly => 2,
        };
        let versions = u8::from(self.versions.has_v3()) | (u8::from(self.versions.has_v4()) << 1);
        let flags = u8::from(self.require_encryption)
            | (u8::from(self.send_whitespace_tag) << 1)
            | (u8::from(self.whitespace_start_dake) << 2)
            | (u8::from(self.padding.bucket().is_some()) << 3);
        let selection = match self.selection {
            Selection::Best => 0,
            Selection::Recent => 1,
            Selection::RecentReceived => 2,
            Selection::RecentSent => 3,
            Selection::Multicasting => 4,
        };
        w.u8(mode).u8(versions).u8(flags).u8(selection);
        w.u32(u32_of(self.max_message_size));
        w.i64(self.heartbeat_secs)
            .i64(self.session_expiry_secs)
            .i64(self.stored_message_secs);
        w.u32(u32_of(self.max_stored_messages))
            .u32(u32_of(self.max_queued_messages));
        w.i64(self.dake_timeout_secs)
            .i64(i64::try_from(self.fragment_timeout_secs).unwrap_or(i64::MAX))
            .i64(self.profile_lifetime_secs)
            .i64(self.profile_renew_margin_secs);
        if let Some(n) = self.padding.bucket() {
            w.u16(u16::try_from(n).unwrap_or(DEFAULT_PADDING_BUCKET));
        }
    }

    fn restore(r: &mut Reader<'_>, _version: u16, _cx: ()) -> Result<Policy, PersistError> {
        let mode = match r.u8("mode")? {
            0 => Mode::Otrv3Compatible,
            1 => Mode::Standalone,
            2 => Mode::InteractiveOnly,
            _ => return Err(PersistError::Invalid("mode")),
        };
        let v = r.u8("versions")?;
        if v > 3 {
            return Err(PersistError::Invalid("versions"));
        }
        let mut versions = Versions::EMPTY;
        if v & 1 != 0 {
            versions = versions.union(Versions::V3);
        }
        if v & 2 != 0 {
            versions = versions.union(Versions::V4);
        }
        let flags = r.u8("policy flags")?;
        if flags > 15 {
            return Err(PersistError::Invalid("policy flags"));
        }
        let selection = match r.u8("selection")? {
            0 => Selection::Best,
            1 => Selection::Recent,
            2 => Selection::RecentReceived,
            3 => Selection::RecentSent,
            4 => Selection::Multicasting,
            _ => return Err(PersistError::Invalid("selection")),
        };
        let max_message_size = usize_of(r.u32("max message size")?);
        let heartbeat_secs = r.i64("heartbeat")?;
        let session_expiry_secs = r.i64("session expiry")?;
        let stored_message_secs = r.i64("stored message lifetime")?;
        let max_stored_messages = usize_of(r.u32("max stored")?);
        let max_queued_messages = usize_of(r.u32("max queued")?);
        let dake_timeout_secs = r.i64("DAKE timeout")?;
        let fragment_timeout_secs = u64::try_from(r.i64("fragment timeout")?)
            .map_err(|_| PersistError::Invalid("fragment timeout"))?;
        let profile_lifetime_secs = r.i64("profile lifetime")?;
        let profile_renew_margin_secs = r.i64("profile renewal margin")?;
        let padding = if flags & 8 == 0 {
            Padding::None
        } else {
            match r.u16("padding bucket")? {
                DEFAULT_PADDING_BUCKET => Padding::Buckets,
                n => Padding::Custom(
                    core::num::NonZeroU16::new(n).ok_or(PersistError::Invalid("padding bucket"))?,
                ),
            }
        };
        let policy = Policy {
            mode,
            versions,
            require_encryption: flags & 1 != 0,
            send_whitespace_tag: flags & 2 != 0,
            whitespace_start_dake: flags & 4 != 0,
            selection,
            max_message_size,
            heartbeat_secs,
            session_expiry_secs,
            stored_message_secs,
            max_stored_messages,
            max_queued_messages,
            dake_timeout_secs,
            fragment_timeout_secs,
            profile_lifetime_secs,
            profile_renew_margin_secs,
            padding,
        };
        policy
            .check()
            .map_err(|_| PersistError::Invalid("inconsistent policy"))?;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_consistent_and_checked() {
        assert!(Policy::default().check().is_ok());
        assert!(Policy::standalone().check().is_ok());
        assert!(Policy::interactive_only().check().is_ok());
        assert!(Policy::default().allows_plaintext());
        assert!(!Policy::standalone().allows_plaintext());

        let v3 = Policy {
            versions: Versions::V3_AND_V4,
            ..Policy::standalone()
        };
        assert!(matches!(
            v3.check(),
            Err(ConversationError::InvalidPolicy(_))
        ));
        let plain = Policy {
            require_encryption: false,
            ..Policy::interactive_only()
        };
        assert!(plain.check().is_err());
        let tiny = Policy {
            max_message_size: 10,
            ..Policy::default()
        };
        assert!(tiny.check().is_err());
        let neg = Policy {
            heartbeat_secs: -1,
            ..Policy::default()
        };
        assert!(neg.check().is_err());
    }
}
