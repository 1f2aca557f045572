//! OTRv3 long-term keys: the DSA public key (PUBKEY), the DSA signature (SIG) and the
//! fingerprint (Protocol-v3.html §"Public keys, signatures, and fingerprints").
//!
//! DSA is the RustCrypto `dsa` crate. What OTRv3 signs is a 32-byte HMAC-SHA256 value "which
//! does not need to be hashed again"; libotr passes it to libgcrypt as a plain integer, so
//! the value signed is `M mod q` (not FIPS 186's leftmost 160 bits; docs/spec-notes.md).

use alloc::vec::Vec;

use crypto_bigint::NonZero;
use dsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use dsa::{BoxedUint, Components, SigningKey, VerifyingKey};
use sha1::{Digest, Sha1};

use crate::debug::{Hex, redacted_debug};
use crate::wire::codec::{DecodeError, Reader, Writer};

/// The PUBKEY type of a DSA key.
pub const DSA_PUBKEY_TYPE: u16 = 0x0000;
/// Bits of the DSA prime `p` (libotr generates and accepts 1024-bit keys).
pub const DSA_P_BITS: u32 = 1024;
/// Bits of the DSA subgroup order `q`.
pub const DSA_Q_BITS: u32 = 160;
/// Bytes of a SIG: `r` and `s`, 20 bytes each.
pub const SIG_LEN: usize = 40;
/// Bytes of a fingerprint (SHA-1).
pub const FINGERPRINT_LEN: usize = 20;

const P_BYTES: usize = (DSA_P_BITS / 8) as usize;
const Q_BYTES: usize = (DSA_Q_BITS / 8) as usize;

/// A DSA public key as sent in the AKE (PUBKEY), validated: `p` of at most 1024 bits,
/// `q` of at most 160, `2 <= g < p`, and `y` in the order-`q` subgroup.
#[derive(Clone)]
pub struct DsaPublicKey {
    /// The four MPI bodies `p, q, g, y` as received (minimal), for re-encoding.
    mpis: [Vec<u8>; 4],
    key: VerifyingKey,
}

impl PartialEq for DsaPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.mpis == other.mpis
    }
}
impl Eq for DsaPublicKey {}

redacted_debug!(DsaPublicKey(|s| Hex(&s.fingerprint())));

fn boxed(be: &[u8], bits: u32, what: &'static str) -> Result<BoxedUint, DecodeError> {
    BoxedUint::from_be_slice(be, bits).map_err(|_| DecodeError::BadValue(what))
}

impl DsaPublicKey {
    hazmat_pub! {
        /// Builds and validates a key from the big-endian values `p, q, g, y`.
        fn from_parts(p: &[u8], q: &[u8], g: &[u8], y: &[u8]) -> Result<Self, DecodeError> {
            let strip = |b: &[u8]| -> Vec<u8> {
                let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
                b.get(start..).unwrap_or(&[]).to_vec()
            };
            let mpis = [strip(p), strip(q), strip(g), strip(y)];
            let [p, q, g, y] = &mpis;
            let components = Components::from_components(
                boxed(p, DSA_P_BITS, "DSA p")?,
                boxed(q, DSA_Q_BITS, "DSA q")?,
                boxed(g, DSA_P_BITS, "DSA g")?,
            )
            .map_err(|_| DecodeError::BadValue("DSA parameters"))?;
            let key = VerifyingKey::from_components(components, boxed(y, DSA_P_BITS, "DSA y")?)
                .map_err(|_| DecodeError::BadValue("DSA public value y"))?;
            Ok(DsaPublicKey { mpis, key })
        }
    }

    /// The fingerprint: SHA-1 of the PUBKEY without its type bytes 0x0000
    /// (Protocol-v3.html §"Public keys, signatures, and fingerprints").
    pub fn fingerprint(&self) -> [u8; FINGERPRINT_LEN] {
        let mut w = Vec::new();
        for m in &self.mpis {
            w.mpi(m);
        }
        Sha1::digest(&w).into()
    }

    hazmat_pub! {
        /// Appends the PUBKEY encoding.
        fn write<W: Writer + ?Sized>(&self, out: &mut W) {
            out.u16(DSA_PUBKEY_TYPE);
            for m in &self.mpis {
                out.mpi(m);
            }
        }
    }

