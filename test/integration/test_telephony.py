"""Telephony control on a line: the caller's keypad (each action, the
default item told to the model, hostile keys and floods), the hang-up that
ends the call at Twilio too, and the relay services behind them."""

import asyncio
import base64
import json
import os
import time

import twilio
from fake_openai import FakeOpenAI
from harness import expect, expect_eq, timeout
from twilio_rest import FakeTwilioRest

ACCOUNT = "AC" + "3" * 32
NUMBER = "+15005550006"


def write_line(dirname, name, **fields):
    with open(os.path.join(dirname, name + ".json"), "w") as f:
        json.dump(fields, f)


def counters(d):
    return d.health()["counters"]


def call_record(d, sid, pred=None, secs=5):
    """/api/call/{sid}, once pred(record) holds (bounded by secs)."""
    deadline = time.monotonic() + secs
    while True:
        st, _, body = d.admin_get("/api/call/" + sid, check=False)
        rec = json.loads(body) if st == 200 else None
        if rec is not None and (pred is None or pred(rec)):
            return rec
        if time.monotonic() >= deadline:
            raise AssertionError("call %s record: %s %s" % (sid, st, body[:300]))
        time.sleep(0.1)


def user_texts(conn):
    """The text of every user item the daemon created, in order."""
    out = []
    for _, e in conn.of_type("conversation.item.create"):
        item = e.get("item") or {}
        if item.get("type") == "message" and item.get("role") == "user":
            out += [p.get("text") for p in item.get("content", [])]
    return out


async def until(pred, secs, what):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


async def open_call(d, n, route, caller="+14155557700"):
    wh = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(n), caller,
                                 NUMBER, route)
    expect(wh.stream_url is not None, "no stream: %s %s" % (wh.status, wh.body))
    s = twilio.Stream(wh.stream_url, twilio.call_sid(n), twilio.stream_sid(n), wh.params)
    await s.open()
    return s


async def quiet(conn, responses):
    """Wait until `responses` responses were asked for and all are done."""
    await until(lambda: len(conn.response_requests) >= responses and conn.active is None,
                10, "%d responses done" % responses)


async def upgrade_status(url):
    """101 if the stream opens (then closed at once), else the refusal's status."""
    try:
        ws = await twilio.websockets.connect(url, open_timeout=5)
    except twilio.websockets.InvalidStatusCode as e:
        return e.status_code
    await ws.close()
    return 101


def desk_line(env, **extra):
    lines = os.path.join(env.tmp, "lines")
    os.makedirs(lines, exist_ok=True)
    fields = dict(app="agent", persona="default", free_minutes=None, sms=None,
                  keypad={"9": "end_call", "*": "repeat",
                          "2": {"action": "persona", "persona": "hvac"}})
    fields.update(extra)
    write_line(lines, "desk", **fields)
    return lines


@timeout(60)
async def test_keypad_default_goes_to_the_model_and_floods_close_nothing(env):
    lines = desk_line(env)
    async with FakeOpenAI(mode="vad", reply_ms=300) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=lines, WORKERS=1).start()
        c0 = await asyncio.to_thread(counters, d)
        s = await open_call(d, 1, "desk")
        conn = await srv.wait_connection(1)
        await quiet(conn, 1)                      # the greeting
        await s.send_dtmf("5")
        await until(lambda: "The caller pressed 5" in user_texts(conn), 5, "the item")
        await until(lambda: len(conn.response_requests) >= 2, 5, "an answer asked for")
        # keys that are no keys: counted, ignored, the call goes on
        for bad in ("\u00e9", "77", "", "E"):
            await s.send_dtmf(bad)
        await s.ws.send(json.dumps({"event": "dtmf", "streamSid": s.ssid, "dtmf": 7}))
        await asyncio.sleep(1.1)
        # a flood: at most five a second are acted on
        t0 = time.monotonic()
        for _ in range(40):
            await s.send_dtmf("3")
        took = time.monotonic() - t0
        await asyncio.sleep(0.5)
        pressed = [t for t in user_texts(conn) if t == "The caller pressed 3"]
        expect(1 <= len(pressed) <= 5 * (int(took) + 1),
               "%d of 40 presses in %.2f s reached the model" % (len(pressed), took))
        c1 = await asyncio.to_thread(counters, d)
        expect_eq(c1["dtmf_bad"] - c0["dtmf_bad"], 5, "dtmf_bad")
        expect_eq(c1["dtmf_in"] - c0["dtmf_in"], 41, "dtmf_in")
        expect_eq(c1["dtmf_dropped"] - c0["dtmf_dropped"], 40 - len(pressed),
                  "dtmf_dropped")
        expect_eq(c1["bad_messages"] - c0["bad_messages"], 0, "bad_messages")
        expect(s.close_code is None, "the call closed: %s" % s.close_reason)
        await s.stop()


