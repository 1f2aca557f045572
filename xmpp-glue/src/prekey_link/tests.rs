//! Unit tests of the prekey link: discovery and pinning, answers only from the server
//! asked, the bounded queue of waiting texts.
use super::*;
use crate::Output;
use crate::carriage::Carriage;
use crate::directory::Directory;
use otr4::hazmat::prekey::messages::NoPrekeyEnsembles;
use otr4::{Account, Client, Policy};
use rand::SeedableRng;
use rand::rngs::StdRng;

const FP: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct World {
    rng: StdRng,
    client: Client,
    prekeys: otr4::PrekeyStore,
    dir: Directory,
    car: Carriage,
    reqs: Requests,
    link: PrekeyLink,
}

impl World {
    fn new(servers: BTreeMap<String, ServerPin>) -> World {
        let mut rng = StdRng::seed_from_u64(11);
        let account = Account::generate(&mut rng, Policy::standalone(), 1000).unwrap();
        let car = Carriage::new(&mut rng);
        World {
            prekeys: otr4::PrekeyStore::new(account.instance_tag()),
            client: Client::new(account, "alice@x"),
            dir: Directory::default(),
            car,
            reqs: Requests::default(),
            link: PrekeyLink::new(
                "alice@x",
                servers,
                BTreeMap::new(),
                false,
                crate::DEFAULT_REFILL,
            ),
            rng,
        }
    }

