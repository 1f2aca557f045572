//! Round trips and malformed-input rejection of every conversation message.

use super::*;
use crate::instance_tag::InstanceTag;
use crate::testutil::*;
use core::cell::RefCell;
use core::fmt;
use proptest::prelude::*;

fn sender_tag() -> impl Strategy<Value = InstanceTag> {
    (0x100u32..=u32::MAX).prop_map(InstanceTag)
}

fn receiver_tag() -> impl Strategy<Value = InstanceTag> {
    prop_oneof![Just(InstanceTag(0)), sender_tag()]
}

fn identity(seed: u64, s: InstanceTag, r: InstanceTag, kb: u32, kf: u32) -> IdentityMessage {
    IdentityMessage {
        sender_tag: s,
        receiver_tag: r,
        client_profile: client_profile(seed, s),
        y: point(seed + 1),
        b: dh(kb),
        our_ecdh_first: point(seed + 2),
        our_dh_first: dh(kf),
    }
}

fn auth_r(seed: u64, s: InstanceTag, r: InstanceTag, ka: u32, kf: u32) -> AuthR {
    AuthR {
        sender_tag: s,
        receiver_tag: r,
        client_profile: client_profile(seed, s),
        x: point(seed + 1),
        a: dh(ka),
        sigma: ring_sig(seed),
        our_ecdh_first: point(seed + 2),
        our_dh_first: dh(kf),
    }
}

fn auth_i(seed: u64, s: InstanceTag, r: InstanceTag) -> AuthI {
    AuthI {
        sender_tag: s,
        receiver_tag: r,
        sigma: ring_sig(seed),
    }
}

fn nia(
    seed: u64,
    s: InstanceTag,
    r: InstanceTag,
    ka: u32,
    kf: u32,
    id: u32,
    mac: u8,
) -> NonInteractiveAuth {
    NonInteractiveAuth {
        sender_tag: s,
        receiver_tag: r,
        client_profile: client_profile(seed, s),
        x: point(seed + 1),
        a: dh(ka),
        sigma: ring_sig(seed),
        prekey_message_id: id,
        auth_mac: [mac; MAC_LEN],
        our_ecdh_first: point(seed + 2),
        our_dh_first: dh(kf),
    }
}

fn prekey_msg(seed: u64, id: u32, owner: InstanceTag, kb: u32) -> PrekeyMessage {
    PrekeyMessage {
        id,
        owner_tag: owner,
        y: point(seed),
        b: dh(kb),
    }
}

#[allow(clippy::too_many_arguments)]
fn data_msg(
    seed: u64,
    s: InstanceTag,
    r: InstanceTag,
    flags: u8,
    counters: (u32, u32, u32),
    kdh: Option<u32>,
    enc: Vec<u8>,
    keys: usize,
) -> DataMessage {
    DataMessage {
        sender_tag: s,
        receiver_tag: r,
        flags,
        pn: counters.0,
        i: counters.1,
        j: counters.2,
        ecdh: point(seed),
        dh: kdh.map(dh),
        encrypted: enc,
        mac: [seed as u8; MAC_LEN],
        revealed_mac_keys: alloc::vec![0xa5; keys * MAC_LEN],
    }
}

