//! The C ABI called from Rust: null, stale and foreign handles, invalid UTF-8, buffers and
//! events freed (twice), panics caught. The plumbing tests also run under Miri; the ones
//! that generate keys are `#[cfg_attr(miri, ignore)]` (crypto under Miri takes hours).

use std::ptr::{null, null_mut};

use super::*;
use crate::core::events::{Event, otr4_event_kind};
use crate::core::{self as c, Object, handles::Kind};

use otr4_status::*;

fn last_error() -> String {
    let mut b = otr4_buf::EMPTY;
    // SAFETY: a valid out-pointer.
    assert_eq!(unsafe { otr4_last_error(&mut b) }, OTR4_OK);
    // SAFETY: filled by the library.
    let s =
        String::from_utf8(unsafe { std::slice::from_raw_parts(b.ptr, b.len) }.to_vec()).unwrap();
    // SAFETY: filled by the library.
    unsafe { otr4_buf_free(&mut b) };
    s
}

#[test]
fn null_pointers_are_errors() {
    let mut e = otr4_engine { id: 0 };
    // SAFETY: NULL is allowed by the contract (and reported).
    unsafe {
        assert_eq!(
            otr4_engine_new(null(), 3, b"x".as_ptr(), 1, &mut e),
            OTR4_NULL_POINTER
        );
        assert!(last_error().contains("jid is NULL"));
        assert_eq!(
            otr4_engine_new(b"a@b".as_ptr(), 3, b"x".as_ptr(), 1, null_mut()),
            OTR4_NULL_POINTER
        );
        assert_eq!(otr4_engine_feed(e, null(), 10), OTR4_NULL_POINTER);
        assert_eq!(otr4_engine_next_event(e, null_mut()), OTR4_NULL_POINTER);
        assert_eq!(
            otr4_session_load_with_key(b"x".as_ptr(), 1, null(), &mut otr4_session { id: 0 }),
            OTR4_NULL_POINTER
        );
        assert_eq!(otr4_last_error(null_mut()), OTR4_NULL_POINTER);
        otr4_buf_free(null_mut());
        otr4_event_free(null_mut());
    }
    assert_eq!(e.id, 0, "nothing written on failure");
}

#[test]
fn invalid_utf8_is_an_error() {
    let bad = [b'a', 0xff, b'b'];
    // SAFETY: valid pointers and lengths.
    unsafe {
        assert_eq!(
            otr4_engine_new(
                bad.as_ptr(),
                3,
                b"x".as_ptr(),
                1,
                &mut otr4_engine { id: 0 }
            ),
            OTR4_INVALID_UTF8
        );
        assert!(last_error().contains("jid is not UTF-8 (byte 1)"));
        assert_eq!(
            otr4_engine_feed(otr4_engine { id: 1 }, bad.as_ptr(), 3),
            OTR4_INVALID_UTF8
        );
        assert_eq!(
            otr4_session_receive(otr4_session { id: 1 }, b"a".as_ptr(), 1, bad.as_ptr(), 3),
            OTR4_INVALID_UTF8
        );
    }
}

#[test]
fn null_stale_and_foreign_handles_are_errors() {
    let id = c::insert(Object::Test(7)).unwrap();
    for h in [0, 1, u64::MAX, id] {
        // `id` is a live handle of another type: an engine call must refuse it.
        assert_eq!(otr4_engine_tick(otr4_engine { id: h }), OTR4_INVALID_HANDLE);
        assert_eq!(
            otr4_session_free(otr4_session { id: h }),
            OTR4_INVALID_HANDLE
        );
    }
    assert!(last_error().contains("invalid Session handle"));
    c::remove(id, Kind::Test).unwrap();
    assert_eq!(
        c::remove(id, Kind::Test).unwrap_err().status,
        OTR4_INVALID_HANDLE
    );
    let mut out = 0u32;
    // SAFETY: valid out-pointer.
    let st = unsafe { otr4_engine_tag(otr4_engine { id }, &mut out) };
    assert_eq!(st, OTR4_INVALID_HANDLE);
}

#[test]
fn buffers_and_events_free_once_and_twice() {
    let mut b = otr4_buf::from_string("stanza".to_owned());
    assert_eq!(b.len, 6);
    // SAFETY: a library buffer of 7 bytes (NUL included).
    assert_eq!(unsafe { *b.ptr.add(6) }, 0);
    // SAFETY: a library buffer; the second free sees NULL.
    unsafe {
        otr4_buf_free(&mut b);
        assert!(b.ptr.is_null());
        otr4_buf_free(&mut b);
    }
    let mut empty = otr4_buf::from_vec(Vec::new());
    assert!(!empty.ptr.is_null());
    // SAFETY: a library buffer.
    unsafe { otr4_buf_free(&mut empty) };

    let mut e = otr4_event::from_event(Event {
        text: "hello".into(),
        peer: "bob@example.org".into(),
        device: 0x1234,
        ..Event::new(otr4_event_kind::OTR4_EVENT_MESSAGE)
    });
    assert_eq!(e.kind, otr4_event_kind::OTR4_EVENT_MESSAGE as u32);
    // SAFETY: a library event; zeroed events and double frees are harmless.
    unsafe {
        otr4_event_free(&mut e);
        otr4_event_free(&mut e);
        let mut z = otr4_event::EMPTY;
        otr4_event_free(&mut z);
    }
    assert!(e.text.ptr.is_null() && e.peer.ptr.is_null() && e.sent_to.ptr.is_null());
}

