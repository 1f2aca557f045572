//! The PostgreSQL store, for several server instances sharing one database
//! (`storage = "postgres://…"`): same semantics as the SQLite store, passing the same
//! conformance suite.
//!
//! At-most-once handout across instances: a retrieval deletes the oldest message of each
//! device with `DELETE … WHERE seq = (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`, so two
//! concurrent retrievals never take the same row (the second skips the locked one), and a
//! result is released only after the commit. Publications lock their device's Client Profile
//! row (`SELECT … FOR UPDATE`), serialising publications of one device across instances.
//! The schema is created and migrated under an advisory lock and versioned in
//! `schema_version`.

use super::{
    DeviceKey, GcReport, LONG_TERM_KEY_LEN, Storage, StorageError, StoreOutcome, StoreRequest,
    StoreStats, StoredEnsemble, TakeRequest, validate_request, versions_intersect,
};
use postgres::{Client, NoTls, Transaction};
use std::sync::Mutex;

/// The schema version this code writes and reads.
pub const SCHEMA_VERSION: i32 = 1;
/// Most idle connections kept.
const POOL_IDLE_MAX: usize = 8;
/// Key of the advisory lock taken while creating or migrating the schema.
const MIGRATION_LOCK: i64 = 0x6f74_7234_7072_656b; // "otr4prek"

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS client_profiles (
    jid           TEXT    NOT NULL,
    instance_tag  BIGINT  NOT NULL,
    long_term_key BYTEA   NOT NULL,
    profile       BYTEA   NOT NULL,
    versions      BYTEA   NOT NULL,
    expires       BIGINT  NOT NULL,
    stored_at     BIGINT  NOT NULL,
    PRIMARY KEY (jid, instance_tag)
);
CREATE TABLE IF NOT EXISTS prekey_profiles (
    jid           TEXT    NOT NULL,
    instance_tag  BIGINT  NOT NULL,
    long_term_key BYTEA   NOT NULL,
    profile       BYTEA   NOT NULL,
    expires       BIGINT  NOT NULL,
    stored_at     BIGINT  NOT NULL,
    PRIMARY KEY (jid, instance_tag, long_term_key)
);
CREATE TABLE IF NOT EXISTS prekey_messages (
    seq           BIGSERIAL PRIMARY KEY,
    jid           TEXT    NOT NULL,
    instance_tag  BIGINT  NOT NULL,
    long_term_key BYTEA   NOT NULL,
    prekey_id     BIGINT  NOT NULL,
    version       SMALLINT NOT NULL,
    message       BYTEA   NOT NULL,
    stored_at     BIGINT  NOT NULL,
    UNIQUE (jid, instance_tag, long_term_key, prekey_id)
);
CREATE INDEX IF NOT EXISTS prekey_messages_by_device
    ON prekey_messages (jid, instance_tag, long_term_key, seq);
";

/// The PostgreSQL store.
pub struct PgStorage {
    config: postgres::Config,
    /// The URL without its password, for messages.
    display: String,
    idle: Mutex<Vec<Client>>,
}

impl std::fmt::Debug for PgStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStorage")
            .field("database", &self.display)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStorage {
    /// A `postgres::Client` closes its connection on drop by blocking on its own runtime,
    /// which panics on a tokio worker thread (the server drops its storage at the end of
    /// its async main): close the pooled connections on a plain thread instead.
    fn drop(&mut self) {
        let clients = match self.idle.get_mut() {
            Ok(v) => std::mem::take(v),
            Err(e) => std::mem::take(e.into_inner()),
        };
        if clients.is_empty() {
            return;
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::Builder::new()
                .name("pg-close".into())
                .spawn(move || drop(clients));
        } else {
            drop(clients);
        }
    }
}

/// `url` without the password (`postgres://user:secret@host/db` → `postgres://user@host/db`).
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => {
            let creds = url.get(s + 3..at).unwrap_or_default();
            let user = creds.split(':').next().unwrap_or_default();
            format!(
                "{}{user}{}",
                url.get(..s + 3).unwrap_or_default(),
                url.get(at..).unwrap_or_default()
            )
        }
        _ => url.to_owned(),
    }
}

