"""The foundation: webhook, hand-off, Media Streams, shared memory, /health,
/usage-data, supervision — the real binary against a fake Twilio."""

import asyncio
import base64
import hashlib
import hmac
import os
import signal
import socket
import struct
import time

import twilio
import websockets
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from harness import expect, expect_eq, recv_until_close, timeout

SECRET = "test-secret-0123456789abcdef"


def make_token(sid, caller, route, expires, secret=SECRET):
    """The stream token, written from its description in proto/token.h."""
    key = hmac.new(secret.encode(), b"voxrelay stream token v2", hashlib.sha256).digest()
    plain = struct.pack(">Q", expires)
    for s in (sid, caller, route):
        b = s.encode()
        plain += bytes([len(b)]) + b
    nonce = os.urandom(12)
    raw = bytes([2]) + nonce + ChaCha20Poly1305(key).encrypt(nonce, plain, bytes([2]))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def minutes(d, phone):
    rows = d.usage()[1]
    return float(rows[phone]["minutes_used"]) if phone in rows else 0.0


async def open_call(d, n, caller, send_start=True):
    """Call n from caller: the voice webhook, then its Media Stream, open."""
    wh = twilio.post_voice(d.base, twilio.call_sid(n), caller)
    s = twilio.Stream(wh.stream_url, twilio.call_sid(n), twilio.stream_sid(n))
    await s.open(send_start=send_start)
    return s


def test_front_page_health_and_404(env):
    d = env.daemon().start()
    st, hdr, body = d.get("/")
    expect_eq(st, 200, "GET /")
    expect("voxrelay" in body)
    h = d.health()
    for k in ("status", "uptime_s", "active_streams", "workers", "metrics"):
        expect(k in h, "health lacks %s", k)
    expect_eq(h["status"], "ok", "status")
    expect_eq(len(h["workers"]), 2, "workers")
    for w in h["workers"]:
        for k in ("slot", "pid", "state", "generation", "active_streams",
                  "calls_total", "restarts", "last_heartbeat_ms_ago"):
            expect(k in w, "worker lacks %s", k)
        expect(w["last_heartbeat_ms_ago"] < 1000, "stale heartbeat %r", w)
    for k in ("total_calls", "active_calls", "failed_calls", "sms_sent",
              "sms_failed", "tool_calls", "api_errors"):
        expect_eq(h["metrics"][k], 0, k)
    try:
        d.get("/nope")
        expect(False, "404 expected")
    except twilio.urllib.error.HTTPError as e:
        expect_eq(e.code, 404, "unknown path")
    head, rows = d.usage()
    expect_eq(head, ["phone_number", "minutes_used", "minutes_remaining",
                     "last_call_date", "total_calls"], "usage header")
    # secrets never in a response
    expect(SECRET not in d.admin_get("/health")[2])


def test_webhook_twiml(env):
    d = env.daemon().start()
    wh = twilio.post_voice(d.base, twilio.call_sid(1), "+14155552671", route="default")
    expect_eq(wh.status, 200, "status")
    expect(wh.stream_url.startswith("ws://127.0.0.1:%d/media-stream/default/" % d.port),
           "stream url %s", wh.stream_url)
    expect("?" not in wh.stream_url, "query string in the Stream url")
    expect_eq(wh.params["callSid"], twilio.call_sid(1), "callSid parameter")
    expect_eq(wh.params["caller"], "+14155552671", "caller parameter")
    expect_eq(wh.verbs, ["Connect", "Say", "Hangup"], "verbs")
    # escaping of what the caller controls (From is checked: To is not)
    wh = twilio.post_voice(d.base, twilio.call_sid(2), "client:alice",
                           to="client:<a&\"b'>")
    expect_eq(wh.status, 200, "status")
    expect("<a&" not in wh.body and "&lt;a&amp;&quot;b&apos;&gt;" in wh.body,
           "escaping: %s", wh.body)
    expect_eq(wh.params["called"], "client:<a&\"b'>", "parameter round trip")
    # bad route, missing CallSid
    expect_eq(twilio.post_voice(d.base, twilio.call_sid(3), "+1", route="a.b").status,
              404, "bad route")
    expect_eq(twilio.post_voice(d.base, twilio.call_sid(3), "+1", route="nobody").status,
              404, "unknown persona")
    wh = twilio.post_voice(d.base, "", "+14155552671")
    expect_eq(wh.status, 400, "missing CallSid")


