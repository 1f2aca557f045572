//! Two `otr4-peer` processes talking over pipes: the test forwards every `out` line of one
//! as a `recv` command to the other until both are quiet, and checks the DAKE (equal
//! SSIDs), messages both ways, SMP and the end of the conversation; and the offline flow
//! (`ensemble`, `offline`, `recv` of the Non-Interactive-Auth message) in both roles.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::encoded::{decode_otr, encode_otr};
use otr4::hazmat::wire::messages::Message;

const NOW: &str = "1780000000";

struct Peer {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Every line this peer printed, in order (the `event done` markers excluded).
    log: Vec<String>,
}

impl Peer {
    fn spawn(
        name: &'static str,
        seed: &str,
        key_seed: &str,
        us: &str,
        them: &str,
        mode: &str,
    ) -> Peer {
        Peer::spawn_at(name, seed, key_seed, us, them, mode, NOW)
    }

    fn spawn_at(
        name: &'static str,
        seed: &str,
        key_seed: &str,
        us: &str,
        them: &str,
        mode: &str,
        now: &str,
    ) -> Peer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_otr4-peer"))
            .args([
                "--seed",
                seed,
                "--now",
                now,
                "--key-seed",
                key_seed,
                "--mode",
                mode,
                "--us",
                us,
                "--them",
                them,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn otr4-peer");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Peer {
            name,
            child,
            stdin,
            stdout,
            log: Vec::new(),
        }
    }

    /// Sends one command and returns its output lines (up to `event done`).
    fn cmd(&mut self, line: &str) -> Vec<String> {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut out = Vec::new();
        loop {
            let mut l = String::new();
            assert!(
                self.stdout.read_line(&mut l).unwrap() > 0,
                "{}: EOF",
                self.name
            );
            let l = l.trim_end_matches('\n').to_owned();
            if l.starts_with("event done command=") {
                break;
            }
            out.push(l);
        }
        self.log.extend(out.iter().cloned());
        out
    }

    fn quit(mut self) {
        writeln!(self.stdin, "quit").unwrap();
        self.stdin.flush().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{}: {status}", self.name);
    }

    /// The lines logged since `from` that start with `prefix`.
    fn lines_since(&self, from: usize, prefix: &str) -> Vec<String> {
        self.log[from..]
            .iter()
            .filter(|l| l.starts_with(prefix))
            .cloned()
            .collect()
    }
}

/// Runs `line` on `a`, then forwards `out` lines back and forth until nothing is left.
fn exchange(a: &mut Peer, b: &mut Peer, line: &str) {
    let first = a.cmd(line);
    pump(a, b, outs(&first));
}

/// Delivers `msgs` (from `a`) to `b`, and every reply to the other side, until quiet.
fn pump(a: &mut Peer, b: &mut Peer, msgs: Vec<String>) {
    let mut pending: Vec<(bool, String)> = msgs.into_iter().map(|m| (true, m)).collect();
    let mut rounds = 0;
    while !pending.is_empty() {
        let (to_b, msg) = pending.remove(0);
        rounds += 1;
        assert!(rounds < 100, "the peers do not settle");
        let (to, back) = if to_b {
            (&mut *b, false)
        } else {
            (&mut *a, true)
        };
        let replies = to.cmd(&format!("recv {msg}"));
        pending.extend(outs(&replies).into_iter().map(|m| (back, m)));
    }
}

fn outs(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("out ").map(str::to_owned))
        .collect()
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

fn errors(p: &Peer) -> Vec<String> {
    p.lines_since(0, "error ")
}

fn pair(mode: &str) -> (Peer, Peer) {
    let alice = Peer::spawn(
        "alice",
        "1",
        "a11ce5eed0",
        "alice@example.org",
        "bob@example.org",
        mode,
    );
    let bob = Peer::spawn(
        "bob",
        "2",
        "b0b5eed000",
        "bob@example.org",
        "alice@example.org",
        mode,
    );
    (alice, bob)
}

