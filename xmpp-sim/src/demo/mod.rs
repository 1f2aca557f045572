//! The main job in one command: Alice (laptop, phone) and Bob (desktop, tablet) talk
//! OTRv4 over XMPP — online, offline through the prekey server, SMP, a device back from
//! offline — and a readable transcript is printed.
//!
//! `cargo run -p xmpp-sim --bin demo` runs everything in this process: the in-memory
//! XMPP server ([`crate::server`]) with the real prekey server (`prekey-server`, embedded
//! SQLite store in a temporary directory) as its component. With the feature `xmpp` and
//! `--xmpp HOST:PORT --domain D --alice-password P --bob-password P` the same scenario runs
//! against a real XMPP server (README §"The demo against a real XMPP server").

pub mod net_sim;
#[cfg(feature = "xmpp")]
pub mod net_xmpp;
pub mod prekey;
pub mod transcript;
pub mod upload;

use otr4::InstanceTag;
use xmpp_glue::GlueEvent;

use transcript::Transcript;

const ALICE_LAPTOP: &str = "alice/laptop";
const ALICE_PHONE: &str = "alice/phone";
const BOB_DESKTOP: &str = "bob/desktop";
const BOB_TABLET: &str = "bob/tablet";

/// What the scenario needs from a network of devices. Devices are named `user/resource`.
pub trait Net {
    /// The domain.
    fn domain(&self) -> &str;
    /// Brings a device online (creating it, or restoring it from its saved state).
    async fn connect(&mut self, dev: &str);
    /// Takes a device offline (its state is saved).
    async fn disconnect(&mut self, dev: &str);
    /// A device sends `text` to the bare JID of `to_user`.
    async fn send(&mut self, dev: &str, to_user: &str, text: &str);
    /// SMP: `dev` asks `peer_dev`.
    async fn smp_start(&mut self, dev: &str, peer_dev: &str, question: &str, secret: &str);
    /// SMP: `dev` answers `peer_dev`.
    async fn smp_respond(&mut self, dev: &str, peer_dev: &str, secret: &str);
    /// Runs until nothing moves; returns what every device reported.
    async fn settle(&mut self) -> Vec<(String, GlueEvent)>;
    /// The instance tag of a device (after its first connection).
    fn tag(&self, dev: &str) -> InstanceTag;
    /// Whether `dev`'s session with `peer_dev` came from a non-interactive DAKE.
    fn non_interactive(&self, dev: &str, peer_dev: &str) -> bool;
    /// A device sends a file to the bare JID of `to_user` (encrypted, one HTTP upload);
    /// `false` if this network has no upload service (then the demo skips the file).
    async fn send_file(&mut self, _dev: &str, _to_user: &str, _name: &str, _data: Vec<u8>) -> bool {
        false
    }
    /// Keeps a backup of an online device's saved state; `false` if this network cannot
    /// (then the demo skips the restore).
    async fn take_backup(&mut self, _dev: &str) -> bool {
        false
    }
    /// The (offline) device comes back from its backup at its next connection.
    async fn restore_backup(&mut self, _dev: &str) {}
    /// Once every device is up: removes devices an earlier run left on the accounts'
    /// device lists (a real server keeps them); returns whether it removed any.
    async fn tidy(&mut self) -> bool {
        false
    }
}

/// The user part of a device name (`user/resource`).
pub fn user(dev: &str) -> &str {
    dev.split_once('/').map_or(dev, |(u, _)| u)
}

