#!/usr/bin/python3
"""The warm first answer, timed: short calls on a line with a greeting,
each upgraded a while after its webhook as Twilio does, against the
in-process fake OpenAI (fake_openai.py) answering its first
session.update late, as a server across the internet would.  For each
call: the webhook's answer to session.updated (the fake's send time), and
Twilio's `start` to the first media of the greeting (the caller's
receive time), in ms.  Used by `make demo` (demo.py) and `make bench`
(bench.py), with PREWARM off and on, on the same machine in one run."""

import asyncio
import time

import twilio

NUMBER = "+15005550006"


async def timed_calls(base, srv, n0, calls, route, session_delay_ms, gap_ms,
                      auth_token=None):
    """calls calls, one after the other: [(ready_ms, greeting_ms)], or
    None when one was not answered."""
    out = []
    for i in range(calls):
        srv.next_config(session_delay_ms=session_delay_ms, reply_ms=600)
        before = len(srv.connections)
        sid = twilio.call_sid(n0 + i)
        t_hook = time.monotonic()
        kw = {"auth_token": auth_token} if auth_token else {}
        wh = await asyncio.to_thread(twilio.post_voice, base, sid,
                                     "+1415555%04d" % (3000 + n0 + i), NUMBER,
                                     route, **kw)
        if wh.stream_url is None:
            return None
        await asyncio.sleep(gap_ms / 1000.0)
        s = twilio.Stream(wh.stream_url, sid, twilio.stream_sid(n0 + i), wh.params)
        await s.open()
        for _ in range(500):
            if s.first_media_at is not None:
                break
            await asyncio.sleep(0.01)
        conn = srv.connections[before] if len(srv.connections) > before else None
        upd = [t for t, ev in (conn.sent if conn else [])
               if ev.get("type") == "session.updated"]
        await s.stop()
        if s.first_media_at is None or not upd:
            return None
        out.append(((upd[0] - t_hook) * 1000, (s.first_media_at - s.start_at) * 1000))
        await asyncio.sleep(0.2)
    return out


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


def line(name, v):
    """One printed line of figures for a list from timed_calls()."""
    r = [x[0] for x in v]
    g = [x[1] for x in v]
    return ("%s  webhook -> session.updated p50 %4.0f ms, max %4.0f; start -> first "
            "greeting audio p50 %4.0f ms, max %4.0f" % (
                name, pct(r, 0.5), max(r), pct(g, 0.5), max(g)))
