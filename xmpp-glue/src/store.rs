//! Persistence of one device: a locked directory holding the engine's sealed state (the
//! otr4 client, device lists, trust, pins, the device's JID and label), saved atomically.
//!
//! Layout of a store directory (mode 0700, files 0600), format version 2:
//! - `lock`: empty; held with an exclusive `flock` while a [`Store`] is open, so a second
//!   process (or a second [`Store`] in this one) gets [`StoreError::Locked`] (Unix only).
//! - `key`: 32 random bytes, the secret of [`KeySource::KeyFile`] (the default); absent
//!   with [`KeySource::Passphrase`].
//! - `device.otr4`: the whole engine sealed by [`crate::sealed`] ([`Level::Engine`],
//!   Argon2id + XChaCha20-Poly1305; the same bytes as a C/Python engine save blob):
//!   nothing about the account, its contacts or their fingerprints is readable without the
//!   secret. Replaced atomically: temporary file, fsync, rename, fsync of the directory.
//!
//! The salt and Argon2id costs live in the state file's header; the key is derived once when
//! the store opens (one Argon2id run for a passphrase; `--example unlock_time` times it),
//! every save reuses it with a fresh nonce.
//!
//! **Version 1** (before December 2026) wrote `device.otr4` as `"XGLUE001" || u32 len ||
//! meta JSON || u32 len || otr4 export || glue state JSON` with the metadata and glue state
//! in clear, keyed by the `key` file or by `SHAKE-256("xmpp-glue-store" || 0x01 || salt ||
//! passphrase)` with a 32-byte `salt` file. [`Store::load_or_create`] reads it and rewrites
//! the directory as version 2 at once (and deletes `salt`); the fixture test
//! `tests/fixtures/store-v1-*` holds directories written by that code.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use otr4::{
    Account, Client, ConversationError, PERSIST_KEY_LEN, PersistError, Policy, PrekeyStore,
    Selection, shake_into,
};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::sealed::{self, Level, SealError, SealKey, Secret};
use crate::{Engine, EngineConfig, GlueState, StateError};

/// File name of the random key ([`KeySource::KeyFile`]).
pub const KEY_FILE: &str = "key";
/// File name of the advisory lock.
pub const LOCK_FILE: &str = "lock";
/// File name of the device's saved state.
pub const STATE_FILE: &str = "device.otr4";
/// Largest state file read (a full client with 8 devices per contact stays far below).
pub const MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

/// Where the store's secret comes from.
#[derive(Default)]
pub enum KeySource {
    /// A random 32-byte key in the file `key` of the store (created on first use, mode
    /// 0600): protects against nothing that can read the directory, only against copies of
    /// `device.otr4` alone.
    #[default]
    KeyFile,
    /// A passphrase, stretched with Argon2id ([`crate::sealed`] documents the costs).
    Passphrase(Zeroizing<Vec<u8>>),
}

