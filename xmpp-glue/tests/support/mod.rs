//! The Prosody harness of the XMPP integration tests (`prosody.rs`, `python_client.rs`):
//! a throw-away Prosody with the real prekey server, and `XmppClient` devices on it.
//!
//! [`with_prosody`] starts Prosody (`prekey-server/tests/prosody/setup.sh`, ports 15232
//! and 15357) and the prekey server, then runs the test again in a child process that
//! trusts the test CA (`SSL_CERT_FILE`) and finds Prosody's port in `GLUE_TEST_C2S_PORT`;
//! a lock keeps one Prosody per test binary at a time. Each test binary uses only part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use otr4::InstanceTag;
use xmpp_glue::GlueEvent;
use xmpp_glue::client::{ConnectOptions, EventStream, XmppClient};
use xmpp_glue::stanza;

pub const COMPONENT: &str = "prekey.localhost";
pub const STEP: Duration = Duration::from_secs(30);
pub const C2S_PORT: &str = "15232";
pub const COMPONENT_PORT: &str = "15357";

/// A test port moved by `GLUE_TEST_PORT_OFFSET` (default 0), so two checkouts can run their
/// Prosody tests side by side on one machine.
pub fn port(base: &str) -> String {
    let offset: u16 = std::env::var("GLUE_TEST_PORT_OFFSET")
        .ok()
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    (base.parse::<u16>().unwrap() + offset).to_string()
}

// ----------------------------------------------------------------------------------------
// The parent side: Prosody and the prekey server.

pub fn setup_script() -> PathBuf {
    // One script for both crates' Prosody tests (xmpp-glue dev-depends on prekey-server).
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../prekey-server/tests/prosody/setup.sh")
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Why Prosody cannot be started here, if it cannot.
pub fn missing() -> Option<&'static str> {
    let install = ["XMPP_GLUE_PROSODY_TEST", "PREKEY_PROSODY_TEST"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| v == "1"));
    if !install && !have("prosody") {
        return Some(
            "Prosody is not installed (XMPP_GLUE_PROSODY_TEST=1 lets setup.sh install it)",
        );
    }
    if !is_root() || !have("setpriv") {
        return Some("it needs root and setpriv to start Prosody as user prosody");
    }
    None
}

/// A multi-threaded runtime for one scenario.
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The prekey-server binary of this build profile (built on demand if missing).
pub fn prekey_server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_owned();
        let bin = profile_dir.join("prekey-server");
        // `cargo test --workspace` already built it (it is a bin target of a tested
        // package); building again here would re-resolve features and rebuild for minutes.
        if bin.is_file() {
            return bin;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut c = Command::new(cargo);
        c.args([
            "build",
            "-q",
            "-p",
            "prekey-server",
            "--bin",
            "prekey-server",
        ])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            c.arg("--release");
        }
        if let Some(target) = profile_dir.parent() {
            c.arg("--target-dir").arg(target);
        }
        let built = c.status().is_ok_and(|s| s.success());
        assert!(
            built || bin.is_file(),
            "could not build prekey-server and {} does not exist",
            bin.display()
        );
        bin
    })
    .clone()
}

pub static ONE_PROSODY: Mutex<()> = Mutex::new(());

