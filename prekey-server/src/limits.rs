//! Resource limits of the server, the token buckets that rate-limit retrievals and DAKE
//! starts (otrv4-prekey-server.md §"Prekey Server Requirements": "partially mitigated
//! using fetch rate limiting"), and the counters and rate-limited log of limit hits.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Every limit the server enforces, with defaults suitable for a small deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest accepted encoded message (after fragment reassembly), in bytes. A full
    /// publication of 255 Prekey messages with profiles and proofs is about 160 KiB encoded.
    pub max_message_bytes: usize,
    /// Most Prekey messages stored per device (JID, instance tag, long-term key); a
    /// publication that would exceed it is refused with a Failure message.
    pub max_prekeys_per_device: u32,
    /// Ensemble retrievals per second a requesting bare JID earns (token refill rate).
    pub retrieval_rate_per_sec: f64,
    /// Retrievals a requesting bare JID may make in a burst (bucket size).
    pub retrieval_burst: u32,
    /// Retrievals per second one requester earns for one target (token bucket per
    /// (requester, target)).
    pub pair_retrieval_rate_per_sec: f64,
    /// Retrievals one requester may make for one target in a burst.
    pub pair_retrieval_burst: u32,
    /// Retrievals per second of one target's prekeys, all requesters together (token
    /// bucket per target): bounds how fast anyone can drain a victim's prekey messages.
    pub target_retrieval_rate_per_sec: f64,
    /// Retrievals of one target's prekeys in a burst, all requesters together.
    pub target_retrieval_burst: u32,
    /// Most DAKEs in flight at once (server sessions between DAKE-1 and DAKE-3); when full,
    /// a new DAKE evicts the oldest half-open one.
    pub max_concurrent_dakes: usize,
    /// Most DAKEs in flight for one bare JID.
    pub max_dakes_per_jid: usize,
    /// Most DAKEs in flight for one domain (the part of the bare JID after `@`).
    pub max_dakes_per_domain: usize,
    /// DAKE starts (DAKE-1, each costing a signature and a ring signature) per second a
    /// requesting bare JID earns.
    pub dake_start_rate_per_sec: f64,
    /// DAKE starts a requesting bare JID may make in a burst.
    pub dake_start_burst: u32,
    /// Seconds a server DAKE session waits for DAKE-3.
    pub dake_ttl_secs: i64,
    /// Most senders with a partly reassembled fragmented message.
    pub max_reassembly_senders: usize,
    /// Most bytes buffered for fragment reassembly, all senders together; over it the
    /// senders whose reassembly started first are evicted. (One sender may buffer at most
    /// `max_message_bytes`.)
    pub max_reassembly_bytes: usize,
    /// Seconds a partly reassembled message is kept.
    pub fragment_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 256 * 1024,
            max_prekeys_per_device: 1000,
            retrieval_rate_per_sec: 1.0,
            retrieval_burst: 20,
            pair_retrieval_rate_per_sec: 1.0 / 60.0,
            pair_retrieval_burst: 10,
            target_retrieval_rate_per_sec: 0.2,
            target_retrieval_burst: 50,
            max_concurrent_dakes: 1024,
            max_dakes_per_jid: 8,
            max_dakes_per_domain: 64,
            dake_start_rate_per_sec: 0.2,
            dake_start_burst: 30,
            dake_ttl_secs: 300,
            max_reassembly_senders: 1024,
            max_reassembly_bytes: 32 * 1024 * 1024,
            fragment_timeout_secs: 120,
        }
    }
}

/// Which limit was hit (a label of the `limit_hits` counter and of the log line).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// A stdio line longer than the limit (dropped while reading).
    LineTooLong,
    /// A line that is not UTF-8 (stdio).
    LineNotUtf8,
    /// A component stanza over the size limit (dropped while streaming).
    StanzaTooLarge,
    /// A message (or reassembled message) over `max_message_bytes`.
    MessageTooLarge,
    /// A requester over its retrieval rate.
    RetrievalRequester,
    /// A requester over its retrieval rate for one target.
    RetrievalPair,
    /// A target's prekeys retrieved faster than its rate, all requesters together.
    RetrievalTarget,
    /// A DAKE-1 over the requester's DAKE start rate.
    DakeStartRate,
    /// A DAKE-1 over the per-JID quota of DAKEs in flight.
    DakePerJid,
    /// A DAKE-1 over the per-domain quota of DAKEs in flight.
    DakePerDomain,
    /// A half-open DAKE evicted to make room (all slots in use).
    DakeEvicted,
    /// A reassembly evicted: too many senders or too many bytes buffered.
    ReassemblyEvicted,
    /// A rate-limiter table full: a new key was refused.
    TrackerFull,
}

