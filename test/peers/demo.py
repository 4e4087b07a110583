#!/usr/bin/python3
"""A simulated call through the whole pipeline on loopback.

The real daemon sits between a synthetic caller that speaks like Twilio
(the voice webhook, then a Media Stream playing a recorded phrase at the
real 20 ms cadence, playing back what it receives and echoing marks when
that audio has played) and a fake OpenAI Realtime server over TLS with a
test CA (an energy VAD on the caller's audio, spoken replies).  The caller
talks once, then talks over the second reply to show a barge-in.  Prints
the conversation, its latency, and what /health and /usage-data say."""

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import caller as synth  # noqa: E402
import certs  # noqa: E402
import harness  # noqa: E402
from fake_openai import FakeOpenAI, write_wav_ulaw  # noqa: E402

CALLER_SAYS = "Hello. I would like to practise a cold call, please."
CALLER_BARGES = "Sorry, can I stop you there for a second?"
MODEL_SAYS = ("Hi there, thanks for calling. Let me tell you a little about how "
              "these practice sessions work, and then we can get started with a "
              "prospect who will push back on price.")


def say(text, path):
    synth.make_phrase_wav(text, path)
    return path


async def demo(tmp, out_wav, seconds):
    c = certs.make_certs(os.path.join(tmp, "certs"))
    ctx = certs.ssl_context(c["cert"], c["key"])
    t0 = time.monotonic()
    caller_wav = say(CALLER_SAYS, os.path.join(tmp, "caller.wav"))
    barge_wav = say(CALLER_BARGES, os.path.join(tmp, "barge.wav"))
    model_wav = say(MODEL_SAYS, os.path.join(tmp, "model.wav"))
    print("audio:    phrases made with espeak-ng in %.1f s" % (time.monotonic() - t0))

    # replies come at about real-time speed, so a barge-in finds one playing
    async with FakeOpenAI(mode="vad", ssl=ctx, host="localhost", reply_wav=model_wav,
                          reply_text=MODEL_SAYS, caller_transcript=[CALLER_SAYS,
                          CALLER_BARGES], chunk_ms=100, interval_ms=90,
                          silence_ms=500) as srv:
        d = harness.Daemon(tmp, OPENAI_URL=srv.url(host="localhost"),
                           OPENAI_CA_FILE=c["ca"], LOG_LEVEL="info",
                           TRANSCRIPTS_DIR=tmp)
        d.start()
        print("daemon:   pid %d on %s (admin %s), %d workers, OpenAI at %s" % (
            d.proc.pid, d.base, d.admin_base, len(d.health()["workers"]),
            srv.url(host="localhost")))
        try:
            cl = synth.Caller(caller_wav, barge_audio=barge_wav, barge_in_after_ms=1500,
                              seconds=seconds, wait_greeting_ms=4000, hangup_after_ms=800)
            r = await cl.run(d.base, caller="+14155552671")
            print()
            print(r.summary())
            if out_wav:
                write_wav_ulaw(out_wav, r.received_audio)
                print("the caller heard: %s" % out_wav)
            conn = srv.accepted[0]
            print()
            print("openai:   %d events from voxrelay (%d appends), %d truncates %s, "
                  "schema errors: %d" % (len(conn.events), len(conn.appends()),
                                         len(conn.truncates),
                                         [t["audio_end_ms"] for t in conn.truncates],
                                         len(conn.schema_errors)))
            h = await asyncio.to_thread(d.health)
            lat = h["latency_us"]
            print("latency:  relay in p50 %d us p99 %d us; relay out p50 %d us p99 %d us" % (
                lat["relay_in"]["p50_us"], lat["relay_in"]["p99_us"],
                lat["relay_out"]["p50_us"], lat["relay_out"]["p99_us"]))
            print("          speech end to first audio p50 %.0f ms; speech start to "
                  "clear p50 %d us; hand-off p50 %d us" % (
                      lat["response"]["p50_us"] / 1000, lat["barge_in"]["p50_us"],
                      lat["handoff"]["p50_us"]))
            m = h["metrics"]
            print("metrics:  total_calls=%d failed_calls=%d api_errors=%d" % (
                m["total_calls"], m["failed_calls"], m["api_errors"]))
            tr = os.path.join(tmp, r.call_sid + ".jsonl")
            if os.path.exists(tr):
                print("transcript:")
                with open(tr) as f:
                    for line in f:
                        print("  " + line.rstrip())
            print("usage:")
            print("  " + d.admin_get("/usage-data")[2].rstrip().replace("\n", "\n  "))
        finally:
            d.stop()
    print("log:")
    print("  " + d.log().rstrip().replace("\n", "\n  "))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=harness.BINARY)
    ap.add_argument("--seconds", type=float, default=25.0)
    ap.add_argument("--out", default=os.path.join(harness.ROOT, "build", "demo-heard.wav"))
    args = ap.parse_args()
    harness.BINARY = os.path.abspath(args.binary)
    tmp = tempfile.mkdtemp(prefix="voxrelay-demo-")
    try:
        asyncio.run(demo(tmp, args.out, args.seconds))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
