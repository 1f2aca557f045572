//! The OTRv4 mixed double ratchet (otrv4.md §"Key Management", §"Data Exchange"): ECDH and
//! brace-key (3072-bit DH) ratchets, Data Message encryption, and transactional decryption.
//!
//! # Bookkeeping
//!
//! Every DH ratchet (a new sending chain of one party) has a *ratchet id*, carried in the
//! Data Message's "Ratchet id" field. `i` is the id the next new ratchet will get; the two
//! parties' ratchets strictly alternate, so both agree on it:
//!
//! - A sending DH ratchet takes id `i` and sets `i = i + 1`; its messages carry that id
//!   (the spec's "`i - 1` as the ratchet id"). The first chain of the party that received
//!   Auth-I is the exception the spec names: it carries `i` = 0 (see
//!   [`DoubleRatchet::init_after_receiving_auth_i`]).
//! - A receiving DH ratchet is accepted only with id equal to `i`, then sets `i = id + 1`.
//! - A ratchet uses a new 3072-bit DH key (and `KDF(usage_third_brace_key || k_dh, 32)` as
//!   brace key) exactly when its id is a multiple of 3; otherwise the brace key is hashed
//!   forward (`KDF(usage_brace_key || brace_key, 32)`). Every message of a chain with an id
//!   that is a multiple of 3 carries the sender's DH public key; all others leave it empty.
//!
//! A sending DH ratchet is performed by the first [`DoubleRatchet::encrypt`] after a
//! receiving DH ratchet (a reply), as otrv4.md §"When you send a Data Message" describes.
//! See docs/spec-notes.md for the reasoning behind each choice.

pub mod keys;
mod persist;
mod skipped;

pub use keys::{BRACE_KEY_LEN, EXTRA_SYMMETRIC_KEY_LEN, ExtraSymmetricKey, KEY_LEN};
// For the tests and fuzz targets (`otr4::hazmat`).
#[cfg(feature = "hazmat")]
pub use {
    keys::{MAX_EXTRA_SYMMETRIC_KEYS, TlvKey},
    persist::{EXPORT_MAGIC, EXPORT_VERSION},
};

use crate::debug::redacted_debug;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ops::Deref;
use zeroize::{Zeroize, Zeroizing};

use crate::InstanceTag;
use crate::crypto::dh::{DhKeyPair, DhPublic};
use crate::crypto::ecdh::ecdh;
use crate::crypto::ed448::{KeyPair, Point};
use crate::crypto::{CryptoError, chacha, ct_eq};
use crate::wire::codec::{Codec, Writer};
use crate::wire::messages::{DataMessage, MAC_LEN};
use keys::{BraceKey, Key64};
use skipped::{SkippedKey, SkippedKeys, SkippedSecrets};

/// A byte string that zeroizes on drop and never leaves a stale copy behind when it grows
/// or shrinks (plaintexts, exported state, MAC keys to reveal). `Debug` prints its length.
#[derive(Clone, Default)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes`.
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(bytes)
    }

    /// The bytes.
    #[cfg(feature = "hazmat")]
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Appends `data`, moving to a larger buffer (and wiping the old one) if needed.
    fn extend(&mut self, data: &[u8]) {
        if self.0.capacity() - self.0.len() < data.len() {
            let want = (self.0.len() + data.len()).max(self.0.capacity().saturating_mul(2));
            let mut bigger = Vec::with_capacity(want);
            bigger.extend_from_slice(&self.0);
            bigger.extend_from_slice(data);
            core::mem::swap(&mut self.0, &mut bigger);
            bigger.as_mut_slice().zeroize();
        } else {
            self.0.extend_from_slice(data);
        }
    }

    /// Removes the first `n` bytes, wiping the vacated tail.
    fn remove_front(&mut self, n: usize) {
        let n = n.min(self.0.len());
        self.0.rotate_left(n);
        let keep = self.0.len() - n;
        if let Some(tail) = self.0.get_mut(keep..) {
            tail.zeroize();
        }
        self.0.truncate(keep);
    }

    /// Wipes and empties the buffer.
    fn clear(&mut self) {
        self.0.as_mut_slice().zeroize();
        self.0.clear();
    }
}

impl Deref for SecretBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Appends encodings through the wiping growth of [`SecretBytes`], so an export that outgrows
/// its first capacity leaves no stale copy of a secret in freed memory.
impl Writer for SecretBytes {
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.extend(b);
        self
    }

    /// For public values (profiles): their encoding passes through an unwiped buffer.
    fn put<T: Codec>(&mut self, v: &T) -> &mut Self {
        self.extend(&v.encode());
        self
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.as_mut_slice().zeroize();
    }
}

redacted_debug!(SecretBytes(|s| format_args!("{} bytes", s.0.len())));

/// Default `max_skip`: the most message keys one received message may make us derive and
/// store in one chain (otrv4.md §"Key Management": "high enough to tolerate routine lost or
/// delayed messages, but low enough that a malicious sender can't trigger excessive
/// recipient computation").
///
/// 1 000, the figure otrv4.md §"Deletion of Stored Message Keys" itself suggests. Deriving
/// one skipped key costs three SHAKE-256 calls, so a malicious peer can make us do at most
/// ~3 000 hashes per message per chain (a new ratchet can skip up to `max_skip` in the old
/// chain and again in the new one); libsignal allows 25 000 and vodozemac 2 000, both tuned
/// for push delivery of long offline backlogs, which OTR, an instant-messaging protocol with
/// heartbeats, does not need.
pub const MAX_SKIP: u32 = 1_000;

