"""Every status openapi.yaml documents for an operation is one a real server gives: a recipe
per (operation, status), and the recipes cover the document exactly. A 500 ("inference
failed") cannot be caused on purpose with a healthy engine; the HTTP tests in
crates/lantern-server/tests/http.rs reach it with a failing one."""

import itertools
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

from conftest import MODEL, MODEL_ID, ROOT, Server

sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
import make_lora  # noqa: E402

KEY = {"Authorization": "Bearer sk-status"}
CHAT = {"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
COMP = {"model": MODEL_ID, "prompt": "hi", "max_tokens": 2}
EMB = {"model": MODEL_ID, "input": "hi"}
LONG = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Tell a long story."}],
        "max_tokens": 1500, "ignore_eos": True, "stream": True}
RESP = {"model": MODEL_ID, "input": "hi", "max_output_tokens": 2}
MSG = {"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
COUNT = {"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}]}
EXEMPT = {("post", "/v1/chat/completions", "500"), ("post", "/v1/completions", "500"),
          ("post", "/v1/responses", "500"), ("post", "/v1/messages", "500")}
BIG = "x" * 5000


def documented():
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    return {(m, p, s) for p, ops in spec["paths"].items() for m, op in ops.items() for s in op["responses"]}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("statuses")
    (tmp / "lantern.toml").write_text("max_queue = 1\n")
    s = Server("--config", str(tmp / "lantern.toml"), "--api-key", "sk-status", "--max-body-bytes", "4096",
               "--parallel", "1", "--ctx-size", "2048", tmp=tmp)
    s.adapter = tmp / "adapter.gguf"
    make_lora.write(MODEL, s.adapter)
    yield s
    if s.proc.poll() is None:
        s.stop()


def post(s, path, body, headers=KEY, **kw):
    return requests.post(s.base + path, json=body, headers={"Cache-Control": "no-cache", **headers}, **kw)


def get(s, path, headers=KEY):
    return requests.get(s.base + path, headers=headers)


def delete(s, path, headers=KEY):
    return requests.delete(s.base + path, headers=headers)


def stored(s):
    """The id of a freshly stored response."""
    r = post(s, "/v1/responses", RESP)
    assert r.status_code == 200, r.text
    return r.json()["id"]


NAMES = (f"a{i}" for i in itertools.count())


def load_adapter(s, name=None):
    """Loads the test adapter under a fresh name (or `name`)."""
    return post(s, "/v1/lora-adapters", {"model": MODEL_ID, "name": name or next(NAMES),
                                         "path": str(s.adapter)})


def unload_adapter(s):
    name = load_adapter(s).json()["name"]
    return delete(s, f"/v1/lora-adapters/{MODEL_ID}/{name}")


def adapter_in_use(s):
    """DELETE while a stream runs under the adapter."""
    name = load_adapter(s).json()["name"]
    started, stop = threading.Event(), threading.Event()
    body = {**LONG, "model": f"{MODEL_ID}:{name}"}
    t = threading.Thread(target=long_stream, args=(s, started, stop, body), daemon=True)
    t.start()
    assert started.wait(30)
    try:
        return delete(s, f"/v1/lora-adapters/{MODEL_ID}/{name}")
    finally:
        stop.set()
        t.join(30)


def adapter_twice(s):
    name = next(NAMES)
    assert load_adapter(s, name).status_code == 200
    return load_adapter(s, name)


RECIPES = {
    ("post", "/v1/chat/completions", "200"): lambda s: post(s, "/v1/chat/completions", CHAT),
    ("post", "/v1/chat/completions", "400"): lambda s: post(s, "/v1/chat/completions", {**CHAT, "n": 0}),
    ("post", "/v1/chat/completions", "401"): lambda s: post(s, "/v1/chat/completions", CHAT, headers={}),
    ("post", "/v1/chat/completions", "404"): lambda s: post(s, "/v1/chat/completions", {**CHAT, "model": "x"}),
    ("post", "/v1/chat/completions", "413"): lambda s: post(s, "/v1/chat/completions", {**CHAT, "user": BIG}),
    ("post", "/v1/completions", "200"): lambda s: post(s, "/v1/completions", COMP),
    ("post", "/v1/completions", "400"): lambda s: post(s, "/v1/completions", {**COMP, "best_of": 3}),
    ("post", "/v1/completions", "401"): lambda s: post(s, "/v1/completions", COMP, headers={}),
    ("post", "/v1/completions", "404"): lambda s: post(s, "/v1/completions", {**COMP, "model": "x"}),
    ("post", "/v1/completions", "413"): lambda s: post(s, "/v1/completions", {**COMP, "prompt": BIG}),
    ("post", "/v1/embeddings", "200"): lambda s: post(s, "/v1/embeddings", EMB),
    ("post", "/v1/embeddings", "400"): lambda s: post(s, "/v1/embeddings", {**EMB, "dimensions": 3}),
    ("post", "/v1/embeddings", "401"): lambda s: post(s, "/v1/embeddings", EMB, headers={}),
    ("post", "/v1/embeddings", "404"): lambda s: post(s, "/v1/embeddings", {**EMB, "model": "x"}),
    ("post", "/v1/embeddings", "413"): lambda s: post(s, "/v1/embeddings", {**EMB, "input": BIG}),
    ("post", "/tokenize", "200"): lambda s: post(s, "/tokenize", {"content": "hi"}),
    ("post", "/tokenize", "400"): lambda s: post(s, "/tokenize", {"content": 5}),
    ("post", "/tokenize", "401"): lambda s: post(s, "/tokenize", {"content": "hi"}, headers={}),
    ("post", "/tokenize", "404"): lambda s: post(s, "/tokenize", {"model": "x", "content": "hi"}),
    ("post", "/detokenize", "200"): lambda s: post(s, "/detokenize", {"tokens": [1, 2]}),
    ("post", "/detokenize", "400"): lambda s: post(s, "/detokenize", {"tokens": [999999999]}),
    ("post", "/detokenize", "401"): lambda s: post(s, "/detokenize", {"tokens": [1]}, headers={}),
    ("post", "/detokenize", "404"): lambda s: post(s, "/detokenize", {"model": "x", "tokens": [1]}),
    ("get", "/v1/models", "200"): lambda s: get(s, "/v1/models"),
    ("get", "/v1/models", "401"): lambda s: get(s, "/v1/models", headers={}),
    ("get", "/v1/models/{id}", "200"): lambda s: get(s, f"/v1/models/{MODEL_ID}"),
    ("get", "/v1/models/{id}", "401"): lambda s: get(s, f"/v1/models/{MODEL_ID}", headers={}),
    ("get", "/v1/models/{id}", "404"): lambda s: get(s, "/v1/models/nope"),
    ("post", "/v1/responses", "200"): lambda s: post(s, "/v1/responses", RESP),
    ("post", "/v1/responses", "400"): lambda s: post(s, "/v1/responses", {**RESP, "truncation": "auto"}),
    ("post", "/v1/responses", "401"): lambda s: post(s, "/v1/responses", RESP, headers={}),
    ("post", "/v1/responses", "404"): lambda s: post(s, "/v1/responses", {**RESP, "previous_response_id": "resp_x"}),
    ("post", "/v1/responses", "413"): lambda s: post(s, "/v1/responses", {**RESP, "input": BIG}),
    ("get", "/v1/responses/{id}", "200"): lambda s: get(s, f"/v1/responses/{stored(s)}"),
    ("get", "/v1/responses/{id}", "401"): lambda s: get(s, "/v1/responses/resp_x", headers={}),
    ("get", "/v1/responses/{id}", "404"): lambda s: get(s, "/v1/responses/resp_x"),
    ("delete", "/v1/responses/{id}", "200"): lambda s: delete(s, f"/v1/responses/{stored(s)}"),
    ("delete", "/v1/responses/{id}", "401"): lambda s: delete(s, "/v1/responses/resp_x", headers={}),
    ("delete", "/v1/responses/{id}", "404"): lambda s: delete(s, "/v1/responses/resp_x"),
    ("get", "/v1/responses/{id}/input_items", "200"): lambda s: get(s, f"/v1/responses/{stored(s)}/input_items"),
    ("get", "/v1/responses/{id}/input_items", "400"): lambda s: get(s, f"/v1/responses/{stored(s)}/input_items?limit=0"),
    ("get", "/v1/responses/{id}/input_items", "401"): lambda s: get(s, "/v1/responses/resp_x/input_items", headers={}),
    ("get", "/v1/responses/{id}/input_items", "404"): lambda s: get(s, "/v1/responses/resp_x/input_items"),
    ("post", "/v1/messages", "200"): lambda s: post(s, "/v1/messages", MSG),
    ("post", "/v1/messages", "400"): lambda s: post(s, "/v1/messages", {**MSG, "max_tokens": None}),
    ("post", "/v1/messages", "401"): lambda s: post(s, "/v1/messages", MSG, headers={"x-api-key": "wrong"}),
    ("post", "/v1/messages", "404"): lambda s: post(s, "/v1/messages", {**MSG, "model": "x"}),
    ("post", "/v1/messages", "413"): lambda s: post(s, "/v1/messages", {**MSG, "system": BIG}),
    ("post", "/v1/messages/count_tokens", "200"): lambda s: post(s, "/v1/messages/count_tokens", COUNT),
    ("post", "/v1/messages/count_tokens", "400"): lambda s: post(s, "/v1/messages/count_tokens", {**COUNT, "max_tokens": 5}),
    ("post", "/v1/messages/count_tokens", "401"): lambda s: post(s, "/v1/messages/count_tokens", COUNT, headers={}),
    ("post", "/v1/messages/count_tokens", "404"): lambda s: post(s, "/v1/messages/count_tokens", {**COUNT, "model": "x"}),
    ("post", "/v1/messages/count_tokens", "413"): lambda s: post(s, "/v1/messages/count_tokens", {**COUNT, "system": BIG}),
    ("get", "/v1/lora-adapters", "200"): lambda s: get(s, "/v1/lora-adapters"),
    ("get", "/v1/lora-adapters", "401"): lambda s: get(s, "/v1/lora-adapters", headers={}),
    ("post", "/v1/lora-adapters", "200"): load_adapter,
    ("post", "/v1/lora-adapters", "400"): lambda s: post(s, "/v1/lora-adapters", {"model": MODEL_ID, "name": "x", "path": str(MODEL)}),
    ("post", "/v1/lora-adapters", "401"): lambda s: post(s, "/v1/lora-adapters", {}, headers={}),
    ("post", "/v1/lora-adapters", "404"): lambda s: post(s, "/v1/lora-adapters", {"model": "x", "name": "x", "path": str(s.adapter)}),
    ("post", "/v1/lora-adapters", "409"): adapter_twice,
    ("delete", "/v1/lora-adapters/{model}/{name}", "200"): unload_adapter,
    ("delete", "/v1/lora-adapters/{model}/{name}", "401"): lambda s: delete(s, f"/v1/lora-adapters/{MODEL_ID}/x", headers={}),
    ("delete", "/v1/lora-adapters/{model}/{name}", "404"): lambda s: delete(s, f"/v1/lora-adapters/{MODEL_ID}/nope"),
    ("delete", "/v1/lora-adapters/{model}/{name}", "409"): adapter_in_use,
    ("get", "/health", "200"): lambda s: get(s, "/health", headers={}),
    ("get", "/metrics", "200"): lambda s: get(s, "/metrics", headers={}),
}
# Need the queue full, or the server draining: run in the tests below.
SPECIAL = {("post", "/v1/chat/completions", "429"), ("post", "/v1/completions", "429"),
           ("post", "/v1/responses", "429"), ("post", "/v1/messages", "429"),
           ("post", "/v1/chat/completions", "503"), ("post", "/v1/completions", "503"),
           ("post", "/v1/responses", "503"), ("post", "/v1/messages", "529"),
           ("post", "/v1/embeddings", "503"), ("get", "/health", "503")}


def test_the_recipes_cover_the_document_exactly():
    assert set(RECIPES) | SPECIAL | EXEMPT == documented()


@pytest.mark.parametrize("case", sorted(RECIPES), ids=lambda c: f"{c[0]} {c[1]} {c[2]}")
def test_documented_status(srv, case):
    r = RECIPES[case](srv)
    assert r.status_code == int(case[2]), r.text
    if r.status_code >= 400 and case[1] != "/health":
        assert r.json()["error"]["message"]


def long_stream(s, started, stop=None, body=LONG):
    """Holds the only slot with a long stream until `stop` is set (then hangs up), or until
    the server goes away."""
    try:
        with requests.post(s.base + "/v1/chat/completions", json=body, headers=KEY, stream=True) as r:
            for i, _ in enumerate(r.iter_lines()):
                if i == 2:
                    started.set()
                    if stop is not None:
                        stop.wait(60)
                        return
    except requests.RequestException:
        pass


def test_a_full_queue_is_429(srv):
    started, stop = threading.Event(), threading.Event()
    running = threading.Thread(target=long_stream, args=(srv, started, stop), daemon=True)
    running.start()
    assert started.wait(30)
    waiting = threading.Thread(target=post, args=(srv, "/v1/chat/completions", CHAT), daemon=True)
    waiting.start()
    time.sleep(0.5)
    try:
        for path, body in (("/v1/chat/completions", CHAT), ("/v1/completions", COMP),
                           ("/v1/responses", RESP), ("/v1/messages", MSG)):
            r = post(srv, path, body)
            assert r.status_code == 429, r.text
            assert r.headers["retry-after"] == "1"
            assert r.json()["error"]["type"] == "rate_limit_error"
    finally:
        stop.set()
        running.join(30)
        waiting.join(30)


def test_draining_is_503(srv):
    started = threading.Event()
    threading.Thread(target=long_stream, args=(srv, started), daemon=True).start()
    assert started.wait(60)
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert get(srv, "/health", headers={}).status_code == 503
    for path, body in (("/v1/chat/completions", CHAT), ("/v1/completions", COMP), ("/v1/embeddings", EMB),
                       ("/v1/responses", RESP)):
        r = post(srv, path, body)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "server_shutting_down"
    # Anthropic's clients know "overloaded" as 529.
    r = post(srv, "/v1/messages", MSG)
    assert r.status_code == 529 and r.json()["error"]["type"] == "overloaded_error", r.text
    srv.proc.kill()
    srv.proc.wait()
    srv.log.close()
