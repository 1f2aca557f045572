// The XMPP-level engine compiled to wasm, two or more devices routed in-process through the
// in-memory server with the real prekey server: online and offline DAKE, SMP, saved state,
// bad input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Device, newSim, now, online, otr4, settle } from "./support.mjs";

const PASS = new TextEncoder().encode("correct horse battery staple");

/** Asserts that `f` throws an Otr4Error with `code`. */
function throwsOtr4(f, code) {
  assert.throws(f, (e) => {
    assert.ok(e instanceof Error, "an Error");
    assert.equal(e.name, "Otr4Error");
    assert.equal(e.code, code, e.message);
    assert.equal(typeof e.status, "number");
    assert.ok(e.message.length > 0);
    return true;
  });
}

test("two devices converse after an online DAKE", async (t) => {
  const sim = await newSim(t);
  const [alice, bob] = await online(sim, ["alice@example.org", "laptop"], ["bob@example.org", "desktop"]);
  alice.engine.send("bob@example.org", "Hi Bob!", now());
  await settle(alice, bob);
  bob.engine.send("alice@example.org", "Hi Alice!", now());
  await settle(alice, bob);
  assert.deepEqual(bob.texts(), [["alice@example.org", "Hi Bob!"]]);
  assert.deepEqual(alice.texts(), [["bob@example.org", "Hi Alice!"]]);
  const msg = bob.events.find((e) => e.kind === "message");
  assert.equal(msg.device, alice.engine.tag);
  assert.equal(msg.trust, "tofu");
  assert.equal(msg.sentTo, null);
  assert.equal(msg.listed, true);
  const secure = bob.events.find((e) => e.kind === "secure" && e.peer === "alice@example.org");
  assert.equal(secure.text, alice.engine.fingerprint, "the secure event carries the peer's fingerprint");
  assert.equal(secure.nonInteractive, false);
  assert.match(alice.engine.fingerprint, /^[0-9a-f]{112}$/);
  assert.deepEqual(Array.from(alice.engine.devicesOf("bob@example.org")), [bob.engine.tag]);
  assert.ok(alice.events.some((e) => e.kind === "online"));
  assert.ok(alice.events.some((e) => e.kind === "saveState"));
});

test("SMP verifies the peer's device", async (t) => {
  const sim = await newSim(t);
  const [alice, bob] = await online(sim, ["alice@example.org", "laptop"], ["bob@example.org", "desktop"]);
  alice.engine.send("bob@example.org", "hello", now());
  await settle(alice, bob);
  const secret = new TextEncoder().encode("the library");
  bob.smpSecret = secret;
  alice.engine.smpStart("bob@example.org", bob.engine.tag, secret, "Where did we meet?", now());
  await settle(alice, bob);
  const asked = bob.events.find((e) => e.kind === "smp" && e.smp === "askSecret");
  assert.equal(asked.text, "Where did we meet?");
  for (const d of [alice, bob]) {
    const smp = d.events.filter((e) => e.kind === "smp");
    assert.equal(smp.at(-1).smp, "succeeded", `${d.full}: ${JSON.stringify(smp)}`);
  }
  // Verified now: the next message says so.
  alice.engine.send("bob@example.org", "verified?", now());
  await settle(alice, bob);
  assert.equal(bob.events.filter((e) => e.kind === "message").at(-1).trust, "verified");
});

test("SMP with different secrets fails", async (t) => {
  const sim = await newSim(t);
  const [alice, bob] = await online(sim, ["alice@example.org", "laptop"], ["bob@example.org", "desktop"]);
  alice.engine.send("bob@example.org", "hello", now());
  await settle(alice, bob);
  bob.smpSecret = new TextEncoder().encode("the park");
  alice.engine.smpStart("bob@example.org", bob.engine.tag, new TextEncoder().encode("the library"), null, now());
  await settle(alice, bob);
  assert.equal(alice.events.filter((e) => e.kind === "smp").at(-1).smp, "failed");
});

