//! The whole-process scenario of issue 13, timed per phase: 2 accounts (keys and signed
//! Client Profiles), an interactive DAKE, 3 Data Messages each way, through otr4's public
//! sans-IO API ([`otr4::Client`]) with a seeded RNG.
//!
//! Run with `cargo run --release -p otr4-benches --bin scenario [-- --runs N]`. Times are
//! the thread's CPU time (see [`otr4_benches::thread_cpu_time`]), medians over the runs;
//! `wall_total` is the wall-clock median for comparison. Each phase is its own non-inlined
//! function (`phase_accounts`, `phase_dake`, `phase_data`), so
//! `benches/callgrind.sh` can read their inclusive instruction counts. `--chain N` adds a
//! fourth phase after them (`phase_chain`, outside `total`): N messages in one chain, read
//! after they were all sent, as a client catching up does.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use otr4_benches::thread_cpu_time as cpu;

use chacha20::ChaCha20Rng;
use otr4::PrekeyStore;
use otr4::{Account, Client, Event, Policy};
use rand_core::SeedableRng;

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const NOW: i64 = 1_780_000_000;

/// Messages in flight: (from Alice, text).
type Wire = VecDeque<(bool, String)>;

/// What went wrong, for the exit message.
type Failure = &'static str;

/// Puts a party's `Send` events on the wire; counts the decrypted messages it read.
fn collect(from_alice: bool, events: Vec<Event>, wire: &mut Wire) -> usize {
    let mut read = 0;
    for e in events {
        match e {
            Event::Send { text, .. } => wire.push_back((from_alice, text)),
            Event::Received {
                encrypted: true, ..
            } => read += 1,
            _ => {}
        }
    }
    read
}

/// Delivers everything on the wire until it is quiet; returns the encrypted messages read.
fn pump(alice: &mut Client, bob: &mut Client, wire: &mut Wire, rng: &mut ChaCha20Rng) -> usize {
    let mut read = 0;
    // Nobody publishes Prekey Ensembles here: empty prekey stores.
    let mut alice_store = PrekeyStore::new(alice.account().instance_tag());
    let mut bob_store = PrekeyStore::new(bob.account().instance_tag());
    while let Some((from_alice, text)) = wire.pop_front() {
        let (to, store, from_jid) = if from_alice {
            (&mut *bob, &mut bob_store, ALICE)
        } else {
            (&mut *alice, &mut alice_store, BOB)
        };
        let events = to.receive(from_jid, &text, store, NOW, rng);
        read += collect(!from_alice, events, wire);
    }
    read
}

/// Phase 1: both accounts (long-term keys, forging keys, signed Client Profiles).
#[inline(never)]
fn phase_accounts(rng: &mut ChaCha20Rng) -> Result<(Client, Client), Failure> {
    let policy = Policy::standalone();
    let a = Account::generate(rng, policy, NOW).map_err(|_| "account")?;
    let b = Account::generate(rng, policy, NOW).map_err(|_| "account")?;
    Ok((Client::new(a, ALICE), Client::new(b, BOB)))
}

/// Phase 2: the interactive DAKE (Identity, Auth-R, Auth-I), Alice starting.
#[inline(never)]
fn phase_dake(alice: &mut Client, bob: &mut Client, rng: &mut ChaCha20Rng) -> Result<(), Failure> {
    let mut wire = Wire::new();
    let events = alice.start_dake(BOB, None, NOW, rng);
    collect(true, events, &mut wire);
    pump(alice, bob, &mut wire, rng);
    let secure = |c: &Client, jid: &str| {
        c.instances(jid)
            .iter()
            .any(|t| c.conversation(jid, *t).is_some_and(|c| c.is_encrypted()))
    };
    if secure(alice, BOB) && secure(bob, ALICE) {
        Ok(())
    } else {
        Err("DAKE did not complete")
    }
}

/// Phase 3: three Data Messages each way, alternating (every reply starts a new ratchet;
/// every third ratchet has a 3072-bit DH).
#[inline(never)]
fn phase_data(alice: &mut Client, bob: &mut Client, rng: &mut ChaCha20Rng) -> Result<(), Failure> {
    let mut wire = Wire::new();
    let mut read = 0;
    for i in 0..3 {
        let text = format!("message {i} from Alice");
        let events = alice.send(BOB, &text, &[], NOW, rng);
        collect(true, events, &mut wire);
        read += pump(alice, bob, &mut wire, rng);
        let text = format!("message {i} from Bob");
        let events = bob.send(ALICE, &text, &[], NOW, rng);
        collect(false, events, &mut wire);
        read += pump(alice, bob, &mut wire, rng);
    }
    if read == 6 {
        Ok(())
    } else {
        Err("not every Data Message was read")
    }
}

/// Optional phase 4 (`--chain N`, not part of the scenario): Alice sends N Data
/// Messages while Bob is away, then Bob reads them all: one chain, as when catching up.
#[inline(never)]
fn phase_chain(
    alice: &mut Client,
    bob: &mut Client,
    rng: &mut ChaCha20Rng,
    n: usize,
) -> Result<(), Failure> {
    let mut wire = Wire::new();
    for i in 0..n {
        let text = format!("queued message {i} from Alice");
        let events = alice.send(BOB, &text, &[], NOW, rng);
        collect(true, events, &mut wire);
    }
    if pump(alice, bob, &mut wire, rng) == n {
        Ok(())
    } else {
        Err("not every queued Data Message was read")
    }
}

/// One whole scenario (and `chain` messages in one chain after it); the CPU time of each
/// phase and the wall-clock time of the first three.
fn run(seed: u64, chain: usize) -> Result<([Duration; 4], Duration), Failure> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let wall = Instant::now();
    let t0 = cpu();
    let (mut alice, mut bob) = phase_accounts(&mut rng)?;
    let t1 = cpu();
    phase_dake(&mut alice, &mut bob, &mut rng)?;
    let t2 = cpu();
    phase_data(&mut alice, &mut bob, &mut rng)?;
    let t3 = cpu();
    let wall = wall.elapsed();
    if chain > 0 {
        phase_chain(&mut alice, &mut bob, &mut rng, chain)?;
    }
    let t4 = cpu();
    Ok(([t1 - t0, t2 - t1, t3 - t2, t4 - t3], wall))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut runs = 1usize;
    let mut chain = 0usize;
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().and_then(|n| n.parse().ok())) {
            ("--runs", Some(n)) if n > 0 => runs = n,
            ("--chain", Some(n)) => chain = n,
            _ => {
                eprintln!("usage: scenario [--runs N] [--chain N]");
                return ExitCode::from(2);
            }
        }
    }
    let mut phases: [Vec<Duration>; 4] = Default::default();
    let mut totals = Vec::new();
    let mut walls = Vec::new();
    for _ in 0..runs {
        // The same seed every run: the same keys, messages and work.
        match run(2026, chain) {
            Ok((t, wall)) => {
                for (v, d) in phases.iter_mut().zip(t) {
                    v.push(d);
                }
                totals.push(t.iter().take(3).sum());
                walls.push(wall);
            }
            Err(e) => {
                eprintln!("scenario failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let [a, d, m, c] = phases.map(median);
    println!("runs {runs} (medians, ms of CPU time)");
    println!("accounts {:.3}", ms(a));
    println!("dake {:.3}", ms(d));
    println!("data {:.3}", ms(m));
    println!("total {:.3}", ms(median(totals)));
    println!("wall_total {:.3}", ms(median(walls)));
    if chain > 0 {
        println!("chain_{chain} {:.3}", ms(c));
    }
    ExitCode::SUCCESS
}
