//! The TLV values of SMP messages 1–4 (otrv4.md §"SMP Message 1" … §"SMP Message 4"):
//! typed structs with strict, bounded decoding (every POINT validated, every SCALAR canonical).

use alloc::vec::Vec;

use crate::crypto::ed448::{POINT_LEN, Point, SCALAR_LEN, Scalar};
use crate::wire::codec::{Codec, DecodeError, Reader, Writer};
use crate::wire::tlv::{MAX_TLV_VALUE_LEN, Tlv, TlvType};

/// Bytes of SMP message 1 besides the question: DATA length, 2 POINTs, 4 SCALARs.
const MSG1_FIXED_LEN: usize = 4 + 2 * POINT_LEN + 4 * SCALAR_LEN;

/// The longest question that fits in a type 2 TLV (whose length is a SHORT).
pub const MAX_QUESTION_LEN: usize = MAX_TLV_VALUE_LEN - MSG1_FIXED_LEN;

/// Encoded length of SMP message 2: 4 POINTs and 7 SCALARs.
#[cfg(feature = "hazmat")]
pub const SMP_MESSAGE_2_LEN: usize = 4 * POINT_LEN + 7 * SCALAR_LEN;
/// Encoded length of SMP message 3: 3 POINTs and 5 SCALARs.
#[cfg(feature = "hazmat")]
pub const SMP_MESSAGE_3_LEN: usize = 3 * POINT_LEN + 5 * SCALAR_LEN;
/// Encoded length of SMP message 4: 1 POINT and 2 SCALARs.
#[cfg(feature = "hazmat")]
pub const SMP_MESSAGE_4_LEN: usize = POINT_LEN + 2 * SCALAR_LEN;

/// SMP message 1, the value of a type 2 TLV (otrv4.md §"SMP Message 1"):
/// `Question (DATA) || G2a || c2 || d2 || G3a || c3 || d3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmpMessage1 {
    /// The user-specified question; empty when there is none ("length 0 and value NULL").
    pub question: Vec<u8>,
    /// Alice's half of the exchange determining G2.
    pub g2a: Point,
    /// Challenge of the proof of knowledge of `a2`.
    pub c2: Scalar,
    /// Response of the proof of knowledge of `a2`.
    pub d2: Scalar,
    /// Alice's half of the exchange determining G3.
    pub g3a: Point,
    /// Challenge of the proof of knowledge of `a3`.
    pub c3: Scalar,
    /// Response of the proof of knowledge of `a3`.
    pub d3: Scalar,
}

/// SMP message 2, the value of a type 3 TLV (otrv4.md §"SMP Message 2"):
/// `G2b || c2 || d2 || G3b || c3 || d3 || Pb || Qb || cp || d5 || d6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmpMessage2 {
    /// Bob's half of the exchange determining G2.
    pub g2b: Point,
    /// Challenge of the proof of knowledge of `b2`.
    pub c2: Scalar,
    /// Response of the proof of knowledge of `b2`.
    pub d2: Scalar,
    /// Bob's half of the exchange determining G3.
    pub g3b: Point,
    /// Challenge of the proof of knowledge of `b3`.
    pub c3: Scalar,
    /// Response of the proof of knowledge of `b3`.
    pub d3: Scalar,
    /// `Pb = G3 * r4`.
    pub pb: Point,
    /// `Qb = G * r4 + G2 * y`.
    pub qb: Point,
    /// Challenge of the proof that `Pb`, `Qb` were built per the protocol.
    pub cp: Scalar,
    /// First response of that proof.
    pub d5: Scalar,
    /// Second response of that proof.
    pub d6: Scalar,
}

/// SMP message 3, the value of a type 4 TLV (otrv4.md §"SMP Message 3"):
/// `Pa || Qa || cp || d5 || d6 || Ra || cr || d7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmpMessage3 {
    /// `Pa = G3 * r4`.
    pub pa: Point,
    /// `Qa = G * r4 + G2 * x`.
    pub qa: Point,
    /// Challenge of the proof that `Pa`, `Qa` were built per the protocol.
    pub cp: Scalar,
    /// First response of that proof.
    pub d5: Scalar,
    /// Second response of that proof.
    pub d6: Scalar,
    /// `Ra = (Qa - Qb) * a3`.
    pub ra: Point,
    /// Challenge of the proof that `Ra` was built per the protocol.
    pub cr: Scalar,
    /// Response of that proof.
    pub d7: Scalar,
}

