"""/dashboard: the page in headless Chromium (Debian's chromium package)
against a daemon with live calls, its figures read from the rendered DOM
and checked against /health; a screenshot is kept as build/artefacts/
dashboard.png.  Chromium is driven over the DevTools protocol with
python3-websockets (browser.py), so every wait is on a condition, with a
deadline."""

import asyncio
import os
import re
import time
from urllib.parse import urlparse

import twilio
from browser import (ARTEFACTS, HEIGHT, WIDTH, Chromium, check_clean, close_browser,
                     give_token, open_page, png_size, wait_refused, wait_token_prompt)
from harness import expect, expect_eq, timeout

NCALLS = 5
# what the page may ask for
DASHBOARD_PATHS = ("/dashboard", "/health")


# Everything the test reads from the page, in one evaluation.
READ_PAGE = r"""(function () {
    function v(id) { var e = document.getElementById(id); return e ? e.dataset.value : null; }
    function t(id) { var e = document.getElementById(id); return e ? e.textContent : null; }
    var counters = {};
    document.querySelectorAll('[data-counter]').forEach(function (e) {
        counters[e.dataset.counter] = +e.dataset.value;
    });
    var lat = {};
    ['relay_in', 'relay_out', 'response', 'barge_in', 'handoff', 'session_ready',
     'greeting'].forEach(function (n) {
        lat[n] = { p50: +v('lat-' + n + '-p50'), p99: +v('lat-' + n + '-p99'),
                   count: +v('lat-' + n + '-count'),
                   points: document.querySelector('#lat-' + n + ' polyline')
                       .getAttribute('points') };
    });
    return {
        polls: +document.body.dataset.polls,
        healthTime: +document.body.dataset.healthTime,
        stale: document.body.classList.contains('stale'),
        status: document.getElementById('status').dataset.status,
        statusText: t('status'),
        version: t('version'),
        generation: +v('generation'),
        uptime: +v('uptime'),
        activeCalls: +v('active-calls'),
        activeStreams: +v('active-streams'),
        maxStreams: +v('max-streams'),
        callsCount: +v('calls-count'),
        minutesToday: +v('minutes-today'),
        callsToday: +v('calls-today'),
        totalCalls: +v('total-calls'),
        failedCalls: +v('failed-calls'),
        apiErrors: +v('api-errors'),
        ledgerCallers: +v('ledger-callers'),
        conn: t('conn'),
        workers: Array.from(document.querySelectorAll('#workers tr')).map(function (r) {
            return { slot: +r.dataset.slot, state: r.dataset.state,
                     liveCalls: +r.dataset.liveCalls, activeStreams: +r.dataset.activeStreams,
                     restarts: +r.dataset.restarts };
        }),
        calls: Array.from(document.querySelectorAll('#calls tr')).map(function (r) {
            return { sid: r.dataset.callSid, caller: r.dataset.caller, worker: +r.dataset.worker,
                     framesIn: +r.dataset.framesIn, framesOut: +r.dataset.framesOut,
                     duration: r.children[4].textContent,
                     visible: r.offsetParent !== null };
        }),
        counters: counters,
        latency: lat,
        scrollable: getComputedStyle(document.querySelector('.scroll')).overflowY
    };
})()"""


def wait_quiet(d, deadline=10):
    """Until the media counters stand still for a second: the echo of the
    fake OpenAI and its marks have come back."""
    keys = ("frames_in", "frames_out", "marks_in")
    end = time.monotonic() + deadline
    prev = None
    while time.monotonic() < end:
        h = d.health()
        now = tuple(h["counters"][k] for k in keys)
        if now == prev:
            return h
        prev = now
        time.sleep(1.0)
    raise AssertionError("media counters still moving: %r" % (prev,))


def seconds(text):
    """'1:02:03' or '2:05' -> seconds."""
    s = 0
    for part in text.split(":"):
        s = s * 60 + int(part)
    return s


async def open_calls(d, streams, first, n, number, gap=0.0):
    """n live calls, CallSids from call_sid(first) on, the i-th from the
    number (number % i); each Stream joins streams as it opens, so the
    test's close_calls() ends it whatever fails later."""
    for i in range(n):
        sid = twilio.call_sid(first + i)
        wh = twilio.post_voice(d.base, sid, number % i)
        s = twilio.Stream(wh.stream_url, sid, twilio.stream_sid(first + i), wh.params)
        await s.open()
        streams.append(s)
        if gap:
            await asyncio.sleep(gap)


async def close_calls(streams):
    for s in streams:
        try:
            await s.close()
        except Exception:
            pass


