//! Client Profile and Prekey Profile vectors: the signed bytes, signature and encoding built
//! from typed inputs, and the validation outcome of valid and invalid profiles.

use super::{draw, draw_arr, expect, expect_text, hex_out};
use crate::format::{Suite, Vector};
use crate::rng::RecordingRng;
use otr4::InstanceTag;
use otr4::hazmat::crypto::ed448::{KeyPair, Point, SymmetricKey};
use otr4::hazmat::crypto::keys::{Ed448PublicKey, ForgingPublicKey, generate_forging_point};
use otr4::hazmat::profile::client::{ClientProfile, DsaPublicKey};
use otr4::hazmat::profile::prekey::PrekeyProfile;
use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::codec::Writer;

const CLIENT: &str =
    "otrv4.md §\"Client Profile Data Type\", §\"Create a Client Profile Signature\"";
const CLIENT_VALIDATE: &str = "otrv4.md §\"Validating a Client Profile\"";
const PREKEY: &str =
    "otrv4.md §\"Prekey Profile Data Type\", §\"Create a Prekey Profile Signature\"";
const PREKEY_VALIDATE: &str = "otrv4.md §\"Validating a Prekey Profile\"";

/// A week.
const WEEK: i64 = 7 * 24 * 3600;
/// Expirations used: a fixed date (2027-01-15T08:00:00Z) plus whole weeks.
const BASE_EXPIRATION: i64 = 1_799_999_200;

fn keypair(sym: [u8; 57]) -> KeyPair {
    KeyPair::from_symmetric_key(SymmetricKey::from_bytes(sym))
}

fn result_text<T, E: core::fmt::Debug>(r: Result<T, E>) -> String {
    match r {
        Ok(_) => "valid".into(),
        Err(e) => format!("{e:?}"),
    }
}

/// The typed inputs of a Client Profile.
#[derive(Clone)]
struct ClientInputs {
    owner_tag: u32,
    sym_h: [u8; 57],
    forging_key: [u8; 57],
    versions: Vec<u8>,
    expiration: i64,
    /// p, q, g, y and the 40-byte transitional signature.
    dsa: Option<([Vec<u8>; 4], [u8; 40])>,
}

impl ClientInputs {
    fn from_vector(v: &Vector) -> Result<ClientInputs, String> {
        let dsa = if v.inputs.contains_key("dsa_p") {
            Some((
                [
                    v.hex_in("dsa_p")?,
                    v.hex_in("dsa_q")?,
                    v.hex_in("dsa_g")?,
                    v.hex_in("dsa_y")?,
                ],
                v.arr_in("transitional_signature")?,
            ))
        } else {
            None
        };
        Ok(ClientInputs {
            owner_tag: u32::from_be_bytes(v.arr_in("owner_tag")?),
            sym_h: v.arr_in("sym_h")?,
            forging_key: v.arr_in("forging_key")?,
            versions: v.hex_in("versions")?,
            expiration: i64::from_be_bytes(v.arr_in("expiration")?),
            dsa,
        })
    }

    fn to_vector(&self, v: Vector) -> Vector {
        let mut v = v
            .input("owner_tag", &self.owner_tag.to_be_bytes())
            .input("sym_h", &self.sym_h)
            .input("forging_key", &self.forging_key)
            .input("versions", &self.versions)
            .input("expiration", &self.expiration.to_be_bytes());
        if let Some(([p, q, g, y], t)) = &self.dsa {
            v = v
                .input("dsa_p", p)
                .input("dsa_q", q)
                .input("dsa_g", g)
                .input("dsa_y", y)
                .input("transitional_signature", t);
        }
        v
    }

    fn build(&self) -> Result<ClientProfile, String> {
        let h = keypair(self.sym_h);
        let f = ForgingPublicKey(
            Point::decode(&self.forging_key).map_err(|e| format!("forging_key: {e:?}"))?,
        );
        let tag = InstanceTag(self.owner_tag);
        Ok(match &self.dsa {
            None => ClientProfile::build_and_sign(tag, &h, &f, &self.versions, self.expiration),
            Some(([p, q, g, y], t)) => {
                let dsa = DsaPublicKey::from_mpis(p, q, g, y).map_err(|e| format!("{e:?}"))?;
                ClientProfile::build_and_sign_transitional(
                    tag,
                    &h,
                    &f,
                    &self.versions,
                    self.expiration,
                    dsa,
                    |_| *t,
                )
            }
        })
    }
}

