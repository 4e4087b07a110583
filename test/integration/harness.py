"""Integration harness: runs the real voxrelay binary on loopback with a
config of the test's own, and talks to it over real sockets.

Every process a test starts is ended by pid; every wait is bounded."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.join(ROOT, "build", "voxrelay")


def private_hosts_prefix(tmpdir, lines):
    """A command prefix that runs the daemon in its own mount namespace with
    its own /etc/hosts (unshare(1) execs, so the pid is the daemon's).
    None when this machine does not allow it."""
    if subprocess.call(["unshare", "-m", "true"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL) != 0:
        return None
    path = os.path.join(tmpdir, "hosts")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return ["unshare", "-m", "sh", "-c",
            'mount --bind "$0" /etc/hosts && exec "$@"', path]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


PEERS = os.path.join(ROOT, "test", "peers")
if PEERS not in sys.path:
    sys.path.insert(0, PEERS)
import twilio  # noqa: E402
PERSONAS = os.path.join(ROOT, "personas")
LINES = os.path.join(ROOT, "etc", "lines")


class FakeOpenAIProcess:
    """The fake Realtime server as a separate process, for tests that do not
    run an asyncio loop of their own (those use fake_openai.FakeOpenAI)."""

    def __init__(self, tmpdir, *args):
        self.port_file = os.path.join(tmpdir, "fake-openai-%d.port" % id(self))
        self.log_path = os.path.join(tmpdir, "fake-openai-%d.log" % id(self))
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(PEERS, "fake_openai.py"),
             "--port-file", self.port_file] + list(args),
            stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    txt = f.read().strip()
                if txt:
                    self.port = int(txt)
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError("fake OpenAI did not start")

    def url(self, scheme="ws", host="127.0.0.1"):
        return "%s://%s:%d/v1/realtime?model=gpt-realtime" % (scheme, host, self.port)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Daemon:
    def __init__(self, tmpdir, **conf):
        self.tmpdir = tmpdir
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        # the operator's listener: /health, /metrics, /usage-data, /dashboard
        self.admin_port = free_port()
        while self.admin_port == self.port:
            self.admin_port = free_port()
        self.admin_base = "http://127.0.0.1:%d" % self.admin_port
        self.conf = {
            "PORT": self.port,
            "BIND": "127.0.0.1",
            "ADMIN_PORT": self.admin_port,
            "ADMIN_BIND": "127.0.0.1",
            "WORKERS": 2,
            "PUBLIC_URL": self.base,
            "USAGE_CSV_PATH": os.path.join(tmpdir, "usage.csv"),
            "USAGE_CSV_BACKUP_PATH": os.path.join(tmpdir, "usage_backup.csv"),
            "USAGE_FLUSH_INTERVAL": 1,
            "STREAM_SECRET": "test-secret-0123456789abcdef",
            # signatures on, as on a fresh install: the peers sign with it
            "TWILIO_AUTH_TOKEN": twilio.TEST_AUTH_TOKEN,
            "LOG_LEVEL": "debug",
            "PERSONAS_DIR": PERSONAS,
            # no lines unless a test names a directory: every route is a
            # persona's, whatever /etc/voxrelay/lines holds on this machine
            "LINES_DIR": os.path.join(tmpdir, "no-lines"),
            "OPENAI_API_KEY": "sk-test",
            "TRANSCRIPTS_DIR": tmpdir,
            "DATABASE_PATH": os.path.join(tmpdir, "voxrelay.db"),
            "DATABASE_JOURNAL": os.path.join(tmpdir, "journal.ndjson"),
        }
        self.conf.update(conf)
        self.conf_path = os.path.join(tmpdir, "voxrelay.conf")
        self.log_path = os.path.join(tmpdir, "voxrelay.log")
        self.proc = None
        self.wrap = []          # a command prefix, e.g. unshare(1)
        self.env = {}           # more of the daemon's environment
        self.write_conf()

    def write_conf(self, **changes):
        self.conf.update(changes)
        with open(self.conf_path, "w") as f:
            for k, v in self.conf.items():
                if v is not None:
                    f.write("%s=%s\n" % (k, v))

    def start(self, wait=True):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        env.update(self.env)
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.wrap + [BINARY, "-d", "-f", self.conf_path],
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     env=env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10, workers=None):
        want = workers or int(self.conf["WORKERS"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("daemon exited early:\n" + self.log())
            try:
                h = self.health()
                ready = [w for w in h["workers"] if w["state"] == "ready"]
                if len(ready) >= want:
                    return h
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError("daemon not ready in %ss:\n%s" % (timeout, self.log()))

    def get(self, path, timeout=5):
        """GET on the public listener; an HTTP error status raises."""
        with urllib.request.urlopen(self.base + path, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()

    def admin_get(self, path, token=None, timeout=5, check=True):
        """GET on the operator's listener, with "Authorization: Bearer
        token" when token is given (by default the ADMIN_TOKEN of the
        config, if any; "" sends none).  check: an HTTP error status
        raises, as get() does; otherwise (status, headers, body) of it."""
        if token is None:
            token = self.conf.get("ADMIN_TOKEN") or ""
        req = urllib.request.Request(self.admin_base + path)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.headers, r.read().decode()
        except urllib.error.HTTPError as e:
            if check:
                raise
            body = e.read().decode(errors="replace")
            return e.code, e.headers, body

    def health(self):
        return json.loads(self.admin_get("/health")[2])

    def usage(self):
        body = self.admin_get("/usage-data")[2]
        lines = body.strip().split("\n")
        head = lines[0].split(",")
        rows = {}
        for line in lines[1:]:
            vals = line.split(",")
            row = dict(zip(head, vals))
            rows[row["phone_number"]] = row
        return head, rows

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=15):
        """SIGTERM, then SIGKILL of the master and any worker it left."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        pids = self.worker_pids()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        if rc is None:
            print("stop: no exit %d s after SIGTERM; SIGKILL" % timeout,
                  flush=True)
            self.proc.kill()
            rc = self.proc.wait(5)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return rc

    def kill9(self):
        """kill -9 of the daemon: the master, then its workers."""
        pids = self.worker_pids()
        self.proc.kill()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)

    def worker_pids(self):
        try:
            return [w["pid"] for w in self.health()["workers"] if w["pid"]]
        except Exception:
            return []

    def log(self):
        return read_log(self.log_path)

    def wait_for(self, pred, timeout, what="condition", interval=0.05):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = pred()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


