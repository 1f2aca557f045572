//! The Client Profile (otrv4.md §"Client Profile"): its wire form, signing, strict parsing
//! that keeps the exact signed bytes, and validation in the order the spec lists.

use crate::crypto::ed448::KeyPair;
use crate::crypto::eddsa::{self, SIGNATURE_LEN, Signature};
use crate::crypto::keys::{Ed448PublicKey, ForgingPublicKey};
use crate::debug::Hex;
use crate::debug::redacted_debug;
use crate::instance_tag::InstanceTag;
use crate::profile::ProfileError;
use crate::wire::codec::{Codec, DecodeError, Reader, Writer};
use alloc::vec::Vec;

/// Field type of the owner instance tag (otrv4.md §"Client Profile Data Type").
pub const FIELD_INSTANCE_TAG: u16 = 0x0001;
/// Field type of the Ed448 long-term public key.
pub const FIELD_PUBLIC_KEY: u16 = 0x0002;
/// Field type of the Ed448 forging key.
pub const FIELD_FORGING_KEY: u16 = 0x0003;
/// Field type of the Versions string.
pub const FIELD_VERSIONS: u16 = 0x0004;
/// Field type of the expiration.
pub const FIELD_EXPIRATION: u16 = 0x0005;
/// Field type of the OTRv3 DSA public key.
pub const FIELD_DSA_KEY: u16 = 0x0006;
/// Field type of the transitional (DSA) signature.
pub const FIELD_TRANSITIONAL_SIGNATURE: u16 = 0x0007;

/// Bytes in a transitional signature: `r || s`, each the 20-byte length of DSA `q`
/// (otrv4.md §"Client Profile Data Type", CLIENT-SIG).
pub const TRANSITIONAL_SIGNATURE_LEN: usize = 40;
/// Largest accepted MPI inside an OTRv3 DSA key (3072-bit `p`).
pub const DSA_MPI_MAX_LEN: usize = 384;
/// Key type of an OTRv3 DSA PUBKEY (a big-endian SHORT).
pub const DSA_PUBKEY_TYPE: u16 = 0x0000;

/// At most one field of each of the seven known types can be present.
const MAX_FIELDS: u32 = 7;
/// Fewest bytes a Client Profile can occupy: count, the five required fields with an
/// empty versions string, and the signature.
pub const MIN_CLIENT_PROFILE_LEN: usize =
    4 + (2 + 4) + (2 + 2 + 57) + (2 + 2 + 57) + (2 + 4) + (2 + 8) + SIGNATURE_LEN;

/// An OTRv3 DSA public key (PUBKEY: type SHORT 0x0000 and the MPIs `p, q, g, y`), kept as
/// its exact encoding. OTRv4 only carries it; nothing here verifies DSA signatures.
#[derive(Clone, PartialEq, Eq)]
pub struct DsaPublicKey {
    encoded: Vec<u8>,
}

impl DsaPublicKey {
    /// Builds the PUBKEY encoding from the big-endian magnitudes of `p, q, g, y`.
    /// Fails if one of them is longer than [`DSA_MPI_MAX_LEN`] bytes after removing
    /// leading zeros.
    pub fn from_mpis(p: &[u8], q: &[u8], g: &[u8], y: &[u8]) -> Result<DsaPublicKey, DecodeError> {
        let mut w = Vec::new();
        w.u16(DSA_PUBKEY_TYPE);
        for v in [p, q, g, y] {
            let start = v.iter().position(|&b| b != 0).unwrap_or(v.len());
            if v.len() - start > DSA_MPI_MAX_LEN {
                return Err(DecodeError::LengthTooLarge {
                    what: "DSA key MPI",
                    len: (v.len() - start) as u64,
                    limit: DSA_MPI_MAX_LEN as u64,
                });
            }
            w.mpi(v);
        }
        Ok(DsaPublicKey { encoded: w })
    }

    /// The exact PUBKEY encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.encoded
    }
}

/// PUBKEY: type 0x0000 then four minimally encoded, bounded MPIs.
impl Codec for DsaPublicKey {
    fn write(&self, w: &mut Vec<u8>) {
        w.bytes(&self.encoded);
    }

