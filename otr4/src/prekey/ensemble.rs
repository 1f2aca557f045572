//! The publisher's [`PrekeyStore`] of one-time prekey secrets and shared prekeys (otrv4.md
//! §"Prekey Message", §"Publishing Prekey Ensembles", §"Creating a Prekey Profile").
//!
//! The retriever's side, validating and choosing received ensembles, is
//! [`crate::dake::ensemble`].

use crate::crypto::dh::{DH_MODULUS_LEN, DH_SECRET_LEN, DhKeyPair, DhSecret};
use crate::crypto::ed448::{KeyPair, SYMMETRIC_KEY_LEN, SymmetricKey};
use crate::crypto::keys::SharedPrekeyPublic;
use crate::dake::non_interactive::PrekeySecretSource;
use crate::debug::redacted_debug;
use crate::instance_tag::InstanceTag;
use crate::prekey::PrekeyError;
use crate::prekey::client::PublishItems;
use crate::prekey::messages::MAX_PUBLISHED_PREKEY_MESSAGES;
use crate::profile::prekey::{PREKEY_PROFILE_LEN, PrekeyProfile};
use crate::ratchet::SecretBytes;
use crate::wire::codec::{Codec, DecodeError, Reader, Writer};
use crate::wire::messages::PrekeyMessage;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Most one-time prekey secrets a [`PrekeyStore`] holds (and accepts on import): about
/// 40 publications of 255, or 5 MB of export.
pub const MAX_STORED_PREKEYS: usize = 10_000;
/// Most shared prekeys (with their Prekey Profiles) a [`PrekeyStore`] keeps: the current one
/// and older ones still inside their extra validity period.
pub const MAX_SHARED_PREKEYS: usize = 16;
/// Version byte of the [`PrekeyStore::export`] format.
pub const STORE_FORMAT_VERSION: u8 = 1;
/// Fewest bytes of one exported prekey: id, created, y, b, B as an MPI of at least 1 byte.
const MIN_EXPORTED_PREKEY_LEN: usize = 4 + 8 + SYMMETRIC_KEY_LEN + DH_SECRET_LEN + 4 + 1;
/// Bytes of one exported shared prekey: d and the Prekey Profile.
const EXPORTED_SHARED_LEN: usize = SYMMETRIC_KEY_LEN + PREKEY_PROFILE_LEN;

/// The secrets of one Prekey message (otrv4.md §"Prekey Message"): the one-time ECDH key
/// pair `(y, Y)` and DH key pair `(b, B)`, and when they were made. Zeroized on drop;
/// `Debug` prints only the public values.
#[derive(Clone)]
pub struct PrekeySecrets {
    pub(crate) y: KeyPair,
    pub(crate) b: DhKeyPair,
    pub(crate) created: i64,
}

impl PrekeySecrets {
    /// The ECDH key pair `(y, Y)`.
    #[cfg(feature = "hazmat")]
    pub fn ecdh(&self) -> &KeyPair {
        &self.y
    }

    /// The DH key pair `(b, B)`.
    #[cfg(feature = "hazmat")]
    pub fn dh(&self) -> &DhKeyPair {
        &self.b
    }

    /// When the secrets were generated (seconds since the Unix epoch, as passed in).
    #[cfg(feature = "hazmat")]
    pub fn created(&self) -> i64 {
        self.created
    }

    /// The public Prekey message for these secrets.
    pub fn message(&self, id: u32, owner_tag: InstanceTag) -> PrekeyMessage {
        PrekeyMessage {
            id,
            owner_tag,
            y: *self.y.public(),
            b: self.b.public().clone(),
        }
    }
}

redacted_debug!(PrekeySecrets { y = |s| s.y.public(), b = |s| s.b.public(), created, .. });

/// A shared prekey pair `(d, D)` with the Prekey Profile that publishes `D`.
#[derive(Clone)]
pub struct SharedPrekey {
    pub(crate) key: KeyPair,
    pub(crate) profile: PrekeyProfile,
}

impl SharedPrekey {
    /// The key pair `(d, D)`.
    #[cfg(feature = "hazmat")]
    pub fn key(&self) -> &KeyPair {
        &self.key
    }

    /// The signed Prekey Profile carrying `D`.
    pub fn profile(&self) -> &PrekeyProfile {
        &self.profile
    }
}

redacted_debug!(SharedPrekey { profile, .. });

