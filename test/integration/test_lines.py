"""Lines: each route runs its own app and policy.  The shipped lines
(etc/lines) against the practice keys, a line's per-call maximum, and a line
added as a file and taken into use by SIGHUP."""

import asyncio
import json
import os
import shutil
import signal
import time

import caller as synth
import twilio
from fake_openai import FakeOpenAI
from harness import LINES, expect, expect_eq
from twilio_rest import FakeTwilioRest

ACCOUNT = "AC" + "2" * 32
TOKEN = "fedcba9876543210fedcba9876543210"
NUMBER = "+15005550006"


def rest_conf(rest):
    return dict(TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_AUTH_TOKEN=TOKEN,
                TWILIO_PHONE_NUMBER=NUMBER, TWILIO_API_BASE=rest.base,
                VALIDATE_TWILIO_SIGNATURE="false")


async def call(d, route, caller, seconds, n=1):
    cl = synth.Caller(synth.synthetic_speech(500), seconds=seconds,
                      hangup_after_ms=None, lead_ms=1000)
    t0 = time.monotonic()
    r = await cl.run(d.base, route=route, caller=caller, n=n)
    return r, time.monotonic() - t0


async def settle_sms(rest, d, want):
    """Wait until want SMS were asked for (or a little while for none)."""
    deadline = time.monotonic() + (6 if want else 1.5)
    while time.monotonic() < deadline and len(rest.requests) < want:
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)


async def test_hvac_line_outlasts_free_minutes_without_cut_or_sms(env):
    async with FakeTwilioRest(ACCOUNT, TOKEN) as rest, \
            FakeOpenAI(mode="vad", reply_ms=500, silence_ms=400) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=LINES,
                       FREE_CALL_MINUTES=0.03, MIN_CALL_DURATION=0.01,
                       **rest_conf(rest)).start()
        caller = "+14155557600"
        r, took = await call(d, "hvac", caller, 5)
        # 1.8 s of practice minutes, a 5 s call: not cut, no goodbye, no SMS
        expect(took >= 4.8, "hvac call cut after %.1f s: %s" % (took, r.summary()))
        expect("time limit reached" not in d.log(), "time limit on the hvac line")
        await settle_sms(rest, d, 0)
        expect_eq(len(rest.requests), 0, "SMS on the hvac line")
        wrap = [q for q in srv.accepted[0].response_requests
                if q["instructions"] and "time is over" in q["instructions"]]
        expect_eq(wrap, [], "wrap-up asked for")
        # the receptionist offers only the line's tools
        tools = [t["name"] for t in
                 srv.accepted[0].first("session.update")[1]["session"]["tools"]]
        expect_eq(sorted(tools), ["book_appointment", "end_call"], "tools")
        # the minutes still count in the ledger, and a caller past the
        # practice allowance is still admitted here
        _, rows = await asyncio.to_thread(d.usage)
        expect(float(rows[caller]["minutes_used"]) >= 0.07,
               "ledger: %r" % rows.get(caller))
        wh = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(2),
                                     caller, NUMBER, "hvac")
        expect(wh.stream_url is not None, "hvac refused a caller: %s" % wh.verbs)
        expect_eq(wh.params["minutesLeft"], "unlimited", "minutesLeft")
        # the practice line refuses the same caller
        wh = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(3),
                                     caller, NUMBER, "intake")
        expect(wh.stream_url is None and wh.verbs == ["Say", "Hangup"],
               "practice line admitted a caller out of minutes")


async def test_practice_line_is_cut_and_texted_once(env):
    async with FakeTwilioRest(ACCOUNT, TOKEN) as rest, \
            FakeOpenAI(mode="vad", reply_ms=500, silence_ms=400) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=LINES,
                       FREE_CALL_MINUTES=0.04, MIN_CALL_DURATION=0.01,
                       CONVOREPS_URL="https://practice.example/more",
                       **rest_conf(rest)).start()
        r, took = await call(d, "intake", "+14155557601", 12)
        expect(took < 9, "practice call lasted %.1f s" % took)
        expect_eq(r.close_code, 1000, "closed by the daemon")
        expect("time limit reached" in d.log(), "no time limit")
        await settle_sms(rest, d, 1)
        expect_eq(len(rest.requests), 1, "SMS requests")
        expect("https://practice.example/more" in rest.requests[0].form["Body"][0],
               "link")


