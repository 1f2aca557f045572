//! The prekey-server DAKEZ transcripts, shared secret and MACs (otrv4-prekey-server.md
//! §"Key Exchange", §"DAKE-2/3 Message", §"Prekey Publication" … §"Failure Message").
//!
//! Both sides use these functions, so the publisher and the server cannot disagree on a
//! byte of `t`, `SK` or any MAC.

use crate::crypto::ct_eq;
use crate::crypto::ecdh::SharedSecret;
use crate::crypto::ed448::{POINT_LEN, Point};
use crate::crypto::kdf::{PrekeyUsage, prekey_kdf};
use crate::instance_tag::InstanceTag;
use crate::prekey::messages::{
    CompositeIdentity, PrekeyPublication, TYPE_FAILURE, TYPE_PUBLICATION,
    TYPE_STORAGE_INFO_REQUEST, TYPE_STORAGE_STATUS, TYPE_SUCCESS,
};
use crate::prekey::proofs::ProofContext;
use crate::profile::client::ClientProfile;
use crate::wire::codec::Codec;
use crate::wire::codec::Writer;
use crate::wire::messages::MAC_LEN;
use alloc::vec::Vec;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Bytes of a DAKE-2/DAKE-3 `t`: one byte, three 64-byte hashes and two points.
pub(crate) const T_LEN: usize = 1 + 3 * 64 + 2 * POINT_LEN;

/// The shared session state `phi = DATA(publisher identity) || DATA(server identity)`
/// (§"Shared Session State"; the publisher first, as in the spec's example, libotr-ng and
/// the Go server).
pub(crate) fn phi(publisher: &[u8], server_identity: &[u8]) -> Vec<u8> {
    let mut w = Vec::with_capacity(8 + publisher.len() + server_identity.len());
    w.data(publisher).data(server_identity);
    w
}

/// Which of the two DAKE transcripts.
#[derive(Clone, Copy)]
pub(crate) enum Transcript {
    /// DAKE-2's `t` (first byte 0x00, "initiator" usages), signed by the server.
    Dake2,
    /// DAKE-3's `t` (first byte 0x01, "receiver" usages), signed by the publisher.
    Dake3,
}

/// `t = b || KDF(usage_*_client_profile, CP, 64) || KDF(usage_*_composite_identity,
/// composite identity, 64) || I || S || KDF(usage_*_composite_PHI, phi, 64)`
/// (§"DAKE-2 Message", §"DAKE-3 Message").
pub(crate) fn transcript(
    which: Transcript,
    client_profile: &ClientProfile,
    composite: &CompositeIdentity,
    i: &Point,
    s: &Point,
    phi: &[u8],
) -> Vec<u8> {
    let (first, u_cp, u_id, u_phi) = match which {
        Transcript::Dake2 => (
            0x00,
            PrekeyUsage::InitiatorClientProfile,
            PrekeyUsage::InitiatorPrekeyCompositeIdentity,
            PrekeyUsage::InitiatorPrekeyCompositePhi,
        ),
        Transcript::Dake3 => (
            0x01,
            PrekeyUsage::ReceiverClientProfile,
            PrekeyUsage::ReceiverPrekeyCompositeIdentity,
            PrekeyUsage::ReceiverPrekeyCompositePhi,
        ),
    };
    let h_cp = prekey_kdf::<64>(u_cp, &[&client_profile.encode()]);
    let h_id = prekey_kdf::<64>(u_id, &[&composite.encode()]);
    let h_phi = prekey_kdf::<64>(u_phi, &[phi]);
    let mut w = Vec::with_capacity(T_LEN);
    w.u8(first).bytes(&h_cp).bytes(&h_id);
    w.point(i);
    w.point(s);
    w.bytes(&h_phi);
    w
}

/// The keys both sides derive from `SK` after the DAKE (§"Key Exchange"):
/// `prekey_mac_k = KDF(usage_preMAC_key, SK, 64)` and the proofs' context
/// `m = KDF(usage_proof_context, SK, 64)`. `SK = KDF(usage_SK, SK_ecdh, 64)` itself is
/// erased as soon as both are derived. Zeroized on drop.
pub(crate) struct SessionKeys {
    pub(crate) mac_key: MacKey,
    pub(crate) proof_context: ProofContext,
}

impl SessionKeys {
    /// Derives the keys from `SK_ecdh`.
    pub(crate) fn derive(sk_ecdh: &SharedSecret) -> SessionKeys {
        let mut sk = prekey_kdf::<64>(PrekeyUsage::Sk, &[sk_ecdh.as_bytes()]);
        let keys = SessionKeys {
            mac_key: MacKey(prekey_kdf::<64>(PrekeyUsage::PreMacKey, &[&sk])),
            proof_context: ProofContext::from_shared_secret(&sk),
        };
        sk.zeroize();
        keys
    }
}

/// `prekey_mac_k`, and the MACs made with it. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct MacKey(pub(crate) [u8; 64]);