/// The publisher's local prekey state for one instance tag: the secrets of every generated
/// Prekey message by id, and the shared prekeys with their Prekey Profiles (newest last).
///
/// The secrets are kept from generation (before publication) until a Non-Interactive-Auth
/// message uses them (`PrekeyStore::remove`), the publication fails, or they age out
/// (`PrekeyStore::remove_created_before`). `PrekeyStore::export` and
/// `PrekeyStore::import` persist it with the rest of the client state.
#[derive(Clone)]
pub struct PrekeyStore {
    owner_tag: InstanceTag,
    prekeys: BTreeMap<u32, PrekeySecrets>,
    shared: Vec<SharedPrekey>,
}

redacted_debug!(PrekeyStore {
    owner_tag,
    prekeys: len,
    shared
});

impl PrekeyStore {
    /// An empty store for the client instance `owner_tag`.
    pub fn new(owner_tag: InstanceTag) -> PrekeyStore {
        PrekeyStore {
            owner_tag,
            prekeys: BTreeMap::new(),
            shared: Vec::new(),
        }
    }

    /// The owner instance tag of every Prekey message and Prekey Profile made here.
    pub fn owner_tag(&self) -> InstanceTag {
        self.owner_tag
    }

    /// Number of stored one-time prekey secrets.
    pub fn len(&self) -> usize {
        self.prekeys.len()
    }

    /// Whether no one-time prekey secrets are stored.
    pub fn is_empty(&self) -> bool {
        self.prekeys.is_empty()
    }

