//! Ed448-Goldilocks points and scalars (otrv4.md §"Elliptic Curve Parameters",
//! §"Encoding and Decoding") with the strict decoding and validation OTRv4 requires.
//!
//! The group arithmetic is [`crate::crypto::edwards`] (on fiat-crypto's p448 field); scalars
//! mod q stay `ed448-goldilocks`' `EdwardsScalar`. [`Point::decode`] decodes strictly (RFC
//! 8032 §5.2.3 plus canonical y), then checks identity and `q·X = I`.

use crate::debug::{Hex, redacted_debug};

use ed448_goldilocks::{EdwardsScalar, WideEdwardsScalarBytes};
use shake::Shake256;
use shake::digest::{ExtendableOutput, Update, XofReader};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::CryptoError;
use crate::crypto::edwards::{EdwardsPoint, vartime_multiscalar_mul};
use crate::crypto::kdf::{Domain, kdf_into};

/// Bytes in a POINT.
pub const POINT_LEN: usize = 57;
/// Bytes in a SCALAR (otrv4.md §"Data Types"; see docs/spec-notes.md on 56 vs 57).
pub const SCALAR_LEN: usize = 57;
/// Bytes in a symmetric key `sym_key` (otrv4.md §"Public keys, Shared Prekeys, Forging keys
/// and Fingerprints").
pub const SYMMETRIC_KEY_LEN: usize = 57;

/// The POINT encoding of the base point G (RFC 8032 §5.2.2 encoding, little-endian).
pub const GENERATOR_BYTES: [u8; POINT_LEN] = [
    0x14, 0xfa, 0x30, 0xf2, 0x5b, 0x79, 0x08, 0x98, 0xad, 0xc8, 0xd7, 0x4e, 0x2c, 0x13, 0xbd, 0xfd,
    0xc4, 0x39, 0x7c, 0xe6, 0x1c, 0xff, 0xd3, 0x3a, 0xd7, 0xc2, 0xa0, 0x05, 0x1e, 0x9c, 0x78, 0x87,
    0x40, 0x98, 0xa3, 0x6c, 0x73, 0x73, 0xea, 0x4b, 0x62, 0xc7, 0xc9, 0x56, 0x37, 0x20, 0x76, 0x88,
    0x24, 0xbc, 0xb6, 0x6e, 0x71, 0x46, 0x3f, 0x69, 0x00,
];

/// The group order q as 56 bytes, big-endian — the encoding of `q` hashed into the ring
/// signature's challenge (otrv4.md §"Ring Signature Authentication"; see spec notes: this
/// follows libotr-ng and the Go prekey server, the spec does not define an encoding of q).
pub const ORDER_BYTES_BE: [u8; 56] = [
    0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7c, 0xca, 0x23, 0xe9,
    0xc4, 0x4e, 0xdb, 0x49, 0xae, 0xd6, 0x36, 0x90, 0x21, 0x6c, 0xc2, 0x72, 0x8d, 0xc5, 0x8f, 0x55,
    0x23, 0x78, 0xc2, 0x92, 0xab, 0x58, 0x44, 0xf3,
];

/// Copies `src` into a zero-extended 114-byte buffer.
fn zero_extend(src: &[u8; 57]) -> Zeroizing<[u8; 114]> {
    let mut wide = Zeroizing::new([0u8; 114]);
    for (d, s) in wide.iter_mut().zip(src.iter()) {
        *d = *s;
    }
    wide
}

/// Splits a 114-byte string into its two 57-byte halves.
pub(crate) fn split_114(src: &[u8; 114]) -> ([u8; 57], [u8; 57]) {
    let mut lo = [0u8; 57];
    let mut hi = [0u8; 57];
    for (d, s) in lo.iter_mut().chain(hi.iter_mut()).zip(src.iter()) {
        *d = *s;
    }
    (lo, hi)
}

/// Concatenates two 57-byte strings.
pub(crate) fn concat_57(lo: &[u8; 57], hi: &[u8; 57]) -> [u8; 114] {
    let mut out = [0u8; 114];
    for (d, s) in out.iter_mut().zip(lo.iter().chain(hi.iter())) {
        *d = *s;
    }
    out
}

