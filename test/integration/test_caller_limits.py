"""Closed by default: what reaches disk and logs, and the abuse limits of
issue 12.  Each test fails on a daemon without the limit it names (README,
"Limits")."""

import asyncio
import base64
import csv
import io
import json
import os
import re
import subprocess
import time

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
    body = d.admin_get("/usage-data")[2]

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
    check(d2.admin_get("/usage-data")[2], "reloaded ledger")


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
    os.makedirs(os.path.join(env.tmp, "d2"))
    d2.conf["USAGE_CSV_PATH"] = os.path.join(env.tmp, "d2", "usage.csv")
    d2.conf["USAGE_CSV_BACKUP_PATH"] = os.path.join(env.tmp, "d2", "usage_backup.csv")
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


# ---------------------------------------------------------------------------
# caller audio: size of one payload, and audio faster than time


async def flood(s, frames, payload=None):
    """Send frames media messages as fast as the socket takes them; stops
    when the daemon closes.  Returns how many were sent."""
    sent = 0
    try:
        for n in range(frames):
            await s.ws.send(json.dumps({
                "event": "media", "sequenceNumber": str(n + 2),
                "media": {"track": "inbound", "chunk": str(n + 1),
                          "timestamp": str(n * 20),
                          "payload": payload or twilio.tone_frame(n)},
                "streamSid": s.ssid}))
            sent += 1
    except Exception:
        pass
    return sent


async def test_caller_audio_size_and_rate(env):
    d = env.daemon(WORKERS=1).start()
    # a good call on the same worker, at Twilio's cadence
    wh = twilio.post_voice(d.base, twilio.call_sid(1), "+15550000001")
    good = twilio.Stream(wh.stream_url, twilio.call_sid(1), twilio.stream_sid(1), wh.params)
    await good.open()
    player = asyncio.ensure_future(good.play(4.0))

    # 120 s of audio in about a second
    wh = twilio.post_voice(d.base, twilio.call_sid(2), "+15550000002")
    fast = twilio.Stream(wh.stream_url, twilio.call_sid(2), twilio.stream_sid(2), wh.params)
    await fast.open()
    t0 = asyncio.get_running_loop().time()
    await asyncio.sleep(0.2)
    sent = await flood(fast, 6000)
    expect(await fast.wait_closed(5), "fast call not closed")
    age = asyncio.get_running_loop().time() - t0
    expect_eq(fast.close_code, 1008, "close code")
    expect("ahead" in (fast.close_reason or ""), "reason %r" % fast.close_reason)
    expect(sent > 300, "the flood stopped early (%d)" % sent)
    frames_fast = (await asyncio.to_thread(counters, d))["frames_in"]

    # one payload of 8000 bytes (Twilio sends 160)
    wh = twilio.post_voice(d.base, twilio.call_sid(3), "+15550000003")
    big = twilio.Stream(wh.stream_url, twilio.call_sid(3), twilio.stream_sid(3), wh.params)
    await big.open()
    await asyncio.sleep(0.2)
    await flood(big, 1, payload=base64.b64encode(b"\xff" * 8000).decode())
    expect(await big.wait_closed(5), "oversize call not closed")
    expect_eq(big.close_code, 1008, "oversize close code")
    expect("MAX_MEDIA_PAYLOAD" in (big.close_reason or ""), "reason %r" % big.close_reason)

    # 4096 bytes is still taken
    wh = twilio.post_voice(d.base, twilio.call_sid(4), "+15550000004")
    edge = twilio.Stream(wh.stream_url, twilio.call_sid(4), twilio.stream_sid(4), wh.params)
    await edge.open()
    await flood(edge, 1, payload=base64.b64encode(b"\xff" * 4096).decode())
    await asyncio.sleep(0.3)
    expect(edge.close_code is None, "4096 bytes refused")
    await edge.stop()

    await player
    await good.stop()
    await asyncio.sleep(0.3)
    h = await asyncio.to_thread(d.health)
    c = h["counters"]
    expect_eq(c["media_too_fast"], 1, "media_too_fast")
    expect_eq(c["media_oversize"], 1, "media_oversize")
    # the good call lost nothing; the fast one relayed no more than its age
    # plus 5 s (the good call's frames until then are in the figure too)
    expect(frames_fast <= (age + 5.0) * 50 + 50 * age + 2,
           "relayed %d frames in %.1f s" % (frames_fast, age))
    expect(frames_fast >= 5.0 * 50, "the allowance was not relayed: %d" % frames_fast)
    expect_eq(good.close_code, 1000, "good call close")
    expect_eq(good.frames_sent, 200, "good frames sent")
    expect_eq(c["workers_died"], 0, "worker died")
    # billed its real time, not its audio's
    rows = (await asyncio.to_thread(d.usage))[1]
    used = float(rows["+15550000002"]["minutes_used"]) * 60
    expect(abs(used - age) < 1.0, "billed %.2f s for %.2f s" % (used, age))
    expect(float(rows["+15550000001"]["minutes_used"]) * 60 > 3.5, "good call billed")
    log = d.log()
    expect_eq(log.count("caller audio more than 5 s ahead"), 2, "log lines (warning, end)")


# ---------------------------------------------------------------------------
# a full ledger


