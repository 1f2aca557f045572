//! The OTRv3 interop scenarios shared by `libotr_interop.rs` (libotr 4.1) and
//! `jsotr_interop.rs` (the JavaScript `otr` library): a peer in a child process speaking the
//! line protocol of `interop/libotr/harness.c`, the AKE in both roles, 100 messages each way
//! with key rotation, and fragments both ways (Protocol-v3.html §"Fragmentation").
#![allow(
    dead_code, // each test binary uses its own subset
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use chacha20::ChaCha20Rng;
use otr4::hazmat::v3::ake::{self, AkeComplete};
use otr4::hazmat::v3::fragment::{Reassembler, V3Fragment, fragment};
use otr4::hazmat::v3::messages::{Header, Message};
use otr4::hazmat::v3::pubkey::DsaPrivateKey;
use otr4::hazmat::v3::session::Session;
use otr4::hazmat::v3::smp::{Smp, SmpContext, SmpEvent};
use otr4::hazmat::v3::tlv::{V3Plaintext, V3Tlv, V3TlvType};
use otr4::hazmat::wire::encoded::{decode_otr, encode_otr};
use otr4::hazmat::wire::query::Versions;
use otr4::otrv3::{V3Fingerprint, read_private_keys};
use otr4::{
    Account, Client, ConversationState, Event, InstanceTag, Policy, PrekeyStore, SmpUpdate, Warning,
};
use rand_core::SeedableRng;

/// otr4's instance tag in every scenario.
pub const OUR_TAG: InstanceTag = InstanceTag(0x4f54_5234);

/// The otr4 side's DSA key, generated once per test run.
pub fn our_key() -> &'static DsaPrivateKey {
    static K: OnceLock<DsaPrivateKey> = OnceLock::new();
    K.get_or_init(|| DsaPrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(16)).unwrap())
}

