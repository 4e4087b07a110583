"""The practice line: intake, the switch to a practice persona over a second
upstream session, the keyword fallback, the remaining-time tool, the time
limit with its wrap-up and goodbye SMS, end_call, bookings."""

import asyncio
import itertools
import json
import os
import time

import caller as synth
import twilio
from fake_openai import FakeOpenAI
from harness import PERSONAS, expect, expect_eq
from twilio_rest import FakeTwilioRest

ACCOUNT = "AC" + "1" * 32
TOKEN = "0123456789abcdef0123456789abcdef"
NUMBER = "+15005550006"
PROSPECTS = ("sarah", "david", "maria", "james", "lisa", "robert")


def persona(pid):
    with open(os.path.join(PERSONAS, pid + ".json")) as f:
        return json.load(f)


def session_of(conn):
    return conn.first("session.update")[1]["session"]


def which_persona(conn):
    """The persona whose instructions a session carries."""
    s = session_of(conn)
    for fn in os.listdir(PERSONAS):
        if fn.endswith(".json"):
            p = persona(fn[:-5])
            ins = p["instructions"]
            if isinstance(ins, list):
                ins = "\n".join(ins)
            if s.get("instructions") == ins:
                return fn[:-5], s
    return None, s


# a CallSid of its own per call: a repeated one gets no second stream
_CALLS = itertools.count(1000)


async def run_caller(d, seconds, route=None, caller="+14155557000", speech_ms=600, **kw):
    cl = synth.Caller(synth.synthetic_speech(speech_ms), seconds=seconds,
                      hangup_after_ms=kw.pop("hangup_after_ms", None), **kw)
    return await cl.run(d.base, route=route, caller=caller, n=next(_CALLS))


async def test_intake_tool_switches_to_a_prospect(env):
    intake_script = [
        {"wait_event": "input_audio_buffer.append", "count": 40},
        {"tool_call": {"name": "select_practice_mode",
                       "arguments": {"mode": "cold_call",
                                     "summary": "wants to pitch SEO to an agency"}}},
    ]
    async with FakeOpenAI(mode="scripted", script=intake_script, after_script="vad",
                          reply_ms=800, silence_ms=400) as srv:
        srv.next_config()            # the intake's session: the defaults above
        srv.next_config(mode="vad", reply_ms=1200, silence_ms=400)
        d = env.daemon(OPENAI_URL=srv.url(), DEFAULT_ROUTE="intake").start()
        r = await run_caller(d, 7, lead_ms=5000)
        expect_eq(len(srv.accepted), 2, "upstream sessions")
        intake, prospect = srv.accepted
        expect_eq(which_persona(intake)[0], "intake", "first session")
        pid, sess = which_persona(prospect)
        expect(pid in PROSPECTS, "second session is %r" % pid)
        expect_eq(sess["audio"]["output"]["voice"], persona(pid)["voice"], "voice")
        expect_eq(len(intake.function_outputs), 1, "tool answered")
        out = json.loads(intake.function_outputs[0]["output"])
        expect(out["ok"], "tool result %r" % out)
        # the intake spoke its hand-over, then was closed
        expect(intake.response_requests, "no hand-over requested")
        expect(intake.closed and intake.closed_by == "client", "intake not closed by us")
        # the prospect was told what the caller asked for, then answered
        items = [ev for _, ev in prospect.events if ev["type"] == "conversation.item.create"]
        expect(items and "SEO" in json.dumps(items[0]), "no context line: %r" % items)
        expect(prospect.response_requests, "the prospect did not speak first")
        # never more than two sessions, and both only during the swap
        expect(intake.t_closed <= prospect.t_closed, "order of closing")
        # the caller heard both voices
        expect(len(r.assistant_turns) >= 2, "turns: %s" % r.summary())
        h = await asyncio.to_thread(d.health)
        expect_eq(h["metrics"]["tool_calls"], 1, "tool_calls")
        expect_eq(h["metrics"]["api_errors"], 0, "api_errors")
        for conn in srv.accepted:
            expect_eq(conn.schema_errors, [], "schema errors")
        expect("now talking to %s" % pid in d.log(), "swap not logged")


async def keyword_case(env, srv, d, n, said, expect_ids):
    srv.next_config(mode="vad", caller_transcript=said, reply_ms=300, silence_ms=300)
    srv.next_config(mode="vad", reply_ms=300, silence_ms=300)
    before = len(srv.accepted)
    await run_caller(d, 5, caller="+1415555%04d" % n)
    expect_eq(len(srv.accepted), before + 2, "sessions for %r" % said)
    pid, _ = which_persona(srv.accepted[before + 1])
    expect(pid in expect_ids, "%r went to %r" % (said, pid))


