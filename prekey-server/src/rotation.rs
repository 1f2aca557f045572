//! Rotating the server's long-term key: a new key, and an announcement of its fingerprint
//! signed by the old key, published in service discovery until it expires (docs/spec-notes.md).
//!
//! The announcement is the disco#items item `node="fingerprint-rotation"` whose `name` is
//! `OLDPUB.NEWFP.NOTAFTER.SIG`: the old Ed448 public key (57 bytes, hex), the new
//! fingerprint (56 bytes, hex), the last second the announcement is valid (decimal Unix
//! time) and the old key's EdDSA signature (RFC 8032, empty context; 114 bytes, hex) over
//! `PrekeyServerKey::ROTATION_LABEL || u32(len(jid)) || jid || old fingerprint || new fingerprint || u64(not_after)`
//! (big-endian integers). A client that pinned the old fingerprint verifies it and re-pins.
//!
//! On disk: `<key_file>.rotation` lists the announcements still valid (one disco name a
//! line after a header), `<key_file>.old-<not_after>` keeps each replaced key until its
//! announcement expires; both are pruned at start and at the next rotation.

use crate::keys::{self, KeyError};
use otr4::Fingerprint;
use otr4::hazmat::crypto::ed448::{KeyPair, POINT_LEN, SymmetricKey};
use otr4::hazmat::crypto::eddsa::{self, SIGNATURE_LEN, Signature};
use otr4::hazmat::crypto::keys::Ed448PublicKey;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The disco#items node of a rotation announcement.
pub const NODE: &str = "fingerprint-rotation";

/// The default announcement period: 30 days.
pub const DEFAULT_ANNOUNCE_DAYS: u32 = 30;

const HEADER: &str = "otr4-prekey-server key rotation v1";

/// A rotation announcement: `old_public` vouches for `new_fingerprint` until `not_after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The old (replaced) public key.
    pub old_public: [u8; POINT_LEN],
    /// The new key's fingerprint.
    pub new_fingerprint: [u8; 56],
    /// Last Unix second the announcement is valid.
    pub not_after: u64,
    /// The old key's signature over [`signed_message`].
    pub signature: [u8; SIGNATURE_LEN],
}

/// The prekey-server fingerprint of a key pair.
pub fn fingerprint(key: &KeyPair) -> Fingerprint {
    Fingerprint::prekey_server(&Ed448PublicKey(*key.public()))
}

impl Announcement {
    /// `old` vouches for `new_fp` as the key of `jid` until `not_after`.
    pub fn sign(old: &KeyPair, new_fp: &Fingerprint, jid: &str, not_after: u64) -> Announcement {
        let old_fp = fingerprint(old);
        let msg = otr4::PrekeyServerKey::rotation_message(
            jid,
            old_fp.as_bytes(),
            new_fp.as_bytes(),
            not_after,
        );
        Announcement {
            old_public: old.public().encode(),
            new_fingerprint: *new_fp.as_bytes(),
            not_after,
            signature: eddsa::sign(old, &msg).0,
        }
    }

    /// The disco item name `OLDPUB.NEWFP.NOTAFTER.SIG`.
    pub fn disco_name(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            hex::encode_upper(self.old_public),
            hex::encode_upper(self.new_fingerprint),
            self.not_after,
            hex::encode_upper(self.signature)
        )
    }

    /// Parses a disco item name (the server reading its own file).
    pub fn from_disco_name(s: &str) -> Option<Announcement> {
        let mut parts = s.split('.');
        let (old, new, not_after, sig) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let mut a = Announcement {
            old_public: [0; POINT_LEN],
            new_fingerprint: [0; 56],
            not_after: not_after.parse().ok()?,
            signature: [0; SIGNATURE_LEN],
        };
        hex::decode_to_slice(old, &mut a.old_public).ok()?;
        hex::decode_to_slice(new, &mut a.new_fingerprint).ok()?;
        hex::decode_to_slice(sig, &mut a.signature).ok()?;
        Some(a)
    }

    /// Whether the signature holds for `jid` (the server checks its own file).
    pub fn verify(&self, jid: &str) -> bool {
        let Ok(p) = otr4::hazmat::crypto::ed448::Point::decode(&self.old_public) else {
            return false;
        };
        let old_fp = Fingerprint::prekey_server(&Ed448PublicKey(p));
        let msg = otr4::PrekeyServerKey::rotation_message(
            jid,
            old_fp.as_bytes(),
            &self.new_fingerprint,
            self.not_after,
        );
        eddsa::verify(&p, &msg, &Signature(self.signature)).is_ok()
    }
}

fn rotation_path(key_path: &Path) -> PathBuf {
    let mut s = key_path.as_os_str().to_owned();
    s.push(".rotation");
    PathBuf::from(s)
}

fn old_key_path(key_path: &Path, not_after: u64) -> PathBuf {
    let mut s = key_path.as_os_str().to_owned();
    s.push(format!(".old-{not_after}"));
    PathBuf::from(s)
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The announcements of `key_path` still valid at `now` whose signature holds for `jid`.
/// Expired ones are dropped from the file (removed when none is left) and their old keys
/// deleted. No file: none.
pub fn load_announcements(
    key_path: &Path,
    jid: &str,
    now: u64,
) -> Result<Vec<Announcement>, KeyError> {
    let path = rotation_path(key_path);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(KeyError::Malformed(path.display().to_string()));
    }
    let mut all = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let a = Announcement::from_disco_name(line.trim())
            .filter(|a| a.verify(jid))
            .ok_or_else(|| KeyError::Malformed(path.display().to_string()))?;
        all.push(a);
    }
    let (valid, expired): (Vec<_>, Vec<_>) = all.into_iter().partition(|a| a.not_after >= now);
    if !expired.is_empty() {
        write_announcements(&path, &valid)?;
        for a in &expired {
            let old = old_key_path(key_path, a.not_after);
            match fs::remove_file(&old) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&old)(e)),
                _ => {}
            }
        }
    }
    Ok(valid)
}

