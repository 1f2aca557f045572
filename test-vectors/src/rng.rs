//! Deterministic randomness for vectors: record what a seeded RNG produced, replay it.
//!
//! Vectors store every random byte a computation drew (input `random`), so an independent
//! implementation can recompute the outputs without reproducing our RNG.

use rand_core::{CryptoRng, SeedableRng, TryCryptoRng, TryRng};
use std::convert::Infallible;

/// A ChaCha20 RNG seeded from a label that records every byte it hands out.
pub struct RecordingRng {
    inner: chacha20::ChaCha20Rng,
    /// Everything drawn so far, in order.
    pub drawn: Vec<u8>,
}

impl RecordingRng {
    /// Seeds ChaCha20 with `SHAKE-256(label)`-free simple padding: the label's bytes,
    /// zero-padded/truncated to 32. Labels are unique per vector.
    pub fn new(label: &str) -> Self {
        let mut seed = [0u8; 32];
        for (s, b) in seed.iter_mut().zip(label.bytes()) {
            *s = b;
        }
        RecordingRng {
            inner: chacha20::ChaCha20Rng::from_seed(seed),
            drawn: Vec::new(),
        }
    }

    /// Takes and clears the recorded bytes.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.drawn)
    }
}

impl TryRng for RecordingRng {
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
        rand_core::Rng::fill_bytes(&mut self.inner, dst);
        self.drawn.extend_from_slice(dst);
        Ok(())
    }
}
impl TryCryptoRng for RecordingRng {}

/// Replays recorded bytes; drawing past the end is an error the caller sees as a
/// mismatch (it yields zeros and sets `overrun`).
pub struct ReplayRng {
    bytes: Vec<u8>,
    pos: usize,
    /// Set when more bytes were drawn than recorded.
    pub overrun: bool,
}

impl ReplayRng {
    /// Replays `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        ReplayRng {
            bytes,
            pos: 0,
            overrun: false,
        }
    }

    /// Whether exactly the recorded bytes were consumed.
    pub fn exhausted_exactly(&self) -> bool {
        !self.overrun && self.pos == self.bytes.len()
    }
}

impl TryRng for ReplayRng {
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
        for d in dst.iter_mut() {
            match self.bytes.get(self.pos) {
                Some(b) => *d = *b,
                None => {
                    *d = 0;
                    self.overrun = true;
                }
            }
            self.pos += 1;
        }
        Ok(())
    }
}
impl TryCryptoRng for ReplayRng {}

// `CryptoRng` is implemented for every `TryCryptoRng<Error = Infallible>`.
#[allow(dead_code)]
fn _assert_crypto<R: CryptoRng>() {}
#[allow(dead_code)]
fn _check() {
    _assert_crypto::<RecordingRng>();
    _assert_crypto::<ReplayRng>();
}