fn pg(e: postgres::Error) -> StorageError {
    StorageError::Backend(e.to_string())
}

impl PgStorage {
    /// Connects to `url` (a libpq-style URL), creates or migrates the schema.
    pub fn open(url: &str) -> Result<PgStorage, StorageError> {
        Self::open_in_schema(url, None)
    }

    /// Like [`PgStorage::open`], with every table in the PostgreSQL schema `schema`
    /// (created if missing; tests use one schema per store).
    pub fn open_in_schema(url: &str, schema: Option<&str>) -> Result<PgStorage, StorageError> {
        let display = redact(url);
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e: postgres::Error| StorageError::Backend(format!("{display}: {e}")))?;
        if let Some(s) = schema {
            if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(StorageError::Invalid("schema name must be [A-Za-z0-9_]"));
            }
            let mut c = config
                .connect(NoTls)
                .map_err(|e| StorageError::Backend(format!("{display}: {e}")))?;
            c.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                .map_err(|e| StorageError::Backend(format!("{display}: {e}")))?;
            config.options(&format!("-c search_path={s}"));
        }
        let s = PgStorage {
            config,
            display,
            idle: Mutex::new(Vec::new()),
        };
        s.with_client(migrate)?;
        Ok(s)
    }

    fn take_client(&self) -> Result<Client, StorageError> {
        let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
        match pooled {
            Some(c) if !c.is_closed() => Ok(c),
            _ => self.config.connect(NoTls).map_err(pg),
        }
    }

    fn with_client<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut c = self.take_client().map_err(|e| self.name_database(e))?;
        let r = f(&mut c);
        if !c.is_closed()
            && let Ok(mut v) = self.idle.lock()
            && v.len() < POOL_IDLE_MAX
        {
            v.push(c);
        }
        r.map_err(|e| self.name_database(e))
    }

    fn name_database(&self, e: StorageError) -> StorageError {
        match e {
            StorageError::Backend(m) => StorageError::Backend(format!("{}: {m}", self.display)),
            other => other,
        }
    }
}

/// Creates the schema or checks its version, under an advisory lock (several instances may
/// start at once).
fn migrate(c: &mut Client) -> Result<(), StorageError> {
    let mut tx = c.transaction().map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(pg)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(pg)?;
    let v: Option<i32> = tx
        .query_opt("SELECT max(version) FROM schema_version", &[])
        .map_err(pg)?
        .and_then(|r| r.get(0));
    match v {
        None => {
            tx.batch_execute(SCHEMA_V1).map_err(pg)?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )
            .map_err(pg)?;
        }
        Some(SCHEMA_VERSION) => {}
        Some(v) => {
            return Err(StorageError::Backend(format!(
                "database schema version {v}, this server knows {SCHEMA_VERSION}: upgrade the server (or restore a backup made for this version)"
            )));
        }
    }
    tx.commit().map_err(pg)
}

fn key_bytes(d: &DeviceKey) -> &[u8] {
    &d.long_term_key[..]
}

fn count_device(tx: &mut Transaction<'_>, d: &DeviceKey) -> Result<u64, StorageError> {
    let n: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM prekey_messages
             WHERE jid = $1 AND instance_tag = $2 AND long_term_key = $3",
            &[&d.jid, &i64::from(d.instance_tag), &key_bytes(d)],
        )
        .map_err(pg)?
        .get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Takes one Prekey message per eligible instance tag of `jid` inside `tx`.
