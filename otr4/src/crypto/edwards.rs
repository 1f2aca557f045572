//! Ed448-Goldilocks group arithmetic on the fiat-crypto field (RFC 8032 §5.2, otrv4.md
//! §"Elliptic Curve Parameters", §"Encoding and Decoding"): x² + y² = 1 + d·x²·y², d = −39081.
//!
//! Points are in extended coordinates (X : Y : Z : T), x = X/Z, y = Y/Z, T = XY/Z, and use
//! the complete addition and doubling formulas of Hisil–Wong–Carter–Dawson (2008) for
//! a = 1 (complete because d is not a square mod p). Scalar multiplication:
//!
//! - [`EdwardsPoint::mul`]: constant time, signed radix-32 fixed windows (a per-call table
//!   of `1·P … 16·P`, 445 doublings and 90 additions), table lookups by `subtle`
//!   conditional selection over the whole table;
//! - [`EdwardsPoint::mul_base`]: constant time, `G` only, from a table of `k·1024^j·G`
//!   built by the compiler (`const fn`), 90 mixed additions and 5 doublings;
//! - [`vartime_multiscalar_mul`] and [`EdwardsPoint::is_torsion_free_vartime`] (`q·P`):
//!   variable time (Straus with wNAF), for **public scalars only** (signature and proof
//!   checks);
//! - [`EdwardsPoint::is_torsion_free_decoded_vartime`]: the subgroup check of received
//!   points by 2-descent (three square roots), cross-checked against `q·P` by the tests.
//!
//! Encoding and decoding follow RFC 8032 §5.2.2/§5.2.3, decoding strictly (see
//! [`EdwardsPoint::decode_unchecked`]).

use crate::debug::redacted_debug;
use core::ops::{Add, AddAssign, Neg, Sub, SubAssign};

