//! Integration with a real XMPP server: Prosody on loopback, the `prekey-server` binary
//! connected as an XEP-0114 component, two tokio-xmpp clients (STARTTLS + PLAIN, trusting a
//! test CA) that discover the server over disco, check its fingerprint, publish and retrieve.
//!
//! `#[ignore = "needs Prosody …"]`: a plain `cargo test` lists it as ignored;
//! `cargo test -p prekey-server --test prosody -- --ignored` (CI) runs it, and it fails when
//! Prosody cannot be started: Prosody must be installed (or `PREKEY_PROSODY_TEST=1` lets
//! `tests/prosody/setup.sh` install it) and the test must run as root (Prosody is started as
//! user `prosody` with setpriv).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use futures::StreamExt;
use otr4::Fingerprint;
use prekey_server::testkit::{Device, retrieve, retrieved_ids};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_xmpp::connect::DnsConfig;
use tokio_xmpp::parsers::disco::{
    DiscoInfoQuery, DiscoInfoResult, DiscoItemsQuery, DiscoItemsResult,
};
use tokio_xmpp::parsers::jid::Jid;
use tokio_xmpp::parsers::message::{Lang, Message};
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::{Client, Event, IqRequest, IqResponse, Stanza};

const COMPONENT: &str = "prekey.localhost";
const FEATURE: &str = "http://jabber.org/protocol/otrv4-prekey-server";
const STEP: Duration = Duration::from_secs(30);

fn setup_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/prosody/setup.sh")
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

struct Cleanup {
    dir: PathBuf,
    server: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = Command::new("bash")
            .arg(setup_script())
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

#[test]
#[ignore = "needs Prosody (root, setpriv): cargo test -p prekey-server --test prosody -- --ignored"]
fn prosody_component_disco_publish_retrieve() {
    if let (Ok(port), Ok(fp)) = (
        std::env::var("PREKEY_TEST_C2S_PORT"),
        std::env::var("PREKEY_TEST_FINGERPRINT"),
    ) {
        // The child process: the clients' part.
        return block(clients_against_prosody(port.parse().unwrap(), fp));
    }
    let install = std::env::var("PREKEY_PROSODY_TEST").is_ok_and(|v| v == "1");
    assert!(
        install || have("prosody"),
        "Prosody is not installed (PREKEY_PROSODY_TEST=1 lets setup.sh install it)"
    );
    assert!(
        is_root() && have("setpriv"),
        "starting Prosody as user prosody needs root and setpriv"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("prosody");
    let mut cleanup = Cleanup {
        dir: dir.clone(),
        server: None,
    };
    let out = Command::new("bash")
        .arg(setup_script())
        .arg("start")
        .arg(&dir)
        .env("C2S_PORT", "15222")
        .env("COMPONENT_PORT", "15347")
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "setup.sh failed");
    let vars: HashMap<String, String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();

    // The prekey server, as a component.
    let state = tmp.path().join("server");
    let bin = env!("CARGO_BIN_EXE_prekey-server");
    let common = |c: &mut Command| {
        c.args(["--jid", COMPONENT, "--component-host", "127.0.0.1"])
            .args(["--component-port", &vars["COMPONENT_PORT"]])
            .args(["--component-secret", &vars["COMPONENT_SECRET"]])
            .arg("--key-file")
            .arg(state.join("server.key"))
            .arg("--database")
            .arg(state.join("prekeys.db"));
    };
    let mut fpc = Command::new(bin);
    common(&mut fpc);
    let fp_out = fpc.arg("--print-fingerprint").output().unwrap();
    let fingerprint = String::from_utf8(fp_out.stdout).unwrap().trim().to_owned();
    assert_eq!(fingerprint.len(), 112);
    let log = std::fs::File::create(tmp.path().join("server.log")).unwrap();
    let mut sc = Command::new(bin);
    common(&mut sc);
    cleanup.server = Some(sc.stderr(log).spawn().unwrap());

    // The clients run in a child process that trusts the test CA through SSL_CERT_FILE
    // (the environment of this process cannot be changed without `unsafe`).
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "prosody_component_disco_publish_retrieve",
            "--ignored",
            "--nocapture",
        ])
        .env("SSL_CERT_FILE", &vars["CA_FILE"])
        .env("PREKEY_TEST_C2S_PORT", &vars["C2S_PORT"])
        .env("PREKEY_TEST_FINGERPRINT", &fingerprint)
        .status()
        .unwrap();
    let server_log = std::fs::read_to_string(tmp.path().join("server.log")).unwrap_or_default();
    assert!(
        status.success(),
        "client part failed; server log:\n{server_log}"
    );
    assert!(server_log.contains("component connected"), "{server_log}");

    // Graceful shutdown on SIGTERM: exit status 0.
    let server = cleanup.server.take().unwrap();
    let pid = server.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let out = server.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "server did not stop cleanly: {:?}",
        out.status
    );
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn online(jid: &str, password: &str, port: u16) -> Client {
    let mut c = Client::new_starttls(
        jid.parse::<Jid>().unwrap(),
        password,
        DnsConfig::no_srv("127.0.0.1", port),
        Default::default(),
    );
    loop {
        match tokio::time::timeout(STEP, c.next())
            .await
            .expect("login timed out")
        {
            Some(Event::Online { .. }) => break,
            Some(Event::Disconnected(e)) => panic!("{jid}: {e}"),
            Some(_) => {}
            None => panic!("{jid}: stream ended"),
        }
    }
    c.send_stanza(Presence::available().into()).await.unwrap();
    c
}