@timeout(60)
async def test_keypad_actions_repeat_persona_end(env):
    lines = desk_line(env)
    async with FakeOpenAI(mode="vad", reply_ms=300,
                          reply_text="Our hours are nine to five.") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=lines, WORKERS=1).start()
        s = await open_call(d, 2, "desk")
        conn = await srv.wait_connection(1)
        await quiet(conn, 1)
        await until(lambda: s.marks_echoed > 0, 5, "the greeting heard")
        await asyncio.sleep(0.3)
        # repeat: the last answer's audio again, as the caller heard it,
        # without asking the model
        def heard():
            return b"".join(base64.b64decode(m["media"]["payload"])
                            for m in s.received if m.get("event") == "media")
        said = heard()
        expect(len(said) > 0, "no answer heard")
        m0 = s.marks_echoed
        await s.send_dtmf("*")
        await until(lambda: len(heard()) >= 2 * len(said), 5, "the repeat")
        expect_eq(heard()[len(said):], said, "the repeat's audio")
        await until(lambda: s.marks_echoed > m0, 5, "the repeat's marks")
        await asyncio.sleep(0.3)
        expect_eq(len(conn.response_requests), 1, "the model asked to repeat")
        expect_eq(user_texts(conn), [], "a mapped key told to the model")
        # 2: the hvac persona's session opens and takes over
        await s.send_dtmf("2")
        nxt = await srv.wait_connection(2)
        await nxt.wait_for("session.update")
        tools = nxt.first("session.update")
        expect(tools is not None, "the next session was not set up")
        await until(lambda: d.health()["calls"] and
                    d.health()["calls"][0]["persona"] == "hvac", 10, "the switch")
        await quiet(nxt, 1)
        await asyncio.sleep(0.3)
        # 9: the call ends (once what plays was heard)
        await s.send_dtmf("9")
        expect(await s.wait_closed(10), "the call did not end")
        expect_eq(s.close_code, 1000, "close code")
        expect("the caller ended the call with a key" in d.log(), "reason logged")


def rest_conf(rest):
    return dict(TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_AUTH_TOKEN=twilio.TEST_AUTH_TOKEN,
                TWILIO_PHONE_NUMBER=NUMBER, TWILIO_API_BASE=rest.base)


GOODBYE = [{"wait_ms": 300},
           {"tool_call": {"name": "end_call", "arguments": {}}, "audio_ms": 800,
            "text": "Thanks for calling, goodbye."}]


async def hang_up_call(env, n, **rest_kw):
    lines = desk_line(env, persona="hvac", tools=["end_call"])
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, **rest_kw) as rest, \
            FakeOpenAI(mode="scripted", script=GOODBYE, after_script="idle") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=lines, WORKERS=1,
                       **rest_conf(rest)).start()
        c0 = await asyncio.to_thread(counters, d)
        s = await open_call(d, n, "desk")
        expect(await s.wait_closed(15), "the call did not end")
        await asyncio.sleep(0.3)
        c1 = await asyncio.to_thread(counters, d)
        return d, s, rest, c0, c1


