#!/usr/bin/python3
"""The practice line end to end, on loopback, as a caller would live it.

The real daemon runs the shipped lines (etc/lines) between a synthetic
caller that speaks like Twilio (the signed voice webhook, then a Media
Stream at the real 20 ms cadence, playing back what it receives and echoing
marks once that audio has played), a fake OpenAI Realtime server over TLS
with a test CA (an energy VAD on the caller's audio, spoken replies) and a
fake Twilio REST server for the goodbye SMS.  The call goes:

  1. the intake line answers and greets the caller;
  2. the caller asks for a cold call; the intake model calls
     select_practice_mode, says its hand-over line;
  3. a second Realtime session opens with a prospect's persona and voice,
     and the prospect speaks first;
  4. the caller talks over the prospect: clear to Twilio, truncate to OpenAI;
  5. the caller's free minutes (FREE_CALL_MINUTES, short here) run out: the
     prospect says goodbye, the daemon ends the call and asks Twilio to text
     the caller.

Each step is printed as it happens, with its figures; the exit status is 1
when any of them did not happen."""

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import caller as synth  # noqa: E402
import certs  # noqa: E402
import firstanswer  # noqa: E402
import harness  # noqa: E402
import twilio  # noqa: E402
from fake_openai import FakeOpenAI, write_wav_ulaw  # noqa: E402
from twilio_rest import FakeTwilioRest  # noqa: E402

ACCOUNT = "AC" + "7" * 32
TOKEN = twilio.TEST_AUTH_TOKEN     # signs the webhooks and the REST calls
NUMBER = "+15005550006"
CALLER = "+14155552671"
LINK = "https://practice.example/keep-going"
FREE_MINUTES = 0.4                 # 24 s: the call ends at the time limit
                                   # (--free-minutes)

CALLER_ASKS = "Hi. I would like to practise a cold call, please."
CALLER_BARGES = "Sorry to cut in. I help agencies like yours win more clients."
INTAKE_SAYS = ["Hi, thanks for calling the practice line. What would you like "
               "to practise today?",
               "Great, connecting you now. Good luck!"]
PROSPECT_SAYS = ["Yeah, hello, who is this? I am in the middle of something here, "
                 "so you have about thirty seconds before I hang up on you.",
                 "Everybody says that. What makes you different?",
                 "Look, I have to run. Send me an email and we will see. Goodbye."]
SUMMARY = "wants to pitch lead generation to an agency owner"
SESSION_DELAY_MS = 300             # the timed calls' session.updated delay
TWILIO_GAP_MS = 250                # webhook answered -> stream upgrade


def persona(pid):
    with open(os.path.join(harness.PERSONAS, pid + ".json")) as f:
        return json.load(f)


def persona_of(session):
    """The persona whose instructions a session.update carries."""
    for fn in sorted(os.listdir(harness.PERSONAS)):
        if not fn.endswith(".json"):
            continue
        p = persona(fn[:-5])
        ins = p["instructions"]
        if isinstance(ins, list):
            ins = "\n".join(ins)
        if session.get("instructions") == ins:
            return fn[:-5], p
    return None, None


def voice_of(session):
    return ((session.get("audio") or {}).get("output") or {}).get("voice") or \
        session.get("voice")


class Show:
    """Prints each step with the seconds since the call's stream opened."""

    def __init__(self):
        self.caller = None

    def __call__(self, who, text):
        t0 = self.caller.t0 if self.caller is not None else None
        t = time.monotonic() - t0 if t0 is not None else 0.0
        print("%6.2f s  %-9s %s" % (t, who, text), flush=True)


