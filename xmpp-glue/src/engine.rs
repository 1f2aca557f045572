//! The sans-IO core of the glue: one [`Engine`] per device turns stanzas, time and an RNG
//! into stanzas to send and [`GlueEvent`]s, on top of [`otr4::Client`] (docs/xmpp-glue.md).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use minidom::Element;
use otr4::InstanceTag;
use otr4::conversation::{
    Client, ConversationError, ConversationState, Event, OfflineEnsembles, PERSIST_KEY_LEN,
    PrekeyOutcome, SmpUpdate,
};
use otr4::crypto::fingerprint::{FINGERPRINT_LEN, Fingerprint};
use otr4::prekey::{PrekeyStore, RefillPolicy};
use otr4::wire::encoded::{IncomingPrekey, classify_prekey, decode_prekey, encode_prekey};
use otr4::wire::fragment::{FragmentKind, Reassembler};
use otr4::wire::prekey_messages::PrekeyServerMessage;
use otr4::wire::tlv::{Tlv, TlvType};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_core::{CryptoRng, Rng};
use serde::{Deserialize, Serialize};

use crate::devices::{DeviceChange, DeviceEntry, DeviceList, ListIssue, TooManyDevices};
use crate::ns;
use crate::stanza::{self, MamFrom, Payload, PresenceInfo, StanzaError, bare, domain};
use crate::trust::{Pin, Trust, TrustStore};

/// How many archive ids are remembered to drop duplicate deliveries.
pub const SEEN_IDS: usize = 1024;
/// MAM page size during catch-up.
pub const MAM_PAGE: usize = 50;
/// Most texts waiting per contact (for its device list or its ensembles).
pub const MAX_WAITING: usize = 100;
/// The glue's default refill: 20 prekeys per batch keeps a publication well under the
/// usual 256 KiB stanza limits of XMPP servers; top up below 10.
pub const DEFAULT_REFILL: RefillPolicy = RefillPolicy {
    batch: 20,
    low_watermark: 10,
    status_interval: 3600,
    renew_before: 86_400,
};

/// The use indication (otrv4.md §"Extra Symmetric Key": the first 4 bytes of a type 7 TLV
/// say what the key is for, the rest is use-specific) our own-device copies carry: the rest
/// of the TLV is the bare JID the message was sent to (docs/xmpp-glue.md §4), inside the
/// encryption so the server cannot redirect it. A type 7 TLV is on the spec's list, so other
/// implementations accept it silently (an unassigned type would be a "corrupted TLV").
pub const SENT_TO_CONTEXT: [u8; 4] = *b"O4to";

fn sent_to_tlv(to: Option<&str>) -> Vec<Tlv> {
    to.map(|t| {
        let mut value = SENT_TO_CONTEXT.to_vec();
        value.extend_from_slice(t.as_bytes());
        Tlv {
            typ: TlvType::ExtraSymmetricKey,
            value,
        }
    })
    .into_iter()
    .collect()
}

fn sent_to_of(tlvs: &[Tlv]) -> Option<String> {
    tlvs.iter()
        .filter(|t| t.typ == TlvType::ExtraSymmetricKey)
        .find_map(|t| t.value.strip_prefix(SENT_TO_CONTEXT.as_slice()))
        .and_then(|v| String::from_utf8(v.to_vec()).ok())
}

/// A message waiting for a device's ensemble.
#[derive(Debug, Clone)]
struct Waiting {
    tag: InstanceTag,
    text: String,
    sent_to: Option<String>,
}

/// A prekey server pinned for a domain (docs/xmpp-glue.md §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerPin {
    /// The server's JID (also its identity in the prekey DAKE).
    pub jid: String,
    /// Its fingerprint, 112 lowercase hex digits.
    pub fingerprint: String,
}

/// What an engine is configured with.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Our bare JID.
    pub jid: String,
    /// A label for our entry in the device list.
    pub label: String,
    /// Our domain's prekey server, if known in advance (else discovered and pinned).
    pub prekey_server: Option<ServerPin>,
    /// When to refill the server's stock of our prekeys.
    pub refill: RefillPolicy,
}

impl EngineConfig {
    /// Defaults for `jid`: discovery, [`DEFAULT_REFILL`].
    pub fn new(jid: &str, label: &str) -> EngineConfig {
        EngineConfig {
            jid: jid.to_owned(),
            label: label.to_owned(),
            prekey_server: None,
            refill: DEFAULT_REFILL,
        }
    }
}

/// Where this device is in its account's archive (XEP-0313).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArchivePos {
    /// Never connected: the first connection only learns where the archive ends.
    #[default]
    Unknown,
    /// The archive was empty when we first looked: catch up from its start.
    Start,
    /// After this archive id.
    After(String),
}

/// What the glue persists besides the otr4 client (docs/xmpp-glue.md §7).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlueState {
    /// Our account's device list as last read.
    pub own_list: DeviceList,
    /// Our prekey server confirmed a publication (we may list ourselves).
    pub published: bool,
    /// We have been on our own device list (if we disappear from it, we were removed).
    pub listed: bool,
    /// We were removed from our device list by another device.
    pub removed: bool,
    /// The last non-empty device list of each contact.
    pub contacts: BTreeMap<String, DeviceList>,
    /// Pinned fingerprints.
    pub trust: TrustStore,
    /// Where MAM catch-up resumes.
    pub archive: ArchivePos,
    /// Recently processed archive ids (duplicate deliveries are dropped).
    pub seen_ids: VecDeque<String>,
    /// Prekey servers pinned by domain.
    pub servers: BTreeMap<String, ServerPin>,
}

/// Errors the glue reports. `Display` is a message for users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GlueError {
    /// Our device cannot list itself: 8 devices are listed.
    #[error(transparent)]
    TooManyDevices(#[from] TooManyDevices),
    /// No prekey server was found on a domain.
    #[error("no OTRv4 prekey server found on {0}")]
    NoPrekeyServer(String),
    /// The prekey server of a domain announces another fingerprint than the pinned one.
    #[error(
        "the prekey server {jid} changed its fingerprint (pinned {pinned}, now {announced}); not used"
    )]
    ServerFingerprintChanged {
        /// The server.
        jid: String,
        /// What we pinned.
        pinned: String,
        /// What it announces now.
        announced: String,
    },
    /// A prekey-server exchange failed.
    #[error("prekey server: {0}")]
    PrekeyServer(ConversationError),
    /// Publishing our device list failed.
    #[error("publishing the device list failed: {0}")]
    DeviceListPublish(String),
    /// An OTRv4 element did not parse.
    #[error("malformed OTRv4 element from {from}: {error}")]
    Stanza {
        /// The sender.
        from: String,
        /// What was wrong.
        error: StanzaError,
    },
    /// This device was removed from the account's device list by another device.
    #[error("this device was removed from the account's OTRv4 device list")]
    DeviceRemoved,
    /// The persisted state could not be read.
    #[error("persisted state: {0}")]
    Persist(String),
    /// A stanza was refused before processing (too large, too deep, malformed).
    #[error("a stanza was refused: {0}")]
    Xml(#[from] crate::xml::XmlError),
}

