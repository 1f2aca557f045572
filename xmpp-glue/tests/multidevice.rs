//! Multi-device rules on the in-memory XMPP server with the real prekey server: the 9th
//! device is refused, a removed device gets nothing, an empty device list revokes nothing,
//! a restart mid-conversation loses nothing, carbons cause no duplicates.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use xmpp_sim::demo;

use demo::Net;
use demo::net_sim::SimNet;
use xmpp_glue::DeviceChange;
use xmpp_glue::GlueError;
use xmpp_glue::GlueEvent;
use xmpp_glue::stanza;

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// (device, sender bare JID, text) of every decrypted message.
fn messages(ev: &[(String, GlueEvent)]) -> Vec<(String, String, String)> {
    ev.iter()
        .filter_map(|(d, e)| match e {
            GlueEvent::Message { from, text, .. } => Some((d.clone(), from.clone(), text.clone())),
            _ => None,
        })
        .collect()
}

fn problems(ev: &[(String, GlueEvent)]) -> Vec<String> {
    ev.iter()
        .filter_map(|(d, e)| match e {
            GlueEvent::Undecryptable { .. } | GlueEvent::Error(_) => Some(format!("{d}: {e:?}")),
            _ => None,
        })
        .collect()
}

fn count(ev: &[(String, GlueEvent)], dev: &str, text: &str) -> usize {
    messages(ev)
        .iter()
        .filter(|(d, _, t)| d == dev && t == text)
        .count()
}

async fn up(net: &mut SimNet, devs: &[&str]) -> Vec<(String, GlueEvent)> {
    let mut all = Vec::new();
    for d in devs {
        net.connect(d).await;
        all.extend(net.settle().await);
    }
    all
}

#[test]
fn ninth_device_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = SimNet::new("example.org", dir.path());
    net.add_user("carol");
    block(async {
        let devs: Vec<String> = (1..=9).map(|i| format!("carol/d{i}")).collect();
        for (i, d) in devs.iter().enumerate() {
            net.connect(d).await;
            let ev = net.settle().await;
            let refused = ev.iter().any(|(dev, e)| {
                dev == d && matches!(e, GlueEvent::Error(GlueError::TooManyDevices(_)))
            });
            let listed = ev
                .iter()
                .any(|(dev, e)| dev == d && matches!(e, GlueEvent::Listed));
            if i < 8 {
                assert!(listed && !refused, "device {} should be listed", i + 1);
                // A device lists itself only after its prekeys are published.
                let at = |f: fn(&GlueEvent) -> bool| {
                    ev.iter().position(|(dev, e)| dev == d && f(e)).unwrap()
                };
                assert!(
                    at(|e| matches!(e, GlueEvent::Published { .. }))
                        < at(|e| matches!(e, GlueEvent::Listed))
                );
            } else {
                assert!(refused && !listed, "the 9th device must be refused");
                let msg = ev
                    .iter()
                    .find_map(|(_, e)| match e {
                        GlueEvent::Error(err @ GlueError::TooManyDevices(_)) => {
                            Some(err.to_string())
                        }
                        _ => None,
                    })
                    .unwrap();
                assert!(msg.contains("8 OTRv4 devices"), "{msg}");
            }
        }
        let list = net.engine("carol/d1").unwrap().state().own_list.clone();
        assert_eq!(list.devices.len(), 8);
    });
}

#[test]
fn removed_device_gets_no_new_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = SimNet::new("example.org", dir.path());
    block(async {
        up(&mut net, &["alice/laptop", "alice/phone", "bob/desktop"]).await;
        net.send("bob/desktop", "alice", "before").await;
        let ev = net.settle().await;
        assert_eq!(count(&ev, "alice/phone", "before"), 1);
        assert_eq!(count(&ev, "alice/laptop", "before"), 1);

        net.remove_device("alice/laptop", "alice/phone");
        let ev = net.settle().await;
        assert!(
            ev.iter().any(|(d, e)| d == "bob/desktop"
                && matches!(
                    e,
                    GlueEvent::DevicesChanged {
                        change: DeviceChange::Removed(_),
                        ..
                    }
                )),
            "Bob is told that Alice's device list lost a device"
        );
        assert!(
            ev.iter().any(|(d, e)| d == "alice/phone"
                && matches!(e, GlueEvent::Error(GlueError::DeviceRemoved))),
            "the removed device is told"
        );
        net.send("bob/desktop", "alice", "after").await;
        let ev = net.settle().await;
        assert_eq!(count(&ev, "alice/laptop", "after"), 1);
        assert_eq!(
            count(&ev, "alice/phone", "after"),
            0,
            "removed device got a message"
        );
        assert!(problems(&ev).is_empty(), "{:?}", problems(&ev));
    });
}

