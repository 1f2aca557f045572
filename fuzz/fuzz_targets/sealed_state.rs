//! Fuzzes the decoders of saved state at rest (`xmpp_glue::sealed`: the save-blob header,
//! the AEAD envelope, the engine plaintext's fields; the store's `device.otr4` and the C/Python
//! save blobs) with a fixed raw key: never panics. The first input byte picks the level (bit
//! 0) and whether the rest is a blob as is (bit 1 clear; the header parser, then almost always
//! refused by the check value or the tag) or a plaintext sealed here with the fixed key (bit
//! 1 set), so the parser behind the tag is reached: the fields, the glue state JSON and the
//! engine import. A sealed plaintext opens to the same bytes.
#![no_main]

use chacha20::ChaCha20Rng;
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;
use xmpp_glue::sealed::{self, Level, SealKey, Secret};
use xmpp_glue::{Engine, EngineConfig, GlueState};

const KEY: [u8; sealed::KEY_LEN] = [7; sealed::KEY_LEN];

/// Offsets of the three Argon2id costs in the header (after magic, version, level, secret).
const COSTS: core::ops::Range<usize> = 11..23;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let level = if mode & 1 == 0 {
        Level::Engine
    } else {
        Level::Session
    };
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let secret = Secret::Key(&KEY);
    let Ok(key) = SealKey::new(level, &secret, &mut rng) else {
        panic!("a raw key derives");
    };
    let blob = if mode & 2 == 0 {
        // The header as the unlock reads it, when its costs stay cheap (a forged header may
        // ask for up to 256 MiB, which the decoder allows and the fuzzer cannot afford).
        let cheap = rest.get(COSTS).is_some_and(|c| {
            let be = |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
            be(0) <= 64 && be(4) <= 2 && be(8) <= 2
        });
        if cheap {
            let _ = SealKey::unlock(level, &secret, rest);
        }
        rest.to_vec()
    } else {
        let Ok(b) = key.seal(rest, &mut rng) else {
            panic!("sealing succeeds");
        };
        b
    };
    let Ok(plain) = key.open(&blob) else {
        assert!(mode & 2 == 0, "a sealed plaintext opens");
        return;
    };
    if mode & 2 == 2 {
        assert_eq!(&plain[..], rest, "opens to what was sealed");
    }
    if level == Level::Engine {
        if let Ok(p) = sealed::engine_parts(&plain) {
            let _ = serde_json::from_slice::<GlueState>(p.state);
            let config = EngineConfig::new(p.jid, p.label);
            let _ = Engine::import(config, key.inner_key(), p.client, p.state, &mut rng);
        }
    }
});
