#!/usr/bin/python3
"""Runs voxrelay's integration tests: every test_*.py in this directory,
every function named test_* in them, each with its own scratch directory
and a time limit.  Usage: run.py [--binary path] [substring ...]
The last line is "N passed, N failed"."""

import argparse
import asyncio
import importlib.util
import inspect
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "peers"))

import harness  # noqa: E402


class Timeout(Exception):
    pass


def on_alarm(signum, frame):
    raise Timeout("test timed out")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=harness.BINARY)
    ap.add_argument("--keep", action="store_true", help="keep scratch directories")
    ap.add_argument("select", nargs="*")
    args = ap.parse_args()
    harness.BINARY = os.path.abspath(args.binary)
    signal.signal(signal.SIGALRM, on_alarm)

    tests = []
    for fn in sorted(os.listdir(HERE)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        spec = importlib.util.spec_from_file_location(fn[:-3], os.path.join(HERE, fn))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for name, f in inspect.getmembers(mod, inspect.isfunction):
            if name.startswith("test_") and f.__module__ == mod.__name__:
                line = f.__code__.co_firstlineno
                tests.append((fn, line, name, f))
    tests.sort()
    passed = failed = 0
    for fn, _, name, f in tests:
        if args.select and not any(s in name or s in fn for s in args.select):
            continue
        env = harness.TestEnv(name)
        limit = getattr(f, "timeout", 60)
        t0 = time.monotonic()
        signal.alarm(limit)
        try:
            if inspect.iscoroutinefunction(f):
                asyncio.run(f(env))
            else:
                f(env)
            signal.alarm(0)
            env.cleanup()
            for d in env.daemons:
                log = d.log()
                for mark in ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                             "UndefinedBehaviorSanitizer"):
                    if mark in log:
                        raise AssertionError("sanitizer report in the daemon log")
            passed += 1
            print("ok    %-50s %6.1f s" % (name, time.monotonic() - t0), flush=True)
        except BaseException as e:  # noqa: B902 - report everything, go on
            signal.alarm(0)
            failed += 1
            print("FAIL  %-50s %6.1f s" % (name, time.monotonic() - t0), flush=True)
            traceback.print_exc()
            for d in env.daemons:
                print("---- daemon log (%s) ----" % d.log_path)
                print(d.log()[-6000:])
            if isinstance(e, KeyboardInterrupt):
                env.cleanup()
                break
        finally:
            env.cleanup()
            if not args.keep and failed == 0:
                os.system("rm -rf '%s'" % env.tmp)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def timeout(seconds):
    def deco(f):
        f.timeout = seconds
        return f
    return deco


harness.timeout = timeout

if __name__ == "__main__":
    sys.exit(main())
