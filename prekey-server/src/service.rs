//! The prekey service: the sans-IO protocol core ([`otr4::hazmat::prekey::server`]) joined to a
//! [`Storage`], the [`Limits`], DAKE session bookkeeping and fragment reassembly.
//!
//! Transport-neutral: every transport hands [`Service::handle`] the sender's bare JID and
//! the message text (a `<base64>.` message or a `?OTRP|` fragment) and sends back the
//! replies. A publication is acknowledged (Success) only after the storage committed it.

use crate::limits::{LimitHits, LimitKind, Limits, LogLimiter, RateLimiter, Verdict};
use crate::storage::{
    ClientProfileRecord, DeviceKey, PrekeyMessageRecord, PrekeyProfileRecord, Storage,
    StorageError, StoreRequest as StorageRequest, StoredEnsemble, TakeRequest,
};
use otr4::DecodeError;
use otr4::Fingerprint;
use otr4::InstanceTag;
use otr4::PrekeyServerMessage;
use otr4::hazmat::crypto::ed448::KeyPair;
use otr4::hazmat::prekey::framing::{self, UnframeError};
use otr4::hazmat::prekey::messages::{
    NO_PREKEY_ENSEMBLES_TEXT, NoPrekeyEnsembles, TYPE_ENSEMBLE_RETRIEVAL,
};
use otr4::hazmat::prekey::server::{
    Dake3Outcome, PrekeyServer, QueryOutcome, ServerError, ServerSession,
};
use otr4::hazmat::wire::codec::{Codec, Writer};
use otr4::hazmat::wire::fragment::{FragmentKind, Reassembler};
use otr4::hazmat::wire::messages::PROTOCOL_VERSION;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::{debug, info, warn};

/// Longest accepted bare JID (RFC 7622: three parts of at most 1023 bytes, plus separators).
pub const MAX_JID_LEN: usize = 3071;

/// How the service was configured beyond [`Limits`].
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// The server's identity (its bare JID, e.g. `prekey.example.org`): the identity half of
    /// the Prekey Server Composite Identity and the second half of `phi`.
    pub identity: String,
    /// The limits.
    pub limits: Limits,
    /// Split outgoing messages longer than this into `?OTRP|` fragments (None: never).
    pub fragment_size: Option<usize>,
    /// Prekey messages stored before `now - orphan_retention_secs` whose device has no
    /// Client Profile are garbage-collected.
    pub orphan_retention_secs: i64,
    /// Key-rotation announcements published in service discovery until they expire
    /// ([`crate::rotation`]).
    pub announcements: Vec<crate::rotation::Announcement>,
}

impl ServiceOptions {
    /// Options with default limits for `identity`.
    pub fn new(identity: impl Into<String>) -> ServiceOptions {
        ServiceOptions {
            identity: identity.into(),
            limits: Limits::default(),
            fragment_size: None,
            orphan_retention_secs: 30 * 24 * 3600,
            announcements: Vec::new(),
        }
    }
}

/// Why a message was not served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The sender is not a plausible bare JID (empty, too long, or with a resource).
    BadSender,
    /// The message (or the reassembled message) is longer than `max`.
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A `?OTRP|` fragment was invalid or its message could not be reassembled.
    Fragment(String),
    /// The message does not decode.
    Malformed(DecodeError),
    /// A message type the server does not accept (e.g. a Success sent to the server).
    Unexpected(u8),
    /// DAKE-1 refused: too many DAKEs in flight for this JID or its domain.
    DakeLimit,
    /// DAKE-1 refused: the requester started DAKEs faster than its rate.
    DakeRateLimited,
    /// DAKE-3 without a DAKE in flight for this JID and instance tag (§"State machine":
    /// "Otherwise: Ignores the message").
    NoSession,
    /// The core rejected a DAKE message; nothing is sent (§"Key Exchange": "rejects the
    /// message and does not send anything further").
    Dake(ServerError),
    /// The core rejected the enclosed message; a Failure message was sent.
    Refused(ServerError),
    /// The storage refused the publication as too large for the device; a Failure was sent.
    DeviceFull {
        /// Messages the device would hold.
        would_hold: u64,
        /// The limit.
        limit: u32,
    },
    /// The storage failed; a Failure was sent.
    Storage(String),
    /// The requester exceeded its retrieval rate (overall or for this target), or the
    /// target's prekeys were asked for faster than the target's rate; a No Prekey
    /// Ensembles message was sent and nothing was taken from storage.
    RateLimited,
}

