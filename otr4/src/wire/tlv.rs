//! TLV records and the plaintext of a Data Message (otrv4.md §"TLV Record Types",
//! §"Data Message"): a UTF-8 human-readable part, optionally a NUL and TLV records.
//!
//! Parsing is lenient in the way the spec prescribes: a corrupted TLV never makes the
//! whole plaintext unreadable (see [`parse_plaintext`]).

use alloc::vec::Vec;

use crate::wire::codec::{DecodeError, Reader, Writer};

/// The largest TLV value: its length is a SHORT (otrv4.md §"TLV Record Types").
pub const MAX_TLV_VALUE_LEN: usize = u16::MAX as usize;

/// A TLV record type (otrv4.md §"TLV Record Types").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlvType {
    /// Type 0: padding, to be ignored.
    Padding,
    /// Type 1: the peer closed the private connection.
    Disconnected,
    /// Type 2: SMP message 1.
    SmpMessage1,
    /// Type 3: SMP message 2.
    SmpMessage2,
    /// Type 4: SMP message 3.
    SmpMessage3,
    /// Type 5: SMP message 4.
    SmpMessage4,
    /// Type 6: SMP abort.
    SmpAbort,
    /// Type 7: use of the extra symmetric key (otrv4.md §"Extra Symmetric Key").
    ExtraSymmetricKey,
    /// A type not on the spec's list. Such a record is "corrupted" and must not be acted
    /// on; it is kept only so that record positions match the sender's.
    Unknown(u16),
}

impl TlvType {
    hazmat_pub! {
        /// The type for a wire value; values above 7 give [`TlvType::Unknown`].
        fn from_u16(v: u16) -> TlvType {
            match v {
                0 => TlvType::Padding,
                1 => TlvType::Disconnected,
                2 => TlvType::SmpMessage1,
                3 => TlvType::SmpMessage2,
                4 => TlvType::SmpMessage3,
                5 => TlvType::SmpMessage4,
                6 => TlvType::SmpAbort,
                7 => TlvType::ExtraSymmetricKey,
                other => TlvType::Unknown(other),
            }
        }
    }

    hazmat_pub! {
        /// The wire value.
        fn to_u16(self) -> u16 {
            match self {
                TlvType::Padding => 0,
                TlvType::Disconnected => 1,
                TlvType::SmpMessage1 => 2,
                TlvType::SmpMessage2 => 3,
                TlvType::SmpMessage3 => 4,
                TlvType::SmpMessage4 => 5,
                TlvType::SmpAbort => 6,
                TlvType::ExtraSymmetricKey => 7,
                TlvType::Unknown(v) => v,
            }
        }
    }

    hazmat_pub! {
        /// Whether the type is on the spec's list.
        fn is_known(self) -> bool {
            !matches!(self, TlvType::Unknown(_))
        }
    }
}

/// One TLV record (otrv4.md §"TLV Record Types"): `Type (SHORT) || Length (SHORT) || Value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    /// The record type.
    pub typ: TlvType,
    /// The value; at most `MAX_TLV_VALUE_LEN` bytes to be encodable.
    pub value: Vec<u8>,
}

/// The use of an extra symmetric key announced by a type 7 TLV (otrv4.md §"TLV Record
/// Types", §"Extra Symmetric Key").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtraSymKeyUse<'a> {
    /// The 4-byte indication of what the key is used for (the KDF "context").
    pub context: [u8; 4],
    /// The use-specific data following it.
    pub data: &'a [u8],
}

impl Tlv {
    /// A record of type `typ` with `value`.
    pub fn new(typ: TlvType, value: Vec<u8>) -> Tlv {
        Tlv { typ, value }
    }

    hazmat_pub! {
        /// A Disconnected (type 1) record with an empty value.
        fn disconnected() -> Tlv {
            Tlv::new(TlvType::Disconnected, Vec::new())
        }
    }

    hazmat_pub! {
        /// An SMP Abort (type 6) record: "the associated length should be zero".
        fn smp_abort() -> Tlv {
            Tlv::new(TlvType::SmpAbort, Vec::new())
        }
    }