/// Prunes a 57-byte buffer in place (otrv4.md §"Considerations while working with elliptic
/// curve parameters", RFC 8032 §5.2.5): clear the two low bits of byte 0, clear byte 56,
/// set bit 7 of byte 55.
pub fn prune(h: &mut [u8; 57]) {
    if let Some(first) = h.first_mut() {
        *first &= 0xfc;
    }
    if let Some(last) = h.last_mut() {
        *last = 0;
    }
    if let Some(b55) = h.get_mut(55) {
        *b55 |= 0x80;
    }
}

/// Encodes an arbitrary group element (possibly the identity) as a POINT.
pub(crate) fn encode_point(p: &EdwardsPoint) -> [u8; POINT_LEN] {
    p.encode()
}

/// A validated Ed448 point: canonically encoded, not the identity, in the prime-order
/// subgroup. The only way to get one from bytes is [`Point::decode`].
///
/// Equality is constant time. `Debug` prints the hex of the encoding (points are public).
#[derive(Clone, Copy)]
pub struct Point(pub(crate) EdwardsPoint);

impl Point {
    /// Strictly decodes and validates a received POINT (otrv4.md §"Encoding and Decoding",
    /// §"Verifying that a point is on the curve"):
    ///
    /// 1. byte 56 may only carry the x sign bit (bit 7) — otherwise `InvalidPointEncoding`;
    /// 2. y must have a square root for x — otherwise `InvalidPointEncoding`;
    /// 3. re-encoding must give the input back byte for byte, which rejects y ≥ p and a
    ///    set sign bit with x = 0 — otherwise `InvalidPointEncoding`;
    /// 4. the point must not be the identity — otherwise `IdentityPoint`;
    /// 5. `q·X = I` (no small-order component) — otherwise `PointNotInSubgroup`.
    ///
    /// Runs in variable time: the input is public.
    pub fn decode(bytes: &[u8; POINT_LEN]) -> Result<Point, CryptoError> {
        let last = bytes.last().copied().unwrap_or(0xff);
        if last & 0x7f != 0 {
            return Err(CryptoError::InvalidPointEncoding);
        }
        let point =
            EdwardsPoint::decode_unchecked(bytes).ok_or(CryptoError::InvalidPointEncoding)?;
        if bool::from(point.is_identity()) {
            return Err(CryptoError::IdentityPoint);
        }
        if !point.is_torsion_free_decoded_vartime() {
            return Err(CryptoError::PointNotInSubgroup);
        }
        Ok(Point(point))
    }

    /// The 57-byte POINT encoding (no field inversion for points that were decoded or
    /// are public keys of a [`KeyPair`]: those are kept with Z = 1).
    pub fn encode(&self) -> [u8; POINT_LEN] {
        self.0.encode_public()
    }

    /// The base point G.
    pub fn generator() -> Point {
        Point(EdwardsPoint::GENERATOR)
    }

    /// Wraps a group element computed from valid points, failing on the identity (the only
    /// element of the prime-order subgroup that is not a valid [`Point`]).
    fn from_subgroup_element(p: EdwardsPoint) -> Result<Point, CryptoError> {
        if bool::from(p.is_identity()) {
            Err(CryptoError::IdentityPoint)
        } else {
            Ok(Point(p))
        }
    }

    /// `G * s`, constant time in `s`. Fails with `IdentityPoint` if `s ≡ 0 (mod q)`.
    pub fn mul_base(s: &Scalar) -> Result<Point, CryptoError> {
        Point::from_subgroup_element(EdwardsPoint::mul_base(&s.0))
    }

    /// `self * s`, constant time in `s`. Fails with `IdentityPoint` if `s ≡ 0 (mod q)`.
    pub fn checked_mul(&self, s: &Scalar) -> Result<Point, CryptoError> {
        Point::from_subgroup_element(self.0.mul(&s.0))
    }

    /// `self + other`. Fails with `IdentityPoint` if `other = -self`.
    pub fn checked_add(&self, other: &Point) -> Result<Point, CryptoError> {
        Point::from_subgroup_element(self.0 + other.0)
    }

    /// `self - other`. Fails with `IdentityPoint` if `other = self`.
    pub fn checked_sub(&self, other: &Point) -> Result<Point, CryptoError> {
        Point::from_subgroup_element(self.0 - other.0)
    }

    /// `-self`.
    pub fn negate(&self) -> Point {
        Point(-self.0)
    }

