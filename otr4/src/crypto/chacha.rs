//! ChaCha20 (the RFC 8439 / RFC 7539 variant) with the all-zero nonce, used to encrypt Data
//! Message payloads under the first 32 bytes of the one-time key `MKenc` (otrv4.md §"Data Message").

use crate::crypto::CryptoError;
use alloc::vec::Vec;
use chacha20::cipher::StreamCipherCore;
use chacha20::cipher::array::Array;
use chacha20::cipher::consts::U64;
use chacha20::variants::Ietf;
use chacha20::{ChaChaCore, KeyIvInit, R20};
use zeroize::{Zeroize, Zeroizing};

/// Bytes in a ChaCha20 key.
pub const KEY_LEN: usize = 32;
/// Bytes in a ChaCha20 (IETF) nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes in the message key `MKenc` (otrv4.md §"Deriving Double Ratchet Keys").
pub const MK_ENC_LEN: usize = 64;
/// The nonce of every OTRv4 encryption: 0 (otrv4.md §"Data Message": "The 'nonce' used for
/// this operation is set to 0"); each `MKenc` encrypts a single message.
pub const ZERO_NONCE: [u8; NONCE_LEN] = [0; NONCE_LEN];
/// The block counter of the first keystream block (RFC 8439 §2.4: plain ChaCha20
/// encryption; the Poly1305 AEAD's 1 does not apply since no one-time Poly1305 key is drawn).
pub const INITIAL_COUNTER: u32 = 0;

const BLOCK_LEN: usize = 64;

/// XORs `data` with the ChaCha20 keystream for `key` and `nonce` starting at block
/// `counter` (RFC 8439 §2.4). Fails without touching `data` if the 32-bit block counter
/// would wrap, which would reuse keystream.
pub(crate) fn xor_keystream(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    counter: u32,
    data: &mut [u8],
) -> Result<(), CryptoError> {
    let blocks = data.len().div_ceil(BLOCK_LEN) as u64;
    if u64::from(counter).saturating_add(blocks) > 1u64 << 32 {
        return Err(CryptoError::KeystreamExhausted);
    }
    // ChaChaCore zeroizes its state on drop (feature "zeroize").
    let mut core = ChaChaCore::<R20, Ietf>::new(key.into(), nonce.into());
    core.set_block_pos(counter);
    let (full, tail) = Array::<u8, U64>::slice_as_chunks_mut(data);
    core.apply_keystream_blocks(full);
    if !tail.is_empty() {
        let mut block = Array::<u8, U64>::default();
        core.write_keystream_block(&mut block);
        tail.iter_mut().zip(block.iter()).for_each(|(d, k)| *d ^= k);
        block.as_mut_slice().zeroize();
    }
    Ok(())
}

/// `Chacha20_Enc(key, 0, data)` in place (otrv4.md §"When you send a Data Message"):
/// encryption and decryption are the same XOR with the keystream of `key`, the zero
/// nonce and initial block counter [`INITIAL_COUNTER`].
///
/// The keystream of one key is 2^38 bytes (256 GiB) long; OTRv4 never comes close, since
/// the encrypted message travels in a DATA field of at most 2^32 - 1 bytes. Longer `data`
/// (only possible on 64-bit targets) is zeroed instead of encrypted, so that no keystream
/// is ever reused and no plaintext is ever passed off as ciphertext.
pub fn apply_keystream(key: &[u8; KEY_LEN], data: &mut [u8]) {
    if xor_keystream(key, &ZERO_NONCE, INITIAL_COUNTER, data).is_err() {
        data.zeroize();
    }
}

