use super::*;
use crate::crypto::keys::Ed448PublicKey;
use crate::instance_tag::InstanceTag;
use crate::profile::prekey::PREKEY_PROFILE_LEN;
use crate::testutil::*;
use crate::wire::codec::{Codec, DecodeError};
use crate::wire::messages::{MAC_LEN, MIN_PREKEY_MESSAGE_LEN, PrekeyEnsemble, PrekeyMessage};
use alloc::boxed::Box;
use core::fmt;
use proptest::prelude::*;

const S: InstanceTag = InstanceTag(0x0a0b_0c0d);

fn sender_tag() -> impl Strategy<Value = InstanceTag> {
    (0x100u32..=u32::MAX).prop_map(InstanceTag)
}

fn receiver_tag() -> impl Strategy<Value = InstanceTag> {
    prop_oneof![Just(InstanceTag(0)), sender_tag()]
}

fn ecdh_proof(seed: u64) -> EcdhProof {
    EcdhProof {
        c: [seed as u8; PROOF_C_LEN],
        v: scalar(&mut rng(seed)),
    }
}

fn dh_proof(seed: u64, len: usize) -> DhProof {
    let mut v = alloc::vec![seed as u8 | 1; len];
    if let Some(f) = v.first_mut() {
        *f = 0x80;
    }
    DhProof {
        c: [!(seed as u8); PROOF_C_LEN],
        v,
    }
}

fn pm(seed: u64, tag: InstanceTag) -> PrekeyMessage {
    PrekeyMessage {
        id: seed as u32,
        owner_tag: tag,
        y: point(seed),
        b: dh((seed % 3000) as u32 + 1),
    }
}

fn publication(
    seed: u64,
    tag: InstanceTag,
    n: usize,
    k: bool,
    j: bool,
    dh_len: usize,
) -> PrekeyPublication {
    let prekey_messages = (n > 0).then(|| {
        PublishedPrekeyMessages::new(
            (0..n as u64).map(|i| pm(seed + i, tag)).collect(),
            ecdh_proof(seed),
            dh_proof(seed, dh_len),
        )
        .unwrap()
    });
    PrekeyPublication {
        prekey_messages,
        client_profile: k.then(|| client_profile(seed, tag)),
        prekey_profile: j.then(|| (prekey_profile(seed, tag), ecdh_proof(seed + 1))),
        mac: [seed as u8; MAC_LEN],
    }
}

fn ensemble(seed: u64, tag: InstanceTag) -> PrekeyEnsemble {
    PrekeyEnsemble {
        client_profile: client_profile(seed, tag),
        prekey_profile: prekey_profile(seed, tag),
        prekey_message: pm(seed, tag),
    }
}

fn round_trip<T: PartialEq + fmt::Debug>(
    x: &T,
    encode: impl Fn(&T) -> Vec<u8>,
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
) -> Vec<u8> {
    let b = encode(x);
    let y = decode(&b).unwrap();
    assert_eq!(&y, x);
    assert_eq!(encode(&y), b);
    b
}