async fn iq_get(
    c: &mut Client,
    to: &str,
    payload: tokio_xmpp::minidom::Element,
) -> tokio_xmpp::minidom::Element {
    let token = c
        .send_iq(Some(to.parse().unwrap()), IqRequest::Get(payload))
        .await;
    match tokio::time::timeout(STEP, token)
        .await
        .expect("iq timed out")
        .unwrap()
    {
        IqResponse::Result(Some(e)) => e,
        other => panic!("iq to {to}: {other:?}"),
    }
}

/// Service discovery as §"Discovering a Prekey Server": the domain's items, their info,
/// then the prekey server's items for the fingerprint.
async fn discover(c: &mut Client) -> (String, String) {
    let items: DiscoItemsResult = iq_get(
        c,
        "localhost",
        DiscoItemsQuery {
            node: None,
            rsm: None,
        }
        .into(),
    )
    .await
    .try_into()
    .unwrap();
    let mut found = None;
    for item in &items.items {
        let info: DiscoInfoResult = iq_get(
            c,
            &item.jid.to_string(),
            DiscoInfoQuery { node: None }.into(),
        )
        .await
        .try_into()
        .unwrap();
        let is_prekey = info
            .identities
            .iter()
            .any(|i| i.category == "auth" && i.type_ == "otr-prekey")
            && info.features.contains(FEATURE);
        if is_prekey {
            found = Some(item.jid.to_string());
        }
    }
    let server = found.expect("no prekey server in the domain's disco#items");
    let items: DiscoItemsResult = iq_get(
        c,
        &server,
        DiscoItemsQuery {
            node: None,
            rsm: None,
        }
        .into(),
    )
    .await
    .try_into()
    .unwrap();
    let fp = items
        .items
        .iter()
        .find(|i| i.node.as_deref() == Some("fingerprint"))
        .and_then(|i| i.name.clone())
        .expect("no fingerprint item");
    (server, fp)
}