def test_signature_required(env):
    token = "12345"
    d = env.daemon(TWILIO_AUTH_TOKEN=token).start()
    ok = twilio.post_voice(d.base, twilio.call_sid(1), "+14155552671",
                           auth_token=token, public_url=d.base)
    expect_eq(ok.status, 200, "signed webhook")
    bad = twilio.post_voice(d.base, twilio.call_sid(2), "+14155552671",
                            signature="J9AZk7iNaXPV0fUUq/wviJgkTak=")
    expect_eq(bad.status, 403, "forged signature")
    missing = twilio.post_voice(d.base, twilio.call_sid(3), "+14155552671",
                                auth_token="")
    expect_eq(missing.status, 403, "missing signature")
    # signed, then a parameter changed in flight
    params = [("CallSid", twilio.call_sid(4)), ("From", "+14155552671")]
    sig = twilio.twilio_signature(token, d.base + "/voice", params)
    tampered = twilio.post_voice(d.base, twilio.call_sid(4), "+14155552672",
                                 signature=sig)
    expect_eq(tampered.status, 403, "tampered parameter")
    expect_eq(d.health()["counters"]["sig_rejected"], 3, "sig_rejected")


async def test_calls_across_workers_and_usage(env):
    d = env.daemon().start()
    n = 6
    streams = []
    for i in range(n):
        wh = twilio.post_voice(d.base, twilio.call_sid(100 + i), "+1555000%04d" % i)
        s = twilio.Stream(wh.stream_url, twilio.call_sid(100 + i),
                          twilio.stream_sid(100 + i), wh.params)
        await s.open()
        streams.append(s)
    t0 = time.monotonic()
    players = [asyncio.ensure_future(s.play(3.0)) for s in streams]
    await asyncio.sleep(1.5)
    h = await asyncio.to_thread(d.health)
    expect_eq(h["metrics"]["active_calls"], n, "live calls")
    per_worker = [w["live_calls"] for w in h["workers"]]
    expect(all(x > 0 for x in per_worker), "calls not spread: %r", per_worker)
    expect_eq(sum(per_worker), n, "per-worker sum")
    expect_eq(len(h["calls"]), n, "call list")
    expect(all(c["caller"] == "+*******%s" % c["caller"][-4:] for c in h["calls"]),
           "masked callers: %r", [c["caller"] for c in h["calls"]])
    # usage while live, within a second of the truth
    used = await asyncio.to_thread(minutes, d, "+15550000000")
    elapsed = time.monotonic() - t0
    expect(abs(used * 60 - elapsed) < 1.0, "live usage %.3f min vs %.3f s", used, elapsed)
    await asyncio.gather(*players)
    for s in streams:
        await s.stop()
    truth = time.monotonic() - t0
    await asyncio.sleep(0.3)
    h = await asyncio.to_thread(d.health)
    expect_eq(h["metrics"]["active_calls"], 0, "live calls after stop")
    expect_eq(h["metrics"]["total_calls"], n, "total calls")
    expect_eq(h["metrics"]["failed_calls"], 0, "failed calls")
    expect_eq(h["counters"]["frames_in"], n * 150, "frames in")
    head, rows = await asyncio.to_thread(d.usage)
    for i in range(n):
        r = rows["+1555000%04d" % i]
        expect(abs(float(r["minutes_used"]) * 60 - truth) < 1.0,
               "minutes %s vs %.2f s", r["minutes_used"], truth)
        expect_eq(r["total_calls"], "1", "total_calls")
        expect(r["last_call_date"].endswith("Z"), "ISO date")
        expect(abs(float(r["minutes_used"]) + float(r["minutes_remaining"]) - 3.0) < 1e-5,
               "remaining")


