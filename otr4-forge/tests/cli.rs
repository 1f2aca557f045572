//! `otr4-forge` end to end: every subcommand runs on real inputs and its output is checked
//! against the honest code (a forged message decrypts on an honest ratchet, a forged
//! Auth-R is accepted by an honest Bob, a false ensemble validates); bad inputs give
//! `error:` and status 2.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use otr4::forge::{self, Party, Side};
use otr4::hazmat::crypto::ed448::{KeyPair, SymmetricKey};
use otr4::hazmat::crypto::keys::ForgingPublicKey;
use otr4::hazmat::dake::PhiPrime;
use otr4::hazmat::dake::interactive::{LocalParty, start};
use otr4::hazmat::profile::client::ClientProfile;
use otr4::hazmat::profile::prekey::PrekeyProfile;
use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::encoded::{decode_otr, encode_otr};
use otr4::hazmat::wire::messages::{Message, PrekeyEnsemble, PrekeyMessage};
use otr4::hazmat::wire::tlv::parse_plaintext;
use otr4::{InstanceTag, Padding, ValidatedEnsemble};
use rand::SeedableRng;
use rand::rngs::StdRng;

const NOW: i64 = 1_780_000_000;
const NOW_S: &str = "1780000000";

struct Who {
    sym: [u8; 57],
    forging_sym: [u8; 57],
    tag: u32,
}

impl Who {
    fn long_term(&self) -> KeyPair {
        KeyPair::from_symmetric_key(SymmetricKey::from_bytes(self.sym))
    }
    fn forging(&self) -> KeyPair {
        KeyPair::from_symmetric_key(SymmetricKey::from_bytes(self.forging_sym))
    }
    fn profile(&self) -> ClientProfile {
        ClientProfile::build_and_sign(
            InstanceTag(self.tag),
            &self.long_term(),
            &ForgingPublicKey(*self.forging().public()),
            b"4",
            NOW + 14 * 86_400,
        )
    }
    fn profile_b64(&self) -> String {
        BASE64.encode(self.profile().encode())
    }
}

const BOB: Who = Who {
    sym: [0xb0; 57],
    forging_sym: [0xbf; 57],
    tag: 0x100,
};
const ALICE: Who = Who {
    sym: [0xa1; 57],
    forging_sym: [0xaf; 57],
    tag: 0x200,
};

fn run(args: &[&str]) -> (bool, Vec<String>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_otr4-forge"))
        .args(["--seed", "7", "--now", NOW_S])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(o.stdout).unwrap();
    let stderr = String::from_utf8(o.stderr).unwrap();
    if !o.status.success() {
        assert_eq!(o.status.code(), Some(2), "{stderr}");
    }
    (
        o.status.success(),
        stdout.lines().map(str::to_owned).collect(),
        stderr,
    )
}

fn ok(args: &[&str]) -> Vec<String> {
    let (success, out, err) = run(args);
    assert!(success, "{args:?}: {err}");
    out
}

fn value<'a>(lines: &'a [String], name: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
}

fn outs(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("out "))
        .map(|l| {
            let (who, m) = l.split_once(' ').unwrap();
            (who.to_owned(), m.to_owned())
        })
        .collect()
}

fn parties() -> Vec<String> {
    [
        "--bob-profile",
        &BOB.profile_b64(),
        "--alice-profile",
        &ALICE.profile_b64(),
        "--alice-jid",
        "alice@example.org",
        "--bob-jid",
        "bob@example.org",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn phi() -> PhiPrime {
    PhiPrime::from_strings(&["alice@example.org", "bob@example.org"])
}

#[test]
fn forge_entire_transcript_and_parse_it() {
    let mut args: Vec<String> = ["forge-entire-transcript", "--holder", "alice", "--secret"]
        .map(str::to_owned)
        .to_vec();
    args.push(hex::encode(ALICE.sym));
    args.extend(parties());
    for l in ["--line", "alice:hello Bob", "--line", "bob:I confess"] {
        args.push(l.to_owned());
    }
    let out = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let msgs = outs(&out);
    let senders: Vec<&str> = msgs.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(senders, ["bob", "alice", "bob", "alice", "bob"]);
    assert_eq!(value(&out, "ssid").len(), 16);
    let types: Vec<String> = msgs
        .iter()
        .map(|(_, m)| value(&ok(&["parse", m]), "type").to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "Identity (0x35)",
            "Auth-R (0x36)",
            "Auth-I (0x37)",
            "Data (0x03)",
            "Data (0x03)"
        ]
    );
    let identity = ok(&["parse", &msgs[0].1]);
    assert_eq!(value(&identity, "client-profile-base64"), BOB.profile_b64());
    // The same seed gives the same transcript.
    let again = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out, again);
}

