//! The prekey link (docs/xmpp-glue.md §3): finding and pinning each domain's prekey server
//! (XEP-0030), publishing and refilling our prekeys, and fetching a contact's ensembles
//! for its offline devices (otrv4-prekey-server.md), with the texts that wait for them.
//!
//! A pinned server's disco#items are read again once per connection: a new key is
//! re-pinned only through announcements signed by the pinned key ([`rotation`]); without
//! one the domain is held (no offline messaging) until the user accepts the new key.

use std::collections::{BTreeMap, BTreeSet};

use otr4::InstanceTag;
use otr4::RefillPolicy;
use otr4::{ConversationError, OfflineEnsembles, PrekeyOutcome};
use otr4::{PrekeyFraming, PrekeyServerMessage};
use rand_core::CryptoRng;

use crate::carriage::{ExtraTlvs, MAX_WAITING, sent_to_tlv};
use crate::error::{GlueError, NotSentReason};
use crate::events::{EngineStats, GlueEvent};
use crate::incoming::IqResponse;
use crate::otr_bridge::Bridge;
use crate::requests::{Pending, Requests, Responder};
use crate::stanza::{self, DiscoItem, domain};
use crate::state::ServerPin;
use crate::trust::{hex_fp, parse_fp};

/// A message waiting for a device's ensemble.
#[derive(Debug, Clone)]
pub(crate) struct Waiting {
    /// The offline device.
    pub tag: InstanceTag,
    /// The text.
    pub text: String,
    /// TLVs besides the own-copy TLV (a file offer).
    pub extra: ExtraTlvs,
    /// For a copy to our own device: the contact it was sent to.
    pub sent_to: Option<String>,
}

/// Prekey servers, our link to our own, and the ensemble queries under way.
#[derive(Debug)]
pub(crate) struct PrekeyLink {
    /// Prekey servers pinned by domain.
    servers: BTreeMap<String, ServerPin>,
    /// Fingerprints each domain's server used before (never re-pinned by an announcement).
    retired: BTreeMap<String, BTreeSet<String>>,
    /// Pinned domains whose server was asked for its key on this connection: `true` once
    /// answered (or failed).
    checked: BTreeMap<String, bool>,
    /// Domains whose server shows another key without a valid announcement: the key
    /// offered, waiting for the user ([`PrekeyLink::accept_key`]).
    changed: BTreeMap<String, String>,
    /// Our prekey server confirmed a publication.
    published: bool,
    /// Our domain, once our server is set in otr4.
    link_domain: Option<String>,
    /// Domains whose server is being discovered.
    discovering: BTreeSet<String>,
    /// Our own domain's discovery failed: when to try again, and the delay used.
    retry: Option<(i64, i64)>,
    /// Ensemble queries under way: contact → the prekey server asked.
    queries_inflight: BTreeMap<String, String>,
    /// Texts for offline devices waiting for ensembles.
    waiting: BTreeMap<String, Vec<Waiting>>,
    /// Prekey-server texts in both directions, with the fragments received so far.
    framing: PrekeyFraming,
    /// Our bare JID's domain.
    own_domain: String,
    refill: RefillPolicy,
}

/// Seconds before our own domain's prekey server is looked for again after a failed
/// discovery; the delay doubles on each failure up to [`RETRY_MAX`].
pub(crate) const RETRY_FIRST: i64 = 15;
/// The longest delay between two discoveries of our own domain's prekey server.
pub(crate) const RETRY_MAX: i64 = 600;

impl PrekeyLink {
    /// From the persisted pins and publication flag, for our bare JID `jid`.
    pub fn new(
        jid: &str,
        servers: BTreeMap<String, ServerPin>,
        retired: BTreeMap<String, BTreeSet<String>>,
        published: bool,
        refill: RefillPolicy,
    ) -> PrekeyLink {
        PrekeyLink {
            servers,
            retired,
            checked: BTreeMap::new(),
            changed: BTreeMap::new(),
            published,
            link_domain: None,
            discovering: BTreeSet::new(),
            retry: None,
            queries_inflight: BTreeMap::new(),
            waiting: BTreeMap::new(),
            framing: PrekeyFraming::new(),
            own_domain: domain(jid).to_owned(),
            refill,
        }
    }