/// DAKE, messages both ways, SMP, end: the full life of a conversation.
fn conversation(mode: &str) {
    let (mut alice, mut bob) = pair(mode);

    // The DAKE: both sides secure, with the same SSID.
    exchange(&mut alice, &mut bob, "start");
    let (sa, sb) = (
        alice.lines_since(0, "event secure"),
        bob.lines_since(0, "event secure"),
    );
    assert_eq!(
        (sa.len(), sb.len()),
        (1, 1),
        "{:?} {:?}",
        alice.log,
        bob.log
    );
    let ssid = field(&sa[0], "ssid");
    assert_eq!(ssid.len(), 16);
    assert_eq!(ssid, field(&sb[0], "ssid"));
    assert_ne!(field(&sa[0], "bold_half"), field(&sb[0], "bold_half"));
    assert_ne!(field(&sa[0], "fingerprint"), field(&sb[0], "fingerprint"));

    // Messages both ways, several ratchets.
    for (i, text) in ["hello Bob", r"hello again, with \\ and\nnewline"]
        .iter()
        .enumerate()
    {
        let mark = bob.log.len();
        exchange(&mut alice, &mut bob, &format!("send {text}"));
        assert_eq!(
            bob.lines_since(mark, "msg "),
            [format!("msg {text}")],
            "{i}"
        );
        let mark = alice.log.len();
        exchange(&mut bob, &mut alice, &format!("send reply {i}"));
        assert_eq!(alice.lines_since(mark, "msg "), [format!("msg reply {i}")]);
    }

    // SMP with the same secret: both sides succeed.
    let (ma, mb) = (alice.log.len(), bob.log.len());
    exchange(&mut alice, &mut bob, "smp correct horse");
    assert_eq!(bob.lines_since(mb, "event smp_request").len(), 1);
    exchange(&mut bob, &mut alice, "smp correct horse");
    for p in [&alice, &bob] {
        let m = if p.name == "alice" { ma } else { mb };
        let results = p.lines_since(m, "event smp result=");
        assert_eq!(results.len(), 1, "{}: {:?}", p.name, p.log);
        assert_eq!(field(&results[0], "result"), "success");
    }

    // SMP with different secrets: both sides fail.
    let (ma, mb) = (alice.log.len(), bob.log.len());
    exchange(&mut bob, &mut alice, "smp one");
    exchange(&mut alice, &mut bob, "smp two");
    assert_eq!(
        field(&alice.lines_since(ma, "event smp result=")[0], "result"),
        "failure"
    );
    assert_eq!(
        field(&bob.lines_since(mb, "event smp result=")[0], "result"),
        "failure"
    );

    // Alice ends: Bob's side is finished; Bob cannot send any more.
    let mark = bob.log.len();
    exchange(&mut alice, &mut bob, "end");
    assert_eq!(
        bob.lines_since(mark, "event finished").len(),
        1,
        "{:?}",
        bob.log
    );
    assert!(
        alice
            .lines_since(mark.min(alice.log.len()), "event disconnected")
            .len()
            <= 1
    );
    let out = bob.cmd("send too late");
    assert_eq!(outs(&out), Vec::<String>::new());
    assert_eq!(out, ["event not_sent reason=finished"]);

    assert_eq!(errors(&alice), Vec::<String>::new());
    assert_eq!(errors(&bob), Vec::<String>::new());
    alice.quit();
    bob.quit();
}

#[test]
fn standalone_peers_complete_a_conversation() {
    conversation("standalone");
}

#[test]
fn interactive_only_peers_complete_a_conversation() {
    conversation("interactive");
}

/// The OTRv3-compatible mode starts with a query message, answered with the DAKE.
#[test]
fn compatible_peers_start_with_a_query_message() {
    let (mut alice, mut bob) = pair("compatible");
    let first = alice.cmd("start");
    assert_eq!(outs(&first).len(), 1, "{first:?}");
    assert!(
        outs(&first)[0].starts_with("?OTRv34?"),
        "a query message offering versions 3 and 4: {first:?}"
    );
    let replies = bob.cmd(&format!("recv {}", outs(&first)[0]));
    assert!(
        outs(&replies)[0].starts_with("?OTR:AAQ1"),
        "an Identity message: {replies:?}"
    );
    pump(&mut bob, &mut alice, outs(&replies));
    let (sa, sb) = (
        alice.lines_since(0, "event secure"),
        bob.lines_since(0, "event secure"),
    );
    assert!(
        !sa.is_empty() && !sb.is_empty(),
        "{:?} {:?}",
        alice.log,
        bob.log
    );
    assert_eq!(field(&sa[0], "ssid"), field(&sb[0], "ssid"));
    // Both allow version 4: never an OTRv3 session.
    assert!(alice.lines_since(0, "event secure_v3").is_empty());
    alice.quit();
    bob.quit();
}

/// Issue 16 item 4: in the compatible mode a query offering only version 3 is answered with
/// a v3 D-H Commit (otrv4.md §"Receiving a Query Message"); the whole v3 conversation with
/// libotr through `otr4-peer` is in `libotr_interop.rs`.
#[test]
fn compatible_peer_answers_a_v3_query_with_a_d_h_commit() {
    let (mut alice, _) = pair("compatible");
    let replies = alice.cmd("recv ?OTRv3?");
    let out = outs(&replies);
    assert_eq!(out.len(), 1, "{replies:?}");
    let bytes = decode_otr(&out[0]).unwrap();
    assert_eq!(&bytes[..3], &[0x00, 0x03, 0x02], "a version 3 D-H Commit");
    assert_eq!(&bytes[7..11], &[0, 0, 0, 0], "no receiver instance yet");
    alice.quit();
}

