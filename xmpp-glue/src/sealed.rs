//! Saved state at rest, the one home of "secret → keys → sealed bytes": Argon2id from a
//! passphrase (or a raw 32-byte key), XChaCha20-Poly1305 over otr4's own encrypted export.
//! The [`store`](crate::store) directory and the C/Python save blobs (otr4-ffi, otr4-uniffi)
//! both write this format.
//!
//! # Format (version 1, big-endian integers; docs/bindings.md §"Saved state")
//!
//! ```text
//! magic    8   "OTR4SAVE"
//! version  1   1
//! level    1   1 engine (XMPP level), 2 session
//! secret   1   1 passphrase, 2 raw 32-byte key
//! m_cost   4   Argon2id memory in KiB   (passphrase: 19456 = 19 MiB; key: 8)
//! t_cost   4   Argon2id passes          (passphrase: 2;               key: 1)
//! p_cost   4   Argon2id lanes           (1)
//! salt     16  random
//! check    32  bytes 32..64 of the Argon2id output (tells a wrong secret from tampering)
//! nonce    24  random, fresh per save
//! ct_len   8   length of the ciphertext
//! ct       ct_len  XChaCha20-Poly1305(key = output 0..32, nonce, AAD = every byte above)
//! ```
//!
//! `output = Argon2id(secret, salt, m_cost, t_cost, p_cost, 96 bytes)`: bytes 0..32 the
//! AEAD key, 32..64 the check value, 64..96 the key of otr4's inner export
//! (`Client::export`, which takes a key, never a passphrase; its own encrypt-then-MAC). A raw
//! key is already uniform, so it runs Argon2id at the minimum cost, only to separate the three
//! keys.
//!
//! **Parameters.** A passphrase costs OWASP's first Argon2id recommendation (Password
//! Storage Cheat Sheet: m = 19 MiB, t = 2, p = 1): a stolen store must be attacked at that
//! price per guess, memory-hard so a GPU gains little, while one unlock stays well under a
//! second on a phone: measured 50 ms median (35–93 ms, 3 × 9 unlocks) on this project's
//! 2-core machine under load (load average 5), 2026-12-07, with `cargo run -p xmpp-glue
//! --example unlock_time` (Argon2 is optimised in dev builds too). One lane, as the unlock
//! runs on the caller's thread. Loading refuses costs over 256 MiB / 16
//! passes / 4 lanes, so a forged header cannot make us allocate more.
//!
//! A [`SealKey`] is derived once per unlock and seals any number of saves (a fresh nonce
//! each): the C blob takes a fresh salt per save ([`seal`]); the store keeps its salt for
//! its life, so a save costs no Argon2id.
//!
//! Errors are distinct ([`SealError`]): not a blob, other level or version; cut off; wrong
//! secret (the check value differs); modified (the check value matches, the AEAD tag does
//! not). Modifying the salt, the costs or the check value itself reads as a wrong secret.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::Engine;

/// The magic at the start of sealed bytes.
pub const MAGIC: [u8; 8] = *b"OTR4SAVE";
/// The format version written and read.
pub const VERSION: u8 = 1;
/// Argon2id memory cost for passphrases, KiB (OWASP: 19 MiB).
pub const PASSPHRASE_M_COST: u32 = 19 * 1024;
/// Argon2id passes for passphrases (OWASP: 2).
pub const PASSPHRASE_T_COST: u32 = 2;
/// Argon2id lanes.
pub const P_COST: u32 = 1;
/// Bytes of a raw key.
pub const KEY_LEN: usize = 32;
const SALT_LEN: usize = 16;
const CHECK_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const MAX_M_COST: u32 = 256 * 1024;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 4;
/// Bytes before the ciphertext.
pub const HEADER_LEN: usize = 8 + 3 + 12 + SALT_LEN + CHECK_LEN + NONCE_LEN + 8;
const TAG_LEN: usize = 16;

/// What the sealed bytes hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// An XMPP-level engine (otr4 client and glue state; the store's `device.otr4`).
    Engine = 1,
    /// A session-level otr4 client.
    Session = 2,
}

