"""The OpenAI Realtime leg: the real binary between the fake Twilio and the
fake Realtime server (TLS with a test CA, both dialects)."""

import asyncio
import base64
import json
import os
import time

import caller as synth
import certs
import twilio
from fake_openai import FakeOpenAI
from harness import PERSONAS, expect, expect_eq


def personas_dir(env, **changes):
    """A personas directory holding default.json with some fields changed
    (a value of None removes the field)."""
    d = os.path.join(env.tmp, "personas")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(PERSONAS, "default.json")) as f:
        p = json.load(f)
    for k, v in changes.items():
        if v is None:
            p.pop(k, None)
        else:
            p[k] = v
    with open(os.path.join(d, "default.json"), "w") as f:
        json.dump(p, f)
    return d


def tls_setup(env):
    c = certs.make_certs(os.path.join(env.tmp, "certs"))
    return c, certs.ssl_context(c["cert"], c["key"])


async def stream_call(d, n, caller, seconds, frame=None):
    wh = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(n), caller)
    expect(wh.stream_url is not None, "no stream: %s", wh.body)
    s = twilio.Stream(wh.stream_url, twilio.call_sid(n), twilio.stream_sid(n), wh.params,
                      frame=frame)
    await s.open()
    await s.play(seconds)
    return s


def media_of(s):
    return [m for m in s.received if m.get("event") == "media"]


def check_clean(conn):
    expect_eq(conn.schema_errors, [], "events that fail OpenAI's schema")
    types = conn.types()
    expect(types and types[0] == "session.update", "first event: %r", types[:3])
    if "input_audio_buffer.append" in types:
        expect(types.index("session.update") < types.index("input_audio_buffer.append"),
               "append before session.update")


async def test_echo_tls_ga_bit_exact(env):
    c, ctx = tls_setup(env)
    async with FakeOpenAI(mode="echo", ssl=ctx, host="localhost") as srv:
        d = env.daemon(OPENAI_URL=srv.url(host="localhost"), OPENAI_CA_FILE=c["ca"],
                       PERSONAS_DIR=personas_dir(env, greeting=None)).start()
        s = await stream_call(d, 1, "+14155551000", 2.0)
        await asyncio.sleep(0.5)
        await s.stop()
        conn = srv.accepted[0]
        check_clean(conn)
        expect_eq(conn.path, "/v1/realtime?model=gpt-realtime", "request target")
        expect_eq(conn.headers.get("authorization"), "Bearer sk-test", "authorization")
        expect("openai-beta" not in conn.headers, "beta header in GA")
        sent = [s.frame(i) for i in range(s.frames_sent)]
        expect_eq(conn.appends(), sent, "appends are Twilio's payloads, unchanged")
        got = media_of(s)
        expect(len(got) >= len(sent), "media back: %d of %d", len(got), len(sent))
        back = b"".join(base64.b64decode(m["media"]["payload"]) for m in got)
        expect_eq(back, b"".join(base64.b64decode(p) for p in sent), "echoed audio")
        for m in s.received:
            if m.get("event") in ("media", "mark", "clear"):
                expect_eq(m.get("streamSid"), s.ssid, "streamSid")
        names = [m["mark"]["name"] for m in s.received if m.get("event") == "mark"]
        expect(names and len(names) == len(set(names)), "marks unique")
        h = await asyncio.to_thread(d.health)
        expect_eq(h["metrics"]["api_errors"], 0, "api_errors")
        expect(h["latency_us"]["relay_in"]["count"] >= len(sent), "relay_in measured")
        expect(h["latency_us"]["relay_out"]["count"] > 0, "relay_out measured")
        expect("sk-test" not in d.log(), "the API key reached the log")


async def test_beta_dialect(env):
    async with FakeOpenAI(mode="echo", dialect="beta") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), OPENAI_DIALECT="beta",
                       PERSONAS_DIR=personas_dir(env, greeting=None,
                                                 temperature=0.7)).start()
        s = await stream_call(d, 1, "+14155551001", 1.0)
        await asyncio.sleep(0.3)
        await s.stop()
        conn = srv.accepted[0]
        check_clean(conn)
        expect_eq(conn.headers.get("openai-beta"), "realtime=v1", "beta header")
        upd = conn.first("session.update")[1]["session"]
        expect("type" not in upd, "beta session.update has a type")
        expect_eq(upd["input_audio_format"], "g711_ulaw", "input format")
        expect_eq(upd["output_audio_format"], "g711_ulaw", "output format")
        expect_eq(upd.get("temperature"), 0.7, "beta keeps the persona's temperature")
        expect_eq(len(media_of(s)), s.frames_sent, "echo through response.audio.delta")


