"""The warm first answer (PREWARM): the model's session opened when the
webhook admits the call, on the worker that then takes the stream; ready
before Twilio's `start`, the greeting held until `start`; a stream that
never comes; a worker killed between the webhook and the upgrade; and
PREWARM=off opening at the upgrade as before.

The fake OpenAI answers its first session.update SESSION_DELAY_MS late, as
a server across the internet would, so a session opened at the upgrade
cannot be ready by `start`."""

import asyncio
import os
import signal
import time

import twilio
from fake_openai import FakeOpenAI
from harness import expect, expect_eq, timeout

NUMBER = "+15005550006"
SESSION_DELAY_MS = 300
TWILIO_GAP_S = 0.6          # webhook answered -> WebSocket upgrade


def counters(d):
    return d.health()["counters"]


async def until(pred, secs, what):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def sent_at(conn, etype):
    for t, ev in conn.sent:
        if ev.get("type") == etype:
            return t
    return None


def received_at(conn, etype):
    for t, ev in conn.events:
        if ev.get("type") == etype:
            return t
    return None


async def webhook(d, n, route="default"):
    t = time.monotonic()
    wh = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(n),
                                 "+14155557700", NUMBER, route)
    expect(wh.stream_url is not None, "no stream: %s %s" % (wh.status, wh.body))
    return wh, t


def stream_of(wh, n):
    return twilio.Stream(wh.stream_url, twilio.call_sid(n), twilio.stream_sid(n),
                         wh.params)


def worker_of_port(pids, port):
    """The worker pid holding the TCP socket whose local port is port."""
    inodes = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                for line in list(f)[1:]:
                    col = line.split()
                    if int(col[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(col[9])
        except OSError:
            pass
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return pid
    return None


@timeout(60)
async def test_prewarm_session_ready_before_start(env):
    async with FakeOpenAI(mode="echo", reply_ms=400,
                          session_delay_ms=SESSION_DELAY_MS) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), WORKERS=2).start()
        c0 = await asyncio.to_thread(counters, d)
        wh, t_hook = await webhook(d, 1)
        # Twilio has not upgraded yet: the session is being opened already
        conn = await srv.wait_connection(1, timeout=3)
        await asyncio.sleep(TWILIO_GAP_S)
        t_updated = sent_at(conn, "session.updated")
        expect(t_updated is not None, "session.updated not sent %.1f s after the "
               "webhook" % (time.monotonic() - t_hook))
        s = stream_of(wh, 1)
        await s.open()
        await until(lambda: s.first_media_at is not None, 5, "the greeting's audio")
        # the greeting was asked for at `start`, not before it: its audio
        # could not have been played
        t_greet = conn.response_requests[0]["t"] if conn.response_requests else None
        expect(t_greet is not None and t_greet >= s.start_at,
               "response.create at %s, start at %.3f" % (t_greet, s.start_at))
        expect(t_updated < s.start_at, "session.updated %.3f s after start" % (
            t_updated - s.start_at))
        to_ready = t_updated - t_hook
        to_audio = s.first_media_at - s.start_at
        print("prewarm: webhook -> session.updated %.0f ms, start -> first greeting "
              "audio %.0f ms (session.updated delayed %d ms)" % (
                  to_ready * 1000, to_audio * 1000, SESSION_DELAY_MS))
        expect(to_audio < SESSION_DELAY_MS / 1000.0,
               "first greeting audio %.0f ms after start" % (to_audio * 1000))
        expect_eq(len(srv.connections), 1, "model sessions opened")
        await s.stop()
        c1 = await asyncio.to_thread(counters, d)
        expect_eq(c1["prewarm_opened"] - c0["prewarm_opened"], 1, "prewarm_opened")
        expect_eq(c1["prewarm_used"] - c0["prewarm_used"], 1, "prewarm_used")
        expect_eq(c1["prewarm_fallback"] - c0["prewarm_fallback"], 0, "prewarm_fallback")
        h = await asyncio.to_thread(d.health)
        lat = h["latency_us"]
        expect(lat["session_ready"]["count"] >= 1, "session_ready: %s" % lat["session_ready"])
        expect(lat["greeting"]["count"] >= 1, "greeting: %s" % lat["greeting"])
        text = (await asyncio.to_thread(d.admin_get, "/metrics"))[2]
        expect("voxrelay_prewarm_used_total 1" in text, "prewarm_used in /metrics")


@timeout(60)
async def test_prewarm_off_opens_at_the_upgrade(env):
    async with FakeOpenAI(mode="echo", reply_ms=400,
                          session_delay_ms=SESSION_DELAY_MS) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), WORKERS=1, PREWARM="off").start()
        wh, t_hook = await webhook(d, 2)
        await asyncio.sleep(TWILIO_GAP_S)
        expect_eq(len(srv.connections), 0, "sessions opened before the upgrade")
        s = stream_of(wh, 2)
        await s.open()
        await until(lambda: s.first_media_at is not None, 5, "the greeting's audio")
        conn = srv.connections[0]
        to_audio = s.first_media_at - s.start_at
        print("cold: webhook -> session.updated %.0f ms, start -> first greeting "
              "audio %.0f ms (session.updated delayed %d ms)" % (
                  (sent_at(conn, "session.updated") - t_hook) * 1000, to_audio * 1000,
                  SESSION_DELAY_MS))
        expect(to_audio >= SESSION_DELAY_MS / 1000.0 * 0.9,
               "cold greeting %.0f ms after start" % (to_audio * 1000))
        await s.stop()
        c = await asyncio.to_thread(counters, d)
        expect_eq(c["prewarm_opened"], 0, "prewarm_opened")


