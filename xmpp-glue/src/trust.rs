//! Trust on first use with warnings (docs/xmpp-glue.md §6): a contact device's fingerprint
//! is pinned when first seen, SMP upgrades it to verified, a changed key blocks it.

use std::collections::BTreeMap;

use otr4::{FINGERPRINT_LEN, Fingerprint};
use serde::{Deserialize, Serialize};

/// A fingerprint as the trust store keeps it: 112 lowercase hex digits.
pub(crate) fn hex_fp(f: &Fingerprint) -> String {
    hex::encode(f.as_bytes())
}

/// The fingerprint of a trust-store string, if it is one.
pub(crate) fn parse_fp(s: &str) -> Option<Fingerprint> {
    let v = hex::decode(s).ok()?;
    let a: [u8; FINGERPRINT_LEN] = v.try_into().ok()?;
    Some(Fingerprint(a))
}

/// How much a device is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trust {
    /// Pinned on first use, not verified: messages are encrypted to it.
    Tofu,
    /// Verified by SMP (or by the user comparing fingerprints).
    Verified,
    /// The device now shows another fingerprint than the pinned one: nothing is encrypted
    /// to it until the user accepts the new fingerprint.
    Changed,
}

/// What pinning a fingerprint did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// First time seen: now [`Trust::Tofu`] (show "new device").
    New,
    /// Same fingerprint as pinned.
    Same(Trust),
    /// Another fingerprint than the pinned one: now [`Trust::Changed`].
    Changed {
        /// The pinned fingerprint.
        pinned: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pinned {
    fingerprint: String,
    /// A different fingerprint seen since, awaiting the user's decision.
    offered: Option<String>,
    trust: Trust,
}

impl Pinned {
    /// Sees `fingerprint` for `key`, pinned in `slots` or not yet.
    fn see<K: Ord>(slots: &mut BTreeMap<K, Pinned>, key: K, fingerprint: &str) -> Pin {
        match slots.get_mut(&key) {
            None => {
                slots.insert(
                    key,
                    Pinned {
                        fingerprint: fingerprint.to_owned(),
                        offered: None,
                        trust: Trust::Tofu,
                    },
                );
                Pin::New
            }
            Some(p) if p.fingerprint == fingerprint => Pin::Same(p.trust),
            Some(p) => {
                p.trust = Trust::Changed;
                p.offered = Some(fingerprint.to_owned());
                Pin::Changed {
                    pinned: p.fingerprint.clone(),
                }
            }
        }
    }

    /// SMP succeeded with the key `fingerprint`: verified if it is the pinned one.
    fn verify(&mut self, fingerprint: &str) -> bool {
        if self.fingerprint != fingerprint {
            return false;
        }
        self.trust = Trust::Verified;
        true
    }

    /// The user accepts the changed key: pinned again as TOFU.
    fn accept(&mut self) -> bool {
        if self.trust != Trust::Changed {
            return false;
        }
        if let Some(f) = self.offered.take() {
            self.fingerprint = f;
        }
        self.trust = Trust::Tofu;
        true
    }
}

/// Pinned fingerprints by (bare JID, instance tag), and the OTRv3 keys of contacts by bare
/// JID (an OTRv3 contact has one key and no device list; libotr's fingerprint format).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustStore {
    pins: BTreeMap<String, BTreeMap<u32, Pinned>>,
    /// Absent in states saved before the OTRv3-compatible mode.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    v3: BTreeMap<String, Pinned>,
}

impl TrustStore {
    /// Sees `fingerprint` for device `tag` of `jid`.
    pub fn pin(&mut self, jid: &str, tag: u32, fingerprint: &str) -> Pin {
        Pinned::see(
            self.pins.entry(jid.to_owned()).or_default(),
            tag,
            fingerprint,
        )
    }

    /// Sees the OTRv3 key `fingerprint` for `jid`.
    pub fn pin_v3(&mut self, jid: &str, fingerprint: &str) -> Pin {
        Pinned::see(&mut self.v3, jid.to_owned(), fingerprint)
    }

    /// The trust of `jid`'s OTRv3 key `fingerprint`: [`Trust::Changed`] unless it is the
    /// pinned one.
    pub fn v3_trust(&self, jid: &str, fingerprint: &str) -> Trust {
        match self.v3.get(jid) {
            Some(p) if p.fingerprint == fingerprint => p.trust,
            _ => Trust::Changed,
        }
    }

    /// Marks `jid`'s OTRv3 key verified if it is `fingerprint`.
    pub fn verify_v3(&mut self, jid: &str, fingerprint: &str) -> bool {
        self.v3.get_mut(jid).is_some_and(|p| p.verify(fingerprint))
    }

    /// The user accepts `jid`'s changed OTRv3 key.
    pub fn accept_v3(&mut self, jid: &str) -> bool {
        self.v3.get_mut(jid).is_some_and(Pinned::accept)
    }

    /// Pins device `tag` of `jid`, new, as a changed key: `old` (its predecessor's key)
    /// stays the accepted one and `offered` awaits the user
    /// ([`crate::DeviceChange::Replaced`]).
    pub(crate) fn pin_replacement(&mut self, jid: &str, tag: u32, old: &str, offered: &str) {
        self.pins.entry(jid.to_owned()).or_default().insert(
            tag,
            Pinned {
                fingerprint: old.to_owned(),
                offered: Some(offered.to_owned()),
                trust: Trust::Changed,
            },
        );
    }