async def test_stream_token_refusals(env):
    d = env.daemon().start()
    wh = twilio.post_voice(d.base, twilio.call_sid(1), "+14155552671")
    base = "ws://127.0.0.1:%d/media-stream/default/" % d.port

    async def refused(url):
        try:
            ws = await twilio.websockets.connect(url, open_timeout=5)
            await ws.close()
            return False
        except twilio.websockets.InvalidStatusCode as e:
            return e.status_code
    now = int(time.time())
    forged = make_token(twilio.call_sid(9), "+14155552671", "default", now + 60,
                        secret="another-secret-0123456789")
    expect_eq(await refused(base + forged), 403, "forged token")
    expired = make_token(twilio.call_sid(9), "+14155552671", "default", now - 1)
    expect_eq(await refused(base + expired), 403, "expired token")
    other_route = make_token(twilio.call_sid(9), "+14155552671", "sales", now + 60)
    expect_eq(await refused(base + other_route), 403, "route swapped")
    expect_eq(await refused(base + "garbage!!"), 403, "garbage token")
    expect_eq(await refused("ws://127.0.0.1:%d/media-stream/default" % d.port), 403,
              "no token")
    # the real one works once, and only once
    s = twilio.Stream(wh.stream_url, twilio.call_sid(1), twilio.stream_sid(1))
    await s.open()
    await s.play(0.2)
    expect_eq(await refused(wh.stream_url), 403, "replayed token")
    await s.stop()
    # a valid token whose `start` names another call
    s2 = await open_call(d, 2, "+14155552671", send_start=False)
    await s2.send_start(sid=twilio.call_sid(3))
    expect(await s2.wait_closed(5), "mismatched start not closed")
    expect_eq(s2.close_code, 1008, "close code")
    h = await asyncio.to_thread(d.health)
    expect(h["counters"]["token_rejected"] >= 6, "token_rejected %r", h["counters"])
    expect_eq(h["counters"]["token_replayed"], 1, "token_replayed")
    expect_eq(h["metrics"]["total_calls"], 1, "only the real call counted")


async def test_out_of_minutes(env):
    # 3 seconds of free time, and a call must have at least 0.6 s left
    d = env.daemon(FREE_CALL_MINUTES=0.05, MIN_CALL_DURATION=0.01).start()
    caller = "+14155550001"
    s = await twilio.place_call(d.base, 1, caller, 2.5)
    wh = twilio.post_voice(d.base, twilio.call_sid(2), caller)
    expect_eq(wh.status, 200, "status")
    expect(wh.stream_url is None, "a stream was offered to a caller out of minutes")
    expect_eq(wh.verbs, ["Say", "Hangup"], "refusal verbs")
    expect("free minutes" in wh.says[0], "spoken refusal: %r", wh.says)
    h = await asyncio.to_thread(d.health)
    expect_eq(h["counters"]["refused_minutes"], 1, "refused_minutes")
    # somebody else still gets through
    wh = twilio.post_voice(d.base, twilio.call_sid(3), "+14155550002")
    expect(wh.stream_url is not None, "other caller refused")
    del s


async def test_capacity_refusal(env):
    d = env.daemon(MAX_WEBSOCKET_CONNECTIONS=2).start()
    streams = []
    for i in range(2):
        s = await open_call(d, 10 + i, "+1555100%04d" % i)
        streams.append(s)
    await asyncio.sleep(0.3)
    wh = twilio.post_voice(d.base, twilio.call_sid(20), "+15552000000")
    expect(wh.stream_url is None, "third call offered a stream")
    expect_eq(wh.verbs, ["Say", "Hangup"], "busy verbs")
    for s in streams:
        await s.stop()
    await asyncio.sleep(0.5)
    wh = twilio.post_voice(d.base, twilio.call_sid(21), "+15552000000")
    expect(wh.stream_url is not None, "capacity not given back")


async def test_kill_worker_mid_call(env):
    d = env.daemon().start()
    streams = []
    phone = {}
    for i in range(6):
        sid = twilio.call_sid(200 + i)
        phone[sid] = "+1555300%04d" % i
        wh = twilio.post_voice(d.base, sid, phone[sid])
        s = twilio.Stream(wh.stream_url, sid, twilio.stream_sid(200 + i))
        await s.open()
        streams.append(s)
    t_open = time.monotonic()
    players = {s.sid: asyncio.ensure_future(s.play(4.0)) for s in streams}
    await asyncio.sleep(1.0)
    h = await asyncio.to_thread(d.health)
    victim = h["workers"][0]
    by_sid = {c["call_sid"]: c["worker"] for c in h["calls"]}
    doomed = [s for s in streams if by_sid.get(s.sid) == victim["slot"]]
    spared = [s for s in streams if by_sid.get(s.sid) != victim["slot"]]
    expect(doomed and spared, "calls not on both workers: %r", by_sid)
    t_kill = time.monotonic()
    os.kill(victim["pid"], signal.SIGKILL)
    # within a second: counted failed, billed in the ledger, respawned
    await asyncio.sleep(1.0)
    h = await asyncio.to_thread(d.health)
    expect_eq(h["metrics"]["failed_calls"], len(doomed), "failed calls")
    w0 = [w for w in h["workers"] if w["slot"] == victim["slot"]][0]
    expect_eq(w0["restarts"], 1, "restarts")
    expect(w0["pid"] != victim["pid"] and w0["state"] == "ready", "respawned: %r", w0)
    head, rows = await asyncio.to_thread(d.usage)
    for s in doomed:
        used = float(rows[phone[s.sid]]["minutes_used"]) * 60
        truth = t_kill - t_open
        expect(abs(used - truth) < 1.0, "killed call billed %.2f s, lived %.2f s",
               used, truth)
        expect(await s.wait_closed(3), "killed call still open")
        players[s.sid].cancel()
    # the others kept relaying, without a lost frame
    frames_before = {c["call_sid"]: c["frames_in"] for c in h["calls"]}
    await asyncio.gather(*(players[s.sid] for s in spared))
    await asyncio.sleep(0.2)
    h2 = await asyncio.to_thread(d.health)
    frames_now = {c["call_sid"]: c["frames_in"] for c in h2["calls"]}
    for s in spared:
        expect(frames_now[s.sid] > frames_before.get(s.sid, 0), "spared call stalled")
        expect_eq(frames_now[s.sid], s.frames_sent, "frames of a spared call")
        expect(s.close_code is None, "spared call closed: %r", s.close_code)
        await s.stop()
    expect("lost" in d.log(), "no obituary in the log")


