"""Campaigns whose contacts are a PostgreSQL table ("contacts": {"table":
...}): the master reads the rows on the store's thread at start and on
SIGHUP and dials them through the fake Twilio (twilio_rest.py) as it
dials a CSV's; a row added and SIGHUP is dialled, a row removed is not
dialled again, the contacts' state survives a reload, a restart and a
database outage at reload; `voxrelay -t` reads the table and names the
file and field of each problem.

The server is Debian's postgresql, started by test/store/pg.sh in a
directory of its own (test_shared.Postgres) and stopped by its pid."""

import asyncio
import os
import signal
import subprocess
import time

import twilio
from harness import BINARY, LINES, PERSONAS, expect, expect_eq, timeout
from test_campaigns import (ACCOUNT, api, conf, contacts, dialled, until,
                            write_campaign_file)
from test_shared import Postgres
from twilio_rest import FakeTwilioRest

NOW = "2026-03-10T15:00:00Z"    # 11:00 in New York


def write_table_campaign(dirpath, cid, table, **fields):
    write_campaign_file(dirpath, cid, {"table": table}, **fields)


def insert(pg, table, *rows):
    """rows: (phone, name, tz); account_last4 from the phone."""
    pg.query("INSERT INTO %s (phone_number, name, timezone, account_last4) "
             "VALUES %s" % (table, ", ".join(
                 "('%s', '%s', '%s', '%s')" % (p, n, tz, p[-4:])
                 for p, n, tz in rows)))


def state(d, cid, phone):
    c = contacts(d, cid).get(phone)
    return c and (c["state"], c["outcome"], c["attempts"])


@timeout(180)
async def test_campaign_table_dials_reloads_and_keeps_state(env):
    pg = Postgres()
    try:
        await table_case(env, pg)
    finally:
        pg.destroy()