def watch_openai(show, names, line):
    """on_event of the fake OpenAI: prints what the daemon asks of it, and
    notes where the prospect's first line starts in the caller's playout
    (what the caller has played and queued when its first audio leaves the
    fake: the daemon cannot have forwarded any of it yet)."""
    def on_event(conn, direction, ev):
        t = ev.get("type")
        who = "openai#%d" % conn.id
        if direction == "out" and t in ("response.output_audio.delta",
                                        "response.audio.delta") and \
                conn.id == 2 and "start" not in line and show.caller is not None:
            line["start"] = sum(show.caller.playout())
        if direction == "in" and t == "session.update":
            s = ev.get("session") or {}
            pid, _ = persona_of(s)
            if pid is not None:
                names[conn.id] = pid
            tools = [x.get("name") for x in s.get("tools") or []]
            show(who, "session.update: persona %s, voice %s, tools %s" % (
                pid, voice_of(s), ", ".join(tools) or "none"))
        elif direction == "in" and t == "response.create":
            ins = (ev.get("response") or {}).get("instructions")
            show(who, "response.create%s" % (
                ": \"%s\"" % (ins[:70] + "..." if len(ins) > 70 else ins) if ins else ""))
        elif direction == "in" and t == "conversation.item.create":
            it = ev.get("item") or {}
            if it.get("type") == "function_call_output":
                show(who, "tool result: %s" % it.get("output"))
            else:
                txt = json.dumps(it.get("content"))
                show(who, "context item (%s): %s" % (
                    it.get("role"), txt[:90] + "..." if len(txt) > 90 else txt))
        elif direction == "in" and t == "conversation.item.truncate":
            show(who, "truncate: the caller heard %d ms of the reply" % ev["audio_end_ms"])
        elif direction == "in" and t == "response.cancel":
            show(who, "response.cancel")
        elif direction == "out" and t == "input_audio_buffer.speech_started":
            show(who, "VAD: the caller starts speaking")
        elif direction == "out" and t == \
                "conversation.item.input_audio_transcription.completed":
            show(who, "the caller said: \"%s\"" % ev.get("transcript"))
        elif direction == "out" and t == "response.function_call_arguments.done":
            show(who, "the model calls %s(%s)" % (ev.get("name"), ev.get("arguments")))
        elif direction == "out" and t == "response.done":
            r = ev.get("response") or {}
            show(who, "response.done (%s)" % r.get("status"))
    return on_event


async def demo(tmp, out_wav, seconds):
    failed = []

    def check(cond, what):
        if not cond:
            failed.append(what)
            print("MISSING:  %s" % what, flush=True)
        return cond

    c = certs.make_certs(os.path.join(tmp, "certs"))
    ctx = certs.ssl_context(c["cert"], c["key"])
    t = time.monotonic()

    def wav(name, text):
        return synth.make_phrase_wav(text, os.path.join(tmp, name + ".wav"))
    ask_wav = wav("ask", CALLER_ASKS)
    barge_wav = wav("barge", CALLER_BARGES)
    intake_wavs = [wav("intake%d" % i, s) for i, s in enumerate(INTAKE_SAYS)]
    prospect_wavs = [wav("prospect%d" % i, s) for i, s in enumerate(PROSPECT_SAYS)]
    print("audio:    %d phrases made with espeak-ng in %.1f s" % (
        2 + len(intake_wavs) + len(prospect_wavs), time.monotonic() - t))

    show = Show()
    names = {}
    line = {}           # the prospect's first line at the caller: ms
    select = {"name": "select_practice_mode",
              "arguments": {"mode": "cold_call", "summary": SUMMARY}}
    # replies come at about real-time speed, so a barge-in finds one playing
    async with FakeTwilioRest(ACCOUNT, TOKEN) as rest, \
            FakeOpenAI(mode="vad", ssl=ctx, host="localhost", chunk_ms=100,
                       interval_ms=90, silence_ms=500,
                       on_event=watch_openai(show, names, line)) as srv:
        # the intake: greets, then calls the tool when the caller has spoken
        srv.next_config(reply_wav=intake_wavs, reply_text=INTAKE_SAYS,
                        caller_transcript=CALLER_ASKS, vad_tools=[select])
        # the prospect: speaks first, answers, says goodbye
        srv.next_config(reply_wav=prospect_wavs, reply_text=PROSPECT_SAYS,
                        caller_transcript=CALLER_BARGES)
        d = harness.Daemon(tmp, OPENAI_URL=srv.url(host="localhost"),
                           OPENAI_CA_FILE=c["ca"], LOG_LEVEL="info",
                           LINES_DIR=harness.LINES, DEFAULT_ROUTE="intake",
                           FREE_CALL_MINUTES=FREE_MINUTES, MIN_CALL_DURATION=0.05,
                           CONVOREPS_URL=LINK, TWILIO_ACCOUNT_SID=ACCOUNT,
                           TWILIO_AUTH_TOKEN=TOKEN, TWILIO_PHONE_NUMBER=NUMBER,
                           TWILIO_API_BASE=rest.base)
        d.start()
        print("daemon:   pid %d on %s (admin %s), %d workers, lines from %s" % (
            d.proc.pid, d.base, d.admin_base, len(d.health()["workers"]),
            os.path.relpath(harness.LINES, harness.ROOT)))
        print("          OpenAI at %s, Twilio REST at %s, FREE_CALL_MINUTES=%s" % (
            srv.url(host="localhost"), rest.base, FREE_MINUTES))
        print()
        try:
            r, cl = await the_call(d, srv, show, line, ask_wav, barge_wav, seconds)
            print()
            # the SMS request comes once the call has ended
            for _ in range(100):
                if rest.requests:
                    break
                await asyncio.sleep(0.05)
            for q in rest.requests:
                show("twilio", "POST %s To=%s Body=\"%s\"" % (
                    q.path, (q.form.get("To") or ["?"])[0],
                    (q.form.get("Body") or [""])[0]))
            await asyncio.sleep(0.3)        # no second one
            h = await asyncio.to_thread(d.health)
            print()
            report(d, srv, rest, r, cl, line, names, h, check)
            if out_wav:
                write_wav_ulaw(out_wav, r.received_audio)
                print("the caller heard: %s" % out_wav)
            print()
            await first_answer(tmp, d, srv, c, check)
        finally:
            d.stop()
        if failed:
            print()
            print("log:")
            print("  " + d.log().rstrip().replace("\n", "\n  "))
    return failed