    fn read(r: &mut Reader<'_>) -> Result<DsaPublicKey, DecodeError> {
        let start = r.rest();
        let ty = r.u16("DSA key type")?;
        if ty != DSA_PUBKEY_TYPE {
            return Err(DecodeError::BadKeyType {
                what: "DSA key",
                found: ty,
            });
        }
        for _ in 0..4 {
            r.mpi_max("DSA key MPI", DSA_MPI_MAX_LEN)?;
        }
        let used = start.len() - r.remaining();
        let encoded = start
            .get(..used)
            .ok_or(DecodeError::Truncated { what: "DSA key" })?
            .to_vec();
        Ok(DsaPublicKey { encoded })
    }
}

redacted_debug!(DsaPublicKey(|s| Hex(&s.encoded)));

/// A Client Profile (otrv4.md §"Client Profile Data Type"), either built and signed here
/// or parsed from the wire. It keeps the exact bytes its signature covers, so a received
/// profile is verified and re-sent byte for byte as it arrived.
///
/// The signature covers everything before it: the Number of Fields INT and every field
/// with its type prefix (see docs/spec-notes.md). Parsing checks syntax and strictly
/// decodes both keys; [`ClientProfile::validate`] does the rest.
#[derive(Clone)]
pub struct ClientProfile {
    owner_tag: InstanceTag,
    public_key: Ed448PublicKey,
    forging_key: ForgingPublicKey,
    versions: Vec<u8>,
    expiration: i64,
    dsa_key: Option<DsaPublicKey>,
    transitional_signature: Option<[u8; TRANSITIONAL_SIGNATURE_LEN]>,
    signature: Signature,
    signed: Vec<u8>,
}

/// Fields 0x0001..=0x0006 in canonical order with their type prefixes (no count).
fn fields_before_transitional(
    owner_tag: InstanceTag,
    public_key: &Ed448PublicKey,
    forging_key: &ForgingPublicKey,
    versions: &[u8],
    expiration: i64,
    dsa_key: Option<&DsaPublicKey>,
) -> Vec<u8> {
    let mut w = Vec::new();
    w.u16(FIELD_INSTANCE_TAG).u32(owner_tag.0);
    w.u16(FIELD_PUBLIC_KEY);
    public_key.write(&mut w);
    w.u16(FIELD_FORGING_KEY);
    forging_key.write(&mut w);
    w.u16(FIELD_VERSIONS).data(versions);
    w.u16(FIELD_EXPIRATION).i64(expiration);
    if let Some(dsa) = dsa_key {
        w.u16(FIELD_DSA_KEY).bytes(dsa.as_bytes());
    }
    w
}

/// Stores `v` in `slot`, rejecting a second occurrence of the field.
fn set_once<T>(slot: &mut Option<T>, v: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::BadProfile("duplicate field"));
    }
    *slot = Some(v);
    Ok(())
}

impl ClientProfile {
    /// Assembles and signs a profile without OTRv3 fields (otrv4.md §"Creating a Client
    /// Profile", §"Create a Client Profile Signature"). `versions` is the raw version
    /// string, e.g. `b"4"` or `b"34"`; `expiration` is in seconds since the Unix epoch.
    pub fn build_and_sign(
        owner_tag: InstanceTag,
        long_term: &KeyPair,
        forging_key: &ForgingPublicKey,
        versions: &[u8],
        expiration: i64,
    ) -> ClientProfile {
        Self::assemble(
            owner_tag,
            long_term,
            forging_key,
            versions,
            expiration,
            None,
            None,
        )
    }

