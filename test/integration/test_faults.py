"""Faults survived: a worker killed under load, the usage CSV unwritable
(read-only, then full), upstream trouble next to healthy calls, running out
of file descriptors.  Each bounded in time, on the real binary."""

import asyncio
import base64
import os
import signal
import socket
import subprocess
import time

import harness
import twilio
from fake_openai import FakeOpenAI
from harness import expect, expect_eq


def frame_for(k):
    return lambda i: base64.b64encode(bytes(((k * 29 + i * 11 + j) % 256)
                                            for j in range(160))).decode()


async def open_calls(d, n, base_n, prefix):
    streams = []
    for k in range(n):
        sid = twilio.call_sid(base_n + k)
        wh = await asyncio.to_thread(twilio.post_voice, d.base, sid, "%s%04d" % (prefix, k))
        s = twilio.Stream(wh.stream_url, sid, twilio.stream_sid(base_n + k), wh.params,
                          frame=frame_for(base_n + k))
        s.phone = "%s%04d" % (prefix, k)
        await s.open()
        streams.append(s)
    return streams


def echoed(s):
    return [m["media"]["payload"] for m in s.received if m.get("event") == "media"]


async def test_kill_worker_with_24_calls(env):
    async with FakeOpenAI(mode="echo") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), WORKERS=3,
                       PERSONAS_DIR=_personas_without_greeting(env)).start()
        streams = await open_calls(d, 24, 700, "+1555710")
        t_open = time.monotonic()
        players = {s.sid: asyncio.ensure_future(s.play(4.0)) for s in streams}
        await asyncio.sleep(1.2)
        h = await asyncio.to_thread(d.health)
        by_sid = {c["call_sid"]: c["worker"] for c in h["calls"]}
        counts = {}
        for w in by_sid.values():
            counts[w] = counts.get(w, 0) + 1
        expect(len(counts) == 3, "calls not on all workers: %r" % counts)
        victim = max(h["workers"], key=lambda w: w["live_calls"])
        doomed = [s for s in streams if by_sid[s.sid] == victim["slot"]]
        spared = [s for s in streams if by_sid[s.sid] != victim["slot"]]
        expect(len(doomed) >= 4, "only %d calls on the victim" % len(doomed))
        t_kill = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        await asyncio.sleep(1.0)
        h = await asyncio.to_thread(d.health)
        expect_eq(h["metrics"]["failed_calls"], len(doomed), "failed calls")
        w = [x for x in h["workers"] if x["slot"] == victim["slot"]][0]
        expect(w["restarts"] == 1 and w["state"] == "ready" and w["pid"] != victim["pid"],
               "not respawned: %r" % w)
        _, rows = await asyncio.to_thread(d.usage)
        for s in doomed:
            used = float(rows[s.phone]["minutes_used"]) * 60
            expect(abs(used - (t_kill - t_open)) < 1.0,
                   "killed call billed %.2f s, lived %.2f s" % (used, t_kill - t_open))
            expect(await s.wait_closed(3), "a killed call is still open")
            players[s.sid].cancel()
        await asyncio.gather(*(players[s.sid] for s in spared))
        # the last echoes are waited for (bounded), not slept for
        deadline = time.monotonic() + 15
        while (time.monotonic() < deadline and
               any(len(echoed(s)) < s.frames_sent for s in spared)):
            await asyncio.sleep(0.1)
        for s in spared:
            expect(s.close_code is None, "a spared call was closed")
            expect_eq(echoed(s), [s.frame(i) for i in range(s.frames_sent)],
                      "frames of spared call %s" % s.sid)
            await s.stop()
        expect("worker died" in d.log() or "calls lost" in d.log(), "no obituary")


def _personas_without_greeting(env):
    import json
    d = os.path.join(env.tmp, "personas")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(harness.PERSONAS, "default.json")) as f:
        p = json.load(f)
    p.pop("greeting", None)
    with open(os.path.join(d, "default.json"), "w") as f:
        json.dump(p, f)
    return d


