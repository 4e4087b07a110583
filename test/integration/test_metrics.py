"""/metrics: the figures of /health in the Prometheus text format, checked
against /health and, where Debian's prometheus package is installed, by
`promtool check metrics`."""

import asyncio
import math
import os
import re
import signal
import subprocess
import time

import twilio
from harness import expect, expect_eq, timeout

PROMTOOL = "/usr/bin/promtool"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HISTOGRAMS = {
    "relay_in": "relay_in_latency_seconds",
    "relay_out": "relay_out_latency_seconds",
    "response": "response_latency_seconds",
    "barge_in": "barge_in_latency_seconds",
    "handoff": "handoff_latency_seconds",
}

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Exposition:
    """A parsed text exposition: samples by (name, labels), HELP and TYPE
    by family."""

    def __init__(self, text):
        self.samples = {}
        self.help = {}
        self.type = {}
        self.order = []
        for line in text.split("\n"):
            if not line:
                continue
            if line.startswith("# HELP "):
                name, _, text_ = line[7:].partition(" ")
                expect(name not in self.help, "HELP twice for %s", name)
                self.help[name] = text_
                continue
            if line.startswith("# TYPE "):
                name, _, typ = line[7:].partition(" ")
                expect(name not in self.type, "TYPE twice for %s", name)
                self.type[name] = typ
                continue
            expect(not line.startswith("#"), "unexpected comment %r", line)
            m = SAMPLE.match(line)
            expect(m is not None, "malformed sample line %r", line)
            labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
            key = (m.group(1), labels)
            expect(key not in self.samples, "duplicate series %r", line)
            self.samples[key] = float(m.group(3))
            self.order.append(key)

    def get(self, name, **labels):
        key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
        expect(key in self.samples, "no series %s%r", name, labels)
        return self.samples[key]

    def series(self, name):
        return [(dict(lab), v) for (n, lab), v in self.samples.items() if n == name]


def metric_name(counter):
    """The exposed name of a counter of shm/counters.h."""
    if counter == "refused_minutes":
        return "voxrelay_refused_quota_total", 1
    if counter.endswith("_ms"):
        return "voxrelay_%s_seconds_total" % counter[:-3], 1000
    return "voxrelay_%s_total" % counter, 1


def promtool_check(text):
    """promtool's verdict on an exposition, or None without promtool."""
    if not os.path.exists(PROMTOOL):
        return None
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return p.returncode, p.stdout.decode(errors="replace")


def scrape(d):
    st, hdr, body = d.admin_get("/metrics")
    expect_eq(st, 200, "GET /metrics")
    expect_eq(hdr["Content-Type"], CONTENT_TYPE, "Content-Type")
    return body, Exposition(body)


