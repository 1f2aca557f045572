//! Encrypted, versioned persistence of an [`Account`] or a whole [`Client`], each with the
//! caller's [`PrekeyStore`]: keys, profiles, policy, prekey secrets and every conversation,
//! so a restart mid-conversation loses nothing.
//!
//! # Format (version 2)
//!
//! ```text
//! magic       8 bytes   "OTR4ACCT" (account) or "OTR4CLNT" (client)
//! version     SHORT     2 (version 1, without the offline state, is still read)
//! salt        32 bytes  random, fresh for every export
//! ciphertext  DATA      ChaCha20(enc_key, nonce 0, contents)
//! tag         64 bytes  KDF(0x03 || mac_key || magic || version || salt || DATA(ciphertext), 64)
//! ```
//!
//! with `enc_key = KDF(0x01 || key || salt, 32)` and `mac_key = KDF(0x02 || key || salt,
//! 64)`, where `KDF(u || x, n) = SHAKE-256("otr4-persistence" || u || x, n)` (otr4's KDF
//! construction with its own domain) and `key` the caller's 32-byte key. Encrypt-then-MAC:
//! after the magic and version, the tag is checked in constant time over every byte before
//! it, before anything else is parsed or decrypted; a wrong key, or any modification, gives
//! [`PersistError::Authentication`].
//!
//! The contents use the OTRv4 encodings (SHORT/INT big-endian, DATA = INT length + bytes,
//! "opt" = BYTE 0/1 then the value if 1):
//!
//! ```text
//! account:  long-term symmetric key (57) || forging key POINT (57) || opt forging secret
//!           symmetric key (57) || instance tag INT || DATA(Client Profile) || policy ||
//!           offline (version 2 only)
//! offline:  DATA(prekey store, `PrekeyStore::export`) || published Client Profile digest
//!           (BYTE flag || 32 bytes, zeros if absent) || published Prekey Profile digest
//!           (same) || BYTE flag || last storage status query LONG || INT n (at most
//!           MAX_PREVIOUS_PROFILES) || n × DATA(previous Client Profile), oldest first
//! policy:   mode BYTE || versions BYTE (bit 0: v3, bit 1: v4) || flags BYTE (bit 0 require
//!           encryption, bit 1 send whitespace tag, bit 2 whitespace starts DAKE) ||
//!           selection BYTE || max message size INT || heartbeat, session expiry, stored
//!           message lifetime (LONG each) || max stored, max queued (INT each) || DAKE
//!           timeout, fragment timeout, profile lifetime, renewal margin (LONG each)
//! client:   account || DATA(own bare JID) || INT peer count || peers
//! peer:     DATA(bare JID) || whitespace-tag BYTE || queue || INT count || conversations
//! queue:    INT count || (DATA(text) || INT tlv count || (SHORT type || DATA(value))*)*
//! conversation: their tag INT || state BYTE (0 START, 1 ENCRYPTED_MESSAGES, 2 FINISHED) ||
//!           opt last sent LONG || opt last received LONG || INT n || n × 32-byte digests of
//!           completed DAKEs' Identity messages || queue || session if state is 1
//! session:  DATA(double-ratchet export) || SSID (8) || role BYTE (0 Bob, 1 Alice) ||
//!           kind BYTE (version 2 only: 0 interactive DAKE, 1 non-interactive DAKE sender, 2
//!           non-interactive DAKE receiver; version 1 sessions are interactive) || our
//!           tag INT || their tag INT || DATA(their Client Profile) || Identity digest (32) ||
//!           established LONG || last sent LONG || received-since-sent BYTE || opt expiry
//!           timer LONG
//! ```
//!
//! Where the one-time prekey secrets are concerned the same holds: a Prekey message used by
//! a Non-Interactive-Auth message is deleted from the prekey store passed to
//! [`Client::receive`], so export after receiving one; importing an older export would
//! accept that message again. The store is written inside the account (`DATA(prekey
//! store)` below): export and import take and return it beside the account or client.
//! The prekey-server link ([`Client::set_prekey_server`]) is not exported.
//!
//! A DAKE under way is not exported (the conversation restarts from `START`, or from
//! `ENCRYPTED_MESSAGES` if a live session was kept during the DAKE); SMP state, stored early
//! data messages, partial fragments and an untargeted DAKE are dropped. The double ratchet
//! is exported whole, so messages already read are rejected after import: export after
//! every call that changed state, or a restored older export could read a message again.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use zeroize::Zeroizing;

use crate::InstanceTag;
use crate::crypto::chacha;
use crate::crypto::ct_eq;
use crate::crypto::ed448::{KeyPair, SYMMETRIC_KEY_LEN, SymmetricKey};
use crate::crypto::kdf::shake_into;
use crate::crypto::keys::ForgingPublicKey;
use crate::dake::non_interactive::NonInteractiveRole;
use crate::dake::{Role, Ssid};
use crate::prekey::PrekeyStore;
use crate::profile::client::ClientProfile;
use crate::ratchet::{DoubleRatchet, SecretBytes};
use crate::smp::Smp;
use crate::wire::codec::{Codec, DecodeError, Reader, Writer};
use crate::wire::query::Versions;
use crate::wire::tlv::{Tlv, TlvType};

use super::account::{Account, MAX_PREVIOUS_PROFILES, PUBLISHED_DIGEST_LEN, Published};
use super::client::{Client, DEFAULT_MAX_INSTANCES};
use super::context::Queued;
use super::peer::Peer;
use super::policy::{Mode, Policy, Selection};
use super::session::{IDENTITY_DIGEST_LEN, Session};
use super::state::{Conversation, MAX_REMEMBERED_IDENTITIES, Phase};

