"""Two listeners: the public one (PORT) answers only what Twilio needs, a
front page and /healthz; the operator's (ADMIN_BIND:ADMIN_PORT) has
/health, /metrics, /usage-data and /dashboard, behind ADMIN_TOKEN when it
is set.  Nothing that identifies a caller, no CallSid and no token is
reachable on the public listener while a call is live."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import time

import harness
import twilio
from harness import expect, expect_eq, timeout

TOKEN = "adm-0123456789abcdef-token"
CALLER = "+14155550123"
OPERATOR_PATHS = ["/health", "/metrics", "/usage-data", "/dashboard"]


def http_raw(port, method, path, headers=(), body=b"", timeout=5):
    """One request with Connection: close; the whole answer as bytes and
    its status code."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % (method, path)
    for h in headers:
        head += h + "\r\n"
    if body:
        head += "Content-Length: %d\r\n" % len(body)
    s.sendall(head.encode() + b"\r\n" + body)
    out = b""
    try:
        while len(out) < 1 << 24:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        pass
    s.close()
    status = int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.1 ") else None
    return status, out


def body_of(out):
    return out.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in out else b""


def run(*args, env=None):
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    e.update(env or {})
    p = subprocess.run([harness.BINARY] + list(args), capture_output=True, text=True,
                       timeout=10, env=e)
    return p.returncode, p.stdout, p.stderr


async def live_call(d, n, caller):
    wh = await asyncio.to_thread(twilio.post_voice, d.base, twilio.call_sid(n), caller)
    expect(wh.stream_url is not None, "no stream offered: %s %s", wh.status, wh.body)
    s = twilio.Stream(wh.stream_url, twilio.call_sid(n), twilio.stream_sid(n), wh.params)
    await s.open()
    await s.play(0.3)
    await asyncio.to_thread(
        d.wait_for, lambda: any(c["call_sid"] == twilio.call_sid(n)
                                for c in d.health()["calls"]), 10, "the call live")
    return wh, s


