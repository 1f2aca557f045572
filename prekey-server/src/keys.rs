//! The server's long-term Ed448 key on disk: created on first start with mode 0600, loaded
//! afterwards (otrv4-prekey-server.md §"Public keys and Fingerprints").
//!
//! The file holds the 57-byte symmetric key the key pair is derived from, hex-encoded after
//! a one-line header. A key file readable by group or others is refused. A new key is
//! written atomically: to a temporary file (0600) in the same directory, fsynced, linked
//! to its name only if that name is still free (create-exclusive), the directory fsynced;
//! a crash leaves either no key or the whole key, never a truncated one.

use otr4::hazmat::crypto::ed448::{KeyPair, SYMMETRIC_KEY_LEN, SymmetricKey};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use zeroize::Zeroizing;

const HEADER: &str = "otr4-prekey-server long-term key v1";

/// Why the key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// The file is readable or writable by group or others.
    #[error(
        "key file {path} has mode {mode:o}; it must not be accessible by group or others (chmod 600)"
    )]
    Permissions {
        /// The file.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
    /// The file is not a key file.
    #[error("key file {0} is malformed")]
    Malformed(String),
}

/// Whether [`load_or_create`] made a new key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Loaded from the existing file.
    Loaded,
    /// Generated and written now.
    Created,
}

/// Loads the key at `path`, or generates one and writes it there (mode 0600, parent
/// directories created with mode 0700).
pub fn load_or_create(path: &Path) -> Result<(KeyPair, KeyOrigin), KeyError> {
    let p = path.display().to_string();
    let io_err = |source| KeyError::Io {
        path: p.clone(),
        source,
    };
    match fs::metadata(path) {
        Ok(meta) => Ok((read_key(path, &meta)?, KeyOrigin::Loaded)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(io_err)?;
            }
            let sym = SymmetricKey::generate(&mut rand::rng());
            let text = key_file_text(&sym);
            write_atomically(path, text.as_bytes()).map_err(io_err)?;
            Ok((KeyPair::from_symmetric_key(sym), KeyOrigin::Created))
        }
        Err(e) => Err(io_err(e)),
    }
}

/// Loads the existing key at `path` (never creates one).
pub fn load(path: &Path) -> Result<KeyPair, KeyError> {
    let meta = fs::metadata(path).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    read_key(path, &meta)
}

fn read_key(path: &Path, meta: &fs::Metadata) -> Result<KeyPair, KeyError> {
    let p = path.display().to_string();
    let io_err = |source| KeyError::Io {
        path: p.clone(),
        source,
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions { path: p, mode });
    }
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io_err)?);
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(KeyError::Malformed(p));
    }
    let hex_key = lines.next().ok_or_else(|| KeyError::Malformed(p.clone()))?;
    let mut bytes = Zeroizing::new([0u8; SYMMETRIC_KEY_LEN]);
    hex::decode_to_slice(hex_key.trim(), bytes.as_mut())
        .map_err(|_| KeyError::Malformed(p.clone()))?;
    Ok(KeyPair::from_symmetric_key(SymmetricKey::from_bytes(
        *bytes,
    )))
}

/// The key file's content for `sym`.
pub(crate) fn key_file_text(sym: &SymmetricKey) -> Zeroizing<String> {
    Zeroizing::new(format!("{HEADER}\n{}\n", hex::encode(sym.as_bytes())))
}

fn temp_path(path: &Path) -> io::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => std::path::PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the key file needs a file name",
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{:016x}", rand::random::<u64>()));
    let tmp = dir.join(tmp_name);
    Ok((dir, tmp))
}

fn write_temp(tmp: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Writes `bytes` to `path` (mode `mode`), replacing it atomically: temporary file, fsync,
/// rename over `path`, fsync the directory (key rotation).
pub(crate) fn replace_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let (dir, tmp) = temp_path(path)?;
    let result = write_temp(&tmp, bytes, mode).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fs::File::open(&dir)?.sync_all()
}

/// Writes `bytes` to a new file `path` (mode 0600): temporary file, fsync, hard link to
/// `path` (fails if `path` exists: never overwrites a key another process just wrote),
/// remove the temporary name, fsync the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (dir, tmp) = temp_path(path)?;
    let result = write_temp(&tmp, bytes, 0o600).and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    result?;
    fs::File::open(&dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_load_same_key_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/server.key");
        let (k1, o1) = load_or_create(&path).unwrap();
        assert_eq!(o1, KeyOrigin::Created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (k2, o2) = load_or_create(&path).unwrap();
        assert_eq!(o2, KeyOrigin::Loaded);
        assert_eq!(k1.public(), k2.public());
    }

    #[test]
    fn creation_is_exclusive_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_atomically(&path, b"first").unwrap();
        let err = write_atomically(&path, b"second").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"first", "never overwritten");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("k")], "{names:?}");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn group_readable_key_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(KeyError::Permissions { mode: 0o640, .. })
        ));
    }

    #[test]
    fn malformed_key_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        for content in [
            "",
            "wrong header\n00\n",
            &format!("{HEADER}\nzz\n"),
            &format!("{HEADER}\n00\n"),
        ] {
            fs::write(&path, content).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            assert!(
                matches!(load_or_create(&path), Err(KeyError::Malformed(_))),
                "{content:?}"
            );
        }
    }
}