/// Magic of an exported [`Account`].
pub const ACCOUNT_MAGIC: [u8; 8] = *b"OTR4ACCT";
/// Magic of an exported [`Client`].
pub const CLIENT_MAGIC: [u8; 8] = *b"OTR4CLNT";
/// The format version written. Version 1 (before the offline state) is still imported:
/// the account gets an empty prekey store and every session is an interactive one.
pub const PERSIST_VERSION: u16 = 2;
/// The oldest format version imported.
const MIN_PERSIST_VERSION: u16 = 1;
/// Bytes of the random salt.
pub const SALT_LEN: usize = 32;
/// Bytes of the authentication tag.
pub const TAG_LEN: usize = 64;
/// Bytes of the caller's persistence key.
pub const PERSIST_KEY_LEN: usize = 32;

const DOMAIN: &[u8] = b"otr4-persistence";
const USAGE_ENC_KEY: u8 = 0x01;
const USAGE_MAC_KEY: u8 = 0x02;
const USAGE_TAG: u8 = 0x03;

/// Why an export could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The bytes do not start with the expected magic.
    #[error("not an otr4 export of this kind")]
    BadMagic,
    /// The format version is not supported.
    #[error("unsupported export format version {0}")]
    UnsupportedVersion(u16),
    /// The tag did not verify: a wrong key, or the bytes were modified.
    #[error("wrong persistence key, or the export was modified")]
    Authentication,
    /// The envelope or the authenticated contents are malformed.
    #[error("malformed export: {0}")]
    Malformed(DecodeError),
    /// The contents are well-formed but inconsistent.
    #[error("invalid exported state: {0}")]
    Invalid(&'static str),
}

impl From<DecodeError> for PersistError {
    fn from(e: DecodeError) -> PersistError {
        PersistError::Malformed(e)
    }
}

fn derive(usage: u8, parts: &[&[u8]], out: &mut [u8]) {
    shake_into(DOMAIN, usage, parts, out);
}

/// Encrypts and authenticates `contents` under `key`.
fn seal<R: rand_core::CryptoRng + ?Sized>(
    magic: [u8; 8],
    key: &[u8; PERSIST_KEY_LEN],
    contents: &[u8],
    rng: &mut R,
) -> Vec<u8> {
    seal_version(magic, PERSIST_VERSION, key, contents, rng)
}

/// [`seal`] with an explicit format version (tests write version 1 exports).
fn seal_version<R: rand_core::CryptoRng + ?Sized>(
    magic: [u8; 8],
    version: u16,
    key: &[u8; PERSIST_KEY_LEN],
    contents: &[u8],
    rng: &mut R,
) -> Vec<u8> {
    let mut salt = [0u8; SALT_LEN];
    rng.fill_bytes(&mut salt);
    let mut enc_key = Zeroizing::new([0u8; chacha::KEY_LEN]);
    derive(USAGE_ENC_KEY, &[key, &salt], enc_key.as_mut());
    let mut mac_key = Zeroizing::new([0u8; 64]);
    derive(USAGE_MAC_KEY, &[key, &salt], mac_key.as_mut());
    let mut w = Vec::with_capacity(8 + 2 + SALT_LEN + 4 + contents.len() + TAG_LEN);
    w.bytes(&magic).u16(version).bytes(&salt);
    // Encrypt in place inside the output buffer: no plaintext copy is left behind.
    w.u32(u32_of(contents.len()));
    let mut out = w;
    let start = out.len();
    out.extend_from_slice(contents);
    if let Some(body) = out.get_mut(start..) {
        chacha::apply_keystream(&enc_key, body);
    }
    let mut w = Vec::with_capacity(out.len() + TAG_LEN);
    w.bytes(&out);
    let mut tag = [0u8; TAG_LEN];
    derive(USAGE_TAG, &[mac_key.as_ref(), w.as_slice()], &mut tag);
    w.bytes(&tag);
    w
}

/// Checks the magic and version, then the tag over everything before it (so any other
/// modification is [`PersistError::Authentication`]), then parses and decrypts. Returns
/// the contents and their format version.
fn open(
    magic: [u8; 8],
    key: &[u8; PERSIST_KEY_LEN],
    bytes: &[u8],
) -> Result<(SecretBytes, u16), PersistError> {
    let mut r = Reader::new(bytes);
    if r.array::<8>("export magic")? != magic {
        return Err(PersistError::BadMagic);
    }
    let version = r.u16("export version")?;
    if !(MIN_PERSIST_VERSION..=PERSIST_VERSION).contains(&version) {
        return Err(PersistError::UnsupportedVersion(version));
    }
    let salt: [u8; SALT_LEN] = r.array("export salt")?;
    let (authenticated, tag) = bytes
        .len()
        .checked_sub(TAG_LEN)
        .and_then(|n| bytes.split_at_checked(n))
        .filter(|(a, _)| a.len() >= 8 + 2 + SALT_LEN)
        .ok_or(PersistError::Malformed(DecodeError::Truncated {
            what: "export tag",
        }))?;
    let mut mac_key = Zeroizing::new([0u8; 64]);
    derive(USAGE_MAC_KEY, &[key, &salt], mac_key.as_mut());
    let mut expected = [0u8; TAG_LEN];
    derive(USAGE_TAG, &[mac_key.as_ref(), authenticated], &mut expected);
    if !ct_eq(&expected, tag) {
        return Err(PersistError::Authentication);
    }
    let mut r = Reader::new(authenticated);
    r.take(8 + 2 + SALT_LEN, "export header")?;
    let ct = r.data("export ciphertext")?;
    r.finish()?;
    let mut enc_key = Zeroizing::new([0u8; chacha::KEY_LEN]);
    derive(USAGE_ENC_KEY, &[key, &salt], enc_key.as_mut());
    let mut pt = ct.to_vec();
    chacha::apply_keystream(&enc_key, &mut pt);
    Ok((SecretBytes::new(pt), version))
}

// ---------------------------------------------------------------------------------------
// Small encodings.