fn client_vector(name: &str, inputs: &ClientInputs) -> Vector {
    let p = inputs.build().ok();
    let mut v = inputs.to_vector(Vector::new(format!("client_profile/{name}"), CLIENT));
    if let Some(p) = p {
        v = v
            .output("public_key", &p.public_key().0.encode())
            .output("signed_bytes", p.signed_bytes())
            .output("signature", &p.signature().0)
            .output("profile", &p.encode());
        if inputs.dsa.is_some() {
            v = v.output("transitional_message", &p.transitional_signed_bytes());
        }
    }
    v
}

fn client_validate_vector(name: &str, profile: &[u8], sender: u32, now: i64) -> Vector {
    let result = match ClientProfile::decode(profile) {
        Ok(p) => result_text(p.validate(InstanceTag(sender), now)),
        Err(e) => format!("Decode({e:?})"),
    };
    Vector::new(format!("client_profile_validate/{name}"), CLIENT_VALIDATE)
        .input("profile", profile)
        .input("sender_tag", &sender.to_be_bytes())
        .input("now", &now.to_be_bytes())
        .output_text("result_text", &result)
}

fn prekey_vector(
    name: &str,
    owner: u32,
    expiration: i64,
    sym_d: [u8; 57],
    sym_h: [u8; 57],
) -> Vector {
    let p = PrekeyProfile::build_and_sign(
        InstanceTag(owner),
        expiration,
        &keypair(sym_d),
        &keypair(sym_h),
    );
    Vector::new(format!("prekey_profile/{name}"), PREKEY)
        .input("owner_tag", &owner.to_be_bytes())
        .input("expiration", &expiration.to_be_bytes())
        .input("sym_d", &sym_d)
        .input("sym_h", &sym_h)
        .output("shared_prekey", &p.shared_prekey.0.encode())
        .output("signed_bytes", &p.signed_bytes())
        .output("signature", &p.signature.0)
        .output("profile", &p.encode())
}

fn prekey_validate_vector(name: &str, profile: &[u8], h: &Point, sender: u32, now: i64) -> Vector {
    let result = match PrekeyProfile::decode(profile) {
        Ok(p) => result_text(p.validate(InstanceTag(sender), now, &Ed448PublicKey(*h))),
        Err(e) => format!("Decode({e:?})"),
    };
    Vector::new(format!("prekey_profile_validate/{name}"), PREKEY_VALIDATE)
        .input("profile", profile)
        .input("long_term_public", &h.encode())
        .input("sender_tag", &sender.to_be_bytes())
        .input("now", &now.to_be_bytes())
        .output_text("result_text", &result)
}

/// `bytes` with byte `i` XORed with `x`.
fn flip(bytes: &[u8], i: usize, x: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if let Some(b) = out.get_mut(i) {
        *b ^= x;
    }
    out
}

