//! The retriever's side of Prekey Ensembles: validation (otrv4.md §"Validating Prekey
//! Ensembles") and the choice among received ones (§"Receiving Prekey Ensembles").
//!
//! A [`ValidatedEnsemble`] is what the non-interactive DAKE's sender starts from.

use crate::crypto::fingerprint::Fingerprint;
use crate::instance_tag::InstanceTag;
use crate::profile::ProfileError;
use crate::profile::client::{ClientProfile, ValidatedClientProfile};
use crate::profile::prekey::{PrekeyProfile, ValidatedPrekeyProfile};
use crate::wire::messages::{PrekeyEnsemble, PrekeyMessage};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Why a received Prekey Ensemble was discarded (otrv4.md §"Validating Prekey Ensembles",
/// §"Receiving Prekey Ensembles").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnsembleError {
    /// Step 1: the Client Profile, Prekey Profile and Prekey message owner tags differ.
    #[error("instance tags of the ensemble's parts differ")]
    InstanceTagMismatch,
    /// Step 2: the Client Profile is invalid.
    #[error("invalid client profile: {0}")]
    ClientProfile(ProfileError),
    /// Steps 3 and 4: the Prekey Profile is invalid or not signed by the Client Profile's key.
    #[error("invalid prekey profile: {0}")]
    PrekeyProfile(ProfileError),
    /// Steps 6 and 7: the Prekey message's version (4) is not in the Client Profile.
    #[error("prekey message version not offered by the client profile")]
    UnsupportedVersion,
    /// The same Prekey message (owner tag and id) arrived twice.
    #[error("duplicate prekey ensemble")]
    Duplicate,
}

/// A Prekey Ensemble that passed otrv4.md §"Validating Prekey Ensembles" at some `now`:
/// what the non-interactive DAKE's sender needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedEnsemble {
    client_profile: ValidatedClientProfile,
    prekey_profile: ValidatedPrekeyProfile,
    prekey_message: PrekeyMessage,
}

impl ValidatedEnsemble {
    hazmat_pub! {
        /// Validates one ensemble in the spec's order:
        /// 1. the three owner tags are equal — [`EnsembleError::InstanceTagMismatch`];
        /// 2. the Client Profile is valid for that tag at `now` — [`EnsembleError::ClientProfile`];
        /// 3. and 4. the Prekey Profile is valid for that tag at `now` and signed by the Client
        ///    Profile's long-term key — [`EnsembleError::PrekeyProfile`];
        /// 5. the Prekey message's `Y` and `B` are valid: enforced when it was decoded;
        /// 6. and 7. the Prekey message's version (0x0004, the only one decoded) is in the
        ///    Client Profile's versions, and we support it — [`EnsembleError::UnsupportedVersion`].
        fn validate(e: &PrekeyEnsemble, now: i64) -> Result<ValidatedEnsemble, EnsembleError> {
            let tag = e.prekey_message.owner_tag;
            if e.client_profile.owner_tag() != tag || e.prekey_profile.owner_tag != tag {
                return Err(EnsembleError::InstanceTagMismatch);
            }
            let client_profile = e
                .client_profile
                .validate(tag, now)
                .map_err(EnsembleError::ClientProfile)?;
            let prekey_profile = e
                .prekey_profile
                .validate(tag, now, e.client_profile.public_key())
                .map_err(EnsembleError::PrekeyProfile)?;
            if !e.client_profile.supports(b'4') {
                return Err(EnsembleError::UnsupportedVersion);
            }
            Ok(ValidatedEnsemble {
                client_profile,
                prekey_profile,
                prekey_message: e.prekey_message.clone(),
            })
        }
    }

    /// The owner's instance tag (equal in all three parts).
    pub fn owner_tag(&self) -> InstanceTag {
        self.prekey_message.owner_tag
    }

    /// The fingerprint of the ensemble's Client Profile (its long-term and forging keys),
    /// to compare with the key pinned for [`ValidatedEnsemble::owner_tag`] before using it.
    pub fn fingerprint(&self) -> Fingerprint {
        self.client_profile().fingerprint()
    }

    /// The validated Client Profile.
    pub(crate) fn client_profile(&self) -> &ClientProfile {
        self.client_profile.profile()
    }

    /// The Client Profile with its validation proof.
    pub(crate) fn validated_client_profile(&self) -> &ValidatedClientProfile {
        &self.client_profile
    }

    hazmat_pub! {
        /// The validated Prekey Profile.
        fn prekey_profile(&self) -> &PrekeyProfile {
            self.prekey_profile.profile()
        }
    }

    hazmat_pub! {
        /// The Prekey message.
        fn prekey_message(&self) -> &PrekeyMessage {
            &self.prekey_message
        }
    }

    /// When the ensemble stops being usable: the earlier of the two profile expirations.
    pub(crate) fn expiry(&self) -> i64 {
        self.client_profile
            .expiration()
            .min(self.prekey_profile.expiration)
    }
}

/// The result of `choose_ensembles`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChosenEnsembles {
    /// One valid ensemble per owner instance tag (the one with the latest
    /// `ValidatedEnsemble::expiry`), ordered by tag.
    pub chosen: Vec<ValidatedEnsemble>,
    /// The discarded ensembles: their index in the input and why.
    pub discarded: Vec<(usize, EnsembleError)>,
}

/// Validates received ensembles and chooses among them (otrv4-prekey-server.md
/// §"Retrieving Prekey Ensembles", otrv4.md §"Receiving Prekey Ensembles"): discards the
/// invalid ones and duplicates (same owner tag and Prekey message id as an earlier one),
/// groups the rest by owner instance tag and keeps the one with the latest expiry per
/// group (the earliest of equal expiries).
pub fn choose_ensembles(ensembles: &[PrekeyEnsemble], now: i64) -> ChosenEnsembles {
    let mut out = ChosenEnsembles::default();
    let mut seen: Vec<(InstanceTag, u32)> = Vec::new();
    let mut best: BTreeMap<InstanceTag, ValidatedEnsemble> = BTreeMap::new();
    for (idx, e) in ensembles.iter().enumerate() {
        let key = (e.prekey_message.owner_tag, e.prekey_message.id);
        if seen.contains(&key) {
            out.discarded.push((idx, EnsembleError::Duplicate));
            continue;
        }
        seen.push(key);
        match ValidatedEnsemble::validate(e, now) {
            Ok(v) => {
                let replace = best
                    .get(&v.owner_tag())
                    .is_none_or(|b| v.expiry() > b.expiry());
                if replace {
                    best.insert(v.owner_tag(), v);
                }
            }
            Err(err) => out.discarded.push((idx, err)),
        }
    }
    out.chosen = best.into_values().collect();
    out
}
