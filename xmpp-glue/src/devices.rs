//! The device list a user publishes over PEP (docs/xmpp-glue.md §1): parsing with
//! limits, the pruning rule, adding oneself under the 8-device cap, and change detection.

use minidom::Element;
use otr4::InstanceTag;
use serde::{Deserialize, Serialize};

use crate::ns;
use crate::stanza::{el, parse_tag, tag_hex};

/// At most this many OTRv4 devices per account (the XMPP mapping's rule): a longer device
/// list is truncated, and the otr4 client refuses a conversation with a ninth instance of
/// a contact (its default limit, `otr4::DEFAULT_MAX_INSTANCES`, is the same).
pub const MAX_DEVICES_PER_USER: usize = 8;

/// An entry not refreshed by its device for this long is pruned (30 days).
pub const STALE_AFTER_SECS: i64 = 30 * 86_400;
/// A device refreshes its own `seen` when it is older than this (1 day).
pub const REFRESH_AFTER_SECS: i64 = 86_400;
/// Longest label kept.
pub const MAX_LABEL_CHARS: usize = 64;
/// Hex digits of a fingerprint (56 bytes).
pub const FINGERPRINT_HEX_LEN: usize = 112;

/// One device of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEntry {
    /// Its instance tag.
    pub tag: u32,
    /// The fingerprint of its long-term and forging keys, 112 lowercase hex digits.
    pub fingerprint: String,
    /// A human-readable name.
    pub label: String,
    /// The last time (Unix seconds) the device itself published its entry.
    pub seen: i64,
}

impl DeviceEntry {
    /// The instance tag.
    pub fn instance_tag(&self) -> InstanceTag {
        InstanceTag(self.tag)
    }
}

/// Something dropped while reading a list (logged; never fatal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListIssue {
    /// An entry's tag was not a valid instance tag.
    #[error("device entry with a bad tag dropped")]
    BadTag,
    /// An entry's fingerprint was not 112 hex digits.
    #[error("device {0:08x}: bad fingerprint, entry dropped")]
    BadFingerprint(u32),
    /// The same tag appeared twice; the first was kept.
    #[error("device {0:08x} listed twice, second entry dropped")]
    Duplicate(u32),
    /// More than 8 devices were listed; the extra ones were dropped.
    #[error("more than {MAX_DEVICES_PER_USER} devices listed; device {0:08x} dropped")]
    OverLimit(u32),
}

/// A user's device list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceList {
    /// The entries, at most [`MAX_DEVICES_PER_USER`].
    pub devices: Vec<DeviceEntry>,
}

/// How a contact's device set changed between two readings of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceChange {
    /// A device appeared.
    Added(DeviceEntry),
    /// A device left a non-empty list.
    Removed(DeviceEntry),
    /// A device kept its tag but lists another fingerprint.
    FingerprintChanged {
        /// The entry before.
        old: DeviceEntry,
        /// The entry now.
        new: DeviceEntry,
    },
    /// The list became empty or disappeared: nothing is revoked (docs/xmpp-glue.md §1).
    Emptied,
    /// A device left and a new one with the same label arrived in one update: the user
    /// reinstalled it (lost all its state: new instance tag, new key). The old device's
    /// session is retired; the new one's key is treated as a changed key (not used until
    /// the user accepts it; docs/spec-notes.md §"Self-healing sessions").
    Replaced {
        /// The entry that left.
        old: DeviceEntry,
        /// The entry that replaces it.
        new: DeviceEntry,
    },
}

