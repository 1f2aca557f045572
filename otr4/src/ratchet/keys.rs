//! The key derivations of the double ratchet (otrv4.md §"Shared Secrets", §"Deriving Double
//! Ratchet Keys", §"Calculating Encryption and MAC Keys", §"Extra Symmetric Key").
//!
//! Each function is one KDF call writing straight into a buffer that zeroizes on drop.

use crate::debug::redacted_debug;
use alloc::vec::Vec;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::dh::SharedDh;
use crate::crypto::ecdh::SharedSecret;
use crate::crypto::kdf::{DOMAIN_OTRV4, Otrv4, Usage, kdf_into, shake_into};
use crate::wire::tlv::{Tlv, TlvType};

/// Bytes in the root key, chain keys, message keys `MKenc`/`MKmac` and the mixed shared
/// secret `K` (otrv4.md §"Deriving Double Ratchet Keys": all are `KDF(…, 64)`).
pub const KEY_LEN: usize = 64;
/// Bytes in the brace key (otrv4.md §"Shared Secrets": `KDF(…, 32)`).
pub const BRACE_KEY_LEN: usize = 32;
/// Bytes in the extra symmetric key (otrv4.md §"When you send a Data Message").
pub const EXTRA_SYMMETRIC_KEY_LEN: usize = 64;
/// How many extra symmetric keys one Data Message may yield, counting the base key
/// (otrv4.md §"Extra Symmetric Key": "only 10 extra symmetric keys can be derived").
pub const MAX_EXTRA_SYMMETRIC_KEYS: usize = 10;

/// A 64-byte secret (root key, chain key, `K`, `MKenc`, `MKmac`), zeroized on drop.
pub(crate) type Key64 = Zeroizing<[u8; KEY_LEN]>;
/// A 32-byte brace key, zeroized on drop.
pub(crate) type BraceKey = Zeroizing<[u8; BRACE_KEY_LEN]>;

/// `KDF(usage || parts, 64)` into a fresh zeroizing buffer.
fn kdf64(usage: Usage, parts: &[&[u8]]) -> Key64 {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    kdf_into::<Otrv4>(usage, parts, out.as_mut());
    out
}

/// `prev_root_key = KDF(usage_first_root_key || K, 64)` (otrv4.md §"Interactive DAKE
/// Overview", "Initializes the double-ratchet algorithm").
pub(crate) fn first_root_key(k: &[u8; KEY_LEN]) -> Key64 {
    kdf64(Usage::FirstRootKey, &[k])
}

/// The non-interactive initialisation (otrv4.md §"Non-Interactive DAKE Overview"):
/// `curr_root_key = KDF(usage_root_key || K, 64)` and
/// `chain_key = KDF(usage_chain_key || K, 64)`.
pub(crate) fn non_interactive_keys(k: &[u8; KEY_LEN]) -> (Key64, Key64) {
    (kdf64(Usage::RootKey, &[k]), kdf64(Usage::ChainKey, &[k]))
}

/// `derive_ratchet_keys(purpose, prev_root_key, K)` (otrv4.md §"Deriving Double Ratchet
/// Keys"): `curr_root_key = KDF(usage_root_key || prev_root_key || K, 64)` and
/// `chain_key = KDF(usage_chain_key || prev_root_key || K, 64)`. Returns `(root, chain)`.
pub(crate) fn derive_ratchet_keys(prev_root: &[u8; KEY_LEN], k: &[u8; KEY_LEN]) -> (Key64, Key64) {
    (
        kdf64(Usage::RootKey, &[prev_root, k]),
        kdf64(Usage::ChainKey, &[prev_root, k]),
    )
}

/// The mixed shared secret `K = KDF(usage_shared_secret || K_ecdh || brace_key, 64)`
/// (otrv4.md §"Shared Secrets").
pub(crate) fn mixed_shared_secret(k_ecdh: &SharedSecret, brace: &[u8; BRACE_KEY_LEN]) -> Key64 {
    kdf64(Usage::SharedSecret, &[k_ecdh.as_bytes(), brace])
}

/// `brace_key = KDF(usage_third_brace_key || k_dh, 32)` (otrv4.md §"Shared Secrets"), with
/// `k_dh` the minimal big-endian encoding.
pub(crate) fn third_brace_key(k_dh: &SharedDh) -> BraceKey {
    let mut out = Zeroizing::new([0u8; BRACE_KEY_LEN]);
    kdf_into::<Otrv4>(Usage::ThirdBraceKey, &[k_dh.k_dh()], out.as_mut());
    out
}

/// `brace_key = KDF(usage_brace_key || brace_key, 32)`: the symmetric brace-key ratchet of
/// otrv4.md §"Rotating ECDH Keys and Brace Key as sender" / "as receiver".
pub(crate) fn next_brace_key(brace: &[u8; BRACE_KEY_LEN]) -> BraceKey {
    let mut out = Zeroizing::new([0u8; BRACE_KEY_LEN]);
    kdf_into::<Otrv4>(Usage::BraceKey, &[brace], out.as_mut());
    out
}

