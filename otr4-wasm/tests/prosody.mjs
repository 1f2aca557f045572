// Two JS devices on a real Prosody with the real prekey-server component, the stanzas
// carried by @xmpp/client (npm): an offline start through the prekey server, messages both
// ways, SMP. Run by xmpp-glue/tests/js_client.rs (which starts Prosody and the prekey
// server and sets GLUE_TEST_C2S_PORT and NODE_EXTRA_CA_CERTS); not part of `npm test`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { client, xml } from "@xmpp/client";
import parse from "@xmpp/xml/lib/parse.js";
import { now, otr4 } from "./support.mjs";

const PORT = process.env.GLUE_TEST_C2S_PORT;
const STEP = 30_000;
// The engine answers every IQ request addressed to us (disco, errors): @xmpp/client's own
// IQ callee must not answer too. Its handler replies with whatever the next middleware
// returns, so ours returns this marker and `send` drops the reply that carries it.
const ANSWERED = "urn:otr4:wasm:engine-answers";

/** One device: an engine, an @xmpp/client connection, its events. */
class Device {
  constructor(user, resource) {
    this.user = user;
    this.bare = `${user}@localhost`;
    this.resource = resource;
    this.engine = new otr4.Engine(this.bare, resource, now());
    this.events = [];
    this.waiters = [];
    this.smpSecret = null;
  }

  /** Connects; resolves once the engine caught up (its `online` event). */
  async connect() {
    const x = client({
      service: `xmpp://127.0.0.1:${PORT}`,
      domain: "localhost",
      resource: this.resource,
      username: this.user,
      password: `${this.user}pass`,
    });
    this.xmpp = x;
    x.reconnect.stop();
    x.middleware.use((ctx, next) => {
      const t = ctx.stanza.attrs.type;
      if (ctx.stanza.is("iq") && (t === "get" || t === "set")) return xml("answered", ANSWERED);
      return next();
    });
    const send = x.send.bind(x);
    x.send = (el) => (el.getChild("answered", ANSWERED) ? Promise.resolve() : send(el));
    x.on("error", (e) => this.record({ kind: "xmppError", text: String(e) }));
    // The stream's default namespace is not on the elements @xmpp/client hands out; the
    // engine wants each stanza with its namespace.
    x.on("stanza", (el) => {
      el.attrs.xmlns ??= "jabber:client";
      this.call(() => this.engine.feed(el.toString(), now()), true);
    });
    x.on("online", (address) => this.call(() => this.engine.online(address.toString(), now())));
    const online = this.waitFor("online", (e) => e.kind === "online");
    await x.start();
    this.timer = setInterval(() => this.call(() => this.engine.tick(now())), 2000);
    this.timer.unref();
    await online;
  }

  async disconnect() {
    clearInterval(this.timer);
    this.engine.offline();
    await this.xmpp?.stop();
    this.xmpp = null;
  }

  /** Runs an engine call, then hands over its events and sends its stanzas. */
  call(f, isFeed = false) {
    try {
      f();
    } catch (e) {
      // A refused stanza is also an `error` event; anything else is a test failure.
      if (!(isFeed && e.code === "BadStanza")) this.record({ kind: "exception", text: String(e) });
    }
    for (const ev of this.engine.drainEvents()) {
      this.record(ev);
      if (ev.kind === "smp" && ev.smp === "askSecret" && this.smpSecret) {
        this.call(() => this.engine.smpRespond(ev.peer, ev.device, this.smpSecret, now()));
      }
    }
    for (const st of this.engine.drainStanzas()) {
      this.xmpp.send(parse(st)).catch((e) => this.record({ kind: "xmppError", text: String(e) }));
    }
  }

  record(ev) {
    this.events.push(ev);
    this.waiters = this.waiters.filter((w) => !w(ev));
  }

  /** Resolves with the first event (past or future) matching `pred`. */
  waitFor(what, pred, from = 0) {
    const seen = this.events.slice(from).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.bare}/${this.resource}: no ${what} within ${STEP} ms; events ${JSON.stringify(this.events, null, 1)}`)),
        STEP,
      );
      this.waiters.push((ev) => {
        if (!pred(ev)) return false;
        clearTimeout(timer);
        resolve(ev);
        return true;
      });
    });
  }

  failures() {
    return this.events.filter((e) => ["exception", "xmppError", "notSent", "undecryptable"].includes(e.kind));
  }
}

test("two wasm engines over @xmpp/client and Prosody: offline start, messages, SMP", { timeout: 180_000 }, async (t) => {
  assert.ok(PORT, "GLUE_TEST_C2S_PORT is not set: run through xmpp-glue/tests/js_client.rs");
  // Bob's device publishes its device list and prekeys, then goes offline.
  const bob = new Device("bob", "web");
  const alice = new Device("alice", "web");
  // Close the connections even when an assertion fails, so node exits.
  t.after(() => Promise.allSettled([alice.disconnect(), bob.disconnect()]));
  await bob.connect();
  await bob.waitFor("prekeys published", (e) => e.kind === "info" && /prekeys published/.test(e.text));
  await bob.disconnect();

  // Alice, who never talked to Bob, writes to him while he is offline: the DAKE goes
  // through the prekey server.
  await alice.connect();
  alice.call(() => alice.engine.send("bob@localhost", "Hi Bob, from JavaScript", now()));
  await alice.waitFor("a non-interactive session", (e) => e.kind === "secure" && e.nonInteractive);

  // Bob comes back (same engine) and reads it from the archive.
  const mark = bob.events.length;
  await bob.connect();
  const got = await bob.waitFor("the offline message", (e) => e.kind === "message", mark);
  assert.equal(got.peer, "alice@localhost");
  assert.equal(got.text, "Hi Bob, from JavaScript");
  assert.equal(got.device, alice.engine.tag);

  bob.call(() => bob.engine.send("alice@localhost", "Hi Alice, got it", now()));
  const reply = await alice.waitFor("Bob's reply", (e) => e.kind === "message");
  assert.equal(reply.text, "Hi Alice, got it");
  assert.equal(reply.device, bob.engine.tag);

  // SMP over the live connections.
  const secret = new TextEncoder().encode("the library");
  bob.smpSecret = secret;
  alice.call(() => alice.engine.smpStart("bob@localhost", bob.engine.tag, secret, "Where?", now()));
  for (const d of [alice, bob]) {
    const done = await d.waitFor("SMP's end", (e) => e.kind === "smp" && ["succeeded", "failed", "aborted"].includes(e.smp));
    assert.equal(done.smp, "succeeded");
  }
  alice.call(() => alice.engine.send("bob@localhost", "verified now", now()));
  const verified = await bob.waitFor("a verified message", (e) => e.kind === "message" && e.text === "verified now");
  assert.equal(verified.trust, "verified");

  assert.deepEqual([...alice.failures(), ...bob.failures()], []);
});
