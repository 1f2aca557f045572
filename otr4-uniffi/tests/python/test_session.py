"""Session level (`otr4.Session`): conversation, SMP, persistence, 1 000 reordered
messages."""

import random

import otr4
import pytest
from conftest import EK, Net

PASS = b"correct horse battery staple"


def test_two_party_conversation():
    net = Net("alice", "bob")
    net.secure("alice", "bob")
    net.peers["alice"].send("bob", "Hi Bob!")
    net.peers["bob"].send("alice", "Hi Alice \N{WAVING HAND SIGN}")
    net.settle()
    assert net.texts("bob") == [("alice", "Hi Bob!")]
    assert net.texts("alice") == [("bob", "Hi Alice \N{WAVING HAND SIGN}")]
    msg = [e for e in net.events["bob"] if e.kind == EK.MESSAGE][0]
    assert msg.encrypted and msg.device == net.peers["alice"].tag()
    # A call that changed state ends its events with SAVE_STATE.
    assert net.events["bob"][-1].kind == EK.SAVE_STATE
    fp = net.peers["alice"].fingerprint()
    assert isinstance(fp, str) and int(fp, 16) >= 0
    assert any(e.kind == EK.SECURE and e.text == fp for e in net.events["bob"])


@pytest.mark.parametrize("answer, outcome", [(b"the library", otr4.SmpState.SUCCEEDED),
                                             (b"the park", otr4.SmpState.FAILED)])
def test_smp(answer, outcome):
    net = Net("alice", "bob")
    net.secure("alice", "bob")
    net.smp_secret["bob"] = answer
    net.peers["alice"].smp_start("bob", net.peers["bob"].tag(), b"the library",
                                 "Where did we first meet?")
    net.settle()
    asked = [e for e in net.events["bob"] if e.smp == otr4.SmpState.ASK_SECRET]
    assert [e.text for e in asked] == ["Where did we first meet?"]
    for name in ("alice", "bob"):
        states = [e.smp for e in net.events[name] if e.kind == EK.SMP]
        assert states[-1] == outcome, (name, states)


def test_persistence_round_trip():
    net = Net("alice", "bob")
    net.secure("alice", "bob")
    net.peers["alice"].send("bob", "before")
    net.settle()
    blob = net.peers["bob"].save(PASS)
    assert isinstance(blob, bytes) and blob.startswith(b"OTR4SAVE")
    with pytest.raises(otr4.Otr4Error.WrongKey) as err:
        otr4.Session.load(blob, b"wrong passphrase")
    assert isinstance(err.value, otr4.Otr4Error) and str(err.value)
    tag = net.peers["bob"].tag()
    net.peers["bob"] = otr4.Session.load(blob, PASS)
    assert net.peers["bob"].tag() == tag
    net.peers["alice"].send("bob", "after")
    net.peers["bob"].send("alice", "still here")
    net.settle()
    assert net.texts("bob") == [("alice", "before"), ("alice", "after")]
    assert net.texts("alice") == [("bob", "still here")]


def test_persistence_with_raw_key():
    key = bytes(range(32))
    s = otr4.Session("alice")
    blob = s.save_with_key(key)
    assert otr4.Session.load_with_key(blob, key).fingerprint() == s.fingerprint()
    with pytest.raises(otr4.Otr4Error.WrongKey):
        otr4.Session.load_with_key(blob, bytes(32))


def test_thousand_messages_reordered():
    net = Net("alice", "bob")
    net.secure("alice", "bob")
    alice, bob = net.peers["alice"], net.peers["bob"]
    sent = [f"message {i}" for i in range(1000)]
    payloads = []
    for text in sent:
        alice.send("bob", text)
        for ev in alice.drain_events():
            if ev.kind == EK.SEND:
                payloads.append(ev.text)
    assert len(payloads) == 1000
    random.Random(4).shuffle(payloads)
    for p in payloads:
        bob.receive("alice", p)
    got = [e.text for e in bob.drain_events() if e.kind == EK.MESSAGE]
    assert sorted(got) == sorted(sent)
