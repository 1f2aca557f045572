//! An in-memory prekey storage for [`crate::prekey::server`]: the reference for what a
//! server's storage must do (otrv4-prekey-server.md §"Publishing Prekey Values", §"Retrieving Prekey Ensembles").
//!
//! Values are kept per publisher identity and instance tag; a retrieval takes one Prekey
//! message per instance tag in the same `&mut` call that returns it (atomic).

use crate::instance_tag::InstanceTag;
use crate::prekey::server::StoreRequest;
use crate::profile::client::ClientProfile;
use crate::profile::prekey::PrekeyProfile;
use crate::wire::messages::PrekeyEnsemble;
use crate::wire::messages::PrekeyMessage;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

/// Default bound on stored Prekey messages per identity and instance tag: ten full
/// publications of 255 (more is a denial-of-service on the server's memory, not a need).
pub const DEFAULT_MAX_PREKEYS_PER_INSTANCE: usize = 2550;

/// The storage refused a request because it would exceed its bound; nothing was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("prekey storage full")]
pub struct StorageFull;

#[derive(Clone, Debug, Default)]
struct Instance {
    client_profile: Option<ClientProfile>,
    prekey_profile: Option<PrekeyProfile>,
    prekey_messages: VecDeque<PrekeyMessage>,
}

/// Client Profiles, Prekey Profiles and Prekey messages by identity and instance tag.
#[derive(Clone, Debug)]
pub struct MemoryStorage {
    users: BTreeMap<Vec<u8>, BTreeMap<InstanceTag, Instance>>,
    max_prekeys_per_instance: usize,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        MemoryStorage::new()
    }
}

impl MemoryStorage {
    /// An empty storage with [`DEFAULT_MAX_PREKEYS_PER_INSTANCE`].
    pub fn new() -> MemoryStorage {
        MemoryStorage {
            users: BTreeMap::new(),
            max_prekeys_per_instance: DEFAULT_MAX_PREKEYS_PER_INSTANCE,
        }
    }

    /// Sets the bound on stored Prekey messages per identity and instance tag.
    pub fn with_max_prekeys_per_instance(mut self, max: usize) -> MemoryStorage {
        self.max_prekeys_per_instance = max;
        self
    }

    /// Stores a verified publication: replaces the instance's Client and Prekey Profiles
    /// if given, and appends the Prekey messages whose ids are not stored yet ("Discard any
    /// invalid or duplicated values"). All or nothing: fails with [`StorageFull`] (storing
    /// nothing) if the bound would be exceeded. Returns how many Prekey messages were added.
    pub fn store(&mut self, req: &StoreRequest) -> Result<usize, StorageFull> {
        let existing = self
            .users
            .get(&req.publisher)
            .and_then(|u| u.get(&req.owner_tag));
        let mut fresh: Vec<&PrekeyMessage> = Vec::new();
        for m in &req.prekey_messages {
            let stored = existing.is_some_and(|i| i.prekey_messages.iter().any(|s| s.id == m.id));
            if !stored && !fresh.iter().any(|f| f.id == m.id) {
                fresh.push(m);
            }
        }
        let count = existing.map_or(0, |i| i.prekey_messages.len());
        if count.saturating_add(fresh.len()) > self.max_prekeys_per_instance {
            return Err(StorageFull);
        }
        let added = fresh.len();
        let fresh: Vec<PrekeyMessage> = fresh.into_iter().cloned().collect();
        let inst = self
            .users
            .entry(req.publisher.clone())
            .or_default()
            .entry(req.owner_tag)
            .or_default();
        if let Some(cp) = &req.client_profile {
            inst.client_profile = Some(cp.clone());
        }
        if let Some(pp) = &req.prekey_profile {
            inst.prekey_profile = Some(pp.clone());
        }
        inst.prekey_messages.extend(fresh);
        Ok(added)
    }

