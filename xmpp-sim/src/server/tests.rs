//! Unit tests of the in-memory server.
use super::*;

const A1: &str = "alice@example.org/a1";
const A2: &str = "alice@example.org/a2";
const B1: &str = "bob@example.org/phone";
const B2: &str = "bob@example.org/laptop";

fn el(s: &str) -> Element {
    s.parse().unwrap()
}

fn sim() -> SimServer {
    let mut s = SimServer::new("example.org");
    s.add_user("alice@example.org").unwrap();
    s.add_user("bob@example.org").unwrap();
    s
}

fn online(s: &mut SimServer, full: &str) {
    s.connect(full).unwrap();
    s.submit(full, el("<presence xmlns='jabber:client'/>"))
        .unwrap();
}

fn chat(to: &str, body: &str, extra: &str) -> Element {
    el(&format!(
        "<message xmlns='jabber:client' type='chat' to='{to}' id='m-{body}'><body>{body}</body>{extra}</message>"
    ))
}

fn messages(v: Vec<Element>) -> Vec<Element> {
    v.into_iter().filter(|e| e.name() == "message").collect()
}

fn body(m: &Element) -> String {
    m.get_child("body", NS_CLIENT)
        .map(Element::text)
        .unwrap_or_default()
}

fn sid(m: &Element) -> (String, String) {
    let s = m.get_child("stanza-id", NS_SID).expect("stanza-id");
    (s.attr("by").unwrap().into(), s.attr("id").unwrap().into())
}

fn enable_carbons(s: &mut SimServer, full: &str) {
    s.submit(
        full,
        el("<iq xmlns='jabber:client' type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>"),
    )
    .unwrap();
    let r = s.inbox(full);
    assert_eq!(r.last().unwrap().attr("type"), Some("result"));
}

fn iq_result(s: &mut SimServer, full: &str, iq: &str) -> Element {
    s.submit(full, el(iq)).unwrap();
    s.inbox(full)
        .into_iter()
        .rfind(|e| e.name() == "iq")
        .expect("iq reply")
}

fn error_condition(iq: &Element) -> Vec<String> {
    assert_eq!(iq.attr("type"), Some("error"), "{iq:?}");
    iq.get_child("error", NS_CLIENT)
        .unwrap()
        .children()
        .map(|c| c.name().to_owned())
        .collect()
}

#[test]
fn bare_jid_message_reaches_both_resources_with_the_same_stanza_id() {
    let mut s = sim();
    online(&mut s, A1);
    online(&mut s, B1);
    online(&mut s, B2);
    let _ = (s.inbox(A1), s.inbox(B1), s.inbox(B2));
    s.submit(A1, chat("bob@example.org", "hi", "")).unwrap();
    let m1 = messages(s.inbox(B1));
    let m2 = messages(s.inbox(B2));
    assert_eq!((m1.len(), m2.len()), (1, 1));
    assert_eq!(m1[0].attr("from"), Some(A1));
    assert_eq!(m1[0].attr("to"), Some("bob@example.org"));
    assert_eq!(body(&m1[0]), "hi");
    let (by, id) = sid(&m1[0]);
    assert_eq!(by, "bob@example.org");
    assert_eq!(sid(&m2[0]), (by, id));
    assert!(s.inbox(A1).is_empty());
    // Archived once for bob, once for alice.
    assert_eq!(s.archive_len("bob@example.org"), 1);
    assert_eq!(s.archive_len("alice@example.org"), 1);
    assert_eq!(s.stats().archived, 2);
}

#[test]
fn highest_priority_wins_and_negative_priority_goes_offline() {
    let mut s = sim();
    online(&mut s, A1);
    s.connect(B1).unwrap();
    s.submit(
        B1,
        el("<presence xmlns='jabber:client'><priority>5</priority></presence>"),
    )
    .unwrap();
    online(&mut s, B2);
    let _ = (s.inbox(B1), s.inbox(B2));
    s.submit(A1, chat("bob@example.org", "x", "")).unwrap();
    assert_eq!(messages(s.inbox(B1)).len(), 1);
    assert!(messages(s.inbox(B2)).is_empty());
    s.submit(
        B1,
        el("<presence xmlns='jabber:client'><priority>-1</priority></presence>"),
    )
    .unwrap();
    s.disconnect(B2).unwrap();
    s.submit(A1, chat("bob@example.org", "y", "")).unwrap();
    assert!(messages(s.inbox(B1)).is_empty());
    assert_eq!(s.offline_len("bob@example.org"), 1);
}