@timeout(60)
async def test_public_listener_serves_only_twilio(env):
    """While a call is live, every path a scanner would try on the public
    port: the operator's endpoints answer 404, and no answer carries the
    live call's CallSid, its caller's number (whole or masked), its stream
    token, ADMIN_TOKEN or the other secrets."""
    d = env.daemon(ADMIN_TOKEN=TOKEN, WS_IDLE_TIMEOUT=60).start()
    wh, s = await live_call(d, 1, CALLER)
    try:
        sid = twilio.call_sid(1)
        stream_token = wh.stream_url.rsplit("/", 1)[1]
        h = await asyncio.to_thread(d.health)
        masked = [c["caller"] for c in h["calls"] if c["call_sid"] == sid][0]
        secrets = {"CallSid": sid, "caller": CALLER, "caller digits": CALLER[1:],
                   "masked caller": masked, "stream token": stream_token,
                   "ADMIN_TOKEN": TOKEN, "STREAM_SECRET": d.conf["STREAM_SECRET"],
                   "OPENAI_API_KEY": d.conf["OPENAI_API_KEY"]}
        # the control: the operator's listener does show the call
        st, _, admin_health = await asyncio.to_thread(d.admin_get, "/health")
        expect(sid in admin_health and masked in admin_health, "admin /health lacks the call")
        st, _, admin_usage = await asyncio.to_thread(d.admin_get, "/usage-data")
        expect(CALLER in admin_usage, "admin /usage-data lacks the caller")

        probes = []
        for p in OPERATOR_PATHS + ["/health?x=1", "/health/", "/HEALTH", "//health",
                                   "/usage-data.csv", "/api/calls", "/api/", "/nope",
                                   "/dashboard/health", "/metrics?format=json"]:
            for m in ("GET", "HEAD", "POST"):
                probes.append((m, p, (), 404))
        probes += [("GET", "/", (), 200), ("GET", "/healthz", (), 200),
                   ("HEAD", "/healthz", (), 200), ("GET", "/healthz?verbose=1", (), 200),
                   ("POST", "/healthz", (), 405),
                   # an operator's credential changes nothing on this side
                   ("GET", "/health", ("Authorization: Bearer " + TOKEN,), 404),
                   ("GET", "/usage-data", ("Authorization: Bearer " + TOKEN,), 404),
                   ("GET", "/voice", (), 403),     # unsigned
                   ("GET", "/media-stream/default/" + stream_token, (), 426),
                   ("GET", "/health", ("Upgrade: websocket", "Connection: Upgrade",
                                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                       "Sec-WebSocket-Version: 13"), 404)]
        for m, p, hdrs, want in probes:
            st, out = await asyncio.to_thread(http_raw, d.port, m, p, hdrs)
            expect_eq(st, want, "%s %s on the public port" % (m, p))
            text = out.decode(errors="replace")
            for what, v in secrets.items():
                expect(v not in text, "%s %s on the public port shows the %s", m, p, what)
        st, out = await asyncio.to_thread(http_raw, d.port, "GET", "/healthz")
        expect_eq(json.loads(body_of(out)), {"status": "ok"}, "/healthz")
        st, out = await asyncio.to_thread(http_raw, d.port, "GET", "/")
        for p in OPERATOR_PATHS:
            expect(('href="%s"' % p).encode() not in out, "the front page links %s", p)
        # the same requests on the operator's listener do answer
        for p in OPERATOR_PATHS:
            st, _, _ = await asyncio.to_thread(d.admin_get, p)
            expect_eq(st, 200, "%s on the admin port" % p)
        # and a Twilio webhook on the operator's listener does not
        st, out = await asyncio.to_thread(
            http_raw, d.admin_port, "POST", "/voice",
            ("Authorization: Bearer " + TOKEN,
             "Content-Type: application/x-www-form-urlencoded"),
            b"CallSid=" + twilio.call_sid(2).encode() + b"&From=%2B14155550124")
        expect_eq(st, 404, "POST /voice on the admin port")
    finally:
        await s.stop()


@timeout(60)
async def test_healthz_draining(env):
    """/healthz: ok, then 503 draining while a live call keeps the daemon
    up after SIGTERM; no figure in either answer."""
    d = env.daemon(DRAIN_TIMEOUT=20, WS_IDLE_TIMEOUT=60).start()
    st, out = await asyncio.to_thread(http_raw, d.port, "GET", "/healthz")
    expect_eq(st, 200, "/healthz")
    expect_eq(json.loads(body_of(out)), {"status": "ok"}, "/healthz body")
    expect(b"application/json" in out, "/healthz content type")
    wh, s = await live_call(d, 1, CALLER)
    try:
        d.signal(signal.SIGTERM)
        await asyncio.to_thread(
            d.wait_for, lambda: d.health()["status"] == "draining", 5, "draining")
        st, out = await asyncio.to_thread(http_raw, d.port, "GET", "/healthz")
        expect_eq(st, 503, "/healthz while draining")
        expect_eq(json.loads(body_of(out)), {"status": "draining"}, "draining body")
        st, out = await asyncio.to_thread(http_raw, d.port, "HEAD", "/healthz")
        expect_eq(st, 503, "HEAD /healthz while draining")
        expect_eq(body_of(out), b"", "HEAD has no body")
    finally:
        await s.stop()
    expect_eq(await asyncio.to_thread(d.wait_exit, 15), 0, "exit after the drain")