/// The caller's secret.
#[derive(Clone, Copy)]
pub enum Secret<'a> {
    /// A passphrase (any bytes, at least one).
    Passphrase(&'a [u8]),
    /// A raw 32-byte key.
    Key(&'a [u8; KEY_LEN]),
}

impl core::fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Secret::Passphrase(_) => f.write_str("Secret::Passphrase(..)"),
            Secret::Key(_) => f.write_str("Secret::Key(..)"),
        }
    }
}

impl Secret<'_> {
    fn code(&self) -> u8 {
        match self {
            Secret::Passphrase(_) => 1,
            Secret::Key(_) => 2,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Secret::Passphrase(p) => p,
            Secret::Key(k) => &k[..],
        }
    }

    fn costs(&self) -> (u32, u32, u32) {
        match self {
            Secret::Passphrase(_) => (PASSPHRASE_M_COST, PASSPHRASE_T_COST, P_COST),
            Secret::Key(_) => (Params::MIN_M_COST, Params::MIN_T_COST, P_COST),
        }
    }
}

/// Why sealed bytes could not be made or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The passphrase is empty.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// Not sealed state of this level and version.
    #[error("{0}")]
    NotSealed(String),
    /// The bytes end early.
    #[error("the saved state is cut off")]
    Truncated,
    /// The passphrase or key is not the one it was saved with.
    #[error("wrong passphrase or key")]
    WrongSecret,
    /// Saved with a passphrase and opened with a key, or the reverse.
    #[error(
        "wrong secret: the state was saved with a passphrase and opened with a key, or the reverse"
    )]
    WrongSecretKind,
    /// The secret is right, the bytes were modified.
    #[error("the saved state was modified ({0})")]
    Tampered(&'static str),
    /// Argon2id or the AEAD refused its input (cannot happen with the constants above).
    #[error("sealing failed: {0}")]
    Internal(String),
}

/// The keys derived from one secret and salt: seals and opens with a fresh nonce per save.
pub struct SealKey {
    level: Level,
    code: u8,
    costs: (u32, u32, u32),
    salt: [u8; SALT_LEN],
    aead: Zeroizing<[u8; 32]>,
    check: Zeroizing<[u8; CHECK_LEN]>,
    inner: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SealKey")
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

fn check_secret(secret: &Secret<'_>) -> Result<(), SealError> {
    if secret.bytes().is_empty() {
        return Err(SealError::EmptyPassphrase);
    }
    Ok(())
}

/// The fixed fields of a header.
struct Header<'a> {
    code: u8,
    costs: (u32, u32, u32),
    salt: &'a [u8],
    check: &'a [u8],
    nonce: &'a [u8],
    ct_len: u64,
    /// Every header byte (the AAD).
    bytes: &'a [u8],
    /// What follows the header.
    rest: &'a [u8],
}

/// A reader over the header.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SealError> {
        let (a, b) = self.0.split_at_checked(n).ok_or(SealError::Truncated)?;
        self.0 = b;
        Ok(a)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SealError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, SealError> {
        self.array().map(u32::from_be_bytes)
    }
}

fn parse_header(level: Level, blob: &[u8]) -> Result<Header<'_>, SealError> {
    let n = blob.len().min(MAGIC.len());
    if blob.get(..n) != MAGIC.get(..n) || blob.is_empty() {
        return Err(SealError::NotSealed("not an otr4 save blob".into()));
    }
    let mut c = Cursor(blob);
    c.take(MAGIC.len())?;
    let [version, lvl, code] = c.array()?;
    if version != VERSION {
        return Err(SealError::NotSealed(format!(
            "unsupported save blob version {version}"
        )));
    }
    if lvl != level as u8 {
        return Err(SealError::NotSealed(
            "a save blob of the other level (engine vs session)".into(),
        ));
    }
    let costs = (c.u32()?, c.u32()?, c.u32()?);
    let salt = c.take(SALT_LEN)?;
    let check = c.take(CHECK_LEN)?;
    let nonce = c.take(NONCE_LEN)?;
    let ct_len = u64::from_be_bytes(c.array()?);
    let bytes = blob.get(..HEADER_LEN).ok_or(SealError::Truncated)?;
    let (m, t, p) = costs;
    let low = m < Params::MIN_M_COST || t < Params::MIN_T_COST || p < Params::MIN_P_COST;
    if low || m < 8 * p || m > MAX_M_COST || t > MAX_T_COST || p > MAX_P_COST {
        return Err(SealError::NotSealed(
            "save blob parameters out of range".into(),
        ));
    }
    if code != 1 && code != 2 {
        return Err(SealError::NotSealed(
            "save blob parameters out of range".into(),
        ));
    }
    Ok(Header {
        code,
        costs,
        salt,
        check,
        nonce,
        ct_len,
        bytes,
        rest: c.0,
    })
}

