"""Closed by default: signatures required unless waived, the signed URL
never cut short, one stream per call (a repeated webhook, a restart), and a
stream token that does not show the caller's number."""

import asyncio
import base64
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import harness
import twilio
from harness import expect, expect_eq

CALLER = "+14155552671"


def run_t(conf_path):
    p = subprocess.run([harness.BINARY, "-t", "-f", conf_path], capture_output=True,
                       text=True, timeout=10,
                       env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    return p.returncode, p.stdout, p.stderr


def metric(d, name):
    body = d.admin_get("/metrics")[2]
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no %s in /metrics" % name)


def webhook_params(sid, caller=CALLER):
    return [("AccountSid", "AC" + "0" * 32), ("CallSid", sid), ("From", caller),
            ("To", "+15005550006")]


def post_signed(d, path, params, signed_url):
    """POST the webhook to path, signed over signed_url (which may differ
    from the URL the request goes to)."""
    req = urllib.request.Request(d.base + path, method="POST",
                                 data=urllib.parse.urlencode(params).encode())
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    req.add_header("X-Twilio-Signature",
                   twilio.twilio_signature(twilio.TEST_AUTH_TOKEN, signed_url, params))
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return twilio.Webhook(r.status, r.read().decode())
    except urllib.error.HTTPError as e:
        return twilio.Webhook(e.code, e.read().decode())


async def upgrade_status(url):
    """101 if the stream opens (then closed at once), else the refusal's status."""
    try:
        ws = await twilio.websockets.connect(url, open_timeout=5)
    except twilio.websockets.InvalidStatusCode as e:
        return e.status_code
    await ws.close()
    return 101


def test_signature_needs_auth_token_or_waiver(env):
    # a fresh install: no auth token, no waiver
    d = env.daemon(TWILIO_AUTH_TOKEN=None)
    rc, out, err = run_t(d.conf_path)
    expect(rc != 0, "-t accepted a configuration without TWILIO_AUTH_TOKEN")
    expect("%s: TWILIO_AUTH_TOKEN: not set" % d.conf_path in err and
           "VALIDATE_TWILIO_SIGNATURE=false" in err, "-t says: %r" % err)
    d.start(wait=False)
    rc = d.wait_exit(10)
    expect_eq(rc, 2, "the daemon's exit code without an auth token")
    expect("TWILIO_AUTH_TOKEN: not set" in d.log(), "the refusal names the key")

    # waived explicitly: it runs, says so at start and reload, shows the gauge
    d.write_conf(VALIDATE_TWILIO_SIGNATURE="false")
    rc, out, err = run_t(d.conf_path)
    expect_eq(rc, 0, "-t with the waiver: " + err)
    expect("VALIDATE_TWILIO_SIGNATURE=false" in err, "-t warns: %r" % err)
    d.start()
    expect_eq(d.health()["signature_validation"], 0, "/health signature_validation")
    expect_eq(metric(d, "voxrelay_signature_validation"), 0, "/metrics gauge")
    wh = twilio.post_voice(d.base, twilio.call_sid(1), CALLER, auth_token="")
    expect(wh.status == 200 and wh.stream_url, "unsigned webhook with the waiver")
    warning = "VALIDATE_TWILIO_SIGNATURE=false: webhooks are accepted without"
    expect_eq(d.log().count(warning), 1, "warnings after start")
    d.signal(signal.SIGHUP)
    d.wait_for(lambda: d.health()["generation"] == 2, 10, "reload")
    d.wait_for(lambda: d.log().count(warning) == 2, 5, "the warning again at reload")
    d.stop()

    # with the token: on, and an unsigned webhook is refused
    d2 = env.daemon().start()
    expect_eq(d2.health()["signature_validation"], 1, "/health signature_validation")
    expect_eq(metric(d2, "voxrelay_signature_validation"), 1, "/metrics gauge")
    expect_eq(twilio.post_voice(d2.base, twilio.call_sid(2), CALLER,
                                auth_token="").status, 403, "unsigned webhook")
    expect_eq(twilio.post_voice(d2.base, twilio.call_sid(3), CALLER).status, 200,
              "signed webhook")
    # (both daemons write the same log file)
    expect_eq(d2.log().count(warning), 2, "no waiver warning with the token")


def test_signed_url_is_never_cut(env):
    d = env.daemon().start()
    path = "/voice?pad=" + "a" * 3000
    url = d.base + path
    expect(len(url) > 2048, "the URL must be longer than the old buffer")
    # signed over the first 2047 bytes only (what the old buffer kept):
    # a signature for some other URL, refused
    bad = post_signed(d, path, webhook_params(twilio.call_sid(2)), url[:2047])
    expect_eq(bad.status, 403, "prefix signature")
    # signed over the whole URL, as Twilio signs it: accepted
    ok = post_signed(d, path, webhook_params(twilio.call_sid(1)), url)
    expect(ok.status == 200 and ok.stream_url, "whole-URL signature: %s %s" % (
        ok.status, ok.body[:200]))
    # and the same prefix signature with another tail
    bad = post_signed(d, path + "&evil=1", webhook_params(twilio.call_sid(3)),
                      url[:2047])
    expect_eq(bad.status, 403, "prefix signature, other tail")
    expect_eq(d.health()["counters"]["sig_rejected"], 2, "sig_rejected")


def _b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


async def test_stream_token_hides_caller(env):
    d = env.daemon().start()
    wh = twilio.post_voice(d.base, twilio.call_sid(1), CALLER)
    expect(wh.stream_url, "no stream offered: %s" % wh.body)
    token = wh.stream_url.rsplit("/", 1)[1]
    digits = CALLER.lstrip("+")
    runs = {digits[i:i + n] for n in range(5, len(digits) + 1)
            for i in range(len(digits) - n + 1)}
    for r in runs:
        expect(r not in token, "digits %s in the token text %s" % (r, token))
    raw = _b64url_decode(token)
    forms = [CALLER.encode(), digits.encode(), digits[-4:].encode(),
             int(digits).to_bytes(8, "big"), int(digits).to_bytes(8, "little"),
             bytes.fromhex(digits + "f" * (len(digits) % 2)),
             bytes.fromhex(("0" * (len(digits) % 2)) + digits)]
    forms += [r.encode() for r in runs]
    for f in forms:
        expect(f not in raw, "the number (%r) in the decoded token" % f)
    expect(digits.encode() not in base64.b64decode(
        base64.b64encode(raw)), "standard base64")
    # two answers for one call carry different tokens: nothing to correlate
    wh2 = twilio.post_voice(d.base, twilio.call_sid(2), CALLER)
    expect(wh2.stream_url.rsplit("/", 1)[1] != token, "tokens differ per call")
    # and the call still works end to end, billed to the number
    s = twilio.Stream(wh.stream_url, twilio.call_sid(1), twilio.stream_sid(1), wh.params)
    await s.open()
    await s.play(1.0)
    await s.stop()
    d.wait_for(lambda: CALLER in d.usage()[1], 10, "the caller in /usage-data")
    expect_eq(d.usage()[1][CALLER]["total_calls"], "1", "calls of the caller")
    expect(not any(digits in line for line in d.log().splitlines()
                   if "/media-stream/" in line), "number in a logged stream path")


async def test_voice_webhook_replay(env):
    d = env.daemon().start()
    sid = twilio.call_sid(1)
    first = twilio.post_voice(d.base, sid, CALLER)
    expect(first.stream_url, "no stream offered: %s" % first.body)
    time.sleep(1.1)         # a retry comes later: the answer must not change
    again = twilio.post_voice(d.base, sid, CALLER)
    expect_eq(again.body, first.body, "Twilio's retry gets the same TwiML")
    h = d.health()["counters"]
    expect_eq(h["voice_repeats"], 1, "voice_repeats")
    expect_eq(h["voice_replays"], 0, "voice_replays")
    # the stream opens: from now on a repeat gets no stream
    s = twilio.Stream(first.stream_url, sid, twilio.stream_sid(1), first.params)
    await s.open()
    await s.play(0.3)
    live = await asyncio.to_thread(twilio.post_voice, d.base, sid, CALLER)
    expect_eq(live.status, 200, "replay while live")
    expect(live.stream_url is None, "a stream offered to a replay while live")
    expect_eq(live.verbs, ["Say", "Hangup"], "spoken refusal")
    await s.stop()
    await asyncio.to_thread(d.wait_for, lambda: d.health()["metrics"]["active_calls"] == 0,
                            10, "the call to end")
    over = await asyncio.to_thread(twilio.post_voice, d.base, sid, CALLER)
    expect(over.stream_url is None, "a stream offered to a replay of a call over")
    h = await asyncio.to_thread(d.health)
    expect_eq(h["counters"]["voice_replays"], 2, "voice_replays")
    expect_eq(h["metrics"]["total_calls"], 1, "one call")
    # another call is unaffected
    other = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(2), CALLER)
    expect(other.stream_url, "another call refused")


