//! Our IQ requests in flight and who may answer each (docs/xmpp-glue.md §8): an answer
//! from anyone but the entity asked is ignored and counted, whatever its id. A request
//! unanswered for [`TIMEOUT`] seconds is sent again (a new id), [`TRIES`] times in all; then it
//! fails as if answered `remote-server-timeout` (RFC 6120 §8.3.3.18).

use std::collections::BTreeMap;

use minidom::Element;

use crate::carriage::Carriage;
use crate::devices::DeviceList;

/// Who may answer a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Responder {
    /// Our own account: `from` absent, our bare JID or our full JID.
    Own,
    /// This exact JID (a contact's bare JID, a domain, a component).
    Jid(String),
}

/// What a request was for.
#[derive(Debug)]
pub(crate) enum Pending {
    /// Discovery of a domain's prekey server: its items.
    DiscoItems { domain: String },
    /// Discovery: whether `jid` is a prekey server.
    DiscoInfo { domain: String, jid: String },
    /// Discovery: the prekey server's fingerprint item.
    ServerItems { domain: String, jid: String },
    /// Our account's device list.
    OwnDevices,
    /// A contact's device list.
    ContactDevices(String),
    /// Publishing our device list.
    Publish { list: DeviceList, retried: bool },
    /// Reconfiguring our device-list node before publishing again.
    Configure { list: DeviceList },
    /// A MAM page.
    Mam,
    /// Discovery of our domain's HTTP upload service: its items.
    UploadItems,
    /// Discovery: whether `jid` is an HTTP upload service.
    UploadInfo { jid: String },
    /// An upload slot for a file transfer.
    UploadSlot { transfer: u64 },
}

impl Pending {
    /// Whether this is a discovery request about `dom`.
    pub fn discovers(&self, dom: &str) -> bool {
        matches!(self, Pending::DiscoInfo { domain, .. } | Pending::ServerItems { domain, .. } | Pending::DiscoItems { domain } if domain == dom)
    }
}

/// Whether `from` (a stanza's `from`, absent for our server on our behalf) is our own
/// account: our bare JID `jid` or our bound full JID.
pub(crate) fn is_own_account(jid: &str, full_jid: Option<&str>, from: Option<&str>) -> bool {
    match from {
        None => true,
        Some(f) => {
            f.eq_ignore_ascii_case(jid) || full_jid.is_some_and(|full| full.eq_ignore_ascii_case(f))
        }
    }
}

/// What became of an answer.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Not an answer to a request of ours (unknown id): ignored.
    Unknown,
    /// Someone else than the entity asked: ignored, the request stays open.
    Spoofed,
    /// The answer to this request.
    To(Pending),
}

/// Seconds without an answer before a request is sent again.
pub(crate) const TIMEOUT: i64 = 20;
/// How many times a request is sent before it fails.
pub(crate) const TRIES: u8 = 3;

/// One request in flight.
#[derive(Debug)]
struct InFlight {
    from: Responder,
    purpose: Pending,
    /// The request as sent (sent again under a new id when unanswered).
    stanza: Element,
    /// When it was last sent (Unix seconds).
    sent: i64,
    /// How many times it was sent.
    tries: u8,
}

/// The requests in flight, by id.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    iqs: BTreeMap<String, InFlight>,
    /// The time of the engine call in progress (Unix seconds).
    now: i64,
}

impl Requests {
    /// Sends the request `make` builds (given a fresh id); its answer is accepted only
    /// from `from`.
    pub fn send(
        &mut self,
        car: &mut Carriage,
        from: Responder,
        purpose: Pending,
        make: impl FnOnce(&str) -> Element,
    ) {
        let id = car.id();
        let s = make(&id);
        self.iqs.insert(
            id,
            InFlight {
                from,
                purpose,
                stanza: s.clone(),
                sent: self.now,
                tries: 1,
            },
        );
        car.stanza(s);
    }

    /// Sets the time of the engine call in progress.
    pub fn set_now(&mut self, now: i64) {
        self.now = now;
    }

    /// Sends again (under a new id) every request unanswered for [`TIMEOUT`] seconds, and
    /// returns the ones sent [`TRIES`] times already: they have failed.
    pub fn expire(&mut self, car: &mut Carriage, now: i64) -> Vec<Pending> {
        let late: Vec<String> = self
            .iqs
            .iter()
            .filter(|(_, r)| now.saturating_sub(r.sent) >= TIMEOUT)
            .map(|(id, _)| id.clone())
            .collect();
        let mut failed = Vec::new();
        for id in late {
            let Some(mut r) = self.iqs.remove(&id) else {
                continue;
            };
            if r.tries >= TRIES {
                tracing::warn!(tries = r.tries, "an IQ request went unanswered; given up");
                failed.push(r.purpose);
                continue;
            }
            let new_id = car.id();
            crate::stanza::set_attr(&mut r.stanza, "id", &new_id);
            r.sent = now;
            r.tries += 1;
            car.stanza(r.stanza.clone());
            self.iqs.insert(new_id, r);
        }
        failed
    }

