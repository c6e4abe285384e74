"""Limits on a real server: each refusal is a 400 naming the field and the limit; the
generation deadline ends a request with `length`; slow and idle connections are closed."""

import json
import socket
import time

import pytest
import requests

from conftest import MODEL_ID, Server

ASK = [{"role": "user", "content": "Tell me a long story."}]


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    s = Server("--max-prompts", "4", "--max-messages", "3", "--max-stop-bytes", "16",
               "--max-tokens-limit", "8", "--header-read-timeout-secs", "1",
               tmp=tmp_path_factory.mktemp("limited"))
    yield s
    s.stop()


def refused(r, param):
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["code"] == "limit_exceeded", err
    return err["message"]


def test_each_limit_is_a_400_naming_it(limited):
    chat = limited.base + "/v1/chat/completions"
    comp = limited.base + "/v1/completions"
    msg = refused(requests.post(comp, json={"model": MODEL_ID, "prompt": ["a"] * 5}), "prompt")
    assert "max_prompts" in msg
    assert requests.post(comp, json={"model": MODEL_ID, "prompt": ["a"] * 4, "max_tokens": 1}).status_code == 200
    assert "max_messages" in refused(requests.post(chat, json={"model": MODEL_ID, "messages": ASK * 4}), "messages")
    assert "max_stop_bytes" in refused(
        requests.post(chat, json={"model": MODEL_ID, "messages": ASK, "stop": ["x" * 17]}), "stop")
    assert "max_stop_bytes" in refused(
        requests.post(comp, json={"model": MODEL_ID, "prompt": "a", "stop": "y" * 17}), "stop")
    assert "--max-tokens-limit" in refused(
        requests.post(chat, json={"model": MODEL_ID, "messages": ASK, "max_tokens": 9}), "max_tokens")
    refused(requests.post(chat, json={"model": MODEL_ID, "messages": ASK, "max_completion_tokens": 9}),
            "max_completion_tokens")


def test_max_tokens_limit_is_the_default_budget(limited):
    r = requests.post(limited.base + "/v1/chat/completions", headers={"Cache-Control": "no-cache"},
                      json={"model": MODEL_ID, "messages": ASK, "ignore_eos": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["usage"]["completion_tokens"] == 8
    assert body["choices"][0]["finish_reason"] == "length"


def test_a_huge_prompt_list_is_refused_at_once(server):
    # About two million one-token prompts in 8 MB: refused before anything is queued.
    body = json.dumps({"model": MODEL_ID, "prompt": [[1]] * 2_000_000}, separators=(",", ":"))
    assert len(body) < 8 * 1024 * 1024
    start = time.time()
    r = requests.post(server.base + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    assert "max_prompts" in refused(r, "prompt")
    assert time.time() - start < 10
    assert requests.get(server.base + "/health").status_code == 200


def test_deadline_ends_generation_with_length_and_is_not_cached(tmp_path):
    s = Server("--max-request-secs", "1", tmp=tmp_path)
    try:
        body = {"model": MODEL_ID, "messages": ASK, "ignore_eos": True, "max_tokens": 1800, "temperature": 0}
        start = time.time()
        r = requests.post(s.base + "/v1/chat/completions", json=body)
        took = time.time() - start
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["choices"][0]["finish_reason"] == "length"
        assert 0 < out["usage"]["completion_tokens"] < 1800
        assert took < 5, took
        assert "generation deadline reached" in s.logs()
        # A cut answer is not the answer: the same deterministic request is not a cache hit.
        again = requests.post(s.base + "/v1/chat/completions", json=body)
        assert again.headers["x-lantern-cache"] == "miss"
        # Streams end the same way, with a finish chunk and [DONE].
        with requests.post(s.base + "/v1/chat/completions", json={**body, "stream": True}, stream=True) as st:
            lines = [l for l in st.iter_lines() if l]
        assert lines[-1] == b"data: [DONE]"
        assert any(b'"finish_reason":"length"' in l for l in lines)
    finally:
        s.stop()


def closed_within(sock, seconds):
    """Whether the server closes the connection within `seconds` (reads until EOF)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
        return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def test_slow_headers_are_cut(limited):
    with socket.create_connection(("127.0.0.1", limited.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        start = time.time()
        assert closed_within(sock, 5)
        assert time.time() - start < 4


def test_idle_keep_alive_connection_is_closed(limited):
    with socket.create_connection(("127.0.0.1", limited.port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        start = time.time()
        assert closed_within(sock, 5)
        assert time.time() - start < 4
    assert requests.get(limited.base + "/health").status_code == 200