def check_against_health(p, h):
    """The rendered page p against /health h (fetched just after it)."""
    expect_eq(p["status"], h["status"], "status")
    expect_eq(p["statusText"], h["status"], "status text")
    expect_eq(p["version"], h["version"], "version")
    expect_eq(p["generation"], h["generation"], "generation")
    expect(0 <= h["uptime_s"] - p["uptime"] <= 10, "uptime %r vs %r", p["uptime"], h["uptime_s"])
    m = h["metrics"]
    expect_eq(p["activeCalls"], m["active_calls"], "live calls tile")
    expect_eq(p["activeCalls"], NCALLS, "live calls")
    expect_eq(p["callsCount"], NCALLS, "live calls count")
    expect_eq(p["activeStreams"], h["active_streams"], "streams")
    expect_eq(p["maxStreams"], h["max_streams"], "max streams")
    expect_eq(p["totalCalls"], m["total_calls"], "total calls")
    expect_eq(p["failedCalls"], m["failed_calls"], "failed calls")
    expect_eq(p["apiErrors"], m["api_errors"], "api errors")
    expect_eq(p["ledgerCallers"], h["ledger"]["callers"], "ledger callers")
    expect_eq(p["callsToday"], m["calls_today"], "calls today")
    # minutes today grow with the live calls: the page's poll came first
    dt_min = max(0, h["time_ms"] - p["healthTime"]) / 60000.0
    expect(p["minutesToday"] <= m["minutes_today"] + 1e-9 and
           m["minutes_today"] - p["minutesToday"] <= NCALLS * dt_min + 0.01,
           "minutes today %r, /health %r (%.3f min apart)", p["minutesToday"],
           m["minutes_today"], dt_min)

    # workers
    expect_eq(sorted(w["slot"] for w in p["workers"]),
              sorted(w["slot"] for w in h["workers"]), "worker rows")
    hw = {w["slot"]: w for w in h["workers"]}
    for w in p["workers"]:
        expect_eq(w["state"], hw[w["slot"]]["state"], "worker %d state" % w["slot"])
        expect_eq(w["liveCalls"], hw[w["slot"]]["live_calls"], "worker %d calls" % w["slot"])
        expect_eq(w["activeStreams"], hw[w["slot"]]["active_streams"], "worker streams")
        expect_eq(w["restarts"], hw[w["slot"]]["restarts"], "worker restarts")

    # live calls: the same calls, masked the same way, longest first
    hc = {c["call_sid"]: c for c in h["calls"]}
    expect_eq(sorted(c["sid"] for c in p["calls"]), sorted(hc), "live call rows")
    for c in p["calls"]:
        ref = hc[c["sid"]]
        expect_eq(c["caller"], ref["caller"], "masked caller")
        expect("*" in c["caller"], "caller not masked: %r", c["caller"])
        expect_eq(c["worker"], ref["worker"], "worker of %s" % c["sid"])
        expect_eq(c["framesIn"], ref["frames_in"], "frames in of %s" % c["sid"])
        expect_eq(c["framesOut"], ref["frames_out"], "frames out of %s" % c["sid"])
        expect(abs(seconds(c["duration"]) - ref["duration_s"]) <= 3,
               "duration %s vs %.1f s", c["duration"], ref["duration_s"])
    durations = [seconds(c["duration"]) for c in p["calls"]]
    expect_eq(durations, sorted(durations, reverse=True), "calls sorted by duration")
    expect(p["scrollable"] in ("auto", "scroll"), "call list does not scroll")

    # counters: the calls are quiet, so all but the HTTP ones stand still
    for name, v in h["counters"].items():
        expect(name in p["counters"], "counter %s not shown", name)
        if name.startswith("http_"):
            expect(p["counters"][name] <= v, "%s %r > %r", name, p["counters"][name], v)
        else:
            expect_eq(p["counters"][name], v, "counter %s" % name)
    # latency figures as /health gives them
    for name, lat in h["latency_us"].items():
        expect_eq(p["latency"][name]["count"], lat["count"], "%s count" % name)
        expect_eq(p["latency"][name]["p50"], lat["p50_us"], "%s p50" % name)
        expect_eq(p["latency"][name]["p99"], lat["p99_us"], "%s p99" % name)
        expect(len(p["latency"][name]["points"].split()) >= 2, "%s sparkline" % name)


