//! Deniable authenticated key exchanges (otrv4.md §"Interactive Deniable Authenticated Key
//! Exchange (DAKE)"): shared session state `phi`, the RSig transcripts, `K` and the SSID.
//!
//! [`interactive`] is the DAKEZ state machine (Identity → Auth-R → Auth-I) as typestates:
//! each state is its own struct and every transition consumes it. This module holds what
//! both DAKEs share: the errors, the mixed shared secret `K` and the [`Ssid`].

pub mod ensemble;
pub mod interactive;
pub mod non_interactive;
pub mod phi;
pub mod transcript;

use crate::debug::redacted_debug;
use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::CryptoError;
use crate::crypto::dh::SharedDh;
use crate::crypto::ecdh::SharedSecret;
use crate::crypto::kdf::{Usage, kdf};
use crate::instance_tag::InstanceTag;
use crate::profile::ProfileError;

pub use interactive::{
    DakeComplete, LocalParty, Role, SimultaneousIdentity, WaitingAuthI, WaitingAuthR,
    receive_identity, start,
};
pub use phi::PhiPrime;
// For the test vectors and benches (`otr4::hazmat`).
#[cfg(feature = "hazmat")]
pub use {
    interactive::{RatchetInit, tie_break_hash},
    phi::{PhiParty, phi},
};

/// Bytes in the mixed shared secret `K`.
pub const MIXED_SECRET_LEN: usize = 64;
/// Bytes in the brace key.
pub const BRACE_KEY_LEN: usize = 32;
/// Bytes in the SSID.
pub const SSID_LEN: usize = 8;

/// Why a DAKE message was rejected (otrv4.md §"Receiving an Identity Message",
/// §"Receiving an Auth-R Message", §"Receiving an Auth-I Message"). In every case the spec
/// says to ignore the message; the state machine hands the unchanged state back in
/// `Rejected`.
///
/// Invalid points and DH values cannot reach this layer: `crate::crypto::ed448::Point`
/// and `crate::crypto::dh::DhPublic` only exist after the strict checks, so a message
/// carrying them is rejected by its decoder with a [`crate::wire::codec::DecodeError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DakeError {
    /// The peer's Client Profile failed validation (signature, owner tag vs. the message's
    /// sender tag, expiry, versions).
    #[error("client profile rejected: {0}")]
    Profile(#[from] ProfileError),
    /// The message's receiver instance tag is not our sender instance tag (or, for an
    /// Identity message outside `WAITING_AUTH_I`, neither 0 nor ours).
    #[error("receiver instance tag {found} is not ours ({expected})")]
    WrongReceiverTag {
        /// Our instance tag.
        expected: InstanceTag,
        /// The tag in the message.
        found: InstanceTag,
    },
    /// The message's sender instance tag is not the one this DAKE is running with.
    #[error("sender instance tag {found} is not the peer's ({expected})")]
    WrongSenderTag {
        /// The peer's instance tag as established earlier in the DAKE.
        expected: InstanceTag,
        /// The tag in the message.
        found: InstanceTag,
    },
    /// The ring signature `sigma` did not verify: wrong signer, wrong transcript `t`
    /// (different profiles, ephemerals or `phi`), or a forged value.
    #[error("ring signature does not verify")]
    BadRingSignature,
    /// The ECDH shared secret was the identity (otrv4.md §"Generating Shared Secrets").
    #[error("ECDH shared secret is zero")]
    ZeroEcdhSecret,
    /// A simultaneous Identity message carries the very DH value `B` we sent: our own
    /// Identity message reflected back. Neither side can win the tie-break.
    #[error("received Identity message carries our own DH value")]
    ReflectedIdentity,
    /// Our long-term key pair does not match the `H` in our own Client Profile.
    #[error("our long-term key does not match our client profile")]
    OwnProfileKeyMismatch,
    /// Producing our ring signature failed (e.g. the peer's forging key equals our `H`, so
    /// our key would appear twice in the ring).
    #[error("cannot sign: {0}")]
    Signing(CryptoError),
}

/// A rejected message: the error, and the state the transition was called on, unchanged,
/// as the spec requires ("Ignore the message. Stay in state …").
#[derive(Debug)]
pub struct Rejected<S> {
    /// The state to stay in.
    pub state: S,
    /// Why the message was ignored.
    pub error: DakeError,
}

impl<S> Rejected<S> {
    /// Splits into the unchanged state and the error.
    pub fn into_parts(self) -> (S, DakeError) {
        (self.state, self.error)
    }
}

impl<S> From<Rejected<S>> for DakeError {
    fn from(r: Rejected<S>) -> DakeError {
        r.error
    }
}

impl<S> fmt::Display for Rejected<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message ignored: {}", self.error)
    }
}

