//! The byte codec of otrv4.md §"Data Types" (BYTE, SHORT, INT, MPI, DATA, POINT, SCALAR,
//! the typed keys, RING-SIG) and the [`Codec`] trait every wire type implements.
//!
//! [`Reader`] is a bounded cursor that never panics and never allocates more than the
//! remaining input justifies; [`Writer`] appends encodings to a `Vec<u8>`.

use alloc::vec::Vec;

use crate::crypto::dh::{DH_MODULUS_LEN, DhPublic};
use crate::crypto::ed448::{POINT_LEN, Point, SCALAR_LEN, Scalar};
use crate::crypto::keys::{Ed448PublicKey, ForgingPublicKey, SharedPrekeyPublic};
use crate::crypto::rsig::RingSignature;
use crate::instance_tag::InstanceTag;

/// Why a byte string could not be decoded. One type for every decoder of the crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the field `what` was complete.
    #[error("message truncated while reading {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// Bytes remained after the last field of a fixed-layout message.
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
    /// A length field claims more bytes than remain, or more than the format allows.
    #[error("length {len} of {what} exceeds the {limit} bytes available")]
    LengthTooLarge {
        /// The field being read.
        what: &'static str,
        /// The length read from the wire.
        len: u64,
        /// What was available or allowed.
        limit: u64,
    },
    /// An MPI with a leading zero byte (otrv4.md §"Data Types": minimum-length encoding).
    #[error("MPI is not minimally encoded")]
    NonMinimalMpi,
    /// The protocol version field is not the expected one.
    #[error("unsupported protocol version {0:#06x}")]
    BadVersion(u16),
    /// The message type byte is not the expected one.
    #[error("unexpected message type {0:#04x}")]
    BadMessageType(u8),
    /// An Ed448 point failed strict decoding or validation.
    #[error("invalid Ed448 point in {0}")]
    BadPoint(&'static str),
    /// An Ed448 scalar is not canonical (not `< q`).
    #[error("invalid Ed448 scalar in {0}")]
    BadScalar(&'static str),
    /// A DH value is outside the 3072-bit group.
    #[error("DH value in {0} is not in the group")]
    BadDhValue(&'static str),
    /// A key-type prefix (e.g. 0x0010 for ED448-PUBKEY) is wrong.
    #[error("unexpected key type {found:#06x} in {what}")]
    BadKeyType {
        /// The field being read.
        what: &'static str,
        /// The type read.
        found: u16,
    },
    /// An instance tag is below 0x100 where a valid one is required.
    #[error("invalid instance tag {0:#010x}")]
    BadInstanceTag(u32),
    /// A field of a profile is repeated, unknown or missing.
    #[error("malformed profile: {0}")]
    BadProfile(&'static str),
    /// Text framing (`?OTR:`, fragments, query messages) is malformed.
    #[error("malformed encoding: {0}")]
    BadFraming(&'static str),
    /// A field holds a value the format does not allow.
    #[error("invalid value in {0}")]
    BadValue(&'static str),
}

/// A bounded cursor over untrusted bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The unread bytes, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    /// Whether all input was consumed.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless all input was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated { what });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Takes all remaining bytes.
    pub fn take_rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// BYTE.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array::<1>(what)?))
    }

    /// SHORT, big-endian.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array::<2>(what)?))
    }

    /// A 2-byte little-endian value (the key-type prefixes of otrv4.md §"Public keys").
    pub fn u16_le(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array::<2>(what)?))
    }

    /// INT, big-endian.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array::<4>(what)?))
    }

    /// An 8-byte signed big-endian value (profile expirations).
    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array::<8>(what)?))
    }

    /// A 4-byte length followed by that many bytes, checked against the remaining input
    /// before anything is allocated.
    fn length_prefixed(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(what)?;
        let avail = self.buf.len();
        if len as u64 > avail as u64 {
            return Err(DecodeError::LengthTooLarge {
                what,
                len: len.into(),
                limit: avail as u64,
            });
        }
        self.take(len as usize, what)
    }

    /// DATA: 4-byte length and opaque bytes.
    pub fn data(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        self.length_prefixed(what)
    }

    /// MPI: 4-byte length and a big-endian unsigned value without leading zero bytes.
    /// Returns the magnitude bytes (empty for zero).
    pub fn mpi(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let bytes = self.length_prefixed(what)?;
        if bytes.first() == Some(&0) {
            return Err(DecodeError::NonMinimalMpi);
        }
        Ok(bytes)
    }

    /// MPI with an upper bound on its length in bytes.
    pub fn mpi_max(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let bytes = self.mpi(what)?;
        if bytes.len() > max {
            return Err(DecodeError::LengthTooLarge {
                what,
                len: bytes.len() as u64,
                limit: max as u64,
            });
        }
        Ok(bytes)
    }

    /// POINT: 57 bytes that decode strictly (else [`DecodeError::BadPoint`]).
    pub fn point(&mut self, what: &'static str) -> Result<Point, DecodeError> {
        let b = self.array::<POINT_LEN>(what)?;
        Point::decode(&b).map_err(|_| DecodeError::BadPoint(what))
    }

    /// SCALAR: 57 bytes of a canonical scalar (else [`DecodeError::BadScalar`]).
    pub fn scalar(&mut self, what: &'static str) -> Result<Scalar, DecodeError> {
        let b = self.array::<SCALAR_LEN>(what)?;
        Scalar::decode(&b).map_err(|_| DecodeError::BadScalar(what))
    }

    /// An MPI holding a DH public value in the 3072-bit group (else
    /// [`DecodeError::BadDhValue`]).
    pub fn dh_public(&mut self, what: &'static str) -> Result<DhPublic, DecodeError> {
        let b = self.mpi_max(what, DH_MODULUS_LEN)?;
        DhPublic::from_be_bytes(b).map_err(|_| DecodeError::BadDhValue(what))
    }

    /// A sender instance tag, which must be `>= 0x100` (otrv4.md §"Instance Tags").
    pub fn sender_tag(&mut self, what: &'static str) -> Result<InstanceTag, DecodeError> {
        let t = InstanceTag(self.u32(what)?);
        if t.is_valid_sender() {
            Ok(t)
        } else {
            Err(DecodeError::BadInstanceTag(t.0))
        }
    }

    /// A receiver instance tag, which must be 0 or `>= 0x100`.
    pub fn receiver_tag(&mut self, what: &'static str) -> Result<InstanceTag, DecodeError> {
        let t = InstanceTag(self.u32(what)?);
        if t.is_valid_receiver() {
            Ok(t)
        } else {
            Err(DecodeError::BadInstanceTag(t.0))
        }
    }
}

