//! The Prekey Profile (otrv4.md §"Prekey Profile"): the signed, expiring shared prekey `D`
//! used by the non-interactive DAKE; build, sign, parse, serialize and validate it.

use crate::crypto::ed448::KeyPair;
use crate::crypto::eddsa::{self, SIGNATURE_LEN, Signature};
use crate::crypto::keys::{Ed448PublicKey, SharedPrekeyPublic};
use crate::debug::Hex;
use crate::debug::redacted_debug;
use crate::instance_tag::InstanceTag;
use crate::profile::ProfileError;
use crate::wire::codec::{Codec, DecodeError, Reader, Writer};
use alloc::vec::Vec;

/// Bytes of the signed part: owner tag, expiration, typed shared prekey.
const SIGNED_LEN: usize = 4 + 8 + 2 + 57;
/// Bytes in an encoded Prekey Profile.
pub const PREKEY_PROFILE_LEN: usize = SIGNED_LEN + SIGNATURE_LEN;

/// A Prekey Profile (otrv4.md §"Prekey Profile Data Type"): owner instance tag,
/// expiration, the public shared prekey `D` and the EdDSA signature by the long-term key.
#[derive(Clone, PartialEq, Eq)]
pub struct PrekeyProfile {
    /// The owner's instance tag.
    pub owner_tag: InstanceTag,
    /// Expiration, seconds since the Unix epoch.
    pub expiration: i64,
    /// The public shared prekey `D`.
    pub shared_prekey: SharedPrekeyPublic,
    /// The signature over [`PrekeyProfile::signed_bytes`] by the owner's long-term key.
    pub signature: Signature,
}

impl PrekeyProfile {
    /// Assembles and signs a profile with the long-term key (otrv4.md §"Creating a Prekey
    /// Profile", §"Create a Prekey Profile Signature").
    pub fn build_and_sign(
        owner_tag: InstanceTag,
        expiration: i64,
        shared_prekey: &KeyPair,
        long_term: &KeyPair,
    ) -> PrekeyProfile {
        let d = SharedPrekeyPublic(*shared_prekey.public());
        let signed = Self::signed_bytes_of(owner_tag, expiration, &d);
        let signature = eddsa::sign(long_term, &signed);
        PrekeyProfile {
            owner_tag,
            expiration,
            shared_prekey: d,
            signature,
        }
    }

    fn signed_bytes_of(owner_tag: InstanceTag, expiration: i64, d: &SharedPrekeyPublic) -> Vec<u8> {
        let mut w = Vec::with_capacity(SIGNED_LEN);
        w.u32(owner_tag.0).i64(expiration);
        d.write(&mut w);
        w
    }

    /// The message `m` the signature covers: `owner tag || expiration || shared prekey`
    /// (the shared prekey with its type prefix).
    pub fn signed_bytes(&self) -> Vec<u8> {
        Self::signed_bytes_of(self.owner_tag, self.expiration, &self.shared_prekey)
    }

    /// Whether the profile has expired at `now` (`expiration <= now`).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expiration <= now
    }

    /// Validates the profile (otrv4.md §"Validating a Prekey Profile") in the spec's order:
    /// 1. the signature verifies under `long_term` (the `H` of the owner's Client Profile)
    ///    — [`ProfileError::BadSignature`];
    /// 2. the owner tag equals `sender` — [`ProfileError::InstanceTagMismatch`];
    /// 3. not expired at `now` — [`ProfileError::Expired`];
    /// 4. the owner tag equals the sender tag of the Client Profile's message: the same
    ///    `sender`, so step 2 covers it;
    /// 5. `D` is on the curve: guaranteed by strict decoding in [`PrekeyProfile::parse`].
    pub fn validate(
        &self,
        sender: InstanceTag,
        now: i64,
        long_term: &Ed448PublicKey,
    ) -> Result<ValidatedPrekeyProfile, ProfileError> {
        eddsa::verify(long_term.point(), &self.signed_bytes(), &self.signature)
            .map_err(|_| ProfileError::BadSignature)?;
        if self.owner_tag != sender {
            return Err(ProfileError::InstanceTagMismatch {
                profile: self.owner_tag,
                sender,
            });
        }
        if self.is_expired(now) {
            return Err(ProfileError::Expired {
                expiration: self.expiration,
                now,
            });
        }
        Ok(ValidatedPrekeyProfile(self.clone()))
    }
}

