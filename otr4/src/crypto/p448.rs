//! The field GF(p), p = 2^448 − 2^224 − 1, of Ed448-Goldilocks (RFC 8032 §5.2, otrv4.md
//! §"Elliptic Curve Parameters"), on fiat-crypto's formally verified `p448_solinas_64`.
//!
//! Every operation is constant time except the ones named `*_vartime`. Most functions are
//! `const fn` so that the precomputed tables of `G` in [`super::edwards`] are built by the
//! compiler. The bounds fiat-crypto proves are kept by the types: [`Fe`] is always "tight"
//! (what `carry_mul`, `carry` and `from_bytes` return), [`Loose`] is the output of one
//! addition, subtraction or negation of tight elements, and multiplication takes either.

use fiat_crypto::p448_solinas_64 as fiat;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// A field element with fiat-crypto's tight limb bounds (eight 56-bit limbs, slack ≤ 1 bit).
#[derive(Clone, Copy)]
pub(crate) struct Fe(fiat::fiat_p448_tight_field_element);

/// The result of one `add`/`sub`/`neg` of tight elements (loose bounds): input to `mul`,
/// `square` or `carry` only.
#[derive(Clone, Copy)]
pub(crate) struct Loose(fiat::fiat_p448_loose_field_element);

impl Loose {
    /// Reduces to tight bounds.
    #[inline]
    pub(crate) const fn carry(&self) -> Fe {
        let mut out = fiat::fiat_p448_tight_field_element([0; 8]);
        fiat::fiat_p448_carry(&mut out, &self.0);
        Fe(out)
    }

    /// `self · rhs`.
    #[inline]
    pub(crate) const fn mul(&self, rhs: &Loose) -> Fe {
        let mut out = fiat::fiat_p448_tight_field_element([0; 8]);
        fiat::fiat_p448_carry_mul(&mut out, &self.0, &rhs.0);
        Fe(out)
    }

    /// `self²`.
    #[inline]
    pub(crate) const fn square(&self) -> Fe {
        let mut out = fiat::fiat_p448_tight_field_element([0; 8]);
        fiat::fiat_p448_carry_square(&mut out, &self.0);
        Fe(out)
    }
}

impl Fe {
    /// 0.
    pub(crate) const ZERO: Fe = Fe(fiat::fiat_p448_tight_field_element([0; 8]));
    /// 1.
    pub(crate) const ONE: Fe = Fe(fiat::fiat_p448_tight_field_element([
        1, 0, 0, 0, 0, 0, 0, 0,
    ]));

    /// A small non-negative integer.
    pub(crate) const fn from_u64(v: u64) -> Fe {
        // Two 56-bit limbs; both within the tight bounds.
        Fe(fiat::fiat_p448_tight_field_element([
            v & 0x00ff_ffff_ffff_ffff,
            v >> 56,
            0,
            0,
            0,
            0,
            0,
            0,
        ]))
    }

    /// Reads 56 little-endian bytes; the value is taken mod p (so not necessarily
    /// canonical: callers that need a canonical encoding compare [`Fe::to_bytes`]).
    #[inline]
    pub(crate) const fn from_bytes(bytes: &[u8; 56]) -> Fe {
        let mut out = fiat::fiat_p448_tight_field_element([0; 8]);
        fiat::fiat_p448_from_bytes(&mut out, bytes);
        Fe(out)
    }

    /// The canonical (fully reduced) 56-byte little-endian encoding.
    #[inline]
    pub(crate) const fn to_bytes(self) -> [u8; 56] {
        let mut out = [0u8; 56];
        fiat::fiat_p448_to_bytes(&mut out, &self.0);
        out
    }

    /// The same value with loose bounds (a copy).
    #[inline]
    pub(crate) const fn relax(&self) -> Loose {
        let mut out = fiat::fiat_p448_loose_field_element([0; 8]);
        fiat::fiat_p448_relax(&mut out, &self.0);
        Loose(out)
    }

    /// `self + rhs`, loose.
    #[inline]
    pub(crate) const fn add_loose(&self, rhs: &Fe) -> Loose {
        let mut out = fiat::fiat_p448_loose_field_element([0; 8]);
        fiat::fiat_p448_add(&mut out, &self.0, &rhs.0);
        Loose(out)
    }

    /// `self − rhs`, loose.
    #[inline]
    pub(crate) const fn sub_loose(&self, rhs: &Fe) -> Loose {
        let mut out = fiat::fiat_p448_loose_field_element([0; 8]);
        fiat::fiat_p448_sub(&mut out, &self.0, &rhs.0);
        Loose(out)
    }

    /// `self + rhs`.
    #[inline]
    pub(crate) const fn add(&self, rhs: &Fe) -> Fe {
        self.add_loose(rhs).carry()
    }

    /// `self − rhs`.
    #[inline]
    pub(crate) const fn sub(&self, rhs: &Fe) -> Fe {
        self.sub_loose(rhs).carry()
    }

