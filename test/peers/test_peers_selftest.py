#!/usr/bin/python3
"""Self-test of the test peers: certs.py, fake_openai.py, caller.py's
playout clock and twilio_rest.py's outbound calls.  Runs on its own: /usr/bin/python3 test/peers/test_peers_selftest.py
[substring ...].  Each test gets its own event loop and a time limit; the
last line is "N passed, N failed"."""

import asyncio
import base64
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import websockets  # noqa: E402

import caller  # noqa: E402
import certs  # noqa: E402
import fake_openai as fo  # noqa: E402
import twilio  # noqa: E402
import twilio_rest  # noqa: E402

TMP = None
CERTS = None
RSA_CERTS = None
PHRASE = None


def expect(cond, msg="expectation failed", *args):
    if not cond:
        raise AssertionError(msg % args if args else msg)


def expect_eq(a, b, what="value"):
    if a != b:
        raise AssertionError("%s: %r != %r" % (what, a, b))


def server_ctx(kind="good", pem=None):
    p = pem or CERTS
    cert, key = {"good": (p["cert"], p["key"]),
                 "wrong": (p["wrong_cert"], p["wrong_key"]),
                 "untrusted": (p["untrusted_cert"], p["untrusted_key"])}[kind]
    return certs.ssl_context(cert, key)


def client_ctx(pem=None):
    return certs.client_context((pem or CERTS)["ca"])


async def connect(srv, key="sk-test", beta=False, path="/v1/realtime",
                  query="model=gpt-realtime", host=None, ctx=None):
    hdrs = {}
    if key is not None:
        hdrs["Authorization"] = "Bearer " + key
    if beta:
        hdrs["OpenAI-Beta"] = "realtime=v1"
    kw = {}
    if srv.ssl:
        kw["ssl"] = ctx or client_ctx()
    return await websockets.connect(srv.url(path, query, host=host), extra_headers=hdrs,
                                    open_timeout=5, close_timeout=2, max_size=2 ** 24, **kw)


async def recv(ws, timeout=3.0):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws, etype, timeout=5.0, limit=5000):
    """Events up to and including the first of type etype."""
    out = []
    deadline = time.monotonic() + timeout
    for _ in range(limit):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            ev = await recv(ws, left)
        except asyncio.TimeoutError:
            break
        out.append(ev)
        if ev.get("type") == etype:
            return out
    raise AssertionError("no %s within %.1f s; got %s" % (
        etype, timeout, [e.get("type") for e in out][-30:]))


async def drain(ws, quiet=0.3, limit=5000):
    out = []
    for _ in range(limit):
        try:
            out.append(await recv(ws, quiet))
        except asyncio.TimeoutError:
            break
    return out


def ga_update(fmt="audio/pcmu", transcription=False, td=True, **extra):
    s = {"type": "realtime", "model": "gpt-realtime", "output_modalities": ["audio"],
         "instructions": "Be brief.",
         "audio": {"input": {"format": {"type": fmt},
                             "turn_detection": {"type": "server_vad", "threshold": 0.5,
                                                "prefix_padding_ms": 300,
                                                "silence_duration_ms": 500,
                                                "create_response": True,
                                                "interrupt_response": True} if td else None},
                   "output": {"format": {"type": fmt}, "voice": "marin"}}}
    if transcription:
        s["audio"]["input"]["transcription"] = {"model": "gpt-4o-mini-transcribe"}
    s.update(extra)
    return {"type": "session.update", "event_id": "evt_client_1", "session": s}


def beta_update(**extra):
    s = {"modalities": ["text", "audio"], "instructions": "Be brief.", "voice": "alloy",
         "input_audio_format": "g711_ulaw", "output_audio_format": "g711_ulaw",
         "input_audio_transcription": {"model": "whisper-1"},
         "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                            "silence_duration_ms": 500},
         "tools": [], "tool_choice": "auto", "temperature": 0.8,
         "max_response_output_tokens": "inf"}
    s.update(extra)
    return {"type": "session.update", "session": s}


def append(audio):
    return json.dumps({"type": "input_audio_buffer.append",
                       "audio": base64.b64encode(audio).decode()})


def frames(n, byte=None, src=None):
    """n frames of 160 bytes: distinct patterned audio, a constant byte, or
    consecutive slices of src."""
    out = []
    for i in range(n):
        if src is not None:
            f = src[i * 160:(i + 1) * 160]
            out.append(f + b"\xff" * (160 - len(f)))
        elif byte is not None:
            out.append(bytes([byte]) * 160)
        else:
            out.append(bytes(((i * 13 + j) % 256) for j in range(160)))
    return out


def loud_audio(ms):
    return fo.tone_ulaw(ms, 500, 9000)


# ---------------------------------------------------------------------------


def test_certs_verifiable():
    # How long the keys take is reported, not asserted: RSA key generation
    # time is random and the machine is shared.
    for kt in ("ec", "rsa"):
        d = os.path.join(TMP, "certs-" + kt)
        t0 = time.monotonic()
        p = certs.make_certs(d, kt)
        print("      %s certs made in %.2f s" % (kt, time.monotonic() - t0))
        for k in ("ca", "cert", "key", "wrong_cert", "wrong_key", "untrusted_cert",
                  "untrusted_key"):
            expect(os.path.getsize(p[k]) > 100, "%s missing", k)
        out = subprocess.run(["openssl", "verify", "-CAfile", p["ca"], p["cert"],
                              p["wrong_cert"]], capture_output=True, text=True, timeout=10)
        expect_eq(out.returncode, 0, "verify good+wrong against the CA")
        out = subprocess.run(["openssl", "verify", "-CAfile", p["ca"], p["untrusted_cert"]],
                             capture_output=True, text=True, timeout=10)
        expect(out.returncode != 0, "untrusted cert verified against the test CA")
        text = subprocess.run(["openssl", "x509", "-in", p["cert"], "-noout", "-text"],
                              capture_output=True, text=True, timeout=10).stdout
        expect("DNS:localhost" in text and "IP Address:127.0.0.1" in text and
               "IP Address:0:0:0:0:0:0:0:1" in text, "SAN: %s", text[-600:])
        expect(("rsaEncryption" in text) == (kt == "rsa"), "key type %s", kt)
        text = subprocess.run(["openssl", "x509", "-in", p["wrong_cert"], "-noout", "-text"],
                              capture_output=True, text=True, timeout=10).stdout
        expect("DNS:wrong.example" in text and "localhost" not in text, "wrong SAN")


async def test_tls_verification_rejects_wrong_and_untrusted():
    for pem in (CERTS, RSA_CERTS):
        for kind, host in (("good", "127.0.0.1"), ("good", "localhost"), ("good", "::1"),
                           ("wrong", "127.0.0.1"), ("wrong", "localhost"),
                           ("untrusted", "127.0.0.1"), ("untrusted", "localhost")):
            srv = fo.FakeOpenAI(ssl=server_ctx(kind, pem),
                                host="localhost" if host != "::1" else "::1")
            await srv.start()
            try:
                ws = await connect(srv, host=host, ctx=client_ctx(pem))
                ev = await recv(ws)
                await ws.close()
                expect_eq(kind, "good", "%s cert accepted at %s" % (kind, host))
                expect_eq(ev["type"], "session.created", "first event")
            except ssl.SSLCertVerificationError as e:
                expect(kind != "good", "good cert refused at %s: %s", host, e)
                if kind == "wrong":
                    expect("match" in str(e) or "mismatch" in str(e), "reason: %s", e)
                else:
                    expect("issuer" in str(e), "reason: %s", e)
            finally:
                await srv.stop()
    # and a client that does not verify still gets through a wrong cert
    srv = fo.FakeOpenAI(ssl=server_ctx("wrong"))
    await srv.start()
    try:
        lax = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        lax.check_hostname = False
        lax.verify_mode = ssl.CERT_NONE
        ws = await connect(srv, ctx=lax)
        expect_eq((await recv(ws))["type"], "session.created", "lax client")
        await ws.close()
    finally:
        await srv.stop()


