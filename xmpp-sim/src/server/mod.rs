//! An in-memory XMPP server (Prosody 0.12 semantics) so the demo and the tests run a whole
//! multi-device OTRv4 scenario in one process: routing, presence, offline storage, MAM, carbons, PEP, disco and components.
//!
//! Stanzas are `minidom::Element`s in the `jabber:client` namespace. A session is a bound
//! full JID: [`SimServer::submit`] processes one stanza it sends (the `from` is stamped as a
//! real server does), [`SimServer::inbox`] drains what was delivered to it. Everything is
//! synchronous: when `submit` returns, every resulting stanza (including component replies)
//! sits in the recipients' inboxes.
//!
//! Simplifications vs Prosody 0.12:
//! - rosters are implicit: every pair of users is subscribed "both" unless
//!   [`SimServer::set_subscribed`] says otherwise; presence subscription stanzas are ignored;
//! - PEP interest is not filtered by XEP-0115 `+notify` features: every available resource
//!   of the owner and of every subscribed contact (access model permitting) is notified of
//!   every node, and gets the last item of every node on its initial presence;
//! - a stanza whose `from` is neither the session's full nor bare JID is rejected with
//!   [`SimError::SpoofedFrom`] (Prosody silently overwrites it);
//! - no s2s: a JID of a domain that is neither hosted nor a component gets
//!   `service-unavailable`;
//! - carbons go to available sessions only; error bounces are not archived.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use xmpp_glue::minidom::rxml::{Namespace, NcName};
use xmpp_glue::minidom::{Element, Node};

/// The client stanza namespace every stanza of the simulator uses.
pub const NS_CLIENT: &str = "jabber:client";
/// The component stream namespace; component output in it is converted to [`NS_CLIENT`].
pub const NS_COMPONENT: &str = "jabber:component:accept";
const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const NS_PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const NS_PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
const NS_PUBSUB_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
const NS_MAM: &str = "urn:xmpp:mam:2";
const NS_RSM: &str = "http://jabber.org/protocol/rsm";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
const NS_DELAY: &str = "urn:xmpp:delay";
const NS_SID: &str = "urn:xmpp:sid:0";
const NS_CARBONS: &str = "urn:xmpp:carbons:2";
const NS_HINTS: &str = "urn:xmpp:hints";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const NS_DATA: &str = "jabber:x:data";
const NS_PING: &str = "urn:xmpp:ping";
const NS_ROSTER: &str = "jabber:iq:roster";

/// Largest stanza a session may send (Prosody's default `c2s_stanza_size_limit`, 256 KiB).
pub const MAX_STANZA_BYTES: usize = 256 * 1024;
/// Offline messages kept per user; beyond it new messages bounce (`service-unavailable`).
pub const MAX_OFFLINE_PER_USER: usize = 1000;
/// Archived messages kept per user (MAM); the oldest is dropped beyond it.
pub const MAX_ARCHIVE_PER_USER: usize = 10_000;
/// Undrained stanzas kept per session; the oldest is dropped beyond it.
pub const MAX_INBOX_PER_SESSION: usize = 10_000;
/// Entries kept in the routing log.
pub const MAX_LOG: usize = 10_000;
/// MAM page size when the query gives no RSM `<max/>` (Prosody's default).
pub const MAM_DEFAULT_MAX: usize = 20;
/// Largest MAM page (Prosody's `max_archive_query_results` default).
pub const MAM_MAX_MAX: usize = 50;
/// PEP nodes per user.
pub const MAX_PEP_NODES: usize = 64;
/// Items kept per PEP node (`pubsub#max_items = max`).
pub const MAX_PEP_ITEMS: usize = 256;
/// Stanzas routed per [`SimServer::submit`] call (stops component ping-pong loops).
pub const MAX_ROUTING_STEPS: usize = 100_000;

/// A component's stanza handler: gets every stanza addressed to the component (with `from`
/// stamped), returns the stanzas to route (`from` the component or absent, `to` a JID).
pub type ComponentHandler = Box<dyn FnMut(&Element) -> Vec<Element> + Send>;

/// What the simulator refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// Not a valid JID (or a bare JID where a full one is needed, or the reverse).
    #[error("invalid JID: {0}")]
    InvalidJid(String),
    /// The user was never added.
    #[error("unknown user: {0}")]
    UnknownUser(String),
    /// `add_user` of an existing user.
    #[error("user exists: {0}")]
    UserExists(String),
    /// `add_component` on a hosted domain or an existing component.
    #[error("component JID in use: {0}")]
    ComponentExists(String),
    /// `connect` of a full JID that already has a session.
    #[error("already connected: {0}")]
    AlreadyConnected(String),
    /// No session for this full JID.
    #[error("not connected: {0}")]
    NotConnected(String),
    /// The stanza's `from` is not the session's full or bare JID.
    #[error("spoofed from {claimed:?} on session {session}")]
    SpoofedFrom {
        /// The sending session.
        session: String,
        /// The `from` it claimed.
        claimed: String,
    },
    /// The stanza exceeds [`MAX_STANZA_BYTES`]; the session was closed (policy-violation).
    #[error("stanza of {bytes} bytes exceeds {max}")]
    Oversized {
        /// Serialised size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Not a `message`, `presence` or `iq` in `jabber:client`, or not serialisable.
    #[error("not a stanza: {0}")]
    NotAStanza(String),
}

/// Counters for tests and the demo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Stanzas put in a session inbox or handed to a component (all kinds).
    pub delivered: u64,
    /// Of these, `message` stanzas (carbons and PEP notifications included).
    pub messages_delivered: u64,
    /// Messages put in offline storage.
    pub stored_offline: u64,
    /// Offline messages delivered on initial presence.
    pub offline_delivered: u64,
    /// Messages archived (one per archive copy).
    pub archived: u64,
    /// Carbon copies delivered (sent and received).
    pub carbons: u64,
    /// Error bounces generated by the server.
    pub bounced: u64,
    /// PEP event notifications delivered.
    pub pep_notifications: u64,
    /// Stanzas refused by `submit` (spoofed, oversized, not a stanza).
    pub rejected: u64,
    /// Stanzas dropped (full inbox, bad component output, routing loop).
    pub dropped: u64,
}

/// One routed stanza in the log: where it went and what it was.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    /// The session full JID or component JID it was delivered to.
    pub to: String,
    /// The stanza as delivered.
    pub stanza: Element,
}

/// A parsed, normalised JID (local and domain lowercased).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Jid {
    local: Option<String>,
    domain: String,
    resource: Option<String>,
}

impl Jid {
    fn parse(s: &str) -> Result<Jid, SimError> {
        let bad = || SimError::InvalidJid(s.to_owned());
        let (bare, resource) = match s.split_once('/') {
            Some((b, r)) => (b, Some(r)),
            None => (s, None),
        };
        let (local, domain) = match bare.split_once('@') {
            Some((l, d)) => (Some(l), d),
            None => (None, bare),
        };
        let ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 1023
                && !p.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        let ok_node = |p: &str| ok(p) && !p.contains(['"', '&', '\'', ':', '<', '>', '@', '/']);
        if !ok_node(domain)
            || local.is_some_and(|l| !ok_node(l))
            || resource.is_some_and(|r| !ok(r))
        {
            return Err(bad());
        }
        Ok(Jid {
            local: local.map(str::to_lowercase),
            domain: domain.to_lowercase(),
            resource: resource.map(str::to_owned),
        })
    }

    fn bare(&self) -> String {
        match &self.local {
            Some(l) => format!("{l}@{}", self.domain),
            None => self.domain.clone(),
        }
    }

    fn full(&self) -> String {
        match &self.resource {
            Some(r) => format!("{}/{r}", self.bare()),
            None => self.bare(),
        }
    }
}

fn domain_of(jid: &str) -> &str {
    let bare = bare_of(jid);
    bare.split_once('@').map_or(bare, |(_, d)| d)
}

fn bare_of(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(b, _)| b)
}

/// Where a stanza is addressed.
enum Dest {
    Component(String),
    Server(String),
    Bare(String),
    Full { bare: String, full: String },
    NoUser,
    Unknown,
}

/// Who sent a stanza being routed.
#[derive(Clone, Debug)]
enum Origin {
    Session(String),
    Component,
}

struct Session {
    bare: String,
    available: bool,
    priority: i8,
    presence: Option<Element>,
    carbons: bool,
    inbox: VecDeque<Element>,
}