/// Default cap on the skipped-key store `skipped_MKenc` (otrv4.md §"Deletion of Stored
/// Message Keys": "reasonable per-conversation limits on the number of possible stored
/// message keys (e.g. 1000)").
///
/// When the store is full the *oldest* keys are deleted and their MAC keys queued for
/// revealing (as §"Revealing MAC Keys" asks when "the storage of message keys gets
/// deleted"), instead of refusing the new message: only genuine messages (MAC verified) can
/// add keys, so refusing would let a run of lost messages wedge the conversation, while
/// eviction costs at most the old lost messages. Each entry is ~200 bytes, so the store
/// stays under ~200 KB.
pub const MAX_STORED_KEYS: u32 = 1_000;

/// Default age limit of stored keys, in ratchet ids: a key skipped in the chain with id `r`
/// is deleted (and its MAC key queued for revealing) when a receiving ratchet with id greater
/// than `r + MAX_SKIPPED_KEY_AGE` is entered (otrv4.md §"Deletion of Stored Message Keys":
/// deletion "triggered … by counting the number of events (… DH ratchet steps, etc.)").
///
/// Ratchet ids grow by 2 per round trip, so 10 keeps the keys of the peer's last ~5 chains,
/// the same horizon as libsignal's 5 stored receiver chains. A message delayed by more than
/// five round trips is rejected as [`RatchetError::Duplicate`].
pub const MAX_SKIPPED_KEY_AGE: u32 = 10;

/// Default cap on `mac_keys_to_reveal` (64 bytes each). If we keep receiving without ever
/// sending, the oldest pending MAC keys are dropped unrevealed beyond this many, so memory
/// stays bounded (640 KB); it only weakens forgeability of those old messages.
pub const MAX_MAC_KEYS_TO_REVEAL: u32 = 10_000;

/// The configurable limits of a [`DoubleRatchet`]; [`Default`] gives the documented
/// constants [`MAX_SKIP`], [`MAX_STORED_KEYS`], [`MAX_SKIPPED_KEY_AGE`] and
/// [`MAX_MAC_KEYS_TO_REVEAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatchetLimits {
    /// Most keys skipped in one chain by one message ([`MAX_SKIP`]).
    pub max_skip: u32,
    /// Size of the skipped-key store; the oldest are evicted beyond it ([`MAX_STORED_KEYS`]).
    pub max_stored_keys: u32,
    /// Age in ratchet ids after which stored keys expire ([`MAX_SKIPPED_KEY_AGE`]).
    pub max_skipped_key_age: u32,
    /// Pending MAC keys kept for revealing ([`MAX_MAC_KEYS_TO_REVEAL`]).
    pub max_mac_keys_to_reveal: u32,
}

impl Default for RatchetLimits {
    fn default() -> Self {
        RatchetLimits {
            max_skip: MAX_SKIP,
            max_stored_keys: MAX_STORED_KEYS,
            max_skipped_key_age: MAX_SKIPPED_KEY_AGE,
            max_mac_keys_to_reveal: MAX_MAC_KEYS_TO_REVEAL,
        }
    }
}

/// Why a Data Message could not be encrypted or decrypted. After any error the ratchet
/// state is exactly as before the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RatchetError {
    /// The message key was already used or deleted: a duplicate or replay, or a message
    /// from a past ratchet whose key is not stored (otrv4.md §"When you receive a Data
    /// Message": "This is a duplicated message … Discard the message").
    #[error("duplicate or replayed message")]
    Duplicate,
    /// Decrypting would skip more than `max_skip` message keys in one chain.
    #[error("too many skipped messages")]
    TooManySkipped,
    /// The ratchet id is neither that of the current receiving chain nor the next one.
    #[error("unexpected ratchet id")]
    UnexpectedRatchetId,
    /// A message for a receiving chain we do not have.
    #[error("no receiving chain for this message")]
    NoReceivingChain,
    /// A new ratchet whose id is a multiple of 3 came without a DH public key.
    #[error("DH public key missing")]
    MissingDhKey,
    /// A new ratchet whose id is not a multiple of 3 carried a DH public key.
    #[error("unexpected DH public key")]
    UnexpectedDhKey,
    /// The authenticator did not verify.
    #[error("MAC verification failed")]
    BadMac,
    /// A ratchet or message counter would overflow 32 bits.
    #[error("ratchet counter exhausted")]
    CounterExhausted,
    /// The ratchet state is inconsistent (e.g. an imported state lacks a key it needs).
    #[error("inconsistent ratchet state")]
    InvalidState,
    /// A cryptographic operation failed (e.g. an all-zero ECDH secret).
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
}

/// An encrypted Data Message and the extra symmetric key of its message key
/// (otrv4.md §"When you send a Data Message", §"Extra Symmetric Key").
#[derive(Debug, Clone)]
pub struct Encrypted {
    /// The complete, authenticated Data Message.
    pub message: DataMessage,
    /// `KDF(usage_extra_symm_key || 0xFF || chain_key_s[j], 64)`, for a type 7 TLV.
    pub extra_symm_key: ExtraSymmetricKey,
}

/// A decrypted Data Message (otrv4.md §"When you receive a Data Message").
pub struct Decrypted {
    /// The plaintext: the human-readable part, optionally a NUL and TLVs
    /// (parse it with [`crate::wire::tlv::parse_plaintext`]). Zeroized on drop.
    pub plaintext: SecretBytes,
    /// The extra symmetric key of the message key (otrv4.md §"Extra Symmetric Key").
    pub extra_symm_key: ExtraSymmetricKey,
}

