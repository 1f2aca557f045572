"""Helpers for the otr4 Python tests: a session-level network that routes SEND events,
and XMPP-level devices routed through the in-memory server `otr4.Sim` (feature `sim`)."""

from __future__ import annotations

import otr4
import pytest

EK = otr4.EventKind


class Net:
    """Session-level peers by name; `settle` delivers every SEND until nothing moves.

    Everything else the sessions report is kept per name in `events`."""

    def __init__(self, *names: str) -> None:
        self.peers = {n: otr4.Session(n) for n in names}
        self.events: dict[str, list[otr4.Event]] = {n: [] for n in names}
        # Answer SMP questions with this secret (per name), if set.
        self.smp_secret: dict[str, bytes] = {}

    def settle(self) -> None:
        for _ in range(1000):
            moved = False
            for name, s in self.peers.items():
                for ev in s.drain_events():
                    if ev.kind == EK.SEND:
                        self.peers[ev.peer].receive(name, ev.text)
                        moved = True
                        continue
                    self.events[name].append(ev)
                    if ev.kind == EK.SMP and ev.smp == otr4.SmpState.ASK_SECRET:
                        s.smp_respond(ev.peer, ev.device, self.smp_secret[name])
                        moved = True
            if not moved:
                return
        raise AssertionError("the network does not settle")

    def texts(self, name: str) -> list[tuple[str, str]]:
        return [(e.peer, e.text) for e in self.events[name] if e.kind == EK.MESSAGE]

    def secure(self, a: str, b: str) -> None:
        self.peers[a].start(b)
        self.settle()
        assert any(e.kind == EK.SECURE for e in self.events[a])
        assert any(e.kind == EK.SECURE for e in self.events[b])


class Device:
    """One XMPP-level engine and its full JID on a `Sim` server."""

    def __init__(self, sim: otr4.Sim, bare: str, label: str, engine: otr4.Engine | None = None):
        self.sim, self.bare, self.label = sim, bare, label
        self.full = f"{bare}/{label}"
        self.engine = engine or otr4.Engine(bare, label)
        self.events: list[otr4.Event] = []
        self.online = False
        self.smp_secret: bytes | None = None

    def connect(self) -> None:
        self.sim.connect(self.full)
        self.engine.online(self.full)
        self.online = True

    def disconnect(self) -> None:
        self.engine.offline()
        self.pump()
        self.sim.disconnect(self.full)
        self.online = False

    def pump(self) -> bool:
        moved = False
        for ev in self.engine.drain_events():
            self.events.append(ev)
            if ev.kind == EK.SMP and ev.smp == otr4.SmpState.ASK_SECRET and self.smp_secret:
                self.engine.smp_respond(ev.peer, ev.device, self.smp_secret)
        for st in self.engine.drain_stanzas():
            self.sim.submit(self.full, st)
            moved = True
        return moved

    def texts(self) -> list[tuple[str, str]]:
        return [(e.peer, e.text) for e in self.events if e.kind == EK.MESSAGE]


def settle(*devices: Device) -> None:
    for _ in range(1000):
        moved = False
        for d in devices:
            if d.online:
                moved |= d.pump()
        for d in devices:
            if d.online:
                for st in d.sim.drain_stanzas(d.full):
                    try:
                        d.engine.feed(st)
                    except otr4.Otr4Error.BadStanza:
                        pass
                    moved = True
        if not moved:
            return
    raise AssertionError("the network does not settle")


@pytest.fixture
def sim() -> otr4.Sim:
    s = otr4.Sim("example.org")
    s.add_user("alice@example.org")
    s.add_user("bob@example.org")
    return s
