//! Behaviour every [`Storage`] backend must show; run by each backend's tests.
//! Records hold synthetic bytes: the store never parses what it keeps.

use super::*;

/// A device with a long-term key derived from `key_seed`.
pub(crate) fn device(jid: &str, tag: u32, key_seed: u8) -> DeviceKey {
    DeviceKey {
        jid: jid.into(),
        instance_tag: tag,
        long_term_key: [key_seed; LONG_TERM_KEY_LEN],
    }
}

pub(crate) fn message(d: &DeviceKey, id: u32) -> PrekeyMessageRecord {
    let mut bytes = b"PM".to_vec();
    bytes.extend_from_slice(&d.instance_tag.to_be_bytes());
    bytes.extend_from_slice(&id.to_be_bytes());
    PrekeyMessageRecord {
        id,
        version: 4,
        bytes,
    }
}

/// Client profile, prekey profile (both expiring at `expires`) and messages `ids`.
pub(crate) fn full_request(d: &DeviceKey, ids: std::ops::Range<u32>, expires: i64) -> StoreRequest {
    StoreRequest {
        device: d.clone(),
        client_profile: Some(ClientProfileRecord {
            bytes: [
                b"CP".as_slice(),
                &d.long_term_key[..1],
                &d.instance_tag.to_be_bytes(),
            ]
            .concat(),
            versions: b"4".to_vec(),
            expires,
        }),
        prekey_profile: Some(PrekeyProfileRecord {
            bytes: [
                b"PP".as_slice(),
                &d.long_term_key[..1],
                &d.instance_tag.to_be_bytes(),
            ]
            .concat(),
            expires,
        }),
        prekey_messages: ids.map(|i| message(d, i)).collect(),
    }
}

type Factory<'a> = &'a dyn Fn() -> Box<dyn Storage>;

pub(crate) fn run_all(new: Factory<'_>) {
    store_count_take(new());
    one_per_instance_and_profiles_stay(new());
    device_limit_rejects_whole_publication(new());
    duplicates_discarded(new());
    expired_profiles_not_handed_out_and_gc(new());
    missing_parts_give_nothing(new());
    versions_filter(new());
    new_client_profile_replaces_old_and_key_change_drops_old_values(new());
    messages_only_publication(new());
    invalid_requests_rejected(new());
    batch_takes_distinct_messages_in_order(new());
}

fn store_count_take(s: Box<dyn Storage>) {
    let d = device("alice@example.org", 0x100, 1);
    let out = s.store(&full_request(&d, 0..5, 100), 10, 1).unwrap();
    assert_eq!(
        out,
        StoreOutcome {
            added: 5,
            stored: 5
        }
    );
    assert_eq!(s.count(&d).unwrap(), 5);
    // Another key or tag is another device.
    assert_eq!(s.count(&device("alice@example.org", 0x100, 2)).unwrap(), 0);
    assert_eq!(s.count(&device("alice@example.org", 0x101, 1)).unwrap(), 0);
    let mut seen = Vec::new();
    for _ in 0..5 {
        let e = s.take_ensembles("alice@example.org", b"4", 2).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].instance_tag, 0x100);
        assert_eq!(
            e[0].prekey_message,
            message(&d, e[0].prekey_message_id).bytes
        );
        seen.push(e[0].prekey_message_id);
    }
    assert_eq!(seen, vec![0, 1, 2, 3, 4], "oldest first, each once");
    assert!(
        s.take_ensembles("alice@example.org", b"4", 2)
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.count(&d).unwrap(), 0);
}

fn one_per_instance_and_profiles_stay(s: Box<dyn Storage>) {
    let a = device("bob@example.org", 0x200, 1);
    let b = device("bob@example.org", 0x300, 2);
    let other = device("carol@example.org", 0x200, 1);
    s.store(&full_request(&a, 0..2, 100), 10, 1).unwrap();
    s.store(&full_request(&b, 10..11, 100), 10, 1).unwrap();
    s.store(&full_request(&other, 0..1, 100), 10, 1).unwrap();
    let e = s.take_ensembles("bob@example.org", b"4", 2).unwrap();
    let mut tags: Vec<u32> = e.iter().map(|x| x.instance_tag).collect();
    tags.sort_unstable();
    assert_eq!(tags, vec![0x200, 0x300]);
    for x in &e {
        let d = if x.instance_tag == 0x200 { &a } else { &b };
        let r = full_request(d, 0..0, 100);
        assert_eq!(x.client_profile, r.client_profile.unwrap().bytes);
        assert_eq!(x.prekey_profile, r.prekey_profile.unwrap().bytes);
    }
    // Device b is drained; a has one left; profiles are still there.
    let e = s.take_ensembles("bob@example.org", b"4", 2).unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].instance_tag, e[0].prekey_message_id), (0x200, 1));
    assert_eq!(s.count(&other).unwrap(), 1, "another JID untouched");
    s.add_prekey_messages(&b, vec![message(&b, 11)], 10, 3)
        .unwrap();
    let e = s.take_ensembles("bob@example.org", b"4", 4).unwrap();
    assert_eq!(e.len(), 1, "profiles of b were kept");
    assert_eq!(e[0].prekey_message_id, 11);
}

