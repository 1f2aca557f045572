//! Durable storage of Client Profiles, Prekey Profiles and Prekey messages, keyed by bare
//! JID, instance tag and long-term key (otrv4-prekey-server.md §"Storage of Prekeys Ensembles for XMPP").
//!
//! [`Storage`] is the boundary: [`sqlite::SqliteStorage`] is the default embedded durable
//! store, [`memory::MemoryStorage`] the in-memory one for tests. A networked database can be
//! added later by implementing the same trait; the protocol layer never sees SQL.

pub mod memory;
pub mod sqlite;

use std::fmt;

/// Bytes of an encoded Ed448 long-term public key (a POINT).
pub const LONG_TERM_KEY_LEN: usize = 57;

/// One device's slot: the publisher's bare JID, the instance tag of its client and the
/// long-term public key it authenticated with (otrv4-prekey-server.md §"Storage of Prekeys
/// Ensembles for XMPP": "bare JID … Instance tags will be used to differentiate data for
/// different clients").
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DeviceKey {
    /// The publisher's bare JID (never a full JID: resources are not stable).
    pub jid: String,
    /// The instance tag of the publishing client (`>= 0x100`).
    pub instance_tag: u32,
    /// The encoded long-term public key `H` (57 bytes).
    pub long_term_key: [u8; LONG_TERM_KEY_LEN],
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key_prefix = self.long_term_key.get(..6).unwrap_or_default();
        write!(
            f,
            "DeviceKey({}, {:#010x}, H={}…)",
            self.jid,
            self.instance_tag,
            hex::encode(key_prefix)
        )
    }
}

/// A Client Profile to store, with the fields retrieval filters on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientProfileRecord {
    /// The serialized CLIENT-PROF.
    pub bytes: Vec<u8>,
    /// The profile's versions string (e.g. `b"4"`).
    pub versions: Vec<u8>,
    /// Expiration, seconds since the Unix epoch.
    pub expires: i64,
}

/// A Prekey Profile to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrekeyProfileRecord {
    /// The serialized PREKEY-PROF.
    pub bytes: Vec<u8>,
    /// Expiration, seconds since the Unix epoch.
    pub expires: i64,
}

/// One Prekey message to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrekeyMessageRecord {
    /// The Prekey Message Identifier (duplicates per device are discarded).
    pub id: u32,
    /// The protocol version byte of the message (4 for OTRv4).
    pub version: u8,
    /// The encoded Prekey message.
    pub bytes: Vec<u8>,
}

/// Everything one verified Prekey Publication asks to persist, written in one transaction
/// (otrv4-prekey-server.md §"Publishing Prekey Values": the server "stores the Client
/// Profile, Prekey Profile and Prekey Messages by associating them with the identity").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreRequest {
    /// Whose values these are.
    pub device: DeviceKey,
    /// A Client Profile, replacing the stored one for this JID and instance tag.
    pub client_profile: Option<ClientProfileRecord>,
    /// A Prekey Profile, replacing the stored one for this device.
    pub prekey_profile: Option<PrekeyProfileRecord>,
    /// Prekey messages to add.
    pub prekey_messages: Vec<PrekeyMessageRecord>,
}

impl StoreRequest {
    /// A request that stores nothing yet for `device`.
    pub fn new(device: DeviceKey) -> StoreRequest {
        StoreRequest {
            device,
            client_profile: None,
            prekey_profile: None,
            prekey_messages: Vec::new(),
        }
    }
}

/// What a successful [`Storage::store`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOutcome {
    /// Prekey messages newly added (duplicates of stored ids are not counted).
    pub added: u32,
    /// Prekey messages stored for the device afterwards.
    pub stored: u32,
}

/// One Prekey Ensemble handed out: the stored bytes of its three parts
/// (otrv4-prekey-server.md §"Retrieving Prekey Ensembles").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEnsemble {
    /// The instance tag the three parts belong to.
    pub instance_tag: u32,
    /// The serialized Client Profile.
    pub client_profile: Vec<u8>,
    /// The serialized Prekey Profile.
    pub prekey_profile: Vec<u8>,
    /// The encoded Prekey message, now removed from storage.
    pub prekey_message: Vec<u8>,
    /// Its identifier.
    pub prekey_message_id: u32,
}

/// One retrieval of a [`Storage::take_ensembles_batch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TakeRequest {
    /// Whose ensembles.
    pub jid: String,
    /// The requested versions string.
    pub versions: Vec<u8>,
}

/// What [`Storage::gc`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Expired Client Profiles removed.
    pub client_profiles: u64,
    /// Expired Prekey Profiles removed.
    pub prekey_profiles: u64,
    /// Prekey messages removed because their device had no Client Profile and they were
    /// older than the orphan retention.
    pub orphaned_prekey_messages: u64,
}

/// How much the store holds (for the `prekey_stored` gauge).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Client Profiles stored.
    pub client_profiles: u64,
    /// Prekey Profiles stored.
    pub prekey_profiles: u64,
    /// Prekey messages stored.
    pub prekey_messages: u64,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Adding the messages would exceed the per-device limit; nothing was stored.
    #[error("device would hold {would_hold} prekey messages, limit is {limit}")]
    DeviceFull {
        /// Messages the device would hold after the publication.
        would_hold: u64,
        /// The configured limit.
        limit: u32,
    },
    /// The request is inconsistent (e.g. a Prekey message whose owner tag is another device's).
    #[error("invalid store request: {0}")]
    Invalid(&'static str),
    /// The backend failed; nothing was committed.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// Creating, checking or opening a storage file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Another process holds the database's lock.
    #[error(
        "{path} is in use by another prekey-server process (lock {lock} held); stop that process or configure another server.database"
    )]
    Locked {
        /// The database.
        path: String,
        /// The lock file.
        lock: String,
    },
}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        StorageError::Backend(e.to_string())
    }
}

