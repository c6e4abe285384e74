"""Continuous batching and cancellation against the real model."""

import json
import socket
import threading
import time

import requests

from conftest import MODEL_ID

PROMPTS = [
    "Name a color.",
    "What is 2 + 2?",
    "Name a large animal.",
    "What is the opposite of hot?",
    "Name a planet.",
    "What do bees make?",
    "Name a fruit that is yellow.",
    "What is the capital of Italy?",
]


def test_eight_simultaneous_streams_equal_their_sequential_answers(client):
    def ask(prompt, stream):
        kw = dict(model=MODEL_ID, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=32)
        if not stream:
            return client.chat.completions.create(**kw).choices[0].message.content
        return "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **kw))

    sequential = [ask(p, stream=False) for p in PROMPTS]
    results = [None] * len(PROMPTS)
    errors = []

    def worker(i):
        try:
            results[i] = ask(PROMPTS[i], stream=True)
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert results == sequential


def test_disconnect_mid_stream_frees_the_slot(single_slot_server):
    server = single_slot_server
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Tell me a long story."}],
            "max_tokens": 3000, "ignore_eos": True, "stream": True, "temperature": 0}
    with requests.post(server.base + "/v1/chat/completions", json=body, stream=True) as r:
        lines = r.iter_lines()
        got = [next(lines) for _ in range(10)]
        assert any(l.startswith(b"data: ") for l in got)
    # The connection is closed. With one slot, the next request can only run once the
    # abandoned 3000-token generation (about half a minute here) has been cancelled.
    start = time.time()
    r = requests.post(server.base + "/v1/chat/completions",
                      json={"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
                      timeout=60)
    elapsed = time.time() - start
    assert r.status_code == 200
    assert r.json()["usage"]["completion_tokens"] >= 1
    assert elapsed < 5, f"follow-up waited {elapsed:.1f}s: the cancelled stream still held the slot"
    assert "client went away" in server.logs()


def test_non_streaming_client_disconnect_frees_the_slot(single_slot_server):
    body = json.dumps({"model": MODEL_ID, "messages": [{"role": "user", "content": "Write a long story."}],
                        "max_tokens": 1500, "ignore_eos": True}).encode()
    sock = socket.create_connection(("127.0.0.1", single_slot_server.port))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Cache-Control: no-cache\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    time.sleep(1.0)
    sock.close()  # the client gives up without reading the answer
    start = time.time()
    r = requests.post(single_slot_server.base + "/v1/chat/completions", headers={"Cache-Control": "no-cache"},
                      json={"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
    assert r.status_code == 200
    # 1500 tokens would hold the only slot for many seconds; a freed slot answers at once.
    assert time.time() - start < 6
    assert "client went away; request cancelled, slot freed" in single_slot_server.logs()


def test_a_sequence_moved_to_close_a_gap_between_busy_slots_answers_as_alone(tmp_path):
    """Three slots: A in slot 0, B in slot 1, C in slot 2. B ends and nothing waits, so C moves
    into slot 1 (its KV stream copied) and slots 0-1 decode in one pass; C's answer is the one
    it gets alone."""
    from conftest import Server

    s = Server("--parallel", "3", "--ctx-size", "3072", tmp=tmp_path)
    try:
        c = s.client(default_headers={"Cache-Control": "no-cache"})
        msg = lambda text: [{"role": "user", "content": text}]  # noqa: E731
        kw = dict(model=MODEL_ID, temperature=0, stream=True)

        def started(messages, max_tokens, ignore_eos=False):
            stream = iter(c.chat.completions.create(
                messages=messages, max_tokens=max_tokens, extra_body={"ignore_eos": ignore_eos}, **kw))
            first = next(stream)  # admitted
            return stream, first

        a, _ = started(msg("Tell me a long story about a lighthouse."), 400, ignore_eos=True)
        b, _ = started(msg("Count from one to twenty."), 24, ignore_eos=True)
        question = msg("Describe the water cycle in a few sentences.")
        c_stream, first = started(question, 48)
        list(b)  # B ends; C is the last busy slot above the gap
        text = (first.choices[0].delta.content or "") + "".join(
            ch.choices[0].delta.content or "" for ch in c_stream if ch.choices)
        a.close()
        logs = s.logs()
        assert "sequence moved to close a gap between busy slots from=2 to=1" in logs, logs[-3000:]
        alone = c.chat.completions.create(
            messages=question, max_tokens=48, model=MODEL_ID, temperature=0).choices[0].message.content
        assert text == alone
    finally:
        s.stop()
