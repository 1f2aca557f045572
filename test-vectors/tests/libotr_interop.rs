//! otr4's OTRv3 against libotr 4.1 (Debian `libotr5-dev`): the C harness
//! `interop/libotr/harness.c`, written here against libotr's public API, is compiled with
//! gcc and driven over pipes. The AKE runs in both roles, then 100 messages go each way
//! with key rotation, every plaintext asserted; fragments both ways; tampering both ways;
//! and libotr's own key and fingerprint files import (key migration).
//!
//! Needs gcc, pkg-config and libotr5-dev, so `#[ignore]`d locally; `.ci/run` runs it with
//! `--ignored`, where a missing compiler or library fails it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod v3_peer;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use chacha20::ChaCha20Rng;
use otr4::hazmat::v3::migrate::{KnownFingerprint, Trust, read_fingerprints, read_private_keys};
use otr4::hazmat::v3::tlv::V3Plaintext;
use otr4::hazmat::wire::encoded::encode_otr;
use rand_core::SeedableRng;
use v3_peer::{
    Peer, ake_otr4_initiates, ake_peer_initiates, compat_conversation, converse, human,
    long_messages, otr4_peer_binary_talks_v3, our_key, receive, smp_both_ways, tampering,
};

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
/// A libotr peer in its own directory, with the shared key.
fn libotr(name: &str, fragment_at: Option<usize>) -> Peer {
    let (_, keydir) = harness();
    let dir = keydir.parent().unwrap().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(keydir.join("otr.private_key"), dir.join("otr.private_key")).unwrap();
    Peer::spawn(Command::new(&harness().0), dir, fragment_at)
}

#[test]
#[ignore = "needs gcc, pkg-config and libotr5-dev (run by .ci/run with --ignored)"]
fn libotr_initiates_ake_then_100_messages_each_way() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut peer = libotr("libotr-initiates", None);
    let mut session = ake_peer_initiates(&mut peer, our_key(), &mut rng);
    converse(&mut peer, &mut session, &mut rng);
}

#[test]
#[ignore = "needs gcc, pkg-config and libotr5-dev (run by .ci/run with --ignored)"]
fn otr4_initiates_ake_then_100_messages_each_way() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut peer = libotr("otr4-initiates", None);
    let mut session = ake_otr4_initiates(&mut peer, our_key(), &mut rng);
    converse(&mut peer, &mut session, &mut rng);
}

#[test]
#[ignore = "needs gcc, pkg-config and libotr5-dev (run by .ci/run with --ignored)"]
fn libotr_rejects_tampered_data_and_otr4_rejects_tampered_libotr_data() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut peer = libotr("tampering", None);
    let mut session = ake_otr4_initiates(&mut peer, our_key(), &mut rng);
    tampering(&mut peer, &mut session, &mut rng);
}

/// Both sides fragment at 150 characters: the AKE and long messages cross in fragments.
#[test]
#[ignore = "needs gcc, pkg-config and libotr5-dev (run by .ci/run with --ignored)"]
fn fragments_both_ways_at_a_small_size_limit() {
    for (i, libotr_starts) in [true, false].into_iter().enumerate() {
        let mut rng = ChaCha20Rng::seed_from_u64(5 + i as u64);
        let mut peer = libotr(&format!("fragments-{i}"), Some(150));
        let mut session = if libotr_starts {
            ake_peer_initiates(&mut peer, our_key(), &mut rng)
        } else {
            ake_otr4_initiates(&mut peer, our_key(), &mut rng)
        };
        long_messages(&mut peer, &mut session, &mut rng);
    }
}