redacted_debug!(Decrypted { plaintext_len = |s| s.plaintext.len(), .. });

/// Our current sending chain: the ECDH key pair it was made with, `chain_key_s[j]`, and its
/// ratchet id.
#[derive(Clone)]
struct Sending {
    our_ecdh: KeyPair,
    chain_key: Key64,
    ratchet_id: u32,
}

/// The current receiving chain: `chain_key_r[k]` and its ratchet id.
#[derive(Clone)]
struct Receiving {
    chain_key: Key64,
    ratchet_id: u32,
}

/// Everything but the skipped-key store and the MAC keys to reveal; small enough to clone
/// for each tentative operation.
#[derive(Clone)]
struct State {
    root_key: Key64,
    /// `None` after a receiving DH ratchet: the next send performs a sending DH ratchet.
    /// Dropping it deletes `our_ecdh.secret` as §"Rotating ECDH Keys … as receiver" asks.
    sending: Option<Sending>,
    receiving: Option<Receiving>,
    their_ecdh: Point,
    /// `None` once its secret was used by a receiving DH ratchet.
    our_dh: Option<DhKeyPair>,
    their_dh: DhPublic,
    brace_key: BraceKey,
    i: u32,
    j: u32,
    k: u32,
    pn: u32,
    max_remote_i_seen: Option<u32>,
}

/// The double-ratchet state of one conversation (otrv4.md §"Key Management"): root key,
/// sending and receiving chain keys, our ECDH and DH key pairs, their ECDH and DH public
/// keys, the brace key, the counters `i`, `j`, `k`, `pn`, `max_remote_i_seen`, the skipped
/// message keys and the MAC keys to reveal.
///
/// All secrets zeroize on drop (dropping the ratchet is the "securely delete all keys" of
/// §"Session Expiration"); `Debug` prints only counters.
pub struct DoubleRatchet {
    state: State,
    skipped: SkippedKeys,
    mac_keys_to_reveal: SecretBytes,
    limits: RatchetLimits,
}

redacted_debug!(DoubleRatchet {
    i = |r| r.state.i,
    j = |r| r.state.j,
    k = |r| r.state.k,
    pn = |r| r.state.pn,
    max_remote_i_seen = |r| r.state.max_remote_i_seen,
    sending_ratchet_id = |r| r.state.sending.as_ref().map(|x| x.ratchet_id),
    receiving_ratchet_id = |r| r.state.receiving.as_ref().map(|x| x.ratchet_id),
    stored_keys = |r| r.skipped.len(),
    pending_mac_keys = |r| r.pending_mac_keys(),
    ..
});

/// `K` of the first keys of interactive initialisation: `KDF(usage_shared_secret ||
/// ECDH(our, their) || KDF(usage_third_brace_key || DH(our_dh, their_dh), 32), 64)`.
fn mixed_from_dh(
    our_ecdh: &KeyPair,
    their_ecdh: &Point,
    our_dh: &DhKeyPair,
    their_dh: &DhPublic,
) -> Result<(Key64, BraceKey), RatchetError> {
    let k_ecdh = ecdh(our_ecdh.secret(), their_ecdh)?;
    let k_dh = our_dh.shared_secret(their_dh);
    let brace = keys::third_brace_key(&k_dh);
    Ok((keys::mixed_shared_secret(&k_ecdh, &brace), brace))
}

impl DoubleRatchet {
    fn from_state(state: State) -> DoubleRatchet {
        DoubleRatchet {
            state,
            skipped: SkippedKeys::default(),
            mac_keys_to_reveal: SecretBytes::default(),
            limits: RatchetLimits::default(),
        }
    }

    /// Initialises the ratchet of the party that **sends Auth-I** ("Bob" in otrv4.md
    /// §"Interactive DAKE Overview", "Initializes the double-ratchet algorithm").
    ///
    /// `shared_secret` is the DAKE's mixed shared secret `K`; `our_ecdh_first` /
    /// `our_dh_first` are the "first" key pairs we attached to the Identity message, and
    /// `their_ecdh_first` / `their_dh_first` the ones the peer attached to Auth-R.
    ///
    /// Sets `i = j = k = pn = 0`, `max_remote_i_seen = -1`,
    /// `prev_root_key = KDF(usage_first_root_key || K, 64)`; derives the receiving chain
    /// from `ECDH(our_ecdh_first, their_ecdh_first)` and `DH(our_dh_first, their_dh_first)`;
    /// then generates new ECDH and DH key pairs, derives the sending chain from them and sets
    /// `i = 1`. Our first messages use that chain with ratchet id 0 and carry the new ECDH
    /// and DH public keys, without a new DH ratchet.
    pub fn init_after_sending_auth_i<R: rand_core::CryptoRng + ?Sized>(
        shared_secret: &[u8; KEY_LEN],
        our_ecdh_first: KeyPair,
        our_dh_first: DhKeyPair,
        their_ecdh_first: Point,
        their_dh_first: DhPublic,
        rng: &mut R,
    ) -> Result<DoubleRatchet, RatchetError> {
        let prev_root = keys::first_root_key(shared_secret);
        // Receiving keys: the peer's first chain.
        let (k, _) = mixed_from_dh(
            &our_ecdh_first,
            &their_ecdh_first,
            &our_dh_first,
            &their_dh_first,
        )?;
        let (root, chain_r) = keys::derive_ratchet_keys(&prev_root, &k);
        drop((our_ecdh_first, our_dh_first));
        // Sending keys: fresh ECDH and DH key pairs.
        let our_ecdh = KeyPair::generate(rng);
        let our_dh = DhKeyPair::generate(rng);
        let (k, brace) = mixed_from_dh(&our_ecdh, &their_ecdh_first, &our_dh, &their_dh_first)?;
        let (root, chain_s) = keys::derive_ratchet_keys(&root, &k);
        Ok(DoubleRatchet::from_state(State {
            root_key: root,
            sending: Some(Sending {
                our_ecdh,
                chain_key: chain_s,
                ratchet_id: 0,
            }),
            receiving: Some(Receiving {
                chain_key: chain_r,
                ratchet_id: 0,
            }),
            their_ecdh: their_ecdh_first,
            our_dh: Some(our_dh),
            their_dh: their_dh_first,
            brace_key: brace,
            i: 1,
            j: 0,
            k: 0,
            pn: 0,
            max_remote_i_seen: None,
        }))
    }