/// The ChaCha20 key of a message key: the first 32 bytes of the 64-byte `MKenc`
/// (otrv4.md §"When you send a Data Message": "Use only the first 32 bytes of `MKenc`").
fn enc_key(mk_enc: &[u8; MK_ENC_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.iter_mut().zip(mk_enc.iter()).for_each(|(d, s)| *d = *s);
    key
}

/// Encrypts a Data Message payload: `Chacha20_Enc(MKenc, nonce = 0, m)` with the first 32
/// bytes of `mk_enc` as the key (otrv4.md §"When you send a Data Message").
pub fn encrypt(mk_enc: &[u8; MK_ENC_LEN], plaintext: &[u8]) -> Vec<u8> {
    let mut out = plaintext.to_vec();
    apply_keystream(&enc_key(mk_enc), &mut out);
    out
}

/// Decrypts a Data Message payload: `ChaCha20_Dec(MKenc, nonce = 0, m)` with the first 32
/// bytes of `mk_enc` (otrv4.md §"When you receive a Data Message"). The result is
/// plaintext: wrap it in `Zeroizing` or wipe it when done.
pub fn decrypt(mk_enc: &[u8; MK_ENC_LEN], ciphertext: &[u8]) -> Vec<u8> {
    encrypt(mk_enc, ciphertext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    fn rfc_key() -> [u8; 32] {
        core::array::from_fn(|i| i as u8)
    }

    const SUNSCREEN: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";

    #[test]
    fn rfc8439_2_4_2_encryption_vector() {
        let nonce = [0, 0, 0, 0, 0, 0, 0, 0x4a, 0, 0, 0, 0];
        let expect = unhex(
            "6e2e359a2568f98041ba0728dd0d6981 e97e7aec1d4360c20a27afccfd9fae0b
             f91b65c5524733ab8f593dabcd62b357 1639d624e65152ab8f530c359f0861d8
             07ca0dbf500d6a6156a38e088a22b65e 52bc514d16ccf806818ce91ab7793736
             5af90bbf74a35be6b40b8eedf2785e42 874d",
        );
        let mut data = SUNSCREEN.to_vec();
        xor_keystream(&rfc_key(), &nonce, 1, &mut data).unwrap();
        assert_eq!(data, expect);
        xor_keystream(&rfc_key(), &nonce, 1, &mut data).unwrap();
        assert_eq!(data, SUNSCREEN);
    }

    #[test]
    fn rfc8439_a2_vector_1_zero_key_zero_nonce_counter_0() {
        // RFC 8439 §A.2 test vector #1: all-zero key, nonce and plaintext, counter 0 —
        // exactly OTRv4's parameters, so this is the keystream `apply_keystream` uses.
        let expect = unhex(
            "76b8e0ada0f13d90405d6ae55386bd28 bdd219b8a08ded1aa836efcc8b770dc7
             da41597c5157488d7724e03fb8d84a37 6a43b8f41518a11cc387b669b2ee6586",
        );
        let mut data = [0u8; 64];
        apply_keystream(&[0u8; 32], &mut data);
        assert_eq!(data.as_slice(), expect);
        let mut data = [0u8; 64];
        xor_keystream(&[0u8; 32], &ZERO_NONCE, 0, &mut data).unwrap();
        assert_eq!(data.as_slice(), expect);
    }

    #[test]
    fn rfc8439_a2_vector_2_counter_1() {
        // RFC 8439 §A.2 test vector #2 (key ...01, nonce ...02, counter 1), 375 bytes: the
        // first 64 bytes checked.
        let mut key = [0u8; 32];
        key[31] = 1;
        let mut nonce = [0u8; 12];
        nonce[11] = 2;
        let mut data = b"Any submission to the IETF intended by the Contributor for publication as all or part of an IETF Internet-Draft or RFC and any statement made within the context of an IETF activity is considered an \"IETF Contribution\". Such statements include oral statements in IETF sessions, as well as written and electronic communications made at any time or place, which are addressed to".to_vec();
        assert_eq!(data.len(), 375);
        xor_keystream(&key, &nonce, 1, &mut data).unwrap();
        let expect = unhex(
            "a3fbf07df3fa2fde4f376ca23e827370 41605d9f4f4f57bd8cff2c1d4b7955ec
             2a97948bd3722915c8f3d337f7d37005 0e9e96d647b7c39f56e031ca5eb6250d",
        );
        assert_eq!(&data[..64], expect.as_slice());
    }

    #[test]
    fn encrypt_uses_first_half_of_mk_enc() {
        let mut mk = [0u8; MK_ENC_LEN];
        mk.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        let ct = encrypt(&mk, SUNSCREEN);
        let mut expect = SUNSCREEN.to_vec();
        xor_keystream(&rfc_key(), &ZERO_NONCE, 0, &mut expect).unwrap();
        assert_eq!(ct, expect);
        // the second half does not matter
        let mut mk2 = mk;
        mk2[32..].fill(0xee);
        assert_eq!(encrypt(&mk2, SUNSCREEN), ct);
        // the first half does
        let mut mk3 = mk;
        mk3[0] ^= 1;
        assert_ne!(encrypt(&mk3, SUNSCREEN), ct);
        assert_eq!(decrypt(&mk, &ct), SUNSCREEN);
    }

    #[test]
    fn round_trips_at_block_boundaries() {
        let mk = [0x5au8; MK_ENC_LEN];
        for len in [0usize, 1, 63, 64, 65, 127, 128, 129, 1000] {
            let pt: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let ct = encrypt(&mk, &pt);
            assert_eq!(ct.len(), len);
            if len >= 16 {
                assert_ne!(ct, pt);
            }
            // prefix property of a stream cipher: a shorter message is a prefix
            if len > 0 {
                assert_eq!(encrypt(&mk, &pt[..len - 1]), ct[..len - 1]);
            }
            assert_eq!(decrypt(&mk, &ct), pt);
        }
    }

    #[test]
    fn counter_overflow_is_refused() {
        let key = [1u8; 32];
        let mut data = [7u8; 65];
        assert_eq!(
            xor_keystream(&key, &ZERO_NONCE, u32::MAX, &mut data),
            Err(CryptoError::KeystreamExhausted)
        );
        assert_eq!(data, [7u8; 65]);
        // exactly the last block is fine
        let mut last = [0u8; 64];
        xor_keystream(&key, &ZERO_NONCE, u32::MAX, &mut last).unwrap();
        assert_ne!(last, [0u8; 64]);
        let mut empty: [u8; 0] = [];
        xor_keystream(&key, &ZERO_NONCE, u32::MAX, &mut empty).unwrap();
    }
}