    /// The ids of the stored prekey secrets, ascending.
    #[cfg(feature = "hazmat")]
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.prekeys.keys().copied()
    }

    hazmat_pub! {
        /// Generates `n` Prekey messages (otrv4.md §"Prekey Message"): each with a unique random
        /// id (not 0, not already in the store), a fresh ECDH and DH key pair, and our owner tag.
        /// The secrets are stored; the public messages are returned in generation order.
        ///
        /// Fails with [`PrekeyError::BadRequest`] if `n` is 0 or more than 255 (one
        /// publication), or [`PrekeyError::StoreFull`] if the store would exceed
        /// [`MAX_STORED_PREKEYS`].
        fn generate_prekey_messages<R: rand_core::CryptoRng + ?Sized>(
            &mut self,
            rng: &mut R,
            n: usize,
            now: i64,
        ) -> Result<Vec<PrekeyMessage>, PrekeyError> {
            if n == 0 || n > MAX_PUBLISHED_PREKEY_MESSAGES {
                return Err(PrekeyError::BadRequest("number of prekey messages"));
            }
            if self.prekeys.len().saturating_add(n) > MAX_STORED_PREKEYS {
                return Err(PrekeyError::StoreFull);
            }
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let id = loop {
                    let id = rng.next_u32();
                    if id != 0 && !self.prekeys.contains_key(&id) {
                        break id;
                    }
                };
                let secrets = PrekeySecrets {
                    y: KeyPair::generate(rng),
                    b: DhKeyPair::generate(rng),
                    created: now,
                };
                out.push(secrets.message(id, self.owner_tag));
                self.prekeys.insert(id, secrets);
            }
            Ok(out)
        }
    }

    /// The secrets of Prekey message `id`.
    #[cfg(feature = "hazmat")]
    pub fn get(&self, id: u32) -> Option<&PrekeySecrets> {
        self.prekeys.get(&id)
    }

    /// The public Prekey message `id`.
    #[cfg(feature = "hazmat")]
    pub fn prekey_message(&self, id: u32) -> Option<PrekeyMessage> {
        self.prekeys.get(&id).map(|s| s.message(id, self.owner_tag))
    }

    hazmat_pub! {
        /// Removes (and returns) the secrets of Prekey message `id`: after a Non-Interactive-Auth
        /// message used it, or when its publication failed.
        fn remove(&mut self, id: u32) -> Option<PrekeySecrets> {
            self.prekeys.remove(&id)
        }
    }

    /// Removes the prekey secrets generated before `cutoff`; returns how many.
    #[cfg(feature = "hazmat")]
    pub fn remove_created_before(&mut self, cutoff: i64) -> usize {
        let before = self.prekeys.len();
        self.prekeys.retain(|_, s| s.created >= cutoff);
        before - self.prekeys.len()
    }

    hazmat_pub! {
        /// Generates a new shared prekey and signs its Prekey Profile with `long_term`
        /// (otrv4.md §"Creating a Prekey Profile"); keeps both, dropping the oldest shared
        /// prekey if more than [`MAX_SHARED_PREKEYS`] would be kept. Returns the new profile.
        fn new_prekey_profile<R: rand_core::CryptoRng + ?Sized>(
            &mut self,
            rng: &mut R,
            long_term: &KeyPair,
            expiration: i64,
        ) -> PrekeyProfile {
            let key = KeyPair::generate(rng);
            let profile = PrekeyProfile::build_and_sign(self.owner_tag, expiration, &key, long_term);
            if self.shared.len() >= MAX_SHARED_PREKEYS && !self.shared.is_empty() {
                self.shared.remove(0);
            }
            self.shared.push(SharedPrekey {
                key,
                profile: profile.clone(),
            });
            profile
        }
    }

    hazmat_pub! {
        /// The newest shared prekey, if any.
        fn current_shared_prekey(&self) -> Option<&SharedPrekey> {
            self.shared.last()
        }
    }

    hazmat_pub! {
        /// Every kept shared prekey, oldest first.
        fn shared_prekeys(&self) -> &[SharedPrekey] {
            &self.shared
        }
    }

    /// The shared prekey whose public part is `d` (for a received Non-Interactive-Auth
    /// message, which may use an older, still valid Prekey Profile).
    #[cfg(feature = "hazmat")]
    pub fn shared_prekey(&self, d: &SharedPrekeyPublic) -> Option<&SharedPrekey> {
        self.shared.iter().find(|s| s.profile.shared_prekey == *d)
    }

    hazmat_pub! {
        /// Drops shared prekeys whose Prekey Profile expired at least `extra_validity` seconds
        /// before `now` (otrv4.md §"Publishing Prekey Ensembles": after the extra validity time
        /// they "must be securely deleted"); returns how many.
        fn expire_shared_prekeys(&mut self, now: i64, extra_validity: i64) -> usize {
            let before = self.shared.len();
            self.shared
                .retain(|s| !s.profile.is_expired(now.saturating_sub(extra_validity)));
            before - self.shared.len()
        }
    }

    hazmat_pub! {
        /// Collects what to publish: the Prekey messages `ids` with their secrets (for the
        /// proofs), and the newest Prekey Profile with its shared prekey if
        /// `with_prekey_profile`. Fails with [`PrekeyError::BadRequest`] for an unknown id, more
        /// than 255 ids, or a requested Prekey Profile that does not exist.
        fn publish_items(
            &self,
            ids: &[u32],
            with_prekey_profile: bool,
        ) -> Result<PublishItems, PrekeyError> {
            if ids.len() > MAX_PUBLISHED_PREKEY_MESSAGES {
                return Err(PrekeyError::BadRequest("more than 255 prekey messages"));
            }
            let mut items = PublishItems::new();
            for &id in ids {
                let s = self
                    .prekeys
                    .get(&id)
                    .ok_or(PrekeyError::BadRequest("unknown prekey id"))?;
                items
                    .prekey_messages
                    .push((s.message(id, self.owner_tag), s.y.clone(), s.b.clone()));
            }
            if with_prekey_profile {
                let s = self
                    .current_shared_prekey()
                    .ok_or(PrekeyError::BadRequest("no prekey profile"))?;
                items.prekey_profile = Some(alloc::boxed::Box::new((s.profile.clone(), s.key.clone())));
            }
            Ok(items)
        }
    }

    /// Serializes the store (secrets included) for persistence:
    /// `version (BYTE) || owner tag (INT) || count (INT) || count × (id (INT) || created
    /// (8 bytes) || y's 57-byte symmetric key || b (80 bytes) || B (MPI)) || shared count
    /// (INT) || shared × (d's 57-byte symmetric key || PREKEY-PROF)`.
    pub(crate) fn export(&self) -> SecretBytes {
        // A first capacity from the entry sizes; a [`SecretBytes`] that grows beyond it
        // wipes the buffer it leaves, so no stale copy of a secret remains in freed memory.
        let mut w = SecretBytes::new(Vec::with_capacity(
            16 + self.prekeys.len() * (MIN_EXPORTED_PREKEY_LEN + DH_MODULUS_LEN)
                + self.shared.len() * EXPORTED_SHARED_LEN,
        ));
        w.u8(STORE_FORMAT_VERSION).u32(self.owner_tag.0);
        w.u32(u32::try_from(self.prekeys.len()).unwrap_or(u32::MAX));
        for (id, s) in &self.prekeys {
            w.u32(*id).i64(s.created);
            w.bytes(s.y.symmetric_key().as_bytes());
            w.bytes(s.b.secret_bytes());
            w.dh_public(s.b.public());
        }
        w.u32(u32::try_from(self.shared.len()).unwrap_or(u32::MAX));
        for s in &self.shared {
            w.bytes(s.key.symmetric_key().as_bytes());
            w.put(&s.profile);
        }
        w
    }

    hazmat_pub! {
        /// Restores a store written by [`PrekeyStore::export`]. Rejects an unknown version,
        /// an invalid owner tag, counts above [`MAX_STORED_PREKEYS`] / [`MAX_SHARED_PREKEYS`] or
        /// above what the input can hold, duplicate ids, a `B` outside the DH group, a Prekey
        /// Profile whose `D` is not the stored `d`'s, and trailing bytes. Each `Y` and `D` is
        /// recomputed from its secret; `B` is taken as stored (checked for group membership).
        fn import(bytes: &[u8]) -> Result<PrekeyStore, DecodeError> {
            let mut r = Reader::new(bytes);
            let v = r.u8("prekey store version")?;
            if v != STORE_FORMAT_VERSION {
                return Err(DecodeError::BadValue("prekey store version"));
            }
            let owner_tag = InstanceTag(r.u32("prekey store owner tag")?);
            if !owner_tag.is_valid_sender() {
                return Err(DecodeError::BadInstanceTag(owner_tag.0));
            }
            let n = bounded_count(
                &mut r,
                MAX_STORED_PREKEYS,
                MIN_EXPORTED_PREKEY_LEN,
                "prekeys",
            )?;
            let mut prekeys = BTreeMap::new();
            for _ in 0..n {
                let id = r.u32("prekey id")?;
                let created = r.i64("prekey created")?;
                let y = KeyPair::from_symmetric_key(SymmetricKey::from_bytes(
                    r.array::<SYMMETRIC_KEY_LEN>("prekey y")?,
                ));
                let secret = DhSecret(r.array::<DH_SECRET_LEN>("prekey b")?);
                let public = r.dh_public("prekey B")?;
                let b = DhKeyPair { secret, public };
                if prekeys
                    .insert(id, PrekeySecrets { y, b, created })
                    .is_some()
                {
                    return Err(DecodeError::BadValue("duplicate prekey id"));
                }
            }
            let n = bounded_count(&mut r, MAX_SHARED_PREKEYS, EXPORTED_SHARED_LEN, "shared")?;
            let mut shared = Vec::with_capacity(n);
            for _ in 0..n {
                let key = KeyPair::from_symmetric_key(SymmetricKey::from_bytes(
                    r.array::<SYMMETRIC_KEY_LEN>("shared prekey d")?,
                ));
                let profile = PrekeyProfile::read(&mut r)?;
                if profile.shared_prekey.0 != *key.public() {
                    return Err(DecodeError::BadValue(
                        "shared prekey does not match profile",
                    ));
                }
                shared.push(SharedPrekey { key, profile });
            }
            r.finish()?;
            Ok(PrekeyStore {
                owner_tag,
                prekeys,
                shared,
            })
        }
    }
}

