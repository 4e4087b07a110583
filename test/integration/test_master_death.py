"""A master that dies loses no minute: its workers journal what it had not
saved (USAGE_CSV_PATH.rescue) and the next master takes the journal before
it serves, once, whatever crash comes in between."""

import asyncio
import os
import signal
import sqlite3
import time

import harness
import twilio
from harness import expect, expect_eq

A, B, C = "+15554000001", "+15554000002", "+15554000003"


def until(pred, secs, what):
    return harness.until(pred, secs, what, interval=0.05)


def gone(pid):
    """The process has exited (a zombie nobody reaped counts as exited)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def csv_rows(path):
    """phone -> (seconds used, calls) from a usage CSV on disk."""
    rows = {}
    try:
        with open(path) as f:
            lines = f.read().strip().split("\n")
    except OSError:
        return rows
    head = lines[0].split(",")
    for line in lines[1:]:
        r = dict(zip(head, line.split(",")))
        rows[r["phone_number"].lstrip("'")] = (float(r["minutes_used"]) * 60,
                                               int(r["total_calls"]))
    return rows


def used(d):
    """phone -> (seconds used, calls) as /usage-data shows them."""
    return {p: (float(r["minutes_used"]) * 60, int(r["total_calls"]))
            for p, r in d.usage()[1].items()}


def metric(d, name):
    for line in d.admin_get("/metrics")[2].split("\n"):
        if line.startswith("voxrelay_%s " % name):
            return float(line.split()[1])
    raise AssertionError("no metric %s" % name)


def stored_call(d, sid):
    """(status, end_reason, duration_ms, failure_class) of a call's record."""
    db = sqlite3.connect(d.conf["DATABASE_PATH"], timeout=5)
    try:
        row = db.execute("SELECT status, end_reason, duration_ms, failure_class "
                         "FROM calls WHERE call_sid = ?", (sid,)).fetchone()
        return tuple(row) if row else None
    finally:
        db.close()


async def call(d, n, caller):
    wh = twilio.post_voice(d.base, twilio.call_sid(n), caller)
    s = twilio.Stream(wh.stream_url, twilio.call_sid(n), twilio.stream_sid(n))
    await s.open()
    return s


def within(got, lo, hi, what, below=0.3, above=1.2):
    """got between lo - below and hi + above: the daemon starts billing a
    little after `start` is sent, and ends a call it is told to end
    between the moment the peer asks and the moment it is done."""
    expect(lo - below <= got <= hi + above,
           "%s: %.2f s counted, the call ran %.2f to %.2f s" % (what, got, lo, hi))


async def ended(s, secs):
    """Play secs, then stop: the call's length as (least, most)."""
    await s.play(secs)
    t = time.monotonic()
    await s.stop()
    return t - s.start_at, time.monotonic() - s.start_at


