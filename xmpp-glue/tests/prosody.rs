//! The glue against a real XMPP server: Prosody 0.12 on loopback (PEP, MAM, carbons,
//! offline storage), the `prekey-server` binary as its component, and `XmppClient`s for
//! several devices of alice, bob and carol, each with its own store directory.
//!
//! Each `prosody_*` test starts a fresh Prosody (`prekey-server/tests/prosody/setup.sh`,
//! ports 15232 and 15357) and prekey server, then runs itself again in a child process
//! that trusts the test CA through `SSL_CERT_FILE` and finds Prosody's port in
//! `GLUE_TEST_C2S_PORT` (the harness: `support/mod.rs`, shared with `python_client.rs`).
//! The tests take a lock so only one Prosody runs at a time.
//!
//! The prekey-server binary next to this test's `deps/` directory
//! (`target/<profile>/prekey-server`) is used; `cargo test --workspace` builds it. Only if
//! it is missing is `cargo build -p prekey-server --bin prekey-server` run first.
//!
//! The tests are `#[ignore = "needs Prosody …"]`: a plain `cargo test` lists them as
//! ignored; `cargo test -p xmpp-glue --test prosody -- --ignored` (CI) runs them, and they
//! fail when Prosody cannot be started (it must be installed, or `XMPP_GLUE_PROSODY_TEST=1`
//! / `PREKEY_PROSODY_TEST=1` let setup.sh install it; root and setpriv are needed).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::needless_range_loop,
    missing_docs
)]

mod support;
use support::*;

use xmpp_sim::demo;

use std::time::{Duration, Instant};

use futures::StreamExt;
use otr4::InstanceTag;
use tokio_xmpp::connect::DnsConfig;
use tokio_xmpp::parsers::jid::Jid;
use tokio_xmpp::{Event, IqRequest, IqResponse};
use xmpp_glue::stanza;
use xmpp_glue::{DeviceChange, DeviceList};
use xmpp_glue::{GlueError, GlueEvent};

/// Starts alice/a1, a2 and bob/b1, b2 one after the other (each reads the device list
/// the previous one published), then waits until everyone knows everyone.
async fn four(env: &Env, carbons: bool) -> Vec<Dev> {
    let mut devs = Vec::new();
    for (u, r) in [
        ("alice", "a1"),
        ("alice", "a2"),
        ("bob", "b1"),
        ("bob", "b2"),
    ] {
        let mut d = Dev::start(env, u, r, carbons).await;
        d.ready().await;
        devs.push(d);
    }
    let tags = |u: &str, devs: &[Dev]| -> Vec<InstanceTag> {
        devs.iter()
            .filter(|d| d.bare().starts_with(u))
            .map(|d| d.tag)
            .collect()
    };
    let (at, bt) = (tags("alice", &devs), tags("bob", &devs));
    for d in devs.iter_mut() {
        let own: Vec<InstanceTag> = if d.bare().starts_with("alice") {
            &at
        } else {
            &bt
        }
        .iter()
        .copied()
        .filter(|t| *t != d.tag)
        .collect();
        let jid = d.bare().to_owned();
        d.knows(&jid, &own).await;
        // And the contact's devices (PEP notifications): a send before that would only
        // reach the devices the last notification listed.
        let (peer, theirs) = if jid.starts_with("alice") {
            ("bob@localhost", &bt)
        } else {
            ("alice@localhost", &at)
        };
        d.knows(peer, theirs).await;
    }
    devs
}

/// Everyone sends 3 messages in turn, back to back (so interactive DAKEs between the
/// same two devices cross); each reaches the 3 other devices once, in order.
async fn exchange(devs: &mut [Dev]) {
    let n = devs.len();
    for round in 0..3 {
        for i in 0..n {
            let to = if devs[i].bare().starts_with("alice") {
                "bob@localhost"
            } else {
                "alice@localhost"
            };
            let text = format!("{} #{round}", devs[i].name);
            devs[i].send(to, &text).await;
        }
    }
    for d in devs.iter_mut() {
        d.wait_msgs(3 * (n - 1)).await;
    }
    settle().await;
    for i in 0..n {
        devs[i].drain();
        assert_eq!(
            devs[i].msgs().len(),
            3 * (n - 1),
            "{}: {:#?}",
            devs[i].name,
            devs[i].msgs()
        );
        for j in 0..n {
            if i == j {
                continue;
            }
            let expected: Vec<String> = (0..3).map(|r| format!("{} #{r}", devs[j].name)).collect();
            assert_eq!(
                texts_from(&devs[i], &devs[j]),
                expected,
                "{} from {}",
                devs[i].name,
                devs[j].name
            );
        }
        // Copies from our own other devices say whom they were sent to.
        let own = devs[i].bare().to_owned();
        let peer = if own.starts_with("alice") {
            "bob@localhost"
        } else {
            "alice@localhost"
        };
        for m in devs[i].msgs() {
            if m.from == own {
                assert_eq!(m.sent_to.as_deref(), Some(peer), "{}: {m:?}", devs[i].name);
            } else {
                assert_eq!(m.sent_to, None);
            }
        }
        devs[i].assert_clean();
    }
}

