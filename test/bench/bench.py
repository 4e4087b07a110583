#!/usr/bin/python3
"""The driver of `make bench`: runs the real daemon between the load
generator and the fake Realtime server (build/bench/), on loopback, and
prints a results table.

Default plan (`make bench`):
  1. plain ws:// upstream, 500 calls;
  2. records: the same with a caller line and a model line every 3 s of
     every call, each recorded in the SQLite call records (the plain run
     has none): the daemon's CPU per call-second of the two is compared;
  3. TLS (wss://) upstream, 500 calls;
  4. relay: 500 ConversationRelay conversations (loadgen --relay on a
     conversation_relay line, fake_upstream's text sessions): a final
     prompt every 2 s per conversation answered with ten words, a delta
     every 20 ms, every 4th answer interrupted after its third token;
     reported in a table of its own, beside the Media Streams figures
     (`make bench-relay`: plain 500, then relay 50, 200 and 500);
  5. first answer: 20 calls one after another with PREWARM=off, then 20
     with PREWARM=on, each upgraded 250 ms after its webhook, against the
     Python fake OpenAI (test/peers/fake_openai.py) answering the first
     session.update 300 ms late: webhook to session.updated and `start` to
     the first greeting audio, p50 and max of each;
  records-pg (not in the default plan): the records run with DATABASE_URL
     on a PostgreSQL server the driver starts (test/store/pg.sh init, unix
     socket, fsync off) and stops by its pid at the end; its tables are
     emptied after each run.  With records in the same invocation the
     driver prints the daemon CPU per call-second of each run, the medians
     and their ratio (e.g. --modes records,records-pg --repeat 3).
  6. a plain sweep: 100, 250, 500, 750, 1000, 1500, 2000, 3000 calls,
     stopping at the first step that fails (p99 round trip >= 20 ms, a frame
     lost, a call not established or dropped).
Each run gets a fresh daemon and fake server, a ramp (1.5 s per 1000 calls;
10 s per 1000 with TLS, where each call costs a handshake on both sides), a
settling time, then a measured window of --seconds.

Overrides (make bench BENCH_ARGS="..."):
  --calls N        calls of the plain/TLS pair (alone: no sweep)
  --seconds S      measured window per run (default 20)
  --sweep LIST     comma-separated call counts, or "none"
  --modes LIST     plain,records,tls,relay,first (default all five);
                   records-off is the records run with CALL_RECORDS=false,
                   records-pg the records run on PostgreSQL (below)
  --repeat N       the modes' runs N times over, interleaved (default 1)
  --relay-calls LIST   conversation counts of the relay mode (default 500)
  --relay-every S      s between a conversation's prompts (default 2)
  --relay-delta-ms MS  ms between the fake's text deltas (default 20)
  --relay-interrupt-every N  every Nth turn interrupted (default 4; 0 none)
  --first-calls N  calls of each first-answer run (default 20)
  --session-delay-ms MS, --twilio-gap-ms MS  the first-answer runs' fake
                   session.updated delay (300) and webhook-to-upgrade gap (250)
  --workers N      daemon workers (default 2)
  --gen-procs N    load generator processes (default 2)
  --fake-procs N   fake server processes (default 2)
  --marks-with-frames  echo marks with the next frame (fewer writes)
  --codec own|proto    the fake server's WebSocket framing
  --nice N         run the daemon, generator and fake at this nice value
                   (e.g. -5 on a machine shared with other work; root only)
  --keep           keep the run directories (build/bench/runs/)
  --profile        sample the workers with `perf record -e cpu-clock` through
                   the window and print where their time went: user space,
                   write() (and inside it, delivery into the peer's socket
                   and waking the peer), read(), epoll_wait()
  --compare BIN    another voxrelay binary (the baseline, e.g. one built from
                   main in a worktree of its own): plain runs at --calls
                   (default 500), alternating BIN and this build's, --pairs
                   times (default 3; the order turns every pair); prints
                   each pair's daemon CPU per call-second, the medians and
                   the median of the ratios
  --pairs N        pairs of the comparison (default 3)
  --records-pairs N  instead of the plan: N pairs of records-off (the
                   records run's transcript lines with CALL_RECORDS=false)
                   and records at --calls, alternating; prints each pair's
                   daemon CPU per call-second, the medians and the median
                   ratio against issue 14's 10 % bound

Every process started here is ended by pid, also on failure or ^C.
Nothing listens beyond 127.0.0.1."""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# signatures on, as on a fresh install: loadgen signs each webhook with it
BENCH_AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
STARTED = []            # Popen objects, ended in reverse order
EXTRA_PIDS = {}         # pid -> executable, from pid files and /health (workers)


def log(msg):
    print(msg, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def raise_nofile(want=0):
    """The soft descriptor limit up to the hard one, and both up to want
    where the hard one is lower and we may (root; at most fs.nr_open).
    The daemon, the generator and the fake inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < want:
        try:
            with open("/proc/sys/fs/nr_open") as f:
                want = min(want, int(f.read()))
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            soft, hard = want, want
        except (OSError, ValueError):
            pass
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pid_is(pid, exe):
    """pid is alive and runs exe: never signal a pid that was reused."""
    try:
        return os.path.realpath(os.readlink("/proc/%d/exe" % pid)) == os.path.realpath(exe)
    except OSError:
        return False


def end_pid(pid, exe, sig=signal.SIGKILL):
    if pid_is(pid, exe):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    EXTRA_PIDS.pop(pid, None)


def stop_proc(p, timeout=10):
    """SIGTERM, wait, SIGKILL: one process we started."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    if p in STARTED:
        STARTED.remove(p)


def cleanup():
    for p in reversed(list(STARTED)):
        try:
            stop_proc(p, 5)
        except Exception:
            pass
    for pid, exe in list(EXTRA_PIDS.items()):
        end_pid(pid, exe)


def on_signal(sig, frame):
    raise KeyboardInterrupt


NICE = 0


def preexec():
    if NICE:
        os.nice(NICE)


def http_json(url, timeout=3):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode())