impl core::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KeySource::KeyFile => f.write_str("KeySource::KeyFile"),
            KeySource::Passphrase(_) => f.write_str("KeySource::Passphrase(..)"),
        }
    }
}

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// Another process, or another open [`Store`] in this one, uses the directory.
    #[error("{0}: the store is in use by another process (or another open store); close it first")]
    Locked(PathBuf),
    /// The key file (or a version-1 salt file) is not 32 bytes.
    #[error("{0}: wrong length")]
    BadKeyMaterial(PathBuf),
    /// The state file is malformed.
    #[error("malformed state file: {0}")]
    Malformed(&'static str),
    /// The sealed state did not open: wrong passphrase or key, a modified or cut-off file.
    #[error("the saved state did not open: {0}")]
    Sealed(#[from] SealError),
    /// The otr4 export of a version-1 store did not open: a wrong key or passphrase, or a
    /// modified file.
    #[error("the saved otr4 state did not open: {0}")]
    Otr(PersistError),
    /// The saved glue state or metadata did not parse.
    #[error("the saved glue state did not parse: {0}")]
    State(#[from] StateError),
    /// The store belongs to another account.
    #[error("the store belongs to {stored}, not {given}")]
    JidMismatch {
        /// The JID saved in the store.
        stored: String,
        /// The JID asked for.
        given: String,
    },
    /// A new account could not be created.
    #[error("creating the OTRv4 account failed: {0}")]
    Account(ConversationError),
}

/// The device's identity in its account, saved with the engine state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMeta {
    /// The account's bare JID.
    pub jid: String,
    /// The label of this device in the device list.
    pub label: String,
}

/// A device's store directory, locked and unlocked.
pub struct Store {
    dir: PathBuf,
    key: SealKey,
    /// The key of a version-1 state file still to migrate.
    v1: Option<Zeroizing<[u8; PERSIST_KEY_LEN]>>,
    _lock: Option<File>,
    /// The save step that fails (fault-injection tests).
    #[cfg(test)]
    fail_at: std::cell::Cell<Option<usize>>,
}

impl core::fmt::Debug for Store {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn private_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Creates `path` with mode 0600 (fails if it exists), writes `bytes`, fsyncs.
fn create_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = private_options().create_new(true).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Takes the directory's advisory lock (Unix: `flock`, released when the file closes).
fn lock(dir: &Path) -> Result<Option<File>, StoreError> {
    #[cfg(unix)]
    {
        let path = dir.join(LOCK_FILE);
        let f = private_options()
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(f)),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(StoreError::Locked(dir.to_owned())),
            Err(e) => Err(io_err(&path)(e.into())),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(None)
    }
}

/// Reads exactly `N` bytes from `path`; creates the file with fresh random bytes first if it
/// does not exist and `rng` is given.
fn read_secret<const N: usize, R: CryptoRng + ?Sized>(
    dir: &Path,
    name: &str,
    rng: Option<&mut R>,
) -> Result<Zeroizing<[u8; N]>, StoreError> {
    let path = dir.join(name);
    let mut out = Zeroizing::new([0u8; N]);
    match fs::read(&path) {
        Ok(v) => {
            let v = Zeroizing::new(v);
            let a: &[u8; N] = v
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::BadKeyMaterial(path.clone()))?;
            out.copy_from_slice(a);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && rng.is_some() => {
            if let Some(rng) = rng {
                rng.fill_bytes(out.as_mut_slice());
            }
            create_private(&path, out.as_slice()).map_err(io_err(&path))?;
            sync_dir(dir).map_err(io_err(dir))?;
        }
        Err(e) => return Err(io_err(&path)(e)),
    }
    Ok(out)
}

/// The policy of a new device: the standalone mode, every device of a contact addressed
/// (MULTICASTING), never fragmented (docs/xmpp-glue.md §4).
pub fn device_policy() -> Policy {
    Policy {
        selection: Selection::Multicasting,
        max_message_size: 0,
        ..Policy::standalone()
    }
}

fn read_state(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut out = Zeroizing::new(Vec::new());
    f.take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(io_err(path))?;
    if out.len() as u64 > MAX_STATE_BYTES {
        return Err(StoreError::Malformed("state file too large"));
    }
    Ok(Some(out))
}

/// Version 1 (read only, for the migration).
mod v1 {
    use super::*;

    pub const MAGIC: [u8; 8] = *b"XGLUE001";
    pub const SALT_FILE: &str = "salt";
    const SALT_LEN: usize = 32;
    const KDF_DOMAIN: &[u8] = b"xmpp-glue-store";
    const KDF_USAGE_KEY: u8 = 0x01;

    /// The key a version-1 store was saved with.
    pub fn key(
        dir: &Path,
        secret: &Secret<'_>,
    ) -> Result<Zeroizing<[u8; PERSIST_KEY_LEN]>, StoreError> {
        match secret {
            Secret::Key(k) => Ok(Zeroizing::new(**k)),
            Secret::Passphrase(p) => {
                let salt = read_secret::<SALT_LEN, rand::rngs::StdRng>(dir, SALT_FILE, None)?;
                let mut k = Zeroizing::new([0u8; PERSIST_KEY_LEN]);
                shake_into(
                    KDF_DOMAIN,
                    KDF_USAGE_KEY,
                    &[salt.as_slice(), *p],
                    k.as_mut_slice(),
                );
                Ok(k)
            }
        }
    }

    fn chunk<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], StoreError> {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or(StoreError::Malformed("truncated length"))?;
        let len = usize::try_from(u32::from_be_bytes(*len))
            .map_err(|_| StoreError::Malformed("length"))?;
        let (c, tail) = tail
            .split_at_checked(len)
            .ok_or(StoreError::Malformed("truncated field"))?;
        *rest = tail;
        Ok(c)
    }

    /// Metadata, otr4 export, glue state JSON.
    pub fn split(bytes: &[u8]) -> Result<(DeviceMeta, &[u8], &[u8]), StoreError> {
        let mut rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or(StoreError::Malformed("bad magic"))?;
        let meta = chunk(&mut rest)?;
        let meta: DeviceMeta = serde_json::from_slice(meta).map_err(StateError::from)?;
        let client = chunk(&mut rest)?;
        Ok((meta, client, rest))
    }
}