impl SealKey {
    fn derive(
        level: Level,
        secret: &Secret<'_>,
        salt: [u8; SALT_LEN],
        costs: (u32, u32, u32),
    ) -> Result<SealKey, SealError> {
        check_secret(secret)?;
        let bad = |e: argon2::Error| SealError::Internal(format!("Argon2id: {e}"));
        let (m, t, p) = costs;
        let params = Params::new(m, t, p, Some(96)).map_err(bad)?;
        let mut out = Zeroizing::new([0u8; 96]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(secret.bytes(), &salt, &mut out[..])
            .map_err(bad)?;
        let mut k = SealKey {
            level,
            code: secret.code(),
            costs,
            salt,
            aead: Zeroizing::new([0; 32]),
            check: Zeroizing::new([0; CHECK_LEN]),
            inner: Zeroizing::new([0; 32]),
        };
        let (a, rest) = out.split_at(32);
        let (c, i) = rest.split_at(CHECK_LEN);
        k.aead.copy_from_slice(a);
        k.check.copy_from_slice(c);
        k.inner.copy_from_slice(i);
        Ok(k)
    }

    /// Keys for new sealed state of `level`: a fresh salt, the costs of the secret's kind
    /// (one Argon2id run).
    pub fn new<R: CryptoRng + ?Sized>(
        level: Level,
        secret: &Secret<'_>,
        rng: &mut R,
    ) -> Result<SealKey, SealError> {
        let mut salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut salt);
        SealKey::derive(level, secret, salt, secret.costs())
    }

    /// The keys `blob` was sealed with, derived from `secret` with the blob's salt and costs
    /// (one Argon2id run): [`SealError::WrongSecret`] if the secret is not the one it was
    /// sealed with.
    pub fn unlock(level: Level, secret: &Secret<'_>, blob: &[u8]) -> Result<SealKey, SealError> {
        check_secret(secret)?;
        let h = parse_header(level, blob)?;
        if h.code != secret.code() {
            return Err(SealError::WrongSecretKind);
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(h.salt);
        let k = SealKey::derive(level, secret, salt, h.costs)?;
        if !bool::from(k.check[..].ct_eq(h.check)) {
            return Err(SealError::WrongSecret);
        }
        Ok(k)
    }

    /// The key of otr4's inner export (`Client::export`, `Engine::export`).
    pub fn inner_key(&self) -> &[u8; KEY_LEN] {
        &self.inner
    }

    /// Seals `plain` (a fresh random nonce).
    pub fn seal<R: CryptoRng + ?Sized>(
        &self,
        plain: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let ct_len = plain.len() + TAG_LEN;
        let mut out = Vec::with_capacity(HEADER_LEN + ct_len);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[VERSION, self.level as u8, self.code]);
        let (m, t, p) = self.costs;
        for v in [m, t, p] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.check[..]);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&(ct_len as u64).to_be_bytes());
        let ct = self
            .cipher()?
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: &out,
                },
            )
            .map_err(|_| SealError::Internal("AEAD encryption failed".into()))?;
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn cipher(&self) -> Result<XChaCha20Poly1305, SealError> {
        XChaCha20Poly1305::new_from_slice(&self.aead[..])
            .map_err(|_| SealError::Internal("AEAD key length".into()))
    }

    /// Opens `blob` sealed with these keys (same salt and costs; otherwise
    /// [`SealError::WrongSecret`]).
    pub fn open(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let h = parse_header(self.level, blob)?;
        if h.code != self.code {
            return Err(SealError::WrongSecretKind);
        }
        if h.costs != self.costs
            || h.salt != self.salt.as_slice()
            || !bool::from(self.check[..].ct_eq(h.check))
        {
            return Err(SealError::WrongSecret);
        }
        match usize::try_from(h.ct_len) {
            Ok(l) if l == h.rest.len() => {}
            Ok(l) if l > h.rest.len() => return Err(SealError::Truncated),
            _ => return Err(SealError::Tampered("bytes after its end")),
        }
        let mut n24 = [0u8; NONCE_LEN];
        n24.copy_from_slice(h.nonce);
        self.cipher()?
            .decrypt(
                &XNonce::from(n24),
                Payload {
                    msg: h.rest,
                    aad: h.bytes,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Tampered("authentication failed"))
    }
}