@timeout(60)
async def test_end_call_completes_the_call_at_twilio_after_the_goodbye(env):
    d, s, rest, c0, c1 = await hang_up_call(env, 3)
    ups = rest.call_updates
    expect_eq(len(ups), 1, "call updates")
    q = ups[0]
    expect_eq(q.path, "/2010-04-01/Accounts/%s/Calls/%s.json"
              % (ACCOUNT, twilio.call_sid(3)), "path")
    expect_eq(q.form, {"Status": ["completed"]}, "form")
    expect_eq(q.status, 200, "answer")
    # the goodbye (800 ms in 100 ms marks) was heard before the update
    expect(len(s.mark_times) >= 8, "marks echoed: %d" % len(s.mark_times))
    expect(q.t >= s.mark_times[-1], "update %.3f before the last mark %.3f"
           % (q.t, s.mark_times[-1]))
    # and the stream closed once Twilio took it
    expect(s.closed_at >= q.t, "stream closed before the update")
    expect_eq(s.close_code, 1000, "close code")
    expect_eq(c1["call_updates"] - c0["call_updates"], 1, "call_updates")
    expect_eq(c1["failed_calls"] - c0["failed_calls"], 0, "failed_calls")
    expect("the persona ended the call" in d.log(), "reason")


@timeout(60)
async def test_hang_up_retries_a_failing_twilio(env):
    d, s, rest, c0, c1 = await hang_up_call(env, 4, fail_calls_first=2)
    expect_eq([q.status for q in rest.call_updates], [500, 500, 200], "attempts")
    expect(s.closed_at >= rest.call_updates[-1].t, "stream closed before Twilio took it")
    expect_eq(c1["rest_retries"] - c0["rest_retries"], 2, "rest_retries")
    expect_eq(c1["call_updates"] - c0["call_updates"], 1, "call_updates")
    expect_eq(c1["call_updates_failed"] - c0["call_updates_failed"], 0,
              "call_updates_failed")


TARGETS = [{"label": "front desk", "number": "+15557654321"},
           {"label": "billing", "sip": "sip:billing@pbx.example.com"}]


@timeout(60)
async def test_transfer_call_plays_its_line_then_dials(env):
    script = [{"wait_ms": 300},
              {"tool_call": {"name": "transfer_call", "arguments": {"target": "front desk"}},
               "audio_ms": 600, "text": "Let me put you through to the front desk."}]
    lines = desk_line(env, persona="hvac", tools=["end_call"], transfer_targets=TARGETS,
                      transfer={"caller_id": "+15550001111", "timeout": 25,
                                "voicemail": "Nobody is free. Please call back.",
                                "warm": "sms"})
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN) as rest, \
            FakeOpenAI(mode="scripted", script=script, after_script="idle") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=lines, WORKERS=1,
                       **rest_conf(rest)).start()
        c0 = await asyncio.to_thread(counters, d)
        s = await open_call(d, 5, "desk")
        conn = await srv.wait_connection(1)
        expect(await conn.wait_for("session.update"), "no session.update")
        tools = conn.first("session.update")[1]["session"]["tools"]
        tr = [t for t in tools if t["name"] == "transfer_call"]
        expect_eq(len(tr), 1, "transfer_call offered")
        expect_eq(tr[0]["parameters"]["properties"]["target"]["enum"],
                  ["front desk", "billing"], "labels")
        expect(await s.wait_closed(15), "the call did not end")
        c1 = await asyncio.to_thread(counters, d)
        ups = rest.call_updates
        expect_eq(len(ups), 1, "call updates")
        q = ups[0]
        expect_eq(q.status, 200, "Twilio's answer")
        expect_eq(list(q.form), ["Twiml"], "form fields")
        verbs = [(el.tag, el.attrib, (el.text or "").strip()) for el in q.twiml]
        action = d.base + "/transfer/desk/done"
        expect_eq(verbs, [("Dial", {"action": action, "method": "POST",
                                    "callerId": "+15550001111", "timeout": "25"},
                           "+15557654321")], "Dial, with nothing after it")
        # the hand-over line was heard before the update, the stream ended after
        expect(len(s.mark_times) >= 6 and q.t >= s.mark_times[-1],
               "update before the hand-over was heard")
        expect(s.closed_at >= q.t, "stream closed before Twilio took the update")
        expect_eq(s.close_code, 1000, "close code")
        expect_eq(c1["transfers"] - c0["transfers"], 1, "transfers")
        expect_eq(c1["failed_calls"] - c0["failed_calls"], 0, "failed_calls")
        expect("transferred to front desk" in d.log(), "log")
        # warm: the target was texted who is calling before the dial
        expect_eq(len(rest.requests), 1, "summary SMS")
        m = rest.requests[0]
        expect_eq(m.form["To"], ["+15557654321"], "summary to")
        expect(m.form["Body"][0].startswith("Transferred call from +14155557700 (desk)."),
               "summary: %r" % m.form["Body"])
        expect(m.t <= q.t, "summary after the dial")
        expect("+15557654321" not in d.log(), "the target's number in the log")
        rec = await asyncio.to_thread(call_record, d, twilio.call_sid(5),
                                      lambda r: r["status"] == "completed")
        expect_eq(rec["transferred_to"], "+15557654321", "transferred_to")
        expect_eq(rec["end_reason"], "transferred", "end reason")
        expect_eq(rec["rollovers"], 0, "rollovers")
        expect_eq((rec["transfer_s"], rec["transfer_status"]), (None, None),
                  "the dial's end not known yet")
        stream_s = rec["billed_s"]
        expect(stream_s >= 1, "stream billed %r" % stream_s)
        # the person answered and talked 95 s: Twilio asks the action what
        # follows (a hang-up) and the record bills the transferred leg
        c0 = await asyncio.to_thread(counters, d)
        st, body = await asyncio.to_thread(twilio.post_dial_action, action,
                                           twilio.call_sid(5), "completed", 95)
        expect_eq(st, 200, "action: " + body)
        expect("<Hangup/>" in body and "<Say" not in body and "<Redirect" not in body,
               "after a dial that was answered: " + body)
        rec = await asyncio.to_thread(call_record, d, twilio.call_sid(5),
                                      lambda r: r["transfer_s"] is not None)
        expect_eq((rec["transfer_s"], rec["transfer_status"]), (95, "completed"),
                  "the transferred leg")
        expect_eq(rec["billed_s"], stream_s + 95, "billed: the stream and the transfer")
        expect_eq(rec["status"], "completed", "status")
        c1 = await asyncio.to_thread(counters, d)
        expect_eq(c1["transfers_billed_ms"] - c0["transfers_billed_ms"], 95000,
                  "transfers_billed_ms")
        # the caller's minutes stop at the stream's end
        used = float((await asyncio.to_thread(d.usage))[1]["+14155557700"]["minutes_used"]) * 60
        expect(used <= stream_s + 1, "the transfer charged to the caller: %.1f s" % used)
        # nobody answered: the voicemail message; forged: refused
        st, body = await asyncio.to_thread(twilio.post_dial_action, action,
                                           twilio.call_sid(5), "no-answer", 0)
        expect("Nobody is free. Please call back." in body and "<Hangup/>" in body,
               "no answer: " + body)
        st, body = await asyncio.to_thread(twilio.post_dial_action, action,
                                           twilio.call_sid(5), "completed", 9999,
                                           auth_token="x" * 32)
        expect_eq(st, 403, "a forged action callback")