    /// Like [`ClientProfile::build_and_sign`] but includes the OTRv3 DSA key and a
    /// transitional signature: `dsa_sign` receives `m` (fields 0x0001..=0x0006, see
    /// [`ClientProfile::transitional_signed_bytes`]) and returns the 40-byte `r || s`.
    pub fn build_and_sign_transitional(
        owner_tag: InstanceTag,
        long_term: &KeyPair,
        forging_key: &ForgingPublicKey,
        versions: &[u8],
        expiration: i64,
        dsa_key: DsaPublicKey,
        dsa_sign: impl FnOnce(&[u8]) -> [u8; TRANSITIONAL_SIGNATURE_LEN],
    ) -> ClientProfile {
        let m = fields_before_transitional(
            owner_tag,
            &Ed448PublicKey(*long_term.public()),
            forging_key,
            versions,
            expiration,
            Some(&dsa_key),
        );
        let tsig = dsa_sign(&m);
        Self::assemble(
            owner_tag,
            long_term,
            forging_key,
            versions,
            expiration,
            Some(dsa_key),
            Some(tsig),
        )
    }

    fn assemble(
        owner_tag: InstanceTag,
        long_term: &KeyPair,
        forging_key: &ForgingPublicKey,
        versions: &[u8],
        expiration: i64,
        dsa_key: Option<DsaPublicKey>,
        transitional_signature: Option<[u8; TRANSITIONAL_SIGNATURE_LEN]>,
    ) -> ClientProfile {
        let public_key = Ed448PublicKey(*long_term.public());
        let fields = fields_before_transitional(
            owner_tag,
            &public_key,
            forging_key,
            versions,
            expiration,
            dsa_key.as_ref(),
        );
        let count = 5 + u32::from(dsa_key.is_some()) + u32::from(transitional_signature.is_some());
        let mut signed = Vec::with_capacity(4 + fields.len() + 2 + TRANSITIONAL_SIGNATURE_LEN);
        signed.u32(count).bytes(&fields);
        if let Some(t) = &transitional_signature {
            signed.u16(FIELD_TRANSITIONAL_SIGNATURE).bytes(t);
        }
        let signature = eddsa::sign(long_term, &signed);
        ClientProfile {
            owner_tag,
            public_key,
            forging_key: *forging_key,
            versions: versions.to_vec(),
            expiration,
            dsa_key,
            transitional_signature,
            signature,
            signed,
        }
    }

    /// The exact bytes the profile signature covers: the Number of Fields and all fields.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed
    }

    /// The message `m` of a transitional signature: fields 0x0001..=0x0006 in type order
    /// with their type prefixes, without the Number of Fields (otrv4.md §"Create a Client
    /// Profile Signature").
    pub fn transitional_signed_bytes(&self) -> Vec<u8> {
        fields_before_transitional(
            self.owner_tag,
            &self.public_key,
            &self.forging_key,
            &self.versions,
            self.expiration,
            self.dsa_key.as_ref(),
        )
    }

    /// The owner instance tag.
    pub fn owner_tag(&self) -> InstanceTag {
        self.owner_tag
    }

    /// The Ed448 long-term public key `H`.
    pub fn public_key(&self) -> &Ed448PublicKey {
        &self.public_key
    }

    /// The Ed448 forging key `F`.
    pub fn forging_key(&self) -> &ForgingPublicKey {
        &self.forging_key
    }

    /// The fingerprint of the profile's long-term and forging keys (otrv4.md
    /// §"Fingerprints"): what a user compares and what a pin holds.
    pub fn fingerprint(&self) -> crate::crypto::fingerprint::Fingerprint {
        crate::crypto::fingerprint::Fingerprint::otrv4(self.public_key(), self.forging_key())
    }

    /// The raw version string.
    pub fn versions(&self) -> &[u8] {
        &self.versions
    }

    /// Whether the version string contains the version character `v` (e.g. `b'4'`).
    pub fn supports(&self, v: u8) -> bool {
        self.versions.contains(&v)
    }

    /// The expiration, in seconds since the Unix epoch.
    pub fn expiration(&self) -> i64 {
        self.expiration
    }

    /// The OTRv3 DSA key, if present.
    pub fn dsa_key(&self) -> Option<&DsaPublicKey> {
        self.dsa_key.as_ref()
    }

    /// The transitional signature, if present.
    pub fn transitional_signature(&self) -> Option<&[u8; TRANSITIONAL_SIGNATURE_LEN]> {
        self.transitional_signature.as_ref()
    }

    /// The EdDSA profile signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Whether the profile has expired at `now`: a profile is valid strictly before its
    /// expiration (`expiration <= now` means expired; see docs/spec-notes.md).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expiration <= now
    }

    /// Validates the profile (otrv4.md §"Validating a Client Profile") in the spec's order:
    /// 1. the signature is not empty (all zero) — [`ProfileError::EmptySignature`];
    /// 2. the signature verifies over [`ClientProfile::signed_bytes`] under `H` —
    ///    [`ProfileError::BadSignature`];
    /// 3. the owner tag equals `sender` — [`ProfileError::InstanceTagMismatch`];
    /// 4. not expired at `now` — [`ProfileError::Expired`];
    /// 5. `Versions` contains "4" — [`ProfileError::MissingVersion4`]; then, from
    ///    §"Establishing Versions", it contains neither "1" nor "2" —
    ///    [`ProfileError::ObsoleteVersion`];
    /// 6. and 7. `H` and `F` are on the curve: already guaranteed, since a point only
    ///    exists after strict decoding (checked in [`ClientProfile::parse`]);
    /// 8. the optional transitional signature check is not performed (no DSA support).
    ///
    /// To accept a profile during its extra local validity period, pass
    /// `now - extra_validity` as `now`.
    pub fn validate(
        &self,
        sender: InstanceTag,
        now: i64,
    ) -> Result<ValidatedClientProfile, ProfileError> {
        if self.signature.0.iter().all(|&b| b == 0) {
            return Err(ProfileError::EmptySignature);
        }
        eddsa::verify(self.public_key.point(), &self.signed, &self.signature)
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
        if !self.supports(b'4') {
            return Err(ProfileError::MissingVersion4);
        }
        if let Some(&v) = self.versions.iter().find(|&&v| v == b'1' || v == b'2') {
            return Err(ProfileError::ObsoleteVersion(char::from(v)));
        }
        Ok(ValidatedClientProfile(self.clone()))
    }
}