/// Seals what `inner` writes (given the inner export key) under `secret` with a fresh salt.
pub fn seal<R: CryptoRng + ?Sized>(
    level: Level,
    secret: &Secret<'_>,
    rng: &mut R,
    inner: impl FnOnce(&[u8; KEY_LEN], &mut R) -> Zeroizing<Vec<u8>>,
) -> Result<Vec<u8>, SealError> {
    let key = SealKey::new(level, secret, rng)?;
    let plain = inner(key.inner_key(), rng);
    key.seal(&plain, rng)
}

/// What [`open`] returns: the plaintext and the key of the inner otr4 export.
pub type Opened = (Zeroizing<Vec<u8>>, Zeroizing<[u8; KEY_LEN]>);

/// Opens `blob` of `level` with `secret`: the plaintext and the inner export key.
pub fn open(level: Level, secret: &Secret<'_>, blob: &[u8]) -> Result<Opened, SealError> {
    let key = SealKey::unlock(level, secret, blob)?;
    let plain = key.open(blob)?;
    Ok((plain, key.inner.clone()))
}

/// Appends `DATA(bytes)` (a 4-byte big-endian length and the bytes).
fn put_data(out: &mut Vec<u8>, bytes: &[u8]) {
    let n = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(bytes.get(..n as usize).unwrap_or(bytes));
}

/// Reads `DATA(bytes)` from the front of `input`.
fn get_data<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], SealError> {
    let mut c = Cursor(input);
    let n = usize::try_from(c.u32()?).map_err(|_| SealError::Truncated)?;
    let d = c.take(n)?;
    *input = c.0;
    Ok(d)
}

/// The plaintext of a sealed [`Level::Engine`]: `DATA(jid) || DATA(label) || DATA(otr4
/// export under inner) || glue state JSON` (device lists, trust, prekey-server pins, archive
/// position).
pub fn engine_plaintext<R: CryptoRng + ?Sized>(
    engine: &Engine,
    inner: &[u8; KEY_LEN],
    rng: &mut R,
) -> Zeroizing<Vec<u8>> {
    let (client, state) = engine.export(inner, rng);
    let state = Zeroizing::new(state);
    let mut out = Zeroizing::new(Vec::with_capacity(
        16 + engine.jid().len() + engine.label().len() + client.len() + state.len(),
    ));
    put_data(&mut out, engine.jid().as_bytes());
    put_data(&mut out, engine.label().as_bytes());
    put_data(&mut out, &client);
    out.extend_from_slice(&state);
    out
}

/// The fields of an [`engine_plaintext`].
#[derive(Debug)]
pub struct EngineParts<'a> {
    /// The account's bare JID.
    pub jid: &'a str,
    /// The device's label.
    pub label: &'a str,
    /// otr4's encrypted export (`Engine::import` opens it with the inner key).
    pub client: &'a [u8],
    /// The glue state JSON.
    pub state: &'a [u8],
}

