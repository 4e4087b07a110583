#!/usr/bin/python3
"""A simulated call through the whole pipeline on loopback: the real daemon,
Twilio's webhook, a Media Stream from a fake Twilio that plays audio with
the real 20 ms cadence, then what /health and /usage-data say."""

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import harness  # noqa: E402
import twilio  # noqa: E402


async def call(d, seconds):
    caller = "+14155552671"
    t0 = time.monotonic()
    wh = twilio.post_voice(d.base, twilio.call_sid(1), caller, route="demo")
    print("webhook:  %d in %.1f ms, TwiML verbs %s" % (
        wh.status, (time.monotonic() - t0) * 1000, wh.verbs))
    print("stream:   %s" % wh.stream_url[:72] + "...")
    s = twilio.Stream(wh.stream_url, twilio.call_sid(1), twilio.stream_sid(1),
                      wh.params)
    t1 = time.monotonic()
    await s.open()
    print("upgrade:  101 in %.1f ms" % ((time.monotonic() - t1) * 1000))
    player = asyncio.ensure_future(s.play(seconds))
    await asyncio.sleep(seconds / 2)
    h = await asyncio.to_thread(d.health)
    c = h["calls"][0]
    print("live:     caller %s on worker %d, %.1f s, %d frames in" % (
        c["caller"], c["worker"], c["duration_s"], c["frames_in"]))
    await player
    await s.stop()
    await asyncio.sleep(0.3)
    h = await asyncio.to_thread(d.health)
    print("after:    total_calls=%d active_calls=%d failed_calls=%d frames_in=%d" % (
        h["metrics"]["total_calls"], h["metrics"]["active_calls"],
        h["metrics"]["failed_calls"], h["counters"]["frames_in"]))
    print("latency:  hand-off p50 %d us" % h["latency_us"]["handoff"]["p50_us"])
    print("usage:")
    print(d.get("/usage-data")[2].rstrip())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=harness.BINARY)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    harness.BINARY = os.path.abspath(args.binary)
    tmp = tempfile.mkdtemp(prefix="voxrelay-demo-")
    d = harness.Daemon(tmp, LOG_LEVEL="info")
    try:
        d.start()
        print("daemon:   pid %d on %s, %d workers" % (
            d.proc.pid, d.base, len(d.health()["workers"])))
        asyncio.run(call(d, args.seconds))
    finally:
        d.stop()
        print("log:")
        print(d.log().rstrip())
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
