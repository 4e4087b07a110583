"""A fake Twilio REST API, for the goodbye SMS: POST
/2010-04-01/Accounts/{AccountSid}/Messages.json with HTTP basic auth and a
form body, answered 201 with a Message resource (protocols.md 6.4), or with
the failures a test asks for.  Records every request."""

import asyncio
import base64
import json
import time
import urllib.parse


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

    def __init__(self, account_sid, auth_token, fail_first=0, fail_status=500):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.requests = []
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
