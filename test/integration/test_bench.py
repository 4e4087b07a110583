"""The benchmark's C tools (test/bench/, `make bench-tools`) against the
real daemon, at a size that runs in seconds: loadgen --relay plays
Twilio's side of ConversationRelay conversations (signed handshakes, setup,
prompts, interrupts) and fake_upstream answers their text sessions.  What
`make bench-relay` reports rests on these checks: every turn comes back
whole and in order, interrupts reach the daemon, and the latency figures
are taken."""

import json
import os
import signal
import subprocess
import time

import twilio
from harness import expect, expect_eq
from run import timeout

ROUTE = "bench"


def tool(name):
    import harness
    path = os.path.join(os.path.dirname(harness.BINARY), "bench", name)
    expect(os.access(path, os.X_OK), "%s is not built: make bench-tools", path)
    return path


class Fake:
    """build/bench/fake_upstream, one worker, its deltas every delta_ms."""

    def __init__(self, env, delta_ms):
        self.binary = tool("fake_upstream")
        self.port_file = os.path.join(env.tmp, "fake.port")
        self.pid_file = os.path.join(env.tmp, "fake.pids")
        self.stats = os.path.join(env.tmp, "fake.stats")
        self.logf = open(os.path.join(env.tmp, "fake.log"), "wb")
        self.proc = subprocess.Popen(
            [self.binary, "-b", "127.0.0.1", "-p", "0", "-j", "1", "-P", self.port_file,
             "-i", self.pid_file, "-S", self.stats, "-w", str(delta_ms)],
            stdout=self.logf, stderr=subprocess.STDOUT)
        self.pids = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            if os.path.exists(self.port_file) and os.path.exists(self.pid_file):
                self.port = int(open(self.port_file).read())
                self.pids = [int(x) for x in open(self.pid_file).read().split()]
                return
            time.sleep(0.02)
        self.stop()
        raise AssertionError("fake_upstream did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        # its worker, by pid, if it is still that program
        for pid in self.pids[1:]:
            try:
                if os.path.realpath(os.readlink("/proc/%d/exe" % pid)) == \
                        os.path.realpath(self.binary):
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.logf.close()


def relay_line(env):
    d = os.path.join(env.tmp, "lines")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, ROUTE + ".json"), "w") as f:
        json.dump({"app": "agent", "persona": "dental", "free_minutes": None,
                   "max_call_minutes": None, "sms": None, "tools": ["end_call"],
                   "transport": "conversation_relay",
                   "conversation_relay": {"welcomeGreeting": "Hello."}}, f)
    return d


def loadgen(d, fake, calls, auth_token, *extra):
    cmd = [tool("loadgen"), "--url", d.base, "--admin-url", d.admin_base,
           "--calls", str(calls), "--seconds", "3", "--ramp", "0.5", "--settle", "1",
           "--grace", "1", "--setup-max", "5", "-j", "1", "--daemon-pid", str(d.proc.pid),
           "--fake-pids", ",".join(str(p) for p in fake.pids), "--fake-stats", fake.stats,
           "--relay", "--route", ROUTE, "--auth-token", auth_token,
           "--max-p99-ms", "1000"] + list(extra)
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=60).stdout.decode(errors="replace")
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):]), out
    raise AssertionError("loadgen printed no result:\n" + out)


@timeout(90)
def test_bench_relay_tools_turns_whole_and_interrupts_counted(env):
    fake = Fake(env, delta_ms=10)
    try:
        d = env.daemon(OPENAI_URL="ws://127.0.0.1:%d/v1/realtime?model=gpt-realtime"
                       % fake.port, LINES_DIR=relay_line(env)).start()
        r, out = loadgen(d, fake, 6, twilio.TEST_AUTH_TOKEN, "--every", "0.4",
                         "--interrupt-every", "3")
    finally:
        fake.stop()
    x = r["relay"]
    expect(r["pass"], "the run did not pass:\n%s", out)
    expect_eq(r["established"], 6, "conversations up")
    expect(x["turns_sent"] >= 6 * 5, "too few turns: %d", x["turns_sent"])
    # every prompt answered to last: true, or cut by our interrupt
    expect_eq(x["turns_done"] + x["turns_cut"], x["turns_sent"], "turns accounted")
    expect_eq(x["turns_bad"], 0, "turns with a wrong token")
    expect_eq(x["turns_lost"], 0, "turns lost")
    expect(x["turns_cut"] >= 6, "too few interrupts: %d", x["turns_cut"])
    # the daemon saw each prompt and interrupt; the tokens add up: ten words
    # and the closing last: true per whole turn, three before each interrupt
    expect_eq(x["daemon_prompts"], x["turns_sent"], "prompts the daemon counted")
    expect_eq(x["daemon_interrupts"], x["turns_cut"], "interrupts the daemon counted")
    expect_eq(x["tokens"], 11 * x["turns_done"] + 3 * x["turns_cut"] +
              x["tokens_after_interrupt"], "tokens")
    expect_eq(x["daemon_tokens"], x["tokens"], "tokens the daemon counted")
    # the latency figures are there and hang together
    expect(x["first_token_ms"]["count"] > 0, "no first-token sample")
    expect_eq(x["added_us"]["count"], x["first_token_ms"]["count"], "daemon-part samples")
    expect(x["added_us"]["p50"] <= x["first_token_ms"]["p50"] * 1000 + 1,
           "the daemon's part exceeds the whole: %r", x)
    expect(r["daemon_cpu_ms_per_call_s"] > 0, "no daemon CPU measured")


@timeout(60)
def test_bench_relay_tools_wrong_token_fails_the_run(env):
    """A generator that signs with the wrong auth token gets nowhere: the
    run fails with every conversation refused, none counted as up."""
    fake = Fake(env, delta_ms=0)
    try:
        d = env.daemon(OPENAI_URL="ws://127.0.0.1:%d/v1/realtime?model=gpt-realtime"
                       % fake.port, LINES_DIR=relay_line(env)).start()
        r, out = loadgen(d, fake, 3, "not-the-auth-token")
    finally:
        fake.stop()
    expect(not r["pass"], "a refused run passed:\n%s", out)
    expect_eq(r["established"], 0, "conversations up")
    expect_eq(r["relay"]["turns_sent"], 0, "turns sent")
