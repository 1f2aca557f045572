//! The attacks of the xmpp-glue security review (issue 10), each performed through the
//! public API as an attacker would: a rogue device answering as a listed instance tag, a
//! rogue ensemble from the untrusted prekey server, a contact answering our IQs, a forged
//! MAM result and a forged carbon, a 20 000-deep stanza, a prekey server answering for
//! another domain, and a message from a device nobody listed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../examples/demo/main.rs"]
#[allow(dead_code)]
mod demo;

use demo::Net;
use demo::net_sim::{SimNet, policy};
use minidom::Element;
use otr4::InstanceTag;
use otr4::conversation::{Account, Client};
use otr4::crypto::ed448::KeyPair;
use otr4::crypto::keys::generate_forging_point;
use otr4::prekey::PrekeyStore;
use otr4::wire::encoded::{IncomingPrekey, classify_prekey, decode_prekey, encode_prekey};
use otr4::wire::prekey_messages::{NoPrekeyEnsembles, PrekeyServerMessage};
use xmpp_glue::devices::{DeviceEntry, DeviceList};
use xmpp_glue::engine::{GlueError, NotSentReason, ServerPin};
use xmpp_glue::stanza::{self, el};
use xmpp_glue::trust::Trust;
use xmpp_glue::xml::XmlError;
use xmpp_glue::{Engine, EngineConfig, GlueEvent, GlueState, Output, ns};

const NOW: i64 = 1_800_000_000;
const ALICE: &str = "alice@example.org";
const ALICE_FULL: &str = "alice@example.org/laptop";
const BOB: &str = "bob@example.org";
const MALLORY_FULL: &str = "mallory@example.org/m";

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn parse(xml: &str) -> Element {
    xml.parse().unwrap()
}

fn stanzas(outs: &[Output]) -> Vec<Element> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Stanza(s) => Some(s.clone()),
            Output::Event(_) => None,
        })
        .collect()
}

fn events(outs: Vec<Output>) -> Vec<GlueEvent> {
    outs.into_iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            Output::Stanza(_) => None,
        })
        .collect()
}

/// The id of the first outgoing iq with a child named `child`.
fn iq_id(outs: &[Output], child: &str) -> String {
    stanzas(outs)
        .into_iter()
        .find(|s| s.name() == "iq" && s.children().any(|c| c.name() == child))
        .and_then(|s| s.attr("id").map(str::to_owned))
        .unwrap_or_else(|| panic!("no <iq> with <{child}/> in {outs:?}"))
}

/// A fresh engine for Alice, with `state`.
fn alice(state: GlueState) -> (Engine, rand::rngs::ThreadRng) {
    let mut rng = rand::rng();
    let account = Account::generate(&mut rng, policy(), NOW).unwrap();
    let prekeys = PrekeyStore::new(account.instance_tag());
    let e = Engine::new(
        EngineConfig::new(ALICE, "laptop"),
        Client::new(account, ALICE),
        prekeys,
        state,
        &mut rng,
    );
    (e, rng)
}

/// A MAM `<fin/>` answering `id`, from `from` (None: our own server, no `from`).
fn mam_fin(id: &str, from: Option<&str>) -> Element {
    let from = from.map(|f| format!(" from='{f}'")).unwrap_or_default();
    parse(&format!(
        "<iq xmlns='jabber:client' type='result' id='{id}'{from} to='{ALICE_FULL}'>\
         <fin xmlns='urn:xmpp:mam:2' complete='true'><set xmlns='http://jabber.org/protocol/rsm'>\
         <last>archive-9</last></set></fin></iq>"
    ))
}

/// A device list of one device.
fn list_of(tag: u32, fp: &str) -> Element {
    DeviceList {
        devices: vec![DeviceEntry {
            tag,
            fingerprint: fp.to_owned(),
            label: "rogue".to_owned(),
            seen: NOW,
        }],
    }
    .to_element()
}