/// An OTRv3 peer in a child process speaking the line protocol of
/// `interop/libotr/harness.c` (the libotr harness and the JavaScript driver both do).
pub struct Peer {
    /// The directory holding the peer's key and stores.
    pub dir: PathBuf,
    /// When set, the peer fragments what it sends at this many characters, and otr4
    /// fragments what it sends to the peer at the same size.
    fragment_at: Option<usize>,
    /// The peer's instance tag, once the AKE told it.
    pub their_tag: InstanceTag,
    reassembler: Reassembler,
    /// Fragments received from the peer so far.
    pub fragments_received: usize,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    /// Starts `program` with `dir` as its last argument; with `fragment_at`, the peer
    /// fragments at that size (`HARNESS_MAX_MESSAGE_SIZE`) and so does otr4.
    pub fn spawn(mut program: Command, dir: PathBuf, fragment_at: Option<usize>) -> Peer {
        if let Some(n) = fragment_at {
            program.env("HARNESS_MAX_MESSAGE_SIZE", n.to_string());
        }
        let mut child = program
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Peer {
            dir,
            fragment_at,
            their_tag: InstanceTag(0),
            reassembler: Reassembler::default(),
            fragments_received: 0,
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one command; returns the lines printed before `DONE`.
    pub fn cmd(&mut self, line: &str) -> Vec<String> {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut out = Vec::new();
        loop {
            let mut l = String::new();
            assert!(
                self.stdout.read_line(&mut l).unwrap() > 0,
                "the peer exited"
            );
            let l = l.trim_end().to_string();
            if std::env::var_os("OTR4_PEER_DEBUG").is_some() {
                eprintln!("{line:.60} -> {l:.100}");
            }
            if l == "DONE" {
                return out;
            }
            out.push(l);
        }
    }

    /// The messages a command makes the peer send to us (`OUT` lines), fragments
    /// reassembled.
    pub fn outgoing(&mut self, line: &str) -> Vec<String> {
        let lines = self.cmd(line);
        self.messages(&lines)
    }

    /// The whole messages among `lines`' `OUT` lines, fragments reassembled.
    pub fn messages(&mut self, lines: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for l in lines.iter().filter_map(|l| l.strip_prefix("OUT ")) {
            match V3Fragment::parse(l) {
                Ok(f) => {
                    self.fragments_received += 1;
                    out.extend(self.reassembler.push(&f, OUR_TAG));
                }
                Err(_) => out.push(l.to_string()),
            }
        }
        out
    }

    /// Delivers `wire` (an encoded OTR message) to the peer, in fragments when the
    /// scenario fragments; returns the lines all of it produced.
    pub fn recv(&mut self, wire: &str, receiver: InstanceTag) -> Vec<String> {
        let pieces = match self.fragment_at {
            Some(max) => fragment(wire, max, OUR_TAG, receiver).unwrap(),
            None => vec![wire.to_string()],
        };
        let mut lines = Vec::new();
        for p in pieces {
            lines.extend(self.cmd(&format!("recv {p}")));
        }
        lines
    }

    /// The peer's fingerprint as libotr prints it.
    pub fn fingerprint(&mut self) -> String {
        let lines = self.cmd("fp");
        lines[0].strip_prefix("FP ").unwrap().to_string()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// libotr's human-readable fingerprint format: five groups of 8 upper-case hex digits.
pub fn human(fp: &[u8; 20]) -> String {
    fp.chunks(4)
        .map(|c| c.iter().map(|b| format!("{b:02X}")).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The single encoded message in `lines`, decoded.
pub fn one_message(lines: &[String]) -> (Header, Message) {
    assert_eq!(
        lines.len(),
        1,
        "expected one message from the peer: {lines:?}"
    );
    Message::decode(&decode_otr(&lines[0]).unwrap()).unwrap()
}

/// Delivers `msg` to the peer; returns the lines it produced.
pub fn to_peer(peer: &mut Peer, msg: Message, their: InstanceTag) -> Vec<String> {
    peer.recv(&encode_otr(&msg.encode(OUR_TAG, their)), their)
}

/// Checks the peer's view of the finished AKE and builds our session.
pub fn finish(
    peer: &mut Peer,
    lines: Vec<String>,
    done: AkeComplete,
    our: &DsaPrivateKey,
    their: InstanceTag,
    rng: &mut ChaCha20Rng,
) -> Session {
    let want = format!("SECURE {}", human(&our.public().fingerprint()));
    assert!(
        lines.contains(&want),
        "the peer did not go secure: {lines:?}"
    );
    assert_eq!(
        human(&done.their_public.fingerprint()),
        peer.fingerprint(),
        "the peer's key as seen by otr4"
    );
    peer.their_tag = their;
    Session::new(done, OUR_TAG, their, rng)
}

/// How an AKE the peer started failed on our side.
#[derive(Debug)]
pub enum PeerAkeFailure {
    /// The Reveal Signature did not decode; `r_len` is the length its `r` field claims.
    RevealUndecodable {
        /// The length prefix of `r`, if the message was long enough to hold one.
        r_len: Option<u32>,
    },
    /// The revealed `r` does not open the D-H Commit.
    CommitMismatch {
        /// The revealed key.
        r: [u8; 16],
    },
}

/// AKE with the peer sending the D-H Commit (after our query message).
pub fn ake_peer_initiates(peer: &mut Peer, our: &DsaPrivateKey, rng: &mut ChaCha20Rng) -> Session {
    try_ake_peer_initiates(peer, our, true, rng)
        .unwrap_or_else(|f| panic!("the peer's Reveal Signature rejected: {f:?}"))
}

/// [`ake_peer_initiates`], returning a failure to open the peer's commitment instead of
/// panicking (for a peer with a known defect there). On the `first` AKE the peer cannot know
/// our instance tag yet; on a restart it does.
pub fn try_ake_peer_initiates(
    peer: &mut Peer,
    our: &DsaPrivateKey,
    first: bool,
    rng: &mut ChaCha20Rng,
) -> Result<Session, PeerAkeFailure> {
    let (h, commit) = one_message(&peer.outgoing("recv ?OTRv3?"));
    let Message::DhCommit(commit) = commit else {
        panic!("the peer answered the query with {commit:?}")
    };
    let expected = if first { InstanceTag(0) } else { OUR_TAG };
    assert_eq!(h.receiver, expected, "receiver tag of the D-H Commit");
    let their = h.sender;
    let (alice, dh_key) = ake::receive_dh_commit(&commit, rng);
    let lines = to_peer(peer, Message::DhKey(dh_key), their);
    let msgs = peer.messages(&lines);
    assert_eq!(
        msgs.len(),
        1,
        "expected one message from the peer: {msgs:?}"
    );
    let raw = decode_otr(&msgs[0]).unwrap();
    let Ok((h2, reveal)) = Message::decode(&raw) else {
        // Header (11 bytes), then r as DATA: its 4-byte length.
        let r_len = raw
            .get(11..15)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap()));
        return Err(PeerAkeFailure::RevealUndecodable { r_len });
    };
    assert_eq!((h2.sender, h2.receiver), (their, OUR_TAG));
    let Message::RevealSignature(reveal) = reveal else {
        panic!("expected a Reveal Signature, got {reveal:?}")
    };
    let (done, sig) = match alice.receive_reveal_signature(&reveal, our) {
        Ok(v) => v,
        Err(r) if r.error == otr4::hazmat::v3::V3Error::CommitMismatch => {
            return Err(PeerAkeFailure::CommitMismatch { r: reveal.r });
        }
        Err(r) => panic!("the peer's Reveal Signature rejected: {}", r.error),
    };
    let lines = to_peer(peer, Message::Signature(sig), their);
    assert!(!done.sent_reveal_signature);
    Ok(finish(peer, lines, done, our, their, rng))
}

/// AKE with otr4 sending the D-H Commit.
pub fn ake_otr4_initiates(peer: &mut Peer, our: &DsaPrivateKey, rng: &mut ChaCha20Rng) -> Session {
    let (bob, commit) = ake::start(rng);
    let commit = Message::DhCommit(commit).encode(OUR_TAG, InstanceTag(0));
    let lines = peer.recv(&encode_otr(&commit), InstanceTag(0));
    let (h, dh_key) = one_message(&peer.messages(&lines));
    let Message::DhKey(dh_key) = dh_key else {
        panic!("expected a D-H Key, got {dh_key:?}")
    };
    let their = h.sender;
    assert_eq!(h.receiver, OUR_TAG);
    let (bob, reveal) = bob.receive_dh_key(&dh_key, our).unwrap();
    let lines = to_peer(peer, Message::RevealSignature(reveal), their);
    let outs = peer.messages(&lines);
    let (_, sig) = one_message(&outs);
    let Message::Signature(sig) = sig else {
        panic!("expected a Signature, got {sig:?}")
    };
    let done = bob
        .receive_signature(&sig)
        .unwrap_or_else(|r| panic!("the peer's Signature rejected: {}", r.error));
    assert!(done.sent_reveal_signature);
    finish(peer, lines, done, our, their, rng)
}

/// Decrypts one data message from the peer and returns its human-readable part.
pub fn receive(session: &mut Session, line: &str, rng: &mut ChaCha20Rng) -> String {
    let (h, m) = Message::decode(&decode_otr(line).unwrap()).unwrap();
    let Message::Data(d) = m else {
        panic!("expected a Data message, got {m:?}")
    };
    let got = session
        .decrypt(&h, &d, rng)
        .unwrap_or_else(|e| panic!("the peer's data message rejected: {e}"));
    let p = V3Plaintext::parse(&got.plaintext);
    String::from_utf8(p.message).unwrap()
}

/// 100 messages each way in changing patterns (alternating, then bursts from each side),
/// so both sides rotate keys many times; every plaintext is checked on arrival.
pub fn converse(peer: &mut Peer, session: &mut Session, rng: &mut ChaCha20Rng) {
    let (our_start, their_start) = session.keyids();
    let (mut from_peer, mut from_otr4) = (0, 0);
    let mut round = 0;
    while from_peer < 100 || from_otr4 < 100 {
        let burst = 1 + round % 4;
        for _ in 0..burst {
            if from_peer < 100 {
                let text = format!("peer says {from_peer}");
                let out = peer.outgoing(&format!("send {text}"));
                assert_eq!(out.len(), 1, "{out:?}");
                assert_eq!(receive(session, &out[0], rng), text);
                from_peer += 1;
            }
        }
        for _ in 0..(1 + (round + 2) % 3) {
            if from_otr4 < 100 {
                let text = format!("otr4 says {from_otr4} ✓");
                let pt = V3Plaintext::encode(text.as_bytes(), &[]).unwrap();
                let wire = encode_otr(&session.encrypt(&pt, 0).unwrap());
                let lines = peer.recv(&wire, peer.their_tag);
                assert_eq!(lines, [format!("MSG {text}")]);
                from_otr4 += 1;
            }
        }
        round += 1;
    }
    let (our_end, their_end) = session.keyids();
    assert!(
        our_end >= our_start + 20 && their_end >= their_start + 20,
        "keys rotated too little: ours {our_start}→{our_end}, theirs {their_start}→{their_end}"
    );
}

/// Long messages both ways (several fragments each when the peer was spawned with
/// `fragment_at`), then checks that fragments really flowed in both directions.
pub fn long_messages(peer: &mut Peer, session: &mut Session, rng: &mut ChaCha20Rng) {
    let before = peer.fragments_received;
    for i in 0..3 {
        let text = format!("{i}: {}end", "long line from the peer ".repeat(40));
        let out = peer.outgoing(&format!("send {text}"));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(receive(session, &out[0], rng), text);

        let text = format!("{i}: {}end", "long line from otr4 ✓ ".repeat(40));
        let pt = V3Plaintext::encode(text.as_bytes(), &[]).unwrap();
        let wire = encode_otr(&session.encrypt(&pt, 0).unwrap());
        if let Some(max) = peer.fragment_at {
            assert!(
                wire.len() > 3 * max,
                "the message must need several fragments"
            );
        }
        let lines = peer.recv(&wire, peer.their_tag);
        assert_eq!(lines, [format!("MSG {text}")]);
    }
    if peer.fragment_at.is_some() {
        assert!(
            peer.fragments_received >= before + 3 * 4,
            "the peer did not fragment: {} fragments",
            peer.fragments_received - before
        );
    }
}

/// A tampered data message each way: the peer shows nothing from it, otr4 rejects it, and
/// the untampered message still decrypts afterwards.
pub fn tampering(peer: &mut Peer, session: &mut Session, rng: &mut ChaCha20Rng) {
    // otr4 → the peer with one ciphertext byte flipped: the peer shows nothing readable.
    let pt = V3Plaintext::encode(b"secret", &[]).unwrap();
    let mut bin = session.encrypt(&pt, 0).unwrap();
    let (h, Message::Data(mut d)) = Message::decode(&bin).unwrap() else {
        panic!()
    };
    d.encrypted[0] ^= 1;
    bin = Message::Data(d).encode(h.sender, h.receiver);
    let lines = peer.recv(&encode_otr(&bin), peer.their_tag);
    assert!(
        !lines.iter().any(|l| l.starts_with("MSG")),
        "the peer displayed a tampered message: {lines:?}"
    );
    // The peer → otr4 with the MAC flipped: rejected, and the untouched one still decrypts.
    let out = peer.outgoing("send hello");
    let (h, Message::Data(d)) = Message::decode(&decode_otr(&out[0]).unwrap()).unwrap() else {
        panic!()
    };
    let mut bad = d.clone();
    bad.mac[3] ^= 0x40;
    assert!(session.decrypt(&h, &bad, rng).is_err());
    assert_eq!(receive(session, &out[0], rng), "hello");
}

/// The SMP TLV (types 2–6) in one data message from the peer.
fn smp_tlv(session: &mut Session, line: &str, rng: &mut ChaCha20Rng) -> V3Tlv {
    let (h, m) = Message::decode(&decode_otr(line).unwrap()).unwrap();
    let Message::Data(d) = m else {
        panic!("expected a Data message, got {m:?}")
    };
    let got = session
        .decrypt(&h, &d, rng)
        .unwrap_or_else(|e| panic!("the peer's data message rejected: {e}"));
    let p = V3Plaintext::parse(&got.plaintext);
    p.tlvs
        .into_iter()
        .find(|t| {
            matches!(
                t.typ,
                V3TlvType::Smp1
                    | V3TlvType::Smp1Q
                    | V3TlvType::Smp2
                    | V3TlvType::Smp3
                    | V3TlvType::Smp4
                    | V3TlvType::SmpAbort
            )
        })
        .expect("an SMP TLV")
}

/// Sends `tlv` in a data message flagged IGNORE_UNREADABLE, as libotr sends SMP.
fn send_tlv(peer: &mut Peer, session: &mut Session, tlv: V3Tlv) -> Vec<String> {
    let pt = V3Plaintext::encode(b"", &[tlv]).unwrap();
    let wire = encode_otr(&session.encrypt(&pt, 1).unwrap());
    peer.recv(&wire, peer.their_tag)
}

fn smp_lines(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.starts_with("SMP "))
        .map(String::as_str)
        .collect()
}

/// SMP with the peer (Protocol-v3.html §"The SMP state machine"): otr4 enters `ours`, the
/// peer `theirs`; `otr4_starts` picks who begins. Both sides must reach the same verdict,
/// which is returned.
pub fn smp(
    peer: &mut Peer,
    session: &mut Session,
    our: &DsaPrivateKey,
    rng: &mut ChaCha20Rng,
    otr4_starts: bool,
    ours: &str,
    theirs: &str,
) -> bool {
    let ctx = SmpContext {
        our_fingerprint: our.public().fingerprint(),
        their_fingerprint: session.their_public().fingerprint(),
        ssid: session.ssid().0,
    };
    let mut smp = Smp::new();
    let (verdict, peer_lines) = if otr4_starts {
        let (_, m1) = smp.start(&ctx, ours.as_bytes(), None, rng);
        let lines = send_tlv(peer, session, m1);
        assert_eq!(smp_lines(&lines), ["SMP ask"], "{lines:?}");
        let out = peer.outgoing(&format!("smp-respond {theirs}"));
        let m2 = smp_tlv(session, &out[0], rng);
        let step = smp.receive(&m2, rng);
        assert_eq!(step.event, None, "{step:?}");
        let lines = send_tlv(peer, session, step.reply.unwrap());
        let msgs = peer.messages(&lines);
        let m4 = smp_tlv(session, &msgs[0], rng);
        let step = smp.receive(&m4, rng);
        let Some(SmpEvent::Finished { verified }) = step.event else {
            panic!("expected the SMP verdict, got {step:?}")
        };
        (verified, lines)
    } else {
        let out = peer.outgoing(&format!("smp {theirs}"));
        let m1 = smp_tlv(session, &out[0], rng);
        let step = smp.receive(&m1, rng);
        assert_eq!(
            step.event,
            Some(SmpEvent::SecretRequested { question: None }),
            "{step:?}"
        );
        let m2 = smp.respond(&ctx, ours.as_bytes(), rng).unwrap();
        let lines = send_tlv(peer, session, m2);
        let msgs = peer.messages(&lines);
        let m3 = smp_tlv(session, &msgs[0], rng);
        let step = smp.receive(&m3, rng);
        let Some(SmpEvent::Finished { verified }) = step.event else {
            panic!("expected the SMP verdict, got {step:?}")
        };
        let lines = send_tlv(peer, session, step.reply.unwrap());
        (verified, lines)
    };
    let want = if verdict {
        "SMP success"
    } else {
        "SMP failure"
    };
    assert_eq!(smp_lines(&peer_lines), [want], "{peer_lines:?}");
    assert!(!smp.in_progress());
    verdict
}

/// SMP both ways with equal secrets (verified) and with different ones (not verified), then
/// a message each way: the conversation goes on.
pub fn smp_both_ways(
    peer: &mut Peer,
    session: &mut Session,
    our: &DsaPrivateKey,
    rng: &mut ChaCha20Rng,
) {
    for otr4_starts in [true, false] {
        assert!(smp(
            peer,
            session,
            our,
            rng,
            otr4_starts,
            "our café",
            "our café"
        ));
        assert!(!smp(peer, session, our, rng, otr4_starts, "right", "wrong"));
    }
    let out = peer.outgoing("send still here");
    assert_eq!(receive(session, &out[0], rng), "still here");
}

// ---------------------------------------------------------------------------------------
// The compatible mode through `otr4::Client` (otrv4.md §"OTRv3-compatible mode").

/// The bare JIDs on the client side: ours, and the one the peer is known by.
pub const US: &str = "otr4@example.org";
/// The peer's bare JID as the client knows it.
pub const THEM: &str = "peer@example.org";
const T0: i64 = 1_700_000_000;

/// An `otr4::Client` in the OTRv3-compatible mode allowing versions 3 and 4, holding a DSA key
/// libotr wrote (the key-migration fixture), talking to a [`Peer`] over the line protocol.
pub struct Compat {
    /// The client.
    pub client: Client,
    prekeys: PrekeyStore,
    rng: ChaCha20Rng,
    /// Every event of the client that is not a message to send.
    pub events: Vec<Event>,
}

impl Compat {
    /// The client; it fragments at the peer's size, if the peer fragments.
    pub fn new(peer: &Peer) -> Compat {
        let mut rng = ChaCha20Rng::seed_from_u64(34);
        let policy = Policy {
            versions: Versions::V3_AND_V4,
            max_message_size: peer.fragment_at.unwrap_or(0),
            ..Policy::default()
        };
        let mut account = Account::generate(&mut rng, policy, T0).unwrap();
        let file = include_bytes!("../../../otr4/src/v3/testdata/two.private_key");
        let key = read_private_keys(file).unwrap().remove(0).key;
        account.set_v3_key(key);
        Compat {
            prekeys: PrekeyStore::new(account.instance_tag()),
            client: Client::new(account, US),
            rng,
            events: Vec::new(),
        }
    }

    /// Delivers the peer's `OUT` lines among `lines` to the client and the client's messages
    /// (in `events`) to the peer, until neither has anything left to say. Returns the peer's
    /// other lines (`MSG`, `SECURE`, `SMP …`, `EVENT …`); the client's other events are
    /// appended to [`Compat::events`].
    pub fn exchange(
        &mut self,
        peer: &mut Peer,
        lines: Vec<String>,
        events: Vec<Event>,
    ) -> Vec<String> {
        let mut shown = Vec::new();
        let mut to_client = std::collections::VecDeque::new();
        let mut to_peer = std::collections::VecDeque::new();
        let mut sort_lines =
            |lines: Vec<String>, to_client: &mut std::collections::VecDeque<String>| {
                for l in lines {
                    match l.strip_prefix("OUT ") {
                        Some(m) => to_client.push_back(m.to_string()),
                        None => shown.push(l),
                    }
                }
            };
        sort_lines(lines, &mut to_client);
        let mut sort_events =
            |events: Vec<Event>, to_peer: &mut std::collections::VecDeque<String>| {
                for e in events {
                    match e {
                        Event::Send { text, .. } => to_peer.push_back(text),
                        other => self.events.push(other),
                    }
                }
            };
        sort_events(events, &mut to_peer);
        loop {
            if let Some(t) = to_peer.pop_front() {
                sort_lines(peer.cmd(&format!("recv {t}")), &mut to_client);
            } else if let Some(t) = to_client.pop_front() {
                let ev = self
                    .client
                    .receive(THEM, &t, &mut self.prekeys, T0, &mut self.rng);
                sort_events(ev, &mut to_peer);
            } else {
                return shown;
            }
        }
    }

    /// The texts the client received encrypted since the last call.
    pub fn received(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        self.events.retain(|e| match e {
            Event::Received {
                text,
                encrypted: true,
                ..
            } => {
                out.push(text.clone());
                false
            }
            _ => true,
        });
        out
    }

    /// The SMP updates since the last call.
    pub fn smp_updates(&mut self) -> Vec<SmpUpdate> {
        let mut out = Vec::new();
        self.events.retain(|e| match e {
            Event::Smp { update, .. } => {
                out.push(update.clone());
                false
            }
            _ => true,
        });
        out
    }

    /// The `SecureV3` event since the last call: the peer's instance and fingerprint.
    pub fn secure_v3(&mut self) -> Option<(InstanceTag, V3Fingerprint)> {
        let mut found = None;
        self.events.retain(|e| match e {
            Event::SecureV3 {
                instance,
                their_fingerprint,
                ..
            } => {
                found = Some((*instance, *their_fingerprint));
                false
            }
            _ => true,
        });
        found
    }
}

/// The client's AKE with the peer: after the client's query (`?OTRv34?`: the peer answers
/// with a v3 D-H Commit) or after the peer's query (the client answers with a D-H Commit).
/// `retries` more queries are allowed when the client refused the peer's commitment (the
/// JavaScript library's unpadded `r`, docs/spec-notes.md). Checks both sides' view of the
/// session and returns the peer's instance tag.
pub fn compat_ake(
    c: &mut Compat,
    peer: &mut Peer,
    client_queries: bool,
    retries: usize,
) -> InstanceTag {
    for _ in 0..=retries {
        let shown = if client_queries {
            let ev = c.client.start(THEM, T0, &mut c.rng);
            match &ev[..] {
                [Event::Send { text, .. }] => assert!(text.starts_with("?OTRv34?"), "{text}"),
                other => panic!("expected one query message: {other:?}"),
            }
            c.exchange(peer, Vec::new(), ev)
        } else {
            let lines = peer.cmd("send ?OTRv3?");
            c.exchange(peer, lines, Vec::new())
        };
        let Some((tag, fp)) = c.secure_v3() else {
            let refused = c.events.iter().any(|e| {
                matches!(
                    e,
                    Event::Warning {
                        warning: Warning::Otrv3MessageIgnored(_),
                        ..
                    } | Event::Error {
                        error: otr4::ConversationError::Malformed(_),
                        ..
                    }
                )
            });
            assert!(
                refused,
                "no OTRv3 session and no refusal: {:?} / {shown:?}",
                c.events
            );
            eprintln!("the peer's commitment was refused: AKE restarted");
            c.events.clear();
            continue;
        };
        let ours = c.client.account().v3_fingerprint().unwrap();
        assert!(
            shown.contains(&format!("SECURE {ours}")),
            "the peer did not go secure with our key: {shown:?}"
        );
        assert_eq!(fp.to_string(), peer.fingerprint());
        assert!(
            !c.events.iter().any(|e| matches!(e, Event::Secure { .. })),
            "announced as OTRv4"
        );
        assert_eq!(
            c.client.peer(THEM).unwrap().v3_session(),
            (ConversationState::Encrypted, Some(tag))
        );
        peer.their_tag = tag;
        return tag;
    }
    panic!("no OTRv3 session after {} attempts", retries + 1)
}

/// The compatible mode's whole conversation with the peer: the AKE (see [`compat_ake`]), 40
/// messages each way in bursts (key rotations), long messages, SMP started by each side with
/// equal and with different secrets, then the client ends the session and the peer can no
/// longer send to it in the clear.
pub fn compat_conversation(peer: &mut Peer, client_queries: bool, retries: usize) {
    let mut c = Compat::new(peer);
    let tag = compat_ake(&mut c, peer, client_queries, retries);
    for round in 0..10 {
        for i in 0..4 {
            let text = format!("peer {round}.{i}");
            let lines = peer.cmd(&format!("send {text}"));
            c.exchange(peer, lines, Vec::new());
            assert_eq!(c.received(), [text]);
        }
        for i in 0..4 {
            let text = format!("otr4 {round}.{i} ✓");
            let ev = c.client.send(THEM, &text, &[], T0, &mut c.rng);
            let shown = c.exchange(peer, Vec::new(), ev);
            assert_eq!(shown, [format!("MSG {text}")]);
        }
    }
    let long = format!(
        "{}end",
        "a long line through the compatible mode ".repeat(30)
    );
    let ev = c.client.send(THEM, &long, &[], T0, &mut c.rng);
    assert_eq!(c.exchange(peer, Vec::new(), ev), [format!("MSG {long}")]);
    let lines = peer.cmd(&format!("send {long}"));
    c.exchange(peer, lines, Vec::new());
    assert_eq!(c.received(), [long]);

    for (ours, theirs, verified) in [("café", "café", true), ("right", "wrong", false)] {
        // The client starts …
        let ev = c
            .client
            .smp_start(THEM, tag, ours.as_bytes(), None, T0, &mut c.rng);
        let shown = c.exchange(peer, Vec::new(), ev);
        assert_eq!(smp_lines(&shown), ["SMP ask"], "{shown:?}");
        let lines = peer.cmd(&format!("smp-respond {theirs}"));
        let shown = c.exchange(peer, lines, Vec::new());
        let want = if verified {
            "SMP success"
        } else {
            "SMP failure"
        };
        assert_eq!(smp_lines(&shown), [want], "{shown:?}");
        let want = if verified {
            SmpUpdate::Succeeded
        } else {
            SmpUpdate::Failed
        };
        assert_eq!(c.smp_updates().last(), Some(&want));
        // … and the peer starts.
        let lines = peer.cmd(&format!("smp {theirs}"));
        c.exchange(peer, lines, Vec::new());
        assert_eq!(
            c.smp_updates(),
            [SmpUpdate::AskForSecret { question: None }]
        );
        let ev = c
            .client
            .smp_respond(THEM, tag, ours.as_bytes(), T0, &mut c.rng);
        let shown = c.exchange(peer, Vec::new(), ev);
        let want = if verified {
            "SMP success"
        } else {
            "SMP failure"
        };
        assert_eq!(smp_lines(&shown), [want], "{shown:?}");
        let want = if verified {
            SmpUpdate::Succeeded
        } else {
            SmpUpdate::Failed
        };
        assert_eq!(c.smp_updates().last(), Some(&want));
    }

    // The client ends the session: the peer is told and sends nothing in the clear.
    let ev = c.client.end(THEM, None, T0, &mut c.rng);
    c.exchange(peer, Vec::new(), ev);
    assert!(
        c.events
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. })),
        "{:?}",
        c.events
    );
    assert_eq!(
        c.client.peer(THEM).unwrap().v3_session().0,
        ConversationState::Start
    );
    let lines = peer.cmd("send not in the clear");
    assert!(
        !lines.iter().any(|l| l.contains("not in the clear")),
        "the peer sent in the clear after the session ended: {lines:?}"
    );
}