fn opt_i64(w: &mut Vec<u8>, v: Option<i64>) {
    w.u8(u8::from(v.is_some())).i64(v.unwrap_or(0));
}

fn flag(r: &mut Reader<'_>, what: &'static str) -> Result<bool, PersistError> {
    match r.u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(PersistError::Invalid(what)),
    }
}

fn read_opt_i64(r: &mut Reader<'_>, what: &'static str) -> Result<Option<i64>, PersistError> {
    let present = flag(r, what)?;
    let v = r.i64(what)?;
    Ok(present.then_some(v))
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn usize_of(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn read_string(r: &mut Reader<'_>, what: &'static str) -> Result<String, PersistError> {
    let b = r.data(what)?;
    core::str::from_utf8(b)
        .map(String::from)
        .map_err(|_| PersistError::Invalid(what))
}

fn read_tag(r: &mut Reader<'_>, what: &'static str) -> Result<InstanceTag, PersistError> {
    let t = InstanceTag(r.u32(what)?);
    if !t.is_valid_sender() {
        return Err(PersistError::Invalid(what));
    }
    Ok(t)
}

fn read_sym(r: &mut Reader<'_>, what: &'static str) -> Result<KeyPair, PersistError> {
    let mut b = Zeroizing::new([0u8; SYMMETRIC_KEY_LEN]);
    b.copy_from_slice(r.take(SYMMETRIC_KEY_LEN, what)?);
    Ok(KeyPair::from_symmetric_key(SymmetricKey::from_bytes(*b)))
}

// ---------------------------------------------------------------------------------------
// Policy and account.

fn write_policy(w: &mut Vec<u8>, p: &Policy) {
    let mode = match p.mode {
        Mode::Otrv3Compatible => 0,
        Mode::Standalone => 1,
        Mode::InteractiveOnly => 2,
    };
    let versions = u8::from(p.versions.has_v3()) | (u8::from(p.versions.has_v4()) << 1);
    let flags = u8::from(p.require_encryption)
        | (u8::from(p.send_whitespace_tag) << 1)
        | (u8::from(p.whitespace_start_dake) << 2);
    let selection = match p.selection {
        Selection::Best => 0,
        Selection::Recent => 1,
        Selection::RecentReceived => 2,
        Selection::RecentSent => 3,
        Selection::Multicasting => 4,
    };
    w.u8(mode).u8(versions).u8(flags).u8(selection);
    w.u32(u32_of(p.max_message_size));
    w.i64(p.heartbeat_secs)
        .i64(p.session_expiry_secs)
        .i64(p.stored_message_secs);
    w.u32(u32_of(p.max_stored_messages))
        .u32(u32_of(p.max_queued_messages));
    w.i64(p.dake_timeout_secs)
        .i64(i64::try_from(p.fragment_timeout_secs).unwrap_or(i64::MAX))
        .i64(p.profile_lifetime_secs)
        .i64(p.profile_renew_margin_secs);
}

fn read_policy(r: &mut Reader<'_>) -> Result<Policy, PersistError> {
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
    if flags > 7 {
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
    };
    policy
        .check()
        .map_err(|_| PersistError::Invalid("inconsistent policy"))?;
    Ok(policy)
}

fn opt_digest(w: &mut Vec<u8>, d: Option<&[u8; PUBLISHED_DIGEST_LEN]>) {
    w.u8(u8::from(d.is_some()))
        .bytes(d.unwrap_or(&[0u8; PUBLISHED_DIGEST_LEN]));
}

fn read_opt_digest(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<Option<[u8; PUBLISHED_DIGEST_LEN]>, PersistError> {
    let present = flag(r, what)?;
    let d: [u8; PUBLISHED_DIGEST_LEN] = r.array(what)?;
    Ok(present.then_some(d))
}

/// Writes the account in format `version`; `store` is the export of its prekey store.
fn write_account(w: &mut Vec<u8>, a: &Account, store: &[u8], version: u16) {
    w.bytes(a.long_term.symmetric_key().as_bytes());
    w.point(a.forging_public.point());
    w.u8(u8::from(a.forging_secret.is_some()));
    if let Some(f) = &a.forging_secret {
        w.bytes(f.symmetric_key().as_bytes());
    }
    w.u32(a.instance_tag.0);
    w.data(&a.profile.encode());
    write_policy(w, &a.policy);
    if version < 2 {
        return;
    }
    w.data(store);
    opt_digest(w, a.published.client_profile.as_ref());
    opt_digest(w, a.published.prekey_profile.as_ref());
    opt_i64(w, a.published.last_status_query);
    w.u32(u32_of(a.previous_profiles.len()));
    for p in &a.previous_profiles {
        w.data(&p.encode());
    }
}

/// The offline part of a version 2 account: its prekey store, previous Client Profiles and
/// what the prekey server confirmed.
struct Offline {
    prekeys: PrekeyStore,
    previous_profiles: Vec<ClientProfile>,
    published: Published,
}

/// Reads the offline state of a version 2 account and checks it against the keys.
fn read_offline(
    r: &mut Reader<'_>,
    long_term: &KeyPair,
    forging: &ForgingPublicKey,
    tag: InstanceTag,
) -> Result<Offline, PersistError> {
    let prekeys = PrekeyStore::import(r.data("prekey store")?)?;
    if prekeys.owner_tag() != tag {
        return Err(PersistError::Invalid("prekey store instance tag"));
    }
    let h = crate::crypto::keys::Ed448PublicKey(*long_term.public());
    if prekeys
        .shared_prekeys()
        .iter()
        .any(|s| s.profile().validate(tag, i64::MIN, &h).is_err())
    {
        return Err(PersistError::Invalid("prekey profile"));
    }
    let published_client_profile = read_opt_digest(r, "published client profile")?;
    let published_prekey_profile = read_opt_digest(r, "published prekey profile")?;
    let last_status_query = read_opt_i64(r, "last status query")?;
    let n = usize_of(r.u32("previous profiles")?);
    if n > MAX_PREVIOUS_PROFILES {
        return Err(PersistError::Invalid("too many previous profiles"));
    }
    let mut previous_profiles = Vec::with_capacity(n);
    for _ in 0..n {
        let p = ClientProfile::decode(r.data("previous client profile")?)?;
        if p.public_key() != &h
            || p.forging_key() != forging
            || p.owner_tag() != tag
            || p.validate(tag, i64::MIN).is_err()
        {
            return Err(PersistError::Invalid("previous client profile"));
        }
        previous_profiles.push(p);
    }
    Ok(Offline {
        prekeys,
        previous_profiles,
        published: Published {
            client_profile: published_client_profile,
            prekey_profile: published_prekey_profile,
            last_status_query,
        },
    })
}

/// Reads an account and its prekey store (empty for a version 1 export).
fn read_account(r: &mut Reader<'_>, version: u16) -> Result<(Account, PrekeyStore), PersistError> {
    let long_term = read_sym(r, "long-term key")?;
    let forging_public = ForgingPublicKey(r.point("forging key")?);
    let forging_secret = if flag(r, "forging secret flag")? {
        Some(read_sym(r, "forging secret")?)
    } else {
        None
    };
    let instance_tag = read_tag(r, "instance tag")?;
    let profile = ClientProfile::decode(r.data("client profile")?)?;
    let policy = read_policy(r)?;
    if let Some(f) = &forging_secret
        && f.public() != forging_public.point()
    {
        return Err(PersistError::Invalid("forging secret does not match"));
    }
    if profile.public_key().point() != long_term.public()
        || profile.forging_key() != &forging_public
        || profile.owner_tag() != instance_tag
    {
        return Err(PersistError::Invalid(
            "client profile does not match the keys",
        ));
    }
    if profile.validate(instance_tag, i64::MIN).is_err() {
        return Err(PersistError::Invalid("client profile signature"));
    }
    let offline = if version >= 2 {
        read_offline(r, &long_term, &forging_public, instance_tag)?
    } else {
        Offline {
            prekeys: PrekeyStore::new(instance_tag),
            previous_profiles: Vec::new(),
            published: Published::default(),
        }
    };
    let account = Account {
        long_term,
        forging_public,
        forging_secret,
        instance_tag,
        profile,
        policy,
        previous_profiles: offline.previous_profiles,
        published: offline.published,
    };
    Ok((account, offline.prekeys))
}

impl Account {
    /// Exports the account (keys, instance tag, profiles, policy, offline state) with its
    /// prekey store `prekeys` (which must be the store of this account's instance tag, or
    /// the export will not import), encrypted and authenticated under `key`; see the format
    /// in this module's documentation.
    pub fn export<R: rand_core::CryptoRng + ?Sized>(
        &self,
        prekeys: &PrekeyStore,
        key: &[u8; PERSIST_KEY_LEN],
        rng: &mut R,
    ) -> Vec<u8> {
        let store = prekeys.export();
        let mut w = Vec::with_capacity(account_len(self, store.len()));
        write_account(&mut w, self, &store, PERSIST_VERSION);
        let contents = SecretBytes::new(w);
        seal(ACCOUNT_MAGIC, key, &contents, rng)
    }

    /// Imports [`Account::export`]'s bytes into the account and its prekey store: checks
    /// the tag (a wrong key gives [`PersistError::Authentication`]), then every field (keys
    /// match the profile, the profile's signature, the policy, the prekey store's instance
    /// tag). Never panics.
    pub fn import(
        key: &[u8; PERSIST_KEY_LEN],
        bytes: &[u8],
    ) -> Result<(Account, PrekeyStore), PersistError> {
        let (pt, version) = open(ACCOUNT_MAGIC, key, bytes)?;
        let mut r = Reader::new(&pt);
        let a = read_account(&mut r, version)?;
        r.finish()?;
        Ok(a)
    }
}

// ---------------------------------------------------------------------------------------
// Conversations.

fn write_queue(w: &mut Vec<u8>, q: &[Queued]) {
    w.u32(u32_of(q.len()));
    for m in q {
        w.data(m.text.as_bytes());
        w.u32(u32_of(m.tlvs.len()));
        for t in &m.tlvs {
            w.u16(t.typ.to_u16()).data(&t.value);
        }
    }
}

fn read_queue(r: &mut Reader<'_>) -> Result<Vec<Queued>, PersistError> {
    let n = r.u32("queue length")?;
    let mut out = Vec::new();
    for _ in 0..n {
        let text = read_string(r, "queued text")?;
        let k = r.u32("queued TLV count")?;
        let mut tlvs = Vec::new();
        for _ in 0..k {
            let typ = TlvType::from_u16(r.u16("TLV type")?);
            let value = r.data("TLV value")?;
            if value.len() > crate::wire::tlv::MAX_TLV_VALUE_LEN {
                return Err(PersistError::Invalid("TLV value too long"));
            }
            tlvs.push(Tlv::new(typ, value.to_vec()));
        }
        out.push(Queued { text, tlvs });
    }
    Ok(out)
}

fn write_session(w: &mut Vec<u8>, s: &Session, ratchet: &[u8], version: u16) {
    w.data(ratchet);
    w.bytes(&s.ssid.0);
    w.u8(match s.role {
        Role::Bob => 0,
        Role::Alice => 1,
    });
    if version >= 2 {
        w.u8(match s.non_interactive {
            None => 0,
            Some(NonInteractiveRole::Sender) => 1,
            Some(NonInteractiveRole::Receiver) => 2,
        });
    }
    w.u32(s.our_tag.0).u32(s.their_tag.0);
    w.data(&s.their_profile.encode());
    w.bytes(&s.identity);
    w.i64(s.established_at).i64(s.last_sent);
    w.u8(u8::from(s.received_since_send));
    opt_i64(w, s.expiry_timer);
}

fn read_session(
    r: &mut Reader<'_>,
    our_tag: InstanceTag,
    their_tag: InstanceTag,
    version: u16,
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
    if read_tag(r, "session our tag")? != our_tag || read_tag(r, "session their tag")? != their_tag
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
    let received_since_send = flag(r, "received since send")?;
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

fn write_conversation(
    w: &mut Vec<u8>,
    c: &Conversation,
    ratchet: Option<&SecretBytes>,
    version: u16,
) {
    w.u32(c.their_tag.0);
    let live = c.live();
    let state = if live.is_some() {
        1
    } else if matches!(c.phase, Phase::Finished) {
        2
    } else {
        0
    };
    w.u8(state);
    opt_i64(w, c.last_sent);
    opt_i64(w, c.last_received);
    w.u32(u32_of(c.seen_identities.len()));
    for d in &c.seen_identities {
        w.bytes(d);
    }
    write_queue(w, &c.queue);
    if let (Some(s), Some(r)) = (live, ratchet) {
        write_session(w, s, r, version);
    }
}

fn read_conversation(
    r: &mut Reader<'_>,
    our_tag: InstanceTag,
    version: u16,
) -> Result<Conversation, PersistError> {
    let their_tag = read_tag(r, "conversation tag")?;
    let state = r.u8("conversation state")?;
    let last_sent = read_opt_i64(r, "last sent")?;
    let last_received = read_opt_i64(r, "last received")?;
    let n = r.u32("identity digests")?;
    if usize_of(n) > MAX_REMEMBERED_IDENTITIES {
        return Err(PersistError::Invalid("too many identity digests"));
    }
    let mut seen = Vec::new();
    for _ in 0..n {
        seen.push(r.array::<IDENTITY_DIGEST_LEN>("identity digest")?);
    }
    let queue = read_queue(r)?;
    let phase = match state {
        0 => Phase::Start,
        1 => Phase::Encrypted(Box::new(read_session(r, our_tag, their_tag, version)?)),
        2 => Phase::Finished,
        _ => return Err(PersistError::Invalid("conversation state")),
    };
    Ok(Conversation::restore(
        their_tag,
        phase,
        queue,
        seen,
        last_sent,
        last_received,
    ))
}

/// Bytes of the encoded policy.
const POLICY_LEN: usize = 4 + 4 + 3 * 8 + 2 * 4 + 4 * 8;

/// Bytes of the encoded account whose prekey store export has `store_len` bytes.
fn account_len(a: &Account, store_len: usize) -> usize {
    let forging_secret = a.forging_secret.as_ref().map_or(0, |_| SYMMETRIC_KEY_LEN);
    let offline = 4
        + store_len
        + 2 * (1 + PUBLISHED_DIGEST_LEN)
        + 9
        + 4
        + a.previous_profiles
            .iter()
            .map(|p| 4 + p.encode().len())
            .sum::<usize>();
    2 * SYMMETRIC_KEY_LEN
        + 1
        + forging_secret
        + 4
        + 4
        + a.profile.encode().len()
        + POLICY_LEN
        + offline
}

fn queue_len(q: &[Queued]) -> usize {
    4 + q
        .iter()
        .map(|m| 8 + m.text.len() + m.tlvs.iter().map(|t| 6 + t.value.len()).sum::<usize>())
        .sum::<usize>()
}

fn conversation_len(c: &Conversation, ratchet_len: usize) -> usize {
    let session = c.live().map_or(0, |s| {
        4 + ratchet_len
            + 8
            + 1
            + 1
            + 8
            + 4
            + s.their_profile.encode().len()
            + IDENTITY_DIGEST_LEN
            + 16
            + 1
            + 9
    });
    4 + 1
        + 9
        + 9
        + 4
        + IDENTITY_DIGEST_LEN * c.seen_identities.len()
        + queue_len(&c.queue)
        + session
}

impl Client {
    /// Exports the whole client (the account with the prekey store `prekeys`, which must
    /// be the store of our instance tag or the export will not import; our bare JID, every
    /// peer and conversation, encrypted sessions with their double ratchets, queued
    /// messages) encrypted and authenticated under `key`; see the format in this module's
    /// documentation.
    pub fn export<R: rand_core::CryptoRng + ?Sized>(
        &self,
        prekeys: &PrekeyStore,
        key: &[u8; PERSIST_KEY_LEN],
        rng: &mut R,
    ) -> Vec<u8> {
        let (contents, _) = self.export_contents(prekeys, PERSIST_VERSION);
        seal(CLIENT_MAGIC, key, &contents, rng)
    }

    /// The plaintext contents and the length they were allocated for.
    fn export_contents(&self, prekeys: &PrekeyStore, version: u16) -> (SecretBytes, usize) {
        // Export every ratchet first, so the output buffer can be allocated once at its
        // final size and never reallocates (which would leave copies of secrets behind).
        let ratchets: Vec<Option<SecretBytes>> = self
            .peers
            .values()
            .flat_map(|p| p.conversations.values())
            .map(|c| c.live().map(|s| s.ratchet.export()))
            .collect();
        let store = prekeys.export();
        let mut len = account_len(&self.account, store.len()) + 4 + self.own_jid.len() + 4;
        let mut convs = self.peers.values().flat_map(|p| p.conversations.values());
        for p in self.peers.values() {
            len += 4 + p.jid.len() + 1 + queue_len(&p.queue) + 4;
        }
        for r in &ratchets {
            if let Some(c) = convs.next() {
                len += conversation_len(c, r.as_ref().map_or(0, |r| r.len()));
            }
        }
        let mut w = Vec::with_capacity(len);
        write_account(&mut w, &self.account, &store, version);
        drop(store);
        w.data(self.own_jid.as_bytes());
        w.u32(u32_of(self.peers.len()));
        let mut ratchets = ratchets.iter();
        for p in self.peers.values() {
            w.data(p.jid.as_bytes());
            w.u8(u8::from(p.whitespace_tag));
            write_queue(&mut w, &p.queue);
            w.u32(u32_of(p.conversations.len()));
            for c in p.conversations.values() {
                let r = ratchets.next().and_then(Option::as_ref);
                write_conversation(&mut w, c, r, version);
            }
        }
        (SecretBytes::new(w), len)
    }

    /// Imports [`Client::export`]'s bytes into the client and its prekey store: checks the
    /// tag (a wrong key gives [`PersistError::Authentication`]), then every field: keys
    /// against profiles, instance tags, each double ratchet, no duplicate peers or
    /// instances. The device limit is [`DEFAULT_MAX_INSTANCES`] again (conversations
    /// beyond it are kept): set yours with [`Client::set_max_instances`]. Never panics.
    pub fn import(
        key: &[u8; PERSIST_KEY_LEN],
        bytes: &[u8],
    ) -> Result<(Client, PrekeyStore), PersistError> {
        let (pt, version) = open(CLIENT_MAGIC, key, bytes)?;
        let mut r = Reader::new(&pt);
        let (account, prekeys) = read_account(&mut r, version)?;
        let own_jid = read_string(&mut r, "own JID")?;
        let our_tag = account.instance_tag;
        let n = r.u32("peer count")?;
        let mut peers = BTreeMap::new();
        for _ in 0..n {
            let jid = read_string(&mut r, "peer JID")?;
            let mut peer = Peer::new(&jid, &account.policy);
            peer.whitespace_tag = flag(&mut r, "whitespace tag")?;
            peer.queue = read_queue(&mut r)?;
            let k = r.u32("conversation count")?;
            for _ in 0..k {
                let c = read_conversation(&mut r, our_tag, version)?;
                if peer.conversations.insert(c.their_tag, c).is_some() {
                    return Err(PersistError::Invalid("duplicate instance"));
                }
            }
            if peers.insert(jid, peer).is_some() {
                return Err(PersistError::Invalid("duplicate peer"));
            }
        }
        r.finish()?;
        let client = Client {
            account,
            own_jid,
            peers,
            prekey_link: None,
            max_instances: DEFAULT_MAX_INSTANCES,
        };
        Ok((client, prekeys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::events::Event;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn envelope_round_trips_and_rejects_tampering() {
        let mut rng = StdRng::seed_from_u64(3);
        let key = [7u8; 32];
        let sealed = seal(CLIENT_MAGIC, &key, b"hello contents", &mut rng);
        assert_eq!(&sealed[..8], b"OTR4CLNT");
        assert_eq!(&sealed[8..10], &[0, 2]);
        // Ciphertext is not the plaintext.
        assert!(!sealed.windows(5).any(|w| w == b"hello"));
        let (pt, version) = open(CLIENT_MAGIC, &key, &sealed).unwrap();
        assert_eq!(&*pt, b"hello contents");
        assert_eq!(version, PERSIST_VERSION);
        assert_eq!(
            open(ACCOUNT_MAGIC, &key, &sealed).unwrap_err(),
            PersistError::BadMagic
        );
        assert_eq!(
            open(CLIENT_MAGIC, &[8u8; 32], &sealed).unwrap_err(),
            PersistError::Authentication
        );
        for i in [10, 45, sealed.len() - 70, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(
                open(CLIENT_MAGIC, &key, &bad).unwrap_err(),
                PersistError::Authentication,
                "byte {i}"
            );
        }
        for v in [0u8, 3] {
            let mut other = sealed.clone();
            other[9] = v;
            assert_eq!(
                open(CLIENT_MAGIC, &key, &other).unwrap_err(),
                PersistError::UnsupportedVersion(u16::from(v))
            );
        }
        for n in 0..sealed.len() {
            assert!(open(CLIENT_MAGIC, &key, &sealed[..n]).is_err());
        }
        let mut long = sealed.clone();
        long.push(0);
        assert_eq!(
            open(CLIENT_MAGIC, &key, &long).unwrap_err(),
            PersistError::Authentication
        );
        // Two exports of the same contents differ (fresh salt).
        let again = seal(CLIENT_MAGIC, &key, b"hello contents", &mut rng);
        assert_ne!(sealed, again);
    }

    #[test]
    fn precomputed_lengths_are_exact() {
        let mut rng = StdRng::seed_from_u64(6);
        let mut a = Account::generate(&mut rng, Policy::default(), 0).unwrap();
        let mut w = Vec::new();
        write_account(&mut w, &a, &[], PERSIST_VERSION);
        assert_eq!(w.as_slice().len(), account_len(&a, 0));
        // With prekeys, a shared prekey and a previous profile.
        let mut prekeys = PrekeyStore::new(a.instance_tag());
        prekeys.generate_prekey_messages(&mut rng, 3, 0).unwrap();
        let lt = a.long_term.clone();
        prekeys.new_prekey_profile(&mut rng, &lt, 100);
        a.resign_profile(1);
        a.published.client_profile = Some([1; 32]);
        let store = prekeys.export();
        let mut w = Vec::new();
        write_account(&mut w, &a, &store, PERSIST_VERSION);
        assert_eq!(w.as_slice().len(), account_len(&a, store.len()));
        let mut w = Vec::new();
        write_policy(&mut w, &Policy::standalone());
        assert_eq!(w.as_slice().len(), POLICY_LEN);
        let q = [Queued {
            text: String::from("hey"),
            tlvs: alloc::vec![Tlv::padding(5), Tlv::disconnected()],
        }];
        let mut w = Vec::new();
        write_queue(&mut w, &q);
        assert_eq!(w.as_slice().len(), queue_len(&q));
        let c = Conversation::restore(
            InstanceTag(0x100),
            Phase::Finished,
            Vec::new(),
            alloc::vec![[1u8; 32]],
            Some(1),
            None,
        );
        let mut w = Vec::new();
        write_conversation(&mut w, &c, None, PERSIST_VERSION);
        assert_eq!(w.as_slice().len(), conversation_len(&c, 0));
    }

    #[test]
    fn client_export_is_allocated_at_its_exact_size() {
        let mut rng = StdRng::seed_from_u64(10);
        let mk = |rng: &mut StdRng, jid| {
            Client::new(Account::generate(rng, Policy::default(), 0).unwrap(), jid)
        };
        let (mut a, mut b) = (mk(&mut rng, "a@x"), mk(&mut rng, "b@x"));
        let mut sa = PrekeyStore::new(a.account.instance_tag());
        let mut sb = PrekeyStore::new(b.account.instance_tag());
        let mut wire: Vec<(bool, String)> = Vec::new();
        let push = |ev: Vec<Event>, to_b: bool, wire: &mut Vec<(bool, String)>| {
            for e in ev {
                if let Event::Send { text, .. } = e {
                    wire.push((to_b, text));
                }
            }
        };
        push(a.start("b@x", 0, &mut rng), true, &mut wire);
        push(a.send("b@x", "queued?", &[], 0, &mut rng), true, &mut wire);
        while let Some((to_b, text)) = wire.pop() {
            if to_b {
                let ev = b.receive("a@x", &text, &mut sb, 0, &mut rng);
                push(ev, false, &mut wire);
            } else {
                let ev = a.receive("b@x", &text, &mut sa, 0, &mut rng);
                push(ev, true, &mut wire);
            }
        }
        assert!(
            a.peers["b@x"]
                .conversations
                .values()
                .all(|c| c.is_encrypted())
        );
        // With an offline state too.
        sa.generate_prekey_messages(&mut rng, 2, 0).unwrap();
        a.account.resign_profile(5);
        for (c, s) in [(&a, &sa), (&b, &sb)] {
            let (contents, len) = c.export_contents(s, PERSIST_VERSION);
            assert_eq!(contents.len(), len);
        }
    }

    /// Two clients with an encrypted session (Alice started with a query message).
    fn connected_pair(seed: u64) -> (Client, Client, StdRng) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mk = |rng: &mut StdRng, jid| {
            Client::new(Account::generate(rng, Policy::default(), 0).unwrap(), jid)
        };
        let (mut a, mut b) = (mk(&mut rng, "a@x"), mk(&mut rng, "b@x"));
        let mut sa = PrekeyStore::new(a.account.instance_tag());
        let mut sb = PrekeyStore::new(b.account.instance_tag());
        let mut wire: Vec<(bool, String)> = Vec::new();
        let push = |ev: Vec<Event>, to_b: bool, wire: &mut Vec<(bool, String)>| {
            for e in ev {
                if let Event::Send { text, .. } = e {
                    wire.push((to_b, text));
                }
            }
        };
        push(a.start("b@x", 0, &mut rng), true, &mut wire);
        while let Some((to_b, text)) = wire.pop() {
            if to_b {
                let ev = b.receive("a@x", &text, &mut sb, 0, &mut rng);
                push(ev, false, &mut wire);
            } else {
                let ev = a.receive("b@x", &text, &mut sa, 0, &mut rng);
                push(ev, true, &mut wire);
            }
        }
        (a, b, rng)
    }

    fn empty_store(c: &Client) -> PrekeyStore {
        PrekeyStore::new(c.account.instance_tag())
    }

    #[test]
    fn version_1_exports_are_migrated() {
        let (a, _, mut rng) = connected_pair(12);
        let key = [6u8; 32];
        let tag = a.peers["b@x"].instances()[0];
        let ssid = a.conversation("b@x", tag).unwrap().ssid().unwrap();
        let store = empty_store(&a);
        let (v1, _) = a.export_contents(&store, 1);
        let sealed = seal_version(CLIENT_MAGIC, 1, &key, &v1, &mut rng);
        assert_eq!(&sealed[8..10], &[0, 1]);
        let (c, prekeys) = Client::import(&key, &sealed).unwrap();
        let conv = c.conversation("b@x", tag).unwrap();
        assert_eq!(conv.ssid(), Some(ssid));
        assert_eq!(conv.non_interactive_role(), None);
        assert!(prekeys.is_empty());
        assert_eq!(prekeys.owner_tag(), c.account().instance_tag());
        assert!(c.account().previous_profiles().is_empty());
        // A version 1 body under a version 2 header (and the reverse) does not parse.
        let mislabelled = seal_version(CLIENT_MAGIC, 2, &key, &v1, &mut rng);
        assert!(matches!(
            Client::import(&key, &mislabelled),
            Err(PersistError::Malformed(_))
        ));
        let (v2, _) = a.export_contents(&store, 2);
        let mislabelled = seal_version(CLIENT_MAGIC, 1, &key, &v2, &mut rng);
        assert!(Client::import(&key, &mislabelled).is_err());
        // Accounts too.
        let store = store.export();
        let mut w = Vec::new();
        write_account(&mut w, &a.account, &store, 1);
        let sealed = seal_version(ACCOUNT_MAGIC, 1, &key, w.as_slice(), &mut rng);
        let (acct, prekeys) = Account::import(&key, &sealed).unwrap();
        assert_eq!(acct.fingerprint(), a.account().fingerprint());
        assert!(prekeys.is_empty());
    }

    #[test]
    fn offline_state_round_trips_and_is_checked() {
        let mut rng = StdRng::seed_from_u64(11);
        let key = [5u8; 32];
        let mut a = Account::generate(&mut rng, Policy::standalone(), 0).unwrap();
        let mut a_store = PrekeyStore::new(a.instance_tag());
        a_store.generate_prekey_messages(&mut rng, 3, 5).unwrap();
        let lt = a.long_term.clone();
        a_store.new_prekey_profile(&mut rng, &lt, 1000);
        a.resign_profile(10);
        a.published.client_profile = Some([3; 32]);
        a.published.last_status_query = Some(77);
        let (b, b_store) = Account::import(&key, &a.export(&a_store, &key, &mut rng)).unwrap();
        let ids: Vec<u32> = a_store.ids().collect();
        assert_eq!(b_store.ids().collect::<Vec<_>>(), ids);
        for id in ids {
            assert_eq!(b_store.prekey_message(id), a_store.prekey_message(id));
        }
        assert_eq!(
            b_store.shared_prekeys()[0].profile(),
            a_store.shared_prekeys()[0].profile()
        );
        assert_eq!(b.previous_profiles().len(), 1);
        assert_eq!(b.previous_profiles(), a.previous_profiles());
        assert_eq!(b.published.client_profile, Some([3; 32]));
        assert_eq!(b.published.prekey_profile, None);
        assert_eq!(b.published.last_status_query, Some(77));

        let import_with = |a: &Account, store: &PrekeyStore, rng: &mut StdRng| {
            let mut w = Vec::new();
            write_account(&mut w, a, &store.export(), PERSIST_VERSION);
            let sealed = seal(ACCOUNT_MAGIC, &key, w.as_slice(), rng);
            Account::import(&key, &sealed)
        };
        // A prekey store of another instance.
        let other = PrekeyStore::new(InstanceTag(0x0999_9999));
        assert_eq!(
            import_with(&a, &other, &mut rng).unwrap_err(),
            PersistError::Invalid("prekey store instance tag")
        );
        // A Prekey Profile signed by another key.
        let mut forged = PrekeyStore::new(a.instance_tag());
        let other_key = KeyPair::generate(&mut rng);
        forged.new_prekey_profile(&mut rng, &other_key, 1000);
        assert_eq!(
            import_with(&a, &forged, &mut rng).unwrap_err(),
            PersistError::Invalid("prekey profile")
        );
        // A previous Client Profile of another key.
        let stranger = Account::generate(&mut rng, Policy::standalone(), 0).unwrap();
        let mut c = Account::generate(&mut rng, Policy::standalone(), 0).unwrap();
        c.previous_profiles.push(stranger.profile().clone());
        let store = PrekeyStore::new(c.instance_tag());
        assert_eq!(
            import_with(&c, &store, &mut rng).unwrap_err(),
            PersistError::Invalid("previous client profile")
        );
        // Too many previous profiles.
        let mut d = Account::generate(&mut rng, Policy::standalone(), 0).unwrap();
        for _ in 0..=MAX_PREVIOUS_PROFILES {
            d.previous_profiles.push(d.profile().clone());
        }
        let store = PrekeyStore::new(d.instance_tag());
        assert_eq!(
            import_with(&d, &store, &mut rng).unwrap_err(),
            PersistError::Invalid("too many previous profiles")
        );
    }

    #[test]
    fn account_round_trips_and_policy_survives() {
        let mut rng = StdRng::seed_from_u64(4);
        let policy = Policy {
            selection: Selection::RecentSent,
            max_message_size: 200,
            ..Policy::interactive_only()
        };
        let a = Account::generate(&mut rng, policy, 100).unwrap();
        let key = [1u8; 32];
        let bytes = a.export(&PrekeyStore::new(a.instance_tag()), &key, &mut rng);
        let (b, _) = Account::import(&key, &bytes).unwrap();
        assert_eq!(b.fingerprint(), a.fingerprint());
        assert_eq!(b.instance_tag(), a.instance_tag());
        assert_eq!(b.profile(), a.profile());
        assert_eq!(b.policy(), a.policy());
        assert_eq!(
            b.long_term.symmetric_key().as_bytes(),
            a.long_term.symmetric_key().as_bytes()
        );
        assert_eq!(
            Account::import(&[2u8; 32], &bytes).unwrap_err(),
            PersistError::Authentication
        );
    }

    #[test]
    fn authenticated_but_inconsistent_contents_are_rejected() {
        let mut rng = StdRng::seed_from_u64(5);
        let key = [9u8; 32];
        let a = Account::generate(&mut rng, Policy::default(), 0).unwrap();
        let store = PrekeyStore::new(a.instance_tag()).export();
        let mut w = Vec::new();
        write_account(&mut w, &a, &store, PERSIST_VERSION);
        let good = w;
        let offline_len = 4 + store.len() + 2 * 33 + 9 + 4;
        // Instance tag field (after 57 + 57 + 1 bytes) changed: profile no longer matches.
        let mut bad = good.clone();
        bad[57 + 57 + 1 + 3] ^= 1;
        let sealed = seal(ACCOUNT_MAGIC, &key, &bad, &mut rng);
        assert!(matches!(
            Account::import(&key, &sealed),
            Err(PersistError::Invalid(_))
        ));
        // Unknown mode byte.
        let mut bad = good.clone();
        let policy_at = good.len() - offline_len - (4 + 4 + 8 * 3 + 4 * 2 + 8 * 4);
        bad[policy_at] = 9;
        let sealed = seal(ACCOUNT_MAGIC, &key, &bad, &mut rng);
        assert_eq!(
            Account::import(&key, &sealed).unwrap_err(),
            PersistError::Invalid("mode")
        );
        // Trailing bytes inside the authenticated contents.
        let mut bad = good;
        bad.push(0);
        let sealed = seal(ACCOUNT_MAGIC, &key, &bad, &mut rng);
        assert!(matches!(
            Account::import(&key, &sealed),
            Err(PersistError::Malformed(DecodeError::TrailingBytes(_)))
        ));
    }
}