pub struct Cleanup {
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

/// The test `test`: in the child process (its environment names the Prosody to use) runs
/// `scenario`; otherwise starts Prosody and the prekey server, runs `test` again in a child
/// process that trusts the test CA, and stops them. The prekey server's log must contain
/// each of `server_log_has`. Fails (never skips) when Prosody cannot be started.
pub fn with_prosody(test: &str, server_log_has: &[&str], scenario: impl FnOnce(Env)) {
    if let Some(env) = env() {
        scenario(env);
        return;
    }
    if let Some(why) = missing() {
        panic!("{test} cannot run: {why}");
    }
    let _one = ONE_PROSODY.lock().unwrap_or_else(|e| e.into_inner());
    let bin = prekey_server_bin();
    let started = Instant::now();
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
    let common = |c: &mut Command| {
        c.args(["--jid", COMPONENT, "--component-host", "127.0.0.1"])
            .args(["--component-port", &vars["COMPONENT_PORT"]])
            .args(["--component-secret", &vars["COMPONENT_SECRET"]])
            .arg("--key-file")
            .arg(state.join("server.key"))
            .arg("--database")
            .arg(state.join("prekeys.db"));
    };
    let mut fpc = Command::new(&bin);
    common(&mut fpc);
    let fp_out = fpc.arg("--print-fingerprint").output().unwrap();
    let fingerprint = String::from_utf8(fp_out.stdout)
        .unwrap()
        .trim()
        .to_ascii_lowercase();
    assert_eq!(fingerprint.len(), 112, "prekey-server --print-fingerprint");
    let log_path = tmp.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut sc = Command::new(&bin);
    common(&mut sc);
    cleanup.server = Some(sc.stderr(log).spawn().unwrap());
    // Devices discover the prekey server and publish their prekeys as soon as they
    // connect: the component must be on Prosody first (seen: a device that connected
    // before it was never listed in that connection).
    wait_for_log(
        &log_path,
        "component connected",
        cleanup.server.as_mut().unwrap(),
    );

    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--ignored", "--nocapture"])
        .env("SSL_CERT_FILE", &vars["CA_FILE"])
        .env("GLUE_TEST_C2S_PORT", &vars["C2S_PORT"])
        .env("GLUE_TEST_FINGERPRINT", &fingerprint)
        .env("GLUE_TEST_DIR", tmp.path())
        .status()
        .unwrap();
    let server_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let prosody_log = std::fs::read_to_string(dir.join("prosody.err")).unwrap_or_default();
    assert!(
        status.success(),
        "{test} failed; prekey-server log:\n{server_log}\nprosody errors:\n{prosody_log}"
    );
    for want in server_log_has {
        assert!(
            server_log.contains(want),
            "{test}: no {want} in\n{server_log}"
        );
    }
    eprintln!("{test}: passed in {:.1?}", started.elapsed());
}

/// Waits (at most [`STEP`]) until the log at `path` of the running `server` contains `want`.
pub fn wait_for_log(path: &Path, want: &str, server: &mut Child) {
    let deadline = Instant::now() + STEP;
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(want) {
            return;
        }
        if let Some(status) = server.try_wait().unwrap() {
            panic!("prekey-server exited ({status}) before \"{want}\":\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "no \"{want}\" from prekey-server:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ----------------------------------------------------------------------------------------
// The child side: devices.

pub struct Env {
    pub port: u16,
    pub fingerprint: String,
    pub dir: PathBuf,
}

pub fn env() -> Option<Env> {
    let port = std::env::var("GLUE_TEST_C2S_PORT").ok()?.parse().ok()?;
    let fingerprint = std::env::var("GLUE_TEST_FINGERPRINT").ok()?;
    let dir = PathBuf::from(std::env::var("GLUE_TEST_DIR").ok()?);
    Some(Env {
        port,
        fingerprint,
        dir,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub from: String,
    pub device: InstanceTag,
    pub text: String,
    pub sent_to: Option<String>,
}

/// One device: its client, its events so far (`log`), the messages among them.
pub struct Dev {
    pub name: String,
    pub full_jid: String,
    pub password: String,
    pub store: PathBuf,
    pub port: u16,
    pub carbons: bool,
    pub client: Option<XmppClient>,
    pub events: Option<EventStream>,
    pub tag: InstanceTag,
    pub log: Vec<GlueEvent>,
    /// Where `wait_for` starts looking (moved past each connection's start).
    pub mark: usize,
    /// Connect with OTRv3 on ([`otrv3_key`]).
    pub otrv3: bool,
}

/// The first OTRv3 key of the libotr key file otr4's key-migration test keeps (Pidgin's
/// `otr.private_key` format).
pub fn otrv3_key() -> otr4::otrv3::DsaPrivateKey {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../otr4/src/v3/testdata/two.private_key");
    let file = std::fs::read(&path).unwrap();
    let mut keys = otr4::otrv3::read_private_keys(&file).unwrap();
    keys.remove(0).key
}

pub fn password(user: &str) -> String {
    format!("{user}pass")
}

impl Dev {
    pub async fn start(env: &Env, user: &str, resource: &str, carbons: bool) -> Dev {
        Dev::start_with(env, user, resource, |d| d.carbons = carbons).await
    }

    /// A device set up by `setup` before it first connects.
    pub async fn start_with(
        env: &Env,
        user: &str,
        resource: &str,
        setup: impl FnOnce(&mut Dev),
    ) -> Dev {
        let mut d = Dev {
            name: format!("{user}/{resource}"),
            full_jid: format!("{user}@localhost/{resource}"),
            password: password(user),
            store: env.dir.join("stores").join(format!("{user}-{resource}")),
            port: env.port,
            carbons: false,
            client: None,
            events: None,
            tag: InstanceTag(0),
            log: Vec::new(),
            mark: 0,
            otrv3: false,
        };
        setup(&mut d);
        d.connect().await;
        d
    }

    pub fn bare(&self) -> &str {
        stanza::bare(&self.full_jid)
    }

    pub async fn connect(&mut self) {
        let mut o = ConnectOptions::new(&self.full_jid, &self.password, &self.store);
        o.host = "127.0.0.1".into();
        o.port = self.port;
        o.enable_carbons = self.carbons;
        o.tick = Duration::from_secs(2);
        if self.otrv3 {
            o.otrv3_key = Some(otrv3_key());
        }
        let (c, ev) = XmppClient::connect(o)
            .await
            .unwrap_or_else(|e| panic!("{}: connect: {e}", self.name));
        if self.tag.0 != 0 {
            assert_eq!(
                c.tag(),
                self.tag,
                "{}: same device after restart",
                self.name
            );
        }
        self.tag = c.tag();
        self.client = Some(c);
        self.events = Some(ev);
        self.mark = self.log.len();
    }

    pub fn c(&self) -> &XmppClient {
        self.client.as_ref().unwrap()
    }

    pub async fn disconnect(&mut self) {
        self.drain();
        self.client
            .take()
            .unwrap()
            .disconnect()
            .await
            .unwrap_or_else(|e| panic!("{}: disconnect: {e}", self.name));
        // Collect what was still queued.
        if let Some(mut ev) = self.events.take() {
            while let Some(e) = ev.recv().await {
                self.log.push(e);
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

    pub async fn ready(&mut self) {
        self.wait_for("Listed", |e| matches!(e, GlueEvent::Listed))
            .await;
    }

    pub fn msgs(&self) -> Vec<Msg> {
        self.log
            .iter()
            .filter_map(|e| match e {
                GlueEvent::Message {
                    from,
                    device,
                    text,
                    sent_to,
                    ..
                } => Some(Msg {
                    from: from.clone(),
                    device: *device,
                    text: text.clone(),
                    sent_to: sent_to.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// Waits until `n` messages arrived in total (over all connections).
    pub async fn wait_msgs(&mut self, n: usize) {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            self.drain();
            if self.msgs().len() >= n {
                return;
            }
            let ev = self.events.as_mut().expect("connected");
            match tokio::time::timeout_at(deadline, ev.recv()).await {
                Ok(Some(e)) => self.log.push(e),
                Ok(None) => panic!("{}: event stream ended", self.name),
                Err(_) => panic!(
                    "{}: timed out waiting for {n} messages; got {:#?}; events {:#?}",
                    self.name,
                    self.msgs(),
                    self.log
                ),
            }
        }
    }

    /// Polls until the engine knows every device of `tags` for `jid`.
    pub async fn knows(&mut self, jid: &str, tags: &[InstanceTag]) {
        let deadline = Instant::now() + STEP;
        loop {
            let known = self.c().devices_of(jid).await.unwrap();
            if tags.iter().all(|t| known.contains(t)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: devices of {jid}: {known:x?}, expected {tags:x?}",
                self.name
            );
            self.drain();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls until this device sees `other` as `online` (its presence).
    pub async fn sees_online(&self, other: &Dev, online: bool) {
        let deadline = Instant::now() + STEP;
        while self
            .c()
            .is_device_online(other.bare(), other.tag)
            .await
            .unwrap()
            != online
        {
            assert!(
                Instant::now() < deadline,
                "{}: {} never became {}",
                self.name,
                other.name,
                if online { "online" } else { "offline" }
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn send(&self, to: &str, text: &str) {
        self.c()
            .send(to, text)
            .await
            .unwrap_or_else(|e| panic!("{}: send: {e}", self.name));
    }

    /// No undecryptable payload, no error, no message that was not sent.
    pub fn assert_clean(&mut self) {
        self.drain();
        for e in &self.log {
            assert!(
                !matches!(
                    e,
                    GlueEvent::Undecryptable { .. }
                        | GlueEvent::Error(_)
                        | GlueEvent::NotSent { .. }
                ),
                "{}: unexpected {e:?}",
                self.name
            );
        }
    }
}

/// The messages `dev` got from `sender` (device), in order.
pub fn texts_from(dev: &Dev, sender: &Dev) -> Vec<String> {
    dev.msgs()
        .into_iter()
        .filter(|m| m.from == sender.bare() && m.device == sender.tag)
        .map(|m| m.text)
        .collect()
}

pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}