def write_line(dirname, name, **fields):
    with open(os.path.join(dirname, name + ".json"), "w") as f:
        json.dump(fields, f)


async def test_line_max_call_minutes_cuts_there(env):
    lines = os.path.join(env.tmp, "lines")
    os.mkdir(lines)
    write_line(lines, "front", app="agent", persona="default", free_minutes=None,
               max_call_minutes=0.05, sms=None, wrapup="Say goodbye now.")
    async with FakeTwilioRest(ACCOUNT, TOKEN) as rest, \
            FakeOpenAI(mode="vad", reply_ms=500, silence_ms=400) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=lines, FREE_CALL_MINUTES=10,
                       **rest_conf(rest)).start()
        r, took = await call(d, "front", "+14155557602", 12)
        # 3 s maximum, then the goodbye plays and the call ends
        expect(3 < took < 9, "call lasted %.1f s" % took)
        expect_eq(r.close_code, 1000, "closed by the daemon")
        bye = [q for q in srv.accepted[0].response_requests
               if q["instructions"] == "Say goodbye now."]
        expect_eq(len(bye), 1, "the line's wrap-up")
        await settle_sms(rest, d, 0)
        expect_eq(len(rest.requests), 0, "SMS from a line without one")


async def test_new_line_file_takes_calls_after_sighup(env):
    lines = os.path.join(env.tmp, "lines")
    os.mkdir(lines)
    shutil.copy(os.path.join(LINES, "hvac.json"), lines)
    async with FakeOpenAI(mode="vad", reply_ms=500, silence_ms=400) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=lines, WORKERS=1).start()
        wh = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(1),
                                     "+14155557603", NUMBER, "plumber")
        expect_eq(wh.status, 404, "route before its line exists")
        # a broken line is refused by the reload, naming file and field
        write_line(lines, "plumber", app="agent", persona="hvac", free_minutes="x")
        d.signal(signal.SIGHUP)
        await asyncio.to_thread(d.wait_for, lambda: "reload refused" in d.log(), 5,
                                "refused reload")
        expect("plumber.json: free_minutes" in d.log(), "field not named")
        write_line(lines, "plumber", app="agent", persona="hvac", free_minutes=None,
                   max_call_minutes=0.04, sms=None, wrapup="Goodbye from the plumber.")
        d.signal(signal.SIGHUP)
        await asyncio.to_thread(d.wait_for, lambda: d.health()["generation"] == 2, 5,
                                "reload")
        await asyncio.to_thread(d.wait_ready, 10, 1)
        r, took = await call(d, "plumber", "+14155557603", 12, n=2)
        expect(2.4 < took < 9, "call lasted %.1f s" % took)
        expect_eq(r.close_code, 1000, "closed by the daemon")
        last = srv.accepted[-1]
        expect([q for q in last.response_requests
                if q["instructions"] == "Goodbye from the plumber."],
               "the new line's wrap-up")


async def test_verify_identity_checks_the_line_facts(env):
    said = [{"full_name": "Jordan Avery", "account_last4": "9999"},
            {"full_name": "Someone Else", "date_of_birth": "1985-04-12"},
            {"full_name": "jordan  AVERY"},
            {"full_name": "Jordan Avery", "date_of_birth": "1985 04 12"}]
    script = [{"wait_event": "input_audio_buffer.append", "count": 10}]
    script += [{"tool_call": {"name": "verify_identity", "arguments": a}} for a in said]
    async with FakeOpenAI(mode="scripted", script=script, after_script="idle") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=LINES).start()
        await call(d, "collections", "+14155557604", 5)
        conn = srv.accepted[0]
        tools = [t["name"] for t in conn.first("session.update")[1]["session"]["tools"]]
        expect("verify_identity" in tools, "not offered on a line with facts")
        got = [json.loads(o["output"])["verified"] for o in conn.function_outputs]
        expect_eq(got, [False, False, False, True], "verdicts")


