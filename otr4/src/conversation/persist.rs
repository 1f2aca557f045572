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
//! The contents use the OTRv4 encodings (SHORT/INT big-endian, LONG = 8-byte signed
//! big-endian, DATA = INT length + bytes, "opt" = BYTE 0/1 then the value, zero if absent).
//! Each persisted type writes and reads its own part next to its definition, through the
//! crate's codec (`Writer`, `Reader`): the `Persist` trait of `persisted` (chosen over
//! `Codec` because reading depends on the format version and on what the enclosing value
//! knows, and fails with [`PersistError`]), or inherent `persist`/`restore` for `Account`
//! and `Client`, which carry the caller's prekey store. The doc comment of each
//! implementation, in the file named on the right, gives the full layout of its part:
//!
//! ```text
//! client:       account || DATA(own bare JID) || INT peer count || peers     (client.rs)
//! account:      keys || instance tag || DATA(Client Profile) || policy ||
//!               offline (version 2 only: prekey store, published digests,
//!               previous Client Profiles)                                    (account.rs)
//! policy:       mode, versions, flags, selection, sizes and timers (72 bytes), then the
//!               padding bucket (2 bytes) when the flags say it is padded (policy.rs)
//! peer:         DATA(bare JID) || whitespace-tag BYTE || queue ||
//!               INT count || conversations                                   (peer.rs)
//! queue:        INT count || (DATA(text) || INT tlv count ||
//!               (SHORT type || DATA(value))*)*                               (context.rs)
//! conversation: their tag || state BYTE || opt last sent || opt last received
//!               || Identity digests || queue || session if encrypted         (state.rs)
//! session:      DATA(double-ratchet export) || SSID || role || kind (version
//!               2 only) || tags || DATA(their Client Profile) || Identity
//!               digest || timers                                             (session.rs)
//! ```
//!
//! An account export holds the account alone. The contents are written into a
//! [`SecretBytes`], which wipes every buffer it outgrows, so nothing computes their length
//! ahead of the write.
//!
//! Where the one-time prekey secrets are concerned the same holds: a Prekey message used by
//! a Non-Interactive-Auth message is deleted from the prekey store passed to
//! [`Client::receive`], so export after receiving one; importing an older export would
//! accept that message again. The store is written inside the account (`DATA(prekey
//! store)`): export and import take and return it beside the account or client.
//! The prekey-server link ([`Client::set_prekey_server`]) is not exported.
//!
//! A DAKE under way is not exported (the conversation restarts from `START`, or from
//! `ENCRYPTED_MESSAGES` if a live session was kept during the DAKE); SMP state, stored early
//! data messages, partial fragments and an untargeted DAKE are dropped. The double ratchet
//! is exported whole, so messages already read are rejected after import: export after
//! every call that changed state, or a restored older export could read a message again.

use alloc::vec::Vec;

use zeroize::Zeroizing;

use crate::crypto::chacha;
use crate::crypto::ct_eq;
use crate::crypto::kdf::shake_into;
use crate::prekey::PrekeyStore;
use crate::ratchet::SecretBytes;
use crate::wire::codec::{DecodeError, Reader, Writer};

use super::account::Account;
use super::client::Client;
use super::persisted::{PersistError, u32_of};

/// Magic of an exported [`Account`].
pub const ACCOUNT_MAGIC: [u8; 8] = *b"OTR4ACCT";
/// Magic of an exported [`Client`].
pub const CLIENT_MAGIC: [u8; 8] = *b"OTR4CLNT";
/// The format version written. Version 3 adds the account's OTRv3 key; version 2 (before
/// it) imports without one; version 1 (before the offline state) is still imported too: the
/// account gets an empty prekey store and every session is an interactive one.
pub const PERSIST_VERSION: u16 = 3;
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

