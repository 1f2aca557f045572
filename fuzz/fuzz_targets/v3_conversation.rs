//! Fuzzes the OTRv3 half of the compatible mode through `Client::receive` (otrv4.md
//! §"OTRv3-compatible mode", §"OTRv3 Protocol State Machine"): Bob (versions 3 and 4, an
//! OTRv3 key) is put by the first input byte in plaintext, `AUTHSTATE_AWAITING_DHKEY` (he
//! answered a v3 query), `AUTHSTATE_AWAITING_SIG` (he also got Alice's D-H Key) or an
//! encrypted v3 session with Alice (who allows only version 3), then fed the rest of the
//! input, split at newlines, as messages from Alice; then time passes. Never panics, and Bob
//! still exports and imports.
#![no_main]

use chacha20::ChaCha20Rng;
use libfuzzer_sys::fuzz_target;
use otr4::hazmat::wire::query::Versions;
use otr4::otrv3::{DsaPrivateKey, read_private_keys};
use otr4::{Account, Client, Event, PERSIST_KEY_LEN, Policy, PrekeyStore};
use rand_core::SeedableRng;

const NOW: i64 = 1_780_000_000;
const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const KEY: [u8; PERSIST_KEY_LEN] = [0x33; PERSIST_KEY_LEN];

/// The two DSA keys libotr wrote for the key-migration test.
const KEYS: &[u8] = include_bytes!("../../otr4/src/v3/testdata/two.private_key");

fn key(i: usize) -> Option<DsaPrivateKey> {
    read_private_keys(KEYS).ok()?.into_iter().nth(i).map(|a| a.key)
}

fn client(jid: &str, versions: Versions, key_index: usize, rng: &mut ChaCha20Rng) -> Option<Client> {
    let policy = Policy {
        versions,
        ..Policy::default()
    };
    let mut account = Account::generate(rng, policy, NOW).ok()?;
    account.set_v3_key(key(key_index)?);
    Some(Client::new(account, jid))
}

fn sends(events: Vec<Event>) -> Vec<String> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Send { text, .. } => Some(text),
            _ => None,
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let mut rng = ChaCha20Rng::seed_from_u64(u64::from(which % 4));
    let (Some(mut bob), Some(mut alice)) = (
        client(BOB, Versions::V3_AND_V4, 0, &mut rng),
        client(ALICE, Versions::V3, 1, &mut rng),
    ) else {
        panic!("the clients could not be made");
    };
    let mut bob_keys = PrekeyStore::new(bob.account().instance_tag());
    let mut alice_keys = PrekeyStore::new(alice.account().instance_tag());
    // Walk the v3 AKE as far as the state asks (Alice's query, Bob's D-H Commit, …).
    let mut to_bob = sends(alice.start(BOB, NOW, &mut rng));
    for _ in 0..(which % 4) {
        let mut to_alice = Vec::new();
        for m in to_bob.drain(..) {
            to_alice.extend(sends(bob.receive(ALICE, &m, &mut bob_keys, NOW, &mut rng)));
        }
        for m in to_alice {
            to_bob.extend(sends(alice.receive(BOB, &m, &mut alice_keys, NOW, &mut rng)));
        }
    }
    let text = String::from_utf8_lossy(rest);
    for line in text.split('\n') {
        let _ = bob.receive(ALICE, line, &mut bob_keys, NOW, &mut rng);
    }
    let _ = bob.tick(&mut bob_keys, NOW + 3 * 3600, &mut rng);
    let exported = bob.export(&bob_keys, &KEY, &mut rng);
    assert!(Client::import(&KEY, &exported).is_ok(), "Bob does not import");
});