async def test_verify_identity_not_offered_without_facts(env):
    script = [{"wait_event": "input_audio_buffer.append", "count": 10},
              {"tool_call": {"name": "verify_identity",
                             "arguments": {"full_name": "Jordan Avery",
                                           "account_last4": "4471"}}}]
    async with FakeOpenAI(mode="scripted", script=script, after_script="idle") as srv:
        # no lines: the collections persona's own route has no facts
        d = env.daemon(OPENAI_URL=srv.url()).start()
        await call(d, "collections", "+14155557605", 3)
        conn = srv.accepted[0]
        tools = [t["name"] for t in conn.first("session.update")[1]["session"]["tools"]]
        expect("verify_identity" not in tools, "offered without facts: %r" % tools)
        expect("record_payment_arrangement" in tools, "other tools kept: %r" % tools)
        # a model that calls it anyway is not told yes
        out = json.loads(conn.function_outputs[0]["output"])
        expect_eq(out["verified"], False, "verdict without facts")


def test_shipped_configuration_starts_without_warnings(env):
    import subprocess
    import harness
    d = env.daemon(LINES_DIR=LINES)
    p = subprocess.run([harness.BINARY, "-t", "-f", d.conf_path], capture_output=True,
                       text=True, timeout=10, env={"PATH": "/usr/bin:/bin"})
    expect_eq(p.returncode, 0, "-t: " + p.stderr)
    expect_eq(p.stderr, "", "-t printed more than its ok line")
    expect("is ok" in p.stdout and "6 lines" in p.stdout, "ok line: %r" % p.stdout)
    d.start()
    warns = [ln for ln in d.log().splitlines() if " warn " in ln or " error " in ln]
    expect_eq(warns, [], "warn-level lines at start")


async def test_inbound_line_where_the_callee_speaks_first_waits(env):
    """"speaks_first": "callee" holds the persona's greeting on an inbound
    call too: when the caller speaks first (the model's speech_started)
    there is no greeting of its own, and when nobody does it is said after
    greeting_pause_ms.  The shipped line, without the field, greets at once.
    -t names the file and field of a bad value."""
    import subprocess
    import harness
    lines = os.path.join(env.tmp, "lines")
    os.mkdir(lines)
    shutil.copy(os.path.join(LINES, "hvac.json"), lines)
    base = dict(app="agent", persona="hvac", free_minutes=None, sms=None)
    write_line(lines, "quiet", speaks_first="callee", greeting_pause_ms=8000, **base)
    write_line(lines, "pause", speaks_first="callee", greeting_pause_ms=700, **base)
    # the caller says something 1.5 s after the session opened
    script = [{"wait_event": "session.update"}, {"wait_ms": 1500},
              {"send": {"type": "input_audio_buffer.speech_started",
                        "audio_start_ms": 100, "item_id": "item_c1"}}]
    async with FakeOpenAI(mode="scripted", script=script, after_script="idle") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=lines, WORKERS=1).start()
        got = {}
        for i, route in enumerate(("hvac", "quiet", "pause")):
            await call(d, route, "+1415555761%d" % i, 3, n=i + 1)
            conn = srv.accepted[i]
            t0, _ = conn.first("session.update")
            got[route] = [(t - t0, e) for t, e in conn.of_type("response.create")]
        expect_eq(len(got["hvac"]), 1, "the agent greets: %r" % got["hvac"])
        expect(got["hvac"][0][0] < 1.0, "greeted at once: %.2f s" % got["hvac"][0][0])
        expect_eq(got["quiet"], [], "greeted over the caller")
        expect("greeting: the callee spoke first" in d.log(), "logged")
        expect_eq(len(got["pause"]), 1, "greeted after the pause: %r" % got["pause"])
        t, rc = got["pause"][0]
        expect(0.65 <= t < 1.5, "greeted %.2f s after the session opened" % t)
        expect("Summit Comfort" in rc.get("response", {}).get("instructions", ""),
               "the persona's greeting: %r" % rc)
    for field, value in (("speaks_first", "caller"), ("greeting_pause_ms", -1),
                         ("facts_from", "crm")):
        write_line(lines, "quiet", **dict(base, **{field: value}))
        p = subprocess.run([harness.BINARY, "-t", "-f", d.conf_path],
                           capture_output=True, text=True, timeout=10)
        expect(p.returncode != 0, "-t took %s %r" % (field, value))
        expect("quiet.json: %s" % field in p.stderr, "-t: %r" % p.stderr)
