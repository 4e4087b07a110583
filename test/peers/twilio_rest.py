"""A fake Twilio REST API: the goodbye SMS (POST
/2010-04-01/Accounts/{AccountSid}/Messages.json, answered 201 with a Message
resource, protocols.md 6.4) and updates of a live call (POST
.../Calls/{CallSid}.json with Status=completed, or Twiml holding a
<Response>, answered 200 with a Call resource), with HTTP basic auth and a
form body, or with the failures a test asks for.  Records every SMS request
in `requests` and every call update in `call_updates`.

Outbound calls (protocols.md 6.2): POST .../Calls.json is answered 201 with
a Call resource, and then the call is played as Twilio would: the status
callbacks in order (signed), the Url requested with Direction=outbound-api
(signed), the callee on the Media Stream of the TwiML it got back, the
AsyncAmd verdict, and the end.  What happens is an outcome, chosen per
called number and per attempt (`plan()`, or `plans=` at construction), else
`outcome` for every call:

  "human"      answered; the callee's audio on the stream; AMD `human`
               after `amd_seconds`; hangs up after `callee_seconds` (or
               when the daemon ends the call)
  "machine"    answered by a machine: its greeting on the stream for
               `machine_seconds`, then the beep; the AMD verdict is
               `machine_end_beep` when the request asked for
               MachineDetection=DetectMessageEnd (posted at the beep) and
               `machine_start` when it asked for Enable (posted after
               `amd_seconds`); the stream stays up after the beep to
               record a message (the media received then is the call's
               `recorded`) until the daemon updates or ends the call, or
               closes the stream, or `voicemail_seconds` pass; a <Say> in
               the update is the call's `voicemail`
  "no-answer"  initiated, ringing for `ring_seconds`, then the final
               callback with CallStatus=no-answer; the Url is never fetched
  "busy"       initiated, ringing, CallStatus=busy
  "failed"     initiated, CallStatus=failed
  429, 500     (or any HTTP status, int or its string) that Calls.json
               request is answered with it and no call is created; one
               entry of a plan is consumed by each request, so the daemon's
               retry takes the next one

    rest.plan("+14155550123", "busy", "no-answer", "human")
    rest.plan("+14155550124", 429, "human")   # a retry then an answer
    rest.count("+14155550123")                # Calls.json requests to it
    rest.calls_to("+14155550123")             # its Calls, in order
    await rest.wait_ended(2)                  # two calls over

An update of an answered human call is followed as Twilio follows it: the
stream ends, then the new TwiML runs: <Say> is heard (`said`), <Hangup>
ends the call, a <Dial> is noted (`dials`) and its action posted with
`dial_status` (default "no-answer") and `dial_seconds`, a <Redirect> or an
action's answer is fetched (signed, as the Url was) and run, and a
<Connect><Stream> opens a new stream (`streams`) with the callee on it
again.

GET .../Calls/{CallSid}.json answers a created call as Twilio does: its sid,
status (queued, ringing, in-progress, then its final one), to, from,
direction, answered_by (the AMD verdict), duration, start_time and end_time
(RFC 2822), with basic auth checked, 404 for a call it never created, and
`fail_fetches_first` queries answered `fail_status` first (and
`fail_lists_first` lists of calls); every query is in
`fetches`.  `drop_final(number)` makes the next call to number end without
its final status callback (as when Twilio's post was lost): the call is
over at the fake, and only a query can tell.

The answer to a create can come late, as Twilio's sometimes does:
`answer_create_after` holds it until the call posted that status (or
"end": until it is over), so its callbacks reach the daemon first;
`create_delay` holds it that many seconds more (past the client's timeout,
the call made all the same); `answer_made_with` (an HTTP status) answers
the next create that made its call with that error instead, once.  GET
.../Calls.json lists the calls (newest first, `date_created` in RFC 2822)
with Twilio's filters `To`, `StartTime>=` (a day, by the call's start
time: a call still queued or initiated has none and is left out, as at
Twilio; `queue_seconds` keeps a call queued that long after initiated)
and `PageSize`; each Call
resource shows the `url` it was created with unless `list_shows_url` is
false (Twilio's does not); `lookups` keeps those requests.

Every created call is a `Call` in `calls` (by CallSid) with its outcome,
the status callbacks posted (`statuses`), the AMD verdict, the stream, the
call updates it got and `ended` (set once its final callback was posted).
`creates` keeps every Calls.json request and `events` the calls' events as
(CallSid, what, detail, HTTP status of our callback)."""