    /// `−self`.
    #[inline]
    pub(crate) const fn neg(&self) -> Fe {
        let mut out = fiat::fiat_p448_loose_field_element([0; 8]);
        fiat::fiat_p448_opp(&mut out, &self.0);
        Loose(out).carry()
    }

    /// `self · rhs`.
    #[inline]
    pub(crate) const fn mul(&self, rhs: &Fe) -> Fe {
        self.relax().mul(&rhs.relax())
    }

    /// `self²`.
    #[inline]
    pub(crate) const fn square(&self) -> Fe {
        self.relax().square()
    }

    /// `self^(2^n)`.
    pub(crate) const fn square_n(&self, n: u32) -> Fe {
        let mut r = *self;
        let mut i = 0;
        while i < n {
            r = r.square();
            i += 1;
        }
        r
    }

    /// `self^((p−3)/4)`, where (p−3)/4 = (2^223 − 1)·2^223 + (2^222 − 1): the core of both
    /// the inversion and the square root (RFC 8032 §5.2.3).
    const fn pow_p_minus_3_over_4(&self) -> Fe {
        let x1 = *self;
        let x2 = x1.square().mul(&x1); // 2^2 - 1
        let x3 = x2.square().mul(&x1); // 2^3 - 1
        let x6 = x3.square_n(3).mul(&x3);
        let x12 = x6.square_n(6).mul(&x6);
        let x24 = x12.square_n(12).mul(&x12);
        let x30 = x24.square_n(6).mul(&x6);
        let x48 = x24.square_n(24).mul(&x24);
        let x96 = x48.square_n(48).mul(&x48);
        let x192 = x96.square_n(96).mul(&x96);
        let x222 = x192.square_n(30).mul(&x30);
        let x223 = x222.square().mul(&x1);
        x223.square_n(223).mul(&x222)
    }

    /// `self^(p−2)` = `1/self` (0 maps to 0), constant time: p − 2 = 4·(p−3)/4 + 1.
    pub(crate) const fn invert(&self) -> Fe {
        self.pow_p_minus_3_over_4().square_n(2).mul(self)
    }

    /// Whether the canonical value is odd (the "sign" of RFC 8032 §5.2.2).
    pub(crate) fn is_negative(&self) -> Choice {
        let bytes = self.to_bytes();
        Choice::from(bytes.first().copied().unwrap_or(0) & 1)
    }

    /// Whether the element is 0.
    pub(crate) fn is_zero(&self) -> Choice {
        self.ct_eq(&Fe::ZERO)
    }

    /// `sqrt(u/v)` as in RFC 8032 §5.2.3 step 2 (p ≡ 3 mod 4): `x = u³v·(u⁵v³)^((p−3)/4)`,
    /// with whether `v·x² = u` (i.e. whether u/v is a square). Constant time.
    pub(crate) fn sqrt_ratio(u: &Fe, v: &Fe) -> (Choice, Fe) {
        let u2 = u.square();
        let u3 = u2.mul(u);
        let u5 = u3.mul(&u2);
        let v2 = v.square();
        let v3 = v2.mul(v);
        let x = u3.mul(v).mul(&u5.mul(&v3).pow_p_minus_3_over_4());
        let ok = v.mul(&x.square()).ct_eq(u);
        (ok, x)
    }
}

impl ConstantTimeEq for Fe {
    fn ct_eq(&self, other: &Fe) -> Choice {
        self.to_bytes().ct_eq(&other.to_bytes())
    }
}

impl ConditionallySelectable for Fe {
    /// Limb by limb with `subtle`'s masked select, inlined (fiat-crypto's `selectznz` is
    /// the same masking, but a call into another crate for every element: the table scans
    /// of the scalar multiplications do this for every entry).
    #[inline]
    fn conditional_select(a: &Fe, b: &Fe, choice: Choice) -> Fe {
        let mut out = [0u64; 8];
        for ((o, x), y) in out.iter_mut().zip(a.0.0.iter()).zip(b.0.0.iter()) {
            *o = u64::conditional_select(x, y, choice);
        }
        Fe(fiat::fiat_p448_tight_field_element(out))
    }
}

impl Default for Fe {
    fn default() -> Fe {
        Fe::ZERO
    }
}