/// Why a message did not go to a device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotSentReason {
    /// The contact lists no OTRv4 device.
    #[error("the contact has no OTRv4 device")]
    NoDevices,
    /// The device's key changed; accept it first.
    #[error("the device's key changed; accept or verify it before writing to it")]
    KeyChanged,
    /// The prekey server has no ensemble for the offline device.
    #[error("the device is offline and has no prekeys left on the server")]
    NoEnsembles,
    /// No prekey server is known for the contact's domain.
    #[error("the device is offline and no prekey server is known for its domain")]
    NoPrekeyServer,
    /// otr4 refused it (e.g. the session is finished).
    #[error("{0}")]
    Otr(String),
    /// Too many messages were waiting.
    #[error("too many messages waiting for this contact")]
    QueueFull,
    /// The device answered with another key than the pinned one: the message is held and
    /// sent only if the user accepts the new key ([`Engine::accept_fingerprint`]).
    #[error("held: the device's key changed; it is sent only if you accept the new key")]
    HeldUntilAccepted,
}

/// What the application is told.
#[derive(Debug)]
#[non_exhaustive]
pub enum GlueEvent {
    /// Catch-up is done and we are available.
    Online,
    /// A decrypted message.
    Message {
        /// The sender's bare JID.
        from: String,
        /// The sending device.
        device: InstanceTag,
        /// The text.
        text: String,
        /// For a copy from another device of ours: the contact it was sent to.
        sent_to: Option<String>,
        /// How much the sending device's key is trusted: [`Trust::Changed`] when the
        /// session's key is not the pinned one (the user has not accepted it), whatever
        /// the device list says.
        trust: Trust,
        /// Whether the device is on the sender's current device list (a device the
        /// contact — or our account — does not list may be stale or foreign).
        listed: bool,
    },
    /// An encrypted session with a device is up.
    Secure {
        /// The peer's bare JID.
        peer: String,
        /// The device.
        device: InstanceTag,
        /// Its fingerprint (hex).
        fingerprint: String,
        /// How much it is trusted.
        trust: Trust,
        /// Whether the session came from the non-interactive DAKE (through the prekey
        /// server; otrv4.md §"Non-Interactive DAKE": the responder has no online
        /// deniability).
        non_interactive: bool,
    },
    /// A contact's (or our own account's) device set changed.
    DevicesChanged {
        /// Whose list.
        jid: String,
        /// What changed.
        change: DeviceChange,
    },
    /// Something in a device list was dropped.
    DeviceListIssue {
        /// Whose list.
        jid: String,
        /// What.
        issue: ListIssue,
    },
    /// Trust in a device changed.
    TrustChanged {
        /// The contact.
        jid: String,
        /// The device.
        device: InstanceTag,
        /// The new trust.
        trust: Trust,
        /// A warning for the user (new device, changed key, verified).
        note: String,
    },
    /// SMP progress with a device.
    Smp {
        /// The peer.
        peer: String,
        /// The device.
        device: InstanceTag,
        /// What happened.
        update: SmpUpdate,
        /// The device's trust (as for [`GlueEvent::Message`]).
        trust: Trust,
        /// Whether the device is on the peer's current device list.
        listed: bool,
    },
    /// A payload for this device could not be processed (never dropped silently).
    Undecryptable {
        /// The sender.
        from: String,
        /// The sending device, if known.
        device: Option<InstanceTag>,
        /// Why.
        error: ConversationError,
    },
    /// A message was not sent to a device.
    NotSent {
        /// The contact.
        to: String,
        /// The device, if one.
        device: Option<InstanceTag>,
        /// Why.
        reason: NotSentReason,
    },
    /// Our prekeys were published.
    Published {
        /// How many prekey messages.
        prekeys: usize,
    },
    /// Our device is now on our account's device list.
    Listed,
    /// A prekey server was found and pinned.
    PrekeyServer(ServerPin),
    /// An error of the glue.
    Error(GlueError),
    /// Any other otr4 event (warnings, state changes), passed through.
    Otr(Event),
}

/// What the engine asks its caller to do: send a stanza, or show an event. Persist the
/// state ([`Engine::export`]) before sending the stanzas of a call.
#[derive(Debug)]
pub enum Output {
    /// Send this stanza (`jabber:client`).
    Stanza(Element),
    /// Tell the application.
    Event(GlueEvent),
}

/// Who may answer a request (docs/xmpp-glue.md §8): an IQ reply from anyone else is
/// ignored and counted, whatever its id.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Responder {
    /// Our own account: `from` absent, our bare JID or our full JID.
    Own,
    /// This exact JID (a contact's bare JID, a domain, a component).
    Jid(String),
}

/// What the engine refused because of who sent it (security counters; see
/// [`Engine::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// IQ results or errors with a known id from another entity than the one asked.
    pub spoofed_replies: u64,
    /// MAM results or carbons whose outer `from` is not our own account.
    pub spoofed_forwards: u64,
    /// Device-list notifications not from a bare JID.
    pub spoofed_lists: u64,
    /// Prekey-server messages from a server the exchange did not go to.
    pub spoofed_prekey_replies: u64,
    /// Prekey ensembles whose Client Profile is not the pinned key of that device.
    pub rejected_ensembles: u64,
    /// Stanzas over the size, depth or element-count limits of [`crate::xml`].
    pub oversized_stanzas: u64,
    /// Genuine carbons (from our own account), ignored: every device has its own copy.
    pub carbons_ignored: u64,
}

#[derive(Debug)]
enum Pending {
    DiscoItems { domain: String },
    DiscoInfo { domain: String, jid: String },
    ServerItems { domain: String, jid: String },
    OwnDevices,
    ContactDevices(String),
    Publish { list: DeviceList, retried: bool },
    Configure { list: DeviceList },
    Mam,
}

/// One device's glue: routing, device lists, discovery, presence, catch-up and trust
/// around an [`otr4::Client`].
pub struct Engine {
    cfg: EngineConfig,
    client: Client,
    /// The secrets of our published Prekey messages (exported with the client).
    prekeys: PrekeyStore,
    state: GlueState,
    full_jid: Option<String>,
    /// Available OTRv4 devices by bare JID, then full JID.
    presence: BTreeMap<String, BTreeMap<String, InstanceTag>>,
    iqs: BTreeMap<String, (Responder, Pending)>,
    /// Ids of requests and messages: random (a contact who sees our message ids cannot
    /// predict them), from a generator seeded once from the caller's RNG.
    ids: StdRng,
    /// Texts waiting for a contact's device list.
    waiting_list: BTreeMap<String, Vec<String>>,
    /// Texts for offline devices waiting for ensembles.
    waiting_ensembles: BTreeMap<String, Vec<Waiting>>,
    /// Ensemble queries under way: contact → the prekey server asked.
    queries_inflight: BTreeMap<String, String>,
    discovering: BTreeSet<String>,
    own_list_fetched: bool,
    catching_up: Option<String>,
    online: bool,
    link_domain: Option<String>,
    reassembler: Reassembler,
    out: Vec<Output>,
    outbox: Vec<(String, Payload)>,
    stats: EngineStats,
    /// Whether the pinned keys were given to otr4 ([`Engine::prepare`]).
    expectations_set: bool,
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

fn hex_fp(f: &Fingerprint) -> String {
    hex::encode(f.as_bytes())
}

fn parse_fp(s: &str) -> Option<Fingerprint> {
    let v = hex::decode(s).ok()?;
    let a: [u8; FINGERPRINT_LEN] = v.try_into().ok()?;
    Some(Fingerprint(a))
}

impl Engine {
    /// An engine for `client` (its own JID must be `config.jid`) and its prekey store
    /// (`PrekeyStore::new(tag)` for a new account) with persisted `state`.
    pub fn new<R: CryptoRng + ?Sized>(
        config: EngineConfig,
        client: Client,
        prekeys: PrekeyStore,
        state: GlueState,
        rng: &mut R,
    ) -> Engine {
        let mut state = state;
        if let Some(p) = &config.prekey_server {
            state
                .servers
                .insert(domain(&config.jid).to_owned(), p.clone());
        }
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Engine {
            cfg: config,
            client,
            prekeys,
            state,
            full_jid: None,
            presence: BTreeMap::new(),
            iqs: BTreeMap::new(),
            ids: StdRng::from_seed(seed),
            waiting_list: BTreeMap::new(),
            waiting_ensembles: BTreeMap::new(),
            queries_inflight: BTreeMap::new(),
            discovering: BTreeSet::new(),
            own_list_fetched: false,
            catching_up: None,
            online: false,
            link_domain: None,
            reassembler: Reassembler::new(FragmentKind::Prekey),
            out: Vec::new(),
            outbox: Vec::new(),
            stats: EngineStats::default(),
            expectations_set: false,
        }
    }