/// A pubsub items result carrying `devices`, answering `id`, from `from`.
fn items_result(id: &str, from: &str, devices: Element) -> Element {
    let mut item = el("item", ns::PUBSUB, &[("id", ns::DEVICES_ITEM)]);
    item.append_child(devices);
    let mut items = el("items", ns::PUBSUB, &[("node", ns::DEVICES_NODE)]);
    items.append_child(item);
    let mut ps = el("pubsub", ns::PUBSUB, &[]);
    ps.append_child(items);
    let mut iq = stanza::iq("result", id, Some(ALICE_FULL), ps);
    stanza::set_attr(&mut iq, "from", from);
    iq
}

/// A PEP notification of `owner`'s device list.
fn pep_event(owner: &str, devices: Element) -> Element {
    let mut item = el("item", ns::PUBSUB_EVENT, &[("id", ns::DEVICES_ITEM)]);
    item.append_child(devices);
    let mut items = el("items", ns::PUBSUB_EVENT, &[("node", ns::DEVICES_NODE)]);
    items.append_child(item);
    let mut ev = el("event", ns::PUBSUB_EVENT, &[]);
    ev.append_child(items);
    let mut m = el(
        "message",
        ns::CLIENT,
        &[("from", owner), ("to", ALICE), ("type", "headline")],
    );
    m.append_child(ev);
    m
}

/// `inner` wrapped as a MAM `<result/>` for `queryid`, the wrapper from `from`.
fn mam_result(queryid: &str, from: Option<&str>, inner: Element) -> Element {
    let mut fwd = el("forwarded", "urn:xmpp:forward:0", &[]);
    fwd.append_child(inner);
    let mut r = el(
        "result",
        "urn:xmpp:mam:2",
        &[("queryid", queryid), ("id", "archive-1")],
    );
    r.append_child(fwd);
    let mut m = el("message", ns::CLIENT, &[("to", ALICE_FULL)]);
    if let Some(f) = from {
        stanza::set_attr(&mut m, "from", f);
    }
    m.append_child(r);
    m
}

const ROGUE_FP: &str = "ab";

fn rogue_fp() -> String {
    ROGUE_FP.repeat(56)
}

// -------------------------------------------------------------------------------------
// A contact answering our IQs (ids are visible to contacts; replies bind to the sender).

#[test]
fn a_contact_cannot_answer_our_archive_query() {
    let (mut a, mut rng) = alice(GlueState::default());
    let outs = a.online(ALICE_FULL, NOW, &mut rng);
    let id = iq_id(&outs, "query");
    // Mallory answers first: "the archive is complete, it ends at archive-9".
    a.handle(&mam_fin(&id, Some(MALLORY_FULL)), NOW, &mut rng);
    assert!(!a.is_online(), "a contact ended our catch-up");
    assert_eq!(a.state().archive, xmpp_glue::engine::ArchivePos::Unknown);
    assert_eq!(a.stats().spoofed_replies, 1);
    // Our server's answer still counts.
    a.handle(&mam_fin(&id, None), NOW, &mut rng);
    assert!(a.is_online());
}

fn online_alice() -> (Engine, rand::rngs::ThreadRng, Vec<Output>) {
    let (mut a, mut rng) = alice(GlueState::default());
    let outs = a.online(ALICE_FULL, NOW, &mut rng);
    let id = iq_id(&outs, "query");
    let outs = a.handle(&mam_fin(&id, None), NOW, &mut rng);
    assert!(a.is_online());
    (a, rng, outs)
}

#[test]
fn a_contact_cannot_answer_for_another_contacts_device_list() {
    let (mut a, mut rng, _) = online_alice();
    let outs = a.send(BOB, "hello", NOW, &mut rng);
    let id = iq_id(&outs, "pubsub");
    let rogue = items_result(
        &id,
        "mallory@example.org",
        list_of(0x1234_5678, &rogue_fp()),
    );
    a.handle(&rogue, NOW, &mut rng);
    assert!(
        a.devices_of(BOB).is_empty(),
        "Mallory's list was taken for Bob's"
    );
    assert_eq!(a.stats().spoofed_replies, 1);
    // Bob's own answer is used.
    let real = items_result(&id, BOB, list_of(0x2222_2222, &"cd".repeat(56)));
    a.handle(&real, NOW, &mut rng);
    assert_eq!(a.devices_of(BOB), vec![InstanceTag(0x2222_2222)]);
}