/// The scenario; returns whether every check held.
async fn scenario<N: Net>(net: &mut N) -> bool {
    let mut t = Transcript::new(net.domain());

    t.section("1. Four devices come online: each finds the prekey server over disco, pins its fingerprint, publishes prekeys, then lists itself");
    for dev in [ALICE_LAPTOP, ALICE_PHONE, BOB_DESKTOP, BOB_TABLET] {
        net.connect(dev).await;
        let ev = net.settle().await;
        t.show(net, &ev);
    }
    if net.tidy().await {
        let ev = net.settle().await;
        t.show(net, &ev);
    }

    t.section("2. Bob's tablet goes offline (its prekeys stay on the server)");
    net.disconnect(BOB_TABLET).await;
    let ev = net.settle().await;
    t.show(net, &ev);

    t.section("3. Online conversation: interactive DAKEs with online devices, the non-interactive DAKE for the offline tablet, copies to Alice's phone");
    let lines = [
        (ALICE_LAPTOP, "bob", "Hi Bob! Lunch on Friday?"),
        (BOB_DESKTOP, "alice", "Hi Alice, Friday works."),
        (ALICE_PHONE, "bob", "Great, the usual place at noon."),
    ];
    for (dev, to, text) in lines {
        t.said(dev, to, text);
        net.send(dev, to, text).await;
        let ev = net.settle().await;
        t.show(net, &ev);
    }

    t.section("4. SMP: Bob's desktop verifies Alice's laptop with a shared secret");
    net.smp_start(
        BOB_DESKTOP,
        ALICE_LAPTOP,
        "Where did we first meet?",
        "the library",
    )
    .await;
    let ev = net.settle().await;
    t.show(net, &ev);
    net.smp_respond(ALICE_LAPTOP, BOB_DESKTOP, "the library")
        .await;
    let ev = net.settle().await;
    t.show(net, &ev);

    t.section("5. The tablet comes back: it catches up through the archive (MAM), completes the non-interactive DAKE, reads everything, and answers");
    net.connect(BOB_TABLET).await;
    let ev = net.settle().await;
    t.show(net, &ev);
    let text = "Sorry, tablet here — see you Friday!";
    t.said(BOB_TABLET, "alice", text);
    net.send(BOB_TABLET, "alice", text).await;
    let ev = net.settle().await;
    t.show(net, &ev);
    let menu: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let file_ok = if net
        .send_file(ALICE_LAPTOP, "bob", "menu.pdf", menu.clone())
        .await
    {
        let ev = net.settle().await;
        t.file(ALICE_LAPTOP, "menu.pdf", &menu, &ev)
    } else {
        true
    };

    let mut expected_problems = 0;
    let mut healed = true;
    if net.take_backup(BOB_DESKTOP).await {
        t.section("6. Bob's desktop is restored from an old backup: it cannot read Alice's next message and says so; Alice's laptop repairs the session with a new DAKE");
        for (dev, to, text) in [
            (ALICE_LAPTOP, "bob", "Dinner at 8?"),
            (BOB_DESKTOP, "alice", "Yes!"),
        ] {
            t.said(dev, to, text);
            net.send(dev, to, text).await;
            let ev = net.settle().await;
            t.show(net, &ev);
        }
        net.disconnect(BOB_DESKTOP).await;
        net.restore_backup(BOB_DESKTOP).await;
        net.connect(BOB_DESKTOP).await;
        let ev = net.settle().await;
        t.show(net, &ev);
        let before = t.problems();
        let lost = "Bring the menu.";
        t.said(ALICE_LAPTOP, "bob", lost);
        net.send(ALICE_LAPTOP, "bob", lost).await;
        let ev = net.settle().await;
        t.show(net, &ev);
        let repaired = ev
            .iter()
            .any(|(d, e)| d == ALICE_LAPTOP && matches!(e, GlueEvent::SessionRepair { .. }));
        expected_problems = t.problems() - before;
        let after = "(after the repair) See you at 8!";
        t.said(ALICE_LAPTOP, "bob", after);
        net.send(ALICE_LAPTOP, "bob", after).await;
        let ev = net.settle().await;
        t.show(net, &ev);
        healed = repaired
            && expected_problems == 1
            && t.received(BOB_DESKTOP, ALICE_LAPTOP, after) == 1
            && t.received(BOB_DESKTOP, ALICE_LAPTOP, lost) == 0;
    }

    t.section("Checks");
    let mut ok = true;
    if expected_problems > 0 || !healed {
        println!(
            "  {} the restored desktop's one unreadable message was reported on both sides, the session repaired, the next message read once",
            if healed { "ok  " } else { "FAIL" }
        );
        ok &= healed;
    }
    let expect = |t: &Transcript, dev: &str, from: &str, text: &str| -> bool {
        let n = t.received(dev, from, text);
        let good = n == 1;
        println!(
            "  {} {dev:<13} got \"{text}\" from {from} {}",
            if good { "ok  " } else { "FAIL" },
            if good {
                String::from("exactly once")
            } else {
                format!("{n} times")
            }
        );
        good
    };
    for (sender, _, text) in lines {
        for dev in [ALICE_LAPTOP, ALICE_PHONE, BOB_DESKTOP, BOB_TABLET] {
            if dev != sender {
                ok &= expect(&t, dev, sender, text);
            }
        }
    }
    for dev in [ALICE_LAPTOP, ALICE_PHONE, BOB_DESKTOP] {
        ok &= expect(&t, dev, BOB_TABLET, text);
    }
    let verified = t.verified(BOB_DESKTOP, ALICE_LAPTOP) && t.verified(ALICE_LAPTOP, BOB_DESKTOP);
    println!(
        "  {} SMP verified Alice's laptop and Bob's desktop to each other",
        if verified { "ok  " } else { "FAIL" }
    );
    ok &= verified;
    let offline = net.non_interactive(BOB_TABLET, ALICE_LAPTOP);
    println!(
        "  {} the tablet's first session came from the non-interactive DAKE (prekey server)",
        if offline { "ok  " } else { "FAIL" }
    );
    ok &= offline;
    let problems = t.problems() - expected_problems;
    println!(
        "  {} {problems} undecryptable payloads or errors (besides the restored backup's)",
        if problems == 0 { "ok  " } else { "FAIL" }
    );
    ok &= problems == 0;
    ok && file_ok
}