#[test]
fn device_list_change_is_an_event_and_an_empty_list_revokes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = SimNet::new("example.org", dir.path());
    block(async {
        up(&mut net, &["alice/laptop", "bob/desktop"]).await;
        net.send("alice/laptop", "bob", "one").await;
        let ev = net.settle().await;
        assert_eq!(count(&ev, "bob/desktop", "one"), 1);

        // Bob adds a device: Alice's laptop is told.
        let ev = up(&mut net, &["bob/tablet"]).await;
        assert!(ev.iter().any(|(d, e)| d == "alice/laptop"
            && matches!(e, GlueEvent::DevicesChanged { change: DeviceChange::Added(x), .. } if x.instance_tag() == net.tag("bob/tablet"))));

        // A hostile or broken client empties Bob's list.
        let empty = xmpp_glue::DeviceList::default().to_element();
        net.submit_raw("bob/tablet", stanza::publish_devices("raw-1", empty));
        let ev = net.settle().await;
        assert!(ev.iter().any(|(d, e)| d == "alice/laptop"
            && matches!(
                e,
                GlueEvent::DevicesChanged {
                    change: DeviceChange::Emptied,
                    ..
                }
            )));
        assert!(
            !ev.iter()
                .any(|(d, e)| d == "alice/laptop" && matches!(e, GlueEvent::TrustChanged { .. })),
            "an empty list must not change trust"
        );
        // Both devices are still written to.
        net.send("alice/laptop", "bob", "two").await;
        let ev = net.settle().await;
        assert_eq!(count(&ev, "bob/desktop", "two"), 1);
        assert_eq!(count(&ev, "bob/tablet", "two"), 1);
        assert!(problems(&ev).is_empty(), "{:?}", problems(&ev));
    });
}

#[test]
fn restart_mid_conversation_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = SimNet::new("example.org", dir.path());
    block(async {
        up(&mut net, &["alice/laptop", "bob/desktop"]).await;
        net.send("alice/laptop", "bob", "m1").await;
        net.settle().await;
        net.send("bob/desktop", "alice", "r1").await;
        net.settle().await;
        // Alice's laptop restarts (state exported, then imported); Bob writes meanwhile.
        net.disconnect("alice/laptop").await;
        net.settle().await;
        net.send("bob/desktop", "alice", "while-away").await;
        let ev = net.settle().await;
        assert!(problems(&ev).is_empty(), "{:?}", problems(&ev));
        net.connect("alice/laptop").await;
        let ev = net.settle().await;
        assert_eq!(count(&ev, "alice/laptop", "while-away"), 1);
        net.send("alice/laptop", "bob", "m2").await;
        net.send("bob/desktop", "alice", "r2").await;
        let ev = net.settle().await;
        assert_eq!(count(&ev, "bob/desktop", "m2"), 1);
        assert_eq!(count(&ev, "alice/laptop", "r2"), 1);
        assert!(problems(&ev).is_empty(), "{:?}", problems(&ev));
    });
}

#[test]
fn carbons_enabled_cause_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = SimNet::new("example.org", dir.path());
    block(async {
        let devs = ["alice/laptop", "alice/phone", "bob/desktop", "bob/tablet"];
        up(&mut net, &devs).await;
        for (i, d) in devs.iter().enumerate() {
            net.submit_raw(d, stanza::enable_carbons(&format!("carbons-{i}")));
        }
        net.settle().await;
        let mut all = Vec::new();
        for (dev, to, text) in [
            ("alice/laptop", "bob", "a1"),
            ("bob/tablet", "alice", "b1"),
            ("alice/phone", "bob", "a2"),
        ] {
            net.send(dev, to, text).await;
            all.extend(net.settle().await);
        }
        for (sender, text) in [
            ("alice/laptop", "a1"),
            ("bob/tablet", "b1"),
            ("alice/phone", "a2"),
        ] {
            for d in devs {
                let want = usize::from(d != sender);
                assert_eq!(count(&all, d, text), want, "{d} / {text}");
            }
        }
        assert!(problems(&all).is_empty(), "{:?}", problems(&all));
    });
}
