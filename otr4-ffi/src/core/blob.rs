//! The encrypted save blob of an engine or a session: Argon2id from the caller's passphrase
//! (or a raw 32-byte key), XChaCha20-Poly1305 over otr4's own encrypted export and the glue
//! state, so every byte of the saved state is encrypted and authenticated.
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
//! salt     16  random, fresh per save
//! check    32  bytes 32..64 of the Argon2id output (tells a wrong secret from tampering)
//! nonce    24  random, fresh per save
//! ct_len   8   length of the ciphertext
//! ct       ct_len  XChaCha20-Poly1305(key = output 0..32, nonce, AAD = every byte above)
//! ```
//!
//! `output = Argon2id(secret, salt, m_cost, t_cost, p_cost, 96 bytes)`: bytes 0..32 the
//! AEAD key, 32..64 the check value, 64..96 the key of otr4's inner export
//! (`Client::export`, its own encrypt-then-MAC). A raw key is already uniform, so it runs
//! Argon2id at the minimum cost, only to separate the three keys. The passphrase cost is
//! OWASP's Argon2id recommendation (m = 19 MiB, t = 2, p = 1). Loading refuses costs over
//! 256 MiB / 16 passes / 4 lanes, so a forged blob cannot make us allocate more.
//!
//! Errors are distinct: not a blob / other level or version (`OTR4_NOT_A_BLOB`), cut off
//! (`OTR4_TRUNCATED`), wrong secret (`OTR4_WRONG_KEY`: the check value differs), modified
//! (`OTR4_TAMPERED`: the check value matches, the AEAD tag does not). Modifying the salt,
//! the costs or the check value itself reads as a wrong secret.
#![forbid(unsafe_code)]

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand_core::Rng as _;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::env::Rng;
use super::status::{Error, Result, otr4_status};

/// The blob's magic.
pub const MAGIC: [u8; 8] = *b"OTR4SAVE";
/// The format version written and read.
pub const VERSION: u8 = 1;
/// Argon2id memory cost for passphrases, KiB.
pub const PASSPHRASE_M_COST: u32 = 19 * 1024;
/// Argon2id passes for passphrases.
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

/// Which handle type a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// An XMPP-level engine.
    Engine = 1,
    /// A session-level client.
    Session = 2,
}

/// The caller's secret.
#[derive(Debug, Clone, Copy)]
pub enum Secret<'a> {
    /// A passphrase (any bytes, at least one).
    Passphrase(&'a [u8]),
    /// A raw 32-byte key.
    Key(&'a [u8; KEY_LEN]),
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
}

/// The keys derived for one blob.
struct Keys {
    aead: Zeroizing<[u8; 32]>,
    check: Zeroizing<[u8; CHECK_LEN]>,
    inner: Zeroizing<[u8; 32]>,
}

fn derive(secret: &Secret<'_>, salt: &[u8], m: u32, t: u32, p: u32) -> Result<Keys> {
    let bad = |e: argon2::Error| Error::new(otr4_status::OTR4_NOT_A_BLOB, format!("Argon2id: {e}"));
    let params = Params::new(m, t, p, Some(96)).map_err(bad)?;
    let mut out = Zeroizing::new([0u8; 96]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(secret.bytes(), salt, &mut out[..])
        .map_err(bad)?;
    let mut k = Keys {
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

fn costs(secret: &Secret<'_>) -> (u32, u32, u32) {
    match secret {
        Secret::Passphrase(_) => (PASSPHRASE_M_COST, PASSPHRASE_T_COST, P_COST),
        Secret::Key(_) => (Params::MIN_M_COST, Params::MIN_T_COST, P_COST),
    }
}

fn check_secret(secret: &Secret<'_>) -> Result<()> {
    if secret.bytes().is_empty() {
        return Err(Error::new(
            otr4_status::OTR4_INVALID_ARGUMENT,
            "the passphrase is empty",
        ));
    }
    Ok(())
}

/// Seals what `inner` writes (given the inner export key) into a blob.
pub fn seal(
    level: Level,
    secret: &Secret<'_>,
    rng: &mut Rng,
    inner: impl FnOnce(&[u8; 32], &mut Rng) -> Vec<u8>,
) -> Result<Vec<u8>> {
    check_secret(secret)?;
    let (m, t, p) = costs(secret);
    let mut salt = [0u8; SALT_LEN];
    rng.fill_bytes(&mut salt);
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let keys = derive(secret, &salt, m, t, p)?;
    let plain = Zeroizing::new(inner(&keys.inner, rng));
    let ct_len = plain.len() + 16;
    let mut out = Vec::with_capacity(HEADER_LEN + ct_len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, level as u8, secret.code()]);
    for v in [m, t, p] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&salt);
    out.extend_from_slice(&keys.check[..]);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&(ct_len as u64).to_be_bytes());
    let cipher = XChaCha20Poly1305::new_from_slice(&keys.aead[..])
        .map_err(|_| Error::new(otr4_status::OTR4_PANIC, "AEAD key length"))?;
    let ct = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &plain,
                aad: &out,
            },
        )
        .map_err(|_| Error::new(otr4_status::OTR4_PANIC, "AEAD encryption failed"))?;
    out.extend_from_slice(&ct);
    Ok(out)
}