@timeout(60)
async def test_keypad_transfer_to_sip_and_back_to_the_line(env):
    """no_answer line: the Redirect's resume marker gives the call one more
    stream, once; a plain or altered repeat stays refused."""
    lines = desk_line(env, transfer_targets=TARGETS, transfer={"no_answer": "line"},
                      keypad={"0": {"action": "transfer", "target": "billing"}})
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN) as rest, \
            FakeOpenAI(mode="vad", reply_ms=400) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=lines, WORKERS=1,
                       **rest_conf(rest)).start()
        s = await open_call(d, 6, "desk")
        conn = await srv.wait_connection(1)
        await quiet(conn, 1)
        await asyncio.sleep(0.3)
        await s.send_dtmf("0")
        await until(lambda: len(conn.response_requests) >= 2, 5, "the hand-over")
        expect("transferring" in conn.response_requests[1]["instructions"],
               "hand-over: %r" % conn.response_requests[1]["instructions"])
        expect(await s.wait_closed(15), "the call did not end")
        q = rest.call_updates[0]
        dial = q.twiml[0]
        expect_eq(len(q.twiml), 1, "verbs after a Dial with an action")
        action = dial.attrib.get("action", "")
        expect_eq((dial.tag, dial.attrib), ("Dial", {"timeout": "20", "method": "POST",
                                                     "action": action}), "Dial")
        expect(action.startswith(d.base + "/transfer/desk/done?resume="),
               "action: %r" % action)
        expect_eq([(e.tag, e.text) for e in dial], [("Sip", "sip:billing@pbx.example.com")],
                  "Sip")
        # nobody answered: the action sends the call back to the line
        st, body = await asyncio.to_thread(twilio.post_dial_action, action,
                                           twilio.call_sid(6), "no-answer", 0)
        expect_eq(st, 200, "action: " + body)
        import xml.etree.ElementTree as ET
        after = list(ET.fromstring(body))
        expect_eq(after[0].tag, "Redirect", "back to the line: " + body)
        back = after[0].text
        expect(back.startswith(d.base + "/voice/desk?resume="), "Redirect URL: %r" % back)
        expect_eq(back.split("?", 1)[1], action.split("?", 1)[1], "the marker")
        expect("+1415" not in back and twilio.call_sid(6) not in back,
               "number or CallSid in the URL: %r" % back)
        # the hand-over's audio reached the caller before the update
        expect(q.t >= s.mark_times[-1], "update before the hand-over was heard")
        rec = await asyncio.to_thread(call_record, d, twilio.call_sid(6),
                                      lambda r: r["status"] == "completed")
        expect_eq(rec["transferred_to"], "sip:billing@pbx.example.com", "transferred_to")

        # nobody answered: Twilio follows the Redirect, same CallSid, signed
        query = back.split("?", 1)[1]
        c0 = await asyncio.to_thread(counters, d)
        plain = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(6),
                                        "+14155557700", NUMBER, "desk")
        expect(plain.stream_url is None, "a plain repeat got a stream")
        forged = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(6),
                                         "+14155557700", NUMBER, "desk",
                                         query=query[:-1] + ("1" if query[-1] != "1" else "2"))
        expect(forged.stream_url is None, "an altered marker got a stream")
        other = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(66),
                                        "+14155557700", NUMBER, "desk", query=query)
        expect(other.body.count("<Stream") == 1 and twilio.call_sid(66) in other.body,
               "another CallSid with the marker is a new call of its own: %s" % other.body)
        wh = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(6),
                                     "+14155557700", NUMBER, "desk", query=query)
        expect(wh.stream_url is not None, "no stream on the way back: %s" % wh.body)
        again = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(6),
                                        "+14155557700", NUMBER, "desk", query=query)
        expect(again.stream_url is None, "the marker worked twice")
        s2 = twilio.Stream(wh.stream_url, twilio.call_sid(6), twilio.stream_sid(7), wh.params)
        await s2.open()
        # the session that greets on the resumed stream (the webhook of
        # call 66 opened one too, which waits for a stream that never comes)
        await until(lambda: any(c.response_requests for c in srv.accepted[1:]), 5,
                    "the resumed stream's session")
        conn2 = [c for c in srv.accepted[1:] if c.response_requests][0]
        await quiet(conn2, 1)
        await until(lambda: any(m.get("event") == "media" for m in s2.received), 5,
                    "the greeting's audio on the resumed stream")
        s2.frame = talk_frame                     # two seconds said, then silence
        await s2.play(3.0)
        await until(lambda: any(e[1] == "speech_stopped" for e in conn2.vad_log)
                    and len(conn2.responses) >= 2 and conn2.active is None, 10,
                    "a reply to the caller")
        expect(len(conn2.appended) > 0, "the caller's audio reached the model")
        expect(s2.close_code is None, "resumed stream closed: %s" % s2.close_reason)
        # its token opens no second stream, and the call's first one is spent
        expect_eq(await upgrade_status(wh.stream_url), 403, "the resumed token twice")
        after = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(6),
                                        "+14155557700", NUMBER, "desk")
        expect(after.stream_url is None, "a plain repeat while resumed got a stream")
        c1 = await asyncio.to_thread(counters, d)
        expect_eq(c1["voice_resumes"] - c0["voice_resumes"], 1, "voice_resumes")
        expect_eq(c1["voice_replays"] - c0["voice_replays"], 4, "voice_replays")
        await s2.stop()