impl LimitKind {
    /// Every kind, in a fixed order.
    pub const ALL: [LimitKind; 13] = [
        LimitKind::LineTooLong,
        LimitKind::LineNotUtf8,
        LimitKind::StanzaTooLarge,
        LimitKind::MessageTooLarge,
        LimitKind::RetrievalRequester,
        LimitKind::RetrievalPair,
        LimitKind::RetrievalTarget,
        LimitKind::DakeStartRate,
        LimitKind::DakePerJid,
        LimitKind::DakePerDomain,
        LimitKind::DakeEvicted,
        LimitKind::ReassemblyEvicted,
        LimitKind::TrackerFull,
    ];

    /// The label used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::LineTooLong => "line_too_long",
            LimitKind::LineNotUtf8 => "line_not_utf8",
            LimitKind::StanzaTooLarge => "stanza_too_large",
            LimitKind::MessageTooLarge => "message_too_large",
            LimitKind::RetrievalRequester => "retrieval_requester",
            LimitKind::RetrievalPair => "retrieval_pair",
            LimitKind::RetrievalTarget => "retrieval_target",
            LimitKind::DakeStartRate => "dake_start_rate",
            LimitKind::DakePerJid => "dake_per_jid",
            LimitKind::DakePerDomain => "dake_per_domain",
            LimitKind::DakeEvicted => "dake_evicted",
            LimitKind::ReassemblyEvicted => "reassembly_evicted",
            LimitKind::TrackerFull => "tracker_full",
        }
    }

    fn index(self) -> usize {
        LimitKind::ALL
            .iter()
            .position(|k| *k == self)
            .unwrap_or_default()
    }
}

/// How often a limit's log line may be written (the hits in between are counted and
/// reported with the next line).
pub const LIMIT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Decides which of many repeated log lines are written: at most one per label per
/// [`LIMIT_LOG_INTERVAL`]; the lines in between are counted and reported with the next.
#[derive(Debug, Default)]
pub struct LogLimiter {
    /// Per label: when it was last logged and the lines suppressed since.
    last: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl LogLimiter {
    /// `Some(suppressed since the last line)` if a line for `label` should be written now.
    pub fn admit(&self, label: &'static str) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.get_mut(label) {
            Some((t, suppressed)) if now.duration_since(*t) < LIMIT_LOG_INTERVAL => {
                *suppressed += 1;
                None
            }
            Some((t, suppressed)) => {
                let n = *suppressed;
                *t = now;
                *suppressed = 0;
                Some(n)
            }
            None => {
                last.insert(label, (now, 0));
                Some(0)
            }
        }
    }
}

/// Counts limit hits by kind and writes at most one `warn` line per kind per
/// [`LIMIT_LOG_INTERVAL`] (no JIDs: a hostile sender cannot flood the log).
#[derive(Debug)]
pub struct LimitHits {
    counts: [AtomicU64; LimitKind::ALL.len()],
    log: LogLimiter,
}

impl Default for LimitHits {
    fn default() -> Self {
        LimitHits {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            log: LogLimiter::default(),
        }
    }
}