struct Archived {
    id: String,
    stamp: i64,
    with: String,
    message: Element,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Open,
    Presence,
    Whitelist,
}

impl Access {
    fn parse(s: &str) -> Option<Access> {
        match s {
            "open" => Some(Access::Open),
            "presence" | "roster" => Some(Access::Presence),
            "whitelist" => Some(Access::Whitelist),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Access::Open => "open",
            Access::Presence => "presence",
            Access::Whitelist => "whitelist",
        }
    }
}

/// PEP node configuration (Prosody 0.12 defaults: presence, max_items 1, persistent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NodeConfig {
    access: Access,
    max_items: usize,
    persist: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            access: Access::Presence,
            max_items: 1,
            persist: true,
        }
    }
}

/// A parsed configuration field: `None` when the field is not one we model.
fn parse_config_field(var: &str, value: &str) -> Result<Option<ConfigField>, IqErr> {
    Ok(match var {
        "pubsub#access_model" => Some(ConfigField::Access(
            Access::parse(value).ok_or(IqErr::new("modify", "not-acceptable"))?,
        )),
        "pubsub#max_items" => Some(ConfigField::MaxItems(if value == "max" {
            MAX_PEP_ITEMS
        } else {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .map(|n| n.min(MAX_PEP_ITEMS))
                .ok_or(IqErr::new("modify", "not-acceptable"))?
        })),
        "pubsub#persist_items" => Some(ConfigField::Persist(match value {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => return Err(IqErr::new("modify", "not-acceptable")),
        })),
        _ => None,
    })
}

enum ConfigField {
    Access(Access),
    MaxItems(usize),
    Persist(bool),
}

impl NodeConfig {
    fn fields(form: &[(String, Vec<String>)]) -> Result<Vec<ConfigField>, IqErr> {
        let mut out = Vec::new();
        for (var, values) in form {
            let value = values.first().map_or("", String::as_str);
            if let Some(f) = parse_config_field(var, value)? {
                out.push(f);
            }
        }
        Ok(out)
    }
    fn apply(&mut self, fields: &[ConfigField]) {
        for f in fields {
            match f {
                ConfigField::Access(a) => self.access = *a,
                ConfigField::MaxItems(n) => self.max_items = *n,
                ConfigField::Persist(p) => self.persist = *p,
            }
        }
    }
    fn matches(&self, fields: &[ConfigField]) -> bool {
        fields.iter().all(|f| match f {
            ConfigField::Access(a) => self.access == *a,
            ConfigField::MaxItems(n) => self.max_items == *n,
            ConfigField::Persist(p) => self.persist == *p,
        })
    }
    fn form(&self) -> Element {
        let mut x = mk("x", NS_DATA, &[("type", "form")]);
        let max = self.max_items.to_string();
        for (var, value) in [
            ("FORM_TYPE", "http://jabber.org/protocol/pubsub#node_config"),
            ("pubsub#access_model", self.access.name()),
            ("pubsub#max_items", max.as_str()),
            (
                "pubsub#persist_items",
                if self.persist { "true" } else { "false" },
            ),
        ] {
            let mut f = mk("field", NS_DATA, &[("var", var)]);
            f.append_child(text_el("value", NS_DATA, value));
            x.append_child(f);
        }
        x
    }
}

#[derive(Default)]
struct PepNode {
    config: NodeConfig,
    /// `(item id, payload)`, oldest first.
    items: VecDeque<(String, Element)>,
}

impl PepNode {
    fn trim(&mut self) {
        while self.items.len() > self.config.max_items.clamp(1, MAX_PEP_ITEMS) {
            self.items.pop_front();
        }
    }
}

#[derive(Default)]
struct User {
    offline: VecDeque<Element>,
    archive: VecDeque<Archived>,
    pep: BTreeMap<String, PepNode>,
}

/// An IQ error: type, defined condition, optional application condition (pubsub#errors).
#[derive(Clone, Copy, Debug)]
struct IqErr {
    typ: &'static str,
    cond: &'static str,
    app: Option<(&'static str, &'static str)>,
}

impl IqErr {
    const fn new(typ: &'static str, cond: &'static str) -> IqErr {
        IqErr {
            typ,
            cond,
            app: None,
        }
    }
    const fn app(typ: &'static str, cond: &'static str, name: &'static str) -> IqErr {
        IqErr {
            typ,
            cond,
            app: Some((name, NS_PUBSUB_ERRORS)),
        }
    }
}

/// The simulated server. See the module documentation.
pub struct SimServer {
    primary: String,
    domains: BTreeSet<String>,
    users: BTreeMap<String, User>,
    sessions: BTreeMap<String, Session>,
    components: BTreeMap<String, ComponentHandler>,
    unsubscribed: BTreeSet<(String, String)>,
    queue: VecDeque<(Origin, Element)>,
    now: i64,
    next_id: u64,
    stats: SimStats,
    log: Option<VecDeque<LogEntry>>,
}

impl fmt::Debug for SimServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimServer")
            .field("domains", &self.domains)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("sessions", &self.sessions.keys().collect::<Vec<_>>())
            .field("components", &self.components.keys().collect::<Vec<_>>())
            .field("now", &self.now)
            .field("stats", &self.stats)
            .finish()
    }
}

impl SimServer {
    /// A server hosting `domain` (more domains are hosted as users of them are added). The
    /// logical clock starts at 2025-01-01T00:00:00Z (see [`SimServer::set_now`]).
    pub fn new(domain: &str) -> SimServer {
        let primary = domain.to_lowercase();
        SimServer {
            domains: BTreeSet::from([primary.clone()]),
            primary,
            users: BTreeMap::new(),
            sessions: BTreeMap::new(),
            components: BTreeMap::new(),
            unsubscribed: BTreeSet::new(),
            queue: VecDeque::new(),
            now: 1_735_689_600,
            next_id: 0,
            stats: SimStats::default(),
            log: None,
        }
    }

    /// The domain given to [`SimServer::new`].
    pub fn domain(&self) -> &str {
        &self.primary
    }

    /// Registers the account `bare` (`local@domain`); its domain becomes hosted.
    pub fn add_user(&mut self, bare: &str) -> Result<(), SimError> {
        let j = Jid::parse(bare)?;
        if j.local.is_none() || j.resource.is_some() {
            return Err(SimError::InvalidJid(bare.to_owned()));
        }
        if self.components.contains_key(&j.domain) {
            return Err(SimError::ComponentExists(j.domain));
        }
        let b = j.bare();
        if self.users.contains_key(&b) {
            return Err(SimError::UserExists(b));
        }
        self.domains.insert(j.domain);
        self.users.insert(b, User::default());
        Ok(())
    }

    /// Sets whether users `a` and `b` are mutually presence-subscribed (default: yes).
    pub fn set_subscribed(&mut self, a: &str, b: &str, subscribed: bool) -> Result<(), SimError> {
        let a = self.user_bare(a)?;
        let b = self.user_bare(b)?;
        let key = if a <= b { (a, b) } else { (b, a) };
        if subscribed {
            self.unsubscribed.remove(&key);
        } else {
            self.unsubscribed.insert(key);
        }
        Ok(())
    }

    /// Whether users `a` and `b` are presence-subscribed (always for a user and itself).
    pub fn is_subscribed(&self, a: &str, b: &str) -> bool {
        let (Ok(a), Ok(b)) = (Jid::parse(a), Jid::parse(b)) else {
            return false;
        };
        self.subscribed(&a.bare(), &b.bare())
    }

    /// Plugs a component in at `jid` (a domain, e.g. `prekey.example.org`). Its handler gets
    /// every stanza addressed to any JID of that domain.
    pub fn add_component(&mut self, jid: &str, handler: ComponentHandler) -> Result<(), SimError> {
        let j = Jid::parse(jid)?;
        if j.local.is_some() || j.resource.is_some() {
            return Err(SimError::InvalidJid(jid.to_owned()));
        }
        if self.domains.contains(&j.domain) || self.components.contains_key(&j.domain) {
            return Err(SimError::ComponentExists(j.domain));
        }
        self.components.insert(j.domain, handler);
        Ok(())
    }

    /// Binds a session for `full_jid` (not yet available: it has sent no presence).
    pub fn connect(&mut self, full_jid: &str) -> Result<(), SimError> {
        let j = self.session_jid(full_jid)?;
        let full = j.full();
        if self.sessions.contains_key(&full) {
            return Err(SimError::AlreadyConnected(full));
        }
        self.sessions.insert(
            full,
            Session {
                bare: j.bare(),
                available: false,
                priority: 0,
                presence: None,
                carbons: false,
                inbox: VecDeque::new(),
            },
        );
        Ok(())
    }