@timeout(60)
async def test_transfer_twilio_refuses_the_call_goes_on(env):
    script = [{"wait_ms": 300},
              {"tool_call": {"name": "transfer_call", "arguments": {"target": "front desk"}},
               "audio_ms": 300}]
    lines = desk_line(env, persona="hvac", tools=["end_call"], transfer_targets=TARGETS)
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN, fail_calls_first=1,
                              fail_status=400) as rest, \
            FakeOpenAI(mode="scripted", script=script, after_script="idle") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=lines, WORKERS=1,
                       **rest_conf(rest)).start()
        c0 = await asyncio.to_thread(counters, d)
        s = await open_call(d, 7, "desk")
        conn = await srv.wait_connection(1)
        await until(lambda: any("did not go through" in (q["instructions"] or "")
                                for q in conn.response_requests), 10, "the model told")
        c1 = await asyncio.to_thread(counters, d)
        expect_eq(c1["transfers_failed"] - c0["transfers_failed"], 1, "transfers_failed")
        expect(s.close_code is None, "the call ended")
        await s.stop()


class Receiver:
    """A business's booking webhook on loopback: checks the signature and
    answers as `mode` says: ok, slow (after 1.2 s), hang (never in time),
    garbage (not JSON), huge (10 MB)."""

    SECRET = "whsec-0123456789abcdef"

    def __init__(self):
        self.mode = "ok"
        self.got = []

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader, writer):
        import hashlib
        import hmac
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            method, path, _ = line.decode().split(" ", 2)
            headers = {}
            for _ in range(100):
                h = await asyncio.wait_for(reader.readline(), 5)
                if h in (b"\r\n", b"\n", b""):
                    break
                k, v = h.decode().split(":", 1)
                headers[k.strip().lower()] = v.strip()
            body = await asyncio.wait_for(
                reader.readexactly(int(headers.get("content-length", "0"))), 5)
            sig = dict(p.split("=", 1) for p in headers["x-voxrelay-signature"].split(","))
            want = hmac.new(self.SECRET.encode(), sig["t"].encode() + b"." + body,
                            hashlib.sha256).hexdigest()
            self.got.append({"t": time.monotonic(), "method": method, "path": path,
                             "headers": headers, "body": json.loads(body),
                             "signed": hmac.compare_digest(want, sig["v1"]) and
                             abs(int(sig["t"]) - time.time()) < 30})
            out = json.dumps({"ok": True, "reference": "BK-1001",
                              "when": "Tuesday 9am"}).encode()
            if self.mode == "slow":
                await asyncio.sleep(1.2)
            elif self.mode == "hang":
                await asyncio.sleep(4)
            elif self.mode == "garbage":
                out = b"<html>oops</html>"
            elif self.mode == "huge":
                out = b"[" + b"1," * (5 * 1024 * 1024) + b"1]"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(out))
            writer.write(out)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, ValueError, KeyError):
            pass
        finally:
            writer.close()