    /// Runs `f` with the link, a bridge and the requests; returns the call's outputs.
    fn step(
        &mut self,
        f: impl FnOnce(&mut PrekeyLink, &mut Bridge<'_>, &mut Requests, &mut StdRng),
    ) -> Vec<Output> {
        let mut b = Bridge {
            jid: "alice@x",
            client: &mut self.client,
            prekeys: &mut self.prekeys,
            dir: &mut self.dir,
            car: &mut self.car,
            heal: &mut crate::heal::Healing::default(),
        };
        f(&mut self.link, &mut b, &mut self.reqs, &mut self.rng);
        self.car.finish(InstanceTag(0x100))
    }
}

fn pin(jid: &str) -> ServerPin {
    ServerPin {
        jid: jid.to_owned(),
        fingerprint: FP.to_owned(),
    }
}

fn items(v: &[(&str, Option<&str>, Option<&str>)]) -> Vec<DiscoItem> {
    v.iter()
        .map(|(j, n, name)| DiscoItem {
            jid: (*j).to_owned(),
            node: n.map(str::to_owned),
            name: name.map(str::to_owned),
        })
        .collect()
}

fn answer(ok: bool, disco_items: Vec<DiscoItem>, prekey_server: bool) -> IqResponse {
    IqResponse {
        ok,
        disco_items,
        prekey_server,
        ..IqResponse::default()
    }
}

fn errors(out: &[Output]) -> Vec<&GlueError> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(GlueEvent::Error(e)) => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn discovery_pins_the_server_and_holds_a_changed_fingerprint() {
    let mut w = World::new(BTreeMap::new());
    let out = w.step(|l, b, r, rng| l.ensure_server(b, r, "y", false, 1000, rng));
    assert!(matches!(out.as_slice(), [Output::Stanza(s)] if s.attr("to") == Some("y")));
    let out = w.step(|l, b, r, rng| {
        let p = Pending::DiscoItems { domain: "y".into() };
        let a = answer(
            true,
            items(&[("pk.y", None, None), ("x.y", Some("n"), None)]),
            false,
        );
        l.discovered(b, r, p, a, false, 1000, rng);
    });
    assert_eq!(
        out.len(),
        1,
        "only the item without a node is asked: {out:?}"
    );
    let out = w.step(|l, b, r, rng| {
        let p = Pending::DiscoInfo {
            domain: "y".into(),
            jid: "pk.y".into(),
        };
        l.discovered(b, r, p, answer(true, Vec::new(), true), false, 1000, rng);
    });
    assert!(matches!(out.as_slice(), [Output::Stanza(s)] if s.attr("to") == Some("pk.y")));
    let fp_items = items(&[("pk.y", Some("fingerprint"), Some(&FP.to_uppercase()))]);
    let out = w.step(|l, b, r, rng| {
        let p = Pending::ServerItems {
            domain: "y".into(),
            jid: "pk.y".into(),
        };
        l.discovered(
            b,
            r,
            p,
            answer(true, fp_items.clone(), false),
            false,
            1000,
            rng,
        );
    });
    assert!(matches!(
        out.as_slice(),
        [Output::Event(GlueEvent::PrekeyServer(p))] if *p == pin("pk.y")
    ));
    assert!(w.link.is_server("pk.y"));
    let other = items(&[("pk.y", Some("fingerprint"), Some(&"ab".repeat(56)))]);
    let out = w.step(|l, b, r, rng| {
        let p = Pending::ServerItems {
            domain: "y".into(),
            jid: "pk.y".into(),
        };
        l.discovered(b, r, p, answer(true, other, false), false, 1000, rng);
    });
    assert!(
        matches!(
            out.as_slice(),
            [Output::Event(GlueEvent::PrekeyServerKeyChanged { domain, pinned, offered })]
                if domain == "y" && *pinned == FP && *offered == "ab".repeat(56)
        ),
        "{out:?}"
    );
    assert_eq!(
        w.link.servers().get("y"),
        Some(&pin("pk.y")),
        "the pin holds"
    );
}

#[test]
fn no_server_is_reported_once_no_discovery_is_left() {
    let mut w = World::new(BTreeMap::new());
    w.step(|l, b, r, rng| l.ensure_server(b, r, "y", false, 1000, rng));
    let out = w.step(|l, b, r, rng| {
        let p = Pending::DiscoItems { domain: "y".into() };
        let a = answer(
            true,
            items(&[("a.y", None, None), ("b.y", None, None)]),
            false,
        );
        l.discovered(b, r, p, a, false, 1000, rng);
    });
    assert_eq!(out.len(), 2);
    let info = |jid: &str| Pending::DiscoInfo {
        domain: "y".into(),
        jid: jid.into(),
    };
    // The answers are matched through the requests in a real engine; here the first
    // candidate's request is still open, so its "not a server" says nothing yet.
    let out = w.step(|l, b, r, rng| {
        l.discovered(
            b,
            r,
            info("a.y"),
            answer(false, Vec::new(), false),
            false,
            1000,
            rng,
        )
    });
    assert!(errors(&out).is_empty());
    w.reqs.clear();
    let out = w.step(|l, b, r, rng| {
        l.discovered(
            b,
            r,
            info("b.y"),
            answer(true, Vec::new(), false),
            false,
            1000,
            rng,
        )
    });
    assert!(matches!(
        errors(&out).as_slice(),
        [GlueError::NoPrekeyServer(d)] if d == "y"
    ));
}

/// An error answer carries nothing, even when it echoes the items of a result (RFC 6120
/// §8.3.1 lets an error include the request's payload): a domain that answers disco#items
/// with an error has no prekey server, and a candidate that announces its fingerprint in an
/// error is not pinned.
#[test]
fn error_answers_are_no_discovery_whatever_they_echo() {
    let ask = |w: &mut World, p: Pending, a: IqResponse| {
        w.step(|l, b, r, rng| l.discovered(b, r, p, a, false, 1000, rng))
    };
    // The domain's disco#items fails, echoing a candidate.
    let mut w = World::new(BTreeMap::new());
    w.step(|l, b, r, rng| l.ensure_server(b, r, "y", false, 1000, rng));
    w.reqs.clear();
    let out = ask(
        &mut w,
        Pending::DiscoItems { domain: "y".into() },
        answer(false, items(&[("pk.y", None, None)]), false),
    );
    assert!(
        !out.iter().any(|o| matches!(o, Output::Stanza(_))),
        "a candidate of an error answer was asked: {out:?}"
    );
    assert!(matches!(
        errors(&out).as_slice(),
        [GlueError::NoPrekeyServer(d)] if d == "y"
    ));
    // The candidate's fingerprint query fails, echoing a fingerprint.
    let mut w = World::new(BTreeMap::new());
    w.step(|l, b, r, rng| l.ensure_server(b, r, "y", false, 1000, rng));
    w.reqs.clear();
    let fp_items = items(&[("pk.y", Some("fingerprint"), Some(FP))]);
    let out = ask(
        &mut w,
        Pending::ServerItems {
            domain: "y".into(),
            jid: "pk.y".into(),
        },
        answer(false, fp_items, false),
    );
    assert!(!w.link.is_server("pk.y"), "pinned from an error: {out:?}");
    assert!(w.link.servers().is_empty());
    assert!(matches!(
        errors(&out).as_slice(),
        [GlueError::NoPrekeyServer(d)] if d == "y"
    ));
}

#[test]
fn answers_count_only_from_the_server_asked() {
    let mut servers = BTreeMap::new();
    servers.insert("x".to_owned(), pin("pk.x"));
    servers.insert("y".to_owned(), pin("pk.y"));
    let mut w = World::new(servers);
    let fp = parse_fp(FP).unwrap();
    w.client
        .set_prekey_server(b"pk.x", fp, crate::DEFAULT_REFILL)
        .unwrap();
    let me = w.client.account().instance_tag();
    let none = |who: &str| {
        PrekeyServerMessage::NoPrekeyEnsembles(NoPrekeyEnsembles {
            receiver_tag: me,
            identity: who.as_bytes().to_vec(),
            message: Vec::new(),
        })
    };
    assert!(
        !w.link.reply_expected("pk.y", &none("bob@y")),
        "nothing was asked"
    );
    let out = w.step(|l, b, r, rng| {
        let waiting = Waiting {
            tag: InstanceTag(0x200),
            text: "hi".into(),
            extra: Default::default(),
            sent_to: None,
        };
        l.send_offline(b, r, "bob@y", waiting, true, 1000, rng);
    });
    // The pinned server's key is checked (disco#items) beside the query.
    assert!(
        matches!(out.as_slice(), [Output::Stanza(check), Output::Stanza(s)]
            if check.name() == "iq" && check.attr("to") == Some("pk.y")
                && s.name() == "message" && s.attr("to") == Some("pk.y")),
        "{out:?}"
    );
    assert!(w.link.reply_expected("PK.Y", &none("bob@y")));
    assert!(
        !w.link.reply_expected("pk.x", &none("bob@y")),
        "our own server cannot answer for bob"
    );
    assert!(!w.link.reply_expected("pk.y", &none("carol@y")));
    let mut stats = EngineStats::default();
    let text = otr4::hazmat::prekey::framing::encode(&none("bob@y"));
    let out = w.step(|l, b, _, rng| {
        assert!(!l.body(b, &mut stats, "pk.x", &text, 1000, rng));
    });
    assert!(out.is_empty());
    assert_eq!(stats.spoofed_prekey_replies, 1);
    let out = w.step(|l, b, _, rng| {
        l.body(b, &mut stats, "pk.y", &text, 1000, rng);
    });
    assert!(
        matches!(
            out.as_slice(),
            [Output::Event(GlueEvent::NotSent {
                reason: NotSentReason::NoEnsembles,
                ..
            })]
        ),
        "{out:?}"
    );
    assert!(
        !w.link.reply_expected("pk.y", &none("bob@y")),
        "the query is over"
    );
}

#[test]
fn waiting_texts_are_bounded() {
    let mut w = World::new(BTreeMap::new());
    let out = w.step(|l, b, r, rng| {
        for i in 0..=MAX_WAITING {
            let waiting = Waiting {
                tag: InstanceTag(0x200),
                text: i.to_string(),
                extra: Default::default(),
                sent_to: None,
            };
            l.send_offline(b, r, "bob@y", waiting, true, 1000, rng);
        }
    });
    let full = out
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Event(GlueEvent::NotSent {
                    reason: NotSentReason::QueueFull,
                    ..
                })
            )
        })
        .count();
    assert_eq!(full, 1);
    w.link.forget("bob@y", InstanceTag(0x200));
    assert!(w.link.waiting.get("bob@y").is_some_and(Vec::is_empty));
}