async def test_keyword_fallback_selects_each_mode(env):
    async with FakeOpenAI(mode="vad") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), DEFAULT_ROUTE="intake",
                       INTENT_FALLBACK_SECONDS=1).start()
        await keyword_case(env, srv, d, 1, "I want to practice cold calling", PROSPECTS)
        await keyword_case(env, srv, d, 2, "interview prep please", ("rachel",))
        await keyword_case(env, srv, d, 3, "just want to chat", ("alex",))
        expect_eq(d.log().count("keyword fallback"), 3, "fallbacks")


async def test_repeat_caller_meets_someone_new(env):
    script = [{"wait_event": "input_audio_buffer.append", "count": 10},
              {"tool_call": {"name": "select_practice_mode",
                             "arguments": {"mode": "cold_call"}}}]
    async with FakeOpenAI(mode="scripted", script=script, after_script="vad",
                          reply_ms=300) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), DEFAULT_ROUTE="intake").start()
        met = []
        for i in range(2):
            srv.next_config()
            srv.next_config(mode="vad", reply_ms=300)
            before = len(srv.accepted)
            await run_caller(d, 3.5, caller="+14155559999", lead_ms=3000)
            met.append(which_persona(srv.accepted[before + 1])[0])
            await asyncio.sleep(0.3)     # folded into the ledger
        expect(met[0] != met[1], "the same prospect twice: %r" % met)


async def test_remaining_time_tool_matches_the_ledger(env):
    script = [{"wait_event": "input_audio_buffer.append", "count": 100},
              {"tool_call": {"name": "get_remaining_time", "arguments": {}}}]
    async with FakeOpenAI(mode="scripted", script=script, after_script="idle") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), FREE_CALL_MINUTES=2).start()
        caller = "+14155557100"
        wh = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(1), caller,
                                     route="sarah")
        s = twilio.Stream(wh.stream_url, twilio.call_sid(1), twilio.stream_sid(1))
        await s.open()
        player = asyncio.ensure_future(s.play(4))
        conn = await srv.wait_connection(1)
        for _ in range(100):
            if conn.function_outputs:
                break
            await asyncio.sleep(0.05)
        expect(conn.function_outputs, "no answer to get_remaining_time")
        told = json.loads(conn.function_outputs[0]["output"])
        _, rows = await asyncio.to_thread(d.usage)
        ledger = float(rows[caller]["minutes_remaining"])
        expect(abs(told["minutes_remaining"] - ledger) <= 1 / 60 + 0.05,
               "tool said %.2f, ledger %.3f" % (told["minutes_remaining"], ledger))
        expect(abs(told["seconds_remaining"] - ledger * 60) <= 1.5,
               "tool said %d s, ledger %.1f s" % (told["seconds_remaining"], ledger * 60))
        # after the output, the model is asked to go on
        expect(conn.response_requests, "no response.create after the tool output")
        await player
        await s.stop()


async def test_time_limit_wrapup_and_one_sms(env):
    async with FakeTwilioRest(ACCOUNT, TOKEN) as rest, \
            FakeOpenAI(mode="vad", reply_ms=600, silence_ms=400) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), FREE_CALL_MINUTES=0.06, MIN_CALL_DURATION=0.01,
                       TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_AUTH_TOKEN=TOKEN,
                       TWILIO_PHONE_NUMBER=NUMBER, TWILIO_API_BASE=rest.base,
                       CONVOREPS_URL="https://practice.example/keep-going").start()
        caller = "+14155557200"
        cl = synth.Caller(synth.synthetic_speech(500), seconds=15, hangup_after_ms=None,
                          lead_ms=1500)
        t0 = time.monotonic()
        r = await cl.run(d.base, route="maria", caller=caller, auth_token=TOKEN,
                         public_url=d.base)
        took = time.monotonic() - t0
        conn = srv.accepted[0]
        # 3.6 s of free time: the wrap-up was asked for, it played, we closed
        wrap = [q for q in conn.response_requests
                if q["instructions"] and "practice time is over" in q["instructions"]]
        expect_eq(len(wrap), 1, "wrap-up requests")
        expect_eq(wrap[0]["response"].get("tool_choice"), "none", "no tools in a goodbye")
        expect_eq(r.close_code, 1000, "stream closed by us, cleanly")
        expect(3.5 < took < 9, "call lasted %.1f s" % took)
        last = r.assistant_turns[-1]
        expect(last["played_ms"] >= 500, "the wrap-up was not heard: %s" % r.summary())
        # exactly one SMS, with basic auth, To, From and the link
        for _ in range(50):
            if rest.requests:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        expect_eq(len(rest.requests), 1, "SMS requests")
        q = rest.requests[0]
        expect_eq(q.auth, "%s:%s" % (ACCOUNT, TOKEN), "basic auth")
        expect_eq(q.path, "/2010-04-01/Accounts/%s/Messages.json" % ACCOUNT, "path")
        expect_eq(q.form["To"], [caller], "To")
        expect_eq(q.form["From"], [NUMBER], "From")
        expect("https://practice.example/keep-going" in q.form["Body"][0], "link in Body")
        h = await asyncio.to_thread(d.health)
        expect_eq(h["metrics"]["sms_sent"], 1, "sms_sent")
        expect_eq(h["metrics"]["failed_calls"], 0, "failed")
        # the caller is now refused at the webhook, with no upstream opened
        n = len(srv.connections)
        wh = await asyncio.to_thread(lambda: twilio.post_voice(
            d.base, twilio.call_sid(9), caller, auth_token=TOKEN, public_url=d.base))
        expect(wh.stream_url is None and wh.verbs == ["Say", "Hangup"], "not refused")
        await asyncio.sleep(0.3)
        expect_eq(len(srv.connections), n, "an upstream session for a refused caller")


