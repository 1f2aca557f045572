//! Self-healing sessions on the in-memory XMPP server with the real prekey server
//! (docs/spec-notes.md §"Self-healing sessions"): a device restored from an old backup, a
//! message not encrypted for this device, a peer that lost all its state.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use xmpp_sim::demo;

use demo::Net;
use demo::net_sim::SimNet;
use xmpp_glue::minidom::Element;
use xmpp_glue::otr4::{ConversationError, ErrorCode};
use xmpp_glue::{DeviceChange, GlueEvent, NotSentReason, RepairAction, Trust, stanza};

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn count(ev: &[(String, GlueEvent)], dev: &str, text: &str) -> usize {
    ev.iter()
        .filter(|(d, e)| d == dev && matches!(e, GlueEvent::Message { text: t, .. } if t == text))
        .count()
}

fn undecryptable(
    ev: &[(String, GlueEvent)],
    dev: &str,
) -> Vec<(ConversationError, Option<String>)> {
    ev.iter()
        .filter_map(|(d, e)| match e {
            GlueEvent::Undecryptable { error, message, .. } if d == dev => {
                Some((error.clone(), message.clone()))
            }
            _ => None,
        })
        .collect()
}

fn repairs(
    ev: &[(String, GlueEvent)],
    dev: &str,
) -> Vec<(ErrorCode, Option<String>, RepairAction)> {
    ev.iter()
        .filter_map(|(d, e)| match e {
            GlueEvent::SessionRepair {
                code,
                message,
                action,
                ..
            } if d == dev => Some((*code, message.clone(), *action)),
            _ => None,
        })
        .collect()
}

fn secure(ev: &[(String, GlueEvent)], dev: &str) -> usize {
    ev.iter()
        .filter(|(d, e)| d == dev && matches!(e, GlueEvent::Secure { .. }))
        .count()
}

fn problems(ev: &[(String, GlueEvent)]) -> Vec<String> {
    ev.iter()
        .filter_map(|(d, e)| match e {
            GlueEvent::Undecryptable { .. }
            | GlueEvent::Error(_)
            | GlueEvent::NotForThisDevice { .. } => Some(format!("{d}: {e:?}")),
            _ => None,
        })
        .collect()
}

async fn up(net: &mut SimNet, devs: &[&str]) {
    for d in devs {
        net.connect(d).await;
        net.settle().await;
    }
}

/// Alice and Bob talk; Bob's phone is backed up; then both ratchets move on (Bob reads
/// and answers, Alice reads the answer). Returns the backup.
async fn talk_past_a_backup(net: &mut SimNet) -> (Vec<u8>, Vec<u8>) {
    up(net, &["alice/laptop", "bob/phone"]).await;
    net.send("alice/laptop", "bob", "m1").await;
    net.settle().await;
    net.send("bob/phone", "alice", "r1").await;
    let ev = net.settle().await;
    assert_eq!(count(&ev, "alice/laptop", "r1"), 1);
    let backup = net.backup("bob/phone").unwrap();
    net.send("alice/laptop", "bob", "m2").await;
    net.settle().await;
    net.send("bob/phone", "alice", "r2").await; // Bob's new ratchet key
    let ev = net.settle().await;
    assert_eq!(count(&ev, "alice/laptop", "r2"), 1);
    assert!(problems(&ev).is_empty(), "{:?}", problems(&ev));
    backup
}

/// After the repair: messages both ways are read exactly once, nothing is undecryptable.
async fn readable_both_ways(net: &mut SimNet) {
    net.send("alice/laptop", "bob", "after-repair").await;
    let ev = net.settle().await;
    assert_eq!(count(&ev, "bob/phone", "after-repair"), 1, "{ev:?}");
    net.send("bob/phone", "alice", "reply-after-repair").await;
    let ev2 = net.settle().await;
    assert_eq!(
        count(&ev2, "alice/laptop", "reply-after-repair"),
        1,
        "{ev2:?}"
    );
    let all: Vec<_> = ev.into_iter().chain(ev2).collect();
    assert!(problems(&all).is_empty(), "{:?}", problems(&all));
    assert!(repairs(&all, "alice/laptop").is_empty());
}