/// A runtime from `builder` and a temporary directory for the stores (reported if either
/// cannot be made).
fn runtime_and_dir(
    mut builder: tokio::runtime::Builder,
) -> Option<(tokio::runtime::Runtime, tempfile::TempDir)> {
    let rt = builder
        .enable_all()
        .build()
        .map_err(|e| eprintln!("tokio: {e}"))
        .ok()?;
    let dir = tempfile::tempdir()
        .map_err(|e| eprintln!("temporary directory: {e}"))
        .ok()?;
    Some((rt, dir))
}

/// Runs the scenario on the in-memory server; returns whether every check held.
pub fn run_in_memory() -> bool {
    let Some((rt, dir)) = runtime_and_dir(tokio::runtime::Builder::new_current_thread()) else {
        return false;
    };
    println!(
        "otr4 demo: in-memory XMPP server for example.org, prekey server prekey.example.org \
on an embedded SQLite store ({})",
        dir.path().display()
    );
    let mut net = net_sim::SimNet::new("example.org", dir.path());
    rt.block_on(scenario(&mut net))
}

/// The demo's command line.
pub const USAGE: &str = "\
otr4 demo: Alice (laptop, phone) and Bob (desktop, tablet) talk OTRv4 over XMPP — online,
offline through the prekey server, SMP, a device back from offline — with a readable
transcript and final checks.

Usage:
  demo                 run on an in-memory XMPP server with the real prekey server
                       (embedded SQLite store in a temporary directory)
  demo --xmpp HOST:PORT --domain DOMAIN --alice-password P --bob-password P
                       run against a real XMPP server (build with `--features xmpp`;
                       the server needs PEP, MAM, offline storage, a mutual roster
                       subscription of alice@DOMAIN and bob@DOMAIN and an OTRv4 prekey
                       server component; a private CA is trusted through SSL_CERT_FILE)
  demo --help          this text

Exit status 0 when every check passed, 1 otherwise, 2 for a bad command line.";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Print [`USAGE`].
    Help,
    /// The in-memory server.
    InMemory,
    /// A real XMPP server.
    Server(ServerArgs),
}

