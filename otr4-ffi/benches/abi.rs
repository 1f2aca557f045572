//! Issue 12 item 8 (C half): encrypt + decrypt of a 1 KiB message at the session level,
//! through the C ABI (`otr4_session_send` → `OTR4_EVENT_SEND` → `otr4_session_receive` →
//! `OTR4_EVENT_MESSAGE`, each event copied out and freed) against the same calls on
//! `otr4::Client` directly. Both use OS randomness and the system clock.
//! `cargo bench -p otr4-ffi --bench abi`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use otr4::PrekeyStore;
use otr4::{Account, Client, Event, Policy};
use otr4_ffi::capi::*;
use otr4_ffi::core::env::Rng;
use otr4_ffi::core::events::otr4_event_kind;
use otr4_ffi::core::status::otr4_status;

const A: &str = "alice@example.org";
const B: &str = "bob@example.org";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Drains `from`'s events: hands SEND to `to`; returns the MESSAGE texts' total length.
fn pump(from: otr4_session, from_jid: &str, to: otr4_session) -> (bool, usize) {
    let (mut moved, mut read) = (false, 0);
    loop {
        let mut e = otr4_event {
            kind: 0,
            peer: otr4_buf {
                ptr: std::ptr::null_mut(),
                len: 0,
            },
            device: 0,
            text: otr4_buf {
                ptr: std::ptr::null_mut(),
                len: 0,
            },
            trust: 0,
            listed: false,
            detail: 0,
            sent_to: otr4_buf {
                ptr: std::ptr::null_mut(),
                len: 0,
            },
        };
        // SAFETY: a valid out-pointer.
        if unsafe { otr4_session_next_event(from, &mut e) } != otr4_status::OTR4_OK {
            return (moved, read);
        }
        if e.kind == otr4_event_kind::OTR4_EVENT_SEND as u32 {
            moved = true;
            // SAFETY: library-made buffer, valid pointers.
            let st = unsafe {
                otr4_session_receive(
                    to,
                    from_jid.as_ptr(),
                    from_jid.len(),
                    e.text.ptr,
                    e.text.len,
                )
            };
            assert_eq!(st, otr4_status::OTR4_OK);
        } else if e.kind == otr4_event_kind::OTR4_EVENT_MESSAGE as u32 {
            read += e.text.len;
        }
        // SAFETY: a library event.
        unsafe { otr4_event_free(&mut e) };
    }
}

fn settle(a: otr4_session, b: otr4_session) -> usize {
    let mut read = 0;
    loop {
        let (m1, r1) = pump(a, A, b);
        let (m2, r2) = pump(b, B, a);
        read += r1 + r2;
        if !m1 && !m2 {
            return read;
        }
    }
}

fn c_abi(c: &mut Criterion) {
    let (mut a, mut b) = (otr4_session { id: 0 }, otr4_session { id: 0 });
    // SAFETY: valid pointers.
    unsafe {
        assert_eq!(
            otr4_session_new(A.as_ptr(), A.len(), &mut a),
            otr4_status::OTR4_OK
        );
        assert_eq!(
            otr4_session_new(B.as_ptr(), B.len(), &mut b),
            otr4_status::OTR4_OK
        );
        otr4_session_start(a, B.as_ptr(), B.len());
    }
    settle(a, b);
    let msg = "x".repeat(1024);
    c.bench_function("1 KiB encrypt+decrypt, C ABI", |bench| {
        bench.iter(|| {
            // SAFETY: valid pointers.
            unsafe { otr4_session_send(a, B.as_ptr(), B.len(), 0, msg.as_ptr(), msg.len()) };
            assert_eq!(black_box(settle(a, b)), 1024);
        })
    });
    otr4_session_free(a);
    otr4_session_free(b);
}

fn rust_api(c: &mut Criterion) {
    let mut rng = Rng::Os;
    let t = now();
    let acct = |rng: &mut Rng| Account::generate(rng, Policy::default(), t).unwrap();
    let mut alice = Client::new(acct(&mut rng), A);
    let mut bob = Client::new(acct(&mut rng), B);
    let mut sa = PrekeyStore::new(alice.account().instance_tag());
    let mut sb = PrekeyStore::new(bob.account().instance_tag());
    // Delivers every Send until quiet; returns the bytes of text read.
    let mut run = |alice: &mut Client, bob: &mut Client, first: Vec<Event>, rng: &mut Rng| {
        let mut wire: Vec<(bool, String)> = Vec::new();
        let mut read = 0;
        let mut sort = |evs: Vec<Event>, from_a: bool, wire: &mut Vec<(bool, String)>| {
            for e in evs {
                match e {
                    Event::Send { text, .. } => wire.push((from_a, text)),
                    Event::Received { text, .. } => read += text.len(),
                    _ => {}
                }
            }
        };
        sort(first, true, &mut wire);
        while !wire.is_empty() {
            let (to_b, text) = wire.remove(0);
            if to_b {
                let ev = bob.receive(A, &text, &mut sb, now(), rng);
                sort(ev, false, &mut wire);
            } else {
                let ev = alice.receive(B, &text, &mut sa, now(), rng);
                sort(ev, true, &mut wire);
            }
        }
        read
    };
    let q = alice.start(B, t, &mut rng);
    run(&mut alice, &mut bob, q, &mut rng);
    let msg = "x".repeat(1024);
    c.bench_function("1 KiB encrypt+decrypt, Rust API", |bench| {
        bench.iter(|| {
            let sent = alice.send(B, &msg, &[], now(), &mut rng);
            assert_eq!(black_box(run(&mut alice, &mut bob, sent, &mut rng)), 1024);
        })
    });
}

criterion_group!(benches, rust_api, c_abi);
criterion_main!(benches);
