"""ConversationRelay lines (protocols.md section 7): the TwiML a relay line
answers, the <Connect action> callback and its hand-off, the handshake's
signature, and the text session between Twilio's relay and the model."""

import asyncio
import json
import os
import time

import crelay
import twilio
from fake_openai import FakeOpenAI
from harness import expect, expect_eq

CALLER = "+14155557700"
NUMBER = "+15005550006"


def write_desk(env, **over):
    lines = os.path.join(env.tmp, "lines")
    os.makedirs(lines, exist_ok=True)
    line = {
        "app": "agent", "persona": "dental", "free_minutes": None,
        "max_call_minutes": None, "sms": None,
        "tools": ["book_appointment", "end_call"],
        "transport": "conversation_relay",
        "conversation_relay": {
            "welcomeGreeting": "Maple Grove Dental, how can I help?",
            "language": "en-US", "voice": "en-US-Journey-O",
            "ttsProvider": "Google", "transcriptionProvider": "Deepgram",
            "interruptible": "any", "dtmfDetection": True,
            "hints": ["cleaning", "crown", "filling"]},
        "transfer_targets": [
            {"label": "office manager", "number": "+15551230001"},
            {"label": "pbx", "sip": "sip:desk@pbx.example.com"}],
    }
    line.update(over)
    with open(os.path.join(lines, "desk.json"), "w") as f:
        json.dump(line, f)
    return lines


def metric(d, name):
    body = d.admin_get("/metrics")[2]
    for ln in body.split("\n"):
        if ln.startswith("voxrelay_%s_total " % name):
            return float(ln.split()[1])
    raise AssertionError("no metric %s" % name)


def test_relay_line_answers_conversation_relay_twiml(env):
    d = env.daemon(LINES_DIR=write_desk(env)).start()
    sid = twilio.call_sid(1)
    wh = crelay.relay_voice(d.base, sid, CALLER, NUMBER, "desk")
    expect_eq(wh.status, 200, "webhook status: " + wh.body)
    expect_eq(wh.verbs, ["Connect"], "verbs")
    expect_eq(wh.action, d.base + "/relay/desk/ended", "action")
    expect_eq(wh.method, "POST", "action method")
    expect(wh.url.startswith("ws://127.0.0.1:%d/relay/desk/" % d.port), wh.url)
    a = wh.attrs
    expect_eq(a.get("welcomeGreeting"), "Maple Grove Dental, how can I help?", "greeting")
    expect_eq((a.get("language"), a.get("voice"), a.get("ttsProvider"),
               a.get("transcriptionProvider"), a.get("interruptible"),
               a.get("dtmfDetection"), a.get("hints")),
              ("en-US", "en-US-Journey-O", "Google", "Deepgram", "any", "true",
               "cleaning,crown,filling"), "attributes")
    expect_eq(wh.params.get("callSid"), sid, "callSid parameter")
    expect_eq(wh.params.get("caller"), CALLER, "caller parameter")
    expect_eq(wh.params.get("called"), NUMBER, "called parameter")
    expect_eq(wh.params.get("route"), "desk", "route parameter")
    expect_eq(wh.params.get("minutesLeft"), "unlimited", "minutesLeft")