async fn shutdown(devs: &mut [Dev]) {
    for d in devs.iter_mut() {
        if d.client.is_some() {
            d.disconnect().await;
        }
    }
}

#[test]
#[ignore = "needs Prosody (root, setpriv): cargo test -p xmpp-glue --test prosody -- --ignored"]
fn prosody_all_devices_online() {
    with_prosody("prosody_all_devices_online", &["Published {"], |env| {
        block(all_devices_online(env))
    });
}

async fn all_devices_online(env: Env) {
    let mut devs = four(&env, false).await;
    // Every device pinned the domain's prekey server, discovered over disco.
    for d in devs.iter_mut() {
        let fp = env.fingerprint.clone();
        d.wait_for("PrekeyServer", move |e| {
            matches!(e, GlueEvent::PrekeyServer(p) if p.jid == COMPONENT && p.fingerprint == fp)
        })
        .await;
    }
    exchange(&mut devs).await;
    shutdown(&mut devs).await;
}

#[test]
#[ignore = "needs Prosody (root, setpriv): cargo test -p xmpp-glue --test prosody -- --ignored"]
fn prosody_carbons_no_duplicates() {
    with_prosody("prosody_carbons_no_duplicates", &["Published {"], |env| {
        block(carbons_no_duplicates(env))
    });
}

async fn carbons_no_duplicates(env: Env) {
    let mut devs = four(&env, true).await;
    exchange(&mut devs).await;
    // Real carbons, a forged carbon and a 20 000-deep stanza, from a plain XMPP client of
    // Bob's account (anything that can log in as bob@…).
    let (a2, b1) = (devs[1].tag, devs[2].tag);
    let mut raw = raw_login(env.port, "bob@localhost/raw", &password("bob")).await;
    let hex = |t: InstanceTag| format!("{:08x}", t.0);
    // 1. A chat message to a1's full JID without <private/>: Prosody copies it to a2 as a
    //    "received" carbon (and to b1, b2 as "sent" carbons). Its payload is for a2: had a2
    //    processed the carbon, the garbage payload would be an Undecryptable event.
    let carried = format!(
        "<message xmlns='jabber:client' to='alice@localhost/a1' type='chat' id='c-1'>\
         <body>plain copy</body><otr4 xmlns='urn:xmpp:otr4:0' from-tag='{}'>\
         <payload to-tag='{}'>?OTR:AAQD.</payload></otr4></message>",
        hex(b1),
        hex(a2)
    );
    raw_send(&mut raw, &carried).await;
    // 2. A forged carbon: Bob wraps a message "from" a1 in <received/>.
    let forged = format!(
        "<message xmlns='jabber:client' to='alice@localhost/a2' type='chat' id='c-2'>\
         <received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
         <message xmlns='jabber:client' from='alice@localhost/a1' to='bob@localhost' type='chat'>\
         <otr4 xmlns='urn:xmpp:otr4:0' from-tag='{}'><payload to-tag='{}'>?OTR:AAQD.</payload></otr4>\
         </message></forwarded></received></message>",
        hex(devs[0].tag),
        hex(a2)
    );
    raw_send(&mut raw, &forged).await;
    raw.send_end().await.unwrap();
    // 3. A stanza nested 20 000 deep (≈ 140 KB, under Prosody's size limit). The attacker's
    //    own tokio-xmpp serialises it recursively, so it runs on a large stack.
    let deep = format!(
        "<message xmlns='jabber:client' to='alice@localhost/a1' type='chat' id='c-3'>{}{}</message>",
        "<a>".repeat(20_000),
        "</a>".repeat(20_000)
    );
    let port = env.port;
    tokio::task::spawn_blocking(move || {
        std::thread::Builder::new()
            .stack_size(1 << 30)
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let mut raw = raw_login(port, "bob@localhost/deep", &password("bob")).await;
                    raw_send(&mut raw, &deep).await;
                    raw.send_end().await.unwrap();
                });
            })
            .unwrap()
            .join()
            .unwrap();
    })
    .await
    .unwrap();
    // a2 saw and ignored a real carbon, and counted the forged one.
    let deadline = Instant::now() + STEP;
    loop {
        let st = devs[1].c().stats().await.unwrap();
        if st.carbons_ignored >= 1 && st.spoofed_forwards >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "a2 stats: {st:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bob_sent = devs[2].c().stats().await.unwrap();
    eprintln!("b1 after Bob's raw message: {bob_sent:?}");
    // Everyone is still alive and talks as before, without any error.
    devs[2].send("alice@localhost", "after the attacks").await;
    for i in [0, 1] {
        devs[i].wait_msgs(3 * 3 + 1).await;
    }
    // Prosody forwarded the deep stanza; a1's connection dropped it before tokio-xmpp parsed
    // it (crate::guard) and a1 lives on: it just received the message above.
    let a1 = devs[0].c().stats().await.unwrap();
    eprintln!("a1 after the deep stanza: {a1:?}");
    assert!(a1.oversized_stanzas >= 1, "{a1:?}");
    for i in [0, 1] {
        devs[i].assert_clean();
    }
    shutdown(&mut devs).await;
}