/// Appends OTRv4 encodings to a byte vector: `out.u32(tag).data(&bytes)`.
pub trait Writer {
    /// Raw bytes.
    fn bytes(&mut self, b: &[u8]) -> &mut Self;

    /// Any wire type.
    fn put<T: Codec>(&mut self, v: &T) -> &mut Self;

    /// BYTE.
    fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes(&[v])
    }

    /// SHORT, big-endian.
    fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// A 2-byte little-endian value (key-type prefixes).
    fn u16_le(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// INT, big-endian.
    fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// 8-byte signed, big-endian.
    fn i64(&mut self, v: i64) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// DATA. Lengths above `u32::MAX` cannot occur in OTRv4; they are clamped by
    /// construction because every caller writes bounded values.
    fn data(&mut self, d: &[u8]) -> &mut Self {
        let len = u32::try_from(d.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.bytes(d.get(..len as usize).unwrap_or(d))
    }

    /// MPI from big-endian magnitude bytes; leading zeros are stripped.
    fn mpi(&mut self, be: &[u8]) -> &mut Self {
        let start = be.iter().position(|&b| b != 0).unwrap_or(be.len());
        self.data(be.get(start..).unwrap_or(&[]))
    }

    /// POINT: the 57-byte encoding.
    fn point(&mut self, p: &Point) -> &mut Self {
        self.bytes(&p.encode())
    }

    /// SCALAR: the 57-byte little-endian encoding.
    fn scalar(&mut self, s: &Scalar) -> &mut Self {
        self.bytes(&s.encode())
    }

    /// A DH public value as an MPI.
    fn dh_public(&mut self, d: &DhPublic) -> &mut Self {
        self.mpi(&d.to_be_bytes())
    }
}

impl Writer for Vec<u8> {
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.extend_from_slice(b);
        self
    }

    fn put<T: Codec>(&mut self, v: &T) -> &mut Self {
        v.write(self);
        self
    }
}