async def test_ga_session_update_shape(env):
    async with FakeOpenAI(mode="echo") as srv:
        d = env.daemon(OPENAI_URL=srv.url()).start()
        s = await stream_call(d, 1, "+14155551002", 0.5)
        await s.stop()
        conn = srv.accepted[0]
        check_clean(conn)
        upd = conn.first("session.update")[1]["session"]
        expect_eq(upd["type"], "realtime", "session.type")
        expect_eq(upd["audio"]["input"]["format"], {"type": "audio/pcmu"}, "in format")
        expect_eq(upd["audio"]["output"]["format"], {"type": "audio/pcmu"}, "out format")
        expect("temperature" not in upd, "GA never sends temperature")
        # the default persona speaks first
        expect(conn.count("response.create") >= 1, "no greeting requested")


async def test_bargein_truncates_what_was_heard(env):
    # a long reply generated at real-time speed, so it is still going when
    # the caller talks over it
    async with FakeOpenAI(mode="vad", reply_ms=5000, chunk_ms=100, interval_ms=100,
                          silence_ms=400) as srv:
        d = env.daemon(OPENAI_URL=srv.url(),
                       PERSONAS_DIR=personas_dir(env, greeting=None)).start()
        speech = synth.synthetic_speech(700)
        cl = synth.Caller(speech, barge_audio=synth.synthetic_speech(600),
                          barge_in_after_ms=1500, seconds=12, hangup_after_ms=800)
        r = await cl.run(d.base, caller="+14155551003")
        conn = srv.accepted[0]
        check_clean(conn)
        expect(r.clears, "no clear reached the caller: %s" % r.summary())
        expect(conn.truncates, "no truncate reached the server")
        t = conn.truncates[0]
        expect(t["ok"], "truncate refused: %r", t)
        heard = r.played_ms_at_clear
        expect(abs(t["audio_end_ms"] - heard) <= 150,
               "truncated at %d ms, the caller heard %.0f ms" % (t["audio_end_ms"], heard))
        expect(t["audio_end_ms"] <= t["sent_ms"], "truncate past the audio sent")
        # the interrupted reply stopped: nothing of it after the clear
        first = r.assistant_turns[0]
        expect(first["cleared"], "first reply not marked cleared")
        h = await asyncio.to_thread(d.health)
        expect_eq(h["latency_us"]["barge_in"]["count"], 1, "barge-ins measured")
        expect(h["latency_us"]["response"]["count"] >= 1, "response latency measured")
        # the call's record marks the reply cut off where the truncate put it
        def cut_line():
            st, _, body = d.admin_get("/api/call/%s/conversation" % r.call_sid,
                                      check=False)
            utts = json.loads(body)["utterances"] if st == 200 else []
            cut = [u for u in utts if u["role"] == "assistant" and u["interrupted"]]
            return cut[0] if cut else None
        u = await asyncio.to_thread(d.wait_for, cut_line, 5, "the interrupted reply")
        expect_eq(u["interrupted_at_ms"], t["audio_end_ms"], "interrupted_at_ms")


async def test_bargein_does_nothing_when_nothing_plays(env):
    async with FakeOpenAI(mode="vad", reply_ms=300, silence_ms=300) as srv:
        d = env.daemon(OPENAI_URL=srv.url(),
                       PERSONAS_DIR=personas_dir(env, greeting=None)).start()
        # two utterances far apart: the short reply has finished playing
        cl = synth.Caller(synth.synthetic_speech(500), seconds=8, hangup_after_ms=500,
                          turn_gap_ms=2000)
        cl.audio = cl.audio + b"\xff" * 8 * 2500 + synth.synthetic_speech(500)
        r = await cl.run(d.base, caller="+14155551004")
        conn = srv.accepted[0]
        expect_eq(conn.truncates, [], "truncated while nothing played")
        expect_eq(r.clears, [], "clear while nothing played")