impl MacKey {
    /// The Prekey MAC of a publication, per docs/spec-notes.md (one formula for every
    /// combination of parts): `KDF(usage_preMAC, prekey_mac_k || 0x08 || N ||
    /// KDF(usage_prekey_message, PMs, 64) || K || [KDF(usage_client_profile, CP, 64)] || J ||
    /// [KDF(usage_prekey_profile, PP, 64)] || KDF(usage_mac_proofs, proofs, 64), 64)`.
    pub(crate) fn publication_mac(&self, p: &PrekeyPublication) -> [u8; MAC_LEN] {
        let h_pm = prekey_kdf::<64>(PrekeyUsage::PrekeyMessage, &[&p.prekey_messages_bytes()]);
        let h_cp = p
            .client_profile
            .as_ref()
            .map(|cp| prekey_kdf::<64>(PrekeyUsage::ClientProfile, &[&cp.encode()]));
        let h_pp = p
            .prekey_profile
            .as_ref()
            .map(|(pp, _)| prekey_kdf::<64>(PrekeyUsage::PrekeyProfile, &[&pp.encode()]));
        let h_proofs = prekey_kdf::<64>(PrekeyUsage::MacProofs, &[&p.proofs_bytes()]);
        let k = [u8::from(h_cp.is_some())];
        let j = [u8::from(h_pp.is_some())];
        let empty: &[u8] = &[];
        prekey_kdf::<MAC_LEN>(
            PrekeyUsage::PreMac,
            &[
                &self.0,
                &[TYPE_PUBLICATION, p.n()],
                &h_pm,
                &k,
                h_cp.as_ref().map_or(empty, |h| h.as_slice()),
                &j,
                h_pp.as_ref().map_or(empty, |h| h.as_slice()),
                &h_proofs,
            ],
        )
    }

    /// `KDF(usage_storage_info_MAC, prekey_mac_k || message type, 64)`
    /// (§"Storage Information Request Message").
    pub(crate) fn storage_info_mac(&self) -> [u8; MAC_LEN] {
        prekey_kdf::<MAC_LEN>(
            PrekeyUsage::StorageInfoMac,
            &[&self.0, &[TYPE_STORAGE_INFO_REQUEST]],
        )
    }

    /// `KDF(usage_status_MAC, prekey_mac_k || message type || receiver instance tag ||
    /// stored prekey messages number, 64)` (§"Storage Status Message"), INTs big-endian.
    pub(crate) fn status_mac(&self, receiver: InstanceTag, stored: u32) -> [u8; MAC_LEN] {
        prekey_kdf::<MAC_LEN>(
            PrekeyUsage::StatusMac,
            &[
                &self.0,
                &[TYPE_STORAGE_STATUS],
                &receiver.0.to_be_bytes(),
                &stored.to_be_bytes(),
            ],
        )
    }

    /// `KDF(usage_success_MAC, prekey_mac_k || message type || receiver instance tag, 64)`
    /// (§"Success Message").
    pub(crate) fn success_mac(&self, receiver: InstanceTag) -> [u8; MAC_LEN] {
        prekey_kdf::<MAC_LEN>(
            PrekeyUsage::SuccessMac,
            &[&self.0, &[TYPE_SUCCESS], &receiver.0.to_be_bytes()],
        )
    }

    /// `KDF(usage_failure_MAC, prekey_mac_k || message type || receiver instance tag, 64)`
    /// (§"Failure Message").
    pub(crate) fn failure_mac(&self, receiver: InstanceTag) -> [u8; MAC_LEN] {
        prekey_kdf::<MAC_LEN>(
            PrekeyUsage::FailureMac,
            &[&self.0, &[TYPE_FAILURE], &receiver.0.to_be_bytes()],
        )
    }
}

/// Constant-time comparison of a computed and a received MAC.
pub(crate) fn mac_eq(expected: &[u8; MAC_LEN], received: &[u8; MAC_LEN]) -> bool {
    ct_eq(expected, received)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::kdf::shake256;

    #[test]
    fn phi_is_two_data_fields_publisher_first() {
        assert_eq!(
            phi(b"alice@jabber.net", b"prekey.xmpp.org"),
            [
                &[0, 0, 0, 16][..],
                b"alice@jabber.net",
                &[0, 0, 0, 15],
                b"prekey.xmpp.org"
            ]
            .concat()
        );
    }

    #[test]
    fn macs_are_domain_separated_shake() {
        // Independent recomputation by concatenation for the Success and Status MACs.
        let keys = MacKey([7u8; 64]);
        let tag = InstanceTag(0x0102_0304);
        let mut expect = [0u8; 64];
        let input = [
            b"OTR-Prekey-Server".as_slice(),
            &[0x0C],
            &[7u8; 64],
            &[0x06],
            &[1, 2, 3, 4],
        ]
        .concat();
        shake256(&[&input], &mut expect);
        assert_eq!(keys.success_mac(tag), expect);
        let input = [
            b"OTR-Prekey-Server".as_slice(),
            &[0x0B],
            &[7u8; 64],
            &[0x0B],
            &[1, 2, 3, 4],
            &[0, 0, 0, 9],
        ]
        .concat();
        shake256(&[&input], &mut expect);
        assert_eq!(keys.status_mac(tag, 9), expect);
        // Success, Failure and Status MACs differ for the same key and tag.
        assert_ne!(keys.success_mac(tag), keys.failure_mac(tag));
        assert_ne!(keys.storage_info_mac(), keys.success_mac(tag));
    }
}
