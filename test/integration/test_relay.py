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
    expect("<Dial>+15551230001</Dial>" in body, "no Dial: " + body)
    expect("<Hangup/>" not in body, "hung up a transfer: " + body)
    st, body = crelay.post_action(d.base, action, sid,
                                  json.dumps({"reason": "transfer", "to": "pbx"}))
    expect("<Dial><Sip>sip:desk@pbx.example.com</Sip></Dial>" in body, body)
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
