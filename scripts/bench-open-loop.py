#!/usr/bin/env python3
"""Lantern builds under open-loop load (`lantern bench serve --rate`): requests arrive at random
(seeded Poisson) times whether or not earlier ones are done, as real traffic does, so slots free
and fill at random and the busy ones are not always contiguous (closed-loop benchmarks refill a
freed slot at once). Answers end on their own (`--natural`), so their lengths vary. One server
at a time on the default model, rounds alternating the build order (this machine's noise is
±15%). Reports each build's mean per-request decode rate and its ratio to the first build.

Usage: scripts/bench-open-loop.py NAME=BINARY [NAME=BINARY ...]
         [--rounds 2] [--requests 50] [--rate 1.0] [--slots 8] [--threads 2]

The load client is this checkout's `target/release/lantern` (`cargo build --release`), whichever
builds are compared.
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target", "release", "lantern")
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


def run(binary, args, prompts):
    server = subprocess.Popen(
        [binary, "serve", "--port", str(PORT), "--threads", str(args.threads), "--parallel", str(args.slots),
         "--ctx-size", str(2048 * args.slots)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(PORT)
        out = subprocess.run(
            [BENCH, "bench", "serve", "--url", f"http://127.0.0.1:{PORT}/v1", "--rate", str(args.rate),
             "-c", "64", "-n", str(args.requests), "--natural", "--max-tokens", "160", "--prompts", prompts,
             "--warmup", "1", "--json"],
            check=True, capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])["per_stream_tok_s"]
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
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as prompts:
        prompts.write("\n".join(PROMPTS) + "\n")
        prompts.flush()
        for rnd in range(args.rounds):
            order = list(builds) if rnd % 2 == 0 else list(builds)[::-1]
            for name in order:
                rate = run(builds[name], args, prompts.name)
                results[name].append(rate)
                print(f"round {rnd + 1}: {name} {rate:.1f} tok/s per request", flush=True)
    base = statistics.mean(results[next(iter(builds))])
    for name, rates in results.items():
        print(f"{name}: {statistics.mean(rates):.1f} tok/s per request, {statistics.mean(rates) / base:.3f}x")


if __name__ == "__main__":
    main()