/// A plain tokio-xmpp client logged in as `jid` (an attacker's tool).
async fn raw_login(port: u16, jid: &str, pw: &str) -> tokio_xmpp::Client {
    let mut c = tokio_xmpp::Client::new_starttls(
        jid.parse::<Jid>().unwrap(),
        pw,
        DnsConfig::no_srv("127.0.0.1", port),
        Default::default(),
    );
    loop {
        match tokio::time::timeout(STEP, c.next())
            .await
            .expect("raw login timed out")
        {
            Some(Event::Online { .. }) => return c,
            Some(_) => {}
            None => panic!("raw client: stream ended"),
        }
    }
}

/// Sends one message stanza given as XML from a raw client.
async fn raw_send(c: &mut tokio_xmpp::Client, xml: &str) {
    let e: minidom::Element = xml.parse().unwrap();
    let m = tokio_xmpp::parsers::message::Message::try_from(e).unwrap();
    c.send_stanza(m.into()).await.unwrap();
}

#[test]
#[ignore = "needs Prosody (root, setpriv): cargo test -p xmpp-glue --test prosody -- --ignored"]
fn prosody_offline_device_catches_up() {
    with_prosody(
        "prosody_offline_device_catches_up",
        &["Published {", "EnsemblesSent"],
        |env| block(offline_device_catches_up(env)),
    );
}

async fn offline_device_catches_up(env: Env) {
    let mut devs = four(&env, false).await;
    let [a1, a2, b1, b2] = &mut devs[..] else {
        unreachable!()
    };
    // b2 goes away before anyone wrote to it: no session with it exists anywhere.
    a1.sees_online(b2, true).await;
    b2.disconnect().await;
    a1.sees_online(b2, false).await;
    a2.sees_online(b2, false).await;
    a1.send("bob@localhost", "one").await;
    a1.send("bob@localhost", "two").await;
    b1.wait_msgs(2).await;
    a2.wait_msgs(2).await;
    // Then b1 goes away too: the next messages go to offline storage and the archive.
    b1.disconnect().await;
    a1.sees_online(b1, false).await;
    a1.send("bob@localhost", "three").await;
    a1.send("bob@localhost", "four").await;
    a2.wait_msgs(4).await;
    let all: Vec<String> = ["one", "two", "three", "four"].map(String::from).to_vec();
    // b2 comes back from its store: MAM catch-up (and offline storage) deliver each once.
    b2.connect().await;
    b2.wait_msgs(4).await;
    b1.connect().await;
    b1.wait_msgs(4).await;
    settle().await;
    for d in [&mut *b1, &mut *b2, &mut *a2] {
        d.drain();
        assert_eq!(texts_from(d, a1), all, "{}", d.name);
        assert_eq!(
            d.msgs().len(),
            4,
            "{}: no duplicates: {:#?}",
            d.name,
            d.msgs()
        );
        d.assert_clean();
    }
    // b2 answers on the session the non-interactive DAKE established.
    b2.send("alice@localhost", "back").await;
    a1.wait_msgs(1).await;
    assert_eq!(texts_from(a1, b2), vec!["back".to_owned()]);
    a1.assert_clean();
    shutdown(&mut devs).await;
}

#[test]
#[ignore = "needs Prosody (root, setpriv): cargo test -p xmpp-glue --test prosody -- --ignored"]
fn prosody_ninth_device_refused_removed_device_silent() {
    with_prosody(
        "prosody_ninth_device_refused_removed_device_silent",
        &["Published {"],
        |env| block(ninth_device_refused_removed_device_silent(env)),
    );
}

async fn ninth_device_refused_removed_device_silent(env: Env) {
    let mut carol = Vec::new();
    for i in 1..=8 {
        let mut d = Dev::start(&env, "carol", &format!("c{i}"), false).await;
        d.ready().await;
        carol.push(d);
    }
    let tags: Vec<InstanceTag> = carol.iter().map(|d| d.tag).collect();
    let others: Vec<InstanceTag> = tags[1..].to_vec();
    carol[0].knows("carol@localhost", &others).await;
    // The 9th is refused.
    let mut c9 = Dev::start(&env, "carol", "c9", false).await;
    c9.wait_for("TooManyDevices", |e| {
        matches!(e, GlueEvent::Error(GlueError::TooManyDevices(_)))
    })
    .await;
    c9.drain();
    assert!(
        !c9.log.iter().any(|e| matches!(e, GlueEvent::Listed)),
        "the 9th device must not list itself"
    );
    c9.disconnect().await;
    // c1 removes c8; c8 learns it, and no longer gets copies.
    let c8_tag = tags[7];
    carol[0].c().remove_device(c8_tag).await.unwrap();
    carol[7]
        .wait_for("DeviceRemoved", |e| {
            matches!(e, GlueEvent::Error(GlueError::DeviceRemoved))
        })
        .await;
    carol[1]
        .wait_for("c8 removed", move |e| {
            matches!(e, GlueEvent::DevicesChanged { change: DeviceChange::Removed(d), .. } if d.tag == c8_tag.0)
        })
        .await;
    // Now carol writes to alice (who has no device: NotSent NoDevices is expected); her
    // own copies go to c2..c7 only.
    let mut alice = Dev::start(&env, "alice", "a1", false).await;
    alice.ready().await;
    carol[0].knows("carol@localhost", &tags[1..7]).await;
    carol[0].send("alice@localhost", "after removal").await;
    alice.wait_msgs(1).await;
    for d in carol[1..7].iter_mut() {
        d.wait_msgs(1).await;
        assert_eq!(d.msgs()[0].text, "after removal");
        assert_eq!(d.msgs()[0].sent_to.as_deref(), Some("alice@localhost"));
    }
    settle().await;
    carol[7].drain();
    assert!(
        carol[7].msgs().is_empty(),
        "the removed device got {:?}",
        carol[7].msgs()
    );
    assert!(
        !carol[0]
            .c()
            .devices_of("carol@localhost")
            .await
            .unwrap()
            .contains(&c8_tag),
        "c1 forgot c8"
    );
    shutdown(&mut carol).await;
    alice.disconnect().await;
}