async def test_reload_keeps_calls(env):
    d = env.daemon(WORKERS=1).start()
    s = await open_call(d, 1, "+14155550100")
    player = asyncio.ensure_future(s.play(3.0))
    await asyncio.sleep(0.5)
    old_pid = (await asyncio.to_thread(d.health))["workers"][0]["pid"]
    # an invalid config is refused and the old one stays
    d.write_conf(FREE_CALL_MINUTES="lots")
    d.signal(signal.SIGHUP)
    await asyncio.sleep(0.5)
    h = await asyncio.to_thread(d.health)
    expect_eq(h["generation"], 1, "generation after a bad reload")
    expect("reload refused" in d.log(), "refusal not logged")
    d.write_conf(FREE_CALL_MINUTES=5)
    d.signal(signal.SIGHUP)
    await asyncio.sleep(0.8)
    h = await asyncio.to_thread(d.health)
    expect_eq(h["generation"], 2, "generation")
    states = {w["pid"]: (w["state"], w["generation"]) for w in h["workers"]}
    expect_eq(states[old_pid], ("draining", 1), "old worker")
    # a new call goes to the new generation
    wh2 = twilio.post_voice(d.base, twilio.call_sid(2), "+14155550101")
    expect_eq(wh2.params["minutesLeft"], "5.00", "new config in force")
    s2 = twilio.Stream(wh2.stream_url, twilio.call_sid(2), twilio.stream_sid(2))
    await s2.open()
    await s2.play(0.3)
    h = await asyncio.to_thread(d.health)
    gen_of = {w["slot"]: w["generation"] for w in h["workers"]}
    placed = {c["call_sid"]: gen_of[c["worker"]] for c in h["calls"]}
    expect_eq(placed, {twilio.call_sid(1): 1, twilio.call_sid(2): 2}, "placement")
    await player
    expect(s.close_code is None, "call dropped by the reload")
    await s.stop()
    await s2.stop()
    # the old worker leaves once its call is over
    d.wait_for(lambda: old_pid not in [w["pid"] for w in d.health()["workers"]], 5,
               "old worker exit")
    h = await asyncio.to_thread(d.health)
    expect_eq(h["metrics"]["failed_calls"], 0, "failed")
    expect_eq(h["metrics"]["total_calls"], 2, "total")


async def test_sigterm_drains_and_restart_keeps_ledger(env):
    d = env.daemon(DRAIN_TIMEOUT=10).start()
    caller = "+14155550200"
    s = await open_call(d, 1, caller)
    t0 = time.monotonic()
    player = asyncio.ensure_future(s.play(2.0))
    await asyncio.sleep(0.5)
    d.signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    h = await asyncio.to_thread(d.health)
    expect_eq(h["status"], "draining", "status")
    wh2 = twilio.post_voice(d.base, twilio.call_sid(2), "+14155550201")
    expect(wh2.stream_url is None, "new call accepted while draining")
    await player
    expect(s.close_code is None, "live call cut during drain")
    await s.stop()
    truth = time.monotonic() - t0
    rc = await asyncio.to_thread(d.wait_exit, 10)
    expect_eq(rc, 0, "exit code")
    with open(d.conf["USAGE_CSV_PATH"]) as f:
        saved = f.read()
    expect(caller in saved, "ledger not saved: %r", saved)
    # restart: the minutes are still there
    d.start()
    used = minutes(d, caller) * 60
    expect(abs(used - truth) < 1.0, "after restart %.2f s vs %.2f s", used, truth)