/// decode(encode(x)) == x and encode(decode(b)) == b, also through `Message`.
fn round_trip<T: PartialEq + fmt::Debug>(
    x: &T,
    encode: impl Fn(&T) -> Vec<u8>,
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
    wrap: impl Fn(T) -> Message,
) {
    let b = encode(x);
    let y = decode(&b).unwrap();
    assert_eq!(&y, x);
    assert_eq!(encode(&y), b);
    let m = Message::decode(&b).unwrap();
    assert_eq!(m.encode(), b);
    assert_eq!(m, wrap(y));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn identity_round_trips(seed in any::<u64>(), s in sender_tag(), r in receiver_tag(), kb in 1u32..3071, kf in 1u32..3071) {
        round_trip(&identity(seed, s, r, kb, kf), IdentityMessage::encode, IdentityMessage::decode, Message::Identity);
    }

    #[test]
    fn auth_r_round_trips(seed in any::<u64>(), s in sender_tag(), r in receiver_tag(), ka in 1u32..3071, kf in 1u32..3071) {
        round_trip(&auth_r(seed, s, r, ka, kf), AuthR::encode, AuthR::decode, Message::AuthR);
    }

    #[test]
    fn auth_i_round_trips(seed in any::<u64>(), s in sender_tag(), r in receiver_tag()) {
        round_trip(&auth_i(seed, s, r), AuthI::encode, AuthI::decode, Message::AuthI);
    }

    #[test]
    fn non_interactive_auth_round_trips(
        seed in any::<u64>(), s in sender_tag(), r in receiver_tag(),
        ka in 1u32..3071, kf in 1u32..3071, id in any::<u32>(), mac in any::<u8>(),
    ) {
        round_trip(&nia(seed, s, r, ka, kf, id, mac), NonInteractiveAuth::encode, NonInteractiveAuth::decode, Message::NonInteractiveAuth);
    }

    #[test]
    fn prekey_message_round_trips(seed in any::<u64>(), id in any::<u32>(), owner in sender_tag(), kb in 1u32..3071) {
        round_trip(&prekey_msg(seed, id, owner, kb), PrekeyMessage::encode, PrekeyMessage::decode, Message::Prekey);
    }

    #[test]
    fn data_message_round_trips(
        seed in any::<u64>(), s in sender_tag(), r in receiver_tag(), flags in any::<u8>(),
        counters in any::<(u32, u32, u32)>(), kdh in proptest::option::of(1u32..3071),
        enc in proptest::collection::vec(any::<u8>(), 0..300), keys in 0usize..4,
    ) {
        let m = data_msg(seed, s, r, flags, counters, kdh, enc, keys);
        round_trip(&m, DataMessage::encode, DataMessage::decode, Message::Data);
        let b = m.encode();
        let auth = m.authenticated_bytes();
        prop_assert_eq!(&b[..auth.len()], &auth[..]);
        prop_assert_eq!(b.len(), auth.len() + MAC_LEN + 4 + keys * MAC_LEN);
        prop_assert_eq!(m.revealed_keys().count(), keys);
    }
}

const S: InstanceTag = InstanceTag(0x1234_5678);
const R: InstanceTag = InstanceTag(0x0000_0100);

/// Tag, point and DH checks for a message that begins `version, type, sender, receiver,
/// client profile, point, DH MPI`.
fn check_profile_message<T: fmt::Debug>(
    b: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, DecodeError> + Copy,
) {
    assert_header_checked(b, decode);
    assert_trailing_rejected(b, decode);
    assert_truncations_fail(b, decode);
    assert_bad_tag(b, 3, 0xff, decode);
    assert_bad_tag(b, 3, 0, decode);
    assert_bad_tag(b, 7, 0x01, decode);
    assert_bad_tag(b, 7, 0xff, decode);
    let plen = client_profile(1, S).encode().len();
    // A corrupted profile (unknown field type) fails inside the message too.
    let b2 = splice(b, 11 + 4, 2, &[0, 9]);
    assert_eq!(
        decode(&b2).unwrap_err(),
        DecodeError::BadProfile("unknown field type")
    );
    assert_bad_point(b, 11 + plen, decode);
    assert_bad_dh(b, 11 + plen + POINT_LEN, 1, decode);
}

#[test]
fn identity_malformed() {
    let m = identity(1, S, R, 2, 3);
    let b = m.encode();
    check_profile_message(&b, IdentityMessage::decode);
    // Receiver tag 0 is fine.
    let b0 = splice(&b, 7, 4, &[0; 4]);
    assert_eq!(
        IdentityMessage::decode(&b0).unwrap().receiver_tag,
        InstanceTag(0)
    );
    // our_ecdh_first and our_dh_first are the last two fields.
    let tail = POINT_LEN + 4 + 1;
    assert_bad_point(&b, b.len() - tail, IdentityMessage::decode);
    assert_bad_dh(&b, b.len() - 5, 1, IdentityMessage::decode);
}

#[test]
fn auth_r_malformed() {
    let b = auth_r(1, S, R, 2, 3).encode();
    check_profile_message(&b, AuthR::decode);
    let tail = POINT_LEN + 4 + 1;
    assert_bad_point(&b, b.len() - tail, AuthR::decode);
    assert_bad_dh(&b, b.len() - 5, 1, AuthR::decode);
    // A non-canonical scalar in sigma.
    let sig_at = b.len() - tail - RING_SIG_LEN;
    let b2 = splice(&b, sig_at, 57, &[0xff; 57]);
    assert!(matches!(
        AuthR::decode(&b2).unwrap_err(),
        DecodeError::BadScalar(_)
    ));
}