impl DeviceList {
    /// Reads a `<devices/>` payload; bad, duplicate and excess entries are dropped and
    /// reported.
    pub fn parse(e: &Element) -> (DeviceList, Vec<ListIssue>) {
        let mut list = DeviceList::default();
        let mut issues = Vec::new();
        for d in e.children().filter(|c| c.is("device", ns::OTR4)) {
            let Ok(tag) = parse_tag(d.attr("tag").unwrap_or_default()) else {
                issues.push(ListIssue::BadTag);
                continue;
            };
            let fp = d
                .attr("fingerprint")
                .unwrap_or_default()
                .to_ascii_lowercase();
            if fp.len() != FINGERPRINT_HEX_LEN || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                issues.push(ListIssue::BadFingerprint(tag.0));
                continue;
            }
            if list.get(tag).is_some() {
                issues.push(ListIssue::Duplicate(tag.0));
                continue;
            }
            if list.devices.len() >= MAX_DEVICES_PER_USER {
                issues.push(ListIssue::OverLimit(tag.0));
                continue;
            }
            list.devices.push(DeviceEntry {
                tag: tag.0,
                fingerprint: fp,
                label: d
                    .attr("label")
                    .unwrap_or_default()
                    .chars()
                    .take(MAX_LABEL_CHARS)
                    .collect(),
                seen: d.attr("seen").and_then(|s| s.parse().ok()).unwrap_or(0),
            });
        }
        (list, issues)
    }

    /// The `<devices/>` payload.
    pub fn to_element(&self) -> Element {
        let mut e = el("devices", ns::OTR4, &[]);
        for d in &self.devices {
            e.append_child(el(
                "device",
                ns::OTR4,
                &[
                    ("tag", &tag_hex(d.instance_tag())),
                    ("fingerprint", &d.fingerprint),
                    ("label", &d.label),
                    ("seen", &d.seen.to_string()),
                ],
            ));
        }
        e
    }

    /// The entry of `tag`.
    pub fn get(&self, tag: InstanceTag) -> Option<&DeviceEntry> {
        self.devices.iter().find(|d| d.tag == tag.0)
    }

    /// The listed instance tags.
    pub fn tags(&self) -> Vec<InstanceTag> {
        self.devices.iter().map(DeviceEntry::instance_tag).collect()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// The pruning rule: entries not refreshed for `STALE_AFTER_SECS` are removed
    /// (except `keep`, the device doing the pruning). Returns the removed entries.
    pub fn prune(&mut self, now: i64, keep: InstanceTag) -> Vec<DeviceEntry> {
        let (stale, fresh): (Vec<_>, Vec<_>) = core::mem::take(&mut self.devices)
            .into_iter()
            .partition(|d| d.tag != keep.0 && now.saturating_sub(d.seen) > STALE_AFTER_SECS);
        self.devices = fresh;
        stale
    }

    /// Adds or refreshes our own entry. `Ok(false)` when nothing needed to change
    /// (listed with the same fingerprint and label and refreshed recently);
    /// `Err(TooManyDevices)` when 8 other devices are listed.
    pub fn upsert(&mut self, me: DeviceEntry, now: i64) -> Result<bool, TooManyDevices> {
        if let Some(d) = self.devices.iter_mut().find(|d| d.tag == me.tag) {
            if d.fingerprint == me.fingerprint
                && d.label == me.label
                && now.saturating_sub(d.seen) <= REFRESH_AFTER_SECS
            {
                return Ok(false);
            }
            *d = me;
            return Ok(true);
        }
        if self.devices.len() >= MAX_DEVICES_PER_USER {
            return Err(TooManyDevices);
        }
        self.devices.push(me);
        Ok(true)
    }

    /// Removes `tag`; returns whether it was listed.
    pub fn remove(&mut self, tag: InstanceTag) -> bool {
        let before = self.devices.len();
        self.devices.retain(|d| d.tag != tag.0);
        self.devices.len() != before
    }

    /// How `new` differs from `self` (the previous reading). An empty `new` is
    /// [`DeviceChange::Emptied`] only: it never removes devices.
    pub fn diff(&self, new: &DeviceList) -> Vec<DeviceChange> {
        if new.is_empty() {
            return if self.is_empty() {
                Vec::new()
            } else {
                vec![DeviceChange::Emptied]
            };
        }
        let mut out = Vec::new();
        for n in &new.devices {
            match self.devices.iter().find(|o| o.tag == n.tag) {
                None => out.push(DeviceChange::Added(n.clone())),
                Some(o) if o.fingerprint != n.fingerprint => {
                    out.push(DeviceChange::FingerprintChanged {
                        old: o.clone(),
                        new: n.clone(),
                    });
                }
                Some(_) => {}
            }
        }
        for o in &self.devices {
            if !new.devices.iter().any(|n| n.tag == o.tag) {
                out.push(DeviceChange::Removed(o.clone()));
            }
        }
        pair_replacements(out)
    }

    /// Drops the entries of other devices labelled `label` (a fresh install of a device
    /// replaces its lost predecessor, docs/spec-notes.md §"Self-healing sessions");
    /// returns them.
    pub(crate) fn drop_label(&mut self, label: &str, keep: InstanceTag) -> Vec<DeviceEntry> {
        let (gone, rest): (Vec<_>, Vec<_>) = core::mem::take(&mut self.devices)
            .into_iter()
            .partition(|d| d.tag != keep.0 && d.label == label);
        self.devices = rest;
        gone
    }
}

