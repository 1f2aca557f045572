//! The local account (otrv4.md §"Public keys, Shared Prekeys, Forging keys and
//! Fingerprints", §"Client Profile"): long-term and forging keys, instance tag, profiles, policy.

use alloc::vec::Vec;

use crate::InstanceTag;
use crate::crypto::ed448::KeyPair;
use crate::crypto::fingerprint::Fingerprint;
use crate::crypto::keys::{Ed448PublicKey, ForgingPublicKey, generate_forging_point};
use crate::debug::redacted_debug;
use crate::prekey::PrekeyStore;
use crate::profile::client::ClientProfile;
use crate::ratchet::SecretBytes;
use crate::wire::codec::{Codec, Reader, Writer};

use super::events::ConversationError;
use super::persisted::{
    Persist, PersistError, persist_opt_i64, read_flag, read_opt_i64, read_sym, read_tag, u32_of,
    usize_of,
};
use super::policy::Policy;
#[cfg(feature = "v3")]
use crate::v3::pubkey::{DsaPrivateKey, V3Fingerprint};
use crate::wire::query::Versions;

/// The version string of our Client Profile: only "4" (the standalone modes only allow "4",
/// modes/otrv4-standalone-mode.md, "Creating a Client Profile"; in the compatible mode the
/// profile does not yet carry the OTRv3 key and transitional signature, docs/spec-notes.md).
pub const PROFILE_VERSIONS: &[u8] = b"4";

/// How long a replaced Client Profile, and a shared prekey whose Prekey Profile expired,
/// are still used to verify delayed Non-Interactive-Auth messages: one day, the "extra
/// validity time" otrv4.md §"Prekey Profile" recommends. Afterwards they are deleted
/// (§"Publishing Prekey Ensembles": "they must be securely deleted").
pub const PROFILE_EXTRA_VALIDITY_SECS: i64 = 86_400;

/// Most previous Client Profiles kept (the oldest is dropped first).
pub const MAX_PREVIOUS_PROFILES: usize = 4;

/// Bytes of the digest by which we remember which profile the prekey server holds.
pub(crate) const PUBLISHED_DIGEST_LEN: usize = 32;

/// What the prekey server last confirmed of our profiles, and when we last asked it for
/// its storage status (persisted with the account, see `conversation::persist`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Published {
    /// Digest of the Client Profile the prekey server last confirmed storing.
    pub(crate) client_profile: Option<[u8; PUBLISHED_DIGEST_LEN]>,
    /// Digest of the Prekey Profile the prekey server last confirmed storing.
    pub(crate) prekey_profile: Option<[u8; PUBLISHED_DIGEST_LEN]>,
    /// When we last asked the server for its storage status.
    pub(crate) last_status_query: Option<i64>,
}

/// One OTRv4 identity on one device: the long-term key pair `(sk_h, H)`, the forging key
/// `F` (and its secret, if kept), the instance tag, the Client Profile (re-signed from
/// `now` before it expires) and the previous ones still in their extra validity period,
/// the [`Policy`], and what the prekey server last confirmed storing (otrv4.md §"Offline
/// Conversation Initialization"). The secrets of our Prekey messages are not here: they
/// are in the [`crate::prekey::PrekeyStore`] the caller keeps beside the account and
/// passes to the calls that use it.
///
/// Secrets zeroize on drop; `Debug` prints public values only.
pub struct Account {
    pub(crate) long_term: KeyPair,
    pub(crate) forging_public: ForgingPublicKey,
    pub(crate) forging_secret: Option<KeyPair>,
    pub(crate) instance_tag: InstanceTag,
    pub(crate) profile: ClientProfile,
    pub(crate) policy: Policy,
    /// Replaced Client Profiles still in their extra validity period, oldest first.
    pub(crate) previous_profiles: Vec<ClientProfile>,
    pub(crate) published: Published,
    /// The OTRv3 long-term DSA key, for the v3 half of the OTRv3-compatible mode.
    #[cfg(feature = "v3")]
    pub(crate) v3_key: Option<DsaPrivateKey>,
}

