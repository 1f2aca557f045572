//! otr4's OTRv3 against libotr 4.1 (Debian `libotr5-dev`): the C harness
//! `interop/libotr/harness.c`, written here against libotr's public API, is compiled with
//! gcc and driven over pipes. The AKE runs in both roles, then 100 messages go each way
//! with key rotation, every plaintext asserted.
//!
//! Needs gcc, pkg-config and libotr5-dev, so `#[ignore]`d locally; `.ci/run` runs it with
//! `--ignored`, where a missing compiler or library fails it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use chacha20::ChaCha20Rng;
use otr4::InstanceTag;
use otr4::hazmat::v3::ake::{self, AkeComplete};
use otr4::hazmat::v3::messages::{Header, Message};
use otr4::hazmat::v3::pubkey::{DsaPrivateKey, DsaPublicKey};
use otr4::hazmat::v3::session::Session;
use otr4::hazmat::v3::tlv::V3Plaintext;
use otr4::hazmat::wire::encoded::{decode_otr, encode_otr};
use rand_core::SeedableRng;

const OUR_TAG: InstanceTag = InstanceTag(0x4f54_5234);

/// The harness binary and a directory holding libotr's key, built once per test run.
fn harness() -> &'static (PathBuf, PathBuf) {
    static H: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    H.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("otr4-libotr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/libotr/harness.c");
        let bin = dir.join("harness");
        let flags = Command::new("pkg-config")
            .args(["--cflags", "--libs", "libotr"])
            .output()
            .expect("pkg-config is needed (apt-get install pkg-config libotr5-dev)");
        assert!(
            flags.status.success(),
            "pkg-config cannot find libotr (apt-get install libotr5-dev): {}",
            String::from_utf8_lossy(&flags.stderr)
        );
        let flags = String::from_utf8(flags.stdout).unwrap();
        let out = Command::new("gcc")
            .args(["-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&bin)
            .arg(&src)
            .args(flags.split_whitespace())
            .output()
            .expect("gcc is needed to build the libotr harness");
        assert!(
            out.status.success(),
            "harness build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Generate libotr's key once (`fp` makes the harness create it), before the tests
        // run their own harnesses in parallel, each in a copy of this directory.
        let keydir = dir.join("key");
        std::fs::create_dir_all(&keydir).unwrap();
        let mut gen_key = Command::new(&bin)
            .arg(&keydir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        gen_key.stdin.take().unwrap().write_all(b"fp\n").unwrap();
        let out = gen_key.wait_with_output().unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("FP "),
            "libotr key generation failed"
        );
        (bin, keydir)
    })
}

/// The otr4 side's DSA key, generated once per test run.
fn our_key() -> &'static DsaPrivateKey {
    static K: OnceLock<DsaPrivateKey> = OnceLock::new();
    K.get_or_init(|| DsaPrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(16)).unwrap())
}