#[test]
fn a_contact_cannot_answer_for_our_own_device_list() {
    let (mut a, mut rng, outs) = online_alice();
    let own = stanzas(&outs)
        .into_iter()
        .find(|s| s.attr("to") == Some(ALICE) && s.has_child("pubsub", ns::PUBSUB))
        .and_then(|s| s.attr("id").map(str::to_owned))
        .unwrap();
    a.handle(
        &items_result(
            &own,
            "mallory@example.org",
            list_of(0x1234_5678, &rogue_fp()),
        ),
        NOW,
        &mut rng,
    );
    assert!(a.devices_of(ALICE).is_empty());
    assert!(a.state().trust.fingerprint(ALICE, 0x1234_5678).is_none());
    assert_eq!(a.stats().spoofed_replies, 1);
}

#[test]
fn a_contact_cannot_pin_a_rogue_prekey_server_through_disco() {
    let (mut a, mut rng, outs) = online_alice();
    let disco = stanzas(&outs)
        .into_iter()
        .find(|s| s.attr("to") == Some("example.org") && s.has_child("query", ns::DISCO_ITEMS))
        .and_then(|s| s.attr("id").map(str::to_owned))
        .unwrap();
    let mut q = el("query", ns::DISCO_ITEMS, &[]);
    q.append_child(el("item", ns::DISCO_ITEMS, &[("jid", "evil.example.net")]));
    let mut rogue = stanza::iq("result", &disco, Some(ALICE_FULL), q);
    stanza::set_attr(&mut rogue, "from", MALLORY_FULL);
    let outs = a.handle(&rogue, NOW, &mut rng);
    assert!(
        stanzas(&outs)
            .iter()
            .all(|s| s.attr("to") != Some("evil.example.net")),
        "we asked Mallory's server for its identity"
    );
    assert_eq!(a.stats().spoofed_replies, 1);
    assert!(a.state().servers.is_empty());
}

#[test]
fn request_ids_are_not_derivable_from_message_ids() {
    let (mut a, mut rng, outs) = online_alice();
    let mut ids: Vec<String> = stanzas(&outs)
        .iter()
        .filter_map(|s| s.attr("id").map(str::to_owned))
        .collect();
    ids.extend(
        stanzas(&a.send(BOB, "x", NOW, &mut rng))
            .iter()
            .filter_map(|s| s.attr("id").map(str::to_owned)),
    );
    assert!(ids.len() >= 3);
    for id in &ids {
        assert_eq!(id.len(), 32, "{id}: 128 random bits");
    }
    // No shared prefix or counter: every pair differs in its first 8 hex digits (a
    // collision has probability ~ n² / 2³²).
    let mut prefixes: Vec<&str> = ids.iter().map(|i| &i[..8]).collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    assert_eq!(prefixes.len(), ids.len(), "{ids:?}");
}

// -------------------------------------------------------------------------------------
// Forged archive results and carbons.

#[test]
fn a_forged_archive_result_from_a_contact_is_ignored() {
    let state = GlueState {
        archive: xmpp_glue::engine::ArchivePos::Start,
        ..GlueState::default()
    };
    let (mut a, mut rng) = alice(state);
    let outs = a.online(ALICE_FULL, NOW, &mut rng);
    let queryid = stanzas(&outs)
        .into_iter()
        .find_map(|s| {
            s.get_child("query", "urn:xmpp:mam:2")
                .and_then(|q| q.attr("queryid").map(str::to_owned))
        })
        .unwrap();
    // Mallory wraps a device-list event "from" Bob and one "from" our own account.
    for owner in [BOB, ALICE] {
        let forged = mam_result(
            &queryid,
            Some(MALLORY_FULL),
            pep_event(owner, list_of(0x1234_5678, &rogue_fp())),
        );
        let outs = a.handle(&forged, NOW, &mut rng);
        assert!(stanzas(&outs).is_empty(), "the forgery made us publish");
    }
    assert!(a.devices_of(BOB).is_empty());
    assert!(a.devices_of(ALICE).is_empty());
    assert_eq!(a.stats().spoofed_forwards, 2);
    // The same result from our own archive (no `from`) is believed.
    let genuine = mam_result(
        &queryid,
        None,
        pep_event(BOB, list_of(0x2222_2222, &"cd".repeat(56))),
    );
    a.handle(&genuine, NOW, &mut rng);
    assert_eq!(a.devices_of(BOB), vec![InstanceTag(0x2222_2222)]);
}

