//! Encrypted file transfer (docs/xmpp-glue.md §9): on the in-memory server (an upload
//! component and a map for a web server) a file reaches every device of the contact and
//! our other devices; tampered, truncated and oversized files are refused with typed
//! errors; a slot answered by a stranger is ignored. Against real Prosody 0.12 with
//! `mod_http_file_share` (`#[ignore]`d locally, run in CI with `--ignored`): a 5 MiB file
//! from one device to a contact with two devices, and a tampered download refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use rand::SeedableRng;
use rand::rngs::StdRng;
use xmpp_glue::minidom::Element;
use xmpp_glue::otr4::{Account, Client, PrekeyStore};
use xmpp_glue::{
    Engine, EngineConfig, FileError, GlueEvent, GlueState, Output, ReceivedFile, Trust, ns, stanza,
};
use xmpp_sim::demo;

use demo::Net;
use demo::net_sim::SimNet;

// The Prosody helpers shared with `prosody.rs` and `python_client.rs`.
mod support;

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i.wrapping_mul(7919) >> 3) as u8).collect()
}

fn files(ev: &[(String, GlueEvent)]) -> Vec<(String, &ReceivedFile)> {
    ev.iter()
        .filter_map(|(d, e)| match e {
            GlueEvent::File(f) => Some((d.clone(), f.as_ref())),
            _ => None,
        })
        .collect()
}

fn failures(ev: &[(String, GlueEvent)]) -> Vec<(String, FileError)> {
    ev.iter()
        .filter_map(|(d, e)| match e {
            GlueEvent::FileFailed { error, .. } => Some((d.clone(), error.clone())),
            _ => None,
        })
        .collect()
}

/// alice/a1, alice/a2, bob/b1, bob/b2 online, sessions not yet needed.
async fn network(dir: &std::path::Path) -> SimNet {
    let mut net = SimNet::new("example.org", dir);
    for d in ["alice/a1", "alice/a2", "bob/b1", "bob/b2"] {
        net.connect(d).await;
        net.settle().await;
    }
    net
}

#[test]
fn a_file_reaches_every_device_of_the_contact_and_our_other_devices() {
    let dir = tempfile::tempdir().unwrap();
    block(async {
        let mut net = network(dir.path()).await;
        let file = data(200_000);
        let f2 = file.clone();
        net.act("alice/a1", move |e, t, rng| {
            e.send_file("bob@example.org", "cat.png", "image/png", &f2, t, rng)
                .1
        });
        let ev = net.settle().await;
        let got = files(&ev);
        let a1 = net.tag("alice/a1");
        let mut devices: Vec<&str> = got.iter().map(|(d, _)| d.as_str()).collect();
        devices.sort();
        assert_eq!(devices, ["alice/a2", "bob/b1", "bob/b2"], "{ev:#?}");
        for (d, f) in &got {
            assert_eq!(f.data.as_slice(), file.as_slice(), "{d}");
            assert_eq!((f.from.as_str(), f.device), ("alice@example.org", a1));
            assert_eq!(
                (f.name.as_str(), f.media_type.as_str()),
                ("cat.png", "image/png")
            );
            assert_eq!(f.trust, Trust::Tofu, "{d}");
            assert!(f.listed);
            let to = (d == "alice/a2").then(|| "bob@example.org".to_owned());
            assert_eq!(f.sent_to, to, "{d}");
        }
        assert!(
            ev.iter().any(|(d, e)| d == "alice/a1"
                && matches!(e, GlueEvent::FileSent { to, .. } if to == "bob@example.org")),
            "{ev:#?}"
        );
        assert!(failures(&ev).is_empty());
        // The server holds ciphertext only: one upload, no plaintext in it.
        let stored = net.http_files();
        let stored = stored.lock().unwrap();
        assert_eq!(stored.len(), 1);
        let body = stored.values().next().unwrap();
        assert_eq!(
            body.len() as u64,
            xmpp_glue::ciphertext_len(file.len() as u64).unwrap()
        );
        assert!(!body.windows(64).any(|w| w == &file[1000..1064]));
    });
}

/// Sends a file from alice/a1 to bob through a web server that changes what it stores
/// with `spoil`; returns the events.
fn spoiled(spoil: fn(&mut Vec<u8>)) -> Vec<(String, GlueEvent)> {
    let dir = tempfile::tempdir().unwrap();
    block(async {
        let mut net = network(dir.path()).await;
        net.spoil_uploads(spoil);
        let file = data(3 * 65536 + 10);
        net.act("alice/a1", move |e, t, rng| {
            e.send_file("bob@example.org", "x.pdf", "application/pdf", &file, t, rng)
                .1
        });
        net.settle().await
    })
}