impl Rejection {
    /// A short label (logs, metrics).
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::BadSender => "bad_sender",
            Rejection::TooLarge { .. } => "too_large",
            Rejection::Fragment(_) => "fragment",
            Rejection::Malformed(_) => "malformed",
            Rejection::Unexpected(_) => "unexpected",
            Rejection::DakeLimit => "dake_limit",
            Rejection::DakeRateLimited => "dake_rate_limited",
            Rejection::NoSession => "no_session",
            Rejection::Dake(_) => "dake",
            Rejection::Refused(_) => "refused",
            Rejection::DeviceFull { .. } => "device_full",
            Rejection::Storage(_) => "storage",
            Rejection::RateLimited => "rate_limited",
        }
    }

    /// Whether this rejection is a limit (already counted and logged as a limit hit).
    fn is_limit(&self) -> bool {
        matches!(
            self,
            Rejection::TooLarge { .. }
                | Rejection::DakeLimit
                | Rejection::DakeRateLimited
                | Rejection::RateLimited
        )
    }
}

/// What handling one message did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A fragment was buffered; the message is not complete yet.
    FragmentBuffered,
    /// DAKE-1 accepted, DAKE-2 sent.
    Dake2Sent {
        /// The publisher's instance tag.
        instance_tag: u32,
    },
    /// A publication was stored and Success sent.
    Published {
        /// The publisher's instance tag.
        instance_tag: u32,
        /// Prekey messages newly stored.
        added: u32,
        /// Prekey messages stored for the device now.
        stored: u32,
    },
    /// A Storage Status message was sent.
    StatusSent {
        /// The publisher's instance tag.
        instance_tag: u32,
        /// The count sent.
        stored: u32,
    },
    /// A Prekey Ensemble Retrieval message with this many ensembles was sent.
    EnsemblesSent {
        /// The ids of the Prekey messages handed out.
        prekey_ids: Vec<u32>,
    },
    /// A No Prekey Ensembles in Storage message was sent.
    NoEnsembles,
    /// The message was rejected (see the reason for whether a reply was sent).
    Rejected(Rejection),
}

impl Event {
    /// The `kind` and `result` labels of the `prekey_requests_total` metric.
    pub fn labels(&self) -> (&'static str, &'static str) {
        match self {
            Event::FragmentBuffered => ("fragment", "ok"),
            Event::Dake2Sent { .. } => ("dake1", "ok"),
            Event::Published { .. } | Event::StatusSent { .. } => ("dake3", "ok"),
            Event::EnsemblesSent { .. } => ("query", "ok"),
            Event::NoEnsembles => ("query", "no_ensembles"),
            Event::Rejected(r) => {
                let kind = match r {
                    Rejection::DakeLimit | Rejection::DakeRateLimited => "dake1",
                    Rejection::Dake(_) => "dake",
                    Rejection::NoSession | Rejection::Refused(_) | Rejection::DeviceFull { .. } => {
                        "dake3"
                    }
                    Rejection::RateLimited => "query",
                    Rejection::Fragment(_) => "fragment",
                    Rejection::Storage(_) => "storage",
                    Rejection::BadSender
                    | Rejection::TooLarge { .. }
                    | Rejection::Malformed(_)
                    | Rejection::Unexpected(_) => "invalid",
                };
                (kind, r.label())
            }
        }
    }
}

/// The replies to send (encoded texts, in order) and what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handled {
    /// Texts to send back to the sender, in order.
    pub replies: Vec<String>,
    /// What happened.
    pub event: Event,
}

impl Handled {
    fn silent(event: Event) -> Handled {
        Handled {
            replies: Vec::new(),
            event,
        }
    }
}

/// A half-open DAKE: the server session and when (in admission order) it started.
struct DakeSlot {
    seq: u64,
    session: ServerSession,
}

/// A partly reassembled message of one sender and when (in arrival order) it started.
struct Reassembly {
    seq: u64,
    reassembler: Reassembler,
}

/// The retrieval token buckets (keys are keyed hashes of the JIDs: bounded memory whatever
/// the JIDs' lengths).
struct RetrievalLimiters {
    requester: RateLimiter<u64>,
    pair: RateLimiter<u64>,
    target: RateLimiter<u64>,
}

/// The prekey service. `Sync`: call [`Service::handle`] from any number of threads.
pub struct Service {
    core: PrekeyServer,
    storage: Arc<dyn Storage>,
    options: ServiceOptions,
    sessions: Mutex<HashMap<(String, u32), DakeSlot>>,
    rate: Mutex<RetrievalLimiters>,
    dake_starts: Mutex<RateLimiter<u64>>,
    reassembly: Mutex<HashMap<String, Reassembly>>,
    retrievals: Batcher,
    hits: LimitHits,
    reject_log: LogLimiter,
    hasher: std::collections::hash_map::RandomState,
    seq: AtomicU64,
    transport_up: std::sync::atomic::AtomicBool,
}

/// Most retrievals committed in one transaction.
pub const MAX_RETRIEVAL_BATCH: usize = 256;