    /// A Padding (type 0) record of `len` zero bytes (capped at [`MAX_TLV_VALUE_LEN`]).
    #[cfg(feature = "hazmat")]
    pub fn padding(len: usize) -> Tlv {
        Tlv::new(
            TlvType::Padding,
            alloc::vec![0u8; len.min(MAX_TLV_VALUE_LEN)],
        )
    }

    /// An Extra Symmetric Key (type 7) record: `context || data`.
    pub fn extra_symmetric_key(context: [u8; 4], data: &[u8]) -> Tlv {
        let mut value = Vec::with_capacity(4 + data.len());
        value.extend_from_slice(&context);
        value.extend_from_slice(data);
        Tlv::new(TlvType::ExtraSymmetricKey, value)
    }

    hazmat_pub! {
        /// Splits the value of a type 7 record into its 4-byte use indication and the
        /// use-specific data. An empty value means "no context" and gives four zero bytes
        /// (otrv4.md §"Extra Symmetric Key"); a value of 1 to 3 bytes is truncated.
        fn extra_symmetric_key_use(&self) -> Result<ExtraSymKeyUse<'_>, DecodeError> {
            if self.typ != TlvType::ExtraSymmetricKey {
                return Err(DecodeError::BadValue(
                    "TLV is not an extra symmetric key TLV",
                ));
            }
            if self.value.is_empty() {
                return Ok(ExtraSymKeyUse {
                    context: [0; 4],
                    data: &[],
                });
            }
            let mut r = Reader::new(&self.value);
            let context = r.array::<4>("extra symmetric key context")?;
            Ok(ExtraSymKeyUse {
                context,
                data: r.take_rest(),
            })
        }
    }

    /// Appends the record's encoding. Fails if the value is longer than
    /// [`MAX_TLV_VALUE_LEN`].
    pub(crate) fn encode_into(&self, w: &mut Vec<u8>) -> Result<(), DecodeError> {
        let len = u16::try_from(self.value.len()).map_err(|_| DecodeError::LengthTooLarge {
            what: "TLV value",
            len: self.value.len() as u64,
            limit: MAX_TLV_VALUE_LEN as u64,
        })?;
        w.u16(self.typ.to_u16()).u16(len).bytes(&self.value);
        Ok(())
    }
}

/// The decrypted plaintext of a Data Message (otrv4.md §"Data Message").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plaintext {
    /// The human-readable part: every byte before the first NUL (all bytes if none).
    /// The spec says it is UTF-8; see [`Plaintext::text`].
    pub message: Vec<u8>,
    /// The well-formed TLV records after the NUL, in wire order (so a record's index
    /// here is its index in the sender's list), including [`TlvType::Unknown`] ones.
    pub tlvs: Vec<Tlv>,
    /// Whether a corrupted TLV was seen: one of an unknown type (kept as
    /// [`TlvType::Unknown`], to be ignored) or an incomplete final one (dropped).
    pub corrupted: bool,
}

impl Plaintext {
    /// The human-readable part as UTF-8.
    #[cfg(feature = "hazmat")]
    pub fn text(&self) -> Result<&str, DecodeError> {
        core::str::from_utf8(&self.message)
            .map_err(|_| DecodeError::BadValue("plaintext message is not UTF-8"))
    }

    /// The records of known types, with their wire indices.
    #[cfg(feature = "hazmat")]
    pub fn known_tlvs(&self) -> impl Iterator<Item = (usize, &Tlv)> {
        self.tlvs
            .iter()
            .enumerate()
            .filter(|(_, t)| t.typ.is_known())
    }
}

/// Parses the plaintext of a Data Message (otrv4.md §"Data Message", §"TLV Record Types").
///
/// Never fails. Per the spec, "if you receive a data message with a corrupted TLV (an
/// incomplete one or a TLV not included on this list), stop processing it, but process
/// the remaining data message and any other TLVs":
/// - a record of unknown type is well delimited: it is kept as [`TlvType::Unknown`] (not
///   to be processed), and parsing continues with the next record;
/// - an incomplete record (fewer than 4 header bytes left, or a length beyond the end)
///   cannot be delimited: it and everything after it are dropped, while the message and
///   the records before it are returned.
///
/// In both cases [`Plaintext::corrupted`] is set.
pub fn parse_plaintext(bytes: &[u8]) -> Plaintext {
    let (message, tail) = match bytes.iter().position(|&b| b == 0) {
        Some(nul) => {
            let (m, rest) = bytes.split_at(nul);
            (m, rest.get(1..).unwrap_or(&[]))
        }
        None => (bytes, &[][..]),
    };
    let mut tlvs = Vec::new();
    let mut corrupted = false;
    let mut r = Reader::new(tail);
    while !r.is_empty() {
        match read_tlv(&mut r) {
            Ok(tlv) => {
                corrupted |= !tlv.typ.is_known();
                tlvs.push(tlv);
            }
            Err(_) => {
                corrupted = true;
                break;
            }
        }
    }
    Plaintext {
        message: message.to_vec(),
        tlvs,
        corrupted,
    }
}