def test_relay_action_dials_a_listed_target_only(env):
    d = env.daemon(LINES_DIR=write_desk(env)).start()
    sid = twilio.call_sid(2)
    action = d.base + "/relay/desk/ended"
    st, body = crelay.post_action(d.base, action, sid,
                                  json.dumps({"reason": "transfer", "to": "office manager"}))
    expect_eq(st, 200, "transfer status")
    expect('<Dial action="%s/transfer/desk/done" method="POST">+15551230001</Dial>'
           % d.base in body, "no Dial: " + body)
    expect("<Hangup/>" not in body, "hung up a transfer: " + body)
    st, body = crelay.post_action(d.base, action, sid,
                                  json.dumps({"reason": "transfer", "to": "pbx"}))
    expect('<Dial action="%s/transfer/desk/done" method="POST"><Sip>sip:desk@pbx.'
           'example.com</Sip></Dial>' % d.base in body, body)
    # a target the line does not list: goodbye, never a Dial
    st, body = crelay.post_action(d.base, action, sid,
                                  json.dumps({"reason": "transfer", "to": "+19005550000"}))
    expect_eq(st, 200, "refused transfer status")
    expect("<Dial" not in body and "<Hangup/>" in body, body)
    expect_eq(metric(d, "relay_transfer_refused"), 1, "refused counter")
    expect_eq(metric(d, "relay_transfers"), 2, "transfers counter")
    # a hang-up, and no hand-off at all
    for ho in (json.dumps({"reason": "hangup"}), None, "not json"):
        st, body = crelay.post_action(d.base, action, sid, ho)
        expect(st == 200 and "<Say" in body and "<Hangup/>" in body and
               "<Dial" not in body, "%r: %s" % (ho, body))
    # signature-checked: unsigned and forged callbacks are refused
    st, _ = crelay.post_action(d.base, action, sid,
                               json.dumps({"reason": "transfer", "to": "pbx"}),
                               auth_token="")
    expect_eq(st, 403, "unsigned action")
    st, _ = crelay.post_action(d.base, action, sid,
                               json.dumps({"reason": "transfer", "to": "pbx"}),
                               auth_token="wrong-token")
    expect_eq(st, 403, "forged action")
    # only a relay line has one
    st, _ = crelay.post_action(d.base, d.base + "/relay/nosuch/ended", sid, None)
    expect_eq(st, 404, "unknown line")


REPLIES = [
    "We have cleaning visits on Tuesday and Thursday mornings.",
    "Our office opens at eight in the morning and closes at five in the afternoon on weekdays.",
    "Yes, we see children from the age of three.",
    "Sure.",
]


def items_text(conn, role):
    out = []
    for it in conn.items:
        if it.get("type") == "message" and it.get("role") == role:
            out.append("".join(p.get("text", "") for p in it.get("content", [])))
    return out


def events(conn, etype):
    return [ev for _, ev in conn.events if ev.get("type") == etype]


async def open_session(d, n, caller=CALLER, setup=True):
    sid = twilio.call_sid(n)
    wh = await asyncio.to_thread(crelay.relay_voice, d.base, sid, caller, NUMBER, "desk")
    expect(wh.url is not None, "no relay offered: %s" % wh.body)
    s = crelay.RelaySession(wh.url, sid, caller=caller, params=wh.params)
    await s.open()
    if setup:
        await s.setup()
    return s, wh


