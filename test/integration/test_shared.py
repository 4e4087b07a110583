"""Two daemons on one PostgreSQL server (DATABASE_URL), as two hosts
behind a load balancer: a caller's minutes used on one count on the other,
a call still live on one counts on the other within SHARED_LIVE_INTERVAL,
two calls of one caller admitted at once on both end together when their
minutes together reach the allowance, a stream token redeemed on one is refused on the other, and with the
database stopped both go on with their own ledgers and used tokens within
SHARED_TIMEOUT_MS, their records replayed once it is back.

The server is Debian's postgresql, started by test/store/pg.sh in a
directory of its own and stopped by its pid at the end."""

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time

import twilio
import websockets
from harness import ROOT, expect, expect_eq, timeout

import harness

PG_SH = os.path.join(ROOT, "test", "store", "pg.sh")
FREE_MS = 6000                  # FREE_CALL_MINUTES=0.1


class Postgres:
    """A server in a fresh directory (0755: initdb runs as nobody)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vrpg.", dir="/tmp")
        os.chmod(self.dir, 0o755)
        bins = sorted(d for d in os.listdir("/usr/lib/postgresql")
                      if os.path.isdir("/usr/lib/postgresql/%s/bin" % d)) \
            if os.path.isdir("/usr/lib/postgresql") else []
        expect(bins, "no PostgreSQL server installed (test/deps.sh installs "
               "the postgresql package)")
        self.psql_bin = "/usr/lib/postgresql/%s/bin/psql" % bins[-1]
        p = subprocess.run([PG_SH, "init", self.dir], capture_output=True,
                           text=True, timeout=60)
        expect(p.returncode == 0, "pg.sh init: %s" % p.stderr)
        self.url = p.stdout.strip().splitlines()[-1]

    def stop(self):
        subprocess.run([PG_SH, "stop", self.dir], timeout=60)

    def start(self):
        subprocess.run([PG_SH, "start", self.dir], timeout=60, check=True)

    def query(self, sql):
        p = subprocess.run([self.psql_bin, "-h", self.dir, "-U", "voxrelay",
                            "-At", "-c", sql, "vrtest"], capture_output=True,
                           text=True, timeout=10)
        expect(p.returncode == 0, "psql: %s" % p.stderr)
        return p.stdout.strip()

    def hold_lock(self, tables, seconds):
        """A session that locks tables for `seconds`: every statement on
        them waits meanwhile.  Returns the psql process, locked."""
        p = subprocess.Popen([self.psql_bin, "-h", self.dir, "-U", "voxrelay",
                              "-At", "-c", "BEGIN", "-c", "LOCK TABLE %s IN "
                              "ACCESS EXCLUSIVE MODE" % tables, "-c",
                              "SELECT pg_sleep(%d)" % seconds, "-c", "COMMIT",
                              "vrtest"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        n = len(tables.split(","))
        for _ in range(100):        # 10 s at most
            if self.query("SELECT COUNT(*) FROM pg_locks WHERE mode = "
                          "'AccessExclusiveLock' AND granted AND relation IN "
                          "(SELECT oid FROM pg_class WHERE relname IN (%s))"
                          % ", ".join("'%s'" % t.strip() for t in
                                      tables.split(","))) == str(n):
                return p
            time.sleep(0.1)
        raise AssertionError("the tables were not locked")

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def host(env, pg, name):
    """A daemon of its own directory, as a host of its own."""
    tmp = os.path.join(env.tmp, name)
    os.mkdir(tmp)
    fake = env.fake_openai("--mode", "echo")
    d = harness.Daemon(tmp, OPENAI_URL=fake.url(), WORKERS=1,
                       DATABASE_URL=pg.url, HOST_NAME=name,
                       FREE_CALL_MINUTES=0.1, MIN_CALL_DURATION=0,
                       WRAPUP_GRACE=1, SHARED_TIMEOUT_MS=200,
                       SHARED_LIVE_INTERVAL=1)
    env.daemons.append(d)
    return d


def metric(d, name):
    body = d.admin_get("/metrics")[2]
    m = re.search(r"^voxrelay_%s (\S+)$" % re.escape(name), body, re.M)
    return float(m.group(1)) if m else None


def counter(d, name):
    return d.health()["counters"][name]


def used_ms(pg, phone):
    v = pg.query("SELECT COALESCE(SUM(used_ms), 0) FROM caller_minutes "
                 "WHERE phone = '%s'" % phone)
    return int(v)


def final(pg, *sids):
    """Whether each call's record and its final minutes are in: the row
    holds the call's duration (a live write holds less, and the row keeps
    the larger), which the worker sends after the call's record."""
    return pg.query("SELECT COUNT(*) FROM calls JOIN caller_minutes USING "
                    "(call_sid) WHERE call_sid IN (%s) AND status = "
                    "'completed' AND used_ms = duration_ms"
                    % ", ".join("'%s'" % s for s in sids)) == str(len(sids))


