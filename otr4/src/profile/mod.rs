//! Client Profiles and Prekey Profiles (otrv4.md §"Client Profile", §"Prekey Profile"):
//! build, sign, serialize, parse and validate in the spec's order against an injected `now`.

pub mod client;
pub mod prekey;

use crate::instance_tag::InstanceTag;
use crate::wire::codec::DecodeError;

/// Why a profile was rejected. Parsing problems (duplicate, unknown or missing fields,
/// invalid points) surface as [`ProfileError::Decode`]; every other variant is one step of
/// otrv4.md §"Validating a Client Profile" / §"Validating a Prekey Profile".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The profile bytes could not be parsed.
    #[error("profile could not be decoded: {0}")]
    Decode(#[from] DecodeError),
    /// Client Profile validation step 1: the signature field is empty (all zero bytes).
    #[error("profile signature is empty")]
    EmptySignature,
    /// Validation step "signature is valid": the EdDSA signature did not verify.
    #[error("profile signature does not verify")]
    BadSignature,
    /// The owner instance tag differs from the sender instance tag of the carrying message.
    #[error("profile owner instance tag {profile} differs from sender instance tag {sender}")]
    InstanceTagMismatch {
        /// The tag inside the profile.
        profile: InstanceTag,
        /// The sender tag of the message the profile arrived in.
        sender: InstanceTag,
    },
    /// The profile's expiration is not after `now`.
    #[error("profile expired at {expiration} (now {now})")]
    Expired {
        /// The expiration in the profile (seconds since the Unix epoch).
        expiration: i64,
        /// The time validation was run at.
        now: i64,
    },
    /// The `Versions` field of a Client Profile does not contain "4".
    #[error("profile versions do not include 4")]
    MissingVersion4,
    /// The `Versions` field of a Client Profile contains "1" or "2"
    /// (otrv4.md §"Establishing Versions": such version strings are invalid).
    #[error("profile versions contain the obsolete version {0:?}")]
    ObsoleteVersion(char),
}
