#!/usr/bin/env python3
"""otr4-chat: a small command-line XMPP chat client with OTRv4 end-to-end encryption.

slixmpp (1.17) carries the XMPP stream; the `otr4` package (otr4-uniffi) is the sans-IO
engine: every incoming message, presence and IQ stanza goes to `Engine.feed` as XML text,
and every stanza the engine returns goes out unchanged. slixmpp answers nothing itself
(no roster pushes, no disco, no "feature-not-implemented" for unknown IQs): the engine
answers every IQ addressed to us, publishes the device list and prekeys, runs MAM
catch-up and sends our presence.

    otr4_chat.py --jid alice@example.org/laptop --state ~/.otr4-chat/laptop
    otr4_chat.py ... --script      # one command per stdin line, one JSON event per line

Commands (interactive and scripted): `/msg JID TEXT`, `/smp JID[#DEVICE] SECRET`,
`/trust [JID#DEVICE]`, `/devices JID`, `/remove DEVICE`, `/whoami`, `/quit`; a line
without a leading `/` goes to the last `/msg` contact. See README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import otr4
import slixmpp
from slixmpp.xmlstream import tostring
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

EK = otr4.EventKind
STATE_FILE = "engine.otr4"
KEY_FILE = "key"
KEY_LEN = 32
TICK_SECONDS = 2.0
RECONNECT_SECONDS = 5.0


class Store:
    """The device's state directory: `engine.otr4` (the engine encrypted under a raw key)
    and `key` (that 32-byte key, mode 0600, made on first start)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_path = self.dir / KEY_FILE
        if not key_path.exists():
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(KEY_LEN))
                f.flush()
                os.fsync(f.fileno())
        self.key = key_path.read_bytes()
        if len(self.key) != KEY_LEN:
            raise SystemExit(f"{key_path}: not a {KEY_LEN}-byte key")

    def load_or_create(self, bare_jid: str, label: str) -> otr4.Engine:
        path = self.dir / STATE_FILE
        if not path.exists():
            engine = otr4.Engine(bare_jid, label)
            self.save(engine)
            return engine
        try:
            return otr4.Engine.load_with_key(path.read_bytes(), self.key)
        except otr4.Otr4Error as e:
            raise SystemExit(f"{path}: cannot load the saved state: {e}") from e

    def save(self, engine: otr4.Engine) -> None:
        """Writes the state atomically (temporary file, fsync, rename)."""
        blob = engine.save_with_key(self.key)
        tmp = self.dir / (STATE_FILE + ".tmp")
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / STATE_FILE)


def event_record(ev: otr4.Event) -> dict[str, Any]:
    """An engine event as a JSON-able dict (the scripted mode's output line)."""
    return {
        "event": ev.kind.name.lower(),
        "peer": ev.peer,
        "device": ev.device,
        "text": ev.text,
        "trust": ev.trust.name.lower(),
        "listed": ev.listed,
        "non_interactive": ev.non_interactive,
        "smp": ev.smp.name.lower() if ev.smp is not None else None,
        "device_change": ev.device_change.name.lower() if ev.device_change is not None else None,
        "sent_to": ev.sent_to,
    }


def human(ev: otr4.Event) -> Optional[str]:
    """An engine event as a line for a person (None: not worth showing)."""
    who = f"{ev.peer}#{ev.device:08x}" if ev.device else ev.peer
    trust = ev.trust.name.lower()
    k = ev.kind
    if k == EK.MESSAGE:
        if ev.sent_to:
            return f"[me -> {ev.sent_to}, from my device {ev.device:08x}] {ev.text}"
        mark = "" if ev.trust == otr4.Trust.VERIFIED else f" ({trust})"
        return f"<{who}{mark}> {ev.text}"
    if k == EK.SECURE:
        how = "prekey server" if ev.non_interactive else "interactive"
        return f"* secure session with {who} ({how}), fingerprint {ev.text}, {trust}"
    if k == EK.TRUST:
        extra = f"  (accept with /trust {ev.peer}#{ev.device:08x} or verify with /smp)" \
            if ev.trust == otr4.Trust.CHANGED else ""
        return f"* trust in {who}: {trust} — {ev.text}{extra}"
    if k == EK.SMP:
        state = ev.smp.name.lower() if ev.smp is not None else "?"
        if ev.smp == otr4.SmpState.ASK_SECRET:
            q = f" ({ev.text})" if ev.text else ""
            return f"* {who} asks to verify{q}: answer with /smp {ev.peer}#{ev.device:08x} SECRET"
        return f"* SMP with {who}: {state}"
    if k == EK.DEVICES:
        change = ev.device_change.name.lower() if ev.device_change is not None else "?"
        return f"* devices of {ev.peer}: {change} {ev.device:08x}"
    if k in (EK.NOT_SENT, EK.UNDECRYPTABLE, EK.ERROR):
        return f"! {k.name.lower()} {who}: {ev.text}"
    if k in (EK.INFO, EK.FINISHED):
        return f"* {who + ': ' if who else ''}{ev.text}"
    if k == EK.ONLINE:
        return "* online (catch-up done)"
    return None


