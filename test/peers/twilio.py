"""A fake Twilio for voxrelay's tests: the voice webhook as Twilio sends it
(form-encoded, signed with X-Twilio-Signature) and a bidirectional Media
Stream client built on Debian's python3-websockets, an implementation of
RFC 6455 we did not write (it masks every frame it sends, as a client must).

Only the standard library and python3-websockets are used."""

import asyncio
import base64
import hashlib
import hmac
import json
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import websockets


# The auth token the test daemon (harness.Daemon) is configured with, and the
# one post_voice() signs with unless told otherwise: signatures are on by
# default, as on a fresh install.
TEST_AUTH_TOKEN = "test-auth-token-0123456789abcdef"


def twilio_signature(auth_token, url, params=None):
    """HMAC-SHA1 over the URL and the sorted name+value pairs (protocols.md 5.1)."""
    s = url
    if params:
        for name in sorted({k for k, _ in params}):
            for v in sorted(v for k, v in params if k == name):
                s += name + v
    mac = hmac.new(auth_token.encode(), s.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def call_sid(n):
    return "CA%032x" % n


def stream_sid(n):
    return "MZ%032x" % n


class Webhook:
    """The answer to one voice webhook."""

    def __init__(self, status, body):
        self.status = status
        self.body = body
        self.stream_url = None
        self.params = {}
        self.verbs = []
        if status == 200 and body.startswith("<?xml"):
            root = ET.fromstring(body)
            for el in root:
                self.verbs.append(el.tag)
                if el.tag == "Connect":
                    st = el.find("Stream")
                    if st is None:      # a ConversationRelay line (crelay.py)
                        continue
                    self.stream_url = st.get("url")
                    for p in st.findall("Parameter"):
                        self.params[p.get("name")] = p.get("value")

    @property
    def says(self):
        root = ET.fromstring(self.body)
        return [el.text for el in root if el.tag == "Say"]


def post_voice(base, sid, caller, to="+15005550006", route=None, auth_token=None,
               public_url=None, extra=None, signature=None, timeout=5, query=None):
    """POST the voice webhook, signed with auth_token (None: TEST_AUTH_TOKEN;
    "": unsigned) over public_url (default: base) + the path (and ?query), or
    with the given signature header."""
    if auth_token is None:
        auth_token = TEST_AUTH_TOKEN
    path = "/voice" + ("/" + route if route else "") + ("?" + query if query else "")
    params = [("AccountSid", "AC" + "0" * 32), ("ApiVersion", "2010-04-01"),
              ("CallSid", sid), ("CallStatus", "ringing"), ("Direction", "inbound"),
              ("From", caller), ("To", to), ("Caller", caller), ("Called", to)]
    if extra:
        params += extra
    body = urllib.parse.urlencode(params).encode()
    req = urllib.request.Request(base + path, data=body, method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    if signature is not None:
        req.add_header("X-Twilio-Signature", signature)
    elif auth_token:
        req.add_header("X-Twilio-Signature",
                       twilio_signature(auth_token, (public_url or base) + path, params))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Webhook(r.status, r.read().decode())
    except urllib.error.HTTPError as e:
        return Webhook(e.code, e.read().decode())


def post_dial_action(action, sid, status, duration=None, auth_token=None, timeout=5):
    """POST a <Dial action> URL as Twilio does when the dialled leg ends:
    DialCallStatus, and DialCallDuration (seconds) when given; signed over
    the URL as given.  Returns (status, body)."""
    if auth_token is None:
        auth_token = TEST_AUTH_TOKEN
    params = [("AccountSid", "AC" + "0" * 32), ("CallSid", sid),
              ("CallStatus", "in-progress"), ("DialCallSid", "CA" + "7" * 32),
              ("DialCallStatus", status)]
    if duration is not None:
        params.append(("DialCallDuration", str(duration)))
    req = urllib.request.Request(action, data=urllib.parse.urlencode(params).encode(),
                                 method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    if auth_token:
        req.add_header("X-Twilio-Signature", twilio_signature(auth_token, action, params))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


SILENCE = base64.b64encode(b"\xff" * 160).decode()


def tone_frame(n):
    """160 bytes of recognisable, frame-numbered audio."""
    b = bytes(((n * 7 + i) % 256) for i in range(160))
    return base64.b64encode(b).decode()


class WsPeer:
    """What the fake Twilio's WebSocket clients (Stream here, RelaySession
    in crelay.py) share: a reader task that hands each message to
    _on_message() and notes how the connection closed, close() and
    wait_closed().  A subclass sets self.ws and self._reader in open()."""

    async def _on_message(self, msg):
        raise NotImplementedError

    def _on_closed(self):
        pass

    async def _read(self):
        try:
            async for msg in self.ws:
                await self._on_message(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            self._on_closed()

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), 3)
        except Exception:
            pass
        if self._reader:
            try:
                await asyncio.wait_for(self._reader, 3)
            except Exception:
                pass

    async def wait_closed(self, timeout):
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        except asyncio.TimeoutError:
            return False
        return True


class Stream(WsPeer):
    """One Media Stream, as Twilio plays it: connected, start, a media frame
    every 20 ms with Twilio's string counters, marks echoed, stop, close."""

    def __init__(self, url, sid, ssid, params=None, frame=None):
        self.url = url
        self.sid = sid
        self.ssid = ssid
        self.params = params or {}
        self.frame = frame or tone_frame
        self.seq = 0
        self.ws = None
        self.received = []
        self.marks_echoed = 0
        self.close_code = None
        self.close_reason = None
        self.frames_sent = 0
        self.mark_times = []        # monotonic time of each echo
        self.closed_at = None
        self.start_at = None        # monotonic time `start` was sent
        self.first_media_at = None  # ... and the first media came back
        self._reader = None

    def _next_seq(self):
        self.seq += 1
        return str(self.seq)

    async def open(self, send_start=True):
        self.ws = await websockets.connect(self.url, max_size=2 ** 20,
                                           open_timeout=5, close_timeout=2)
        self._reader = asyncio.ensure_future(self._read())
        await self.ws.send(json.dumps({"event": "connected", "protocol": "Call",
                                       "version": "1.0.0"}))
        if send_start:
            await self.send_start()

    async def send_start(self, sid=None):
        self.start_at = time.monotonic()
        await self.ws.send(json.dumps({
            "event": "start", "sequenceNumber": self._next_seq(),
            "start": {"accountSid": "AC" + "0" * 32, "streamSid": self.ssid,
                      "callSid": sid or self.sid, "tracks": ["inbound"],
                      "customParameters": self.params,
                      "mediaFormat": {"encoding": "audio/x-mulaw",
                                      "sampleRate": 8000, "channels": 1}},
            "streamSid": self.ssid}))

    async def send_media(self, n, ts=None):
        await self.ws.send(json.dumps({
            "event": "media", "sequenceNumber": self._next_seq(),
            "media": {"track": "inbound", "chunk": str(n + 1),
                      "timestamp": str(ts if ts is not None else n * 20),
                      "payload": self.frame(n)},
            "streamSid": self.ssid}))
        self.frames_sent += 1

    async def send_dtmf(self, digit):
        """A key press, as Twilio reports it; digit is sent as given."""
        await self.ws.send(json.dumps({
            "event": "dtmf", "sequenceNumber": self._next_seq(),
            "dtmf": {"track": "inbound_track", "digit": digit},
            "streamSid": self.ssid}))

    async def play(self, seconds, start_frame=0):
        """Send frames with the real 20 ms cadence for `seconds`."""
        t0 = time.monotonic()
        n = start_frame
        end = start_frame + int(seconds * 50)
        while n < end:
            await self.send_media(n)
            n += 1
            delay = t0 + (n - start_frame) * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        return n

    async def stop(self):
        await self.ws.send(json.dumps({
            "event": "stop", "sequenceNumber": self._next_seq(),
            "stop": {"accountSid": "AC" + "0" * 32, "callSid": self.sid},
            "streamSid": self.ssid}))
        await self.close()

    async def _on_message(self, msg):
        m = json.loads(msg)
        self.received.append(m)
        if m.get("event") == "media" and self.first_media_at is None:
            self.first_media_at = time.monotonic()
        if m.get("event") == "mark":
            self.marks_echoed += 1
            self.mark_times.append(time.monotonic())
            await self.ws.send(json.dumps({
                "event": "mark", "sequenceNumber": self._next_seq(),
                "streamSid": self.ssid, "mark": m.get("mark", {})}))

    def _on_closed(self):
        self.closed_at = time.monotonic()


async def place_call(base, n, caller, seconds, route=None, **kw):
    """Webhook, then a stream for `seconds`, then stop.  Returns the Stream."""
    wh = post_voice(base, call_sid(n), caller, route=route, **kw)
    if wh.stream_url is None:
        raise AssertionError("no stream offered: %s %s" % (wh.status, wh.body))
    s = Stream(wh.stream_url, call_sid(n), stream_sid(n), wh.params)
    await s.open()
    await s.play(seconds)
    await s.stop()
    return s