/// The real-server mode's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerArgs {
    /// The server's host.
    pub host: String,
    /// Its client port (STARTTLS).
    pub port: u16,
    /// The accounts' domain (default: the host).
    pub domain: String,
    /// alice@domain's password.
    pub alice_password: String,
    /// bob@domain's password.
    pub bob_password: String,
}

/// Why the command line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// An argument the demo does not know.
    #[error("unknown argument {0:?} (see --help)")]
    Unknown(String),
    /// A flag without its value.
    #[error("{0} needs a value (see --help)")]
    MissingValue(&'static str),
    /// `--xmpp` is not `HOST:PORT`.
    #[error("--xmpp needs HOST:PORT, not {0:?}")]
    BadAddress(String),
    /// A password flag is missing in `--xmpp` mode.
    #[error("{0} is required with --xmpp")]
    MissingPassword(&'static str),
    /// A server flag without `--xmpp`.
    #[error("{0} only makes sense with --xmpp")]
    WithoutXmpp(&'static str),
}

/// Parses the demo's arguments (without the program name).
pub fn parse_args(args: &[String]) -> Result<Mode, UsageError> {
    const FLAGS: [&str; 4] = ["--xmpp", "--domain", "--alice-password", "--bob-password"];
    let mut values: [Option<String>; 4] = Default::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--help" || a == "-h" {
            return Ok(Mode::Help);
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (a.as_str(), None),
        };
        let Some(i) = FLAGS.iter().position(|f| *f == name) else {
            return Err(UsageError::Unknown(a.clone()));
        };
        let flag = FLAGS.get(i).copied().unwrap_or_default();
        let v = match inline {
            Some(v) => v,
            None => it.next().cloned().ok_or(UsageError::MissingValue(flag))?,
        };
        if let Some(slot) = values.get_mut(i) {
            *slot = Some(v);
        }
    }
    let [xmpp, domain, alice, bob] = values;
    let Some(hp) = xmpp else {
        for (v, f) in [(&domain, FLAGS[1]), (&alice, FLAGS[2]), (&bob, FLAGS[3])] {
            if v.is_some() {
                return Err(UsageError::WithoutXmpp(f));
            }
        }
        return Ok(Mode::InMemory);
    };
    let (host, port) = hp
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .filter(|(h, _)| !h.is_empty())
        .ok_or_else(|| UsageError::BadAddress(hp.clone()))?;
    Ok(Mode::Server(ServerArgs {
        domain: domain.unwrap_or_else(|| host.clone()),
        host,
        port,
        alice_password: alice.ok_or(UsageError::MissingPassword(FLAGS[2]))?,
        bob_password: bob.ok_or(UsageError::MissingPassword(FLAGS[3]))?,
    }))
}

/// Runs the scenario against a real server; returns whether every check held.
#[cfg(feature = "xmpp")]
pub fn run_on_server(args: &ServerArgs) -> bool {
    let mut passwords = std::collections::BTreeMap::new();
    passwords.insert("alice".to_owned(), args.alice_password.clone());
    passwords.insert("bob".to_owned(), args.bob_password.clone());
    let Some((rt, dir)) = runtime_and_dir(tokio::runtime::Builder::new_multi_thread()) else {
        return false;
    };
    let (host, port, domain) = (&args.host, args.port, &args.domain);
    println!(
        "otr4 demo: XMPP server {host}:{port}, domain {domain}; device stores in {}",
        dir.path().display()
    );
    let mut net = net_xmpp::XmppNet::new(domain, host, port, passwords, dir.path().to_owned());
    rt.block_on(scenario(&mut net))
}

/// Without the `xmpp` feature the real-server mode is not compiled in: says how to get it.
#[cfg(not(feature = "xmpp"))]
pub fn run_on_server(_args: &ServerArgs) -> bool {
    eprintln!(
        "this demo was built without its real-server mode; run it with \
`cargo run -p xmpp-sim --features xmpp --bin demo -- --xmpp …`"
    );
    false
}
