//! KDF, HWC and HCMAC (otrv4.md §"Key Derivation Function, Hash Function and MAC Function")
//! and the prekey server's KDF (otrv4-prekey-server.md §"Key Derivation Functions").
//!
//! All are `SHAKE-256(domain || usage_ID || values, size)`; only the domain and the usage
//! table differ. Usage IDs are enums so a value from one table cannot be used in the other.

use shake::Shake256;
use shake::digest::{ExtendableOutput, Update, XofReader};

/// Domain separator of the OTRv4 functions.
pub const DOMAIN_OTRV4: &[u8] = b"OTRv4";
/// Domain separator of the prekey-server functions.
pub const DOMAIN_PREKEY_SERVER: &[u8] = b"OTR-Prekey-Server";

/// Usage IDs of otrv4.md §"Key Derivation Function, Hash Function and MAC Function".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Usage {
    Fingerprint = 0x00,
    ThirdBraceKey = 0x01,
    BraceKey = 0x02,
    SharedSecret = 0x03,
    Ssid = 0x04,
    AuthRBobClientProfile = 0x05,
    AuthRAliceClientProfile = 0x06,
    AuthRPhi = 0x07,
    AuthIBobClientProfile = 0x08,
    AuthIAliceClientProfile = 0x09,
    AuthIPhi = 0x0A,
    FirstRootKey = 0x0B,
    TmpKey = 0x0C,
    AuthMacKey = 0x0D,
    NonIntAuthBobClientProfile = 0x0E,
    NonIntAuthAliceClientProfile = 0x0F,
    NonIntAuthPhi = 0x10,
    AuthMac = 0x11,
    RootKey = 0x12,
    ChainKey = 0x13,
    NextChainKey = 0x14,
    MessageKey = 0x15,
    MacKey = 0x16,
    ExtraSymmKey = 0x17,
    Authenticator = 0x18,
    SmpSecret = 0x19,
    Auth = 0x1A,
}

impl Usage {
    /// Every usage ID, in table order (for test vectors).
    pub const ALL: [Usage; 27] = [
        Usage::Fingerprint,
        Usage::ThirdBraceKey,
        Usage::BraceKey,
        Usage::SharedSecret,
        Usage::Ssid,
        Usage::AuthRBobClientProfile,
        Usage::AuthRAliceClientProfile,
        Usage::AuthRPhi,
        Usage::AuthIBobClientProfile,
        Usage::AuthIAliceClientProfile,
        Usage::AuthIPhi,
        Usage::FirstRootKey,
        Usage::TmpKey,
        Usage::AuthMacKey,
        Usage::NonIntAuthBobClientProfile,
        Usage::NonIntAuthAliceClientProfile,
        Usage::NonIntAuthPhi,
        Usage::AuthMac,
        Usage::RootKey,
        Usage::ChainKey,
        Usage::NextChainKey,
        Usage::MessageKey,
        Usage::MacKey,
        Usage::ExtraSymmKey,
        Usage::Authenticator,
        Usage::SmpSecret,
        Usage::Auth,
    ];
}

/// Usage IDs of otrv4-prekey-server.md §"Key Derivation Functions".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum PrekeyUsage {
    Fingerprint = 0x00,
    Sk = 0x01,
    InitiatorClientProfile = 0x02,
    InitiatorPrekeyCompositeIdentity = 0x03,
    InitiatorPrekeyCompositePhi = 0x04,
    ReceiverClientProfile = 0x05,
    ReceiverPrekeyCompositeIdentity = 0x06,
    ReceiverPrekeyCompositePhi = 0x07,
    PreMacKey = 0x08,
    PreMac = 0x09,
    StorageInfoMac = 0x0A,
    StatusMac = 0x0B,
    SuccessMac = 0x0C,
    FailureMac = 0x0D,
    PrekeyMessage = 0x0E,
    ClientProfile = 0x0F,
    PrekeyProfile = 0x10,
    Auth = 0x11,
    ProofContext = 0x12,
    ProofMessageEcdh = 0x13,
    ProofMessageDh = 0x14,
    ProofSharedEcdh = 0x15,
    MacProofs = 0x16,
    ProofCLambda = 0x17,
}

impl PrekeyUsage {
    /// Every usage ID, in table order (for test vectors).
    pub const ALL: [PrekeyUsage; 24] = [
        PrekeyUsage::Fingerprint,
        PrekeyUsage::Sk,
        PrekeyUsage::InitiatorClientProfile,
        PrekeyUsage::InitiatorPrekeyCompositeIdentity,
        PrekeyUsage::InitiatorPrekeyCompositePhi,
        PrekeyUsage::ReceiverClientProfile,
        PrekeyUsage::ReceiverPrekeyCompositeIdentity,
        PrekeyUsage::ReceiverPrekeyCompositePhi,
        PrekeyUsage::PreMacKey,
        PrekeyUsage::PreMac,
        PrekeyUsage::StorageInfoMac,
        PrekeyUsage::StatusMac,
        PrekeyUsage::SuccessMac,
        PrekeyUsage::FailureMac,
        PrekeyUsage::PrekeyMessage,
        PrekeyUsage::ClientProfile,
        PrekeyUsage::PrekeyProfile,
        PrekeyUsage::Auth,
        PrekeyUsage::ProofContext,
        PrekeyUsage::ProofMessageEcdh,
        PrekeyUsage::ProofMessageDh,
        PrekeyUsage::ProofSharedEcdh,
        PrekeyUsage::MacProofs,
        PrekeyUsage::ProofCLambda,
    ];
}