async def table_case(env, pg):
    pg.query("CREATE TABLE payers (id serial, phone_number text, name text, "
             "timezone text, account_last4 text, balance numeric)")
    a, b, c, new = "+12125551001", "+12125551002", "+12125551003", "+12125551004"
    insert(pg, "payers", (a, "Ann Payer", "America/New_York"),
           (b, "Bob Payer", "America/Chicago"),
           (c, "Cy Busy", "America/New_York"))
    camp = os.path.join(env.tmp, "campaigns")
    # busy retried after 9 s: long enough to remove the row first
    write_table_campaign(camp, "tbl", "payers",
                         retry_minutes={"no-answer": 0.15, "busy": 0.15,
                                        "voicemail": 0.15, "failed": 0.15})
    async with FakeTwilioRest(ACCOUNT, twilio.TEST_AUTH_TOKEN,
                              callee_seconds=0.5) as rest:
        rest.plan(c, "busy", "human")
        d = env.daemon(**conf(rest, camp, DATABASE_URL=pg.url))
        d.env["VOXRELAY_TEST_NOW"] = NOW
        d.start()
        # each contact of the table dialled once, its outcome recorded
        await until(lambda: state(d, "tbl", a) == ("done", "answered", 1) and
                    state(d, "tbl", b) == ("done", "answered", 1) and
                    state(d, "tbl", c) == ("retry", "busy", 1), 30,
                    "the table's three contacts called")
        expect_eq((rest.count(a), rest.count(b), rest.count(c)), (1, 1, 1),
                  "one call each")
        st, summary = api(d, "/api/campaigns/tbl")
        expect_eq((st, summary["table"], summary["contacts"], summary["loaded"]),
                  (200, "payers", 3, True), "the campaign")
        expect("campaign tbl: 3 contacts read from table payers (3 new)" in
               d.log(), "the read logged")
        # written through the store's queue, a moment after the API says
        want = ["%s|done|1" % a, "%s|done|1" % b, "%s|retry|1" % c]
        await until(lambda: pg.query(
            "SELECT phone, state, attempts FROM campaign_contacts WHERE "
            "campaign = 'tbl' ORDER BY phone").split("\n") == want, 10,
            "the stored state %r" % want)
        # c removed before its retry, a new row added: SIGHUP
        pg.query("DELETE FROM payers WHERE phone_number = '%s'" % c)
        insert(pg, "payers", (new, "New Payer", "America/New_York"))
        d.signal(signal.SIGHUP)
        await until(lambda: state(d, "tbl", new) == ("done", "answered", 1), 30,
                    "the added row dialled after SIGHUP")
        cs = contacts(d, "tbl")
        expect_eq(sorted(cs), sorted([a, b, new]), "the contacts after the reload")
        expect_eq((state(d, "tbl", a), state(d, "tbl", b)),
                  (("done", "answered", 1), ("done", "answered", 1)),
                  "the others' state kept")
        # past the removed contact's retry time, it is still not dialled
        retry_at = time.monotonic() + 9
        await until(lambda: time.monotonic() > retry_at + 2 and
                    contacts(d, "tbl"), 20, "the removed one's retry time")
        expect_eq((rest.count(a), rest.count(b), rest.count(c), rest.count(new)),
                  (1, 1, 1, 1), "calls per number after the reload")
        # a restart reads the table and the stored state again
        d.stop()
        d.start()
        await until(lambda: "campaigns: 1 campaign, the state of 3 contacts read"
                    in d.log(), 20, "the state read after the restart")
        expect_eq([state(d, "tbl", p) for p in (a, b, new)],
                  [("done", "answered", 1)] * 3, "the state after the restart")
        # the removed row added back keeps its attempt (and its retry)
        insert(pg, "payers", (c, "Cy Busy", "America/New_York"))
        d.signal(signal.SIGHUP)
        await until(lambda: state(d, "tbl", c) == ("done", "answered", 2), 30,
                    "c's second attempt")
        expect_eq(rest.count(c), 2, "c dialled for its second attempt only")
        expect("campaign tbl: 4 contacts read from table payers (1 new)" in
               d.log(), "c read back as new to this run")
        # the read waits on a lock: the master's loop does not
        reads = d.log().count("contacts read from table payers")
        locker = pg.hold_lock("payers", 5)
        try:
            d.signal(signal.SIGHUP)
            await until(lambda: api(d, "/api/campaigns/tbl")[1]["loaded"] is False,
                        10, "the reload's read waiting on the lock")
            t0 = time.monotonic()
            st, summary = api(d, "/api/campaigns/tbl")
            took = time.monotonic() - t0
            expect_eq((st, summary["loaded"], summary["contacts"]), (200, False, 4),
                      "the campaign while its table is locked")
            expect(took < 1.0, "the API took %.2f s while the table was locked"
                   % took)
            expect(locker.poll() is None, "the lock was released too early")
            expect_eq(d.log().count("contacts read from table payers"), reads,
                      "read through the lock")
        finally:
            locker.wait(timeout=20)
        await until(lambda: api(d, "/api/campaigns/tbl")[1]["loaded"], 20,
                    "the read once the lock is gone")
        expect_eq(d.log().count("contacts read from table payers"), reads + 1,
                  "the reload's read")
        # the database down at a reload: the contacts last read stay
        pg.stop()
        d.signal(signal.SIGHUP)
        await until(lambda: "the 4 contacts last read stay" in d.log(), 20,
                    "the outage's warning")
        expect_eq(sorted(contacts(d, "tbl")), sorted([a, b, c, new]),
                  "the contacts kept through the outage")
        pg.start()
        insert(pg, "payers", ("+12125551005", "Late Payer", "America/New_York"))
        # read again on its own once the database answers
        await until(lambda: state(d, "tbl", "+12125551005") ==
                    ("done", "answered", 1), 40, "the row added during the outage")
        expect_eq(sum(rest.count(p) for p in (a, b, new)), 3,
                  "nobody dialled again")


def configtest(env, campaigns, **keys):
    path = os.path.join(env.tmp, "t.conf")
    base = {"CAMPAIGNS_DIR": campaigns, "LINES_DIR": LINES,
            "PERSONAS_DIR": PERSONAS, "VALIDATE_TWILIO_SIGNATURE": "false",
            "DATABASE_JOURNAL": os.path.join(env.tmp, "journal"),
            "USAGE_CSV_PATH": os.path.join(env.tmp, "usage.csv"),
            "USAGE_CSV_BACKUP_PATH": os.path.join(env.tmp, "usage-backup.csv"),
            "STREAM_SECRET": "s" * 32}
    base.update(keys)
    with open(path, "w") as f:
        for k, v in base.items():
            f.write("%s=%s\n" % (k, v))
    return subprocess.run([BINARY, "-t", "-f", path], capture_output=True,
                          text=True, timeout=30)


