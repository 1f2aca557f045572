"""Issue 12 item 8 (Python half): encrypt + decrypt of a 1 KiB message at the session level
through the Python package (`send` -> SEND event -> `receive` -> MESSAGE event), the same
round trip as `cargo bench -p otr4-ffi --bench abi` measures through the C ABI and the Rust
API. Prints the median per round trip and the ratio to a Rust figure given in µs.

    python otr4-uniffi/benches/py_overhead.py [RUST_MICROSECONDS]

Build the package with `maturin develop --release` for a figure comparable to the
criterion bench (which is a release build)."""

import statistics
import sys
import time

import otr4

EK = otr4.EventKind


def deliver(sender, name, receiver):
    n = 0
    for ev in sender.drain_events():
        if ev.kind == EK.SEND:
            receiver.receive(name, ev.text)
        elif ev.kind == EK.MESSAGE:
            n += len(ev.text)
    return n


def main() -> None:
    alice, bob = otr4.Session("alice@example.org"), otr4.Session("bob@example.org")
    alice.start("bob@example.org")
    for _ in range(4):
        deliver(alice, "alice@example.org", bob)
        deliver(bob, "bob@example.org", alice)
    text = "x" * 1024
    rounds, samples = 50, []
    for i in range(rounds + 5):
        t = time.perf_counter()
        alice.send("bob@example.org", text)
        deliver(alice, "alice@example.org", bob)
        assert deliver(bob, "bob@example.org", alice) == 1024
        if i >= 5:  # warm-up
            samples.append(time.perf_counter() - t)
    med = statistics.median(samples) * 1e6
    print(f"python: 1 KiB encrypt+decrypt median {med:.1f} µs over {rounds} rounds")
    if len(sys.argv) > 1:
        rust = float(sys.argv[1])
        print(f"rust:   {rust:.1f} µs  -> python/rust = {med / rust:.2f}")


if __name__ == "__main__":
    main()
