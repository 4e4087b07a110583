"""Outbound calls: POST /api/request-call on the operator's listener, the
call created at a fake Twilio (twilio_rest.py) which then plays it as Twilio
does (signed status callbacks, the signed outbound TwiML request, the callee
on the Media Stream, the AMD verdict), and each refusal in its order."""

import asyncio
import json
import re
import signal
import sqlite3
import time
import urllib.request
import xml.etree.ElementTree as ET

import twilio
from harness import LINES, expect, expect_eq, timeout, until
from twilio_rest import FakeTwilioRest

ACCOUNT = "AC" + "4" * 32
NUMBER = "+15005550006"
CALLEE = "+14155550123"
BODY = {"phone_number": CALLEE, "name": "John Doe", "line": "reminder",
        "variables": {"amount_due": "$120.00"}}


def conf(rest, **kw):
    c = dict(TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_AUTH_TOKEN=twilio.TEST_AUTH_TOKEN,
             TWILIO_PHONE_NUMBER=NUMBER, TWILIO_API_BASE=rest.base,
             LINES_DIR=LINES, VERIFIED_PHONE_NUMBERS=CALLEE, WORKERS=1)
    c.update(kw)
    return c


def request_call(d, body, raw=None, timeout=15):
    """POST /api/request-call; (status, headers, JSON body, seconds)."""
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(d.admin_base + "/api/request-call", data=data,
                                 method="POST")
    req.add_header("Content-Type", "application/json")
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            st, h, b = r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        st, h, b = e.code, e.headers, e.read().decode()
    return st, h, json.loads(b), time.monotonic() - t0


async def arequest(d, body, **kw):
    return await asyncio.to_thread(request_call, d, body, **kw)


def counters(d):
    return d.health()["counters"]


def record(d, sid):
    db = sqlite3.connect(d.conf["DATABASE_PATH"])
    try:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM calls WHERE call_sid = ?", (sid,)).fetchone()
        hist = [r[0] for r in db.execute(
            "SELECT status FROM call_status WHERE call_sid = ? ORDER BY at", (sid,))]
        return (dict(row) if row else None), hist
    finally:
        db.close()


@timeout(60)
async def test_outbound_human_answers_and_talks(env):
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, callee_seconds=1.5) as rest:
        d = env.daemon(**conf(rest)).start()
        st, _, b, _ = await arequest(d, BODY)
        expect_eq(st, 201, "status: %r" % b)
        expect_eq(b["status"], "queued", "status field")
        sid = b["call_sid"]
        expect(sid.startswith("CA") and len(sid) == 34, "sid %r" % sid)
        q = rest.creates[0]
        expect_eq(q.form["To"], [CALLEE], "To")
        expect_eq(q.form["From"], [NUMBER], "From falls back to TWILIO_PHONE_NUMBER")
        url = q.form["Url"][0]
        expect(re.fullmatch(re.escape(d.base) + r"/outbound/reminder\?t=[0-9a-f]{16}",
                            url), "Url with the call's token: %r" % url)
        expect_eq(q.form["StatusCallback"], [d.base + "/outbound/status"], "StatusCallback")
        expect_eq(q.form["StatusCallbackEvent"],
                  ["initiated", "ringing", "answered", "completed"], "events")
        expect_eq(q.form["AsyncAmd"], ["true"], "AsyncAmd")
        expect_eq(q.form["AsyncAmdStatusCallback"], [d.base + "/outbound/amd"], "AMD URL")
        # the reminder line has a voicemail message: detect the message end
        expect_eq(q.form["MachineDetection"], ["DetectMessageEnd"], "MachineDetection")
        await until(lambda: any(e[1] == "status" and e[2] == "completed"
                                for e in rest.events), 20, "the call's end")
        bad = [e for e in rest.events if e[1] == "error" or
               (e[1] in ("status", "amd") and e[3] != 204) or
               (e[1] == "twiml" and e[2] != 200)]
        expect_eq(bad, [], "callbacks refused or failed")
        s = rest.streams[0]
        expect_eq(s.params.get("caller"), CALLEE, "the callee is the caller")
        expect_eq(s.params.get("name"), "John Doe", "name parameter")
        expect_eq(s.params.get("var_amount_due"), "$120.00", "variable parameter")
        expect_eq(s.params.get("direction"), "outbound-api", "direction")
        expect(s.frames_sent > 50, "callee audio sent")
        expect(s.received, "the model's audio reached the callee")
        row, hist = await until(lambda: (lambda r: r if r[0] and r[0]["status"] ==
                                         "completed" else None)(record(d, sid)),
                                10, "the record")
        expect_eq(row["direction"], "outbound-api", "direction")
        expect_eq(row["to_number"], CALLEE, "to")
        expect_eq(row["from_number"], NUMBER, "from")
        # the worker's record of the same call kept the master's facts
        await until(lambda: record(d, sid)[0]["persona"] == "reminder", 10,
                    "the worker's record")
        row, hist = record(d, sid)
        expect_eq((row["direction"], row["from_number"]), ("outbound-api", NUMBER),
                  "direction and from after the worker's record")
        expect_eq(row["line"], "reminder", "line")
        expect_eq(row["answered_by"], "human", "answered_by")
        for want in ("queued", "ringing", "in-progress", "completed"):
            expect(want in hist, "status %s in %r" % (want, hist))
        c = counters(d)
        expect_eq(c["outbound_calls"], 1, "outbound_calls")
        expect(c["outbound_status_callbacks"] >= 4, "status callbacks counted")
        expect_eq(c["sig_rejected"], 0, "every callback was signed")
        # an unsigned status callback is refused
        req = urllib.request.Request(d.base + "/outbound/status",
                                     data=b"CallSid=%s&CallStatus=completed" % sid.encode(),
                                     method="POST")
        try:
            urllib.request.urlopen(req, timeout=5)
            expect(False, "unsigned callback accepted")
        except urllib.error.HTTPError as e:
            expect_eq(e.code, 403, "unsigned callback")


