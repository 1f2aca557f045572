// DAKE time under Node (not a test): for fresh pairs of wasm engines on the in-memory
// server, the time spent inside the engines from `send` of the first message until the
// peer decrypted it — the interactive DAKE (identity, auth-r, auth-i) plus one data message,
// IPC to the server excluded. The native counterpart: examples/dake_native.rs.
// Usage: node bench/dake_time.mjs [rounds]   (needs pkg/ and the otr4-wasm-sim binary)
import { Sim, now, online, settle } from "../tests/support.mjs";

const rounds = Number(process.argv[2] ?? 20);
const sim = new Sim("example.org");
const times = [];
for (let i = 0; i < rounds; i++) {
  const a = `a${i}@example.org`;
  const b = `b${i}@example.org`;
  await sim.addUser(a);
  await sim.addUser(b);
  const [alice, bob] = await online(sim, [a, "x"], [b, "y"]);
  let spent = 0;
  const timed = (f) => {
    const t = performance.now();
    f();
    spent += performance.now() - t;
  };
  alice.timed = bob.timed = timed;
  timed(() => alice.engine.send(b, "hello", now()));
  await settle(alice, bob);
  if (bob.texts().length !== 1) throw new Error(`round ${i}: not delivered`);
  times.push(spent);
  alice.engine.free();
  bob.engine.free();
}
sim.close();
times.sort((x, y) => x - y);
const median = times[Math.floor(times.length / 2)];
console.log(
  `wasm (Node ${process.version}): DAKE + first message, ${rounds} pairs: ` +
    `median ${median.toFixed(1)} ms, min ${times[0].toFixed(1)} ms, max ${times.at(-1).toFixed(1)} ms`,
);