#[test]
fn a_device_restored_from_an_old_backup_is_repaired_interactively() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = SimNet::new("example.org", dir.path());
    block(async {
        let backup = talk_past_a_backup(&mut net).await;
        net.disconnect("bob/phone").await;
        net.restore("bob/phone", backup);
        net.connect("bob/phone").await;
        let ev = net.settle().await;
        // The archive gives the restored phone what came after the backup: m2 was made
        // for the keys it still has; nothing else was sent to it.
        assert_eq!(count(&ev, "bob/phone", "m2"), 1);
        assert!(problems(&ev).is_empty(), "{:?}", problems(&ev));

        // Alice writes with the ratchet key the phone made after the backup.
        net.send("alice/laptop", "bob", "m3").await;
        let ev = net.settle().await;
        assert_eq!(count(&ev, "bob/phone", "m3"), 0);
        let bad = undecryptable(&ev, "bob/phone");
        assert!(
            matches!(
                bad.as_slice(),
                [(ConversationError::Unreadable(_), Some(_))]
            ),
            "the phone is told once which message it could not read: {bad:?}"
        );
        let rep = repairs(&ev, "alice/laptop");
        assert_eq!(
            rep,
            vec![(
                ErrorCode::UnreadableMessage,
                bad[0].1.clone(),
                RepairAction::Interactive
            )],
            "Alice is told once, naming the same message"
        );
        assert_eq!(secure(&ev, "alice/laptop"), 1, "a new session: {ev:?}");
        assert_eq!(secure(&ev, "bob/phone"), 1);
        // Nothing was sent again silently.
        assert_eq!(count(&ev, "bob/phone", "m3"), 0);
        readable_both_ways(&mut net).await;
    });
}

#[test]
fn a_repair_of_an_offline_device_goes_through_the_prekey_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = SimNet::new("example.org", dir.path());
    block(async {
        let backup = talk_past_a_backup(&mut net).await;
        net.disconnect("bob/phone").await;
        net.settle().await;
        // Alice writes while the phone is away: the message waits in Bob's archive.
        net.send("alice/laptop", "bob", "m3").await;
        net.settle().await;
        net.restore("bob/phone", backup);
        net.connect("bob/phone").await;
        let ev = net.settle().await;
        // It reads m2 from the archive, cannot read m3, and says so before it is back
        // online: Alice repairs through Bob's prekey ensembles.
        assert_eq!(count(&ev, "bob/phone", "m2"), 1);
        assert_eq!(count(&ev, "bob/phone", "m3"), 0);
        let bad = undecryptable(&ev, "bob/phone");
        assert_eq!(bad.len(), 1, "{bad:?}");
        let rep = repairs(&ev, "alice/laptop");
        assert_eq!(
            rep,
            vec![(
                ErrorCode::UnreadableMessage,
                bad[0].1.clone(),
                RepairAction::ThroughPrekeyServer
            )]
        );
        assert!(ev.iter().any(|(d, e)| d == "alice/laptop"
            && matches!(
                e,
                GlueEvent::Secure {
                    non_interactive: true,
                    ..
                }
            )));
        assert!(ev.iter().any(|(d, e)| d == "bob/phone"
            && matches!(
                e,
                GlueEvent::Secure {
                    non_interactive: true,
                    ..
                }
            )));
        readable_both_ways(&mut net).await;
    });
}

#[test]
fn spoofed_error_messages_start_at_most_one_repair() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = SimNet::new("example.org", dir.path());
    block(async {
        up(&mut net, &["alice/laptop", "bob/phone"]).await;
        net.send("alice/laptop", "bob", "m1").await;
        net.settle().await;
        let phone = net.tag("bob/phone");
        let laptop = net.tag("alice/laptop");
        // Anyone who can send from bob@… (here a raw stanza) can fake the phone's error.
        let fake = |id: &str| {
            stanza::multicast_message(
                "alice@example.org",
                id,
                phone,
                &[stanza::Payload {
                    to_tag: Some(laptop),
                    text: "?OTR Error: ERROR_1: Unreadable message".into(),
                }],
            )
        };
        for i in 0..5 {
            net.submit_raw("bob/phone", fake(&format!("fake-{i}")));
        }
        let ev = net.settle().await;
        let rep = repairs(&ev, "alice/laptop");
        let started = rep
            .iter()
            .filter(|(_, _, a)| *a == RepairAction::Interactive)
            .count();
        assert_eq!(started, 1, "{rep:?}");
        assert!(
            rep.iter().skip(1).all(|(_, _, a)| matches!(
                a,
                RepairAction::AlreadyRepairing | RepairAction::RateLimited
            )),
            "{rep:?}"
        );
        // The old session was never dropped: the phone answered the DAKE, messages flow.
        net.send("alice/laptop", "bob", "still-fine").await;
        let ev = net.settle().await;
        assert_eq!(count(&ev, "bob/phone", "still-fine"), 1);
        assert!(problems(&ev).is_empty(), "{:?}", problems(&ev));
        // Later fakes are rate-limited: no new DAKE.
        net.submit_raw("bob/phone", fake("fake-late"));
        let ev = net.settle().await;
        assert_eq!(
            repairs(&ev, "alice/laptop")
                .iter()
                .map(|r| r.2)
                .collect::<Vec<_>>(),
            vec![RepairAction::RateLimited]
        );
        assert_eq!(secure(&ev, "alice/laptop"), 0);
    });
}

