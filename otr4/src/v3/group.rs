//! The 1536-bit Diffie-Hellman group of OTRv3 (Protocol-v3.html §"Encoded messages": RFC 3526
//! group 5, generator 2): key pairs, the range check on received values, and `secbytes`.
//!
//! Secret exponents are 320 bits (the spec's "at least 320 bits", libotr's size) and are
//! raised with crypto-bigint's constant-time Montgomery exponentiation.

use alloc::vec::Vec;

use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{Odd, U1536};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::debug::{HexPrefix, redacted_debug};
use crate::wire::codec::Writer;

/// Bytes in a group element.
pub const MODULUS_LEN: usize = 192;
/// Bytes of a secret exponent (320 bits).
pub const SECRET_LEN: usize = 40;

const LIMBS: usize = U1536::LIMBS;
/// Limbs of a secret exponent (40 bytes is a whole number of 32- and 64-bit limbs).
const SECRET_LIMBS: usize = SECRET_LEN / crypto_bigint::Limb::BYTES;
type Secret = crypto_bigint::Uint<SECRET_LIMBS>;

/// The RFC 3526 1536-bit prime, big-endian hex (Protocol-v3.html §"Encoded messages").
const P_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF",
);

/// The modulus `p`.
pub(crate) const P: Odd<U1536> = Odd::<U1536>::from_be_hex(P_HEX);
/// `p - 2`, the largest acceptable received value.
const P_MINUS_2: U1536 = P.as_ref().wrapping_sub(&U1536::from_u8(2));
/// The generator `g = 2`.
pub(crate) const G: U1536 = U1536::from_u8(2);
/// Montgomery parameters of `p`, computed at compile time.
static PARAMS: FixedMontyParams<LIMBS> = FixedMontyParams::new_vartime(P);

/// Whether `x` is a legal received group element: `2 <= x <= p - 2` (Protocol-v3.html
/// §"Authenticated Key Exchange (AKE)", §"The SMP state machine").
pub(crate) fn in_range(x: &U1536) -> bool {
    x >= &U1536::from_u8(2) && x <= &P_MINUS_2
}

/// Big-endian magnitude bytes (an MPI body, at most [`MODULUS_LEN`] bytes) as an integer.
pub(crate) fn decode_be(be: &[u8]) -> Option<U1536> {
    if be.len() > MODULUS_LEN {
        return None;
    }
    let mut buf = [0u8; MODULUS_LEN];
    let start = MODULUS_LEN - be.len();
    buf.get_mut(start..)?.copy_from_slice(be);
    Some(U1536::from_be_slice(&buf))
}

/// `base ^ e mod p` in constant time in `e` (`e` is secret).
pub(crate) fn pow_secret<const L: usize>(base: &U1536, e: &crypto_bigint::Uint<L>) -> U1536 {
    FixedMontyForm::new(base, &PARAMS).pow(e).retrieve()
}

/// A received public value that passed the range check `2 <= x <= p - 2`.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicValue(pub(crate) U1536);

redacted_debug!(PublicValue(|s| HexPrefix(&s.to_be_bytes())));

impl PublicValue {
    /// Validates big-endian magnitude bytes as a group element (at most 192 bytes, in
    /// `[2, p - 2]`; Protocol-v3.html §"Authenticated Key Exchange (AKE)").
    pub fn from_be_bytes(be: &[u8]) -> Option<PublicValue> {
        let x = decode_be(be)?;
        in_range(&x).then_some(PublicValue(x))
    }

    /// The 192-byte big-endian encoding (with leading zeros; MPI writing strips them).
    pub fn to_be_bytes(&self) -> [u8; MODULUS_LEN] {
        let mut out = [0u8; MODULUS_LEN];
        out.copy_from_slice(&self.0.to_be_bytes());
        out
    }

    /// The MPI encoding (4-byte length, minimal big-endian value), as hashed by the AKE.
    pub fn mpi(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(4 + MODULUS_LEN);
        w.mpi(&self.to_be_bytes());
        w
    }
}

/// A D-H key pair of the AKE or of the data-message key rotation: a 320-bit secret
/// exponent and `g ^ x`.
pub struct KeyPair {
    secret: Zeroizing<Secret>,
    public: PublicValue,
}

