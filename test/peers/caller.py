#!/usr/bin/python3
"""A synthetic caller for voxrelay: it rings the daemon like Twilio does
(the voice webhook, then the bidirectional Media Stream, via twilio.py),
speaks a mu-law WAV as 20 ms frames in real time (silence frames otherwise),
and plays back what it receives on a real-time playout clock, the way
Twilio does (protocols.md 4.2/4.3):

  * audio of received `media` messages is queued and played at 8 bytes/ms;
  * a received `mark` is echoed once all audio queued before it has played
    (at once if nothing is queued);
  * `clear` drops the queued audio and echoes every pending mark at once.

It records the turns (caller speech by its own timeline, assistant audio
start/end by the playout clock), the time to first audio after the caller
stopped speaking, barge-ins (the playout position within the current reply
when `clear` came), the marks, and the audio received (saved as a mu-law
WAV on request).  With barge_in_after_ms it speaks again once the first
reply has played that long.

Usage: caller.py --base http://127.0.0.1:PORT (--wav F | --text "...")
       [--out received.wav] [--seconds 20] [--barge-in-after-ms N]
       [--route R] [--caller +1...]"""

import argparse
import asyncio
import base64
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import fake_openai as g711  # noqa: E402  (G.711 and WAV helpers)
import twilio  # noqa: E402

FRAME = 160                       # 20 ms of 8 kHz mu-law
SILENCE_FRAME = b"\xff" * FRAME
SPEECH_RMS = 300.0                # a frame louder than this counts as speech


# ---------------------------------------------------------------------------
# Audio helpers


