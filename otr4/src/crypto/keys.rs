//! The typed public-key wire formats ED448-PUBKEY, ED448-SHARED-PREKEY and
//! ED448-FORGING-KEY (otrv4.md §"Public keys, Shared Prekeys, Forging keys and Fingerprints").
//!
//! Each is a 2-byte little-endian type (so 0x0010 is written `10 00`) followed by a POINT.

use crate::crypto::ed448::{KeyPair, POINT_LEN, Point};

/// Type of an ED448-PUBKEY.
pub const ED448_PUBKEY_TYPE: u16 = 0x0010;
/// Type of an ED448-SHARED-PREKEY.
pub const ED448_SHARED_PREKEY_TYPE: u16 = 0x0011;
/// Type of an ED448-FORGING-KEY.
pub const ED448_FORGING_KEY_TYPE: u16 = 0x0012;
/// Bytes in any of the three typed keys: 2-byte type and a POINT.
pub const TYPED_KEY_LEN: usize = 2 + POINT_LEN;

macro_rules! typed_key {
    ($(#[$doc:meta])* $name:ident, $ty:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        pub struct $name(pub Point);

        impl $name {
            /// The 2-byte key type.
            pub const TYPE: u16 = $ty;

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
    ED448_PUBKEY_TYPE
);
typed_key!(
    /// OTRv4 public shared prekey `D` (ED448-SHARED-PREKEY, type 0x0011).
    SharedPrekeyPublic,
    ED448_SHARED_PREKEY_TYPE
);
typed_key!(
    /// OTRv4 public Ed448 forging key `F` (ED448-FORGING-KEY, type 0x0012).
    ForgingPublicKey,
    ED448_FORGING_KEY_TYPE
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
    fn forging_points_are_valid_and_distinct() {
        let mut rng = StdRng::seed_from_u64(23);
        let a = generate_forging_point(&mut rng);
        let b = generate_forging_point(&mut rng);
        assert_ne!(a, b);
        assert_eq!(Point::decode(&a.0.encode()).unwrap(), a.0);
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