#[test]
#[ignore = "needs Prosody (root, setpriv): cargo test -p xmpp-glue --test prosody -- --ignored"]
fn prosody_device_list_changes() {
    with_prosody("prosody_device_list_changes", &["Published {"], |env| {
        block(device_list_changes(env))
    });
}

async fn device_list_changes(env: Env) {
    let mut a1 = Dev::start(&env, "alice", "a1", false).await;
    a1.ready().await;
    let mut b1 = Dev::start(&env, "bob", "b1", false).await;
    b1.ready().await;
    a1.knows("bob@localhost", &[b1.tag]).await;
    // A new device of bob: a PEP notification, a DevicesChanged event and a TOFU pin.
    let mut b2 = Dev::start(&env, "bob", "b2", false).await;
    b2.ready().await;
    let t2 = b2.tag;
    a1.wait_for("b2 added", move |e| {
        matches!(e, GlueEvent::DevicesChanged { jid, change: DeviceChange::Added(d) } if jid == "bob@localhost" && d.tag == t2.0)
    })
    .await;
    a1.wait_for("b2 pinned", move |e| {
        matches!(e, GlueEvent::TrustChanged { jid, device, .. } if jid == "bob@localhost" && *device == t2)
    })
    .await;
    a1.send("bob@localhost", "before").await;
    b1.wait_msgs(1).await;
    b2.wait_msgs(1).await;
    // Bob's list is emptied by another (non-OTR) client of his: nothing is revoked.
    a1.drain();
    let trust_before = a1
        .log
        .iter()
        .filter(|e| matches!(e, GlueEvent::TrustChanged { .. }))
        .count();
    publish_raw(
        env.port,
        "bob@localhost/raw",
        "bobpass",
        DeviceList::default(),
    )
    .await;
    a1.wait_for("Emptied", |e| {
        matches!(e, GlueEvent::DevicesChanged { jid, change: DeviceChange::Emptied } if jid == "bob@localhost")
    })
    .await;
    a1.send("bob@localhost", "after").await;
    b1.wait_msgs(2).await;
    b2.wait_msgs(2).await;
    settle().await;
    a1.drain();
    let trust_after = a1
        .log
        .iter()
        .filter(|e| matches!(e, GlueEvent::TrustChanged { .. }))
        .count();
    assert_eq!(trust_before, trust_after, "an empty list changes no trust");
    assert!(
        !a1.log.iter().any(|e| matches!(
            e,
            GlueEvent::DevicesChanged {
                change: DeviceChange::Removed(_),
                ..
            }
        )),
        "an empty list removes nothing"
    );
    let mut known = a1.c().devices_of("bob@localhost").await.unwrap();
    known.sort();
    let mut expected = vec![b1.tag, b2.tag];
    expected.sort();
    assert_eq!(known, expected);
    for d in [&mut b1, &mut b2] {
        assert_eq!(
            texts_from(d, &a1),
            vec!["before".to_owned(), "after".to_owned()]
        );
        d.assert_clean();
    }
    a1.assert_clean();
    for d in [&mut a1, &mut b1, &mut b2] {
        d.disconnect().await;
    }
}

/// Publishes `list` on `jid`'s device-list node from a plain tokio-xmpp client.
async fn publish_raw(port: u16, jid: &str, pw: &str, list: DeviceList) {
    let mut c = tokio_xmpp::Client::new_starttls(
        jid.parse::<Jid>().unwrap(),
        pw,
        DnsConfig::no_srv("127.0.0.1", port),
        Default::default(),
    );
    loop {
        match tokio::time::timeout(STEP, c.next())
            .await
            .expect("raw login timed out")
        {
            Some(Event::Online { .. }) => break,
            Some(_) => {}
            None => panic!("raw client: stream ended"),
        }
    }
    let iq = stanza::publish_devices("raw-1", list.to_element());
    let pubsub = iq.children().next().unwrap().clone();
    let token = c.send_iq(None, IqRequest::Set(pubsub)).await;
    match tokio::time::timeout(STEP, token)
        .await
        .expect("publish timed out")
        .unwrap()
    {
        IqResponse::Result(_) => {}
        IqResponse::Error(e) => panic!("raw publish: {e:?}"),
    }
    c.send_end().await.unwrap();
}