def test_admin_without_token(env):
    """No ADMIN_TOKEN (loopback): the operator's endpoints answer as they
    always did; unknown paths 404, wrong methods 405, no WebSocket."""
    d = env.daemon().start()
    for p in OPERATOR_PATHS:
        st, hdr, body = d.admin_get(p)
        expect_eq(st, 200, "GET %s" % p)
    expect_eq(d.health()["status"], "ok", "status")
    expect_eq(d.admin_get("/api/nothing", check=False)[0], 404, "/api/nothing")
    expect_eq(d.admin_get("/", check=False)[0], 404, "/ on the admin port")
    st, out = http_raw(d.admin_port, "POST", "/health")
    expect_eq(st, 405, "POST /health")
    expect(b"Allow: GET, HEAD" in out, "Allow header: %r" % out[:300])
    st, out = http_raw(d.admin_port, "HEAD", "/usage-data")
    expect_eq(st, 200, "HEAD /usage-data")
    st, out = http_raw(d.admin_port, "GET", "/media-stream/default/x",
                       ("Upgrade: websocket", "Connection: Upgrade",
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                        "Sec-WebSocket-Version: 13"))
    expect_eq(st, 404, "a media stream on the admin port")
    expect_eq(d.health()["counters"]["admin_auth_failed"], 0, "admin_auth_failed")
    expect("admin endpoints on 127.0.0.1 port %d" % d.admin_port in d.log(),
           "the start line names the admin listener")


def test_admin_token(env):
    """ADMIN_TOKEN: 401 with WWW-Authenticate without it or with a wrong
    one, counted in admin_auth_failed; 200 with it; the dashboard page
    loads without it.  The token is never logged nor printed."""
    d = env.daemon(ADMIN_TOKEN=TOKEN).start()
    refused = 0
    for p in OPERATOR_PATHS[:-1] + ["/api/calls", "/nope"]:
        for tok in ("", "wrong-token-0123456789", TOKEN + "x", TOKEN[:-1]):
            st, hdr, body = d.admin_get(p, token=tok, check=False)
            expect_eq(st, 401, "%s with token %r" % (p, tok))
            expect_eq(hdr["WWW-Authenticate"], 'Bearer realm="voxrelay"', "WWW-Authenticate")
            expect(TOKEN not in body, "the token in a 401")
            refused += 1
    for hdrs in (("Authorization: Basic " + TOKEN,), ("Authorization: " + TOKEN,),
                 ("X-Admin-Token: " + TOKEN,), ("Authorization: Bearer",)):
        st, _ = http_raw(d.admin_port, "GET", "/health", hdrs)
        expect_eq(st, 401, "GET /health with %r" % (hdrs,))
        refused += 1
    # a refused request changes nothing: POST to the page needs the token too
    st, _ = http_raw(d.admin_port, "POST", "/dashboard")
    expect_eq(st, 401, "POST /dashboard without the token")
    refused += 1
    for p in OPERATOR_PATHS:
        st, _, body = d.admin_get(p, token=TOKEN)
        expect_eq(st, 200, "GET %s with the token" % p)
    # the scheme is case-insensitive (RFC 7235)
    st, _ = http_raw(d.admin_port, "GET", "/health", ("Authorization: bearer " + TOKEN,))
    expect_eq(st, 200, "lower-case scheme")
    # the page itself, without the token: it holds no figure
    st, hdr, page = d.admin_get("/dashboard", token="")
    expect_eq(st, 200, "GET /dashboard without the token")
    expect('id="auth-token"' in page, "the page has no field for the token")
    st, _ = http_raw(d.admin_port, "HEAD", "/dashboard")
    expect_eq(st, 200, "HEAD /dashboard without the token")
    h = d.health()
    expect_eq(h["counters"]["admin_auth_failed"], refused, "admin_auth_failed")
    st, _, metrics = d.admin_get("/metrics")
    expect("voxrelay_admin_auth_failed_total %d" % refused in metrics,
           "admin_auth_failed in /metrics")
    # one log line for a burst of refusals, and never the token
    log = d.log()
    expect_eq(log.count("admin request refused with 401"), 1, "refusal log lines")
    expect(TOKEN not in log and TOKEN[:12] not in log, "the token in the log")
    expect("ADMIN_TOKEN required" in log, "start line")
    rc, out, err = run("-t", "-f", d.conf_path)
    expect_eq(rc, 0, "-t: " + err)
    expect(TOKEN not in out + err, "-t prints the token")

    # a reload takes a new token; the old one is refused from then on
    new = "second-token-abcdef0123456789"
    d.write_conf(ADMIN_TOKEN=new)
    d.signal(signal.SIGHUP)
    d.wait_for(lambda: d.admin_get("/health", token=new, check=False)[0] == 200, 10,
               "the new token")
    expect_eq(d.admin_get("/health", token=TOKEN, check=False)[0], 401, "the old token")