@timeout(60)
async def test_outbound_voicemail_leaves_the_message(env):
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, outcome="machine") as rest:
        d = env.daemon(**conf(rest)).start()
        st, _, b, _ = await arequest(d, BODY)
        expect_eq(st, 201, "status: %r" % b)
        sid = b["call_sid"]
        await until(lambda: rest.call_updates, 20, "the voicemail update")
        u = rest.call_updates[0]
        expect(u.path.endswith(sid + ".json"), "updated call %s" % u.path)
        tw = u.form["Twiml"][0]
        expect("calling for John Doe" in tw, "the message filled: %r" % tw)
        expect("<Hangup" in tw, "then hangs up: %r" % tw)
        await until(lambda: (lambda r: r[0] and r[0]["answered_by"] ==
                             "machine_end_beep")(record(d, sid)), 10, "answered_by")
        expect_eq(counters(d)["outbound_voicemails"], 1, "outbound_voicemails")
        call = (await rest.wait_ended(1, timeout=10))[0]
        expect("calling for John Doe" in (call.voicemail or ""),
               "the machine heard %r" % call.voicemail)
        expect_eq(call.final, "completed", "final status")


@timeout(60)
async def test_outbound_refusals_in_order(env):
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN) as rest:
        d = env.daemon(**conf(rest, ALLOW_ALL_US_CANADA="true")).start()
        cases = [
            (None, b"{not json", 400, "bad_json"),
            (dict(BODY, phone_number="4155550123"), None, 400, "not_e164"),
            (dict(BODY, line="nosuch"), None, 400, "unknown_line"),
            (dict(BODY, variables={}), None, 400, "missing_variable"),
            # a bad request to a number not allowed is a bad request first
            (dict(BODY, phone_number="+18765550123", line="nosuch"), None, 400,
             "unknown_line"),
            (dict(BODY, phone_number="+18765550123"), None, 403, "not_allowed"),
            (dict(BODY, phone_number="+19005550123"), None, 403, "not_allowed"),
            (dict(BODY, phone_number="+442071838750"), None, 403, "not_allowed"),
        ]
        for body, raw, want, reason in cases:
            st, _, b, _ = await arequest(d, body, raw=raw)
            expect_eq((st, b.get("error")), (want, reason), "%r" % (body or raw))
        expect_eq(rest.creates, [], "nothing refused reached Twilio")
        c = counters(d)
        expect_eq(c["outbound_refused_bad_json"], 1, "bad_json")
        expect_eq(c["outbound_refused_not_e164"], 1, "not_e164")
        expect_eq(c["outbound_refused_unknown_line"], 2, "unknown_line")
        expect_eq(c["outbound_refused_missing_variable"], 1, "missing_variable")
        expect_eq(c["outbound_refused_not_allowed"], 3, "not_allowed")
        # the two-field body takes DEFAULT_OUTBOUND_LINE (reminder), which
        # needs amount_due: refused for it, not for the line
        st, _, b, _ = await arequest(d, {"phone_number": CALLEE, "name": "John Doe"})
        expect_eq((st, b["error"]), (400, "missing_variable"), "two-field body")
        expect("amount_due" in b["message"], b["message"])
        m = d.admin_get("/metrics")[2]
        expect("voxrelay_outbound_refused_not_allowed_total 3" in m, "in /metrics")


@timeout(90)
async def test_outbound_cooldown_survives_a_restart(env):
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, outcome="busy") as rest:
        d = env.daemon(**conf(rest, OUTBOUND_COOLDOWN=300)).start()
        st, _, b, _ = await arequest(d, BODY)
        expect_eq(st, 201, "first: %r" % b)
        st, h, b, _ = await arequest(d, BODY)
        expect_eq((st, b["error"]), (429, "cooldown"), "second")
        ra = int(h["Retry-After"])
        expect(290 <= ra <= 300, "Retry-After %d" % ra)
        await asyncio.to_thread(d.stop)
        d.start()
        st, h, b, _ = await arequest(d, BODY)
        expect_eq((st, b["error"]), (429, "cooldown"), "after the restart")
        expect_eq(len(rest.creates), 1, "one call created")
        expect_eq(counters(d)["outbound_refused_cooldown"], 1, "counted")


@timeout(60)
async def test_outbound_at_capacity(env):
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, callee_seconds=6) as rest:
        other = "+14155550124"
        d = env.daemon(**conf(rest, MAX_CONCURRENT_CALLS=1,
                              VERIFIED_PHONE_NUMBERS=CALLEE + "," + other)).start()
        st, _, b, _ = await arequest(d, BODY)
        expect_eq(st, 201, "first: %r" % b)
        st, h, b, _ = await arequest(d, dict(BODY, phone_number=other))
        expect_eq((st, b["error"]), (503, "capacity"), "second while the first runs")
        expect("Retry-After" in h, "Retry-After")
        # inbound calls are not refused because outbound is full
        wh = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(77),
                                     "+14155550999", route="hvac")
        expect(wh.status == 200 and "Connect" in wh.verbs, "inbound refused: %s" % wh.body)
        await until(lambda: any(e[1] == "status" and e[2] == "completed"
                                for e in rest.events), 20, "the first call's end")
        st, _, b, _ = await arequest(d, dict(BODY, phone_number=other))
        expect_eq(st, 201, "after the first ended: %r" % b)