impl Codec for ClientProfile {
    fn write(&self, w: &mut Vec<u8>) {
        w.bytes(&self.signed).bytes(&self.signature.0);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let start = r.rest();
        let count = r.u32("client profile field count")?;
        if count > MAX_FIELDS {
            return Err(DecodeError::BadProfile("more fields than field types"));
        }
        let mut owner_tag = None;
        let mut public_key = None;
        let mut forging_key = None;
        let mut versions = None;
        let mut expiration = None;
        let mut dsa_key = None;
        let mut transitional_signature = None;
        for _ in 0..count {
            match r.u16("client profile field type")? {
                FIELD_INSTANCE_TAG => set_once(
                    &mut owner_tag,
                    InstanceTag(r.u32("client profile instance tag")?),
                )?,
                FIELD_PUBLIC_KEY => set_once(&mut public_key, Ed448PublicKey::read(r)?)?,
                FIELD_FORGING_KEY => set_once(&mut forging_key, ForgingPublicKey::read(r)?)?,
                FIELD_VERSIONS => {
                    set_once(&mut versions, r.data("client profile versions")?.to_vec())?
                }
                FIELD_EXPIRATION => set_once(&mut expiration, r.i64("client profile expiration")?)?,
                FIELD_DSA_KEY => set_once(&mut dsa_key, DsaPublicKey::read(r)?)?,
                FIELD_TRANSITIONAL_SIGNATURE => set_once(
                    &mut transitional_signature,
                    r.array::<TRANSITIONAL_SIGNATURE_LEN>("transitional signature")?,
                )?,
                _ => return Err(DecodeError::BadProfile("unknown field type")),
            }
        }
        let signed_len = start.len() - r.remaining();
        let signed = start
            .get(..signed_len)
            .ok_or(DecodeError::Truncated {
                what: "client profile",
            })?
            .to_vec();
        let signature = Signature(r.array::<SIGNATURE_LEN>("client profile signature")?);
        let owner_tag = owner_tag.ok_or(DecodeError::BadProfile("missing owner instance tag"))?;
        let public_key = public_key.ok_or(DecodeError::BadProfile("missing Ed448 public key"))?;
        let forging_key = forging_key.ok_or(DecodeError::BadProfile("missing forging key"))?;
        let versions = versions.ok_or(DecodeError::BadProfile("missing versions"))?;
        let expiration = expiration.ok_or(DecodeError::BadProfile("missing expiration"))?;
        if dsa_key.is_some() && transitional_signature.is_none() {
            return Err(DecodeError::BadProfile(
                "DSA key without transitional signature",
            ));
        }
        Ok(ClientProfile {
            owner_tag,
            public_key,
            forging_key,
            versions,
            expiration,
            dsa_key,
            transitional_signature,
            signature,
            signed,
        })
    }
}