/// SMP message 4, the value of a type 5 TLV (otrv4.md §"SMP Message 4"): `Rb || cr || d7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmpMessage4 {
    /// `Rb = (Qa - Qb) * b3`.
    pub rb: Point,
    /// Challenge of the proof that `Rb` was built per the protocol.
    pub cr: Scalar,
    /// Response of that proof.
    pub d7: Scalar,
}

/// The TLV value (otrv4.md §"SMP Message 1"); a value longer than the message is
/// rejected by [`Codec::decode`] as trailing bytes. The question's length is checked against
/// the input before it is copied.
impl Codec for SmpMessage1 {
    fn write(&self, w: &mut Vec<u8>) {
        w.data(&self.question);
        w.point(&self.g2a);
        w.scalar(&self.c2);
        w.scalar(&self.d2);
        w.point(&self.g3a);
        w.scalar(&self.c3);
        w.scalar(&self.d3);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let question = r.data("SMP question")?.to_vec();
        let msg = SmpMessage1 {
            question,
            g2a: r.point("G2a")?,
            c2: r.scalar("c2")?,
            d2: r.scalar("d2")?,
            g3a: r.point("G3a")?,
            c3: r.scalar("c3")?,
            d3: r.scalar("d3")?,
        };
        Ok(msg)
    }
}

impl SmpMessage1 {
    /// A type 2 TLV carrying this message. Fails if the question is longer than
    /// [`MAX_QUESTION_LEN`] (the TLV length is a SHORT).
    pub fn to_tlv(&self) -> Result<Tlv, DecodeError> {
        if self.question.len() > MAX_QUESTION_LEN {
            return Err(DecodeError::LengthTooLarge {
                what: "SMP question",
                len: self.question.len() as u64,
                limit: MAX_QUESTION_LEN as u64,
            });
        }
        Ok(Tlv::new(TlvType::SmpMessage1, self.encode()))
    }
}

/// The TLV value (otrv4.md §"SMP Message 2"); a value longer than the message is
/// rejected by [`Codec::decode`] as trailing bytes.
impl Codec for SmpMessage2 {
    fn write(&self, w: &mut Vec<u8>) {
        w.point(&self.g2b);
        w.scalar(&self.c2);
        w.scalar(&self.d2);
        w.point(&self.g3b);
        w.scalar(&self.c3);
        w.scalar(&self.d3);
        w.point(&self.pb);
        w.point(&self.qb);
        w.scalar(&self.cp);
        w.scalar(&self.d5);
        w.scalar(&self.d6);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let msg = SmpMessage2 {
            g2b: r.point("G2b")?,
            c2: r.scalar("c2")?,
            d2: r.scalar("d2")?,
            g3b: r.point("G3b")?,
            c3: r.scalar("c3")?,
            d3: r.scalar("d3")?,
            pb: r.point("Pb")?,
            qb: r.point("Qb")?,
            cp: r.scalar("cp")?,
            d5: r.scalar("d5")?,
            d6: r.scalar("d6")?,
        };
        Ok(msg)
    }
}

impl SmpMessage2 {
    /// A type 3 TLV carrying this message.
    pub fn to_tlv(&self) -> Tlv {
        Tlv::new(TlvType::SmpMessage2, self.encode())
    }
}

/// The TLV value (otrv4.md §"SMP Message 3"); a value longer than the message is
/// rejected by [`Codec::decode`] as trailing bytes.
impl Codec for SmpMessage3 {
    fn write(&self, w: &mut Vec<u8>) {
        w.point(&self.pa);
        w.point(&self.qa);
        w.scalar(&self.cp);
        w.scalar(&self.d5);
        w.scalar(&self.d6);
        w.point(&self.ra);
        w.scalar(&self.cr);
        w.scalar(&self.d7);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let msg = SmpMessage3 {
            pa: r.point("Pa")?,
            qa: r.point("Qa")?,
            cp: r.scalar("cp")?,
            d5: r.scalar("d5")?,
            d6: r.scalar("d6")?,
            ra: r.point("Ra")?,
            cr: r.scalar("cr")?,
            d7: r.scalar("d7")?,
        };
        Ok(msg)
    }
}