type TakeResult = Result<Vec<StoredEnsemble>, String>;

/// One queued retrieval.
struct TakeJob {
    id: u64,
    request: TakeRequest,
    now: i64,
}

/// The group-commit queue, under [`Batcher::state`].
#[derive(Default)]
struct BatchState {
    /// Retrievals waiting for a leader, oldest first.
    queue: Vec<TakeJob>,
    /// Results of committed (or failed) retrievals not yet collected by their caller.
    done: HashMap<u64, TakeResult>,
    /// A caller is running a batch right now.
    leader: bool,
    next_id: u64,
}

/// Group commit for retrievals, run by the callers themselves (leader/follower): a caller
/// queues its retrieval; if no batch is running it becomes the leader and runs every queued
/// retrieval (up to [`MAX_RETRIEVAL_BATCH`]) in one storage transaction
/// ([`Storage::take_ensembles_batch`]), so concurrent retrievals share one durable commit
/// (one fsync with `synchronous=FULL`); otherwise it waits for a leader to commit its
/// retrieval. A lone retrieval runs at once on its own thread (no hand-off to another
/// thread, nothing waits for a batch to fill). Results are released only after the commit.
struct Batcher {
    state: Mutex<BatchState>,
    wake: Condvar,
}

/// Ends a leader's turn even if the storage call unwinds: failed jobs get an error, the
/// `leader` flag is cleared and the waiting callers are woken (one of them leads next).
struct LeaderTurn<'a> {
    batcher: &'a Batcher,
    ids: Vec<u64>,
    results: Option<Vec<TakeResult>>,
}

impl Drop for LeaderTurn<'_> {
    fn drop(&mut self) {
        let results = self.results.take().unwrap_or_default();
        let mut st = lock(&self.batcher.state);
        let mut results = results.into_iter();
        for id in self.ids.drain(..) {
            let r = results
                .next()
                .unwrap_or_else(|| Err("retrieval batch did not complete".into()));
            st.done.insert(id, r);
        }
        st.leader = false;
        drop(st);
        self.batcher.wake.notify_all();
    }
}

impl Batcher {
    fn new() -> Batcher {
        Batcher {
            state: Mutex::new(BatchState::default()),
            wake: Condvar::new(),
        }
    }

