//! Fuzzes the conversation layer's receive path (`conversation::Client::receive`, otrv4.md
//! §"The Protocol State Machine"): Bob's conversation with Alice is put in one of the five
//! protocol states (the first input byte picks it) and fed the rest of the input, split at
//! newlines, as messages from Alice; then time passes. Never panics, and whatever state
//! results exports and imports again. The corpus (`test-vectors corpus`) holds the real
//! messages of the same deterministic run, so the fuzzer starts from valid Auth-R, Auth-I,
//! Data Messages and fragments for each state.
#![no_main]

#[path = "common/scenario.rs"]
#[allow(dead_code)]
mod scenario;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use otr4::Client;
use scenario::{ALICE, KEY, NOW, Prepared, bob_in, no_prekeys, prepare, rng_for};

static PREPARED: OnceLock<Option<Prepared>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some(p) = PREPARED.get_or_init(prepare).as_ref() else {
        panic!("the scenario could not be prepared");
    };
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let which = which % 5;
    let mut rng = rng_for(which);
    let Some((mut bob, _)) = bob_in(which, p, &mut rng) else {
        panic!("Bob could not be put in state {which}");
    };
    let mut prekeys = no_prekeys(&bob);
    let text = String::from_utf8_lossy(rest);
    for line in text.split('\n') {
        let _ = bob.receive(ALICE, line, &mut prekeys, NOW, &mut rng);
    }
    let _ = bob.tick(&mut prekeys, NOW + 3 * 3600, &mut rng);
    let exported = bob.export(&prekeys, &KEY, &mut rng);
    assert!(
        Client::import(&KEY, &exported).is_ok(),
        "a reachable state does not import"
    );
});
