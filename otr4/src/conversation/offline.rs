//! The offline start (otrv4.md §"Sending a Data Message to an offline participant",
//! §"Non-Interactive DAKE Overview", Alice): the Prekey Ensembles a peer published are
//! checked and one is chosen per instance; to each, a Non-Interactive-Auth message and then
//! the data messages on the initial sending chain. (Receiving one is in `incoming`;
//! publishing ours is in `prekey_link`.)

use alloc::vec::Vec;

use crate::InstanceTag;
use crate::dake::ensemble::choose_ensembles;
use crate::dake::ensemble::{EnsembleError, ValidatedEnsemble};
use crate::dake::non_interactive::send_non_interactive_auth;
use crate::prekey::messages::EnsembleRetrieval;
use crate::wire::messages::PrekeyEnsemble;

use super::context::{Ctx, Queued};
use super::events::{ConversationError, Event, Warning};
use super::peer::Peer;

/// The Prekey Ensembles [`super::client::Client::send_offline`] uses.
#[derive(Debug, Clone, Copy)]
pub enum OfflineEnsembles<'a> {
    /// A Prekey Ensemble Retrieval message from the server: its receiver tag must be ours
    /// and its identity the peer's bare JID; the ensembles are validated at `now` and one
    /// is chosen per instance tag (`crate::dake::ensemble::choose_ensembles`).
    Retrieval(&'a EnsembleRetrieval),
    /// Ensembles already validated (e.g. [`super::prekey_link::PrekeyOutcome::Ensembles`]);
    /// each is validated again at `now` and only the first per instance tag is used.
    Validated(&'a [ValidatedEnsemble]),
}

/// The ensembles to use, one per instance tag, valid at `now`; discarded ones are
/// reported as warnings.
pub(crate) fn usable_ensembles(
    ensembles: OfflineEnsembles<'_>,
    peer: &str,
    our_tag: InstanceTag,
    now: i64,
    ctx_warn: &mut dyn FnMut(Warning),
) -> Result<Vec<ValidatedEnsemble>, ConversationError> {
    match ensembles {
        OfflineEnsembles::Retrieval(r) => {
            if r.receiver_tag != our_tag || r.identity.as_slice() != peer.as_bytes() {
                return Err(ConversationError::EnsemblesNotForPeer);
            }
            let chosen = choose_ensembles(r.ensembles(), now);
            for (_, e) in chosen.discarded {
                ctx_warn(Warning::EnsembleDiscarded(e));
            }
            Ok(chosen.chosen)
        }
        OfflineEnsembles::Validated(list) => {
            let mut out: Vec<ValidatedEnsemble> = Vec::new();
            for e in list {
                if out.iter().any(|o| o.owner_tag() == e.owner_tag()) {
                    ctx_warn(Warning::EnsembleDiscarded(EnsembleError::Duplicate));
                    continue;
                }
                let raw = PrekeyEnsemble {
                    client_profile: e.client_profile().clone(),
                    prekey_profile: e.prekey_profile().clone(),
                    prekey_message: e.prekey_message().clone(),
                };
                match ValidatedEnsemble::validate(&raw, now) {
                    Ok(v) => out.push(v),
                    Err(err) => ctx_warn(Warning::EnsembleDiscarded(err)),
                }
            }
            Ok(out)
        }
    }
}

impl Peer {
    /// Sends a Non-Interactive-Auth message and the messages to each ensemble's instance.
    /// Returns whether anything was sent.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_offline<R: rand_core::CryptoRng + ?Sized>(
        &mut self,
        ctx: &Ctx<'_>,
        out: &mut Vec<Event>,
        rng: &mut R,
        ensembles: Vec<ValidatedEnsemble>,
        text: &str,
        is_self: bool,
    ) -> bool {
        let peer_queue: Vec<Queued> = core::mem::take(&mut self.queue);
        let mut sent = false;
        for e in ensembles {
            let x = e.owner_tag();
            if x == ctx.our_tag() {
                // Our own ensemble (when writing to our other devices).
                continue;
            }
            if !self.admit(ctx, out, x, is_self) {
                continue;
            }
            // The server is untrusted: an ensemble whose Client Profile is not the key the
            // caller accepts for this instance is not used (nothing is encrypted to it).
            let offered = e.client_profile().fingerprint();
            if self.expected.get(&x).is_some_and(|f| *f != offered) {
                ctx.error(out, Some(x), ConversationError::KeyNotAccepted);
                continue;
            }
            let made = send_non_interactive_auth(
                rng,
                &e,
                &ctx.account.long_term,
                &ctx.account.profile,
                ctx.phi,
            );
            let (nia, done) = match made {
                Ok(v) => v,
                Err(err) => {
                    ctx.error(out, Some(x), ConversationError::NonInteractive(err));
                    continue;
                }
            };
            let conv = self.conv(x);
            conv.start_non_interactive(ctx, out, rng, &nia, done);
            for q in &peer_queue {
                conv.send_user(ctx, out, rng, &q.text, &q.tlvs);
            }
            if !text.is_empty() {
                conv.send_user(ctx, out, rng, text, &[]);
            }
            sent = true;
        }
        if !sent {
            self.queue = peer_queue;
        }
        sent
    }
}