    /// Initialises the ratchet of the party that **receives and validates Auth-I**
    /// ("Alice" in otrv4.md §"Interactive DAKE Overview").
    ///
    /// `shared_secret` is `K`; `our_ecdh_first` / `our_dh_first` are the first key pairs we
    /// attached to Auth-R, `their_ecdh_first` / `their_dh_first` the ones from the Identity
    /// message.
    ///
    /// Sets `i = j = k = pn = 0`, `max_remote_i_seen = -1`,
    /// `prev_root_key = KDF(usage_first_root_key || K, 64)` and derives the sending chain
    /// from `ECDH(our_ecdh_first, their_ecdh_first)` and `DH(our_dh_first, their_dh_first)`.
    /// Our first messages use it with ratchet id `i` = 0 (the spec's exception to "`i - 1`")
    /// and carry our first ECDH and DH public keys; the peer already derived this chain as
    /// its receiving chain. Our first *received* message performs a DH ratchet.
    pub fn init_after_receiving_auth_i(
        shared_secret: &[u8; KEY_LEN],
        our_ecdh_first: KeyPair,
        our_dh_first: DhKeyPair,
        their_ecdh_first: Point,
        their_dh_first: DhPublic,
    ) -> Result<DoubleRatchet, RatchetError> {
        let prev_root = keys::first_root_key(shared_secret);
        let (k, brace) = mixed_from_dh(
            &our_ecdh_first,
            &their_ecdh_first,
            &our_dh_first,
            &their_dh_first,
        )?;
        let (root, chain_s) = keys::derive_ratchet_keys(&prev_root, &k);
        Ok(DoubleRatchet::from_state(State {
            root_key: root,
            sending: Some(Sending {
                our_ecdh: our_ecdh_first,
                chain_key: chain_s,
                ratchet_id: 0,
            }),
            receiving: None,
            their_ecdh: their_ecdh_first,
            our_dh: Some(our_dh_first),
            their_dh: their_dh_first,
            brace_key: brace,
            i: 0,
            j: 0,
            k: 0,
            pn: 0,
            max_remote_i_seen: None,
        }))
    }

    /// Initialises the ratchet of the party that **sends the Non-Interactive-Auth message**
    /// ("Alice" in otrv4.md §"Non-Interactive DAKE Overview").
    ///
    /// `shared_secret` is `K = KDF(usage_shared_secret || tmp_k, 64)`; `brace_key` is the
    /// DAKE's `KDF(usage_third_brace_key || k_dh, 32)` (kept as the brace key the first
    /// symmetric brace ratchet hashes forward, see docs/spec-notes.md); `our_ecdh_first` /
    /// `our_dh_first` the first key pairs attached to the Non-Interactive-Auth message;
    /// `their_ecdh` / `their_dh` the prekey message's `Y` and `B`.
    ///
    /// Sets `j = k = pn = 0`, `max_remote_i_seen = -1`, `curr_root_key = KDF(usage_root_key
    /// || K, 64)`, `chain_key_s = KDF(usage_chain_key || K, 64)` and `i = 1`. Our first
    /// messages use that chain with ratchet id `i - 1` = 0.
    pub fn init_after_sending_non_interactive_auth(
        shared_secret: &[u8; KEY_LEN],
        brace_key: &[u8; BRACE_KEY_LEN],
        our_ecdh_first: KeyPair,
        our_dh_first: DhKeyPair,
        their_ecdh: Point,
        their_dh: DhPublic,
    ) -> DoubleRatchet {
        let (root, chain_s) = keys::non_interactive_keys(shared_secret);
        DoubleRatchet::from_state(State {
            root_key: root,
            sending: Some(Sending {
                our_ecdh: our_ecdh_first,
                chain_key: chain_s,
                ratchet_id: 0,
            }),
            receiving: None,
            their_ecdh,
            our_dh: Some(our_dh_first),
            their_dh,
            brace_key: Zeroizing::new(*brace_key),
            i: 1,
            j: 0,
            k: 0,
            pn: 0,
            max_remote_i_seen: None,
        })
    }

