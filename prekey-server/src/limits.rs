//! Resource limits of the server and the per-requester token bucket that rate-limits
//! ensemble retrievals (otrv4-prekey-server.md §"Prekey Server Requirements": "partially
//! mitigated using fetch rate limiting").

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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
    /// Most DAKEs in flight at once (server sessions between DAKE-1 and DAKE-3).
    pub max_concurrent_dakes: usize,
    /// Most DAKEs in flight for one bare JID.
    pub max_dakes_per_jid: usize,
    /// Seconds a server DAKE session waits for DAKE-3.
    pub dake_ttl_secs: i64,
    /// Most senders with a partly reassembled fragmented message.
    pub max_reassembly_senders: usize,
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
            max_concurrent_dakes: 1024,
            max_dakes_per_jid: 8,
            dake_ttl_secs: 300,
            max_reassembly_senders: 1024,
            fragment_timeout_secs: 120,
        }
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

/// Token buckets by requesting bare JID; full buckets are forgotten so memory stays bounded
/// by the number of recently active requesters.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: u32,
    buckets: HashMap<String, TokenBucket>,
    last_sweep: f64,
}

impl RateLimiter {
    /// A limiter granting `burst` requests at once and `rate` per second after that.
    pub fn new(rate: f64, burst: u32) -> RateLimiter {
        RateLimiter {
            rate,
            burst,
            buckets: HashMap::new(),
            last_sweep: 0.0,
        }
    }

    /// Whether `who` may make a request at `now` (seconds); takes a token if so.
    pub fn allow(&mut self, who: &str, now: f64) -> bool {
        if now - self.last_sweep > 60.0 || self.buckets.len() > 100_000 {
            let (rate, burst) = (self.rate, self.burst);
            self.buckets.retain(|_, b| !b.is_full(rate, burst, now));
            self.last_sweep = now;
        }
        let (rate, burst) = (self.rate, self.burst);
        self.buckets
            .entry(who.to_owned())
            .or_insert_with(|| TokenBucket::full(burst, now))
            .try_take(rate, burst, now)
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
        assert!(r.allow("a", 0.0));
        assert!(r.allow("a", 0.0));
        assert!(r.allow("a", 0.0));
        assert!(!r.allow("a", 0.0), "burst exhausted");
        assert!(r.allow("b", 0.0), "another requester has its own bucket");
        assert!(!r.allow("a", 0.4), "0.8 tokens is not enough");
        assert!(r.allow("a", 0.5), "one token after 0.5 s at 2/s");
        assert!(!r.allow("a", 0.5));
        // Refill is capped at the burst.
        for _ in 0..3 {
            assert!(r.allow("a", 100.0));
        }
        assert!(!r.allow("a", 100.0));
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
        assert!(r.allow("late@x", 1000.0));
        assert_eq!(r.tracked(), 1, "only the newcomer remains");
    }
}