def test_admin_bind_needs_token(env):
    """ADMIN_BIND off loopback without ADMIN_TOKEN: -t says so with the file
    and line, exit 1, and the daemon refuses to start.  Nothing here binds
    anything but loopback: the refusals come before any socket."""
    d = env.daemon()
    d.write_conf(ADMIN_BIND="0.0.0.0")
    lines = open(d.conf_path).read().split("\n")
    lineno = [i + 1 for i, ln in enumerate(lines) if ln.startswith("ADMIN_BIND=")][0]
    rc, out, err = run("-t", "-f", d.conf_path)
    expect_eq(rc, 1, "-t exit code: " + err)
    expect("%s:%d: ADMIN_BIND: 0.0.0.0 is not a loopback address" % (d.conf_path, lineno)
           in err, "-t error: %r" % err)
    expect("ADMIN_TOKEN" in err, "-t does not name ADMIN_TOKEN: %r" % err)
    # the daemon itself: refused before it listens
    p = subprocess.run([harness.BINARY, "-d", "-f", d.conf_path], capture_output=True,
                       text=True, timeout=10, env={"PATH": "/usr/bin:/bin"})
    expect(p.returncode != 0, "the daemon started with ADMIN_BIND=0.0.0.0 and no token")
    expect("ADMIN_BIND" in p.stderr, "start refusal: %r" % p.stderr)
    s = socket.socket()
    expect(s.connect_ex(("127.0.0.1", d.admin_port)) != 0, "something listens")
    s.close()
    # with a token it is a valid configuration (not started: not loopback)
    d.write_conf(ADMIN_TOKEN=TOKEN)
    rc, out, err = run("-t", "-f", d.conf_path)
    expect_eq(rc, 0, "-t with a token: " + err)
    # the environment is checked the same way, and names itself
    rc, out, err = run("-t", "-f", d.conf_path,
                       env={"ADMIN_BIND": "10.1.2.3", "ADMIN_TOKEN": ""})
    expect(rc == 1 and "environment ADMIN_BIND: ADMIN_BIND: 10.1.2.3" in err,
           "environment: %r" % err)
    for env_, why in [({"ADMIN_BIND": "::", "ADMIN_TOKEN": ""}, "ADMIN_BIND: :: is not"),
                      ({"ADMIN_BIND": "localhost"}, "ADMIN_BIND: not a numeric"),
                      ({"ADMIN_TOKEN": "short"}, "ADMIN_TOKEN: at least 16"),
                      ({"ADMIN_TOKEN": "a token with spaces in it"}, "ADMIN_TOKEN: only"),
                      ({"ADMIN_PORT": str(d.port)}, "ADMIN_PORT: %d is PORT too" % d.port)]:
        rc, out, err = run("-t", "-f", d.conf_path, env=env_)
        expect(rc == 1 and why in err, "%r: %r" % (env_, err))
        expect("a token with spaces" not in err, "a token value printed: %r" % err)
    # loopback in both families needs no token
    for addr in ("127.0.0.1", "127.3.4.5", "::1"):
        rc, out, err = run("-t", "-f", d.conf_path, env={"ADMIN_BIND": addr, "ADMIN_TOKEN": ""})
        expect_eq(rc, 0, "ADMIN_BIND=%s without a token: %s" % (addr, err))