#[test]
fn data_message_tools_forge_what_an_honest_ratchet_accepts() {
    // A session from the library; its messages and keys go through the command line.
    let mut rng = StdRng::seed_from_u64(1);
    let (bob_lt, alice_lt) = (BOB.long_term(), ALICE.long_term());
    let (bp, ap) = (BOB.profile(), ALICE.profile());
    let mut s = forge::forge_dake(
        &mut rng,
        &Party {
            profile: &bp,
            long_term: Some(&bob_lt),
        },
        &Party {
            profile: &ap,
            long_term: Some(&alice_lt),
        },
        Side::Alice,
        &phi(),
        NOW,
    )
    .unwrap();
    let (a, b) = (InstanceTag(ALICE.tag), InstanceTag(BOB.tag));
    let text_of = |p: &[u8]| parse_plaintext(p).text().unwrap().to_owned();
    let send = |s: &mut forge::ForgedDake, rng: &mut StdRng, t: &str| {
        let ck = forge::sending_chain_key(&s.alice).unwrap();
        let pt = forge::plaintext(t, &[], Padding::Buckets).unwrap();
        let m = s.alice.encrypt(a, b, 0, pt.as_slice(), rng).unwrap();
        (ck, encode_otr(&m.message.encode()))
    };
    let decrypt = |s: &mut forge::ForgedDake, m: &str| {
        let d = forge::data_message(&decode_otr(m).unwrap()).unwrap();
        text_of(s.bob.decrypt(&d).unwrap().plaintext.as_slice())
    };

    // Read and Forge.
    let (ck, m1) = send(&mut s, &mut rng, "meet at the station");
    let out = ok(&[
        "read-and-forge",
        "--message",
        &m1,
        "--chain-key",
        &hex::encode(ck),
        "--new",
        "meet at the harbour",
    ]);
    assert_eq!(value(&out, "plaintext"), "meet at the station");
    assert_eq!(decrypt(&mut s, &outs(&out)[0].1), "meet at the harbour");

    // Show MAC Key, then Modify Data Message with it.
    let (ck, m2) = send(&mut s, &mut rng, "hi Bob");
    let keys = ok(&[
        "read-and-forge",
        "--message",
        &m2,
        "--chain-key",
        &hex::encode(ck),
    ]);
    let shown = ok(&["show-mac-key", "--message-key", value(&keys, "message-key")]);
    assert_eq!(value(&shown, "mac-key"), value(&keys, "mac-key"));
    let out = ok(&[
        "modify-data-message",
        "--message",
        &m2,
        "--offset",
        "0",
        "--old",
        "hi",
        "--new",
        "yo",
        "--mac-key",
        value(&shown, "mac-key"),
    ]);
    assert_eq!(decrypt(&mut s, &outs(&out)[0].1), "yo Bob");

    // ReMAC Message: a bit flipped in the ciphertext, then re-MACed.
    let (ck, m3) = send(&mut s, &mut rng, "abc");
    let mut d = forge::data_message(&decode_otr(&m3).unwrap()).unwrap();
    d.encrypted[0] ^= b'a' ^ b'x';
    let mac_key = hex::encode(forge::message_keys(&ck).mac_key.as_slice());
    let out = ok(&[
        "remac-message",
        "--message",
        &encode_otr(&d.encode()),
        "--mac-key",
        &mac_key,
    ]);
    assert_eq!(decrypt(&mut s, &outs(&out)[0].1), "xbc");

    // A wrong chain key is an error, not noise.
    let (_, m4) = send(&mut s, &mut rng, "x");
    let (success, _, err) = run(&[
        "read-and-forge",
        "--message",
        &m4,
        "--chain-key",
        &"00".repeat(64),
    ]);
    assert!(!success && err.starts_with("error: "), "{err}");
}