/// Splits an [`engine_plaintext`] (authenticated already, so a bad field means a bug or a
/// forged secret: [`SealError::Tampered`]).
pub fn engine_parts(plain: &[u8]) -> Result<EngineParts<'_>, SealError> {
    let mut r = plain;
    fn text<'a>(b: &'a [u8], what: &'static str) -> Result<&'a str, SealError> {
        core::str::from_utf8(b).map_err(|_| SealError::Tampered(what))
    }
    let jid = text(get_data(&mut r)?, "the JID is not UTF-8")?;
    let label = text(get_data(&mut r)?, "the label is not UTF-8")?;
    let client = get_data(&mut r)?;
    Ok(EngineParts {
        jid,
        label,
        client,
        state: r,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn sealed(secret: &Secret<'_>, rng: &mut StdRng) -> Vec<u8> {
        seal(Level::Session, secret, rng, |k, _| {
            let mut v = b"inner ".to_vec();
            v.extend_from_slice(k);
            Zeroizing::new(v)
        })
        .unwrap()
    }

    #[test]
    fn round_trip_and_distinct_errors() {
        let mut rng = StdRng::seed_from_u64(1);
        let key = [9u8; 32];
        for secret in [Secret::Passphrase(b"correct horse"), Secret::Key(&key)] {
            let b = sealed(&secret, &mut rng);
            let (plain, inner) = open(Level::Session, &secret, &b).unwrap();
            assert_eq!(&plain[..6], b"inner ");
            assert_eq!(&plain[6..], &inner[..]);
            let e = |r: Result<Opened, SealError>| r.unwrap_err();
            assert!(matches!(
                e(open(Level::Engine, &secret, &b)),
                SealError::NotSealed(_)
            ));
            let wrong_kind = if matches!(secret, Secret::Key(_)) {
                SealError::WrongSecretKind
            } else {
                SealError::WrongSecret
            };
            assert_eq!(
                e(open(Level::Session, &Secret::Passphrase(b"wrong"), &b)),
                wrong_kind
            );
            for cut in [1, 5, 20, HEADER_LEN - 1, HEADER_LEN, b.len() - 1] {
                let r = e(open(Level::Session, &secret, &b[..cut]));
                assert_eq!(r, SealError::Truncated, "cut at {cut}");
            }
            let mut t = b.clone();
            *t.last_mut().unwrap() ^= 1;
            assert!(matches!(
                e(open(Level::Session, &secret, &t)),
                SealError::Tampered(_)
            ));
            let mut t = b.clone();
            t.push(0);
            assert!(matches!(
                e(open(Level::Session, &secret, &t)),
                SealError::Tampered(_)
            ));
            // The salt is under the check value: a changed salt reads as a wrong secret.
            let mut t = b.clone();
            t[8 + 3 + 12] ^= 1;
            assert_eq!(e(open(Level::Session, &secret, &t)), SealError::WrongSecret);
        }
    }

    #[test]
    fn one_key_many_saves_fresh_nonces() {
        let mut rng = StdRng::seed_from_u64(2);
        let k = SealKey::new(Level::Engine, &Secret::Passphrase(b"pw"), &mut rng).unwrap();
        let a = k.seal(b"first", &mut rng).unwrap();
        let b = k.seal(b"second", &mut rng).unwrap();
        assert_ne!(a[..HEADER_LEN], b[..HEADER_LEN], "nonce differs");
        let again = SealKey::unlock(Level::Engine, &Secret::Passphrase(b"pw"), &b).unwrap();
        assert_eq!(&again.open(&a).unwrap()[..], b"first");
        assert_eq!(&again.open(&b).unwrap()[..], b"second");
        assert_eq!(again.inner_key(), k.inner_key());
        let other = SealKey::new(Level::Engine, &Secret::Passphrase(b"pw"), &mut rng).unwrap();
        assert_eq!(other.open(&a).unwrap_err(), SealError::WrongSecret);
        assert_eq!(
            SealKey::new(Level::Engine, &Secret::Passphrase(b""), &mut rng).unwrap_err(),
            SealError::EmptyPassphrase
        );
    }

    #[test]
    fn data_fields_round_trip() {
        let mut v = Vec::new();
        put_data(&mut v, b"abc");
        put_data(&mut v, b"");
        let mut r = &v[..];
        assert_eq!(get_data(&mut r).unwrap(), b"abc");
        assert_eq!(get_data(&mut r).unwrap(), b"");
        assert_eq!(get_data(&mut r).unwrap_err(), SealError::Truncated);
    }
}
