#!/usr/bin/python3
"""A fake OpenAI Realtime server for voxrelay's tests (protocols.md section 8).

The daemon is a WebSocket client of OpenAI, one upstream connection per call.
This module plays the other side with Debian's python3-websockets, over TLS
or plain ws://, in the GA or the beta dialect, and records everything the
daemon does so tests can inspect it.

    srv = FakeOpenAI(dialect="ga", mode="echo", api_key="sk-test", ssl=ctx)
    port = await srv.start()
    srv.next_config(mode="scripted", script=[...])   # for the next connection
    ...
    conn = srv.connections[0]
    conn.path, conn.headers, conn.events, conn.sent, conn.schema_errors,
    conn.truncates, conn.closed ...
    await srv.stop()

Modes: "echo" (every append after session.update comes back bit-exact as an
audio delta), "vad" (an energy VAD on the caller's audio, automatic replies,
barge-in cancellation), "scripted" (a list of steps per connection, then
"vad", "echo" or "idle"), "text" (a text session's answers to response.create:
text deltas word by word, text_replies, usage in response.done; conn.items
holds the conversation as the client edited it).  GA client events are validated against OpenAI's
published JSON Schema (test/data/openai/realtime-ga-client-events.json);
beta events are checked by hand against protocols.md 8.4.

Also a CLI: fake_openai.py --port N [--tls-cert C --tls-key K] --dialect ga
--mode vad ...  (see --help).  Only the standard library, python3-websockets
and python3-jsonschema (loaded only for GA validation) are used."""

import argparse
import asyncio
import base64
import binascii
import collections
import copy
import http
import json
import logging
import math
import os
import random
import select
import signal
import socket
import string
import struct
import sys
import time
import urllib.parse

import websockets
import websockets.server

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCHEMA_PATH = os.path.join(ROOT, "test", "data", "openai", "realtime-ga-client-events.json")

log = logging.getLogger("fake_openai")
_ws_log = logging.getLogger("fake_openai.ws")
if _ws_log.level == logging.NOTSET:
    # a peer that misbehaves on purpose makes websockets log errors; keep quiet
    _ws_log.setLevel(logging.CRITICAL)

# ---------------------------------------------------------------------------
# G.711 and WAV helpers (shared with caller.py)


def _ulaw_to_linear(u):
    u = ~u & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -magnitude if sign else magnitude


def _alaw_to_linear(a):
    a ^= 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    if exponent == 0:
        magnitude = (mantissa << 4) + 8
    else:
        magnitude = ((mantissa << 4) + 0x108) << (exponent - 1)
    return magnitude if sign else -magnitude


ULAW_TO_LINEAR = tuple(_ulaw_to_linear(i) for i in range(256))
ALAW_TO_LINEAR = tuple(_alaw_to_linear(i) for i in range(256))


def linear_to_ulaw(sample):
    """One 16-bit linear sample to a G.711 mu-law byte."""
    sign = 0
    if sample < 0:
        sign = 0x80
        sample = -sample
    sample = min(sample, 32635) + 0x84
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def linear_to_alaw(sample):
    """One 16-bit linear sample to a G.711 A-law byte."""
    sign = 0x80
    if sample < 0:
        sign = 0
        sample = -sample - 1
    sample = min(sample, 32767) >> 3
    if sample < 32:
        code = sample >> 1
    else:
        exponent = 1
        while exponent < 7 and sample >= (64 << (exponent - 1)):
            exponent += 1
        code = (exponent << 4) | ((sample >> exponent) & 0x0F)
    return (code | sign) ^ 0x55


def ulaw_decode(data):
    return [ULAW_TO_LINEAR[b] for b in data]


def ulaw_encode(samples):
    return bytes(linear_to_ulaw(int(s)) for s in samples)


def decode_audio(data, fmt):
    """Bytes in an OpenAI input format ('pcmu', 'pcma', 'pcm16') to samples."""
    if fmt == "pcmu":
        return [ULAW_TO_LINEAR[b] for b in data]
    if fmt == "pcma":
        return [ALAW_TO_LINEAR[b] for b in data]
    n = len(data) // 2
    return list(struct.unpack("<%dh" % n, bytes(data[:n * 2])))


def rms(samples):
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))