/// Malformed commands and messages are reported as `error` lines, and the peer goes on.
#[test]
fn bad_input_gives_error_lines() {
    let (mut alice, bob) = pair("standalone");
    assert_eq!(
        alice.cmd("frobnicate"),
        ["error usage unknown command frobnicate"]
    );
    let out = alice.cmd("smp secret");
    assert_eq!(out.len(), 1);
    assert!(out[0].starts_with("error not_encrypted "));
    let out = alice.cmd("recv ?OTR:AAQD.");
    assert!(
        out.iter().any(|l| l.starts_with("error malformed ")),
        "{out:?}"
    );
    assert!(outs(&alice.cmd("start"))[0].starts_with("?OTR:AAQ1"));
    alice.quit();
    bob.quit();
}

/// The same seeds give the same transcript.
#[test]
fn runs_are_deterministic() {
    let run = || {
        let (mut alice, mut bob) = pair("standalone");
        exchange(&mut alice, &mut bob, "start");
        exchange(&mut alice, &mut bob, "send hi");
        let logs = (alice.log.clone(), bob.log.clone());
        alice.quit();
        bob.quit();
        logs
    };
    assert_eq!(run(), run());
}

/// `ensemble` on `p`: the three base64 values of its `out-ensemble` line.
fn ensemble(p: &mut Peer) -> String {
    let out = p.cmd("ensemble");
    assert_eq!(out.len(), 1, "{out:?}");
    let values = out[0].strip_prefix("out-ensemble ").expect("out-ensemble");
    assert_eq!(values.split(' ').count(), 3, "{values}");
    values.to_owned()
}

/// The offline flow with `bob` publishing and `alice` starting: Alice's `offline` gives the
/// Non-Interactive-Auth message and `event secure`, she sends at once, and Bob's `recv` of
/// both gives the same SSID and the message; then they talk both ways.
fn offline_flow(alice: &mut Peer, bob: &mut Peer) {
    let values = ensemble(bob);
    let out = alice.cmd(&format!("offline {values}"));
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(
        out[0].starts_with("out ?OTR:AAQN"),
        "a Non-Interactive-Auth: {out:?}"
    );
    assert!(out[1].starts_with("event secure ssid="), "{out:?}");
    let ssid = field(&out[1], "ssid").to_owned();
    let nia = outs(&out);
    let early = outs(&alice.cmd("send written while Bob was offline"));
    assert_eq!(early.len(), 1);

    let got = bob.cmd(&format!("recv {}", nia[0]));
    let secure: Vec<&String> = got
        .iter()
        .filter(|l| l.starts_with("event secure"))
        .collect();
    assert_eq!(secure.len(), 1, "{got:?}");
    assert_eq!(field(secure[0], "ssid"), ssid);
    assert_eq!(
        bob.cmd(&format!("recv {}", early[0])),
        ["msg written while Bob was offline"]
    );
    let mark = alice.log.len();
    exchange(bob, alice, "send welcome back");
    assert_eq!(alice.lines_since(mark, "msg "), ["msg welcome back"]);
    let mark = bob.log.len();
    exchange(alice, bob, "send thanks");
    assert_eq!(bob.lines_since(mark, "msg "), ["msg thanks"]);
    assert_eq!(errors(alice), Vec::<String>::new());
    assert_eq!(errors(bob), Vec::<String>::new());
}

#[test]
fn offline_flow_in_both_roles() {
    let (mut alice, mut bob) = pair("standalone");
    offline_flow(&mut alice, &mut bob);
    alice.quit();
    bob.quit();
    let (mut alice, mut bob) = pair("compatible");
    offline_flow(&mut bob, &mut alice);
    alice.quit();
    bob.quit();
}

