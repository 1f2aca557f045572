//! ChaCha20 vectors: the RFC 8439 cipher with the all-zero nonce and initial counter 0, as
//! OTRv4 encrypts Data Message payloads under the first 32 bytes of `MKenc`.

use super::{draw, draw_arr, expect};
use crate::format::{Suite, Vector};
use crate::rng::RecordingRng;
use otr4::hazmat::crypto::chacha::{apply_keystream, decrypt, encrypt};

const SECTION: &str =
    "otrv4.md §\"When you send a Data Message:\" (RFC 8439 §2.4, nonce 0, counter 0)";

/// RFC 8439 Appendix A.1 test vector #1: key 0, nonce 0, counter 0, 64 zero bytes.
const RFC8439_A1_1: &str = "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586";

fn key_vector(name: &str, key: [u8; 32], plaintext: &[u8]) -> Vector {
    let mut ct = plaintext.to_vec();
    apply_keystream(&key, &mut ct);
    Vector::new(format!("key/{name}"), SECTION)
        .input("key", &key)
        .input("plaintext", plaintext)
        .output("ciphertext", &ct)
}

pub fn generate() -> Suite {
    let mut rng = RecordingRng::new("otr4 chacha20 vectors");
    let mut vectors = Vec::new();
    let v = key_vector("rfc8439_a1_1", [0; 32], &[0; 64]);
    assert_eq!(
        v.outputs.get("ciphertext").map(String::as_str),
        Some(RFC8439_A1_1)
    );
    vectors.push(v);
    for len in [0usize, 1, 63, 64, 65, 1024] {
        let key = draw_arr(&mut rng);
        let pt = draw(&mut rng, len);
        vectors.push(key_vector(&format!("len_{len}"), key, &pt));
    }
    for len in [5usize, 130] {
        let mk_enc: [u8; 64] = draw_arr(&mut rng);
        let pt = draw(&mut rng, len);
        vectors.push(
            Vector::new(format!("mk_enc/len_{len}"), SECTION)
                .input("mk_enc", &mk_enc)
                .input("plaintext", &pt)
                .output("ciphertext", &encrypt(&mk_enc, &pt)),
        );
    }
    Suite {
        suite: "chacha20".into(),
        description: "ChaCha20 (RFC 8439 §2.4) with a 12-byte all-zero nonce and initial block \
            counter 0: ciphertext = plaintext XOR keystream. key: a 32-byte key. mk_enc: the \
            64-byte message key MKenc; only its first 32 bytes are the ChaCha20 key."
            .into(),
        vectors,
    }
}

pub fn check(v: &Vector) -> Result<(), String> {
    let pt = v.hex_in("plaintext")?;
    let (ct, back) = match v.name.split('/').next().unwrap_or("") {
        "key" => {
            let key = v.arr_in::<32>("key")?;
            let mut ct = pt.clone();
            apply_keystream(&key, &mut ct);
            let mut back = ct.clone();
            apply_keystream(&key, &mut back);
            (ct, back)
        }
        "mk_enc" => {
            let mk = v.arr_in::<64>("mk_enc")?;
            let ct = encrypt(&mk, &pt);
            let back = decrypt(&mk, &ct);
            (ct, back)
        }
        other => return Err(format!("unknown operation {other}")),
    };
    if back != pt {
        return Err("decryption does not give the plaintext back".into());
    }
    expect(v, "ciphertext", &ct)
}