#[test]
fn offline_storage_then_delivery_in_order_on_initial_presence() {
    let mut s = sim();
    online(&mut s, A1);
    s.submit(A1, chat("bob@example.org", "one", "")).unwrap();
    s.submit(A1, chat("bob@example.org", "two", "")).unwrap();
    // Not stored: no body and no store hint (still stored offline: chat type).
    assert_eq!(s.offline_len("bob@example.org"), 2);
    assert_eq!(s.stats().stored_offline, 2);
    s.connect(B1).unwrap();
    assert!(s.inbox(B1).is_empty(), "bound but not available");
    s.submit(B1, el("<presence xmlns='jabber:client'/>"))
        .unwrap();
    let inbox = s.inbox(B1);
    assert_eq!(inbox[0].name(), "presence");
    assert_eq!(inbox[0].attr("from"), Some(A1));
    assert_eq!(inbox[0].attr("to"), Some(B1));
    let ms = messages(inbox);
    assert_eq!(ms.iter().map(body).collect::<Vec<_>>(), ["one", "two"]);
    assert!(ms[0].has_child("delay", NS_DELAY));
    assert_eq!(sid(&ms[0]).0, "bob@example.org");
    assert_eq!(s.offline_len("bob@example.org"), 0);
    assert_eq!(s.stats().offline_delivered, 2);
    // A second available presence does not redeliver.
    s.submit(B1, el("<presence xmlns='jabber:client'/>"))
        .unwrap();
    assert!(messages(s.inbox(B1)).is_empty());
}

#[test]
fn offline_storage_is_bounded_and_bounces_beyond() {
    let mut s = sim();
    online(&mut s, A1);
    for i in 0..MAX_OFFLINE_PER_USER + 1 {
        s.submit(A1, chat("bob@example.org", &i.to_string(), ""))
            .unwrap();
    }
    assert_eq!(s.offline_len("bob@example.org"), MAX_OFFLINE_PER_USER);
    let bounce = messages(s.inbox(A1));
    assert_eq!(bounce.len(), 1);
    assert_eq!(error_condition(&bounce[0]), ["service-unavailable"]);
}

#[test]
fn mam_query_pages_after_an_id() {
    let mut s = sim();
    online(&mut s, A1);
    for (i, b) in ["m0", "m1", "m2"].iter().enumerate() {
        s.set_now(1_764_064_800 + i as i64);
        s.submit(A1, chat("bob@example.org", b, "")).unwrap();
    }
    s.connect(B1).unwrap();
    let q = "<iq xmlns='jabber:client' type='set' id='q1'><query xmlns='urn:xmpp:mam:2' queryid='x'><set xmlns='http://jabber.org/protocol/rsm'><max>2</max></set></query></iq>";
    s.submit(B1, el(q)).unwrap();
    let inbox = s.inbox(B1);
    assert_eq!(inbox.len(), 3);
    let ids: Vec<String> = inbox[..2]
        .iter()
        .map(|m| {
            let r = m.get_child("result", NS_MAM).unwrap();
            assert_eq!(r.attr("queryid"), Some("x"));
            assert_eq!(m.attr("from"), Some("bob@example.org"));
            r.attr("id").unwrap().to_owned()
        })
        .collect();
    assert_ne!(ids[0], ids[1]);
    let fwd = inbox[0]
        .get_child("result", NS_MAM)
        .unwrap()
        .get_child("forwarded", NS_FORWARD)
        .unwrap();
    assert_eq!(
        fwd.get_child("delay", NS_DELAY).unwrap().attr("stamp"),
        Some("2025-11-25T10:00:00Z")
    );
    let orig = fwd.get_child("message", NS_CLIENT).unwrap();
    assert_eq!((orig.attr("from"), body(orig).as_str()), (Some(A1), "m0"));
    let fin = inbox[2].get_child("fin", NS_MAM).unwrap();
    assert_eq!(inbox[2].attr("id"), Some("q1"));
    assert_eq!(fin.attr("complete"), None);
    let set = fin.get_child("set", NS_RSM).unwrap();
    assert_eq!(set.get_child("last", NS_RSM).unwrap().text(), ids[1]);
    // Page after the last id: the third message, complete.
    let q2 = format!(
        "<iq xmlns='jabber:client' type='set' id='q2'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><after>{}</after></set></query></iq>",
        ids[1]
    );
    s.submit(B1, el(&q2)).unwrap();
    let inbox = s.inbox(B1);
    assert_eq!(inbox.len(), 2);
    let r = inbox[0].get_child("result", NS_MAM).unwrap();
    let orig = r
        .get_child("forwarded", NS_FORWARD)
        .unwrap()
        .get_child("message", NS_CLIENT)
        .unwrap();
    assert_eq!(body(orig), "m2");
    // The live copy (offline) carried the same archive id.
    let fin = inbox[1].get_child("fin", NS_MAM).unwrap();
    assert_eq!(fin.attr("complete"), Some("true"));
    // Unknown id → item-not-found; `start` filter works.
    let q3 = "<iq xmlns='jabber:client' type='set' id='q3'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><after>nope</after></set></query></iq>";
    let r = iq_result(&mut s, B1, q3);
    assert_eq!(error_condition(&r), ["item-not-found"]);
    let q4 = "<iq xmlns='jabber:client' type='set' id='q4'><query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field><field var='start'><value>2025-11-25T10:00:01Z</value></field></x></query></iq>";
    s.submit(B1, el(q4)).unwrap();
    assert_eq!(messages(s.inbox(B1)).len(), 2);
}