def make_phrase_wav(text, path, timeout=20):
    """Speaks text into an 8 kHz mono mu-law WAV with espeak-ng and sox.
    Without them, writes a synthetic burst instead (modulated tones of about
    60 ms per character, at most 3 s).  Returns path."""
    espeak = shutil.which("espeak-ng")
    sox = shutil.which("sox")
    if espeak and sox:
        tmpdir = tempfile.mkdtemp(prefix="vr-phrase-")
        tmp = os.path.join(tmpdir, "speech.wav")
        try:
            subprocess.run([espeak, "-w", tmp, text], check=True, timeout=timeout,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run([sox, tmp, "-r", "8000", "-c", "1", "-e", "mu-law", path],
                           check=True, timeout=timeout,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return path
        except (subprocess.SubprocessError, OSError):
            pass
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    g711.write_wav_ulaw(path, synthetic_speech(min(3000, 300 + 60 * len(text))))
    return path


def synthetic_speech(ms):
    """A loud, speech-like burst: syllables of 180 ms tone (varying pitch)
    with 60 ms gaps."""
    out = bytearray()
    freqs = (220, 300, 260, 340, 240)
    i = 0
    while len(out) < ms * 8 and i < 1000:
        out += g711.tone_ulaw(180, freqs[i % len(freqs)], 9000)
        out += b"\xff" * (60 * 8)
        i += 1
    return bytes(out[:ms * 8])


def load_audio(path):
    """mu-law bytes of a WAV file (converted if needed) or of a raw file."""
    with open(path, "rb") as f:
        head = f.read(12)
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return g711.wav_to_ulaw(path)
    with open(path, "rb") as f:
        return f.read()


def frames_of(audio):
    """20 ms frames; the last one padded with mu-law silence."""
    out = []
    for i in range(0, len(audio), FRAME):
        f = audio[i:i + FRAME]
        if len(f) < FRAME:
            f = f + b"\xff" * (FRAME - len(f))
        out.append(bytes(f))
    return out


def is_loud(frame, threshold=SPEECH_RMS):
    return g711.rms(g711.ulaw_decode(frame)) >= threshold


# ---------------------------------------------------------------------------
# Result


class CallResult:
    """What the caller observed.  Times are ms since the stream opened."""

    def __init__(self):
        self.call_sid = None
        self.stream_sid = None
        self.stream_url = None
        self.webhook_status = None
        self.duration_ms = 0.0
        self.frames_sent = 0
        self.caller_turns = []          # dict(start_ms, end_ms, segment)
        self.assistant_turns = []       # dict(start_ms, end_ms, played_ms, received_ms,
        #                                      cleared, latency_ms)
        self.first_audio_latency_ms = None
        self.clears = []                # dict(t_ms, played_ms_in_reply, dropped_ms,
        #                                      marks_flushed)
        self.played_ms_at_clear = None
        self.barge_in_at_ms = None
        self.marks = []                 # dict(name, recv_ms, echo_ms, flushed)
        self.marks_echoed = []
        self.received_audio = b""
        self.played_audio = b""
        self.media_messages = 0
        self.other_messages = []
        self.close_code = None
        self.close_reason = None

    @property
    def received_bytes(self):
        return len(self.received_audio)

    @property
    def received_ms(self):
        return len(self.received_audio) / 8

    @property
    def played_ms(self):
        return len(self.played_audio) / 8

    def summary(self):
        lines = ["call %s, stream %s, %.1f s, %d frames sent" % (
            self.call_sid, self.stream_sid, self.duration_ms / 1000, self.frames_sent)]
        events = [(t["start_ms"], "caller speaks  %7.0f - %7.0f ms" % (
            t["start_ms"], t["end_ms"] if t["end_ms"] is not None else -1))
            for t in self.caller_turns]
        for t in self.assistant_turns:
            lat = ("  (%.0f ms after the caller stopped)" % t["latency_ms"]
                   if t["latency_ms"] is not None else "")
            events.append((t["start_ms"], "assistant      %7.0f - %7.0f ms, played %.0f ms%s%s" % (
                t["start_ms"], t["end_ms"] if t["end_ms"] is not None else -1,
                t["played_ms"], ", CLEARED" if t["cleared"] else "", lat)))
        for c in self.clears:
            events.append((c["t_ms"], "clear at       %7.0f ms: %s ms into the reply, "
                           "%.0f ms dropped, %d marks flushed" % (
                               c["t_ms"], "%.0f" % c["played_ms_in_reply"]
                               if c["played_ms_in_reply"] is not None else "-",
                               c["dropped_ms"], len(c["marks_flushed"]))))
        if self.barge_in_at_ms is not None:
            events.append((self.barge_in_at_ms, "barge-in sent  %7.0f ms" % self.barge_in_at_ms))
        for _, line in sorted(events, key=lambda e: e[0]):
            lines.append("  " + line)
        lines.append("first audio after the caller stopped: %s" % (
            "%.0f ms" % self.first_audio_latency_ms
            if self.first_audio_latency_ms is not None else "none"))
        lines.append("received %d bytes (%.0f ms) in %d media messages, played %.0f ms" % (
            self.received_bytes, self.received_ms, self.media_messages, self.played_ms))
        flushed = sum(1 for m in self.marks if m["flushed"])
        lines.append("marks: %d received, %d echoed (%d by clear)" % (
            len(self.marks), len(self.marks_echoed), flushed))
        lines.append("stream closed: code %s %s" % (self.close_code, self.close_reason or ""))
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# The stream and the caller


class _PlayoutStream(twilio.Stream):
    """twilio.Stream whose reader hands every message to the caller instead of
    echoing marks at once."""

    def __init__(self, caller, *args, **kw):
        super().__init__(*args, **kw)
        self.caller = caller

    async def _read(self):
        try:
            async for msg in self.ws:
                try:
                    m = json.loads(msg)
                except ValueError:
                    m = {"event": "_unparsable", "data": msg}
                if m.get("event") != "media":
                    self.received.append(m)
                await self.caller._on_message(m)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason


class Caller:
    """One synthetic call.

    audio: mu-law bytes or a WAV path, spoken after lead_ms of silence.
    barge_audio: what to say when barging in (default: audio again).
    barge_in_after_ms: speak barge_audio once the first reply has played this
      long (None: never).
    seconds: hard limit on the call; hangup_after_ms: once everything was said
      and a reply after the last caller speech has finished playing, hang up
      after this much quiet (None: stay until `seconds`).
    wait_greeting_ms: if set, the caller first listens: when the assistant
      speaks first (within this many ms) the caller waits for that greeting to
      finish, then lead_ms of silence, then speaks; when it does not, the
      caller speaks after this wait."""

    def __init__(self, audio, barge_audio=None, barge_in_after_ms=None, seconds=30.0,
                 lead_ms=300, hangup_after_ms=1500, turn_gap_ms=300, log=None,
                 speech_rms=SPEECH_RMS, wait_greeting_ms=None):
        self.audio = load_audio(audio) if isinstance(audio, str) else bytes(audio or b"")
        if barge_audio is None:
            self.barge_audio = self.audio
        else:
            self.barge_audio = (load_audio(barge_audio) if isinstance(barge_audio, str)
                                else bytes(barge_audio))
        self.barge_in_after_ms = barge_in_after_ms
        self.seconds = seconds
        self.lead_ms = lead_ms
        self.hangup_after_ms = hangup_after_ms
        self.turn_gap_ms = turn_gap_ms
        self.speech_rms = speech_rms
        self.wait_greeting_ms = wait_greeting_ms
        self._first_said = False
        self.log = log
        self.result = CallResult()
        self.stream = None
        self.t0 = None
        self._mic = collections.deque()
        self._segments = 0
        self._seg_info = {}
        self._queue = collections.deque()
        self._budget = 0.0
        self._last_tick = None
        self._drained_at = None
        self._turn = None
        self._barged = False
        self._received = bytearray()
        self._played = bytearray()
        self._outbox = collections.deque()
        self._out_lock = asyncio.Lock()
        self._pending_marks = {}
        self._done = asyncio.Event()

    # --- helpers ---

    def now_ms(self):
        return (time.monotonic() - self.t0) * 1000

    def _say(self, text):
        if self.log:
            self.log("%8.0f ms  %s" % (self.now_ms(), text))

    def speak(self, audio, speech=True):
        """Queues audio (mu-law bytes) on the microphone.  Its loud part counts
        as a caller turn unless speech is False."""
        frames = frames_of(audio)
        if not speech:
            for f in frames:
                self._mic.append((None, 0, f))
            return None
        self._segments += 1
        seg = self._segments
        loud = [i for i, f in enumerate(frames) if is_loud(f, self.speech_rms)]
        if loud:
            self._seg_info[seg] = {"first": loud[0], "last": loud[-1], "turn": None}
        for i, f in enumerate(frames):
            self._mic.append((seg, i, f))
        return seg

    # --- playout clock ---

    def _advance(self, now):
        """Plays queued audio up to `now`; collects marks that became due."""
        if self._last_tick is None:
            self._last_tick = now
        self._budget += (now - self._last_tick) * 8000
        self._last_tick = now
        for _ in range(len(self._queue) + 1):
            if not self._queue:
                break
            head = self._queue[0]
            if head[0] == "mark":
                self._queue.popleft()
                self._echo(head[1], now, flushed=False)
                continue
            data = head[1]
            take = min(len(data), int(self._budget))
            if take <= 0:
                break
            self._played += data[:take]
            if self._turn is not None:
                self._turn["played_bytes"] += take
            del data[:take]
            self._budget -= take
            if data:
                break
            self._queue.popleft()
        if not any(e[0] == "audio" for e in self._queue):
            if self._drained_at is None and self._turn is not None:
                self._drained_at = now - self._budget / 8000
            self._budget = 0.0
        self._check_barge_in()

    def _queued_audio_bytes(self):
        return sum(len(e[1]) for e in self._queue if e[0] == "audio")

    def _echo(self, mark, now, flushed):
        name = mark.get("name") if isinstance(mark, dict) else None
        rec = self._pending_marks.pop(id(mark), None)
        if rec is not None:
            rec["echo_ms"] = (now - self.t0) * 1000
            rec["flushed"] = flushed
        self.result.marks_echoed.append(name)
        self._outbox.append(mark)

    async def _flush(self):
        async with self._out_lock:
            for _ in range(len(self._outbox)):
                if not self._outbox:
                    break
                mark = self._outbox.popleft()
                try:
                    await self.stream.ws.send(json.dumps({
                        "event": "mark", "sequenceNumber": self.stream._next_seq(),
                        "streamSid": self.stream.ssid, "mark": mark}))
                except websockets.ConnectionClosed:
                    return

    def _start_turn(self, now):
        ends = [t["end_ms"] for t in self.result.caller_turns if t["end_ms"] is not None]
        last_speech_end = ends[-1] if ends else None
        start_ms = (now - self.t0) * 1000
        prev_end = (self.result.assistant_turns[-1]["end_ms"]
                    if self.result.assistant_turns else None)
        latency = None
        if last_speech_end is not None and (prev_end is None or last_speech_end >= prev_end):
            latency = start_ms - last_speech_end
        self._turn = {"start_ms": start_ms, "end_ms": None, "played_bytes": 0,
                      "received_bytes": 0, "cleared": False, "latency_ms": latency}
        self.result.assistant_turns.append(self._turn)
        if latency is not None and self.result.first_audio_latency_ms is None:
            self.result.first_audio_latency_ms = latency
        self._say("assistant audio starts%s" % (
            " (%.0f ms after the caller stopped)" % latency if latency is not None else ""))

    def _end_turn(self, end, cleared=False):
        t = self._turn
        if t is None:
            return
        t["end_ms"] = (end - self.t0) * 1000
        t["cleared"] = cleared
        self._turn = None
        self._drained_at = None
        self._say("assistant audio ends, %.0f ms played%s" % (
            t["played_bytes"] / 8, " (cleared)" if cleared else ""))

    def _check_barge_in(self):
        if self.barge_in_after_ms is None or self._barged or self._turn is None:
            return
        # the first reply to the caller's speech (the first audio at all when
        # the caller says nothing)
        replies = [t for t in self.result.assistant_turns
                   if t["latency_ms"] is not None or not self.audio]
        if not replies or replies[0] is not self._turn:
            return
        if self._turn["played_bytes"] / 8 >= self.barge_in_after_ms:
            self.barge_in()

    def playout(self):
        """(ms played so far, ms received and waiting to play)."""
        return len(self._played) / 8, self._queued_audio_bytes() / 8

    def barge_in(self):
        """Speaks barge_audio now, over whatever is playing (for a caller
        driven from outside: barge_in_after_ms picks the first reply)."""
        self._barged = True
        self.result.barge_in_at_ms = self.now_ms()
        self._cut_microphone()
        self.speak(self.barge_audio)
        played = self._turn["played_bytes"] / 8 if self._turn is not None else 0
        self._say("barging in after %.0f ms of the reply" % played)

    async def _on_message(self, m):
        now = time.monotonic()
        self._advance(now)
        ev = m.get("event")
        if ev == "media":
            payload = (m.get("media") or {}).get("payload", "")
            try:
                data = base64.b64decode(payload, validate=True)
            except ValueError:
                data = b""
            self.result.media_messages += 1
            self._received += data
            if self._turn is None:
                self._start_turn(now)
            self._drained_at = None
            self._turn["received_bytes"] += len(data)
            if not any(e[0] == "audio" for e in self._queue):
                self._budget = 0.0
                self._last_tick = now
            self._queue.append(["audio", bytearray(data)])
        elif ev == "mark":
            mark = m.get("mark") if isinstance(m.get("mark"), dict) else {}
            rec = {"name": mark.get("name"), "recv_ms": (now - self.t0) * 1000,
                   "echo_ms": None, "flushed": False}
            self.result.marks.append(rec)
            self._pending_marks[id(mark)] = rec
            self._queue.append(["mark", mark])
            self._advance(now)
        elif ev == "clear":
            played = self._turn["played_bytes"] / 8 if self._turn is not None else None
            dropped = self._queued_audio_bytes() / 8
            flushed = []
            for _ in range(len(self._queue)):
                e = self._queue.popleft()
                if e[0] == "mark":
                    flushed.append(e[1].get("name"))
                    self._echo(e[1], now, flushed=True)
            self._budget = 0.0
            self.result.clears.append({"t_ms": (now - self.t0) * 1000,
                                       "played_ms_in_reply": played, "dropped_ms": dropped,
                                       "marks_flushed": flushed})
            if self.result.played_ms_at_clear is None and played is not None:
                self.result.played_ms_at_clear = played
            self._say("clear: %s ms into the reply, %.0f ms dropped, %d marks flushed" % (
                "%.0f" % played if played is not None else "-", dropped, len(flushed)))
            self._end_turn(now, cleared=True)
        else:
            self.result.other_messages.append(m)
        await self._flush()

    # --- loops ---

    async def _ticker(self):
        limit = int(self.seconds * 1000 / 5) + 100
        for _ in range(limit):
            if self._done.is_set():
                return
            now = time.monotonic()
            self._advance(now)
            if (self._turn is not None and self._drained_at is not None and
                    now - self._drained_at >= self.turn_gap_ms / 1000):
                self._end_turn(self._drained_at)
            await self._flush()
            await asyncio.sleep(0.005)

    def _finished(self, now):
        if self.hangup_after_ms is None or self._mic or not self._first_said:
            return False
        if self.barge_in_after_ms is not None and not self._barged:
            return False
        turns = self.result.assistant_turns
        callers = self.result.caller_turns
        if not turns or turns[-1]["end_ms"] is None:
            return False
        if callers and (callers[-1]["end_ms"] is None or
                        turns[-1]["start_ms"] < callers[-1]["end_ms"]):
            return False
        return (now - self.t0) * 1000 - turns[-1]["end_ms"] >= self.hangup_after_ms

    async def _microphone(self):
        n = 0
        t_start = time.monotonic()
        for _ in range(int(self.seconds * 50) + 1):
            now = time.monotonic()
            if self._done.is_set() or self.stream.ws.closed:
                return
            if now - self.t0 >= self.seconds or self._finished(now):
                return
            if not self._first_said and self._may_speak(now):
                self._first_said = True
                if self.lead_ms:
                    self.speak(b"\xff" * int(self.lead_ms * 8), speech=False)
                if self.audio:
                    self.speak(self.audio)
            seg, idx, frame = self._mic.popleft() if self._mic else (None, 0, SILENCE_FRAME)
            info = self._seg_info.get(seg)
            t_ms = (now - self.t0) * 1000
            if info is not None and idx == info["first"]:
                turn = {"start_ms": t_ms, "end_ms": None, "segment": seg}
                info["turn"] = turn
                self.result.caller_turns.append(turn)
                self._say("caller starts speaking")
            if info is not None and info.get("turn") and idx <= info["last"]:
                info["turn"]["_last"] = t_ms + 20
                if idx == info["last"]:
                    info["turn"]["end_ms"] = t_ms + 20
                    self._say("caller stops speaking")
            self._payload = base64.b64encode(frame).decode()
            try:
                await self.stream.send_media(n)
            except websockets.ConnectionClosed:
                return
            self.result.frames_sent += 1
            n += 1
            delay = t_start + n * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    def _may_speak(self, now):
        if self.wait_greeting_ms is None:
            return True
        turns = self.result.assistant_turns
        if turns:
            return turns[0]["end_ms"] is not None
        return (now - self.t0) * 1000 >= self.wait_greeting_ms

    def _cut_microphone(self):
        """Drops what is left on the microphone; a turn cut short ends at its
        last loud frame sent."""
        self._mic.clear()
        for info in self._seg_info.values():
            t = info.get("turn")
            if t is not None and t["end_ms"] is None:
                t["end_ms"] = t.get("_last", t["start_ms"])

    # --- running a call ---

    async def run(self, base, route=None, caller="+14155550123", n=1, auth_token=None,
                  public_url=None, to="+15005550006"):
        """The webhook, then the stream.  Returns a CallResult."""
        sid = twilio.call_sid(n)
        wh = await asyncio.to_thread(twilio.post_voice, base, sid, caller, to, route,
                                     auth_token, public_url)
        self.result.webhook_status = wh.status
        if wh.stream_url is None:
            raise AssertionError("no stream offered: %s %s" % (wh.status, wh.body))
        return await self.run_stream(wh.stream_url, sid, twilio.stream_sid(n), wh.params)

    async def run_stream(self, url, call_sid, stream_sid, params=None):
        """The Media Stream part only, against the given WebSocket URL."""
        r = self.result
        r.call_sid, r.stream_sid, r.stream_url = call_sid, stream_sid, url
        self.stream = _PlayoutStream(self, url, call_sid, stream_sid, params or {},
                                     frame=lambda n: self._payload)
        self._payload = base64.b64encode(SILENCE_FRAME).decode()
        await self.stream.open()
        self.t0 = time.monotonic()
        self._last_tick = self.t0
        ticker = asyncio.ensure_future(self._ticker())
        try:
            await self._microphone()
        finally:
            self._done.set()
            try:
                await asyncio.wait_for(ticker, 2)
            except Exception:
                pass
            now = time.monotonic()
            if self._turn is not None:
                self._end_turn(self._drained_at or now)
            for st in r.caller_turns:
                if st["end_ms"] is None:
                    st["end_ms"] = st.get("_last")
                st.pop("_last", None)
            if not self.stream.ws.closed:
                try:
                    await self.stream.stop()
                except Exception:
                    pass
            else:
                await self.stream.close()
        r.duration_ms = (time.monotonic() - self.t0) * 1000
        for t in r.assistant_turns:
            t["played_ms"] = t.pop("played_bytes") / 8
            t["received_ms"] = t.pop("received_bytes") / 8
        r.received_audio = bytes(self._received)
        r.played_audio = bytes(self._played)
        r.close_code = self.stream.close_code
        r.close_reason = self.stream.close_reason
        return r


async def place_call(base, audio, out_wav=None, log=None, route=None,
                     caller="+14155550123", n=1, auth_token=None, public_url=None, **kw):
    """Convenience: one call with a Caller; saves the received audio if asked."""
    c = Caller(audio, log=log, **kw)
    r = await c.run(base, route=route, caller=caller, n=n, auth_token=auth_token,
                    public_url=public_url)
    if out_wav:
        g711.write_wav_ulaw(out_wav, r.received_audio)
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description="A synthetic caller for voxrelay.")
    ap.add_argument("--base", required=True, help="the daemon's base URL, http://host:port")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--wav", help="mu-law 8 kHz WAV (or raw mu-law) to speak")
    src.add_argument("--text", help="a phrase, spoken with espeak-ng")
    ap.add_argument("--barge-wav", help="what to say when barging in (default: the same)")
    ap.add_argument("--barge-text", help="a phrase to say when barging in")
    ap.add_argument("--barge-in-after-ms", type=int)
    ap.add_argument("--out", help="save the received audio here (mu-law WAV)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--lead-ms", type=int, default=300)
    ap.add_argument("--wait-greeting-ms", type=int,
                    help="listen first: let a greeting finish before speaking")
    ap.add_argument("--hangup-after-ms", type=int, default=1500)
    ap.add_argument("--route")
    ap.add_argument("--caller", default="+14155550123")
    ap.add_argument("--auth-token", help="sign the webhook with this Twilio auth token "
                    "(default: the test harness's, twilio.TEST_AUTH_TOKEN; \"\" for none)")
    ap.add_argument("--public-url", help="the URL Twilio would sign (default: --base)")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)

    tmpdir = tempfile.mkdtemp(prefix="vr-caller-")
    try:
        wav = args.wav or make_phrase_wav(args.text, os.path.join(tmpdir, "say.wav"))
        barge = args.barge_wav
        if args.barge_text:
            barge = make_phrase_wav(args.barge_text, os.path.join(tmpdir, "barge.wav"))
        log = None if args.quiet else (lambda s: print(s, flush=True))
        r = asyncio.run(place_call(args.base, wav, out_wav=args.out, log=log,
                                   route=args.route, caller=args.caller,
                                   auth_token=args.auth_token, public_url=args.public_url,
                                   barge_audio=barge,
                                   barge_in_after_ms=args.barge_in_after_ms,
                                   seconds=args.seconds, lead_ms=args.lead_ms,
                                   wait_greeting_ms=args.wait_greeting_ms,
                                   hangup_after_ms=args.hangup_after_ms))
        print(r.summary())
        if args.out:
            print("received audio saved to %s" % args.out)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    main()