def tone_samples(ms, freq=440.0, amplitude=6000, rate=8000):
    n = int(rate * ms / 1000)
    fade = max(1, rate // 100)
    out = []
    for i in range(n):
        g = min(1.0, i / fade, (n - 1 - i) / fade) if n > 2 * fade else 1.0
        out.append(int(amplitude * g * math.sin(2 * math.pi * freq * i / rate)))
    return out


def tone_ulaw(ms, freq=440.0, amplitude=6000):
    """ms of a sine tone as 8 kHz mu-law bytes (8 bytes per ms)."""
    return ulaw_encode(tone_samples(ms, freq, amplitude, 8000))


def read_wav(path):
    """(format_tag, rate, channels, bits, data) of a RIFF WAVE file."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise ValueError("%s: not a RIFF WAVE file" % path)
    pos = 12
    fmt = None
    data = None
    for _ in range(64):
        if pos + 8 > len(blob):
            break
        cid, size = blob[pos:pos + 4], struct.unpack("<I", blob[pos + 4:pos + 8])[0]
        body = blob[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE and len(body) >= 26:
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, rate, channels, bits)
        elif cid == b"data":
            data = body
        pos += 8 + size + (size & 1)
    if fmt is None or data is None:
        raise ValueError("%s: no fmt or data chunk" % path)
    return fmt + (data,)


def wav_to_ulaw(path):
    """The audio of a WAV file as 8 kHz mono mu-law bytes: a mu-law 8 kHz
    mono file is taken as is; 16-bit PCM is mixed down, resampled (nearest
    sample) and encoded."""
    tag, rate, channels, bits, data = read_wav(path)
    if tag == 7 and rate == 8000 and channels == 1:
        return bytes(data)
    if tag == 7:
        samples = [ULAW_TO_LINEAR[b] for b in data]
    elif tag == 6:
        samples = [ALAW_TO_LINEAR[b] for b in data]
    elif tag == 1 and bits == 16:
        n = len(data) // 2
        samples = list(struct.unpack("<%dh" % n, data[:n * 2]))
    elif tag == 1 and bits == 8:
        samples = [(b - 128) << 8 for b in data]
    else:
        raise ValueError("%s: unsupported WAV format %d/%d bits" % (path, tag, bits))
    if channels > 1:
        samples = [sum(samples[i:i + channels]) // channels
                   for i in range(0, len(samples) - channels + 1, channels)]
    if rate != 8000:
        n_out = int(len(samples) * 8000 / rate)
        samples = [samples[min(len(samples) - 1, int(i * rate / 8000))] for i in range(n_out)]
    return ulaw_encode(samples)


def write_wav_ulaw(path, data, rate=8000):
    """A mu-law mono WAV (format tag 7), header written by hand."""
    data = bytes(data)
    fmt = struct.pack("<HHIIHHH", 7, 1, rate, rate, 1, 8, 0)
    fact = struct.pack("<I", len(data))
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt +
            b"fact" + struct.pack("<I", len(fact)) + fact +
            b"data" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b""))
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)


def b64len(s):
    """Decoded length of a base64 string without decoding it."""
    n = len(s)
    pad = (s.endswith("=") + s.endswith("==")) if n else 0
    return 3 * n // 4 - pad


# ---------------------------------------------------------------------------
# Identifiers, dialect tables

_ALNUM = string.ascii_letters + string.digits


def new_id(prefix):
    return prefix + "_" + "".join(random.choice(_ALNUM) for _ in range(21))


BYTES_PER_MS = {"pcmu": 8, "pcma": 8, "pcm16": 48}
GA_FORMATS = {"audio/pcmu": "pcmu", "audio/pcma": "pcma", "audio/pcm": "pcm16"}
BETA_FORMATS = {"g711_ulaw": "pcmu", "g711_alaw": "pcma", "pcm16": "pcm16"}
VOICES = {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse",
          "marin", "cedar"}

NAMES = {
    "ga": {"text_delta": "response.output_text.delta",
           "text_done": "response.output_text.done",
           "text_part": "output_text",
           "audio_delta": "response.output_audio.delta",
           "audio_done": "response.output_audio.done",
           "transcript_delta": "response.output_audio_transcript.delta",
           "transcript_done": "response.output_audio_transcript.done",
           "audio_part": "output_audio"},
    "beta": {"text_delta": "response.text.delta",
             "text_done": "response.text.done",
             "text_part": "text",
             "audio_delta": "response.audio.delta",
             "audio_done": "response.audio.done",
             "transcript_delta": "response.audio_transcript.delta",
             "transcript_done": "response.audio_transcript.done",
             "audio_part": "audio"},
}
AUDIO_DELTA_TYPES = ("response.output_audio.delta", "response.audio.delta")

DEFAULT_INSTRUCTIONS = ("Your knowledge cutoff is 2023-10. You are a helpful, witty, and "
                        "friendly AI.")

SERVER_VAD_DEFAULTS = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                       "silence_duration_ms": 500, "idle_timeout_ms": None,
                       "create_response": True, "interrupt_response": True}
SEMANTIC_VAD_DEFAULTS = {"type": "semantic_vad", "eagerness": "auto",
                         "create_response": True, "interrupt_response": True}


def fill_turn_detection(td, dialect):
    if not isinstance(td, dict):
        return td
    base = SEMANTIC_VAD_DEFAULTS if td.get("type") == "semantic_vad" else SERVER_VAD_DEFAULTS
    out = dict(base)
    if dialect == "beta":
        out.pop("idle_timeout_ms", None)
    out.update(td)
    return out


def default_session_ga(model, expires_at, sess_id):
    return {
        "type": "realtime", "object": "realtime.session", "id": sess_id,
        "model": model, "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS, "tools": [], "tool_choice": "auto",
        "max_output_tokens": "inf", "tracing": None, "truncation": "auto",
        "prompt": None, "expires_at": expires_at, "include": None,
        "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": 24000},
                      "transcription": None, "noise_reduction": None,
                      "turn_detection": dict(SERVER_VAD_DEFAULTS)},
            "output": {"format": {"type": "audio/pcm", "rate": 24000},
                       "voice": "alloy", "speed": 1.0},
        },
    }


def default_session_beta(model, expires_at, sess_id):
    td = dict(SERVER_VAD_DEFAULTS)
    td.pop("idle_timeout_ms")
    return {
        "id": sess_id, "object": "realtime.session", "model": model,
        "expires_at": expires_at, "modalities": ["text", "audio"],
        "instructions": DEFAULT_INSTRUCTIONS, "voice": "alloy",
        "input_audio_format": "pcm16", "output_audio_format": "pcm16",
        "input_audio_transcription": None, "input_audio_noise_reduction": None,
        "turn_detection": td, "tools": [], "tool_choice": "auto",
        "temperature": 0.8, "max_response_output_tokens": "inf", "speed": 1.0,
        "tracing": None,
    }


# ---------------------------------------------------------------------------
# Validation

_schema = None
_validators = {}


def load_schema():
    global _schema
    if _schema is None:
        with open(SCHEMA_PATH) as f:
            _schema = json.load(f)
    return _schema


def _dotted(path):
    out = ""
    for p in path:
        if isinstance(p, int):
            out += "[%d]" % p
        else:
            out += ("." if out else "") + str(p)
    return out


def validate_ga(ev):
    """Checks a GA client event against OpenAI's JSON Schema.  Returns a list of
    (code, param, message); empty when the event is valid."""
    import jsonschema
    schema = load_schema()
    t = ev.get("type")
    if not isinstance(t, str) or t not in schema["_events"]:
        return [("invalid_value", "type",
                 "Invalid value: %r. Supported values are: %s." % (
                     t, ", ".join("'%s'" % k for k in schema["_events"])))]
    v = _validators.get(t)
    if v is None:
        v = jsonschema.Draft202012Validator({"$ref": schema["_events"][t],
                                             "$defs": schema["$defs"]})
        _validators[t] = v
    errors = list(v.iter_errors(ev))
    if not errors:
        return []
    out = []
    best = jsonschema.exceptions.best_match(errors)
    ordered = [best] + [e for e in errors if e is not best]
    for e in ordered[:8]:
        path = list(e.absolute_path)
        if e.validator == "additionalProperties" and isinstance(e.instance, dict):
            known = e.schema.get("properties", {})
            extra = [k for k in e.instance if k not in known]
            param = _dotted(path + extra[:1])
            out.append(("unknown_parameter", param, "Unknown parameter: '%s'." % param))
        elif e.validator == "required" and isinstance(e.instance, dict):
            missing = [k for k in e.validator_value if k not in e.instance]
            param = _dotted(path + missing[:1])
            out.append(("missing_required_parameter", param,
                        "Missing required parameter: '%s'." % param))
        else:
            param = _dotted(path)
            out.append(("invalid_value", param,
                        "Invalid value for '%s': %s" % (param or "event", e.message[:300])))
    return out


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


BETA_SESSION_KEYS = {"modalities", "instructions", "voice", "input_audio_format",
                     "output_audio_format", "input_audio_transcription",
                     "input_audio_noise_reduction", "turn_detection", "tools",
                     "tool_choice", "temperature", "max_response_output_tokens", "speed",
                     "model", "tracing", "include"}
BETA_RESPONSE_KEYS = {"modalities", "instructions", "voice", "output_audio_format", "tools",
                      "tool_choice", "temperature", "max_response_output_tokens",
                      "conversation", "metadata", "input"}
BETA_TD_KEYS = {"type", "threshold", "prefix_padding_ms", "silence_duration_ms",
                "create_response", "interrupt_response", "eagerness"}
BETA_EVENT_KEYS = {
    "session.update": {"session"},
    "input_audio_buffer.append": {"audio"},
    "input_audio_buffer.commit": set(),
    "input_audio_buffer.clear": set(),
    "output_audio_buffer.clear": set(),
    "conversation.item.create": {"item", "previous_item_id"},
    "conversation.item.truncate": {"item_id", "content_index", "audio_end_ms"},
    "conversation.item.delete": {"item_id"},
    "conversation.item.retrieve": {"item_id"},
    "response.create": {"response"},
    "response.cancel": {"response_id"},
}


def validate_beta(ev):
    """Hand checks of the beta shapes (protocols.md 8.4 and 8.6).  Same result
    form as validate_ga."""
    errs = []

    def bad(code, param, msg):
        errs.append((code, param, msg))

    def unknown(obj, allowed, prefix):
        for k in obj:
            if k not in allowed:
                p = prefix + k
                bad("unknown_parameter", p, "Unknown parameter: '%s'." % p)

    t = ev.get("type")
    if t not in BETA_EVENT_KEYS:
        bad("invalid_value", "type", "Invalid value: %r. Supported values are: %s." % (
            t, ", ".join("'%s'" % k for k in BETA_EVENT_KEYS)))
        return errs
    unknown(ev, BETA_EVENT_KEYS[t] | {"type", "event_id"}, "")
    if "event_id" in ev and (not isinstance(ev["event_id"], str) or len(ev["event_id"]) > 512):
        bad("invalid_value", "event_id", "Invalid 'event_id': a string of at most 512 characters.")
    if t == "session.update":
        s = ev.get("session")
        if not isinstance(s, dict):
            bad("missing_required_parameter", "session", "Missing required parameter: 'session'.")
            return errs
        unknown(s, BETA_SESSION_KEYS, "session.")
        for k in ("input_audio_format", "output_audio_format"):
            if k in s and not (isinstance(s[k], str) and s[k] in BETA_FORMATS):
                bad("invalid_value", "session." + k,
                    "Invalid value: %r. Supported values are: 'pcm16', 'g711_ulaw', and "
                    "'g711_alaw'." % (s[k],))
        if "voice" in s and not (isinstance(s["voice"], str) and s["voice"] in VOICES):
            bad("invalid_value", "session.voice", "Invalid value: %r." % (s["voice"],))
        if "modalities" in s:
            m = s["modalities"]
            if (not isinstance(m, list) or not m or
                    any(x not in ("text", "audio") for x in m)):
                bad("invalid_value", "session.modalities",
                    "Invalid modalities: %r. Supported combinations are: ['text'] and "
                    "['audio', 'text']." % (m,))
        temp = s.get("temperature", 0.8)
        if not (_is_num(temp) and 0.6 <= temp <= 1.2):
            bad("decimal_below_min_value" if _is_num(temp) and temp < 0.6
                else "invalid_value", "session.temperature",
                "Invalid 'session.temperature': expected a number from 0.6 to 1.2.")
        if "speed" in s and not (_is_num(s["speed"]) and 0.25 <= s["speed"] <= 1.5):
            bad("invalid_value", "session.speed", "Invalid 'session.speed'.")
        if "instructions" in s and not isinstance(s["instructions"], str):
            bad("invalid_type", "session.instructions", "Invalid type for 'session.instructions'.")
        mt = s.get("max_response_output_tokens", "inf")
        if mt != "inf" and not (_is_int(mt) and 1 <= mt <= 4096):
            bad("invalid_value", "session.max_response_output_tokens",
                "Invalid 'session.max_response_output_tokens'.")
        if "turn_detection" in s:
            td = s["turn_detection"]
            if td is not None:
                if not isinstance(td, dict):
                    bad("invalid_type", "session.turn_detection",
                        "Invalid type for 'session.turn_detection'.")
                else:
                    unknown(td, BETA_TD_KEYS, "session.turn_detection.")
                    if td.get("type", "server_vad") not in ("server_vad", "semantic_vad"):
                        bad("invalid_value", "session.turn_detection.type",
                            "Invalid value: %r." % (td.get("type"),))
        for k in ("input_audio_transcription", "input_audio_noise_reduction"):
            v = s.get(k)
            if v is not None and not isinstance(v, dict):
                bad("invalid_type", "session." + k, "Invalid type for 'session.%s'." % k)
        nr = s.get("input_audio_noise_reduction")
        if isinstance(nr, dict) and nr.get("type") not in ("near_field", "far_field"):
            bad("invalid_value", "session.input_audio_noise_reduction.type", "Invalid value.")
        tr = s.get("input_audio_transcription")
        if isinstance(tr, dict):
            unknown(tr, {"model", "language", "prompt"}, "session.input_audio_transcription.")
        if "tools" in s:
            tools = s["tools"]
            if not isinstance(tools, list):
                bad("invalid_type", "session.tools", "Invalid type for 'session.tools'.")
            else:
                for i, tool in enumerate(tools):
                    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                        bad("missing_required_parameter", "session.tools[%d].name" % i,
                            "Missing required parameter: 'session.tools[%d].name'." % i)
                    else:
                        unknown(tool, {"type", "name", "description", "parameters"},
                                "session.tools[%d]." % i)
        if "tool_choice" in s and not isinstance(s["tool_choice"], (str, dict)):
            bad("invalid_type", "session.tool_choice", "Invalid type for 'session.tool_choice'.")
    elif t == "input_audio_buffer.append":
        if not isinstance(ev.get("audio"), str):
            bad("missing_required_parameter", "audio", "Missing required parameter: 'audio'.")
    elif t == "conversation.item.truncate":
        if not isinstance(ev.get("item_id"), str):
            bad("missing_required_parameter", "item_id", "Missing required parameter: 'item_id'.")
        for k in ("content_index", "audio_end_ms"):
            if not _is_int(ev.get(k)) or ev[k] < 0:
                bad("invalid_value" if k in ev else "missing_required_parameter", k,
                    "Invalid '%s': a non-negative integer is required." % k)
    elif t in ("conversation.item.delete", "conversation.item.retrieve"):
        if not isinstance(ev.get("item_id"), str):
            bad("missing_required_parameter", "item_id", "Missing required parameter: 'item_id'.")
    elif t == "conversation.item.create":
        item = ev.get("item")
        if not isinstance(item, dict):
            bad("missing_required_parameter", "item", "Missing required parameter: 'item'.")
            return errs
        it = item.get("type")
        if it == "message":
            unknown(item, {"id", "type", "object", "status", "role", "content"}, "item.")
            role = item.get("role")
            allowed = {"user": ("input_text", "input_audio"), "assistant": ("text",),
                       "system": ("input_text",)}.get(role)
            if allowed is None:
                bad("invalid_value", "item.role", "Invalid value: %r." % (role,))
            content = item.get("content")
            if not isinstance(content, list):
                bad("missing_required_parameter", "item.content",
                    "Missing required parameter: 'item.content'.")
            elif allowed:
                for i, c in enumerate(content):
                    ct = c.get("type") if isinstance(c, dict) else None
                    if ct not in allowed:
                        bad("invalid_value", "item.content[%d].type" % i,
                            "Invalid value: %r. Supported values are: %s." % (
                                ct, ", ".join("'%s'" % a for a in allowed)))
        elif it == "function_call_output":
            unknown(item, {"id", "type", "object", "status", "call_id", "output"}, "item.")
            for k in ("call_id", "output"):
                if not isinstance(item.get(k), str):
                    bad("missing_required_parameter", "item." + k,
                        "Missing required parameter: 'item.%s'." % k)
        elif it == "function_call":
            unknown(item, {"id", "type", "object", "status", "call_id", "name", "arguments"},
                    "item.")
        else:
            bad("invalid_value", "item.type", "Invalid value: %r." % (it,))
    elif t == "response.create":
        r = ev.get("response")
        if r is not None:
            if not isinstance(r, dict):
                bad("invalid_type", "response", "Invalid type for 'response'.")
            else:
                unknown(r, BETA_RESPONSE_KEYS, "response.")
                oaf = r.get("output_audio_format", "pcm16")
                if not (isinstance(oaf, str) and oaf in BETA_FORMATS):
                    bad("invalid_value", "response.output_audio_format", "Invalid value.")
    elif t == "response.cancel":
        if "response_id" in ev and not isinstance(ev["response_id"], str):
            bad("invalid_type", "response_id", "Invalid type for 'response_id'.")
    return errs


# ---------------------------------------------------------------------------
# Configuration

DEFAULTS = {
    "dialect": "ga",            # "ga" | "beta"
    "mode": "echo",             # "echo" | "vad" | "scripted" | "idle" | "text"
    "api_key": "sk-test",       # None: any Authorization is accepted
    "reject_status": None,      # 401/403/404/429/500/503...: refuse the upgrade
    "reject_body": None,        # dict: the JSON body of that refusal
    "retry_after": None,        # seconds, a Retry-After header on a refusal
    "model": None,              # None: ?model= of the request, else a default
    "expires_in": 3600,         # session.created expires_at = now + this
    "enforce_expiry": True,     # at expires_at: error session_expired, close
    "reject_beta_header": True,   # GA: OpenAI-Beta: realtime=v1 -> error + close
    "require_beta_header": True,  # beta: no header -> error + close
    "script": None,             # list of steps (mode "scripted")
    "after_script": "idle",     # "vad" | "echo" | "idle"
    "respond_in_script": False,  # answer response.create while a script runs
    "reply_ms": 2000,           # default reply: this much tone...
    "reply_freq": 440.0,
    "reply_wav": None,          # ...or the audio of this WAV file
    # reply_wav and reply_text may also be lists: one per audio reply of the
    # connection, in order, the last one repeating
    "reply_audio": None,        # ...or these mu-law bytes
    "reply_text": "Sure, I can help you with that. What day works for you?",
    "caller_transcript": "Hello, I would like to book an appointment.",  # str or list
    # mode "vad": per caller turn, in order, None (a spoken reply) or a tool
    # call {name, arguments} the model makes instead of speaking; past the
    # end of the list every turn gets a spoken reply
    "vad_tools": None,
    # mode "text": a text session's replies, one per response.create; each is
    # a str, or a dict {"text": str, "tool": {name, arguments}} (a tool call
    # after the text); the last one repeats.  Text goes out a word per delta,
    # interval_ms apart; usage comes in response.done.
    "text_replies": None,
    "chunk_ms": 100,            # audio per delta
    "interval_ms": 20,          # pause between deltas
    "vad_threshold": 300.0,     # RMS of 16-bit linear samples per 20 ms frame
    "min_speech_ms": 40,        # loud audio needed before speech_started
    "silence_ms": None,         # None: the session's silence_duration_ms
    "prefix_ms": None,          # None: the session's prefix_padding_ms
    "echo_idle_ms": 500,        # echo response ends after this without appends
    "strict_call_ids": True,    # function_call_output must name a known call
    "send_rate_limits": True,
    "validate": True,           # validate client events, answer errors
    "stall_max_s": 120,         # a stalled connection is aborted after this
    "max_lifetime_s": 3600,
    "close_timeout": 2,
    # a slower server, as the real one is over the internet: the upgrade
    # answered this late, and the first session.updated this late after
    # its session.update (later events of the connection wait behind it)
    "open_delay_ms": 0,
    "session_delay_ms": 0,
}


def _check_keys(kw):
    for k in kw:
        if k not in DEFAULTS:
            raise TypeError("unknown FakeOpenAI option %r" % k)


# ---------------------------------------------------------------------------
# Responses


class Response:
    """One response the fake server is producing."""

    def __init__(self, conn, kind, metadata=None):
        self.id = new_id("resp")
        self.kind = kind                 # "reply", "echo", "script", "tool"
        self.conn = conn
        self.status = "in_progress"
        self.cancel_reason = None
        self.wake = asyncio.Event()
        self.task = None
        self.output = []
        self.metadata = metadata
        self.audio_bytes = 0
        self.text_deltas = []
        self.t_created = time.monotonic()
        self.t_done = None
        self.done = asyncio.Event()
        # echo state
        self.echo_item = None
        self.echo_lock = asyncio.Lock()
        self.last_append = None

    def summary(self):
        return {"id": self.id, "kind": self.kind, "status": self.status,
                "reason": self.cancel_reason, "audio_bytes": self.audio_bytes,
                "items": [i.get("id") for i in self.output],
                "t_created": self.t_created, "t_done": self.t_done,
                # what the model was told when this response began
                "instructions": (self.conn.session or {}).get("instructions")}


# ---------------------------------------------------------------------------
# One connection


class Connection:
    """What one client connection did and got.

    Attributes tests read:
      id, path, query (dict of lists), headers (lower-case name -> value),
      header_list [(name, value)], status (101 or the HTTP refusal),
      authorized, beta_header (bool), config (dict),
      events [(t, dict)] client events in arrival order (monotonic t),
      sent [(t, dict)] events the server sent ({"_raw": text} for raw text),
      schema_errors [dict(t, type, code, param, message, event)],
      bad_frames [(t, data)], truncates [dict], responses [dict summaries],
      response_requests [dict], function_outputs [dict], tool_calls [dict],
      vad_log [(t, what, ms)], session (dict, the effective config),
      session_updates (count applied), appended (bytearray of every appended
      byte), input_ms, audio_items {item_id: {sent_bytes, bpm, truncated_ms,
      response_id}}, items (the conversation), call_ids,
      closed, close_code, close_reason, closed_by ("client", "server",
      "drop", "refused"), t_request, t_open, t_closed, crash (None unless
      the server itself failed), script_log [(t, step index, what)],
      stalled, dropped.
    responses: dict(id, kind, status, reason, audio_bytes, items, t_created,
      t_done); status "completed", "cancelled" or "aborted" (connection gone).
    Helpers: types(), sent_types(), count(type), first(type), of_type(type),
      sent_of_type(type), appends(), errors_sent, await wait_for(type, count,
      timeout), await wait_sent(type, count, timeout), await wait_closed(t)."""

    def __init__(self, server, cid):
        self.server = server
        self.id = cid
        self.t_request = time.monotonic()
        self.t_open = None
        self.t_closed = None
        self.path = None
        self.query = {}
        self.headers = {}
        self.header_list = []
        self.status = None
        self.authorized = False
        self.beta_header = False
        self.beta_header_value = None
        self.config = {}
        self.dialect = "ga"
        self.events = []
        self.sent = []
        self.schema_errors = []
        self.bad_frames = []
        self.truncates = []
        self.responses = []
        self.response_requests = []
        self.function_outputs = []
        self.tool_calls = []
        self.vad_log = []
        self.script_log = []
        self.items = []
        self.audio_items = {}
        self.text_reply_n = 0
        self.call_ids = set()
        self.session = None
        self.session_updates = 0
        self.appended = bytearray()
        self.input_ms = 0.0
        self.buffer_ms = 0.0
        self.audio_produced = False
        self.closed = False
        self.close_code = None
        self.close_reason = None
        self.closed_by = None
        self.stalled = False
        self.dropped = False
        self.crash = None
        self.phase = "main"
        self.active = None
        self.ws = None
        self._counts = collections.Counter()
        self._changed = asyncio.Event()
        self._stall_event = asyncio.Event()
        self._tasks = set()
        self._reader = None
        self._closing_by_server = False
        self._vad_buf = bytearray()
        self._vad_pos_ms = 0.0
        self._speaking = False
        self._loud_run = 0
        self._cand_start = 0.0
        self._silence_run = 0
        self._user_item = None
        self._transcripts = 0
        self._turns = 0
        self._replies = 0

    # --- inspection helpers -------------------------------------------------

    def types(self):
        """Types of the client events, in order."""
        return [e.get("type") for _, e in self.events]

    def sent_types(self):
        return [e.get("type", "_raw") for _, e in self.sent]

    def count(self, etype):
        return self._counts[etype]

    def first(self, etype):
        """(t, event) of the first client event of that type, or None."""
        for t, e in self.events:
            if e.get("type") == etype:
                return t, e
        return None

    def of_type(self, etype):
        return [(t, e) for t, e in self.events if e.get("type") == etype]

    def sent_of_type(self, etype):
        return [(t, e) for t, e in self.sent if e.get("type") == etype]

    def appends(self):
        """The base64 strings of every input_audio_buffer.append, in order."""
        return [e.get("audio") for _, e in self.events
                if e.get("type") == "input_audio_buffer.append"]

    @property
    def errors_sent(self):
        return [e for _, e in self.sent if e.get("type") == "error"]

    async def wait_for(self, etype, count=1, timeout=5.0):
        """Waits until `count` client events of that type have arrived on this
        connection in all.  True if they did within the timeout."""
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            if self._counts[etype] >= count:
                return True
            if self.closed:
                return self._counts[etype] >= count
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ev = self._changed
            try:
                await asyncio.wait_for(ev.wait(), min(left, 0.25))
            except asyncio.TimeoutError:
                pass
        return False

    async def wait_sent(self, etype, count=1, timeout=5.0):
        """Waits until the server has sent `count` events of that type."""
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            if len(self.sent_of_type(etype)) >= count:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return False

    async def wait_closed(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            if self.closed:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return False

    # --- session accessors ----------------------------------------------------

    def _c(self, k):
        return self.config[k]

    def _audio_format(self, way):
        """The session's audio format one way ("input" or "output")."""
        s = self.session or {}
        if self.dialect == "ga":
            f = (s.get("audio", {}).get(way, {}).get("format") or {}).get("type")
            return GA_FORMATS.get(f, "pcm16")
        return BETA_FORMATS.get(s.get(way + "_audio_format"), "pcm16")

    def input_format(self):
        return self._audio_format("input")

    def output_format(self):
        return self._audio_format("output")

    def turn_detection(self):
        s = self.session or {}
        if self.dialect == "ga":
            return s.get("audio", {}).get("input", {}).get("turn_detection")
        return s.get("turn_detection")

    def transcription(self):
        s = self.session or {}
        if self.dialect == "ga":
            return s.get("audio", {}).get("input", {}).get("transcription")
        return s.get("input_audio_transcription")

    def voice(self):
        s = self.session or {}
        if self.dialect == "ga":
            return s.get("audio", {}).get("output", {}).get("voice")
        return s.get("voice")

    @property
    def behaviour(self):
        m = self.config.get("mode")
        if m == "scripted":
            return None if self.phase == "script" else self.config.get("after_script", "idle")
        return m

    # --- sending --------------------------------------------------------------

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _account_sent(self, ev):
        t = ev.get("type")
        if t in AUDIO_DELTA_TYPES:
            iid = ev.get("item_id")
            d = ev.get("delta")
            n = b64len(d) if isinstance(d, str) else 0
            info = self.audio_items.get(iid)
            if info is None:
                info = {"item_id": iid, "response_id": ev.get("response_id"),
                        "sent_bytes": 0, "bpm": BYTES_PER_MS[self.output_format()],
                        "truncated_ms": None}
                self.audio_items[iid] = info
            info["sent_bytes"] += n
            self.audio_produced = True
        elif t in ("response.output_item.added", "response.output_item.done"):
            item = ev.get("item") or {}
            if item.get("type") == "function_call" and item.get("call_id"):
                self.call_ids.add(item["call_id"])

    async def send(self, ev, raw=False):
        """Sends one event (a dict, or text when raw).  Adds an event_id unless
        raw or already present.  Never raises."""
        if self.stalled or self.closed or self.ws is None:
            return False
        if raw:
            text = ev
            self.sent.append((time.monotonic(), {"_raw": text}))
        else:
            if "event_id" not in ev:
                ev = dict(ev)
                ev["event_id"] = new_id("event")
            self._account_sent(ev)
            text = json.dumps(ev)
            self.sent.append((time.monotonic(), ev))
            self.server._notify(self, "out", ev)
        try:
            await asyncio.wait_for(self.ws.send(text), 10)
            return True
        except Exception:
            return False

    async def send_error(self, code, message, param=None, event_id=None,
                         etype="invalid_request_error"):
        await self.send({"type": "error",
                         "error": {"type": etype, "code": code, "message": message,
                                   "param": param, "event_id": event_id}})

    async def close(self, code=1000, reason=""):
        self._closing_by_server = True
        try:
            await asyncio.wait_for(self.ws.close(code, reason), self._c("close_timeout") + 1)
        except Exception:
            pass

    def drop(self, rst=True):
        """Ends the TCP connection without a close frame (RST unless rst=False)."""
        self.dropped = True
        self._closing_by_server = True
        tr = self.ws.transport if self.ws else None
        if tr is None:
            return
        if rst:
            try:
                sock = tr.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            tr.abort()
        else:
            tr.close()

    def stall(self):
        """Stops reading and writing: the peer sees a silent, stuck server."""
        self.stalled = True
        self._stall_event.set()
        self.script_log.append((time.monotonic(), None, "stall"))
        tr = self.ws.transport if self.ws else None
        for t in (tr, getattr(getattr(tr, "_ssl_protocol", None), "_transport", None)):
            try:
                if t is not None:
                    t.pause_reading()
            except Exception:
                pass
        cur = asyncio.current_task()
        if self._reader is not None and self._reader is not cur:
            self._reader.cancel()
        for task in list(self._tasks):
            if task is not cur:
                task.cancel()

    # --- main loop ------------------------------------------------------------

    async def run(self):
        cfg = self.config
        now = time.time()
        if self.dialect == "ga" and self.beta_header and cfg["reject_beta_header"]:
            await self.send_error(
                "beta_api_shape_disabled",
                "The Realtime Beta API is no longer supported. Please use /v1/realtime "
                "for the GA API.")
            await self.close(1008, "beta_api_shape_disabled")
            return
        if self.dialect == "beta" and not self.beta_header and cfg["require_beta_header"]:
            await self.send_error(
                "beta_header_required",
                "This fake server speaks the beta interface only: send the header "
                "'OpenAI-Beta: realtime=v1'.")
            await self.close(1008, "beta header required")
            return
        model = cfg["model"] or (self.query.get("model") or [None])[0] or (
            "gpt-realtime" if self.dialect == "ga" else "gpt-4o-realtime-preview-2024-12-17")
        expires_at = int(now + cfg["expires_in"])
        sess_id = new_id("sess")
        if self.dialect == "ga":
            self.session = default_session_ga(model, expires_at, sess_id)
        else:
            self.session = default_session_beta(model, expires_at, sess_id)
        self.conversation_id = new_id("conv")
        await self.send({"type": "session.created", "session": copy.deepcopy(self.session)})
        if self.dialect == "beta":
            await self.send({"type": "conversation.created",
                             "conversation": {"id": self.conversation_id,
                                              "object": "realtime.conversation"}})
        if cfg["enforce_expiry"]:
            self._spawn(self._expiry(expires_at))
        self._reader = asyncio.ensure_future(self._read_loop())
        if cfg["mode"] == "scripted":
            self.phase = "script"
            self._spawn(self._run_script(list(cfg["script"] or [])))
        stall_waiter = asyncio.ensure_future(self._stall_event.wait())
        try:
            await asyncio.wait({self._reader, stall_waiter}, timeout=cfg["max_lifetime_s"],
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stall_waiter.cancel()
        if self.stalled:
            await self._stall_wait()

    async def _expiry(self, expires_at):
        delay = expires_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        minutes = max(1, round(self._c("expires_in") / 60))
        await self.send_error("session_expired",
                              "Your session hit the maximum duration of %d minutes." % minutes)
        await self.close(1000, "session expired")

    async def _stall_wait(self):
        """While stalled: watch the socket for the peer hanging up, bounded."""
        tr = self.ws.transport
        sock = None
        try:
            sock = tr.get_extra_info("socket")
        except Exception:
            pass
        poller = select.poll()
        fd = -1
        try:
            fd = sock.fileno() if sock is not None else -1
        except Exception:
            fd = -1
        if fd >= 0:
            poller.register(fd, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        deadline = time.monotonic() + self._c("stall_max_s")
        while time.monotonic() < deadline and not self.server._stopping:
            if self.ws.closed:
                break
            if fd >= 0:
                try:
                    if sock.fileno() < 0 or poller.poll(0):
                        self.closed_by = "client"
                        break
                except Exception:
                    break
            await asyncio.sleep(0.05)
        self.ws.transport.abort()

    async def _read_loop(self):
        ws = self.ws
        for _ in range(100_000_000):
            try:
                msg = await ws.recv()
            except websockets.ConnectionClosed:
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.crash = "recv: %r" % (e,)
                return
            if self.stalled:
                return
            t = time.monotonic()
            try:
                await self._on_message(t, msg)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.exception("connection %d: handling a client event failed", self.id)
                self.crash = "handler: %r" % (e,)

    async def _on_message(self, t, msg):
        if isinstance(msg, bytes):
            self.bad_frames.append((t, msg))
            self.schema_errors.append({"t": t, "type": None, "code": "invalid_frame",
                                       "param": None, "message": "binary frame",
                                       "event": None})
            await self.send_error("invalid_frame", "Binary frames are not supported.")
            return
        try:
            ev = json.loads(msg)
        except ValueError:
            ev = None
        if not isinstance(ev, dict):
            self.bad_frames.append((t, msg))
            self.schema_errors.append({"t": t, "type": None, "code": "invalid_json",
                                       "param": None, "message": "not a JSON object",
                                       "event": msg[:2000]})
            await self.send_error("invalid_json",
                                  "We could not parse the JSON body of your request.")
            return
        self.events.append((t, ev))
        etype = ev.get("type")
        self._counts[etype] += 1
        self.server._notify(self, "in", ev)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        if self.config["validate"]:
            errs = validate_ga(ev) if self.dialect == "ga" else validate_beta(ev)
            if errs:
                for code, param, message in errs:
                    self.schema_errors.append({"t": t, "type": etype, "code": code,
                                               "param": param, "message": message,
                                               "event": ev})
                code, param, message = errs[0]
                eid = ev.get("event_id") if isinstance(ev.get("event_id"), str) else None
                await self.send_error(code, message, param, eid)
                return
        await self._dispatch(t, ev)

    async def _dispatch(self, t, ev):
        etype = ev.get("type")
        eid = ev.get("event_id")
        h = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self._on_append,
            "input_audio_buffer.commit": self._on_commit,
            "input_audio_buffer.clear": self._on_clear,
            "conversation.item.create": self._on_item_create,
            "conversation.item.truncate": self._on_truncate,
            "conversation.item.delete": self._on_item_delete,
            "conversation.item.retrieve": self._on_item_retrieve,
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
        }.get(etype)
        if h is not None:
            await h(t, ev, eid)
        elif etype != "output_audio_buffer.clear":
            await self.send_error("invalid_value", "Invalid value: %r." % (etype,), "type", eid)

    # --- session ----------------------------------------------------------------

    async def _on_session_update(self, t, ev, eid):
        upd = ev.get("session") or {}
        if "model" in upd and upd["model"] != self.session.get("model"):
            await self.send_error("invalid_value",
                                  "Cannot update a session's model after it has started.",
                                  "session.model", eid)
            return
        if self.audio_produced:
            new_voice = None
            if self.dialect == "ga":
                new_voice = ((upd.get("audio") or {}).get("output") or {}).get("voice")
            else:
                new_voice = upd.get("voice")
            if new_voice is not None and new_voice != self.voice():
                await self.send_error(
                    "cannot_update_voice",
                    "Cannot update a conversation's voice if assistant audio is present.",
                    "session.voice", eid)
                return
        if self.dialect == "ga":
            om = upd.get("output_modalities")
            if isinstance(om, list) and len(om) > 1:
                await self.send_error("invalid_value",
                                      "Invalid modalities: %r. Supported combinations are: "
                                      "['text'] and ['audio']." % (om,),
                                      "session.output_modalities", eid)
                return
            for k, v in upd.items():
                if k == "audio" and isinstance(v, dict):
                    audio = self.session.setdefault("audio", {})
                    for side, vals in v.items():
                        dst = audio.setdefault(side, {})
                        for kk, vv in (vals or {}).items():
                            if kk == "turn_detection":
                                vv = fill_turn_detection(vv, "ga")
                            dst[kk] = copy.deepcopy(vv)
                elif k not in ("type", "model"):
                    self.session[k] = copy.deepcopy(v)
        else:
            for k, v in upd.items():
                if k == "turn_detection":
                    v = fill_turn_detection(v, "beta")
                if k != "model":
                    self.session[k] = copy.deepcopy(v)
        self.session_updates += 1
        if self.session_updates == 1 and self._c("session_delay_ms"):
            await asyncio.sleep(self._c("session_delay_ms") / 1000.0)
        await self.send({"type": "session.updated", "session": copy.deepcopy(self.session)})

    # --- input audio ------------------------------------------------------------

    async def _on_append(self, t, ev, eid):
        b64 = ev.get("audio", "")
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            self.schema_errors.append({"t": t, "type": ev.get("type"), "code": "invalid_value",
                                       "param": "audio", "message": "audio is not base64",
                                       "event": ev})
            await self.send_error("invalid_value",
                                  "Invalid 'audio'. Expected base64-encoded audio bytes.",
                                  "audio", eid)
            return
        fmt = self.input_format()
        ms = len(raw) / BYTES_PER_MS[fmt]
        self.appended.extend(raw)
        self.input_ms += ms
        self.buffer_ms += ms
        b = self.behaviour
        if b == "echo":
            if self._counts["session.update"] > 0:
                await self._echo(b64, len(raw))
        elif b == "vad":
            td = self.turn_detection()
            if isinstance(td, dict):
                await self._vad_feed(raw, fmt, td)

    async def _vad_feed(self, raw, fmt, td):
        self._vad_buf.extend(raw)
        bpm = BYTES_PER_MS[fmt]
        fb = 20 * bpm
        silence_ms = self._c("silence_ms")
        if silence_ms is None:
            silence_ms = td.get("silence_duration_ms") or 500
        prefix_ms = self._c("prefix_ms")
        if prefix_ms is None:
            prefix_ms = td.get("prefix_padding_ms")
            if prefix_ms is None:
                prefix_ms = 300
        threshold = self._c("vad_threshold")
        for _ in range(len(self._vad_buf) // fb):
            frame = bytes(self._vad_buf[:fb])
            del self._vad_buf[:fb]
            start = self._vad_pos_ms
            self._vad_pos_ms += 20
            loud = rms(decode_audio(frame, fmt)) >= threshold
            if not self._speaking:
                if loud:
                    if self._loud_run == 0:
                        self._cand_start = start
                    self._loud_run += 1
                    if self._loud_run * 20 >= self._c("min_speech_ms"):
                        self._speaking = True
                        self._silence_run = 0
                        await self._speech_started(max(0, int(self._cand_start - prefix_ms)), td)
                else:
                    self._loud_run = 0
            else:
                if loud:
                    self._silence_run = 0
                else:
                    self._silence_run += 20
                    if self._silence_run >= silence_ms:
                        self._speaking = False
                        self._loud_run = 0
                        await self._speech_stopped(int(self._vad_pos_ms), td)

    async def _speech_started(self, audio_start_ms, td):
        self._user_item = new_id("item")
        self.vad_log.append((time.monotonic(), "speech_started", audio_start_ms))
        await self.send({"type": "input_audio_buffer.speech_started",
                         "audio_start_ms": audio_start_ms, "item_id": self._user_item})
        r = self.active
        if r is not None and td.get("interrupt_response", True):
            await self.cancel_response(r, "turn_detected")

    async def _speech_stopped(self, audio_end_ms, td):
        self.vad_log.append((time.monotonic(), "speech_stopped", audio_end_ms))
        await self.send({"type": "input_audio_buffer.speech_stopped",
                         "audio_end_ms": audio_end_ms, "item_id": self._user_item})
        await self._commit_buffer(self._user_item)
        tools = self._c("vad_tools") or []
        tool = tools[self._turns] if self._turns < len(tools) else None
        self._turns += 1
        if td.get("create_response", True) and self.active is None:
            if tool is not None:
                self.start_reply("tool", tool=tool, with_audio=False)
            else:
                self.start_reply("reply")

    async def _commit_buffer(self, item_id=None):
        item_id = item_id or new_id("item")
        prev = self.items[-1]["id"] if self.items else None
        await self.send({"type": "input_audio_buffer.committed",
                         "previous_item_id": prev, "item_id": item_id})
        item = {"id": item_id, "object": "realtime.item", "type": "message",
                "status": "completed", "role": "user",
                "content": [{"type": "input_audio", "transcript": None}]}
        self.items.append(item)
        self.buffer_ms = 0.0
        await self._item_events(item, prev)
        tr = self.transcription()
        if tr:
            ct = self._c("caller_transcript")
            if isinstance(ct, (list, tuple)):
                text = ct[min(self._transcripts, len(ct) - 1)] if ct else ""
            else:
                text = ct or ""
            self._transcripts += 1
            ev = {"type": "conversation.item.input_audio_transcription.completed",
                  "item_id": item_id, "content_index": 0, "transcript": text}
            if self.dialect == "ga":
                ev["usage"] = {"type": "tokens", "total_tokens": 30, "input_tokens": 20,
                               "input_token_details": {"text_tokens": 0, "audio_tokens": 20},
                               "output_tokens": 10}
            await self.send(ev)

    async def _item_events(self, item, prev, added_only=False):
        if self.dialect == "ga":
            await self.send({"type": "conversation.item.added", "previous_item_id": prev,
                             "item": copy.deepcopy(item)})
            if not added_only:
                await self.send({"type": "conversation.item.done", "previous_item_id": prev,
                                 "item": copy.deepcopy(item)})
        else:
            await self.send({"type": "conversation.item.created", "previous_item_id": prev,
                             "item": copy.deepcopy(item)})

    async def _on_commit(self, t, ev, eid):
        if self.buffer_ms < 100:
            await self.send_error(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                "100ms of audio, but buffer only has %.2fms of audio." % self.buffer_ms,
                None, eid)
            return
        await self._commit_buffer()

    async def _on_clear(self, t, ev, eid):
        self.buffer_ms = 0.0
        self._vad_buf.clear()
        await self.send({"type": "input_audio_buffer.cleared"})

    # --- conversation items -----------------------------------------------------

    async def _on_item_create(self, t, ev, eid):
        item = copy.deepcopy(ev.get("item") or {})
        prev = ev.get("previous_item_id")
        known = {i["id"] for i in self.items}
        if prev is not None and prev != "root" and prev not in known:
            await self.send_error("invalid_value",
                                  "Item with id '%s' not found in conversation." % prev,
                                  "previous_item_id", eid)
            return
        if item.get("type") == "function_call_output":
            self.function_outputs.append({"t": t, "call_id": item.get("call_id"),
                                          "output": item.get("output"), "item": item})
            if self._c("strict_call_ids") and item.get("call_id") not in self.call_ids:
                await self.send_error("invalid_value",
                                      "Tool call ID '%s' not found in conversation." %
                                      item.get("call_id"), "item.call_id", eid)
                return
        item.setdefault("id", new_id("item"))
        item["object"] = "realtime.item"
        item["status"] = "completed"
        if prev is None:
            prev = self.items[-1]["id"] if self.items else None
        self.items.append(item)
        await self._item_events(item, prev)

    async def _on_truncate(self, t, ev, eid):
        iid = ev.get("item_id")
        ci = ev.get("content_index")
        ms = ev.get("audio_end_ms")
        info = self.audio_items.get(iid)
        rec = {"t": t, "item_id": iid, "content_index": ci, "audio_end_ms": ms,
               "sent_ms": None, "ok": False, "reason": None}
        self.truncates.append(rec)
        if info is None:
            rec["reason"] = "unknown item"
            is_item = any(i.get("id") == iid for i in self.items)
            await self.send_error(
                "invalid_value",
                ("Only assistant messages with audio can be truncated: '%s'." if is_item
                 else "Item with item_id '%s' not found.") % iid, "item_id", eid)
            return
        rec["sent_ms"] = info["sent_bytes"] / info["bpm"]
        if ci != 0:
            rec["reason"] = "content_index"
            await self.send_error("invalid_value",
                                  "Invalid content_index %r: the item has one content part."
                                  % (ci,), "content_index", eid)
            return
        if not _is_int(ms) or ms * info["bpm"] > info["sent_bytes"]:
            rec["reason"] = "too long"
            await self.send_error(
                "invalid_value",
                "audio_end_ms %s is longer than the audio of item '%s': Audio content of "
                "%dms is already shorter than %sms." % (ms, iid, int(rec["sent_ms"]), ms),
                "audio_end_ms", eid)
            return
        rec["ok"] = True
        info["truncated_ms"] = ms
        await self.send({"type": "conversation.item.truncated", "item_id": iid,
                         "content_index": ci, "audio_end_ms": ms})

    async def _on_item_delete(self, t, ev, eid):
        iid = ev.get("item_id")
        for i, item in enumerate(self.items):
            if item.get("id") == iid:
                del self.items[i]
                await self.send({"type": "conversation.item.deleted", "item_id": iid})
                return
        await self.send_error("invalid_value", "Item with item_id '%s' not found." % iid,
                              "item_id", eid)

    async def _on_item_retrieve(self, t, ev, eid):
        iid = ev.get("item_id")
        for item in self.items:
            if item.get("id") == iid:
                await self.send({"type": "conversation.item.retrieved",
                                 "item": copy.deepcopy(item)})
                return
        await self.send_error("invalid_value", "Item with item_id '%s' not found." % iid,
                              "item_id", eid)

    # --- responses --------------------------------------------------------------

    async def _on_response_create(self, t, ev, eid):
        r = self.active
        if r is not None:
            await self.send_error(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress: %s. Wait until "
                "the response is finished before creating a new one." % r.id, None, eid)
            return
        params = ev.get("response") or {}
        self.response_requests.append({"t": t, "response": copy.deepcopy(params),
                                       "instructions": params.get("instructions")})
        b = self.behaviour
        if b == "text":
            self.start_text_reply(metadata=params.get("metadata"))
        elif b in ("echo", "vad") or (b is None and self._c("respond_in_script")):
            self.start_reply("reply", metadata=params.get("metadata"))

    async def _on_response_cancel(self, t, ev, eid):
        r = self.active
        rid = ev.get("response_id")
        if r is None or (rid is not None and rid != r.id):
            await self.send_error("response_cancel_not_active",
                                  "Cancellation failed: no active response found", None, eid)
            return
        await self.cancel_response(r, "client_cancelled")

    def _resp_obj(self, r, status, with_usage=False):
        details = None
        if status == "cancelled":
            details = {"type": "cancelled", "reason": r.cancel_reason}
        elif status == "incomplete":
            details = {"type": "incomplete", "reason": r.cancel_reason}
        usage = None
        if with_usage:
            audio_tokens = int(r.audio_bytes / 8 / 50)
            text_tokens = 10 + len(r.text_deltas)
            usage = {"total_tokens": 200 + audio_tokens + text_tokens,
                     "input_tokens": 200,
                     "output_tokens": audio_tokens + text_tokens,
                     "input_token_details": {"text_tokens": 150, "audio_tokens": 50,
                                             "cached_tokens": 0},
                     "output_token_details": {"text_tokens": text_tokens,
                                              "audio_tokens": audio_tokens}}
            if self.dialect == "ga":
                usage["input_token_details"]["image_tokens"] = 0
                usage["input_token_details"]["cached_tokens_details"] = {
                    "text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}
            else:
                usage["input_token_details"]["cached_tokens_details"] = {
                    "text_tokens": 0, "audio_tokens": 0}
        out = {"object": "realtime.response", "id": r.id, "status": status,
               "status_details": details, "conversation_id": self.conversation_id,
               "output": copy.deepcopy(r.output), "usage": usage, "metadata": r.metadata}
        if self.dialect == "ga":
            fmt = (self.session.get("audio", {}).get("output", {}).get("format"))
            out["output_modalities"] = list(self.session.get("output_modalities") or ["audio"])
            out["max_output_tokens"] = self.session.get("max_output_tokens", "inf")
            out["audio"] = {"output": {"format": fmt, "voice": self.voice()}}
        else:
            out["modalities"] = list(self.session.get("modalities") or ["text", "audio"])
            out["voice"] = self.voice()
            out["output_audio_format"] = self.session.get("output_audio_format")
            out["temperature"] = self.session.get("temperature", 0.8)
            out["max_output_tokens"] = self.session.get("max_response_output_tokens", "inf")
        return out

    def _nth(self, key, n):
        """Setting key, or its n-th entry (the last repeating) if a list."""
        v = self._c(key)
        if isinstance(v, (list, tuple)):
            return v[min(n, len(v) - 1)] if v else None
        return v

    def reply_audio(self, ms=None):
        """The reply's audio in the session's output format."""
        if ms is not None:
            ulaw = tone_ulaw(ms, self._c("reply_freq"))
        elif self._c("reply_audio") is not None:
            ulaw = bytes(self._c("reply_audio"))
        elif self._c("reply_wav"):
            ulaw = wav_to_ulaw(self._nth("reply_wav", self._replies))
        else:
            ulaw = tone_ulaw(self._c("reply_ms"), self._c("reply_freq"))
        fmt = self.output_format()
        if fmt == "pcmu":
            return ulaw
        lin = [ULAW_TO_LINEAR[b] for b in ulaw]
        if fmt == "pcma":
            return bytes(linear_to_alaw(s) for s in lin)
        up = []
        for s in lin:
            up += (s, s, s)
        return struct.pack("<%dh" % len(up), *up)

    def start_reply(self, kind="reply", audio_ms=None, text=None, chunk_ms=None,
                    interval_ms=None, tool=None, metadata=None, with_audio=True):
        """Starts a response task and makes it the active one.  tool: dict with
        name, arguments (dict or JSON text) and optional call_id."""
        r = Response(self, kind, metadata)
        parts = []
        if with_audio:
            parts.append(("audio", self.reply_audio(audio_ms),
                          self._nth("reply_text", self._replies) if text is None else text))
            self._replies += 1
        if tool is not None:
            args = tool.get("arguments", {})
            if not isinstance(args, str):
                args = json.dumps(args)
            parts.append(("function_call", tool["name"], args,
                          tool.get("call_id") or new_id("call")))
        self.active = r
        self.responses.append(r.summary())
        r.task = self._spawn(self._run_response(
            r, parts, self._c("chunk_ms") if chunk_ms is None else chunk_ms,
            self._c("interval_ms") if interval_ms is None else interval_ms))
        return r

    def text_only(self):
        """The session is text in and out (a ConversationRelay call)."""
        if self.dialect == "ga":
            return self.session.get("output_modalities") == ["text"]
        return self.session.get("modalities") == ["text"]

    def start_text_reply(self, text=None, tool=None, interval_ms=None, metadata=None):
        """A text response (mode "text", or a test calling it)."""
        if text is None and tool is None:
            replies = self._c("text_replies") or [self._nth("reply_text", 0)]
            rep = replies[min(self.text_reply_n, len(replies) - 1)]
            self.text_reply_n += 1
            if isinstance(rep, dict):
                text, tool = rep.get("text"), rep.get("tool")
            else:
                text = rep
        r = Response(self, "text", metadata)
        parts = []
        if text:
            parts.append(("text", text))
        if tool is not None:
            args = tool.get("arguments", {})
            if not isinstance(args, str):
                args = json.dumps(args)
            parts.append(("function_call", tool["name"], args,
                          tool.get("call_id") or new_id("call")))
        self.active = r
        self.responses.append(r.summary())
        r.task = self._spawn(self._run_response(
            r, parts, 0, self._c("interval_ms") if interval_ms is None else interval_ms))
        return r

    def _add_item(self, item):
        """Appends item to the conversation; returns the id of the one
        before it (None for the first)."""
        prev = self.items[-1]["id"] if self.items else None
        self.items.append(item)
        return prev

    async def _output_item_added(self, r, idx, item, prev):
        await self.send({"type": "response.output_item.added", "response_id": r.id,
                         "output_index": idx, "item": copy.deepcopy(item)})
        await self._item_events(item, prev, added_only=True)

    async def _output_item_done(self, r, idx, item, prev):
        """The item as it ends, in the response and (GA) in the
        conversation; the response's output keeps a copy."""
        await self.send({"type": "response.output_item.done", "response_id": r.id,
                         "output_index": idx, "item": copy.deepcopy(item)})
        if self.dialect == "ga":
            await self.send({"type": "conversation.item.done", "previous_item_id": prev,
                             "item": copy.deepcopy(item)})
        r.output.append(copy.deepcopy(item))

    @staticmethod
    async def _pause(r, interval_ms):
        """The gap between two deltas; a cancel (r.wake) cuts it short."""
        try:
            await asyncio.wait_for(r.wake.wait(), interval_ms / 1000)
        except asyncio.TimeoutError:
            pass

    async def _message_item(self, r, idx, part):
        """Opens the assistant message at output index idx with its first
        content part (empty); returns the item, the id of the one before
        it, and the ids its content events carry."""
        item = {"id": new_id("item"), "object": "realtime.item", "type": "message",
                "status": "in_progress", "role": "assistant", "content": []}
        prev = self._add_item(item)
        await self._output_item_added(r, idx, item, prev)
        ids = {"response_id": r.id, "item_id": item["id"], "output_index": idx,
               "content_index": 0}
        await self.send(dict(ids, type="response.content_part.added", part=part))
        return item, prev, ids

    async def _text_part(self, r, idx, text, interval_ms):
        names = NAMES[self.dialect]
        item, prev, ids = await self._message_item(r, idx, {"type": names["text_part"], "text": ""})
        words = text.split(" ")
        said = []
        part = {"type": names["text_part"], "text": ""}
        item["content"] = [part]
        for i, w in enumerate(words):
            if r.cancel_reason:
                break
            piece = w + (" " if i < len(words) - 1 else "")
            said.append(piece)
            part["text"] = "".join(said)
            r.text_deltas.append(piece)
            await self.send(dict(ids, type=names["text_delta"], delta=piece))
            if i < len(words) - 1 and interval_ms > 0 and not r.cancel_reason:
                await self._pause(r, interval_ms)
        full = "".join(said)
        await self.send(dict(ids, type=names["text_done"], text=full))
        await self.send(dict(ids, type="response.content_part.done", part=dict(part)))
        item["status"] = "incomplete" if r.cancel_reason else "completed"
        await self._output_item_done(r, idx, item, prev)

    def _finish_response(self, r, status):
        r.status = status
        r.t_done = time.monotonic()
        if self.active is r:
            self.active = None
        for i, s in enumerate(self.responses):
            if s["id"] == r.id:
                self.responses[i] = r.summary()
        r.done.set()

    async def _rate_limits(self):
        if self._c("send_rate_limits"):
            await self.send({"type": "rate_limits.updated", "rate_limits": [
                {"name": "requests", "limit": 1000, "remaining": 999, "reset_seconds": 0.06},
                {"name": "tokens", "limit": 100000, "remaining": 95000, "reset_seconds": 3.0}]})

    async def _run_response(self, r, parts, chunk_ms, interval_ms):
        final = "aborted"
        try:
            await self.send({"type": "response.created",
                             "response": self._resp_obj(r, "in_progress")})
            await self._rate_limits()
            for idx, part in enumerate(parts):
                if r.cancel_reason:
                    break
                if part[0] == "audio":
                    await self._audio_part(r, idx, part[1], part[2], chunk_ms, interval_ms)
                elif part[0] == "text":
                    await self._text_part(r, idx, part[1], interval_ms)
                else:
                    await self._function_part(r, idx, part[1], part[2], part[3])
            status = "cancelled" if r.cancel_reason else "completed"
            await self.send({"type": "response.done",
                             "response": self._resp_obj(r, status, with_usage=True)})
            final = status
        finally:
            self._finish_response(r, final)

    async def _audio_part(self, r, idx, audio, text, chunk_ms, interval_ms):
        names = NAMES[self.dialect]
        item, prev, ids = await self._message_item(r, idx, {"type": names["audio_part"], "transcript": ""})
        bpm = BYTES_PER_MS[self.output_format()]
        cb = max(1, int(chunk_ms * bpm))
        n_chunks = max(1, (len(audio) + cb - 1) // cb)
        words = text.split(" ") if text else []
        said = []
        w = 0
        for i in range(n_chunks):
            if r.cancel_reason:
                break
            chunk = audio[i * cb:(i + 1) * cb]
            if chunk:
                await self.send(dict(ids, type=names["audio_delta"],
                                     delta=base64.b64encode(chunk).decode()))
                r.audio_bytes += len(chunk)
            due = (i + 1) * len(words) // n_chunks
            while w < due:
                piece = words[w] + (" " if w < len(words) - 1 else "")
                said.append(piece)
                await self.send(dict(ids, type=names["transcript_delta"], delta=piece))
                w += 1
            if i < n_chunks - 1 and interval_ms > 0 and not r.cancel_reason:
                await self._pause(r, interval_ms)
        transcript = "".join(said)
        await self.send(dict(ids, type=names["audio_done"]))
        await self.send(dict(ids, type=names["transcript_done"], transcript=transcript))
        part = {"type": names["audio_part"], "transcript": transcript}
        await self.send(dict(ids, type="response.content_part.done", part=part))
        item["status"] = "incomplete" if r.cancel_reason else "completed"
        item["content"] = [part]
        await self._output_item_done(r, idx, item, prev)

    async def _function_part(self, r, idx, name, args, call_id):
        item_id = new_id("item")
        item = {"id": item_id, "object": "realtime.item", "type": "function_call",
                "status": "in_progress", "name": name, "call_id": call_id, "arguments": ""}
        prev = self._add_item(item)
        self.tool_calls.append({"t": time.monotonic(), "name": name, "call_id": call_id,
                                "arguments": args, "item_id": item_id, "response_id": r.id})
        await self._output_item_added(r, idx, item, prev)
        ids = {"response_id": r.id, "item_id": item_id, "output_index": idx,
               "call_id": call_id}
        half = len(args) // 2
        for piece in (args[:half], args[half:]):
            if piece:
                await self.send(dict(ids, type="response.function_call_arguments.delta",
                                     delta=piece))
        done = dict(ids, type="response.function_call_arguments.done", arguments=args)
        if self.dialect == "ga":
            done["name"] = name
        await self.send(done)
        item["status"] = "completed"
        item["arguments"] = args
        await self._output_item_done(r, idx, item, prev)

    async def cancel_response(self, r, reason):
        """Ends a response early (status cancelled, the given reason); returns
        when its closing events are sent."""
        if r.done.is_set():
            return
        r.cancel_reason = reason
        r.wake.set()
        if r.kind == "echo":
            await self._echo_finish(r)
            return
        try:
            await asyncio.wait_for(asyncio.shield(r.done.wait()), 5)
        except asyncio.TimeoutError:
            pass

    # --- echo -------------------------------------------------------------------

    async def _echo_begin(self):
        r = Response(self, "echo")
        self.active = r
        self.responses.append(r.summary())
        async with r.echo_lock:
            await self.send({"type": "response.created",
                             "response": self._resp_obj(r, "in_progress")})
            await self._rate_limits()
            item_id = new_id("item")
            item = {"id": item_id, "object": "realtime.item", "type": "message",
                    "status": "in_progress", "role": "assistant", "content": []}
            prev = self._add_item(item)
            r.echo_item = (item, prev)
            await self._output_item_added(r, 0, item, prev)
            await self.send({"type": "response.content_part.added", "response_id": r.id,
                             "item_id": item_id, "output_index": 0, "content_index": 0,
                             "part": {"type": NAMES[self.dialect]["audio_part"],
                                      "transcript": ""}})
        r.last_append = time.monotonic()
        r.task = self._spawn(self._echo_timer(r))
        return r

    async def _echo(self, b64, n):
        """One append comes back as one delta of the current echo response
        (started on demand; it ends after echo_idle_ms without appends)."""
        for _ in range(4):
            r = self.active
            if r is not None and r.kind != "echo":
                return
            if r is None:
                r = await self._echo_begin()
            if r.cancel_reason and not r.done.is_set():
                try:
                    await asyncio.wait_for(r.done.wait(), 5)
                except asyncio.TimeoutError:
                    return
                continue
            async with r.echo_lock:
                if r.done.is_set():
                    continue
                item = r.echo_item[0]
                r.last_append = time.monotonic()
                await self.send({"type": NAMES[self.dialect]["audio_delta"],
                                 "response_id": r.id, "item_id": item["id"],
                                 "output_index": 0, "content_index": 0, "delta": b64})
                r.audio_bytes += n
                return

    async def _echo_timer(self, r):
        idle = self._c("echo_idle_ms") / 1000
        if r.last_append is None:
            r.last_append = time.monotonic()
        for _ in range(10_000_000):
            if r.done.is_set():
                return
            left = r.last_append + idle - time.monotonic()
            if left <= 0:
                break
            await asyncio.sleep(min(left + 0.001, 0.5))
        await self._echo_finish(r)

    async def _echo_finish(self, r):
        async with r.echo_lock:
            if r.done.is_set():
                return
            names = NAMES[self.dialect]
            item, prev = r.echo_item
            ids = {"response_id": r.id, "item_id": item["id"], "output_index": 0,
                   "content_index": 0}
            status = "cancelled" if r.cancel_reason else "completed"
            try:
                await self.send(dict(ids, type=names["audio_done"]))
                await self.send(dict(ids, type=names["transcript_done"], transcript=""))
                part = {"type": names["audio_part"], "transcript": ""}
                await self.send(dict(ids, type="response.content_part.done", part=part))
                item["status"] = "incomplete" if r.cancel_reason else "completed"
                item["content"] = [part]
                await self._output_item_done(r, 0, item, prev)
                await self.send({"type": "response.done",
                                 "response": self._resp_obj(r, status, with_usage=True)})
            finally:
                self._finish_response(r, status)

    # --- scripts ----------------------------------------------------------------

    async def _run_script(self, steps):
        for i, step in enumerate(steps[:100000]):
            if self.closed or self.stalled:
                break
            self.script_log.append((time.monotonic(), i, "start"))
            try:
                stop = await self._step(i, step)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.script_log.append((time.monotonic(), i, "failed: %r" % (e,)))
                stop = False
            if stop:
                return
        self.script_log.append((time.monotonic(), None, "end"))
        self._vad_buf.clear()
        self._vad_pos_ms = self.input_ms
        self.phase = "after"

    async def _step(self, i, step):
        if "wait_ms" in step:
            await asyncio.sleep(step["wait_ms"] / 1000)
        elif "wait_event" in step:
            ok = await self.wait_for(step["wait_event"], step.get("count", 1),
                                     step.get("timeout_ms", 10000) / 1000)
            if not ok:
                self.script_log.append((time.monotonic(), i, "timeout"))
        elif "send" in step:
            evs = step["send"] if isinstance(step["send"], list) else [step["send"]]
            for ev in evs:
                ev = copy.deepcopy(ev)
                self._account_sent(ev)
                await self._send_exact(ev)
        elif "send_raw" in step:
            await self.send(step["send_raw"], raw=True)
        elif "reply_audio_ms" in step or "reply" in step:
            ms = step.get("reply_audio_ms")
            r = self.start_reply("script", audio_ms=ms, text=step.get("text"),
                                 chunk_ms=step.get("chunk_ms"),
                                 interval_ms=step.get("interval_ms"))
            if step.get("wait", True):
                await asyncio.wait_for(r.done.wait(), step.get("timeout_ms", 60000) / 1000)
        elif "tool_call" in step:
            tc = step["tool_call"]
            r = self.start_reply("tool", audio_ms=step.get("audio_ms"), text=step.get("text"),
                                 chunk_ms=step.get("chunk_ms"),
                                 interval_ms=step.get("interval_ms"), tool=tc,
                                 with_audio="audio_ms" in step)
            if step.get("wait", True):
                await asyncio.wait_for(r.done.wait(), step.get("timeout_ms", 60000) / 1000)
        elif "close" in step:
            await self.close(step["close"], step.get("reason", ""))
            return True
        elif "stall" in step:
            self.stall()
            return True
        elif "drop" in step:
            self.drop(rst=step["drop"] != "fin")
            return True
        else:
            self.script_log.append((time.monotonic(), i, "unknown step %r" % (step,)))
        return False

    async def _send_exact(self, ev):
        """Sends a test-given event exactly as given (no event_id added)."""
        if self.stalled or self.closed or self.ws is None:
            return
        self.sent.append((time.monotonic(), ev))
        self.server._notify(self, "out", ev)
        try:
            await asyncio.wait_for(self.ws.send(json.dumps(ev)), 10)
        except Exception:
            pass

    # --- teardown ---------------------------------------------------------------

    async def _teardown(self):
        cur = asyncio.current_task()
        tasks = [t for t in list(self._tasks) if t is not cur]
        if self._reader is not None and not self._reader.done():
            tasks.append(self._reader)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        ws = self.ws
        for i, summ in enumerate(self.responses):
            if summ["status"] == "in_progress":
                self.responses[i] = dict(summ, status="aborted")
        self.closed = True
        self.t_closed = time.monotonic()
        if ws is not None:
            self.close_code = ws.close_code
            self.close_reason = ws.close_reason
        if self.closed_by is None:
            if self.dropped:
                self.closed_by = "drop"
            elif self._closing_by_server:
                self.closed_by = "server"
            else:
                self.closed_by = "client"
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


# ---------------------------------------------------------------------------
# The server

REFUSALS = {
    401: ("Incorrect API key provided: %s. You can find your API key at "
          "https://platform.openai.com/account/api-keys.", "invalid_request_error",
          "invalid_api_key"),
    403: ("Project does not have access to model `%s`.", "invalid_request_error",
          "model_not_found"),
    404: ("The model `%s` does not exist or you do not have access to it.",
          "invalid_request_error", "model_not_found"),
    429: ("Rate limit reached for requests. Please try again in 1s.", "requests",
          "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!",
          "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error",
          None),
}


def _mask_key(auth):
    key = auth[7:] if auth and auth.startswith("Bearer ") else (auth or "")
    if not key:
        return "(none)"
    if len(key) <= 8:
        return "*" * len(key)
    return key[:3] + "*" * 4 + key[-4:]


class FakeOpenAI:
    """The fake Realtime server.  Per-connection settings come from, in
    order: the constructor's keyword arguments (defaults for all), the next
    entry queued with next_config(), then on_connection(conn) if given (a
    function returning a dict of overrides or None)."""

    def __init__(self, dialect="ga", mode="echo", api_key="sk-test", ssl=None,
                 host="127.0.0.1", port=0, on_connection=None, on_event=None, **config):
        _check_keys(config)
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the fake server listens on loopback only")
        self.defaults = dict(DEFAULTS)
        self.defaults.update(config)
        self.defaults.update(dialect=dialect, mode=mode, api_key=api_key)
        self.ssl = ssl
        self.host = host
        self.port = port
        self.on_connection = on_connection
        self.on_event = on_event
        self.connections = []
        self._queue = collections.deque()
        self._servers = []
        self._stopping = False
        self._handler_tasks = set()

    # --- configuration ---

    def next_config(self, **overrides):
        """Queues settings for the next connection attempt (each attempt,
        refused or not, takes one entry)."""
        _check_keys(overrides)
        self._queue.append(overrides)

    def set_defaults(self, **overrides):
        _check_keys(overrides)
        self.defaults.update(overrides)

    @property
    def scheme(self):
        return "wss" if self.ssl else "ws"

    def url(self, path="/v1/realtime", query="model=gpt-realtime", host=None):
        h = host or self.host
        if ":" in h:
            h = "[%s]" % h
        return "%s://%s:%d%s%s" % (self.scheme, h, self.port, path,
                                    ("?" + query) if query else "")

    @property
    def last(self):
        return self.connections[-1] if self.connections else None

    @property
    def accepted(self):
        return [c for c in self.connections if c.status == 101]

    async def wait_connection(self, n=1, timeout=5.0):
        """The n-th accepted connection (1-based), once it is open."""
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            acc = self.accepted
            if len(acc) >= n and acc[n - 1].ws is not None:
                return acc[n - 1]
            if time.monotonic() >= deadline:
                raise AssertionError("no connection #%d within %.1f s (%d attempts)" % (
                    n, timeout, len(self.connections)))
            await asyncio.sleep(0.01)

    def _notify(self, conn, direction, ev):
        if self.on_event is not None:
            try:
                self.on_event(conn, direction, ev)
            except Exception:
                log.exception("on_event failed")

    # --- lifecycle ---

    async def start(self):
        fake = self

        class Protocol(websockets.server.WebSocketServerProtocol):
            async def process_request(self, path, headers):
                r = fake._on_request(self, path, headers)
                delay = self.vx_conn.config.get("open_delay_ms") or 0
                if delay:
                    await asyncio.sleep(delay / 1000.0)
                return r

        kw = dict(create_protocol=Protocol, ssl=self.ssl, max_size=32 * 2 ** 20,
                  max_queue=256, ping_interval=None, compression=None,
                  close_timeout=DEFAULTS["close_timeout"],
                  logger=logging.getLogger("fake_openai.ws"))
        if self.host == "localhost":
            srv = await websockets.serve(self._handler, "127.0.0.1", self.port, **kw)
            self.port = srv.sockets[0].getsockname()[1]
            self._servers.append(srv)
            try:
                srv6 = await websockets.serve(self._handler, "::1", self.port, **kw)
                self._servers.append(srv6)
            except OSError:
                pass
        else:
            srv = await websockets.serve(self._handler, self.host, self.port, **kw)
            self.port = srv.sockets[0].getsockname()[1]
            self._servers.append(srv)
        return self.port

    async def stop(self):
        self._stopping = True
        for srv in self._servers:
            srv.close()
        for c in self.connections:
            if c.ws is not None and not c.closed:
                try:
                    c.ws.transport.abort()
                except Exception:
                    pass
        tasks = [t for t in self._handler_tasks if not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=3)
        for srv in self._servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), 3)
            except Exception:
                pass
        self._servers = []

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.stop()

    # --- per connection ---

    def _on_request(self, proto, path, headers):
        conn = Connection(self, len(self.connections) + 1)
        conn.path = path
        conn.query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query,
                                           keep_blank_values=True)
        conn.header_list = list(headers.raw_items())
        for k, v in conn.header_list:
            lk = k.lower()
            conn.headers[lk] = (conn.headers[lk] + ", " + v) if lk in conn.headers else v
        cfg = dict(self.defaults)
        if self._queue:
            cfg.update(self._queue.popleft())
        conn.config = cfg
        self.connections.append(conn)
        if self.on_connection is not None:
            try:
                more = self.on_connection(conn)
                if more:
                    _check_keys(more)
                    cfg.update(more)
            except Exception:
                log.exception("on_connection failed")
        conn.dialect = cfg["dialect"]
        betas = headers.get_all("OpenAI-Beta")
        conn.beta_header_value = ", ".join(betas) if betas else None
        conn.beta_header = any("realtime=v1" in v.replace(" ", "") for v in betas)
        auth = headers.get("Authorization")
        status = cfg["reject_status"]
        if not status and cfg["api_key"] is not None and auth != "Bearer " + cfg["api_key"]:
            status = 401
        conn.authorized = status != 401 and (cfg["api_key"] is None or
                                             auth == "Bearer " + cfg["api_key"])
        proto.vx_conn = conn
        if status:
            conn.status = int(status)
            conn.closed = True
            conn.closed_by = "refused"
            conn.t_closed = time.monotonic()
            body = cfg["reject_body"]
            if body is None:
                model = (conn.query.get("model") or ["gpt-realtime"])[0]
                msg, etype, code = REFUSALS.get(int(status), (
                    "Request refused by the fake server.", "invalid_request_error", None))
                if int(status) == 401:
                    msg = msg % _mask_key(auth)
                elif "%s" in msg:
                    msg = msg % model
                body = {"error": {"message": msg, "type": etype, "param": None, "code": code}}
            hdrs = [("Content-Type", "application/json")]
            if cfg["retry_after"] is not None:
                hdrs.append(("Retry-After", str(cfg["retry_after"])))
            return (http.HTTPStatus(int(status)), hdrs, json.dumps(body).encode())
        conn.status = 101
        return None

    async def _handler(self, ws):
        conn = getattr(ws, "vx_conn", None)
        if conn is None:
            return
        task = asyncio.current_task()
        self._handler_tasks.add(task)
        conn.ws = ws
        conn.t_open = time.monotonic()
        try:
            await conn.run()
        except asyncio.CancelledError:
            pass
        except Exception as e:
            conn.crash = repr(e)
            log.exception("connection %d failed", conn.id)
        finally:
            try:
                await conn._teardown()
            except Exception:
                pass
            self._handler_tasks.discard(task)


# ---------------------------------------------------------------------------
# CLI


def _short(ev):
    ev = dict(ev)
    for k in ("audio", "delta"):
        if isinstance(ev.get(k), str) and len(ev[k]) > 40:
            ev[k] = "<%d b64>" % len(ev[k])
    s = json.dumps(ev)
    return s if len(s) < 300 else s[:297] + "..."


def main(argv=None):
    ap = argparse.ArgumentParser(description="A fake OpenAI Realtime server.")
    ap.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "::1", "localhost"])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--dialect", choices=["ga", "beta"], default="ga")
    ap.add_argument("--mode", choices=["echo", "vad", "scripted", "idle", "text"],
                    default="vad")
    ap.add_argument("--api-key", default="sk-test", help="'' accepts any key")
    ap.add_argument("--reject-status", type=int)
    ap.add_argument("--script", help="a JSON file holding a list of steps")
    ap.add_argument("--after-script", choices=["vad", "echo", "idle"], default="idle")
    ap.add_argument("--reply-wav", help="mu-law or PCM WAV played as the reply")
    ap.add_argument("--reply-ms", type=int, default=2000)
    ap.add_argument("--reply-text", default=DEFAULTS["reply_text"])
    ap.add_argument("--caller-transcript", default=DEFAULTS["caller_transcript"])
    ap.add_argument("--vad-threshold", type=float, default=DEFAULTS["vad_threshold"])
    ap.add_argument("--silence-ms", type=int)
    ap.add_argument("--chunk-ms", type=int, default=100)
    ap.add_argument("--interval-ms", type=int, default=20)
    ap.add_argument("--expires-in", type=int, default=3600)
    ap.add_argument("--open-delay-ms", type=int, default=0,
                    help="answer each upgrade this late")
    ap.add_argument("--session-delay-ms", type=int, default=0,
                    help="send the first session.updated this late")
    ap.add_argument("--log", help="write every event, in and out, as JSON lines here")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every event")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    args = ap.parse_args(argv)

    ctx = None
    if args.tls_cert:
        import certs
        ctx = certs.ssl_context(args.tls_cert, args.tls_key)
    script = None
    if args.script:
        with open(args.script) as f:
            script = json.load(f)
    logf = open(args.log, "a") if args.log else None
    t0 = time.monotonic()

    def on_event(conn, direction, ev):
        t = time.monotonic() - t0
        if logf:
            logf.write(json.dumps({"t": round(t, 4), "conn": conn.id, "dir": direction,
                                   "event": ev}) + "\n")
            logf.flush()
        if args.verbose:
            print("%8.3f #%d %s %s" % (t, conn.id, "<-" if direction == "in" else "->",
                                       _short(ev)), flush=True)

    srv = FakeOpenAI(dialect=args.dialect, mode=args.mode, api_key=args.api_key or None,
                     ssl=ctx, host=args.host, port=args.port, on_event=on_event,
                     reject_status=args.reject_status, script=script,
                     after_script=args.after_script, reply_wav=args.reply_wav,
                     reply_ms=args.reply_ms, reply_text=args.reply_text,
                     caller_transcript=args.caller_transcript,
                     vad_threshold=args.vad_threshold, silence_ms=args.silence_ms,
                     chunk_ms=args.chunk_ms, interval_ms=args.interval_ms,
                     expires_in=args.expires_in, open_delay_ms=args.open_delay_ms,
                     session_delay_ms=args.session_delay_ms)

    async def amain():
        port = await srv.start()
        print("fake OpenAI Realtime (%s, %s) listening on %s" % (
            args.dialect, args.mode, srv.url()), flush=True)
        if args.port_file:
            with open(args.port_file, "w") as f:
                f.write("%d\n" % port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await srv.stop()
        for c in srv.connections:
            print("#%d %s %s status=%s events=%d sent=%d schema_errors=%d truncates=%d "
                  "closed_by=%s code=%s" % (
                      c.id, c.path, c.dialect, c.status, len(c.events), len(c.sent),
                      len(c.schema_errors), len(c.truncates), c.closed_by, c.close_code))
            for e in c.schema_errors[:5]:
                print("   schema: %s %s: %s" % (e["type"], e["param"], e["message"]))

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(amain())
    if logf:
        logf.close()


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    main()