    /// Every pin as (bare JID, tag, the accepted fingerprint): for a changed device, the
    /// key pinned before the change (the offered one is not accepted).
    pub fn accepted(&self) -> Vec<(String, u32, String)> {
        self.pins
            .iter()
            .flat_map(|(jid, d)| {
                d.iter()
                    .map(move |(tag, p)| (jid.clone(), *tag, p.fingerprint.clone()))
            })
            .collect()
    }

    /// The trust of a device, if pinned.
    pub fn trust(&self, jid: &str, tag: u32) -> Option<Trust> {
        self.pins.get(jid)?.get(&tag).map(|p| p.trust)
    }

    /// The pinned fingerprint of a device.
    pub fn fingerprint(&self, jid: &str, tag: u32) -> Option<&str> {
        self.pins
            .get(jid)?
            .get(&tag)
            .map(|p| p.fingerprint.as_str())
    }

    /// Whether messages may be encrypted to the device (not [`Trust::Changed`]).
    pub fn usable(&self, jid: &str, tag: u32) -> bool {
        self.trust(jid, tag) != Some(Trust::Changed)
    }

    /// Marks a device verified (SMP succeeded with it) if its fingerprint is `fingerprint`.
    pub fn verify(&mut self, jid: &str, tag: u32, fingerprint: &str) -> bool {
        self.pins
            .get_mut(jid)
            .and_then(|d| d.get_mut(&tag))
            .is_some_and(|p| p.verify(fingerprint))
    }

    /// The user accepts the changed fingerprint of a device: pinned again as TOFU.
    pub fn accept(&mut self, jid: &str, tag: u32) -> bool {
        self.pins
            .get_mut(jid)
            .and_then(|d| d.get_mut(&tag))
            .is_some_and(Pinned::accept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tofu_then_change_blocks_until_accepted() {
        let mut t = TrustStore::default();
        assert_eq!(t.pin("bob@x", 0x100, "aa"), Pin::New);
        assert_eq!(t.pin("bob@x", 0x100, "aa"), Pin::Same(Trust::Tofu));
        assert!(t.usable("bob@x", 0x100));
        assert_eq!(
            t.pin("bob@x", 0x100, "bb"),
            Pin::Changed {
                pinned: "aa".into()
            }
        );
        assert!(!t.usable("bob@x", 0x100));
        assert!(t.accept("bob@x", 0x100));
        assert_eq!(t.fingerprint("bob@x", 0x100), Some("bb"));
        assert!(t.usable("bob@x", 0x100));
    }

    #[test]
    fn only_a_changed_key_can_be_accepted() {
        let mut t = TrustStore::default();
        let (a, b) = ("aa".repeat(56), "bb".repeat(56));
        t.pin("bob@x", 1, &a);
        assert!(!t.accept("bob@x", 1), "nothing to accept on a TOFU pin");
        assert!(t.verify("bob@x", 1, &a));
        assert!(!t.accept("bob@x", 1), "a verified pin is not downgraded");
        assert_eq!(t.trust("bob@x", 1), Some(Trust::Verified));
        t.pin("bob@x", 1, &b);
        assert_eq!(t.trust("bob@x", 1), Some(Trust::Changed));
        assert_eq!(
            t.accepted(),
            vec![("bob@x".to_owned(), 1, a.clone())],
            "the offered key is not accepted before the user says so"
        );
        assert!(t.accept("bob@x", 1));
        assert_eq!(t.accepted(), vec![("bob@x".to_owned(), 1, b.clone())]);
        assert!(!t.accept("bob@y", 1), "nothing pinned");
    }

    #[test]
    fn the_stored_form_of_a_fingerprint_is_its_lowercase_hex() {
        let f = Fingerprint([0xAB; FINGERPRINT_LEN]);
        assert_eq!(hex_fp(&f), "ab".repeat(FINGERPRINT_LEN));
        assert_eq!(parse_fp(&hex_fp(&f)), Some(f));
    }

    #[test]
    fn otrv3_keys_are_pinned_by_jid_apart_from_devices() {
        let mut t = TrustStore::default();
        let (a, b) = ("AAAAAAAA BBBBBBBB", "CCCCCCCC DDDDDDDD");
        assert_eq!(t.pin_v3("bob@x", a), Pin::New);
        assert_eq!(t.v3_trust("bob@x", a), Trust::Tofu);
        assert_eq!(t.trust("bob@x", 0), None, "no device pinned");
        assert!(!t.verify_v3("bob@x", b));
        assert!(t.verify_v3("bob@x", a));
        assert_eq!(t.pin_v3("bob@x", b), Pin::Changed { pinned: a.into() });
        assert_eq!(t.v3_trust("bob@x", b), Trust::Changed);
        assert_eq!(
            t.v3_trust("bob@x", a),
            Trust::Changed,
            "a change awaits the user"
        );
        assert!(t.accept_v3("bob@x"));
        assert_eq!(t.v3_trust("bob@x", b), Trust::Tofu);
        assert!(!t.accept_v3("carol@x"));
        let json = serde_json::to_string(&TrustStore::default()).unwrap();
        assert!(
            !json.contains("v3"),
            "older states stay byte-identical: {json}"
        );
    }

    #[test]
    fn smp_verifies_only_the_pinned_key() {
        let mut t = TrustStore::default();
        t.pin("bob@x", 0x100, "aa");
        assert!(!t.verify("bob@x", 0x100, "bb"));
        assert!(t.verify("bob@x", 0x100, "aa"));
        assert_eq!(t.trust("bob@x", 0x100), Some(Trust::Verified));
        assert_eq!(t.pin("bob@x", 0x100, "aa"), Pin::Same(Trust::Verified));
    }
}
