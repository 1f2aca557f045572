//! Our link to a prekey server (otrv4-prekey-server.md §"Publishing Prekey Values",
//! §"Query the Prekey Server for its Storage Status", §"Retrieving Prekey Ensembles"):
//! publishing our Prekey Ensembles, keeping the server stocked, asking for a peer's.
//!
//! The secrets of what we publish go into the caller's [`PrekeyStore`], passed to each
//! call that makes or deletes them; what the server confirmed is remembered in the
//! [`Account`] (both persisted). The link itself (the server's identity and the exchange
//! under way) is not persisted.

use crate::debug::redacted_debug;
use crate::wire::codec::Codec;
use alloc::string::String;
use alloc::vec::Vec;

use crate::crypto::fingerprint::Fingerprint;
use crate::crypto::kdf::shake256;
use crate::dake::ensemble::ChosenEnsembles;
use crate::prekey::client::{Retrieved, ServerReply};
use crate::prekey::messages::{MAX_PUBLISHED_PREKEY_MESSAGES, PrekeyServerMessage};
use crate::prekey::{DEFAULT_SESSION_TTL, PrekeyClient, PrekeyError, PrekeyStore, RefillPolicy};

use super::account::{Account, PROFILE_EXTRA_VALIDITY_SECS, PUBLISHED_DIGEST_LEN};
use super::events::ConversationError;

/// Lifetime of a Prekey Profile we sign: one week, the value otrv4.md §"Prekey Profile"
/// recommends.
pub const PREKEY_PROFILE_LIFETIME_SECS: i64 = 7 * 86_400;

/// The version string of our ensemble queries: version 4 only.
const QUERY_VERSIONS: &[u8] = b"4";

/// `SHAKE-256(profile encoding, 32)`.
fn profile_digest(encoding: &[u8]) -> [u8; PUBLISHED_DIGEST_LEN] {
    let mut d = [0u8; PUBLISHED_DIGEST_LEN];
    shake256(&[encoding], &mut d);
    d
}

fn prekey_err(e: PrekeyError) -> ConversationError {
    ConversationError::Prekey(e)
}

/// Fails unless `prekeys` is the store of `account`'s instance.
fn check_store(account: &Account, prekeys: &PrekeyStore) -> Result<(), ConversationError> {
    if prekeys.owner_tag() == account.instance_tag {
        Ok(())
    } else {
        Err(ConversationError::InvalidKeys(
            "the prekey store belongs to another instance tag",
        ))
    }
}

/// What a DAKE with the prekey server is for.
#[derive(Clone, Copy, Debug)]
struct Inflight {
    started_at: i64,
    /// Digests of the profiles a publication carries.
    client_profile: Option<[u8; PUBLISHED_DIGEST_LEN]>,
    prekey_profile: Option<[u8; PUBLISHED_DIGEST_LEN]>,
}

/// Our link to one prekey server: the publisher/retriever state machine, the refill
/// policy and the exchange under way. Not persisted.
pub(crate) struct PrekeyLink {
    client: PrekeyClient,
    refill: RefillPolicy,
    inflight: Option<Inflight>,
}

redacted_debug!(PrekeyLink {
    client,
    refill,
    inflight = |s| s.inflight.is_some()
});

/// What [`super::client::Client::receive_prekey_server`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrekeyOutcome {
    /// Send this message to the prekey server (our DAKE-3).
    Send(PrekeyServerMessage),
    /// The server stored our publication (Success, MAC verified).
    Published {
        /// The ids of the published Prekey messages.
        prekey_ids: Vec<u32>,
        /// Whether our Client Profile was published.
        client_profile: bool,
        /// Whether our Prekey Profile was published.
        prekey_profile: bool,
    },
    /// The server refused our publication (Failure, MAC verified) and stored nothing: the
    /// secrets of those Prekey messages were deleted.
    PublicationFailed {
        /// The ids of the Prekey messages that were not published.
        prekey_ids: Vec<u32>,
    },
    /// The server's Storage Status (MAC verified). If the stock is below the refill
    /// policy's watermark, or a profile must be (re)published, `publish` is the DAKE-1 of
    /// the publication that tops it up: send it.
    StorageStatus {
        /// Prekey messages the server holds for this client instance.
        stored: u32,
        /// The DAKE-1 of the refill publication, if one is needed.
        publish: Option<PrekeyServerMessage>,
    },
    /// The server's Prekey Ensembles for `peer`, validated and one chosen per instance
    /// (otrv4-prekey-server.md §"Retrieving Prekey Ensembles"): pass
    /// `OfflineEnsembles::Validated(&ensembles.chosen)` to [`super::client::Client::send_offline`].
    Ensembles {
        /// The bare JID the ensembles belong to.
        peer: String,
        /// The chosen ensembles and the discarded ones.
        ensembles: ChosenEnsembles,
    },
    /// The server has no Prekey Ensembles for `peer`: the offline conversation must wait
    /// (otrv4.md §"Receiving Prekey Ensembles").
    NoEnsembles {
        /// The bare JID asked about.
        peer: String,
        /// The server's explanation, to display.
        message: String,
    },
}