BOOK = {"name": "Ann Lee", "phone": "+14155550123", "service": "repair",
        "date": "2026-12-08", "time": "09:00"}


@timeout(90)
async def test_webhook_tools_answer_slow_timeout_garbage_huge(env):
    rcv = await Receiver().start()
    lines = desk_line(env, persona="hvac", tools=["book_appointment", "end_call"],
                      webhooks={"book_appointment": {
                          "url": "http://127.0.0.1:%d/bookings" % rcv.port,
                          "secret": Receiver.SECRET, "timeout_ms": 2500,
                          "filler_ms": 500, "headers": {"X-Env": "path=${PATH}"}}})
    script = [{"wait_ms": 300}, {"tool_call": {"name": "book_appointment",
                                               "arguments": BOOK}}]
    try:
        async with FakeOpenAI(mode="scripted", script=script, after_script="idle") as srv:
            d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=lines, WORKERS=1).start()
            c0 = await asyncio.to_thread(counters, d)
            outs = {}
            for n, mode in enumerate(["ok", "slow", "hang", "garbage", "huge"]):
                rcv.mode = mode
                s = await open_call(d, 10 + n, "desk")
                conn = await srv.wait_connection(n + 1)
                await until(lambda: conn.function_outputs, 10, "the %s output" % mode)
                # the answer goes back and the model is asked to go on
                await until(lambda: any(q["t"] >= conn.function_outputs[0]["t"]
                                        for q in conn.response_requests), 5,
                            "a response after the %s output" % mode)
                outs[mode] = (json.loads(conn.function_outputs[0]["output"]), conn)
                expect(s.close_code is None, "%s: the call ended" % mode)
                await s.stop()
            c1 = await asyncio.to_thread(counters, d)
    finally:
        await rcv.stop()
    expect_eq(len(rcv.got), 5, "requests")
    g = rcv.got[0]
    expect_eq((g["method"], g["path"]), ("POST", "/bookings"), "request line")
    expect(g["signed"], "bad X-Voxrelay-Signature")
    expect_eq(g["headers"]["x-voxrelay-call-sid"], twilio.call_sid(10), "CallSid header")
    expect_eq(g["headers"]["x-env"], "path=" + os.environ.get("PATH", "/usr/bin:/bin"),
              "header from the environment")
    expect_eq(g["body"], {"call_sid": twilio.call_sid(10), "line": "desk",
                          "caller": "+14155557700", "arguments": BOOK}, "body")
    expect_eq(outs["ok"][0], {"ok": True, "reference": "BK-1001", "when": "Tuesday 9am"},
              "answer")
    expect_eq(outs["slow"][0]["reference"], "BK-1001", "slow answer")
    filler = [q for q in outs["slow"][1].response_requests
              if "still checking" in (q["instructions"] or "")]
    expect_eq(len(filler), 1, "filler lines")
    expect(filler[0]["t"] < outs["slow"][1].function_outputs[0]["t"], "filler after the answer")
    expect([q for q in outs["ok"][1].response_requests
            if "still checking" in (q["instructions"] or "")] == [], "filler on a fast answer")
    expect_eq(outs["hang"][0], {"error": "the business system did not answer in time"},
              "timeout")
    expect_eq(outs["garbage"][0], {"error": "the business system gave an answer that "
                                            "cannot be read"}, "garbage")
    expect_eq(outs["huge"][0], outs["garbage"][0], "10 MB")
    expect_eq(c1["webhook_calls"] - c0["webhook_calls"], 5, "webhook_calls")
    expect_eq(c1["webhook_failed"] - c0["webhook_failed"], 3, "webhook_failed")
    expect(c1["webhook_fillers"] - c0["webhook_fillers"] >= 2, "webhook_fillers")
    expect(not os.path.exists(os.path.join(env.tmp, "bookings.jsonl")) or
           "Ann Lee" not in open(os.path.join(env.tmp, "bookings.jsonl")).read(),
           "booked in the file as well")