fn device_limit_rejects_whole_publication(s: Box<dyn Storage>) {
    let d = device("dave@example.org", 0x100, 1);
    s.store(&full_request(&d, 0..8, 100), 10, 1).unwrap();
    let mut r = full_request(&d, 100..103, 200);
    r.client_profile.as_mut().unwrap().bytes = b"NEW".to_vec();
    match s.store(&r, 10, 2) {
        Err(StorageError::DeviceFull { would_hold, limit }) => {
            assert_eq!((would_hold, limit), (11, 10))
        }
        other => panic!("expected DeviceFull, got {other:?}"),
    }
    assert_eq!(s.count(&d).unwrap(), 8);
    let e = s.take_ensembles("dave@example.org", b"4", 150).unwrap();
    assert!(
        e.is_empty(),
        "old profiles (expiring at 100) kept, new ones not stored"
    );
    let e = s.take_ensembles("dave@example.org", b"4", 50).unwrap();
    assert_ne!(e[0].client_profile, b"NEW".to_vec());
    // Exactly up to the limit is fine.
    let out = s.store(&full_request(&d, 100..103, 200), 10, 3).unwrap();
    assert_eq!(
        out,
        StoreOutcome {
            added: 3,
            stored: 10
        }
    );
}

fn duplicates_discarded(s: Box<dyn Storage>) {
    let d = device("erin@example.org", 0x100, 1);
    s.store(&full_request(&d, 0..3, 100), 10, 1).unwrap();
    let mut r = full_request(&d, 2..5, 100);
    r.prekey_messages.push(message(&d, 4));
    let out = s.store(&r, 10, 1).unwrap();
    assert_eq!(
        out,
        StoreOutcome {
            added: 2,
            stored: 5
        }
    );
    // A duplicate does not count against the limit.
    let out = s.store(&full_request(&d, 0..5, 100), 5, 1).unwrap();
    assert_eq!(
        out,
        StoreOutcome {
            added: 0,
            stored: 5
        }
    );
}

fn expired_profiles_not_handed_out_and_gc(s: Box<dyn Storage>) {
    let d = device("frank@example.org", 0x100, 1);
    s.store(&full_request(&d, 0..2, 100), 10, 1).unwrap();
    assert!(
        s.take_ensembles("frank@example.org", b"4", 100)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.count(&d).unwrap(),
        2,
        "nothing taken from an expired device"
    );
    let g = s.gc(100, 0).unwrap();
    assert_eq!(
        g,
        GcReport {
            client_profiles: 1,
            prekey_profiles: 1,
            orphaned_prekey_messages: 0
        }
    );
    assert_eq!(s.count(&d).unwrap(), 2, "recent orphans kept");
    let g = s.gc(100, 2).unwrap();
    assert_eq!(g.orphaned_prekey_messages, 2);
    assert_eq!(s.count(&d).unwrap(), 0);
    // A fresh device is untouched by gc.
    let e = device("frank@example.org", 0x101, 1);
    s.store(&full_request(&e, 0..1, 1000), 10, 1).unwrap();
    assert_eq!(s.gc(100, 50).unwrap(), GcReport::default());
    assert_eq!(s.count(&e).unwrap(), 1);
}

fn missing_parts_give_nothing(s: Box<dyn Storage>) {
    let d = device("gina@example.org", 0x100, 1);
    // Messages only.
    s.add_prekey_messages(&d, vec![message(&d, 1)], 10, 1)
        .unwrap();
    assert!(
        s.take_ensembles("gina@example.org", b"4", 2)
            .unwrap()
            .is_empty()
    );
    // Plus a client profile, still no prekey profile.
    let r = full_request(&d, 0..0, 100);
    s.put_client_profile(&d, r.client_profile.unwrap(), 1)
        .unwrap();
    assert!(
        s.take_ensembles("gina@example.org", b"4", 2)
            .unwrap()
            .is_empty()
    );
    s.put_prekey_profile(&d, r.prekey_profile.unwrap(), 1)
        .unwrap();
    assert_eq!(
        s.take_ensembles("gina@example.org", b"4", 2).unwrap().len(),
        1
    );
    // Profiles without messages.
    assert!(
        s.take_ensembles("gina@example.org", b"4", 2)
            .unwrap()
            .is_empty()
    );
    assert!(
        s.take_ensembles("nobody@example.org", b"4", 2)
            .unwrap()
            .is_empty()
    );
}

