"""/dashboard/calls: the calls page in headless Chromium (driven by
browser.py) against a daemon whose SQLite database is seeded with
calls: the history with its pages and a filter, a call's record and
transcript with the cut-in utterance marked, and the analytics charts,
each read from the rendered DOM and checked against /api; with and
without ADMIN_TOKEN.  Screenshots go to the test's scratch directory and
build/artefacts/."""

import asyncio
import json
import os
import re
import sqlite3
import time
from urllib.parse import urlparse

from browser import (ARTEFACTS, WIDTH, Chromium, check_clean, close_browser, give_token,
                     open_page, png_size, wait_refused, wait_token_prompt)
from harness import expect, expect_eq, timeout
from test_api import seed, seed_calls, start

TOKEN = "calls-page-0123456789abcdef"

READ = r"""(function () {
    function v(id) { return document.getElementById(id).dataset.value; }
    return {
        historyLoads: +document.body.dataset.historyLoads,
        detailLoads: +document.body.dataset.detailLoads,
        analyticsLoads: +document.body.dataset.analyticsLoads,
        total: +v('history-total'),
        rows: Array.from(document.querySelectorAll('#history-rows tr')).map(function (r) {
            return { sid: r.dataset.callSid, status: r.dataset.status,
                     visible: r.offsetParent !== null };
        }),
        pageInfo: document.getElementById('page-info').textContent,
        prevDisabled: document.getElementById('prev').disabled,
        nextDisabled: document.getElementById('next').disabled,
        kpi: { total: +v('a-total'), success: +v('a-success'), avg: +v('a-avg'),
               p90: +v('a-p90'), minutes: +v('a-minutes'), ai: +v('a-ai'),
               caller: +v('a-caller'), cost: +v('a-cost') },
        hours: Array.from(document.querySelectorAll('#chart-hours rect')).map(function (r) {
            var b = r.getBoundingClientRect();
            return { hour: r.dataset.hour, status: r.dataset.status, n: +r.dataset.n,
                     h: b.height };
        }),
        durations: Array.from(document.querySelectorAll('#chart-durations rect')).map(
            function (r) { return +r.dataset.n; }),
        error: document.getElementById('error').textContent
    };
})()"""

READ_DETAIL = r"""(function () {
    return {
        sid: document.getElementById('detail').dataset.callSid,
        fields: Object.fromEntries(Array.from(document.querySelectorAll('#d-rec dd')).map(
            function (d) { return [d.dataset.field, d.textContent]; })),
        statuses: Array.from(document.querySelectorAll('#d-status div')).map(
            function (d) { return d.dataset.status; }),
        tools: document.getElementById('d-tools').textContent,
        utts: Array.from(document.querySelectorAll('#transcript .utt')).map(function (u) {
            return { role: u.dataset.role, seq: +u.dataset.seq,
                     interrupted: u.dataset.interrupted === '1',
                     text: u.querySelector('.text').textContent,
                     mark: (u.querySelector('.cutmark') || {}).textContent || '' };
        })
    };
})()"""


async def open_calls_page(env, d):
    browser = Chromium(env.tmp)
    dt, page = await open_page(browser, d.admin_base + "/dashboard/calls", height=1200)
    return browser, dt, page


def api_json(d, path):
    return json.loads(d.admin_get(path)[2])


def calls_page_path(path):
    """What the calls page may ask for: itself and /api."""
    return path == "/dashboard/calls" or path.startswith("/api/")