async def call(d, n, caller, seconds):
    """Webhook and a stream of `seconds` (the daemon may end it first);
    the webhook's answer and the stream."""
    wh = await asyncio.to_thread(twilio.post_voice, d.base,
                                 twilio.call_sid(n), caller)
    expect(wh.stream_url is not None, "no stream from %s: %s" % (d.conf["HOST_NAME"],
                                                                 wh.body))
    s = twilio.Stream(wh.stream_url, twilio.call_sid(n), twilio.stream_sid(n),
                      wh.params)
    await s.open()
    try:
        await s.play(seconds)
    except websockets.ConnectionClosed:
        pass
    await finish(s)
    return wh, s


async def finish(s):
    """stop and close, or only close when the daemon ended it first."""
    try:
        await s.stop()
    except websockets.ConnectionClosed:
        await s.close()


async def upgrade_status(url):
    """The status a stream upgrade got: 101, or the refusal's."""
    try:
        ws = await websockets.connect(url, open_timeout=5, close_timeout=2)
    except websockets.InvalidStatusCode as e:
        return e.status_code
    await ws.close()
    return 101


def on(d, url):
    """The stream URL a webhook of one host gave, sent to another host."""
    return re.sub(r"^ws://127\.0\.0\.1:\d+", "ws://127.0.0.1:%d" % d.port, url)


@timeout(150)
async def test_shared_minutes_tokens_and_outage(env):
    pg = Postgres()
    try:
        await shared_case(env, pg)
    finally:
        pg.destroy()


async def live_case(a, b, pg):
    """A writes its live call's minutes every second (SHARED_LIVE_INTERVAL):
    B's webhook for the same caller offers only what is left of them while
    A's call goes on, and the figure at the end replaces the live one."""
    caller = "+14155550106"
    sid = twilio.call_sid(11)
    wh = await asyncio.to_thread(twilio.post_voice, a.base, sid, caller)
    expect(wh.stream_url is not None, "A refused a fresh caller")
    s = twilio.Stream(wh.stream_url, sid, twilio.stream_sid(11), wh.params)
    await s.open()
    play = asyncio.ensure_future(s.play(5))
    try:
        live = 0
        for _ in range(40):         # 4 s at most, the call lasts 5
            live = await asyncio.to_thread(used_ms, pg, caller)
            if live >= 2000 or time.monotonic() - s.start_at > 4:
                break
            await asyncio.sleep(0.1)
        expect(live >= 2000, "A's live call has %d ms in the database after "
               "%.1f s" % (live, time.monotonic() - s.start_at))
        expect(not play.done(), "A's call ended before the check")
        reads = counter(b, "shared_reads")
        wh = await asyncio.to_thread(twilio.post_voice, b.base,
                                     twilio.call_sid(12), caller)
        expect(not play.done(), "A's call ended before B's webhook")
        expect(a.health()["metrics"]["active_calls"] == 1,
               "A's call not live at B's webhook")
        expect(wh.stream_url is not None, "B refused a caller with minutes left")
        left = float(wh.params["minutesLeft"]) * 60000
        expect(left <= FREE_MS - live + 300,
               "B offers %.0f ms, A's live call used %d of %d" % (left, live,
                                                                  FREE_MS))
        expect_eq(counter(b, "shared_reads"), reads + 1, "B shared_reads")
        await play
    finally:
        if not play.done():
            play.cancel()
        await finish(s)
    # the figure at the end wins, in the same one row
    a.wait_for(lambda: used_ms(pg, caller) >= 4900, 10, "A's final minutes")
    rows = pg.query("SELECT host, used_ms FROM caller_minutes WHERE phone = "
                    "'%s'" % caller).split("\n")
    expect_eq(len(rows), 1, "rows for the caller: %s" % rows)
    host_, final = rows[0].split("|")
    expect_eq(host_, "host-a", "the row's host")
    expect(live < int(final) < 6500, "final %s ms after live %d" % (final, live))


