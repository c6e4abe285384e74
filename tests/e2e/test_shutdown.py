"""Graceful shutdown on a real server: on SIGTERM in-flight streams finish, new requests get
503 and /health says draining, half-sent requests do not hold the process, streams still
running at the grace deadline end with an error event, and the exit code is 0."""

import contextlib
import json
import signal
import socket
import time

import requests

from conftest import MODEL_ID, Server

LONG = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Tell me a long story."}],
        "ignore_eos": True, "stream": True, "temperature": 0}


@contextlib.contextmanager
def own_server(tmp_path, *args):
    """A server this test stops itself; killed if the test fails first."""
    s = Server(*args, tmp=tmp_path)
    try:
        yield s
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
        s.log.close()


def data_lines(response):
    for line in response.iter_lines():
        if line.startswith(b"data: "):
            yield line[len(b"data: "):]


def test_sigterm_lets_the_stream_finish_and_refuses_new_work(tmp_path):
    with own_server(tmp_path, "--shutdown-grace-secs", "30") as s:
        with requests.post(s.base + "/v1/chat/completions", json={**LONG, "max_tokens": 150},
                           headers={"Cache-Control": "no-cache"}, stream=True) as r:
            lines = data_lines(r)
            first = [next(lines) for _ in range(3)]
            s.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            # Draining: the probe says so, and new work is refused with a retryable 503.
            health = requests.get(s.base + "/health")
            assert health.status_code == 503 and health.json()["status"] == "draining"
            refused = requests.post(s.base + "/v1/chat/completions", json={**LONG, "stream": False, "max_tokens": 2})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "server_shutting_down"
            rest = list(lines)
        assert rest[-1] == b"[DONE]"
        chunks = [json.loads(l) for l in first + rest[:-1]]
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"
        assert s.proc.wait(timeout=20) == 0


def test_half_sent_request_does_not_hold_the_process(tmp_path):
    with own_server(tmp_path, "--shutdown-grace-secs", "2", "--header-read-timeout-secs", "60") as s:
        socks = []
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", s.port))
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-")
            socks.append(sock)
        time.sleep(0.3)
        start = time.time()
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(timeout=15) == 0
        assert time.time() - start < 6
        for sock in socks:
            sock.close()


def test_stream_cut_at_the_grace_deadline_ends_with_an_error_event(tmp_path):
    with own_server(tmp_path, "--shutdown-grace-secs", "1") as s:
        with requests.post(s.base + "/v1/chat/completions", json={**LONG, "max_tokens": 1900},
                           headers={"Cache-Control": "no-cache"}, stream=True) as r:
            lines = data_lines(r)
            next(lines)
            s.proc.send_signal(signal.SIGTERM)
            rest = list(lines)
        assert rest and rest[-1] != b"[DONE]"
        err = json.loads(rest[-1])["error"]
        assert err["code"] == "server_shutting_down", err
        assert s.proc.wait(timeout=15) == 0
        assert "grace period over" in s.logs()