#[test]
fn panics_are_caught() {
    let s = entry(|| -> crate::core::status::Result<otr4_status> { panic!("boom") });
    assert_eq!(s, OTR4_PANIC);
    assert!(last_error().contains("boom"));
    let s =
        entry(|| -> crate::core::status::Result<otr4_status> { std::panic::panic_any(RngFailure) });
    assert_eq!(s, OTR4_RNG_FAILURE);
    // A panic while a handle is locked leaves it poisoned: later calls are OTR4_PANIC.
    let id = c::insert(Object::Test(1)).unwrap();
    let s = entry(|| {
        c::with(id, Kind::Test, |_| -> crate::core::status::Result<()> {
            panic!("inside")
        })?;
        Ok(OTR4_OK)
    });
    assert_eq!(s, OTR4_PANIC);
    assert_eq!(
        c::with(id, Kind::Test, |_| Ok(())).unwrap_err().status,
        OTR4_PANIC
    );
    c::remove(id, Kind::Test).unwrap();
}

#[test]
fn status_strings_and_version() {
    assert_eq!(otr4_abi_version(), OTR4_ABI_VERSION);
    for (v, want) in [
        (0, "success"),
        (3, "invalid handle"),
        (99, "unknown status"),
        (-1, "unknown status"),
    ] {
        // SAFETY: a static NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(otr4_status_str(v)) };
        assert!(s.to_str().unwrap().starts_with(want), "{v}");
    }
}

// ---- With keys (not under Miri). -------------------------------------------------------

fn drain(s: otr4_session) -> Vec<(u32, String, u32, String)> {
    let mut out = Vec::new();
    loop {
        let mut e = otr4_event::EMPTY;
        // SAFETY: valid out-pointer.
        let st = unsafe { otr4_session_next_event(s, &mut e) };
        if st == OTR4_NONE {
            return out;
        }
        assert_eq!(st, OTR4_OK);
        // SAFETY: library-made buffers.
        let (peer, text) = unsafe {
            (
                String::from_utf8_lossy(std::slice::from_raw_parts(e.peer.ptr, e.peer.len))
                    .into_owned(),
                String::from_utf8_lossy(std::slice::from_raw_parts(e.text.ptr, e.text.len))
                    .into_owned(),
            )
        };
        out.push((e.kind, peer, e.device, text));
        // SAFETY: a library event.
        unsafe { otr4_event_free(&mut e) };
    }
}

fn session(jid: &str) -> otr4_session {
    let mut s = otr4_session { id: 0 };
    // SAFETY: valid pointers.
    let st = unsafe { otr4_session_new(jid.as_ptr(), jid.len(), &mut s) };
    assert_eq!(st, OTR4_OK);
    s
}

/// Delivers SEND events between two sessions until quiet; returns the other events.
fn pump(a: (otr4_session, &str), b: (otr4_session, &str)) -> Vec<(bool, u32, String)> {
    let mut seen = Vec::new();
    loop {
        let mut moved = false;
        for (from, to) in [(a, b), (b, a)] {
            for (kind, peer, _, text) in drain(from.0) {
                if kind == otr4_event_kind::OTR4_EVENT_SEND as u32 {
                    assert_eq!(peer, to.1);
                    moved = true;
                    // SAFETY: valid pointers.
                    let st = unsafe {
                        otr4_session_receive(
                            to.0,
                            from.1.as_ptr(),
                            from.1.len(),
                            text.as_ptr(),
                            text.len(),
                        )
                    };
                    assert_eq!(st, OTR4_OK);
                } else {
                    seen.push((from.0 == a.0, kind, text));
                }
            }
        }
        if !moved {
            return seen;
        }
    }
}

