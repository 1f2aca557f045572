//! The device directory (docs/xmpp-glue.md §1, §2, §6): our account's and our contacts'
//! device lists (PEP), which devices are available (presence), and TOFU trust in each.

use std::collections::BTreeMap;

use otr4::InstanceTag;

use crate::carriage::Carriage;
use crate::devices::{DeviceChange, DeviceEntry, DeviceList, TooManyDevices};
use crate::error::GlueError;
use crate::events::GlueEvent;
use crate::incoming::IqResponse;
use crate::requests::{Pending, Requests, Responder};
use crate::stanza::{self, PresenceInfo};
use crate::trust::{Pin, Trust, TrustStore};

/// What seeing a device's fingerprint did to its trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pinned {
    /// The device's trust now.
    pub trust: Trust,
    /// A warning for the user.
    pub note: String,
    /// Whether the key was pinned just now (otr4 must be told the accepted key).
    pub new: bool,
}

/// What listing ourselves needs.
#[derive(Debug, PartialEq, Eq)]
enum ListSelf {
    /// Nothing (not yet possible, or listed and fresh).
    Nothing,
    /// Publish this list (with our refreshed entry, stale entries pruned).
    Publish(DeviceList),
    /// We are on the list now.
    Listed,
    /// 8 other devices are listed.
    Full(TooManyDevices),
}

/// Device lists, presence and trust.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    /// Our account's device list as last read.
    own_list: DeviceList,
    listed: bool,
    removed: bool,
    /// The last non-empty device list of each contact.
    contacts: BTreeMap<String, DeviceList>,
    trust: TrustStore,
    /// Our list was read on this connection.
    own_list_fetched: bool,
    /// Available OTRv4 devices by bare JID, then full JID.
    presence: BTreeMap<String, BTreeMap<String, InstanceTag>>,
    /// Texts waiting for a contact's device list.
    waiting_list: BTreeMap<String, Vec<String>>,
    /// Texts waiting for an OTRv3 session with a contact without an OTRv4 device list.
    waiting_v3: BTreeMap<String, Vec<String>>,
    /// Publish our entry again at the next listing even if it is fresh (a contact wrote
    /// to our other devices only: its list is stale, a notification updates it).
    reannounce: bool,
}

impl Directory {
    /// From the persisted lists and pins.
    pub fn new(
        own_list: DeviceList,
        listed: bool,
        removed: bool,
        contacts: BTreeMap<String, DeviceList>,
        trust: TrustStore,
    ) -> Directory {
        Directory {
            own_list,
            listed,
            removed,
            contacts,
            trust,
            ..Directory::default()
        }
    }

    /// Our account's list as last read.
    pub fn own_list(&self) -> &DeviceList {
        &self.own_list
    }

    /// Whether we have been on our own list.
    pub fn listed(&self) -> bool {
        self.listed
    }

    /// Whether another device removed us.
    pub fn removed(&self) -> bool {
        self.removed
    }

    /// The contacts' lists.
    pub fn contacts(&self) -> &BTreeMap<String, DeviceList> {
        &self.contacts
    }

    /// The pins.
    pub fn trust_store(&self) -> &TrustStore {
        &self.trust
    }

    /// The stream went down or came up: presence and our list must be read again.
    pub fn reconnected(&mut self) {
        self.presence.clear();
        self.own_list_fetched = false;
    }

    /// Our list is asked for again (catch-up is done).
    pub fn reconnected_list(&mut self) {
        self.own_list_fetched = false;
    }

    /// The stream went down.
    pub fn disconnected(&mut self) {
        self.presence.clear();
    }

    /// The devices of `jid` we know (for our own JID `me_jid`: without our device `me`).
    pub fn devices_of(&self, jid: &str, me_jid: &str, me: InstanceTag) -> Vec<InstanceTag> {
        if jid == me_jid {
            return self
                .own_list
                .tags()
                .into_iter()
                .filter(|t| *t != me)
                .collect();
        }
        self.contacts
            .get(jid)
            .map(DeviceList::tags)
            .unwrap_or_default()
    }

    /// Whether we have read a device list of contact `jid` (possibly empty).
    pub fn knows(&self, jid: &str) -> bool {
        self.contacts.contains_key(jid)
    }

    /// Whether device `tag` of `jid` is on `jid`'s current list (our own device never is).
    pub fn is_listed(&self, jid: &str, tag: InstanceTag, me_jid: &str, me: InstanceTag) -> bool {
        if jid == me_jid {
            tag != me && self.own_list.get(tag).is_some()
        } else {
            self.contacts.get(jid).is_some_and(|l| l.get(tag).is_some())
        }
    }