#[test]
fn auth_i_malformed() {
    let b = auth_i(1, S, R).encode();
    assert_eq!(b.len(), 11 + RING_SIG_LEN);
    assert_eq!(&b[..11], &[0, 4, 0x37, 0x12, 0x34, 0x56, 0x78, 0, 0, 1, 0]);
    assert_header_checked(&b, AuthI::decode);
    assert_trailing_rejected(&b, AuthI::decode);
    assert_truncations_fail(&b, AuthI::decode);
    assert_bad_tag(&b, 3, 0x99, AuthI::decode);
    assert_bad_tag(&b, 7, 0x99, AuthI::decode);
    let b2 = splice(&b, b.len() - 57, 57, &[0xff; 57]);
    assert!(matches!(
        AuthI::decode(&b2).unwrap_err(),
        DecodeError::BadScalar(_)
    ));
}

#[test]
fn non_interactive_auth_malformed() {
    let b = nia(1, S, R, 2, 3, 7, 9).encode();
    check_profile_message(&b, NonInteractiveAuth::decode);
    let tail = POINT_LEN + 4 + 1;
    assert_bad_point(&b, b.len() - tail, NonInteractiveAuth::decode);
    assert_bad_dh(&b, b.len() - 5, 1, NonInteractiveAuth::decode);
    // Layout: ... sigma, prekey id, 64-byte MAC, then the two "first" keys.
    let mac_at = b.len() - tail - MAC_LEN;
    assert_eq!(&b[mac_at..mac_at + MAC_LEN], &[9; MAC_LEN]);
    assert_eq!(&b[mac_at - 4..mac_at], &7u32.to_be_bytes());
}

#[test]
fn prekey_message_malformed() {
    let b = prekey_msg(1, 0xdead_beef, S, 2).encode();
    assert_eq!(b.len(), MIN_PREKEY_MESSAGE_LEN);
    assert_eq!(
        &b[..11],
        &[0, 4, 0x0f, 0xde, 0xad, 0xbe, 0xef, 0x12, 0x34, 0x56, 0x78]
    );
    assert_header_checked(&b, PrekeyMessage::decode);
    assert_trailing_rejected(&b, PrekeyMessage::decode);
    assert_truncations_fail(&b, PrekeyMessage::decode);
    assert_bad_tag(&b, 7, 0xff, PrekeyMessage::decode);
    assert_bad_tag(&b, 7, 0, PrekeyMessage::decode);
    assert_bad_point(&b, 11, PrekeyMessage::decode);
    assert_bad_dh(&b, 11 + POINT_LEN, 1, PrekeyMessage::decode);
}

#[test]
fn data_message_malformed() {
    check_data_message_malformed(DataMessage::decode);
}

/// A Data message through [`Message::decode_memo`] with a shared memo.
fn decode_with(memo: &RefCell<KeyMemo>, b: &[u8]) -> Result<DataMessage, DecodeError> {
    match Message::decode_memo(b, &mut memo.borrow_mut())? {
        Message::Data(d) => Ok(d),
        other => panic!("not a Data message: {other:?}"),
    }
}

/// Decoding through a [`KeyMemo`] returns exactly what the plain decoder returns, whatever
/// the memo holds: the valid message's keys come from the memo the second time, and every
/// corrupted key (one byte off a remembered one) is still rejected and not remembered.
#[test]
fn data_message_memo_decodes_like_the_plain_decoder() {
    let m = data_msg(1, S, R, 1, (1, 2, 3), Some(5), alloc::vec![1, 2, 3], 1);
    let b = m.encode();
    let memo = RefCell::new(KeyMemo::default());
    assert_eq!(decode_with(&memo, &b).unwrap(), m);
    assert_eq!(memo.borrow().len(), (1, 1));
    assert_eq!(decode_with(&memo, &b).unwrap(), m);
    assert_eq!(memo.borrow().len(), (1, 1));
    check_data_message_malformed(|b| decode_with(&memo, b));
    assert_eq!(memo.borrow().len(), (1, 1));
    // Other message types decode as before.
    let id = identity(1, S, R, 2, 3).encode();
    assert_eq!(
        Message::decode_memo(&id, &mut memo.borrow_mut()).unwrap(),
        Message::decode(&id).unwrap()
    );
    assert_eq!(
        Message::decode_memo(&id[..10], &mut memo.borrow_mut()).unwrap_err(),
        Message::decode(&id[..10]).unwrap_err()
    );
}