#[test]
fn offline_stanza_id_matches_the_archive_id() {
    let mut s = sim();
    online(&mut s, A1);
    s.submit(A1, chat("bob@example.org", "z", "")).unwrap();
    online(&mut s, B1);
    let live = messages(s.inbox(B1));
    let q = "<iq xmlns='jabber:client' type='set' id='q'><query xmlns='urn:xmpp:mam:2'/></iq>";
    s.submit(B1, el(q)).unwrap();
    let r = s.inbox(B1);
    let id = r[0]
        .get_child("result", NS_MAM)
        .unwrap()
        .attr("id")
        .unwrap();
    assert_eq!(sid(&live[0]).1, id);
}

#[test]
fn spoofed_stanza_id_is_stripped_and_store_hint_archives() {
    let mut s = sim();
    online(&mut s, A1);
    online(&mut s, B1);
    let _ = s.inbox(B1);
    let m = el(
        "<message xmlns='jabber:client' type='chat' to='bob@example.org'><x xmlns='urn:x'/><stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.org' id='fake'/><store xmlns='urn:xmpp:hints'/></message>",
    );
    s.submit(A1, m).unwrap();
    let got = messages(s.inbox(B1));
    let ids: Vec<_> = got[0]
        .children()
        .filter(|c| c.is("stanza-id", NS_SID))
        .collect();
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0].attr("id"), Some("fake"));
    assert_eq!(s.archive_len("bob@example.org"), 1);
    // No body, no hint: not archived.
    s.submit(
        A1,
        el("<message xmlns='jabber:client' type='chat' to='bob@example.org'><active xmlns='http://jabber.org/protocol/chatstates'/></message>"),
    )
    .unwrap();
    let got = messages(s.inbox(B1));
    assert!(!got[0].has_child("stanza-id", NS_SID));
    assert_eq!(s.archive_len("bob@example.org"), 1);
}