class TestEnv:
    """What a test gets: a scratch directory and the daemons it started."""

    def __init__(self, name):
        self.tmp = tempfile.mkdtemp(prefix="vr-%s-" % name)
        self.daemons = []
        self.fakes = []

    def fake_openai(self, *args):
        f = FakeOpenAIProcess(self.tmp, *args)
        self.fakes.append(f)
        return f

    def daemon(self, **conf):
        """A daemon; unless the test names an OPENAI_URL, it talks to a fake
        OpenAI in echo mode started for it."""
        if "OPENAI_URL" not in conf:
            f = self.fake_openai("--mode", "echo")
            conf["OPENAI_URL"] = f.url()
        d = Daemon(self.tmp, **conf)
        self.daemons.append(d)
        return d

    def cleanup(self):
        for d in self.daemons:
            try:
                d.stop(5)
            except Exception:
                pass
        for f in self.fakes:
            try:
                f.stop()
            except Exception:
                pass


def read_log(path):
    """A process's log so far; "" when there is none yet."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


async def until(pred, secs, what, interval=0.1):
    """Polls pred (on a thread: it may block on the daemon) until it gives
    something true, which is returned; AssertionError after secs."""
    deadline = time.monotonic() + secs
    last = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(pred)
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def expect(cond, msg="expectation failed", *args):
    if not cond:
        raise AssertionError(msg % args if args else msg)


def expect_eq(a, b, what="value"):
    if a != b:
        raise AssertionError("%s: %r != %r" % (what, a, b))


def recv_until_close(s, deadline=30):
    """What socket s receives until the peer closes it; when it does not,
    what came before a socket timeout or the deadline (seconds)."""
    out = b""
    end = time.monotonic() + deadline
    try:
        while time.monotonic() < end:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        pass
    return out