async def the_call(d, srv, show, line, ask_wav, barge_wav, seconds):
    """The call: the caller listens to the greeting, asks for a cold call,
    then talks over the prospect's first line 1.5 s into it."""
    cl = synth.Caller(ask_wav, barge_audio=barge_wav, seconds=seconds,
                      wait_greeting_ms=4000, lead_ms=300, hangup_after_ms=None,
                      log=lambda line: show("caller", line.split(" ms  ", 1)[-1]))
    show.caller = cl

    def hung_up():
        ws = cl.stream.ws if cl.stream is not None else None
        return ws is not None and ws.closed

    async def barger():
        # the prospect's first audio, then 1.5 s of it played at the caller
        for _ in range(int(seconds * 100)):
            if "start" in line and cl.playout()[0] >= line["start"] + 1500 or hung_up():
                break
            await asyncio.sleep(0.01)
        if hung_up() or "start" not in line:
            return
        cl.barge_in()
        # nothing plays after the clear until the next reply
        for _ in range(int(seconds * 100)):
            if cl.result.clears or hung_up():
                break
            await asyncio.sleep(0.01)
        line["heard"] = cl.playout()[0] - line["start"]

    task = asyncio.ensure_future(barger())
    try:
        r = await cl.run(d.base, route="intake", caller=CALLER)
    finally:
        if task.done() and task.exception() is not None:
            raise task.exception()
        task.cancel()
    show("caller", "stream closed: code %s %s" % (r.close_code, r.close_reason or ""))
    return r, cl