async def test_used_token_refused_after_restart(env):
    d = env.daemon()
    d.start()
    used = twilio.post_voice(d.base, twilio.call_sid(1), CALLER)
    unused = twilio.post_voice(d.base, twilio.call_sid(2), CALLER)
    before4 = twilio.post_voice(d.base, twilio.call_sid(4), CALLER)
    s = twilio.Stream(used.stream_url, twilio.call_sid(1), twilio.stream_sid(1),
                      used.params)
    await s.open()
    await s.play(0.3)
    await s.stop()
    expect_eq(await upgrade_status(used.stream_url), 403, "replay before the restart")
    await asyncio.to_thread(d.stop)
    await asyncio.to_thread(d.start)
    # same STREAM_SECRET: the used token verifies, and must still be refused
    expect_eq(await upgrade_status(used.stream_url), 403, "replay after the restart")
    h = await asyncio.to_thread(d.health)
    expect_eq(h["counters"]["token_replayed"], 1, "token_replayed after the restart")
    expect("used stream token records loaded" in d.log(), "the load is logged")
    # a replayed webhook of that call gets no new stream either
    wh = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(1), CALLER)
    expect(wh.stream_url is None, "a new stream for a call that had one")
    # a token handed out before the restart and never used still works:
    # tokens stay stateless
    s2 = twilio.Stream(unused.stream_url, twilio.call_sid(2), twilio.stream_sid(2),
                       unused.params)
    await s2.open()
    await s2.play(0.3)
    await s2.stop()
    # one stream per call: the restart forgot call 4's first answer, so a
    # repeat of its webhook gets a second token; whichever opens first
    # wins, the other is refused
    wh_b = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(4), CALLER)
    expect(wh_b.stream_url and wh_b.stream_url != before4.stream_url,
           "a second token for call 4")
    s4 = twilio.Stream(wh_b.stream_url, twilio.call_sid(4), twilio.stream_sid(4),
                       wh_b.params)
    await s4.open()
    await s4.play(0.3)
    expect_eq(await upgrade_status(before4.stream_url), 403, "call 4's other token")
    await s4.stop()
    h = await asyncio.to_thread(d.health)
    expect_eq(h["metrics"]["total_calls"], 2, "calls since the restart")