#[test]
#[ignore = "needs Prosody (root, setpriv): cargo test -p xmpp-glue --test prosody -- --ignored"]
fn prosody_restart_mid_conversation() {
    with_prosody(
        "prosody_restart_mid_conversation",
        &["Published {"],
        |env| block(restart_mid_conversation(env)),
    );
}

async fn restart_mid_conversation(env: Env) {
    let mut a1 = Dev::start(&env, "alice", "a1", false).await;
    a1.ready().await;
    let mut b1 = Dev::start(&env, "bob", "b1", false).await;
    b1.ready().await;
    a1.knows("bob@localhost", &[b1.tag]).await;
    a1.send("bob@localhost", "1").await;
    b1.wait_msgs(1).await;
    b1.send("alice@localhost", "2").await;
    a1.wait_msgs(1).await;
    // Bob restarts; Alice writes meanwhile.
    b1.disconnect().await;
    a1.send("bob@localhost", "3").await;
    b1.connect().await;
    b1.wait_msgs(2).await;
    b1.send("alice@localhost", "4").await;
    a1.wait_msgs(2).await;
    // Alice restarts while Bob writes, and right after an exchange in flight.
    a1.disconnect().await;
    b1.send("alice@localhost", "5").await;
    a1.connect().await;
    a1.wait_msgs(3).await;
    a1.send("bob@localhost", "6").await;
    b1.wait_msgs(3).await;
    // Both restart once more, with nothing in flight, and talk again.
    a1.disconnect().await;
    b1.disconnect().await;
    a1.connect().await;
    b1.connect().await;
    a1.wait_for("Online", |e| matches!(e, GlueEvent::Online))
        .await;
    b1.wait_for("Online", |e| matches!(e, GlueEvent::Online))
        .await;
    a1.send("bob@localhost", "7").await;
    b1.send("alice@localhost", "8").await;
    a1.wait_msgs(4).await;
    b1.wait_msgs(4).await;
    settle().await;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(texts_from(&b1, &a1), s(&["1", "3", "6", "7"]));
    assert_eq!(texts_from(&a1, &b1), s(&["2", "4", "5", "8"]));
    a1.assert_clean();
    b1.assert_clean();
    a1.disconnect().await;
    b1.disconnect().await;
}

/// The README demo's `--xmpp` flag: the same scenario as the in-memory demo (Alice's
/// laptop and phone, Bob's desktop and tablet; online, offline via the prekey server, SMP,
/// the tablet back from offline) against this Prosody, with every check of the demo.
#[test]
#[ignore = "needs Prosody (root, setpriv): cargo test -p xmpp-glue --test prosody -- --ignored"]
fn prosody_demo_flag_runs_the_scenario() {
    with_prosody(
        "prosody_demo_flag_runs_the_scenario",
        &["Published {", "EnsemblesSent"],
        demo_flag,
    );
}

fn demo_flag(env: Env) {
    let args: Vec<String> = [
        "--xmpp".to_owned(),
        format!("127.0.0.1:{}", env.port),
        "--domain".to_owned(),
        "localhost".to_owned(),
        "--alice-password".to_owned(),
        password("alice"),
        "--bob-password".to_owned(),
        password("bob"),
    ]
    .into();
    let Ok(demo::Mode::Server(args)) = demo::parse_args(&args) else {
        panic!("the demo refused its --xmpp arguments");
    };
    assert!(
        demo::run_on_server(&args),
        "the demo's checks failed against Prosody"
    );
}

// ----------------------------------------------------------------------------------------
// Prekey-server key rotation (docs/operators.md §"Key rotation", §"Lost key").

