//! OTRv3 TLV record types (Protocol-v3.html §"Data Message"). The plaintext layout
//! (message, NUL, records) is v4's, parsed by `crate::wire::tlv`; only the type numbers differ.

use alloc::vec::Vec;

use crate::wire::codec::DecodeError;
use crate::wire::tlv::{Plaintext, Tlv, TlvType, encode_plaintext, parse_plaintext};

/// An OTRv3 TLV type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum V3TlvType {
    /// 0: padding.
    Padding,
    /// 1: the peer closed the private connection.
    Disconnected,
    /// 2: SMP message 1.
    Smp1,
    /// 3: SMP message 2.
    Smp2,
    /// 4: SMP message 3.
    Smp3,
    /// 5: SMP message 4.
    Smp4,
    /// 6: SMP abort.
    SmpAbort,
    /// 7: SMP message 1 with a question.
    Smp1Q,
    /// 8: use of the extra symmetric key.
    ExtraSymmetricKey,
    /// Any other type: "Records with unrecognized types should be ignored."
    Unknown(u16),
}

impl V3TlvType {
    /// The type of a wire value.
    pub fn from_u16(v: u16) -> V3TlvType {
        match v {
            0 => V3TlvType::Padding,
            1 => V3TlvType::Disconnected,
            2 => V3TlvType::Smp1,
            3 => V3TlvType::Smp2,
            4 => V3TlvType::Smp3,
            5 => V3TlvType::Smp4,
            6 => V3TlvType::SmpAbort,
            7 => V3TlvType::Smp1Q,
            8 => V3TlvType::ExtraSymmetricKey,
            other => V3TlvType::Unknown(other),
        }
    }

    /// The wire value.
    pub fn to_u16(self) -> u16 {
        match self {
            V3TlvType::Padding => 0,
            V3TlvType::Disconnected => 1,
            V3TlvType::Smp1 => 2,
            V3TlvType::Smp2 => 3,
            V3TlvType::Smp3 => 4,
            V3TlvType::Smp4 => 5,
            V3TlvType::SmpAbort => 6,
            V3TlvType::Smp1Q => 7,
            V3TlvType::ExtraSymmetricKey => 8,
            V3TlvType::Unknown(v) => v,
        }
    }
}

/// One OTRv3 TLV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Tlv {
    /// The type.
    pub typ: V3TlvType,
    /// The value (at most 65535 bytes to be encodable).
    pub value: Vec<u8>,
}

/// A decrypted OTRv3 plaintext: the human-readable part and the TLVs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct V3Plaintext {
    /// Every byte before the first NUL.
    pub message: Vec<u8>,
    /// The records after the NUL, in order (unknown types kept, to be ignored).
    pub tlvs: Vec<V3Tlv>,
    /// Whether an incomplete final record was dropped.
    pub truncated: bool,
}

impl V3Plaintext {
    /// Parses a plaintext; never fails (an incomplete last record is dropped).
    pub fn parse(bytes: &[u8]) -> V3Plaintext {
        let Plaintext {
            message,
            tlvs,
            corrupted,
        } = parse_plaintext(bytes);
        let tlvs: Vec<V3Tlv> = tlvs
            .into_iter()
            .map(|t| V3Tlv {
                typ: V3TlvType::from_u16(t.typ.to_u16()),
                value: t.value,
            })
            .collect();
        // `corrupted` also covers v4-unknown types (8 and up); only truncation counts here.
        let whole: usize = message.len()
            + usize::from(!tlvs.is_empty() || bytes.contains(&0))
            + tlvs.iter().map(|t| 4 + t.value.len()).sum::<usize>();
        V3Plaintext {
            message,
            tlvs,
            truncated: corrupted && whole != bytes.len(),
        }
    }

    /// Encodes `message` and the records; fails on a NUL in `message` or an oversized value.
    pub fn encode(message: &[u8], tlvs: &[V3Tlv]) -> Result<Vec<u8>, DecodeError> {
        let tlvs: Vec<Tlv> = tlvs
            .iter()
            .map(|t| Tlv::new(TlvType::from_u16(t.typ.to_u16()), t.value.clone()))
            .collect();
        encode_plaintext(message, &tlvs)
    }

    /// Whether a Disconnected record is present.
    pub fn has_disconnect(&self) -> bool {
        self.tlvs.iter().any(|t| t.typ == V3TlvType::Disconnected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_numbers_and_round_trip() {
        for v in 0..=9u16 {
            assert_eq!(V3TlvType::from_u16(v).to_u16(), v);
        }
        assert_eq!(V3TlvType::from_u16(7), V3TlvType::Smp1Q);
        assert_eq!(V3TlvType::from_u16(8), V3TlvType::ExtraSymmetricKey);
        let tlvs = [
            V3Tlv {
                typ: V3TlvType::Disconnected,
                value: Vec::new(),
            },
            V3Tlv {
                typ: V3TlvType::ExtraSymmetricKey,
                value: alloc::vec![0, 0, 0, 1, 9],
            },
        ];
        let bytes = V3Plaintext::encode(b"hi", &tlvs).unwrap();
        // The spec's example layout: type, length, value.
        assert_eq!(
            bytes,
            b"hi\0\x00\x01\x00\x00\x00\x08\x00\x05\x00\x00\x00\x01\x09"
        );
        let p = V3Plaintext::parse(&bytes);
        assert_eq!(p.message, b"hi");
        assert_eq!(p.tlvs, tlvs);
        assert!(!p.truncated && p.has_disconnect());
        let cut = V3Plaintext::parse(&bytes[..bytes.len() - 1]);
        assert!(cut.truncated);
        assert_eq!(cut.tlvs.len(), 1);
    }
}
