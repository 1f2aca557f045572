//! The OTRv3 key derivations from `secbytes` (Protocol-v3.html §"Computing AES keys, MAC
//! keys, and the secure session id", §"Extra symmetric key"): `h2` for the AKE, `h1` for data.

use sha1::Sha1;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::debug::redacted_debug;
use crate::v3::group::SecBytes;

/// `h2(b) = SHA256(b || secbytes)`.
pub(crate) fn h2(b: u8, s: &SecBytes) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([b]);
    h.update(&s.0);
    h.finalize().into()
}

/// `h1(b) = SHA1(b || secbytes)`.
fn h1(b: u8, s: &SecBytes) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update([b]);
    h.update(&s.0);
    h.finalize().into()
}

/// Bytes of the secure session id.
pub const SSID_LEN: usize = 8;

/// The seven AKE values derived from `s` (Protocol-v3.html §"Computing AES keys, MAC keys,
/// and the secure session id").
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct AkeKeys {
    /// `ssid`: the first 64 bits of `h2(0x00)`.
    pub ssid: [u8; SSID_LEN],
    /// `c`: the first 128 bits of `h2(0x01)` (Reveal Signature message).
    pub c: [u8; 16],
    /// `c'`: the second 128 bits of `h2(0x01)` (Signature message).
    pub c_prime: [u8; 16],
    /// `m1 = h2(0x02)`.
    pub m1: [u8; 32],
    /// `m2 = h2(0x03)`.
    pub m2: [u8; 32],
    /// `m1' = h2(0x04)`.
    pub m1_prime: [u8; 32],
    /// `m2' = h2(0x05)`.
    pub m2_prime: [u8; 32],
}

redacted_debug!(AkeKeys);

impl AkeKeys {
    /// Derives the AKE values.
    pub fn derive(s: &SecBytes) -> AkeKeys {
        let mut k = AkeKeys {
            ssid: [0; SSID_LEN],
            c: [0; 16],
            c_prime: [0; 16],
            m1: h2(0x02, s),
            m2: h2(0x03, s),
            m1_prime: h2(0x04, s),
            m2_prime: h2(0x05, s),
        };
        let mut h0 = h2(0x00, s);
        k.ssid
            .copy_from_slice(h0.get(..SSID_LEN).unwrap_or(&[0; SSID_LEN]));
        let mut h1v = h2(0x01, s);
        let (c, cp) = h1v.split_at(16);
        k.c.copy_from_slice(c);
        k.c_prime.copy_from_slice(cp);
        h0.zeroize();
        h1v.zeroize();
        k
    }
}

/// The keys of one direction of a data message: the AES-128 key and the SHA1-HMAC key.
#[derive(Zeroize, ZeroizeOnDrop, Clone)]
pub struct DirectionKeys {
    /// The AES-128 key: the first 16 bytes of `h1(byte)`.
    pub aes: [u8; 16],
    /// The MAC key: `SHA1(aes)`.
    pub mac: [u8; 20],
}

redacted_debug!(DirectionKeys);

/// The keys of one (our key, their key) pair (Protocol-v3.html §"Computing AES keys, MAC
/// keys, and the secure session id"): "high" end if our public key is numerically greater.
#[derive(Zeroize, ZeroizeOnDrop, Clone)]
pub struct SessionKeys {
    /// Sending keys.
    pub send: DirectionKeys,
    /// Receiving keys.
    pub recv: DirectionKeys,
    /// The extra symmetric key `h2(0xFF)` (Protocol-v3.html §"Extra symmetric key").
    pub extra: [u8; 32],
}

redacted_debug!(SessionKeys);

impl SessionKeys {
    /// Derives the keys of a key pair; `we_are_high` says whether our public value is the
    /// numerically greater one.
    pub fn derive(s: &SecBytes, we_are_high: bool) -> SessionKeys {
        let (sendbyte, recvbyte) = if we_are_high {
            (0x01, 0x02)
        } else {
            (0x02, 0x01)
        };
        SessionKeys {
            send: direction(sendbyte, s),
            recv: direction(recvbyte, s),
            extra: h2(0xff, s),
        }
    }
}

fn direction(b: u8, s: &SecBytes) -> DirectionKeys {
    let mut h = h1(b, s);
    let mut aes = [0u8; 16];
    aes.copy_from_slice(h.get(..16).unwrap_or(&[0; 16]));
    h.zeroize();
    let mac = Sha1::digest(aes).into();
    DirectionKeys { aes, mac }
}