redacted_debug!(Account {
    instance_tag,
    fingerprint = |s| s.fingerprint(),
    profile_expiration = |s| s.profile.expiration(),
    policy,
    previous_profiles: len,
    last_status_query = |s| s.published.last_status_query,
    ..
});

impl Account {
    /// A new account: a fresh long-term key pair, a forging key generated directly as a
    /// random point (no secret is ever known; otrv4.md §"Public keys, Shared Prekeys,
    /// Forging keys and Fingerprints", first method), a random instance tag, and a Client
    /// Profile valid from `now` for `policy.profile_lifetime_secs`. Fails if the policy is
    /// inconsistent ([`Policy::check`]).
    pub fn generate<R: rand_core::CryptoRng + ?Sized>(
        rng: &mut R,
        policy: Policy,
        now: i64,
    ) -> Result<Account, ConversationError> {
        policy.check()?;
        let long_term = KeyPair::generate(rng);
        let forging_public = generate_forging_point(rng);
        let instance_tag = InstanceTag::random(rng);
        Ok(Account::assemble(
            long_term,
            forging_public,
            None,
            instance_tag,
            policy,
            now,
        ))
    }

    /// An account from existing keys. `forging_secret`, if given, must be the key pair of
    /// `forging_public` (otrv4.md §"Forger Keys": a client may keep it to forge
    /// transcripts). Fails on an invalid instance tag, a mismatching forging secret, a
    /// forging key equal to the long-term key, or an inconsistent policy.
    #[cfg(feature = "hazmat")]
    pub fn from_keys(
        long_term: KeyPair,
        forging_public: ForgingPublicKey,
        forging_secret: Option<KeyPair>,
        instance_tag: InstanceTag,
        policy: Policy,
        now: i64,
    ) -> Result<Account, ConversationError> {
        policy.check()?;
        if !instance_tag.is_valid_sender() {
            return Err(ConversationError::InvalidKeys("instance tag below 0x100"));
        }
        if let Some(sk) = &forging_secret
            && sk.public() != forging_public.point()
        {
            return Err(ConversationError::InvalidKeys(
                "forging secret does not match the forging key",
            ));
        }
        if long_term.public() == forging_public.point() {
            return Err(ConversationError::InvalidKeys(
                "forging key equals the long-term key",
            ));
        }
        Ok(Account::assemble(
            long_term,
            forging_public,
            forging_secret,
            instance_tag,
            policy,
            now,
        ))
    }

    pub(crate) fn assemble(
        long_term: KeyPair,
        forging_public: ForgingPublicKey,
        forging_secret: Option<KeyPair>,
        instance_tag: InstanceTag,
        policy: Policy,
        now: i64,
    ) -> Account {
        let profile = sign_profile(
            &long_term,
            &forging_public,
            instance_tag,
            now.saturating_add(policy.profile_lifetime_secs),
        );
        Account {
            long_term,
            forging_public,
            forging_secret,
            instance_tag,
            profile,
            policy,
            previous_profiles: Vec::new(),
            published: Published::default(),
            #[cfg(feature = "v3")]
            v3_key: None,
        }
    }

    /// Our instance tag.
    pub fn instance_tag(&self) -> InstanceTag {
        self.instance_tag
    }

    /// Our long-term public key `H`.
    pub(crate) fn public_key(&self) -> Ed448PublicKey {
        Ed448PublicKey(*self.long_term.public())
    }

    /// Our forging public key `F`.
    #[cfg(feature = "hazmat")]
    pub fn forging_key(&self) -> &ForgingPublicKey {
        &self.forging_public
    }

    /// Whether the forging secret is kept.
    #[cfg(feature = "hazmat")]
    pub fn has_forging_secret(&self) -> bool {
        self.forging_secret.is_some()
    }