class Postgres:
    """A PostgreSQL server of our own for the records-pg runs, started by
    test/store/pg.sh in a fresh directory and stopped by it (by pid)."""

    def __init__(self):
        import tempfile
        self.sh = os.path.join(ROOT, "test", "store", "pg.sh")
        self.dir = tempfile.mkdtemp(prefix="vrpg.", dir="/tmp")
        os.chmod(self.dir, 0o755)
        out = subprocess.run([self.sh, "init", self.dir], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=120)
        if out.returncode != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError("pg.sh init: " + out.stderr.decode(errors="replace"))
        self.url = out.stdout.decode().strip().splitlines()[-1]
        bins = sorted(d for d in os.listdir("/usr/lib/postgresql"))
        self.psql = "/usr/lib/postgresql/%s/bin/psql" % bins[-1]

    def query(self, sql):
        out = subprocess.run([self.psql, "-h", self.dir, "-U", "voxrelay", "-At",
                              "-c", sql, "vrtest"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(out.stderr.decode(errors="replace").strip())
        return out.stdout.decode().strip()

    def stop(self):
        subprocess.run([self.sh, "stop", self.dir], timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


PG = None               # the records-pg runs' server, once started


class Fake:
    def __init__(self, binary, rundir, procs, tls_files=None, codec="own",
                 transcript_every=0, delta_ms=0):
        self.binary = binary
        self.port_file = os.path.join(rundir, "fake.port")
        self.pid_file = os.path.join(rundir, "fake.pids")
        self.log_path = os.path.join(rundir, "fake.log")
        self.stats_file = os.path.join(rundir, "fake.stats")
        args = [binary, "-b", "127.0.0.1", "-p", "0", "-j", str(procs),
                "-P", self.port_file, "-i", self.pid_file, "-C", codec,
                "-S", self.stats_file]
        if tls_files:
            args += ["-c", tls_files["cert"], "-k", tls_files["key"]]
        if transcript_every:
            args += ["-t", str(transcript_every)]
        if delta_ms:
            args += ["-w", str(delta_ms)]
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT,
                                     preexec_fn=preexec)
        STARTED.append(self.proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(self.port_file) and os.path.exists(self.pid_file):
                self.port = int(open(self.port_file).read().strip())
                self.pids = [int(x) for x in open(self.pid_file).read().split()]
                for pid in self.pids[1:]:
                    EXTRA_PIDS[pid] = binary
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("fake server did not start: " + self.log())

    def log(self):
        try:
            return open(self.log_path, errors="replace").read()
        except OSError:
            return ""

    def stop(self):
        stop_proc(self.proc)
        for pid in self.pids[1:]:
            end_pid(pid, self.binary)


class Daemon:
    def __init__(self, binary, rundir, conf):
        self.binary = binary
        self.port = conf["PORT"]
        self.base = "http://127.0.0.1:%d" % self.port
        self.admin_base = "http://127.0.0.1:%d" % conf["ADMIN_PORT"]
        self.conf_path = os.path.join(rundir, "voxrelay.conf")
        self.log_path = conf["LOG_FILE"]
        with open(self.conf_path, "w") as f:
            for k, v in conf.items():
                f.write("%s=%s\n" % (k, v))
        self.outf = open(os.path.join(rundir, "voxrelay.out"), "ab")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        self.proc = subprocess.Popen([binary, "-d", "-f", self.conf_path],
                                     stdout=self.outf, stderr=subprocess.STDOUT,
                                     env=env, preexec_fn=preexec)
        STARTED.append(self.proc)
        self.workers = []
        want = int(conf["WORKERS"])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("daemon exited at start:\n" + self.log()[-3000:])
            try:
                h = http_json(self.admin_base + "/health")
                ready = [w for w in h["workers"] if w["state"] == "ready"]
                if len(ready) >= want:
                    self.workers = [w["pid"] for w in h["workers"] if w["pid"]]
                    for pid in self.workers:
                        EXTRA_PIDS[pid] = binary
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError("daemon not ready:\n" + self.log()[-3000:])

    def log(self):
        try:
            return open(self.log_path, errors="replace").read()
        except OSError:
            return ""

    def stop(self):
        try:
            h = http_json(self.admin_base + "/health")
            pids = [w["pid"] for w in h["workers"] if w["pid"]]
        except Exception:
            pids = []
        stop_proc(self.proc, 20)
        for pid in set(pids + self.workers):
            end_pid(pid, self.binary)
        return self.proc.returncode


LOG_NOISE = re.compile(r"^\S+ (warn|error|crit|fatal)\b", re.I)


def log_trouble(text):
    """warn/error lines of the daemon's log, grouped with a count."""
    groups = {}
    for line in text.splitlines():
        m = LOG_NOISE.match(line)
        if not m:
            continue
        # drop the time, pids and call sids: group alike lines
        key = re.sub(r"^\S+ ", "", line)
        key = re.sub(r"\[\d+\]", "[]", key)
        key = re.sub(r"\bCA[0-9a-f]{32}\b", "CA…", key)
        key = re.sub(r"\d+", "N", key)
        groups[key] = groups.get(key, 0) + 1
    return sorted(groups.items(), key=lambda kv: -kv[1])


# What --profile reports: perf's "children" share of each of these kernel
# functions, i.e. the time spent in them and below.
PROFILE_KEYS = [
    ("ksys_write", "write()"),
    ("process_backlog", "  of which delivery into the peer's socket (loopback)"),
    ("sock_def_readable", "  of which waking the peer"),
    ("ksys_read", "read()"),
    ("do_epoll_wait", "epoll_wait()"),
    ("schedule", "sleeping and switching (schedule)"),
]


def profile_start(args, daemon, rundir, ramp):
    """perf record on the workers through the window, or None."""
    perf = shutil.which("perf")
    if perf is None:
        log("  profile: perf not found (Debian: linux-perf)")
        return None
    pids = ",".join(str(p) for p in daemon.workers)
    out = os.path.join(rundir, "perf.data")
    wait = ramp + args.settle + 1.0
    secs = max(1.0, min(args.seconds - 1.0, 10.0))
    cmd = ["/bin/sh", "-c", 'sleep %.2f; exec "$0" record -q -e cpu-clock -F 999 -g '
           '-p %s -o %s -- sleep %.2f' % (wait, pids, out, secs), perf]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    STARTED.append(p)
    return p, out


def profile_report(prof):
    """Prints the shares of PROFILE_KEYS and of user space."""
    p, path = prof
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        log("  profile: perf overran and was killed")
        return None
    finally:
        if p in STARTED:
            STARTED.remove(p)
    if not os.path.exists(path):
        log("  profile: perf recorded nothing: %s" % err.decode(errors="replace").strip()[:300])
        return None
    rep = subprocess.run(["perf", "report", "-i", path, "--children", "--sort", "sym",
                          "-g", "none", "--stdio"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, timeout=120).stdout.decode(errors="replace")
    samples = re.search(r"# Samples: (\S+)", rep)
    children, user = {}, 0.0
    for line in rep.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+([\d.]+)%\s+\[(.)\]\s+(\S+)", line)
        if not m:
            continue
        total, own, where, sym = float(m.group(1)), float(m.group(2)), m.group(3), m.group(4)
        if where == ".":
            user += own
        else:
            children.setdefault(sym, total)
    shares = {"user": user}
    parts = ["user space %.0f%%" % user]
    for sym, label in PROFILE_KEYS:
        shares[sym] = children.get(sym, 0.0)
        parts.append("%s %.0f%%" % (label.strip(), shares[sym]))
    log("  profile of the workers (perf cpu-clock, %s samples): %s"
        % (samples.group(1) if samples else "?", "; ".join(parts)))
    log("  (perf's sampling costs CPU too: take CPU figures from a run without "
        "--profile)")
    return shares


def persona_dir(rundir):
    """personas/default.json without its greeting: the echo server would
    otherwise be asked to speak first."""
    d = os.path.join(rundir, "personas")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(ROOT, "personas", "default.json")) as f:
        p = json.load(f)
    p.pop("greeting", None)
    with open(os.path.join(d, "default.json"), "w") as f:
        json.dump(p, f, indent=2)
    # the relay runs' line (its welcomeGreeting is said by Twilio)
    shutil.copy(os.path.join(ROOT, "personas", "dental.json"), d)
    return d


def relay_lines(rundir):
    """A ConversationRelay line, "bench" (POST /voice/bench), for the relay
    runs: the dental persona, Twilio saying the welcome."""
    d = os.path.join(rundir, "lines")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "bench.json"), "w") as f:
        json.dump({"app": "agent", "persona": "dental", "free_minutes": None,
                   "max_call_minutes": None, "sms": None, "tools": ["end_call"],
                   "transport": "conversation_relay",
                   "conversation_relay": {"welcomeGreeting": "Hello, how can I help?"}},
                  f, indent=2)
    return d


def make_certs(dirpath):
    os.makedirs(dirpath, exist_ok=True)
    out = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "test", "peers", "certs.py"),
                          dirpath], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=60, check=True)
    paths = json.loads(out.stdout.decode())
    return {"ca": paths["ca"], "cert": paths["cert"], "key": paths["key"]}


