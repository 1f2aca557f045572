//! The byte codec of otrv4.md §"Data Types": BYTE, SHORT, INT, MPI, DATA and fixed arrays.
//!
//! [`Reader`] is a bounded cursor that never panics and never allocates more than the
//! remaining input justifies; [`Writer`] appends encodings to a `Vec<u8>`.

use alloc::vec::Vec;

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
}

/// Appends OTRv4 encodings to a byte vector.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }

    /// An empty writer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// BYTE.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// SHORT, big-endian.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// A 2-byte little-endian value (key-type prefixes).
    pub fn u16_le(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// INT, big-endian.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// 8-byte signed, big-endian.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// DATA. Lengths above `u32::MAX` cannot occur in OTRv4; they are clamped by
    /// construction because every caller writes bounded values.
    pub fn data(&mut self, d: &[u8]) -> &mut Self {
        let len = u32::try_from(d.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.bytes(d.get(..len as usize).unwrap_or(d))
    }

    /// MPI from big-endian magnitude bytes; leading zeros are stripped.
    pub fn mpi(&mut self, be: &[u8]) -> &mut Self {
        let start = be.iter().position(|&b| b != 0).unwrap_or(be.len());
        self.data(be.get(start..).unwrap_or(&[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_round_trip_big_endian() {
        let mut w = Writer::new();
        w.u8(1).u16(0x0203).u32(0x0405_0607).i64(-2).u16_le(0x0010);
        let bytes = w.into_bytes();
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
        let mut w = Writer::new();
        w.mpi(&[0, 0, 5]);
        assert_eq!(w.into_bytes(), [0, 0, 0, 1, 5]);
        assert!(matches!(
            Reader::new(&[0, 0, 0, 2, 1, 1]).mpi_max("m", 1),
            Err(DecodeError::LengthTooLarge { .. })
        ));
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let mut r = Reader::new(&[1, 2]);
        r.u8("a").unwrap();
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes(1)));
    }
}