#[test]
fn a_forged_carbon_is_counted_and_ignored() {
    let (mut a, mut rng, _) = online_alice();
    let inner = pep_event(BOB, list_of(0x1234_5678, &rogue_fp()));
    for kind in ["received", "sent"] {
        let mut fwd = el("forwarded", "urn:xmpp:forward:0", &[]);
        fwd.append_child(inner.clone());
        let mut wrap = el(kind, ns::CARBONS, &[]);
        wrap.append_child(fwd);
        let mut m = el(
            "message",
            ns::CLIENT,
            &[("from", MALLORY_FULL), ("to", ALICE_FULL), ("type", "chat")],
        );
        m.append_child(wrap);
        a.handle(&m, NOW, &mut rng);
    }
    assert!(a.devices_of(BOB).is_empty());
    assert_eq!(a.stats().spoofed_forwards, 2);
}

#[test]
fn a_device_list_event_from_a_full_jid_is_ignored() {
    let (mut a, mut rng, _) = online_alice();
    let mut ev = pep_event(BOB, list_of(0x1234_5678, &rogue_fp()));
    stanza::set_attr(&mut ev, "from", "bob@example.org/phone");
    a.handle(&ev, NOW, &mut rng);
    assert!(a.devices_of(BOB).is_empty());
    assert_eq!(a.stats().spoofed_lists, 1);
}

// -------------------------------------------------------------------------------------
// Bounded XML.

#[test]
fn a_stanza_nested_20_000_deep_is_refused_without_aborting() {
    let (mut a, mut rng, _) = online_alice();
    let mut xml = format!("<message xmlns='jabber:client' from='{BOB}/x'>");
    xml.push_str(&"<a>".repeat(20_000));
    xml.push_str(&"</a>".repeat(20_000));
    xml.push_str("</message>");
    let evs = events(a.handle_xml(&xml, NOW, &mut rng));
    assert!(
        evs.iter()
            .any(|e| matches!(e, GlueEvent::Error(GlueError::Xml(XmlError::TooDeep)))),
        "{evs:?}"
    );
    assert_eq!(a.stats().oversized_stanzas, 1);
    // The engine goes on: a normal stanza is still handled.
    let evs = events(a.handle_xml(
        &format!("<presence xmlns='jabber:client' from='{BOB}/x'/>"),
        NOW,
        &mut rng,
    ));
    assert!(evs.is_empty(), "{evs:?}");
}

// -------------------------------------------------------------------------------------
// A prekey server answering for another domain.

#[test]
fn a_prekey_server_of_another_domain_cannot_answer_for_bob() {
    let mut rng = rand::rng();
    let pin = |jid: &str| ServerPin {
        jid: jid.to_owned(),
        fingerprint: "00".repeat(56),
    };
    let mut state = GlueState::default();
    state
        .servers
        .insert("example.org".to_owned(), pin("prekey.example.org"));
    state
        .servers
        .insert("other.org".to_owned(), pin("prekey.other.org"));
    let (mut a, _) = alice(state);
    let outs = a.online(ALICE_FULL, NOW, &mut rng);
    a.handle(&mam_fin(&iq_id(&outs, "query"), None), NOW, &mut rng);
    // Bob lists one device, which is offline: Alice asks Bob's server for ensembles.
    let outs = a.send(BOB, "hello", NOW, &mut rng);
    let id = iq_id(&outs, "pubsub");
    let outs = a.handle(
        &items_result(&id, BOB, list_of(0x2222_2222, &"cd".repeat(56))),
        NOW,
        &mut rng,
    );
    let query = stanzas(&outs)
        .into_iter()
        .find(|s| s.attr("to") == Some("prekey.example.org"))
        .expect("an ensemble query to Bob's prekey server");
    assert!(stanza::body(&query).is_some());
    // The server pinned for other.org answers "no ensembles for Bob".
    let tag = a.tag();
    let answer = |from: &str| {
        let m = PrekeyServerMessage::NoPrekeyEnsembles(NoPrekeyEnsembles {
            receiver_tag: tag,
            identity: BOB.as_bytes().to_vec(),
            message: b"No Prekey Messages available for this identity".to_vec(),
        });
        let mut s = stanza::body_message(ALICE_FULL, "pk-1", &encode_prekey(&m.encode()));
        stanza::set_attr(&mut s, "from", from);
        s
    };
    let evs = events(a.handle(&answer("prekey.other.org"), NOW, &mut rng));
    assert!(
        !evs.iter().any(|e| matches!(e, GlueEvent::NotSent { .. })),
        "another domain's server answered for Bob: {evs:?}"
    );
    assert_eq!(a.stats().spoofed_prekey_replies, 1);
    // Bob's server's own answer is taken.
    let evs = events(a.handle(&answer("prekey.example.org"), NOW, &mut rng));
    assert!(
        evs.iter().any(|e| matches!(
            e,
            GlueEvent::NotSent {
                reason: NotSentReason::NoEnsembles,
                ..
            }
        )),
        "{evs:?}"
    );
}

