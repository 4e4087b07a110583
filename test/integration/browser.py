"""Headless Chromium (Debian's chromium package) for the page tests
(test_dashboard.py, test_calls_page.py), driven over the DevTools protocol
with python3-websockets, so every wait is on a condition, with a
deadline."""

import asyncio
import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from urllib.parse import urlparse

import websockets
from harness import ROOT, expect, read_log

ARTEFACTS = os.path.join(ROOT, "build", "artefacts")
WIDTH, HEIGHT = 1366, 900


def chromium_binary():
    for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium"):
        if os.path.exists(p):
            return p
    return shutil.which("chromium")


class Chromium:
    """A headless Chromium in a process group of its own, with a new empty
    profile; stop() ends the group."""

    def __init__(self, tmpdir):
        self.dir = tempfile.mkdtemp(prefix="chromium-", dir=tmpdir)
        self.proc = None
        self.log_path = os.path.join(self.dir, "chromium.log")

    def start(self, deadline=30):
        binary = chromium_binary()
        expect(binary is not None, "chromium is not installed (test/deps.sh installs it)")
        profile = os.path.join(self.dir, "profile")
        os.mkdir(profile)
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--no-default-browser-check",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-crash-reporter", "--disable-breakpad",
             "--disable-extensions", "--mute-audio", "--hide-scrollbars",
             "--user-data-dir=" + profile, "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", "--window-size=%d,%d" % (WIDTH, HEIGHT),
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT,
            start_new_session=True)
        port_file = os.path.join(profile, "DevToolsActivePort")
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                with open(port_file) as f:
                    lines = f.read().split("\n")
                if len(lines) >= 2 and lines[0] and lines[1]:
                    return "ws://127.0.0.1:%s%s" % (lines[0], lines[1])
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("chromium did not start:\n" + self.log()[-3000:])

    def log(self):
        return read_log(self.log_path)

    def stop(self):
        if self.proc is None:
            return
        try:
            self.proc.wait(3)           # after Browser.close
        except subprocess.TimeoutExpired:
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                continue
        self.proc.wait(5)
        self.logf.close()


class DevTools:
    """The DevTools protocol over one WebSocket, flat sessions: replies by
    id, events kept in a list."""

    def __init__(self, url):
        self.url = url
        self.ws = None
        self.next_id = 0
        self.pending = {}
        self.events = []
        self.reader = None

    async def open(self):
        self.ws = await websockets.connect(self.url, max_size=None, open_timeout=10)
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                fut = self.pending.pop(msg.get("id"), None)
                if fut is not None:
                    if not fut.done():
                        fut.set_result(msg)
                elif "method" in msg:
                    self.events.append(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(AssertionError("DevTools connection closed"))

    async def call(self, method, params=None, session=None, deadline=15):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.send(json.dumps(msg))
        reply = await asyncio.wait_for(fut, deadline)
        if "error" in reply:
            raise AssertionError("%s: %s" % (method, reply["error"]))
        return reply["result"]

    async def close(self):
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 3)
            except Exception:
                pass
        if self.reader is not None:
            self.reader.cancel()


class Page:
    def __init__(self, dt, session):
        self.dt = dt
        self.session = session

    async def call(self, method, params=None, deadline=15):
        return await self.dt.call(method, params, self.session, deadline)

    async def eval(self, expr):
        r = await self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in r:
            raise AssertionError("page script failed: %r" % r["exceptionDetails"])
        return r["result"].get("value")

    async def wait(self, expr, deadline, what):
        end = time.monotonic() + deadline
        last = None
        while time.monotonic() < end:
            last = await self.eval(expr)
            if last:
                return last
            await asyncio.sleep(0.1)
        raise AssertionError("page: timed out waiting for %s (last %r)" % (what, last))

    async def screenshot(self, path):
        r = await self.call("Page.captureScreenshot", {"format": "png"}, deadline=30)
        data = base64.b64decode(r["data"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
        return data


def png_size(data):
    expect(data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG")
    return struct.unpack(">II", data[16:24])


async def open_page(browser, url, height=HEIGHT):
    """Starts browser, opens one tab of WIDTH x height with the Page,
    Runtime, Log and Network events on, and navigates it to url.  Returns
    the DevTools connection and the page."""
    ws_url = await asyncio.to_thread(browser.start)
    dt = DevTools(ws_url)
    await dt.open()
    try:
        target = await dt.call("Target.createTarget", {"url": "about:blank"})
        att = await dt.call("Target.attachToTarget",
                            {"targetId": target["targetId"], "flatten": True})
        page = Page(dt, att["sessionId"])
        for domain in ("Page", "Runtime", "Log", "Network"):
            await page.call(domain + ".enable")
        await page.call("Emulation.setDeviceMetricsOverride",
                        {"width": WIDTH, "height": height, "deviceScaleFactor": 1,
                         "mobile": False})
        await page.call("Page.navigate", {"url": url})
    except BaseException:
        await dt.close()
        raise
    return dt, page


async def close_browser(dt):
    """Asks Chromium to quit, so Chromium.stop() finds it gone."""
    try:
        await dt.call("Browser.close", deadline=5)
    except Exception:
        pass


def check_clean(dt, base, allowed, events=("Log.entryAdded", "Runtime.exceptionThrown")):
    """The page asked only base's origin, for paths allowed(path) accepts
    (data: URLs aside), and of the events named none reports a CSP
    violation and none is a script error."""
    origin = urlparse(base)
    for ev in dt.events:
        if ev["method"] == "Network.requestWillBeSent":
            u = urlparse(ev["params"]["request"]["url"])
            if u.scheme == "data":
                continue
            expect((u.scheme, u.netloc) == (origin.scheme, origin.netloc) and
                   allowed(u.path), "page requested %s", u.geturl())
        if ev["method"] in events:
            text = json.dumps(ev["params"])
            expect("Content Security Policy" not in text, "CSP violation: %s", text)
            expect(ev["method"] != "Runtime.exceptionThrown", "page error: %s", text)


async def wait_token_prompt(page):
    await page.wait("document.getElementById('auth') && "
                    "!document.getElementById('auth').hidden", 20, "the token prompt")


async def give_token(page, token):
    """Types token into the page's #auth prompt and submits it."""
    await page.eval("(function () { var f = document.getElementById('auth-token');"
                    " f.value = %s; document.getElementById('auth-submit').click();"
                    " })()" % json.dumps(token))


async def wait_refused(page):
    await page.wait("document.getElementById('auth').dataset.state == 'refused' && "
                    "!document.getElementById('auth').hidden", 10, "the refusal")