/// A reader over the header.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::new(
                otr4_status::OTR4_TRUNCATED,
                "the blob is cut off",
            ));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([
            *b.first().unwrap_or(&0),
            *b.get(1).unwrap_or(&0),
            *b.get(2).unwrap_or(&0),
            *b.get(3).unwrap_or(&0),
        ]))
    }
}

/// What [`open`] returns: the plaintext and the key of the inner otr4 export.
pub type Opened = (Zeroizing<Vec<u8>>, Zeroizing<[u8; 32]>);

/// Opens a blob of `level`: the plaintext and the inner export key.
pub fn open(level: Level, secret: &Secret<'_>, blob: &[u8]) -> Result<Opened> {
    check_secret(secret)?;
    let not_blob = |m: &str| Error::new(otr4_status::OTR4_NOT_A_BLOB, m);
    let n = blob.len().min(MAGIC.len());
    if blob.get(..n) != MAGIC.get(..n) || blob.is_empty() {
        return Err(not_blob("not an otr4 save blob"));
    }
    let mut c = Cursor(blob);
    c.take(MAGIC.len())?;
    let fixed = c.take(3)?;
    let [version, lvl, kind] = [0, 1, 2].map(|i| fixed.get(i).copied().unwrap_or(0));
    if version != VERSION {
        return Err(not_blob(&format!(
            "unsupported save blob version {version}"
        )));
    }
    if lvl != level as u8 {
        return Err(not_blob(
            "a save blob of the other level (engine vs session)",
        ));
    }
    let (m, t, p) = (c.u32()?, c.u32()?, c.u32()?);
    let salt = c.take(SALT_LEN)?;
    let check = c.take(CHECK_LEN)?;
    let nonce = c.take(NONCE_LEN)?;
    let len_bytes = c.take(8)?;
    let mut lb = [0u8; 8];
    lb.copy_from_slice(len_bytes);
    let ct_len = u64::from_be_bytes(lb);
    let header = blob
        .get(..HEADER_LEN)
        .ok_or_else(|| not_blob("short header"))?;
    if m > MAX_M_COST || t > MAX_T_COST || p > MAX_P_COST || kind != 1 && kind != 2 {
        return Err(not_blob("save blob parameters out of range"));
    }
    if kind != secret.code() {
        return Err(Error::new(
            otr4_status::OTR4_WRONG_KEY,
            "wrong secret: the blob was saved with a passphrase and opened with a key, or the reverse",
        ));
    }
    let keys = derive(secret, salt, m, t, p)?;
    if !bool::from(keys.check[..].ct_eq(check)) {
        return Err(Error::new(
            otr4_status::OTR4_WRONG_KEY,
            "wrong passphrase or key",
        ));
    }
    let rest = c.0;
    match usize::try_from(ct_len) {
        Ok(l) if l == rest.len() => {}
        Ok(l) if l > rest.len() => {
            return Err(Error::new(
                otr4_status::OTR4_TRUNCATED,
                "the blob is cut off",
            ));
        }
        _ => {
            return Err(Error::new(
                otr4_status::OTR4_TAMPERED,
                "the blob has bytes after its end",
            ));
        }
    }
    let cipher = XChaCha20Poly1305::new_from_slice(&keys.aead[..])
        .map_err(|_| Error::new(otr4_status::OTR4_PANIC, "AEAD key length"))?;
    let mut n24 = [0u8; NONCE_LEN];
    n24.copy_from_slice(nonce);
    let plain = cipher
        .decrypt(
            &XNonce::from(n24),
            Payload {
                msg: rest,
                aad: header,
            },
        )
        .map_err(|_| {
            Error::new(
                otr4_status::OTR4_TAMPERED,
                "the saved state was modified (authentication failed)",
            )
        })?;
    Ok((Zeroizing::new(plain), keys.inner))
}

