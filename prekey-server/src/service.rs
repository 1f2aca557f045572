//! The prekey service: the sans-IO protocol core ([`otr4::prekey::server`]) joined to a
//! [`Storage`], the [`Limits`], DAKE session bookkeeping and fragment reassembly.
//!
//! Transport-neutral: every transport hands [`Service::handle`] the sender's bare JID and
//! the message text (a `<base64>.` message or a `?OTRP|` fragment) and sends back the
//! replies. A publication is acknowledged (Success) only after the storage committed it.

use crate::limits::{Limits, RateLimiter};
use crate::storage::{
    ClientProfileRecord, DeviceKey, PrekeyMessageRecord, PrekeyProfileRecord, Storage,
    StorageError, StoreRequest as StorageRequest, StoredEnsemble, TakeRequest,
};
use otr4::InstanceTag;
use otr4::crypto::ed448::KeyPair;
use otr4::crypto::fingerprint::Fingerprint;
use otr4::prekey::server::{Dake3Outcome, PrekeyServer, QueryOutcome, ServerError, ServerSession};
use otr4::wire::codec::{DecodeError, Writer};
use otr4::wire::encoded::{IncomingPrekey, classify_prekey, encode_prekey};
use otr4::wire::fragment::{FragmentKind, Reassembler, fragment};
use otr4::wire::messages::PROTOCOL_VERSION;
use otr4::wire::prekey_messages::{
    NO_PREKEY_ENSEMBLES_TEXT, NoPrekeyEnsembles, PrekeyServerMessage, TYPE_ENSEMBLE_RETRIEVAL,
};
use std::collections::HashMap;
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
}