def run_one(args, label, calls, tls, run_no, certs, binary=None):
    rundir = os.path.join(args.build, "bench", "runs", "%02d-%s-%d" % (run_no, label, calls))
    shutil.rmtree(rundir, ignore_errors=True)
    os.makedirs(rundir)
    binaries = os.path.join(args.build, "bench")
    fake = daemon = None
    result = None
    relay = label == "relay"
    try:
        # the records run: a caller line and a model line every 3 s of every
        # call (150 appends of 20 ms), each a record for the store
        fake = Fake(os.path.join(binaries, "fake_upstream"), rundir, args.fake_procs,
                    certs if tls else None, args.codec,
                    transcript_every=150 if label in ("records", "records-off",
                                                      "records-pg") else 0,
                    delta_ms=args.relay_delta_ms if relay else 0)
        port = free_port()
        admin_port = free_port()
        while admin_port == port:
            admin_port = free_port()
        conf = {
            "PORT": port,
            "BIND": "127.0.0.1",
            "ADMIN_PORT": admin_port,
            "ADMIN_BIND": "127.0.0.1",
            "WORKERS": args.workers,
            "PUBLIC_URL": "http://127.0.0.1:%d" % port,
            "STREAM_SECRET": "bench-secret-0123456789abcdef",
            "TWILIO_AUTH_TOKEN": BENCH_AUTH_TOKEN,
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_URL": ("wss://localhost:%d" if tls else "ws://127.0.0.1:%d") % fake.port
            + "/v1/realtime?model=gpt-realtime",
            "FREE_CALL_MINUTES": 1000000,
            "MAX_WEBSOCKET_CONNECTIONS": max(5000, int(calls * 1.2)),
            "MAX_HTTP_CONNECTIONS": 16384,
            "LOG_LEVEL": "info",
            "LOG_FILE": os.path.join(rundir, "voxrelay.log"),
            "USAGE_CSV_PATH": os.path.join(rundir, "usage.csv"),
            "USAGE_CSV_BACKUP_PATH": os.path.join(rundir, "usage_backup.csv"),
            "PERSONAS_DIR": persona_dir(rundir),
            "TRANSCRIPTS_DIR": "",
            "DATABASE_PATH": os.path.join(rundir, "voxrelay.db"),
            "DATABASE_JOURNAL": os.path.join(rundir, "journal.ndjson"),
            "DRAIN_TIMEOUT": 5,
        }
        if label == "records-pg":
            conf["DATABASE_URL"] = PG.url
        if tls:
            conf["OPENAI_CA_FILE"] = certs["ca"]
        if label == "records-off":
            # the same transcript lines, nothing recorded
            conf["CALL_RECORDS"] = "false"
        if relay:
            conf["LINES_DIR"] = relay_lines(rundir)
        for kv in args.set or []:
            k, _, v = kv.partition("=")
            conf[k] = v
        daemon = Daemon(binary or os.path.join(args.build, "voxrelay"), rundir, conf)
        ramp = max(1.0, calls * (args.tls_ramp_per_1000 if tls else args.ramp_per_1000)
                   / 1000.0)
        cmd = [os.path.join(binaries, "loadgen"), "--url", daemon.base,
               "--admin-url", daemon.admin_base,
               "--calls", str(calls), "--seconds", str(args.seconds),
               "--ramp", "%.2f" % ramp, "--settle", str(args.settle),
               "--grace", str(args.grace), "-j", str(args.gen_procs),
               "--daemon-pid", str(daemon.proc.pid),
               "--fake-pids", ",".join(str(p) for p in fake.pids),
               "--fake-stats", fake.stats_file,
               "--label", "%s-%d" % (label, calls),
               "--max-p99-ms", str(args.max_p99_ms)]
        if conf.get("TWILIO_AUTH_TOKEN"):
            cmd += ["--auth-token", conf["TWILIO_AUTH_TOKEN"]]
        if args.marks_with_frames:
            cmd.append("--marks-with-frames")
        if relay:
            cmd += ["--relay", "--route", "bench", "--every", str(args.relay_every),
                    "--interrupt-every", str(args.relay_interrupt_every)]
        log("$ " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c
                            for c in cmd))
        lg = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              preexec_fn=preexec)
        STARTED.append(lg)
        prof = profile_start(args, daemon, rundir, ramp) if args.profile else None
        limit = ramp + args.settle + 30 + args.seconds + args.grace + 40
        try:
            out, _ = lg.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            lg.kill()
            out, _ = lg.communicate()
            log("  loadgen overran %.0f s and was killed" % limit)
        STARTED.remove(lg)
        for line in out.decode(errors="replace").splitlines():
            if line.startswith("BENCH_JSON "):
                result = json.loads(line[len("BENCH_JSON "):])
            else:
                log(line)
        shares = profile_report(prof) if prof is not None else None
        alive = daemon.proc.poll() is None
        shared = {}
        if label == "records-pg" and alive:
            # how the webhooks' reads of the shared minutes went
            try:
                c = http_json(daemon.admin_base + "/health")["counters"]
                shared = {k: c.get(k, 0) for k in ("shared_reads", "shared_fallbacks",
                                                   "token_replayed_shared",
                                                   "token_claim_fallbacks")}
                log("  shared: %d webhooks read the minutes in PostgreSQL, %d decided "
                    "without (SHARED_TIMEOUT_MS); %d upgrades on the local tokens only"
                    % (shared["shared_reads"], shared["shared_fallbacks"],
                       shared["token_claim_fallbacks"]))
            except (OSError, ValueError, KeyError):
                pass
        rc = daemon.stop()
        daemon_log = daemon.log()
        trouble = log_trouble(daemon_log)
        if trouble:
            log("  daemon log: %d warning/error line(s):" % sum(n for _, n in trouble))
            for text, n in trouble[:6]:
                log("    %6d x %s" % (n, text[:200]))
        if not alive:
            log("  DAEMON EXITED DURING THE RUN (code %s)" % rc)
        if result is not None:
            if label == "records-pg":
                result.update(count_records_pg())
                result.update(shared)
            elif str(conf.get("CALL_RECORDS", "")).lower() in ("false", "no",
                                                               "0", "off"):
                # no database was made: nothing to count
                log("  records: off (CALL_RECORDS=false)")
            else:
                result.update(count_records(conf["DATABASE_PATH"]))
            result["tls"] = tls
            result["mode"] = label
            result["daemon_log_warnings"] = sum(n for _, n in trouble)
            result["daemon_survived"] = alive
            if shares is not None:
                result["profile_pct"] = shares
            if not alive:
                result["pass"] = False
        fake.stop()
        fake_log = fake.log().strip().splitlines()
        for line in fake_log:
            if "worker" in line and "ended" in line:
                log("  fake: " + line)
    finally:
        if daemon is not None and daemon.proc.poll() is None:
            daemon.stop()
        if fake is not None and fake.proc.poll() is None:
            fake.stop()
        if not args.keep:
            # keep the logs of a failing run
            if result is not None and result.get("pass"):
                shutil.rmtree(rundir, ignore_errors=True)
    return result


