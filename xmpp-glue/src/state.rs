//! What an engine is configured with ([`EngineConfig`]) and what it persists besides the
//! otr4 client ([`GlueState`], JSON; docs/xmpp-glue.md §7).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use otr4::RefillPolicy;
use serde::{Deserialize, Serialize};

use crate::devices::DeviceList;
use crate::trust::TrustStore;

/// The glue's default refill: 20 prekeys per batch keeps a publication well under the
/// usual 256 KiB stanza limits of XMPP servers; top up below 10.
pub const DEFAULT_REFILL: RefillPolicy = RefillPolicy {
    batch: 20,
    low_watermark: 10,
    status_interval: 3600,
    renew_before: 86_400,
};

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
    /// The largest file sent or accepted, in bytes (docs/xmpp-glue.md §9).
    pub max_file_size: u64,
    /// An `http://` origin (scheme, host, port; e.g. `http://127.0.0.1:5280`) whose upload
    /// and download URLs are accepted besides `https://` ones: for tests on loopback only.
    pub allow_http_origin: Option<String>,
}

impl EngineConfig {
    /// Defaults for `jid`: discovery, [`DEFAULT_REFILL`], files up to
    /// [`crate::DEFAULT_MAX_FILE_SIZE`] over `https://` only.
    pub fn new(jid: &str, label: &str) -> EngineConfig {
        EngineConfig {
            jid: jid.to_owned(),
            label: label.to_owned(),
            prekey_server: None,
            refill: DEFAULT_REFILL,
            max_file_size: crate::file::DEFAULT_MAX_FILE_SIZE,
            allow_http_origin: None,
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

/// What the glue persists besides the otr4 client (docs/xmpp-glue.md §7). The engine's
/// parts own these fields while it runs; [`crate::Engine::state`] puts them together.
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
    /// Fingerprints each domain's prekey server used before a rotation or an accepted
    /// change: never re-pinned by a rotation announcement (absent in older states).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retired_servers: BTreeMap<String, BTreeSet<String>>,
}