async def shared_case(env, pg):
    a = host(env, pg, "host-a").start()
    b = host(env, pg, "host-b").start()
    for d in (a, b):
        d.wait_for(lambda: metric(d, "records_up") == 1, 15, "records_up")

    # ---- minutes: 4 s of 6 on A leave about 2 on B ----
    caller = "+14155550101"
    await call(a, 1, caller, 4)
    a.wait_for(lambda: final(pg, twilio.call_sid(1)), 10, "A's minutes in PG")
    first = used_ms(pg, caller)
    wh = await asyncio.to_thread(twilio.post_voice, b.base, twilio.call_sid(2),
                                 caller)
    expect(wh.stream_url is not None, "B refused a caller with minutes left")
    left = float(wh.params["minutesLeft"]) * 60000
    expect(abs(left - (FREE_MS - first)) < 700,
           "B says %.0f ms left, the database %d used" % (left, first))
    expect_eq(counter(b, "shared_reads"), 1, "shared_reads")
    # B's worker ends the call at what is left (and a 1 s wrap-up), not
    # at B's own 6 s
    s = twilio.Stream(wh.stream_url, twilio.call_sid(2), twilio.stream_sid(2),
                      wh.params)
    t0 = time.monotonic()
    await s.open()
    try:
        await s.play(7)
    except websockets.ConnectionClosed:
        pass
    took = time.monotonic() - t0
    await finish(s)
    expect(took < 5.5, "B's call lasted %.1f s of %.1f left" % (took, left / 1000))
    # B's final minutes, not a live write of them: A's webhook must see
    # the whole allowance used
    b.wait_for(lambda: final(pg, twilio.call_sid(2)), 10, "B's minutes in PG")
    # out of minutes on both hosts now
    for d, n in ((a, 3), (b, 4)):
        wh = await asyncio.to_thread(twilio.post_voice, d.base,
                                     twilio.call_sid(n), caller)
        expect(wh.stream_url is None and wh.verbs == ["Say", "Hangup"],
               "%s admitted a caller out of minutes: %s" % (d.conf["HOST_NAME"],
                                                           wh.body))
    expect_eq(counter(a, "refused_minutes"), 1, "A refused_minutes")
    expect_eq(counter(b, "refused_minutes"), 1, "B refused_minutes")
    hosts = pg.query("SELECT host FROM caller_minutes WHERE phone = '%s' "
                     "ORDER BY call_sid" % caller).split("\n")
    expect_eq(hosts, ["host-a", "host-b"], "hosts named in the minutes")

    # ---- a call live on A counts on B before it ends ----
    await live_case(a, b, pg)

    # ---- tokens: redeemed on A, refused on B (and the other way) ----
    wh = await asyncio.to_thread(twilio.post_voice, a.base, twilio.call_sid(5),
                                 "+14155550102")
    st = twilio.Stream(wh.stream_url, twilio.call_sid(5), twilio.stream_sid(5),
                       wh.params)
    await st.open()
    await st.play(0.3)
    expect_eq(await upgrade_status(on(b, wh.stream_url)), 403, "A's token on B")
    await st.stop()
    expect_eq(counter(b, "token_replayed_shared"), 1, "B token_replayed_shared")
    wh = await asyncio.to_thread(twilio.post_voice, a.base, twilio.call_sid(6),
                                 "+14155550103")
    st = twilio.Stream(on(b, wh.stream_url), twilio.call_sid(6),
                       twilio.stream_sid(6), wh.params)
    await st.open()             # A's token, redeemed first on B: taken
    await st.play(0.3)
    expect_eq(await upgrade_status(wh.stream_url), 403, "a token B took, on A")
    await st.stop()
    expect_eq(counter(a, "token_replayed_shared"), 1, "A token_replayed_shared")
    expect_eq(pg.query("SELECT host FROM used_tokens WHERE token = 'c:%s'"
                       % twilio.call_sid(6)), "host-b", "the call's claim")

    # ---- the database slow (a table locked): decided at SHARED_TIMEOUT_MS ----
    holder = pg.hold_lock("caller_minutes, used_tokens", 4)
    try:
        caller = "+14155550105"
        fb = counter(b, "shared_fallbacks")
        t0 = time.monotonic()
        wh = await asyncio.to_thread(twilio.post_voice, b.base,
                                     twilio.call_sid(8), caller)
        took = time.monotonic() - t0
        expect(wh.stream_url is not None, "B refused a call, the database slow")
        expect(0.15 < took < 1.0, "the webhook took %.2f s, the timeout 0.2 s" % took)
        expect_eq(counter(b, "shared_fallbacks"), fb + 1, "shared_fallbacks")
        tf = counter(b, "token_claim_fallbacks")
        t0 = time.monotonic()
        s = twilio.Stream(wh.stream_url, twilio.call_sid(8), twilio.stream_sid(8),
                          wh.params)
        await s.open()
        took = time.monotonic() - t0
        await s.play(0.5)
        await s.stop()
        expect(took < 1.0, "the upgrade took %.2f s, the timeout 0.2 s" % took)
        expect_eq(counter(b, "token_claim_fallbacks"), tf + 1,
                  "token_claim_fallbacks")
    finally:
        holder.wait(20)

    # ---- the database stopped: each host on its own, within the timeout ----
    pg.stop()
    caller = "+14155550104"
    t0 = time.monotonic()
    wh = await asyncio.to_thread(twilio.post_voice, b.base, twilio.call_sid(7),
                                 caller)
    took = time.monotonic() - t0
    expect(wh.stream_url is not None, "B refused a call with the database down")
    expect(took < 1.5, "the webhook took %.2f s with the database down" % took)
    expect(counter(b, "shared_fallbacks") >= 1, "shared_fallbacks")
    s = twilio.Stream(wh.stream_url, twilio.call_sid(7), twilio.stream_sid(7),
                      wh.params)
    await s.open()
    await s.play(2)
    # the call's re-reads of the other hosts' minutes found nobody: it
    # went on with the figures it had
    expect(counter(b, "shared_live_fallbacks") >= 1, "shared_live_fallbacks")
    await s.stop()
    expect(counter(b, "token_claim_fallbacks") >= 1, "token_claim_fallbacks")
    # the token is still refused on B itself (its own used tokens)
    expect_eq(await upgrade_status(wh.stream_url), 403, "B's token again on B")
    b.wait_for(lambda: (metric(b, "records_backlog") or 0) > 0, 10,
               "records in the journal")

    # ---- back: the journal replays, the claims with it ----
    pg.start()
    b.wait_for(lambda: metric(b, "records_backlog") == 0, 20, "the replay")
    expect_eq(pg.query("SELECT status FROM calls WHERE call_sid = '%s'"
                       % twilio.call_sid(7)), "completed", "B's call replayed")
    expect(used_ms(pg, caller) >= 1900, "B's minutes replayed")
    expect_eq(pg.query("SELECT host FROM used_tokens WHERE token = 'c:%s'"
                       % twilio.call_sid(7)), "host-b", "the claim replayed")
    # and now A refuses that token too
    expect_eq(await upgrade_status(on(a, wh.stream_url)), 403,
              "B's outage token on A after the replay")
    expect_eq(pg.query("SELECT COUNT(*) FROM calls WHERE call_sid = '%s'"
                       % twilio.call_sid(7)), "1", "one row")