    /// The pinned servers.
    pub fn servers(&self) -> &BTreeMap<String, ServerPin> {
        &self.servers
    }

    /// The fingerprints each domain's server used before.
    pub fn retired(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.retired
    }

    /// The key offered by `dom`'s server when it changed without a valid announcement.
    pub fn changed_key(&self, dom: &str) -> Option<&str> {
        self.changed.get(dom).map(String::as_str)
    }

    /// Whether our prekeys were published.
    pub fn published(&self) -> bool {
        self.published
    }

    /// Whether `jid` (a bare JID) is a pinned prekey server.
    pub fn is_server(&self, jid: &str) -> bool {
        self.servers.values().any(|p| p.jid == jid)
    }

    /// The stream came up again: discoveries and queries start over.
    pub fn reconnected(&mut self) {
        self.discovering.clear();
        self.checked.clear();
        self.queries_inflight.clear();
        self.retry = None;
    }

    /// On a tick: when the discovery of our own domain's prekey server failed (no answer,
    /// an error, no server listed), tries again after [`RETRY_FIRST`] seconds, doubling up
    /// to [`RETRY_MAX`]: a server that was restarting or not yet connected is found later.
    pub fn retry_discovery<R: CryptoRng + ?Sized>(
        &mut self,
        b: &mut Bridge<'_>,
        reqs: &mut Requests,
        dom: &str,
        now: i64,
        rng: &mut R,
    ) {
        if self.servers.contains_key(dom) {
            self.retry = None;
            return;
        }
        match self.retry {
            Some((at, _)) if now >= at && !self.discovering.contains(dom) => {
                tracing::info!(domain = dom, "looking for the prekey server again");
                self.ensure_server(b, reqs, dom, true, now, rng);
            }
            _ => {}
        }
    }

    fn server_jid(&self, dom: &str) -> Option<String> {
        self.servers.get(dom).map(|p| p.jid.clone())
    }

    fn send_to_own_server(&self, b: &mut Bridge<'_>, m: &PrekeyServerMessage) {
        if let Some(j) = self.server_jid(&self.own_domain) {
            b.car.body_message(&j, &PrekeyFraming::encode(m));
        }
    }

    /// Asks the pinned server of `dom` for its key, once per connection.
    fn check(&mut self, b: &mut Bridge<'_>, reqs: &mut Requests, dom: &str, jid: &str) {
        if self.checked.contains_key(dom) {
            return;
        }
        self.checked.insert(dom.to_owned(), false);
        let (d, j) = (dom.to_owned(), jid.to_owned());
        reqs.send(
            b.car,
            Responder::Jid(j.clone()),
            Pending::ServerItems { domain: d, jid: j },
            |id| stanza::disco_items(id, jid),
        );
    }

    /// Makes sure `dom`'s prekey server is known: discovers it, or checks the pinned one's
    /// key (once per connection) and links ours once that check is answered.
    pub fn ensure_server<R: CryptoRng + ?Sized>(
        &mut self,
        b: &mut Bridge<'_>,
        reqs: &mut Requests,
        dom: &str,
        online: bool,
        now: i64,
        rng: &mut R,
    ) {
        if let Some(pin) = self.servers.get(dom).cloned() {
            self.check(b, reqs, dom, &pin.jid);
            let checked = self.checked.get(dom).copied().unwrap_or(false);
            if dom == self.own_domain && self.link_domain.is_none() {
                if checked && !self.changed.contains_key(dom) {
                    self.link(b, pin, online, now, rng);
                } else if !checked {
                    // Ensemble queries may start; publishing waits for the check.
                    self.configure(b, &pin);
                }
            }
            return;
        }
        if self.discovering.insert(dom.to_owned()) {
            let d = dom.to_owned();
            reqs.send(
                b.car,
                Responder::Jid(d.clone()),
                Pending::DiscoItems { domain: d.clone() },
                |id| stanza::disco_items(id, &d),
            );
        }
    }

