//! The OTRv3-compatible mode through XMPP (issue: talk to the OTR users who exist today):
//! a glue device with OTRv3 on (`ConnectOptions::otrv3_key`, a key imported from a libotr
//! `otr.private_key`) talks OTRv3 in plain `<body>` messages, on a real Prosody, to contacts
//! whose client offers only OTRv3 — the JavaScript `otr` library on `@xmpp/client`
//! (`test-vectors/interop/js-otr/xmpp-contact.mjs`), as a Pidgin user would — while an
//! OTRv4 contact still gets OTRv4.
//!
//! `#[ignore = "needs Prosody …"]` like `prosody.rs` (same harness, `support/mod.rs`); it
//! also needs Node and the driver's packages (`npm ci` in `test-vectors/interop/js-otr`), and
//! fails, never skips, when one is missing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod support;
use support::*;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use otr4::InstanceTag;
use tokio::sync::mpsc;
use xmpp_glue::{GlueEvent, Trust};

/// The JavaScript OTRv3 contact: one `node xmpp-contact.mjs` process and its output lines.
struct JsContact {
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
    /// Lines read and not yet matched by [`JsContact::expect`].
    unread: Vec<String>,
    /// Every line, for failure messages.
    all: Vec<String>,
}

fn driver_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/interop/js-otr")
}

impl JsContact {
    /// Connects `user@localhost/pidgin` as an OTRv3-only contact of `peer`; with `fragment`,
    /// it sends in OTRv3 fragments of at most that many characters.
    async fn start(env: &Env, user: &str, peer: &str, fragment: Option<usize>) -> JsContact {
        let dir = driver_dir();
        assert!(
            dir.join("node_modules/@xmpp/client").is_dir() && dir.join("node_modules/otr").is_dir(),
            "the JavaScript contact needs its packages: npm ci in {}",
            dir.display()
        );
        assert!(have("node"), "the JavaScript contact needs Node (node)");
        // A fixed key (the library's own format): generating one in JavaScript takes
        // seconds, too long under a loaded CI machine.
        let keys = env.dir.join(format!("js-{user}"));
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::copy(
            dir.join("keys").join(format!("{user}.dsa.key")),
            keys.join("dsa.key"),
        )
        .unwrap();
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("xmpp-contact.mjs"))
            .arg(format!("{user}@localhost/pidgin"))
            .arg(password(user))
            .arg(env.port.to_string())
            .arg(peer)
            .arg(&keys)
            .env(
                "NODE_EXTRA_CA_CERTS",
                std::env::var("SSL_CERT_FILE").expect("the harness sets SSL_CERT_FILE"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(n) = fragment {
            cmd.env("HARNESS_MAX_MESSAGE_SIZE", n.to_string());
        }
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut c = JsContact {
            name: format!("{user} (JavaScript otr)"),
            child,
            stdin,
            lines,
            unread: Vec::new(),
            all: Vec::new(),
        };
        c.expect("READY").await;
        c
    }

    /// Waits (at most `STEP`) for a line starting with `prefix` not matched before; returns
    /// the rest of it.
    async fn expect(&mut self, prefix: &str) -> String {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            if let Some(i) = self.unread.iter().position(|l| l.starts_with(prefix)) {
                let line = self.unread.remove(i);
                return line[prefix.len()..].trim_start().to_owned();
            }
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    assert!(
                        !line.starts_with("ERROR"),
                        "{}: {line}; output: {:#?}",
                        self.name,
                        self.all
                    );
                    self.all.push(line.clone());
                    self.unread.push(line);
                }
                Ok(None) => panic!("{}: exited; output: {:#?}", self.name, self.all),
                Err(_) => panic!("{}: no {prefix:?} line; output: {:#?}", self.name, self.all),
            }
        }
    }

    /// Runs one command and waits until the driver has sent what it produced.
    async fn cmd(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        self.expect("DONE").await;
    }

    /// No line (read so far) reports a library warning or error.
    fn assert_clean(&self) {
        let bad: Vec<&String> = self.all.iter().filter(|l| l.starts_with("EVENT")).collect();
        assert!(bad.is_empty(), "{}: {bad:#?}", self.name);
    }
}

