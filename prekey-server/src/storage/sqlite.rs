//! The default durable store: an embedded SQLite database in WAL mode, every write in a
//! `BEGIN IMMEDIATE` transaction, so a commit is the point a publication is acknowledged.
//!
//! Each [`SqliteStorage`] keeps a small pool of connections; several `SqliteStorage` values
//! may open the same file: SQLite's write lock serialises writers, `busy_timeout` makes them
//! wait instead of failing. The server opens its database with
//! [`SqliteStorage::open_exclusive`], which holds an advisory lock (`<database>.lock`,
//! `flock`) so that a second server process on the same database stops with a clear error.
//!
//! Files are private: the database is created with mode 0600 (SQLite gives its `-wal` and
//! `-shm` files the database's mode), a directory the server creates has mode 0700, and
//! an existing database readable by others is tightened to 0600.

use super::{
    DeviceKey, GcReport, LONG_TERM_KEY_LEN, Storage, StorageError, StoreOutcome, StoreRequest,
    StoreStats, StoredEnsemble, TakeRequest, validate_request, versions_intersect,
};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// How hard a commit is pushed to disk (SQLite `PRAGMA synchronous`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous=FULL`: the WAL is fsynced at every commit; an acknowledged publication
    /// or retrieval survives a power loss. The default.
    Full,
    /// `synchronous=NORMAL`: the WAL is fsynced at checkpoints only; commits survive a crash
    /// of the server process but the last ones may be lost on power loss or OS crash.
    Normal,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// The schema version (`PRAGMA user_version`) this code writes and reads; a database with
/// a newer version is refused.
pub const SCHEMA_VERSION: i64 = 1;

/// Most idle connections kept in the pool.
const POOL_IDLE_MAX: usize = 8;
/// How long a writer waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS client_profiles (
    jid           TEXT    NOT NULL,
    instance_tag  INTEGER NOT NULL,
    long_term_key BLOB    NOT NULL,
    profile       BLOB    NOT NULL,
    versions      BLOB    NOT NULL,
    expires       INTEGER NOT NULL,
    stored_at     INTEGER NOT NULL,
    PRIMARY KEY (jid, instance_tag)
);
CREATE TABLE IF NOT EXISTS prekey_profiles (
    jid           TEXT    NOT NULL,
    instance_tag  INTEGER NOT NULL,
    long_term_key BLOB    NOT NULL,
    profile       BLOB    NOT NULL,
    expires       INTEGER NOT NULL,
    stored_at     INTEGER NOT NULL,
    PRIMARY KEY (jid, instance_tag, long_term_key)
);
CREATE TABLE IF NOT EXISTS prekey_messages (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    jid           TEXT    NOT NULL,
    instance_tag  INTEGER NOT NULL,
    long_term_key BLOB    NOT NULL,
    prekey_id     INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    message       BLOB    NOT NULL,
    stored_at     INTEGER NOT NULL,
    UNIQUE (jid, instance_tag, long_term_key, prekey_id)
);
CREATE INDEX IF NOT EXISTS prekey_messages_by_device
    ON prekey_messages (jid, instance_tag, long_term_key, seq);
";

