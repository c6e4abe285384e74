"""Request ids and log formats on a real server: x-request-id is taken from the request or
generated, echoed, and on every log line of the request, the engine's included."""

import json
import re
import subprocess

import requests

from conftest import BINARY, MODEL_ID, ROOT, Server

CHAT = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}


def test_request_id_is_echoed_and_logged(server):
    r = requests.post(server.base + "/v1/chat/completions", json=CHAT,
                      headers={"x-request-id": "req-e2e-1234", "Cache-Control": "no-cache"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "req-e2e-1234"
    lines = [l for l in server.logs().splitlines() if "req-e2e-1234" in l]
    # The HTTP layer's response line and the engine worker's timings both carry it.
    assert any("finished processing request" in l for l in lines), lines
    assert any("request finished" in l and "completion_tokens" in l for l in lines), lines


def test_request_id_is_generated_when_absent(server):
    a = requests.get(server.base + "/health").headers["x-request-id"]
    b = requests.post(server.base + "/v1/chat/completions", json={"model": "nope", "messages": []}).headers
    assert re.fullmatch(r"[0-9a-f-]{36}", a)
    assert b["x-request-id"] != a


def test_json_log_format(tmp_path):
    s = Server("--log-format", "json", tmp=tmp_path)
    try:
        requests.post(s.base + "/v1/chat/completions", json=CHAT, headers={"x-request-id": "req-json-1"})
        records = [json.loads(l) for l in s.logs().splitlines() if l.strip()]
        assert records and all("level" in r and "timestamp" in r for r in records)
        mine = [r for r in records if r.get("span", {}).get("request_id") == "req-json-1"]
        assert any(r["fields"].get("message") == "request finished" for r in mine), mine
    finally:
        s.stop()


def test_bad_llama_log_level_is_one_line():
    out = subprocess.run([str(BINARY), "serve", "--llama-log-level", "loud"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert out.stderr.strip() == "error: --llama-log-level loud: use off, error, warn, info or debug"
