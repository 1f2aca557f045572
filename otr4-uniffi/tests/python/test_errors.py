"""Bad input raises a typed `otr4.Otr4Error` subclass with a message; never a crash."""

import otr4
import pytest

PASS = b"pass"


def test_error_classes():
    for kind in ("InvalidArgument", "WrongKey", "Tampered", "Truncated", "NotABlob",
                 "BadStanza", "RngFailure", "Refused", "Internal"):
        assert issubclass(getattr(otr4.Otr4Error, kind), otr4.Otr4Error)
    assert issubclass(otr4.Otr4Error, Exception)


@pytest.mark.parametrize("jid", ["", "alice", "@example.org", "alice@", "a@b/c", "a@b@c"])
def test_invalid_jid(jid):
    with pytest.raises(otr4.Otr4Error.InvalidArgument, match="JID"):
        otr4.Engine(jid, "laptop")


def test_garbage_stanzas():
    e = otr4.Engine("alice@example.org", "laptop")
    for garbage in ["", "not xml", "<message", "<a><b></a>", "<" * 100000,
                    "<message>" * 10000, "\x00"]:
        with pytest.raises(otr4.Otr4Error.BadStanza) as err:
            e.feed(garbage)
        assert str(err.value)
    big = "<message>" + "x" * (64 << 20) + "</message>"
    with pytest.raises(otr4.Otr4Error.BadStanza):
        e.feed(big)
    # The engine still works.
    e.online("alice@example.org/laptop")
    assert all(isinstance(s, str) for s in e.drain_stanzas())


def test_bad_arguments():
    e = otr4.Engine("alice@example.org", "laptop")
    with pytest.raises(otr4.Otr4Error.InvalidArgument):
        e.online("bob@example.org/phone")
    with pytest.raises(otr4.Otr4Error.InvalidArgument):
        e.send("not a jid", "hi")
    with pytest.raises(otr4.Otr4Error.InvalidArgument, match="instance tag"):
        e.smp_start("bob@example.org", 5, b"s")
    with pytest.raises(otr4.Otr4Error.InvalidArgument, match="32"):
        e.save_with_key(b"short")
    s = otr4.Session("alice")
    with pytest.raises(otr4.Otr4Error.InvalidArgument):
        otr4.Session("")
    with pytest.raises(otr4.Otr4Error.InvalidArgument):
        s.smp_start("bob", 0, b"secret")
    # Garbage OTR text at the session level is an event, not an exception.
    s.receive("bob", "?OTR:AAQD" + "A" * 50 + ".")
    assert s.drain_events() is not None
    with pytest.raises(TypeError):
        e.feed(b"<message/>")  # stanzas are str, not bytes


def test_bad_blobs():
    s = otr4.Session("alice")
    blob = s.save(PASS)
    with pytest.raises(otr4.Otr4Error.NotABlob):
        otr4.Session.load(b"", PASS)
    with pytest.raises(otr4.Otr4Error.NotABlob):
        otr4.Session.load(b"garbage" * 20, PASS)
    for cut in (len(blob) // 2, len(blob) - 1, 120):
        with pytest.raises((otr4.Otr4Error.Truncated, otr4.Otr4Error.NotABlob)):
            otr4.Session.load(blob[:cut], PASS)
    with pytest.raises(otr4.Otr4Error.Truncated):
        otr4.Session.load(blob[:-1], PASS)
    tampered = bytearray(blob)
    tampered[-5] ^= 1
    with pytest.raises(otr4.Otr4Error.Tampered):
        otr4.Session.load(bytes(tampered), PASS)
    with pytest.raises(otr4.Otr4Error.NotABlob):
        otr4.Engine.load(blob, PASS)  # a session blob is not an engine blob


def test_objects_free_themselves():
    import gc
    import weakref

    refs = []
    for i in range(20):
        s = otr4.Session(f"user{i}")
        s.start("peer")
        refs.append(weakref.ref(s))
        del s
    gc.collect()
    # Collected: each __del__ freed its Rust object (UniFFI's generated destructor).
    assert all(r() is None for r in refs)