async def test_upstream_trouble_spares_the_neighbours(env):
    """On one worker: one call's upstream closes, one's stalls, one's sends
    garbage; the fourth call keeps relaying every frame."""
    async with FakeOpenAI(mode="echo") as srv:
        d = env.daemon(OPENAI_URL=srv.url(), WORKERS=1, OPENAI_PING_INTERVAL=1,
                       OPENAI_PONG_TIMEOUT=1,
                       PERSONAS_DIR=_personas_without_greeting(env)).start()
        srv.next_config()     # the healthy one
        for step in ({"close": 1011}, {"stall": True}, {"send_raw": "{{{{"}):
            srv.next_config(mode="scripted", after_script="echo",
                            script=[{"wait_event": "input_audio_buffer.append",
                                     "count": 30}, step])
        streams = await open_calls(d, 4, 800, "+1555720")
        players = [asyncio.ensure_future(s.play(5.0)) for s in streams]
        good, bad = streams[0], streams[1:]
        for s in bad:
            expect(await s.wait_closed(6), "a troubled call was not ended")
            expect_eq(s.close_code, 1011, "close code")
        for p in players[1:]:
            p.cancel()
        await players[0]
        await asyncio.sleep(0.5)
        expect(good.close_code is None, "the healthy call was closed")
        expect_eq(echoed(good), [good.frame(i) for i in range(good.frames_sent)],
                  "frames of the healthy call")
        await good.stop()
        h = await asyncio.to_thread(d.health)
        expect_eq(h["metrics"]["api_errors"], 3, "api_errors")
        expect_eq(h["metrics"]["failed_calls"], 3, "failed calls")
        expect_eq(h["workers"][0]["restarts"], 0, "the worker restarted")


def _in_ns(pid, *cmd):
    return subprocess.run(["nsenter", "-t", str(pid), "-m"] + list(cmd),
                          capture_output=True, text=True, timeout=10)


