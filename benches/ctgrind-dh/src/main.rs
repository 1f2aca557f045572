//! Constant-time evidence for otr4's 3072-bit DH exponentiation (otrv4.md §"3072-bit
//! Diffie-Hellman Parameters"; RFC 3526 §4), by the ctgrind technique: the secret exponent
//! is marked *undefined* for valgrind memcheck, which then reports every conditional jump
//! and every memory address that depends on it. Run by `benches/ctgrind.sh`.
//!
//! Checked: `DhKeyPair::shared_secret` (windowed exponentiation `B^r`) and
//! `DhKeyPair::from_secret_bytes` (fixed-base comb `g3^r`). The only secret-derived
//! branches allowed are those on the *result*, which is public by the time it is used
//! (`from_secret_bytes` checks that `g3^r` lies in `[2, dh_p - 2]`); `ctgrind.supp` names
//! them. Outside valgrind the client requests do nothing and the program only runs.
//! `--control` runs a deliberately leaky lookup instead, which memcheck must report.
#![forbid(unsafe_code)]

use std::ffi::c_void;
use std::process::ExitCode;

use crabgrind::memcheck::{MemState, mark_mem};
use otr4::hazmat::crypto::dh::{DH_SECRET_LEN, DhKeyPair};

/// Marks `bytes` as holding secret (undefined) or public (defined) data.
fn mark(bytes: &[u8], state: MemState) {
    // A pointer for the client request only; memcheck changes its shadow state, never the
    // bytes.
    let ptr = bytes.as_ptr().cast::<c_void>().cast_mut();
    let _ = mark_mem(ptr, bytes.len(), state);
}

/// Deterministic, varied secrets (no RNG: every run checks the same inputs).
fn secret(i: u8) -> [u8; DH_SECRET_LEN] {
    let mut s = [0u8; DH_SECRET_LEN];
    for (j, b) in (0u8..).zip(s.iter_mut()) {
        *b = j.wrapping_mul(37).wrapping_add(i.wrapping_mul(101)) ^ 0xa5;
    }
    s
}

/// The negative control (`--control`): a lookup indexed by a secret byte and a branch on
/// it, which memcheck must report, or the check proves nothing.
fn control() -> ExitCode {
    let r = secret(7);
    mark(&r, MemState::Undefined);
    let table: Vec<u8> = (0..=255).collect();
    let looked_up = r.first().and_then(|&b| table.get(usize::from(b))).copied();
    if looked_up == Some(0) {
        println!("control: zero");
    }
    println!("control ran");
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--control") {
        return control();
    }
    let Ok(peer) = DhKeyPair::from_secret_bytes(secret(200)) else {
        return ExitCode::FAILURE;
    };
    for i in 0..3 {
        // B^r with r secret.
        let Ok(kp) = DhKeyPair::from_secret_bytes(secret(i)) else {
            return ExitCode::FAILURE;
        };
        mark(kp.secret_bytes(), MemState::Undefined);
        let k = kp.shared_secret(peer.public());
        mark(k.to_fixed_be(), MemState::Defined);
        mark(kp.secret_bytes(), MemState::Defined);

        // g3^r with r secret.
        let r = secret(i);
        mark(&r, MemState::Undefined);
        let Ok(kp2) = DhKeyPair::from_secret_bytes(r) else {
            return ExitCode::FAILURE;
        };
        mark(kp2.secret_bytes(), MemState::Defined);
    }
    println!("ctgrind: 3 shared secrets and 3 key generations ran");
    ExitCode::SUCCESS
}