@timeout(60)
async def test_prewarm_stream_never_comes(env):
    ttl = 5
    async with FakeOpenAI(mode="echo", session_delay_ms=SESSION_DELAY_MS) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), WORKERS=1, STREAM_TOKEN_TTL=ttl).start()
        wh, t_hook = await webhook(d, 3)
        conn = await srv.wait_connection(1, timeout=3)
        await until(lambda: sent_at(conn, "session.updated") is not None, 3,
                    "session.updated")
        # nobody upgrades: the session goes with the token
        await until(lambda: conn.closed, ttl + 4, "the session closed")
        lived = conn.t_closed - t_hook
        expect(lived <= ttl + 1.5, "session closed %.1f s after the webhook (TTL %d s)"
               % (lived, ttl))
        expect(conn.closed_by != "server", "closed by %s" % conn.closed_by)
        expect_eq(len(conn.response_requests), 0, "responses asked for")
        c = await asyncio.to_thread(counters, d)
        expect_eq(c["prewarm_opened"], 1, "prewarm_opened")
        expect_eq(c["prewarm_expired"], 1, "prewarm_expired")
        expect_eq(c["prewarm_used"], 0, "prewarm_used")
        # the late stream is refused on its expired token, as before
        s = stream_of(wh, 3)
        try:
            await s.open()
            await s.wait_closed(3)
        except Exception:
            pass
        expect(s.first_media_at is None, "a stream on an expired token was served")


@timeout(60)
async def test_prewarm_worker_killed_before_the_upgrade(env):
    async with FakeOpenAI(mode="echo", reply_ms=400,
                          session_delay_ms=SESSION_DELAY_MS) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), WORKERS=2).start()
        pids = await asyncio.to_thread(d.worker_pids)
        wh, _ = await webhook(d, 4)
        conn = await srv.wait_connection(1, timeout=3)
        await until(lambda: sent_at(conn, "session.updated") is not None, 3,
                    "session.updated")
        victim = worker_of_port(pids, conn.ws.remote_address[1])
        expect(victim is not None, "no worker holds the warm session (%s)" % pids)
        os.kill(victim, signal.SIGKILL)
        await until(lambda: conn.closed, 5, "the killed worker's session to close")
        # Twilio upgrades now: the master sends it to a live worker, cold
        s = stream_of(wh, 4)
        await s.open()
        await until(lambda: s.first_media_at is not None, 8, "the greeting's audio")
        expect_eq(len(srv.connections), 2, "sessions: the warm one, then a cold one")
        cold = srv.connections[1]
        expect(received_at(cold, "session.update") is not None, "cold session.update")
        await s.play(0.5)
        await s.stop()
        expect(s.close_code in (None, 1000, 1005), "call closed %s %s" % (
            s.close_code, s.close_reason))
        c = await asyncio.to_thread(counters, d)
        expect_eq(c["prewarm_fallback"], 1, "prewarm_fallback")
        expect_eq(c["prewarm_used"], 0, "prewarm_used")


@timeout(60)
async def test_prewarm_refused_session_opens_cold(env):
    async with FakeOpenAI(mode="echo", reply_ms=400) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), WORKERS=1).start()
        srv.next_config(reject_status=503)     # the session opened at the webhook
        wh, _ = await webhook(d, 5)
        await until(lambda: len(srv.connections) >= 1 and srv.connections[0].closed,
                    3, "the early session refused")
        await asyncio.sleep(0.2)
        s = stream_of(wh, 5)
        await s.open()
        await until(lambda: s.first_media_at is not None, 5, "the greeting's audio")
        expect_eq(len(srv.accepted), 1, "sessions accepted: the stream's own")
        await s.stop()
        c = await asyncio.to_thread(counters, d)
        expect_eq(c["prewarm_opened"], 1, "prewarm_opened")
        expect_eq(c["prewarm_fallback"], 1, "prewarm_fallback")
        expect_eq(c["prewarm_used"], 0, "prewarm_used")
        expect_eq(c["failed_calls"], 0, "failed_calls")


@timeout(60)
async def test_prewarm_waiting_sessions_count_against_the_streams_cap(env):
    async with FakeOpenAI(mode="echo", reply_ms=400) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), WORKERS=1, MAX_WEBSOCKET_CONNECTIONS=2).start()
        whs = [(await webhook(d, 10 + i))[0] for i in range(3)]
        await asyncio.sleep(0.8)
        # two sessions wait for their streams; the third call is admitted
        # (no stream is in use) but opens its session at its upgrade
        expect_eq(len(srv.connections), 2, "sessions opened at the webhooks")
        c = await asyncio.to_thread(counters, d)
        expect_eq(c["prewarm_opened"], 2, "prewarm_opened")
        s = stream_of(whs[0], 10)
        await s.open()
        await until(lambda: s.first_media_at is not None, 5, "the greeting's audio")
        await s.stop()
        expect_eq(len(srv.connections), 2, "sessions after the first stream")