async def test_relay_text_session_streams_tokens_and_keeps_what_was_heard(env):
    async with FakeOpenAI(mode="text", text_replies=REPLIES, interval_ms=80) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=write_desk(env)).start()
        t0 = time.monotonic()
        s, wh = await open_session(d, 10)
        await srv.wait_connection(1)
        conn = srv.accepted[0]
        await conn.wait_for("session.update")
        sess = conn.first("session.update")[1]["session"]
        expect_eq(sess.get("output_modalities"), ["text"], "text-only session")
        expect("audio" not in sess, "audio in a text session: %r" % sess.get("audio"))
        # Twilio says the welcome; the model knows it and does not greet
        await s.wait_for(lambda rec: items_text(conn, "assistant"), 3)
        expect_eq(items_text(conn, "assistant"), ["Maple Grove Dental, how can I help?"],
                  "welcome item")
        await asyncio.sleep(0.3)
        expect_eq(len(events(conn, "response.create")), 0, "a second greeting")

        # partial prompts never become items; the final one is answered
        await s.prompt("I need a cleaning", partials=["I", "I need a"])
        toks, end = await s.wait_turn(0, 8)
        expect(end is not None, "turn did not end: %r" % toks)
        expect_eq("".join(t["token"] for t in toks), REPLIES[0], "tokens in order")
        expect_eq([t["last"] for t in toks], [False] * (len(toks) - 1) + [True], "last flags")
        expect(len(toks) >= 8, "one token per delta: %d" % len(toks))
        expect_eq(items_text(conn, "user"), ["I need a cleaning"], "user items")

        # an interrupt mid-answer: cancelled, and the model keeps the heard part
        await s.prompt("When do you open?")
        got = await s.wait_for(lambda rec: len([m for _, m in rec[end:]
                                                if m.get("type") == "text"]) >= 3, 5)
        expect(got, "no tokens of the second answer")
        heard = "Our office opens"
        await s.interrupt(heard, 900)
        await asyncio.sleep(0.6)
        n_after = len(s.texts())
        await asyncio.sleep(0.5)
        expect_eq(len(s.texts()), n_after, "tokens still sent after the interrupt")
        second = [m for _, m in s.received[end:] if m.get("type") == "text"]
        expect(all(not m["last"] for m in second), "an interrupted turn got last: true")
        expect(len(second) < len(REPLIES[1].split(" ")), "the whole answer was sent")
        cancelled = [r for r in conn.responses if r["status"] == "cancelled"]
        expect_eq(len(cancelled), 1, "cancelled responses: %r" % conn.responses)
        expect_eq(items_text(conn, "assistant")[-1], heard, "assistant item after interrupt")
        expect(REPLIES[1] not in items_text(conn, "assistant"), "whole answer kept")

        # an interrupt after the last token (speech lags the text)
        start = len(s.received)
        await s.prompt("Do you see children?")
        toks, end3 = await s.wait_turn(start, 8)
        expect(end3 is not None and "".join(t["token"] for t in toks) == REPLIES[2],
               "third turn: %r" % toks)
        await s.interrupt("Yes, we see", 700)
        await asyncio.sleep(0.5)
        a = items_text(conn, "assistant")
        expect_eq(a[-1], "Yes, we see", "item after a late interrupt: %r" % a)
        expect(REPLIES[2] not in a, "the unheard end is still there: %r" % a)

        # a key press goes to the model as text; Twilio's error is counted
        await s.dtmf("5")
        await s.error("Invalid message received")
        await s.wait_for(lambda rec: "The caller pressed 5" in items_text(conn, "user"), 3)
        expect("The caller pressed 5" in items_text(conn, "user"), "dtmf item")
        await asyncio.to_thread(d.wait_for, lambda: metric(d, "relay_errors") == 1, 3,
                                "relay_errors")
        expect("error from twilio: Invalid message received" in d.log(), "error not logged")
        expect_eq(metric(d, "relay_interrupts"), 2, "interrupts")
        expect_eq(metric(d, "relay_prompts"), 3, "final prompts counted")
        expect_eq(conn.errors_sent, [], "errors the fake sent the daemon")

        # the caller hangs up: minutes count as for a Media Stream
        await asyncio.sleep(0.5)
        await s.close()
        elapsed = time.monotonic() - t0
        await asyncio.to_thread(d.wait_for, lambda: d.usage()[1].get(CALLER), 5, "usage row")
        row = d.usage()[1][CALLER]
        used_s = float(row["minutes_used"]) * 60
        expect(0.6 * elapsed - 1 <= used_s <= elapsed + 0.5,
               "minutes_used %.1f s for a %.1f s call" % (used_s, elapsed))
        expect_eq(row["total_calls"], "1", "total_calls")
        expect_eq(metric(d, "total_calls"), 1, "total_calls metric")
        # the call's record: completed, the caller's prompts and the answers,
        # the interrupted ones marked
        def record():
            st, _, body = d.admin_get("/api/call/" + s.sid, check=False)
            c = json.loads(body) if st == 200 else {}
            return c if c.get("status") == "completed" else None
        c = await asyncio.to_thread(d.wait_for, record, 10, "the call's record")
        expect_eq(c["line"], "desk", "record's line")
        conv = await asyncio.to_thread(d.wait_for, lambda: json.loads(
            d.admin_get("/api/call/%s/conversation" % s.sid)[2]), 5, "conversation")
        utt = [(u["role"], u["text"], u["interrupted"]) for u in conv["utterances"]]
        expect(("caller", "I need a cleaning", False) in utt, "caller line: %r" % utt)
        expect(("assistant", REPLIES[0], False) in utt, "answer: %r" % utt)
        expect(("assistant", REPLIES[2], True) in utt, "interrupted answer: %r" % utt)