/// A first capacity for the contents of an export: a few KiB per conversation (its double
/// ratchet and the peer's Client Profile) and for the account; the buffer grows (wiping
/// what it leaves) when the prekey store or skipped message keys need more.
fn capacity_estimate(conversations: usize) -> usize {
    4096 + 2048 * conversations
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
        let mut contents = SecretBytes::new(Vec::with_capacity(capacity_estimate(0)));
        self.persist(prekeys, &mut contents, PERSIST_VERSION);
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
        let a = Account::restore(&mut r, version)?;
        r.finish()?;
        Ok(a)
    }
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
        let contents = self.export_contents(prekeys, PERSIST_VERSION);
        seal(CLIENT_MAGIC, key, &contents, rng)
    }

    /// The plaintext contents in format `version`.
    fn export_contents(&self, prekeys: &PrekeyStore, version: u16) -> SecretBytes {
        let conversations = self.peers.values().map(|p| p.conversations.len()).sum();
        let mut w = SecretBytes::new(Vec::with_capacity(capacity_estimate(conversations)));
        self.persist(prekeys, &mut w, version);
        w
    }

    /// Imports [`Client::export`]'s bytes into the client and its prekey store: checks the
    /// tag (a wrong key gives [`PersistError::Authentication`]), then every field: keys
    /// against profiles, instance tags, each double ratchet, no duplicate peers or
    /// instances. The device limit is [`super::DEFAULT_MAX_INSTANCES`] again (conversations
    /// beyond it are kept): set yours with [`Client::set_max_instances`]. Never panics.
    pub fn import(
        key: &[u8; PERSIST_KEY_LEN],
        bytes: &[u8],
    ) -> Result<(Client, PrekeyStore), PersistError> {
        let (pt, version) = open(CLIENT_MAGIC, key, bytes)?;
        let mut r = Reader::new(&pt);
        let c = Client::restore(&mut r, version)?;
        r.finish()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InstanceTag;
    use crate::conversation::events::Event;
    use crate::conversation::{MAX_PREVIOUS_PROFILES, Policy, Selection};
    use crate::crypto::ed448::KeyPair;
    use alloc::string::String;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn envelope_round_trips_and_rejects_tampering() {
        let mut rng = StdRng::seed_from_u64(3);
        let key = [7u8; 32];
        let sealed = seal(CLIENT_MAGIC, &key, b"hello contents", &mut rng);
        assert_eq!(&sealed[..8], b"OTR4CLNT");
        assert_eq!(&sealed[8..10], &PERSIST_VERSION.to_be_bytes());
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
        for v in [0u8, 4] {
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
        let v1 = a.export_contents(&store, 1);
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
        let v2 = a.export_contents(&store, 2);
        let mislabelled = seal_version(CLIENT_MAGIC, 1, &key, &v2, &mut rng);
        assert!(Client::import(&key, &mislabelled).is_err());
        // Accounts too.
        let mut w = SecretBytes::default();
        a.account.persist(&store, &mut w, 1);
        let sealed = seal_version(ACCOUNT_MAGIC, 1, &key, &w, &mut rng);
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
            let mut w = SecretBytes::default();
            a.persist(store, &mut w, PERSIST_VERSION);
            let sealed = seal(ACCOUNT_MAGIC, &key, &w, rng);
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
        let prekeys = PrekeyStore::new(a.instance_tag());
        let store = prekeys.export();
        let mut w = SecretBytes::default();
        a.persist(&prekeys, &mut w, PERSIST_VERSION);
        let good = w.to_vec();
        // The offline part, then the OTRv3 key flag (no key).
        let offline_len = 4 + store.len() + 2 * 33 + 9 + 4 + 1;
        // Instance tag field (after 57 + 57 + 1 bytes) changed: profile no longer matches.
        let mut bad = good.clone();
        bad[57 + 57 + 1 + 3] ^= 1;
        let sealed = seal(ACCOUNT_MAGIC, &key, &bad, &mut rng);
        assert!(matches!(
            Account::import(&key, &sealed),
            Err(PersistError::Invalid(_))
        ));
        // Unknown mode byte (the policy: 72 bytes, then the padding bucket SHORT).
        let mut bad = good.clone();
        let policy_at = good.len() - offline_len - (4 + 4 + 8 * 3 + 4 * 2 + 8 * 4 + 2);
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