    /// Our fingerprint over `H` and `F`.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::otrv4(&self.public_key(), &self.forging_public)
    }

    /// Gives the account an OTRv3 long-term DSA key (a new one from
    /// [`DsaPrivateKey::generate`], or the one imported from libotr's `otr.private_key` by
    /// [`crate::otrv3::read_private_keys`]): with it, and version 3 in the policy's
    /// versions, [`super::Mode::Otrv3Compatible`] offers and accepts OTRv3 (otrv4.md
    /// §"OTRv3-compatible mode"). Replaces any key set before.
    #[cfg(feature = "v3")]
    pub fn set_v3_key(&mut self, key: DsaPrivateKey) {
        self.v3_key = Some(key);
    }

    /// The fingerprint of our OTRv3 key, if the account has one.
    #[cfg(feature = "v3")]
    pub fn v3_fingerprint(&self) -> Option<V3Fingerprint> {
        self.v3_key.as_ref().map(DsaPrivateKey::fingerprint)
    }

    /// Our OTRv3 key when version 3 may be used: the mode is OTRv3-compatible, the policy
    /// allows version 3, and the account has a key.
    #[cfg(feature = "v3")]
    pub(crate) fn v3_usable(&self) -> Option<&DsaPrivateKey> {
        let p = &self.policy;
        if p.mode.handles_plaintext() && p.versions.has_v3() {
            self.v3_key.as_ref()
        } else {
            None
        }
    }

    /// The versions we offer in query messages and whitespace tags: the policy's, without
    /// version 3 unless it is usable.
    pub(crate) fn offered_versions(&self) -> Versions {
        #[cfg(feature = "v3")]
        if self.v3_usable().is_some() {
            return self.policy.versions;
        }
        self.policy.versions.intersection(Versions::V4)
    }

    /// Our current Client Profile.
    #[cfg(feature = "hazmat")]
    pub fn profile(&self) -> &ClientProfile {
        &self.profile
    }

    /// Our previous Client Profiles (oldest first), kept after a renewal for
    /// [`PROFILE_EXTRA_VALIDITY_SECS`] past their expiration so that
    /// delayed Non-Interactive-Auth messages made with them still verify (otrv4.md
    /// §"Publishing Prekey Ensembles").
    #[cfg(feature = "hazmat")]
    pub fn previous_profiles(&self) -> &[ClientProfile] {
        &self.previous_profiles
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Replaces the policy after checking it.
    pub fn set_policy(&mut self, policy: Policy) -> Result<(), ConversationError> {
        policy.check()?;
        self.policy = policy;
        Ok(())
    }

    /// Re-signs the Client Profile if it expires within `policy.profile_renew_margin_secs`
    /// of `now` (otrv4.md §"Client Profile Expiration and Renewal"); returns whether it did.
    /// The replaced profile is kept as a previous profile (see
    /// [`Account::previous_profiles`]).
    pub(crate) fn refresh_profile(&mut self, now: i64) -> bool {
        let renew_at = self
            .profile
            .expiration()
            .saturating_sub(self.policy.profile_renew_margin_secs);
        if now < renew_at {
            return false;
        }
        self.resign_profile(now);
        true
    }

    /// Re-signs the Client Profile from `now` and keeps the old one as a previous profile.
    pub(crate) fn resign_profile(&mut self, now: i64) {
        let new = sign_profile(
            &self.long_term,
            &self.forging_public,
            self.instance_tag,
            now.saturating_add(self.policy.profile_lifetime_secs),
        );
        let old = core::mem::replace(&mut self.profile, new);
        self.previous_profiles.push(old);
        self.expire_previous_profiles(now);
        while self.previous_profiles.len() > MAX_PREVIOUS_PROFILES {
            self.previous_profiles.remove(0);
        }
    }

    /// Deletes the previous Client Profiles past their extra validity.
    pub(crate) fn expire_previous_profiles(&mut self, now: i64) {
        let cutoff = now.saturating_sub(PROFILE_EXTRA_VALIDITY_SECS);
        self.previous_profiles.retain(|p| !p.is_expired(cutoff));
    }

    /// Our Client Profiles a Non-Interactive-Auth message may have been made with: the
    /// current one, then the previous ones, newest first.
    pub(crate) fn our_profiles(&self) -> Vec<ClientProfile> {
        core::iter::once(&self.profile)
            .chain(self.previous_profiles.iter().rev())
            .cloned()
            .collect()
    }
}