/// `MKenc = KDF(usage_message_key || chain_key, 64)` (otrv4.md §"Calculating Encryption and
/// MAC Keys").
pub(crate) fn message_key(chain: &[u8; KEY_LEN]) -> Key64 {
    kdf64(Usage::MessageKey, &[chain])
}

/// `MKmac = KDF(usage_MAC_key || MKenc, 64)` (otrv4.md §"Calculating Encryption and MAC Keys").
pub(crate) fn mac_key(mk_enc: &[u8; KEY_LEN]) -> Key64 {
    kdf64(Usage::MacKey, &[mk_enc])
}

/// `chain_key[j+1] = KDF(usage_next_chain_key || chain_key[j], 64)` (otrv4.md §"When you send
/// a Data Message").
pub(crate) fn next_chain_key(chain: &[u8; KEY_LEN]) -> Key64 {
    kdf64(Usage::NextChainKey, &[chain])
}

/// `Authenticator = KDF(usage_authenticator || MKmac || data_message_sections, 64)`
/// (otrv4.md §"When you send a Data Message").
pub(crate) fn authenticator(mk_mac: &[u8; KEY_LEN], sections: &[u8]) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    kdf_into::<Otrv4>(Usage::Authenticator, &[mk_mac, sections], &mut out);
    out
}

/// The extra symmetric key of one Data Message (otrv4.md §"Extra Symmetric Key"), or one
/// derived from it for a type 7 TLV. Zeroized on drop; `Debug` prints nothing.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct ExtraSymmetricKey([u8; EXTRA_SYMMETRIC_KEY_LEN]);

impl ExtraSymmetricKey {
    /// `extra_symm_key = KDF(usage_extra_symm_key || 0xFF || chain_key, 64)`
    /// (otrv4.md §"When you send a Data Message", §"Extra Symmetric Key").
    pub(crate) fn from_chain_key(chain: &[u8; KEY_LEN]) -> ExtraSymmetricKey {
        let mut out = ExtraSymmetricKey([0u8; EXTRA_SYMMETRIC_KEY_LEN]);
        kdf_into::<Otrv4>(Usage::ExtraSymmKey, &[&[0xFF], chain], &mut out.0);
        out
    }

    hazmat_pub! {
        /// Wraps stored key bytes (persistence, test vectors).
        fn from_bytes(bytes: [u8; EXTRA_SYMMETRIC_KEY_LEN]) -> ExtraSymmetricKey {
            ExtraSymmetricKey(bytes)
        }
    }

    /// The 64 key bytes.
    pub fn as_bytes(&self) -> &[u8; EXTRA_SYMMETRIC_KEY_LEN] {
        &self.0
    }

    /// The next key for a type 7 TLV: `KDF(index || context || extra_sym_key, 64)`
    /// (otrv4.md §"Extra Symmetric Key"), where `index` is the TLV's position (from 0) in
    /// the message's TLV list and `context` its 4-byte use indication.
    ///
    /// The text gives this KDF no usage ID; the one-byte `index` takes the usage-ID
    /// position: `SHAKE-256("OTRv4" || index || context || extra_sym_key, 64)`.
    pub(crate) fn derive(&self, index: u8, context: [u8; 4]) -> ExtraSymmetricKey {
        let mut out = ExtraSymmetricKey([0u8; EXTRA_SYMMETRIC_KEY_LEN]);
        shake_into(DOMAIN_OTRV4, index, &[&context, &self.0], &mut out.0);
        out
    }

    /// The keys for the type 7 TLVs of one Data Message, in order, each derived from the
    /// previous one as in the example of otrv4.md §"Extra Symmetric Key":
    /// `key_2 = KDF(index_1 || context_1 || key_1)`, `key_3 = KDF(index_2 || context_2 ||
    /// key_2)`, … with `key_1 = self`.
    ///
    /// At most [`MAX_EXTRA_SYMMETRIC_KEYS`]` - 1` keys are derived (ten in all with the base
    /// key); later type 7 TLVs, ones whose value is 1–3 bytes (no valid context), and ones
    /// at an index above 255 (which does not fit the one-byte index) get no key and end the
    /// derivation.
    pub(crate) fn derive_for_tlvs(&self, tlvs: &[Tlv]) -> Vec<TlvKey> {
        let mut out: Vec<TlvKey> = Vec::new();
        let mut current = self.clone();
        for (index, tlv) in tlvs.iter().enumerate() {
            if tlv.typ != TlvType::ExtraSymmetricKey {
                continue;
            }
            if out.len() + 1 >= MAX_EXTRA_SYMMETRIC_KEYS {
                break;
            }
            let (Ok(use_), Ok(idx)) = (tlv.extra_symmetric_key_use(), u8::try_from(index)) else {
                break;
            };
            let next = current.derive(idx, use_.context);
            current = next.clone();
            out.push(TlvKey {
                index,
                context: use_.context,
                key: next,
            });
        }
        out
    }
}

redacted_debug!(ExtraSymmetricKey);

