"""Closed by default: what reaches disk and logs, and the abuse limits of
issue 12.  Each test fails on a daemon without the limit it names (README,
"Limits")."""

import asyncio
import csv
import io
import json
import os
import re
import subprocess

import caller as synth
import twilio
from fake_openai import FakeOpenAI
from harness import PERSONAS, expect, expect_eq

import harness


def counters(d):
    return d.health()["counters"]


def configtest(env, **conf):
    """voxrelay -t on the test daemon's config with conf changed."""
    d = env.daemon(**conf)
    p = subprocess.run([harness.BINARY, "-t", "-f", d.conf_path],
                       capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout + p.stderr


# ---------------------------------------------------------------------------
# From, and the CSV files it reaches


def test_caller_checked_at_webhook(env):
    d = env.daemon().start()
    good = ["+14155552671", "+1", "anonymous", "Anonymous", "+266696687",
            "restricted", "unknown", "", "client:alice", "client:agent_7",
            "sip:alice@example.com", "sip:+14155552671@10.0.0.1;transport=udp"]
    bad = ['=HYPERLINK("http://evil.example","x")', "@SUM(A1:A9)", "-1+2",
           "+1555,0000", "+1555\n0000", "+1 415 555 2671", "14155552671",
           "client:a b", "sip:a,b@x", "tel:+14155552671", "+" + "1" * 16,
           "sip:" + "a" * 60]
    for i, who in enumerate(good):
        wh = twilio.post_voice(d.base, twilio.call_sid(i + 1), who)
        expect_eq(wh.status, 200, "From %r" % who)
        expect(wh.stream_url is not None, "no stream for %r" % who)
    for i, who in enumerate(bad):
        wh = twilio.post_voice(d.base, twilio.call_sid(100 + i), who)
        expect_eq(wh.status, 400, "From %r" % who)
        expect("<Stream" not in wh.body, "stream offered to %r" % who)
    expect_eq(counters(d)["bad_caller"], len(bad), "bad_caller")
    log = d.log()
    expect("HYPERLINK" not in log and "SUM(" not in log, "refused From logged")
    expect(log.count("refused with 400: From is not") == len(bad), "one line each")


async def test_ledger_cells_quoted_and_read_back(env):
    """A ledger written before From was checked holds formulas and commas:
    served and saved quoted, guarded, and read back unchanged."""
    usage = os.path.join(env.tmp, "usage.csv")
    legacy = ['=HYPERLINK("http://evil.example","x")', "@SUM(A1:A9)",
              "-1+2", "a,b", "line\nbreak"]
    with open(usage, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["phone_number", "minutes_used", "minutes_remaining",
                    "last_call_date", "total_calls"])
        for i, p in enumerate(legacy):
            w.writerow([p, "1.000000", "2.000000", "2026-11-21T03:04:05Z", i + 1])
        w.writerow(["+14155552671", "0.500000", "2.500000", "", 1])
    d = env.daemon(WORKERS=1).start()
    body = d.get("/usage-data")[2]

    def check(text, what):
        rows = list(csv.reader(io.StringIO(text)))
        expect_eq(len(rows), len(legacy) + 2, "%s rows" % what)
        cells = {r[0]: r for r in rows[1:]}
        expect_eq(len(rows[0]), 5, "%s header" % what)
        expect(all(len(r) == 5 for r in rows), "%s: a row broken: %r" % (what, rows))
        for i, p in enumerate(legacy):
            guarded = "'" + p if p[0] in "=+-@'" else p
            expect(guarded in cells, "%s: %r not written as %r: %r"
                   % (what, p, guarded, list(cells)))
            expect_eq(cells[guarded][4], str(i + 1), "%s calls of %r" % (what, p))
        expect("+14155552671" in cells, "%s: E.164 changed" % what)
        for r in rows[1:]:
            expect(r[0][0] not in "=@-" and not (r[0][0] == "+" and not r[0][1:].isdigit()),
                   "%s: a formula cell %r" % (what, r[0]))
    check(body, "/usage-data")
    expect("\n+14155552671,0.500000," in body, "E.164 row as it always was")
    # saved, then read back by a fresh daemon: the same callers
    await twilio.place_call(d.base, 1, "+14155552671", 0.5)
    await asyncio.sleep(0.2)

    def saved_calls():
        with open(usage, newline="") as f:
            rows = {r[0]: r for r in csv.reader(f)}
        return rows.get("+14155552671", [""] * 5)[4] == "2"
    d.wait_for(saved_calls, 10, "ledger flushed")
    d.stop()
    with open(usage) as f:
        check(f.read(), "saved ledger")
    d2 = env.daemon(WORKERS=1)
    d2.start()
    check(d2.get("/usage-data")[2], "reloaded ledger")


async def test_transcript_csv_cells_quoted(env):
    said = '=HYPERLINK("http://evil.example"), "quoted"\nand a second line'
    async with FakeOpenAI(mode="vad", reply_ms=400, silence_ms=300,
                          caller_transcript=said,
                          reply_text="@SUM(1,2), sure.") as srv:
        path = os.path.join(env.tmp, "transcript.csv")
        d = env.daemon(OPENAI_URL=srv.url(), TRANSCRIPT_CSV_PATH=path).start()
        caller = "sip:+14155552671@10.0.0.1;transport=udp"
        r = await synth.Caller(synth.synthetic_speech(600), seconds=6,
                               hangup_after_ms=500).run(d.base, caller=caller)
        await asyncio.sleep(0.3)
        with open(path, newline="") as f:
            text = f.read()
        rows = list(csv.reader(io.StringIO(text)))
        expect_eq(rows[0], ["timestamp", "call_sid", "phone_number", "role", "text"],
                  "header")
        expect(len(rows) >= 3, "rows: %r" % rows)
        expect_eq(len(text.strip().split("\n")), len(rows), "one row a line")
        for row in rows[1:]:
            expect_eq(len(row), 5, "fields of %r" % row)
            expect_eq(row[1], r.call_sid, "call sid")
            expect_eq(row[2], caller, "caller cell")
        by_role = {row[3]: row[4] for row in rows[1:]}
        expect_eq(by_role.get("caller"), "'" + said.replace("\n", " "), "caller text")
        expect_eq(by_role.get("assistant"), "'@SUM(1,2), sure.", "assistant text")


# ---------------------------------------------------------------------------
# URLs that carry a secret


def test_plain_urls_only_for_loopback(env):
    fake = env.fake_openai("--mode", "echo")
    for key, value in (("OPENAI_URL", "ws://api.openai.example/v1/realtime"),
                       ("TWILIO_API_BASE", "http://api.twilio.example"),
                       ("PUBLIC_URL", "http://voice.example.com")):
        conf = {"OPENAI_URL": fake.url(), key: value}
        rc, out = configtest(env, **conf)
        expect(rc != 0, "-t accepted %s=%s" % (key, value))
        expect(re.search(r"%s: .*in clear" % key, out), "-t output: %r" % out)
        d = env.daemon(**conf)
        d.start(wait=False)
        rc = d.wait_exit(10)
        expect(rc is not None and rc != 0, "daemon started with %s=%s" % (key, value))
        expect(key in d.log(), "log does not name %s" % key)
    # loopback peers stay allowed, by name and by address
    for conf in ({"OPENAI_URL": fake.url(host="localhost")},
                 {"OPENAI_URL": fake.url(), "TWILIO_API_BASE": "http://127.0.0.1:9"},
                 {"OPENAI_URL": fake.url(), "PUBLIC_URL": "http://localhost:5050"}):
        rc, out = configtest(env, **conf)
        expect_eq(rc, 0, "-t refused %r: %s" % (conf, out))


# ---------------------------------------------------------------------------
# masking


async def test_callers_masked_alike_everywhere(env):
    number = "+14155558642"
    d = env.daemon(WORKERS=1, LOG_LEVEL="info").start()
    wh = twilio.post_voice(d.base, twilio.call_sid(1), number)
    s = twilio.Stream(wh.stream_url, twilio.call_sid(1), twilio.stream_sid(1), wh.params)
    await s.open()
    await s.play(0.5)
    h = await asyncio.to_thread(d.health)
    expect_eq([c["caller"] for c in h["calls"]], ["+*******8642"], "/health calls")
    await s.stop()
    # refused for minutes: the master's own log line
    d2 = env.daemon(WORKERS=1, LOG_LEVEL="info", FREE_CALL_MINUTES=0.01,
                    MIN_CALL_DURATION=0.01)
    d2.conf["USAGE_CSV_PATH"] = os.path.join(env.tmp, "u2.csv")
    d2.conf["USAGE_CSV_BACKUP_PATH"] = os.path.join(env.tmp, "u2b.csv")
    d2.write_conf()
    d2.start()
    await twilio.place_call(d2.base, 2, number, 1.0)
    await asyncio.sleep(0.3)
    wh = twilio.post_voice(d2.base, twilio.call_sid(3), number)
    expect(wh.stream_url is None, "out of minutes")
    d.stop()
    d2.stop()
    for log in (d.log(), d2.log()):
        lines = [ln for ln in log.split("\n") if "8642" in ln]
        expect(len(lines) >= 2, "caller never logged: %s" % log)
        for ln in lines:
            expect("+*******8642" in ln, "masked differently: %r" % ln)
        for part in ("4155558642", "+1415", "415555"):
            expect(part not in log, "%s in the log" % part)
    expect("refused" in d2.log(), "refusal logged")