/// The SQLite store.
pub struct SqliteStorage {
    path: PathBuf,
    durability: Durability,
    idle: Mutex<Vec<Connection>>,
    /// The advisory lock file, held open (and locked) for the store's life.
    _lock: Option<File>,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("path", &self.path)
            .field("durability", &self.durability)
            .finish()
    }
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path`, switches it to WAL mode and
    /// creates the schema.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Self, StorageError> {
        Self::open_with(path.as_ref(), durability, None)
    }

    /// Like [`SqliteStorage::open`], first taking an exclusive advisory lock on
    /// `<path>.lock` (released when the store is dropped or the process exits, also on
    /// `kill -9`); fails with [`StorageError::Locked`] if another process holds it.
    pub fn open_exclusive(
        path: impl AsRef<Path>,
        durability: Durability,
    ) -> Result<Self, StorageError> {
        let path = path.as_ref();
        prepare_files(path)?;
        let lock = lock_database(path)?;
        Self::open_with(path, durability, Some(lock))
    }

    fn open_with(
        path: &Path,
        durability: Durability,
        lock: Option<File>,
    ) -> Result<Self, StorageError> {
        prepare_files(path)?;
        let s = SqliteStorage {
            path: path.to_path_buf(),
            durability,
            idle: Mutex::new(Vec::new()),
            _lock: lock,
        };
        let conn = s.connect().map_err(|e| s.name_path(e))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| s.name_path(e.into()))?;
        if version > SCHEMA_VERSION {
            return Err(StorageError::Backend(format!(
                "{}: database schema version {version}, this server knows {SCHEMA_VERSION}: upgrade the server (or restore a backup made for this version)",
                path.display()
            )));
        }
        conn.execute_batch(SCHEMA)
            .map_err(|e| s.name_path(e.into()))?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|e| s.name_path(e.into()))?;
        s.put_back(conn);
        Ok(s)
    }

    /// Puts the database path into a backend error's message.
    fn name_path(&self, e: StorageError) -> StorageError {
        match e {
            StorageError::Backend(m) => {
                StorageError::Backend(format!("{}: {m}", self.path.display()))
            }
            other => other,
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connect(&self) -> Result<Connection, StorageError> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError::Backend(format!(
                "could not switch {} to WAL (journal_mode={mode})",
                self.path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", self.durability.pragma())?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Query planner stability: with the bundled SQLite's STAT4, binding a new value to
        // some parameters marks a cached statement expired, so every retrieval re-parsed and
        // re-planned its statements (seen in `perf`). Our plans never depend on the values.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        Ok(conn)
    }

    fn take_conn(&self) -> Result<Connection, StorageError> {
        let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
        match pooled {
            Some(c) => Ok(c),
            None => self.connect(),
        }
    }

    fn put_back(&self, conn: Connection) {
        if let Ok(mut v) = self.idle.lock()
            && v.len() < POOL_IDLE_MAX
        {
            v.push(conn);
        }
    }

    /// Runs `f` on a pooled connection.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut conn = self.take_conn().map_err(|e| self.name_path(e))?;
        let r = f(&mut conn);
        // A connection whose transaction failed half-way is rolled back by the Transaction
        // drop; it is safe to reuse.
        self.put_back(conn);
        r.map_err(|e| self.name_path(e))
    }
}

/// Mode of the files the store creates (and of an existing database, tightened to it).
const FILE_MODE: u32 = 0o600;
/// Mode of a directory the store creates.
const DIR_MODE: u32 = 0o700;

fn io_error(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Creates the database's directory (0700) if missing, and the database file (0600) if
/// missing, before SQLite opens it: SQLite creates `-wal` and `-shm` with the database
/// file's mode, so all three stay private whatever the umask. An existing database, WAL or
/// shared-memory file accessible by group or others is tightened to 0600.
fn prepare_files(path: &Path) -> Result<(), StorageError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|e| io_error(dir, e))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        match std::fs::metadata(&p) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(FILE_MODE))
                    .map_err(|e| io_error(&p, e))?;
                tracing::warn!(path = %p.display(), "was accessible by group or others; set to mode 0600");
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&p, e)),
        }
    }
    Ok(())
}

/// Takes the exclusive, non-blocking advisory lock on `<path>.lock` (mode 0600).
fn lock_database(path: &Path) -> Result<File, StorageError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(&lock_path)
        .map_err(|e| io_error(&lock_path, e))?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(f),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(StorageError::Locked {
            path: path.display().to_string(),
            lock: lock_path.display().to_string(),
        }),
        Err(e) => Err(io_error(&lock_path, e.into())),
    }
}

fn count_device(conn: &Connection, d: &DeviceKey) -> Result<u64, StorageError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM prekey_messages
             WHERE jid = ?1 AND instance_tag = ?2 AND long_term_key = ?3",
        )?
        .query_row(params![d.jid, d.instance_tag, &d.long_term_key[..]], |r| {
            r.get(0)
        })?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Column `i` of `r` as a borrowed BLOB.
fn blob<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r [u8], StorageError> {
    r.get_ref(i)?
        .as_blob()
        .map_err(|e| StorageError::Backend(format!("column {i}: {e}")))
}

/// The requested versions string as a bit set of version numbers (`b"4"` → `1 << 4`), for
/// the SQL filter `(?mask >> version) & 1`, matching `version_char` for versions 0–62.
fn version_mask(versions: &[u8]) -> i64 {
    versions
        .iter()
        .filter_map(|v| v.checked_sub(b'0').filter(|d| *d < 63))
        .fold(0i64, |m, d| m | (1i64 << d))
}

/// Takes one Prekey message per eligible instance tag of `jid` inside `tx`: one query for
/// the devices with unexpired profiles, then per device one `DELETE … RETURNING` that removes
/// and returns its oldest Prekey message of a requested version.
fn take_in(
    tx: &rusqlite::Transaction<'_>,
    jid: &str,
    versions: &[u8],
    now: i64,
) -> Result<Vec<StoredEnsemble>, StorageError> {
    let mut out = Vec::new();
    let mut devices = tx.prepare_cached(
        "SELECT c.instance_tag, c.long_term_key, c.profile, c.versions, p.profile
         FROM client_profiles c JOIN prekey_profiles p
           ON p.jid = c.jid AND p.instance_tag = c.instance_tag
          AND p.long_term_key = c.long_term_key
         WHERE c.jid = ?1 AND c.expires > ?2 AND p.expires > ?2
         ORDER BY c.instance_tag",
    )?;
    let mut rows = devices.query(params![jid, now])?;
    // The oldest (lowest `seq`) message of the device whose version was requested. Under
    // the IMMEDIATE transaction's write lock, so no other retrieval can take it too.
    let mut take = tx.prepare_cached(
        "DELETE FROM prekey_messages WHERE seq = (
           SELECT seq FROM prekey_messages
           WHERE jid = ?1 AND instance_tag = ?2 AND long_term_key = ?3
             AND (?4 >> version) & 1 = 1
           ORDER BY seq LIMIT 1)
         RETURNING prekey_id, message",
    )?;
    let mask = version_mask(versions);
    while let Some(r) = rows.next()? {
        let cp_versions = blob(r, 3)?;
        if !versions_intersect(versions, cp_versions) {
            continue;
        }
        let tag: u32 = r.get(0)?;
        let key = blob(r, 1)?;
        if key.len() != LONG_TERM_KEY_LEN {
            return Err(StorageError::Backend(
                "stored long-term key has the wrong length".into(),
            ));
        }
        let found = take
            .query_row(params![jid, tag, key, mask], |m| {
                Ok((m.get::<_, u32>(0)?, m.get::<_, Vec<u8>>(1)?))
            })
            .optional()?;
        let Some((id, message)) = found else {
            continue;
        };
        out.push(StoredEnsemble {
            instance_tag: tag,
            client_profile: r.get(2)?,
            prekey_profile: r.get(4)?,
            prekey_message: message,
            prekey_message_id: id,
        });
    }
    Ok(out)
}

impl Storage for SqliteStorage {
    fn store(
        &self,
        request: &StoreRequest,
        max_per_device: u32,
        now: i64,
    ) -> Result<StoreOutcome, StorageError> {
        validate_request(request)?;
        let d = &request.device;
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Which of the offered ids are new (not stored, not repeated in the request).
            let mut new_ids: Vec<u32> = Vec::new();
            {
                let mut exists = tx.prepare_cached(
                    "SELECT 1 FROM prekey_messages WHERE jid = ?1 AND instance_tag = ?2
                     AND long_term_key = ?3 AND prekey_id = ?4",
                )?;
                for m in &request.prekey_messages {
                    if new_ids.contains(&m.id) {
                        continue;
                    }
                    let dup = exists
                        .query_row(
                            params![d.jid, d.instance_tag, &d.long_term_key[..], m.id],
                            |_| Ok(()),
                        )
                        .optional()?
                        .is_some();
                    if !dup {
                        new_ids.push(m.id);
                    }
                }
            }
            let stored_now = count_device(&tx, d)?;
            let would_hold = stored_now + new_ids.len() as u64;
            if !new_ids.is_empty() && would_hold > u64::from(max_per_device) {
                // Dropping `tx` rolls back; nothing was written.
                return Err(StorageError::DeviceFull {
                    would_hold,
                    limit: max_per_device,
                });
            }
            if let Some(cp) = &request.client_profile {
                let old_key: Option<Vec<u8>> = tx
                    .query_row(
                        "SELECT long_term_key FROM client_profiles
                         WHERE jid = ?1 AND instance_tag = ?2",
                        params![d.jid, d.instance_tag],
                        |r| r.get(0),
                    )
                    .optional()?;
                if old_key.is_some_and(|k| k != d.long_term_key) {
                    tx.execute(
                        "DELETE FROM prekey_profiles WHERE jid = ?1 AND instance_tag = ?2
                         AND long_term_key <> ?3",
                        params![d.jid, d.instance_tag, &d.long_term_key[..]],
                    )?;
                    tx.execute(
                        "DELETE FROM prekey_messages WHERE jid = ?1 AND instance_tag = ?2
                         AND long_term_key <> ?3",
                        params![d.jid, d.instance_tag, &d.long_term_key[..]],
                    )?;
                }
                tx.execute(
                    "INSERT OR REPLACE INTO client_profiles
                     (jid, instance_tag, long_term_key, profile, versions, expires, stored_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        d.jid,
                        d.instance_tag,
                        &d.long_term_key[..],
                        cp.bytes,
                        cp.versions,
                        cp.expires,
                        now
                    ],
                )?;
            }
            if let Some(pp) = &request.prekey_profile {
                tx.execute(
                    "INSERT OR REPLACE INTO prekey_profiles
                     (jid, instance_tag, long_term_key, profile, expires, stored_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        d.jid,
                        d.instance_tag,
                        &d.long_term_key[..],
                        pp.bytes,
                        pp.expires,
                        now
                    ],
                )?;
            }
            let mut added = 0u32;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT OR IGNORE INTO prekey_messages
                     (jid, instance_tag, long_term_key, prekey_id, version, message, stored_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for m in &request.prekey_messages {
                    let n = ins.execute(params![
                        d.jid,
                        d.instance_tag,
                        &d.long_term_key[..],
                        m.id,
                        m.version,
                        m.bytes,
                        now
                    ])?;
                    added = added.saturating_add(u32::try_from(n).unwrap_or(0));
                }
            }
            let stored = count_device(&tx, d)?;
            tx.commit()?;
            Ok(StoreOutcome {
                added,
                stored: u32::try_from(stored).unwrap_or(u32::MAX),
            })
        })
    }

    fn count(&self, device: &DeviceKey) -> Result<u32, StorageError> {
        self.with_conn(|conn| Ok(u32::try_from(count_device(conn, device)?).unwrap_or(u32::MAX)))
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
        self.with_conn(|conn| {
            // IMMEDIATE takes the write lock before the first read: two retrievals can never
            // both read the same message and both delete it.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut all = Vec::with_capacity(requests.len());
            let mut any = false;
            for r in requests {
                let got = take_in(&tx, &r.jid, &r.versions, now)?;
                any |= !got.is_empty();
                all.push(got);
            }
            if any {
                tx.commit()?;
            } else {
                // Nothing written: end the transaction without a (durable) commit.
                tx.rollback()?;
            }
            Ok(all)
        })
    }

    fn gc(&self, now: i64, orphan_before: i64) -> Result<GcReport, StorageError> {
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let client_profiles = tx.execute(
                "DELETE FROM client_profiles WHERE expires <= ?1",
                params![now],
            )? as u64;
            let prekey_profiles = tx.execute(
                "DELETE FROM prekey_profiles WHERE expires <= ?1",
                params![now],
            )? as u64;
            let orphaned_prekey_messages = tx.execute(
                "DELETE FROM prekey_messages AS m WHERE m.stored_at < ?1 AND NOT EXISTS (
                   SELECT 1 FROM client_profiles c WHERE c.jid = m.jid
                   AND c.instance_tag = m.instance_tag AND c.long_term_key = m.long_term_key)",
                params![orphan_before],
            )? as u64;
            tx.commit()?;
            Ok(GcReport {
                client_profiles,
                prekey_profiles,
                orphaned_prekey_messages,
            })
        })
    }

    fn stats(&self) -> Result<StoreStats, StorageError> {
        self.with_conn(|conn| {
            let n = |table: &str| -> Result<u64, StorageError> {
                let v: i64 =
                    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
                Ok(u64::try_from(v).unwrap_or(0))
            };
            Ok(StoreStats {
                client_profiles: n("client_profiles")?,
                prekey_profiles: n("prekey_profiles")?,
                prekey_messages: n("prekey_messages")?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance;

    #[test]
    fn conformance_full() {
        let dir = tempfile::tempdir().unwrap();
        let n = std::sync::atomic::AtomicUsize::new(0);
        conformance::run_all(&|| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::new(
                SqliteStorage::open(dir.path().join(format!("s{i}.db")), Durability::Full).unwrap(),
            )
        });
    }

    #[test]
    fn version_mask_selects_exactly_the_requested_versions() {
        assert_eq!(version_mask(b"4"), 1 << 4);
        assert_eq!(version_mask(b"34"), (1 << 3) | (1 << 4));
        assert_eq!(version_mask(b""), 0);
        // Bytes below '0' select nothing; each stored version v matches iff '0' + v is asked.
        assert_eq!(version_mask(b"/ "), 0);
        for v in 0u8..63 {
            let c = crate::storage::version_char(v);
            assert_eq!((version_mask(b"4") >> v) & 1 == 1, b"4".contains(&c), "{v}");
        }
    }

    #[test]
    fn files_private_whatever_the_umask_and_second_process_locked_out() {
        let dir = tempfile::tempdir().unwrap();
        // A world-readable parent: what a permissive umask gives.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("state/p.db");
        let d = conformance::device("alice@example.org", 0x101, 1);
        let s = SqliteStorage::open_exclusive(&path, Durability::Full).unwrap();
        s.store(&conformance::full_request(&d, 0..3, 1000), 100, 1)
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(path.parent().unwrap()), 0o700, "directory");
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            assert_eq!(mode(Path::new(&p)), 0o600, "{suffix}");
        }
        // A second server on the same database is refused, naming the path.
        let err = SqliteStorage::open_exclusive(&path, Durability::Full).unwrap_err();
        assert!(matches!(err, StorageError::Locked { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));
        drop(s);
        // Released with the store (and by the kernel when the process dies).
        let s = SqliteStorage::open_exclusive(&path, Durability::Full).unwrap();
        assert_eq!(s.count(&d).unwrap(), 3);
        drop(s);
        // An existing database readable by others is tightened.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _s = SqliteStorage::open(&path, Durability::Full).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn schema_version_recorded_and_newer_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let s = SqliteStorage::open(&path, Durability::Full).unwrap();
        let c = s.connect().unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        c.pragma_update(None, "user_version", 99).unwrap();
        drop((c, s));
        let err = SqliteStorage::open(&path, Durability::Full).unwrap_err();
        assert!(err.to_string().contains("schema version 99"), "{err}");
    }

    #[test]
    fn open_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-db");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = SqliteStorage::open(&path, Durability::Full).unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn reopen_keeps_data_and_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        let d = conformance::device("alice@example.org", 0x101, 1);
        {
            let s = SqliteStorage::open(&path, Durability::Normal).unwrap();
            s.store(&conformance::full_request(&d, 0..3, 1000), 100, 1)
                .unwrap();
        }
        let s = SqliteStorage::open(&path, Durability::Full).unwrap();
        assert_eq!(s.count(&d).unwrap(), 3);
        let c = s.connect().unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(sync, 2, "FULL");
    }

    /// 50 concurrent retrievals, each thread with its own `SqliteStorage` (so its own
    /// connection), against 20 stored Prekey messages: exactly 20 distinct messages go out.
    #[test]
    fn fifty_concurrent_retrievals_twenty_prekeys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let d = conformance::device("bob@example.org", 0x1234, 7);
        SqliteStorage::open(&path, Durability::Full)
            .unwrap()
            .store(&conformance::full_request(&d, 0..20, 10_000), 100, 1)
            .unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(50));
        let handles: Vec<_> = (0..50)
            .map(|_| {
                let path = path.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let s = SqliteStorage::open(&path, Durability::Full).unwrap();
                    barrier.wait();
                    s.take_ensembles("bob@example.org", b"4", 5).unwrap()
                })
            })
            .collect();
        let results: Vec<Vec<StoredEnsemble>> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        let got: Vec<u32> = results
            .iter()
            .flatten()
            .map(|e| e.prekey_message_id)
            .collect();
        let empty = results.iter().filter(|r| r.is_empty()).count();
        let mut distinct = got.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(got.len(), 20, "exactly 20 handed out");
        assert_eq!(distinct.len(), 20, "never one twice");
        assert_eq!(distinct, (0..20).collect::<Vec<u32>>());
        assert_eq!(empty, 30, "the rest get nothing");
        let s = SqliteStorage::open(&path, Durability::Full).unwrap();
        assert_eq!(s.count(&d).unwrap(), 0);
    }
}