/// A key derived for one type 7 TLV by [`ExtraSymmetricKey::derive_for_tlvs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlvKey {
    /// The TLV's position in the message's TLV list (from 0).
    pub index: usize,
    /// The TLV's 4-byte use indication.
    pub context: [u8; 4],
    /// The derived key.
    pub key: ExtraSymmetricKey,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::kdf::shake256;

    /// `SHAKE-256("OTRv4" || usage || parts, N)` by plain concatenation, as an oracle.
    fn oracle<const N: usize>(usage: u8, parts: &[&[u8]]) -> [u8; N] {
        let mut input = Vec::from(&b"OTRv4"[..]);
        input.push(usage);
        for p in parts {
            input.extend_from_slice(p);
        }
        let mut out = [0u8; N];
        shake256(&[&input], &mut out);
        out
    }

    #[test]
    fn derivations_match_the_spec_formulas() {
        let a = [7u8; 64];
        let b = [9u8; 64];
        let (root, chain) = derive_ratchet_keys(&a, &b);
        assert_eq!(*root, oracle::<64>(0x12, &[&a, &b]));
        assert_eq!(*chain, oracle::<64>(0x13, &[&a, &b]));
        assert_ne!(*root, *chain);
        assert_eq!(*first_root_key(&a), oracle::<64>(0x0B, &[&a]));
        let (r, c) = non_interactive_keys(&a);
        assert_eq!(*r, oracle::<64>(0x12, &[&a]));
        assert_eq!(*c, oracle::<64>(0x13, &[&a]));
        assert_eq!(*message_key(&a), oracle::<64>(0x15, &[&a]));
        assert_eq!(*mac_key(&a), oracle::<64>(0x16, &[&a]));
        assert_eq!(*next_chain_key(&a), oracle::<64>(0x14, &[&a]));
        assert_eq!(authenticator(&a, b"xyz"), oracle::<64>(0x18, &[&a, b"xyz"]));
        assert_eq!(
            *ExtraSymmetricKey::from_chain_key(&a).as_bytes(),
            oracle::<64>(0x17, &[&[0xFF], &a])
        );
        let brace = [3u8; 32];
        assert_eq!(*next_brace_key(&brace), oracle::<32>(0x02, &[&brace]));
    }

    #[test]
    fn tlv_keys_chain_as_in_the_spec_example() {
        // TLV 1, TLV 7 (0x00000042), TLV 2, TLV 7 (0x0000104A), TLV 3, TLV 7 (0x00000001).
        let tlvs = [
            Tlv::disconnected(),
            Tlv::extra_symmetric_key([0, 0, 0, 0x42], b"file"),
            Tlv::new(TlvType::SmpMessage1, Vec::new()),
            Tlv::extra_symmetric_key([0, 0, 0x10, 0x4A], b""),
            Tlv::new(TlvType::SmpMessage2, Vec::new()),
            Tlv::extra_symmetric_key([0, 0, 0, 1], b""),
        ];
        let k1 = ExtraSymmetricKey::from_bytes([5u8; 64]);
        let keys = k1.derive_for_tlvs(&tlvs);
        assert_eq!(keys.len(), 3);
        let k2 = oracle::<64>(0x01, &[&[0, 0, 0, 0x42], k1.as_bytes()]);
        let k3 = oracle::<64>(0x03, &[&[0, 0, 0x10, 0x4A], &k2]);
        let k4 = oracle::<64>(0x05, &[&[0, 0, 0, 1], &k3]);
        assert_eq!(keys[0].index, 1);
        assert_eq!(keys[0].context, [0, 0, 0, 0x42]);
        assert_eq!(keys[0].key.as_bytes(), &k2);
        assert_eq!((keys[1].index, keys[1].key.as_bytes()), (3, &k3));
        assert_eq!((keys[2].index, keys[2].key.as_bytes()), (5, &k4));
    }

    #[test]
    fn tlv_keys_are_capped_and_stop_at_bad_records() {
        let many: Vec<Tlv> = (0..20)
            .map(|n| Tlv::extra_symmetric_key([0, 0, 0, n], b""))
            .collect();
        let base = ExtraSymmetricKey::from_bytes([1u8; 64]);
        assert_eq!(
            base.derive_for_tlvs(&many).len(),
            MAX_EXTRA_SYMMETRIC_KEYS - 1
        );
        // An empty value means context 0; a 2-byte value is malformed and ends the walk.
        let tlvs = [
            Tlv::new(TlvType::ExtraSymmetricKey, Vec::new()),
            Tlv::new(TlvType::ExtraSymmetricKey, alloc::vec![1, 2]),
            Tlv::extra_symmetric_key([0, 0, 0, 9], b""),
        ];
        let keys = base.derive_for_tlvs(&tlvs);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].context, [0; 4]);
        assert_eq!(keys[0].key, base.derive(0, [0; 4]));
        // A type 7 record past index 255 gets no key.
        let mut far: Vec<Tlv> = (0..256).map(|_| Tlv::padding(0)).collect();
        far.push(Tlv::extra_symmetric_key([0; 4], b""));
        assert!(base.derive_for_tlvs(&far).is_empty());
        assert_eq!(alloc::format!("{base:?}"), "ExtraSymmetricKey(..)");
    }
}