use ed448_goldilocks::EdwardsScalar;
use subtle::{Choice, ConditionallyNegatable, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

use super::p448::Fe;

/// The curve constant d = −39081.
const D: Fe = Fe::from_u64(39081).neg();

/// B = 4/(1 − d) of the Montgomery form `B·v² = u³ + A·u² + u` of the curve (β = B).
const MONT_B: Fe = Fe::from_u64(4).mul(&Fe::from_u64(39082).invert());

/// The base point's affine x (RFC 8032 §5.2), 56 bytes little-endian.
const GX: [u8; 56] = [
    0x5e, 0xc0, 0x0c, 0xc7, 0x2b, 0xa8, 0x26, 0x26, 0x8e, 0x93, 0x00, 0x8b, 0xe1, 0x80, 0x3b, 0x43,
    0x11, 0x65, 0xb6, 0x2a, 0xf7, 0x1a, 0xae, 0x12, 0x64, 0xa4, 0xd3, 0xa3, 0x24, 0xe3, 0x6d, 0xea,
    0x67, 0x17, 0x0f, 0x47, 0x70, 0x65, 0x14, 0x9e, 0xda, 0x36, 0xbf, 0x22, 0xa6, 0x15, 0x1d, 0x22,
    0xed, 0x0d, 0xed, 0x6b, 0xc6, 0x70, 0x19, 0x4f,
];

/// The base point's affine y (RFC 8032 §5.2), 56 bytes little-endian.
const GY: [u8; 56] = [
    0x14, 0xfa, 0x30, 0xf2, 0x5b, 0x79, 0x08, 0x98, 0xad, 0xc8, 0xd7, 0x4e, 0x2c, 0x13, 0xbd, 0xfd,
    0xc4, 0x39, 0x7c, 0xe6, 0x1c, 0xff, 0xd3, 0x3a, 0xd7, 0xc2, 0xa0, 0x05, 0x1e, 0x9c, 0x78, 0x87,
    0x40, 0x98, 0xa3, 0x6c, 0x73, 0x73, 0xea, 0x4b, 0x62, 0xc7, 0xc9, 0x56, 0x37, 0x20, 0x76, 0x88,
    0x24, 0xbc, 0xb6, 0x6e, 0x71, 0x46, 0x3f, 0x69,
];

/// The group order q, 56 bytes little-endian (q = 2^446 − 13818066809895115352007386748515426880336692474882178609894547503885).
const ORDER_LE: [u8; 56] = [
    0xf3, 0x44, 0x58, 0xab, 0x92, 0xc2, 0x78, 0x23, 0x55, 0x8f, 0xc5, 0x8d, 0x72, 0xc2, 0x6c, 0x21,
    0x90, 0x36, 0xd6, 0xae, 0x49, 0xdb, 0x4e, 0xc4, 0xe9, 0x23, 0xca, 0x7c, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f,
];

/// A point of the curve (any point, including the identity and torsion points) in
/// extended coordinates. Equality is projective and constant time.
#[derive(Clone, Copy)]
pub(crate) struct EdwardsPoint {
    x: Fe,
    y: Fe,
    z: Fe,
    t: Fe,
}

/// A point prepared as the right operand of an addition: (X, Y, Z, d·T).
#[derive(Clone, Copy)]
struct Cached {
    x: Fe,
    y: Fe,
    z: Fe,
    dt: Fe,
}

/// An affine point prepared as the right operand of an addition: (x, y, d·x·y), Z = 1.
#[derive(Clone, Copy)]
pub(crate) struct AffineCached {
    x: Fe,
    y: Fe,
    dxy: Fe,
}

impl Cached {
    const IDENTITY: Cached = Cached {
        x: Fe::ZERO,
        y: Fe::ONE,
        z: Fe::ONE,
        dt: Fe::ZERO,
    };
}

impl AffineCached {
    const IDENTITY: AffineCached = AffineCached {
        x: Fe::ZERO,
        y: Fe::ONE,
        dxy: Fe::ZERO,
    };
}

impl ConditionallySelectable for Cached {
    #[inline]
    fn conditional_select(a: &Cached, b: &Cached, c: Choice) -> Cached {
        Cached {
            x: Fe::conditional_select(&a.x, &b.x, c),
            y: Fe::conditional_select(&a.y, &b.y, c),
            z: Fe::conditional_select(&a.z, &b.z, c),
            dt: Fe::conditional_select(&a.dt, &b.dt, c),
        }
    }
}

impl ConditionallyNegatable for Cached {
    fn conditional_negate(&mut self, c: Choice) {
        let neg = Cached {
            x: self.x.neg(),
            y: self.y,
            z: self.z,
            dt: self.dt.neg(),
        };
        self.conditional_assign(&neg, c);
    }
}

impl ConditionallySelectable for AffineCached {
    #[inline]
    fn conditional_select(a: &AffineCached, b: &AffineCached, c: Choice) -> AffineCached {
        AffineCached {
            x: Fe::conditional_select(&a.x, &b.x, c),
            y: Fe::conditional_select(&a.y, &b.y, c),
            dxy: Fe::conditional_select(&a.dxy, &b.dxy, c),
        }
    }
}

impl ConditionallyNegatable for AffineCached {
    fn conditional_negate(&mut self, c: Choice) {
        let neg = AffineCached {
            x: self.x.neg(),
            y: self.y,
            dxy: self.dxy.neg(),
        };
        self.conditional_assign(&neg, c);
    }
}

/// Selects `|digit|·P` from `table = [1·P, …, N·P]` and negates it if `digit < 0`, reading
/// every entry (constant time in `digit`, which must lie in `[−N, N]`).
fn select<T: ConditionallySelectable + ConditionallyNegatable + Copy>(
    table: &[T],
    identity: T,
    digit: i8,
) -> T {
    let sign = digit >> 7; // 0 or −1
    let abs = (digit ^ sign).wrapping_sub(sign) as u8;
    let mut out = identity;
    for (j, entry) in (1u8..).zip(table.iter()) {
        out.conditional_assign(entry, abs.ct_eq(&j));
    }
    out.conditional_negate(Choice::from((sign as u8) & 1));
    out
}

/// Window width of the scalar multiplications: signed radix-2^5 digits.
const WINDOW: usize = 5;
/// Digits of a scalar `< 2^446` in signed radix 32 (the top one takes the last carry).
const DIGITS: usize = 90;
/// Table entries per window: `1·P … 16·P` (a digit's absolute value is at most 16).
const WINDOW_ENTRIES: usize = 1 << (WINDOW - 1);

/// The signed radix-32 digits of a scalar `s < 2^446`: `s = Σ dᵢ·32^i`, `dᵢ ∈ [−16, 16)`.
/// Constant time (every index depends on the position only). The caller zeroizes the result.
fn signed_digits(s: &EdwardsScalar) -> [i8; DIGITS] {
    let mut bytes = s.to_bytes();
    let mut digits = [0i8; DIGITS];
    for (i, d) in digits.iter_mut().enumerate() {
        let bit = i * WINDOW;
        let lo = u16::from(bytes.get(bit / 8).copied().unwrap_or(0));
        let hi = u16::from(bytes.get(bit / 8 + 1).copied().unwrap_or(0));
        *d = (((lo | (hi << 8)) >> (bit % 8)) & 31) as i8;
    }
    bytes.zeroize();
    let mut carry = 0i8;
    for d in digits.iter_mut() {
        let v = *d + carry; // 0..=32
        carry = (v + 16) >> 5;
        *d = v - (carry << 5);
    }
    // s < q < 2^446: the top digit (bit 445 plus a carry) is at most 2, the last carry 0.
    digits
}

impl EdwardsPoint {
    /// The identity (0, 1).
    pub(crate) const IDENTITY: EdwardsPoint = EdwardsPoint {
        x: Fe::ZERO,
        y: Fe::ONE,
        z: Fe::ONE,
        t: Fe::ZERO,
    };

    /// The base point G of RFC 8032 §5.2.
    pub(crate) const GENERATOR: EdwardsPoint =
        EdwardsPoint::from_affine(Fe::from_bytes(&GX), Fe::from_bytes(&GY));

    const fn from_affine(x: Fe, y: Fe) -> EdwardsPoint {
        EdwardsPoint {
            x,
            y,
            z: Fe::ONE,
            t: x.mul(&y),
        }
    }

    const fn to_cached(self) -> Cached {
        Cached {
            x: self.x,
            y: self.y,
            z: self.z,
            dt: self.t.mul(&D),
        }
    }

    /// `self + q` (HWCD add-2008-hwcd with a = 1, k·T2 precomputed): 9M.
    const fn add_cached(&self, q: &Cached) -> EdwardsPoint {
        let a = self.x.mul(&q.x);
        let b = self.y.mul(&q.y);
        let c = self.t.mul(&q.dt);
        let d = self.z.mul(&q.z);
        let e = self
            .x
            .add_loose(&self.y)
            .mul(&q.x.add_loose(&q.y))
            .sub(&a.add(&b))
            .relax();
        let f = d.sub_loose(&c);
        let g = d.add_loose(&c);
        let h = b.sub_loose(&a);
        EdwardsPoint {
            x: e.mul(&f),
            y: g.mul(&h),
            z: f.mul(&g),
            t: e.mul(&h),
        }
    }

    /// `self + q` for an affine `q` (Z2 = 1): 8M.
    const fn add_affine(&self, q: &AffineCached) -> EdwardsPoint {
        let a = self.x.mul(&q.x);
        let b = self.y.mul(&q.y);
        let c = self.t.mul(&q.dxy);
        let d = self.z;
        let e = self
            .x
            .add_loose(&self.y)
            .mul(&q.x.add_loose(&q.y))
            .sub(&a.add(&b))
            .relax();
        let f = d.sub_loose(&c);
        let g = d.add_loose(&c);
        let h = b.sub_loose(&a);
        EdwardsPoint {
            x: e.mul(&f),
            y: g.mul(&h),
            z: f.mul(&g),
            t: e.mul(&h),
        }
    }

    /// `2·self` (HWCD dbl-2008-hwcd with a = 1): 4M + 4S, or 3M + 4S without T (when the
    /// result is only doubled again; T is then left stale and must not be read).
    const fn double_inner(&self, with_t: bool) -> EdwardsPoint {
        let a = self.x.square();
        let b = self.y.square();
        let zz = self.z.square();
        let c = zz.add(&zz);
        let g = a.add(&b);
        let h = a.sub_loose(&b);
        let e = self.x.add_loose(&self.y).square().sub(&g).relax();
        let f = g.sub_loose(&c);
        let g = g.relax();
        EdwardsPoint {
            x: e.mul(&f),
            y: g.mul(&h),
            z: f.mul(&g),
            t: if with_t { e.mul(&h) } else { Fe::ZERO },
        }
    }

    /// `2·self`.
    pub(crate) const fn double(&self) -> EdwardsPoint {
        self.double_inner(true)
    }

    /// `2^n·self` for n ≥ 1.
    fn double_n(&self, n: u32) -> EdwardsPoint {
        let mut r = *self;
        for _ in 1..n {
            r = r.double_inner(false);
        }
        r.double_inner(true)
    }

    /// `−self`.
    pub(crate) fn negate(&self) -> EdwardsPoint {
        EdwardsPoint {
            x: self.x.neg(),
            y: self.y,
            z: self.z,
            t: self.t.neg(),
        }
    }

    /// Whether this is the identity (X = 0 and Y = Z), constant time.
    pub(crate) fn is_identity(&self) -> Choice {
        self.x.is_zero() & self.y.ct_eq(&self.z)
    }

    /// The 57-byte encoding of RFC 8032 §5.2.2: y little-endian in bytes 0..56, the low bit
    /// of x in bit 7 of byte 56. Constant time.
    pub(crate) fn encode(&self) -> [u8; 57] {
        let zinv = self.z.invert();
        encode_affine(&self.x.mul(&zinv), &self.y.mul(&zinv))
    }

    /// [`Self::encode`] without the inversion when Z = 1 (points from
    /// [`Self::decode_unchecked`] or [`Self::normalize`]). Branches on whether Z = 1, which
    /// depends on where the point came from, not on its value: use it for public points.
    pub(crate) fn encode_public(&self) -> [u8; 57] {
        if bool::from(self.z.ct_eq(&Fe::ONE)) {
            encode_affine(&self.x, &self.y)
        } else {
            self.encode()
        }
    }

    /// The same point with Z = 1 (one inversion, constant time).
    pub(crate) fn normalize(&self) -> EdwardsPoint {
        let zinv = self.z.invert();
        EdwardsPoint::from_affine(self.x.mul(&zinv), self.y.mul(&zinv))
    }
}

/// The RFC 8032 §5.2.2 encoding of the affine point (x, y).
fn encode_affine(x: &Fe, y: &Fe) -> [u8; 57] {
    let mut out = [0u8; 57];
    for (o, b) in out.iter_mut().zip(y.to_bytes()) {
        *o = b;
    }
    if let Some(last) = out.last_mut() {
        *last = x.is_negative().unwrap_u8() << 7;
    }
    out
}

impl EdwardsPoint {
    /// Decodes per RFC 8032 §5.2.3, strictly: byte 56 may only carry the sign bit, y must
    /// be canonical (< p), (y²−1)/(d·y²−1) must be a square, and x = 0 with the sign bit
    /// set is rejected. Returns `None` on any failure. Does not check the subgroup. Runs in
    /// variable time: encodings are public.
    pub(crate) fn decode_unchecked(bytes: &[u8; 57]) -> Option<EdwardsPoint> {
        let (y_bytes, last) = bytes.split_first_chunk::<56>()?;
        let last = last.first().copied()?;
        if last & 0x7f != 0 {
            return None;
        }
        let y = Fe::from_bytes(y_bytes);
        if y.to_bytes() != *y_bytes {
            return None; // y ≥ p
        }
        let yy = y.square();
        let u = yy.sub(&Fe::ONE);
        let v = D.mul(&yy).sub(&Fe::ONE);
        let (is_square, x) = Fe::sqrt_ratio(&u, &v);
        if !bool::from(is_square) {
            return None;
        }
        let x_0 = Choice::from(last >> 7);
        if bool::from(x.is_zero() & x_0) {
            return None;
        }
        let flip = x.is_negative() ^ x_0;
        let x = Fe::conditional_select(&x, &x.neg(), flip);
        Some(EdwardsPoint::from_affine(x, y))
    }

    /// `self · s`, constant time in `s` (and in the point): signed radix-32 windows over a
    /// table of `1·P … 16·P` (15 additions), 445 doublings and 90 additions.
    pub(crate) fn mul(&self, s: &EdwardsScalar) -> EdwardsPoint {
        let mut table = [Cached::IDENTITY; WINDOW_ENTRIES];
        let mut acc = *self;
        let p_cached = self.to_cached();
        for entry in table.iter_mut() {
            *entry = acc.to_cached();
            acc = acc.add_cached(&p_cached);
        }
        let mut digits = signed_digits(s);
        let mut q = EdwardsPoint::IDENTITY;
        for (i, d) in digits.iter().rev().enumerate() {
            if i != 0 {
                q = q.double_n(WINDOW as u32);
            }
            q = q.add_cached(&select(&table, Cached::IDENTITY, *d));
        }
        digits.zeroize();
        q
    }

    /// `G · s`, constant time in `s`: `s·G = Σⱼ d₂ⱼ·1024^j·G + 32·Σⱼ d₂ⱼ₊₁·1024^j·G` with
    /// the signed radix-32 digits dᵢ of `s` and the precomputed [`BASE_TABLE`]: 90 mixed
    /// additions, each after a scan of a 16-entry row, and 5 doublings.
    pub(crate) fn mul_base(s: &EdwardsScalar) -> EdwardsPoint {
        let mut digits = signed_digits(s);
        let mut q = EdwardsPoint::IDENTITY;
        for (pair, row) in digits.chunks_exact(2).zip(BASE_TABLE.iter()) {
            if let Some(d) = pair.get(1) {
                q = q.add_affine(&select(row, AffineCached::IDENTITY, *d));
            }
        }
        q = q.double_n(WINDOW as u32);
        for (pair, row) in digits.chunks_exact(2).zip(BASE_TABLE.iter()) {
            if let Some(d) = pair.first() {
                q = q.add_affine(&select(row, AffineCached::IDENTITY, *d));
            }
        }
        digits.zeroize();
        q
    }

    /// Whether `q·self` is the identity, for a point fresh from [`Self::decode_unchecked`]
    /// (Z = 1). Variable time: only for public points. E(F_p) is cyclic of order 4q, so the
    /// prime-order subgroup is 4·E, and membership is tested with square roots instead of
    /// 446 doublings: on the Montgomery form `Y² = X(X² + aX + β²)` of the curve (u = (1+y)/(1−y),
    /// X = B·u, Y = B²·u/x, B = 4/(1−d)), a point is in 2·E iff X is a square (2-descent);
    /// a half Q of P has `Z = (X_Q + β)²/X_Q = 2(β + X) ± 2Y/√X` and
    /// `X_Q = (Z − 2β ± √(Z(Z − 4β)))/2`, and P ∈ 4·E iff X_Q is a square. The result is
    /// checked against `q·P = I` by the tests. Falls back to `q·P` if Z ≠ 1.
    pub(crate) fn is_torsion_free_decoded_vartime(&self) -> bool {
        if !bool::from(self.z.ct_eq(&Fe::ONE)) {
            return self.is_torsion_free_vartime();
        }
        let (x, y) = (self.x, self.y);
        if bool::from(x.is_zero()) {
            // The identity (y = 1) or the point of order 2 (y = −1).
            return bool::from(y.ct_eq(&Fe::ONE));
        }
        if bool::from(y.is_zero()) {
            return false; // (±1, 0): order 4
        }
        let one_minus_y = Fe::ONE.sub(&y);
        let inv = one_minus_y.mul(&x).invert(); // x ≠ 0 and y ≠ 1 here
        let one_plus_y = Fe::ONE.add(&y);
        let big_x = MONT_B.mul(&one_plus_y).mul(&x).mul(&inv);
        let big_y = MONT_B.square().mul(&one_plus_y).mul(&inv);
        // 1/√X; X non-square means P ∉ 2·E.
        let (is_square, rho_inv) = Fe::sqrt_ratio(&Fe::ONE, &big_x);
        if !bool::from(is_square) {
            return false;
        }
        let y_over_rho = big_y.mul(&rho_inv);
        let base = MONT_B.add(&big_x);
        let base = base.add(&base);
        let twice = y_over_rho.add(&y_over_rho);
        for z in [base.add(&twice), base.sub(&twice)] {
            let four_beta = MONT_B.add(&MONT_B);
            let four_beta = four_beta.add(&four_beta);
            let disc = z.mul(&z.sub(&four_beta));
            let (ok, sigma) = Fe::sqrt_ratio(&disc, &Fe::ONE);
            if !bool::from(ok) {
                continue; // this root belongs to no rational half
            }
            let two_w = z.sub(&MONT_B.add(&MONT_B)).add(&sigma);
            // X_Q = two_w / 2 is a square iff 2·X_Q is a square times 2, and 2 is a square
            // mod p (p ≡ 7 mod 8): test two_w directly.
            let (w_square, _) = Fe::sqrt_ratio(&two_w, &Fe::ONE);
            return bool::from(w_square);
        }
        false
    }

    /// Whether `q·self` is the identity (no component of order 2 or 4). Variable time:
    /// only for public points.
    pub(crate) fn is_torsion_free_vartime(&self) -> bool {
        let q = vartime_mul_bytes(&ORDER_LE, self);
        bool::from(q.is_identity())
    }
}

impl ConstantTimeEq for EdwardsPoint {
    fn ct_eq(&self, other: &EdwardsPoint) -> Choice {
        self.x.mul(&other.z).ct_eq(&other.x.mul(&self.z))
            & self.y.mul(&other.z).ct_eq(&other.y.mul(&self.z))
    }
}

// Prints nothing: a group element may be a shared secret (ECDH, SMP).
redacted_debug!(EdwardsPoint);

impl PartialEq for EdwardsPoint {
    fn eq(&self, other: &EdwardsPoint) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for EdwardsPoint {}

impl ConditionallySelectable for EdwardsPoint {
    fn conditional_select(a: &EdwardsPoint, b: &EdwardsPoint, c: Choice) -> EdwardsPoint {
        EdwardsPoint {
            x: Fe::conditional_select(&a.x, &b.x, c),
            y: Fe::conditional_select(&a.y, &b.y, c),
            z: Fe::conditional_select(&a.z, &b.z, c),
            t: Fe::conditional_select(&a.t, &b.t, c),
        }
    }
}

impl Add<EdwardsPoint> for EdwardsPoint {
    type Output = EdwardsPoint;
    fn add(self, rhs: EdwardsPoint) -> EdwardsPoint {
        self.add_cached(&rhs.to_cached())
    }
}

impl Sub<EdwardsPoint> for EdwardsPoint {
    type Output = EdwardsPoint;
    fn sub(self, rhs: EdwardsPoint) -> EdwardsPoint {
        self.add_cached(&rhs.negate().to_cached())
    }
}

impl AddAssign<EdwardsPoint> for EdwardsPoint {
    fn add_assign(&mut self, rhs: EdwardsPoint) {
        *self = *self + rhs;
    }
}

impl SubAssign<EdwardsPoint> for EdwardsPoint {
    fn sub_assign(&mut self, rhs: EdwardsPoint) {
        *self = *self - rhs;
    }
}

impl Neg for EdwardsPoint {
    type Output = EdwardsPoint;
    fn neg(self) -> EdwardsPoint {
        self.negate()
    }
}

// ---------------------------------------------------------------------------------------
// Precomputed tables of G, built at compile time.

/// Rows of the fixed-base table: one per pair of radix-32 digits (90 digits).
const BASE_ROWS: usize = DIGITS / 2;
/// Entries of the odd-multiples table of G for wNAF (width 8): G, 3G, …, 127G.
const BASE_ODD: usize = 64;

/// Normalises `N` points to affine cached form with one (Montgomery batch) inversion.
#[allow(clippy::indexing_slicing)] // const fn: loops bounded by N; only evaluated by the compiler
const fn batch_to_affine<const N: usize>(pts: &[EdwardsPoint; N]) -> [AffineCached; N] {
    let mut prefix = [Fe::ONE; N];
    let mut acc = Fe::ONE;
    let mut i = 0;
    while i < N {
        prefix[i] = acc;
        acc = acc.mul(&pts[i].z);
        i += 1;
    }
    let mut inv = acc.invert();
    let mut out = [AffineCached::IDENTITY; N];
    while i > 0 {
        i -= 1;
        let zinv = inv.mul(&prefix[i]);
        inv = inv.mul(&pts[i].z);
        let x = pts[i].x.mul(&zinv);
        let y = pts[i].y.mul(&zinv);
        out[i] = AffineCached {
            x,
            y,
            dxy: x.mul(&y).mul(&D),
        };
    }
    out
}

/// `BASE_TABLE[j][k] = (k+1)·1024^j·G`.
#[allow(clippy::indexing_slicing)] // const fn: loops bounded by the array sizes
const fn build_base_table() -> [[AffineCached; WINDOW_ENTRIES]; BASE_ROWS] {
    const E: usize = WINDOW_ENTRIES;
    let mut pts = [EdwardsPoint::IDENTITY; BASE_ROWS * E];
    let mut base = EdwardsPoint::GENERATOR;
    let mut j = 0;
    while j < BASE_ROWS {
        let base_cached = base.to_cached();
        let mut acc = base;
        let mut k = 0;
        while k < E {
            pts[j * E + k] = acc;
            acc = acc.add_cached(&base_cached);
            k += 1;
        }
        let mut n = 0;
        while n < 2 * WINDOW {
            base = base.double();
            n += 1;
        }
        j += 1;
    }
    let flat = batch_to_affine(&pts);
    let mut out = [[AffineCached::IDENTITY; E]; BASE_ROWS];
    let mut j = 0;
    while j < BASE_ROWS {
        let mut k = 0;
        while k < E {
            out[j][k] = flat[j * E + k];
            k += 1;
        }
        j += 1;
    }
    out
}

/// `BASE_ODD_TABLE[i] = (2i+1)·G`.
#[allow(clippy::indexing_slicing)] // const fn: loop bounded by the array size
const fn build_base_odd_table() -> [AffineCached; BASE_ODD] {
    let mut pts = [EdwardsPoint::IDENTITY; BASE_ODD];
    let g2 = EdwardsPoint::GENERATOR.double().to_cached();
    let mut acc = EdwardsPoint::GENERATOR;
    let mut i = 0;
    while i < BASE_ODD {
        pts[i] = acc;
        acc = acc.add_cached(&g2);
        i += 1;
    }
    batch_to_affine(&pts)
}

/// `k·1024^j·G` for k = 1..16, j = 0..45 (affine; 720 entries of 192 bytes, 135 KiB), for
/// [`EdwardsPoint::mul_base`]. Built by the compiler (seconds of const evaluation, hence
/// the lint allowance).
#[allow(long_running_const_eval)]
static BASE_TABLE: [[AffineCached; WINDOW_ENTRIES]; BASE_ROWS] = build_base_table();

/// `(2i+1)·G` for i = 0..64 (affine), for the `G` term of [`vartime_multiscalar_mul`].
#[allow(long_running_const_eval)]
static BASE_ODD_TABLE: [AffineCached; BASE_ODD] = build_base_odd_table();

// ---------------------------------------------------------------------------------------
// Variable-time multi-scalar multiplication (public scalars only).

/// Bits in a wNAF: scalars are < 2^448, one more for the final carry.
const NAF_LEN: usize = 449;

/// Bit `i` of a little-endian byte string (0 past the end).
fn bit(bytes: &[u8; 56], i: usize) -> u32 {
    bytes
        .get(i / 8)
        .map_or(0, |b| u32::from((b >> (i % 8)) & 1))
}

/// The width-`w` non-adjacent form of a little-endian integer `< 2^446`: digits are 0 or
/// odd with |dᵢ| < 2^(w−1), and any w consecutive digits hold at most one non-zero.
/// Variable time.
fn wnaf(bytes: &[u8; 56], w: usize) -> [i16; NAF_LEN] {
    let mut naf = [0i16; NAF_LEN];
    let width = 1i32 << w;
    let mut carry = 0i32;
    let mut pos = 0;
    while pos < NAF_LEN {
        let mut window = carry;
        for k in 0..w {
            window += (bit(bytes, pos + k) as i32) << k;
        }
        if window & 1 == 0 {
            // Digit 0 here; a pending carry moves on to the next bit unchanged.
            pos += 1;
            continue;
        }
        let digit = if window < width / 2 {
            carry = 0;
            window
        } else {
            carry = 1;
            window - width
        };
        if let Some(n) = naf.get_mut(pos) {
            *n = digit as i16;
        }
        pos += w;
    }
    // The input is < 2^446, so no window near the top is ≥ 2^(w−1): the carry ends at 0.
    naf
}

/// `[1·P, 3·P, 5·P, …, 15·P]` for width-5 wNAF.
fn odd_multiples(p: &EdwardsPoint) -> [Cached; 8] {
    let p2 = p.double().to_cached();
    let mut acc = *p;
    let mut out = [Cached::IDENTITY; 8];
    for entry in out.iter_mut() {
        *entry = acc.to_cached();
        acc = acc.add_cached(&p2);
    }
    out
}

impl Cached {
    fn negate(&self) -> Cached {
        Cached {
            x: self.x.neg(),
            y: self.y,
            z: self.z,
            dt: self.dt.neg(),
        }
    }
}

impl AffineCached {
    fn negate(&self) -> AffineCached {
        AffineCached {
            x: self.x.neg(),
            y: self.y,
            dxy: self.dxy.neg(),
        }
    }
}

/// The table entry for an odd wNAF digit `d` (|d| = 2i+1 → index i), negated if d < 0.
fn odd_entry<T: Copy>(table: &[T], d: i16, negate: impl Fn(&T) -> T) -> Option<T> {
    let i = usize::from(d.unsigned_abs() / 2);
    let e = table.get(i)?;
    Some(if d < 0 { negate(e) } else { *e })
}

/// Straus' interleaved multi-scalar multiplication with wNAF digits (width 8 for G from
/// [`BASE_ODD_TABLE`], width 5 for the other points): `g·G + Σ sᵢ·Pᵢ`. **Variable time in
/// the scalars** (the points may be secret: no table index depends on them).
fn straus_vartime<const N: usize>(
    g: Option<&[u8; 56]>,
    terms: [([u8; 56], &EdwardsPoint); N],
) -> EdwardsPoint {
    let g_naf = g.map(|b| wnaf(b, 8));
    let nafs = terms.map(|(b, _)| wnaf(&b, 5));
    let tables = terms.map(|(_, p)| odd_multiples(p));
    let nonzero_at = |i: usize| {
        g_naf
            .as_ref()
            .is_some_and(|n| n.get(i).is_some_and(|d| *d != 0))
            || nafs.iter().any(|n| n.get(i).is_some_and(|d| *d != 0))
    };
    let Some(top) = (0..NAF_LEN).rev().find(|i| nonzero_at(*i)) else {
        return EdwardsPoint::IDENTITY;
    };
    let mut q = EdwardsPoint::IDENTITY;
    for i in (0..=top).rev() {
        let adds = nonzero_at(i);
        // T is only needed by an addition (or in the result).
        q = q.double_inner(adds || i == 0);
        if !adds {
            continue;
        }
        if let Some(d) = g_naf
            .as_ref()
            .and_then(|n| n.get(i))
            .copied()
            .filter(|d| *d != 0)
            && let Some(e) = odd_entry(&BASE_ODD_TABLE, d, AffineCached::negate)
        {
            q = q.add_affine(&e);
        }
        for (naf, table) in nafs.iter().zip(tables.iter()) {
            if let Some(d) = naf.get(i).copied().filter(|d| *d != 0)
                && let Some(e) = odd_entry(table, d, Cached::negate)
            {
                q = q.add_cached(&e);
            }
        }
    }
    q
}

/// `bytes·P` in variable time (public integer < 2^446, e.g. the group order).
fn vartime_mul_bytes(bytes: &[u8; 56], p: &EdwardsPoint) -> EdwardsPoint {
    straus_vartime(None, [(*bytes, p)])
}

/// `g·G + Σ sᵢ·Pᵢ` in **variable time**: only for public scalars (EdDSA, ring signature,
/// SMP and prekey proof verification). `g = None` leaves out the G term.
pub(crate) fn vartime_multiscalar_mul<const N: usize>(
    g: Option<&EdwardsScalar>,
    terms: [(&EdwardsScalar, &EdwardsPoint); N],
) -> EdwardsPoint {
    let g_bytes = g.map(|s| s.to_bytes());
    straus_vartime(g_bytes.as_ref(), terms.map(|(s, p)| (s.to_bytes(), p)))
}

#[cfg(test)]
mod tests {
    //! Differential tests against `ed448-goldilocks` (the implementation this module
    //! replaced) on random and edge inputs.
    use super::*;
    use crate::crypto::CryptoError;
    use crate::crypto::ed448::{Point, Scalar};
    use alloc::vec::Vec;
    use ed448_goldilocks as old;
    use proptest::prelude::*;

    fn old_encode(p: &old::EdwardsPoint) -> [u8; 57] {
        p.to_affine().compress().0
    }

    /// The old implementation's point, by decoding our encoding with the old decoder.
    fn to_old(p: &EdwardsPoint) -> old::EdwardsPoint {
        let a: Option<old::AffinePoint> = old::CompressedEdwardsY(p.encode())
            .decompress_unchecked()
            .into();
        a.unwrap().to_edwards()
    }

    /// `ed448.rs`' `Point::decode` as it was on ed448-goldilocks, kept as the oracle.
    fn old_decode(bytes: &[u8; 57]) -> Result<[u8; 57], CryptoError> {
        if bytes[56] & 0x7f != 0 {
            return Err(CryptoError::InvalidPointEncoding);
        }
        let a: Option<old::AffinePoint> = old::CompressedEdwardsY(*bytes)
            .decompress_unchecked()
            .into();
        let a = a.ok_or(CryptoError::InvalidPointEncoding)?;
        if !bool::from(a.is_on_curve()) || a.compress().0 != *bytes {
            return Err(CryptoError::InvalidPointEncoding);
        }
        let p = a.to_edwards();
        if bool::from(p.ct_eq(&old::EdwardsPoint::IDENTITY)) {
            return Err(CryptoError::IdentityPoint);
        }
        if !bool::from(p.is_torsion_free()) {
            return Err(CryptoError::PointNotInSubgroup);
        }
        Ok(old_encode(&p))
    }

    fn le57(v: &[u8]) -> [u8; 57] {
        let mut out = [0u8; 57];
        out[..v.len()].copy_from_slice(v);
        out
    }

    /// p − 1, p, p + 1 and 2^448 − 1 as 56 little-endian bytes.
    fn p_plus(k: i8) -> [u8; 56] {
        // p = 2^448 − 2^224 − 1: bytes 0..28 = 0xff except byte 0, byte 28 = 0xfe, rest 0xff.
        let mut p = [0xffu8; 56];
        p[28] = 0xfe;
        let mut v = crypto_bigint::U448::from_le_slice(&p);
        let one = crypto_bigint::U448::ONE;
        for _ in 0..k.unsigned_abs() {
            v = if k > 0 {
                v.wrapping_add(&one)
            } else {
                v.wrapping_sub(&one)
            };
        }
        let mut b = [0u8; 56];
        b.copy_from_slice(&v.to_le_bytes());
        b
    }

    /// Torsion points: (0, −1) of order 2 and (±1, 0) of order 4.
    fn torsion() -> Vec<EdwardsPoint> {
        let t2 = EdwardsPoint::decode_unchecked(&le57(&p_plus(-1))).unwrap();
        let t4 = EdwardsPoint::decode_unchecked(&[0u8; 57]).unwrap();
        assert!(bool::from(t2.double().is_identity()));
        assert!(!bool::from(t4.double().is_identity()));
        assert!(bool::from(t4.double().double().is_identity()));
        alloc::vec![t2, t4, t4.negate(), EdwardsPoint::IDENTITY]
    }

    fn edge_scalars() -> Vec<Scalar> {
        let q_minus = |k: u64| &Scalar::ZERO - &Scalar::from(k);
        let mut top = [0u8; 57];
        top[55] = 0x3f; // 2^446 − 2^440 region
        top[54] = 0xff;
        alloc::vec![
            Scalar::ZERO,
            Scalar::ONE,
            Scalar::from(2),
            Scalar::from(8),
            Scalar::from(16),
            Scalar::from(0x0888_8888_8888_8888),
            // Radix-32 digits of 16 and 15 everywhere (the carry edge of the recoding).
            radix32_pattern(16),
            radix32_pattern(15),
            radix32_pattern(31),
            q_minus(1),
            q_minus(2),
            q_minus(8),
            Scalar::from_bytes_mod_order(&top),
            Scalar::from_bytes_mod_order(&[0xff; 57]),
        ]
    }

    /// The scalar whose 5-bit chunks (below bit 445) all equal `v`, reduced mod q.
    fn radix32_pattern(v: u8) -> Scalar {
        let mut b = [0u8; 57];
        for i in 0..89 {
            let bit = 5 * i;
            let w = u16::from(v) << (bit % 8);
            b[bit / 8] |= w as u8;
            b[bit / 8 + 1] |= (w >> 8) as u8;
        }
        Scalar::from_bytes_mod_order(&b)
    }

    fn scalar_from(bytes: &[u8; 64], bytes2: &[u8; 50]) -> Scalar {
        let mut wide = [0u8; 114];
        wide[..64].copy_from_slice(bytes);
        wide[64..].copy_from_slice(bytes2);
        Scalar::from_wide_bytes(&wide)
    }

    /// `s·P` for the integer `s ∈ [0, q)` by plain double-and-add with the old crate's
    /// group law: the reference for points with a torsion component, where the old crate's
    /// scalar multiplication does not compute the integer multiple.
    fn ref_mul(p: &old::EdwardsPoint, s: &Scalar) -> old::EdwardsPoint {
        let bytes = s.0.to_bytes();
        let mut acc = old::EdwardsPoint::IDENTITY;
        for i in (0..448).rev() {
            acc = acc.double();
            if (bytes[i / 8] >> (i % 8)) & 1 == 1 {
                acc += *p;
            }
        }
        acc
    }

    fn check_all_mults(s: &Scalar, t: &Scalar, p: &EdwardsPoint) {
        let op = to_old(p);
        let og = old::EdwardsPoint::GENERATOR;
        assert_eq!(
            EdwardsPoint::mul_base(&s.0).encode(),
            old_encode(&(og * s.0)),
            "G·s"
        );
        let (ps, pt) = (ref_mul(&op, s), ref_mul(&op, t));
        if bool::from(op.is_torsion_free()) {
            assert_eq!(old_encode(&ps), old_encode(&(op * s.0)), "reference");
        }
        assert_eq!(p.mul(&s.0).encode(), old_encode(&ps), "P·s");
        let expected = old_encode(&(og * s.0 + pt));
        assert_eq!(
            vartime_multiscalar_mul(Some(&s.0), [(&t.0, p)]).encode(),
            expected,
            "G·s + P·t (vartime)"
        );
        assert_eq!(
            (EdwardsPoint::mul_base(&s.0) + p.mul(&t.0)).encode(),
            expected
        );
        assert_eq!(
            vartime_multiscalar_mul(None, [(&t.0, p), (&s.0, &EdwardsPoint::GENERATOR)]).encode(),
            expected
        );
        assert_eq!(
            vartime_multiscalar_mul::<0>(Some(&t.0), []).encode(),
            old_encode(&(og * t.0))
        );
    }

    #[test]
    fn base_tables_hold_the_computed_multiples() {
        let og = old::EdwardsPoint::GENERATOR;
        for (j, row) in BASE_TABLE.iter().enumerate() {
            for (k, e) in row.iter().enumerate() {
                // (k+1)·2^(10j), little-endian.
                let mut b = [0u8; 57];
                let v = ((k + 1) as u16) << (10 * j % 8);
                b[10 * j / 8] = v as u8;
                b[10 * j / 8 + 1] = (v >> 8) as u8;
                let s = Scalar::from_bytes_mod_order(&b);
                let p = EdwardsPoint::from_affine(e.x, e.y);
                assert_eq!(p.encode(), old_encode(&(og * s.0)), "row {j} entry {k}");
                assert!(bool::from(e.dxy.ct_eq(&e.x.mul(&e.y).mul(&D))));
            }
        }
        for (i, e) in BASE_ODD_TABLE.iter().enumerate() {
            let s = Scalar::from(2 * i as u64 + 1);
            let p = EdwardsPoint::from_affine(e.x, e.y);
            assert_eq!(p.encode(), old_encode(&(og * s.0)), "odd entry {i}");
            assert!(bool::from(e.dxy.ct_eq(&e.x.mul(&e.y).mul(&D))));
        }
        assert_eq!(EdwardsPoint::GENERATOR.encode(), old_encode(&og));
    }

    #[test]
    fn edge_scalars_and_torsion_points() {
        let g3 = EdwardsPoint::GENERATOR.mul(&Scalar::from(3).0);
        let mut points = torsion();
        points.push(EdwardsPoint::GENERATOR);
        points.push(g3);
        let t = torsion();
        points.push(g3 + t[0]);
        points.push(g3 + t[1]);
        let edges = edge_scalars();
        for p in &points {
            for s in &edges {
                check_all_mults(s, &edges[6], p);
                check_all_mults(&edges[1], s, p);
            }
        }
        // Identity and torsion behaviour of the helpers.
        assert!(bool::from(EdwardsPoint::IDENTITY.is_identity()));
        assert!(EdwardsPoint::IDENTITY.is_torsion_free_vartime());
        assert!(EdwardsPoint::GENERATOR.is_torsion_free_vartime());
        for tp in &t[..3] {
            let fresh = EdwardsPoint::decode_unchecked(&tp.encode()).unwrap();
            assert!(!fresh.is_torsion_free_decoded_vartime());
            assert!(!tp.is_torsion_free_vartime());
            assert!(!(g3 + *tp).is_torsion_free_vartime());
        }
        assert!(bool::from(
            EdwardsPoint::mul_base(&Scalar::ZERO.0).is_identity()
        ));
    }

    #[test]
    fn decode_edge_encodings_like_the_old_code() {
        let mut inputs: Vec<[u8; 57]> = Vec::new();
        for k in -3i8..=3 {
            for last in [0x00u8, 0x80, 0x01, 0x40, 0xff] {
                let mut b = le57(&p_plus(k));
                b[56] = last;
                inputs.push(b);
            }
        }
        for y in 0u8..=40 {
            for last in [0x00u8, 0x80, 0x02] {
                let mut b = [0u8; 57];
                b[0] = y;
                b[56] = last;
                inputs.push(b);
            }
        }
        inputs.push([0xff; 57]);
        let mut ff = [0xff; 57];
        ff[56] = 0;
        inputs.push(ff);
        let g = EdwardsPoint::GENERATOR;
        for p in torsion() {
            for q in [p, p + g, p + g.double(), p.negate() + g] {
                let e = q.encode();
                inputs.push(e);
                let mut flipped = e;
                flipped[56] ^= 0x80;
                inputs.push(flipped);
            }
        }
        for b in &inputs {
            assert_eq!(
                Point::decode(b).map(|p| p.encode()),
                old_decode(b),
                "{}",
                hex::encode(b)
            );
            // The unchecked decoder agrees with the old one on the curve part.
            let ours = EdwardsPoint::decode_unchecked(b).map(|p| p.encode());
            let theirs = old_decode(b).map_or_else(
                |e| (e != CryptoError::InvalidPointEncoding).then_some(*b),
                Some,
            );
            assert_eq!(ours, theirs, "{}", hex::encode(b));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn random_scalar_mults_match_the_old_crate(
            a in any::<[u8; 64]>(), a2 in any::<[u8; 50]>(),
            b in any::<[u8; 64]>(), b2 in any::<[u8; 50]>(),
            c in any::<[u8; 64]>(), c2 in any::<[u8; 50]>(),
            torsion_index in 0usize..4,
        ) {
            let (s, t, u) = (scalar_from(&a, &a2), scalar_from(&b, &b2), scalar_from(&c, &c2));
            let p = EdwardsPoint::mul_base(&u.0) + torsion()[torsion_index];
            check_all_mults(&s, &t, &p);
            // Addition, subtraction, negation, doubling, equality.
            let q = EdwardsPoint::mul_base(&s.0);
            let (op, oq) = (to_old(&p), to_old(&q));
            prop_assert_eq!((p + q).encode(), old_encode(&(op + oq)));
            prop_assert_eq!((p - q).encode(), old_encode(&(op - oq)));
            prop_assert_eq!((-p).encode(), old_encode(&(-op)));
            prop_assert_eq!(p.double().encode(), old_encode(&op.double()));
            prop_assert!(p + q - q == p);
            prop_assert_eq!(p.normalize().encode_public(), p.encode());
            prop_assert_eq!(p.encode_public(), p.encode());
            prop_assert!(p.normalize() == p);
            prop_assert!(p != q || s == u);
        }

        #[test]
        fn random_encodings_decode_like_the_old_code(y in any::<[u8; 56]>(), last in 0u8..4) {
            let mut b = [0u8; 57];
            b[..56].copy_from_slice(&y);
            b[56] = [0x00, 0x80, 0x01, 0x81][last as usize];
            prop_assert_eq!(Point::decode(&b).map(|p| p.encode()), old_decode(&b));
        }

        #[test]
        fn random_points_in_and_out_of_the_subgroup_decode_like_the_old_code(
            a in any::<[u8; 64]>(), a2 in any::<[u8; 50]>(), torsion_index in 0usize..4,
        ) {
            let p = EdwardsPoint::mul_base(&scalar_from(&a, &a2).0) + torsion()[torsion_index];
            let b = p.encode();
            prop_assert_eq!(Point::decode(&b).map(|p| p.encode()), old_decode(&b));
            prop_assert_eq!(
                p.is_torsion_free_vartime(),
                bool::from(to_old(&p).is_torsion_free())
            );
            let decoded = EdwardsPoint::decode_unchecked(&b).unwrap();
            prop_assert_eq!(
                decoded.is_torsion_free_decoded_vartime(),
                p.is_torsion_free_vartime()
            );
            prop_assert_eq!(
                decoded.negate().is_torsion_free_decoded_vartime(),
                p.is_torsion_free_vartime()
            );
        }
    }
}