/// Appends `DATA(bytes)` (a 4-byte length and the bytes).
pub fn put_data(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Reads `DATA(bytes)` from the front of `input`.
pub fn get_data<'a>(input: &mut &'a [u8]) -> Result<&'a [u8]> {
    let mut c = Cursor(input);
    let n = c.u32()? as usize;
    let d = c.take(n)?;
    *input = c.0;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(secret: &Secret<'_>) -> Vec<u8> {
        seal(Level::Session, secret, &mut Rng::Os, |k, _| {
            let mut v = b"inner ".to_vec();
            v.extend_from_slice(k);
            v
        })
        .unwrap()
    }

    #[test]
    #[cfg_attr(miri, ignore = "Argon2id is too slow under Miri")]
    fn round_trip_and_distinct_errors() {
        let key = [9u8; 32];
        for secret in [Secret::Passphrase(b"correct horse"), Secret::Key(&key)] {
            let b = sealed(&secret);
            let (plain, inner) = open(Level::Session, &secret, &b).unwrap();
            assert_eq!(&plain[..6], b"inner ");
            assert_eq!(&plain[6..], &inner[..]);
            let st = |r: Result<Opened>| r.unwrap_err().status;
            assert_eq!(
                st(open(Level::Engine, &secret, &b)),
                otr4_status::OTR4_NOT_A_BLOB
            );
            assert_eq!(
                st(open(Level::Session, &Secret::Passphrase(b"wrong"), &b)),
                otr4_status::OTR4_WRONG_KEY
            );
            assert_eq!(
                st(open(Level::Session, &Secret::Key(&[8; 32]), &b)),
                otr4_status::OTR4_WRONG_KEY
            );
            for cut in [1, 5, 20, HEADER_LEN - 1, HEADER_LEN, b.len() - 1] {
                assert_eq!(
                    st(open(Level::Session, &secret, &b[..cut])),
                    otr4_status::OTR4_TRUNCATED,
                    "cut at {cut}"
                );
            }
            let mut t = b.clone();
            *t.last_mut().unwrap() ^= 1;
            assert_eq!(
                st(open(Level::Session, &secret, &t)),
                otr4_status::OTR4_TAMPERED
            );
            let mut t = b.clone();
            t[HEADER_LEN + 2] ^= 0x80;
            assert_eq!(
                st(open(Level::Session, &secret, &t)),
                otr4_status::OTR4_TAMPERED
            );
            let mut t = b.clone();
            t.push(0);
            assert_eq!(
                st(open(Level::Session, &secret, &t)),
                otr4_status::OTR4_TAMPERED
            );
            assert_eq!(
                st(open(Level::Session, &secret, b"garbage!!")),
                otr4_status::OTR4_NOT_A_BLOB
            );
        }
    }

    #[test]
    fn data_fields_round_trip() {
        let mut v = Vec::new();
        put_data(&mut v, b"abc");
        put_data(&mut v, b"");
        let mut r = &v[..];
        assert_eq!(get_data(&mut r).unwrap(), b"abc");
        assert_eq!(get_data(&mut r).unwrap(), b"");
        assert_eq!(
            get_data(&mut r).unwrap_err().status,
            otr4_status::OTR4_TRUNCATED
        );
    }
}