/// An `otr4-peer` child process.
struct Otr4Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Otr4Peer {
    /// Runs one command; returns its lines up to `event done`.
    fn cmd(&mut self, line: &str) -> Vec<String> {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut out = Vec::new();
        loop {
            let mut l = String::new();
            assert!(
                self.stdout.read_line(&mut l).unwrap() > 0,
                "otr4-peer exited"
            );
            let l = l.trim_end().to_string();
            if l.starts_with("event done") {
                return out;
            }
            out.push(l);
        }
    }
}

impl Drop for Otr4Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Relays between `otr4-peer` and the peer until both are quiet; returns (otr4-peer's
/// lines, the peer's lines) other than messages to send.
fn relay(
    ours: &mut Otr4Peer,
    peer: &mut Peer,
    to_ours: Vec<String>,
    to_peer: Vec<String>,
) -> (Vec<String>, Vec<String>) {
    let (mut seen_ours, mut seen_peer) = (Vec::new(), Vec::new());
    let mut to_ours: std::collections::VecDeque<String> = to_ours.into();
    let mut to_peer: std::collections::VecDeque<String> = to_peer.into();
    loop {
        if let Some(m) = to_peer.pop_front() {
            for l in peer.cmd(&format!("recv {m}")) {
                match l.strip_prefix("OUT ") {
                    Some(m) => to_ours.push_back(m.to_string()),
                    None => seen_peer.push(l),
                }
            }
        } else if let Some(m) = to_ours.pop_front() {
            for l in ours.cmd(&format!("recv {m}")) {
                match l.strip_prefix("out ") {
                    Some(m) => to_peer.push_back(m.to_string()),
                    None => seen_ours.push(l),
                }
            }
        } else {
            return (seen_ours, seen_peer);
        }
    }
}

/// The lines starting with `prefix`, without it.
fn with_prefix(lines: Vec<String>, prefix: &str) -> Vec<String> {
    lines
        .into_iter()
        .filter_map(|l| l.strip_prefix(prefix).map(str::to_string))
        .collect()
}

/// `otr4-peer --mode compatible` (the line-protocol client auditors drive) against the peer:
/// the peer's query gets a v3 D-H Commit, the AKE completes on both sides with each other's
/// fingerprints, messages go both ways, and SMP succeeds. `otr4_peer` is the path of the
/// binary; every `out` line of one side is the other's `recv`.
pub fn otr4_peer_binary_talks_v3(peer: &mut Peer, otr4_peer: &str) {
    let key = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../otr4/src/v3/testdata/two.private_key");
    let mut child = Command::new(otr4_peer)
        .args([
            "--seed",
            "7",
            "--now",
            "1780000000",
            "--mode",
            "compatible",
            "--v3-key",
        ])
        .arg(&key)
        .args(["--us", US, "--them", THEM])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ours = Otr4Peer {
        child,
        stdin,
        stdout,
    };
    let query = with_prefix(peer.cmd("send ?OTRv3?"), "OUT ");
    let (seen_ours, seen_peer) = relay(&mut ours, peer, query, Vec::new());
    let secure = seen_ours
        .iter()
        .find(|l| l.starts_with("event secure_v3 "))
        .unwrap_or_else(|| panic!("no OTRv3 session: {seen_ours:?} / {seen_peer:?}"));
    let their_fp = peer.fingerprint().replace(' ', "").to_lowercase();
    assert!(
        secure.ends_with(&format!("fingerprint={their_fp}")),
        "{secure}"
    );
    let file = std::fs::read(&key).unwrap();
    let our_fp = read_private_keys(&file)
        .unwrap()
        .remove(0)
        .key
        .fingerprint();
    assert!(
        seen_peer.contains(&format!("SECURE {our_fp}")),
        "{seen_peer:?}"
    );

    for i in 0..5 {
        let m = with_prefix(peer.cmd(&format!("send from the peer {i}")), "OUT ");
        let (seen_ours, _) = relay(&mut ours, peer, m, Vec::new());
        assert_eq!(seen_ours, [format!("msg from the peer {i}")]);
        let m = with_prefix(ours.cmd(&format!("send from otr4-peer {i}")), "out ");
        let (_, seen_peer) = relay(&mut ours, peer, Vec::new(), m);
        assert_eq!(seen_peer, [format!("MSG from otr4-peer {i}")]);
    }
    let m = with_prefix(ours.cmd("smp same secret"), "out ");
    let (_, seen_peer) = relay(&mut ours, peer, Vec::new(), m);
    assert_eq!(smp_lines(&seen_peer), ["SMP ask"], "{seen_peer:?}");
    let m = with_prefix(peer.cmd("smp-respond same secret"), "OUT ");
    let (seen_ours, seen_peer) = relay(&mut ours, peer, m, Vec::new());
    assert!(
        seen_ours
            .iter()
            .any(|l| l.starts_with("event smp result=success")),
        "{seen_ours:?}"
    );
    assert_eq!(smp_lines(&seen_peer), ["SMP success"], "{seen_peer:?}");
}