async def test_sigterm_drain_deadline_bills_and_closes(env):
    d = env.daemon(DRAIN_TIMEOUT=1).start()
    caller = "+14155550300"
    s = await open_call(d, 1, caller)
    t0 = time.monotonic()
    player = asyncio.ensure_future(s.play(6.0))
    await asyncio.sleep(0.3)
    d.signal(signal.SIGTERM)
    expect(await s.wait_closed(5), "call not closed at the deadline")
    truth = time.monotonic() - t0
    expect_eq(s.close_code, 1001, "close code")
    player.cancel()
    rc = await asyncio.to_thread(d.wait_exit, 10)
    expect_eq(rc, 0, "exit code")
    d.start()
    used = minutes(d, caller) * 60
    expect(abs(used - truth) < 1.0, "billed %.2f s vs %.2f s", used, truth)


async def test_bad_input_closes_only_that_call(env):
    d = env.daemon(WORKERS=1).start()
    good = await open_call(d, 1, "+14155550400")
    player = asyncio.ensure_future(good.play(2.0))
    cases = [
        ("not json", 1007),
        ('{"event":"media","streamSid":"MZ1","media":{"payload":"!!"}}', 1007),
        ('{"event":"media","sequenceNumber":"-1","streamSid":"MZ00000000000000000000000000000002",'
         '"media":{"payload":"AAAA","timestamp":"20"}}', 1007),
    ]
    for i, (msg, code) in enumerate(cases):
        n = 10 + i
        bad = await open_call(d, n, "+1415555%04d" % n)
        await bad.ws.send(msg)
        expect(await bad.wait_closed(3), "bad call %d not closed" % i)
        expect_eq(bad.close_code, code, "close code %d" % i)
    # media before start, a binary frame
    bad = await open_call(d, 20, "+14155550420", send_start=False)
    await bad.send_media(0)
    expect(await bad.wait_closed(3), "media before start")
    expect_eq(bad.close_code, 1008, "media before start")
    bad = await open_call(d, 21, "+14155550421")
    await bad.ws.send(b"\x00\x01")
    expect(await bad.wait_closed(3), "binary frame")
    expect_eq(bad.close_code, 1003, "binary frame")
    # an unknown event is ignored
    odd = await open_call(d, 22, "+14155550422")
    await odd.ws.send('{"event":"sparkles","streamSid":"%s"}' % twilio.stream_sid(22))
    await odd.play(0.2)
    expect(not await odd.wait_closed(0.3), "unknown event closed the call")
    await odd.stop()
    await player
    expect(good.close_code is None, "the good call was hurt")
    await good.stop()
    h = await asyncio.to_thread(d.health)
    expect_eq(h["counters"]["frames_in"], 100 + 10, "good frames all counted")
    expect(h["counters"]["unknown_events"] >= 1, "unknown events")
    pid = h["workers"][0]["pid"]
    expect_eq(h["workers"][0]["restarts"], 0, "worker restarted")
    expect(pid > 0)


def test_http_limits(env):
    d = env.daemon(MAX_HEADER_SIZE=2048, HEADER_TIMEOUT=1).start()

    def raw(data, read=True):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        s.sendall(data)
        out = recv_until_close(s) if read else b""
        s.close()
        return out
    expect(raw(b"\x16\x03\x01garbage\r\n\r\n").startswith(b"HTTP/1.1 400"), "garbage")
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n"
    expect(raw(big).startswith(b"HTTP/1.1 431"), "oversize header")
    many = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n"
    expect(raw(many).startswith(b"HTTP/1.1 431"), "too many headers")
    # pipelined: two answers, in order
    two = raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n"
              b"Connection: close\r\n\r\n")
    expect_eq(two.count(b"HTTP/1.1 200"), 2, "pipelined answers")
    expect(two.index(b"application/json") < two.index(b"text/html"), "order")
    # slow headers: 408 within the header timeout
    t0 = time.monotonic()
    out = raw(b"GET / HTTP/1.1\r\nHost: x\r\n")
    expect(out.startswith(b"HTTP/1.1 408"), "slowloris: %r" % out[:40])
    expect(time.monotonic() - t0 < 3, "slowloris held too long")
    # body too large
    body = b"POST /voice HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"
    expect(raw(body).startswith(b"HTTP/1.1 413"), "body too large")
    # the daemon is fine
    expect_eq(d.health()["status"], "ok", "status")
    expect(d.health()["counters"]["http_bad_requests"] >= 4, "bad requests counted")


