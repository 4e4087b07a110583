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
                  [(2,)], "schema version")
        expect_eq(db.execute("PRAGMA journal_mode").fetchone()[0], "wal",
                  "journal mode")
        tables = {r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        for t in ("calls", "call_status", "utterances", "tool_calls",
                  "caller_minutes", "used_tokens"):
            expect(t in tables, "table %s missing: %r", t, tables)
    finally:
        db.close()
    d.stop()
    expect("call records: %s, schema version 2" % d.conf["DATABASE_PATH"] in d.log(),
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