def first_answer(args, run_no):
    """The warm first answer, PREWARM off then on, on fresh daemons: a
    dict of the figures of each, or None."""
    import asyncio
    sys.path.insert(0, os.path.join(ROOT, "test", "peers"))
    import firstanswer
    from fake_openai import FakeOpenAI

    async def go():
        out = {}
        async with FakeOpenAI(mode="echo", api_key="sk-bench") as srv:
            for i, pw in enumerate(("off", "on")):
                rundir = os.path.join(args.build, "bench", "runs", "%02d-first-%s" % (
                    run_no, pw))
                shutil.rmtree(rundir, ignore_errors=True)
                os.makedirs(rundir)
                port = free_port()
                admin_port = free_port()
                while admin_port == port:
                    admin_port = free_port()
                conf = {
                    "PORT": port, "BIND": "127.0.0.1", "ADMIN_PORT": admin_port,
                    "ADMIN_BIND": "127.0.0.1", "WORKERS": args.workers,
                    "PUBLIC_URL": "http://127.0.0.1:%d" % port,
                    "STREAM_SECRET": "bench-secret-0123456789abcdef",
                    "TWILIO_AUTH_TOKEN": BENCH_AUTH_TOKEN, "OPENAI_API_KEY": "sk-bench",
                    "OPENAI_URL": srv.url(), "PREWARM": pw, "LOG_LEVEL": "info",
                    "LOG_FILE": os.path.join(rundir, "voxrelay.log"),
                    "USAGE_CSV_PATH": os.path.join(rundir, "usage.csv"),
                    "USAGE_CSV_BACKUP_PATH": os.path.join(rundir, "usage_backup.csv"),
                    "PERSONAS_DIR": os.path.join(ROOT, "personas"),
                    "LINES_DIR": os.path.join(rundir, "no-lines"),
                    "TRANSCRIPTS_DIR": "",
                    "DATABASE_PATH": os.path.join(rundir, "voxrelay.db"),
                    "DATABASE_JOURNAL": os.path.join(rundir, "journal.ndjson"),
                    "DRAIN_TIMEOUT": 5,
                }
                d = await asyncio.to_thread(Daemon, os.path.join(args.build, "voxrelay"),
                                            rundir, conf)
                try:
                    out[pw] = await firstanswer.timed_calls(
                        d.base, srv, 100 * (i + 1), args.first_calls, "default",
                        args.session_delay_ms, args.twilio_gap_ms,
                        auth_token=BENCH_AUTH_TOKEN)
                    h = await asyncio.to_thread(http_json, d.admin_base + "/health")
                    if out[pw] is not None:
                        log("  " + firstanswer.line("PREWARM=%-3s" % pw, out[pw]))
                        log("  daemon: greeting p50 %.0f ms, session_ready p50 %.0f ms "
                            "(%d samples), prewarm_used %d, prewarm_fallback %d" % (
                                h["latency_us"]["greeting"]["p50_us"] / 1000,
                                h["latency_us"]["session_ready"]["p50_us"] / 1000,
                                h["latency_us"]["session_ready"]["count"],
                                h["counters"]["prewarm_used"],
                                h["counters"]["prewarm_fallback"]))
                    else:
                        log("  PREWARM=%s: a call was not answered; see %s" % (
                            pw, conf["LOG_FILE"]))
                finally:
                    await asyncio.to_thread(d.stop)
                if out[pw] is not None and not args.keep:
                    shutil.rmtree(rundir, ignore_errors=True)
        return out

    out = asyncio.run(go())
    if not out.get("off") or not out.get("on"):
        return None
    figs = {}
    for pw, v in out.items():
        figs[pw] = {"ready_ms_p50": firstanswer.pct([x[0] for x in v], 0.5),
                    "ready_ms_max": max(x[0] for x in v),
                    "greeting_ms_p50": firstanswer.pct([x[1] for x in v], 0.5),
                    "greeting_ms_max": max(x[1] for x in v)}
    return figs


