//! How the conversation layer's state writes itself into an export and reads itself back: the
//! [`Persist`] trait, [`PersistError`], and the small encodings the persisted types share.
//!
//! Compare vodozemac's pickles: every persisted type implements [`Persist`] next to its
//! definition (`Policy` in `policy`, `Queued` in `context`, `Session` in `session`,
//! `Conversation` in `state`, `Peer` in `peer`), through the crate's one codec
//! ([`Writer`], [`Reader`]), so a new field is one edit in one file. `Account` and `Client`
//! have inherent `persist`/`restore` of the same shape because the caller's prekey store is
//! written inside them and handed back beside them. The envelope and the byte layout of the
//! whole export are in `persist`, which sits above every persisted type (no import cycle).
//!
//! Values are written into [`SecretBytes`], whose growth wipes the buffer it leaves, so no
//! length has to be computed ahead of the write. Reads never allocate from a length field:
//! lists grow as their elements are read.

use alloc::string::String;
use alloc::vec::Vec;

use zeroize::Zeroizing;

use crate::InstanceTag;
use crate::crypto::ed448::{KeyPair, SYMMETRIC_KEY_LEN, SymmetricKey};
use crate::ratchet::SecretBytes;
use crate::wire::codec::{DecodeError, Reader, Writer};

/// Why an export could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The bytes do not start with the expected magic.
    #[error("not an otr4 export of this kind")]
    BadMagic,
    /// The format version is not supported.
    #[error("unsupported export format version {0}")]
    UnsupportedVersion(u16),
    /// The tag did not verify: a wrong key, or the bytes were modified.
    #[error("wrong persistence key, or the export was modified")]
    Authentication,
    /// The envelope or the authenticated contents are malformed.
    #[error("malformed export: {0}")]
    Malformed(DecodeError),
    /// The contents are well-formed but inconsistent.
    #[error("invalid exported state: {0}")]
    Invalid(&'static str),
}

impl From<DecodeError> for PersistError {
    fn from(e: DecodeError) -> PersistError {
        PersistError::Malformed(e)
    }
}

/// State that is part of an export (format in `persist`'s documentation).
pub(crate) trait Persist: Sized {
    /// What reading needs besides the bytes: what the enclosing value already knows and
    /// the restored value must agree with (e.g. the instance tags a session carries).
    type Context<'a>;

    /// Appends the value in format `version`.
    fn persist(&self, w: &mut SecretBytes, version: u16);

    /// Reads a value [`Persist::persist`] wrote in format `version`, checking every field.
    fn restore(
        r: &mut Reader<'_>,
        version: u16,
        cx: Self::Context<'_>,
    ) -> Result<Self, PersistError>;
}

/// Writes `INT count || items`.
pub(crate) fn persist_all<T: Persist>(w: &mut SecretBytes, items: &[T], version: u16) {
    w.u32(u32_of(items.len()));
    for item in items {
        item.persist(w, version);
    }
}

/// Reads `INT count || items` as written by [`persist_all`]; the vector grows as elements
/// are read, never from the count alone.
pub(crate) fn restore_all<'a, T: Persist>(
    r: &mut Reader<'_>,
    version: u16,
    cx: T::Context<'a>,
    what: &'static str,
) -> Result<Vec<T>, PersistError>
where
    T::Context<'a>: Copy,
{
    let n = r.u32(what)?;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(T::restore(r, version, cx)?);
    }
    Ok(out)
}

/// "opt": BYTE 0/1, then the value (zero if absent).
pub(crate) fn persist_opt_i64(w: &mut SecretBytes, v: Option<i64>) {
    w.u8(u8::from(v.is_some())).i64(v.unwrap_or(0));
}

/// A BYTE that must be 0 or 1.
pub(crate) fn read_flag(r: &mut Reader<'_>, what: &'static str) -> Result<bool, PersistError> {
    match r.u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(PersistError::Invalid(what)),
    }
}

/// Reads [`persist_opt_i64`]'s encoding.
pub(crate) fn read_opt_i64(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<Option<i64>, PersistError> {
    let present = read_flag(r, what)?;
    let v = r.i64(what)?;
    Ok(present.then_some(v))
}

/// A length or count as an INT (every persisted one is far below `u32::MAX`).
pub(crate) fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// An INT as a length or count.
pub(crate) fn usize_of(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// DATA holding UTF-8 text.
pub(crate) fn read_string(r: &mut Reader<'_>, what: &'static str) -> Result<String, PersistError> {
    let b = r.data(what)?;
    core::str::from_utf8(b)
        .map(String::from)
        .map_err(|_| PersistError::Invalid(what))
}

/// An instance tag, which must be a valid sender tag (`>= 0x100`).
pub(crate) fn read_tag(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<InstanceTag, PersistError> {
    let t = InstanceTag(r.u32(what)?);
    if !t.is_valid_sender() {
        return Err(PersistError::Invalid(what));
    }
    Ok(t)
}

/// A key pair from its 57-byte symmetric key.
pub(crate) fn read_sym(r: &mut Reader<'_>, what: &'static str) -> Result<KeyPair, PersistError> {
    let mut b = Zeroizing::new([0u8; SYMMETRIC_KEY_LEN]);
    b.copy_from_slice(r.take(SYMMETRIC_KEY_LEN, what)?);
    Ok(KeyPair::from_symmetric_key(SymmetricKey::from_bytes(*b)))
}