async def test_relay_hostile_input_is_ignored_and_counted(env):
    async with FakeOpenAI(mode="text", text_replies=["Sure, I can help."],
                          interval_ms=10) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=write_desk(env)).start()
        s, wh = await open_session(d, 20, setup=False)
        await s.prompt("before setup")
        await s.dtmf("1")
        await s.setup()
        await s.setup()
        await s.send("{not json")
        await s.send("[1, 2]")
        await s.ws.send(b"\x00\x01binary")
        await s.send({"type": "prompt", "voicePrompt": "x" * 20000, "last": True})
        await s.send({"type": "prompt", "voicePrompt": 5, "last": True})
        await s.send({"type": "info", "name": "debug"})
        await s.send({"type": "surprise"})
        await s.dtmf("55")
        await s.prompt("Can you help me?")
        toks, end = await s.wait_turn(0, 6)
        expect(end is not None, "no turn after hostile input: %r" % s.received)
        expect_eq("".join(t["token"] for t in toks), "Sure, I can help.", "tokens")
        conn = srv.accepted[0]
        expect_eq(items_text(conn, "user"), ["Can you help me?"], "user items")
        for name, want in (("relay_before_setup", 2), ("relay_second_setup", 1),
                           ("relay_bad_json", 3), ("relay_oversize", 1),
                           ("relay_bad_fields", 1), ("relay_unknown", 2),
                           ("dtmf_bad", 1)):
            expect_eq(metric(d, name), want, name)
        expect(s.close_code is None, "the call was closed: %r" % s.close_code)
        # a setup for another call than the token's ends only that call
        s2, _ = await open_session(d, 21, caller="+14155557701", setup=False)
        await s2.setup(sid=twilio.call_sid(99))
        expect(await s2.wait_closed(5), "call with a foreign setup still open")
        expect_eq(s2.close_code, 1008, "close code")
        await s.prompt("Still there?")
        toks, end2 = await s.wait_turn(end, 6)
        expect(end2 is not None, "first call lost its answers")
        await s.close()
        h = d.health()
        expect(all(w["state"] == "ready" for w in h["workers"]), "worker state: %r" % h)


async def test_relay_handshake_signature_is_required(env):
    async with FakeOpenAI(mode="text", text_replies=["Hello."], interval_ms=10) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=write_desk(env)).start()
        sid = twilio.call_sid(30)
        wh = await asyncio.to_thread(crelay.relay_voice, d.base, sid, CALLER, NUMBER, "desk")
        st = await crelay.upgrade_status(wh.url)
        expect_eq(st, 403, "unsigned handshake")
        forged = twilio.twilio_signature("not-the-token", crelay.wss_form(wh.url))
        st = await crelay.upgrade_status(wh.url, {"X-Twilio-Signature": forged})
        expect_eq(st, 403, "forged handshake")
        # signed over https:// instead of wss://: refused too
        wrong = twilio.twilio_signature(twilio.TEST_AUTH_TOKEN,
                                        "https://" + wh.url.split("://", 1)[1])
        st = await crelay.upgrade_status(wh.url, {"X-Twilio-Signature": wrong})
        expect_eq(st, 403, "signed over the https URL")
        expect_eq(metric(d, "relay_sig_refused"), 3, "relay_sig_refused")
        # the refusals did not spend the token
        s = crelay.RelaySession(wh.url, sid, caller=CALLER)
        await s.open()
        await s.setup()
        await s.prompt("Hi")
        toks, end = await s.wait_turn(0, 6)
        expect(end is not None, "signed session did not work")
        await s.close()
        # a Media Streams URL for a relay line is not this line's transport
        st = await crelay.upgrade_status(wh.url.replace("/relay/", "/media-stream/"))
        expect(st in (403, 404), "media stream on a relay line: %s" % st)