fn versions_filter(s: Box<dyn Storage>) {
    let d = device("hank@example.org", 0x100, 1);
    s.store(&full_request(&d, 0..2, 100), 10, 1).unwrap();
    assert!(
        s.take_ensembles("hank@example.org", b"5", 2)
            .unwrap()
            .is_empty()
    );
    assert!(
        s.take_ensembles("hank@example.org", b"", 2)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.take_ensembles("hank@example.org", b"54", 2)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.count(&d).unwrap(), 1);
}

fn new_client_profile_replaces_old_and_key_change_drops_old_values(s: Box<dyn Storage>) {
    let old = device("ivan@example.org", 0x100, 1);
    s.store(&full_request(&old, 0..3, 100), 10, 1).unwrap();
    // Same key: the profile is replaced, messages stay.
    let mut r = full_request(&old, 0..0, 100);
    r.client_profile.as_mut().unwrap().bytes = b"CP2".to_vec();
    s.store(&r, 10, 2).unwrap();
    assert_eq!(s.count(&old).unwrap(), 3);
    let e = s.take_ensembles("ivan@example.org", b"4", 3).unwrap();
    assert_eq!(e[0].client_profile, b"CP2".to_vec());
    // New long-term key on the same instance tag: the old key's values go.
    let new = device("ivan@example.org", 0x100, 9);
    s.store(&full_request(&new, 50..51, 100), 10, 4).unwrap();
    assert_eq!(s.count(&old).unwrap(), 0);
    assert_eq!(s.count(&new).unwrap(), 1);
    let e = s.take_ensembles("ivan@example.org", b"4", 5).unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].prekey_message_id, 50);
    assert_eq!(
        e[0].prekey_profile,
        full_request(&new, 0..0, 0).prekey_profile.unwrap().bytes
    );
}

fn messages_only_publication(s: Box<dyn Storage>) {
    let d = device("judy@example.org", 0x100, 1);
    s.store(&full_request(&d, 0..1, 100), 10, 1).unwrap();
    let out = s
        .add_prekey_messages(&d, vec![message(&d, 5), message(&d, 6)], 10, 2)
        .unwrap();
    assert_eq!(
        out,
        StoreOutcome {
            added: 2,
            stored: 3
        }
    );
    let ids: Vec<u32> = (0..3)
        .map(|_| s.take_ensembles("judy@example.org", b"4", 3).unwrap()[0].prekey_message_id)
        .collect();
    assert_eq!(ids, vec![0, 5, 6]);
}

fn invalid_requests_rejected(s: Box<dyn Storage>) {
    let bad_tag = device("kim@example.org", 0xff, 1);
    assert!(matches!(
        s.store(&full_request(&bad_tag, 0..1, 100), 10, 1),
        Err(StorageError::Invalid(_))
    ));
    let no_jid = device("", 0x100, 1);
    assert!(matches!(
        s.store(&full_request(&no_jid, 0..1, 100), 10, 1),
        Err(StorageError::Invalid(_))
    ));
    assert_eq!(s.count(&bad_tag).unwrap(), 0);
}

fn batch_takes_distinct_messages_in_order(s: Box<dyn Storage>) {
    let a = device("lara@example.org", 0x100, 1);
    let b = device("mike@example.org", 0x100, 2);
    s.store(&full_request(&a, 0..3, 100), 10, 1).unwrap();
    s.store(&full_request(&b, 7..8, 100), 10, 1).unwrap();
    let req = |j: &str| TakeRequest {
        jid: j.into(),
        versions: b"4".to_vec(),
    };
    let out = s
        .take_ensembles_batch(
            &[
                req("lara@example.org"),
                req("mike@example.org"),
                req("lara@example.org"),
                req("mike@example.org"),
                req("nobody@example.org"),
            ],
            2,
        )
        .unwrap();
    let ids: Vec<Vec<u32>> = out
        .iter()
        .map(|v| v.iter().map(|e| e.prekey_message_id).collect())
        .collect();
    assert_eq!(ids, vec![vec![0], vec![7], vec![1], vec![], vec![]]);
    assert_eq!(s.count(&a).unwrap(), 1);
    assert_eq!(s.count(&b).unwrap(), 0);
    assert!(s.take_ensembles_batch(&[], 2).unwrap().is_empty());
}
