"""Call records in the daemon: the store opens and migrates its database at
start without holding anything up, /metrics shows its state, -t checks it,
and a store that cannot open costs no call."""

import os
import re
import signal
import sqlite3
import subprocess
import time

import harness
import twilio
from harness import expect, expect_eq


def metric(d, name):
    body = d.admin_get("/metrics")[2]
    m = re.search(r"^voxrelay_%s (\S+)$" % re.escape(name), body, re.M)
    return float(m.group(1)) if m else None


def test_records_database_created_at_start(env):
    d = env.daemon().start()
    d.wait_for(lambda: metric(d, "records_up") == 1, 10, "records_up 1")
    expect_eq(metric(d, "records_backlog"), 0, "backlog")
    expect_eq(metric(d, "records_queued"), 0, "queued")
    expect_eq(metric(d, "records_dropped_total"), 0, "dropped")
    db = sqlite3.connect(d.conf["DATABASE_PATH"])
    try:
        expect_eq(db.execute("SELECT version FROM schema_version").fetchall(),
                  [(4,)], "schema version")
        expect_eq(db.execute("PRAGMA journal_mode").fetchone()[0], "wal",
                  "journal mode")
        tables = {r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        for t in ("calls", "call_status", "utterances", "tool_calls",
                  "caller_minutes", "used_tokens", "campaign_contacts", "campaigns",
                  "do_not_call"):
            expect(t in tables, "table %s missing: %r", t, tables)
    finally:
        db.close()
    d.stop()
    expect("call records: %s, schema version 4" % d.conf["DATABASE_PATH"] in d.log(),
           "start-up line in the log")


def test_records_unavailable_costs_no_call(env):
    # a directory where the database file should be: SQLite cannot open it
    bad = os.path.join(env.tmp, "not-a-file.db")
    os.mkdir(bad)
    d = env.daemon(DATABASE_PATH=bad)
    rc = subprocess.run([harness.BINARY, "-t", "-f", d.conf_path],
                        capture_output=True, text=True, timeout=10)
    expect(rc.returncode != 0, "-t accepted an unopenable DATABASE_PATH")
    expect("DATABASE_PATH: " in rc.stderr, "-t says why: %r" % rc.stderr)
    d.start()
    d.wait_for(lambda: "call records: database unavailable" in d.log(), 10,
               "the warning")
    expect_eq(metric(d, "records_up"), 0, "records_up")
    # the webhook still answers with a stream
    wh = twilio.post_voice(d.base, twilio.call_sid(1), "+15551230000")
    expect_eq(wh.status, 200, "voice webhook")
    expect(wh.stream_url, "a stream offered: %r" % wh.body)
    d.stop()


def test_records_off(env):
    # CALL_RECORDS=false: no database, -t does not look for one, the API
    # says so, and calls go on
    d = env.daemon(CALL_RECORDS="false",
                   DATABASE_URL="postgresql://vr@127.0.0.1:1/vr?connect_timeout=1")
    rc = subprocess.run([harness.BINARY, "-t", "-f", d.conf_path],
                        capture_output=True, text=True, timeout=10)
    expect_eq(rc.returncode, 0, "-t with records off: %r" % rc.stderr)
    d.write_conf(CALL_RECORDS="false", DATABASE_URL=None)
    d.start()
    d.wait_for(lambda: "call records: off (CALL_RECORDS)" in d.log(), 10, "the log line")
    wh = twilio.post_voice(d.base, twilio.call_sid(3), "+15551230000")
    expect(wh.stream_url, "a stream offered: %r" % wh.body)
    st, _, body = d.admin_get("/api/call-history", check=False)
    expect_eq(st, 503, "history with records off")
    expect("the call records are off (CALL_RECORDS)" in body, body)
    expect(not os.path.exists(d.conf["DATABASE_PATH"]), "a database was created")
    d.stop()


def test_records_configtest_postgresql(env):
    # nothing listens on port 1: -t names the store and the reason; hosts
    # sharing a database are told to share the stream secret
    d = env.daemon(DATABASE_URL="postgresql://vr@127.0.0.1:1/vr?connect_timeout=3",
                   STREAM_SECRET=None)
    rc = subprocess.run([harness.BINARY, "-t", "-f", d.conf_path],
                        capture_output=True, text=True, timeout=20)
    expect(rc.returncode != 0, "-t accepted an unreachable DATABASE_URL")
    expect("DATABASE_URL: postgresql: " in rc.stderr, "reason: %r" % rc.stderr)
    expect("must share one STREAM_SECRET" in rc.stderr, "secret warning: %r" % rc.stderr)
    # a URL of another scheme is a configuration error
    d.write_conf(DATABASE_URL="mysql://x/y", STREAM_SECRET="s" * 20)
    rc = subprocess.run([harness.BINARY, "-t", "-f", d.conf_path],
                        capture_output=True, text=True, timeout=20)
    expect(rc.returncode != 0, "-t accepted mysql://")
    expect("DATABASE_URL: must start with postgresql://" in rc.stderr,
           "reason: %r" % rc.stderr)
    expect("must share one STREAM_SECRET" not in rc.stderr,
           "no secret warning with one set: %r" % rc.stderr)


def test_records_reload_keeps_the_store(env):
    d = env.daemon().start()
    d.wait_for(lambda: metric(d, "records_up") == 1, 10, "records_up 1")
    other = os.path.join(env.tmp, "other.db")
    d.write_conf(DATABASE_PATH=other)
    d.signal(signal.SIGHUP)
    d.wait_for(lambda: "reloaded: generation 2" in d.log(), 10, "the reload")
    expect("DATABASE_JOURNAL and RETENTION_DAYS changes need a restart" in d.log(),
           "the warning")
    expect_eq(metric(d, "records_up"), 1, "records_up after the reload")
    expect(not os.path.exists(other), "a second database was opened")
    d.stop()


# ---- records written by the running daemon ----

import asyncio
import json
import shutil

import caller as synth
from fake_openai import FakeOpenAI
from harness import ROOT as REPO

BOOKING = {"name": "Pat Lee", "phone": "+14155550123", "address": "1 Main St",
           "date": "2026-12-01", "time": "10:00", "reason": "no heat"}


def ro_query(path, sql, args=()):
    """A read-only look at the daemon's database, as another program would
    take it (WAL: the writer is not held up)."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=2)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def lines_with_arguments(env):
    d = os.path.join(env.tmp, "lines")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(REPO, "etc", "lines", "hvac.json")) as f:
        line = json.load(f)
    line["record_tool_arguments"] = True
    with open(os.path.join(d, "hvac.json"), "w") as f:
        json.dump(line, f)
    return d


class Watcher:
    """Polls the database every 50 ms while a call runs: when each
    utterance was first seen, and the call's status meanwhile."""

    def __init__(self, path, sid):
        self.path, self.sid = path, sid
        self.seen = {}          # seq -> (wall ms first seen, at)
        self.statuses = []
        self.stop = False

    async def run(self):
        for _ in range(1200):   # 60 s at most
            if self.stop:
                return
            try:
                rows = ro_query(self.path, "SELECT seq, at FROM utterances "
                                "WHERE call_sid = ?", (self.sid,))
                st = ro_query(self.path, "SELECT status FROM calls WHERE "
                              "call_sid = ?", (self.sid,))
            except sqlite3.OperationalError:
                rows, st = [], []
            now = time.time() * 1000
            for seq, at in rows:
                self.seen.setdefault(seq, (now, at))
            if st and (not self.statuses or self.statuses[-1] != st[0][0]):
                self.statuses.append(st[0][0])
            await asyncio.sleep(0.05)


async def call_watched(d, n, seconds, route="hvac", **kw):
    sid = twilio.call_sid(n)
    w = Watcher(d.conf["DATABASE_PATH"], sid)
    task = asyncio.create_task(w.run())
    cl = synth.Caller(synth.synthetic_speech(600), seconds=seconds,
                      hangup_after_ms=kw.pop("hangup_after_ms", None), **kw)
    try:
        r = await cl.run(d.base, route=route, caller="+14155557311", n=n)
        return r, w, task
    except BaseException:
        w.stop = True
        await task
        raise


def settle(d, sid, pred, what, timeout=5):
    d.wait_for(lambda: pred(ro_query(d.conf["DATABASE_PATH"],
               "SELECT status FROM calls WHERE call_sid = ?", (sid,))),
               timeout, what)


def booking_openai():
    """A fake OpenAI for a booking on the hvac line: after the caller's
    first 20 appends a greeting, then book_appointment, then replies on
    its own turn detection."""
    script = [{"wait_event": "input_audio_buffer.append", "count": 20},
              {"reply": True, "reply_audio_ms": 300,
               "text": "Thanks for calling, how can I help?"},
              {"tool_call": {"name": "book_appointment", "arguments": BOOKING}}]
    return FakeOpenAI(mode="scripted", script=script, after_script="vad",
                      reply_ms=400, silence_ms=300,
                      caller_transcript="My heater is broken",
                      reply_text="A technician can come tomorrow.")


def booking_daemon(env, srv):
    """The daemon for booking_openai(): the hvac line with its tool
    arguments recorded."""
    return env.daemon(OPENAI_URL=srv.url(), LINES_DIR=lines_with_arguments(env),
                      BOOKINGS_PATH=os.path.join(env.tmp, "b.jsonl")).start()


async def test_records_call_transcript_and_tools(env):
    async with booking_openai() as srv:
        d = booking_daemon(env, srv)
        r, w, task = await call_watched(d, 41, 7, lead_ms=2500)
        sid = r.call_sid
        db = d.conf["DATABASE_PATH"]
        await asyncio.to_thread(settle, d, sid,
                                lambda st: st and st[0][0] == "completed",
                                "the call completed in the store")
        await asyncio.sleep(0.3)
        w.stop = True
        await task
        expect("in-progress" in w.statuses, "never seen live: %r" % w.statuses)
        expect_eq(w.statuses[-1], "completed", "last status seen")
        cols = ("direction", "from_number", "to_number", "line", "persona", "personas", "app",
                "status", "started_at", "answered_at", "ended_at", "duration_ms",
                "billed_s", "end_reason", "host", "worker", "input_audio_tokens",
                "output_audio_tokens", "cost_usd")
        row = dict(zip(cols, ro_query(db, "SELECT %s FROM calls WHERE call_sid = ?"
                                      % ", ".join(cols), (sid,))[0]))
        expect_eq(row["direction"], "inbound", "direction")
        expect_eq(row["from_number"], "+14155557311", "from")
        expect_eq(row["to_number"], "+15005550006", "to: the number called")
        expect_eq((row["line"], row["persona"], row["app"]), ("hvac", "hvac", "agent"),
                  "line, persona, app")
        expect_eq(json.loads(row["personas"]), ["hvac"], "personas")
        expect(row["started_at"] <= row["answered_at"] <= row["ended_at"],
               "times: %r" % row)
        expect(3000 < row["duration_ms"] < 12000, "duration %r" % row["duration_ms"])
        expect_eq(row["billed_s"], (row["duration_ms"] + 999) // 1000, "billed")
        expect(row["end_reason"], "no end reason")
        expect(row["host"], "no host")
        expect(row["worker"] in (0, 1), "worker %r" % row["worker"])
        expect(row["input_audio_tokens"] > 0 and row["output_audio_tokens"] > 0,
               "usage: %r" % row)
        expect(row["cost_usd"] > 0, "cost %r" % row["cost_usd"])
        hist = ro_query(db, "SELECT status, at FROM call_status WHERE call_sid = ? "
                        "ORDER BY at, status DESC", (sid,))
        expect_eq([h[0] for h in hist], ["ringing", "in-progress", "completed"],
                  "status history")
        # ringing from the webhook's admission, which starts the call
        expect_eq(hist[0][1], row["started_at"], "started at the webhook")
        expect(hist[0][1] <= hist[1][1], "ringing after in-progress: %r" % hist)
        mins = ro_query(db, "SELECT phone, used_ms, host FROM caller_minutes WHERE "
                        "call_sid = ?", (sid,))
        expect_eq(mins, [("+14155557311", row["duration_ms"], row["host"])],
                  "the caller's minutes")
        utts = ro_query(db, "SELECT seq, at, role, text, interrupted FROM utterances "
                        "WHERE call_sid = ? ORDER BY seq", (sid,))
        expect(len(utts) >= 3, "utterances: %r" % utts)
        expect_eq([u[0] for u in utts], list(range(1, len(utts) + 1)), "seq")
        expect_eq([u[1] for u in utts], sorted(u[1] for u in utts), "in time order")
        expect_eq(utts[0][2:4], ("assistant", "Thanks for calling, how can I help?"),
                  "first line")
        said = [(u[2], u[3]) for u in utts]
        expect(("caller", "My heater is broken") in said, "caller line: %r" % said)
        expect(("assistant", "A technician can come tomorrow.") in said,
               "reply: %r" % said)
        # every line in the database within 2 s of being final
        for seq, at, *_ in utts:
            first, _ = w.seen[seq]
            expect(first - at < 2000, "utterance %d seen %.0f ms after it was final"
                   % (seq, first - at))
        # the same lines as the transcript file, in the same order
        with open(os.path.join(env.tmp, sid + ".jsonl")) as f:
            lines = [json.loads(x) for x in f]
        expect_eq([(x["role"], x["text"]) for x in lines], said, "as the transcript file")
        tools = ro_query(db, "SELECT seq, name, outcome, latency_ms, arguments FROM "
                         "tool_calls WHERE call_sid = ?", (sid,))
        expect_eq(len(tools), 1, "tool calls: %r" % tools)
        expect_eq(tools[0][1], "book_appointment", "tool name")
        expect(tools[0][2].startswith("done"), "outcome %r" % tools[0][2])
        expect(tools[0][3] is not None and tools[0][3] >= 0, "latency")
        args = json.loads(tools[0][4])
        expect_eq(args["date"], "2026-12-01", "arguments kept")
        expect_eq(args["address"], "(sensitive)", "a sensitive field kept out")
        h = await asyncio.to_thread(d.health)
        expect_eq(h["records"]["up"], True, "/health records up")
        expect_eq(h["records"]["backlog"], 0, "/health backlog")
        expect(h["records"]["written"] >= 8, "/health written %r" % h["records"])
        expect_eq(h["counters"]["worker_records_dropped"], 0, "dropped in workers")
        expect_eq(h["counters"]["records_bad_messages"], 0, "bad messages")
        d.stop()


async def test_records_worker_killed_mid_call(env):
    async with FakeOpenAI(mode="vad", reply_ms=400, silence_ms=300,
                          caller_transcript="Is anybody there",
                          reply_text="Yes, I am here.") as srv:
        d = env.daemon(OPENAI_URL=srv.url()).start()
        db = d.conf["DATABASE_PATH"]
        sid = twilio.call_sid(42)
        w = Watcher(db, sid)
        task = asyncio.create_task(w.run())
        cl = synth.Caller(synth.synthetic_speech(600), seconds=20, lead_ms=300,
                          hangup_after_ms=None)
        call = asyncio.create_task(cl.run(d.base, caller="+14155557312", n=42))
        # both lines of the first exchange in the store, the call live
        for _ in range(200):
            if len(w.seen) >= 2 or call.done():
                break
            await asyncio.sleep(0.05)
        expect(len(w.seen) >= 2, "no exchange recorded: %r" % w.seen)
        h = await asyncio.to_thread(d.health)
        live = [c for c in h["calls"] if c["call_sid"] == sid]
        expect_eq(len(live), 1, "the call is live")
        pid = [x["pid"] for x in h["workers"] if x["slot"] == live[0]["worker"]][0]
        before = ro_query(db, "SELECT seq, role, text FROM utterances WHERE "
                          "call_sid = ? ORDER BY seq", (sid,))
        os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(settle, d, sid, lambda st: st and st[0][0] == "failed",
                                "the call's record closed as failed")
        w.stop = True
        await task
        await asyncio.wait_for(call, 30)
        row = ro_query(db, "SELECT status, end_reason, failure_class, ended_at, "
                       "started_at, duration_ms, line FROM calls WHERE call_sid = ?",
                       (sid,))[0]
        expect_eq(row[0], "failed", "status")
        expect("worker died" in row[1] and "signal 9" in row[1],
               "end reason %r" % row[1])
        expect_eq(row[2], "worker", "failure class")
        expect(row[3] > row[4] and row[5] > 0, "times %r" % (row,))
        expect_eq(row[6], "default", "what the worker had sent is kept")
        after = ro_query(db, "SELECT seq, role, text FROM utterances WHERE "
                         "call_sid = ? ORDER BY seq", (sid,))
        expect(after[:len(before)] == before, "lines lost: %r -> %r" % (before, after))
        hist = ro_query(db, "SELECT status FROM call_status WHERE call_sid = ? "
                        "ORDER BY at, status DESC", (sid,))
        expect_eq([x[0] for x in hist], ["ringing", "in-progress", "failed"],
                  "status history")
        mins = ro_query(db, "SELECT phone, used_ms FROM caller_minutes WHERE "
                        "call_sid = ?", (sid,))
        expect_eq(mins, [("+14155557312", row[5])], "minutes up to the death")
        h = await asyncio.to_thread(d.health)
        expect_eq(h["counters"]["records_closed_dead"], 1, "records_closed_dead")
        d.stop()


async def test_records_database_locked_mid_call(env):
    script = [{"wait_event": "input_audio_buffer.append", "count": 10}]
    for k in range(6):
        script += [{"reply": True, "reply_audio_ms": 200, "text": "Line %d." % k},
                   {"wait_ms": 1200}]
    async with FakeOpenAI(mode="scripted", script=script, after_script="idle") as srv:
        d = env.daemon(OPENAI_URL=srv.url()).start()
        db = d.conf["DATABASE_PATH"]
        d.wait_for(lambda: metric(d, "records_up") == 1, 10, "records_up 1")
        sid = twilio.call_sid(43)
        w = Watcher(db, sid)
        task = asyncio.create_task(w.run())
        cl = synth.Caller(synth.synthetic_speech(500), seconds=10, lead_ms=9500,
                          hangup_after_ms=None)
        call = asyncio.create_task(cl.run(d.base, caller="+14155557313", n=43))
        for _ in range(200):
            if w.seen or call.done():
                break
            await asyncio.sleep(0.05)
        expect(w.seen, "nothing recorded before the lock")
        # another program holds the write lock for 4 s: past the store's
        # 2 s wait, so what comes meanwhile goes to the journal
        lock = sqlite3.connect(db, timeout=5, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        await asyncio.sleep(4)
        journaled = metric(d, "records_journaled_total")
        lock.execute("COMMIT")
        lock.close()
        await asyncio.wait_for(call, 30)
        await asyncio.to_thread(settle, d, sid,
                                lambda st: st and st[0][0] == "completed",
                                "the call completed in the store", 15)
        d.wait_for(lambda: metric(d, "records_backlog") == 0, 15, "backlog replayed")
        w.stop = True
        await task
        expect(journaled and journaled > 0, "nothing was journaled: %r" % journaled)
        expect(metric(d, "records_replayed_total") >= journaled, "not all replayed")
        utts = ro_query(db, "SELECT seq, role, text FROM utterances WHERE "
                        "call_sid = ? ORDER BY seq", (sid,))
        with open(os.path.join(env.tmp, sid + ".jsonl")) as f:
            lines = [json.loads(x) for x in f]
        expect_eq([x["text"] for x in lines], ["Line %d." % k for k in range(6)],
                  "the transcript file")
        late = [seq for seq, (first, at) in w.seen.items() if first - at > 2000]
        expect(late, "no line waited for the lock: %r" % w.seen)
        expect_eq([(u[1], u[2]) for u in utts],
                  [(x["role"], x["text"]) for x in lines], "lines, once each, in order")
        expect_eq([u[0] for u in utts], list(range(1, len(utts) + 1)), "seq")
        hist = ro_query(db, "SELECT status FROM call_status WHERE call_sid = ?", (sid,))
        expect_eq(sorted(x[0] for x in hist), ["completed", "in-progress", "ringing"], "history")
        expect_eq(ro_query(db, "SELECT COUNT(*) FROM calls")[0][0], 1, "one call row")
        expect_eq(metric(d, "records_dropped_total"), 0, "dropped")
        d.stop()