    /// Gives otr4 our own server `pin` (its JID and fingerprint); whether it took it.
    fn configure(&self, b: &mut Bridge<'_>, pin: &ServerPin) -> bool {
        let Some(fp) = parse_fp(&pin.fingerprint) else {
            return false;
        };
        match b
            .client
            .set_prekey_server(pin.jid.as_bytes(), fp, self.refill)
        {
            Ok(()) => true,
            Err(e) => {
                b.car.emit(GlueEvent::Error(GlueError::PrekeyServer(e)));
                false
            }
        }
    }

    fn link<R: CryptoRng + ?Sized>(
        &mut self,
        b: &mut Bridge<'_>,
        pin: ServerPin,
        online: bool,
        now: i64,
        rng: &mut R,
    ) {
        if !self.configure(b, &pin) {
            return;
        }
        self.link_domain = Some(self.own_domain.clone());
        self.maintain(b, online, now, rng);
    }

    /// Publishes our prekeys, or refills the server's stock when the policy says so.
    pub fn maintain<R: CryptoRng + ?Sized>(
        &mut self,
        b: &mut Bridge<'_>,
        online: bool,
        now: i64,
        rng: &mut R,
    ) {
        if self.link_domain.is_none() || !online {
            return;
        }
        let first = if self.published {
            b.client.prekey_maintenance(b.prekeys, now, rng)
        } else if b.client.prekey_exchange_pending(now) {
            Ok(None)
        } else {
            b.client.prekey_publication(b.prekeys, None, now, rng)
        };
        match first {
            Ok(Some(m)) => self.send_to_own_server(b, &m),
            Ok(None) => {}
            Err(e) => b.car.emit(GlueEvent::Error(GlueError::PrekeyServer(e))),
        }
    }

    /// The answer `r` to the discovery request `purpose`.
    #[allow(clippy::too_many_arguments)]
    pub fn discovered<R: CryptoRng + ?Sized>(
        &mut self,
        b: &mut Bridge<'_>,
        reqs: &mut Requests,
        purpose: Pending,
        r: IqResponse,
        online: bool,
        now: i64,
        rng: &mut R,
    ) {
        match purpose {
            Pending::ServerItems { domain, jid } if self.servers.contains_key(&domain) => {
                let items = r.ok.then_some(r.disco_items);
                self.recheck(b, reqs, domain, jid, items, online, now, rng);
            }
            Pending::DiscoItems { domain } if r.ok => {
                self.disco_items(b, reqs, domain, r.disco_items, now, rng);
            }
            Pending::DiscoInfo { domain, jid } => {
                let is_server = r.ok && r.prekey_server;
                self.disco_info(b, reqs, domain, jid, is_server, now, rng);
            }
            Pending::ServerItems { domain, jid } if r.ok => {
                self.server_items(b, reqs, domain, jid, r.disco_items, online, now, rng);
            }
            Pending::DiscoItems { domain } | Pending::ServerItems { domain, .. } => {
                self.no_server(b, reqs, &domain, now, rng);
            }
            _ => {}
        }
    }

    /// A domain's disco#items: every item without a node may be its prekey server.
    fn disco_items<R: CryptoRng + ?Sized>(
        &mut self,
        b: &mut Bridge<'_>,
        reqs: &mut Requests,
        dom: String,
        items: Vec<DiscoItem>,
        now: i64,
        rng: &mut R,
    ) {
        let candidates: Vec<String> = items
            .into_iter()
            .filter(|i| i.node.is_none())
            .map(|i| i.jid)
            .collect();
        if candidates.is_empty() {
            self.no_server(b, reqs, &dom, now, rng);
            return;
        }
        for jid in candidates {
            let d = dom.clone();
            let j = jid.clone();
            reqs.send(
                b.car,
                Responder::Jid(jid.clone()),
                Pending::DiscoInfo { domain: d, jid: j },
                |id| stanza::disco_info(id, &jid),
            );
        }
    }