def test_head_requests_and_pipelined_backpressure(env):
    d = env.daemon().start()
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    # HEAD gets the head only, so the next answer on the connection is whole
    s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = recv_until_close(s)
    s.close()
    first, rest = out.split(b"\r\n\r\n", 1)
    expect(first.startswith(b"HTTP/1.1 200") and b"application/json" in first, "HEAD")
    expect(rest.startswith(b"HTTP/1.1 200") and b"voxrelay" in rest, "answer after HEAD")
    # a client that pipelines many requests and reads slowly still gets
    # every answer, in order: the master stops reading while answers queue
    # (/health on the operator's listener: answers of a few KB each)
    s = socket.create_connection(("127.0.0.1", d.admin_port), timeout=10)
    n = 400
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * (n - 1) +
              b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    time.sleep(0.5)
    out = recv_until_close(s)
    s.close()
    expect_eq(out.count(b"HTTP/1.1 200"), n, "answers to pipelined requests")


async def _run_until_closed(s, seconds):
    """Play up to `seconds` (the daemon may end the call first), then
    close; how long the call lasted from its `start`."""
    await s.open()
    try:
        await s.play(seconds)
        await s.stop()
    except websockets.ConnectionClosed:
        await s.close()
    return time.monotonic() - s.start_at


def _stream(d, n, caller):
    wh = twilio.post_voice(d.base, twilio.call_sid(n), caller)
    expect(wh.stream_url is not None, "call %d refused: %s", n, wh.body)
    return twilio.Stream(wh.stream_url, twilio.call_sid(n),
                         twilio.stream_sid(n), wh.params)


@timeout(60)
async def test_calls_of_one_caller_share_what_is_left(env):
    """Two calls of one caller at once on one host spend what is left of
    the allowance together: each gets its share, so together they use the
    allowance and no more (before, each ran to the whole remainder it saw
    at its start).  When one hangs up early, the other gets the rest."""
    free_ms = 6000
    d = env.daemon(FREE_CALL_MINUTES=free_ms / 60000.0, MIN_CALL_DURATION=0.01,
                   WRAPUP_GRACE=1).start()
    # both run to their limits: the second starts 1.5 s into the first
    caller = "+14155550031"
    first = asyncio.ensure_future(_run_until_closed(_stream(d, 31, caller), 15))
    await asyncio.sleep(1.5)
    second = await _run_until_closed(_stream(d, 32, caller), 15)
    first = await first
    d.wait_for(lambda: minutes(d, caller) * 60000 >= first * 1000 + second * 1000 - 500,
               5, "both calls in the ledger")
    used = minutes(d, caller) * 60000
    # the allowance, each call's wrap-up (WRAPUP_GRACE=1) and the master's
    # count reaching the first call (100 ms, and its worker's tick);
    # without the sharing: 6 s + 1 s and 4.5 s + 1 s, 12.5 s
    bound = free_ms + 2 * 1000 + 1000
    expect(used <= bound, "the two calls used %d ms together (they lasted "
           "%.1f and %.1f s), the allowance %d, the bound %d", used, first,
           second, free_ms, bound)
    expect(used >= free_ms - 300, "the calls ended at %d ms together, before "
           "the allowance %d (%.1f and %.1f s)", used, free_ms, first, second)

    # the second hangs up after 1 s: the first gets the rest back
    caller = "+14155550032"
    first = asyncio.ensure_future(_run_until_closed(_stream(d, 33, caller), 15))
    await asyncio.sleep(1.0)
    second = await _run_until_closed(_stream(d, 34, caller), 1.0)
    first = await first
    # 6 s less the second's 1 s: the first reaches its limit at 5 s, then
    # has its wrap-up; left at its shared end (3.5 s) it would close after
    # that and its wrap-up (1.2 s here), near 4.7 s
    expect(first >= free_ms / 1000.0 - second - 0.1, "the first call lasted "
           "%.1f s: it did not get back what the second (%.1f s) left",
           first, second)
    d.wait_for(lambda: minutes(d, caller) * 60000 >= (first + second) * 1000 - 500,
               5, "both calls in the ledger")
    used = minutes(d, caller) * 60000
    expect(free_ms - 300 <= used <= free_ms + 1000 + 1000, "the calls used "
           "%d ms together (%.1f and %.1f s), the allowance %d", used, first,
           second, free_ms)