/// The storage boundary of the prekey server. Every method is atomic: it commits all of its
/// effect or none of it, including across processes sharing a database.
pub trait Storage: Send + Sync {
    /// Stores a verified publication in one transaction: the Client Profile replaces the
    /// one stored for this JID and instance tag (and, if the long-term key changed, the old
    /// key's Prekey Profile and Prekey messages go with it); the Prekey Profile replaces the
    /// device's; Prekey messages are added, duplicates (same id) discarded. Fails with
    /// [`StorageError::DeviceFull`], storing nothing, if the device would then hold more than
    /// `max_per_device` Prekey messages. Returns once the transaction is durable.
    fn store(
        &self,
        request: &StoreRequest,
        max_per_device: u32,
        now: i64,
    ) -> Result<StoreOutcome, StorageError>;

    /// Number of Prekey messages stored for `device` (otrv4-prekey-server.md §"Storage
    /// Status Message": "for the long-term public key and instance tag used during the DAKE").
    fn count(&self, device: &DeviceKey) -> Result<u32, StorageError>;

    /// Atomically takes one Prekey Ensemble per instance tag of `jid`: for each instance tag
    /// with an unexpired Client Profile that supports one of `versions`, an unexpired
    /// Prekey Profile for the same long-term key, and a stored Prekey message of one of
    /// `versions`, removes the oldest such message and returns the three parts. A Prekey
    /// message is handed out at most once, also under concurrent calls and across crashes.
    /// Profiles are not removed (otrv4-prekey-server.md §"Retrieving Prekey Ensembles").
    fn take_ensembles(
        &self,
        jid: &str,
        versions: &[u8],
        now: i64,
    ) -> Result<Vec<StoredEnsemble>, StorageError>;

    /// Runs several [`Storage::take_ensembles`] as one atomic, durable unit (group commit):
    /// the result for `requests[i]` is at index `i`. Each request takes its own Prekey
    /// messages, in order, as if run one after the other. The default runs them one by one.
    fn take_ensembles_batch(
        &self,
        requests: &[TakeRequest],
        now: i64,
    ) -> Result<Vec<Vec<StoredEnsemble>>, StorageError> {
        requests
            .iter()
            .map(|r| self.take_ensembles(&r.jid, &r.versions, now))
            .collect()
    }

    /// Removes expired Client and Prekey Profiles, and Prekey messages stored before
    /// `orphan_before` whose device has no Client Profile.
    fn gc(&self, now: i64, orphan_before: i64) -> Result<GcReport, StorageError>;

    /// Rows stored, for monitoring.
    fn stats(&self) -> Result<StoreStats, StorageError>;

    /// Stores (or replaces) a Client Profile alone; see [`Storage::store`].
    fn put_client_profile(
        &self,
        device: &DeviceKey,
        profile: ClientProfileRecord,
        now: i64,
    ) -> Result<(), StorageError> {
        let mut r = StoreRequest::new(device.clone());
        r.client_profile = Some(profile);
        self.store(&r, u32::MAX, now).map(|_| ())
    }

    /// Stores (or replaces) a Prekey Profile alone; see [`Storage::store`].
    fn put_prekey_profile(
        &self,
        device: &DeviceKey,
        profile: PrekeyProfileRecord,
        now: i64,
    ) -> Result<(), StorageError> {
        let mut r = StoreRequest::new(device.clone());
        r.prekey_profile = Some(profile);
        self.store(&r, u32::MAX, now).map(|_| ())
    }

    /// Adds Prekey messages alone; see [`Storage::store`].
    fn add_prekey_messages(
        &self,
        device: &DeviceKey,
        messages: Vec<PrekeyMessageRecord>,
        max_per_device: u32,
        now: i64,
    ) -> Result<StoreOutcome, StorageError> {
        let mut r = StoreRequest::new(device.clone());
        r.prekey_messages = messages;
        self.store(&r, max_per_device, now)
    }
}

/// True if `versions` (a requested versions string) and `supported` share a version byte.
pub(crate) fn versions_intersect(versions: &[u8], supported: &[u8]) -> bool {
    versions.iter().any(|v| supported.contains(v))
}

/// The version byte of a stored Prekey message as a versions-string character (`4` → `b'4'`).
pub(crate) fn version_char(version: u8) -> u8 {
    b'0'.saturating_add(version)
}

/// Checks what every backend checks before storing.
pub(crate) fn validate_request(request: &StoreRequest) -> Result<(), StorageError> {
    if request.device.instance_tag < otr4::hazmat::instance_tag::MIN_VALID_INSTANCE_TAG {
        return Err(StorageError::Invalid("device instance tag below 0x100"));
    }
    if request.device.jid.is_empty() {
        return Err(StorageError::Invalid("empty JID"));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(feature = "standalone")]
pub mod pg;