    /// `G * a + self * b`, constant time in `a` and `b`. Fails with `IdentityPoint` if the
    /// result is the identity.
    pub fn base_mul_add(a: &Scalar, p: &Point, b: &Scalar) -> Result<Point, CryptoError> {
        Point::from_subgroup_element(EdwardsPoint::mul_base(&a.0) + p.0.mul(&b.0))
    }

    /// `G * a + p * b` in **variable time** (Straus/wNAF): only for public `a` and `b`, as
    /// in signature and proof verification. Fails with `IdentityPoint` on the identity.
    pub fn vartime_base_mul_add(a: &Scalar, p: &Point, b: &Scalar) -> Result<Point, CryptoError> {
        Point::from_subgroup_element(vartime_multiscalar_mul(Some(&a.0), [(&b.0, &p.0)]))
    }
}

impl ConstantTimeEq for Point {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl ConditionallySelectable for Point {
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Point(EdwardsPoint::conditional_select(&a.0, &b.0, choice))
    }
}

impl PartialEq for Point {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for Point {}

redacted_debug!(Point(|p| Hex(&p.encode())));

/// A scalar mod q. Zeroized on drop (it may be secret); `Debug` prints nothing; equality
/// is constant time.
#[derive(Clone)]
pub struct Scalar(pub(crate) ed448_goldilocks::EdwardsScalar);

impl Scalar {
    /// The scalar 0.
    pub const ZERO: Scalar = Scalar(EdwardsScalar::ZERO);
    /// The scalar 1.
    pub const ONE: Scalar = Scalar(EdwardsScalar::ONE);

    /// Decodes a canonical SCALAR: the 57-byte little-endian value must be `< q`, which
    /// also means byte 56 is zero (otrv4.md §"Encoding and Decoding"; see spec notes:
    /// received scalars are rejected, not reduced, when they are not canonical).
    pub fn decode(bytes: &[u8; SCALAR_LEN]) -> Result<Scalar, CryptoError> {
        // `from_canonical_bytes` tolerates a non-zero byte 56 in some cases; check it here.
        if bytes.last().copied().unwrap_or(0xff) != 0 {
            return Err(CryptoError::NonCanonicalScalar);
        }
        let s: Option<EdwardsScalar> = EdwardsScalar::from_canonical_bytes(&(*bytes).into()).into();
        s.map(Scalar).ok_or(CryptoError::NonCanonicalScalar)
    }

    /// The 57-byte little-endian SCALAR encoding (byte 56 is always zero).
    pub fn encode(&self) -> [u8; SCALAR_LEN] {
        self.0.to_bytes_rfc_8032().into()
    }

    /// Interprets 114 bytes as a little-endian integer and reduces it mod q (constant time).
    pub fn from_wide_bytes(bytes: &[u8; 114]) -> Scalar {
        let mut wide = WideEdwardsScalarBytes::from(*bytes);
        let s = Scalar(EdwardsScalar::from_bytes_mod_order_wide(&wide));
        wide.zeroize();
        s
    }

    /// Interprets 57 bytes as a little-endian integer (all 456 bits) and reduces it mod q
    /// — the "decode … and `mod q`" of otrv4.md §"Encoding and Decoding" for local values.
    pub fn from_bytes_mod_order(bytes: &[u8; 57]) -> Scalar {
        Scalar::from_wide_bytes(&zero_extend(bytes))
    }

    /// A uniformly random scalar: 57 random bytes hashed with `SHAKE-256(r, 114)` and
    /// reduced mod q (statistically uniform). Used where the value is published and must
    /// not be distinguishable from other uniform scalars (the ring signature).
    pub fn random<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Scalar {
        let mut r = Zeroizing::new([0u8; 57]);
        rng.fill_bytes(r.as_mut());
        let mut h = Zeroizing::new([0u8; 114]);
        crate::crypto::kdf::shake256(&[r.as_ref()], h.as_mut());
        Scalar::from_wide_bytes(&h)
    }

    /// Whether the scalar is zero (constant time).
    pub fn is_zero(&self) -> Choice {
        self.0.is_zero()
    }

    /// The multiplicative inverse (zero maps to zero).
    pub fn invert(&self) -> Scalar {
        Scalar(self.0.invert())
    }

