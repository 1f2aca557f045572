//! Fuzzes persistence import (`conversation::Account::import`, `Client::import`) with a
//! fixed key: never panics. The first input byte picks account (bit 0 clear) or client
//! (set), and whether the rest is an export as is (bit 1 clear; almost always rejected by
//! the tag) or the plaintext contents, sealed here with the documented envelope so the
//! parser behind the tag is reached (bit 1 set). What imports exports again, and that export
//! imports to a state with the same contents.
#![no_main]

#[path = "common/scenario.rs"]
#[allow(dead_code)]
mod scenario;

use chacha20::ChaCha20Rng;
use libfuzzer_sys::fuzz_target;
use otr4::{Account, Client};
use otr4::hazmat::conversation::{ACCOUNT_MAGIC, CLIENT_MAGIC};
use rand_core::SeedableRng;
use scenario::{KEY, open, seal};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let client = mode & 1 == 1;
    let bytes = match (mode & 2 == 2, client) {
        (false, _) => rest.to_vec(),
        (true, false) => seal(ACCOUNT_MAGIC, rest),
        (true, true) => seal(CLIENT_MAGIC, rest),
    };
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let contents = |e: &[u8]| open(e).map(|(_, c)| c);
    if client {
        if let Ok((c, s)) = Client::import(&KEY, &bytes) {
            let e1 = c.export(&s, &KEY, &mut rng);
            let (c2, s2) = Client::import(&KEY, &e1).expect("an exported client imports");
            let e2 = c2.export(&s2, &KEY, &mut rng);
            assert_eq!(contents(&e1), contents(&e2));
        }
    } else if let Ok((a, s)) = Account::import(&KEY, &bytes) {
        let e1 = a.export(&s, &KEY, &mut rng);
        let (a2, s2) = Account::import(&KEY, &e1).expect("an exported account imports");
        let e2 = a2.export(&s2, &KEY, &mut rng);
        assert_eq!(contents(&e1), contents(&e2));
    }
});