    /// A candidate's disco#info: if it is a prekey server, ask for its fingerprint.
    #[allow(clippy::too_many_arguments)]
    fn disco_info<R: CryptoRng + ?Sized>(
        &mut self,
        b: &mut Bridge<'_>,
        reqs: &mut Requests,
        dom: String,
        jid: String,
        is_server: bool,
        now: i64,
        rng: &mut R,
    ) {
        if is_server {
            let (d, j) = (dom, jid.clone());
            reqs.send(
                b.car,
                Responder::Jid(jid.clone()),
                Pending::ServerItems { domain: d, jid: j },
                |id| stanza::disco_items(id, &jid),
            );
        } else {
            self.no_server(b, reqs, &dom, now, rng);
        }
    }

    /// A discovery step for `dom` failed: once none is left, says so and gives up on the
    /// texts waiting for that domain's ensembles.
    fn no_server<R: CryptoRng + ?Sized>(
        &mut self,
        b: &mut Bridge<'_>,
        reqs: &Requests,
        dom: &str,
        now: i64,
        _rng: &mut R,
    ) {
        if reqs.any(|p| p.discovers(dom)) || self.servers.contains_key(dom) {
            return;
        }
        self.discovering.remove(dom);
        if dom == self.own_domain {
            let delay = self
                .retry
                .map_or(RETRY_FIRST, |(_, d)| (d * 2).min(RETRY_MAX));
            self.retry = Some((now.saturating_add(delay), delay));
        }
        b.car
            .emit(GlueEvent::Error(GlueError::NoPrekeyServer(dom.to_owned())));
        let waiting: Vec<String> = self
            .waiting
            .keys()
            .filter(|j| domain(j) == dom)
            .cloned()
            .collect();
        for j in waiting {
            for w in self.waiting.remove(&j).unwrap_or_default() {
                b.car.emit(GlueEvent::NotSent {
                    to: j.clone(),
                    device: Some(w.tag),
                    reason: NotSentReason::NoPrekeyServer,
                });
            }
        }
    }

    /// The prekey server's items: its fingerprint is pinned (a changed one is refused).
    #[allow(clippy::too_many_arguments)]
    fn server_items<R: CryptoRng + ?Sized>(
        &mut self,
        b: &mut Bridge<'_>,
        reqs: &mut Requests,
        dom: String,
        jid: String,
        items: Vec<DiscoItem>,
        online: bool,
        now: i64,
        rng: &mut R,
    ) {
        let fp = items
            .into_iter()
            .find(|i| i.node.as_deref() == Some("fingerprint"))
            .and_then(|i| i.name)
            .map(|s| s.to_ascii_lowercase());
        let Some(fp) = fp.filter(|f| parse_fp(f).is_some()) else {
            self.no_server(b, reqs, &dom, now, rng);
            return;
        };
        let pin = ServerPin {
            jid,
            fingerprint: fp,
        };
        self.servers.insert(dom.clone(), pin.clone());
        self.discovering.remove(&dom);
        // Found on this connection: no need to ask again.
        self.checked.insert(dom.clone(), true);
        b.car.emit(GlueEvent::PrekeyServer(pin.clone()));
        if dom == self.own_domain {
            self.link(b, pin, online, now, rng);
        }
        self.query_waiting(b, reqs, &dom, online, now, rng);
    }

    /// The texts waiting for `dom`'s ensembles: their queries go out.
    fn query_waiting<R: CryptoRng + ?Sized>(
        &mut self,
        b: &mut Bridge<'_>,
        reqs: &mut Requests,
        dom: &str,
        online: bool,
        now: i64,
        rng: &mut R,
    ) {
        let waiting: Vec<String> = self
            .waiting
            .keys()
            .filter(|j| domain(j) == dom)
            .cloned()
            .collect();
        for j in waiting {
            self.query_ensembles(b, reqs, &j, online, now, rng);
        }
    }