async def failing_call(d, n, within=4.0):
    """A call whose upstream fails: Twilio's socket must be closed by us
    soon, so Twilio plays the TwiML after <Connect>.  Its daemon runs with
    PREWARM=off: these are failures of the session the stream opens (one
    opened at the webhook that fails is replaced, test_prewarm.py)."""
    wh = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(n),
                                 "+1415555%04d" % n)
    s = twilio.Stream(wh.stream_url, twilio.call_sid(n), twilio.stream_sid(n), wh.params)
    t0 = time.monotonic()
    try:
        await s.open()
    except twilio.websockets.ConnectionClosed:
        # it failed before Twilio's start went out: closed just as well
        await s.wait_closed(1)
    player = asyncio.ensure_future(s.play(within + 2))
    closed = await s.wait_closed(within)
    player.cancel()
    expect(closed, "call %d still open %.1f s after its upstream failed" % (n, within))
    expect_eq(s.close_code, 1011, "close code")
    return time.monotonic() - t0


async def test_upstream_refused_and_401(env):
    # nothing listens there
    port = __import__("harness").free_port()
    d = env.daemon(PREWARM="off", OPENAI_URL="ws://127.0.0.1:%d/v1/realtime?model=gpt-realtime" % port)
    d.start()
    await failing_call(d, 1)
    async with FakeOpenAI(mode="echo", api_key="sk-other") as srv:
        d2 = env.daemon(PREWARM="off", OPENAI_URL=srv.url(), OPENAI_API_KEY="sk-wrong-key-123").start()
        await failing_call(d2, 2)
        log = d2.log()
        expect("401" in log and "Incorrect API key" in log, "401 not logged:\n" + log[-2000:])
        expect("sk-wrong-key-123" not in log, "the key reached the log")
        h = await asyncio.to_thread(d2.health)
        expect_eq(h["metrics"]["api_errors"], 1, "api_errors")
        expect_eq(h["metrics"]["failed_calls"], 1, "failed_calls")
    h = await asyncio.to_thread(d.health)
    expect_eq(h["metrics"]["api_errors"], 1, "refused: api_errors")


async def test_upstream_http_errors(env):
    async with FakeOpenAI(mode="echo") as srv:
        d = env.daemon(PREWARM="off", OPENAI_URL=srv.url()).start()
        for i, status in enumerate((403, 429, 500, 503)):
            srv.next_config(reject_status=status)
            await failing_call(d, 10 + i)
            expect(" %d " % status in d.log(), "status %d not logged" % status)
        h = await asyncio.to_thread(d.health)
        expect_eq(h["metrics"]["api_errors"], 4, "api_errors")


async def test_upstream_bad_certificates(env):
    c, ctx = tls_setup(env)
    for i, (which, words) in enumerate((("untrusted", "verif"), ("wrong", "CN"))):
        sctx = certs.ssl_context(c[which + "_cert"], c[which + "_key"])
        async with FakeOpenAI(mode="echo", ssl=sctx, host="localhost") as srv:
            d = env.daemon(PREWARM="off", OPENAI_URL=srv.url(host="localhost"), OPENAI_CA_FILE=c["ca"])
            d.start()
            await failing_call(d, 20 + i)   # a CallSid per daemon: they share a ledger
            expect("certificate" in d.log(), "%s certificate: no reason logged" % which)
            expect_eq(len(srv.accepted), 0, "a session opened over a bad certificate")
            d.stop()


async def test_upstream_closes_mid_call(env):
    script = [{"wait_event": "input_audio_buffer.append", "count": 25}, {"close": 1011}]
    async with FakeOpenAI(mode="scripted", script=script) as srv:
        d = env.daemon(PREWARM="off", OPENAI_URL=srv.url()).start()
        took = await failing_call(d, 30)
        expect(took < 2.5, "closed %.1f s after the start" % took)
        srv.next_config(script=[{"wait_event": "input_audio_buffer.append", "count": 25},
                                {"send_raw": "this is not json"}])
        await failing_call(d, 31)
        srv.next_config(script=[{"wait_event": "input_audio_buffer.append", "count": 25},
                                {"drop": True}])
        await failing_call(d, 32)
        h = await asyncio.to_thread(d.health)
        expect_eq(h["metrics"]["api_errors"], 3, "api_errors")
        expect_eq(h["workers"][0]["restarts"] + h["workers"][1]["restarts"], 0,
                  "a worker died")


async def test_error_event_keeps_the_call(env):
    script = [{"wait_event": "input_audio_buffer.append", "count": 10},
              {"send": {"type": "error", "event_id": "event_1",
                        "error": {"type": "invalid_request_error",
                                  "code": "something_odd", "message": "odd",
                                  "param": None, "event_id": None}}}]
    async with FakeOpenAI(mode="scripted", script=script, after_script="echo") as srv:
        d = env.daemon(OPENAI_URL=srv.url()).start()
        s = await stream_call(d, 1, "+14155551005", 2.0)
        expect(s.close_code is None, "the error event ended the call")
        await s.stop()
        h = await asyncio.to_thread(d.health)
        expect_eq(h["counters"]["upstream_error_events"], 1, "error events counted")
        expect_eq(h["metrics"]["failed_calls"], 0, "failed")