#[test]
fn carbons_are_copied_unless_private() {
    let mut s = sim();
    online(&mut s, A1);
    online(&mut s, A2);
    online(&mut s, B1);
    enable_carbons(&mut s, A2);
    let _ = (s.inbox(A1), s.inbox(A2), s.inbox(B1));
    // Sent carbon.
    s.submit(A1, chat("bob@example.org", "c1", "")).unwrap();
    let got = messages(s.inbox(A2));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attr("from"), Some("alice@example.org"));
    let inner = got[0]
        .get_child("sent", NS_CARBONS)
        .unwrap()
        .get_child("forwarded", NS_FORWARD)
        .unwrap()
        .get_child("message", NS_CLIENT)
        .unwrap();
    assert_eq!((inner.attr("from"), body(inner).as_str()), (Some(A1), "c1"));
    // Received carbon: bob writes to alice's a1 only.
    s.submit(B1, chat(A1, "c2", "")).unwrap();
    assert_eq!(messages(s.inbox(A1)).len(), 1);
    let got = messages(s.inbox(A2));
    let inner = got[0]
        .get_child("received", NS_CARBONS)
        .unwrap()
        .get_child("forwarded", NS_FORWARD)
        .unwrap()
        .get_child("message", NS_CLIENT)
        .unwrap();
    assert_eq!(body(inner), "c2");
    assert_eq!(s.stats().carbons, 2);
    // <private/> and <no-copy/> suppress both.
    s.submit(
        A1,
        chat(
            "bob@example.org",
            "p1",
            "<private xmlns='urn:xmpp:carbons:2'/>",
        ),
    )
    .unwrap();
    s.submit(B1, chat(A1, "p2", "<no-copy xmlns='urn:xmpp:hints'/>"))
        .unwrap();
    assert!(messages(s.inbox(A2)).is_empty());
    let bodies: Vec<String> = messages(s.inbox(B1)).iter().map(body).collect();
    assert_eq!(bodies, ["c1", "p1"]);
    assert_eq!(messages(s.inbox(A1)).len(), 1);
    assert_eq!(s.stats().carbons, 2);
    // a1 never enabled carbons: no copy of a2's message.
    s.submit(A2, chat("bob@example.org", "c3", "")).unwrap();
    assert!(messages(s.inbox(A1)).is_empty());
}

#[test]
fn message_to_own_bare_jid_reaches_other_devices_and_is_archived_once() {
    let mut s = sim();
    online(&mut s, A1);
    online(&mut s, A2);
    enable_carbons(&mut s, A2);
    let _ = (s.inbox(A1), s.inbox(A2));
    s.submit(A1, chat("alice@example.org", "self", "")).unwrap();
    // Both alice resources get the original (bare, equal priority), nobody a carbon.
    assert_eq!(messages(s.inbox(A2)).len(), 1);
    assert_eq!(messages(s.inbox(A1)).len(), 1);
    assert_eq!(s.stats().carbons, 0);
    assert_eq!(s.archive_len("alice@example.org"), 1);
}

fn publish(node: &str, id: &str, payload: &str, access: Option<&str>) -> String {
    let opts = access.map_or(String::new(), |a| {
        format!(
            "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#access_model'><value>{a}</value></field></x></publish-options>"
        )
    });
    format!(
        "<iq xmlns='jabber:client' type='set' id='pub'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{node}'><item id='{id}'>{payload}</item></publish>{opts}</pubsub></iq>"
    )
}

const DEVICES: &str = "urn:xmpp:otr4:0:devices";
const LIST: &str = "<devices xmlns='urn:xmpp:otr4:0'><device tag='1a2b3c4d'/></devices>";

fn items_get(owner: &str) -> String {
    format!(
        "<iq xmlns='jabber:client' type='get' id='get' to='{owner}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{DEVICES}'/></pubsub></iq>"
    )
}