async def test_relay_transfer_and_end_call_send_end_with_handoff(env):
    replies = [{"text": "Let me put you through to the office manager.",
                "tool": {"name": "transfer_call",
                         "arguments": {"target": "office manager"}}}]
    async with FakeOpenAI(mode="text", text_replies=replies, interval_ms=10) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=write_desk(env)).start()
        s, wh = await open_session(d, 40)
        await s.prompt("Can I talk to a person?")
        ended = await s.wait_for(lambda rec: [m for _, m in rec if m.get("type") == "end"], 8)
        expect(ended, "no end: %r" % s.received)
        types = [m.get("type") for _, m in s.received]
        expect(types.index("end") > max(i for i, t in enumerate(types) if t == "text"),
               "end before the last token")
        toks = s.texts()
        expect(toks[-1]["last"] is True, "turn not closed before end")
        ho = ended[0]["handoffData"]
        expect_eq(json.loads(ho), {"reason": "transfer", "to": "office manager"}, "handoff")
        tools = [t["name"] for t in srv.accepted[0].first("session.update")[1]
                 ["session"]["tools"]]
        expect("transfer_call" in tools, "transfer_call not offered: %r" % tools)
        await s.wait_closed(5)
        st, body = await asyncio.to_thread(crelay.post_action, d.base, wh.action,
                                           s.sid, ho)
        expect_eq(st, 200, "action status")
        expect(">+15551230001</Dial>" in body, "no Dial: " + body)

    replies = [{"text": "Goodbye, have a nice day.", "tool": {"name": "end_call"}}]
    async with FakeOpenAI(mode="text", text_replies=replies, interval_ms=10) as srv:
        d.stop()
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=write_desk(env)).start()
        s, wh = await open_session(d, 41, caller="+14155557702")
        await s.prompt("That is all, thanks.")
        ended = await s.wait_for(lambda rec: [m for _, m in rec if m.get("type") == "end"], 8)
        expect(ended, "no end after end_call: %r" % s.received)
        expect_eq(json.loads(ended[0]["handoffData"]), {"reason": "hangup"}, "handoff")
        st, body = await asyncio.to_thread(crelay.post_action, d.base, wh.action, s.sid,
                                           ended[0]["handoffData"])
        expect("<Hangup/>" in body and "<Dial" not in body, body)


async def test_shipped_dental_line_runs_on_conversation_relay(env):
    from harness import LINES
    async with FakeOpenAI(mode="text", text_replies=["Of course, are you a new patient?"],
                          interval_ms=10) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=LINES).start()
        sid = twilio.call_sid(50)
        wh = await asyncio.to_thread(crelay.relay_voice, d.base, sid, CALLER, NUMBER,
                                     "dental")
        expect_eq(wh.verbs, ["Connect"], "verbs: " + wh.body)
        expect(wh.url and "/relay/dental/" in wh.url, "relay URL: %r" % wh.url)
        expect(wh.attrs.get("welcomeGreeting", "").startswith(
            "Thank you for calling Maple Grove"), "welcome: %r" % wh.attrs)
        expect_eq(wh.attrs.get("interruptible"), "any", "interruptible")
        s = crelay.RelaySession(wh.url, sid, caller=CALLER)
        await s.open()
        await s.setup()
        await s.prompt("I'd like to book a cleaning")
        toks, end = await s.wait_turn(0, 8)
        expect(end is not None, "no answer: %r" % s.received)
        conn = srv.accepted[0]
        tools = sorted(t["name"] for t in conn.first("session.update")[1]["session"]["tools"])
        expect_eq(tools, ["book_appointment", "end_call"], "tools")
        expect_eq(len(conn.response_requests), 1, "responses asked (no model greeting)")
        await s.close()