@timeout(90)
async def test_metrics_match_health(env):
    d = env.daemon(WS_IDLE_TIMEOUT=120).start()
    # two calls that end, and one held open and silent
    await asyncio.gather(twilio.place_call(d.base, 1, "+15550100001", 1.0),
                         twilio.place_call(d.base, 2, "+15550100002", 1.0))
    wh = twilio.post_voice(d.base, twilio.call_sid(3), "+15550100003")
    live = twilio.Stream(wh.stream_url, twilio.call_sid(3), twilio.stream_sid(3),
                         wh.params)
    await live.open()
    await live.play(0.2)
    try:
        # quiet: the echoed audio and its marks have come back
        await asyncio.to_thread(
            d.wait_for, lambda: (lambda h: h["metrics"]["active_calls"] == 1 and
                                 h["counters"]["frames_in"] == 110 and h)(d.health()),
            10, "one live call, every frame counted")
        await asyncio.sleep(0.5)
        h1 = await asyncio.to_thread(d.health)
        body, m = await asyncio.to_thread(scrape, d)
        h2 = await asyncio.to_thread(d.health)

        # every counter of /health, with its HELP and TYPE
        for name, v1 in h1["counters"].items():
            exposed, scale = metric_name(name)
            expect_eq(m.type.get(exposed), "counter", "TYPE of %s" % exposed)
            expect(m.help.get(exposed), "no HELP for %s", exposed)
            v = m.get(exposed) * scale
            v2 = h2["counters"][name]
            expect(v1 <= v <= v2, "%s = %r, /health said %r then %r", exposed, v, v1, v2)
        for name in ("total_calls", "failed_calls", "frames_in", "voice_requests",
                     "api_errors", "token_rejected", "workers_died"):
            expect_eq(h1["counters"][name], h2["counters"][name], "%s moved" % name)
        expect_eq(m.get("voxrelay_total_calls_total"), 3, "total calls")
        expect_eq(m.get("voxrelay_frames_in_total"), 110, "frames in")
        expect_eq(m.get("voxrelay_failed_calls_total"), 0, "failed calls")
        expect(m.get("voxrelay_http_requests_total") > h1["counters"]["http_requests"],
               "the scrape itself is an HTTP request")

        # gauges
        for g in ("active_calls", "active_streams", "max_streams", "http_connections",
                  "uptime_seconds", "start_time_seconds", "generation",
                  "ledger_callers", "ledger_capacity", "ledger_saved",
                  "today_calls", "today_call_seconds", "status", "build_info"):
            expect_eq(m.type.get("voxrelay_" + g), "gauge", "TYPE of %s" % g)
            expect(m.help.get("voxrelay_" + g), "no HELP for %s", g)
        expect_eq(m.get("voxrelay_active_calls"), 1, "active calls")
        expect_eq(m.get("voxrelay_active_streams"), h1["active_streams"], "streams")
        expect_eq(m.get("voxrelay_max_streams"), h1["max_streams"], "max streams")
        expect_eq(m.get("voxrelay_generation"), 1, "generation")
        expect_eq(m.get("voxrelay_build_info", version=h1["version"]), 1, "build info")
        for st in ("ok", "degraded", "draining"):
            expect_eq(m.get("voxrelay_status", status=st), 1 if st == h1["status"] else 0,
                      "status %s" % st)
        expect(h1["uptime_s"] <= m.get("voxrelay_uptime_seconds") <= h2["uptime_s"] + 1,
               "uptime %r vs %r", m.get("voxrelay_uptime_seconds"), h1["uptime_s"])
        expect(abs(m.get("voxrelay_start_time_seconds") + m.get("voxrelay_uptime_seconds") -
                   time.time()) < 5, "start time + uptime is now")
        expect_eq(m.get("voxrelay_ledger_callers"), h1["ledger"]["callers"], "ledger callers")
        # two folded, and the live call's caller: its webhook took an entry
        expect_eq(m.get("voxrelay_ledger_callers"), 3, "callers in the ledger")
        expect_eq(m.get("voxrelay_ledger_capacity"), h1["ledger"]["capacity"], "capacity")

        # today: three calls started today, two ended and one live
        expect_eq(h1["metrics"]["calls_today"], 3, "calls_today in /health")
        expect_eq(m.get("voxrelay_today_calls"), 3, "today_calls")
        secs = m.get("voxrelay_today_call_seconds")
        lo, hi = h1["metrics"]["minutes_today"] * 60, h2["metrics"]["minutes_today"] * 60
        expect(lo - 0.001 <= secs <= hi + 0.001, "today %.3f s, /health %.3f..%.3f", secs, lo, hi)
        expect(secs > 2.0, "two one-second calls and a live one: %.3f s", secs)

        # workers, labelled by slot and generation
        expect_eq(m.type.get("voxrelay_worker_calls_total"), "counter", "worker calls TYPE")
        for w in h1["workers"]:
            lab = {"slot": w["slot"], "generation": w["generation"]}
            states = [s for s in m.series("voxrelay_worker_state")
                      if s[0]["slot"] == str(w["slot"])]
            expect_eq(len(states), 5, "one series per state")
            expect_eq(sum(v for _, v in states), 1, "exactly one state")
            expect_eq(m.get("voxrelay_worker_state", state=w["state"], **lab), 1,
                      "worker %d state" % w["slot"])
            expect_eq(m.get("voxrelay_worker_live_calls", **lab), w["live_calls"], "live")
            expect_eq(m.get("voxrelay_worker_active_streams", **lab), w["active_streams"],
                      "streams")
            expect_eq(m.get("voxrelay_worker_restarts", **lab), w["restarts"], "restarts")
            expect_eq(m.get("voxrelay_worker_calls_total", **lab), w["calls_total"], "calls")
            expect(0 <= m.get("voxrelay_worker_heartbeat_age_seconds", **lab) < 3.0,
                   "heartbeat age")
        expect_eq(sum(v for _, v in m.series("voxrelay_worker_live_calls")), 1, "live calls")
        expect_eq(sum(v for _, v in m.series("voxrelay_worker_calls_total")), 3, "calls")

        # histograms, in seconds, cumulative, consistent with /health
        for hname, fam in HISTOGRAMS.items():
            fam = "voxrelay_" + fam
            expect_eq(m.type.get(fam), "histogram", "TYPE of %s" % fam)
            buckets = sorted(((float(lab["le"]), v) for lab, v in m.series(fam + "_bucket")),
                             key=lambda x: x[0])
            expect(len(buckets) >= 20, "%s: %d buckets", fam, len(buckets))
            expect(math.isinf(buckets[-1][0]), "%s has no +Inf bucket", fam)
            for (_, a), (_, b) in zip(buckets, buckets[1:]):
                expect(a <= b, "%s not cumulative", fam)
            count = m.get(fam + "_count")
            expect_eq(buckets[-1][1], count, "%s +Inf == _count" % fam)
            c1, c2 = h1["latency_us"][hname]["count"], h2["latency_us"][hname]["count"]
            expect(c1 <= count <= c2, "%s count %r, /health %r..%r", fam, count, c1, c2)
            if c1 == c2 and count:
                # the p50 of /health lies under the first bound holding half
                lat = h1["latency_us"][hname]
                want = math.ceil(0.5 * count)
                first = next(le for le, v in buckets if v >= want)
                expect(lat["p50_us"] <= first * 1e6 + 1e-6, "%s p50 %r above %r s",
                       fam, lat["p50_us"], first)
                mean = m.get(fam + "_sum") * 1e6 / count
                expect(abs(mean - lat["mean_us"]) <= 1.0, "%s mean %.2f vs %r",
                       fam, mean, lat["mean_us"])
        expect_eq(m.get("voxrelay_handoff_latency_seconds_count"), 3, "three hand-offs")
        expect(m.get("voxrelay_relay_in_latency_seconds_count") >= 50, "relayed frames")

        verdict = await asyncio.to_thread(promtool_check, body)
        if verdict is None:
            print("      (promtool not installed: format not linted)")
        else:
            rc, out = verdict
            expect(rc == 0 and out.strip() == "", "promtool check metrics: rc %d\n%s", rc, out)
    finally:
        await live.stop()


