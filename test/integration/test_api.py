"""The call records' API on the operator's listener (/api/call-history,
/api/call/{sid}, /api/call/{sid}/conversation, /api/analytics,
/api/export), against a SQLite database seeded with rows in the schema the
daemon created: paging, each filter, order, totals, the 400s and 404s,
CORS, the token, the export streamed in pieces, and that the public
listener does not answer any of it."""

import asyncio
import json
import re
import socket
import sqlite3
import subprocess
import time
import urllib.parse

import harness
from harness import expect, expect_eq, recv_until_close

TOKEN = "api-token-0123456789abcdef"
HOUR = 3600 * 1000
STATUSES = ["completed", "completed", "busy", "no-answer", "failed",
            "completed", "canceled", "in-progress"]


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def seed_calls(n, now, utterances=3, text="hello there"):
    """n calls, one every 7 minutes back from now, newest first in the list."""
    calls = []
    for i in range(n):
        started = now - 60000 - i * 7 * 60000
        st = STATUSES[i % len(STATUSES)]
        dur = None if st in ("busy", "no-answer", "in-progress") else (i % 11) * 37000 + 5000
        calls.append({
            "call_sid": "CA%032d" % i,
            "direction": "outbound" if i % 3 == 0 else "inbound",
            "from": "+1555000%04d" % (i % 5),
            "to": "+1555999%04d" % (i % 2),
            "line": "sales" if i % 2 else "support",
            "persona": "alex",
            "status": st,
            "started_at": started,
            "answered_at": started + 2000 if dur else None,
            "ended_at": started + 2000 + dur if dur else None,
            "duration_ms": dur,
            "cost_usd": 0.01 * (i % 4),
            "in_text": 10 * i, "out_audio": 20 * i,
            "utterances": [("caller" if k % 2 == 0 else "assistant",
                            "%s %d.%d" % (text, i, k), k == 1)
                           for k in range(utterances)],
        })
    return calls


def seed(d, calls):
    """Write calls into the daemon's SQLite database (WAL: the daemon reads
    what is committed)."""
    db = sqlite3.connect(d.conf["DATABASE_PATH"], timeout=10)
    try:
        for c in calls:
            db.execute(
                "INSERT INTO calls (call_sid, direction, from_number, to_number, "
                "line, persona, personas, status, started_at, answered_at, ended_at, "
                "duration_ms, billed_s, end_reason, answered_by, transferred_to, "
                "input_text_tokens, output_audio_tokens, cost_usd, host, worker) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (c["call_sid"], c["direction"], c["from"], c["to"], c["line"],
                 c["persona"], json.dumps([c["persona"]]), c["status"],
                 c["started_at"], c["answered_at"], c["ended_at"], c["duration_ms"],
                 (c["duration_ms"] + 59999) // 60000 if c["duration_ms"] else None,
                 "caller hung up" if c["status"] == "completed" else None,
                 "human" if c["direction"] == "outbound" else None, None,
                 c["in_text"], c["out_audio"], c["cost_usd"], "h1", 0))
            at = c["started_at"]
            hist = ["queued", "ringing", "in-progress"] + \
                ([c["status"]] if c["status"] != "in-progress" else [])
            for k, s in enumerate(hist):
                db.execute("INSERT INTO call_status (call_sid, status, at) VALUES (?,?,?)",
                           (c["call_sid"], s, at + k * 1000))
            for k, (role, text, cut) in enumerate(c["utterances"]):
                db.execute(
                    "INSERT INTO utterances (call_sid, seq, at, role, text, "
                    "interrupted, interrupted_at_ms) VALUES (?,?,?,?,?,?,?)",
                    (c["call_sid"], k, at + 3000 + k * 1000, role, text,
                     1 if cut else 0, 420 if cut else None))
            db.execute(
                "INSERT INTO tool_calls (call_sid, seq, at, name, outcome, latency_ms, "
                "arguments) VALUES (?,?,?,?,?,?,?)",
                (c["call_sid"], 0, at + 4000, "end_call", "ok", 12, '{"reason":"done"}'))
        db.commit()
    finally:
        db.close()