def talk_frame(n):
    """Two seconds of loud, frame-numbered audio, then two of silence."""
    if (n // 100) % 2 == 0:
        return twilio.tone_frame(n)
    return base64.b64encode(b"\xff" * 160).decode()


@timeout(90)
async def test_session_rollover_replays_the_conversation_and_loses_no_frame(env):
    lines = desk_line(env)
    async with FakeOpenAI(mode="vad", reply_ms=600, silence_ms=400,
                          caller_transcript="I need my furnace looked at.",
                          reply_text="Sure, when would suit you?") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=lines, WORKERS=1,
                       SESSION_ROLLOVER_MINUTES=0.08).start()
        c0 = await asyncio.to_thread(counters, d)
        wh = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(20),
                                     "+14155557720", NUMBER, "desk")
        s = twilio.Stream(wh.stream_url, twilio.call_sid(20), twilio.stream_sid(20),
                          wh.params, frame=talk_frame)
        await s.open()
        old = await srv.wait_connection(1)
        await s.play(8)
        new = await srv.wait_connection(2)
        await asyncio.sleep(0.5)
        await s.stop()
        c1 = await asyncio.to_thread(counters, d)
    expect_eq(c1["session_rollovers"] - c0["session_rollovers"], 1, "session_rollovers")
    rec = await asyncio.to_thread(call_record, d, twilio.call_sid(20),
                                  lambda r: r["status"] == "completed")
    expect_eq(rec["rollovers"], 1, "rollovers in the call's record")
    # the fresh session heard the conversation so far, as text, and no greeting
    items = [e["item"] for _, e in new.of_type("conversation.item.create")]
    expect(items and items[0]["role"] == "system", "no system item first: %r" % items[:1])
    said = [(i["role"], i["content"][0]["text"]) for i in items[1:]]
    expect(("user", "I need my furnace looked at.") in said, "caller lines: %r" % said)
    expect(("assistant", "Sure, when would suit you?") in said, "assistant lines: %r" % said)
    expect_eq([i["content"][0]["type"] for i in items[1:] if i["role"] == "assistant"][:1],
              ["output_text"], "assistant part type")
    greet = [q for q in new.response_requests if q["instructions"]]
    expect_eq(greet, [], "the fresh session greeted")
    expect(new.schema_errors == [] if hasattr(new, "schema_errors") else True,
           "schema errors: %r" % getattr(new, "schema_errors", None))
    # every caller frame went to one session or the other, in order
    a_old = b"".join(base64.b64decode(a) for a in old.appends())
    a_new = b"".join(base64.b64decode(a) for a in new.appends())
    expect(len(a_new) > 0, "nothing reached the fresh session")
    sent = b"".join(base64.b64decode(talk_frame(n)) for n in range(s.frames_sent))
    i0 = sent.find(a_old[:320])
    expect(i0 >= 0, "the old session's audio is not what was sent")
    expect_eq(len(a_old) + len(a_new), len(sent) - i0, "bytes across both sessions")
    expect(a_old + a_new == sent[i0:], "frames lost or out of order across the swap")
    expect(s.close_code is None or s.close_code == 1000, "close: %s" % s.close_code)