    /// Returns `a` if `choice` is 0 and `b` if it is 1, in constant time.
    pub fn conditional_select(a: &Scalar, b: &Scalar, choice: Choice) -> Scalar {
        Scalar(EdwardsScalar::conditional_select(&a.0, &b.0, choice))
    }
}

impl From<u64> for Scalar {
    fn from(v: u64) -> Scalar {
        Scalar(EdwardsScalar::from(v))
    }
}

impl core::ops::Add<&Scalar> for &Scalar {
    type Output = Scalar;
    fn add(self, rhs: &Scalar) -> Scalar {
        Scalar(self.0 + rhs.0)
    }
}

impl core::ops::Sub<&Scalar> for &Scalar {
    type Output = Scalar;
    fn sub(self, rhs: &Scalar) -> Scalar {
        Scalar(self.0 - rhs.0)
    }
}

impl core::ops::Mul<&Scalar> for &Scalar {
    type Output = Scalar;
    fn mul(self, rhs: &Scalar) -> Scalar {
        Scalar(self.0 * rhs.0)
    }
}

impl core::ops::Neg for &Scalar {
    type Output = Scalar;
    fn neg(self) -> Scalar {
        Scalar(-self.0)
    }
}

impl ConstantTimeEq for Scalar {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for Scalar {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for Scalar {}

impl Zeroize for Scalar {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

impl Drop for Scalar {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for Scalar {}

redacted_debug!(Scalar);

/// `HashToScalar(usage || d, 57)` (otrv4.md §"HashToScalar"): `HWC(usage || d, 57)` in the
/// KDF domain `D`, read as a 57-byte little-endian integer and reduced mod q.
pub fn hash_to_scalar<D: Domain>(usage: D::Usage, parts: &[&[u8]]) -> Scalar {
    let mut h = Zeroizing::new([0u8; 57]);
    kdf_into::<D>(usage, parts, h.as_mut());
    Scalar::from_bytes_mod_order(&h)
}

/// A random scalar per otrv4.md §"Considerations while working with elliptic curve
/// parameters": 57 random bytes `r`, `h = SHAKE-256(r, 57)`, pruned, read little-endian and
/// reduced mod q.
///
/// Pruned values are not uniform mod q (they cover about half of Z_q), so do not publish
/// them where they must look like uniform scalars; see [`Scalar::random`].
pub fn random_pruned_scalar<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Scalar {
    let mut r = Zeroizing::new([0u8; 57]);
    rng.fill_bytes(r.as_mut());
    let mut h = Zeroizing::new([0u8; 57]);
    crate::crypto::kdf::shake256(&[r.as_ref()], h.as_mut());
    prune(&mut h);
    Scalar::from_bytes_mod_order(&h)
}

/// The 57-byte symmetric key a long-term key pair, shared prekey or ECDH key pair is
/// derived from (otrv4.md §"Public keys, Shared Prekeys, Forging keys and Fingerprints").
/// Zeroized on drop; `Debug` prints nothing.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SymmetricKey(pub(crate) [u8; SYMMETRIC_KEY_LEN]);

impl SymmetricKey {
    /// Wraps stored key bytes (for persistence and test vectors).
    pub fn from_bytes(bytes: [u8; SYMMETRIC_KEY_LEN]) -> SymmetricKey {
        SymmetricKey(bytes)
    }

    /// 57 bytes of fresh randomness.
    pub fn generate<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> SymmetricKey {
        let mut k = SymmetricKey([0u8; SYMMETRIC_KEY_LEN]);
        rng.fill_bytes(&mut k.0);
        k
    }

    /// The key bytes (for persistence); handle with care.
    pub fn as_bytes(&self) -> &[u8; SYMMETRIC_KEY_LEN] {
        &self.0
    }
}

redacted_debug!(SymmetricKey);

/// An Ed448 key pair derived from a [`SymmetricKey`]: `h = SHAKE-256(sym, 114)`, the lower
/// half pruned into the secret scalar, the upper half the EdDSA `prefix`. Used for the
/// long-term key `H`, the shared prekey `D`, forging keys and ECDH ephemerals alike
/// (otrv4.md §"Public keys, Shared Prekeys, Forging keys and Fingerprints",
/// §"Generating ECDH and DH keys"; RFC 8032 §5.2.5).
///
/// Zeroized on drop; `Debug` prints only the public key.
#[derive(Clone, ZeroizeOnDrop)]
pub struct KeyPair {
    pub(crate) sym: SymmetricKey,
    pub(crate) secret: Scalar,
    pub(crate) prefix: [u8; 57],
    #[zeroize(skip)]
    pub(crate) public: Point,
}

impl KeyPair {
    /// Derives the key pair from `sym`: `h = SHAKE-256(sym, 114)`, `sk = prune(h[0..57])`
    /// read little-endian (mod q), `prefix = h[57..114]`, `public = G * sk`.
    pub fn from_symmetric_key(sym: SymmetricKey) -> KeyPair {
        let mut reader = Shake256::default().chain(sym.0).finalize_xof();
        let mut lo = Zeroizing::new([0u8; 57]);
        let mut prefix = [0u8; 57];
        reader.read(lo.as_mut());
        reader.read(&mut prefix);
        prune(&mut lo);
        let secret = Scalar::from_bytes_mod_order(&lo);
        // A pruned value is ≡ 0 (mod q) only if it equals 4q: probability 2^-445.
        // Normalised (Z = 1) once here, so that encoding it later costs no inversion.
        let public = Point(EdwardsPoint::mul_base(&secret.0).normalize());
        KeyPair {
            sym,
            secret,
            prefix,
            public,
        }
    }