impl<S: fmt::Debug> core::error::Error for Rejected<S> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// The mixed shared secret `K = KDF(usage_shared_secret || K_ecdh || brace_key, 64)`
/// (otrv4.md §"Shared Secrets"). Zeroized on drop; `Debug` prints nothing.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MixedSecret([u8; MIXED_SECRET_LEN]);

impl MixedSecret {
    /// `K` from the ECDH and DH shared secrets: `brace_key = KDF(usage_third_brace_key ||
    /// k_dh, 32)`, then `K = KDF(usage_shared_secret || K_ecdh || brace_key, 64)`; the
    /// brace key is wiped (otrv4.md §"Interactive DAKE Overview").
    pub fn derive(k_ecdh: &SharedSecret, k_dh: &SharedDh) -> MixedSecret {
        let brace_key: Zeroizing<[u8; BRACE_KEY_LEN]> =
            Zeroizing::new(kdf(Usage::ThirdBraceKey, &[k_dh.k_dh()]));
        MixedSecret(kdf(
            Usage::SharedSecret,
            &[k_ecdh.as_bytes(), brace_key.as_ref()],
        ))
    }

    /// Wraps 64 raw bytes (for persistence and test vectors).
    pub fn from_bytes(bytes: [u8; MIXED_SECRET_LEN]) -> MixedSecret {
        MixedSecret(bytes)
    }

    /// The 64 bytes of `K`.
    pub fn as_bytes(&self) -> &[u8; MIXED_SECRET_LEN] {
        &self.0
    }

    /// `SSID = HWC(usage_SSID || K, 8)` (otrv4.md §"Secure Session ID").
    pub fn ssid(&self) -> Ssid {
        Ssid(kdf(Usage::Ssid, &[&self.0]))
    }
}

redacted_debug!(MixedSecret);

/// The 8-byte secure session ID (otrv4.md §"Secure Session ID"). `Display` shows it as two
/// 4-byte big-endian values in `%08x` format, separated by a space.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ssid(pub [u8; SSID_LEN]);

impl Ssid {
    /// The two 4-byte big-endian halves, in display order.
    pub fn halves(&self) -> [u32; 2] {
        let [a, b, c, d, e, f, g, h] = self.0;
        [
            u32::from_be_bytes([a, b, c, d]),
            u32::from_be_bytes([e, f, g, h]),
        ]
    }
}

impl fmt::Display for Ssid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b] = self.halves();
        write!(f, "{a:08x} {b:08x}")
    }
}

redacted_debug!(Ssid(|s| format_args!("{s}")));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::dh::DhKeyPair;
    use crate::crypto::ecdh::ecdh;
    use crate::crypto::ed448::KeyPair;
    use crate::crypto::kdf::shake_into;
    use alloc::format;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn mixed_secret_follows_the_spec_formula() {
        let mut rng = StdRng::seed_from_u64(1);
        let (x, y) = (KeyPair::generate(&mut rng), KeyPair::generate(&mut rng));
        let (a, b) = (DhKeyPair::generate(&mut rng), DhKeyPair::generate(&mut rng));
        let k_ecdh = ecdh(x.secret(), y.public()).unwrap();
        let k_dh = a.shared_secret(b.public());
        let k = MixedSecret::derive(&k_ecdh, &k_dh);

        // Independent recomputation straight from SHAKE-256("OTRv4" || usage || …).
        let mut brace = [0u8; 32];
        shake_into(b"OTRv4", 0x01, &[k_dh.k_dh()], &mut brace);
        let mut expect = [0u8; 64];
        shake_into(b"OTRv4", 0x03, &[k_ecdh.as_bytes(), &brace], &mut expect);
        assert_eq!(k.as_bytes(), &expect);
        let mut ssid = [0u8; 8];
        shake_into(b"OTRv4", 0x04, &[&expect], &mut ssid);
        assert_eq!(k.ssid().0, ssid);

        // Both sides get the same K.
        let k2 = MixedSecret::derive(
            &ecdh(y.secret(), x.public()).unwrap(),
            &b.shared_secret(a.public()),
        );
        assert_eq!(k.as_bytes(), k2.as_bytes());
        assert_eq!(format!("{k:?}"), "MixedSecret(..)");
    }

    #[test]
    fn ssid_displays_as_two_big_endian_halves() {
        let s = Ssid([0x01, 0x02, 0x03, 0x04, 0xaa, 0xbb, 0xcc, 0x0d]);
        assert_eq!(s.halves(), [0x0102_0304, 0xaabb_cc0d]);
        assert_eq!(format!("{s}"), "01020304 aabbcc0d");
        assert_eq!(format!("{}", Ssid([0; 8])), "00000000 00000000");
    }
}