def count_records(path):
    """What the run left in the call records (the daemon has stopped)."""
    try:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
        try:
            calls = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
            done = db.execute("SELECT COUNT(*) FROM calls WHERE status IN "
                              "('completed', 'failed')").fetchone()[0]
            utts = db.execute("SELECT COUNT(*) FROM utterances").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as e:
        log("  records: %s" % e)
        return {}
    log("  records: %d calls (%d ended), %d utterances" % (calls, done, utts))
    return {"records_calls": calls, "records_ended": done, "records_utterances": utts}


def count_records_pg():
    """count_records() on the server, whose tables are then emptied for
    the next run (the generator's CallSids repeat from run to run)."""
    try:
        calls, done, utts = (int(x) for x in PG.query(
            "SELECT (SELECT COUNT(*) FROM calls), (SELECT COUNT(*) FROM calls "
            "WHERE status IN ('completed', 'failed')), (SELECT COUNT(*) FROM "
            "utterances)").split("|"))
        PG.query("TRUNCATE calls, call_status, utterances, tool_calls, "
                 "caller_minutes, used_tokens")
    except (RuntimeError, ValueError) as e:
        log("  records: %s" % e)
        return {}
    log("  records: %d calls (%d ended), %d utterances (PostgreSQL)" % (calls, done, utts))
    return {"records_calls": calls, "records_ended": done, "records_utterances": utts}


def records_pg_compare(results):
    """Each records and records-pg run's daemon CPU per call-second, the
    medians, and PostgreSQL's against SQLite's."""
    lite = [r["daemon_cpu_ms_per_call_s"] for r in results
            if r is not None and r.get("mode") == "records"]
    pg = [r["daemon_cpu_ms_per_call_s"] for r in results
          if r is not None and r.get("mode") == "records-pg"]
    if not lite or not pg:
        return None
    a, b = median(lite), median(pg)
    return ("records on SQLite: daemon CPU %s ms per call-s, median %.3f; on PostgreSQL: "
            "%s, median %.3f; PostgreSQL / SQLite %.3f (%+.1f%%)"
            % (", ".join("%.3f" % x for x in lite), a,
               ", ".join("%.3f" % x for x in pg), b, b / a if a else float("nan"),
               (b - a) / a * 100 if a else float("nan")))


def records_compare(results):
    """The records run against the plain run: the daemon's CPU per
    call-second of each."""
    by = {r["mode"]: r for r in results if r is not None}
    if "plain" not in by or "records" not in by:
        return None
    a = by["plain"]["daemon_cpu_ms_per_call_s"]
    b = by["records"]["daemon_cpu_ms_per_call_s"]
    pct = (b - a) / a * 100 if a else 0.0
    return ("records: daemon CPU %.3f ms per call-s with %d utterances recorded, "
            "%.3f without (%+.1f%%, %s the 10%% bound); frames lost %d"
            % (b, by["records"].get("records_utterances", 0), a, pct,
               "within" if abs(pct) <= 10 else "OUTSIDE", by["records"]["frames_lost"]))


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if n == 0:
        return float("nan")
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0