/// Issue 16 item 3: a libotr user's OTRv3 identity and verified contacts move to otr4. The
/// files are the ones libotr itself writes (`otrl_privkey_generate`,
/// `otrl_privkey_write_fingerprints`), as Pidgin keeps them.
#[test]
#[ignore = "needs gcc, pkg-config and libotr5-dev (run by .ci/run with --ignored)"]
fn libotr_key_and_fingerprint_files_import_and_keep_the_identity() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let (_, keydir) = harness();
    let keys = read_private_keys(&std::fs::read(keydir.join("otr.private_key")).unwrap())
        .unwrap_or_else(|e| panic!("libotr's key file did not import: {e}"));
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0].account.as_str(), keys[0].protocol.as_str()),
        ("libotr@example.org", "xmpp")
    );
    let imported = &keys[0].key;
    // The fingerprint is the one libotr shows for that key.
    let mut original = libotr("import-original", None);
    assert_eq!(
        human(&imported.public().fingerprint()),
        original.fingerprint()
    );

    // otr4, holding the imported key, talks to a libotr peer with a key of its own: the
    // peer sees the imported identity (`finish` checks its SECURE line) …
    let dir = keydir.parent().unwrap().join("import-peer");
    std::fs::create_dir_all(&dir).unwrap();
    let mut peer = Peer::spawn(Command::new(&harness().0), dir, None);
    assert_ne!(peer.fingerprint(), original.fingerprint());
    let mut session = ake_otr4_initiates(&mut peer, imported, &mut rng);
    let out = peer.outgoing("send hello imported key");
    assert_eq!(
        receive(&mut session, &out[0], &mut rng),
        "hello imported key"
    );
    let pt = V3Plaintext::encode(b"and back", &[]).unwrap();
    let wire = encode_otr(&session.encrypt(&pt, 0).unwrap());
    assert_eq!(peer.recv(&wire, peer.their_tag), ["MSG and back"]);

    // … and verifies it; libotr writes its fingerprint store, which imports as verified.
    assert_eq!(peer.cmd("trust verified"), Vec::<String>::new());
    let store = std::fs::read(peer.dir.join("otr.fingerprints")).unwrap();
    assert_eq!(
        read_fingerprints(&store).unwrap(),
        [KnownFingerprint {
            username: "otr4@example.org".into(),
            account: "libotr@example.org".into(),
            protocol: "xmpp".into(),
            fingerprint: imported.fingerprint(),
            trust: Trust::Verified {
                how: "verified".into()
            },
        }]
    );
}

/// SMP over the 1536-bit group both ways, with equal and with different secrets.
#[test]
#[ignore = "needs gcc, pkg-config and libotr5-dev (run by .ci/run with --ignored)"]
fn smp_with_libotr_both_ways() {
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let mut peer = libotr("smp", None);
    let mut session = ake_otr4_initiates(&mut peer, our_key(), &mut rng);
    smp_both_ways(&mut peer, &mut session, our_key(), &mut rng);
}

/// Issue 16 item 2: `otr4::Client` in the OTRv3-compatible mode talks to libotr. The client's
/// query offers versions 3 and 4 and libotr answers with v3; libotr's query is answered with
/// a v3 D-H Commit; then messages, long messages, SMP both ways and the end of the session,
/// all through the client's API. Also with both sides fragmenting at 150 characters.
#[test]
#[ignore = "needs gcc, pkg-config and libotr5-dev (run by .ci/run with --ignored)"]
fn compatible_mode_client_talks_v3_with_libotr() {
    for (i, (client_queries, fragment_at)) in [(true, None), (false, None), (true, Some(150))]
        .into_iter()
        .enumerate()
    {
        let mut peer = libotr(&format!("compat-{i}"), fragment_at);
        compat_conversation(&mut peer, client_queries, 0);
    }
}

/// Issue 16 item 4: `otr4-peer --mode compatible` speaks OTRv3 with libotr over the same
/// line protocol auditors use for OTRv4.
#[test]
#[ignore = "needs gcc, pkg-config and libotr5-dev (run by .ci/run with --ignored)"]
fn otr4_peer_binary_in_compatible_mode_talks_v3_with_libotr() {
    let mut peer = libotr("otr4-peer-binary", None);
    otr4_peer_binary_talks_v3(&mut peer, env!("CARGO_BIN_EXE_otr4-peer"));
}