async def test_relay_session_rollover_keeps_the_text_conversation(env):
    async with FakeOpenAI(mode="text", text_replies=["We are open until five."],
                          interval_ms=10) as srv:
        d = env.daemon(OPENAI_URL=srv.url(), LINES_DIR=write_desk(env), WORKERS=1,
                       SESSION_ROLLOVER_MINUTES=0.05).start()
        s, wh = await open_session(d, 60)
        await s.prompt("How late are you open?")
        toks, end = await s.wait_turn(0, 6)
        expect(end is not None, "no first answer")
        new = await srv.wait_connection(2, timeout=10)
        await asyncio.sleep(0.5)
        sess = new.first("session.update")[1]["session"]
        expect_eq(sess.get("output_modalities"), ["text"], "fresh session is text-only")
        said = [(i["role"], i["content"][0]["text"]) for i in
                [e["item"] for _, e in new.of_type("conversation.item.create")][1:]]
        expect(("user", "How late are you open?") in said, "caller line: %r" % said)
        expect(("assistant", "We are open until five.") in said, "assistant line: %r" % said)
        # the fresh session answers the next prompt
        await s.prompt("Thanks, and on Friday?")
        toks, end2 = await s.wait_turn(end, 6)
        expect(end2 is not None, "no answer after the rollover: %r" % s.received[end:])
        expect(len(new.response_requests) >= 1, "the new session was not asked")
        await s.interrupt("We are", 300)
        await asyncio.sleep(0.4)
        expect_eq(new.errors_sent, [], "errors from the fresh session")
        await s.close()


async def test_relay_interrupt_seeds_a_rollover_with_what_was_heard(env):
    """After an interrupt the fresh session (a rollover) holds only what the
    caller heard of the answer, like the session it replaces; the keypad's
    repeat has Twilio say the last answer again without the model."""
    full = "We are open until five on weekdays and until noon on Saturdays."
    async with FakeOpenAI(mode="text", text_replies=[full, "Noted."],
                          interval_ms=10) as srv:
        d = env.daemon(OPENAI_URL=srv.url(),
                       LINES_DIR=write_desk(env, keypad={"*": "repeat"}), WORKERS=1,
                       SESSION_ROLLOVER_MINUTES=0.05).start()
        s, wh = await open_session(d, 61)
        await s.prompt("How late are you open?")
        toks, end = await s.wait_turn(0, 6)
        expect(end is not None, "no first answer")
        expect_eq("".join(t["token"] for t in toks), full, "the answer")
        old = srv.accepted[0]
        asked = len(old.response_requests)
        # the repeat: the same text as one turn, the model not asked
        await s.dtmf("*")
        toks2, end2 = await s.wait_turn(end, 5)
        expect(end2 is not None, "no repeat")
        expect_eq([(t["token"], t["last"]) for t in toks2], [(full, True)], "the repeat")
        await asyncio.sleep(0.3)
        expect_eq(len(old.response_requests), asked, "the model asked to repeat")
        await s.interrupt("We are open until five", 900)
        new = await srv.wait_connection(2, timeout=10)
        await asyncio.sleep(0.5)
        said = [(i["role"], i["content"][0]["text"]) for i in
                [e["item"] for _, e in new.of_type("conversation.item.create")][1:]]
        expect(("user", "How late are you open?") in said, "caller line: %r" % said)
        expect(("assistant", "We are open until five") in said,
               "the heard part missing: %r" % said)
        expect(("assistant", full) not in said, "the whole answer seeded: %r" % said)
        await s.close()