impl PartialEq for ClientProfile {
    /// Two profiles are equal when their encodings are: every field is a function of the
    /// signed bytes and the signature.
    fn eq(&self, other: &Self) -> bool {
        self.signed == other.signed && self.signature == other.signature
    }
}

impl Eq for ClientProfile {}

redacted_debug!(ClientProfile {
    owner_tag,
    public_key,
    forging_key,
    versions: hex,
    expiration,
    dsa_key,
    transitional_signature = |s| s.transitional_signature.as_ref().map(|t| Hex(t)),
    signature = |s| Hex(&s.signature.0),
});

/// A Client Profile that passed [`ClientProfile::validate`] for a given sender and time.
/// Dereferences to the profile.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ValidatedClientProfile(ClientProfile);

impl ValidatedClientProfile {
    /// The validated profile.
    pub fn profile(&self) -> &ClientProfile {
        &self.0
    }

    /// Unwraps the profile.
    pub fn into_inner(self) -> ClientProfile {
        self.0
    }
}

impl core::ops::Deref for ValidatedClientProfile {
    type Target = ClientProfile;
    fn deref(&self) -> &ClientProfile {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use proptest::prelude::*;

    const TAG: InstanceTag = InstanceTag(0x0102_0304);
    const EXP: i64 = 1_700_000_000;

    fn profile(versions: &[u8]) -> ClientProfile {
        ClientProfile::build_and_sign(TAG, &keypair(7), &ForgingPublicKey(point(8)), versions, EXP)
    }

    /// Raw profile bytes: count, the given fields, then a signature by `keypair(7)` over them.
    fn signed_raw(count: u32, fields: &[Vec<u8>]) -> Vec<u8> {
        let mut m = count.to_be_bytes().to_vec();
        for f in fields {
            m.extend_from_slice(f);
        }
        let sig = eddsa::sign(&keypair(7), &m);
        m.extend_from_slice(&sig.0);
        m
    }

    fn f_tag(t: u32) -> Vec<u8> {
        let mut w = Vec::new();
        w.u16(FIELD_INSTANCE_TAG).u32(t);
        w
    }
    fn f_pk() -> Vec<u8> {
        let mut w = Vec::new();
        w.u16(FIELD_PUBLIC_KEY);
        Ed448PublicKey(*keypair(7).public()).write(&mut w);
        w
    }
    fn f_fk() -> Vec<u8> {
        let mut w = Vec::new();
        w.u16(FIELD_FORGING_KEY);
        ForgingPublicKey(point(8)).write(&mut w);
        w
    }
    fn f_ver(v: &[u8]) -> Vec<u8> {
        let mut w = Vec::new();
        w.u16(FIELD_VERSIONS).data(v);
        w
    }
    fn f_exp(e: i64) -> Vec<u8> {
        let mut w = Vec::new();
        w.u16(FIELD_EXPIRATION).i64(e);
        w
    }

    #[test]
    fn layout_and_round_trip() {
        let p = profile(b"4");
        let b = p.encode();
        // count, then the fields in type order, then the signature.
        let mut expected = Vec::new();
        expected.extend_from_slice(&5u32.to_be_bytes());
        for f in [f_tag(TAG.0), f_pk(), f_fk(), f_ver(b"4"), f_exp(EXP)] {
            expected.extend_from_slice(&f);
        }
        assert_eq!(&b[..b.len() - SIGNATURE_LEN], &expected[..]);
        assert_eq!(p.signed_bytes(), &expected[..]);
        // ED448-PUBKEY type is little-endian 0x0010.
        assert_eq!(&b[10..14], &[0x00, 0x02, 0x10, 0x00]);
        assert_eq!(b.len(), MIN_CLIENT_PROFILE_LEN + 1);
        let q = ClientProfile::decode(&b).unwrap();
        assert_eq!(q, p);
        assert_eq!(q.encode(), b);
        assert_eq!(q.owner_tag(), TAG);
        assert_eq!(q.public_key().point(), keypair(7).public());
        assert_eq!(q.forging_key(), &ForgingPublicKey(point(8)));
        assert_eq!(q.versions(), b"4");
        assert!(q.supports(b'4') && !q.supports(b'3'));
        assert_eq!(q.expiration(), EXP);
        assert!(q.dsa_key().is_none() && q.transitional_signature().is_none());
        let v = q.validate(TAG, EXP - 1).unwrap();
        assert_eq!(v.profile(), &p);
        assert_eq!(v.into_inner(), p);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn round_trips(seed in any::<u64>(), tag in any::<u32>(), versions in proptest::collection::vec(any::<u8>(), 0..8), exp in any::<i64>()) {
            let p = ClientProfile::build_and_sign(InstanceTag(tag), &keypair(seed), &ForgingPublicKey(point(seed ^ 5)), &versions, exp);
            let b = p.encode();
            let q = ClientProfile::decode(&b).unwrap();
            prop_assert_eq!(&q, &p);
            prop_assert_eq!(q.encode(), b);
            prop_assert_eq!(q.versions(), &versions[..]);
            prop_assert_eq!(q.expiration(), exp);
        }
    }

    #[test]
    fn validation_failures_one_by_one() {
        let p = profile(b"4");
        // 1. empty signature
        let mut b = p.encode();
        let n = b.len();
        b[n - SIGNATURE_LEN..].fill(0);
        let q = ClientProfile::decode(&b).unwrap();
        assert_eq!(q.validate(TAG, 0), Err(ProfileError::EmptySignature));
        // 2. bad signature: one flipped signature bit, or a changed signed byte.
        let mut b = p.encode();
        b[n - 1] ^= 0x01;
        assert_eq!(
            ClientProfile::decode(&b).unwrap().validate(TAG, 0),
            Err(ProfileError::BadSignature)
        );
        let mut b = p.encode();
        b[4 + 2 + 3] ^= 0x01; // last byte of the owner instance tag
        let q = ClientProfile::decode(&b).unwrap();
        assert_eq!(
            q.validate(q.owner_tag(), 0),
            Err(ProfileError::BadSignature)
        );
        // 3. wrong sender tag (checked after the signature)
        assert_eq!(
            p.validate(InstanceTag(0x999), 0),
            Err(ProfileError::InstanceTagMismatch {
                profile: TAG,
                sender: InstanceTag(0x999)
            })
        );
        // 4. expired: valid strictly before the expiration
        assert!(p.validate(TAG, EXP - 1).is_ok());
        assert_eq!(
            p.validate(TAG, EXP),
            Err(ProfileError::Expired {
                expiration: EXP,
                now: EXP
            })
        );
        assert_eq!(
            p.validate(TAG, EXP + 10),
            Err(ProfileError::Expired {
                expiration: EXP,
                now: EXP + 10
            })
        );
        // wrong tag is reported before expiry
        assert!(matches!(
            p.validate(InstanceTag(0x999), EXP + 1),
            Err(ProfileError::InstanceTagMismatch { .. })
        ));
        // 5. no '4' in versions; '1'/'2' are invalid
        assert_eq!(
            profile(b"3").validate(TAG, 0),
            Err(ProfileError::MissingVersion4)
        );
        assert_eq!(
            profile(b"").validate(TAG, 0),
            Err(ProfileError::MissingVersion4)
        );
        assert_eq!(
            profile(b"42").validate(TAG, 0),
            Err(ProfileError::ObsoleteVersion('2'))
        );
        assert_eq!(
            profile(b"14").validate(TAG, 0),
            Err(ProfileError::ObsoleteVersion('1'))
        );
        assert!(profile(b"43").validate(TAG, 0).is_ok());
        assert!(profile(b"x4").validate(TAG, 0).is_ok());
        // expiry is checked before versions
        assert!(matches!(
            profile(b"3").validate(TAG, EXP),
            Err(ProfileError::Expired { .. })
        ));
    }

    #[test]
    fn signature_is_verified_over_received_bytes_in_any_field_order() {
        let raw = signed_raw(5, &[f_exp(EXP), f_ver(b"4"), f_fk(), f_pk(), f_tag(TAG.0)]);
        let p = ClientProfile::decode(&raw).unwrap();
        assert_eq!(p.encode(), raw);
        assert!(p.validate(TAG, 0).is_ok());
        assert_ne!(p, profile(b"4"));
    }

    #[test]
    fn parse_failures_one_by_one() {
        let all = || alloc::vec![f_tag(TAG.0), f_pk(), f_fk(), f_ver(b"4"), f_exp(EXP)];
        assert!(ClientProfile::decode(&signed_raw(5, &all())).is_ok());
        // duplicate field
        let mut dup = all();
        dup.push(f_tag(TAG.0));
        assert_eq!(
            ClientProfile::decode(&signed_raw(6, &dup)).unwrap_err(),
            DecodeError::BadProfile("duplicate field")
        );
        let mut dup = all();
        dup.insert(1, f_ver(b"3"));
        assert_eq!(
            ClientProfile::decode(&signed_raw(6, &dup)).unwrap_err(),
            DecodeError::BadProfile("duplicate field")
        );
        // missing fields, one at a time
        let missing = [
            "missing owner instance tag",
            "missing Ed448 public key",
            "missing forging key",
            "missing versions",
            "missing expiration",
        ];
        for (i, msg) in missing.iter().enumerate() {
            let mut f = all();
            f.remove(i);
            assert_eq!(
                ClientProfile::decode(&signed_raw(4, &f)).unwrap_err(),
                DecodeError::BadProfile(msg)
            );
        }
        // unknown field type
        let mut unk = all();
        unk.push(alloc::vec![0x00, 0x08, 0, 0, 0, 0]);
        assert_eq!(
            ClientProfile::decode(&signed_raw(6, &unk)).unwrap_err(),
            DecodeError::BadProfile("unknown field type")
        );
        // absurd count: rejected before reading any field
        let mut huge = u32::MAX.to_be_bytes().to_vec();
        huge.extend_from_slice(&[0; 200]);
        assert_eq!(
            ClientProfile::decode(&huge).unwrap_err(),
            DecodeError::BadProfile("more fields than field types")
        );
        assert_eq!(
            ClientProfile::decode(&signed_raw(8, &all())).unwrap_err(),
            DecodeError::BadProfile("more fields than field types")
        );
        // a count larger than the fields present runs into the signature bytes
        assert!(ClientProfile::decode(&signed_raw(6, &all())).is_err());
        // wrong key-type prefix (forging-key type on the public key)
        let mut wrong = all();
        wrong[1][2] = 0x12;
        assert_eq!(
            ClientProfile::decode(&signed_raw(5, &wrong)).unwrap_err(),
            DecodeError::BadKeyType {
                what: "ED448-PUBKEY",
                found: 0x0012
            }
        );
        // invalid points
        for i in [1, 2] {
            let mut bad = all();
            bad[i][4..].fill(0xff);
            assert!(matches!(
                ClientProfile::decode(&signed_raw(5, &bad)).unwrap_err(),
                DecodeError::BadPoint(_)
            ));
        }
        // oversized versions length
        let mut big = all();
        big[3] = alloc::vec![0, 4, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            ClientProfile::decode(&signed_raw(5, &big)).unwrap_err(),
            DecodeError::LengthTooLarge { .. }
        ));
        // truncation at every position, and a trailing byte
        let b = profile(b"4").encode();
        assert_truncations_fail(&b, ClientProfile::decode);
        let mut t = b.clone();
        t.push(0);
        assert_eq!(
            ClientProfile::decode(&t).unwrap_err(),
            DecodeError::TrailingBytes(1)
        );
        // parse() itself stops at the end of the profile
        let mut r = Reader::new(&t);
        assert_eq!(ClientProfile::read(&mut r).unwrap(), profile(b"4"));
        assert_eq!(r.remaining(), 1);
    }

