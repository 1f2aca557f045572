"""XMPP level (`otr4.Engine`) through the in-memory server `otr4.Sim`: stanzas as `str`."""

import otr4
import pytest
from conftest import EK, Device, settle

PASS = b"correct horse battery staple"


def online(sim, *specs):
    devs = [Device(sim, bare, label) for bare, label in specs]
    for d in devs:
        d.connect()
        settle(*devs)
    return devs


def test_two_devices_converse(sim):
    alice, bob = online(sim, ("alice@example.org", "laptop"), ("bob@example.org", "desktop"))
    alice.engine.send("bob@example.org", "Hi Bob!")
    settle(alice, bob)
    bob.engine.send("alice@example.org", "Hi Alice!")
    settle(alice, bob)
    assert bob.texts() == [("alice@example.org", "Hi Bob!")]
    assert alice.texts() == [("bob@example.org", "Hi Alice!")]
    msg = [e for e in bob.events if e.kind == EK.MESSAGE][0]
    assert msg.device == alice.engine.tag() and msg.trust == otr4.Trust.TOFU
    assert msg.sent_to is None and msg.encrypted


def test_smp_verifies(sim):
    alice, bob = online(sim, ("alice@example.org", "laptop"), ("bob@example.org", "desktop"))
    alice.engine.send("bob@example.org", "hello")
    settle(alice, bob)
    bob.smp_secret = b"the library"
    alice.engine.smp_start("bob@example.org", bob.engine.tag(), b"the library", "Where?")
    settle(alice, bob)
    for d in (alice, bob):
        assert [e.smp for e in d.events if e.kind == EK.SMP][-1] == otr4.SmpState.SUCCEEDED


def test_save_load_mid_conversation(sim):
    alice, bob = online(sim, ("alice@example.org", "laptop"), ("bob@example.org", "desktop"))
    alice.engine.send("bob@example.org", "one")
    settle(alice, bob)
    bob.disconnect()
    blob = bob.engine.save(PASS)
    with pytest.raises(otr4.Otr4Error.WrongKey):
        otr4.Engine.load(blob, b"not it")
    with pytest.raises(otr4.Otr4Error.NotABlob):
        otr4.Session.load(blob, PASS)  # an engine blob is not a session blob
    alice.engine.send("bob@example.org", "two (while Bob is away)")
    settle(alice, bob)
    bob2 = Device(sim, "bob@example.org", "desktop", otr4.Engine.load(blob, PASS))
    bob2.connect()
    settle(alice, bob2)
    bob2.engine.send("alice@example.org", "back")
    settle(alice, bob2)
    assert bob.texts() == [("alice@example.org", "one")]
    assert bob2.texts() == [("alice@example.org", "two (while Bob is away)")]
    assert alice.texts() == [("bob@example.org", "back")]


def test_devices_of(sim):
    a1, a2, bob = online(
        sim,
        ("alice@example.org", "laptop"),
        ("alice@example.org", "phone"),
        ("bob@example.org", "desktop"),
    )
    # A contact's devices come from its published list; our own JID lists our other ones.
    a1.engine.send("bob@example.org", "hi")
    settle(a1, a2, bob)
    assert sorted(bob.engine.devices_of("alice@example.org")) == sorted(
        [a1.engine.tag(), a2.engine.tag()]
    )
    assert a1.engine.devices_of("bob@example.org") == [bob.engine.tag()]
    assert a1.engine.devices_of("alice@example.org") == [a2.engine.tag()]
    assert a1.engine.devices_of("carol@example.org") == []
    with pytest.raises(otr4.Otr4Error.InvalidArgument):
        a1.engine.devices_of("bob@example.org/desktop")


def test_accepting_a_prekey_server_key_is_checked(sim):
    (alice,) = online(sim, ("alice@example.org", "laptop"))
    # No prekey server known for the domain, or not a fingerprint: refused.
    with pytest.raises(otr4.Otr4Error.InvalidArgument):
        alice.engine.accept_prekey_server_key("other.example", "ab" * 56)
    with pytest.raises(otr4.Otr4Error.InvalidArgument):
        alice.engine.accept_prekey_server_key("example.org", "not a fingerprint")
    # The in-memory server's key never changed: no such event.
    kinds = {e.kind for e in alice.events}
    assert EK.PREKEY_SERVER_KEY_CHANGED not in kinds
    assert EK.PREKEY_SERVER_KEY_ROTATED not in kinds