fn server_round_trip<T: PartialEq + fmt::Debug>(
    x: &T,
    encode: impl Fn(&T) -> Vec<u8>,
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
    wrap: impl Fn(T) -> PrekeyServerMessage,
) {
    let b = round_trip(x, encode, &decode);
    let m = PrekeyServerMessage::decode(&b).unwrap();
    assert_eq!(m.encode(), b);
    assert_eq!(m, wrap(decode(&b).unwrap()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn dake1_round_trips(seed in any::<u64>(), s in sender_tag()) {
        let m = Dake1 { sender_tag: s, client_profile: client_profile(seed, s), i: point(seed + 1) };
        server_round_trip(&m, Dake1::encode, Dake1::decode, PrekeyServerMessage::Dake1);
    }

    #[test]
    fn dake2_round_trips(seed in any::<u64>(), r in receiver_tag(), id in proptest::collection::vec(any::<u8>(), 0..40)) {
        let m = Dake2 {
            receiver_tag: r,
            composite_identity: CompositeIdentity { identity: id, public_key: Ed448PublicKey(point(seed)) },
            s: point(seed + 1),
            sigma: ring_sig(seed),
        };
        server_round_trip(&m, Dake2::encode, Dake2::decode, PrekeyServerMessage::Dake2);
    }

    #[test]
    fn dake3_round_trips(seed in any::<u64>(), s in sender_tag(), n in 0usize..3, k in any::<bool>(), j in any::<bool>(), dh_len in 1usize..=384, mac in any::<[u8; 8]>()) {
        let inner = Dake3Inner::Publication(Box::new(publication(seed, s, n, k, j, dh_len)));
        let m = Dake3::new(s, ring_sig(seed), &inner);
        server_round_trip(&m, Dake3::encode, Dake3::decode, PrekeyServerMessage::Dake3);
        prop_assert_eq!(m.inner().unwrap(), inner);
        let mut full = [0u8; MAC_LEN];
        full[..8].copy_from_slice(&mac);
        let inner = Dake3Inner::StorageInfoRequest(StorageInfoRequest { mac: full });
        let m = Dake3::new(s, ring_sig(seed), &inner);
        prop_assert_eq!(Dake3::decode(&m.encode()).unwrap().inner().unwrap(), inner);
    }

    #[test]
    fn publication_round_trips(seed in any::<u64>(), s in sender_tag(), n in 0usize..4, k in any::<bool>(), j in any::<bool>(), dh_len in 1usize..=384) {
        let p = publication(seed, s, n, k, j, dh_len);
        let b = round_trip(&p, PrekeyPublication::encode, PrekeyPublication::decode);
        prop_assert_eq!(p.n() as usize, n);
        prop_assert_eq!(Dake3Inner::decode(&b).unwrap(), Dake3Inner::Publication(Box::new(p)));
    }

    #[test]
    fn simple_server_messages_round_trip(r in receiver_tag(), s in sender_tag(), count in any::<u32>(), mac in any::<u8>(),
                                        id in proptest::collection::vec(any::<u8>(), 0..40), v in proptest::collection::vec(any::<u8>(), 0..6)) {
        let mac = [mac; MAC_LEN];
        server_round_trip(&StorageStatus { receiver_tag: r, stored_prekey_messages: count, mac }, StorageStatus::encode, StorageStatus::decode, PrekeyServerMessage::StorageStatus);
        server_round_trip(&Success { receiver_tag: r, mac }, Success::encode, Success::decode, PrekeyServerMessage::Success);
        server_round_trip(&Failure { receiver_tag: r, mac }, Failure::encode, Failure::decode, PrekeyServerMessage::Failure);
        server_round_trip(&EnsembleQuery { sender_tag: s, identity: id.clone(), versions: v.clone() }, EnsembleQuery::encode, EnsembleQuery::decode, PrekeyServerMessage::EnsembleQuery);
        server_round_trip(&NoPrekeyEnsembles { receiver_tag: r, identity: id, message: v }, NoPrekeyEnsembles::encode, NoPrekeyEnsembles::decode, PrekeyServerMessage::NoPrekeyEnsembles);
        round_trip(&StorageInfoRequest { mac }, StorageInfoRequest::encode, StorageInfoRequest::decode);
    }

    #[test]
    fn ensemble_retrieval_round_trips(seed in any::<u64>(), r in receiver_tag(), tag in sender_tag(), l in 1usize..3) {
        let m = EnsembleRetrieval::new(r, b"alice@example.org".to_vec(), (0..l as u64).map(|i| ensemble(seed + i, tag)).collect()).unwrap();
        server_round_trip(&m, EnsembleRetrieval::encode, EnsembleRetrieval::decode, PrekeyServerMessage::EnsembleRetrieval);
        prop_assert_eq!(m.ensembles().len(), l);
    }
}

fn basic_checks<T: fmt::Debug>(b: &[u8], decode: impl Fn(&[u8]) -> Result<T, DecodeError> + Copy) {
    assert_header_checked(b, decode);
    assert_trailing_rejected(b, decode);
    assert_truncations_fail(b, decode);
}

#[test]
fn fixed_layouts() {
    let mac = [0xee; MAC_LEN];
    let b = StorageStatus {
        receiver_tag: S,
        stored_prekey_messages: 0x0102_0304,
        mac,
    }
    .encode();
    assert_eq!(&b[..11], &[0, 4, 0x0b, 0x0a, 0x0b, 0x0c, 0x0d, 1, 2, 3, 4]);
    assert_eq!(&b[11..], &mac);
    basic_checks(&b, StorageStatus::decode);
    assert_bad_tag(&b, 3, 0xff, StorageStatus::decode);

    for (ty, b) in [
        (
            TYPE_SUCCESS,
            Success {
                receiver_tag: S,
                mac,
            }
            .encode(),
        ),
        (
            TYPE_FAILURE,
            Failure {
                receiver_tag: S,
                mac,
            }
            .encode(),
        ),
    ] {
        assert_eq!(&b[..7], &[0, 4, ty, 0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(b.len(), 7 + MAC_LEN);
    }
    let b = Success {
        receiver_tag: S,
        mac,
    }
    .encode();
    basic_checks(&b, Success::decode);
    assert_bad_tag(&b, 3, 0x01, Success::decode);
    let b = Failure {
        receiver_tag: InstanceTag(0),
        mac,
    }
    .encode();
    basic_checks(&b, Failure::decode);
    assert_bad_tag(&b, 3, 0xfe, Failure::decode);

    let b = StorageInfoRequest { mac }.encode();
    assert_eq!(&b[..3], &[0, 4, 0x09]);
    assert_eq!(b.len(), 3 + MAC_LEN);
    basic_checks(&b, StorageInfoRequest::decode);

    let b = EnsembleQuery {
        sender_tag: S,
        identity: b"bob".to_vec(),
        versions: b"4".to_vec(),
    }
    .encode();
    assert_eq!(
        b,
        [
            0, 4, 0x10, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0, 0, 3, b'b', b'o', b'b', 0, 0, 0, 1, b'4'
        ]
    );
    basic_checks(&b, EnsembleQuery::decode);
    assert_bad_tag(&b, 3, 0, EnsembleQuery::decode);
    let over = splice(&b, 7, 4, &[0, 0, 0, 100]);
    assert!(matches!(
        EnsembleQuery::decode(&over).unwrap_err(),
        DecodeError::LengthTooLarge { .. }
    ));

    let nope = NoPrekeyEnsembles {
        receiver_tag: S,
        identity: b"bob".to_vec(),
        message: NO_PREKEY_ENSEMBLES_TEXT.to_vec(),
    };
    let b = nope.encode();
    assert_eq!(
        &b[..14],
        &[
            0, 4, 0x0e, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0, 0, 3, b'b', b'o', b'b'
        ]
    );
    basic_checks(&b, NoPrekeyEnsembles::decode);
    assert_bad_tag(&b, 3, 0x10, NoPrekeyEnsembles::decode);
    let over = splice(&b, 14, 4, &[0xff, 0xff, 0xff, 0xff]);
    assert!(matches!(
        NoPrekeyEnsembles::decode(&over).unwrap_err(),
        DecodeError::LengthTooLarge { .. }
    ));
}

#[test]
fn dake_messages_malformed() {
    let d1 = Dake1 {
        sender_tag: S,
        client_profile: client_profile(1, S),
        i: point(2),
    };
    let b = d1.encode();
    basic_checks(&b, Dake1::decode);
    assert_bad_tag(&b, 3, 0xff, Dake1::decode);
    assert_bad_point(&b, b.len() - 57, Dake1::decode);
    let b2 = splice(&b, 7 + 4, 2, &[0, 0x20]);
    assert_eq!(
        Dake1::decode(&b2).unwrap_err(),
        DecodeError::BadProfile("unknown field type")
    );

    let d2 = Dake2 {
        receiver_tag: S,
        composite_identity: CompositeIdentity {
            identity: b"prekey.example.org".to_vec(),
            public_key: Ed448PublicKey(point(3)),
        },
        s: point(4),
        sigma: ring_sig(5),
    };
    let b = d2.encode();
    basic_checks(&b, Dake2::decode);
    assert_bad_tag(&b, 3, 0xff, Dake2::decode);
    let key_at = 7 + 4 + 18;
    assert_eq!(&b[key_at..key_at + 2], &[0x10, 0x00]);
    assert_eq!(
        d2.composite_identity.encode(),
        b[7..key_at + 2 + 57].to_vec()
    );
    let b2 = splice(&b, key_at, 2, &[0x11, 0x00]);
    assert_eq!(
        Dake2::decode(&b2).unwrap_err(),
        DecodeError::BadKeyType {
            what: "ED448-PUBKEY",
            found: 0x0011
        }
    );
    assert_bad_point(&b, key_at + 2, Dake2::decode);
    assert_bad_point(&b, key_at + 2 + 57, Dake2::decode);
    let over = splice(&b, 7, 4, &[0x10, 0, 0, 0]);
    assert!(matches!(
        Dake2::decode(&over).unwrap_err(),
        DecodeError::LengthTooLarge { .. }
    ));
    let b2 = splice(&b, b.len() - 57, 57, &[0xff; 57]);
    assert!(matches!(
        Dake2::decode(&b2).unwrap_err(),
        DecodeError::BadScalar(_)
    ));

    let d3 = Dake3::new(
        S,
        ring_sig(6),
        &Dake3Inner::StorageInfoRequest(StorageInfoRequest { mac: [1; MAC_LEN] }),
    );
    let b = d3.encode();
    basic_checks(&b, Dake3::decode);
    assert_bad_tag(&b, 3, 0xff, Dake3::decode);
    let data_at = 7 + 6 * 57;
    let over = splice(&b, data_at, 4, &[0, 0, 1, 0]);
    assert!(matches!(
        Dake3::decode(&over).unwrap_err(),
        DecodeError::LengthTooLarge { .. }
    ));
    // The enclosed message is decoded lazily and checked on its own.
    let bad_inner = Dake3 {
        sender_tag: S,
        sigma: ring_sig(6),
        message: alloc::vec![0, 4, 0x0b],
    };
    let back = Dake3::decode(&bad_inner.encode()).unwrap();
    assert_eq!(back.inner().unwrap_err(), DecodeError::BadMessageType(0x0b));
    assert_eq!(
        Dake3Inner::decode(&[0, 5, 8]).unwrap_err(),
        DecodeError::BadVersion(5)
    );
    assert!(matches!(
        Dake3Inner::decode(&[0, 4]).unwrap_err(),
        DecodeError::Truncated { .. }
    ));
}

#[test]
fn publication_malformed() {
    let p = publication(1, S, 2, true, true, 3);
    let b = p.encode();
    basic_checks(&b, PrekeyPublication::decode);
    // Layout: header, N, two prekey messages, K, client profile, J, prekey profile, proofs, MAC.
    assert_eq!(b[3], 2);
    let pm_len = p.prekey_messages_bytes().len();
    assert_eq!(pm_len, 2 * MIN_PREKEY_MESSAGE_LEN); // B = 2^2 and 2^3: one byte each
    let k_at = 4 + pm_len;
    assert_eq!(b[k_at], 1);
    let cp_len = client_profile(1, S).encode().len();
    let j_at = k_at + 1 + cp_len;
    assert_eq!(b[j_at], 1);
    let proofs_at = j_at + 1 + PREKEY_PROFILE_LEN;
    assert_eq!(&b[proofs_at..b.len() - MAC_LEN], &p.proofs_bytes()[..]);
    assert_eq!(p.proofs_bytes().len(), (64 + 57) + (64 + 4 + 3) + (64 + 57));
    // K and J must be 0 or 1.
    assert_eq!(
        PrekeyPublication::decode(&splice(&b, k_at, 1, &[2])).unwrap_err(),
        DecodeError::BadValue("K")
    );
    assert_eq!(
        PrekeyPublication::decode(&splice(&b, j_at, 1, &[0xff])).unwrap_err(),
        DecodeError::BadValue("J")
    );
    // N larger than the input could hold: rejected before allocating.
    let lie = splice(&b, 3, 1, &[255]);
    assert!(matches!(
        PrekeyPublication::decode(&lie).unwrap_err(),
        DecodeError::LengthTooLarge {
            what: "N prekey messages",
            len: 255,
            ..
        }
    ));
    // Bad point and DH value inside an enclosed prekey message.
    assert_bad_point(&b, 4 + 11, PrekeyPublication::decode);
    assert_bad_dh(&b, 4 + 11 + 57, 1, PrekeyPublication::decode);
    // A bad prekey-message owner tag.
    assert_bad_tag(&b, 4 + 7, 0x50, PrekeyPublication::decode);
    // A non-canonical proof scalar; an oversized / non-minimal DH proof V.
    let v_at = proofs_at + 64;
    let b2 = splice(&b, v_at, 57, &[0xff; 57]);
    assert_eq!(
        PrekeyPublication::decode(&b2).unwrap_err(),
        DecodeError::BadScalar("ECDH proof V")
    );
    let dhv_at = v_at + 57 + 64;
    let b2 = splice(&b, dhv_at, 7, &[0, 0, 0, 2, 0, 1]);
    assert_eq!(
        PrekeyPublication::decode(&b2).unwrap_err(),
        DecodeError::NonMinimalMpi
    );
    let mut huge = alloc::vec![0, 0, 1, 0x81];
    huge.extend(core::iter::repeat_n(1u8, 385));
    let b2 = splice(&b, dhv_at, 7, &huge);
    assert!(matches!(
        PrekeyPublication::decode(&b2).unwrap_err(),
        DecodeError::LengthTooLarge {
            what: "DH proof V",
            ..
        }
    ));

    // Empty publication: N = K = J = 0, no proofs, just the MAC.
    let empty = publication(2, S, 0, false, false, 1);
    let b = empty.encode();
    assert_eq!(&b[..6], &[0, 4, 0x08, 0, 0, 0]);
    assert_eq!(b.len(), 6 + MAC_LEN);
    basic_checks(&b, PrekeyPublication::decode);
    // Only a prekey profile: its proof follows it directly.
    let pp = publication(3, S, 0, false, true, 1);
    assert_eq!(
        pp.encode().len(),
        6 + PREKEY_PROFILE_LEN + 64 + 57 + MAC_LEN
    );

    assert_eq!(
        PublishedPrekeyMessages::new(Vec::new(), ecdh_proof(1), dh_proof(1, 1)).unwrap_err(),
        DecodeError::BadValue("number of published prekey messages")
    );
    let too_many: Vec<_> = (0..256).map(|_| pm(5, S)).collect();
    assert!(PublishedPrekeyMessages::new(too_many, ecdh_proof(1), dh_proof(1, 1)).is_err());
}

#[test]
fn ensemble_retrieval_malformed() {
    let m = EnsembleRetrieval::new(S, b"bob".to_vec(), alloc::vec![ensemble(1, S)]).unwrap();
    let b = m.encode();
    basic_checks(&b, EnsembleRetrieval::decode);
    assert_bad_tag(&b, 3, 0x80, EnsembleRetrieval::decode);
    let l_at = 7 + 4 + 3;
    assert_eq!(&b[l_at..l_at + 4], &[0, 0, 0, 1]);
    assert_eq!(
        EnsembleRetrieval::decode(&splice(&b, l_at, 4, &[0; 4])).unwrap_err(),
        DecodeError::BadValue("L")
    );
    let lie = splice(&b, l_at, 4, &[0xff; 4]);
    assert!(matches!(
        EnsembleRetrieval::decode(&lie).unwrap_err(),
        DecodeError::LengthTooLarge {
            what: "L prekey ensembles",
            len: 0xffff_ffff,
            limit: 1
        }
    ));
    let two = splice(&b, l_at, 4, &[0, 0, 0, 2]);
    assert!(EnsembleRetrieval::decode(&two).is_err());
    // A bad point in the prekey message of the ensemble.
    let pm_at = b.len() - MIN_PREKEY_MESSAGE_LEN;
    assert_bad_point(&b, pm_at + 11, EnsembleRetrieval::decode);
    assert_bad_dh(&b, pm_at + 11 + 57, 1, EnsembleRetrieval::decode);
    // Bad shared prekey in the prekey profile.
    let pp_at = pm_at - PREKEY_PROFILE_LEN;
    assert_bad_point(&b, pp_at + 14, EnsembleRetrieval::decode);
    assert_eq!(
        EnsembleRetrieval::new(S, Vec::new(), Vec::new()).unwrap_err(),
        DecodeError::BadValue("L")
    );
}

#[test]
fn server_dispatch_rejects_unknown_types_and_versions() {
    assert_eq!(
        PrekeyServerMessage::decode(&[0, 4, 0x08]).unwrap_err(),
        DecodeError::BadMessageType(0x08)
    );
    assert_eq!(
        PrekeyServerMessage::decode(&[0, 4, 0x03]).unwrap_err(),
        DecodeError::BadMessageType(0x03)
    );
    assert_eq!(
        PrekeyServerMessage::decode(&[0, 5, 0x35]).unwrap_err(),
        DecodeError::BadVersion(5)
    );
    assert!(matches!(
        PrekeyServerMessage::decode(&[0]).unwrap_err(),
        DecodeError::Truncated { .. }
    ));
}