    /// Draws 57 random bytes and derives the key pair (generateECDH / key generation).
    pub fn generate<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> KeyPair {
        KeyPair::from_symmetric_key(SymmetricKey::generate(rng))
    }

    /// The public point.
    pub fn public(&self) -> &Point {
        &self.public
    }

    /// The secret scalar.
    pub fn secret(&self) -> &Scalar {
        &self.secret
    }

    /// The symmetric key the pair was derived from (needed for EdDSA and persistence).
    pub fn symmetric_key(&self) -> &SymmetricKey {
        &self.sym
    }
}

redacted_debug!(KeyPair { public, .. });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::kdf::{Otrv4, Usage};
    use crypto_bigint::U448;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn h57(s: &str) -> [u8; 57] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// p = 2^448 - 2^224 - 1.
    fn p_u448() -> U448 {
        U448::MAX.wrapping_sub(&U448::ONE.shl_vartime(224))
    }

    /// The 57-byte little-endian encoding of a 448-bit integer, byte 56 = `last`.
    fn le57(v: &U448, last: u8) -> [u8; 57] {
        let mut out = [0u8; 57];
        out[..56].copy_from_slice(&v.to_le_bytes());
        out[56] = last;
        out
    }

    fn q_u448() -> U448 {
        U448::from_be_slice(&ORDER_BYTES_BE)
    }

    /// q·X computed by plain double-and-add over the bits of q (independent of the crate's
    /// `is_torsion_free`).
    fn q_times(x: &EdwardsPoint) -> EdwardsPoint {
        let q = q_u448();
        let mut acc = EdwardsPoint::IDENTITY;
        for i in (0..448).rev() {
            acc = acc + acc;
            if q.bit_vartime(i) {
                acc += *x;
            }
        }
        acc
    }

    /// Legendre symbol test `a^((p-1)/2) == 1` mod p with crypto-bigint (independent of the
    /// crate's square-root code).
    fn is_square_mod_p(a: &U448) -> bool {
        use crypto_bigint::Odd;
        use crypto_bigint::modular::{FixedMontyForm as MontyForm, MontyParams};
        let p = Odd::new(p_u448()).unwrap();
        let params = MontyParams::new_vartime(p);
        let e = p_u448().wrapping_sub(&U448::ONE).shr_vartime(1);
        let r = MontyForm::new(a, &params).pow(&e).retrieve();
        r == U448::ONE || r == U448::ZERO
    }

    #[test]
    fn generator_constants_match_the_crate() {
        assert_eq!(Point::generator().encode(), GENERATOR_BYTES);
        assert_eq!(Point::decode(&GENERATOR_BYTES).unwrap(), Point::generator());
        assert_eq!(q_u448(), *ed448_goldilocks::ORDER.as_ref());
        assert_eq!(q_times(&EdwardsPoint::GENERATOR), EdwardsPoint::IDENTITY);
    }

