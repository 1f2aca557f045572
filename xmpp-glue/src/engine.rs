//! The sans-IO core of the glue: one [`Engine`] per device turns stanzas, time and an RNG
//! into stanzas to send and [`GlueEvent`]s, coordinating its parts (docs/xmpp-glue.md).
//!
//! The parts, each with one job: the device directory ([`crate::directory`]: device lists,
//! presence, TOFU trust), the prekey link ([`crate::prekey_link`]: discovery and the
//! prekey-server protocol), catch-up ([`crate::catchup`]: MAM) and stanza carriage
//! ([`crate::incoming`] classifies each stanza once, [`crate::carriage`] builds what goes
//! out). The engine dispatches on the classified stanza and holds what the parts share:
//! the otr4 client, the requests in flight and the security counters.

use minidom::Element;
use otr4::InstanceTag;
use otr4::PrekeyStore;
use otr4::{Client, ConversationError, ErrorCode, Event, PERSIST_KEY_LEN};
use rand_core::CryptoRng;

use crate::carriage::{Carriage, ExtraTlvs, MAX_WAITING};
use crate::catchup::{CatchUp, PageEnd};
use crate::devices::{DeviceChange, DeviceEntry, DeviceList};
use crate::directory::Directory;
use crate::error::{GlueError, NotSentReason, StateError};
use crate::events::{EngineStats, GlueEvent, Output};
use crate::heal::{Expired, Healing, RepairAction};
use crate::incoming::{Chat, Incoming, IqRequest, IqResponse, Message, MessageKind};
use crate::otr_bridge::Bridge;
use crate::outgoing;
use crate::prekey_link::PrekeyLink;
use crate::requests::{Answer, Pending, Requests, Responder, is_own_account};
use crate::stanza::{self, bare, domain};
use crate::state::{EngineConfig, GlueState};
use crate::transfer::Transfers;
use crate::trust::{Trust, hex_fp, parse_fp};

mod files;

/// The otr4 client, the directory and the carriage, borrowed together from the engine.
macro_rules! bridge {
    ($e:ident) => {
        Bridge {
            jid: &$e.cfg.jid,
            client: &mut $e.client,
            prekeys: &mut $e.prekeys,
            dir: &mut $e.dir,
            car: &mut $e.car,
            heal: &mut $e.heal,
        }
    };
}

/// One device's glue: routing, device lists, discovery, presence, catch-up and trust
/// around an [`otr4::Client`].
pub struct Engine {
    cfg: EngineConfig,
    client: Client,
    prekeys: PrekeyStore, // our published Prekey messages' secrets, exported with the client
    full_jid: Option<String>,
    /// Catch-up finished and we announced ourselves.
    online: bool,
    dir: Directory,
    link: PrekeyLink,
    catchup: CatchUp,
    reqs: Requests,
    car: Carriage,
    stats: EngineStats,
    /// Whether the pinned keys were given to otr4 ([`Engine::prepare`]).
    expectations_set: bool,
    /// File transfers in flight.
    files: Transfers,
    /// Session repairs under way (docs/spec-notes.md §"Self-healing sessions").
    heal: Healing,
}