    /// The answer to a pinned server's disco#items (`None`: an error or no answer). Another
    /// component answering for the domain is reported and ignored. The pinned key again:
    /// nothing changes. Another key: re-pinned if announcements signed by the pinned key
    /// lead to it ([`rotation::follow`]; [`GlueEvent::PrekeyServerKeyRotated`]), else the
    /// domain is held ([`GlueEvent::PrekeyServerKeyChanged`]) until
    /// [`PrekeyLink::accept_key`]. No answer keeps the pin (a wrong key fails its DAKE).
    #[allow(clippy::too_many_arguments)]
    fn recheck<R: CryptoRng + ?Sized>(
        &mut self,
        b: &mut Bridge<'_>,
        reqs: &mut Requests,
        dom: String,
        jid: String,
        items: Option<Vec<DiscoItem>>,
        online: bool,
        now: i64,
        rng: &mut R,
    ) {
        let Some(pin) = self.servers.get(&dom).cloned() else {
            return;
        };
        let items = items.unwrap_or_default();
        let fp = items
            .iter()
            .find(|i| i.node.as_deref() == Some("fingerprint"))
            .and_then(|i| i.name.as_deref())
            .map(str::to_ascii_lowercase)
            .filter(|f| parse_fp(f).is_some());
        if pin.jid != jid {
            if let Some(announced) = fp {
                b.car
                    .emit(GlueEvent::Error(GlueError::ServerFingerprintChanged {
                        jid,
                        pinned: pin.fingerprint,
                        announced,
                    }));
            }
            return;
        }
        self.checked.insert(dom.clone(), true);
        match fp {
            Some(fp) if fp != pin.fingerprint => {
                let anns = rotation::announcements(&items, &pin.jid);
                let retired = self.retired.get(&dom).cloned().unwrap_or_default();
                match rotation::follow(&pin.fingerprint, &fp, &anns, &retired, now) {
                    Some(old_keys) => {
                        tracing::info!(domain = %dom, "prekey server key rotated; re-pinned");
                        self.repin(&dom, old_keys, &fp);
                        b.car.emit(GlueEvent::PrekeyServerKeyRotated {
                            domain: dom.clone(),
                            old: pin.fingerprint,
                            new: fp,
                        });
                    }
                    None => {
                        tracing::warn!(domain = %dom, "prekey server key changed without a valid announcement");
                        self.hold(b, &dom, &pin.fingerprint, fp);
                        return;
                    }
                }
            }
            _ => {}
        }
        if let Some(pin) = self.servers.get(&dom).cloned()
            && dom == self.own_domain
            && self.link_domain.is_none()
        {
            self.link(b, pin, online, now, rng);
        }
        self.query_waiting(b, reqs, &dom, online, now, rng);
    }

    /// Pins `new` for `dom`; the keys in `old` are retired (never re-pinned by an
    /// announcement). Our own server is linked again with the new key.
    fn repin(&mut self, dom: &str, old: Vec<String>, new: &str) {
        let retired = self.retired.entry(dom.to_owned()).or_default();
        retired.extend(old);
        retired.remove(new);
        if let Some(p) = self.servers.get_mut(dom) {
            p.fingerprint = new.to_owned();
        }
        self.changed.remove(dom);
        if dom == self.own_domain {
            self.link_domain = None;
        }
    }

    /// `dom`'s server shows `offered` instead of `pinned`, unannounced: it is not used
    /// (our own is unlinked) and what waits for that domain is reported not sent.
    fn hold(&mut self, b: &mut Bridge<'_>, dom: &str, pinned: &str, offered: String) {
        self.changed.insert(dom.to_owned(), offered.clone());
        if dom == self.own_domain {
            self.link_domain = None;
        }
        b.car.emit(GlueEvent::PrekeyServerKeyChanged {
            domain: dom.to_owned(),
            pinned: pinned.to_owned(),
            offered,
        });
        let waiting: Vec<String> = self
            .waiting
            .keys()
            .filter(|j| domain(j) == dom)
            .cloned()
            .collect();
        for j in waiting {
            self.queries_inflight.remove(&j);
            for w in self.waiting.remove(&j).unwrap_or_default() {
                b.car.emit(GlueEvent::NotSent {
                    to: j.clone(),
                    device: Some(w.tag),
                    reason: NotSentReason::PrekeyServerKeyChanged,
                });
            }
        }
    }

