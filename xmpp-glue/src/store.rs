//! Persistence of one device: a directory holding the engine's export (the otr4 client
//! encrypted by otr4, the glue state, the device's JID and label), written atomically.
//!
//! Layout of a store directory (mode 0700, files 0600):
//! - `key`: 32 random bytes, the persistence key ([`KeySource::KeyFile`], the default), or
//!   `salt`: 32 random bytes from which the key is derived with a passphrase
//!   ([`KeySource::Passphrase`]: `SHAKE-256("xmpp-glue-store" || 0x01 || salt || passphrase)`,
//!   not a slow password hash: use a high-entropy passphrase).
//! - `device.otr4`: `"XGLUE001" || u32 len || meta JSON || u32 len || otr4 export || glue
//!   state JSON`, replaced atomically (temporary file, fsync, rename, fsync of the directory).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use otr4::{
    Account, Client, ConversationError, PERSIST_KEY_LEN, PersistError, Policy, PrekeyStore,
    Selection, shake_into,
};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Engine, EngineConfig, GlueState, StateError};

/// File name of the random key ([`KeySource::KeyFile`]).
pub const KEY_FILE: &str = "key";
/// File name of the passphrase salt ([`KeySource::Passphrase`]).
pub const SALT_FILE: &str = "salt";
/// File name of the device's saved state.
pub const STATE_FILE: &str = "device.otr4";
/// Magic at the start of [`STATE_FILE`].
pub const STATE_MAGIC: [u8; 8] = *b"XGLUE001";
/// Bytes of the passphrase salt.
pub const SALT_LEN: usize = 32;
/// Largest state file read (a full client with 8 devices per contact stays far below).
pub const MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

const KDF_DOMAIN: &[u8] = b"xmpp-glue-store";
const KDF_USAGE_KEY: u8 = 0x01;

/// Where the 32-byte persistence key comes from.
#[derive(Default)]
pub enum KeySource {
    /// A random key in the file `key` of the store (created on first use, mode 0600).
    #[default]
    KeyFile,
    /// A key derived from this passphrase and the random salt in the file `salt`.
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
    /// The key file is not 32 bytes, or the salt file not 32 bytes.
    #[error("{0}: wrong length")]
    BadKeyMaterial(PathBuf),
    /// The state file is malformed.
    #[error("malformed state file: {0}")]
    Malformed(&'static str),
    /// The otr4 export did not open: a wrong key or passphrase, or a modified file.
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

/// The device's identity in its account, saved next to the engine state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMeta {
    /// The account's bare JID.
    pub jid: String,
    /// The label of this device in the device list.
    pub label: String,
}

/// A device's store directory, opened with its key.
pub struct Store {
    dir: PathBuf,
    key: Zeroizing<[u8; PERSIST_KEY_LEN]>,
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

/// Creates `path` with mode 0600 (fails if it exists), writes `bytes`, fsyncs.
fn create_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
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

/// Reads exactly `N` random bytes from `path`, creating the file with fresh random bytes
/// first if it does not exist.
fn read_or_create_secret<const N: usize, R: CryptoRng + ?Sized>(
    dir: &Path,
    name: &str,
    rng: &mut R,
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
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            rng.fill_bytes(out.as_mut_slice());
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

fn read_chunk<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], StoreError> {
    let (len, tail) = rest
        .split_first_chunk::<4>()
        .ok_or(StoreError::Malformed("truncated length"))?;
    let len =
        usize::try_from(u32::from_be_bytes(*len)).map_err(|_| StoreError::Malformed("length"))?;
    let (chunk, tail) = tail
        .split_at_checked(len)
        .ok_or(StoreError::Malformed("truncated field"))?;
    *rest = tail;
    Ok(chunk)
}

fn len_u32(n: usize) -> Result<[u8; 4], StoreError> {
    u32::try_from(n)
        .map(u32::to_be_bytes)
        .map_err(|_| StoreError::Malformed("field too long"))
}

impl Store {
    /// Opens (creating if needed, mode 0700) the store directory `dir` and loads or creates
    /// its key material.
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
        let mut rng = rand::rng();
        let key = match key {
            KeySource::KeyFile => {
                read_or_create_secret::<PERSIST_KEY_LEN, _>(&dir, KEY_FILE, &mut rng)?
            }
            KeySource::Passphrase(p) => {
                let salt = read_or_create_secret::<SALT_LEN, _>(&dir, SALT_FILE, &mut rng)?;
                let mut k = Zeroizing::new([0u8; PERSIST_KEY_LEN]);
                shake_into(
                    KDF_DOMAIN,
                    KDF_USAGE_KEY,
                    &[salt.as_slice(), p.as_slice()],
                    k.as_mut_slice(),
                );
                k
            }
        };
        Ok(Store { dir, key })
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