    hazmat_pub! {
        /// Reads a PUBKEY (only type 0x0000 exists).
        fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
            let typ = r.u16("PUBKEY type")?;
            if typ != DSA_PUBKEY_TYPE {
                return Err(DecodeError::BadKeyType {
                    what: "PUBKEY",
                    found: typ,
                });
            }
            let p = r.mpi_max("DSA p", P_BYTES)?;
            let q = r.mpi_max("DSA q", Q_BYTES)?;
            let g = r.mpi_max("DSA g", P_BYTES)?;
            let y = r.mpi_max("DSA y", P_BYTES)?;
            DsaPublicKey::from_parts(p, q, g, y)
        }
    }

    hazmat_pub! {
        /// Verifies a SIG over the 32-byte value `m` (Protocol-v3.html §"Reveal Signature
        /// Message": "the signature ... of the 32-byte MB").
        fn verify(&self, m: &[u8; 32], sig: &[u8; SIG_LEN]) -> bool {
            let (r, s) = sig.split_at(Q_BYTES);
            let (Ok(r), Ok(s)) = (
                BoxedUint::from_be_slice(r, DSA_Q_BITS),
                BoxedUint::from_be_slice(s, DSA_Q_BITS),
            ) else {
                return false;
            };
            let Some(sig) = dsa::Signature::from_components(r, s) else {
                return false;
            };
            let z = reduce(m, self.key.components().q());
            self.key.verify_prehash(&z, &sig).is_ok()
        }
    }
}

/// `m mod q` as `Q_BYTES` big-endian bytes: the integer libgcrypt signs when given `m`
/// as a plain MPI (docs/spec-notes.md), in the form the `dsa` crate takes it (a prehash
/// of `q`'s length is used whole).
fn reduce(m: &[u8; 32], q: &NonZero<BoxedUint>) -> [u8; Q_BYTES] {
    let mut out = [0u8; Q_BYTES];
    let Ok(m) = BoxedUint::from_be_slice(m, 256) else {
        return out;
    };
    let rem = m.rem(q);
    let be = rem.to_be_bytes();
    let start = be.len().saturating_sub(Q_BYTES);
    if let Some(tail) = be.get(start..) {
        let off = Q_BYTES - tail.len();
        if let Some(dst) = out.get_mut(off..) {
            dst.copy_from_slice(tail);
        }
    }
    out
}

/// Big-endian `x` in exactly `N` bytes (the value fits: it is below `q`).
fn fixed<const N: usize>(x: &BoxedUint) -> [u8; N] {
    let mut out = [0u8; N];
    let be = x.to_be_bytes();
    let start = be.len().saturating_sub(N);
    if let Some(tail) = be.get(start..) {
        let off = N - tail.len();
        if let Some(dst) = out.get_mut(off..) {
            dst.copy_from_slice(tail);
        }
    }
    out
}

/// The fingerprint of an OTRv3 (DSA) long-term key: SHA-1 of its PUBKEY without the type
/// (Protocol-v3.html §"Public keys, signatures, and fingerprints"). `Display` writes it as
/// libotr and Pidgin show it: five groups of eight upper-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct V3Fingerprint(pub [u8; FINGERPRINT_LEN]);

impl core::fmt::Display for V3Fingerprint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, chunk) in self.0.chunks(4).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            for b in chunk {
                write!(f, "{b:02X}")?;
            }
        }
        Ok(())
    }
}

/// A DSA-1024 private key with its public key.
pub struct DsaPrivateKey {
    key: SigningKey,
    public: DsaPublicKey,
}

redacted_debug!(DsaPrivateKey { public, .. });

/// Why a DSA private key could not be built or used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DsaKeyError {
    /// The values do not form a DSA-1024 key (`x` not in `[1, q)`, or `y != g^x`).
    #[error("the values do not form a DSA-1024 key pair")]
    InvalidKey,
    /// Signing failed (a degenerate nonce; practically impossible).
    #[error("DSA signing failed")]
    SigningFailed,
}

impl DsaPrivateKey {
    /// Generates fresh DSA-1024 domain parameters and a key (slow: a 1024-bit prime search).
    pub fn generate<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Result<Self, DsaKeyError> {
        #[allow(deprecated)] // 1024/160 is what OTRv3 and libotr use.
        let size = dsa::KeySize::DSA_1024_160;
        let Ok(components) = Components::try_generate_from_rng_with_key_size(rng, size);
        let Ok(key) = SigningKey::try_generate_from_rng_with_components(rng, components);
        Self::from_signing_key(key)
    }

    /// A key from its big-endian values `p, q, g, y, x`; checks that `y = g^x mod p`.
    pub fn from_parts(
        p: &[u8],
        q: &[u8],
        g: &[u8],
        y: &[u8],
        x: &[u8],
    ) -> Result<Self, DsaKeyError> {
        let public = DsaPublicKey::from_parts(p, q, g, y).map_err(|_| DsaKeyError::InvalidKey)?;
        let x = zeroize::Zeroizing::new(
            BoxedUint::from_be_slice(x, DSA_Q_BITS).map_err(|_| DsaKeyError::InvalidKey)?,
        );
        let key = SigningKey::from_components(public.key.clone(), (*x).clone())
            .map_err(|_| DsaKeyError::InvalidKey)?;
        let params = crypto_bigint::modular::BoxedMontyParams::new_vartime(
            public.key.components().p().clone(),
        );
        let gx = crypto_bigint::modular::BoxedMontyForm::new(
            (**public.key.components().g()).clone(),
            &params,
        )
        .pow(&x)
        .retrieve();
        if gx != **public.key.y() {
            return Err(DsaKeyError::InvalidKey);
        }
        Ok(DsaPrivateKey { key, public })
    }