@timeout(60)
async def test_outbound_429_then_success(env):
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, fail_creates_first=1,
                              fail_status=429, outcome="no-answer") as rest:
        d = env.daemon(**conf(rest)).start()
        st, _, b, secs = await arequest(d, BODY)
        expect_eq(st, 201, "status: %r" % b)
        expect_eq(len(rest.creates), 2, "retried once")
        expect(secs < 10, "answered in %.1f s" % secs)
        expect(counters(d)["rest_retries"] >= 1, "rest_retries")


@timeout(60)
async def test_outbound_503s_until_503(env):
    # Twilio's 503 says it made no call: retried with backoff
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, fail_creates_first=100,
                              fail_status=503) as rest:
        d = env.daemon(**conf(rest)).start()
        st, h, b, secs = await arequest(d, BODY)
        expect_eq((st, b["error"]), (503, "twilio_failed"), "status")
        expect(secs < 10, "answered in %.1f s" % secs)
        expect(len(rest.creates) >= 3, "retried: %d" % len(rest.creates))
        expect_eq(counters(d)["outbound_refused_twilio"], 1, "counted")
        # a refused request starts no cooldown
        rest.fail_creates_first = 0
        st, _, b, _ = await arequest(d, BODY)
        expect_eq(st, 201, "after Twilio recovered: %r" % b)


def response_creates(conn):
    return [(t, e) for t, e in conn.of_type("response.create")]


@timeout(60)
async def test_outbound_templates_and_who_speaks_first(env):
    from fake_openai import FakeOpenAI
    # the callee says nothing the model hears, and Twilio's `human` verdict
    # comes late: it greets after the pause
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, callee_seconds=3,
                              amd_seconds=3) as rest, \
            FakeOpenAI(mode="scripted", script=[], after_script="idle") as srv:
        d = env.daemon(**conf(rest, OPENAI_URL=srv.url(),
                              OUTBOUND_GREETING_PAUSE=1500, OUTBOUND_COOLDOWN=0)).start()
        st, _, b, _ = await arequest(d, dict(BODY, name='Ann "Q" Lee'))
        expect_eq(st, 201, "status: %r" % b)
        await until(lambda: srv.accepted and response_creates(srv.accepted[0]),
                    15, "the greeting")
        conn = srv.accepted[0]
        t0, _ = conn.first("session.update")
        # what the model had been told when the greeting was asked for
        t1, _ = response_creates(conn)[0]
        instr = [e["session"].get("instructions") for t, e in conn.of_type("session.update")
                 if t <= t1 and e["session"].get("instructions")][-1]
        expect('Ann "Q" Lee' in instr and "$120.00" in instr,
               "instructions filled: %r" % instr[:300])
        expect("{{" not in instr, "a variable left: %r" % instr[:300])
        t1, rc = response_creates(conn)[0]
        expect(t1 - t0 >= 1.4, "greeted %.2f s after the session opened" % (t1 - t0))
        g = rc.get("response", {}).get("instructions", "")
        expect('Ann "Q" Lee' in g and "AI" in g, "greeting filled: %r" % g)
        # the verdict after the greeting greets nobody again
        await rest.wait_ended(1, timeout=20)
        expect_eq(rest.ended()[0].verdict, "human", "verdict posted")
        expect_eq(len(response_creates(conn)), 1, "greeted once")
    # the callee speaks first: no greeting of its own, the VAD answers them
    script = [{"wait_event": "session.update"}, {"wait_ms": 300},
              {"send": {"type": "input_audio_buffer.speech_started",
                        "audio_start_ms": 100, "item_id": "item_c1"}}]
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, callee_seconds=3,
                              sid_base=0xdef000) as rest, \
            FakeOpenAI(mode="scripted", script=script, after_script="idle") as srv:
        d = env.daemon(**conf(rest, OPENAI_URL=srv.url(),
                              OUTBOUND_GREETING_PAUSE=1500, OUTBOUND_COOLDOWN=0)).start()
        st, _, b, _ = await arequest(d, BODY)
        expect_eq(st, 201, "status: %r" % b)
        await until(lambda: srv.accepted and srv.accepted[0].first("session.update"),
                    15, "the session")
        await asyncio.sleep(2.5)
        expect_eq(response_creates(srv.accepted[0]), [], "greeted over the callee")
        expect("the callee spoke first" in d.log(), "logged")


@timeout(60)
async def test_outbound_session_open_before_start_greets_after_it(env):
    """Twilio slow to send the stream's `start`: the model's session opens
    first, but the greeting waits for `start`, which says the call is
    outbound and brings the callee's name, so it is filled, and the
    instructions in force when it is asked for are filled too."""
    from fake_openai import FakeOpenAI
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, callee_seconds=3,
                              amd_seconds=5, start_delay=1.0) as rest, \
            FakeOpenAI(mode="scripted", script=[], after_script="idle") as srv:
        d = env.daemon(**conf(rest, OPENAI_URL=srv.url(),
                              OUTBOUND_GREETING_PAUSE=0)).start()
        st, _, b, _ = await arequest(d, BODY)
        expect_eq(st, 201, "status: %r" % b)
        await until(lambda: srv.accepted and response_creates(srv.accepted[0]),
                    15, "the greeting")
        conn = srv.accepted[0]
        t0, _ = conn.first("session.update")
        t1, rc = response_creates(conn)[0]
        expect(t1 - t0 >= 0.8, "greeted %.2f s after the session opened, "
               "before the stream's start" % (t1 - t0))
        g = rc.get("response", {}).get("instructions", "")
        expect("John Doe" in g and "{{" not in g, "greeting filled: %r" % g)
        instr = [e["session"].get("instructions") for t, e in conn.of_type("session.update")
                 if t <= t1 and e["session"].get("instructions")][-1]
        expect("John Doe" in instr and "{{" not in instr,
               "instructions filled: %r" % instr[:200])
        await rest.wait_ended(1, timeout=20)
        expect_eq(len(response_creates(conn)), 1, "greeted once")