/// One device removed and one added with the same label (and no other of that label
/// either way) become [`DeviceChange::Replaced`].
fn pair_replacements(changes: Vec<DeviceChange>) -> Vec<DeviceChange> {
    let label_count = |label: &str, added: bool| {
        changes
            .iter()
            .filter(|c| match c {
                DeviceChange::Added(d) => added && d.label == label,
                DeviceChange::Removed(d) => !added && d.label == label,
                _ => false,
            })
            .count()
    };
    let mut out = Vec::new();
    let mut replaced_new: Vec<u32> = Vec::new();
    for c in &changes {
        if let DeviceChange::Removed(old) = c
            && label_count(&old.label, true) == 1
            && label_count(&old.label, false) == 1
            && let Some(new) = changes.iter().find_map(|n| match n {
                DeviceChange::Added(d) if d.label == old.label => Some(d),
                _ => None,
            })
        {
            replaced_new.push(new.tag);
            out.push(DeviceChange::Replaced {
                old: old.clone(),
                new: new.clone(),
            });
        }
    }
    let rest = changes.into_iter().filter(|c| match c {
        DeviceChange::Added(d) => !replaced_new.contains(&d.tag),
        DeviceChange::Removed(d) => !out
            .iter()
            .any(|r| matches!(r, DeviceChange::Replaced { old, .. } if old.tag == d.tag)),
        _ => true,
    });
    let mut all: Vec<DeviceChange> = rest.collect();
    all.extend(out);
    all
}