async def test_upstream_stall_is_detected(env):
    script = [{"wait_event": "input_audio_buffer.append", "count": 5}, {"stall": True}]
    async with FakeOpenAI(mode="scripted", script=script) as srv:
        d = env.daemon(PREWARM="off", OPENAI_URL=srv.url(), OPENAI_PING_INTERVAL=1,
                       OPENAI_PONG_TIMEOUT=1).start()
        took = await failing_call(d, 40, within=6)
        expect(took < 5, "stall noticed after %.1f s" % took)
        expect("stopped answering" in d.log(), "stall reason not logged")


async def test_session_expiry_ends_the_call(env):
    async with FakeOpenAI(mode="echo", expires_in=12) as srv:
        d = env.daemon(OPENAI_URL=srv.url()).start()
        wh = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(1),
                                     "+14155551006")
        s = twilio.Stream(wh.stream_url, twilio.call_sid(1), twilio.stream_sid(1))
        await s.open()
        player = asyncio.ensure_future(s.play(8))
        expect(await s.wait_closed(6), "call outlived its session")
        player.cancel()
        expect_eq(s.close_code, 1000, "a clean close")
        h = await asyncio.to_thread(d.health)
        expect_eq(h["metrics"]["failed_calls"], 0, "counted as failed")


async def test_every_address_is_tried(env):
    """A name with an IPv6 and an IPv4 address (as localhost has on Debian,
    ::1 first): a server on either one alone is reached.  The daemon runs
    with its own /etc/hosts in a private mount namespace."""
    import harness
    name = "upstream.voxrelay.test"
    prefix = harness.private_hosts_prefix(env.tmp, ["::1 " + name, "127.0.0.1 " + name])
    if prefix is None:
        print("      (skipped: no private mount namespace on this machine)")
        return
    c = certs.make_certs(os.path.join(env.tmp, "certs"), names=(name,))
    ctx = certs.ssl_context(c["cert"], c["key"])
    for i, host in enumerate(("127.0.0.1", "::1")):
        async with FakeOpenAI(mode="echo", ssl=ctx, host=host) as srv:
            d = env.daemon(OPENAI_URL=srv.url(host=name), OPENAI_CA_FILE=c["ca"],
                           PERSONAS_DIR=personas_dir(env, greeting=None))
            d.wrap = prefix
            d.start()
            # a CallSid per daemon: they share a ledger directory
            s = await stream_call(d, 1 + i, "+14155551007", 0.5)
            await asyncio.sleep(0.3)
            await s.stop()
            expect_eq(len(media_of(s)), s.frames_sent, "echo via %s" % host)
            if host == "127.0.0.1":
                expect("connect to [::1]" in d.log(), "::1 was not tried first")
            d.stop()


async def test_transcripts_written(env):
    async with FakeOpenAI(mode="vad", reply_ms=400, silence_ms=300,
                          caller_transcript="I would like to practise cold calling",
                          reply_text="Hello, this is Sarah.") as srv:
        csv_path = os.path.join(env.tmp, "conversation_transcript.csv")
        d = env.daemon(OPENAI_URL=srv.url(), TRANSCRIPT_CSV_PATH=csv_path,
                       PERSONAS_DIR=personas_dir(env, greeting=None)).start()
        r = await synth.Caller(synth.synthetic_speech(600), seconds=6,
                               hangup_after_ms=500).run(d.base, caller="+14155551008")
        await asyncio.sleep(0.3)
        path = os.path.join(env.tmp, r.call_sid + ".jsonl")
        with open(path) as f:
            lines = [json.loads(x) for x in f]
        roles = {ln["role"]: ln["text"] for ln in lines}
        expect_eq(roles.get("caller"), "I would like to practise cold calling", "caller line")
        expect_eq(roles.get("assistant"), "Hello, this is Sarah.", "assistant line")
        expect(all(ln["t"].endswith("Z") for ln in lines), "times")
        with open(csv_path) as f:
            rows = f.read().strip().split("\n")
        expect_eq(rows[0], "timestamp,call_sid,phone_number,role,text", "csv header")
        expect(len(rows) == 3, "csv rows: %r" % rows)


