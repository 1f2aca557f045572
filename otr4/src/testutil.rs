//! Helpers shared by the unit tests of the codec, profile and message modules: deterministic
//! keys, profiles and signatures, and checks every decoder must pass.

use crate::crypto::dh::DhPublic;
use crate::crypto::ed448::{KeyPair, SCALAR_LEN, Scalar};
use crate::crypto::ed448::{POINT_LEN, Point};
use crate::crypto::keys::ForgingPublicKey;
pub use crate::crypto::rsig::RING_SIG_LEN;
use crate::crypto::rsig::RingSignature;
use crate::instance_tag::InstanceTag;
use crate::profile::client::ClientProfile;
use crate::profile::prekey::PrekeyProfile;
use crate::wire::codec::DecodeError;
use alloc::vec::Vec;
use core::fmt;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A deterministic RNG.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A deterministic key pair.
pub fn keypair(seed: u64) -> KeyPair {
    KeyPair::generate(&mut rng(seed))
}

/// A deterministic valid point.
pub fn point(seed: u64) -> Point {
    *keypair(seed).public()
}

/// The minimal big-endian encoding of 2^k.
pub fn pow2(k: u32) -> Vec<u8> {
    let mut v = alloc::vec![0u8; (k / 8 + 1) as usize];
    v[0] = 1 << (k % 8);
    v
}

/// 2^k, a member of the DH group's prime-order subgroup for 1 <= k < 3071.
pub fn dh(k: u32) -> DhPublic {
    DhPublic::from_be_bytes(&pow2(k)).unwrap()
}

/// A random canonical scalar.
pub fn scalar(rng: &mut StdRng) -> Scalar {
    let mut b = [0u8; SCALAR_LEN];
    rng.fill(&mut b[..SCALAR_LEN - 2]);
    Scalar::decode(&b).unwrap()
}

/// A ring signature of random (canonical) scalars: decoders only check the encoding.
pub fn ring_sig(seed: u64) -> RingSignature {
    let mut r = rng(seed);
    RingSignature {
        parts: core::array::from_fn(|_| scalar(&mut r)),
    }
}

/// A signed Client Profile with versions "4".
pub fn client_profile(seed: u64, tag: InstanceTag) -> ClientProfile {
    ClientProfile::build_and_sign(
        tag,
        &keypair(seed),
        &ForgingPublicKey(point(seed ^ 1)),
        b"4",
        2_000_000_000,
    )
}

/// A signed Prekey Profile.
pub fn prekey_profile(seed: u64, tag: InstanceTag) -> PrekeyProfile {
    PrekeyProfile::build_and_sign(tag, 2_000_000_000, &keypair(seed ^ 2), &keypair(seed))
}

/// Every strict prefix of `bytes` fails to decode (and nothing panics).
pub fn assert_truncations_fail<T: fmt::Debug>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
) {
    for n in 0..bytes.len() {
        assert!(decode(&bytes[..n]).is_err(), "prefix of length {n} decoded");
    }
}

/// One trailing byte is rejected.
pub fn assert_trailing_rejected<T: fmt::Debug>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
) {
    let mut b = bytes.to_vec();
    b.push(0);
    assert_eq!(decode(&b).unwrap_err(), DecodeError::TrailingBytes(1));
}

/// Wrong version and wrong type are rejected with their specific errors.
pub fn assert_header_checked<T: fmt::Debug>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
) {
    let mut b = bytes.to_vec();
    b[1] = 3;
    assert_eq!(decode(&b).unwrap_err(), DecodeError::BadVersion(3));
    let mut b = bytes.to_vec();
    b[0] = 1;
    assert_eq!(decode(&b).unwrap_err(), DecodeError::BadVersion(0x0104));
    let mut b = bytes.to_vec();
    b[2] ^= 0x80;
    assert_eq!(
        decode(&b).unwrap_err(),
        DecodeError::BadMessageType(bytes[2] ^ 0x80)
    );
}

/// Replaces `len` bytes at `at` with `with`.
pub fn splice(bytes: &[u8], at: usize, len: usize, with: &[u8]) -> Vec<u8> {
    let mut v = bytes[..at].to_vec();
    v.extend_from_slice(with);
    v.extend_from_slice(&bytes[at + len..]);
    v
}

/// The tag value `t` at `at`, then decoding fails with `BadInstanceTag(t)`.
pub fn assert_bad_tag<T: fmt::Debug>(
    bytes: &[u8],
    at: usize,
    t: u32,
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
) {
    let b = splice(bytes, at, 4, &t.to_be_bytes());
    assert_eq!(decode(&b).unwrap_err(), DecodeError::BadInstanceTag(t));
}

/// An invalid POINT (y >= p) at `at` fails with `BadPoint`.
pub fn assert_bad_point<T: fmt::Debug>(
    bytes: &[u8],
    at: usize,
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
) {
    let b = splice(bytes, at, POINT_LEN, &[0xff; POINT_LEN]);
    assert!(
        matches!(decode(&b).unwrap_err(), DecodeError::BadPoint(_)),
        "invalid point accepted at {at}"
    );
    // The identity (y = 1) is rejected too.
    let mut id = [0u8; POINT_LEN];
    id[0] = 1;
    let b = splice(bytes, at, POINT_LEN, &id);
    assert!(
        matches!(decode(&b).unwrap_err(), DecodeError::BadPoint(_)),
        "identity accepted at {at}"
    );
}

/// At `at` there is a DH MPI of `len` bytes (with its 4-byte length): a value outside
/// the group, a non-minimal encoding and an oversized length are each rejected.
pub fn assert_bad_dh<T: fmt::Debug>(
    bytes: &[u8],
    at: usize,
    len: usize,
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
) {
    let b = splice(bytes, at, 4 + len, &[0, 0, 0, 1, 1]);
    assert!(
        matches!(decode(&b).unwrap_err(), DecodeError::BadDhValue(_)),
        "DH value 1 accepted"
    );
    let b = splice(bytes, at, 4 + len, &[0, 0, 0, 2, 0, 4]);
    assert_eq!(decode(&b).unwrap_err(), DecodeError::NonMinimalMpi);
    let mut huge = alloc::vec![0, 0, 1, 0x81];
    huge.extend(core::iter::repeat_n(0xffu8, 385));
    let b = splice(bytes, at, 4 + len, &huge);
    assert!(matches!(
        decode(&b).unwrap_err(),
        DecodeError::LengthTooLarge { .. }
    ));
    let b = splice(bytes, at, 4, &[0xff, 0xff, 0xff, 0xf0]);
    assert!(matches!(
        decode(&b).unwrap_err(),
        DecodeError::LengthTooLarge { .. }
    ));
}
