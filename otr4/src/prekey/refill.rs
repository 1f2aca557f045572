//! When to publish Prekey messages and renew profiles (otrv4.md §"Publishing Prekey
//! Messages": "Implementers are expected to create their own policy"), as a small helper.
//!
//! The cycle: publish a batch, ask the server for its stored count now and then
//! ([`RefillPolicy::should_query_status`]), and when the count drops below the watermark
//! publish enough new ones to get back to a full batch ([`RefillPolicy::refill`]).

use crate::prekey::messages::MAX_PUBLISHED_PREKEY_MESSAGES;
// `refill` is for the tests and benches (`hazmat`); the client's link refills itself.
#[cfg(feature = "hazmat")]
use crate::prekey::{PrekeyError, client::PublishItems, ensemble::PrekeyStore};

/// Default stock of Prekey messages on the server, also the size of a first publication.
///
/// 100 messages make a Prekey Publication of about 46 KB (each Prekey message is ~460
/// bytes, mostly its 384-byte DH value), ~62 KB base64: below common XMPP stanza limits once
/// fragmented, below the 255 per message the format allows, and enough for 100 offline
/// conversation starts between two refills. The server verifies one DH proof over all of
/// them (100 short exponentiations), so a batch costs it milliseconds.
pub const DEFAULT_BATCH: usize = 100;

/// Default watermark: below 20 stored messages, top up. Twenty absorbs a burst of offline
/// contacts (or a moderate draining attack, see §"Prekey Server Requirements") between two
/// status checks without running dry, while keeping refills rare (one per ~80 uses).
pub const DEFAULT_LOW_WATERMARK: u32 = 20;

/// Default interval between storage status queries: one hour. A query is one DAKE (three
/// small messages); hourly bounds how long a drained stock goes unnoticed while online.
pub const DEFAULT_STATUS_INTERVAL: i64 = 3600;

/// Default renewal margin: renew a profile one day before it expires. This equals the
/// spec's recommended extra validity period (1 day) and leaves a day of retries on a
/// one-week profile (the recommended lifetime), so a published profile never lapses.
pub const DEFAULT_RENEW_BEFORE: i64 = 86_400;

/// The refill policy. All times in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefillPolicy {
    /// Target stock on the server and size of a full batch (1 to 255).
    pub batch: usize,
    /// Top up when the server holds fewer than this many Prekey messages.
    pub low_watermark: u32,
    /// Seconds between storage status queries.
    pub status_interval: i64,
    /// Renew a Client or Prekey Profile this many seconds before it expires.
    pub renew_before: i64,
}

impl Default for RefillPolicy {
    fn default() -> Self {
        RefillPolicy {
            batch: DEFAULT_BATCH,
            low_watermark: DEFAULT_LOW_WATERMARK,
            status_interval: DEFAULT_STATUS_INTERVAL,
            renew_before: DEFAULT_RENEW_BEFORE,
        }
    }
}

impl RefillPolicy {
    /// How many Prekey messages to publish when the server reports `stored`: 0 at or above
    /// the watermark, else enough to reach `batch` (capped at 255, one publication).
    pub(crate) fn prekeys_to_publish(&self, stored: u32) -> usize {
        if stored >= self.low_watermark {
            return 0;
        }
        let stored = usize::try_from(stored).unwrap_or(usize::MAX);
        self.batch
            .min(MAX_PUBLISHED_PREKEY_MESSAGES)
            .saturating_sub(stored)
    }

    /// Whether to ask the server for its storage status now, given when we last asked.
    pub(crate) fn should_query_status(&self, last_query: Option<i64>, now: i64) -> bool {
        last_query.is_none_or(|t| now.saturating_sub(t) >= self.status_interval)
    }

    /// Whether a profile expiring at `expiration` should be renewed (and republished) now.
    pub(crate) fn needs_renewal(&self, expiration: i64, now: i64) -> bool {
        expiration.saturating_sub(now) <= self.renew_before
    }

    /// The publication to top up a server that reported `stored` messages: generates
    /// [`RefillPolicy::prekeys_to_publish`] new Prekey messages in `store` and returns them
    /// as [`PublishItems`] (add profiles with the `with_*` methods if they need renewal), or
    /// `None` if nothing is needed.
    #[cfg(feature = "hazmat")]
    pub fn refill<R: rand_core::CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        store: &mut PrekeyStore,
        stored: u32,
        now: i64,
    ) -> Result<Option<PublishItems>, PrekeyError> {
        let n = self.prekeys_to_publish(stored);
        if n == 0 {
            return Ok(None);
        }
        let ids: alloc::vec::Vec<u32> = store
            .generate_prekey_messages(rng, n, now)?
            .iter()
            .map(|m| m.id)
            .collect();
        store.publish_items(&ids, false).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance_tag::InstanceTag;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn defaults_and_watermark() {
        let p = RefillPolicy::default();
        assert_eq!((p.batch, p.low_watermark), (100, 20));
        assert_eq!(p.prekeys_to_publish(0), 100);
        assert_eq!(p.prekeys_to_publish(19), 81);
        assert_eq!(p.prekeys_to_publish(20), 0);
        assert_eq!(p.prekeys_to_publish(500), 0);
        let big = RefillPolicy { batch: 1000, ..p };
        assert_eq!(big.prekeys_to_publish(0), 255);
    }

    #[test]
    fn status_and_renewal_timing() {
        let p = RefillPolicy::default();
        assert!(p.should_query_status(None, 0));
        assert!(!p.should_query_status(Some(1000), 1000 + 3599));
        assert!(p.should_query_status(Some(1000), 1000 + 3600));
        assert!(!p.needs_renewal(10 * 86_400, 0));
        assert!(p.needs_renewal(86_400, 0));
        assert!(p.needs_renewal(5, 10));
    }

    #[test]
    fn refill_generates_and_collects() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut store = PrekeyStore::new(InstanceTag(0x4242));
        let p = RefillPolicy {
            batch: 5,
            low_watermark: 2,
            ..RefillPolicy::default()
        };
        assert!(p.refill(&mut rng, &mut store, 2, 0).unwrap().is_none());
        let items = p.refill(&mut rng, &mut store, 1, 0).unwrap().unwrap();
        assert_eq!(items.prekey_ids().len(), 4);
        assert_eq!(store.len(), 4);
        assert!(!items.has_prekey_profile() && !items.has_client_profile());
    }
}