    /// Initialises the ratchet of the party that **receives and validates the
    /// Non-Interactive-Auth message** ("Bob" in otrv4.md §"Non-Interactive DAKE Overview").
    ///
    /// `shared_secret` is `K`; `brace_key` the DAKE's brace key (as for
    /// [`DoubleRatchet::init_after_sending_non_interactive_auth`]); `their_ecdh_first` /
    /// `their_dh_first` the first keys attached to the Non-Interactive-Auth message. Our
    /// prekey secrets `y` and `b` are not needed any more and must already be deleted.
    ///
    /// Sets `j = k = pn = 0`, `max_remote_i_seen = -1`, `curr_root_key = KDF(usage_root_key
    /// || K, 64)`, `chain_key_r = KDF(usage_chain_key || K, 64)` and `i = 1`. Our first send
    /// performs a DH ratchet.
    pub fn init_after_receiving_non_interactive_auth(
        shared_secret: &[u8; KEY_LEN],
        brace_key: &[u8; BRACE_KEY_LEN],
        their_ecdh_first: Point,
        their_dh_first: DhPublic,
    ) -> DoubleRatchet {
        let (root, chain_r) = keys::non_interactive_keys(shared_secret);
        DoubleRatchet::from_state(State {
            root_key: root,
            sending: None,
            receiving: Some(Receiving {
                chain_key: chain_r,
                ratchet_id: 0,
            }),
            their_ecdh: their_ecdh_first,
            our_dh: None,
            their_dh: their_dh_first,
            brace_key: Zeroizing::new(*brace_key),
            i: 1,
            j: 0,
            k: 0,
            pn: 0,
            max_remote_i_seen: None,
        })
    }

    /// The limits in force.
    #[cfg(feature = "hazmat")]
    pub fn limits(&self) -> RatchetLimits {
        self.limits
    }

    /// Replaces the limits. Takes effect from the next operation that stores keys.
    #[cfg(feature = "hazmat")]
    pub fn set_limits(&mut self, limits: RatchetLimits) {
        self.limits = limits;
    }

    /// `i`: the id the next DH ratchet will get.
    #[cfg(feature = "hazmat")]
    pub fn ratchet_id(&self) -> u32 {
        self.state.i
    }

    /// `j`: the id of the next message we send in the current sending chain.
    #[cfg(feature = "hazmat")]
    pub fn sending_message_id(&self) -> u32 {
        self.state.j
    }

    /// `k`: the id of the next message expected in the current receiving chain.
    #[cfg(feature = "hazmat")]
    pub fn receiving_message_id(&self) -> u32 {
        self.state.k
    }

    /// `pn`: the number of messages in our previous sending chain.
    #[cfg(feature = "hazmat")]
    pub fn previous_chain_length(&self) -> u32 {
        self.state.pn
    }

    /// `max_remote_i_seen` (`None` for the spec's -1).
    #[cfg(feature = "hazmat")]
    pub fn max_remote_i_seen(&self) -> Option<u32> {
        self.state.max_remote_i_seen
    }

    /// `chain_key_s[j]`, the chain key of the next message we send, if there is a sending
    /// chain (for the forging toolkit's session keys).
    #[cfg(feature = "forge")]
    pub(crate) fn sending_chain_key(&self) -> Option<&[u8; KEY_LEN]> {
        self.state.sending.as_ref().map(|s| &*s.chain_key)
    }

    /// Whether the next [`DoubleRatchet::encrypt`] performs a sending DH ratchet.
    pub fn needs_sending_ratchet(&self) -> bool {
        self.state.sending.is_none()
    }

    /// Number of stored skipped message keys.
    #[cfg(feature = "hazmat")]
    pub fn stored_keys(&self) -> usize {
        self.skipped.len()
    }

    /// Number of MAC keys waiting to be revealed.
    pub fn pending_mac_keys(&self) -> usize {
        self.mac_keys_to_reveal.len() / MAC_LEN
    }

    /// Encrypts `plaintext` (the human-readable part, already followed by NUL and TLVs if
    /// any) into a Data Message from `sender_tag` to `receiver_tag` with `flags`
    /// (otrv4.md §"When you send a Data Message").
    ///
    /// If a DH ratchet was received since our last sending ratchet, first performs a sending
    /// DH ratchet (§"Rotating ECDH Keys and Brace Key as sender": new ECDH key pair, and a
    /// new DH key pair when `i % 3 == 0`, otherwise `brace_key = KDF(usage_brace_key ||
    /// brace_key, 32)`; new root and sending chain keys). Then derives `MKenc`, `MKmac` and
    /// the extra symmetric key from `chain_key_s[j]`, ratchets the chain, encrypts with
    /// ChaCha20 under the first 32 bytes of `MKenc`, sets ratchet id, `j`, `pn`, the ECDH key
    /// and (in chains whose id is a multiple of 3) the DH key, and computes
    /// `Authenticator = KDF(usage_authenticator || MKmac || authenticated bytes, 64)`.
    /// The first message of each chain (`j = 0`) reveals the pending MAC keys.
    ///
    /// On error nothing changes.
    pub fn encrypt<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        sender_tag: InstanceTag,
        receiver_tag: InstanceTag,
        flags: u8,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Encrypted, RatchetError> {
        self.encrypt_inner(sender_tag, receiver_tag, flags, plaintext, rng, false)
    }