#[test]
#[cfg_attr(miri, ignore = "key generation is too slow under Miri")]
fn two_sessions_talk_and_survive_save_load() {
    let (an, bn) = ("alice@example.org", "bob@example.org");
    let (a, b) = (session(an), session(bn));
    // SAFETY: valid pointers.
    let st = unsafe { otr4_session_start(a, bn.as_ptr(), bn.len()) };
    assert_eq!(st, OTR4_OK);
    let seen = pump((a, an), (b, bn));
    let secure = otr4_event_kind::OTR4_EVENT_SECURE as u32;
    assert_eq!(seen.iter().filter(|(_, k, _)| *k == secure).count(), 2);

    let msg = "hello Bob";
    // SAFETY: valid pointers.
    let st = unsafe { otr4_session_send(a, bn.as_ptr(), bn.len(), 0, msg.as_ptr(), msg.len()) };
    assert_eq!(st, OTR4_OK);
    let seen = pump((a, an), (b, bn));
    let message = otr4_event_kind::OTR4_EVENT_MESSAGE as u32;
    assert!(
        seen.iter()
            .any(|(at_a, k, t)| !at_a && *k == message && t == msg)
    );

    // Bob saves, is freed, loads back (wrong passphrase first), and reads the next message.
    let mut blob = otr4_buf::EMPTY;
    // SAFETY: valid pointers.
    let st = unsafe { otr4_session_save(b, b"pw".as_ptr(), 2, &mut blob) };
    assert_eq!(st, OTR4_OK);
    assert_eq!(otr4_session_free(b), OTR4_OK);
    assert_eq!(
        otr4_session_tick(b),
        OTR4_INVALID_HANDLE,
        "a freed handle is stale"
    );
    let mut b2 = otr4_session { id: 0 };
    // SAFETY: valid pointers; the blob is library-made.
    unsafe {
        assert_eq!(
            otr4_session_load(blob.ptr, blob.len, b"no".as_ptr(), 2, &mut b2),
            OTR4_WRONG_KEY
        );
        assert_eq!(
            otr4_session_load(blob.ptr, blob.len - 1, b"pw".as_ptr(), 2, &mut b2),
            OTR4_TRUNCATED
        );
        assert_eq!(
            otr4_engine_load(
                blob.ptr,
                blob.len,
                b"pw".as_ptr(),
                2,
                &mut otr4_engine { id: 0 }
            ),
            OTR4_NOT_A_BLOB
        );
        *blob.ptr.add(blob.len - 3) ^= 1;
        assert_eq!(
            otr4_session_load(blob.ptr, blob.len, b"pw".as_ptr(), 2, &mut b2),
            OTR4_TAMPERED
        );
        *blob.ptr.add(blob.len - 3) ^= 1;
        assert_eq!(
            otr4_session_load(blob.ptr, blob.len, b"pw".as_ptr(), 2, &mut b2),
            OTR4_OK
        );
        otr4_buf_free(&mut blob);
    }
    let msg = "after the restart";
    // SAFETY: valid pointers.
    let st = unsafe { otr4_session_send(a, bn.as_ptr(), bn.len(), 0, msg.as_ptr(), msg.len()) };
    assert_eq!(st, OTR4_OK);
    let seen = pump((a, an), (b2, bn));
    assert!(
        seen.iter()
            .any(|(at_a, k, t)| !at_a && *k == message && t == msg)
    );
    assert_eq!(otr4_session_free(a), OTR4_OK);
    assert_eq!(otr4_session_free(b2), OTR4_OK);
}

#[test]
#[cfg_attr(miri, ignore = "key generation is too slow under Miri")]
fn engine_refuses_garbage_and_oversized_stanzas() {
    let (j, l) = ("alice@example.org", "laptop");
    let mut e = otr4_engine { id: 0 };
    // SAFETY: valid pointers.
    unsafe {
        assert_eq!(
            otr4_engine_new(j.as_ptr(), j.len(), l.as_ptr(), l.len(), &mut e),
            OTR4_OK
        );
        assert_eq!(
            otr4_engine_new(
                b"nojid".as_ptr(),
                5,
                l.as_ptr(),
                l.len(),
                &mut otr4_engine { id: 0 }
            ),
            OTR4_INVALID_ARGUMENT
        );
        for bad in ["<message", "not xml at all", "<a><b></a>"] {
            assert_eq!(
                otr4_engine_feed(e, bad.as_ptr(), bad.len()),
                OTR4_BAD_STANZA,
                "{bad}"
            );
        }
        let big = format!("<message>{}</message>", "x".repeat(2 << 20));
        assert_eq!(
            otr4_engine_feed(e, big.as_ptr(), big.len()),
            OTR4_BAD_STANZA
        );
        let mut ev = otr4_event::EMPTY;
        assert_eq!(otr4_engine_next_event(e, &mut ev), OTR4_OK);
        assert_eq!(ev.kind, otr4_event_kind::OTR4_EVENT_ERROR as u32);
        otr4_event_free(&mut ev);
        assert_eq!(otr4_engine_remove_device(e, 5), OTR4_INVALID_ARGUMENT);
        let mut fp = otr4_buf::EMPTY;
        assert_eq!(otr4_engine_fingerprint(e, &mut fp), OTR4_OK);
        assert_eq!(fp.len, 112);
        otr4_buf_free(&mut fp);
    }
    assert_eq!(otr4_engine_free(e), OTR4_OK);
    assert_eq!(otr4_engine_free(e), OTR4_INVALID_HANDLE);
}