@timeout(60)
def test_metrics_worker_restart(env):
    d = env.daemon().start()
    h = d.health()
    victim = h["workers"][0]
    os.kill(victim["pid"], signal.SIGKILL)
    d.wait_for(lambda: any(w["slot"] == victim["slot"] and w["restarts"] == 1 and
                           w["state"] == "ready" for w in d.health()["workers"]),
               10, "the killed worker respawned")
    body, m = scrape(d)
    lab = {"slot": victim["slot"], "generation": victim["generation"]}
    expect_eq(m.get("voxrelay_worker_restarts", **lab), 1, "restarts")
    expect_eq(m.get("voxrelay_worker_state", state="ready", **lab), 1, "ready again")
    expect_eq(m.get("voxrelay_workers_died_total"), 1, "workers died")
    expect_eq(m.get("voxrelay_workers_spawned_total"), 3, "workers spawned")
    expect_eq(m.get("voxrelay_status", status="ok"), 1, "status ok")
    # every line is a sample of a family announced before it
    seen = set()
    for line in body.split("\n"):
        if line.startswith("# TYPE "):
            seen.add(line.split(" ")[2])
        elif line and not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            fam = re.sub(r"_(bucket|sum|count)$", "", name)
            expect(name in seen or fam in seen, "%s before its TYPE", name)
    expect(body.endswith("\n"), "exposition ends with a newline")
    # a query string does not change the route
    st, hdr, _ = d.admin_get("/metrics?x=1")
    expect_eq(st, 200, "query string")
    verdict = promtool_check(body)
    if verdict is not None:
        expect(verdict[0] == 0 and verdict[1].strip() == "",
               "promtool check metrics: %r", verdict)