    /// The user confirmed `fingerprint` (hex, any case) for `dom`'s pinned server: the key
    /// it offered ([`GlueEvent::PrekeyServerKeyChanged`]), or, with no change seen on this
    /// connection, one learnt out of band (e.g. while offline, after the operator announced
    /// a lost key). It is pinned (the old key retired) and, for our own domain, linked.
    /// Refused: no server pinned for `dom`, not a fingerprint, or another key than the one
    /// the server offers.
    #[allow(clippy::too_many_arguments)]
    pub fn accept_key<R: CryptoRng + ?Sized>(
        &mut self,
        b: &mut Bridge<'_>,
        reqs: &mut Requests,
        dom: &str,
        fingerprint: &str,
        online: bool,
        now: i64,
        rng: &mut R,
    ) -> Result<(), GlueError> {
        let fp: String = fingerprint
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        let offered = self.changed.get(dom);
        let refused = || GlueError::PrekeyServerKeyRefused {
            domain: dom.to_owned(),
            fingerprint: fp.clone(),
        };
        let Some(pin) = self.servers.get(dom).cloned() else {
            return Err(refused());
        };
        if parse_fp(&fp).is_none() || offered.is_some_and(|o| *o != fp) {
            return Err(refused());
        }
        if pin.fingerprint == fp {
            return Ok(());
        }
        self.repin(dom, vec![pin.fingerprint.clone()], &fp);
        if let Some(p) = self.servers.get(dom).cloned() {
            b.car.emit(GlueEvent::PrekeyServer(p.clone()));
            if dom == self.own_domain {
                self.link(b, p, online, now, rng);
            }
        }
        self.query_waiting(b, reqs, dom, online, now, rng);
        Ok(())
    }

    /// Whether a prekey-server message from `server` belongs to an exchange with it:
    /// retrieval answers only from the server the query about that identity went to,
    /// everything else (the publication DAKE, storage status) only from our own server.
    pub fn reply_expected(&self, server: &str, msg: &PrekeyServerMessage) -> bool {
        let asked = |identity: &[u8]| {
            core::str::from_utf8(identity)
                .ok()
                .and_then(|peer| self.queries_inflight.get(peer))
                .is_some_and(|s| s.eq_ignore_ascii_case(server))
        };
        match msg {
            PrekeyServerMessage::EnsembleRetrieval(r) => asked(&r.identity),
            PrekeyServerMessage::NoPrekeyEnsembles(n) => asked(&n.identity),
            _ => self
                .server_jid(&self.own_domain)
                .is_some_and(|s| s.eq_ignore_ascii_case(server)),
        }
    }