#[test]
fn a_tampered_file_is_refused_with_no_file_event() {
    for i in [0usize, 1000, 65536 + 16, 3 * (65536 + 16) + 5] {
        let ev = match i {
            0 => spoiled(|v| v[0] ^= 1),
            1000 => spoiled(|v| v[1000] ^= 0x80),
            x if x == 65536 + 16 => spoiled(|v| v[65536 + 16] ^= 1),
            _ => spoiled(|v| {
                let n = v.len();
                v[n - 1] ^= 1
            }),
        };
        assert!(files(&ev).is_empty(), "byte {i}: {ev:#?}");
        let f = failures(&ev);
        let bob: Vec<_> = f.iter().filter(|(d, _)| d.starts_with("bob/")).collect();
        assert_eq!(bob.len(), 2, "byte {i}: {f:?}");
        assert!(bob.iter().all(|(_, e)| *e == FileError::Tampered), "{f:?}");
    }
}

#[test]
fn a_truncated_or_extended_file_is_refused() {
    let ev = spoiled(|v| v.truncate(65536 + 16));
    assert!(files(&ev).is_empty());
    assert!(
        failures(&ev).iter().any(|(d, e)| d == "bob/b1"
            && matches!(e, FileError::Truncated { got, .. } if *got == 65536 + 16)),
        "{ev:#?}"
    );
    let ev = spoiled(|v| v.push(0));
    assert!(files(&ev).is_empty());
    assert!(
        failures(&ev)
            .iter()
            .any(|(d, e)| d == "bob/b2" && *e == FileError::Tampered)
    );
}

#[test]
fn an_oversized_file_is_refused_before_upload() {
    let dir = tempfile::tempdir().unwrap();
    block(async {
        let mut net = network(dir.path()).await;
        // Over the service's max-file-size (16 MiB in the sim).
        let big = vec![0u8; 17 * 1024 * 1024];
        net.act("alice/a1", move |e, t, rng| {
            e.send_file(
                "bob@example.org",
                "big.iso",
                "application/octet-stream",
                &big,
                t,
                rng,
            )
            .1
        });
        let ev = net.settle().await;
        assert!(net.http_files().lock().unwrap().is_empty());
        assert!(
            failures(&ev)
                .iter()
                .any(|(d, e)| d == "alice/a1" && matches!(e, FileError::TooLarge { .. })),
            "{ev:#?}"
        );
        assert!(files(&ev).is_empty());
    });
}

// ----------------------------------------------------------------------------------------
// One engine, answers by hand: who may answer discovery and slot requests.