@timeout(60)
async def test_outbound_verify_identity_against_the_calls_variables(env):
    from fake_openai import FakeOpenAI
    # the collections line's own demonstration facts, then the call's
    script = [{"wait_event": "input_audio_buffer.append", "count": 10},
              {"tool_call": {"name": "verify_identity",
                             "arguments": {"full_name": "Jordan Avery",
                                           "account_last4": "4471"}}},
              {"tool_call": {"name": "verify_identity",
                             "arguments": {"full_name": "pat  doe",
                                           "account_last4": "98-76"}}}]
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, callee_seconds=4) as rest, \
            FakeOpenAI(mode="scripted", script=script, after_script="idle") as srv:
        d = env.daemon(**conf(rest, OPENAI_URL=srv.url())).start()
        st, _, b, _ = await arequest(d, {"phone_number": CALLEE, "name": "Pat Doe",
                                         "line": "collections",
                                         "variables": {"account_last4": "9876"}})
        expect_eq(st, 201, "status: %r" % b)
        await until(lambda: srv.accepted and len(srv.accepted[0].function_outputs) >= 2,
                    20, "two verdicts")
        outs = [json.loads(o["output"]) for o in srv.accepted[0].function_outputs]
        expect_eq([o["verified"] for o in outs], [False, True], "verdicts")


@timeout(60)
async def test_outbound_line_checks_its_own_facts_when_it_says_so(env):
    """A line with "facts_from": "line" checks an outbound callee against
    the line's facts, not the call's variables (the direction's default)."""
    import glob
    import os
    import shutil
    from fake_openai import FakeOpenAI
    lines = os.path.join(env.tmp, "lines")
    os.makedirs(lines, exist_ok=True)
    for f in glob.glob(os.path.join(LINES, "*.json")):
        shutil.copy(f, lines)
    with open(os.path.join(LINES, "collections.json")) as f:
        line = json.load(f)
    line["facts_from"] = "line"
    with open(os.path.join(lines, "collections.json"), "w") as f:
        json.dump(line, f)
    script = [{"wait_event": "input_audio_buffer.append", "count": 10},
              {"tool_call": {"name": "verify_identity",
                             "arguments": {"full_name": "Jordan Avery",
                                           "account_last4": "4471"}}},
              {"tool_call": {"name": "verify_identity",
                             "arguments": {"full_name": "pat  doe",
                                           "account_last4": "98-76"}}}]
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, callee_seconds=4) as rest, \
            FakeOpenAI(mode="scripted", script=script, after_script="idle") as srv:
        d = env.daemon(**conf(rest, OPENAI_URL=srv.url(), LINES_DIR=lines)).start()
        st, _, b, _ = await arequest(d, {"phone_number": CALLEE, "name": "Pat Doe",
                                         "line": "collections",
                                         "variables": {"account_last4": "9876"}})
        expect_eq(st, 201, "status: %r" % b)
        await until(lambda: srv.accepted and len(srv.accepted[0].function_outputs) >= 2,
                    20, "two verdicts")
        outs = [json.loads(o["output"]) for o in srv.accepted[0].function_outputs]
        expect_eq([o["verified"] for o in outs], [True, False], "verdicts")


@timeout(90)
async def test_outbound_busy_no_answer_failed_recorded(env):
    """Each unanswered outcome is recorded with its status and end reason,
    gives back its place under MAX_CONCURRENT_CALLS and still starts the
    number's cooldown (Twilio created the call)."""
    nums = {"busy": "+14155550131", "no-answer": "+14155550132",
            "failed": "+14155550133"}
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, ring_seconds=0.5) as rest:
        for outcome, n in nums.items():
            rest.plan(n, outcome)
        d = env.daemon(**conf(rest, MAX_CONCURRENT_CALLS=1, OUTBOUND_COOLDOWN=300,
                              VERIFIED_PHONE_NUMBERS=",".join(nums.values()))).start()
        for outcome, n in nums.items():
            # one place only: refused (capacity) unless the last call gave
            # its place back
            st, _, b, _ = await arequest(d, dict(BODY, phone_number=n))
            expect_eq(st, 201, "%s: %r" % (outcome, b))
            sid = b["call_sid"]
            await rest.wait_ended(1, number=n, timeout=15)
            row, hist = await until(lambda: (lambda r: r if r[0] and r[0]["status"] ==
                                             outcome else None)(record(d, sid)),
                                    10, "the %s record" % outcome)
            expect_eq(row["end_reason"], outcome, "end_reason")
            expect(row["ended_at"] and row["ended_at"] >= row["started_at"],
                   "ended_at %r" % row["ended_at"])
            expect(row["answered_at"] is None, "%s answered at %r" % (outcome,
                                                                   row["answered_at"]))
            expect_eq(row["direction"], "outbound-api", "direction")
            want = ["queued", outcome] if outcome == "failed" else \
                ["queued", "ringing", outcome]
            expect_eq([h for h in hist if h != "queued"] , want[1:],
                      "%s history %r" % (outcome, hist))
            expect_eq(rest.events and [e for e in rest.events
                                        if e[0] == sid and e[1] == "twiml"], [],
                      "%s fetched the TwiML" % outcome)
        # the place is free again after the last one too
        expect_eq(counters(d)["outbound_calls"], 3, "outbound_calls")
        expect_eq(counters(d).get("outbound_refused_capacity", 0), 0, "capacity refusals")
        # and each number is in its cooldown
        for outcome, n in nums.items():
            st, h, b, _ = await arequest(d, dict(BODY, phone_number=n))
            expect_eq((st, b.get("error")), (429, "cooldown"), "%s again" % outcome)
        expect_eq([rest.count(n) for n in nums.values()], [1, 1, 1],
                  "one Calls.json request each")
        expect_eq(counters(d)["outbound_refused_cooldown"], 3, "cooldown refusals")