impl Zeroize for KeyPair {
    fn zeroize(&mut self) {
        self.secret.zeroize();
    }
}
impl ZeroizeOnDrop for KeyPair {}

redacted_debug!(KeyPair { public, .. });

impl KeyPair {
    /// A fresh key pair from 320 random bits (Protocol-v3.html §"Key Management": "at least
    /// 320 bits").
    pub fn generate<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> KeyPair {
        let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
        loop {
            rng.fill_bytes(bytes.as_mut_slice());
            if let Some(kp) = KeyPair::from_secret_bytes(&bytes) {
                return kp;
            }
        }
    }

    /// The key pair of a given secret exponent (big-endian, `SECRET_LEN` bytes); `None` if
    /// `g ^ x` is out of range (x = 0 only). For tests and vectors.
    pub(crate) fn from_secret_bytes(bytes: &[u8; SECRET_LEN]) -> Option<KeyPair> {
        let secret = Zeroizing::new(Secret::from_be_slice(bytes));
        let public = pow_secret(&G, &*secret);
        in_range(&public).then(|| KeyPair {
            secret,
            public: PublicValue(public),
        })
    }

    /// A copy (the AKE keeps its state until it completes; the copy goes to the session).
    pub(crate) fn clone_of(&self) -> KeyPair {
        KeyPair {
            secret: self.secret.clone(),
            public: self.public.clone(),
        }
    }

    /// `g ^ x`.
    pub fn public(&self) -> &PublicValue {
        &self.public
    }

    /// The shared secret `s = their ^ x` as `secbytes`: its minimal MPI encoding
    /// (Protocol-v3.html §"Computing AES keys, MAC keys, and the secure session id").
    pub fn secbytes(&self, their: &PublicValue) -> SecBytes {
        let mut s = pow_secret(&their.0, &*self.secret);
        let mut be = Zeroizing::new([0u8; MODULUS_LEN]);
        be.copy_from_slice(&s.to_be_bytes());
        s.zeroize();
        let mut out = Vec::with_capacity(4 + MODULUS_LEN);
        out.mpi(be.as_slice());
        SecBytes(out)
    }
}

/// `secbytes`: the shared secret `s` as a minimal MPI, the input of every key derivation.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecBytes(pub(crate) Vec<u8>);

redacted_debug!(SecBytes);

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn modulus_is_the_rfc_3526_prime() {
        // p = 2^1536 - 2^1472 - 1 + 2^64 * (floor(2^1406 pi) + 741804): its top and bottom
        // 64 bits are all ones and p - 1 = 2q with q odd.
        let be = P.as_ref().to_be_bytes();
        assert!(be[..8].iter().all(|&b| b == 0xff));
        assert!(be[MODULUS_LEN - 8..].iter().all(|&b| b == 0xff));
        assert_eq!(P.as_ref().bit_width(), 1536);
    }

    #[test]
    fn shared_secret_agrees_and_range_is_checked() {
        let mut rng = StdRng::seed_from_u64(3);
        let a = KeyPair::generate(&mut rng);
        let b = KeyPair::generate(&mut rng);
        assert_eq!(a.secbytes(b.public()).0, b.secbytes(a.public()).0);
        assert_eq!(a.secbytes(b.public()).0.len(), 4 + MODULUS_LEN);
        assert!(PublicValue::from_be_bytes(&[]).is_none());
        assert!(PublicValue::from_be_bytes(&[1]).is_none());
        assert!(PublicValue::from_be_bytes(&[2]).is_some());
        let p_minus_1 = P.as_ref().wrapping_sub(&U1536::ONE).to_be_bytes();
        assert!(PublicValue::from_be_bytes(&p_minus_1).is_none());
        assert!(PublicValue::from_be_bytes(&P_MINUS_2.to_be_bytes()).is_some());
        assert!(PublicValue::from_be_bytes(&[1u8; MODULUS_LEN + 1]).is_none());
    }

    #[test]
    fn known_answer_small_exponent() {
        // x = 3: g^x = 8.
        let mut x = [0u8; SECRET_LEN];
        x[SECRET_LEN - 1] = 3;
        let kp = KeyPair::from_secret_bytes(&x).unwrap();
        assert_eq!(kp.public().mpi(), [0, 0, 0, 1, 8]);
    }
}
