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

use xmpp_sim::demo;

use demo::Net;
use demo::net_sim::{SimNet, policy};
use minidom::Element;
use otr4::InstanceTag;
use otr4::PrekeyServerMessage;
use otr4::PrekeyStore;
use otr4::hazmat::crypto::ed448::KeyPair;
use otr4::hazmat::crypto::keys::generate_forging_point;
use otr4::hazmat::prekey::messages::{EnsembleRetrieval, NoPrekeyEnsembles};
use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::encoded::{IncomingPrekey, classify_prekey, decode_prekey, encode_prekey};
use otr4::{Account, Client};
use xmpp_glue::Trust;
use xmpp_glue::XmlError;
use xmpp_glue::stanza::{self, el};
use xmpp_glue::{DeviceChange, DeviceEntry, DeviceList};
use xmpp_glue::{Engine, EngineConfig, GlueEvent, GlueState, Output, ns};
use xmpp_glue::{GlueError, NotSentReason, ServerPin};

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
            _ => None,
        })
        .collect()
}

fn events(outs: Vec<Output>) -> Vec<GlueEvent> {
    outs.into_iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
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
    assert_eq!(a.state().archive, xmpp_glue::ArchivePos::Unknown);
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
        archive: xmpp_glue::ArchivePos::Start,
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
    assert_eq!(
        a.stats().carbons_ignored,
        0,
        "a forgery counted as a carbon"
    );
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
// Downgrade to OTRv3.

/// The first key of the libotr key file otr4's key-migration test keeps.
fn otrv3_key() -> otr4::otrv3::DsaPrivateKey {
    let file = include_bytes!("../../otr4/src/v3/testdata/two.private_key");
    otr4::otrv3::read_private_keys(file).unwrap().remove(0).key
}

/// Plain bodies (OTRv3 text) going out.
fn plain_bodies(outs: &[Output]) -> Vec<(String, String)> {
    stanzas(outs)
        .into_iter()
        .filter(|s| s.name() == "message" && s.get_child("otr4", ns::OTR4).is_none())
        .filter_map(|s| Some((s.attr("to")?.to_owned(), stanza::body(&s)?)))
        .collect()
}

#[test]
fn a_contact_with_otrv4_devices_cannot_be_downgraded_to_otrv3() {
    let (mut a, mut rng, _) = online_alice();
    a.enable_otrv3(otrv3_key()).unwrap();
    a.handle(
        &pep_event(BOB, list_of(0x1234_5678, &rogue_fp())),
        NOW,
        &mut rng,
    );
    assert_eq!(a.devices_of(BOB), vec![InstanceTag(0x1234_5678)]);
    // Whoever controls the server sends, as bob, a query offering OTRv3 only: nothing goes
    // out (an OTRv3 AKE would let them in with a DSA key of their own).
    let query = |from: &str| {
        parse(&format!(
            "<message xmlns='jabber:client' from='{from}/pidgin' to='{ALICE_FULL}' type='chat'>\
             <body>?OTRv3?</body></message>"
        ))
    };
    let outs = a.handle(&query(BOB), NOW, &mut rng);
    assert!(plain_bodies(&outs).is_empty(), "{outs:?}");
    assert_eq!(a.stats().otrv3_refused, 1);
    // A contact without OTRv4 devices gets the OTRv3 D-H Commit, as a plain body.
    let outs = a.handle(&query("carol@example.org"), NOW, &mut rng);
    let bodies = plain_bodies(&outs);
    assert_eq!(bodies.len(), 1, "{outs:?}");
    assert_eq!(bodies[0].0, "carol@example.org");
    assert!(
        bodies[0].1.starts_with("?OTR:AAMC"),
        "a v3 D-H Commit: {bodies:?}"
    );
    assert_eq!(a.stats().otrv3_refused, 1);
    // The same query from the archive (MAM catch-up) is not answered.
    let outs = a.handle(
        &mam_result("q", None, query("dave@example.org")),
        NOW,
        &mut rng,
    );
    assert!(plain_bodies(&outs).is_empty(), "{outs:?}");
}

// -------------------------------------------------------------------------------------
// "Not encrypted for this device" only for messages to our account.

#[test]
fn a_message_our_account_sent_to_a_contact_is_not_one_that_left_us_out() {
    let (mut a, mut rng, _) = online_alice();
    let me = a.tag();
    // Another device of ours wrote to bob (naming bob's devices); the stanza comes back to
    // us, e.g. from our archive. It was never meant to name us.
    let stanza = |to: &str| {
        parse(&format!(
            "<message xmlns='jabber:client' from='{ALICE}/phone' to='{to}' type='chat'>\
             <otr4 xmlns='urn:xmpp:otr4:0' from-tag='12345678' devices='11111111'>\
             <payload to-tag='11111111'>?OTR:AAQD.</payload></otr4></message>"
        ))
    };
    let left_out = |outs: Vec<Output>| {
        events(outs)
            .into_iter()
            .any(|e| matches!(e, GlueEvent::NotForThisDevice { .. }))
    };
    assert_ne!(me, InstanceTag(0x1111_1111));
    assert!(!left_out(a.handle(&stanza(BOB), NOW, &mut rng)));
    // The same to our own account does leave this device out.
    assert!(left_out(a.handle(&stanza(ALICE), NOW, &mut rng)));
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
    let answer = |from: &str| no_ensembles(tag, BOB, from);
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

/// The control of the test above: the honest server's ensemble for the pinned key is used,
/// and the device reads the message when it comes back.
#[test]
fn an_ensemble_with_the_pinned_key_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = SimNet::new("example.org", dir.path());
    block(async {
        for d in ["alice/laptop", "bob/desk"] {
            net.connect(d).await;
            net.settle().await;
        }
        net.disconnect("bob/desk").await;
        net.settle().await;
        net.send("alice/laptop", "bob", "offline hello").await;
        let ev = net.settle().await;
        assert!(
            !ev.iter()
                .any(|(_, e)| matches!(e, GlueEvent::NotSent { .. })),
            "{ev:?}"
        );
        let a = net.engine("alice/laptop").unwrap().stats();
        assert_eq!(a.rejected_ensembles, 0);
        net.connect("bob/desk").await;
        let ev = net.settle().await;
        let texts: Vec<&str> = messages_at(&ev, "bob/desk")
            .into_iter()
            .filter_map(|m| match m {
                GlueEvent::Message { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(texts, ["offline hello"], "{ev:?}");
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
            if let GlueEvent::Message {
                text,
                listed,
                trust,
                sent_to,
                ..
            } = m
            {
                seen += 1;
                assert_eq!(*listed, text == "from the desk", "{m:?}");
                assert_eq!(*sent_to, None, "only our own copies say whom they went to");
                // Both keys were pinned on first use; neither changed.
                assert_eq!(*trust, Trust::Tofu, "{m:?}");
            }
        }
        assert_eq!(seen, 2, "{ev:?}");
    });
}

/// The same rule for our own account: a copy from our other listed device is `listed`,
/// one from a device of our account that is on no list is not.
#[test]
fn a_message_from_an_unlisted_device_of_our_own_account_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = SimNet::new("example.org", dir.path());
    block(async {
        for d in ["alice/laptop", "alice/phone", "bob/desk"] {
            net.connect(d).await;
            net.settle().await;
        }
        net.set_filter("alice/ghost", no_pep_publish);
        net.connect("alice/ghost").await;
        net.settle().await;
        net.send("alice/ghost", "bob", "from nowhere").await;
        net.send("alice/phone", "bob", "from the phone").await;
        let ev = net.settle().await;
        let mut seen = Vec::new();
        for m in messages_at(&ev, "alice/laptop") {
            if let GlueEvent::Message {
                text,
                listed,
                trust,
                sent_to,
                ..
            } = m
            {
                seen.push(text.as_str());
                assert_eq!(*listed, text == "from the phone", "{m:?}");
                assert_eq!(*trust, Trust::Tofu, "{m:?}");
                // Inside the encryption, our own copies say whom they went to.
                assert_eq!(sent_to.as_deref(), Some(BOB), "{m:?}");
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, ["from nowhere", "from the phone"], "{ev:?}");
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
        let phone = net.engine("alice/phone").unwrap().stats();
        assert_eq!((phone.spoofed_forwards, phone.carbons_ignored), (0, 1));
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

/// Our own domain's server is trusted for our own exchanges only: it cannot answer a query
/// that went to the server of a contact at another domain.
#[test]
fn our_own_prekey_server_cannot_answer_for_a_contact_at_another_domain() {
    const CAROL: &str = "carol@other.org";
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
    let outs = a.send(CAROL, "hello", NOW, &mut rng);
    let id = iq_id(&outs, "pubsub");
    let outs = a.handle(
        &items_result(&id, CAROL, list_of(0x3333_3333, &"cd".repeat(56))),
        NOW,
        &mut rng,
    );
    assert!(
        stanzas(&outs)
            .iter()
            .any(|s| s.attr("to") == Some("prekey.other.org")),
        "an ensemble query to Carol's prekey server: {outs:?}"
    );
    // Our own server answers with ensembles (any: they come from the test vectors)...
    let tag = a.tag();
    let retrieval = from_server(&vector_ensembles(tag, CAROL), "prekey.example.org");
    let evs = events(a.handle(&retrieval, NOW, &mut rng));
    assert!(evs.is_empty(), "{evs:?}");
    assert_eq!(a.stats().spoofed_prekey_replies, 1);
    assert_eq!(
        a.stats().rejected_ensembles,
        0,
        "the ensembles were looked at"
    );
    // ... and "none left".
    let answer = |from: &str| no_ensembles(tag, CAROL, from);
    let evs = events(a.handle(&answer("prekey.example.org"), NOW, &mut rng));
    assert!(
        !evs.iter().any(|e| matches!(e, GlueEvent::NotSent { .. })),
        "our own server answered for Carol at other.org: {evs:?}"
    );
    assert_eq!(a.stats().spoofed_prekey_replies, 2);
    let evs = events(a.handle(&answer("prekey.other.org"), NOW, &mut rng));
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

/// An Ensemble Retrieval message for `identity` to `tag`, carrying the two ensembles of the
/// committed test vector `ensemble_retrieval/two_ensembles`.
fn vector_ensembles(tag: InstanceTag, identity: &str) -> PrekeyServerMessage {
    let file: serde_json::Value =
        serde_json::from_str(include_str!("../../test-vectors/vectors/messages.json")).unwrap();
    let v = file["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "ensemble_retrieval/two_ensembles")
        .unwrap();
    let bytes = hex::decode(v["outputs"]["encoded"].as_str().unwrap()).unwrap();
    let PrekeyServerMessage::EnsembleRetrieval(r) = PrekeyServerMessage::decode(&bytes).unwrap()
    else {
        panic!("not an Ensemble Retrieval message")
    };
    PrekeyServerMessage::EnsembleRetrieval(
        EnsembleRetrieval::new(tag, identity.as_bytes().to_vec(), r.ensembles().to_vec()).unwrap(),
    )
}

/// Walks Alice's prekey-server discovery: the domain lists `candidates`, each says it is
/// a prekey server, and each announces the fingerprint `fps[i]` (in order of answer).
/// Returns the events of the whole walk and the stanzas the announcements made us send.
fn discover(
    a: &mut Engine,
    outs: &[Output],
    candidates: &[&str],
    fps: &[String],
) -> (Vec<GlueEvent>, Vec<Element>) {
    let mut rng = rand::rng();
    let items_id = stanzas(outs)
        .into_iter()
        .find(|s| s.attr("to") == Some("example.org") && s.has_child("query", ns::DISCO_ITEMS))
        .and_then(|s| s.attr("id").map(str::to_owned))
        .unwrap();
    let mut q = el("query", ns::DISCO_ITEMS, &[]);
    for c in candidates {
        q.append_child(el("item", ns::DISCO_ITEMS, &[("jid", c)]));
    }
    let mut r = stanza::iq("result", &items_id, Some(ALICE_FULL), q);
    stanza::set_attr(&mut r, "from", "example.org");
    let outs = a.handle(&r, NOW, &mut rng);
    // Every candidate is asked who it is; each says "a prekey server".
    let mut item_queries = Vec::new();
    for s in stanzas(&outs)
        .into_iter()
        .filter(|s| s.has_child("query", ns::DISCO_INFO))
    {
        let to = s.attr("to").unwrap().to_owned();
        let mut info = el("query", ns::DISCO_INFO, &[]);
        info.append_child(el(
            "identity",
            ns::DISCO_INFO,
            &[("category", "auth"), ("type", "otr-prekey")],
        ));
        info.append_child(el(
            "feature",
            ns::DISCO_INFO,
            &[("var", ns::PREKEY_SERVER_FEATURE)],
        ));
        let mut r = stanza::iq("result", s.attr("id").unwrap(), Some(ALICE_FULL), info);
        stanza::set_attr(&mut r, "from", &to);
        let outs = a.handle(&r, NOW, &mut rng);
        for s in stanzas(&outs)
            .into_iter()
            .filter(|s| s.has_child("query", ns::DISCO_ITEMS))
        {
            item_queries.push((s.attr("id").unwrap().to_owned(), to.clone()));
        }
    }
    assert_eq!(item_queries.len(), candidates.len(), "{item_queries:?}");
    // Each announces its fingerprint.
    let (mut evs, mut sent) = (Vec::new(), Vec::new());
    for ((id, from), fp) in item_queries.iter().zip(fps) {
        let mut q = el("query", ns::DISCO_ITEMS, &[]);
        q.append_child(el(
            "item",
            ns::DISCO_ITEMS,
            &[("jid", from), ("node", "fingerprint"), ("name", fp)],
        ));
        let mut r = stanza::iq("result", id, Some(ALICE_FULL), q);
        stanza::set_attr(&mut r, "from", from);
        let outs = a.handle(&r, NOW, &mut rng);
        sent.extend(stanzas(&outs));
        evs.extend(events(outs));
    }
    (evs, sent)
}

/// Two answers in one discovery: the first pins the server; a second that differs in
/// fingerprint or in JID is reported and changes nothing.
#[test]
fn a_second_discovery_answer_cannot_replace_the_pinned_prekey_server() {
    let (fp_a, fp_b) = ("aa".repeat(56), "bb".repeat(56));
    // Another key of the same component holds the domain (PrekeyServerKeyChanged);
    // another component is an error (ServerFingerprintChanged). Either way the pin stays.
    let changed = |evs: &[GlueEvent]| {
        evs.iter()
            .filter(|e| {
                matches!(
                    e,
                    GlueEvent::Error(GlueError::ServerFingerprintChanged { .. })
                        | GlueEvent::PrekeyServerKeyChanged { .. }
                )
            })
            .count()
    };
    // The same component twice, announcing another key the second time.
    let (mut a, _) = alice(GlueState::default());
    let outs = online_outs(&mut a);
    let (evs, _) = discover(
        &mut a,
        &outs,
        &["prekey.example.org", "prekey.example.org"],
        &[fp_a.clone(), fp_b.clone()],
    );
    assert_eq!(changed(&evs), 1, "{evs:?}");
    let pin = &a.state().servers["example.org"];
    assert_eq!(
        (pin.jid.as_str(), &pin.fingerprint),
        ("prekey.example.org", &fp_a)
    );
    // Another component with the same key.
    let (mut a, _) = alice(GlueState::default());
    let outs = online_outs(&mut a);
    let (evs, _) = discover(
        &mut a,
        &outs,
        &["prekey.example.org", "evil.example.org"],
        &[fp_a.clone(), fp_a.clone()],
    );
    assert_eq!(changed(&evs), 1, "{evs:?}");
    assert_eq!(a.state().servers["example.org"].jid, "prekey.example.org");
    // One server, one answer: pinned, nothing reported.
    let (mut a, _) = alice(GlueState::default());
    let outs = online_outs(&mut a);
    let (evs, _) = discover(
        &mut a,
        &outs,
        &["prekey.example.org"],
        std::slice::from_ref(&fp_a),
    );
    assert_eq!(changed(&evs), 0, "{evs:?}");
    assert!(
        evs.iter()
            .any(|e| matches!(e, GlueEvent::PrekeyServer(p) if p.fingerprint == fp_a)),
        "{evs:?}"
    );
}

/// Alice online and caught up: everything she sent on the way.
fn online_outs(a: &mut Engine) -> Vec<Output> {
    let mut rng = rand::rng();
    let mut outs = a.online(ALICE_FULL, NOW, &mut rng);
    let id = iq_id(&outs, "query");
    outs.extend(a.handle(&mam_fin(&id, None), NOW, &mut rng));
    outs
}

/// A device removed from the contact's list while its ensemble query is under way gets
/// nothing: what waited for it is dropped, what waits for the others stays.
#[test]
fn a_device_removed_during_the_ensemble_query_gets_nothing() {
    let mut rng = rand::rng();
    let mut state = GlueState::default();
    state.servers.insert(
        "example.org".to_owned(),
        ServerPin {
            jid: "prekey.example.org".to_owned(),
            fingerprint: "00".repeat(56),
        },
    );
    let (mut a, _) = alice(state);
    online_outs(&mut a);
    let entry = |tag: u32, fp: &str| DeviceEntry {
        tag,
        fingerprint: fp.to_owned(),
        label: format!("{tag:x}"),
        seen: NOW,
    };
    let (kept, removed) = (0x2222_2222_u32, 0x3333_3333_u32);
    let both = DeviceList {
        devices: vec![
            entry(kept, &"cd".repeat(56)),
            entry(removed, &"ef".repeat(56)),
        ],
    };
    let outs = a.send(BOB, "hello", NOW, &mut rng);
    let id = iq_id(&outs, "pubsub");
    let outs = a.handle(&items_result(&id, BOB, both.to_element()), NOW, &mut rng);
    assert!(
        stanzas(&outs)
            .iter()
            .any(|s| s.attr("to") == Some("prekey.example.org")),
        "{outs:?}"
    );
    // Bob removes a device before the prekey server answers.
    let evs = events(a.handle(
        &pep_event(BOB, list_of(kept, &"cd".repeat(56))),
        NOW,
        &mut rng,
    ));
    assert!(evs.iter().any(|e| matches!(
        e,
        GlueEvent::DevicesChanged { change: DeviceChange::Removed(d), .. } if d.tag == removed
    )));
    let none_left = no_ensembles(a.tag(), BOB, "prekey.example.org");
    let not_sent: Vec<Option<InstanceTag>> = events(a.handle(&none_left, NOW, &mut rng))
        .into_iter()
        .filter_map(|e| match e {
            GlueEvent::NotSent { device, .. } => Some(device),
            _ => None,
        })
        .collect();
    assert_eq!(not_sent, [Some(InstanceTag(kept))]);
}

/// Our own list, as PEP tells it: a device added to a list we knew is pinned and reported;
/// an empty list removes nothing (it is reported as emptied).
#[test]
fn our_own_list_grows_by_pep_and_an_empty_one_removes_nothing() {
    let (mut a, mut rng) = alice(GlueState::default());
    let outs = online_outs(&mut a);
    let me = DeviceEntry {
        tag: a.tag().0,
        fingerprint: a.fingerprint(),
        label: "laptop".to_owned(),
        seen: NOW,
    };
    let phone = DeviceEntry {
        tag: 0x4444_4444,
        fingerprint: "ab".repeat(56),
        label: "phone".to_owned(),
        seen: NOW,
    };
    let own_fetch = stanzas(&outs)
        .into_iter()
        .find(|s| s.attr("to") == Some(ALICE) && s.has_child("pubsub", ns::PUBSUB))
        .and_then(|s| s.attr("id").map(str::to_owned))
        .unwrap();
    let just_me = DeviceList {
        devices: vec![me.clone()],
    };
    a.handle(
        &items_result(&own_fetch, ALICE, just_me.to_element()),
        NOW,
        &mut rng,
    );
    let both = DeviceList {
        devices: vec![me, phone.clone()],
    };
    let evs = events(a.handle(&pep_event(ALICE, both.to_element()), NOW, &mut rng));
    assert!(
        evs.iter().any(|e| matches!(
            e,
            GlueEvent::DevicesChanged { jid, change: DeviceChange::Added(d) } if jid == ALICE && *d == phone
        )),
        "{evs:?}"
    );
    assert_eq!(
        a.state().trust.fingerprint(ALICE, phone.tag),
        Some(phone.fingerprint.as_str())
    );
    let evs = events(a.handle(
        &pep_event(ALICE, DeviceList::default().to_element()),
        NOW,
        &mut rng,
    ));
    assert!(
        evs.iter().any(|e| matches!(
            e,
            GlueEvent::DevicesChanged {
                change: DeviceChange::Emptied,
                ..
            }
        )),
        "{evs:?}"
    );
    assert!(a.devices_of(ALICE).contains(&InstanceTag(phone.tag)));
}

/// A message to a contact waits while our prekey server is being discovered; once it is
/// pinned, the contact's ensembles are asked for there.
#[test]
fn waiting_messages_are_sent_once_the_prekey_server_is_found() {
    let (mut a, mut rng) = alice(GlueState::default());
    let outs = online_outs(&mut a);
    let out = a.send(BOB, "hello", NOW, &mut rng);
    let id = iq_id(&out, "pubsub");
    a.handle(
        &items_result(&id, BOB, list_of(0x2222_2222, &"cd".repeat(56))),
        NOW,
        &mut rng,
    );
    let evs = discover_with(&mut a, &outs, "prekey.example.org", &"aa".repeat(56));
    assert!(
        evs.iter().any(|s| s.attr("to") == Some("prekey.example.org")
            && stanza::body(s).is_some_and(|b| {
                matches!(classify_prekey(&b), Ok(IncomingPrekey::Encoded(bin))
                    if matches!(PrekeyServerMessage::decode(&bin), Ok(PrekeyServerMessage::EnsembleQuery(_))))
            })),
        "no ensemble query after discovery: {evs:?}"
    );
}

/// [`discover`] with one candidate, returning the stanzas the last answer made us send.
fn discover_with(a: &mut Engine, outs: &[Output], server: &str, fp: &str) -> Vec<Element> {
    discover(a, outs, &[server], &[fp.to_owned()]).1
}

/// A prekey-server message to Alice, from `server`.
fn from_server(m: &PrekeyServerMessage, server: &str) -> Element {
    let mut s = stanza::body_message(ALICE_FULL, "pk-1", &encode_prekey(&m.encode()));
    stanza::set_attr(&mut s, "from", server);
    s
}

/// "No Prekey Ensembles" for `identity`, to Alice's instance `tag`, from `server`.
fn no_ensembles(tag: InstanceTag, identity: &str, server: &str) -> Element {
    let m = PrekeyServerMessage::NoPrekeyEnsembles(NoPrekeyEnsembles {
        receiver_tag: tag,
        identity: identity.as_bytes().to_vec(),
        message: b"No Prekey Messages available for this identity".to_vec(),
    });
    from_server(&m, server)
}

// -------------------------------------------------------------------------------------
// Requests from others, answers that fail.

/// Anyone may ask who we are (disco#info, for entity caps); every other request gets
/// `service-unavailable` (RFC 6120 §8.2.3), addressed back to the asker, and changes nothing.
#[test]
fn requests_from_a_contact_get_our_caps_or_service_unavailable() {
    let (mut a, mut rng, _) = online_alice();
    let before = a.state();
    let ask = |a: &mut Engine, rng: &mut rand::rngs::ThreadRng, kind: &str, payload: Element| {
        let mut iq = stanza::iq(kind, "m-1", Some(ALICE_FULL), payload);
        stanza::set_attr(&mut iq, "from", MALLORY_FULL);
        let outs = a.handle(&iq, NOW, rng);
        let answers = stanzas(&outs);
        assert_eq!(answers.len(), 1, "{outs:?}");
        let r = answers.into_iter().next().unwrap();
        assert_eq!(
            (r.name(), r.attr("id"), r.attr("to")),
            ("iq", Some("m-1"), Some(MALLORY_FULL))
        );
        r
    };
    let r = ask(&mut a, &mut rng, "get", el("query", ns::DISCO_INFO, &[]));
    assert_eq!(r.attr("type"), Some("result"));
    let q = r.get_child("query", ns::DISCO_INFO).unwrap();
    assert!(
        q.children()
            .any(|c| c.is("feature", ns::DISCO_INFO) && c.attr("var") == Some(ns::DEVICES_NOTIFY)),
        "our caps announce the device-list notifications: {r:?}"
    );
    for (kind, payload) in [
        ("get", el("query", "jabber:iq:version", &[])),
        ("set", el("pubsub", ns::PUBSUB, &[])),
    ] {
        let r = ask(&mut a, &mut rng, kind, payload);
        assert_eq!(r.attr("type"), Some("error"), "{r:?}");
        let e = r.get_child("error", ns::CLIENT).unwrap();
        assert!(e.has_child("service-unavailable", ns::STANZAS), "{r:?}");
    }
    assert_eq!(a.state(), before, "a request changed our state");
}

/// A candidate that answers disco#info with an error is no prekey server, even when the
/// error echoes a query naming the feature (RFC 6120 §8.3.1 allows the echo): it is not
/// asked for a fingerprint and, being the only one, leaves the domain without a server.
#[test]
fn a_candidate_that_answers_with_an_error_is_not_a_prekey_server() {
    let (mut a, mut rng) = alice(GlueState::default());
    let outs = online_outs(&mut a);
    let items_id = stanzas(&outs)
        .into_iter()
        .find(|s| s.attr("to") == Some("example.org") && s.has_child("query", ns::DISCO_ITEMS))
        .and_then(|s| s.attr("id").map(str::to_owned))
        .unwrap();
    let mut q = el("query", ns::DISCO_ITEMS, &[]);
    q.append_child(el(
        "item",
        ns::DISCO_ITEMS,
        &[("jid", "prekey.example.org")],
    ));
    let mut r = stanza::iq("result", &items_id, Some(ALICE_FULL), q);
    stanza::set_attr(&mut r, "from", "example.org");
    let outs = a.handle(&r, NOW, &mut rng);
    let info = stanzas(&outs)
        .into_iter()
        .find(|s| s.has_child("query", ns::DISCO_INFO))
        .unwrap();
    let mut echo = el("query", ns::DISCO_INFO, &[]);
    echo.append_child(el(
        "identity",
        ns::DISCO_INFO,
        &[("category", "auth"), ("type", "otr-prekey")],
    ));
    echo.append_child(el(
        "feature",
        ns::DISCO_INFO,
        &[("var", ns::PREKEY_SERVER_FEATURE)],
    ));
    let mut err = stanza::iq("error", info.attr("id").unwrap(), Some(ALICE_FULL), echo);
    stanza::set_attr(&mut err, "from", "prekey.example.org");
    let mut e = el("error", ns::CLIENT, &[("type", "cancel")]);
    e.append_child(el("item-not-found", ns::STANZAS, &[]));
    err.append_child(e);
    let outs = a.handle(&err, NOW, &mut rng);
    assert!(
        !stanzas(&outs)
            .iter()
            .any(|s| s.has_child("query", ns::DISCO_ITEMS)),
        "an erring candidate was asked for its fingerprint: {outs:?}"
    );
    assert!(events(outs).iter().any(
        |e| matches!(e, GlueEvent::Error(GlueError::NoPrekeyServer(d)) if d == "example.org")
    ));
    assert!(a.state().servers.is_empty());
}

/// Our own list is published with publish-options; when the node's configuration does not
/// match (`precondition-not-met`) it is reconfigured and the list published again, once:
/// a second refusal is reported, and a success says we are listed. Any other refusal, of
/// the publication or of the reconfiguration, is reported at once and nothing is retried.
#[test]
fn a_refused_publication_is_retried_once_after_configuring_the_node() {
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Reply {
        Ok,
        Precondition,
        Forbidden,
    }
    /// Answers the iq set among `outs` with `reply`: the set, and what the answer gave.
    fn answer(a: &mut Engine, outs: &[Output], reply: Reply) -> (Element, Vec<Output>) {
        let s = stanzas(outs)
            .into_iter()
            .find(|s| s.attr("type") == Some("set"))
            .unwrap_or_else(|| panic!("no iq set in {outs:?}"));
        let id = s.attr("id").unwrap();
        let error = |cond: &str| {
            parse(&format!(
                "<iq xmlns='jabber:client' type='error' id='{id}' to='{ALICE_FULL}'>\
                 <error type='cancel'>{cond}</error></iq>"
            ))
        };
        let reply = match reply {
            Reply::Ok => parse(&format!(
                "<iq xmlns='jabber:client' type='result' id='{id}' to='{ALICE_FULL}'/>"
            )),
            Reply::Precondition => error(&format!(
                "<conflict xmlns='{}'/><precondition-not-met xmlns='{}'/>",
                ns::STANZAS,
                ns::PUBSUB_ERRORS
            )),
            Reply::Forbidden => error(&format!("<forbidden xmlns='{}'/>", ns::STANZAS)),
        };
        (s, a.handle(&reply, NOW, &mut rand::rng()))
    }
    let is_publish = |s: &Element| {
        s.get_child("pubsub", ns::PUBSUB)
            .is_some_and(|p| p.has_child("publish", ns::PUBSUB))
    };
    let is_configure = |s: &Element| {
        s.get_child("pubsub", ns::PUBSUB_OWNER)
            .is_some_and(|p| p.has_child("configure", ns::PUBSUB_OWNER))
    };
    // (replies in order, the requests they answer: publish / configure, listed at the end)
    let cases: [(&[Reply], &[bool], bool); 5] = [
        (&[Reply::Ok], &[true], true),
        (
            &[Reply::Precondition, Reply::Ok, Reply::Ok],
            &[true, false, true],
            true,
        ),
        (
            &[Reply::Precondition, Reply::Ok, Reply::Precondition],
            &[true, false, true],
            false,
        ),
        (&[Reply::Forbidden], &[true], false),
        (
            &[Reply::Precondition, Reply::Forbidden],
            &[true, false],
            false,
        ),
    ];
    for (replies, publishes, listed) in cases {
        // Our prekey server already holds our profiles: we may list ourselves.
        let (mut a, mut rng) = alice(GlueState {
            published: true,
            ..GlueState::default()
        });
        let outs = online_outs(&mut a);
        let own_fetch = stanzas(&outs)
            .into_iter()
            .find(|s| s.attr("to") == Some(ALICE) && s.has_child("pubsub", ns::PUBSUB))
            .and_then(|s| s.attr("id").map(str::to_owned))
            .unwrap();
        let mut outs = a.handle(
            &items_result(&own_fetch, ALICE, DeviceList::default().to_element()),
            NOW,
            &mut rng,
        );
        for (reply, publish) in replies.iter().zip(publishes) {
            let (req, next) = answer(&mut a, &outs, *reply);
            assert_eq!(
                (is_publish(&req), is_configure(&req)),
                (*publish, !*publish),
                "{replies:?}: {req:?}"
            );
            outs = next;
        }
        assert!(
            !stanzas(&outs).iter().any(|s| s.attr("type") == Some("set")),
            "{replies:?}: asked again: {outs:?}"
        );
        let evs = events(outs);
        let ok = evs.iter().any(|e| matches!(e, GlueEvent::Listed));
        let refused = evs
            .iter()
            .any(|e| matches!(e, GlueEvent::Error(GlueError::DeviceListPublish(_))));
        assert_eq!((ok, refused), (listed, !listed), "{replies:?}: {evs:?}");
        assert!(
            !stanzas(&a.tick(NOW + 1, &mut rng)).iter().any(is_configure),
            "{replies:?}: configured again"
        );
    }
}

/// Our own domain's pinned prekey server shows another key, unannounced: nothing is
/// published to it, the user is told, offline texts to the domain are refused with a
/// reason; the user accepts the offered key (not another); the new pin and the retired
/// key survive a restart from the saved state, and after it an announcement signed by the
/// new key back to the retired one is not followed.
#[test]
fn a_changed_prekey_server_key_is_held_and_an_accepted_one_survives_a_restart() {
    use prekey_server::rotation::{Announcement, NODE, fingerprint};
    let mut rng = rand::rng();
    let (k_old, k_new) = (KeyPair::generate(&mut rng), KeyPair::generate(&mut rng));
    let (old, new) = (
        hex::encode(fingerprint(&k_old).as_bytes()),
        hex::encode(fingerprint(&k_new).as_bytes()),
    );
    let mut state = GlueState::default();
    state.servers.insert(
        "example.org".into(),
        ServerPin {
            jid: "prekey.example.org".into(),
            fingerprint: old.clone(),
        },
    );
    let (mut a, _) = alice(state);
    let to_server = |outs: &[Output], name: &str| {
        stanzas(outs)
            .into_iter()
            .filter(|s| s.name() == name && s.attr("to") == Some("prekey.example.org"))
            .collect::<Vec<_>>()
    };
    let answer = |outs: &[Output], fp: &str, announcements: &[String]| {
        let check = to_server(outs, "iq")
            .into_iter()
            .find(|s| s.has_child("query", ns::DISCO_ITEMS))
            .expect("the pinned server's key is checked");
        let mut q = el("query", ns::DISCO_ITEMS, &[]);
        let item = |node: &str, name: &str| {
            el(
                "item",
                ns::DISCO_ITEMS,
                &[
                    ("jid", "prekey.example.org"),
                    ("node", node),
                    ("name", name),
                ],
            )
        };
        q.append_child(item("fingerprint", fp));
        for n in announcements {
            q.append_child(item(NODE, n));
        }
        let mut r = stanza::iq("result", check.attr("id").unwrap(), Some(ALICE_FULL), q);
        stanza::set_attr(&mut r, "from", "prekey.example.org");
        r
    };
    let outs = online_outs(&mut a);
    assert!(
        to_server(&outs, "message").is_empty(),
        "nothing before the check"
    );
    let outs = a.handle(&answer(&outs, &new, &[]), NOW, &mut rng);
    assert!(
        to_server(&outs, "message").is_empty(),
        "nothing to a changed key"
    );
    let evs = events(outs);
    assert!(
        evs.iter().any(|e| matches!(
            e,
            GlueEvent::PrekeyServerKeyChanged { domain, pinned, offered }
                if domain == "example.org" && *pinned == old && *offered == new
        )),
        "{evs:?}"
    );
    assert_eq!(
        a.prekey_server_key_change("example.org"),
        Some(new.as_str())
    );
    // Bob's device is offline: the text would go through the prekey server.
    let outs = a.send(BOB, "hello", NOW, &mut rng);
    let id = iq_id(&outs, "pubsub");
    let outs = a.handle(
        &items_result(&id, BOB, list_of(0x2222_2222, &"cd".repeat(56))),
        NOW,
        &mut rng,
    );
    assert!(to_server(&outs, "message").is_empty(), "{outs:?}");
    let evs = events(outs);
    assert!(
        evs.iter().any(|e| matches!(
            e,
            GlueEvent::NotSent {
                reason: NotSentReason::PrekeyServerKeyChanged,
                ..
            }
        )),
        "{evs:?}"
    );
    // Only the offered key can be accepted.
    assert!(matches!(
        a.accept_prekey_server_key("example.org", &"cc".repeat(56), NOW, &mut rng),
        Err(GlueError::PrekeyServerKeyRefused { .. })
    ));
    let outs = a
        .accept_prekey_server_key("example.org", &new.to_uppercase(), NOW, &mut rng)
        .unwrap();
    assert_eq!(
        to_server(&outs, "message").len(),
        1,
        "the publication starts with the new key: {outs:?}"
    );
    assert_eq!(a.prekey_server_key_change("example.org"), None);
    // Restart from the saved state.
    let key = [7u8; otr4::PERSIST_KEY_LEN];
    let (client, saved) = a.export(&key, &mut rng);
    let mut b = Engine::import(
        EngineConfig::new(ALICE, "laptop"),
        &key,
        &client,
        &saved,
        &mut rng,
    )
    .unwrap();
    let st = b.state();
    assert_eq!(st.servers["example.org"].fingerprint, new);
    assert!(st.retired_servers["example.org"].contains(&old));
    // The server (or an impostor holding the new key) announces a "rotation" back to the
    // retired key: refused, the domain is held instead.
    let back = Announcement::sign(
        &k_new,
        &fingerprint(&k_old),
        "prekey.example.org",
        NOW as u64 + 60,
    )
    .disco_name();
    let outs = online_outs(&mut b);
    let evs = events(b.handle(&answer(&outs, &old, &[back]), NOW, &mut rng));
    assert!(
        evs.iter().any(
            |e| matches!(e, GlueEvent::PrekeyServerKeyChanged { offered, .. } if *offered == old)
        ),
        "{evs:?}"
    );
    assert!(
        !evs.iter()
            .any(|e| matches!(e, GlueEvent::PrekeyServerKeyRotated { .. })),
        "{evs:?}"
    );
    assert_eq!(b.state().servers["example.org"].fingerprint, new);
}