    /// Takes ensembles for `request`, batched with concurrent retrievals when possible.
    fn take(&self, storage: &dyn Storage, request: TakeRequest, now: i64) -> TakeResult {
        let mut st = lock(&self.state);
        let id = st.next_id;
        st.next_id = st.next_id.wrapping_add(1);
        st.queue.push(TakeJob { id, request, now });
        loop {
            if let Some(r) = st.done.remove(&id) {
                return r;
            }
            if st.leader {
                st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            // Lead: take the oldest queued retrievals (ours among them unless more than a
            // full batch is ahead of it; then we lead again).
            st.leader = true;
            let n = st.queue.len().min(MAX_RETRIEVAL_BATCH);
            let jobs: Vec<TakeJob> = st.queue.drain(..n).collect();
            drop(st);
            let mut turn = LeaderTurn {
                batcher: self,
                ids: jobs.iter().map(|j| j.id).collect(),
                results: None,
            };
            let now = jobs.iter().map(|j| j.now).max().unwrap_or(now);
            let requests: Vec<TakeRequest> = jobs.into_iter().map(|j| j.request).collect();
            turn.results = Some(match storage.take_ensembles_batch(&requests, now) {
                Ok(results) => {
                    debug!(batch = requests.len(), "retrievals committed");
                    results.into_iter().map(Ok).collect()
                }
                Err(e) => {
                    let msg = e.to_string();
                    requests.iter().map(|_| Err(msg.clone())).collect()
                }
            });
            drop(turn);
            st = lock(&self.state);
        }
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("identity", &self.options.identity)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch, fractional.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data (every update is a
    // single insert/remove), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Checks that `from` looks like a bare JID: non-empty, not too long, no resource.
fn plausible_bare_jid(from: &str) -> bool {
    !from.is_empty() && from.len() <= MAX_JID_LEN && !from.contains('/') && !from.contains(' ')
}

/// The domain part of a bare JID (`local@domain` → `domain`; a domain JID is its own).
pub fn domain_of(jid: &str) -> &str {
    jid.split_once('@').map_or(jid, |(_, d)| d)
}

impl Service {
    /// A service with long-term key `key` over `storage`.
    pub fn new(key: KeyPair, storage: Arc<dyn Storage>, options: ServiceOptions) -> Service {
        let core = PrekeyServer::new(options.identity.as_bytes().to_vec(), key)
            .with_session_ttl(options.limits.dake_ttl_secs);
        let l = &options.limits;
        let rate = RetrievalLimiters {
            requester: RateLimiter::new(l.retrieval_rate_per_sec, l.retrieval_burst),
            pair: RateLimiter::new(l.pair_retrieval_rate_per_sec, l.pair_retrieval_burst),
            target: RateLimiter::new(l.target_retrieval_rate_per_sec, l.target_retrieval_burst),
        };
        let dake_starts = RateLimiter::new(l.dake_start_rate_per_sec, l.dake_start_burst);
        Service {
            core,
            storage,
            options,
            sessions: Mutex::new(HashMap::new()),
            rate: Mutex::new(rate),
            dake_starts: Mutex::new(dake_starts),
            reassembly: Mutex::new(HashMap::new()),
            retrievals: Batcher::new(),
            hits: LimitHits::default(),
            reject_log: LogLimiter::default(),
            hasher: std::collections::hash_map::RandomState::new(),
            seq: AtomicU64::new(0),
            transport_up: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Records whether the transport is connected (component) or serving (stdio); read by
    /// the health check and exported as `prekey_transport_up`.
    pub fn set_transport_up(&self, up: bool) {
        self.transport_up.store(up, Ordering::Relaxed);
        metrics::gauge!(crate::ops::UP).set(if up { 1.0 } else { 0.0 });
    }

    /// Whether the transport is up.
    pub fn transport_up(&self) -> bool {
        self.transport_up.load(Ordering::Relaxed)
    }

    /// Healthy: the transport is up and the storage answers.
    pub fn healthy(&self) -> bool {
        self.transport_up() && self.storage.stats().is_ok()
    }

    /// Refreshes the `prekey_stored` gauges from the storage.
    pub fn export_store_stats(&self) -> Result<(), StorageError> {
        let s = self.storage.stats()?;
        for (table, n) in [
            ("client_profiles", s.client_profiles),
            ("prekey_profiles", s.prekey_profiles),
            ("prekey_messages", s.prekey_messages),
        ] {
            metrics::gauge!(crate::ops::STORED, "table" => table).set(n as f64);
        }
        Ok(())
    }

    /// Applies new token-bucket rates and bursts (retrievals per requester, pair and
    /// target; DAKE starts) without a restart (SIGHUP). Existing buckets keep their tokens,
    /// capped at the new burst when next used. The other limits need a restart.
    pub fn reload_rates(&self, l: &Limits) {
        let mut r = lock(&self.rate);
        r.requester.set(l.retrieval_rate_per_sec, l.retrieval_burst);
        r.pair
            .set(l.pair_retrieval_rate_per_sec, l.pair_retrieval_burst);
        r.target
            .set(l.target_retrieval_rate_per_sec, l.target_retrieval_burst);
        drop(r);
        lock(&self.dake_starts).set(l.dake_start_rate_per_sec, l.dake_start_burst);
    }

    /// The limit-hit counters.
    pub fn limit_hits(&self) -> &LimitHits {
        &self.hits
    }

    /// Counts a limit hit (transports report theirs here).
    pub fn hit(&self, kind: LimitKind) {
        self.hits.hit(kind);
    }

    /// Bytes buffered for fragment reassembly, all senders together.
    pub fn reassembly_bytes(&self) -> usize {
        lock(&self.reassembly)
            .values()
            .map(|r| r.reassembler.buffered_bytes())
            .sum()
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn key_hash(&self, parts: &[&str]) -> u64 {
        self.hasher.hash_one(parts)
    }

    /// The server's fingerprint (otrv4-prekey-server.md §"Public keys and Fingerprints").
    pub fn fingerprint(&self) -> Fingerprint {
        self.core.fingerprint()
    }

    /// The disco names of the key-rotation announcements still valid at `now` (Unix
    /// seconds): an expired one is no longer published, even before a restart.
    pub fn announcement_names(&self, now: u64) -> Vec<String> {
        self.options
            .announcements
            .iter()
            .filter(|a| a.not_after >= now)
            .map(crate::rotation::Announcement::disco_name)
            .collect()
    }

    /// The fingerprint as the 112 upper-case hex digits published over service discovery.
    pub fn fingerprint_hex(&self) -> String {
        hex::encode_upper(self.fingerprint().as_bytes())
    }

    /// The server's identity (bare JID).
    pub fn identity(&self) -> &str {
        &self.options.identity
    }

    /// The options.
    pub fn options(&self) -> &ServiceOptions {
        &self.options
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// DAKEs in flight.
    pub fn dakes_in_flight(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Handles `text` from `from` (a bare JID) now.
    pub fn handle(&self, from: &str, text: &str) -> Handled {
        self.handle_at(from, text, unix_now())
    }

    /// Handles `text` from `from` (a bare JID) at time `now` (seconds since the Unix epoch).
    pub fn handle_at(&self, from: &str, text: &str, now: f64) -> Handled {
        let started = std::time::Instant::now();
        let h = self.handle_inner(from, text, now);
        let (kind, result) = h.event.labels();
        metrics::counter!(crate::ops::REQUESTS, "kind" => kind, "result" => result).increment(1);
        metrics::histogram!(crate::ops::LATENCY, "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        match kind {
            "dake1" | "dake3" => {
                metrics::gauge!(crate::ops::DAKE_SLOTS).set(self.dakes_in_flight() as f64)
            }
            "fragment" => {
                metrics::gauge!(crate::ops::REASSEMBLY_BYTES).set(self.reassembly_bytes() as f64)
            }
            _ => {}
        }
        // JIDs only at debug; served requests at info without JIDs; at warn one line per
        // kind of rejection per interval.
        match &h.event {
            Event::Rejected(r) => {
                debug!(from, reason = ?r, replies = h.replies.len(), "rejected");
                if !r.is_limit()
                    && let Some(n) = self.reject_log.admit(r.label())
                {
                    warn!(
                        reason = r.label(),
                        suppressed_since_last = n,
                        "message rejected"
                    );
                }
            }
            Event::FragmentBuffered => debug!(from, "fragment buffered"),
            e => {
                // The outcome without the sender (the xmpp-glue Prosody tests read these);
                // who asked is only at debug.
                debug!(from, "served");
                info!(event = ?e, "handled");
            }
        }
        h
    }

    fn handle_inner(&self, from: &str, text: &str, now: f64) -> Handled {
        let reject = |r| Handled::silent(Event::Rejected(r));
        if !plausible_bare_jid(from) {
            return reject(Rejection::BadSender);
        }
        let max = self.options.limits.max_message_bytes;
        if text.len() > max {
            self.hits.hit(LimitKind::MessageTooLarge);
            return reject(Rejection::TooLarge {
                len: text.len(),
                max,
            });
        }
        let now_secs = now as i64;
        let unframed = framing::unframe(text.trim(), |f| {
            let whole = self.reassemble(from, f, now_secs)?;
            if let Some(w) = &whole
                && w.len() > max
            {
                self.hits.hit(LimitKind::MessageTooLarge);
                return Err(Rejection::TooLarge { len: w.len(), max });
            }
            Ok(whole)
        });
        let bytes = match unframed {
            Ok(Some(b)) => b,
            Ok(None) => return Handled::silent(Event::FragmentBuffered),
            Err(UnframeError::Reassembly(r)) => return reject(r),
            Err(UnframeError::NestedFragment) => {
                return reject(Rejection::Fragment("nested fragment".into()));
            }
            Err(UnframeError::Malformed(e)) => return reject(Rejection::Malformed(e)),
        };
        self.handle_binary(from, &bytes, now)
    }

    fn reassemble(
        &self,
        from: &str,
        f: &otr4::hazmat::wire::fragment::Fragment<'_>,
        now: i64,
    ) -> Result<Option<String>, Rejection> {
        let limits = &self.options.limits;
        let now_u = u64::try_from(now).unwrap_or(0);
        let mut all = lock(&self.reassembly);
        if !all.contains_key(from) && all.len() >= limits.max_reassembly_senders {
            all.retain(|_, r| {
                r.reassembler.expire(now_u);
                r.reassembler.pending() > 0
            });
            if all.len() >= limits.max_reassembly_senders {
                // Evict the sender whose reassembly started first.
                Self::evict_oldest_reassembly(&mut all);
                self.hits.hit(LimitKind::ReassemblyEvicted);
            }
        }
        let seq = self.next_seq();
        let r = all.entry(from.to_owned()).or_insert_with(|| Reassembly {
            seq,
            reassembler: Reassembler::with_timeout(
                FragmentKind::Prekey,
                limits.fragment_timeout_secs,
            ),
        });
        let res = r.reassembler.push_fragment(f, InstanceTag::UNKNOWN, now_u);
        let buffered = r.reassembler.buffered_bytes();
        let done = r.reassembler.pending() == 0;
        if buffered > limits.max_message_bytes {
            all.remove(from);
            self.hits.hit(LimitKind::MessageTooLarge);
            return Err(Rejection::TooLarge {
                len: buffered,
                max: limits.max_message_bytes,
            });
        }
        if done {
            all.remove(from);
        }
        // The global cap: evict the oldest reassemblies (this sender's too, if it is the
        // oldest) until the total fits.
        let mut total: usize = all.values().map(|r| r.reassembler.buffered_bytes()).sum();
        while total > limits.max_reassembly_bytes {
            let Some(freed) = Self::evict_oldest_reassembly(&mut all) else {
                break;
            };
            total = total.saturating_sub(freed);
            self.hits.hit(LimitKind::ReassemblyEvicted);
        }
        res.map_err(|e| Rejection::Fragment(e.to_string()))
    }

    /// Drops the reassembly that started first; returns the bytes it held.
    fn evict_oldest_reassembly(all: &mut HashMap<String, Reassembly>) -> Option<usize> {
        let oldest = all
            .iter()
            .min_by_key(|(_, r)| r.seq)
            .map(|(k, _)| k.clone())?;
        all.remove(&oldest).map(|r| r.reassembler.buffered_bytes())
    }

    /// Handles a decoded (binary) message.
    pub fn handle_binary(&self, from: &str, bytes: &[u8], now: f64) -> Handled {
        let reject = |r| Handled::silent(Event::Rejected(r));
        let now_secs = now as i64;
        let msg = match PrekeyServerMessage::decode(bytes) {
            Ok(m) => m,
            Err(e) => return reject(Rejection::Malformed(e)),
        };
        match msg {
            PrekeyServerMessage::Dake1(m) => self.dake1(from, &m, now_secs),
            PrekeyServerMessage::Dake3(m) => self.dake3(from, &m, now_secs),
            PrekeyServerMessage::EnsembleQuery(q) => self.query(from, &q, now),
            other => reject(Rejection::Unexpected(other.message_type())),
        }
    }

    fn expire_sessions(sessions: &mut HashMap<(String, u32), DakeSlot>, now: i64) {
        sessions.retain(|_, s| !s.session.is_expired(now));
    }

    /// Whether a new DAKE from `from` fits its per-JID and per-domain quotas; when every
    /// slot is in use and `evict`, the oldest half-open DAKE is dropped to make room.
    fn admit_dake(
        &self,
        sessions: &mut HashMap<(String, u32), DakeSlot>,
        key: &(String, u32),
        now: i64,
        evict: bool,
    ) -> Result<(), LimitKind> {
        let limits = &self.options.limits;
        if sessions.contains_key(key) {
            return Ok(()); // a restart replaces the old session
        }
        if sessions.len() >= limits.max_concurrent_dakes {
            Self::expire_sessions(sessions, now);
        }
        let from = key.0.as_str();
        let domain = domain_of(from);
        let (mut per_jid, mut per_domain) = (0usize, 0usize);
        for (j, _) in sessions.keys() {
            if j == from {
                per_jid += 1;
            }
            if domain_of(j) == domain {
                per_domain += 1;
            }
        }
        if per_jid >= limits.max_dakes_per_jid {
            return Err(LimitKind::DakePerJid);
        }
        if per_domain >= limits.max_dakes_per_domain {
            return Err(LimitKind::DakePerDomain);
        }
        while evict && sessions.len() >= limits.max_concurrent_dakes {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.seq)
                .map(|(k, _)| k.clone());
            let Some(k) = oldest else { break };
            sessions.remove(&k);
            self.hits.hit(LimitKind::DakeEvicted);
        }
        Ok(())
    }

    fn dake1(&self, from: &str, m: &otr4::hazmat::prekey::messages::Dake1, now: i64) -> Handled {
        let key = (from.to_owned(), m.sender_tag.0);
        if let Err(kind) = self.admit_dake(&mut lock(&self.sessions), &key, now, false) {
            self.hits.hit(kind);
            return Handled::silent(Event::Rejected(Rejection::DakeLimit));
        }
        // Each DAKE-1 costs a signature and a ring signature: rate-limited per requester.
        let who = self.key_hash(&[from]);
        match lock(&self.dake_starts).check(&who, now as f64) {
            Verdict::Allowed => {}
            Verdict::Limited => {
                self.hits.hit(LimitKind::DakeStartRate);
                return Handled::silent(Event::Rejected(Rejection::DakeRateLimited));
            }
            Verdict::TableFull => {
                self.hits.hit(LimitKind::TrackerFull);
                return Handled::silent(Event::Rejected(Rejection::DakeRateLimited));
            }
        }
        let (session, dake2) =
            match self
                .core
                .receive_dake1(&mut rand::rng(), from.as_bytes(), m, now)
            {
                Ok(x) => x,
                Err(e) => return Handled::silent(Event::Rejected(Rejection::Dake(e))),
            };
        {
            let mut sessions = lock(&self.sessions);
            // Re-check: other DAKE-1s may have been admitted while we signed.
            if let Err(kind) = self.admit_dake(&mut sessions, &key, now, true) {
                self.hits.hit(kind);
                return Handled::silent(Event::Rejected(Rejection::DakeLimit));
            }
            let seq = self.next_seq();
            sessions.insert(key, DakeSlot { seq, session });
        }
        Handled {
            replies: self.frame(&dake2.encode(), m.sender_tag),
            event: Event::Dake2Sent {
                instance_tag: m.sender_tag.0,
            },
        }
    }

    fn dake3(&self, from: &str, m: &otr4::hazmat::prekey::messages::Dake3, now: i64) -> Handled {
        let Some(DakeSlot { session, .. }) =
            lock(&self.sessions).remove(&(from.to_owned(), m.sender_tag.0))
        else {
            return Handled::silent(Event::Rejected(Rejection::NoSession));
        };
        let tag = m.sender_tag;
        let outcome = match self.core.receive_dake3(session, m, now) {
            Ok(o) => o,
            Err(e) => return Handled::silent(Event::Rejected(Rejection::Dake(e))),
        };
        match outcome {
            Dake3Outcome::Rejected { reply, reason } => Handled {
                replies: self.frame(&reply.encode(), tag),
                event: Event::Rejected(Rejection::Refused(reason)),
            },
            Dake3Outcome::StorageStatus(pending) => {
                let device = DeviceKey {
                    jid: from.to_owned(),
                    instance_tag: pending.instance_tag().0,
                    long_term_key: pending.long_term_key().point().encode(),
                };
                match self.storage.count(&device) {
                    Ok(n) => Handled {
                        replies: self.frame(&pending.respond(n).encode(), tag),
                        event: Event::StatusSent {
                            instance_tag: tag.0,
                            stored: n,
                        },
                    },
                    Err(e) => Handled {
                        replies: self.frame(&pending.failed().encode(), tag),
                        event: Event::Rejected(Rejection::Storage(e.to_string())),
                    },
                }
            }
            Dake3Outcome::Publication(pending) => {
                let request = to_storage_request(from, pending.request());
                match self
                    .storage
                    .store(&request, self.options.limits.max_prekeys_per_device, now)
                {
                    // The commit is durable here: only now is Success sent.
                    Ok(out) => Handled {
                        replies: self.frame(&pending.stored().encode(), tag),
                        event: Event::Published {
                            instance_tag: tag.0,
                            added: out.added,
                            stored: out.stored,
                        },
                    },
                    Err(StorageError::DeviceFull { would_hold, limit }) => Handled {
                        replies: self.frame(&pending.failed().encode(), tag),
                        event: Event::Rejected(Rejection::DeviceFull { would_hold, limit }),
                    },
                    Err(e) => Handled {
                        replies: self.frame(&pending.failed().encode(), tag),
                        event: Event::Rejected(Rejection::Storage(e.to_string())),
                    },
                }
            }
        }
    }

    fn query(
        &self,
        from: &str,
        q: &otr4::hazmat::prekey::messages::EnsembleQuery,
        now: f64,
    ) -> Handled {
        let no = |receiver_tag: InstanceTag, identity: Vec<u8>| NoPrekeyEnsembles {
            receiver_tag,
            identity,
            message: NO_PREKEY_ENSEMBLES_TEXT.to_vec(),
        };
        let req = match self.core.receive_query(q) {
            QueryOutcome::Reply(m) => {
                return Handled {
                    replies: self.frame(&m.encode(), q.sender_tag),
                    event: Event::NoEnsembles,
                };
            }
            QueryOutcome::Lookup(r) => r,
        };
        let target = std::str::from_utf8(&req.identity)
            .ok()
            .filter(|t| plausible_bare_jid(t));
        if let Err(kind) = self.allow_retrieval(from, target, now) {
            self.hits.hit(kind);
            return Handled {
                replies: self.frame(&no(req.receiver_tag, req.identity).encode(), q.sender_tag),
                event: Event::Rejected(Rejection::RateLimited),
            };
        }
        let Some(jid) = target else {
            return Handled {
                replies: self.frame(&no(req.receiver_tag, req.identity).encode(), q.sender_tag),
                event: Event::NoEnsembles,
            };
        };
        // Only version 4 is served (the core checked that "4" was asked for).
        let request = TakeRequest {
            jid: jid.to_owned(),
            versions: b"4".to_vec(),
        };
        match self
            .retrievals
            .take(self.storage.as_ref(), request, now as i64)
        {
            Ok(ensembles) if !ensembles.is_empty() => {
                let prekey_ids = ensembles.iter().map(|e| e.prekey_message_id).collect();
                let bin = encode_retrieval(req.receiver_tag, &req.identity, &ensembles);
                Handled {
                    replies: self.frame(&bin, q.sender_tag),
                    event: Event::EnsemblesSent { prekey_ids },
                }
            }
            Ok(_) => Handled {
                replies: self.frame(&no(req.receiver_tag, req.identity).encode(), q.sender_tag),
                event: Event::NoEnsembles,
            },
            Err(e) => {
                warn!(error = %e, "retrieval failed in storage");
                Handled {
                    replies: self.frame(&no(req.receiver_tag, req.identity).encode(), q.sender_tag),
                    event: Event::Rejected(Rejection::Storage(e.to_string())),
                }
            }
        }
    }

    /// Takes a token from the requester's, the (requester, target) pair's and the target's
    /// buckets — all three or none, so a refused request costs no other bucket anything.
    /// A query for something that is not a JID (`target` None) costs the requester only.
    fn allow_retrieval(&self, from: &str, target: Option<&str>, now: f64) -> Result<(), LimitKind> {
        let mut rl = lock(&self.rate);
        let who = self.key_hash(&[from]);
        let verdict = |v: Verdict, kind: LimitKind| match v {
            Verdict::Allowed => Ok(()),
            Verdict::Limited => Err(kind),
            Verdict::TableFull => Err(LimitKind::TrackerFull),
        };
        verdict(
            rl.requester.would_allow(&who, now),
            LimitKind::RetrievalRequester,
        )?;
        let keys = target.map(|t| (self.key_hash(&[from, t]), self.key_hash(&[t])));
        if let Some((pair, tgt)) = keys {
            verdict(rl.pair.would_allow(&pair, now), LimitKind::RetrievalPair)?;
            verdict(rl.target.would_allow(&tgt, now), LimitKind::RetrievalTarget)?;
        }
        verdict(rl.requester.check(&who, now), LimitKind::RetrievalRequester)?;
        if let Some((pair, tgt)) = keys {
            verdict(rl.pair.check(&pair, now), LimitKind::RetrievalPair)?;
            verdict(rl.target.check(&tgt, now), LimitKind::RetrievalTarget)?;
        }
        Ok(())
    }

    /// Encodes `bin` as `<base64>.`, fragmented if configured and longer than the limit.
    fn frame(&self, bin: &[u8], receiver: InstanceTag) -> Vec<String> {
        let split = self.options.fragment_size.map(|max| framing::Split {
            max,
            id: rand::random::<u32>(),
            receiver,
        });
        framing::frame(bin, split).unwrap_or_else(|(text, e)| {
            warn!(error = %e, "could not fragment a reply; sending it whole");
            vec![text]
        })
    }

    /// Removes expired profiles and old orphaned Prekey messages, and expired DAKEs.
    pub fn gc(&self, now: i64) -> Result<crate::storage::GcReport, StorageError> {
        Self::expire_sessions(&mut lock(&self.sessions), now);
        let r = self
            .storage
            .gc(now, now.saturating_sub(self.options.orphan_retention_secs))?;
        info!(?r, "storage gc");
        Ok(r)
    }
}

/// The storage form of the core's verified publication.
fn to_storage_request(jid: &str, r: &otr4::hazmat::prekey::server::StoreRequest) -> StorageRequest {
    StorageRequest {
        device: DeviceKey {
            jid: jid.to_owned(),
            instance_tag: r.owner_tag.0,
            long_term_key: r.long_term_key.point().encode(),
        },
        client_profile: r.client_profile.as_ref().map(|cp| ClientProfileRecord {
            bytes: cp.encode(),
            versions: cp.versions().to_vec(),
            expires: cp.expiration(),
        }),
        prekey_profile: r.prekey_profile.as_ref().map(|pp| PrekeyProfileRecord {
            bytes: pp.encode(),
            expires: pp.expiration,
        }),
        prekey_messages: r
            .prekey_messages
            .iter()
            .map(|m| PrekeyMessageRecord {
                id: m.id,
                version: u8::try_from(PROTOCOL_VERSION).unwrap_or(4),
                bytes: m.encode(),
            })
            .collect(),
    }
}

/// The Prekey Ensemble Retrieval message (otrv4-prekey-server.md §"Prekey Ensemble
/// Retrieval Message") built from the stored bytes, which are the encodings of values
/// verified at publication: `0x0004 || 0x13 || receiver tag || DATA(identity) || L ||
/// ensembles`. Byte-identical to `EnsembleRetrieval::encode` (tested), without re-parsing
/// three profiles per ensemble.
pub fn encode_retrieval(
    receiver: InstanceTag,
    identity: &[u8],
    ensembles: &[StoredEnsemble],
) -> Vec<u8> {
    let body: usize = ensembles
        .iter()
        .map(|e| e.client_profile.len() + e.prekey_profile.len() + e.prekey_message.len())
        .sum();
    let mut w = Vec::with_capacity(15 + identity.len() + body);
    w.u16(PROTOCOL_VERSION)
        .u8(TYPE_ENSEMBLE_RETRIEVAL)
        .u32(receiver.0)
        .data(identity)
        .u32(u32::try_from(ensembles.len()).unwrap_or(u32::MAX));
    for e in ensembles {
        w.bytes(&e.client_profile)
            .bytes(&e.prekey_profile)
            .bytes(&e.prekey_message);
    }
    w
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