    /// Matches an answer with id `id` from `from`; `own`: whether `from` is our account.
    pub fn answer(&mut self, id: &str, from: Option<&str>, own: bool) -> Answer {
        let Some(InFlight { from: who, .. }) = self.iqs.get(id) else {
            return Answer::Unknown;
        };
        let answers = match who {
            Responder::Own => own,
            Responder::Jid(j) => from.is_some_and(|f| f.eq_ignore_ascii_case(j)),
        };
        if !answers {
            return Answer::Spoofed;
        }
        match self.iqs.remove(id) {
            Some(r) => Answer::To(r.purpose),
            None => Answer::Unknown,
        }
    }

    /// Whether a request in flight matches `f`.
    pub fn any(&self, f: impl Fn(&Pending) -> bool) -> bool {
        self.iqs.values().any(|r| f(&r.purpose))
    }

    /// Forgets every request (the stream went down or came up again).
    pub fn clear(&mut self) {
        self.iqs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stanza;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn own_account_is_absent_bare_or_bound_full_jid() {
        let own = |from| is_own_account("alice@x", Some("alice@x/laptop"), from);
        assert!(own(None));
        assert!(own(Some("ALICE@x")));
        assert!(own(Some("alice@x/laptop")));
        assert!(!own(Some("alice@x/other")));
        assert!(!own(Some("mallory@x")));
        assert!(!is_own_account("alice@x", None, Some("alice@x/laptop")));
    }

    #[test]
    fn only_the_entity_asked_answers() {
        let mut car = Carriage::new(&mut StdRng::seed_from_u64(1));
        let mut r = Requests::default();
        r.send(
            &mut car,
            Responder::Jid("bob@x".into()),
            Pending::ContactDevices("bob@x".into()),
            |id| stanza::get_devices(id, "bob@x"),
        );
        let out = car.finish(otr4::InstanceTag(0x100));
        let Some(crate::Output::Stanza(s)) = out.first() else {
            panic!("no request sent")
        };
        let id = s.attr("id").unwrap().to_owned();
        assert!(matches!(
            r.answer("nope", Some("bob@x"), false),
            Answer::Unknown
        ));
        assert!(matches!(
            r.answer(&id, Some("mallory@x"), false),
            Answer::Spoofed
        ));
        assert!(matches!(r.answer(&id, None, true), Answer::Spoofed));
        assert!(r.any(|p| matches!(p, Pending::ContactDevices(_))));
        assert!(matches!(
            r.answer(&id, Some("BOB@x"), false),
            Answer::To(Pending::ContactDevices(_))
        ));
        assert!(matches!(
            r.answer(&id, Some("bob@x"), false),
            Answer::Unknown
        ));
    }

    #[test]
    fn unanswered_requests_are_sent_again_then_fail() {
        let mut car = Carriage::new(&mut StdRng::seed_from_u64(3));
        let mut r = Requests::default();
        r.set_now(1000);
        r.send(
            &mut car,
            Responder::Jid("x".into()),
            Pending::DiscoItems { domain: "x".into() },
            |id| stanza::disco_items(id, "x"),
        );
        let id_of = |car: &mut Carriage| {
            let out = car.finish(otr4::InstanceTag(0x100));
            let ids: Vec<String> = out
                .iter()
                .filter_map(|o| match o {
                    crate::Output::Stanza(s) => s.attr("id").map(str::to_owned),
                    _ => None,
                })
                .collect();
            ids
        };
        let first = id_of(&mut car);
        assert_eq!(first.len(), 1);
        // Not yet late: nothing is sent.
        assert!(r.expire(&mut car, 1000 + TIMEOUT - 1).is_empty());
        assert!(id_of(&mut car).is_empty());
        // Late: sent again under a new id; the old id no longer answers.
        assert!(r.expire(&mut car, 1000 + TIMEOUT).is_empty());
        let second = id_of(&mut car);
        assert_eq!(second.len(), 1);
        assert_ne!(second, first);
        assert!(matches!(
            r.answer(&first[0], Some("x"), false),
            Answer::Unknown
        ));
        // The third try goes out, then the request fails.
        assert!(r.expire(&mut car, 1000 + 2 * TIMEOUT).is_empty());
        assert_eq!(id_of(&mut car).len(), 1);
        let failed = r.expire(&mut car, 1000 + 3 * TIMEOUT);
        assert!(matches!(failed.as_slice(), [Pending::DiscoItems { .. }]));
        assert!(id_of(&mut car).is_empty());
        assert!(!r.any(|_| true));
    }

    #[test]
    fn own_requests_take_own_answers_only() {
        let mut car = Carriage::new(&mut StdRng::seed_from_u64(2));
        let mut r = Requests::default();
        r.send(&mut car, Responder::Own, Pending::Mam, |id| {
            stanza::mam_query(id, "q", stanza::MamFrom::Start, 50)
        });
        let out = car.finish(otr4::InstanceTag(0x100));
        let Some(crate::Output::Stanza(s)) = out.first() else {
            panic!("no request sent")
        };
        let id = s.attr("id").unwrap().to_owned();
        assert!(matches!(
            r.answer(&id, Some("bob@x"), false),
            Answer::Spoofed
        ));
        assert!(matches!(
            r.answer(&id, None, true),
            Answer::To(Pending::Mam)
        ));
        assert!(!r.any(|_| true));
        r.clear();
    }
}