#[test]
fn impersonation_and_false_ensembles_fool_honest_code() {
    let mut rng = StdRng::seed_from_u64(2);
    // Impersonate Responder: Bob's honest Identity message, answered with his forging key.
    let (bob_lt, bp) = (BOB.long_term(), BOB.profile());
    let p = phi();
    let local = LocalParty::new(&bob_lt, &bp, &p).unwrap();
    let (waiting, identity) = start(&mut rng, &local, InstanceTag::UNKNOWN);
    let out = ok(&[
        "impersonate-responder",
        "--alice-profile",
        &ALICE.profile_b64(),
        "--forging-secret",
        &hex::encode(BOB.forging_sym),
        "--alice-jid",
        "alice@example.org",
        "--bob-jid",
        "bob@example.org",
        "--identity",
        &encode_otr(&identity.encode()),
    ]);
    let Message::AuthR(auth_r) = Message::decode(&decode_otr(&outs(&out)[0].1).unwrap()).unwrap()
    else {
        panic!("not an Auth-R: {out:?}");
    };
    let (done, _) = waiting
        .receive_auth_r(&mut rng, &local, &auth_r, NOW)
        .unwrap();
    assert_eq!(done.their_profile().profile(), &ALICE.profile());

    // False Prekey Ensemble: validates.
    let out = ok(&[
        "false-prekey-ensemble",
        "--secret",
        &hex::encode(BOB.sym),
        "--profile",
        &BOB.profile_b64(),
    ]);
    let parts: Vec<&str> = value(&out, "out-ensemble").split(' ').collect();
    let e = PrekeyEnsemble {
        client_profile: ClientProfile::decode(&BASE64.decode(parts[0]).unwrap()).unwrap(),
        prekey_profile: PrekeyProfile::decode(&BASE64.decode(parts[1]).unwrap()).unwrap(),
        prekey_message: PrekeyMessage::decode(&BASE64.decode(parts[2]).unwrap()).unwrap(),
    };
    ValidatedEnsemble::validate(&e, NOW).unwrap();

    // Impersonate Responder, non-interactive, on that ensemble; and Forge DAKE
    // non-interactive with Bob's key.
    let mut args = vec![
        "impersonate-responder",
        "--alice-profile",
        "",
        "--forging-secret",
        "",
        "--alice-jid",
        "alice@example.org",
        "--bob-jid",
        "bob@example.org",
        "--ensemble",
    ];
    let (ap, fs) = (ALICE.profile_b64(), hex::encode(BOB.forging_sym));
    args[2] = &ap;
    args[4] = &fs;
    args.extend(parts.iter().copied());
    let out = ok(&args);
    assert!(outs(&out)[0].1.starts_with("?OTR:AAQN"), "{out:?}");
    let mut args: Vec<String> = [
        "forge-dake",
        "--non-interactive",
        "--holder",
        "bob",
        "--secret",
    ]
    .map(str::to_owned)
    .to_vec();
    args.push(hex::encode(BOB.sym));
    args.extend(parties());
    let out = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(value(&out, "out-ensemble").split(' ').count() == 3);
    // Alice's ratchet has its sending chain; Bob's makes one when he first sends.
    assert_eq!(value(&out, "alice-sending-chain-key").len(), 128);

    // Impersonate Initiator: two steps with one seed; Alice's honest client accepts.
    let base = [
        "impersonate-initiator",
        "--bob-profile",
        &BOB.profile_b64(),
        "--forging-secret",
        &hex::encode(ALICE.forging_sym),
        "--alice-tag",
        "200",
        "--alice-jid",
        "alice@example.org",
        "--bob-jid",
        "bob@example.org",
    ]
    .map(str::to_owned);
    let step1 = ok(&base.iter().map(String::as_str).collect::<Vec<_>>());
    let Message::Identity(identity) =
        Message::decode(&decode_otr(&outs(&step1)[0].1).unwrap()).unwrap()
    else {
        panic!("{step1:?}");
    };
    let (alice_lt, ap) = (ALICE.long_term(), ALICE.profile());
    let alice_local = LocalParty::new(&alice_lt, &ap, &p).unwrap();
    let (waiting, auth_r) =
        otr4::hazmat::dake::interactive::receive_identity(&mut rng, &alice_local, &identity, NOW)
            .unwrap();
    let auth_r = encode_otr(&auth_r.encode());
    let mut step2: Vec<&str> = base.iter().map(String::as_str).collect();
    step2.extend(["--auth-r", &auth_r]);
    let out = ok(&step2);
    let Message::AuthI(auth_i) = Message::decode(&decode_otr(&outs(&out)[0].1).unwrap()).unwrap()
    else {
        panic!("{out:?}");
    };
    let done = waiting.receive_auth_i(&auth_i).unwrap();
    assert_eq!(done.their_profile().profile(), &BOB.profile());
    assert_eq!(hex::encode(done.ssid().0), value(&out, "ssid"));
}

#[test]
fn bad_inputs_are_errors_not_crashes() {
    for args in [
        vec!["parse", "?OTR:AAQD."],
        vec!["parse", "hello"],
        vec!["show-mac-key", "--message-key", "abcd"],
        vec![
            "remac-message",
            "--message",
            "?OTR:AAQ1.",
            "--mac-key",
            "00",
        ],
        vec![
            "false-prekey-ensemble",
            "--secret",
            &"00".repeat(57),
            "--profile",
            "!!",
        ],
        vec![
            "forge-entire-transcript",
            "--holder",
            "alice",
            "--secret",
            &"00".repeat(57),
            "--bob-profile",
            "AAQ=",
            "--alice-profile",
            "AAQ=",
            "--alice-jid",
            "a",
            "--bob-jid",
            "b",
        ],
    ] {
        let (success, out, err) = run(&args);
        assert!(!success, "{args:?}: {out:?}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
    // The wrong long-term key for the holder's profile.
    let mut args: Vec<String> = ["forge-dake", "--holder", "alice", "--secret"]
        .map(str::to_owned)
        .to_vec();
    args.push(hex::encode(BOB.sym));
    args.extend(parties());
    let (success, _, err) = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!success && err.contains("not the long-term key"), "{err}");
}