@timeout(150)
async def test_calls_page(env):
    d = await asyncio.to_thread(start, env)
    now = int(time.time() * 1000)
    calls = seed_calls(60, now, utterances=5)
    await asyncio.to_thread(seed, d, calls)
    # the second call was handed to a person after two session rollovers
    db = sqlite3.connect(d.conf["DATABASE_PATH"], timeout=10)
    db.execute("UPDATE calls SET transferred_to = '+15557654321', transfer_s = 95, "
               "transfer_status = 'completed', rollovers = 2 WHERE call_sid = ?",
               (calls[1]["call_sid"],))
    db.commit()
    db.close()

    st, hdr, body = await asyncio.to_thread(d.admin_get, "/dashboard/calls")
    expect_eq(st, 200, "GET /dashboard/calls")
    csp = hdr["Content-Security-Policy"] or ""
    expect("default-src 'none'" in csp and "connect-src 'self'" in csp, "CSP %r", csp)
    expect(re.search(r"script-src 'sha256-[A-Za-z0-9+/]{43}='", csp), "script hash: %r", csp)
    expect(not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", body),
           "the page loads something from elsewhere")

    browser, dt, page = await open_calls_page(env, d)
    try:
        await page.wait("document.body && +document.body.dataset.historyLoads >= 1 && "
                        "+document.body.dataset.analyticsLoads >= 1", 30, "the first answers")
        p = await page.eval(READ)
        h = await asyncio.to_thread(api_json, d, "/api/call-history?limit=25")
        a = await asyncio.to_thread(api_json, d, "/api/analytics")
        expect_eq(p["total"], 60, "total shown")
        expect_eq([r["sid"] for r in p["rows"]], [c["call_sid"] for c in h["calls"]],
                  "first page, newest first")
        expect(all(r["visible"] for r in p["rows"]), "rows visible")
        expect_eq(p["pageInfo"], "1–25 of 60", "page info")
        expect(p["prevDisabled"] and not p["nextDisabled"], "pager buttons")
        # analytics tiles and charts as /api/analytics says
        expect_eq(p["kpi"]["total"], a["total_calls"], "calls tile")
        expect(abs(p["kpi"]["success"] - a["success_rate"]) < 1e-9, "success tile")
        expect(abs(p["kpi"]["p90"] - a["p90_duration_s"]) < 1e-9, "p90 tile")
        expect_eq(p["kpi"]["ai"], a["ai_responses"], "AI responses tile")
        expect_eq(p["kpi"]["caller"], a["caller_inputs"], "caller inputs tile")
        want = sorted((b["hour"], s, n) for b in a["per_hour"]
                      for s, n in b["by_status"].items())
        expect_eq(sorted((r["hour"], r["status"], r["n"]) for r in p["hours"]), want,
                  "per-hour bars by outcome")
        expect(sum(r["n"] for r in p["hours"]) > 0, "the seed has calls in the last day")
        expect(all(r["h"] > 0 for r in p["hours"]), "every bar drawn")
        expect_eq(p["durations"], [b["calls"] for b in a["duration_histogram"]],
                  "duration bars")
        await page.screenshot(os.path.join(env.tmp, "calls.png"))
        shot = await page.screenshot(os.path.join(ARTEFACTS, "calls.png"))
        expect_eq(png_size(shot), (WIDTH, 1200), "screenshot size")
        expect(len(shot) > 30000, "screenshot of %d bytes: blank page?", len(shot))

        # the next page
        await page.eval("document.getElementById('next').click()")
        await page.wait("+document.body.dataset.historyLoads >= 2", 10, "page 2")
        p2 = await page.eval(READ)
        h2 = await asyncio.to_thread(api_json, d, "/api/call-history?limit=25&offset=25")
        expect_eq([r["sid"] for r in p2["rows"]], [c["call_sid"] for c in h2["calls"]],
                  "second page")
        expect_eq(p2["pageInfo"], "26–50 of 60", "page 2 info")

        # a filter: failed calls only
        await page.eval("(function () { document.getElementById('f-status').value = 'failed';"
                        " document.getElementById('f-apply').click(); })()")
        await page.wait("+document.body.dataset.historyLoads >= 3", 10, "the filtered page")
        p3 = await page.eval(READ)
        failed = [c["call_sid"] for c in sorted(calls, key=lambda c: -c["started_at"])
                  if c["status"] == "failed"]
        expect_eq([r["sid"] for r in p3["rows"]], failed, "failed calls, newest first")
        expect_eq(p3["total"], len(failed), "filtered total")
        expect(all(r["status"] == "failed" for r in p3["rows"]), "only failed rows")

        # a bad filter: the API's reason is shown, nothing else changes
        await page.eval("(function () { document.getElementById('f-since').value = 'soon';"
                        " document.getElementById('f-apply').click(); })()")
        await page.wait("document.getElementById('error').textContent.indexOf('since') >= 0",
                        10, "the 400's reason")
        await page.eval("(function () { document.getElementById('f-since').value = '';"
                        " document.getElementById('f-status').value = '';"
                        " document.getElementById('f-apply').click(); })()")
        await page.wait("+document.body.dataset.historyLoads >= 4", 10, "unfiltered again")

        # a call's record and transcript
        s = calls[1]
        await page.eval("document.querySelector('#history-rows tr[data-call-sid=\"%s\"]')"
                        ".click()" % s["call_sid"])
        await page.wait("+document.body.dataset.detailLoads >= 1", 10, "the call's record")
        det = await page.eval(READ_DETAIL)
        expect_eq(det["sid"], s["call_sid"], "call shown")
        expect_eq(det["fields"]["status"], s["status"], "status field")
        expect_eq(det["fields"]["from"], s["from"], "from field")
        expect_eq(det["fields"]["line"], s["line"], "line field")
        expect_eq(det["fields"]["to"], s["to"], "to field")
        expect_eq(det["fields"]["transferred to"], "+15557654321", "transferred to")
        expect_eq(det["fields"]["transfer"], "95 s (completed)", "the transferred leg")
        expect_eq(det["fields"]["rollovers"], "2", "rollovers")
        expect_eq(det["statuses"], ["queued", "ringing", "in-progress", s["status"]],
                  "status history")
        expect("end_call" in det["tools"], "tool calls: %r" % det["tools"])
        expect_eq([(u["seq"], u["role"], u["text"], u["interrupted"]) for u in det["utts"]],
                  [(k, r, t, cut) for k, (r, t, cut) in enumerate(s["utterances"])],
                  "transcript in order")
        cut = [u for u in det["utts"] if u["interrupted"]]
        expect_eq(len(cut), 1, "one cut utterance")
        expect_eq(cut[0]["mark"], "caller cut in at 0.42 s", "where the caller cut in")
        expect(all(u["mark"] == "" for u in det["utts"] if not u["interrupted"]),
               "no mark on the others")
        await page.screenshot(os.path.join(env.tmp, "calls-detail.png"))
        await page.screenshot(os.path.join(ARTEFACTS, "calls-detail.png"))
        check_clean(dt, d.admin_base, calls_page_path)
        await close_browser(dt)
    finally:
        await dt.close()
        await asyncio.to_thread(browser.stop)