    // -------------------------------------------------------------------------------
    // Presence.

    /// A presence from `from` (a full JID).
    pub fn presence(&mut self, from: &str, info: PresenceInfo) {
        let b = stanza::bare(from).to_owned();
        match info {
            PresenceInfo::Available(tag) => {
                self.presence
                    .entry(b)
                    .or_default()
                    .insert(from.to_owned(), tag);
            }
            PresenceInfo::Unavailable => {
                if let Some(m) = self.presence.get_mut(&b) {
                    m.remove(from);
                }
            }
            PresenceInfo::Other => {}
        }
    }

    /// Whether device `tag` of `jid` is available now.
    pub fn is_online(&self, jid: &str, tag: InstanceTag) -> bool {
        self.presence
            .get(jid)
            .is_some_and(|m| m.values().any(|t| *t == tag))
    }

    // -------------------------------------------------------------------------------
    // Trust.

    /// Sees `fp` for a device: pins it on first use, or marks the device changed (the
    /// pinned key stays the accepted one). `None`: the pinned key, nothing to say.
    pub fn pin(&mut self, jid: &str, tag: InstanceTag, fp: &str) -> Option<Pinned> {
        match self.trust.pin(jid, tag.0, fp) {
            Pin::New => Some(Pinned {
                trust: Trust::Tofu,
                note: "new device, trusted on first use".to_owned(),
                new: true,
            }),
            Pin::Same(_) => None,
            Pin::Changed { pinned } => Some(Pinned {
                trust: Trust::Changed,
                note: format!(
                    "the device's key changed (was {pinned}); not used until you accept it"
                ),
                new: false,
            }),
        }
    }

    /// Sees the OTRv3 key `fp` (libotr's format) of a contact whose client speaks OTRv3
    /// only: pinned on first use, or marked changed. `None`: the pinned key.
    pub fn pin_v3(&mut self, jid: &str, fp: &str) -> Option<Pinned> {
        match self.trust.pin_v3(jid, fp) {
            Pin::New => Some(Pinned {
                trust: Trust::Tofu,
                note: "new OTRv3 key, trusted on first use".to_owned(),
                new: true,
            }),
            Pin::Same(_) => None,
            Pin::Changed { pinned } => Some(Pinned {
                trust: Trust::Changed,
                note: format!(
                    "the contact's OTRv3 key changed (was {pinned}); nothing is sent until you accept it"
                ),
                new: false,
            }),
        }
    }

    /// The trust of the OTRv3 key `fp` of `jid` ([`Trust::Changed`] unless pinned).
    pub fn v3_trust(&self, jid: &str, fp: &str) -> Trust {
        self.trust.v3_trust(jid, fp)
    }

    /// SMP succeeded in the OTRv3 session with key `fp`: verified if it is the pinned key.
    pub fn verify_v3(&mut self, jid: &str, fp: &str) -> bool {
        self.trust.verify_v3(jid, fp)
    }

    /// The user accepts the changed OTRv3 key of `jid`; whether it was changed.
    pub fn accept_v3(&mut self, jid: &str) -> bool {
        self.trust.accept_v3(jid)
    }

    /// Device `tag` of `jid` replaces the device whose pinned key was `old_fp` (a
    /// reinstall: [`crate::DeviceChange::Replaced`]): its key `fp` is offered as a changed
    /// key of that device, not used until the user accepts it.
    pub fn pin_replacement(
        &mut self,
        jid: &str,
        tag: InstanceTag,
        fp: &str,
        old_fp: Option<&str>,
    ) -> Option<Pinned> {
        match old_fp {
            Some(old) if old != fp && self.trust.fingerprint(jid, tag.0).is_none() => {
                self.trust.pin_replacement(jid, tag.0, old, fp);
                Some(Pinned {
                    trust: Trust::Changed,
                    note: format!(
                        "the device was reinstalled: new instance, new key (was {old}); not used until you accept it"
                    ),
                    new: true,
                })
            }
            _ => self.pin(jid, tag, fp),
        }
    }

    /// Our entry is published again at the next listing (at most once per
    /// [`crate::REANNOUNCE_INTERVAL_SECS`], the caller checks); `false` if this device was
    /// removed from the list by another device of ours (it stays off it).
    pub fn reannounce(&mut self) -> bool {
        if self.removed {
            return false;
        }
        self.reannounce = true;
        true
    }

    /// The user accepts the changed key of a device; whether it was changed.
    pub fn accept(&mut self, jid: &str, tag: InstanceTag) -> bool {
        self.trust.accept(jid, tag.0)
    }