    /// Closes the session: if it was available, its contacts and other resources get
    /// unavailable presence. Returns the stanzas it had not drained (they are lost, as on a
    /// TCP close without stream management).
    pub fn disconnect(&mut self, full_jid: &str) -> Result<Vec<Element>, SimError> {
        let full = Jid::parse(full_jid)?.full();
        let Some(s) = self.sessions.get(&full) else {
            return Err(SimError::NotConnected(full));
        };
        if s.available {
            let mut p = mk("presence", NS_CLIENT, &[("type", "unavailable")]);
            set_attr(&mut p, "from", &full);
            self.presence_unavailable(&full, &p);
            self.run_queue();
        }
        Ok(self
            .sessions
            .remove(&full)
            .map(|s| s.inbox.into_iter().collect())
            .unwrap_or_default())
    }

    /// Whether `full_jid` has a bound session.
    pub fn is_connected(&self, full_jid: &str) -> bool {
        Jid::parse(full_jid).is_ok_and(|j| self.sessions.contains_key(&j.full()))
    }

    /// Whether `full_jid` has a session that sent available presence.
    pub fn is_available(&self, full_jid: &str) -> bool {
        Jid::parse(full_jid)
            .ok()
            .and_then(|j| self.sessions.get(&j.full()))
            .is_some_and(|s| s.available)
    }

    /// Drains the stanzas delivered to the session, oldest first (empty if not connected).
    pub fn inbox(&mut self, full_jid: &str) -> Vec<Element> {
        let Ok(j) = Jid::parse(full_jid) else {
            return Vec::new();
        };
        self.sessions
            .get_mut(&j.full())
            .map(|s| s.inbox.drain(..).collect())
            .unwrap_or_default()
    }

    /// Processes one stanza sent by the session `from_full_jid`: checks it (namespace, size,
    /// `from`), stamps `from` with the full JID, routes it and everything it causes.
    pub fn submit(&mut self, from_full_jid: &str, stanza: Element) -> Result<(), SimError> {
        let j = self.session_jid(from_full_jid)?;
        let full = j.full();
        if !self.sessions.contains_key(&full) {
            return Err(SimError::NotConnected(full));
        }
        let mut stanza = stanza;
        if let Err(e) = check_stanza(&stanza) {
            self.stats.rejected += 1;
            if matches!(e, SimError::Oversized { .. }) {
                // Prosody closes the stream with <policy-violation/>.
                let _lost = self.disconnect(&full);
            }
            return Err(e);
        }
        if let Some(claimed) = stanza.attr("from") {
            let ok = Jid::parse(claimed).is_ok_and(|c| c.full() == full || c.full() == j.bare());
            if !ok {
                self.stats.rejected += 1;
                return Err(SimError::SpoofedFrom {
                    session: full,
                    claimed: claimed.to_owned(),
                });
            }
        }
        set_attr(&mut stanza, "from", &full);
        self.queue.push_back((Origin::Session(full), stanza));
        self.run_queue();
        Ok(())
    }

    /// Sets the logical clock (Unix seconds) used for delay stamps and archive times.
    pub fn set_now(&mut self, now: i64) {
        self.now = now;
    }

    /// Moves the logical clock forward by `secs`.
    pub fn advance(&mut self, secs: i64) {
        self.now = self.now.saturating_add(secs);
    }

    /// The logical clock (Unix seconds).
    pub fn now(&self) -> i64 {
        self.now
    }

    /// The counters.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Turns the routing log on or off (off drops the entries).
    pub fn set_logging(&mut self, on: bool) {
        self.log = if on { Some(VecDeque::new()) } else { None };
    }

    /// Takes the logged deliveries (at most [`MAX_LOG`], oldest first).
    pub fn take_log(&mut self) -> Vec<LogEntry> {
        self.log
            .as_mut()
            .map(|l| l.drain(..).collect())
            .unwrap_or_default()
    }

    /// Messages waiting in `bare`'s offline storage.
    pub fn offline_len(&self, bare: &str) -> usize {
        self.user_ref(bare).map_or(0, |u| u.offline.len())
    }

    /// Messages in `bare`'s archive.
    pub fn archive_len(&self, bare: &str) -> usize {
        self.user_ref(bare).map_or(0, |u| u.archive.len())
    }

    /// The payload of the newest item of `bare`'s PEP node `node`.
    pub fn pep_last_item(&self, bare: &str, node: &str) -> Option<Element> {
        self.user_ref(bare)?
            .pep
            .get(node)?
            .items
            .back()
            .map(|(_, p)| p.clone())
    }

    // ----- helpers: identities -----

    fn user_ref(&self, bare: &str) -> Option<&User> {
        let j = Jid::parse(bare).ok()?;
        self.users.get(&j.bare())
    }

    fn user_bare(&self, jid: &str) -> Result<String, SimError> {
        let b = Jid::parse(jid)?.bare();
        if self.users.contains_key(&b) {
            Ok(b)
        } else {
            Err(SimError::UnknownUser(b))
        }
    }

    fn session_jid(&self, full_jid: &str) -> Result<Jid, SimError> {
        let j = Jid::parse(full_jid)?;
        if j.local.is_none() || j.resource.is_none() {
            return Err(SimError::InvalidJid(full_jid.to_owned()));
        }
        if !self.users.contains_key(&j.bare()) {
            return Err(SimError::UnknownUser(j.bare()));
        }
        Ok(j)
    }

    fn subscribed(&self, a: &str, b: &str) -> bool {
        if a == b {
            return self.users.contains_key(a);
        }
        if !self.users.contains_key(a) || !self.users.contains_key(b) {
            return false;
        }
        let key = if a <= b {
            (a.to_owned(), b.to_owned())
        } else {
            (b.to_owned(), a.to_owned())
        };
        !self.unsubscribed.contains(&key)
    }

    fn classify(&self, j: &Jid) -> Dest {
        if self.components.contains_key(&j.domain) {
            return Dest::Component(j.domain.clone());
        }
        if !self.domains.contains(&j.domain) {
            return Dest::Unknown;
        }
        if j.local.is_none() {
            return Dest::Server(j.domain.clone());
        }
        let bare = j.bare();
        if !self.users.contains_key(&bare) {
            return Dest::NoUser;
        }
        match &j.resource {
            Some(_) => Dest::Full {
                bare,
                full: j.full(),
            },
            None => Dest::Bare(bare),
        }
    }