/// Bridges the synchronous testkit drivers to an XMPP client: each request text becomes a
/// `<message>` to the prekey server, the next `<message>` from it is the reply.
fn bridge(
    mut c: Client,
) -> (
    mpsc::Sender<String>,
    mpsc::Receiver<Vec<String>>,
    tokio::task::JoinHandle<Client>,
) {
    let (req_tx, mut req_rx) = mpsc::channel::<String>(1);
    let (resp_tx, resp_rx) = mpsc::channel::<Vec<String>>(1);
    let task = tokio::spawn(async move {
        while let Some(text) = req_rx.recv().await {
            let m =
                Message::chat(Some(COMPONENT.parse::<Jid>().unwrap())).with_body(Lang::new(), text);
            c.send_stanza(m.into()).await.unwrap();
            let reply = loop {
                match tokio::time::timeout(STEP, c.next()).await {
                    Err(_) => break Vec::new(),
                    Ok(Some(Event::Stanza(Stanza::Message(m))))
                        if m.from.as_ref().is_some_and(|f| f.to_string() == COMPONENT) =>
                    {
                        break m.bodies.values().cloned().collect();
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break Vec::new(),
                }
            };
            if resp_tx.send(reply).await.is_err() {
                break;
            }
        }
        c
    });
    (req_tx, resp_rx, task)
}

/// A multi-threaded runtime for the clients' part.
fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The clients' part, in the child process that trusts the test CA.
async fn clients_against_prosody(port: u16, expected_fp: String) {
    let mut bob = online("bob@localhost/phone", "bobpass", port).await;
    let (server, fp) = discover(&mut bob).await;
    assert_eq!(server, COMPONENT);
    assert_eq!(
        fp, expected_fp,
        "disco fingerprint is the operator-published one"
    );
    let fingerprint = Fingerprint(hex::decode(&fp).unwrap().try_into().unwrap());

    // Bob publishes 3 Prekey messages with his profiles.
    let (tx, mut rx, task) = bridge(bob);
    let t = now();
    let (ids, reply, status) = tokio::task::spawn_blocking(move || {
        let mut dev = Device::new("bob@localhost", COMPONENT, fingerprint, t).unwrap();
        let mut ex = |text: &str| {
            tx.blocking_send(text.to_owned()).unwrap();
            rx.blocking_recv().unwrap_or_default()
        };
        let (ids, reply) = dev.publish(3, true, t, &mut ex).unwrap();
        let status = dev.storage_status(t, &mut ex).unwrap();
        (ids, reply, status)
    })
    .await
    .unwrap();
    assert!(
        matches!(
            reply,
            otr4::hazmat::prekey::client::ServerReply::Published { .. }
        ),
        "{reply:?}"
    );
    assert_eq!(
        status,
        otr4::hazmat::prekey::client::ServerReply::StorageStatus { stored: 3 }
    );
    let _bob = task.await.unwrap();

    // Alice discovers the server too and retrieves one of Bob's ensembles.
    let mut alice = online("alice@localhost/laptop", "alicepass", port).await;
    let (_, fp_a) = discover(&mut alice).await;
    assert_eq!(fp_a, fp);
    let (tx, mut rx, task) = bridge(alice);
    let got = tokio::task::spawn_blocking(move || {
        let mut dev = Device::new("alice@localhost", COMPONENT, fingerprint, t).unwrap();
        let mut ex = |text: &str| {
            tx.blocking_send(text.to_owned()).unwrap();
            rx.blocking_recv().unwrap_or_default()
        };
        let first = retrieved_ids(&retrieve(&mut dev.client, "bob@localhost", t, &mut ex).unwrap());
        let unknown = retrieve(&mut dev.client, "nobody@localhost", t, &mut ex).unwrap();
        (first, unknown)
    })
    .await
    .unwrap();
    task.await.unwrap();
    assert_eq!(got.0.len(), 1);
    assert!(ids.contains(&got.0[0]), "a prekey Bob published");
    assert!(matches!(
        got.1,
        otr4::hazmat::prekey::client::Retrieved::NoEnsembles { .. }
    ));
    eprintln!(
        "prosody test: discovered {server} ({fp}), published {ids:x?}, retrieved {:x?}",
        got.0
    );
}