// -------------------------------------------------------------------------------------
// Key rotation (docs/spec-notes.md §"Prekey server key rotation").

use otr4::hazmat::crypto::ed448::KeyPair;
use prekey_server::rotation::{self as server_rotation, Announcement};

fn fp_of(k: &KeyPair) -> String {
    hex::encode(server_rotation::fingerprint(k).as_bytes())
}

/// A world where domain "y"'s server `pk.y` is pinned with `pinned`, some keys `retired`.
fn pinned_world(pinned: &KeyPair, retired: &[&KeyPair]) -> World {
    let mut servers = BTreeMap::new();
    servers.insert(
        "y".to_owned(),
        ServerPin {
            jid: "pk.y".into(),
            fingerprint: fp_of(pinned),
        },
    );
    let mut w = World::new(servers);
    w.link
        .retired
        .insert("y".into(), retired.iter().map(|k| fp_of(k)).collect());
    w
}

/// `pk.y`'s disco#items: fingerprint `current` and the announcements `names`.
fn answer_items(w: &mut World, current: &KeyPair, names: &[String], now: i64) -> Vec<Output> {
    let fp = fp_of(current).to_uppercase();
    let mut v = vec![("pk.y", Some("fingerprint"), Some(fp.as_str()))];
    for n in names {
        v.push(("pk.y", Some(server_rotation::NODE), Some(n.as_str())));
    }
    let it = items(&v);
    w.step(|l, b, r, rng| {
        let p = Pending::ServerItems {
            domain: "y".into(),
            jid: "pk.y".into(),
        };
        l.discovered(b, r, p, answer(true, it, false), false, now, rng);
    })
}