/// The persisted account:
///
/// ```text
/// account:  long-term symmetric key (57) || forging key POINT (57) || opt forging secret
///           symmetric key (57) || instance tag INT || DATA(Client Profile) || policy ||
///           offline (from version 2) || OTRv3 key (from version 3)
/// offline:  DATA(prekey store, `PrekeyStore::export`) || published Client Profile digest
///           (BYTE flag || 32 bytes, zeros if absent) || published Prekey Profile digest
///           (same) || opt last storage status query LONG || INT n (at most
///           MAX_PREVIOUS_PROFILES) || n × DATA(previous Client Profile), oldest first
/// OTRv3 key: BYTE flag || (with the flag) PUBKEY || MPI x   (the DSA key, y = g^x checked)
/// ```
///
/// Not [`Persist`]: the caller's prekey store is written inside the account and read back
/// beside it (version 1 gives an empty store).
impl Account {
    /// Appends the account in format `version`, with `prekeys` as its prekey store.
    pub(crate) fn persist(&self, prekeys: &PrekeyStore, w: &mut SecretBytes, version: u16) {
        w.bytes(self.long_term.symmetric_key().as_bytes());
        w.point(self.forging_public.point());
        w.u8(u8::from(self.forging_secret.is_some()));
        if let Some(f) = &self.forging_secret {
            w.bytes(f.symmetric_key().as_bytes());
        }
        w.u32(self.instance_tag.0);
        w.data(&self.profile.encode());
        self.policy.persist(w, version);
        if version < 2 {
            return;
        }
        w.data(&prekeys.export());
        persist_opt_digest(w, self.published.client_profile.as_ref());
        persist_opt_digest(w, self.published.prekey_profile.as_ref());
        persist_opt_i64(w, self.published.last_status_query);
        w.u32(u32_of(self.previous_profiles.len()));
        for p in &self.previous_profiles {
            w.data(&p.encode());
        }
        if version < 3 {
            return;
        }
        #[cfg(feature = "v3")]
        if let Some(k) = &self.v3_key {
            w.u8(1);
            k.write_secret(w);
            return;
        }
        w.u8(0);
    }

    /// Reads an account and its prekey store written in format `version`, checking the keys
    /// against the profiles, the signatures, the policy and the store's instance tag.
    pub(crate) fn restore(
        r: &mut Reader<'_>,
        version: u16,
    ) -> Result<(Account, PrekeyStore), PersistError> {
        let long_term = read_sym(r, "long-term key")?;
        let forging_public = ForgingPublicKey(r.point("forging key")?);
        let forging_secret = if read_flag(r, "forging secret flag")? {
            Some(read_sym(r, "forging secret")?)
        } else {
            None
        };
        let instance_tag = read_tag(r, "instance tag")?;
        let profile = ClientProfile::decode(r.data("client profile")?)?;
        let policy = Policy::restore(r, version, ())?;
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
        let (prekeys, previous_profiles, published) = if version >= 2 {
            restore_offline(r, &long_term, &forging_public, instance_tag)?
        } else {
            (
                PrekeyStore::new(instance_tag),
                Vec::new(),
                Published::default(),
            )
        };
        let has_v3_key = version >= 3 && read_flag(r, "OTRv3 key flag")?;
        #[cfg(not(feature = "v3"))]
        if has_v3_key {
            return Err(PersistError::Invalid(
                "the account has an OTRv3 key, but this build has no OTRv3 (feature v3)",
            ));
        }
        let account = Account {
            long_term,
            forging_public,
            forging_secret,
            instance_tag,
            profile,
            policy,
            previous_profiles,
            published,
            #[cfg(feature = "v3")]
            v3_key: if has_v3_key {
                Some(DsaPrivateKey::read_secret(r)?)
            } else {
                None
            },
        };
        Ok((account, prekeys))
    }
}

