"""`lantern bench serve` against two live Lantern instances: every request succeeds, throughput
is positive, both endpoints' answers are side by side, the chart is written; `make bench`'s
old arguments still give the one-object JSON the scripts read; API keys come from --api-key-env."""

import json
import os
import subprocess

import pytest

from conftest import BINARY, MODEL_ID, Server


def bench(*args, env=None):
    return subprocess.run([str(BINARY), "bench", "serve", *map(str, args)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    a = Server("--parallel", "2", tmp=tmp)
    b = Server("--parallel", "2", "--api-key", "sk-bench", tmp=tmp)
    yield a, b
    a.stop()
    b.stop()


def test_two_endpoints_side_by_side(two, tmp_path):
    a, b = two
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is the capital of France?\nName a colour.\n")
    out = tmp_path / "out"
    r = bench("--url", a.base + "/v1", "--url", b.base + "/v1", "--api-key-env", "BENCH_KEY",
              "-c", "1,2", "-n", "2", "--max-tokens", "8", "--prompts", prompts, "--answers",
              "--out", out, "--json", env={"BENCH_KEY": "sk-bench"})
    assert r.returncode == 0, r.stderr
    runs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["url"], x["concurrency"]) for x in runs] == [
        (a.base + "/v1", 1), (b.base + "/v1", 1), (a.base + "/v1", 2), (b.base + "/v1", 2)]
    for x in runs:
        assert x["failed"] == 0 and x["requests"] == 2 and x["model"] == MODEL_ID
        assert x["aggregate_tok_s"] > 0 and x["ttft_ms_p50"] > 0 and x["tokens"] == 16
    report = json.loads((out / "report.json").read_text())
    assert len(report["ratios"]) == 2 and all(x["aggregate_tok_s"] > 0 for x in report["ratios"])
    md = (out / "answers.md").read_text()
    for url in (a.base, b.base):
        assert md.count(url) == 2, md
    assert "## Name a colour." in md and "(no answer" not in md
    html = (out / "answers.html").read_text()
    assert html.count("<th>http://") == 2 and "<td><pre>What is the capital" in html
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (out / "chart.svg").read_text()


def test_make_bench_arguments_still_work(two):
    a, _ = two
    r = bench("--url", a.base + "/v1", "-c", "2", "-n", "2", "--max-tokens", "8", "--json")
    assert r.returncode == 0, r.stderr
    (line,) = r.stdout.splitlines()
    x = json.loads(line)
    for key in ("aggregate_tok_s", "per_stream_tok_s", "ttft_ms_p50", "ttft_ms_p95",
                "itl_ms_p50", "itl_ms_p95", "requests", "failed", "tokens", "wall_s"):
        assert key in x
    assert x["concurrency"] == 2 and x["tokens"] == 16


def test_key_and_request_failures_are_reported(two):
    _, b = two
    r = bench("--url", b.base + "/v1", "--api-key-env", "NO_SUCH_VAR_FOR_LANTERN")
    assert r.returncode != 0 and "NO_SUCH_VAR_FOR_LANTERN" in r.stderr
    # No key: every request is refused with a 401, and the run says so.
    r = bench("--url", b.base + "/v1", "--model", MODEL_ID, "--warmup", "0", "-n", "1",
              "--max-tokens", "4")
    assert r.returncode != 0 and "401" in r.stderr


def test_open_loop_rate_spreads_the_arrivals(two):
    a, _ = two
    r = bench("--url", a.base + "/v1", "-c", "8", "-n", "6", "--rate", "2", "--max-tokens", "4",
              "--warmup", "0", "--json")
    assert r.returncode == 0, r.stderr
    run = json.loads(r.stdout.strip().splitlines()[-1])
    assert run["rate"] == 2.0 and run["requests"] == 6 and run["failed"] == 0
    # Seeded Poisson arrivals: the last of six comes well after the first, and the run lasts
    # at least until then (closed loop, all six would start at once).
    assert run["arrival_span_s"] > 0.5
    assert run["wall_s"] >= run["arrival_span_s"]
    assert "arriving at 2/s, at most 8 at a time" in r.stderr
    closed = bench("--url", a.base + "/v1", "-c", "8", "-n", "6", "--max-tokens", "4", "--warmup", "0",
                   "--json")
    assert json.loads(closed.stdout.strip().splitlines()[-1])["rate"] is None
    bad = bench("--url", a.base + "/v1", "--rate", "0")
    assert bad.returncode != 0 and "a positive number of requests per second" in bad.stderr