    /// The number of Prekey messages stored for `identity` and `tag` (§"Storage Status
    /// Message").
    pub fn stored_count(&self, identity: &[u8], tag: InstanceTag) -> u32 {
        let n = self
            .users
            .get(identity)
            .and_then(|u| u.get(&tag))
            .map_or(0, |i| i.prekey_messages.len());
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Takes one ensemble per instance tag of `identity` that has a Client Profile and a
    /// Prekey Profile not expired at `now` and at least one Prekey message; that Prekey
    /// message (the oldest) is removed, the profiles are kept (§"Retrieving Prekey
    /// Ensembles", steps 3 and 5).
    pub fn take_ensembles(&mut self, identity: &[u8], now: i64) -> Vec<PrekeyEnsemble> {
        let mut out = Vec::new();
        let Some(user) = self.users.get_mut(identity) else {
            return out;
        };
        for inst in user.values_mut() {
            let (Some(cp), Some(pp)) = (&inst.client_profile, &inst.prekey_profile) else {
                continue;
            };
            if cp.is_expired(now) || pp.is_expired(now) {
                continue;
            }
            if let Some(pm) = inst.prekey_messages.pop_front() {
                out.push(PrekeyEnsemble {
                    client_profile: cp.clone(),
                    prekey_profile: pp.clone(),
                    prekey_message: pm,
                });
            }
        }
        out
    }

    /// Drops profiles expired at `now` and instances and identities left empty.
    pub fn expire(&mut self, now: i64) {
        for user in self.users.values_mut() {
            for inst in user.values_mut() {
                if inst
                    .client_profile
                    .as_ref()
                    .is_some_and(|p| p.is_expired(now))
                {
                    inst.client_profile = None;
                }
                if inst
                    .prekey_profile
                    .as_ref()
                    .is_some_and(|p| p.is_expired(now))
                {
                    inst.prekey_profile = None;
                }
            }
            user.retain(|_, i| {
                i.client_profile.is_some()
                    || i.prekey_profile.is_some()
                    || !i.prekey_messages.is_empty()
            });
        }
        self.users.retain(|_, u| !u.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ed448::KeyPair;
    use crate::crypto::keys::{Ed448PublicKey, generate_forging_point};
    use crate::prekey::ensemble::PrekeyStore;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const TAG: InstanceTag = InstanceTag(0x0100_0001);
    const NOW: i64 = 1_700_000_000;

    fn request(rng: &mut StdRng, n: usize) -> StoreRequest {
        let lt = KeyPair::generate(rng);
        let f = generate_forging_point(rng);
        let cp = ClientProfile::build_and_sign(TAG, &lt, &f, b"4", NOW + 100);
        let mut store = PrekeyStore::new(TAG);
        let pp = store.new_prekey_profile(rng, &lt, NOW + 50);
        StoreRequest {
            publisher: b"alice".to_vec(),
            owner_tag: TAG,
            long_term_key: Ed448PublicKey(*lt.public()),
            client_profile: Some(cp),
            prekey_profile: Some(pp),
            prekey_messages: store.generate_prekey_messages(rng, n, NOW).unwrap(),
        }
    }

    #[test]
    fn store_dedups_is_atomic_and_takes_one_per_instance() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut s = MemoryStorage::new().with_max_prekeys_per_instance(4);
        let req = request(&mut rng, 3);
        assert_eq!(s.store(&req), Ok(3));
        // Same ids again: all duplicates, nothing added.
        assert_eq!(s.store(&req), Ok(0));
        // Two new plus one duplicate would exceed 4: nothing stored.
        let mut more = request(&mut rng, 2);
        more.prekey_messages.push(req.prekey_messages[0].clone());
        more.client_profile = None;
        assert_eq!(s.store(&more), Err(StorageFull));
        assert_eq!(s.stored_count(b"alice", TAG), 3);
        assert_eq!(s.stored_count(b"bob", TAG), 0);
        // One ensemble per call, oldest prekey first; profiles stay.
        let e = s.take_ensembles(b"alice", NOW);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].prekey_message, req.prekey_messages[0]);
        assert_eq!(s.stored_count(b"alice", TAG), 2);
        // Expired prekey profile: no ensembles, nothing taken.
        assert!(s.take_ensembles(b"alice", NOW + 50).is_empty());
        assert_eq!(s.stored_count(b"alice", TAG), 2);
        // Expiry drops the profiles but keeps the prekey messages.
        s.expire(NOW + 100);
        assert_eq!(s.stored_count(b"alice", TAG), 2);
        assert!(s.take_ensembles(b"alice", NOW).is_empty());
    }
}