impl core::fmt::Debug for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("jid", &self.cfg.jid)
            .field("tag", &self.tag())
            .field("online", &self.online)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine for `client` (JID `config.jid`), its prekey store and persisted `state`.
    pub fn new<R: CryptoRng + ?Sized>(
        config: EngineConfig,
        client: Client,
        prekeys: PrekeyStore,
        state: GlueState,
        rng: &mut R,
    ) -> Engine {
        let mut s = state;
        if let Some(p) = &config.prekey_server {
            s.servers.insert(domain(&config.jid).to_owned(), p.clone());
        }
        let car = Carriage::new(rng);
        Engine {
            dir: Directory::new(s.own_list, s.listed, s.removed, s.contacts, s.trust),
            link: PrekeyLink::new(
                &config.jid,
                s.servers,
                s.retired_servers,
                s.published,
                config.refill,
            ),
            catchup: CatchUp::new(s.archive, s.seen_ids),
            cfg: config,
            client,
            prekeys,
            full_jid: None,
            online: false,
            reqs: Requests::default(),
            car,
            stats: EngineStats::default(),
            expectations_set: false,
            files: Transfers::default(),
            heal: Healing::default(),
        }
    }

    /// Before the first use of the otr4 client after [`Engine::new`]: tells it every
    /// pinned key (it encrypts user content only to the keys the user accepted; the
    /// expectations are not persisted by otr4).
    fn prepare<R: CryptoRng + ?Sized>(&mut self, now: i64, rng: &mut R) {
        self.reqs.set_now(now);
        if self.expectations_set {
            return;
        }
        self.expectations_set = true;
        for (jid, tag, fp) in self.dir.trust_store().accepted() {
            if let Some(f) = parse_fp(&fp) {
                let evs = self
                    .client
                    .expect_fingerprint(&jid, InstanceTag(tag), Some(f), now, rng);
                bridge!(self).otr_events(evs, false, now, rng);
            }
        }
    }

    /// What the engine refused because of who sent it.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Our instance tag.
    pub fn tag(&self) -> InstanceTag {
        self.client.account().instance_tag()
    }

    /// Our bare JID.
    pub fn jid(&self) -> &str {
        &self.cfg.jid
    }

    /// Our label in the device list.
    pub fn label(&self) -> &str {
        &self.cfg.label
    }

    /// Our fingerprint (hex).
    pub fn fingerprint(&self) -> String {
        hex_fp(&self.client.account().fingerprint())
    }

    /// The otr4 client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The glue state as it would be saved now.
    pub fn state(&self) -> GlueState {
        GlueState {
            own_list: self.dir.own_list().clone(),
            published: self.link.published(),
            listed: self.dir.listed(),
            removed: self.dir.removed(),
            contacts: self.dir.contacts().clone(),
            trust: self.dir.trust_store().clone(),
            archive: self.catchup.archive().clone(),
            seen_ids: self.catchup.seen_ids().clone(),
            servers: self.link.servers().clone(),
            retired_servers: self.link.retired().clone(),
        }
    }

    /// Whether catch-up finished and we announced ourselves.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// The devices of `jid` we know (from its list; ours without this device).
    pub fn devices_of(&self, jid: &str) -> Vec<InstanceTag> {
        self.dir.devices_of(jid, &self.cfg.jid, self.tag())
    }

    /// Whether the device `tag` of `jid` is available now.
    pub fn is_device_online(&self, jid: &str, tag: InstanceTag) -> bool {
        self.dir.is_online(jid, tag)
    }

    /// Saves the otr4 client (encrypted with `key`) and the glue state (JSON).
    pub fn export<R: CryptoRng + ?Sized>(
        &self,
        key: &[u8; PERSIST_KEY_LEN],
        rng: &mut R,
    ) -> (Vec<u8>, Vec<u8>) {
        let client = self.client.export(&self.prekeys, key, rng);
        let state = serde_json::to_vec_pretty(&self.state()).unwrap_or_default();
        (client, state)
    }

    /// Restores what [`Engine::export`] saved.
    pub fn import<R: CryptoRng + ?Sized>(
        config: EngineConfig,
        key: &[u8; PERSIST_KEY_LEN],
        client: &[u8],
        state: &[u8],
        rng: &mut R,
    ) -> Result<Engine, StateError> {
        let (c, prekeys) = Client::import(key, client)?;
        let s: GlueState = serde_json::from_slice(state)?;
        Ok(Engine::new(config, c, prekeys, s, rng))
    }

    fn finish(&mut self) -> Vec<Output> {
        self.offers_found();
        let tag = self.tag();
        self.car.finish(tag)
    }

    fn own(&self, from: Option<&str>) -> bool {
        is_own_account(&self.cfg.jid, self.full_jid.as_deref(), from)
    }

    // ---------------------------------------------------------------------------------
    // Connection.

    /// The stream is up, bound to `full_jid`: catch up through MAM, then send presence,
    /// find the prekey server, read our device list.
    pub fn online<R: CryptoRng + ?Sized>(
        &mut self,
        full_jid: &str,
        now: i64,
        rng: &mut R,
    ) -> Vec<Output> {
        self.prepare(now, rng);
        self.full_jid = Some(full_jid.to_owned());
        self.online = false;
        self.dir.reconnected();
        self.reqs.clear();
        self.link.reconnected();
        self.catchup.next_page(&mut self.car, &mut self.reqs);
        self.finish()
    }

    /// The stream went down.
    pub fn offline(&mut self) {
        self.online = false;
        self.full_jid = None;
        self.dir.disconnected();
        self.reqs.clear();
        self.catchup.stop();
    }

    fn catch_up_done<R: CryptoRng + ?Sized>(&mut self, now: i64, rng: &mut R) {
        self.catchup.stop();
        self.online = true;
        self.car.stanza(stanza::presence_available(self.tag()));
        self.dir.reconnected_list();
        let own = self.cfg.jid.clone();
        self.reqs
            .send(&mut self.car, Responder::Own, Pending::OwnDevices, |id| {
                stanza::get_devices(id, &own)
            });
        let d = domain(&self.cfg.jid).to_owned();
        self.link.ensure_server(
            &mut bridge!(self),
            &mut self.reqs,
            &d,
            self.online,
            now,
            rng,
        );
        self.files.resume(&mut self.car, &mut self.reqs, &d);
        self.car.emit(GlueEvent::Online);
    }

    // ---------------------------------------------------------------------------------
    // Device lists.

    /// Adds or refreshes our entry once the list was read and our prekeys are published.
    fn list_self(&mut self, now: i64) {
        let me = DeviceEntry {
            tag: self.tag().0,
            fingerprint: self.fingerprint(),
            label: self.cfg.label.clone(),
            seen: now,
        };
        let published = self.link.published();
        self.dir
            .list_self(&mut self.car, &mut self.reqs, me, published, now);
    }

    /// Removes another device of ours from the account's device list (the user retired
    /// it): it gets no new messages.
    pub fn remove_device<R: CryptoRng + ?Sized>(
        &mut self,
        tag: InstanceTag,
        now: i64,
        rng: &mut R,
    ) -> Vec<Output> {
        self.prepare(now, rng);
        if let Some(list) = self.dir.without(tag, self.tag()) {
            self.client.forget_instance(&self.cfg.jid, tag);
            Directory::publish_list(&mut self.car, &mut self.reqs, list, false);
        }
        self.finish()
    }

    fn on_device_list<R: CryptoRng + ?Sized>(
        &mut self,
        jid: &str,
        payload: Option<&Element>,
        now: i64,
        rng: &mut R,
    ) {
        let (new, issues) = payload.map(DeviceList::parse).unwrap_or_default();
        for issue in issues {
            self.car.emit(GlueEvent::DeviceListIssue {
                jid: jid.to_owned(),
                issue,
            });
        }
        if jid == self.cfg.jid {
            let changes = self.dir.own_changes(&new, self.tag());
            self.apply_changes(jid, changes, now, rng);
            if self.dir.set_own_list(new, self.tag()) {
                self.car.emit(GlueEvent::Error(GlueError::DeviceRemoved));
            }
            self.list_self(now);
        } else {
            let changes = self.dir.contact_changes(jid, &new);
            self.apply_changes(jid, changes, now, rng);
            self.dir.set_contact_list(jid, new);
            for t in self.dir.take_waiting(jid) {
                self.dispatch(jid, &t, now, rng);
            }
        }
    }

    fn apply_changes<R: CryptoRng + ?Sized>(
        &mut self,
        jid: &str,
        changes: Vec<DeviceChange>,
        now: i64,
        rng: &mut R,
    ) {
        for change in changes {
            match &change {
                DeviceChange::Added(d) => {
                    bridge!(self).pin(jid, d.instance_tag(), &d.fingerprint, now, rng);
                }
                DeviceChange::FingerprintChanged { new, .. } => {
                    bridge!(self).pin(jid, new.instance_tag(), &new.fingerprint, now, rng);
                }
                DeviceChange::Removed(d) => {
                    self.client.forget_instance(jid, d.instance_tag());
                    self.link.forget(jid, d.instance_tag());
                    self.heal.forget(jid, d.instance_tag());
                }
                DeviceChange::Replaced { old, new } => {
                    // The old device lost its state: its session is retired (nothing is
                    // sent into it again); the new one goes through trust again.
                    self.client.forget_instance(jid, old.instance_tag());
                    self.link.forget(jid, old.instance_tag());
                    self.heal.forget(jid, old.instance_tag());
                    let old_fp = self.dir.pinned(jid, old.instance_tag()).map(str::to_owned);
                    let tag = new.instance_tag();
                    if let Some(p) =
                        self.dir
                            .pin_replacement(jid, tag, &new.fingerprint, old_fp.as_deref())
                    {
                        if p.new {
                            bridge!(self).expect(jid, tag, now, rng);
                        }
                        self.car.emit(GlueEvent::TrustChanged {
                            jid: jid.to_owned(),
                            device: tag,
                            trust: p.trust,
                            note: p.note,
                        });
                    }
                }
                DeviceChange::Emptied => {}
            }
            self.car.emit(GlueEvent::DevicesChanged {
                jid: jid.to_owned(),
                change,
            });
        }
    }

    /// The user accepts the changed key of a device: it is pinned, and the messages held
    /// for it ([`NotSentReason::HeldUntilAccepted`]) are sent.
    pub fn accept_fingerprint<R: CryptoRng + ?Sized>(
        &mut self,
        jid: &str,
        tag: InstanceTag,
        now: i64,
        rng: &mut R,
    ) -> Vec<Output> {
        self.prepare(now, rng);
        let v3 = bridge!(self).v3_session(jid).is_some_and(|(t, _)| t == tag);
        if v3 && self.dir.accept_v3(jid) {
            self.car.emit(GlueEvent::TrustChanged {
                jid: jid.to_owned(),
                device: tag,
                trust: Trust::Tofu,
                note: "new OTRv3 key accepted".to_owned(),
            });
        } else if self.dir.accept(jid, tag) {
            self.car.emit(GlueEvent::TrustChanged {
                jid: jid.to_owned(),
                device: tag,
                trust: Trust::Tofu,
                note: "new key accepted".to_owned(),
            });
            bridge!(self).expect(jid, tag, now, rng);
        }
        self.finish()
    }

    /// Turns on the OTRv3-compatible mode (otrv4.md §"OTRv3-compatible mode";
    /// docs/xmpp-glue.md §11) with the OTRv3 key `key` (new, or imported from libotr's
    /// `otr.private_key` with [`otr4::otrv3::read_private_keys`]): a contact who lists no
    /// OTRv4 device and whose client offers OTRv3 (Pidgin, Adium, Profanity, Jitsi and other
    /// libotr clients) gets an OTRv3 session ([`GlueEvent::SecureV3`]) in plain `<body>`
    /// messages; OTRv4 contacts are unaffected. Saved with the state: once on, it stays on.
    pub fn enable_otrv3(&mut self, key: otr4::otrv3::DsaPrivateKey) -> Result<(), GlueError> {
        let policy = otr4::Policy {
            mode: otr4::Mode::Otrv3Compatible,
            versions: otr4::Versions::V3_AND_V4,
            send_whitespace_tag: false,
            whitespace_start_dake: true,
            ..*self.client.account().policy()
        };
        self.client.set_policy(policy).map_err(GlueError::Otrv3)?;
        self.client.set_v3_key(key);
        Ok(())
    }

    /// The fingerprint of our OTRv3 key (40 hex digits; libotr shows them upper-case in
    /// five groups of eight), if OTRv3 is on.
    pub fn otrv3_fingerprint(&self) -> Option<String> {
        let a = self.client.account();
        (a.policy().mode == otr4::Mode::Otrv3Compatible)
            .then(|| a.v3_fingerprint().map(|f| hex::encode(f.0)))
            .flatten()
    }

    /// The key the prekey server of `domain` offers after it changed without an
    /// announcement signed by the pinned key ([`GlueEvent::PrekeyServerKeyChanged`]):
    /// until the user accepts it, no offline message goes to that domain.
    pub fn prekey_server_key_change(&self, domain: &str) -> Option<&str> {
        self.link.changed_key(domain)
    }

    /// The user confirmed (e.g. compared with the operator's announcement) the new key
    /// `fingerprint` (hex) of `domain`'s prekey server: the one it offered
    /// ([`GlueEvent::PrekeyServerKeyChanged`]), or one learnt out of band. It is pinned and
    /// saved with the state ([`GlueState::retired_servers`] keeps the old one), and offline
    /// messaging to the domain resumes. Fails with [`GlueError::PrekeyServerKeyRefused`] if
    /// no server is pinned for `domain`, `fingerprint` is not one, or the server offered
    /// another key on this connection.
    pub fn accept_prekey_server_key<R: CryptoRng + ?Sized>(
        &mut self,
        domain: &str,
        fingerprint: &str,
        now: i64,
        rng: &mut R,
    ) -> Result<Vec<Output>, GlueError> {
        self.prepare(now, rng);
        let online = self.online;
        self.link.accept_key(
            &mut bridge!(self),
            &mut self.reqs,
            domain,
            fingerprint,
            online,
            now,
            rng,
        )?;
        Ok(self.finish())
    }

    // ---------------------------------------------------------------------------------
    // Sending.

    /// Sends `text` to every device of `to` and to our other devices (MULTICASTING).
    pub fn send<R: CryptoRng + ?Sized>(
        &mut self,
        to: &str,
        text: &str,
        now: i64,
        rng: &mut R,
    ) -> Vec<Output> {
        self.prepare(now, rng);
        let to = bare(to).to_owned();
        if to != self.cfg.jid && !self.dir.knows(&to) {
            if !self.dir.wait_for_list(&to, text, MAX_WAITING) {
                self.car.emit(GlueEvent::NotSent {
                    to,
                    device: None,
                    reason: NotSentReason::QueueFull,
                });
                return self.finish();
            }
            self.fetch_list(&to);
            return self.finish();
        }
        self.dispatch(&to, text, now, rng);
        self.finish()
    }

    fn dispatch<R: CryptoRng + ?Sized>(&mut self, to: &str, text: &str, now: i64, rng: &mut R) {
        self.dispatch_with(to, text, &ExtraTlvs::default(), now, rng);
    }

    fn dispatch_with<R: CryptoRng + ?Sized>(
        &mut self,
        to: &str,
        text: &str,
        extra: &ExtraTlvs,
        now: i64,
        rng: &mut R,
    ) {
        let b = &mut bridge!(self);
        outgoing::dispatch(
            b,
            &mut self.link,
            &mut self.reqs,
            self.online,
            to,
            text,
            extra,
            now,
            rng,
        );
    }

    fn fetch_list(&mut self, to: &str) {
        let fetching = self
            .reqs
            .any(|p| matches!(p, Pending::ContactDevices(j) if *j == to));
        if !fetching {
            let to = to.to_owned();
            self.reqs.send(
                &mut self.car,
                Responder::Jid(to.clone()),
                Pending::ContactDevices(to.clone()),
                |id| stanza::get_devices(id, &to),
            );
        }
    }

    /// Starts SMP with one device of `peer`.
    pub fn smp_start<R: CryptoRng + ?Sized>(
        &mut self,
        peer: &str,
        device: InstanceTag,
        secret: &[u8],
        question: Option<&str>,
        now: i64,
        rng: &mut R,
    ) -> Vec<Output> {
        self.prepare(now, rng);
        let evs = self
            .client
            .smp_start(peer, device, secret, question, now, rng);
        bridge!(self).otr_events(evs, false, now, rng);
        self.finish()
    }

    /// Answers an SMP request of one device of `peer`.
    pub fn smp_respond<R: CryptoRng + ?Sized>(
        &mut self,
        peer: &str,
        device: InstanceTag,
        secret: &[u8],
        now: i64,
        rng: &mut R,
    ) -> Vec<Output> {
        self.prepare(now, rng);
        let evs = self.client.smp_respond(peer, device, secret, now, rng);
        bridge!(self).otr_events(evs, false, now, rng);
        self.finish()
    }

    /// Timers: otr4's (heartbeats, expiry, DAKE timeouts) and prekey maintenance.
    pub fn tick<R: CryptoRng + ?Sized>(&mut self, now: i64, rng: &mut R) -> Vec<Output> {
        self.prepare(now, rng);
        let evs = self.client.tick(&mut self.prekeys, now, rng);
        bridge!(self).otr_events(evs, false, now, rng);
        // Requests nobody answered: sent again, or failed as `remote-server-timeout`.
        for p in self.reqs.expire(&mut self.car, now) {
            self.on_answered(p, IqResponse::timed_out(), now, rng);
        }
        let own = domain(&self.cfg.jid).to_owned();
        if self.online {
            self.link
                .retry_discovery(&mut bridge!(self), &mut self.reqs, &own, now, rng);
        }
        self.link
            .maintain(&mut bridge!(self), self.online, now, rng);
        self.repairs_expired(now, rng);
        self.finish()
    }

    // ---------------------------------------------------------------------------------
    // Receiving.

    /// A stanza arrived as text (e.g. from a client's own XMPP stack): its size, depth and
    /// element count are checked by a streaming scan before a tree is built
    /// (`crate::xml`); a refused stanza gives [`GlueError::Xml`].
    pub fn handle_xml<R: CryptoRng + ?Sized>(
        &mut self,
        xml: &str,
        now: i64,
        rng: &mut R,
    ) -> Vec<Output> {
        match crate::xml::parse(xml) {
            Ok(e) => self.handle(&e, now, rng),
            Err(e) => {
                self.stats.oversized_stanzas += 1;
                self.car.emit(GlueEvent::Error(GlueError::Xml(e)));
                self.finish()
            }
        }
    }

    /// A stanza arrived (a tree another XML stack built; checked against the same depth
    /// and element limits, without recursion, before anything reads it). It is classified
    /// once (`Incoming`) and handled by what it is.
    pub fn handle<R: CryptoRng + ?Sized>(
        &mut self,
        stanza: &Element,
        now: i64,
        rng: &mut R,
    ) -> Vec<Output> {
        self.prepare(now, rng);
        if let Err(e) = crate::xml::check_tree(stanza) {
            self.stats.oversized_stanzas += 1;
            self.car.emit(GlueEvent::Error(GlueError::Xml(e)));
            return self.finish();
        }
        match Incoming::parse(stanza) {
            Incoming::Message(m) => self.on_message(m, None, now, rng),
            Incoming::Presence { from, info } => self.dir.presence(&from, info),
            Incoming::Request(r) => self.on_request(r),
            Incoming::Response(r) => self.on_response(r, now, rng),
            Incoming::Ignored => {}
        }
        self.finish()
    }

    /// Answers disco#info (entity caps); every other request is `service-unavailable`.
    fn on_request(&mut self, r: IqRequest) {
        let reply = match r.disco_info {
            Some(node) => stanza::disco_info_result(&r.id, r.from.as_deref(), node.as_deref()),
            None => stanza::unavailable_answer(&r.id, r.from.as_deref()),
        };
        self.car.stanza(reply);
    }

    fn on_response<R: CryptoRng + ?Sized>(&mut self, r: IqResponse, now: i64, rng: &mut R) {
        let Some(id) = r.id.as_deref() else { return };
        let own = self.own(r.from.as_deref());
        let purpose = match self.reqs.answer(id, r.from.as_deref(), own) {
            Answer::Unknown => return,
            Answer::Spoofed => {
                // Someone else answered our request (ids are visible to contacts): ignored,
                // the request stays open for the entity we asked.
                self.stats.spoofed_replies += 1;
                tracing::warn!("an IQ reply from an entity we did not ask was ignored");
                return;
            }
            Answer::To(p) => p,
        };
        self.on_answered(purpose, r, now, rng);
    }

    /// The answer `r` to our request `purpose` (or its timeout).
    fn on_answered<R: CryptoRng + ?Sized>(
        &mut self,
        purpose: Pending,
        r: IqResponse,
        now: i64,
        rng: &mut R,
    ) {
        let ok = r.ok;
        match purpose {
            Pending::Mam => match self.catchup.page_end(ok, r.mam_fin) {
                PageEnd::More => self.catchup.next_page(&mut self.car, &mut self.reqs),
                PageEnd::Done => self.catch_up_done(now, rng),
            },
            p @ (Pending::DiscoItems { .. }
            | Pending::DiscoInfo { .. }
            | Pending::ServerItems { .. }) => {
                let b = &mut bridge!(self);
                let online = self.online;
                self.link
                    .discovered(b, &mut self.reqs, p, r, online, now, rng);
            }
            Pending::OwnDevices => {
                let payload = if ok { r.devices.flatten() } else { None };
                let own = self.cfg.jid.clone();
                self.on_device_list(&own, payload.as_ref(), now, rng);
            }
            Pending::ContactDevices(jid) => {
                let payload = if ok { r.devices.flatten() } else { None };
                self.on_device_list(&jid, payload.as_ref(), now, rng);
            }
            p @ (Pending::Publish { .. } | Pending::Configure { .. }) => {
                self.dir
                    .published_answer(&mut self.car, &mut self.reqs, p, r);
            }
            p
            @ (Pending::UploadItems | Pending::UploadInfo { .. } | Pending::UploadSlot { .. }) => {
                self.upload_answer(p, &r);
            }
        }
    }

    /// A message; `archive_id`: it came out of our archive under this id.
    fn on_message<R: CryptoRng + ?Sized>(
        &mut self,
        m: Message,
        archive_id: Option<String>,
        now: i64,
        rng: &mut R,
    ) {
        match m.kind {
            MessageKind::ArchiveResult {
                queryid,
                archive_id: id,
                inner,
            } => {
                // Only our own archive speaks for others (the CVE-2017-5589 pattern): a
                // <result> from anyone else is a forgery, whatever it wraps.
                if !self.own(m.from.as_deref()) {
                    self.stats.spoofed_forwards += 1;
                    tracing::warn!("a MAM result not from our own archive was ignored");
                    return;
                }
                if self.catchup.reads(&queryid) {
                    self.on_message(*inner, Some(id), now, rng);
                }
            }
            MessageKind::Carbon => {
                // Every device gets its own copy; carbons would only duplicate. A "carbon"
                // not from our own account is a forgery: counted, and dropped all the same.
                if self.own(m.from.as_deref()) {
                    self.stats.carbons_ignored += 1;
                } else {
                    self.stats.spoofed_forwards += 1;
                    tracing::warn!("a carbon not from our own account was ignored");
                }
            }
            MessageKind::Error => {}
            MessageKind::DeviceList(payload) => {
                // PEP notifications come from the list owner's bare JID (its server on its
                // behalf); one from a full JID is a client making it up.
                let from = m.from.unwrap_or_default();
                if from != bare(&from) || from.is_empty() {
                    self.stats.spoofed_lists += 1;
                    return;
                }
                self.on_device_list(&from, payload.as_ref(), now, rng);
            }
            MessageKind::Chat(chat) => {
                let from = m.from.unwrap_or_default();
                self.on_chat(bare(&from), chat, archive_id, now, rng);
            }
        }
    }

    /// A chat message from `from_bare`: a prekey-server reply, or OTRv4 payloads.
    fn on_chat<R: CryptoRng + ?Sized>(
        &mut self,
        from_bare: &str,
        chat: Chat,
        archive_id: Option<String>,
        now: i64,
        rng: &mut R,
    ) {
        let from_archive = archive_id.is_some();
        let id = archive_id.or_else(|| chat.stanza_id(&self.cfg.jid).map(str::to_owned));
        // A server may archive one message twice (a message to our own bare JID is both
        // outgoing and incoming for Prosody's MAM), under two archive ids: the sender's
        // XEP-0359 origin id catches that.
        if let Some(o) = &chat.origin_id
            && self.catchup.seen(&format!("origin:{from_bare}#{o}"))
        {
            return;
        }
        if let Some(id) = &id {
            if self.catchup.seen(id) {
                return;
            }
            self.catchup.processed(id, self.online);
        }
        if self.link.is_server(from_bare) {
            // A prekey-server reply found in the archive belongs to an exchange of an
            // earlier connection (exchanges are not persisted): stale, dropped.
            if from_archive {
                return;
            }
            if let Some(text) = chat.body {
                let published = self.link.body(
                    &mut bridge!(self),
                    &mut self.stats,
                    from_bare,
                    &text,
                    now,
                    rng,
                );
                if published {
                    self.list_self(now);
                }
            }
            return;
        }
        let for_us = chat.to_bare.as_deref().is_none_or(|t| t == self.cfg.jid);
        let carried = match chat.carried {
            None => {
                if !from_archive && let Some(body) = chat.body {
                    self.on_v3_body(from_bare, &body, now, rng);
                }
                return;
            }
            Some(Ok(c)) => c,
            Some(Err(error)) => {
                self.car.emit(GlueEvent::Error(GlueError::Stanza {
                    from: from_bare.to_owned(),
                    error,
                }));
                return;
            }
        };
        let me = self.tag();
        if from_bare == self.cfg.jid && carried.from_tag == me {
            return; // our own copy, archived
        }
        let origin = chat.origin_id.as_deref();
        // A user message to our account whose sender does not know this device (one our
        // account sent to a contact, back from our archive, names the contact's devices).
        let unknown_to_sender =
            for_us && carried.devices.as_ref().is_some_and(|d| !d.contains(&me));
        for p in carried.payloads {
            if p.to_tag.is_some_and(|t| t != me) {
                continue;
            }
            let evs = self
                .client
                .receive(from_bare, &p.text, &mut self.prekeys, now, rng);
            let from = (from_bare, carried.from_tag);
            self.received(from, origin, carried.unreadable.as_deref(), evs, now, rng);
        }
        if unknown_to_sender {
            self.not_for_us(from_bare, carried.from_tag, origin, now);
        }
    }

    /// otr4's events for a payload from device `from` (bare JID, tag) of a stanza with
    /// origin id `origin` (`unreadable`: the origin id of our message it says it could not
    /// read): an unreadable message is reported with its id and named in our error
    /// message; an error message from a device we have a session with repairs it.
    fn received<R: CryptoRng + ?Sized>(
        &mut self,
        from: (&str, InstanceTag),
        origin: Option<&str>,
        unreadable: Option<&str>,
        evs: Vec<Event>,
        now: i64,
        rng: &mut R,
    ) {
        let mut rest = Vec::with_capacity(evs.len());
        for e in evs {
            match e {
                Event::Error {
                    peer,
                    instance,
                    error,
                } => {
                    let unreadable = matches!(
                        error,
                        ConversationError::Unreadable(_) | ConversationError::NotInPrivateState
                    );
                    if unreadable && let Some(o) = origin {
                        self.car.unreadable(&peer, o);
                    }
                    self.car.emit(GlueEvent::Undecryptable {
                        from: peer,
                        device: instance,
                        error,
                        message: origin.map(str::to_owned),
                    });
                }
                Event::PeerError { code, .. }
                    if matches!(
                        code,
                        ErrorCode::UnreadableMessage | ErrorCode::NotInPrivateState
                    ) && self
                        .client
                        .conversation(from.0, from.1)
                        .is_some_and(otr4::Conversation::is_encrypted) =>
                {
                    self.repair(from.0, from.1, code, unreadable, now, rng);
                }
                other => rest.push(other),
            }
        }
        bridge!(self).otr_events(rest, true, now, rng);
    }

    /// Device `tag` of `jid`, with which we have an encrypted session, could not read our
    /// message (`message`: its origin id, if it said): a new DAKE with it, interactive if
    /// it is online, else through the prekey server; rate-limited (an error message is
    /// unauthenticated), the live session kept until the new one is up, nothing re-sent.
    fn repair<R: CryptoRng + ?Sized>(
        &mut self,
        jid: &str,
        tag: InstanceTag,
        code: ErrorCode,
        message: Option<&str>,
        now: i64,
        rng: &mut R,
    ) {
        let online = self.dir.is_online(jid, tag);
        let action = match self.heal.begin(jid, tag, !online, now) {
            Err(why) => why,
            Ok(()) if online => {
                let evs = self.client.start_dake(jid, Some(tag), now, rng);
                bridge!(self).otr_events(evs, false, now, rng);
                RepairAction::Interactive
            }
            Ok(()) => {
                self.repair_offline(jid, tag, now, rng);
                RepairAction::ThroughPrekeyServer
            }
        };
        tracing::info!("device {tag} of {jid} could not read our message ({code:?}): {action:?}");
        self.car.emit(GlueEvent::SessionRepair {
            peer: jid.to_owned(),
            device: tag,
            code,
            message: message.map(str::to_owned),
            action,
        });
    }

    /// A repair through the prekey server: an empty text waits for the device's ensemble
    /// (the non-interactive DAKE then replaces the session; the held texts follow).
    fn repair_offline<R: CryptoRng + ?Sized>(
        &mut self,
        jid: &str,
        tag: InstanceTag,
        now: i64,
        rng: &mut R,
    ) {
        let w = crate::prekey_link::Waiting {
            tag,
            text: String::new(),
            extra: ExtraTlvs::default(),
            sent_to: None,
        };
        let online = self.online;
        self.link
            .send_offline(&mut bridge!(self), &mut self.reqs, jid, w, online, now, rng);
    }

    /// Repairs that waited too long: an unanswered interactive one goes through the
    /// prekey server; one that got nowhere there either ends, its texts sent as usual.
    fn repairs_expired<R: CryptoRng + ?Sized>(&mut self, now: i64, rng: &mut R) {
        for e in self.heal.expire(now) {
            match e {
                Expired::TryOffline(jid, tag) => self.repair_offline(&jid, tag, now, rng),
                Expired::GiveUp(jid, tag, held) => {
                    tracing::warn!("the repair of device {tag} of {jid} got no new session");
                    for h in held {
                        let online = self.online;
                        outgoing::send_one(
                            &mut bridge!(self),
                            &mut self.link,
                            &mut self.reqs,
                            online,
                            &jid,
                            tag,
                            h,
                            now,
                            rng,
                        );
                    }
                }
            }
        }
    }

    /// A user message from device `tag` of `from` names the devices its sender knows, and
    /// not us: the sender does not list us. Our list is read again and our entry published again.
    /// (During catch-up the list is read when it ends.)
    fn not_for_us(&mut self, from: &str, tag: InstanceTag, origin: Option<&str>, now: i64) {
        let reannounced = self.heal.may_reannounce(now) && self.dir.reannounce();
        if reannounced && self.online {
            let own = self.cfg.jid.clone();
            self.reqs
                .send(&mut self.car, Responder::Own, Pending::OwnDevices, |id| {
                    stanza::get_devices(id, &own)
                });
        }
        self.car.emit(GlueEvent::NotForThisDevice {
            from: from.to_owned(),
            device: tag,
            message: origin.map(str::to_owned),
            reannounced,
        });
    }

    /// A plain body from a contact, with OTRv3 on (docs/xmpp-glue.md §11): OTR text — a
    /// query message, a whitespace-tagged text, an OTRv3 message or fragment, an OTR error
    /// message — goes to otr4, which speaks OTRv3 with a contact whose client offers only
    /// that. Other plaintext is not shown (as for OTRv4 contacts), nor are archived bodies
    /// (an OTRv3 message cannot be read later) or our own. A contact known to have OTRv4
    /// devices never gets OTRv3: its plain OTR text is dropped, so that whoever controls
    /// the server cannot downgrade it to an OTRv3 session with a key of their own.
    fn on_v3_body<R: CryptoRng + ?Sized>(
        &mut self,
        from_bare: &str,
        body: &str,
        now: i64,
        rng: &mut R,
    ) {
        if from_bare == self.cfg.jid || !bridge!(self).v3_enabled() || !is_otr_text(body) {
            return;
        }
        if !self
            .dir
            .devices_of(from_bare, &self.cfg.jid, self.tag())
            .is_empty()
        {
            self.stats.otrv3_refused += 1;
            return;
        }
        let evs = self
            .client
            .receive(from_bare, body, &mut self.prekeys, now, rng);
        bridge!(self).otr_events(evs, true, now, rng);
    }
}

/// Whether a plain body carries OTR: the `?OTR` prefix of every OTR message (query, error,
/// encoded, fragment) or the whitespace tag's base (otrv4.md §"Whitespace Tags").
fn is_otr_text(body: &str) -> bool {
    const TAG_BASE: &str = "\x20\x09\x20\x20\x09\x09\x09\x09\x20\x09\x20\x09\x20\x09\x20\x20";
    body.contains("?OTR") || body.contains(TAG_BASE)
}