/// A value with one OTRv4 wire encoding (compare rustls's `Codec`): every message, profile,
/// proof and typed field of both specs implements it.
///
/// [`Codec::read`] consumes one value and leaves the rest of the input; [`Codec::decode`]
/// takes a whole buffer and rejects trailing bytes ([`DecodeError::TrailingBytes`]).
pub trait Codec: Sized {
    /// Appends the encoding to `out`.
    fn write(&self, out: &mut Vec<u8>);

    /// Reads one value from `r`.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// The encoding.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    /// Decodes a value that must fill `bytes` exactly.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::read(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

// ---------------------------------------------------------------------------------------
// The wire forms of the primitives (otrv4.md §"Data Types", §"Public keys, Shared Prekeys,
// Forging keys and Fingerprints", §"Serializing the Ring Signature Proof of Authentication").

/// Declares the codec of a typed key: a 2-byte little-endian type (else
/// [`DecodeError::BadKeyType`]) and a strictly validated POINT (else [`DecodeError::BadPoint`]).
macro_rules! typed_key_codec {
    ($name:ident, $what:literal) => {
        impl Codec for $name {
            fn write(&self, out: &mut Vec<u8>) {
                out.u16_le(Self::TYPE).point(&self.0);
            }

            fn read(r: &mut Reader<'_>) -> Result<$name, DecodeError> {
                let found = r.u16_le($what)?;
                if found != Self::TYPE {
                    return Err(DecodeError::BadKeyType { what: $what, found });
                }
                r.point($what).map($name)
            }
        }
    };
}

typed_key_codec!(Ed448PublicKey, "ED448-PUBKEY");
typed_key_codec!(SharedPrekeyPublic, "ED448-SHARED-PREKEY");
typed_key_codec!(ForgingPublicKey, "ED448-FORGING-KEY");

/// RING-SIG: six canonical SCALARs (else [`DecodeError::BadScalar`]).
impl Codec for RingSignature {
    fn write(&self, out: &mut Vec<u8>) {
        for s in &self.parts {
            out.scalar(s);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<RingSignature, DecodeError> {
        let c1 = r.scalar("RING-SIG c1")?;
        let r1 = r.scalar("RING-SIG r1")?;
        let c2 = r.scalar("RING-SIG c2")?;
        let r2 = r.scalar("RING-SIG r2")?;
        let c3 = r.scalar("RING-SIG c3")?;
        let r3 = r.scalar("RING-SIG r3")?;
        Ok(RingSignature {
            parts: [c1, r1, c2, r2, c3, r3],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::dh::DhKeyPair;
    use crate::crypto::ed448::KeyPair;
    use crate::crypto::kdf::Otrv4;
    use crate::crypto::keys::generate_forging_point;
    use crate::crypto::rsig::RING_SIG_LEN;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn ints_round_trip_big_endian() {
        let mut bytes = Vec::new();
        bytes
            .u8(1)
            .u16(0x0203)
            .u32(0x0405_0607)
            .i64(-2)
            .u16_le(0x0010);
        assert_eq!(&bytes[..7], &[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(&bytes[15..], &[0x10, 0x00]);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.u16("b").unwrap(), 0x0203);
        assert_eq!(r.u32("c").unwrap(), 0x0405_0607);
        assert_eq!(r.i64("d").unwrap(), -2);
        assert_eq!(r.u16_le("e").unwrap(), 0x0010);
        r.finish().unwrap();
    }

    #[test]
    fn truncated_and_oversized_lengths_are_errors() {
        assert_eq!(
            Reader::new(&[0, 1]).u32("x"),
            Err(DecodeError::Truncated { what: "x" })
        );
        let huge = [0xff, 0xff, 0xff, 0xff, 1, 2];
        assert!(matches!(
            Reader::new(&huge).data("d"),
            Err(DecodeError::LengthTooLarge {
                len: 0xffff_ffff,
                limit: 2,
                ..
            })
        ));
        assert!(matches!(
            Reader::new(&huge).mpi("m"),
            Err(DecodeError::LengthTooLarge { .. })
        ));
    }

    #[test]
    fn mpi_must_be_minimal() {
        assert_eq!(
            Reader::new(&[0, 0, 0, 2, 0, 1]).mpi("m"),
            Err(DecodeError::NonMinimalMpi)
        );
        assert_eq!(Reader::new(&[0, 0, 0, 2, 1, 0]).mpi("m").unwrap(), &[1, 0]);
        assert_eq!(Reader::new(&[0, 0, 0, 0]).mpi("m").unwrap(), &[] as &[u8]);
        let mut w = Vec::new();
        w.mpi(&[0, 0, 5]);
        assert_eq!(w, [0, 0, 0, 1, 5]);
        assert!(matches!(
            Reader::new(&[0, 0, 0, 2, 1, 1]).mpi_max("m", 1),
            Err(DecodeError::LengthTooLarge { .. })
        ));
    }

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
        let mut bytes = Vec::new();
        bytes.put(&SharedPrekeyPublic(p)).put(&ForgingPublicKey(p));
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
    fn read_and_write_mpi() {
        let mut rng = StdRng::seed_from_u64(3);
        let kp = DhKeyPair::generate(&mut rng);
        let mut bytes = Vec::new();
        bytes.dh_public(kp.public());
        let body = kp.public().to_be_bytes();
        assert_eq!(&bytes[..4], &(body.len() as u32).to_be_bytes());
        let mut r = Reader::new(&bytes);
        assert_eq!(r.dh_public("dh").unwrap(), *kp.public());
        r.finish().unwrap();
        // a non-member MPI is a BadDhValue decode error
        let mut w = Vec::new();
        w.mpi(&[5]);
        assert_eq!(
            Reader::new(&w).dh_public("dh"),
            Err(DecodeError::BadDhValue("dh"))
        );
        // a 385-byte MPI is rejected by length
        let mut w = Vec::new();
        w.mpi(&[1; DH_MODULUS_LEN + 1]);
        assert!(matches!(
            Reader::new(&w).dh_public("dh"),
            Err(DecodeError::LengthTooLarge { .. })
        ));
    }

    #[test]
    fn wire_round_trip_and_non_canonical_scalars() {
        let mut rng = StdRng::seed_from_u64(37);
        let keys: [KeyPair; 3] = core::array::from_fn(|_| KeyPair::generate(&mut rng));
        let ring = [keys[0].public(), keys[1].public(), keys[2].public()];
        let sig = RingSignature::sign::<Otrv4, _>(&mut rng, &keys[2], ring, b"m").unwrap();
        let bytes = sig.encode();
        assert_eq!(bytes.len(), RING_SIG_LEN);
        let mut r = Reader::new(&bytes);
        let back = RingSignature::read(&mut r).unwrap();
        r.finish().unwrap();
        assert_eq!(back, sig);
        assert_eq!(back.verify::<Otrv4>(ring, b"m"), Ok(()));
        for (i, what) in [
            "RING-SIG c1",
            "RING-SIG r1",
            "RING-SIG c2",
            "RING-SIG r2",
            "RING-SIG c3",
            "RING-SIG r3",
        ]
        .iter()
        .enumerate()
        {
            let mut bad = bytes.clone();
            bad[i * 57 + 56] = 1;
            assert_eq!(
                RingSignature::read(&mut Reader::new(&bad)),
                Err(DecodeError::BadScalar(what))
            );
        }
        assert_eq!(
            RingSignature::read(&mut Reader::new(&bytes[..RING_SIG_LEN - 1])),
            Err(DecodeError::Truncated {
                what: "RING-SIG r3"
            })
        );
    }

    #[test]
    fn points_and_scalars_read_strictly() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..16 {
            let kp = KeyPair::generate(&mut rng);
            let mut bytes = Vec::new();
            bytes.point(kp.public());
            let mut r = Reader::new(&bytes);
            assert_eq!(r.point("p").unwrap(), *kp.public());
            r.finish().unwrap();
        }
        assert_eq!(
            Reader::new(&[0u8; 57]).point("X"),
            Err(DecodeError::BadPoint("X"))
        );
        assert_eq!(
            Reader::new(&[0u8; 56]).point("X"),
            Err(DecodeError::Truncated { what: "X" })
        );
        let mut five = [0u8; 57];
        five[0] = 5;
        five[56] = 1;
        assert_eq!(
            Reader::new(&five).scalar("s").map(|_| ()),
            Err(DecodeError::BadScalar("s"))
        );
    }

    #[test]
    fn forging_points_decode_as_typed_keys() {
        let mut rng = StdRng::seed_from_u64(23);
        let a = generate_forging_point(&mut rng);
        assert_eq!(ForgingPublicKey::decode(&a.encode()).unwrap(), a);
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let mut r = Reader::new(&[1, 2]);
        r.u8("a").unwrap();
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes(1)));
    }
}