/// The number of steps of one save; the fault-injection test fails each.
#[cfg(test)]
const SAVE_STEPS: usize = 6;

impl Store {
    /// Opens (creating if needed, mode 0700) and locks the store directory `dir`, and
    /// derives its key: [`StoreError::Locked`] if it is open elsewhere,
    /// [`StoreError::Sealed`] with [`SealError::WrongSecret`] if the passphrase (or key file)
    /// is not the one the state was saved with. A passphrase costs one Argon2id run here.
    pub fn open(dir: impl AsRef<Path>, key: KeySource) -> Result<Store, StoreError> {
        let dir = dir.as_ref().to_owned();
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&dir).map_err(io_err(&dir))?;
        let lock = lock(&dir)?;
        let mut rng = rand::rng();
        let state = read_state(&dir.join(STATE_FILE))?;
        let key_file;
        let secret = match &key {
            KeySource::KeyFile => {
                // A new key only for a new store: a passphrase store stays without one.
                let create = state.is_none().then_some(&mut rng);
                key_file = read_secret::<{ sealed::KEY_LEN }, _>(&dir, KEY_FILE, create)?;
                Secret::Key(&key_file)
            }
            KeySource::Passphrase(p) => Secret::Passphrase(p),
        };
        let (key, v1) = match state {
            Some(bytes) if bytes.starts_with(&v1::MAGIC) => (
                SealKey::new(Level::Engine, &secret, &mut rng)?,
                Some(v1::key(&dir, &secret)?),
            ),
            Some(bytes) => (SealKey::unlock(Level::Engine, &secret, &bytes)?, None),
            None => (SealKey::new(Level::Engine, &secret, &mut rng)?, None),
        };
        Ok(Store {
            dir,
            key,
            v1,
            _lock: lock,
            #[cfg(test)]
            fail_at: std::cell::Cell::new(None),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Whether a device was saved here.
    pub fn has_device(&self) -> bool {
        self.state_path().is_file()
    }

    /// The saved device's JID and label, if a device was saved.
    pub fn meta(&self) -> Result<Option<DeviceMeta>, StoreError> {
        let Some(bytes) = read_state(&self.state_path())? else {
            return Ok(None);
        };
        if self.v1.is_some() {
            return v1::split(&bytes).map(|(m, _, _)| Some(m));
        }
        let plain = self.key.open(&bytes)?;
        let p = sealed::engine_parts(&plain)?;
        Ok(Some(DeviceMeta {
            jid: p.jid.to_owned(),
            label: p.label.to_owned(),
        }))
    }

    /// The engine of this device: imported from the store (a version-1 store is rewritten
    /// as version 2 first), or (first start) a new otr4 account ([`device_policy`]) for
    /// `config.jid`, saved before it is returned.
    pub fn load_or_create<R: CryptoRng + ?Sized>(
        &self,
        config: EngineConfig,
        now: i64,
        rng: &mut R,
    ) -> Result<Engine, StoreError> {
        if let Some(bytes) = read_state(&self.state_path())? {
            if let Some(old) = &self.v1 {
                return self.migrate(&bytes, old, config, rng);
            }
            let plain = self.key.open(&bytes)?;
            let p = sealed::engine_parts(&plain)?;
            if p.jid != config.jid {
                return Err(StoreError::JidMismatch {
                    stored: p.jid.to_owned(),
                    given: config.jid,
                });
            }
            let relabel = p.label != config.label;
            let engine = Engine::import(config, self.key.inner_key(), p.client, p.state, rng)?;
            if relabel {
                self.save(&engine, rng)?;
            }
            return Ok(engine);
        }
        let account = Account::generate(rng, device_policy(), now).map_err(StoreError::Account)?;
        let prekeys = PrekeyStore::new(account.instance_tag());
        let client = Client::new(account, &config.jid);
        let engine = Engine::new(config, client, prekeys, GlueState::default(), rng);
        self.save(&engine, rng)?;
        Ok(engine)
    }

    /// Reads a version-1 state file and saves it as version 2 (then deletes the salt).
    fn migrate<R: CryptoRng + ?Sized>(
        &self,
        bytes: &[u8],
        old: &[u8; PERSIST_KEY_LEN],
        config: EngineConfig,
        rng: &mut R,
    ) -> Result<Engine, StoreError> {
        let (meta, client, state) = v1::split(bytes)?;
        if meta.jid != config.jid {
            return Err(StoreError::JidMismatch {
                stored: meta.jid,
                given: config.jid,
            });
        }
        let (client, prekeys) = Client::import(old, client).map_err(StoreError::Otr)?;
        let state: GlueState = serde_json::from_slice(state).map_err(StateError::from)?;
        let engine = Engine::new(config, client, prekeys, state, rng);
        self.save(&engine, rng)?;
        let salt = self.dir.join(v1::SALT_FILE);
        match fs::remove_file(&salt) {
            Ok(()) => sync_dir(&self.dir).map_err(io_err(&self.dir))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&salt)(e)),
        }
        tracing::info!(dir = %self.dir.display(), "store migrated to format version 2");
        Ok(engine)
    }