    fn dsa() -> DsaPublicKey {
        DsaPublicKey::from_mpis(&[0, 0xff, 1], &[0x80; 20], &[2], &[0x7f; 128]).unwrap()
    }

    #[test]
    fn dsa_key_and_transitional_signature() {
        let mut seen = Vec::new();
        let p = ClientProfile::build_and_sign_transitional(
            TAG,
            &keypair(7),
            &ForgingPublicKey(point(8)),
            b"34",
            EXP,
            dsa(),
            |m| {
                seen = m.to_vec();
                [0x42; TRANSITIONAL_SIGNATURE_LEN]
            },
        );
        assert_eq!(seen, p.transitional_signed_bytes());
        // m is the fields 1..6 without the count
        assert_eq!(&p.signed_bytes()[4..4 + seen.len()], &seen[..]);
        assert_eq!(&p.signed_bytes()[..4], &7u32.to_be_bytes());
        let b = p.encode();
        let q = ClientProfile::decode(&b).unwrap();
        assert_eq!(q, p);
        assert_eq!(q.encode(), b);
        assert_eq!(q.dsa_key(), Some(&dsa()));
        assert_eq!(q.dsa_key().unwrap().as_bytes()[..2], [0, 0]);
        assert_eq!(
            q.transitional_signature(),
            Some(&[0x42; TRANSITIONAL_SIGNATURE_LEN])
        );
        assert!(q.validate(TAG, 0).is_ok());
        assert_truncations_fail(&b, ClientProfile::decode);

        let mut base = alloc::vec![f_tag(TAG.0), f_pk(), f_fk(), f_ver(b"34"), f_exp(EXP)];
        let mut fdsa = FIELD_DSA_KEY.to_be_bytes().to_vec();
        fdsa.extend_from_slice(dsa().as_bytes());
        let mut ftsig = FIELD_TRANSITIONAL_SIGNATURE.to_be_bytes().to_vec();
        ftsig.extend_from_slice(&[1; TRANSITIONAL_SIGNATURE_LEN]);
        // DSA key without transitional signature
        base.push(fdsa.clone());
        assert_eq!(
            ClientProfile::decode(&signed_raw(6, &base)).unwrap_err(),
            DecodeError::BadProfile("DSA key without transitional signature")
        );
        // transitional signature alone is allowed
        base.pop();
        base.push(ftsig);
        assert!(
            ClientProfile::decode(&signed_raw(6, &base))
                .unwrap()
                .transitional_signature()
                .is_some()
        );
        // DSA key: wrong type, non-minimal MPI, oversized MPI
        base.pop();
        let mut bad_type = fdsa.clone();
        bad_type[3] = 1;
        base.push(bad_type);
        assert_eq!(
            ClientProfile::decode(&signed_raw(6, &base)).unwrap_err(),
            DecodeError::BadKeyType {
                what: "DSA key",
                found: 1
            }
        );
        base.pop();
        let mut nonmin = FIELD_DSA_KEY.to_be_bytes().to_vec();
        nonmin.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1]);
        base.push(nonmin);
        assert_eq!(
            ClientProfile::decode(&signed_raw(6, &base)).unwrap_err(),
            DecodeError::NonMinimalMpi
        );
        assert!(matches!(
            DsaPublicKey::from_mpis(&[1; 385], &[1], &[1], &[1]),
            Err(DecodeError::LengthTooLarge { .. })
        ));
        let mut big = Vec::new();
        big.u16(0).data(&[1; 385]);
        assert!(matches!(
            DsaPublicKey::read(&mut Reader::new(&big)),
            Err(DecodeError::LengthTooLarge { .. })
        ));
    }
}