fn no_device_list_notifications(s: &Element) -> bool {
    !(s.name() == "message" && stanza::devices_payload(s).is_some())
}

#[test]
fn a_message_not_encrypted_for_this_device_makes_it_announce_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = SimNet::new("example.org", dir.path());
    block(async {
        up(&mut net, &["alice/laptop", "bob/desktop"]).await;
        net.send("alice/laptop", "bob", "hello").await;
        net.settle().await;
        // Alice misses the notification of Bob's new tablet.
        net.set_inbound_filter("alice/laptop", Some(no_device_list_notifications));
        up(&mut net, &["bob/tablet"]).await;
        net.set_inbound_filter("alice/laptop", None);
        assert!(
            !net.engine("alice/laptop")
                .unwrap()
                .devices_of("bob@example.org")
                .contains(&net.tag("bob/tablet"))
        );

        net.send("alice/laptop", "bob", "one").await;
        let ev = net.settle().await;
        assert_eq!(count(&ev, "bob/desktop", "one"), 1);
        assert_eq!(count(&ev, "bob/tablet", "one"), 0);
        let told: Vec<bool> = ev
            .iter()
            .filter_map(|(d, e)| match e {
                GlueEvent::NotForThisDevice { reannounced, .. } if d == "bob/tablet" => {
                    Some(*reannounced)
                }
                _ => None,
            })
            .collect();
        assert_eq!(told, vec![true], "{ev:?}");
        assert!(
            ev.iter().any(|(d, e)| d == "alice/laptop"
                && matches!(e, GlueEvent::DevicesChanged { change: DeviceChange::Added(x), .. }
                    if x.instance_tag() == net.tag("bob/tablet"))),
            "the republished list reaches Alice: {ev:?}"
        );

        net.send("alice/laptop", "bob", "two").await;
        let ev = net.settle().await;
        assert_eq!(count(&ev, "bob/tablet", "two"), 1, "{ev:?}");
        assert_eq!(count(&ev, "bob/desktop", "two"), 1);
        assert!(problems(&ev).is_empty(), "{:?}", problems(&ev));
    });
}

#[test]
fn a_peer_that_lost_all_state_is_retired_and_its_new_install_trusted_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = SimNet::new("example.org", dir.path());
    block(async {
        up(&mut net, &["alice/laptop", "bob/phone", "bob/desktop"]).await;
        net.send("alice/laptop", "bob", "before").await;
        let ev = net.settle().await;
        assert_eq!(count(&ev, "bob/phone", "before"), 1);
        let old = net.tag("bob/phone");

        // The phone is reinstalled: no state, new instance tag, new key, same label.
        net.disconnect("bob/phone").await;
        net.settle().await;
        net.wipe("bob/phone");
        net.connect("bob/phone").await;
        let ev = net.settle().await;
        let new = net.tag("bob/phone");
        assert_ne!(old, new);
        for dev in ["alice/laptop", "bob/desktop"] {
            assert!(
                ev.iter().any(|(d, e)| d == dev
                    && matches!(e, GlueEvent::DevicesChanged {
                        change: DeviceChange::Replaced { old: o, new: n }, ..
                    } if o.instance_tag() == old && n.instance_tag() == new)),
                "{dev} is told the phone was replaced: {ev:?}"
            );
            assert!(
                ev.iter().any(|(d, e)| d == dev
                    && matches!(e, GlueEvent::TrustChanged { device, trust: Trust::Changed, .. }
                        if *device == new)),
                "{dev}: the new key is a changed key, never silent"
            );
        }
        let alice = net.engine("alice/laptop").unwrap();
        assert!(
            alice
                .client()
                .conversation("bob@example.org", old)
                .is_none(),
            "the old session is retired"
        );
        assert!(!alice.devices_of("bob@example.org").contains(&old));

        // Until Alice accepts the new key, nothing goes to the new phone.
        net.send("alice/laptop", "bob", "held").await;
        let ev = net.settle().await;
        assert_eq!(count(&ev, "bob/desktop", "held"), 1);
        assert_eq!(count(&ev, "bob/phone", "held"), 0);
        assert!(ev.iter().any(|(d, e)| d == "alice/laptop"
            && matches!(e, GlueEvent::NotSent { device: Some(t), reason: NotSentReason::KeyChanged, .. } if *t == new)));
        net.act("alice/laptop", |e, t, rng| {
            e.accept_fingerprint("bob@example.org", new, t, rng)
        });
        net.settle().await;
        net.send("alice/laptop", "bob", "after").await;
        let ev = net.settle().await;
        assert_eq!(count(&ev, "bob/phone", "after"), 1, "{ev:?}");
        assert_eq!(count(&ev, "bob/desktop", "after"), 1);
        assert!(problems(&ev).is_empty(), "{:?}", problems(&ev));
    });
}
