//! The OTRv3 protocol (Protocol-v3.html, libotr's protocol document), the v3 half of the
//! OTRv3-compatible mode of otrv4.md §"OTRv3-compatible mode": AKE, data messages, wire types.
//!
//! Layers inside: [`group`] (the 1536-bit D-H group), [`pubkey`] (DSA keys), [`kdf`],
//! [`messages`] (wire types and decoders), [`ake`] (the AKE as typestates), [`session`]
//! (data messages, key rotation, MAC key revelation), [`tlv`] (v3 TLV types) and
//! [`fragment`]. The compatible mode's state machine (query messages, whitespace tags,
//! policy) is not here yet; until it is, the module is reachable only through `hazmat`.
// Nothing outside uses the module until the compatible mode does (issue 16's next stage);
// without `hazmat` it is crate-private and would otherwise be dead code.
#![cfg_attr(not(feature = "hazmat"), allow(dead_code))]

pub mod ake;
pub mod fragment;
pub mod group;
pub mod kdf;
pub mod messages;
pub mod pubkey;
pub mod session;
pub mod tlv;

use aes::Aes128;
use ctr::Ctr128BE;
use ctr::cipher::{KeyIvInit, StreamCipher};

use crate::instance_tag::InstanceTag;
use crate::wire::codec::DecodeError;

/// Why an OTRv3 message was rejected. In every case the spec says to ignore the message
/// (AKE) or to report it as unreadable (data); the state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum V3Error {
    /// The bytes did not decode.
    #[error("malformed OTRv3 message: {0}")]
    Decode(#[from] DecodeError),
    /// The D-H Commit's `g^x` does not hash to the committed value, or is not a group
    /// element (Protocol-v3.html §"Authenticated Key Exchange (AKE)").
    #[error("revealed g^x does not match the D-H Commit")]
    CommitMismatch,
    /// A MAC did not verify (compared in constant time).
    #[error("MAC does not verify")]
    BadMac,
    /// The DSA signature in the AKE did not verify.
    #[error("DSA signature does not verify")]
    BadSignature,
    /// A D-H key message other than the one already answered (AUTHSTATE_AWAITING_SIG).
    #[error("D-H Key message differs from the one answered")]
    UnexpectedDhKey,
    /// The message's receiver instance tag is not ours.
    #[error("receiver instance tag {found} is not ours ({expected})")]
    WrongReceiverTag {
        /// Our instance tag.
        expected: InstanceTag,
        /// The tag in the message.
        found: InstanceTag,
    },
    /// The message's sender instance tag is not the peer's.
    #[error("sender instance tag {found} is not the peer's ({expected})")]
    WrongSenderTag {
        /// The peer's tag.
        expected: InstanceTag,
        /// The tag in the message.
        found: InstanceTag,
    },
    /// A data message names a key id we do not hold (Protocol-v3.html §"Key Management").
    #[error("data message uses unknown key ids ({sender}, {recipient})")]
    UnknownKeyId {
        /// The sender key id.
        sender: u32,
        /// The recipient key id.
        recipient: u32,
    },
    /// A data message's counter is not above the last one seen for its key pair.
    #[error("data message counter did not increase")]
    CounterNotIncreasing,
    /// Our own key could not sign.
    #[error("cannot sign: {0}")]
    Signing(pubkey::DsaKeyError),
    /// We have sent 2^64 - 1 messages with one key pair (a counter would repeat).
    #[error("sending counter exhausted for this key pair")]
    CounterExhausted,
}

/// AES-128 in counter mode with the 16-byte initial counter `top || 0^8`
/// (Protocol-v3.html §"D-H Commit Message": "initial counter value 0"; §"Data Message").
pub(crate) fn aes_ctr(key: &[u8; 16], top: [u8; 8], data: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(&top);
    let mut c = Ctr128BE::<Aes128>::new(&(*key).into(), &iv.into());
    c.apply_keystream(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_ctr_known_answer() {
        // With the counter's top half 0 the first keystream block is AES-128(key, 0^16).
        let key: [u8; 16] = hex::decode("000102030405060708090a0b0c0d0e0f")
            .unwrap()
            .try_into()
            .unwrap();
        let mut block = [0u8; 16];
        aes_ctr(&key, [0; 8], &mut block);
        // AES-128(000102…0f, 0^16), as `openssl enc -aes-128-ecb` computes it.
        assert_eq!(hex::encode(block), "c6a13b37878f5b826f4f8162a1c8d879");
        // Decryption is the same operation.
        let mut msg = *b"attack at dawn!!";
        aes_ctr(&key, [1; 8], &mut msg);
        aes_ctr(&key, [1; 8], &mut msg);
        assert_eq!(&msg, b"attack at dawn!!");
    }
}