impl ServiceOptions {
    /// Options with default limits for `identity`.
    pub fn new(identity: impl Into<String>) -> ServiceOptions {
        ServiceOptions {
            identity: identity.into(),
            limits: Limits::default(),
            fragment_size: None,
            orphan_retention_secs: 30 * 24 * 3600,
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
    /// DAKE-1 refused: too many DAKEs in flight (globally or for this JID).
    DakeLimit,
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
    /// The requester exceeded its retrieval rate; a No Prekey Ensembles message was sent
    /// and nothing was taken from storage.
    RateLimited,
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

/// The prekey service. `Sync`: call [`Service::handle`] from any number of threads.
pub struct Service {
    core: PrekeyServer,
    storage: Arc<dyn Storage>,
    options: ServiceOptions,
    sessions: Mutex<HashMap<(String, u32), ServerSession>>,
    rate: Mutex<RateLimiter>,
    reassembly: Mutex<HashMap<String, (u64, Reassembler)>>,
    retrievals: Batcher,
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

impl Service {
    /// A service with long-term key `key` over `storage`.
    pub fn new(key: KeyPair, storage: Arc<dyn Storage>, options: ServiceOptions) -> Service {
        let core = PrekeyServer::new(options.identity.as_bytes().to_vec(), key)
            .with_session_ttl(options.limits.dake_ttl_secs);
        let rate = RateLimiter::new(
            options.limits.retrieval_rate_per_sec,
            options.limits.retrieval_burst,
        );
        Service {
            core,
            storage,
            options,
            sessions: Mutex::new(HashMap::new()),
            rate: Mutex::new(rate),
            reassembly: Mutex::new(HashMap::new()),
            retrievals: Batcher::new(),
        }
    }

    /// The server's fingerprint (otrv4-prekey-server.md §"Public keys and Fingerprints").
    pub fn fingerprint(&self) -> Fingerprint {
        self.core.fingerprint()
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
        let h = self.handle_inner(from, text, now);
        match &h.event {
            Event::Rejected(r) => warn!(from, reason = ?r, replies = h.replies.len(), "rejected"),
            Event::FragmentBuffered => debug!(from, "fragment buffered"),
            e => info!(from, event = ?e, "handled"),
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
            return reject(Rejection::TooLarge {
                len: text.len(),
                max,
            });
        }
        let now_secs = now as i64;
        let bytes = match classify_prekey(text.trim()) {
            Ok(IncomingPrekey::Encoded(b)) => b,
            Ok(IncomingPrekey::Fragment(f)) => match self.reassemble(from, &f, now_secs) {
                Ok(Some(whole)) => {
                    if whole.len() > max {
                        return reject(Rejection::TooLarge {
                            len: whole.len(),
                            max,
                        });
                    }
                    match classify_prekey(&whole) {
                        Ok(IncomingPrekey::Encoded(b)) => b,
                        Ok(IncomingPrekey::Fragment(_)) => {
                            return reject(Rejection::Fragment("nested fragment".into()));
                        }
                        Err(e) => return reject(Rejection::Malformed(e)),
                    }
                }
                Ok(None) => return Handled::silent(Event::FragmentBuffered),
                Err(r) => return reject(r),
            },
            Err(e) => return reject(Rejection::Malformed(e)),
        };
        self.handle_binary(from, &bytes, now)
    }

    fn reassemble(
        &self,
        from: &str,
        f: &otr4::wire::fragment::Fragment<'_>,
        now: i64,
    ) -> Result<Option<String>, Rejection> {
        let limits = &self.options.limits;
        let now_u = u64::try_from(now).unwrap_or(0);
        let mut all = lock(&self.reassembly);
        if !all.contains_key(from) && all.len() >= limits.max_reassembly_senders {
            all.retain(|_, (_, r)| {
                r.expire(now_u);
                r.pending() > 0
            });
            if all.len() >= limits.max_reassembly_senders {
                // Evict the sender whose reassembly started first.
                let oldest = all
                    .iter()
                    .min_by_key(|(_, (t, _))| *t)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    all.remove(&k);
                }
            }
        }
        let (_, r) = all.entry(from.to_owned()).or_insert_with(|| {
            (
                now_u,
                Reassembler::with_timeout(FragmentKind::Prekey, limits.fragment_timeout_secs),
            )
        });
        let res = r.push_fragment(f, InstanceTag::UNKNOWN, now_u);
        let buffered = r.buffered_bytes();
        let done = r.pending() == 0;
        if buffered > limits.max_message_bytes {
            all.remove(from);
            return Err(Rejection::TooLarge {
                len: buffered,
                max: limits.max_message_bytes,
            });
        }
        if done {
            all.remove(from);
        }
        res.map_err(|e| Rejection::Fragment(e.to_string()))
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
            other => reject(Rejection::Unexpected(
                other.encode().get(2).copied().unwrap_or(0),
            )),
        }
    }

    fn expire_sessions(sessions: &mut HashMap<(String, u32), ServerSession>, now: i64) {
        sessions.retain(|_, s| !s.is_expired(now));
    }

    fn dake1(&self, from: &str, m: &otr4::wire::prekey_messages::Dake1, now: i64) -> Handled {
        let limits = &self.options.limits;
        let key = (from.to_owned(), m.sender_tag.0);
        let admit = |sessions: &mut HashMap<(String, u32), ServerSession>| {
            if sessions.contains_key(&key) {
                return true; // a restart replaces the old session
            }
            if sessions.len() >= limits.max_concurrent_dakes {
                Self::expire_sessions(sessions, now);
            }
            let per_jid = sessions.keys().filter(|(j, _)| j == from).count();
            sessions.len() < limits.max_concurrent_dakes && per_jid < limits.max_dakes_per_jid
        };
        if !admit(&mut lock(&self.sessions)) {
            return Handled::silent(Event::Rejected(Rejection::DakeLimit));
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
            if !admit(&mut sessions) {
                return Handled::silent(Event::Rejected(Rejection::DakeLimit));
            }
            sessions.insert(key, session);
        }
        Handled {
            replies: self.frame(&dake2.encode(), m.sender_tag),
            event: Event::Dake2Sent {
                instance_tag: m.sender_tag.0,
            },
        }
    }

    fn dake3(&self, from: &str, m: &otr4::wire::prekey_messages::Dake3, now: i64) -> Handled {
        let Some(session) = lock(&self.sessions).remove(&(from.to_owned(), m.sender_tag.0)) else {
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
        q: &otr4::wire::prekey_messages::EnsembleQuery,
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
        if !lock(&self.rate).allow(from, now) {
            return Handled {
                replies: self.frame(&no(req.receiver_tag, req.identity).encode(), q.sender_tag),
                event: Event::Rejected(Rejection::RateLimited),
            };
        }
        let Ok(jid) = std::str::from_utf8(&req.identity) else {
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
                warn!(from, error = %e, "retrieval failed in storage");
                Handled {
                    replies: self.frame(&no(req.receiver_tag, req.identity).encode(), q.sender_tag),
                    event: Event::Rejected(Rejection::Storage(e.to_string())),
                }
            }
        }
    }

    /// Encodes `bin` as `<base64>.`, fragmented if configured and longer than the limit.
    fn frame(&self, bin: &[u8], receiver: InstanceTag) -> Vec<String> {
        let text = encode_prekey(bin);
        if let Some(max) = self.options.fragment_size {
            if text.len() > max {
                let id = rand::random::<u32>();
                match fragment(
                    &text,
                    max,
                    id,
                    InstanceTag::UNKNOWN,
                    receiver,
                    FragmentKind::Prekey,
                ) {
                    Ok(f) => return f,
                    Err(e) => warn!(error = %e, "could not fragment a reply; sending it whole"),
                }
            }
        }
        vec![text]
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
fn to_storage_request(jid: &str, r: &otr4::prekey::server::StoreRequest) -> StorageRequest {
    StorageRequest {
        device: DeviceKey {
            jid: jid.to_owned(),
            instance_tag: r.owner_tag.0,
            long_term_key: r.long_term_key.point().encode(),
        },
        client_profile: r.client_profile.as_ref().map(|cp| ClientProfileRecord {
            bytes: cp.serialize(),
            versions: cp.versions().to_vec(),
            expires: cp.expiration(),
        }),
        prekey_profile: r.prekey_profile.as_ref().map(|pp| PrekeyProfileRecord {
            bytes: pp.serialize(),
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
    let mut w = Writer::with_capacity(15 + identity.len() + body);
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
    w.into_bytes()
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