/// Our device could not list itself: 8 devices are listed already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this account already lists {MAX_DEVICES_PER_USER} OTRv4 devices; remove one first")]
pub struct TooManyDevices;

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tag: u32, seen: i64) -> DeviceEntry {
        DeviceEntry {
            tag,
            fingerprint: format!("{:0112x}", tag),
            label: format!("d{tag}"),
            seen,
        }
    }

    #[test]
    fn a_device_reinstalled_under_its_label_is_a_replacement() {
        let mut phone = entry(0x101, 5);
        phone.label = "phone".into();
        let old = DeviceList {
            devices: vec![entry(0x100, 5), phone.clone()],
        };
        let mut new_phone = entry(0x102, 9);
        new_phone.label = "phone".into();
        let new = DeviceList {
            devices: vec![entry(0x100, 5), new_phone.clone()],
        };
        assert_eq!(
            old.diff(&new),
            vec![DeviceChange::Replaced {
                old: phone.clone(),
                new: new_phone.clone()
            }]
        );
        // Different labels: a removal and an addition.
        let other = DeviceList {
            devices: vec![entry(0x100, 5), entry(0x103, 9)],
        };
        assert!(matches!(
            old.diff(&other).as_slice(),
            [DeviceChange::Added(a), DeviceChange::Removed(r)] if a.tag == 0x103 && r.tag == 0x101
        ));
        // The new install drops its predecessor's entry from its own list.
        let mut mine = old.clone();
        assert_eq!(mine.drop_label("phone", InstanceTag(0x102)), vec![phone]);
        assert_eq!(mine.devices.len(), 1);
    }

    #[test]
    fn a_refreshed_entry_is_no_change_and_a_new_key_is() {
        let old = DeviceList {
            devices: vec![entry(0x100, 5), entry(0x101, 5)],
        };
        let mut new = old.clone();
        for d in &mut new.devices {
            d.seen = 99; // refreshed only
        }
        assert!(old.diff(&new).is_empty());
        if let Some(d) = new.devices.get_mut(1) {
            d.fingerprint = "f".repeat(112);
        }
        assert!(matches!(
            old.diff(&new).as_slice(),
            [DeviceChange::FingerprintChanged { old, new }]
                if old.tag == 0x101 && new.fingerprint == "f".repeat(112)
        ));
    }

    #[test]
    fn entries_are_pruned_after_30_days_not_before() {
        let me = InstanceTag(0x100);
        let now = 100 * 86_400;
        let mut list = DeviceList {
            devices: vec![
                entry(0x100, 0),                      // ourselves: never pruned
                entry(0x101, now - 2 * 86_400),       // two days old
                entry(0x102, now - STALE_AFTER_SECS), // exactly 30 days: kept
                entry(0x103, now - STALE_AFTER_SECS - 1),
            ],
        };
        assert_eq!(STALE_AFTER_SECS, 2_592_000);
        let removed: Vec<u32> = list.prune(now, me).iter().map(|d| d.tag).collect();
        assert_eq!(removed, [0x103]);
        assert_eq!(
            list.tags(),
            [InstanceTag(0x100), InstanceTag(0x101), InstanceTag(0x102)]
        );
    }

    #[test]
    fn round_trip_and_limits() {
        let list = DeviceList {
            devices: (0..8).map(|i| entry(0x100 + i, 5)).collect(),
        };
        let (back, issues) = DeviceList::parse(&list.to_element());
        assert!(issues.is_empty());
        assert_eq!(back, list);
        // A 9th entry in a (malicious) list is dropped and reported.
        let mut e = list.to_element();
        e.append_child(el(
            "device",
            ns::OTR4,
            &[("tag", "00000999"), ("fingerprint", &"a".repeat(112))],
        ));
        let (back, issues) = DeviceList::parse(&e);
        assert_eq!(back.devices.len(), 8);
        assert_eq!(issues, vec![ListIssue::OverLimit(0x999)]);
    }

    #[test]
    fn bad_entries_dropped() {
        let e: Element = format!(
            "<devices xmlns='urn:xmpp:otr4:0'><device tag='00000010' fingerprint='{fp}'/><device tag='00000200' fingerprint='abc'/><device tag='00000300' fingerprint='{fp}'/><device tag='00000300' fingerprint='{fp}'/></devices>",
            fp = "b".repeat(112)
        )
        .parse()
        .unwrap();
        let (l, issues) = DeviceList::parse(&e);
        assert_eq!(l.tags(), vec![InstanceTag(0x300)]);
        assert_eq!(
            issues,
            vec![
                ListIssue::BadTag,
                ListIssue::BadFingerprint(0x200),
                ListIssue::Duplicate(0x300)
            ]
        );
    }

    #[test]
    fn ninth_device_refused() {
        let mut list = DeviceList {
            devices: (0..8).map(|i| entry(0x100 + i, 5)).collect(),
        };
        assert_eq!(list.upsert(entry(0x999, 5), 5), Err(TooManyDevices));
        // A listed device refreshes itself fine.
        assert_eq!(list.upsert(entry(0x100, 5), 10), Ok(false));
        assert_eq!(
            list.upsert(
                entry(0x100, 5 + 2 * REFRESH_AFTER_SECS),
                5 + 2 * REFRESH_AFTER_SECS
            ),
            Ok(true)
        );
    }

    #[test]
    fn pruning_rule() {
        let now = 100 * 86_400;
        let mut list = DeviceList {
            devices: vec![
                entry(0x100, now - STALE_AFTER_SECS - 1),
                entry(0x200, now - STALE_AFTER_SECS),
                entry(0x300, 0),
            ],
        };
        let gone = list.prune(now, InstanceTag(0x300));
        assert_eq!(gone, vec![entry(0x100, now - STALE_AFTER_SECS - 1)]);
        assert_eq!(list.tags(), vec![InstanceTag(0x200), InstanceTag(0x300)]);
    }

    #[test]
    fn diff_reports_changes_and_empty_never_removes() {
        let old = DeviceList {
            devices: vec![entry(0x100, 1), entry(0x200, 1)],
        };
        let mut changed = entry(0x200, 1);
        changed.fingerprint = "c".repeat(112);
        let new = DeviceList {
            devices: vec![changed.clone(), entry(0x300, 1)],
        };
        assert_eq!(
            old.diff(&new),
            vec![
                DeviceChange::FingerprintChanged {
                    old: entry(0x200, 1),
                    new: changed
                },
                DeviceChange::Added(entry(0x300, 1)),
                DeviceChange::Removed(entry(0x100, 1)),
            ]
        );
        assert_eq!(
            old.diff(&DeviceList::default()),
            vec![DeviceChange::Emptied]
        );
        assert!(
            DeviceList::default()
                .diff(&DeviceList::default())
                .is_empty()
        );
    }
}

