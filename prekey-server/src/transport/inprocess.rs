//! The in-process transport: a cloneable [`Server`] handle taking `(from bare JID, text)`
//! and returning the replies, for tests and demos.
//!
//! Calls are synchronous ([`Server::send`]) or offloaded to tokio's blocking pool
//! ([`Server::send_async`]); either way the reply list is complete when returned.

use crate::service::{Handled, Service};
use std::sync::Arc;

/// A handle on a running service.
#[derive(Clone, Debug)]
pub struct Server {
    service: Arc<Service>,
}

impl Server {
    /// Wraps `service`.
    pub fn new(service: Arc<Service>) -> Server {
        Server { service }
    }

    /// The service behind the handle.
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    /// Delivers `text` from `from_bare_jid`; returns the texts sent back to it.
    pub fn send(&self, from_bare_jid: &str, text: &str) -> Vec<String> {
        self.service.handle(from_bare_jid, text).replies
    }

    /// Like [`Server::send`], with what happened.
    pub fn send_detailed(&self, from_bare_jid: &str, text: &str) -> Handled {
        self.service.handle(from_bare_jid, text)
    }

    /// Like [`Server::send`], run on tokio's blocking pool.
    pub async fn send_async(&self, from_bare_jid: &str, text: &str) -> Vec<String> {
        let (s, f, t) = (
            self.service.clone(),
            from_bare_jid.to_owned(),
            text.to_owned(),
        );
        tokio::task::spawn_blocking(move || s.handle(&f, &t).replies)
            .await
            .unwrap_or_default()
    }

    /// An `exchange` closure for [`crate::testkit`] bound to `from_bare_jid`.
    pub fn exchange_for<'a>(
        &'a self,
        from_bare_jid: &'a str,
    ) -> impl FnMut(&str) -> Vec<String> + 'a {
        move |text| self.send(from_bare_jid, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ServiceOptions;
    use crate::storage::memory::MemoryStorage;
    use crate::testkit::{Device, retrieve, retrieved_ids};
    use otr4::hazmat::crypto::ed448::KeyPair;
    use otr4::hazmat::wire::codec::Codec;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn demo_publish_and_retrieve_over_the_handle() {
        let service = Service::new(
            KeyPair::generate(&mut rand::rng()),
            Arc::new(MemoryStorage::new()),
            ServiceOptions::new("prekey.example.org"),
        );
        let server = Server::new(Arc::new(service));
        let now = crate::service::unix_now() as i64;
        let fp = server.service().fingerprint();
        let srv = server.clone();
        let ids = tokio::task::spawn_blocking(move || {
            let mut bob = Device::new("bob@example.org", "prekey.example.org", fp, now).unwrap();
            bob.publish(2, true, now, &mut srv.exchange_for("bob@example.org"))
                .unwrap()
                .0
        })
        .await
        .unwrap();
        // An ensemble query answered through the async path.
        let mut alice = Device::new("alice@example.org", "prekey.example.org", fp, now).unwrap();
        let q = alice.client.ensemble_query(b"bob@example.org", b"4");
        let replies = server
            .send_async(
                "alice@example.org",
                &otr4::hazmat::wire::encoded::encode_prekey(&q.encode()),
            )
            .await;
        assert_eq!(replies.len(), 1);
        let mut again = Some(replies);
        let r = retrieve(
            &mut alice.client,
            "bob@example.org",
            now,
            &mut |_t: &str| again.take().unwrap_or_default(),
        )
        .unwrap();
        assert!(ids.contains(&retrieved_ids(&r)[0]));
    }
}