@timeout(120)
async def test_calls_page_with_admin_token(env):
    d = await asyncio.to_thread(start, env, ADMIN_TOKEN=TOKEN)
    calls = seed_calls(8, int(time.time() * 1000))
    await asyncio.to_thread(seed, d, calls)
    browser, dt, page = await open_calls_page(env, d)
    try:
        await wait_token_prompt(page)
        locked = await page.eval("({rows: document.querySelectorAll('#history-rows tr').length,"
                                 " loads: +document.body.dataset.historyLoads,"
                                 " text: document.body.innerText})")
        expect_eq((locked["rows"], locked["loads"]), (0, 0), "nothing before the token")
        expect(calls[0]["call_sid"] not in locked["text"], "a CallSid before the token")
        await page.screenshot(os.path.join(env.tmp, "calls-token-prompt.png"))

        await give_token(page, "not-the-token-0123456789")
        await wait_refused(page)
        await give_token(page, TOKEN)
        await page.wait("+document.body.dataset.historyLoads >= 1 && "
                        "+document.body.dataset.analyticsLoads >= 1", 20, "the calls")
        p = await page.eval(READ)
        expect_eq(p["total"], 8, "total with the token")
        expect_eq([r["sid"] for r in p["rows"]],
                  [c["call_sid"] for c in sorted(calls, key=lambda c: -c["started_at"])],
                  "rows with the token")
        await page.screenshot(os.path.join(env.tmp, "calls-token.png"))
        sent = [e["params"]["request"] for e in dt.events
                if e["method"] == "Network.requestWillBeSent" and
                urlparse(e["params"]["request"]["url"]).path.startswith("/api/")]
        last = [r["headers"].get("Authorization") for r in sent][-2:]
        expect(last == ["Bearer " + TOKEN] * 2, "the last requests carry the token: %r" % last)
        check_clean(dt, d.admin_base, calls_page_path)
        await close_browser(dt)
    finally:
        await dt.close()
        await asyncio.to_thread(browser.stop)