// -------------------------------------------------------------------------------------
// Over the in-memory server: a rogue device with a listed tag, a rogue ensemble, an
// unlisted device, real carbons.

/// Drops a device's publications to its account's PEP (a rogue device that leaves the
/// device list alone, so only the key it answers with can give it away).
fn no_pep_publish(s: &Element) -> bool {
    !(s.name() == "iq"
        && s.attr("type") == Some("set")
        && (s.has_child("pubsub", ns::PUBSUB) || s.has_child("pubsub", ns::PUBSUB_OWNER)))
}

/// An account with the instance tag of `tag` but keys of its own.
fn rogue_account(tag: InstanceTag) -> Account {
    let mut rng = rand::rng();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    Account::from_keys(
        KeyPair::generate(&mut rng),
        generate_forging_point(&mut rng),
        None,
        tag,
        policy(),
        now,
    )
    .unwrap()
}

fn messages_at<'a>(ev: &'a [(String, GlueEvent)], dev: &str) -> Vec<&'a GlueEvent> {
    ev.iter()
        .filter(|(d, e)| d == dev && matches!(e, GlueEvent::Message { .. }))
        .map(|(_, e)| e)
        .collect()
}

#[test]
fn a_rogue_device_answering_as_a_listed_tag_gets_nothing_until_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = SimNet::new("example.org", dir.path());
    block(async {
        for d in ["alice/laptop", "bob/desk"] {
            net.connect(d).await;
            net.settle().await;
        }
        let desk = net.tag("bob/desk");
        assert_eq!(
            net.engine("alice/laptop").unwrap().devices_of(BOB),
            vec![desk]
        );
        net.disconnect("bob/desk").await;
        net.settle().await;
        // Anything that can send from bob@… comes online with the desk's tag.
        net.set_account("bob/evil", rogue_account(desk));
        net.set_filter("bob/evil", no_pep_publish);
        net.connect("bob/evil").await;
        net.settle().await;
        net.send("alice/laptop", "bob", "the first secret").await;
        let ev = net.settle().await;
        assert!(
            messages_at(&ev, "bob/evil").is_empty(),
            "the rogue device read the queued message: {ev:?}"
        );
        assert!(ev.iter().any(|(d, e)| d == "alice/laptop"
            && matches!(e, GlueEvent::TrustChanged { device, trust: Trust::Changed, .. } if *device == desk)));
        assert!(ev.iter().any(|(d, e)| d == "alice/laptop"
            && matches!(
                e,
                GlueEvent::NotSent {
                    reason: NotSentReason::HeldUntilAccepted,
                    ..
                }
            )));
        // What the rogue device says is shown with its state.
        net.send("bob/evil", "alice", "trust me").await;
        let ev = net.settle().await;
        let got = messages_at(&ev, "alice/laptop");
        assert!(!got.is_empty(), "{ev:?}");
        for m in got {
            assert!(
                matches!(
                    m,
                    GlueEvent::Message {
                        trust: Trust::Changed,
                        ..
                    }
                ),
                "{m:?}"
            );
        }
        // Nothing more leaves while the user has not decided …
        net.send("alice/laptop", "bob", "the second secret").await;
        let ev = net.settle().await;
        assert!(messages_at(&ev, "bob/evil").is_empty(), "{ev:?}");
        // … and accepting the new key is the user's explicit act, which releases them.
        net.act("alice/laptop", |e, t, rng| {
            e.accept_fingerprint(BOB, desk, t, rng)
        });
        let ev = net.settle().await;
        let texts: Vec<&str> = messages_at(&ev, "bob/evil")
            .into_iter()
            .filter_map(|m| match m {
                GlueEvent::Message { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert!(texts.contains(&"the first secret"), "{ev:?}");
    });
}

/// The prekey component answers ensemble queries, and everything `bob/evil` sends, from
/// a second (rogue) store: the untrusted server substitutes its own Client Profile.
fn substituting_server(dir: &std::path::Path, rogue_dir: &std::path::Path) -> SimNet {
    let rogue = demo::prekey::service("prekey.example.org", rogue_dir);
    SimNet::with_prekey_component("example.org", dir, move |real, jid| {
        Box::new(move |s: &Element| {
            let from_evil = s.attr("from").is_some_and(|f| f.ends_with("/evil"));
            let query = stanza::body(s).is_some_and(|b| {
                let bin = match classify_prekey(&b) {
                    Ok(IncomingPrekey::Encoded(b)) => Some(b),
                    Ok(IncomingPrekey::Fragment(_)) => None,
                    Err(_) => None,
                };
                bin.and_then(|b| PrekeyServerMessage::decode(&b).ok())
                    .is_some_and(|m| matches!(m, PrekeyServerMessage::EnsembleQuery(_)))
            });
            let _ = decode_prekey;
            if from_evil || query {
                demo::prekey::handle(&rogue, &jid, s)
            } else {
                demo::prekey::handle(&real, &jid, s)
            }
        })
    })
}

#[test]
fn a_rogue_ensemble_from_the_prekey_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let rogue_dir = tempfile::tempdir().unwrap();
    let mut net = substituting_server(dir.path(), rogue_dir.path());
    block(async {
        for d in ["alice/laptop", "bob/desk"] {
            net.connect(d).await;
            net.settle().await;
        }
        let desk = net.tag("bob/desk");
        net.disconnect("bob/desk").await;
        net.settle().await;
        // The server holds a Client Profile of its choosing under the desk's tag.
        net.set_account("bob/evil", rogue_account(desk));
        net.set_filter("bob/evil", no_pep_publish);
        net.connect("bob/evil").await;
        let ev = net.settle().await;
        assert!(
            ev.iter()
                .any(|(d, e)| d == "bob/evil" && matches!(e, GlueEvent::Published { .. })),
            "{ev:?}"
        );
        net.disconnect("bob/evil").await;
        // Alice sees the unavailable presence: the device is offline for her.
        net.settle().await;
        net.send("alice/laptop", "bob", "offline secret").await;
        let ev = net.settle().await;
        assert!(ev.iter().any(|(d, e)| d == "alice/laptop"
            && matches!(e, GlueEvent::NotSent { device: Some(t), reason: NotSentReason::KeyChanged, .. } if *t == desk)),
            "{ev:?}");
        assert!(
            !ev.iter()
                .any(|(_, e)| matches!(e, GlueEvent::Secure { .. })),
            "an offline session was started with the substituted key: {ev:?}"
        );
        assert_eq!(
            net.engine("alice/laptop")
                .unwrap()
                .stats()
                .rejected_ensembles,
            1
        );
        // The rogue device finds nothing for it when it comes back.
        net.connect("bob/evil").await;
        let ev = net.settle().await;
        assert!(messages_at(&ev, "bob/evil").is_empty(), "{ev:?}");
    });
}

#[test]
fn a_message_from_an_unlisted_device_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = SimNet::new("example.org", dir.path());
    block(async {
        for d in ["alice/laptop", "bob/desk"] {
            net.connect(d).await;
            net.settle().await;
        }
        net.set_filter("bob/ghost", no_pep_publish);
        net.connect("bob/ghost").await;
        net.settle().await;
        net.send("bob/ghost", "alice", "from nowhere").await;
        net.send("bob/desk", "alice", "from the desk").await;
        let ev = net.settle().await;
        let mut seen = 0;
        for m in messages_at(&ev, "alice/laptop") {
            if let GlueEvent::Message { text, listed, .. } = m {
                seen += 1;
                assert_eq!(*listed, text == "from the desk", "{m:?}");
            }
        }
        assert_eq!(seen, 2, "{ev:?}");
    });
}

