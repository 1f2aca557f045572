// A line-driven peer on the JavaScript `otr` library (npm `otr` 0.2.16, OTRv2/v3 with
// instance tags) for otr4's OTRv3 interop test (test-vectors/tests/jsotr_interop.rs).
// Written against the library's documented API (OTR, DSA, its 'io'/'ui'/'status' events);
// speaks the same line protocol as the libotr harness (../libotr/harness.c):
//
// Usage: node driver.js <dir>   (the DSA key lives in <dir>/dsa.key, in the library's own
// packPrivate() form; generated there on first use)
//
// Commands on stdin, one per line:
//   recv <text>   a message from "otr4" arrives     send <text>   the user types <text>
//   fp            print our fingerprint
//   smp <secret>  start SMP                 smp-respond <secret>  answer the peer's SMP
// Output lines: OUT <text> (to be delivered to otr4), MSG <text> (shown to the user),
// SECURE <peer fingerprint>, EVENT <text> (warnings and errors the library reports),
// FP <fingerprint>, SMP ask [question] | success | failure | abort; every command ends
// with DONE. Fingerprints are printed as libotr
// prints them (five groups of eight upper-case hex digits).
// HARNESS_MAX_MESSAGE_SIZE=<n> makes the library fragment what it sends at n characters.
'use strict'

const fs = require('fs')
const path = require('path')
const readline = require('readline')
const { DSA, OTR } = require('otr')

if (process.argv.length !== 3) {
  process.stderr.write('usage: node driver.js <dir>\n')
  process.exit(2)
}
const keyPath = path.join(process.argv[2], 'dsa.key')

let key
if (fs.existsSync(keyPath)) {
  key = DSA.parsePrivate(fs.readFileSync(keyPath, 'utf8').trim())
} else {
  key = new DSA()
  fs.writeFileSync(keyPath, key.packPrivate() + '\n', { mode: 0o600 })
}

const human = (hex) => hex.toUpperCase().match(/.{8}/g).join(' ')

const otr = new OTR({
  priv: key,
  fragment_size: Number(process.env.HARNESS_MAX_MESSAGE_SIZE || 0),
  send_interval: 0
})
otr.ALLOW_V2 = false // the compatible mode of OTRv4 speaks version 3 only

// The library's event emitter removes a listener that returns true, so no listener returns
// a value (process.stdout.write returns true once the line is flushed).
const print = (line) => { process.stdout.write(line + '\n') }
otr.on('io', (msg) => { print('OUT ' + msg) })
otr.on('ui', (msg) => { print('MSG ' + msg) })
otr.on('error', (err, severity) => { print('EVENT ' + (severity || 'error') + ': ' + err) })
otr.on('smp', (type, value) => {
  if (type === 'question') print('SMP ask' + (value ? ' ' + value : ''))
  else if (type === 'trust') print(value ? 'SMP success' : 'SMP failure')
  else if (type === 'abort') print('SMP abort')
})
otr.on('status', (state) => {
  if (state === OTR.CONST.STATUS_AKE_SUCCESS) {
    print('SECURE ' + human(otr.their_priv_pk.fingerprint()))
  }
})

// The library sends through timers (one fragment per tick): a command is done when its
// outgoing queue is empty.
const settle = () => new Promise((resolve) => {
  const check = () => (otr.outgoing.length ? setTimeout(check, 0) : setImmediate(resolve))
  setTimeout(check, 0)
})

const rl = readline.createInterface({ input: process.stdin, terminal: false })
let queue = Promise.resolve()
rl.on('line', (line) => {
  queue = queue.then(async () => {
    try {
      if (line.startsWith('recv ')) otr.receiveMsg(line.slice(5))
      else if (line.startsWith('send ')) otr.sendMsg(line.slice(5))
      else if (line === 'fp') print('FP ' + human(key.fingerprint()))
      else if (line.startsWith('smp-respond ')) otr.smpSecret(line.slice(12))
      else if (line.startsWith('smp ')) otr.smpSecret(line.slice(4))
      else print('ERROR unknown command')
    } catch (e) {
      print('ERROR ' + String(e && e.message ? e.message : e).replace(/\n/g, ' '))
    }
    await settle()
    print('DONE')
  })
})