/// A KDF domain: the prefix and the usage table that go together.
pub trait Domain: Copy {
    /// The domain-separation prefix.
    const PREFIX: &'static [u8];
    /// The usage-ID type of this domain.
    type Usage: Copy + Into<u8>;
    /// This domain's `usage_auth`, hashed into the ring signature's challenge
    /// (otrv4.md §"Ring Signature Authentication", otrv4-prekey-server.md §"DAKE-2 Message").
    const AUTH: Self::Usage;
}

/// The OTRv4 domain ("OTRv4", [`Usage`]).
#[derive(Debug, Clone, Copy)]
pub struct Otrv4;
/// The prekey-server domain ("OTR-Prekey-Server", [`PrekeyUsage`]).
#[derive(Debug, Clone, Copy)]
pub struct PrekeyServer;

impl Domain for Otrv4 {
    const PREFIX: &'static [u8] = DOMAIN_OTRV4;
    type Usage = Usage;
    const AUTH: Usage = Usage::Auth;
}
impl Domain for PrekeyServer {
    const PREFIX: &'static [u8] = DOMAIN_PREKEY_SERVER;
    type Usage = PrekeyUsage;
    const AUTH: PrekeyUsage = PrekeyUsage::Auth;
}

impl From<Usage> for u8 {
    fn from(u: Usage) -> u8 {
        u as u8
    }
}
impl From<PrekeyUsage> for u8 {
    fn from(u: PrekeyUsage) -> u8 {
        u as u8
    }
}

/// `SHAKE-256(prefix || usage || parts[0] || parts[1] || …)` squeezed into `out`.
pub fn shake_into(prefix: &[u8], usage: u8, parts: &[&[u8]], out: &mut [u8]) {
    let mut h = Shake256::default();
    h.update(prefix);
    h.update(&[usage]);
    for p in parts {
        h.update(p);
    }
    h.finalize_xof().read(out);
}

/// Plain `SHAKE-256(input, out.len())` (RFC 8032's hash).
pub fn shake256(parts: &[&[u8]], out: &mut [u8]) {
    let mut h = Shake256::default();
    for p in parts {
        h.update(p);
    }
    h.finalize_xof().read(out);
}

/// `KDF(usage || parts, N)` in the OTRv4 domain. HWC and HCMAC are the same function.
pub fn kdf<const N: usize>(usage: Usage, parts: &[&[u8]]) -> [u8; N] {
    let mut out = [0u8; N];
    shake_into(DOMAIN_OTRV4, usage as u8, parts, &mut out);
    out
}

/// `KDF(usage, parts, N)` in the prekey-server domain.
pub fn prekey_kdf<const N: usize>(usage: PrekeyUsage, parts: &[&[u8]]) -> [u8; N] {
    let mut out = [0u8; N];
    shake_into(DOMAIN_PREKEY_SERVER, usage as u8, parts, &mut out);
    out
}

/// `KDF` in domain `D` into a caller buffer of any length.
pub fn kdf_into<D: Domain>(usage: D::Usage, parts: &[&[u8]], out: &mut [u8]) {
    shake_into(D::PREFIX, usage.into(), parts, out);
}

/// HWC is KDF under another name (otrv4.md §"Key Derivation Function…").
pub use kdf as hwc;
/// HCMAC is KDF under another name (otrv4.md §"Key Derivation Function…").
pub use kdf as hcmac;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdf_is_shake256_of_domain_usage_values() {
        // SHAKE-256("OTRv4" || 0x00 || "abc", 8) computed independently by concatenation.
        let mut expected = [0u8; 8];
        shake256(&[b"OTRv4\x00abc"], &mut expected);
        assert_eq!(kdf::<8>(Usage::Fingerprint, &[b"a", b"bc"]), expected);
        let mut expected = [0u8; 8];
        shake256(&[b"OTR-Prekey-Server\x17abc"], &mut expected);
        assert_eq!(
            prekey_kdf::<8>(PrekeyUsage::ProofCLambda, &[b"abc"]),
            expected
        );
    }

    #[test]
    fn usage_tables_are_dense_and_ordered() {
        for (i, u) in Usage::ALL.iter().enumerate() {
            assert_eq!(*u as u8 as usize, i);
        }
        for (i, u) in PrekeyUsage::ALL.iter().enumerate() {
            assert_eq!(*u as u8 as usize, i);
        }
    }

    #[test]
    fn shake256_empty_known_answer() {
        // FIPS 202: SHAKE256("") first 8 bytes = 46b9dd2b0ba88d13.
        let mut out = [0u8; 8];
        shake256(&[], &mut out);
        assert_eq!(out, [0x46, 0xb9, 0xdd, 0x2b, 0x0b, 0xa8, 0x8d, 0x13]);
    }
}