fn take_in(
    tx: &mut Transaction<'_>,
    jid: &str,
    versions: &[u8],
    now: i64,
) -> Result<Vec<StoredEnsemble>, StorageError> {
    let devices = tx
        .query(
            "SELECT c.instance_tag, c.long_term_key, c.profile, c.versions, p.profile
             FROM client_profiles c JOIN prekey_profiles p
               ON p.jid = c.jid AND p.instance_tag = c.instance_tag
              AND p.long_term_key = c.long_term_key
             WHERE c.jid = $1 AND c.expires > $2 AND p.expires > $2
             ORDER BY c.instance_tag",
            &[&jid, &now],
        )
        .map_err(pg)?;
    let wanted: Vec<i16> = versions
        .iter()
        .filter_map(|v| v.checked_sub(b'0'))
        .map(i16::from)
        .collect();
    let mut out = Vec::new();
    for r in devices {
        let cp_versions: Vec<u8> = r.get(3);
        if !versions_intersect(versions, &cp_versions) {
            continue;
        }
        let tag: i64 = r.get(0);
        let key: Vec<u8> = r.get(1);
        if key.len() != LONG_TERM_KEY_LEN {
            return Err(StorageError::Backend(
                "stored long-term key has the wrong length".into(),
            ));
        }
        // The oldest message of a requested version that no concurrent transaction holds.
        let taken = tx
            .query_opt(
                "DELETE FROM prekey_messages WHERE seq = (
                   SELECT seq FROM prekey_messages
                   WHERE jid = $1 AND instance_tag = $2 AND long_term_key = $3
                     AND version = ANY($4)
                   ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING prekey_id, message",
                &[&jid, &tag, &key, &wanted],
            )
            .map_err(pg)?;
        let Some(m) = taken else { continue };
        let id: i64 = m.get(0);
        out.push(StoredEnsemble {
            instance_tag: u32::try_from(tag).unwrap_or_default(),
            client_profile: r.get(2),
            prekey_profile: r.get(4),
            prekey_message: m.get(1),
            prekey_message_id: u32::try_from(id).unwrap_or_default(),
        });
    }
    Ok(out)
}