async def test_master_kill9_loses_no_minute(env):
    """Calls live on both workers and a call ended since the last save,
    then kill -9 of the master: after the restart each caller has the time
    the calls ran, once."""
    d = env.daemon(WORKERS=2, USAGE_FLUSH_INTERVAL=3).start()
    csv = d.conf["USAGE_CSV_PATH"]

    # A's first call, ended and saved
    a1 = await call(d, 401, A)
    a1_lo, a1_hi = await ended(a1, 1.0)
    await until(lambda: A in csv_rows(csv), 10, "A's first call saved")

    # A and B talking, one on each worker
    a2 = await call(d, 402, A)
    b = await call(d, 403, B)
    players = [asyncio.ensure_future(s.play(30.0)) for s in (a2, b)]

    def on_two_workers():
        by = {c["call_sid"]: c["worker"] for c in d.health()["calls"]}
        w = (by.get(twilio.call_sid(402)), by.get(twilio.call_sid(403)))
        return w[0] is not None and w[1] is not None and w
    w = await until(on_two_workers, 5, "both calls live")
    expect(w[0] != w[1], "both calls on worker %r" % (w[0],))

    # C's call ends just before the kill: folded into the ledger (its
    # version moves), not saved yet (the next save is seconds away)
    c = await call(d, 404, C)
    v0 = d.health()["ledger"]["version"]
    c_lo, c_hi = await ended(c, 1.0)
    await until(lambda: d.health()["ledger"]["version"] > v0, 5, "C's call folded")

    pids = d.worker_pids()
    expect_eq(len(pids), 2, "workers")
    t_kill = time.monotonic()
    os.kill(d.proc.pid, signal.SIGKILL)
    d.proc.wait(5)
    await until(lambda: all(gone(p) for p in pids), 15, "the workers to exit")
    for p in players:
        p.cancel()
    for s in (a2, b):
        await s.close()
    a2_s = t_kill - a2.start_at
    b_s = t_kill - b.start_at

    d.start()
    u = await asyncio.to_thread(used, d)
    within(u.get(A, (0, 0))[0], a1_lo + a2_s, a1_hi + a2_s,
           "A (one call saved, one live)", below=0.6)
    within(u.get(B, (0, 0))[0], b_s, b_s, "B (live)")
    within(u.get(C, (0, 0))[0], c_lo, c_hi, "C (ended before the kill)", above=0.3)
    expect_eq((u[A][1], u[B][1], u[C][1]), (2, 1, 1), "calls per caller")
    log = d.log()
    expect("minutes taken from the rescue journal" in log, "no word of the journal")
    for line in log.split("\n"):
        if "journal" in line:
            expect(not any(p in line for p in (A, B, C)), "a full number: %s" % line)
    expect(metric(d, "rescue_records_taken_total") >= 3, "records taken")
    expect(not os.path.exists(csv + ".rescue") and
           not os.path.exists(csv + ".rescue.taking"), "the journal left behind")
    # the records of the calls live at the kill are closed, naming it
    for n, secs in ((402, a2_s), (403, b_s)):
        def closed():
            r = stored_call(d, twilio.call_sid(n))
            return r is not None and r[0] == "failed" and r
        r = await until(closed, 10, "call %d's record closed" % n)
        expect_eq((r[1], r[3]), ("the master died", "master"), "call %d's end" % n)
        within(r[2] / 1000.0, secs, secs, "call %d's record" % n)
    # (C's end was in the dead master's queue for the store, or written:
    # either way not closed as the master's death)
    expect(stored_call(d, twilio.call_sid(404))[0] != "failed", "C's record")
    expect(metric(d, "records_closed_master_died_total") == 2, "records closed")
    # saved, once: a stop and another start change nothing
    expect_eq(d.stop(), 0, "exit status")
    d.start()
    u2 = await asyncio.to_thread(used, d)
    for p in (A, B, C):
        expect(abs(u2[p][0] - u[p][0]) < 0.01 and u2[p][1] == u[p][1],
               "%s: %r then %r" % (p, u[p], u2[p]))


test_master_kill9_loses_no_minute.timeout = 90


# ---- journals written here, as a dead master's workers leave them ----

def check(s):
    h = 2166136261
    for ch in s.encode():
        h = ((h ^ ch) * 16777619) & 0xffffffff
    return "%08x" % h


def rec(rid, phone, ms, calls=1, last=1795230245000, call="-"):
    body = "r1 %s %s %d %d %d %s" % (rid, phone, ms, calls, last, call)
    return body + " " + check(body) + "\n"


def stamp(dev, ino, size, mtime_ns):
    body = "t1 %d %d %d %d" % (dev, ino, size, mtime_ns)
    return body + " " + check(body) + "\n"