/// The prekey server this scenario started in place of the harness's; killed on drop.
struct OwnServer(std::process::Child);

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The harness's prekey-server arguments for the server state under `env.dir`.
fn server_args(env: &Env) -> Vec<String> {
    let prosody = env.dir.join("prosody");
    let secret = std::fs::read_dir(&prosody)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .find_map(|cfg| {
            cfg.lines()
                .find_map(|l| l.trim().strip_prefix("component_secret = \""))
                .map(|rest| rest.trim_end_matches('"').to_owned())
        })
        .expect("component_secret in the Prosody configuration");
    let state = env.dir.join("server");
    [
        "--jid",
        COMPONENT,
        "--component-host",
        "127.0.0.1",
        "--component-port",
        COMPONENT_PORT,
        "--component-secret",
        &secret,
        "--key-file",
        &state.join("server.key").display().to_string(),
        "--database",
        &state.join("prekeys.db").display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// Stops the prekey server the harness started for this test (the process whose command
/// line names this test's key file) and waits until it has exited.
fn stop_harness_server(env: &Env) {
    let key = env
        .dir
        .join("server")
        .join("server.key")
        .display()
        .to_string();
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.iter().any(|a| a.ends_with(b"prekey-server"))
                    && args.contains(&key.as_bytes())
                    && !args.contains(&b"--print-fingerprint".as_slice())
            })
        })
        .collect();
    assert_eq!(pids.len(), 1, "the harness's prekey server: {pids:?}");
    let pid = pids[0];
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {pid}");
    let deadline = Instant::now() + STEP;
    // Gone, or a zombie waiting for the harness to reap it.
    while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    }) {
        assert!(
            Instant::now() < deadline,
            "prekey server {pid} did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the prekey server once with `extra` arguments; its standard output.
fn server_once(env: &Env, extra: &[&str]) -> String {
    let o = std::process::Command::new(prekey_server_bin())
        .args(server_args(env))
        .args(extra)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "prekey-server {extra:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Starts the prekey server again (log `name`), connected to Prosody.
fn start_server(env: &Env, name: &str) -> (OwnServer, std::path::PathBuf) {
    let log_path = env.dir.join(name);
    let log = std::fs::File::create(&log_path).unwrap();
    let child = std::process::Command::new(prekey_server_bin())
        .args(server_args(env))
        .stderr(log)
        .spawn()
        .unwrap();
    let mut s = OwnServer(child);
    wait_for_log(&log_path, "component connected", &mut s.0);
    (s, log_path)
}

/// Alice and Bob ready, Alice knows Bob's device; then both go offline.
async fn two_then_offline(env: &Env) -> (Dev, Dev) {
    let mut a1 = Dev::start(env, "alice", "a1", false).await;
    a1.ready().await;
    let mut b1 = Dev::start(env, "bob", "b1", false).await;
    b1.ready().await;
    a1.knows("bob@localhost", &[b1.tag]).await;
    b1.disconnect().await;
    a1.disconnect().await;
    (a1, b1)
}

/// Bob (offline) gets `text` from Alice through the prekey server, once.
async fn offline_message_arrives(a1: &mut Dev, b1: &mut Dev, text: &str) {
    a1.sees_online(b1, false).await;
    a1.send("bob@localhost", text).await;
    // Alice's side of the non-interactive DAKE: the ensemble came and the text went out.
    a1.wait_for("Secure (non-interactive) with bob", |e| {
        matches!(
            e,
            GlueEvent::Secure {
                non_interactive: true,
                ..
            }
        )
    })
    .await;
    b1.connect().await;
    b1.wait_msgs(1).await;
    settle().await;
    b1.drain();
    assert_eq!(texts_from(b1, a1), vec![text.to_owned()]);
    assert!(
        b1.log.iter().any(|e| matches!(
            e,
            GlueEvent::Secure {
                non_interactive: true,
                ..
            }
        )),
        "the session came from the non-interactive DAKE: {:#?}",
        b1.log
    );
}

fn no_errors(d: &mut Dev) {
    d.drain();
    for e in &d.log {
        assert!(
            !matches!(e, GlueEvent::Error(_) | GlueEvent::NotSent { .. }),
            "{}: unexpected {e:?}",
            d.name
        );
    }
}

/// (a) The operator rotates the key (`--rotate-key`) and restarts the server: clients
/// verify the announcement signed by the pinned key, re-pin with an event, publish to the
/// new key, and an offline message still goes through the prekey server.
#[test]
#[ignore = "needs Prosody (root, setpriv): cargo test -p xmpp-glue --test prosody -- --ignored"]
fn prosody_prekey_server_key_rotation_repins() {
    with_prosody(
        "prosody_prekey_server_key_rotation_repins",
        &["Published {"],
        |env| block(key_rotation_repins(env)),
    );
}

async fn key_rotation_repins(env: Env) {
    let (mut a1, mut b1) = two_then_offline(&env).await;
    stop_harness_server(&env);
    let out = server_once(&env, &["--rotate-key"]);
    let new_fp = out
        .lines()
        .find_map(|l| l.strip_prefix("new fingerprint: "))
        .unwrap()
        .to_ascii_lowercase();
    assert_ne!(new_fp, env.fingerprint);
    let (_server, log) = start_server(&env, "server-rotated.log");
    a1.connect().await;
    let old = env.fingerprint.clone();
    let want = new_fp.clone();
    a1.wait_for("PrekeyServerKeyRotated", move |e| {
        matches!(e, GlueEvent::PrekeyServerKeyRotated { domain, old: o, new }
            if domain == "localhost" && *o == old && *new == want)
    })
    .await;
    // Alice's own exchange with the new key works (storage status or publication).
    offline_message_arrives(&mut a1, &mut b1, "after the rotation").await;
    let want = new_fp.clone();
    b1.wait_for(
        "PrekeyServerKeyRotated (bob)",
        move |e| matches!(e, GlueEvent::PrekeyServerKeyRotated { new, .. } if *new == want),
    )
    .await;
    no_errors(&mut a1);
    no_errors(&mut b1);
    for d in [&a1, &b1] {
        let c = d.c();
        assert_eq!(c.stats().await.unwrap().spoofed_replies, 0);
    }
    a1.disconnect().await;
    b1.disconnect().await;
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("announcing a key rotation"), "{log}");
    assert!(log.contains("EnsemblesSent"), "{log}");
}

/// (b) The key is lost: the server comes back with a brand-new key and no announcement.
/// Clients show the change, refuse offline messages to the domain with a clear reason, and
/// after the user accepts the new fingerprint (here while offline, through the store, as
/// after an out-of-band announcement) offline messaging works again.
#[test]
#[ignore = "needs Prosody (root, setpriv): cargo test -p xmpp-glue --test prosody -- --ignored"]
fn prosody_prekey_server_key_lost_then_accepted() {
    with_prosody(
        "prosody_prekey_server_key_lost_then_accepted",
        &["Published {"],
        |env| block(key_lost_then_accepted(env)),
    );
}

async fn key_lost_then_accepted(env: Env) {
    let (mut a1, mut b1) = two_then_offline(&env).await;
    stop_harness_server(&env);
    let key = env.dir.join("server").join("server.key");
    std::fs::rename(&key, key.with_extension("lost")).unwrap();
    let new_fp = server_once(&env, &["--print-fingerprint"])
        .trim()
        .to_ascii_lowercase();
    assert_ne!(new_fp, env.fingerprint);
    let (_server, _log) = start_server(&env, "server-new-key.log");
    a1.connect().await;
    let (pinned, offered) = (env.fingerprint.clone(), new_fp.clone());
    a1.wait_for("PrekeyServerKeyChanged", move |e| {
        matches!(e, GlueEvent::PrekeyServerKeyChanged { domain, pinned: p, offered: o }
            if domain == "localhost" && *p == pinned && *o == offered)
    })
    .await;
    a1.sees_online(&b1, false).await;
    a1.send("bob@localhost", "refused").await;
    a1.wait_for("NotSent(PrekeyServerKeyChanged)", |e| {
        matches!(
            e,
            GlueEvent::NotSent {
                reason: xmpp_glue::NotSentReason::PrekeyServerKeyChanged,
                ..
            }
        )
    })
    .await;
    let shown = a1
        .log
        .iter()
        .find_map(|e| match e {
            GlueEvent::NotSent { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .unwrap();
    assert!(shown.contains("accept the new key"), "{shown}");
    // The user compares the fingerprint with the operator's and accepts it.
    a1.disconnect().await;
    {
        let store =
            xmpp_glue::store::Store::open(&a1.store, xmpp_glue::store::KeySource::KeyFile).unwrap();
        let mut rng = rand::rng();
        let config = xmpp_glue::EngineConfig::new("alice@localhost", "a1");
        let mut engine = store
            .load_or_create(config, xmpp_glue::client::unix_now(), &mut rng)
            .unwrap();
        engine
            .accept_prekey_server_key(
                "localhost",
                &new_fp.to_uppercase(),
                xmpp_glue::client::unix_now(),
                &mut rng,
            )
            .unwrap();
        store.save(&engine, &mut rng).unwrap();
        assert_eq!(engine.state().servers["localhost"].fingerprint, new_fp);
    }
    a1.connect().await;
    a1.wait_for("Online", |e| matches!(e, GlueEvent::Online))
        .await;
    offline_message_arrives(&mut a1, &mut b1, "after accepting").await;
    // Bob's client holds the domain too until he accepts.
    b1.wait_for("PrekeyServerKeyChanged (bob)", |e| {
        matches!(e, GlueEvent::PrekeyServerKeyChanged { .. })
    })
    .await;
    a1.drain();
    let after: Vec<&GlueEvent> = a1.log[a1.mark..].iter().collect();
    assert!(
        !after.iter().any(|e| matches!(
            e,
            GlueEvent::PrekeyServerKeyChanged { .. }
                | GlueEvent::Error(_)
                | GlueEvent::NotSent { .. }
        )),
        "after accepting: {after:#?}"
    );
    a1.disconnect().await;
    b1.disconnect().await;
}

// -------------------------------------------------------------------------------------
// Self-healing sessions (docs/spec-notes.md §"Self-healing sessions").

/// Copies the store directory `from` to `to` (a backup, or restoring one).
fn copy_store(from: &std::path::Path, to: &std::path::Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Starts alice/a1 and bob/b1 and waits until each knows the other.
async fn pair(env: &Env) -> (Dev, Dev) {
    let mut a1 = Dev::start(env, "alice", "a1", false).await;
    a1.ready().await;
    let mut b1 = Dev::start(env, "bob", "b1", false).await;
    b1.ready().await;
    a1.knows("bob@localhost", &[b1.tag]).await;
    b1.knows("alice@localhost", &[a1.tag]).await;
    (a1, b1)
}

/// Looks only at the events from now on.
fn from_now(d: &mut Dev) {
    d.drain();
    d.mark = d.log.len();
}

#[test]
#[ignore = "needs Prosody (root, setpriv): cargo test -p xmpp-glue --test prosody -- --ignored"]
fn prosody_restored_backup_session_repaired() {
    with_prosody(
        "prosody_restored_backup_session_repaired",
        &["Published {"],
        |env| block(restored_backup_session_repaired(env)),
    );
}

async fn restored_backup_session_repaired(env: Env) {
    let (mut a1, mut b1) = pair(&env).await;
    a1.send("bob@localhost", "m1").await;
    b1.wait_msgs(1).await;
    b1.send("alice@localhost", "r1").await;
    a1.wait_msgs(1).await;
    // Bob backs his device up, then both ratchets move on.
    b1.disconnect().await;
    let backup = env.dir.join("backup-bob-b1");
    copy_store(&b1.store, &backup);
    b1.connect().await;
    b1.wait_for("Online", |e| matches!(e, GlueEvent::Online))
        .await;
    a1.send("bob@localhost", "m2").await;
    b1.wait_msgs(2).await;
    b1.send("alice@localhost", "r2").await;
    a1.wait_msgs(2).await;
    // The device is restored from the backup.
    b1.disconnect().await;
    copy_store(&backup, &b1.store);
    b1.connect().await;
    b1.wait_for("Online", |e| matches!(e, GlueEvent::Online))
        .await;
    a1.sees_online(&b1, true).await;
    from_now(&mut a1);
    from_now(&mut b1);
    a1.send("bob@localhost", "m3").await;
    b1.wait_for("Undecryptable with the message id", |e| {
        matches!(
            e,
            GlueEvent::Undecryptable {
                message: Some(_),
                ..
            }
        )
    })
    .await;
    a1.wait_for("SessionRepair (interactive)", |e| {
        matches!(
            e,
            GlueEvent::SessionRepair {
                action: xmpp_glue::RepairAction::Interactive,
                message: Some(_),
                ..
            }
        )
    })
    .await;
    a1.wait_for("the new session", |e| matches!(e, GlueEvent::Secure { .. }))
        .await;
    b1.wait_for("the new session", |e| matches!(e, GlueEvent::Secure { .. }))
        .await;
    let lost = |d: &Dev| -> Vec<Option<String>> {
        d.log[d.mark..]
            .iter()
            .filter_map(|e| match e {
                GlueEvent::Undecryptable { message, .. } => Some(message.clone()),
                GlueEvent::SessionRepair { message, .. } => Some(message.clone()),
                _ => None,
            })
            .collect()
    };
    a1.send("bob@localhost", "after-repair").await;
    b1.wait_for(
        "after-repair",
        |e| matches!(e, GlueEvent::Message { text, .. } if text == "after-repair"),
    )
    .await;
    b1.send("alice@localhost", "reply-after-repair").await;
    a1.wait_for(
        "reply-after-repair",
        |e| matches!(e, GlueEvent::Message { text, .. } if text == "reply-after-repair"),
    )
    .await;
    settle().await;
    a1.drain();
    b1.drain();
    // One event each side, naming the same message; nothing read twice, m3 never re-sent.
    assert_eq!(lost(&a1).len(), 1, "{:#?}", &a1.log[a1.mark..]);
    assert_eq!(lost(&a1), lost(&b1));
    let since = |d: &Dev, t: &str| {
        d.log[d.mark..]
            .iter()
            .filter(|e| matches!(e, GlueEvent::Message { text, .. } if text == t))
            .count()
    };
    assert_eq!(since(&b1, "m3"), 0);
    assert_eq!(since(&b1, "after-repair"), 1);
    assert_eq!(since(&a1, "reply-after-repair"), 1);
    shutdown(&mut [a1, b1]).await;
}

#[test]
#[ignore = "needs Prosody (root, setpriv): cargo test -p xmpp-glue --test prosody -- --ignored"]
fn prosody_reinstalled_device_retired_and_trusted_again() {
    with_prosody(
        "prosody_reinstalled_device_retired_and_trusted_again",
        &["Published {"],
        |env| block(reinstalled_device_retired_and_trusted_again(env)),
    );
}

async fn reinstalled_device_retired_and_trusted_again(env: Env) {
    let (mut a1, mut b1) = pair(&env).await;
    a1.send("bob@localhost", "before").await;
    b1.wait_msgs(1).await;
    let old = b1.tag;
    // Bob's device loses everything and is installed again under the same label.
    b1.disconnect().await;
    std::fs::remove_dir_all(&b1.store).unwrap();
    b1.tag = InstanceTag(0);
    from_now(&mut a1);
    b1.connect().await;
    b1.ready().await;
    let new = b1.tag;
    assert_ne!(old, new);
    a1.wait_for("Replaced", |e| {
        matches!(e, GlueEvent::DevicesChanged {
            change: DeviceChange::Replaced { old: o, new: n }, ..
        } if o.instance_tag() == old && n.instance_tag() == new)
    })
    .await;
    a1.wait_for("the new key is a changed key", |e| {
        matches!(e, GlueEvent::TrustChanged { device, trust: xmpp_glue::Trust::Changed, .. } if *device == new)
    })
    .await;
    let known = a1.c().devices_of("bob@localhost").await.unwrap();
    assert_eq!(known, vec![new], "the old device is retired");
    a1.c()
        .accept_fingerprint("bob@localhost", new)
        .await
        .unwrap();
    a1.send("bob@localhost", "after").await;
    b1.wait_for(
        "after",
        |e| matches!(e, GlueEvent::Message { text, .. } if text == "after"),
    )
    .await;
    shutdown(&mut [a1, b1]).await;
}