/// Two ensembles from one peer use one Prekey Profile and two Prekey messages; each
/// Non-Interactive-Auth message completes once: a replay of the first is an error.
#[test]
fn each_prekey_message_serves_one_non_interactive_auth() {
    let (mut alice, mut bob) = pair("standalone");
    let (e1, e2) = (ensemble(&mut bob), ensemble(&mut bob));
    let parts = |e: &str| e.split(' ').map(str::to_owned).collect::<Vec<_>>();
    let (p1, p2) = (parts(&e1), parts(&e2));
    assert_eq!(p1[..2], p2[..2], "same Client and Prekey Profile");
    assert_ne!(p1[2], p2[2], "a new Prekey message each time");
    let nia1 = outs(&alice.cmd(&format!("offline {e1}")));
    assert!(bob.cmd(&format!("recv {}", nia1[0]))[0].starts_with("event secure"));
    // The second offline start ends the live session first (TLV type 1), then sends the
    // new Non-Interactive-Auth message (otrv4.md §"Starting an offline conversation after
    // an online one").
    let second = outs(&alice.cmd(&format!("offline {e2}")));
    assert_eq!(second.len(), 2, "{second:?}");
    let got = bob.cmd(&format!("recv {}", second[0]));
    assert!(got[0].starts_with("event finished"), "{got:?}");
    let got = bob.cmd(&format!("recv {}", second[1]));
    assert!(got.iter().any(|l| l.starts_with("event secure")), "{got:?}");
    let again = bob.cmd(&format!("recv {}", nia1[0]));
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(
        again[0].starts_with("error non_interactive_auth_ignored "),
        "{again:?}"
    );
    alice.quit();
    bob.quit();
}

/// Bad ensembles and Non-Interactive-Auth messages give `error` lines, and the peer goes on.
#[test]
fn bad_offline_input_gives_error_lines() {
    let (mut alice, mut bob) = pair("standalone");
    let values = ensemble(&mut bob);
    let parts: Vec<&str> = values.split(' ').collect();
    let first = |out: Vec<String>| -> String {
        assert_eq!(out.len(), 1, "{out:?}");
        out[0].clone()
    };
    assert!(first(alice.cmd("offline")).starts_with("error usage offline "));
    assert!(
        first(alice.cmd(&format!("offline {} {}", parts[0], parts[1]))).starts_with("error usage ")
    );
    let bad64 = first(alice.cmd(&format!("offline {} {} !!", parts[0], parts[1])));
    assert!(
        bad64.starts_with("error malformed prekey message: base64"),
        "{bad64}"
    );
    let garbage = first(alice.cmd(&format!("offline AAQ= {} {}", parts[1], parts[2])));
    assert!(
        garbage.starts_with("error malformed client profile"),
        "{garbage}"
    );
    // Another peer's Prekey message: the owner tags differ.
    let mut carol = Peer::spawn(
        "carol",
        "3",
        "ca201e",
        "carol@example.org",
        "alice@example.org",
        "standalone",
    );
    let theirs: Vec<String> = ensemble(&mut carol).split(' ').map(str::to_owned).collect();
    let mixed = first(alice.cmd(&format!("offline {} {} {}", parts[0], parts[1], theirs[2])));
    assert!(mixed.starts_with("error invalid_ensemble "), "{mixed}");
    // An ensemble made a month before: its profiles have expired.
    let mut old = Peer::spawn_at(
        "old bob",
        "4",
        "b0b5eed000",
        "bob@example.org",
        "alice@example.org",
        "standalone",
        "1777000000",
    );
    let expired = first(alice.cmd(&format!("offline {}", ensemble(&mut old))));
    assert!(expired.starts_with("error invalid_ensemble "), "{expired}");
    // A Non-Interactive-Auth message made for Carol's ensemble is not for Bob's instance
    // (ignored with the usual warning); one tampered with fails validation (an error);
    // the prekey it names stays usable.
    let for_carol = outs(&alice.cmd(&format!("offline {}", theirs.join(" "))));
    let rejected = first(bob.cmd(&format!("recv {}", for_carol[0])));
    assert!(
        rejected.starts_with("event warning kind=not_for_us "),
        "{rejected}"
    );
    let nia = outs(&alice.cmd(&format!("offline {values}")))[0].clone();
    let tampered = {
        let mut m = match Message::decode(&decode_otr(&nia).unwrap()).unwrap() {
            Message::NonInteractiveAuth(m) => m,
            other => panic!("not a Non-Interactive-Auth message: {other:?}"),
        };
        m.auth_mac[0] ^= 1;
        encode_otr(&m.encode())
    };
    let rejected = first(bob.cmd(&format!("recv {tampered}")));
    assert!(
        rejected.starts_with("error non_interactive_auth_ignored "),
        "{rejected}"
    );
    let got = bob.cmd(&format!("recv {nia}"));
    assert!(got.iter().any(|l| l.starts_with("event secure")), "{got:?}");
    // The interactive-only mode offers no ensemble.
    let mut strict = Peer::spawn(
        "strict",
        "5",
        "5717c7",
        "dave@example.org",
        "alice@example.org",
        "interactive",
    );
    assert!(first(strict.cmd("ensemble")).starts_with("error offline_not_allowed "));
    assert!(
        first(strict.cmd(&format!("offline {values}"))).starts_with("error offline_not_allowed ")
    );
    for p in [alice, bob, carol, old, strict] {
        p.quit();
    }
}