pub fn generate() -> Suite {
    let mut rng = RecordingRng::new("otr4 profile vectors");
    let mut vectors = Vec::new();
    let tag = |rng: &mut RecordingRng| u32::from_be_bytes(draw_arr(rng)) | 0x100;

    let base = ClientInputs {
        owner_tag: tag(&mut rng),
        sym_h: draw_arr(&mut rng),
        forging_key: generate_forging_point(&mut rng).0.encode(),
        versions: b"4".to_vec(),
        expiration: BASE_EXPIRATION + 2 * WEEK,
        dsa: None,
    };
    rng.take();
    vectors.push(client_vector("v4", &base));
    let v34 = ClientInputs {
        owner_tag: tag(&mut rng),
        sym_h: draw_arr(&mut rng),
        forging_key: keypair(draw_arr(&mut rng)).public().encode(),
        versions: b"34".to_vec(),
        expiration: BASE_EXPIRATION + WEEK,
        dsa: None,
    };
    vectors.push(client_vector("v34", &v34));
    let transitional = ClientInputs {
        owner_tag: tag(&mut rng),
        sym_h: draw_arr(&mut rng),
        forging_key: keypair(draw_arr(&mut rng)).public().encode(),
        versions: b"34".to_vec(),
        expiration: BASE_EXPIRATION + 3 * WEEK,
        dsa: Some((
            [
                [vec![0x80], draw(&mut rng, 127)].concat(),
                [vec![0x90], draw(&mut rng, 19)].concat(),
                [vec![0x11], draw(&mut rng, 127)].concat(),
                [vec![0x22], draw(&mut rng, 127)].concat(),
            ],
            draw_arr(&mut rng),
        )),
    };
    vectors.push(client_vector("v34_transitional", &transitional));

    // Validation outcomes, from the v4 profile and variants of it.
    let built = base.build().map(|p| p.encode()).unwrap_or_default();
    let (owner, exp) = (base.owner_tag, base.expiration);
    vectors.push(client_validate_vector("valid", &built, owner, exp - 1));
    vectors.push(client_validate_vector(
        "expired_at_expiration",
        &built,
        owner,
        exp,
    ));
    vectors.push(client_validate_vector(
        "other_sender_tag",
        &built,
        owner ^ 1,
        exp - 1,
    ));
    let sig_start = built.len().saturating_sub(114);
    vectors.push(client_validate_vector(
        "bad_signature",
        &flip(&built, sig_start + 70, 0x04),
        owner,
        exp - 1,
    ));
    let mut empty_sig = built.clone();
    for b in empty_sig.iter_mut().skip(sig_start) {
        *b = 0;
    }
    vectors.push(client_validate_vector(
        "empty_signature",
        &empty_sig,
        owner,
        exp - 1,
    ));
    // A changed signed field (the expiration's last byte) breaks the signature.
    let signed_len = sig_start;
    vectors.push(client_validate_vector(
        "tampered_expiration",
        &flip(&built, signed_len - 1, 0x01),
        owner,
        exp - 1,
    ));
    for (name, versions) in [("versions_3_only", &b"3"[..]), ("versions_with_2", b"243")] {
        let inputs = ClientInputs {
            versions: versions.to_vec(),
            ..base.clone()
        };
        let p = inputs.build().map(|p| p.encode()).unwrap_or_default();
        vectors.push(client_validate_vector(name, &p, owner, exp - 1));
    }
    // Hand-built field lists (the signature is never reached).
    let h = keypair(base.sym_h);
    let fields = |w: &mut Vec<u8>, count: u32| {
        w.u32(count);
        w.u16(0x0001).u32(owner);
        w.u16(0x0002).u16_le(0x0010).bytes(&h.public().encode());
        w.u16(0x0003).u16_le(0x0012).bytes(&base.forging_key);
        w.u16(0x0004).data(b"4");
        w.u16(0x0005).i64(exp);
    };
    let mut w = Vec::new();
    fields(&mut w, 6);
    w.u16(0x0005).i64(exp).bytes(&[0x55; 114]);
    vectors.push(client_validate_vector(
        "duplicate_field",
        &w,
        owner,
        exp - 1,
    ));
    let mut w = Vec::new();
    fields(&mut w, 6);
    w.u16(0x0009).bytes(&[0x55; 114]);
    vectors.push(client_validate_vector("unknown_field", &w, owner, exp - 1));
    let mut w = Vec::new();
    fields(&mut w, 4);
    vectors.push(client_validate_vector(
        "missing_expiration",
        &[w, vec![0x55; 114 - 10]].concat(),
        owner,
        exp - 1,
    ));
    // The Ed448 public key replaced by the order-4 point (0 bytes).
    let key_at = 4 + 6 + 2 + 2;
    let mut bad_key = built.clone();
    for b in bad_key.iter_mut().skip(key_at).take(57) {
        *b = 0;
    }
    vectors.push(client_validate_vector(
        "public_key_not_in_subgroup",
        &bad_key,
        owner,
        exp - 1,
    ));

    // Prekey Profiles.
    let owner = tag(&mut rng);
    let (sym_d, sym_h) = (draw_arr(&mut rng), base.sym_h);
    let exp = BASE_EXPIRATION + WEEK;
    let pv = prekey_vector("0", owner, exp, sym_d, sym_h);
    let profile = hex_out(&pv, "profile").unwrap_or_default();
    vectors.push(pv);
    vectors.push(prekey_vector(
        "1",
        tag(&mut rng),
        exp + WEEK,
        draw_arr(&mut rng),
        draw_arr(&mut rng),
    ));
    let hp = *h.public();
    vectors.push(prekey_validate_vector(
        "valid",
        &profile,
        &hp,
        owner,
        exp - 1,
    ));
    vectors.push(prekey_validate_vector(
        "expired_at_expiration",
        &profile,
        &hp,
        owner,
        exp,
    ));
    vectors.push(prekey_validate_vector(
        "other_sender_tag",
        &profile,
        &hp,
        owner ^ 0x100,
        exp - 1,
    ));
    let other = *keypair(draw_arr(&mut rng)).public();
    vectors.push(prekey_validate_vector(
        "other_long_term_key",
        &profile,
        &other,
        owner,
        exp - 1,
    ));
    vectors.push(prekey_validate_vector(
        "bad_signature",
        &flip(&profile, 71 + 5, 0x20),
        &hp,
        owner,
        exp - 1,
    ));
    vectors.push(prekey_validate_vector(
        "wrong_key_type",
        &flip(&profile, 12, 0x03),
        &hp,
        owner,
        exp - 1,
    ));

    Suite {
        suite: "profiles".into(),
        description: "client_profile: signed_bytes = Number of Fields (INT) || each field as \
            type (SHORT) || value, in type order: 0x0001 owner_tag (INT), 0x0002 ED448-PUBKEY \
            (10 00 || H, H derived from sym_h), 0x0003 ED448-FORGING-KEY (12 00 || forging_key), \
            0x0004 versions (DATA), 0x0005 expiration (INT64), [0x0006 DSA PUBKEY (00 00 || \
            MPI p, q, g, y), 0x0007 transitional_signature (40 bytes)]; signature = EdDSA \
            (suite eddsa) over signed_bytes with the key from sym_h; profile = signed_bytes || \
            signature. transitional_message = the fields 0x0001..0x0006 without the count. \
            prekey_profile: signed_bytes = owner_tag (INT) || expiration (INT64) || 11 00 || D \
            (D derived from sym_d), signed with sym_h's key; profile = signed_bytes || \
            signature. *_validate: result_text is `valid` or the failed check."
            .into(),
        vectors,
    }
}

