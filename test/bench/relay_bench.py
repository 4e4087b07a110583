#!/usr/bin/python3
"""ConversationRelay benchmark: N text conversations through the real daemon,
between test/peers/crelay.py (Twilio's side) and the fake OpenAI server in its
text mode, all in this one process so one monotonic clock times both ends.

For each final prompt it measures the time the daemon adds before the first
token: (the fake's receipt of response.create - the prompt's send) + (the
token's arrival - the fake's send of the first text delta).  Both legs include
this process's own scheduling delay, so the figures are upper bounds; at a few
hundred conversations the Python peers, not the daemon, are the bottleneck.
It also reports the daemon's CPU (master and workers, /proc/<pid>/stat) per
call-minute over the measured window.

    make bench-relay-py BENCH_RELAY_PY_ARGS="--calls 100 --seconds 20"
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "peers"))
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))

import crelay  # noqa: E402
import harness  # noqa: E402
import twilio  # noqa: E402
from fake_openai import FakeOpenAI  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                f_ = f.read().rsplit(")", 1)[1].split()
            total += int(f_[11]) + int(f_[12])     # utime, stime
        except OSError:
            pass
    return total


def pct(v, q):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


async def conversation(d, n, seconds, every, lat, counts, window):
    sid = twilio.call_sid(100000 + n)
    caller = "+1415%07d" % (5000000 + n)
    wh = await asyncio.to_thread(crelay.relay_voice, d.base, sid, caller, "+15005550006",
                                 "bench")
    s = crelay.RelaySession(wh.url, sid, caller=caller)
    await s.open()
    await s.setup()
    end = 0
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        await s.prompt("What time do you open on Tuesday, number %d?" % n)
        toks, nend = await s.wait_turn(end, 10)
        if nend is None:
            counts["lost"] += 1
            break
        first = next(t for t, m in s.received[end:nend] if m.get("type") == "text")
        lat.setdefault(n, []).append((t0, first))
        counts["turns"] += 1
        end = nend
        await asyncio.sleep(max(0.0, every - (time.monotonic() - t0)))
    await s.close()


async def run(args):
    env = harness.TestEnv("relay-bench")
    lines = os.path.join(env.tmp, "lines")
    os.mkdir(lines)
    with open(os.path.join(lines, "bench.json"), "w") as f:
        json.dump({"app": "agent", "persona": "dental", "free_minutes": None,
                   "max_call_minutes": None, "sms": None, "tools": ["end_call"],
                   "transport": "conversation_relay",
                   "conversation_relay": {"welcomeGreeting": "Hello."}}, f)
    try:
        async with FakeOpenAI(mode="text", interval_ms=0, validate=False,
                              send_rate_limits=False,
                              text_replies=["We open at eight in the morning on Tuesdays."]
                              ) as srv:
            d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=lines, LOG_LEVEL="info",
                           WORKERS=args.workers, MAX_WEBSOCKET_CONNECTIONS=10000).start()
            pids = [d.proc.pid] + d.worker_pids()
            lat, counts = {}, {"turns": 0, "lost": 0}
            ramp = 2.0
            window = [time.monotonic() + ramp, time.monotonic() + ramp + args.seconds]
            tasks = []
            for n in range(args.calls):
                tasks.append(asyncio.ensure_future(conversation(
                    d, n, ramp + args.seconds + 1, args.every, lat, counts, window)))
                await asyncio.sleep(ramp / args.calls)
            await asyncio.sleep(max(0.0, window[0] - time.monotonic()))
            c0 = cpu_ticks(pids)
            await asyncio.sleep(args.seconds)
            c1 = cpu_ticks(pids)
            await asyncio.gather(*tasks, return_exceptions=True)
            # the daemon's part of each first token, from the fake's clock:
            # a connection's n-th response answers its conversation's n-th
            # prompt (the prompts name their conversation)
            added = []
            for conn in srv.accepted:
                n = None
                creates, firsts, seen = [], [], set()
                for t, ev in conn.events:
                    if ev.get("type") == "response.create":
                        creates.append(t)
                    elif n is None and ev.get("type") == "conversation.item.create":
                        txt = json.dumps(ev)
                        k = txt.find("number ")
                        if k >= 0:
                            n = int(txt[k + 7:].split("?")[0])
                for t, ev in conn.sent:
                    if (ev.get("type") == "response.output_text.delta" and
                            ev["response_id"] not in seen):
                        seen.add(ev["response_id"])
                        firsts.append(t)
                for k, (t0, first) in enumerate(lat.get(n, [])):
                    if k < len(creates) and k < len(firsts) and \
                            window[0] <= t0 <= window[1]:
                        added.append((creates[k] - t0) + (first - firsts[k]))
            e2e = [f - t for v in lat.values() for t, f in v
                   if window[0] <= t <= window[1]]
            call_min = args.calls * args.seconds / 60.0
            res = {"calls": args.calls, "seconds": args.seconds, "turns": counts["turns"],
                   "lost_turns": counts["lost"], "measured": len(added),
                   "added_p50_us": round(pct(added, 0.5) * 1e6),
                   "added_p99_us": round(pct(added, 0.99) * 1e6),
                   "e2e_p50_us": round(pct(e2e, 0.5) * 1e6),
                   "daemon_cpu_ms_per_call_min": round((c1 - c0) / TICK * 1000 / call_min, 2)}
            print(json.dumps(res))
            d.stop()
    finally:
        env.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--every", type=float, default=2.0, help="s between prompts")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