@timeout(60)
async def test_warm_transfer_summary_to_a_webhook(env):
    """warm: a webhook: the summary and the conversation's last lines are
    posted there, signed like a tool's webhook, before the dial."""
    rcv = await Receiver().start()
    lines = desk_line(env, transfer_targets=TARGETS,
                      transfer={"warm": {"url": "http://127.0.0.1:%d/handover" % rcv.port,
                                         "secret": Receiver.SECRET, "timeout_ms": 2000,
                                         "headers": {"X-Desk": "front"}}},
                      keypad={"0": {"action": "transfer", "target": "front desk"}})
    try:
        async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN) as rest, \
                FakeOpenAI(mode="vad", reply_ms=400, silence_ms=300,
                           caller_transcript="My boiler is leaking.",
                           reply_text="I can get someone for you.") as srv:
            d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=lines, WORKERS=1,
                           **rest_conf(rest)).start()
            c0 = await asyncio.to_thread(counters, d)
            s = await open_call(d, 30, "desk")
            conn = await srv.wait_connection(1)
            await quiet(conn, 1)
            s.frame = talk_frame
            await s.play(3.0)
            await until(lambda: any(e[1] == "speech_stopped" for e in conn.vad_log)
                        and len(conn.responses) >= 2 and conn.active is None, 10,
                        "a reply to the caller")
            await asyncio.sleep(0.5)
            await s.send_dtmf("0")
            expect(await s.wait_closed(15), "the call did not end")
            await until(lambda: rcv.got, 5, "the summary")
            await asyncio.sleep(0.2)
            c1 = await asyncio.to_thread(counters, d)
    finally:
        await rcv.stop()
    expect_eq(len(rcv.got), 1, "summary requests")
    g = rcv.got[0]
    expect_eq((g["method"], g["path"]), ("POST", "/handover"), "request line")
    expect(g["signed"], "bad X-Voxrelay-Signature")
    expect_eq(g["headers"]["x-voxrelay-call-sid"], twilio.call_sid(30), "CallSid header")
    expect_eq(g["headers"]["x-desk"], "front", "the line's header")
    b = g["body"]
    expect_eq((b["call_sid"], b["line"], b["caller"], b["target"], b["to"]),
              (twilio.call_sid(30), "desk", "+14155557700", "front desk", "+15557654321"),
              "who and where")
    expect(b["summary"].startswith("Transferred call from +14155557700 (desk). Caller said:")
           and "My boiler is leaking." in b["summary"], "summary: %r" % b["summary"])
    expect({"role": "caller", "text": "My boiler is leaking."} in b["transcript"],
           "transcript: %r" % b["transcript"])
    expect({"role": "assistant", "text": "I can get someone for you."} in b["transcript"],
           "transcript: %r" % b["transcript"])
    # before the dial, and no SMS (warm is the webhook)
    q = rest.call_updates[0]
    expect(g["t"] <= q.t + 0.05, "the summary came after the dial")
    expect_eq(rest.requests, [], "SMS sent")
    expect_eq(c1["transfer_summaries"] - c0["transfer_summaries"], 1, "transfer_summaries")
    expect_eq(c1["transfer_summaries_failed"] - c0["transfer_summaries_failed"], 0,
              "transfer_summaries_failed")