#[test]
fn pep_publish_notifies_and_contact_can_fetch() {
    let mut s = sim();
    s.add_user("carol@example.org").unwrap();
    s.set_subscribed("alice@example.org", "carol@example.org", false)
        .unwrap();
    online(&mut s, A1);
    online(&mut s, A2);
    online(&mut s, B1);
    online(&mut s, "carol@example.org/c");
    let _ = (
        s.inbox(A1),
        s.inbox(A2),
        s.inbox(B1),
        s.inbox("carol@example.org/c"),
    );
    let r = iq_result(
        &mut s,
        A1,
        &publish(DEVICES, "current", LIST, Some("presence")),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    for f in [A2, B1] {
        let n = messages(s.inbox(f));
        assert_eq!(n.len(), 1, "{f}");
        assert_eq!(n[0].attr("type"), Some("headline"));
        assert_eq!(n[0].attr("from"), Some("alice@example.org"));
        let item = n[0]
            .get_child("event", NS_PUBSUB_EVENT)
            .unwrap()
            .get_child("items", NS_PUBSUB_EVENT)
            .unwrap()
            .get_child("item", NS_PUBSUB_EVENT)
            .unwrap();
        assert_eq!(item.attr("id"), Some("current"));
        assert_eq!(item.children().next().unwrap(), &el(LIST));
    }
    assert!(messages(s.inbox("carol@example.org/c")).is_empty());
    // Headlines are never archived nor stored.
    assert_eq!(s.archive_len("bob@example.org"), 0);
    let r = iq_result(&mut s, B1, &items_get("alice@example.org"));
    assert_eq!(r.attr("type"), Some("result"));
    assert_eq!(r.attr("from"), Some("alice@example.org"));
    let items = r
        .get_child("pubsub", NS_PUBSUB)
        .unwrap()
        .get_child("items", NS_PUBSUB)
        .unwrap();
    let item = items.get_child("item", NS_PUBSUB).unwrap();
    assert_eq!(item.children().next().unwrap(), &el(LIST));
    // Not subscribed + presence access: refused.
    let r = iq_result(
        &mut s,
        "carol@example.org/c",
        &items_get("alice@example.org"),
    );
    assert_eq!(
        error_condition(&r),
        ["not-authorized", "presence-subscription-required"]
    );
    // Only the owner publishes.
    let r = iq_result(
        &mut s,
        B1,
        &publish(DEVICES, "current", LIST, None)
            .replace("id='pub'", "id='p' to='alice@example.org'"),
    );
    assert_eq!(error_condition(&r), ["forbidden"]);
    // A later session gets the last item with its initial presence.
    online(&mut s, B2);
    let n = messages(s.inbox(B2));
    assert_eq!(n.len(), 1);
    assert!(n[0].has_child("event", NS_PUBSUB_EVENT));
    assert_eq!(
        s.pep_last_item("alice@example.org", DEVICES),
        Some(el(LIST))
    );
}

#[test]
fn precondition_not_met_then_configure_then_publish() {
    let mut s = sim();
    s.add_user("carol@example.org").unwrap();
    s.set_subscribed("alice@example.org", "carol@example.org", false)
        .unwrap();
    online(&mut s, A1);
    s.connect("carol@example.org/c").unwrap();
    // Created with the default access model (presence).
    let r = iq_result(&mut s, A1, &publish(DEVICES, "current", LIST, None));
    assert_eq!(r.attr("type"), Some("result"));
    let r = iq_result(&mut s, A1, &publish(DEVICES, "current", LIST, Some("open")));
    assert_eq!(error_condition(&r), ["conflict", "precondition-not-met"]);
    assert_eq!(
        r.get_child("error", NS_CLIENT).unwrap().attr("type"),
        Some("cancel")
    );
    let conf = format!(
        "<iq xmlns='jabber:client' type='set' id='cfg'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='{DEVICES}'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#access_model'><value>open</value></field></x></configure></pubsub></iq>"
    );
    let r = iq_result(&mut s, A1, &conf);
    assert_eq!(r.attr("type"), Some("result"));
    let r = iq_result(&mut s, A1, &publish(DEVICES, "current", LIST, Some("open")));
    assert_eq!(r.attr("type"), Some("result"));
    // Open: a non-contact reads it.
    let r = iq_result(
        &mut s,
        "carol@example.org/c",
        &items_get("alice@example.org"),
    );
    assert_eq!(r.attr("type"), Some("result"));
    // Retract and delete.
    let retract = format!(
        "<iq xmlns='jabber:client' type='set' id='r'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='{DEVICES}'><item id='current'/></retract></pubsub></iq>"
    );
    assert_eq!(iq_result(&mut s, A1, &retract).attr("type"), Some("result"));
    assert_eq!(s.pep_last_item("alice@example.org", DEVICES), None);
    let del = format!(
        "<iq xmlns='jabber:client' type='set' id='d'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='{DEVICES}'/></pubsub></iq>"
    );
    assert_eq!(iq_result(&mut s, A1, &del).attr("type"), Some("result"));
    let r = iq_result(
        &mut s,
        "carol@example.org/c",
        &items_get("alice@example.org"),
    );
    assert_eq!(error_condition(&r), ["item-not-found"]);
}

#[test]
fn component_routing_and_disco_items() {
    let mut s = sim();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Element>::new()));
    let seen2 = seen.clone();
    s.add_component(
        "prekey.example.org",
        Box::new(move |st: &Element| {
            seen2.lock().unwrap().push(st.clone());
            let from = st.attr("from").unwrap_or_default();
            // Replies in the component namespace, without `from`.
            vec![
                format!(
                    "<message xmlns='jabber:component:accept' type='chat' to='{from}'><body>echo {}</body></message>",
                    st.get_child("body", NS_CLIENT).map(Element::text).unwrap_or_default()
                )
                .parse()
                .unwrap(),
            ]
        }),
    )
    .unwrap();
    online(&mut s, A1);
    let _ = s.inbox(A1);
    let r = iq_result(
        &mut s,
        A1,
        "<iq xmlns='jabber:client' type='get' id='di' to='example.org'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    );
    let items: Vec<_> = r
        .get_child("query", NS_DISCO_ITEMS)
        .unwrap()
        .children()
        .map(|i| i.attr("jid").unwrap().to_owned())
        .collect();
    assert_eq!(items, ["prekey.example.org"]);
    let r = iq_result(
        &mut s,
        A1,
        "<iq xmlns='jabber:client' type='get' id='ii' to='example.org'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    let feats: Vec<_> = r
        .get_child("query", NS_DISCO_INFO)
        .unwrap()
        .children()
        .filter_map(|f| f.attr("var").map(str::to_owned))
        .collect();
    for f in [NS_MAM, NS_CARBONS, NS_PUBSUB] {
        assert!(feats.iter().any(|x| x == f), "{f}");
    }
    s.submit(A1, chat("prekey.example.org", "q", "")).unwrap();
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attr("from"), Some(A1));
    let reply = messages(s.inbox(A1));
    assert_eq!(reply.len(), 1);
    assert_eq!(reply[0].ns(), NS_CLIENT);
    assert_eq!(reply[0].attr("from"), Some("prekey.example.org"));
    assert_eq!(body(&reply[0]), "echo q");
    // Archived on alice's side: outgoing and incoming.
    assert_eq!(s.archive_len("alice@example.org"), 2);
    assert!(
        s.add_component("example.org", Box::new(|_| Vec::new()))
            .is_err()
    );
}