    /// Like [`DoubleRatchet::encrypt`], but attaches *every* MAC key we could reveal: the
    /// pending ones and those of all stored skipped message keys, which are deleted
    /// (otrv4.md §"Session Expiration", steps 1–2: the Data Message with the TLV type 1
    /// "Disconnected" carries the `old_mac_keys`). Build `plaintext` with an empty message
    /// and [`crate::wire::tlv::Tlv::disconnected`], send with `IGNORE_UNREADABLE`, then drop
    /// the ratchet (step 3, which zeroizes every key).
    pub fn encrypt_revealing_all<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        sender_tag: InstanceTag,
        receiver_tag: InstanceTag,
        flags: u8,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Encrypted, RatchetError> {
        self.encrypt_inner(sender_tag, receiver_tag, flags, plaintext, rng, true)
    }

    fn encrypt_inner<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        sender_tag: InstanceTag,
        receiver_tag: InstanceTag,
        flags: u8,
        plaintext: &[u8],
        rng: &mut R,
        reveal_all: bool,
    ) -> Result<Encrypted, RatchetError> {
        let mut st = self.state.clone();
        if st.sending.is_none() {
            st.rotate_as_sender(rng)?;
        }
        let next_j = st.j.checked_add(1).ok_or(RatchetError::CounterExhausted)?;
        let sending = st.sending.as_mut().ok_or(RatchetError::InvalidState)?;
        let ratchet_id = sending.ratchet_id;
        let dh = if ratchet_id % 3 == 0 {
            let our_dh = st.our_dh.as_ref().ok_or(RatchetError::InvalidState)?;
            Some(our_dh.public().clone())
        } else {
            None
        };
        let mk_enc = keys::message_key(&sending.chain_key);
        let mk_mac = keys::mac_key(&mk_enc);
        let extra_symm_key = ExtraSymmetricKey::from_chain_key(&sending.chain_key);
        sending.chain_key = keys::next_chain_key(&sending.chain_key);
        let revealed_mac_keys = if reveal_all {
            let mut all = self.mac_keys_to_reveal.to_vec();
            for e in self.skipped.iter() {
                all.extend_from_slice(keys::mac_key(&e.secrets.mk_enc).as_ref());
            }
            all
        } else if st.j == 0 {
            self.mac_keys_to_reveal.to_vec()
        } else {
            Vec::new()
        };
        let mut message = DataMessage {
            sender_tag,
            receiver_tag,
            flags,
            pn: st.pn,
            i: ratchet_id,
            j: st.j,
            ecdh: *sending.our_ecdh.public(),
            dh,
            encrypted: chacha::encrypt(&mk_enc, plaintext),
            mac: [0u8; MAC_LEN],
            revealed_mac_keys,
        };
        message.mac = keys::authenticator(&mk_mac, &message.authenticated_bytes());
        st.j = next_j;
        // Commit.
        self.state = st;
        if reveal_all {
            self.skipped.clear();
            self.mac_keys_to_reveal.clear();
        } else if !message.revealed_mac_keys.is_empty() {
            self.mac_keys_to_reveal.clear();
        }
        Ok(Encrypted {
            message,
            extra_symm_key,
        })
    }

    /// Verifies and decrypts a Data Message (otrv4.md §"When you receive a Data Message"),
    /// transactionally: all work happens on a copy of the state that replaces it only when
    /// the message verified, so after any error the state is unchanged.
    ///
    /// In order:
    /// 1. a stored skipped key for `(Public ECDH Key, message id)`: verify the MAC (constant
    ///    time), decrypt, delete the key, queue `MKmac` for revealing;
    /// 2. the current receiving chain (same ECDH key): reject `message id < k` as
    ///    [`RatchetError::Duplicate`];
    /// 3. otherwise a new DH ratchet: reject a ratchet id below `max_remote_i_seen` as
    ///    [`RatchetError::Duplicate`] and any id but `i` as
    ///    [`RatchetError::UnexpectedRatchetId`]; store the keys of the previous receiving
    ///    chain up to `Previous chain message number`; rotate as receiver
    ///    (§"Rotating ECDH Keys and Brace Key as receiver");
    /// 4. store the skipped keys of the chain up to the message id, derive `MKenc`, `MKmac`
    ///    and the extra symmetric key, verify the MAC *before* decrypting, decrypt.
    ///
    /// More than `max_skip` skipped keys in one chain fail with
    /// [`RatchetError::TooManySkipped`]. The receiver instance tag is the caller's to check.
    /// The "Old MAC keys to be revealed" field is not authenticated (it is outside the MAC
    /// by the spec) and is ignored here.
    pub fn decrypt(&mut self, msg: &DataMessage) -> Result<Decrypted, RatchetError> {
        let their = msg.ecdh.encode();
        if let Some(pos) = self.skipped.position(&their, msg.j) {
            return self.decrypt_with_skipped(pos, msg);
        }
        let mut st = self.state.clone();
        let mut new_skipped: Vec<SkippedKey> = Vec::new();
        let new_ratchet = msg.ecdh != st.their_ecdh;
        if new_ratchet {
            if st.max_remote_i_seen.is_some_and(|m| msg.i < m) {
                return Err(RatchetError::Duplicate);
            }
            if msg.i != st.i || st.sending.is_none() {
                return Err(RatchetError::UnexpectedRatchetId);
            }
            match (msg.i.is_multiple_of(3), msg.dh.is_some()) {
                (true, false) => return Err(RatchetError::MissingDhKey),
                (false, true) => return Err(RatchetError::UnexpectedDhKey),
                _ => {}
            }
            st.skip_to(msg.pn, self.limits.max_skip, &mut new_skipped)?;
            st.rotate_as_receiver(msg)?;
        } else {
            let recv = st
                .receiving
                .as_ref()
                .ok_or(RatchetError::NoReceivingChain)?;
            if msg.i != recv.ratchet_id {
                return Err(RatchetError::UnexpectedRatchetId);
            }
            if msg.j < st.k {
                return Err(RatchetError::Duplicate);
            }
        }
        st.skip_to(msg.j, self.limits.max_skip, &mut new_skipped)?;
        let recv = st
            .receiving
            .as_mut()
            .ok_or(RatchetError::NoReceivingChain)?;
        let mk_enc = keys::message_key(&recv.chain_key);
        let mk_mac = keys::mac_key(&mk_enc);
        let expected = Zeroizing::new(keys::authenticator(&mk_mac, &msg.authenticated_bytes()));
        if !ct_eq(expected.as_ref(), &msg.mac) {
            return Err(RatchetError::BadMac);
        }
        let extra_symm_key = ExtraSymmetricKey::from_chain_key(&recv.chain_key);
        recv.chain_key = keys::next_chain_key(&recv.chain_key);
        st.k = st.k.checked_add(1).ok_or(RatchetError::CounterExhausted)?;
        let plaintext = SecretBytes::new(chacha::decrypt(&mk_enc, &msg.encrypted));
        st.max_remote_i_seen = Some(st.max_remote_i_seen.map_or(msg.i, |m| m.max(msg.i)));
        // Commit.
        self.state = st;
        for key in new_skipped {
            self.skipped.push(key);
        }
        if new_ratchet {
            self.expire_older_than(msg.i, self.limits.max_skipped_key_age);
        }
        self.evict_over_capacity();
        self.queue_mac_key(&mk_mac);
        Ok(Decrypted {
            plaintext,
            extra_symm_key,
        })
    }

    /// Step 1 of [`DoubleRatchet::decrypt`]: the message key was stored.
    fn decrypt_with_skipped(
        &mut self,
        pos: usize,
        msg: &DataMessage,
    ) -> Result<Decrypted, RatchetError> {
        let entry = self.skipped.get(pos).ok_or(RatchetError::InvalidState)?;
        if entry.ratchet_id != msg.i {
            return Err(RatchetError::UnexpectedRatchetId);
        }
        let mk_mac = keys::mac_key(&entry.secrets.mk_enc);
        let expected = Zeroizing::new(keys::authenticator(&mk_mac, &msg.authenticated_bytes()));
        if !ct_eq(expected.as_ref(), &msg.mac) {
            return Err(RatchetError::BadMac);
        }
        let plaintext = SecretBytes::new(chacha::decrypt(&entry.secrets.mk_enc, &msg.encrypted));
        let extra_symm_key = ExtraSymmetricKey::from_bytes(entry.secrets.extra);
        // Commit.
        self.skipped.remove(pos);
        let st = &mut self.state;
        st.max_remote_i_seen = Some(st.max_remote_i_seen.map_or(msg.i, |m| m.max(msg.i)));
        self.queue_mac_key(&mk_mac);
        Ok(Decrypted {
            plaintext,
            extra_symm_key,
        })
    }

    /// Deletes the stored keys of chains with a ratchet id below `newest - max_age`,
    /// queueing their MAC keys for revealing (otrv4.md §"Deletion of Stored Message Keys").
    fn expire_older_than(&mut self, newest: u32, max_age: u32) -> usize {
        let mut n = 0;
        while let Some(old) = self.skipped.oldest() {
            if old.ratchet_id.saturating_add(max_age) >= newest {
                break;
            }
            if let Some(old) = self.skipped.pop_oldest() {
                self.queue_mac_key(&keys::mac_key(&old.secrets.mk_enc));
                n += 1;
            }
        }
        n
    }

    /// Evicts the oldest stored keys beyond `max_stored_keys`, queueing their MAC keys.
    fn evict_over_capacity(&mut self) {
        let cap = usize::try_from(self.limits.max_stored_keys).unwrap_or(usize::MAX);
        while self.skipped.len() > cap {
            match self.skipped.pop_oldest() {
                Some(old) => self.queue_mac_key(&keys::mac_key(&old.secrets.mk_enc)),
                None => break,
            }
        }
    }

    /// Adds a MAC key to `mac_keys_to_reveal`, dropping the oldest beyond the cap.
    fn queue_mac_key(&mut self, mk_mac: &[u8; KEY_LEN]) {
        let cap = usize::try_from(self.limits.max_mac_keys_to_reveal).unwrap_or(usize::MAX);
        if cap == 0 {
            return;
        }
        if self.pending_mac_keys() >= cap {
            let excess = (self.pending_mac_keys() + 1 - cap).saturating_mul(MAC_LEN);
            let excess = excess.min(self.mac_keys_to_reveal.len());
            self.mac_keys_to_reveal.remove_front(excess);
        }
        self.mac_keys_to_reveal.extend(mk_mac);
    }

    /// Deletes stored skipped keys of chains more than `max_age` ratchet ids older than the
    /// current receiving chain, queueing their MAC keys for revealing; returns how many were
    /// deleted. A timer-driven hook for otrv4.md §"Deletion of Stored Message Keys" (the same
    /// expiry runs automatically with `max_skipped_key_age` on each receiving DH ratchet).
    #[cfg(feature = "hazmat")]
    pub fn expire_skipped_keys(&mut self, max_age: u32) -> usize {
        match self.state.receiving.as_ref().map(|r| r.ratchet_id) {
            Some(newest) => self.expire_older_than(newest, max_age),
            None => 0,
        }
    }

    /// Deletes all stored skipped message keys and returns every MAC key we can reveal: the
    /// pending `mac_keys_to_reveal` followed by `KDF(usage_MAC_key || MKenc, 64)` of each
    /// stored key, concatenated (64 bytes each), emptying both lists (otrv4.md §"Session
    /// Expiration", step 1). Use [`DoubleRatchet::encrypt_revealing_all`] to put them in a
    /// Data Message directly.
    #[cfg(feature = "hazmat")]
    pub fn reveal_all_mac_keys(&mut self) -> Vec<u8> {
        let mut all = self.mac_keys_to_reveal.to_vec();
        while let Some(old) = self.skipped.pop_oldest() {
            all.extend_from_slice(keys::mac_key(&old.secrets.mk_enc).as_ref());
        }
        self.mac_keys_to_reveal.clear();
        all
    }
}

