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
AsyncAmd verdict, and `completed`.  `outcome` chooses what the callee does:
"human", "machine" (a greeting and a beep), "busy", "no-answer", "failed".
Records every create request in `creates` and the call's events in
`events`."""

import asyncio
import base64
import os
import sys
import json
import time
import re
import urllib.parse
import xml.etree.ElementTree as ET


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
                 outcome="human", callee_seconds=2.0, sid_base=0xabc000):
        """fail_calls_first: call updates answered fail_status first;
        call_delay: seconds before a call update is answered."""
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
        self.server = None
        self.port = None

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def messages(self):
        """The requests that were accepted."""
        return [r for r in self.requests if getattr(r, "status", 0) == 201]

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
                if path.endswith("/Calls.json"):
                    self.creates.append(req)
                    status, doc = self._answer_create(req)
                elif "/Calls/" in path:
                    self.call_updates.append(req)
                    if self.call_delay:
                        await asyncio.sleep(self.call_delay)
                    status, doc = self._answer_call(req)
                else:
                    self.requests.append(req)
                    status, doc = self._answer(req)
                req.status = status
                out = json.dumps(doc).encode()
                writer.write(("HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                              "Content-Length: %d\r\n\r\n" % (status, len(out))).encode()
                             + out)
                await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

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
        return 200, {"sid": m.group(1), "status": status or "in-progress",
                     "account_sid": self.account_sid}

    def _answer_create(self, req):
        want = "/2010-04-01/Accounts/%s/Calls.json" % self.account_sid
        if req.auth != "%s:%s" % (self.account_sid, self.auth_token):
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        if req.method != "POST" or req.path != want:
            return 404, {"code": 20404, "message": "not found", "status": 404}
        if len(self.creates) <= self.fail_creates_first:
            return self.fail_status, {"code": 20429 if self.fail_status == 429
                                      else 20500, "message": "try later",
                                      "status": self.fail_status}
        for k in ("To", "From", "Url"):
            if k not in req.form:
                return 400, {"code": 21205, "message": "%s is required" % k,
                             "status": 400}
        self.n_calls += 1
        sid = "CA%032x" % (self.sid_base + self.n_calls)
        req.sid = sid
        self.tasks.append(asyncio.ensure_future(self._play(sid, req.form)))
        return 201, {"sid": sid, "status": "queued", "to": req.form["To"][0],
                     "from": req.form["From"][0], "direction": "outbound-api",
                     "account_sid": self.account_sid}

    async def _post(self, url, params):
        """A signed form POST, as Twilio makes it; (status, body)."""
        import twilio
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

    async def _status(self, sid, form, status, extra=()):
        url = form.get("StatusCallback", [None])[0]
        events = form.get("StatusCallbackEvent", [])
        ev = {"queued": "initiated", "in-progress": "answered"}.get(status, status)
        if url is None or (ev not in events and ev != "completed"
                           and status not in ("busy", "no-answer", "failed")):
            return
        params = [("AccountSid", self.account_sid), ("CallSid", sid),
                  ("CallStatus", status), ("Direction", "outbound-api"),
                  ("From", form["From"][0]), ("To", form["To"][0])] + list(extra)
        code, _ = await self._post(url, params)
        self.events.append((sid, "status", status, code))

    async def _play(self, sid, form):
        import twilio
        try:
            await asyncio.sleep(0.05)
            await self._status(sid, form, "initiated")
            await self._status(sid, form, "ringing")
            if self.outcome in ("busy", "no-answer", "failed"):
                await self._status(sid, form, self.outcome)
                return
            await self._status(sid, form, "in-progress")
            code, body = await self._post(form["Url"][0], [
                ("AccountSid", self.account_sid), ("CallSid", sid),
                ("CallStatus", "in-progress"), ("Direction", "outbound-api"),
                ("From", form["From"][0]), ("To", form["To"][0]),
                ("Caller", form["From"][0]), ("Called", form["To"][0])])
            self.events.append((sid, "twiml", code, body))
            wh = twilio.Webhook(code, body)
            amd = form.get("AsyncAmdStatusCallback", [None])[0]
            verdict = "human" if self.outcome == "human" else "machine_end_beep"
            stream = None
            if wh.stream_url is not None:
                stream = twilio.Stream(wh.stream_url, sid,
                                       "MZ%032x" % (self.sid_base + self.n_calls),
                                       wh.params)
                self.streams.append(stream)
                await stream.open()
                await stream.play(0.5)
            if amd is not None and form.get("MachineDetection"):
                code, _ = await self._post(amd, [
                    ("AccountSid", self.account_sid), ("CallSid", sid),
                    ("AnsweredBy", verdict), ("MachineDetectionDuration", "1800")])
                self.events.append((sid, "amd", verdict, code))
            if stream is not None:
                if verdict == "human":
                    await stream.play(self.callee_seconds)
                else:
                    # the daemon's call update ends the stream, or we do
                    for _ in range(100):
                        if any(u.path.endswith(sid + ".json")
                               for u in self.call_updates):
                            break
                        await asyncio.sleep(0.05)
                await stream.stop()
            await self._status(sid, form, "completed",
                               [("CallDuration", str(int(self.callee_seconds) + 1))])
        except Exception as e:      # a test reads events; say what broke
            self.events.append((sid, "error", repr(e), 0))