#[test]
fn presence_broadcast_keeps_children_and_disconnect_sends_unavailable() {
    let mut s = sim();
    online(&mut s, B1);
    online(&mut s, A2);
    let _ = (s.inbox(B1), s.inbox(A2));
    s.connect(A1).unwrap();
    s.submit(
        A1,
        el("<presence xmlns='jabber:client'><device xmlns='urn:xmpp:otr4:0' tag='1a2b3c4d'/><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>"),
    )
    .unwrap();
    let b = s.inbox(B1);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].attr("from"), Some(A1));
    assert_eq!(b[0].attr("to"), Some("bob@example.org"));
    let dev = b[0].get_child("device", "urn:xmpp:otr4:0").unwrap();
    assert_eq!(dev.attr("tag"), Some("1a2b3c4d"));
    assert!(b[0].has_child("c", "http://jabber.org/protocol/caps"));
    let a2 = s.inbox(A2);
    assert_eq!(a2[0].attr("to"), Some(A2));
    // The newcomer got bob's and a2's presence (probe).
    let from: Vec<_> = s
        .inbox(A1)
        .iter()
        .map(|p| p.attr("from").unwrap().to_owned())
        .collect();
    assert_eq!(from.len(), 2);
    assert!(from.contains(&B1.to_owned()) && from.contains(&A2.to_owned()));
    s.disconnect(A1).unwrap();
    let b = s.inbox(B1);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].attr("type"), Some("unavailable"));
    assert_eq!(b[0].attr("from"), Some(A1));
    assert!(!s.is_connected(A1));
    // Unsubscribed users see nothing.
    s.set_subscribed("alice@example.org", "bob@example.org", false)
        .unwrap();
    online(&mut s, A1);
    assert!(s.inbox(B1).is_empty());
}