def compare_report(pairs, base, new, what="plain upstream", bound=5):
    """The comparison's figures: each pair's daemon CPU per call-second
    (baseline, this build, ratio; in all and its user-space part, which
    is the daemon's own code), the medians and the median ratios.  bound:
    the per cent more that is allowed."""
    def user(r):
        return r["daemon_cpu_ms_per_call_s"] - r.get("daemon_kernel_ms_per_call_s", 0.0)

    lines = ["comparison: daemon CPU ms per call-second (user space in brackets), "
             "%s, baseline %s against %s" % (what, base, new),
             "| pair | baseline | this build | ratio | user ratio | others' CPU "
             "(of a core) | verdicts |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    a_all, b_all, ratios, ua, ub, uratios = [], [], [], [], [], []
    for i, (a, b) in enumerate(pairs, 1):
        if a is None or b is None:
            lines.append("| %d | %s | %s | - | - | - | a run failed to report |"
                         % (i, "-" if a is None else "%.3f" % a["daemon_cpu_ms_per_call_s"],
                            "-" if b is None else "%.3f" % b["daemon_cpu_ms_per_call_s"]))
            continue
        x, y = a["daemon_cpu_ms_per_call_s"], b["daemon_cpu_ms_per_call_s"]
        a_all.append(x)
        b_all.append(y)
        ratios.append(y / x if x else float("nan"))
        ua.append(user(a))
        ub.append(user(b))
        uratios.append(ub[-1] / ua[-1] if ua[-1] else float("nan"))
        lines.append("| %d | %.3f (%.3f) | %.3f (%.3f) | %.3f | %.3f | %.0f%% / %.0f%% "
                     "| %s / %s |"
                     % (i, x, ua[-1], y, ub[-1], ratios[-1], uratios[-1],
                        a.get("other_cpu_pct", 0), b.get("other_cpu_pct", 0),
                        "PASS" if a["pass"] else "FAIL", "PASS" if b["pass"] else "FAIL"))
    if ratios:
        r = median(ratios)
        lines.append("medians: baseline %.3f (user %.3f), this build %.3f (user %.3f) ms "
                     "per call-s; median ratio %.3f (%+.1f%%: %s the bound of %d%% "
                     "more), of the user-space parts %.3f"
                     % (median(a_all), median(ua), median(b_all), median(ub), r,
                        (r - 1) * 100, "within" if r <= 1 + bound / 100.0 else "OUTSIDE",
                        bound, median(uratios)))
    return "\n".join(lines)


def fmt_row(r):
    if r is None:
        return None
    rtt = r["rtt_ms"]
    ri, ro = r["relay_us"]["in"], r["relay_us"]["out"]
    return [
        r["label"],
        "%d/%d" % (r["established"], r["calls"]),
        "%d / %d" % (r["frames_sent"], r["frames_lost"]),
        "%.2f / %.1f / %.0f" % (rtt["p50"], rtt["p99"], rtt["max"]),
        "%.0f / %.0f / %.0f" % (ri["p50"], ri["p99"], ri["max"]),
        "%.0f / %.0f / %.0f" % (ro["p50"], ro["p99"], ro["max"]),
        "%.2f" % r["daemon_cpu_ms_per_call_s"],
        "%.1f (%.1f)" % (r["daemon_rss_kib"]["idle"] / 1024.0,
                         r["daemon_pss_kib"]["idle"] / 1024.0),
        "%.0f / %.0f" % (r["daemon_rss_kib"]["per_call"], r["daemon_pss_kib"]["per_call"]),
        "%.0f%% / %.0f%%" % (r["gen_cpu_pct"], r["fake_cpu_pct"]),
        "%.0f%% (%.0f%%)" % (r["machine_busy_pct"], r["other_cpu_pct"]),
        ("PASS" if r["pass"] else "FAIL") + (" *" if r["bottleneck"] else ""),
    ]


HEADER = ["run", "calls up", "frames sent / lost", "RTT p50 / p99 / max ms",
          "relay in p50 / p99 / max µs", "relay out p50 / p99 / max µs",
          "daemon CPU ms per call-s", "idle RSS (PSS) MiB", "per call RSS / PSS KiB",
          "generator / fake CPU", "machine busy (others, of a core)", "verdict"]


def table(results):
    rows = [HEADER, ["---"] * len(HEADER)]
    rows += [fmt_row(r) for r in results if r is not None and r.get("mode") != "relay"]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


RELAY_HEADER = ["run", "conversations up", "turns sent / answered / interrupted / lost / bad",
                "prompt to first token p50 / p99 / max ms",
                "daemon's part p50 / p99 µs", "daemon CPU ms per conversation-s (per minute)",
                "of which the master (call records)",
                "per conversation PSS KiB", "generator / fake CPU",
                "machine busy (others, of a core)", "daemon waiting for a CPU, ms per s",
                "errors: failed / dropped; daemon counters", "verdict"]


def fmt_relay_row(r):
    x = r["relay"]
    f, a = x["first_token_ms"], x["added_us"]
    return [
        r["label"],
        "%d/%d" % (r["established"], r["calls"]),
        "%d / %d / %d / %d / %d" % (x["turns_sent"], x["turns_done"], x["turns_cut"],
                                    x["turns_lost"], x["turns_bad"]),
        "%.2f / %.2f / %.1f" % (f["p50"], f["p99"], f["max"]),
        "%.0f / %.0f" % (a["p50"], a["p99"]),
        "%.3f (%.1f)" % (r["daemon_cpu_ms_per_call_s"], r["daemon_cpu_ms_per_call_s"] * 60),
        "%.3f" % (r["master_cpu_s"] * 1000 / r["call_seconds"] if r["call_seconds"] else 0),
        "%.0f" % r["daemon_pss_kib"]["per_call"],
        "%.0f%% / %.0f%%" % (r["gen_cpu_pct"], r["fake_cpu_pct"]),
        "%.0f%% (%.0f%%)" % (r["machine_busy_pct"], r["other_cpu_pct"]),
        "%.1f" % r.get("daemon_runq_wait_ms_per_s", 0),
        "%d / %d; %s" % (r["failed"], r["dropped"], r.get("daemon_trouble") or "none"),
        ("PASS" if r["pass"] else "FAIL") + (" *" if r["bottleneck"] else ""),
    ]


def relay_table(results):
    rel = [r for r in results if r is not None and r.get("mode") == "relay"]
    if not rel:
        return None
    rows = [RELAY_HEADER, ["---"] * len(RELAY_HEADER)] + [fmt_relay_row(r) for r in rel]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def relay_compare(results):
    """The relay runs beside the Media Streams runs of the same bench: the
    daemon's CPU per call-second of each."""
    media = [r for r in results if r is not None and r.get("mode") in ("plain", "sweep")]
    rel = [r for r in results if r is not None and r.get("mode") == "relay"]
    if not media or not rel:
        return None
    m = max(media, key=lambda r: r["calls"])
    out = []
    for r in rel:
        a, b = r["daemon_cpu_ms_per_call_s"], m["daemon_cpu_ms_per_call_s"]
        out.append("%s: daemon CPU %.3f ms per conversation-second, %.3f ms per "
                   "call-second for Media Streams at %d calls (%s): %.1f%% of it"
                   % (r["label"], a, b, m["calls"], m["label"], a / b * 100 if b else 0))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--calls", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--sweep", default=None)
    ap.add_argument("--modes", default="plain,records,tls,relay,first")
    ap.add_argument("--records-pairs", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--relay-calls", default="500",
                    help="comma-separated conversation counts of the relay mode")
    ap.add_argument("--relay-every", type=float, default=2.0,
                    help="s between a conversation's prompts")
    ap.add_argument("--relay-delta-ms", type=int, default=20,
                    help="ms between the fake's text deltas")
    ap.add_argument("--relay-interrupt-every", type=int, default=4,
                    help="every Nth turn is interrupted after 3 tokens (0: none)")
    ap.add_argument("--first-calls", type=int, default=20)
    ap.add_argument("--session-delay-ms", type=int, default=300)
    ap.add_argument("--twilio-gap-ms", type=int, default=250)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--gen-procs", type=int, default=2)
    ap.add_argument("--fake-procs", type=int, default=2)
    ap.add_argument("--ramp-per-1000", type=float, default=1.5)
    ap.add_argument("--tls-ramp-per-1000", type=float, default=10)
    ap.add_argument("--nice", type=int, default=0)
    ap.add_argument("--settle", type=float, default=2)
    ap.add_argument("--grace", type=float, default=2)
    ap.add_argument("--max-p99-ms", type=float, default=20)
    ap.add_argument("--marks-with-frames", action="store_true")
    ap.add_argument("--codec", default="own", choices=("own", "proto"))
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--compare", default=None, metavar="BIN")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="a daemon configuration key for every run, e.g. "
                    "--set FRAMES_PER_APPEND=2 (repeatable)")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)

    pair_calls = args.calls if args.calls is not None else 500
    if args.sweep is None:
        sweep = [] if args.calls is not None else [100, 250, 500, 750, 1000, 1500,
                                                   2000, 3000]
    elif args.sweep.strip().lower() in ("", "none"):
        sweep = []
    else:
        sweep = [int(x) for x in args.sweep.split(",") if x.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in ("plain", "records", "records-off", "records-pg", "tls", "relay",
                     "first"):
            ap.error("--modes: plain, records, records-off, records-pg, tls, relay "
                     "and/or first")
    if args.repeat < 1 or args.repeat > 20:
        ap.error("--repeat: 1 to 20")
    relay_calls = [int(x) for x in args.relay_calls.split(",") if x.strip()]

    global NICE
    NICE = args.nice
    signal.signal(signal.SIGTERM, on_signal)
    # each call holds a descriptor at the generator, two at the daemon
    # (Twilio's side and the model's) and one at the fake, plus the
    # webhooks' while they last
    most = max([pair_calls] + sweep + (relay_calls if "relay" in modes else []))
    nofile = raise_nofile(4 * most + 1024)
    results = []
    started = time.monotonic()
    log("voxrelay benchmark: %d CPUs, descriptors %d, daemon workers %d, "
        "generator procs %d, fake procs %d, window %.0f s%s"
        % (os.cpu_count(), nofile, args.workers, args.gen_procs, args.fake_procs,
           args.seconds, ", nice %d" % NICE if NICE else ""))
    given, skip = [], False
    for a in sys.argv[1:]:
        if skip or a == "--build" or a.startswith("--build="):
            skip = a == "--build"
            continue
        given.append(a)
    log("command: make bench" + (' BENCH_ARGS="%s"' % " ".join(given) if given else ""))
    try:
        rev = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             timeout=10).stdout.decode().strip()
    except Exception:
        rev = ""
    log("daemon: %s built from %s; %s" % (os.path.relpath(os.path.join(args.build, "voxrelay"),
                                                          ROOT), rev or "?",
                                           time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())))
    run_no = 0
    first = None
    largest = None
    first_fail = None
    pairs = []
    if args.compare is not None:
        args.compare = os.path.abspath(args.compare)
        if not os.access(args.compare, os.X_OK):
            ap.error("--compare: %s is not an executable" % args.compare)
        if args.pairs < 1 or args.pairs > 20:
            ap.error("--pairs: 1 to 20")
        modes, sweep = [], []
    rec_pairs = []
    if args.records_pairs:
        if args.records_pairs < 1 or args.records_pairs > 20:
            ap.error("--records-pairs: 1 to 20")
        modes, sweep = [], []
    try:
        certs = None
        for i in range(args.records_pairs):
            pair = []
            for label in ("records-off", "records"):
                run_no += 1
                log("\n--- records pair %d: %s, %d calls, a line pair every 3 s ---"
                    % (i + 1, label, pair_calls))
                r = run_one(args, label, pair_calls, False, run_no, None)
                results.append(r)
                pair.append(r)
            rec_pairs.append(pair)
        for i in range(args.pairs if args.compare is not None else 0):
            # the order turns every pair (A B, B A, A B ...): a machine
            # whose other load rises or falls through the series then
            # weighs on both binaries alike
            pair = {}
            order = (("base", args.compare),
                     ("this", os.path.join(args.build, "voxrelay")))
            for label, binary in (order if i % 2 == 0 else order[::-1]):
                run_no += 1
                log("\n--- pair %d: %s, plain upstream, %d calls ---"
                    % (i + 1, os.path.relpath(binary, ROOT), pair_calls))
                r = run_one(args, label, pair_calls, False, run_no, certs, binary)
                if r is not None:
                    r["binary"] = binary
                results.append(r)
                pair[label] = r
            pairs.append((pair["base"], pair["this"]))
        if "tls" in modes:
            certs = make_certs(os.path.join(args.build, "bench", "certs"))
        global PG
        if "records-pg" in modes:
            PG = Postgres()
            log("PostgreSQL for records-pg: %s" % PG.url)
        for m in [m for _ in range(args.repeat) for m in modes]:
            if m == "relay":
                for n in relay_calls:
                    run_no += 1
                    log("\n--- ConversationRelay, %d conversations ---" % n)
                    results.append(run_one(args, m, n, False, run_no, certs))
                continue
            run_no += 1
            if m == "first":
                log("\n--- first answer: %d calls each, PREWARM off then on; the fake "
                    "sends session.updated %d ms late, Twilio upgrades %d ms after the "
                    "webhook ---" % (args.first_calls, args.session_delay_ms,
                                     args.twilio_gap_ms))
                first = first_answer(args, run_no)
                continue
            log("\n--- %s upstream, %d calls ---" % (m, pair_calls))
            results.append(run_one(args, m, pair_calls, m == "tls", run_no, certs))
            if m.startswith("records") and results[-1] is not None:
                results[-1]["pass"] = (results[-1]["pass"] and
                                       results[-1].get("records_utterances", 0) > 0)
        for n in sweep:
            run_no += 1
            log("\n--- sweep: plain upstream, %d calls ---" % n)
            r = run_one(args, "sweep", n, False, run_no, certs)
            results.append(r)
            if r is None or not r["pass"]:
                first_fail = r if r is not None else {"calls": n, "bottleneck": "",
                                                      "label": "sweep-%d" % n}
                break
            largest = n
    except KeyboardInterrupt:
        log("\ninterrupted")
    finally:
        cleanup()
        if PG is not None:
            PG.stop()

    log("\n=== results (%.0f s) ===" % (time.monotonic() - started))
    log(table(results))
    log("* = the generator, the fake server or other work on the machine may have limited "
        "the run (see its BOTTLENECK line)")
    cmp_line = records_compare(results)
    if cmp_line:
        log(cmp_line)
    pg_line = records_pg_compare(results)
    if pg_line:
        log(pg_line)
    rt = relay_table(results)
    if rt:
        log("\nConversationRelay (a prompt every %.1f s per conversation, %d-word answers "
            "a delta every %d ms, every %s turn interrupted):"
            % (args.relay_every, 10, args.relay_delta_ms,
               "%dth" % args.relay_interrupt_every if args.relay_interrupt_every else "no"))
        log(rt)
        rc_line = relay_compare(results)
        if rc_line:
            log(rc_line)
    if rec_pairs:
        log(compare_report(rec_pairs, "CALL_RECORDS=false", "CALL_RECORDS=true",
                           "the same transcript lines", 10))
        utts = [p[1].get("records_utterances", 0) for p in rec_pairs if p[1]]
        log("utterances recorded per records run: %s" % ", ".join(str(u) for u in utts))
    if pairs:
        log(compare_report(pairs, os.path.relpath(args.compare, ROOT),
                           os.path.relpath(os.path.join(args.build, "voxrelay"), ROOT)))
    if first is not None:
        log("first answer (fake session.updated %d ms late, upgrade %d ms after the "
            "webhook, %d calls each): webhook -> session.updated p50 %.0f ms off, %.0f ms "
            "on; start -> first greeting audio p50 %.0f ms off, %.0f ms on (max %.0f, "
            "%.0f)" % (args.session_delay_ms, args.twilio_gap_ms, args.first_calls,
                       first["off"]["ready_ms_p50"], first["on"]["ready_ms_p50"],
                       first["off"]["greeting_ms_p50"], first["on"]["greeting_ms_p50"],
                       first["off"]["greeting_ms_max"], first["on"]["greeting_ms_max"]))
    elif "first" in modes:
        log("first answer: FAILED (see above)")
    if sweep:
        if largest is None:
            log("sweep: no step passed (p99 < %.0f ms, no loss)" % args.max_p99_ms)
        elif first_fail is None:
            log("sweep: largest passing call count >= %d (every step passed)" % largest)
        else:
            log("sweep: largest passing call count %d (first failure at %d calls%s)"
                % (largest, first_fail["calls"],
                   "; that step was bounded by: " + first_fail["bottleneck"]
                   if first_fail.get("bottleneck") else ""))
    path = os.path.join(args.build, "bench", "results.jsonl")
    with open(path, "w") as f:
        for r in results:
            if r is not None:
                f.write(json.dumps(r) + "\n")
    log("JSON lines: %s" % os.path.relpath(path, ROOT))
    ok = all(r is not None for r in results) and (results or first is not None)
    if "first" in modes and first is None:
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