@timeout(90)
async def test_campaign_table_configtest_names_the_file_and_field(env):
    # no DATABASE_URL: refused before anything is read
    camp = os.path.join(env.tmp, "nourl")
    write_table_campaign(camp, "t", "payers")
    r = configtest(env, camp)
    expect_eq(r.returncode, 1, "a table without DATABASE_URL: %s" % r.stderr)
    expect("t.json: contacts: a table needs DATABASE_URL" in r.stderr, r.stderr)
    # a name that is not an identifier is never sent
    camp = os.path.join(env.tmp, "ident")
    write_table_campaign(camp, "t", "payers; DROP TABLE calls")
    write_table_campaign(camp, "u", "payers", contacts={"table": "payers",
                                                        "schema": "a-b"})
    r = configtest(env, camp, DATABASE_URL="postgresql://vr@127.0.0.1:1/vr")
    expect_eq(r.returncode, 1, "refused: %s" % r.stderr)
    expect("t.json: contacts.table: a table's name" in r.stderr, r.stderr)
    expect("u.json: contacts.schema: a schema's name" in r.stderr, r.stderr)
    pg = Postgres()
    try:
        pg.query("CREATE SCHEMA billing")
        pg.query("CREATE TABLE billing.good (phone_number text, name text, "
                 "timezone text, amount_due text)")
        pg.query("INSERT INTO billing.good VALUES ('+12125552001', 'Good', "
                 "'America/New_York', '$12.00')")
        pg.query("CREATE TABLE notz (phone_number text, name text, "
                 "amount_due text)")
        pg.query("CREATE TABLE novar (phone_number text, name text, "
                 "timezone text)")
        pg.query("CREATE TABLE badrows (phone_number text, name text, "
                 "timezone text, amount_due text, \"Bad-Col\" int)")
        pg.query("CREATE TABLE rows (phone_number text, name text, "
                 "timezone text, amount_due text)")
        pg.query("INSERT INTO rows VALUES ('+12125552101', 'A', 'America/New_York',"
                 " '1'), ('12345', 'B', 'America/New_York', '2'), "
                 "('+12125552103', 'C', 'not a zone', '3'), "
                 "('+12125552101', 'D', 'America/New_York', '4')")
        camp = os.path.join(env.tmp, "pg")
        for cid, table, schema in (("good", "good", "billing"),
                                   ("missing", "nosuch", None),
                                   ("notz", "notz", None),
                                   ("novar", "novar", None),
                                   ("badcol", "badrows", None),
                                   ("rows", "rows", None)):
            ct = {"table": table}
            if schema:
                ct["schema"] = schema
            write_table_campaign(camp, cid, table, line="reminder", contacts=ct)
        r = configtest(env, camp, DATABASE_URL=pg.url)
        expect_eq(r.returncode, 1, "refused: %s" % r.stderr)
        err = r.stderr
        expect("good.json" not in err, "the good table has no problem: %s" % err)
        expect("missing.json: contacts: table nosuch: no such table" in err, err)
        expect("notz.json: contacts: table notz: the columns phone_number, "
               "name and timezone are needed" in err, err)
        expect("novar.json: contacts: table novar: line reminder uses "
               "{{amount_due}}, which the table has no column for" in err, err)
        expect("badcol.json: contacts: table badrows: column \"Bad-Col\": a "
               "variable's name" in err, err)
        # rows counted in the order of phone_number
        expect("rows.json: contacts: table rows: row 4: phone_number: not an "
               "E.164 number" in err, err)
        expect("rows.json: contacts: table rows: row 3 (+12125552103): "
               "timezone: \"not a zone\" is not an IANA zone name" in err, err)
        expect("rows.json: contacts: table rows: row 2 (+12125552101): "
               "phone_number: listed twice (also row 1)" in err, err)
        # the good one alone passes
        for cid in ("missing", "notz", "novar", "badcol", "rows"):
            os.unlink(os.path.join(camp, cid + ".json"))
        r = configtest(env, camp, DATABASE_URL=pg.url)
        expect_eq(r.returncode, 0, "the good table: %s" % r.stderr)
        expect("1 campaigns)" in r.stdout, r.stdout)
        # the table dropped: -t says so
        pg.query("DROP TABLE billing.good")
        r = configtest(env, camp, DATABASE_URL=pg.url)
        expect_eq(r.returncode, 1, "the table dropped: %s" % r.stderr)
        expect("good.json: contacts: table billing.good: no such table" in r.stderr,
               r.stderr)
    finally:
        pg.destroy()