    /// Fails save step `n` when a test asks.
    fn step(&self, n: usize) -> io::Result<()> {
        #[cfg(test)]
        if self.fail_at.get() == Some(n) {
            return Err(io::Error::other(format!("injected fault at save step {n}")));
        }
        let _ = n;
        Ok(())
    }

    /// Saves `engine` atomically: a temporary file (0600) is written and fsynced, renamed
    /// over the state file, and the directory fsynced; a failure at any step leaves the old
    /// state or the new one. Call it before sending the stanzas of an engine call, so no
    /// prekey or ratchet key is ever reused after a crash.
    pub fn save<R: CryptoRng + ?Sized>(
        &self,
        engine: &Engine,
        rng: &mut R,
    ) -> Result<(), StoreError> {
        let plain = sealed::engine_plaintext(engine, self.key.inner_key(), rng);
        let buf = self.key.seal(&plain, rng)?;
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let e = io_err(&tmp);
        match self.step(0).and_then(|()| fs::remove_file(&tmp)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(x) => return Err(e(x)),
        }
        let mut f = self
            .step(1)
            .and_then(|()| private_options().create_new(true).open(&tmp))
            .map_err(io_err(&tmp))?;
        if let Err(x) = self.step(2) {
            // A write cut short: half the bytes reach the file.
            let _ = f.write_all(buf.get(..buf.len() / 2).unwrap_or_default());
            return Err(io_err(&tmp)(x));
        }
        f.write_all(&buf).map_err(io_err(&tmp))?;
        self.step(3)
            .and_then(|()| f.sync_all())
            .map_err(io_err(&tmp))?;
        drop(f);
        let path = self.state_path();
        self.step(4)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(io_err(&path))?;
        self.step(5)
            .and_then(|()| sync_dir(&self.dir))
            .map_err(io_err(&self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn config(jid: &str) -> EngineConfig {
        EngineConfig::new(jid, "laptop")
    }

    #[test]
    fn create_then_reload_same_device() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dev");
        let mut rng = StdRng::seed_from_u64(1);
        let s = Store::open(&dir, KeySource::KeyFile).unwrap();
        assert!(!s.has_device());
        let e = s
            .load_or_create(config("alice@example.org"), 1000, &mut rng)
            .unwrap();
        let (tag, fp) = (e.tag(), e.fingerprint());
        assert!(s.has_device());
        drop(s);
        let s2 = Store::open(&dir, KeySource::KeyFile).unwrap();
        let e2 = s2
            .load_or_create(config("alice@example.org"), 2000, &mut rng)
            .unwrap();
        assert_eq!(e2.tag(), tag);
        assert_eq!(e2.fingerprint(), fp);
        assert_eq!(
            s2.client_policy_selection(&e2),
            Selection::Multicasting,
            "policy survives the round trip"
        );
        assert_eq!(
            s2.meta().unwrap(),
            Some(DeviceMeta {
                jid: "alice@example.org".into(),
                label: "laptop".into()
            })
        );
    }

    impl Store {
        fn client_policy_selection(&self, e: &Engine) -> Selection {
            e.client().account().policy().selection
        }
    }

    #[cfg(unix)]
    #[test]
    fn modes_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let mut rng = StdRng::seed_from_u64(2);
        let s = Store::open(&dir, KeySource::KeyFile).unwrap();
        s.load_or_create(config("a@b"), 1000, &mut rng).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        assert_eq!(mode(&dir.join(STATE_FILE)), 0o600);
        assert!(!dir.join(format!("{STATE_FILE}.tmp")).exists());
    }

    fn pass(p: &str) -> KeySource {
        KeySource::Passphrase(Zeroizing::new(p.as_bytes().to_vec()))
    }

    #[test]
    fn wrong_passphrase_and_wrong_jid_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dev");
        let mut rng = StdRng::seed_from_u64(3);
        let s = Store::open(&dir, pass("correct horse")).unwrap();
        let e = s.load_or_create(config("a@b"), 1000, &mut rng).unwrap();
        assert!(!dir.join(KEY_FILE).exists() && !dir.join(v1::SALT_FILE).exists());
        drop(s);
        let again = Store::open(&dir, pass("correct horse")).unwrap();
        assert_eq!(
            again
                .load_or_create(config("a@b"), 1000, &mut rng)
                .unwrap()
                .tag(),
            e.tag()
        );
        assert!(matches!(
            again.load_or_create(config("c@d"), 1000, &mut rng),
            Err(StoreError::JidMismatch { .. })
        ));
        drop(again);
        assert!(matches!(
            Store::open(&dir, pass("wrong")),
            Err(StoreError::Sealed(SealError::WrongSecret))
        ));
        // No key file is made up for a passphrase store.
        assert!(matches!(
            Store::open(&dir, KeySource::KeyFile),
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound
        ));
        assert!(!dir.join(KEY_FILE).exists());
    }

