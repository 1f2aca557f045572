//! An in-memory [`Storage`] for tests and demos: same semantics as the SQLite store, no
//! durability. One mutex makes every operation atomic.

use super::{
    ClientProfileRecord, DeviceKey, GcReport, LONG_TERM_KEY_LEN, PrekeyProfileRecord, Storage,
    StorageError, StoreOutcome, StoreRequest, StoredEnsemble, validate_request, version_char,
    versions_intersect,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

/// A stored Prekey message.
#[derive(Clone)]
struct StoredMessage {
    id: u32,
    version: u8,
    bytes: Vec<u8>,
    stored_at: i64,
}

#[derive(Default)]
struct Inner {
    /// (jid, tag) → (long-term key, profile).
    client_profiles: BTreeMap<(String, u32), ([u8; LONG_TERM_KEY_LEN], ClientProfileRecord)>,
    /// (jid, tag, key) → profile.
    prekey_profiles: BTreeMap<(String, u32, [u8; LONG_TERM_KEY_LEN]), PrekeyProfileRecord>,
    /// (jid, tag, key) → messages, oldest first.
    prekey_messages: BTreeMap<(String, u32, [u8; LONG_TERM_KEY_LEN]), VecDeque<StoredMessage>>,
}

/// The in-memory store.
#[derive(Default)]
pub struct MemoryStorage {
    inner: Mutex<Inner>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StorageError> {
        self.inner
            .lock()
            .map_err(|_| StorageError::Backend("memory store mutex poisoned".into()))
    }
}

fn slot(d: &DeviceKey) -> (String, u32, [u8; LONG_TERM_KEY_LEN]) {
    (d.jid.clone(), d.instance_tag, d.long_term_key)
}

impl Storage for MemoryStorage {
    fn store(
        &self,
        request: &StoreRequest,
        max_per_device: u32,
        now: i64,
    ) -> Result<StoreOutcome, StorageError> {
        validate_request(request)?;
        let mut g = self.lock()?;
        let d = &request.device;
        let key = slot(d);
        // Decide everything before changing anything, so a rejection leaves no trace.
        let key_changes = request.client_profile.is_some()
            && g.client_profiles
                .get(&(d.jid.clone(), d.instance_tag))
                .is_some_and(|(k, _)| *k != d.long_term_key);
        let existing = g.prekey_messages.get(&key);
        let mut new_ids: Vec<u32> = Vec::new();
        for m in &request.prekey_messages {
            let dup = existing.is_some_and(|q| q.iter().any(|s| s.id == m.id));
            if !dup && !new_ids.contains(&m.id) {
                new_ids.push(m.id);
            }
        }
        let stored_now = existing.map_or(0, VecDeque::len) as u64;
        let would_hold = stored_now + new_ids.len() as u64;
        if would_hold > u64::from(max_per_device) && !new_ids.is_empty() {
            return Err(StorageError::DeviceFull {
                would_hold,
                limit: max_per_device,
            });
        }
        if key_changes {
            let (jid, tag) = (d.jid.clone(), d.instance_tag);
            g.prekey_profiles
                .retain(|(j, t, k), _| !(*j == jid && *t == tag && *k != d.long_term_key));
            g.prekey_messages
                .retain(|(j, t, k), _| !(*j == jid && *t == tag && *k != d.long_term_key));
        }
        if let Some(cp) = &request.client_profile {
            g.client_profiles.insert(
                (d.jid.clone(), d.instance_tag),
                (d.long_term_key, cp.clone()),
            );
        }
        if let Some(pp) = &request.prekey_profile {
            g.prekey_profiles.insert(key.clone(), pp.clone());
        }
        let q = g.prekey_messages.entry(key).or_default();
        let mut added = 0u32;
        for m in &request.prekey_messages {
            if new_ids.contains(&m.id) && !q.iter().any(|s| s.id == m.id) {
                q.push_back(StoredMessage {
                    id: m.id,
                    version: m.version,
                    bytes: m.bytes.clone(),
                    stored_at: now,
                });
                added = added.saturating_add(1);
            }
        }
        let stored = u32::try_from(q.len()).unwrap_or(u32::MAX);
        Ok(StoreOutcome { added, stored })
    }

    fn count(&self, device: &DeviceKey) -> Result<u32, StorageError> {
        let g = self.lock()?;
        Ok(g.prekey_messages
            .get(&slot(device))
            .map_or(0, |q| u32::try_from(q.len()).unwrap_or(u32::MAX)))
    }

    fn take_ensembles(
        &self,
        jid: &str,
        versions: &[u8],
        now: i64,
    ) -> Result<Vec<StoredEnsemble>, StorageError> {
        let mut g = self.lock()?;
        let candidates: Vec<(u32, [u8; LONG_TERM_KEY_LEN], Vec<u8>)> = g
            .client_profiles
            .iter()
            .filter(|((j, _), (_, cp))| {
                j == jid && cp.expires > now && versions_intersect(versions, &cp.versions)
            })
            .map(|((_, tag), (k, cp))| (*tag, *k, cp.bytes.clone()))
            .collect();
        let mut out = Vec::new();
        for (tag, k, cp) in candidates {
            let key = (jid.to_owned(), tag, k);
            let Some(pp) = g.prekey_profiles.get(&key).filter(|p| p.expires > now) else {
                continue;
            };
            let pp = pp.bytes.clone();
            let Some(q) = g.prekey_messages.get_mut(&key) else {
                continue;
            };
            let Some(pos) = q
                .iter()
                .position(|m| versions.contains(&version_char(m.version)))
            else {
                continue;
            };
            if let Some(m) = q.remove(pos) {
                out.push(StoredEnsemble {
                    instance_tag: tag,
                    client_profile: cp,
                    prekey_profile: pp,
                    prekey_message: m.bytes,
                    prekey_message_id: m.id,
                });
            }
        }
        Ok(out)
    }

    fn stats(&self) -> Result<super::StoreStats, StorageError> {
        let g = self.lock()?;
        Ok(super::StoreStats {
            client_profiles: g.client_profiles.len() as u64,
            prekey_profiles: g.prekey_profiles.len() as u64,
            prekey_messages: g.prekey_messages.values().map(|v| v.len() as u64).sum(),
        })
    }

    fn gc(&self, now: i64, orphan_before: i64) -> Result<GcReport, StorageError> {
        let mut g = self.lock()?;
        let mut report = GcReport::default();
        let before = g.client_profiles.len();
        g.client_profiles.retain(|_, (_, cp)| cp.expires > now);
        report.client_profiles = (before - g.client_profiles.len()) as u64;
        let before = g.prekey_profiles.len();
        g.prekey_profiles.retain(|_, pp| pp.expires > now);
        report.prekey_profiles = (before - g.prekey_profiles.len()) as u64;
        let Inner {
            client_profiles,
            prekey_messages,
            ..
        } = &mut *g;
        for ((j, t, k), q) in prekey_messages.iter_mut() {
            let has_profile = client_profiles
                .get(&(j.clone(), *t))
                .is_some_and(|(pk, _)| pk == k);
            if !has_profile {
                let before = q.len();
                q.retain(|m| m.stored_at >= orphan_before);
                report.orphaned_prekey_messages += (before - q.len()) as u64;
            }
        }
        prekey_messages.retain(|_, q| !q.is_empty());
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance() {
        crate::storage::conformance::run_all(&|| Box::new(MemoryStorage::new()));
    }
}