    #[test]
    fn keygen_known_answer_rfc8032() {
        // RFC 8032 §7.4, "Blank" and "1 octet": secret key -> public key.
        let kp = KeyPair::from_symmetric_key(SymmetricKey::from_bytes(h57(
            "6c82a562cb808d10d632be89c8513ebf6c929f34ddfa8c9f63c9960ef6e348a3528c8a3fcc2f044e39a3fc5b94492f8f032e7549a20098f95b",
        )));
        assert_eq!(
            kp.public().encode(),
            h57(
                "5fd7449b59b461fd2ce787ec616ad46a1da1342485a70e1f8a0ea75d80e96778edf124769b46c7061bd6783df1e50f6cd1fa1abeafe8256180"
            )
        );
        let kp = KeyPair::from_symmetric_key(SymmetricKey::from_bytes(h57(
            "c4eab05d357007c632f3dbb48489924d552b08fe0c353a0d4a1f00acda2c463afbea67c5e8d2877c5e3bc397a659949ef8021e954e0a12274e",
        )));
        assert_eq!(
            kp.public().encode(),
            h57(
                "43ba28f430cdff456ae531545f7ecd0ac834a55d9358c0372bfa0c6c6798c0866aea01eb00742802b8438ea4cb82169c235160627b4c3a9480"
            )
        );
        // The secret is the pruned lower half of SHAKE-256(sym, 114), the prefix the upper.
        let mut h = [0u8; 114];
        crate::crypto::kdf::shake256(&[kp.symmetric_key().as_bytes()], &mut h);
        let (mut lo, hi) = split_114(&h);
        assert_eq!(kp.prefix, hi);
        prune(&mut lo);
        assert_eq!(lo[0] & 3, 0);
        assert_eq!(lo[56], 0);
        assert_eq!(lo[55] & 0x80, 0x80);
        assert_eq!(
            kp.secret().encode(),
            Scalar::from_bytes_mod_order(&lo).encode()
        );
        assert_eq!(Point::mul_base(kp.secret()).unwrap(), *kp.public());
    }

    #[test]
    fn decode_rejects_y_equal_p_and_p_plus_one() {
        let p = p_u448();
        for last in [0x00, 0x80] {
            assert_eq!(
                Point::decode(&le57(&p, last)),
                Err(CryptoError::InvalidPointEncoding)
            );
            let p1 = p.wrapping_add(&U448::ONE);
            assert_eq!(
                Point::decode(&le57(&p1, last)),
                Err(CryptoError::InvalidPointEncoding)
            );
        }
        // y = p + 1 is what the crate alone decodes to the identity.
        let p1 = le57(&p.wrapping_add(&U448::ONE), 0);
        let lax: Option<ed448_goldilocks::AffinePoint> =
            ed448_goldilocks::CompressedEdwardsY(p1).decompress().into();
        assert!(
            lax.is_some(),
            "crate behaviour changed; strictness test no longer meaningful"
        );
    }

    #[test]
    fn decode_rejects_stray_bits_in_last_byte() {
        let g = GENERATOR_BYTES;
        for bit in 0..7 {
            let mut b = g;
            b[56] |= 1 << bit;
            assert_eq!(
                Point::decode(&b),
                Err(CryptoError::InvalidPointEncoding),
                "bit {bit}"
            );
        }
        let neg_g = Point::generator().negate().encode();
        assert_eq!(neg_g[56], 0x80, "sign bit alone is allowed");
        assert_eq!(Point::decode(&neg_g).unwrap(), Point::generator().negate());
    }

    #[test]
    fn decode_rejects_identity_and_small_order_points() {
        let mut id = [0u8; 57];
        id[0] = 1;
        assert_eq!(Point::decode(&id), Err(CryptoError::IdentityPoint));
        // x = 0 with the sign bit set is not a canonical encoding of the identity.
        id[56] = 0x80;
        assert_eq!(Point::decode(&id), Err(CryptoError::InvalidPointEncoding));
        // (0, -1): order 2.
        let minus_one = le57(&p_u448().wrapping_sub(&U448::ONE), 0);
        assert_eq!(
            Point::decode(&minus_one),
            Err(CryptoError::PointNotInSubgroup)
        );
        // (±1, 0): order 4.
        assert_eq!(
            Point::decode(&[0u8; 57]),
            Err(CryptoError::PointNotInSubgroup)
        );
        let mut x1 = [0u8; 57];
        x1[56] = 0x80;
        assert_eq!(Point::decode(&x1), Err(CryptoError::PointNotInSubgroup));
        // G + (0, -1): a point of order 2q.
        let t2 = EdwardsPoint::decode_unchecked(&minus_one).unwrap();
        let mixed = EdwardsPoint::GENERATOR + t2;
        assert_ne!(q_times(&mixed), EdwardsPoint::IDENTITY);
        assert_eq!(
            Point::decode(&encode_point(&mixed)),
            Err(CryptoError::PointNotInSubgroup)
        );
    }