    fn from_signing_key(key: SigningKey) -> Result<Self, DsaKeyError> {
        let vk = key.verifying_key();
        let c = vk.components();
        let public = DsaPublicKey::from_parts(
            &c.p().to_be_bytes(),
            &c.q().to_be_bytes(),
            &c.g().to_be_bytes(),
            &vk.y().to_be_bytes(),
        )
        .map_err(|_| DsaKeyError::InvalidKey)?;
        Ok(DsaPrivateKey { key, public })
    }

    hazmat_pub! {
        /// The public key.
        fn public(&self) -> &DsaPublicKey {
            &self.public
        }
    }

    /// The fingerprint of the public key, as the user compares it.
    pub fn fingerprint(&self) -> V3Fingerprint {
        V3Fingerprint(self.public.fingerprint())
    }

    /// Appends the key for an encrypted export: its PUBKEY, then `x` as an MPI. The bytes
    /// of `x` pass through a wiped buffer only when `out` wipes (the export's
    /// `SecretBytes` does).
    pub(crate) fn write_secret<W: Writer + ?Sized>(&self, out: &mut W) {
        self.public.write(out);
        let x = zeroize::Zeroizing::new(self.key.x().to_be_bytes());
        out.mpi(&x);
    }

    /// Reads what [`DsaPrivateKey::write_secret`] wrote, checking `y = g^x`.
    pub(crate) fn read_secret(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let public = DsaPublicKey::read(r)?;
        let x = r.mpi_max("DSA x", Q_BYTES)?;
        let [p, q, g, y] = &public.mpis;
        Self::from_parts(p, q, g, y, x).map_err(|_| DecodeError::BadValue("DSA private key"))
    }

    hazmat_pub! {
        /// Signs the 32-byte value `m` (RFC 6979 nonce): `r || s`, 20 bytes each.
        fn sign(&self, m: &[u8; 32]) -> Result<[u8; SIG_LEN], DsaKeyError> {
            let z = reduce(m, self.public.key.components().q());
            let sig: dsa::Signature = self
                .key
                .sign_prehash(&z)
                .map_err(|_| DsaKeyError::SigningFailed)?;
            let mut out = [0u8; SIG_LEN];
            let (r, s) = out.split_at_mut(Q_BYTES);
            r.copy_from_slice(&fixed::<Q_BYTES>(sig.r()));
            s.copy_from_slice(&fixed::<Q_BYTES>(sig.s()));
            Ok(out)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A DSA-1024 key made once with `openssl dsaparam -genkey 1024` for the tests.
    pub(crate) fn test_key() -> DsaPrivateKey {
        let h = |s: &str| hex::decode(s).unwrap();
        DsaPrivateKey::from_parts(&h(TEST_P), &h(TEST_Q), &h(TEST_G), &h(TEST_Y), &h(TEST_X))
            .unwrap()
    }

    include!("test_key.rs");

    #[test]
    fn sign_verify_and_tamper() {
        let k = test_key();
        let m = [7u8; 32];
        let sig = k.sign(&m).unwrap();
        assert!(k.public().verify(&m, &sig));
        let mut m2 = m;
        m2[31] ^= 1;
        assert!(!k.public().verify(&m2, &sig));
        let mut bad = sig;
        bad[39] ^= 1;
        assert!(!k.public().verify(&m, &bad));
        assert!(!k.public().verify(&m, &[0u8; SIG_LEN]));
    }

    #[test]
    fn pubkey_round_trip_and_rejects() {
        let k = test_key();
        let mut w = Vec::new();
        k.public().write(&mut w);
        let mut r = Reader::new(&w);
        let back = DsaPublicKey::read(&mut r).unwrap();
        assert!(r.is_empty());
        assert_eq!(&back, k.public());
        // Fingerprint: SHA-1 of the encoding without the two type bytes.
        assert_eq!(back.fingerprint(), <[u8; 20]>::from(Sha1::digest(&w[2..])));
        // Wrong type.
        let mut bad = w.clone();
        bad[1] = 1;
        assert!(matches!(
            DsaPublicKey::read(&mut Reader::new(&bad)),
            Err(DecodeError::BadKeyType { .. })
        ));
        // y replaced by 1.
        let mut bad = w[..w.len() - 4 - 128].to_vec();
        bad.mpi(&[1]);
        assert!(DsaPublicKey::read(&mut Reader::new(&bad)).is_err());
        // A wrong x for the public key.
        let h = |s: &str| hex::decode(s).unwrap();
        assert_eq!(
            DsaPrivateKey::from_parts(&h(TEST_P), &h(TEST_Q), &h(TEST_G), &h(TEST_Y), &[5]).err(),
            Some(DsaKeyError::InvalidKey)
        );
    }
}