impl zeroize::Zeroize for Fe {
    fn zeroize(&mut self) {
        self.0.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use crypto_bigint::modular::{FixedMontyForm as MontyForm, MontyParams};
    use crypto_bigint::{Odd, U448};
    use proptest::prelude::*;

    fn p() -> U448 {
        U448::MAX.wrapping_sub(&U448::ONE.shl_vartime(224))
    }

    fn to_u448(f: &Fe) -> U448 {
        U448::from_le_slice(&f.to_bytes())
    }

    fn from_u448(v: &U448) -> Fe {
        let mut b = [0u8; 56];
        b.copy_from_slice(&v.to_le_bytes());
        Fe::from_bytes(&b)
    }

    /// Edge values: 0, 1, 2, p−1, p−2, 2^224, 2^224 ± 1, 2^448 − 1 (≥ p, non-canonical).
    fn edges() -> Vec<[u8; 56]> {
        let pm = p();
        let vals = [
            U448::ZERO,
            U448::ONE,
            U448::from_u8(2),
            pm.wrapping_sub(&U448::ONE),
            pm.wrapping_sub(&U448::from_u8(2)),
            U448::ONE.shl_vartime(224),
            U448::ONE.shl_vartime(224).wrapping_add(&U448::ONE),
            U448::ONE.shl_vartime(224).wrapping_sub(&U448::ONE),
            pm,
            pm.wrapping_add(&U448::ONE),
            U448::MAX,
        ];
        vals.iter()
            .map(|v| {
                let mut b = [0u8; 56];
                b.copy_from_slice(&v.to_le_bytes());
                b
            })
            .collect()
    }

    fn check_ops(a: &[u8; 56], b: &[u8; 56]) {
        let pr = MontyParams::new_vartime(Odd::new(p()).unwrap());
        let (fa, fb) = (Fe::from_bytes(a), Fe::from_bytes(b));
        let ua = U448::from_le_slice(a);
        let ub = U448::from_le_slice(b);
        let (ma, mb) = (MontyForm::new(&ua, &pr), MontyForm::new(&ub, &pr));
        assert_eq!(to_u448(&fa), ma.retrieve(), "from_bytes reduces mod p");
        assert_eq!(to_u448(&fa.mul(&fb)), (ma * mb).retrieve());
        assert_eq!(to_u448(&fa.square()), (ma * ma).retrieve());
        assert_eq!(to_u448(&fa.add(&fb)), (ma + mb).retrieve());
        assert_eq!(to_u448(&fa.sub(&fb)), (ma - mb).retrieve());
        assert_eq!(to_u448(&fa.neg()), (-ma).retrieve());
        let inv = ma.invert().into_option().map(|m| m.retrieve());
        assert_eq!(to_u448(&fa.invert()), inv.unwrap_or(U448::ZERO));
        // Loose inputs to mul/square (sums and differences) as the curve code uses them.
        let s = fa.add_loose(&fb);
        let d = fa.sub_loose(&fb);
        assert_eq!(to_u448(&s.mul(&d)), ((ma + mb) * (ma - mb)).retrieve());
        assert_eq!(to_u448(&s.square()), ((ma + mb) * (ma + mb)).retrieve());
    }

    #[test]
    fn edge_values_against_crypto_bigint() {
        let e = edges();
        for a in &e {
            for b in &e {
                check_ops(a, b);
            }
        }
        assert_eq!(to_u448(&Fe::from_u64(39081)), U448::from_u32(39081));
        assert_eq!(Fe::from_bytes(&[0xff; 56]).to_bytes(), {
            // 2^448 − 1 ≡ 2^224 (mod p)
            let mut b = [0u8; 56];
            b[28] = 1;
            b
        });
    }

    #[test]
    fn sqrt_ratio_finds_roots_and_rejects_non_squares() {
        let four = Fe::from_u64(4);
        let (ok, x) = Fe::sqrt_ratio(&four, &Fe::ONE);
        assert!(bool::from(ok));
        assert!(bool::from(x.square().ct_eq(&four)));
        // −1 is not a square mod p (p ≡ 3 mod 4).
        let (ok, _) = Fe::sqrt_ratio(&Fe::ONE.neg(), &Fe::ONE);
        assert!(!bool::from(ok));
        let (ok, x) = Fe::sqrt_ratio(&Fe::ZERO, &Fe::ONE);
        assert!(bool::from(ok) && bool::from(x.is_zero()));
    }

    proptest! {
        #[test]
        fn random_values_against_crypto_bigint(a in any::<[u8; 32]>(), a2 in any::<[u8; 24]>(),
                                               b in any::<[u8; 32]>(), b2 in any::<[u8; 24]>()) {
            let mut x = [0u8; 56];
            x[..32].copy_from_slice(&a);
            x[32..].copy_from_slice(&a2);
            let mut y = [0u8; 56];
            y[..32].copy_from_slice(&b);
            y[32..].copy_from_slice(&b2);
            check_ops(&x, &y);
            let fx = Fe::from_bytes(&x);
            let (ok, r) = Fe::sqrt_ratio(&fx, &Fe::from_bytes(&y));
            let fy = Fe::from_bytes(&y);
            if bool::from(ok) {
                prop_assert!(bool::from(fy.mul(&r.square()).ct_eq(&fx)));
            } else {
                // Then u/v is a non-square: −u/v is a square (p ≡ 3 mod 4) unless v = 0.
                prop_assert!(!bool::from(fy.is_zero()));
                let (ok2, _) = Fe::sqrt_ratio(&fx.neg(), &fy);
                prop_assert!(bool::from(ok2));
            }
            prop_assert_eq!(from_u448(&to_u448(&fx)).to_bytes(), fx.to_bytes());
        }
    }
}
