"""Objects are used from several threads: a second thread runs its own conversation, and
one object shared between threads stays consistent."""

import threading

import otr4
from conftest import EK, Net


def converse(tag: str, out: dict) -> None:
    try:
        net = Net(f"alice-{tag}", f"bob-{tag}")
        net.secure(f"alice-{tag}", f"bob-{tag}")
        for i in range(20):
            net.peers[f"alice-{tag}"].send(f"bob-{tag}", f"{tag} {i}")
        net.settle()
        out[tag] = [t for _, t in net.texts(f"bob-{tag}")]
    except Exception as e:  # reported to the main thread
        out[tag] = e


def test_second_thread_with_its_own_engine():
    out: dict = {}
    t = threading.Thread(target=converse, args=("thread", out))
    t.start()
    converse("main", out)
    t.join()
    # And an XMPP-level engine made and used only in another thread.
    def engine_thread():
        e = otr4.Engine("carol@example.org", "tablet")
        e.online("carol@example.org/tablet")
        out["engine"] = e.drain_stanzas()
    t2 = threading.Thread(target=engine_thread)
    t2.start()
    t2.join()
    assert out["main"] == [f"main {i}" for i in range(20)]
    assert out["thread"] == [f"thread {i}" for i in range(20)]
    assert out["engine"] and all(isinstance(s, str) for s in out["engine"])


def test_one_session_shared_by_threads():
    net = Net("alice", "bob")
    net.secure("alice", "bob")
    alice = net.peers["alice"]
    threads = [threading.Thread(target=lambda k=k: [alice.send("bob", f"{k}.{i}")
                                                   for i in range(25)]) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    net.settle()
    got = sorted(t for _, t in net.texts("bob"))
    assert got == sorted(f"{k}.{i}" for k in range(4) for i in range(25))
    assert not [e for e in net.events["bob"] if e.kind == EK.UNDECRYPTABLE]