    /// The body of a message from the prekey server `server` (a bare JID). Returns whether
    /// our prekeys were published just now (we may list ourselves).
    #[allow(clippy::too_many_arguments)]
    pub fn body<R: CryptoRng + ?Sized>(
        &mut self,
        b: &mut Bridge<'_>,
        stats: &mut EngineStats,
        server: &str,
        text: &str,
        now: i64,
        rng: &mut R,
    ) -> bool {
        let Some(msg) = self.decode(b, text, now) else {
            return false;
        };
        if !self.reply_expected(server, &msg) {
            stats.spoofed_prekey_replies += 1;
            tracing::warn!("a prekey-server message from a server we did not ask was ignored");
            return false;
        }
        match b.client.receive_prekey_server(b.prekeys, &msg, now, rng) {
            Ok(PrekeyOutcome::Send(m)) => {
                // DAKE-3 goes back to the server of the exchange: ours.
                self.send_to_own_server(b, &m);
            }
            Ok(PrekeyOutcome::Published { prekey_ids, .. }) => {
                self.published = true;
                b.car.emit(GlueEvent::Published {
                    prekeys: prekey_ids.len(),
                });
                return true;
            }
            Ok(PrekeyOutcome::PublicationFailed { .. }) => {
                b.car.emit(GlueEvent::Error(GlueError::PrekeyServer(
                    ConversationError::Prekey(otr4::PrekeyError::UnexpectedMessage),
                )));
            }
            Ok(PrekeyOutcome::StorageStatus { publish, .. }) => {
                if let Some(m) = publish {
                    self.send_to_own_server(b, &m);
                }
            }
            Ok(PrekeyOutcome::Ensembles { peer, ensembles }) => {
                self.ensembles(b, stats, peer, ensembles.chosen, now, rng);
            }
            Ok(PrekeyOutcome::NoEnsembles { peer, .. }) => {
                self.queries_inflight.remove(&peer);
                for w in self.waiting.remove(&peer).unwrap_or_default() {
                    b.car.emit(GlueEvent::NotSent {
                        to: peer.clone(),
                        device: Some(w.tag),
                        reason: NotSentReason::NoEnsembles,
                    });
                }
            }
            Ok(_) => {}
            Err(e) => b.car.emit(GlueEvent::Error(GlueError::PrekeyServer(e))),
        }
        false
    }

    /// A prekey-server message: whole, or the last fragment of one (otrv4-prekey-server.md
    /// §"Fragmentation"); an undecodable one is reported.
    fn decode(&mut self, b: &mut Bridge<'_>, text: &str, now: i64) -> Option<PrekeyServerMessage> {
        match self.framing.receive(text, now) {
            Ok(m) => m,
            Err(e) => decode_error(b, &e),
        }
    }

    /// A contact's ensembles: only those of the waiting devices whose Client Profile is
    /// the pinned key are used; the waiting texts go out or are reported not sent.
    fn ensembles<R: CryptoRng + ?Sized>(
        &mut self,
        b: &mut Bridge<'_>,
        stats: &mut EngineStats,
        peer: String,
        chosen: Vec<otr4::ValidatedEnsemble>,
        now: i64,
        rng: &mut R,
    ) {
        self.queries_inflight.remove(&peer);
        let waiting = self.waiting.remove(&peer).unwrap_or_default();
        let tags: BTreeSet<InstanceTag> = waiting.iter().map(|w| w.tag).collect();
        let mut usable = Vec::new();
        for e in chosen {
            let tag = e.owner_tag();
            if !tags.contains(&tag) {
                continue;
            }
            // The prekey server is untrusted: a Client Profile other than the pinned key of
            // that device is never used (and is offered to the user as a changed key, like
            // any other).
            let offered = hex_fp(&e.fingerprint());
            let pinned = b.dir.pinned(&peer, tag).map(str::to_owned);
            if pinned.is_some_and(|p| p != offered) {
                stats.rejected_ensembles += 1;
                b.pin(&peer, tag, &offered, now, rng);
                continue;
            }
            if !b.dir.usable(&peer, tag) {
                continue;
            }
            usable.push(e);
        }
        let covered: BTreeSet<InstanceTag> = usable.iter().map(|e| e.owner_tag()).collect();
        if !usable.is_empty() {
            let evs =
                b.client
                    .send_offline(&peer, OfflineEnsembles::Validated(&usable), "", now, rng);
            b.otr_events(evs, false, now, rng);
        }
        for w in waiting {
            // An empty text only asked for a new session (a repair, crate::heal): the
            // Non-Interactive-Auth above was it.
            let repair = w.text.is_empty() && w.extra.0.is_empty() && w.sent_to.is_none();
            if repair {
                continue;
            }
            if !b.dir.usable(&peer, w.tag) {
                b.car.emit(GlueEvent::NotSent {
                    to: peer.clone(),
                    device: Some(w.tag),
                    reason: NotSentReason::KeyChanged,
                });
            } else if covered.contains(&w.tag) {
                let mut tlvs = ExtraTlvs(sent_to_tlv(w.sent_to.as_deref()));
                tlvs.0.extend(w.extra.0.iter().cloned());
                let evs = b.client.send_to(&peer, w.tag, &w.text, &tlvs.0, now, rng);
                b.otr_events(evs, false, now, rng);
            } else {
                b.car.emit(GlueEvent::NotSent {
                    to: peer.clone(),
                    device: Some(w.tag),
                    reason: NotSentReason::NoEnsembles,
                });
            }
        }
    }