@timeout(90)
async def test_outbound_human_verdict_greets_before_the_pause(env):
    """Twilio's `human` verdict reaches the worker running the call: the
    model greets then, not after OUTBOUND_GREETING_PAUSE and not only when
    the callee speaks.  Twice: the verdict after the stream's start, and
    before it (kept by the master until the stream starts)."""
    from fake_openai import FakeOpenAI
    # the callee says something only at 4 s
    script = [{"wait_event": "session.update"}, {"wait_ms": 4000},
              {"send": {"type": "input_audio_buffer.speech_started",
                        "audio_start_ms": 3900, "item_id": "item_c1"}}]
    for early, base in ((False, 0xa1000), (True, 0xa2000)):
        async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, callee_seconds=6,
                                  amd_seconds=0.8, amd_early=early,
                                  sid_base=base) as rest, \
                FakeOpenAI(mode="scripted", script=script, after_script="idle") as srv:
            d = env.daemon(**conf(rest, OPENAI_URL=srv.url(),
                                  OUTBOUND_GREETING_PAUSE=8000,
                                  OUTBOUND_COOLDOWN=0)).start()
            st, _, b, _ = await arequest(d, BODY)
            expect_eq(st, 201, "status: %r" % b)
            await until(lambda: srv.accepted and response_creates(srv.accepted[0]),
                        15, "the greeting (early verdict: %s)" % early)
            conn = srv.accepted[0]
            t0, _ = conn.first("session.update")
            t1, rc = response_creates(conn)[0]
            call = rest.calls[b["call_sid"]]
            expect_eq(call.verdict, "human", "the verdict posted")
            expect(t1 >= call.amd_at, "greeted %.2f s before the verdict" %
                   (call.amd_at - t1))
            expect(t1 - t0 < 3.0, "greeted %.2f s after the session opened (pause 8 s, "
                   "callee speaks at 4 s; early verdict: %s)" % (t1 - t0, early))
            g = rc.get("response", {}).get("instructions", "")
            expect("John Doe" in g, "the line's greeting, filled: %r" % g)
            expect_eq(len(response_creates(conn)), 1, "greeted once")
            if early:
                kinds = [e[1] for e in rest.events if e[0] == call.sid]
                expect(kinds.index("amd") < kinds.index("twiml"),
                       "the verdict before the TwiML: %r" % kinds)
                expect("at the stream's start" in d.log(), "kept for the stream")
            await rest.wait_ended(1, timeout=20)
            expect_eq(len(response_creates(conn)), 1, "greeted once in all")


@timeout(90)
async def test_outbound_refused_while_draining(env):
    """After SIGTERM, while a live outbound call keeps the daemon draining,
    /api/request-call is 503 `draining` (counted), and nothing reaches
    Twilio; the live call ends as it would."""
    other = "+14155550124"
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, callee_seconds=5) as rest:
        d = env.daemon(**conf(rest, DRAIN_TIMEOUT=20,
                              VERIFIED_PHONE_NUMBERS=CALLEE + "," + other)).start()
        st, _, b, _ = await arequest(d, BODY)
        expect_eq(st, 201, "first: %r" % b)
        await until(lambda: rest.streams and rest.streams[0].frames_sent > 10, 15,
                    "the call's stream")
        d.signal(signal.SIGTERM)
        await asyncio.to_thread(
            d.wait_for, lambda: d.health()["status"] == "draining", 5, "draining")
        st, h, b, _ = await arequest(d, dict(BODY, phone_number=other))
        expect_eq((st, b.get("error")), (503, "draining"), "while draining: %r" % b)
        expect("Retry-After" in h, "Retry-After")
        # a bad request is still a bad request first
        st, _, b, _ = await arequest(d, dict(BODY, phone_number="4155550124"))
        expect_eq((st, b.get("error")), (400, "not_e164"), "bad while draining")
        expect_eq(rest.count(other), 0, "nothing asked of Twilio")
        expect_eq(counters(d)["outbound_refused_draining"], 1, "counted")
        m = d.admin_get("/metrics")[2]
        expect("voxrelay_outbound_refused_draining_total 1" in m, "in /metrics")
        await rest.wait_ended(1, timeout=20)
    expect_eq(await asyncio.to_thread(d.wait_exit, 20), 0, "exit after the drain")