async def test_full_ledger_refuses_new_callers(env):
    from test_foundation import make_token
    usage = os.path.join(env.tmp, "usage.csv")
    with open(usage, "w") as f:
        f.write("phone_number,minutes_used,minutes_remaining,last_call_date,total_calls\n")
        for i in range(15):
            f.write("+1555000%04d,0.100000,2.900000,2026-11-21T03:04:05Z,1\n" % i)
    d = env.daemon(WORKERS=1, LEDGER_CAPACITY=16).start()
    h = d.health()
    expect_eq(h["ledger"]["capacity"], 16, "usable capacity")
    expect_eq(h["ledger"]["callers"], 15, "callers")
    expect_eq(h["status"], "ok", "status with room")
    # the 16th caller fits
    first = await twilio.place_call(d.base, 1, "+15550100001", 1.0)
    expect_eq(first.close_code, 1000, "16th caller's call")
    h = d.health()
    expect_eq(h["ledger"]["callers"], 16, "callers when full")
    expect(h["ledger"]["full"], "full flag")
    expect_eq(h["status"], "degraded", "status when full")
    metrics = d.admin_get("/metrics")[2]
    expect('voxrelay_status{status="degraded"} 1' in metrics, "metrics status")
    expect("voxrelay_ledger_capacity 16" in metrics, "metrics capacity")
    # a 17th is refused with the busy message, and nothing else moves
    wh = twilio.post_voice(d.base, twilio.call_sid(2), "+15550100002")
    expect_eq(wh.status, 200, "refusal status")
    expect(wh.stream_url is None, "17th caller got a stream")
    expect("lines are busy" in wh.body, "busy message: %s" % wh.body)
    wh = twilio.post_voice(d.base, twilio.call_sid(3), "+15550100003")
    expect(wh.stream_url is None, "18th caller got a stream")
    c = counters(d)
    expect_eq(c["refused_ledger_full"], 2, "refused_ledger_full")
    expect_eq(c["ledger_full"], 0, "no fold lost a call")
    log = d.log()
    expect_eq(log.count("LEDGER_CAPACITY is raised"), 1, "one log line a minute")
    # callers already counted still get in
    for i, who in enumerate(("+15550000003", "+15550100001")):
        wh = twilio.post_voice(d.base, twilio.call_sid(10 + i), who)
        expect(wh.stream_url is not None, "known caller %s refused" % who)
    # a stream whose caller has no entry (a token from before a restart)
    # is refused by the worker, not given minutes nothing counts
    now = int(time.time())
    tok = make_token(twilio.call_sid(20), "+15550100009", "default", now + 60)
    s = twilio.Stream("ws://127.0.0.1:%d/media-stream/default/%s" % (d.port, tok),
                      twilio.call_sid(20), twilio.stream_sid(20))
    await s.open()
    expect(await s.wait_closed(5), "uncounted call not closed")
    expect_eq(s.close_code, 1013, "close code")
    expect_eq(counters(d)["refused_ledger_full"], 3, "worker refusal counted")
    rows = d.usage()[1]
    expect("+15550100009" not in rows and "+15550100002" not in rows, "refused callers in the ledger")
    expect(float(rows["+15550100001"]["minutes_used"]) > 0.01, "16th caller billed")


# ---------------------------------------------------------------------------
# tool-call arguments in the log


async def tool_call_log(env, level, route, tool, args):
    script = [{"wait_event": "input_audio_buffer.append", "count": 20},
              {"tool_call": {"name": tool, "arguments": args}}]
    async with FakeOpenAI(mode="scripted", script=script, after_script="idle") as srv:
        # a directory of its own: what the daemon keeps beside the ledger
        # (used tokens, answered CallSids) is not the previous one's
        own = os.path.join(env.tmp, "%s-%s" % (level, route))
        os.makedirs(own)
        d = env.daemon(OPENAI_URL=srv.url(), LOG_LEVEL=level,
                       BOOKINGS_PATH=os.path.join(own, "bookings.jsonl"))
        d.conf["USAGE_CSV_PATH"] = os.path.join(own, "usage.csv")
        d.conf["USAGE_CSV_BACKUP_PATH"] = os.path.join(own, "usage_backup.csv")
        d.log_path = os.path.join(own, "voxrelay.log")
        d.write_conf()
        d.start()
        cl = synth.Caller(synth.synthetic_speech(600), seconds=2.5, lead_ms=2000)
        await cl.run(d.base, route=route, caller="+14155557000")
        expect(srv.accepted and srv.accepted[0].function_outputs, "tool not called")
        d.stop()
        return d.log()


async def test_tool_arguments_not_logged(env):
    secret = {"full_name": "Pat Quincy Lee", "date_of_birth": "1971-03-09",
              "account_last4": "4417"}
    booking = {"name": "Robin Doe", "phone": "+14155550123", "address": "77 Elm Street",
               "date": "2026-12-01", "time": "10:00", "reason": "no heat at all"}
    for level in ("info", "debug"):
        for route, tool, args in (("collections", "verify_identity", secret),
                                  ("hvac", "book_appointment", booking)):
            log = await tool_call_log(env, level, route, tool, args)
            lines = [ln for ln in log.split("\n") if "tool call %s" % tool in ln]
            # what follows each line's time and pid: a value such as 4417 or
            # 10:00 may be part of those without having been logged
            said = "\n".join(ln.partition("]")[2] for ln in log.split("\n"))
            # nor a listening port the kernel chose (port 54417 holds 4417)
            said = re.sub(r"port \d+", "port N", said)
            for k, v in args.items():
                sensitive = k not in ("date", "time", "reason")
                if sensitive or level == "info":
                    expect(v not in said, "%s=%r in the %s log" % (k, v, level))
            expect(any(" info " in ln and "by %s: " % route in ln for ln in lines),
                   "no info line with the outcome: %r" % lines)
            if level == "debug":
                dbg = [ln for ln in lines if " debug " in ln and "arguments" in ln]
                expect(len(dbg) == 1, "debug arguments line: %r" % lines)
                if tool == "book_appointment":
                    expect("no heat at all" in dbg[0], "plain field not shown: %r" % dbg)
                    expect('"address":"(sensitive)"' in dbg[0], "not marked: %r" % dbg)