impl LimitHits {
    /// Counts a hit of `kind` and logs it unless it was logged recently.
    pub fn hit(&self, kind: LimitKind) {
        if let Some(c) = self.counts.get(kind.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        metrics::counter!(crate::ops::LIMIT_HITS, "limit" => kind.as_str()).increment(1);
        if let Some(suppressed) = self.log.admit(kind.as_str()) {
            tracing::warn!(
                limit = kind.as_str(),
                suppressed_since_last = suppressed,
                "limit hit"
            );
        }
    }

    /// How often `kind` was hit.
    pub fn count(&self, kind: LimitKind) -> u64 {
        self.counts
            .get(kind.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// A token bucket: `burst` tokens, refilled at `rate` per second.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    tokens: f64,
    last: f64,
}

impl TokenBucket {
    /// A full bucket at time `now` (seconds, fractional).
    pub fn full(burst: u32, now: f64) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// Refills for the time since the last call, then takes a token if there is one.
    pub fn try_take(&mut self, rate: f64, burst: u32, now: f64) -> bool {
        let elapsed = (now - self.last).max(0.0);
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full again at `now` (so forgetting it changes nothing).
    fn is_full(&self, rate: f64, burst: u32, now: f64) -> bool {
        self.tokens + (now - self.last).max(0.0) * rate >= f64::from(burst)
    }
}

/// Most keys one [`RateLimiter`] tracks; over it (after forgetting full buckets) a new key
/// is refused, so the table's memory is bounded whatever the number of senders.
pub const MAX_TRACKED: usize = 200_000;

/// Whether a [`RateLimiter`] granted a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Granted; a token was taken.
    Allowed,
    /// The key's bucket is empty.
    Limited,
    /// The key is new and the table is full.
    TableFull,
}

/// Token buckets by key (a requesting bare JID, a target, a pair); full buckets are
/// forgotten so memory stays bounded by the number of recently active keys (and by
/// [`MAX_TRACKED`]).
#[derive(Debug)]
pub struct RateLimiter<K = String> {
    rate: f64,
    burst: u32,
    buckets: HashMap<K, TokenBucket>,
    last_sweep: f64,
}

impl<K: std::hash::Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter granting `burst` requests at once and `rate` per second after that.
    pub fn new(rate: f64, burst: u32) -> RateLimiter<K> {
        RateLimiter {
            rate,
            burst,
            buckets: HashMap::new(),
            last_sweep: 0.0,
        }
    }

    /// Whether `who` may make a request at `now` (seconds); takes a token if so.
    pub fn allow(&mut self, who: &K, now: f64) -> bool {
        self.check(who, now) == Verdict::Allowed
    }

    /// Whether `who` could take a token at `now`, without taking it.
    pub fn would_allow(&self, who: &K, now: f64) -> Verdict {
        let (rate, burst) = (self.rate, self.burst);
        match self.buckets.get(who) {
            Some(b) => {
                let mut b = b.clone();
                if b.try_take(rate, burst, now) {
                    Verdict::Allowed
                } else {
                    Verdict::Limited
                }
            }
            None if self.buckets.len() >= MAX_TRACKED => Verdict::TableFull,
            None if burst >= 1 => Verdict::Allowed,
            None => Verdict::Limited,
        }
    }

    /// Whether `who` may make a request at `now` (seconds); takes a token if so.
    pub fn check(&mut self, who: &K, now: f64) -> Verdict {
        let (rate, burst) = (self.rate, self.burst);
        if now - self.last_sweep > 60.0 || self.buckets.len() >= MAX_TRACKED {
            self.buckets.retain(|_, b| !b.is_full(rate, burst, now));
            self.last_sweep = now;
        }
        if let Some(b) = self.buckets.get_mut(who) {
            return if b.try_take(rate, burst, now) {
                Verdict::Allowed
            } else {
                Verdict::Limited
            };
        }
        if self.buckets.len() >= MAX_TRACKED {
            return Verdict::TableFull;
        }
        let mut b = TokenBucket::full(burst, now);
        let ok = b.try_take(rate, burst, now);
        self.buckets.insert(who.clone(), b);
        if ok {
            Verdict::Allowed
        } else {
            Verdict::Limited
        }
    }

    /// Changes the rate and burst (configuration reload); existing buckets keep their
    /// tokens, capped at the new burst on their next use.
    pub fn set(&mut self, rate: f64, burst: u32) {
        self.rate = rate;
        self.burst = burst;
    }

    /// Number of requesters currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_burst_then_rate() {
        let mut r = RateLimiter::new(2.0, 3);
        let (a, b) = ("a".to_owned(), "b".to_owned());
        assert!(r.allow(&a, 0.0));
        assert!(r.allow(&a, 0.0));
        assert!(r.allow(&a, 0.0));
        assert!(!r.allow(&a, 0.0), "burst exhausted");
        assert!(r.allow(&b, 0.0), "another requester has its own bucket");
        assert!(!r.allow(&a, 0.4), "0.8 tokens is not enough");
        assert!(r.allow(&a, 0.5), "one token after 0.5 s at 2/s");
        assert!(!r.allow(&a, 0.5));
        // Refill is capped at the burst.
        for _ in 0..3 {
            assert!(r.allow(&a, 100.0));
        }
        assert!(!r.allow(&a, 100.0));
    }

    #[test]
    fn clock_going_backwards_grants_nothing() {
        let mut b = TokenBucket::full(1, 10.0);
        assert!(b.try_take(1.0, 1, 10.0));
        assert!(!b.try_take(1.0, 1, 5.0));
        assert!(!b.try_take(1.0, 1, 10.5));
        assert!(b.try_take(1.0, 1, 11.0));
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let mut r = RateLimiter::new(1.0, 2);
        for i in 0..50 {
            assert!(r.allow(&format!("u{i}@x"), 0.0));
        }
        assert_eq!(r.tracked(), 50);
        assert!(r.allow(&"late@x".to_owned(), 1000.0));
        assert_eq!(r.tracked(), 1, "only the newcomer remains");
    }

    #[test]
    fn table_is_bounded() {
        let mut r: RateLimiter<u32> = RateLimiter::new(0.001, 1);
        for i in 0..MAX_TRACKED as u32 {
            assert!(r.allow(&i, 0.0));
        }
        assert_eq!(r.check(&u32::MAX, 1.0), Verdict::TableFull);
        assert_eq!(r.tracked(), MAX_TRACKED);
        assert_eq!(
            r.check(&0, 1.0),
            Verdict::Limited,
            "known keys still limited"
        );
    }

    #[test]
    fn limit_hits_counted_and_log_rate_limited() {
        let h = LimitHits::default();
        for _ in 0..1000 {
            h.hit(LimitKind::RetrievalTarget);
        }
        h.hit(LimitKind::DakeEvicted);
        assert_eq!(h.count(LimitKind::RetrievalTarget), 1000);
        assert_eq!(h.count(LimitKind::DakeEvicted), 1);
        assert_eq!(h.count(LimitKind::LineTooLong), 0);
        let log = h.log.last.lock().unwrap();
        assert_eq!(log["retrieval_target"].1, 999, "one line, 999 suppressed");
    }
}