@timeout(90)
async def test_outbound_transfer_back_to_the_outbound_line(env):
    """A call placed here, transferred, with nobody answering the dial:
    the way back goes to the outbound line's path (the marker says
    outbound), and the resumed stream has the callee as the caller, with
    the request's name and variables; our own number is never billed."""
    import glob
    import os
    import shutil
    from fake_openai import FakeOpenAI
    lines = os.path.join(env.tmp, "lines")
    os.makedirs(lines, exist_ok=True)
    for f in glob.glob(os.path.join(LINES, "*.json")):
        shutil.copy(f, lines)
    with open(os.path.join(LINES, "reminder.json")) as f:
        line = json.load(f)
    line.update(transfer_targets=[{"label": "billing",
                                   "sip": "sip:billing@pbx.example.com"}],
                transfer={"no_answer": "line"},
                keypad={"0": {"action": "transfer", "target": "billing"}})
    with open(os.path.join(lines, "callback.json"), "w") as f:
        json.dump(line, f)
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, callee_seconds=3,
                              amd_seconds=0.3, dial_status="no-answer") as rest, \
            FakeOpenAI(mode="vad", reply_ms=400) as srv:
        d = env.daemon(**conf(rest, OPENAI_URL=srv.url(), LINES_DIR=lines,
                              OUTBOUND_GREETING_PAUSE=0)).start()
        st, _, b, _ = await arequest(d, dict(BODY, line="callback"))
        expect_eq(st, 201, "status: %r" % b)
        sid = b["call_sid"]
        call = rest.calls[sid]
        conn = await srv.wait_connection(1, timeout=15)
        await until(lambda: conn.responses and conn.active is None, 10, "the greeting")
        await call.stream.send_dtmf("0")
        await until(lambda: len(call.streams) >= 2, 20, "the stream on the way back")
        expect_eq([t for t, _ in call.dials], ["sip:billing@pbx.example.com"], "dialled")
        action = call.dials[0][1].get("action", "")
        expect(action.startswith(d.base + "/transfer/callback/done?resume="),
               "action %r" % action)
        expect(action.endswith(".o"), "an outbound call's marker: %r" % action)
        ev = [e for e in rest.events if e[0] == sid and e[1] in ("dial_action", "redirect")]
        expect_eq([(e[1], e[2]) for e in ev], [("dial_action", 200), ("redirect", 200)],
                  "the dial's action and the redirect")
        back = ET.fromstring(ev[0][3])[0]
        expect_eq(back.tag, "Redirect", "after no answer: %s" % ev[0][3])
        expect_eq(back.text, d.base + "/outbound/callback?" + action.split("?", 1)[1],
                  "the way back is the outbound line's")
        s2 = call.streams[1]
        expect_eq(s2.params.get("caller"), CALLEE, "the callee is the caller again")
        expect_eq(s2.params.get("direction"), "outbound-api", "direction")
        expect_eq((s2.params.get("name"), s2.params.get("var_amount_due")),
                  ("John Doe", "$120.00"), "the request's name and variables")
        conn2 = await srv.wait_connection(2, timeout=10)
        await until(lambda: any(m.get("event") == "media" for m in s2.received), 10,
                    "the model's audio on the resumed stream")
        # the session may open before the stream's start brings the
        # variables; every response must begin under filled instructions
        expect(conn2.responses, "no response on the resumed stream")
        for r in conn2.responses:
            instr = r["instructions"] or ""
            expect("John Doe" in instr and "{{" not in instr, "filled: %r" % instr[:200])
        expect_eq(counters(d)["voice_resumes"], 1, "voice_resumes")
        await rest.wait_ended(1, timeout=20)
        expect_eq(call.final, "completed", "the call's end")
        row, _ = await until(lambda: (lambda r: r if r[0] and r[0]["status"] ==
                                      "completed" else None)(record(d, sid)),
                             10, "the record")
        expect_eq((row["direction"], row["from_number"], row["to_number"]),
                  ("outbound-api", NUMBER, CALLEE), "the record's numbers")
        usage = d.admin_get("/usage-data")[2]
        expect(CALLEE in usage and NUMBER not in usage,
               "billed to the callee only: %r" % usage)


@timeout(60)
async def test_outbound_quiet_call_is_asked_of_twilio(env):
    """A call with no status callback for longer than its line lets a call
    last (max_call_minutes, here 1.2 s) plus OUTBOUND_STATUS_GRACE (2 s)
    is asked about (GET Calls/{sid}.json): one whose final callback was
    lost is closed from the answer; one still ringing keeps waiting, and
    its own final callback closes it."""
    import os
    import shutil
    lines = os.path.join(env.tmp, "lines")
    shutil.copytree(LINES, lines)
    with open(os.path.join(lines, "reminder.json")) as f:
        line = json.load(f)
    line["max_call_minutes"] = 0.02
    with open(os.path.join(lines, "reminder.json"), "w") as f:
        json.dump(line, f)
    lost, ringing = "+14155550141", "+14155550142"
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, ring_seconds=9) as rest:
        rest.plan(lost, "busy").drop_final(lost)
        rest.plan(ringing, "no-answer")
        d = env.daemon(**conf(rest, LINES_DIR=lines, OUTBOUND_STATUS_GRACE=2,
                              VERIFIED_PHONE_NUMBERS=lost + "," + ringing)).start()
        sids = {}
        for n in (lost, ringing):
            st, _, b, _ = await arequest(d, dict(BODY, phone_number=n))
            expect_eq(st, 201, "%s: %r" % (n, b))
            sids[n] = b["call_sid"]
        await rest.wait_ended(1, number=lost, timeout=10)
        t_end = time.monotonic()
        row, hist = await until(lambda: (lambda r: r if r[0] and r[0]["status"] ==
                                         "busy" else None)(record(d, sids[lost])),
                                10, "the lost call closed from Twilio's answer")
        took = time.monotonic() - t_end
        expect(took > 2.5, "asked %.1f s after its last callback, before 3.2 s" % took)
        expect_eq((row["end_reason"], row["duration_ms"]), ("busy", 0), "the record")
        expect(row["ended_at"] >= row["started_at"], "ended_at")
        expect_eq(hist[-1], "busy", "the history")
        expect_eq(len(rest.fetched(sids[lost])), 1, "asked once")
        # the one ringing was asked too, found live, and left to its callbacks
        await until(lambda: rest.fetched(sids[ringing]), 5, "the ringing call asked")
        expect_eq(record(d, sids[ringing])[0]["status"], "ringing", "still ringing")
        await rest.wait_ended(1, number=ringing, timeout=15)
        row, _ = await until(lambda: (lambda r: r if r[0] and r[0]["status"] ==
                                      "no-answer" else None)(record(d, sids[ringing])),
                             10, "the ringing call's own final callback")
        c = counters(d)
        expect(c["outbound_status_query_live"] >= 1, "live answers counted: %r" % c)
        expect_eq(c["outbound_status_query_final"], 1, "final answers counted")
        n = len(rest.fetches)
        await asyncio.sleep(4.5)
        expect_eq(len(rest.fetches), n, "not asked about once closed")
        print("closed %.1f s after its last callback" % took)