async def sms_failure_case(env, fail_first, fail_status, want_requests, want_sent):
    async with FakeTwilioRest(ACCOUNT, TOKEN, fail_first=fail_first,
                              fail_status=fail_status) as rest, \
            FakeOpenAI(mode="vad", reply_ms=300, silence_ms=300) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), FREE_CALL_MINUTES=0.03, MIN_CALL_DURATION=0.01,
                       TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_AUTH_TOKEN=TOKEN,
                       VALIDATE_TWILIO_SIGNATURE="false",
                       TWILIO_PHONE_NUMBER=NUMBER, TWILIO_API_BASE=rest.base).start()
        await run_caller(d, 6, route="alex", caller="+14155557300", lead_ms=3000)
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            h = await asyncio.to_thread(d.health)
            if h["metrics"]["sms_sent"] + h["metrics"]["sms_failed"] > 0:
                break
            await asyncio.sleep(0.2)
        expect_eq(len(rest.requests), want_requests, "attempts")
        expect_eq(h["metrics"]["sms_sent"], want_sent, "sms_sent")
        expect_eq(h["metrics"]["sms_failed"], 1 - want_sent, "sms_failed")
        return d


async def test_sms_retried_then_sent(env):
    d = await sms_failure_case(env, 2, 503, 3, 1)
    expect("retrying" in d.log(), "retries not logged")


async def test_sms_failure_is_retried_then_counted(env):
    d = await sms_failure_case(env, 99, 500, 4, 0)
    expect("given up after 4 attempts" in d.log(), "give-up not logged")


async def test_sms_client_error_is_not_retried(env):
    await sms_failure_case(env, 99, 400, 1, 0)


async def test_end_call_tool_hangs_up_after_the_goodbye(env):
    script = [{"wait_event": "input_audio_buffer.append", "count": 30},
              {"tool_call": {"name": "end_call", "arguments": {"reason": "caller said bye"}},
               "audio_ms": 700}]
    async with FakeOpenAI(mode="scripted", script=script, after_script="idle") as srv:
        d = env.daemon(OPENAI_URL=srv.url()).start()
        r = await run_caller(d, 8, route="alex", lead_ms=6000)
        expect_eq(r.close_code, 1000, "closed by the daemon")
        expect(r.duration_ms < 4000, "hung up after %.0f ms" % r.duration_ms)
        expect(r.played_ms >= 650, "the goodbye was cut: played %.0f ms" % r.played_ms)
        conn = srv.accepted[0]
        expect_eq(len(conn.function_outputs), 1, "tool answered")
        after = [q for q in conn.response_requests
                 if q["t"] > conn.function_outputs[0]["t"]]
        expect_eq(after, [], "the model was asked to go on after end_call")
        h = await asyncio.to_thread(d.health)
        expect_eq(h["metrics"]["failed_calls"], 0, "failed")


async def test_booking_is_recorded(env):
    args = {"name": "Pat Lee", "phone": "+14155550123", "address": "1 Main St",
            "date": "2026-12-01", "time": "10:00", "reason": "no heat"}
    script = [{"wait_event": "input_audio_buffer.append", "count": 20},
              {"tool_call": {"name": "book_appointment", "arguments": args}}]
    bookings = os.path.join(env.tmp, "bookings.jsonl")
    async with FakeOpenAI(mode="scripted", script=script, after_script="idle") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), BOOKINGS_PATH=bookings).start()
        await run_caller(d, 2.5, route="hvac", lead_ms=2000)
        conn = srv.accepted[0]
        out = json.loads(conn.function_outputs[0]["output"])
        expect(out["booked"] and out["reference"].startswith("VR-"), "result %r" % out)
        with open(bookings) as f:
            rec = json.loads(f.readline())
        expect_eq(rec["arguments"], args, "recorded arguments")
        expect_eq(rec["persona"], "hvac", "persona")
        expect_eq(rec["reference"], out["reference"], "reference")


def test_every_persona_route_answers(env):
    d = env.daemon().start()
    for i, fn in enumerate(sorted(os.listdir(PERSONAS))):
        if fn.endswith(".json"):
            wh = twilio.post_voice(d.base, twilio.call_sid(1 + i), "+14155557400",
                                   route=fn[:-5])
            expect(wh.stream_url and "/media-stream/%s/" % fn[:-5] in wh.stream_url,
                   "route %s" % fn)
