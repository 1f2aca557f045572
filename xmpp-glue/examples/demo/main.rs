//! The main job in one command: Alice (laptop, phone) and Bob (desktop, tablet) talk
//! OTRv4 over XMPP — online, offline through the prekey server, SMP, a device back from
//! offline — and a readable transcript is printed.
//!
//! `cargo run -p xmpp-glue --example demo` runs everything in this process: an in-memory
//! XMPP server (`xmpp_glue::sim`) with the real prekey server (`prekey-server`, embedded
//! SQLite store in a temporary directory) as its component. With
//! `--xmpp HOST:PORT --domain D --alice-password P --bob-password P` the same scenario runs
//! against a real XMPP server (accounts alice@D and bob@D with a mutual presence
//! subscription; PEP, MAM, offline storage and an OTRv4 prekey server component, e.g. the
//! `prekey-server` binary; prekey-server/tests/prosody/setup.sh sets up such a Prosody). TLS is
//! required; a private CA is trusted through `SSL_CERT_FILE`.

#![allow(async_fn_in_trait)]

#[path = "net_sim.rs"]
pub mod net_sim;
#[path = "net_xmpp.rs"]
pub mod net_xmpp;
#[path = "prekey.rs"]
pub mod prekey;
#[path = "transcript.rs"]
pub mod transcript;

use std::process::ExitCode;

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

    t.section("Checks");
    let mut ok = true;
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
    let problems = t.problems();
    println!(
        "  {} {problems} undecryptable payloads or errors",
        if problems == 0 { "ok  " } else { "FAIL" }
    );
    ok &= problems == 0;
    ok
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

/// Runs the scenario against a real server; returns whether every check held.
pub fn run_on_server(args: &[String]) -> bool {
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let Some((host, port)) = flag("--xmpp").and_then(|hp| {
        let (h, p) = hp.rsplit_once(':')?;
        Some((h.to_owned(), p.parse::<u16>().ok()?))
    }) else {
        eprintln!("--xmpp needs HOST:PORT");
        return false;
    };
    let domain = flag("--domain").unwrap_or_else(|| host.clone());
    let mut passwords = std::collections::BTreeMap::new();
    for u in ["alice", "bob"] {
        match flag(&format!("--{u}-password")) {
            Some(p) => {
                passwords.insert(u.to_owned(), p);
            }
            None => {
                eprintln!("--{u}-password is required with --xmpp");
                return false;
            }
        }
    }
    let Some((rt, dir)) = runtime_and_dir(tokio::runtime::Builder::new_multi_thread()) else {
        return false;
    };
    println!(
        "otr4 demo: XMPP server {host}:{port}, domain {domain}; device stores in {}",
        dir.path().display()
    );
    let mut net = net_xmpp::XmppNet::new(&domain, &host, port, passwords, dir.path().to_owned());
    rt.block_on(scenario(&mut net))
}

#[allow(dead_code)]
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ok = if args.iter().any(|a| a == "--xmpp") {
        run_on_server(&args)
    } else {
        run_in_memory()
    };
    if ok {
        println!("\nAll checks passed.");
        ExitCode::SUCCESS
    } else {
        println!("\nSome checks FAILED.");
        ExitCode::FAILURE
    }
}
