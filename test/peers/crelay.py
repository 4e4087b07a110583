"""Twilio's side of ConversationRelay (protocols.md section 7) for voxrelay's
tests: the TwiML a ConversationRelay line answers, the WebSocket session
(setup, prompts, interrupt, dtmf, error, and whatever hostile input a test
sends) and the <Connect action> callback with HandoffData.

    wh = relay_voice(base, sid, caller, route="desk")
    s = RelaySession(wh.url, sid)
    await s.open()                    # handshake signed over the wss:// URL
    await s.setup()
    await s.prompt("I need a cleaning", partials=["I need"])
    turn = await s.wait_turn()        # the text tokens up to last: true
    ...
    status, twiml = post_action(base, wh.action, sid, handoff)

Only the standard library and python3-websockets are used."""

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import websockets

import twilio


def wss_form(url):
    """The URL Twilio signs a ConversationRelay handshake over."""
    return "wss://" + url.split("://", 1)[1]


class RelayWebhook:
    """The answer to a voice webhook of a ConversationRelay line."""

    def __init__(self, status, body):
        self.status = status
        self.body = body
        self.url = None
        self.action = None
        self.method = None
        self.attrs = {}
        self.params = {}
        self.verbs = []
        if status == 200 and body.startswith("<?xml"):
            root = ET.fromstring(body)
            for el in root:
                self.verbs.append(el.tag)
                if el.tag == "Connect":
                    self.action = el.get("action")
                    self.method = el.get("method")
                    cr = el.find("ConversationRelay")
                    if cr is not None:
                        self.attrs = dict(cr.attrib)
                        self.url = cr.get("url")
                        for p in cr.findall("Parameter"):
                            self.params[p.get("name")] = p.get("value")


def relay_voice(base, sid, caller, to="+15005550006", route=None, **kw):
    wh = twilio.post_voice(base, sid, caller, to, route, **kw)
    return RelayWebhook(wh.status, wh.body)


def post_action(base, action, sid, handoff=None, auth_token=None, status="ended",
                signature=None, public_url=None, timeout=5):
    """POST the <Connect action> callback as Twilio does when the session
    ends.  handoff: the HandoffData text (None: absent).  Returns (status,
    body)."""
    if auth_token is None:
        auth_token = twilio.TEST_AUTH_TOKEN
    path = action.split("://", 1)[1]
    path = path[path.index("/"):]
    params = [("AccountSid", "AC" + "0" * 32), ("CallSid", sid),
              ("CallStatus", "in-progress"), ("SessionId", "VX" + "4" * 32),
              ("SessionStatus", status), ("SessionDuration", "12")]
    if handoff is not None:
        params.append(("HandoffData", handoff))
    body = urllib.parse.urlencode(params).encode()
    req = urllib.request.Request(base + path, data=body, method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    if signature is not None:
        req.add_header("X-Twilio-Signature", signature)
    elif auth_token:
        req.add_header("X-Twilio-Signature",
                       twilio.twilio_signature(auth_token, (public_url or base) + path,
                                               params))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class RelaySession(twilio.WsPeer):
    """One ConversationRelay WebSocket, as Twilio's side plays it."""

    def __init__(self, url, sid, caller="+14155550100", to="+15005550006",
                 params=None, auth_token=None, signature=None):
        self.url = url
        self.sid = sid
        self.caller = caller
        self.to = to
        self.params = params or {}
        self.auth_token = twilio.TEST_AUTH_TOKEN if auth_token is None else auth_token
        self.signature = signature     # "": none sent; None: computed
        self.ws = None
        self.received = []             # (monotonic time, message dict)
        self.close_code = None
        self.close_reason = None
        self._reader = None
        self._new = asyncio.Event()

    async def open(self):
        headers = {}
        if self.signature is None:
            headers["X-Twilio-Signature"] = twilio.twilio_signature(
                self.auth_token, wss_form(self.url))
        elif self.signature:
            headers["X-Twilio-Signature"] = self.signature
        self.ws = await websockets.connect(self.url, extra_headers=headers,
                                           max_size=2 ** 20, open_timeout=5,
                                           close_timeout=2)
        self._reader = asyncio.ensure_future(self._read())

    async def send(self, msg):
        await self.ws.send(msg if isinstance(msg, str) else json.dumps(msg))

    async def setup(self, sid=None):
        await self.send({
            "type": "setup", "sessionId": "VX" + "4" * 32,
            "accountSid": "AC" + "0" * 32, "parentCallSid": "",
            "callSid": sid or self.sid, "from": self.caller, "to": self.to,
            "forwardedFrom": "", "callType": "PSTN", "callerName": "",
            "direction": "inbound", "callStatus": "RINGING",
            "customParameters": self.params})

    async def prompt(self, text, partials=(), lang="en-US"):
        for p in partials:
            await self.send({"type": "prompt", "voicePrompt": p, "lang": lang,
                             "last": False})
        await self.send({"type": "prompt", "voicePrompt": text, "lang": lang,
                         "last": True})

    async def interrupt(self, heard, ms=1200):
        await self.send({"type": "interrupt", "utteranceUntilInterrupt": heard,
                         "durationUntilInterruptMs": ms})

    async def dtmf(self, digit):
        await self.send({"type": "dtmf", "digit": digit})

    async def error(self, description):
        await self.send({"type": "error", "description": description})

    def texts(self):
        return [m for _, m in self.received if m.get("type") == "text"]

    def of_type(self, t):
        return [m for _, m in self.received if m.get("type") == t]

    async def wait_for(self, pred, timeout=5.0):
        """Waits until pred(received) is true; returns its value or None."""
        deadline = time.monotonic() + timeout
        while True:
            v = pred(self.received)
            if v:
                return v
            left = deadline - time.monotonic()
            if left <= 0 or (self._reader is not None and self._reader.done()):
                return pred(self.received) or None
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), min(left, 0.2))
            except asyncio.TimeoutError:
                pass

    async def wait_turn(self, start=0, timeout=5.0):
        """The text tokens from received[start:] up to one with last: true:
        (tokens, index after it), or (tokens so far, None)."""
        def done(rec):
            for i in range(start, len(rec)):
                m = rec[i][1]
                if m.get("type") == "text" and m.get("last") is True:
                    return i + 1
            return None
        end = await self.wait_for(done, timeout)
        rec = self.received[start:end] if end else self.received[start:]
        return [m for _, m in rec if m.get("type") == "text"], end

    async def _on_message(self, msg):
        try:
            m = json.loads(msg)
        except ValueError:
            m = {"type": "(not json)", "raw": msg}
        self.received.append((time.monotonic(), m))
        self._new.set()

    def _on_closed(self):
        self._new.set()


async def upgrade_status(url, headers=None):
    """The HTTP status of an upgrade (101 when it opened; closed at once)."""
    try:
        ws = await websockets.connect(url, extra_headers=headers or {},
                                      open_timeout=5, close_timeout=1)
    except websockets.InvalidStatusCode as e:
        return e.status_code
    await ws.close()
    return 101