    /// SMP succeeded with a device whose session key is `fp`: verified if that is the
    /// pinned key.
    pub fn verify(&mut self, jid: &str, tag: InstanceTag, fp: &str) -> bool {
        self.trust.verify(jid, tag.0, fp)
    }

    /// The pinned (accepted) fingerprint of a device.
    pub fn pinned(&self, jid: &str, tag: InstanceTag) -> Option<&str> {
        self.trust.fingerprint(jid, tag.0)
    }

    /// Whether messages may be encrypted to a device (its key did not change).
    pub fn usable(&self, jid: &str, tag: InstanceTag) -> bool {
        self.trust.usable(jid, tag.0)
    }

    /// The trust to show for content from a device whose live session has key `session`:
    /// [`Trust::Changed`] unless that is the pinned key, else the pin's trust.
    pub fn content_trust(&self, jid: &str, tag: InstanceTag, session: Option<&str>) -> Trust {
        match (self.trust.fingerprint(jid, tag.0), session) {
            (Some(p), Some(s)) if p == s => self.trust.trust(jid, tag.0).unwrap_or(Trust::Changed),
            _ => Trust::Changed,
        }
    }

    // -------------------------------------------------------------------------------
    // Device lists.

    /// How a contact's newly read list differs from the last one (an empty list keeps the
    /// known devices: [`DeviceChange::Emptied`] only).
    pub fn contact_changes(&self, jid: &str, new: &DeviceList) -> Vec<DeviceChange> {
        self.contacts
            .get(jid)
            .cloned()
            .unwrap_or_default()
            .diff(new)
    }

    /// Keeps a contact's newly read list (once its changes are applied).
    pub fn set_contact_list(&mut self, jid: &str, new: DeviceList) {
        if !new.is_empty() {
            self.contacts.insert(jid.to_owned(), new);
        } else {
            self.contacts.entry(jid.to_owned()).or_default();
        }
    }

    /// How our other devices changed in our account's newly read list (`me`: our device).
    pub fn own_changes(&self, new: &DeviceList, me: InstanceTag) -> Vec<DeviceChange> {
        let strip = |l: &DeviceList| DeviceList {
            devices: l
                .devices
                .iter()
                .filter(|d| d.tag != me.0)
                .cloned()
                .collect(),
        };
        if !new.is_empty() || self.own_list.is_empty() {
            strip(&self.own_list).diff(&strip(new))
        } else {
            vec![DeviceChange::Emptied]
        }
    }

    /// Keeps our account's newly read list (once its changes are applied); whether it
    /// shows that another device removed us just now.
    pub fn set_own_list(&mut self, new: DeviceList, me: InstanceTag) -> bool {
        let listed_now = new.get(me).is_some();
        let removed_now = self.listed && !listed_now && !new.is_empty() && !self.removed;
        if removed_now {
            self.removed = true;
        }
        if !new.is_empty() {
            self.own_list = new;
        }
        self.own_list_fetched = true;
        removed_now
    }

    /// Adds or refreshes our entry `me` (at `now`) once our list was read and our prekeys
    /// are `published`, unless a publication of the list is under way.
    pub fn list_self(
        &mut self,
        car: &mut Carriage,
        reqs: &mut Requests,
        me: DeviceEntry,
        published: bool,
        now: i64,
    ) {
        let busy = reqs.any(|p| matches!(p, Pending::Publish { .. } | Pending::Configure { .. }));
        match self.listing(me, published, busy, now) {
            ListSelf::Nothing => {}
            ListSelf::Publish(list) => Directory::publish_list(car, reqs, list, false),
            ListSelf::Listed => car.emit(GlueEvent::Listed),
            ListSelf::Full(e) => car.emit(GlueEvent::Error(e.into())),
        }
    }

    /// Publishes our list `list` (`retried`: after reconfiguring the node).
    pub fn publish_list(car: &mut Carriage, reqs: &mut Requests, list: DeviceList, retried: bool) {
        let payload = list.to_element();
        reqs.send(
            car,
            Responder::Own,
            Pending::Publish { list, retried },
            |id| stanza::publish_devices(id, payload),
        );
    }

    /// What listing ourselves needs (`busy`: a publication of the list is under way).
    fn listing(&mut self, me: DeviceEntry, published: bool, busy: bool, now: i64) -> ListSelf {
        if !published || !self.own_list_fetched || self.removed || busy {
            return ListSelf::Nothing;
        }
        let mut list = self.own_list.clone();
        let mut pruned = list.prune(now, me.instance_tag());
        if !self.listed && list.get(me.instance_tag()).is_none() {
            // A fresh install (never listed) replaces the entry of its lost predecessor,
            // the device with its label (docs/spec-notes.md §"Self-healing sessions").
            pruned.extend(list.drop_label(&me.label, me.instance_tag()));
        }
        let reannounce = core::mem::take(&mut self.reannounce);
        match list.upsert(me, now) {
            Err(e) => ListSelf::Full(e),
            Ok(changed) if changed || !pruned.is_empty() || reannounce => ListSelf::Publish(list),
            Ok(_) if !self.listed => {
                self.listed = true;
                ListSelf::Listed
            }
            Ok(_) => ListSelf::Nothing,
        }
    }

