"""Hostile input: every kind of bad input from a peer gets a clear refusal
(an HTTP status, or a WebSocket close code with a reason), moves its counter,
leaves one log line naming the problem (not one per frame), and touches
nothing else: a good call on the same worker (WORKERS=1) keeps relaying
without a lost frame, and the worker is neither restarted nor replaced.

Where each item of the list is proven (tests of this file unless named):

HTTP (master)
  garbage                           test_foundation.test_http_limits;
                                    test_http_refusals (Content-Length with
                                    Transfer-Encoding, two Content-Lengths,
                                    an overflowing one, a NUL in a header, a
                                    bad chunk size: 400)
  oversize headers                  test_foundation.test_http_limits
  oversize request line             test_http_refusals
  too many headers                  test_foundation.test_http_limits
  slow headers (slowloris)          test_foundation.test_http_limits (one
                                    stall); test_http_refusals (bytes
                                    trickled, a trickled body)
  pipelined requests                test_foundation.test_http_limits (in
                                    order); test_http_refusals (pipelined,
                                    then half-closed; a pipelined flood that
                                    never reads is cut off)
  half-closed requests              test_http_refusals
  body larger than allowed          test_foundation.test_http_limits
                                    (Content-Length); test_http_refusals
                                    (chunked)
  forged or missing signature       test_foundation.test_signature_required
WebSocket
  upgrade to an unknown path        test_http_refusals (404)
  forged, expired, replayed token   test_foundation.test_stream_token_refusals
  oversize frames                   test_websocket_frames (1009)
  oversize messages (fragments)     test_websocket_frames (1009)
  fragmented messages               test_websocket_frames (accepted, with a
                                    ping between the fragments; a
                                    continuation without a start and a new
                                    message inside one are 1002)
  invalid UTF-8 in text frames      test_websocket_frames (1007)
  binary frames                     test_foundation.test_bad_input_closes_only_that_call
  unmasked client frames            test_websocket_frames (1002)
  ping floods                       test_websocket_frames (1008 "ping flood",
                                    ws_ping_floods; a few pings are answered)
  reserved bits, unknown opcodes,
  long or fragmented control frames test_websocket_frames (1002)
Media Streams
  invalid JSON                      test_foundation.test_bad_input_closes_only_that_call
  wrong or missing streamSid        test_media_streams_messages (1008 after
                                    start, 1007 when missing)
  media before start                test_foundation.test_bad_input_closes_only_that_call
  invalid base64                    test_foundation.test_bad_input_closes_only_that_call
                                    (and a misplaced pad here)
  hostile timestamp/sequenceNumber  test_media_streams_timestamps (malformed:
                                    1007; a jump fills at most 10 s, a step
                                    back fills nothing, a swing back and
                                    forth fills once)
  oversize media payload, audio
  faster than real time             test_caller_limits.test_caller_audio_size_and_rate
                                    (1008, media_oversize, media_too_fast)
  unknown events                    test_foundation.test_bad_input_closes_only_that_call;
                                    test_media_streams_messages (a flood of
                                    them: counted, logged once)
Upstream (OpenAI)
  malformed events                  test_openai.test_upstream_closes_mid_call
                                    (not JSON: call ended); test_upstream_events
                                    (known types with wrong field types:
                                    ignored, api_errors, logged once)
  giant deltas                      test_upstream_events (8 MiB > the 4 MiB
                                    cap: that call ends, api_errors)
  untrusted certificate, wrong name test_openai.test_upstream_bad_certificates
  non-101 handshake answers         test_openai.test_upstream_refused_and_401,
                                    test_openai.test_upstream_http_errors

Limits that protect the host (the same table is in README.md, "Limits"):

  key                        default  fires                     counter            test
  MAX_WEBSOCKET_CONNECTIONS  1000     webhook: busy TwiML;      refused_capacity   test_foundation.test_capacity_refusal;
                                      upgrade: 503                                 test_http_refusals (upgrade)
  MAX_HTTP_CONNECTIONS       4096     the longest idle closed;  idle_closed        test_limits.test_idle_keepalive_closed_under_pressure
                                      with none idle, accepting accept_capped      test_http_refusals
                                      pauses until one closes
  MAX_CONNECTIONS_PER_IP     256      closed at accept (429     per_ip_capped      test_limits.test_connections_per_address
                                      behind TRUSTED_PROXIES)
  ANSWER_BUDGET              16 MiB   /usage-data 503           answer_budget_refused test_limits.test_usage_answer_budget
  MAX_HEADER_SIZE            8192     431 (414: request line)   http_bad_requests  test_foundation.test_http_limits;
                                                                                   test_http_refusals
  MAX_HEADERS                64       431                       http_bad_requests  test_foundation.test_http_limits
  MAX_BODY_SIZE              65536    413                       http_bad_requests  test_foundation.test_http_limits;
                                                                                   test_http_refusals (chunked)
  HEADER_TIMEOUT             10 s     408, then close           http_timeouts      test_foundation.test_http_limits;
                                                                                   test_http_refusals
  KEEPALIVE_TIMEOUT          30 s     idle connection closed    http_timeouts      test_limits.test_idle_keepalive_closed_under_pressure
  WS_MAX_MESSAGE             65536    close 1009                ws_protocol_errors test_websocket_frames
  WS_START_TIMEOUT           10 s     close 1008                calls_timed_out    test_silent_streams_time_out
  WS_IDLE_TIMEOUT            20 s     close 1001                calls_timed_out    test_silent_streams_time_out
  MAX_OUTBOUND_BUFFER        2 MiB    call dropped              outbuf_overflows   test_slow_twilio_peer_is_cut_off
  HEARTBEAT_TIMEOUT          3000 ms  worker killed, replaced   workers_killed     test_process.test_stopped_worker_is_replaced
  OPENAI_CONNECT_TIMEOUT     5 s      call closed 1011          api_errors         test_upstream_connect_timeout
  OPENAI_HANDSHAKE_TIMEOUT   10 s     call closed 1011          api_errors         test_upstream_events
  OPENAI_PONG_TIMEOUT        10 s     call closed 1011          api_errors         test_openai.test_upstream_stall_is_detected
  DRAIN_TIMEOUT              30 s     calls closed 1001         calls_cut          test_foundation.test_sigterm_drain_deadline_bills_and_closes
  RELOAD_TIMEOUT             3600 s   calls closed 1001         calls_cut          test_reload_deadline_cuts_calls
  (ping flood: 20 a second)           close 1008                ws_ping_floods     test_websocket_frames
  MAX_MEDIA_PAYLOAD          4096     close 1008                media_oversize     test_caller_limits.test_caller_audio_size_and_rate
  (audio 5 s ahead of time)           close 1008                media_too_fast     test_caller_limits.test_caller_audio_size_and_rate
  LEDGER_CAPACITY            65536    webhook: busy TwiML;      refused_ledger_full test_caller_limits.test_full_ledger_refuses_new_callers
                                      no ledger entry: 1013
"""

