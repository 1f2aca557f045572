//! Self-healing sessions (docs/spec-notes.md §"Self-healing sessions"): a device's OTR
//! error about our message starts a new DAKE with it, rate-limited, texts wait for it.
//!
//! An OTR error message is not authenticated (otrv4.md §"OTR Error Messages"), so anyone
//! who can send to us can fake one: a repair never drops the live session (it is replaced
//! only when the new DAKE completes), runs at most once per device per
//! [`REPAIR_INTERVAL_SECS`], and never while one is in flight.

use std::collections::BTreeMap;

use otr4::InstanceTag;

use crate::carriage::{ExtraTlvs, MAX_WAITING};

/// At most one repair (new DAKE) per peer device in this many seconds.
pub const REPAIR_INTERVAL_SECS: i64 = 600;

/// How long the texts of a repair wait for its new session before they go the usual way
/// (an interactive repair that got no answer in this time goes through the prekey server).
pub const REPAIR_WAIT_SECS: i64 = 120;

/// At most one re-announcement of our device-list entry (after a message that was not
/// encrypted for this device) in this many seconds.
pub const REANNOUNCE_INTERVAL_SECS: i64 = 600;

/// What the engine did about a device's report that it could not read our message
/// ([`crate::GlueEvent::SessionRepair`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RepairAction {
    /// The device is online: a new interactive DAKE with it started; the old session is
    /// used for nothing new and replaced when the DAKE completes.
    Interactive,
    /// The device is offline: a new session through its prekey ensembles (non-interactive
    /// DAKE) is under way.
    ThroughPrekeyServer,
    /// A repair of this device is already under way: nothing more was started.
    AlreadyRepairing,
    /// This device was repaired less than [`REPAIR_INTERVAL_SECS`] ago (an error message
    /// is unauthenticated; repeated ones could be an attacker's): nothing was started.
    RateLimited,
}

/// A text held for a device under repair.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    /// The text.
    pub text: String,
    /// TLVs besides the own-copy TLV (a file offer).
    pub extra: ExtraTlvs,
    /// For a copy to our own device: the contact it was sent to.
    pub sent_to: Option<String>,
}

#[derive(Debug)]
struct Repair {
    /// When it started, or switched to the prekey server.
    started: i64,
    /// Whether it goes through the prekey server.
    offline: bool,
    /// Texts waiting for the new session.
    held: Vec<Held>,
}

/// What a repair that waited too long becomes ([`Healing::expire`]).
#[derive(Debug)]
pub(crate) enum Expired {
    /// The interactive DAKE got no answer: try the prekey server (the repair goes on).
    TryOffline(String, InstanceTag),
    /// The repair through the prekey server got nowhere either: it ends, its texts go the
    /// usual way.
    GiveUp(String, InstanceTag, Vec<Held>),
}

/// Repairs under way and the last one of each device (in memory: a restart forgets them).
#[derive(Debug, Default)]
pub(crate) struct Healing {
    repairs: BTreeMap<(String, u32), Repair>,
    last: BTreeMap<(String, u32), i64>,
    reannounced: Option<i64>,
}

impl Healing {
    /// Starts a repair of device `tag` of `jid` if none is in flight and none started in
    /// the last [`REPAIR_INTERVAL_SECS`]; otherwise says why not.
    pub fn begin(
        &mut self,
        jid: &str,
        tag: InstanceTag,
        offline: bool,
        now: i64,
    ) -> Result<(), RepairAction> {
        let key = (jid.to_owned(), tag.0);
        if self.repairs.contains_key(&key) {
            return Err(RepairAction::AlreadyRepairing);
        }
        if self
            .last
            .get(&key)
            .is_some_and(|t| now.saturating_sub(*t) < REPAIR_INTERVAL_SECS)
        {
            return Err(RepairAction::RateLimited);
        }
        self.last.insert(key.clone(), now);
        self.repairs.insert(
            key,
            Repair {
                started: now,
                offline,
                held: Vec::new(),
            },
        );
        Ok(())
    }

    /// Whether a repair of the device is under way.
    pub fn in_flight(&self, jid: &str, tag: InstanceTag) -> bool {
        self.repairs.contains_key(&(jid.to_owned(), tag.0))
    }

    /// Holds a text for a device under repair; `false` if too many wait already.
    pub fn hold(&mut self, jid: &str, tag: InstanceTag, h: Held) -> bool {
        match self.repairs.get_mut(&(jid.to_owned(), tag.0)) {
            Some(r) if r.held.len() < MAX_WAITING => {
                r.held.push(h);
                true
            }
            _ => false,
        }
    }