/// The memo keeps the last 4 ECDH keys and the last 2 DH keys.
#[test]
fn data_message_memo_is_bounded() {
    let memo = RefCell::new(KeyMemo::default());
    for seed in 0..6u64 {
        let m = data_msg(
            seed,
            S,
            R,
            0,
            (0, 3, 0),
            Some(7 + seed as u32),
            alloc::vec![],
            0,
        );
        assert_eq!(decode_with(&memo, &m.encode()).unwrap(), m);
    }
    assert_eq!(memo.borrow().len(), (4, 2));
    // The oldest was dropped, decoding it again still works.
    let m = data_msg(0, S, R, 0, (0, 3, 0), Some(7), alloc::vec![], 0);
    assert_eq!(decode_with(&memo, &m.encode()).unwrap(), m);
    assert_eq!(memo.borrow().len(), (4, 2));
}

proptest! {
    /// Random single-byte changes of a Data message: the memo (holding the original's keys)
    /// and the plain decoder agree on the result.
    #[test]
    fn data_message_memo_agrees_on_corruptions(
        seed in any::<u64>(), kdh in proptest::option::of(1u32..3071),
        at in any::<prop::sample::Index>(), xor in 1u8..=255,
    ) {
        let m = data_msg(seed, S, R, 0, (1, 2, 3), kdh, alloc::vec![9; 10], 0);
        let b = m.encode();
        let memo = RefCell::new(KeyMemo::default());
        prop_assert_eq!(decode_with(&memo, &b).unwrap(), m);
        let mut b2 = b.clone();
        let i = at.index(b2.len());
        b2[i] ^= xor;
        prop_assert_eq!(
            Message::decode_memo(&b2, &mut memo.borrow_mut()),
            Message::decode(&b2)
        );
    }
}

fn check_data_message_malformed(decode: impl Fn(&[u8]) -> Result<DataMessage, DecodeError> + Copy) {
    let m = data_msg(1, S, R, 1, (1, 2, 3), Some(5), alloc::vec![1, 2, 3], 1);
    let b = m.encode();
    assert_header_checked(&b, decode);
    assert_trailing_rejected(&b, decode);
    assert_truncations_fail(&b, decode);
    assert_bad_tag(&b, 3, 0xff, decode);
    assert_bad_tag(&b, 7, 0xff, decode);
    // version, type, tags, flags, pn, i, j = 24 bytes, then the ECDH point.
    assert_eq!(&b[11..24], &[1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
    assert_bad_point(&b, 24, decode);
    let dh_at = 24 + POINT_LEN;
    let b_no_dh = splice(&b, dh_at, 5, &[0, 0, 0, 0]);
    assert!(decode(&b_no_dh).unwrap().dh.is_none());
    let b2 = splice(&b, dh_at, 5, &[0, 0, 0, 1, 1]);
    assert_eq!(
        decode(&b2).unwrap_err(),
        DecodeError::BadDhValue("public DH key")
    );
    let b2 = splice(&b, dh_at, 5, &[0, 0, 0, 2, 0, 4]);
    assert_eq!(decode(&b2).unwrap_err(), DecodeError::NonMinimalMpi);
    // Oversized DATA length of the ciphertext.
    let enc_at = dh_at + 5;
    let b2 = splice(&b, enc_at, 4, &[0x7f, 0xff, 0xff, 0xff]);
    assert!(matches!(
        decode(&b2).unwrap_err(),
        DecodeError::LengthTooLarge {
            what: "encrypted message",
            ..
        }
    ));
    // Revealed MAC keys must be whole 64-byte keys.
    let keys_at = enc_at + 4 + 3 + MAC_LEN;
    let mut b2 = splice(&b, keys_at, 4, &65u32.to_be_bytes());
    b2.push(0);
    assert_eq!(
        decode(&b2).unwrap_err(),
        DecodeError::BadValue("revealed MAC keys")
    );
    let b2 = splice(&b, keys_at, 4 + MAC_LEN, &[0, 0, 0, 0]);
    assert!(decode(&b2).unwrap().revealed_mac_keys.is_empty());
}

#[test]
fn message_dispatch_rejects_unknown_types_and_versions() {
    assert_eq!(
        Message::decode(&[0, 4, 0x02, 0, 0]).unwrap_err(),
        DecodeError::BadMessageType(0x02)
    );
    assert_eq!(
        Message::decode(&[0, 3, 0x35]).unwrap_err(),
        DecodeError::BadVersion(3)
    );
    assert!(matches!(
        Message::decode(&[0, 4]).unwrap_err(),
        DecodeError::Truncated { .. }
    ));
    assert!(matches!(
        Message::decode(&[]).unwrap_err(),
        DecodeError::Truncated { .. }
    ));
    let m = Message::AuthI(auth_i(3, S, R));
    assert_eq!(m.message_type(), TYPE_AUTH_I);
    assert_eq!(Message::decode(&m.encode()).unwrap(), m);
}