/// Reads one TLV record; the value is bounded by the remaining input.
fn read_tlv(r: &mut Reader<'_>) -> Result<Tlv, DecodeError> {
    let typ = TlvType::from_u16(r.u16("TLV type")?);
    let len = r.u16("TLV length")?;
    let value = r.take(usize::from(len), "TLV value")?;
    Ok(Tlv {
        typ,
        value: value.to_vec(),
    })
}

/// Encodes a Data Message plaintext: `message`, then (only if `tlvs` is non-empty) a NUL
/// and the records (otrv4.md §"Data Message"). Fails if `message` contains a NUL (the
/// receiver would cut it there) or a TLV value is too long.
pub fn encode_plaintext(message: &[u8], tlvs: &[Tlv]) -> Result<Vec<u8>, DecodeError> {
    if message.contains(&0) {
        return Err(DecodeError::BadValue("plaintext message contains NUL"));
    }
    let tlv_len: usize = tlvs.iter().map(|t| 4 + t.value.len()).sum();
    let mut w = Vec::with_capacity(message.len() + 1 + tlv_len);
    w.bytes(message);
    if !tlvs.is_empty() {
        w.u8(0);
        for t in tlvs {
            t.encode_into(&mut w)?;
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    #[test]
    fn message_only() {
        let p = parse_plaintext(b"hello");
        assert_eq!(
            p,
            Plaintext {
                message: b"hello".to_vec(),
                tlvs: vec![],
                corrupted: false
            }
        );
        assert_eq!(p.text(), Ok("hello"));
        assert_eq!(encode_plaintext(b"hello", &[]).unwrap(), b"hello");
        // A NUL with no TLVs after it.
        assert_eq!(
            parse_plaintext(b"hi\0"),
            Plaintext {
                message: b"hi".to_vec(),
                tlvs: vec![],
                corrupted: false
            }
        );
        assert_eq!(parse_plaintext(b""), Plaintext::default());
    }

    #[test]
    fn known_answer_encoding() {
        let bytes = encode_plaintext(
            b"hi",
            &[
                Tlv::disconnected(),
                Tlv::new(TlvType::SmpMessage1, vec![0xaa, 0xbb]),
            ],
        )
        .unwrap();
        assert_eq!(bytes, [b'h', b'i', 0, 0, 1, 0, 0, 0, 2, 0, 2, 0xaa, 0xbb]);
        let p = parse_plaintext(&bytes);
        assert_eq!(p.message, b"hi");
        assert_eq!(
            p.tlvs,
            vec![
                Tlv::disconnected(),
                Tlv::new(TlvType::SmpMessage1, vec![0xaa, 0xbb])
            ]
        );
        assert!(!p.corrupted);
    }

    #[test]
    fn unknown_type_is_skipped_but_later_tlvs_processed() {
        // Unknown type 9 with a 1-byte value, then SMP abort.
        let bytes = [b'x', 0, 0, 9, 0, 1, 0x55, 0, 6, 0, 0];
        let p = parse_plaintext(&bytes);
        assert_eq!(p.message, b"x");
        assert_eq!(
            p.tlvs,
            vec![Tlv::new(TlvType::Unknown(9), vec![0x55]), Tlv::smp_abort()]
        );
        assert!(p.corrupted);
        let known: Vec<_> = p.known_tlvs().map(|(i, t)| (i, t.typ)).collect();
        assert_eq!(known, vec![(1, TlvType::SmpAbort)]);
    }

    #[test]
    fn incomplete_tlv_stops_but_keeps_message_and_earlier_tlvs() {
        // Disconnected, then a TLV claiming 5 bytes with 2 present.
        let bytes = [b'm', 0, 0, 1, 0, 0, 0, 2, 0, 5, 1, 2];
        let p = parse_plaintext(&bytes);
        assert_eq!(p.message, b"m");
        assert_eq!(p.tlvs, vec![Tlv::disconnected()]);
        assert!(p.corrupted);
        // Header itself incomplete (3 bytes after the NUL).
        let p = parse_plaintext(&[b'm', 0, 0, 1, 0]);
        assert_eq!(p.message, b"m");
        assert!(p.tlvs.is_empty());
        assert!(p.corrupted);
    }

    #[test]
    fn only_first_nul_splits() {
        // The second NUL is the first byte of a TLV type (0x0000 = padding).
        let p = parse_plaintext(&[b'a', 0, 0, 0, 0, 1, 0]);
        assert_eq!(p.message, b"a");
        assert_eq!(p.tlvs, vec![Tlv::new(TlvType::Padding, vec![0])]);
    }

    #[test]
    fn encode_errors() {
        assert_eq!(
            encode_plaintext(b"a\0b", &[]),
            Err(DecodeError::BadValue("plaintext message contains NUL"))
        );
        let big = Tlv::new(TlvType::Padding, vec![0; MAX_TLV_VALUE_LEN + 1]);
        assert!(matches!(
            encode_plaintext(b"", &[big]),
            Err(DecodeError::LengthTooLarge {
                what: "TLV value",
                ..
            })
        ));
        assert_eq!(Tlv::padding(usize::MAX).value.len(), MAX_TLV_VALUE_LEN);
        assert!(encode_plaintext(b"", &[Tlv::padding(MAX_TLV_VALUE_LEN)]).is_ok());
    }

    #[test]
    fn invalid_utf8_message_is_reported() {
        let p = parse_plaintext(&[0xff, 0xfe]);
        assert_eq!(
            p.text(),
            Err(DecodeError::BadValue("plaintext message is not UTF-8"))
        );
    }

    #[test]
    fn extra_symmetric_key_helper() {
        let t = Tlv::extra_symmetric_key([0, 0, 0x10, 0x4a], b"file.txt");
        assert_eq!(t.value, b"\x00\x00\x10\x4afile.txt");
        assert_eq!(
            t.extra_symmetric_key_use(),
            Ok(ExtraSymKeyUse {
                context: [0, 0, 0x10, 0x4a],
                data: b"file.txt"
            })
        );
        let empty = Tlv::new(TlvType::ExtraSymmetricKey, vec![]);
        assert_eq!(
            empty.extra_symmetric_key_use(),
            Ok(ExtraSymKeyUse {
                context: [0; 4],
                data: &[]
            })
        );
        let short = Tlv::new(TlvType::ExtraSymmetricKey, vec![1, 2]);
        assert_eq!(
            short.extra_symmetric_key_use(),
            Err(DecodeError::Truncated {
                what: "extra symmetric key context"
            })
        );
        assert_eq!(
            Tlv::disconnected().extra_symmetric_key_use(),
            Err(DecodeError::BadValue(
                "TLV is not an extra symmetric key TLV"
            ))
        );
    }

    #[test]
    fn type_numbers_round_trip() {
        for v in 0..=20u16 {
            assert_eq!(TlvType::from_u16(v).to_u16(), v);
            assert_eq!(TlvType::from_u16(v).is_known(), v <= 7);
        }
    }

    proptest! {
        #[test]
        fn plaintext_round_trip(
            msg in proptest::collection::vec(1u8..=255, 0..64),
            tlvs in proptest::collection::vec((0u16..=7, proptest::collection::vec(any::<u8>(), 0..40)), 0..6),
        ) {
            let tlvs: Vec<Tlv> = tlvs.into_iter().map(|(t, v)| Tlv::new(TlvType::from_u16(t), v)).collect();
            let bytes = encode_plaintext(&msg, &tlvs).unwrap();
            let p = parse_plaintext(&bytes);
            prop_assert_eq!(p.message, msg);
            prop_assert_eq!(p.tlvs, tlvs);
            prop_assert!(!p.corrupted);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let p = parse_plaintext(&bytes);
            prop_assert!(p.message.len() <= bytes.len());
        }
    }
}