    /// The answer `r` to publishing our list (`purpose`: the publication or the node's
    /// reconfiguration before publishing again).
    pub fn published_answer(
        &mut self,
        car: &mut Carriage,
        reqs: &mut Requests,
        purpose: Pending,
        r: IqResponse,
    ) {
        let failed = |car: &mut Carriage, r: IqResponse| {
            let f = r.failure.unwrap_or_default();
            car.emit(GlueEvent::Error(GlueError::DeviceListPublish(f)));
        };
        match purpose {
            Pending::Publish { list, .. } if r.ok => self.on_published(car, list),
            Pending::Publish {
                list,
                retried: false,
            } if r.precondition_not_met => {
                reqs.send(
                    car,
                    Responder::Own,
                    Pending::Configure { list },
                    stanza::configure_devices_node,
                );
            }
            Pending::Configure { list } if r.ok => Directory::publish_list(car, reqs, list, true),
            Pending::Publish { .. } | Pending::Configure { .. } => failed(car, r),
            _ => {}
        }
    }

    /// Our list `list` was published: we are on it.
    fn on_published(&mut self, car: &mut Carriage, list: DeviceList) {
        if self.published(list) {
            car.emit(GlueEvent::Listed);
        }
    }

    /// Our list `list` was published; whether we are newly listed.
    fn published(&mut self, list: DeviceList) -> bool {
        self.own_list = list;
        let newly = !self.listed;
        self.listed = true;
        newly
    }

    /// Our list without device `tag` (not ours), if it is listed.
    pub fn without(&self, tag: InstanceTag, me: InstanceTag) -> Option<DeviceList> {
        let mut list = self.own_list.clone();
        (tag != me && list.remove(tag)).then_some(list)
    }

    /// Queues `text` for contact `to` until its list is read; false when `max` texts wait.
    pub fn wait_for_list(&mut self, to: &str, text: &str, max: usize) -> bool {
        let w = self.waiting_list.entry(to.to_owned()).or_default();
        if w.len() >= max {
            return false;
        }
        w.push(text.to_owned());
        true
    }

    /// The texts that waited for `jid`'s list.
    pub fn take_waiting(&mut self, jid: &str) -> Vec<String> {
        self.waiting_list.remove(jid).unwrap_or_default()
    }

    /// Queues `text` for contact `to` until an OTRv3 session is up; how many texts wait
    /// now, or `None` (not queued) when `max` already do.
    pub fn wait_for_v3(&mut self, to: &str, text: &str, max: usize) -> Option<usize> {
        let w = self.waiting_v3.entry(to.to_owned()).or_default();
        if w.len() >= max {
            return None;
        }
        w.push(text.to_owned());
        Some(w.len())
    }

    /// Whether texts wait for an OTRv3 session with `jid`.
    pub fn has_waiting_v3(&self, jid: &str) -> bool {
        self.waiting_v3.contains_key(jid)
    }