def report(d, srv, rest, r, cl, line, names, h, check):
    conns = srv.accepted
    print("summary:")
    # 1. the intake line and its greeting
    intake = conns[0] if conns else None
    if check(intake is not None and names.get(intake.id) == "intake",
             "the intake persona's session"):
        s = intake.first("session.update")[1]["session"]
        print("  intake:    persona intake, voice %s" % voice_of(s))
    greet = r.assistant_turns[0] if r.assistant_turns else None
    if check(greet is not None and (not r.caller_turns or
                                    greet["start_ms"] < r.caller_turns[0]["start_ms"]),
             "the intake greeting before the caller spoke"):
        print("  greeting:  first audio %.0f ms after the stream opened, %.1f s played" % (
            greet["start_ms"], greet["played_ms"] / 1000))
    # 2. the caller asks, the model selects the mode
    told = []
    if intake is not None:
        told = [json.loads(o["output"]) for o in intake.function_outputs]
    if check(intake is not None and intake.tool_calls and
             intake.tool_calls[0]["name"] == "select_practice_mode" and
             told and told[0].get("ok"), "select_practice_mode answered ok"):
        print("  ask:       select_practice_mode(cold_call) -> connecting to %s; the "
              "hand-over's first audio %s (the fake VAD's end of speech is 500 ms)" % (
                  told[0].get("connecting_to"),
                  "%.0f ms after the caller stopped" % r.first_audio_latency_ms
                  if r.first_audio_latency_ms is not None else "-"))
    # 3. the second session, a prospect, a new voice
    prospect = conns[1] if len(conns) > 1 else None
    pid = names.get(prospect.id) if prospect else None
    p = persona(pid) if pid else None
    if check(p is not None and p.get("mode") == "cold_call",
             "a second session with a prospect persona"):
        s = prospect.first("session.update")[1]["session"]
        v0 = voice_of(intake.first("session.update")[1]["session"])
        check(voice_of(s) == p["voice"] and voice_of(s) != v0,
              "the prospect's own voice (%s, not %s)" % (p["voice"], v0))
        check(intake.closed and intake.closed_by == "client",
              "the intake session closed by the daemon")
        if check(prospect.response_requests, "the prospect speaks first"):
            print("  switch:    %s (%s), voice %s -> %s; second session open %.0f ms "
                  "after the tool call, the prospect asked to speak %.1f s after it "
                  "(once the hand-over had played); intake closed" % (
                      pid, p.get("name"), v0, voice_of(s),
                      (prospect.t_open - intake.tool_calls[0]["t"]) * 1000,
                      prospect.response_requests[0]["t"] - intake.tool_calls[0]["t"]))
    lat = h["latency_us"]
    print("  handoff:   p50 %d us (webhook to stream)" % lat["handoff"]["p50_us"])
    # 4. the barge-in
    clear = r.clears[0] if r.clears else None
    started = [v for v in (prospect.vad_log if prospect else []) if v[1] == "speech_started"]
    if check(clear is not None and prospect is not None and prospect.truncates and
             started, "a barge-in: clear to the caller and truncate to OpenAI"):
        t_clear = cl.t0 + clear["t_ms"] / 1000
        after = [v for v in started if v[0] <= t_clear]
        spoke = [t for t in r.caller_turns if r.barge_in_at_ms is not None and
                 t["start_ms"] >= r.barge_in_at_ms]
        print("  barge-in:  clear %s ms after the caller's first loud frame, %.1f ms "
              "after OpenAI's speech_started (daemon: speech start to clear p50 %d us)" % (
                  "%.0f" % (clear["t_ms"] - spoke[0]["start_ms"]) if spoke else "-",
                  (t_clear - after[-1][0]) * 1000 if after else -1,
                  lat["barge_in"]["p50_us"]))
        heard = line.get("heard")
        print("             truncate at %d ms of the prospect's line; the caller had "
              "played %s ms of it, %.0f ms queued audio dropped" % (
                  prospect.truncates[0]["audio_end_ms"],
                  "%.0f" % heard if heard is not None else "-", clear["dropped_ms"]))
        # marks come every 50 ms and the daemon adds 50 ms past the last one
        check(heard is not None and
              abs(prospect.truncates[0]["audio_end_ms"] - heard) <= 100,
              "the truncate matches what the caller heard (within 100 ms)")
    print("  replies:   speech end to first audio p50 %.0f ms (daemon); relay in p50 "
          "%d us, out p50 %d us" % (lat["response"]["p50_us"] / 1000,
                                    lat["relay_in"]["p50_us"], lat["relay_out"]["p50_us"]))
    # 5. the time limit: wrap-up, goodbye, the end, the SMS
    wrap = [q for q in (prospect.response_requests if prospect else [])
            if q["instructions"] and "time is over" in q["instructions"]]
    if check(wrap and "time limit reached" in d.log(), "the wrap-up at the time limit"):
        t_wrap = wrap[0]["t"] - cl.t0
        print("  limit:     wrap-up asked at %.1f s (allowance %.1f s), goodbye played "
              "%.1f s, stream closed %s at %.1f s" % (
                  t_wrap, FREE_MINUTES * 60, r.assistant_turns[-1]["played_ms"] / 1000,
                  r.close_code, r.duration_ms / 1000))
    check(r.close_code == 1000, "the daemon closed the stream cleanly")
    sms = rest.requests
    if check(len(sms) == 1 and sms[0].form.get("To") == [CALLER] and
             LINK in sms[0].form["Body"][0], "exactly one goodbye SMS with the link"):
        print("  sms:       1 request to the fake Twilio REST server, To %s..., status %s" % (
            CALLER[:5], getattr(sms[0], "status", "?")))
    m = h["metrics"]
    print("  metrics:   total_calls=%d failed_calls=%d tool_calls=%d sms_sent=%d "
          "api_errors=%d; schema errors %d" % (
              m["total_calls"], m["failed_calls"], m["tool_calls"], m["sms_sent"],
              m["api_errors"], sum(len(x.schema_errors) for x in conns)))
    check(sum(len(x.schema_errors) for x in conns) == 0, "no schema errors")
    check(m["failed_calls"] == 0 and m["api_errors"] == 0, "no failed calls, no API errors")
    _, rows = d.usage()
    row = rows.get(CALLER, {})
    print("  ledger:    %s used %s min, %s left" % (
        CALLER[:5] + "...", row.get("minutes_used"), row.get("minutes_remaining")))