def parse_device(spec: str) -> tuple[str, Optional[int]]:
    """`jid` or `jid#device` (device in hex, as shown)."""
    if "#" in spec:
        jid, dev = spec.split("#", 1)
        return jid, int(dev, 16)
    return spec, None


class Otr4Chat(slixmpp.ClientXMPP):
    """A slixmpp client whose stanzas all go through one `otr4.Engine`."""

    def __init__(self, jid: str, password: str, store: Store, emit: Callable[[dict], None],
                 script: bool) -> None:
        super().__init__(jid, password)
        self.store = store
        self.emit_record = emit
        self.script = script
        bare = self.boundjid.bare
        self.engine = store.load_or_create(bare, self.boundjid.resource or "otr4-chat")
        self.started = False
        self.current: Optional[str] = None
        # Trust and pending SMP questions as the events told them, for /trust and /smp.
        self.trust: dict[tuple[str, int], str] = {}
        self.asked: dict[str, int] = {}
        self.ticker: Optional[asyncio.Task] = None
        self.quitting = False

        # slixmpp must not answer for the engine: no roster-push replies, no automatic
        # (un)subscription answers, no default error replies to IQs. Every message,
        # presence and IQ stanza is handled by `feed` (so `Iq.unhandled` never fires).
        self.remove_handler("Roster Update")
        self.auto_authorize = None
        self.auto_subscribe = False
        for name in ("message", "presence", "iq"):
            self.register_handler(Callback(
                f"otr4 {name}", MatchXPath(f"{{{self.default_ns}}}{name}"), self.feed))
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("disconnected", self.on_disconnected)

    # -- the engine ------------------------------------------------------------------

    def run_engine(self, call: Callable[[], None]) -> None:
        """Runs one engine call, then: save (on SAVE_STATE) before sending, send, show."""
        try:
            call()
        except otr4.Otr4Error as e:
            self.emit({"event": "command_error", "text": f"{type(e).__name__}: {e}"},
                      f"! {type(e).__name__}: {e}")
        events = self.engine.drain_events()
        if any(ev.kind == EK.SAVE_STATE for ev in events):
            # Never send what was not saved (a prekey or message key could be reused).
            self.store.save(self.engine)
        if self.started:
            for xml in self.engine.drain_stanzas():
                self.send_raw(xml)
        for ev in events:
            self.on_event(ev)

    def feed(self, stanza: slixmpp.xmlstream.StanzaBase) -> None:
        if not self.started:
            return  # stream negotiation (bind, session): slixmpp's own business
        # top_level: with its namespace (`jabber:client`), as the engine expects.
        xml = tostring(stanza.xml, top_level=True)
        self.run_engine(lambda: self.engine.feed(xml))

    def on_event(self, ev: otr4.Event) -> None:
        if ev.kind == EK.SAVE_STATE:
            return
        if ev.device and ev.kind in (EK.MESSAGE, EK.SECURE, EK.TRUST, EK.SMP):
            self.trust[(ev.peer, ev.device)] = ev.trust.name.lower()
        if ev.kind == EK.SMP and ev.smp == otr4.SmpState.ASK_SECRET:
            self.asked[ev.peer] = ev.device
        elif ev.kind == EK.SMP and ev.smp != otr4.SmpState.IN_PROGRESS:
            self.asked.pop(ev.peer, None)
        self.emit(event_record(ev), human(ev))

    def emit(self, record: dict, line: Optional[str]) -> None:
        if self.script:
            self.emit_record(record)
        elif line is not None:
            self.emit_record({"line": line})

    # -- the stream ------------------------------------------------------------------

    async def on_session_start(self, _event: Any) -> None:
        self.started = True
        full = str(self.boundjid)
        self.emit({"event": "connected", "jid": full, "device": self.engine.tag(),
                   "fingerprint": self.engine.fingerprint()},
                  f"* connected as {full}, device {self.engine.tag():08x}, "
                  f"fingerprint {self.engine.fingerprint()}")
        self.run_engine(lambda: self.engine.online(full))
        if self.ticker is None:
            self.ticker = asyncio.ensure_future(self.tick_forever())

    def on_disconnected(self, _reason: Any) -> None:
        if self.started:
            self.started = False
            self.engine.offline()

    async def tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            if self.started:
                self.run_engine(self.engine.tick)

    # -- commands --------------------------------------------------------------------

    def command(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        if not line.startswith("/"):
            if self.current is None:
                self.emit({"event": "command_error", "text": "no contact: /msg JID TEXT first"},
                          "! no contact yet: /msg JID TEXT")
                return
            line = f"/msg {self.current} {line}"
        cmd, _, rest = line.partition(" ")
        try:
            handler = {
                "/msg": self.cmd_msg, "/smp": self.cmd_smp, "/trust": self.cmd_trust,
                "/devices": self.cmd_devices, "/remove": self.cmd_remove,
                "/whoami": self.cmd_whoami, "/quit": self.cmd_quit,
            }[cmd]
        except KeyError:
            self.emit({"event": "command_error", "text": f"unknown command {cmd}"},
                      f"! unknown command {cmd} (try /msg, /smp, /trust, /devices, /quit)")
            return
        try:
            handler(rest.strip())
        except ValueError as e:
            self.emit({"event": "command_error", "text": str(e)}, f"! {e}")

    def cmd_msg(self, rest: str) -> None:
        to, _, text = rest.partition(" ")
        if not to or not text:
            raise ValueError("usage: /msg JID TEXT")
        self.current = to
        self.run_engine(lambda: self.engine.send(to, text))

    def cmd_smp(self, rest: str) -> None:
        spec, _, secret = rest.partition(" ")
        if not spec or not secret:
            raise ValueError("usage: /smp JID[#DEVICE] SECRET")
        jid, device = parse_device(spec)
        s = secret.encode()
        asked = self.asked.get(jid)
        if asked is not None and device in (None, asked):
            self.run_engine(lambda: self.engine.smp_respond(jid, asked, s))
            return
        targets = [device] if device is not None else self.engine.devices_of(jid)
        if not targets:
            raise ValueError(f"no known device of {jid}")
        for d in targets:
            self.run_engine(lambda d=d: self.engine.smp_start(jid, d, s))

    def cmd_trust(self, rest: str) -> None:
        if not rest:
            lines = [f"{jid}#{dev:08x}: {t}" for (jid, dev), t in sorted(self.trust.items())]
            self.emit({"event": "trust_list",
                       "devices": [{"peer": j, "device": d, "trust": t}
                                   for (j, d), t in sorted(self.trust.items())]},
                      "\n".join(lines) or "* no device seen yet")
            return
        jid, device = parse_device(rest)
        if device is None:
            raise ValueError("usage: /trust JID#DEVICE (accepts a changed key)")
        self.run_engine(lambda: self.engine.accept_fingerprint(jid, device))

    def cmd_devices(self, rest: str) -> None:
        if not rest:
            raise ValueError("usage: /devices JID")
        devices = self.engine.devices_of(rest)
        shown = ", ".join(f"{d:08x} ({self.trust.get((rest, d), 'no session yet')})"
                          for d in devices)
        self.emit({"event": "devices_of", "peer": rest, "devices": devices},
                  f"* devices of {rest}: {shown or 'none known'}")

    def cmd_remove(self, rest: str) -> None:
        device = int(rest, 16)
        self.run_engine(lambda: self.engine.remove_device(device))

    def cmd_whoami(self, _rest: str) -> None:
        self.emit({"event": "whoami", "jid": str(self.boundjid), "device": self.engine.tag(),
                   "fingerprint": self.engine.fingerprint()},
                  f"* {self.boundjid}, device {self.engine.tag():08x}, "
                  f"fingerprint {self.engine.fingerprint()}")

    def cmd_quit(self, _rest: str) -> None:
        self.quitting = True
        if self.ticker is not None:
            self.ticker.cancel()
        self.store.save(self.engine)
        self.disconnect()


async def read_commands(client: Otr4Chat) -> None:
    """Feeds stdin lines to the client's commands; end of input means /quit."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while not client.quitting:
        raw = await reader.readline()
        if not raw:
            client.command("/quit")
            return
        client.command(raw.decode("utf-8", "replace"))


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jid", required=True, help="full JID: user@domain/resource")
    p.add_argument("--password", help="the account password (default: $OTR4_CHAT_PASSWORD "
                   "or asked for)")
    p.add_argument("--state", required=True, type=Path,
                   help="this device's state directory (made if missing)")
    p.add_argument("--host", help="the XMPP server's address (default: SRV / the domain)")
    p.add_argument("--port", type=int, default=5222)
    p.add_argument("--ca-file", type=Path, help="a CA bundle to trust (e.g. a private CA)")
    p.add_argument("--script", action="store_true",
                   help="scripted mode: no prompt, one JSON event per stdout line")
    p.add_argument("-v", "--verbose", action="store_true", help="slixmpp's log on stderr")
    args = p.parse_args(argv)
    if "/" not in args.jid:
        p.error("--jid needs a resource (user@domain/resource): it names this device")
    password = args.password or os.environ.get("OTR4_CHAT_PASSWORD") or getpass.getpass()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.ERROR,
                        stream=sys.stderr)

    def emit(record: dict) -> None:
        if args.script:
            print(json.dumps(record), flush=True)
        else:
            print(record["line"], flush=True)

    store = Store(args.state)

    async def run() -> None:
        # Made inside the event loop: slixmpp binds its futures to the running loop.
        client = Otr4Chat(args.jid, password, store, emit, args.script)
        if args.ca_file is not None:
            client.ca_certs = args.ca_file
        failed: list[str] = []

        def auth_failed(_e: Any) -> None:
            failed.append("authentication failed")
            client.quitting = True
            client.disconnect()

        client.add_event_handler("failed_auth", auth_failed)
        commands = asyncio.ensure_future(read_commands(client))
        while True:
            client.connect(host=args.host, port=args.port)
            await client.disconnected
            if client.quitting:
                break
            # The connection dropped: the engine went offline; connect again.
            await asyncio.sleep(RECONNECT_SECONDS)
        commands.cancel()
        if failed:
            raise SystemExit(f"{args.jid}: {failed[0]}")

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