impl State {
    /// Sending DH ratchet (otrv4.md §"Rotating ECDH Keys and Brace Key as sender", §"When
    /// you send a Data Message", "Given a new DH Ratchet").
    fn rotate_as_sender<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<(), RatchetError> {
        let next_i = self
            .i
            .checked_add(1)
            .ok_or(RatchetError::CounterExhausted)?;
        let our_ecdh = KeyPair::generate(rng);
        let k_ecdh = ecdh(our_ecdh.secret(), &self.their_ecdh)?;
        if self.i.is_multiple_of(3) {
            let our_dh = DhKeyPair::generate(rng);
            let k_dh = our_dh.shared_secret(&self.their_dh);
            self.brace_key = keys::third_brace_key(&k_dh);
            self.our_dh = Some(our_dh);
        } else {
            self.brace_key = keys::next_brace_key(&self.brace_key);
        }
        let k = keys::mixed_shared_secret(&k_ecdh, &self.brace_key);
        let (root, chain_s) = keys::derive_ratchet_keys(&self.root_key, &k);
        self.root_key = root;
        self.sending = Some(Sending {
            our_ecdh,
            chain_key: chain_s,
            ratchet_id: self.i,
        });
        self.i = next_i;
        self.j = 0;
        Ok(())
    }

    /// Receiving DH ratchet (otrv4.md §"Rotating ECDH Keys and Brace Key as receiver",
    /// §"When you receive a Data Message", "Given a new ratchet").
    fn rotate_as_receiver(&mut self, msg: &DataMessage) -> Result<(), RatchetError> {
        let next_i = msg.i.checked_add(1).ok_or(RatchetError::CounterExhausted)?;
        // Taking `sending` deletes our ECDH secret once K_ecdh is computed.
        let sending = self
            .sending
            .take()
            .ok_or(RatchetError::UnexpectedRatchetId)?;
        let k_ecdh = ecdh(sending.our_ecdh.secret(), &msg.ecdh)?;
        drop(sending);
        if msg.i.is_multiple_of(3) {
            let their_dh = msg.dh.as_ref().ok_or(RatchetError::MissingDhKey)?;
            let our_dh = self.our_dh.take().ok_or(RatchetError::InvalidState)?;
            let k_dh = our_dh.shared_secret(their_dh);
            self.brace_key = keys::third_brace_key(&k_dh);
            self.their_dh = their_dh.clone();
        } else {
            if msg.dh.is_some() {
                return Err(RatchetError::UnexpectedDhKey);
            }
            self.brace_key = keys::next_brace_key(&self.brace_key);
        }
        let k = keys::mixed_shared_secret(&k_ecdh, &self.brace_key);
        let (root, chain_r) = keys::derive_ratchet_keys(&self.root_key, &k);
        self.root_key = root;
        self.receiving = Some(Receiving {
            chain_key: chain_r,
            ratchet_id: msg.i,
        });
        self.their_ecdh = msg.ecdh;
        self.pn = self.j;
        self.j = 0;
        self.k = 0;
        self.i = next_i;
        Ok(())
    }

