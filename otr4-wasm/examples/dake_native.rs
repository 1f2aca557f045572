//! The native counterpart of `bench/dake_time.mjs` (not a test): for fresh pairs of engines
//! on the in-memory server, the time spent inside the engines from `send` of the first
//! message until the peer decrypted it. `cargo run --release -p otr4-wasm --features sim
//! --example dake_native [rounds]`.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use otr4_ffi::core::engine::EngineCore;
use otr4_ffi::core::env::{Clock, Rng};
use otr4_ffi::core::events::otr4_event_kind;
use otr4_ffi::core::sim::SimCore;

struct Dev {
    full: String,
    engine: EngineCore,
    texts: usize,
}

/// Routes until nothing moves; returns the time spent in `feed`.
fn settle(sim: &mut SimCore, devs: &mut [&mut Dev]) -> Duration {
    let mut spent = Duration::ZERO;
    loop {
        let mut moved = false;
        for d in devs.iter_mut() {
            while let Some(e) = d.engine.next_event() {
                if e.kind == otr4_event_kind::OTR4_EVENT_MESSAGE {
                    d.texts += 1;
                }
            }
            while let Some(s) = d.engine.next_stanza() {
                sim.submit(&d.full, &s).unwrap();
                moved = true;
            }
        }
        for d in devs.iter_mut() {
            while let Some(s) = sim.next_stanza(&d.full) {
                let t = Instant::now();
                let _ = d.engine.feed(&s);
                spent += t.elapsed();
                moved = true;
            }
        }
        if !moved {
            return spent;
        }
    }
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let mut sim = SimCore::new("example.org").unwrap();
    let mut times = Vec::new();
    for i in 0..rounds {
        let (a, b) = (format!("a{i}@example.org"), format!("b{i}@example.org"));
        sim.add_user(&a).unwrap();
        sim.add_user(&b).unwrap();
        let new = |bare: &str, label: &str| Dev {
            full: format!("{bare}/{label}"),
            engine: EngineCore::new(bare, label, Rng::Os, Clock::System).unwrap(),
            texts: 0,
        };
        let (mut alice, mut bob) = (new(&a, "x"), new(&b, "y"));
        for d in [&mut alice, &mut bob] {
            sim.connect(&d.full).unwrap();
            let full = d.full.clone();
            d.engine.online(&full).unwrap();
        }
        settle(&mut sim, &mut [&mut alice, &mut bob]);
        let t = Instant::now();
        alice.engine.send(&b, "hello").unwrap();
        let mut spent = t.elapsed();
        spent += settle(&mut sim, &mut [&mut alice, &mut bob]);
        assert_eq!(bob.texts, 1, "round {i}: not delivered");
        times.push(spent);
    }
    times.sort();
    println!(
        "native: DAKE + first message, {rounds} pairs: median {:.1} ms, min {:.1} ms, max {:.1} ms",
        times[rounds / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[rounds - 1].as_secs_f64() * 1e3
    );
}