fn iqs(out: &[Output]) -> Vec<Element> {
    out.iter()
        .filter_map(|o| match o {
            Output::Stanza(s) if s.name() == "iq" => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn answer(req: &Element, from: &str, payload: Option<Element>) -> Element {
    let mut r = stanza::reply(req, "result", payload);
    stanza::set_attr(&mut r, "from", from);
    stanza::set_attr(&mut r, "to", "alice@example.org/a1");
    r
}

fn parse(xml: &str) -> Element {
    xml.parse().unwrap()
}

#[test]
fn slots_and_discovery_answered_by_strangers_are_ignored() {
    let mut rng = StdRng::seed_from_u64(9);
    let account = Account::generate(&mut rng, demo::net_sim::policy(), 1000).unwrap();
    let client = Client::new(account, "alice@example.org");
    let prekeys = PrekeyStore::new(client.account().instance_tag());
    let cfg = EngineConfig::new("alice@example.org", "a1");
    let mut e = Engine::new(cfg, client, prekeys, GlueState::default(), &mut rng);
    let _ = e.online("alice@example.org/a1", 1000, &mut rng);
    let (id, out) = e.send_file(
        "alice@example.org",
        "a.txt",
        "text/plain",
        b"hello",
        1000,
        &mut rng,
    );
    let items_req = iqs(&out)
        .into_iter()
        .find(|s| {
            s.get_child("query", ns::DISCO_ITEMS).is_some() && s.attr("to") == Some("example.org")
        })
        .expect("disco#items on our domain");
    let items = parse(&format!(
        "<query xmlns='{}'><item jid='upload.example.org'/></query>",
        ns::DISCO_ITEMS
    ));
    // A contact answering for our server: ignored.
    let out = e.handle(
        &answer(&items_req, "mallory@example.org", Some(items.clone())),
        1000,
        &mut rng,
    );
    assert!(iqs(&out).is_empty());
    assert_eq!(e.stats().spoofed_replies, 1);
    let out = e.handle(
        &answer(&items_req, "example.org", Some(items)),
        1000,
        &mut rng,
    );
    let infos = iqs(&out);
    let info_req = infos
        .iter()
        .find(|s| s.attr("to") == Some("upload.example.org"))
        .expect("disco#info on the item");
    let feature = parse(&format!(
        "<query xmlns='{}'><feature var='{}'/></query>",
        ns::DISCO_INFO,
        ns::HTTP_UPLOAD
    ));
    // A stranger claiming to be the upload service: ignored.
    let out = e.handle(
        &answer(info_req, "evil.example.net", Some(feature.clone())),
        1000,
        &mut rng,
    );
    assert!(iqs(&out).is_empty());
    let out = e.handle(
        &answer(info_req, "upload.example.org", Some(feature)),
        1000,
        &mut rng,
    );
    let slot_req = iqs(&out)
        .into_iter()
        .find(|s| s.get_child("request", ns::HTTP_UPLOAD).is_some())
        .expect("a slot request");
    assert_eq!(slot_req.attr("to"), Some("upload.example.org"));
    let req = slot_req.get_child("request", ns::HTTP_UPLOAD).unwrap();
    assert_ne!(
        req.attr("filename"),
        Some("a.txt"),
        "the real name stays private"
    );
    assert_eq!(req.attr("size"), Some("21"), "5 bytes + one tag");
    let slot = |put: &str| {
        parse(&format!(
            "<slot xmlns='{0}'><put url='{put}'><header name='Authorization'>Bearer x</header><header name='X-Evil'>1</header></put><get url='https://upload.example.org/g/1'/></slot>",
            ns::HTTP_UPLOAD
        ))
    };
    // A stranger's slot (pointing at its own server): ignored, no upload.
    let out = e.handle(
        &answer(
            &slot_req,
            "mallory@example.org",
            Some(slot("https://evil.example.net/p")),
        ),
        1000,
        &mut rng,
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Upload(_))));
    assert_eq!(e.stats().spoofed_replies, 3);
    let out = e.handle(
        &answer(
            &slot_req,
            "upload.example.org",
            Some(slot("https://upload.example.org/p/1")),
        ),
        1000,
        &mut rng,
    );
    let up = out
        .iter()
        .find_map(|o| match o {
            Output::Upload(u) => Some(u),
            _ => None,
        })
        .expect("the upload");
    assert_eq!(up.transfer, id);
    assert_eq!(up.url, "https://upload.example.org/p/1");
    assert_eq!(
        up.headers,
        vec![("Authorization".to_owned(), "Bearer x".to_owned())]
    );
    assert_eq!(up.body.len(), 21);
}

#[test]
fn plain_http_slots_are_refused_unless_the_origin_is_allowed() {
    for (allowed, ok) in [(None, false), (Some("http://127.0.0.1:5280"), true)] {
        let mut rng = StdRng::seed_from_u64(10);
        let account = Account::generate(&mut rng, demo::net_sim::policy(), 1000).unwrap();
        let client = Client::new(account, "alice@example.org");
        let prekeys = PrekeyStore::new(client.account().instance_tag());
        let mut cfg = EngineConfig::new("alice@example.org", "a1");
        cfg.allow_http_origin = allowed.map(str::to_owned);
        let mut e = Engine::new(cfg, client, prekeys, GlueState::default(), &mut rng);
        let _ = e.online("alice@example.org/a1", 1000, &mut rng);
        let (_, out) = e.send_file(
            "alice@example.org",
            "a.txt",
            "text/plain",
            b"hi",
            1000,
            &mut rng,
        );
        let items_req = iqs(&out)
            .into_iter()
            .find(|s| s.get_child("query", ns::DISCO_ITEMS).is_some())
            .unwrap();
        let out = e.handle(
            &answer(
                &items_req,
                "example.org",
                Some(parse(&format!("<query xmlns='{}'/>", ns::DISCO_ITEMS))),
            ),
            1000,
            &mut rng,
        );
        // No items: the domain itself is asked.
        let info_req = iqs(&out)
            .into_iter()
            .find(|s| s.attr("to") == Some("example.org"))
            .unwrap();
        let feature = parse(&format!(
            "<query xmlns='{}'><feature var='{}'/></query>",
            ns::DISCO_INFO,
            ns::HTTP_UPLOAD
        ));
        let out = e.handle(
            &answer(&info_req, "example.org", Some(feature)),
            1000,
            &mut rng,
        );
        let slot_req = iqs(&out)
            .into_iter()
            .find(|s| s.get_child("request", ns::HTTP_UPLOAD).is_some())
            .unwrap();
        let slot = parse(&format!(
            "<slot xmlns='{0}'><put url='http://127.0.0.1:5280/p'/><get url='http://127.0.0.1:5280/p'/></slot>",
            ns::HTTP_UPLOAD
        ));
        let out = e.handle(
            &answer(&slot_req, "example.org", Some(slot)),
            1000,
            &mut rng,
        );
        let uploaded = out.iter().any(|o| matches!(o, Output::Upload(_)));
        let refused = out.iter().any(|o| {
            matches!(
                o,
                Output::Event(GlueEvent::FileFailed {
                    error: FileError::BadUrl(_),
                    ..
                })
            )
        });
        assert_eq!((uploaded, refused), (ok, !ok), "{allowed:?}");
    }
}

// ----------------------------------------------------------------------------------------
// Real Prosody 0.12 with mod_http_file_share. The harness is a trimmed copy of
// tests/prosody.rs's (same setup.sh, with UPLOAD_HTTP_PORT; its own ports), so both test
// binaries can move to one shared support module.

mod prosody {
    use super::*;
    use crate::support::{missing, port, prekey_server_bin, setup_script};

    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use xmpp_glue::client::{ConnectOptions, EventStream, XmppClient};
    use xmpp_glue::otr4::InstanceTag;

    const STEP: Duration = Duration::from_secs(60);
    const C2S_PORT: &str = "15242";
    const COMPONENT_PORT: &str = "15367";
    const HTTP_PORT: &str = "15280";
    const COMPONENT: &str = "prekey.localhost";

    static ONE_PROSODY: Mutex<()> = Mutex::new(());

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

    pub(super) struct Env {
        port: u16,
        dir: PathBuf,
        prosody_dir: PathBuf,
        origin: String,
    }

    fn env() -> Option<Env> {
        let port = std::env::var("FT_TEST_C2S_PORT").ok()?.parse().ok()?;
        let dir = PathBuf::from(std::env::var("FT_TEST_DIR").ok()?);
        let prosody_dir = PathBuf::from(std::env::var("FT_TEST_PROSODY_DIR").ok()?);
        let origin = std::env::var("FT_TEST_HTTP_ORIGIN").ok()?;
        Some(Env {
            port,
            dir,
            prosody_dir,
            origin,
        })
    }

    /// In the child process (its environment names the Prosody) runs `scenario`;
    /// otherwise starts Prosody (with mod_http_file_share) and the prekey server, runs
    /// `test` again in a child that trusts the test CA, and stops them. Never skips.
    pub(super) fn with_prosody(test: &str, scenario: impl FnOnce(Env)) {
        if let Some(env) = env() {
            scenario(env);
            return;
        }
        if let Some(why) = missing() {
            panic!("{test} cannot run: {why}");
        }
        let _one = ONE_PROSODY.lock().unwrap_or_else(|e| e.into_inner());
        let bin = prekey_server_bin();
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
            .env("C2S_PORT", port(C2S_PORT))
            .env("COMPONENT_PORT", port(COMPONENT_PORT))
            .env("UPLOAD_HTTP_PORT", port(HTTP_PORT))
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
        let state = tmp.path().join("server");
        let mut sc = Command::new(&bin);
        sc.args(["--jid", COMPONENT, "--component-host", "127.0.0.1"])
            .args(["--component-port", &vars["COMPONENT_PORT"]])
            .args(["--component-secret", &vars["COMPONENT_SECRET"]])
            .arg("--key-file")
            .arg(state.join("server.key"))
            .arg("--database")
            .arg(state.join("prekeys.db"));
        let log_path = tmp.path().join("server.log");
        cleanup.server = Some(
            sc.stderr(std::fs::File::create(&log_path).unwrap())
                .spawn()
                .unwrap(),
        );
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--ignored", "--nocapture"])
            .env("SSL_CERT_FILE", &vars["CA_FILE"])
            .env("FT_TEST_C2S_PORT", &vars["C2S_PORT"])
            .env("FT_TEST_DIR", tmp.path())
            .env("FT_TEST_PROSODY_DIR", &vars["PROSODY_DIR"])
            .env(
                "FT_TEST_HTTP_ORIGIN",
                format!("http://127.0.0.1:{}", vars["UPLOAD_HTTP_PORT"]),
            )
            .status()
            .unwrap();
        let server_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let prosody_log = std::fs::read_to_string(dir.join("prosody.err")).unwrap_or_default();
        let info = std::fs::read_to_string(dir.join("prosody.log")).unwrap_or_default();
        let lines: Vec<&str> = info.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        assert!(
            status.success(),
            "{test} failed; prekey-server log:\n{server_log}\nprosody errors:\n{prosody_log}\nprosody log (end):\n{tail}"
        );
    }

    /// One device: its client and its events so far.
    pub(super) struct Dev {
        name: String,
        full_jid: String,
        store: PathBuf,
        port: u16,
        origin: String,
        client: Option<XmppClient>,
        events: Option<EventStream>,
        pub tag: InstanceTag,
        pub log: Vec<GlueEvent>,
        mark: usize,
    }

    impl Dev {
        pub async fn start(env: &Env, user: &str, resource: &str) -> Dev {
            let mut d = Dev {
                name: format!("{user}/{resource}"),
                full_jid: format!("{user}@localhost/{resource}"),
                store: env.dir.join("stores").join(format!("{user}-{resource}")),
                port: env.port,
                origin: env.origin.clone(),
                client: None,
                events: None,
                tag: InstanceTag(0),
                log: Vec::new(),
                mark: 0,
            };
            d.connect().await;
            d
        }

        pub async fn connect(&mut self) {
            let user = self.full_jid.split('@').next().unwrap_or_default();
            let mut o = ConnectOptions::new(&self.full_jid, &format!("{user}pass"), &self.store);
            o.host = "127.0.0.1".into();
            o.port = self.port;
            o.tick = Duration::from_secs(2);
            o.allow_http_origin = Some(self.origin.clone());
            let (c, ev) = XmppClient::connect(o)
                .await
                .unwrap_or_else(|e| panic!("{}: connect: {e}", self.name));
            self.tag = c.tag();
            self.client = Some(c);
            self.events = Some(ev);
            self.mark = self.log.len();
        }

        pub fn c(&self) -> &XmppClient {
            self.client.as_ref().unwrap()
        }

        pub async fn disconnect(&mut self) {
            self.client.take().unwrap().disconnect().await.unwrap();
            if let Some(mut ev) = self.events.take() {
                while let Some(e) = ev.recv().await {
                    self.log.push(e);
                }
            }
        }

        /// Waits (at most `STEP`) for an event since the last connection matching `pred`.
        pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&GlueEvent) -> bool) {
            let deadline = tokio::time::Instant::now() + STEP;
            let mut i = self.mark;
            loop {
                while i < self.log.len() {
                    if pred(&self.log[i]) {
                        return;
                    }
                    i += 1;
                }
                let ev = self.events.as_mut().expect("connected");
                match tokio::time::timeout_at(deadline, ev.recv()).await {
                    Ok(Some(e)) => self.log.push(e),
                    Ok(None) => panic!("{}: event stream ended waiting for {what}", self.name),
                    Err(_) => panic!(
                        "{}: timed out waiting for {what}; events: {:#?}",
                        self.name,
                        &self.log[self.mark..]
                    ),
                }
            }
        }

        pub fn drain(&mut self) {
            if let Some(ev) = self.events.as_mut() {
                while let Some(e) = ev.try_recv() {
                    self.log.push(e);
                }
            }
        }
    }

    /// The stored uploads of mod_http_file_share (`<data>/upload%2elocalhost/http_file_share/*.bin`).
    pub(super) fn stored_uploads(env: &Env) -> Vec<PathBuf> {
        let d = env
            .prosody_dir
            .join("data")
            .join("upload%2elocalhost")
            .join("http_file_share");
        let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "bin"))
            .collect();
        v.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        v
    }

    pub(super) fn now() -> Instant {
        Instant::now()
    }
}