async def test_fifty_calls_no_lost_frame(env):
    async with FakeOpenAI(mode="echo") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), MAX_WEBSOCKET_CONNECTIONS=100,
                       PERSONAS_DIR=personas_dir(env, greeting=None)).start()
        n = 50

        def frame_for(k):
            return lambda i: base64.b64encode(bytes(((k * 31 + i * 7 + j) % 256)
                                                    for j in range(160))).decode()
        streams = []
        for k in range(n):
            wh = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(500 + k),
                                         "+1555600%04d" % k)
            s = twilio.Stream(wh.stream_url, twilio.call_sid(500 + k),
                              twilio.stream_sid(500 + k), wh.params, frame=frame_for(k))
            await s.open()
            streams.append(s)
        h = await asyncio.to_thread(d.health)
        expect(all(w["live_calls"] > 0 for w in h["workers"]), "not spread over workers")
        await asyncio.gather(*(s.play(3.0) for s in streams))
        # every echo back before the stops, waited for (bounded), not
        # slept for: a loaded machine is late, and late is not lost
        deadline = time.monotonic() + 15
        while (time.monotonic() < deadline and
               any(len(media_of(s)) < s.frames_sent for s in streams)):
            await asyncio.sleep(0.1)
        for s in streams:
            await s.stop()
        for s in streams:
            got = media_of(s)
            expect_eq(len(got), s.frames_sent, "frames back on %s" % s.sid)
            expect_eq([m["media"]["payload"] for m in got],
                      [s.frame(i) for i in range(s.frames_sent)], "payloads on %s" % s.sid)
        for conn in srv.accepted:
            expect_eq(conn.schema_errors, [], "schema errors")
        h = await asyncio.to_thread(d.health)
        expect_eq(h["metrics"]["total_calls"], n, "total")
        expect_eq(h["metrics"]["failed_calls"], 0, "failed")
        expect_eq(h["counters"]["frames_in"], n * 150, "frames in")


async def test_gap_silence_keeps_its_place_between_batches(env):
    """With FRAMES_PER_APPEND=2, frames lost between frame 0 and frame 1
    (Twilio's timestamp jumps 80 ms) are filled with silence after frame 0,
    not ahead of the batch that frame 0 was waiting in."""
    async with FakeOpenAI(mode="echo") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), FRAMES_PER_APPEND=2,
                       PERSONAS_DIR=personas_dir(env, greeting=None)).start()
        wh = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(1),
                                     "+14155551019")
        s = twilio.Stream(wh.stream_url, twilio.call_sid(1), twilio.stream_sid(1),
                          wh.params)
        await s.open()
        await s.send_media(0, ts=0)
        await asyncio.sleep(0.01)
        await s.send_media(1, ts=100)       # frames of 20..99 ms lost
        await s.send_media(2, ts=120)
        conn = await srv.wait_connection(1)
        expect(await conn.wait_for("input_audio_buffer.append", 3, timeout=3),
               "appends: %r" % conn.types())
        got = b"".join(base64.b64decode(a) for a in conn.appends())
        f = [base64.b64decode(s.frame(i)) for i in range(3)]
        want = f[0] + b"\xff" * 640 + f[1] + f[2]
        expect(got == want, "frame 0, 80 ms of silence, frames 1 and 2: got %d "
               "bytes, silence from byte %d (want %d, from byte 160)"
               % (len(got), got.find(b"\xff" * 8), len(want)))
        await s.stop()
        check_clean(conn)


async def test_frames_per_append_gathers_caller_frames(env):
    async with FakeOpenAI(mode="echo") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), FRAMES_PER_APPEND=3,
                       PERSONAS_DIR=personas_dir(env, greeting=None)).start()
        s = await stream_call(d, 1, "+14155551009", 1.0)     # 50 frames
        await asyncio.sleep(0.6)                             # the last partial batch
        conn = srv.accepted[0]
        appends = conn.appends()
        sent = b"".join(base64.b64decode(s.frame(i)) for i in range(s.frames_sent))
        got = b"".join(base64.b64decode(a) for a in appends)
        expect_eq(got, sent, "the gathered audio")
        expect_eq(len(appends), (s.frames_sent + 2) // 3, "appends of three frames")
        # the partial last batch goes once it is as old as a full one (60 ms,
        # checked every 5 ms), not at the worker's next 250 ms tick
        times = [t for t, _ in conn.of_type("input_audio_buffer.append")]
        if s.frames_sent % 3:
            gap = times[-1] - times[-2]
            expect(gap < 0.2, "the partial batch came %.0f ms after the last "
                   "full one" % (gap * 1000))
        await s.stop()
        check_clean(conn)