    /// Queues a text for the offline device `w.tag` of `to` and asks for `to`'s ensembles.
    #[allow(clippy::too_many_arguments)]
    pub fn send_offline<R: CryptoRng + ?Sized>(
        &mut self,
        b: &mut Bridge<'_>,
        reqs: &mut Requests,
        to: &str,
        w: Waiting,
        online: bool,
        now: i64,
        rng: &mut R,
    ) {
        let queue = self.waiting.entry(to.to_owned()).or_default();
        if queue.len() >= MAX_WAITING {
            b.car.emit(GlueEvent::NotSent {
                to: to.to_owned(),
                device: Some(w.tag),
                reason: NotSentReason::QueueFull,
            });
            return;
        }
        queue.push(w);
        self.query_ensembles(b, reqs, to, online, now, rng);
    }

    /// Device `tag` of `jid` left its list: nothing waits for it any more.
    pub fn forget(&mut self, jid: &str, tag: InstanceTag) {
        self.waiting
            .entry(jid.to_owned())
            .or_default()
            .retain(|w| w.tag != tag);
    }

    fn query_ensembles<R: CryptoRng + ?Sized>(
        &mut self,
        b: &mut Bridge<'_>,
        reqs: &mut Requests,
        peer: &str,
        online: bool,
        now: i64,
        rng: &mut R,
    ) {
        let dom = domain(peer).to_owned();
        let Some(server) = self.server_jid(&dom) else {
            self.ensure_server(b, reqs, &dom, online, now, rng);
            return;
        };
        if self.changed.contains_key(&dom) {
            for w in self.waiting.remove(peer).unwrap_or_default() {
                b.car.emit(GlueEvent::NotSent {
                    to: peer.to_owned(),
                    device: Some(w.tag),
                    reason: NotSentReason::PrekeyServerKeyChanged,
                });
            }
            return;
        }
        // The key is checked beside the query (retrievals are not signed by the server;
        // the ensembles are checked against the devices' pinned keys).
        self.check(b, reqs, &dom, &server);
        if self.queries_inflight.contains_key(peer) {
            return;
        }
        self.queries_inflight
            .insert(peer.to_owned(), server.clone());
        match b.client.ensemble_query(peer) {
            Ok(q) => b.car.body_message(&server, &PrekeyFraming::encode(&q)),
            Err(e) => {
                self.queries_inflight.remove(peer);
                b.car.emit(GlueEvent::Error(GlueError::PrekeyServer(e)));
            }
        }
    }
}

/// Reports an undecodable prekey-server message (the detail goes to the log).
fn decode_error<T>(b: &mut Bridge<'_>, e: &dyn core::fmt::Display) -> Option<T> {
    tracing::warn!(error = %e, "undecodable prekey-server message");
    b.car.emit(GlueEvent::Error(GlueError::PrekeyServer(
        ConversationError::Prekey(otr4::PrekeyError::UnexpectedMessage),
    )));
    None
}

mod rotation;

/// Decodes a `fingerprint-rotation` disco item name of the prekey server `jid` and checks
/// its signature: `(old fingerprint, new fingerprint, not_after)` in lowercase hex, or
/// `None` (for the fuzz target; feature `stanzas`).
#[cfg(feature = "stanzas")]
pub fn verify_announcement(name: &str, jid: &str) -> Option<(String, String, i64)> {
    rotation::verify(name, jid).map(|a| (a.old, a.new, a.not_after))
}

#[cfg(test)]
mod tests;