pub fn check(v: &Vector) -> Result<(), String> {
    match v.name.split('/').next().unwrap_or("") {
        "client_profile" => {
            let inputs = ClientInputs::from_vector(v)?;
            let p = inputs.build()?;
            let bytes = p.encode();
            let back = ClientProfile::decode(&bytes).map_err(|e| format!("decode: {e:?}"))?;
            if back != p
                || back.owner_tag().0 != inputs.owner_tag
                || back.public_key() != p.public_key()
                || back.forging_key().0.encode() != inputs.forging_key
                || back.versions() != inputs.versions
                || back.expiration() != inputs.expiration
                || back.transitional_signature().copied() != inputs.dsa.as_ref().map(|d| d.1)
            {
                return Err("the profile does not decode to its inputs".into());
            }
            back.validate(InstanceTag(inputs.owner_tag), inputs.expiration - 1)
                .map_err(|e| format!("own profile does not validate: {e:?}"))?;
            expect(v, "public_key", &p.public_key().0.encode())?;
            expect(v, "signed_bytes", p.signed_bytes())?;
            expect(v, "signature", &p.signature().0)?;
            if inputs.dsa.is_some() {
                expect(v, "transitional_message", &p.transitional_signed_bytes())?;
            }
            expect(v, "profile", &bytes)
        }
        "client_profile_validate" => {
            let sender = InstanceTag(u32::from_be_bytes(v.arr_in("sender_tag")?));
            let now = i64::from_be_bytes(v.arr_in("now")?);
            let result = match ClientProfile::decode(&v.hex_in("profile")?) {
                Ok(p) => {
                    if p.encode() != v.hex_in("profile")? {
                        return Err("profile does not re-encode".into());
                    }
                    result_text(p.validate(sender, now))
                }
                Err(e) => format!("Decode({e:?})"),
            };
            expect_text(v, "result_text", &result)
        }
        "prekey_profile" => {
            let owner = u32::from_be_bytes(v.arr_in("owner_tag")?);
            let expiration = i64::from_be_bytes(v.arr_in("expiration")?);
            let d = keypair(v.arr_in("sym_d")?);
            let h = keypair(v.arr_in("sym_h")?);
            let p = PrekeyProfile::build_and_sign(InstanceTag(owner), expiration, &d, &h);
            let bytes = p.encode();
            let back = PrekeyProfile::decode(&bytes).map_err(|e| format!("decode: {e:?}"))?;
            if back != p
                || back.owner_tag.0 != owner
                || back.expiration != expiration
                || back.shared_prekey.0 != *d.public()
            {
                return Err("the profile does not decode to its inputs".into());
            }
            back.validate(
                InstanceTag(owner),
                expiration - 1,
                &Ed448PublicKey(*h.public()),
            )
            .map_err(|e| format!("own profile does not validate: {e:?}"))?;
            expect(v, "shared_prekey", &d.public().encode())?;
            expect(v, "signed_bytes", &p.signed_bytes())?;
            expect(v, "signature", &p.signature.0)?;
            expect(v, "profile", &bytes)
        }
        "prekey_profile_validate" => {
            let h = Point::decode(&v.arr_in("long_term_public")?)
                .map_err(|e| format!("long_term_public: {e:?}"))?;
            let sender = InstanceTag(u32::from_be_bytes(v.arr_in("sender_tag")?));
            let now = i64::from_be_bytes(v.arr_in("now")?);
            let result = match PrekeyProfile::decode(&v.hex_in("profile")?) {
                Ok(p) => {
                    if p.encode() != v.hex_in("profile")? {
                        return Err("profile does not re-encode".into());
                    }
                    result_text(p.validate(sender, now, &Ed448PublicKey(h)))
                }
                Err(e) => format!("Decode({e:?})"),
            };
            expect_text(v, "result_text", &result)
        }
        other => Err(format!("unknown operation {other}")),
    }
}