impl PrekeySecretSource for PrekeyStore {
    fn owner(&self) -> InstanceTag {
        self.owner_tag
    }

    fn one_time_keys(&self, id: u32) -> Option<(&KeyPair, &DhKeyPair)> {
        self.prekeys.get(&id).map(|s| (&s.y, &s.b))
    }

    fn shared_prekey_keys(&self) -> Vec<(&KeyPair, &SharedPrekeyPublic)> {
        self.shared
            .iter()
            .map(|s| (&s.key, &s.profile.shared_prekey))
            .collect()
    }

    fn use_up(&mut self, id: u32) {
        drop(self.prekeys.remove(&id));
    }
}

/// Reads a count (INT) bounded by `max` and by what the remaining input can hold.
fn bounded_count(
    r: &mut Reader<'_>,
    max: usize,
    min_len: usize,
    what: &'static str,
) -> Result<usize, DecodeError> {
    let n = r.u32(what)? as usize;
    let limit = max.min(r.remaining() / min_len);
    if n > limit {
        return Err(DecodeError::LengthTooLarge {
            what,
            len: n as u64,
            limit: limit as u64,
        });
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::generate_forging_point;
    use crate::dake::ensemble::{EnsembleError, ValidatedEnsemble, choose_ensembles};
    use crate::profile::ProfileError;
    use crate::profile::client::ClientProfile;
    use crate::wire::messages::PrekeyEnsemble;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const TAG: InstanceTag = InstanceTag(0x1234_5678);
    const NOW: i64 = 1_700_000_000;

    fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    #[test]
    fn generated_prekeys_have_unique_nonzero_ids_and_match_their_secrets() {
        let mut r = rng(1);
        let mut store = PrekeyStore::new(TAG);
        let msgs = store.generate_prekey_messages(&mut r, 20, NOW).unwrap();
        assert_eq!(msgs.len(), 20);
        assert_eq!(store.len(), 20);
        let mut ids: Vec<u32> = msgs.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 20);
        for m in &msgs {
            assert_ne!(m.id, 0);
            assert_eq!(m.owner_tag, TAG);
            let s = store.get(m.id).unwrap();
            assert_eq!(s.ecdh().public(), &m.y);
            assert_eq!(s.dh().public(), &m.b);
            assert_eq!(store.prekey_message(m.id).unwrap(), *m);
        }
        assert!(matches!(
            store.generate_prekey_messages(&mut r, 0, NOW),
            Err(PrekeyError::BadRequest(_))
        ));
        assert!(matches!(
            store.generate_prekey_messages(&mut r, 256, NOW),
            Err(PrekeyError::BadRequest(_))
        ));
    }

    #[test]
    fn store_is_bounded() {
        let mut r = rng(2);
        let mut store = PrekeyStore::new(TAG);
        // Fill cheaply by inserting copies of one generated secret under many ids.
        let one = store.generate_prekey_messages(&mut r, 1, NOW).unwrap();
        let s = store.get(one[0].id).unwrap().clone();
        let mut id = 1;
        while store.len() < MAX_STORED_PREKEYS {
            store.prekeys.insert(id, s.clone());
            id += 1;
        }
        assert_eq!(store.len(), MAX_STORED_PREKEYS);
        assert_eq!(
            store.generate_prekey_messages(&mut r, 1, NOW),
            Err(PrekeyError::StoreFull)
        );
        // An export of a full store imports; one more entry is rejected.
        let bytes = store.export();
        assert_eq!(
            PrekeyStore::import(bytes.as_slice()).unwrap().len(),
            MAX_STORED_PREKEYS
        );
    }

    #[test]
    fn export_import_round_trip_and_rejections() {
        let mut r = rng(3);
        let long_term = KeyPair::generate(&mut r);
        let mut store = PrekeyStore::new(TAG);
        store.generate_prekey_messages(&mut r, 3, NOW).unwrap();
        store.new_prekey_profile(&mut r, &long_term, NOW + 100);
        store.new_prekey_profile(&mut r, &long_term, NOW + 200);
        let bytes = store.export();
        let back = PrekeyStore::import(bytes.as_slice()).unwrap();
        assert_eq!(back.export().as_slice(), bytes.as_slice());
        assert_eq!(back.owner_tag(), TAG);
        for id in store.ids() {
            assert_eq!(back.prekey_message(id), store.prekey_message(id));
            assert_eq!(
                back.get(id).unwrap().dh().secret_bytes(),
                store.get(id).unwrap().dh().secret_bytes()
            );
        }
        assert_eq!(back.shared_prekeys().len(), 2);
        let b = bytes.as_slice();
        // Version, truncation, trailing bytes, bad tag, huge counts.
        let mut v = b.to_vec();
        v[0] = 2;
        assert_eq!(
            PrekeyStore::import(&v).err().unwrap(),
            DecodeError::BadValue("prekey store version")
        );
        assert!(matches!(
            PrekeyStore::import(&b[..b.len() - 1]),
            Err(DecodeError::LengthTooLarge { what: "shared", .. })
        ));
        assert!(matches!(
            PrekeyStore::import(&b[..20]),
            Err(DecodeError::LengthTooLarge {
                what: "prekeys",
                ..
            })
        ));
        assert!(matches!(
            PrekeyStore::import(&b[..3]),
            Err(DecodeError::Truncated { .. })
        ));
        let mut v = b.to_vec();
        v.push(0);
        assert_eq!(
            PrekeyStore::import(&v).err(),
            Some(DecodeError::TrailingBytes(1))
        );
        let mut v = b.to_vec();
        v[1..5].copy_from_slice(&[0, 0, 0, 0xff]);
        assert_eq!(
            PrekeyStore::import(&v).err(),
            Some(DecodeError::BadInstanceTag(0xff))
        );
        let mut v = b.to_vec();
        v[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            PrekeyStore::import(&v),
            Err(DecodeError::LengthTooLarge {
                what: "prekeys",
                ..
            })
        ));
        // Duplicate id: overwrite the second entry's id with the first's.
        let first_id = &b[9..13];
        let entry_len = (b.len() - 9 - 4 - 2 * EXPORTED_SHARED_LEN) / 3;
        let mut v = b.to_vec();
        v[9 + entry_len..9 + entry_len + 4].copy_from_slice(first_id);
        assert_eq!(
            PrekeyStore::import(&v).err(),
            Some(DecodeError::BadValue("duplicate prekey id"))
        );
        // A shared prekey that does not match its profile.
        let mut v = b.to_vec();
        let d_at = b.len() - EXPORTED_SHARED_LEN;
        v[d_at] ^= 1;
        assert_eq!(
            PrekeyStore::import(&v).err(),
            Some(DecodeError::BadValue(
                "shared prekey does not match profile"
            ))
        );
    }

    #[test]
    fn shared_prekeys_rotate_and_expire() {
        let mut r = rng(4);
        let long_term = KeyPair::generate(&mut r);
        let mut store = PrekeyStore::new(TAG);
        for i in 0..(MAX_SHARED_PREKEYS as i64 + 2) {
            store.new_prekey_profile(&mut r, &long_term, NOW + i);
        }
        assert_eq!(store.shared_prekeys().len(), MAX_SHARED_PREKEYS);
        let newest = store.current_shared_prekey().unwrap().profile().clone();
        assert_eq!(newest.expiration, NOW + MAX_SHARED_PREKEYS as i64 + 1);
        assert!(store.shared_prekey(&newest.shared_prekey).is_some());
        // Expired at NOW + 5 with 1 s of extra validity: those with expiration <= NOW + 4 go.
        let oldest_kept = store.shared_prekeys()[0].profile().expiration;
        let removed = store.expire_shared_prekeys(NOW + 5, 1);
        assert_eq!(removed as i64, NOW + 4 - oldest_kept + 1);
        assert!(
            store
                .shared_prekeys()
                .iter()
                .all(|s| s.profile().expiration > NOW + 4)
        );
    }

    #[test]
    fn remove_and_age_out() {
        let mut r = rng(5);
        let mut store = PrekeyStore::new(TAG);
        let old = store.generate_prekey_messages(&mut r, 2, NOW).unwrap();
        let new = store.generate_prekey_messages(&mut r, 2, NOW + 10).unwrap();
        assert!(store.remove(old[0].id).is_some());
        assert!(store.remove(old[0].id).is_none());
        assert_eq!(store.remove_created_before(NOW + 10), 1);
        assert_eq!(store.len(), 2);
        assert!(store.get(new[1].id).is_some());
    }

    struct Owner {
        long_term: KeyPair,
        cp: ClientProfile,
        store: PrekeyStore,
    }

    fn owner(r: &mut StdRng, tag: InstanceTag, cp_exp: i64, pp_exp: i64) -> Owner {
        let long_term = KeyPair::generate(r);
        let forging = generate_forging_point(r);
        let cp = ClientProfile::build_and_sign(tag, &long_term, &forging, b"4", cp_exp);
        let mut store = PrekeyStore::new(tag);
        store.new_prekey_profile(r, &long_term, pp_exp);
        Owner {
            long_term,
            cp,
            store,
        }
    }

    fn ensembles(r: &mut StdRng, o: &mut Owner, n: usize) -> Vec<PrekeyEnsemble> {
        let pp = o.store.current_shared_prekey().unwrap().profile().clone();
        o.store
            .generate_prekey_messages(r, n, NOW)
            .unwrap()
            .into_iter()
            .map(|m| PrekeyEnsemble {
                client_profile: o.cp.clone(),
                prekey_profile: pp.clone(),
                prekey_message: m,
            })
            .collect()
    }

    #[test]
    fn validate_accepts_a_good_ensemble_and_rejects_each_bad_part() {
        let mut r = rng(6);
        let mut o = owner(&mut r, TAG, NOW + 1000, NOW + 500);
        let e = ensembles(&mut r, &mut o, 1).remove(0);
        let v = ValidatedEnsemble::validate(&e, NOW).unwrap();
        assert_eq!(v.owner_tag(), TAG);
        assert_eq!(v.expiry(), NOW + 500);
        assert_eq!(v.prekey_message(), &e.prekey_message);

        let mut bad = e.clone();
        bad.prekey_message.owner_tag = InstanceTag(0x999);
        assert_eq!(
            ValidatedEnsemble::validate(&bad, NOW),
            Err(EnsembleError::InstanceTagMismatch)
        );
        // Expired client profile / prekey profile.
        assert!(matches!(
            ValidatedEnsemble::validate(&e, NOW + 1000),
            Err(EnsembleError::ClientProfile(ProfileError::Expired { .. }))
        ));
        assert!(matches!(
            ValidatedEnsemble::validate(&e, NOW + 500),
            Err(EnsembleError::PrekeyProfile(ProfileError::Expired { .. }))
        ));
        // Prekey profile signed by another key.
        let other = KeyPair::generate(&mut r);
        let d = KeyPair::generate(&mut r);
        let mut bad = e.clone();
        bad.prekey_profile = PrekeyProfile::build_and_sign(TAG, NOW + 500, &d, &other);
        assert_eq!(
            ValidatedEnsemble::validate(&bad, NOW),
            Err(EnsembleError::PrekeyProfile(ProfileError::BadSignature))
        );
        // Client profile with a bad signature (forged expiry).
        let forging = generate_forging_point(&mut r);
        let mut bad = e.clone();
        let good = ClientProfile::build_and_sign(TAG, &o.long_term, &forging, b"4", NOW + 1000);
        let mut bytes = good.encode();
        let exp_at = bytes.len() - 114 - 8;
        bytes[exp_at + 7] ^= 1;
        bad.client_profile = ClientProfile::decode(&bytes).unwrap();
        assert_eq!(
            ValidatedEnsemble::validate(&bad, NOW),
            Err(EnsembleError::ClientProfile(ProfileError::BadSignature))
        );
        // A profile without version 4.
        let mut bad = e.clone();
        bad.client_profile =
            ClientProfile::build_and_sign(TAG, &o.long_term, &forging, b"3", NOW + 1000);
        assert_eq!(
            ValidatedEnsemble::validate(&bad, NOW),
            Err(EnsembleError::ClientProfile(ProfileError::MissingVersion4))
        );
    }

    #[test]
    fn choose_keeps_latest_expiry_per_tag_and_discards_bad_and_duplicates() {
        let mut r = rng(7);
        let tag2 = InstanceTag(0x2000);
        let mut a = owner(&mut r, TAG, NOW + 1000, NOW + 500);
        let mut b = owner(&mut r, tag2, NOW + 1000, NOW + 900);
        let mut list = ensembles(&mut r, &mut a, 2);
        // A second ensemble of the same tag with a later prekey profile expiry.
        let lt = a.long_term.clone();
        a.store.new_prekey_profile(&mut r, &lt, NOW + 800);
        let later = ensembles(&mut r, &mut a, 1);
        list.extend(later.clone());
        list.extend(ensembles(&mut r, &mut b, 1));
        // A duplicate and an invalid one.
        list.push(list[0].clone());
        let mut bad = list[3].clone();
        bad.prekey_message.owner_tag = TAG;
        list.push(bad);
        let c = choose_ensembles(&list, NOW);
        assert_eq!(c.chosen.len(), 2);
        // Ordered by tag: 0x2000 first.
        assert_eq!(c.chosen[0].owner_tag(), tag2);
        assert_eq!(c.chosen[1].owner_tag(), TAG);
        assert_eq!(c.chosen[1].prekey_message(), &later[0].prekey_message);
        assert_eq!(
            c.discarded,
            alloc::vec![
                (4, EnsembleError::Duplicate),
                (5, EnsembleError::InstanceTagMismatch)
            ]
        );
        // Nothing valid: nothing chosen.
        let c = choose_ensembles(&list, NOW + 2000);
        assert!(c.chosen.is_empty());
        assert_eq!(c.discarded.len(), list.len());
    }
}