fn sign(old: &KeyPair, new: &KeyPair, not_after: u64) -> String {
    Announcement::sign(old, &server_rotation::fingerprint(new), "pk.y", not_after).disco_name()
}

fn rotated(out: &[Output]) -> Option<(String, String)> {
    out.iter().find_map(|o| match o {
        Output::Event(GlueEvent::PrekeyServerKeyRotated { domain, old, new }) if domain == "y" => {
            Some((old.clone(), new.clone()))
        }
        _ => None,
    })
}

fn held(out: &[Output]) -> Option<String> {
    out.iter().find_map(|o| match o {
        Output::Event(GlueEvent::PrekeyServerKeyChanged {
            domain, offered, ..
        }) if domain == "y" => Some(offered.clone()),
        _ => None,
    })
}

fn keys(n: usize) -> Vec<KeyPair> {
    let mut rng = StdRng::seed_from_u64(99);
    (0..n).map(|_| KeyPair::generate(&mut rng)).collect()
}

#[test]
fn a_rotation_signed_by_the_pinned_key_is_repinned_and_chains_are_followed() {
    let k = keys(3);
    // One step: A → B.
    let mut w = pinned_world(&k[0], &[]);
    let out = answer_items(&mut w, &k[1], &[sign(&k[0], &k[1], 2000)], 1000);
    assert_eq!(rotated(&out), Some((fp_of(&k[0]), fp_of(&k[1]))), "{out:?}");
    assert_eq!(w.link.servers()["y"].fingerprint, fp_of(&k[1]));
    assert!(w.link.retired()["y"].contains(&fp_of(&k[0])));
    assert_eq!(w.link.changed_key("y"), None);
    // Two rotations while we were away: A → B → C, listed in any order.
    let mut w = pinned_world(&k[0], &[]);
    let names = [sign(&k[1], &k[2], 2000), sign(&k[0], &k[1], 2000)];
    let out = answer_items(&mut w, &k[2], &names, 1000);
    assert_eq!(rotated(&out), Some((fp_of(&k[0]), fp_of(&k[2]))), "{out:?}");
    let retired = &w.link.retired()["y"];
    assert!(retired.contains(&fp_of(&k[0])) && retired.contains(&fp_of(&k[1])));
    // The pinned key again, with an old announcement still listed: nothing happens.
    let out = answer_items(&mut w, &k[2], &names, 1000);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn a_forged_mislabelled_or_expired_announcement_holds_the_domain() {
    let k = keys(3);
    // Signed by another key than the pinned one.
    let mut w = pinned_world(&k[0], &[]);
    let out = answer_items(&mut w, &k[1], &[sign(&k[2], &k[1], 2000)], 1000);
    assert_eq!(held(&out), Some(fp_of(&k[1])), "{out:?}");
    assert_eq!(w.link.servers()["y"].fingerprint, fp_of(&k[0]), "pin holds");
    assert_eq!(w.link.changed_key("y"), Some(fp_of(&k[1]).as_str()));
    // A flipped signature bit.
    let mut w = pinned_world(&k[0], &[]);
    let mut name = sign(&k[0], &k[1], 2000);
    let last = name.pop().unwrap();
    name.push(if last == '0' { '1' } else { '0' });
    let out = answer_items(&mut w, &k[1], &[name], 1000);
    assert_eq!(held(&out), Some(fp_of(&k[1])), "{out:?}");
    // Signed for another server JID.
    let mut w = pinned_world(&k[0], &[]);
    let other = Announcement::sign(&k[0], &server_rotation::fingerprint(&k[1]), "pk.z", 2000);
    let out = answer_items(&mut w, &k[1], &[other.disco_name()], 1000);
    assert_eq!(held(&out), Some(fp_of(&k[1])), "{out:?}");
    // The right key and fields, but another domain-separation label.
    let mut w = pinned_world(&k[0], &[]);
    let mut msg = otr4::PrekeyServerKey::rotation_message(
        "pk.y",
        server_rotation::fingerprint(&k[0]).as_bytes(),
        server_rotation::fingerprint(&k[1]).as_bytes(),
        2000,
    );
    msg[0] ^= 1;
    let sig = otr4::hazmat::crypto::eddsa::sign(&k[0], &msg);
    let name = format!(
        "{}.{}.2000.{}",
        hex::encode(k[0].public().encode()),
        hex::encode(server_rotation::fingerprint(&k[1]).as_bytes()),
        hex::encode(sig.0)
    );
    let out = answer_items(&mut w, &k[1], &[name], 1000);
    assert_eq!(held(&out), Some(fp_of(&k[1])), "{out:?}");
    // Valid but expired.
    let mut w = pinned_world(&k[0], &[]);
    let out = answer_items(&mut w, &k[1], &[sign(&k[0], &k[1], 999)], 1000);
    assert_eq!(held(&out), Some(fp_of(&k[1])), "{out:?}");
    // The same, one second earlier: accepted (not_after is the last valid second).
    let mut w = pinned_world(&k[0], &[]);
    let out = answer_items(&mut w, &k[1], &[sign(&k[0], &k[1], 1000)], 1000);
    assert!(rotated(&out).is_some(), "{out:?}");
}

/// Replays: an announcement for a key older than the pinned one does not start at the
/// pinned key; a rotation back to a retired key is refused even when the pinned key signed
/// it.
#[test]
fn replayed_announcements_never_repin() {
    let k = keys(3);
    // Pinned B (A retired). The server shows C, with only A → C listed.
    let mut w = pinned_world(&k[1], &[&k[0]]);
    let out = answer_items(&mut w, &k[2], &[sign(&k[0], &k[2], 2000)], 1000);
    assert_eq!(held(&out), Some(fp_of(&k[2])), "{out:?}");
    // Pinned B (A retired). The server shows A again, with A → B (the old announcement)
    // and even B → A.
    let mut w = pinned_world(&k[1], &[&k[0]]);
    let names = [sign(&k[0], &k[1], 2000), sign(&k[1], &k[0], 2000)];
    let out = answer_items(&mut w, &k[0], &names, 1000);
    assert_eq!(held(&out), Some(fp_of(&k[0])), "{out:?}");
    assert_eq!(w.link.servers()["y"].fingerprint, fp_of(&k[1]));
    // A circle through a retired key: B → A → C is not followed.
    let mut w = pinned_world(&k[1], &[&k[0]]);
    let names = [sign(&k[1], &k[0], 2000), sign(&k[0], &k[2], 2000)];
    let out = answer_items(&mut w, &k[2], &names, 1000);
    assert_eq!(held(&out), Some(fp_of(&k[2])), "{out:?}");
}

/// A held domain: offline texts to it are refused; accepting another fingerprint than the
/// one offered fails; accepting the offered one re-pins it and retires the old one.
#[test]
fn a_held_domain_refuses_offline_texts_until_the_offered_key_is_accepted() {
    let k = keys(2);
    let mut w = pinned_world(&k[0], &[]);
    // Ensemble queries need our own prekey link (as in a running engine).
    w.client
        .set_prekey_server(b"pk.x", parse_fp(FP).unwrap(), crate::DEFAULT_REFILL)
        .unwrap();
    answer_items(&mut w, &k[1], &[], 1000);
    let waiting = || Waiting {
        tag: InstanceTag(0x200),
        text: "hi".into(),
        extra: Default::default(),
        sent_to: None,
    };
    let out = w.step(|l, b, r, rng| l.send_offline(b, r, "bob@y", waiting(), true, 1000, rng));
    assert!(
        matches!(
            out.as_slice(),
            [Output::Event(GlueEvent::NotSent {
                reason: NotSentReason::PrekeyServerKeyChanged,
                ..
            })]
        ),
        "{out:?}"
    );
    let mut res = None;
    w.step(|l, b, r, rng| {
        res = Some(l.accept_key(b, r, "y", &fp_of(&k[0]), true, 1000, rng));
    });
    assert!(
        matches!(res, Some(Err(GlueError::PrekeyServerKeyRefused { .. }))),
        "{res:?}"
    );
    let offered = fp_of(&k[1]).to_uppercase();
    let out = w.step(|l, b, r, rng| {
        res = Some(l.accept_key(b, r, "y", &offered, true, 1000, rng));
    });
    assert!(matches!(res, Some(Ok(()))), "{res:?}");
    assert!(
        matches!(out.as_slice(), [Output::Event(GlueEvent::PrekeyServer(p))] if p.fingerprint == fp_of(&k[1])),
        "{out:?}"
    );
    assert_eq!(w.link.changed_key("y"), None);
    assert!(w.link.retired()["y"].contains(&fp_of(&k[0])));
    let out = w.step(|l, b, r, rng| l.send_offline(b, r, "bob@y", waiting(), true, 1000, rng));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Stanza(s) if s.name() == "message" && s.attr("to") == Some("pk.y"))),
        "the query goes out again: {out:?}"
    );
}