def csv_stamp(path):
    st = os.stat(path)
    return stamp(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


async def test_rescue_journal_torn_and_taken_twice(env):
    """A journal with a duplicate record and a torn last line; then taking
    files a crash left behind, before and after the save that held them:
    nothing lost, nothing counted twice."""
    d = env.daemon(WORKERS=1)
    csv = d.conf["USAGE_CSV_PATH"]
    journal, taking = csv + ".rescue", csv + ".rescue.taking"
    write(csv, "phone_number,minutes_used,minutes_remaining,last_call_date,"
          "total_calls\n%s,1.000000,4.000000,2026-11-21T03:04:05Z,1\n" % A)
    write(journal, "\n" + rec("s:MZ1", A, 30000) + "\n" + rec("l:7.1:" + B, B, 60000, 2)
          + "\n" + rec("l:7.1:" + B, B, 60000, 2)
          + "\n" + rec("s:MZ2", C, 45000)[:20])
    d.start()
    u = await asyncio.to_thread(used, d)
    expect_eq((round(u[A][0], 3), u[A][1]), (90.0, 2), "A")
    expect_eq((round(u[B][0], 3), u[B][1]), (60.0, 2), "B")
    expect(C not in u, "C's torn record counted: %r" % (u.get(C),))
    expect_eq(metric(d, "rescue_records_taken_total"), 2, "records taken")
    expect_eq(metric(d, "rescue_lines_skipped_total"), 2, "lines skipped")
    expect("skipped" in d.log(), "no word of the torn line")
    expect(not os.path.exists(journal) and not os.path.exists(taking), "journal left")
    expect_eq(csv_rows(csv)[B], (60.0, 2), "B saved")
    expect_eq(d.stop(), 0, "exit status")

    # taken, saved, then a crash before the removal: the CSV is no longer
    # the stamped one, so it is only removed
    write(taking, stamp(1, 2, 3, 4) + "\n" + rec("s:MZ3", C, 12000))
    d.start()
    u = await asyncio.to_thread(used, d)
    expect(C not in u, "a journal saved before counted again: %r" % (u.get(C),))
    expect(not os.path.exists(taking), "taking file left")
    expect_eq(d.stop(), 0, "exit status")

    # taken, then a crash before the save: the CSV is still the stamped
    # one, so it is taken again
    write(taking, csv_stamp(csv) + "\n" + rec("s:MZ4", C, 12000))
    # ... and a crash before the stamp: taken too
    d.start()
    u = await asyncio.to_thread(used, d)
    expect_eq((round(u[C][0], 3), u[C][1]), (12.0, 1), "C taken again")
    expect_eq(d.stop(), 0, "exit status")
    write(taking, "\n" + rec("s:MZ5", C, 6000))
    d.start()
    u = await asyncio.to_thread(used, d)
    expect_eq((round(u[C][0], 3), u[C][1]), (18.0, 2), "C, an unstamped one added")
    expect_eq((round(u[A][0], 3), round(u[B][0], 3)), (90.0, 60.0), "A and B unchanged")
    expect_eq(d.stop(), 0, "exit status")
    d.start()
    u = await asyncio.to_thread(used, d)
    expect_eq((round(u[C][0], 3), u[C][1]), (18.0, 2), "C once")


test_rescue_journal_torn_and_taken_twice.timeout = 60


async def test_master_dies_before_saving_a_taken_journal(env):
    """The journal taken at start, the save after it failing (the backup's
    name is a directory), then kill -9 of that master: its workers do not
    journal the taken minutes again, and the next start takes the kept
    file once."""
    d = env.daemon(WORKERS=2)
    csv = d.conf["USAGE_CSV_PATH"]
    backup = d.conf["USAGE_CSV_BACKUP_PATH"]
    taking = csv + ".rescue.taking"
    write(csv, "phone_number,minutes_used,minutes_remaining,last_call_date,"
          "total_calls\n%s,1.000000,4.000000,2026-11-21T03:04:05Z,1\n" % A)
    write(csv + ".rescue", "\n" + rec("s:MZ9", B, 60000))
    os.mkdir(backup)
    d.start()
    u = await asyncio.to_thread(used, d)
    expect_eq((round(u[A][0], 3), round(u[B][0], 3)), (60.0, 60.0), "taken")
    expect("kept until the usage ledger is saved" in d.log(), "the save did not fail")
    expect(os.path.exists(taking), "the taking file not kept")
    pids = d.worker_pids()
    os.kill(d.proc.pid, signal.SIGKILL)
    d.proc.wait(5)
    await until(lambda: all(gone(p) for p in pids), 15, "the workers to exit")
    os.rmdir(backup)
    d.start()
    u = await asyncio.to_thread(used, d)
    expect_eq((round(u[A][0], 3), u[A][1]), (60.0, 1), "A")
    expect_eq((round(u[B][0], 3), u[B][1]), (60.0, 1), "B, once")
    expect(not os.path.exists(taking) and not os.path.exists(csv + ".rescue"),
           "a journal left")


test_master_dies_before_saving_a_taken_journal.timeout = 60


async def test_journal_locked_by_a_stopped_worker_does_not_stop_the_master(env):
    """A worker of the dead master stopped while it holds the journal's
    lock: the master starts and serves anyway, and takes the journal at
    the first save interval after the lock is let go."""
    import fcntl
    d = env.daemon(WORKERS=1, USAGE_FLUSH_INTERVAL=1)
    csv = d.conf["USAGE_CSV_PATH"]
    write(csv + ".rescue", "\n" + rec("s:MZ7", B, 30000))
    f = open(csv + ".rescue", "a")
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
        d.start(wait=False)
        d.wait_ready(timeout=30)
        expect("locked by a worker" in d.log(), "no word of the lock")
        expect(B not in (await asyncio.to_thread(used, d)), "taken under the lock")
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
    await until(lambda: B in used(d), 10, "the journal taken")
    expect_eq(used(d)[B], (30.0, 1), "B")
    await until(lambda: not os.path.exists(csv + ".rescue.taking"), 10,
                "the journal removed")
    expect_eq(csv_rows(csv)[B], (30.0, 1), "B saved")


test_journal_locked_by_a_stopped_worker_does_not_stop_the_master.timeout = 60