impl Drop for JsContact {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the `SecureV3` event of `dev` with `peer`; returns the device and fingerprint.
async fn secure_v3(dev: &mut Dev, peer: &str) -> (InstanceTag, String, Trust) {
    let p = peer.to_owned();
    dev.wait_for(
        "SecureV3",
        move |e| matches!(e, GlueEvent::SecureV3 { peer, .. } if *peer == p),
    )
    .await;
    dev.log
        .iter()
        .rev()
        .find_map(|e| match e {
            GlueEvent::SecureV3 {
                peer: from,
                device,
                fingerprint,
                trust,
            } if from == peer => Some((*device, fingerprint.clone(), *trust)),
            _ => None,
        })
        .unwrap()
}

/// A message `dev` got from `from` with `text`: its device, trust and listing.
async fn got(dev: &mut Dev, from: &str, text: &str) -> (InstanceTag, Trust, bool) {
    let (f, t) = (from.to_owned(), text.to_owned());
    dev.wait_for(
        text,
        move |e| matches!(e, GlueEvent::Message { from, text, .. } if *from == f && *text == t),
    )
    .await;
    dev.log
        .iter()
        .find_map(|e| match e {
            GlueEvent::Message {
                from: f,
                text: t,
                device,
                trust,
                listed,
                ..
            } if f == from && t == text => Some((*device, *trust, *listed)),
            _ => None,
        })
        .unwrap()
}

/// The contact sends queries until `dev` has an OTRv3 session with it, as its user would:
/// the JavaScript library cannot open our D-H Commit when our `r` starts with a zero nibble
/// (1 AKE in 16; docs/spec-notes.md), and then stays silent. Returns the contact's instance.
async fn query_until_secure(contact: &mut JsContact, dev: &mut Dev) -> InstanceTag {
    let peer = format!("{}@localhost", contact.name.split(' ').next().unwrap());
    for _ in 0..8 {
        contact.cmd("query").await;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            dev.drain();
            let up = dev.log[dev.mark..].iter().find_map(|e| match e {
                GlueEvent::SecureV3 {
                    peer: p, device, ..
                } if *p == peer => Some(*device),
                _ => None,
            });
            if let Some(device) = up {
                return device;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        eprintln!(
            "{}: no OTRv3 session after its query; it asks again",
            contact.name
        );
    }
    panic!("{}: no OTRv3 session after 8 queries", contact.name)
}

/// Nothing went wrong at `dev` but what the JavaScript library's known defect explains: an
/// OTRv3 AKE message of a contact that did not decode (its 15-byte `r`; the AKE was
/// restarted), reported as undecryptable.
fn assert_clean_but_js_defect(dev: &mut Dev) {
    dev.drain();
    for e in &dev.log {
        let defect = matches!(
            e,
            GlueEvent::Undecryptable {
                error: otr4::ConversationError::Malformed(_),
                ..
            }
        );
        assert!(
            defect
                || !matches!(
                    e,
                    GlueEvent::Undecryptable { .. }
                        | GlueEvent::Error(_)
                        | GlueEvent::NotSent { .. }
                ),
            "{}: unexpected {e:?}",
            dev.name
        );
    }
}

#[test]
#[ignore = "needs Prosody (root, setpriv) and Node: cargo test -p xmpp-glue --test otrv3_contact -- --ignored"]
fn prosody_otrv3_contacts_on_the_javascript_otr_library() {
    with_prosody(
        "prosody_otrv3_contacts_on_the_javascript_otr_library",
        &[],
        |env| block(otrv3_contacts(env)),
    );
}

async fn otrv3_contacts(env: Env) {
    let our_v3 = hex::encode(otrv3_key().fingerprint().0);
    // alice: a glue device with OTRv3 on; carol: an OTRv4 contact (OTRv3 off).
    let mut alice = Dev::start_with(&env, "alice", "a1", |d| d.otrv3 = true).await;
    alice.ready().await;
    let mut carol = Dev::start(&env, "carol", "c1", false).await;
    carol.ready().await;

    // 1. We start: bob lists no OTRv4 device, so the text waits while a query message
    //    offering versions 3 and 4 goes out; bob's library answers with OTRv3; the text
    //    follows in the new session.
    let mut bob = JsContact::start(&env, "bob", "alice@localhost", None).await;
    alice.send("bob@localhost", "hello bob, over OTRv3").await;
    let their = bob.expect("SECURE").await;
    assert_eq!(their, our_v3, "bob sees our imported libotr key");
    assert_eq!(bob.expect("MSG").await, "hello bob, over OTRv3");
    let (bob_tag, bob_fp, trust) = secure_v3(&mut alice, "bob@localhost").await;
    bob.cmd("fp").await;
    assert_eq!(bob.expect("FP").await, bob_fp, "alice sees bob's key");
    assert_eq!(trust, Trust::Tofu, "first use");
    bob.cmd("send hi alice, from the JavaScript library").await;
    let (device, trust, listed) = got(
        &mut alice,
        "bob@localhost",
        "hi alice, from the JavaScript library",
    )
    .await;
    assert_eq!((device, trust, listed), (bob_tag, Trust::Tofu, false));

    // 2. SMP in the OTRv3 session: both succeed, and alice's pin of bob's key is verified.
    alice
        .c()
        .smp_start("bob@localhost", bob_tag, b"the pier at noon", None)
        .await
        .unwrap();
    bob.expect("SMP ask").await;
    bob.cmd("smp-respond the pier at noon").await;
    assert_eq!(bob.expect("SMP").await, "success");
    alice
        .wait_for("bob verified", |e| {
            matches!(e, GlueEvent::TrustChanged { jid, trust: Trust::Verified, .. } if jid == "bob@localhost")
        })
        .await;
    bob.cmd("send after SMP").await;
    assert_eq!(
        got(&mut alice, "bob@localhost", "after SMP").await.1,
        Trust::Verified
    );

    // 3. The contact starts (a query offering version 3 only), and sends in v3 fragments
    //    of 120 characters, each in its own <body>.
    let mut dave = JsContact::start(&env, "dave", "alice@localhost", Some(120)).await;
    let dave_tag = query_until_secure(&mut dave, &mut alice).await;
    assert_eq!(dave.expect("SECURE").await, our_v3);
    let long = "a longer text that the JavaScript library sends in OTRv3 fragments ".repeat(4);
    dave.cmd(&format!("send {long}")).await;
    assert_eq!(got(&mut alice, "dave@localhost", &long).await.0, dave_tag);
    alice.send("dave@localhost", "reassembled").await;
    assert_eq!(dave.expect("MSG").await, "reassembled");

    // 4. bob ends the session; our next text starts a new OTRv3 session and arrives. bob's
    //    client is restarted first, as a user of the JavaScript library would find
    //    necessary: one `OTR` object cannot run a second AKE after its session rotated keys
    //    (docs/spec-notes.md). Same key, new instance tag: still the pinned, verified key.
    bob.cmd("end").await;
    alice
        .wait_for("bob finished", |e| {
            matches!(e, GlueEvent::Otr(otr4::Event::Finished { peer, .. }) if peer == "bob@localhost")
        })
        .await;
    bob.assert_clean();
    drop(bob);
    let mut bob = JsContact::start(&env, "bob", "alice@localhost", None).await;
    let before = alice.log.len();
    alice.send("bob@localhost", "once more").await;
    assert_eq!(bob.expect("MSG").await, "once more");
    alice.mark = before;
    let (again, fp, trust) = secure_v3(&mut alice, "bob@localhost").await;
    assert_ne!(again, bob_tag, "a new instance");
    assert_eq!((fp, trust), (bob_fp, Trust::Verified));

    // 5. An OTRv4 contact still gets OTRv4 from the same device, never OTRv3.
    alice
        .send("carol@localhost", "hello carol, over OTRv4")
        .await;
    let (device, _, _) = got(&mut carol, "alice@localhost", "hello carol, over OTRv4").await;
    assert_eq!(device, alice.tag);
    alice
        .wait_for(
            "Secure (OTRv4) with carol",
            |e| matches!(e, GlueEvent::Secure { peer, .. } if peer == "carol@localhost"),
        )
        .await;
    alice.drain();
    assert!(
        !alice
            .log
            .iter()
            .any(|e| matches!(e, GlueEvent::SecureV3 { peer, .. } if peer == "carol@localhost")),
        "carol is an OTRv4 contact"
    );

    bob.assert_clean();
    dave.assert_clean();
    assert_clean_but_js_defect(&mut alice);
    carol.assert_clean();
    alice.disconnect().await;
    carol.disconnect().await;
}