    #[test]
    fn truncated_and_bad_key_files_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dev");
        let mut rng = StdRng::seed_from_u64(4);
        let s = Store::open(&dir, KeySource::KeyFile).unwrap();
        s.load_or_create(config("a@b"), 1000, &mut rng).unwrap();
        let bytes = fs::read(dir.join(STATE_FILE)).unwrap();
        for cut in [0, 4, 8, 11, 20, bytes.len() / 2] {
            fs::write(dir.join(STATE_FILE), &bytes[..cut]).unwrap();
            assert!(
                s.load_or_create(config("a@b"), 1000, &mut rng).is_err(),
                "cut at {cut}"
            );
        }
        drop(s);
        fs::write(dir.join(KEY_FILE), [0u8; 31]).unwrap();
        assert!(matches!(
            Store::open(&dir, KeySource::KeyFile),
            Err(StoreError::BadKeyMaterial(_))
        ));
    }

    #[test]
    fn a_second_store_on_the_directory_is_refused_until_the_first_closes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dev");
        let s = Store::open(&dir, KeySource::KeyFile).unwrap();
        let e = Store::open(&dir, KeySource::KeyFile).unwrap_err();
        assert!(matches!(&e, StoreError::Locked(d) if d == &dir), "{e}");
        assert!(e.to_string().contains("in use by another process"));
        drop(s);
        Store::open(&dir, KeySource::KeyFile).unwrap();
    }

    #[test]
    fn no_file_holds_the_jid_contacts_or_fingerprints_in_clear() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dev");
        let mut rng = StdRng::seed_from_u64(5);
        let s = Store::open(&dir, pass("pw")).unwrap();
        let e = s
            .load_or_create(config("alice@example.org"), 1000, &mut rng)
            .unwrap();
        let e = with_pin(e, &s, "secret-server.example", &mut rng);
        s.save(&e, &mut rng).unwrap();
        let fp = e.fingerprint();
        let mut names = Vec::new();
        for f in fs::read_dir(&dir).unwrap() {
            let f = f.unwrap();
            names.push(f.file_name().into_string().unwrap());
            let bytes = fs::read(f.path()).unwrap();
            for needle in [
                "alice@example.org",
                "laptop",
                "secret-server",
                "prekeys.",
                &fp[..16],
                "fingerprint",
            ] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{needle} in {:?}",
                    f.file_name()
                );
            }
        }
        names.sort();
        assert_eq!(names, [STATE_FILE, LOCK_FILE]);
    }

    /// `e` with a prekey-server pin for `domain` (a state change to save).
    fn with_pin(e: Engine, s: &Store, domain: &str, rng: &mut StdRng) -> Engine {
        let mut st = e.state();
        st.servers.insert(
            domain.into(),
            crate::ServerPin {
                jid: format!("prekeys.{domain}"),
                fingerprint: "ab".repeat(56),
            },
        );
        let (client, _) = e.export(s.key.inner_key(), rng);
        let state = serde_json::to_vec(&st).unwrap();
        Engine::import(
            EngineConfig::new(e.jid(), e.label()),
            s.key.inner_key(),
            &client,
            &state,
            rng,
        )
        .unwrap()
    }

    #[test]
    fn a_save_failing_at_any_step_leaves_the_old_state_or_the_new() {
        let mut outcomes = Vec::new();
        for step in 0..=SAVE_STEPS {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("dev");
            let mut rng = StdRng::seed_from_u64(6);
            let s = Store::open(&dir, pass("pw")).unwrap();
            let old = s.load_or_create(config("a@b"), 1000, &mut rng).unwrap();
            let new = with_pin(old, &s, "new.example", &mut rng);
            // Step SAVE_STEPS does not exist: the save that succeeds.
            s.fail_at.set(Some(step));
            let r = s.save(&new, &mut rng);
            assert_eq!(r.is_ok(), step == SAVE_STEPS, "step {step}: {r:?}");
            // The process stops here: nothing is cleaned up; a new process opens the store.
            drop(s);
            let s = Store::open(&dir, pass("pw")).unwrap();
            let loaded = s.load_or_create(config("a@b"), 1000, &mut rng).unwrap();
            assert_eq!(loaded.tag(), new.tag(), "step {step}: the same device");
            let has_new = loaded.state().servers.contains_key("new.example");
            outcomes.push(has_new);
            // And the next save works over whatever the failed one left.
            s.save(&loaded, &mut rng).unwrap();
            drop(s);
            let s = Store::open(&dir, pass("pw")).unwrap();
            s.load_or_create(config("a@b"), 1000, &mut rng).unwrap();
        }
        // Before the rename: the old state; from the rename on: the new one.
        assert_eq!(outcomes, [false, false, false, false, false, true, true]);
    }
}
