#!/usr/bin/env python3
"""Speculative decoding side by side: Lantern with speculation off, Lantern in `auto`
(prediction and prompt lookup), and llama-server with its n-gram drafts, on the same model,
threads and slots, one server at a time, rounds alternating (this machine's noise is ±15%).

Workloads: `edit` (a ~400-token source file in the prompt, "return it with one identifier
renamed", `prediction` = the original file), `quote` (answer by copying a paragraph of the
prompt; prompt lookup only, no prediction), `chat` (short questions, the ordinary case).
Each is run with 1 stream and with 8 concurrent streams; tokens/s is completion tokens over
wall time. Prints a Markdown table with ratios against Lantern without speculation.

Usage: scripts/bench-speculative.py [--model GGUF] [--other-build BIN] [--llama-server BIN]
                                   [--rounds N] [--out FILE]

Needs `target/release/lantern` (`cargo build --release`).
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
PORT = 18095

SOURCE = '''import json
import os
import sys


def load_records(path):
    """Read one JSON record per line, skipping blank lines."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            records.append(json.loads(line))
    return records


def summarize(records):
    """Count records per kind and total their sizes."""
    counts = {}
    total_size = 0
    for record in records:
        kind = record.get("kind", "unknown")
        counts[kind] = counts.get(kind, 0) + 1
        total_size += record.get("size", 0)
    return counts, total_size


def write_report(counts, total_size, out):
    """Write the summary as aligned text."""
    width = max((len(kind) for kind in counts), default=4)
    for kind in sorted(counts):
        out.write(f"{kind:<{width}}  {counts[kind]:>6}\\n")
    out.write(f"{'total':<{width}}  {total_size:>6}\\n")