import asyncio
import base64
import os
import sys
import json
import time
import re
import urllib.parse
import xml.etree.ElementTree as ET

import twilio


class Request:
    def __init__(self, method, path, headers, body):
        self.t = time.monotonic()
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
        self.auth = None
        a = headers.get("authorization", "")
        if a.startswith("Basic "):
            try:
                self.auth = base64.b64decode(a[6:]).decode()
            except ValueError:
                pass


class FakeTwilioRest:
    """fail_first: answer this many requests with fail_status first;
    fail_status: that status (500, 429, 400...)."""

    def __init__(self, account_sid, auth_token, fail_first=0, fail_status=500,
                 fail_calls_first=0, call_delay=0.0, fail_creates_first=0,
                 outcome="human", callee_seconds=2.0, sid_base=0xabc000,
                 plans=None, ring_seconds=0.3, amd_seconds=0.5,
                 machine_seconds=1.0, voicemail_seconds=8.0, amd_early=False,
                 dial_status="no-answer", dial_seconds=0, fail_fetches_first=0,
                 answer_create_after=None, create_delay=0.0,
                 answer_made_with=None, list_shows_url=True,
                 start_delay=0.0):
        """fail_calls_first: call updates answered fail_status first;
        call_delay: seconds before a call update is answered;
        fail_creates_first: Calls.json requests answered fail_status first
        (whatever the number); plans: {number: [outcome, ...]} (see
        plan()); the *_seconds: the outcomes' timings (module doc);
        amd_early: a human's verdict is posted as the call is answered,
        before the Url is asked for (AsyncAmd runs beside it);
        dial_status, dial_seconds: how a <Dial> in a call update ends
        (DialCallStatus, DialCallDuration posted to its action);
        fail_fetches_first: GET Calls/{sid}.json queries answered
        fail_status first."""
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.fail_calls_first = fail_calls_first
        self.call_delay = call_delay
        self.requests = []
        self.call_updates = []
        self.fail_creates_first = fail_creates_first
        self.outcome = outcome
        self.callee_seconds = callee_seconds
        self.creates = []
        self.events = []            # (CallSid, what, detail)
        self.streams = []
        self.tasks = []
        self.n_calls = 0
        self.sid_base = sid_base    # CallSids are CA + (sid_base + n) in hex
        self.plans = {k: list(v) for k, v in (plans or {}).items()}
        self.calls = {}             # CallSid -> Call, in creation order
        self.ring_seconds = ring_seconds
        self.amd_seconds = amd_seconds
        self.machine_seconds = machine_seconds
        self.voicemail_seconds = voicemail_seconds
        self.amd_early = amd_early
        self.dial_status = dial_status
        self.dial_seconds = dial_seconds
        self.fail_fetches_first = fail_fetches_first
        self.fail_lists_first = 0   # GET Calls.json answered fail_status
        self.queue_seconds = 0      # a call stays queued this long
        self.fetches = []           # GET Calls/{sid}.json requests
        self.drops = {}             # number -> final callbacks to drop
        self.answer_create_after = answer_create_after
        self.create_delay = create_delay
        # seconds between a stream's upgrade and its `start` (a slow Twilio)
        self.start_delay = start_delay
        self.answer_made_with = answer_made_with
        self.list_shows_url = list_shows_url
        self.lookups = []
        self.server = None
        self.port = None

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def messages(self):
        """The requests that were accepted."""
        return [r for r in self.requests if getattr(r, "status", 0) == 201]

    def plan(self, number, *outcomes):
        """The next Calls.json requests to number get these outcomes, one
        each, in order (after any planned before); then `outcome`."""
        for o in outcomes:
            if _outcome(o) is None:
                raise ValueError("unknown outcome %r" % (o,))
        self.plans.setdefault(number, []).extend(outcomes)
        return self

    def drop_final(self, number, n=1):
        """The next n calls to number end without their final status
        callback: over at the fake, never said to the daemon."""
        self.drops[number] = self.drops.get(number, 0) + n
        return self

    def fetched(self, sid=None):
        """GET Calls/{sid}.json requests (for sid, or all)."""
        return [r for r in self.fetches if sid is None or r.path.endswith(
            "/Calls/%s.json" % sid)]

    def count(self, number=None):
        """Calls.json requests (answered or refused) to number, or all."""
        return sum(1 for r in self.creates
                   if number is None or r.form.get("To", [None])[0] == number)

    def calls_to(self, number):
        """The calls created to number, oldest first."""
        return [c for c in self.calls.values() if c.to == number]

    def ended(self, number=None):
        return [c for c in self.calls.values()
                if c.ended and (number is None or c.to == number)]

    def end_ringing(self, sid):
        """A "no-answer" call still ringing gives up now, not at the end
        of ring_seconds."""
        self.calls[sid].stop_ringing.set()

    async def wait_ended(self, n=1, number=None, timeout=20.0):
        """Until n calls (to number) are over; the Calls, or AssertionError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.ended(number)
            if len(done) >= n:
                return done
            await asyncio.sleep(0.05)
        raise AssertionError("%d of %d calls%s over in %.0f s" % (
            len(self.ended(number)), n, " to " + number if number else "",
            timeout))

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()

    async def _serve(self, reader, writer):
        try:
            for _ in range(100):    # keep-alive, bounded
                line = await asyncio.wait_for(reader.readline(), 10)
                if not line:
                    break
                method, path, _ = line.decode().split(" ", 2)
                headers = {}
                while True:
                    h = await asyncio.wait_for(reader.readline(), 10)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, v = h.decode().split(":", 1)
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "0"))
                body = await asyncio.wait_for(reader.readexactly(n), 10) if n else b""
                req = Request(method, path, headers, body)
                route, _, query = path.partition("?")
                if route.endswith("/Calls.json") and method == "GET":
                    self.lookups.append(req)
                    status, doc = self._answer_list(req, route, query)
                elif path.endswith("/Calls.json"):
                    self.creates.append(req)
                    status, doc = self._answer_create(req)
                    call = getattr(req, "call", None)
                    if call is not None:
                        status, doc = await self._late_create(call, status, doc)
                elif "/Calls/" in path and method == "GET":
                    self.fetches.append(req)
                    status, doc = self._answer_fetch(req)
                elif "/Calls/" in path:
                    self.call_updates.append(req)
                    if self.call_delay:
                        await asyncio.sleep(self.call_delay)
                    status, doc = self._answer_call(req)
                else:
                    self.requests.append(req)
                    status, doc = self._answer(req)
                req.status = status
                req.answered_at = time.monotonic()
                out = json.dumps(doc).encode()
                writer.write(("HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                              "Content-Length: %d\r\n\r\n" % (status, len(out))).encode()
                             + out)
                await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def _late_create(self, call, status, doc):
        """A created call's answer, held as the options say."""
        after = self.answer_create_after
        if after is not None:
            deadline = time.monotonic() + 15
            while (time.monotonic() < deadline and not call.ended and
                   after not in [st for st, _ in call.statuses]):
                await asyncio.sleep(0.02)
        if self.create_delay:
            await asyncio.sleep(self.create_delay)
        if self.answer_made_with is not None:
            status, doc = _refusal(self.answer_made_with)
            self.answer_made_with = None
        return status, doc

    def _answer_list(self, req, route, query):
        """GET Calls.json: the first page of the calls that match."""
        want = "/2010-04-01/Accounts/%s/Calls.json" % self.account_sid
        if req.auth != "%s:%s" % (self.account_sid, self.auth_token):
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        if route != want:
            return 404, {"code": 20404, "message": "not found", "status": 404}
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        req.query = q
        if self.fail_lists_first > 0:
            self.fail_lists_first -= 1
            return _refusal(self.fail_status)
        to = q.get("To", [None])[0]
        since = q.get("StartTime>", [None])[0]
        size = int(q.get("PageSize", ["50"])[0])
        # StartTime>= is Twilio's: by the call's start time, which a call
        # still queued (nothing past initiated) does not have yet
        calls = [c for c in reversed(list(self.calls.values()))
                 if (to is None or c.to == to) and
                 (since is None or (c.started and time.strftime(
                     "%Y-%m-%d", time.gmtime(c.start_time)) >= since))]
        out = []
        for c in calls[:size]:
            r = {"sid": c.sid, "account_sid": self.account_sid, "to": c.to,
                 "from": c.form["From"][0], "direction": "outbound-api",
                 "status": c.statuses[-1][0] if c.statuses else "queued",
                 "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                                               time.gmtime(c.created))}
            if self.list_shows_url:
                r["url"] = c.form["Url"][0]
            out.append(r)
        return 200, {"calls": out, "page": 0, "page_size": size,
                     "next_page_uri": None, "uri": route + "?" + query}

    def _answer(self, req):
        want = "/2010-04-01/Accounts/%s/Messages.json" % self.account_sid
        if req.auth != "%s:%s" % (self.account_sid, self.auth_token):
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        if req.method != "POST" or req.path != want:
            return 404, {"code": 20404, "message": "not found", "status": 404}
        failed_so_far = sum(1 for r in self.requests[:-1]
                            if getattr(r, "status", 0) == self.fail_status)
        if failed_so_far < self.fail_first:
            return self.fail_status, {"code": 20500, "message": "Internal error",
                                      "status": self.fail_status}
        for k in ("To", "From", "Body"):
            if k not in req.form:
                return 400, {"code": 21604, "message": "%s is required" % k,
                             "status": 400}
        return 201, {"sid": "SM" + "5" * 32, "status": "queued",
                     "to": req.form["To"][0], "from": req.form["From"][0],
                     "body": req.form["Body"][0], "num_segments": "1"}

    def _answer_call(self, req):
        """An update of a live call: Status=completed, or Twiml whose root is
        <Response> (a Dial must name a number or a <Sip>); anything else is
        Twilio's 400."""
        m = re.fullmatch(r"/2010-04-01/Accounts/%s/Calls/(CA[0-9a-f]{32})\.json"
                         % self.account_sid, req.path)
        if req.auth != "%s:%s" % (self.account_sid, self.auth_token):
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        if req.method != "POST" or m is None:
            return 404, {"code": 20404, "message": "not found", "status": 404}
        failed_so_far = sum(1 for r in self.call_updates[:-1]
                            if getattr(r, "status", 0) == self.fail_status)
        if failed_so_far < self.fail_calls_first:
            return self.fail_status, {"code": 20500, "message": "Internal error",
                                      "status": self.fail_status}
        status = req.form.get("Status", [None])[0]
        twiml = req.form.get("Twiml", [None])[0]
        if (status is None) == (twiml is None):
            return 400, {"code": 21220, "message": "one of Status or Twiml",
                         "status": 400}
        if status is not None and status not in ("completed", "canceled"):
            return 400, {"code": 21220, "message": "bad Status", "status": 400}
        if twiml is not None:
            try:
                root = ET.fromstring(twiml)
            except ET.ParseError as e:
                return 400, {"code": 12100, "message": "Twiml: %s" % e, "status": 400}
            if root.tag != "Response":
                return 400, {"code": 12100, "message": "Twiml: no Response",
                             "status": 400}
            req.twiml = root
        call = self.calls.get(m.group(1))
        if call is not None:
            call.updates.append(req)
            call.updated.set()
        return 200, {"sid": m.group(1), "status": status or "in-progress",
                     "account_sid": self.account_sid}

    def _answer_fetch(self, req):
        """GET .../Calls/{CallSid}.json: the Call resource as it is now."""
        m = re.fullmatch(r"/2010-04-01/Accounts/%s/Calls/(CA[0-9a-f]{32})\.json"
                         % self.account_sid, req.path)
        if req.auth != "%s:%s" % (self.account_sid, self.auth_token):
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        if m is None or m.group(1) not in self.calls:
            return 404, {"code": 20404, "message": "The requested resource %s "
                         "was not found" % req.path, "status": 404}
        failed_so_far = sum(1 for r in self.fetches[:-1]
                            if getattr(r, "status", 0) == self.fail_status)
        if failed_so_far < self.fail_fetches_first:
            return _refusal(self.fail_status)
        return 200, self.calls[m.group(1)].resource(self.account_sid)

    def _answer_create(self, req):
        want = "/2010-04-01/Accounts/%s/Calls.json" % self.account_sid
        if req.auth != "%s:%s" % (self.account_sid, self.auth_token):
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        if req.method != "POST" or req.path != want:
            return 404, {"code": 20404, "message": "not found", "status": 404}
        if len(self.creates) <= self.fail_creates_first:
            return _refusal(self.fail_status)
        for k in ("To", "From", "Url"):
            if k not in req.form:
                return 400, {"code": 21205, "message": "%s is required" % k,
                             "status": 400}
        to = req.form["To"][0]
        queue = self.plans.get(to)
        outcome = _outcome(queue.pop(0) if queue else self.outcome)
        req.outcome = outcome
        if isinstance(outcome, int):
            return _refusal(outcome)
        self.n_calls += 1
        sid = "CA%032x" % (self.sid_base + self.n_calls)
        req.sid = sid
        call = Call(sid, to, outcome, req.form)
        if self.drops.get(to, 0) > 0:
            self.drops[to] -= 1
            call.drop_final = True
        req.call = call
        self.calls[sid] = call
        self.tasks.append(asyncio.ensure_future(self._play(call)))
        return 201, {"sid": sid, "status": "queued", "to": to,
                     "from": req.form["From"][0], "direction": "outbound-api",
                     "account_sid": self.account_sid}

    async def _post(self, url, params):
        """A signed form POST, as Twilio makes it; (status, body)."""
        import urllib.request
        body = urllib.parse.urlencode(params).encode()
        rq = urllib.request.Request(url, data=body, method="POST")
        rq.add_header("Content-Type", "application/x-www-form-urlencoded")
        rq.add_header("X-Twilio-Signature",
                      twilio.twilio_signature(self.auth_token, url, params))

        def go():
            try:
                with urllib.request.urlopen(rq, timeout=5) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()
        return await asyncio.get_running_loop().run_in_executor(None, go)

    async def _status(self, call, status, extra=()):
        """The status callback of an event the request asked for; the final
        one always (Twilio's `completed` event carries busy, no-answer,
        failed too)."""
        form = call.form
        url = form.get("StatusCallback", [None])[0]
        events = form.get("StatusCallbackEvent", [])
        ev = {"queued": "initiated", "in-progress": "answered"}.get(status, status)
        final = status in ("completed", "busy", "no-answer", "failed", "canceled")
        # the resource changes whether or not the callback gets through
        call.status = {"initiated": "queued"}.get(status, status)
        if final:
            call.end_time = time.time()
            call.duration = dict(extra).get("CallDuration", "0")
            if call.drop_final:
                call.seq += 1
                self.events.append((call.sid, "status_dropped", status, 0))
                return
        if url is None or (ev not in events and not final):
            return
        call.seq += 1
        params = [("AccountSid", self.account_sid), ("CallSid", call.sid),
                  ("CallStatus", status), ("Direction", "outbound-api"),
                  ("From", form["From"][0]), ("To", form["To"][0]),
                  ("SequenceNumber", str(call.seq))] + list(extra)
        code, _ = await self._post(url, params)
        call.statuses.append((status, code))
        self.events.append((call.sid, "status", status, code))

    async def _amd(self, call, verdict):
        url = call.form.get("AsyncAmdStatusCallback", [None])[0]
        if url is None or not call.form.get("MachineDetection"):
            return
        call.amd_at = time.monotonic()     # as it is sent
        code, _ = await self._post(url, [
            ("AccountSid", self.account_sid), ("CallSid", call.sid),
            ("AnsweredBy", verdict), ("MachineDetectionDuration", "1800")])
        call.verdict = verdict
        self.events.append((call.sid, "amd", verdict, code))

    async def _hold(self, call, seconds, stream=None, start_frame=0):
        """Play the stream (or wait, with none) for seconds, or until the
        daemon updates the call or closes the stream; the next frame."""
        n = start_frame
        t0 = time.monotonic()
        end = t0 + seconds
        while time.monotonic() < end and len(call.updates) <= call.handled:
            if stream is not None:
                if stream.closed_at is not None:
                    break
                try:
                    await stream.send_media(n)
                except Exception:       # the daemon closed it
                    break
                n += 1
                delay = t0 + (n - start_frame) * 0.02 - time.monotonic()
            else:
                delay = min(0.02, end - time.monotonic())
            if delay > 0:
                await asyncio.sleep(delay)
        return n

    async def _play(self, call):
        sid, form = call.sid, call.form
        t_answer = None
        try:
            await asyncio.sleep(0.05)
            await self._status(call, "initiated")
            if self.queue_seconds:
                await asyncio.sleep(self.queue_seconds)
            if call.outcome == "failed":
                await self._status(call, "failed", [("CallDuration", "0"),
                                                     ("SipResponseCode", "404")])
                return
            await self._status(call, "ringing")
            if call.outcome in ("busy", "no-answer"):
                if call.outcome == "no-answer":
                    try:
                        await asyncio.wait_for(call.stop_ringing.wait(),
                                               self.ring_seconds)
                    except asyncio.TimeoutError:
                        pass
                await self._status(call, call.outcome, [
                    ("CallDuration", "0"), ("SipResponseCode",
                                            "486" if call.outcome == "busy"
                                            else "487")])
                return
            t_answer = time.monotonic()
            await self._status(call, "in-progress")
            if call.outcome == "human" and self.amd_early:
                await self._amd(call, "human")
                call.amd_early = True
            code, body = await self._post(form["Url"][0], [
                ("AccountSid", self.account_sid), ("CallSid", sid),
                ("CallStatus", "in-progress"), ("Direction", "outbound-api"),
                ("From", form["From"][0]), ("To", form["To"][0]),
                ("Caller", form["From"][0]), ("Called", form["To"][0])])
            self.events.append((sid, "twiml", code, body))
            wh = twilio.Webhook(code, body)
            stream = None
            if wh.stream_url is not None:
                stream = await self._open_stream(call, wh)
            if call.outcome == "human":
                n = 0
                if not call.amd_early:
                    n = await self._hold(call, self.amd_seconds, stream)
                    await self._amd(call, "human")
                await self._hold(call, self.callee_seconds, stream, n)
                stream = await self._follow(call, stream)
            else:
                await self._machine(call, stream)
            if stream is not None:
                if stream.closed_at is None:
                    await stream.stop()
            await self._status(call, "completed", [
                ("CallDuration", str(int(time.monotonic() - t_answer) + 1))])
        except Exception as e:      # a test reads events; say what broke
            self.events.append((sid, "error", repr(e), 0))
            # an answered call whose TwiML or stream failed still ends at
            # Twilio, which says so in its final callback
            if t_answer is not None:
                try:
                    await self._status(call, "completed", [
                        ("CallDuration",
                         str(int(time.monotonic() - t_answer) + 1))])
                except Exception as e2:
                    self.events.append((sid, "error", repr(e2), 0))
        finally:
            call.ended = True

    async def _open_stream(self, call, wh):
        """The <Connect><Stream> of a TwiML answer, opened; each of a call's
        streams has its own StreamSid."""
        ssid = "MZ%032x" % (int(call.sid[2:], 16) + (len(call.streams) << 100))
        stream = twilio.Stream(wh.stream_url, call.sid, ssid, wh.params)
        call.stream = stream
        call.streams.append(stream)
        self.streams.append(stream)
        await stream.open(send_start=not self.start_delay)
        if self.start_delay:
            await asyncio.sleep(self.start_delay)
            await stream.send_start()
        return stream

    def _call_params(self, call):
        f = call.form
        return [("AccountSid", self.account_sid), ("CallSid", call.sid),
                ("CallStatus", "in-progress"), ("Direction", "outbound-api"),
                ("From", f["From"][0]), ("To", f["To"][0]),
                ("Caller", f["From"][0]), ("Called", f["To"][0])]

    async def _follow(self, call, stream):
        """What the daemon's updates of a live call make Twilio do: the
        stream ends, then the new TwiML runs (_run).  A Status=completed
        update ends the call.  Bounded: eight documents.  Returns the
        stream still up, if any."""
        docs = 0
        while docs < 8 and len(call.updates) > call.handled:
            u = call.updates[call.handled]
            call.handled += 1
            if stream is not None and stream.closed_at is None:
                await stream.stop()
            stream = None
            root = getattr(u, "twiml", None)
            while root is not None and root is not _UPDATE and docs < 8:
                docs += 1
                root = await self._run(call, root)
        return stream

    async def _run(self, call, root):
        """One TwiML document of an answered call, far enough for the
        tests: <Say> heard (call.said), <Hangup>, <Dial> (call.dials; its
        action posted with dial_status and dial_seconds), <Redirect> (the
        document it names fetched, signed) and <Connect><Stream> (the
        callee again for callee_seconds).  Returns the next document, None
        at the end, or _UPDATE when the daemon updated the call again."""
        for el in root:
            if el.tag == "Say":
                call.said.append((el.text or "").strip())
            elif el.tag == "Hangup":
                return None
            elif el.tag == "Dial":
                target = el.text.strip() if el.text and el.text.strip() else None
                for sub in el:
                    target = (sub.text or "").strip()
                call.dials.append((target, dict(el.attrib)))
                action = el.get("action")
                if action is None:
                    continue
                extra = [("DialCallStatus", self.dial_status)]
                if self.dial_status == "completed":
                    extra.append(("DialCallDuration", str(self.dial_seconds)))
                code, body = await self._post(action, self._call_params(call) + extra)
                self.events.append((call.sid, "dial_action", code, body))
                return _document(code, body)
            elif el.tag == "Redirect":
                code, body = await self._post((el.text or "").strip(),
                                              self._call_params(call))
                self.events.append((call.sid, "redirect", code, body))
                return _document(code, body)
            elif el.tag == "Connect" and el.find("Stream") is not None:
                wh = twilio.Webhook(200, '<?xml version="1.0"?>' +
                                    ET.tostring(root, encoding="unicode"))
                stream = await self._open_stream(call, wh)
                await self._hold(call, self.callee_seconds, stream)
                if len(call.updates) > call.handled:
                    if stream.closed_at is None:
                        await stream.stop()
                    return _UPDATE
                if stream.closed_at is None:    # the callee hung up
                    await stream.stop()
                    return None
                # the daemon closed it: the verbs after <Connect> run
        return None

    async def _machine(self, call, stream):
        """A machine's greeting, the beep, and a message recorded after it."""
        detect = call.form.get("MachineDetection", [""])[0]
        t0 = time.monotonic()
        n = 0
        if detect != "DetectMessageEnd":
            n = await self._hold(call, min(self.amd_seconds, self.machine_seconds),
                                 stream)
            await self._amd(call, "machine_start")
        n = await self._hold(call, max(0.0, t0 + self.machine_seconds -
                                       time.monotonic()), stream, n)
        call.beep_at = time.monotonic()
        self.events.append((call.sid, "beep", "", 0))
        if detect == "DetectMessageEnd":
            await self._amd(call, "machine_end_beep")
        # the machine records: silence from it, whatever comes to it
        heard0 = len(stream.received) if stream is not None else 0
        end = time.monotonic() + self.voicemail_seconds
        while time.monotonic() < end and not call.updates:
            if stream is not None and stream.closed_at is not None:
                break
            await asyncio.sleep(0.02)
        if stream is not None:
            call.recorded = [m for m in stream.received[heard0:]
                             if m.get("event") == "media"]
        for u in call.updates:
            tw = getattr(u, "twiml", None)
            if tw is not None:
                call.voicemail = " ".join((el.text or "").strip()
                                          for el in tw if el.tag == "Say")


_UPDATE = object()      # _run(): the daemon updated the call again


def _document(code, body):
    """A TwiML answer's root, or None."""
    if code != 200:
        return None
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    return root if root.tag == "Response" else None


def _outcome(o):
    """An outcome's canonical form: a name, or an HTTP status as an int;
    None when unknown."""
    if isinstance(o, int) or (isinstance(o, str) and o.isdigit()):
        v = int(o)
        return v if 400 <= v <= 599 else None
    return o if o in ("human", "machine", "no-answer", "busy", "failed") else None


def _refusal(status):
    return status, {"code": 20429 if status == 429 else 20500,
                    "message": "Too Many Requests" if status == 429 else
                    "try later", "status": status}


class Call:
    """One call the fake created, as it goes."""

    def __init__(self, sid, to, outcome, form):
        self.sid = sid
        self.to = to
        self.outcome = outcome
        self.form = form
        self.created = time.time()
        self.seq = 0
        self.statuses = []      # (CallStatus, HTTP status of our callback)
        self.verdict = None     # the AMD verdict posted
        self.amd_at = None      # monotonic, as the verdict was sent
        self.amd_early = False
        self.beep_at = None
        self.stream = None
        self.updates = []       # the daemon's updates of the call
        self.handled = 0        # of those, the ones acted on
        self.streams = []       # every stream of the call, in order
        self.said = []          # <Say> texts of its updates' TwiML
        self.dials = []         # (number or SIP URI, <Dial> attributes)
        self.updated = asyncio.Event()
        self.recorded = []      # media the machine got after its beep
        self.voicemail = None   # the <Say> of the update, if any
        self.ended = False
        self.status = "queued"  # as GET Calls/{sid}.json says it
        self.start_time = time.time()
        self.end_time = None
        self.duration = None
        self.drop_final = False  # its final callback is not posted
        self.stop_ringing = asyncio.Event()  # ends ring_seconds early

    def resource(self, account_sid):
        """The Call resource Twilio answers GET Calls/{sid}.json with."""
        def rfc2822(t):
            return None if t is None else time.strftime(
                "%a, %d %b %Y %H:%M:%S +0000", time.gmtime(t))
        return {"sid": self.sid, "account_sid": account_sid, "status": self.status,
                "to": self.to, "from": self.form["From"][0],
                "direction": "outbound-api", "answered_by": self.verdict,
                "duration": self.duration, "start_time": rfc2822(self.start_time),
                "end_time": rfc2822(self.end_time),
                "uri": "/2010-04-01/Accounts/%s/Calls/%s.json" % (account_sid,
                                                                  self.sid)}

    @property
    def started(self):
        """Whether Twilio's list would give it a start time: it went past
        queued and initiated."""
        return self.status != "queued"

    @property
    def final(self):
        """The final CallStatus posted, or None."""
        for st, _ in reversed(self.statuses):
            if st in ("completed", "busy", "no-answer", "failed", "canceled"):
                return st
        return None