async def first_answer(tmp, d, srv, c, check, calls=5):
    """The warm first answer: the same calls with PREWARM=off (a second
    daemon) and on (the demo's), against the same fake OpenAI."""
    print("first answer: %d calls each; the fake OpenAI sends session.updated %d ms "
          "after session.update, Twilio upgrades %d ms after the webhook" % (
              calls, SESSION_DELAY_MS, TWILIO_GAP_MS))
    tmp2 = os.path.join(tmp, "prewarm-off")
    os.makedirs(tmp2, exist_ok=True)
    conf = {k: v for k, v in d.conf.items() if k not in (
        "PORT", "ADMIN_PORT", "PUBLIC_URL", "USAGE_CSV_PATH", "USAGE_CSV_BACKUP_PATH",
        "DATABASE_PATH", "DATABASE_JOURNAL", "TRANSCRIPTS_DIR")}
    off = harness.Daemon(tmp2, **dict(conf, PREWARM="off"))
    off.start()
    try:
        cold = await firstanswer.timed_calls(off.base, srv, 900, calls, "intake",
                                             SESSION_DELAY_MS, TWILIO_GAP_MS)
    finally:
        off.stop()
    warm = await firstanswer.timed_calls(d.base, srv, 950, calls, "intake",
                                         SESSION_DELAY_MS, TWILIO_GAP_MS)
    for name, v in (("PREWARM=off", cold), ("PREWARM=on ", warm)):
        if check(v, "%s: every timed call answered" % name.strip()):
            print("  " + firstanswer.line(name, v))
    if cold and warm:
        check(firstanswer.pct([x[1] for x in warm], 0.5) <
              firstanswer.pct([x[1] for x in cold], 0.5),
              "the warm greeting comes sooner after start than the cold one")
        h = d.health()
        print("  daemon:      prewarm_opened %d, prewarm_used %d; session_ready p50 "
              "%.0f ms, greeting p50 %.0f ms (start -> first greeting audio, all calls)" % (
                  h["counters"]["prewarm_opened"], h["counters"]["prewarm_used"],
                  h["latency_us"]["session_ready"]["p50_us"] / 1000,
                  h["latency_us"]["greeting"]["p50_us"] / 1000))


def main():
    global FREE_MINUTES
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=harness.BINARY)
    ap.add_argument("--seconds", type=float, default=40.0,
                    help="the caller hangs up after this at the latest")
    ap.add_argument("--free-minutes", type=float, default=FREE_MINUTES,
                    help="FREE_CALL_MINUTES, when the goodbye comes")
    ap.add_argument("--out", default=os.path.join(harness.ROOT, "build", "demo-heard.wav"))
    args = ap.parse_args()
    harness.BINARY = os.path.abspath(args.binary)
    FREE_MINUTES = args.free_minutes
    tmp = tempfile.mkdtemp(prefix="voxrelay-demo-")
    t0 = time.monotonic()
    try:
        failed = asyncio.run(demo(tmp, args.out, args.seconds))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    if failed:
        print("demo FAILED in %.1f s: %s" % (time.monotonic() - t0, "; ".join(failed)))
        sys.exit(1)
    print("demo ok in %.1f s: greeting, cold-call switch with a new voice, barge-in, "
          "goodbye at the limit, SMS" % (time.monotonic() - t0))


if __name__ == "__main__":
    main()