async def run_call(s, seconds):
    """Open s and play up to `seconds`; how long it lasted from `start`
    until it closed (the daemon ends it first when the minutes run out)."""
    await s.open()
    try:
        await s.play(seconds)
    except websockets.ConnectionClosed:
        pass
    took = time.monotonic() - s.start_at
    await finish(s)
    return took


@timeout(60)
async def test_shared_calls_at_once_end_at_the_quota(env):
    """One caller, one call on A and one on B admitted at the same moment:
    each webhook sees the other's minutes as 0 and offers the whole
    allowance, and the calls still end together once their minutes on both
    hosts reach it (each master re-reads the other's live minutes every
    SHARED_LIVE_INTERVAL), not each at the whole allowance."""
    pg = Postgres()
    try:
        a = host(env, pg, "host-a").start()
        b = host(env, pg, "host-b").start()
        for d in (a, b):
            d.wait_for(lambda: metric(d, "records_up") == 1, 15, "records_up")
        caller = "+14155550107"
        sids = (twilio.call_sid(21), twilio.call_sid(22))
        wa, wb = await asyncio.gather(
            asyncio.to_thread(twilio.post_voice, a.base, sids[0], caller),
            asyncio.to_thread(twilio.post_voice, b.base, sids[1], caller))
        for d, wh in ((a, wa), (b, wb)):
            expect(wh.stream_url is not None, "%s refused a fresh caller: %s"
                   % (d.conf["HOST_NAME"], wh.body))
            expect_eq(wh.params["minutesLeft"], "0.10", "%s offers"
                      % d.conf["HOST_NAME"])
        sa = twilio.Stream(wa.stream_url, sids[0], twilio.stream_sid(21),
                           wa.params)
        sb = twilio.Stream(wb.stream_url, sids[1], twilio.stream_sid(22),
                           wb.params)
        # without the re-reads each would run the whole 6 s and its wrap-up
        took = await asyncio.gather(run_call(sa, 10), run_call(sb, 10))

        a.wait_for(lambda: final(pg, *sids), 10, "both calls' records")
        rows = dict(r.split("|") for r in pg.query(
            "SELECT host, used_ms FROM caller_minutes WHERE phone = '%s'"
            % caller).split("\n"))
        expect_eq(sorted(rows), ["host-a", "host-b"], "the minutes' hosts")
        total = sum(int(v) for v in rows.values())
        # the bound the README gives: SHARED_LIVE_INTERVAL (1 s) and 2 s
        # for the one other host, one more interval when a write reaches
        # the database after the other host's read, and each call's
        # wrap-up (WRAPUP_GRACE=1); without the re-reads each call runs
        # the whole 6 s and its wrap-up, 14 s together
        bound = FREE_MS + 3000 + 1000 + 2 * 1000
        expect(total <= bound, "the calls used %d ms together (%s; lasted "
               "%.1f and %.1f s), the allowance %d, the bound %d" % (
                   total, rows, took[0], took[1], FREE_MS, bound))
        expect(total >= FREE_MS, "the calls ended at %d ms together, before "
               "the allowance %d" % (total, FREE_MS))
        for sid in sids:
            expect_eq(pg.query("SELECT end_reason FROM calls WHERE call_sid "
                               "= '%s'" % sid), "time limit reached",
                      "%s's end" % sid)
        # each host's ledger holds its own call's row, as the CSV does
        for d in (a, b):
            led = float(d.usage()[1][caller]["minutes_used"]) * 60000
            row = int(rows[d.conf["HOST_NAME"]])
            expect(abs(led - row) <= 50, "%s: ledger %.0f ms, row %d ms" % (
                d.conf["HOST_NAME"], led, row))
            expect((metric(d, "shared_live_reads_total") or 0) >= 1,
                   "%s re-read no live minutes" % d.conf["HOST_NAME"])
        # out of minutes on both now
        for d, n in ((a, 23), (b, 24)):
            wh = await asyncio.to_thread(twilio.post_voice, d.base,
                                         twilio.call_sid(n), caller)
            expect(wh.stream_url is None, "%s admitted a caller out of "
                   "minutes" % d.conf["HOST_NAME"])
    finally:
        pg.destroy()