fn persist_opt_digest(w: &mut SecretBytes, d: Option<&[u8; PUBLISHED_DIGEST_LEN]>) {
    w.u8(u8::from(d.is_some()))
        .bytes(d.unwrap_or(&[0u8; PUBLISHED_DIGEST_LEN]));
}

fn read_opt_digest(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<Option<[u8; PUBLISHED_DIGEST_LEN]>, PersistError> {
    let present = read_flag(r, what)?;
    let d: [u8; PUBLISHED_DIGEST_LEN] = r.array(what)?;
    Ok(present.then_some(d))
}

/// Reads the offline part of a version 2 account (prekey store, previous Client Profiles,
/// what the prekey server confirmed) and checks it against the keys.
fn restore_offline(
    r: &mut Reader<'_>,
    long_term: &KeyPair,
    forging: &ForgingPublicKey,
    tag: InstanceTag,
) -> Result<(PrekeyStore, Vec<ClientProfile>, Published), PersistError> {
    let prekeys = PrekeyStore::import(r.data("prekey store")?)?;
    if prekeys.owner_tag() != tag {
        return Err(PersistError::Invalid("prekey store instance tag"));
    }
    let h = Ed448PublicKey(*long_term.public());
    if prekeys
        .shared_prekeys()
        .iter()
        .any(|s| s.profile().validate(tag, i64::MIN, &h).is_err())
    {
        return Err(PersistError::Invalid("prekey profile"));
    }
    let published = Published {
        client_profile: read_opt_digest(r, "published client profile")?,
        prekey_profile: read_opt_digest(r, "published prekey profile")?,
        last_status_query: read_opt_i64(r, "last status query")?,
    };
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
    Ok((prekeys, previous_profiles, published))
}

fn sign_profile(
    long_term: &KeyPair,
    forging: &ForgingPublicKey,
    tag: InstanceTag,
    expiration: i64,
) -> ClientProfile {
    ClientProfile::build_and_sign(tag, long_term, forging, PROFILE_VERSIONS, expiration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn generated_account_has_a_valid_profile_that_is_renewed() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut acct = Account::generate(&mut rng, Policy::default(), 1_000).unwrap();
        let p = acct.profile().clone();
        assert!(p.validate(acct.instance_tag(), 1_000).is_ok());
        assert_eq!(p.owner_tag(), acct.instance_tag());
        assert_eq!(
            p.expiration(),
            1_000 + Policy::default().profile_lifetime_secs
        );
        assert!(!acct.has_forging_secret());
        // Not yet within the margin: unchanged.
        assert!(!acct.refresh_profile(2_000));
        assert_eq!(acct.profile(), &p);
        // Within the margin: re-signed from `now`.
        let late = p.expiration() - 10;
        assert!(acct.refresh_profile(late));
        assert_eq!(
            acct.profile().expiration(),
            late + Policy::default().profile_lifetime_secs
        );
        assert!(acct.profile().validate(acct.instance_tag(), late).is_ok());
    }

    #[test]
    fn from_keys_checks_the_keys() {
        let mut rng = StdRng::seed_from_u64(8);
        let lt = KeyPair::generate(&mut rng);
        let forging = KeyPair::generate(&mut rng);
        let fpub = ForgingPublicKey(*forging.public());
        let other = KeyPair::generate(&mut rng);
        let p = Policy::default();
        assert!(
            Account::from_keys(lt.clone(), fpub, Some(forging), InstanceTag(0x100), p, 0)
                .unwrap()
                .has_forging_secret()
        );
        assert!(matches!(
            Account::from_keys(lt.clone(), fpub, Some(other), InstanceTag(0x100), p, 0),
            Err(ConversationError::InvalidKeys(_))
        ));
        assert!(matches!(
            Account::from_keys(lt.clone(), fpub, None, InstanceTag(0xff), p, 0),
            Err(ConversationError::InvalidKeys(_))
        ));
        let same = ForgingPublicKey(*lt.public());
        assert!(Account::from_keys(lt, same, None, InstanceTag(0x100), p, 0).is_err());
    }
}