    fn read_file(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.state_path();
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let len = f.metadata().map_err(io_err(&path))?.len();
        if len > MAX_STATE_BYTES {
            return Err(StoreError::Malformed("state file too large"));
        }
        fs::read(&path).map(Some).map_err(io_err(&path))
    }

    /// The saved device's JID and label, if a device was saved.
    pub fn meta(&self) -> Result<Option<DeviceMeta>, StoreError> {
        let Some(bytes) = self.read_file()? else {
            return Ok(None);
        };
        Self::split(&bytes).map(|(m, _, _)| Some(m))
    }

    fn split(bytes: &[u8]) -> Result<(DeviceMeta, &[u8], &[u8]), StoreError> {
        let rest = bytes
            .strip_prefix(STATE_MAGIC.as_slice())
            .ok_or(StoreError::Malformed("bad magic"))?;
        let mut rest = rest;
        let meta = read_chunk(&mut rest)?;
        let meta: DeviceMeta = serde_json::from_slice(meta).map_err(StateError::from)?;
        let client = read_chunk(&mut rest)?;
        Ok((meta, client, rest))
    }

    /// The engine of this device: imported from the store, or (first start) a new otr4
    /// account ([`device_policy`]) for `config.jid`, saved before it is returned.
    pub fn load_or_create<R: CryptoRng + ?Sized>(
        &self,
        config: EngineConfig,
        now: i64,
        rng: &mut R,
    ) -> Result<Engine, StoreError> {
        if let Some(bytes) = self.read_file()? {
            let (meta, client, state) = Self::split(&bytes)?;
            if meta.jid != config.jid {
                return Err(StoreError::JidMismatch {
                    stored: meta.jid,
                    given: config.jid,
                });
            }
            let relabel = meta.label != config.label;
            let (client, prekeys) = Client::import(&self.key, client).map_err(StoreError::Otr)?;
            let state: GlueState = serde_json::from_slice(state).map_err(StateError::from)?;
            let engine = Engine::new(config, client, prekeys, state, rng);
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

    /// Saves `engine` atomically: a temporary file (0600) is written and fsynced, renamed
    /// over the state file, and the directory fsynced. Call it before sending the stanzas of
    /// an engine call, so no prekey or ratchet key is ever reused after a crash.
    pub fn save<R: CryptoRng + ?Sized>(
        &self,
        engine: &Engine,
        rng: &mut R,
    ) -> Result<(), StoreError> {
        let meta = DeviceMeta {
            jid: engine.jid().to_owned(),
            label: engine.label().to_owned(),
        };
        let meta = serde_json::to_vec(&meta).map_err(StateError::from)?;
        let (client, state) = engine.export(&self.key, rng);
        let mut buf = Vec::with_capacity(8 + 8 + meta.len() + client.len() + state.len());
        buf.extend_from_slice(&STATE_MAGIC);
        buf.extend_from_slice(&len_u32(meta.len())?);
        buf.extend_from_slice(&meta);
        buf.extend_from_slice(&len_u32(client.len())?);
        buf.extend_from_slice(&client);
        buf.extend_from_slice(&state);
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&tmp)(e)),
        }
        create_private(&tmp, &buf).map_err(io_err(&tmp))?;
        let path = self.state_path();
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(&self.dir).map_err(io_err(&self.dir))
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

    #[test]
    fn wrong_passphrase_and_wrong_jid_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dev");
        let mut rng = StdRng::seed_from_u64(3);
        let pass = |p: &str| KeySource::Passphrase(Zeroizing::new(p.as_bytes().to_vec()));
        let s = Store::open(&dir, pass("correct horse")).unwrap();
        let e = s.load_or_create(config("a@b"), 1000, &mut rng).unwrap();
        assert!(dir.join(SALT_FILE).is_file() && !dir.join(KEY_FILE).exists());
        let again = Store::open(&dir, pass("correct horse")).unwrap();
        assert_eq!(
            again
                .load_or_create(config("a@b"), 1000, &mut rng)
                .unwrap()
                .tag(),
            e.tag()
        );
        let bad = Store::open(&dir, pass("wrong")).unwrap();
        assert!(matches!(
            bad.load_or_create(config("a@b"), 1000, &mut rng),
            Err(StoreError::Otr(PersistError::Authentication))
        ));
        assert!(matches!(
            again.load_or_create(config("c@d"), 1000, &mut rng),
            Err(StoreError::JidMismatch { .. })
        ));
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
        fs::write(dir.join(KEY_FILE), [0u8; 31]).unwrap();
        assert!(matches!(
            Store::open(&dir, KeySource::KeyFile),
            Err(StoreError::BadKeyMaterial(_))
        ));
    }
}