#[test]
fn real_carbons_are_produced_and_never_processed() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = SimNet::new("example.org", dir.path());
    block(async {
        for d in ["alice/laptop", "alice/phone", "bob/desk"] {
            net.connect(d).await;
            net.settle().await;
        }
        net.submit_raw("alice/phone", stanza::enable_carbons("c1"));
        net.settle().await;
        net.server().set_logging(true);
        net.send("bob/desk", "alice", "once").await;
        let ev = net.settle().await;
        assert_eq!(messages_at(&ev, "alice/phone").len(), 1);
        // Bob's real stanza, sent again to the laptop's full JID without <private/>:
        // the server copies it to the phone as a "received" carbon.
        let original = net
            .server()
            .take_log()
            .into_iter()
            .find(|l| l.to == "alice@example.org/laptop" && l.stanza.has_child("otr4", ns::OTR4))
            .expect("Bob's message in the log")
            .stanza;
        let mut copy = el(
            "message",
            ns::CLIENT,
            &[("to", "alice@example.org/laptop"), ("type", "chat")],
        );
        for c in original.children() {
            if !c.is("private", ns::CARBONS) && !c.is("no-copy", "urn:xmpp:hints") {
                copy.append_child(c.clone());
            }
        }
        let before = net.server().stats().carbons;
        net.submit_raw("bob/desk", copy);
        let ev = net.settle().await;
        assert_eq!(
            net.server().stats().carbons,
            before + 1,
            "no carbon was produced"
        );
        let bad: Vec<_> = ev
            .iter()
            .filter(|(d, e)| {
                d == "alice/phone"
                    && matches!(
                        e,
                        GlueEvent::Message { .. }
                            | GlueEvent::Undecryptable { .. }
                            | GlueEvent::Error(_)
                    )
            })
            .collect();
        assert!(bad.is_empty(), "the carbon was processed: {bad:?}");
        assert_eq!(
            net.engine("alice/phone").unwrap().stats().spoofed_forwards,
            0
        );
    });
}