fn write_announcements(path: &Path, list: &[Announcement]) -> Result<(), KeyError> {
    if list.is_empty() {
        return match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path)(e)),
            _ => Ok(()),
        };
    }
    let mut text = format!("{HEADER}\n");
    for a in list {
        text.push_str(&a.disco_name());
        text.push('\n');
    }
    keys::replace_atomically(path, text.as_bytes(), 0o644).map_err(io_err(path))
}

/// What [`rotate`] did.
#[derive(Debug)]
pub struct Rotated {
    /// The replaced key's fingerprint.
    pub old: Fingerprint,
    /// The new key's fingerprint.
    pub new: Fingerprint,
    /// Until when the announcement is published.
    pub not_after: u64,
    /// Where the old key is kept until then.
    pub old_key_file: PathBuf,
}

/// Replaces the key at `key_path` (which must exist) by a new one and announces it, signed
/// by the old key, until `now + period_secs`. Order (each step atomic, crash-safe): the old
/// key is linked to `<key_file>.old-<not_after>`, the announcement written, then the new
/// key renamed over the key file. A crash before the last step leaves the old key serving
/// with an announcement of a key that never served: harmless (clients ignore
/// announcements while the advertised key is the pinned one); rotating again fixes it.
pub fn rotate(key_path: &Path, jid: &str, period_secs: u64, now: u64) -> Result<Rotated, KeyError> {
    let old = keys::load(key_path)?;
    let mut list = load_announcements(key_path, jid, now)?;
    let sym = SymmetricKey::generate(&mut rand::rng());
    let new_text = keys::key_file_text(&sym);
    let new = KeyPair::from_symmetric_key(sym);
    let not_after = now.saturating_add(period_secs);
    let new_fp = fingerprint(&new);
    let old_key_file = old_key_path(key_path, not_after);
    match fs::hard_link(key_path, &old_key_file) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(io_err(&old_key_file)(e));
        }
        _ => {}
    }
    list.push(Announcement::sign(&old, &new_fp, jid, not_after));
    write_announcements(&rotation_path(key_path), &list)?;
    keys::replace_atomically(key_path, new_text.as_bytes(), 0o600).map_err(io_err(key_path))?;
    Ok(Rotated {
        old: fingerprint(&old),
        new: new_fp,
        not_after,
        old_key_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const JID: &str = "prekey.example.org";

    #[test]
    fn rotation_announces_the_new_key_signed_by_the_old_and_keeps_the_old_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.key");
        let (k1, _) = keys::load_or_create(&path).unwrap();
        let r = rotate(&path, JID, 100, 1000).unwrap();
        let (k2, origin) = keys::load_or_create(&path).unwrap();
        assert_eq!(origin, keys::KeyOrigin::Loaded);
        assert_eq!(r.old, fingerprint(&k1));
        assert_eq!(r.new, fingerprint(&k2));
        assert_ne!(r.old, r.new);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // The old key is kept, mode 0600.
        let (kept, _) = keys::load_or_create(&r.old_key_file).unwrap();
        assert_eq!(kept.public(), k1.public());
        let list = load_announcements(&path, JID, 1000).unwrap();
        assert_eq!(list.len(), 1);
        let a = &list[0];
        assert_eq!(a.old_public, k1.public().encode());
        assert_eq!(&a.new_fingerprint, r.new.as_bytes());
        assert_eq!(a.not_after, 1100);
        assert!(a.verify(JID));
        assert!(!a.verify("prekey.other.org"), "the JID is signed");
        assert_eq!(
            Announcement::from_disco_name(&a.disco_name()).as_ref(),
            Some(a)
        );
        // A second rotation within the period keeps the first announcement: a chain.
        let r2 = rotate(&path, JID, 100, 1050).unwrap();
        let list = load_announcements(&path, JID, 1050).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(&list[1].new_fingerprint, r2.new.as_bytes());
        assert_eq!(list[1].old_public, k2.public().encode());
    }

    #[test]
    fn expired_announcements_and_old_keys_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.key");
        keys::load_or_create(&path).unwrap();
        let r = rotate(&path, JID, 100, 1000).unwrap();
        assert_eq!(load_announcements(&path, JID, 1100).unwrap().len(), 1);
        assert!(load_announcements(&path, JID, 1101).unwrap().is_empty());
        assert!(!r.old_key_file.exists(), "old key deleted after the period");
        assert!(!rotation_path(&path).exists());
        assert!(load_announcements(&path, JID, 1101).unwrap().is_empty());
    }

    #[test]
    fn rotating_without_a_key_or_with_a_tampered_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.key");
        assert!(matches!(
            rotate(&path, JID, 100, 1000),
            Err(KeyError::Io { .. })
        ));
        assert!(!path.exists(), "no key created by a rotation");
        keys::load_or_create(&path).unwrap();
        rotate(&path, JID, 100, 1000).unwrap();
        let rp = rotation_path(&path);
        let text = fs::read_to_string(&rp).unwrap();
        // Flip one hex digit of the signature.
        let mut t = text.trim_end().to_owned();
        let last = t.pop().unwrap();
        t.push(if last == '0' { '1' } else { '0' });
        fs::write(&rp, format!("{t}\n")).unwrap();
        assert!(matches!(
            load_announcements(&path, JID, 1000),
            Err(KeyError::Malformed(_))
        ));
    }
}
