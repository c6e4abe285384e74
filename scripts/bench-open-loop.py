#!/usr/bin/env python3
"""Lantern builds under open-loop load: requests arrive at random (Poisson) times whether or
not earlier ones are done, as real traffic does, so slots free and fill at random and the busy
ones are not always contiguous (closed-loop benchmarks refill a freed slot at once). One
server at a time on the default model, rounds alternating the build order (this machine's
noise is ±15%); the arrival times and answer lengths are the same for every build.

Reports each build's mean per-request decode rate (streamed tokens after the first over the
time after the first) and its ratio to the first build.

Usage: scripts/bench-open-loop.py NAME=BINARY [NAME=BINARY ...]
         [--rounds 2] [--requests 50] [--rate 1.0] [--slots 8] [--threads 2]
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_ID = "smollm2-135m-instruct.q4_1"
PORT = 18096
PROMPTS = [
    "Write a short poem about the sea.",
    "Explain how a bicycle works.",
    "List five fruits and their colours.",
    "Tell me a story about a dragon who loves books.",
    "Describe the water cycle for a child.",
    "Give three tips for learning to code.",
    "Why is the sky blue?",
    "Summarise the plot of Romeo and Juliet.",
]


def wait_ready(port):
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit("server not ready")


def one(i, max_tokens, rates, lock):
    body = {"model": MODEL_ID, "prompt": f"{PROMPTS[i % len(PROMPTS)]} ({i})", "max_tokens": max_tokens,
            "temperature": 0, "ignore_eos": True, "stream": True}
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}/v1/completions", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json", "cache-control": "no-store"})
    first, chunks = None, 0
    with urllib.request.urlopen(req, timeout=600) as r:
        for line in r:
            if line.startswith(b"data: {"):
                chunks += 1
                first = first or time.time()
    with lock:
        rates.append((chunks - 1) / (time.time() - first))


def run(binary, args):
    server = subprocess.Popen(
        [binary, "serve", "--port", str(PORT), "--threads", str(args.threads), "--parallel", str(args.slots),
         "--ctx-size", str(2048 * args.slots)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(PORT)
        rng = random.Random(7)
        rates, lock, threads = [], threading.Lock(), []
        for i in range(args.requests):
            time.sleep(rng.expovariate(args.rate))
            t = threading.Thread(target=one, args=(i, rng.randint(32, 160), rates, lock))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        return statistics.mean(rates)
    finally:
        server.terminate()
        server.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("builds", nargs="+", metavar="NAME=BINARY")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--rate", type=float, default=1.0, help="arrivals per second")
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    builds = dict(b.split("=", 1) for b in args.builds)
    results = {name: [] for name in builds}
    for rnd in range(args.rounds):
        order = list(builds) if rnd % 2 == 0 else list(builds)[::-1]
        for name in order:
            rate = run(builds[name], args)
            results[name].append(rate)
            print(f"round {rnd + 1}: {name} {rate:.1f} tok/s per request", flush=True)
    base = statistics.mean(results[next(iter(builds))])
    for name, rates in results.items():
        print(f"{name}: {statistics.mean(rates):.1f} tok/s per request, {statistics.mean(rates) / base:.3f}x")


if __name__ == "__main__":
    main()
