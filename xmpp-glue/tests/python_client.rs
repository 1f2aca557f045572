//! The Python XMPP client (`examples/python-client/otr4_chat.py`: slixmpp + the `otr4`
//! package) against the Rust `XmppClient`, both on a real Prosody with the real
//! prekey-server component (issue 12 item 5): online and offline starts, a second Python
//! device, restarts of the Python client from its saved state.
//!
//! The Python client runs as a subprocess in its scripted mode (commands on stdin, one JSON
//! event per stdout line); the Rust devices run in-process ([`support::Dev`]). The harness
//! (Prosody, prekey server, child process) is `support/mod.rs`.
//!
//! The Python comes from `OTR4_PYTHON`, else the venv `otr4-uniffi/tests/python/run.sh`
//! makes (`.venv/bin/python` at the repository root); it needs `otr4` and `slixmpp`
//! installed. The tests are `#[ignore]`d like the other Prosody tests; run with
//! `--ignored` (CI: after the Python package step) they FAIL when Python, the package,
//! slixmpp or Prosody is missing, never skip.
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
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use otr4::InstanceTag;
use otr4::SmpUpdate;
use serde_json::Value;
use tokio::sync::mpsc;
use xmpp_glue::{GlueEvent, Trust};

// ----------------------------------------------------------------------------------------
// The Python client as a subprocess.

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python interpreter with `otr4` and `slixmpp` (panics with what to do if there is
/// none: the tests must fail, not skip, where they cannot run).
fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(find_python).clone()
}