    #[test]
    fn decode_agrees_with_independent_square_and_order_checks() {
        // For small y, decoding succeeds (in some error class other than the encoding one)
        // exactly when (y^2 - 1) / (d y^2 - 1) is a square mod p, and the subgroup check
        // agrees with q·X = I computed by double-and-add.
        let p = Odd::new(p_u448()).unwrap();
        use crypto_bigint::Odd;
        use crypto_bigint::modular::{FixedMontyForm as MontyForm, MontyParams};
        let params = MontyParams::new_vartime(p);
        let d = MontyForm::new(&p_u448().wrapping_sub(&U448::from_u32(39081)), &params);
        let one = MontyForm::new(&U448::ONE, &params);
        let mut seen_non_square = false;
        for y in 2u32..40 {
            let ym = MontyForm::new(&U448::from_u32(y), &params);
            let y2 = ym * ym;
            let num = y2 - one;
            let den = d * y2 - one;
            let ratio = (num * den.invert().unwrap()).retrieve();
            let enc = le57(&U448::from_u32(y), 0);
            let res = Point::decode(&enc);
            if is_square_mod_p(&ratio) {
                let pt = EdwardsPoint::decode_unchecked(&enc).unwrap();
                let theirs = ed448_goldilocks::CompressedEdwardsY(enc)
                    .decompress_unchecked()
                    .unwrap();
                assert_eq!(theirs.compress().0, pt.encode(), "y = {y}");
                let in_subgroup = q_times(&pt) == EdwardsPoint::IDENTITY;
                match res {
                    Ok(_) => assert!(in_subgroup, "y = {y}"),
                    Err(e) => {
                        assert_eq!(e, CryptoError::PointNotInSubgroup, "y = {y}");
                        assert!(!in_subgroup, "y = {y}");
                    }
                }
            } else {
                seen_non_square = true;
                assert_eq!(res, Err(CryptoError::InvalidPointEncoding), "y = {y}");
            }
        }
        assert!(seen_non_square);
        // y = 2 specifically has no x.
        let mut two = [0u8; 57];
        two[0] = 2;
        assert_eq!(Point::decode(&two), Err(CryptoError::InvalidPointEncoding));
    }

    #[test]
    fn random_points_round_trip_and_are_in_the_subgroup() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..16 {
            let kp = KeyPair::generate(&mut rng);
            let enc = kp.public().encode();
            let back = Point::decode(&enc).unwrap();
            assert_eq!(back, *kp.public());
            assert_eq!(back.encode(), enc);
            assert_eq!(q_times(&back.0), EdwardsPoint::IDENTITY);
        }
    }

    #[test]
    fn scalar_decoding_is_canonical_only() {
        let q = q_u448();
        assert_eq!(
            Scalar::decode(&le57(&q, 0)),
            Err(CryptoError::NonCanonicalScalar)
        );
        assert_eq!(
            Scalar::decode(&le57(&q.wrapping_add(&U448::ONE), 0)),
            Err(CryptoError::NonCanonicalScalar)
        );
        assert_eq!(
            Scalar::decode(&[0xff; 57]),
            Err(CryptoError::NonCanonicalScalar)
        );
        let q_minus_1 = le57(&q.wrapping_sub(&U448::ONE), 0);
        let s = Scalar::decode(&q_minus_1).unwrap();
        assert_eq!(s, -&Scalar::ONE);
        assert_eq!(s.encode(), q_minus_1);
        // A small value with a non-zero byte 56 (the crate alone would ignore byte 56).
        let mut five = le57(&U448::from_u8(5), 0);
        assert_eq!(Scalar::decode(&five).unwrap(), Scalar::from(5));
        five[56] = 1;
        assert_eq!(Scalar::decode(&five), Err(CryptoError::NonCanonicalScalar));
    }

