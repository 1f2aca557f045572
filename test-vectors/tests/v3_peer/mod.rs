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
use otr4::InstanceTag;
use otr4::hazmat::v3::ake::{self, AkeComplete};
use otr4::hazmat::v3::fragment::{Reassembler, V3Fragment, fragment};
use otr4::hazmat::v3::messages::{Header, Message};
use otr4::hazmat::v3::pubkey::DsaPrivateKey;
use otr4::hazmat::v3::session::Session;
use otr4::hazmat::v3::smp::{Smp, SmpContext, SmpEvent};
use otr4::hazmat::v3::tlv::{V3Plaintext, V3Tlv, V3TlvType};
use otr4::hazmat::wire::encoded::{decode_otr, encode_otr};
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