@timeout(90)
async def test_outbound_callbacks_before_the_create_answer(env):
    """Twilio posts initiated, ringing and even the final busy before its
    answer to the create reaches the daemon: the callbacks are kept and
    applied in order once the answer names the call.  A human call whose
    TwiML Twilio asks for before that answer is named by the Url's token
    and talks."""
    busy, human = "+14155550141", "+14155550142"
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, answer_create_after="end",
                              callee_seconds=1.0) as rest:
        rest.plan(busy, "busy")
        rest.plan(human, "human")
        d = env.daemon(**conf(rest, VERIFIED_PHONE_NUMBERS=busy + "," + human,
                              OUTBOUND_COOLDOWN=0)).start()
        st, _, b, secs = await arequest(d, dict(BODY, phone_number=busy))
        expect_eq(st, 201, "busy: %r" % b)
        expect(secs < 10, "answered in %.1f s" % secs)
        call = rest.calls[b["call_sid"]]
        expect_eq([x for x, _ in call.statuses], ["initiated", "ringing", "busy"],
                  "posted before the create's answer")
        expect(call.ended, "the call was over before its create was answered")
        row, hist = await until(lambda: (lambda r: r if r[0] and r[0]["status"] ==
                                         "busy" else None)(record(d, b["call_sid"])),
                                10, "the busy record")
        expect_eq(hist, ["queued", "ringing", "busy"], "status history")
        expect_eq(row["end_reason"], "busy", "end_reason")
        expect(row["ended_at"] >= row["started_at"], "ended_at %r after started_at %r" %
               (row["ended_at"], row["started_at"]))
        c = counters(d)
        expect_eq((c["outbound_early_callbacks"], c["outbound_early_applied"],
                   c["outbound_early_expired"]), (3, 3, 0), "kept and applied")

        st, _, b, secs = await arequest(d, dict(BODY, phone_number=human))
        expect_eq(st, 201, "human: %r" % b)
        sid = b["call_sid"]
        # answered once Twilio's TwiML request named the call
        expect(getattr(rest.creates[1], "answered_at", None) is None,
               "the request was answered before the create was")
        await rest.wait_ended(1, number=human, timeout=20)
        twiml = [e for e in rest.events if e[0] == sid and e[1] == "twiml"]
        expect_eq([e[2] for e in twiml], [200], "its TwiML, before its sid was known")
        s = rest.streams[-1]
        expect_eq(s.params.get("name"), "John Doe", "the stream has the call's name")
        expect(s.frames_sent > 20, "the callee talked")
        row, hist = await until(lambda: (lambda r: r if r[0] and r[0]["status"] ==
                                         "completed" else None)(record(d, sid)),
                                10, "the completed record")
        expect_eq(hist, ["queued", "ringing", "in-progress", "completed"],
                  "status history")
        expect_eq(row["answered_by"], "human", "answered_by")
        bad = [e for e in rest.events if e[1] == "error" or
               (e[1] in ("status", "amd") and e[3] != 204)]
        expect_eq(bad, [], "callbacks refused or failed")
        expect_eq(rest.count(), 2, "one create each")
        c = counters(d)
        expect_eq((c["outbound_early_callbacks"], c["outbound_early_applied"]), (6, 6),
                  "initiated, ringing, in-progress kept and applied too")