@timeout(150)
async def test_dashboard_renders_health(env):
    d = env.daemon(WS_IDLE_TIMEOUT=120).start()
    st, hdr, body = await asyncio.to_thread(d.admin_get, "/dashboard")
    expect_eq(st, 200, "GET /dashboard")
    expect_eq(hdr["Content-Type"], "text/html; charset=utf-8", "Content-Type")
    expect_eq(hdr["Cache-Control"], "no-store", "Cache-Control")
    csp = hdr["Content-Security-Policy"] or ""
    expect("default-src 'none'" in csp and "connect-src 'self'" in csp, "CSP %r", csp)
    expect(re.search(r"script-src 'sha256-[A-Za-z0-9+/]{43}='", csp), "script hash: %r", csp)
    expect("unsafe-inline" not in csp.split("script-src")[1], "inline scripts allowed")
    expect(not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", body),
           "the page loads something from elsewhere")

    streams = []
    browser = Chromium(env.tmp)
    dt = None
    try:
        # 0.3 s apart: different durations, so the order is visible
        await open_calls(d, streams, 700, NCALLS, "+1555070%04d", gap=0.3)
        await asyncio.gather(*(s.play(0.5) for s in streams))
        # quiet: every frame counted, the echo and its marks back
        await asyncio.to_thread(
            d.wait_for, lambda: (lambda h: h["metrics"]["active_calls"] == NCALLS and
                                 h["counters"]["frames_in"] == NCALLS * 25 and h)(d.health()),
            10, "%d live calls, every frame counted" % NCALLS)
        await asyncio.to_thread(wait_quiet, d)

        dt, page = await open_page(browser, d.admin_base + "/dashboard")
        # three polls: the sparklines have history, the deltas a base
        await page.wait("document.body && +document.body.dataset.polls >= 3", 30,
                        "three polls of /health")
        polls = await page.eval("+document.body.dataset.polls")
        await page.wait("+document.body.dataset.polls > %d" % polls, 10, "a fresh poll")
        p = await page.eval(READ_PAGE)
        h = await asyncio.to_thread(d.health)
        check_against_health(p, h)

        # the durations tick between polls
        first = p["calls"][0]
        await asyncio.sleep(1.2)
        later = await page.eval(
            "document.querySelector('#calls tr[data-call-sid=\"%s\"]').children[4].textContent"
            % first["sid"])
        expect(seconds(later) > seconds(first["duration"]), "duration %s then %s",
               first["duration"], later)

        # the filter: one caller's digits leave one row, and the count says so
        shown = await page.eval(r"""(function () {
            var f = document.getElementById('calls-filter');
            f.value = '0003'; f.dispatchEvent(new Event('input'));
            var rows = document.querySelectorAll('#calls tr');
            var r = [rows.length, document.getElementById('calls-shown').textContent];
            f.value = ''; f.dispatchEvent(new Event('input'));
            return r; })()""")
        expect_eq(shown[0], 1, "rows after filtering")
        expect_eq(shown[1], "showing 1 of %d" % NCALLS, "filter count")

        shot = await page.screenshot(os.path.join(ARTEFACTS, "dashboard.png"))
        expect_eq(png_size(shot), (WIDTH, HEIGHT), "screenshot size")
        expect(len(shot) > 20000, "screenshot of %d bytes: blank page?", len(shot))

        # nothing but /dashboard and /health was requested, nothing blocked
        check_clean(dt, d.admin_base, lambda path: path in DASHBOARD_PATHS,
                    ("Log.entryAdded", "Runtime.exceptionThrown",
                     "Runtime.consoleAPICalled"))

        # the daemon goes away: the page says so and keeps the last data
        for s in streams:
            await s.stop()
        streams = []
        await asyncio.to_thread(d.wait_for, lambda: d.health()["metrics"]["active_calls"] == 0,
                                10, "calls ended")
        await page.wait("+document.body.dataset.polls > %d" % (p["polls"] + 1), 10, "a poll")
        await asyncio.to_thread(d.stop)
        await page.wait("document.getElementById('status').dataset.status == 'unreachable'",
                        15, "the page to notice the daemon is gone")
        gone = await page.eval(READ_PAGE)
        expect(gone["stale"], "last data not marked stale")
        expect_eq(gone["version"], h["version"], "version kept")
        expect_eq(len(gone["workers"]), len(h["workers"]), "worker rows kept")
        expect("unreachable" in gone["conn"] and "last good data" in gone["conn"],
               "connection line %r", gone["conn"])
        await page.screenshot(os.path.join(ARTEFACTS, "dashboard-unreachable.png"))
        await close_browser(dt)
    finally:
        await close_calls(streams)
        if dt is not None:
            await dt.close()
        await asyncio.to_thread(browser.stop)


ADMIN_TOKEN = "dash-0123456789abcdef-token"


