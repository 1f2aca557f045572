//! KDF vectors: every usage ID of both domains (otrv4.md §"Key Derivation Function, Hash
//! Function and MAC Function"; otrv4-prekey-server.md §"Key Derivation Functions").

use super::expect;
use crate::format::{Suite, Vector};
use crate::rng::RecordingRng;
use otr4::hazmat::crypto::kdf::{
    DOMAIN_OTRV4, DOMAIN_PREKEY_SERVER, PrekeyUsage, Usage, prekey_kdf,
};
use otr4::shake_into;
use rand_core::Rng;

const OTR_SECTION: &str = "otrv4.md §\"Key Derivation Function, Hash Function and MAC Function\"";
const PREKEY_SECTION: &str = "otrv4-prekey-server.md §\"Key Derivation Functions\"";

pub fn generate() -> Suite {
    let mut rng = RecordingRng::new("otr4 kdf vectors");
    let mut vectors = Vec::new();
    for (n, u) in Usage::ALL.iter().enumerate() {
        let mut values = vec![0u8; n * 7 % 97];
        rng.fill_bytes(&mut values);
        let size = [32usize, 56, 57, 64, 114].get(n % 5).copied().unwrap_or(64);
        let mut out = vec![0u8; size];
        shake_into(DOMAIN_OTRV4, *u as u8, &[&values], &mut out);
        vectors.push(
            Vector::new(format!("otrv4_{u:?}"), OTR_SECTION)
                .input_text("domain_text", "OTRv4")
                .input("usage", &[*u as u8])
                .input("values", &values)
                .input("size", &(size as u32).to_be_bytes())
                .output("out", &out),
        );
    }
    for (n, u) in PrekeyUsage::ALL.iter().enumerate() {
        let mut values = vec![0u8; n * 11 % 89];
        rng.fill_bytes(&mut values);
        let out: [u8; 64] = prekey_kdf(*u, &[&values]);
        vectors.push(
            Vector::new(format!("prekey_{u:?}"), PREKEY_SECTION)
                .input_text("domain_text", "OTR-Prekey-Server")
                .input("usage", &[*u as u8])
                .input("values", &values)
                .input("size", &64u32.to_be_bytes())
                .output("out", &out),
        );
    }
    Suite {
        suite: "kdf".into(),
        description:
            "SHAKE-256(domain || usage || values, size) for every usage ID of both domains. \
                      `size` is a big-endian u32 byte count."
                .into(),
        vectors,
    }
}

pub fn check(v: &Vector) -> Result<(), String> {
    let domain = v.text_in("domain_text")?;
    let usage = *v.hex_in("usage")?.first().ok_or("empty usage")?;
    let values = v.hex_in("values")?;
    let size = u32::from_be_bytes(v.arr_in::<4>("size")?) as usize;
    let prefix = match domain {
        "OTRv4" => {
            Usage::ALL
                .iter()
                .find(|u| **u as u8 == usage)
                .ok_or("unknown OTRv4 usage")?;
            DOMAIN_OTRV4
        }
        "OTR-Prekey-Server" => {
            PrekeyUsage::ALL
                .iter()
                .find(|u| **u as u8 == usage)
                .ok_or("unknown prekey usage")?;
            DOMAIN_PREKEY_SERVER
        }
        d => return Err(format!("unknown domain {d}")),
    };
    let mut out = vec![0u8; size];
    shake_into(prefix, usage, &[&values], &mut out);
    expect(v, "out", &out)
}