impl Codec for PrekeyProfile {
    fn write(&self, w: &mut Vec<u8>) {
        w.u32(self.owner_tag.0).i64(self.expiration);
        self.shared_prekey.write(w);
        w.bytes(&self.signature.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let owner_tag = InstanceTag(r.u32("prekey profile instance tag")?);
        let expiration = r.i64("prekey profile expiration")?;
        let shared_prekey = SharedPrekeyPublic::read(r)?;
        let signature = Signature(r.array::<SIGNATURE_LEN>("prekey profile signature")?);
        Ok(PrekeyProfile {
            owner_tag,
            expiration,
            shared_prekey,
            signature,
        })
    }
}

redacted_debug!(PrekeyProfile {
    owner_tag,
    expiration,
    shared_prekey,
    signature = |s| Hex(&s.signature.0),
});

/// A Prekey Profile that passed [`PrekeyProfile::validate`]. Dereferences to the profile.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ValidatedPrekeyProfile(PrekeyProfile);

impl ValidatedPrekeyProfile {
    /// The validated profile.
    pub fn profile(&self) -> &PrekeyProfile {
        &self.0
    }

    /// Unwraps the profile.
    pub fn into_inner(self) -> PrekeyProfile {
        self.0
    }
}

impl core::ops::Deref for ValidatedPrekeyProfile {
    type Target = PrekeyProfile;
    fn deref(&self) -> &PrekeyProfile {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use proptest::prelude::*;

    const TAG: InstanceTag = InstanceTag(0x0000_0abc);
    const EXP: i64 = 1_800_000_000;

    fn profile() -> PrekeyProfile {
        PrekeyProfile::build_and_sign(TAG, EXP, &keypair(3), &keypair(4))
    }

    #[test]
    fn layout_round_trip_and_validation() {
        let p = profile();
        let b = p.encode();
        assert_eq!(b.len(), PREKEY_PROFILE_LEN);
        assert_eq!(&b[..4], &TAG.0.to_be_bytes());
        assert_eq!(&b[4..12], &EXP.to_be_bytes());
        assert_eq!(&b[12..14], &[0x11, 0x00]);
        assert_eq!(b[14..71], keypair(3).public().encode());
        assert_eq!(p.signed_bytes(), &b[..71]);
        let q = PrekeyProfile::decode(&b).unwrap();
        assert_eq!(q, p);
        assert_eq!(q.encode(), b);
        let lt = Ed448PublicKey(*keypair(4).public());
        assert_eq!(q.validate(TAG, EXP - 1, &lt).unwrap().profile(), &p);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn round_trips(seed in any::<u64>(), tag in any::<u32>(), exp in any::<i64>()) {
            let p = PrekeyProfile::build_and_sign(InstanceTag(tag), exp, &keypair(seed), &keypair(seed ^ 9));
            let b = p.encode();
            let q = PrekeyProfile::decode(&b).unwrap();
            prop_assert_eq!(&q, &p);
            prop_assert_eq!(q.encode(), b);
        }
    }

    #[test]
    fn validation_failures_one_by_one() {
        let p = profile();
        let lt = Ed448PublicKey(*keypair(4).public());
        // 1. signature: wrong long-term key, tampered field, tampered signature
        assert_eq!(
            p.validate(TAG, 0, &Ed448PublicKey(*keypair(3).public())),
            Err(ProfileError::BadSignature)
        );
        let mut q = p.clone();
        q.expiration += 1;
        assert_eq!(q.validate(TAG, 0, &lt), Err(ProfileError::BadSignature));
        let mut q = p.clone();
        q.signature.0[0] ^= 1;
        assert_eq!(q.validate(TAG, 0, &lt), Err(ProfileError::BadSignature));
        // 2. owner tag
        assert_eq!(
            p.validate(InstanceTag(0x100), 0, &lt),
            Err(ProfileError::InstanceTagMismatch {
                profile: TAG,
                sender: InstanceTag(0x100)
            })
        );
        // 3. expiry
        assert_eq!(
            p.validate(TAG, EXP, &lt),
            Err(ProfileError::Expired {
                expiration: EXP,
                now: EXP
            })
        );
        assert!(matches!(
            p.validate(InstanceTag(0x100), EXP, &lt),
            Err(ProfileError::InstanceTagMismatch { .. })
        ));
    }

    #[test]
    fn malformed() {
        let b = profile().encode();
        assert_truncations_fail(&b, PrekeyProfile::decode);
        let mut t = b.clone();
        t.push(0);
        assert_eq!(
            PrekeyProfile::decode(&t).unwrap_err(),
            DecodeError::TrailingBytes(1)
        );
        let mut k = b.clone();
        k[12] = 0x10;
        assert_eq!(
            PrekeyProfile::decode(&k).unwrap_err(),
            DecodeError::BadKeyType {
                what: "ED448-SHARED-PREKEY",
                found: 0x0010
            }
        );
        let mut bad = b.clone();
        bad[14..71].fill(0xff);
        assert_eq!(
            PrekeyProfile::decode(&bad).unwrap_err(),
            DecodeError::BadPoint("ED448-SHARED-PREKEY")
        );
    }
}
