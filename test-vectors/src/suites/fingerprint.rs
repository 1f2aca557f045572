//! Fingerprint vectors: OTRv4's over the typed long-term and forging keys and the prekey
//! server's over its long-term key, each with its human-readable form.

use super::{draw_arr, expect, expect_text};
use crate::format::{Suite, Vector};
use crate::rng::RecordingRng;
use otr4::Fingerprint;
use otr4::hazmat::crypto::ed448::{KeyPair, Point, SymmetricKey};
use otr4::hazmat::crypto::keys::{Ed448PublicKey, ForgingPublicKey, generate_forging_point};

const OTR: &str = "otrv4.md §\"Public keys, Shared Prekeys, Forging keys and Fingerprints\"";
const PREKEY: &str = "otrv4-prekey-server.md §\"Public keys and Fingerprints\"";

fn point(v: &Vector, k: &str) -> Result<Point, String> {
    Point::decode(&v.arr_in(k)?).map_err(|e| format!("{k}: {e:?}"))
}

pub fn generate() -> Suite {
    let mut rng = RecordingRng::new("otr4 fingerprint vectors");
    let mut vectors = Vec::new();
    for i in 0..3 {
        let h = *KeyPair::from_symmetric_key(SymmetricKey::from_bytes(draw_arr(&mut rng))).public();
        // The forging key: a key pair's public point or a point drawn directly.
        let f = if i == 0 {
            *KeyPair::from_symmetric_key(SymmetricKey::from_bytes(draw_arr(&mut rng))).public()
        } else {
            generate_forging_point(&mut rng).0
        };
        rng.take();
        let fp = Fingerprint::otrv4(&Ed448PublicKey(h), &ForgingPublicKey(f));
        vectors.push(
            Vector::new(format!("otrv4/{i}"), OTR)
                .input("h", &h.encode())
                .input("f", &f.encode())
                .output("fingerprint", fp.as_bytes())
                .output_text("fingerprint_text", &fp.to_string()),
        );
    }
    for i in 0..2 {
        let h = *KeyPair::from_symmetric_key(SymmetricKey::from_bytes(draw_arr(&mut rng))).public();
        let fp = Fingerprint::prekey_server(&Ed448PublicKey(h));
        vectors.push(
            Vector::new(format!("prekey_server/{i}"), PREKEY)
                .input("h", &h.encode())
                .output("fingerprint", fp.as_bytes())
                .output_text("fingerprint_text", &fp.to_string()),
        );
    }
    Suite {
        suite: "fingerprint".into(),
        description:
            "otrv4: fingerprint = SHAKE-256(\"OTRv4\" || 0x00 || 10 00 || h || 12 00 || f, 56), \
            i.e. HWC(usage_fingerprint || byte(H) || byte(F), 56) over the typed ED448-PUBKEY and \
            ED448-FORGING-KEY encodings (2-byte little-endian type, then the POINT). \
            prekey_server: SHAKE-256(\"OTRv4\" || 0x00 || 10 00 || h, 56). fingerprint_text: \
            14 groups of 8 upper-case hex digits separated by single spaces."
                .into(),
        vectors,
    }
}

pub fn check(v: &Vector) -> Result<(), String> {
    let h = Ed448PublicKey(point(v, "h")?);
    let fp = match v.name.split('/').next().unwrap_or("") {
        "otrv4" => Fingerprint::otrv4(&h, &ForgingPublicKey(point(v, "f")?)),
        "prekey_server" => Fingerprint::prekey_server(&h),
        other => return Err(format!("unknown operation {other}")),
    };
    expect(v, "fingerprint", fp.as_bytes())?;
    expect_text(v, "fingerprint_text", &fp.to_string())
}