impl Storage for PgStorage {
    fn store(
        &self,
        request: &StoreRequest,
        max_per_device: u32,
        now: i64,
    ) -> Result<StoreOutcome, StorageError> {
        validate_request(request)?;
        let d = &request.device;
        let tag = i64::from(d.instance_tag);
        self.with_client(|c| {
            let mut tx = c.transaction().map_err(pg)?;
            // Serialise publications of this device across instances: a transaction-level
            // advisory lock on the device (rows may not exist yet).
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1::text || '/' || ($2::bigint)::text, 0))",
                &[&d.jid, &tag],
            )
            .map_err(pg)?;
            let mut new_ids: Vec<u32> = Vec::new();
            for m in &request.prekey_messages {
                if new_ids.contains(&m.id) {
                    continue;
                }
                let dup = tx
                    .query_opt(
                        "SELECT 1 FROM prekey_messages WHERE jid = $1 AND instance_tag = $2
                         AND long_term_key = $3 AND prekey_id = $4",
                        &[&d.jid, &tag, &key_bytes(d), &i64::from(m.id)],
                    )
                    .map_err(pg)?
                    .is_some();
                if !dup {
                    new_ids.push(m.id);
                }
            }
            let stored_now = count_device(&mut tx, d)?;
            let would_hold = stored_now + new_ids.len() as u64;
            if !new_ids.is_empty() && would_hold > u64::from(max_per_device) {
                return Err(StorageError::DeviceFull {
                    would_hold,
                    limit: max_per_device,
                });
            }
            if let Some(cp) = &request.client_profile {
                let old_key: Option<Vec<u8>> = tx
                    .query_opt(
                        "SELECT long_term_key FROM client_profiles
                         WHERE jid = $1 AND instance_tag = $2",
                        &[&d.jid, &tag],
                    )
                    .map_err(pg)?
                    .map(|r| r.get(0));
                if old_key.is_some_and(|k| k != key_bytes(d)) {
                    for table in ["prekey_profiles", "prekey_messages"] {
                        tx.execute(
                            &format!(
                                "DELETE FROM {table} WHERE jid = $1 AND instance_tag = $2
                                 AND long_term_key <> $3"
                            ),
                            &[&d.jid, &tag, &key_bytes(d)],
                        )
                        .map_err(pg)?;
                    }
                }
                tx.execute(
                    "INSERT INTO client_profiles
                     (jid, instance_tag, long_term_key, profile, versions, expires, stored_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (jid, instance_tag) DO UPDATE SET
                       long_term_key = EXCLUDED.long_term_key, profile = EXCLUDED.profile,
                       versions = EXCLUDED.versions, expires = EXCLUDED.expires,
                       stored_at = EXCLUDED.stored_at",
                    &[
                        &d.jid,
                        &tag,
                        &key_bytes(d),
                        &cp.bytes,
                        &cp.versions,
                        &cp.expires,
                        &now,
                    ],
                )
                .map_err(pg)?;
            }
            if let Some(pp) = &request.prekey_profile {
                tx.execute(
                    "INSERT INTO prekey_profiles
                     (jid, instance_tag, long_term_key, profile, expires, stored_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (jid, instance_tag, long_term_key) DO UPDATE SET
                       profile = EXCLUDED.profile, expires = EXCLUDED.expires,
                       stored_at = EXCLUDED.stored_at",
                    &[&d.jid, &tag, &key_bytes(d), &pp.bytes, &pp.expires, &now],
                )
                .map_err(pg)?;
            }
            let mut added = 0u32;
            for m in &request.prekey_messages {
                let n = tx
                    .execute(
                        "INSERT INTO prekey_messages
                         (jid, instance_tag, long_term_key, prekey_id, version, message, stored_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)
                         ON CONFLICT (jid, instance_tag, long_term_key, prekey_id) DO NOTHING",
                        &[
                            &d.jid,
                            &tag,
                            &key_bytes(d),
                            &i64::from(m.id),
                            &i16::from(m.version),
                            &m.bytes,
                            &now,
                        ],
                    )
                    .map_err(pg)?;
                added = added.saturating_add(u32::try_from(n).unwrap_or(0));
            }
            let stored = count_device(&mut tx, d)?;
            tx.commit().map_err(pg)?;
            Ok(StoreOutcome {
                added,
                stored: u32::try_from(stored).unwrap_or(u32::MAX),
            })
        })
    }

    fn count(&self, device: &DeviceKey) -> Result<u32, StorageError> {
        self.with_client(|c| {
            let mut tx = c.transaction().map_err(pg)?;
            let n = count_device(&mut tx, device)?;
            tx.commit().map_err(pg)?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    fn take_ensembles(
        &self,
        jid: &str,
        versions: &[u8],
        now: i64,
    ) -> Result<Vec<StoredEnsemble>, StorageError> {
        let req = [TakeRequest {
            jid: jid.to_owned(),
            versions: versions.to_vec(),
        }];
        Ok(self
            .take_ensembles_batch(&req, now)?
            .into_iter()
            .next()
            .unwrap_or_default())
    }

    fn take_ensembles_batch(
        &self,
        requests: &[TakeRequest],
        now: i64,
    ) -> Result<Vec<Vec<StoredEnsemble>>, StorageError> {
        self.with_client(|c| {
            let mut tx = c.transaction().map_err(pg)?;
            let mut all = Vec::with_capacity(requests.len());
            for r in requests {
                all.push(take_in(&mut tx, &r.jid, &r.versions, now)?);
            }
            // Released only after the commit (synchronous_commit as configured on the server;
            // keep it on).
            tx.commit().map_err(pg)?;
            Ok(all)
        })
    }

    fn gc(&self, now: i64, orphan_before: i64) -> Result<GcReport, StorageError> {
        self.with_client(|c| {
            let mut tx = c.transaction().map_err(pg)?;
            let client_profiles = tx
                .execute("DELETE FROM client_profiles WHERE expires <= $1", &[&now])
                .map_err(pg)?;
            let prekey_profiles = tx
                .execute("DELETE FROM prekey_profiles WHERE expires <= $1", &[&now])
                .map_err(pg)?;
            let orphaned_prekey_messages = tx
                .execute(
                    "DELETE FROM prekey_messages AS m WHERE m.stored_at < $1 AND NOT EXISTS (
                       SELECT 1 FROM client_profiles c WHERE c.jid = m.jid
                       AND c.instance_tag = m.instance_tag AND c.long_term_key = m.long_term_key)",
                    &[&orphan_before],
                )
                .map_err(pg)?;
            tx.commit().map_err(pg)?;
            Ok(GcReport {
                client_profiles,
                prekey_profiles,
                orphaned_prekey_messages,
            })
        })
    }

    fn stats(&self) -> Result<StoreStats, StorageError> {
        self.with_client(|c| {
            let r = c
                .query_one(
                    "SELECT (SELECT COUNT(*) FROM client_profiles),
                            (SELECT COUNT(*) FROM prekey_profiles),
                            (SELECT COUNT(*) FROM prekey_messages)",
                    &[],
                )
                .map_err(pg)?;
            let n = |i: usize| u64::try_from(r.get::<_, i64>(i)).unwrap_or(0);
            Ok(StoreStats {
                client_profiles: n(0),
                prekey_profiles: n(1),
                prekey_messages: n(2),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance;

    /// The database URL of the PostgreSQL tests (`OTR4_PG_URL`). The tests are
    /// `#[ignore = "needs PostgreSQL …"]`; run with `--ignored`, they fail without it.
    fn pg_url() -> String {
        match std::env::var("OTR4_PG_URL") {
            Ok(u) if !u.is_empty() => u,
            _ => panic!("needs PostgreSQL: set OTR4_PG_URL (.ci/postgres.sh starts one)"),
        }
    }

    fn fresh(url: &str) -> PgStorage {
        let schema = format!("t{:016x}", rand::random::<u64>());
        PgStorage::open_in_schema(url, Some(&schema)).unwrap()
    }

    #[test]
    fn redacts_password() {
        assert_eq!(
            redact("postgres://prekey:s3cret@db.internal:5432/prekeys"),
            "postgres://prekey@db.internal:5432/prekeys"
        );
        assert_eq!(redact("postgres://localhost/x"), "postgres://localhost/x");
    }

    #[test]
    #[ignore = "needs PostgreSQL (OTR4_PG_URL): cargo test -p prekey-server --lib storage::pg -- --ignored"]
    fn conformance_postgres() {
        let url = pg_url();
        conformance::run_all(&|| Box::new(fresh(&url)));
    }

    #[test]
    #[ignore = "needs PostgreSQL (OTR4_PG_URL): cargo test -p prekey-server --lib storage::pg -- --ignored"]
    fn schema_version_recorded_and_newer_refused() {
        let url = pg_url();
        let schema = format!("t{:016x}", rand::random::<u64>());
        PgStorage::open_in_schema(&url, Some(&schema)).unwrap();
        // Opening again is fine (same version)…
        let s = PgStorage::open_in_schema(&url, Some(&schema)).unwrap();
        s.with_client(|c| {
            c.execute("UPDATE schema_version SET version = 99", &[])
                .map_err(pg)
        })
        .unwrap();
        // …a newer schema is refused with what to do.
        let err = PgStorage::open_in_schema(&url, Some(&schema)).unwrap_err();
        assert!(err.to_string().contains("schema version 99"), "{err}");
    }

    /// 50 concurrent retrievals through 50 stores (50 connections) against 20 messages:
    /// exactly 20 distinct handed out.
    #[test]
    #[ignore = "needs PostgreSQL (OTR4_PG_URL): cargo test -p prekey-server --lib storage::pg -- --ignored"]
    fn fifty_concurrent_retrievals_twenty_prekeys() {
        let url = pg_url();
        let schema = format!("t{:016x}", rand::random::<u64>());
        let d = conformance::device("bob@example.org", 0x1234, 7);
        PgStorage::open_in_schema(&url, Some(&schema))
            .unwrap()
            .store(&conformance::full_request(&d, 0..20, 10_000), 100, 1)
            .unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(50));
        let handles: Vec<_> = (0..50)
            .map(|_| {
                let (url, schema, barrier) = (url.clone(), schema.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let s = PgStorage::open_in_schema(&url, Some(&schema)).unwrap();
                    barrier.wait();
                    s.take_ensembles("bob@example.org", b"4", 5).unwrap()
                })
            })
            .collect();
        let mut got: Vec<u32> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .map(|e| e.prekey_message_id)
            .collect();
        got.sort_unstable();
        assert_eq!(got, (0..20).collect::<Vec<u32>>(), "each exactly once");
    }
}