async def test_usage_csv_unwritable_then_catches_up(env):
    """The ledger's directory goes read-only, then fills up: the previous
    file and its backup stay intact, the failure is logged and retried, no
    minute is lost, and the next successful save catches up."""
    ledger = os.path.join(env.tmp, "ledger")
    os.makedirs(ledger)
    with open(os.path.join(ledger, "usage.csv"), "w") as f:
        f.write("phone_number,minutes_used,minutes_remaining,last_call_date,total_calls\n"
                "+14155550001,1.000000,2.000000,2026-11-01T10:00:00Z,1\n")
    with open(os.path.join(ledger, "usage_backup.csv"), "w") as f:
        f.write("phone_number,minutes_used,minutes_remaining,last_call_date,total_calls\n"
                "+14155550001,0.500000,2.500000,2026-10-01T10:00:00Z,1\n")
    if subprocess.call(["unshare", "-m", "true"], stderr=subprocess.DEVNULL) != 0:
        print("      (skipped: no private mount namespace on this machine)")
        return
    # the daemon gets its own mount namespace; its ledger directory is a
    # small tmpfs there, seeded with the files above
    prefix = ["unshare", "-m", "sh", "-c",
              'cp -a "$0" "$0.seed" && mount -t tmpfs -o size=256k tmpfs "$0" && '
              'cp -a "$0.seed/." "$0/" && exec "$@"', ledger]
    d = env.daemon(USAGE_CSV_PATH=os.path.join(ledger, "usage.csv"),
                   USAGE_CSV_BACKUP_PATH=os.path.join(ledger, "usage_backup.csv"),
                   USAGE_FLUSH_INTERVAL=1)
    d.wrap = prefix
    d.start()
    pid = d.proc.pid
    before = _in_ns(pid, "cat", os.path.join(ledger, "usage.csv"),
                    os.path.join(ledger, "usage_backup.csv")).stdout
    # read-only
    r = _in_ns(pid, "mount", "-o", "remount,ro", ledger)
    expect(r.returncode == 0, "remount ro: %s" % r.stderr)
    s = await twilio.place_call(d.base, 1, "+14155550002", 1.5)
    del s
    # the save that fails comes within USAGE_FLUSH_INTERVAL of the call's
    # end; wait for it (bounded) rather than for a fixed time
    deadline = time.monotonic() + 15
    while True:
        h = await asyncio.to_thread(d.health)
        if h["counters"]["flush_failed"] >= 1 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    expect(h["counters"]["flush_failed"] >= 1, "no failed save counted")
    after = _in_ns(pid, "cat", os.path.join(ledger, "usage.csv"),
                   os.path.join(ledger, "usage_backup.csv")).stdout
    expect_eq(after, before, "files changed while read-only")
    expect("Read-only file system" in d.log(), "the error is not logged")
    # full: writable again, but no space left
    _in_ns(pid, "mount", "-o", "remount,rw", ledger)
    r = _in_ns(pid, "sh", "-c", "dd if=/dev/zero of=%s/filler bs=4k count=1000 "
               "2>/dev/null; true" % ledger)
    s = await twilio.place_call(d.base, 2, "+14155550003", 1.0)
    failed = h["counters"]["flush_failed"]
    deadline = time.monotonic() + 15
    while True:
        h = await asyncio.to_thread(d.health)
        if h["counters"]["flush_failed"] > failed or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    expect(h["counters"]["flush_failed"] > failed, "full disk not counted")
    full = _in_ns(pid, "cat", os.path.join(ledger, "usage.csv"),
                  os.path.join(ledger, "usage_backup.csv")).stdout
    expect_eq(full, before, "files changed while full")
    expect("No space left" in d.log(), "ENOSPC not logged")
    # nothing lost from memory meanwhile
    _, rows = await asyncio.to_thread(d.usage)
    expect("+14155550002" in rows and "+14155550003" in rows, "minutes lost: %r" % rows)
    # space again: the next save catches up
    _in_ns(pid, "rm", "-f", os.path.join(ledger, "filler"))
    deadline = time.monotonic() + 15
    while True:
        saved = _in_ns(pid, "cat", os.path.join(ledger, "usage.csv")).stdout
        if "+14155550003" in saved or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    for phone in ("+14155550001", "+14155550002", "+14155550003"):
        expect(phone in saved, "%s missing after recovery: %r" % (phone, saved))
    backup = _in_ns(pid, "cat", os.path.join(ledger, "usage_backup.csv")).stdout
    expect("+14155550001" in backup, "backup lost")
    expect("saved again" in d.log(), "recovery not logged")


def test_out_of_file_descriptors(env):
    """With a low descriptor limit, a flood of idle connections makes the
    master pause accepting instead of spinning; it recovers when they go."""
    d = env.daemon(WORKERS=1, HEADER_TIMEOUT=30, KEEPALIVE_TIMEOUT=30)
    d.wrap = ["prlimit", "--nofile=64:64", "--"]
    d.start()
    socks = []
    try:
        for _ in range(120):
            try:
                s = socket.create_connection(("127.0.0.1", d.port), timeout=2)
                socks.append(s)
            except OSError:
                break
        time.sleep(1.5)
        expect(d.proc.poll() is None, "the master died")
        log = d.log()
        expect("out of file descriptors" in log, "no pause logged")
    finally:
        for s in socks:
            s.close()
    # it comes back by itself
    h = d.wait_for(lambda: _try_health(d), 5, "health after the flood")
    expect(h["counters"]["accept_paused"] >= 1, "accept_paused not counted")
    expect_eq(h["status"], "ok", "status")
    wh = twilio.post_voice(d.base, twilio.call_sid(1), "+14155550004")
    expect(wh.stream_url is not None, "webhook after recovery")
    # the busy-loop check: the master used little CPU while paused
    with open("/proc/%d/stat" % d.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    expect(cpu < 2.0, "the master spun: %.2f s of CPU" % cpu)


def _try_health(d):
    try:
        return d.health()
    except OSError:
        return None