#[test]
fn the_pins_hold_after_a_restart_from_the_saved_state() {
    // The same rogue device, but Alice's device restarts (export, import) between pinning
    // Bob's key and the rogue's answer: the engine must give otr4 the pins again.
    let dir = tempfile::tempdir().unwrap();
    let mut net = SimNet::new("example.org", dir.path());
    block(async {
        for d in ["alice/laptop", "bob/desk"] {
            net.connect(d).await;
            net.settle().await;
        }
        let desk = net.tag("bob/desk");
        net.disconnect("bob/desk").await;
        net.disconnect("alice/laptop").await;
        net.settle().await;
        net.connect("alice/laptop").await;
        net.settle().await;
        assert_eq!(
            net.engine("alice/laptop").unwrap().devices_of(BOB),
            vec![desk]
        );
        net.set_account("bob/evil", rogue_account(desk));
        net.set_filter("bob/evil", no_pep_publish);
        net.connect("bob/evil").await;
        net.settle().await;
        net.send("alice/laptop", "bob", "after the restart").await;
        let ev = net.settle().await;
        assert!(messages_at(&ev, "bob/evil").is_empty(), "{ev:?}");
        assert!(
            ev.iter().any(|(d, e)| d == "alice/laptop"
                && matches!(
                    e,
                    GlueEvent::NotSent {
                        reason: NotSentReason::HeldUntilAccepted,
                        ..
                    }
                )),
            "{ev:?}"
        );
    });
}