    /// Before the first use of the otr4 client after [`Engine::new`]: tells it every
    /// pinned key (it encrypts user content only to the keys the user accepted; the
    /// expectations are not persisted by otr4).
    fn prepare<R: CryptoRng + ?Sized>(&mut self, now: i64, rng: &mut R) {
        if self.expectations_set {
            return;
        }
        self.expectations_set = true;
        for (jid, tag, fp) in self.state.trust.accepted() {
            if let Some(f) = parse_fp(&fp) {
                let evs = self
                    .client
                    .expect_fingerprint(&jid, InstanceTag(tag), Some(f), now, rng);
                self.otr_events(evs, false, now, rng);
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

    /// The glue state.
    pub fn state(&self) -> &GlueState {
        &self.state
    }

    /// Whether catch-up finished and we announced ourselves.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// The devices of `jid` we know (from its list; ours without this device).
    pub fn devices_of(&self, jid: &str) -> Vec<InstanceTag> {
        if jid == self.cfg.jid {
            let me = self.tag();
            return self
                .state
                .own_list
                .tags()
                .into_iter()
                .filter(|t| *t != me)
                .collect();
        }
        self.state
            .contacts
            .get(jid)
            .map(DeviceList::tags)
            .unwrap_or_default()
    }

    /// Whether the device `tag` of `jid` is available now.
    pub fn is_device_online(&self, jid: &str, tag: InstanceTag) -> bool {
        self.presence
            .get(jid)
            .is_some_and(|m| m.values().any(|t| *t == tag))
    }

    /// Saves the otr4 client (encrypted with `key`) and the glue state (JSON).
    pub fn export<R: CryptoRng + ?Sized>(
        &self,
        key: &[u8; PERSIST_KEY_LEN],
        rng: &mut R,
    ) -> (Vec<u8>, Vec<u8>) {
        let client = self.client.export(&self.prekeys, key, rng);
        let state = serde_json::to_vec_pretty(&self.state).unwrap_or_default();
        (client, state)
    }

    /// Restores what [`Engine::export`] saved.
    pub fn import<R: CryptoRng + ?Sized>(
        config: EngineConfig,
        key: &[u8; PERSIST_KEY_LEN],
        client: &[u8],
        state: &[u8],
        rng: &mut R,
    ) -> Result<Engine, GlueError> {
        let (c, prekeys) =
            Client::import(key, client).map_err(|e| GlueError::Persist(e.to_string()))?;
        let s: GlueState =
            serde_json::from_slice(state).map_err(|e| GlueError::Persist(e.to_string()))?;
        Ok(Engine::new(config, c, prekeys, s, rng))
    }

    fn id(&mut self) -> String {
        format!("{:016x}{:016x}", self.ids.next_u64(), self.ids.next_u64())
    }

    fn emit(&mut self, e: GlueEvent) {
        self.out.push(Output::Event(e));
    }

    fn stanza(&mut self, s: Element) {
        self.out.push(Output::Stanza(s));
    }

    /// Sends the request `make` builds; its reply is accepted only from `from`.
    fn request(&mut self, from: Responder, purpose: Pending, make: impl FnOnce(&str) -> Element) {
        let id = self.id();
        let s = make(&id);
        self.iqs.insert(id, (from, purpose));
        self.stanza(s);
    }

    /// Whether `from` (a stanza's `from`, absent for our server on our behalf) is our own
    /// account.
    fn is_own_account(&self, from: Option<&str>) -> bool {
        match from {
            None => true,
            Some(f) => {
                f.eq_ignore_ascii_case(&self.cfg.jid)
                    || self
                        .full_jid
                        .as_deref()
                        .is_some_and(|full| full.eq_ignore_ascii_case(f))
            }
        }
    }

    fn answers(&self, who: &Responder, from: Option<&str>) -> bool {
        match who {
            Responder::Own => self.is_own_account(from),
            Responder::Jid(j) => from.is_some_and(|f| f.eq_ignore_ascii_case(j)),
        }
    }

    /// Collects the otr4 payloads into one stanza per recipient and returns the outputs.
    fn finish(&mut self) -> Vec<Output> {
        let mut by_to: Vec<(String, Vec<Payload>)> = Vec::new();
        for (to, p) in core::mem::take(&mut self.outbox) {
            match by_to.iter_mut().find(|(t, _)| *t == to) {
                Some((_, v)) => v.push(p),
                None => by_to.push((to, vec![p])),
            }
        }
        let tag = self.tag();
        for (to, payloads) in by_to {
            let id = self.id();
            let m = stanza::multicast_message(&to, &id, tag, &payloads);
            self.stanza(m);
        }
        core::mem::take(&mut self.out)
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
        self.presence.clear();
        self.iqs.clear();
        self.own_list_fetched = false;
        self.discovering.clear();
        self.queries_inflight.clear();
        self.mam_page();
        self.finish()
    }

    /// The stream went down.
    pub fn offline(&mut self) {
        self.online = false;
        self.full_jid = None;
        self.presence.clear();
        self.iqs.clear();
        self.catching_up = None;
    }

    fn mam_page(&mut self) {
        let queryid = self.id();
        self.catching_up = Some(queryid.clone());
        let pos = self.state.archive.clone();
        self.request(Responder::Own, Pending::Mam, |id| match &pos {
            ArchivePos::Unknown => stanza::mam_query(id, &queryid, MamFrom::Last, 1),
            ArchivePos::Start => stanza::mam_query(id, &queryid, MamFrom::Start, MAM_PAGE),
            ArchivePos::After(a) => stanza::mam_query(id, &queryid, MamFrom::After(a), MAM_PAGE),
        });
    }

    fn catch_up_done<R: CryptoRng + ?Sized>(&mut self, now: i64, rng: &mut R) {
        self.catching_up = None;
        self.online = true;
        let p = stanza::presence_available(self.tag());
        self.stanza(p);
        let own = self.cfg.jid.clone();
        self.own_list_fetched = false;
        self.request(Responder::Own, Pending::OwnDevices, |id| {
            stanza::get_devices(id, &own)
        });
        let d = domain(&self.cfg.jid).to_owned();
        self.ensure_server(&d, now, rng);
        self.emit(GlueEvent::Online);
    }

    // ---------------------------------------------------------------------------------
    // The prekey server.

    fn ensure_server<R: CryptoRng + ?Sized>(&mut self, dom: &str, now: i64, rng: &mut R) {
        if let Some(pin) = self.state.servers.get(dom).cloned() {
            if dom == domain(&self.cfg.jid) && self.link_domain.is_none() {
                self.link(pin, now, rng);
            }
            return;
        }
        if self.discovering.insert(dom.to_owned()) {
            let d = dom.to_owned();
            self.request(
                Responder::Jid(d.clone()),
                Pending::DiscoItems { domain: d.clone() },
                |id| stanza::disco_items(id, &d),
            );
        }
    }

    fn link<R: CryptoRng + ?Sized>(&mut self, pin: ServerPin, now: i64, rng: &mut R) {
        let Some(fp) = parse_fp(&pin.fingerprint) else {
            return;
        };
        if let Err(e) = self
            .client
            .set_prekey_server(pin.jid.as_bytes(), fp, self.cfg.refill)
        {
            self.emit(GlueEvent::Error(GlueError::PrekeyServer(e)));
            return;
        }
        self.link_domain = Some(domain(&self.cfg.jid).to_owned());
        self.maintain(now, rng);
    }

    fn maintain<R: CryptoRng + ?Sized>(&mut self, now: i64, rng: &mut R) {
        if self.link_domain.is_none() || !self.online {
            return;
        }
        let first = if self.state.published {
            self.client.prekey_maintenance(&mut self.prekeys, now, rng)
        } else if self.client.prekey_exchange_pending(now) {
            Ok(None)
        } else {
            self.client
                .prekey_publication(&mut self.prekeys, None, now, rng)
        };
        match first {
            Ok(Some(m)) => self.send_to_own_server(&m),
            Ok(None) => {}
            Err(e) => self.emit(GlueEvent::Error(GlueError::PrekeyServer(e))),
        }
    }

    fn server_jid(&self, dom: &str) -> Option<String> {
        self.state.servers.get(dom).map(|p| p.jid.clone())
    }

    fn send_to_own_server(&mut self, m: &PrekeyServerMessage) {
        if let Some(j) = self.server_jid(domain(&self.cfg.jid)) {
            self.send_to_server(&j, m);
        }
    }

    fn send_to_server(&mut self, jid: &str, m: &PrekeyServerMessage) {
        let id = self.id();
        let s = stanza::body_message(jid, &id, &encode_prekey(&m.encode()));
        self.stanza(s);
    }

    fn on_disco_items<R: CryptoRng + ?Sized>(
        &mut self,
        dom: String,
        iq: &Element,
        now: i64,
        rng: &mut R,
    ) {
        let items = stanza::parse_disco_items(iq);
        let candidates: Vec<String> = items
            .into_iter()
            .filter(|i| i.node.is_none())
            .map(|i| i.jid)
            .collect();
        if candidates.is_empty() {
            self.no_server(&dom, now, rng);
            return;
        }
        for jid in candidates {
            let d = dom.clone();
            let j = jid.clone();
            self.request(
                Responder::Jid(jid.clone()),
                Pending::DiscoInfo { domain: d, jid: j },
                |id| stanza::disco_info(id, &jid),
            );
        }
    }

    fn no_server<R: CryptoRng + ?Sized>(&mut self, dom: &str, _now: i64, _rng: &mut R) {
        // Only report once no discovery request for the domain is left.
        let left = self.iqs.values().any(|(_, p)| {
            matches!(p, Pending::DiscoInfo { domain, .. } | Pending::ServerItems { domain, .. } | Pending::DiscoItems { domain } if domain == dom)
        });
        if left || self.state.servers.contains_key(dom) {
            return;
        }
        self.discovering.remove(dom);
        self.emit(GlueEvent::Error(GlueError::NoPrekeyServer(dom.to_owned())));
        let waiting: Vec<String> = self
            .waiting_ensembles
            .keys()
            .filter(|j| domain(j) == dom)
            .cloned()
            .collect();
        for j in waiting {
            for w in self.waiting_ensembles.remove(&j).unwrap_or_default() {
                self.emit(GlueEvent::NotSent {
                    to: j.clone(),
                    device: Some(w.tag),
                    reason: NotSentReason::NoPrekeyServer,
                });
            }
        }
    }

    fn on_server_fingerprint<R: CryptoRng + ?Sized>(
        &mut self,
        dom: String,
        jid: String,
        iq: &Element,
        now: i64,
        rng: &mut R,
    ) {
        let fp = stanza::parse_disco_items(iq)
            .into_iter()
            .find(|i| i.node.as_deref() == Some("fingerprint"))
            .and_then(|i| i.name)
            .map(|s| s.to_ascii_lowercase());
        let Some(fp) = fp.filter(|f| parse_fp(f).is_some()) else {
            self.no_server(&dom, now, rng);
            return;
        };
        if let Some(p) = self.state.servers.get(&dom) {
            if p.fingerprint != fp || p.jid != jid {
                let e = GlueError::ServerFingerprintChanged {
                    jid,
                    pinned: p.fingerprint.clone(),
                    announced: fp,
                };
                self.emit(GlueEvent::Error(e));
            }
            return;
        }
        let pin = ServerPin {
            jid,
            fingerprint: fp,
        };
        self.state.servers.insert(dom.clone(), pin.clone());
        self.discovering.remove(&dom);
        self.emit(GlueEvent::PrekeyServer(pin.clone()));
        if dom == domain(&self.cfg.jid) {
            self.link(pin, now, rng);
        }
        let waiting: Vec<String> = self
            .waiting_ensembles
            .keys()
            .filter(|j| domain(j) == dom)
            .cloned()
            .collect();
        for j in waiting {
            self.query_ensembles(&j, now, rng);
        }
    }

    /// Whether a prekey-server message from `server` belongs to an exchange with it:
    /// retrieval answers only from the server the query about that identity went to,
    /// everything else (the publication DAKE, storage status) only from our own server.
    fn prekey_reply_expected(&self, server: &str, msg: &PrekeyServerMessage) -> bool {
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
                .server_jid(domain(&self.cfg.jid))
                .is_some_and(|s| s.eq_ignore_ascii_case(server)),
        }
    }

    fn on_prekey_body<R: CryptoRng + ?Sized>(
        &mut self,
        server: &str,
        text: &str,
        now: i64,
        rng: &mut R,
    ) {
        let bin = match classify_prekey(text) {
            Ok(IncomingPrekey::Encoded(b)) => b,
            Ok(IncomingPrekey::Fragment(f)) => {
                match self
                    .reassembler
                    .push_fragment(&f, InstanceTag::UNKNOWN, now.max(0) as u64)
                {
                    Ok(Some(whole)) => match decode_prekey(&whole) {
                        Ok(b) => b,
                        Err(e) => return self.prekey_decode_error(e.to_string()),
                    },
                    Ok(None) => return,
                    Err(e) => return self.prekey_decode_error(e.to_string()),
                }
            }
            Err(e) => return self.prekey_decode_error(e.to_string()),
        };
        let msg = match PrekeyServerMessage::decode(&bin) {
            Ok(m) => m,
            Err(e) => return self.prekey_decode_error(e.to_string()),
        };
        if !self.prekey_reply_expected(server, &msg) {
            self.stats.spoofed_prekey_replies += 1;
            tracing::warn!("a prekey-server message from a server we did not ask was ignored");
            return;
        }
        match self
            .client
            .receive_prekey_server(&mut self.prekeys, &msg, now, rng)
        {
            Ok(PrekeyOutcome::Send(m)) => {
                // DAKE-3 goes back to the server of the exchange: ours.
                self.send_to_own_server(&m);
            }
            Ok(PrekeyOutcome::Published { prekey_ids, .. }) => {
                self.state.published = true;
                self.emit(GlueEvent::Published {
                    prekeys: prekey_ids.len(),
                });
                self.list_self(now);
            }
            Ok(PrekeyOutcome::PublicationFailed { prekey_ids }) => {
                self.emit(GlueEvent::Error(GlueError::PrekeyServer(
                    ConversationError::Prekey(otr4::prekey::PrekeyError::UnexpectedMessage),
                )));
                let _ = prekey_ids;
            }
            Ok(PrekeyOutcome::StorageStatus { publish, .. }) => {
                if let Some(m) = publish {
                    self.send_to_own_server(&m);
                }
            }
            Ok(PrekeyOutcome::Ensembles { peer, ensembles }) => {
                self.queries_inflight.remove(&peer);
                let waiting = self.waiting_ensembles.remove(&peer).unwrap_or_default();
                let tags: BTreeSet<InstanceTag> = waiting.iter().map(|w| w.tag).collect();
                let mut usable = Vec::new();
                for e in ensembles.chosen {
                    let tag = e.owner_tag();
                    if !tags.contains(&tag) {
                        continue;
                    }
                    // The prekey server is untrusted: a Client Profile other than the pinned
                    // key of that device is never used (and is offered to the user as a
                    // changed key, like any other).
                    let offered = hex_fp(&e.client_profile().fingerprint());
                    let pinned = self
                        .state
                        .trust
                        .fingerprint(&peer, tag.0)
                        .map(str::to_owned);
                    if pinned.is_some_and(|p| p != offered) {
                        self.stats.rejected_ensembles += 1;
                        self.pin(&peer, tag, &offered, now, rng);
                        continue;
                    }
                    if !self.state.trust.usable(&peer, tag.0) {
                        continue;
                    }
                    usable.push(e);
                }
                let covered: BTreeSet<InstanceTag> = usable.iter().map(|e| e.owner_tag()).collect();
                if !usable.is_empty() {
                    let evs = self.client.send_offline(
                        &peer,
                        OfflineEnsembles::Validated(&usable),
                        "",
                        now,
                        rng,
                    );
                    self.otr_events(evs, false, now, rng);
                }
                for w in waiting {
                    if !self.state.trust.usable(&peer, w.tag.0) {
                        self.emit(GlueEvent::NotSent {
                            to: peer.clone(),
                            device: Some(w.tag),
                            reason: NotSentReason::KeyChanged,
                        });
                    } else if covered.contains(&w.tag) {
                        let tlvs = sent_to_tlv(w.sent_to.as_deref());
                        let evs = self.client.send_to(&peer, w.tag, &w.text, &tlvs, now, rng);
                        self.otr_events(evs, false, now, rng);
                    } else {
                        self.emit(GlueEvent::NotSent {
                            to: peer.clone(),
                            device: Some(w.tag),
                            reason: NotSentReason::NoEnsembles,
                        });
                    }
                }
            }
            Ok(PrekeyOutcome::NoEnsembles { peer, .. }) => {
                self.queries_inflight.remove(&peer);
                for w in self.waiting_ensembles.remove(&peer).unwrap_or_default() {
                    self.emit(GlueEvent::NotSent {
                        to: peer.clone(),
                        device: Some(w.tag),
                        reason: NotSentReason::NoEnsembles,
                    });
                }
            }
            Ok(_) => {}
            Err(e) => self.emit(GlueEvent::Error(GlueError::PrekeyServer(e))),
        }
    }

    fn prekey_decode_error(&mut self, e: String) {
        tracing::warn!(error = %e, "undecodable prekey-server message");
        self.emit(GlueEvent::Error(GlueError::PrekeyServer(
            ConversationError::Prekey(otr4::prekey::PrekeyError::UnexpectedMessage),
        )));
    }

    fn query_ensembles<R: CryptoRng + ?Sized>(&mut self, peer: &str, now: i64, rng: &mut R) {
        let dom = domain(peer).to_owned();
        let Some(server) = self.server_jid(&dom) else {
            self.ensure_server(&dom, now, rng);
            return;
        };
        if self.queries_inflight.contains_key(peer) {
            return;
        }
        self.queries_inflight
            .insert(peer.to_owned(), server.clone());
        match self.client.ensemble_query(peer) {
            Ok(q) => self.send_to_server(&server, &q),
            Err(e) => {
                self.queries_inflight.remove(peer);
                self.emit(GlueEvent::Error(GlueError::PrekeyServer(e)));
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // Device lists.

    fn me(&self, now: i64) -> DeviceEntry {
        DeviceEntry {
            tag: self.tag().0,
            fingerprint: self.fingerprint(),
            label: self.cfg.label.clone(),
            seen: now,
        }
    }

    /// Adds or refreshes our entry once the list was read and our prekeys are published.
    fn list_self(&mut self, now: i64) {
        if !self.state.published || !self.own_list_fetched || self.state.removed {
            return;
        }
        if self
            .iqs
            .values()
            .any(|(_, p)| matches!(p, Pending::Publish { .. } | Pending::Configure { .. }))
        {
            return;
        }
        let mut list = self.state.own_list.clone();
        let pruned = list.prune(now, self.tag());
        let changed = match list.upsert(self.me(now), now) {
            Ok(c) => c,
            Err(e) => {
                self.emit(GlueEvent::Error(e.into()));
                return;
            }
        };
        if changed || !pruned.is_empty() {
            self.publish_list(list, false);
        } else if !self.state.listed {
            self.state.listed = true;
            self.emit(GlueEvent::Listed);
        }
    }

    fn publish_list(&mut self, list: DeviceList, retried: bool) {
        let payload = list.to_element();
        self.request(Responder::Own, Pending::Publish { list, retried }, |id| {
            stanza::publish_devices(id, payload)
        });
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
        let mut list = self.state.own_list.clone();
        if tag != self.tag() && list.remove(tag) {
            let own = self.cfg.jid.clone();
            self.client.forget_instance(&own, tag);
            self.publish_list(list, false);
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
            self.emit(GlueEvent::DeviceListIssue {
                jid: jid.to_owned(),
                issue,
            });
        }
        if jid == self.cfg.jid {
            self.on_own_list(new, now, rng);
        } else {
            self.on_contact_list(jid, new, now, rng);
            if let Some(texts) = self.waiting_list.remove(jid) {
                for t in texts {
                    self.dispatch(jid, &t, now, rng);
                }
            }
        }
    }

    fn apply_changes<R: CryptoRng + ?Sized>(
        &mut self,
        jid: &str,
        old: &DeviceList,
        new: &DeviceList,
        now: i64,
        rng: &mut R,
    ) {
        for change in old.diff(new) {
            match &change {
                DeviceChange::Added(d) => {
                    self.pin(jid, d.instance_tag(), &d.fingerprint, now, rng);
                }
                DeviceChange::FingerprintChanged { new, .. } => {
                    self.pin(jid, new.instance_tag(), &new.fingerprint, now, rng);
                }
                DeviceChange::Removed(d) => {
                    self.client.forget_instance(jid, d.instance_tag());
                    self.waiting_ensembles
                        .entry(jid.to_owned())
                        .or_default()
                        .retain(|w| w.tag != d.instance_tag());
                }
                DeviceChange::Emptied => {}
            }
            self.emit(GlueEvent::DevicesChanged {
                jid: jid.to_owned(),
                change,
            });
        }
    }

    fn on_contact_list<R: CryptoRng + ?Sized>(
        &mut self,
        jid: &str,
        new: DeviceList,
        now: i64,
        rng: &mut R,
    ) {
        let old = self.state.contacts.get(jid).cloned().unwrap_or_default();
        self.apply_changes(jid, &old, &new, now, rng);
        if !new.is_empty() {
            self.state.contacts.insert(jid.to_owned(), new);
        } else {
            self.state.contacts.entry(jid.to_owned()).or_default();
        }
    }

    fn on_own_list<R: CryptoRng + ?Sized>(&mut self, new: DeviceList, now: i64, rng: &mut R) {
        let me = self.tag();
        let strip = |l: &DeviceList| DeviceList {
            devices: l
                .devices
                .iter()
                .filter(|d| d.tag != me.0)
                .cloned()
                .collect(),
        };
        let old = self.state.own_list.clone();
        let own = self.cfg.jid.clone();
        if !new.is_empty() || old.is_empty() {
            self.apply_changes(&own, &strip(&old), &strip(&new), now, rng);
        } else {
            self.emit(GlueEvent::DevicesChanged {
                jid: own,
                change: DeviceChange::Emptied,
            });
        }
        let listed_now = new.get(me).is_some();
        if self.state.listed && !listed_now && !new.is_empty() && !self.state.removed {
            self.state.removed = true;
            self.emit(GlueEvent::Error(GlueError::DeviceRemoved));
        }
        if !new.is_empty() {
            self.state.own_list = new;
        }
        self.own_list_fetched = true;
        self.list_self(now);
    }

    // ---------------------------------------------------------------------------------
    // Trust.

    /// Sees `fp` for a device: pins it on first use (and tells otr4 it is the accepted
    /// key), or marks the device changed — otr4 keeps expecting the pinned key, so
    /// nothing is encrypted to `fp` until the user accepts it.
    fn pin<R: CryptoRng + ?Sized>(
        &mut self,
        jid: &str,
        tag: InstanceTag,
        fp: &str,
        now: i64,
        rng: &mut R,
    ) {
        let (trust, note) = match self.state.trust.pin(jid, tag.0, fp) {
            Pin::New => {
                self.expect(jid, tag, now, rng);
                (Trust::Tofu, "new device, trusted on first use".to_owned())
            }
            Pin::Same(_) => return,
            Pin::Changed { pinned } => (
                Trust::Changed,
                format!("the device's key changed (was {pinned}); not used until you accept it"),
            ),
        };
        self.emit(GlueEvent::TrustChanged {
            jid: jid.to_owned(),
            device: tag,
            trust,
            note,
        });
    }

    /// Tells otr4 the accepted (pinned) key of a device; what was held for it goes out
    /// if its session now uses that key.
    fn expect<R: CryptoRng + ?Sized>(
        &mut self,
        jid: &str,
        tag: InstanceTag,
        now: i64,
        rng: &mut R,
    ) {
        let fp = self.state.trust.fingerprint(jid, tag.0).and_then(parse_fp);
        if fp.is_some() {
            let evs = self.client.expect_fingerprint(jid, tag, fp, now, rng);
            self.otr_events(evs, false, now, rng);
        }
    }

    /// The trust to show for content from device `tag` of `jid`: [`Trust::Changed`] if the
    /// live session's key is not the pinned one, else the pin's trust.
    fn content_trust(&self, jid: &str, tag: InstanceTag) -> (Trust, bool) {
        let pinned = self.state.trust.fingerprint(jid, tag.0);
        let session = self
            .client
            .conversation(jid, tag)
            .and_then(|c| c.their_fingerprint())
            .map(|f| hex_fp(&f));
        let trust = match (pinned, session) {
            (Some(p), Some(s)) if p == s => {
                self.state.trust.trust(jid, tag.0).unwrap_or(Trust::Changed)
            }
            _ => Trust::Changed,
        };
        let me = self.tag();
        let listed = if jid == self.cfg.jid {
            tag != me && self.state.own_list.get(tag).is_some()
        } else {
            self.state
                .contacts
                .get(jid)
                .is_some_and(|l| l.get(tag).is_some())
        };
        (trust, listed)
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
        if self.state.trust.accept(jid, tag.0) {
            self.emit(GlueEvent::TrustChanged {
                jid: jid.to_owned(),
                device: tag,
                trust: Trust::Tofu,
                note: "new key accepted".to_owned(),
            });
            self.expect(jid, tag, now, rng);
        }
        self.finish()
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
        if to != self.cfg.jid && !self.state.contacts.contains_key(&to) {
            let w = self.waiting_list.entry(to.clone()).or_default();
            if w.len() >= MAX_WAITING {
                self.emit(GlueEvent::NotSent {
                    to,
                    device: None,
                    reason: NotSentReason::QueueFull,
                });
                return self.finish();
            }
            w.push(text.to_owned());
            let fetching = self
                .iqs
                .values()
                .any(|(_, p)| matches!(p, Pending::ContactDevices(j) if *j == to));
            if !fetching {
                let j = to.clone();
                self.request(
                    Responder::Jid(j.clone()),
                    Pending::ContactDevices(j.clone()),
                    |id| stanza::get_devices(id, &j),
                );
            }
            return self.finish();
        }
        self.dispatch(&to, text, now, rng);
        self.finish()
    }

    fn dispatch<R: CryptoRng + ?Sized>(&mut self, to: &str, text: &str, now: i64, rng: &mut R) {
        let targets = self.devices_of(to);
        if targets.is_empty() && to != self.cfg.jid {
            self.emit(GlueEvent::NotSent {
                to: to.to_owned(),
                device: None,
                reason: NotSentReason::NoDevices,
            });
        }
        for tag in targets {
            self.send_device(to, tag, text, None, now, rng);
        }
        if to != self.cfg.jid {
            let own = self.cfg.jid.clone();
            for tag in self.devices_of(&own) {
                self.send_device(&own, tag, text, Some(to), now, rng);
            }
        }
    }

    fn send_device<R: CryptoRng + ?Sized>(
        &mut self,
        to: &str,
        tag: InstanceTag,
        text: &str,
        sent_to: Option<&str>,
        now: i64,
        rng: &mut R,
    ) {
        let tlvs = sent_to_tlv(sent_to);
        if !self.state.trust.usable(to, tag.0) {
            self.emit(GlueEvent::NotSent {
                to: to.to_owned(),
                device: Some(tag),
                reason: NotSentReason::KeyChanged,
            });
            return;
        }
        let state = self.client.conversation(to, tag).map(|c| c.state());
        match state {
            Some(ConversationState::Encrypted)
            | Some(ConversationState::WaitingAuthR)
            | Some(ConversationState::WaitingAuthI) => {
                let evs = self.client.send_to(to, tag, text, &tlvs, now, rng);
                self.otr_events(evs, false, now, rng);
                return;
            }
            Some(ConversationState::Finished) => {
                let evs = self.client.end(to, Some(tag), now, rng);
                self.otr_events(evs, false, now, rng);
            }
            Some(ConversationState::Start) | None => {}
        }
        if self.is_device_online(to, tag) {
            let evs = self.client.start_dake(to, Some(tag), now, rng);
            self.otr_events(evs, false, now, rng);
            let evs = self.client.send_to(to, tag, text, &tlvs, now, rng);
            self.otr_events(evs, false, now, rng);
            return;
        }
        let w = self.waiting_ensembles.entry(to.to_owned()).or_default();
        if w.len() >= MAX_WAITING {
            self.emit(GlueEvent::NotSent {
                to: to.to_owned(),
                device: Some(tag),
                reason: NotSentReason::QueueFull,
            });
            return;
        }
        w.push(Waiting {
            tag,
            text: text.to_owned(),
            sent_to: sent_to.map(str::to_owned),
        });
        self.query_ensembles(to, now, rng);
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
        self.otr_events(evs, false, now, rng);
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
        self.otr_events(evs, false, now, rng);
        self.finish()
    }

    /// Timers: otr4's (heartbeats, expiry, DAKE timeouts) and prekey maintenance.
    pub fn tick<R: CryptoRng + ?Sized>(&mut self, now: i64, rng: &mut R) -> Vec<Output> {
        self.prepare(now, rng);
        let evs = self.client.tick(&mut self.prekeys, now, rng);
        self.otr_events(evs, false, now, rng);
        self.maintain(now, rng);
        self.finish()
    }

    // ---------------------------------------------------------------------------------
    // otr4 events.

    fn otr_events<R: CryptoRng + ?Sized>(
        &mut self,
        evs: Vec<Event>,
        receiving: bool,
        now: i64,
        rng: &mut R,
    ) {
        for e in evs {
            match e {
                Event::Send {
                    to,
                    to_instance,
                    text,
                } => self.outbox.push((
                    to,
                    Payload {
                        to_tag: to_instance,
                        text,
                    },
                )),
                Event::Received {
                    from,
                    from_instance: Some(device),
                    text,
                    tlvs,
                    encrypted: true,
                } => {
                    let sent_to = if from == self.cfg.jid {
                        sent_to_of(&tlvs)
                    } else {
                        None
                    };
                    if !text.is_empty() {
                        let (trust, listed) = self.content_trust(&from, device);
                        self.emit(GlueEvent::Message {
                            from,
                            device,
                            text,
                            sent_to,
                            trust,
                            listed,
                        });
                    }
                }
                Event::Secure {
                    peer,
                    instance,
                    their_fingerprint,
                    ..
                } => {
                    let fp = hex_fp(&their_fingerprint);
                    self.pin(&peer, instance, &fp, now, rng);
                    let (trust, _) = self.content_trust(&peer, instance);
                    let non_interactive = self
                        .client
                        .conversation(&peer, instance)
                        .and_then(|c| c.non_interactive_role())
                        .is_some();
                    self.emit(GlueEvent::Secure {
                        peer,
                        device: instance,
                        fingerprint: fp,
                        trust,
                        non_interactive,
                    });
                }
                Event::Smp {
                    peer,
                    instance,
                    update,
                } => {
                    if update == SmpUpdate::Succeeded {
                        let fp = self
                            .client
                            .conversation(&peer, instance)
                            .and_then(|c| c.their_fingerprint())
                            .map(|f| hex_fp(&f));
                        if let Some(fp) = fp
                            && self.state.trust.verify(&peer, instance.0, &fp)
                        {
                            self.emit(GlueEvent::TrustChanged {
                                jid: peer.clone(),
                                device: instance,
                                trust: Trust::Verified,
                                note: "verified with SMP".to_owned(),
                            });
                        }
                    }
                    let (trust, listed) = self.content_trust(&peer, instance);
                    self.emit(GlueEvent::Smp {
                        peer,
                        device: instance,
                        update,
                        trust,
                        listed,
                    });
                }
                Event::Error {
                    peer,
                    instance,
                    error,
                } if receiving => self.emit(GlueEvent::Undecryptable {
                    from: peer,
                    device: instance,
                    error,
                }),
                Event::NotSent {
                    reason: otr4::conversation::NotSentReason::Queued,
                    ..
                } => {}
                Event::NotSent {
                    peer,
                    instance,
                    reason: otr4::conversation::NotSentReason::KeyNotAccepted,
                    ..
                } => self.emit(GlueEvent::NotSent {
                    to: peer,
                    device: instance,
                    reason: NotSentReason::HeldUntilAccepted,
                }),
                // The extra key of our own-copy TLV is not used.
                Event::ExtraSymmetricKey { context, .. } if context == SENT_TO_CONTEXT => {}
                Event::NotSent {
                    peer,
                    instance,
                    reason,
                    ..
                } => self.emit(GlueEvent::NotSent {
                    to: peer,
                    device: instance,
                    reason: NotSentReason::Otr(format!("{reason:?}")),
                }),
                other => self.emit(GlueEvent::Otr(other)),
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // Receiving.

    /// A stanza arrived as text (e.g. from a client's own XMPP stack): its size, depth and
    /// element count are checked by a streaming scan before a tree is built
    /// ([`crate::xml`]); a refused stanza gives [`GlueError::Xml`].
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
                self.emit(GlueEvent::Error(GlueError::Xml(e)));
                self.finish()
            }
        }
    }

    /// A stanza arrived (a tree another XML stack built; checked against the same depth
    /// and element limits, without recursion, before anything reads it).
    pub fn handle<R: CryptoRng + ?Sized>(
        &mut self,
        stanza: &Element,
        now: i64,
        rng: &mut R,
    ) -> Vec<Output> {
        self.prepare(now, rng);
        if let Err(e) = crate::xml::check_tree(stanza) {
            self.stats.oversized_stanzas += 1;
            self.emit(GlueEvent::Error(GlueError::Xml(e)));
            return self.finish();
        }
        match stanza.name() {
            "message" if stanza.ns() == ns::CLIENT => self.on_message(stanza, None, now, rng),
            "presence" if stanza.ns() == ns::CLIENT => self.on_presence(stanza),
            "iq" if stanza.ns() == ns::CLIENT => self.on_iq(stanza, now, rng),
            _ => {}
        }
        self.finish()
    }

    fn on_presence(&mut self, p: &Element) {
        let Some(from) = p.attr("from") else { return };
        let b = bare(from).to_owned();
        match stanza::parse_presence(p) {
            PresenceInfo::Available(tag) => {
                self.presence
                    .entry(b)
                    .or_default()
                    .insert(from.to_owned(), tag);
            }
            PresenceInfo::Unavailable => {
                if let Some(m) = self.presence.get_mut(&b) {
                    m.remove(from);
                }
            }
            PresenceInfo::Other => {}
        }
    }

    fn on_iq<R: CryptoRng + ?Sized>(&mut self, iq: &Element, now: i64, rng: &mut R) {
        let typ = iq.attr("type").unwrap_or_default();
        if typ == "get" || typ == "set" {
            let reply = if typ == "get" && iq.get_child("query", ns::DISCO_INFO).is_some() {
                stanza::disco_info_result(iq)
            } else {
                stanza::iq_unavailable(iq)
            };
            self.stanza(reply);
            return;
        }
        let Some(id) = iq.attr("id") else { return };
        let Some((who, _)) = self.iqs.get(id) else {
            return;
        };
        if !self.answers(who, iq.attr("from")) {
            // Someone else answered our request (ids are visible to contacts): ignored,
            // the request stays open for the entity we asked.
            self.stats.spoofed_replies += 1;
            tracing::warn!("an IQ reply from an entity we did not ask was ignored");
            return;
        }
        let Some((_, purpose)) = self.iqs.remove(id) else {
            return;
        };
        let ok = typ == "result";
        match purpose {
            Pending::Mam => {
                let probe = self.state.archive == ArchivePos::Unknown;
                match stanza::parse_mam_fin(iq) {
                    Some((complete, last)) if ok => {
                        if let Some(l) = last.clone() {
                            self.state.archive = ArchivePos::After(l);
                        } else if probe {
                            self.state.archive = ArchivePos::Start;
                        }
                        if probe || complete || last.is_none() {
                            self.catch_up_done(now, rng);
                        } else {
                            self.mam_page();
                        }
                    }
                    // No MAM on this server: offline storage is all we get.
                    _ => self.catch_up_done(now, rng),
                }
            }
            Pending::DiscoItems { domain } => {
                if ok {
                    self.on_disco_items(domain, iq, now, rng);
                } else {
                    self.no_server(&domain, now, rng);
                }
            }
            Pending::DiscoInfo { domain, jid } => {
                if ok && stanza::is_prekey_server(iq) {
                    let (d, j) = (domain.clone(), jid.clone());
                    self.request(
                        Responder::Jid(jid.clone()),
                        Pending::ServerItems { domain: d, jid: j },
                        |id| stanza::disco_items(id, &jid),
                    );
                } else {
                    self.no_server(&domain, now, rng);
                }
            }
            Pending::ServerItems { domain, jid } => {
                if ok {
                    self.on_server_fingerprint(domain, jid, iq, now, rng);
                } else {
                    self.no_server(&domain, now, rng);
                }
            }
            Pending::OwnDevices => {
                let payload = if ok {
                    stanza::devices_payload(iq).flatten()
                } else {
                    None
                };
                let own = self.cfg.jid.clone();
                let payload = payload.cloned();
                self.on_device_list(&own, payload.as_ref(), now, rng);
            }
            Pending::ContactDevices(jid) => {
                let payload = if ok {
                    stanza::devices_payload(iq).flatten().cloned()
                } else {
                    None
                };
                self.on_device_list(&jid, payload.as_ref(), now, rng);
            }
            Pending::Publish { list, retried } => {
                if ok {
                    self.state.own_list = list;
                    if !self.state.listed {
                        self.state.listed = true;
                        self.emit(GlueEvent::Listed);
                    }
                } else if !retried && stanza::is_precondition_not_met(iq) {
                    self.request(
                        Responder::Own,
                        Pending::Configure { list },
                        stanza::configure_devices_node,
                    );
                } else {
                    self.emit(GlueEvent::Error(GlueError::DeviceListPublish(
                        String::from(iq),
                    )));
                }
            }
            Pending::Configure { list } => {
                if ok {
                    self.publish_list(list, true);
                } else {
                    self.emit(GlueEvent::Error(GlueError::DeviceListPublish(
                        String::from(iq),
                    )));
                }
            }
        }
    }

    fn seen(&mut self, id: &str) -> bool {
        if self.state.seen_ids.iter().any(|s| s == id) {
            return true;
        }
        self.state.seen_ids.push_back(id.to_owned());
        while self.state.seen_ids.len() > SEEN_IDS {
            self.state.seen_ids.pop_front();
        }
        false
    }

    fn on_message<R: CryptoRng + ?Sized>(
        &mut self,
        m: &Element,
        archive_id: Option<String>,
        now: i64,
        rng: &mut R,
    ) {
        if archive_id.is_none() {
            if let Some((queryid, id, inner)) = stanza::parse_mam_result(m) {
                // Only our own archive speaks for others (the CVE-2017-5589 pattern): a
                // <result> from anyone else is a forgery, whatever it wraps.
                if !self.is_own_account(m.attr("from")) {
                    self.stats.spoofed_forwards += 1;
                    tracing::warn!("a MAM result not from our own archive was ignored");
                    return;
                }
                // The first connection's probe only learns where the archive ends.
                let probing = self.state.archive == ArchivePos::Unknown;
                if self.catching_up.as_deref() == Some(queryid.as_str()) && !probing {
                    let inner = inner.clone();
                    self.on_message(&inner, Some(id), now, rng);
                }
                return;
            }
        }
        if stanza::is_carbon(m) {
            // Every device gets its own copy; carbons would only duplicate. A "carbon" not
            // from our own account is a forgery: counted, and dropped all the same.
            if self.is_own_account(m.attr("from")) {
                self.stats.carbons_ignored += 1;
            } else {
                self.stats.spoofed_forwards += 1;
                tracing::warn!("a carbon not from our own account was ignored");
            }
            return;
        }
        if m.attr("type") == Some("error") {
            return;
        }
        let from = m.attr("from").unwrap_or_default().to_owned();
        let from_bare = bare(&from).to_owned();
        if let Some(payload) = stanza::devices_payload(m) {
            // PEP notifications come from the list owner's bare JID (its server on its
            // behalf); one from a full JID is a client making it up.
            if from != from_bare || from.is_empty() {
                self.stats.spoofed_lists += 1;
                return;
            }
            let payload = payload.cloned();
            self.on_device_list(&from_bare, payload.as_ref(), now, rng);
            return;
        }
        let own = self.cfg.jid.clone();
        let from_archive = archive_id.is_some();
        let id = archive_id.or_else(|| stanza::stanza_id(m, &own));
        // A server may archive one message twice (a message to our own bare JID is both
        // outgoing and incoming for Prosody's MAM), under two archive ids: the sender's
        // XEP-0359 origin id catches that.
        if let Some(o) = stanza::origin_id(m) {
            let key = format!("origin:{from_bare}#{o}");
            if self.seen(&key) {
                return;
            }
        }
        if let Some(id) = &id {
            if self.seen(id) {
                return;
            }
            if self.state.archive != ArchivePos::Unknown || self.online {
                self.state.archive = ArchivePos::After(id.clone());
            }
        }
        let is_server = self.state.servers.values().any(|p| p.jid == from_bare);
        if is_server {
            // A prekey-server reply found in the archive belongs to an exchange of an
            // earlier connection (exchanges are not persisted): stale, dropped.
            if from_archive {
                return;
            }
            if let Some(b) = stanza::body(m) {
                self.on_prekey_body(&from_bare, &b, now, rng);
            }
            return;
        }
        let Some(carried) = stanza::parse_carried(m) else {
            return;
        };
        let carried = match carried {
            Ok(c) => c,
            Err(error) => {
                self.emit(GlueEvent::Error(GlueError::Stanza {
                    from: from_bare,
                    error,
                }));
                return;
            }
        };
        if from_bare == own && carried.from_tag == self.tag() {
            return; // our own copy, archived
        }
        let me = self.tag();
        for p in carried.payloads {
            if p.to_tag.is_some_and(|t| t != me) {
                continue;
            }
            let evs = self
                .client
                .receive(&from_bare, &p.text, &mut self.prekeys, now, rng);
            self.otr_events(evs, true, now, rng);
        }
    }
}