impl SmpMessage3 {
    /// A type 4 TLV carrying this message.
    pub fn to_tlv(&self) -> Tlv {
        Tlv::new(TlvType::SmpMessage3, self.encode())
    }
}

/// The TLV value (otrv4.md §"SMP Message 4"); a value longer than the message is
/// rejected by [`Codec::decode`] as trailing bytes.
impl Codec for SmpMessage4 {
    fn write(&self, w: &mut Vec<u8>) {
        w.point(&self.rb);
        w.scalar(&self.cr);
        w.scalar(&self.d7);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let msg = SmpMessage4 {
            rb: r.point("Rb")?,
            cr: r.scalar("cr")?,
            d7: r.scalar("d7")?,
        };
        Ok(msg)
    }
}

impl SmpMessage4 {
    /// A type 5 TLV carrying this message.
    pub fn to_tlv(&self) -> Tlv {
        Tlv::new(TlvType::SmpMessage4, self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ed448::GENERATOR_BYTES;
    use alloc::vec;
    use proptest::prelude::*;

    fn point(k: u64) -> Point {
        Point::mul_base(&Scalar::from(k)).unwrap()
    }

    fn sc(k: u64) -> Scalar {
        Scalar::from(k)
    }

    fn msg1(question: &[u8]) -> SmpMessage1 {
        SmpMessage1 {
            question: question.to_vec(),
            g2a: point(2),
            c2: sc(3),
            d2: sc(4),
            g3a: point(5),
            c3: sc(6),
            d3: sc(7),
        }
    }

    fn msg2() -> SmpMessage2 {
        SmpMessage2 {
            g2b: point(11),
            c2: sc(12),
            d2: sc(13),
            g3b: point(14),
            c3: sc(15),
            d3: sc(16),
            pb: point(17),
            qb: point(18),
            cp: sc(19),
            d5: sc(20),
            d6: sc(21),
        }
    }

    fn msg3() -> SmpMessage3 {
        SmpMessage3 {
            pa: point(31),
            qa: point(32),
            cp: sc(33),
            d5: sc(34),
            d6: sc(35),
            ra: point(36),
            cr: sc(37),
            d7: sc(38),
        }
    }

    fn msg4() -> SmpMessage4 {
        SmpMessage4 {
            rb: point(41),
            cr: sc(42),
            d7: sc(43),
        }
    }

    /// Field offsets of the fixed-layout messages: (name, offset, is_point).
    fn layout(fields: &[(&'static str, bool)], start: usize) -> Vec<(&'static str, usize, bool)> {
        let mut off = start;
        fields
            .iter()
            .map(|&(n, p)| {
                let here = off;
                off += 57;
                (n, here, p)
            })
            .collect()
    }

    /// (message number, encoding, offset of the first fixed field, field list).
    type Case = (usize, Vec<u8>, usize, &'static [(&'static str, bool)]);

    const M1: &[(&str, bool)] = &[
        ("G2a", true),
        ("c2", false),
        ("d2", false),
        ("G3a", true),
        ("c3", false),
        ("d3", false),
    ];
    const M2: &[(&str, bool)] = &[
        ("G2b", true),
        ("c2", false),
        ("d2", false),
        ("G3b", true),
        ("c3", false),
        ("d3", false),
        ("Pb", true),
        ("Qb", true),
        ("cp", false),
        ("d5", false),
        ("d6", false),
    ];
    const M3: &[(&str, bool)] = &[
        ("Pa", true),
        ("Qa", true),
        ("cp", false),
        ("d5", false),
        ("d6", false),
        ("Ra", true),
        ("cr", false),
        ("d7", false),
    ];
    const M4: &[(&str, bool)] = &[("Rb", true), ("cr", false), ("d7", false)];

    fn decode_any(n: usize, b: &[u8]) -> Result<(), DecodeError> {
        match n {
            1 => SmpMessage1::decode(b).map(|_| ()),
            2 => SmpMessage2::decode(b).map(|_| ()),
            3 => SmpMessage3::decode(b).map(|_| ()),
            _ => SmpMessage4::decode(b).map(|_| ()),
        }
    }

    #[test]
    fn known_layout_of_message_1() {
        let m = msg1(b"why?");
        let b = m.encode();
        assert_eq!(b.len(), 4 + 4 + 6 * 57);
        assert_eq!(&b[..8], b"\x00\x00\x00\x04why?");
        assert_eq!(&b[8..65], &point(2).encode());
        assert_eq!(&b[65..122], &sc(3).encode());
        assert_eq!(b[65], 3);
        assert_eq!(&b[179..236], &point(5).encode());
        assert_eq!(SmpMessage1::decode(&b).unwrap(), m);
        // No question: length 0.
        let b = msg1(b"").encode();
        assert_eq!(&b[..4], &[0, 0, 0, 0]);
        assert_eq!(b.len(), MSG1_FIXED_LEN);
        let t = msg1(b"q").to_tlv().unwrap();
        assert_eq!(t.typ, TlvType::SmpMessage1);
    }

    #[test]
    fn fixed_lengths() {
        assert_eq!(msg2().encode().len(), SMP_MESSAGE_2_LEN);
        assert_eq!(SMP_MESSAGE_2_LEN, 627);
        assert_eq!(msg3().encode().len(), SMP_MESSAGE_3_LEN);
        assert_eq!(SMP_MESSAGE_3_LEN, 456);
        assert_eq!(msg4().encode().len(), SMP_MESSAGE_4_LEN);
        assert_eq!(SMP_MESSAGE_4_LEN, 171);
        assert_eq!(msg2().to_tlv().typ, TlvType::SmpMessage2);
        assert_eq!(msg3().to_tlv().typ, TlvType::SmpMessage3);
        assert_eq!(msg4().to_tlv().typ, TlvType::SmpMessage4);
        assert_eq!(&msg4().encode()[..57], &point(41).encode());
        assert_eq!(&msg4().encode()[57..114], &sc(42).encode());
    }

    #[test]
    fn question_too_long_for_a_tlv() {
        assert!(msg1(&vec![b'a'; MAX_QUESTION_LEN]).to_tlv().is_ok());
        assert_eq!(
            msg1(&vec![b'a'; MAX_QUESTION_LEN + 1]).to_tlv(),
            Err(DecodeError::LengthTooLarge {
                what: "SMP question",
                len: MAX_QUESTION_LEN as u64 + 1,
                limit: MAX_QUESTION_LEN as u64,
            })
        );
    }

    #[test]
    fn invalid_points_are_rejected_by_name() {
        let identity = {
            let mut b = [0u8; 57];
            b[0] = 1;
            b
        };
        // y = 0 decodes to a point of order 4: on the curve, not in the subgroup.
        let small_order = [0u8; 57];
        let y_too_big = {
            let mut b = [0xffu8; 57];
            b[56] = 0;
            b
        };
        let stray_bits = {
            let mut b = GENERATOR_BYTES;
            b[56] |= 0x01;
            b
        };
        let cases: [Case; 4] = [
            (1, msg1(b"q").encode(), 5, M1),
            (2, msg2().encode(), 0, M2),
            (3, msg3().encode(), 0, M3),
            (4, msg4().encode(), 0, M4),
        ];
        for (n, good, start, fields) in cases {
            decode_any(n, &good).unwrap();
            for (name, off, is_point) in layout(fields, start) {
                if !is_point {
                    continue;
                }
                for bad in [identity, small_order, y_too_big, stray_bits] {
                    let mut b = good.clone();
                    b[off..off + 57].copy_from_slice(&bad);
                    assert_eq!(
                        decode_any(n, &b),
                        Err(DecodeError::BadPoint(name)),
                        "message {n} field {name}"
                    );
                }
            }
        }
    }

    #[test]
    fn non_canonical_scalars_are_rejected_by_name() {
        // q itself (little-endian) and a value with byte 56 set.
        let mut q_le = crate::crypto::ed448::ORDER_BYTES_BE;
        q_le.reverse();
        let mut q57 = [0u8; 57];
        q57[..56].copy_from_slice(&q_le);
        let mut high = [0u8; 57];
        high[56] = 1;
        let cases: [Case; 4] = [
            (1, msg1(b"").encode(), 4, M1),
            (2, msg2().encode(), 0, M2),
            (3, msg3().encode(), 0, M3),
            (4, msg4().encode(), 0, M4),
        ];
        for (n, good, start, fields) in cases {
            for (name, off, is_point) in layout(fields, start) {
                if is_point {
                    continue;
                }
                for bad in [q57, high] {
                    let mut b = good.clone();
                    b[off..off + 57].copy_from_slice(&bad);
                    assert_eq!(
                        decode_any(n, &b),
                        Err(DecodeError::BadScalar(name)),
                        "message {n} field {name}"
                    );
                }
            }
        }
    }

    #[test]
    fn truncation_and_trailing_bytes() {
        for (n, good) in [
            (1, msg1(b"hello").encode()),
            (2, msg2().encode()),
            (3, msg3().encode()),
            (4, msg4().encode()),
        ] {
            for cut in [0, 1, good.len() / 2, good.len() - 1] {
                assert!(
                    matches!(
                        decode_any(n, &good[..cut]),
                        Err(DecodeError::Truncated { .. } | DecodeError::LengthTooLarge { .. })
                    ),
                    "message {n} cut at {cut}"
                );
            }
            let mut long = good.clone();
            long.push(0);
            assert_eq!(decode_any(n, &long), Err(DecodeError::TrailingBytes(1)));
        }
        // A question length beyond the input is refused before allocating.
        let mut b = msg1(b"").encode();
        b[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            SmpMessage1::decode(&b),
            Err(DecodeError::LengthTooLarge {
                what: "SMP question",
                len: u32::MAX as u64,
                limit: MSG1_FIXED_LEN as u64 - 4,
            })
        );
    }

    fn arb_point() -> impl Strategy<Value = Point> {
        (1u64..u64::MAX).prop_map(point)
    }

    fn arb_scalar() -> impl Strategy<Value = Scalar> {
        any::<[u8; 32]>().prop_map(|b| {
            let mut w = [0u8; 57];
            w[..32].copy_from_slice(&b);
            Scalar::from_bytes_mod_order(&w)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn message_1_round_trip(
            question in proptest::collection::vec(any::<u8>(), 0..200),
            g2a in arb_point(), g3a in arb_point(),
            c2 in arb_scalar(), d2 in arb_scalar(), c3 in arb_scalar(), d3 in arb_scalar(),
        ) {
            let m = SmpMessage1 { question, g2a, c2, d2, g3a, c3, d3 };
            let b = m.encode();
            prop_assert_eq!(b.len(), MSG1_FIXED_LEN + m.question.len());
            prop_assert_eq!(SmpMessage1::decode(&b).unwrap(), m);
        }

        #[test]
        fn message_2_round_trip(
            g2b in arb_point(), g3b in arb_point(), pb in arb_point(), qb in arb_point(),
            c2 in arb_scalar(), d2 in arb_scalar(), c3 in arb_scalar(), d3 in arb_scalar(),
            cp in arb_scalar(), d5 in arb_scalar(), d6 in arb_scalar(),
        ) {
            let m = SmpMessage2 { g2b, c2, d2, g3b, c3, d3, pb, qb, cp, d5, d6 };
            prop_assert_eq!(SmpMessage2::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn message_3_round_trip(
            pa in arb_point(), qa in arb_point(), ra in arb_point(),
            cp in arb_scalar(), d5 in arb_scalar(), d6 in arb_scalar(),
            cr in arb_scalar(), d7 in arb_scalar(),
        ) {
            let m = SmpMessage3 { pa, qa, cp, d5, d6, ra, cr, d7 };
            prop_assert_eq!(SmpMessage3::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn message_4_round_trip(rb in arb_point(), cr in arb_scalar(), d7 in arb_scalar()) {
            let m = SmpMessage4 { rb, cr, d7 };
            prop_assert_eq!(SmpMessage4::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn decoders_never_panic(n in 1usize..=4, bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
            let _ = decode_any(n, &bytes);
        }
    }
}