    #[test]
    fn scalar_arithmetic_and_reductions() {
        let a = Scalar::from(7);
        let b = Scalar::from(5);
        assert_eq!(&a + &b, Scalar::from(12));
        assert_eq!(&a - &b, Scalar::from(2));
        assert_eq!(&a * &b, Scalar::from(35));
        assert_eq!(&(&b - &a) + &Scalar::from(2), Scalar::ZERO);
        assert_eq!(&a * &a.invert(), Scalar::ONE);
        assert!(bool::from(Scalar::ZERO.is_zero()));
        // q + 5 as 57 bytes and zero-extended wide bytes both reduce to 5.
        let q5 = le57(&q_u448().wrapping_add(&U448::from_u8(5)), 0);
        assert_eq!(Scalar::from_bytes_mod_order(&q5), b);
        // 2^448 (only byte 56 set) reduces to 2^448 mod q = 4 * (2^446 - q) .. i.e. not 0.
        let mut top = [0u8; 57];
        top[56] = 1;
        let two_448 = Scalar::from_bytes_mod_order(&top);
        let mut two_224 = [0u8; 57];
        two_224[28] = 1;
        let t = Scalar::from_bytes_mod_order(&two_224);
        assert_eq!(two_448, &(&t * &t) * &Scalar::from(1));
        assert_eq!(&(&t * &t) * &Scalar::ONE, two_448);
        assert_eq!(Scalar::conditional_select(&a, &b, Choice::from(1)), b);
        assert_eq!(Scalar::conditional_select(&a, &b, Choice::from(0)), a);
        assert_eq!(alloc::format!("{a:?}"), "Scalar(..)");
    }

    #[test]
    fn hash_to_scalar_is_hwc_57_reduced() {
        let mut h = [0u8; 57];
        crate::crypto::kdf::shake256(&[b"OTRv4", &[0x1a], b"abc"], &mut h);
        let expected = Scalar::from_bytes_mod_order(&h);
        assert_eq!(
            hash_to_scalar::<Otrv4>(Usage::Auth, &[b"a", b"bc"]),
            expected
        );
        // All 57 bytes count: a hash with byte 56 set differs from the 56-byte reading.
        let mut wide = [0u8; 114];
        wide[..57].copy_from_slice(&h);
        assert_eq!(Scalar::from_wide_bytes(&wide), expected);
    }

    #[test]
    fn pruned_scalars_follow_the_considerations_section() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut residues = [false; 4];
        for _ in 0..64 {
            let s = random_pruned_scalar(&mut rng);
            // Pruned integers lie in [2^447, 2^448) and are multiples of 4, so mod q they
            // hit only two classes mod 4 — the reason RSig uses uniform scalars instead.
            residues[(s.encode()[0] & 3) as usize] = true;
        }
        assert_eq!(residues.iter().filter(|r| **r).count(), 2);
        let mut residues = [false; 4];
        for _ in 0..64 {
            residues[(Scalar::random(&mut rng).encode()[0] & 3) as usize] = true;
        }
        assert_eq!(residues.iter().filter(|r| **r).count(), 4);
    }

    #[test]
    fn point_arithmetic() {
        let g = Point::generator();
        let two = Scalar::from(2);
        assert_eq!(g.checked_add(&g).unwrap(), g.checked_mul(&two).unwrap());
        assert_eq!(g.checked_sub(&g), Err(CryptoError::IdentityPoint));
        assert_eq!(g.checked_add(&g.negate()), Err(CryptoError::IdentityPoint));
        assert_eq!(
            Point::mul_base(&Scalar::ZERO),
            Err(CryptoError::IdentityPoint)
        );
        assert_eq!(
            g.checked_mul(&Scalar::ZERO),
            Err(CryptoError::IdentityPoint)
        );
        let three = Scalar::from(3);
        assert_eq!(
            Point::base_mul_add(&two, &g, &three).unwrap(),
            Point::mul_base(&Scalar::from(5)).unwrap()
        );
        let c = Point::conditional_select(&g, &g.negate(), Choice::from(1));
        assert_eq!(c, g.negate());
        let dbg = alloc::format!("{g:?}");
        assert!(dbg.starts_with("Point(14fa30f2"));
    }

    #[test]
    fn secrets_do_not_print() {
        let mut rng = StdRng::seed_from_u64(3);
        let kp = KeyPair::generate(&mut rng);
        let dbg = alloc::format!("{kp:?}");
        assert!(dbg.starts_with("KeyPair { public: Point("));
        assert!(!dbg.contains("secret"));
        assert_eq!(
            alloc::format!("{:?}", kp.symmetric_key()),
            "SymmetricKey(..)"
        );
        let again =
            KeyPair::from_symmetric_key(SymmetricKey::from_bytes(*kp.symmetric_key().as_bytes()));
        assert_eq!(again.public(), kp.public());
    }
}
