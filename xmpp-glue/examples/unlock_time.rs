//! How long one unlock of a passphrase store takes (one Argon2id run at the costs of
//! `xmpp_glue::sealed`, m = 19 MiB, t = 2, p = 1), for docs/operators.md: the median of 9.
//!
//! `cargo run --release -p xmpp-glue --example unlock_time` (in a dev build the Argon2
//! dependency is optimised too, so the numbers match).

use std::time::Instant;

use xmpp_glue::sealed::{Level, SealKey, Secret};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = rand::rng();
    let secret = Secret::Passphrase(b"correct horse battery staple");
    let key = SealKey::new(Level::Engine, &secret, &mut rng)?;
    let blob = key.seal(b"state", &mut rng)?;
    let mut times = Vec::new();
    for _ in 0..9 {
        let t = Instant::now();
        let k = SealKey::unlock(Level::Engine, &secret, &blob)?;
        times.push(t.elapsed());
        assert_eq!(&k.open(&blob)?[..], b"state");
    }
    times.sort();
    let ms = |i: usize| times.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3);
    println!(
        "unlock (Argon2id m=19 MiB t=2 p=1): median {:.1} ms, min {:.1} ms, max {:.1} ms",
        ms(4),
        ms(0),
        ms(8)
    );
    Ok(())
}