fn find_python() -> PathBuf {
    let py = std::env::var_os("OTR4_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    let ok = Command::new(&py)
        .args([
            "-c",
            "import otr4, slixmpp; assert slixmpp.__version__.startswith('1.17')",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import otr4 and slixmpp 1.17: run otr4-uniffi/tests/python/run.sh, then \
         `.venv/bin/pip install -r examples/python-client/requirements.txt` (or set OTR4_PYTHON)",
        py.display()
    );
    py
}

fn script() -> PathBuf {
    repo_root().join("examples/python-client/otr4_chat.py")
}

/// A message the Python client printed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PyMsg {
    peer: String,
    device: u32,
    text: String,
    trust: String,
    sent_to: Option<String>,
}

/// One Python client process (one device): its events so far.
struct Py {
    name: String,
    full_jid: String,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Every event of this process, in order.
    log: Vec<Value>,
    tag: u32,
}

impl Py {
    /// Starts `user/resource` with its state in the test directory; returns once it is
    /// connected and its engine finished catch-up (`online`).
    async fn start(env: &Env, user: &str, resource: &str) -> Py {
        let full_jid = format!("{user}@localhost/{resource}");
        let state = env.dir.join("py-states").join(format!("{user}-{resource}"));
        let mut cmd = Command::new(python());
        cmd.arg(script())
            .args(["--jid", &full_jid, "--host", "127.0.0.1", "--script"])
            .args(["--port", &env.port.to_string()])
            .arg("--state")
            .arg(&state)
            .env("OTR4_CHAT_PASSWORD", password(user))
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(ca) = std::env::var_os("SSL_CERT_FILE") {
            cmd.arg("--ca-file").arg(ca);
        }
        let mut child = cmd.spawn().expect("spawn the Python client");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        let name = format!("py {user}/{resource}");
        let label = name.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("{label}: not a JSON event: {line}"),
                }
            }
        });
        let mut py = Py {
            name,
            full_jid,
            child,
            stdin,
            lines,
            log: Vec::new(),
            tag: 0,
        };
        let connected = py
            .wait_for("connected", |e| e["event"] == "connected")
            .await;
        py.tag = connected["device"].as_u64().unwrap() as u32;
        assert_eq!(connected["jid"], py.full_jid.as_str());
        py.wait_for("online", |e| e["event"] == "online").await;
        py
    }

    fn tag(&self) -> InstanceTag {
        InstanceTag(self.tag)
    }

    fn cmd(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn drain(&mut self) {
        while let Ok(v) = self.lines.try_recv() {
            self.log.push(v);
        }
    }

    /// Waits (at most `STEP`) for an event after the first `from` of this process
    /// matching `pred`; returns it.
    async fn wait_after(
        &mut self,
        from: usize,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + STEP;
        let mut i = from;
        loop {
            while i < self.log.len() {
                if pred(&self.log[i]) {
                    return self.log[i].clone();
                }
                i += 1;
            }
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(v)) => self.log.push(v),
                Ok(None) => panic!(
                    "{}: exited waiting for {what}; events {:#?}",
                    self.name, self.log
                ),
                Err(_) => panic!(
                    "{}: timed out waiting for {what}; events {:#?}",
                    self.name, self.log
                ),
            }
        }
    }

    async fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_after(0, what, pred).await
    }

    /// The devices of `jid` its engine knows (`/devices`).
    async fn devices_of(&mut self, jid: &str) -> Vec<u32> {
        self.drain();
        let mark = self.log.len();
        self.cmd(&format!("/devices {jid}"));
        let v = self
            .wait_after(mark, "devices_of", |e| {
                e["event"] == "devices_of" && e["peer"] == jid
            })
            .await;
        v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as u32)
            .collect()
    }

    /// Polls until its engine knows every device of `tags` for `jid`.
    async fn knows(&mut self, jid: &str, tags: &[InstanceTag]) {
        let deadline = Instant::now() + STEP;
        loop {
            let known = self.devices_of(jid).await;
            if tags.iter().all(|t| known.contains(&t.0)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: devices of {jid}: {known:x?}, expected {tags:x?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn send(&mut self, to: &str, text: &str) {
        self.cmd(&format!("/msg {to} {text}"));
    }

    fn msgs(&mut self) -> Vec<PyMsg> {
        self.drain();
        self.log
            .iter()
            .filter(|e| e["event"] == "message")
            .map(|e| PyMsg {
                peer: e["peer"].as_str().unwrap().to_owned(),
                device: e["device"].as_u64().unwrap() as u32,
                text: e["text"].as_str().unwrap().to_owned(),
                trust: e["trust"].as_str().unwrap().to_owned(),
                sent_to: e["sent_to"].as_str().map(str::to_owned),
            })
            .collect()
    }

    /// Waits until this process printed `n` messages.
    async fn wait_msgs(&mut self, n: usize) {
        if let Err(why) = self.try_wait_msgs(n).await {
            panic!(
                "{}: {why} waiting for {n} messages; events {:#?}",
                self.name, self.log
            );
        }
    }

    /// Waits (at most `STEP`) until this process printed `n` messages; why not if it
    /// did not.
    async fn try_wait_msgs(&mut self, n: usize) -> Result<(), &'static str> {
        let deadline = tokio::time::Instant::now() + STEP;
        while self.msgs().len() < n {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(v)) => self.log.push(v),
                Ok(None) => return Err("exited"),
                Err(_) => return Err("timed out"),
            }
        }
        Ok(())
    }

    /// [`Py::wait_msgs`] from the Rust device `dev`, whose events the failure shows too.
    async fn wait_msgs_from(&mut self, n: usize, dev: &mut Dev) {
        if let Err(why) = self.try_wait_msgs(n).await {
            dev.drain();
            panic!(
                "{}: {why} waiting for {n} messages; events {:#?}\n{} events {:#?}",
                self.name, self.log, dev.name, dev.log
            );
        }
    }

    /// The texts it got from `device` of `jid`, in order.
    fn texts_from(&mut self, jid: &str, device: InstanceTag) -> Vec<String> {
        self.msgs()
            .into_iter()
            .filter(|m| m.peer == jid && m.device == device.0)
            .map(|m| m.text)
            .collect()
    }

    /// No undecryptable payload, no error, nothing unsent, no refused command.
    fn assert_clean(&mut self) {
        self.drain();
        for e in &self.log {
            let kind = e["event"].as_str().unwrap_or_default();
            assert!(
                !["undecryptable", "error", "not_sent", "command_error"].contains(&kind),
                "{}: unexpected {e}",
                self.name
            );
        }
    }

    /// `/quit`: saves and disconnects; the process must exit successfully.
    async fn quit(mut self) {
        self.cmd("/quit");
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{}: exited with {status}", self.name);
                return;
            }
            assert!(Instant::now() < deadline, "{}: did not quit", self.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no chance to save or say goodbye.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----------------------------------------------------------------------------------------
// Helpers on the Rust side.

const ALICE: &str = "alice@localhost";
const BOB: &str = "bob@localhost";

/// The texts the Rust device `dev` got from `device` of `jid`, in order.
fn rust_texts_from(dev: &mut Dev, jid: &str, device: InstanceTag) -> Vec<String> {
    dev.drain();
    dev.msgs()
        .into_iter()
        .filter(|m| m.from == jid && m.device == device)
        .map(|m| m.text)
        .collect()
}

/// The trust the Rust device showed with each message from `device` of `jid`.
fn rust_trust_from(dev: &mut Dev, jid: &str, device: InstanceTag) -> Vec<Trust> {
    dev.drain();
    dev.log
        .iter()
        .filter_map(|e| match e {
            GlueEvent::Message {
                from,
                device: d,
                trust,
                ..
            } if from == jid && *d == device => Some(*trust),
            _ => None,
        })
        .collect()
}

/// Whether the Rust device's session with `device` of `jid` came up (non-)interactively.
fn rust_secure(dev: &mut Dev, jid: &str, device: InstanceTag) -> Vec<bool> {
    dev.drain();
    dev.log
        .iter()
        .filter_map(|e| match e {
            GlueEvent::Secure {
                peer,
                device: d,
                non_interactive,
                ..
            } if peer == jid && *d == device => Some(*non_interactive),
            _ => None,
        })
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Python's alice/`resource` and Rust's bob/b1, online, each knowing the other's device.
async fn pair(env: &Env, resource: &str) -> (Py, Dev) {
    let mut b1 = Dev::start(env, "bob", "b1", false).await;
    b1.ready().await;
    let mut py = Py::start(env, "alice", resource).await;
    py.knows(BOB, &[b1.tag]).await;
    b1.knows(ALICE, &[py.tag()]).await;
    (py, b1)
}

// ----------------------------------------------------------------------------------------
// The scenarios.

#[test]
#[ignore = "needs Prosody (root, setpriv) and the Python client: cargo test -p xmpp-glue --test python_client -- --ignored"]
fn python_client_both_online_dake_messages_smp() {
    let _ = python();
    with_prosody(
        "python_client_both_online_dake_messages_smp",
        &["Published {"],
        |env| block(both_online(env)),
    );
}

async fn both_online(env: Env) {
    let (mut py, mut b1) = pair(&env, "py1").await;
    // Python writes first: an interactive DAKE (b1 is online), then the message.
    py.send(BOB, "hello from slixmpp");
    b1.wait_msgs(1).await;
    b1.send(ALICE, "hello from tokio-xmpp").await;
    py.wait_msgs(1).await;
    assert_eq!(
        rust_texts_from(&mut b1, ALICE, py.tag()),
        strings(&["hello from slixmpp"])
    );
    assert_eq!(
        rust_secure(&mut b1, ALICE, py.tag()),
        vec![false],
        "one interactive DAKE"
    );
    assert_eq!(
        py.msgs(),
        vec![PyMsg {
            peer: BOB.into(),
            device: b1.tag.0,
            text: "hello from tokio-xmpp".into(),
            trust: "tofu".into(),
            sent_to: None,
        }]
    );
    let secure = py
        .wait_for("secure", |e| e["event"] == "secure" && e["peer"] == BOB)
        .await;
    assert_eq!(secure["device"], b1.tag.0);
    assert_eq!(secure["non_interactive"], false);
    assert_eq!(secure["text"], b1.c().fingerprint());

    // SMP, started by the Rust side, answered with the Python client's /smp command.
    b1.c()
        .smp_start(ALICE, py.tag(), b"our first meeting", Some("Where?"))
        .await
        .unwrap();
    let ask = py
        .wait_for("SMP question", |e| {
            e["event"] == "smp" && e["smp"] == "ask_secret"
        })
        .await;
    assert_eq!(
        (ask["peer"].as_str(), ask["device"].as_u64()),
        (Some(BOB), Some(b1.tag.0 as u64))
    );
    assert_eq!(ask["text"], "Where?");
    py.cmd(&format!("/smp {BOB}#{:08x} our first meeting", b1.tag.0));
    py.wait_for("SMP success", |e| {
        e["event"] == "smp" && e["smp"] == "succeeded"
    })
    .await;
    let pt = py.tag();
    b1.wait_for("SMP success", move |e| {
        matches!(e, GlueEvent::Smp { peer, device, update: SmpUpdate::Succeeded, .. } if peer == ALICE && *device == pt)
    })
    .await;
    // Both now see the other device as verified.
    py.send(BOB, "verified?");
    b1.wait_msgs(2).await;
    b1.send(ALICE, "verified.").await;
    py.wait_msgs(2).await;
    settle().await;
    assert_eq!(
        rust_texts_from(&mut b1, ALICE, py.tag()),
        strings(&["hello from slixmpp", "verified?"])
    );
    assert_eq!(
        rust_trust_from(&mut b1, ALICE, py.tag()),
        vec![Trust::Tofu, Trust::Verified]
    );
    let m = py.msgs();
    assert_eq!(m.len(), 2, "exactly once: {m:#?}");
    assert_eq!(
        (m[1].text.as_str(), m[1].trust.as_str()),
        ("verified.", "verified")
    );
    assert_eq!(b1.msgs().len(), 2, "exactly once");
    py.assert_clean();
    b1.assert_clean();
    py.quit().await;
    b1.disconnect().await;
}

#[test]
#[ignore = "needs Prosody (root, setpriv) and the Python client: cargo test -p xmpp-glue --test python_client -- --ignored"]
fn python_client_writes_to_offline_rust_client() {
    let _ = python();
    with_prosody(
        "python_client_writes_to_offline_rust_client",
        &["Published {", "EnsemblesSent"],
        |env| block(rust_offline(env)),
    );
}

async fn rust_offline(env: Env) {
    // b1 publishes its device list and prekeys, then goes away before Python starts.
    let mut b1 = Dev::start(&env, "bob", "b1", false).await;
    b1.ready().await;
    b1.wait_for("Published", |e| matches!(e, GlueEvent::Published { .. }))
        .await;
    b1.disconnect().await;
    let mut py = Py::start(&env, "alice", "py1").await;
    py.knows(BOB, &[b1.tag]).await;
    py.send(BOB, "written while you were offline");
    py.send(BOB, "and a second one");
    let secure = py
        .wait_for("secure", |e| e["event"] == "secure" && e["peer"] == BOB)
        .await;
    assert_eq!(secure["device"], b1.tag.0);
    assert_eq!(secure["non_interactive"], true, "through the prekey server");
    // b1 comes back from its store: offline storage and MAM catch-up deliver each once.
    b1.connect().await;
    b1.wait_msgs(2).await;
    settle().await;
    assert_eq!(
        rust_texts_from(&mut b1, ALICE, py.tag()),
        strings(&["written while you were offline", "and a second one"])
    );
    assert_eq!(b1.msgs().len(), 2, "no duplicates: {:#?}", b1.msgs());
    assert_eq!(
        rust_trust_from(&mut b1, ALICE, py.tag()),
        vec![Trust::Tofu, Trust::Tofu]
    );
    assert_eq!(rust_secure(&mut b1, ALICE, py.tag()), vec![true]);
    // b1 answers on the session the non-interactive DAKE made.
    b1.send(ALICE, "got both").await;
    py.wait_msgs_from(1, &mut b1).await;
    settle().await;
    assert_eq!(
        py.msgs(),
        vec![PyMsg {
            peer: BOB.into(),
            device: b1.tag.0,
            text: "got both".into(),
            trust: "tofu".into(),
            sent_to: None,
        }],
        "exactly once, from b1, first use"
    );
    py.assert_clean();
    b1.assert_clean();
    py.quit().await;
    b1.disconnect().await;
}

#[test]
#[ignore = "needs Prosody (root, setpriv) and the Python client: cargo test -p xmpp-glue --test python_client -- --ignored"]
fn python_client_second_device_multicast_and_own_copies() {
    let _ = python();
    with_prosody(
        "python_client_second_device_multicast_and_own_copies",
        &["Published {"],
        |env| block(second_device(env)),
    );
}

async fn second_device(env: Env) {
    let mut b1 = Dev::start(&env, "bob", "b1", false).await;
    b1.ready().await;
    let mut py1 = Py::start(&env, "alice", "py1").await;
    let mut py2 = Py::start(&env, "alice", "py2").await;
    // Each Python device knows the other (our own list over PEP) and bob's; bob knows both.
    py1.knows(ALICE, &[py2.tag()]).await;
    py2.knows(ALICE, &[py1.tag()]).await;
    py1.knows(BOB, &[b1.tag]).await;
    py2.knows(BOB, &[b1.tag]).await;
    b1.knows(ALICE, &[py1.tag(), py2.tag()]).await;
    // Rust -> both Python devices (MULTICASTING).
    b1.send(ALICE, "to every device of alice").await;
    py1.wait_msgs(1).await;
    py2.wait_msgs(1).await;
    // py1 -> bob; py2 sees its own first device's message; then py2 -> bob, py1 sees it.
    py1.send(BOB, "from py1");
    b1.wait_msgs(1).await;
    py2.wait_msgs(2).await;
    py2.send(BOB, "from py2");
    b1.wait_msgs(2).await;
    py1.wait_msgs(2).await;
    settle().await;
    let from_bob = |text: &str| PyMsg {
        peer: BOB.into(),
        device: b1.tag.0,
        text: text.into(),
        trust: "tofu".into(),
        sent_to: None,
    };
    let own = |dev: &Py, text: &str| PyMsg {
        peer: ALICE.into(),
        device: dev.tag,
        text: text.into(),
        trust: "tofu".into(),
        sent_to: Some(BOB.into()),
    };
    assert_eq!(
        py1.msgs(),
        vec![from_bob("to every device of alice"), own(&py2, "from py2")]
    );
    assert_eq!(
        py2.msgs(),
        vec![from_bob("to every device of alice"), own(&py1, "from py1")]
    );
    assert_eq!(
        rust_texts_from(&mut b1, ALICE, py1.tag()),
        strings(&["from py1"])
    );
    assert_eq!(
        rust_texts_from(&mut b1, ALICE, py2.tag()),
        strings(&["from py2"])
    );
    assert_eq!(b1.msgs().len(), 2);
    for p in [&py1, &py2] {
        assert_eq!(rust_trust_from(&mut b1, ALICE, p.tag()), vec![Trust::Tofu]);
    }
    for p in [&mut py1, &mut py2] {
        p.assert_clean();
    }
    b1.assert_clean();
    py1.quit().await;
    py2.quit().await;
    b1.disconnect().await;
}

#[test]
#[ignore = "needs Prosody (root, setpriv) and the Python client: cargo test -p xmpp-glue --test python_client -- --ignored"]
fn python_client_restarts_from_saved_state() {
    let _ = python();
    with_prosody(
        "python_client_restarts_from_saved_state",
        &["Published {"],
        |env| block(restarts(env)),
    );
}

async fn restarts(env: Env) {
    let (mut py, mut b1) = pair(&env, "py1").await;
    let tag = py.tag();
    py.send(BOB, "1");
    b1.wait_msgs(1).await;
    b1.send(ALICE, "2").await;
    py.wait_msgs(1).await;
    // A clean restart (/quit saves): bob writes meanwhile.
    py.quit().await;
    b1.send(ALICE, "3").await;
    let mut py = Py::start(&env, "alice", "py1").await;
    assert_eq!(py.tag(), tag, "the same device after the restart");
    py.wait_msgs(1).await;
    py.send(BOB, "4");
    b1.wait_msgs(2).await;
    // A crash (SIGKILL) right after a message arrived: what was saved on SAVE_STATE is all
    // the next process has; bob writes meanwhile.
    b1.send(ALICE, "5").await;
    py.wait_msgs(2).await;
    settle().await;
    assert_eq!(
        py.texts_from(BOB, b1.tag),
        strings(&["3", "5"]),
        "nothing decrypted twice"
    );
    assert!(
        py.msgs().iter().all(|m| m.trust == "tofu"),
        "the trust survived the restart: {:#?}",
        py.msgs()
    );
    py.kill();
    b1.send(ALICE, "6").await;
    let mut py = Py::start(&env, "alice", "py1").await;
    assert_eq!(py.tag(), tag);
    py.wait_msgs(1).await;
    py.send(BOB, "7");
    b1.wait_msgs(3).await;
    settle().await;
    assert_eq!(
        py.texts_from(BOB, b1.tag),
        strings(&["6"]),
        "nothing lost, nothing twice"
    );
    assert_eq!(py.msgs().len(), 1);
    assert_eq!(py.msgs()[0].trust, "tofu", "the trust survived the crash");
    assert_eq!(
        rust_texts_from(&mut b1, ALICE, tag),
        strings(&["1", "4", "7"])
    );
    assert_eq!(b1.msgs().len(), 3);
    assert_eq!(rust_trust_from(&mut b1, ALICE, tag), vec![Trust::Tofu; 3]);
    py.assert_clean();
    b1.assert_clean();
    py.quit().await;
    b1.disconnect().await;
}