    /// The texts that waited for an OTRv3 session with `jid`.
    pub fn take_waiting_v3(&mut self, jid: &str) -> Vec<String> {
        self.waiting_v3.remove(jid).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: InstanceTag = InstanceTag(0x100);

    fn entry(tag: u32, fp: &str, seen: i64) -> DeviceEntry {
        DeviceEntry {
            tag,
            fingerprint: fp.to_owned(),
            label: format!("d{tag:x}"),
            seen,
        }
    }

    fn list(entries: &[DeviceEntry]) -> DeviceList {
        DeviceList {
            devices: entries.to_vec(),
        }
    }

    #[test]
    fn contact_lists_diff_and_an_empty_list_keeps_the_devices() {
        let mut d = Directory::default();
        let l = list(&[entry(0x200, "aa", 1)]);
        assert!(matches!(
            d.contact_changes("bob@x", &l).as_slice(),
            [DeviceChange::Added(_)]
        ));
        assert!(!d.knows("bob@x"));
        d.set_contact_list("bob@x", l);
        assert!(d.knows("bob@x"));
        assert_eq!(
            d.devices_of("bob@x", "alice@x", ME),
            vec![InstanceTag(0x200)]
        );
        let empty = DeviceList::default();
        assert_eq!(
            d.contact_changes("bob@x", &empty),
            vec![DeviceChange::Emptied]
        );
        d.set_contact_list("bob@x", empty);
        assert_eq!(
            d.devices_of("bob@x", "alice@x", ME),
            vec![InstanceTag(0x200)]
        );
        assert!(d.is_listed("bob@x", InstanceTag(0x200), "alice@x", ME));
        assert!(!d.is_listed("carol@x", InstanceTag(0x200), "alice@x", ME));
    }

    #[test]
    fn our_own_removal_is_noticed_once() {
        let mut d = Directory::default();
        let with_me = list(&[entry(ME.0, "me", 1), entry(0x300, "bb", 1)]);
        assert!(matches!(
            d.own_changes(&with_me, ME).as_slice(),
            [DeviceChange::Added(e)] if e.tag == 0x300
        ));
        assert!(!d.set_own_list(with_me.clone(), ME));
        assert_eq!(
            d.devices_of("alice@x", "alice@x", ME),
            vec![InstanceTag(0x300)]
        );
        assert!(d.published(with_me));
        let without_me = list(&[entry(0x300, "bb", 1)]);
        assert!(d.own_changes(&without_me, ME).is_empty());
        assert!(d.set_own_list(without_me.clone(), ME));
        assert!(d.removed());
        assert!(!d.set_own_list(without_me, ME));
        assert_eq!(
            d.own_changes(&DeviceList::default(), ME),
            vec![DeviceChange::Emptied]
        );
    }

    #[test]
    fn listing_ourselves_waits_for_the_list_and_the_publication() {
        let mut d = Directory::default();
        let me = entry(ME.0, "me", 1000);
        assert_eq!(d.listing(me.clone(), true, false, 1000), ListSelf::Nothing);
        d.set_own_list(DeviceList::default(), ME);
        assert_eq!(d.listing(me.clone(), false, false, 1000), ListSelf::Nothing);
        assert_eq!(d.listing(me.clone(), true, true, 1000), ListSelf::Nothing);
        let ListSelf::Publish(l) = d.listing(me.clone(), true, false, 1000) else {
            panic!("our entry is published")
        };
        assert!(d.published(l));
        assert_eq!(d.listing(me.clone(), true, false, 1000), ListSelf::Nothing);
        let mut full = Directory::default();
        full.set_own_list(
            list(
                &(1..=8)
                    .map(|i| entry(0x1000 + i, "x", 1000))
                    .collect::<Vec<_>>(),
            ),
            ME,
        );
        assert_eq!(
            full.listing(me, true, false, 1000),
            ListSelf::Full(TooManyDevices)
        );
        assert_eq!(d.without(ME, ME), None);
        assert_eq!(d.without(InstanceTag(0x999), ME), None);
    }

    #[test]
    fn tofu_pins_and_content_trust() {
        let mut d = Directory::default();
        let t = InstanceTag(0x200);
        assert!(
            d.pin("bob@x", t, "aa")
                .is_some_and(|p| p.new && p.trust == Trust::Tofu)
        );
        assert_eq!(d.pin("bob@x", t, "aa"), None);
        assert_eq!(d.content_trust("bob@x", t, Some("aa")), Trust::Tofu);
        assert_eq!(d.content_trust("bob@x", t, None), Trust::Changed);
        let changed = d.pin("bob@x", t, "bb").unwrap();
        assert!(!changed.new && changed.trust == Trust::Changed);
        assert!(!d.usable("bob@x", t));
        assert_eq!(d.content_trust("bob@x", t, Some("bb")), Trust::Changed);
        assert!(d.accept("bob@x", t));
        assert_eq!(d.pinned("bob@x", t), Some("bb"));
        assert!(d.verify("bob@x", t, "bb"));
        assert_eq!(d.content_trust("bob@x", t, Some("bb")), Trust::Verified);
    }

    #[test]
    fn presence_and_waiting_texts() {
        let mut d = Directory::default();
        let t = InstanceTag(0x200);
        d.presence("bob@x/r", PresenceInfo::Available(t));
        assert!(d.is_online("bob@x", t));
        d.presence("bob@x/r", PresenceInfo::Unavailable);
        assert!(!d.is_online("bob@x", t));
        assert!(d.wait_for_list("bob@x", "a", 2));
        assert!(d.wait_for_list("bob@x", "b", 2));
        assert!(!d.wait_for_list("bob@x", "c", 2));
        assert_eq!(
            d.take_waiting("bob@x"),
            vec!["a".to_owned(), "b".to_owned()]
        );
        assert!(d.take_waiting("bob@x").is_empty());
    }
}
