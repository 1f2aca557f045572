// An OTRv3-only XMPP contact, as a Pidgin user is one: the JavaScript `otr` library (npm `otr`
// 0.2.16) over a real XMPP connection (npm `@xmpp/client`), talking to one peer in plain
// <body> messages. Used by xmpp-glue's test of its OTRv3-compatible mode against Prosody
// (xmpp-glue/tests/otrv3_contact.rs). Written here against both libraries' documented APIs.
//
// Usage: node xmpp-contact.mjs <full jid> <password> <c2s port> <peer bare jid> <key dir>
// (TLS: the test CA comes in through NODE_EXTRA_CA_CERTS; the DSA key lives in
// <key dir>/dsa.key, made on first use; the test copies one of keys/ there). HARNESS_MAX_MESSAGE_SIZE=<n>: the library sends in
// v3 fragments of at most n characters.
//
// Commands on stdin, one per line:
//   query          send an OTR query message (the library offers version 3 only)
//   send <text>    the user types <text>          end   end the private conversation
//   smp <secret>   start SMP                      smp-respond <secret>  answer the peer's SMP
//   fp             print our fingerprint
// Output lines: READY (online), MSG <text> (an encrypted message shown to the user),
// PLAIN <text> (an unencrypted one), SECURE <peer fingerprint>, FINISHED (the peer ended),
// EVENT <text> (the library's warnings and errors), FP <fingerprint>,
// SMP ask [question] | success | failure | abort, ERROR <text>; every command ends with
// DONE. Fingerprints are 40 lower-case hex digits.
import fs from 'node:fs'
import path from 'node:path'
import readline from 'node:readline'
import { client, xml } from '@xmpp/client'
import otrLib from 'otr'

const { DSA, OTR } = otrLib

if (process.argv.length !== 7) {
  process.stderr.write('usage: node xmpp-contact.mjs <full jid> <password> <port> <peer> <key dir>\n')
  process.exit(2)
}
const [fullJid, password, port, peer, keyDir] = process.argv.slice(2)
const [bare, resource] = fullJid.split('/')
const [username, domain] = bare.split('@')

const keyPath = path.join(keyDir, 'dsa.key')
let key
if (fs.existsSync(keyPath)) {
  key = DSA.parsePrivate(fs.readFileSync(keyPath, 'utf8').trim())
} else {
  key = new DSA()
  fs.writeFileSync(keyPath, key.packPrivate() + '\n', { mode: 0o600 })
}

// The library's event emitter removes a listener that returns true: no listener returns one.
const print = (line) => { process.stdout.write(line + '\n') }

const xmpp = client({
  service: `xmpp://127.0.0.1:${port}`,
  domain,
  resource,
  username,
  password,
  timeout: 30000 // per step (default 2 s: too short on a loaded CI machine)
})
xmpp.on('error', (err) => { print('EVENT xmpp: ' + String(err && err.message ? err.message : err)) })

const otr = new OTR({
  priv: key,
  fragment_size: Number(process.env.HARNESS_MAX_MESSAGE_SIZE || 0),
  send_interval: 0
})
otr.ALLOW_V2 = false // OTRv4's compatible mode speaks version 3 only
// The library reports every protocol error to the peer and the user as "An OTR error has
// occurred." unless in debug mode (which also logs to stdout): its real text is printed here.
const libraryError = otr.error
otr.error = function (err) {
  print('EVENT detail: ' + err)
  return libraryError.call(this, err)
}

// Each OTR message goes in its own plain <body>, as Pidgin sends them.
otr.on('io', (msg) => {
  if (process.env.XMPP_CONTACT_DEBUG) process.stderr.write('SENT ' + msg + '\n')
  xmpp.send(xml('message', { to: peer, type: 'chat' }, xml('body', {}, msg)))
    .catch((e) => { print('EVENT send failed: ' + e) })
})
otr.on('ui', (msg, encrypted) => { print((encrypted ? 'MSG ' : 'PLAIN ') + msg) })
otr.on('error', (err, severity) => { print('EVENT ' + (severity || 'error') + ': ' + err) })
otr.on('smp', (type, value) => {
  if (type === 'question') print('SMP ask' + (value ? ' ' + value : ''))
  else if (type === 'trust') print(value ? 'SMP success' : 'SMP failure')
  else if (type === 'abort') print('SMP abort')
})
otr.on('status', (state) => {
  if (state === OTR.CONST.STATUS_AKE_SUCCESS) print('SECURE ' + otr.their_priv_pk.fingerprint())
  else if (state === OTR.CONST.STATUS_END_OTR) print('FINISHED')
})

// Only the peer's chat bodies reach the library (nothing else is a conversation here).
xmpp.on('stanza', (stanza) => {
  if (process.env.XMPP_CONTACT_DEBUG) process.stderr.write('RAW ' + stanza.toString() + '\n')
  if (!stanza.is('message') || stanza.attrs.type === 'error') return
  const from = String(stanza.attrs.from || '').split('/')[0]
  const body = stanza.getChildText('body')
  if (from === peer && body !== null) otr.receiveMsg(body)
})
xmpp.on('online', async () => {
  await xmpp.send(xml('presence'))
  print('READY')
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
      if (line === 'query') otr.sendQueryMsg()
      else if (line.startsWith('send ')) otr.sendMsg(line.slice(5))
      else if (line === 'end') otr.endOtr()
      else if (line === 'fp') print('FP ' + key.fingerprint())
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
rl.on('close', () => { queue.then(() => xmpp.stop()).then(() => process.exit(0)) })

xmpp.start().catch((e) => {
  print('ERROR connect: ' + String(e && e.message ? e.message : e))
  process.exit(1)
})
