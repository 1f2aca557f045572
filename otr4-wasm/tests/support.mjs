// Helpers of the Node tests: the package, the clock, and devices routed through the
// native in-memory XMPP server with the real prekey server (`otr4-wasm-sim`, feature
// `sim`) over a JSON-lines pipe — the same server the C example and Python tests use.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, "..", "..");
const require = createRequire(import.meta.url);
/** The package under test (pkg/, built by ../build.sh). */
export const otr4 = require("../pkg");

/** Unix seconds, as every engine call takes them. */
export const now = () => Date.now() / 1000;

/** The sim binary: OTR4_WASM_SIM, else the debug build in CARGO_TARGET_DIR or target/. */
function simBin() {
  if (process.env.OTR4_WASM_SIM) return process.env.OTR4_WASM_SIM;
  const target = process.env.CARGO_TARGET_DIR ?? join(root, "target");
  const bin = join(target, "debug", "otr4-wasm-sim");
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: cargo build --workspace --features otr4-wasm/sim --bin otr4-wasm-sim`);
  }
  return bin;
}

/** The in-memory server (one child process); every request waits for its answer. */
export class Sim {
  constructor(domain = "example.org") {
    this.child = spawn(simBin(), [domain], { stdio: ["pipe", "pipe", "inherit"] });
    this.waiting = [];
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      const w = this.waiting.shift();
      if (w) w(JSON.parse(line));
    });
  }

  async request(req) {
    const answer = new Promise((resolve) => this.waiting.push(resolve));
    this.child.stdin.write(JSON.stringify(req) + "\n");
    const a = await answer;
    if (!a.ok) throw new Error(`sim ${req.op}: ${a.error}`);
    return a;
  }

  addUser(jid) { return this.request({ op: "addUser", jid }); }
  connect(jid) { return this.request({ op: "connect", jid }); }
  disconnect(jid) { return this.request({ op: "disconnect", jid }); }
  submit(from, xml) { return this.request({ op: "submit", from, xml }); }
  async inbox(jid) { return (await this.request({ op: "inbox", jid })).stanzas; }

  close() { this.child.stdin.end(); }
}

/** One engine and its full JID on a `Sim`; its events so far in `events`. */
export class Device {
  constructor(sim, bare, label, engine) {
    this.sim = sim;
    this.bare = bare;
    this.full = `${bare}/${label}`;
    this.engine = engine ?? new otr4.Engine(bare, label, now());
    this.events = [];
    this.online = false;
    /** Answers SMP questions with this secret, if set. */
    this.smpSecret = null;
    /** Runs each `feed` (the timing script measures the time spent in the engine). */
    this.timed = (f) => f();
  }

  async connect() {
    await this.sim.connect(this.full);
    this.engine.online(this.full, now());
    this.online = true;
  }

  async disconnect() {
    this.engine.offline();
    await this.pump();
    await this.sim.disconnect(this.full);
    this.online = false;
  }

  /** Takes the engine's events and sends its stanzas; true if any were sent. */
  async pump() {
    for (const ev of this.engine.drainEvents()) {
      this.events.push(ev);
      if (ev.kind === "smp" && ev.smp === "askSecret" && this.smpSecret) {
        this.engine.smpRespond(ev.peer, ev.device, this.smpSecret, now());
      }
    }
    let moved = false;
    for (const st of this.engine.drainStanzas()) {
      await this.sim.submit(this.full, st);
      moved = true;
    }
    return moved;
  }

  /** [sender, text] of each message received. */
  texts() {
    return this.events.filter((e) => e.kind === "message").map((e) => [e.peer, e.text]);
  }
}

/** Routes stanzas between the online devices until nothing moves. */
export async function settle(...devices) {
  for (let i = 0; i < 1000; i++) {
    let moved = false;
    for (const d of devices) if (d.online) moved = (await d.pump()) || moved;
    for (const d of devices) {
      if (!d.online) continue;
      for (const st of await d.sim.inbox(d.full)) {
        try {
          d.timed(() => d.engine.feed(st, now()));
        } catch (e) {
          if (e.code !== "BadStanza") throw e;
        }
        moved = true;
      }
    }
    if (!moved) return;
  }
  throw new Error("the network does not settle");
}

/** A server with alice and bob at example.org; `t.after` closes it. */
export async function newSim(t) {
  const sim = new Sim("example.org");
  t.after(() => sim.close());
  await sim.addUser("alice@example.org");
  await sim.addUser("bob@example.org");
  return sim;
}

/** Devices for [bare, label] pairs, connected one after another. */
export async function online(sim, ...specs) {
  const devs = specs.map(([bare, label]) => new Device(sim, bare, label));
  for (const d of devs) {
    await d.connect();
    await settle(...devs);
  }
  return devs;
}