    /// A new session with the device is up: its repair (if any) is done; the texts held
    /// for it.
    pub fn established(&mut self, jid: &str, tag: InstanceTag) -> Option<Vec<Held>> {
        self.repairs
            .remove(&(jid.to_owned(), tag.0))
            .map(|r| r.held)
    }

    /// The device left its list: nothing waits for it.
    pub fn forget(&mut self, jid: &str, tag: InstanceTag) {
        self.repairs.remove(&(jid.to_owned(), tag.0));
    }

    /// Repairs that waited [`REPAIR_WAIT_SECS`] without a new session.
    pub fn expire(&mut self, now: i64) -> Vec<Expired> {
        let late: Vec<(String, u32)> = self
            .repairs
            .iter()
            .filter(|(_, r)| now.saturating_sub(r.started) >= REPAIR_WAIT_SECS)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for key in late {
            let Some(r) = self.repairs.get_mut(&key) else {
                continue;
            };
            let (jid, tag) = (key.0.clone(), InstanceTag(key.1));
            if r.offline {
                let held = self
                    .repairs
                    .remove(&key)
                    .map(|r| r.held)
                    .unwrap_or_default();
                out.push(Expired::GiveUp(jid, tag, held));
            } else {
                r.offline = true;
                r.started = now;
                out.push(Expired::TryOffline(jid, tag));
            }
        }
        out
    }

    /// Whether our device-list entry may be announced again now (a message was not
    /// encrypted for this device); records it.
    pub fn may_reannounce(&mut self, now: i64) -> bool {
        if self
            .reannounced
            .is_some_and(|t| now.saturating_sub(t) < REANNOUNCE_INTERVAL_SECS)
        {
            return false;
        }
        self.reannounced = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(t: &str) -> Held {
        Held {
            text: t.to_owned(),
            extra: ExtraTlvs::default(),
            sent_to: None,
        }
    }

    #[test]
    fn one_repair_per_device_per_interval_and_never_two_at_once() {
        let mut h = Healing::default();
        let t = InstanceTag(0x101);
        assert_eq!(h.begin("b@x", t, false, 1000), Ok(()));
        assert_eq!(
            h.begin("b@x", t, false, 1001),
            Err(RepairAction::AlreadyRepairing)
        );
        // Another device of the same contact is repaired independently.
        assert_eq!(h.begin("b@x", InstanceTag(0x102), false, 1001), Ok(()));
        assert!(h.hold("b@x", t, held("one")));
        let texts: Vec<String> = h
            .established("b@x", t)
            .unwrap()
            .into_iter()
            .map(|x| x.text)
            .collect();
        assert_eq!(texts, ["one"]);
        assert!(!h.in_flight("b@x", t));
        assert!(!h.hold("b@x", t, held("two")), "nothing is held after it");
        assert_eq!(
            h.begin("b@x", t, false, 1000 + REPAIR_INTERVAL_SECS - 1),
            Err(RepairAction::RateLimited)
        );
        assert_eq!(
            h.begin("b@x", t, false, 1000 + REPAIR_INTERVAL_SECS),
            Ok(())
        );
    }

    #[test]
    fn an_unanswered_repair_tries_the_prekey_server_then_gives_up() {
        let mut h = Healing::default();
        let t = InstanceTag(0x101);
        h.begin("b@x", t, false, 0).unwrap();
        assert!(h.hold("b@x", t, held("x")));
        assert!(h.expire(REPAIR_WAIT_SECS - 1).is_empty());
        assert!(matches!(
            h.expire(REPAIR_WAIT_SECS).as_slice(),
            [Expired::TryOffline(j, d)] if j == "b@x" && *d == t
        ));
        assert!(h.in_flight("b@x", t));
        let out = h.expire(2 * REPAIR_WAIT_SECS);
        let [Expired::GiveUp(_, _, texts)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(texts.len(), 1);
        assert!(!h.in_flight("b@x", t));
    }

    #[test]
    fn reannouncements_are_rate_limited() {
        let mut h = Healing::default();
        assert!(h.may_reannounce(0));
        assert!(!h.may_reannounce(REANNOUNCE_INTERVAL_SECS - 1));
        assert!(h.may_reannounce(REANNOUNCE_INTERVAL_SECS));
    }
}