import asyncio
import base64
import hashlib
import json
import os
import select
import signal
import socket
import struct
import time
import urllib.parse

import twilio
from fake_openai import FakeOpenAI
from harness import PERSONAS, expect, expect_eq, timeout

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


# ---------------------------------------------------------------------------
# a WebSocket client that sends what python3-websockets never would


def ws_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None):
    """One frame: fin, rsv bits, opcode, mask (a random key), payload.
    length: the length the header claims, when it is not the payload's."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        key = os.urandom(4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


class RawStream:
    """A Media Stream over a plain socket: the upgrade done by hand, frames
    written with ws_frame, the server's frames parsed here."""

    def __init__(self, url, sid, ssid, rcvbuf=None, timeout=5):
        self.sid, self.ssid, self.seq = sid, ssid, 0
        u = urllib.parse.urlparse(url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((u.hostname, u.port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n"
                           % (u.path, u.hostname, u.port, key)).encode())
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in buf and time.monotonic() < deadline:
            b = self.sock.recv(4096)
            if not b:
                break
            buf += b
        head, _, self.buf = buf.partition(b"\r\n\r\n")
        self.head = head.decode(errors="replace")
        self.status = int(self.head.split(" ")[1]) if self.head.startswith("HTTP/") else 0
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            expect(want in self.head, "bad Sec-WebSocket-Accept: %r", self.head)

    def send(self, data):
        self.sock.sendall(data)

    def text(self, obj, **kw):
        self.send(ws_frame(OP_TEXT, obj if isinstance(obj, (str, bytes)) else json.dumps(obj),
                           **kw))

    def next_seq(self):
        self.seq += 1
        return str(self.seq)

    def start(self):
        self.text({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        self.text(start_msg(self.sid, self.ssid, self.next_seq()))

    def media(self, i, **kw):
        self.text(media_msg(self.ssid, i, seq=self.next_seq(), **kw))

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from the daemon")
            self.sock.settimeout(left)
            b = self.sock.recv(65536)
            if not b:
                raise EOFError
            self.buf += b

    def read_frame(self, timeout=5):
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        expect(not b1 & 0x80, "the daemon masked a frame")
        n, off = b1 & 0x7f, 2
        if n == 126:
            self._need(4, deadline)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10, deadline)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n, deadline)
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0f, payload

    def until_close(self, timeout=5):
        """(code, reason, frames before the close); code None when the
        connection ended without a close frame."""
        deadline = time.monotonic() + timeout
        frames = []
        for _ in range(100000):
            try:
                fin, op, p = self.read_frame(max(0.01, deadline - time.monotonic()))
            except (EOFError, ConnectionError):
                return None, None, frames
            if op == OP_CLOSE:
                code = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else 1005
                return code, p[2:].decode("utf-8"), frames
            frames.append((op, p))
        return None, None, frames

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def start_msg(sid, ssid, seq="1"):
    return {"event": "start", "sequenceNumber": seq, "streamSid": ssid,
            "start": {"accountSid": "AC" + "0" * 32, "streamSid": ssid, "callSid": sid,
                      "tracks": ["inbound"], "customParameters": {},
                      "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                      "channels": 1}}}


def media_msg(ssid, i, seq=None, ts=None, payload=None):
    m = {"event": "media", "streamSid": ssid,
         "media": {"track": "inbound", "chunk": str(i + 1),
                   "timestamp": str(i * 20) if ts is None else ts,
                   "payload": twilio.tone_frame(i) if payload is None else payload}}
    if seq is not None:
        m["sequenceNumber"] = seq
    return m


# ---------------------------------------------------------------------------
# what every case checks


def personas_without_greeting(env):
    """default.json without its greeting, so an echo model sends back exactly
    the caller's frames."""
    d = os.path.join(env.tmp, "personas")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(PERSONAS, "default.json")) as f:
        p = json.load(f)
    p.pop("greeting", None)
    with open(os.path.join(d, "default.json"), "w") as f:
        json.dump(p, f)
    return d


class GoodCall:
    """A well-behaved call on the worker under attack, playing at Twilio's
    20 ms cadence until finish(): every frame must be counted by the daemon
    and come back from the echo model, bit-exact, and the call must stay
    open."""

    def __init__(self, d, n):
        self.d, self.n = d, n

    async def start(self):
        sid = twilio.call_sid(self.n)
        wh = await asyncio.to_thread(twilio.post_voice, self.d.base, sid,
                                     "+1415550%04d" % self.n)
        expect(wh.stream_url is not None, "good call refused: %s", wh.body)
        self.s = twilio.Stream(wh.stream_url, sid, twilio.stream_sid(self.n), wh.params)
        await self.s.open()
        self._stop = asyncio.Event()
        self._task = asyncio.ensure_future(self._play())
        return self

    async def _play(self):
        t0, i = time.monotonic(), 0
        while not self._stop.is_set() and i < 50 * 300:
            await self.s.send_media(i)
            i += 1
            delay = t0 + i * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    def _counted(self):
        for c in self.d.health()["calls"]:
            if c["call_sid"] == self.s.sid:
                return c["frames_in"] == self.s.frames_sent
        return False

    async def finish(self):
        self._stop.set()
        await self._task
        expect(self.s.frames_sent > 0, "the good call sent nothing")
        await asyncio.to_thread(self.d.wait_for, self._counted, 5,
                                "every frame of the good call counted")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if len(self.echoed()) >= self.s.frames_sent:
                break
            await asyncio.sleep(0.05)
        expect_eq(self.echoed(), [self.s.frame(i) for i in range(self.s.frames_sent)],
                  "the good call's audio, echoed")
        expect(self.s.close_code is None, "the good call was closed: %r %r",
               self.s.close_code, self.s.close_reason)
        await self.s.stop()
        expect_eq(self.s.close_code, 1000, "the good call's own close")

    def echoed(self):
        return [m["media"]["payload"] for m in self.s.received if m.get("event") == "media"]


def worker_of(d):
    w = d.health()["workers"]
    expect_eq(len(w), 1, "workers")
    return w[0]["pid"], w[0]["restarts"]


def expect_same_worker(d, before):
    pid, restarts = worker_of(d)
    expect_eq(restarts, 0, "worker restarts")
    expect_eq(pid, before[0], "worker pid")
    expect("exited on signal" not in d.log(), "a worker died")


def counters(d):
    return d.health()["counters"]


def lines(d, *needles):
    return [ln for ln in d.log().splitlines() if all(n in ln for n in needles)]


def expect_one_line(d, *needles):
    """One line names the problem; the call's own summary line at its end
    ("call ended: ..." or "stream closed before start: ...") may repeat the
    reason and is not counted."""
    got = [ln for ln in lines(d, *needles)
           if ": call ended: " not in ln and ": stream closed before start: " not in ln]
    expect_eq(len(got), 1, "log lines with %r" % (needles,))


def moved(before, after, name, n=None):
    delta = after[name] - before[name]
    if n is None:
        expect(delta > 0, "%s did not move", name)
    else:
        expect_eq(delta, n, "%s moved by" % name)
    return delta


def webhook(d, n):
    wh = twilio.post_voice(d.base, twilio.call_sid(n), "+1415551%04d" % n)
    expect(wh.stream_url is not None, "call %d refused: %s", n, wh.body)
    return wh


def raw_call(d, n, start=True, **kw):
    wh = webhook(d, n)
    rs = RawStream(wh.stream_url, twilio.call_sid(n), twilio.stream_sid(n), **kw)
    expect_eq(rs.status, 101, "upgrade of call %d" % n)
    if start:
        rs.start()
    return rs


def wait_live(d, sid, live=True, timeout=3):
    def check():
        on = any(c["call_sid"] == sid for c in d.health()["calls"])
        return on == live
    d.wait_for(check, timeout, "call %s %s" % (sid, "live" if live else "ended"))


# ---------------------------------------------------------------------------
# HTTP


def http_raw(port, data, read=True, shut=False, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    peer = "127.0.0.1:%d" % s.getsockname()[1]
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    out = b""
    if read:
        try:
            while len(out) < 1 << 24:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except (socket.timeout, ConnectionError):
            pass
    s.close()
    return out, peer


@timeout(60)
async def test_http_refusals(env):
    d = env.daemon(WORKERS=1, MAX_HEADER_SIZE=2048, HEADER_TIMEOUT=1, KEEPALIVE_TIMEOUT=2,
                   MAX_HTTP_CONNECTIONS=8, MAX_WEBSOCKET_CONNECTIONS=2, MAX_BODY_SIZE=4096,
                   PERSONAS_DIR=personas_without_greeting(env)).start()
    before_w = await asyncio.to_thread(worker_of, d)
    good = await GoodCall(d, 1).start()
    port = d.port
    c0 = await asyncio.to_thread(counters, d)

    # an oversize request line
    out, peer = await asyncio.to_thread(
        http_raw, port, b"GET /" + b"a" * 4000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    expect(out.startswith(b"HTTP/1.1 414"), "oversize request line: %r", out[:40])
    expect_one_line(d, peer, "request refused with 414: request target over MAX_HEADER_SIZE")

    # what a smuggler or a broken client sends: 400 with llhttp's reason
    for data, why in [
            (b"POST /voice HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "Transfer-Encoding"),
            (b"POST /voice HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
             b"Content-Length: 6\r\n\r\nabcdef", "Duplicate Content-Length"),
            (b"POST /voice HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 24 +
             b"\r\n\r\n", "Content-Length overflow"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", "header value"),
            (b"POST /voice HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"zz\r\n", "chunk size")]:
        out, peer = await asyncio.to_thread(http_raw, port, data)
        expect(out.startswith(b"HTTP/1.1 400"), "%s: %r" % (why, out[:40]))
        expect_one_line(d, peer, "request refused with 400", why)

    # slowloris, a byte at a time: the clock does not restart with each byte
    def trickle(data, every):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        peer = "127.0.0.1:%d" % s.getsockname()[1]
        t0 = time.monotonic()
        out = b""
        try:
            for b in data:
                s.sendall(bytes([b]))
                # stop sending as soon as the daemon answers
                if select.select([s], [], [], every)[0] or time.monotonic() - t0 > 4:
                    break
            s.settimeout(3)
            while True:
                x = s.recv(4096)
                if not x:
                    break
                out += x
        except (ConnectionError, socket.timeout):
            pass
        s.close()
        return out, time.monotonic() - t0, peer
    out, took, peer = await asyncio.to_thread(
        trickle, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 100, 0.1)
    expect(out.startswith(b"HTTP/1.1 408"), "trickled headers: %r", out[:40])
    expect(took < 3.5, "trickled headers held the connection %.1f s" % took)
    expect_one_line(d, peer, "HEADER_TIMEOUT")
    # the headers on time, the body trickled: the same clock
    out, took, peer = await asyncio.to_thread(
        trickle, b"POST /voice HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n" +
        b"b" * 200, 0.1)
    expect(out.startswith(b"HTTP/1.1 408"), "trickled body: %r", out[:40])
    expect(took < 3.5, "trickled body held the connection %.1f s" % took)

    # pipelined, then half-closed: every request answered, in order, then
    # EOF (on the operator's listener, which has three kinds of answer)
    out, _ = await asyncio.to_thread(
        http_raw, d.admin_port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /dashboard HTTP/1.1\r\nHost: x\r\n\r\nGET /usage-data HTTP/1.1\r\n"
        b"Host: x\r\n\r\n", shut=True)
    expect_eq(out.count(b"HTTP/1.1 200"), 3, "answers to a half-closed pipeline")
    expect(out.index(b"application/json") < out.index(b"text/html") < out.index(b"text/csv"),
           "pipelined answers out of order")
    # half of a request, then half-closed: nothing to answer, the connection goes
    out, _ = await asyncio.to_thread(http_raw, port, b"GET /health HTTP/1.1\r\nHo", shut=True)
    expect_eq(out, b"", "answer to half a request")

    # a pipelined flood from a client that never reads is cut off
    def flood():
        s = socket.create_connection(("127.0.0.1", d.admin_port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 100
        sent = 0
        try:
            for _ in range(60):
                s.sendall(req)
                sent += 100
        except (ConnectionError, socket.timeout):
            pass
        time.sleep(0.5)
        got = b""
        try:
            s.settimeout(3)
            while len(got) < 1 << 26:
                b = s.recv(1 << 16)
                if not b:
                    break
                got += b
        except (ConnectionError, socket.timeout):
            pass
        s.close()
        return sent, got.count(b"HTTP/1.1 200")
    sent, answered = await asyncio.to_thread(flood)
    expect(answered < sent, "a client that never reads got all %d answers" % sent)

    # a chunked body over MAX_BODY_SIZE
    chunk = b"1000\r\n" + b"x" * 4096 + b"\r\n"
    out, peer = await asyncio.to_thread(
        http_raw, port, b"POST /voice HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
        chunk * 3 + b"0\r\n\r\n")
    expect(out.startswith(b"HTTP/1.1 413"), "chunked body: %r", out[:40])
    expect_one_line(d, peer, "request refused with 413: body over MAX_BODY_SIZE")

    # a WebSocket upgrade anywhere but a media stream
    out, peer = await asyncio.to_thread(
        http_raw, port, b"GET /health HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n")
    expect(out.startswith(b"HTTP/1.1 404"), "upgrade to /health: %r", out[:40])
    expect_one_line(d, peer, "upgrade refused with 404")
    c1 = await asyncio.to_thread(counters, d)
    moved(c0, c1, "http_bad_requests", 8)
    expect(c1["http_timeouts"] - c0["http_timeouts"] >= 2, "http_timeouts")

    # MAX_WEBSOCKET_CONNECTIONS holds at the upgrade too: two tokens handed
    # out while one stream (the good call) was up, both redeemed
    wa = await asyncio.to_thread(webhook, d, 30)
    wb = await asyncio.to_thread(webhook, d, 31)
    a = await asyncio.to_thread(RawStream, wa.stream_url, twilio.call_sid(30),
                                twilio.stream_sid(30))
    expect_eq(a.status, 101, "upgrade under the cap")
    b = await asyncio.to_thread(RawStream, wb.stream_url, twilio.call_sid(31),
                                twilio.stream_sid(31))
    expect_eq(b.status, 503, "upgrade over MAX_WEBSOCKET_CONNECTIONS")
    b.close()
    a.close()
    c2 = await asyncio.to_thread(counters, d)
    moved(c1, c2, "refused_capacity", 1)
    expect_one_line(d, "upgrade refused with 503")

    # MAX_HTTP_CONNECTIONS: accepting pauses at the cap and resumes when one
    # closes.  Connections in the middle of a request are not idle, so none
    # is closed to make room (test_limits: idle ones are); HEADER_TIMEOUT
    # ends them
    def cap():
        busy = [socket.create_connection(("127.0.0.1", port), timeout=3) for _ in range(8)]
        for s in busy:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.2)
        extra = socket.create_connection(("127.0.0.1", port), timeout=3)
        extra.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        extra.settimeout(0.4)
        try:
            early = extra.recv(100)
        except socket.timeout:
            early = None
        t0 = time.monotonic()
        busy.pop().close()
        extra.settimeout(3)
        late = extra.recv(100)
        waited = time.monotonic() - t0
        extra.close()
        # the others are answered 408 by the header timer
        ends = []
        for s in busy:
            s.settimeout(4)
            try:
                ends.append(s.recv(100)[:12])
            except (ConnectionError, socket.timeout):
                ends.append(None)
            s.close()
        return early, late, waited, ends
    early, late, waited, ends = await asyncio.to_thread(cap)
    expect(early is None, "answered over MAX_HTTP_CONNECTIONS: %r", early)
    expect(late.startswith(b"HTTP/1.1 200"), "not answered after a close: %r", late)
    expect(waited < 1.5, "accepting resumed after %.2f s" % waited)
    expect_eq(ends, [b"HTTP/1.1 408"] * 7, "busy connections ended by HEADER_TIMEOUT")
    c3 = await asyncio.to_thread(counters, d)
    expect(c3["accept_capped"] - c2["accept_capped"] >= 1, "accept_capped")
    expect(c3["http_timeouts"] - c2["http_timeouts"] >= 7, "header timeouts")
    expect_one_line(d, "MAX_HTTP_CONNECTIONS cap")

    await good.finish()
    expect_same_worker(d, before_w)
    expect_eq(d.health()["status"], "ok", "status")


# ---------------------------------------------------------------------------
# WebSocket framing


@timeout(60)
async def test_websocket_frames(env):
    d = env.daemon(WORKERS=1, WS_MAX_MESSAGE=16384,
                   PERSONAS_DIR=personas_without_greeting(env)).start()
    before_w = await asyncio.to_thread(worker_of, d)
    good = await GoodCall(d, 1).start()
    big = 16385
    pad = json.dumps(media_msg(twilio.stream_sid(0), 0))  # a valid message's size
    cases = [
        # (what is sent after start, close code, reason)
        ("unmasked", lambda ss: ws_frame(OP_TEXT, pad, mask=False),
         1002, "unmasked client frame"),
        # fifty bad frames at once: still one log line and one count
        ("bad UTF-8", lambda ss: ws_frame(OP_TEXT, b'{"event":"\xc3\x28"}') * 50,
         1007, "text message is not UTF-8"),
        ("oversize frame", lambda ss: ws_frame(OP_TEXT, b"x" * 200, length=1 << 30)[:14 + 200],
         1009, "message too big"),
        ("oversize message", lambda ss: ws_frame(OP_TEXT, b" " * 9000, fin=False) +
         ws_frame(OP_CONT, b" " * 9000, fin=False) + ws_frame(OP_CONT, b"{}"),
         1009, "message too big"),
        ("continuation first", lambda ss: ws_frame(OP_CONT, pad),
         1002, "continuation without a message"),
        ("message inside a message", lambda ss: ws_frame(OP_TEXT, pad[:10], fin=False) +
         ws_frame(OP_TEXT, pad), 1002, "new message inside a fragmented one"),
        ("reserved bits", lambda ss: ws_frame(OP_TEXT, pad, rsv=4),
         1002, "reserved bits set"),
        ("unknown opcode", lambda ss: ws_frame(3, pad), 1002, "unknown opcode"),
        ("control frame over 125", lambda ss: ws_frame(OP_PING, b"p" * 126),
         1002, "malformed frame"),
        ("fragmented control frame", lambda ss: ws_frame(OP_PING, b"p", fin=False),
         1002, "malformed frame"),
        ("ping flood", lambda ss: ws_frame(OP_PING, b"ping") * 200, 1008, "ping flood"),
    ]
    c0 = await asyncio.to_thread(counters, d)

    def run(n, name, data, code, reason):
        rs = raw_call(d, n)
        rs.media(0)
        wait_live(d, rs.sid)
        rs.send(data)
        got, why, frames = rs.until_close(5)
        rs.close()
        expect_eq((got, why), (code, reason), name)
        if name == "ping flood":
            # pings read in one go are answered before the count is looked at
            pongs = [p for op, p in frames if op == OP_PONG]
            expect(all(p == b"ping" for p in pongs) and len(pongs) <= 200, "pongs")
            expect_one_line(d, rs.sid, "ping flood from twilio")
        else:
            expect_one_line(d, rs.sid, "websocket error from twilio: " + reason)
        wait_live(d, rs.sid, live=False)
        expect(len(lines(d, rs.sid, reason)) <= 2, "%s logged more than once" % name)
    for i, (name, mk, code, reason) in enumerate(cases):
        await asyncio.to_thread(run, 10 + i, name, mk(None), code, reason)
    c1 = await asyncio.to_thread(counters, d)
    moved(c0, c1, "ws_protocol_errors", len(cases) - 1)
    moved(c0, c1, "ws_ping_floods", 1)
    moved(c0, c1, "failed_calls", len(cases))

    # what is allowed: a few pings are answered with their payload, and a
    # message in three fragments with a ping between them is a message
    def allowed():
        rs = raw_call(d, 40, start=False)
        rs.text({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        for n, msg in enumerate([start_msg(rs.sid, rs.ssid, "1"),
                                 media_msg(rs.ssid, 0, seq="2"),
                                 media_msg(rs.ssid, 1, seq="3")]):
            t = json.dumps(msg).encode()
            third = len(t) // 3
            rs.send(ws_frame(OP_TEXT, t[:third], fin=False) +
                    ws_frame(OP_PING, b"in-between-%d" % n) +
                    ws_frame(OP_CONT, t[third:2 * third], fin=False) +
                    ws_frame(OP_CONT, t[2 * third:]))
        for k in range(5):
            rs.send(ws_frame(OP_PING, b"keepalive-%d" % k))
        seen = {"pongs": [], "media": 0}
        deadline = time.monotonic() + 5
        while (len(seen["pongs"]) < 8 or seen["media"] < 2) and time.monotonic() < deadline:
            fin, op, p = rs.read_frame(max(0.01, deadline - time.monotonic()))
            if op == OP_PONG:
                seen["pongs"].append(p)
            elif op == OP_TEXT and json.loads(p).get("event") == "media":
                seen["media"] += 1
        expect_eq(sorted(seen["pongs"]), sorted([b"in-between-%d" % n for n in range(3)] +
                                                [b"keepalive-%d" % k for k in range(5)]),
                  "pongs")
        expect_eq(seen["media"], 2, "fragmented media echoed")
        d.wait_for(lambda: any(c["call_sid"] == rs.sid and c["frames_in"] == 2
                               for c in d.health()["calls"]), 3, "fragmented media counted")
        rs.text({"event": "stop", "sequenceNumber": "4", "streamSid": rs.ssid,
                 "stop": {"accountSid": "AC" + "0" * 32, "callSid": rs.sid}})
        code, why, _ = rs.until_close(5)
        rs.close()
        expect_eq((code, why), (1000, "stop"), "close after stop")
    c1 = await asyncio.to_thread(counters, d)
    await asyncio.to_thread(allowed)
    c2 = await asyncio.to_thread(counters, d)
    moved(c1, c2, "ws_protocol_errors", 0)
    moved(c1, c2, "failed_calls", 0)

    await good.finish()
    expect_same_worker(d, before_w)


# ---------------------------------------------------------------------------
# Media Streams messages


@timeout(60)
async def test_media_streams_messages(env):
    d = env.daemon(WORKERS=1, PERSONAS_DIR=personas_without_greeting(env)).start()
    before_w = await asyncio.to_thread(worker_of, d)
    good = await GoodCall(d, 1).start()
    other = twilio.stream_sid(999)
    cases = [
        # (name, messages after start, close code, reason)
        ("media for another stream", lambda ss: [media_msg(other, 1)],
         1008, "message for another stream"),
        ("mark for another stream",
         lambda ss: [{"event": "mark", "streamSid": other, "mark": {"name": "x"}}],
         1008, "message for another stream"),
        ("media without streamSid",
         lambda ss: [{k: v for k, v in media_msg(ss, 1).items() if k != "streamSid"}],
         1007, "missing or mistyped field"),
        ("a malformed streamSid", lambda ss: [media_msg("MZ;rm -rf", 1)],
         1007, "malformed SID"),
        ("a second start", lambda ss: [start_msg(twilio.call_sid(0), ss)],
         1008, "second start message"),
        ("a pad inside the payload", lambda ss: [media_msg(ss, 1, payload="AA==AAAA")],
         1007, "payload is not base64"),
    ]
    c0 = await asyncio.to_thread(counters, d)

    def run(n, name, msgs, code, reason):
        rs = raw_call(d, n)
        rs.media(0)
        wait_live(d, rs.sid)
        for m in msgs(rs.ssid):
            rs.text(m)
        got, why, _ = rs.until_close(5)
        rs.close()
        expect_eq((got, why), (code, reason), name)
        expect_one_line(d, rs.sid, "bad message from twilio: " + reason)
        wait_live(d, rs.sid, live=False)
    for i, (name, msgs, code, reason) in enumerate(cases):
        await asyncio.to_thread(run, 10 + i, name, msgs, code, reason)
    c1 = await asyncio.to_thread(counters, d)
    moved(c0, c1, "bad_messages", len(cases))
    moved(c0, c1, "failed_calls", len(cases))

    # a flood of unknown events: ignored, counted each, logged once
    def unknown():
        rs = raw_call(d, 30)
        for i in range(40):
            rs.text({"event": "sparkles-%d" % i, "streamSid": rs.ssid})
            rs.media(i)
        d.wait_for(lambda: counters(d)["unknown_events"] - c1["unknown_events"] >= 40, 5,
                   "unknown events counted")
        expect_one_line(d, rs.sid, "ignoring twilio event")
        rs.text({"event": "stop", "streamSid": rs.ssid})
        code, why, frames = rs.until_close(5)
        rs.close()
        expect_eq((code, why), (1000, "stop"), "unknown events closed the call")
    await asyncio.to_thread(unknown)
    c2 = await asyncio.to_thread(counters, d)
    moved(c1, c2, "unknown_events", 40)
    moved(c1, c2, "failed_calls", 0)

    await good.finish()
    expect_same_worker(d, before_w)


@timeout(60)
async def test_media_streams_timestamps(env):
    d = env.daemon(WORKERS=1, PERSONAS_DIR=personas_without_greeting(env)).start()
    before_w = await asyncio.to_thread(worker_of, d)
    good = await GoodCall(d, 1).start()
    malformed = [
        ("a negative timestamp", {"ts": -5}),
        ("a signed timestamp", {"ts": "-5"}),
        ("a timestamp that is no number", {"ts": "12a"}),
        ("a 20-digit timestamp", {"ts": "9" * 20}),
        ("a fractional timestamp", {"ts": 20.5}),
        ("a sequenceNumber that is no number", {"seq": "abc"}),
        ("a 20-digit sequenceNumber", {"seq": "1" * 20}),
    ]
    c0 = await asyncio.to_thread(counters, d)

    def bad(n, name, kw):
        rs = raw_call(d, n)
        rs.media(0)
        wait_live(d, rs.sid)
        m = media_msg(rs.ssid, 1, seq=kw.get("seq", "9"), ts=kw.get("ts"))
        rs.text(m)
        got, why, _ = rs.until_close(5)
        rs.close()
        expect_eq((got, why), (1007, "bad decimal counter"), name)
        expect_one_line(d, rs.sid, "bad message from twilio: bad decimal counter")
    for i, (name, kw) in enumerate(malformed):
        await asyncio.to_thread(bad, 10 + i, name, kw)
    c1 = await asyncio.to_thread(counters, d)
    moved(c0, c1, "bad_messages", len(malformed))
    moved(c0, c1, "silence_fill_ms", 0)

    # odd but well-formed values: the call goes on
    def odd(n, stamps, seqs):
        rs = raw_call(d, n)
        for i, (ts, seq) in enumerate(zip(stamps, seqs)):
            rs.text(media_msg(rs.ssid, i, seq=seq, ts=ts))
        d.wait_for(lambda: any(c["call_sid"] == rs.sid and c["frames_in"] == len(stamps)
                               for c in d.health()["calls"]), 5, "frames of call %d" % n)
        rs.text({"event": "stop", "streamSid": rs.ssid})
        code, why, _ = rs.until_close(5)
        rs.close()
        expect_eq((code, why), (1000, "stop"), "odd timestamps closed call %d" % n)
    huge = str(2 ** 63 - 1000)
    # a jump forward fills at most 10 s, however far it goes
    await asyncio.to_thread(odd, 30, ["0", "20", huge, "40", "60"], ["1", "2", "3", "4", "5"])
    c2 = await asyncio.to_thread(counters, d)
    fill = moved(c1, c2, "silence_fill_ms")
    expect(fill <= 10000, "one jump filled %d ms" % fill)
    # a step back fills nothing; sequence numbers that go back are ignored
    await asyncio.to_thread(odd, 31, ["0", "20", "40", "0", "20", "40"],
                            ["1", "2", "3", "2", "1", huge])
    c3 = await asyncio.to_thread(counters, d)
    moved(c2, c3, "silence_fill_ms", 0)
    # back and forth ten times: the silence is owed once, not ten times
    t0 = time.monotonic()
    await asyncio.to_thread(odd, 32, ["0", "5000000"] * 10, [str(i + 1) for i in range(20)])
    c4 = await asyncio.to_thread(counters, d)
    fill = moved(c3, c4, "silence_fill_ms")
    expect(fill <= 10000 + (time.monotonic() - t0) * 1000,
           "a swinging timestamp filled %d ms of silence" % fill)
    moved(c1, c4, "failed_calls", 0)
    moved(c1, c4, "bad_messages", 0)

    await good.finish()
    expect_same_worker(d, before_w)


# ---------------------------------------------------------------------------
# the slow peer and the time-outs


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


@timeout(60)
async def test_slow_twilio_peer_is_cut_off(env):
    """A Twilio peer that stops reading while the model talks: the worker
    buffers at most MAX_OUTBOUND_BUFFER for it, then drops that call."""
    async with FakeOpenAI(mode="echo") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), WORKERS=1, MAX_OUTBOUND_BUFFER=65536,
                       PERSONAS_DIR=personas_without_greeting(env)).start()
        before_w = await asyncio.to_thread(worker_of, d)
        good = await GoodCall(d, 1).start()
        await srv.wait_connection(1)
        # the next session answers the caller's first frames with ten
        # minutes of audio (4.8 MB of mu-law, more than the kernel's socket
        # buffers on loopback hold), as fast as it can
        srv.next_config(mode="scripted", reply_audio=b"\x7f" * 8000 * 600, after_script="idle",
                        script=[{"wait_event": "input_audio_buffer.append", "count": 3},
                                {"reply": True, "chunk_ms": 1000, "interval_ms": 1,
                                 "timeout_ms": 30000}])
        rss0 = vm_rss_kb(before_w[0])
        c0 = await asyncio.to_thread(counters, d)

        def slow():
            rs = raw_call(d, 20, rcvbuf=4096)
            for i in range(5):
                rs.media(i)
            return rs
        rs = await asyncio.to_thread(slow)
        await asyncio.to_thread(d.wait_for, lambda: counters(d)["outbuf_overflows"] > 0, 20,
                                "the slow peer's call dropped")
        await asyncio.to_thread(wait_live, d, rs.sid, False, 5)
        rss1 = vm_rss_kb(before_w[0])
        expect(rss1 - rss0 < 32 * 1024, "the worker grew by %d kB" % (rss1 - rss0))
        c1 = await asyncio.to_thread(counters, d)
        moved(c0, c1, "outbuf_overflows", 1)
        expect_one_line(d, rs.sid, "MAX_OUTBOUND_BUFFER")
        # what it did get ends without the rest of the reply
        got = await asyncio.to_thread(drain_socket, rs.sock)
        rs.close()
        expect(0 < got < 8000 * 600, "the slow peer got %d bytes" % got)
        await good.finish()
        expect_same_worker(d, before_w)


def drain_socket(sock, limit=1 << 26, timeout=5):
    got = 0
    sock.settimeout(timeout)
    try:
        while got < limit:
            b = sock.recv(1 << 16)
            if not b:
                break
            got += len(b)
    except (ConnectionError, socket.timeout):
        pass
    return got


@timeout(60)
async def test_silent_streams_time_out(env):
    d = env.daemon(WORKERS=1, WS_START_TIMEOUT=1, WS_IDLE_TIMEOUT=2,
                   PERSONAS_DIR=personas_without_greeting(env)).start()
    before_w = await asyncio.to_thread(worker_of, d)
    good = await GoodCall(d, 1).start()
    c0 = await asyncio.to_thread(counters, d)

    def never_starts():
        rs = raw_call(d, 10, start=False)
        t0 = time.monotonic()
        code, why, _ = rs.until_close(5)
        took = time.monotonic() - t0
        rs.close()
        expect_eq((code, why), (1008, "no start message from twilio"), "no start")
        expect(0.8 < took < 3.0, "closed %.1f s after the upgrade" % took)
        expect_one_line(d, rs.sid, "WS_START_TIMEOUT")

    def goes_silent():
        rs = raw_call(d, 11)
        rs.media(0)
        t0 = time.monotonic()
        code, why, frames = rs.until_close(6)
        took = time.monotonic() - t0
        rs.close()
        expect_eq((code, why), (1001, "twilio went silent"), "silent")
        expect(1.8 < took < 4.0, "closed %.1f s after the last message" % took)
        expect_one_line(d, rs.sid, "WS_IDLE_TIMEOUT")
    await asyncio.gather(asyncio.to_thread(never_starts), asyncio.to_thread(goes_silent))
    c1 = await asyncio.to_thread(counters, d)
    moved(c0, c1, "calls_timed_out", 2)
    await good.finish()
    expect_same_worker(d, before_w)


@timeout(60)
async def test_reload_deadline_cuts_calls(env):
    """RELOAD_TIMEOUT (and DRAIN_TIMEOUT, the same path) closes the calls
    still up at its deadline, counted in calls_cut."""
    d = env.daemon(WORKERS=1, RELOAD_TIMEOUT=1).start()
    wh = await asyncio.to_thread(webhook, d, 1)
    s = twilio.Stream(wh.stream_url, twilio.call_sid(1), twilio.stream_sid(1))
    await s.open()
    player = asyncio.ensure_future(s.play(8))
    await asyncio.sleep(0.5)
    d.signal(signal.SIGHUP)
    expect(await s.wait_closed(5), "the call outlived RELOAD_TIMEOUT")
    player.cancel()
    expect_eq((s.close_code, s.close_reason), (1001, "daemon shutting down"), "close")
    h = await asyncio.to_thread(d.health)
    expect_eq(h["counters"]["calls_cut"], 1, "calls_cut")
    expect_eq(h["metrics"]["failed_calls"], 0, "a cut call is not a failed one")
    expect_one_line(d, "drain deadline reached")


# ---------------------------------------------------------------------------
# upstream


class Proxy:
    """A TCP proxy in front of the fake Realtime server.  Each connection
    takes the next mode from `modes` ("pass" when empty): "pass" relays,
    "hold" reads and never answers."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.modes = []
        self.tasks = set()

    async def start(self):
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _conn(self, reader, writer):
        mode = self.modes.pop(0) if self.modes else "pass"
        try:
            if mode == "hold":
                while await reader.read(65536):
                    pass
                return
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)

            async def pipe(r, w):
                try:
                    while True:
                        b = await r.read(65536)
                        if not b:
                            break
                        w.write(b)
                        await w.drain()
                finally:
                    w.close()
            await asyncio.gather(pipe(reader, uw), pipe(ur, writer), return_exceptions=True)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()


@timeout(60)
async def test_upstream_events(env):
    async with FakeOpenAI(mode="echo") as srv:
        px = await Proxy(srv.port).start()
        try:
            url = "ws://127.0.0.1:%d/v1/realtime?model=gpt-realtime" % px.port
            d = env.daemon(OPENAI_URL=url, WORKERS=1, OPENAI_HANDSHAKE_TIMEOUT=1,
                           PERSONAS_DIR=personas_without_greeting(env)).start()
            before_w = await asyncio.to_thread(worker_of, d)
            good = await GoodCall(d, 1).start()
            await srv.wait_connection(1)
            c0 = await asyncio.to_thread(counters, d)

            # known events with wrong field types: skipped, counted, logged once
            wrong = [{"type": "response.output_audio.delta", "response_id": "resp_1",
                      "item_id": "item_1", "output_index": 0, "content_index": 0,
                      "delta": 42}] * 30
            wrong.append({"type": "error", "error": "text"})
            srv.next_config(mode="scripted", after_script="echo", script=[
                {"wait_event": "input_audio_buffer.append", "count": 3}, {"send": wrong}])
            wh = await asyncio.to_thread(webhook, d, 10)
            s = twilio.Stream(wh.stream_url, twilio.call_sid(10), twilio.stream_sid(10),
                              wh.params)
            await s.open()
            await s.play(1.5)
            expect(s.close_code is None, "wrong field types ended the call")
            await s.stop()
            expect_eq(s.close_code, 1000, "close")
            c1 = await asyncio.to_thread(counters, d)
            moved(c0, c1, "api_errors", 31)
            moved(c0, c1, "failed_calls", 0)
            expect_one_line(d, s.sid, "ignoring a malformed")

            # one delta of 8 MiB (the cap on an upstream message is 4 MiB)
            giant = base64.b64encode(b"\x7f" * (6 << 20)).decode()
            srv.next_config(mode="scripted", after_script="idle", script=[
                {"wait_event": "input_audio_buffer.append", "count": 3},
                {"send": {"type": "response.output_audio.delta", "response_id": "resp_2",
                          "item_id": "item_2", "output_index": 0, "content_index": 0,
                          "delta": giant}}])
            s = await failing(d, 11)
            c2 = await asyncio.to_thread(counters, d)
            moved(c1, c2, "api_errors", 1)
            expect_one_line(d, s.sid, "websocket error from", "message too big")

            # a server that takes the connection and never answers the upgrade
            px.modes.append("hold")
            t0 = time.monotonic()
            s = await failing(d, 12)
            expect(time.monotonic() - t0 < 3.5, "OPENAI_HANDSHAKE_TIMEOUT not kept")
            c3 = await asyncio.to_thread(counters, d)
            moved(c2, c3, "api_errors", 1)
            expect_one_line(d, s.sid, "upgrade timed out after 1 s")

            await good.finish()
            expect_same_worker(d, before_w)
        finally:
            await px.stop()


async def failing(d, n, within=5):
    wh = await asyncio.to_thread(webhook, d, n)
    s = twilio.Stream(wh.stream_url, twilio.call_sid(n), twilio.stream_sid(n), wh.params)
    await s.open()
    player = asyncio.ensure_future(s.play(within + 2))
    closed = await s.wait_closed(within)
    player.cancel()
    expect(closed, "call %d not closed within %d s" % (n, within))
    expect_eq((s.close_code, s.close_reason), (1011, "upstream failure"), "close of %d" % n)
    return s


@timeout(30)
async def test_upstream_connect_timeout(env):
    """A server whose accept queue is full drops our SYNs: the connect
    stalls until OPENAI_CONNECT_TIMEOUT."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", port))
            fillers.append(f)
        time.sleep(0.2)
        d = env.daemon(WORKERS=1, OPENAI_CONNECT_TIMEOUT=1,
                       OPENAI_URL="ws://127.0.0.1:%d/v1/realtime?model=gpt-realtime" % port)
        d.start()
        before_w = await asyncio.to_thread(worker_of, d)
        t0 = time.monotonic()
        s = await failing(d, 1)
        took = time.monotonic() - t0
        expect(0.8 < took < 3.5, "closed after %.1f s" % took)
        h = await asyncio.to_thread(d.health)
        expect_eq(h["metrics"]["api_errors"], 1, "api_errors")
        expect_one_line(d, s.sid, "cannot connect to 127.0.0.1 port %d" % port)
        expect_same_worker(d, before_w)
    finally:
        for f in fillers:
            f.close()
        lst.close()
