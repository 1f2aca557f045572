//! The store's migration from format version 1: directories written by the version-1 code
//! (`tests/fixtures/store-v1-*`, see the README there) load with every piece of state and
//! are rewritten as version 2 with nothing in clear.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use xmpp_glue::otr4::PersistError;
use xmpp_glue::store::{KeySource, STATE_FILE, Store, StoreError};
use xmpp_glue::{EngineConfig, Trust};
use zeroize::Zeroizing;

const PASSPHRASE: &[u8] = b"correct horse battery staple";
const BOB_FP: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabb";

/// A copy of fixture `name` in a temporary directory (the migration rewrites it).
fn copy(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dev");
    fs::create_dir(&dir).unwrap();
    for f in fs::read_dir(&src).unwrap() {
        let f = f.unwrap();
        fs::copy(f.path(), dir.join(f.file_name())).unwrap();
    }
    (tmp, dir)
}

fn key(name: &str) -> KeySource {
    if name.ends_with("passphrase") {
        KeySource::Passphrase(Zeroizing::new(PASSPHRASE.to_vec()))
    } else {
        KeySource::KeyFile
    }
}

#[test]
fn version_1_stores_load_and_are_rewritten_as_version_2() {
    for name in ["store-v1-keyfile", "store-v1-passphrase"] {
        let (_tmp, dir) = copy(name);
        let expected = fs::read_to_string(dir.join("expected-fingerprint")).unwrap();
        fs::remove_file(dir.join("expected-fingerprint")).unwrap();
        let v1 = fs::read(dir.join(STATE_FILE)).unwrap();
        assert!(v1.starts_with(b"XGLUE001"), "{name}: a version-1 fixture");
        let mut rng = StdRng::seed_from_u64(1);
        for round in 0..2 {
            let s = Store::open(&dir, key(name)).unwrap();
            let e = s
                .load_or_create(
                    EngineConfig::new("alice@example.org", "laptop"),
                    1_800_000_000,
                    &mut rng,
                )
                .unwrap();
            assert_eq!(e.fingerprint(), expected.trim(), "{name} round {round}");
            let st = e.state();
            let fp = st.trust.fingerprint("bob@example.org", 0x1234_5678);
            assert_eq!(fp, Some(BOB_FP), "{name}");
            let trust = st.trust.trust("bob@example.org", 0x1234_5678);
            assert_eq!(trust, Some(Trust::Tofu), "{name}");
            let bob = st.contacts.get("bob@example.org").unwrap();
            assert_eq!(bob.tags().len(), 1, "{name}");
            let server = st.servers.get("example.org").unwrap();
            assert_eq!(server.jid, "prekeys.example.org", "{name}");
            let v2 = fs::read(dir.join(STATE_FILE)).unwrap();
            assert!(
                v2.starts_with(b"OTR4SAVE"),
                "{name}: rewritten as version 2"
            );
            for needle in ["alice@example.org", "bob@example.org", "prekeys."] {
                assert!(
                    !v2.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{name}: {needle} in clear"
                );
            }
            assert!(!dir.join("salt").exists(), "{name}: the v1 salt is gone");
        }
    }
}

#[test]
fn a_wrong_passphrase_leaves_a_version_1_store_untouched() {
    let (_tmp, dir) = copy("store-v1-passphrase");
    let before = fs::read(dir.join(STATE_FILE)).unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    let s = Store::open(
        &dir,
        KeySource::Passphrase(Zeroizing::new(b"wrong".to_vec())),
    )
    .unwrap();
    let r = s.load_or_create(
        EngineConfig::new("alice@example.org", "laptop"),
        1_800_000_000,
        &mut rng,
    );
    assert!(
        matches!(r, Err(StoreError::Otr(PersistError::Authentication))),
        "{r:?}"
    );
    assert_eq!(fs::read(dir.join(STATE_FILE)).unwrap(), before);
    assert!(dir.join("salt").exists());
}
