//! The typed public-key wire formats ED448-PUBKEY, ED448-SHARED-PREKEY and
//! ED448-FORGING-KEY (otrv4.md §"Public keys, Shared Prekeys, Forging keys and Fingerprints").
//!
//! Each is a 2-byte little-endian type (so 0x0010 is written `10 00`) followed by a POINT.

use crate::crypto::ed448::{KeyPair, POINT_LEN, Point};
use crate::wire::codec::{DecodeError, Reader, Writer};

/// Type of an ED448-PUBKEY.
pub const ED448_PUBKEY_TYPE: u16 = 0x0010;
/// Type of an ED448-SHARED-PREKEY.
pub const ED448_SHARED_PREKEY_TYPE: u16 = 0x0011;
/// Type of an ED448-FORGING-KEY.
pub const ED448_FORGING_KEY_TYPE: u16 = 0x0012;
/// Bytes in any of the three typed keys: 2-byte type and a POINT.
pub const TYPED_KEY_LEN: usize = 2 + POINT_LEN;

macro_rules! typed_key {
    ($(#[$doc:meta])* $name:ident, $ty:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        pub struct $name(pub Point);

        impl $name {
            /// The 2-byte key type.
            pub const TYPE: u16 = $ty;

            /// Reads the field: a little-endian type that must be [`Self::TYPE`] (else
            /// [`DecodeError::BadKeyType`]) and a strictly validated POINT (else
            /// [`DecodeError::BadPoint`]).
            pub fn read(r: &mut Reader<'_>) -> Result<$name, DecodeError> {
                let found = r.u16_le($what)?;
                if found != Self::TYPE {
                    return Err(DecodeError::BadKeyType { what: $what, found });
                }
                Point::read(r, $what).map($name)
            }

            /// Writes the field.
            pub fn write(&self, w: &mut Writer) {
                w.u16_le(Self::TYPE);
                self.0.write(w);
            }

            /// The 59-byte encoding (type and POINT).
            pub fn encode(&self) -> [u8; TYPED_KEY_LEN] {
                let mut out = [0u8; TYPED_KEY_LEN];
                let ty = Self::TYPE.to_le_bytes();
                let point = self.0.encode();
                for (d, s) in out.iter_mut().zip(ty.iter().chain(point.iter())) {
                    *d = *s;
                }
                out
            }

            /// Decodes exactly one encoded key (no trailing bytes).
            pub fn decode(bytes: &[u8]) -> Result<$name, DecodeError> {
                let mut r = Reader::new(bytes);
                let key = $name::read(&mut r)?;
                r.finish()?;
                Ok(key)
            }

            /// The point.
            pub fn point(&self) -> &Point {
                &self.0
            }
        }

        impl From<Point> for $name {
            fn from(p: Point) -> $name {
                $name(p)
            }
        }
    };
}

typed_key!(
    /// OTRv4 public authentication Ed448 key `H` (ED448-PUBKEY, type 0x0010).
    Ed448PublicKey,
    ED448_PUBKEY_TYPE,
    "ED448-PUBKEY"
);
typed_key!(
    /// OTRv4 public shared prekey `D` (ED448-SHARED-PREKEY, type 0x0011).
    SharedPrekeyPublic,
    ED448_SHARED_PREKEY_TYPE,
    "ED448-SHARED-PREKEY"
);
typed_key!(
    /// OTRv4 public Ed448 forging key `F` (ED448-FORGING-KEY, type 0x0012).
    ForgingPublicKey,
    ED448_FORGING_KEY_TYPE,
    "ED448-FORGING-KEY"
);

/// Attempts before [`generate_forging_point`] falls back to a key pair (each succeeds with
/// probability about 1/8, so 1024 failures in a row happen with probability about 2^-197).
const FORGING_POINT_ATTEMPTS: usize = 1024;

/// Generates a forging key "directly as a random point" without a secret (otrv4.md
/// §"Public keys, Shared Prekeys, Forging keys and Fingerprints", first method): draw 57
/// random bytes, keep only the sign bit in the last byte (the other bits must be zero in a
/// POINT), and accept the first buffer that [`Point::decode`] validates. Accepted points
/// are uniform over the prime-order subgroup minus the identity.
///
/// If the RNG is broken and no candidate validates after 1024 tries, the public half of a
/// fresh [`KeyPair`] is used instead (the secret is dropped and zeroized).
pub fn generate_forging_point<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> ForgingPublicKey {
    for _ in 0..FORGING_POINT_ATTEMPTS {
        let mut buf = [0u8; POINT_LEN];
        rng.fill_bytes(&mut buf);
        if let Some(last) = buf.last_mut() {
            *last &= 0x80;
        }
        if let Ok(p) = Point::decode(&buf) {
            return ForgingPublicKey(p);
        }
    }
    ForgingPublicKey(*KeyPair::generate(rng).public())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn typed_keys_round_trip_with_little_endian_types() {
        let mut rng = StdRng::seed_from_u64(21);
        let p = *KeyPair::generate(&mut rng).public();
        let h = Ed448PublicKey(p).encode();
        assert_eq!(&h[..2], &[0x10, 0x00]);
        assert_eq!(&h[2..], &p.encode());
        assert_eq!(&SharedPrekeyPublic(p).encode()[..2], &[0x11, 0x00]);
        assert_eq!(&ForgingPublicKey(p).encode()[..2], &[0x12, 0x00]);
        assert_eq!(Ed448PublicKey::decode(&h).unwrap(), Ed448PublicKey(p));
        let mut w = Writer::new();
        SharedPrekeyPublic(p).write(&mut w);
        ForgingPublicKey(p).write(&mut w);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(SharedPrekeyPublic::read(&mut r).unwrap().0, p);
        assert_eq!(ForgingPublicKey::read(&mut r).unwrap().0, p);
        r.finish().unwrap();
    }

    #[test]
    fn typed_keys_reject_wrong_type_bad_point_and_truncation() {
        let mut rng = StdRng::seed_from_u64(22);
        let p = *KeyPair::generate(&mut rng).public();
        let h = Ed448PublicKey(p).encode();
        // Another key type, and the big-endian spelling of the right one.
        assert_eq!(
            ForgingPublicKey::decode(&h),
            Err(DecodeError::BadKeyType {
                what: "ED448-FORGING-KEY",
                found: 0x0010
            })
        );
        let mut be = h;
        be[0] = 0x00;
        be[1] = 0x10;
        assert_eq!(
            Ed448PublicKey::decode(&be),
            Err(DecodeError::BadKeyType {
                what: "ED448-PUBKEY",
                found: 0x1000
            })
        );
        let mut bad = h;
        bad[58] |= 0x01;
        assert_eq!(
            Ed448PublicKey::decode(&bad),
            Err(DecodeError::BadPoint("ED448-PUBKEY"))
        );
        assert_eq!(
            Ed448PublicKey::decode(&h[..58]),
            Err(DecodeError::Truncated {
                what: "ED448-PUBKEY"
            })
        );
        let mut long = h.to_vec();
        long.push(0);
        assert_eq!(
            Ed448PublicKey::decode(&long),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn forging_points_are_valid_and_distinct() {
        let mut rng = StdRng::seed_from_u64(23);
        let a = generate_forging_point(&mut rng);
        let b = generate_forging_point(&mut rng);
        assert_ne!(a, b);
        assert_eq!(Point::decode(&a.0.encode()).unwrap(), a.0);
        assert_eq!(ForgingPublicKey::decode(&a.encode()).unwrap(), a);
    }

    /// An RNG that always returns zero bytes: no candidate validates, so the fallback runs.
    struct Zeros;
    impl rand_core::TryRng for Zeros {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(0)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            Ok(0)
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            dst.fill(0);
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Zeros {}

    #[test]
    fn forging_point_terminates_with_a_broken_rng() {
        let f = generate_forging_point(&mut Zeros);
        let expected =
            KeyPair::from_symmetric_key(crate::crypto::ed448::SymmetricKey::from_bytes([0; 57]));
        assert_eq!(f.0, *expected.public());
    }
}