    fn fresh_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:010}", self.next_id)
    }

    /// Available sessions of `bare`, in full-JID order.
    fn available_of(&self, bare: &str) -> Vec<String> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.bare == bare && s.available)
            .map(|(f, _)| f.clone())
            .collect()
    }

    // ----- delivery -----

    fn deliver(&mut self, full: &str, stanza: Element) -> bool {
        let Some(s) = self.sessions.get_mut(full) else {
            return false;
        };
        if s.inbox.len() >= MAX_INBOX_PER_SESSION {
            s.inbox.pop_front();
            self.stats.dropped += 1;
        }
        let is_message = stanza.name() == "message";
        if let Some(log) = self.log.as_mut() {
            if log.len() >= MAX_LOG {
                log.pop_front();
            }
            log.push_back(LogEntry {
                to: full.to_owned(),
                stanza: stanza.clone(),
            });
        }
        s.inbox.push_back(stanza);
        self.stats.delivered += 1;
        if is_message {
            self.stats.messages_delivered += 1;
        }
        true
    }

    /// Sends a server-generated stanza to its `to` (a session or a component).
    fn send_direct(&mut self, stanza: Element) {
        let Some(to) = stanza.attr("to").and_then(|t| Jid::parse(t).ok()) else {
            return;
        };
        match self.classify(&to) {
            Dest::Component(c) => self.route_to_component(&c, stanza),
            Dest::Full { full, .. } => {
                self.deliver(&full, stanza);
            }
            _ => {}
        }
    }

    fn bounce(&mut self, stanza: &Element, typ: &'static str, cond: &'static str) {
        if matches!(stanza.attr("type"), Some("error") | Some("result")) {
            return;
        }
        self.stats.bounced += 1;
        let e = error_reply(
            stanza,
            IqErr {
                typ,
                cond,
                app: None,
            },
            typ,
        );
        self.send_direct(e);
    }

    fn route_to_component(&mut self, jid: &str, stanza: Element) {
        let Some(handler) = self.components.get_mut(jid) else {
            return;
        };
        if let Some(log) = self.log.as_mut() {
            if log.len() >= MAX_LOG {
                log.pop_front();
            }
            log.push_back(LogEntry {
                to: jid.to_owned(),
                stanza: stanza.clone(),
            });
        }
        self.stats.delivered += 1;
        let out = handler(&stanza);
        for st in out {
            let mut st = if st.ns() == NS_COMPONENT {
                renamespace(&st, NS_COMPONENT, NS_CLIENT)
            } else {
                st
            };
            if check_stanza(&st).is_err() {
                self.stats.dropped += 1;
                continue;
            }
            match st.attr("from").map(Jid::parse) {
                None => set_attr(&mut st, "from", jid),
                Some(Ok(f)) if f.domain == jid => {}
                Some(_) => {
                    self.stats.dropped += 1;
                    continue;
                }
            }
            if st.attr("to").is_none() {
                self.stats.dropped += 1;
                continue;
            }
            self.queue.push_back((Origin::Component, st));
        }
    }

    fn run_queue(&mut self) {
        let mut steps = 0usize;
        while let Some((origin, mut st)) = self.queue.pop_front() {
            steps += 1;
            if steps > MAX_ROUTING_STEPS {
                self.stats.dropped += 1 + self.queue.len() as u64;
                self.queue.clear();
                return;
            }
            if let Some(to) = st.attr("to") {
                match Jid::parse(to) {
                    Ok(j) => {
                        let norm = j.full();
                        set_attr(&mut st, "to", &norm);
                    }
                    Err(_) => {
                        self.bounce(&st, "modify", "jid-malformed");
                        continue;
                    }
                }
            }
            match st.name() {
                "message" => self.route_message(&origin, st),
                "presence" => self.route_presence(&origin, st),
                _ => self.route_iq(&origin, st),
            }
        }
    }

    // ----- messages -----

    fn route_message(&mut self, origin: &Origin, mut st: Element) {
        let typ = message_type(&st).to_owned();
        let sender_user = match origin {
            Origin::Session(f) => Some(bare_of(f).to_owned()),
            Origin::Component => None,
        };
        let to = match st.attr("to").map(Jid::parse) {
            Some(Ok(j)) => j,
            Some(Err(_)) => return,
            None => match &sender_user {
                Some(b) => {
                    set_attr(&mut st, "to", b);
                    match Jid::parse(b) {
                        Ok(j) => j,
                        Err(_) => return,
                    }
                }
                None => return,
            },
        };
        self.strip_stanza_ids(&mut st);
        match self.classify(&to) {
            Dest::Component(c) => {
                if let (Some(s), true) = (&sender_user, should_archive(&typ, &st)) {
                    let with = to.full();
                    self.archive(s, &with, &st);
                }
                if let Origin::Session(f) = origin {
                    self.carbons(f, &st, &typ, "sent", &[]);
                }
                self.route_to_component(&c, st);
            }
            Dest::Bare(bare) => self.message_to_user(origin, st, &typ, &bare, None),
            Dest::Full { bare, full } => self.message_to_user(origin, st, &typ, &bare, Some(full)),
            Dest::Server(_) | Dest::Unknown => {
                if typ != "error" {
                    self.bounce(&st, "cancel", "service-unavailable");
                }
            }
            Dest::NoUser => {
                if typ != "error" && typ != "headline" {
                    self.bounce(&st, "cancel", "service-unavailable");
                }
            }
        }
    }

    /// Prosody's mod_message + mod_offline + mod_mam + mod_carbons for a local recipient.
    fn message_to_user(
        &mut self,
        origin: &Origin,
        st: Element,
        typ: &str,
        bare: &str,
        full: Option<String>,
    ) {
        let sender_user = match origin {
            Origin::Session(f) => Some(bare_of(f).to_owned()),
            Origin::Component => None,
        };
        let target = full.filter(|f| self.sessions.contains_key(f));
        let to_bare = st.attr("to").is_some_and(|t| !t.contains('/'));
        // Delivery plan (mod_message).
        let recipients: Vec<String> = match (typ, &target) {
            (_, Some(f)) => vec![f.clone()],
            ("headline", None) if to_bare => self
                .available_of(bare)
                .into_iter()
                .filter(|f| self.sessions.get(f).is_some_and(|s| s.priority >= 0))
                .collect(),
            ("headline" | "error", None) => Vec::new(),
            ("groupchat", None) => {
                self.bounce(&st, "cancel", "service-unavailable");
                return;
            }
            _ => {
                let avail: Vec<(String, i8)> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| s.bare == bare && s.available && s.priority >= 0)
                    .map(|(f, s)| (f.clone(), s.priority))
                    .collect();
                let top = avail.iter().map(|(_, p)| *p).max();
                avail
                    .into_iter()
                    .filter(|(_, p)| Some(*p) == top)
                    .map(|(f, _)| f)
                    .collect()
            }
        };
        let store_offline = recipients.is_empty() && (typ == "chat" || typ == "normal");
        if store_offline
            && self
                .users
                .get(bare)
                .is_some_and(|u| u.offline.len() >= MAX_OFFLINE_PER_USER)
        {
            self.bounce(&st, "cancel", "service-unavailable");
            return;
        }
        // Archive (mod_mam): recipient, then sender when it is another user.
        let mut delivered = st.clone();
        if should_archive(typ, &st) {
            let from = st.attr("from").unwrap_or_default().to_owned();
            let id = self.archive(bare, &from, &st);
            delivered.append_child(mk("stanza-id", NS_SID, &[("by", bare), ("id", &id)]));
            if let Some(s) = sender_user.as_deref().filter(|s| *s != bare) {
                let with = st.attr("to").unwrap_or_default().to_owned();
                self.archive(s, &with, &st);
            }
        }
        for r in &recipients {
            self.deliver(r, delivered.clone());
        }
        if store_offline {
            let mut stored = delivered.clone();
            let stamp = xep82(self.now);
            stored.append_child(mk(
                "delay",
                NS_DELAY,
                &[("from", domain_of(bare)), ("stamp", &stamp)],
            ));
            if let Some(u) = self.users.get_mut(bare) {
                u.offline.push_back(stored);
                self.stats.stored_offline += 1;
            }
        }
        // Carbons (mod_carbons).
        if let Origin::Session(f) = origin {
            self.carbons(f, &st, typ, "sent", &recipients);
        }
        if sender_user.as_deref() != Some(bare) {
            let mut skip = recipients;
            if let Origin::Session(f) = origin {
                skip.push(f.clone());
            }
            self.carbons_for(bare, &delivered, typ, "received", &skip);
        }
    }

    /// Sent carbons of `st` (sent by session `from_full`) to its user's other sessions.
    fn carbons(&mut self, from_full: &str, st: &Element, typ: &str, kind: &str, skip: &[String]) {
        let bare = bare_of(from_full).to_owned();
        let mut skip = skip.to_vec();
        skip.push(from_full.to_owned());
        self.carbons_for(&bare, st, typ, kind, &skip);
    }

    fn carbons_for(&mut self, bare: &str, st: &Element, typ: &str, kind: &str, skip: &[String]) {
        if !should_copy(typ, st) {
            return;
        }
        let targets: Vec<String> = self
            .sessions
            .iter()
            .filter(|(f, s)| s.bare == bare && s.available && s.carbons && !skip.contains(f))
            .map(|(f, _)| f.clone())
            .collect();
        for t in targets {
            let mut m = mk(
                "message",
                NS_CLIENT,
                &[("from", bare), ("to", &t), ("type", typ)],
            );
            let mut wrap = mk(kind, NS_CARBONS, &[]);
            let mut fwd = mk("forwarded", NS_FORWARD, &[]);
            fwd.append_child(st.clone());
            wrap.append_child(fwd);
            m.append_child(wrap);
            if self.deliver(&t, m) {
                self.stats.carbons += 1;
            }
        }
    }

    /// Removes `<stanza-id/>`s claiming to be by a local account or hosted domain (XEP-0359
    /// §"Security Considerations").
    fn strip_stanza_ids(&self, st: &mut Element) {
        let spoofed = |c: &Element| {
            c.is("stanza-id", NS_SID)
                && c.attr("by").is_some_and(|b| {
                    Jid::parse(b).is_ok_and(|j| {
                        self.users.contains_key(&j.bare()) || self.domains.contains(&j.bare())
                    })
                })
        };
        if !st.children().any(spoofed) {
            return;
        }
        let nodes = st.take_nodes();
        for n in nodes {
            match n {
                Node::Element(e) if spoofed(&e) => {}
                other => st.append_node(other),
            }
        }
    }

    /// Appends `st` to `owner`'s archive; returns the archive id.
    fn archive(&mut self, owner: &str, with: &str, st: &Element) -> String {
        let id = self.fresh_id("mam-");
        let now = self.now;
        if let Some(u) = self.users.get_mut(owner) {
            if u.archive.len() >= MAX_ARCHIVE_PER_USER {
                u.archive.pop_front();
            }
            u.archive.push_back(Archived {
                id: id.clone(),
                stamp: now,
                with: with.to_owned(),
                message: st.clone(),
            });
            self.stats.archived += 1;
        }
        id
    }

    // ----- presence -----

    fn route_presence(&mut self, origin: &Origin, st: Element) {
        let typ = st.attr("type").map(str::to_owned);
        match (origin, st.attr("to")) {
            (Origin::Session(full), None) => match typ.as_deref() {
                None => self.presence_available(full, st),
                Some("unavailable") if self.sessions.get(full).is_some_and(|s| s.available) => {
                    self.presence_unavailable(full, &st);
                }
                _ => {}
            },
            (_, Some(to)) => {
                // Subscription management is implicit in the simulator: ignored.
                if !matches!(typ.as_deref(), None | Some("unavailable") | Some("error")) {
                    return;
                }
                let Ok(j) = Jid::parse(to) else { return };
                match self.classify(&j) {
                    Dest::Component(c) => self.route_to_component(&c, st),
                    Dest::Full { full, .. } => {
                        self.deliver(&full, st);
                    }
                    Dest::Bare(b) if typ.as_deref() != Some("error") => {
                        for f in self.available_of(&b) {
                            self.deliver(&f, st.clone());
                        }
                    }
                    _ => {}
                }
            }
            (Origin::Component, None) => {}
        }
    }

    /// Contacts' bare JIDs (subscribed users other than `bare`).
    fn contacts_of(&self, bare: &str) -> Vec<String> {
        self.users
            .keys()
            .filter(|u| u.as_str() != bare && self.subscribed(bare, u))
            .cloned()
            .collect()
    }

    fn broadcast_presence(&mut self, full: &str, st: &Element) {
        let bare = bare_of(full).to_owned();
        for f in self.available_of(&bare) {
            if f != full {
                let mut p = st.clone();
                set_attr(&mut p, "to", &f);
                self.deliver(&f, p);
            }
        }
        for c in self.contacts_of(&bare) {
            for f in self.available_of(&c) {
                let mut p = st.clone();
                set_attr(&mut p, "to", &c);
                self.deliver(&f, p);
            }
        }
    }

    fn presence_available(&mut self, full: &str, st: Element) {
        let priority = st
            .get_child("priority", NS_CLIENT)
            .and_then(|p| p.text().trim().parse::<i8>().ok())
            .unwrap_or(0);
        let Some(s) = self.sessions.get_mut(full) else {
            return;
        };
        let initial = !s.available;
        s.available = true;
        s.priority = priority;
        s.presence = Some(st.clone());
        self.broadcast_presence(full, &st);
        if !initial {
            return;
        }
        // Probes: the current presence of own other resources and of contacts.
        let bare = bare_of(full).to_owned();
        let mut owners = vec![bare.clone()];
        owners.extend(self.contacts_of(&bare));
        let mut probes = Vec::new();
        for o in &owners {
            for (f, s) in &self.sessions {
                if s.bare == *o
                    && f != full
                    && s.available
                    && let Some(p) = &s.presence
                {
                    probes.push(p.clone());
                }
            }
        }
        for mut p in probes {
            set_attr(&mut p, "to", full);
            self.deliver(full, p);
        }
        // Offline messages (mod_offline), in order, removed from storage.
        let offline: Vec<Element> = self
            .users
            .get_mut(&bare)
            .map(|u| u.offline.drain(..).collect())
            .unwrap_or_default();
        for m in offline {
            if self.deliver(full, m) {
                self.stats.offline_delivered += 1;
            }
        }
        // PEP: the last item of every node this resource may see (simplified +notify).
        for o in owners {
            let nodes: Vec<(String, String, Element)> = self
                .users
                .get(&o)
                .map(|u| {
                    u.pep
                        .iter()
                        .filter(|(_, n)| o == bare || n.config.access != Access::Whitelist)
                        .filter_map(|(name, n)| {
                            n.items
                                .back()
                                .map(|(id, p)| (name.clone(), id.clone(), p.clone()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            for (node, id, payload) in nodes {
                let mut item = mk("item", NS_PUBSUB_EVENT, &[("id", &id)]);
                item.append_child(payload);
                let mut items = mk("items", NS_PUBSUB_EVENT, &[("node", &node)]);
                items.append_child(item);
                self.pep_notify_one(&o, full, items);
            }
        }
    }

    fn presence_unavailable(&mut self, full: &str, st: &Element) {
        if let Some(s) = self.sessions.get_mut(full) {
            s.available = false;
            s.presence = None;
        }
        self.broadcast_presence(full, st);
    }

    // ----- iq -----

    fn route_iq(&mut self, origin: &Origin, st: Element) {
        let typ = st.attr("type").unwrap_or_default().to_owned();
        let valid = st.attr("id").is_some()
            && match typ.as_str() {
                "get" | "set" => st.children().count() == 1,
                "result" | "error" => true,
                _ => false,
            };
        if !valid {
            if typ != "result" && typ != "error" {
                self.reply_err(&st, IqErr::new("modify", "bad-request"));
            }
            return;
        }
        let request = typ == "get" || typ == "set";
        let to = match st.attr("to").map(Jid::parse) {
            Some(Ok(j)) => Some(j),
            Some(Err(_)) => return,
            None => None,
        };
        let dest = match (&to, origin) {
            (Some(j), _) => self.classify(j),
            (None, Origin::Session(f)) => Dest::Bare(bare_of(f).to_owned()),
            (None, Origin::Component) => return,
        };
        match dest {
            Dest::Component(c) => self.route_to_component(&c, st),
            Dest::Full { full, .. } => {
                let delivered = self.deliver(&full, st.clone());
                if !delivered && request {
                    self.reply_err(&st, IqErr::new("cancel", "service-unavailable"));
                }
            }
            Dest::Server(d) if request => self.server_iq(&d, &st),
            Dest::Bare(b) if request => self.account_iq(origin, &b, &st),
            Dest::NoUser | Dest::Unknown if request => {
                self.reply_err(&st, IqErr::new("cancel", "service-unavailable"));
            }
            _ => {}
        }
    }

    fn reply(&mut self, req: &Element, payload: Option<Element>) {
        let mut r = mk("iq", NS_CLIENT, &[("type", "result")]);
        copy_reply_attrs(req, &mut r);
        if let Some(p) = payload {
            r.append_child(p);
        }
        self.send_direct(r);
    }

    fn reply_err(&mut self, req: &Element, err: IqErr) {
        let e = error_reply(req, err, err.typ);
        self.send_direct(e);
    }

    fn server_iq(&mut self, domain: &str, st: &Element) {
        let typ = st.attr("type").unwrap_or_default();
        let Some(q) = st.children().next() else {
            return;
        };
        if typ == "get" && q.is("query", NS_DISCO_INFO) {
            if q.attr("node").is_some() {
                return self.reply_err(st, IqErr::new("cancel", "item-not-found"));
            }
            let mut r = mk("query", NS_DISCO_INFO, &[]);
            r.append_child(mk(
                "identity",
                NS_DISCO_INFO,
                &[("category", "server"), ("type", "im"), ("name", "sim")],
            ));
            r.append_child(mk(
                "identity",
                NS_DISCO_INFO,
                &[("category", "pubsub"), ("type", "pep")],
            ));
            for f in [
                NS_DISCO_INFO,
                NS_DISCO_ITEMS,
                NS_PING,
                NS_CARBONS,
                NS_MAM,
                NS_SID,
                "msgoffline",
                NS_PUBSUB,
                "http://jabber.org/protocol/pubsub#publish",
                "http://jabber.org/protocol/pubsub#publish-options",
                "urn:xmpp:pep-vcard-conversion:0",
            ] {
                r.append_child(mk("feature", NS_DISCO_INFO, &[("var", f)]));
            }
            self.reply(st, Some(r));
        } else if typ == "get" && q.is("query", NS_DISCO_ITEMS) {
            if q.attr("node").is_some() {
                return self.reply_err(st, IqErr::new("cancel", "item-not-found"));
            }
            let mut r = mk("query", NS_DISCO_ITEMS, &[]);
            let suffix = format!(".{domain}");
            let primary = domain == self.primary;
            for c in self.components.keys() {
                let under = c.ends_with(&suffix)
                    || (primary && !self.domains.iter().any(|d| c.ends_with(&format!(".{d}"))));
                if under {
                    r.append_child(mk("item", NS_DISCO_ITEMS, &[("jid", c)]));
                }
            }
            self.reply(st, Some(r));
        } else if typ == "get" && q.is("ping", NS_PING) {
            self.reply(st, None);
        } else {
            self.reply_err(st, IqErr::new("cancel", "service-unavailable"));
        }
    }

    /// IQs to an account's bare JID (or with no `to`, the sender's own account).
    fn account_iq(&mut self, origin: &Origin, owner: &str, st: &Element) {
        let typ = st.attr("type").unwrap_or_default();
        let requester = st.attr("from").unwrap_or_default().to_owned();
        let req_bare = bare_of(&requester).to_owned();
        let is_owner = matches!(origin, Origin::Session(_)) && req_bare == owner;
        let Some(q) = st.children().next().cloned() else {
            return;
        };
        let res: Result<Option<Element>, IqErr> = if q.is("pubsub", NS_PUBSUB) {
            self.pubsub(owner, &req_bare, is_owner, typ, &q)
        } else if q.is("pubsub", NS_PUBSUB_OWNER) {
            self.pubsub_owner(owner, is_owner, typ, &q)
        } else if q.is("query", NS_MAM) {
            if !is_owner {
                Err(IqErr::new("cancel", "forbidden"))
            } else if typ == "get" {
                Ok(Some(mam_form()))
            } else {
                self.mam_query(owner, &requester, &q)
            }
        } else if (q.is("enable", NS_CARBONS) || q.is("disable", NS_CARBONS)) && typ == "set" {
            match (origin, is_owner) {
                (Origin::Session(f), true) => {
                    if let Some(s) = self.sessions.get_mut(f) {
                        s.carbons = q.name() == "enable";
                    }
                    Ok(None)
                }
                _ => Err(IqErr::new("modify", "bad-request")),
            }
        } else if typ == "get" && q.is("query", NS_DISCO_INFO) && q.attr("node").is_none() {
            let mut r = mk("query", NS_DISCO_INFO, &[]);
            r.append_child(mk(
                "identity",
                NS_DISCO_INFO,
                &[("category", "account"), ("type", "registered")],
            ));
            r.append_child(mk(
                "identity",
                NS_DISCO_INFO,
                &[("category", "pubsub"), ("type", "pep")],
            ));
            for f in [NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MAM, NS_SID, NS_PUBSUB] {
                r.append_child(mk("feature", NS_DISCO_INFO, &[("var", f)]));
            }
            Ok(Some(r))
        } else if typ == "get" && q.is("query", NS_DISCO_ITEMS) && q.attr("node").is_none() {
            let mut r = mk("query", NS_DISCO_ITEMS, &[]);
            let subscribed = self.subscribed(&req_bare, owner);
            if let Some(u) = self.users.get(owner) {
                for (name, n) in &u.pep {
                    if may_read(n.config.access, is_owner, subscribed) {
                        r.append_child(mk(
                            "item",
                            NS_DISCO_ITEMS,
                            &[("jid", owner), ("node", name)],
                        ));
                    }
                }
            }
            Ok(Some(r))
        } else if typ == "get" && q.is("ping", NS_PING) {
            Ok(None)
        } else if typ == "get" && q.is("query", NS_ROSTER) && is_owner {
            let mut r = mk("query", NS_ROSTER, &[]);
            for c in self.contacts_of(owner) {
                r.append_child(mk(
                    "item",
                    NS_ROSTER,
                    &[("jid", &c), ("subscription", "both")],
                ));
            }
            Ok(Some(r))
        } else {
            Err(IqErr::new("cancel", "service-unavailable"))
        };
        match res {
            Ok(p) => self.reply(st, p),
            Err(e) => self.reply_err(st, e),
        }
    }

    // ----- PEP (XEP-0163 over XEP-0060) -----

    fn pubsub(
        &mut self,
        owner: &str,
        req_bare: &str,
        is_owner: bool,
        typ: &str,
        q: &Element,
    ) -> Result<Option<Element>, IqErr> {
        let bad = IqErr::new("modify", "bad-request");
        if typ == "get" {
            let items = q.get_child("items", NS_PUBSUB).ok_or(bad)?;
            let node =
                items
                    .attr("node")
                    .ok_or(IqErr::app("modify", "bad-request", "nodeid-required"))?;
            let subscribed = self.subscribed(req_bare, owner);
            let n = self
                .users
                .get(owner)
                .and_then(|u| u.pep.get(node))
                .ok_or(IqErr::new("cancel", "item-not-found"))?;
            if !may_read(n.config.access, is_owner, subscribed) {
                return Err(match n.config.access {
                    Access::Whitelist => IqErr::app("cancel", "not-allowed", "closed-node"),
                    _ => IqErr::app("auth", "not-authorized", "presence-subscription-required"),
                });
            }
            let wanted: Vec<&str> = items
                .children()
                .filter(|c| c.is("item", NS_PUBSUB))
                .filter_map(|c| c.attr("id"))
                .collect();
            let max = items
                .attr("max_items")
                .and_then(|m| m.parse::<usize>().ok());
            let selected: Vec<&(String, Element)> = if wanted.is_empty() {
                let skip = max.map_or(0, |m| n.items.len().saturating_sub(m));
                n.items.iter().skip(skip).collect()
            } else {
                n.items
                    .iter()
                    .filter(|(id, _)| wanted.contains(&id.as_str()))
                    .collect()
            };
            let mut out = mk("items", NS_PUBSUB, &[("node", node)]);
            for (id, payload) in selected {
                let mut it = mk("item", NS_PUBSUB, &[("id", id)]);
                it.append_child(payload.clone());
                out.append_child(it);
            }
            let mut ps = mk("pubsub", NS_PUBSUB, &[]);
            ps.append_child(out);
            return Ok(Some(ps));
        }
        if !is_owner {
            return Err(IqErr::new("auth", "forbidden"));
        }
        if let Some(p) = q.get_child("publish", NS_PUBSUB) {
            let node = p
                .attr("node")
                .ok_or(IqErr::app("modify", "bad-request", "nodeid-required"))?
                .to_owned();
            let item = p.get_child("item", NS_PUBSUB).ok_or(IqErr::app(
                "modify",
                "bad-request",
                "item-required",
            ))?;
            let payload = item.children().next().cloned().ok_or(IqErr::app(
                "modify",
                "bad-request",
                "payload-required",
            ))?;
            let options = match q
                .get_child("publish-options", NS_PUBSUB)
                .and_then(|po| po.get_child("x", NS_DATA))
            {
                Some(x) => NodeConfig::fields(&form_fields(x))?,
                None => Vec::new(),
            };
            let item_id = match item.attr("id") {
                Some(i) => i.to_owned(),
                None => self.fresh_id("item-"),
            };
            let user = self.users.get_mut(owner).ok_or(bad)?;
            match user.pep.get(&node) {
                Some(n) if !n.config.matches(&options) => {
                    return Err(IqErr::app("cancel", "conflict", "precondition-not-met"));
                }
                Some(_) => {}
                None => {
                    if user.pep.len() >= MAX_PEP_NODES {
                        return Err(IqErr::new("wait", "resource-constraint"));
                    }
                    let mut n = PepNode::default();
                    n.config.apply(&options);
                    user.pep.insert(node.clone(), n);
                }
            }
            let access = match user.pep.get_mut(&node) {
                Some(n) => {
                    n.items.retain(|(id, _)| *id != item_id);
                    n.items.push_back((item_id.clone(), payload.clone()));
                    n.trim();
                    n.config.access
                }
                None => return Err(bad),
            };
            let mut ev_item = mk("item", NS_PUBSUB_EVENT, &[("id", &item_id)]);
            ev_item.append_child(payload);
            let mut ev = mk("items", NS_PUBSUB_EVENT, &[("node", &node)]);
            ev.append_child(ev_item);
            self.pep_notify(owner, access, ev);
            let mut res_item = mk("publish", NS_PUBSUB, &[("node", &node)]);
            res_item.append_child(mk("item", NS_PUBSUB, &[("id", &item_id)]));
            let mut ps = mk("pubsub", NS_PUBSUB, &[]);
            ps.append_child(res_item);
            return Ok(Some(ps));
        }
        if let Some(r) = q.get_child("retract", NS_PUBSUB) {
            let node =
                r.attr("node")
                    .ok_or(IqErr::app("modify", "bad-request", "nodeid-required"))?;
            let id = r
                .get_child("item", NS_PUBSUB)
                .and_then(|i| i.attr("id"))
                .ok_or(IqErr::app("modify", "bad-request", "item-required"))?;
            let n = self
                .users
                .get_mut(owner)
                .and_then(|u| u.pep.get_mut(node))
                .ok_or(IqErr::new("cancel", "item-not-found"))?;
            let before = n.items.len();
            n.items.retain(|(i, _)| i != id);
            if n.items.len() == before {
                return Err(IqErr::new("cancel", "item-not-found"));
            }
            let access = n.config.access;
            if matches!(r.attr("notify"), Some("1") | Some("true")) {
                let mut ev = mk("items", NS_PUBSUB_EVENT, &[("node", node)]);
                ev.append_child(mk("retract", NS_PUBSUB_EVENT, &[("id", id)]));
                self.pep_notify(owner, access, ev);
            }
            return Ok(None);
        }
        if let Some(c) = q.get_child("create", NS_PUBSUB) {
            let node =
                c.attr("node")
                    .ok_or(IqErr::app("modify", "not-acceptable", "nodeid-required"))?;
            let options = match q
                .get_child("configure", NS_PUBSUB)
                .and_then(|po| po.get_child("x", NS_DATA))
            {
                Some(x) => NodeConfig::fields(&form_fields(x))?,
                None => Vec::new(),
            };
            let user = self.users.get_mut(owner).ok_or(bad)?;
            if user.pep.contains_key(node) {
                return Err(IqErr::new("cancel", "conflict"));
            }
            if user.pep.len() >= MAX_PEP_NODES {
                return Err(IqErr::new("wait", "resource-constraint"));
            }
            let mut n = PepNode::default();
            n.config.apply(&options);
            user.pep.insert(node.to_owned(), n);
            return Ok(None);
        }
        Err(IqErr::app(
            "cancel",
            "feature-not-implemented",
            "unsupported",
        ))
    }

    fn pubsub_owner(
        &mut self,
        owner: &str,
        is_owner: bool,
        typ: &str,
        q: &Element,
    ) -> Result<Option<Element>, IqErr> {
        if !is_owner {
            return Err(IqErr::new("auth", "forbidden"));
        }
        let user = self
            .users
            .get_mut(owner)
            .ok_or(IqErr::new("cancel", "item-not-found"))?;
        if let Some(c) = q.get_child("configure", NS_PUBSUB_OWNER) {
            let node =
                c.attr("node")
                    .ok_or(IqErr::app("modify", "bad-request", "nodeid-required"))?;
            let n = user
                .pep
                .get_mut(node)
                .ok_or(IqErr::new("cancel", "item-not-found"))?;
            if typ == "get" {
                let mut conf = mk("configure", NS_PUBSUB_OWNER, &[("node", node)]);
                conf.append_child(n.config.form());
                let mut ps = mk("pubsub", NS_PUBSUB_OWNER, &[]);
                ps.append_child(conf);
                return Ok(Some(ps));
            }
            let x = c
                .get_child("x", NS_DATA)
                .ok_or(IqErr::new("modify", "bad-request"))?;
            let fields = NodeConfig::fields(&form_fields(x))?;
            n.config.apply(&fields);
            n.trim();
            return Ok(None);
        }
        if let Some(d) = q.get_child("delete", NS_PUBSUB_OWNER) {
            if typ != "set" {
                return Err(IqErr::new("modify", "bad-request"));
            }
            let node =
                d.attr("node")
                    .ok_or(IqErr::app("modify", "bad-request", "nodeid-required"))?;
            let n = user
                .pep
                .remove(node)
                .ok_or(IqErr::new("cancel", "item-not-found"))?;
            let ev = mk("delete", NS_PUBSUB_EVENT, &[("node", node)]);
            self.pep_notify(owner, n.config.access, ev);
            return Ok(None);
        }
        Err(IqErr::app(
            "cancel",
            "feature-not-implemented",
            "unsupported",
        ))
    }

    /// Sends `<event>` with `payload` to every available resource of `owner` and of its
    /// subscribed contacts (unless whitelist). Simplification: no `+notify` filtering.
    fn pep_notify(&mut self, owner: &str, access: Access, payload: Element) {
        let targets: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.available
                    && (s.bare == owner
                        || (access != Access::Whitelist && self.subscribed(&s.bare, owner)))
            })
            .map(|(f, _)| f.clone())
            .collect();
        for t in targets {
            self.pep_notify_one(owner, &t, payload.clone());
        }
    }

    fn pep_notify_one(&mut self, owner: &str, to: &str, payload: Element) {
        let id = self.fresh_id("pep-");
        let mut m = mk(
            "message",
            NS_CLIENT,
            &[
                ("from", owner),
                ("to", to),
                ("type", "headline"),
                ("id", &id),
            ],
        );
        let mut ev = mk("event", NS_PUBSUB_EVENT, &[]);
        ev.append_child(payload);
        m.append_child(ev);
        if self.deliver(to, m) {
            self.stats.pep_notifications += 1;
        }
    }

    // ----- MAM (XEP-0313) -----

    fn mam_query(
        &mut self,
        owner: &str,
        requester: &str,
        q: &Element,
    ) -> Result<Option<Element>, IqErr> {
        let bad = IqErr::new("modify", "bad-request");
        if q.attr("node").is_some() {
            return Err(IqErr::new("cancel", "item-not-found"));
        }
        let queryid = q.attr("queryid").map(str::to_owned);
        let mut with: Option<Jid> = None;
        let (mut start, mut end) = (None, None);
        if let Some(x) = q.get_child("x", NS_DATA) {
            for (var, values) in form_fields(x) {
                let v = values.first().map(String::as_str).unwrap_or_default();
                match var.as_str() {
                    "with" => with = Some(Jid::parse(v).map_err(|_| bad)?),
                    "start" => start = Some(parse_xep82(v).ok_or(bad)?),
                    "end" => end = Some(parse_xep82(v).ok_or(bad)?),
                    _ => {}
                }
            }
        }
        let rsm = q.get_child("set", NS_RSM);
        let max = match rsm.and_then(|s| s.get_child("max", NS_RSM)) {
            Some(m) => m.text().trim().parse::<usize>().map_err(|_| bad)?,
            None => MAM_DEFAULT_MAX,
        }
        .min(MAM_MAX_MAX);
        let after = rsm
            .and_then(|s| s.get_child("after", NS_RSM))
            .map(|a| a.text());
        let before = rsm
            .and_then(|s| s.get_child("before", NS_RSM))
            .map(|b| b.text());
        let user = self
            .users
            .get(owner)
            .ok_or(IqErr::new("cancel", "item-not-found"))?;
        let position = |id: &str| user.archive.iter().position(|a| a.id == id);
        let lo = match after.as_deref() {
            Some(id) => position(id).ok_or(IqErr::new("cancel", "item-not-found"))? + 1,
            None => 0,
        };
        let hi = match before.as_deref() {
            Some(id) if !id.is_empty() => {
                position(id).ok_or(IqErr::new("cancel", "item-not-found"))?
            }
            _ => user.archive.len(),
        };
        let candidates: Vec<&Archived> = user
            .archive
            .iter()
            .enumerate()
            .filter(|(i, _)| *i >= lo && *i < hi)
            .map(|(_, a)| a)
            .filter(|a| start.is_none_or(|s| a.stamp >= s))
            .filter(|a| end.is_none_or(|e| a.stamp <= e))
            .filter(|a| {
                with.as_ref().is_none_or(|w| match Jid::parse(&a.with) {
                    Ok(aw) if w.resource.is_some() => aw.full() == w.full(),
                    Ok(aw) => aw.bare() == w.bare(),
                    Err(_) => false,
                })
            })
            .collect();
        let complete = candidates.len() <= max;
        let page: Vec<&Archived> = if before.is_some() {
            let skip = candidates.len().saturating_sub(max);
            candidates.into_iter().skip(skip).collect()
        } else {
            candidates.into_iter().take(max).collect()
        };
        let mut results = Vec::with_capacity(page.len());
        for a in &page {
            let mut m = mk("message", NS_CLIENT, &[("from", owner), ("to", requester)]);
            let mut r = mk("result", NS_MAM, &[("id", &a.id)]);
            if let Some(qid) = &queryid {
                set_attr(&mut r, "queryid", qid);
            }
            let mut fwd = mk("forwarded", NS_FORWARD, &[]);
            fwd.append_child(mk("delay", NS_DELAY, &[("stamp", &xep82(a.stamp))]));
            fwd.append_child(a.message.clone());
            r.append_child(fwd);
            m.append_child(r);
            results.push(m);
        }
        let mut set = mk("set", NS_RSM, &[]);
        if let (Some(f), Some(l)) = (page.first(), page.last()) {
            set.append_child(text_el("first", NS_RSM, &f.id));
            set.append_child(text_el("last", NS_RSM, &l.id));
        }
        // Prosody 0.12 writes complete='true' only when complete (absent means false).
        let mut fin = mk("fin", NS_MAM, &[]);
        if complete {
            set_attr(&mut fin, "complete", "true");
        }
        if let Some(qid) = &queryid {
            set_attr(&mut fin, "queryid", qid);
        }
        fin.append_child(set);
        for m in results {
            self.deliver_or_component(requester, m);
        }
        Ok(Some(fin))
    }

    fn deliver_or_component(&mut self, to: &str, m: Element) {
        if self.sessions.contains_key(to) {
            self.deliver(to, m);
        } else {
            self.send_direct(m);
        }
    }
}

// ----- free helpers -----

fn set_attr(e: &mut Element, name: &str, value: &str) {
    if let Ok(n) = NcName::try_from(name) {
        e.set_attr(Namespace::NONE, n, value);
    }
}

fn mk(name: &str, ns: &str, attrs: &[(&str, &str)]) -> Element {
    let mut e = Element::bare(name, ns);
    for (k, v) in attrs {
        set_attr(&mut e, k, v);
    }
    e
}

fn text_el(name: &str, ns: &str, text: &str) -> Element {
    let mut e = Element::bare(name, ns);
    e.append_text(text);
    e
}

/// `id`, and `from`/`to` swapped, from a request onto its reply.
fn copy_reply_attrs(req: &Element, reply: &mut Element) {
    if let Some(id) = req.attr("id") {
        set_attr(reply, "id", id);
    }
    if let Some(to) = req.attr("to") {
        set_attr(reply, "from", to);
    }
    if let Some(from) = req.attr("from") {
        set_attr(reply, "to", from);
    }
}

/// An error reply (RFC 6120 §8.3) of the same stanza kind, without the original payload.
fn error_reply(req: &Element, err: IqErr, typ: &str) -> Element {
    let mut r = mk(req.name(), NS_CLIENT, &[("type", "error")]);
    copy_reply_attrs(req, &mut r);
    let mut e = mk("error", NS_CLIENT, &[("type", typ)]);
    e.append_child(mk(err.cond, NS_STANZAS, &[]));
    if let Some((name, ns)) = err.app {
        e.append_child(mk(name, ns, &[]));
    }
    r.append_child(e);
    r
}

/// Whether a reader may see a node's items (XEP-0060 §4.5 access models).
fn may_read(access: Access, is_owner: bool, subscribed: bool) -> bool {
    is_owner
        || match access {
            Access::Open => true,
            Access::Presence => subscribed,
            Access::Whitelist => false,
        }
}

/// A message's type; unknown or absent types are `normal` (RFC 6121 §5.2.2).
fn message_type(st: &Element) -> &'static str {
    match st.attr("type") {
        Some("chat") => "chat",
        Some("headline") => "headline",
        Some("groupchat") => "groupchat",
        Some("error") => "error",
        _ => "normal",
    }
}

/// Prosody 0.12 mod_mam `should_store`, for chat/normal messages.
fn should_archive(typ: &str, st: &Element) -> bool {
    if typ != "chat" && typ != "normal" {
        return false;
    }
    if st.has_child("no-store", NS_HINTS) || st.has_child("no-permanent-store", NS_HINTS) {
        return false;
    }
    st.has_child("store", NS_HINTS) || st.has_child("body", NS_CLIENT)
}

/// Prosody 0.12 mod_carbons `should_copy` (XEP-0280 §6).
fn should_copy(typ: &str, st: &Element) -> bool {
    if st.has_child("private", NS_CARBONS) || st.has_child("no-copy", NS_HINTS) {
        return false;
    }
    typ == "chat" || (typ == "normal" && st.has_child("body", NS_CLIENT))
}

/// `(var, values)` of a data form's fields (XEP-0004).
fn form_fields(x: &Element) -> Vec<(String, Vec<String>)> {
    x.children()
        .filter(|f| f.is("field", NS_DATA))
        .filter_map(|f| {
            let var = f.attr("var")?.to_owned();
            let values = f
                .children()
                .filter(|v| v.is("value", NS_DATA))
                .map(Element::text)
                .collect();
            Some((var, values))
        })
        .collect()
}

fn mam_form() -> Element {
    let mut q = mk("query", NS_MAM, &[]);
    let mut x = mk("x", NS_DATA, &[("type", "form")]);
    let mut ft = mk(
        "field",
        NS_DATA,
        &[("var", "FORM_TYPE"), ("type", "hidden")],
    );
    ft.append_child(text_el("value", NS_DATA, NS_MAM));
    x.append_child(ft);
    for (var, t) in [
        ("with", "jid-single"),
        ("start", "text-single"),
        ("end", "text-single"),
    ] {
        x.append_child(mk("field", NS_DATA, &[("var", var), ("type", t)]));
    }
    q.append_child(x);
    q
}

struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `message`/`presence`/`iq` in `jabber:client`, serialisable within [`MAX_STANZA_BYTES`].
fn check_stanza(st: &Element) -> Result<(), SimError> {
    if st.ns() != NS_CLIENT || !matches!(st.name(), "message" | "presence" | "iq") {
        return Err(SimError::NotAStanza(format!(
            "{{{}}}{}",
            st.ns(),
            st.name()
        )));
    }
    let mut c = Counter(0);
    st.write_to(&mut c)
        .map_err(|e| SimError::NotAStanza(e.to_string()))?;
    if c.0 > MAX_STANZA_BYTES {
        return Err(SimError::Oversized {
            bytes: c.0,
            max: MAX_STANZA_BYTES,
        });
    }
    Ok(())
}

/// A copy of `el` where every element in `from_ns` is in `to_ns` instead (e.g. component
/// output in `jabber:component:accept` → `jabber:client`).
pub fn renamespace(el: &Element, from_ns: &str, to_ns: &str) -> Element {
    let ns = el.ns();
    let mut out = Element::bare(el.name(), if ns == from_ns { to_ns } else { ns.as_str() });
    for ((ans, name), value) in el.attrs().iter() {
        out.set_attr(ans.clone(), name.clone(), value.as_str());
    }
    for n in el.nodes() {
        match n {
            Node::Element(c) => {
                out.append_child(renamespace(c, from_ns, to_ns));
            }
            Node::Text(t) => out.append_text(t.as_str()),
        }
    }
    out
}

fn days_to_civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn civil_to_days(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// XEP-0082 DateTime (UTC, seconds) of Unix time `t`.
pub fn xep82(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = days_to_civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses an XEP-0082 DateTime (`YYYY-MM-DDThh:mm:ss[.sss](Z|±hh:mm)`) to Unix seconds.
pub fn parse_xep82(s: &str) -> Option<i64> {
    let num = |a: usize, b: usize| -> Option<i64> {
        let p = s.get(a..b)?;
        if !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let sep = |i: usize, c: &str| s.get(i..i + 1) == Some(c);
    if !(sep(4, "-") && sep(7, "-") && sep(10, "T") && sep(13, ":") && sep(16, ":")) {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, se) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = frac.get(digits..)?;
    }
    let offset = match rest {
        "Z" => 0,
        _ => {
            let sign = match rest.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.get(3..4) != Some(":") {
                return None;
            }
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(civil_to_days(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests;