def main(argv):
    if len(argv) != 2:
        print("usage: summarize.py FILE", file=sys.stderr)
        return 2
    path = argv[1]
    if not os.path.exists(path):
        print(f"no such file: {path}", file=sys.stderr)
        return 1
    records = load_records(path)
    counts, total_size = summarize(records)
    write_report(counts, total_size, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
'''

PARAGRAPH = (
    "The lighthouse at Point Reyes was built in 1870 and stands on a ledge three hundred feet "
    "above the Pacific. Its first-order Fresnel lens, made in France, has more than a thousand "
    "prisms and was turned by a clockwork mechanism that the keepers wound every two hours. "
    "Fog covers the headland for weeks at a time in summer, so the station also had a steam "
    "whistle, and the keepers kept its boilers fed with coal carried up the cliff by hand."
)


def workload(name):
    """(messages, prediction or None, max_tokens) per request of a workload."""
    if name == "edit":
        ask = "```python\n" + SOURCE + "```\n\nRewrite the code above with summarize renamed to tally."
        expected = "```python\n" + SOURCE.replace("summarize(", "tally(") + "```"
        return [([{"role": "user", "content": ask}], expected, 512)]
    if name == "quote":
        ask = ("Here is a passage.\n\n" + PARAGRAPH + "\n\nCopy the passage above word for word, "
               "then stop.")
        return [([{"role": "user", "content": ask}], None, 160)]
    questions = ["What is the capital of France?", "Give three tips for sleeping well.",
                 "Explain what a hash map is.", "Write a short poem about autumn."]
    return [([{"role": "user", "content": q}], None, 128) for q in questions]


def post(url, body):
    # Repeated greedy requests would otherwise come from Lantern's response cache.
    headers = {"content-type": "application/json", "cache-control": "no-cache"}
    req = urllib.request.Request(url, json.dumps(body).encode(), headers)
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def run_load(url, model, name, streams, requests, use_prediction):
    """Runs `requests` requests over `streams` threads; returns completion tokens/s."""
    items = workload(name)
    lock = threading.Lock()
    state = {"next": 0, "tokens": 0, "accepted": 0}

    def worker():
        while True:
            with lock:
                i = state["next"]
                if i >= requests:
                    return
                state["next"] += 1
            messages, prediction, max_tokens = items[i % len(items)]
            body = {"model": model, "messages": messages, "temperature": 0, "max_tokens": max_tokens}
            if prediction is not None and use_prediction:
                body["prediction"] = {"type": "content", "content": prediction}
            r = post(url + "/v1/chat/completions", body)
            u = r["usage"]
            with lock:
                state["tokens"] += u["completion_tokens"]
                details = u.get("completion_tokens_details") or {}
                state["accepted"] += details.get("accepted_prediction_tokens", 0)

    start = time.time()
    threads = [threading.Thread(target=worker) for _ in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return state["tokens"] / (time.time() - start)


def wait_ready(url, proc):
    for _ in range(600):
        if proc.poll() is not None:
            sys.exit(f"server exited: {proc.args}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    sys.exit("server did not become ready")


def served_model(url):
    """The id the server lists first (Lantern names the model after its file)."""
    with urllib.request.urlopen(url + "/v1/models", timeout=10) as r:
        return json.load(r)["data"][0]["id"]


def servers(args):
    lantern = os.path.join(ROOT, "target", "release", "lantern")
    common = ["--port", str(PORT), "--threads", str(args.threads), "--parallel", str(args.slots),
              "--ctx-size", str(args.ctx)]

    def lantern_cmd(binary, mode):
        return [binary, "serve", "--model", args.model, "--speculative", mode] + common, True

    out = {"lantern-off": lantern_cmd(lantern, "off"), "lantern-auto": lantern_cmd(lantern, "auto")}
    if args.other_build:
        out["other-build-auto"] = lantern_cmd(args.other_build, "auto")
    if args.llama_server:
        out["llama-server-ngram"] = ([args.llama_server, "-m", args.model, "--port", str(PORT), "-t",
                                      str(args.threads), "-tb", str(args.threads), "-np",
                                      str(args.slots), "-c", str(args.ctx), "--spec-type",
                                      args.llama_spec_type, "--spec-draft-n-max",
                                      str(args.llama_draft_max)], False)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL, help="GGUF file (default: the default model)")
    p.add_argument("--llama-server", help="llama-server binary (shared/tools/reference-llama-cpp.sh)")
    p.add_argument("--other-build", help="another lantern binary, run in `auto` beside this one")
    p.add_argument("--llama-spec-type", default="ngram-simple")
    p.add_argument("--llama-draft-max", type=int, default=16)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--ctx", type=int, default=16384)
    p.add_argument("--workloads", default="edit,quote,chat")
    p.add_argument("--streams", default="1,8")
    p.add_argument("--out", help="also write the results as JSON lines here")
    args = p.parse_args()
    url = f"http://127.0.0.1:{PORT}"
    results = {}
    for rnd in range(args.rounds):
        order = list(servers(args).items())
        if rnd % 2:
            order.reverse()
        for name, (cmd, is_lantern) in order:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_ready(url, proc)
                model = served_model(url)
                for w in args.workloads.split(","):
                    for streams in map(int, args.streams.split(",")):
                        requests = streams * (2 if streams > 1 else 3)
                        tps = run_load(url, model, w, streams, requests, is_lantern)
                        results.setdefault((w, streams, name), []).append(tps)
                        print(f"round {rnd + 1} {name:20} {w:6} streams={streams}: {tps:7.1f} tok/s",
                              file=sys.stderr, flush=True)
            finally:
                proc.terminate()
                proc.wait()
    names = list(servers(args))
    print("| workload | streams | " + " | ".join(f"{n} tok/s" for n in names) +
          " | " + " | ".join(f"{n} / lantern-off" for n in names[1:]) + " |")
    print("|" + "---|" * (2 + 2 * len(names) - 1))
    for w in args.workloads.split(","):
        for streams in map(int, args.streams.split(",")):
            means = [sum(results[(w, streams, n)]) / len(results[(w, streams, n)]) for n in names]
            print(f"| {w} | {streams} | " + " | ".join(f"{m:.1f}" for m in means) + " | " +
                  " | ".join(f"{m / means[0]:.2f}x" for m in means[1:]) + " |")
    if args.out:
        with open(args.out, "w") as f:
            for (w, streams, n), v in results.items():
                f.write(json.dumps({"workload": w, "streams": streams, "server": n, "tok_s": v}) + "\n")


if __name__ == "__main__":
    main()