impl PrekeyLink {
    /// A link to the server `identity` whose long-term key has `fingerprint`, publishing
    /// and retrieving as `own_jid` with `account`'s keys.
    /// Whether the link is to `identity` with `fingerprint` (then configuring the same
    /// server again keeps its exchanges in flight).
    pub(crate) fn serves(&self, identity: &[u8], fingerprint: &Fingerprint) -> bool {
        self.client.serves(identity, fingerprint)
    }

    pub(crate) fn set_refill(&mut self, refill: RefillPolicy) {
        self.refill = refill;
    }

    pub(crate) fn new(
        own_jid: &str,
        account: &Account,
        identity: &[u8],
        fingerprint: Fingerprint,
        refill: RefillPolicy,
    ) -> Result<PrekeyLink, ConversationError> {
        let client = PrekeyClient::new(
            own_jid.as_bytes().to_vec(),
            account.long_term.clone(),
            account.profile.clone(),
            identity.to_vec(),
            fingerprint,
        )
        .map_err(prekey_err)?;
        Ok(PrekeyLink {
            client,
            refill,
            inflight: None,
        })
    }

    /// Whether an exchange is under way (for less than the server's session lifetime).
    pub(crate) fn pending(&self, now: i64) -> bool {
        self.inflight
            .is_some_and(|i| now.saturating_sub(i.started_at) < DEFAULT_SESSION_TTL)
    }