def start(env, **conf):
    d = env.daemon(WORKERS=1, **conf).start()
    d.wait_for(lambda: re.search(r"^voxrelay_records_up 1$", d.admin_get("/metrics")[2],
                                 re.M), 10, "the store up")
    return d


def api(d, path, token=None, check=True):
    st, hdr, body = d.admin_get(path, token=token, check=check)
    return st, hdr, body


def jget(d, path, token=None):
    st, hdr, body = api(d, path, token=token, check=False)
    expect_eq(st, 200, "status of %s (%s)" % (path, body))
    expect(hdr.get("Content-Type", "").startswith("application/json"),
           "content type of %s: %r" % (path, hdr.get("Content-Type")))
    return json.loads(body)


def sids(page):
    return [c["call_sid"] for c in page["calls"]]


def test_api_history_paging_filters(env):
    d = start(env)
    now = int(time.time() * 1000)
    calls = seed_calls(40, now)
    seed(d, calls)
    newest_first = [c["call_sid"] for c in sorted(calls, key=lambda c: -c["started_at"])]

    p = jget(d, "/api/call-history")
    expect_eq(p["total"], 40, "total")
    expect_eq((p["limit"], p["offset"]), (50, 0), "default limit and offset")
    expect_eq(sids(p), newest_first, "newest first")

    seen = []
    for off in range(0, 40, 15):
        p = jget(d, "/api/call-history?limit=15&offset=%d" % off)
        expect_eq((p["limit"], p["offset"], p["total"]), (15, off, 40), "page head")
        seen += sids(p)
    expect_eq(seen, newest_first, "pages in order, no call twice or lost")
    expect_eq(jget(d, "/api/call-history?offset=40")["calls"], [], "past the end")

    def check(query, pred):
        want = [c["call_sid"] for c in sorted(calls, key=lambda c: -c["started_at"])
                if pred(c)]
        expect(want, "the seed has calls for %s" % query)
        p = jget(d, "/api/call-history?limit=1000&" + query)
        expect_eq(sids(p), want, "calls for %s" % query)
        expect_eq(p["total"], len(want), "total for %s" % query)

    check("from=%2B15550000003", lambda c: c["from"] == "+15550000003")
    check("from=+15550000003", lambda c: c["from"] == "+15550000003")
    check("to=%2B15559990001", lambda c: c["to"] == "+15559990001")
    check("line=sales", lambda c: c["line"] == "sales")
    check("status=completed", lambda c: c["status"] == "completed")
    check("status=no-answer", lambda c: c["status"] == "no-answer")
    check("direction=outbound", lambda c: c["direction"] == "outbound")
    cut = calls[10]["started_at"]
    check("since=" + iso(cut), lambda c: c["started_at"] >= cut // 1000 * 1000)
    check("until=" + iso(cut), lambda c: c["started_at"] < cut // 1000 * 1000)
    check("line=support&direction=inbound&status=completed",
          lambda c: c["line"] == "support" and c["direction"] == "inbound" and
          c["status"] == "completed")

    # the fields of a call, as issue 14 names them
    c = jget(d, "/api/call-history?limit=1")["calls"][0]
    s = calls[0]
    for k in ("call_sid", "direction", "from", "to", "line", "persona", "status",
              "status_history" if False else "started_at", "answered_at", "ended_at",
              "duration_s", "billed_s", "end_reason", "answered_by",
              "transferred_to", "usage", "cost_usd"):
        expect(k in c, "field %s missing: %r" % (k, c))
    expect_eq(c["call_sid"], s["call_sid"], "call_sid")
    expect_eq(c["from"], s["from"], "from")
    expect_eq(c["started_at"], iso(s["started_at"])[:-1] in c["started_at"] and
              c["started_at"], "started_at")
    expect(c["started_at"].endswith("Z"), "UTC: %r" % c["started_at"])
    expect_eq(c["duration_s"], s["duration_ms"] / 1000, "duration_s")
    expect_eq(c["usage"]["input_text_tokens"], s["in_text"], "usage")


def test_api_call_and_conversation(env):
    d = start(env)
    now = int(time.time() * 1000)
    calls = seed_calls(5, now, utterances=4)
    seed(d, calls)
    s = calls[2]
    c = jget(d, "/api/call/" + s["call_sid"])
    expect_eq(c["call_sid"], s["call_sid"], "call_sid")
    expect_eq(c["status"], s["status"], "status")
    expect_eq([h["status"] for h in c["status_history"]],
              ["queued", "ringing", "in-progress", s["status"]], "status history")
    expect_eq(c["status_history"][0]["at"], iso(s["started_at"]).replace("Z", "") in
              c["status_history"][0]["at"] and c["status_history"][0]["at"], "at")
    expect_eq([(t["name"], t["outcome"], t["latency_ms"]) for t in c["tool_calls"]],
              [("end_call", "ok", 12)], "tool calls")
    expect_eq(c["tool_calls"][0]["arguments"], {"reason": "done"}, "arguments")

    conv = jget(d, "/api/call/%s/conversation" % s["call_sid"])
    expect_eq(conv["call_sid"], s["call_sid"], "conversation's call_sid")
    expect_eq([(u["seq"], u["role"], u["text"], u["interrupted"])
               for u in conv["utterances"]],
              [(k, r, t, cut) for k, (r, t, cut) in enumerate(s["utterances"])],
              "utterances in order")
    expect(all(u["at"].endswith("Z") for u in conv["utterances"]), "at in UTC")

    for path in ("/api/call/CAunknown", "/api/call/CAunknown/conversation"):
        st, hdr, body = api(d, path, check=False)
        expect_eq(st, 404, "status of %s" % path)
        expect("error" in json.loads(body), "a JSON reason: %r" % body)
    for path in ("/api/call/CA%2Fx", "/api/call/" + "A" * 65,
                 "/api/call/CA1/other", "/api/call/CA1?x=1"):
        st, hdr, body = api(d, path, check=False)
        expect(st in (400, 404), "status of %s: %d" % (path, st))
        expect("error" in json.loads(body), "a JSON reason: %r" % body)


def test_api_analytics(env):
    d = start(env)
    now = int(time.time() * 1000)
    calls = seed_calls(30, now)
    seed(d, calls)
    a = jget(d, "/api/analytics")
    expect_eq(a["total_calls"], 30, "total_calls")
    done = [c for c in calls if c["status"] == "completed"]
    expect(abs(a["success_rate"] - len(done) / 30) < 1e-9, "success_rate %r" % a["success_rate"])
    durs = sorted(c["duration_ms"] for c in calls if c["duration_ms"])
    expect(abs(a["avg_duration_s"] - sum(durs) / len(durs) / 1000) < 1e-6, "avg")
    p90 = durs[-(-len(durs) * 9 // 10) - 1]
    expect_eq(a["p90_duration_s"], p90 / 1000, "p90 by nearest rank")
    expect(abs(a["minutes"] - sum(durs) / 60000) < 1e-6, "minutes")
    for key, f in (("by_status", "status"), ("by_line", "line"),
                   ("by_direction", "direction")):
        want = {}
        for c in calls:
            want[c[f]] = want.get(c[f], 0) + 1
        expect_eq(a[key], want, key)
    expect_eq(len(a["per_hour"]), 24, "24 hours")
    in_day = [c for c in calls if c["started_at"] >= (now // HOUR - 23) * HOUR]
    expect_eq(sum(h["total"] for h in a["per_hour"]), len(in_day), "per_hour total")
    expect_eq(sum(h["by_status"].get("completed", 0) for h in a["per_hour"]),
              len([c for c in in_day if c["status"] == "completed"]), "per_hour completed")
    expect_eq(a["ai_responses"], 30, "one assistant utterance a call")
    expect_eq(a["caller_inputs"], 60, "two caller utterances a call")
    expect_eq(a["usage"]["input_text_tokens"], sum(c["in_text"] for c in calls), "usage")
    expect(abs(a["cost_usd"] - sum(c["cost_usd"] for c in calls)) < 1e-9, "cost")
    expect_eq(sum(b["calls"] for b in a["duration_histogram"]), len(durs), "histogram")

    cut = calls[9]["started_at"] // 1000 * 1000
    a2 = jget(d, "/api/analytics?since=" + iso(cut))
    expect_eq(a2["total_calls"], len([c for c in calls if c["started_at"] >= cut]), "since")
    a3 = jget(d, "/api/analytics?until=" + iso(cut))
    expect_eq(a3["total_calls"], len([c for c in calls if c["started_at"] < cut]), "until")


def test_api_bad_parameters(env):
    d = start(env)
    for path in ("/api/call-history?limit=0", "/api/call-history?limit=1001",
                 "/api/call-history?limit=abc", "/api/call-history?limit=-1",
                 "/api/call-history?offset=-5", "/api/call-history?offset=x",
                 "/api/call-history?status=done", "/api/call-history?direction=up",
                 "/api/call-history?since=yesterday", "/api/call-history?until=2026-13-01",
                 "/api/call-history?since=2026-02-01&until=2026-01-01",
                 "/api/call-history?stauts=failed", "/api/call-history?limit=1&limit=2",
                 "/api/call-history?line=" + "x" * 65, "/api/call-history?from=%zz",
                 "/api/analytics?since=1", "/api/analytics?limit=5",
                 "/api/export?since=2026-01-01T25:00:00Z", "/api/export?line=a"):
        st, hdr, body = api(d, path, check=False)
        expect_eq(st, 400, "status of %s (%s)" % (path, body))
        expect(hdr.get("Content-Type", "").startswith("application/json"), "JSON")
        why = json.loads(body)["error"]
        expect(len(why) > 5, "a reason for %s: %r" % (path, why))
    st, _, body = api(d, "/api/nothing", check=False)
    expect_eq(st, 404, "unknown endpoint")
    # the daemon still answers
    expect_eq(jget(d, "/api/call-history")["total"], 0, "empty history")


def raw_request(port, data, read_until_close=True, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = recv_until_close(s, timeout)
    s.close()
    return out


def dechunk(body):
    """(pieces, data) of a chunked body; raises on a malformed one."""
    pieces, data = 0, b""
    while True:
        line, _, body = body.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            return pieces, data
        data += body[:n]
        expect_eq(body[n:n + 2], b"\r\n", "chunk end")
        body = body[n + 2:]
        pieces += 1


def test_api_export_streamed(env):
    d = start(env)
    now = int(time.time() * 1000)
    # 250 calls of 6 utterances of about 200 bytes: about 400 kB of NDJSON,
    # three pages of the store and about a hundred pieces on the wire
    calls = seed_calls(250, now, utterances=6, text="word " * 40)
    seed(d, calls)
    req = ("GET /api/export HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode()
    resp = raw_request(d.admin_port, req, timeout=20)
    head, _, body = resp.partition(b"\r\n\r\n")
    expect(head.startswith(b"HTTP/1.1 200"), "status: %r" % head[:80])
    expect(b"transfer-encoding: chunked" in head.lower(), "chunked: %r" % head)
    expect(b"application/x-ndjson" in head, "ndjson: %r" % head)
    pieces, data = dechunk(body)
    expect(pieces >= 20, "in pieces: %d" % pieces)
    lines = data.decode().split("\n")
    expect_eq(lines[-1], "", "ends with a newline")
    recs = [json.loads(x) for x in lines[:-1]]
    expect_eq(len(recs), 250, "every call once")
    expect_eq([r["call_sid"] for r in recs],
              [c["call_sid"] for c in sorted(calls, key=lambda c: c["started_at"])],
              "oldest first")
    expect_eq([u["text"] for u in recs[0]["utterances"]],
              [t for _, t, _ in sorted(calls, key=lambda c: c["started_at"])[0]["utterances"]],
              "utterances with their call")
    # since
    cut = calls[99]["started_at"] // 1000 * 1000
    st, hdr, body = api(d, "/api/export?since=" + iso(cut))
    recs = [json.loads(x) for x in body.splitlines()]
    expect_eq(len(recs), len([c for c in calls if c["started_at"] >= cut]), "since")

    # a client that reads slowly gets it all; one that leaves costs nothing
    s = socket.create_connection(("127.0.0.1", d.admin_port), timeout=10)
    s.sendall(req)
    got = b""
    deadline = time.monotonic() + 30
    time.sleep(0.5)
    while time.monotonic() < deadline:
        b = s.recv(4096)
        if not b:
            break
        got += b
        time.sleep(0.005)
    s.close()
    pieces2, data2 = dechunk(got.partition(b"\r\n\r\n")[2])
    expect_eq(data2, data, "a slow reader gets the same export")
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", d.admin_port), timeout=10)
        s.sendall(req)
        s.recv(100)
        s.close()
    expect_eq(jget(d, "/api/call-history?limit=1")["total"], 250, "still answering")


def test_api_client_gone_and_pipelined(env):
    d = start(env)
    now = int(time.time() * 1000)
    calls = seed_calls(20, now)
    seed(d, calls)
    # connections that ask and leave before the answer
    for i in range(50):
        s = socket.create_connection(("127.0.0.1", d.admin_port), timeout=5)
        s.sendall(b"GET /api/analytics HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /api/call-history HTTP/1.1\r\nHost: x\r\n\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    # pipelined requests are answered in order, store answers and others
    req = (b"GET /api/call/%s HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /api/call-history?limit=2 HTTP/1.1\r\nHost: x\r\n\r\n"
           b"HEAD /api/analytics HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /api/call/CAnone HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
           % calls[3]["call_sid"].encode())
    resp = raw_request(d.admin_port, req)
    statuses = [int(x) for x in re.findall(rb"HTTP/1\.1 (\d{3}) ", resp)]
    expect_eq(statuses, [200, 200, 200, 200, 404], "answers in order")
    first = resp.index(calls[3]["call_sid"].encode())
    expect(first < resp.index(b'"workers"'), "the call's record before /health")
    expect(d.proc.poll() is None, "daemon alive")
    expect_eq(jget(d, "/api/call-history")["total"], 20, "still answering")


def options(d, origin, method="GET", path="/api/call-history"):
    h = "OPTIONS %s HTTP/1.1\r\nHost: x\r\n" % path
    if origin:
        h += "Origin: %s\r\n" % origin
    h += ("Access-Control-Request-Method: %s\r\nAccess-Control-Request-Headers: "
          "authorization\r\nConnection: close\r\n\r\n" % method)
    resp = raw_request(d.admin_port, h.encode()).decode(errors="replace")
    head = resp.split("\r\n\r\n")[0].split("\r\n")
    hdrs = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(head[0].split(" ")[1]), hdrs


def test_api_cors(env):
    ok = "https://calls.example.com"
    d = start(env, CORS_ORIGINS="http://localhost:3000 " + ok, ADMIN_TOKEN=TOKEN)
    st, h = options(d, ok)
    expect_eq(st, 204, "preflight of a listed origin, without the token")
    expect_eq(h.get("access-control-allow-origin"), ok, "the origin itself")
    expect("authorization" in h.get("access-control-allow-headers", "").lower(),
           "Authorization allowed: %r" % h)
    expect("GET" in h.get("access-control-allow-methods", ""), "GET allowed")
    for bad in ("https://evil.example.com", "https://calls.example.com.evil.com",
                "null", ""):
        st, h = options(d, bad)
        expect_eq(st, 403, "preflight of %r" % bad)
        expect("access-control-allow-origin" not in h, "no ACAO for %r: %r" % (bad, h))
    st, h = options(d, ok, method="DELETE")
    expect_eq(st, 405, "preflight of DELETE")
    # the GET itself names the origin, never *
    req = urllib_req(d, "/api/call-history", {"Origin": ok, "Authorization": "Bearer " + TOKEN})
    expect_eq(req[0], 200, "GET from the origin")
    expect_eq(req[1].get("Access-Control-Allow-Origin"), ok, "ACAO on the answer")
    req = urllib_req(d, "/api/call-history", {"Origin": "https://evil.example.com",
                                              "Authorization": "Bearer " + TOKEN})
    expect(req[1].get("Access-Control-Allow-Origin") is None, "no ACAO for another origin")
    # a 401 tells the listed origin's page why
    req = urllib_req(d, "/api/call-history", {"Origin": ok})
    expect_eq(req[0], 401, "no token")
    expect_eq(req[1].get("Access-Control-Allow-Origin"), ok, "ACAO on the 401")
    # * is refused by -t
    d.write_conf(CORS_ORIGINS="*")
    rc = subprocess.run([harness.BINARY, "-t", "-f", d.conf_path],
                        capture_output=True, text=True, timeout=10)
    expect(rc.returncode != 0 and "CORS_ORIGINS" in rc.stderr,
           "-t refuses *: %r" % rc.stderr)


def urllib_req(d, path, headers):
    import urllib.request
    import urllib.error
    r = urllib.request.Request(d.admin_base + path, headers=headers)
    try:
        with urllib.request.urlopen(r, timeout=5) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_api_token_required(env):
    d = start(env, ADMIN_TOKEN=TOKEN)
    seed(d, seed_calls(3, int(time.time() * 1000)))
    for path in ("/api/call-history", "/api/call/CA%032d" % 1,
                 "/api/call/CA%032d/conversation" % 1, "/api/analytics", "/api/export"):
        st, _, _ = api(d, path, token="", check=False)
        expect_eq(st, 401, "%s without the token" % path)
        st, _, _ = api(d, path, token="wrong-token-0123456789", check=False)
        expect_eq(st, 401, "%s with a wrong token" % path)
        st, _, _ = api(d, path, token=TOKEN, check=False)
        expect_eq(st, 200, "%s with the token" % path)


def test_api_not_on_public_port(env):
    d = start(env)
    seed(d, seed_calls(3, int(time.time() * 1000)))
    for path in ("/api/call-history", "/api/call/CA%032d" % 1, "/api/analytics",
                 "/api/export"):
        resp = raw_request(d.port, ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close"
                                    "\r\n\r\n" % path).encode())
        expect(not resp.startswith(b"HTTP/1.1 200"), "%s on the public port: %r" %
               (path, resp[:60]))
        expect(b"CA%032d" % 1 not in resp, "no record on the public port")


def test_api_connection_gone_before_the_answer(env):
    """Queries queued on the store's thread past KEEPALIVE_TIMEOUT (80
    clients ask for analytics over 30,000 calls at once): a connection
    whose answer has not come is closed without one, the answer that comes
    later is dropped, and the daemon answers the next request."""
    d = start(env, KEEPALIVE_TIMEOUT=1)
    now = int(time.time() * 1000)
    db = sqlite3.connect(d.conf["DATABASE_PATH"], timeout=10)
    try:
        db.executemany(
            "INSERT INTO calls (call_sid, direction, line, status, started_at, "
            "duration_ms) VALUES (?,?,?,?,?,?)",
            (("CB%030d" % i, "inbound", "l%d" % (i % 50), STATUSES[i % len(STATUSES)],
              now - i * 1000, (i * 7919) % 600000) for i in range(30000)))
        db.commit()
    finally:
        db.close()
    t0 = time.monotonic()
    jget(d, "/api/analytics")
    one = time.monotonic() - t0
    socks = []
    for i in range(80):
        s = socket.create_connection(("127.0.0.1", d.admin_port), timeout=20)
        s.sendall(b"GET /api/analytics HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    answered = cut = 0
    for s in socks:
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
            if b"\r\n\r\n" in got and b'"duration_histogram"' in got:
                break
        s.close()
        if got.startswith(b"HTTP/1.1 200"):
            answered += 1
        else:
            expect_eq(got, b"", "a partial answer")
            cut += 1
    expect(cut > 0, "no connection was given up (one query took %.3f s, %d answered)"
           % (one, answered))
    expect("no answer from the store within KEEPALIVE_TIMEOUT" in d.log(),
           "the log says why")
    # the queue drains; the answers of the closed ones are dropped
    t0 = time.monotonic()
    expect_eq(jget(d, "/api/call-history?limit=1")["total"], 30000, "the calls")
    expect(time.monotonic() - t0 < 2, "the abandoned queries were not run: %.1f s"
           % (time.monotonic() - t0))
    expect(d.proc.poll() is None, "daemon alive")


async def test_api_live_call_end_to_end(env):
    """A real call (fake Twilio caller, scripted fake OpenAI) recorded by
    the workers: the API shows it in-progress while it runs, then
    completed with its status history, tool call and transcript as the
    database has them, in the history, the analytics and the export."""
    import caller as synth
    import twilio
    from test_records import booking_daemon, booking_openai, ro_query

    async with booking_openai() as srv:
        d = booking_daemon(env, srv)
        sid = twilio.call_sid(51)
        cl = synth.Caller(synth.synthetic_speech(600), seconds=6, lead_ms=2500)
        task = asyncio.create_task(cl.run(d.base, route="hvac", caller="+14155557311",
                                          n=51))

        def status():
            st, _, body = api(d, "/api/call/" + sid, check=False)
            return json.loads(body).get("status") if st == 200 else None

        live = await asyncio.to_thread(d.wait_for, lambda: status() == "in-progress", 10,
                                       "the call in-progress through the API")
        expect(live, "never in-progress")
        r = await task
        expect_eq(r.call_sid, sid, "call sid")
        await asyncio.to_thread(d.wait_for, lambda: status() == "completed", 10,
                                "the call completed through the API")
        c = await asyncio.to_thread(jget, d, "/api/call/" + sid)
        expect_eq((c["direction"], c["from"], c["line"]), ("inbound", "+14155557311", "hvac"),
                  "the call's facts")
        expect_eq([h["status"] for h in c["status_history"]], ["ringing", "in-progress", "completed"],
                  "status history")
        expect(c["duration_s"] > 3 and c["usage"]["input_audio_tokens"] > 0 and
               c["cost_usd"] > 0, "duration, usage, cost: %r" % c)
        expect_eq([t["name"] for t in c["tool_calls"]], ["book_appointment"], "tool calls")
        db = d.conf["DATABASE_PATH"]
        await asyncio.sleep(0.5)
        conv = await asyncio.to_thread(jget, d, "/api/call/%s/conversation" % sid)
        rows = ro_query(db, "SELECT seq, role, text, interrupted FROM utterances WHERE "
                        "call_sid = ? ORDER BY seq", (sid,))
        expect(len(rows) >= 3, "utterances: %r" % rows)
        expect_eq([(u["seq"], u["role"], u["text"], u["interrupted"])
                   for u in conv["utterances"]],
                  [(s, ro, t, bool(i)) for s, ro, t, i in rows], "as the database has them")
        expect(("caller", "My heater is broken") in
               [(u["role"], u["text"]) for u in conv["utterances"]], "the caller's line")
        h = await asyncio.to_thread(jget, d, "/api/call-history?line=hvac")
        expect_eq((h["total"], h["calls"][0]["call_sid"]), (1, sid), "in the history")
        a = await asyncio.to_thread(jget, d, "/api/analytics")
        expect_eq((a["total_calls"], a["by_status"]), (1, {"completed": 1}), "analytics")
        expect_eq(a["caller_inputs"] + a["ai_responses"], len(rows), "utterances counted")
        st, _, body = await asyncio.to_thread(api, d, "/api/export")
        recs = [json.loads(x) for x in body.splitlines()]
        expect_eq([x["call_sid"] for x in recs], [sid], "exported")
        expect_eq(len(recs[0]["utterances"]), len(rows), "exported with its utterances")