async def test_ga_session_and_echo_over_tls():
    srv = fo.FakeOpenAI(dialect="ga", mode="echo", ssl=server_ctx(), expires_in=1800)
    await srv.start()
    try:
        ws = await connect(srv, query="model=gpt-realtime&x=1")
        t_now = time.time()
        ev = await recv(ws)
        expect_eq(ev["type"], "session.created", "first event")
        s = ev["session"]
        expect_eq((s["type"], s["object"], s["model"]), ("realtime", "realtime.session",
                                                         "gpt-realtime"), "session")
        expect(s["id"].startswith("sess_") and ev["event_id"].startswith("event_"), "ids")
        expect(abs(s["expires_at"] - (t_now + 1800)) < 5, "expires_at %r", s["expires_at"])
        expect_eq(s["audio"]["output"]["voice"], "alloy", "default voice")
        expect_eq(s["audio"]["input"]["turn_detection"]["interrupt_response"], True, "td")
        pre = frames(1, byte=0x11)[0]
        await ws.send(append(pre))            # before session.update: not echoed
        await ws.send(json.dumps(ga_update()))
        ev = await recv(ws)
        expect_eq(ev["type"], "session.updated", "answer to session.update")
        expect_eq(ev["session"]["audio"]["input"]["format"], {"type": "audio/pcmu"}, "format")
        expect_eq(ev["session"]["audio"]["output"]["voice"], "marin", "voice")
        expect_eq(ev["session"]["instructions"], "Be brief.", "instructions")
        expect("event_id" not in ev or ev["event_id"] != "evt_client_1", "event_id echoed")
        sent = frames(6)
        for f in sent:
            await ws.send(append(f))
        evs = await recv_until(ws, "response.done", timeout=3)
        types = [e["type"] for e in evs]
        deltas = [e for e in evs if e["type"] == "response.output_audio.delta"]
        expect_eq([base64.b64decode(d["delta"]) for d in deltas], sent, "echoed audio")
        expect_eq([d["delta"] for d in deltas],
                  [base64.b64encode(f).decode() for f in sent], "bit-exact base64")
        first_delta = types.index("response.output_audio.delta")
        for t in ("response.created", "response.output_item.added",
                  "conversation.item.added", "response.content_part.added"):
            expect(types.index(t) < first_delta, "%s after the first delta: %s", t, types)
        for t in ("response.output_audio.done", "response.content_part.done",
                  "response.output_item.done", "conversation.item.done"):
            expect(first_delta < types.index(t) < len(types) - 1, "%s misplaced", t)
        done = evs[-1]["response"]
        expect_eq(done["status"], "completed", "status")
        expect(done["id"].startswith("resp_") and deltas[0]["item_id"].startswith("item_"),
               "ids")
        expect_eq(done["output"][0]["content"][0]["type"], "output_audio", "part type")
        await ws.close()
        conn = srv.connections[0]
        await conn.wait_closed(3)
        expect_eq(conn.path, "/v1/realtime?model=gpt-realtime&x=1", "path")
        expect_eq(conn.query["model"], ["gpt-realtime"], "query")
        expect_eq(conn.headers["authorization"], "Bearer sk-test", "authorization")
        expect(conn.authorized and not conn.beta_header, "flags")
        expect_eq(conn.schema_errors, [], "schema errors")
        expect_eq(conn.types()[:2], ["input_audio_buffer.append", "session.update"], "order")
        expect_eq(conn.appends()[1:], [base64.b64encode(f).decode() for f in sent], "appends")
        expect_eq(bytes(conn.appended), pre + b"".join(sent), "appended bytes")
        t_upd = conn.first("session.update")[0]
        expect(all(t > t_upd for t, e in conn.of_type("input_audio_buffer.append")[1:]), "t")
        expect(conn.closed and conn.closed_by == "client" and conn.close_code == 1000,
               "closed %r %r %r", conn.closed, conn.closed_by, conn.close_code)
        expect_eq(conn.sent_types()[0], "session.created", "first sent")
        expect_eq(conn.responses[0]["status"], "completed", "response summary")
    finally:
        await srv.stop()


async def test_ga_schema_violations_recorded():
    srv = fo.FakeOpenAI(dialect="ga", mode="echo", ssl=server_ctx())
    await srv.start()
    try:
        ws = await connect(srv)
        await recv(ws)
        bad = ga_update(temperature=0.8)
        bad["event_id"] = "evt_bad_1"
        await ws.send(json.dumps(bad))
        ev = await recv(ws)
        expect_eq(ev["type"], "error", "answer to a bad session.update")
        expect_eq(ev["error"]["event_id"], "evt_bad_1", "event_id echoed")
        await ws.send(json.dumps({"type": "session.update", "session": {
            "audio": {"input": {"format": "g711_ulaw"}}}}))     # beta shape, no type
        expect_eq((await recv(ws))["type"], "error", "beta shape in GA")
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "AAAA",
                                  "extra": 1}))
        ev = await recv(ws)
        expect_eq((ev["error"]["code"], ev["error"]["param"]), ("unknown_parameter", "extra"),
                  "unknown field")
        await ws.send(json.dumps({"type": "conversation.item.truncate", "item_id": "x"}))
        ev = await recv(ws)
        expect_eq(ev["error"]["code"], "missing_required_parameter", "missing field")
        await ws.send(json.dumps({"type": "no.such.event"}))
        expect_eq((await recv(ws))["error"]["param"], "type", "unknown type")
        await ws.send("this is not json")
        expect_eq((await recv(ws))["type"], "error", "garbage")
        await ws.send(json.dumps(ga_update()))
        expect_eq((await recv(ws))["type"], "session.updated", "a valid one still works")
        await ws.close()
        conn = srv.connections[0]
        await conn.wait_closed(3)
        expect_eq(len([e for e in conn.schema_errors if e["type"] == "session.update"]) >= 2,
                  True, "session.update violations recorded")
        expect(any(e["param"] == "session" or "temperature" in e["message"]
                   for e in conn.schema_errors), "temperature: %r", conn.schema_errors)
        expect_eq(conn.schema_errors[-1]["code"], "invalid_json", "garbage recorded")
        expect_eq(conn.session_updates, 1, "only the valid update applied")
        expect_eq(len(conn.errors_sent), 6, "errors sent")
    finally:
        await srv.stop()