    /// Stores the keys of the current receiving chain for the messages `k .. until`
    /// (otrv4.md §"When you receive a Data Message": "Store any message keys … that
    /// correspond to messages that have not yet arrived"), failing if that is more than
    /// `max_skip`.
    fn skip_to(
        &mut self,
        until: u32,
        max_skip: u32,
        out: &mut Vec<SkippedKey>,
    ) -> Result<(), RatchetError> {
        if u64::from(self.k) + u64::from(max_skip) < u64::from(until) {
            return Err(RatchetError::TooManySkipped);
        }
        let their_ecdh = self.their_ecdh.encode();
        let Some(recv) = self.receiving.as_mut() else {
            return Ok(());
        };
        out.reserve(until.saturating_sub(self.k) as usize);
        while self.k < until {
            let mut secrets = Box::new(SkippedSecrets {
                mk_enc: [0u8; KEY_LEN],
                extra: [0u8; EXTRA_SYMMETRIC_KEY_LEN],
            });
            secrets
                .mk_enc
                .copy_from_slice(keys::message_key(&recv.chain_key).as_ref());
            secrets
                .extra
                .copy_from_slice(ExtraSymmetricKey::from_chain_key(&recv.chain_key).as_bytes());
            out.push(SkippedKey {
                their_ecdh,
                j: self.k,
                ratchet_id: recv.ratchet_id,
                secrets,
            });
            recv.chain_key = keys::next_chain_key(&recv.chain_key);
            self.k += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