struct Libotr {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Libotr {
    /// A libotr peer in its own directory, with the shared key.
    fn spawn(name: &str) -> Libotr {
        let (bin, keydir) = harness();
        let dir = keydir.parent().unwrap().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(keydir.join("otr.private_key"), dir.join("otr.private_key")).unwrap();
        let mut child = Command::new(bin)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Libotr {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one command; returns the lines printed before `DONE`.
    fn cmd(&mut self, line: &str) -> Vec<String> {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut out = Vec::new();
        loop {
            let mut l = String::new();
            assert!(self.stdout.read_line(&mut l).unwrap() > 0, "harness exited");
            let l = l.trim_end().to_string();
            if l == "DONE" {
                return out;
            }
            out.push(l);
        }
    }

    /// The `OUT` lines of a command (what libotr sends to us).
    fn outgoing(&mut self, line: &str) -> Vec<String> {
        self.cmd(line)
            .into_iter()
            .filter_map(|l| l.strip_prefix("OUT ").map(str::to_string))
            .collect()
    }

    fn fingerprint(&mut self) -> String {
        let lines = self.cmd("fp");
        lines[0].strip_prefix("FP ").unwrap().to_string()
    }
}

impl Drop for Libotr {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// libotr's human-readable fingerprint format: five groups of 8 upper-case hex digits.
fn human(fp: &[u8; 20]) -> String {
    fp.chunks(4)
        .map(|c| c.iter().map(|b| format!("{b:02X}")).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The single encoded message in `lines`, decoded.
fn one_message(lines: &[String]) -> (Header, Message) {
    assert_eq!(
        lines.len(),
        1,
        "expected one message from libotr: {lines:?}"
    );
    Message::decode(&decode_otr(&lines[0]).unwrap()).unwrap()
}

fn to_libotr(msg: Message, their: InstanceTag) -> String {
    format!("recv {}", encode_otr(&msg.encode(OUR_TAG, their)))
}

/// Checks libotr's view of the finished AKE and builds our session.
fn finish(
    libotr: &mut Libotr,
    lines: Vec<String>,
    done: AkeComplete,
    their: InstanceTag,
    rng: &mut ChaCha20Rng,
) -> Session {
    let want = format!("SECURE {}", human(&our_key().public().fingerprint()));
    assert!(lines.contains(&want), "libotr did not go secure: {lines:?}");
    assert_eq!(
        human(&done.their_public.fingerprint()),
        libotr.fingerprint(),
        "libotr's key as seen by otr4"
    );
    Session::new(done, OUR_TAG, their, rng)
}

/// AKE with libotr sending the D-H Commit (after our query message).
fn ake_libotr_initiates(libotr: &mut Libotr, rng: &mut ChaCha20Rng) -> Session {
    let (h, commit) = one_message(&libotr.outgoing("recv ?OTRv3?"));
    let Message::DhCommit(commit) = commit else {
        panic!("libotr answered the query with {commit:?}")
    };
    assert_eq!(
        h.receiver,
        InstanceTag(0),
        "libotr does not know our tag yet"
    );
    let their = h.sender;
    let (alice, dh_key) = ake::receive_dh_commit(&commit, rng);
    let (h2, reveal) = one_message(&libotr.outgoing(&to_libotr(Message::DhKey(dh_key), their)));
    assert_eq!((h2.sender, h2.receiver), (their, OUR_TAG));
    let Message::RevealSignature(reveal) = reveal else {
        panic!("expected a Reveal Signature, got {reveal:?}")
    };
    let (done, sig) = alice
        .receive_reveal_signature(&reveal, our_key())
        .unwrap_or_else(|r| panic!("libotr's Reveal Signature rejected: {}", r.error));
    let lines = libotr.cmd(&to_libotr(Message::Signature(sig), their));
    assert!(!done.sent_reveal_signature);
    finish(libotr, lines, done, their, rng)
}

/// AKE with otr4 sending the D-H Commit.
fn ake_otr4_initiates(libotr: &mut Libotr, rng: &mut ChaCha20Rng) -> Session {
    let (bob, commit) = ake::start(rng);
    let commit = Message::DhCommit(commit).encode(OUR_TAG, InstanceTag(0));
    let (h, dh_key) = one_message(&libotr.outgoing(&format!("recv {}", encode_otr(&commit))));
    let Message::DhKey(dh_key) = dh_key else {
        panic!("expected a D-H Key, got {dh_key:?}")
    };
    let their = h.sender;
    assert_eq!(h.receiver, OUR_TAG);
    let (bob, reveal) = bob.receive_dh_key(&dh_key, our_key()).unwrap();
    let lines = libotr.cmd(&to_libotr(Message::RevealSignature(reveal), their));
    let outs: Vec<String> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("OUT ").map(str::to_string))
        .collect();
    let (_, sig) = one_message(&outs);
    let Message::Signature(sig) = sig else {
        panic!("expected a Signature, got {sig:?}")
    };
    let done = bob
        .receive_signature(&sig)
        .unwrap_or_else(|r| panic!("libotr's Signature rejected: {}", r.error));
    assert!(done.sent_reveal_signature);
    finish(libotr, lines, done, their, rng)
}

/// Decrypts one data message from libotr and returns its human-readable part.
fn receive(session: &mut Session, line: &str, rng: &mut ChaCha20Rng) -> String {
    let (h, m) = Message::decode(&decode_otr(line).unwrap()).unwrap();
    let Message::Data(d) = m else {
        panic!("expected a Data message, got {m:?}")
    };
    let got = session
        .decrypt(&h, &d, rng)
        .unwrap_or_else(|e| panic!("libotr's data message rejected: {e}"));
    let p = V3Plaintext::parse(&got.plaintext);
    String::from_utf8(p.message).unwrap()
}

/// 100 messages each way in changing patterns (alternating, then bursts from each side),
/// so both sides rotate keys many times; every plaintext is checked on arrival.
fn converse(libotr: &mut Libotr, session: &mut Session, rng: &mut ChaCha20Rng) {
    let (our_start, their_start) = session.keyids();
    let (mut from_libotr, mut from_otr4) = (0, 0);
    let mut round = 0;
    while from_libotr < 100 || from_otr4 < 100 {
        let burst = 1 + round % 4;
        for _ in 0..burst {
            if from_libotr < 100 {
                let text = format!("libotr says {from_libotr}");
                let out = libotr.outgoing(&format!("send {text}"));
                assert_eq!(out.len(), 1, "{out:?}");
                assert_eq!(receive(session, &out[0], rng), text);
                from_libotr += 1;
            }
        }
        for _ in 0..(1 + (round + 2) % 3) {
            if from_otr4 < 100 {
                let text = format!("otr4 says {from_otr4} ✓");
                let pt = V3Plaintext::encode(text.as_bytes(), &[]).unwrap();
                let wire = encode_otr(&session.encrypt(&pt, 0).unwrap());
                let lines = libotr.cmd(&format!("recv {wire}"));
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

#[test]
#[ignore = "needs gcc, pkg-config and libotr5-dev (run by .ci/run with --ignored)"]
fn libotr_initiates_ake_then_100_messages_each_way() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut libotr = Libotr::spawn("libotr-initiates");
    let mut session = ake_libotr_initiates(&mut libotr, &mut rng);
    converse(&mut libotr, &mut session, &mut rng);
}

#[test]
#[ignore = "needs gcc, pkg-config and libotr5-dev (run by .ci/run with --ignored)"]
fn otr4_initiates_ake_then_100_messages_each_way() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut libotr = Libotr::spawn("otr4-initiates");
    let mut session = ake_otr4_initiates(&mut libotr, &mut rng);
    converse(&mut libotr, &mut session, &mut rng);
}

#[test]
#[ignore = "needs gcc, pkg-config and libotr5-dev (run by .ci/run with --ignored)"]
fn libotr_rejects_tampered_data_and_otr4_rejects_tampered_libotr_data() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut libotr = Libotr::spawn("tampering");
    let mut session = ake_otr4_initiates(&mut libotr, &mut rng);
    // otr4 → libotr with one ciphertext byte flipped: libotr shows nothing readable.
    let pt = V3Plaintext::encode(b"secret", &[]).unwrap();
    let mut bin = session.encrypt(&pt, 0).unwrap();
    let (h, Message::Data(mut d)) = Message::decode(&bin).unwrap() else {
        panic!()
    };
    d.encrypted[0] ^= 1;
    bin = Message::Data(d).encode(h.sender, h.receiver);
    let lines = libotr.cmd(&format!("recv {}", encode_otr(&bin)));
    assert!(
        !lines.iter().any(|l| l.starts_with("MSG")),
        "libotr displayed a tampered message: {lines:?}"
    );
    // libotr → otr4 with the MAC flipped: rejected, and the untouched one still decrypts.
    let out = libotr.outgoing("send hello");
    let (h, Message::Data(d)) = Message::decode(&decode_otr(&out[0]).unwrap()).unwrap() else {
        panic!()
    };
    let mut bad = d.clone();
    bad.mac[3] ^= 0x40;
    assert!(session.decrypt(&h, &bad, &mut rng).is_err());
    assert_eq!(receive(&mut session, &out[0], &mut rng), "hello");
    // And libotr's view of us is the key we hold.
    let _: &DsaPublicKey = session.their_public();
}