test("offline start: the first message goes through the prekey server", async (t) => {
  const sim = await newSim(t);
  // Bob's device publishes its device list and prekeys, then goes away.
  const [bob] = await online(sim, ["bob@example.org", "desktop"]);
  assert.ok(bob.events.some((e) => e.kind === "info" && /prekeys published/.test(e.text)));
  await bob.disconnect();
  // Alice, who never talked to Bob, writes while he is offline.
  const [alice] = await online(sim, ["alice@example.org", "laptop"]);
  alice.engine.send("bob@example.org", "Are you there?", now());
  await settle(alice);
  assert.ok(
    !alice.events.some((e) => e.kind === "notSent"),
    JSON.stringify(alice.events.filter((e) => e.kind === "notSent")),
  );
  // Bob comes back and reads it (non-interactive DAKE; offline storage / MAM).
  await bob.connect();
  await settle(alice, bob);
  assert.deepEqual(bob.texts(), [["alice@example.org", "Are you there?"]]);
  const secure = [...alice.events, ...bob.events].filter((e) => e.kind === "secure");
  assert.ok(secure.some((e) => e.nonInteractive), JSON.stringify(secure));
  bob.engine.send("alice@example.org", "Yes, back now", now());
  await settle(alice, bob);
  assert.deepEqual(alice.texts(), [["bob@example.org", "Yes, back now"]]);
});

test("saved state: wrong secrets and tampering are refused, the conversation goes on", async (t) => {
  const sim = await newSim(t);
  const [alice, bob] = await online(sim, ["alice@example.org", "laptop"], ["bob@example.org", "desktop"]);
  alice.engine.send("bob@example.org", "one", now());
  await settle(alice, bob);
  await bob.disconnect();
  const blob = bob.engine.save(PASS);
  assert.ok(blob instanceof Uint8Array && blob.length > 100);
  throwsOtr4(() => otr4.Engine.load(blob, new TextEncoder().encode("not it"), now()), "WrongKey");
  const tampered = blob.slice();
  tampered[tampered.length - 5] ^= 1;
  throwsOtr4(() => otr4.Engine.load(tampered, PASS, now()), "Tampered");
  throwsOtr4(() => otr4.Engine.load(blob.slice(0, blob.length - 40), PASS, now()), "Truncated");
  throwsOtr4(() => otr4.Engine.load(new TextEncoder().encode("hello"), PASS, now()), "NotABlob");
  const key = crypto.getRandomValues(new Uint8Array(32));
  const keyed = bob.engine.saveWithKey(key);
  throwsOtr4(() => otr4.Engine.loadWithKey(keyed, new Uint8Array(31), now()), "InvalidArgument");
  bob.engine.free();

  alice.engine.send("bob@example.org", "two (while Bob is away)", now());
  await settle(alice, bob);
  const bob2 = new Device(sim, "bob@example.org", "desktop", otr4.Engine.loadWithKey(keyed, key, now()));
  await bob2.connect();
  await settle(alice, bob2);
  bob2.engine.send("alice@example.org", "back", now());
  await settle(alice, bob2);
  assert.deepEqual(bob.texts(), [["alice@example.org", "one"]]);
  assert.deepEqual(bob2.texts(), [["alice@example.org", "two (while Bob is away)"]]);
  assert.deepEqual(alice.texts(), [["bob@example.org", "back"]]);
  // The passphrase blob loads too.
  assert.equal(otr4.Engine.load(blob, PASS, now()).tag, bob2.engine.tag);
});

test("bad input throws typed errors, never crashes", () => {
  throwsOtr4(() => new otr4.Engine("not a jid", "x", now()), "InvalidArgument");
  throwsOtr4(() => new otr4.Engine("a@example.org", "x", Number.NaN), "InvalidArgument");
  throwsOtr4(() => new otr4.Engine("a@example.org", "x", -1), "InvalidArgument");
  const e = new otr4.Engine("a@example.org", "x", now());
  throwsOtr4(() => e.feed("<message", now()), "BadStanza");
  throwsOtr4(() => e.feed("<".repeat(10) + "x".repeat(2 << 20), now()), "BadStanza");
  const deep = "<message xmlns='jabber:client'>" + "<a>".repeat(5000) + "</a>".repeat(5000) + "</message>";
  throwsOtr4(() => e.feed(deep, now()), "BadStanza");
  // The refusal is also an event to show.
  assert.ok(e.drainEvents().some((ev) => ev.kind === "error"));
  throwsOtr4(() => e.send("bob@example.org/desktop", "hi", now()), "InvalidArgument");
  throwsOtr4(() => e.smpStart("bob@example.org", 5, new Uint8Array(1), null, now()), "InvalidArgument");
  throwsOtr4(() => e.devicesOf("nobody"), "InvalidArgument");
  throwsOtr4(() => e.online("b@example.org/x", now()), "InvalidArgument");
  throwsOtr4(() => e.save(new Uint8Array(0)), "InvalidArgument");
  // A stanza from nobody we know is processed without an exception.
  e.feed("<message xmlns='jabber:client' from='z@example.org/r' to='a@example.org/x'><body>hi</body></message>", now());
  // The engine still works.
  assert.equal(typeof e.tag, "number");
  e.free();
});
