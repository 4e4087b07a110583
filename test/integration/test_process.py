"""The process: -t, -v, running as a daemon with a pid file, log reopening,
a wedged worker."""

import json
import os
import signal
import subprocess
import time

import harness
import twilio
from harness import expect, expect_eq


def run(*args, env=None):
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    e.update(env or {})
    p = subprocess.run([harness.BINARY] + list(args), capture_output=True, text=True,
                       timeout=10, env=e)
    return p.returncode, p.stdout, p.stderr


def test_version_and_configtest(env):
    rc, out, _ = run("-v")
    expect_eq(rc, 0, "-v")
    expect(out.startswith("voxrelay "), "version line: %r" % out)
    d = env.daemon()
    rc, out, err = run("-t", "-f", d.conf_path)
    expect_eq(rc, 0, "-t on a good config: " + err)
    expect("is ok" in out, "ok line")
    # a bad config: every problem, with file and line
    bad = os.path.join(env.tmp, "bad.conf")
    with open(bad, "w") as f:
        f.write("PORT=99999\nFREE_CALL_MINUTES=lots\nOPENAI_URL=http://x\n"
                "PERSONAS_DIR=%s\n" % harness.PERSONAS)
    rc, out, err = run("-t", "-f", bad)
    expect(rc != 0, "-t accepted a bad config")
    expect("bad.conf:1: PORT" in err and "bad.conf:2: FREE_CALL_MINUTES" in err
           and "OPENAI_URL" in err, "errors: %r" % err)
    # the environment overrides the file, and is checked the same way
    rc, out, err = run("-t", "-f", d.conf_path, env={"PORT": "70000"})
    expect(rc != 0 and "environment PORT" in err, "environment checked: %r" % err)
    rc, out, err = run("-t", "-f", d.conf_path, env={"FREE_CALL_MINUTES": "7"})
    expect_eq(rc, 0, "environment override: " + err)
    # a bad persona: the file and the field
    pdir = os.path.join(env.tmp, "personas")
    os.makedirs(pdir)
    with open(os.path.join(harness.PERSONAS, "default.json")) as f:
        p = json.load(f)
    p["voice"] = "robot"
    with open(os.path.join(pdir, "default.json"), "w") as f:
        json.dump(p, f)
    d.write_conf(PERSONAS_DIR=pdir)
    rc, out, err = run("-t", "-f", d.conf_path)
    expect(rc != 0, "-t accepted a bad persona")
    expect("default.json: voice" in err, "persona error: %r" % err)


def test_daemon_mode_pidfile_and_log_reopen(env):
    log = os.path.join(env.tmp, "v.log")
    pidf = os.path.join(env.tmp, "v.pid")
    d = env.daemon(LOG_FILE=log, PID_FILE=pidf)
    rc, out, err = run("-f", d.conf_path)
    expect_eq(rc, 0, "daemonising: " + err)
    deadline = time.monotonic() + 5
    while not os.path.exists(pidf) and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(pidf) as f:
        pid = int(f.read())
    try:
        h = d.wait_for(lambda: _health(d), 5, "health")
        expect_eq(len(h["workers"]), 2, "workers")
        # logrotate: move the file, SIGUSR1, a new file appears
        os.rename(log, log + ".1")
        os.kill(pid, signal.SIGUSR1)
        d.wait_for(lambda: os.path.exists(log), 3, "reopened log")
        twilio.post_voice(d.base, twilio.call_sid(1), "+14155550900")
        d.wait_for(lambda: "stream offered" in open(log).read(), 3, "new lines")
        with open(log + ".1") as f:
            expect("listening on" in f.read(), "old file kept its lines")
        workers = [w["pid"] for w in h["workers"]]
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    expect(not _alive(pid), "master still running")
    expect(not any(_alive(w) for w in workers), "a worker was left behind")
    expect(not os.path.exists(pidf), "pid file left behind")


def _health(d):
    try:
        return d.health()
    except OSError:
        return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of ours does not count
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_stopped_worker_is_replaced(env):
    d = env.daemon(HEARTBEAT_TIMEOUT=1000).start()
    h = d.health()
    victim = h["workers"][1]
    os.kill(victim["pid"], signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        h = d.wait_for(lambda: [w for w in d.health()["workers"]
                                if w["slot"] == victim["slot"] and w["pid"] != victim["pid"]
                                and w["state"] == "ready"], 5, "replacement")
    finally:
        try:
            os.kill(victim["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    took = time.monotonic() - t0
    expect(took < 3.0, "replaced after %.1f s" % took)
    expect_eq(h[0]["restarts"], 1, "restarts")
    expect("no heartbeat" in d.log(), "reason not logged")
    expect_eq(d.health()["counters"]["workers_killed"], 1, "workers_killed")