fn got_file(e: &GlueEvent, name: &str) -> bool {
    matches!(e, GlueEvent::File(f) if f.name == name)
}

#[test]
#[ignore = "needs Prosody (root, setpriv): cargo test -p xmpp-glue --test file_transfer -- --ignored"]
fn prosody_file_transfer_5mib_to_two_devices_and_a_tampered_download() {
    prosody::with_prosody(
        "prosody_file_transfer_5mib_to_two_devices_and_a_tampered_download",
        block_mt_run,
    );
}

fn block_mt_run(env: prosody::Env) {
    // RUST_LOG=xmpp_glue=debug shows the client's uploads and downloads.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(prosody_scenario(env));
}

async fn prosody_scenario(env: prosody::Env) {
    use prosody::Dev;
    let mut a1 = Dev::start(&env, "alice", "a1").await;
    a1.wait_for("Listed", |e| matches!(e, GlueEvent::Listed))
        .await;
    let mut b1 = Dev::start(&env, "bob", "b1").await;
    b1.wait_for("Listed", |e| matches!(e, GlueEvent::Listed))
        .await;
    let mut b2 = Dev::start(&env, "bob", "b2").await;
    b2.wait_for("Listed", |e| matches!(e, GlueEvent::Listed))
        .await;
    // Sessions with both of bob's devices (and alice knows bob's list) before the file.
    let hello = |e: &GlueEvent| matches!(e, GlueEvent::Message { text, .. } if text == "hello");
    let deadline = prosody::now() + std::time::Duration::from_secs(60);
    loop {
        a1.c().send("bob@localhost", "hello").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        b1.drain();
        b2.drain();
        if b1.log.iter().any(hello) && b2.log.iter().any(hello) {
            break;
        }
        assert!(
            prosody::now() < deadline,
            "bob's devices never got hello: {:#?}",
            a1.log
        );
    }

    // 1. 5 MiB from alice/a1 to both of bob's devices.
    let file = data(5 * 1024 * 1024);
    let started = prosody::now();
    let id = a1
        .c()
        .send_file(
            "bob@localhost",
            "five.bin",
            "application/octet-stream",
            file.clone(),
        )
        .await
        .unwrap();
    a1.wait_for("the upload's outcome", |e| {
        matches!(e, GlueEvent::FileSent { transfer, .. } | GlueEvent::FileFailed { transfer, .. } if *transfer == id)
    })
    .await;
    assert!(
        a1.log
            .iter()
            .any(|e| matches!(e, GlueEvent::FileSent { transfer, .. } if *transfer == id)),
        "{:#?}",
        a1.log
    );
    for b in [&mut b1, &mut b2] {
        b.wait_for("five.bin", |e| got_file(e, "five.bin")).await;
    }
    let took = started.elapsed();
    eprintln!("5 MiB file to two devices over Prosody mod_http_file_share: {took:.2?}");
    for b in [&b1, &b2] {
        let f = b
            .log
            .iter()
            .find_map(|e| match e {
                GlueEvent::File(f) if f.name == "five.bin" => Some(f),
                _ => None,
            })
            .unwrap();
        assert!(f.data.as_slice() == file.as_slice(), "bytes differ");
        assert_eq!((f.from.as_str(), f.device), ("alice@localhost", a1.tag));
        assert_eq!(f.trust, Trust::Tofu);
        assert!(f.listed);
        assert_eq!(f.sent_to, None);
    }
    let stored = prosody::stored_uploads(&env);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let on_disk = std::fs::read(&stored[0]).unwrap();
    assert_eq!(
        on_disk.len() as u64,
        xmpp_glue::ciphertext_len(file.len() as u64).unwrap()
    );
    assert!(
        !on_disk.windows(64).any(|w| w == &file[4096..4160]),
        "plaintext on the server"
    );

    // 2. A tampered download: b2 is offline when the second file arrives; the stored
    //    ciphertext is changed on Prosody's disk before b2 comes back and fetches it.
    b2.disconnect().await;
    let small = data(300_000);
    a1.c()
        .send_file(
            "bob@localhost",
            "second.bin",
            "application/octet-stream",
            small.clone(),
        )
        .await
        .unwrap();
    b1.wait_for("second.bin", |e| got_file(e, "second.bin"))
        .await;
    let stored = prosody::stored_uploads(&env);
    assert_eq!(stored.len(), 2);
    let path = &stored[1];
    let mut bytes = std::fs::read(path).unwrap();
    bytes[100_000] ^= 0x20;
    std::fs::write(path, &bytes).unwrap();
    b2.connect().await;
    b2.wait_for("the tampered file refused", |e| {
        matches!(
            e,
            GlueEvent::FileFailed {
                error: FileError::Tampered,
                ..
            }
        )
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    b2.drain();
    assert!(
        !b2.log.iter().any(|e| got_file(e, "second.bin")),
        "a tampered file was handed out"
    );
    for d in [&mut a1, &mut b1, &mut b2] {
        d.disconnect().await;
    }
}