#[test]
fn spoofed_from_is_rejected_and_bare_from_accepted() {
    let mut s = sim();
    online(&mut s, A1);
    online(&mut s, B1);
    let _ = s.inbox(B1);
    let mut m = chat("bob@example.org", "evil", "");
    set_attr(&mut m, "from", "bob@example.org/x");
    assert_eq!(
        s.submit(A1, m),
        Err(SimError::SpoofedFrom {
            session: A1.into(),
            claimed: "bob@example.org/x".into()
        })
    );
    assert!(s.inbox(B1).is_empty());
    assert_eq!(s.stats().rejected, 1);
    let mut m = chat("bob@example.org", "ok", "");
    set_attr(&mut m, "from", "alice@example.org");
    s.submit(A1, m).unwrap();
    assert_eq!(messages(s.inbox(B1))[0].attr("from"), Some(A1));
    assert_eq!(
        s.submit("alice@example.org/nope", chat("bob@example.org", "x", "")),
        Err(SimError::NotConnected("alice@example.org/nope".into()))
    );
    assert!(matches!(
        s.submit(A1, el("<message xmlns='urn:other'/>")),
        Err(SimError::NotAStanza(_))
    ));
}

#[test]
fn oversized_stanza_closes_the_session() {
    let mut s = sim();
    online(&mut s, A1);
    let mut m = chat("bob@example.org", "big", "");
    m.append_child(text_el("x", "urn:x", &"x".repeat(MAX_STANZA_BYTES)));
    let r = s.submit(A1, m);
    assert!(matches!(r, Err(SimError::Oversized { .. })));
    assert!(!s.is_connected(A1));
}

#[test]
fn unknown_targets_bounce() {
    let mut s = sim();
    online(&mut s, A1);
    let _ = s.inbox(A1);
    s.submit(A1, chat("nobody@example.org", "x", "")).unwrap();
    s.submit(A1, chat("x@elsewhere.net", "x", "")).unwrap();
    let b = messages(s.inbox(A1));
    assert_eq!(b.len(), 2);
    for m in &b {
        assert_eq!(error_condition(m), ["service-unavailable"]);
        assert_eq!(m.attr("to"), Some(A1));
    }
    assert_eq!(b[0].attr("from"), Some("nobody@example.org"));
    let r = iq_result(
        &mut s,
        A1,
        "<iq xmlns='jabber:client' type='get' id='v' to='bob@example.org/gone'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    assert_eq!(error_condition(&r), ["service-unavailable"]);
}

#[test]
fn iq_to_full_jid_is_forwarded_and_answered() {
    let mut s = sim();
    online(&mut s, A1);
    online(&mut s, B1);
    let _ = (s.inbox(A1), s.inbox(B1));
    s.submit(
        A1,
        el("<iq xmlns='jabber:client' type='get' id='caps' to='bob@example.org/phone'><query xmlns='http://jabber.org/protocol/disco#info' node='n#v'/></iq>"),
    )
    .unwrap();
    let q = s.inbox(B1);
    assert_eq!(q[0].attr("from"), Some(A1));
    s.submit(
        B1,
        el("<iq xmlns='jabber:client' type='result' id='caps' to='alice@example.org/a1'><query xmlns='http://jabber.org/protocol/disco#info' node='n#v'/></iq>"),
    )
    .unwrap();
    let r = s.inbox(A1);
    assert_eq!(
        (r[0].attr("type"), r[0].attr("from")),
        (Some("result"), Some(B1))
    );
}

#[test]
fn xep82_round_trips() {
    assert_eq!(xep82(1_764_064_800), "2025-11-25T10:00:00Z");
    assert_eq!(xep82(0), "1970-01-01T00:00:00Z");
    for t in [0, 951_782_400, 1_764_064_800, 4_107_542_399] {
        assert_eq!(parse_xep82(&xep82(t)), Some(t));
    }
    assert_eq!(
        parse_xep82("2025-11-25T11:00:00.123+01:00"),
        Some(1_764_064_800)
    );
    assert_eq!(parse_xep82("2025-13-25T11:00:00Z"), None);
    assert_eq!(parse_xep82("2025-11-25 11:00:00Z"), None);
}