@timeout(90)
async def test_outbound_create_timeout_finds_the_call(env):
    """Twilio made the call but its answer to the create comes after the
    daemon's timeout: the daemon looks for the call among Twilio's calls to
    the number, finds it by its Url's token and adopts it; nobody is
    called twice, and the request gets the call within 10 s."""
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, create_delay=9.5,
                              outcome="no-answer", ring_seconds=6) as rest:
        d = env.daemon(**conf(rest)).start()
        st, _, b, secs = await arequest(d, BODY)
        expect_eq(st, 201, "status: %r" % b)
        expect(secs < 10, "answered in %.1f s" % secs)
        expect_eq(list(rest.calls), [b["call_sid"]], "the call made is the one adopted")
        expect_eq(len(rest.lookups), 1, "looked once")
        q = rest.lookups[0].query
        expect_eq(q.get("To"), [CALLEE], "the list asked for the number")
        expect_eq((q.get("StartTime>"), q.get("PageSize")), (None, ["50"]),
                  "the latest calls, not by start time (a queued call has none)")
        await rest.wait_ended(1, timeout=20)
        # the late answer went out (to nobody): still one call
        await until(lambda: getattr(rest.creates[0], "answered_at", None), 15,
                    "the create's late answer")
        expect_eq(rest.count(CALLEE), 1, "one create")
        row, hist = await until(lambda: (lambda r: r if r[0] and r[0]["status"] ==
                                         "no-answer" else None)(record(d, b["call_sid"])),
                                10, "the record")
        expect_eq(hist, ["queued", "ringing", "no-answer"], "status history")
        c = counters(d)
        expect_eq((c["outbound_create_lookups"], c["outbound_create_found"],
                   c["outbound_calls"]), (1, 1, 1), "counters")


@timeout(90)
async def test_outbound_create_timeout_finds_a_call_still_queued(env):
    """The create's answer comes after the timeout and the call is still
    queued when the daemon looks for it: Twilio's StartTime>= filter would
    leave it out (no start time yet), so the daemon asks for the latest
    calls and filters by date_created; found without a Url, adopted, and
    the number is called once."""
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, create_delay=9.5,
                              outcome="busy", list_shows_url=False) as rest:
        rest.queue_seconds = 7     # queued past the lookup (about 4 s in)
        d = env.daemon(**conf(rest)).start()
        st, _, b, secs = await arequest(d, BODY)
        expect_eq(st, 201, "status: %r" % b)
        expect(secs < 10, "answered in %.1f s" % secs)
        expect_eq(list(rest.calls), [b["call_sid"]], "the call made is the one adopted")
        expect_eq(len(rest.lookups), 1, "looked once")
        await rest.wait_ended(1, timeout=20)
        expect_eq(rest.count(CALLEE), 1, "one create")
        row, _ = await until(lambda: (lambda r: r if r[0] and r[0]["status"] ==
                                      "busy" else None)(record(d, b["call_sid"])),
                             10, "the record")


@timeout(90)
async def test_outbound_create_500_looks_before_asking_again(env):
    """A 500 may come after Twilio made the call: the daemon looks first.
    Made (found without a Url in Twilio's list, by its number, ours and
    its time): adopted.  Not made: asked once more."""
    made, unmade = "+14155550151", "+14155550152"
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, answer_made_with=500,
                              list_shows_url=False, outcome="no-answer",
                              ring_seconds=0.3) as rest:
        rest.plan(unmade, 500, "no-answer")
        d = env.daemon(**conf(rest, VERIFIED_PHONE_NUMBERS=made + "," + unmade)).start()
        st, _, b, secs = await arequest(d, dict(BODY, phone_number=made))
        expect_eq(st, 201, "made: %r" % b)
        expect_eq(rest.count(made), 1, "not asked again")
        expect_eq(list(rest.calls), [b["call_sid"]], "adopted")
        st, _, b, secs = await arequest(d, dict(BODY, phone_number=unmade))
        expect_eq(st, 201, "unmade: %r" % b)
        expect_eq(rest.count(unmade), 2, "asked once more")
        expect_eq(len(rest.lookups), 2, "one look each")
        expect_eq(rest.calls_to(unmade)[0].sid, b["call_sid"], "the second create's call")


@timeout(90)
async def test_outbound_call_left_ringing_counts_after_a_restart(env):
    """MAX_CONCURRENT_CALLS=1: a call still ringing at Twilio when the
    master is killed (kill -9) holds its place after the restart: a
    request is refused 503 capacity while Twilio says it rings, and goes
    through once its final callback (no-answer) has come."""
    other = "+14155550125"
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, outcome="no-answer",
                              ring_seconds=12) as rest:
        d = env.daemon(**conf(rest, MAX_CONCURRENT_CALLS=1,
                              VERIFIED_PHONE_NUMBERS=CALLEE + "," + other)).start()
        st, _, b, _ = await arequest(d, BODY)
        expect_eq(st, 201, "first: %r" % b)
        sid = b["call_sid"]
        await until(lambda: (record(d, sid)[0] or {}).get("status") == "ringing", 10,
                    "the call ringing, stored")
        d.kill9()
        d.start()
        expect(not rest.calls[sid].ended, "still ringing at Twilio after the restart")
        st, h, b, _ = await arequest(d, dict(BODY, phone_number=other))
        expect_eq((st, b.get("error")), (503, "capacity"),
                  "while the last run's call rings: %r" % b)
        expect("Retry-After" in h, "Retry-After")
        await until(lambda: rest.fetched(sid), 10, "the ringing call asked about")
        st, _, b, _ = await arequest(d, dict(BODY, phone_number=other))
        expect_eq((st, b.get("error")), (503, "capacity"),
                  "Twilio says it rings: %r" % b)
        expect(not rest.calls[sid].ended, "asked while it still rang")
        await rest.wait_ended(1, number=CALLEE, timeout=20)
        await until(lambda: (record(d, sid)[0] or {}).get("status") == "no-answer", 10,
                    "its final callback stored")
        st, _, b, _ = await arequest(d, dict(BODY, phone_number=other))
        expect_eq(st, 201, "after its final status: %r" % b)
        expect_eq([r.form["To"][0] for r in rest.creates], [CALLEE, other],
                  "one call each")
        expect(counters(d)["outbound_refused_capacity"] >= 2, "refusals counted")