@timeout(120)
async def test_dashboard_with_admin_token(env):
    """ADMIN_TOKEN set: the page loads without it, finds /health answering
    401 and asks for the token (#auth), refuses a wrong one, then with the
    right one shows the live calls as /health has them; the token is kept
    in sessionStorage, sent as "Authorization: Bearer" on every poll, and a
    reload of the page does not ask again.  Screenshots of the prompt and
    of the unlocked page are kept in the test's scratch directory."""
    d = env.daemon(ADMIN_TOKEN=ADMIN_TOKEN, WS_IDLE_TIMEOUT=120).start()
    ncalls = 2
    streams = []
    browser = Chromium(env.tmp)
    dt = None
    try:
        await open_calls(d, streams, 800, ncalls, "+1555080%04d")
        await asyncio.gather(*(s.play(0.3) for s in streams))
        await asyncio.to_thread(
            d.wait_for, lambda: d.health()["metrics"]["active_calls"] == ncalls, 10,
            "%d live calls" % ncalls)
        refused0 = (await asyncio.to_thread(d.health))["counters"]["admin_auth_failed"]

        dt, page = await open_page(browser, d.admin_base + "/dashboard")

        # the prompt, and no figure behind it
        await wait_token_prompt(page)
        locked = await page.eval("""({status: document.getElementById('status').dataset.status,
            polls: +document.body.dataset.polls,
            calls: document.querySelectorAll('#calls tr').length,
            text: document.body.innerText})""")
        expect_eq(locked["status"], "locked", "status while asking")
        expect_eq(locked["polls"], 0, "polls rendered without the token")
        expect_eq(locked["calls"], 0, "call rows without the token")
        expect(twilio.call_sid(800) not in locked["text"], "a CallSid before the token")
        await page.screenshot(os.path.join(env.tmp, "dashboard-token-prompt.png"))

        # a wrong token: asked again, and told why
        await give_token(page, "not-the-token-0123456789")
        await wait_refused(page)
        expect_eq(await page.eval("document.getElementById('auth-msg').textContent"),
                  "that token was refused", "refusal message")
        expect_eq(await page.eval("sessionStorage.getItem('voxrelay-admin-token')"), None,
                  "a refused token kept")

        # the right one: live data
        await give_token(page, ADMIN_TOKEN)
        await page.wait("+document.body.dataset.polls >= 2", 20, "two polls with the token")
        expect(await page.eval("document.getElementById('auth').hidden"), "prompt still shown")
        expect_eq(await page.eval("sessionStorage.getItem('voxrelay-admin-token')"),
                  ADMIN_TOKEN, "token in sessionStorage")
        p = await page.eval(READ_PAGE)
        h = await asyncio.to_thread(d.health)
        expect_eq(p["status"], h["status"], "status")
        expect_eq(p["activeCalls"], ncalls, "live calls tile")
        expect_eq(sorted(c["sid"] for c in p["calls"]),
                  sorted(c["call_sid"] for c in h["calls"]), "live call rows")
        expect_eq({c["sid"]: c["caller"] for c in p["calls"]},
                  {c["call_sid"]: c["caller"] for c in h["calls"]}, "masked callers")
        expect_eq(p["counters"]["admin_auth_failed"] - refused0, 2,
                  "admin_auth_failed shown: the first poll and the wrong token")
        await page.screenshot(os.path.join(env.tmp, "dashboard-token.png"))

        # a reload of the page: the token comes from sessionStorage
        polls_before_reload = len([e for e in dt.events
                                   if e["method"] == "Network.requestWillBeSent"])
        await page.eval("window.oldDocument = true")
        await page.call("Page.reload", {"ignoreCache": True})
        # (while the new document loads, body and #status may not exist)
        await page.wait("!window.oldDocument && document.body && "
                        "document.getElementById('status') && "
                        "+document.body.dataset.polls >= 1 && "
                        "document.getElementById('status').dataset.status != 'locked'",
                        20, "a poll after the reload")
        expect(await page.eval("document.getElementById('auth').hidden"),
               "asked again after a reload")
        h2 = await asyncio.to_thread(d.health)
        expect_eq(h2["counters"]["admin_auth_failed"] - refused0, 2,
                  "refusals after the reload")

        # every /health request after the token was given carried it
        sent = [e["params"]["request"] for e in dt.events
                if e["method"] == "Network.requestWillBeSent" and
                urlparse(e["params"]["request"]["url"]).path == "/health"]
        auth = [r["headers"].get("Authorization") for r in sent]
        expect(len(auth) >= 4, "/health requests seen: %r", auth)
        expect_eq(auth[0], None, "the first poll, before the token")
        expect_eq(auth[1], "Bearer not-the-token-0123456789", "the wrong token")
        expect(all(a == "Bearer " + ADMIN_TOKEN for a in auth[2:]),
               "polls without the token: %r", auth)
        expect(polls_before_reload < len(dt.events), "no request after the reload")
        check_clean(dt, d.admin_base, lambda path: path in DASHBOARD_PATHS)
        await close_browser(dt)
    finally:
        await close_calls(streams)
        if dt is not None:
            await dt.close()
        await asyncio.to_thread(browser.stop)