#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;

    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('\'', "&apos;")
    }

    proptest! {
        /// Hostile lists never panic the parser and never yield more than 8 entries or an
        /// invalid tag/fingerprint; the carriage parser is as strict.
        #[test]
        fn hostile_input_is_bounded(
            entries in proptest::collection::vec((".{0,12}", ".{0,120}", ".{0,80}", ".{0,24}"), 0..20),
            payloads in proptest::collection::vec((proptest::option::of(".{0,10}"), ".{0,40}"), 0..80),
            from_tag in ".{0,10}",
        ) {
            let mut x = String::from("<devices xmlns='urn:xmpp:otr4:0'>");
            for (t, f, l, s) in &entries {
                x.push_str(&format!("<device tag='{}' fingerprint='{}' label='{}' seen='{}'/>", esc(t), esc(f), esc(l), esc(s)));
            }
            x.push_str("</devices>");
            if let Ok(e) = x.parse::<Element>() {
                let (list, _) = DeviceList::parse(&e);
                prop_assert!(list.devices.len() <= MAX_DEVICES_PER_USER);
                for d in &list.devices {
                    prop_assert!(InstanceTag(d.tag).is_valid_sender());
                    prop_assert_eq!(d.fingerprint.len(), FINGERPRINT_HEX_LEN);
                    prop_assert!(d.label.chars().count() <= MAX_LABEL_CHARS);
                }
            }
            let mut m = format!("<message xmlns='jabber:client'><otr4 xmlns='urn:xmpp:otr4:0' from-tag='{}'>", esc(&from_tag));
            for (to, text) in &payloads {
                match to {
                    Some(t) => m.push_str(&format!("<payload to-tag='{}'>{}</payload>", esc(t), esc(text))),
                    None => m.push_str(&format!("<payload>{}</payload>", esc(text))),
                }
            }
            m.push_str("</otr4></message>");
            if let Ok(e) = m.parse::<Element>()
                && let Some(Ok(c)) = crate::stanza::parse_carried(&e)
            {
                prop_assert!(c.payloads.len() <= crate::stanza::MAX_PAYLOADS);
                prop_assert!(c.from_tag.is_valid_sender());
            }
        }
    }
}