    /// The DAKE-1 of a publication: a full batch when `stored` is `None`, else what the
    /// refill policy says for the server's `stored` count.
    pub(crate) fn publication<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        account: &mut Account,
        prekeys: &mut PrekeyStore,
        stored: Option<u32>,
        now: i64,
        rng: &mut R,
    ) -> Result<Option<PrekeyServerMessage>, ConversationError> {
        let n = match stored {
            None => self.refill.batch.min(MAX_PUBLISHED_PREKEY_MESSAGES),
            Some(s) => self.refill.prekeys_to_publish(s),
        };
        self.publish(account, prekeys, n, now, rng)
    }

    /// Prepares the profiles and starts a publication of `n` new Prekey messages (and the
    /// profiles the server does not hold yet); `None` if there is nothing to publish.
    fn publish<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        account: &mut Account,
        store: &mut PrekeyStore,
        n: usize,
        now: i64,
        rng: &mut R,
    ) -> Result<Option<PrekeyServerMessage>, ConversationError> {
        check_store(account, store)?;
        let refill = self.refill;
        account.refresh_profile(now);
        let lifetime = account.policy.profile_lifetime_secs;
        let cp_exp = account.profile.expiration();
        if refill.needs_renewal(cp_exp, now) && cp_exp < now.saturating_add(lifetime) {
            account.resign_profile(now);
        }
        account.expire_previous_profiles(now);
        store.expire_shared_prekeys(now, PROFILE_EXTRA_VALIDITY_SECS);
        let pp_due = store.current_shared_prekey().is_none_or(|s| {
            let exp = s.profile().expiration;
            refill.needs_renewal(exp, now) && exp < now.saturating_add(PREKEY_PROFILE_LIFETIME_SECS)
        });
        if pp_due {
            store.new_prekey_profile(
                rng,
                &account.long_term,
                now.saturating_add(PREKEY_PROFILE_LIFETIME_SECS),
            );
        }
        let cp_digest = profile_digest(&account.profile.encode());
        let include_cp = account.published.client_profile != Some(cp_digest);
        let pp_digest = store
            .current_shared_prekey()
            .map(|s| profile_digest(&s.profile().encode()));
        let include_pp = pp_digest.is_some() && account.published.prekey_profile != pp_digest;
        if n == 0 && !include_cp && !include_pp {
            return Ok(None);
        }
        let ids: Vec<u32> = if n == 0 {
            Vec::new()
        } else {
            store
                .generate_prekey_messages(rng, n, now)
                .map_err(prekey_err)?
                .iter()
                .map(|m| m.id)
                .collect()
        };
        let started = store
            .publish_items(&ids, include_pp)
            .map(|items| {
                if include_cp {
                    items.with_client_profile(account.profile.clone())
                } else {
                    items
                }
            })
            .and_then(|items| {
                self.client.set_client_profile(account.profile.clone())?;
                self.client.publish(rng, items)
            });
        let dake1 = match started {
            Ok(d) => d,
            Err(e) => {
                for id in ids {
                    drop(store.remove(id));
                }
                return Err(prekey_err(e));
            }
        };
        self.inflight = Some(Inflight {
            started_at: now,
            client_profile: include_cp.then_some(cp_digest),
            prekey_profile: if include_pp { pp_digest } else { None },
        });
        Ok(Some(PrekeyServerMessage::Dake1(dake1)))
    }

    /// The DAKE-1 of a storage information request.
    pub(crate) fn storage_status<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        account: &mut Account,
        now: i64,
        rng: &mut R,
    ) -> Result<PrekeyServerMessage, ConversationError> {
        account.refresh_profile(now);
        self.client
            .set_client_profile(account.profile.clone())
            .map_err(prekey_err)?;
        let dake1 = self
            .client
            .request_storage_status(rng)
            .map_err(prekey_err)?;
        self.inflight = Some(Inflight {
            started_at: now,
            client_profile: None,
            prekey_profile: None,
        });
        account.published.last_status_query = Some(now);
        Ok(PrekeyServerMessage::Dake1(dake1))
    }

    /// The refill policy's schedule: a storage status request, or a publication of our
    /// profiles, or nothing.
    pub(crate) fn maintenance<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        account: &mut Account,
        prekeys: &mut PrekeyStore,
        now: i64,
        rng: &mut R,
    ) -> Result<Option<PrekeyServerMessage>, ConversationError> {
        if self.pending(now) {
            return Ok(None);
        }
        if self
            .refill
            .should_query_status(account.published.last_status_query, now)
        {
            return self.storage_status(account, now, rng).map(Some);
        }
        self.publish(account, prekeys, 0, now, rng)
    }

    /// A Prekey Ensemble Query Retrieval message for `peer`'s ensembles (version 4).
    pub(crate) fn ensemble_query(&mut self, peer: &str) -> PrekeyServerMessage {
        PrekeyServerMessage::EnsembleQuery(
            self.client.ensemble_query(peer.as_bytes(), QUERY_VERSIONS),
        )
    }

    /// A message from the prekey server; see [`super::client::Client::receive_prekey_server`].
    pub(crate) fn receive<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        account: &mut Account,
        prekeys: &mut PrekeyStore,
        msg: &PrekeyServerMessage,
        now: i64,
        rng: &mut R,
    ) -> Result<PrekeyOutcome, ConversationError> {
        match msg {
            PrekeyServerMessage::Dake2(m) => {
                let d3 = self.client.receive_dake2(rng, m).map_err(prekey_err)?;
                Ok(PrekeyOutcome::Send(PrekeyServerMessage::Dake3(d3)))
            }
            PrekeyServerMessage::Success(_)
            | PrekeyServerMessage::Failure(_)
            | PrekeyServerMessage::StorageStatus(_) => {
                let reply = self.client.receive_reply(msg).map_err(prekey_err)?;
                let inflight = self.inflight.take();
                match reply {
                    ServerReply::Published {
                        prekey_ids,
                        client_profile,
                        prekey_profile,
                    } => {
                        if let Some(i) = inflight {
                            if client_profile && i.client_profile.is_some() {
                                account.published.client_profile = i.client_profile;
                            }
                            if prekey_profile && i.prekey_profile.is_some() {
                                account.published.prekey_profile = i.prekey_profile;
                            }
                        }
                        Ok(PrekeyOutcome::Published {
                            prekey_ids,
                            client_profile,
                            prekey_profile,
                        })
                    }
                    ServerReply::Failed { prekey_ids } => {
                        for id in &prekey_ids {
                            drop(prekeys.remove(*id));
                        }
                        Ok(PrekeyOutcome::PublicationFailed { prekey_ids })
                    }
                    ServerReply::StorageStatus { stored } => {
                        let n = self.refill.prekeys_to_publish(stored);
                        let publish = self.publish(account, prekeys, n, now, rng)?;
                        Ok(PrekeyOutcome::StorageStatus { stored, publish })
                    }
                }
            }
            PrekeyServerMessage::EnsembleRetrieval(_)
            | PrekeyServerMessage::NoPrekeyEnsembles(_) => {
                match self
                    .client
                    .receive_ensembles(msg, now)
                    .map_err(prekey_err)?
                {
                    Retrieved::Ensembles {
                        identity,
                        ensembles,
                    } => Ok(PrekeyOutcome::Ensembles {
                        peer: String::from_utf8_lossy(&identity).into_owned(),
                        ensembles,
                    }),
                    Retrieved::NoEnsembles { identity, message } => {
                        Ok(PrekeyOutcome::NoEnsembles {
                            peer: String::from_utf8_lossy(&identity).into_owned(),
                            message: String::from_utf8_lossy(&message).into_owned(),
                        })
                    }
                }
            }
            _ => Err(prekey_err(PrekeyError::UnexpectedMessage)),
        }
    }
}
