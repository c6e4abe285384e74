"""Prefix KV reuse (prompt caching) and the response cache, against the real model."""

import time
import uuid

import requests

from conftest import MODEL_ID


def nonce():
    return uuid.uuid4().hex[:12]


def conversation():
    """A fresh session's first turn, and its second turn after a given answer."""
    system = {"role": "system", "content": f"You are a helpful assistant. Session {nonce()}."}
    turn1 = [system, {"role": "user", "content": "Name three colors."}]
    turn2 = turn1 + [
        {"role": "assistant", "content": "Red, green and blue."},
        {"role": "user", "content": "Now name three animals."},
    ]
    return turn1, turn2


def test_second_turn_reuses_the_first_turns_kv(client):
    turn1, turn2 = conversation()
    kw = dict(model=MODEL_ID, temperature=0, max_tokens=24)
    cold = client.chat.completions.create(messages=turn2, **kw)
    # Nothing of this session's prompt was in any slot: at most the template's opening tokens.
    assert cold.usage.prompt_tokens_details.cached_tokens < 8
    first = client.chat.completions.create(messages=turn1, **kw)
    warm = client.chat.completions.create(messages=turn2, **kw)
    assert warm.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - 1
    assert warm.usage.prompt_tokens == cold.usage.prompt_tokens
    # Reusing the KV does not change the greedy answer.
    assert warm.choices[0].message.content == cold.choices[0].message.content


def chat_raw(server, body, headers=None):
    t = time.time()
    r = requests.post(server.base + "/v1/chat/completions", json=body, headers=headers or {})
    return r, time.time() - t


def test_response_cache_hit_miss_bypass(server):
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": f"Say a word. {nonce()}"}],
            "temperature": 0, "max_tokens": 12}
    first, _ = chat_raw(server, body)
    assert first.headers["x-lantern-cache"] == "miss"
    # `stream`, `user` and field order do not change the key; the hit has a fresh id.
    second, elapsed = chat_raw(server, {"user": "someone", **body})
    assert second.headers["x-lantern-cache"] == "hit"
    # Served from memory: the server logs 0 ms; allow for the client and loopback here.
    assert elapsed < 0.05, elapsed
    a, b = first.json(), second.json()
    assert a["choices"] == b["choices"] and a["usage"] == b["usage"]
    assert a["id"] != b["id"]
    # A different output-affecting field is a different entry.
    third, _ = chat_raw(server, {**body, "max_tokens": 11})
    assert third.headers["x-lantern-cache"] == "miss"
    # Cache-Control: no-cache bypasses.
    bypass, _ = chat_raw(server, body, {"Cache-Control": "no-cache"})
    assert bypass.headers["x-lantern-cache"] == "bypass"
    assert bypass.json()["choices"] == a["choices"]


def test_non_deterministic_requests_never_hit(server):
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": f"Tell me a fact. {nonce()}"}],
            "temperature": 0.9, "max_tokens": 8}
    for _ in range(2):
        r, _ = chat_raw(server, body)
        assert r.headers["x-lantern-cache"] == "bypass"
    seeded = {**body, "seed": 7}
    assert chat_raw(server, seeded)[0].headers["x-lantern-cache"] == "miss"
    assert chat_raw(server, seeded)[0].headers["x-lantern-cache"] == "hit"


def test_errors_are_never_cached_and_carry_the_header(server):
    body = {"model": MODEL_ID, "messages": [], "temperature": 0}
    for _ in range(2):
        r, _ = chat_raw(server, body)
        assert r.status_code == 400
        assert r.headers["x-lantern-cache"] == "bypass"


def test_stream_replay_of_a_hit_parsed_by_the_sdk(cached_client, server):
    messages = [{"role": "user", "content": f"Write one sentence about rain. {nonce()}"}]
    kw = dict(model=MODEL_ID, messages=messages, temperature=0, max_tokens=20)
    raw = cached_client.chat.completions.with_raw_response.create(**kw)
    assert raw.headers["x-lantern-cache"] == "miss"
    expected = raw.parse().choices[0].message.content
    raw_stream = cached_client.chat.completions.with_raw_response.create(
        stream=True, stream_options={"include_usage": True}, **kw)
    assert raw_stream.headers["x-lantern-cache"] == "hit"
    chunks = list(raw_stream.parse())
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert [c.choices[0].finish_reason for c in chunks if c.choices].count("length") == 1
    assert chunks[-1].usage.completion_tokens == 20
    # A streamed miss is stored too, and replays as a non-stream hit.
    kw2 = {**kw, "messages": [{"role": "user", "content": f"Name a tree. {nonce()}"}]}
    streamed = cached_client.chat.completions.with_raw_response.create(stream=True, **kw2)
    assert streamed.headers["x-lantern-cache"] == "miss"
    text = "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)
    hit = cached_client.chat.completions.with_raw_response.create(**kw2)
    assert hit.headers["x-lantern-cache"] == "hit"
    assert hit.parse().choices[0].message.content == text


def test_completions_cache(server):
    body = {"model": MODEL_ID, "prompt": f"Once upon a time {nonce()}", "max_tokens": 6, "temperature": 0}
    a = requests.post(server.base + "/v1/completions", json=body)
    b = requests.post(server.base + "/v1/completions", json=body)
    assert (a.headers["x-lantern-cache"], b.headers["x-lantern-cache"]) == ("miss", "hit")
    assert a.json()["choices"] == b.json()["choices"]


def test_a_conversation_moved_aside_for_a_contiguous_slot_keeps_its_cache(client, tmp_path):
    """Three slots: A generates in slot 0, conversation B finishes its first turn in slot 1,
    then C arrives. C takes slot 1 (busy slots 0-1 decode in one pass; 0 and 2 would take
    two), so B's KV is first copied into slot 2, where B's second turn finds it."""
    from conftest import Server

    s = Server("--parallel", "3", "--ctx-size", "3072", tmp=tmp_path)
    try:
        turn1, turn2 = conversation()
        kw = dict(model=MODEL_ID, temperature=0, max_tokens=24)
        cold = client.chat.completions.create(messages=turn2, **kw)
        c = s.client(default_headers={"Cache-Control": "no-cache"})

        def long_stream(prompt):
            stream = c.completions.create(
                model=MODEL_ID, prompt=prompt, max_tokens=600, temperature=0, stream=True,
                extra_body={"ignore_eos": True},
            )
            next(iter(stream))  # admitted and generating
            return stream

        a = long_stream(f"A story about a lighthouse {nonce()}:")
        first = c.chat.completions.create(messages=turn1, **kw)
        assert first.usage.prompt_tokens >= 16
        c_stream = long_stream(f"A poem about the sea {nonce()}:")
        warm = c.chat.completions.create(messages=turn2, **kw)
        a.close()
        c_stream.close()
        logs = s.logs()
        assert "idle slot's cache copied aside" in logs, logs[-3000:]
        assert warm.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - 1
        # The copied KV is the conversation's: the answer is the one a cold prefill gives.
        assert warm.choices[0].message.content == cold.choices[0].message.content
    finally:
        s.stop()
