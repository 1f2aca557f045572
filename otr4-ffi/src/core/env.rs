//! What the sans-IO libraries take from their caller, supplied here: randomness from the
//! operating system (`getrandom`) and the time from the system clock or from the caller (the
//! wasm binding, whose host passes it; tests), or — feature `test-hooks` only — a seeded generator.
#![forbid(unsafe_code)]

use core::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use rand_core::{TryCryptoRng, TryRng};

/// The panic payload of a failed OS random generator; the entry point turns it into
/// `OTR4_RNG_FAILURE` (the operation is abandoned, nothing is encrypted with bad keys).
#[derive(Debug)]
pub struct RngFailure;

/// The generator of a handle.
#[derive(Debug)]
pub enum Rng {
    /// The operating system's (`getrandom`).
    Os,
    /// A seeded ChaCha20 stream (tests only).
    #[cfg(feature = "test-hooks")]
    Seeded(Box<chacha20::ChaCha20Rng>),
}

impl Rng {
    /// A deterministic generator from `seed` (tests only).
    #[cfg(feature = "test-hooks")]
    pub fn seeded(seed: u64) -> Rng {
        use rand_core::SeedableRng;
        Rng::Seeded(Box::new(chacha20::ChaCha20Rng::seed_from_u64(seed)))
    }
}

impl TryRng for Rng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        match self {
            Rng::Os => {
                if getrandom::fill(dst).is_err() {
                    // The callers' RNG interface is infallible: unwind to the entry point,
                    // which reports OTR4_RNG_FAILURE; the call's work is discarded.
                    #[allow(clippy::panic)]
                    std::panic::panic_any(RngFailure);
                }
            }
            #[cfg(feature = "test-hooks")]
            Rng::Seeded(r) => r.try_fill_bytes(dst)?,
        }
        Ok(())
    }
}

impl TryCryptoRng for Rng {}

/// Where a handle's time comes from.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The system clock (seconds since the Unix epoch).
    System,
    /// A time the caller sets (`otr4_test_*_set_now` of the tests; the wasm binding, whose
    /// host passes the time with each call: `SystemTime` does not exist on wasm32).
    Fixed(i64),
}

impl Clock {
    /// The current time, seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        match self {
            Clock::System => system_now(),
            Clock::Fixed(t) => *t,
        }
    }
}

/// The system clock, seconds since the Unix epoch (0 if it is before 1970).
pub fn system_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