async def test_ga_rejects_beta_header_and_auth():
    srv = fo.FakeOpenAI(dialect="ga", ssl=server_ctx(), api_key="sk-right")
    await srv.start()
    try:
        ws = await connect(srv, key="sk-right", beta=True)
        ev = await recv(ws)
        expect_eq((ev["type"], ev["error"]["code"]), ("error", "beta_api_shape_disabled"),
                  "beta header on GA")
        try:
            await asyncio.wait_for(ws.recv(), 3)
            raise AssertionError("not closed")
        except websockets.ConnectionClosed:
            pass
        expect(srv.connections[0].beta_header, "beta header recorded")
        for key in ("sk-wrong", None):
            try:
                await connect(srv, key=key)
                raise AssertionError("key %r accepted" % key)
            except websockets.InvalidStatusCode as e:
                expect_eq(e.status_code, 401, "status")

        def raw_get(key):
            c = http.client.HTTPSConnection("127.0.0.1", srv.port, context=client_ctx(),
                                            timeout=5)
            hdrs = {"Upgrade": "websocket", "Connection": "Upgrade",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
            if key:
                hdrs["Authorization"] = "Bearer " + key
            c.request("GET", "/v1/realtime?model=gpt-realtime", headers=hdrs)
            r = c.getresponse()
            out = r.status, r.getheader("Content-Type"), r.getheader("Retry-After"), r.read()
            c.close()
            return out
        st, ctype, _, body = await asyncio.to_thread(raw_get, "sk-wrong-key-123456")
        expect_eq((st, ctype), (401, "application/json"), "401")
        err = json.loads(body)["error"]
        expect_eq((err["type"], err["code"]), ("invalid_request_error", "invalid_api_key"),
                  "401 body")
        expect(err["message"].startswith("Incorrect API key provided"), "message")
        expect("sk-wrong-key-123456" not in err["message"], "key echoed in full")
        for status, code in ((403, "model_not_found"), (429, "rate_limit_exceeded"),
                             (500, None), (503, None)):
            srv.next_config(reject_status=status, retry_after=2)
            st, ctype, ra, body = await asyncio.to_thread(raw_get, "sk-right")
            expect_eq((st, ra), (status, "2"), "refusal")
            err = json.loads(body)["error"]
            expect_eq(err["code"], code, "code for %d" % status)
            expect(err["message"] and err["type"], "shape %r", err)
        srv.next_config(reject_status=503)
        try:
            await connect(srv, key="sk-right")
            raise AssertionError("503 not refused")
        except websockets.InvalidStatusCode as e:
            expect_eq(e.status_code, 503, "queued refusal")
        ws = await connect(srv, key="sk-right")    # the queue is used up: accepted
        expect_eq((await recv(ws))["type"], "session.created", "after the queue")
        await ws.close()
        statuses = [c.status for c in srv.connections]
        expect_eq(statuses, [101, 401, 401, 401, 403, 429, 500, 503, 503, 101], "statuses")
        expect_eq(len(srv.accepted), 2, "accepted")
        expect_eq(srv.connections[2].headers.get("authorization"), None, "no key sent")
    finally:
        await srv.stop()


async def test_beta_dialect():
    srv = fo.FakeOpenAI(dialect="beta", mode="echo", ssl=server_ctx())
    await srv.start()
    try:
        ws = await connect(srv, beta=True,
                           query="model=gpt-4o-realtime-preview-2024-12-17")
        ev = await recv(ws)
        expect_eq(ev["type"], "session.created", "first")
        s = ev["session"]
        expect("type" not in s and s["input_audio_format"] == "pcm16" and
               s["model"] == "gpt-4o-realtime-preview-2024-12-17", "beta session %r", s)
        expect_eq((await recv(ws))["type"], "conversation.created", "second")
        await ws.send(json.dumps(beta_update(type="realtime")))
        ev = await recv(ws)
        expect_eq((ev["type"], ev["error"]["param"]), ("error", "session.type"), "type in beta")
        await ws.send(json.dumps(beta_update(input_audio_format={"type": "audio/pcmu"})))
        expect_eq((await recv(ws))["type"], "error", "GA format object in beta")
        await ws.send(json.dumps(beta_update(output_modalities=["audio"])))
        expect_eq((await recv(ws))["type"], "error", "GA name in beta")
        await ws.send(json.dumps(beta_update()))
        ev = await recv(ws)
        expect_eq(ev["type"], "session.updated", "valid beta update")
        expect_eq(ev["session"]["input_audio_format"], "g711_ulaw", "format")
        expect_eq(ev["session"]["turn_detection"]["interrupt_response"], True, "td defaults")
        sent = frames(3)
        for f in sent:
            await ws.send(append(f))
        evs = await recv_until(ws, "response.done", timeout=3)
        deltas = [e["delta"] for e in evs if e["type"] == "response.audio.delta"]
        expect_eq(deltas, [base64.b64encode(f).decode() for f in sent], "beta echo")
        types = [e["type"] for e in evs]
        expect("conversation.item.created" in types and "conversation.item.added" not in types,
               "beta item events: %s", types)
        expect("response.audio.done" in types, "audio.done")
        await ws.send(json.dumps({"type": "response.create",
                                  "response": {"output_modalities": ["audio"]}}))
        expect_eq((await recv(ws))["type"], "error", "GA response field in beta")
        await ws.close()
        conn = srv.connections[0]
        await conn.wait_closed(3)
        expect(conn.beta_header and conn.beta_header_value == "realtime=v1", "beta header")
        expect_eq(len(conn.schema_errors), 4, "beta violations")
        # beta without the header
        ws = await connect(srv)
        ev = await recv(ws)
        expect_eq(ev["type"], "error", "beta without header")
        expect(not srv.connections[1].beta_header, "recorded")
        await ws.close()
    finally:
        await srv.stop()


async def test_vad_reply_transcription_and_silence():
    srv = fo.FakeOpenAI(dialect="ga", mode="vad", ssl=None, reply_ms=500,
                        reply_text="Hello there caller", caller_transcript="book a visit")
    await srv.start()
    try:
        expect(srv.url().startswith("ws://"), "plain ws")
        ws = await connect(srv)
        await recv(ws)
        await ws.send(json.dumps(ga_update(transcription=True)))
        await recv_until(ws, "session.updated")
        speech = caller.load_audio(PHRASE)
        audio = b"\xff" * 8000 + speech + b"\xff" * 8000
        for f in frames(len(audio) // 160 + 1, src=audio):
            await ws.send(append(f))
        evs = await recv_until(ws, "response.done", timeout=5)
        types = [e["type"] for e in evs]
        st = evs[types.index("input_audio_buffer.speech_started")]
        sp = evs[types.index("input_audio_buffer.speech_stopped")]
        loud = [i for i, f in enumerate(frames(len(speech) // 160 + 1, src=speech))
                if caller.is_loud(f)]
        expect_eq(st["audio_start_ms"], 1000 + loud[0] * 20 - 300, "audio_start_ms")
        expect(abs(sp["audio_end_ms"] - (1000 + (loud[-1] + 1) * 20 + 500)) <= 20,
               "audio_end_ms %r", sp["audio_end_ms"])
        expect_eq(st["item_id"], sp["item_id"], "item ids")
        order = ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                 "input_audio_buffer.committed", "conversation.item.added",
                 "conversation.item.done", "response.created", "response.output_item.added",
                 "response.content_part.added", "response.output_audio.delta",
                 "response.output_audio.done", "response.output_audio_transcript.done",
                 "response.content_part.done", "response.output_item.done", "response.done"]
        idx = [types.index(t) for t in order]
        expect_eq(idx, sorted(idx), "event order %s" % types)
        tr = [e for e in evs if e["type"] ==
              "conversation.item.input_audio_transcription.completed"]
        expect(tr and tr[0]["transcript"] == "book a visit" and tr[0]["item_id"] == st["item_id"],
               "transcription %r", tr)
        audio_out = b"".join(base64.b64decode(e["delta"]) for e in evs
                             if e["type"] == "response.output_audio.delta")
        expect_eq(len(audio_out), 4000, "reply length")
        expect_eq(len([e for e in evs if e["type"] == "response.output_audio.delta"]), 5,
                  "deltas of 100 ms")
        tdone = [e for e in evs if e["type"] == "response.output_audio_transcript.done"][0]
        expect_eq(tdone["transcript"], "Hello there caller", "transcript")
        expect_eq(evs[-1]["response"]["status"], "completed", "status")
        await ws.close()
        conn = srv.connections[0]
        await conn.wait_closed(3)
        expect_eq([w for _, w, _ in conn.vad_log], ["speech_started", "speech_stopped"], "vad")
        # silence only: nothing
        ws = await connect(srv)
        await recv(ws)
        await ws.send(json.dumps(ga_update()))
        await recv_until(ws, "session.updated")
        for f in frames(150, byte=0xFF) + frames(50, byte=0x7F):
            await ws.send(append(f))
        rest = await drain(ws, 0.5)
        expect_eq(rest, [], "events on silence")
        await ws.close()
    finally:
        await srv.stop()


async def test_vad_tool_turns_and_reply_lists():
    """vad_tools: a caller turn answered by a tool call instead of speech;
    reply_text (and reply_wav) lists: one per audio reply, the last repeating."""
    srv = fo.FakeOpenAI(dialect="ga", mode="vad", ssl=None, reply_ms=300,
                        reply_text=["first", "second"],
                        vad_tools=[None, {"name": "pick", "arguments": {"x": 1}}])
    await srv.start()
    try:
        ws = await connect(srv)
        await recv(ws)
        await ws.send(json.dumps(ga_update()))
        await recv_until(ws, "session.updated")
        speech = caller.load_audio(PHRASE)
        audio = b"\xff" * 4000 + speech + b"\xff" * 8000
        said = []
        for turn in range(3):
            for f in frames(len(audio) // 160 + 1, src=audio):
                await ws.send(append(f))
            evs = await recv_until(ws, "response.done", timeout=5)
            types = [e["type"] for e in evs]
            tr = [e["transcript"] for e in evs
                  if e["type"] == "response.output_audio_transcript.done"]
            calls = [(e["name"], json.loads(e["arguments"])) for e in evs
                     if e["type"] == "response.function_call_arguments.done"]
            if turn == 1:
                expect_eq(calls, [("pick", {"x": 1})], "tool turn")
                expect("response.output_audio.delta" not in types, "audio with the tool")
            else:
                expect_eq(calls, [], "calls on turn %d" % turn)
                said += tr
        expect_eq(said, ["first", "second"], "replies in order")
        # the list's last entry repeats
        await ws.send(json.dumps({"type": "response.create"}))
        evs = await recv_until(ws, "response.done", timeout=5)
        tr = [e["transcript"] for e in evs
              if e["type"] == "response.output_audio_transcript.done"]
        expect_eq(tr, ["second"], "past the end")
        await ws.close()
    finally:
        await srv.stop()


async def test_barge_in_truncate_cancel_create():
    srv = fo.FakeOpenAI(dialect="ga", mode="vad", ssl=server_ctx(), reply_ms=2000,
                        chunk_ms=100, interval_ms=100)
    await srv.start()
    try:
        ws = await connect(srv)
        await recv(ws)
        await ws.send(json.dumps(ga_update()))
        await recv_until(ws, "session.updated")
        await ws.send(json.dumps({"type": "response.cancel"}))
        ev = await recv(ws)
        expect_eq(ev["error"]["code"], "response_cancel_not_active", "cancel when idle")
        await ws.send(json.dumps({"type": "response.create", "event_id": "evt_c1",
                                  "response": {"instructions": "Greet the caller."}}))
        evs = await recv_until(ws, "response.output_audio.delta")
        item_id = evs[-1]["item_id"]
        await ws.send(json.dumps({"type": "response.create", "event_id": "evt_c2"}))
        evs = await recv_until(ws, "error")
        expect_eq(evs[-1]["error"]["code"], "conversation_already_has_active_response",
                  "second create")
        expect_eq(evs[-1]["error"]["event_id"], "evt_c2", "event_id")
        # caller speaks while the reply is still being generated
        await asyncio.sleep(0.25)
        for f in frames(10, src=loud_audio(200)):
            await ws.send(append(f))
        evs = await recv_until(ws, "response.done", timeout=3)
        types = [e["type"] for e in evs]
        expect("input_audio_buffer.speech_started" in types, "speech_started: %s", types)
        after = types[types.index("input_audio_buffer.speech_started"):]
        expect("response.output_audio.delta" not in after, "deltas after barge-in")
        expect(after.index("response.output_audio.done") < after.index("response.done"),
               "audio.done first")
        done = evs[-1]["response"]
        expect_eq(done["status"], "cancelled", "status")
        expect_eq(done["status_details"], {"type": "cancelled", "reason": "turn_detected"},
                  "status_details")
        conn = srv.connections[0]
        sent_ms = conn.audio_items[item_id]["sent_bytes"] / 8
        expect(100 <= sent_ms < 2000, "sent %r ms", sent_ms)
        await ws.send(json.dumps({"type": "conversation.item.truncate", "item_id": item_id,
                                  "content_index": 0, "audio_end_ms": int(sent_ms) + 20}))
        ev = (await recv_until(ws, "error"))[-1]
        expect_eq(ev["error"]["code"], "invalid_value", "too long")
        expect("shorter than" in ev["error"]["message"], "message %r", ev["error"]["message"])
        await ws.send(json.dumps({"type": "conversation.item.truncate", "item_id": item_id,
                                  "content_index": 0, "audio_end_ms": int(sent_ms) - 50}))
        ev = (await recv_until(ws, "conversation.item.truncated"))[-1]
        expect_eq(ev["audio_end_ms"], int(sent_ms) - 50, "truncated")
        await ws.send(json.dumps({"type": "conversation.item.truncate", "item_id": "item_x",
                                  "content_index": 0, "audio_end_ms": 0}))
        expect_eq((await recv_until(ws, "error"))[-1]["error"]["param"], "item_id", "unknown")
        # silence ends the caller's turn: committed and a new, complete reply
        for f in frames(30, byte=0xFF):
            await ws.send(append(f))
        evs = await recv_until(ws, "response.done", timeout=5)
        expect_eq(evs[-1]["response"]["status"], "completed", "second reply")
        # a response.create while idle, with instructions recorded
        await ws.send(json.dumps({"type": "response.cancel"}))
        expect_eq((await recv_until(ws, "error"))[-1]["error"]["code"],
                  "response_cancel_not_active", "nothing to cancel")
        await ws.send(json.dumps({"type": "response.create"}))
        evs = await recv_until(ws, "response.output_audio.delta")
        await ws.send(json.dumps({"type": "response.cancel"}))
        evs = await recv_until(ws, "response.done")
        expect_eq(evs[-1]["response"]["status_details"]["reason"], "client_cancelled", "cancel")
        await ws.close()
        await conn.wait_closed(3)
        expect_eq([t["ok"] for t in conn.truncates], [False, True, False], "truncates")
        expect_eq(conn.truncates[1]["audio_end_ms"], int(sent_ms) - 50, "recorded")
        expect_eq(conn.response_requests[0]["instructions"], "Greet the caller.", "instructions")
        expect_eq([r["status"] for r in conn.responses],
                  ["cancelled", "completed", "cancelled"], "responses")
        expect_eq(conn.schema_errors, [], "schema errors")
    finally:
        await srv.stop()


async def test_scripted_steps_and_tool_call():
    script = [
        {"wait_event": "session.update"},
        {"wait_event": "input_audio_buffer.append", "count": 3},
        {"send": {"type": "rate_limits.updated", "rate_limits": [], "custom": 7}},
        {"send_raw": "}{ not json"},
        {"reply_audio_ms": 300, "chunk_ms": 100, "interval_ms": 10, "text": "one two"},
        {"tool_call": {"name": "book_appointment",
                       "arguments": {"date": "2026-09-03", "time": "10:00"}}},
        {"wait_event": "response.create"},
        {"wait_ms": 100},
        {"close": 4000, "reason": "script over"},
    ]
    srv = fo.FakeOpenAI(dialect="ga", mode="scripted", script=script, ssl=server_ctx())
    await srv.start()
    try:
        ws = await connect(srv)
        await recv(ws)
        await ws.send(json.dumps(ga_update()))
        expect_eq((await recv(ws))["type"], "session.updated", "auto answer in a script")
        for f in frames(3):
            await ws.send(append(f))
        ev = await recv(ws)
        expect_eq(ev, {"type": "rate_limits.updated", "rate_limits": [], "custom": 7},
                  "raw event passthrough")
        raw = await asyncio.wait_for(ws.recv(), 3)
        expect_eq(raw, "}{ not json", "raw text")
        evs = await recv_until(ws, "response.done")
        audio = b"".join(base64.b64decode(e["delta"]) for e in evs
                         if e["type"] == "response.output_audio.delta")
        expect_eq(len(audio), 2400, "300 ms reply")
        evs = await recv_until(ws, "response.done")
        types = [e["type"] for e in evs]
        expect_eq([t for t in types if t.startswith("response.")],
                  ["response.created", "response.output_item.added",
                   "response.function_call_arguments.delta",
                   "response.function_call_arguments.delta",
                   "response.function_call_arguments.done", "response.output_item.done",
                   "response.done"], "tool call events")
        added = evs[types.index("response.output_item.added")]["item"]
        done = evs[types.index("response.function_call_arguments.done")]
        expect_eq((added["type"], added["name"]), ("function_call", "book_appointment"), "item")
        expect_eq(done["call_id"], added["call_id"], "call_id")
        expect_eq(done["name"], "book_appointment", "name (GA)")
        expect_eq(json.loads(done["arguments"]), {"date": "2026-09-03", "time": "10:00"},
                  "arguments")
        args = "".join(e["delta"] for e in evs
                       if e["type"] == "response.function_call_arguments.delta")
        expect_eq(args, done["arguments"], "argument deltas")
        await ws.send(json.dumps({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": done["call_id"],
            "output": "{\"booked\":true}"}}))
        evs = await recv_until(ws, "conversation.item.done")
        expect_eq(evs[-1]["item"]["call_id"], done["call_id"], "item.done")
        await ws.send(json.dumps({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": "call_unknown", "output": "{}"}}))
        expect_eq((await recv(ws))["type"], "error", "unknown call_id")
        await ws.send(json.dumps({"type": "response.create"}))
        try:
            for _ in range(20):
                await recv(ws, 3)
            raise AssertionError("not closed")
        except websockets.ConnectionClosed:
            pass
        expect_eq((ws.close_code, ws.close_reason), (4000, "script over"), "close")
        conn = srv.connections[0]
        await conn.wait_closed(3)
        expect_eq(conn.closed_by, "server", "closed_by")
        expect_eq(conn.tool_calls[0]["name"], "book_appointment", "tool_calls")
        expect_eq([f["call_id"] for f in conn.function_outputs],
                  [done["call_id"], "call_unknown"], "function outputs")
        expect_eq([w for _, i, w in conn.script_log if w != "start"], [], "script log")
        expect_eq(len(conn.response_requests), 1, "response.create recorded, not answered")
        expect_eq(conn.schema_errors, [], "schema errors")
    finally:
        await srv.stop()


async def test_scripted_stall_drop_and_queue():
    srv = fo.FakeOpenAI(dialect="ga", mode="echo", ssl=server_ctx())
    await srv.start()
    try:
        srv.next_config(mode="scripted", script=[{"wait_event": "session.update"},
                                                 {"stall": True}])
        srv.next_config(mode="scripted", script=[{"wait_ms": 50}, {"drop": True}])
        srv.next_config(mode="scripted", script=[{"send": {"type": "x.custom"}}],
                        after_script="echo")
        # 1: stall
        ws = await connect(srv)
        await recv(ws)
        await ws.send(json.dumps(ga_update()))
        await recv_until(ws, "session.updated")
        await asyncio.sleep(0.2)
        await ws.send(json.dumps({"type": "response.create"}))
        pong = await ws.ping()
        try:
            await asyncio.wait_for(pong, 0.7)
            raise AssertionError("a stalled server answered a ping")
        except asyncio.TimeoutError:
            pass
        got = await drain(ws, 0.3)
        expect_eq([e["type"] for e in got], [], "events from a stalled server")
        conn = srv.connections[0]
        expect(conn.stalled and not conn.closed, "stalled")
        ws.transport.abort()
        expect(await conn.wait_closed(3), "stalled connection noticed the client leaving")
        expect_eq(conn.closed_by, "client", "closed_by")
        # 2: drop
        ws = await connect(srv)
        await recv(ws)
        try:
            await asyncio.wait_for(ws.recv(), 3)
            raise AssertionError("drop: no close")
        except websockets.ConnectionClosed:
            pass
        expect_eq(ws.close_code, 1006, "no close frame")
        await srv.connections[1].wait_closed(3)
        expect_eq(srv.connections[1].closed_by, "drop", "closed_by")
        # 3: script then echo
        ws = await connect(srv)
        await recv(ws)
        expect_eq((await recv(ws))["type"], "x.custom", "script step")
        await ws.send(json.dumps(ga_update()))
        await recv_until(ws, "session.updated")
        await asyncio.sleep(0.05)
        await ws.send(append(b"\x01" * 160))
        ev = (await recv_until(ws, "response.output_audio.delta"))[-1]
        expect_eq(ev["delta"], base64.b64encode(b"\x01" * 160).decode(), "echo after script")
        await ws.close()
        # 4: the queue is empty: the defaults again
        ws = await connect(srv)
        expect_eq((await recv(ws))["type"], "session.created", "default")
        await ws.close()
        expect_eq([c.config["mode"] for c in srv.connections],
                  ["scripted", "scripted", "scripted", "echo"], "modes")
        # on_connection callback
        srv.on_connection = lambda c: {"reject_status": 429} if "deny" in c.path else None
        try:
            await connect(srv, path="/v1/realtime/deny")
            raise AssertionError("callback ignored")
        except websockets.InvalidStatusCode as e:
            expect_eq(e.status_code, 429, "callback refusal")
    finally:
        await srv.stop()


async def test_broken_clients_do_not_hurt_the_server():
    srv = fo.FakeOpenAI(dialect="ga", mode="vad", ssl=server_ctx(), reply_ms=3000,
                        interval_ms=50)
    await srv.start()
    try:
        ws = await connect(srv)
        await recv(ws)
        await ws.send(b"\x00\x01binary")
        expect_eq((await recv(ws))["error"]["code"], "invalid_frame", "binary frame")
        await ws.send(json.dumps([1, 2, 3]))
        expect_eq((await recv(ws))["error"]["code"], "invalid_json", "not an object")
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "@@@"}))
        expect_eq((await recv(ws))["error"]["param"], "audio", "bad base64")
        await ws.send(json.dumps({"type": "response.create"}))
        await recv_until(ws, "response.output_audio.delta")
        ws.transport.abort()                       # gone mid-reply, no close frame
        conn = srv.connections[0]
        expect(await conn.wait_closed(3), "abort noticed")
        await asyncio.sleep(0.2)
        expect_eq(conn.responses[0]["status"], "aborted", "response summary")
        # a TCP connection that never speaks TLS, and one that sends junk
        for junk in (b"", b"GET / HTTP/1.1\r\n\r\n", os.urandom(64)):
            r, w = await asyncio.open_connection("127.0.0.1", srv.port)
            w.write(junk)
            await asyncio.sleep(0.05)
            w.close()
        ws = await connect(srv)
        expect_eq((await recv(ws))["type"], "session.created", "still serving")
        await ws.close()
        expect(all(c.crash is None for c in srv.connections), "crash: %r",
               [c.crash for c in srv.connections])
    finally:
        await srv.stop()


async def test_session_expiry():
    srv = fo.FakeOpenAI(dialect="ga", mode="idle", ssl=None, expires_in=1)
    await srv.start()
    try:
        ws = await connect(srv)
        ev = await recv(ws)
        evs = await recv_until(ws, "error", timeout=3)
        expect_eq(evs[-1]["error"]["code"], "session_expired", "expiry")
        try:
            await asyncio.wait_for(ws.recv(), 3)
        except websockets.ConnectionClosed:
            pass
        expect_eq(ws.close_code, 1000, "close after expiry")
        expect(ev["session"]["expires_at"] <= time.time() + 1, "expires_at")
    finally:
        await srv.stop()


async def test_caller_playout_marks_and_clear():
    """A tiny in-process Twilio-side server: it sends media, marks and a clear
    and times the echoes (Twilio's rule: a mark comes back when the audio
    before it has played; clear flushes them all at once)."""
    log = {}
    t = {}

    async def handler(ws):
        async def send(obj):
            await ws.send(json.dumps(obj))
        ssid = None
        inbound = []
        for _ in range(10):
            m = json.loads(await ws.recv())
            if m["event"] == "start":
                ssid = m["streamSid"]
                break

        async def reader():
            try:
                async for msg in ws:
                    m = json.loads(msg)
                    now = time.monotonic()
                    if m["event"] == "mark":
                        log[m["mark"]["name"]] = now
                    elif m["event"] == "media":
                        inbound.append((now, base64.b64decode(m["media"]["payload"])))
            except websockets.ConnectionClosed:
                pass
        rd = asyncio.ensure_future(reader())
        await asyncio.sleep(0.4)     # the caller's first words
        t["start"] = time.monotonic()
        one_s = base64.b64encode(b"\x55" * 8000).decode()
        await send({"event": "media", "streamSid": ssid, "media": {"payload": one_s}})
        await send({"event": "mark", "streamSid": ssid, "mark": {"name": "m1"}})
        await send({"event": "media", "streamSid": ssid, "media": {"payload": one_s}})
        await send({"event": "mark", "streamSid": ssid, "mark": {"name": "m2"}})
        await asyncio.sleep(1.5)
        t["clear"] = time.monotonic()
        await send({"event": "clear", "streamSid": ssid})
        await asyncio.sleep(0.1)
        t["m3"] = time.monotonic()
        await send({"event": "mark", "streamSid": ssid, "mark": {"name": "m3"}})
        await asyncio.sleep(0.1)
        t["m4"] = time.monotonic()
        await send({"event": "media", "streamSid": ssid,
                    "media": {"payload": base64.b64encode(b"\x66" * 1600).decode()}})
        await send({"event": "mark", "streamSid": ssid, "mark": {"name": "m4"}})
        await asyncio.sleep(0.6)
        t["inbound"] = inbound
        await ws.close()
        rd.cancel()

    srv = await websockets.serve(handler, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        speech = loud_audio(200)
        barge = loud_audio(300)
        c = caller.Caller(speech, barge_audio=barge, barge_in_after_ms=600, seconds=8,
                          lead_ms=0, hangup_after_ms=None)
        r = await c.run_stream("ws://127.0.0.1:%d/media-stream/x" % port,
                               "CA" + "1" * 32, "MZ" + "2" * 32)
    finally:
        srv.close()
        await srv.wait_closed()
    ms = lambda a, b: (a - b) * 1000  # noqa: E731
    expect(abs(ms(log["m1"], t["start"]) - 1000) < 60, "m1 at %.0f ms",
           ms(log["m1"], t["start"]))
    expect(0 <= ms(log["m2"], t["clear"]) < 40, "m2 flushed at %.0f ms after clear",
           ms(log["m2"], t["clear"]))
    expect(0 <= ms(log["m3"], t["m3"]) < 40, "m3 (nothing queued) at %.0f ms",
           ms(log["m3"], t["m3"]))
    expect(abs(ms(log["m4"], t["m4"]) - 200) < 50, "m4 at %.0f ms", ms(log["m4"], t["m4"]))
    expect_eq(r.marks_echoed, ["m1", "m2", "m3", "m4"], "echo order")
    expect_eq([m["flushed"] for m in r.marks], [False, True, False, False], "flushed")
    expect_eq(len(r.clears), 1, "clears")
    expect(abs(r.played_ms_at_clear - 1500) < 60, "played at clear %.0f", r.played_ms_at_clear)
    expect(abs(r.clears[0]["dropped_ms"] - 500) < 60, "dropped %.0f", r.clears[0]["dropped_ms"])
    expect_eq(r.clears[0]["marks_flushed"], ["m2"], "flushed names")
    expect_eq(r.received_bytes, 16000 + 1600, "received")
    expect_eq(r.received_audio, b"\x55" * 16000 + b"\x66" * 1600, "received audio")
    expect(abs(r.played_ms - 1700) < 60, "played %.0f", r.played_ms)
    expect_eq(len(r.assistant_turns), 2, "assistant turns")
    a1 = r.assistant_turns[0]
    expect(a1["cleared"] and abs(a1["played_ms"] - 1500) < 60, "turn 1 %r", a1)
    expect(abs(r.assistant_turns[1]["played_ms"] - 200) < 30, "turn 2 %r", r.assistant_turns[1])
    # caller speech: its own 200 ms, then the barge-in after 600 ms of reply
    expect_eq(len(r.caller_turns), 2, "caller turns %r" % r.caller_turns)
    expect(abs((r.caller_turns[0]["end_ms"] - r.caller_turns[0]["start_ms"]) - 200) <= 20,
           "first segment %r", r.caller_turns[0])
    expect(r.first_audio_latency_ms is not None and r.first_audio_latency_ms > 100,
           "latency %r", r.first_audio_latency_ms)
    loud_in = [ts for ts, b in t["inbound"] if caller.is_loud(b)]
    barge_seen = [ts for ts in loud_in if ts > t["start"]]
    expect(barge_seen, "no barge-in audio arrived")
    expect(abs(ms(barge_seen[0], t["start"]) - 600) < 80, "barge-in at %.0f ms of playback",
           ms(barge_seen[0], t["start"]))
    expect(abs(r.barge_in_at_ms - (r.assistant_turns[0]["start_ms"] + 600)) < 60, "barge ms")
    out = os.path.join(TMP, "received.wav")
    fo.write_wav_ulaw(out, r.received_audio)
    tag, rate, ch, bits, data = fo.read_wav(out)
    expect_eq((tag, rate, ch, bits, data), (7, 8000, 1, 8, r.received_audio), "wav")
    expect("clear" in r.summary(), "summary")


def test_phrase_wav_and_g711():
    p = os.path.join(TMP, "hello.wav")
    caller.make_phrase_wav("Hello there, testing one two three.", p)
    tag, rate, ch, bits, data = fo.read_wav(p)
    expect_eq((tag, rate, ch), (7, 8000, 1), "espeak phrase format")
    fr = caller.frames_of(data)
    expect(sum(caller.is_loud(f) for f in fr) > 20, "phrase is loud enough")
    expect(not caller.is_loud(b"\xff" * 160) and not caller.is_loud(b"\x7f" * 160), "silence")
    syn = caller.synthetic_speech(1000)
    expect_eq(len(syn), 8000, "synthetic length")
    expect(sum(caller.is_loud(f) for f in caller.frames_of(syn)) > 30, "synthetic is loud")
    for v in (-32000, -1000, -1, 0, 1, 100, 1000, 32000):
        u = fo.linear_to_ulaw(v)
        back = fo.ULAW_TO_LINEAR[u]
        expect(abs(back - v) <= max(8, abs(v) // 16), "ulaw %d -> %d", v, back)
        a = fo.linear_to_alaw(v)
        back = fo.ALAW_TO_LINEAR[a]
        expect(abs(back - v) <= max(16, abs(v) // 16), "alaw %d -> %d", v, back)
    expect_eq([fo.linear_to_ulaw(fo.ULAW_TO_LINEAR[i]) for i in range(256) if i != 0x7F],
              [i for i in range(256) if i != 0x7F], "ulaw round trip")


def test_cli_starts_and_stops():
    port_file = os.path.join(TMP, "port")
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_openai.py"), "--port", "0",
                          "--tls-cert", CERTS["cert"], "--tls-key", CERTS["key"],
                          "--dialect", "ga", "--mode", "echo", "--port-file", port_file],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(100):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.05)
        port = int(open(port_file).read())

        async def talk():
            ws = await websockets.connect("wss://localhost:%d/v1/realtime?model=m" % port,
                                          ssl=client_ctx(),
                                          extra_headers={"Authorization": "Bearer sk-test"})
            ev = json.loads(await ws.recv())
            await ws.close()
            return ev
        ev = asyncio.run(talk())
        expect_eq(ev["session"]["model"], "m", "model from the query")
    finally:
        p.terminate()
        out = p.communicate(timeout=10)[0]
    expect("listening on" in out and "#1 /v1/realtime?model=m ga status=101" in out, "out %r", out)


# ---------------------------------------------------------------- twilio_rest.py outbound

REST_ACCOUNT = "AC" + "7" * 32
REST_TOKEN = "selftest-token"


class Voxside:
    """What the daemon does for an outbound call, reduced to a recorder: the
    status and AMD callbacks (signatures checked), the Url answered with a
    stream TwiML, and the stream's messages, on loopback."""

    def __init__(self):
        self.posts = []         # (path, form dict of lists, signature ok)
        self.stream_msgs = {}   # CallSid -> [messages]
        self.sockets = {}       # CallSid -> websocket
        self.http = self.ws = None

    async def start(self):
        self.http = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.ws = await websockets.serve(self._stream, "127.0.0.1", 0)
        self.port = self.http.sockets[0].getsockname()[1]
        self.ws_port = self.ws.sockets[0].getsockname()[1]
        self.base = "http://127.0.0.1:%d" % self.port
        return self

    async def stop(self):
        self.http.close()
        self.ws.close()
        await self.http.wait_closed()
        await self.ws.wait_closed()

    def of(self, path, sid=None):
        return [f for p, f, _ in self.posts
                if p == path and (sid is None or f["CallSid"] == [sid])]

    async def _serve(self, reader, writer):
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            _, path, _ = line.decode().split(" ", 2)
            headers = {}
            while True:
                h = await asyncio.wait_for(reader.readline(), 5)
                if h in (b"\r\n", b""):
                    break
                k, v = h.decode().split(":", 1)
                headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", 0)))
            pairs = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
            form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
            good = headers.get("x-twilio-signature") == twilio.twilio_signature(
                REST_TOKEN, self.base + path, pairs)
            self.posts.append((path, form, good))
            if path == "/twiml":
                out = ('<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
                       '<Stream url="ws://127.0.0.1:%d/s"><Parameter name="who" '
                       'value="callee"/></Stream></Connect></Response>'
                       % self.ws_port).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(out) + out)
            else:
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def _stream(self, ws, path=None):
        sid = None
        try:
            async for raw in ws:
                m = json.loads(raw)
                if m.get("event") == "start":
                    sid = m["start"]["callSid"]
                    self.sockets[sid] = ws
                if sid is not None:
                    self.stream_msgs.setdefault(sid, []).append(m)
        except websockets.ConnectionClosed:
            pass


def place(rest, vox, to, detect="DetectMessageEnd"):
    """POST Calls.json as the daemon does; (status, JSON body)."""
    form = [("To", to), ("From", "+15005550006"), ("Url", vox.base + "/twiml"),
            ("StatusCallback", vox.base + "/status"),
            ("AsyncAmd", "true"), ("AsyncAmdStatusCallback", vox.base + "/amd")]
    form += [("StatusCallbackEvent", e)
             for e in ("initiated", "ringing", "answered", "completed")]
    if detect:
        form.append(("MachineDetection", detect))
    return rest_post(rest, "/2010-04-01/Accounts/%s/Calls.json" % REST_ACCOUNT, form)


def rest_post(rest, path, form):
    conn = http.client.HTTPConnection("127.0.0.1", rest.port, timeout=5)
    try:
        auth = base64.b64encode(("%s:%s" % (REST_ACCOUNT, REST_TOKEN)).encode())
        conn.request("POST", path, urllib.parse.urlencode(form),
                     {"Authorization": "Basic " + auth.decode(),
                      "Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        conn.close()


async def test_rest_outcomes_planned_per_number():
    busy, ring, bad, flaky = "+14155550101", "+14155550102", "+14155550103", "+14155550104"
    async with twilio_rest.FakeTwilioRest(REST_ACCOUNT, REST_TOKEN, outcome="human",
                                          plans={bad: ["failed"]}, ring_seconds=0.6,
                                          amd_seconds=0.3, callee_seconds=0.5) as rest:
        vox = await Voxside().start()
        try:
            rest.plan(busy, "busy", "no-answer")
            rest.plan(flaky, 429, "500", "human")
            try:
                rest.plan(busy, "voicemail")
                expect(False, "an unknown outcome taken")
            except ValueError:
                pass
            got = {}
            for to in (busy, busy, bad, flaky, flaky, flaky):
                got.setdefault(to, []).append(await asyncio.to_thread(place, rest, vox, to))
            expect_eq([s for s, _ in got[busy]], [201, 201], "busy's two attempts")
            expect_eq(got[bad][0][0], 201, "a failed call is created")
            expect_eq([s for s, _ in got[flaky]], [429, 500, 201], "flaky's attempts")
            expect_eq(got[flaky][0][1]["status"], 429, "Twilio's error body")
            expect_eq([rest.count(n) for n in (busy, ring, bad, flaky)], [2, 0, 1, 3],
                      "Calls.json requests per number")
            expect_eq(rest.count(), 6, "all requests")
            calls = await rest.wait_ended(4, timeout=15)
            sid_busy, sid_noans = got[busy][0][1]["sid"], got[busy][1][1]["sid"]
            sid_bad, sid_human = got[bad][0][1]["sid"], got[flaky][2][1]["sid"]
            by = {c.sid: c for c in calls}
            expect_eq([c.outcome for c in rest.calls_to(busy)], ["busy", "no-answer"],
                      "consumed in order")
            expect_eq(by[sid_busy].statuses, [("initiated", 204), ("ringing", 204),
                                              ("busy", 204)], "busy callbacks")
            expect_eq([s for s, _ in by[sid_noans].statuses],
                      ["initiated", "ringing", "no-answer"], "no-answer callbacks")
            expect_eq([s for s, _ in by[sid_bad].statuses], ["initiated", "failed"],
                      "failed callbacks")
            expect_eq(by[sid_bad].final, "failed", "final")
            # the ring of a no-answer lasts ring_seconds
            st = [(f["CallStatus"][0], f["SequenceNumber"][0])
                  for f in vox.of("/status", sid_noans)]
            expect_eq(st, [("initiated", "1"), ("ringing", "2"), ("no-answer", "3")],
                      "sequence")
            # none of the unanswered ones asked for the TwiML or got a verdict
            for sid in (sid_busy, sid_noans, sid_bad):
                expect_eq(vox.of("/twiml", sid) + vox.of("/amd", sid), [],
                          "Url or AMD for unanswered %s" % sid)
            expect_eq(by[sid_human].outcome, "human", "after the retries")
            tw = vox.of("/twiml", sid_human)
            expect_eq(len(tw), 1, "the Url fetched once")
            expect_eq(tw[0]["Direction"], ["outbound-api"], "Direction")
            expect_eq(vox.of("/amd", sid_human)[0]["AnsweredBy"], ["human"], "verdict")
            expect_eq([s for s, _ in by[sid_human].statuses],
                      ["initiated", "ringing", "in-progress", "completed"], "answered")
            msgs = vox.stream_msgs.get(sid_human, [])
            expect_eq(msgs[0]["start"]["customParameters"], {"who": "callee"},
                      "the TwiML's parameters")
            media = sum(1 for m in msgs if m["event"] == "media")
            expect(30 <= media <= 50, "0.8 s of the callee: %d frames" % media)
            expect_eq(msgs[-1]["event"], "stop", "the stream ends with stop")
            expect(all(good for _, _, good in vox.posts), "every callback signed")
            expect_eq([e for e in rest.events if e[1] == "error"], [], "errors")
        finally:
            await vox.stop()


def rest_get(rest, path, auth=(REST_ACCOUNT, REST_TOKEN)):
    conn = http.client.HTTPConnection("127.0.0.1", rest.port, timeout=5)
    try:
        hdrs = {}
        if auth is not None:
            hdrs["Authorization"] = "Basic " + base64.b64encode(
                ("%s:%s" % auth).encode()).decode()
        conn.request("GET", path, headers=hdrs)
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        conn.close()


async def test_rest_call_resource_and_a_dropped_final_callback():
    """GET Calls/{sid}.json answers the call as it is (basic auth checked,
    404 for a call never created, 503s first when asked); a call whose
    final callback is dropped ends at the fake with no final post."""
    busy, human = "+14155550121", "+14155550122"
    async with twilio_rest.FakeTwilioRest(REST_ACCOUNT, REST_TOKEN, outcome="human",
                                          amd_seconds=0.2, callee_seconds=0.3,
                                          fail_fetches_first=1,
                                          fail_status=503) as rest:
        vox = await Voxside().start()
        try:
            rest.plan(busy, "busy").drop_final(busy)
            _, b = await asyncio.to_thread(place, rest, vox, busy)
            _, h = await asyncio.to_thread(place, rest, vox, human)
            path = "/2010-04-01/Accounts/%s/Calls/%%s.json" % REST_ACCOUNT
            st, doc = await asyncio.to_thread(rest_get, rest, path % h["sid"])
            expect_eq(st, 503, "the first query failed as asked")
            st, doc = await asyncio.to_thread(rest_get, rest, path % h["sid"])
            expect_eq((st, doc["sid"], doc["to"], doc["direction"]),
                      (200, h["sid"], human, "outbound-api"), "a live call")
            expect(doc["status"] in ("queued", "ringing", "in-progress"),
                   "live: %r" % doc["status"])
            expect_eq((doc["end_time"], doc["duration"]), (None, None), "not over")
            await rest.wait_ended(2, timeout=15)
            st, doc = await asyncio.to_thread(rest_get, rest, path % h["sid"])
            expect_eq((st, doc["status"], doc["answered_by"]), (200, "completed", "human"),
                      "the human call over")
            expect(doc["end_time"].endswith(" +0000") and int(doc["duration"]) >= 1,
                   "end_time and duration: %r" % doc)
            st, doc = await asyncio.to_thread(rest_get, rest, path % b["sid"])
            expect_eq((st, doc["status"], doc["duration"]), (200, "busy", "0"),
                      "the busy call over at the fake")
            expect_eq([f["CallStatus"][0] for f in vox.of("/status", b["sid"])],
                      ["initiated", "ringing"], "its final callback dropped")
            expect_eq([f["CallStatus"][0] for f in vox.of("/status", h["sid"])][-1],
                      "completed", "the other's posted")
            st, _ = await asyncio.to_thread(rest_get, rest, path % ("CA" + "0" * 32))
            expect_eq(st, 404, "a call never created")
            st, _ = await asyncio.to_thread(rest_get, rest, path % h["sid"],
                                            (REST_ACCOUNT, "wrong"))
            expect_eq(st, 401, "basic auth checked")
            expect_eq(len(rest.fetched(h["sid"])), 4, "queries kept")
        finally:
            await vox.stop()


async def test_rest_late_create_answers_and_the_list_of_calls():
    """A create answered only once the call is over (its callbacks all
    posted first), one answered late, one made then answered 500; GET
    Calls.json filtered by To and StartTime>=, with or without the Url."""
    early, late, made = "+14155550161", "+14155550162", "+14155550163"
    async with twilio_rest.FakeTwilioRest(REST_ACCOUNT, REST_TOKEN, outcome="busy",
                                          answer_create_after="end") as rest:
        vox = await Voxside().start()
        try:
            st, b = await asyncio.to_thread(place, rest, vox, early)
            expect_eq(st, 201, "created")
            expect_eq([f["CallStatus"][0] for f in vox.of("/status", b["sid"])],
                      ["initiated", "ringing", "busy"], "posted before the answer")
            rest.answer_create_after = None
            rest.create_delay = 0.5
            t0 = time.monotonic()
            st, b2 = await asyncio.to_thread(place, rest, vox, late)
            expect(st == 201 and time.monotonic() - t0 >= 0.5, "answered late")
            rest.create_delay = 0
            rest.answer_made_with = 500
            st, _ = await asyncio.to_thread(place, rest, vox, made)
            expect_eq((st, len(rest.calls_to(made))), (500, 1), "made, answered 500")
            path = ("/2010-04-01/Accounts/%s/Calls.json?To=%%s&StartTime%%%%3E=%%s"
                    % REST_ACCOUNT)
            today = time.strftime("%Y-%m-%d", time.gmtime())
            st, doc = await asyncio.to_thread(rest_get, rest, path % (
                urllib.parse.quote(late), today))
            expect_eq((st, [c["sid"] for c in doc["calls"]]), (200, [b2["sid"]]),
                      "the number's calls")
            expect_eq(doc["calls"][0]["url"], vox.base + "/twiml", "its Url")
            expect(doc["calls"][0]["date_created"].endswith(" +0000"), "RFC 2822")
            st, doc = await asyncio.to_thread(rest_get, rest, path % (
                urllib.parse.quote(late), "2999-01-01"))
            expect_eq(doc["calls"], [], "none since a later day")
            rest.list_shows_url = False
            # without StartTime>= (a call still queued has no start time)
            st, doc = await asyncio.to_thread(rest_get, rest, (
                "/2010-04-01/Accounts/%s/Calls.json?To=%s&PageSize=20" % (
                    REST_ACCOUNT, urllib.parse.quote(made))))
            expect("url" not in doc["calls"][0], "no url, as Twilio's list")
            expect_eq(len(rest.lookups), 3, "lookups kept")
        finally:
            await vox.stop()


async def test_rest_machine_beep_then_voicemail():
    end_detect, enable = "+14155550111", "+14155550112"
    async with twilio_rest.FakeTwilioRest(REST_ACCOUNT, REST_TOKEN, outcome="machine",
                                          machine_seconds=0.8, amd_seconds=0.2,
                                          voicemail_seconds=5) as rest:
        vox = await Voxside().start()
        try:
            st, b = await asyncio.to_thread(place, rest, vox, end_detect)
            expect_eq(st, 201, "created")
            sid = b["sid"]
            for _ in range(200):
                if vox.of("/amd", sid):
                    break
                await asyncio.sleep(0.02)
            amd = vox.of("/amd", sid)
            expect_eq(amd[0]["AnsweredBy"], ["machine_end_beep"], "the verdict at the beep")
            call = rest.calls[sid]
            expect(call.beep_at is not None and call.stream.closed_at is None,
                   "the stream stays up after the beep")
            greeting = sum(1 for m in vox.stream_msgs[sid] if m["event"] == "media")
            expect(35 <= greeting <= 45, "0.8 s of greeting: %d frames" % greeting)
            # the message left on the stream after the beep is recorded
            ws = vox.sockets[sid]
            ssid = vox.stream_msgs[sid][0]["streamSid"]
            for i in range(10):
                await ws.send(json.dumps({"event": "media", "streamSid": ssid,
                                          "media": {"payload": "/" * 216}}))
            await asyncio.sleep(0.3)
            expect(not call.ended, "ended before the update")
            twiml = "<Response><Say>Hello John, please call back.</Say><Hangup/></Response>"
            s2, _ = await asyncio.to_thread(
                rest_post, rest, "/2010-04-01/Accounts/%s/Calls/%s.json" % (REST_ACCOUNT, sid),
                [("Twiml", twiml)])
            expect_eq(s2, 200, "the update")
            await rest.wait_ended(1, number=end_detect, timeout=5)
            expect_eq(len(call.recorded), 10, "frames recorded after the beep")
            expect_eq(call.voicemail, "Hello John, please call back.", "the Say")
            expect_eq(call.final, "completed", "completed")
            # MachineDetection=Enable: machine_start early, hung up by an update
            st, b = await asyncio.to_thread(place, rest, vox, enable, "Enable")
            sid = b["sid"]
            for _ in range(200):
                if vox.of("/amd", sid):
                    break
                await asyncio.sleep(0.02)
            expect_eq(vox.of("/amd", sid)[0]["AnsweredBy"], ["machine_start"], "Enable")
            s2, _ = await asyncio.to_thread(
                rest_post, rest, "/2010-04-01/Accounts/%s/Calls/%s.json" % (REST_ACCOUNT, sid),
                [("Status", "completed")])
            expect_eq(s2, 200, "hang-up update")
            t0 = time.monotonic()
            await rest.wait_ended(1, number=enable, timeout=5)
            expect(time.monotonic() - t0 < 1.5, "ended on the update")
            expect_eq(rest.calls[sid].voicemail, None, "no message")
            expect_eq(rest.calls[sid].recorded, [], "nothing recorded")
            # no MachineDetection asked: no verdict at all
            rest.voicemail_seconds = 0.5
            st, b = await asyncio.to_thread(place, rest, vox, "+14155550113", None)
            await rest.wait_ended(1, number="+14155550113", timeout=10)
            expect_eq(vox.of("/amd", b["sid"]), [], "no AMD without MachineDetection")
            expect(all(good for _, _, good in vox.posts), "every callback signed")
        finally:
            await vox.stop()


def main():
    global TMP, CERTS, RSA_CERTS, PHRASE
    select = sys.argv[1:]
    TMP = tempfile.mkdtemp(prefix="vr-peers-")
    passed = failed = 0
    try:
        CERTS = certs.make_certs(os.path.join(TMP, "ec"), "ec")
        RSA_CERTS = certs.make_certs(os.path.join(TMP, "rsa"), "rsa")
        PHRASE = caller.make_phrase_wav("I would like to book an appointment.",
                                        os.path.join(TMP, "phrase.wav"))
        tests = [(n, f) for n, f in globals().items()
                 if n.startswith("test_") and callable(f)]
        for name, f in tests:
            if select and not any(s in name for s in select):
                continue
            t0 = time.monotonic()
            try:
                if asyncio.iscoroutinefunction(f):
                    asyncio.run(asyncio.wait_for(f(), 60))
                else:
                    f()
                passed += 1
                print("ok    %-52s %5.1f s" % (name, time.monotonic() - t0), flush=True)
            except BaseException:  # noqa: B902 - report and go on
                failed += 1
                print("FAIL  %-52s %5.1f s" % (name, time.monotonic() - t0), flush=True)
                traceback.print_exc()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
